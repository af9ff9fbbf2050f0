"""Work orders read a keyset page at a time (by `seq`, the order they were inserted in), each page
with its runs, step runs and (if asked) events in one query each, inside one read transaction, so
that each line is one consistent state of its work order. A page's lines are encoded by the fast
path of archive/message_json.py."""

from __future__ import annotations

import operator
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from runstatus.v1.event_pb2 import Event
from runstatus.v1.work_order_pb2 import Run, StepRun, WorkOrder

from ..archive.records import encode_line
from ..store.reader import DatabaseReader, ReadError, open_reader
from .filters import ExportFilter

SourceError = ReadError  # the database cannot be opened or read: the command says why, exit 1


@dataclass
class Batch:
    """A page of work orders as NDJSON lines, and the cursor after it (its last work order's seq)."""

    data: bytes = b""
    cursor: int = 0
    work_orders: int = 0
    runs: int = 0
    step_runs: int = 0
    events: int = 0


class Source:
    """A database an export reads (not the store: no server, no migrations, read only), through
    the store's DatabaseReader: the SQL here is both databases'."""

    def __init__(self, reader: DatabaseReader) -> None:
        self.reader = reader

    @staticmethod
    def open(db: str) -> Source:
        return Source(open_reader(db))

    def _rows(self, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
        return self.reader.rows(sql, args)

    def close(self) -> None:
        self.reader.close()

    def count(self, flt: ExportFilter, after: int) -> int:
        where, args = flt.sql(self.reader.MARK)
        self.reader.begin()
        try:
            return int(self._rows(f"SELECT count(*) FROM work_orders w WHERE w.seq > {self.reader.MARK}{where}",
                                  [after, *args])[0][0])
        finally:
            self.reader.end()

    def event_index(self) -> bool:
        """Whether events can be found by work order without reading the whole log."""
        return self.reader.has_index("events", "work_order_id")

    def page(self, flt: ExportFilter, after: int, limit: int, *, events: bool = False) -> Page | None:
        """The rows of up to limit work orders after the cursor `after` (None: there are none)."""
        m = self.reader.MARK
        where, args = flt.sql(m)
        self.reader.begin()
        try:
            found = self._rows(f"SELECT w.seq, w.data FROM work_orders w WHERE w.seq > {m}{where} "
                               f"ORDER BY w.seq LIMIT {m}", [after, *args, limit])
            if not found:
                return None
            # The page's rows again, by their seq range and the same filter: runs and step runs
            # joined to them, one query each, whatever the page holds.
            page = f"w.seq > {m} AND w.seq <= {m}{where}"
            page_args = [after, found[-1][0], *args]
            # No ORDER BY: a planner would walk the whole step_runs (or events) table in that order
            # rather than join from the page's rows; a page's rows are put in order here instead.
            run_rows = self._rows(f"SELECT r.number, r.data FROM work_orders w JOIN runs r "
                                  f"ON r.work_order_id = w.id WHERE {page}", page_args)
            step_rows = self._rows(f"SELECT {self.reader.STEP_ORDER}, s.data FROM work_orders w JOIN runs r "
                                   f"ON r.work_order_id = w.id JOIN step_runs s ON s.run_id = r.id WHERE {page}",
                                   page_args)
            event_rows = self._rows(f"SELECT e.seq, e.data FROM work_orders w JOIN events e "
                                    f"ON e.work_order_id = w.id WHERE {page}", page_args) if events else []
        finally:
            self.reader.end()
        return Page(found, run_rows, step_rows, event_rows if events else None)

    def batch(self, flt: ExportFilter, after: int, limit: int, *, events: bool = False) -> Batch:
        """Up to limit work orders after the cursor `after`, encoded."""
        page = self.page(flt, after, limit, events=events)
        return encode(page) if page is not None else Batch(cursor=after)


@dataclass
class Page:
    """A page's rows as read: (seq, data) of its work orders, (order, data) of their runs, step
    runs and events (None: events not asked for). Plain values: a worker process encodes it."""

    found: list[tuple[Any, ...]]
    run_rows: list[tuple[Any, ...]]
    step_rows: list[tuple[Any, ...]]
    event_rows: list[tuple[Any, ...]] | None


def encode(page: Page) -> Batch:
    """A page's lines: each work order with its runs (by number), their step runs (in the order
    they were started) and its events (by sequence)."""
    found, run_rows, step_rows, event_rows = page.found, page.run_rows, page.step_rows, page.event_rows
    first = operator.itemgetter(0)
    runs: dict[str, list[Run]] = defaultdict(list)
    for _, data in sorted(run_rows, key=first):
        run = Run.FromString(data)
        runs[run.work_order_id].append(run)
    step_runs: dict[str, list[StepRun]] = defaultdict(list)
    for _, data in sorted(step_rows, key=first):
        step_run = StepRun.FromString(data)
        step_runs[step_run.run_id].append(step_run)
    events: dict[str, list[Event]] | None = None
    if event_rows is not None:
        events = defaultdict(list)
        for seq, data in sorted(event_rows, key=first):
            event = Event.FromString(data)
            event.sequence = int(seq)  # kept in the seq column only (store/rows.py: event_row)
            events[event.work_order_id].append(event)
    lines = []
    no_runs: list[Run] = []
    for _, data in found:
        work_order = WorkOrder.FromString(data)
        lines.append(encode_line(work_order, runs.get(work_order.id, no_runs),
                                 None if events is None else events.get(work_order.id, []), step_runs))
    return Batch(b"".join(lines), int(found[-1][0]), len(found), len(run_rows), len(step_rows),
                 len(event_rows or ()))
