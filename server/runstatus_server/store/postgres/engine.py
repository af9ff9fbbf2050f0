"""The PostgreSQL engine: several runstatus servers on one database. (The rows it reads and
writes are mapped in rows.py, its schema in migrations.py, its advisory locks in locks.py; the
contract it keeps, in store/base.py.)

The domain code reads and writes through a synchronous `Tx`, so every unit of work runs on a
thread, with a connection from a psycopg pool, in the caller's context (auth reads who is
asking from a ContextVar). Writes commit in groups (group commit, as SQLite's): the writes
waiting when a writer thread is free run in one transaction, each in a savepoint of its own,
so one that raises is undone alone and its caller gets the exception. The group commits
(synchronous_commit on, so the COMMIT is durable when it returns) before its after-commit
hooks run on the event loop, then its callers are answered, then the commit listeners hear
of it. A group costs the database one BEGIN, one event append and one COMMIT (with its WAL
flush), and this process one connection, one pipeline and one round trip, however many writes
it holds. A group that loses a race or hits a failed statement is run again one write per
transaction, so that nothing one write does can fail another. Writers of the same rows take turns through row locks (rows.py); a
write that lost a race (a deadlock, a serialization failure, a key another writer inserted
first, a row changed since it was read) is tried again from the start, a few times.

Reads run on a second pool, each in a read-only REPEATABLE READ transaction: one snapshot,
committed data only. No psycopg exception leaves this module: each becomes a StorageError.

Several servers on one database: each transaction that appended events sends one
`NOTIFY runstatus_events` (delivered at its COMMIT, so once per commit, never per event), and
each store LISTENs on a connection of its own (a thread): a commit made through another server
wakes this one's commit listeners (the event feed), which then read the log by sequence as for
a local commit. The notification is only a wake-up; a lost one costs a watcher the feed's poll.
One server at a time sweeps (`lead`): the one holding a session-level advisory lock on a
connection of its own; when that server dies, its connection and its lock go with it, and the
next server to ask takes over.

What does not hold as with SQLite: a connection lost *during* a COMMIT leaves its outcome
unknown (the database may have committed it); the caller gets StorageUnavailable all the same,
as for any lost connection, and a retry with the same request_id finds the answer if it did.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
import random
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
from psycopg import pq
from psycopg_pool import ConnectionPool, PoolClosed

from ..base import CannotOpen, StorageBusy, StorageError, StorageFull, StorageUnavailable, StoreClosing
from .cache import WriteCache
from .locks import EVENTS_CHANNEL, SWEEP_LOCK
from .migrations import migrate
from .rows import PostgresTx, WriteConflict

T = TypeVar("T")
P = ParamSpec("P")
log = logging.getLogger("runstatus.store")

BUSY_TIMEOUT_MS = 30_000  # how long a statement waits for a lock before StorageBusy
CONNECT_TIMEOUT_S = 10
POOL_TIMEOUT_S = 5.0  # how long a unit of work waits for a connection before StorageUnavailable
# How long the pool retries a lost connection in the background (with growing delays) before it
# leaves reconnecting to the next unit of work that needs one: short, so that the store is back
# within a second or two of the database, however long it was gone.
RECONNECT_TIMEOUT_S = 2.0
WRITE_ATTEMPTS = 6  # a write that keeps losing races is refused (StorageBusy) after this many tries
# Writer threads (and write connections): each commits a group at a time. Two, so that one group
# runs its statements while the other commits, and a group waiting for a row lock does not stop
# every write. More threads made smaller groups and more turns of the GIL between them: with 8,
# CreateWorkOrder c=16 ran 575-588/s at 1.54 ms of this process's CPU and 3.7-3.9 statements a
# call; with 2, 808-1,080/s at 0.88-1.14 ms and 2.8-2.9 (make bench, the same afternoon); the
# worker lifecycle 398-400 against 549-693 RPC/s.
WRITERS = 2
# At most this many writes commit together: each is a subtransaction (its savepoint), and
# PostgreSQL keeps 64 of a transaction's subtransactions in shared memory before it must
# look them up on disk, for every snapshot that sees the transaction in progress.
MAX_GROUP = 32
# Every connection: durable commits, and bounded waits for locks and for idle transactions.
OPTIONS = (f"-c synchronous_commit=on -c lock_timeout={BUSY_TIMEOUT_MS} "
           "-c idle_in_transaction_session_timeout=60000")

# SQLSTATEs of a lost race: the write is tried again from the start.
RETRIED = {"40001", "40P01", "23505"}  # serialization failure, deadlock, unique violation
# Point reads (Store.read) have threads and connections of their own beside the scans': a
# GetProject does not wait behind lists that hold every reader.
POINT_READERS = 2
LISTEN_WAKE_S = 0.25  # how often the listening thread looks up from its connection (to stop)
LISTEN_RETRY_S = (0.1, 2.0)  # the listening thread reconnects after this long, doubling up to the most
# The sweeper asks `lead` before every pass; the leader's connection (and so its lock) is checked
# at most this often. Between checks the sweeper does not wait on the database to be told it
# still leads (each wait is one more moment in which a stopped server's stall goes unmeasured:
# sweeper.Stalls measures its sleeps).
LEAD_CHECK_S = 1.0
CHECK_IDLE_S = 0.5  # a write connection idle longer than this is checked before a write gets it


def is_postgres_url(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://"))


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    url = re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)
    return re.sub(r"(password=)[^&]*", r"\1***", url)


def _said(e: BaseException) -> str:
    """The error's message on one line (libpq's take several)."""
    return " ".join(str(e).split()) or type(e).__name__


def _storage_error(e: BaseException, doing: str = "written") -> StorageError:
    """psycopg's error as the project's own (store/base.py)."""
    if isinstance(e, StorageError):
        return e
    if isinstance(e, PoolClosed):
        return StoreClosing("the server is shutting down")
    message = f"the database cannot be {doing} right now: {_said(e)}"
    state = getattr(e, "sqlstate", None) or ""
    if state in ("55P03", "40001", "40P01", "57014", "53300") or isinstance(e, WriteConflict):
        # lock timeout, lost races past WRITE_ATTEMPTS, statement timeout, too many connections
        return StorageBusy(message)
    if state == "53100":  # disk full
        return StorageFull(message)
    return StorageUnavailable(message)  # connection lost or refused (08*, 57P0*, no state), and the rest


@dataclass
class _Write:
    """A write waiting for a writer thread: its job, in its caller's context, and its answer."""

    job: Callable[[PostgresTx], Any]
    context: contextvars.Context
    answer: asyncio.Future[Any]

    def run(self, tx: PostgresTx) -> Any:
        return self.context.run(self.job, tx)


@dataclass
class _Outcome:
    """What a write did, handed from its thread to the loop."""

    result: Any = None
    error: BaseException | None = None
    committed: bool = False
    hooks: list[Callable[[], None]] = field(default_factory=list)


class PostgresStore:
    # Writes run on threads of their own here, not on the loop; the sizes are SQLite's until
    # PostgreSQL's own are measured.
    batch_size = 50
    delete_batch_size = 500

    def __init__(self, url: str, *, writers: int = WRITERS, readers: int = 4, shared: bool = False) -> None:
        # `shared` (server processes on one SQLite file) means nothing here: PostgreSQL is shared.
        self.url = url
        self._writer_count, self._reader_count = writers, readers
        self._writers = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="runstatus-pg-write")
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="runstatus-pg-read")
        self._point_readers = ThreadPoolExecutor(max_workers=POINT_READERS, thread_name_prefix="runstatus-pg-get")
        self._write_pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._read_pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._listeners: list[Callable[[], None]] = []
        self._size_listeners: list[Callable[[int], None]] = []
        self._in_flight = 0  # writes begun and not yet answered
        self._waiting: collections.deque[_Write] = collections.deque()  # writes no writer thread has taken
        self._committers = 0  # writer threads taking groups from _waiting
        self._waiting_lock = threading.Lock()
        # Groups done, for the loop: one wake-up (a write to the loop's self-pipe, a system call
        # that cost a write thread ~15% of its time) serves every group done before it runs.
        self._done: collections.deque[tuple[list[_Write], list[_Outcome], list[int]]] = collections.deque()
        self._done_wake = False
        self._idle: asyncio.Event | None = None
        self._closing = False
        # Cross-server wake-ups: this store's NOTIFYs carry its origin, and its listener skips them
        # (its own commits already told the listeners).
        self._origin = uuid.uuid4().hex
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listening: threading.Thread | None = None
        self._stop_listening = threading.Event()
        self._wake_pending = False
        # The sweeper's lock (lead): its own connection, and whether it holds the lock.
        self._lead_conn: psycopg.Connection[Any] | None = None
        self._leading = False
        self._lead_checked = 0.0  # time.monotonic() of the last check that it still leads
        self._lead_mutex = threading.Lock()
        self._cache = WriteCache()  # what writes read often and change rarely (cache.py)
        # When each write connection was last handed back (_check_if_idle).
        self._idle_since: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = weakref.WeakKeyDictionary()

    # --- start and close --------------------------------------------------------------

    def prepare(self) -> None:
        """Brings the schema up to date (blocking). Several servers may do it at once."""
        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                 options=OPTIONS) as conn:
                migrate(conn)
        except psycopg.Error as e:
            raise CannotOpen(f"cannot use the PostgreSQL database {redacted(self.url)}: {_said(e)}") from None

    async def start(self) -> None:
        await asyncio.to_thread(self.prepare)
        self._idle = asyncio.Event()
        self._idle.set()
        self._write_pool = self._pool("write", self._writer_count, None, checked=True)
        self._read_pool = self._pool("read", self._reader_count + POINT_READERS, self._configure_reader,
                                     checked=False)
        try:
            await asyncio.to_thread(self._open_pools)
        except psycopg.Error as e:
            await asyncio.to_thread(self._close_pools)
            raise CannotOpen(f"cannot connect to the PostgreSQL database {redacted(self.url)}: {_said(e)}") from None
        self._loop = asyncio.get_running_loop()
        self._listening = threading.Thread(target=self._listen_forever, name="runstatus-pg-listen", daemon=True)
        self._listening.start()

    def _pool(self, name: str, size: int, configure: Callable[[psycopg.Connection[Any]], None] | None,
              checked: bool) -> ConnectionPool[psycopg.Connection[Any]]:
        return ConnectionPool(
            self.url, min_size=1, max_size=size, open=False, name=f"runstatus-{name}", timeout=POOL_TIMEOUT_S,
            reconnect_timeout=RECONNECT_TIMEOUT_S,
            kwargs={"autocommit": False, "connect_timeout": CONNECT_TIMEOUT_S, "options": OPTIONS},
            configure=configure,
            # `checked`: a connection the database dropped (a restart) is found out before a
            # unit of work gets it, so the store comes back with the database instead of failing
            # once per connection it held. Writes need it (one is not tried again once it may
            # have reached its COMMIT); reads try again instead (_read_now), saving a round trip.
            # Only a connection that sat idle is checked: one handed back moments ago was
            # answering then, and under load a check per write would be a round trip per write.
            check=self._check_if_idle if checked else None,
            reset=self._returned if checked else None,
        )

    def _returned(self, conn: psycopg.Connection[Any]) -> None:
        self._idle_since[conn] = time.monotonic()

    def _check_if_idle(self, conn: psycopg.Connection[Any]) -> None:
        if time.monotonic() - self._idle_since.get(conn, 0.0) > CHECK_IDLE_S:
            ConnectionPool.check_connection(conn)

    @staticmethod
    def _configure_reader(conn: psycopg.Connection[Any]) -> None:
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ

    def _open_pools(self) -> None:
        assert self._write_pool is not None and self._read_pool is not None
        self._write_pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        self._read_pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)

    def _close_pools(self) -> None:
        for pool in (self._write_pool, self._read_pool):
            if pool is not None:
                pool.close(timeout=5)

    async def close(self) -> None:
        """Finishes every write already begun, then closes."""
        self._closing = True
        if self._idle is not None:
            await self._idle.wait()
        await asyncio.to_thread(self._writers.shutdown, wait=True)
        await asyncio.to_thread(self._readers.shutdown, wait=True)
        await asyncio.to_thread(self._point_readers.shutdown, wait=True)
        await asyncio.to_thread(self._close_pools)
        self._stop_listening.set()
        if self._listening is not None:
            await asyncio.to_thread(self._listening.join, 5)
        await asyncio.to_thread(self._resign)

    def add_commit_listener(self, listener: Callable[[], None]) -> None:
        """Called on the event loop after every commit (e.g. to wake watchers)."""
        self._listeners.append(listener)

    def add_commit_size_listener(self, listener: Callable[[int], None]) -> None:
        """Called on the event loop with the number of writes of each COMMIT (group commit)."""
        self._size_listeners.append(listener)

    def _tell_listeners(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:  # noqa: BLE001
                log.exception("a commit listener failed")

    # --- other servers' commits: LISTEN ------------------------------------------------

    def _own_connection(self) -> psycopg.Connection[Any]:
        """A connection outside the pools (LISTEN, the sweeper's lock). It sits idle for long:
        TCP keepalives find out when the database vanished without a word."""
        return psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, options=OPTIONS,
                               keepalives=1, keepalives_idle=10, keepalives_interval=2, keepalives_count=3)

    def _listen_forever(self) -> None:
        """On its own thread: LISTENs on a connection of its own, reconnecting when it is lost,
        and wakes the commit listeners on the loop when another server committed events. Once
        reconnected, it wakes them once too: a commit may have gone unheard meanwhile."""
        retry = LISTEN_RETRY_S[0]
        again = False  # a connection before this one failed or was lost
        while not self._stop_listening.is_set():
            try:
                with self._own_connection() as conn:
                    conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                    retry = LISTEN_RETRY_S[0]
                    if again:
                        self._heard()
                    while not self._stop_listening.is_set():
                        for note in conn.notifies(timeout=LISTEN_WAKE_S):
                            if note.payload != self._origin:
                                self._heard()
            except psycopg.Error as e:
                if self._stop_listening.is_set():
                    return
                log.warning("cannot listen for other servers' commits (watchers poll meanwhile): %s", _said(e))
            except RuntimeError:  # the loop closed under the thread: the store is going away
                return
            again = True
            self._stop_listening.wait(retry)
            retry = min(retry * 2, LISTEN_RETRY_S[1])

    def _heard(self) -> None:
        """From the listening thread: the listeners run on the loop, once per burst of NOTIFYs
        that arrive before the loop gets to them."""
        if self._wake_pending or self._loop is None:
            return
        self._wake_pending = True
        self._loop.call_soon_threadsafe(self._wake_listeners)

    def _wake_listeners(self) -> None:
        self._wake_pending = False
        self._tell_listeners()

    # --- the sweeper: one server at a time --------------------------------------------

    async def lead(self) -> bool:
        """Whether this server may sweep now: it holds (or just took) the session-level advisory
        lock SWEEP_LOCK, on a connection of its own that it keeps; a connection lost loses the
        lock (the database releases it when the session ends), and it is asked for again."""
        if self._closing:
            return False
        if self._leading and time.monotonic() - self._lead_checked < LEAD_CHECK_S:
            return True
        return await asyncio.to_thread(self._lead_now)

    def _lead_now(self) -> bool:
        with self._lead_mutex:
            try:
                if self._lead_conn is None or self._lead_conn.closed:
                    self._leading = False
                    self._lead_conn = self._own_connection()
                if self._leading:
                    self._lead_conn.execute("SELECT 1")  # still connected, so still holding it
                    self._lead_checked = time.monotonic()
                    return True
                row = self._lead_conn.execute("SELECT pg_try_advisory_lock(%s)", (SWEEP_LOCK,)).fetchone()
                self._leading = bool(row and row[0])
                if self._leading:
                    self._lead_checked = time.monotonic()
                    log.info("this server sweeps now (it holds the sweeper's lock)")
                return self._leading
            except psycopg.Error as e:
                if self._leading:
                    log.warning("lost the sweeper's lock: %s", _said(e))
                self._leading = False
                self._drop_lead_conn()
                return False

    def _drop_lead_conn(self) -> None:
        if self._lead_conn is not None:
            try:
                self._lead_conn.close()
            except psycopg.Error:
                pass
            self._lead_conn = None

    def _resign(self) -> None:
        """Closing: the lock goes with the connection, at once (another server sweeps next)."""
        with self._lead_mutex:
            self._leading = False
            self._drop_lead_conn()

    def add_fault_listener(self, listener: Callable[[str], None]) -> None:
        """Nothing to hear for PostgreSQL: there is no database file that could be deleted or
        replaced under the server. A database that cannot be reached fails each unit of work
        with StorageUnavailable instead, and the store recovers when it comes back."""

    # --- writes -----------------------------------------------------------------------

    async def write(self, fn: Callable[Concatenate[PostgresTx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._closing or self._write_pool is None or self._idle is None:
            raise StoreClosing("the server is shutting down")
        loop = asyncio.get_running_loop()
        # The caller's context (who is asking: see auth.py) goes with the write. Its outcome is
        # handled by the store, not by the caller: a caller cancelled meanwhile (its deadline)
        # must not keep the hooks of a write that committed from running.
        write = _Write(lambda tx: fn(tx, *args, **kwargs), contextvars.copy_context(), loop.create_future())
        self._in_flight += 1
        self._idle.clear()
        with self._waiting_lock:
            self._waiting.append(write)
            start = self._committers < self._writer_count
            if start:
                self._committers += 1
        if start:
            loop.run_in_executor(self._writers, self._commit_groups, loop)
        return await write.answer  # type: ignore[no-any-return]

    def _commit_groups(self, loop: asyncio.AbstractEventLoop) -> None:
        """A writer thread: commits the waiting writes, a group at a time, until none wait."""
        while True:
            with self._waiting_lock:
                if not self._waiting:
                    self._committers -= 1
                    return
                group = [self._waiting.popleft() for _ in range(min(len(self._waiting), MAX_GROUP))]
            try:
                outcomes, commits = self._write_group(group)
            except BaseException as e:  # noqa: BLE001 - every caller must hear, whatever happened
                outcomes, commits = [_Outcome(error=_storage_error(e)) for _ in group], []
            with self._waiting_lock:
                self._done.append((group, outcomes, commits))
                wake, self._done_wake = not self._done_wake, True
            if wake:
                loop.call_soon_threadsafe(self._all_written)

    def _write_group(self, group: list[_Write]) -> tuple[list[_Outcome], list[int]]:
        """The group in one transaction, or, if that cannot be, each write in one of its own:
        each write's outcome, and the number of writes of each COMMIT."""
        assert self._write_pool is not None
        if len(group) > 1:
            try:
                with self._write_pool.connection() as conn:
                    try:
                        outcomes = self._group_transaction(conn, group, self._origin, self._cache)
                        together = sum(o.committed for o in outcomes)
                        return outcomes, [together] if together else []
                    except (psycopg.Error, WriteConflict) as e:
                        if conn.broken:  # perhaps during its COMMIT: whether it committed is unknown
                            log.warning("write refused: %s", e)
                            return [_Outcome(error=_storage_error(e)) for _ in group], []
                        if getattr(e, "sqlstate", None) == "40001":  # perhaps what it took from the cache changed
                            self._cache.clear()
            except psycopg.Error as e:  # no connection to be had
                log.warning("write refused: %s", e)
                return [_Outcome(error=_storage_error(e)) for _ in group], []
        outcomes = [self._write_now(write.run) for write in group]
        return outcomes, [1 for o in outcomes if o.committed]

    def _write_now(self, job: Callable[[PostgresTx], Any]) -> _Outcome:
        """Runs one write in a transaction of its own; never raises."""
        assert self._write_pool is not None
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                with self._write_pool.connection() as conn:
                    outcome = self._transaction(conn, job, self._origin, self._cache)
            except (psycopg.Error, WriteConflict) as e:
                state = getattr(e, "sqlstate", None)
                if (state in RETRIED or isinstance(e, WriteConflict)) and attempt < WRITE_ATTEMPTS:
                    if state == "40001":  # perhaps what the write took from the cache changed
                        self._cache.clear()
                    time.sleep(random.uniform(0, 0.002 * 2**attempt))  # let the winner finish
                    continue
                log.warning("write refused: %s", e)
                return _Outcome(error=_storage_error(e))
            return outcome
        raise AssertionError("unreachable")

    @staticmethod
    def _transaction(conn: psycopg.Connection[Any], job: Callable[[PostgresTx], Any], origin: str,
                     cache: WriteCache) -> _Outcome:
        """The job in one transaction, in pipeline mode: what it sends without needing an answer
        (its INSERTs and UPDATEs) waits to go with its reads or, at the latest, with the COMMIT,
        so a write that reads nothing from the database (a create, whose project and workflow
        come from the cache) is one round trip from BEGIN to COMMIT. Raises psycopg errors (and
        WriteConflict) for the caller to retry or map; returns the job's own exception in the
        outcome. PostgresTx.finish is the last statement before the COMMIT."""
        tx = PostgresTx(conn, writing=True, cache=cache)
        own: BaseException | None = None
        try:
            with conn.pipeline() as pipeline:
                tx.pipeline = pipeline
                try:
                    result = job(tx)
                except (psycopg.Error, WriteConflict):
                    raise
                except BaseException as e:  # noqa: BLE001 - the caller gets its own error
                    own = e
                if own is None and conn.info.transaction_status != pq.TransactionStatus.INERROR:
                    tx.finish(origin)
                    conn.commit()
            # Leaving the pipeline waited for every answer: a statement sent without waiting
            # that failed has raised by now, and the COMMIT, if sent, is done.
        except (psycopg.Error, WriteConflict):
            conn.rollback()
            raise
        if own is not None:
            conn.rollback()
            return _Outcome(error=own)
        if conn.info.transaction_status == pq.TransactionStatus.INERROR:
            # The job swallowed a failed statement: the transaction can only be rolled back.
            conn.rollback()
            return _Outcome(error=StorageUnavailable("the database cannot be written right now: a statement failed"))
        return _Outcome(result=result, committed=True, hooks=tx.committed_hooks)

    @staticmethod
    def _group_transaction(conn: psycopg.Connection[Any], group: list[_Write], origin: str,
                           cache: WriteCache) -> list[_Outcome]:
        """The group's writes in one transaction, each in a savepoint (sent in the pipeline
        with its statements: no round trip of its own); one that raises its own exception is
        rolled back to its savepoint, alone. Raises psycopg errors and WriteConflict (the whole
        transaction rolled back) for the caller to run the writes one by one."""
        tx = PostgresTx(conn, writing=True, cache=cache)
        outcomes: list[_Outcome] = []
        try:
            with conn.pipeline() as pipeline:
                tx.pipeline = pipeline
                for write in group:
                    conn.execute("SAVEPOINT one_write")
                    tx.committed_hooks = []
                    mark = tx.mark()
                    try:
                        result = write.run(tx)
                    except (psycopg.Error, WriteConflict):
                        raise
                    except BaseException as e:  # noqa: BLE001 - its caller gets its own error
                        conn.execute("ROLLBACK TO SAVEPOINT one_write")
                        tx.undo_to(mark)
                        outcomes.append(_Outcome(error=e))
                        continue
                    outcomes.append(_Outcome(result=result, committed=True, hooks=tx.committed_hooks))
                if conn.info.transaction_status != pq.TransactionStatus.INERROR:
                    tx.finish(origin)
                    conn.commit()
        except (psycopg.Error, WriteConflict):
            conn.rollback()
            raise
        if conn.info.transaction_status == pq.TransactionStatus.INERROR:
            # A write swallowed a failed statement: not knowing whose, each runs alone.
            conn.rollback()
            raise WriteConflict("a statement of the group failed")
        return outcomes

    def _all_written(self) -> None:
        with self._waiting_lock:
            done, self._done, self._done_wake = self._done, collections.deque(), False
        for group, outcomes, commits in done:
            self._written(group, outcomes, commits)

    def _written(self, group: list[_Write], outcomes: list[_Outcome], commits: list[int]) -> None:
        """On the loop, once a group is done: each write's hooks and caller, then the listeners."""
        for size in commits:
            for size_listener in self._size_listeners:
                try:
                    size_listener(size)
                except Exception:  # noqa: BLE001
                    log.exception("a commit size listener failed")
        self._in_flight -= len(group)
        if self._in_flight == 0 and self._idle is not None:
            self._idle.set()
        for write, outcome in zip(group, outcomes):
            if outcome.committed:
                # A hook that raises must neither keep its write waiting nor stop the others.
                for hook in outcome.hooks:
                    try:
                        hook()
                    except Exception:  # noqa: BLE001
                        log.exception("an after-commit hook failed")
            if not write.answer.done():
                if outcome.error is not None:
                    write.answer.set_exception(outcome.error)
                else:
                    write.answer.set_result(outcome.result)
        if any(outcome.committed for outcome in outcomes):
            self._tell_listeners()

    # --- reads ------------------------------------------------------------------------

    async def read(self, fn: Callable[Concatenate[PostgresTx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A point read. (On a thread too, a point reader's: every query is a round trip to the database.)"""
        return await self._read_on(self._point_readers, lambda tx: fn(tx, *args, **kwargs))

    async def scan(self, fn: Callable[Concatenate[PostgresTx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A read that may walk many rows (lists, counts, event pages), on a reader thread."""
        return await self._read_on(self._readers, lambda tx: fn(tx, *args, **kwargs))

    async def _read_on(self, threads: ThreadPoolExecutor, job: Callable[[PostgresTx], T]) -> T:
        if self._read_pool is None:
            raise StoreClosing("the server is shutting down")
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()  # the caller's context (see auth.py) goes with the read
        return await loop.run_in_executor(threads, context.run, self._read_now, job)

    def scan_now(self, fn: Callable[Concatenate[PostgresTx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A scan for a thread that is not the event loop's (the metrics server's): runs on the
        calling thread, with a connection of the read pool."""
        return self._read_now(lambda tx: fn(tx, *args, **kwargs))

    def _read_now(self, job: Callable[[PostgresTx], T]) -> T:
        """The job in a read-only transaction. Its connection is not checked first (a round
        trip per read): a read that finds its connection dropped by the database (a restart)
        is tried again on another, which the pool opens anew once the broken ones are gone."""
        if self._read_pool is None:
            raise StoreClosing("the server is shutting down")
        attempts = self._reader_count + POINT_READERS + 2  # every pooled connection may be broken, then a new one
        for attempt in range(1, attempts + 1):
            conn: psycopg.Connection[Any] | None = None
            try:
                with self._read_pool.connection() as conn:
                    try:
                        result = job(PostgresTx(conn, writing=False))
                    except BaseException:
                        if not conn.closed:
                            conn.rollback()
                        raise
                    # COMMIT, not ROLLBACK, ends it: the same for a read-only transaction, and
                    # psycopg keeps its prepared statements (a ROLLBACK drops them).
                    conn.commit()
                    return result
            except psycopg.Error as e:
                if conn is not None and conn.broken and attempt < attempts:
                    continue
                raise _storage_error(e, "read") from e
        raise AssertionError("unreachable")


__all__ = ["PostgresStore", "is_postgres_url", "redacted"]
