from __future__ import annotations

import grpc

from runstatus.v1 import stats_service_pb2 as pb
from runstatus.v1 import stats_service_pb2_grpc as pb_grpc

from .. import stats
from ..util import now_us
from .rpc import App, unary


class StatsService(pb_grpc.StatsServiceServicer):
    def __init__(self, app: App) -> None:
        self.app = app

    @unary
    async def GetWorkOrderStats(
        self, request: pb.GetWorkOrderStatsRequest,
        context: grpc.aio.ServicerContext[pb.GetWorkOrderStatsRequest, pb.GetWorkOrderStatsResponse],
    ) -> pb.GetWorkOrderStatsResponse:
        window = stats.window(request, now_us())
        return await self.app.store.scan(stats.compute, window)
