"""StatsService.GetWorkOrderStats (issue 31) over a real server, on both backends: known work
orders and runs give known counts per bucket, rates, percentiles and top errors; bad windows are
INVALID_ARGUMENT with a BadRequest naming the field."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
from datetime import datetime, timezone
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from harness import RUNTIME, Client, ServerProcess, error, eventually, fields, rpc_error
from runstatus.v1 import stats_service_pb2 as stats_pb
from runstatus.v1 import stats_service_pb2_grpc as stats_grpc
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1.stats_service_pb2 import StatsBucket
from runstatus.v1.status_pb2 import ErrorType, RunStatus

S = RunStatus
MINUTE, HOUR, DAY = StatsBucket.STATS_BUCKET_MINUTE, StatsBucket.STATS_BUCKET_HOUR, StatsBucket.STATS_BUCKET_DAY


def ts(seconds: float) -> Timestamp:
    t = Timestamp()
    t.FromMicroseconds(int(seconds * 1e6))
    return t


def stats(client: Client, **kw: Any) -> stats_pb.GetWorkOrderStatsResponse:
    stub = stats_grpc.StatsServiceStub(client.channel)
    return stub.GetWorkOrderStats(stats_pb.GetWorkOrderStatsRequest(project_id=client.project_id, **kw))


def by_status(counts: Any) -> dict[int, int]:
    return {c.status: c.count for c in counts}


def nearest_rank(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, -int(-fraction * len(ordered) // 1)) - 1]


@pytest.fixture(scope="module")
def known(server: ServerProcess) -> dict[str, Any]:
    """One project: workflow A with 3 SUCCESS, 2 FAILED (TypeError), 1 PENDING; workflow B with
    1 CRASHED (SyntaxError), 1 EXCEPTION (an unknown runtime error), 1 LOST (its lease expired)."""
    c = Client(server.address)
    c.new_project()
    a = c.workflow(["s"], wid="alpha")
    b = c.workflow(["s"], wid="beta")
    start = time.time()
    runs: dict[str, list[str]] = {"alpha": [], "beta": []}
    for i in range(3):
        lease = c.claim_run(c.work_order(a).run.id)
        lease.start()
        step = lease.step("s")
        time.sleep(0.02 * (i + 1))
        lease.done(step.id)
        runs["alpha"].append(lease.complete().id)
    for _ in range(2):
        lease = c.claim_run(c.work_order(a).run.id)
        lease.start()
        step = lease.step("s")
        lease.done(step.id, error("TypeError"))
        runs["alpha"].append(lease.complete().id)
    lease = c.claim_run(c.work_order(b).run.id)
    lease.start()
    lease.done(lease.step("s").id, error("SyntaxError"))
    runs["beta"].append(lease.run_id)
    lease = c.claim_run(c.work_order(b).run.id)
    lease.start()
    lease.done(lease.step("s").id, error("WorkerSocketClosed", source=RUNTIME))
    runs["beta"].append(lease.run_id)
    lost = c.claim_run(c.work_order(b).run.id)
    lost.start()
    eventually(lambda: c.work_orders.GetRun(wo_pb.GetRunRequest(run_id=lost.run_id)).run.status == S.RUN_STATUS_LOST,
               "the run's lease expired", timeout=20)
    runs["beta"].append(lost.run_id)
    c.work_order(a)  # PENDING (last: a claim would take it on the way to another)
    end = time.time()
    yield {"client": c, "start": start, "end": end, "runs": runs}
    c.close()


def test_counts_per_bucket_add_up_to_the_counts(known: dict[str, Any]) -> None:
    c: Client = known["client"]
    want = {S.RUN_STATUS_SUCCESS: 3, S.RUN_STATUS_FAILED: 2, S.RUN_STATUS_PENDING: 1, S.RUN_STATUS_CRASHED: 1,
            S.RUN_STATUS_EXCEPTION: 1, S.RUN_STATUS_LOST: 1}
    counted = c.work_orders.CountWorkOrders(wo_pb.CountWorkOrdersRequest(project_id=c.project_id))
    assert by_status(counted.counts) == want
    for bucket in (MINUTE, HOUR, DAY):
        got = stats(c, window_start=ts(known["start"] - 120), window_end=ts(known["end"] + 60), bucket=bucket)
        assert by_status(got.counts) == want, bucket
        assert got.total == 9
        summed: dict[int, int] = {}
        for b in got.buckets:
            assert b.total == sum(x.count for x in b.counts)
            for status, n in by_status(b.counts).items():
                summed[status] = summed.get(status, 0) + n
        assert summed == want
        step = {MINUTE: 60, HOUR: 3600, DAY: 86400}[bucket]
        assert got.window_start.seconds % step == 0 and got.window_end.seconds % step == 0
        assert len(got.buckets) == (got.window_end.seconds - got.window_start.seconds) // step
        assert [b.start_time.seconds for b in got.buckets] == list(
            range(got.window_start.seconds, got.window_end.seconds, step))


def test_per_workflow_rates_and_percentiles(known: dict[str, Any]) -> None:
    c: Client = known["client"]
    got = stats(c, window_start=ts(known["start"] - 120), window_end=ts(known["end"] + 60), bucket=MINUTE)
    flows = {w.workflow_id: w for w in got.workflows}
    assert [w.workflow_id for w in got.workflows] == ["alpha", "beta"]  # most work orders first
    alpha, beta = flows["alpha"], flows["beta"]
    assert (alpha.total, alpha.ended) == (6, 5)
    assert alpha.success_rate == pytest.approx(3 / 5)
    assert (beta.total, beta.ended, beta.success_rate) == (3, 3, 0.0)
    assert (beta.lost_count, beta.exception_count) == (1, 1)
    assert (alpha.lost_count, alpha.exception_count) == (0, 0)
    assert sum(alpha.bucket_totals) == 6 and len(alpha.bucket_totals) == len(got.buckets)
    assert sum(alpha.bucket_failures) == 2 and sum(beta.bucket_failures) == 3
    # Durations: every run of alpha started and ended; of beta, those too (LOST after its start
    # ends when its lease expired). The histogram answers within 10% of the exact percentile.
    for name, flow in flows.items():
        durations = []
        for run_id in known["runs"][name]:
            run = c.work_orders.GetRun(wo_pb.GetRunRequest(run_id=run_id)).run
            durations.append((run.end_time.ToMicroseconds() - run.start_time.ToMicroseconds()) / 1e6)
        assert flow.timed_runs == len(durations)
        for fraction, answered in ((0.5, flow.run_duration_p50), (0.95, flow.run_duration_p95)):
            exact = nearest_rank(durations, fraction)
            assert answered.ToMicroseconds() / 1e6 == pytest.approx(exact, rel=0.1), (name, fraction, durations)
    # The same numbers by hour (buckets instead of rows).
    by_hour = stats(c, window_start=ts(known["start"] - 120), window_end=ts(known["end"] + 60), bucket=HOUR)
    assert [(w.workflow_id, w.total, w.ended, w.timed_runs, w.run_duration_p50, w.run_duration_p95)
            for w in by_hour.workflows] == [(w.workflow_id, w.total, w.ended, w.timed_runs, w.run_duration_p50,
                                              w.run_duration_p95) for w in got.workflows]
    assert list(by_hour.top_errors) == list(got.top_errors)


def test_top_errors_with_their_rules(known: dict[str, Any]) -> None:
    c: Client = known["client"]
    got = stats(c, window_start=ts(known["start"] - 120), window_end=ts(known["end"] + 60))
    top = [(e.error_type, e.rule, e.status, e.count) for e in got.top_errors]
    assert top[0] == (ErrorType.ERROR_TYPE_TYPE_ERROR, "seed:TypeError", S.RUN_STATUS_FAILED, 2)
    rest = {(e.status, e.error_type) for e in got.top_errors[1:]}
    assert (S.RUN_STATUS_CRASHED, ErrorType.ERROR_TYPE_SYNTAX_ERROR) in rest
    assert {e.status for e in got.top_errors} == {S.RUN_STATUS_FAILED, S.RUN_STATUS_CRASHED,
                                                  S.RUN_STATUS_EXCEPTION, S.RUN_STATUS_LOST}
    assert sum(e.count for e in got.top_errors) == 5
    assert len(stats(c, window_start=ts(known["start"] - 120), top_errors=1).top_errors) == 1
    # One workflow only.
    beta = stats(c, window_start=ts(known["start"] - 120), workflow_id="beta")
    assert [w.workflow_id for w in beta.workflows] == ["beta"] and beta.total == 3
    assert sum(e.count for e in beta.top_errors) == 3


def test_a_window_with_nothing_in_it(known: dict[str, Any]) -> None:
    """Before anything was created (or past what retention kept): every bucket, all zero."""
    c: Client = known["client"]
    got = stats(c, window_start=ts(978307200), window_end=ts(978307200 + 7 * 86400), bucket=HOUR)
    assert len(got.buckets) == 168 and all(b.total == 0 for b in got.buckets)
    assert (got.total, list(got.workflows), list(got.top_errors)) == (0, [], [])
    assert stats(c, window_start=ts(known["start"] - 120), workflow_id="nope").total == 0


def test_bad_windows_are_invalid_arguments(known: dict[str, Any]) -> None:
    c: Client = known["client"]
    now = time.time()
    call = stats_grpc.StatsServiceStub(c.channel).GetWorkOrderStats

    def bad(**kw: Any) -> list[str]:
        return fields(rpc_error(call, stats_pb.GetWorkOrderStatsRequest(project_id=c.project_id, **kw)))

    assert bad(window_start=ts(now), window_end=ts(now)) == ["window_end"]  # empty
    assert bad(window_start=ts(now), window_end=ts(now - 3600)) == ["window_end"]  # inverted
    assert bad(window_start=ts(now - 2 * 86400), window_end=ts(now), bucket=MINUTE) == ["bucket"]  # 2880 buckets
    assert bad(window_start=ts(now - 61 * 86400), window_end=ts(now), bucket=HOUR) == ["bucket"]
    assert bad(bucket=17) == ["bucket"]
    assert bad(top_errors=101) == ["top_errors"]
    assert bad(window_start=ts(now), window_end=ts(now), top_errors=-1) == ["window_end", "top_errors"]
    # The last valid second, 9999-12-31T23:59:59Z: its bucket would end in year 10000, which no
    # Timestamp in the answer can say (it was INTERNAL).
    assert bad(window_end=ts(253402300799)) == ["window_end"]
    assert bad(window_end=ts(253402300799), bucket=DAY) == ["window_end"]
    e = rpc_error(call, stats_pb.GetWorkOrderStatsRequest(project_id="no-such-project"))
    assert e.code() == grpc.StatusCode.NOT_FOUND
    # A day by minute, 60 days by hour: the most a window holds (rounded out to whole buckets from a
    # time within a minute or an hour: one more, partly outside).
    day = stats(c, window_start=ts(now - 86400), window_end=ts(now), bucket=MINUTE)
    assert len(day.buckets) in (1440, 1441) and day.buckets[-1].start_time.seconds <= now
    assert len(stats(c, window_start=ts(now - 60 * 86400), window_end=ts(now), bucket=HOUR).buckets) in (1440, 1441)


# `runstatus stats`: the same answer in the terminal.

def cli(server: ServerProcess, project: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RUNSTATUS_ADDRESS": server.address, "RUNSTATUS_PROJECT": project, "COLUMNS": "200"}
    return subprocess.run([str(pathlib.Path(sys.executable).with_name("runstatus")), *args], capture_output=True,
                          text=True, env=env, timeout=60)


def test_the_cli_prints_the_table_and_its_json_is_the_rpc_answer(known: dict[str, Any], server: ServerProcess) -> None:
    c: Client = known["client"]
    since = datetime.fromtimestamp(known["start"] - 120, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    until = datetime.fromtimestamp(known["end"] + 60, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    done = cli(server, c.project_id, "stats", "--since", since, "--until", until, "--bucket", "minute", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    rpc = stats(c, window_start=ts(datetime.fromisoformat(since).replace(tzinfo=timezone.utc).timestamp()),
                window_end=ts(datetime.fromisoformat(until).replace(tzinfo=timezone.utc).timestamp()), bucket=MINUTE)
    assert answer["total"] == rpc.total == 9
    assert [w["workflow_id"] for w in answer["workflows"]] == ["alpha", "beta"]
    assert answer["bucket"] == "STATS_BUCKET_MINUTE" and len(answer["buckets"]) == len(rpc.buckets)
    assert answer["top_errors"][0] == {"error_type": "ERROR_TYPE_TYPE_ERROR", "rule": "seed:TypeError",
                                       "status": "RUN_STATUS_FAILED", "count": 2}
    table = cli(server, c.project_id, "stats", "--since", since, "--until", until, "--bucket", "minute")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith("9 work orders created")
    success = next(line for line in lines if "Success" in line)
    assert any(ch in success for ch in "▁▂▃▄▅▆▇█") and success.rstrip().endswith("3")
    alpha = next(line for line in lines if line.lstrip().startswith("alpha"))
    assert "60%" in alpha  # 3 of 5 ended
    assert any("seed:TypeError" in line for line in lines)
    bad = cli(server, c.project_id, "stats", "--bucket", "week")
    assert bad.returncode == 2 and "--bucket" in bad.stderr
    refused = cli(server, c.project_id, "stats", "--window", "3d", "--bucket", "minute")
    assert refused.returncode == 1 and "bucket" in refused.stderr
