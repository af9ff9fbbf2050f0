"""Protobuf messages as JSON objects, as `json_format.MessageToDict(m, preserving_proto_field_name=True)`
makes them, several times faster: json_format walks each field through a chain of generic checks in
Python, which an export of a million work orders (each with runs and step runs) cannot afford.

Each message type gets a function of its own, written once from its descriptor: a test per field
(set or not, as json_format decides: has_presence fields by HasField, the others when not their
default) and the field's conversion inline. What it does not convert itself (maps, floats, Any,
wrappers and the other well-known types) goes to json_format, so the output is json_format's in
every case (tests/test_archive_export.py compares them).
"""

from __future__ import annotations

import base64
import keyword
import math
import time
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

Converter = Callable[[Any], Any]

_INT64 = {FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64}
_FLOAT = {FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE}


def to_dict(message: Message) -> dict[str, Any]:
    """The message as json_format's dict (proto field names, enums by name, int64 as strings)."""
    return converter(message.DESCRIPTOR)(message)  # type: ignore[arg-type, no-any-return]


def whole(message: Message) -> Any:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


_days: dict[int, str] = {}  # "YYYY-MM-DDT" by day since the epoch: a day's timestamps share it


def timestamp(ts: Any) -> str:
    """RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits, as Timestamp.ToJsonString."""
    seconds, nanos = ts.seconds, ts.nanos
    if not 0 <= nanos < 1_000_000_000 or seconds < 0:
        return str(ts.ToJsonString())
    day, second = divmod(seconds, 86400)
    date = _days.get(day)
    if date is None:
        if len(_days) > 100_000:
            _days.clear()
        date = _days[day] = time.strftime("%Y-%m-%dT", time.gmtime(seconds))
    text = "%s%02d:%02d:%02d" % (date, second // 3600, second // 60 % 60, second % 60)
    if nanos == 0:
        return text + "Z"
    if nanos % 1_000_000 == 0:
        return "%s.%03dZ" % (text, nanos // 1_000_000)
    if nanos % 1000 == 0:
        return "%s.%06dZ" % (text, nanos // 1000)
    return "%s.%09dZ" % (text, nanos)


def _value(value: Any) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        if math.isinf(number) or math.isnan(number):
            return whole(value)  # json_format refuses it, and says why
        return number
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return _struct(value.struct_value)
    if kind == "list_value":
        return [_value(v) for v in value.list_value.values]
    return None  # null_value, or no kind: json_format's null


def _struct(struct: Any) -> dict[str, Any]:
    return {key: _value(v) for key, v in struct.fields.items()}


_converters: dict[str, Converter] = {
    "google.protobuf.Timestamp": timestamp,
    "google.protobuf.Struct": _struct,
    "google.protobuf.Value": _value,
    "google.protobuf.ListValue": lambda lv: [_value(v) for v in lv.values],
}


def converter(descriptor: Descriptor) -> Converter:
    """The function that converts messages of this type (written on first use)."""
    name = descriptor.full_name
    found = _converters.get(name)
    if found is None:
        _converters[name] = _Lazy(descriptor)  # what a type that refers back to this one calls
        found = _converters[name] = _write(descriptor)
    return found


def _plain(field: FieldDescriptor) -> bool:
    """Whether the generated code converts the field itself (else json_format does the message)."""
    if field.cpp_type in _FLOAT:
        return False  # -0.0 is set, 0.0 is not: left to json_format
    if field.message_type is not None:
        return not field.message_type.GetOptions().map_entry
    return True


def _write(descriptor: Descriptor) -> Converter:
    if descriptor.full_name.startswith("google.protobuf.") or not all(_plain(f) for f in descriptor.fields):
        return whole
    env: dict[str, Any] = {"b64": base64.b64encode}
    lines = ["def convert(m):", "    d = {}"]
    for i, f in enumerate(descriptor.fields):
        plain_name = f.name.isidentifier() and not keyword.iskeyword(f.name)
        value = f"m.{f.name}" if plain_name else f"getattr(m, {f.name!r})"
        item = "v"
        if f.message_type is not None:
            env[f"c{i}"] = converter(f.message_type)
            item = f"c{i}(v)"
        elif f.enum_type is not None:
            if f.enum_type.full_name == "google.protobuf.NullValue":
                item = "None"
            else:
                env[f"e{i}"] = {v.number: v.name for v in f.enum_type.values}
                item = f"e{i}.get(v, v)"
        elif f.type == FieldDescriptor.TYPE_BYTES:
            item = "b64(v).decode()"
        elif f.cpp_type in _INT64:
            item = "str(v)"
        if f.is_repeated:
            lines += [f"    x = {value}", "    if x:", f"        d[{f.name!r}] = [{item} for v in x]"]
        elif f.has_presence:
            lines += [f"    if m.HasField({f.name!r}):", f"        v = {value}", f"        d[{f.name!r}] = {item}"]
        else:
            lines += [f"    v = {value}", "    if v:", f"        d[{f.name!r}] = {item}"]
    lines.append("    return d")
    exec("\n".join(lines), env)  # noqa: S102 - code written here from a descriptor, no outside text
    convert: Converter = env["convert"]
    return convert


class _Lazy:
    """The converter of a type still being written, for a type that refers back to it (a cycle),
    found on first call."""

    __slots__ = ("descriptor", "fn")

    def __init__(self, descriptor: Descriptor) -> None:
        self.descriptor = descriptor
        self.fn: Converter | None = None

    def __call__(self, message: Any) -> Any:
        if self.fn is None:
            self.fn = _converters[self.descriptor.full_name]
        return self.fn(message)
