"""Setting a project's retention from the history page (issue 29, item 1), in headless Chromium
as in test_web.py (its fixtures), against a real server with --web-port: a policy set with the
form is the one GetProject answers; a period shorter than --request-id-seconds is the server's
INVALID_ARGUMENT, shown beside the field it names; a token that may not call UpdateProject sees
the policy and no form."""

from __future__ import annotations

import concurrent.futures
import pathlib
import re
from collections.abc import Iterator
from typing import Any

import pytest

from harness import Client, ServerProcess, free_port, offline_admin_token
from runstatus.retention import describe
from runstatus.v1 import project_service_pb2 as project_pb
from runstatus.v1 import token_service_pb2 as token_pb
from runstatus.v1 import token_service_pb2_grpc
from runstatus.v1.project_pb2 import Project
from runstatus.v1.token_pb2 import Role
from test_web import browser, chromium, page  # noqa: F401 - the browser's fixtures

pytest_plugins = ["pg"]


@pytest.fixture
def site(tmp: pathlib.Path) -> Iterator[tuple[Client, str]]:
    port = free_port()
    server = ServerProcess(tmp / "runstatus.db", "--web-port", str(port), "--request-id-seconds", "3600").start()
    c = Client(server.address)
    c.new_project()
    yield c, f"http://127.0.0.1:{port}"
    c.close()
    server.stop()


def stored(c: Client) -> str:
    return describe(c.projects.GetProject(project_pb.GetProjectRequest(project_id=c.project_id)).project.retention)


def test_the_form_sets_the_projects_retention(site: tuple[Client, str], page: Any) -> None:
    c, url = site
    page.goto(f"{url}/?project={c.project_id}")
    assert "as the server's default says" in page.locator("p.retention").inner_text()
    page.locator("details.retention summary").click()
    form = page.locator("form.retention")
    form.locator("input[name=SUCCESS]").fill("30d")
    form.locator("input[name=FAILED]").fill("0")
    form.locator("input[name=payloads]").fill("7d")
    form.locator("input[name=archive]").check()
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(rf"/\?project={c.project_id}$"))
    assert stored(c) == "SUCCESS=30d,FAILED=0,payloads=7d,archive"
    assert "SUCCESS=30d,FAILED=0,payloads=7d,archive" in page.locator("p.retention").inner_text()

    # The form shows what is stored; emptying a field gives that status back to the default.
    page.locator("details.retention summary").click()
    assert form.locator("input[name=SUCCESS]").input_value() == "30d"
    assert form.locator("input[name=archive]").is_checked()
    form.locator("input[name=SUCCESS]").fill("")
    form.locator("input[name=archive]").uncheck()
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(rf"/\?project={c.project_id}$"))
    assert stored(c) == "FAILED=0,payloads=7d"


def test_a_period_too_short_is_the_servers_refusal_beside_its_field(site: tuple[Client, str], page: Any) -> None:
    c, url = site
    page.goto(f"{url}/?project={c.project_id}")
    page.locator("details.retention summary").click()
    form = page.locator("form.retention")
    form.locator("input[name=SUCCESS]").fill("30d")
    form.locator("input[name=FAILED]").fill("10m")  # under --request-id-seconds: project.retention.statuses[1].keep
    answer = page.expect_response(lambda r: r.request.method == "POST")
    with answer as posted:
        form.locator("button[type=submit]").click()
    assert posted.value.status == 400
    failed = page.locator('form.retention label[data-field="FAILED"]')
    assert "--request-id-seconds" in failed.locator(".field-error").inner_text()
    assert failed.locator("input").get_attribute("aria-invalid") == "true"
    assert failed.locator("input").input_value() == "10m", "what was typed stays"
    assert page.locator('form.retention label[data-field="SUCCESS"] .field-error').count() == 0
    assert "INVALID_ARGUMENT" in page.locator("form.retention .error").first.inner_text()
    assert stored(c) == "", "nothing stored"

    # A period the page cannot read is said beside its field too, and not sent.
    form.locator("input[name=FAILED]").fill("")
    form.locator("input[name=payloads]").fill("soon")
    form.locator("button[type=submit]").click()
    assert "is not a duration" in page.locator('form.retention label[data-field="payloads"] .field-error').inner_text()
    assert stored(c) == ""

    # Corrected, the same form saves (it came back with a new request id).
    form.locator("input[name=payloads]").fill("2h")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(rf"/\?project={c.project_id}$"))
    assert stored(c) == "SUCCESS=30d,payloads=2h"


def test_only_a_token_that_may_update_the_project_sees_the_form(tmp: pathlib.Path, page: Any) -> None:
    db = tmp / "auth.db"
    # In a thread of its own: on PostgreSQL it runs asyncio, and Playwright's loop runs in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        root_secret = pool.submit(offline_admin_token, db).result()
    port = free_port()
    server = ServerProcess(db, "--auth", "--web-port", str(port)).start()
    try:
        root = Client(server.address)
        metadata = (("authorization", f"Bearer {root_secret}"),)
        root.projects.CreateProject(project_pb.CreateProjectRequest(project=Project(id="alpha")), metadata=metadata)
        tokens = token_service_pb2_grpc.TokenServiceStub(root.channel)
        client, admin = (tokens.CreateToken(token_pb.CreateTokenRequest(project_id="alpha", role=role),
                                            metadata=metadata).secret for role in (Role.ROLE_CLIENT, Role.ROLE_ADMIN))

        def sign_in(secret: str) -> None:
            page.context.clear_cookies()
            page.goto(f"http://127.0.0.1:{port}/sign-in")
            page.locator("form.sign-in input[name=token]").fill(secret)
            page.locator("form.sign-in button").click()
            page.wait_for_url(re.compile(r"/$|/\?"))

        sign_in(client)
        page.goto(f"http://127.0.0.1:{port}/?project=alpha")
        assert "Retention:" in page.locator("p.retention").inner_text()
        assert page.locator("form.retention").count() == 0

        sign_in(admin)
        page.goto(f"http://127.0.0.1:{port}/?project=alpha")
        page.locator("details.retention summary").click()
        page.locator("form.retention input[name=CANCELLED]").fill("2d")
        page.locator("form.retention button[type=submit]").click()
        page.wait_for_url(re.compile(r"/\?project=alpha$"))
        got = root.projects.GetProject(project_pb.GetProjectRequest(project_id="alpha"), metadata=metadata)
        assert describe(got.project.retention) == "CANCELLED=2d"
        root.close()
    finally:
        server.stop()
