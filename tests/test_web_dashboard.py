"""The dashboard (/dashboard, issue 31) in headless Chromium against a real server: the chart's
bars add up to the counts shown, its links and the tables' lead to the matching history, a
work order created while the page is open moves the latest bucket (live, at the page's calm
rate), and the bars are reachable from the keyboard. Writes docs/screenshots/dashboard.png with
RUNSTATUS_UPDATE_SCREENSHOTS=1 (test_web.screenshot)."""

from __future__ import annotations

import importlib.util
import pathlib
import random
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from harness import RUNTIME, Client, ServerProcess, error, free_port
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1 import workflow_service_pb2 as wf_pb
from runstatus.v1.status_pb2 import RunStatus
from test_web import ROOT, browser, page, screenshot  # noqa: F401  (fixtures)

S = RunStatus


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Client]]:
    tmp = tmp_path_factory.mktemp("dash")
    port = free_port()
    server = ServerProcess(tmp / "runstatus.db", "--web-port", str(port), "--lease-seconds", "2",
                           "--sweep-seconds", "0.2").start()
    c = Client(server.address)
    try:
        c.new_project()
        referral = c.workflow(["fetch", "notify"], wid="referral")
        sync = c.workflow(["extract"], wid="nightly-sync")
        for i in range(6):
            lease = c.claim_run(c.work_order(referral).run.id)
            lease.start()
            step = lease.step("fetch")
            lease.done(step.id, error("TypeError") if i % 3 == 0 else None)
            lease.complete()
        for name, source in (("SyntaxError", 1), ("WorkerSocketClosed", RUNTIME), ("WorkerSocketClosed", RUNTIME)):
            lease = c.claim_run(c.work_order(sync).run.id)
            lease.start()
            lease.done(lease.step("extract").id, error(name, source=source))
        lost = c.claim_run(c.work_order(sync).run.id)
        lost.start()
        deadline = time.monotonic() + 20
        while c.work_orders.GetRun(wo_pb.GetRunRequest(run_id=lost.run_id)).run.status != S.RUN_STATUS_LOST:
            assert time.monotonic() < deadline, "the run was not LOST in time"
            time.sleep(0.1)
        c.work_order(referral)  # one PENDING
        yield f"http://127.0.0.1:{port}", c
    finally:
        c.close()
        server.stop()


def counts(c: Client) -> dict[str, int]:
    answer = c.work_orders.CountWorkOrders(wo_pb.CountWorkOrdersRequest(project_id=c.project_id))
    return {S.Name(x.status).removeprefix("RUN_STATUS_"): x.count for x in answer.counts}


def bars(tab: Any) -> dict[str, dict[str, int]]:
    """{bucket start: {status: count}} as the chart draws it."""
    return tab.evaluate("""() => Object.fromEntries([...document.querySelectorAll('svg.chart a.bucket')].map(a =>
        [a.dataset.start, Object.fromEntries([...a.querySelectorAll('rect.seg')].map(r =>
            [r.dataset.status, Number(r.dataset.count)]))]))""")


def test_bars_add_up_to_the_counts_and_link_to_the_history(dash: tuple[str, Client], page: Any) -> None:
    url, c = dash
    page.goto(f"{url}/dashboard?project={c.project_id}&window=1h&bucket=minute")
    drawn = bars(page)
    assert len(drawn) in (60, 61)  # the window rounded out to whole minutes
    summed: dict[str, int] = {}
    for by_status in drawn.values():
        for status, n in by_status.items():
            summed[status] = summed.get(status, 0) + n
    assert summed == counts(c) and sum(summed.values()) == 11
    assert page.locator("[data-dash-total] strong").inner_text() == "11"
    # Each bar's height is its share: the tallest bucket's stack reaches the top of the plot.
    heights = page.evaluate("""() => [...document.querySelectorAll('svg.chart a.bucket')].map(a =>
        [...a.querySelectorAll('rect.seg')].reduce((h, r) => h + Number(r.getAttribute('height')), 0))""")
    assert max(heights) == pytest.approx(250 - 14 - 24, abs=0.1)
    # Every status in the legend, with its chip and pattern; LOST and EXCEPTION drawn apart (patterns).
    assert page.locator("ul.legend [data-legend]").count() == 10
    assert page.locator('rect.seg[data-status="LOST"]').first.get_attribute("fill") == "url(#pat-LOST)"
    assert page.locator("svg.chart polyline.rate").count() == 1
    # A bar leads to the history of its bucket: the same work orders.
    busiest = max(drawn, key=lambda k: sum(drawn[k].values()))
    link = page.locator(f'svg.chart a.bucket[data-start="{busiest}"]')
    href = link.get_attribute("href")
    query = parse_qs(urlsplit(href).query)
    assert query["created_after"] == [busiest] and query["project"] == [c.project_id]
    page.goto(url + href)
    shown = page.locator("nav.counts a.total .n").inner_text()
    assert int(shown) == sum(drawn[busiest].values())


def test_workflow_rows_and_errors_lead_to_the_filtered_history(dash: tuple[str, Client], page: Any) -> None:
    url, c = dash
    page.goto(f"{url}/dashboard?project={c.project_id}&window=6h&bucket=hour")
    rows = page.locator("table.workflows tbody tr[data-workflow]")
    assert [rows.nth(i).get_attribute("data-workflow") for i in range(rows.count())] == ["referral", "nightly-sync"]
    referral = page.locator('tr[data-workflow="referral"]')
    assert referral.locator("[data-total]").inner_text() == "7"
    assert referral.locator("[data-rate]").inner_text() == "67%"  # 4 of 6 ended succeeded
    assert referral.locator("svg.spark").count() == 1
    href = referral.locator("a").first.get_attribute("href")
    query = parse_qs(urlsplit(href).query)
    assert query["workflow"] == ["referral"] and "created_after" in query and "created_before" in query
    page.goto(url + href)
    assert page.locator("nav.counts a.total .n").inner_text() == "7"
    assert page.locator('[data-count-status="FAILED"] .n').inner_text() == "2"
    # The top error: TypeError, twice; its link is the history of its status over the window.
    page.goto(f"{url}/dashboard?project={c.project_id}&window=6h&bucket=hour")
    top = page.locator("table.errors tbody tr").first
    assert top.get_attribute("data-error-rule") in ("seed:TypeError", "unknown:runtime")
    typeerror = page.locator('tr[data-error-rule="seed:TypeError"]')
    assert typeerror.locator("td.num").inner_text() == "2"
    page.goto(url + typeerror.locator("a").get_attribute("href"))
    assert page.locator("nav.counts a.count.selected").get_attribute("data-count-status") == "FAILED"
    assert page.locator("table.history tbody tr[data-work-order]").count() == 2
    # The history links back: its counts bar to the dashboard of the same view.
    back = page.locator("[data-dashboard-link]").get_attribute("href")
    assert back.startswith("/dashboard?") and "from=" in back


def test_live_update_moves_the_latest_bucket_and_keys_reach_the_bars(dash: tuple[str, Client], page: Any) -> None:
    url, c = dash
    page.goto(f"{url}/dashboard?project={c.project_id}&window=1h&bucket=minute")
    page.wait_for_selector('.live[data-state="open"]')
    before = bars(page)
    latest = max(before)
    c.work_order(c.workflows.GetWorkflow(wf_pb.GetWorkflowRequest(project_id=c.project_id,
                                                                  workflow_id="referral")).workflow)
    page.wait_for_function(
        "n => Number(document.body.dataset.refreshed || 0) >= n", arg=1, timeout=20_000)
    total = sum(sum(b.values()) for b in before.values())
    page.wait_for_function("""n => [...document.querySelectorAll('svg.chart a.bucket')]
        .reduce((sum, a) => sum + Number(a.dataset.total), 0) === n""", arg=total + 1, timeout=20_000)
    after = bars(page)
    newest = max(after)
    assert newest >= latest
    # The new work order is in the latest bucket, or in a newer one if the minute turned meanwhile
    # (then the newest bucket may be the empty current minute: CI met that once).
    assert sum(after[b].get("PENDING", 0) for b in after if b >= latest) >= before[latest].get("PENDING", 0) + 1
    # Keyboard: Tab reaches the chart's bars, each a link named by its bucket and counts.
    page.focus("form.dash button")
    for _ in range(5):
        page.keyboard.press("Tab")
        focused = page.evaluate("() => document.activeElement.getAttribute('aria-label') || ''")
        if re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d UTC: \d+ work orders", focused):
            break
    else:
        raise AssertionError(f"Tab did not reach a bar (last focus: {focused!r})")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{url}/dashboard?project={c.project_id}&window=1h&bucket=minute")
    box = page.locator("table.workflows thead").bounding_box()
    assert box is not None and box["y"] + box["height"] <= 800  # the chart and the table's top fit 1280x800


@pytest.mark.sqlite_only("a file filled in-process, as scripts/stats_bench.py fills it")
def test_a_busy_day_fits_the_screen_and_its_bars_add_up(tmp_path: pathlib.Path, page: Any) -> None:
    """A day of 6,000 work orders over 20 workflows (scripts/stats_bench.py's fill, a burst of LOST
    and EXCEPTION at two thirds of it): the README's screenshot."""
    spec = importlib.util.spec_from_file_location("stats_bench", ROOT / "scripts" / "stats_bench.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    db = tmp_path / "busy.db"
    bench.fill(db, 6000, random.Random(31), span_us=24 * 3600 * 10**6, spikes=(0.66,), quiet=True)
    port = free_port()
    server = ServerProcess(db, "--web-port", str(port)).start()
    try:
        page.set_viewport_size({"width": 1280, "height": 800})
        page.goto(f"http://127.0.0.1:{port}/dashboard?window=24h&bucket=hour")
        drawn = bars(page)
        assert len(drawn) in (24, 25)
        total = sum(sum(b.values()) for b in drawn.values())
        assert total == 6000 == int(page.locator("[data-dash-total] strong").inner_text())
        assert page.locator("svg.chart .spike").count() >= 1  # the burst is marked
        assert page.locator("table.workflows tbody tr[data-workflow]").count() == 20
        box = page.locator("table.workflows tbody tr").nth(2).bounding_box()
        assert box is not None and box["y"] + box["height"] <= 800  # the chart and the table's top fit
        screenshot(page, "dashboard.png")
    finally:
        server.stop()
