"""What a delivery says to a person (Slack, email): rendered at send time from the delivery's body,
the JSON a webhook gets (an event; a digest {"type": "digest", "count", "events"}; a test
{"type": "test", "subscriptionId", "message"}). A run's line names its status (chip and name from
the status table), workflow, work order and run, with a link to the run's page when the server
knows its public URL (--public-url); without it there are no links."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from runstatus import status_table
from runstatus.v1.status_pb2 import RunStatus

SUBJECT_PREFIX = "[runstatus]"


def status_name(status: str) -> str:
    """RUN_STATUS_LOST -> LOST."""
    return status.removeprefix("RUN_STATUS_") or "UNSPECIFIED"


def chip(status: str) -> str:
    try:
        return status_table.chip(RunStatus.Value(status))
    except (ValueError, KeyError):
        return ""


def run_url(public_url: str, event: dict[str, Any]) -> str:
    """The run's page on the history page (web/app.py: /work-orders/ID?project=P&run=R); "" when
    the server has no --public-url or the event names no work order."""
    work_order = event.get("workOrderId", "")
    if not public_url or not work_order:
        return ""
    query = {k: v for k, v in (("project", event.get("projectId", "")), ("run", event.get("runId", ""))) if v}
    return f"{public_url.rstrip('/')}/work-orders/{quote(work_order, safe='')}" + (f"?{urlencode(query)}" if query else "")


def summary(event: dict[str, Any]) -> str:
    """One line: "⚫ LOST: workflow referral, work order wo-1, run #3 (r-9)"."""
    run = f"run #{event.get('runNumber', 0)}" + (f" ({event['runId']})" if event.get("runId") else "")
    parts = [f"workflow {event.get('workflowId', '?')}", f"work order {event.get('workOrderId', '?')}", run]
    status = event.get("status", "")
    return f"{chip(status)} {status_name(status)}: {', '.join(parts)}".strip()


@dataclass(frozen=True)
class Message:
    """A delivery in words: a subject line, an intro, and the runs, each a line and its link ("":
    none)."""

    subject: str
    intro: str
    runs: list[tuple[str, str]]
    more: int = 0  # events a digest counts but does not list (its list is capped)


def of(body: bytes, public_url: str) -> Message:
    data = json.loads(body)
    kind = data.get("type", "")
    if kind == "test":
        return Message(f"{SUBJECT_PREFIX} test notification",
                       f"Test notification: {data.get('message') or 'this subscription works'}", [])
    if kind == "digest":
        events = data.get("events", [])
        count = int(data.get("count", len(events)))
        tally = ", ".join(f"{n} {s}" for s, n in Counter(status_name(e.get("status", "")) for e in events).most_common())
        more = count - len(events)
        return Message(f"{SUBJECT_PREFIX} {count} runs changed status ({tally}{', ...' if more else ''})",
                       f"{count} events in one message: the subscription's rate cap was reached.",
                       [(summary(e), run_url(public_url, e)) for e in events], more)
    return Message(f"{SUBJECT_PREFIX} {status_name(data.get('status', ''))}: workflow {data.get('workflowId', '?')} "
                   f"run #{data.get('runNumber', 0)}", "", [(summary(data), run_url(public_url, data))])
