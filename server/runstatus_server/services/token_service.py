from __future__ import annotations

import grpc

from runstatus.v1 import token_service_pb2 as pb
from runstatus.v1 import token_service_pb2_grpc as pb_grpc
from runstatus.v1.error_reason_pb2 import ErrorReason
from runstatus.v1.token_pb2 import Token

from .. import auth, pagination, projects, tokens
from ..errors import FailedPrecondition
from ..idempotency import answer_or_raise, once
from ..store.base import Tx
from ..util import now_us
from .common import App, Checks, unary


def _without_secret(answer: pb.CreateTokenResponse) -> pb.CreateTokenResponse:
    return pb.CreateTokenResponse(token=answer.token)


class TokenService(pb_grpc.TokenServiceServicer):
    def __init__(self, app: App) -> None:
        self.app = app

    @unary
    async def CreateToken(self, request: pb.CreateTokenRequest, context: grpc.aio.ServicerContext) -> pb.CreateTokenResponse:
        checks = Checks(self.app.limits)
        checks.short("project_id", request.project_id)
        if len(request.name) > 256:
            checks.add("name", "must be at most 256 characters")
        checks.done()

        def op(tx: Tx) -> pb.CreateTokenResponse:
            token, secret = tokens.create(tx, request.project_id, request.role, request.name, now_us())
            return pb.CreateTokenResponse(token=token, secret=secret)

        # Only the secret's hash is ever stored, so a request_id's kept answer has no secret:
        # a repeat learns which token its first call made, and that the secret was shown then.
        answer = answer_or_raise(await self.app.store.write(
            once("CreateToken", request, pb.CreateTokenResponse, op, kept=_without_secret)))
        if not answer.secret:
            raise FailedPrecondition(
                f"request_id {request.request_id!r} already created token {answer.token.id}; its secret is shown "
                "only once: revoke that token and create another",
                reason=ErrorReason.ERROR_REASON_TOKEN_SECRET_SHOWN_ONCE, metadata={"token_id": answer.token.id},
            )
        return answer

    @unary
    async def RevokeToken(self, request: pb.RevokeTokenRequest, context: grpc.aio.ServicerContext) -> pb.RevokeTokenResponse:
        checks = Checks(self.app.limits)
        checks.short("token_id", request.token_id, required=True)
        checks.done()

        def op(tx: Tx) -> pb.RevokeTokenResponse:
            return pb.RevokeTokenResponse(token=tokens.revoke(tx, request.token_id, now_us()))

        answer = answer_or_raise(await self.app.store.write(once("RevokeToken", request, pb.RevokeTokenResponse, op)))
        if self.app.authenticator is not None:
            self.app.authenticator.forget(request.token_id)
        return answer

    @unary
    async def ListTokens(self, request: pb.ListTokensRequest, context: grpc.aio.ServicerContext) -> pb.ListTokensResponse:
        pager = pagination.by_id(request)

        def op(tx: Tx) -> list[Token]:
            project_id = auth.scope(request.project_id)
            if project_id != auth.INSTANCE:
                project_id = projects.get(tx, project_id).id
            else:
                auth.check_visible(auth.INSTANCE, "project", auth.INSTANCE)
            return tx.list_tokens(project_id, pager.after, pager.size)

        page, token = pager.cut(await self.app.store.scan(op), lambda item: (item.id,))
        return pb.ListTokensResponse(tokens=page, next_page_token=token)

    @unary
    async def GetCallerToken(self, request: pb.GetCallerTokenRequest,
                             context: grpc.aio.ServicerContext) -> pb.GetCallerTokenResponse:
        who = auth.caller.get()
        allowed = [f"runstatus.v1.{method}" for method in auth.allowed_methods(who)]
        if who is None:
            return pb.GetCallerTokenResponse(allowed_methods=allowed)
        found = await self.app.store.read(lambda tx: tx.get_token(who.token_id))
        token = found[0] if found is not None else Token(id=who.token_id, project_id=who.project_id, role=who.role)
        return pb.GetCallerTokenResponse(token=token, allowed_methods=allowed)
