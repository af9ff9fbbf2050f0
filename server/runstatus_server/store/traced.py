"""The store's spans (tracing on only: server.py wraps the store in `TracedStore` then, and
imports this module only then). Each unit of work is a CLIENT span beneath the caller's (the
RPC's, a sweeper pass's), named "store.write <function>" (or read, scan):

- db.system.name: "sqlite" or "postgresql"; db.operation.name: the unit of work's function;
- runstatus.store.statements: the statements it ran through the rows layer (store/rows.py);
- runstatus.store.attempts (writes): how many times it ran: more than 1 when PostgreSQL
  retried it after a serialization failure or a deadlock;
- runstatus.store.commit_wait_ms (writes): from the end of its last run to its durable
  commit: SQLite's group COMMIT (with the writes it waited for), PostgreSQL's last round trip.

Nothing is measured for a span that is not sampled: the unit of work runs as it is; inside a
span the sampler dropped (the RPC's, at parent-based 10%), no span is made at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from opentelemetry.trace import SpanKind, get_current_span

from .base import Store, Tx

T = TypeVar("T")
CLIENT = SpanKind.CLIENT
P = ParamSpec("P")


class _Counted:
    """Counts the statements a unit of work runs, by shadowing its Tx's `_execute` (every
    statement of the rows layer goes through it) while the unit runs on its thread."""

    __slots__ = ("attempts", "statements", "ended")

    def __init__(self) -> None:
        self.attempts = self.statements = 0
        self.ended = 0.0

    def run(self, fn: Callable[..., T], tx: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        self.attempts += 1
        execute = getattr(tx, "_execute", None)
        if execute is None:
            return fn(tx, *args, **kwargs)

        def counting(sql: str, params: tuple[Any, ...]) -> Any:
            self.statements += 1
            return execute(sql, params)

        setattr(tx, "_execute", counting)  # noqa: B010 - an instance attribute over the method
        try:
            return fn(tx, *args, **kwargs)
        finally:
            delattr(tx, "_execute")
            self.ended = time.perf_counter()


def _name(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or "unit"
    return str(name).replace(".<locals>", "")


class Spans(Protocol):
    """What makes the units' spans: the server's tracing.Recorder (the store imports nothing
    else of the server: it is handed one)."""

    def start(self, name: str, kind: Any, attributes: dict[str, Any], context: Any = None) -> Any: ...

    def raised(self, span: Any, error: BaseException) -> None: ...

    def end(self, span: Any) -> None: ...


class TracedStore:
    """A Store whose units of work are spans; everything else is the store's own."""

    def __init__(self, store: Store, backend: str, spans: Spans) -> None:
        self._store = store
        self._spans = spans  # the span of each unit of work (tracing.Recorder: what it saves)
        self._backend = backend
        self.batch_size = store.batch_size
        self.delete_batch_size = store.delete_batch_size
        # Each unit of work's span name and starting attributes, by kind and function: made
        # once (the functions are the store's, a few dozen), not per call.
        self._starts: dict[tuple[str, Any], tuple[str, dict[str, Any]]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _start(self, kind: str, fn: Callable[..., Any]) -> tuple[str, dict[str, Any]]:
        key = (kind, getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None))  # what _name reads
        start = self._starts.get(key)
        if start is None:
            operation = _name(fn)
            start = (f"store.{kind} {operation}", {
                "db.system.name": self._backend, "db.operation.name": operation, "runstatus.store.unit": kind})
            if len(self._starts) < 1024:
                self._starts[key] = start
        return start

    async def _unit(self, kind: str, run: Callable[..., Any], fn: Callable[..., T],
                    args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        current = get_current_span().get_span_context()
        if current.is_valid and not current.trace_flags.sampled:
            # Inside a span the sampler dropped: this one would be dropped too (the samplers
            # decide a child by its parent, or by the trace id it shares with it), so none is
            # made. (Outside any span, a unit's span is a root, and the sampler decides.)
            result: T = await run(fn, *args, **kwargs)
            return result
        name, attributes = self._start(kind, fn)
        span = self._spans.start(name, CLIENT, attributes)
        try:
            said = span.attributes
            if said is None:
                result = await run(fn, *args, **kwargs)
                return result
            counted = _Counted()

            def job(tx: Tx, *a: Any, **kw: Any) -> T:
                return counted.run(fn, tx, a, kw)

            job.__qualname__ = attributes["db.operation.name"]
            try:
                result = await run(job, *args, **kwargs)
                return result
            except Exception as e:  # as the SDK's spans: the exception on the span, in error
                self._spans.raised(span, e)
                raise
            finally:
                said["runstatus.store.statements"] = counted.statements
                if kind == "write":
                    said["runstatus.store.attempts"] = counted.attempts
                    if counted.ended:
                        said["runstatus.store.commit_wait_ms"] = round((time.perf_counter() - counted.ended) * 1000, 3)
        finally:
            self._spans.end(span)

    async def write(self, fn: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._unit("write", self._store.write, fn, args, kwargs)

    async def read(self, fn: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._unit("read", self._store.read, fn, args, kwargs)

    async def scan(self, fn: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._unit("scan", self._store.scan, fn, args, kwargs)

    def scan_now(self, fn: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        return self._store.scan_now(fn, *args, **kwargs)  # the metrics server's thread: no span

    async def start(self) -> None:
        await self._store.start()

    async def close(self) -> None:
        await self._store.close()

    async def lead(self) -> bool:
        return await self._store.lead()

    def add_commit_listener(self, listener: Callable[[], None]) -> None:
        self._store.add_commit_listener(listener)

    def add_commit_size_listener(self, listener: Callable[[int], None]) -> None:
        self._store.add_commit_size_listener(listener)

    def add_fault_listener(self, listener: Callable[[str], None]) -> None:
        self._store.add_fault_listener(listener)


def traced(store: Store, spans: Spans) -> Store:
    """The store, its units of work traced."""
    from .postgres.engine import PostgresStore

    return TracedStore(store, "postgresql" if isinstance(store, PostgresStore) else "sqlite", spans)
