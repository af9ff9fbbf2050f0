/**
 * The TypeScript runner of the contract suite (tests/contract/README.md); it does what
 * tests/contract/runner.py does.
 *
 *     npm run --silent contract -- ADDRESS [CASES_DIR]
 *
 * Prints `ok   NAME` or `FAIL NAME: reason` per case, then `N passed, N failed`, and
 * exits 1 if any case failed. The lifecycle actions of a worker (claim, start_run,
 * start_step, complete_step, complete_run, heartbeat) go through the worker helper's
 * claim() and Lease, so the scenarios exercise what a worker built on this client calls.
 */

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";

import { create, fromJson, mergeFromJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";

import { createClients, type Clients } from "./client.js";
import { errorInfo, grpcCodeName, parseReason, wireReason } from "./errors.js";
import { ClassificationSchema, ErrorReportSchema, type ErrorReport } from "./gen/runstatus/v1/error_pb.js";
import { ErrorReason, ErrorReasonSchema } from "./gen/runstatus/v1/error_reason_pb.js";
import { ProjectSchema } from "./gen/runstatus/v1/project_pb.js";
import { claim, Lease } from "./worker.js";
import { ErrorTypeSchema, type RunStatus } from "./gen/runstatus/v1/status_pb.js";
import { EdgeConditionSchema, type EdgeCondition } from "./gen/runstatus/v1/workflow_pb.js";
import {
  abortsRun,
  chip,
  enumName,
  enumValue,
  errorTypeFromName,
  errorTypeName,
  hasAbortsRun,
  isTerminal,
  label,
  notifiesAdmin,
  runStatusFromName,
  runStatusName,
  statusInfo,
  statusOf,
} from "./statusTable.js";

const LANGUAGE = "ts";
const HERE = dirname(fileURLToPath(import.meta.url));
const DEFAULT_CASES = resolve(HERE, "..", "..", "..", "tests", "contract");

// The case files, as far as the runner reads them.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>;

class CaseFailure extends Error {}

function check(condition: unknown, message: () => string): asserts condition {
  if (!condition) throw new CaseFailure(message());
}

function load(casesDir: string, name: string): Json {
  return JSON.parse(readFileSync(join(casesDir, name), "utf8")) as Json;
}

const show = (value: unknown): string => JSON.stringify(value);

// (a) The status table and the error reasons, from this language's own descriptors.

function checkStatus(c: Json): void {
  const status = runStatusFromName(c.status as string);
  const info = statusInfo(status);
  check(info !== undefined, () => `${c.status} has no status_info option`);
  const got = {
    status: runStatusName(status),
    label: label(status),
    chip: chip(status),
    color: info.color,
    terminal: isTerminal(status),
    aborts_run: hasAbortsRun(status) ? abortsRun(status) : null,
    notifies_admin: notifiesAdmin(status),
  };
  check(isDeepStrictEqual(got, c), () => `descriptor says ${show(got)}`);
}

function checkErrorType(c: Json): void {
  const errorType = errorTypeFromName(c.error_type as string);
  const got = {
    error_type: enumName(ErrorTypeSchema, errorType),
    name: errorTypeName(errorType),
    status: runStatusName(statusOf(errorType)),
  };
  check(isDeepStrictEqual(got, c), () => `descriptor says ${show(got)}`);
}

function checkReason(c: Json): void {
  const value = ErrorReasonSchema.values.find((v) => v.name === c.reason);
  check(value !== undefined, () => `the enum has no ${c.reason}`);
  check(value.number === c.number, () => `number ${value.number}`);
  const reason = value.number as ErrorReason;
  check(wireReason(reason) === c.wire, () => `wire ${show(wireReason(reason))}`);
  const parsed = parseReason(c.wire as string);
  check(parsed === reason, () => `parses ${show(c.wire)} as ${enumName(ErrorReasonSchema, parsed)}`);
}

function checkAllReasons(table: Json): void {
  const known = ErrorReasonSchema.values.filter((v) => v.number !== 0).map((v) => v.name).sort();
  const expected = (table.reasons as Json[]).map((c) => c.reason as string).sort();
  check(isDeepStrictEqual(known, expected), () => `the enum has ${show(known)}`);
  for (const wire of table.unknown as string[]) {
    check(parseReason(wire) === ErrorReason.UNSPECIFIED, () => `${show(wire)} parsed as a known reason`);
  }
}

// (b) Classification, by the server.

async function checkClassification(clients: Clients, c: Json): Promise<void> {
  const report = fromJson(ErrorReportSchema, c.error as JsonValue);
  const answer = await clients.classifier.classify({ error: report });
  const got = answer.classification ?? create(ClassificationSchema);
  const expect = c.expect as Json;
  const actual: Json = {
    status: runStatusName(got.status),
    error_type: enumName(ErrorTypeSchema, got.errorType),
    aborts_run: got.abortsRun,
  };
  if ("rule" in expect) actual.rule = got.rule;
  check(isDeepStrictEqual(actual, expect), () => `server said ${show(actual)}`);
}

// (c) Lifecycle scenarios.

interface Tracked {
  workOrderId: string;
  runId: string;
  /** The latest run's lease: from the last claim, or one with no token before any. */
  lease: Lease;
  /** The step run id of each step id in the current run. */
  stepRuns: Map<string, string>;
}

const tracked = (clients: Clients, workOrderId: string, runId: string): Tracked => ({
  workOrderId,
  runId,
  lease: new Lease(clients.worker, runId, ""),
  stepRuns: new Map(),
});

async function runScenario(clients: Clients, scenario: Json): Promise<void> {
  const projectId = `contract-${LANGUAGE}-${randomBytes(4).toString("hex")}`;
  const project = create(ProjectSchema, { id: projectId });
  if ("project" in scenario) mergeFromJson(ProjectSchema, project, scenario.project as JsonValue);
  await clients.projects.createProject({ project });
  const workflow = scenario.workflow as { steps: string[]; edges: [string, string, string][] };
  await clients.workflows.createWorkflow({
    workflow: {
      id: "contract",
      projectId,
      steps: workflow.steps.map((id) => ({ id })),
      edges: workflow.edges.map(([source, target, condition]) => ({
        sourceStepId: source,
        targetStepId: target,
        condition: enumValue(EdgeConditionSchema, `EDGE_CONDITION_${condition}`) as EdgeCondition,
      })),
    },
  });
  const orders = new Map<string, Tracked>();
  const actions = scenario.actions as Json[];
  for (const [i, action] of actions.entries()) {
    try {
      await step(clients, projectId, orders, action);
    } catch (e) {
      throw new CaseFailure(`action ${i} (${action.do}): ${reason(e)}`);
    }
  }
}

type Outcome = [status: RunStatus | undefined, extras: Record<string, unknown>];

async function step(clients: Clients, projectId: string, orders: Map<string, Tracked>, action: Json): Promise<void> {
  const alias = action.work_order as string;
  const what = action.do as string;
  const w = orders.get(alias);

  /** Performs the action; returns the status to compare with `expect`, and extras. */
  async function call(): Promise<Outcome> {
    if (what === "create") {
      const answer = await clients.workOrders.createWorkOrder({
        projectId,
        workflowId: "contract",
        input: { patient: 123 },
      });
      orders.set(alias, tracked(clients, answer.workOrder?.id ?? "", answer.run?.id ?? ""));
      return [answer.workOrder?.status ?? 0, {}];
    }
    check(w !== undefined, () => `no work order ${show(alias)} yet`);
    if (what === "claim") {
      for (let i = 0; i < 100; i++) {
        const [lease] = await claim(clients.worker, { projectId, workerId: `contract-${LANGUAGE}`, maxRuns: 1 });
        check(lease !== undefined, () => `run ${w.runId} was never handed out`);
        if (lease.runId === w.runId) {
          w.lease = lease;
          w.stepRuns = new Map((lease.claimed?.run?.stepRuns ?? []).map((s) => [s.stepId, s.id]));
          return [undefined, {}];
        }
      }
      throw new CaseFailure("claim gave up");
    }
    const lease = w.lease;
    const error = (): { error?: ErrorReport } =>
      "error" in action ? { error: fromJson(ErrorReportSchema, action.error as JsonValue) } : {};
    switch (what) {
      case "start_run":
        return [(await lease.startRun()).run?.status ?? 0, {}];
      case "start_step": {
        const previous = "after" in action ? (w.stepRuns.get(action.after as string) ?? "") : "";
        const { stepRun } = await lease.startStep(action.step as string, previous);
        w.stepRuns.set(action.step as string, stepRun?.id ?? "");
        return [stepRun?.status ?? 0, {}];
      }
      case "complete_step": {
        const stepRunId = w.stepRuns.get(action.step as string);
        check(stepRunId !== undefined, () => `no step run of step ${show(action.step)}`);
        const answer = await lease.completeStep(stepRunId, error());
        return [answer.runStatus, {}];
      }
      case "complete_run": {
        const answer = await lease.completeRun(error());
        return [answer.run?.status ?? 0, {}];
      }
      case "retry": {
        const answer = await clients.workOrders.retryWorkOrder({
          workOrderId: w.workOrderId,
          startStepId: (action.start_step as string | undefined) ?? "",
        });
        orders.set(alias, tracked(clients, w.workOrderId, answer.run?.id ?? ""));
        return [answer.run?.status ?? 0, {}];
      }
      case "cancel":
        return [(await clients.workOrders.cancelRun({ runId: w.runId })).run?.status ?? 0, {}];
      case "heartbeat": {
        const answer = await lease.heartbeat();
        return [answer.status, { expect_stop: answer.stop }];
      }
      case "get": {
        const answer = await clients.workOrders.getWorkOrder({ workOrderId: w.workOrderId });
        return [answer.workOrder?.status ?? 0, { expect_run_number: answer.latestRun?.number ?? 0 }];
      }
    }
    throw new CaseFailure(`unknown action ${show(what)}`);
  }

  if ("expect_error" in action) {
    const expected = action.expect_error as Json;
    try {
      await call();
    } catch (e) {
      if (!(e instanceof ConnectError)) throw e;
      const code = grpcCodeName(e.code);
      check(code === expected.code, () => `got ${code}: ${e.rawMessage}`);
      const info = errorInfo(e) ?? { reason: "", domain: "", metadata: {} };
      if ("reason" in expected) {
        const got = enumName(ErrorReasonSchema, parseReason(info.reason));
        check(got === expected.reason, () => `reason ${show(info.reason)} (${got})`);
      }
      if ("current_status" in expected) {
        check(info.metadata["current_status"] === expected.current_status, () => show(info.metadata));
      }
      return;
    }
    throw new CaseFailure(`expected ${expected.code}, the call succeeded`);
  }
  const [status, extras] = await call();
  if ("expect" in action) {
    const got = status === undefined ? null : runStatusName(status);
    check(got === action.expect, () => `expected ${action.expect}, got ${got}`);
  }
  for (const [key, value] of Object.entries(extras)) {
    if (key in action) {
      check(value === action[key], () => `${key}: expected ${show(action[key])}, got ${show(value)}`);
    }
  }
}

// The suite.

function reason(e: unknown): string {
  if (e instanceof ConnectError) return `${grpcCodeName(e.code)}: ${e.rawMessage}`;
  if (e instanceof Error) return e.message;
  return String(e);
}

type Case = [name: string, run: (clients: Clients) => void | Promise<void>];

/** Every case of the suite, named, in the order runner.py runs them. */
function cases(casesDir: string): Case[] {
  const all: Case[] = [];
  const table = load(casesDir, "status_table.json");
  for (const c of table.statuses as Json[]) all.push([`status_table/${c.status}`, () => checkStatus(c)]);
  for (const c of table.error_types as Json[]) all.push([`status_table/${c.error_type}`, () => checkErrorType(c)]);
  const reasons = load(casesDir, "error_reasons.json");
  for (const c of reasons.reasons as Json[]) all.push([`error_reasons/${c.reason}`, () => checkReason(c)]);
  all.push(["error_reasons/all", () => checkAllReasons(reasons)]);
  for (const [i, c] of (load(casesDir, "classification.json").cases as Json[]).entries()) {
    const name = `classification/${i}:${c.error.name}/${c.error.language ?? ""}`;
    all.push([name, (clients) => checkClassification(clients, c)]);
  }
  for (const s of load(casesDir, "lifecycle.json").scenarios as Json[]) {
    all.push([`lifecycle/${s.name}`, (clients) => runScenario(clients, s)]);
  }
  return all;
}

async function main(argv: string[]): Promise<number> {
  const [address, casesDir = DEFAULT_CASES] = argv;
  if (!address) {
    console.error("usage: npm run contract -- ADDRESS [CASES_DIR]");
    return 2;
  }
  const clients = createClients(address, { timeoutMs: 30_000 });
  let passed = 0;
  let failed = 0;
  try {
    for (const [name, run] of cases(casesDir)) {
      try {
        await run(clients);
        passed++;
        console.log(`ok   ${name}`);
      } catch (e) {
        failed++;
        console.log(`FAIL ${name}: ${reason(e)}`);
      }
    }
  } finally {
    clients.close();
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
