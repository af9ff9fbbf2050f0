from google.protobuf import struct_pb2 as _struct_pb2
from runstatus.v1 import event_pb2 as _event_pb2
from runstatus.v1 import status_pb2 as _status_pb2
from runstatus.v1 import work_order_pb2 as _work_order_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateWorkOrderRequest(_message.Message):
    __slots__ = ("project_id", "workflow_id", "workflow_version", "input", "priority", "request_id")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_VERSION_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    workflow_id: str
    workflow_version: int
    input: _struct_pb2.Struct
    priority: int
    request_id: str
    def __init__(self, project_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., workflow_version: _Optional[int] = ..., input: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., priority: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateWorkOrderResponse(_message.Message):
    __slots__ = ("work_order", "run")
    WORK_ORDER_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    work_order: _work_order_pb2.WorkOrder
    run: _work_order_pb2.Run
    def __init__(self, work_order: _Optional[_Union[_work_order_pb2.WorkOrder, _Mapping]] = ..., run: _Optional[_Union[_work_order_pb2.Run, _Mapping]] = ...) -> None: ...

class GetWorkOrderRequest(_message.Message):
    __slots__ = ("work_order_id",)
    WORK_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    work_order_id: str
    def __init__(self, work_order_id: _Optional[str] = ...) -> None: ...

class GetWorkOrderResponse(_message.Message):
    __slots__ = ("work_order", "latest_run")
    WORK_ORDER_FIELD_NUMBER: _ClassVar[int]
    LATEST_RUN_FIELD_NUMBER: _ClassVar[int]
    work_order: _work_order_pb2.WorkOrder
    latest_run: _work_order_pb2.Run
    def __init__(self, work_order: _Optional[_Union[_work_order_pb2.WorkOrder, _Mapping]] = ..., latest_run: _Optional[_Union[_work_order_pb2.Run, _Mapping]] = ...) -> None: ...

class ListWorkOrdersRequest(_message.Message):
    __slots__ = ("project_id", "filter", "page_size", "page_token")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    filter: _work_order_pb2.WorkOrderFilter
    page_size: int
    page_token: str
    def __init__(self, project_id: _Optional[str] = ..., filter: _Optional[_Union[_work_order_pb2.WorkOrderFilter, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWorkOrdersResponse(_message.Message):
    __slots__ = ("work_orders", "next_page_token")
    WORK_ORDERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    work_orders: _containers.RepeatedCompositeFieldContainer[_work_order_pb2.WorkOrder]
    next_page_token: str
    def __init__(self, work_orders: _Optional[_Iterable[_Union[_work_order_pb2.WorkOrder, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CountWorkOrdersRequest(_message.Message):
    __slots__ = ("project_id", "filter")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    filter: _work_order_pb2.WorkOrderFilter
    def __init__(self, project_id: _Optional[str] = ..., filter: _Optional[_Union[_work_order_pb2.WorkOrderFilter, _Mapping]] = ...) -> None: ...

class StatusCount(_message.Message):
    __slots__ = ("status", "count")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    status: _status_pb2.RunStatus
    count: int
    def __init__(self, status: _Optional[_Union[_status_pb2.RunStatus, str]] = ..., count: _Optional[int] = ...) -> None: ...

class CountWorkOrdersResponse(_message.Message):
    __slots__ = ("counts", "total")
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.RepeatedCompositeFieldContainer[StatusCount]
    total: int
    def __init__(self, counts: _Optional[_Iterable[_Union[StatusCount, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class RetryWorkOrderRequest(_message.Message):
    __slots__ = ("work_order_id", "start_step_id", "request_id")
    WORK_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    START_STEP_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    work_order_id: str
    start_step_id: str
    request_id: str
    def __init__(self, work_order_id: _Optional[str] = ..., start_step_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RetryWorkOrderResponse(_message.Message):
    __slots__ = ("work_order", "run")
    WORK_ORDER_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    work_order: _work_order_pb2.WorkOrder
    run: _work_order_pb2.Run
    def __init__(self, work_order: _Optional[_Union[_work_order_pb2.WorkOrder, _Mapping]] = ..., run: _Optional[_Union[_work_order_pb2.Run, _Mapping]] = ...) -> None: ...

class RetryWorkOrdersRequest(_message.Message):
    __slots__ = ("project_id", "filter", "request_id")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    filter: _work_order_pb2.WorkOrderFilter
    request_id: str
    def __init__(self, project_id: _Optional[str] = ..., filter: _Optional[_Union[_work_order_pb2.WorkOrderFilter, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class RetryWorkOrdersResponse(_message.Message):
    __slots__ = ("retried_count", "skipped_count")
    RETRIED_COUNT_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_COUNT_FIELD_NUMBER: _ClassVar[int]
    retried_count: int
    skipped_count: int
    def __init__(self, retried_count: _Optional[int] = ..., skipped_count: _Optional[int] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _work_order_pb2.Run
    def __init__(self, run: _Optional[_Union[_work_order_pb2.Run, _Mapping]] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("work_order_id", "page_size", "page_token")
    WORK_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    work_order_id: str
    page_size: int
    page_token: str
    def __init__(self, work_order_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[_work_order_pb2.Run]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[_work_order_pb2.Run, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelRunRequest(_message.Message):
    __slots__ = ("run_id", "reason", "request_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    reason: str
    request_id: str
    def __init__(self, run_id: _Optional[str] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class CancelRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _work_order_pb2.Run
    def __init__(self, run: _Optional[_Union[_work_order_pb2.Run, _Mapping]] = ...) -> None: ...

class WatchWorkOrdersRequest(_message.Message):
    __slots__ = ("project_id", "filter", "after_cursor", "work_order_ids")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    AFTER_CURSOR_FIELD_NUMBER: _ClassVar[int]
    WORK_ORDER_IDS_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    filter: _work_order_pb2.WorkOrderFilter
    after_cursor: str
    work_order_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, project_id: _Optional[str] = ..., filter: _Optional[_Union[_work_order_pb2.WorkOrderFilter, _Mapping]] = ..., after_cursor: _Optional[str] = ..., work_order_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class WatchWorkOrdersResponse(_message.Message):
    __slots__ = ("event", "cursor")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    event: _event_pb2.Event
    cursor: str
    def __init__(self, event: _Optional[_Union[_event_pb2.Event, _Mapping]] = ..., cursor: _Optional[str] = ...) -> None: ...
