// Package client is the Go client of runstatus, a gRPC service that tracks
// workflow runs and classifies every error a worker reports into a run status.
//
// Dial connects; the Client holds a generated client for each of the seven
// services (Classifier, Workflows, Projects, WorkOrders, Worker, Tokens,
// Notifications), whose request and response messages are in package
// runstatusv1 (github.com/runstatus/runstatus/clients/go/runstatus/v1).
//
//	rs, err := client.Dial(ctx, "127.0.0.1:50051")
//	if err != nil { ... }
//	defer rs.Close()
//	got, err := rs.Classifier.Classify(ctx, &runstatusv1.ClassifyRequest{...})
//	fmt.Println(client.Chip(got.GetClassification().GetStatus()))
//
// # Safe defaults
//
// Dial's connection retries a call that fails UNAVAILABLE (a server restart, a
// lost connection) up to 5 times, and gives every mutating request without a
// request_id a new one (FillRequestID), so the server applies a retried call
// once. A restarted server is reconnected to within 5 s; to wait for it rather
// than fail, pass grpc.WaitForReady(true) to a call, with a deadline.
//
// # Workers
//
// Worker runs workflows: it claims runs, calls the StepFunc registered for each
// step along the workflow's edges, heartbeats each run in the background, and
// reports every step's result or error for the server to classify. When a
// heartbeat answers stop (the run was cancelled), the running step's context
// is cancelled. A worker that drives its own engine uses the layer below:
// Client.Claim hands out a Lease per run, whose StartRun, StartStep,
// CompleteStep, CompleteRun and Heartbeat fill in the run id, lease token and a
// request id. ReportOf and StepError say how an error is reported (name,
// subtype, severity).
//
// # Traces
//
// Every call carries the current span's W3C trace context through
// OpenTelemetry's gRPC instrumentation (otelgrpc's client stats handler, which
// Dial installs): a CLIENT span per call, whose child a server started with
// --otel makes its own span of the call. The Worker makes a span per run and
// per step; see Worker. The spans belong to OpenTelemetry's global tracer
// provider, or to WithTracerProvider's. Until a provider is set they are
// no-ops and nothing is sent.
//
// # Watching
//
// Client.Watch is an iterator over the event log (iter.Seq2) that resumes from
// its cursor when the stream breaks, so a server restart loses and repeats
// nothing. Batching(maxEvents, maxDelay) in the request asks the server for
// several events per message; Watch still yields them one by one, each with
// its own cursor.
//
// # Errors
//
// A call's error is a gRPC status. ErrorInfo is its google.rpc.ErrorInfo
// (reason and metadata, e.g. "current_status"); ReasonOf is that reason as the
// contract's runstatusv1.ErrorReason, to branch on; FieldViolations lists the
// wrong fields of an INVALID_ARGUMENT (google.rpc.BadRequest). ParseReason and
// WireReason convert between ErrorInfo.reason ("RUN_ENDED") and the enum
// (ERROR_REASON_RUN_ENDED).
//
//	_, err = lease.Heartbeat(ctx)
//	if client.ReasonOf(err) == runstatusv1.ErrorReason_ERROR_REASON_LEASE_MISMATCH { ... }
//
// # Status table
//
// StatusInfo, Chip, Label, IsTerminal, AbortsRun, StatusOf and ErrorTypeName
// read the status table from the generated descriptors (the
// runstatus.v1.status_info and runstatus.v1.error_type_info enum-value
// options), so it is never re-typed here.
package client
