"""Plain Python views of the API's messages: datetimes, dicts and enum values.

Each view keeps the message it came from as `.proto`, for anything it does not map.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from runstatus.v1 import error_pb2, event_pb2, project_pb2, work_order_pb2, workflow_pb2
from runstatus.v1.status_pb2 import ErrorType, RunStatus


def to_datetime(ts: Timestamp) -> datetime | None:
    """None for an unset timestamp."""
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=timezone.utc)


def to_timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value if value.tzinfo else value.replace(tzinfo=timezone.utc))
    return ts


def to_duration(value: timedelta) -> Duration:
    d = Duration()
    d.FromTimedelta(value)
    return d


def to_struct(value: dict[str, Any] | None) -> Struct:
    s = Struct()
    s.update(value or {})
    return s


def to_dict(value: Struct) -> dict[str, Any]:
    return json_format.MessageToDict(value)


@dataclass(frozen=True)
class Classification:
    status: RunStatus.ValueType
    error_type: ErrorType.ValueType
    aborts_run: bool
    rule: str

    @classmethod
    def of(cls, m: error_pb2.Classification) -> Classification:
        return cls(m.status, m.error_type, m.aborts_run, m.rule)


@dataclass(frozen=True)
class RunError:
    name: str
    message: str
    classification: Classification
    step_id: str
    subtype: str = ""  # the wrapped error's class, if the error was a wrapper
    severity: error_pb2.ErrorSeverity.ValueType = error_pb2.ErrorSeverity.ERROR_SEVERITY_UNSPECIFIED

    @classmethod
    def of(cls, m: error_pb2.RunError) -> RunError | None:
        if not m.HasField("report") and not m.HasField("classification"):
            return None
        return cls(m.report.name, m.report.message, Classification.of(m.classification), m.step_id,
                   m.report.subtype, m.report.severity)


@dataclass(frozen=True)
class StepRun:
    id: str
    step_id: str
    status: RunStatus.ValueType
    previous_step_run_id: str
    error: RunError | None
    output: dict[str, Any]
    reused: bool
    start_time: datetime | None
    end_time: datetime | None
    proto: work_order_pb2.StepRun = field(repr=False, compare=False)

    @classmethod
    def of(cls, m: work_order_pb2.StepRun) -> StepRun:
        return cls(m.id, m.step_id, m.status, m.previous_step_run_id, RunError.of(m.error), to_dict(m.output),
                   m.reused, to_datetime(m.start_time), to_datetime(m.end_time), m)


@dataclass(frozen=True)
class Run:
    id: str
    work_order_id: str
    number: int
    status: RunStatus.ValueType
    error: RunError | None
    status_reason: str
    cancel_requested: bool
    step_runs: list[StepRun]
    create_time: datetime | None
    start_time: datetime | None
    end_time: datetime | None
    proto: work_order_pb2.Run = field(repr=False, compare=False)

    @classmethod
    def of(cls, m: work_order_pb2.Run) -> Run:
        return cls(m.id, m.work_order_id, m.number, m.status, RunError.of(m.error), m.status_reason,
                   m.cancel_requested, [StepRun.of(s) for s in m.step_runs], to_datetime(m.create_time),
                   to_datetime(m.start_time), to_datetime(m.end_time), m)


@dataclass(frozen=True)
class WorkOrder:
    id: str
    project_id: str
    workflow_id: str
    workflow_version: int
    status: RunStatus.ValueType
    input: dict[str, Any]
    latest_run_id: str
    run_count: int
    create_time: datetime | None
    update_time: datetime | None
    latest_run: Run | None = None
    proto: work_order_pb2.WorkOrder = field(default_factory=work_order_pb2.WorkOrder, repr=False, compare=False)

    @classmethod
    def of(cls, m: work_order_pb2.WorkOrder, latest_run: work_order_pb2.Run | None = None) -> WorkOrder:
        return cls(m.id, m.project_id, m.workflow_id, m.workflow_version, m.status, to_dict(m.input),
                   m.latest_run_id, m.run_count, to_datetime(m.create_time), to_datetime(m.update_time),
                   Run.of(latest_run) if latest_run is not None else None, m)


@dataclass(frozen=True)
class Event:
    cursor: str
    type: event_pb2.EventType.ValueType
    time: datetime | None
    work_order_id: str
    run_id: str
    run_number: int
    previous_status: RunStatus.ValueType
    status: RunStatus.ValueType
    work_order_status: RunStatus.ValueType
    proto: event_pb2.Event = field(repr=False, compare=False)

    @classmethod
    def of(cls, m: event_pb2.Event, cursor: str) -> Event:
        return cls(cursor, m.type, to_datetime(m.time), m.work_order_id, m.run_id, m.run_number,
                   m.previous_status, m.status, m.work_order_status, m)


Workflow = workflow_pb2.Workflow
Project = project_pb2.Project
