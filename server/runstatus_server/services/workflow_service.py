from __future__ import annotations

import grpc

from runstatus.v1 import workflow_service_pb2 as pb
from runstatus.v1 import workflow_service_pb2_grpc as pb_grpc

from .. import pagination, projects, workflows
from ..idempotency import answer_or_raise, once
from ..store.base import Tx
from ..util import now_us
from .common import App, Checks, unary


def _kept_workflow(answer: pb.CreateWorkflowResponse) -> pb.CreateWorkflowResponse:
    """A created workflow as kept for its request_id: which version it is (versions never change)."""
    w = answer.workflow
    return pb.CreateWorkflowResponse(workflow=workflows.Workflow(project_id=w.project_id, id=w.id, version=w.version))


def _restored_workflow(tx: Tx, answer: pb.CreateWorkflowResponse) -> pb.CreateWorkflowResponse:
    w = answer.workflow
    return pb.CreateWorkflowResponse(workflow=workflows.get(tx, w.project_id, w.id, w.version))


class WorkflowService(pb_grpc.WorkflowServiceServicer):
    def __init__(self, app: App) -> None:
        self.app = app

    @unary
    async def CreateWorkflow(self, request: pb.CreateWorkflowRequest, context: grpc.aio.ServicerContext) -> pb.CreateWorkflowResponse:
        checks = Checks(self.app.limits)
        checks.short("workflow.project_id", request.workflow.project_id)
        if request.workflow.ByteSize() > self.app.limits.max_workflow_bytes:
            # Every run of it carries it to its worker: it must fit in a claim's answer.
            checks.add("workflow", f"must be at most {self.app.limits.max_workflow_bytes} bytes encoded")
        checks.done()

        def op(tx: Tx) -> pb.CreateWorkflowResponse:
            return pb.CreateWorkflowResponse(workflow=workflows.create(tx, request.workflow, now_us()))

        return answer_or_raise(await self.app.store.write(once("CreateWorkflow", request, pb.CreateWorkflowResponse, op,
                                               kept=_kept_workflow, restore=_restored_workflow)))

    @unary
    async def GetWorkflow(self, request: pb.GetWorkflowRequest, context: grpc.aio.ServicerContext) -> pb.GetWorkflowResponse:
        checks = Checks(self.app.limits)
        checks.short("project_id", request.project_id)
        checks.short("workflow_id", request.workflow_id, required=True)
        if request.version < 0:
            checks.add("version", "must not be negative")
        checks.done()
        workflow = await self.app.store.read(
            workflows.get, request.project_id, request.workflow_id, request.version
        )
        return pb.GetWorkflowResponse(workflow=workflow)

    @unary
    async def ListWorkflows(self, request: pb.ListWorkflowsRequest, context: grpc.aio.ServicerContext) -> pb.ListWorkflowsResponse:
        checks = Checks(self.app.limits)
        checks.short("project_id", request.project_id)
        checks.done()
        pager = pagination.by_id(request)

        def op(tx: Tx) -> list[workflows.Workflow]:
            project = projects.get(tx, request.project_id)
            return tx.list_workflows(project.id, pager.after, pager.size)

        page, token = pager.cut(await self.app.store.scan(op), lambda workflow: (workflow.id,),
                                size=lambda workflow: workflow.ByteSize())
        return pb.ListWorkflowsResponse(workflows=page, next_page_token=token)
