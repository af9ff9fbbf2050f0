"""The storage interface the domain code is written against, and the constants it shares.

A backend (store/sqlite/, the embedded default; store/postgres/, several servers on one
database) implements `Store` and hands each unit of work a `Tx`. What it promises the domain
code, whatever the database:

- **Each write is atomic on its own.** `Store.write(fn, ...)` runs `fn(tx, ...)` as one unit:
  a backend may commit several writes together (group commit), but each runs in a savepoint
  of its own, so a write that raises is undone alone and the writes beside it still commit.
- **A write that raises changed nothing.** Its exception undoes it and reaches the caller as
  raised. (A refusal that must keep a change is an outcome the write returns, errors.Refused,
  which the service raises after the commit.)
- **Acknowledged means durable.** `write` returns only after
  the COMMIT holding the write is durable. If the COMMIT fails, every write in it gets a
  `StorageError`, and none of them changed anything.
- **After-commit hooks** (`Tx.after_commit`) run on the event loop once the commit holding
  their write is durable, before its callers are answered, and never for a write undone or
  a commit that failed. A hook that raises is logged and does not stop the others.
- **Errors of the database** reach the domain only as the `StorageError`s below: no driver
  exception leaves a backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from runstatus.v1.error_reason_pb2 import ErrorReason
from runstatus.v1.event_pb2 import Event
from runstatus.v1.project_pb2 import Project
from runstatus.v1.status_pb2 import RunStatus
from runstatus.v1.token_pb2 import Token
from runstatus.v1.work_order_pb2 import Run, StepRun, WorkOrder, WorkOrderFilter
from runstatus.v1.workflow_pb2 import Workflow

T = TypeVar("T")
P = ParamSpec("P")

# The run statuses by name, once, for the domain (rules.py) and the store's SQL, which writes
# them as literals: a partial index's condition cannot take a parameter, and a planner uses the
# index only for queries that name the same literals.
PENDING = RunStatus.RUN_STATUS_PENDING
RUNNING = RunStatus.RUN_STATUS_RUNNING
SUCCESS = RunStatus.RUN_STATUS_SUCCESS
FAILED = RunStatus.RUN_STATUS_FAILED
CANCELLED = RunStatus.RUN_STATUS_CANCELLED
LOST = RunStatus.RUN_STATUS_LOST
REJECTED = RunStatus.RUN_STATUS_REJECTED


class CannotOpen(Exception):
    """The database cannot be served: the server refuses to start, with this message."""


class CopyError(Exception):
    """Why a backup, a restore or a rewrite of the database was not made; nothing was changed."""


@dataclass(frozen=True)
class CopySummary:
    """What a backup holds."""

    schema_version: int
    last_event_sequence: int
    work_orders: int
    size_bytes: int

    def line(self) -> str:
        return (f"schema version {self.schema_version}, {self.work_orders:,} work orders, events up to "
                f"sequence {self.last_event_sequence:,}, {self.size_bytes:,} bytes")


class StorageError(Exception):
    """The database could not be used for this unit of work; it changed nothing. The RPC layer
    answers UNAVAILABLE with `reason` (a client may retry: each of these may pass)."""

    reason = ErrorReason.ERROR_REASON_STORAGE_UNAVAILABLE


class StorageUnavailable(StorageError):
    """The database cannot be read or written right now (I/O error, lost connection)."""


class StorageBusy(StorageError):
    """Another writer held the database for longer than the store waits."""

    reason = ErrorReason.ERROR_REASON_STORAGE_BUSY


class StorageFull(StorageError):
    """The disk (or the database's quota) is full."""

    reason = ErrorReason.ERROR_REASON_STORAGE_FULL


class DatabaseFileGone(StorageUnavailable):
    """The database the store opened is no longer the one at its path: writes are refused."""

    reason = ErrorReason.ERROR_REASON_DATABASE_FILE_GONE


class StoreClosing(StorageUnavailable):
    """The store is closing: it takes no more writes."""

    reason = ErrorReason.ERROR_REASON_SHUTTING_DOWN


@dataclass
class StoredRun:
    """A run as stored: the public message (without step runs) and what only the server sees."""

    run: Run
    lease_token: str = ""
    # When a RUNNING run is KILLED for outliving its project's max runtime (microseconds).
    deadline_us: int = 0
    # Its step runs: how many, and their encoded bytes together, as of reading it. The store
    # keeps both as step runs are put (put_run never writes them), so that a report can check
    # the run's limits without reading every step run.
    step_count: int = 0
    step_bytes: int = 0


class Page(list[T]):
    """The rows a list read found, in order. A list read given a byte budget measures its rows
    before it reads them, and reads only those whose bytes fit (at least one): `cut` says it
    stopped there, so that more follow though fewer came back than were asked for."""

    cut = False


# Keyset pagination position of a work order: (create_time in microseconds, insertion sequence).
WorkOrderKey = tuple[int, int]


# A notification delivery's state (notification_deliveries.state, written as literals in a
# partial index like the run statuses above): owed, delivered, or given up after the retry window.
# An owed one already attempted is "retrying" to the API (attempts > 0).
DELIVERY_PENDING = 0
DELIVERY_DELIVERED = 1
DELIVERY_DEAD = 2

# A delivery's kind (notification_deliveries.kind): the NotificationDeliveryKind values.
DELIVERY_EVENT = 1  # one event
DELIVERY_DIGEST = 2  # several events, past the subscription's rate cap
DELIVERY_TEST = 3  # SendTestNotification's


@dataclass
class NotificationSubscription:
    """Who is told of which events, and how (notifications/). `target_kind` is "webhook", "slack"
    or "email"; `target` is where to: a webhook's or Slack's URL, or for email a JSON object
    ({"to": [...], "smtp": {...}} without its password); `secret` is the webhook's signing secret
    or the SMTP password. `event_filter` is JSON, as the filter's protobuf JSON would be
    (eventTypes, statuses, workflowIds: enum names); `scan_cursor` is the last event sequence the
    event log was scanned up to for it (every delivery owed up to there is written)."""

    id: str
    target_kind: str
    target: str
    secret: str
    event_filter: str
    project_id: str = ""  # "" for the instance's
    scan_cursor: int = 0
    create_time: int = 0  # microseconds
    update_time: int = 0
    name: str = ""
    max_per_minute: int = 0  # messages per minute before a digest; 0: the default


@dataclass
class NotificationDelivery:
    """One message owed to one subscription: `body` is what is sent (a webhook's JSON, the same
    bytes every attempt; the sender renders it for Slack or email). A digest's body lists its
    events and its event_seq is its first's; a test's event_seq is negative (unique, no event)."""

    id: str  # stable: receivers dedupe by it
    subscription_id: str
    event_seq: int
    body: bytes
    create_time: int  # microseconds
    next_attempt_time: int
    attempts: int = 0
    state: int = DELIVERY_PENDING
    last_error: str = ""
    kind: int = DELIVERY_EVENT
    event_count: int = 1
    owed_time: int = 0  # when its retry window began: create_time, or its last redelivery; 0: create_time
    update_time: int = 0

    def __post_init__(self) -> None:
        self.owed_time = self.owed_time or self.create_time
        self.update_time = self.update_time or self.create_time


# Keyset position in a subscription's delivery log, newest first: (create_time, id).
DeliveryKey = tuple[int, str]
# A position in a project's work orders by their last change (retention): (update_time, seq).
ChangeKey = tuple[int, int]


class Tx(Protocol):
    """Rows, read and written inside one atomic unit of work."""

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Runs fn once the unit of work is durably committed (never if it is rolled back)."""

    def get_project(self, project_id: str) -> Project | None: ...
    def put_project(self, project: Project, *, new: bool) -> None: ...
    def list_projects(self, after_id: str, limit: int, max_bytes: int | None = None) -> Page[Project]:
        """Up to limit projects after after_id, by id; with max_bytes, only the head of them
        whose encoded bytes fit it (at least one; Page.cut). So every list read."""
        ...

    def get_workflow(self, project_id: str, workflow_id: str, version: int = 0) -> Workflow | None: ...
    def workflow_version(self, project_id: str, workflow_id: str, version: int = 0) -> int | None:
        """The version that exists (0: the latest), without reading the workflow itself."""
        ...
    def insert_workflow(self, workflow: Workflow) -> None: ...
    def list_workflows(self, project_id: str, after_id: str, limit: int,
                       max_bytes: int | None = None) -> Page[Workflow]: ...

    def get_work_order(self, work_order_id: str) -> WorkOrder | None: ...
    def put_work_order(self, work_order: WorkOrder, *, new: bool) -> None: ...
    def list_work_orders(
        self, project_id: str, flt: WorkOrderFilter, after: WorkOrderKey | None, limit: int,
        max_bytes: int | None = None,
    ) -> Page[tuple[WorkOrder, WorkOrderKey]]: ...
    def count_work_orders(self, project_id: str, flt: WorkOrderFilter) -> dict[int, int]: ...
    def count_all_work_orders(self) -> dict[int, int]:
        """Work orders by status over every project (the metrics gauge)."""
        ...

    def free_pages(self, limit: int) -> int:
        """Gives up to limit free pages of the database file back to the file system, when the
        database does that in steps (SQLite's incremental auto-vacuum), keeping a tenth of the file
        free for the writers to reuse; how many. PostgreSQL's autovacuum keeps its tables' space
        for reuse itself: 0."""
        ...
    def merge_count_deltas(self, limit: int) -> int:
        """Tidies the counts' buckets where a backend keeps them as rows of changes (each
        sweep pass does, sweeper.sweep); how many it tidied."""
        ...

    def get_run(self, run_id: str) -> StoredRun | None: ...
    def put_run(self, stored: StoredRun, *, new: bool) -> None: ...
    def list_runs(self, work_order_id: str, before_number: int, limit: int,
                  max_bytes: int | None = None) -> Page[Run]:
        """Without their step runs, whose bytes count in max_bytes all the same (an answer
        carries each run with them: runs.with_step_runs)."""
        ...
    def claimable_runs(self, project_id: str, limit: int) -> list[StoredRun]: ...
    def expired_leases(self, now_us: int, limit: int) -> list[StoredRun]: ...
    def overdue_runs(self, now_us: int, limit: int) -> list[StoredRun]: ...
    def count_in_flight(self, project_id: str) -> int: ...
    def count_created_since(self, project_id: str, since_us: int) -> int: ...

    def step_runs(self, run_id: str) -> list[StepRun]: ...
    def get_step_run(self, step_run_id: str) -> StepRun | None: ...
    def step_run_started(self, run_id: str, step_id: str, previous_step_run_id: str) -> bool:
        """Whether the run has a step run of step_id started from previous_step_run_id."""
        ...
    def running_step_runs(self, run_id: str) -> list[StepRun]: ...
    def put_step_run(self, step_run: StepRun, *, new: bool) -> None:
        """Also keeps the run's step_count and step_bytes."""
        ...

    def append_event(self, event: Event) -> None: ...  # numbered by its commit (events_after)
    def events_after(self, sequence: int, project_id: str, limit: int) -> list[Event]: ...
    def last_event_sequence(self) -> int: ...

    def get_token(self, token_id: str) -> tuple[Token, str] | None: ...
    def put_token(self, token: Token, secret_hash: str, *, new: bool) -> None: ...
    def list_tokens(self, project_id: str, after_id: str, limit: int,
                    max_bytes: int | None = None) -> Page[Token]: ...

    def get_request(self, request_id: str) -> tuple[str, bytes, bytes] | None: ...
    def put_request(self, request_id: str, method: str, fingerprint: bytes, response: bytes, now_us: int) -> None: ...
    def delete_requests_before(self, before_us: int, limit: int) -> int:
        """Removes up to limit kept answers stored before before_us, oldest first; how many."""
        ...

    def get_notification_subscription(self, subscription_id: str) -> NotificationSubscription | None: ...
    def put_notification_subscription(self, subscription: NotificationSubscription, *, new: bool) -> None: ...
    def delete_notification_subscription(self, subscription_id: str) -> int:
        """Removes it and its deliveries; how many of them were still owed."""
        ...
    def notification_subscriptions(self) -> list[NotificationSubscription]: ...
    def advance_notification_cursor(self, subscription_id: str, sequence: int) -> None:
        """Moves its scan_cursor up to sequence (never back)."""
        ...
    def add_notification_deliveries(self, deliveries: list[NotificationDelivery]) -> int:
        """Inserts those not already there (by subscription and event sequence); how many."""
        ...
    def due_notification_deliveries(self, subscription_id: str, now_us: int, limit: int) -> list[NotificationDelivery]:
        """The subscription's owed deliveries whose next attempt is due, soonest first."""
        ...
    def put_notification_attempt(self, delivery: NotificationDelivery, now_us: int) -> None:
        """Records an attempt's outcome (state, attempts, next_attempt_time, last_error) on a
        delivery still owed."""
        ...
    def owed_notification_deliveries(self) -> dict[str, tuple[int, int | None]]:
        """By target kind of every subscription: how many deliveries are owed, and the
        create_time of the oldest (None when none is)."""
        ...
    def list_notification_subscriptions(self, project_id: str | None, after_id: str,
                                         limit: int) -> list[NotificationSubscription]:
        """By id, after after_id: a project's ("" the instance's), or every one (None)."""
        ...
    def get_notification_delivery(self, delivery_id: str) -> NotificationDelivery | None: ...
    def put_notification_delivery(self, delivery: NotificationDelivery) -> None:
        """Writes every field of an existing delivery but its id and subscription: a digest's
        growing body, a redelivery owed anew."""
        ...
    def list_notification_deliveries(self, subscription_id: str, states: list[tuple[int, bool | None]],
                                     after: DeliveryKey | None, limit: int) -> list[NotificationDelivery]:
        """The subscription's deliveries, newest first, after the key. `states`: (state, attempted)
        pairs that match ("attempted" True/False tells RETRYING from PENDING, None either); empty:
        every delivery."""
        ...
    def count_notification_deliveries_since(self, subscription_id: str, since_us: int) -> int:
        """How many deliveries of events and digests (not tests) were created at since_us or later:
        a subscription's rate against its cap."""
        ...
    def open_notification_digest(self, subscription_id: str) -> NotificationDelivery | None:
        """The subscription's digest still collecting events: owed, never attempted."""
        ...
    def delete_notification_deliveries_before(self, before_us: int, limit: int) -> int:
        """Removes up to limit deliveries delivered or dead whose state last changed before
        before_us, oldest first; how many."""
        ...

    # Retention (pruner.py; store/retention_rows.py has them for every database).
    def due_work_orders(self, project_id: str, status: int, before_us: int, limit: int) -> list[str]:
        """Up to `limit` of a project's work orders of `status` last changed before `before_us`,
        oldest change first, none with a run pending or running: their ids."""
        ...
    def delete_work_orders(self, ids: Sequence[str]) -> int:
        """Deletes the work orders with their runs, step runs and events; raises the event log's
        horizon to the highest event sequence deleted, and returns it (0: none)."""
        ...
    def event_log_horizon(self) -> int:
        """The highest event sequence retention deleted (0: none)."""
        ...
    def delete_events_through(self, sequence: int, limit: int) -> int:
        """Deletes up to `limit` events at or below `sequence`, oldest first; how many."""
        ...
    def lowest_notification_cursor(self) -> int | None:
        """How far in the event log the notifications' least advanced subscription has scanned."""
        ...
    def payload_erase_mark(self, project_id: str) -> ChangeKey:
        """Where payload erasure stopped in the project's work orders ((0, 0): at the start)."""
        ...
    def put_payload_erase_mark(self, project_id: str, mark: ChangeKey) -> None: ...
    def work_orders_changed(self, project_id: str, after: ChangeKey, before_us: int,
                            limit: int) -> list[tuple[WorkOrder, ChangeKey]]:
        """Up to `limit` of a project's work orders last changed after `after` and before
        `before_us`, by (update_time, seq), each with its position; locked to be changed."""
        ...


class Store(Protocol):
    """Runs units of work. Writes are atomic and durable before `write` returns."""

    # How much one write should take on, for a caller that splits a long job into writes (the
    # pages of a bulk retry, the sweeper's passes): each backend's hint, for how it runs writes.
    batch_size: int  # rows a write changes through the domain (runs retried, lost or killed)
    delete_batch_size: int  # rows a write only deletes (kept answers pruned)

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def write(self, fn: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Runs fn(tx, *args, **kwargs) as one atomic, durable unit of work (see the module's
        docstring for the whole contract)."""
        ...
    async def read(self, fn: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A point read: a few rows by key. May run on the event loop itself."""
        ...
    async def scan(self, fn: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A read that may walk many rows (lists, counts, event pages): never on the loop."""
        ...
    def scan_now(self, fn: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A scan for a thread that is not the event loop's (the metrics server's): blocks."""
    def add_commit_listener(self, listener: Callable[[], None]) -> None:
        """Called on the event loop after each commit, this process's or (for a database that
        several servers share) another's: new events may be in the log."""
    def add_commit_size_listener(self, listener: Callable[[int], None]) -> None:
        """Called on the event loop with how many writes each COMMIT held, tried or done, where
        a backend commits several writes together (SQLite's group commit; each PostgreSQL write
        commits alone, and tells nothing)."""
    async def lead(self) -> bool:
        """Whether this process may sweep now (expire leases, kill overdue runs, prune kept
        answers). One process at a time among those sharing the database; asked before each pass."""
        ...
    def add_fault_listener(self, listener: Callable[[str], None]) -> None:
        """Called on the event loop with a reason when the store can no longer write the
        database it opened (its file was deleted or replaced), and with "" once it can again."""
