"""Trace context for the client's calls, and the Worker's spans: OpenTelemetry's, when the
`otel` extra (opentelemetry-api) is installed; without it, nothing.

A call made while a span is current carries its W3C `traceparent` (and `tracestate`) in the
call's metadata, so that the server's span of the call is a child of the caller's. The test
is whether OpenTelemetry's trace API has been imported at all: a program that makes spans has
imported it, and one that has not pays nothing (not even the import).

The Worker makes a span per run ("run <workflow>") and per step ("step <step id>"), each
current while its calls are made; a step's error is recorded on its span (the exception, and
how the server classified it), and a run's span ends with its status.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

Metadata = tuple[tuple[str, str], ...]


def context_metadata(metadata: Metadata) -> Metadata:
    """The call's metadata, with the current span's trace context if there is one."""
    trace: Any = sys.modules.get("opentelemetry.trace")
    if trace is None or not trace.get_current_span().get_span_context().is_valid:
        return metadata
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return metadata + tuple(carrier.items()) if carrier else metadata


def tracer(provider: Any = None) -> Tracer | None:
    """The Worker's tracer (of `provider`, None: the global provider), or None without
    opentelemetry-api."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return trace.get_tracer("runstatus.worker", tracer_provider=provider)


@contextmanager
def span(tracer: Tracer | None, name: str, attributes: dict[str, Any]) -> Iterator[Span | None]:
    """A span current inside the block (None without a tracer). Exceptions leaving the block
    are not recorded: the Worker records a step's error itself, as reported."""
    if tracer is None:
        yield None
        return
    with tracer.start_as_current_span(name, attributes=attributes, record_exception=False,
                                      set_status_on_exception=False) as current:
        yield current


def step_error(span: Span | None, error: BaseException, classification: Any = None) -> None:
    """A step's exception on its span, with the server's classification when it answered."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:500]))
    if classification is not None:
        from runstatus.v1.status_pb2 import ErrorType, RunStatus

        span.set_attribute("runstatus.classification.status", RunStatus.Name(classification.status))
        span.set_attribute("runstatus.classification.error_type", ErrorType.Name(classification.error_type))
        span.set_attribute("runstatus.classification.rule", classification.rule)
        span.set_attribute("runstatus.classification.aborts_run", classification.aborts_run)


def run_ended(span: Span | None, status: int) -> None:
    """A run's span ends with the run's status: in error unless it succeeded or was cancelled."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    from runstatus.v1.status_pb2 import RunStatus

    name = RunStatus.Name(status)  # type: ignore[arg-type]
    span.set_attribute("runstatus.run_status", name)
    if status not in (RunStatus.RUN_STATUS_SUCCESS, RunStatus.RUN_STATUS_CANCELLED):
        span.set_status(Status(StatusCode.ERROR, name))
