"""StatsService's answer (issue 31): a project's work orders over a window of time by bucket, by
workflow and by error, from the buckets store/stats.py reads."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.duration_pb2 import Duration

from runstatus.v1 import stats_service_pb2 as pb
from runstatus.v1.stats_service_pb2 import StatsBucket
from runstatus.v1.status_pb2 import RunStatus
from runstatus.v1.work_order_service_pb2 import StatusCount

from . import projects
from .errors import InvalidArgument
from .rules import LOST, SUCCESS
from .store import stats as rows
from .store.base import Tx
from .util import timestamp

EXCEPTION = RunStatus.RUN_STATUS_EXCEPTION
BUCKET_US = {
    StatsBucket.STATS_BUCKET_MINUTE: rows.MINUTE_US,
    StatsBucket.STATS_BUCKET_HOUR: rows.HOUR_US,
    StatsBucket.STATS_BUCKET_DAY: rows.DAY_US,
}
DEFAULT_WINDOW_US = 24 * rows.HOUR_US
DEFAULT_TOP_ERRORS = 10
MAX_TOP_ERRORS = 100


@dataclass(frozen=True)
class Window:
    project_id: str
    workflow_id: str
    start_us: int
    end_us: int
    bucket: StatsBucket.ValueType
    top_errors: int

    @property
    def bucket_us(self) -> int:
        return BUCKET_US[self.bucket]

    @property
    def count(self) -> int:
        return (self.end_us - self.start_us) // self.bucket_us


TIMESTAMP_END_US = 253402300800 * 1_000_000  # 10000-01-01T00:00:00Z: a Timestamp stays before it


def window(request: pb.GetWorkOrderStatsRequest, now_us: int) -> Window:
    """The request's window, rounded out to whole buckets; INVALID_ARGUMENT (every wrong field
    named) for an empty or inverted window, too many buckets, an unknown bucket size."""
    violations: list[tuple[str, str]] = []
    bucket = request.bucket or StatsBucket.STATS_BUCKET_HOUR
    if bucket not in BUCKET_US:
        violations.append(("bucket", "must be one of STATS_BUCKET_MINUTE, STATS_BUCKET_HOUR, STATS_BUCKET_DAY"))
        bucket = StatsBucket.STATS_BUCKET_HOUR
    for name in ("window_start", "window_end"):
        if request.HasField(name):
            ts = getattr(request, name)
            if not (0 <= ts.seconds < TIMESTAMP_END_US // 1_000_000 and 0 <= ts.nanos < 1_000_000_000):
                violations.append((name, "must be a valid timestamp"))
    if violations:
        raise InvalidArgument(violations)
    end = request.window_end.ToMicroseconds() if request.HasField("window_end") else now_us
    start = request.window_start.ToMicroseconds() if request.HasField("window_start") else end - DEFAULT_WINDOW_US
    if end <= start:
        field = "window_end" if request.HasField("window_end") else "window_start"
        violations.append((field, "must be after window_start: the window holds no time"))
    size = BUCKET_US[bucket]
    # The window's length in buckets, as asked: rounded out to whole buckets it may span one more
    # (the last 24 hours by minute, from a time within a minute: 1441 buckets, the first and the
    # last partly before and after the window asked for).
    if end > start and -(-(end - start) // size) > rows.MAX_BUCKETS:
        violations.append(("bucket", f"gives {-(-(end - start) // size)} buckets over the window; at most "
                                     f"{rows.MAX_BUCKETS}: a larger bucket or a shorter window"))
    start, end = start // size * size, -(-end // size) * size
    if end >= TIMESTAMP_END_US:  # the answer's window_end would be no valid timestamp
        violations.append(("window_end", "rounded up to a whole bucket, must stay before year 10000"))
    if len(request.workflow_id) > 256:
        violations.append(("workflow_id", "must be at most 256 characters"))
    if len(request.project_id) > 256:
        violations.append(("project_id", "must be at most 256 characters"))
    if not 0 <= request.top_errors <= MAX_TOP_ERRORS:
        violations.append(("top_errors", f"must be between 0 and {MAX_TOP_ERRORS}"))
    if violations:
        raise InvalidArgument(violations)
    return Window(request.project_id, request.workflow_id, start, end, bucket,
                  request.top_errors or DEFAULT_TOP_ERRORS)


def percentile_us(histogram: dict[int, int], fraction: float) -> int:
    """The nearest-rank percentile of a duration histogram, as its bucket's middle."""
    total = sum(histogram.values())
    if not total:
        return 0
    rank = max(1, -int(-fraction * total // 1))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return rows.bucket_middle_us(bucket)
    return rows.bucket_middle_us(max(histogram))


def _counts(counts: list[int]) -> list[StatusCount]:
    """Counts in rows.STATUSES order, as the statuses that have some."""
    return [StatusCount(status=s, count=n) for s, n in zip(rows.STATUSES, counts) if n]  # type: ignore[arg-type]


def _duration(us: int) -> Duration:
    d = Duration()
    d.FromMicroseconds(us)
    return d


def compute(tx: Tx, w: Window) -> pb.GetWorkOrderStatsResponse:
    project = projects.get(tx, w.project_id)
    found = rows.read_window(tx, project.id, w.workflow_id, w.start_us, w.end_us, w.bucket_us)
    n = w.count
    width = len(rows.STATUSES)
    buckets = [found.buckets.get(i, [0] * width) for i in range(n)]
    per_workflow = found.workflows
    spark: dict[str, list[int]] = {}
    failures: dict[str, list[int]] = {}
    for workflow in per_workflow:
        totals_, failed_ = [0] * n, [0] * n
        for index, (total, failed) in found.sparks.get(workflow, {}).items():
            if 0 <= index < n:
                totals_[index], failed_[index] = total, failed
        spark[workflow], failures[workflow] = totals_, failed_
    histograms: dict[str, dict[int, int]] = {}
    for (workflow, bucket), count in found.durations.items():
        histograms.setdefault(workflow, {})[bucket] = count
    totals = [sum(b[i] for b in buckets) for i in range(width)]
    answer = pb.GetWorkOrderStatsResponse(
        window_start=timestamp(w.start_us), window_end=timestamp(w.end_us), bucket=w.bucket,
        counts=_counts(totals), total=sum(totals),
    )
    for i, counts in enumerate(buckets):
        answer.buckets.add(start_time=timestamp(w.start_us + i * w.bucket_us), counts=_counts(counts),
                           total=sum(counts))
    for workflow in sorted(per_workflow, key=lambda wf: (-sum(per_workflow[wf]), wf)):
        mine = per_workflow[workflow]
        by_status = dict(zip(rows.STATUSES, mine))
        ended = sum(c for s, c in by_status.items() if s in rows.ENDED)
        histogram = histograms.get(workflow, {})
        answer.workflows.add(
            workflow_id=workflow, counts=_counts(mine), total=sum(mine), ended=ended,
            success_rate=by_status.get(SUCCESS, 0) / ended if ended else 0.0,
            run_duration_p50=_duration(percentile_us(histogram, 0.50)),
            run_duration_p95=_duration(percentile_us(histogram, 0.95)),
            timed_runs=sum(histogram.values()), lost_count=by_status.get(LOST, 0),
            exception_count=by_status.get(EXCEPTION, 0), bucket_totals=spark[workflow],
            bucket_failures=failures[workflow],
        )
    top = sorted(found.errors.items(), key=lambda item: (-item[1], item[0]))[:w.top_errors]
    for (status, error_type, rule), count in top:
        answer.top_errors.add(error_type=error_type, rule=rule, status=status, count=count)
    return answer
