"""The Notifications page's HTML: a project's subscriptions (and the instance's, for an instance
admin), each with its target as the API shows it (no secret), its filter, its rate cap, and its
latest deliveries with their state, attempts, next attempt and last error; a button to send a
test, and one to redeliver each delivery (POST forms with the CSRF token and a request_id)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from runstatus.models import to_datetime
from runstatus.v1.event_pb2 import EventType
from runstatus.v1.notification_pb2 import (
    NotificationDelivery,
    NotificationDeliveryKind,
    NotificationDeliveryState,
    NotificationSubscription,
)

from .render import action_fields, chip, esc, submit, when

SHOWN_DELIVERIES = 20  # of each subscription, newest first


def _enum_word(enum: Any, value: int, prefix: str) -> str:
    """An enum value as a word ("run status changed"); its number when unknown (a newer server's)."""
    if value not in enum.values():
        return str(value)
    return str(enum.Name(value)).removeprefix(prefix).lower().replace("_", " ")


def target(s: NotificationSubscription) -> str:
    kind = s.target.WhichOneof("kind")
    if kind == "webhook":
        signed = " <span class=\"muted\">(signed)</span>" if s.target.webhook.has_secret else ""
        return f"webhook <code>{esc(s.target.webhook.url)}</code>{signed}"
    if kind == "slack":
        return f"Slack <code>{esc(s.target.slack.webhook_url)}/…</code>"
    if kind == "email":
        via = f" via <code>{esc(s.target.email.smtp.host)}</code>" if s.target.email.smtp.host else ""
        return f"email to {esc(', '.join(s.target.email.to))}{via}"
    return "?"


def event_filter(s: NotificationSubscription) -> str:
    f = s.filter
    parts = [", ".join(esc(_enum_word(EventType, t, "EVENT_TYPE_")) for t in f.event_types)]
    if f.statuses:
        parts.append(" ".join(chip(status) for status in f.statuses))
    if f.workflow_ids:
        parts.append("workflows " + ", ".join(f"<code>{esc(w)}</code>" for w in f.workflow_ids))
    return "; ".join(p for p in parts if p) or "every event"


def _state(d: NotificationDelivery) -> str:
    word = _enum_word(NotificationDeliveryState, d.state, "NOTIFICATION_DELIVERY_STATE_")
    return f'<span class="delivery-state {esc(word)}">{esc(word)}</span>'


def deliveries_table(deliveries: Sequence[NotificationDelivery], query: str, csrf: str, why_not: str) -> str:
    if not deliveries:
        return '<p class="muted">No deliveries yet.</p>'
    rows = []
    for d in deliveries:
        next_attempt = when(to_datetime(d.next_attempt_time)) if d.HasField("next_attempt_time") else ""
        action = f"/notifications/deliveries/{quote(d.id, safe='')}/redeliver{query}"
        redeliver = (f'<form class="redeliver" method="post" action="{esc(action)}">{action_fields(csrf)}'
                     f'{submit("Redeliver", why_not, "redeliver-" + d.id)}</form>')
        rows.append(
            f'<tr data-delivery="{esc(d.id)}"><td><code>{esc(d.id)}</code></td>'
            f'<td>{esc(_enum_word(NotificationDeliveryKind, d.kind, "NOTIFICATION_DELIVERY_KIND_"))}</td>'
            f'<td>{_state(d)}</td><td>{d.event_sequence if d.event_sequence > 0 else ""}</td>'
            f'<td>{d.attempts}</td><td>{next_attempt}</td><td class="last-error">{esc(d.last_error)}</td>'
            f'<td>{redeliver}</td></tr>')
    return ('<table class="deliveries"><thead><tr><th>Delivery</th><th>Kind</th><th>State</th><th>Event</th>'
            '<th>Attempts</th><th>Next attempt</th><th>Last error</th><th></th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def subscription_section(s: NotificationSubscription, deliveries: Sequence[NotificationDelivery], query: str,
                         csrf: str, why_not: str) -> str:
    action = f"/notifications/subscriptions/{quote(s.id, safe='')}/test{query}"
    test = (f'<form class="send-test" method="post" action="{esc(action)}">{action_fields(csrf)}'
            f'{submit("Send a test", why_not, "test-" + s.id)}</form>')
    name = esc(s.name) if s.name else "<span class=\"muted\">(no name)</span>"
    return f"""<section class="subscription" data-subscription="{esc(s.id)}">
<h2>{name} <code class="id">{esc(s.id)}</code></h2>
<dl class="facts">
<dt>Project</dt><dd>{"the instance" if s.project_id == "*" else esc(s.project_id)}</dd>
<dt>Target</dt><dd class="target">{target(s)}</dd>
<dt>Filter</dt><dd class="filter">{event_filter(s)}</dd>
<dt>Rate cap</dt><dd>{s.max_messages_per_minute} a minute, then a digest</dd>
</dl>
{test}
<h3>Latest deliveries</h3>
{deliveries_table(deliveries, query, csrf, why_not)}
</section>"""


def page_body(sections: Sequence[str], notice: str, project: str) -> str:
    where = f"project {esc(project)}" if project else "your project"
    empty = ("" if sections else
             f'<p class="muted">No subscriptions for {where}. Create one with <code>runstatus notifications create'
             "</code> or the NotificationService API.</p>")
    return f'<h1>Notifications</h1>{notice}{empty}{"".join(sections)}'
