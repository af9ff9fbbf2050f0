// Traced worker: a Worker whose runs and steps are OpenTelemetry spans, its
// calls carrying their trace context to the server (issue 32).
//
//	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 go run ./cmd/traced-worker 127.0.0.1:50051
//
// With OTEL_EXPORTER_OTLP_ENDPOINT set it exports its spans over OTLP/gRPC as
// the standard OTEL_* variables say (OTEL_SERVICE_NAME, default
// runstatus-go-worker; OTEL_TRACES_SAMPLER; OTEL_BSP_*); without it, tracing
// is off. It runs one work order of a workflow whose second step fails, so the
// trace shows the error and how the server classified it. Against a server
// started with --otel, the server's spans of the calls are in the same trace.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/runstatus/runstatus/clients/go/client"
	runstatusv1 "github.com/runstatus/runstatus/clients/go/runstatus/v1"
)

func main() {
	os.Exit(run())
}

// run returns the exit status once the spans still batched are flushed.
func run() int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stop, err := startTracing(ctx)
	if err != nil {
		log.Print(err)
		return 1
	}
	defer func() {
		if err := stop(context.Background()); err != nil {
			log.Print(err)
		}
	}()
	if err := work(ctx, os.Args[1]); err != nil {
		log.Print(err)
		return 1
	}
	return 0
}

// startTracing makes OpenTelemetry's global tracer provider export over
// OTLP/gRPC, when OTEL_EXPORTER_OTLP_ENDPOINT is set; the client's calls and
// the Worker's spans use the global provider. It returns what flushes and
// stops it.
func startTracing(ctx context.Context) (func(context.Context) error, error) {
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" {
		return func(context.Context) error { return nil }, nil
	}
	exporter, err := otlptracegrpc.New(ctx) // endpoint, headers, TLS from OTEL_EXPORTER_OTLP_*
	if err != nil {
		return nil, err
	}
	// The service's name, unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say (later wins).
	res, err := resource.New(ctx, resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", "runstatus-go-worker")), resource.WithFromEnv())
	if err != nil {
		return nil, err
	}
	// The sampler (OTEL_TRACES_SAMPLER) and the batch (OTEL_BSP_*) are read from the environment.
	provider := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	otel.SetTracerProvider(provider)
	return provider.Shutdown, nil
}

// work runs one work order of a two-step workflow, the second step failing.
func work(ctx context.Context, address string) error {
	rs, err := client.Dial(ctx, address)
	if err != nil {
		return err
	}
	defer rs.Close()

	_, err = rs.Workflows.CreateWorkflow(ctx, &runstatusv1.CreateWorkflowRequest{Workflow: &runstatusv1.Workflow{
		Id:    "go-traced",
		Steps: []*runstatusv1.Step{{Id: "fetch"}, {Id: "save"}},
		Edges: []*runstatusv1.Edge{{SourceStepId: "fetch", TargetStepId: "save",
			Condition: runstatusv1.EdgeCondition_EDGE_CONDITION_ON_SUCCESS}},
	}})
	if err != nil {
		return err
	}
	created, err := rs.WorkOrders.CreateWorkOrder(ctx, &runstatusv1.CreateWorkOrderRequest{WorkflowId: "go-traced"})
	if err != nil {
		return err
	}

	w := client.NewWorker(rs, "go-traced-worker")
	w.ProjectID = created.GetWorkOrder().GetProjectId()
	w.Step("fetch", func(ctx context.Context, state map[string]any) (map[string]any, error) {
		return map[string]any{"patient": "Ada"}, nil
	})
	w.Step("save", func(ctx context.Context, state map[string]any) (map[string]any, error) {
		// The step's span is current in ctx: spans made here are its children.
		return nil, client.NewStepError("TypeError", "", "", errors.New("ward is not a string"))
	})
	outcomes, err := w.RunUntilIdle(ctx)
	if err != nil {
		return err
	}
	for _, o := range outcomes {
		run, err := rs.WorkOrders.GetRun(ctx, &runstatusv1.GetRunRequest{RunId: o.RunID})
		if err != nil {
			return err
		}
		// The server remembers the trace its StartRun was in (when it traced it: --otel).
		fmt.Println(o.RunID, client.Chip(o.Status), o.Status, "trace:", run.GetRun().GetTraceId())
	}
	return nil
}
