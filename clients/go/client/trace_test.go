package client

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/durationpb"

	runstatusv1 "github.com/runstatus/runstatus/clients/go/runstatus/v1"
)

// oneRun hands out one run of a workflow a -> b (ON_SUCCESS) heartbeaten every
// 10 ms, and notes the traceparent each call carried ("" if none).
type oneRun struct {
	runstatusv1.UnimplementedWorkerServiceServer
	mu      sync.Mutex
	claimed bool
	calls   []call
	// inA is the span context step a's function found in its ctx.
	inA trace.SpanContext
}

type call struct{ method, traceparent string }

func (f *oneRun) note(ctx context.Context, method string) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{method, first(md.Get("traceparent"))})
}

func first(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[0]
}

func (f *oneRun) ClaimRuns(ctx context.Context, _ *runstatusv1.ClaimRunsRequest) (*runstatusv1.ClaimRunsResponse, error) {
	f.note(ctx, "ClaimRuns")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.claimed {
		return &runstatusv1.ClaimRunsResponse{}, nil
	}
	f.claimed = true
	return &runstatusv1.ClaimRunsResponse{Runs: []*runstatusv1.ClaimedRun{{
		Run: &runstatusv1.Run{Id: "r1", WorkOrderId: "wo1", ProjectId: "p", WorkflowId: "wf", Number: 1,
			Status: runstatusv1.RunStatus_RUN_STATUS_PENDING},
		Workflow: &runstatusv1.Workflow{Id: "wf", Steps: []*runstatusv1.Step{{Id: "a"}, {Id: "b"}},
			Edges: []*runstatusv1.Edge{{SourceStepId: "a", TargetStepId: "b",
				Condition: runstatusv1.EdgeCondition_EDGE_CONDITION_ON_SUCCESS}}},
		LeaseToken: "t", HeartbeatInterval: durationpb.New(10 * time.Millisecond),
	}}}, nil
}

func (f *oneRun) StartRun(ctx context.Context, _ *runstatusv1.StartRunRequest) (*runstatusv1.StartRunResponse, error) {
	f.note(ctx, "StartRun")
	return &runstatusv1.StartRunResponse{}, nil
}

func (f *oneRun) StartStep(ctx context.Context, req *runstatusv1.StartStepRequest) (*runstatusv1.StartStepResponse, error) {
	f.note(ctx, "StartStep")
	return &runstatusv1.StartStepResponse{StepRun: &runstatusv1.StepRun{Id: "sr-" + req.GetStepId(), StepId: req.GetStepId()}}, nil
}

func (f *oneRun) CompleteStep(ctx context.Context, req *runstatusv1.CompleteStepRequest) (*runstatusv1.CompleteStepResponse, error) {
	f.note(ctx, "CompleteStep")
	answer := &runstatusv1.CompleteStepResponse{RunStatus: runstatusv1.RunStatus_RUN_STATUS_RUNNING,
		StepRun: &runstatusv1.StepRun{Id: req.GetStepRunId(), StepId: req.GetStepRunId()[3:],
			Status: runstatusv1.RunStatus_RUN_STATUS_SUCCESS}}
	if req.GetError() != nil {
		answer.StepRun.Status = runstatusv1.RunStatus_RUN_STATUS_FAILED
		answer.Classification = &runstatusv1.Classification{Status: runstatusv1.RunStatus_RUN_STATUS_FAILED,
			ErrorType: runstatusv1.ErrorType_ERROR_TYPE_TYPE_ERROR, Rule: "seed:TypeError"}
	}
	return answer, nil
}

func (f *oneRun) CompleteRun(ctx context.Context, _ *runstatusv1.CompleteRunRequest) (*runstatusv1.CompleteRunResponse, error) {
	f.note(ctx, "CompleteRun")
	return &runstatusv1.CompleteRunResponse{Run: &runstatusv1.Run{Id: "r1", Status: runstatusv1.RunStatus_RUN_STATUS_FAILED}}, nil
}

func (f *oneRun) Heartbeat(ctx context.Context, _ *runstatusv1.HeartbeatRequest) (*runstatusv1.HeartbeatResponse, error) {
	f.note(ctx, "Heartbeat")
	return &runstatusv1.HeartbeatResponse{}, nil
}

// dialFake is a client, dialled with opts, of a oneRun served in memory; and
// the dial option that reaches it.
func dialFake(t testing.TB, opts ...Option) (*Client, *oneRun, grpc.DialOption) {
	listener := bufconn.Listen(1 << 20)
	server := grpc.NewServer()
	fake := &oneRun{}
	runstatusv1.RegisterWorkerServiceServer(server, fake)
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(server.Stop)
	dialer := grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return listener.DialContext(ctx) })
	c, err := Dial(context.Background(), "passthrough:///bufnet", append(opts, WithDialOptions(dialer))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, fake, dialer
}

// runOne runs the fake's run with a Worker over a client dialled with opts:
// step a takes 175 ms (several heartbeats happen in it), step b fails.
func runOne(t *testing.T, opts ...Option) *oneRun {
	t.Helper()
	c, fake, _ := dialFake(t, opts...)
	w := NewWorker(c, "traced")
	w.Step("a", func(ctx context.Context, state map[string]any) (map[string]any, error) {
		fake.inA = trace.SpanContextFromContext(ctx)
		time.Sleep(175 * time.Millisecond) // beats come every 50 ms at the least (Lease.HeartbeatInterval)
		return nil, nil
	})
	w.Step("b", func(context.Context, map[string]any) (map[string]any, error) {
		return nil, NewStepError("TypeError", "", "", errors.New("ward is not a string"))
	})
	outcomes, err := w.RunUntilIdle(context.Background())
	if err != nil || len(outcomes) != 1 || outcomes[0].Status != runstatusv1.RunStatus_RUN_STATUS_FAILED {
		t.Fatalf("outcomes %+v, %v", outcomes, err)
	}
	return fake
}

func attributes(s sdktrace.ReadOnlySpan) map[string]any {
	said := map[string]any{}
	for _, kv := range s.Attributes() {
		said[string(kv.Key)] = kv.Value.AsInterface()
	}
	return said
}

func TestWorkerSpansAndTheirCallsTraceContext(t *testing.T) {
	recorder := tracetest.NewSpanRecorder()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	fake := runOne(t, WithTracerProvider(provider))

	spans := recorder.Ended()
	byName := map[string][]sdktrace.ReadOnlySpan{}
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = append(byName[s.Name()], s)
		byID[s.SpanContext().SpanID()] = s
	}
	run, a, b := byName["run wf"][0], byName["step a"][0], byName["step b"][0]

	// The run's span: its attributes, its status; the step spans beneath it.
	said := attributes(run)
	if said["runstatus.run_id"] != "r1" || said["runstatus.work_order_id"] != "wo1" ||
		said["runstatus.run_status"] != "RUN_STATUS_FAILED" || said["runstatus.worker_id"] != "traced" {
		t.Errorf("run span attributes %v", said)
	}
	if run.Status().Code != codes.Error || run.Parent().IsValid() {
		t.Errorf("run span status %v, parent %v", run.Status(), run.Parent())
	}
	for _, step := range []sdktrace.ReadOnlySpan{a, b} {
		if step.Parent().SpanID() != run.SpanContext().SpanID() || step.SpanContext().TraceID() != run.SpanContext().TraceID() {
			t.Errorf("%s is not beneath the run's span", step.Name())
		}
	}
	if fake.inA.SpanID() != a.SpanContext().SpanID() {
		t.Errorf("step a's function ran in span %v, not its own", fake.inA.SpanID())
	}
	if a.Status().Code == codes.Error || attributes(a)["runstatus.step_run_id"] != "sr-a" {
		t.Errorf("step a: %v %v", a.Status(), attributes(a))
	}

	// The failed step: its error as reported, and the server's classification.
	said = attributes(b)
	if b.Status().Code != codes.Error || b.Status().Description != "TypeError: ward is not a string" ||
		said["runstatus.classification.status"] != "RUN_STATUS_FAILED" ||
		said["runstatus.classification.error_type"] != "ERROR_TYPE_TYPE_ERROR" ||
		said["runstatus.classification.rule"] != "seed:TypeError" || said["runstatus.classification.aborts_run"] != false {
		t.Errorf("step b: %v %v", b.Status(), said)
	}
	if events := b.Events(); len(events) != 1 || events[0].Name != "exception" ||
		events[0].Attributes[0].Value.AsString() != "TypeError" {
		t.Errorf("step b's events %+v", events)
	}

	// Each call is a CLIENT span beneath the span it was made in (heartbeats
	// beneath the running step's), and its traceparent names that CLIENT span.
	parentOf := map[string][]string{}
	for _, c := range fake.calls {
		if len(c.traceparent) != 55 {
			t.Fatalf("%s carried traceparent %q", c.method, c.traceparent)
		}
		version, traceID, spanID, flags := c.traceparent[:2], c.traceparent[3:35], c.traceparent[36:52], c.traceparent[53:]
		id, _ := trace.SpanIDFromHex(spanID)
		client, ok := byID[id]
		if !ok || version != "00" || flags != "01" || client.SpanContext().TraceID().String() != traceID ||
			client.SpanKind() != trace.SpanKindClient || client.Name() != "runstatus.v1.WorkerService/"+c.method {
			t.Fatalf("%s carried %s, not its CLIENT span's", c.method, c.traceparent)
		}
		parent := "none"
		if p, ok := byID[client.Parent().SpanID()]; ok {
			parent = p.Name()
		}
		if !slices.Contains(parentOf[c.method], parent) {
			parentOf[c.method] = append(parentOf[c.method], parent)
		}
	}
	want := map[string][]string{"ClaimRuns": {"none"}, "StartRun": {"run wf"}, "CompleteRun": {"run wf"},
		"StartStep": {"step a", "step b"}, "CompleteStep": {"step a", "step b"}}
	for method, parents := range want {
		if !slices.Equal(parentOf[method], parents) {
			t.Errorf("%s calls beneath %v, want %v", method, parentOf[method], parents)
		}
	}
	if !slices.Contains(parentOf["Heartbeat"], "step a") {
		t.Errorf("heartbeats beneath %v, want step a among them", parentOf["Heartbeat"])
	}
}

func TestWithoutATracerProviderNoTraceContextIsSent(t *testing.T) {
	// The global provider is OpenTelemetry's no-op: no test in this package sets it.
	fake := runOne(t)
	for _, c := range fake.calls {
		if c.traceparent != "" {
			t.Errorf("%s carried traceparent %s", c.method, c.traceparent)
		}
	}
}

func TestACallInAnotherTracersSpanCarriesItWithoutAProvider(t *testing.T) {
	// A span context from elsewhere (e.g. an incoming request's) is passed on
	// even with the no-op providers: the call's CLIENT span is a no-op with it.
	c, fake, _ := dialFake(t)
	traceID, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	spanID, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ctx := trace.ContextWithSpanContext(context.Background(),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled}))
	if _, err := c.Worker.Heartbeat(ctx, &runstatusv1.HeartbeatRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Worker.Heartbeat(context.Background(), &runstatusv1.HeartbeatRequest{}); err != nil {
		t.Fatal(err)
	}
	want := []call{{"Heartbeat", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, {"Heartbeat", ""}}
	if !slices.Equal(fake.calls, want) {
		t.Errorf("calls %v, want %v", fake.calls, want)
	}
}

// BenchmarkCallTracing is a call through Dial's client (otelgrpc installed,
// the global no-op provider, no span current) against one without otelgrpc:
// what tracing costs a call when it is off.
func BenchmarkCallTracing(b *testing.B) {
	withTracing, _, dialer := dialFake(b)
	conn, err := grpc.NewClient("passthrough:///bufnet", append(defaultDialOptions(), dialer,
		grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		b.Fatal(err)
	}
	without := New(conn)
	defer without.Close()
	for name, c := range map[string]*Client{"off": withTracing, "without-otelgrpc": without} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Worker.Heartbeat(context.Background(), &runstatusv1.HeartbeatRequest{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
