"""The SQLite engine: WAL, synchronous=FULL, group commit on the event loop. (The rows it
reads and writes are mapped in rows.py, its schema in migrations.py; the contract it keeps, in
store/base.py.)

Every write is a function run inside a transaction. It runs on the event loop
itself, in a savepoint of the open transaction (so a failing write rolls back
alone): there is no hand-off to another thread per write, and SQLite's inserts
take microseconds. Writes that arrive while the transaction is open join it; one
durable COMMIT on a committer thread ends it (the fsync must not stall the loop),
and each caller is answered only after the COMMIT that holds its write. Writes
that arrive during the COMMIT wait for it, then form the next transaction.

Point reads (one entity by id) run on the loop too, on a connection of their
own that sees committed data only; scans (lists, counts, event pages) run on a
small pool of reader threads, so a long one does not hold the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import fcntl
import logging
import os
import queue
import sqlite3
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Concatenate, ParamSpec, TypeVar

from ..base import (
    CannotOpen, DatabaseFileGone, StorageBusy, StorageError, StorageFull, StorageUnavailable, StoreClosing,
)
from .migrations import migrate
from .rows import SqliteTx

T = TypeVar("T")
P = ParamSpec("P")
log = logging.getLogger("runstatus.store")

MAX_BATCH = 256
BUSY_TIMEOUT_MS = 30_000


def connect(path: str, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection; a read-only one never creates the file (a reader that comes late to a
    deleted file must not leave an empty database in its place)."""
    if readonly:
        # A URI, quoted, so that "?" or "#" in the path stay part of it.
        uri = f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute("PRAGMA query_only = 1")
        return conn
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    # Only a new file takes it (before its first page is written, which WAL mode does): pages that
    # retention frees can then be given back to the file system (free_pages). An older file keeps
    # its setting until `runstatus vacuum` (README: "Retention").
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


# A -shm truncated under a running server is a SIGBUS too, and the server dies of it (a line
# "Fatal Python error: Bus error" in the log): there is no refusing it first. SQLite maps the
# -shm once, with no size check after, and touches it in every transaction (the WAL index: its
# header at each BEGIN, its hash tables at each page read, appended to at each COMMIT); every
# connection of the process shares that mapping. A check before each transaction only narrows
# the window: a writer and a reader that checked the size before every transaction still died
# in 20 of 20 truncations under load, inside a transaction already under way.
# Nothing is lost: the -shm only indexes the -wal, and the first connection after a restart
# rebuilds it (tests/test_database_file.py).
def check_writable(path: str) -> None:
    """The database and its -wal and -shm files must be writable before SQLite maps them:
    writing to a mapped -shm that cannot be written kills the process with SIGBUS, past
    anything Python can catch."""
    for name in (path, f"{path}-wal", f"{path}-shm"):
        try:
            fd = os.open(name, os.O_RDWR)
        except FileNotFoundError:
            continue  # SQLite creates it, in a folder that must then be writable
        except OSError as e:
            raise CannotOpen(f"cannot write {name}: {e.strerror}; runstatus writes the database "
                             "and its -wal and -shm files") from e
        os.close(fd)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.access(folder, os.W_OK):
        raise CannotOpen(f"cannot write the folder {folder}, where the database's -wal and -shm files live")


def file_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at path now, None if there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def open_database(path: str) -> sqlite3.Connection:
    """A writable connection to a database whose schema is up to date. (Domain data, such
    as the default project, is the domain's to make: see Server.start.)"""
    check_writable(path)
    conn = connect(path)
    try:
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


class _FileFault(Exception):
    """The database file or its -wal is not the one the store opened: before the COMMIT, which
    was then not tried, or after it (`committed`), when a crash may lose what it wrote."""

    def __init__(self, fault: str, *, committed: bool = False) -> None:
        super().__init__(fault)
        self.committed = committed


def _storage_error(e: sqlite3.Error, doing: str = "written") -> StorageError:
    """SQLite's error as the project's own (store/base.py): no sqlite3 error leaves the store."""
    code = (getattr(e, "sqlite_errorcode", 0) or 0) & 0xFF
    message = f"the database cannot be {doing} right now: {e}"
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StorageBusy(message)
    if code == sqlite3.SQLITE_FULL:
        return StorageFull(message)
    return StorageUnavailable(message)


def _as_storage_error(e: BaseException) -> BaseException:
    """What the writes of a failed BEGIN or COMMIT are told."""
    if isinstance(e, _FileFault):
        saved = ", and this write may or may not have been saved" if e.committed else ""
        return DatabaseFileGone(f"{e}; writes are refused{saved}")
    return _storage_error(e) if isinstance(e, sqlite3.Error) else e


class _Waiters:
    """Callers waiting for one thing, each on a future of its own: a caller that is
    cancelled (its RPC ended) must not cancel the thing for the others."""

    def __init__(self) -> None:
        self._futures: list[asyncio.Future[None]] = []
        self._woken = False
        self._error: BaseException | None = None

    def wait(self) -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        if self._woken:
            future.set_result(None) if self._error is None else future.set_exception(self._error)
        else:
            self._futures.append(future)
        return future

    def wake(self, error: BaseException | None = None) -> None:
        self._woken, self._error = True, error
        for future in self._futures:
            if not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)


class _Batch:
    """One open transaction: the writes in it, and the COMMIT they all wait for."""

    def __init__(self) -> None:
        self.size = 0
        self.hooks: list[Callable[[], None]] = []
        self.committed = _Waiters()


class SqliteStore:
    # Writes run on the event loop, which stands still meanwhile: a write of 200 retried runs
    # held it ~37 ms, of 50 ~9 ms; a kept answer deleted costs far less than a run changed.
    batch_size = 50
    delete_batch_size = 500

    def __init__(self, path: str, *, readers: int = 4, shared: bool = False) -> None:
        self.path = path
        # Processes sharing the file take turns through a blocking file lock: SQLite's own
        # busy handler polls with sleeps, which lets one process starve the others for seconds.
        self._turns = open(f"{path}.writelock", "a+b") if shared else None
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="runstatus-read")
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="runstatus-commit")
        self._reader_count = readers
        # The reader threads' connections, one each, all opened at start: one opened later, after
        # the file was renamed or deleted, could not read the file the server holds.
        self._scanners: queue.SimpleQueue[SqliteTx] = queue.SimpleQueue()
        self._listeners: list[Callable[[], None]] = []
        self._size_listeners: list[Callable[[int], None]] = []
        self._fault_listeners: list[Callable[[str], None]] = []
        self._identity: tuple[int, int] | None = None  # the file opened, as (device, inode)
        self._wal_identity: tuple[int, int] | None = None  # its -wal, as the writer has it open
        self._fault = ""  # why the database cannot be written now ("" when it can)
        self._conn: sqlite3.Connection | None = None
        self._tx: SqliteTx | None = None
        self._reader: SqliteTx | None = None
        self._batch: _Batch | None = None  # the transaction writes may join now
        self._busy: _Waiters | None = None  # the connection is committing, or beginning off the loop
        self._closing = False

    async def start(self) -> None:
        self._conn = open_database(self.path)
        self._identity = file_identity(self.path)
        # In WAL mode the -wal exists while a connection is open (the last one to close deletes
        # it), and this one has read the database: the file at the path now is the one it writes.
        self._wal_identity = file_identity(f"{self.path}-wal")
        if self._turns is None:
            # BEGIN is tried on the loop, where it must never wait for another writer (see _begin).
            # Nothing else this connection runs waits for a lock: a write transaction holds the
            # WAL write lock from its BEGIN IMMEDIATE, and the COMMIT's checkpoint is PASSIVE.
            self._conn.execute("PRAGMA busy_timeout = 0")
        self._tx = SqliteTx(self._conn)
        self._reader = self._open_reader()
        for _ in range(self._reader_count):
            self._scanners.put(self._open_reader())

    def _open_reader(self) -> SqliteTx:
        tx = SqliteTx(connect(self.path, readonly=True))
        try:
            # A first read maps the WAL index now: a connection that first reads after its file
            # was renamed fails with a disk I/O error, and reads must go on through a rename.
            self._run_read(tx, lambda tx: tx.last_event_sequence())
        except BaseException:
            tx.conn.close()
            raise
        return tx

    async def close(self) -> None:
        """Finishes every write already begun, then closes."""
        self._closing = True
        while self._busy is not None or self._batch is not None:
            waiters = self._busy or self._batch.committed  # type: ignore[union-attr]
            with contextlib.suppress(Exception):
                await waiters.wait()
        self._committer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        # The readers first: the last connection to close, the writer, checkpoints the WAL into
        # the database and removes it, so a clean stop leaves one self-contained file (even a
        # file renamed meanwhile: otherwise its WAL, named after the old path, holds its writes).
        while not self._scanners.empty():  # all of them: the reader threads have ended
            self._scanners.get_nowait().conn.close()
        if self._reader is not None:
            self._reader.conn.close()
            self._reader = None
        if self._conn is not None:
            if self._file_fault():
                self._keep_moved_file_whole("TRUNCATE")
            self._conn.close()
            self._conn = None

    def add_commit_listener(self, listener: Callable[[], None]) -> None:
        """Called on the event loop after every commit (e.g. to wake watchers)."""
        self._listeners.append(listener)

    def add_commit_size_listener(self, listener: Callable[[int], None]) -> None:
        self._size_listeners.append(listener)

    async def lead(self) -> bool:
        """Always: only the primary process sweeps an SQLite file (processes.py)."""
        return True

    def add_fault_listener(self, listener: Callable[[str], None]) -> None:
        self._fault_listeners.append(listener)

    def _file_fault(self) -> str:
        """Why the database file or its -wal at the path is not the one this store opened (""
        if both are). A write committed into a deleted or replaced file would be acknowledged,
        then lost: a -wal deleted under the writer still takes its COMMITs, through the open
        file, but a restart finds none (or another) and loses what was not checkpointed."""
        for name, path, opened in (("database file", self.path, self._identity),
                                   ("database's -wal file", f"{self.path}-wal", self._wal_identity)):
            now = file_identity(path)
            if now != opened:
                how = "deleted or renamed" if now is None else "replaced by another file"
                return f"the {name} {path} was {how} while the server ran"
        return ""

    def _keep_moved_file_whole(self, mode: str = "PASSIVE") -> None:
        """Copies the WAL into the database file the server opened. Its WAL is named after the
        path, and SQLite neither checkpoints a moved file on close nor keeps a WAL that a new
        empty file at the path finds: without this, a renamed file would lose its last writes.
        (A deleted -wal is read through the writer's open file: its writes reach the database.)"""
        assert self._conn is not None
        try:
            self._conn.execute(f"PRAGMA wal_checkpoint({mode})")
        except sqlite3.Error as e:
            log.error("cannot copy the WAL into the moved database file: %s", e)

    def _set_fault(self, fault: str) -> None:
        if fault == self._fault:
            return
        self._fault = fault
        if fault:
            log.error("writes refused: %s; restore the file, or restart the server", fault)
        else:
            log.warning("the database file is back; writes are accepted again")
        for listener in self._fault_listeners:
            try:
                listener(fault)
            except Exception:  # noqa: BLE001
                log.exception("a fault listener failed")

    async def write(self, fn: Callable[Concatenate[SqliteTx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        while True:
            if self._conn is None or self._closing:
                raise StoreClosing("the server is shutting down")
            if self._busy is not None:
                await self._busy.wait()  # raises if it was a BEGIN, and it failed
            elif self._batch is None:
                self._begin()
            elif self._batch.size >= MAX_BATCH:
                with contextlib.suppress(Exception):  # its failure is its writes' business
                    await self._batch.committed.wait()
            else:
                break
        batch, conn, tx = self._batch, self._conn, self._tx
        assert batch is not None and conn is not None and tx is not None
        batch.size += 1
        try:
            result = self._run_job(conn, tx, batch, lambda: fn(tx, *args, **kwargs))
        except BaseException:
            await batch.committed.wait()  # a failed COMMIT's error comes first
            raise
        await batch.committed.wait()
        return result

    @staticmethod
    def _run_job(conn: sqlite3.Connection, tx: SqliteTx, batch: _Batch, job: Callable[[], T]) -> T:
        if not conn.in_transaction:
            # SQLite rolled the whole transaction back under an earlier write (a full
            # disk, say): this batch's COMMIT will fail, and nothing may autocommit.
            raise StorageUnavailable("the database cannot be written right now: the transaction was rolled back")
        conn.execute("SAVEPOINT job")
        tx.committed_hooks = []
        try:
            result = job()
        except BaseException as e:  # noqa: BLE001 - each caller gets its own error
            try:
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
            except sqlite3.Error as undone:
                raise _storage_error(undone) from e
            if isinstance(e, sqlite3.Error):
                raise _storage_error(e) from e
            raise
        conn.execute("RELEASE job")
        batch.hooks += tx.committed_hooks
        return result

    def _begin(self) -> None:
        """Begins the next transaction: on the loop when the database is free, else off it."""
        assert self._conn is not None
        if self._turns is None:
            try:
                self._conn.execute("BEGIN IMMEDIATE")  # busy_timeout 0: fails at once if held
            except sqlite3.OperationalError as e:
                if (e.sqlite_errorcode or 0) & 0xFF != sqlite3.SQLITE_BUSY:
                    raise _storage_error(e) from e
            else:
                self._open()
                return
        # Another process may hold the file (or, without --processes, another writer such as
        # the offline token command holds SQLite's lock): wait for it off the loop, which
        # must not stand still for up to the busy timeout.
        self._busy = busy = _Waiters()
        opening = asyncio.get_running_loop().run_in_executor(self._committer, self._lock_and_begin)
        # The BEGIN's outcome is handled here, not by the caller that started it: a caller
        # cancelled meanwhile (its deadline) used to leave the connection in a transaction no
        # batch owned, with the file lock held, and every later BEGIN failing. Every write
        # waiting for this BEGIN gets its error at once, rather than each trying again in turn.
        opening.add_done_callback(lambda done: self._begun(busy, done))

    def _begun(self, busy: _Waiters, opening: asyncio.Future[None]) -> None:
        self._busy = None
        error = opening.exception()
        if error is None:
            busy.wake()  # before the COMMIT is scheduled (by _open): the woken writes join this transaction
            self._open()
        else:
            log.error("cannot begin a transaction: %s", error)
            busy.wake(_as_storage_error(error))

    def _open(self) -> None:
        """The transaction just begun takes writes until its COMMIT starts on the loop's next
        turn, once the writes ready to run now have joined it."""
        self._batch = _Batch()
        asyncio.get_running_loop().call_soon(self._start_commit)

    def _lock_and_begin(self) -> None:
        assert self._conn is not None
        if self._turns is None:
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            finally:
                self._conn.execute("PRAGMA busy_timeout = 0")
            return
        fcntl.flock(self._turns, fcntl.LOCK_EX)
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            fcntl.flock(self._turns, fcntl.LOCK_UN)
            raise

    def _start_commit(self) -> None:
        batch, self._batch = self._batch, None
        assert batch is not None
        loop = asyncio.get_running_loop()
        self._busy = _Waiters()
        done = loop.run_in_executor(self._committer, self._commit_now)
        done.add_done_callback(lambda f: self._committed(batch, f))

    def _commit_now(self) -> None:
        assert self._conn is not None
        try:
            fault = self._file_fault()
            if fault:
                self._conn.execute("ROLLBACK")
                self._keep_moved_file_whole()
                raise _FileFault(fault)
            self._conn.execute("COMMIT")
            # A file gone during the COMMIT: it may have gone into a -wal a restart will not see.
            fault = self._file_fault()
            if fault:
                self._keep_moved_file_whole()
                raise _FileFault(fault, committed=True)
        except sqlite3.Error:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        finally:
            if self._turns is not None:
                fcntl.flock(self._turns, fcntl.LOCK_UN)

    def _committed(self, batch: _Batch, done: asyncio.Future[None]) -> None:
        busy, self._busy = self._busy, None
        assert busy is not None
        for size_listener in self._size_listeners:
            try:
                size_listener(batch.size)
            except Exception:  # noqa: BLE001
                log.exception("a commit size listener failed")
        error = done.exception()
        self._set_fault(str(error) if isinstance(error, _FileFault) else "" if error is None else self._fault)
        if error is not None:
            log.error("commit failed, %d writes refused: %s", batch.size, error)
            batch.committed.wake(_as_storage_error(error))
        else:
            # A hook or listener that raises must neither keep committed writes waiting
            # forever (hooks ran before the wake) nor silence the listeners after it.
            for hook in batch.hooks:
                try:
                    hook()
                except Exception:  # noqa: BLE001
                    log.exception("an after-commit hook failed")
            batch.committed.wake()
        # Woken first, the writes a full batch turned away (they wait on `committed`) join the
        # next transaction before those that arrived during this COMMIT: the other way round,
        # a steady stream of new writes could turn them away again and again.
        busy.wake()
        if error is None:
            for listener in self._listeners:
                try:
                    listener()
                except Exception:  # noqa: BLE001
                    log.exception("a commit listener failed")

    async def read(self, fn: Callable[Concatenate[SqliteTx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A point read, on the loop: for lookups of a few rows by key."""
        assert self._reader is not None
        return self._run_read(self._reader, fn, *args, **kwargs)

    async def scan(self, fn: Callable[Concatenate[SqliteTx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A read that may walk many rows (lists, counts, event pages), on a reader thread."""
        loop = asyncio.get_running_loop()
        # The caller's context (who is asking: see auth.py) goes with the read.
        context = contextvars.copy_context()
        return await loop.run_in_executor(self._readers, lambda: context.run(lambda: self._scan(fn, *args, **kwargs)))

    def scan_now(self, fn: Callable[Concatenate[SqliteTx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        return self._readers.submit(lambda: self._scan(fn, *args, **kwargs)).result(timeout=BUSY_TIMEOUT_MS / 1000)

    def _scan(self, fn: Callable[Concatenate[SqliteTx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        # There are as many connections as reader threads: one is always free here.
        tx = self._scanners.get()
        try:
            return self._run_read(tx, fn, *args, **kwargs)
        finally:
            self._scanners.put(tx)

    @staticmethod
    def _run_read(tx: SqliteTx, fn: Callable[Concatenate[SqliteTx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            tx.conn.execute("BEGIN")
            try:
                return fn(tx, *args, **kwargs)
            finally:
                tx.conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise _storage_error(e, "read") from e
