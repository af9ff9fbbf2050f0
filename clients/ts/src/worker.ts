/**
 * Workers, engine-agnostic, in two layers (the Python client's `Worker`, mirrored):
 *
 * - {@link Lease}: the reports of one claimed run (startRun, startStep, completeStep,
 *   completeRun, heartbeat), each carrying the run id, the lease token and, for a report, a
 *   request id made once per report, so a retried report is applied once. {@link claim} hands
 *   out leases.
 * - {@link Worker}: step functions registered by step id (and conditions by expression), runs
 *   claimed and executed along the workflow's edges, a heartbeat in the background at the
 *   interval the claim says; when a heartbeat answers `stop` (a cancel, a timeout) the running
 *   step's AbortSignal fires and the run ends with the status the server gave it.
 *
 *     const worker = new Worker(rs, { workerId: "ts-1" })
 *       .step("fetch", async (state, { signal }) => ({ ...state, patient: await lookup(state.id, signal) }))
 *       .step("notify", (state) => ({ ...state, notified: true }));
 *     await worker.runUntilIdle();          // or worker.run(signal)
 *
 * A step receives the state its upstream step passed on (the work order's input for a root)
 * and returns the state to pass downstream. A step that throws is reported with the error's
 * name, and its `subtype` and `severity` if it has them, for the server to classify: a
 * TypeError fails the step (the run goes on along ON_FAILURE/ALWAYS edges), a ReferenceError
 * crashes the run (it ends at once). A failing step's downstream steps receive its input state
 * with an `error` entry.
 *
 * With OpenTelemetry in use (`@opentelemetry/api` installed, an SDK registered) the worker
 * makes a span per run ("run <workflow id>") and per step ("step <step id>"), as the Python
 * client's does; a step's calls are made, and its function runs, with its span active, so the
 * server's spans of those calls are its children. A step's error is recorded on its span, with
 * the server's classification; a run's span ends with its status.
 *
 * @module
 */

import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";

import type { Clients } from "./client.js";
import { newRequestId, sleep } from "./defaults.js";
import { ErrorSeverity, ErrorSource, type ErrorReportSchema } from "./gen/runstatus/v1/error_pb.js";
import { RunStatus } from "./gen/runstatus/v1/status_pb.js";
import type {
  ClaimedRun,
  CompleteRunResponse,
  CompleteStepResponse,
  HeartbeatResponse,
  StartRunResponse,
  StartStepResponse,
  WorkerService,
} from "./gen/runstatus/v1/worker_service_pb.js";
import type { Edge, Step } from "./gen/runstatus/v1/workflow_pb.js";
import { nextSteps, starts } from "./plan.js";
import { inSpan, runEnded, stepError, workerTracer, type WorkerSpan } from "./trace.js";

/** An error report (runstatus.v1.ErrorReport) as a call takes it. */
export type ErrorReportInit = MessageInitShape<typeof ErrorReportSchema>;

/** The worker service's client, which a lease reports through. */
export type WorkerClient = Client<typeof WorkerService>;

/**
 * One claimed run's reports. Every call fills in the run id and the lease token; every report
 * (all but heartbeat) a new request id, made once per report: the client's retries of that
 * report resend it, so the server applies it once.
 */
export class Lease {
  /**
   * A lease on `runId` held with `leaseToken` (as a claim handed it out; "" for none, to make
   * a call the server will refuse). `claimed` is the claim it came from, if any.
   */
  constructor(
    /** The worker service the reports go to. */
    readonly worker: WorkerClient,
    /** The run this lease is on. */
    readonly runId: string,
    /** The token the claim handed out, sent with every report. */
    readonly leaseToken: string,
    /** The claim (run, workflow, input, heartbeat interval), if the lease came from one. */
    readonly claimed?: ClaimedRun,
  ) {}

  /** The lease of a run a claim handed out. */
  static of(worker: WorkerClient, claimed: ClaimedRun): Lease {
    return new Lease(worker, claimed.run?.id ?? "", claimed.leaseToken, claimed);
  }

  /** StartRun: the claimed run starts (RUNNING). */
  startRun(): Promise<StartRunResponse> {
    return this.worker.startRun({ ...this.auth(), requestId: newRequestId() });
  }

  /**
   * StartStep: a step of the run starts, at a root or a retry's start step (no
   * `previousStepRunId`), or along an edge from the step run that led to it.
   */
  startStep(stepId: string, previousStepRunId = ""): Promise<StartStepResponse> {
    return this.worker.startStep({ ...this.auth(), stepId, previousStepRunId, requestId: newRequestId() });
  }

  /** CompleteStep: a step run ended, with its output, or with the error it failed with. */
  completeStep(stepRunId: string, result: { output?: JsonObject; error?: ErrorReportInit } = {}): Promise<CompleteStepResponse> {
    return this.worker.completeStep({
      ...this.auth(),
      stepRunId,
      requestId: newRequestId(),
      ...(result.output !== undefined ? { output: result.output } : {}),
      ...(result.error !== undefined ? { error: result.error } : {}),
    });
  }

  /** CompleteRun: the run ended; with `error`, an error of the run itself (not of a step). */
  completeRun(result: { error?: ErrorReportInit } = {}): Promise<CompleteRunResponse> {
    return this.worker.completeRun({
      ...this.auth(),
      requestId: newRequestId(),
      ...(result.error !== undefined ? { error: result.error } : {}),
    });
  }

  /** Heartbeat: extends the lease; `stop` says no report will be accepted any more. */
  heartbeat(): Promise<HeartbeatResponse> {
    return this.worker.heartbeat(this.auth());
  }

  private auth(): { runId: string; leaseToken: string } {
    return { runId: this.runId, leaseToken: this.leaseToken };
  }
}

/** What {@link claim} asks for. */
export interface ClaimOptions {
  /** The project whose runs to claim; "" (the default): any project. */
  projectId?: string;
  /** Who claims, shown on the run. */
  workerId: string;
  /** At most this many runs (default 1, at most 100). */
  maxRuns?: number;
}

/** ClaimRuns, with a request id: a lease on each pending run handed out ([] if none). */
export async function claim(worker: WorkerClient, options: ClaimOptions): Promise<Lease[]> {
  const { runs } = await worker.claimRuns({
    projectId: options.projectId ?? "",
    workerId: options.workerId,
    maxRuns: options.maxRuns ?? 1,
    requestId: newRequestId(),
  });
  return runs.map((claimed) => Lease.of(worker, claimed));
}

/** What a step function is given besides the state. */
export interface StepContext {
  /** Fires when the server asks this worker to stop the run (a heartbeat answered `stop`). */
  signal: AbortSignal;
  /** The step's id. */
  stepId: string;
  /** The step as the workflow defines it (its `body` and `adaptor`, for an engine that runs them). */
  step: Step | undefined;
  /** The step run this execution reports as. */
  stepRunId: string;
  /** The run's lease (its id, token, and the claim with the workflow and input). */
  lease: Lease;
}

/**
 * Executes one step: returns the state to pass downstream (a non-object result passes the
 * input state on), or throws to fail the step.
 */
export type StepFunction = (state: JsonObject, context: StepContext) => unknown;

/** Whether an EXPRESSION edge's expression holds on a state. */
export type Condition = (state: JsonObject) => boolean;

/**
 * A step that failed yet produced a state to pass downstream, as some engines do (OpenFn's
 * runtime keeps the state of a step that failed). `error` is what is reported.
 */
export class StepFailure extends Error {
  /** The step failed with `error` (reported as the step's error), leaving `state`. */
  constructor(
    /** What the step failed with: reported as its error. */
    readonly error: unknown,
    /** The state to pass to the steps downstream. */
    readonly state: JsonObject,
  ) {
    super(String((error as { message?: unknown } | null)?.message ?? error));
    this.name = "StepFailure";
  }
}

/**
 * A step this worker cannot run (no function registered for it): the runtime's fault, not
 * the job's, so it is reported with source RUNTIME (an EXCEPTION unless its name says more).
 */
export class UnregisteredStepError extends Error {
  /** An error naming the step. */
  constructor(stepId: string) {
    super(`no function is registered for step ${JSON.stringify(stepId)}`);
    this.name = "UnregisteredStepError";
  }
}

/** What a worker did with one run. */
export interface RunOutcome {
  /** The run's id. */
  runId: string;
  /** The status the run ended with (as the server decided it). */
  status: RunStatus;
  /** The step ids started, in order. */
  executed: string[];
}

/** Where a worker writes what it notices (a failed heartbeat, a run the server ended). */
export interface WorkerLogger {
  /** Something worth knowing. */
  info(message: string): void;
  /** Something that went wrong and was survived. */
  warn(message: string): void;
}

/** How a {@link Worker} works. */
export interface WorkerOptions {
  /** Who claims, shown on each run (default "ts-worker"). */
  workerId?: string;
  /** The project whose runs to claim; "" (the default): any project the caller may see. */
  projectId?: string;
  /** Runs the steps that have no function registered (an engine running each step's body). */
  defaultStep?: StepFunction;
  /** How a thrown error is reported (default {@link errorReport}). */
  report?: (error: unknown) => ErrorReportInit;
  /** Default: warnings to console.warn, nothing else. */
  logger?: WorkerLogger;
  /**
   * OpenTelemetry's TracerProvider for the spans of runs and steps (default: the global one).
   * Without `@opentelemetry/api` installed no span is made.
   */
  tracerProvider?: TracerProviderLike;
}

/**
 * An OpenTelemetry `TracerProvider`, as far as a {@link Worker} uses one (named here so that
 * the package's declarations do not need `@opentelemetry/api`, an optional peer dependency).
 */
export interface TracerProviderLike {
  /** The tracer of an instrumentation scope (the Worker's is "runstatus.worker"). */
  getTracer(name: string): unknown;
}

/** A run being executed: its lease and what the heartbeat says. */
interface Execution {
  lease: Lease;
  claimed: ClaimedRun;
  signal: AbortSignal;
  outcome: RunOutcome;
}

/** A step to execute, the step run that led to it, and the state it receives. */
interface Branch {
  stepId: string;
  previousStepRunId: string;
  state: JsonObject;
}

/** Thrown inside the run loop when the server asked to stop: the run ends as the server says. */
class RunEnded extends Error {}

/** The shortest wait between heartbeats, whatever the claim says (as the Python worker's). */
const MIN_HEARTBEAT_MS = 50;

/**
 * Claims runs and executes them: a registered function per step, the workflow's edges
 * followed as the server's rules say, every step reported, a heartbeat in the background.
 */
export class Worker {
  /** Who claims. */
  readonly workerId: string;
  /** The project whose runs it claims ("" any). */
  readonly projectId: string;
  private readonly steps = new Map<string, StepFunction>();
  private readonly conditions = new Map<string, Condition>();
  private readonly report: (error: unknown) => ErrorReportInit;
  private readonly logger: WorkerLogger;
  private readonly tracer: ReturnType<typeof workerTracer>;

  /** A worker over `rs`'s worker and work order services. */
  constructor(
    /** The clients it claims, reports and reads runs through. */
    readonly rs: Pick<Clients, "worker" | "workOrders">,
    private readonly options: WorkerOptions = {},
  ) {
    this.workerId = options.workerId ?? "ts-worker";
    this.projectId = options.projectId ?? "";
    this.report = options.report ?? errorReport;
    this.logger = options.logger ?? { info: () => {}, warn: (m) => console.warn(m) };
    this.tracer = workerTracer(options.tracerProvider);
  }

  /** Registers the function that executes a step; returns the worker, to chain. */
  step(stepId: string, fn: StepFunction): this {
    this.steps.set(stepId, fn);
    return this;
  }

  /** Registers how to evaluate an EXPRESSION edge's text on a state; returns the worker. */
  condition(expression: string, fn: Condition): this {
    this.conditions.set(expression, fn);
    return this;
  }

  /** Claims up to `maxRuns` pending runs and executes them one after another; [] if none. */
  async runOnce(maxRuns = 1): Promise<RunOutcome[]> {
    const leases = await claim(this.rs.worker, { projectId: this.projectId, workerId: this.workerId, maxRuns });
    const outcomes: RunOutcome[] = [];
    for (const lease of leases) outcomes.push(await this.execute(lease.claimed!));
    return outcomes;
  }

  /** Executes runs until a claim finds none pending. */
  async runUntilIdle(): Promise<RunOutcome[]> {
    const outcomes: RunOutcome[] = [];
    for (let batch = await this.runOnce(); batch.length; batch = await this.runOnce()) outcomes.push(...batch);
    return outcomes;
  }

  /**
   * Executes runs until `signal` aborts, polling every `pollMs` when none is pending. The
   * signal is checked between runs: a run in progress is finished first.
   */
  async run(signal: AbortSignal, pollMs = 1000): Promise<void> {
    while (!signal.aborted) {
      if ((await this.runOnce()).length) continue;
      await sleep(pollMs, signal).catch(() => {});
    }
  }

  /**
   * Executes one claimed run: starts it, executes its steps, completes it. A refusal (the run
   * cancelled, killed by a timeout, or otherwise ended by the server) ends it early, with the
   * status the server gave it.
   */
  async execute(claimed: ClaimedRun): Promise<RunOutcome> {
    const lease = Lease.of(this.rs.worker, claimed);
    const stop = new AbortController();
    const run: Execution = {
      lease,
      claimed,
      signal: stop.signal,
      outcome: { runId: lease.runId, status: claimed.run?.status ?? RunStatus.UNSPECIFIED, executed: [] },
    };
    // Begun outside the run's span, as the Python worker's: the heartbeats are not in its trace.
    const heartbeat = new Heartbeat(lease, heartbeatMs(claimed), stop, this.logger);
    const r = claimed.run;
    const attributes = {
      "runstatus.run_id": lease.runId,
      "runstatus.work_order_id": r?.workOrderId ?? "",
      "runstatus.project_id": r?.projectId ?? "",
      "runstatus.workflow_id": r?.workflowId ?? "",
      "runstatus.workflow_version": r?.workflowVersion ?? 0,
      "runstatus.run_number": r?.number ?? 0,
      "runstatus.worker_id": this.workerId,
    };
    return inSpan(this.tracer, `run ${r?.workflowId ?? ""}`, attributes, async (span) => {
      try {
        await lease.startRun();
        let status = await this.executeSteps(run);
        if (status === undefined) status = (await lease.completeRun()).run?.status ?? RunStatus.UNSPECIFIED;
        run.outcome.status = status;
      } catch (e) {
        const refused = e instanceof RunEnded || (e instanceof ConnectError && e.code === Code.FailedPrecondition);
        if (!refused) throw e;
        this.logger.info(`run ${lease.runId} ended by the server: ${(e as Error).message}`);
        const { run: now } = await this.rs.workOrders.getRun({ runId: lease.runId });
        run.outcome.status = now?.status ?? RunStatus.UNSPECIFIED;
      } finally {
        heartbeat.stop();
      }
      runEnded(span, run.outcome.status);
      return run.outcome;
    });
  }

  /** Runs the plan; the run's status if a step aborted it, else undefined. */
  private async executeSteps(run: Execution): Promise<RunStatus | undefined> {
    const { lease, claimed } = run;
    const workflow = claimed.workflow!;
    const input = claimed.input ?? {};
    const queue = starts(claimed.run!, workflow).map(({ stepId, previous }): Branch => ({
      stepId,
      previousStepRunId: previous?.id ?? "",
      // A retry's start step gets the output of the reused step run leading to it.
      state: previous === undefined ? input : nonEmpty(previous.output) ?? input,
    }));
    while (queue.length > 0) {
      const branch = queue.shift()!;
      if (run.signal.aborted) throw new RunEnded("the server asked this worker to stop");
      const attributes = { "runstatus.run_id": lease.runId, "runstatus.step_id": branch.stepId };
      const { answer, state, stepRunId } = await inSpan(this.tracer, `step ${branch.stepId}`, attributes, (span) =>
        this.executeStep(run, branch, span),
      );
      if (answer.runStatus !== RunStatus.RUNNING) return answer.runStatus; // an abort ended the run at once
      for (const target of nextSteps(workflow, answer.stepRun!, (edge) => this.holds(edge, state))) {
        queue.push({ stepId: target, previousStepRunId: stepRunId, state });
      }
    }
    return undefined;
  }

  /** One step: started, its function run, completed; the server's answer and the state it left. */
  private async executeStep(
    run: Execution,
    branch: Branch,
    span: WorkerSpan,
  ): Promise<{ answer: CompleteStepResponse; state: JsonObject; stepRunId: string }> {
    const { lease, claimed, signal, outcome } = run;
    const { stepRun } = await lease.startStep(branch.stepId, branch.previousStepRunId);
    const stepRunId = stepRun?.id ?? "";
    span?.setAttribute("runstatus.step_run_id", stepRunId);
    outcome.executed.push(branch.stepId);
    let state: JsonObject;
    let result: { output?: JsonObject; error?: ErrorReportInit };
    let cause: unknown;
    try {
      const fn = this.steps.get(branch.stepId) ?? this.options.defaultStep;
      if (fn === undefined) throw new UnregisteredStepError(branch.stepId);
      const step = claimed.workflow!.steps.find((s) => s.id === branch.stepId);
      const returned = await fn({ ...branch.state }, { signal, stepId: branch.stepId, step, stepRunId, lease });
      state = isJsonObject(returned) ? returned : branch.state;
      result = { output: state };
    } catch (e) {
      cause = e instanceof StepFailure ? e.error : e;
      result = { error: this.report(cause) };
      state = e instanceof StepFailure ? e.state : { ...branch.state, error: { name: errorName(cause), message: errorMessage(cause) } };
    }
    // After a stop no report is accepted: the run ends as the server says.
    if (signal.aborted) throw new RunEnded("the server asked this worker to stop");
    const answer = await lease.completeStep(stepRunId, result);
    const reported = result.error;
    if (reported !== undefined) {
      const name = reported.name || errorName(cause);
      stepError(span, { name, message: reported.message ?? errorMessage(cause), stack: reported.stack ?? "" }, answer.classification);
    }
    return { answer, state, stepRunId };
  }

  /** Whether an EXPRESSION edge's expression holds on the state, by its registered condition. */
  private holds(edge: Edge, state: JsonObject): boolean {
    const evaluate = this.conditions.get(edge.expression);
    if (evaluate === undefined) {
      this.logger.warn(`no condition registered for expression ${JSON.stringify(edge.expression)}; edge not followed`);
      return false;
    }
    return Boolean(evaluate(state));
  }
}

/** Heartbeats a run until stopped; aborts the run's controller when the server says stop. */
class Heartbeat {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;

  constructor(
    private readonly lease: Lease,
    private readonly intervalMs: number,
    private readonly stop_: AbortController,
    private readonly logger: WorkerLogger,
  ) {
    this.schedule();
  }

  private schedule(): void {
    this.timer = setTimeout(() => void this.beat(), this.intervalMs);
  }

  private async beat(): Promise<void> {
    if (this.stopped) return;
    try {
      const answer = await this.lease.heartbeat();
      if (answer.stop) {
        this.stop_.abort(new Error(`the server asked to stop run ${this.lease.runId} (${RunStatus[answer.status]})`));
        return;
      }
    } catch (e) {
      // A missed heartbeat is retried at the next beat.
      this.logger.warn(`heartbeat for run ${this.lease.runId} failed: ${(e as Error).message}`);
    }
    if (!this.stopped) this.schedule();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}

function heartbeatMs(claimed: ClaimedRun): number {
  const d = claimed.heartbeatInterval;
  const ms = d === undefined ? 0 : Number(d.seconds) * 1000 + d.nanos / 1e6;
  return Math.max(ms, MIN_HEARTBEAT_MS);
}

function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function nonEmpty(value: JsonObject | undefined): JsonObject | undefined {
  return value !== undefined && Object.keys(value).length > 0 ? value : undefined;
}

// Reports: a thrown value as the server classifies it.

const SEVERITIES: Record<string, ErrorSeverity> = {
  fail: ErrorSeverity.FAIL,
  crash: ErrorSeverity.CRASH,
  kill: ErrorSeverity.KILL,
  exception: ErrorSeverity.EXCEPTION,
};

/**
 * A thrown value as an ErrorReport: its name (an Error's `name`, or its class's when the name
 * is the generic "Error"), message and stack, language "javascript", source JOB (RUNTIME for an
 * {@link UnregisteredStepError}). A wrapper error may say what it wraps and how bad it is,
 * the way OpenFn's runtime errors do: a `subtype` property (the wrapped class's name) and a
 * `severity` ("fail", "crash", "kill", "exception", or an ErrorSeverity).
 */
export function errorReport(error: unknown): ErrorReportInit {
  const e = (typeof error === "object" && error !== null ? error : {}) as {
    subtype?: unknown;
    severity?: unknown;
    stack?: unknown;
  };
  return {
    name: utf8Head(errorName(error), 256),
    message: utf8Head(errorMessage(error), 60_000),
    language: "javascript",
    source: error instanceof UnregisteredStepError ? ErrorSource.RUNTIME : ErrorSource.JOB,
    stack: utf8Tail(typeof e.stack === "string" ? e.stack : "", 200_000),
    subtype: typeof e.subtype === "string" ? utf8Head(e.subtype, 256) : "",
    severity: severity(e.severity),
  };
}

/** An error's severity property as the enum; anything the server does not know is none. */
function severity(value: unknown): ErrorSeverity {
  if (typeof value === "string") return SEVERITIES[value.trim().toLowerCase()] ?? ErrorSeverity.UNSPECIFIED;
  if (typeof value === "number" && ErrorSeverity[value] !== undefined) return value as ErrorSeverity;
  return ErrorSeverity.UNSPECIFIED;
}

/** The name a thrown value is reported by: `class JobError extends Error {}` is "JobError". */
function errorName(error: unknown): string {
  if (typeof error !== "object" || error === null) return "Error";
  const { name, constructor } = error as { name?: unknown; constructor?: { name?: unknown } };
  const className = typeof constructor?.name === "string" && constructor.name !== "Object" ? constructor.name : "";
  if (typeof name === "string" && name && (name !== "Error" || !className)) return name;
  return className || "Error";
}

function errorMessage(error: unknown): string {
  if (typeof error === "object" && error !== null && "message" in error) return String(error.message);
  return String(error);
}

// The server limits error fields in UTF-8 bytes, so cut by bytes, never inside a character.
function utf8Head(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, "utf8");
  return bytes.length <= maxBytes ? text : bytes.subarray(0, maxBytes).toString("utf8").replace(/\uFFFD+$/, "");
}

function utf8Tail(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, "utf8");
  return bytes.length <= maxBytes ? text : bytes.subarray(bytes.length - maxBytes).toString("utf8").replace(/^\uFFFD+/, "");
}
