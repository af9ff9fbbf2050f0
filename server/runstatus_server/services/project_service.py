from __future__ import annotations

import grpc

from runstatus.v1 import project_service_pb2 as pb
from runstatus.v1 import project_service_pb2_grpc as pb_grpc

from .. import pagination, projects
from ..store.base import Tx
from ..util import now_us
from . import checks
from .kept_answers import write_once
from .rpc import App, unary


class ProjectService(pb_grpc.ProjectServiceServicer):
    def __init__(self, app: App) -> None:
        self.app = app

    # A project is checked inside the write, once its request_id is looked up: a request_id used
    # before for another request is told so (REQUEST_ID_REUSED) before what is wrong with this one.

    @unary
    async def CreateProject(
        self, request: pb.CreateProjectRequest,
        context: grpc.aio.ServicerContext[pb.CreateProjectRequest, pb.CreateProjectResponse],
    ) -> pb.CreateProjectResponse:
        def op(tx: Tx) -> pb.CreateProjectResponse:
            checks.project(request.project, self.app.limits, self.app.retention_min_us)
            return pb.CreateProjectResponse(project=projects.create(tx, request.project, now_us()))

        return await write_once(self.app.store, "CreateProject", request, pb.CreateProjectResponse, op)

    @unary
    async def GetProject(
        self, request: pb.GetProjectRequest,
        context: grpc.aio.ServicerContext[pb.GetProjectRequest, pb.GetProjectResponse],
    ) -> pb.GetProjectResponse:
        checks.project_id(request, self.app.limits)
        project = await self.app.store.read(projects.get, request.project_id)
        return pb.GetProjectResponse(project=project)

    @unary
    async def UpdateProject(
        self, request: pb.UpdateProjectRequest,
        context: grpc.aio.ServicerContext[pb.UpdateProjectRequest, pb.UpdateProjectResponse],
    ) -> pb.UpdateProjectResponse:
        def op(tx: Tx) -> pb.UpdateProjectResponse:
            checks.update_project(request, self.app.limits, self.app.retention_min_us)
            return pb.UpdateProjectResponse(project=projects.update(tx, request.project, request.update_mask, now_us()))

        return await write_once(self.app.store, "UpdateProject", request, pb.UpdateProjectResponse, op)

    @unary
    async def ListProjects(
        self, request: pb.ListProjectsRequest,
        context: grpc.aio.ServicerContext[pb.ListProjectsRequest, pb.ListProjectsResponse],
    ) -> pb.ListProjectsResponse:
        pager = pagination.by_id(request)
        found = await self.app.store.scan(projects.visible, pager.after, pager.size, pager.max_bytes)
        page, token = pager.cut(found, lambda project: (project.id,))
        return pb.ListProjectsResponse(projects=page, next_page_token=token)
