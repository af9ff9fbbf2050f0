"""Validation of a workflow version: ids, steps, edges, conditions, and that it is a DAG."""

from __future__ import annotations

from runstatus.v1.workflow_pb2 import EdgeCondition, Workflow

from . import projects
from .errors import InvalidArgument, NotFound
from .store.base import Tx
from .util import MAX_NAME, check_id, timestamp

MAX_STEPS = 1000
MAX_EDGES = 5000
MAX_BODY = 256 * 1024


def validate_workflow(workflow: Workflow, prefix: str = "workflow") -> None:
    """Raises InvalidArgument naming every wrong field."""
    v: list[tuple[str, str]] = []
    check_id(f"{prefix}.id", workflow.id, v)
    if len(workflow.name) > MAX_NAME:
        v.append((f"{prefix}.name", f"must be at most {MAX_NAME} characters"))
    if not workflow.steps:
        v.append((f"{prefix}.steps", "a workflow needs at least one step"))
    if len(workflow.steps) > MAX_STEPS:
        v.append((f"{prefix}.steps", f"at most {MAX_STEPS} steps"))
    if len(workflow.edges) > MAX_EDGES:
        v.append((f"{prefix}.edges", f"at most {MAX_EDGES} edges"))
    if v:
        raise InvalidArgument(v)

    step_ids: set[str] = set()
    for i, step in enumerate(workflow.steps):
        check_id(f"{prefix}.steps[{i}].id", step.id, v)
        if step.id in step_ids:
            v.append((f"{prefix}.steps[{i}].id", f"duplicate step id {step.id!r}"))
        step_ids.add(step.id)
        if len(step.name) > MAX_NAME or len(step.adaptor) > MAX_NAME:
            v.append((f"{prefix}.steps[{i}]", f"name and adaptor must be at most {MAX_NAME} characters"))
        if len(step.body.encode()) > MAX_BODY:
            v.append((f"{prefix}.steps[{i}].body", f"must be at most {MAX_BODY} bytes"))

    seen_edges: set[tuple[str, str]] = set()
    for i, edge in enumerate(workflow.edges):
        where = f"{prefix}.edges[{i}]"
        for end in ("source_step_id", "target_step_id"):
            step_id = getattr(edge, end)
            if step_id not in step_ids:
                v.append((f"{where}.{end}", f"no step {step_id!r} in this workflow"))
        if edge.source_step_id == edge.target_step_id and edge.source_step_id:
            v.append((where, "an edge cannot lead from a step to itself"))
        pair = (edge.source_step_id, edge.target_step_id)
        if pair in seen_edges:
            v.append((where, f"duplicate edge {pair[0]!r} -> {pair[1]!r}"))
        seen_edges.add(pair)
        if edge.condition not in EdgeCondition.values() or edge.condition == EdgeCondition.EDGE_CONDITION_UNSPECIFIED:
            v.append((f"{where}.condition", "must be ALWAYS, ON_SUCCESS, ON_FAILURE or EXPRESSION"))
        elif edge.condition == EdgeCondition.EDGE_CONDITION_EXPRESSION and not edge.expression.strip():
            v.append((f"{where}.expression", "is required for an EXPRESSION edge"))
        elif edge.condition != EdgeCondition.EDGE_CONDITION_EXPRESSION and edge.expression:
            v.append((f"{where}.expression", "is only allowed on an EXPRESSION edge"))
        if len(edge.expression.encode()) > MAX_BODY:
            v.append((f"{where}.expression", f"must be at most {MAX_BODY} bytes"))
    if v:
        raise InvalidArgument(v)

    cycle = find_cycle(workflow)
    if cycle:
        raise InvalidArgument([(f"{prefix}.edges", "the edges form a cycle: " + " -> ".join(cycle))])


def find_cycle(workflow: Workflow) -> list[str]:
    """A cycle as a list of step ids (first repeated at the end), or [] for a DAG."""
    children: dict[str, list[str]] = {step.id: [] for step in workflow.steps}
    for edge in workflow.edges:
        children[edge.source_step_id].append(edge.target_step_id)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in children:
        if state.get(start):
            continue
        path = [start]
        stack = [iter(children[start])]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(children[nxt]))
    return []


def create(tx: Tx, workflow: Workflow, now: int) -> Workflow:
    """Adds version 1 of a new workflow, or the next version of an existing one."""
    validate_workflow(workflow)
    project = projects.get(tx, workflow.project_id)
    latest = tx.workflow_version(project.id, workflow.id)
    created = Workflow()
    created.CopyFrom(workflow)
    created.project_id = project.id
    created.version = (latest or 0) + 1
    created.create_time.CopyFrom(timestamp(now))
    tx.insert_workflow(created)
    return created


def get(tx: Tx, project_id: str, workflow_id: str, version: int = 0) -> Workflow:
    project = projects.get(tx, project_id)
    workflow = tx.get_workflow(project.id, workflow_id, version)
    if workflow is None:
        raise NotFound("workflow", f"{workflow_id} v{version}" if version else workflow_id)
    return workflow


def version_of(tx: Tx, project_id: str, workflow_id: str, version: int = 0) -> int:
    """The version a new work order pins (0: the latest), without reading the workflow."""
    found = tx.workflow_version(project_id, workflow_id, version)
    if found is None:
        raise NotFound("workflow", f"{workflow_id} v{version}" if version else workflow_id)
    return found
