"""HTML for the web UI: plain f-strings, every value passed through `esc` (html.escape),
the status chips and names read from the enum descriptors (runstatus.status_table)."""

from __future__ import annotations

import html
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlencode

from runstatus import status_table
from runstatus.errors import RunstatusError
from runstatus.models import Run, RunError, StepRun, WorkOrder
from runstatus.v1.status_pb2 import ErrorType, RunStatus
from runstatus.v1.workflow_pb2 import EdgeCondition

from .. import verdicts


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def status_name(status: int) -> str:
    """"FAILED" for RUN_STATUS_FAILED: how statuses are spelled in URLs."""
    return RunStatus.Name(status).removeprefix("RUN_STATUS_")  # type: ignore[arg-type]


def parse_status(value: str) -> int | None:
    name = value.strip().upper()
    name = name if name.startswith("RUN_STATUS_") else f"RUN_STATUS_{name}"
    return RunStatus.Value(name) if name in RunStatus.keys() and name != "RUN_STATUS_UNSPECIFIED" else None


def chip(status: int) -> str:
    """The status chip with its name beside it (the emoji alone says nothing to a screen reader,
    and ⚪ is three statuses)."""
    row = status_table.statuses().get(status)  # type: ignore[call-overload]
    if row is None:
        return '<span class="chip" data-status="RUN_STATUS_UNSPECIFIED">–</span>'
    return (f'<span class="chip chip-{esc(row.color)}" data-status="{esc(row.name)}" title="{esc(row.description)}">'
            f'<span class="emoji" aria-hidden="true">{esc(row.chip)}</span> '
            f'<span class="label">{esc(row.label)}</span></span>')


def when(value: datetime | None) -> str:
    if value is None:
        return '<span class="none">–</span>'
    utc = value.astimezone(timezone.utc)
    return f'<time datetime="{esc(utc.isoformat())}">{esc(utc.strftime("%Y-%m-%d %H:%M:%S"))}</time>'


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "–"
    seconds = (end - start).total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"


def api_error(error: RunstatusError) -> str:
    """A refusal as the server worded it: its code, its message, its reason."""
    reason = f' <span class="reason">[{esc(error.reason)}]</span>' if error.reason else ""
    return (f'<div class="error" role="alert"><strong>{esc(error.code.name)}</strong>: '
            f'<span class="message">{esc(error.message)}</span>{reason}</div>')


def notice(text: str) -> str:
    """A line of the web server's own, shown as an API error is."""
    return f'<div class="error" role="alert">{esc(text)}</div>'


def new_request_id() -> str:
    return str(uuid.uuid4())


def csrf_field(csrf: str) -> str:
    """What every POST form carries: this browser's CSRF token (app.py: WebServer.csrf)."""
    return f'<input type="hidden" name="csrf_token" value="{esc(csrf)}">'


def action_fields(csrf: str) -> str:
    """An action form's request_id, made with the page (the form sent twice is one action),
    and the CSRF token."""
    return f'<input type="hidden" name="request_id" value="{new_request_id()}">{csrf_field(csrf)}'


def submit(label: str, why_not: str, name: str) -> str:
    """An action's button; with `why_not`, disabled and with the reason beside it."""
    if not why_not:
        return f'<button type="submit">{esc(label)}</button>'
    return (f'<button type="submit" disabled aria-describedby="{name}-why-not">{esc(label)}</button> '
            f'<span class="why-not" id="{name}-why-not">{esc(why_not)}</span>')


DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


# The filter's time bounds: the URL parameter, the WorkOrderFilter field it sets, its label.
TIME_BOUNDS = (
    ("created_after", "create_time_start", "Created from"), ("created_before", "create_time_end", "to"),
    ("changed_after", "update_time_start", "Changed from"), ("changed_before", "update_time_end", "to"),
)


@dataclass
class Filter:
    """The history filter, as it lives in the URL."""

    project: str = ""
    statuses: list[int] = field(default_factory=list)
    workflow: str = ""
    # URL parameter (TIME_BOUNDS) -> the time as typed: "2026-12-03T13:00" (UTC)
    times: dict[str, str] = field(default_factory=dict)
    size: int = DEFAULT_PAGE_SIZE

    def query(self, **extra: str) -> str:
        """The query string of this filter (and `extra`), without empty values."""
        items: list[tuple[str, str]] = [("project", self.project)] if self.project else []
        items += [("size", str(self.size))] if self.size != DEFAULT_PAGE_SIZE else []
        items += [("status", status_name(s)) for s in self.statuses]
        items += [("workflow", self.workflow)] if self.workflow else []
        items += [(name, self.times[name]) for name, _, _ in TIME_BOUNDS if self.times.get(name)]
        items += [(k, v) for k, v in extra.items() if v]
        return urlencode(items)

    def with_statuses(self, statuses: Sequence[int]) -> Filter:
        return replace(self, statuses=list(statuses))


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · runstatus</title>
<link rel="stylesheet" href="/static/style.css">
<script src="/static/app.js" defer></script>
</head>
<body>
<header class="top">
<a class="brand" href="/{project_query}">runstatus</a>
<nav><a href="/{project_query}">History</a> <a href="/dashboard{project_query}">Dashboard</a> <a href="/statuses{project_query}">Statuses</a> <a href="/notifications{project_query}">Notifications</a></nav>
{projects}
{account}
</header>
<main>
{body}
</main>
</body>
</html>
"""


def page(title: str, body: str, *, project: str = "", projects: Sequence[str] = (), signed_in: bool | None = None,
         path: str = "/", csrf: str = "") -> str:
    """A whole page. `signed_in`: None without --auth (no sign-in at all)."""
    project_query = f"?{urlencode({'project': project})}" if project else ""
    picker = ""
    if projects:
        options = "".join(f'<option value="{esc(p)}"{" selected" if p == project else ""}>{esc(p)}</option>'
                          for p in sorted(set(projects) | ({project} if project else set())))
        picker = (f'<form class="project" method="get" action="{esc(path)}"><label>Project '
                  f'<select name="project" data-autosubmit><option value="">(default)</option>{options}</select>'
                  f'</label> <noscript><button>Go</button></noscript></form>')
    account = ""
    if signed_in:
        account = (f'<form class="account" method="post" action="/sign-out">{csrf_field(csrf)}'
                   '<button>Sign out</button></form>')
    return PAGE.format(title=esc(title), body=body, project_query=esc(project_query), projects=picker,
                       account=account)


# History

def filter_form(flt: Filter) -> str:
    boxes = "".join(
        f'<label class="status-box"><input type="checkbox" name="status" value="{esc(status_name(s))}"'
        f'{" checked" if s in flt.statuses else ""}> {chip(s)}</label>'
        for s in status_table.statuses())
    project = f'<input type="hidden" name="project" value="{esc(flt.project)}">' if flt.project else ""
    size = f'<input type="hidden" name="size" value="{flt.size}">' if flt.size != DEFAULT_PAGE_SIZE else ""
    times = "\n".join(f'<label>{label} <input type="datetime-local" name="{name}" '
                      f'value="{esc(flt.times.get(name, ""))}"></label>' for name, _, label in TIME_BOUNDS)
    return f"""<form class="filter" method="get" action="/" aria-label="Filter">
{project}{size}
<fieldset><legend>Status</legend>{boxes}</fieldset>
<div class="fields">
<label>Workflow <input name="workflow" value="{esc(flt.workflow)}" placeholder="any"></label>
{times}
<button type="submit">Apply</button> <a href="/{'?' + esc(urlencode({'project': flt.project})) if flt.project else ''}">Clear</a>
</div>
</form>
<form class="goto" method="get" action="/" aria-label="Go to a work order">
{project}<label>Work order id <input name="id" required placeholder="e.g. 3f2b9c1e-…"></label> <button>Open</button>
</form>"""


def bulk_retry_form(flt: Filter, refused: str | None, csrf: str) -> str:
    """RetryWorkOrders over the filter; the script shows its progress in the <progress>."""
    why_not = refused if refused else "" if flt.statuses else \
        "Choose one or more statuses first: a bulk retry retries the work orders of the statuses it names."
    return (f'<form class="bulk-retry" method="post" action="/retry-matching?{esc(flt.query())}" data-progress>'
            f'{action_fields(csrf)}{submit("Retry every matching work order", why_not, "bulk-retry")} '
            f'<progress hidden></progress> <output aria-live="polite"></output></form>')


def bulk_result(retried: int, skipped: int) -> str:
    return (f'<div class="bulk-result" role="status" data-retried="{retried}" data-skipped="{skipped}">'
            f'Retried <strong>{retried}</strong> work order{"s" if retried != 1 else ""}; skipped <strong>{skipped}</strong>'
            ' (their latest run had not ended, or the run limit rejected the retry).</div>')


def counts_bar(flt: Filter, counts: dict[int, int], total: int) -> str:
    """Work orders per status over the filter but its statuses; each chip filters by its status."""
    chips = []
    for s in status_table.statuses():
        n = counts.get(s, 0)
        selected = " selected" if s in flt.statuses else ""
        chips.append(f'<a class="count{selected}{" zero" if not n else ""}" href="/?{esc(flt.with_statuses([s]).query())}" '
                     f'data-count-status="{esc(status_name(s))}">{chip(s)} <span class="n">{n}</span></a>')
    everything = f'<a class="count total" href="/?{esc(flt.with_statuses([]).query())}">All <span class="n">{total}</span></a>'
    from .dashboard import dashboard_link  # the same view over time: its project, workflow and created range

    over_time = dashboard_link(flt.project, workflow=flt.workflow, since=flt.times.get("created_after", ""),
                               until=flt.times.get("created_before", ""))
    chart = f'<a class="dash-link" href="{esc(over_time)}" data-dashboard-link>Over time ⟩</a>'
    return f'<nav class="counts" aria-label="Work orders by status">{everything}{"".join(chips)} {chart}</nav>'


def history_table(flt: Filter, orders: Iterable[WorkOrder], next_token: str, page_token: str) -> str:
    rows = []
    for w in orders:
        link = f"/work-orders/{quote(w.id, safe='')}" + (f"?{urlencode({'project': flt.project})}" if flt.project else "")
        by_workflow = Filter(flt.project, flt.statuses, w.workflow_id, size=flt.size).query()
        rows.append(
            f'<tr data-work-order="{esc(w.id)}" data-status="{esc(RunStatus.Name(w.status))}">'
            f'<td>{chip(w.status)}</td><td><a class="id" href="{esc(link)}">{esc(w.id)}</a></td>'
            f'<td><a href="/?{esc(by_workflow)}">{esc(w.workflow_id)}</a> <span class="version">v{w.workflow_version}</span></td>'
            f'<td>{when(w.create_time)}</td><td>{when(w.update_time)}</td><td class="num">{w.run_count}</td></tr>')
    if not rows:
        rows.append('<tr><td colspan="6" class="empty">No work orders match.</td></tr>')
    pager = []
    if page_token:
        pager.append(f'<a href="/?{esc(flt.query())}">⟨ Newest</a>')
    if next_token:
        pager.append(f'<a rel="next" href="/?{esc(flt.query(page=next_token))}">Older ⟩</a>')
    return f"""<table class="history">
<thead><tr><th>Status</th><th>Work order</th><th>Workflow</th><th>Created (UTC)</th><th>Updated (UTC)</th><th>Runs</th></tr></thead>
<tbody>{"".join(rows)}</tbody>
</table>
<nav class="pager">{" ".join(pager)}</nav>"""


# A work order

def work_order_actions(order: WorkOrder, run: Run | None, steps: Sequence[str], project: str,
                       refusals: dict[str, str], csrf: str) -> str:
    """Retry (from the start or from a step), and cancel for a run not yet finished; each
    disabled, with the reason, when the token's role may not or the run's status rules it out."""
    base = f"/work-orders/{quote(order.id, safe='')}"
    query = f"?{urlencode({'project': project})}" if project else ""
    latest = order.latest_run
    why_not = refusals.get("RetryWorkOrder", "")
    if not why_not and latest is not None and not status_table.is_terminal(latest.status):
        why_not = f"Its latest run is {status_table.label(latest.status)}: a work order is retried once that has ended."
    options = "".join(f'<option value="{esc(s)}">step {esc(s)}</option>' for s in steps)
    parts = [f'<form class="retry" method="post" action="{esc(base + "/retry" + query)}">{action_fields(csrf)}'
             f'<label>Retry from <select name="start_step_id"><option value="">the start</option>{options}</select></label> '
             f'{submit("Retry", why_not, "retry")}</form>']
    if run is not None and not status_table.is_terminal(run.status):
        why_not = refusals.get("CancelRun") or verdicts.CANCEL_WAITS if run.cancel_requested else ""
        action = f"{base}/runs/{quote(run.id, safe='')}/cancel{query}"
        parts.append(f'<form class="cancel" method="post" action="{esc(action)}">{action_fields(csrf)}'
                     f'<label>Reason <input name="reason" placeholder="optional"></label> '
                     f'{submit(f"Cancel run {run.number}", why_not, "cancel")}</form>')
    return f'<section class="actions" aria-label="Actions">{"".join(parts)}</section>'


def runs_list(work_order_id: str, project: str, runs: Sequence[Run], chosen: str) -> str:
    items = []
    for r in runs:
        query = urlencode({**({"project": project} if project else {}), "run": r.id})
        current = ' aria-current="true" class="current"' if r.id == chosen else ""
        items.append(f'<li{current}><a href="/work-orders/{esc(quote(work_order_id, safe=""))}?{esc(query)}">'
                     f'Run {r.number}</a> {chip(r.status)} <span class="muted">created {when(r.create_time)}</span></li>')
    return f'<ol class="runs" reversed>{"".join(items)}</ol>'


def error_block(error: RunError) -> str:
    c = error.classification
    type_row = status_table.error_types().get(c.error_type)
    type_name = type_row.name if type_row else ErrorType.Name(c.error_type).removeprefix("ERROR_TYPE_")
    subtype = f' <span class="muted">(wrapping {esc(error.subtype)})</span>' if error.subtype else ""
    return (f'<div class="step-error"><code class="error-name">{esc(error.name)}</code>{subtype}: '
            f'<span class="error-message">{esc(error.message)}</span>'
            f'<dl class="classification"><dt>classified</dt><dd>{chip(c.status)}</dd>'
            f'<dt>error type</dt><dd>{esc(type_name)}</dd>'
            f'<dt>rule</dt><dd><code class="rule">{esc(c.rule)}</code></dd>'
            f'<dt>aborts the run</dt><dd>{"yes" if c.aborts_run else "no"}</dd></dl></div>')


def why(run: Run) -> str:
    """Why the run has its status: the reason the server stored when it decided it
    (verdicts.py), word for word, and the error that decided it. A running run asked to
    cancel already carries its cancel's reason; the cancel waits for its worker."""
    row = status_table.statuses().get(run.status)
    waits = f'<p class="cancel-waits">{esc(verdicts.CANCEL_WAITS)}</p>' \
        if run.cancel_requested and run.status == RunStatus.RUN_STATUS_RUNNING else ""
    reason = f'<p class="status-reason">{esc(run.status_reason)}</p>' if run.status_reason else ""
    detail = error_block(run.error) if run.error is not None else ""
    meaning = f'<p class="muted">{chip(run.status)} {esc(row.description)}</p>' if row else ""
    return f'<section class="why"><h3>Why {chip(run.status)}</h3>{waits}{reason}{detail}{meaning}</section>'


def timeline(run: Run, edges: dict[tuple[str, str], int]) -> str:
    """The run's steps in the order they started, each with its bar on the run's time axis."""
    steps = sorted(run.step_runs, key=lambda s: (s.start_time or datetime.max.replace(tzinfo=timezone.utc), s.id))
    if not steps:
        return '<p class="empty">No steps ran.</p>'
    by_id = {s.id: s for s in run.step_runs}
    starts = [s.start_time for s in steps if s.start_time] + ([run.start_time] if run.start_time else [])
    ends = [t for t in [*(s.end_time or s.start_time for s in steps), run.end_time] if t is not None]
    t0 = min(starts) if starts else None
    t1 = max(ends) if ends else None
    span = (t1 - t0).total_seconds() if t0 and t1 and t1 > t0 else 0.0
    rows = []
    for s in steps:
        left, width = 0.0, 100.0
        if span and s.start_time and t0:
            left = (s.start_time - t0).total_seconds() / span * 100
            end = s.end_time or t1
            width = max(((end - s.start_time).total_seconds() / span * 100) if end else 0.0, 0.6)
        before = by_id.get(s.previous_step_run_id)
        if before is not None:
            condition = edges.get((before.step_id, s.step_id))
            along = (f" <span class=\"edge\">{esc(EdgeCondition.Name(condition).removeprefix('EDGE_CONDITION_').lower().replace('_', ' '))}</span>"  # type: ignore[arg-type]
                     if condition is not None else "")
            came = f'after <a href="#step-{esc(before.step_id)}"><code>{esc(before.step_id)}</code></a>{along}'
        else:
            came = "start" if not run.proto.start_step_id else f"retry from <code>{esc(run.proto.start_step_id)}</code>"
        reused = ' <span class="muted">(reused from an earlier run)</span>' if s.reused else ""
        err = error_block(s.error) if s.error is not None else ""
        rows.append(
            f'<li class="step" id="step-{esc(s.step_id)}" data-step="{esc(s.step_id)}" data-status="{esc(RunStatus.Name(s.status))}">'
            f'<div class="step-head">{chip(s.status)} <code class="step-id">{esc(s.step_id)}</code>{reused}'
            f' <span class="muted">{came}</span></div>'
            f'<div class="bar-track"><div class="bar bar-{esc(_color(s.status))}" style="margin-left:{left:.2f}%;width:{min(width, 100 - left):.2f}%"></div></div>'
            f'<div class="times">start {when(s.start_time)} · end {when(s.end_time)} · '
            f'<span class="duration">{esc(duration(s.start_time, s.end_time))}</span></div>{err}</li>')
    return f'<ol class="timeline">{"".join(rows)}</ol>'


def _color(status: int) -> str:
    row = status_table.statuses().get(status)  # type: ignore[call-overload]
    return row.color if row else "white"


def _workflow_dashboard(p: Any) -> str:
    """The dashboard of a run's workflow over the 24 hours around the run's creation (or until now)."""
    from .dashboard import dashboard_link

    created = p.create_time.ToDatetime(tzinfo=timezone.utc)
    until = min(created + timedelta(hours=12), datetime.now(timezone.utc))
    return dashboard_link(p.project_id if p.project_id != "default" else "", workflow=p.workflow_id,
                          since=(until - timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M"),
                          until=until.strftime("%Y-%m-%dT%H:%M"))


def run_summary(run: Run) -> str:
    p = run.proto
    extra = []
    if p.worker_id:
        extra.append(f"<dt>worker</dt><dd><code>{esc(p.worker_id)}</code></dd>")
    if p.start_step_id:
        extra.append(f"<dt>started at step</dt><dd><code>{esc(p.start_step_id)}</code></dd>")
    return (f'<dl class="run-summary"><dt>status</dt><dd>{chip(run.status)}</dd>'
            f'<dt>workflow</dt><dd>{esc(p.workflow_id)} v{p.workflow_version} '
            f'<a class="dash-link" data-dashboard-link href="{esc(_workflow_dashboard(p))}">over time ⟩</a></dd>'
            f'<dt>created</dt><dd>{when(run.create_time)}</dd><dt>started</dt><dd>{when(run.start_time)}</dd>'
            f'<dt>ended</dt><dd>{when(run.end_time)}</dd>'
            f'<dt>duration</dt><dd>{esc(duration(run.start_time, run.end_time))}</dd>{"".join(extra)}</dl>')


def status_tables() -> str:
    types: dict[int, list[str]] = {}
    for t in status_table.error_types().values():
        types.setdefault(t.status, []).append(t.name)
    yes_no = {True: "yes", False: "no", None: "–"}
    status_rows = "".join(
        f'<tr data-status="{esc(s.name)}"><td>{chip(s.status)}</td><td><code>{esc(s.name)}</code></td>'
        f'<td>{yes_no[s.terminal]}</td><td>{yes_no[s.aborts_run]}</td><td>{yes_no[s.notifies_admin]}</td>'
        f'<td>{esc(", ".join(types.get(s.status, [])) or "–")}</td><td>{esc(s.description)}</td></tr>'
        for s in status_table.statuses().values())
    type_rows = "".join(
        f'<tr data-error-type="{esc(t.name)}"><td><code>{esc(t.name)}</code></td><td>{chip(t.status)}</td>'
        f'<td>{esc(t.example)}</td></tr>' for t in status_table.error_types().values())
    return f"""<h1>Statuses</h1>
<p>As the descriptors of <code>runstatus.v1.RunStatus</code> and <code>ErrorType</code> say (proto/runstatus/v1/status.proto).</p>
<table class="statuses"><thead><tr><th>Chip</th><th>Status</th><th>Terminal</th><th>Aborts the run</th><th>Notifies the admin</th><th>Error types</th><th>Meaning</th></tr></thead>
<tbody>{status_rows}</tbody></table>
<h2>Error types</h2>
<table class="error-types"><thead><tr><th>Error type</th><th>Leads to</th><th>Example</th></tr></thead>
<tbody>{type_rows}</tbody></table>"""


def sign_in(message: str, next_path: str, csrf: str) -> str:
    return f"""<h1>Sign in</h1>
<p>This server requires an API token (<code>runstatus tokens create</code>). The page makes every call with it and
sees only what the token may.</p>
{message}
<form class="sign-in" method="post" action="/sign-in">
<input type="hidden" name="next" value="{esc(next_path)}">{csrf_field(csrf)}
<label>API token <input type="password" name="token" autocomplete="off" required></label>
<button type="submit">Sign in</button>
</form>"""


def trace_link(template: str, trace_id: str) -> str:
    """A run's link to its trace (--trace-url-template, with {trace_id} in it; "" without one or a trace id)."""
    if not template or not trace_id:
        return ""
    url = template.replace("{trace_id}", trace_id)
    return f'<p class="trace"><a href="{esc(url)}" rel="noopener">Trace {esc(trace_id)} ⟩</a></p>'
