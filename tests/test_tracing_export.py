"""The spans' OTLP encoding written directly (server/runstatus_server/tracing_export.py, issue 32)
is the message OpenTelemetry's own encoder makes: parsed, a receiver gets the same
ExportTraceServiceRequest, for spans of every shape the SDK can hand an exporter (events,
links, a remote parent with a trace state, error and OK statuses, each kind of attribute value,
several resources and instrumentation scopes, an attribute that repeats from span to span)."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from runstatus_server import tracing_export


class Kept(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def spans_of_every_shape() -> list[ReadableSpan]:
    kept = Kept()
    providers = [TracerProvider(resource=Resource.create({"service.name": "x", "n": 3, "ok": True, "l": ("a", "b")})),
                 TracerProvider(resource=Resource.create({"service.name": "other"}))]
    for provider in providers:
        provider.add_span_processor(SimpleSpanProcessor(kept))
    first = providers[0].get_tracer("a", "1.0", schema_url="http://schema")
    second, third = providers[0].get_tracer("b"), providers[1].get_tracer("c")
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1),
                         trace_state=TraceState([("k", "v"), ("x", "y")]))
    with first.start_as_current_span(
            "srv é", context=trace.set_span_in_context(NonRecordingSpan(remote)), kind=SpanKind.SERVER,
            attributes={"s": "ü" * 200, "i": -5, "big": 2**62, "f": 1.5, "b": False, "t": True, "arr": [1, 2, 3],
                        "sarr": ["x", "y"], "farr": [1.0, 2.5], "barr": [True], "empty": [], "by": b"\x00\x01"}) as span:
        span.add_event("ev", {"a": 1}, timestamp=123)
        span.add_event("ev2")
        span.add_link(remote, {"la": "x"})
        with second.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.ERROR, "bad thing"))
        try:
            with first.start_as_current_span("boom"):
                raise KeyError("x")
        except KeyError:
            pass
    with third.start_as_current_span("other") as other:
        other.set_status(Status(StatusCode.OK))
    for i in range(200):  # one attribute repeats, one changes
        with first.start_as_current_span(f"n{i}", attributes={"rpc.method": "M", "x": i * 1000}):
            pass
    return kept.spans


def test_the_direct_encoding_is_the_message_the_sdk_encodes() -> None:
    assert tracing_export.usable()
    spans = spans_of_every_shape()
    assert ExportTraceServiceRequest.FromString(tracing_export.encode(spans)) == encode_spans(spans)
    for one in (spans[:1], spans[1:3], spans[-1:]):  # and in smaller batches
        assert ExportTraceServiceRequest.FromString(tracing_export.encode(one)) == encode_spans(one)
