import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EdgeCondition(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EDGE_CONDITION_UNSPECIFIED: _ClassVar[EdgeCondition]
    EDGE_CONDITION_ALWAYS: _ClassVar[EdgeCondition]
    EDGE_CONDITION_ON_SUCCESS: _ClassVar[EdgeCondition]
    EDGE_CONDITION_ON_FAILURE: _ClassVar[EdgeCondition]
    EDGE_CONDITION_EXPRESSION: _ClassVar[EdgeCondition]
EDGE_CONDITION_UNSPECIFIED: EdgeCondition
EDGE_CONDITION_ALWAYS: EdgeCondition
EDGE_CONDITION_ON_SUCCESS: EdgeCondition
EDGE_CONDITION_ON_FAILURE: EdgeCondition
EDGE_CONDITION_EXPRESSION: EdgeCondition

class Step(_message.Message):
    __slots__ = ("id", "name", "adaptor", "body")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADAPTOR_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    adaptor: str
    body: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., adaptor: _Optional[str] = ..., body: _Optional[str] = ...) -> None: ...

class Edge(_message.Message):
    __slots__ = ("source_step_id", "target_step_id", "condition", "expression")
    SOURCE_STEP_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_STEP_ID_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    source_step_id: str
    target_step_id: str
    condition: EdgeCondition
    expression: str
    def __init__(self, source_step_id: _Optional[str] = ..., target_step_id: _Optional[str] = ..., condition: _Optional[_Union[EdgeCondition, str]] = ..., expression: _Optional[str] = ...) -> None: ...

class Workflow(_message.Message):
    __slots__ = ("id", "version", "project_id", "name", "steps", "edges", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    project_id: str
    name: str
    steps: _containers.RepeatedCompositeFieldContainer[Step]
    edges: _containers.RepeatedCompositeFieldContainer[Edge]
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ..., project_id: _Optional[str] = ..., name: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[Step, _Mapping]]] = ..., edges: _Optional[_Iterable[_Union[Edge, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
