"""Authentication and authorisation: API tokens, each scoped to a project with a role.

A call carries `authorization: Bearer <secret>`. The secret names its token
(`rs_<token id>_<random>`); the server keeps only a SHA-256 hash of it. Then:

- no valid token: UNAUTHENTICATED;
- a role calling a method it may not (`ALLOWED`): PERMISSION_DENIED;
- a resource of another project: NOT_FOUND, as if it did not exist (`check_visible`).

The caller is kept in a context variable for the duration of the call; the store runs
each unit of work in the caller's context, so the loaders check it wherever they run.
Without authentication (the default on loopback) there is no caller and all is visible.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from runstatus.v1.token_pb2 import Role, Token

from .errors import NotFound, PermissionDenied, Unauthenticated
from .store.base import Store

INSTANCE = "*"  # the project of an instance admin token
TOKEN_ID = re.compile(r"[0-9a-f]{16}")
WORKER, CLIENT, ADMIN = Role.ROLE_WORKER, Role.ROLE_CLIENT, Role.ROLE_ADMIN

# Who may call what. ADMIN may call everything of its project; only an instance admin
# (an ADMIN token of project "*") may create projects.
_WORK_ORDERS = {CLIENT, ADMIN}
_WORKERS = {WORKER, ADMIN}
ALLOWED: dict[str, set[Role.ValueType]] = {
    "ClassifierService.Classify": {WORKER, CLIENT, ADMIN},
    "WorkflowService.CreateWorkflow": {ADMIN},
    "WorkflowService.GetWorkflow": {WORKER, CLIENT, ADMIN},
    "WorkflowService.ListWorkflows": {CLIENT, ADMIN},
    "ProjectService.CreateProject": set(),  # instance admins only
    "ProjectService.GetProject": {CLIENT, ADMIN},
    "ProjectService.UpdateProject": {ADMIN},
    "ProjectService.ListProjects": {CLIENT, ADMIN},
    **{f"WorkOrderService.{m}": _WORK_ORDERS for m in (
        "CreateWorkOrder", "GetWorkOrder", "ListWorkOrders", "CountWorkOrders", "RetryWorkOrder",
        "RetryWorkOrders", "GetRun", "ListRuns", "CancelRun", "WatchWorkOrders")},
    **{f"WorkerService.{m}": _WORKERS for m in (
        "ClaimRuns", "Heartbeat", "StartRun", "StartStep", "CompleteStep", "CompleteRun")},
    **{f"TokenService.{m}": {ADMIN} for m in ("CreateToken", "RevokeToken", "ListTokens")},
    "TokenService.GetCallerToken": {WORKER, CLIENT, ADMIN},
    "StatsService.GetWorkOrderStats": _WORK_ORDERS,
    # A project's admins manage its subscriptions; the instance's are its admins' (the service checks).
    **{f"NotificationService.{m}": {ADMIN} for m in (
        "CreateNotificationSubscription", "GetNotificationSubscription", "ListNotificationSubscriptions",
        "UpdateNotificationSubscription", "DeleteNotificationSubscription", "ListNotificationDeliveries",
        "RedeliverNotification", "SendTestNotification")},
}


def allowed_methods(who: Principal | None) -> list[str]:
    """The methods (as ALLOWED names them) `who` may call; without authentication (None), all."""
    return [m for m, roles in ALLOWED.items() if who is None or who.instance_admin or who.role in roles]


@dataclass(frozen=True)
class Principal:
    token_id: str
    project_id: str
    role: Role.ValueType

    @property
    def instance_admin(self) -> bool:
        return self.project_id == INSTANCE and self.role == ADMIN


caller: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("caller", default=None)


def check_visible(project_id: str, kind: str, name: str) -> None:
    """A resource of another project does not exist for the caller."""
    who = caller.get()
    if who is not None and not who.instance_admin and who.project_id != project_id:
        raise NotFound(kind, name)


def scope(project_id: str) -> str:
    """The project a request is about: its own, or the caller's when it names none."""
    who = caller.get()
    if not project_id and who is not None and not who.instance_admin:
        return who.project_id
    return project_id


def authorize(who: Principal, method: str) -> None:
    if who.instance_admin:
        return
    if who.role not in ALLOWED.get(method, set()):
        raise PermissionDenied(
            f"a {Role.Name(who.role)} token may not call {method}", role=Role.Name(who.role), method=method
        )


# Secrets

def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret(token_id: str) -> tuple[str, str]:
    """A new secret for the token (shown once) and the hash the server keeps of it."""
    secret = f"rs_{token_id}_{secrets.token_urlsafe(32)}"
    return secret, _hash(secret)


# What an unknown token id's secret is compared with: the same work as for a known id, so the
# time of an answer does not tell whether an id exists (a hash no secret has).
_NO_SECRET_HASH = _hash(secrets.token_urlsafe(32))


class Authenticator:
    """Checks bearer secrets against the stored hashes, with a short cache so a token
    costs no database read on most calls; a revocation is seen within `ttl` seconds
    in every process (at once in the process that revoked it).

    Unknown ids are cached too, and their secrets hashed and compared like any other: a
    known id and an unknown one cost the same (one read per `ttl`, one hash, one compare),
    so an answer's latency does not reveal which token ids exist. (A token created in
    another process under an id presented here just before would wait `ttl`: ids are 64
    random bits.)"""

    MAX_CACHED = 10_000

    def __init__(self, store: Store, ttl: float = 5.0) -> None:
        self.store = store
        self.ttl = ttl
        # token id -> (when read, the token or None when unknown, its secret's hash)
        self._cache: dict[str, tuple[float, Token | None, str]] = {}
        self._revoked: set[str] = set()  # revoked here: no read that raced the revoke brings them back

    def forget(self, token_id: str) -> None:
        self._revoked.add(token_id)
        self._cache.pop(token_id, None)

    async def authenticate(self, authorization: str) -> Principal:
        scheme, _, secret = authorization.partition(" ")
        token_id = secret[3:].split("_", 1)[0] if secret.startswith("rs_") else ""
        if scheme.lower() != "bearer" or not TOKEN_ID.fullmatch(token_id):
            raise Unauthenticated("send an API token as 'authorization: Bearer <token>'")
        cached = self._cache.get(token_id)
        if cached is None or time.monotonic() - cached[0] > self.ttl:
            found = await self.store.read(lambda tx: tx.get_token(token_id))
            if len(self._cache) >= self.MAX_CACHED:
                self._cache.clear()
            cached = self._cache[token_id] = (time.monotonic(), *(found or (None, _NO_SECRET_HASH)))
        _, token, secret_hash = cached
        if not hmac.compare_digest(secret_hash, _hash(secret)) or token is None:
            raise Unauthenticated("the API token is not valid")
        if token.HasField("revoke_time") or token_id in self._revoked:
            raise Unauthenticated("the API token was revoked")
        return Principal(token.id, token.project_id, token.role)
