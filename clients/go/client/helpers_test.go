package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	runstatusv1 "github.com/runstatus/runstatus/clients/go/runstatus/v1"
)

// services is every service of the runstatus.v1 package, from the generated descriptors.
func services() []protoreflect.ServiceDescriptor {
	var all []protoreflect.ServiceDescriptor
	protoregistry.GlobalFiles.RangeFilesByPackage("runstatus.v1", func(f protoreflect.FileDescriptor) bool {
		for i := range f.Services().Len() {
			all = append(all, f.Services().Get(i))
		}
		return true
	})
	return all
}

func TestEveryServiceIsOnTheClientAndRetried(t *testing.T) {
	var config struct {
		MethodConfig []struct {
			Name []struct{ Service string }
		}
	}
	if err := json.Unmarshal([]byte(serviceConfig), &config); err != nil {
		t.Fatal(err)
	}
	var retried []string
	for _, n := range config.MethodConfig[0].Name {
		retried = append(retried, n.Service)
	}
	c := New(nil)
	clients := map[string]any{
		"ClassifierService": c.Classifier, "WorkflowService": c.Workflows, "ProjectService": c.Projects,
		"WorkOrderService": c.WorkOrders, "WorkerService": c.Worker, "TokenService": c.Tokens,
		"NotificationService": c.Notifications, "StatsService": c.Stats,
	}
	all := services()
	if len(all) != 8 {
		t.Errorf("%d services in runstatus.v1, want 8", len(all))
	}
	for _, s := range all {
		if !slices.Contains(retried, string(s.FullName())) {
			t.Errorf("%s is not in the retry policy", s.FullName())
		}
		if clients[string(s.Name())] == nil {
			t.Errorf("%s has no client on Client", s.Name())
		}
	}
}

func TestFillRequestIDCoversEveryMutatingRequest(t *testing.T) {
	filled := map[string]int{} // service -> requests given an id
	for _, s := range services() {
		for i := range s.Methods().Len() {
			input := s.Methods().Get(i).Input()
			if input.Fields().ByName("request_id") == nil {
				continue
			}
			req := dynamicpb.NewMessage(input)
			var sent protoreflect.Message
			invoker := func(_ context.Context, _ string, req, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
				sent = req.(*dynamicpb.Message)
				return nil
			}
			if err := FillRequestID(context.Background(), "m", req, nil, nil, invoker); err != nil {
				t.Fatal(err)
			}
			if id := sent.Get(input.Fields().ByName("request_id")).String(); !uuidV4.MatchString(id) {
				t.Errorf("%s got request_id %q", input.FullName(), id)
			}
			filled[string(s.Name())]++
		}
	}
	// Create, Update, Delete, Redeliver, SendTest; ClaimRuns and the four reports.
	if filled["NotificationService"] != 5 || filled["WorkerService"] != 5 {
		t.Errorf("requests given a request_id, by service: %v", filled)
	}
}

func TestFieldViolations(t *testing.T) {
	st, err := status.New(codes.InvalidArgument, "bad").WithDetails(
		&errdetails.ErrorInfo{Reason: "INVALID_ARGUMENT"},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "workflow.id", Description: "must be 1-128 letters"},
			{Field: "workflow.edges[0].target_step_id", Description: "no step 'zz'"},
		}},
	)
	if err != nil {
		t.Fatal(err)
	}
	var fields []string
	for _, v := range FieldViolations(fmt.Errorf("wrapped: %w", st.Err())) {
		fields = append(fields, v.GetField()+": "+v.GetDescription())
	}
	if !slices.Equal(fields, []string{"workflow.id: must be 1-128 letters", "workflow.edges[0].target_step_id: no step 'zz'"}) {
		t.Errorf("FieldViolations = %q", fields)
	}
	for _, err := range []error{nil, errors.New("plain"), status.Error(codes.NotFound, "no details")} {
		if v := FieldViolations(err); v != nil {
			t.Errorf("FieldViolations(%v) = %v", err, v)
		}
	}
}

func TestReportOf(t *testing.T) {
	if ReportOf(nil) != nil {
		t.Error("ReportOf(nil) is not nil")
	}
	wrapped := fmt.Errorf("step fetch: %w", &StepError{Name: "RuntimeError", Subtype: "TypeError",
		Severity: runstatusv1.ErrorSeverity_ERROR_SEVERITY_FAIL, HTTPStatus: 502, Err: errors.New("x is not a function")})
	r := ReportOf(wrapped)
	if r.Name != "RuntimeError" || r.Subtype != "TypeError" || r.Severity != runstatusv1.ErrorSeverity_ERROR_SEVERITY_FAIL ||
		r.HttpStatus != 502 || r.Message != "step fetch: x is not a function" || r.Language != "go" ||
		r.Source != runstatusv1.ErrorSource_ERROR_SOURCE_JOB {
		t.Errorf("ReportOf(StepError) = %v", r)
	}
	if r := ReportOf(&StepError{Err: context.DeadlineExceeded}); r.Name != "context.DeadlineExceeded" {
		t.Errorf("a StepError without a name is named %q", r.Name)
	}
	if r := ReportOf(errors.New("boom")); r.Name != "*errors.errorString" || r.Message != "boom" {
		t.Errorf("ReportOf(errors.New) = %v", r)
	}
	if r := ReportOf(&unregisteredError{stepID: "x"}); r.Source != runstatusv1.ErrorSource_ERROR_SOURCE_RUNTIME {
		t.Errorf("an unregistered step's source %v", r.Source)
	}

	// Panics: the runtime's own are "runtime.Error" (the server reads the message).
	panicked := func(f func()) (err error) {
		defer func() { err = newPanicError(recover(), []byte("stack")) }()
		f()
		return nil
	}
	var m map[string]int
	var v any = "text"
	for want, f := range map[string]func(){
		"runtime.Error":               func() { m["a"] = 1 },
		"*runtime.TypeAssertionError": func() { _ = v.(int) },
		"panic":                       func() { panic("at the disco") },
		"*errors.errorString":         func() { panic(errors.New("an error")) },
		"Custom":                      func() { panic(&StepError{Name: "Custom"}) },
	} {
		if r := ReportOf(panicked(f)); r.Name != want || r.Stack != "stack" {
			t.Errorf("panic reported as %q (stack %q), want %q", r.Name, r.Stack, want)
		}
	}

	// Cut to the server's limits in bytes, never inside a character.
	long := ReportOf(&StepError{Name: strings.Repeat("é", 200), Err: errors.New(strings.Repeat("ü", 40_000))})
	if len(long.Name) != 256 || len(long.Message) != 60_000 || !strings.HasPrefix(long.Name, "éé") {
		t.Errorf("cut to %d and %d bytes", len(long.Name), len(long.Message))
	}
	if got := utf8Head("aé", 2); got != "a" {
		t.Errorf("utf8Head cut a character: %q", got)
	}
	if got := utf8Tail("éa", 2); got != "a" {
		t.Errorf("utf8Tail cut a character: %q", got)
	}
}

func TestPlan(t *testing.T) {
	edges := func(es ...[3]any) []*runstatusv1.Edge {
		var out []*runstatusv1.Edge
		for _, e := range es {
			out = append(out, &runstatusv1.Edge{SourceStepId: e[0].(string), TargetStepId: e[1].(string), Condition: e[2].(runstatusv1.EdgeCondition),
				Expression: "x"})
		}
		return out
	}
	always := runstatusv1.EdgeCondition_EDGE_CONDITION_ALWAYS
	expression := runstatusv1.EdgeCondition_EDGE_CONDITION_EXPRESSION
	success, failed := runstatusv1.RunStatus_RUN_STATUS_SUCCESS, runstatusv1.RunStatus_RUN_STATUS_FAILED
	workflow := &runstatusv1.Workflow{
		Steps: []*runstatusv1.Step{{Id: "b"}, {Id: "a"}, {Id: "c"}, {Id: "d"}, {Id: "e"}},
		Edges: edges([3]any{"a", "c", onSuccess}, [3]any{"a", "d", onFailure}, [3]any{"b", "c", always}, [3]any{"a", "e", expression}),
	}
	var roots []string
	for _, s := range starts(&runstatusv1.Run{}, workflow) {
		roots = append(roots, s.stepID)
	}
	if !slices.Equal(roots, []string{"b", "a"}) {
		t.Errorf("roots %v, want the workflow's order", roots)
	}
	yes := func(*runstatusv1.Edge) bool { return true }
	no := func(*runstatusv1.Edge) bool { return false }
	for _, tc := range []struct {
		status runstatusv1.RunStatus
		holds  func(*runstatusv1.Edge) bool
		want   []string
	}{
		{success, yes, []string{"c", "e"}},
		{success, no, []string{"c"}},
		{failed, no, []string{"d"}},
		{runstatusv1.RunStatus_RUN_STATUS_CRASHED, yes, nil},
	} {
		if got := nextSteps(workflow, &runstatusv1.StepRun{StepId: "a", Status: tc.status}, tc.holds); !slices.Equal(got, tc.want) {
			t.Errorf("after a %s: %v, want %v", tc.status, got, tc.want)
		}
	}

	// A retry from c starts after the latest reused step run whose edge allows it.
	at := func(s int64) *timestamppb.Timestamp { return timestamppb.New(time.Unix(s, 0)) }
	run := &runstatusv1.Run{StartStepId: "c", StepRuns: []*runstatusv1.StepRun{
		{Id: "1", StepId: "a", Status: success, EndTime: at(10)},
		{Id: "2", StepId: "b", Status: success, EndTime: at(20)},
		{Id: "3", StepId: "a", Status: failed, EndTime: at(30)}, // ON_SUCCESS does not allow it
	}}
	if got := starts(run, workflow); len(got) != 1 || got[0].stepID != "c" || got[0].previous.GetId() != "2" {
		t.Errorf("retry starts %+v", got)
	}
	if got := starts(&runstatusv1.Run{StartStepId: "c"}, workflow); len(got) != 1 || got[0].previous != nil {
		t.Errorf("retry with nothing reused starts %+v", got)
	}
}

// brokenWatch streams two events per stream and then breaks with UNAVAILABLE
// (once with WATCH_TOO_SLOW), recording the cursor each stream was opened after.
type brokenWatch struct {
	runstatusv1.UnimplementedWorkOrderServiceServer
	mu      sync.Mutex
	cursors []string
	next    int64
}

func (b *brokenWatch) WatchWorkOrders(req *runstatusv1.WatchWorkOrdersRequest, stream grpc.ServerStreamingServer[runstatusv1.WatchWorkOrdersResponse]) error {
	b.mu.Lock()
	b.cursors = append(b.cursors, req.GetAfterCursor())
	opened := len(b.cursors)
	b.mu.Unlock()
	for range 2 {
		b.mu.Lock()
		b.next++
		n := b.next
		b.mu.Unlock()
		item := &runstatusv1.WatchWorkOrdersResponse{Event: &runstatusv1.Event{Sequence: n}, Cursor: fmt.Sprint("c", n)}
		if err := stream.Send(item); err != nil {
			return err
		}
	}
	if opened == 2 {
		st, _ := status.New(codes.ResourceExhausted, "too slow").WithDetails(&errdetails.ErrorInfo{Reason: "WATCH_TOO_SLOW"})
		return st.Err()
	}
	if opened == 3 {
		return status.Error(codes.PermissionDenied, "no more")
	}
	return status.Error(codes.Unavailable, "restarting")
}

func TestWatchResumesFromItsCursor(t *testing.T) {
	listener := bufconn.Listen(1 << 20)
	server := grpc.NewServer()
	fake := &brokenWatch{}
	runstatusv1.RegisterWorkOrderServiceServer(server, fake)
	go func() { _ = server.Serve(listener) }()
	defer server.Stop()
	dialer := grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return listener.DialContext(ctx) })
	c, err := Dial(context.Background(), "passthrough:///bufnet", WithDialOptions(dialer))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	var sequences []int64
	var last error
	for item, err := range c.Watch(context.Background(), &runstatusv1.WatchWorkOrdersRequest{AfterCursor: "c0", FromNow: false}) {
		if err != nil {
			last = err
			break
		}
		sequences = append(sequences, item.GetEvent().GetSequence())
	}
	if !slices.Equal(sequences, []int64{1, 2, 3, 4, 5, 6}) {
		t.Errorf("events %v", sequences)
	}
	if !slices.Equal(fake.cursors, []string{"c0", "c2", "c4"}) {
		t.Errorf("streams opened after %q", fake.cursors)
	}
	if status.Code(last) != codes.PermissionDenied {
		t.Errorf("the watch ended with %v, want the error that is not resumed", last)
	}

	// Breaking out closes the stream; a cancelled context ends the watch with its error.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range c.Watch(ctx, &runstatusv1.WatchWorkOrdersRequest{}) {
		cancel()
		break
	}
	for _, err := range c.Watch(ctx, &runstatusv1.WatchWorkOrdersRequest{}) {
		if status.Code(err) != codes.Canceled {
			t.Errorf("a watch with a cancelled context: %v", err)
		}
	}
}
