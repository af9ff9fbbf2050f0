"""The SQLite backend: WAL, synchronous=FULL, group commit on the event loop.

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
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from runstatus.v1.event_pb2 import Event
from runstatus.v1.project_pb2 import Project
from runstatus.v1.status_pb2 import RunStatus
from runstatus.v1.token_pb2 import Token
from runstatus.v1.work_order_pb2 import Run, StepRun, WorkOrder, WorkOrderFilter
from runstatus.v1.workflow_pb2 import Workflow

from ..errors import ApiError, Unavailable
from ..metrics import COMMIT_BATCH
from .base import IN_FLIGHT, CannotOpen, StoredRun, WorkOrderKey
from .schema import MIGRATIONS, run_script

T = TypeVar("T")
log = logging.getLogger("runstatus.store")

MAX_BATCH = 256
BUSY_TIMEOUT_MS = 30_000
HOUR_US = 3_600_000_000  # the bucket of work_order_counts


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
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


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


def migrate(conn: sqlite3.Connection) -> int:
    """Brings a database file of any earlier schema version up to date. Returns the version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise CannotOpen(f"the database was written by a newer runstatus (schema version {version}; this "
                         f"server knows {len(MIGRATIONS)}): upgrade runstatus, or give it another --db")
    for number in range(version, len(MIGRATIONS)):
        migration = MIGRATIONS[number]
        try:
            conn.execute("BEGIN IMMEDIATE")
            if isinstance(migration, str):
                # executescript would COMMIT first: each statement goes on its own instead.
                run_script(conn, migration)
            else:
                migration(conn)
            conn.execute(f"PRAGMA user_version = {number + 1}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        log.info("migrated database schema to version %d", number + 1)
    return len(MIGRATIONS)


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
    """The COMMIT was not tried: the database file is not the one the store opened."""


def _storage_error(e: sqlite3.Error) -> Unavailable:
    return Unavailable(f"the database cannot be written right now: {e}")


def _as_storage_error(e: BaseException) -> BaseException:
    """What the writes of a failed BEGIN or COMMIT are told: SQLite's errors as UNAVAILABLE."""
    if isinstance(e, _FileFault):
        return Unavailable(f"{e}; writes are refused", reason="DATABASE_FILE_GONE")
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
    def __init__(self, path: str, *, readers: int = 4, shared: bool = False) -> None:
        self.path = path
        # Processes sharing the file take turns through a blocking file lock: SQLite's own
        # busy handler polls with sleeps, which lets one process starve the others for seconds.
        self._turns = open(f"{path}.writelock", "a+b") if shared else None
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="runstatus-read")
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="runstatus-commit")
        self._local = threading.local()
        self._scanners: list[sqlite3.Connection] = []  # the reader threads' connections
        self._listeners: list[Callable[[], None]] = []
        self._fault_listeners: list[Callable[[str], None]] = []
        self._identity: tuple[int, int] | None = None  # the file opened, as (device, inode)
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
        if self._turns is None:
            # BEGIN is tried on the loop, where it must never wait for another writer (see _begin).
            # Nothing else this connection runs waits for a lock: a write transaction holds the
            # WAL write lock from its BEGIN IMMEDIATE, and the COMMIT's checkpoint is PASSIVE.
            self._conn.execute("PRAGMA busy_timeout = 0")
        self._tx = SqliteTx(self._conn)
        self._reader = SqliteTx(connect(self.path, readonly=True))

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
        for conn in self._scanners:
            conn.close()
        self._scanners.clear()
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

    def add_fault_listener(self, listener: Callable[[str], None]) -> None:
        self._fault_listeners.append(listener)

    def _file_fault(self) -> str:
        """Why the file at the path is not the database this store opened ("" if it is). A
        write committed into a deleted or replaced file would be acknowledged, then lost."""
        now = file_identity(self.path)
        if now == self._identity:
            return ""
        if now is None:
            return f"the database file {self.path} was deleted or renamed while the server ran"
        return f"the database file {self.path} was replaced by another file while the server ran"

    def _keep_moved_file_whole(self, mode: str = "PASSIVE") -> None:
        """Copies the WAL into the database file the server opened. Its WAL is named after the
        path, and SQLite neither checkpoints a moved file on close nor keeps a WAL that a new
        empty file at the path finds: without this, a renamed file would lose its last writes."""
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

    async def write(self, fn: Callable[..., T], *args: object) -> T:
        while True:
            if self._conn is None or self._closing:
                raise Unavailable("the server is shutting down", reason="SHUTTING_DOWN")
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
            result = self._run_job(conn, tx, batch, fn, args)
        except BaseException:
            await batch.committed.wait()  # a failed COMMIT's error comes first
            raise
        await batch.committed.wait()
        return result

    @staticmethod
    def _run_job(conn: sqlite3.Connection, tx: SqliteTx, batch: _Batch, fn: Callable[..., T],
                 args: tuple[object, ...]) -> T:
        if not conn.in_transaction:
            # SQLite rolled the whole transaction back under an earlier write (a full
            # disk, say): this batch's COMMIT will fail, and nothing may autocommit.
            raise Unavailable("the database cannot be written right now: the transaction was rolled back")
        conn.execute("SAVEPOINT job")
        tx.committed_hooks = []
        try:
            result = fn(tx, *args)
        except BaseException as e:  # noqa: BLE001 - each caller gets its own error
            try:
                if isinstance(e, ApiError) and e.keep_changes:
                    batch.hooks += tx.committed_hooks
                else:
                    conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
            except sqlite3.Error as undone:
                raise _storage_error(undone) from e
            if isinstance(e, sqlite3.Error):
                raise _storage_error(e) from e
            if not isinstance(e, ApiError):
                log.exception("write failed")
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
        COMMIT_BATCH.observe(batch.size)
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

    async def read(self, fn: Callable[..., T], *args: object) -> T:
        """A point read, on the loop: for lookups of a few rows by key."""
        assert self._reader is not None
        return self._run_read(self._reader, fn, args)

    async def scan(self, fn: Callable[..., T], *args: object) -> T:
        """A read that may walk many rows (lists, counts, event pages), on a reader thread."""
        loop = asyncio.get_running_loop()
        # The caller's context (who is asking: see auth.py) goes with the read.
        return await loop.run_in_executor(self._readers, contextvars.copy_context().run, self._scan, fn, args)

    def scan_now(self, fn: Callable[..., T], *args: object) -> T:
        return self._readers.submit(self._scan, fn, args).result(timeout=BUSY_TIMEOUT_MS / 1000)

    def _scan(self, fn: Callable[..., T], args: tuple[object, ...]) -> T:
        tx = getattr(self._local, "tx", None)
        if tx is None:
            try:
                tx = self._local.tx = SqliteTx(connect(self.path, readonly=True))
            except sqlite3.Error as e:
                raise Unavailable(f"the database cannot be read right now: {e}") from e
            self._scanners.append(tx.conn)
        return self._run_read(tx, fn, args)

    @staticmethod
    def _run_read(tx: SqliteTx, fn: Callable[..., T], args: tuple[object, ...]) -> T:
        tx.conn.execute("BEGIN")
        try:
            return fn(tx, *args)
        except sqlite3.Error as e:
            raise Unavailable(f"the database cannot be read right now: {e}") from e
        finally:
            tx.conn.execute("COMMIT")


def _filter_sql(flt: WorkOrderFilter, *, statuses: bool = True, times: bool = True) -> tuple[str, list[Any]]:
    """SQL conditions for a filter; a caller that handles the statuses or the times itself leaves them out."""
    sql, args = "", []
    if flt.workflow_id:
        sql += " AND workflow_id = ?"
        args.append(flt.workflow_id)
    wanted = sorted(set(flt.statuses)) if statuses else []
    if wanted:
        sql += f" AND status IN ({','.join('?' * len(wanted))})"
        args += wanted
    if times and flt.HasField("create_time_start"):
        sql += " AND create_time >= ?"
        args.append(flt.create_time_start.ToMicroseconds())
    if times and flt.HasField("create_time_end"):
        sql += " AND create_time < ?"
        args.append(flt.create_time_end.ToMicroseconds())
    return sql, args


class SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.committed_hooks: list[Callable[[], None]] = []

    def after_commit(self, fn: Callable[[], None]) -> None:
        self.committed_hooks.append(fn)

    def _one(self, sql: str, *args: Any) -> Any:
        row = self.conn.execute(sql, args).fetchone()
        return row[0] if row else None

    # Projects
    def get_project(self, project_id: str) -> Project | None:
        data = self._one("SELECT data FROM projects WHERE id = ?", project_id)
        return Project.FromString(data) if data is not None else None

    def put_project(self, project: Project, *, new: bool) -> None:
        sql = "INSERT INTO projects (data, id) VALUES (?, ?)" if new else "UPDATE projects SET data = ? WHERE id = ?"
        self.conn.execute(sql, (project.SerializeToString(), project.id))

    def list_projects(self, after_id: str, limit: int) -> list[Project]:
        rows = self.conn.execute("SELECT data FROM projects WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit))
        return [Project.FromString(r[0]) for r in rows]

    # Workflows
    def get_workflow(self, project_id: str, workflow_id: str, version: int = 0) -> Workflow | None:
        if version:
            data = self._one(
                "SELECT data FROM workflows WHERE project_id = ? AND id = ? AND version = ?",
                project_id, workflow_id, version,
            )
        else:
            data = self._one(
                "SELECT data FROM workflows WHERE project_id = ? AND id = ? ORDER BY version DESC LIMIT 1",
                project_id, workflow_id,
            )
        return Workflow.FromString(data) if data is not None else None

    def workflow_version(self, project_id: str, workflow_id: str, version: int = 0) -> int | None:
        found = self._one(
            "SELECT version FROM workflows WHERE project_id = ? AND id = ? AND (? = 0 OR version = ?) "
            "ORDER BY version DESC LIMIT 1", project_id, workflow_id, version, version,
        )
        return int(found) if found is not None else None

    def insert_workflow(self, workflow: Workflow) -> None:
        self.conn.execute(
            "INSERT INTO workflows (project_id, id, version, data) VALUES (?, ?, ?, ?)",
            (workflow.project_id, workflow.id, workflow.version, workflow.SerializeToString()),
        )

    def list_workflows(self, project_id: str, after_id: str, limit: int) -> list[Workflow]:
        rows = self.conn.execute(
            "SELECT data FROM workflows w WHERE project_id = ? AND id > ? AND version = "
            "(SELECT max(version) FROM workflows WHERE project_id = w.project_id AND id = w.id) "
            "ORDER BY id LIMIT ?",
            (project_id, after_id, limit),
        )
        return [Workflow.FromString(r[0]) for r in rows]

    # Work orders
    def get_work_order(self, work_order_id: str) -> WorkOrder | None:
        data = self._one("SELECT data FROM work_orders WHERE id = ?", work_order_id)
        return WorkOrder.FromString(data) if data is not None else None

    def put_work_order(self, work_order: WorkOrder, *, new: bool) -> None:
        row = (
            work_order.project_id, work_order.workflow_id, work_order.status,
            work_order.create_time.ToMicroseconds(), work_order.SerializeToString(), work_order.id,
        )
        if new:
            self.conn.execute(
                "INSERT INTO work_orders (project_id, workflow_id, status, create_time, data, id) "
                "VALUES (?, ?, ?, ?, ?, ?)", row,
            )
        else:
            self.conn.execute(
                "UPDATE work_orders SET project_id = ?, workflow_id = ?, status = ?, create_time = ?, data = ? "
                "WHERE id = ?", row,
            )

    def list_work_orders(
        self, project_id: str, flt: WorkOrderFilter, after: WorkOrderKey | None, limit: int
    ) -> list[tuple[WorkOrder, WorkOrderKey]]:
        where, args = _filter_sql(flt, statuses=False)
        if after is not None:
            where += " AND (create_time, seq) < (?, ?)"
            args += list(after)
        # One index range per status, each already newest first: merging the
        # heads beats sorting every match when a status has millions of rows.
        statuses: list[int | None] = sorted(set(flt.statuses)) or [None]
        rows: list[tuple[int, int, bytes]] = []
        for status in statuses:
            status_sql = " AND status = ?" if status is not None else ""
            status_args = [status] if status is not None else []
            rows += self.conn.execute(
                f"SELECT create_time, seq, data FROM work_orders WHERE project_id = ?{status_sql}{where} "
                "ORDER BY create_time DESC, seq DESC LIMIT ?",
                [project_id, *status_args, *args, limit],
            ).fetchall()
        rows.sort(key=lambda r: (r[0], r[1]), reverse=True)
        return [(WorkOrder.FromString(data), (t, seq)) for t, seq, data in rows[:limit]]

    def count_all_work_orders(self) -> dict[int, int]:
        rows = self.conn.execute("SELECT status, sum(n) FROM work_order_counts GROUP BY status HAVING sum(n) > 0")
        return {status: n for status, n in rows}

    def count_work_orders(self, project_id: str, flt: WorkOrderFilter) -> dict[int, int]:
        """Whole hours come from the work_order_counts buckets; only the partial hours at
        the ends of a time range are counted row by row."""
        start = flt.create_time_start.ToMicroseconds() if flt.HasField("create_time_start") else None
        end = flt.create_time_end.ToMicroseconds() if flt.HasField("create_time_end") else None
        first_hour = -(-start // HOUR_US) if start is not None else None  # first hour wholly inside
        end_hour = end // HOUR_US if end is not None else None  # hours before this one are inside
        if first_hour is not None and end_hour is not None and first_hour >= end_hour:
            return self._count_rows(project_id, flt, start, end)  # less than two hours: rows
        where, args = _filter_sql(flt, times=False)
        if first_hour is not None:
            where += " AND hour >= ?"
            args.append(first_hour)
        if end_hour is not None:
            where += " AND hour < ?"
            args.append(end_hour)
        counts: dict[int, int] = {}
        for status, n in self.conn.execute(
            f"SELECT status, sum(n) FROM work_order_counts WHERE project_id = ?{where} GROUP BY status",
            [project_id, *args],
        ):
            counts[status] = n
        if start is not None and first_hour is not None:
            self._add(counts, self._count_rows(project_id, flt, start, first_hour * HOUR_US))
        if end is not None and end_hour is not None:
            self._add(counts, self._count_rows(project_id, flt, end_hour * HOUR_US, end))
        return {status: n for status, n in counts.items() if n > 0}

    @staticmethod
    def _add(counts: dict[int, int], more: dict[int, int]) -> None:
        for status, n in more.items():
            counts[status] = counts.get(status, 0) + n

    def _count_rows(self, project_id: str, flt: WorkOrderFilter, start: int | None, end: int | None) -> dict[int, int]:
        where, args = _filter_sql(flt, times=False)
        rows = self.conn.execute(
            "SELECT status, count(*) FROM work_orders INDEXED BY work_orders_by_time "
            f"WHERE project_id = ? AND create_time >= ? AND create_time < ?{where} GROUP BY status",
            [project_id, start if start is not None else 0, end if end is not None else 2**62, *args],
        )
        return {status: n for status, n in rows}

    # Runs
    _RUN_COLUMNS = "data, lease_token, deadline, step_count, step_bytes"

    def _stored_run(self, row: tuple[bytes, str, int, int, int]) -> StoredRun:
        return StoredRun(Run.FromString(row[0]), row[1], row[2], row[3], row[4])

    def get_run(self, run_id: str) -> StoredRun | None:
        row = self.conn.execute(f"SELECT {self._RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return self._stored_run(row) if row else None

    def put_run(self, stored: StoredRun, *, new: bool) -> None:
        run = stored.run
        if run.step_runs:
            run = Run()
            run.CopyFrom(stored.run)
            del run.step_runs[:]
        row = (
            run.work_order_id, run.project_id, run.number, run.status, run.priority,
            run.create_time.ToMicroseconds(), int(bool(run.worker_id)), stored.lease_token,
            run.lease_expire_time.ToMicroseconds(), stored.deadline_us, run.SerializeToString(), run.id,
        )
        if new:
            self.conn.execute(
                "INSERT INTO runs (work_order_id, project_id, number, status, priority, create_time, claimed, "
                "lease_token, lease_expire, deadline, data, id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row,
            )
        else:
            self.conn.execute(
                "UPDATE runs SET work_order_id = ?, project_id = ?, number = ?, status = ?, priority = ?, "
                "create_time = ?, claimed = ?, lease_token = ?, lease_expire = ?, deadline = ?, data = ? "
                "WHERE id = ?", row,
            )

    def list_runs(self, work_order_id: str, before_number: int, limit: int) -> list[Run]:
        rows = self.conn.execute(
            "SELECT data FROM runs WHERE work_order_id = ? AND number < ? ORDER BY number DESC LIMIT ?",
            (work_order_id, before_number, limit),
        )
        return [Run.FromString(r[0]) for r in rows]

    def claimable_runs(self, project_id: str, limit: int) -> list[StoredRun]:
        if project_id:
            sql = (f"SELECT {self._RUN_COLUMNS} FROM runs INDEXED BY runs_claimable_by_project "
                   "WHERE project_id = ? AND status = 1 AND claimed = 0 "
                   "ORDER BY priority DESC, create_time LIMIT ?")
            args: tuple[Any, ...] = (project_id, limit)
        else:
            sql = (f"SELECT {self._RUN_COLUMNS} FROM runs INDEXED BY runs_claimable "
                   "WHERE status = 1 AND claimed = 0 ORDER BY priority DESC, create_time LIMIT ?")
            args = (limit,)
        return [self._stored_run(r) for r in self.conn.execute(sql, args)]

    def expired_leases(self, now_us: int, limit: int) -> list[StoredRun]:
        rows = self.conn.execute(
            f"SELECT {self._RUN_COLUMNS} FROM runs WHERE status IN (1, 2) AND claimed = 1 "
            "AND lease_expire < ? ORDER BY lease_expire LIMIT ?", (now_us, limit),
        )
        return [self._stored_run(r) for r in rows]

    def overdue_runs(self, now_us: int, limit: int) -> list[StoredRun]:
        rows = self.conn.execute(
            f"SELECT {self._RUN_COLUMNS} FROM runs WHERE status = 2 AND deadline > 0 AND deadline < ? "
            "ORDER BY deadline LIMIT ?", (now_us, limit),
        )
        return [self._stored_run(r) for r in rows]

    def count_in_flight(self, project_id: str) -> int:
        return int(self._one(
            "SELECT count(*) FROM runs WHERE project_id = ? AND status IN (?, ?)", project_id, *IN_FLIGHT
        ))

    def count_created_since(self, project_id: str, since_us: int) -> int:
        return int(self._one(
            "SELECT count(*) FROM runs WHERE project_id = ? AND status != 10 AND create_time >= ?",
            project_id, since_us,
        ))

    # Step runs
    def step_runs(self, run_id: str) -> list[StepRun]:
        rows = self.conn.execute("SELECT data FROM step_runs WHERE run_id = ? ORDER BY rowid", (run_id,))
        return [StepRun.FromString(r[0]) for r in rows]

    def get_step_run(self, step_run_id: str) -> StepRun | None:
        data = self._one("SELECT data FROM step_runs WHERE id = ?", step_run_id)
        return StepRun.FromString(data) if data is not None else None

    def step_run_started(self, run_id: str, step_id: str, previous_step_run_id: str) -> bool:
        return self._one(
            "SELECT 1 FROM step_runs WHERE run_id = ? AND step_id = ? AND previous_step_run_id = ?",
            run_id, step_id, previous_step_run_id,
        ) is not None

    def running_step_runs(self, run_id: str) -> list[StepRun]:
        rows = self.conn.execute(
            "SELECT data FROM step_runs WHERE run_id = ? AND status = ? ORDER BY rowid",
            (run_id, RunStatus.RUN_STATUS_RUNNING),
        )
        return [StepRun.FromString(r[0]) for r in rows]

    def put_step_run(self, step_run: StepRun, *, new: bool) -> None:
        data = step_run.SerializeToString()
        row = (step_run.run_id, step_run.step_id, step_run.previous_step_run_id, step_run.status, data, step_run.id)
        if new:
            self.conn.execute(
                "UPDATE runs SET step_count = step_count + 1, step_bytes = step_bytes + ? WHERE id = ?",
                (len(data), step_run.run_id),
            )
            self.conn.execute(
                "INSERT INTO step_runs (run_id, step_id, previous_step_run_id, status, data, id) "
                "VALUES (?, ?, ?, ?, ?, ?)", row,
            )
        else:
            self.conn.execute(
                "UPDATE runs SET step_bytes = step_bytes + ? - "
                "(SELECT length(data) FROM step_runs WHERE id = ?) WHERE id = ?",
                (len(data), step_run.id, step_run.run_id),
            )
            self.conn.execute(
                "UPDATE step_runs SET run_id = ?, step_id = ?, previous_step_run_id = ?, status = ?, data = ? "
                "WHERE id = ?", row,
            )

    # Events
    def append_event(self, event: Event) -> int:
        # The sequence lives in the seq column only; reads put it back in the message.
        event.ClearField("sequence")
        cursor = self.conn.execute(
            "INSERT INTO events (project_id, work_order_id, data) VALUES (?, ?, ?)",
            (event.project_id, event.work_order_id, event.SerializeToString()),
        )
        event.sequence = int(cursor.lastrowid or 0)
        return event.sequence

    def events_after(self, sequence: int, project_id: str, limit: int) -> list[Event]:
        if project_id:
            rows = self.conn.execute(
                "SELECT seq, data FROM events WHERE project_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (project_id, sequence, limit),
            )
        else:
            rows = self.conn.execute(
                "SELECT seq, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (sequence, limit)
            )
        events = []
        for seq, data in rows:
            event = Event.FromString(data)
            event.sequence = seq
            events.append(event)
        return events

    def last_event_sequence(self) -> int:
        return int(self._one("SELECT coalesce(max(seq), 0) FROM events"))

    # Tokens
    def get_token(self, token_id: str) -> tuple[Token, str] | None:
        row = self.conn.execute("SELECT data, secret_hash FROM tokens WHERE id = ?", (token_id,)).fetchone()
        return (Token.FromString(row[0]), row[1]) if row else None

    def put_token(self, token: Token, secret_hash: str, *, new: bool) -> None:
        if new:
            self.conn.execute(
                "INSERT INTO tokens (id, project_id, secret_hash, data) VALUES (?, ?, ?, ?)",
                (token.id, token.project_id, secret_hash, token.SerializeToString()),
            )
        else:
            self.conn.execute("UPDATE tokens SET data = ? WHERE id = ?", (token.SerializeToString(), token.id))

    def list_tokens(self, project_id: str, after_id: str, limit: int) -> list[Token]:
        rows = self.conn.execute(
            "SELECT data FROM tokens WHERE project_id = ? AND id > ? ORDER BY id LIMIT ?", (project_id, after_id, limit)
        )
        return [Token.FromString(r[0]) for r in rows]

    # Idempotency
    def get_request(self, request_id: str) -> tuple[str, bytes, bytes] | None:
        row = self.conn.execute(
            "SELECT method, fingerprint, response FROM requests WHERE request_id = ?", (request_id,)
        ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def put_request(self, request_id: str, method: str, fingerprint: bytes, response: bytes, now_us: int) -> None:
        self.conn.execute(
            "INSERT INTO requests (request_id, method, fingerprint, response, create_time) VALUES (?, ?, ?, ?, ?)",
            (request_id, method, fingerprint, response, now_us),
        )

    def delete_requests_before(self, before_us: int, limit: int) -> int:
        cursor = self.conn.execute(
            "DELETE FROM requests WHERE request_id IN "
            "(SELECT request_id FROM requests WHERE create_time < ? ORDER BY create_time LIMIT ?)",
            (before_us, limit),
        )
        return cursor.rowcount
