"""The rows retention reads and deletes (pruner.py), for every database: a part of `Rows`
(rows.py) kept apart. The schema is migration 10 of SQLite's (7 of PostgreSQL's)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from runstatus.v1.work_order_pb2 import WorkOrder

from .base import PENDING, RUNNING, ChangeKey


class RetentionRows:
    """Mixed into Rows, whose statement helpers it uses."""

    MARK: ClassVar[str]
    # The index a planner should take to find a project's work orders of one status by their
    # last change ("" where the planner needs no hint).
    STATUS_UPDATE_INDEX: ClassVar[str] = ""
    UPDATE_INDEX: ClassVar[str] = ""
    _lock: str
    _skip_locked: str

    if TYPE_CHECKING:  # Rows's statement helpers, declared for the type checker only
        def _rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]: ...
        def _one(self, sql: str, *args: Any) -> Any: ...
        def _run(self, sql: str, *args: Any) -> int: ...
        def _send(self, sql: str, *args: Any) -> None: ...
        def _marks(self, values: Sequence[Any]) -> str: ...
        def _read_text(self, value: str) -> str: ...

    def due_work_orders(self, project_id: str, status: int, before_us: int, limit: int) -> list[str]:
        """Up to `limit` of a project's work orders of `status` last changed before `before_us`,
        oldest change first, none with a run pending or running: their ids. Locked where writers
        run side by side (one another transaction holds is left for the next pass)."""
        m = self.MARK
        rows = self._rows(
            f"SELECT id FROM work_orders{self.STATUS_UPDATE_INDEX} WHERE project_id = {m} AND status = {m} "
            f"AND update_time < {m} AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.work_order_id = work_orders.id "
            f"AND runs.status IN ({PENDING}, {RUNNING})) ORDER BY update_time LIMIT {m}{self._skip_locked}",
            project_id, status, before_us, limit,
        )
        return [self._read_text(r[0]) for r in rows]

    def delete_work_orders(self, ids: Sequence[str]) -> int:
        """Deletes the work orders with their runs, step runs and events (the count buckets
        follow, by the work_orders triggers); raises the event log's horizon to the highest
        event sequence deleted, and returns it (0: none)."""
        if not ids:
            return 0
        within = f"IN ({self._marks(ids)})"
        top = int(self._one(f"SELECT coalesce(max(seq), 0) FROM events WHERE work_order_id {within}", *ids))
        self._send(f"DELETE FROM events WHERE work_order_id {within}", *ids)
        self._send(f"DELETE FROM step_runs WHERE run_id IN (SELECT id FROM runs WHERE work_order_id {within})", *ids)
        self._send(f"DELETE FROM runs WHERE work_order_id {within}", *ids)
        self._send(f"DELETE FROM work_orders WHERE id {within}", *ids)
        if top:
            self.raise_event_log_horizon(top)
        return top

    # The event log's horizon: the highest sequence retention deleted.
    def event_log_horizon(self) -> int:
        return int(self._one("SELECT coalesce(max(pruned_through), 0) FROM event_log_horizon") or 0)

    def raise_event_log_horizon(self, sequence: int) -> None:
        m = self.MARK
        self._send(f"UPDATE event_log_horizon SET pruned_through = {m} WHERE pruned_through < {m}", sequence, sequence)

    def delete_events_through(self, sequence: int, limit: int) -> int:
        """Deletes up to `limit` events at or below `sequence`, oldest first; how many."""
        m = self.MARK
        return self._run(f"DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq <= {m} "
                         f"ORDER BY seq LIMIT {m})", sequence, limit)

    def lowest_notification_cursor(self) -> int | None:
        """How far in the event log the notifications' least advanced subscription has scanned."""
        found = self._one("SELECT min(scan_cursor) FROM notification_subscriptions")
        return int(found) if found is not None else None

    # Payload erasure walks each project's work orders by their last change, once.
    def payload_erase_mark(self, project_id: str) -> ChangeKey:
        m = self.MARK
        found = self._rows(f"SELECT update_time, seq FROM payload_erase_marks WHERE project_id = {m}", project_id)
        return (int(found[0][0]), int(found[0][1])) if found else (0, 0)

    def put_payload_erase_mark(self, project_id: str, mark: ChangeKey) -> None:
        m = self.MARK
        self._send(f"INSERT INTO payload_erase_marks (project_id, update_time, seq) VALUES ({m}, {m}, {m}) "
                  "ON CONFLICT (project_id) DO UPDATE SET update_time = excluded.update_time, seq = excluded.seq",
                  project_id, *mark)

    def work_orders_changed(self, project_id: str, after: ChangeKey, before_us: int,
                            limit: int) -> list[tuple[WorkOrder, ChangeKey]]:
        """Up to `limit` of a project's work orders last changed after `after` and before
        `before_us`, by (update_time, seq), each with its position; locked to be changed."""
        m = self.MARK
        rows = self._rows(
            f"SELECT update_time, seq, data FROM work_orders{self.UPDATE_INDEX} WHERE project_id = {m} "
            f"AND update_time >= {m} AND update_time < {m} AND (update_time > {m} OR seq > {m}) "
            f"ORDER BY update_time, seq LIMIT {m}{self._lock}",
            project_id, after[0], before_us, after[0], after[1], limit,
        )
        return [(WorkOrder.FromString(data), (int(t), int(seq))) for t, seq, data in rows]
