from __future__ import annotations

import grpc

from runstatus.v1 import classifier_service_pb2 as pb
from runstatus.v1 import classifier_service_pb2_grpc as pb_grpc

from . import checks
from .rpc import App, unary


class ClassifierService(pb_grpc.ClassifierServiceServicer):
    def __init__(self, app: App) -> None:
        self.app = app

    @unary
    async def Classify(
        self, request: pb.ClassifyRequest,
        context: grpc.aio.ServicerContext[pb.ClassifyRequest, pb.ClassifyResponse],
    ) -> pb.ClassifyResponse:
        checks.classify(request, self.app.limits)
        return pb.ClassifyResponse(classification=self.app.classifier.classify(request.error))
