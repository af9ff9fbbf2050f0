"""The spans' OTLP encoding (tracing on only: tracing.setup imports this module then).

OpenTelemetry's Python exporter builds an ExportTraceServiceRequest message by message: a
KeyValue and an AnyValue object per attribute, a Span object per span, and its grouping by
resource hashes each span's Resource (a json.dumps of its attributes). For runstatus's spans (a
dozen attributes each) that was ~45 µs of the export thread's time per span, under the
process's one GIL: as much as making the span. `encode` writes the same message's protobuf wire
format directly: bytes joined, and an attribute that repeats from span to span (the method's
name, the database, a status code) encoded once and remembered; ~10 µs a span. A receiver
decodes the same ExportTraceServiceRequest: parsed, the two encodings compare equal (spans with
events, links, a remote parent, a trace state, an error status, each kind of value). A value of
a kind runstatus does not set (a mapping, None, a list of mixed kinds) is encoded by the
exporter's own code.

`Exporter` is the SDK's OTLP/gRPC span exporter with this encoding: the same configuration
(OTEL_EXPORTER_OTLP_*), retries and channel; its Export call sends the encoded bytes as they
are (a request serializer of none), since gRPC needs no message object for that.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common._internal import _encode_value
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace import ReadableSpan

log = logging.getLogger("runstatus.tracing")

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

_fixed64 = struct.Struct("<Q").pack
_double = struct.Struct("<d").pack
_INT64 = 1 << 63
_FLAGS_LOCAL = b"\x85\x01" + struct.pack("<I", 0x100)  # Span.flags (16, fixed32): SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE
_FLAGS_REMOTE = b"\x85\x01" + struct.pack("<I", 0x300)  # ... and _IS_REMOTE: the parent came from the caller


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = [bytes((n,)) for n in range(0x80)]


def _len(n: int) -> bytes:
    return _SMALL[n] if n < 0x80 else _varint(n)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag, the payload's length, the payload."""
    return tag + _len(len(payload)) + payload


def _any_value(value: Any) -> bytes:
    """An AnyValue's encoding."""
    kind = type(value)
    if kind is str:
        return _field(b"\x0a", value.encode())
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if kind is int and -_INT64 <= value < _INT64:
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if kind is float:
        return b"\x21" + _double(value)
    if kind is bytes:
        return _field(b"\x3a", value)
    if kind is tuple and value and all(type(v) in (str, bool, float) or (type(v) is int and -_INT64 <= v < _INT64)
                                       for v in value):
        return _field(b"\x2a", b"".join(_field(b"\x0a", _any_value(v)) for v in value))  # ArrayValue.values
    return bytes(_encode_value(value).SerializeToString())  # anything else, as the exporter does


# A KeyValue's encoding, by (key, value) for a string value and (key, value, int) for an int:
# most of runstatus's attributes repeat from span to span (the method, the database, the unit,
# the status code, a project). Cleared when it grows past _PAIRS (the ids, which do not repeat).
_pairs: dict[tuple[Any, ...], bytes] = {}
_PAIRS = 4096


def _attributes(tag: bytes, attributes: Any) -> list[bytes]:
    """Each attribute as a KeyValue field (`tag`) of its message."""
    out = []
    pairs = _pairs
    try:
        items = attributes.copy().items()  # the SDK's BoundedAttributes: its dict, copied in C
    except AttributeError:
        items = attributes.items()
    for key, value in items:
        kind = type(value)
        remembered = (key, value) if kind is str else (key, value, int) if kind is int else None
        if remembered is not None:
            encoded = pairs.get(remembered)
            if encoded is not None:
                out.append(tag + encoded)
                continue
        try:
            pair = _field(b"\x0a", key.encode()) + _field(b"\x12", _any_value(value))
        except Exception as e:  # noqa: BLE001 - as the exporter: a value it cannot encode is left out
            log.warning("a span attribute is not exported: its value cannot be encoded",
                        extra={"attribute": key, "error": str(e)})
            continue
        encoded = _len(len(pair)) + pair
        if remembered is not None:
            if len(pairs) >= _PAIRS:
                pairs.clear()
            pairs[remembered] = encoded
        out.append(tag + encoded)
    return out


def _trace_state(state: Any) -> bytes:
    return ",".join(f"{key}={value}" for key, value in state.items()).encode() if state else b""


def _span(span: ReadableSpan) -> bytes:
    context = span.get_span_context()
    assert context is not None
    parts = [b"\x0a\x10" + context.trace_id.to_bytes(16, "big"), b"\x12\x08" + context.span_id.to_bytes(8, "big")]
    state = _trace_state(context.trace_state)
    if state:
        parts.append(_field(b"\x1a", state))
    parent = span.parent
    if parent is not None:
        parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
    parts.append(_FLAGS_REMOTE if parent is not None and parent.is_remote else _FLAGS_LOCAL)
    parts.append(_field(b"\x2a", span.name.encode()))
    parts.append(b"\x30" + _SMALL[span.kind.value + 1])  # the SDK's SpanKind is the proto's, less one
    parts.append(b"\x39" + _fixed64(span.start_time or 0))
    parts.append(b"\x41" + _fixed64(span.end_time or 0))
    if span.attributes:
        parts += _attributes(b"\x4a", span.attributes)
    if span.dropped_attributes:
        parts.append(b"\x50" + _varint(span.dropped_attributes))
    for event in span.events:
        body = [b"\x09" + _fixed64(event.timestamp), _field(b"\x12", event.name.encode())]
        if event.attributes:
            body += _attributes(b"\x1a", event.attributes)
        if event.dropped_attributes:
            body.append(b"\x20" + _varint(event.dropped_attributes))
        parts.append(_field(b"\x5a", b"".join(body)))
    if span.dropped_events:
        parts.append(b"\x60" + _varint(span.dropped_events))
    for link in span.links:
        linked = link.context
        body = [b"\x0a\x10" + linked.trace_id.to_bytes(16, "big"), b"\x12\x08" + linked.span_id.to_bytes(8, "big")]
        if link.attributes:
            body += _attributes(b"\x22", link.attributes)
        if link.dropped_attributes:
            body.append(b"\x28" + _varint(link.dropped_attributes))
        body.append(b"\x35" + struct.pack("<I", 0x300 if linked.is_remote else 0x100))
        parts.append(_field(b"\x6a", b"".join(body)))
    if span.dropped_links:
        parts.append(b"\x70" + _varint(span.dropped_links))
    status = span.status
    said = _field(b"\x12", status.description.encode()) if status.description else b""
    if status.status_code.value:
        said += b"\x18" + _SMALL[status.status_code.value]
    parts.append(_field(b"\x7a", said))
    return b"".join(parts)


def _scope(scope: Any) -> bytes:
    if scope is None:
        return b""
    parts = [_field(b"\x0a", scope.name.encode())]
    if scope.version:
        parts.append(_field(b"\x12", scope.version.encode()))
    if scope.attributes:
        parts += _attributes(b"\x1a", scope.attributes)
    return b"".join(parts)


def encode(spans: Sequence[ReadableSpan]) -> bytes:
    """An ExportTraceServiceRequest of the spans, encoded: one ResourceSpans per resource and
    one ScopeSpans per instrumentation scope, in the order they first come."""
    groups: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
    for span in spans:
        resource, scope = span.resource, span.instrumentation_scope
        by_scope = groups.setdefault(id(resource), (resource, {}))[1]
        by_scope.setdefault(id(scope), (scope, []))[1].append(_field(b"\x12", _span(span)))
    out = []
    for resource, by_scope in groups.values():
        body = [_field(b"\x0a", b"".join(_attributes(b"\x0a", resource.attributes)))]
        for scope, encoded in by_scope.values():
            scope_spans = [_field(b"\x0a", _scope(scope)), *encoded]
            if scope is not None and scope.schema_url:
                scope_spans.append(_field(b"\x1a", scope.schema_url.encode()))
            body.append(_field(b"\x12", b"".join(scope_spans)))
        if resource.schema_url:
            body.append(_field(b"\x1a", resource.schema_url.encode()))
        out.append(_field(b"\x0a", b"".join(body)))
    return b"".join(out)


class _Stub:
    """TraceService's Export, its request already encoded."""

    def __init__(self, channel: Any) -> None:
        self.Export = channel.unary_unary(EXPORT, request_serializer=None,
                                          response_deserializer=ExportTraceServiceResponse.FromString)


class Exporter(OTLPSpanExporter):
    """The SDK's OTLP/gRPC span exporter, encoding with `encode`."""

    def _initialize_channel_and_stub(self) -> None:  # the SDK's: called again on a reconnect
        super()._initialize_channel_and_stub()  # type: ignore[no-untyped-call]
        self._client: Any = _Stub(self._channel)

    def _translate_data(self, data: Sequence[ReadableSpan]) -> Any:
        return encode(data)


def usable() -> bool:
    """Whether this exporter's SDK has the hooks Exporter overrides (else tracing uses the
    SDK's exporter as it is)."""
    return all(callable(getattr(OTLPSpanExporter, name, None))
               for name in ("_initialize_channel_and_stub", "_translate_data"))
