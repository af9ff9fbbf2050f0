from __future__ import annotations

import grpc

from runstatus.v1 import project_service_pb2 as pb
from runstatus.v1 import project_service_pb2_grpc as pb_grpc

from .. import pagination, projects
from ..idempotency import answer_or_raise, once
from ..store.base import Tx
from ..util import now_us
from .common import App, Checks, unary


class ProjectService(pb_grpc.ProjectServiceServicer):
    def __init__(self, app: App) -> None:
        self.app = app

    @unary
    async def CreateProject(self, request: pb.CreateProjectRequest, context: grpc.aio.ServicerContext) -> pb.CreateProjectResponse:
        def op(tx: Tx) -> pb.CreateProjectResponse:
            return pb.CreateProjectResponse(project=projects.create(tx, request.project, now_us()))

        return answer_or_raise(await self.app.store.write(once("CreateProject", request, pb.CreateProjectResponse, op)))

    @unary
    async def GetProject(self, request: pb.GetProjectRequest, context: grpc.aio.ServicerContext) -> pb.GetProjectResponse:
        checks = Checks(self.app.limits)
        checks.short("project_id", request.project_id)
        checks.done()
        project = await self.app.store.read(projects.get, request.project_id)
        return pb.GetProjectResponse(project=project)

    @unary
    async def UpdateProject(self, request: pb.UpdateProjectRequest, context: grpc.aio.ServicerContext) -> pb.UpdateProjectResponse:
        def op(tx: Tx) -> pb.UpdateProjectResponse:
            return pb.UpdateProjectResponse(project=projects.update(tx, request.project, request.update_mask, now_us()))

        return answer_or_raise(await self.app.store.write(once("UpdateProject", request, pb.UpdateProjectResponse, op)))

    @unary
    async def ListProjects(self, request: pb.ListProjectsRequest, context: grpc.aio.ServicerContext) -> pb.ListProjectsResponse:
        pager = pagination.by_id(request)
        found = await self.app.store.scan(projects.visible, pager.after, pager.size)
        page, token = pager.cut(found, lambda project: (project.id,))
        return pb.ListProjectsResponse(projects=page, next_page_token=token)
