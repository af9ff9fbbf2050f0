from runstatus.v1 import status_pb2 as _status_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_SOURCE_UNSPECIFIED: _ClassVar[ErrorSource]
    ERROR_SOURCE_JOB: _ClassVar[ErrorSource]
    ERROR_SOURCE_RUNTIME: _ClassVar[ErrorSource]
ERROR_SOURCE_UNSPECIFIED: ErrorSource
ERROR_SOURCE_JOB: ErrorSource
ERROR_SOURCE_RUNTIME: ErrorSource

class ErrorReport(_message.Message):
    __slots__ = ("name", "message", "source", "language", "http_status", "stack")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    STACK_FIELD_NUMBER: _ClassVar[int]
    name: str
    message: str
    source: ErrorSource
    language: str
    http_status: int
    stack: str
    def __init__(self, name: _Optional[str] = ..., message: _Optional[str] = ..., source: _Optional[_Union[ErrorSource, str]] = ..., language: _Optional[str] = ..., http_status: _Optional[int] = ..., stack: _Optional[str] = ...) -> None: ...

class Classification(_message.Message):
    __slots__ = ("status", "error_type", "aborts_run", "rule")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ABORTS_RUN_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    status: _status_pb2.RunStatus
    error_type: _status_pb2.ErrorType
    aborts_run: bool
    rule: str
    def __init__(self, status: _Optional[_Union[_status_pb2.RunStatus, str]] = ..., error_type: _Optional[_Union[_status_pb2.ErrorType, str]] = ..., aborts_run: _Optional[bool] = ..., rule: _Optional[str] = ...) -> None: ...

class RunError(_message.Message):
    __slots__ = ("report", "classification", "step_id")
    REPORT_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    report: ErrorReport
    classification: Classification
    step_id: str
    def __init__(self, report: _Optional[_Union[ErrorReport, _Mapping]] = ..., classification: _Optional[_Union[Classification, _Mapping]] = ..., step_id: _Optional[str] = ...) -> None: ...
