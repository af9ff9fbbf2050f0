"""The store's write path, driven in-process with asyncio against a real SQLite file.

Writes run on the event loop in a savepoint of the open transaction; the COMMIT runs on a
committer thread; in shared mode a file lock is taken with BEGIN IMMEDIATE. These tests hold
the store to its promise: a caller is answered OK only after the COMMIT holding its write,
is answered an error only when its write was not committed, is never left waiting, and a
caller that goes away (its RPC cancelled) can not wedge the store for the others.

The database is never mocked. Where a test needs a slow COMMIT it subclasses the store and
sleeps before the real one; where it needs "another process", it opens the lock file or the
database a second time (flock and SQLite locks conflict between open files, not processes).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import pathlib
import random
import sqlite3
import subprocess
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from runstatus_server.errors import FailedPrecondition, Refused
from runstatus_server.idempotency import answer_or_raise
from runstatus_server.store.base import StorageBusy, StorageError, StorageFull, StoreClosing
from runstatus_server.store.sqlite.engine import MAX_BATCH, SqliteStore
from runstatus_server.store.sqlite.rows import SqliteTx

pytestmark = pytest.mark.sqlite_only("the SQLite store, in-process (test_store_postgres.py holds PostgreSQL to the same contract)")

T = TypeVar("T")



def run(coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
    """Runs a test's coroutine; a hang fails the test instead of the whole run."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def make_db(path: pathlib.Path) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS probe (k TEXT PRIMARY KEY, v BLOB)")
    return str(path)


def rows(path: str) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {k for (k,) in conn.execute("SELECT k FROM probe")}


def insert(tx: SqliteTx, key: str, size: int = 0) -> str:
    tx.conn.execute("INSERT INTO probe (k, v) VALUES (?, ?)", (key, b"\0" * size))
    return key


def lock_is_free(path: str) -> bool:
    with open(f"{path}.writelock", "a+b") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


class SlowCommits(SqliteStore):
    """Every COMMIT takes a while (a slow disk); records how many writes each one held."""

    delay = 0.05

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sizes: list[int] = []
        self._seen = 0

    def _commit_now(self) -> None:
        assert self._conn is not None
        total = self._conn.execute("SELECT count(*) FROM probe").fetchone()[0]
        self.sizes.append(total - self._seen)
        self._seen = total
        time.sleep(self.delay)
        super()._commit_now()


@pytest.fixture
def db(tmp_path: pathlib.Path) -> str:
    return make_db(tmp_path / "store.db")


# --- shared mode: a caller that goes away while waiting for the file lock ---------------


def test_a_write_cancelled_while_waiting_for_the_file_lock_does_not_wedge_the_store(db: str) -> None:
    """A deadline that expires while the committer waits for another process's lock must not
    leave the connection in a transaction no batch owns (every later BEGIN failing, the
    file lock held or dropped under an open transaction)."""

    async def main() -> None:
        store = SqliteStore(db, shared=True)
        await store.start()
        other = open(f"{db}.writelock", "a+b")  # another process, as far as flock is concerned
        fcntl.flock(other, fcntl.LOCK_EX)
        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(store.write(insert, "cancelled"), 0.2)
        finally:
            fcntl.flock(other, fcntl.LOCK_UN)
            other.close()
        assert await asyncio.wait_for(store.write(insert, "after"), 10) == "after"
        assert await asyncio.wait_for(store.write(insert, "and after"), 10) == "and after"
        await asyncio.wait_for(store.close(), 10)

    run(main())
    assert rows(db) == {"after", "and after"}
    assert lock_is_free(db)


def test_a_failed_begin_answers_every_waiter_at_once_and_releases_the_lock(db: str) -> None:
    """BEGIN IMMEDIATE can fail (another writer held SQLite's lock past the busy timeout): every
    write waiting for that BEGIN is told UNAVAILABLE together, instead of each retrying it in
    turn and waiting a whole busy timeout more, and the file lock is released."""

    async def main() -> None:
        store = SqliteStore(db, shared=True)
        await store.start()
        assert store._conn is not None
        store._conn.execute("PRAGMA busy_timeout = 300")
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # a writer that does not take the file lock (the offline CLI)
        started = time.monotonic()
        outcomes = await asyncio.gather(*(store.write(insert, f"w{i}") for i in range(10)), return_exceptions=True)
        elapsed = time.monotonic() - started
        other.execute("ROLLBACK")
        other.close()
        assert all(isinstance(o, StorageBusy) for o in outcomes), outcomes
        assert elapsed < 2.0, f"the waiters retried the BEGIN one by one: {elapsed:.1f}s"
        assert lock_is_free(db)
        assert await asyncio.wait_for(store.write(insert, "after"), 10) == "after"
        await store.close()

    run(main())
    assert rows(db) == {"after"}


# --- the committed hooks and listeners ---------------------------------------------------


def test_a_failing_after_commit_hook_does_not_leave_its_batch_waiting(db: str) -> None:
    """An after-commit hook (a metric) that raises ran inside the COMMIT's callback before the
    waiters were woken: every write in that batch waited forever, although committed."""

    def boom() -> None:
        raise RuntimeError("a metric hook failed")

    def with_bad_hook(tx: SqliteTx, key: str) -> str:
        tx.after_commit(boom)
        return insert(tx, key)

    async def main() -> list[str]:
        store = SqliteStore(db)
        await store.start()
        answers = await asyncio.wait_for(
            asyncio.gather(store.write(with_bad_hook, "hooked"), store.write(insert, "plain")), 5)
        await store.close()
        return list(answers)

    assert run(main()) == ["hooked", "plain"]
    assert rows(db) == {"hooked", "plain"}


def test_a_failing_commit_listener_does_not_silence_the_next_ones(db: str) -> None:
    heard: list[int] = []

    def bad() -> None:
        raise RuntimeError("a listener failed")

    async def main() -> None:
        store = SqliteStore(db)
        await store.start()
        store.add_commit_listener(bad)
        store.add_commit_listener(lambda: heard.append(1))
        await store.write(insert, "a")
        await store.write(insert, "b")
        await store.close()

    run(main())
    assert len(heard) == 2


# --- ordering and batch size -------------------------------------------------------------


def test_writes_turned_away_by_a_full_batch_go_before_later_ones(db: str) -> None:
    """More than MAX_BATCH writes at once: those the full batch turned away must go into the
    next transaction, ahead of writes that arrived later (during the COMMIT). Woken after
    them, they could be turned away again and again by a steady stream: starved."""
    order: list[str] = []

    def job(tx: SqliteTx, key: str) -> str:
        order.append(key)
        return insert(tx, key)

    async def main() -> SlowCommits:
        store = SlowCommits(db)
        await store.start()
        first = [asyncio.create_task(store.write(job, f"old{i}")) for i in range(MAX_BATCH + 200)]
        while store._busy is None:  # the first COMMIT is under way
            await asyncio.sleep(0)
        later = [asyncio.create_task(store.write(job, f"new{i}")) for i in range(300)]
        await asyncio.gather(*first, *later)
        await store.close()
        return store

    store = run(main())
    assert len(order) == MAX_BATCH + 500
    first_new = min(i for i, key in enumerate(order) if key.startswith("new"))
    last_old = max(i for i, key in enumerate(order) if key.startswith("old"))
    assert last_old < first_new, f"a later write ran at {first_new}, before old ones up to {last_old}"
    assert max(store.sizes) <= MAX_BATCH
    assert sum(store.sizes) == MAX_BATCH + 500


# --- the event loop is never held ----------------------------------------------------------


def test_another_writer_holding_the_database_does_not_stall_the_event_loop(db: str) -> None:
    """Without --processes, BEGIN IMMEDIATE ran on the loop: another writer holding SQLite's lock
    (the offline token command, a second server by mistake) froze every RPC, reads and health
    checks included, for up to the 30 s busy timeout."""
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)

    async def main() -> list[float]:
        store = SqliteStore(db)
        await store.start()
        gaps: list[float] = []

        async def tick() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0.05)
        other.execute("BEGIN IMMEDIATE")
        threading.Timer(0.6, lambda: other.execute("COMMIT")).start()
        assert await asyncio.wait_for(store.write(insert, "waited"), 10) == "waited"
        assert await store.write(insert, "next") == "next"  # and the quick path works again
        ticker.cancel()
        await store.close()
        return gaps

    gaps = run(main())
    other.close()
    assert max(gaps) < 0.3, f"the event loop stood still for {max(gaps):.2f}s"
    assert rows(db) == {"waited", "next"}


def test_a_point_read_on_the_loop_sees_a_write_only_once_it_is_committed(db: str) -> None:
    """Point reads run on the loop, next to the open transaction: on a connection of their
    own, they must not see a write before its COMMIT, and must see it once it is answered."""

    def get(tx: SqliteTx, key: str) -> str | None:
        row = tx.conn.execute("SELECT k FROM probe WHERE k = ?", (key,)).fetchone()
        return row[0] if row else None

    async def main() -> None:
        store = SlowCommits(db)
        await store.start()
        writing = asyncio.create_task(store.write(insert, "w"))
        while store._busy is None:  # the write ran; its COMMIT is under way
            await asyncio.sleep(0)
        assert await store.read(get, "w") is None
        assert await store.scan(get, "w") is None
        assert await writing == "w"
        assert await store.read(get, "w") == "w"
        assert await store.scan(get, "w") == "w"
        await store.close()

    run(main())


# --- answered OK if and only if committed, under cancellation, failures and close --------


@pytest.mark.parametrize("shared", [False, True], ids=["one-process", "shared"])
def test_answered_ok_if_and_only_if_committed_under_load_and_close(db: str, shared: bool) -> None:
    """Many writers with random deadlines, some jobs failing (one refusing with its changes kept), a
    rival holding the file lock now and then, and close() in the middle of it all. Every
    write answered OK is in the file, every one answered an error (but the one that keeps
    its changes) is not, and close() returns with the file lock free."""
    rng = random.Random(11)
    answers: dict[str, str] = {}

    def job(tx: SqliteTx, key: str, kind: str) -> str | Refused:
        insert(tx, key)
        if kind == "fail":
            raise FailedPrecondition("refused", reason="TEST")
        if kind == "keep":
            return Refused(FailedPrecondition("refused, but kept", reason="TEST"))
        if kind == "bug":
            raise KeyError("a bug in a job")
        return key

    async def writer(store: SqliteStore) -> None:
        i = 0
        while True:
            i += 1
            key = f"{id(asyncio.current_task())}-{i}"
            kind = rng.choice(["ok"] * 6 + ["fail", "keep", "bug"])
            try:
                answer_or_raise(await asyncio.wait_for(store.write(job, key, kind), rng.choice([0.001, 0.01, 0.1, 5])))
                answers[key] = "ok"
            except TimeoutError:
                answers[key] = "cancelled"
            except FailedPrecondition:
                answers[key] = "kept" if kind == "keep" else "error"
            except Exception as e:  # noqa: BLE001 - any other answer is an error
                answers[key] = "error"
                if isinstance(e, StoreClosing):
                    return
            await asyncio.sleep(rng.random() * 0.002)

    stop_rival = threading.Event()

    def rival() -> None:
        with open(f"{db}.writelock", "a+b") as f:
            while not stop_rival.is_set():
                fcntl.flock(f, fcntl.LOCK_EX)
                time.sleep(0.02)
                fcntl.flock(f, fcntl.LOCK_UN)
                time.sleep(0.01)

    async def main() -> None:
        store = SqliteStore(db, shared=shared)
        await store.start()
        rival_thread = threading.Thread(target=rival, daemon=True)
        if shared:
            rival_thread.start()
        try:
            writers = [asyncio.create_task(writer(store)) for _ in range(40)]
            await asyncio.sleep(0.4)
        finally:
            stop_rival.set()
        # The chaos leaves the store able to write.
        assert await asyncio.wait_for(store.write(insert, "calm"), 10) == "calm"
        answers["calm"] = "ok"
        await asyncio.sleep(0.05)
        await asyncio.wait_for(store.close(), 10)  # with the writers still writing
        await asyncio.wait_for(asyncio.gather(*writers), 10)

    run(main())
    found = rows(db)
    ok = {k for k, a in answers.items() if a in ("ok", "kept")}
    refused = {k for k, a in answers.items() if a == "error"}
    assert ok, "nothing was written before close()"
    assert ok <= found, f"answered OK but not committed: {sorted(ok - found)[:5]}"
    assert not refused & found, f"answered an error but committed: {sorted(refused & found)[:5]}"
    assert lock_is_free(db)


# --- a full disk -------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    """A 2 MiB tmpfs of our own (the tests run as root, as CI does)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_refuses_the_whole_batch_and_nothing_autocommits(small_disk: pathlib.Path) -> None:
    """A write too big for the disk makes SQLite fail (and maybe roll the whole transaction back)
    under its batch: each write of that batch is answered OK only if it is in the file and
    UNAVAILABLE only if it is not, the writes after it in the batch do not run in autocommit,
    and the store works again once there is room."""
    db = make_db(small_disk / "full.db")
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as f:  # unbuffered: nothing left to flush on a full disk
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    os.truncate(filler, max(0, filler.stat().st_size - 512 * 1024))  # leave half a MiB

    async def main() -> tuple[dict[str, Any], str]:
        store = SqliteStore(db)
        await store.start()
        outcomes: dict[str, Any] = {}
        for attempt in range(40):  # until one batch hits the full disk
            keys = [f"{attempt}-small-a", f"{attempt}-big", f"{attempt}-small-b"]
            answers = await asyncio.gather(
                store.write(insert, keys[0]), store.write(insert, keys[1], 128 * 1024), store.write(insert, keys[2]),
                return_exceptions=True)
            outcomes.update(zip(keys, answers))
            if any(isinstance(a, BaseException) for a in answers):
                break
        filler.unlink()
        after = await store.write(insert, "after")
        await store.close()
        return outcomes, after

    logging.getLogger("runstatus.store").setLevel(logging.CRITICAL)
    outcomes, after = run(main())
    refused = {k for k, a in outcomes.items() if isinstance(a, BaseException)}
    assert refused, "the disk never filled up"
    assert all(isinstance(outcomes[k], StorageError) for k in refused), outcomes
    assert any(isinstance(outcomes[k], StorageFull) for k in refused), outcomes
    found = rows(db)
    assert set(outcomes) - refused <= found, "answered OK but not in the file"
    assert not refused & found, f"answered UNAVAILABLE but in the file: {refused & found}"
    assert after == "after" and "after" in found
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
