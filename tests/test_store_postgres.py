"""The PostgreSQL store, driven in-process with asyncio against a real PostgreSQL (tests/pg.py).

The write contract of store/base.py, as test_store_commit.py holds SQLite to it: a write is
visible once answered, a write that raises changes nothing (a refusal that keeps its changes
is a value it returns, errors.Refused),
after-commit hooks run once after the COMMIT and never for a write undone; and what only
several writers at once can show: claims never hand a run out twice, events are read by
sequence without a gap, read-modify-write loses no update, a request_id answered once. The
rows of PostgresTx are held to SqliteTx's: one scenario of Tx calls gives the same answers on
both. Nothing is mocked; where the database must go away, a PostgreSQL of the test's own is
stopped and started again.
"""

from __future__ import annotations

import asyncio
import contextvars
import pathlib
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import psycopg
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from runstatus.v1.error_reason_pb2 import ErrorReason
from runstatus.v1.event_pb2 import Event
from runstatus.v1.project_pb2 import Project
from runstatus.v1.token_pb2 import Token
from runstatus.v1.work_order_pb2 import Run, StepRun, WorkOrder, WorkOrderFilter
from runstatus.v1.workflow_pb2 import Step, Workflow

from runstatus_server.errors import FailedPrecondition, Refused
from runstatus_server.idempotency import answer_or_raise
from runstatus_server.store import PostgresStore, SqliteStore, open_store, prepare
from runstatus_server.store.base import (
    PENDING, RUNNING, CannotOpen, StorageBusy, StorageError, StorageUnavailable, StoredRun, StoreClosing,
)
from runstatus_server.store.postgres.engine import LEAD_CHECK_S
from runstatus_server.store.postgres.migrations import MIGRATIONS
from runstatus_server.store.postgres.rows import PostgresTx

pytestmark = pytest.mark.postgres

pytest_plugins = ["pg"]

T = TypeVar("T")
SUCCESS = 3  # RUN_STATUS_SUCCESS



def run(coro: Coroutine[Any, Any, T], timeout: float = 90) -> T:
    """Runs a test's coroutine; a hang fails the test instead of the whole run."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def probe_rows(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {k for (k,) in conn.execute("SELECT k FROM probe")}


def insert(tx: PostgresTx, key: str) -> str:
    tx.conn.execute("INSERT INTO probe (k) VALUES (%s)", (key,))
    return key


@pytest.fixture
def db(pg_url: str) -> str:
    """A database with the store's schema and a probe table for writes of the tests' own."""
    prepare(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE probe (k TEXT PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0)")
    return pg_url


async def started(url: str, **kwargs: Any) -> PostgresStore:
    store = PostgresStore(url, **kwargs)
    await store.start()
    return store


# --- selection -----------------------------------------------------------------------------


def test_open_store_selects_the_backend_by_the_db_given(tmp_path: pathlib.Path) -> None:
    assert isinstance(open_store("postgresql://u@127.0.0.1:1/x"), PostgresStore)
    assert isinstance(open_store("postgres://u@127.0.0.1:1/x"), PostgresStore)
    plain = open_store(str(tmp_path / "a.db"))
    prefixed = open_store(f"sqlite:{tmp_path / 'b.db'}")
    assert isinstance(plain, SqliteStore) and isinstance(prefixed, SqliteStore)
    assert prefixed.path == str(tmp_path / "b.db")  # type: ignore[attr-defined]
    prepare(f"sqlite:{tmp_path / 'c.db'}")
    assert (tmp_path / "c.db").exists()


# --- the write contract ----------------------------------------------------------------------


def test_a_write_is_visible_once_answered_and_a_raising_write_changes_nothing(db: str) -> None:
    def fails(tx: PostgresTx, key: str) -> None:
        insert(tx, key)
        raise FailedPrecondition("refused", reason=ErrorReason.ERROR_REASON_RUN_ENDED)

    def bug(tx: PostgresTx, key: str) -> None:
        insert(tx, key)
        raise KeyError("a bug in a job")

    async def main() -> None:
        store = await started(db)
        assert await store.write(insert, "a") == "a"
        assert probe_rows(db) == {"a"}  # committed when answered: another connection sees it
        assert await store.read(lambda tx: tx.conn.execute("SELECT k FROM probe").fetchall()) == [("a",)]
        with pytest.raises(FailedPrecondition):
            await store.write(fails, "refused")
        with pytest.raises(KeyError):
            await store.write(bug, "bug")
        assert probe_rows(db) == {"a"}
        await store.close()

    run(main())


def test_writes_waiting_together_commit_together_and_each_fails_alone(db: str) -> None:
    """Group commit: writes that wait while the writer thread is busy commit in one
    transaction, each in a savepoint. One that raises is undone alone (its rows, its events, its
    hooks), and the rest commit. One whose statement fails (a key taken) fails the group's
    transaction: the writes then run one by one, and only that one is refused."""
    held = threading.Event()
    release = threading.Event()
    hooks: list[str] = []

    def blocker(tx: PostgresTx) -> None:
        held.set()
        release.wait(30)

    def ok(tx: PostgresTx, key: str) -> str:
        insert(tx, key)
        tx.append_event(Event(project_id="p", work_order_id=key))
        tx.after_commit(lambda: hooks.append(key))
        return key

    def raises(tx: PostgresTx, key: str) -> None:
        ok(tx, key)
        raise FailedPrecondition("refused", reason=ErrorReason.ERROR_REASON_RUN_ENDED)

    async def group(store: PostgresStore, writes: list[Coroutine[Any, Any, Any]]) -> list[Any]:
        held.clear()
        release.clear()
        blocking = asyncio.ensure_future(store.write(blocker))
        await asyncio.to_thread(held.wait, 30)  # the one writer thread is busy: the rest wait together
        waiting = [asyncio.ensure_future(w) for w in writes]
        await asyncio.sleep(0.05)
        release.set()
        await blocking
        return await asyncio.gather(*waiting, return_exceptions=True)

    async def main() -> None:
        store = await started(db, writers=1)
        sizes: list[int] = []
        store.add_commit_size_listener(sizes.append)
        first = await group(store, [store.write(ok, f"a{i}") for i in range(4)] + [store.write(raises, "bad")]
                            + [store.write(ok, f"b{i}") for i in range(4)])
        assert first[:4] == [f"a{i}" for i in range(4)] and first[5:] == [f"b{i}" for i in range(4)]
        assert isinstance(first[4], FailedPrecondition)
        assert sizes == [1, 8]  # the blocker alone, then eight writes in one COMMIT
        assert "bad" not in probe_rows(db) and sorted(hooks) == sorted(first[:4] + first[5:])
        events = await store.scan(lambda tx: tx.events_after(0, "p", 100))
        assert [e.work_order_id for e in events] == [*first[:4], *first[5:]]  # in order, none of bad's

        sizes.clear()
        second = await group(store, [store.write(ok, "c0"), store.write(insert, "a0"), store.write(ok, "c1")])
        assert second[0] == "c0" and second[2] == "c1" and isinstance(second[1], StorageError)
        assert sizes == [1, 1, 1]  # the blocker, then c0 and c1 each alone
        assert {"c0", "c1"} <= probe_rows(db)
        await store.close()

    run(main())


def test_a_workflow_version_is_read_once_then_taken_from_the_cache(db: str) -> None:
    """Workflow versions never change: a write reads one from the database once; later writes
    take it from the store's cache (a lifecycle write reads its run's version's steps)."""
    statements: list[str] = []

    def counted(fn: Any) -> Any:
        def job(tx: PostgresTx, *args: Any) -> Any:
            execute = tx._execute

            def counting(sql: str, params: tuple[Any, ...]) -> Any:
                statements.append(sql)
                return execute(sql, params)

            setattr(tx, "_execute", counting)  # noqa: B010
            return fn(tx, *args)
        return job

    def setup(tx: PostgresTx) -> None:
        tx.put_project(Project(id="p"), new=True)
        tx.insert_workflow(Workflow(project_id="p", id="w", version=1, steps=[Step(id="a")]))

    def steps(tx: PostgresTx, version: int) -> list[str] | None:
        found = tx.get_workflow("p", "w", version)
        return [s.id for s in found.steps] if found else None

    async def main() -> None:
        store = await started(db)
        await store.write(setup)
        assert await store.write(counted(steps), 1) == ["a"]
        assert any("FROM workflows" in sql for sql in statements)
        statements.clear()
        assert await store.write(counted(steps), 1) == ["a"]
        assert await store.write(counted(steps), 2) is None  # no such version: read, and not kept
        assert len([sql for sql in statements if "FROM workflows" in sql]) == 1  # version 2's
        # A version looked up for the first time (as a create does) keeps the data already cached.
        assert await store.write(lambda tx: tx.workflow_version("p", "w", 0)) == 1
        statements.clear()
        assert await store.write(counted(steps), 1) == ["a"]
        assert not [sql for sql in statements if "FROM workflows" in sql]
        await store.close()

    run(main())


def test_a_refusal_that_keeps_its_changes_commits_then_reaches_the_caller(db: str) -> None:
    hooks: list[str] = []

    def kept(tx: PostgresTx, key: str) -> Refused:
        insert(tx, key)
        tx.after_commit(lambda: hooks.append(key))
        return Refused(FailedPrecondition("refused, but kept", reason=ErrorReason.ERROR_REASON_RUN_ENDED))

    async def main() -> None:
        store = await started(db)
        with pytest.raises(FailedPrecondition):
            answer_or_raise(await store.write(kept, "kept"))
        assert probe_rows(db) == {"kept"}
        assert hooks == ["kept"]
        await store.close()

    run(main())


def test_after_commit_hooks_run_once_after_the_commit_and_never_on_rollback(db: str) -> None:
    seen: list[tuple[str, bool]] = []

    def hooked(tx: PostgresTx, key: str, fail: bool) -> str:
        insert(tx, key)
        # The hook looks from another connection: it must find the write committed.
        tx.after_commit(lambda: seen.append((key, key in probe_rows(db))))
        if fail:
            raise FailedPrecondition("refused", reason=ErrorReason.ERROR_REASON_RUN_ENDED)
        return key

    def boom() -> None:
        raise RuntimeError("a metric hook failed")

    def bad_hook(tx: PostgresTx, key: str) -> str:
        tx.after_commit(boom)
        return insert(tx, key)

    heard: list[int] = []

    async def main() -> None:
        store = await started(db)
        store.add_commit_listener(lambda: (_ for _ in ()).throw(RuntimeError("a listener failed")))
        store.add_commit_listener(lambda: heard.append(1))
        store.add_fault_listener(lambda fault: None)  # exists; PostgreSQL has no file to lose
        assert await store.write(hooked, "ok", False) == "ok"
        with pytest.raises(FailedPrecondition):
            await store.write(hooked, "undone", True)
        # A hook that raises neither keeps its write waiting nor stops the next writes.
        assert await asyncio.wait_for(store.write(bad_hook, "bad-hook"), 10) == "bad-hook"
        assert await store.write(hooked, "after", False) == "after"
        await store.close()

    run(main())
    assert seen == [("ok", True), ("after", True)]
    assert len(heard) == 3  # once per commit: ok, bad-hook, after


def test_a_cancelled_caller_does_not_lose_its_committed_write_or_its_hooks(db: str) -> None:
    hooks: list[str] = []

    def slow(tx: PostgresTx, key: str) -> str:
        tx.conn.execute("SELECT pg_sleep(0.3)")
        tx.after_commit(lambda: hooks.append(key))
        return insert(tx, key)

    async def main() -> None:
        store = await started(db)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(store.write(slow, "late"), 0.05)
        await store.close()  # waits for the write begun
        with pytest.raises(StoreClosing):
            await store.write(insert, "after close")

    run(main())
    assert probe_rows(db) == {"late"}
    assert hooks == ["late"]


def test_a_write_and_a_read_run_in_the_callers_context(db: str) -> None:
    who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")

    async def main() -> tuple[str, str, str]:
        store = await started(db)
        who.set("alice")
        wrote = await store.write(lambda tx: who.get())
        read = await store.read(lambda tx: who.get())
        scanned = await store.scan(lambda tx: who.get())
        await store.close()
        return wrote, read, scanned

    assert run(main()) == ("alice", "alice", "alice")


def test_many_writers_at_once_answered_ok_if_and_only_if_committed(db: str) -> None:
    answers: dict[str, str] = {}

    def job(tx: PostgresTx, key: str, kind: str) -> str | Refused:
        insert(tx, key)
        if kind == "fail":
            raise FailedPrecondition("refused", reason=ErrorReason.ERROR_REASON_RUN_ENDED)
        if kind == "keep":
            return Refused(FailedPrecondition("refused, but kept", reason=ErrorReason.ERROR_REASON_RUN_ENDED))
        return key

    async def main() -> None:
        store = await started(db)

        async def one(i: int) -> None:
            kind = ("ok", "ok", "fail", "keep")[i % 4]
            try:
                answer_or_raise(await store.write(job, f"k{i}", kind))
                answers[f"k{i}"] = "ok"
            except FailedPrecondition:
                answers[f"k{i}"] = "kept" if kind == "keep" else "error"

        await asyncio.gather(*(one(i) for i in range(200)))
        await store.close()

    run(main())
    found = probe_rows(db)
    assert found == {k for k, a in answers.items() if a in ("ok", "kept")}
    assert len(found) == 150


# --- several writers on the same rows ----------------------------------------------------------


def _run(run_id: str, priority: int = 0, create_us: int = 1_000_000, project_id: str = "p") -> StoredRun:
    return StoredRun(Run(id=run_id, work_order_id=f"wo-{run_id}", project_id=project_id, number=1,
                         status=PENDING, priority=priority, create_time=Timestamp(seconds=create_us // 1_000_000)))


def put_runs(tx: PostgresTx, runs: list[StoredRun]) -> None:
    for stored in runs:
        tx.put_run(stored, new=True)


def claim(tx: PostgresTx, worker: str, n: int) -> list[str]:
    claimed = []
    for stored in tx.claimable_runs("p", n):
        stored.run.worker_id = worker
        stored.lease_token = worker
        tx.put_run(stored, new=False)
        claimed.append(stored.run.id)
    return claimed


def test_claims_from_two_stores_at_once_never_hand_a_run_out_twice(db: str) -> None:
    """Two stores (two servers' pools) claim 600 runs in small bites: SKIP LOCKED leaves the
    runs one is taking to it, so every run goes to exactly one claim."""
    total = 600

    async def main() -> list[str]:
        a, b = await started(db), await started(db)
        await a.write(put_runs, [_run(f"r{i:04d}", priority=i % 3, create_us=1_000_000 * (i + 1)) for i in range(total)])
        got: list[str] = []

        async def worker(store: PostgresStore, name: str) -> None:
            while True:
                claimed = await store.write(claim, name, 3)
                if not claimed:
                    return
                got.extend(claimed)

        await asyncio.gather(*(worker(s, f"w{i}") for i, s in enumerate([a, b] * 6)))
        await a.close()
        await b.close()
        return got

    got = run(main())
    assert len(got) == len(set(got)) == total


def test_claimable_runs_go_by_priority_then_age(db: str) -> None:
    async def main() -> list[str]:
        store = await started(db)
        await store.write(put_runs, [_run("old-low", 0, 1_000_000), _run("new-high", 5, 9_000_000),
                                     _run("old-high", 5, 2_000_000), _run("new-low", 0, 8_000_000)])
        order = await store.write(claim, "w", 10)
        await store.close()
        return order

    assert run(main()) == ["old-high", "new-high", "old-low", "new-low"]


def test_read_modify_write_loses_no_update(db: str) -> None:
    """get_run in a write locks the run: 60 writers each adding one to its priority at once."""

    def bump(tx: PostgresTx) -> None:
        stored = tx.get_run("r")
        assert stored is not None
        stored.run.priority += 1
        tx.put_run(stored, new=False)

    async def main() -> int:
        store = await started(db)
        await store.write(put_runs, [_run("r")])
        await asyncio.gather(*(store.write(bump) for _ in range(60)))
        stored = await store.read(lambda tx: tx.get_run("r"))
        await store.close()
        assert stored is not None
        return int(stored.run.priority)

    assert run(main()) == 60


def test_a_project_updated_by_two_writers_at_once_keeps_both_changes(db: str) -> None:
    """Projects are not locked when read; an update of a row that changed meanwhile is tried again."""

    def rename(tx: PostgresTx, suffix: str) -> None:
        project = tx.get_project("p")
        assert project is not None
        tx.conn.execute("SELECT pg_sleep(0.05)")
        project.name += suffix
        tx.put_project(project, new=False)

    async def main() -> str:
        store = await started(db)
        await store.write(lambda tx: tx.put_project(Project(id="p", name=""), new=True))
        await asyncio.gather(*(store.write(rename, s) for s in "abcdef"))
        project = await store.read(lambda tx: tx.get_project("p"))
        await store.close()
        assert project is not None
        return str(project.name)

    assert sorted(run(main())) == list("abcdef")


def test_one_request_id_written_at_once_by_two_writers_is_answered_once(db: str) -> None:
    """Both look the request up, find nothing and insert: the second's insert fails on the key,
    and it is tried again, when it finds the first's answer."""

    def answer_once(tx: PostgresTx, mine: bytes) -> bytes:
        seen = tx.get_request("req-1")
        if seen is not None:
            return seen[2]
        tx.conn.execute("SELECT pg_sleep(0.05)")
        tx.put_request("req-1", "M", b"fp", mine, 1)
        return mine

    async def main() -> list[bytes]:
        stores = [await started(db), await started(db)]
        answers = await asyncio.gather(*(stores[i % 2].write(answer_once, f"answer-{i}".encode()) for i in range(8)))
        for store in stores:
            await store.close()
        return list(answers)

    answers = run(main())
    assert len(set(answers)) == 1, answers


def test_run_limits_are_counted_one_writer_at_a_time(db: str) -> None:
    """Ten writers admit runs against a limit of three in flight: never more than three."""

    def admit(tx: PostgresTx, run_id: str) -> bool:
        if tx.count_in_flight("p") >= 3:
            return False
        tx.conn.execute("SELECT pg_sleep(0.02)")
        tx.put_run(_run(run_id), new=True)
        return True

    async def main() -> int:
        stores = [await started(db), await started(db)]
        admitted = await asyncio.gather(*(stores[i % 2].write(admit, f"r{i}") for i in range(10)))
        for store in stores:
            await store.close()
        return sum(admitted)

    assert run(main()) == 3


def test_events_are_read_by_sequence_without_a_gap_while_written_at_once(db: str) -> None:
    """Writers on two stores append events in transactions of different lengths while a reader
    follows the log by sequence, as a watch does: it must see every event, once, in order."""
    writes = 300

    def append(tx: PostgresTx, i: int) -> None:
        tx.append_event(Event(project_id="p", work_order_id=f"wo{i}"))
        if i % 7 == 0:
            tx.conn.execute("SELECT pg_sleep(0.01)")  # a long transaction, committing late

    async def main() -> list[tuple[int, str]]:
        stores = [await started(db), await started(db)]
        reader = await started(db)
        done = asyncio.Event()
        seen: list[tuple[int, str]] = []

        async def follow() -> None:
            cursor = 0
            while True:
                finished = done.is_set()
                page = await reader.scan(lambda tx, c: tx.events_after(c, "p", 50), cursor)
                seen.extend((e.sequence, e.work_order_id) for e in page)
                if page:
                    cursor = page[-1].sequence
                elif finished:
                    return
                else:
                    await asyncio.sleep(0.001)

        follower = asyncio.create_task(follow())
        await asyncio.gather(*(stores[i % 2].write(append, i) for i in range(writes)))
        done.set()
        await follower
        for store in (*stores, reader):
            await store.close()
        return seen

    seen = run(main())
    sequences = [seq for seq, _ in seen]
    assert sequences == sorted(set(sequences)), "the reader saw an event twice or out of order"
    assert sorted(wo for _, wo in seen) == sorted(f"wo{i}" for i in range(writes)), "the reader skipped an event"


def test_counts_stay_exact_while_writers_change_statuses_at_once_and_the_buckets_are_merged(db: str) -> None:
    """The hour buckets are rows of changes (no row that writers wait on each other for), merged
    while writers on two stores insert and change work orders: every count read meanwhile and
    after is the count of the rows, and merging leaves one row per bucket."""
    statuses = [PENDING, RUNNING, SUCCESS]

    def change(tx: PostgresTx, i: int, step: int) -> None:
        wo = tx.get_work_order(f"wo{i}") if step else None
        if wo is None:
            wo = WorkOrder(id=f"wo{i}", project_id="p", workflow_id=f"w{i % 2}", status=PENDING,
                           create_time=_ts(3600 * (i % 3)))
            tx.put_work_order(wo, new=True)
            return
        wo.status = statuses[step % 3]
        tx.put_work_order(wo, new=False)

    def counts_and_rows(tx: PostgresTx) -> tuple[dict[int, int], dict[int, int]]:
        rows = {int(status): int(n) for status, n in tx.conn.execute(
            "SELECT status, count(*) FROM work_orders WHERE project_id = 'p' GROUP BY status")}
        return tx.count_work_orders("p", WorkOrderFilter()), rows

    async def main() -> None:
        a, b = await started(db), await started(db)
        for step in range(4):
            writes = [(a if i % 2 else b).write(change, i, step) for i in range(60)]
            merges = [a.write(lambda tx: tx.merge_count_deltas(3)) for _ in range(5)]
            await asyncio.gather(*writes, *merges)
            counted, rows = await a.scan(counts_and_rows)
            assert counted == rows, f"step {step}"
        await b.write(lambda tx: tx.merge_count_deltas(1000))
        counted, rows = await b.scan(counts_and_rows)
        assert counted == rows
        for table in ("work_order_counts", "work_order_change_counts"):
            buckets = await b.scan(lambda tx: tx.conn.execute(
                "SELECT count(*), count(DISTINCT (project_id, workflow_id, status, hour)), "
                f"count(*) FILTER (WHERE pending) FROM {table}").fetchone())
            assert buckets[0] == buckets[1] and buckets[2] == 0, (table, buckets)
        await a.close()
        await b.close()

    run(main())


# --- the same rows as SQLite ---------------------------------------------------------------------


def _ts(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds)


def scenario(tx: Any) -> list[Any]:
    """Every Tx method, with fixed ids and times, and what each answered (as comparable values)."""
    out: list[Any] = []

    def note(value: Any) -> None:
        if hasattr(value, "SerializeToString"):
            value = value.SerializeToString(deterministic=True)
        elif isinstance(value, StoredRun):
            value = (value.run.SerializeToString(deterministic=True), value.lease_token, value.deadline_us,
                     value.step_count, value.step_bytes)
        elif isinstance(value, (list, tuple)):
            value = [note_value(v) for v in value]
        out.append(value)

    def note_value(v: Any) -> Any:
        mark = len(out)
        note(v)
        return out.pop(mark)

    hour = 3600
    tx.put_project(Project(id="p", name="P"), new=True)
    tx.put_project(Project(id="q", name="Q"), new=True)
    tx.put_project(Project(id="p", name="P2"), new=False)
    note(tx.get_project("p"))
    note(tx.get_project("none"))
    note(tx.list_projects("", 10))
    note(tx.list_projects("p", 10))
    # Strings PostgreSQL's text cannot hold as they are (NUL), kept apart and in SQLite's order.
    for odd in ("a\x00b", "a\x01", "a", "a\x00", "\x01\x00", "é"):
        tx.put_project(Project(id=odd, name=odd), new=True)
    note(tx.list_projects("", 20))
    note(tx.list_projects("a\x00", 20))
    note([tx.get_project("a\x00b"), tx.get_project("a\x00c"), tx.get_project("\x01\x00")])
    for version in (1, 2):
        tx.insert_workflow(Workflow(project_id="p", id="wf", version=version, steps=[Step(id=f"s{version}")]))
    tx.insert_workflow(Workflow(project_id="p", id="wf2", version=1))
    note(tx.get_workflow("p", "wf"))
    note(tx.get_workflow("p", "wf", 1))
    note(tx.get_workflow("p", "wf", 3))
    note([tx.workflow_version("p", "wf"), tx.workflow_version("p", "wf", 1), tx.workflow_version("p", "wf", 9)])
    note(tx.list_workflows("p", "", 10))
    for i in range(12):
        wo = WorkOrder(id=f"wo{i:02d}", project_id="p", workflow_id="wf" if i % 3 else "wf2",
                       status=PENDING if i % 2 else RUNNING, create_time=_ts(10 * hour + i * 1000),
                       update_time=_ts(10 * hour + i * 1000))
        tx.put_work_order(wo, new=True)
    changed = tx.get_work_order("wo03")
    changed.status = SUCCESS
    changed.update_time.CopyFrom(_ts(12 * hour))
    tx.put_work_order(changed, new=False)
    note(tx.get_work_order("wo03"))
    page = tx.list_work_orders("p", WorkOrderFilter(), None, 5)
    note([(wo, key) for wo, key in page])
    note(tx.list_work_orders("p", WorkOrderFilter(), page[-1][1], 5))
    note(tx.list_work_orders("p", WorkOrderFilter(statuses=[PENDING, SUCCESS], workflow_id="wf"), None, 20))
    note(tx.list_work_orders("p", WorkOrderFilter(create_time_start=_ts(10 * hour + 2000),
                                                  create_time_end=_ts(10 * hour + 6000)), None, 20))
    note(sorted(tx.count_work_orders("p", WorkOrderFilter()).items()))
    note(sorted(tx.count_work_orders("p", WorkOrderFilter(statuses=[PENDING])).items()))
    note(sorted(tx.count_work_orders("p", WorkOrderFilter(create_time_start=_ts(10 * hour + 2500))).items()))
    note(sorted(tx.count_work_orders("p", WorkOrderFilter(create_time_start=_ts(9 * hour),
                                                          create_time_end=_ts(14 * hour))).items()))
    note(sorted(tx.count_all_work_orders().items()))
    changed_late = WorkOrderFilter(update_time_start=_ts(10 * hour + 8500))
    note(tx.list_work_orders("p", changed_late, None, 20))
    note(sorted(tx.count_work_orders("p", changed_late).items()))
    note(sorted(tx.count_work_orders("p", WorkOrderFilter(update_time_end=_ts(11 * hour), statuses=[PENDING],
                                                          create_time_start=_ts(10 * hour + 2500))).items()))
    for i in range(6):
        run_ = Run(id=f"r{i}", work_order_id="wo01", project_id="p", number=i + 1, status=PENDING,
                   priority=i % 2, create_time=_ts(100 + i))
        tx.put_run(StoredRun(run_), new=True)
    leased = tx.get_run("r1")
    leased.run.worker_id = "w"
    leased.run.lease_expire_time.CopyFrom(_ts(500))
    leased.lease_token = "tok"
    tx.put_run(leased, new=False)
    overdue = tx.get_run("r2")
    overdue.run.status = RUNNING
    overdue.run.worker_id = "w"
    overdue.run.lease_expire_time.CopyFrom(_ts(9000))
    overdue.deadline_us = 700_000_000
    tx.put_run(overdue, new=False)
    note(tx.get_run("r1"))
    note(tx.get_run("none"))
    note(tx.list_runs("wo01", 5, 2))
    note(tx.claimable_runs("p", 3))
    note(tx.claimable_runs("", 10))
    note(tx.expired_leases(1_000_000_000, 10))
    note(tx.overdue_runs(1_000_000_000, 10))
    note([tx.count_in_flight("p"), tx.count_created_since("p", 103_000_000)])
    for i in range(3):
        tx.put_step_run(StepRun(id=f"sr{i}", run_id="r2", step_id=f"s{i}", status=RUNNING,
                                previous_step_run_id=f"sr{i - 1}" if i else ""), new=True)
    done = tx.get_step_run("sr1")
    done.status = SUCCESS
    done.output.update({"big": "x" * 100})
    tx.put_step_run(done, new=False)
    note(tx.step_runs("r2"))
    note(tx.get_step_run("sr1"))
    note([tx.step_run_started("r2", "s1", "sr0"), tx.step_run_started("r2", "s1", "nope")])
    note(tx.running_step_runs("r2"))
    note(tx.get_run("r2"))  # its step_count and step_bytes
    for i in range(5):  # read back after the commit (PostgreSQL writes them at its COMMIT)
        tx.append_event(Event(project_id="p" if i % 2 else "q", work_order_id=f"wo{i}"))
    tx.put_token(Token(id="t1", project_id="p", name="one"), "hash1", new=True)
    tx.put_token(Token(id="t2", project_id="p", name="two"), "hash2", new=True)
    tx.put_token(Token(id="t1", project_id="p", name="renamed"), "", new=False)
    tx.put_token(Token(id="t\x00", project_id="p\x00"), "hash\x00\x01", new=True)
    token = tx.get_token("t1")
    note([token[0], token[1]])
    note(list(tx.get_token("t\x00") or ()))
    note(tx.list_tokens("p\x00", "", 10))
    note(tx.get_token("none"))
    note(tx.list_tokens("p", "t1", 10))
    for i in range(5):
        tx.put_request(f"req{i}", "M", b"fp%d" % i, b"answer%d" % i, 1000 + i)
    tx.put_request("req\x00", "M\x00", b"\x00", b"\x00", 1)
    note(list(tx.get_request("req2") or ()))
    note(list(tx.get_request("req\x00") or ()))
    note(tx.get_request("none"))
    note(tx.delete_requests_before(1003, 2))
    note(tx.delete_requests_before(1003, 2))
    note(list(tx.get_request("req0") or ()))
    return out


def test_postgres_rows_answer_as_sqlite_rows_do(tmp_path: pathlib.Path, pg_url: str) -> None:
    async def both() -> tuple[list[Any], list[Any], list[Any], list[Any]]:
        lite = SqliteStore(str(tmp_path / "same.db"))
        await lite.start()
        pg = PostgresStore(pg_url)
        await pg.start()
        written = await lite.write(scenario), await pg.write(scenario)
        # And read back outside the write, on each backend's readers.
        reads = [await store.scan(lambda tx: [tx.list_projects("", 10), tx.events_after(0, "", 10),
                                                 tx.events_after(1, "p", 10), tx.events_after(0, "q", 1),
                                                 tx.last_event_sequence(),
                                                 sorted(tx.count_all_work_orders().items()),
                                                 tx.claimable_runs("p", 2)]) for store in (lite, pg)]
        await lite.close()
        await pg.close()
        return written[0], written[1], repr(reads[0]), repr(reads[1])  # type: ignore[return-value]

    lite_answers, pg_answers, lite_reads, pg_reads = run(both())
    assert len(lite_answers) == len(pg_answers)
    for i, (a, b) in enumerate(zip(lite_answers, pg_answers)):
        assert a == b, f"answer {i} differs: sqlite {a!r} postgres {b!r}"
    assert lite_reads == pg_reads


# --- migrations ----------------------------------------------------------------------------------


def test_migrations_run_at_once_by_several_servers_apply_once(pg_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start_one() -> None:
        try:
            barrier.wait()
            prepare(pg_url)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=start_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(len(MIGRATIONS),)]
    prepare(pg_url)  # and again, up to date: nothing to do


def test_a_database_of_the_first_schema_gets_its_change_times_filled(pg_url: str) -> None:
    """Migration 2 adds work_orders.update_time: rows written before it get theirs from their
    messages, so a filter on change times finds them."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        with conn.transaction():
            conn.execute(MIGRATIONS[0])
            conn.execute("INSERT INTO schema_version (version) VALUES (1)")
            for i in range(3):  # as version 1 wrote them
                order = WorkOrder(id=f"o{i}", project_id="p", workflow_id="w", status=PENDING,
                                  create_time=_ts(1000), update_time=_ts(1000 + i * 100))
                conn.execute("INSERT INTO work_orders (project_id, workflow_id, status, create_time, data, id) "
                             "VALUES ('p', 'w', %s, 1000, %s, %s)", (PENDING, order.SerializeToString(), order.id))
    prepare(pg_url)
    with psycopg.connect(pg_url) as conn:
        tx = PostgresTx(conn, writing=False)
        flt = WorkOrderFilter(update_time_start=_ts(1100))
        assert sorted(wo.id for wo, _ in tx.list_work_orders("p", flt, None, 10)) == ["o1", "o2"]
        assert tx.count_work_orders("p", flt) == {PENDING: 2}


def test_a_newer_schema_is_refused_with_one_line(pg_url: str) -> None:
    prepare(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(CannotOpen, match="newer runstatus"):
        run(PostgresStore(pg_url).start())


def test_an_unreachable_database_is_refused_at_start() -> None:
    with pytest.raises(CannotOpen, match=r"postgresql://u:\*\*\*@127.0.0.1:1/x"):
        run(PostgresStore("postgresql://u:secret@127.0.0.1:1/x").start())


# --- the database goes away and comes back --------------------------------------------------------


def test_a_stopped_database_fails_units_of_work_with_storage_errors_and_the_store_recovers(
        own_postgres: Any) -> None:
    url = own_postgres.url()
    prepare(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE probe (k TEXT PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0)")

    async def main() -> None:
        store = await started(url)
        assert await store.write(insert, "before") == "before"
        await asyncio.to_thread(own_postgres.stop)
        down = await asyncio.gather(store.write(insert, "down1"), store.write(insert, "down2"),
                                    store.read(lambda tx: tx.conn.execute("SELECT 1").fetchone()),
                                    return_exceptions=True)
        assert all(isinstance(e, StorageUnavailable) for e in down), down
        await asyncio.to_thread(own_postgres.start)
        back = time.monotonic()
        for _ in range(200):  # back within the pool's reconnection delay
            try:
                assert await store.write(insert, "after") == "after"
                break
            except StorageError:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("the store did not recover once the database was back")
        assert time.monotonic() - back < 10, "the store took long to see the database back"
        assert await store.read(lambda tx: tx.conn.execute("SELECT count(*) FROM probe").fetchone()) == (2,)
        await store.close()

    run(main(), timeout=120)
    assert probe_rows(url) == {"before", "after"}


def test_a_lock_held_past_the_wait_is_storage_busy(db: str) -> None:
    def locked_out(tx: PostgresTx) -> None:
        tx.conn.execute("SET LOCAL lock_timeout = 100")
        tx.conn.execute("SELECT * FROM probe WHERE k = 'held' FOR UPDATE")

    async def main() -> None:
        store = await started(db)
        await store.write(insert, "held")
        with psycopg.connect(db) as other:
            other.execute("SELECT * FROM probe WHERE k = 'held' FOR UPDATE")
            with pytest.raises(StorageBusy):
                await store.write(locked_out)
        await store.close()

    run(main())


# --- several servers: wake-ups (LISTEN/NOTIFY) and one sweeper (lead) ---------------------------------


def events(tx: PostgresTx, n: int) -> int:
    return len([tx.append_event(Event(project_id="p", work_order_id=f"wo{i}")) for i in range(n)])


async def heard_within(heard: list[int], n: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while len(heard) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return len(heard) >= n


def test_another_stores_commit_of_events_wakes_the_listeners_once_per_transaction(db: str) -> None:
    async def main() -> None:
        a, b = await started(db), await started(db)
        heard_a: list[int] = []
        heard_b: list[int] = []
        a.add_commit_listener(lambda: heard_a.append(1))
        b.add_commit_listener(lambda: heard_b.append(1))
        await asyncio.sleep(0.5)  # both listening
        assert await a.write(events, 5) == 5
        assert await heard_within(heard_b, 1)
        await asyncio.sleep(0.5)
        assert heard_b == [1], "one NOTIFY per transaction, not per event"
        assert heard_a == [1], "a store does not hear its own NOTIFY (its commit told its listeners)"
        # A commit without events, or one rolled back, wakes no other server.
        await a.write(insert, "no-events")

        def rolled_back(tx: PostgresTx) -> None:
            events(tx, 1)
            raise RuntimeError("undone")
        with pytest.raises(RuntimeError):
            await a.write(rolled_back)
        await asyncio.sleep(0.5)
        assert heard_b == [1]
        assert await b.write(events, 1) == 1
        assert await heard_within(heard_a, 3)
        await a.close()
        await b.close()

    run(main())


def test_one_store_leads_at_a_time_and_another_takes_over_when_it_goes(db: str) -> None:
    async def main() -> None:
        stores = [await started(db) for _ in range(3)]
        first = [await s.lead() for s in stores]
        assert first.count(True) == 1, first
        assert [await s.lead() for s in stores] == first, "the leader keeps the lead"
        leader = stores[first.index(True)]
        await leader.close()
        rest = [s for s in stores if s is not leader]
        assert await leader.lead() is False
        for _ in range(100):  # the database releases the lock once it has ended the session
            after = [await s.lead() for s in rest]
            if any(after):
                break
            await asyncio.sleep(0.05)
        assert after.count(True) == 1, after
        for s in rest:
            await s.close()

    run(main())


def test_after_a_database_restart_wake_ups_and_the_lead_come_back(own_postgres: Any) -> None:
    url = own_postgres.url()
    prepare(url)

    async def main() -> None:
        a, b = await started(url), await started(url)
        heard: list[int] = []
        b.add_commit_listener(lambda: heard.append(1))
        assert await a.lead() and not await b.lead()
        await asyncio.to_thread(own_postgres.stop)
        await asyncio.sleep(LEAD_CHECK_S)  # the leader looks at its connection at most this often
        assert not await a.lead() and not await b.lead()
        await asyncio.to_thread(own_postgres.start)
        for _ in range(100):
            try:
                await a.write(events, 1)
                break
            except StorageError:
                await asyncio.sleep(0.1)
        assert await heard_within(heard, 1, timeout=10)  # b listens again
        got = [await a.lead(), await b.lead()]
        assert got.count(True) == 1, got
        assert [await a.lead(), await b.lead()] == got
        await a.close()
        await b.close()

    run(main(), timeout=120)
