/**
 * How a run moves through its workflow's plan, as pure functions over the generated messages:
 * the Python client's runstatus.plan, the rules the server checks. `starts` is where a claimed
 * run begins, `nextSteps` where it goes on after a step.
 *
 * @module
 */

import type { Run, StepRun } from "./gen/runstatus/v1/work_order_pb.js";
import { RunStatus } from "./gen/runstatus/v1/status_pb.js";
import { EdgeCondition, type Edge, type Workflow } from "./gen/runstatus/v1/workflow_pb.js";

/** Whether an edge may be followed after a step run that ended `upstream` (rule 2: after a
 * FAILED step the run goes on along ON_FAILURE and ALWAYS edges). */
export function edgeAllows(condition: EdgeCondition, upstream: RunStatus): boolean {
  if (upstream !== RunStatus.SUCCESS && upstream !== RunStatus.FAILED) return false;
  if (condition === EdgeCondition.ON_SUCCESS) return upstream === RunStatus.SUCCESS;
  if (condition === EdgeCondition.ON_FAILURE) return upstream === RunStatus.FAILED;
  // ALWAYS, and EXPRESSION, which the worker evaluated: following it records that it held.
  return true;
}

/** The steps no edge leads to: where a first run starts. */
export function roots(workflow: Workflow): Set<string> {
  const targets = new Set(workflow.edges.map((e) => e.targetStepId));
  return new Set(workflow.steps.map((s) => s.id).filter((id) => !targets.has(id)));
}

/** A step to start, and the step run that leads there (undefined: none). */
export interface Start {
  /** The step to start. */
  stepId: string;
  /** The reused step run whose edge leads there: its id is StartStep's previous_step_run_id. */
  previous: StepRun | undefined;
}

/**
 * Where a claimed run starts. A first run starts at the roots, in the workflow's order. A
 * retry from a step (`run.startStepId`) starts at that step, led to by the latest reused
 * upstream step run whose edge to it {@link edgeAllows}; by nothing if there is none.
 */
export function starts(run: Run, workflow: Workflow): Start[] {
  if (!run.startStepId) {
    const first = roots(workflow);
    return workflow.steps.filter((s) => first.has(s.id)).map((s) => ({ stepId: s.id, previous: undefined }));
  }
  const conditions = new Map(
    workflow.edges.filter((e) => e.targetStepId === run.startStepId).map((e) => [e.sourceStepId, e.condition]),
  );
  const reused = run.stepRuns.filter((s) => {
    const condition = conditions.get(s.stepId);
    return condition !== undefined && edgeAllows(condition, s.status);
  });
  let latest: StepRun | undefined;
  for (const s of reused) {
    if (latest === undefined || compareEnd(s, latest) > 0) latest = s;
  }
  return [{ stepId: run.startStepId, previous: latest }];
}

/** Orders step runs by end time, then id (Python's max key). */
function compareEnd(a: StepRun, b: StepRun): number {
  const micros = (s: StepRun): bigint =>
    (s.endTime?.seconds ?? 0n) * 1_000_000n + BigInt(Math.floor((s.endTime?.nanos ?? 0) / 1000));
  const d = micros(a) - micros(b);
  if (d !== 0n) return d > 0n ? 1 : -1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Whether a worker goes on along `edge` after a step run that ended `upstream`: if
 * {@link edgeAllows} it and, for an EXPRESSION edge, its expression `holds`. */
export function follows(edge: Edge, upstream: RunStatus, holds: (edge: Edge) => boolean): boolean {
  if (!edgeAllows(edge.condition, upstream)) return false;
  return edge.condition !== EdgeCondition.EXPRESSION || holds(edge);
}

/** The steps a worker goes on to after `stepRun` ended, in the workflow's edge order. */
export function nextSteps(workflow: Workflow, stepRun: StepRun, holds: (edge: Edge) => boolean): string[] {
  return workflow.edges
    .filter((e) => e.sourceStepId === stepRun.stepId && follows(e, stepRun.status, holds))
    .map((e) => e.targetStepId);
}
