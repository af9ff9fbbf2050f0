import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from runstatus.v1 import error_pb2 as _error_pb2
from runstatus.v1 import status_pb2 as _status_pb2
from runstatus.v1 import work_order_pb2 as _work_order_pb2
from runstatus.v1 import workflow_pb2 as _workflow_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClaimRunsRequest(_message.Message):
    __slots__ = ("project_id", "worker_id", "max_runs", "request_id")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_RUNS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    worker_id: str
    max_runs: int
    request_id: str
    def __init__(self, project_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., max_runs: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class ClaimedRun(_message.Message):
    __slots__ = ("run", "workflow", "input", "lease_token", "lease_expire_time", "heartbeat_interval")
    RUN_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    run: _work_order_pb2.Run
    workflow: _workflow_pb2.Workflow
    input: _struct_pb2.Struct
    lease_token: str
    lease_expire_time: _timestamp_pb2.Timestamp
    heartbeat_interval: _duration_pb2.Duration
    def __init__(self, run: _Optional[_Union[_work_order_pb2.Run, _Mapping]] = ..., workflow: _Optional[_Union[_workflow_pb2.Workflow, _Mapping]] = ..., input: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., lease_token: _Optional[str] = ..., lease_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., heartbeat_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ClaimRunsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[ClaimedRun]
    def __init__(self, runs: _Optional[_Iterable[_Union[ClaimedRun, _Mapping]]] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("run_id", "lease_token")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    lease_token: str
    def __init__(self, run_id: _Optional[str] = ..., lease_token: _Optional[str] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("lease_expire_time", "status", "stop")
    LEASE_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    lease_expire_time: _timestamp_pb2.Timestamp
    status: _status_pb2.RunStatus
    stop: bool
    def __init__(self, lease_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[_status_pb2.RunStatus, str]] = ..., stop: _Optional[bool] = ...) -> None: ...

class StartRunRequest(_message.Message):
    __slots__ = ("run_id", "lease_token", "request_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    lease_token: str
    request_id: str
    def __init__(self, run_id: _Optional[str] = ..., lease_token: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class StartRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _work_order_pb2.Run
    def __init__(self, run: _Optional[_Union[_work_order_pb2.Run, _Mapping]] = ...) -> None: ...

class StartStepRequest(_message.Message):
    __slots__ = ("run_id", "lease_token", "step_id", "previous_step_run_id", "request_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STEP_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    lease_token: str
    step_id: str
    previous_step_run_id: str
    request_id: str
    def __init__(self, run_id: _Optional[str] = ..., lease_token: _Optional[str] = ..., step_id: _Optional[str] = ..., previous_step_run_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class StartStepResponse(_message.Message):
    __slots__ = ("step_run",)
    STEP_RUN_FIELD_NUMBER: _ClassVar[int]
    step_run: _work_order_pb2.StepRun
    def __init__(self, step_run: _Optional[_Union[_work_order_pb2.StepRun, _Mapping]] = ...) -> None: ...

class CompleteStepRequest(_message.Message):
    __slots__ = ("run_id", "lease_token", "step_run_id", "error", "output", "request_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STEP_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    lease_token: str
    step_run_id: str
    error: _error_pb2.ErrorReport
    output: _struct_pb2.Struct
    request_id: str
    def __init__(self, run_id: _Optional[str] = ..., lease_token: _Optional[str] = ..., step_run_id: _Optional[str] = ..., error: _Optional[_Union[_error_pb2.ErrorReport, _Mapping]] = ..., output: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CompleteStepResponse(_message.Message):
    __slots__ = ("step_run", "classification", "run_status")
    STEP_RUN_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    RUN_STATUS_FIELD_NUMBER: _ClassVar[int]
    step_run: _work_order_pb2.StepRun
    classification: _error_pb2.Classification
    run_status: _status_pb2.RunStatus
    def __init__(self, step_run: _Optional[_Union[_work_order_pb2.StepRun, _Mapping]] = ..., classification: _Optional[_Union[_error_pb2.Classification, _Mapping]] = ..., run_status: _Optional[_Union[_status_pb2.RunStatus, str]] = ...) -> None: ...

class CompleteRunRequest(_message.Message):
    __slots__ = ("run_id", "lease_token", "error", "request_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    lease_token: str
    error: _error_pb2.ErrorReport
    request_id: str
    def __init__(self, run_id: _Optional[str] = ..., lease_token: _Optional[str] = ..., error: _Optional[_Union[_error_pb2.ErrorReport, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CompleteRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _work_order_pb2.Run
    def __init__(self, run: _Optional[_Union[_work_order_pb2.Run, _Mapping]] = ...) -> None: ...
