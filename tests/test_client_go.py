"""The Go client's helpers against a real server on a real port: the Live tests of
clients/go/client (live_test.go), run by `go test` with the server's address in RUNSTATUS_ADDR.

The watch test asks for a server restart by writing `restart` into RUNSTATUS_CONTROL; this
driver stops the server, starts it again on the same database and port, and answers
`restarted`."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from harness import ON_SUCCESS, Client, ServerProcess

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODULE_DIR = ROOT / "clients/go"
MODULE = "github.com/runstatus/runstatus/clients/go"
README = MODULE_DIR / "README.md"

LIVE_TESTS = [
    "TestLiveWorkerRunsAWorkflowToSuccess",
    "TestLiveFailingStepsAreReportedAndClassified",
    "TestLiveCancelStopsTheRunningStep",
    "TestLiveWatchResumesAcrossARestart",
    "TestLiveRetryAfterUnavailableIsDoneOnce",
    "TestLiveFieldViolations",
    "TestLiveTokensAndNotificationsAreReachable",
    "TestLiveWatchCursorExpired",
    "TestLiveWatchBatched",
]
# Run against `pruning_server` instead.
PRUNING_TESTS = {"TestLiveWatchCursorExpired"}


@pytest.fixture(scope="module")
def go_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with short leases (heartbeats every fraction of a second), its own database, and
    loopback webhooks allowed (the notification test subscribes one)."""
    tmp = tmp_path_factory.mktemp("go-client")
    server = ServerProcess(tmp / "runstatus.db", "--lease-seconds", "2", "--sweep-seconds", "0.2",
                           "--notify-allow-private").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pruning_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server where a project may keep ended work orders for a second (request ids are kept
    for one), pruning often: a watch's cursor expires within a test."""
    tmp = tmp_path_factory.mktemp("go-client-pruning")
    server = ServerProcess(tmp / "runstatus.db", "--request-id-seconds", "1", "--sweep-seconds", "0.2").start()
    try:
        yield server
    finally:
        server.stop()


def restarts(server: ServerProcess, control: pathlib.Path, done: threading.Event) -> None:
    """Restarts the server on the same database and port whenever the Go test asks."""
    request = control / "restart"
    while not done.is_set():
        if request.exists():
            request.unlink()
            server.stop()
            server.restart()
            (control / "restarted").touch()
        time.sleep(0.05)


def test_go_test_programs_list_matches() -> None:
    """Every Live test of live_test.go is run here, so none is silently left out."""
    source = (MODULE_DIR / "client/live_test.go").read_text(encoding="utf-8")
    declared = sorted(line.split("(")[0].removeprefix("func ") for line in source.splitlines()
                      if line.startswith("func TestLive"))
    assert declared == sorted(LIVE_TESTS)


@pytest.mark.parametrize("name", LIVE_TESTS)
def test_go_client_live(request: pytest.FixtureRequest, tmp_path: pathlib.Path, name: str) -> None:
    go_server: ServerProcess = request.getfixturevalue("pruning_server" if name in PRUNING_TESTS else "go_server")
    control = tmp_path / "control"
    control.mkdir()
    done = threading.Event()
    driver = threading.Thread(target=restarts, args=(go_server, control, done), daemon=True)
    driver.start()
    env = {**os.environ, "RUNSTATUS_ADDR": go_server.address, "RUNSTATUS_CONTROL": str(control),
           "GOFLAGS": "-mod=readonly", "GOWORK": "off"}
    try:
        out = subprocess.run(["go", "test", "./client", "-run", f"^{name}$", "-count=1", "-v", "-timeout", "300s"],
                             cwd=MODULE_DIR, env=env, capture_output=True, text=True, timeout=400)
    finally:
        done.set()
        driver.join()
    report = out.stdout + out.stderr
    assert out.returncode == 0, report
    assert f"--- PASS: {name} " in report, report  # it ran, and was not skipped
    assert "--- SKIP" not in report, report


def version() -> str:
    text = (MODULE_DIR / "client/version.go").read_text(encoding="utf-8")
    match = re.search(r'const Version = "([^"]+)"', text)
    assert match
    return match.group(1)


def test_readme_gives_the_install_line_and_the_reference() -> None:
    text = README.read_text(encoding="utf-8")
    assert f"go get {MODULE}@v{version()}" in text
    assert f"clients/go/v{version()}" in text
    assert f"go doc {MODULE}/client" in text


def test_readme_worker_example_runs_a_workflow(tmp_path: pathlib.Path) -> None:
    """The README's example, as a program of a project of its own that requires this module
    (replaced by the folder), run against a real server: it executes a work order to SUCCESS."""
    blocks = re.findall(r"```go\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks and "client.NewWorker" in blocks[0]
    project = tmp_path / "example"
    project.mkdir()
    (project / "main.go").write_text(blocks[0])
    (project / "go.mod").write_text(
        f"module example.com/readme\n\ngo 1.26.0\n\nrequire {MODULE} v{version()}\n\nreplace {MODULE} => {MODULE_DIR}\n")
    (project / "go.sum").write_text((MODULE_DIR / "go.sum").read_text())
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off", "GOWORK": "off", "GOTOOLCHAIN": "local"}
    built = subprocess.run(["go", "build", "-o", "example", "."], cwd=project, env=env, capture_output=True,
                           text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr

    server = ServerProcess(tmp_path / "runstatus.db").start()
    try:
        stubs = Client(server.address)
        workflow = stubs.workflow(["fetch", "notify"], [("fetch", "notify", ON_SUCCESS)], project_id="default")
        run_id = stubs.work_order(workflow, {"patient_id": 7}).run.id
        stubs.close()
        out = subprocess.run([str(project / "example"), server.address], capture_output=True, text=True, timeout=60)
    finally:
        server.stop()
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == f"{run_id} 🟢 RUN_STATUS_SUCCESS"
