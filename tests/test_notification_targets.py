"""Notifications to Slack and email, digests past a rate cap, retention (issue 27): real servers
(tests/harness.py) on the backend RUNSTATUS_TEST_DB says, a real HTTP receiver and a real SMTP
server (aiosmtpd, with STARTTLS and a login) started here. Subscriptions are written straight
into the database, as the server's loops read them from there. No duration is asserted but
lower bounds; every wait is for a condition, with a generous deadline."""

from __future__ import annotations

import email
import email.policy
import http.server
import json
import pathlib
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from harness import Client, ServerProcess, eventually, free_port, query
from runstatus_server.notifications import digests, mail, messages, slack
from runstatus_server.store.base import DELIVERY_DEAD, DELIVERY_DELIVERED, DELIVERY_DIGEST, DELIVERY_PENDING
from runstatus_server.store.rows import NOTIFICATION_DELIVERY_COLUMNS, NOTIFICATION_SUBSCRIPTION_COLUMNS

pytest_plugins = ["pg"]

FAST = ("--notify-backoff-min-seconds", "0.2", "--notify-backoff-max-seconds", "1")
PUBLIC_URL = "https://status.example.org"
LOST = json.dumps({"eventTypes": ["EVENT_TYPE_RUN_STATUS_CHANGED"], "statuses": ["RUN_STATUS_LOST"]})
SMTP_USER, SMTP_PASSWORD = "notifier", "smtp-password-never-logged"


def wait_for(check: Callable[[], Any], what: str, timeout: float = 90) -> Any:
    return eventually(check, what, timeout=timeout)


# --- the database, written from outside ------------------------------------------------------

def execute(db: str, sql: str, *args: Any) -> None:
    if db.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(db) as conn:
            conn.execute(sql.replace("?", "%s"), args)  # type: ignore[arg-type]
    else:
        import sqlite3

        with sqlite3.connect(db, timeout=30) as conn:
            conn.execute(sql, args)


def insert(db: str, table: str, columns: tuple[str, ...], row: dict[str, Any]) -> None:
    execute(db, f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            *(row[c] for c in columns))


def subscribe(server: ServerProcess, kind: str, target: str, *, secret: str = "", per_minute: int = 0,
              event_filter: str = LOST) -> str:
    """A subscription to every project's events from now on (its cursor at the log's end)."""
    sid = f"sub-{uuid.uuid4().hex[:8]}"
    now = int(time.time() * 1e6)
    cursor = query(server.db, "SELECT coalesce(max(seq), 0) FROM events")[0][0]
    insert(server.db, "notification_subscriptions", NOTIFICATION_SUBSCRIPTION_COLUMNS, {
        "id": sid, "project_id": "", "target_kind": kind, "target": target, "secret": secret,
        "event_filter": event_filter, "scan_cursor": cursor, "create_time": now, "update_time": now,
        "name": f"{kind} test", "max_per_minute": per_minute})
    return sid


def deliveries(server: ServerProcess, sid: str) -> list[tuple[Any, ...]]:
    """(state, attempts, kind, event_count) of the subscription's deliveries."""
    return query(server.db, "SELECT state, attempts, kind, event_count FROM notification_deliveries "
                            "WHERE subscription_id = ? ORDER BY create_time", sid)


# --- receivers -------------------------------------------------------------------------------

@dataclass
class Posted:
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HttpReceiver:
    """Answers every POST 200 "ok" (as a Slack incoming webhook does) and keeps it."""

    def __init__(self) -> None:
        self.posts: list[Posted] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.posts.append(Posted(dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket.listen(128)  # not socketserver's 5: a dropped SYN is sent again 1 s later
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/secretpath"

    def by_delivery(self) -> dict[str, Posted]:
        with self.lock:
            return {p.headers["Runstatus-Delivery"]: p for p in self.posts}


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    r = HttpReceiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


@dataclass
class Mailbox:
    """What an SMTP server received: each message parsed, with its envelope."""

    messages: list[tuple[list[str], email.message.EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), parsed))  # type: ignore[arg-type]
        return "250 OK"

    def by_delivery(self) -> dict[str, email.message.EmailMessage]:
        return {m[mail.DELIVERY_HEADER]: m for _, m in list(self.messages)}


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        SMTP_USER.encode(), SMTP_PASSWORD.encode())
    return AuthResult(success=ok, handled=False)


@contextmanager
def smtp_server(port: int = 0, tls: ssl.SSLContext | None = None) -> Iterator[tuple[Mailbox, int]]:
    """aiosmtpd on loopback; with a TLS context, STARTTLS and a login are required."""
    box = Mailbox()
    port = port or free_port()
    extra: dict[str, Any] = {}
    if tls is not None:
        extra = {"tls_context": tls, "require_starttls": True, "auth_required": True,
                 "authenticator": authenticate, "auth_require_tls": True}
    controller = Controller(box, hostname="127.0.0.1", port=port, **extra)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


# --- servers and runs ------------------------------------------------------------------------

@contextmanager
def notifying_server(tmp: pathlib.Path, *args: str, lease: float = 2) -> Iterator[tuple[ServerProcess, Client]]:
    server = ServerProcess(tmp / "runstatus.db", "--notify-allow-private", "--lease-seconds", str(lease),
                           "--sweep-seconds", "0.1", *FAST, *args).start()
    client = Client(server.address)
    client.new_project()
    try:
        yield server, client
    finally:
        client.close()
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


def lose_runs(client: Client, n: int) -> set[str]:
    """n runs claimed and abandoned: LOST together once their leases expire."""
    workflow = client.workflow(["a"])
    runs = {client.work_order(workflow).run.id for _ in range(n)}
    claimed: set[str] = set()
    for _ in range(n):
        claimed |= {c.run.id for c in client.claim(max_runs=100)}
        if claimed >= runs:
            return runs
    raise AssertionError("the runs were not all handed out")


# --- Slack -----------------------------------------------------------------------------------

def test_a_slack_message_names_the_run_and_links_its_page(tmp: pathlib.Path, http_receiver: HttpReceiver) -> None:
    with notifying_server(tmp, "--public-url", PUBLIC_URL + "/") as (server, client):
        sid = subscribe(server, "slack", http_receiver.url)
        runs = lose_runs(client, 2)
        posted = wait_for(lambda: len(http_receiver.by_delivery()) == 2 and http_receiver.by_delivery(), "two messages")
        wait_for(lambda: {d[0] for d in deliveries(server, sid)} == {DELIVERY_DELIVERED}, "recorded delivered")
        texts = [p.json()["text"] for p in posted.values()]
        assert all(set(p.json()) == {"text"} for p in posted.values())
        for run in runs:
            text = next(t for t in texts if run in t)
            assert text.startswith(f"<{PUBLIC_URL}/work-orders/") and "|⚫ LOST: workflow wf-" in text and "run #1" in text
            assert f"<{PUBLIC_URL}/work-orders/" in text and f"run={run}" in text and f"project={client.project_id}" in text
        assert "secretpath" not in server.log_path.read_text(), "a Slack URL's path is a secret"


# --- email -----------------------------------------------------------------------------------

@pytest.fixture
def tls_files(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A CA the servers started from here trust (SSL_CERT_FILE), and the SMTP server's context."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def test_an_email_through_starttls_with_a_login_has_the_runs_subject_and_a_stable_message_id(
        tmp: pathlib.Path, tls_files: ssl.SSLContext) -> None:
    """The server's own SMTP server (--smtp-*), STARTTLS and a login with the password from its
    file; the password is in no log line."""
    password_file = tmp / "smtp-password"
    password_file.write_text(SMTP_PASSWORD + "\n")
    with smtp_server(tls=tls_files) as (box, port), notifying_server(
            tmp, "--smtp-host", "127.0.0.1", "--smtp-port", str(port), "--smtp-security", "starttls",
            "--smtp-username", SMTP_USER, "--smtp-password-file", str(password_file),
            "--smtp-from", "runstatus@example.org", "--public-url", PUBLIC_URL) as (server, client):
        sid = subscribe(server, "email", json.dumps({"to": ["oncall@example.org"]}))
        runs = lose_runs(client, 1)
        wait_for(lambda: len(box.messages) == 1, "the email arrived")
        (rcpt, message), = box.messages
        assert rcpt == ["oncall@example.org"]
        (delivery_id, state), = query(server.db, "SELECT id, state FROM notification_deliveries WHERE subscription_id = ?", sid)
        assert message[mail.DELIVERY_HEADER] == delivery_id
        assert message["Message-ID"] == f"<runstatus.{delivery_id}@example.org>"
        assert message["From"] == "runstatus@example.org"
        assert message["Subject"].startswith("[runstatus] LOST: workflow wf-") and message["Subject"].endswith(" run #1")
        text = message.get_content()
        run = next(iter(runs))
        assert "LOST: workflow wf-" in text and run in text and f"{PUBLIC_URL}/work-orders/" in text
        wait_for(lambda: deliveries(server, sid)[0][0] == DELIVERY_DELIVERED, "recorded delivered")
        assert SMTP_PASSWORD not in server.log_path.read_text()


def test_an_smtp_server_down_for_a_while_gets_every_email_once_back(tmp: pathlib.Path) -> None:
    """The subscription's own SMTP server (plain, on a port nothing listens on yet): each email
    fails twice, then the server comes up and gets each once."""
    port = free_port()
    target = {"to": ["dev@example.org"], "smtp": {"host": "127.0.0.1", "port": port, "security": "SMTP_SECURITY_NONE",
                                                   "fromAddress": "alerts@example.org"}}
    with notifying_server(tmp) as (server, client):
        sid = subscribe(server, "email", json.dumps(target))
        runs = lose_runs(client, 3)
        wait_for(lambda: [d[1] >= 2 for d in deliveries(server, sid)] == [True] * 3, "each failed twice")
        with smtp_server(port) as (box, _):
            wait_for(lambda: {d[0] for d in deliveries(server, sid)} == {DELIVERY_DELIVERED}, "all delivered")
            got = box.by_delivery()
            assert len(got) == len(box.messages) == 3, "each once"
            assert {run for run in runs if any(run in m.get_content() for m in got.values())} == runs
            assert all(m["From"] == "alerts@example.org" for m in got.values())


def test_a_hung_smtp_server_delays_no_webhook_subscription(tmp: pathlib.Path, http_receiver: HttpReceiver) -> None:
    """An SMTP server that accepts connections and never says a word: the email deliveries wait
    out their timeout, while a webhook subscription gets every event meanwhile."""
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)
    target = {"to": ["dev@example.org"], "smtp": {"host": "127.0.0.1", "port": hung.getsockname()[1],
                                                   "security": "SMTP_SECURITY_NONE", "fromAddress": "a@example.org"}}
    try:
        with notifying_server(tmp) as (server, client):
            emails = subscribe(server, "email", json.dumps(target))
            hooks = subscribe(server, "webhook", http_receiver.url)
            started = time.monotonic()
            runs = lose_runs(client, 5)
            wait_for(lambda: len(http_receiver.by_delivery()) == 5, "the webhook got all five")
            took = time.monotonic() - started
            assert {p.json()["runId"] for p in http_receiver.by_delivery().values()} == runs
            assert {d[0] for d in deliveries(server, hooks)} <= {DELIVERY_DELIVERED, DELIVERY_PENDING}
            # The emails are still owed, never attempted to the end (the hang is 10 s) unless this was slow.
            if took < 8:
                assert [d[:2] for d in deliveries(server, emails)] == [(DELIVERY_PENDING, 0)] * 5
    finally:
        hung.close()


# --- a storm is one message ------------------------------------------------------------------

def test_a_thousand_runs_lost_at_once_are_ten_messages_and_digests_with_every_run_once(
        tmp: pathlib.Path, http_receiver: HttpReceiver) -> None:
    """Capped at 10 messages per (shortened) window: at most ~10 single messages a window, the
    rest in digests whose counts add up to exactly the rest, every run listed once."""
    window = 6.0
    with notifying_server(tmp, "--notify-rate-window-seconds", str(window), lease=3) as (server, client):
        sid = subscribe(server, "webhook", http_receiver.url, per_minute=10)
        runs = lose_runs(client, 1000)
        first_lost = time.monotonic()

        def all_there() -> bool:
            got = http_receiver.by_delivery().values()
            return sum(p.json().get("count", 1) for p in got) >= 1000

        wait_for(all_there, "every run in a message", timeout=150)
        got = list(http_receiver.by_delivery().values())
        singles = [p.json() for p in got if p.json().get("type") != "digest"]
        digests_ = [p.json() for p in got if p.json().get("type") == "digest"]
        listed = [e["runId"] for d in digests_ for e in d["events"]] + [s["runId"] for s in singles]
        assert len(listed) == 1000 and set(listed) == runs, ("every run once, none twice", len(singles),
                                                             [(d["count"], len(d["events"])) for d in digests_])
        assert sum(d["count"] for d in digests_) + len(singles) == 1000
        windows = 1 + (time.monotonic() - first_lost) / window
        assert len(singles) <= 10 * windows and len(digests_) <= windows + 1, (len(singles), len(digests_))
        assert len(singles) + len(digests_) <= 30, "a storm is a few messages, not a thousand"
        rows = deliveries(server, sid)
        assert sum(r[3] for r in rows) == 1000 and {r[2] for r in rows if r[3] > 1} == {DELIVERY_DIGEST}


def test_a_digest_lists_at_most_max_listed_events_and_counts_them_all() -> None:
    from runstatus_server.store.base import NotificationDelivery, NotificationSubscription

    class Tx:  # the three reads and writes owe() makes, in memory: the logic alone
        def __init__(self) -> None:
            self.rows: list[NotificationDelivery] = []

        def open_notification_digest(self, sid: str) -> Any:
            return next((d for d in self.rows if d.kind == DELIVERY_DIGEST and d.attempts == 0), None)

        def count_notification_deliveries_since(self, sid: str, since: int) -> int:
            return sum(d.create_time >= since for d in self.rows)

        def add_notification_deliveries(self, rows: list[Any]) -> int:
            self.rows += rows
            return len(rows)

        def list_notification_deliveries(self, sid: str, states: Any, after: Any, limit: int) -> list[Any]:
            return sorted(self.rows, key=lambda d: -d.create_time)[:limit]

        def put_notification_delivery(self, d: Any) -> None:
            pass

    tx = Tx()
    sub = NotificationSubscription("s", "webhook", "", "", "{}", max_per_minute=2)
    event = lambda n: NotificationDelivery(f"d{n}", "s", n, json.dumps({"runId": f"r{n}"}).encode(), 1_000_000, 0)  # noqa: E731
    total = digests.MAX_LISTED + 50
    for start in range(1, total + 1, 500):
        digests.owe(tx, sub, [event(n) for n in range(start, min(start + 500, total + 1))], 1_000_000)  # type: ignore[arg-type]
    singles = [d for d in tx.rows if d.kind != DELIVERY_DIGEST]
    (digest,) = [d for d in tx.rows if d.kind == DELIVERY_DIGEST]
    body = json.loads(digest.body)
    assert len(singles) == 2 and digest.event_count == body["count"] == total - 2
    assert len(body["events"]) == digests.MAX_LISTED and digest.event_seq == 3
    assert digest.next_attempt_time == 1_000_000 + 60_000_000, "when the first message leaves the minute"


# --- rendering -------------------------------------------------------------------------------

def test_slack_and_email_render_a_digest_and_a_test() -> None:
    events = [{"workflowId": "wf", "workOrderId": f"wo{i}", "runId": f"r{i}", "runNumber": 1, "projectId": "p",
               "status": "RUN_STATUS_LOST"} for i in range(60)]
    body = json.dumps({"type": "digest", "count": 70, "events": events}).encode()
    text = json.loads(slack.render(body, PUBLIC_URL))["text"]
    assert text.splitlines()[0].startswith("70 events in one message")
    assert text.count("<https://status.example.org/work-orders/wo") == slack.MAX_LINES
    assert text.endswith("... and 20 more")
    said = mail.message("d1", body, ["a@example.org"], "x@example.org", "")
    assert said["Subject"] == "[runstatus] 70 runs changed status (60 LOST, ...)"
    assert "http" not in said.get_content(), "no --public-url, no links"
    test = json.dumps({"type": "test", "subscriptionId": "s", "message": "hello"}).encode()
    assert json.loads(slack.render(test, ""))["text"] == "Test notification: hello"
    assert messages.of(test, "").subject == "[runstatus] test notification"
    assert slack.escape("<a & b>") == "&lt;a &amp; b&gt;"


# --- retention -------------------------------------------------------------------------------

def test_retention_deletes_what_is_done_past_the_window_and_nothing_owed(tmp: pathlib.Path) -> None:
    day = 86400 * 1_000_000
    with notifying_server(tmp, "--notify-retention-days", "30") as (server, client):
        sid = subscribe(server, "webhook", "http://127.0.0.1:9/")
        now = int(time.time() * 1e6)
        rows = {"old-delivered": (DELIVERY_DELIVERED, now - 40 * day, now - 40 * day),
                "old-dead": (DELIVERY_DEAD, now - 31 * day, now - 31 * day),
                "old-owed": (DELIVERY_PENDING, now - 40 * day, now + day),  # not due yet: untouched
                "recent-delivered": (DELIVERY_DELIVERED, now - 29 * day, now - 29 * day)}
        for seq, (did, (state, updated, due)) in enumerate(rows.items(), start=1):
            insert(server.db, "notification_deliveries", NOTIFICATION_DELIVERY_COLUMNS, {
                "id": did, "subscription_id": sid, "event_seq": -seq, "next_attempt_time": due, "body": b"{}",
                "create_time": updated, "update_time": updated, "state": state, "attempts": 1, "last_error": "",
                "kind": 1, "event_count": 1, "owed_time": updated})
        left = lambda: {r[0] for r in query(server.db, "SELECT id FROM notification_deliveries")}  # noqa: E731
        wait_for(lambda: left() == {"old-owed", "recent-delivered"}, "the old delivered and dead ones deleted")
        # The line is logged after the DELETE commits: it may reach the log a moment after the rows go.
        deleted = lambda: sum(e["count"] for e in server.log_entries()  # noqa: E731
                              if e.get("message") == "notification deliveries past their retention deleted")
        wait_for(lambda: deleted() >= 2, "the deletions logged")
        assert deleted() == 2
