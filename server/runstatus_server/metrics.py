"""Prometheus metrics: RPCs by method and code, their latency, run status changes, lease
expiries, commit batch sizes, work orders by status, and notifications (attempts, failures,
owed and the oldest owed's age).

Counts of committed changes are taken after the COMMIT that holds them (`Tx.after_commit`),
so a rolled-back write is never counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from runstatus.v1.status_pb2 import RunStatus

if TYPE_CHECKING:
    from .store.base import Store, Tx

log = logging.getLogger("runstatus.metrics")
REGISTRY = CollectorRegistry()

RPCS = Counter("runstatus_rpcs", "RPCs answered, by method and gRPC code.", ["method", "code"], registry=REGISTRY)
RPC_SECONDS = Histogram(
    "runstatus_rpc_seconds", "RPC latency, by method.", ["method"], registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
RUN_STATUS_CHANGES = Counter(
    "runstatus_run_status_changes", "Committed run status changes, by new status.", ["status"], registry=REGISTRY
)
LEASES_EXPIRED = Counter("runstatus_leases_expired", "Runs whose lease expired (made LOST).", registry=REGISTRY)
# Watches (events.py): the feed reads the log once per commit batch, whatever the watchers;
# "backlog" reads are watchers catching up from an old cursor.
EVENT_LOG_READS = Counter("runstatus_event_log_reads",
                          "Pages read from the event log, by reader (feed, backlog, notifications, admin-log).",
                          ["reader"], registry=REGISTRY)
WATCHES = Gauge("runstatus_watches", "Watch streams open.", registry=REGISTRY)
WATCHES_CUT_OFF = Counter("runstatus_watches_cut_off", "Watches ended because their client read too slowly.",
                          registry=REGISTRY)
COMMIT_BATCH = Histogram(
    "runstatus_commit_batch_size", "Writes per durable COMMIT (group commit).", registry=REGISTRY,
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
# Notifications (notifications/), by the kind of their subscription's target (webhook).
NOTIFICATION_ATTEMPTS = Counter("runstatus_notification_attempts", "Notification delivery attempts, by target kind.",
                                ["target_kind"], registry=REGISTRY)
NOTIFICATION_FAILURES = Counter("runstatus_notification_failures",
                                "Notification delivery attempts that failed (retried, or dead), by target kind.",
                                ["target_kind"], registry=REGISTRY)
NOTIFICATIONS_DEAD = Counter("runstatus_notifications_dead",
                             "Notifications given up, not delivered within the retry window, by target kind.",
                             ["target_kind"], registry=REGISTRY)

# Retention (pruner.py): ended work orders deleted, by their status; work orders whose payloads were erased.
WORK_ORDERS_PRUNED = Counter("runstatus_work_orders_pruned",
                             "Ended work orders deleted by retention (with their runs, step runs and events), by status.",
                             ["status"], registry=REGISTRY)
PAYLOADS_ERASED = Counter("runstatus_payloads_erased",
                          "Work orders whose payloads (input, outputs, error messages) retention erased.",
                          registry=REGISTRY)


def status_label(status: int) -> str:
    if status not in RunStatus.values():
        return "unknown"
    return RunStatus.Name(RunStatus.ValueType(status)).removeprefix("RUN_STATUS_").lower()


class StoreGauges(Collector):
    """Gauges read through the store at scrape time (on one of its reader threads); a scrape
    goes on without them when the database cannot be read."""

    what = ""  # what they show, for the log

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            read = self.store.scan_now(self.read)
        except Exception:  # noqa: BLE001 - the scrape goes on
            log.warning("cannot read %s for metrics", self.what, exc_info=True)
            return
        yield from self.gauges(read)

    def read(self, tx: Tx) -> Any:
        raise NotImplementedError

    def gauges(self, read: Any) -> Iterator[GaugeMetricFamily]:
        raise NotImplementedError


class WorkOrdersByStatus(StoreGauges):
    what = "the work order counts"

    def read(self, tx: Tx) -> dict[int, int]:
        return tx.count_all_work_orders()

    def gauges(self, read: dict[int, int]) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("runstatus_work_orders", "Work orders by status (their latest run's).",
                                  labels=["status"])
        for status, n in sorted(read.items()):
            gauge.add_metric([status_label(status)], n)
        yield gauge


class NotificationsOwed(StoreGauges):
    """What is owed (every server reads it from the database alike), and the age of the oldest,
    by target kind: a receiver that has been failing for long shows here."""

    what = "the notifications owed"

    def read(self, tx: Tx) -> dict[str, tuple[int, int | None]]:
        return tx.owed_notification_deliveries()

    def gauges(self, read: dict[str, tuple[int, int | None]]) -> Iterator[GaugeMetricFamily]:
        owed = GaugeMetricFamily("runstatus_notifications_owed", "Notification deliveries owed (not yet delivered "
                                 "nor dead), by target kind.", labels=["target_kind"])
        oldest = GaugeMetricFamily("runstatus_notifications_oldest_owed_seconds",
                                   "Age of the oldest notification delivery owed (0: none), by target kind.",
                                   labels=["target_kind"])
        now = time.time()
        for kind, (n, oldest_us) in sorted(read.items()):
            owed.add_metric([kind], n)
            oldest.add_metric([kind], max(0.0, now - oldest_us / 1e6) if oldest_us is not None else 0.0)
        yield owed
        yield oldest


_store_gauges: list[StoreGauges] = []


def register_store_gauges(store: Store) -> None:
    """The gauges read through the store, in the registry (once: the page and OTLP share them)."""
    if not _store_gauges:
        _store_gauges.extend([WorkOrdersByStatus(store), NotificationsOwed(store)])
        for gauges in _store_gauges:
            REGISTRY.register(gauges)


def serve(host: str, port: int, store: Store) -> None:
    register_store_gauges(store)
    start_http_server(port, addr=host, registry=REGISTRY)
