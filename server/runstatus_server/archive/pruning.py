"""The archive as the pruner's hook (pruner.Archive: called with the write's Tx and the ids of the
work orders it is about to delete, inside that write; if it raises, nothing is deleted).

    Pruner(store, default, archive=pruner_archive(Archiver(DirectorySink(archive_dir))))

The records are read in the pruner's own transaction, so what is archived is exactly what is then
deleted: the work orders, their runs and step runs and their events, a query each for the batch."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from runstatus.v1.event_pb2 import Event
from runstatus.v1.work_order_pb2 import Run, StepRun, WorkOrder

from .records import ArchivedWorkOrder
from .writer import Archiver


def read_records(tx: Any, ids: Sequence[str]) -> list[ArchivedWorkOrder]:
    """The work orders of `ids` (those that exist, in that order) with their runs (by number, each
    with its step runs in the order they were started) and their events (by sequence). `tx`: a
    store transaction (store/rows.py's Rows: its statement helpers mark and escape the ids as
    that database's other queries do)."""
    if not ids:
        return []
    within = f"IN ({tx._marks(ids)})"
    found = {wo.id: wo for wo in (WorkOrder.FromString(d) for (d,) in
                                  tx._rows(f"SELECT data FROM work_orders WHERE id {within}", *ids))}
    runs: dict[str, list[Run]] = defaultdict(list)
    by_id: dict[str, Run] = {}
    for _, data in sorted(tx._rows(f"SELECT number, data FROM runs WHERE work_order_id {within}", *ids),
                          key=lambda r: r[0]):
        run = Run.FromString(data)
        runs[run.work_order_id].append(run)
        by_id[run.id] = run
    for _, data in sorted(tx._rows(f"SELECT s.{tx.STEP_ORDER}, s.data FROM step_runs s JOIN runs r "
                                   f"ON s.run_id = r.id WHERE r.work_order_id {within}", *ids), key=lambda r: r[0]):
        step_run = StepRun.FromString(data)
        by_id[step_run.run_id].step_runs.append(step_run)
    events: dict[str, list[Event]] = defaultdict(list)
    for seq, data in sorted(tx._rows(f"SELECT seq, data FROM events WHERE work_order_id {within}", *ids),
                            key=lambda r: r[0]):
        event = Event.FromString(data)
        event.sequence = int(seq)  # kept in the seq column only (store/rows.py: event_row)
        events[event.work_order_id].append(event)
    return [ArchivedWorkOrder(found[i], runs.get(i, []), events.get(i, [])) for i in ids if i in found]


def pruner_archive(archiver: Archiver) -> Callable[[Any, list[str]], None]:
    """The pruner's Archive hook: reads the batch in its transaction and writes it through the
    archiver, returning once it is durable (an exception keeps the batch from being deleted)."""

    def archive(tx: Any, ids: list[str]) -> None:
        archiver.write(read_records(tx, ids))

    return archive
