"""`runstatus notifications ...`: subscriptions to events (a webhook, Slack or email) and their
deliveries, over the NotificationService. Output as the other commands: tables for people,
--json for scripts."""

from __future__ import annotations

import pathlib
from typing import Annotated, Any, Optional

import typer

from runstatus import _cli_input as check
from runstatus import _cli_output as out
from runstatus._cli_input import InputError
from runstatus.cli import JsonOption, _name, _when, client, console, print_json
from runstatus.models import to_datetime
from runstatus.v1.event_pb2 import EventType
from runstatus.v1.notification_pb2 import (
    NotificationDelivery,
    NotificationDeliveryKind,
    NotificationDeliveryState,
    NotificationSubscription,
    SmtpSecurity,
    SmtpServer,
)
from runstatus.v1.status_pb2 import RunStatus

notifications: typer.Typer = typer.Typer(
    help="Notification subscriptions (a webhook, Slack or email) and their deliveries: list, get, create, update, "
         "delete, deliveries, redeliver, test. A project's admins manage its subscriptions; --for-project '*' is "
         "the instance's.",
    no_args_is_help=True)

STATES = ["pending", "retrying", "delivered", "dead"]
SECURITIES = ["none", "starttls", "tls"]
EVENT_TYPES = [n.removeprefix("EVENT_TYPE_").lower() for n in EventType.keys() if not n.endswith("UNSPECIFIED")]

ProjectOption = Annotated[str, typer.Option("--for-project", help="The subscriptions' project; '*' for the "
                                                                  "instance's (default: --project).")]
WebhookOption = Annotated[str, typer.Option("--webhook", help="A webhook URL: each event POSTed as JSON.")]
SecretOption = Annotated[Optional[str], typer.Option(
    "--secret", envvar="RUNSTATUS_NOTIFY_SECRET",
    help="The webhook's signing secret (Runstatus-Signature); prefer RUNSTATUS_NOTIFY_SECRET to the command line.")]
SlackOption = Annotated[str, typer.Option("--slack", help="A Slack incoming webhook URL.")]
EmailOption = Annotated[Optional[list[str]], typer.Option("--email", help="An email recipient; repeatable.")]
SmtpHostOption = Annotated[str, typer.Option("--smtp-host", help="The SMTP server for --email (default: the "
                                                                 "server's own).")]
SmtpPortOption = Annotated[int, typer.Option("--smtp-port", min=0, max=65535, help="Its port (0: the security's usual one).")]
SmtpSecurityOption = Annotated[str, typer.Option("--smtp-security", help="none, starttls or tls.")]
SmtpUserOption = Annotated[str, typer.Option("--smtp-username", help="Log in as this user.")]
SmtpPasswordOption = Annotated[Optional[pathlib.Path], typer.Option(
    "--smtp-password-file", help="A file holding the SMTP password (never on the command line).")]
SmtpFromOption = Annotated[str, typer.Option("--smtp-from", help="The From address.")]
StatusOption = Annotated[Optional[list[str]], typer.Option(
    "--status", help="Only runs going to these statuses (repeatable, or comma-separated; default: exception, lost).")]
EventTypeOption = Annotated[Optional[list[str]], typer.Option(
    "--event-type", help=f"Only these event types: {', '.join(EVENT_TYPES)} (default: run_status_changed).")]
WorkflowOption = Annotated[Optional[list[str]], typer.Option("--workflow", help="Only these workflows; repeatable.")]
RateOption = Annotated[Optional[int], typer.Option(
    "--max-per-minute", min=0, max=100_000, help="Messages a minute before a digest is sent instead (0: 10).")]


def _event_types(values: list[str] | None) -> list[str]:
    found = []
    for value in values or []:
        for part in value.split(","):
            if part.strip():
                found.append("EVENT_TYPE_" + check.choice("--event-type", check._enum(part, "EVENT_TYPE_"),
                                                          "an event type", EVENT_TYPES).upper())
    return found


def _smtp(host: str, port: int, security: str, username: str, password_file: pathlib.Path | None,
          from_address: str) -> SmtpServer | None:
    if not host:
        if port or username or password_file or from_address:
            raise InputError("--smtp-host", "is required with the other --smtp-* options")
        return None
    chosen = check.choice("--smtp-security", security, "an SMTP security", SECURITIES)
    password = check.read_text("--smtp-password-file", password_file).rstrip("\r\n") if password_file else ""
    return SmtpServer(host=host, port=port, security=SmtpSecurity.Value(f"SMTP_SECURITY_{chosen.upper()}"),
                      username=username, password=password, from_address=from_address)


def _target(webhook: str, secret: str | None, slack: str, email: list[str] | None, smtp: SmtpServer | None,
            *, required: bool) -> dict[str, Any]:
    given = [name for name, value in (("--webhook", webhook), ("--slack", slack), ("--email", email)) if value]
    if len(given) > 1:
        raise InputError(given[1], f"give one target: {' or '.join(given)}")
    if required and not given:
        raise InputError("--webhook", "a target is required: --webhook URL, --slack URL or --email ADDRESS")
    if secret and not webhook:
        raise InputError("--secret", "signs a --webhook's deliveries: give --webhook too")
    if smtp is not None and not email:
        raise InputError("--smtp-host", "is for --email")
    return {"webhook_url": webhook, "secret": secret or "", "slack_url": slack, "email_to": email or (), "smtp": smtp}


def _target_text(s: NotificationSubscription) -> str:
    kind = s.target.WhichOneof("kind")
    if kind == "webhook":
        return f"webhook {s.target.webhook.url}" + (" (signed)" if s.target.webhook.has_secret else "")
    if kind == "slack":
        return f"slack {s.target.slack.webhook_url}/…"
    if kind == "email":
        smtp = s.target.email.smtp
        return f"email {', '.join(s.target.email.to)}" + (f" via {smtp.host}" if smtp.host else "")
    return "?"


def _filter_text(s: NotificationSubscription) -> str:
    f = s.filter
    parts = [", ".join(_name(EventType, t, "EVENT_TYPE_").lower() for t in f.event_types),
             ", ".join(_name(RunStatus, v, "RUN_STATUS_").lower() for v in f.statuses)]
    if f.workflow_ids:
        parts.append("workflows " + ", ".join(f.workflow_ids))
    return "; ".join(p for p in parts if p) or "every event"


def _show_subscriptions(listed: list[NotificationSubscription]) -> None:
    out.show_table(console, ("subscription", "project", "name", "target", "filter", "per minute"),
                   [(s.id, s.project_id, s.name, _target_text(s), _filter_text(s), str(s.max_messages_per_minute))
                    for s in listed])


def _state(d: NotificationDelivery) -> str:
    return _name(NotificationDeliveryState, d.state, "NOTIFICATION_DELIVERY_STATE_").lower()


def _show_deliveries(listed: list[NotificationDelivery]) -> None:
    out.show_table(console, ("delivery", "kind", "state", "event", "attempts", "next attempt", "last error"),
                   [(d.id, _name(NotificationDeliveryKind, d.kind, "NOTIFICATION_DELIVERY_KIND_").lower(), _state(d),
                     str(d.event_sequence) if d.event_sequence > 0 else "", str(d.attempts),
                     _when(to_datetime(d.next_attempt_time)) if d.HasField("next_attempt_time") else "",
                     d.last_error) for d in listed])


@notifications.command("list")
def notifications_list(project: ProjectOption = "", as_json: JsonOption = False) -> None:
    """The subscriptions of the project (--for-project '*': the instance's), without their secrets."""
    with client() as c:
        listed = list(c.list_notification_subscriptions(project_id=project or None, page_size=1000))
    if as_json:
        print_json(listed)
    else:
        _show_subscriptions(listed)


@notifications.command("get")
def notifications_get(subscription_id: str, as_json: JsonOption = False) -> None:
    """A subscription, without its secrets (whether one is set shows)."""
    with client() as c:
        found = c.get_notification_subscription(subscription_id)
    if as_json:
        print_json(found)
    else:
        _show_subscriptions([found])


@notifications.command("create")
def notifications_create(
    webhook: WebhookOption = "", secret: SecretOption = None, slack: SlackOption = "", email: EmailOption = None,
    smtp_host: SmtpHostOption = "", smtp_port: SmtpPortOption = 0, smtp_security: SmtpSecurityOption = "starttls",
    smtp_username: SmtpUserOption = "", smtp_password_file: SmtpPasswordOption = None, smtp_from: SmtpFromOption = "",
    name: Annotated[str, typer.Option(help="What it is for, e.g. 'on-call pager'.")] = "",
    status: StatusOption = None, event_type: EventTypeOption = None, workflow: WorkflowOption = None,
    max_per_minute: RateOption = None, project: ProjectOption = "", as_json: JsonOption = False,
) -> None:
    """Subscribe a webhook, Slack or email to the project's events (default: runs going EXCEPTION or LOST)."""
    smtp = _smtp(smtp_host, smtp_port, smtp_security, smtp_username, smtp_password_file, smtp_from)
    target = _target(webhook, secret, slack, email, smtp, required=True)
    with client() as c:
        made = c.create_notification_subscription(
            **target, project_id=project or None, name=name, statuses=check.statuses(status),
            event_types=_event_types(event_type), workflow_ids=workflow or (),
            max_messages_per_minute=max_per_minute or 0)
    if as_json:
        print_json(made)
    else:
        console.print(f"subscription {made.id} created", markup=False, soft_wrap=True)
        _show_subscriptions([made])


@notifications.command("update")
def notifications_update(
    subscription_id: str,
    webhook: WebhookOption = "", secret: SecretOption = None, slack: SlackOption = "", email: EmailOption = None,
    smtp_host: SmtpHostOption = "", smtp_port: SmtpPortOption = 0, smtp_security: SmtpSecurityOption = "starttls",
    smtp_username: SmtpUserOption = "", smtp_password_file: SmtpPasswordOption = None, smtp_from: SmtpFromOption = "",
    name: Annotated[Optional[str], typer.Option(help="A new name.")] = None,
    status: StatusOption = None, event_type: EventTypeOption = None, workflow: WorkflowOption = None,
    max_per_minute: RateOption = None, as_json: JsonOption = False,
) -> None:
    """Change what is given (a filter option replaces the whole filter; a same URL keeps its secret)."""
    smtp = _smtp(smtp_host, smtp_port, smtp_security, smtp_username, smtp_password_file, smtp_from)
    target = _target(webhook, secret, slack, email, smtp, required=False)
    new_filter = status is not None or event_type is not None or workflow is not None
    with client() as c:
        try:
            updated = c.update_notification_subscription(
                subscription_id, name=name, **target,
                statuses=check.statuses(status) if new_filter else None,
                event_types=_event_types(event_type) if new_filter else None,
                workflow_ids=(workflow or []) if new_filter else None, max_messages_per_minute=max_per_minute)
        except ValueError as e:
            raise InputError("", str(e)) from None
    if as_json:
        print_json(updated)
    else:
        _show_subscriptions([updated])


@notifications.command("delete")
def notifications_delete(subscription_id: str, as_json: JsonOption = False) -> None:
    """Delete a subscription and the deliveries it is still owed."""
    with client() as c:
        c.delete_notification_subscription(subscription_id)
    if as_json:
        print_json({"subscription_id": subscription_id, "deleted": True})
    else:
        console.print(f"subscription {subscription_id} deleted", markup=False, soft_wrap=True)


@notifications.command("deliveries")
def notifications_deliveries(
    subscription_id: str,
    state: Annotated[Optional[list[str]], typer.Option(help=f"Only these states: {', '.join(STATES)}; repeatable.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="At most this many, newest first.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """A subscription's deliveries, newest first: state, attempts, next attempt, last error."""
    states = [check.choice("--state", part.strip(), "a delivery state", STATES)
              for value in state or [] for part in value.split(",") if part.strip()]
    with client() as c:
        listed = []
        for delivery in c.list_notification_deliveries(subscription_id, states=states, page_size=min(limit, 1000)):
            listed.append(delivery)
            if len(listed) >= limit:
                break
    if as_json:
        print_json(listed)
    else:
        _show_deliveries(listed)


@notifications.command("redeliver")
def notifications_redeliver(delivery_id: str, as_json: JsonOption = False) -> None:
    """Send a delivery again (a dead one, or one a receiver lost): same id, a new retry window."""
    with client() as c:
        delivery = c.redeliver_notification(delivery_id)
    if as_json:
        print_json(delivery)
    else:
        console.print(f"delivery {delivery.id} is owed again", markup=False, soft_wrap=True)


@notifications.command("test")
def notifications_test(subscription_id: str, as_json: JsonOption = False) -> None:
    """Send a subscription a test message; `deliveries` shows how it went."""
    with client() as c:
        delivery = c.send_test_notification(subscription_id)
    if as_json:
        print_json(delivery)
    else:
        console.print(f"test delivery {delivery.id} owed to {subscription_id}", markup=False, soft_wrap=True)
