"""The Prometheus registry as OTLP metrics (metrics_export.metrics_data, issue 32): what the SDK's
exporter would send, decoded from its own encoding, says what the /metrics page says: counters
as cumulative monotonic sums from their creation, gauges as gauges, histograms with the same
bounds and each bucket's own count. (tests/test_collector.py sends a server's through a real
collector.)"""

from __future__ import annotations

import time

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from runstatus_server import metrics_export


def exported(registry: CollectorRegistry, start_ns: int = 1) -> dict[str, object]:
    data = metrics_export.metrics_data(registry.collect(), Resource.create({"service.name": "t"}),
                                       time.time_ns(), start_ns)
    request = encode_metrics(data)  # the SDK's own encoding, as its exporter sends it
    (resource,) = request.resource_metrics
    assert {kv.key: kv.value.string_value for kv in resource.resource.attributes}["service.name"] == "t"
    (scope,) = resource.scope_metrics
    return {m.name: m for m in scope.metrics}


def labels(point: object) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in point.attributes}  # type: ignore[attr-defined]


def test_counters_gauges_and_histograms_say_what_prometheus_says() -> None:
    registry = CollectorRegistry()
    began = time.time_ns()
    calls = Counter("t_calls", "Calls.", ["method"], registry=registry)
    calls.labels("Create").inc(3)
    calls.labels("Get").inc()
    Gauge("t_open", "Open.", registry=registry).set(7)
    latency = Histogram("t_seconds", "Latency.", ["method"], buckets=(0.1, 1, 10), registry=registry)
    for seconds in (0.05, 0.5, 0.5, 5, 50):
        latency.labels("Create").observe(seconds)
    got = exported(registry)

    counter = got["t_calls"]
    assert counter.sum.is_monotonic and counter.sum.aggregation_temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    by_method = {labels(p)["method"]: p for p in counter.sum.data_points}
    assert {m: p.as_double for m, p in by_method.items()} == {"Create": 3.0, "Get": 1.0}
    assert all(began - 1_000_000_000 <= p.start_time_unix_nano <= p.time_unix_nano for p in by_method.values())
    assert counter.description == "Calls."

    (gauge,) = got["t_open"].gauge.data_points
    assert gauge.as_double == 7.0

    (point,) = got["t_seconds"].histogram.data_points
    assert labels(point) == {"method": "Create"}
    assert list(point.explicit_bounds) == [0.1, 1.0, 10.0]
    assert list(point.bucket_counts) == [1, 2, 1, 1]  # each bucket its own share; the last, past 10
    assert (point.count, point.sum) == (5, 56.05)
    assert not point.HasField("min") and not point.HasField("max")  # Prometheus keeps neither


def test_a_series_never_touched_is_left_out_and_an_empty_registry_sends_no_metric() -> None:
    registry = CollectorRegistry()
    Counter("t_unused", "Has labels, none used.", ["kind"], registry=registry)
    assert exported(registry) == {}


def test_otlp_metrics_are_asked_for_by_otel_metrics_exporter_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_METRICS_EXPORTER", raising=False)
    assert not metrics_export.wanted()
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    assert not metrics_export.wanted()
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus, OTLP")
    assert metrics_export.wanted()
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "250")
    assert metrics_export.interval_seconds() == 0.25


def test_one_resource_a_process_with_an_instance_id_unless_the_environment_names_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from runstatus_server import tracing

    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.setattr(tracing, "_resource", None)
    one = tracing.resource()
    assert tracing.resource() is one  # the spans' and the metrics' alike
    assert one.attributes["service.name"] == "runstatus" and one.attributes["service.instance.id"]
    monkeypatch.setattr(tracing, "_resource", None)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id = blue-1, myservice.name=x")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "scheduler")
    said = tracing.resource().attributes
    assert (said["service.instance.id"], said["service.name"]) == ("blue-1", "scheduler")


@pytest.mark.parametrize("given", ["inf", "nan", "1e300", "50", "-1", "soon"])
def test_an_export_interval_out_of_range_is_the_default(monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", given)
    assert metrics_export.interval_seconds() == 60.0


def test_a_histogram_without_its_inf_bucket_still_ends_with_the_bucket_past_its_bounds() -> None:
    from prometheus_client.core import HistogramMetricFamily

    class Custom:
        def collect(self) -> list[HistogramMetricFamily]:
            family = HistogramMetricFamily("t_custom_seconds", "No +Inf bucket.")
            family.add_sample("t_custom_seconds_bucket", {"le": "1.0"}, 2)
            family.add_sample("t_custom_seconds_count", {}, 5)
            family.add_sample("t_custom_seconds_sum", {}, 9.5)
            return [family]

    registry = CollectorRegistry()
    registry.register(Custom())  # type: ignore[arg-type]
    (point,) = exported(registry)["t_custom_seconds"].histogram.data_points
    assert (list(point.explicit_bounds), list(point.bucket_counts), point.count) == ([1.0], [2, 3], 5)


def test_a_stop_before_any_start_only_closes_the_exporter() -> None:
    closed = []

    class Exporter:
        def export(self, data: object) -> None:
            raise AssertionError("nothing is exported")

        def shutdown(self, timeout_millis: float = 0) -> None:
            closed.append(timeout_millis)

    metrics_export.MetricsExporter(CollectorRegistry(), Resource.create({}), Exporter()).stop()
    assert closed == [1000]
