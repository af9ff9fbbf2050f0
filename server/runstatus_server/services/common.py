"""What every service shares: the app's parts, error mapping, request checks."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct
from grpc_status import rpc_status

from runstatus.v1.error_pb2 import ErrorReport, ErrorSeverity, ErrorSource
from runstatus.v1.error_reason_pb2 import ErrorReason
from runstatus.v1.status_pb2 import RunStatus
from runstatus.v1.work_order_pb2 import WorkOrderFilter

from ..auth import Authenticator, Principal, authorize, caller
from ..classifier import Classifier
from ..errors import ApiError, InvalidArgument, Unavailable
from ..limits import Limits
from ..metrics import RPC_SECONDS, RPCS
from ..events import EventFeed
from ..store.base import StorageError, Store
from ..worker import Leases
from .registry import Undecodable

log = logging.getLogger("runstatus.rpc")


MAX_FILTER_STATUSES = 32
# A WorkOrderFilter's time bounds (its Timestamp fields): each checked as a timestamp;
# WatchWorkOrders takes none.
TIME_RANGE_FIELDS = tuple(f.name for f in WorkOrderFilter.DESCRIPTOR.fields
                          if f.message_type is not None and f.message_type.full_name == "google.protobuf.Timestamp")


def struct_depth(value: Struct) -> int:
    """How many Structs and lists deep a Struct nests (1 for a flat one)."""
    deepest, todo = 0, [(v, 1) for v in value.fields.values()]
    while todo:
        item, depth = todo.pop()
        deepest = max(deepest, depth)
        kind = item.WhichOneof("kind")
        if kind == "struct_value":
            todo += [(v, depth + 1) for v in item.struct_value.fields.values()]
        elif kind == "list_value":
            todo += [(v, depth + 1) for v in item.list_value.values]
    return deepest


@dataclass
class App:
    store: Store
    classifier: Classifier
    feed: EventFeed
    leases: Leases
    limits: Limits
    # None: no authentication (loopback only, or explicitly insecure).
    authenticator: Authenticator | None = None


async def _admit(servicer: Any, method: str, request: Message, context: grpc.aio.ServicerContext) -> None:
    """Before every RPC: who is calling and may they call this method (auth.py has the rules),
    kept for the call's task (each RPC runs in a task of its own); and a request that parsed."""
    authenticator: Authenticator | None = servicer.app.authenticator
    who: Principal | None = None
    if authenticator is not None:
        metadata = {key: value for key, value in context.invocation_metadata() or ()}
        who = await authenticator.authenticate(str(metadata.get("authorization", "")))
        authorize(who, method)
    caller.set(who)
    if isinstance(request, Undecodable):
        raise InvalidArgument([("request", f"cannot be parsed: {request.reason}")], reason=ErrorReason.ERROR_REASON_MALFORMED_REQUEST)


async def _abort(context: grpc.aio.ServicerContext, error: ApiError) -> None:
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


def unary(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a unary RPC with auth, input parsing, error mapping and metrics. (Plain
    try/finally rather than a context manager: this runs on every call.)"""
    method = _method(fn)

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Message, context: grpc.aio.ServicerContext) -> Any:
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


def streaming(fn: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """As `unary`, for a server-streaming RPC that sends its messages with `context.write`
    (so that a send can be given up on: see events.Subscription.sending)."""
    method = _method(fn)

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Message, context: grpc.aio.ServicerContext) -> None:
        started, code = time.perf_counter(), "OK"
        try:
            await _admit(self, method, request, context)
            await fn(self, request, context)
        except Exception as e:  # noqa: BLE001 - never a bare INTERNAL for bad input
            code, error = _failure(e)
            if error is None:
                raise
            await _abort(context, error)  # every error leaves as a google.rpc.Status with details
        finally:
            _finish(method, code, started)

    return wrapper


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


class Checks:
    """Collects field violations so that one INVALID_ARGUMENT names every wrong field."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.violations: list[tuple[str, str]] = []

    def add(self, field: str, description: str) -> None:
        self.violations.append((field, description))

    def short(self, field: str, value: str, *, required: bool = False) -> None:
        if required and not value:
            self.add(field, "is required")
        elif len(value) > self.limits.max_short:
            self.add(field, f"must be at most {self.limits.max_short} characters")

    def struct(self, field: str, value: Struct, max_bytes: int) -> None:
        if value.ByteSize() > max_bytes:
            self.add(field, f"must be at most {max_bytes} bytes encoded")
        elif struct_depth(value) > self.limits.max_struct_depth:
            # Deeper states could not be read back: answers nest them further, past protobuf's limit.
            self.add(field, f"must nest at most {self.limits.max_struct_depth} levels deep")

    def enum(self, field: str, value: int, enum: Any, *, allow_unspecified: bool = True) -> None:
        if value not in enum.values() or (not allow_unspecified and value == 0):
            names = ", ".join(n for n in enum.keys() if not n.endswith("_UNSPECIFIED"))
            self.add(field, f"must be one of {names}")

    def error_report(self, field: str, report: ErrorReport) -> None:
        if not report.name.strip():
            self.add(f"{field}.name", "is required: the error's class name as thrown")
        elif _utf8_len(report.name) > self.limits.max_error_name:
            self.add(f"{field}.name", f"must be at most {self.limits.max_error_name} bytes (UTF-8)")
        # A wrapped error's class name: optional, bounded as the name is.
        if _utf8_len(report.subtype) > self.limits.max_error_name:
            self.add(f"{field}.subtype", f"must be at most {self.limits.max_error_name} bytes (UTF-8)")
        # Bytes, not characters: an error is stored, and answers carry it (limits.py).
        if _utf8_len(report.message) > self.limits.max_error_message:
            self.add(f"{field}.message", f"must be at most {self.limits.max_error_message} bytes (UTF-8)")
        if _utf8_len(report.stack) > self.limits.max_error_stack:
            self.add(f"{field}.stack", f"must be at most {self.limits.max_error_stack} bytes (UTF-8)")
        self.short(f"{field}.language", report.language)
        self.enum(f"{field}.source", report.source, ErrorSource)
        self.enum(f"{field}.severity", report.severity, ErrorSeverity)
        if report.http_status and not 100 <= report.http_status <= 599:
            self.add(f"{field}.http_status", "must be an HTTP status (100-599) or 0 for none")

    def work_order_filter(self, field: str, flt: WorkOrderFilter) -> None:
        if len(flt.statuses) > MAX_FILTER_STATUSES:
            self.add(f"{field}.statuses", f"at most {MAX_FILTER_STATUSES} statuses")
            return
        for i, status in enumerate(flt.statuses):
            self.enum(f"{field}.statuses[{i}]", status, RunStatus, allow_unspecified=False)
        self.short(f"{field}.workflow_id", flt.workflow_id)
        for name in TIME_RANGE_FIELDS:
            if flt.HasField(name):
                ts = getattr(flt, name)
                if not (0 <= ts.seconds < 253402300800 and 0 <= ts.nanos < 1_000_000_000):
                    self.add(f"{field}.{name}", "must be a valid timestamp")

    def done(self) -> None:
        if self.violations:
            raise InvalidArgument(self.violations)
