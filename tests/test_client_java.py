"""The Java client against real servers on real ports: clients/java/client's LiveServerTest (JUnit,
run by surefire with the servers' addresses as system properties) proves the Worker, the lease
handle's reports, the resuming watch (across a restart of the server this module makes when the
test asks; batched, handed out event by event with the unbatched watch's cursors), the retry of
a mutating call done once, fieldViolations, the async and future stubs under --auth, and
TokenService and NotificationService being reachable. Each JUnit test is a
pytest test here, read from surefire's report.

Maven builds a copy of clients/java and proto/ in a temporary folder, so the SQLite and PostgreSQL
runs (which `make test` runs at once) never share a target/ folder."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from harness import ServerProcess, offline_admin_token

ROOT = pathlib.Path(__file__).resolve().parents[1]
SUITE = "dev.runstatus.client.LiveServerTest"
TESTS = [
    "aWorkerRunsAWorkflowToSuccess",
    "aFailingStepIsReportedWithItsNameSubtypeAndSeverity",
    "aCancelStopsTheHeartbeatAndInterruptsTheRunningStep",
    "theWatchResumesAcrossAServerRestartWithNoEventLostOrRepeated",
    "aMutatingCallRetriedAfterUnavailableIsDoneOnce",
    "fieldViolationsNameEveryWrongField",
    "asyncAndFutureStubsSendTheTokenUnderAuth",
    "tokensAndNotificationsAreReachable",
    "aWatchAfterAPrunedCursorThrowsCursorExpired",
    "aBatchedWatchHandsOutTheSameEventsAndCursorsAndResumesMidBatch",
]

# Maven builds and runs the suite in the module fixture: 30 s on a quiet machine, over 100 s on
# a busy one, past pytest's default of 120 s for the first test.
pytestmark = pytest.mark.timeout(900)


def run_suite(tmp: pathlib.Path, server: ServerProcess, secured: ServerProcess, token: str,
              pruning: ServerProcess) -> dict[str, str]:
    """Runs LiveServerTest once; answers each test's outcome ('passed', or why it did not)."""
    source = tmp / "checkout"
    shutil.copytree(ROOT / "clients/java", source / "clients/java", ignore=shutil.ignore_patterns("target"))
    shutil.copytree(ROOT / "proto", source / "proto")
    control = tmp / "control"
    control.mkdir()
    # Without it Maven 3.8's Jansi writes ESC[0m around the output (clients/java/.mvn/jvm.config).
    env = {**os.environ, "MAVEN_OPTS": "-Djansi.noreset=true"}
    log = open(tmp / "mvn.log", "w")
    mvn = subprocess.Popen(
        ["mvn", "-q", "-B", "test", "-pl", "client", f"-Dtest={SUITE.rsplit('.', 1)[1]}",
         "-Dsurefire.failIfNoSpecifiedTests=false",
         f"-Drunstatus.address={server.address}", f"-Drunstatus.control={control}",
         f"-Drunstatus.authAddress={secured.address}", f"-Drunstatus.token={token}",
         f"-Drunstatus.pruningAddress={pruning.address}"],
        cwd=source / "clients/java", env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 900
    try:
        while mvn.poll() is None:
            assert time.monotonic() < deadline, "the Java tests did not finish in 15 minutes"
            if (control / "restart").exists() and not (control / "restarted").exists():
                # The watch test's moment: the same database and port, a new server process.
                server.stop()
                server.start()
                (control / "restarted").write_text("done")
            time.sleep(0.05)
    finally:
        if mvn.poll() is None:
            mvn.kill()
        log.close()
    report = source / "clients/java/client/target/surefire-reports" / f"TEST-{SUITE}.xml"
    output = (tmp / "mvn.log").read_text()
    assert report.is_file(), output[-5000:]
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        problem = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        if problem is None:
            outcomes[case.get("name", "")] = "passed"
        else:
            outcomes[case.get("name", "")] = f"{problem.tag}: {problem.get('message')}\n{problem.text or ''}"[:5000]
    assert mvn.returncode == 0 or any(v != "passed" for v in outcomes.values()), output[-5000:]
    return outcomes


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("java")
    # Short leases, so that the worker heartbeats every ~0.7 s and a cancel stops it at once.
    server = ServerProcess(tmp / "plain.db", "--lease-seconds", "2", "--sweep-seconds", "0.2").start()
    token = offline_admin_token(tmp / "auth.db")
    secured = ServerProcess(tmp / "auth.db", "--auth").start()
    # Request ids kept a second, so a project may keep its ended work orders a second: a cursor expires.
    pruning = ServerProcess(tmp / "pruning.db", "--request-id-seconds", "1", "--sweep-seconds", "0.2").start()
    try:
        yield run_suite(tmp, server, secured, token, pruning)
    finally:
        server.stop()
        secured.stop()
        pruning.stop()


@pytest.mark.parametrize("name", TESTS)
def test_java_client(outcomes: dict[str, str], name: str) -> None:
    assert name in outcomes, f"{name} did not run: {sorted(outcomes)}"
    assert outcomes[name] == "passed", outcomes[name]


def test_every_java_test_is_checked_here(outcomes: dict[str, str]) -> None:
    assert sorted(outcomes) == sorted(TESTS)
