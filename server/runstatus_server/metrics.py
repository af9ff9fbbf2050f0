"""Prometheus metrics: RPCs by method and code, their latency, run status changes, lease
expiries, commit batch sizes, and work orders by status.

Counts of committed changes are taken after the COMMIT that holds them (`Tx.after_commit`),
so a rolled-back write is never counted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from runstatus.v1.status_pb2 import RunStatus

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
COMMIT_BATCH = Histogram(
    "runstatus_commit_batch_size", "Writes per durable COMMIT (group commit).", registry=REGISTRY,
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)


def status_label(status: int) -> str:
    return RunStatus.Name(status).removeprefix("RUN_STATUS_").lower() if status in RunStatus.values() else "unknown"


class WorkOrdersByStatus(Collector):
    """A gauge read from the work_order_counts buckets at scrape time."""

    def __init__(self, db: str) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("runstatus_work_orders", "Work orders by status (their latest run's).",
                                  labels=["status"])
        conn = sqlite3.connect(self.db, timeout=5)  # a plain path: a URI would misread "?" or "#" in it
        conn.execute("PRAGMA query_only = 1")
        try:
            for status, n in conn.execute("SELECT status, sum(n) FROM work_order_counts GROUP BY status"):
                gauge.add_metric([status_label(status)], n)
        finally:
            conn.close()
        yield gauge


def serve(host: str, port: int, db: str) -> None:
    REGISTRY.register(WorkOrdersByStatus(db))
    start_http_server(port, addr=host, registry=REGISTRY)
