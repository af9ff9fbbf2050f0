/**
 * OpenTelemetry, when its API (`@opentelemetry/api`, an optional peer dependency) is
 * installed; without it, nothing: the Worker's spans (a span per run, "run <workflow>", and
 * per step, "step <step id>", each active while its calls are made; a step's error recorded
 * on its span with the server's classification; a run's span ended with its status). The
 * calls' trace context is client.ts's `traceContext` interceptor, which reads the active span
 * through {@link openTelemetry}.
 *
 * The API is loaded at first use, synchronously (it is CommonJS under Node: the same module
 * instance an application's `import` gets), and not tried again if it is missing. Its types
 * are named here only, and index.ts does not export this module: no declaration of the
 * package names them, so a program without the API type-checks against the package.
 *
 * @module
 */

import { createRequire } from "node:module";

import type * as otel from "@opentelemetry/api";

import type { Classification } from "./gen/runstatus/v1/error_pb.js";
import { RunStatus } from "./gen/runstatus/v1/status_pb.js";
import { errorTypeEnumName, runStatusName } from "./statusTable.js";

let loaded: typeof otel | null | undefined;

/** OpenTelemetry's API, or null when it is not installed. */
export function openTelemetry(): typeof otel | null {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)("@opentelemetry/api") as typeof otel;
    } catch {
      loaded = null;
    }
  }
  return loaded;
}

// The Worker's spans. `tracer` is undefined without the API: then no span is made.

/** A span of the Worker's; undefined when none is made. */
export type WorkerSpan = otel.Span | undefined;

/** The Worker's tracer, of `provider` (default: OpenTelemetry's global one); undefined without the API. */
export function workerTracer(provider?: { getTracer(name: string): unknown }): otel.Tracer | undefined {
  const api = openTelemetry();
  if (api === null) return undefined;
  const tracer = provider?.getTracer("runstatus.worker") as otel.Tracer | undefined;
  return tracer ?? api.trace.getTracer("runstatus.worker");
}

/**
 * `fn` run with a new span active (its calls' server spans are the span's children), the
 * span ended when `fn` settles. An error leaving `fn` is not recorded: the Worker records a
 * step's error itself, as reported.
 */
export function inSpan<T>(
  tracer: otel.Tracer | undefined,
  name: string,
  attributes: otel.Attributes,
  fn: (span: WorkerSpan) => Promise<T>,
): Promise<T> {
  if (tracer === undefined) return fn(undefined);
  return tracer.startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await fn(span);
    } finally {
      span.end();
    }
  });
}

/** A step's error on its span (as reported), with the server's classification when it answered. */
export function stepError(
  span: WorkerSpan,
  error: { name: string; message: string; stack: string },
  classification: Classification | undefined,
): void {
  const api = openTelemetry();
  if (span === undefined || api === null) return;
  span.recordException(error);
  span.setStatus({ code: api.SpanStatusCode.ERROR, message: `${error.name}: ${error.message}`.slice(0, 500) });
  if (classification !== undefined) {
    span.setAttributes({
      "runstatus.classification.status": runStatusName(classification.status),
      "runstatus.classification.error_type": errorTypeEnumName(classification.errorType),
      "runstatus.classification.rule": classification.rule,
      "runstatus.classification.aborts_run": classification.abortsRun,
    });
  }
}

/** A run's span ends with the run's status: in error unless it succeeded or was cancelled. */
export function runEnded(span: WorkerSpan, status: RunStatus): void {
  const api = openTelemetry();
  if (span === undefined || api === null) return;
  const name = runStatusName(status);
  span.setAttribute("runstatus.run_status", name);
  if (status !== RunStatus.SUCCESS && status !== RunStatus.CANCELLED) {
    span.setStatus({ code: api.SpanStatusCode.ERROR, message: name });
  }
}
