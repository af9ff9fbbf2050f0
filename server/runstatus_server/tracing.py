"""Traces (--otel): OpenTelemetry spans over OTLP/gRPC (and, when asked, the metrics:
metrics_export.py), configured by the standard OTEL_* environment variables
(OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_INSECURE,
OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG,
OTEL_PROPAGATORS, OTEL_BSP_*).

Off by default, and then free: nothing of OpenTelemetry is imported, the services are
registered as they always were (`rpc_handler` is asked only when tracing is on), the store is
not wrapped, and what remains (`span`, `sampled_trace_id`) is a test of one global.

When on:
- a SERVER span per RPC, named "package.Service/Method" with OpenTelemetry's RPC attributes
  (rpc.system, rpc.service, rpc.method, rpc.grpc.status_code) and runstatus's own
  (runstatus.project_id, .work_order_id, .run_id, .workflow_id from the request; the run's and
  work order's from the answer, .run_status the resulting status), whose parent is the caller's
  span when the request's metadata has a W3C traceparent (and tracestate);
- a CLIENT span per unit of work of the store, beneath it (store/traced.py);
  these two, made for every sampled call, are `Recorder`'s: see there what they cost;
- a span per sweeper pass, retention pass and notification delivery attempt (`span`);
- every JSON log line written inside a span carries its trace_id and span_id (logs.py);
- a run remembers the trace of the StartRun (or ClaimRuns) that began it (`sampled_trace_id`),
  and the history page links it to --trace-url-template (`trace_link`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from . import logs
from .util import new_id

if TYPE_CHECKING:
    from google.protobuf.descriptor import MethodDescriptor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger("runstatus.tracing")

SERVICE_NAME = "runstatus"  # service.name unless OTEL_SERVICE_NAME (or OTEL_RESOURCE_ATTRIBUTES) says
# The gRPC codes a server's span is in error for (OpenTelemetry's semantic conventions for gRPC):
# the others are the caller's fault, not the server's.
SERVER_ERRORS = {2, 4, 12, 13, 14, 15}  # UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS
# Request fields that become the span's attributes, where a method's request has them.
REQUEST_FIELDS = ("project_id", "work_order_id", "run_id", "workflow_id")

_tracer: Tracer | None = None
_provider: TracerProvider | None = None
_recorder: Recorder | None = None
_resource: Any = None  # tracing.resource(): one a process


def enabled() -> bool:
    return _tracer is not None


def setup() -> None:
    """Turns tracing on for this process (idempotent): a tracer provider with the OTLP/gRPC
    exporter behind a batch processor, as the OTEL_* environment variables say."""
    global _tracer, _provider, _recorder
    if _tracer is not None:
        return
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from . import tracing_export

    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol and protocol != "grpc":
        log.warning("only OTLP over gRPC is supported: OTEL_EXPORTER_OTLP_PROTOCOL is ignored",
                    extra={"protocol": protocol})
    provider = TracerProvider(resource=resource())
    # The SDK's exporter, its spans encoded by tracing_export (a fifth of the SDK's encoding's time).
    exporter = tracing_export.Exporter() if tracing_export.usable() else OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider, _tracer = provider, provider.get_tracer("runstatus.server")
    _recorder = Recorder(_tracer)
    logs.span_ids = _span_ids
    log.info("tracing on", extra={
        "endpoint": os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4317 (the default)"),
        "sampler": os.environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on")})


def resource() -> Any:
    """What the server's spans and metrics say they come from, made once a process: what
    OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME say, else service.name runstatus; and a
    service.instance.id of this process's own unless they name one (with --processes N, each
    process's cumulative counts are a series of their own, as each serves its own /metrics port)."""
    global _resource
    if _resource is None:
        from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME as NAME, Resource

        given = Resource.create({})  # the SDK's reading of the environment
        ours: dict[str, str] = {}
        if str(given.attributes.get(NAME, "unknown_service")).startswith("unknown_service"):  # "nobody said"
            ours[NAME] = SERVICE_NAME
        if SERVICE_INSTANCE_ID not in given.attributes:
            ours[SERVICE_INSTANCE_ID] = new_id()
        _resource = given.merge(Resource(ours))
    return _resource


def tracer() -> Tracer:
    assert _tracer is not None, "tracing.setup() first"
    return _tracer


def recorder() -> Recorder:
    assert _recorder is not None, "tracing.setup() first"
    return _recorder


def shutdown() -> None:
    """Sends the spans still held, then stops exporting (the server's last act)."""
    global _tracer, _provider, _recorder
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = _recorder = None
    logs.span_ids = None


def _span_ids() -> tuple[str, str] | None:
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def sampled_trace_id() -> str:
    """The current span's trace id (32 hex digits) if it is sampled, so that the trace is
    recorded somewhere; "" otherwise, and when tracing is off."""
    if _tracer is None:
        return ""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid and context.trace_flags.sampled else ""


@contextlib.contextmanager
def _span(name: str, attributes: dict[str, Any]) -> Iterator[Span]:
    assert _tracer is not None
    with _tracer.start_as_current_span(name, attributes=attributes) as span:
        yield span


def span(name: str, **attributes: Any) -> contextlib.AbstractContextManager[Span | None]:
    """A span of the server's own work (a sweeper pass, a delivery), current inside the block;
    None (nothing) when tracing is off. An exception leaving the block is recorded on it."""
    if _tracer is None:
        return contextlib.nullcontext()
    return _span(name, attributes)


def failed(span: Span, description: str) -> None:
    """Marks a span of the server's own work as failed (what went wrong, in words)."""
    from opentelemetry.trace import Status, StatusCode

    span.set_status(Status(StatusCode.ERROR, description[:500]))


# --- the spans of every sampled call: recorded at their end ----------------------------------

class Recorded:
    """A span under way (Recorder.start): its attributes (a plain dict, None when the sampler
    dropped it: nothing to record), status and events, filled in as the work goes, and what
    Recorder.end needs to hand it on."""

    __slots__ = ("name", "kind", "context", "parent", "attributes", "start_time", "status", "events", "token")

    name: str
    kind: Any
    context: Any  # its SpanContext
    parent: Any  # its parent's SpanContext, or None
    attributes: dict[str, Any] | None
    start_time: int
    status: Any
    events: tuple[Any, ...]
    token: Any  # the context attach that made it current


class Recorder:
    """Makes the RPC's and the store's spans, two for every sampled call, for a fraction of
    what the SDK's spans cost this process (under its one GIL): ~15 µs a span instead of ~45.

    The SDK's Span is a live object for other span processors to watch: a lock, a
    BoundedAttributes (a lock too, and every value checked and copied, once when the span starts
    and again at each set_attribute), a ReadableSpan copy of it all at its end. These spans
    have no watcher but the BatchSpanProcessor, which takes a span at its end only, and
    runstatus writes their attributes itself, strings and ints. So a span is made the way the
    SDK's Tracer.start_span decides it (the same sampler, asked the same question: parent,
    trace id, name, kind, attributes; the same id generator; the same trace flags and trace
    state), is current meanwhile as a NonRecordingSpan of its SpanContext (what the SDK makes of
    a span it does not sample; its children's parent, the log lines' span), and at its end, if
    the sampler recorded it, is handed to the provider's span processor as the ReadableSpan the
    SDK's own would have become (resource, instrumentation scope, times, status, the exception
    event of a failed store unit as record_exception writes it)."""

    def __init__(self, tracer: Any) -> None:
        from opentelemetry import context as context_api
        from opentelemetry import trace as trace_api
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        # The SDK Tracer's (public attributes; its scope is kept as _instrumentation_scope).
        self._sampler = tracer.sampler
        self._ids = tracer.id_generator
        self._processor = tracer.span_processor
        self._resource = tracer.resource
        self._scope = getattr(tracer, "_instrumentation_scope", None) or InstrumentationScope("runstatus.server")
        self._current_span = trace_api.get_current_span
        self._context_of = trace_api.set_span_in_context
        self._non_recording = trace_api.NonRecordingSpan
        self._span_context = trace_api.SpanContext
        self._flags = trace_api.TraceFlags
        self._unset = trace_api.Status(trace_api.StatusCode.UNSET)
        self._error = trace_api.StatusCode.ERROR
        self._status = trace_api.Status
        self._attach, self._detach = context_api.attach, context_api.detach
        self._readable, self._event = ReadableSpan, Event

    def start(self, name: str, kind: Any, attributes: dict[str, Any], context: Any = None) -> Recorded:
        """A span beneath the current one (or `context`'s), current until `end`."""
        parent: Any = self._current_span(context).get_span_context()
        if parent.is_valid:
            trace_id = parent.trace_id
            random = parent.trace_flags.random_trace_id
        else:
            parent = None
            trace_id = self._ids.generate_trace_id()
            random = getattr(self._ids, "is_trace_id_random", bool)()
        result = self._sampler.should_sample(context, trace_id, name, kind, attributes, ())
        decision = result.decision
        flags = (1 if decision.is_sampled() else 0) | (2 if random else 0)  # SAMPLED, RANDOM_TRACE_ID
        own = self._span_context(trace_id, self._ids.generate_span_id(), False, self._flags(flags),
                                 result.trace_state)
        span = Recorded()
        span.name, span.kind, span.context, span.parent = name, kind, own, parent
        span.status, span.events = self._unset, ()
        if decision.is_recording():
            span.attributes = dict(result.attributes) if result.attributes else {}
            span.start_time = time.time_ns()
        else:
            span.attributes = None
        span.token = self._attach(self._context_of(self._non_recording(own)))
        return span

    def failed(self, span: Recorded, description: str) -> None:
        span.status = self._status(self._error, description)

    def raised(self, span: Recorded, error: BaseException) -> None:
        """The exception on the span as the SDK's record_exception and set_status_on_exception
        put it: an "exception" event, the status in error."""
        if span.attributes is None:
            return
        kind = type(error)
        module = kind.__module__
        span.events += (self._event("exception", {
            "exception.type": f"{module}.{kind.__qualname__}" if module and module != "builtins" else kind.__qualname__,
            "exception.message": str(error),
            "exception.stacktrace": "".join(traceback.format_exception(error)),
            "exception.escaped": "False",
        }, time.time_ns()),)
        self.failed(span, f"{kind.__name__}: {error}")

    def end(self, span: Recorded) -> None:
        """No longer current; recorded, if the sampler said so."""
        self._detach(span.token)
        if span.attributes is not None:
            self._processor.on_end(self._readable(
                name=span.name, context=span.context, parent=span.parent, resource=self._resource,
                attributes=span.attributes, events=span.events, kind=span.kind, status=span.status,
                start_time=span.start_time, end_time=time.time_ns(), instrumentation_scope=self._scope))


# --- the RPC span ---------------------------------------------------------------------------

Behavior = Callable[[Any, Any], Awaitable[Any]]


def _answer_reader(output: Any) -> Callable[[Any, dict[str, Any]], None]:
    """What an answer of this type says about the run and work order it changed or read: a
    function that puts those in the span's attributes (a sampled span's only)."""
    from runstatus.v1.status_pb2 import RunStatus

    fields = output.fields_by_name
    runs = [name for name in ("run", "latest_run") if name in fields and fields[name].message_type
            and fields[name].message_type.full_name == "runstatus.v1.Run"]
    has_order = "work_order" in fields and fields["work_order"].message_type is not None
    has_status = "run_status" in fields
    claims = "runs" in fields and output.full_name == "runstatus.v1.ClaimRunsResponse"
    status_name = RunStatus.Name

    def read(answer: Any, attributes: dict[str, Any]) -> None:
        if has_order and answer.HasField("work_order"):
            order = answer.work_order
            attributes["runstatus.work_order_id"] = order.id
            attributes["runstatus.project_id"] = order.project_id
        for name in runs:
            if answer.HasField(name):
                run = getattr(answer, name)
                attributes["runstatus.run_id"] = run.id
                attributes["runstatus.work_order_id"] = run.work_order_id
                attributes["runstatus.project_id"] = run.project_id
                attributes["runstatus.run_status"] = status_name(run.status)
                break
        if has_status and answer.run_status:
            attributes["runstatus.run_status"] = status_name(answer.run_status)
        if claims:
            attributes["runstatus.runs_claimed"] = len(answer.runs)
            if len(answer.runs) == 1:
                run = answer.runs[0].run
                attributes["runstatus.run_id"] = run.id
                attributes["runstatus.work_order_id"] = run.work_order_id
                attributes["runstatus.project_id"] = run.project_id

    return read


def rpc_handler(service: str, method: MethodDescriptor, behavior: Behavior) -> Behavior:
    """The servicer's method within a SERVER span (tracing on only: registry.register asks),
    made by the Recorder; the request's and the answer's attributes are read for a span the
    sampler records only."""
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    spans = _recorder
    assert spans is not None
    name = f"{service}/{method.name}"
    base = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method.name}
    request_fields = [(f, f"runstatus.{f}") for f in REQUEST_FIELDS if f in method.input_type.fields_by_name]
    read_answer = _answer_reader(method.output_type)
    extract, start, end = propagate.extract, spans.start, spans.end
    server = SpanKind.SERVER

    async def traced(request: Any, context: Any) -> Any:
        parent = None
        metadata = context.invocation_metadata()
        if metadata:
            carrier = {key: value for key, value in metadata if key == "traceparent" or key == "tracestate"}
            if carrier:
                parent = extract(carrier)
        span = start(name, server, base, parent)
        code = 0
        answer = None
        try:
            answer = await behavior(request, context)
            return answer
        except BaseException as e:
            code = _code(context, e)
            raise
        finally:
            attributes = span.attributes
            if attributes is not None:
                for field, attribute in request_fields:
                    value = getattr(request, field, "")
                    if value and isinstance(value, str):
                        attributes[attribute] = value
                if answer is not None:
                    read_answer(answer, attributes)
                attributes["rpc.grpc.status_code"] = code
                if code in SERVER_ERRORS:
                    spans.failed(span, _details(context))
                elif code:
                    details = _details(context)
                    if details:
                        attributes["runstatus.error"] = details[:500]
            end(span)

    return traced


def _code(context: Any, error: BaseException) -> int:
    """The status code a call ended with: as the servicer aborted it, else CANCELLED for a
    cancel and UNKNOWN for anything else that escaped."""
    import asyncio

    try:
        code = context.code()
    except Exception:  # noqa: BLE001 - an older grpc without code()
        code = None
    if code is not None and hasattr(code, "value"):
        return int(code.value[0])
    return 1 if isinstance(error, asyncio.CancelledError) else 2


def _details(context: Any) -> str:
    try:
        details = context.details()
    except Exception:  # noqa: BLE001
        return ""
    if isinstance(details, bytes):
        details = details.decode("utf-8", "replace")
    return str(details or "")
