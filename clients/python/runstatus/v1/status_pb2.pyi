from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATUS_UNSPECIFIED: _ClassVar[RunStatus]
    RUN_STATUS_PENDING: _ClassVar[RunStatus]
    RUN_STATUS_RUNNING: _ClassVar[RunStatus]
    RUN_STATUS_SUCCESS: _ClassVar[RunStatus]
    RUN_STATUS_FAILED: _ClassVar[RunStatus]
    RUN_STATUS_CRASHED: _ClassVar[RunStatus]
    RUN_STATUS_CANCELLED: _ClassVar[RunStatus]
    RUN_STATUS_KILLED: _ClassVar[RunStatus]
    RUN_STATUS_EXCEPTION: _ClassVar[RunStatus]
    RUN_STATUS_LOST: _ClassVar[RunStatus]
    RUN_STATUS_REJECTED: _ClassVar[RunStatus]

class ErrorType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_TYPE_UNSPECIFIED: _ClassVar[ErrorType]
    ERROR_TYPE_JOB_ERROR: _ClassVar[ErrorType]
    ERROR_TYPE_TYPE_ERROR: _ClassVar[ErrorType]
    ERROR_TYPE_RANGE_ERROR: _ClassVar[ErrorType]
    ERROR_TYPE_SYNTAX_ERROR: _ClassVar[ErrorType]
    ERROR_TYPE_REFERENCE_ERROR: _ClassVar[ErrorType]
    ERROR_TYPE_SECURITY_ERROR: _ClassVar[ErrorType]
    ERROR_TYPE_IMPORT_ERROR: _ClassVar[ErrorType]
    ERROR_TYPE_OOM_ERROR: _ClassVar[ErrorType]
    ERROR_TYPE_TIMEOUT_ERROR: _ClassVar[ErrorType]
RUN_STATUS_UNSPECIFIED: RunStatus
RUN_STATUS_PENDING: RunStatus
RUN_STATUS_RUNNING: RunStatus
RUN_STATUS_SUCCESS: RunStatus
RUN_STATUS_FAILED: RunStatus
RUN_STATUS_CRASHED: RunStatus
RUN_STATUS_CANCELLED: RunStatus
RUN_STATUS_KILLED: RunStatus
RUN_STATUS_EXCEPTION: RunStatus
RUN_STATUS_LOST: RunStatus
RUN_STATUS_REJECTED: RunStatus
ERROR_TYPE_UNSPECIFIED: ErrorType
ERROR_TYPE_JOB_ERROR: ErrorType
ERROR_TYPE_TYPE_ERROR: ErrorType
ERROR_TYPE_RANGE_ERROR: ErrorType
ERROR_TYPE_SYNTAX_ERROR: ErrorType
ERROR_TYPE_REFERENCE_ERROR: ErrorType
ERROR_TYPE_SECURITY_ERROR: ErrorType
ERROR_TYPE_IMPORT_ERROR: ErrorType
ERROR_TYPE_OOM_ERROR: ErrorType
ERROR_TYPE_TIMEOUT_ERROR: ErrorType
STATUS_INFO_FIELD_NUMBER: _ClassVar[int]
status_info: _descriptor.FieldDescriptor
ERROR_TYPE_INFO_FIELD_NUMBER: _ClassVar[int]
error_type_info: _descriptor.FieldDescriptor

class StatusInfo(_message.Message):
    __slots__ = ("chip", "color", "terminal", "aborts_run", "description", "label", "notifies_admin")
    CHIP_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_FIELD_NUMBER: _ClassVar[int]
    ABORTS_RUN_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    NOTIFIES_ADMIN_FIELD_NUMBER: _ClassVar[int]
    chip: str
    color: str
    terminal: bool
    aborts_run: bool
    description: str
    label: str
    notifies_admin: bool
    def __init__(self, chip: _Optional[str] = ..., color: _Optional[str] = ..., terminal: _Optional[bool] = ..., aborts_run: _Optional[bool] = ..., description: _Optional[str] = ..., label: _Optional[str] = ..., notifies_admin: _Optional[bool] = ...) -> None: ...

class ErrorTypeInfo(_message.Message):
    __slots__ = ("status", "name", "example")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXAMPLE_FIELD_NUMBER: _ClassVar[int]
    status: RunStatus
    name: str
    example: str
    def __init__(self, status: _Optional[_Union[RunStatus, str]] = ..., name: _Optional[str] = ..., example: _Optional[str] = ...) -> None: ...
