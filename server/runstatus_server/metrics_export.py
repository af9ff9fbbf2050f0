"""The Prometheus metrics (metrics.py) over OTLP too (issue 32): with --otel and
OTEL_METRICS_EXPORTER=otlp, a thread reads the registry the /metrics page shows every
OTEL_METRIC_EXPORT_INTERVAL ms (default 60000) and sends it with the SDK's OTLP/gRPC metric
exporter (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT, _HEADERS,
_TIMEOUT, _INSECURE...), once more as the server stops. The page stays what it is.

One registry, two views of it, so the figures agree: a counter is a cumulative monotonic Sum
(named as its family, without `_total`; from the time its `_created` sample gives), a gauge a
Gauge, a histogram a cumulative Histogram with the same bounds (Prometheus's buckets count
everything up to their bound; OTLP's each count their own share). Names and labels are
Prometheus's, so a dashboard reads the same series through either. (Families of other types,
summaries, info and state sets, are left out: the registry has none.)
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client.registry import CollectorRegistry

log = logging.getLogger("runstatus.metrics")

DEFAULT_INTERVAL_MS = 60_000
STOP_SECONDS = 5
_NS = 1_000_000_000


def wanted() -> bool:
    """OTLP metrics are asked for: OTEL_METRICS_EXPORTER names otlp (off unless it does)."""
    return "otlp" in [name.strip().lower() for name in os.environ.get("OTEL_METRICS_EXPORTER", "").split(",")]


def interval_seconds() -> float:
    """OTEL_METRIC_EXPORT_INTERVAL in seconds: 0.1 s to a day; the default for anything else."""
    raw = os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", "")
    try:
        ms = float(raw) if raw else DEFAULT_INTERVAL_MS
    except ValueError:
        ms = math.nan
    if not 100 <= ms <= 86_400_000:  # NaN too
        log.warning("OTEL_METRIC_EXPORT_INTERVAL is not milliseconds from 100 to 86400000; %d it is",
                    DEFAULT_INTERVAL_MS, extra={"value": raw})
        ms = DEFAULT_INTERVAL_MS
    return ms / 1000


def _labels(sample: Any, leave_out: str = "") -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in sample.labels.items() if k != leave_out))


def metrics_data(families: Iterable[Any], resource: Any, now_ns: int, start_ns: int) -> Any:
    """The families a registry collected, as the SDK's MetricsData (what its exporters send)."""
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, MetricsData, NumberDataPoint,
        ResourceMetrics, ScopeMetrics, Sum,
    )
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    cumulative = AggregationTemporality.CUMULATIVE
    metrics = []
    for family in families:
        created = {_labels(s): int(s.value * _NS) for s in family.samples if s.name == f"{family.name}_created"}
        data: Any = None
        if family.type == "counter":
            data = Sum([NumberDataPoint(dict(key), created.get(key, start_ns), now_ns, s.value)
                        for s in family.samples if s.name == f"{family.name}_total" for key in [_labels(s)]],
                       cumulative, True)
        elif family.type in ("gauge", "unknown"):
            data = Gauge([NumberDataPoint(dict(_labels(s)), 0, now_ns, s.value)
                          for s in family.samples if s.name == family.name])
        elif family.type == "histogram":
            series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
            for s in family.samples:
                key = _labels(s, leave_out="le")
                one = series.setdefault(key, {"buckets": [], "count": 0, "sum": 0.0})
                if s.name == f"{family.name}_bucket":
                    one["buckets"].append((float(s.labels["le"]), s.value))
                elif s.name == f"{family.name}_count":
                    one["count"] = int(s.value)
                elif s.name == f"{family.name}_sum":
                    one["sum"] = s.value
            points = []
            for key, one in series.items():
                buckets = sorted(one["buckets"])
                if not buckets or buckets[-1][0] != math.inf:  # OTLP's last bucket is the one past every bound
                    buckets.append((math.inf, one["count"]))
                counts = [int(n - below) for (_, n), (_, below) in zip(buckets, [(0.0, 0.0)] + buckets)]
                bounds = [bound for bound, _ in buckets if bound != math.inf]
                points.append(HistogramDataPoint(dict(key), created.get(key, start_ns), now_ns, one["count"], one["sum"],
                                                 counts, bounds, None, None))  # type: ignore[arg-type]  # none known
            data = Histogram(points, cumulative)
        if data is not None and data.data_points:
            metrics.append(Metric(family.name, family.documentation, family.unit or "", data))
    scope = InstrumentationScope("runstatus.server")
    return MetricsData([ResourceMetrics(resource, [ScopeMetrics(scope, metrics, "")], "")])


class MetricsExporter:
    """Sends the registry over OTLP every interval, on a thread of its own (a collect reads the
    store's gauges through a reader thread, and the export may wait on the network)."""

    def __init__(self, registry: CollectorRegistry, resource: Any, exporter: Any = None) -> None:
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

            exporter = OTLPMetricExporter()
        self._registry, self._resource, self._exporter = registry, resource, exporter
        self._interval = interval_seconds()
        self._start_ns = time.time_ns()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="runstatus-otlp-metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("metrics over OTLP on", extra={"interval_seconds": self._interval})

    def export(self) -> None:
        try:
            self._exporter.export(metrics_data(self._registry.collect(), self._resource, time.time_ns(),
                                               self._start_ns))
        except Exception:  # noqa: BLE001 - the next interval tries again
            log.warning("cannot export metrics over OTLP", exc_info=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.export()
        self.export()  # the last figures, at the stop

    def stop(self) -> None:
        """Sends the last figures (waiting STOP_SECONDS at most: a collector that is down must
        not hold the server's stop), then closes the exporter's channel."""
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=STOP_SECONDS)
            if self._thread.is_alive():
                log.warning("the last metrics were not sent over OTLP within %d s of the stop", STOP_SECONDS)
        self._exporter.shutdown(timeout_millis=1000)
