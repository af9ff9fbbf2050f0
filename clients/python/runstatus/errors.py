"""gRPC errors as Python exceptions, carrying the server's ErrorInfo and field violations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from runstatus.v1.error_reason_pb2 import ErrorReason

REASON_PREFIX = "ERROR_REASON_"


def parse_reason(wire: str) -> ErrorReason.ValueType:
    """An ErrorInfo.reason ("RUN_ENDED") as its ErrorReason; ERROR_REASON_UNSPECIFIED for one
    this client does not know (a newer server's)."""
    if not wire or wire.startswith(REASON_PREFIX) or wire == "UNSPECIFIED":
        return ErrorReason.ERROR_REASON_UNSPECIFIED
    name = REASON_PREFIX + wire
    return ErrorReason.Value(name) if name in ErrorReason.keys() else ErrorReason.ERROR_REASON_UNSPECIFIED


def wire_reason(reason: ErrorReason.ValueType) -> str:
    """What ErrorInfo.reason says for an ErrorReason: its name without the prefix."""
    return ErrorReason.Name(reason).removeprefix(REASON_PREFIX)


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass
class RunstatusError(Exception):
    """A call the server refused (or could not be made). `reason` and `metadata` come from
    the google.rpc.ErrorInfo; `violations` from the BadRequest, for INVALID_ARGUMENT."""

    message: str
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    violations: list[FieldViolation] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}" + (f" [{self.reason}]" if self.reason else "")

    @property
    def error_reason(self) -> ErrorReason.ValueType:
        """`reason` as the contract's ErrorReason (error_reason.proto), to branch on:
        `e.error_reason == ErrorReason.ERROR_REASON_RUN_ENDED`."""
        return parse_reason(self.reason)

    @property
    def current_status(self) -> str:
        """For a refused report: the run's status at the time, e.g. "RUN_STATUS_CRASHED"."""
        return self.metadata.get("current_status", "")


class InvalidArgument(RunstatusError):
    pass


class NotFound(RunstatusError):
    pass


class AlreadyExists(RunstatusError):
    pass


class FailedPrecondition(RunstatusError):
    pass


class Unauthenticated(RunstatusError):
    pass


class PermissionDenied(RunstatusError):
    pass


class Unavailable(RunstatusError):
    pass


class DeadlineExceeded(RunstatusError):
    pass


class OutOfRange(RunstatusError):
    pass


class CursorExpired(OutOfRange):
    """A watch's cursor is older than the oldest event the server keeps (retention pruned the
    log past it): the events after it are gone. Re-read what you need (list_work_orders), then
    watch with from_now=True. A watch ends with this; it never resumes by itself."""

    @property
    def oldest_cursor(self) -> str:
        """The oldest cursor a watch can still resume after."""
        return self.metadata.get("oldest_cursor", "")


_BY_CODE: dict[grpc.StatusCode, type[RunstatusError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRange,
}


def _status(call: Any) -> Any:
    for key, value in call.trailing_metadata() or ():
        if key == rpc_status.GRPC_DETAILS_METADATA_KEY:
            from google.rpc import status_pb2

            return status_pb2.Status.FromString(value)
    return None


def from_rpc_error(error: grpc.RpcError) -> RunstatusError:
    # Blocking calls raise grpc.Call errors, asyncio ones AioRpcError: both have these methods.
    call: Any = error if hasattr(error, "code") and hasattr(error, "trailing_metadata") else None
    code = call.code() if call else grpc.StatusCode.UNKNOWN
    message = (call.details() if call else str(error)) or ""
    reason, metadata, violations = "", {}, []
    status = _status(call) if call else None
    details: list[Any] = list(status.details) if status else []
    for detail in details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations = [FieldViolation(v.field, v.description) for v in bad.field_violations]
    kind = _BY_CODE.get(code, RunstatusError)
    if reason == wire_reason(ErrorReason.ERROR_REASON_CURSOR_EXPIRED):
        kind = CursorExpired
    return kind(message, code, reason, metadata, violations)
