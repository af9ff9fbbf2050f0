"""Retention applied (issue 29): the leading server deletes the ended work orders whose time is
up (retention.py says when), with their runs, step runs and events, erases payloads past their
own period, and prunes the event log to one horizon.

Writers must not feel it: every change is a small write of its own (a batch of work orders),
and after each the pruner waits nine times as long as the write held the writers up (its run and
the COMMIT it made longer), so that it takes at most a tenth of the writer's time however much is
due; a pass stops at a bound and the next goes on, and stops at once when the project's policy
changes under it.
The status counts stay exact: the count buckets follow every deleted work order through the
work_orders triggers (both backends), as they follow every insert and change.

The event log's horizon (`event_log_horizon`): the highest sequence of any event retention has
deleted. A watch resuming after a cursor below it may have lost events (CURSOR_EXPIRED, see
log_horizon.py); from it on, nothing was ever deleted. Every event at or below the horizon is then
deleted too, whatever its work order: such events can no longer be streamed to anyone, and the
log stays bounded by the shortest retention in force (events of work orders kept longer go; their
runs keep their statuses). Events not yet scanned by a notification subscription are never deleted
that way (the horizon pass stops at the least advanced subscription's cursor).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Concatenate, ParamSpec, TypeVar

from runstatus import status_table
from runstatus.v1.project_pb2 import Project, RetentionPolicy
from runstatus.v1.error_pb2 import RunError
from runstatus.v1.work_order_pb2 import WorkOrder

from . import retention
from .metrics import PAYLOADS_ERASED, WORK_ORDERS_PRUNED, status_label
from .store.base import Store, Tx
from .util import timestamp

log = logging.getLogger("runstatus.retention")

P = ParamSpec("P")
T = TypeVar("T")

# Writes the work orders about to be deleted (their ids) to the archive, inside the write that
# deletes them: if it raises, nothing is deleted. See Pruner.archive.
Archive = Callable[[Tx, list[str]], None]

BATCH = 200  # work orders deleted per write
ERASE_BATCH = 100  # work orders whose payloads are erased per write (each reads its runs)
EVENT_BATCH = 2000  # events below the horizon deleted per write
# After each write the pruner waits this many times as long as the write held the writers up (its
# run and its COMMIT): it takes at most a tenth of the writer's time (SQLite runs writes on the event
# loop, beside every RPC, and the writes that arrive during a COMMIT wait for it).
PAUSE = 9.0
MAX_PER_PASS = 20_000  # work orders a pass deletes (or erases) at most; the next pass goes on
PROJECT_PAGE = 1000


@dataclass
class Pass:
    """What one pass did."""

    pruned: int = 0
    erased: int = 0
    events: int = 0
    skipped: set[str] = field(default_factory=set)  # projects to archive without an archive


def _all_projects(tx: Tx) -> list[Project]:
    found: list[Project] = []
    while page := tx.list_projects(found[-1].id if found else "", PROJECT_PAGE):
        found += page
        if len(page) < PROJECT_PAGE:
            break
    return found


def prune_batch(tx: Tx, project_id: str, status: int, before_us: int, limit: int,
                archive: Archive | None, still: Callable[[Tx], bool] | None = None) -> int:
    """Deletes up to `limit` of a project's work orders of `status` last changed before
    `before_us` (none with a run in flight), archived first when `archive` is given; how many.
    `still`, when given, is asked first, in the same write: does the policy that set `before_us`
    still hold? If not (UpdateProject changed it during the pass), nothing is deleted."""
    if still is not None and not still(tx):
        return 0
    ids = tx.due_work_orders(project_id, status, before_us, limit)
    if ids:
        if archive is not None:
            archive(tx, ids)
        tx.delete_work_orders(ids)
        label = WORK_ORDERS_PRUNED.labels(status_label(status))
        tx.after_commit(lambda: label.inc(len(ids)))
    return len(ids)


def _erase_error(error: RunError) -> None:
    error.report.message = ""
    error.report.stack = ""


def erase_payloads(tx: Tx, work_order: WorkOrder, now: int) -> None:
    """Its input, its step runs' outputs, and its errors' messages and stacks; the statuses,
    steps, error names and classifications stay, and so does update_time (the retention clock)."""
    work_order.ClearField("input")
    if not work_order.HasField("payloads_erase_time"):
        work_order.payloads_erase_time.CopyFrom(timestamp(now))
    tx.put_work_order(work_order, new=False)
    for run in tx.list_runs(work_order.id, 2**31 - 1, work_order.run_count + 1):
        stored = tx.get_run(run.id)
        if stored is None:
            continue
        if stored.run.HasField("error"):
            _erase_error(stored.run.error)
            tx.put_run(stored, new=False)
        for step_run in tx.step_runs(run.id):
            if step_run.HasField("output") or step_run.error.report.message or step_run.error.report.stack:
                step_run.ClearField("output")
                if step_run.HasField("error"):
                    _erase_error(step_run.error)
                tx.put_step_run(step_run, new=False)


def erase_batch(tx: Tx, project_id: str, before_us: int, limit: int, now: int) -> tuple[int, bool]:
    """Erases the payloads of a project's ended work orders last changed before `before_us`,
    up to `limit` of them from where the last batch stopped; (how many, whether more may follow).
    One in flight is passed over: its update_time moves when it ends, and it comes again then."""
    mark = tx.payload_erase_mark(project_id)
    found = tx.work_orders_changed(project_id, mark, before_us, limit)
    erased = 0
    for work_order, key in found:
        # Once erased, again only if it was retried since (its new run's outputs).
        if status_table.is_terminal(work_order.status):
            erase_payloads(tx, work_order, now)
            erased += 1
        mark = key
    if found:
        tx.put_payload_erase_mark(project_id, mark)
    if erased:
        tx.after_commit(lambda: PAYLOADS_ERASED.inc(erased))
    return erased, len(found) == limit


def trim_event_log(tx: Tx, limit: int) -> int:
    """Deletes up to `limit` events at or below the horizon (and scanned by every notification
    subscription); how many."""
    through = tx.event_log_horizon()
    lowest = tx.lowest_notification_cursor()
    if lowest is not None:
        through = min(through, lowest)
    return tx.delete_events_through(through, limit) if through > 0 else 0


class Pruner:
    """Runs passes for the leading server. `default` is the instance's policy (--retention).
    `archive`, when given, is called with each batch before it is deleted, in the same write
    (the archive writer of issue 29 item 4 plugs in here); a project whose policy asks for an
    archive is not pruned while there is none."""

    def __init__(self, store: Store, default: RetentionPolicy, archive: Archive | None = None,
                 max_per_pass: int = MAX_PER_PASS) -> None:
        self.store = store
        self.default = default
        self.archive = archive
        self.max_per_pass = max_per_pass
        self._warned: set[str] = set()

    def _still(self, tx: Tx, *, project_id: str, status: int, keep_us: int, archive: bool) -> bool:
        """Whether the project's retention still keeps work orders of `status` for `keep_us`
        (and archives them as it did): a pass is long (its writes are paced), and a policy changed
        meanwhile must stop the deletions it no longer asks for at once, not at the next pass."""
        project = tx.get_project(project_id)
        if project is None:
            return False
        rules = retention.effective(project, self.default)
        return rules.keep_us.get(status) == keep_us and rules.archive == archive

    async def _write(self, fn: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A write, then a pause of PAUSE times as long as it held the writers up: from the moment
        it began to run (not its wait for a turn) to the end of the COMMIT that holds it. The COMMIT
        is counted: a batch deleted makes the writers' COMMIT longer (its pages go through the WAL
        and a checkpoint; on SQLite ~3 pages a work order at 200 a batch), and writers wait for it."""
        began = [0.0]

        def timed(tx: Tx, /, *more: P.args, **named: P.kwargs) -> T:
            began[0] = time.perf_counter()
            return fn(tx, *more, **named)

        outcome = await self.store.write(timed, *args, **kwargs)
        await asyncio.sleep((time.perf_counter() - began[0]) * PAUSE)
        return outcome

    async def run_pass(self, now: int) -> Pass:
        done = Pass()
        budget = self.max_per_pass
        for project in await self.store.scan(_all_projects):
            rules = retention.effective(project, self.default)
            if not rules.prunes:
                continue
            if rules.archive and self.archive is None:
                done.skipped.add(project.id)
                continue
            for status, keep_us in sorted(rules.keep_us.items()):
                still = functools.partial(self._still, project_id=project.id, status=status, keep_us=keep_us,
                                          archive=rules.archive)
                while budget > 0:
                    n = int(await self._write(prune_batch, project.id, status, now - keep_us, min(BATCH, budget),
                                              self.archive if rules.archive else None, still))
                    done.pruned += n
                    budget -= n
                    if n < BATCH:
                        break
            while rules.payloads_us and budget > 0:
                erased, more = await self._write(erase_batch, project.id, now - rules.payloads_us,
                                                 min(ERASE_BATCH, budget), now)
                done.erased += erased
                budget -= max(erased, 1)
                if not more:
                    break
        while budget > 0:
            n = int(await self._write(trim_event_log, EVENT_BATCH))
            done.events += n
            budget -= n // 10  # events are small rows: ten to a work order
            if n < EVENT_BATCH:
                break
        self._report(done)
        return done

    def _report(self, done: Pass) -> None:
        if done.pruned or done.erased or done.events:
            log.info("retention pass", extra={"work_orders_deleted": done.pruned, "payloads_erased": done.erased,
                                              "events_deleted": done.events})
        for project_id in done.skipped - self._warned:
            log.warning("the project's retention asks for an archive and the server has none: nothing of it is "
                        "deleted", extra={"project_id": project_id})
        self._warned |= done.skipped
