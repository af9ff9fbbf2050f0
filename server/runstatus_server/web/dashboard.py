"""The dashboard (/dashboard, issue 31): a project's work orders over a window, from one
StatsService.GetWorkOrderStats call with the caller's token, drawn by the server as inline SVG
(nothing fetched, no chart library): a stacked bar per bucket by latest status in the chips'
colours, each status with a pattern of its own too (and the legend's chips) so the chart reads
without colour; a line of the failure rate; a marker over buckets where LOST or EXCEPTION spiked;
a table of workflows (sparkline, success rate, run duration p50/p95) and the top errors, each
linking to the history filtered to match. Window and bucket live in the URL
(`/dashboard?window=24h&bucket=hour`); every bar is a link (Tab reaches each, Enter opens the
history of that bucket). The page updates live at a calm rate (app.js, data-calm)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from runstatus import status_table
from runstatus.errors import RunstatusError
from runstatus.v1 import stats_service_pb2 as stats_pb
from runstatus.v1.status_pb2 import ErrorType, RunStatus

from . import render
from .render import chip, esc, status_name

if TYPE_CHECKING:
    from .app import WebServer

BUCKETS = {"minute": stats_pb.STATS_BUCKET_MINUTE, "hour": stats_pb.STATS_BUCKET_HOUR, "day": stats_pb.STATS_BUCKET_DAY}
WINDOW = re.compile(r"(\d{1,4})([mhd])")
UNIT = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
WINDOWS = ("1h", "6h", "24h", "7d", "30d")
CALM_MS = 5000  # at most one live refresh per 5 seconds, however busy the project

# Bottom to top: the outcomes first, then what is still under way.
STACK = [RunStatus.RUN_STATUS_SUCCESS, RunStatus.RUN_STATUS_FAILED, RunStatus.RUN_STATUS_CRASHED,
         RunStatus.RUN_STATUS_KILLED, RunStatus.RUN_STATUS_EXCEPTION, RunStatus.RUN_STATUS_LOST,
         RunStatus.RUN_STATUS_CANCELLED, RunStatus.RUN_STATUS_REJECTED, RunStatus.RUN_STATUS_RUNNING,
         RunStatus.RUN_STATUS_PENDING]
COLORS = {"green": "#2e9e5b", "red": "#d92d20", "orange": "#f79009", "yellow": "#eaaa08", "blue": "#2f5fd0",
          "black": "#344054", "white": "#c4c9d2"}
# Each status's pattern over its colour (SVG path in a 8x8 tile; "" for plain): told apart without colour.
PATTERNS = {
    RunStatus.RUN_STATUS_SUCCESS: "",
    RunStatus.RUN_STATUS_FAILED: "M0 8L8 0M-2 2L2 -2M6 10L10 6",  # diagonal
    RunStatus.RUN_STATUS_CRASHED: "M0 2H8M0 6H8",  # horizontal
    RunStatus.RUN_STATUS_KILLED: "M0 8L8 0M0 0L8 8",  # cross-hatch
    RunStatus.RUN_STATUS_EXCEPTION: "M2 2h1v1h-1zM6 6h1v1h-1z",  # dots
    RunStatus.RUN_STATUS_LOST: "M2 0V8M6 0V8",  # vertical
    RunStatus.RUN_STATUS_CANCELLED: "M0 0L8 8",  # back diagonal
    RunStatus.RUN_STATUS_REJECTED: "M0 4H8M4 0V4",  # bricks
    RunStatus.RUN_STATUS_RUNNING: "M0 4H8",
    RunStatus.RUN_STATUS_PENDING: "M4 4h1v1h-1z",
}
FAILED_STATUSES = {RunStatus.RUN_STATUS_FAILED, RunStatus.RUN_STATUS_CRASHED, RunStatus.RUN_STATUS_KILLED,
                   RunStatus.RUN_STATUS_EXCEPTION, RunStatus.RUN_STATUS_LOST}
ENDED = FAILED_STATUSES | {RunStatus.RUN_STATUS_SUCCESS}
WIDTH, HEIGHT, LEFT, TOP, BOTTOM, RIGHT = 1200, 250, 44, 14, 24, 44


def _color(status: int) -> str:
    row = status_table.statuses().get(status)  # type: ignore[call-overload]
    return COLORS.get(row.color if row else "white", "#c4c9d2")


def _label(status: int) -> str:
    row = status_table.statuses().get(status)  # type: ignore[call-overload]
    return row.label if row else status_name(status)


def minute(moment: datetime) -> str:
    """A time as the history filter takes it (datetime-local, UTC)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M")


def history_link(project: str, start: datetime, end: datetime, *, workflow: str = "",
                 statuses: list[int] | None = None) -> str:
    items = [("project", project)] if project else []
    items += [("status", status_name(s)) for s in statuses or []]
    items += [("workflow", workflow)] if workflow else []
    items += [("created_after", minute(start)), ("created_before", minute(end))]
    return "/?" + urlencode(items)


def _ts(value: Any) -> datetime:
    return datetime.fromtimestamp(value.seconds + value.nanos / 1e9, tz=timezone.utc)


def _duration(value: Any) -> str:
    seconds = value.seconds + value.nanos / 1e9
    if not seconds:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _defs() -> str:
    tiles = []
    for status in STACK:
        path = PATTERNS[status]
        stroke = "#fff" if _color(status) not in ("#c4c9d2",) else "#4b5563"
        lines = f'<path d="{path}" stroke="{stroke}" stroke-width="1.4" fill="{stroke}"/>' if path else ""
        tiles.append(f'<pattern id="pat-{status_name(status)}" width="8" height="8" patternUnits="userSpaceOnUse">'
                     f'<rect width="8" height="8" fill="{_color(status)}"/>{lines}</pattern>')
    return f'<defs>{"".join(tiles)}</defs>'


def legend() -> str:
    items = "".join(
        f'<li data-legend="{esc(status_name(s))}"><svg width="16" height="12" aria-hidden="true">'
        f'<rect width="16" height="12" rx="2" fill="url(#pat-{status_name(s)})" stroke="#8d93a1"/></svg>{chip(s)}</li>'
        for s in STACK)
    return (f'<ul class="legend" aria-label="Legend">{items}<li><svg width="22" height="12" aria-hidden="true">'
            '<path d="M1 10L11 3L21 7" stroke="#111827" stroke-width="2" fill="none" stroke-dasharray="4 2"/></svg>'
            'failure rate (right axis)</li><li><span class="spike-key" aria-hidden="true">▲</span> '
            'LOST or EXCEPTION spike'
            '</li></ul>')


def chart(answer: stats_pb.GetWorkOrderStatsResponse, project: str, step: timedelta) -> str:
    """The stacked bars, the failure-rate line and the spike markers, as one SVG."""
    buckets = list(answer.buckets)
    n = max(len(buckets), 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = max([b.total for b in buckets] + [1])
    slot = plot_w / n
    bar_w = max(slot * 0.8, 1.0)
    spikes_mean = sum(_bad(b) for b in buckets) / n
    parts = [_defs()]
    for frac in (0, 0.5, 1):  # the left axis: work orders; the right: failure rate
        y = TOP + plot_h * (1 - frac)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">{round(top * frac)}</text>'
                     f'<text x="{WIDTH - RIGHT + 6}" y="{y + 4:.1f}" class="axis">{round(frac * 100)}%</text>')
    rate_points: list[tuple[float, float, str]] = []
    label_every = max(1, n // 12)
    for i, b in enumerate(buckets):
        start = _ts(b.start_time)
        x = LEFT + i * slot + (slot - bar_w) / 2
        counts = {c.status: c.count for c in b.counts}
        y = TOP + plot_h
        segs = []
        for status in STACK:
            count = counts.get(status, 0)
            if not count:
                continue
            h = plot_h * count / top
            y -= h
            segs.append(f'<rect class="seg" data-status="{esc(status_name(status))}" data-count="{count}" '
                        f'x="{x:.2f}" y="{y:.2f}" width="{bar_w:.2f}" height="{h:.2f}" '
                        f'fill="url(#pat-{status_name(status)})"><title>{esc(_label(status))}: {count}</title></rect>')
        words = ", ".join(f"{counts[s]} {_label(s)}" for s in STACK if counts.get(s)) or "none"
        ended = sum(counts.get(s, 0) for s in ENDED)
        failed = sum(counts.get(s, 0) for s in FAILED_STATUSES)
        name = f"{minute(start)} UTC: {b.total} work orders ({words})"
        link = history_link(project, start, start + step)
        parts.append(f'<a class="bucket" href="{esc(link)}" data-start="{esc(minute(start))}" data-total="{b.total}" '
                     f'aria-label="{esc(name)}"><rect class="hit" x="{LEFT + i * slot:.2f}" y="{TOP}" '
                     f'width="{slot:.2f}" height="{plot_h}" fill="transparent"/>{"".join(segs)}'
                     f'<title>{esc(name)}</title></a>')
        cx = LEFT + (i + 0.5) * slot
        if ended:
            words_rate = f"failure rate {failed / ended * 100:.0f}% ({failed} of {ended} ended) at {minute(start)} UTC"
            rate_points.append((cx, TOP + plot_h * (1 - failed / ended), words_rate))
        bad = _bad(b)
        if bad and bad >= max(2.0, 2 * spikes_mean):
            parts.append(f'<text class="spike" data-spike="{esc(minute(start))}" x="{cx:.1f}" y="{TOP + 12}" '
                         f'text-anchor="middle" stroke="#fff" stroke-width="3" paint-order="stroke">▲{bad}'
                         f'<title>{bad} LOST or EXCEPTION at {esc(minute(start))} UTC</title></text>')
        if i % label_every == 0:
            text = start.strftime("%H:%M" if step < timedelta(days=1) else "%m-%d")
            if step >= timedelta(hours=1) and start.hour == 0 and step < timedelta(days=1):
                text = start.strftime("%m-%d")
            parts.append(f'<text x="{cx:.1f}" y="{HEIGHT - 6}" text-anchor="middle" class="axis">{text}</text>')
    if rate_points:
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in rate_points)
        parts.append(f'<polyline class="rate" points="{line}" fill="none" stroke="#111827" '
                     'stroke-width="2" stroke-dasharray="5 3"/>')
        parts += [f'<circle class="rate-point" cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="#111827">'
                  f'<title>{esc(words)}</title></circle>' for x, y, words in rate_points]
    title = (f"Work orders by status per {esc(_step_name(step))}, {esc(minute(_ts(answer.window_start)))} to "
             f"{esc(minute(_ts(answer.window_end)))} UTC")
    return (f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
            f'aria-label="{title}"><title>{title}</title>{"".join(parts)}</svg>')


def _bad(b: Any) -> int:
    return sum(c.count for c in b.counts if c.status in (RunStatus.RUN_STATUS_LOST, RunStatus.RUN_STATUS_EXCEPTION))


def _step_name(step: timedelta) -> str:
    return {timedelta(minutes=1): "minute", timedelta(hours=1): "hour"}.get(step, "day")


def sparkline(values: list[int], failures: list[int]) -> str:
    n, top = max(len(values), 1), max(values + [1])
    w, h = 96, 22
    points = " ".join(f"{i * w / max(n - 1, 1):.1f},{h - 2 - (h - 4) * v / top:.1f}" for i, v in enumerate(values))
    fails = " ".join(f"{i * w / max(n - 1, 1):.1f},{h - 2 - (h - 4) * v / top:.1f}" for i, v in enumerate(failures))
    return (f'<svg class="spark" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
            f'aria-label="{sum(values)} work orders, {sum(failures)} failed, over the window">'
            f'<polyline points="{points}" fill="none" stroke="#2f5fd0" stroke-width="1.5"/>'
            f'<polyline points="{fails}" fill="none" stroke="#d92d20" stroke-width="1.2" '
            'stroke-dasharray="3 2"/></svg>')


def workflows_table(answer: stats_pb.GetWorkOrderStatsResponse, project: str) -> str:
    start, end = _ts(answer.window_start), _ts(answer.window_end)
    rows = []
    for w in answer.workflows:
        link = history_link(project, start, end, workflow=w.workflow_id)
        rate = f"{w.success_rate * 100:.0f}%" if w.ended else "–"
        rows.append(
            f'<tr data-workflow="{esc(w.workflow_id)}"><td><a href="{esc(link)}">{esc(w.workflow_id)}</a></td>'
            f'<td>{sparkline(list(w.bucket_totals), list(w.bucket_failures))}</td>'
            f'<td class="num" data-total>{w.total}</td><td class="num" data-rate>{rate}</td>'
            f'<td class="num">{_duration(w.run_duration_p50)}</td><td class="num">{_duration(w.run_duration_p95)}</td>'
            f'<td class="num">{w.lost_count}</td><td class="num">{w.exception_count}</td></tr>')
    if not rows:
        rows.append('<tr><td colspan="8" class="empty">No work orders in this window.</td></tr>')
    return ('<table class="workflows"><caption>Workflows</caption><thead><tr><th>Workflow</th>'
            '<th title="work orders (blue) and failed (red dashes) per bucket">Trend</th>'
            '<th title="work orders">Total</th><th title="SUCCESS of ended">Success</th>'
            '<th title="run duration, median">p50</th><th title="run duration, 95th percentile">p95</th>'
            '<th>Lost</th><th title="EXCEPTION">Exc.</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def errors_table(answer: stats_pb.GetWorkOrderStatsResponse, project: str) -> str:
    start, end = _ts(answer.window_start), _ts(answer.window_end)
    rows = []
    for e in answer.top_errors:
        link = history_link(project, start, end, statuses=[e.status])
        kind = ErrorType.Name(e.error_type).removeprefix("ERROR_TYPE_") if e.error_type else "–"
        rows.append(f'<tr data-error-rule="{esc(e.rule)}"><td>{chip(e.status)}</td><td>{esc(kind)}</td>'
                    f'<td><code>{esc(e.rule or "–")}</code></td><td class="num">'
                    f'<a href="{esc(link)}">{e.count}</a></td></tr>')
    if not rows:
        rows.append('<tr><td colspan="4" class="empty">No errors in this window.</td></tr>')
    return ('<table class="errors"><caption>Top errors (runs)</caption><thead><tr><th>Status</th><th>Type</th>'
            f'<th>Rule</th><th>Runs</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def controls(project: str, window: str, bucket: str) -> str:
    hidden = f'<input type="hidden" name="project" value="{esc(project)}">' if project else ""
    windows = "".join(f'<option{" selected" if w == window else ""}>{w}</option>'
                      for w in (*WINDOWS, *(() if window in WINDOWS else (window,))))
    buckets = "".join(f'<option{" selected" if b == bucket else ""}>{b}</option>' for b in BUCKETS)
    return (f'<form class="filter dash" method="get" action="/dashboard" aria-label="Window">{hidden}'
            f'<label>Window <select name="window">{windows}</select></label> '
            f'<label>Bucket <select name="bucket">{buckets}</select></label> <button>Show</button></form>')


def _moment(value: str) -> datetime | None:
    """A time from the URL (datetime-local, UTC unless it says); None for none."""
    if not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"not a date and time: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def dashboard_link(project: str, *, workflow: str = "", since: str = "", until: str = "") -> str:
    """The dashboard of a history view: its project, workflow and created range (else the last 24 hours)."""
    items = [("project", project)] if project else []
    items += [("workflow", workflow)] if workflow else []
    items += [("from", since)] if since else []
    items += [("to", until)] if until else []
    return "/dashboard" + (f"?{urlencode(items)}" if items else "")


class DashboardPage:
    def __init__(self, server: WebServer) -> None:
        self.server = server

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/dashboard", self.dashboard)

    async def dashboard(self, request: web.Request) -> web.StreamResponse:
        api = self.server.api(request)
        q = request.query
        project = q.get("project", "").strip()
        window = q.get("window", "24h").strip()
        bucket = q.get("bucket", "hour").strip()
        parsed = WINDOW.fullmatch(window)
        body = [f"<h1>Dashboard</h1>{controls(project, window, bucket)}"]
        status = 200
        if parsed is None or bucket not in BUCKETS:
            problem = f"window is a number and m, h or d ({window!r}); bucket one of minute, hour, day ({bucket!r})"
            body.append(f'<div class="error" role="alert">{esc(problem)}</div>')
            return await self.server.page(request, api, "Dashboard", "".join(body), project, status=400)
        now = datetime.now(timezone.utc)
        span = int(parsed.group(1)) * UNIT[parsed.group(2)]
        workflow = q.get("workflow", "").strip()
        try:  # an explicit window (the history's created range): from, and to (default now)
            until = _moment(q.get("to", "")) or now
            since = _moment(q.get("from", "")) or until - span
        except (ValueError, OverflowError) as e:
            body.append(f'<div class="error" role="alert">{esc(e)}</div>')
            return await self.server.page(request, api, "Dashboard", "".join(body), project, status=400)
        step = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}[bucket]
        request_pb = stats_pb.GetWorkOrderStatsRequest(project_id=project, bucket=BUCKETS[bucket], workflow_id=workflow)
        try:
            request_pb.window_start.FromDatetime(since)
            request_pb.window_end.FromDatetime(until)
        except (ValueError, OverflowError):  # past year 9999, or before year 1, in UTC
            problem = f"the window is out of range: {since} to {until}"
            body.append(f'<div class="error" role="alert">{esc(problem)}</div>')
            return await self.server.page(request, api, "Dashboard", "".join(body), project, status=400)
        try:
            answer = await api.call(api.client.stats.GetWorkOrderStats, request_pb)
        except RunstatusError as e:
            body.append(render.api_error(e))
            from .app import refusal_status

            return await self.server.page(request, api, "Dashboard", "".join(body), project,
                                          status=refusal_status(e))
        start, end = _ts(answer.window_start), _ts(answer.window_end)
        totals = {c.status: c.count for c in answer.counts}
        ended = sum(totals.get(s, 0) for s in ENDED)
        failed = sum(totals.get(s, 0) for s in FAILED_STATUSES)
        summary = (f'<p class="summary"><a href="{esc(history_link(project, start, end))}" data-dash-total>'
                   f'<strong>{answer.total}</strong> work orders</a> created {esc(minute(start))} to '
                   f'{esc(minute(end))} '
                   f'UTC · failure rate <strong>{(failed / ended * 100 if ended else 0):.0f}%</strong> of '
                   f'{ended} ended</p>')
        live_query = urlencode({"project": project}) if project else ""
        body.append(
            f'<p class="live" data-live="/events?{esc(live_query)}" data-calm="{CALM_MS}" '
            f'data-page="{esc(request.path_qs)}" aria-live="polite"></p>'
            f'<div data-live-region>{summary}{legend()}{chart(answer, project, step)}'
            f'<div class="dash-tables">{workflows_table(answer, project)}{errors_table(answer, project)}</div></div>')
        return await self.server.page(request, api, "Dashboard", "".join(body), project, status=status)
