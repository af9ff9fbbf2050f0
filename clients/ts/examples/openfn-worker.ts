// runstatus-openfn-worker: a runstatus worker that runs each step's job code with OpenFn's own
// runtime (@openfn/runtime, pinned in package.json) and reports every step to runstatus, each
// error the way OpenFn's ws-worker reports it: `subtype || type || name` as the name, with the
// runtime's `subtype` and `severity` passed on, so the server classifies it by the seed table.
//
//   npm run --silent runstatus-openfn-worker -- ADDRESS --project P [--until-idle]
//       [--worker-id ID] [--timeout-ms MS] [--state-limit-mb MB] [--adaptor NAME=PATH ...] [--token T]
//
// A step's `body` is its job code as an ES module exporting an array of operations, the form
// OpenFn's compiler produces (`export default [fn(...), ...]`); `--adaptor` maps an import
// specifier (e.g. @openfn/language-http) to an installed adaptor's folder. The client's Worker
// does the rest: steps run from the run's start step (or the workflow's roots), each on the
// state its upstream step left; ON_SUCCESS/ON_FAILURE/ALWAYS edges are followed as the server's
// rule says, EXPRESSION edges are not (no condition is registered); a heartbeat answering
// `stop` (a cancel) ends the run. The runtime needs --experimental-vm-modules, which the npm
// script passes.
//
// Job code may also throw outside the runtime's promise chain: an exception in a timer's
// callback, a promise it leaves rejected. OpenFn's engine catches those in the job's worker
// thread (process.on('uncaughtException'), engine-multi's worker/thread/helpers.ts) and reports
// them as `new ExecutionError(err)` with its severity set to "crash"; this worker does the same
// (`uncaughtException` and `unhandledRejection`, attributed to the job whose code threw), so
// the step is reported at once (the run ends CRASHED: the explicit severity beats the alias
// table's default for ExecutionError) and the worker goes on to the next run instead of dying
// and leaving the run to go LOST when its lease runs out. The job's abandoned code is not
// stopped (the engine ends its thread; this worker runs jobs in its own process), and what
// it throws later is logged and ignored.
import { AsyncLocalStorage } from "node:async_hooks";
import { parseArgs } from "node:util";

import { createMockLogger } from "@openfn/logger";
import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";

import { createClients, StepFailure, Worker, type Clients } from "../src/index";
import { ErrorSeverity, ErrorSource, type ErrorReportSchema } from "../src/gen/runstatus/v1/error_pb";
import { RunStatus } from "../src/gen/runstatus/v1/status_pb";

export interface OpenFnOptions {
  /** The runtime's time limit for one step, in milliseconds (OpenFn's TimeoutError). */
  timeoutMs?: number;
  /** The runtime's limit on a step's final state (OpenFn's StateTooLargeError). */
  stateLimitMb?: number;
  /** Import specifier -> adaptor folder. */
  adaptors?: Record<string, string>;
}

/** What one step's job code did: the state it left, or the error it ended with. */
export interface StepResult {
  state: JsonObject;
  error?: OpenFnError;
}

/** The fields of an error thrown by OpenFn's runtime or engine that a report carries. */
export interface OpenFnError {
  name?: string;
  type?: string;
  subtype?: string;
  severity?: string;
  message?: string;
  stack?: string;
  constructor?: { name?: string };
}

// @openfn/runtime's run(), typed here: the package's own declarations import @openfn/lexicon,
// whose published types do not pass this project's strict library check. The specifier is a
// plain string so that TypeScript does not load them.
type RunOptions = {
  logger?: unknown;
  jobLogger?: unknown;
  stateLimitMb?: number;
  linker?: { modules?: Record<string, { path?: string; version?: string }> };
  callbacks?: { notify?: (event: string, payload: unknown) => void };
};
type Run = (
  plan: { workflow: { steps: Array<{ id: string; expression: string }> }; options?: { timeout?: number } },
  input: unknown,
  options: RunOptions,
) => Promise<unknown>;
const RUNTIME: string = "@openfn/runtime";
const { default: run } = (await import(RUNTIME)) as { default: Run };

const SEVERITIES: Record<string, ErrorSeverity> = {
  fail: ErrorSeverity.FAIL,
  crash: ErrorSeverity.CRASH,
  kill: ErrorSeverity.KILL,
  exception: ErrorSeverity.EXCEPTION,
};

/** A job being run: what its code throws outside the runtime's promise chain ends it. */
interface JobScope {
  /** Ends the job with an error its code threw asynchronously. */
  crash(error: unknown): void;
  /** Whether the job has ended (its step reported, or about to be). */
  ended: boolean;
}

// The job whose code is running: the async context of a timer or a promise created by job code
// is the job's, so an error thrown from it is attributed to that job (AsyncLocalStorage keeps
// it across timers, promises and the runtime's vm). `running` is the job under way, for an
// error whose context was lost; one job runs at a time (the Worker executes steps in turn).
const jobs = new AsyncLocalStorage<JobScope>();
let running: JobScope | undefined;
let catchAllInstalled = false;

/** Installs, once, the process's handlers for what job code throws outside its promise chain. */
function catchAsynchronousErrors(): void {
  if (catchAllInstalled) return;
  catchAllInstalled = true;
  const caught = (origin: string) => (error: unknown) => {
    const job = jobs.getStore() ?? running;
    if (job !== undefined && !job.ended) {
      job.crash(error);
      return;
    }
    // A job that already ended (its step reported) left code behind that threw: as the
    // engine, which ignores what a finished execution throws, say so and go on.
    console.error(`runstatus-openfn-worker: ${origin} after its job ended, ignored:`, error);
  };
  process.on("uncaughtException", caught("uncaught exception"));
  process.on("unhandledRejection", caught("unhandled rejection"));
}

/** What OpenFn's engine makes of an error thrown outside the job's promise chain: an
 * ExecutionError (the message and stack of the original) whose severity it sets to "crash". */
export function executionCrash(error: unknown): OpenFnError {
  const original = (typeof error === "object" && error !== null ? error : {}) as { message?: unknown; stack?: unknown };
  return {
    name: "ExecutionError",
    severity: "crash",
    message: "message" in original ? String(original.message) : String(error),
    stack: typeof original.stack === "string" ? original.stack : "",
  };
}

/** Runs one step's job code with @openfn/runtime. A `fail` error comes back as the runtime
 * reports it (the state goes on); a crash or kill is thrown by the runtime and caught here; an
 * error the job's code throws outside the runtime's promise chain (a timer, a promise left
 * rejected) ends the step at once as the engine reports it, an ExecutionError with severity
 * crash. */
export async function runJob(expression: string, input: JsonObject, options: OpenFnOptions = {}): Promise<StepResult> {
  catchAsynchronousErrors();
  let crash: (error: unknown) => void = () => {};
  const crashed = new Promise<StepResult>((resolve) => {
    crash = (error) => resolve({ state: input, error: executionCrash(error) });
  });
  const job: JobScope = { crash: (error) => crash(error), ended: false };
  running = job;
  try {
    return await Promise.race([jobs.run(job, () => runInRuntime(expression, input, options)), crashed]);
  } finally {
    job.ended = true;
    if (running === job) running = undefined;
  }
}

async function runInRuntime(expression: string, input: JsonObject, options: OpenFnOptions): Promise<StepResult> {
  let failed: OpenFnError | undefined;
  const modules = Object.fromEntries(Object.entries(options.adaptors ?? {}).map(([name, path]) => [name, { path }]));
  try {
    const state = await run(
      { workflow: { steps: [{ id: "step", expression }] }, options: { timeout: options.timeoutMs ?? 300_000 } },
      input,
      {
        logger: createMockLogger(),
        jobLogger: createMockLogger(),
        stateLimitMb: options.stateLimitMb ?? 500,
        linker: { modules },
        callbacks: {
          notify: (event: string, payload: unknown) => {
            if (event === "job-error") failed = (payload as { error?: OpenFnError }).error;
          },
        },
      },
    );
    const out = { ...(state as JsonObject) };
    delete out.errors; // the runtime's own copy of a failed step's error: reported as the error
    return failed ? { state: out, error: failed } : { state: out };
  } catch (e) {
    return { state: input, error: e as OpenFnError };
  }
}

/** An OpenFn error as runstatus hears it: named the way ws-worker names it, with the wrapped
 * class and the runtime's severity. Every error comes through the runtime: source RUNTIME. */
export function errorReport(e: OpenFnError): MessageInitShape<typeof ErrorReportSchema> {
  const name = e.subtype || e.type || e.name || e.constructor?.name || "Error";
  return {
    name: utf8Head(name, 256),
    subtype: utf8Head(e.subtype ?? "", 256),
    severity: SEVERITIES[e.severity ?? ""] ?? ErrorSeverity.UNSPECIFIED,
    source: ErrorSource.RUNTIME,
    language: "javascript",
    message: utf8Head(String(e.message ?? ""), 60_000),
    stack: utf8Head(String(e.stack ?? ""), 200_000),
  };
}

function utf8Head(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, "utf8");
  return bytes.length <= maxBytes ? text : bytes.subarray(0, maxBytes).toString("utf8").replace(/\uFFFD$/, "");
}

/**
 * A runstatus Worker whose every step runs its own job code (the step's `body`) with OpenFn's
 * runtime: the Worker claims, follows the edges (ON_SUCCESS/ON_FAILURE/ALWAYS; EXPRESSION
 * edges are not followed, no condition being registered), heartbeats and reports; a step the
 * runtime failed passes on the state the runtime left (StepFailure), reported the ws-worker way.
 */
export function openFnWorker(rs: Clients, projectId: string, workerId: string, options: OpenFnOptions = {}): Worker {
  return new Worker(rs, {
    projectId,
    workerId,
    report: (e) => errorReport(e as OpenFnError),
    defaultStep: async (state, { step }) => {
      const result = await runJob(step?.body ?? "", state, options);
      if (result.error) throw new StepFailure(result.error, result.state);
      return result.state;
    },
  });
}

/** Claims and executes runs of a project; with untilIdle, stops when none is left. */
export async function work(rs: Clients, projectId: string, workerId: string, options: OpenFnOptions & { untilIdle?: boolean } = {}):
  Promise<RunStatus[]> {
  const worker = openFnWorker(rs, projectId, workerId, options);
  if (options.untilIdle) return (await worker.runUntilIdle()).map((outcome) => outcome.status);
  await worker.run(new AbortController().signal); // until the process is stopped
  return [];
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      project: { type: "string", default: "" },
      "worker-id": { type: "string", default: `openfn-${process.pid}` },
      "until-idle": { type: "boolean", default: false },
      "timeout-ms": { type: "string" },
      "state-limit-mb": { type: "string" },
      adaptor: { type: "string", multiple: true, default: [] },
      token: { type: "string", default: process.env.RUNSTATUS_TOKEN ?? "" },
    },
  });
  const adaptors: Record<string, string> = {};
  for (const spec of values.adaptor ?? []) {
    const at = spec.indexOf("=");
    if (at <= 0) throw new Error(`--adaptor ${spec}: want NAME=PATH`);
    adaptors[spec.slice(0, at)] = spec.slice(at + 1);
  }
  const rs = createClients(positionals[0] ?? "127.0.0.1:50051", values.token ? { token: values.token } : {});
  try {
    const statuses = await work(rs, values.project ?? "", values["worker-id"] ?? "openfn", {
      untilIdle: values["until-idle"],
      adaptors,
      ...(values["timeout-ms"] ? { timeoutMs: Number(values["timeout-ms"]) } : {}),
      ...(values["state-limit-mb"] ? { stateLimitMb: Number(values["state-limit-mb"]) } : {}),
    });
    console.log(`ran ${statuses.length} run(s): ${statuses.map((s) => RunStatus[s]).join(" ")}`);
  } finally {
    rs.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
  // The runtime leaves a failed step's time-limit timer running: exit rather than wait for it.
  process.exit(0);
}
