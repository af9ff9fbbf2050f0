"""What a request_id keeps of each answer, and the write that keeps it (idempotency.once).

An answer is kept whole, unless `SHAPES` says otherwise for its method: less what must not be
kept (a token's secret) or need not be (what the database holds anyway: a claimed run's
workflow and input, a work order's input, a workflow version), which a repeat reads back.
What is kept is the answer message itself, shaped so, as it always was: the kept answers a
database already holds read back the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.message import Message

from runstatus.v1 import token_service_pb2 as token_pb
from runstatus.v1 import work_order_service_pb2 as work_order_pb
from runstatus.v1 import worker_service_pb2 as worker_pb
from runstatus.v1 import workflow_service_pb2 as workflow_pb
from runstatus.v1.workflow_pb2 import Workflow

from .. import work_orders, workflows
from ..errors import Refused
from ..idempotency import answer_or_raise, once
from ..store.base import Store, Tx
from ..worker_protocol import workflow_of

M = TypeVar("M", bound=Message)


def _claims_kept(answer: worker_pb.ClaimRunsResponse) -> worker_pb.ClaimRunsResponse:
    """Without the workflows and inputs: a run pins its workflow version, an input never changes."""
    compact = worker_pb.ClaimRunsResponse()
    compact.CopyFrom(answer)
    for claimed in compact.runs:
        claimed.ClearField("workflow")
        claimed.ClearField("input")
    return compact


def _claims_restored(tx: Tx, answer: worker_pb.ClaimRunsResponse) -> worker_pb.ClaimRunsResponse:
    for claimed in answer.runs:
        claimed.workflow.CopyFrom(workflow_of(tx, claimed.run))
        claimed.input.CopyFrom(work_orders.input_of(tx, claimed.run.work_order_id))
    return answer


def _creation_kept(answer: work_order_pb.CreateWorkOrderResponse) -> work_order_pb.CreateWorkOrderResponse:
    """Without the input, which never changes."""
    compact = work_order_pb.CreateWorkOrderResponse()
    compact.CopyFrom(answer)
    compact.work_order.ClearField("input")
    return compact


def _creation_restored(tx: Tx, answer: work_order_pb.CreateWorkOrderResponse) -> work_order_pb.CreateWorkOrderResponse:
    answer.work_order.input.CopyFrom(work_orders.input_of(tx, answer.work_order.id))
    return answer


def _workflow_kept(answer: workflow_pb.CreateWorkflowResponse) -> workflow_pb.CreateWorkflowResponse:
    """Which version it is: versions never change."""
    w = answer.workflow
    return workflow_pb.CreateWorkflowResponse(workflow=Workflow(project_id=w.project_id, id=w.id, version=w.version))


def _workflow_restored(tx: Tx, answer: workflow_pb.CreateWorkflowResponse) -> workflow_pb.CreateWorkflowResponse:
    w = answer.workflow
    return workflow_pb.CreateWorkflowResponse(workflow=workflows.get(tx, w.project_id, w.id, w.version))


def _token_kept(answer: token_pb.CreateTokenResponse) -> token_pb.CreateTokenResponse:
    """Without the secret: only its hash is ever stored. A repeat learns which token its first
    call made, and that the secret was shown then."""
    return token_pb.CreateTokenResponse(token=answer.token)


@dataclass(frozen=True)
class Shape:
    kept: Callable[[Any], Any]  # what of the answer is kept
    restore: Callable[[Tx, Any], Any] | None = None  # what puts the rest back on a repeat


SHAPES = {
    "ClaimRuns": Shape(_claims_kept, _claims_restored),
    "CreateWorkOrder": Shape(_creation_kept, _creation_restored),
    "CreateWorkflow": Shape(_workflow_kept, _workflow_restored),
    "CreateToken": Shape(_token_kept),
}


async def write_once(store: Store, method: str, request: Message, response_type: type[M],
                     op: Callable[[Tx], M | Refused]) -> M:
    """`op` as a write made at most once per request_id, its answer kept as `SHAPES` says; a
    refusal it returned is raised after the commit, so that its change stays."""
    shape = SHAPES.get(method)
    write = once(method, request, response_type, op, kept=shape.kept if shape else None,
                 restore=shape.restore if shape else None)
    return answer_or_raise(await store.write(write))
