package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os/signal"
	"syscall"

	"github.com/runstatus/runstatus/clients/go/client"
	runstatusv1 "github.com/runstatus/runstatus/clients/go/runstatus/v1"
)

// A worker that executes two steps and runs until SIGTERM.
func ExampleWorker() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	rs, err := client.Dial(ctx, "127.0.0.1:50051")
	if err != nil {
		log.Fatal(err)
	}
	defer rs.Close()

	w := client.NewWorker(rs, "go-worker-1")
	w.Step("fetch", func(ctx context.Context, state map[string]any) (map[string]any, error) {
		return map[string]any{"patient": state["patient_id"]}, nil
	})
	w.Step("notify", func(ctx context.Context, state map[string]any) (map[string]any, error) {
		if state["patient"] == nil {
			// Reported as the server's TypeError: the run goes on along ON_FAILURE edges.
			return nil, &client.StepError{Name: "TypeError", Err: errors.New("no patient")}
		}
		return nil, nil
	})
	if err := w.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// The low-level lease handle: a worker with an engine of its own reports each step.
func ExampleLease() {
	ctx := context.Background()
	rs, err := client.Dial(ctx, "127.0.0.1:50051")
	if err != nil {
		log.Fatal(err)
	}
	defer rs.Close()

	leases, err := rs.Claim(ctx, "", "my-engine", 1)
	if err != nil || len(leases) == 0 {
		return
	}
	lease := leases[0]
	if _, err := lease.StartRun(ctx); err != nil {
		log.Fatal(err)
	}
	started, err := lease.StartStep(ctx, "fetch", "")
	if err != nil {
		log.Fatal(err)
	}
	failure := client.ReportOf(&client.StepError{Name: "RuntimeError", Subtype: "TypeError",
		Severity: runstatusv1.ErrorSeverity_ERROR_SEVERITY_FAIL, Err: errors.New("x is not a function")})
	answer, err := lease.CompleteStep(ctx, started.GetStepRun().GetId(), nil, failure)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(answer.GetClassification().GetStatus()) // RUN_STATUS_FAILED
	done, err := lease.CompleteRun(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(client.Chip(done.GetRun().GetStatus()), done.GetRun().GetStatusReason())
}

// Follow a project's events, resuming after a restart; keep the cursor to
// resume from after a restart of this program too.
func ExampleClient_Watch() {
	ctx := context.Background()
	rs, err := client.Dial(ctx, "127.0.0.1:50051")
	if err != nil {
		log.Fatal(err)
	}
	defer rs.Close()

	for item, err := range rs.Watch(ctx, &runstatusv1.WatchWorkOrdersRequest{ProjectId: "default", FromNow: true}) {
		if err != nil {
			log.Fatal(err)
		}
		e := item.GetEvent()
		fmt.Println(e.GetWorkOrderId(), client.Chip(e.GetStatus()), e.GetStatus(), item.GetCursor())
	}
}

// The wrong fields of a request the server refused.
func ExampleFieldViolations() {
	ctx := context.Background()
	rs, err := client.Dial(ctx, "127.0.0.1:50051")
	if err != nil {
		log.Fatal(err)
	}
	defer rs.Close()

	_, err = rs.Workflows.CreateWorkflow(ctx, &runstatusv1.CreateWorkflowRequest{Workflow: &runstatusv1.Workflow{Id: "bad id!"}})
	for _, v := range client.FieldViolations(err) {
		fmt.Printf("%s: %s\n", v.GetField(), v.GetDescription()) // workflow.id: must be 1-128 letters, ...
	}
}
