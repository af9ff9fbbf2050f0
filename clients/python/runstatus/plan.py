"""How a run moves through its workflow's plan (docs/design.md, rule 2), as pure functions
over the generated protos: the one definition that workers follow and the server checks.

`edge_allows` and `roots` are the server's rules (it imports them from here); `starts` and
`next_steps` are what a worker does with them: where a run starts, and where it goes on
after a step. The client never imports the server, so they live here.
"""

from __future__ import annotations

from collections.abc import Callable

from runstatus.v1.status_pb2 import RunStatus
from runstatus.v1.work_order_pb2 import Run, StepRun
from runstatus.v1.workflow_pb2 import Edge, EdgeCondition, Workflow

SUCCESS = RunStatus.RUN_STATUS_SUCCESS
FAILED = RunStatus.RUN_STATUS_FAILED


def edge_allows(condition: EdgeCondition.ValueType, upstream: RunStatus.ValueType) -> bool:
    """Rule 2: after a FAILED step the run may go on along ON_FAILURE/ALWAYS edges."""
    if upstream not in (SUCCESS, FAILED):
        return False
    if condition == EdgeCondition.EDGE_CONDITION_ON_SUCCESS:
        return upstream == SUCCESS
    if condition == EdgeCondition.EDGE_CONDITION_ON_FAILURE:
        return upstream == FAILED
    # ALWAYS, and EXPRESSION, which the worker evaluated: following it records that it held.
    return True


def roots(workflow: Workflow) -> set[str]:
    """The steps no edge leads to: where a run starts (a retry from a step starts at that step)."""
    targets = {edge.target_step_id for edge in workflow.edges}
    return {step.id for step in workflow.steps if step.id not in targets}


def starts(run: Run, workflow: Workflow) -> list[tuple[str, StepRun | None]]:
    """Where a claimed run starts, as (step id, the step run that leads there or None).

    A first run starts at the roots, in the workflow's order, led to by nothing. A retry
    from a step (`run.start_step_id`) starts at that step, led to by the latest reused
    upstream step run whose edge to it `edge_allows`; by nothing if there is none (the
    server accepts a retry's start step from the start).
    """
    if not run.start_step_id:
        first = roots(workflow)
        return [(step.id, None) for step in workflow.steps if step.id in first]
    conditions = {e.source_step_id: e.condition for e in workflow.edges if e.target_step_id == run.start_step_id}
    reused = [s for s in run.step_runs
              if s.step_id in conditions and edge_allows(conditions[s.step_id], s.status)]
    if not reused:
        return [(run.start_step_id, None)]
    return [(run.start_step_id, max(reused, key=lambda s: (s.end_time.ToMicroseconds(), s.id)))]


def follows(edge: Edge, upstream: RunStatus.ValueType, holds: Callable[[Edge], bool]) -> bool:
    """Whether a worker goes on along `edge` after a step run that ended `upstream`: if
    `edge_allows` it and, for an EXPRESSION edge, its expression `holds` (the worker
    evaluates the expression; the server only records that it was followed)."""
    if not edge_allows(edge.condition, upstream):
        return False
    return edge.condition != EdgeCondition.EDGE_CONDITION_EXPRESSION or holds(edge)


def next_steps(workflow: Workflow, step_run: StepRun, holds: Callable[[Edge], bool]) -> list[str]:
    """The steps a worker goes on to after `step_run` ended, in the workflow's edge order."""
    return [edge.target_step_id for edge in workflow.edges
            if edge.source_step_id == step_run.step_id and follows(edge, step_run.status, holds)]
