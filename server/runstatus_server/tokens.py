"""API tokens: creating and revoking them. auth.py checks them on every call."""

from __future__ import annotations

import asyncio
import secrets

from runstatus.v1.error_reason_pb2 import ErrorReason
from runstatus.v1.token_pb2 import Role, Token

from . import projects
from .auth import ADMIN, INSTANCE, Principal, caller, check_visible, new_secret, scope
from .errors import FailedPrecondition, NotFound, PermissionDenied, invalid
from .store import open_store
from .store.base import Page, Tx
from .util import now_us, timestamp


def create(tx: Tx, project_id: str, role: Role.ValueType, name: str, now: int) -> tuple[Token, str]:
    """A new token and its secret (shown once), of a role checks.token_role accepts."""
    if project_id == INSTANCE:
        who = caller.get()
        if who is not None and not who.instance_admin:
            raise PermissionDenied("only an instance admin may create instance tokens", role=Role.Name(who.role),
                                   method="TokenService.CreateToken")
        if role != ADMIN:
            raise invalid("role", "an instance token (project '*') must be ROLE_ADMIN")
    else:
        project_id = projects.get(tx, project_id).id
    token = Token(id=secrets.token_hex(8), project_id=project_id, role=role, name=name, create_time=timestamp(now))
    secret, secret_hash = new_secret(token.id)
    tx.put_token(token, secret_hash, new=True)
    return token, secret


def revoke(tx: Tx, token_id: str, now: int) -> Token:
    found = tx.get_token(token_id)
    if found is None:
        raise NotFound("token", token_id)
    token, _ = found
    check_visible(token.project_id, "token", token_id)
    if token.HasField("revoke_time"):
        raise FailedPrecondition(f"token {token_id} is already revoked", reason=ErrorReason.ERROR_REASON_TOKEN_REVOKED)
    token.revoke_time.CopyFrom(timestamp(now))
    tx.put_token(token, "", new=False)
    return token


def of_project(tx: Tx, project_id: str, after_id: str, limit: int, max_bytes: int) -> Page[Token]:
    """A page of a project's tokens (the caller's project if it names none; "*": the
    instance's), by id."""
    project_id = scope(project_id)
    if project_id != INSTANCE:
        project_id = projects.get(tx, project_id).id
    else:
        check_visible(INSTANCE, "project", INSTANCE)
    return tx.list_tokens(project_id, after_id, limit, max_bytes)


def of_caller(tx: Tx, who: Principal) -> Token:
    """The token a call is made with: as stored, or as its principal says if the store has none."""
    found = tx.get_token(who.token_id)
    return found[0] if found is not None else Token(id=who.token_id, project_id=who.project_id, role=who.role)


def create_offline(db: str, project_id: str, role: int, name: str) -> tuple[Token, str]:
    """A token written straight into the database at `db`, through the store, for the first
    instance admin of a server that runs with --auth (a running server takes turns with it)."""

    def write(tx: Tx, now: int) -> tuple[Token, str]:
        projects.ensure_default(tx, now)
        return create(tx, project_id, Role.ValueType(role), name, now)

    async def main() -> tuple[Token, str]:
        store = open_store(db)
        await store.start()
        try:
            return await store.write(write, now_us())
        finally:
            await store.close()

    return asyncio.run(main())
