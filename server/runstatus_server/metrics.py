"""Prometheus metrics: RPCs by method and code, their latency, run status changes, lease
expiries, commit batch sizes, and work orders by status.

Counts of committed changes are taken after the COMMIT that holds them (`Tx.after_commit`),
so a rolled-back write is never counted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from runstatus.v1.status_pb2 import RunStatus

if TYPE_CHECKING:
    from .store.base import Store

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
EVENT_LOG_READS = Counter("runstatus_event_log_reads", "Pages read from the event log, by reader (feed, backlog).",
                          ["reader"], registry=REGISTRY)
WATCHES = Gauge("runstatus_watches", "Watch streams open.", registry=REGISTRY)
WATCHES_CUT_OFF = Counter("runstatus_watches_cut_off", "Watches ended because their client read too slowly.",
                          registry=REGISTRY)
COMMIT_BATCH = Histogram(
    "runstatus_commit_batch_size", "Writes per durable COMMIT (group commit).", registry=REGISTRY,
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)


def status_label(status: int) -> str:
    return RunStatus.Name(status).removeprefix("RUN_STATUS_").lower() if status in RunStatus.values() else "unknown"


class WorkOrdersByStatus(Collector):
    """A gauge read through the store at scrape time (on one of its reader threads)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("runstatus_work_orders", "Work orders by status (their latest run's).",
                                  labels=["status"])
        try:
            counts = self.store.scan_now(lambda tx: tx.count_all_work_orders())
        except Exception:  # noqa: BLE001 - a scrape goes on without this gauge
            log.warning("cannot read the work order counts for metrics", exc_info=True)
            return
        for status, n in sorted(counts.items()):
            gauge.add_metric([status_label(status)], n)
        yield gauge


def serve(host: str, port: int, store: Store) -> None:
    REGISTRY.register(WorkOrdersByStatus(store))
    start_http_server(port, addr=host, registry=REGISTRY)
