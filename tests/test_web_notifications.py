"""The Notifications page (issue 27, item 5) in a real browser, headless Chromium as in
test_web.py (its fixtures), against a real server with --web-port and a real receiver: the
subscriptions of a project with their target (no secret), filter and rate cap, each delivery's
state, attempts and last error; a dead delivery redelivered and a test sent with the page's own
buttons; the refusal of a token that may not manage notifications, as the server worded it."""

from __future__ import annotations

import concurrent.futures
import pathlib
import re
from collections.abc import Iterator
from typing import Any

import pytest

from harness import ServerProcess, free_port, offline_admin_token
from runstatus.v1 import project_service_pb2 as project_pb
from runstatus.v1 import token_service_pb2 as token_pb
from runstatus.v1.project_pb2 import Project
from runstatus.v1.token_pb2 import Role
from test_notification_api import ALLOW, DEAD, DELIVERED, FAST, SECRET, Api, Receiver, wait, webhook
from test_web import browser, chromium, page  # noqa: F401 - the browser's fixtures

pytest_plugins = ["pg"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def site(tmp: pathlib.Path) -> Iterator[tuple[ServerProcess, str]]:
    port = free_port()
    server = ServerProcess(tmp / "runstatus.db", ALLOW, "--web-port", str(port), "--notify-retry-hours", "0.0005",
                           *FAST).start()
    yield server, f"http://127.0.0.1:{port}"
    server.stop()


def row(page: Any, delivery_id: str) -> Any:
    return page.locator(f'tr[data-delivery="{delivery_id}"]')


def test_the_page_shows_subscriptions_and_its_buttons_act(site: tuple[ServerProcess, str], page: Any,
                                                          receiver: Receiver) -> None:
    server, url = site
    api = Api(server.address)
    project = api.new_project()
    sub = api.subscribe(webhook(receiver.url("down"), SECRET), name="on-call pager")
    receiver.answers["/down"] = 500
    sent = api.test_send(sub.id)
    wait(lambda: api.deliveries(sub.id, DEAD), "the delivery is dead")

    page.goto(f"{url}/?project={project}")
    page.locator("header nav a", has_text="Notifications").click()
    page.wait_for_url(re.compile(rf"/notifications\?project={project}$"))
    section = page.locator(f'section[data-subscription="{sub.id}"]')
    assert "on-call pager" in section.locator("h2").inner_text()
    assert receiver.url("down") in section.locator(".target").inner_text()
    assert "(signed)" in section.locator(".target").inner_text()
    assert "Exception" in section.locator(".filter").inner_text() and "Lost" in section.locator(".filter").inner_text()
    assert "10 a minute" in section.inner_text()
    dead = row(page, sent.id)
    assert dead.locator(".delivery-state").inner_text() == "dead"
    assert dead.locator(".last-error").inner_text().startswith("HTTP 500")
    assert SECRET not in page.content()

    receiver.answers["/down"] = 204
    dead.locator("form.redeliver button").click()
    page.wait_for_url(re.compile(rf"/notifications\?project={project}$"))
    wait(lambda: [d.id for d in api.deliveries(sub.id, DELIVERED)] == [sent.id], "redelivered with its id")
    page.reload()
    assert row(page, sent.id).locator(".delivery-state").inner_text() == "delivered"

    before = len(receiver.at("down"))
    page.locator(f'section[data-subscription="{sub.id}"] form.send-test button').click()
    page.wait_for_url(re.compile(rf"/notifications\?project={project}$"))
    wait(lambda: len(receiver.at("down")) > before, "the page's test arrived")
    test = receiver.at("down")[-1]
    assert test.json["type"] == "test" and test.signed_with(SECRET)
    assert page.locator("tr[data-delivery]").count() == 2
    api.close()


def test_a_token_that_may_not_manage_notifications_sees_the_servers_refusal(tmp: pathlib.Path, page: Any,
                                                                          receiver: Receiver) -> None:
    db = tmp / "auth.db"
    # In a thread of its own: on PostgreSQL it runs asyncio, and Playwright's loop runs in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        root_secret = pool.submit(offline_admin_token, db).result()
    port = free_port()
    server = ServerProcess(db, "--auth", ALLOW, "--web-port", str(port)).start()
    try:
        root = Api(server.address, root_secret)
        root.projects.CreateProject(project_pb.CreateProjectRequest(project=Project(id="alpha")))
        sub = root.subscribe(webhook(receiver.url("a")), project_id="alpha")
        instance = root.subscribe(webhook(receiver.url("i")), project_id="*", name="instance hook")
        client = root.tokens.CreateToken(token_pb.CreateTokenRequest(project_id="alpha", role=Role.ROLE_CLIENT)).secret
        admin = root.tokens.CreateToken(token_pb.CreateTokenRequest(project_id="alpha", role=Role.ROLE_ADMIN)).secret

        def sign_in(secret: str) -> None:
            page.context.clear_cookies()
            page.goto(f"http://127.0.0.1:{port}/sign-in")
            page.locator("form.sign-in input[name=token]").fill(secret)
            page.locator("form.sign-in button").click()
            page.wait_for_url(re.compile(r"/$|/\?"))

        sign_in(client)
        answer = page.goto(f"http://127.0.0.1:{port}/notifications?project=alpha")
        assert answer is not None and answer.status == 403
        assert "PERMISSION_DENIED" in page.locator(".error").inner_text()

        sign_in(admin)
        page.goto(f"http://127.0.0.1:{port}/notifications?project=alpha")
        assert page.locator("section.subscription").count() == 1
        assert page.locator(f'section[data-subscription="{sub.id}"]').count() == 1

        sign_in(root_secret)
        page.goto(f"http://127.0.0.1:{port}/notifications?project=alpha")
        assert page.locator(f'section[data-subscription="{instance.id}"]').count() == 1, "the instance's too"
        root.close()
    finally:
        server.stop()
