"""The admin webhook under faults (issue 27, first slice): real servers (tests/harness.py) on the
backend RUNSTATUS_TEST_DB says, and a real HTTP receiver on loopback that verifies every
signature as the README shows, counts deliveries by their distinct id, and can be down, answer
500 or 429 with Retry-After, hang, or answer bytes that are not HTTP. Every owed notification
arrives: nothing is owed only in memory. (No durations are asserted, only lower bounds a loaded
machine cannot break; every wait is for a condition, with a generous deadline.)"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import http.server
import json
import pathlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from harness import Client, ServerProcess, error, eventually, free_port, query, scrape
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1.status_pb2 import RunStatus
from runstatus_server.notifications.retries import Retries, retry_after_seconds
from runstatus_server.notifications.signing import signature
from runstatus_server.store.base import DELIVERY_DEAD, NotificationDelivery

pytest_plugins = ["pg"]

SECRET = "whsec-test-only"
# Short waits between attempts, so that a test sees several within seconds.
FAST = ("--notify-backoff-min-seconds", "0.2", "--notify-backoff-max-seconds", "1")
OK, HANG, GARBAGE = "ok", "hang", "garbage"


# --- the receiver ----------------------------------------------------------------------------

def verify(secret: str, header: str, body: bytes, tolerance: float = 300) -> bool:
    """The README's check of Runstatus-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", "")) and abs(time.time() - timestamp) <= tolerance


@dataclass
class Request:
    at: float  # time.monotonic() when it arrived
    delivery: str
    sequence: int
    signed: bool  # its signature verified
    run_id: str
    status: str
    attempt: int  # the how-manieth request with this delivery id


class Receiver:
    """A webhook receiver on a loopback port. `plan(request)` says how to answer: OK (204, and the
    delivery counts as received, once per id), an HTTP status, (429, Retry-After value), HANG
    (held until `release` is set, then 503: a held request never counts), or GARBAGE (bytes that
    are not HTTP, then the connection closes)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.plan: Callable[[Request], Any] = lambda request: OK
        self.requests: list[Request] = []
        self.received: dict[str, Request] = {}  # by delivery id: the first answered OK
        self.held = 0  # requests hanging now
        self.release = threading.Event()
        self.lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/runstatus"

    def start(self) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                event = json.loads(body)
                delivery = self.headers.get("Runstatus-Delivery", "")
                with receiver.lock:
                    request = Request(time.monotonic(), delivery, int(self.headers.get("Runstatus-Event-Sequence", 0)),
                                      verify(SECRET, self.headers.get("Runstatus-Signature", ""), body),
                                      event.get("runId", ""), event.get("status", ""),
                                      1 + sum(r.delivery == delivery for r in receiver.requests))
                    receiver.requests.append(request)
                answer = receiver.plan(request)
                if answer == HANG:
                    with receiver.lock:
                        receiver.held += 1
                    receiver.release.wait(120)
                    with receiver.lock:
                        receiver.held -= 1
                    answer = 503
                if answer == GARBAGE:
                    self.wfile.write(b"\x00\xff\xfe this is not HTTP \x01\x02\r\n\r\n")
                    self.close_connection = True
                    return
                if answer == OK and not request.signed:
                    answer = 401
                status, retry_after = answer if isinstance(answer, tuple) else (answer, None)
                if status == OK:
                    with receiver.lock:
                        receiver.received.setdefault(delivery, request)
                    status = 204
                self.send_response(status)
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

            def handle(self) -> None:
                try:
                    super().handle()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the server gave up on a held request (stopped, or its timeout)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._server.socket.listen(128)  # not socketserver's 5: a dropped SYN is sent again 1 s later
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: connections are refused from now on."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def received_runs(self) -> set[str]:
        with self.lock:
            return {r.run_id for r in self.received.values()}

    def attempts(self, run_id: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.run_id == run_id]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.release.set()
    r.stop()


# --- helpers ---------------------------------------------------------------------------------

def wait_for(check: Callable[[], Any], what: str) -> Any:
    """Generous: a loaded 2-core machine may be slow, never wrong."""
    return eventually(check, what, timeout=90)


@contextmanager
def notifying_server(tmp: pathlib.Path, receiver: Receiver, *args: str,
                     lease: float = 2) -> Iterator[tuple[ServerProcess, Client]]:
    """A server whose admin webhook is the receiver, signing with SECRET, retrying quickly, and
    whose claimed runs are LOST `lease` seconds after their last heartbeat."""
    server = ServerProcess(tmp / "runstatus.db", "--admin-webhook", receiver.url, "--admin-webhook-secret", SECRET,
                           "--lease-seconds", str(lease), "--sweep-seconds", "0.1", *FAST, *args).start()
    client = Client(server.address)
    client.new_project()
    try:
        yield server, client
    finally:
        client.close()
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


def lose_runs(client: Client, n: int) -> set[str]:
    """n runs claimed and abandoned: LOST once their leases expire."""
    workflow = client.workflow(["a"])
    runs = {client.work_order(workflow).run.id for _ in range(n)}
    claimed: set[str] = set()
    for _ in range(100):
        claimed |= {c.run.id for c in client.claim(max_runs=10)}
        if claimed >= runs:
            return runs
    raise AssertionError("the runs were not all handed out")


def exception_run(client: Client) -> str:
    """A run that ends EXCEPTION (a worker's socket closed under a step), in a project of its own."""
    client.new_project()
    created = client.work_order(client.workflow(["a"]))
    lease = client.claim_run(created.run.id)
    lease.start()
    lease.done(lease.step("a").id, error("WorkerSocketClosed", source=2))
    run = client.work_orders.GetRun(wo_pb.GetRunRequest(run_id=created.run.id)).run
    assert run.status == RunStatus.RUN_STATUS_EXCEPTION
    return str(created.run.id)


def owed(server: ServerProcess) -> list[tuple[Any, ...]]:
    """(event sequence, state, attempts) of every delivery, from the database itself."""
    return query(server.db, "SELECT event_seq, state, attempts FROM notification_deliveries ORDER BY event_seq")


def metric(text: str, name: str) -> float:
    found = re.search(rf'^{name}{{target_kind="webhook"}} (\S+)$', text, re.M)
    assert found, f"{name} not in the metrics"
    return float(found.group(1))


# --- the faults of issue 27's table ----------------------------------------------------------

def test_a_receiver_down_for_a_while_gets_every_notification_once_back(tmp: pathlib.Path,
                                                                         receiver: Receiver) -> None:
    """Was 0/20: the receiver refuses connections while 20 runs go LOST, and for as long as it
    takes each of the 20 deliveries to fail twice; back, it gets all 20, signed."""
    with notifying_server(tmp, receiver) as (server, client):
        runs = lose_runs(client, 20)
        wait_for(lambda: len([d for d in owed(server) if d[2] >= 2]) == 20, "each delivery failed twice")
        assert not receiver.requests
        receiver.start()
        wait_for(lambda: receiver.received_runs() == runs, "all 20 were received")
        assert all(r.signed for r in receiver.requests)
        wait_for(lambda: {d[1] for d in owed(server)} == {1}, "every delivery is marked delivered")
        failures = [e for e in server.log_entries() if e.get("message") == "notification not delivered; trying again"]
        assert len(failures) >= 40 and "hooks" not in json.dumps(failures), "the URL's path is not logged"


def test_notifications_owed_at_sigterm_are_delivered_after_the_restart(tmp: pathlib.Path,
                                                                      receiver: Receiver) -> None:
    """Was 1/10: ten deliveries hang at the receiver when the server is stopped (SIGTERM); none
    was received then. After the restart all ten are."""
    receiver.plan = lambda request: HANG
    receiver.start()
    with notifying_server(tmp, receiver) as (server, client):
        runs = lose_runs(client, 10)
        wait_for(lambda: receiver.held == 10, "ten deliveries in flight")
        assert server.stop() == 0
        receiver.plan = lambda request: OK
        receiver.release.set()
        assert receiver.received_runs() == set()
        server.start()
        wait_for(lambda: receiver.received_runs() == runs, "all ten were received after the restart")


def test_a_server_killed_with_notifications_owed_delivers_them_after_the_restart(tmp: pathlib.Path,
                                                                                 receiver: Receiver) -> None:
    """SIGKILL while ten deliveries are owed (the receiver is down): the restarted server sends them."""
    with notifying_server(tmp, receiver) as (server, client):
        runs = lose_runs(client, 10)
        wait_for(lambda: len([d for d in owed(server) if d[2] >= 1]) == 10, "ten deliveries tried and owed")
        server.kill()
        receiver.start()
        server.start()
        wait_for(lambda: receiver.received_runs() == runs, "all ten were received after the restart")


def test_http_500_is_retried_and_the_metrics_show_it(tmp: pathlib.Path, receiver: Receiver) -> None:
    """Was 5 POSTs for 5 events: each delivery answered 500 the first time is tried again. The
    metrics count the attempts and failures, and the notifications owed go back to none."""
    receiver.plan = lambda request: 500 if request.attempt == 1 else OK
    receiver.start()
    metrics_port = free_port()
    with notifying_server(tmp, receiver, "--metrics-port", str(metrics_port)) as (server, client):
        runs = lose_runs(client, 5)
        wait_for(lambda: receiver.received_runs() == runs, "all five were received")
        for run in runs:
            assert [r.attempt for r in receiver.attempts(run)][:2] == [1, 2]
        wait_for(lambda: metric(scrape(metrics_port), "runstatus_notifications_owed") == 0, "none is owed")
        text = scrape(metrics_port)
        assert metric(text, "runstatus_notification_attempts_total") >= 10
        assert metric(text, "runstatus_notification_failures_total") >= 5
        assert metric(text, "runstatus_notifications_oldest_owed_seconds") == 0


def test_429_waits_at_least_as_long_as_retry_after_says(tmp: pathlib.Path, receiver: Receiver) -> None:
    """Retry-After in seconds and as an HTTP date: the next attempt comes no sooner (the backoff
    alone would try again within a second)."""
    forms: dict[str, str] = {}

    def plan(request: Request) -> Any:
        if request.attempt > 1:
            return OK
        if not forms:
            forms[request.delivery] = "3"
        else:
            forms[request.delivery] = email.utils.formatdate(time.time() + 4, usegmt=True)
        return 429, forms[request.delivery]

    receiver.plan = plan
    receiver.start()
    with notifying_server(tmp, receiver) as (server, client):
        runs = lose_runs(client, 2)
        wait_for(lambda: receiver.received_runs() == runs, "both were received")
        for run in runs:
            first, second = receiver.attempts(run)[:2]
            # An HTTP date has whole seconds: at least 3 s of the 4 asked for.
            assert second.at - first.at >= 2.9, (forms[first.delivery], second.at - first.at)


def test_garbage_instead_of_http_stops_nothing(tmp: pathlib.Path, receiver: Receiver) -> None:
    """Was 0/5 after it (the notifier died): the first answer is bytes that are not HTTP; that
    delivery is retried, and five later ones are delivered and logged."""
    receiver.plan = lambda request: GARBAGE if len(receiver.requests) == 1 else OK
    receiver.start()
    with notifying_server(tmp, receiver) as (server, client):
        first = lose_runs(client, 1)
        wait_for(lambda: receiver.received_runs() == first, "the first, on its second attempt")
        later = lose_runs(client, 5)
        wait_for(lambda: receiver.received_runs() == first | later, "the five later ones")
        assert receiver.attempts(next(iter(first)))[0].attempt == 1 and len(receiver.attempts(next(iter(first)))) >= 2
        logged = wait_for(lambda: {e["event"]["runId"] for e in server.log_entries()
                                   if e.get("logger") == "runstatus.admin"} >= first | later, "all six logged")
        assert logged


def test_an_exception_is_not_held_up_behind_ten_hung_lost_runs(tmp: pathlib.Path, receiver: Receiver) -> None:
    """Was 50-55 s: the receiver holds every LOST delivery; an EXCEPTION that comes after ten of
    them is received while all ten are still held (deliveries of one subscription go out side by
    side, up to delivery.PER_TARGET = 16 at once). Let go, the ten are retried and received."""
    receiver.plan = lambda request: HANG if request.status == "RUN_STATUS_LOST" else OK
    receiver.start()
    # Leases long enough for the EXCEPTION run's reports on a loaded machine.
    with notifying_server(tmp, receiver, lease=6) as (server, client):
        lost = lose_runs(client, 10)
        wait_for(lambda: receiver.held == 10, "ten LOST deliveries held")
        boom = exception_run(client)
        wait_for(lambda: boom in receiver.received_runs(), "the EXCEPTION was received")
        assert receiver.received_runs() == {boom}, "no LOST delivery was received: all are held"
        receiver.plan = lambda request: OK
        receiver.release.set()
        wait_for(lambda: receiver.received_runs() == lost | {boom}, "the ten LOST ones too")


# --- PostgreSQL: several servers, and the database restarted ---------------------------------

@pytest.mark.postgres
def test_the_leader_killed_mid_delivery_loses_nothing(pg_url: str, tmp_path: pathlib.Path,
                                                      receiver: Receiver) -> None:
    """Two servers on one database; the leader's ten deliveries hang at the receiver when it is
    SIGKILLed. The other server takes the lead and sends all ten again."""
    receiver.plan = lambda request: HANG
    receiver.start()
    args = ("--admin-webhook", receiver.url, "--admin-webhook-secret", SECRET, "--lease-seconds", "2",
            "--sweep-seconds", "0.1", *FAST)
    pair = [ServerProcess(pg_url, *args, log_dir=tmp_path) for _ in range(2)]
    for server in pair:
        server.start()
    client = Client(pair[0].address)
    try:
        client.new_project()
        runs = lose_runs(client, 10)
        wait_for(lambda: receiver.held == 10, "ten deliveries in flight")
        leaders = [s for s in pair if any(e.get("message", "").startswith("this server sweeps now")
                                          for e in s.log_entries())]
        assert len(leaders) == 1
        leaders[0].kill()
        receiver.plan = lambda request: OK
        receiver.release.set()
        assert receiver.received_runs() == set()
        wait_for(lambda: receiver.received_runs() == runs, "all ten were received from the other server")
    finally:
        client.close()
        for server in pair:
            if server.proc is not None and server.proc.poll() is None:
                server.stop()


@pytest.mark.postgres
def test_notifications_owed_ride_out_a_restart_of_the_database(own_postgres: Any, tmp_path: pathlib.Path,
                                                               receiver: Receiver) -> None:
    """Deliveries owed (the receiver is down) when PostgreSQL stops: the server's loops fail
    meanwhile, and go on once it is back. Every notification is received, the server never exits."""
    url = own_postgres.create_database("runstatus")
    server = ServerProcess(url, "--admin-webhook", receiver.url, "--admin-webhook-secret", SECRET,
                           "--lease-seconds", "2", "--sweep-seconds", "0.1", *FAST, log_dir=tmp_path).start()
    client = Client(server.address)
    try:
        client.new_project()
        runs = lose_runs(client, 5)
        wait_for(lambda: len([d for d in owed(server) if d[2] >= 1]) == 5, "five deliveries tried and owed")
        own_postgres.stop()
        # The leader's loops stop at the database's fault: it loses the lead (Store.lead), or a read fails.
        wait_for(lambda: any(e.get("message", "").startswith("lost the sweeper's lock")
                             or (e.get("logger") == "runstatus.notifications" and e.get("level") == "warning"
                                 and "trying again" in e.get("message", "") and "not delivered" not in e["message"])
                             for e in server.log_entries()), "the server met the database down")
        own_postgres.start()
        receiver.start()
        wait_for(lambda: receiver.received_runs() == runs, "all five were received")
        runs |= lose_runs(client, 3)
        wait_for(lambda: receiver.received_runs() == runs, "and three more")
        assert server.proc is not None and server.proc.poll() is None
    finally:
        client.close()
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


# --- the parts: signature, Retry-After, backoff ----------------------------------------------

def test_the_signature_is_what_the_readme_verifies() -> None:
    body = b'{"runId": "r"}'
    header = signature(SECRET, int(time.time()), body)
    assert verify(SECRET, header, body)
    assert not verify("another secret", header, body)
    assert not verify(SECRET, header, body + b" ")
    assert not verify(SECRET, signature(SECRET, int(time.time()) - 3600, body), body), "too old: a replay"


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    now = time.time()
    assert retry_after_seconds("120", now) == 120
    assert retry_after_seconds(email.utils.formatdate(now + 60, usegmt=True), now) == pytest.approx(60, abs=1)
    assert retry_after_seconds(email.utils.formatdate(now - 60, usegmt=True), now) == 0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds("", now) is None


def test_backoff_doubles_with_jitter_up_to_its_most_and_ends_with_the_window() -> None:
    retries = Retries(window_seconds=3600, min_seconds=1, max_seconds=60)
    for attempts, most in ((1, 1), (2, 2), (3, 4), (7, 60), (50, 60)):
        assert all(most / 2 <= retries.backoff(attempts) <= most for _ in range(50))
    delivery = NotificationDelivery("d", "s", 1, b"{}", create_time=0, next_attempt_time=0, attempts=3)
    retries.after_failure(delivery, 10_000_000, retry_after=600)
    assert delivery.next_attempt_time == 610_000_000  # Retry-After beyond the backoff
    retries.after_failure(delivery, 3_599_000_000, retry_after=600)
    assert delivery.next_attempt_time == 3_600_000_000  # the last attempt, at the window's end
    retries.after_failure(delivery, 3_600_000_000, retry_after=None)
    assert delivery.state == DELIVERY_DEAD
