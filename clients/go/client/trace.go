package client

// Traces (issue 32): every call carries the caller's W3C trace context, through
// OpenTelemetry's gRPC instrumentation (otelgrpc's client stats handler, which
// Dial installs), so that the server's span of the call is a child of the
// caller's; the Worker makes a span per run and per step. Without a tracer
// provider (OpenTelemetry's global one is a no-op until the program sets one)
// the spans are no-ops and no traceparent is sent; a call that nothing could
// trace skips the instrumentation altogether (gated): off costs next to nothing.

import (
	"context"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	runstatusv1 "github.com/runstatus/runstatus/clients/go/runstatus/v1"
)

// WithTracerProvider makes the client's calls (a CLIENT span each) and its
// Workers' runs and steps spans of tp. Without it, OpenTelemetry's global
// provider, a no-op until the program calls otel.SetTracerProvider.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracerProvider = tp }
}

// WithPropagator sets how a call carries its trace context. The default is
// W3C traceparent and tracestate (what the server reads) and baggage, not the
// global propagator, which is a no-op until the program sets one.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(o *options) { o.propagator = p }
}

// w3c is the default propagator: W3C trace context, as the server reads it.
var w3c = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// tracingDialOption is otelgrpc's client stats handler: a CLIENT span per call,
// its traceparent in the call's metadata.
func (o *options) tracingDialOption() grpc.DialOption {
	p := o.propagator
	if p == nil {
		p = w3c
	}
	handler := []otelgrpc.Option{otelgrpc.WithPropagators(p)}
	if o.tracerProvider != nil {
		handler = append(handler, otelgrpc.WithTracerProvider(o.tracerProvider))
	}
	return grpc.WithStatsHandler(gated{Handler: otelgrpc.NewClientHandler(handler...), always: o.tracerProvider != nil})
}

// OpenTelemetry's global providers as they start, no-ops until the program
// sets its own.
var (
	unsetTracers = otel.GetTracerProvider()
	unsetMeters  = otel.GetMeterProvider()
)

// gated is otelgrpc's handler, skipped for a call that nothing could trace or
// measure: no span is current, the client was given no tracer provider, and
// the global providers are still the no-ops. otelgrpc would make a no-op span
// and send nothing, at some 15 allocations a call (BenchmarkCallTracing).
type gated struct {
	stats.Handler
	always bool
}

// instrumented marks a call's context as handed to otelgrpc.
type instrumented struct{}

func (g gated) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	if !g.always && !trace.SpanContextFromContext(ctx).IsValid() &&
		otel.GetTracerProvider() == unsetTracers && otel.GetMeterProvider() == unsetMeters {
		return ctx
	}
	return context.WithValue(g.Handler.TagRPC(ctx, info), instrumented{}, true)
}

func (g gated) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if ctx.Value(instrumented{}) != nil {
		g.Handler.HandleRPC(ctx, s)
	}
}

// workerTracer is the tracer of a Worker's run and step spans (the scope name
// the Python Worker uses): tp's, else the client's, else the global provider's.
func workerTracer(tp trace.TracerProvider, c *Client) trace.Tracer {
	if tp == nil {
		tp = c.tracerProvider
	}
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer("runstatus.worker", trace.WithInstrumentationVersion(Version))
}

// stepFailed records a step's error on its span as the server was told it
// (the report's name, message and stack) and, when the server answered, how it
// classified it; the span's status is ERROR.
func stepFailed(span trace.Span, report *runstatusv1.ErrorReport, c *runstatusv1.Classification) {
	if !span.IsRecording() {
		return
	}
	exception := []attribute.KeyValue{
		attribute.String("exception.type", report.GetName()),
		attribute.String("exception.message", report.GetMessage()),
	}
	if report.GetStack() != "" {
		exception = append(exception, attribute.String("exception.stacktrace", report.GetStack()))
	}
	span.AddEvent("exception", trace.WithAttributes(exception...))
	span.SetStatus(codes.Error, utf8Head(report.GetName()+": "+report.GetMessage(), 500))
	if c != nil {
		span.SetAttributes(
			attribute.String("runstatus.classification.status", c.GetStatus().String()),
			attribute.String("runstatus.classification.error_type", c.GetErrorType().String()),
			attribute.String("runstatus.classification.rule", c.GetRule()),
			attribute.Bool("runstatus.classification.aborts_run", c.GetAbortsRun()),
		)
	}
}

// runEnded ends a run's span with the run's status: in error unless it
// succeeded or was cancelled. A run the worker could not go on with (err: a
// call failed) ends in error with that error instead.
func runEnded(span trace.Span, status runstatusv1.RunStatus, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, utf8Head(err.Error(), 500))
		span.End()
		return
	}
	span.SetAttributes(attribute.String("runstatus.run_status", status.String()))
	if status != runstatusv1.RunStatus_RUN_STATUS_SUCCESS && status != runstatusv1.RunStatus_RUN_STATUS_CANCELLED {
		span.SetStatus(codes.Error, status.String())
	}
	span.End()
}
