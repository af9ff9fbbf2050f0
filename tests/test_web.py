"""The web UI (issue 16) in a real browser: headless Chromium (Debian's, installed by
scripts/chromium.sh) driven by Playwright with its executable_path, against a real server
started with --web-port. The work orders are made through the API, as a worker and a client
would make them. The history and work-order tests take screenshots; with RUNSTATUS_UPDATE_SCREENSHOTS=1 they
save them as docs/screenshots/*.png (the README's "History page")."""

from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

import pytest

from harness import (ON_FAILURE, ON_POSTGRES, ON_SUCCESS, RUNTIME, Client, ServerProcess, error, free_port,
                     offline_admin_token)
from runstatus import status_table
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1 import workflow_service_pb2 as wf_pb
from runstatus.v1.project_pb2 import RunLimit
from runstatus.v1.status_pb2 import RunStatus
from runstatus_server import verdicts

playwright_api = pytest.importorskip("playwright.sync_api")

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  # A DNS-rebinding site's name, once rebound to this machine (test_a_page_on_a_rebound_name...).
                  "--host-resolver-rules=MAP evil.example 127.0.0.1"]
WAIT_MS = 10_000



def chromium() -> str:
    """Debian's Chromium, installed by the project's own script when it is missing."""
    made = subprocess.run([str(ROOT / "scripts" / "chromium.sh")], capture_output=True, text=True, timeout=900)
    if made.returncode != 0:
        pytest.fail(f"scripts/chromium.sh could not install Chromium: {made.stderr[-2000:]}")
    return made.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    path = chromium()
    profile = tempfile.mkdtemp(prefix="runstatus-chromium-")
    with playwright_api.sync_playwright() as p:
        # A persistent context is how Playwright takes a --user-data-dir: a fresh one per run.
        context = p.chromium.launch_persistent_context(
            profile, executable_path=path, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900}, locale="en-US", timezone_id="UTC")
        context.set_default_timeout(WAIT_MS)
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    browser.clear_cookies()
    tab = browser.new_page()
    yield tab
    tab.close()


@dataclass
class Web:
    server: ServerProcess
    url: str
    project: str = ""
    orders: dict[str, str] = field(default_factory=dict)  # status name -> work order id

    def history(self, query: str = "") -> str:
        return f"{self.url}/?project={self.project}" + (f"&{query}" if query else "")


LEASE_SECONDS = 3  # the web fixture's server: one seeded run is LOST within seconds


def seed(c: Client) -> tuple[dict[str, str], Any]:
    """One work order of each of the ten outcomes, in a project of their own (with a run limit of
    3 in flight, so the last one is REJECTED): ({status: work order id}, the RUNNING run's lease,
    which the caller keeps alive with heartbeats: the server's leases are short, so that one run
    is LOST, its worker never heard from again after it started)."""
    c.new_project(run_limit=RunLimit(max_in_flight=3))
    referral = c.workflow(["fetch", "notify", "report_failure"],
                          [("fetch", "notify", ON_SUCCESS), ("fetch", "report_failure", ON_FAILURE)], wid="referral")
    sync = c.workflow(["extract", "load"], [("extract", "load", ON_SUCCESS)], wid="nightly-sync")
    made: dict[str, str] = {}

    def finished(status: str, workflow: Any, steps: list[tuple[str, Any]], run_error: Any = None,
                 retry_of: str = "") -> None:
        if retry_of:
            created = c.work_orders.RetryWorkOrder(wo_pb.RetryWorkOrderRequest(work_order_id=retry_of))
        else:
            created = c.work_order(workflow)
        lease = c.claim_run(created.run.id)
        lease.start()
        before, now = "", RunStatus.RUN_STATUS_RUNNING
        for step_id, step_error in steps:
            step = lease.step(step_id, after=before)
            now = lease.done(step.id, error=step_error).run_status
            before = step.id
        if now == RunStatus.RUN_STATUS_RUNNING:  # an aborting step ended the run itself
            now = lease.complete(error=run_error).status
        assert RunStatus.Name(now) == f"RUN_STATUS_{status}"
        made[status] = created.work_order.id

    finished("SUCCESS", referral, [("fetch", None), ("notify", None)])
    # A python KeyError in the first step: FAILED by the alias rule; report_failure ran, but failed too.
    # Crashed once, then retried: the retry FAILED (a python KeyError, FAILED by the alias table;
    # report_failure ran along the failure edge, and failed too).
    finished("CRASHED", referral, [("fetch", error("ReferenceError", message="patient is not defined"))])
    finished("FAILED", referral, [("fetch", error("KeyError", language="python", message="'patient_id'")),
                                  ("report_failure", error("JobError", message="A request failed with status code 404"))],
             retry_of=made.pop("CRASHED"))
    finished("CRASHED", sync, [("extract", error("SyntaxError", message="Unexpected token '}'"))])
    finished("KILLED", sync, [("extract", error("OomError", RUNTIME, message="used 2 GB of memory"))])
    finished("EXCEPTION", sync, [("extract", error("WorkerPanic", RUNTIME, message="the worker's runtime fell over"))])
    cancelled = c.work_order(sync)
    c.work_orders.CancelRun(wo_pb.CancelRunRequest(run_id=cancelled.run.id, reason="asked to by the operator"))
    made["CANCELLED"] = cancelled.work_order.id
    lost = c.work_order(sync)
    c.claim_run(lost.run.id).start()
    deadline = time.monotonic() + 60  # its lease runs out, and the sweeper says LOST
    while c.work_orders.GetRun(wo_pb.GetRunRequest(run_id=lost.run.id)).run.status != RunStatus.RUN_STATUS_LOST:
        assert time.monotonic() < deadline, "the run was never LOST"
        time.sleep(0.1)
    made["LOST"] = lost.work_order.id
    running = c.work_order(referral)
    alive = c.claim_run(running.run.id)
    alive.start()
    made["RUNNING"] = running.work_order.id
    made["PENDING"] = c.work_order(referral).work_order.id
    c.work_order(sync)  # the third in flight
    rejected = c.work_order(sync)
    assert rejected.run.status == RunStatus.RUN_STATUS_REJECTED
    made["REJECTED"] = rejected.work_order.id
    return made, alive


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    tmp = tmp_path_factory.mktemp("web")
    port = free_port()
    server = ServerProcess(tmp / "runstatus.db", "--web-port", str(port), "--lease-seconds", str(LEASE_SECONDS),
                           "--sweep-seconds", "0.2").start()
    c = Client(server.address)
    stop = threading.Event()
    try:
        orders, alive = seed(c)

        def keep_alive() -> None:  # the RUNNING run's worker, still at work
            while not stop.wait(LEASE_SECONDS / 6):
                alive.heartbeat()

        beating = threading.Thread(target=keep_alive, daemon=True)
        beating.start()
        yield Web(server, f"http://127.0.0.1:{port}", c.project_id, orders)
    finally:
        stop.set()
        c.close()
        server.stop()


@pytest.fixture
def c(web: Web) -> Iterator[Client]:
    """A client of the web fixture's server in a project of its own, so that what a test adds
    leaves the seeded project as it was."""
    client = Client(web.server.address)
    client.new_project()
    yield client
    client.close()


def screenshot(page: Any, name: str) -> None:
    """Taken on every run (the page renders whole); written over the README's
    docs/screenshots/NAME only with RUNSTATUS_UPDATE_SCREENSHOTS=1, so that a test run leaves
    the checkout clean, and from the SQLite run only (`make test` runs PostgreSQL's beside it)."""
    image = page.screenshot(full_page=True)
    assert image[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("RUNSTATUS_UPDATE_SCREENSHOTS") == "1" and not ON_POSTGRES:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / name).write_bytes(image)


def chips(page: Any) -> dict[str, str]:
    """{work order id: "🔴 Failed"} for the history table's rows, as the browser shows them."""
    rows = page.locator("table.history tbody tr[data-work-order]")
    return {rows.nth(i).get_attribute("data-work-order"): rows.nth(i).locator(".chip").inner_text().strip()
            for i in range(rows.count())}


def test_history_shows_each_outcome_with_its_chip_and_name(web: Web, page: Any) -> None:
    page.goto(web.history())
    shown = chips(page)
    expected = {"SUCCESS": "🟢 Success", "FAILED": "🔴 Failed", "CRASHED": "🟠 Crashed", "KILLED": "🟡 Killed",
                "EXCEPTION": "⚫ Exception", "CANCELLED": "⚪ Cancelled", "RUNNING": "🔵 Running",
                "PENDING": "⚪ Pending", "REJECTED": "⚪ Rejected", "LOST": "⚫ Lost"}
    for status, text in expected.items():
        assert re.sub(r"\s+", " ", shown[web.orders[status]]) == text, status
    # Newest first: the REJECTED one was made last.
    assert page.locator("table.history tbody tr").first.get_attribute("data-work-order") == web.orders["REJECTED"]
    # The counts bar: CountWorkOrders over the filter.
    assert page.locator('[data-count-status="PENDING"] .n').inner_text() == "2"
    assert page.locator('[data-count-status="FAILED"] .n').inner_text() == "1"
    assert page.locator('[data-count-status="LOST"] .n').inner_text() == "1"
    assert page.locator("nav.counts a.total .n").inner_text() == "11"
    row = page.locator(f'tr[data-work-order="{web.orders["FAILED"]}"]')
    assert "referral" in row.inner_text() and row.locator("td.num").inner_text() == "2"  # runs
    screenshot(page, "history.png")


def test_a_status_filter_narrows_the_list_and_lives_in_the_url(web: Web, page: Any) -> None:
    page.goto(web.history())
    page.locator('form.filter input[name="status"][value="FAILED"]').check()
    page.locator('form.filter input[name="status"][value="CRASHED"]').check()
    page.locator('form.filter button[type="submit"]').click()
    page.wait_for_url(re.compile(r"status=FAILED&status=CRASHED"))
    assert set(chips(page)) == {web.orders["FAILED"], web.orders["CRASHED"]}
    # The URL is the view: opened afresh, it shows the same.
    shared = page.url
    page.goto("about:blank")
    page.goto(shared)
    assert set(chips(page)) == {web.orders["FAILED"], web.orders["CRASHED"]}
    assert page.locator('form.filter input[value="FAILED"]').is_checked()
    # A workflow narrows it too; a count chip filters by its status.
    page.goto(web.history("workflow=nightly-sync"))
    assert web.orders["FAILED"] not in chips(page) and web.orders["CRASHED"] in chips(page)
    page.locator('[data-count-status="KILLED"]').click()
    page.wait_for_url(re.compile(r"status=KILLED"))
    assert "workflow=nightly-sync" in page.url
    assert set(chips(page)) == {web.orders["KILLED"]}


def test_pages_follow_page_tokens(web: Web, page: Any) -> None:
    page.goto(web.history())
    assert page.locator("a[rel=next]").count() == 0  # they fit on one page of 50
    everything = list(chips(page))
    page.goto(web.history("size=4"))
    seen: list[str] = []
    for _ in range(5):
        rows = list(chips(page))
        assert 0 < len(rows) <= 4
        seen += rows
        following = page.locator("a[rel=next]")
        if not following.count():
            break
        following.click()
        page.wait_for_url(re.compile(r"page="))
        assert "size=4" in page.url
    assert seen == everything  # newest first, each once


def test_a_work_order_id_opens_its_page(web: Web, page: Any) -> None:
    page.goto(web.history())
    page.locator('form.goto input[name="id"]').fill(web.orders["CRASHED"])
    page.locator("form.goto button").click()
    page.wait_for_url(re.compile(rf"/work-orders/{web.orders['CRASHED']}"))
    step = page.locator('li.step[data-step="extract"]')
    assert step.get_attribute("data-status") == "RUN_STATUS_CRASHED"
    assert "seed:SyntaxError" in step.locator("code.rule").inner_text()
    assert "aborts the run" in page.locator("section.why").inner_text()


def test_the_work_order_page_shows_the_failing_step_and_its_rule(web: Web, page: Any) -> None:
    page.goto(f"{web.url}/work-orders/{web.orders['FAILED']}?project={web.project}")
    assert page.locator("dl.run-summary .chip").first.inner_text().strip().endswith("Failed")
    fetch = page.locator('li.step[data-step="fetch"]')
    assert fetch.get_attribute("data-status") == "RUN_STATUS_FAILED"
    assert fetch.locator("code.rule").inner_text() == "alias:python:KeyError"
    assert fetch.locator(".error-name").inner_text() == "KeyError"
    assert "'patient_id'" in fetch.locator(".error-message").inner_text()
    assert "RangeError" in fetch.locator("dl.classification").inner_text()  # python's KeyError, by the alias table
    # The timeline: in the order the steps started, each with start, end and duration.
    steps = page.locator("ol.timeline li.step")
    assert [steps.nth(i).get_attribute("data-step") for i in range(steps.count())] == ["fetch", "report_failure"]
    handler = page.locator('li.step[data-step="report_failure"]')
    assert "after fetch" in re.sub(r"\s+", " ", handler.inner_text()) and "on failure" in handler.inner_text()
    assert re.search(r"\d+ ms|\d+\.\d+ s", fetch.locator(".duration").inner_text())
    assert handler.locator("code.rule").inner_text() == "seed:JobError"
    # Why the run is FAILED: the leaf whose error decided it.
    why = page.locator("section.why")
    assert "report_failure, the last step of its branch, failed" in re.sub(r"\s+", " ", why.inner_text())
    assert why.locator("code.rule").inner_text() == "seed:JobError"
    screenshot(page, "work-order.png")
    # Every run, latest first; the earlier one opens with its own steps.
    runs = page.locator("ol.runs li")
    assert [runs.nth(i).inner_text().split()[:2] for i in range(runs.count())] == [["Run", "2"], ["Run", "1"]]
    assert runs.nth(0).get_attribute("aria-current") == "true"
    runs.nth(1).locator("a").click()
    page.wait_for_url(re.compile(r"run="))
    assert "Run 1" in page.locator("section.run h2").inner_text()
    assert page.locator('li.step[data-step="fetch"] code.rule').inner_text() == "seed:ReferenceError"
    assert "aborts the run" in page.locator("section.why").inner_text()


def test_why_a_run_was_rejected_or_cancelled(web: Web, page: Any) -> None:
    page.goto(f"{web.url}/work-orders/{web.orders['REJECTED']}")
    assert "max_in_flight" in page.locator(".status-reason").inner_text() or \
        "limit" in page.locator(".status-reason").inner_text()
    page.goto(f"{web.url}/work-orders/{web.orders['CANCELLED']}")
    assert "asked to by the operator" in page.locator(".status-reason").inner_text()
    assert page.locator("ol.timeline").count() == 0  # no step ran
    page.goto(f"{web.url}/work-orders/{web.orders['LOST']}")
    assert "lease-expired:after-start" in page.locator("section.why").inner_text()


def test_the_why_of_every_status_is_the_servers_reason_word_for_word(web: Web, page: Any, c: Client) -> None:
    """The page explains a run with the status_reason the server stored when it decided the
    status (verdicts.py), not with words of its own: the same text for every status, so the
    two cannot drift."""
    assert {f"RUN_STATUS_{s}" for s in web.orders} == {row.name for row in status_table.statuses().values()}
    for status, work_order_id in web.orders.items():
        run = runs_of(c, work_order_id)[0]
        assert run.status_reason, status  # every status comes with its reason
        page.goto(f"{web.url}/work-orders/{work_order_id}")
        assert page.locator("section.why .status-reason").inner_text() == run.status_reason, status
        assert page.locator("section.why .cancel-waits").count() == 0
    # A running run asked to cancel carries its cancel's reason already; the cancel waits for the worker.
    created = c.work_order(c.workflow(["only"]))
    c.claim_run(created.run.id).start()
    c.work_orders.CancelRun(wo_pb.CancelRunRequest(run_id=created.run.id, reason="wrong input"))
    page.goto(f"{web.url}/work-orders/{created.work_order.id}")
    why = page.locator("section.why")
    assert why.locator(".cancel-waits").inner_text() == verdicts.CANCEL_WAITS
    assert why.locator(".status-reason").inner_text() == runs_of(c, created.work_order.id)[0].status_reason == \
        "cancelled: wrong input"


def test_the_status_table_page(web: Web, page: Any) -> None:
    page.goto(f"{web.url}/statuses")
    assert page.locator("table.statuses tbody tr").count() == 10
    assert page.locator("table.error-types tbody tr").count() == 9
    oom = page.locator('tr[data-error-type="OomError"]')
    assert "Killed" in oom.inner_text() and "memory" in oom.inner_text()
    assert "🟠" in page.locator('tr[data-status="RUN_STATUS_CRASHED"]').inner_text()


def test_errors_from_the_api_are_shown_as_the_server_worded_them(web: Web, page: Any) -> None:
    page.goto(f"{web.url}/?project=no-such-project")
    alert = page.locator(".error[role=alert]").first
    assert "NOT_FOUND" in alert.inner_text() and "no-such-project" in alert.inner_text()
    page.goto(f"{web.url}/work-orders/wo-missing")
    assert "WORK_ORDER_NOT_FOUND" in page.locator(".error[role=alert]").inner_text()


def test_an_unknown_work_order_is_a_404_with_the_page_and_its_banner(web: Web, page: Any) -> None:
    unknown = "3f2b9c1e-0000-4000-8000-000000000000"
    answer = page.goto(f"{web.url}/work-orders/{unknown}?project={web.project}")
    assert answer is not None and answer.status == 404
    assert "WORK_ORDER_NOT_FOUND" in page.locator(".error[role=alert]").inner_text()
    assert page.locator("h1").inner_text() == f"Work order {unknown}"
    assert page.locator("header.top").is_visible()  # the whole page, not a bare error
    # Without a browser too: the status and the same banner.
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{web.url}/work-orders/{unknown}", timeout=10)
    assert missing.value.code == 404
    assert 'role="alert"' in missing.value.read().decode()
    # A work order that exists is still 200.
    assert page.goto(f"{web.url}/work-orders/{web.orders['FAILED']}?project={web.project}").status == 200


def test_the_work_order_id_box_shows_an_id_shaped_like_the_real_ones(web: Web, page: Any) -> None:
    """The placeholder looks like the ids the box takes (UUIDs), and opening one goes to its page."""
    page.goto(web.history())
    box = page.locator('form.goto input[name="id"]')
    example = str(box.get_attribute("placeholder"))
    assert re.fullmatch(r"e\.g\. [0-9a-f]{8}-…", example), example
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", web.orders["FAILED"])
    box.fill(web.orders["FAILED"])
    page.locator('form.goto button').click()
    page.wait_for_url(re.compile(f"/work-orders/{web.orders['FAILED']}"))


def test_a_new_work_order_and_a_status_change_appear_without_reload(web: Web, page: Any) -> None:
    page.goto(web.history("workflow=referral"))
    page.wait_for_selector('.live[data-state="open"]')
    page.evaluate("window.notReloaded = true")
    c = Client(web.server.address, web.project)
    try:
        workflow = c.workflows.GetWorkflow(wf_pb.GetWorkflowRequest(project_id=web.project,
                                                                    workflow_id="referral")).workflow
        # The project is at its run limit: the new one is REJECTED, and shows up at once.
        created = c.work_order(workflow)
        row = page.locator(f'tr[data-work-order="{created.work_order.id}"]')
        row.wait_for()
        assert "Rejected" in row.inner_text()
        # A status change: cancelling the PENDING one.
        pending = c.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=web.orders["PENDING"]))
        c.work_orders.CancelRun(wo_pb.CancelRunRequest(run_id=pending.work_order.latest_run_id, reason="live test"))
        page.wait_for_selector(f'tr[data-work-order="{web.orders["PENDING"]}"][data-status="RUN_STATUS_CANCELLED"]')
        assert page.evaluate("window.notReloaded") is True
        web.orders["PENDING-CANCELLED"] = web.orders.pop("PENDING")
    finally:
        c.close()


# With --auth: sign in with a token; a token sees its own project only.

@pytest.fixture(scope="module")
def auth_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Any]]]:
    from runstatus import Client as RsClient

    tmp = tmp_path_factory.mktemp("web-auth")
    # In a thread of its own: on PostgreSQL it runs asyncio, and Playwright's loop runs here.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        admin = pool.submit(offline_admin_token, tmp / "runstatus.db").result()
    port = free_port()
    server = ServerProcess(tmp / "runstatus.db", "--auth", "--web-port", str(port)).start()
    made: dict[str, Any] = {}
    try:
        with RsClient(server.address, token=admin) as rs:
            for project in ("clinic-a", "clinic-b"):
                rs.create_project(project)
                rs.create_workflow("intake", ["fetch"], project_id=project)
                created = rs.create_work_order("intake", project_id=project)
                made[project], made[f"{project}-run"] = created.id, created.latest_run_id
                made[f"{project}-token"] = rs.create_token("client", project_id=project)[1]
            made["worker-token"] = rs.create_token("worker", project_id="clinic-a")[1]
        made["admin-token"], made["address"] = admin, server.address
        yield f"http://127.0.0.1:{port}", made
    finally:
        server.stop()


def sign_in(page: Any, url: str, token: str) -> None:
    page.goto(url + "/")
    page.wait_for_url(re.compile(r"/sign-in"))
    page.locator('input[name="token"]').fill(token)
    page.locator("form.sign-in button").click()


def test_with_auth_a_client_token_sees_its_own_project_only(auth_web: tuple[str, dict[str, Any]], page: Any,
                                                            browser: Any) -> None:
    url, made = auth_web
    sign_in(page, url, made["clinic-a-token"])
    page.wait_for_url(url + "/")
    assert set(chips(page)) == {made["clinic-a"]}
    cookie = next(c for c in browser.cookies() if c["name"] == "runstatus_token")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # not readable by scripts
    # The other project's list and work order do not exist for this token: the server says so.
    page.goto(f"{url}/?project=clinic-b")
    assert "NOT_FOUND" in page.locator(".error[role=alert]").first.inner_text()
    assert made["clinic-b"] not in page.content()
    page.goto(f"{url}/work-orders/{made['clinic-b']}")
    assert "NOT_FOUND" in page.locator(".error[role=alert]").inner_text()
    assert page.locator("li.step").count() == 0
    # Signing out forgets the token.
    page.goto(url + "/")
    page.locator("form.account button").click()
    page.wait_for_url(re.compile(r"/sign-in"))
    page.goto(url + "/")
    page.wait_for_url(re.compile(r"/sign-in"))


def test_with_auth_a_wrong_token_is_refused_as_the_server_words_it(auth_web: tuple[str, dict[str, Any]],
                                                                  page: Any) -> None:
    url, _ = auth_web
    sign_in(page, url, "rs_not-a-token")
    assert "UNAUTHENTICATED" in page.locator(".error[role=alert]").inner_text()
    page.goto(url + "/statuses")
    assert unquote(page.url).endswith("/sign-in?next=/statuses"), page.url


def sse(response: Any, count: int) -> list[tuple[str, dict[str, Any]]]:
    """The next `count` messages of an open /events stream: (id, data)."""
    messages: list[tuple[str, dict[str, Any]]] = []
    event_id, data = "", ""
    while len(messages) < count:
        line = response.readline().decode()
        assert line, "the stream ended"
        line = line.rstrip("\n")
        if line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data: "):
            data = line[6:]
        elif not line and data:
            messages.append((event_id, json.loads(data)))
            event_id, data = "", ""
    return messages


def open_events(url: str, last_event_id: str = "") -> Any:
    request = urllib.request.Request(url, headers={"Last-Event-ID": last_event_id} if last_event_id else {})
    response = urllib.request.urlopen(request, timeout=10)
    assert response.headers["Content-Type"].startswith("text/event-stream")
    while response.readline().strip():  # "retry:" and ": open": the watch is open
        pass
    return response


def test_live_events_start_from_now_and_resume_after_the_last_event_id(web: Web, c: Client) -> None:
    project = c.project_id
    workflow = c.workflow(["only"], wid="sse")
    before = c.work_order(workflow).work_order.id
    url = f"{web.url}/events?project={project}&workflow=sse"
    made: list[str] = []
    with open_events(url) as stream:
        # The watch opens a moment after the stream: work orders are made until it sees two.
        stop = threading.Event()

        def make() -> None:
            while not stop.is_set() and len(made) < 100:
                made.append(c.work_order(workflow).work_order.id)
                time.sleep(0.1)

        maker = threading.Thread(target=make, daemon=True)
        maker.start()
        try:
            events = sse(stream, 2)
        finally:
            stop.set()
            maker.join()
    # Each message stands for a batch (at most 250 ms of events): it carries the latest, and how many.
    ids = [e["work_order_id"] for _, e in events]
    assert before not in ids  # from now: nothing before it is replayed
    assert made.index(ids[0]) < made.index(ids[1])  # in order
    assert made.index(ids[1]) - made.index(ids[0]) == events[1][1]["events"]  # none missed between them
    assert {e["type"] for _, e in events} == {"EVENT_TYPE_WORK_ORDER_CREATED"}
    assert events[0][1]["work_order_status"] == "RUN_STATUS_PENDING" and all(i for i, _ in events)
    # A browser that reconnects sends the last id it saw: the stream goes on right after it, with
    # every event since (the maker has stopped: they come as one batch whose latest is the last made).
    with open_events(url, last_event_id=events[0][0]) as stream:
        [(_, resumed)] = sse(stream, 1)
    assert resumed["work_order_id"] == made[-1] and resumed["events"] == len(made) - 1 - made.index(ids[0])


def test_text_from_the_api_is_shown_as_text(web: Web, page: Any, c: Client) -> None:
    """Ids are plain by the API's rules; a worker's error is anything: it shows as text."""
    workflow = c.workflow(["only"])
    created = c.work_order(workflow)
    lease = c.claim_run(created.run.id)
    lease.start()
    step = lease.step("only")
    lease.done(step.id, error=error("Error<img src=x onerror=alert(1)>",
                                    message="<script>document.title='owned'</script>"))
    lease.complete()
    page.goto(f"{web.url}/work-orders/{created.work_order.id}")
    assert page.locator("li.step .error-name").inner_text() == "Error<img src=x onerror=alert(1)>"
    assert page.locator("li.step .error-message").inner_text() == "<script>document.title='owned'</script>"
    assert page.locator("li.step img").count() == 0 and "owned" not in page.title()


def test_with_auth_a_worker_token_sees_what_its_role_may_not_call(auth_web: tuple[str, dict[str, Any]],
                                                                  page: Any) -> None:
    """A worker token is a token: it signs in, and the server's refusal is the page."""
    url, made = auth_web
    sign_in(page, url, made["worker-token"])
    page.wait_for_url(url + "/")
    alert = page.locator(".error[role=alert]").first.inner_text()
    assert "PERMISSION_DENIED" in alert and "ROLE_WORKER" in alert
    assert page.locator("table.history").count() == 0


def test_the_web_ui_reads_through_the_public_api_only() -> None:
    """web/ imports the client library, never the server's store, services or rules (only the
    Settings it is started with, for its type, and verdicts.py, whose words explain a run's status)."""
    import ast

    web_dir = ROOT / "server" / "runstatus_server" / "web"
    outside: set[str] = set()
    for source in web_dir.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                outside |= {node.module} if node.module else {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("runstatus_server"):
                outside.add(node.module or "")
            elif isinstance(node, ast.Import):
                outside |= {a.name for a in node.names if a.name.startswith("runstatus_server")}
    assert outside == {"server", "verdicts"}


def test_the_web_port_is_off_by_default_and_read_from_the_environment(tmp_path: pathlib.Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.delenv("RUNSTATUS_WEB_PORT", raising=False)
    server = ServerProcess(tmp_path / "off.db").start()
    try:
        assert not any(e.get("message") == "web listening" for e in server.log_entries())
    finally:
        server.stop()
    monkeypatch.setenv("RUNSTATUS_WEB_PORT", str(port))
    server = ServerProcess(tmp_path / "on.db").start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/statuses", timeout=10) as answer:
            assert answer.status == 200
            assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
            assert "RUN_STATUS_REJECTED" in answer.read().decode()
    finally:
        server.stop()


def test_a_created_range_narrows_the_list(web: Web, page: Any) -> None:
    page.goto(web.history("created_after=2000-01-01T00:00&created_before=2999-01-01T00:00"))
    assert web.orders["FAILED"] in chips(page)
    assert page.locator('form.filter input[name="created_after"]').input_value() == "2000-01-01T00:00"
    page.goto(web.history("created_after=2999-01-01T00:00"))
    assert chips(page) == {} and page.locator("nav.counts a.total .n").inner_text() == "0"
    page.goto(web.history("created_after=yesterday"))
    assert "not a date and time" in page.locator(".error[role=alert]").inner_text()


def test_a_changed_range_finds_what_changed_whenever_it_was_created(web: Web, page: Any, c: Client) -> None:
    """The "Changed from/to" range filters on when a work order last changed (update_time)."""
    project = c.project_id
    workflow = c.workflow(["a"])
    old, untouched = c.work_order(workflow), c.work_order(workflow)
    time.sleep(0.05)
    cut = datetime.fromtimestamp(time.time(), timezone.utc).replace(tzinfo=None).isoformat()
    time.sleep(0.05)
    c.work_orders.CancelRun(wo_pb.CancelRunRequest(run_id=old.run.id))
    page.goto(f"{web.url}/?project={project}&changed_after={cut}")
    assert list(chips(page)) == [old.work_order.id]
    assert page.locator('form.filter input[name="changed_after"]').count() == 1
    page.goto(f"{web.url}/?project={project}&changed_before={cut}")
    assert list(chips(page)) == [untouched.work_order.id]
    assert page.locator("nav.counts a.total .n").inner_text() == "1"


# Actions: retry, retry from a step, bulk retry, cancel. Each test makes its own project.

def ended(c: Client, workflow: Any, steps: list[tuple[str, Any]]) -> str:
    """A work order whose first run ran `steps` (step id, error or None) one after another and
    ended by itself or with CompleteRun: its id."""
    created = c.work_order(workflow)
    lease = c.claim_run(created.run.id)
    lease.start()
    before, now = "", RunStatus.RUN_STATUS_RUNNING
    for step_id, step_error in steps:
        step = lease.step(step_id, after=before)
        now = lease.done(step.id, error=step_error).run_status
        before = step.id
    if now == RunStatus.RUN_STATUS_RUNNING:
        lease.complete()
    return created.work_order.id


def cancelled(c: Client, workflow: Any) -> str:
    created = c.work_order(workflow)
    c.work_orders.CancelRun(wo_pb.CancelRunRequest(run_id=created.run.id))
    return created.work_order.id


def runs_of(c: Client, work_order_id: str) -> list[Any]:
    """The work order's runs, latest first."""
    return list(c.work_orders.ListRuns(wo_pb.ListRunsRequest(work_order_id=work_order_id, page_size=100)).runs)


def post_from_page(page: Any, path: str, fields: dict[str, str]) -> dict[str, Any]:
    """A POST made by the page's own script (so with its Origin, cookies and its forms' CSRF
    token, unless `fields` gives one), as a doctored form would be: {"status", "text"}."""
    return page.evaluate("""async ([path, fields]) => {
        const csrf = document.querySelector('input[name="csrf_token"]');
        const body = new URLSearchParams({csrf_token: csrf ? csrf.value : "", ...fields});
        const answer = await fetch(path, {method: "POST", body, redirect: "manual"});
        return {status: answer.status, text: await answer.text()};
    }""", [path, fields])


def test_retry_makes_a_new_run_that_the_work_order_page_shows(web: Web, page: Any, c: Client) -> None:
    project = c.project_id
    workflow = c.workflow(["fetch", "notify"], [("fetch", "notify", ON_SUCCESS)], wid="referral")
    work_order_id = cancelled(c, workflow)
    page.goto(f"{web.url}/work-orders/{work_order_id}?project={project}")
    assert page.locator("form.cancel").count() == 0  # its run has ended: nothing to cancel
    form = page.locator("form.retry")
    request_id = form.locator('input[name="request_id"]').input_value()
    assert [o.strip() for o in form.locator("option").all_inner_texts()] == ["the start", "step fetch", "step notify"]
    form.locator("button").click()
    page.wait_for_selector('section.run h2:has-text("Run 2")')
    assert unquote(page.url).endswith(f"/work-orders/{work_order_id}?project={project}")
    assert re.sub(r"\s+", " ", page.locator("section.run dl.run-summary .chip").first.inner_text()) == "⚪ Pending"
    assert [li.split()[:2] for li in page.locator("ol.runs li").all_inner_texts()] == [["Run", "2"], ["Run", "1"]]
    runs = runs_of(c, work_order_id)
    assert [r.number for r in runs] == [2, 1] and runs[0].start_step_id == ""
    # The same form sent again (its request_id) is the same retry: no third run.
    page.go_back()
    again = post_from_page(page, f"/work-orders/{work_order_id}/retry?project={project}",
                           {"request_id": request_id, "start_step_id": ""})
    assert again["status"] in (0, 303), again  # fetch hides a redirect's status ("opaqueredirect": 0)
    assert len(runs_of(c, work_order_id)) == 2


def test_retry_from_a_step_starts_the_new_run_at_that_step(web: Web, page: Any, c: Client) -> None:
    workflow = c.workflow(["fetch", "notify"], [("fetch", "notify", ON_SUCCESS)])
    work_order_id = ended(c, workflow, [("fetch", None), ("notify", error("JobError", message="the mail server said no"))])
    page.goto(f"{web.url}/work-orders/{work_order_id}")
    page.locator('form.retry select[name="start_step_id"]').select_option("notify")
    page.locator("form.retry button").click()
    page.wait_for_selector('section.run h2:has-text("Run 2")')
    summary = page.locator("section.run dl.run-summary")
    assert "started at step" in summary.inner_text() and summary.locator("dd code").inner_text() == "notify"
    # The step upstream kept its result from run 1; the run starts at notify.
    fetch = page.locator('li.step[data-step="fetch"]')
    assert fetch.get_attribute("data-status") == "RUN_STATUS_SUCCESS"
    assert "reused from an earlier run" in fetch.inner_text()
    assert page.locator('li.step[data-step="notify"]').count() == 0  # not started yet: the run is pending
    latest = runs_of(c, work_order_id)[0]
    assert latest.number == 2 and latest.start_step_id == "notify" and latest.status == RunStatus.RUN_STATUS_PENDING


def test_cancel_ends_a_pending_run_as_cancelled(web: Web, page: Any, c: Client) -> None:
    workflow = c.workflow(["only"])
    created = c.work_order(workflow)
    page.goto(f"{web.url}/work-orders/{created.work_order.id}")
    assert page.locator("form.retry button").is_disabled()  # its run has not ended
    assert "Pending" in page.locator("#retry-why-not").inner_text()
    page.locator('form.cancel input[name="reason"]').fill("not needed after all")
    page.locator('form.cancel button:has-text("Cancel run 1")').click()
    page.wait_for_selector('section.run dl.run-summary .chip[data-status="RUN_STATUS_CANCELLED"]')
    chip = page.locator("section.run dl.run-summary .chip").first.inner_text()
    assert re.sub(r"\s+", " ", chip) == "⚪ Cancelled"
    assert "not needed after all" in page.locator(".status-reason").inner_text()
    assert page.locator("form.cancel").count() == 0 and page.locator("form.retry button").is_enabled()
    run = runs_of(c, created.work_order.id)[0]
    assert run.status == RunStatus.RUN_STATUS_CANCELLED and run.status_reason == "cancelled: not needed after all"


def test_bulk_retry_retries_exactly_the_matching_work_orders_to_the_end_of_its_progress(web: Web, page: Any, c: Client) -> None:
    project = c.project_id
    batch = c.workflow(["only"], wid="batch")
    other = c.workflow(["only"], wid="other")
    # 120 matching: three pages of RetryWorkOrders (50 a page). Not matching: another
    # workflow's cancelled ones, and this workflow's pending and succeeded ones.
    matching = {cancelled(c, batch) for _ in range(120)}
    unmatched = {cancelled(c, other) for _ in range(3)} | {c.work_order(batch).work_order.id for _ in range(2)}
    unmatched.add(ended(c, batch, [("only", None)]))
    page.goto(web.history())  # no status chosen: a bulk retry is not offered
    assert page.locator("form.bulk-retry button").is_disabled()
    assert "statuses" in page.locator("#bulk-retry-why-not").inner_text()
    page.goto(f"{web.url}/?project={project}&status=CANCELLED&workflow=batch")
    assert page.locator('[data-count-status="CANCELLED"] .n').inner_text() == "120"
    # Every value the progress bar takes, as the page sets it.
    page.evaluate("""() => {
        const bar = document.querySelector("form.bulk-retry progress");
        window.progress = [];
        new MutationObserver(() => { if (bar.hasAttribute("value")) window.progress.push([bar.value, bar.max]); })
            .observe(bar, {attributes: true, attributeFilter: ["value", "max"]});
    }""")
    page.locator("form.bulk-retry button").click()
    page.wait_for_selector('form.bulk-retry[data-state="done"]')
    result = page.locator("form.bulk-retry .bulk-result")
    assert result.get_attribute("data-retried") == "120" and result.get_attribute("data-skipped") == "0"
    bar = page.locator("form.bulk-retry progress")
    assert bar.evaluate("b => [b.value, b.max]") == [120, 120]
    seen = page.evaluate("window.progress")
    assert seen and seen[-1] == [120, 120]
    assert [v for v, _ in seen] == sorted(v for v, _ in seen)  # it only goes forward
    listed = c.work_orders.ListWorkOrders(wo_pb.ListWorkOrdersRequest(project_id=project, page_size=1000)).work_orders
    runs = {w.id: w.run_count for w in listed}
    assert {i for i, n in runs.items() if n == 2} == matching
    assert {i for i, n in runs.items() if n == 1} == unmatched
    # A new request_id came with the answer: clicking again is a new bulk retry (nothing matches now).
    page.locator("form.bulk-retry button").click()
    page.wait_for_selector('form.bulk-retry .bulk-result[data-retried="0"]')


def test_a_refused_action_shows_the_servers_error_text(web: Web, page: Any, c: Client) -> None:
    workflow = c.workflow(["only"], wid="refusals")
    running = c.work_order(workflow)
    c.claim_run(running.run.id).start()
    page.goto(f"{web.url}/work-orders/{running.work_order.id}")
    page.wait_for_selector('.live[data-state="open"]')
    # The page says why it will not retry; the server, asked anyway, says it in its words.
    assert "Running" in page.locator("#retry-why-not").inner_text()
    page.locator("form.retry button").evaluate("b => { b.disabled = false; }")
    page.locator("form.retry button").click()
    alert = page.locator(".error[role=alert]")
    alert.wait_for()
    text = re.sub(r"\s+", " ", alert.inner_text())
    assert text == (f"FAILED_PRECONDITION: work order {running.work_order.id} has a RUN_STATUS_RUNNING run; "
                    "retry it once that ends [LATEST_RUN_NOT_ENDED]"), text
    # The address bar is the page's again: a reload reads it, and posts nothing.
    assert page.url == f"{web.url}/work-orders/{running.work_order.id}"
    # A step the workflow does not have, from a doctored form.
    ended_id = cancelled(c, workflow)
    page.goto(f"{web.url}/work-orders/{ended_id}")
    page.locator('form.retry option[value=""]').evaluate("o => { o.value = 'no-such-step'; }")
    page.locator("form.retry button").click()
    alert.wait_for()
    assert "INVALID_ARGUMENT" in alert.inner_text() and "no step 'no-such-step'" in alert.inner_text()
    assert len(runs_of(c, running.work_order.id)) == 1 and len(runs_of(c, ended_id)) == 1


def test_a_post_from_another_site_is_refused(web: Web, c: Client) -> None:
    """Without --auth there is no cookie for SameSite to hold back: the Origin check does."""
    work_order_id = cancelled(c, c.workflow(["only"]))
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {}):
        request = urllib.request.Request(f"{web.url}/work-orders/{work_order_id}/retry", data=b"request_id=x",
                                         headers=headers, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403, headers
    assert len(runs_of(c, work_order_id)) == 1


def test_a_page_on_a_rebound_name_is_refused_with_its_actions(web: Web, page: Any, c: Client) -> None:
    """DNS rebinding in the browser: evil.example resolves to 127.0.0.1 (CHROMIUM_FLAGS), as a
    rebinding site's name does once rebound. Its page would be same-origin with this port;
    the server answers no Host but its own names, so neither the history page nor a POST its
    script makes (Origin and Host both evil.example:PORT) is served."""
    work_order_id = cancelled(c, c.workflow(["only"]))
    port = web.url.rsplit(":", 1)[1]
    answer = page.goto(f"http://evil.example:{port}/?project={c.project_id}")
    assert answer is not None and answer.status == 421
    assert "not a name of this server" in page.content() and work_order_id not in page.content()
    posted = post_from_page(page, f"/work-orders/{work_order_id}/retry", {"request_id": "rebound"})
    assert posted["status"] == 421, posted
    assert len(runs_of(c, work_order_id)) == 1
    # The server's own names are served.
    for host in ("127.0.0.1", "localhost"):
        assert page.goto(f"http://{host}:{port}/statuses").status == 200


def test_every_form_that_posts_carries_the_sessions_csrf_token(web: Web, page: Any, browser: Any, c: Client) -> None:
    created = c.work_order(c.workflow(["only"]))  # pending: its page has a retry and a cancel form
    tokens = set()
    for url in (f"{web.url}/?project={c.project_id}&status=PENDING", f"{web.url}/work-orders/{created.work_order.id}"):
        page.goto(url)
        forms = page.locator('form[method="post"]')
        assert forms.count() >= 1
        tokens |= {forms.nth(i).locator('input[name="csrf_token"]').input_value() for i in range(forms.count())}
    assert len(tokens) == 1 and re.fullmatch(r"[0-9a-f]{64}", next(iter(tokens))), tokens
    session = next(k for k in browser.cookies() if k["name"] == "runstatus_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    # From the page's own origin, a POST without the token or with another is refused.
    cancel = f"/work-orders/{created.work_order.id}/runs/{created.run.id}/cancel"
    for csrf in ("", "0" * 64):
        answer = post_from_page(page, cancel, {"csrf_token": csrf, "request_id": f"no-token-{csrf}"})
        assert answer["status"] == 403 and "csrf_token" in answer["text"], answer
    assert runs_of(c, created.work_order.id)[0].status == RunStatus.RUN_STATUS_PENDING
    # The form itself still works.
    page.locator('form.cancel button:has-text("Cancel run 1")').click()
    page.wait_for_selector('section.run dl.run-summary .chip[data-status="RUN_STATUS_CANCELLED"]')


def test_with_auth_a_worker_token_cannot_retry_or_cancel(auth_web: tuple[str, dict[str, Any]], page: Any) -> None:
    from runstatus import Client as RsClient

    url, made = auth_web
    work_order_id = made["clinic-a"]
    # A client token may: its buttons are there.
    sign_in(page, url, made["clinic-a-token"])
    page.wait_for_url(url + "/")
    page.goto(f"{url}/work-orders/{work_order_id}")
    assert page.locator("form.cancel button").is_enabled()
    page.locator("form.account button").click()
    # A worker token may not: no buttons, and a forged POST is refused in the server's words.
    sign_in(page, url, made["worker-token"])
    page.wait_for_url(url + "/")
    page.goto(f"{url}/work-orders/{work_order_id}")
    assert page.locator("form.retry, form.cancel").count() == 0
    assert page.locator("form.bulk-retry").count() == 0 or page.locator("form.bulk-retry button").is_disabled()
    run_id = made["clinic-a-run"]
    for path, method in ((f"/work-orders/{work_order_id}/retry", "RetryWorkOrder"),
                         (f"/work-orders/{work_order_id}/runs/{run_id}/cancel", "CancelRun"),
                         ("/retry-matching?status=PENDING", "RetryWorkOrders")):
        answer = post_from_page(page, path, {"request_id": f"forged-{method}"})
        assert answer["status"] == 403, (path, answer["status"])
        assert f"a ROLE_WORKER token may not call WorkOrderService.{method}" in answer["text"]
    with RsClient(made["address"], token=made["admin-token"]) as rs:
        order = rs.get_work_order(work_order_id)
        assert order.run_count == 1 and order.status == RunStatus.RUN_STATUS_PENDING


# TLS: with the server's certificate, the web UI is HTTPS and calls the gRPC port over TLS.

def test_the_web_ui_is_served_over_https_with_the_servers_certificate(tmp_path: pathlib.Path) -> None:
    import ssl

    import trustme

    from runstatus import Client as RsClient

    ca = trustme.CA()
    issued = ca.issue_cert("localhost", "127.0.0.1")
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    port = free_port()
    server = ServerProcess(tmp_path / "tls.db", "--tls-cert", str(cert), "--tls-key", str(key),
                           "--web-port", str(port)).start()
    try:
        with RsClient(f"localhost:{server.port}", root_certificates=ca.cert_pem.bytes(), timeout=10) as rs:
            rs.create_project("tls")
            rs.create_workflow("intake", ["fetch"], project_id="tls")
            made = rs.create_work_order("intake", project_id="tls").id
        trusting = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/?project=tls", timeout=10, context=trusting) as answer:
            assert answer.status == 200
            # The work order is listed: the page's own client reached the gRPC port over TLS.
            assert made in answer.read().decode()
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # it is not served over plain HTTP
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10)
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):  # nor with another certificate
            urllib.request.urlopen(f"https://127.0.0.1:{port}/", timeout=10, context=ssl.create_default_context())
    finally:
        server.stop()
    # mTLS: the web UI has no client certificate to call the gRPC port with, and says so.
    with pytest.raises(RuntimeError, match="client certificate"):
        ServerProcess(tmp_path / "mtls.db", "--tls-cert", str(cert), "--tls-key", str(key),
                      "--tls-client-ca", str(tmp_path / "ca.pem"), "--web-port", str(free_port())).start()


def test_without_the_script_a_bulk_retry_answers_with_the_history_page(web: Web, c: Client) -> None:
    """A plain form POST (no progress asked for) gets the history page with the server's answer."""
    project = c.project_id
    workflow = c.workflow(["only"])
    work_order_id = cancelled(c, workflow)
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())  # keeps the session cookie
    with browser.open(f"{web.url}/?project={project}&status=CANCELLED", timeout=10) as answer:
        match = re.search(r'name="csrf_token" value="([^"]+)"', answer.read().decode())  # the form's
    assert match is not None
    csrf = match.group(1)
    request = urllib.request.Request(f"{web.url}/retry-matching?project={project}&status=CANCELLED",
                                     data=f"request_id=plain-1&csrf_token={csrf}".encode(), headers={"Origin": web.url},
                                     method="POST")
    with browser.open(request, timeout=10) as answer:
        page = answer.read().decode()
    assert 'class="bulk-result" role="status" data-retried="1" data-skipped="0"' in page
    assert len(runs_of(c, work_order_id)) == 2
    # Without a status the server refuses, and the page says so in its words.
    request = urllib.request.Request(f"{web.url}/retry-matching?project={project}",
                                     data=f"request_id=plain-2&csrf_token={csrf}".encode(), headers={"Origin": web.url},
                                     method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        browser.open(request, timeout=10)
    assert refused.value.code == 400
    assert "name at least one status, so that a bulk retry is deliberate" in refused.value.read().decode()
