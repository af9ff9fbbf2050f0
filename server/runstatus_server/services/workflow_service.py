from __future__ import annotations

import grpc

from runstatus.v1 import workflow_service_pb2 as pb
from runstatus.v1 import workflow_service_pb2_grpc as pb_grpc

from .. import pagination, workflows
from ..store.base import Tx
from ..util import now_us
from . import checks
from .kept_answers import write_once
from .rpc import App, unary


class WorkflowService(pb_grpc.WorkflowServiceServicer):
    def __init__(self, app: App) -> None:
        self.app = app

    @unary
    async def CreateWorkflow(
        self, request: pb.CreateWorkflowRequest,
        context: grpc.aio.ServicerContext[pb.CreateWorkflowRequest, pb.CreateWorkflowResponse],
    ) -> pb.CreateWorkflowResponse:
        checks.create_workflow(request, self.app.limits)

        def op(tx: Tx) -> pb.CreateWorkflowResponse:
            checks.workflow(request.workflow, self.app.limits)  # after the request_id, as a project's (project_service.py)
            return pb.CreateWorkflowResponse(workflow=workflows.create(tx, request.workflow, now_us()))

        return await write_once(self.app.store, "CreateWorkflow", request, pb.CreateWorkflowResponse, op)

    @unary
    async def GetWorkflow(
        self, request: pb.GetWorkflowRequest,
        context: grpc.aio.ServicerContext[pb.GetWorkflowRequest, pb.GetWorkflowResponse],
    ) -> pb.GetWorkflowResponse:
        checks.get_workflow(request, self.app.limits)
        workflow = await self.app.store.read(
            workflows.get, request.project_id, request.workflow_id, request.version
        )
        return pb.GetWorkflowResponse(workflow=workflow)

    @unary
    async def ListWorkflows(
        self, request: pb.ListWorkflowsRequest,
        context: grpc.aio.ServicerContext[pb.ListWorkflowsRequest, pb.ListWorkflowsResponse],
    ) -> pb.ListWorkflowsResponse:
        checks.project_id(request, self.app.limits)
        pager = pagination.by_id(request)
        found = await self.app.store.scan(workflows.of_project, request.project_id, pager.after, pager.size,
                                          pager.max_bytes)
        page, token = pager.cut(found, lambda workflow: (workflow.id,))
        return pb.ListWorkflowsResponse(workflows=page, next_page_token=token)
