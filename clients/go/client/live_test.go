package client

// The live tests run against a real server: RUNSTATUS_ADDR is its address
// (tests/test_client_go.py starts one and runs `go test ./client -run Live`).
// Without it they are skipped. TestLiveWatchResumesAcrossARestart also needs
// RUNSTATUS_CONTROL, a folder where it asks the test driver to restart the
// server (it writes "restart", the driver answers "restarted").

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"

	runstatusv1 "github.com/runstatus/runstatus/clients/go/runstatus/v1"
)

func liveAddress(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("RUNSTATUS_ADDR")
	if addr == "" {
		t.Skip("RUNSTATUS_ADDR is not set: no server to test against")
	}
	return addr
}

func liveClient(t *testing.T, addr string) *Client {
	t.Helper()
	c, err := Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func liveContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// liveProject is a new project of the test's own.
func liveProject(ctx context.Context, t *testing.T, c *Client) string {
	t.Helper()
	id := "go-live-" + newRequestID()[:8]
	if _, err := c.Projects.CreateProject(ctx, &runstatusv1.CreateProjectRequest{Project: &runstatusv1.Project{Id: id}}); err != nil {
		t.Fatal(err)
	}
	return id
}

type edge struct {
	from, to  string
	condition runstatusv1.EdgeCondition
}

// liveWorkOrder makes a workflow of steps and edges in the project and a work
// order of it with this input; it returns the work order's first run id.
func liveWorkOrder(ctx context.Context, t *testing.T, c *Client, project string, steps []string, edges []edge, input map[string]any) string {
	t.Helper()
	workflow := &runstatusv1.Workflow{Id: "wf-" + newRequestID()[:8], ProjectId: project}
	for _, s := range steps {
		workflow.Steps = append(workflow.Steps, &runstatusv1.Step{Id: s})
	}
	for _, e := range edges {
		workflow.Edges = append(workflow.Edges, &runstatusv1.Edge{SourceStepId: e.from, TargetStepId: e.to, Condition: e.condition})
	}
	if _, err := c.Workflows.CreateWorkflow(ctx, &runstatusv1.CreateWorkflowRequest{Workflow: workflow}); err != nil {
		t.Fatal(err)
	}
	in, err := structpb.NewStruct(input)
	if err != nil {
		t.Fatal(err)
	}
	created, err := c.WorkOrders.CreateWorkOrder(ctx, &runstatusv1.CreateWorkOrderRequest{
		ProjectId: project, WorkflowId: workflow.Id, Input: in,
	})
	if err != nil {
		t.Fatal(err)
	}
	return created.GetRun().GetId()
}

func getRun(ctx context.Context, t *testing.T, c *Client, runID string) *runstatusv1.Run {
	t.Helper()
	got, err := c.WorkOrders.GetRun(ctx, &runstatusv1.GetRunRequest{RunId: runID})
	if err != nil {
		t.Fatal(err)
	}
	return got.GetRun()
}

var (
	onSuccess = runstatusv1.EdgeCondition_EDGE_CONDITION_ON_SUCCESS
	onFailure = runstatusv1.EdgeCondition_EDGE_CONDITION_ON_FAILURE
)

func TestLiveWorkerRunsAWorkflowToSuccess(t *testing.T) {
	c := liveClient(t, liveAddress(t))
	ctx := liveContext(t)
	project := liveProject(ctx, t, c)
	runID := liveWorkOrder(ctx, t, c, project, []string{"fetch", "notify", "recover"},
		[]edge{{"fetch", "notify", onSuccess}, {"fetch", "recover", onFailure}}, map[string]any{"patient_id": 7})

	w := NewWorker(c, "go-live")
	w.ProjectID = project
	w.Step("fetch", func(_ context.Context, state map[string]any) (map[string]any, error) {
		return map[string]any{"patient": map[string]any{"id": state["patient_id"], "name": "Ada"}}, nil
	})
	var notified map[string]any
	w.Step("notify", func(_ context.Context, state map[string]any) (map[string]any, error) {
		notified = state
		return nil, nil // passes its input on
	})
	outcomes, err := w.RunUntilIdle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(outcomes) != 1 || outcomes[0].RunID != runID || outcomes[0].Status != runstatusv1.RunStatus_RUN_STATUS_SUCCESS ||
		!slices.Equal(outcomes[0].Executed, []string{"fetch", "notify"}) {
		t.Fatalf("outcomes %+v", outcomes)
	}
	if notified["patient"].(map[string]any)["name"] != "Ada" {
		t.Errorf("notify received %v", notified)
	}
	run := getRun(ctx, t, c, runID)
	if run.GetStatus() != runstatusv1.RunStatus_RUN_STATUS_SUCCESS || len(run.GetStepRuns()) != 2 || run.GetWorkerId() != "go-live" {
		t.Errorf("run %v", run)
	}
	for _, s := range run.GetStepRuns() {
		if s.GetStepId() == "fetch" && s.GetOutput().AsMap()["patient"].(map[string]any)["id"] != 7.0 {
			t.Errorf("fetch's output %v", s.GetOutput())
		}
	}
}

func TestLiveFailingStepsAreReportedAndClassified(t *testing.T) {
	c := liveClient(t, liveAddress(t))
	ctx := liveContext(t)
	project := liveProject(ctx, t, c)
	job := runstatusv1.ErrorSource_ERROR_SOURCE_JOB
	cases := []struct {
		name     string
		step     StepFunc // nil: no function registered
		report   *runstatusv1.ErrorReport
		status   runstatusv1.RunStatus
		executed []string
	}{{
		name: "a wrapper with its subtype and severity",
		step: func(context.Context, map[string]any) (map[string]any, error) {
			return nil, &StepError{Name: "RuntimeError", Subtype: "TypeError", Severity: runstatusv1.ErrorSeverity_ERROR_SEVERITY_FAIL,
				Err: errors.New("state.data.map is not a function")}
		},
		report: &runstatusv1.ErrorReport{Name: "RuntimeError", Subtype: "TypeError", Severity: runstatusv1.ErrorSeverity_ERROR_SEVERITY_FAIL,
			Message: "state.data.map is not a function", Source: job},
		status:   runstatusv1.RunStatus_RUN_STATUS_FAILED,
		executed: []string{"a", "recover"}, // a FAILED step goes on along ON_FAILURE
	}, {
		name: "a crash aborts the run",
		step: func(context.Context, map[string]any) (map[string]any, error) {
			return nil, &StepError{Name: "RuntimeCrash", Subtype: "ReferenceError", Severity: runstatusv1.ErrorSeverity_ERROR_SEVERITY_CRASH,
				Err: errors.New("fn is not defined")}
		},
		report: &runstatusv1.ErrorReport{Name: "RuntimeCrash", Subtype: "ReferenceError", Severity: runstatusv1.ErrorSeverity_ERROR_SEVERITY_CRASH,
			Message: "fn is not defined", Source: job},
		status:   runstatusv1.RunStatus_RUN_STATUS_CRASHED,
		executed: []string{"a"},
	}, {
		name: "OpenFn's severity over its class's default",
		step: func(context.Context, map[string]any) (map[string]any, error) {
			// An uncaught error in job code, as OpenFn's engine re-tags it: the alias table says
			// EXCEPTION for ExecutionError, the instance's "crash" wins.
			return nil, NewStepError("ExecutionError", "", "crash", errors.New("thrown from a timer"))
		},
		report: &runstatusv1.ErrorReport{Name: "ExecutionError", Severity: runstatusv1.ErrorSeverity_ERROR_SEVERITY_CRASH,
			Message: "thrown from a timer", Source: job},
		status:   runstatusv1.RunStatus_RUN_STATUS_CRASHED,
		executed: []string{"a"},
	}, {
		name: "a panic",
		step: func(_ context.Context, state map[string]any) (map[string]any, error) {
			var patient *struct{ Name string }
			return map[string]any{"name": patient.Name}, nil // nil pointer dereference
		},
		report: &runstatusv1.ErrorReport{Name: "runtime.Error",
			Message: "runtime error: invalid memory address or nil pointer dereference", Source: job},
		status:   runstatusv1.RunStatus_RUN_STATUS_FAILED,
		executed: []string{"a", "recover"},
	}, {
		name:     "a step with no function",
		report:   &runstatusv1.ErrorReport{Name: "UnregisteredStep", Source: runstatusv1.ErrorSource_ERROR_SOURCE_RUNTIME, Message: `no function is registered for step "a"`},
		status:   runstatusv1.RunStatus_RUN_STATUS_EXCEPTION,
		executed: []string{"a"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runID := liveWorkOrder(ctx, t, c, project, []string{"a", "b", "recover"},
				[]edge{{"a", "b", onSuccess}, {"a", "recover", onFailure}}, map[string]any{"n": 1})
			w := NewWorker(c, "go-live")
			w.ProjectID = project
			if tc.step != nil {
				w.Step("a", tc.step)
			}
			var recovered map[string]any
			w.Step("recover", func(_ context.Context, state map[string]any) (map[string]any, error) {
				recovered = state
				return nil, errors.New("still broken") // a leaf that fails keeps the run FAILED
			})
			outcomes, err := w.RunUntilIdle(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(outcomes) != 1 || outcomes[0].Status != tc.status || !slices.Equal(outcomes[0].Executed, tc.executed) {
				t.Fatalf("outcomes %+v, want %s after %v", outcomes, tc.status, tc.executed)
			}
			run := getRun(ctx, t, c, runID)
			var stepA *runstatusv1.StepRun
			for _, s := range run.GetStepRuns() {
				if s.GetStepId() == "a" {
					stepA = s
				}
			}
			got := stepA.GetError().GetReport()
			if got.GetName() != tc.report.GetName() || got.GetSubtype() != tc.report.GetSubtype() ||
				got.GetSeverity() != tc.report.GetSeverity() || got.GetMessage() != tc.report.GetMessage() ||
				got.GetLanguage() != "go" || got.GetSource() != tc.report.GetSource() {
				t.Errorf("step a's report %v, want %v", got, tc.report)
			}
			// The run's status is what the server makes of that report.
			classified, err := c.Classifier.Classify(ctx, &runstatusv1.ClassifyRequest{Error: got})
			if err != nil {
				t.Fatal(err)
			}
			if classified.GetClassification().GetStatus() != tc.status || stepA.GetError().GetClassification().GetStatus() != tc.status {
				t.Errorf("classified %v, stored %v, want %s", classified.GetClassification(), stepA.GetError().GetClassification(), tc.status)
			}
			if slices.Contains(tc.executed, "recover") {
				if e, _ := recovered["error"].(map[string]any); e["name"] != tc.report.GetName() || recovered["n"] != 1.0 {
					t.Errorf("recover received %v", recovered)
				}
			}
		})
	}
}

func TestLiveCancelStopsTheRunningStep(t *testing.T) {
	c := liveClient(t, liveAddress(t))
	ctx := liveContext(t)
	project := liveProject(ctx, t, c)
	runID := liveWorkOrder(ctx, t, c, project, []string{"wait", "after"}, []edge{{"wait", "after", onSuccess}}, nil)

	w := NewWorker(c, "go-live")
	w.ProjectID = project
	started := make(chan struct{})
	var cause atomic.Value
	w.Step("wait", func(ctx context.Context, _ map[string]any) (map[string]any, error) {
		close(started)
		select {
		case <-ctx.Done():
			cause.Store(context.Cause(ctx))
			return nil, ctx.Err()
		case <-time.After(30 * time.Second):
			return nil, errors.New("the step's context was never cancelled")
		}
	})
	w.Step("after", func(context.Context, map[string]any) (map[string]any, error) {
		t.Error("a step ran after the cancel")
		return nil, nil
	})
	go func() {
		select {
		case <-started:
		case <-ctx.Done():
			return
		}
		if _, err := c.WorkOrders.CancelRun(ctx, &runstatusv1.CancelRunRequest{RunId: runID, Reason: "test"}); err != nil {
			t.Error(err)
		}
	}()
	begin := time.Now()
	outcomes, err := w.RunUntilIdle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(outcomes) != 1 || outcomes[0].Status != runstatusv1.RunStatus_RUN_STATUS_CANCELLED || !slices.Equal(outcomes[0].Executed, []string{"wait"}) {
		t.Fatalf("outcomes %+v", outcomes)
	}
	if got := cause.Load(); got != ErrStopped {
		t.Errorf("the step's context: cause %v, want ErrStopped", got)
	}
	if elapsed := time.Since(begin); elapsed > 20*time.Second {
		t.Errorf("stopped after %s", elapsed)
	}
	if run := getRun(ctx, t, c, runID); run.GetStatus() != runstatusv1.RunStatus_RUN_STATUS_CANCELLED {
		t.Errorf("run %v", run)
	}
}

// restartServer asks the test driver to restart the server and waits until it has.
func restartServer(t *testing.T, control string) {
	t.Helper()
	done := filepath.Join(control, "restarted")
	_ = os.Remove(done)
	if err := os.WriteFile(filepath.Join(control, "restart"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(done); err == nil {
			return
		}
	}
	t.Fatal("the server was not restarted")
}

func TestLiveWatchResumesAcrossARestart(t *testing.T) {
	addr := liveAddress(t)
	control := os.Getenv("RUNSTATUS_CONTROL")
	if control == "" {
		t.Skip("RUNSTATUS_CONTROL is not set: no driver to restart the server")
	}
	c := liveClient(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	project := liveProject(ctx, t, c)
	first := liveWorkOrder(ctx, t, c, project, []string{"a"}, nil, nil)

	// The watch under test, on a connection of its own.
	watcher := liveClient(t, addr)
	seen := make(chan *runstatusv1.WatchWorkOrdersResponse, 100)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var watchErr error
	var watching sync.WaitGroup
	watching.Add(1)
	go func() {
		defer watching.Done()
		defer close(seen)
		for item, err := range watcher.Watch(watchCtx, &runstatusv1.WatchWorkOrdersRequest{ProjectId: project}) {
			if err != nil {
				watchErr = err
				return
			}
			seen <- item
		}
	}()
	var got []*runstatusv1.WatchWorkOrdersResponse
	// waitFor receives events until one is about the run.
	waitFor := func(runID string) {
		t.Helper()
		for {
			select {
			case item, ok := <-seen:
				if !ok {
					t.Fatalf("the watch ended: %v", watchErr)
				}
				got = append(got, item)
				if item.GetEvent().GetRunId() == runID {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no event of run %s; saw %d events", runID, len(got))
			}
		}
	}
	waitFor(first)

	restartServer(t, control)
	// The test's own calls wait for the server to be back: its connection may
	// still be in its reconnect backoff (up to 5 s) when the retries run out.
	if _, err := c.Projects.GetProject(ctx, &runstatusv1.GetProjectRequest{ProjectId: project}, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}
	second := liveWorkOrder(ctx, t, c, project, []string{"a"}, nil, nil)
	third := liveWorkOrder(ctx, t, c, project, []string{"a"}, nil, nil)
	waitFor(second)
	waitFor(third)
	stopWatch()
	watching.Wait()
	if watchErr != nil && status.Code(watchErr) != codes.Canceled {
		t.Errorf("the watch ended with %v", watchErr)
	}

	// Every event of the log once, in order: what a fresh watch of the project reads.
	var want []int64
	for item, err := range c.Watch(ctx, &runstatusv1.WatchWorkOrdersRequest{ProjectId: project}) {
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, item.GetEvent().GetSequence())
		if item.GetEvent().GetRunId() == third {
			break
		}
	}
	var sequences []int64
	for _, item := range got {
		sequences = append(sequences, item.GetEvent().GetSequence())
	}
	if !slices.Equal(sequences, want) || len(want) < 3 {
		t.Errorf("watched across the restart %v, the log holds %v", sequences, want)
	}
}

// cutProxy forwards TCP connections to a server. Once cut is called, it drops
// what the server sends and, a moment later, closes the connections open then,
// as a network failing between a request and its answer would.
type cutProxy struct {
	listener net.Listener
	target   string
	mu       sync.Mutex
	open     []net.Conn
	dropping bool
	accepted atomic.Int32
	dropped  atomic.Int64 // bytes of the server's the client never got
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{listener: listener, target: target}
	t.Cleanup(func() { _ = listener.Close(); p.closeAll() })
	go func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			server, err := net.Dial("tcp", target)
			if err != nil {
				_ = conn.Close()
				continue
			}
			p.mu.Lock()
			p.open = append(p.open, conn, server)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(server, conn) }()
			go p.relay(conn, server)
		}
	}()
	return p
}

// relay copies the server's bytes to the client, unless they are being dropped.
func (p *cutProxy) relay(client, server net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		p.mu.Lock()
		dropping := p.dropping
		p.mu.Unlock()
		if n > 0 && dropping {
			p.dropped.Add(int64(n))
		} else if n > 0 {
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			_ = client.Close()
			return
		}
	}
}

// cut drops the server's answers from now on, then after a while closes every
// connection open and lets new ones through again.
func (p *cutProxy) cut(after time.Duration) {
	p.mu.Lock()
	p.dropping = true
	p.mu.Unlock()
	time.AfterFunc(after, func() {
		p.closeAll()
		p.mu.Lock()
		p.dropping = false
		p.mu.Unlock()
	})
}

// cutDuring makes call with its answer cut off (cut), and fails the test
// unless the server did answer (bytes dropped) and the client connected again.
func (p *cutProxy) cutDuring(t *testing.T, call func() error) error {
	t.Helper()
	accepted, dropped := p.accepted.Load(), p.dropped.Load()
	p.cut(time.Second)
	err := call()
	time.Sleep(100 * time.Millisecond) // a call refused at once: let the cut happen before counting
	if p.dropped.Load() == dropped {
		t.Fatal("the server's answer was not cut off")
	}
	if err == nil && p.accepted.Load() == accepted {
		t.Fatal("the call succeeded over no new connection")
	}
	return err
}

func (p *cutProxy) closeAll() {
	p.mu.Lock()
	open := p.open
	p.open = nil
	p.mu.Unlock()
	for _, conn := range open {
		_ = conn.Close()
	}
}

func TestLiveRetryAfterUnavailableIsDoneOnce(t *testing.T) {
	addr := liveAddress(t)
	ctx := liveContext(t)
	proxy := startCutProxy(t, addr)
	c := liveClient(t, proxy.listener.Addr().String())
	project := liveProject(ctx, t, c) // connects through the proxy
	workflow := &runstatusv1.Workflow{Id: "once", ProjectId: project, Steps: []*runstatusv1.Step{{Id: "a"}}}
	if _, err := c.Workflows.CreateWorkflow(ctx, &runstatusv1.CreateWorkflowRequest{Workflow: workflow}); err != nil {
		t.Fatal(err)
	}

	// The request reaches the server, its answer is lost with the connection:
	// the client sees UNAVAILABLE, retries with the same request id, and the
	// server answers the retry with what it did the first time.
	var created *runstatusv1.CreateWorkOrderResponse
	err := proxy.cutDuring(t, func() (err error) {
		created, err = c.WorkOrders.CreateWorkOrder(ctx, &runstatusv1.CreateWorkOrderRequest{ProjectId: project, WorkflowId: "once"})
		return err
	})
	if err != nil {
		t.Fatalf("not retried: %v", err)
	}
	listed, err := c.WorkOrders.ListWorkOrders(ctx, &runstatusv1.ListWorkOrdersRequest{ProjectId: project})
	if err != nil {
		t.Fatal(err)
	}
	if len(listed.GetWorkOrders()) != 1 || listed.GetWorkOrders()[0].GetId() != created.GetWorkOrder().GetId() {
		t.Errorf("work orders %v after one retried create", listed.GetWorkOrders())
	}

	// The control: without retries the same cut is UNAVAILABLE, and the server
	// did create that work order (so the retried call above was applied once).
	once, err := Dial(ctx, proxy.listener.Addr().String(), WithDialOptions(grpc.WithDisableRetry()))
	if err != nil {
		t.Fatal(err)
	}
	defer once.Close()
	if _, err := once.Projects.GetProject(ctx, &runstatusv1.GetProjectRequest{ProjectId: project}); err != nil {
		t.Fatal(err)
	}
	err = proxy.cutDuring(t, func() error {
		_, err := once.WorkOrders.CreateWorkOrder(ctx, &runstatusv1.CreateWorkOrderRequest{ProjectId: project, WorkflowId: "once"})
		return err
	})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("a cut call without retries: %v, want UNAVAILABLE", err)
	}
	listed, err = c.WorkOrders.ListWorkOrders(ctx, &runstatusv1.ListWorkOrdersRequest{ProjectId: project})
	if err != nil {
		t.Fatal(err)
	}
	if len(listed.GetWorkOrders()) != 2 {
		t.Errorf("%d work orders after a cut call that was not retried, want 2", len(listed.GetWorkOrders()))
	}

	// The lease handle's reports alike: one claim, one start, though retried.
	leases, err := c.Claim(ctx, project, "go-live", 1)
	if err != nil || len(leases) != 1 {
		t.Fatalf("claim: %v %v", leases, err)
	}
	// A second StartRun would be refused (RUNNING to RUNNING): the retry is answered as the first.
	var started *runstatusv1.StartRunResponse
	err = proxy.cutDuring(t, func() (err error) {
		started, err = leases[0].StartRun(ctx)
		return err
	})
	if err != nil || started.GetRun().GetStatus() != runstatusv1.RunStatus_RUN_STATUS_RUNNING {
		t.Fatalf("StartRun retried: %v %v", started, err)
	}
}

func TestLiveFieldViolations(t *testing.T) {
	c := liveClient(t, liveAddress(t))
	ctx := liveContext(t)
	_, err := c.Workflows.CreateWorkflow(ctx, &runstatusv1.CreateWorkflowRequest{Workflow: &runstatusv1.Workflow{
		Id: "bad-edges", Steps: []*runstatusv1.Step{{Id: "a"}},
		Edges: []*runstatusv1.Edge{
			{SourceStepId: "a", TargetStepId: "zz", Condition: runstatusv1.EdgeCondition_EDGE_CONDITION_ALWAYS},
			{SourceStepId: "a", TargetStepId: "a"}, // no condition
		},
	}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("got %v, want INVALID_ARGUMENT", err)
	}
	var fields []string
	for _, v := range FieldViolations(err) {
		if v.GetDescription() == "" {
			t.Errorf("violation of %s has no description", v.GetField())
		}
		fields = append(fields, v.GetField())
	}
	if !slices.Contains(fields, "workflow.edges[0].target_step_id") || !slices.Contains(fields, "workflow.edges[1].condition") {
		t.Errorf("field violations %v", fields)
	}
}

func TestLiveTokensAndNotificationsAreReachable(t *testing.T) {
	c := liveClient(t, liveAddress(t))
	ctx := liveContext(t)
	caller, err := c.Tokens.GetCallerToken(ctx, &runstatusv1.GetCallerTokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(caller.GetAllowedMethods(), "runstatus.v1.WorkerService.ClaimRuns") {
		t.Errorf("GetCallerToken: %v", caller)
	}
	if _, err := c.Tokens.ListTokens(ctx, &runstatusv1.ListTokensRequest{}); err != nil {
		t.Error(err)
	}
	// NotificationService round trip (the server must allow private webhook
	// addresses, --notify-allow-private, for the loopback URL).
	project := liveProject(ctx, t, c)
	created, err := c.Notifications.CreateNotificationSubscription(ctx, &runstatusv1.CreateNotificationSubscriptionRequest{
		Subscription: &runstatusv1.NotificationSubscription{ProjectId: project, Name: "go-live", Target: &runstatusv1.NotificationTarget{
			Kind: &runstatusv1.NotificationTarget_Webhook{Webhook: &runstatusv1.WebhookTarget{Url: "http://127.0.0.1:9/hook"}},
		}},
	})
	if err != nil {
		t.Fatalf("CreateNotificationSubscription: %v %v", err, FieldViolations(err))
	}
	id := created.GetSubscription().GetId()
	listed, err := c.Notifications.ListNotificationSubscriptions(ctx, &runstatusv1.ListNotificationSubscriptionsRequest{ProjectId: project})
	if err != nil || len(listed.GetSubscriptions()) != 1 || listed.GetSubscriptions()[0].GetId() != id {
		t.Errorf("ListNotificationSubscriptions: %v %v", listed, err)
	}
	if _, err := c.Notifications.DeleteNotificationSubscription(ctx, &runstatusv1.DeleteNotificationSubscriptionRequest{SubscriptionId: id}); err != nil {
		t.Error(err)
	}
	_, err = c.Notifications.GetNotificationSubscription(ctx, &runstatusv1.GetNotificationSubscriptionRequest{SubscriptionId: id})
	if ReasonOf(err) != runstatusv1.ErrorReason_ERROR_REASON_NOTIFICATION_SUBSCRIPTION_NOT_FOUND {
		t.Errorf("a deleted subscription: %v", err)
	}
}

// TestLiveWatchCursorExpired needs a server whose --request-id-seconds is 1, so
// a project may keep its cancelled work orders for a second (it skips on
// another): the pruner deletes one with its events, and a watch from the
// cursor before them ends with ErrCursorExpired.
func TestLiveWatchCursorExpired(t *testing.T) {
	c := liveClient(t, liveAddress(t))
	ctx := liveContext(t)
	project := liveProject(ctx, t, c)
	_, err := c.Projects.UpdateProject(ctx, &runstatusv1.UpdateProjectRequest{
		Project: &runstatusv1.Project{Id: project, Retention: &runstatusv1.RetentionPolicy{Statuses: []*runstatusv1.StatusRetention{{
			Status: runstatusv1.RunStatus_RUN_STATUS_CANCELLED, Keep: durationpb.New(time.Second)}}}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"retention"}},
	})
	if status.Code(err) == codes.InvalidArgument {
		t.Skipf("the server keeps request ids longer than a second: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	runID := liveWorkOrder(ctx, t, c, project, []string{"a"}, nil, nil)
	workOrderID := getRun(ctx, t, c, runID).GetWorkOrderId()
	if _, err := c.WorkOrders.CancelRun(ctx, &runstatusv1.CancelRunRequest{RunId: runID, Reason: "to be pruned"}); err != nil {
		t.Fatal(err)
	}
	var old string
	for item, err := range c.Watch(ctx, &runstatusv1.WatchWorkOrdersRequest{ProjectId: project}) {
		if err != nil {
			t.Fatal(err)
		}
		old = item.GetCursor()
		break
	}
	for {
		_, err := c.WorkOrders.GetWorkOrder(ctx, &runstatusv1.GetWorkOrderRequest{WorkOrderId: workOrderID})
		if status.Code(err) == codes.NotFound {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the cancelled work order was not pruned: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var last error
	for _, err := range c.Watch(ctx, &runstatusv1.WatchWorkOrdersRequest{ProjectId: project, AfterCursor: old}) {
		last = err
		break
	}
	var expired *CursorExpiredError
	if !errors.Is(last, ErrCursorExpired) || !errors.As(last, &expired) || expired.OldestCursor == "" {
		t.Fatalf("a watch after a pruned cursor ended with %v", last)
	}
}

// TestLiveWatchBatched: a watch that asks for batches yields the same events,
// in the same order and with the same cursors, as one that does not; a watch
// stopped in the middle of a batch resumes from its last cursor with the rest.
func TestLiveWatchBatched(t *testing.T) {
	c := liveClient(t, liveAddress(t))
	ctx := liveContext(t)
	project := liveProject(ctx, t, c)
	var last string
	for range 7 {
		last = liveWorkOrder(ctx, t, c, project, []string{"a"}, nil, nil)
	}
	// take reads a watch's first n events (n < 0: up to the last work order's).
	take := func(req *runstatusv1.WatchWorkOrdersRequest, n int) []*runstatusv1.WatchWorkOrdersResponse {
		t.Helper()
		var got []*runstatusv1.WatchWorkOrdersResponse
		for item, err := range c.Watch(ctx, req) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, item)
			if len(got) == n || (n < 0 && item.GetEvent().GetRunId() == last) {
				break
			}
		}
		return got
	}
	same := func(what string, got, want []*runstatusv1.WatchWorkOrdersResponse) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d events, want %d", what, len(got), len(want))
		}
		for i := range want {
			if !proto.Equal(got[i].GetEvent(), want[i].GetEvent()) || got[i].GetCursor() != want[i].GetCursor() || len(got[i].GetEvents()) != 0 {
				t.Errorf("%s: event %d is %v, want %v", what, i, got[i], want[i])
			}
		}
	}
	want := take(&runstatusv1.WatchWorkOrdersRequest{ProjectId: project}, -1)
	if len(want) < 7 {
		t.Fatalf("the unbatched watch saw %d events", len(want))
	}
	batching := Batching(3, 50*time.Millisecond)
	same("batched", take(&runstatusv1.WatchWorkOrdersRequest{ProjectId: project, Batching: batching}, len(want)), want)

	// The server did send them three to a message.
	streamCtx, stop := context.WithCancel(ctx)
	stream, err := c.WorkOrders.WatchWorkOrders(streamCtx, &runstatusv1.WatchWorkOrdersRequest{ProjectId: project, Batching: batching})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := stream.Recv()
	stop()
	if err != nil {
		t.Fatal(err)
	}
	if len(raw.GetEvents()) != 3 || raw.GetEvent() != nil || raw.GetCursor() != want[2].GetCursor() {
		t.Fatalf("the first batched message: %v", raw)
	}

	// Stopped after the second batch's middle event: its cursor resumes with the rest.
	stopped := take(&runstatusv1.WatchWorkOrdersRequest{ProjectId: project, Batching: batching}, 5)
	same("stopped", stopped, want[:5])
	resumed := take(&runstatusv1.WatchWorkOrdersRequest{ProjectId: project, Batching: batching,
		AfterCursor: stopped[4].GetCursor()}, len(want)-5)
	same("resumed", resumed, want[5:])
}
