"""Subscriptions and deliveries between the API's messages and the store's rows.

A row keeps a target as its kind ("webhook", "slack", "email"), where it goes (the webhook's or
Slack's URL; for email the protobuf JSON of the EmailTarget, its password cleared) and its secret
(the webhook's signing secret, or the SMTP password). What the API shows is redacted: no secret,
no SMTP password, and of a Slack URL, whose path is the secret, its origin only.
"""

from __future__ import annotations

import json

from google.protobuf import json_format

from runstatus import status_table
from runstatus.v1 import notification_pb2 as pb
from runstatus.v1.event_pb2 import EventType
from runstatus.v1.status_pb2 import RunStatus

from ..store.base import (
    DELIVERY_DEAD,
    DELIVERY_DELIVERED,
    DELIVERY_PENDING,
    NotificationDelivery,
    NotificationSubscription,
)
from ..util import timestamp
from . import sender

WEBHOOK, SLACK, EMAIL = "webhook", "slack", "email"
INSTANCE = "*"  # the API's project_id of an instance subscription; stored as ""
DEFAULT_PER_MINUTE = 10

State = pb.NotificationDeliveryState
# The API's delivery states as the store's (state, attempted) pairs: an owed delivery is
# PENDING until its first attempt, RETRYING after.
STATE_QUERIES: dict[int, tuple[int, bool | None]] = {
    State.NOTIFICATION_DELIVERY_STATE_PENDING: (DELIVERY_PENDING, False),
    State.NOTIFICATION_DELIVERY_STATE_RETRYING: (DELIVERY_PENDING, True),
    State.NOTIFICATION_DELIVERY_STATE_DELIVERED: (DELIVERY_DELIVERED, None),
    State.NOTIFICATION_DELIVERY_STATE_DEAD: (DELIVERY_DEAD, None),
}


def stored_project(project_id: str) -> str:
    return "" if project_id == INSTANCE else project_id


def api_project(stored: str) -> str:
    return stored or INSTANCE


def default_statuses() -> list[RunStatus.ValueType]:
    """The statuses whose status-table row notifies the instance superuser (EXCEPTION, LOST)."""
    return sorted(s for s, row in status_table.statuses().items() if row.notifies_admin)


def with_defaults(flt: pb.NotificationFilter) -> pb.NotificationFilter:
    """A filter as created: nothing given means run status changes to EXCEPTION or LOST."""
    made = pb.NotificationFilter()
    made.CopyFrom(flt)
    if not made.event_types:
        made.event_types.append(EventType.EVENT_TYPE_RUN_STATUS_CHANGED)
    if not made.statuses:
        made.statuses.extend(default_statuses())
    return made


def filter_json(flt: pb.NotificationFilter) -> str:
    """As outbox.Filter reads it: {"eventTypes": [...], "statuses": [...], "workflowIds": [...]}."""
    return json.dumps(json_format.MessageToDict(flt), sort_keys=True)


def filter_of(stored: str) -> pb.NotificationFilter:
    return json_format.ParseDict(json.loads(stored or "{}"), pb.NotificationFilter(), ignore_unknown_fields=True)


def email_of(stored: NotificationSubscription) -> pb.EmailTarget:
    return json_format.Parse(stored.target or "{}", pb.EmailTarget(), ignore_unknown_fields=True)


def target_row(target: pb.NotificationTarget) -> tuple[str, str, str]:
    """(kind, target, secret) of the store for a target as given."""
    kind = target.WhichOneof("kind")
    if kind == WEBHOOK:
        return WEBHOOK, target.webhook.url, target.webhook.secret
    if kind == SLACK:
        return SLACK, target.slack.webhook_url, ""
    email = pb.EmailTarget()
    email.CopyFrom(target.email)
    password = email.smtp.password
    email.smtp.password, email.smtp.has_password = "", False
    if not target.email.HasField("smtp"):
        email.ClearField("smtp")
    return EMAIL, json.dumps(json_format.MessageToDict(email), sort_keys=True), password


def target_row_keeping_secret(target: pb.NotificationTarget, current: NotificationSubscription) -> tuple[str, str, str]:
    """As `target_row`, for an update: a target given without its secret keeps the one stored
    when it still goes to the same place (a webhook's URL, an SMTP host); a Slack URL given as
    a read shows it (its origin) keeps the stored URL. Elsewhere, a secret is never carried over."""
    kind, where, secret = target_row(target)
    if kind != current.target_kind:
        return kind, where, secret
    if kind == WEBHOOK and not secret and where == current.target:
        secret = current.secret
    elif kind == SLACK and where == sender.origin(current.target):
        where = current.target
    elif kind == EMAIL and not secret and target.email.smtp.host and \
            target.email.smtp.host == email_of(current).smtp.host:
        secret = current.secret
    return kind, where, secret


def target_shown(stored: NotificationSubscription) -> pb.NotificationTarget:
    """The target as reads show it: no secret, no password, a Slack URL's origin."""
    if stored.target_kind == SLACK:
        return pb.NotificationTarget(slack=pb.SlackTarget(webhook_url=sender.origin(stored.target)))
    if stored.target_kind == EMAIL:
        email = email_of(stored)
        if email.HasField("smtp"):
            email.smtp.password = ""
            email.smtp.has_password = bool(stored.secret)
        return pb.NotificationTarget(email=email)
    return pb.NotificationTarget(webhook=pb.WebhookTarget(url=stored.target, has_secret=bool(stored.secret)))


def shown(stored: NotificationSubscription) -> pb.NotificationSubscription:
    return pb.NotificationSubscription(
        id=stored.id, project_id=api_project(stored.project_id), name=stored.name, target=target_shown(stored),
        filter=filter_of(stored.event_filter), max_messages_per_minute=stored.max_per_minute or DEFAULT_PER_MINUTE,
        create_time=timestamp(stored.create_time), update_time=timestamp(stored.update_time))


def delivery_state(delivery: NotificationDelivery) -> pb.NotificationDeliveryState.ValueType:
    if delivery.state == DELIVERY_DELIVERED:
        return State.NOTIFICATION_DELIVERY_STATE_DELIVERED
    if delivery.state == DELIVERY_DEAD:
        return State.NOTIFICATION_DELIVERY_STATE_DEAD
    return State.NOTIFICATION_DELIVERY_STATE_RETRYING if delivery.attempts else State.NOTIFICATION_DELIVERY_STATE_PENDING


def delivery_shown(delivery: NotificationDelivery) -> pb.NotificationDelivery:
    d = delivery
    shown_delivery = pb.NotificationDelivery(
        id=d.id, subscription_id=d.subscription_id, kind=pb.NotificationDeliveryKind.ValueType(d.kind),
        state=delivery_state(d), event_sequence=d.event_seq, event_count=d.event_count, attempts=d.attempts,
        last_error=d.last_error, create_time=timestamp(d.create_time), update_time=timestamp(d.update_time))
    if d.state == DELIVERY_PENDING:
        shown_delivery.next_attempt_time.CopyFrom(timestamp(d.next_attempt_time))
    return shown_delivery
