"""`runstatus stats`: a project's work orders over a window (StatsService.GetWorkOrderStats), as
the dashboard shows them: a one-line sparkline per status over the window's buckets, the table of
workflows (work orders, success rate, run duration p50/p95, LOST, EXCEPTION, a sparkline) and the
top errors with their rules; --json prints the RPC's answer as it is."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Optional

import typer
from rich.text import Text

from runstatus import _cli_output as out
from runstatus._cli_input import InputError
from runstatus.cli import JsonOption, WorkflowOption, _name, chip, client, console, print_json
from runstatus.v1.stats_service_pb2 import StatsBucket
from runstatus.v1.status_pb2 import ErrorType, RunStatus

BUCKETS = ("minute", "hour", "day")
BARS = " ▁▂▃▄▅▆▇█"
UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
ORDER = [RunStatus.RUN_STATUS_SUCCESS, RunStatus.RUN_STATUS_FAILED, RunStatus.RUN_STATUS_CRASHED,
         RunStatus.RUN_STATUS_KILLED, RunStatus.RUN_STATUS_EXCEPTION, RunStatus.RUN_STATUS_LOST,
         RunStatus.RUN_STATUS_CANCELLED, RunStatus.RUN_STATUS_REJECTED, RunStatus.RUN_STATUS_RUNNING,
         RunStatus.RUN_STATUS_PENDING]


def sparkline(values: list[int], top: int | None = None) -> str:
    """One character per value, ▁ to █ against the largest (a blank for none)."""
    top = top if top is not None else max(values, default=0)
    if not top:
        return " " * len(values)
    return "".join(BARS[0] if not v else BARS[max(1, round(v / top * (len(BARS) - 1)))] for v in values)


def _window(value: str) -> timedelta:
    text = value.strip().lower()
    if len(text) < 2 or not text[:-1].isdigit() or text[-1] not in UNITS or int(text[:-1]) < 1:
        raise InputError("--window", f"{value!r} is not a window; a number and m, h or d (30m, 24h, 7d)")
    return int(text[:-1]) * UNITS[text[-1]]


def _seconds(d: object) -> float:
    return float(getattr(d, "seconds", 0)) + float(getattr(d, "nanos", 0)) / 1e9


def _duration(seconds: float) -> str:
    if not seconds:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def stats(
    window: Annotated[str, typer.Option("--window", help="How far back from --until: 30m, 24h, 7d.")] = "24h",
    bucket: Annotated[str, typer.Option("--bucket", help="minute, hour or day (at most 1440 buckets).")] = "hour",
    since: Annotated[Optional[datetime], typer.Option("--since", help="The window's start (UTC); instead of "
                                                                      "--window.")] = None,
    until: Annotated[Optional[datetime], typer.Option("--until", help="The window's end (UTC; default now).")] = None,
    workflow: WorkflowOption = "",
    top: Annotated[int, typer.Option("--top", min=1, max=100, help="How many errors to list.")] = 10,
    as_json: JsonOption = False,
) -> None:
    """Work orders over a window: a sparkline per status, per workflow success rate and run
    durations, and the top errors (StatsService.GetWorkOrderStats)."""
    if bucket.strip().lower() not in BUCKETS:
        raise InputError("--bucket", f"{bucket!r} is not a bucket; one of {', '.join(BUCKETS)}")
    end = (until.replace(tzinfo=until.tzinfo or timezone.utc) if until else datetime.now(timezone.utc))
    start = since.replace(tzinfo=since.tzinfo or timezone.utc) if since else end - _window(window)
    with client() as c:
        answer = c.work_order_stats(since=start, until=end, bucket=bucket.strip().lower(), workflow_id=workflow,
                                    top_errors=top)
    if as_json:
        print_json(answer)
        return
    first = answer.window_start.ToDatetime(tzinfo=timezone.utc)
    last = answer.window_end.ToDatetime(tzinfo=timezone.utc)
    size = StatsBucket.Name(answer.bucket).removeprefix("STATS_BUCKET_").lower()
    console.print(Text.assemble((f"{answer.total}", "bold"), f" work orders created {first:%Y-%m-%d %H:%M} to "
                                f"{last:%Y-%m-%d %H:%M} UTC, {len(answer.buckets)} buckets of one {size}"),
                  soft_wrap=True)
    per_status = {s: [0] * len(answer.buckets) for s in ORDER}
    for i, b in enumerate(answer.buckets):
        for count in b.counts:
            if count.status in per_status:
                per_status[count.status][i] = count.count
    rows: list[tuple[str | Text, ...]] = []
    for status in ORDER:
        values = per_status[status]
        if any(values):
            rows.append((chip(status), sparkline(values), str(sum(values))))
    if rows:
        out.show_table(console, ("status", "over the window", "work orders"), rows, ids=(1,))
    else:
        console.print("no work orders in this window")
        return
    flows = [(w.workflow_id, sparkline(list(w.bucket_totals)), str(w.total),
              f"{w.success_rate * 100:.0f}%" if w.ended else "–", _duration(_seconds(w.run_duration_p50)),
              _duration(_seconds(w.run_duration_p95)), str(w.lost_count), str(w.exception_count))
             for w in answer.workflows]
    out.show_table(console, ("workflow", "over the window", "work orders", "success", "p50", "p95", "lost",
                             "exception"), flows, ids=(0,), title="workflows")
    if answer.top_errors:
        errors = [(chip(e.status), _name(ErrorType, e.error_type, "ERROR_TYPE_") if e.error_type else "–",
                   e.rule or "–", str(e.count)) for e in answer.top_errors]
        out.show_table(console, ("status", "error type", "rule", "runs"), errors, ids=(2,), title="top errors")
