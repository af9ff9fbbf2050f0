"""NotificationService (issue 27, items 2, 5, 6) over a real server on a real port (harness.py),
on the backend RUNSTATUS_TEST_DB says, with a real HTTP receiver on loopback: subscriptions made,
read, changed and deleted; secrets never shown nor logged; the private-address rule; each role's
permissions under --auth; filters that filter what arrives; a test send; a dead delivery
redelivered with its id; deliveries paged newest first."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import pathlib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from harness import Client, ServerProcess, details, error, eventually, fields, free_port, offline_admin_token, rpc_error
from runstatus.v1 import notification_service_pb2 as pb
from runstatus.v1 import notification_service_pb2_grpc as pb_grpc
from runstatus.v1 import project_service_pb2 as project_pb
from runstatus.v1 import token_service_pb2 as token_pb
from runstatus.v1 import token_service_pb2_grpc
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1.event_pb2 import EventType
from runstatus.v1.notification_pb2 import (
    EmailTarget,
    NotificationDeliveryKind,
    NotificationDeliveryState,
    NotificationFilter,
    NotificationSubscription,
    NotificationTarget,
    SlackTarget,
    SmtpSecurity,
    SmtpServer,
    WebhookTarget,
)
from runstatus.v1.project_pb2 import Project
from runstatus.v1.status_pb2 import RunStatus
from runstatus.v1.token_pb2 import Role

pytest_plugins = ["pg"]

SECRET = "whsec-api-" + uuid.uuid4().hex
ALLOW = "--notify-allow-private"
FAST = ("--notify-backoff-min-seconds", "0.2", "--notify-backoff-max-seconds", "0.5")
State = NotificationDeliveryState
PENDING, RETRYING = State.NOTIFICATION_DELIVERY_STATE_PENDING, State.NOTIFICATION_DELIVERY_STATE_RETRYING
DELIVERED, DEAD = State.NOTIFICATION_DELIVERY_STATE_DELIVERED, State.NOTIFICATION_DELIVERY_STATE_DEAD


# --- a receiver: every POST kept, by path; each path answers the status it is told -------------

@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def signed_with(self, secret: str) -> bool:
        parts = dict(item.split("=", 1) for item in self.headers.get("Runstatus-Signature", "").split(",") if "=" in item)
        mac = hmac.new(secret.encode(), f"{parts.get('t', '')}.".encode() + self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(mac, parts.get("v1", ""))


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.got: list[Received] = []
        self.answers: dict[str, int] = {}  # path -> status (204 otherwise)
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.got.append(Received(self.path, dict(self.headers), body))
                    status = receiver.answers.get(self.path, 204)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.got if r.path == f"/{path}"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


# --- helpers ---------------------------------------------------------------------------------

class Api(Client):
    """The harness's stubs and the NotificationService's, every call with a token when given."""

    def __init__(self, address: str, secret: str = "", project_id: str = "") -> None:
        super().__init__(address, project_id)
        self.notifications = pb_grpc.NotificationServiceStub(self.channel)
        self.tokens = token_service_pb2_grpc.TokenServiceStub(self.channel)
        if secret:
            header = (("authorization", f"Bearer {secret}"),)
            for stub in (self.projects, self.workflows, self.work_orders, self.worker, self.notifications, self.tokens):
                for name, method in list(vars(stub).items()):
                    setattr(stub, name, _with(method, header))

    def subscribe(self, target: NotificationTarget, project_id: str | None = None, **kw: Any) -> NotificationSubscription:
        sub = NotificationSubscription(project_id=self.project_id if project_id is None else project_id,
                                       target=target, **kw)
        return self.notifications.CreateNotificationSubscription(
            pb.CreateNotificationSubscriptionRequest(subscription=sub)).subscription

    def deliveries(self, subscription_id: str, *states: int, page_size: int = 0) -> list[Any]:
        return list(self.notifications.ListNotificationDeliveries(pb.ListNotificationDeliveriesRequest(
            subscription_id=subscription_id, states=states, page_size=page_size)).deliveries)

    def test_send(self, subscription_id: str) -> Any:
        return self.notifications.SendTestNotification(
            pb.SendTestNotificationRequest(subscription_id=subscription_id)).delivery


def _with(method: Any, header: tuple[tuple[str, str], ...]) -> Any:
    def call(request: Any, **kw: Any) -> Any:
        return method(request, metadata=header, **kw)
    return call


def webhook(url: str, secret: str = "") -> NotificationTarget:
    return NotificationTarget(webhook=WebhookTarget(url=url, secret=secret))


@pytest.fixture
def server(tmp: pathlib.Path) -> Iterator[ServerProcess]:
    s = ServerProcess(tmp / "runstatus.db", ALLOW, "--lease-seconds", "2", "--sweep-seconds", "0.1", *FAST).start()
    yield s
    s.stop()


@pytest.fixture
def api(server: ServerProcess) -> Iterator[Api]:
    client = Api(server.address)
    client.new_project()
    yield client
    client.close()


def wait(check: Any, what: str) -> Any:
    return eventually(check, what, timeout=60)


def ended_run(api: Api, workflow: Any, outcome: str) -> str:
    """A run of the workflow ended SUCCESS, FAILED (a JobError) or EXCEPTION (a worker's socket closed)."""
    created = api.work_order(workflow)
    lease = api.claim_run(created.run.id)
    lease.start()
    step = lease.step("a")
    if outcome == "EXCEPTION":
        lease.done(step.id, error("WorkerSocketClosed", source=2))
    else:
        lease.done(step.id, error("JobError") if outcome == "FAILED" else None)
        lease.complete()
    run = api.work_orders.GetRun(wo_pb.GetRunRequest(run_id=created.run.id)).run
    assert RunStatus.Name(run.status) == f"RUN_STATUS_{outcome}"
    return str(created.run.id)


# --- CRUD ---------------------------------------------------------------------------------------

def test_a_subscription_is_created_read_listed_updated_and_deleted(api: Api, receiver: Receiver) -> None:
    made = api.subscribe(webhook(receiver.url("a"), SECRET), name="on-call")
    assert made.id and made.project_id == api.project_id and made.name == "on-call"
    assert made.target.webhook.url == receiver.url("a") and made.target.webhook.has_secret
    # The defaults: run status changes to EXCEPTION or LOST, 10 messages a minute.
    assert list(made.filter.event_types) == [EventType.EVENT_TYPE_RUN_STATUS_CHANGED]
    assert set(made.filter.statuses) == {RunStatus.RUN_STATUS_EXCEPTION, RunStatus.RUN_STATUS_LOST}
    assert made.max_messages_per_minute == 10 and made.create_time.seconds > 0
    got = api.notifications.GetNotificationSubscription(pb.GetNotificationSubscriptionRequest(subscription_id=made.id))
    assert got.subscription == made

    listed = api.notifications.ListNotificationSubscriptions(
        pb.ListNotificationSubscriptionsRequest(project_id=api.project_id)).subscriptions
    assert [s.id for s in listed] == [made.id]

    changed = NotificationSubscription(id=made.id, name="pager", max_messages_per_minute=3,
                                       filter=NotificationFilter(statuses=[RunStatus.RUN_STATUS_FAILED]))
    updated = api.notifications.UpdateNotificationSubscription(pb.UpdateNotificationSubscriptionRequest(
        subscription=changed, update_mask=FieldMask(paths=["name", "max_messages_per_minute", "filter"]))).subscription
    assert (updated.name, updated.max_messages_per_minute) == ("pager", 3)
    assert list(updated.filter.statuses) == [RunStatus.RUN_STATUS_FAILED]
    assert updated.target == made.target, "the target is kept: not in the mask"

    api.notifications.DeleteNotificationSubscription(pb.DeleteNotificationSubscriptionRequest(subscription_id=made.id))
    gone = rpc_error(api.notifications.GetNotificationSubscription,
                     pb.GetNotificationSubscriptionRequest(subscription_id=made.id))
    assert gone.code() == grpc.StatusCode.NOT_FOUND
    assert details(gone)[0].reason == "NOTIFICATION_SUBSCRIPTION_NOT_FOUND"


def test_a_create_repeated_with_its_request_id_makes_one_subscription(api: Api, receiver: Receiver) -> None:
    request = pb.CreateNotificationSubscriptionRequest(
        subscription=NotificationSubscription(project_id=api.project_id, target=webhook(receiver.url("x"))),
        request_id=str(uuid.uuid4()))
    first = api.notifications.CreateNotificationSubscription(request).subscription
    again = api.notifications.CreateNotificationSubscription(request).subscription
    assert first == again
    listed = api.notifications.ListNotificationSubscriptions(
        pb.ListNotificationSubscriptionsRequest(project_id=api.project_id)).subscriptions
    assert [s.id for s in listed] == [first.id]


def test_bad_requests_name_their_fields(api: Api) -> None:
    def create(sub: NotificationSubscription) -> list[str]:
        return fields(rpc_error(api.notifications.CreateNotificationSubscription,
                                pb.CreateNotificationSubscriptionRequest(subscription=sub)))

    assert create(NotificationSubscription(project_id=api.project_id)) == ["subscription.target"]
    assert create(NotificationSubscription(target=webhook("http://127.0.0.1/"))) == ["subscription.project_id"]
    assert create(NotificationSubscription(project_id=api.project_id, target=webhook("ftp://example.org/"))) == \
        ["subscription.target.webhook.url"]
    assert create(NotificationSubscription(project_id=api.project_id, target=webhook("http://u:p@127.0.0.1/"))) == \
        ["subscription.target.webhook.url"]
    assert create(NotificationSubscription(
        project_id=api.project_id, target=NotificationTarget(email=EmailTarget(to=["oncall@example.org\r\nBcc: x@y"])),
        filter=NotificationFilter(statuses=[RunStatus.RUN_STATUS_UNSPECIFIED], event_types=[99], workflow_ids=["a b"]),
        max_messages_per_minute=-1)) == [
        "subscription.target.email.to[0]", "subscription.filter.event_types[0]", "subscription.filter.statuses[0]",
        "subscription.filter.workflow_ids[0]", "subscription.max_messages_per_minute"]
    assert create(NotificationSubscription(project_id=api.project_id, target=NotificationTarget(
        email=EmailTarget(to=["a@example.org"], smtp=SmtpServer(port=70000))))) == \
        ["subscription.target.email.smtp.host", "subscription.target.email.smtp.port"]
    missing = rpc_error(api.subscribe, webhook("http://127.0.0.1:9/"), project_id="no-such-project")
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    bad_mask = rpc_error(api.notifications.UpdateNotificationSubscription, pb.UpdateNotificationSubscriptionRequest(
        subscription=NotificationSubscription(id="x"), update_mask=FieldMask(paths=["project_id"])))
    assert fields(bad_mask) == ["update_mask"]
    assert fields(rpc_error(api.notifications.ListNotificationDeliveries, pb.ListNotificationDeliveriesRequest(
        subscription_id="x", page_token="garbage!"))) == ["page_token"]
    unknown = rpc_error(api.notifications.RedeliverNotification, pb.RedeliverNotificationRequest(delivery_id="nope"))
    assert unknown.code() == grpc.StatusCode.NOT_FOUND
    assert details(unknown)[0].reason == "NOTIFICATION_DELIVERY_NOT_FOUND"


def test_a_project_cannot_change(api: Api, receiver: Receiver) -> None:
    made = api.subscribe(webhook(receiver.url("a")))
    other = api.new_project()
    moved = rpc_error(api.notifications.UpdateNotificationSubscription, pb.UpdateNotificationSubscriptionRequest(
        subscription=NotificationSubscription(id=made.id, project_id=other, name="x"),
        update_mask=FieldMask(paths=["name"])))
    assert fields(moved) == ["subscription.project_id"]


# --- secrets ------------------------------------------------------------------------------------

def test_secrets_are_never_returned_nor_logged(server: ServerProcess, api: Api, receiver: Receiver) -> None:
    slack_path = "services/T0000/B0000/" + uuid.uuid4().hex
    password = "smtp-" + uuid.uuid4().hex
    hook = api.subscribe(webhook(receiver.url("hook"), SECRET))
    slack = api.subscribe(NotificationTarget(slack=SlackTarget(webhook_url=receiver.url(slack_path))))
    email = api.subscribe(NotificationTarget(email=EmailTarget(to=["oncall@example.org"], smtp=SmtpServer(
        host="127.0.0.1", port=2525, security=SmtpSecurity.SMTP_SECURITY_NONE, username="u", password=password,
        from_address="runstatus@example.org"))))
    assert hook.target.webhook.secret == "" and hook.target.webhook.has_secret
    assert slack.target.slack.webhook_url == f"http://127.0.0.1:{receiver.port}"
    assert email.target.email.smtp.password == "" and email.target.email.smtp.has_password
    assert email.target.email.smtp.host == "127.0.0.1" and list(email.target.email.to) == ["oncall@example.org"]

    # A target given again without its secret keeps it where it still goes (as a read shows it).
    for made in (hook, slack, email):
        api.notifications.UpdateNotificationSubscription(pb.UpdateNotificationSubscriptionRequest(
            subscription=NotificationSubscription(id=made.id, target=made.target), update_mask=FieldMask(paths=["target"])))
    test = api.test_send(hook.id)
    wait(lambda: receiver.at("hook"), "the test send arrived")
    assert receiver.at("hook")[0].signed_with(SECRET), "the secret was kept"
    api.test_send(slack.id)
    wait(lambda: receiver.at(slack_path), "the Slack URL was kept whole")
    kept = api.notifications.GetNotificationSubscription(pb.GetNotificationSubscriptionRequest(subscription_id=email.id))
    assert kept.subscription.target.email.smtp.has_password

    # Elsewhere, no secret is carried over: a new URL must bring its own.
    moved = api.notifications.UpdateNotificationSubscription(pb.UpdateNotificationSubscriptionRequest(
        subscription=NotificationSubscription(id=hook.id, target=webhook(receiver.url("moved"))),
        update_mask=FieldMask(paths=["target"]))).subscription
    assert not moved.target.webhook.has_secret

    answers = b"".join(m.SerializeToString() for m in (
        hook, slack, email, test, *api.notifications.ListNotificationSubscriptions(
            pb.ListNotificationSubscriptionsRequest()).subscriptions))
    log = server.log_path.read_text()
    for secret in (SECRET, slack_path, password):
        assert secret.encode() not in answers
        assert secret not in log


# --- the private-address rule --------------------------------------------------------------------

PRIVATE = ["http://127.0.0.1:9/hook", "http://10.1.2.3/hook", "http://169.254.169.254/latest/meta-data",
           "http://[::1]:9/hook", "http://localhost:9/hook", "http://[::ffff:127.0.0.1]/hook", "http://0.0.0.0/"]


def test_private_targets_are_refused_without_the_flag(tmp: pathlib.Path, receiver: Receiver) -> None:
    server = ServerProcess(tmp / "runstatus.db").start()
    api = Api(server.address)
    try:
        api.new_project()
        for url in PRIVATE:
            refused = rpc_error(api.subscribe, webhook(url))
            assert fields(refused) == ["subscription.target.webhook.url"], url
            assert "address" in details(refused)[1][0][1], url
        refused = rpc_error(api.subscribe, NotificationTarget(slack=SlackTarget(webhook_url=PRIVATE[0])))
        assert fields(refused) == ["subscription.target.slack.webhook_url"]
        smtp = NotificationTarget(email=EmailTarget(to=["a@example.org"], smtp=SmtpServer(host="localhost")))
        assert fields(rpc_error(api.subscribe, smtp)) == ["subscription.target.email.smtp.host"]
        unresolvable = rpc_error(api.subscribe, webhook("http://no-such-host.invalid/hook"))
        assert "does not resolve" in details(unresolvable)[1][0][1]
        # The server's own SMTP relay (smtp unset) is the operator's: not checked.
        api.subscribe(NotificationTarget(email=EmailTarget(to=["a@example.org"])))
    finally:
        api.close()
        server.stop()


def test_private_targets_are_accepted_with_the_flag(api: Api) -> None:
    for url in PRIVATE:
        assert api.subscribe(webhook(url)).id


def test_the_admin_webhook_is_exempt_and_read_only(tmp: pathlib.Path, receiver: Receiver) -> None:
    server = ServerProcess(tmp / "runstatus.db", "--admin-webhook", receiver.url("admin"),
                           "--admin-webhook-secret", SECRET).start()
    api = Api(server.address)
    try:
        listed = api.notifications.ListNotificationSubscriptions(
            pb.ListNotificationSubscriptionsRequest(project_id="*")).subscriptions
        assert [(s.id, s.project_id, s.target.webhook.has_secret, s.target.webhook.secret) for s in listed] == \
            [("admin-webhook", "*", True, "")]
        for call, request in (
                (api.notifications.UpdateNotificationSubscription, pb.UpdateNotificationSubscriptionRequest(
                    subscription=NotificationSubscription(id="admin-webhook", name="x"),
                    update_mask=FieldMask(paths=["name"]))),
                (api.notifications.DeleteNotificationSubscription,
                 pb.DeleteNotificationSubscriptionRequest(subscription_id="admin-webhook"))):
            refused = rpc_error(call, request)
            assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert details(refused)[0].reason == "NOTIFICATION_SUBSCRIPTION_READ_ONLY"
        api.test_send("admin-webhook")
        wait(lambda: receiver.at("admin"), "a test send to the admin webhook arrived")
        assert receiver.at("admin")[0].signed_with(SECRET)
    finally:
        api.close()
        server.stop()


# --- what arrives ---------------------------------------------------------------------------------

def test_filters_choose_what_the_receiver_gets(api: Api, receiver: Receiver) -> None:
    first, second = api.workflow(["a"]), api.workflow(["a"])
    default = api.subscribe(webhook(receiver.url("default")))
    failed = api.subscribe(webhook(receiver.url("failed")), filter=NotificationFilter(statuses=[RunStatus.RUN_STATUS_FAILED]))
    of_second = api.subscribe(webhook(receiver.url("second")), filter=NotificationFilter(
        workflow_ids=[second.id], statuses=[RunStatus.RUN_STATUS_SUCCESS, RunStatus.RUN_STATUS_FAILED]))
    created = api.subscribe(webhook(receiver.url("created")), filter=NotificationFilter(
        event_types=[EventType.EVENT_TYPE_WORK_ORDER_CREATED], statuses=[RunStatus.RUN_STATUS_PENDING]))
    mine = api.project_id
    runs = {outcome: ended_run(api, wf, outcome) for outcome, wf in
            (("SUCCESS", first), ("FAILED", first), ("EXCEPTION", first), ("SUCCESS", second))}
    second_failed = ended_run(api, second, "FAILED")
    api.new_project()  # another project's exception: none of these subscriptions is told
    ended_run(api, api.workflow(["a"]), "EXCEPTION")
    api.project_id = mine

    def run_ids(path: str) -> set[str]:
        return {r.json.get("runId") for r in receiver.at(path)}

    wait(lambda: len(receiver.at("created")) == 5, "five work order created events")
    wait(lambda: run_ids("default") == {runs["EXCEPTION"]}, "the exception only")
    wait(lambda: run_ids("failed") == {runs["FAILED"], second_failed}, "the two failures")
    wait(lambda: len(receiver.at("second")) == 2, "the second workflow's two runs")
    assert {r.json.get("workflowId") for r in receiver.at("second")} == {second.id}
    time.sleep(1)  # nothing more is coming to any of them
    assert len(receiver.at("default")) == 1 and len(receiver.at("failed")) == 2 and len(receiver.at("created")) == 5
    assert {r.json["type"] for r in receiver.at("created")} == {"EVENT_TYPE_WORK_ORDER_CREATED"}
    for sub, count in ((default, 1), (failed, 2), (of_second, 2), (created, 5)):
        wait(lambda s=sub, n=count: len(api.deliveries(s.id, DELIVERED)) == n, "each marked delivered")


def test_a_test_send_arrives_signed(api: Api, receiver: Receiver) -> None:
    sub = api.subscribe(webhook(receiver.url("t"), SECRET))
    sent = api.test_send(sub.id)
    assert sent.kind == NotificationDeliveryKind.NOTIFICATION_DELIVERY_KIND_TEST and sent.state == PENDING
    assert sent.event_sequence < 0
    wait(lambda: receiver.at("t"), "the test arrived")
    got = receiver.at("t")[0]
    assert got.signed_with(SECRET) and got.headers["Runstatus-Delivery"] == sent.id
    assert got.json == {"type": "test", "subscriptionId": sub.id, "message": "A test notification from runstatus"}
    wait(lambda: api.deliveries(sub.id, DELIVERED), "the test is marked delivered")


def test_a_dead_delivery_is_redelivered_with_its_id(tmp: pathlib.Path, receiver: Receiver) -> None:
    # A retry window of 5.4 s: on a loaded machine, long enough to try twice and to be seen retrying before it is dead.
    server = ServerProcess(tmp / "runstatus.db", ALLOW, "--notify-retry-hours", "0.0015", *FAST).start()
    api = Api(server.address)
    try:
        api.new_project()
        sub = api.subscribe(webhook(receiver.url("down")))
        receiver.answers["/down"] = 500
        sent = api.test_send(sub.id)
        wait(lambda: api.deliveries(sub.id, RETRYING), "it is retrying")
        dead = wait(lambda: api.deliveries(sub.id, DEAD), "it is dead after the retry window")
        assert [d.id for d in dead] == [sent.id] and dead[0].attempts >= 2 and dead[0].last_error.startswith("HTTP 500")
        assert not dead[0].HasField("next_attempt_time")
        receiver.answers["/down"] = 204
        again = api.notifications.RedeliverNotification(pb.RedeliverNotificationRequest(delivery_id=sent.id)).delivery
        assert (again.id, again.state, again.attempts, again.last_error) == (sent.id, PENDING, 0, "")
        delivered = wait(lambda: api.deliveries(sub.id, DELIVERED), "delivered after the redelivery")
        assert [d.id for d in delivered] == [sent.id]
        assert receiver.at("down")[-1].headers["Runstatus-Delivery"] == sent.id
    finally:
        api.close()
        server.stop()


def test_deliveries_are_paged_newest_first(api: Api, receiver: Receiver) -> None:
    sub = api.subscribe(webhook(receiver.url("p")))
    sent = [api.test_send(sub.id).id for _ in range(7)]
    seen: list[str] = []
    token = ""
    while True:
        page = api.notifications.ListNotificationDeliveries(pb.ListNotificationDeliveriesRequest(
            subscription_id=sub.id, page_size=3, page_token=token))
        assert len(page.deliveries) <= 3
        seen += [d.id for d in page.deliveries]
        token = page.next_page_token
        if not token:
            break
    assert seen == sent[::-1]
    wait(lambda: len(api.deliveries(sub.id, DELIVERED)) == 7, "all seven delivered")
    assert api.deliveries(sub.id, PENDING, RETRYING, DEAD) == []


# --- permissions under --auth -----------------------------------------------------------------

@pytest.fixture
def secured(tmp: pathlib.Path) -> Iterator[tuple[ServerProcess, str]]:
    db = tmp / "auth.db"
    secret = offline_admin_token(db)
    server = ServerProcess(db, "--auth", ALLOW).start()
    yield server, secret
    server.stop()


def test_each_role_may_do_what_it_should(secured: tuple[ServerProcess, str], receiver: Receiver) -> None:
    server, root_secret = secured
    root = Api(server.address, root_secret)
    for p in ("alpha", "beta"):
        root.projects.CreateProject(project_pb.CreateProjectRequest(project=Project(id=p)))

    def token(project: str, role: int) -> Api:
        secret = root.tokens.CreateToken(token_pb.CreateTokenRequest(project_id=project, role=role)).secret
        return Api(server.address, secret, project)

    alpha, beta = token("alpha", Role.ROLE_ADMIN), token("beta", Role.ROLE_ADMIN)
    client, worker = token("alpha", Role.ROLE_CLIENT), token("alpha", Role.ROLE_WORKER)
    mine = alpha.subscribe(webhook(receiver.url("alpha")))
    theirs = beta.subscribe(webhook(receiver.url("beta")))
    instance = root.subscribe(webhook(receiver.url("root")), project_id="*")
    assert instance.project_id == "*"

    def denied(api: Api, call: str, request: Any) -> grpc.StatusCode:
        return rpc_error(getattr(api.notifications, call), request).code()  # type: ignore[no-any-return]

    get = pb.GetNotificationSubscriptionRequest
    for someone in (client, worker):
        assert denied(someone, "GetNotificationSubscription", get(subscription_id=mine.id)) == \
            grpc.StatusCode.PERMISSION_DENIED
        assert denied(someone, "ListNotificationSubscriptions", pb.ListNotificationSubscriptionsRequest()) == \
            grpc.StatusCode.PERMISSION_DENIED
    assert rpc_error(alpha.subscribe, webhook(receiver.url("x")), project_id="*").code() == \
        grpc.StatusCode.PERMISSION_DENIED
    assert rpc_error(alpha.subscribe, webhook(receiver.url("x")), project_id="beta").code() == \
        grpc.StatusCode.PERMISSION_DENIED
    for other in (theirs.id, instance.id):
        assert denied(alpha, "GetNotificationSubscription", get(subscription_id=other)) == grpc.StatusCode.NOT_FOUND
        assert denied(alpha, "SendTestNotification", pb.SendTestNotificationRequest(subscription_id=other)) == \
            grpc.StatusCode.NOT_FOUND
        assert denied(alpha, "DeleteNotificationSubscription",
                      pb.DeleteNotificationSubscriptionRequest(subscription_id=other)) == grpc.StatusCode.NOT_FOUND
    assert denied(alpha, "ListNotificationSubscriptions", pb.ListNotificationSubscriptionsRequest(project_id="*")) == \
        grpc.StatusCode.PERMISSION_DENIED
    theirs_sent = beta.test_send(theirs.id)
    assert denied(alpha, "RedeliverNotification", pb.RedeliverNotificationRequest(delivery_id=theirs_sent.id)) == \
        grpc.StatusCode.NOT_FOUND

    def ids(api: Api, project_id: str = "") -> set[str]:
        return {s.id for s in api.notifications.ListNotificationSubscriptions(
            pb.ListNotificationSubscriptionsRequest(project_id=project_id)).subscriptions}

    assert ids(alpha) == ids(alpha, "alpha") == {mine.id}
    assert ids(root) == {mine.id, theirs.id, instance.id} and ids(root, "*") == {instance.id}
    assert root.notifications.GetNotificationSubscription(get(subscription_id=theirs.id)).subscription.id == theirs.id
    alpha.test_send(mine.id)
    wait(lambda: receiver.at("alpha"), "alpha's admin sent a test")

    def allowed(api: Api) -> set[str]:
        return {m for m in api.tokens.GetCallerToken(token_pb.GetCallerTokenRequest()).allowed_methods
                if ".NotificationService." in m}

    methods = {f"runstatus.v1.NotificationService.{m.name}"
               for m in pb.DESCRIPTOR.services_by_name["NotificationService"].methods}
    assert allowed(alpha) == allowed(root) == methods
    assert allowed(client) == allowed(worker) == set()


# --- the Python client --------------------------------------------------------------------------

def test_the_python_clients_manage_subscriptions(server: ServerProcess, api: Api, receiver: Receiver) -> None:
    import asyncio

    from runstatus import AsyncClient
    from runstatus import Client as RunstatusClient

    with RunstatusClient(server.address, project_id=api.project_id) as rs:
        made = rs.create_notification_subscription(webhook_url=receiver.url("py"), secret=SECRET, name="py",
                                                   statuses=["failed"], event_types=["run_status_changed"])
        assert made.target.webhook.has_secret and list(made.filter.statuses) == [RunStatus.RUN_STATUS_FAILED]
        assert [s.id for s in rs.list_notification_subscriptions()] == [made.id]
        renamed = rs.update_notification_subscription(made.id, name="renamed", max_messages_per_minute=5)
        assert (renamed.name, renamed.max_messages_per_minute, renamed.target) == ("renamed", 5, made.target)
        sent = rs.send_test_notification(made.id)
        wait(lambda: [d for d in rs.list_notification_deliveries(made.id, states=["delivered"])], "delivered")
        assert rs.redeliver_notification(sent.id).id == sent.id
        assert rs.get_notification_subscription(made.id).name == "renamed"

    async def from_asyncio() -> None:
        async with AsyncClient(server.address, project_id=api.project_id) as rs:
            assert [d.id async for d in rs.list_notification_deliveries(made.id)] == [sent.id]
            await rs.delete_notification_subscription(made.id)
            assert [s async for s in rs.list_notification_subscriptions()] == []

    asyncio.run(from_asyncio())


# --- the command line ---------------------------------------------------------------------------

def runstatus(server: ServerProcess, project: str, *args: str, check: bool = True, **env: str) -> Any:
    import os
    import subprocess
    import sys

    command = pathlib.Path(sys.executable).with_name("runstatus")
    done = subprocess.run([str(command), *args], capture_output=True, text=True, timeout=60, env={
        **os.environ, "RUNSTATUS_ADDRESS": server.address, "RUNSTATUS_PROJECT": project, "COLUMNS": "250", **env})
    if check:
        assert done.returncode == 0, done.stderr
    return done


def test_the_notifications_commands(server: ServerProcess, api: Api, receiver: Receiver) -> None:
    def as_json(*args: str, **env: str) -> Any:
        return json.loads(runstatus(server, api.project_id, "notifications", *args, "--json", **env).stdout)

    made = as_json("create", "--webhook", receiver.url("cli"), "--name", "cli hook", "--status", "failed,lost",
                   "--event-type", "run_status_changed", "--max-per-minute", "7", RUNSTATUS_NOTIFY_SECRET=SECRET)
    assert made["target"]["webhook"]["has_secret"] and made["target"]["webhook"]["secret"] == ""
    assert made["filter"]["statuses"] == ["RUN_STATUS_FAILED", "RUN_STATUS_LOST"]
    assert made["max_messages_per_minute"] == 7
    slack = as_json("create", "--slack", receiver.url("services/T/B/slack-secret-path"))
    assert slack["target"]["slack"]["webhook_url"] == f"http://127.0.0.1:{receiver.port}"
    assert [s["id"] for s in as_json("list")] == sorted([made["id"], slack["id"]])
    table = runstatus(server, api.project_id, "notifications", "list").stdout
    assert made["id"] in table and "cli hook" in table and "(signed)" in table and "slack-secret-path" not in table

    assert as_json("update", made["id"], "--name", "renamed")["name"] == "renamed"
    assert as_json("get", made["id"])["target"]["webhook"]["has_secret"], "the secret is kept"
    test = as_json("test", made["id"])
    wait(lambda: receiver.at("cli"), "the test arrived")
    assert receiver.at("cli")[0].signed_with(SECRET)
    wait(lambda: as_json("deliveries", made["id"], "--state", "delivered"), "the test is delivered")
    table = runstatus(server, api.project_id, "notifications", "deliveries", made["id"]).stdout
    assert test["id"] in table and "delivered" in table and "test" in table
    assert as_json("redeliver", test["id"])["id"] == test["id"]
    runstatus(server, api.project_id, "notifications", "delete", slack["id"])
    assert [s["id"] for s in as_json("list")] == [made["id"]]

    mistake = runstatus(server, api.project_id, "notifications", "create", "--webhook", "http://x/",
                        "--slack", "http://y/", check=False)
    assert mistake.returncode == 2 and "give one target" in mistake.stderr
    refused = runstatus(server, api.project_id, "notifications", "create", "--webhook", "ftp://x/", check=False)
    assert refused.returncode == 1 and "subscription.target.webhook.url" in refused.stderr
    bad_state = runstatus(server, api.project_id, "notifications", "deliveries", made["id"], "--state", "deed",
                          check=False)
    assert bad_state.returncode == 2 and "dead" in bad_state.stderr
