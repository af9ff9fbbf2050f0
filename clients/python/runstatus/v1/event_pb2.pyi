import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from runstatus.v1 import status_pb2 as _status_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_WORK_ORDER_CREATED: _ClassVar[EventType]
    EVENT_TYPE_RUN_CREATED: _ClassVar[EventType]
    EVENT_TYPE_RUN_STATUS_CHANGED: _ClassVar[EventType]
    EVENT_TYPE_RUN_CORRECTED: _ClassVar[EventType]
    EVENT_TYPE_RUN_CANCEL_REQUESTED: _ClassVar[EventType]
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_WORK_ORDER_CREATED: EventType
EVENT_TYPE_RUN_CREATED: EventType
EVENT_TYPE_RUN_STATUS_CHANGED: EventType
EVENT_TYPE_RUN_CORRECTED: EventType
EVENT_TYPE_RUN_CANCEL_REQUESTED: EventType

class Event(_message.Message):
    __slots__ = ("sequence", "type", "time", "project_id", "workflow_id", "work_order_id", "run_id", "run_number", "previous_status", "status", "work_order_status")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    WORK_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    WORK_ORDER_STATUS_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    type: EventType
    time: _timestamp_pb2.Timestamp
    project_id: str
    workflow_id: str
    work_order_id: str
    run_id: str
    run_number: int
    previous_status: _status_pb2.RunStatus
    status: _status_pb2.RunStatus
    work_order_status: _status_pb2.RunStatus
    def __init__(self, sequence: _Optional[int] = ..., type: _Optional[_Union[EventType, str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., project_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., work_order_id: _Optional[str] = ..., run_id: _Optional[str] = ..., run_number: _Optional[int] = ..., previous_status: _Optional[_Union[_status_pb2.RunStatus, str]] = ..., status: _Optional[_Union[_status_pb2.RunStatus, str]] = ..., work_order_status: _Optional[_Union[_status_pb2.RunStatus, str]] = ...) -> None: ...
