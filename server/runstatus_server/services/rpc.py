"""The RPC layer every service goes through: the app's parts, and the wrappers that admit a
call (who calls, may they, did the request parse), map its errors to a google.rpc.Status and
count it."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol, TypeVar

import grpc
from google.protobuf.message import Message
from grpc_status import rpc_status

from runstatus.v1.error_reason_pb2 import ErrorReason

from ..auth import Authenticator, Principal, authorize, caller
from ..classifier import Classifier
from ..errors import ApiError, InvalidArgument, Unavailable
from ..events import EventFeed
from ..limits import Limits
from ..metrics import RPC_SECONDS, RPCS
from ..store.base import StorageError, Store
from ..worker_protocol import Leases
from .registry import Undecodable

log = logging.getLogger("runstatus.rpc")

# A servicer method: (servicer, request, context) -> its answer (None: a stream it writes).
S = TypeVar("S", bound="Servicer")
Req = TypeVar("Req", bound=Message)
Ctx = TypeVar("Ctx", bound="grpc.aio.ServicerContext[Any, Any]")
R = TypeVar("R")


@dataclass
class App:
    store: Store
    classifier: Classifier
    feed: EventFeed
    leases: Leases
    limits: Limits
    # None: no authentication (loopback only, or explicitly insecure).
    authenticator: Authenticator | None = None
    # Notification targets on loopback, private or link-local addresses (--notify-allow-private).
    notify_allow_private: bool = False
    # Wakes this process's delivery loop (the primary's; elsewhere the leader's poll finds them).
    wake_deliveries: Callable[[], None] = lambda: None
    # The shortest retention period a project may set (--request-id-seconds), in microseconds.
    retention_min_us: int = 0


class Servicer(Protocol):
    """Every service's servicer: it holds the app."""

    app: App


async def _admit(servicer: Servicer, method: str, request: Message,
                 context: grpc.aio.ServicerContext[Any, Any]) -> None:
    """Before every RPC: who is calling and may they call this method (auth.py has the rules),
    kept for the call's task (each RPC runs in a task of its own); and a request that parsed."""
    authenticator = servicer.app.authenticator
    who: Principal | None = None
    if authenticator is not None:
        metadata = {key: value for key, value in context.invocation_metadata() or ()}
        who = await authenticator.authenticate(str(metadata.get("authorization", "")))
        authorize(who, method)
    caller.set(who)
    if isinstance(request, Undecodable):
        raise InvalidArgument([("request", f"cannot be parsed: {request.reason}")], reason=ErrorReason.ERROR_REASON_MALFORMED_REQUEST)


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: ApiError) -> NoReturn:
    await context.abort_with_status(rpc_status.to_status(error.to_status()))


def _as_api_error(e: Exception) -> ApiError:
    if isinstance(e, ApiError):
        return e
    if isinstance(e, StorageError):  # the store's own errors: no driver's reach this layer
        return Unavailable(str(e), reason=e.reason)
    log.exception("unexpected error")
    return ApiError("internal error; the server logged it", reason=ErrorReason.ERROR_REASON_INTERNAL)


def _failure(e: Exception) -> tuple[str, ApiError | None]:
    """The code an exception ends the call with, and the error to send (None: already sent)."""
    if isinstance(e, grpc.aio.AbortError):
        return "ABORTED", None
    error = _as_api_error(e)
    return error.code.name, error


def _finish(method: str, code: str, started: float) -> None:
    _rpcs(method, code).inc()
    _rpc_seconds(method).observe(time.perf_counter() - started)


# Labelled metric children, looked up once: labels() takes a lock and builds a key each call.
@functools.lru_cache(maxsize=1024)
def _rpcs(method: str, code: str) -> Any:
    return RPCS.labels(method, code)


@functools.lru_cache(maxsize=256)
def _rpc_seconds(method: str) -> Any:
    return RPC_SECONDS.labels(method)


def _method(fn: Callable[..., Any]) -> str:
    """"WorkOrderService.CreateWorkOrder": the servicer class is named after its service."""
    return f"{fn.__qualname__.split('.')[0]}.{fn.__name__}"


def unary(fn: Callable[[S, Req, Ctx], Awaitable[R]]) -> Callable[[S, Req, Ctx], Awaitable[R]]:
    """Wraps a unary RPC with auth, input parsing, error mapping and metrics. (Plain
    try/finally rather than a context manager: this runs on every call.)"""
    method = _method(fn)

    @functools.wraps(fn)
    async def wrapper(self: S, request: Req, context: Ctx) -> R:
        started, code = time.perf_counter(), "OK"
        try:
            await _admit(self, method, request, context)
            return await fn(self, request, context)
        except Exception as e:  # noqa: BLE001 - never a bare INTERNAL for bad input
            code, error = _failure(e)
            if error is None:
                raise
            await _abort(context, error)  # every error leaves as a google.rpc.Status with details
        finally:
            _finish(method, code, started)

    return wrapper


def streaming(fn: Callable[[S, Req, Ctx], Awaitable[None]]) -> Callable[[S, Req, Ctx], Awaitable[None]]:
    """As `unary`, for a server-streaming RPC that sends its messages with `context.write`
    (so that a send can be given up on: see events.Subscription.sending)."""
    return unary(fn)
