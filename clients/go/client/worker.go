package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	runstatusv1 "github.com/runstatus/runstatus/clients/go/runstatus/v1"
)

// StepFunc executes one step of a workflow. It receives the state its
// upstream step passed on (the work order's input for a root step) and returns
// the state to pass downstream; nil passes its input on unchanged. The state
// is JSON-like: what structpb.NewStruct takes, numbers read back as float64.
//
// An error or a panic fails the step: it is reported with ReportOf, so the
// server classifies it (return a *StepError to name it, with a subtype and
// severity). The steps downstream of a failed step receive its input state
// with an "error" entry ({"name": ..., "message": ...}).
//
// ctx is cancelled when the server answers a heartbeat with stop (the run was
// cancelled, or has otherwise ended); context.Cause(ctx) is then ErrStopped.
// A step should give up soon after.
type StepFunc func(ctx context.Context, state map[string]any) (map[string]any, error)

// Condition tells whether an EXPRESSION edge's expression holds on a state.
type Condition func(state map[string]any) bool

// ErrStopped is the cause of a step's context being cancelled when the server
// said to stop work on its run.
var ErrStopped = errors.New("runstatus: the server asked this worker to stop the run")

// RunOutcome is how a run the Worker executed ended.
type RunOutcome struct {
	// RunID is the run's id.
	RunID string
	// Status is the run's status as the server decided it.
	Status runstatusv1.RunStatus
	// Executed is the step ids the worker started, in order.
	Executed []string
}

// Worker claims runs, executes a StepFunc per step along the workflow's
// edges, heartbeats each run in the background and reports every step's
// outcome for the server to classify: the Go counterpart of the Python
// client's runstatus.Worker.
//
//	w := client.NewWorker(rs, "go-worker-1")
//	w.Step("fetch", func(ctx context.Context, state map[string]any) (map[string]any, error) {
//		return map[string]any{"patient": state["patient_id"]}, nil
//	})
//	outcomes, err := w.RunUntilIdle(ctx)
//
// Register steps and conditions before running. A Worker executes one run at
// a time; run several Workers for more.
//
// Each run is an OpenTelemetry span ("run <workflow id>") and each step a span
// beneath it ("step <step id>"), current while the step's calls (heartbeats
// included) are made and in the StepFunc's ctx. A failed step's span has its
// error and the server's classification (runstatus.classification.status,
// .error_type, .rule, .aborts_run) and the status ERROR; the run's span ends
// with runstatus.run_status, in ERROR unless the run succeeded or was
// cancelled. With no tracer provider set they are no-ops.
type Worker struct {
	client *Client
	// ID names the worker to the server (ClaimRuns' worker_id).
	ID string
	// ProjectID is the project whose runs it claims; empty: any project.
	ProjectID string
	// PollInterval is how long Run waits after finding nothing to claim; 0: 1 s.
	PollInterval time.Duration
	// Logger receives what the worker notes (a failed heartbeat, a run the
	// server ended); nil: slog.Default().
	Logger *slog.Logger
	// TracerProvider makes the run and step spans; nil: the client's
	// (WithTracerProvider), else OpenTelemetry's global provider.
	TracerProvider trace.TracerProvider

	steps      map[string]StepFunc
	conditions map[string]Condition
}

// NewWorker makes a worker named id over c, claiming from any project.
func NewWorker(c *Client, id string) *Worker {
	return &Worker{client: c, ID: id, steps: map[string]StepFunc{}, conditions: map[string]Condition{}}
}

// Step registers the function that executes the step stepID.
func (w *Worker) Step(stepID string, fn StepFunc) { w.steps[stepID] = fn }

// Condition registers how to evaluate an EXPRESSION edge whose expression is
// this text. An EXPRESSION edge with no registered condition is not followed.
func (w *Worker) Condition(expression string, fn Condition) { w.conditions[expression] = fn }

// RunOnce claims up to maxRuns pending runs (0 means 1) and executes them one
// after another; none if nothing was pending. An error is a call that failed
// other than by the server ending a run (FAILED_PRECONDITION is an outcome).
func (w *Worker) RunOnce(ctx context.Context, maxRuns int) ([]RunOutcome, error) {
	leases, err := w.client.Claim(ctx, w.ProjectID, w.ID, maxRuns)
	if err != nil {
		return nil, err
	}
	var outcomes []RunOutcome
	for _, lease := range leases {
		outcome, err := w.Execute(ctx, lease)
		if err != nil {
			return outcomes, err
		}
		outcomes = append(outcomes, outcome)
	}
	return outcomes, nil
}

// RunUntilIdle claims and executes runs, one at a time, until none is pending.
func (w *Worker) RunUntilIdle(ctx context.Context) ([]RunOutcome, error) {
	var outcomes []RunOutcome
	for {
		batch, err := w.RunOnce(ctx, 1)
		outcomes = append(outcomes, batch...)
		if err != nil || len(batch) == 0 {
			return outcomes, err
		}
	}
}

// Run claims and executes runs until ctx is done (then it returns nil),
// waiting PollInterval whenever nothing is pending. It returns the first error
// RunOnce returns.
func (w *Worker) Run(ctx context.Context) error {
	poll := w.PollInterval
	if poll <= 0 {
		poll = time.Second
	}
	for ctx.Err() == nil {
		batch, err := w.RunOnce(ctx, 1)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(poll):
			}
		}
	}
	return nil
}

// errEnded is how the run loop learns that the server ended the run.
var errEnded = errors.New("the run was ended by the server")

// Execute runs one claimed run: starts it, executes its plan while a goroutine
// heartbeats it, completes it. A run the server ended meanwhile (cancelled,
// killed by a timeout, lost) ends early, with the status the server gave it.
func (w *Worker) Execute(ctx context.Context, lease *Lease) (RunOutcome, error) {
	run := lease.Claimed().GetRun()
	ctx, span := workerTracer(w.TracerProvider, w.client).Start(ctx, "run "+run.GetWorkflowId(), trace.WithAttributes(
		attribute.String("runstatus.run_id", run.GetId()),
		attribute.String("runstatus.work_order_id", run.GetWorkOrderId()),
		attribute.String("runstatus.project_id", run.GetProjectId()),
		attribute.String("runstatus.workflow_id", run.GetWorkflowId()),
		attribute.Int("runstatus.workflow_version", int(run.GetWorkflowVersion())),
		attribute.Int("runstatus.run_number", int(run.GetNumber())),
		attribute.String("runstatus.worker_id", w.ID),
	))
	outcome, err := w.executeIn(ctx, span, lease)
	runEnded(span, outcome.Status, err)
	return outcome, err
}

// executeIn is Execute inside the run's span.
func (w *Worker) executeIn(ctx context.Context, span trace.Span, lease *Lease) (RunOutcome, error) {
	outcome := RunOutcome{RunID: lease.RunID(), Status: lease.Claimed().GetRun().GetStatus()}
	stepCtx, stopSteps := context.WithCancelCause(ctx)
	defer stopSteps(nil)
	var stopAsked atomic.Bool
	// The span a heartbeat is made in: the running step's, else the run's.
	var current atomic.Pointer[trace.SpanContext]
	runSpan := span.SpanContext()
	current.Store(&runSpan)
	beating, stopBeating := context.WithCancel(ctx)
	beaten := make(chan struct{})
	go func() {
		defer close(beaten)
		w.heartbeat(beating, lease, current.Load, func() { stopAsked.Store(true); stopSteps(ErrStopped) })
	}()
	defer func() { stopBeating(); <-beaten }()

	final, err := w.execute(ctx, stepCtx, lease, stopAsked.Load, &outcome, &current)
	if err == nil {
		outcome.Status = final
		return outcome, nil
	}
	if !errors.Is(err, errEnded) && status.Code(err) != codes.FailedPrecondition {
		return outcome, err
	}
	w.logger().Info("run ended by the server", "run_id", lease.RunID(), "reason", err)
	run, err := w.client.WorkOrders.GetRun(ctx, &runstatusv1.GetRunRequest{RunId: lease.RunID()})
	if err != nil {
		return outcome, err
	}
	outcome.Status = run.GetRun().GetStatus()
	return outcome, nil
}

// execute is the run loop: it returns the run's final status, or an error
// (errEnded or FAILED_PRECONDITION when the server ended the run).
func (w *Worker) execute(ctx, stepCtx context.Context, lease *Lease, stopAsked func() bool,
	outcome *RunOutcome, current *atomic.Pointer[trace.SpanContext]) (runstatusv1.RunStatus, error) {
	if _, err := lease.StartRun(ctx); err != nil {
		return 0, err
	}
	claimed := lease.Claimed()
	input := claimed.GetInput().AsMap()
	var queue []branch
	for _, s := range starts(claimed.GetRun(), claimed.GetWorkflow()) {
		if s.previous == nil {
			queue = append(queue, branch{s.stepID, "", input})
			continue
		}
		// A retry's start step led to by a reused step run gets its output (the input if none).
		state := s.previous.GetOutput().AsMap()
		if len(state) == 0 {
			state = input
		}
		queue = append(queue, branch{s.stepID, s.previous.GetId(), state})
	}
	for len(queue) > 0 {
		if stopAsked() {
			return 0, errEnded
		}
		b := queue[0]
		queue = queue[1:]
		outcome.Executed = append(outcome.Executed, b.stepID)
		answer, state, err := w.step(ctx, stepCtx, lease, b, stopAsked, current)
		if err != nil {
			return 0, err
		}
		if answer.GetRunStatus() != runstatusv1.RunStatus_RUN_STATUS_RUNNING {
			return answer.GetRunStatus(), nil // an abort ended the run at once
		}
		holds := func(e *runstatusv1.Edge) bool { return w.holds(e, state) }
		for _, target := range nextSteps(claimed.GetWorkflow(), answer.GetStepRun(), holds) {
			queue = append(queue, branch{target, answer.GetStepRun().GetId(), state})
		}
	}
	answer, err := lease.CompleteRun(ctx, nil)
	if err != nil {
		return 0, err
	}
	return answer.GetRun().GetStatus(), nil
}

// branch is a step to execute, reached from previousStepRunID (empty: a
// root), with the state passed on to it.
type branch struct {
	stepID, previousStepRunID string
	state                     map[string]any
}

// step executes one step in a span of its own: starts it, runs its function,
// reports how it ended. It returns the server's answer and the state to pass
// on, or an error (errEnded when the server said to stop meanwhile).
func (w *Worker) step(ctx, stepCtx context.Context, lease *Lease, b branch, stopAsked func() bool,
	current *atomic.Pointer[trace.SpanContext]) (*runstatusv1.CompleteStepResponse, map[string]any, error) {
	ctx, span := workerTracer(w.TracerProvider, w.client).Start(ctx, "step "+b.stepID, trace.WithAttributes(
		attribute.String("runstatus.run_id", lease.RunID()), attribute.String("runstatus.step_id", b.stepID)))
	defer span.End()
	stepSpan := span.SpanContext()
	runSpan := current.Swap(&stepSpan)
	defer current.Store(runSpan)

	started, err := lease.StartStep(ctx, b.stepID, b.previousStepRunID)
	if err != nil {
		return nil, nil, err
	}
	stepRunID := started.GetStepRun().GetId()
	span.SetAttributes(attribute.String("runstatus.step_run_id", stepRunID))

	state, output, failure := w.invoke(trace.ContextWithSpan(stepCtx, span), b.stepID, maps.Clone(b.state))
	if stopAsked() {
		return nil, nil, errEnded // the server takes no report any more
	}
	var report *runstatusv1.ErrorReport
	if failure != nil {
		report = ReportOf(failure)
		state = make(map[string]any, len(b.state)+1)
		maps.Copy(state, b.state)
		state["error"] = map[string]any{"name": report.GetName(), "message": report.GetMessage()}
	}
	answer, err := lease.CompleteStep(ctx, stepRunID, output, report)
	if failure != nil {
		stepFailed(span, report, answer.GetClassification()) // no classification if the report failed
	}
	if err != nil {
		return nil, nil, err
	}
	return answer, state, nil
}

// invoke runs the step's function: the state it passes on and its output, or
// the error (or panic) it failed with.
func (w *Worker) invoke(ctx context.Context, stepID string, state map[string]any) (next map[string]any, output *structpb.Struct, failure error) {
	fn := w.steps[stepID]
	if fn == nil {
		return nil, nil, &unregisteredError{stepID: stepID}
	}
	defer func() {
		if value := recover(); value != nil {
			next, output, failure = nil, nil, newPanicError(value, debug.Stack())
		}
	}()
	result, err := fn(ctx, state)
	if err != nil {
		return nil, nil, err
	}
	if result == nil {
		result = state
	}
	output, err = structpb.NewStruct(result)
	if err != nil {
		return nil, nil, fmt.Errorf("step %q returned a state that is not JSON-like: %w", stepID, err)
	}
	return result, output, nil
}

// holds evaluates an EXPRESSION edge by its registered condition.
func (w *Worker) holds(e *runstatusv1.Edge, state map[string]any) bool {
	evaluate := w.conditions[e.GetExpression()]
	if evaluate == nil {
		w.logger().Warn("no condition registered for an expression; edge not followed", "expression", e.GetExpression())
		return false
	}
	return evaluate(state)
}

// heartbeat beats until ctx is done or the server says stop (then it calls
// stop and returns), each beat in the span in() names (the running step's). A
// failed beat is logged and retried at the next one.
func (w *Worker) heartbeat(ctx context.Context, lease *Lease, in func() *trace.SpanContext, stop func()) {
	ticker := time.NewTicker(lease.HeartbeatInterval())
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		answer, err := lease.Heartbeat(trace.ContextWithSpanContext(ctx, *in()))
		if err != nil {
			if ctx.Err() == nil {
				w.logger().Warn("heartbeat failed", "run_id", lease.RunID(), "error", err)
			}
			continue
		}
		if answer.GetStop() {
			stop()
			return
		}
	}
}

func (w *Worker) logger() *slog.Logger {
	if w.Logger != nil {
		return w.Logger
	}
	return slog.Default()
}
