"""The seed's status table, read from the generated enum descriptors.

The table lives in proto/runstatus/v1/status.proto as custom enum-value
options; nothing here re-types it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from runstatus.v1 import status_pb2
from runstatus.v1.status_pb2 import ErrorType, RunStatus


@dataclass(frozen=True)
class StatusRow:
    status: RunStatus.ValueType
    name: str  # "RUN_STATUS_FAILED"
    label: str  # the seed's spelling, "Failed"
    chip: str
    color: str
    terminal: bool
    aborts_run: bool | None  # None where the seed says "-"
    notifies_admin: bool
    description: str


@dataclass(frozen=True)
class ErrorTypeRow:
    error_type: ErrorType.ValueType
    name: str  # the seed's spelling, "OomError"
    status: RunStatus.ValueType
    example: str


@cache
def statuses() -> dict[RunStatus.ValueType, StatusRow]:
    """Every RunStatus but UNSPECIFIED, in enum order."""
    rows = {}
    for value in RunStatus.DESCRIPTOR.values:
        options = value.GetOptions()
        if not options.HasExtension(status_pb2.status_info):
            continue
        info = options.Extensions[status_pb2.status_info]
        rows[RunStatus.ValueType(value.number)] = StatusRow(
            status=RunStatus.ValueType(value.number),
            name=value.name,
            label=info.label,
            chip=info.chip,
            color=info.color,
            terminal=info.terminal,
            aborts_run=info.aborts_run if info.HasField("aborts_run") else None,
            notifies_admin=info.notifies_admin,
            description=info.description,
        )
    return rows


@cache
def error_types() -> dict[ErrorType.ValueType, ErrorTypeRow]:
    """Every ErrorType but UNSPECIFIED, in enum order."""
    rows = {}
    for value in ErrorType.DESCRIPTOR.values:
        options = value.GetOptions()
        if not options.HasExtension(status_pb2.error_type_info):
            continue
        info = options.Extensions[status_pb2.error_type_info]
        rows[ErrorType.ValueType(value.number)] = ErrorTypeRow(
            error_type=ErrorType.ValueType(value.number),
            name=info.name,
            status=RunStatus.ValueType(info.status),
            example=info.example,
        )
    return rows


def chip(status: RunStatus.ValueType) -> str:
    return statuses()[status].chip


def is_terminal(status: RunStatus.ValueType) -> bool:
    row = statuses().get(status)
    return row is not None and row.terminal


def aborts_run(status: RunStatus.ValueType) -> bool:
    """True if a step ending in this status ends the whole run at once."""
    row = statuses().get(status)
    return bool(row and row.aborts_run)


def status_of(error_type: ErrorType.ValueType) -> RunStatus.ValueType:
    """The run status an error type leads to."""
    return error_types()[error_type].status


def label(status: RunStatus.ValueType) -> str:
    row = statuses().get(status)
    return row.label if row else "Unspecified"


def markdown() -> str:
    """The table as markdown, as the README shows it."""
    types: dict[int, list[str]] = {}
    for row in error_types().values():
        types.setdefault(row.status, []).append(row.name)
    lines = [
        "| status | chip | terminal | aborts the run | error types | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for s in statuses().values():
        aborts = {True: "yes", False: "no", None: "–"}[s.aborts_run]
        lines.append(
            f"| {s.name} | {s.chip} | {'yes' if s.terminal else 'no'} | {aborts} | "
            f"{', '.join(types.get(s.status, [])) or '–'} | {s.description} |"
        )
    return "\n".join(lines)
