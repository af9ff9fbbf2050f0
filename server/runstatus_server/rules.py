"""The run rules (docs/design.md, rules 2 and 4), as pure functions over protos.

Why was this report refused? `check_transition` (rule 4) says, or the edge rules
`edge_allows` and `roots` (rule 2, shared with the Worker) as worker_protocol.start_step
applies them. Why is this run FAILED (or any other status)? verdicts.py says.
"""

from __future__ import annotations

from runstatus import status_table
from runstatus.plan import edge_allows as edge_allows  # the edge rules: one definition, shared with the Worker
from runstatus.plan import roots as roots
from runstatus.v1.error_reason_pb2 import ErrorReason
from runstatus.v1.status_pb2 import RunStatus
from runstatus.v1.workflow_pb2 import Workflow

from .errors import FailedPrecondition
from .store.base import (  # the statuses by name: defined once, beside the store's SQL that names them
    CANCELLED as CANCELLED, FAILED as FAILED, LOST as LOST, PENDING as PENDING, REJECTED as REJECTED,
    RUNNING as RUNNING, SUCCESS as SUCCESS,
)

# Rule 4: PENDING -> RUNNING -> terminal; PENDING -> CANCELLED or REJECTED; a
# claimed run that is never started can be LOST. A terminal run never changes,
# except that a LOST run may be corrected once by its lease holder's late
# completion (the truth beats "we don't know").
_ENDINGS = {s for s in status_table.statuses() if status_table.is_terminal(s)} - {REJECTED}
ALLOWED: dict[RunStatus.ValueType, set[RunStatus.ValueType]] = {
    PENDING: {RUNNING, CANCELLED, REJECTED, LOST},
    RUNNING: _ENDINGS,
    LOST: _ENDINGS - {LOST},
}


def status_name(status: RunStatus.ValueType) -> str:
    return RunStatus.Name(status)


def check_transition(current: RunStatus.ValueType, new: RunStatus.ValueType) -> None:
    if new not in ALLOWED.get(current, set()):
        raise FailedPrecondition(
            f"the run is {status_name(current)}; it cannot become {status_name(new)}",
            reason=ErrorReason.ERROR_REASON_ILLEGAL_TRANSITION,
            current_status=current, metadata={"requested_status": status_name(new)},
        )


def ancestors(workflow: Workflow, step_id: str) -> set[str]:
    """Every step upstream of step_id."""
    parents: dict[str, list[str]] = {}
    for edge in workflow.edges:
        parents.setdefault(edge.target_step_id, []).append(edge.source_step_id)
    seen: set[str] = set()
    todo = list(parents.get(step_id, []))
    while todo:
        step = todo.pop()
        if step not in seen:
            seen.add(step)
            todo.extend(parents.get(step, []))
    return seen

