import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from runstatus.v1 import error_pb2 as _error_pb2
from runstatus.v1 import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkOrder(_message.Message):
    __slots__ = ("id", "project_id", "workflow_id", "workflow_version", "input", "status", "latest_run_id", "run_count", "create_time", "update_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_VERSION_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LATEST_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    project_id: str
    workflow_id: str
    workflow_version: int
    input: _struct_pb2.Struct
    status: _status_pb2.RunStatus
    latest_run_id: str
    run_count: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., project_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., workflow_version: _Optional[int] = ..., input: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., status: _Optional[_Union[_status_pb2.RunStatus, str]] = ..., latest_run_id: _Optional[str] = ..., run_count: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("id", "work_order_id", "project_id", "number", "status", "priority", "start_step_id", "worker_id", "error", "cancel_requested", "lost_from_status", "corrected", "step_runs", "create_time", "claim_time", "start_time", "end_time", "lease_expire_time", "workflow_id", "workflow_version", "status_reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    WORK_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    START_STEP_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    LOST_FROM_STATUS_FIELD_NUMBER: _ClassVar[int]
    CORRECTED_FIELD_NUMBER: _ClassVar[int]
    STEP_RUNS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CLAIM_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    work_order_id: str
    project_id: str
    number: int
    status: _status_pb2.RunStatus
    priority: int
    start_step_id: str
    worker_id: str
    error: _error_pb2.RunError
    cancel_requested: bool
    lost_from_status: _status_pb2.RunStatus
    corrected: bool
    step_runs: _containers.RepeatedCompositeFieldContainer[StepRun]
    create_time: _timestamp_pb2.Timestamp
    claim_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    lease_expire_time: _timestamp_pb2.Timestamp
    workflow_id: str
    workflow_version: int
    status_reason: str
    def __init__(self, id: _Optional[str] = ..., work_order_id: _Optional[str] = ..., project_id: _Optional[str] = ..., number: _Optional[int] = ..., status: _Optional[_Union[_status_pb2.RunStatus, str]] = ..., priority: _Optional[int] = ..., start_step_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., error: _Optional[_Union[_error_pb2.RunError, _Mapping]] = ..., cancel_requested: _Optional[bool] = ..., lost_from_status: _Optional[_Union[_status_pb2.RunStatus, str]] = ..., corrected: _Optional[bool] = ..., step_runs: _Optional[_Iterable[_Union[StepRun, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., claim_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lease_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., workflow_id: _Optional[str] = ..., workflow_version: _Optional[int] = ..., status_reason: _Optional[str] = ...) -> None: ...

class StepRun(_message.Message):
    __slots__ = ("id", "run_id", "step_id", "status", "previous_step_run_id", "error", "output", "reused", "start_time", "end_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STEP_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    REUSED_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    run_id: str
    step_id: str
    status: _status_pb2.RunStatus
    previous_step_run_id: str
    error: _error_pb2.RunError
    output: _struct_pb2.Struct
    reused: bool
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., run_id: _Optional[str] = ..., step_id: _Optional[str] = ..., status: _Optional[_Union[_status_pb2.RunStatus, str]] = ..., previous_step_run_id: _Optional[str] = ..., error: _Optional[_Union[_error_pb2.RunError, _Mapping]] = ..., output: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., reused: _Optional[bool] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WorkOrderFilter(_message.Message):
    __slots__ = ("statuses", "workflow_id", "create_time_start", "create_time_end")
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_START_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_END_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedScalarFieldContainer[_status_pb2.RunStatus]
    workflow_id: str
    create_time_start: _timestamp_pb2.Timestamp
    create_time_end: _timestamp_pb2.Timestamp
    def __init__(self, statuses: _Optional[_Iterable[_Union[_status_pb2.RunStatus, str]]] = ..., workflow_id: _Optional[str] = ..., create_time_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
