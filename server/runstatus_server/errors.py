"""Errors the server answers with, as google.rpc.Status with typed details (AIP-193).

Domain code raises these; the RPC layer turns them into a gRPC status whose
details carry an ErrorInfo (reason, metadata) and, for bad input, a BadRequest
with one violation per wrong field. Every reason is an ErrorReason of the contract
(proto/runstatus/v1/error_reason.proto), which says the metadata each one carries.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from runstatus.errors import parse_reason, wire_reason
from runstatus.v1.error_reason_pb2 import ErrorReason
from runstatus.v1.status_pb2 import RunStatus

DOMAIN = "runstatus.v1"
# Errors travel in trailers, which clients cap (8-16 KiB): every text in them is bounded.
MAX_TEXT = 300
MAX_VIOLATIONS = 20


def short(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ApiError(Exception):
    code = grpc.StatusCode.INTERNAL
    rpc_code = code_pb2.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        reason: ErrorReason.ValueType,
        metadata: dict[str, str] | None = None,
        violations: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = short(message, 4 * MAX_TEXT)
        self.error_reason = reason
        self.reason = wire_reason(reason)
        self.metadata = {k: short(v) for k, v in (metadata or {}).items()}
        found = list(violations or [])
        self.violations = [(short(f), short(d)) for f, d in found[:MAX_VIOLATIONS]]
        if len(found) > MAX_VIOLATIONS:
            # Every violation names a field (AIP-193): the first one not listed stands for the rest.
            (field, description), left = found[MAX_VIOLATIONS], len(found) - MAX_VIOLATIONS - 1
            self.violations.append((short(field), short(f"{description}; and {left} more not listed" if left
                                                        else description)))

    def to_status(self) -> status_pb2.Status:
        details = [error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN, metadata=self.metadata)]
        if self.violations:
            details.append(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                        for f, d in self.violations
                    ]
                )
            )
        packed = []
        for detail in details:
            any_ = any_pb2.Any()
            any_.Pack(detail)
            packed.append(any_)
        return status_pb2.Status(code=self.rpc_code, message=self.message, details=packed)


class InvalidArgument(ApiError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    rpc_code = code_pb2.INVALID_ARGUMENT

    def __init__(self, violations: list[tuple[str, str]], *,
                 reason: ErrorReason.ValueType = ErrorReason.ERROR_REASON_INVALID_ARGUMENT) -> None:
        message = "; ".join(f"{short(f, 80)}: {short(d, 120)}" for f, d in violations[:5])
        if len(violations) > 5:
            message += f"; and {len(violations) - 5} more"
        super().__init__(message, reason=reason, violations=violations)


def invalid(field: str, description: str) -> InvalidArgument:
    return InvalidArgument([(field, description)])


# The reason for each kind of resource that may be missing, or already there.
NOT_FOUND = {
    "project": ErrorReason.ERROR_REASON_PROJECT_NOT_FOUND,
    "workflow": ErrorReason.ERROR_REASON_WORKFLOW_NOT_FOUND,
    "work order": ErrorReason.ERROR_REASON_WORK_ORDER_NOT_FOUND,
    "run": ErrorReason.ERROR_REASON_RUN_NOT_FOUND,
    "step run": ErrorReason.ERROR_REASON_STEP_RUN_NOT_FOUND,
    "token": ErrorReason.ERROR_REASON_TOKEN_NOT_FOUND,
    "notification subscription": ErrorReason.ERROR_REASON_NOTIFICATION_SUBSCRIPTION_NOT_FOUND,
    "notification delivery": ErrorReason.ERROR_REASON_NOTIFICATION_DELIVERY_NOT_FOUND,
}
ALREADY_EXISTS = {"project": ErrorReason.ERROR_REASON_PROJECT_ALREADY_EXISTS}


class NotFound(ApiError):
    code = grpc.StatusCode.NOT_FOUND
    rpc_code = code_pb2.NOT_FOUND

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(
            f"{kind} {short(name, 100)!r} not found", reason=NOT_FOUND[kind], metadata={"resource": kind, "name": name},
        )


class AlreadyExists(ApiError):
    code = grpc.StatusCode.ALREADY_EXISTS
    rpc_code = code_pb2.ALREADY_EXISTS

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(
            f"{kind} {short(name, 100)!r} already exists", reason=ALREADY_EXISTS[kind],
            metadata={"resource": kind, "name": name},
        )


class FailedPrecondition(ApiError):
    """A report or request that does not fit the current state.

    Where a run (or step run) is involved, `current_status` is its status: the metadata says
    it as "current_status" (e.g. "RUN_STATUS_CRASHED"), and "run_id" the run where given.
    This is the one place that answer is built.
    """

    code = grpc.StatusCode.FAILED_PRECONDITION
    rpc_code = code_pb2.FAILED_PRECONDITION

    def __init__(
        self, message: str, *, reason: ErrorReason.ValueType, current_status: RunStatus.ValueType | None = None,
        run_id: str = "", metadata: dict[str, str] | None = None,
    ) -> None:
        about: dict[str, str] = {}
        if current_status is not None:
            about["current_status"] = RunStatus.Name(current_status)
        if run_id:
            about["run_id"] = run_id
        super().__init__(message, reason=reason, metadata={**about, **(metadata or {})})


@dataclass(frozen=True)
class Refused:
    """A write's outcome when it refuses after changing something that must stay changed: a
    report on a run whose cancel was requested ends the run CANCELLED, then is refused. The
    write returns it like an answer, so its change commits; `idempotency.once` keeps it as
    the request's answer (a repeat gets the same refusal); the service raises it after the
    commit (`idempotency.answer_or_raise`)."""

    error: ApiError


class KeptRefusal(ApiError):
    """A refusal given again, as it was kept (idempotency.once): the same status, word for word."""

    _CODES = {code.value[0]: code for code in grpc.StatusCode}

    def __init__(self, status: status_pb2.Status) -> None:
        info = error_details_pb2.ErrorInfo()
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                detail.Unpack(info)
        super().__init__(status.message, reason=parse_reason(info.reason), metadata=dict(info.metadata))
        self.code = self._CODES.get(status.code, grpc.StatusCode.UNKNOWN)
        self.rpc_code = status.code
        self.status = status

    def to_status(self) -> status_pb2.Status:
        return self.status


class Unavailable(ApiError):
    code = grpc.StatusCode.UNAVAILABLE
    rpc_code = code_pb2.UNAVAILABLE

    def __init__(self, message: str, *,
                 reason: ErrorReason.ValueType = ErrorReason.ERROR_REASON_STORAGE_UNAVAILABLE) -> None:
        super().__init__(message, reason=reason)


class ResourceExhausted(ApiError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    rpc_code = code_pb2.RESOURCE_EXHAUSTED

    def __init__(self, message: str, *, reason: ErrorReason.ValueType, metadata: dict[str, str] | None = None) -> None:
        super().__init__(message, reason=reason, metadata=metadata)


class Unauthenticated(ApiError):
    code = grpc.StatusCode.UNAUTHENTICATED
    rpc_code = code_pb2.UNAUTHENTICATED

    def __init__(self, message: str) -> None:
        super().__init__(message, reason=ErrorReason.ERROR_REASON_UNAUTHENTICATED)


class PermissionDenied(ApiError):
    code = grpc.StatusCode.PERMISSION_DENIED
    rpc_code = code_pb2.PERMISSION_DENIED

    def __init__(self, message: str, *, role: str, method: str) -> None:
        super().__init__(message, reason=ErrorReason.ERROR_REASON_PERMISSION_DENIED, metadata={"role": role, "method": method})
