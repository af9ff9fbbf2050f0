from __future__ import annotations

import grpc

from runstatus.v1 import token_service_pb2 as pb
from runstatus.v1 import token_service_pb2_grpc as pb_grpc
from runstatus.v1.error_reason_pb2 import ErrorReason

from .. import auth, pagination, tokens
from ..errors import FailedPrecondition
from ..store.base import Tx
from ..util import now_us
from . import checks
from .kept_answers import write_once
from .rpc import App, unary


class TokenService(pb_grpc.TokenServiceServicer):
    def __init__(self, app: App) -> None:
        self.app = app

    @unary
    async def CreateToken(
        self, request: pb.CreateTokenRequest,
        context: grpc.aio.ServicerContext[pb.CreateTokenRequest, pb.CreateTokenResponse],
    ) -> pb.CreateTokenResponse:
        checks.create_token(request, self.app.limits)

        def op(tx: Tx) -> pb.CreateTokenResponse:
            checks.token_role(request)  # after the request_id, as for a project (project_service.py)
            token, secret = tokens.create(tx, request.project_id, request.role, request.name, now_us())
            return pb.CreateTokenResponse(token=token, secret=secret)

        answer = await write_once(self.app.store, "CreateToken", request, pb.CreateTokenResponse, op)
        if not answer.secret:  # a repeat: its answer was kept without the secret (kept_answers.py)
            raise FailedPrecondition(
                f"request_id {request.request_id!r} already created token {answer.token.id}; its secret is shown "
                "only once: revoke that token and create another",
                reason=ErrorReason.ERROR_REASON_TOKEN_SECRET_SHOWN_ONCE, metadata={"token_id": answer.token.id},
            )
        return answer

    @unary
    async def RevokeToken(
        self, request: pb.RevokeTokenRequest,
        context: grpc.aio.ServicerContext[pb.RevokeTokenRequest, pb.RevokeTokenResponse],
    ) -> pb.RevokeTokenResponse:
        checks.revoke_token(request, self.app.limits)

        def op(tx: Tx) -> pb.RevokeTokenResponse:
            return pb.RevokeTokenResponse(token=tokens.revoke(tx, request.token_id, now_us()))

        answer = await write_once(self.app.store, "RevokeToken", request, pb.RevokeTokenResponse, op)
        if self.app.authenticator is not None:
            self.app.authenticator.forget(request.token_id)
        return answer

    @unary
    async def ListTokens(
        self, request: pb.ListTokensRequest,
        context: grpc.aio.ServicerContext[pb.ListTokensRequest, pb.ListTokensResponse],
    ) -> pb.ListTokensResponse:
        pager = pagination.by_id(request)
        found = await self.app.store.scan(tokens.of_project, request.project_id, pager.after, pager.size,
                                          pager.max_bytes)
        page, token = pager.cut(found, lambda item: (item.id,))
        return pb.ListTokensResponse(tokens=page, next_page_token=token)

    @unary
    async def GetCallerToken(
        self, request: pb.GetCallerTokenRequest,
        context: grpc.aio.ServicerContext[pb.GetCallerTokenRequest, pb.GetCallerTokenResponse],
    ) -> pb.GetCallerTokenResponse:
        who = auth.caller.get()
        allowed = [f"runstatus.v1.{method}" for method in auth.allowed_methods(who)]
        if who is None:
            return pb.GetCallerTokenResponse(allowed_methods=allowed)
        token = await self.app.store.read(tokens.of_caller, who)
        return pb.GetCallerTokenResponse(token=token, allowed_methods=allowed)
