"""The `runstatus` command, run for real against a real server."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
from typing import Any

import pytest

from harness import ServerProcess

RUNSTATUS = pathlib.Path(sys.executable).with_name("runstatus")


def run(server: ServerProcess, *args: str, project: str = "", check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RUNSTATUS_ADDRESS": server.address, "RUNSTATUS_PROJECT": project, "COLUMNS": "200"}
    out = subprocess.run([str(RUNSTATUS), *args], capture_output=True, text=True, env=env, timeout=60)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def run_json(server: ServerProcess, *args: str, project: str = "") -> Any:
    return json.loads(run(server, *args, "--json", project=project).stdout)


@pytest.fixture
def project(server: ServerProcess) -> str:
    name = f"cli-{time.monotonic_ns()}"
    run(server, "projects", "create", name, "--max-in-flight", "100")
    return name


def test_classify(server: ServerProcess) -> None:
    human = run(server, "classify", "KeyError", "--language", "python").stdout
    assert "🔴 Failed" in human and "ERROR_TYPE_RANGE_ERROR" in human and "alias:python:KeyError" in human
    assert run_json(server, "classify", "SyntaxError") == {
        "status": "RUN_STATUS_CRASHED", "error_type": "ERROR_TYPE_SYNTAX_ERROR", "aborts_run": True,
        "rule": "seed:SyntaxError"}


def test_workflow_and_work_order_commands(server: ServerProcess, project: str, tmp: pathlib.Path) -> None:
    spec = tmp / "referral.yaml"
    spec.write_text("id: referral\nname: Referral\nsteps: [fetch, notify, alert]\n"
                    "edges:\n  - [fetch, notify, ON_SUCCESS]\n  - [fetch, alert, ON_FAILURE]\n")
    created = run(server, "workflows", "create", str(spec), project=project).stdout
    assert "referral" in created and "version 1" in created
    assert run_json(server, "workflows", "get", "referral", project=project)["version"] == 1
    assert [w["id"] for w in run_json(server, "workflows", "list", project=project)] == ["referral"]

    ids = [run_json(server, "work-orders", "create", "referral", "--input", '{"patient": 123}', project=project)["id"]
           for _ in range(3)]
    shown = run(server, "work-orders", "get", ids[0], project=project).stdout
    assert ids[0] in shown and "⚪ Pending" in shown
    got = run_json(server, "work-orders", "get", ids[0], project=project)
    assert got["input"] == {"patient": 123} and got["latestRun"]["number"] == 1
    listed = run_json(server, "work-orders", "list", "--status", "PENDING", "--limit", "2", project=project)
    assert [w["id"] for w in listed] == ids[::-1][:2]
    assert "referral v1" in run(server, "work-orders", "list", project=project).stdout
    assert run_json(server, "work-orders", "count", project=project) == {
        "counts": {"RUN_STATUS_PENDING": 3}, "total": 3}

    run_id = got["latestRun"]["id"]
    assert run_json(server, "runs", "cancel", run_id, "--reason", "duplicate", project=project)["status"] == \
        "RUN_STATUS_CANCELLED"
    assert "Cancelled" in run(server, "runs", "get", run_id, project=project).stdout
    retried = run_json(server, "work-orders", "retry", ids[0], project=project)
    assert (retried["status"], retried["run_number"]) == ("RUN_STATUS_PENDING", 2)
    assert [r["number"] for r in run_json(server, "runs", "list", ids[0], project=project)] == [2, 1]

    for i in ids[1:]:
        rid = run_json(server, "work-orders", "get", i, project=project)["latestRun"]["id"]
        run(server, "runs", "cancel", rid, project=project)
    bulk = run(server, "work-orders", "retry", "--status", "CANCELLED", project=project).stdout
    assert "retried 2 work orders" in bulk
    assert run_json(server, "work-orders", "count", "--status", "PENDING", project=project)["total"] == 3

    events = run(server, "work-orders", "watch", "--count", "4", "--json", project=project).stdout.splitlines()
    assert [json.loads(e)["workOrderId"] for e in events][:3] == ids
    cursor = json.loads(events[-1])["cursor"]
    resumed = run(server, "work-orders", "watch", "--after", cursor, "--count", "1", "--json", project=project)
    assert int(json.loads(resumed.stdout)["cursor"]) > int(cursor)


def test_errors_exit_non_zero_with_the_fields(server: ServerProcess, project: str, tmp: pathlib.Path) -> None:
    bad = tmp / "bad.yaml"
    bad.write_text("id: bad\nsteps: [a, a]\n")
    out = run(server, "workflows", "create", str(bad), project=project, check=False)
    assert out.returncode == 1
    assert "INVALID_ARGUMENT" in out.stderr and "workflow.steps[1].id" in out.stderr
    missing = run(server, "work-orders", "get", "nope", check=False)
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    assert run(server, "work-orders", "create", "x", "--input", "{not json", check=False).returncode == 2


def test_connection_settings_from_flags(server: ServerProcess) -> None:
    out = subprocess.run([str(RUNSTATUS), "--address", server.address, "classify", "OomError", "--json"],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "RUNSTATUS_ADDRESS": "127.0.0.1:1"})
    assert json.loads(out.stdout)["status"] == "RUN_STATUS_KILLED"
    down = subprocess.run([str(RUNSTATUS), "--address", "127.0.0.1:1", "--timeout", "2", "classify", "X"],
                          capture_output=True, text=True, timeout=60)
    assert down.returncode == 1 and "UNAVAILABLE" in down.stderr
