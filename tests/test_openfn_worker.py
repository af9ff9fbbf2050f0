"""Issue 17's adapter test: real job code run by OpenFn's own runtime (@openfn/runtime, pinned
in clients/ts/package.json) through the example worker `runstatus-openfn-worker`
(clients/ts/examples/openfn-worker.ts), which reports every error the way OpenFn's ws-worker
does through the TypeScript client; each run's status must be what the seed table says."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import time

import pytest

from harness import ServerProcess
from runstatus import Client
from runstatus.v1.error_pb2 import ErrorSeverity
from runstatus.v1.status_pb2 import ErrorType, RunStatus

T, S = ErrorType, RunStatus
ROOT = pathlib.Path(__file__).resolve().parents[1]
TS = ROOT / "clients" / "ts"
FAKE_ADAPTOR = TS / "examples" / "openfn" / "adaptors" / "@openfn" / "language-fake"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (TS / "node_modules" / "@openfn" / "runtime").is_dir(),
    reason="needs Node.js and the TypeScript client's npm packages (make tools)",
)

# job code (compiled form: an ES module exporting its operations) -> the error OpenFn's runtime
# throws, and what runstatus must make of it.
JOBS = {
    "throw": ("export default [(state) => { throw new Error('no patient') }]",
              T.ERROR_TYPE_JOB_ERROR, S.RUN_STATUS_FAILED, "seed:JobError"),
    "type-error": ("export default [(state) => state.patient.id]",
                   T.ERROR_TYPE_TYPE_ERROR, S.RUN_STATUS_FAILED, "seed:TypeError(subtype)"),
    "range-error": ("export default [(state) => new Array(-1)]",
                    T.ERROR_TYPE_RANGE_ERROR, S.RUN_STATUS_FAILED, "seed:RangeError(subtype)"),
    "undeclared": ("export default [(state) => undeclaredVariable + 1]",
                   T.ERROR_TYPE_REFERENCE_ERROR, S.RUN_STATUS_CRASHED, "seed:ReferenceError(subtype)"),
    "syntax": ("export default [(state) => {",
               T.ERROR_TYPE_SYNTAX_ERROR, S.RUN_STATUS_CRASHED, "seed:SyntaxError(subtype)"),
    "eval": ("export default [(state) => eval('1 + 1')]",
             T.ERROR_TYPE_SECURITY_ERROR, S.RUN_STATUS_KILLED, "seed:SecurityError"),
    "blocked-import": ("import fs from 'fs'; export default [(state) => state]",
                       T.ERROR_TYPE_IMPORT_ERROR, S.RUN_STATUS_KILLED, "seed:ImportError;over:severity:crash"),
    "never-resolves": ("export default [(state) => new Promise(() => {})]",
                       T.ERROR_TYPE_TIMEOUT_ERROR, S.RUN_STATUS_KILLED, "seed:TimeoutError"),
    "state-too-large": ("export default [(state) => ({ data: 'x'.repeat(2 * 1024 * 1024) })]",
                        T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_KILLED, "alias:StateTooLargeError"),
    "not-an-array": ("export default 42",
                     T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_CRASHED, "alias:InvalidExportsError(subtype)"),
    "adaptor-error": ("import { request } from '@openfn/language-fake';"
                      " export default [request('https://example.invalid/patients/7')]",
                      T.ERROR_TYPE_JOB_ERROR, S.RUN_STATUS_FAILED, "alias:AdaptorError"),
    "success": ("export default [(state) => ({ ...state, seen: true })]",
                T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_SUCCESS, ""),
}


def test_openfn_runtime_errors_get_the_seed_tables_statuses(server: ServerProcess) -> None:
    rs = Client(server.address, retries=1)
    rs.project_id = f"openfn-{time.monotonic_ns()}"
    rs.create_project(rs.project_id, name="OpenFn worker")
    orders = {}
    for job, (body, *_) in JOBS.items():
        rs.create_workflow(job, [{"id": "job", "adaptor": "@openfn/language-fake", "body": body}])
        orders[job] = rs.create_work_order(job, {"patient": None}).latest_run_id
    worker = subprocess.run(
        ["npm", "run", "--silent", "runstatus-openfn-worker", "--", server.address, "--project", rs.project_id,
         "--until-idle", "--timeout-ms", "1000", "--state-limit-mb", "1",
         "--adaptor", f"@openfn/language-fake={FAKE_ADAPTOR}"],
        cwd=TS, capture_output=True, text=True, timeout=300, env={**os.environ, "NO_COLOR": "1"},
    )
    assert worker.returncode == 0, worker.stdout + worker.stderr
    assert f"ran {len(JOBS)} run(s)" in worker.stdout, worker.stdout
    got, want = {}, {}
    for job, (_, error_type, status, rule) in JOBS.items():
        run = rs.get_run(orders[job])
        error = run.step_runs[0].error
        got[job] = (run.status, error.classification.error_type if error else 0, error.classification.rule if error else "")
        want[job] = (status, error_type, rule)
    print("\n".join(f"{job}: {RunStatus.Name(g[0])} {ErrorType.Name(g[1])} {g[2]}" for job, g in got.items()))
    assert got == want


def test_the_openfn_worker_follows_edges_with_each_steps_state(server: ServerProcess) -> None:
    rs = Client(server.address, retries=1)
    rs.project_id = f"openfn-{time.monotonic_ns()}"
    rs.create_project(rs.project_id)
    # A handled TypeError: its ON_FAILURE step runs and succeeds, so the run succeeds (the leaf rule);
    # the ON_SUCCESS step gets the state the first step left.
    rs.create_workflow("referral", [
        {"id": "fetch", "body": "export default [(state) => ({ ...state, patient: { id: 7 } })]"},
        {"id": "enrich", "body": "export default [(state) => state.patient.address.city]"},
        {"id": "alert", "body": "export default [(state) => ({ ...state, alerted: state.patient.id })]"},
        {"id": "never", "body": "export default [(state) => state]"},
    ], [("fetch", "enrich", "ON_SUCCESS"), ("enrich", "alert", "ON_FAILURE"), ("enrich", "never", "ON_SUCCESS")])
    run_id = rs.create_work_order("referral", {"source": "clinic"}).latest_run_id
    worker = subprocess.run(
        ["npm", "run", "--silent", "runstatus-openfn-worker", "--", server.address, "--project", rs.project_id,
         "--until-idle"], cwd=TS, capture_output=True, text=True, timeout=300)
    assert worker.returncode == 0, worker.stdout + worker.stderr
    run = rs.get_run(run_id)
    steps = {s.step_id: s for s in run.step_runs}
    assert run.status == S.RUN_STATUS_SUCCESS
    assert sorted(steps) == ["alert", "enrich", "fetch"]
    assert steps["enrich"].status == S.RUN_STATUS_FAILED
    assert steps["enrich"].error.classification.rule == "seed:TypeError(subtype)"
    # The runtime adds an empty `data` to every state, as OpenFn's does.
    assert steps["alert"].output == {"source": "clinic", "data": {}, "patient": {"id": 7}, "alerted": 7}


# Issue 33: job code that throws outside the runtime's promise chain, as OpenFn's engine catches
# it (ExecutionError, severity crash). Each job would otherwise wait a minute, over the lease's
# 30 s: a run that ends CRASHED within seconds was reported at once, not lost with its worker.
ASYNC_JOBS = {
    "timer-throws": "export default [(state) => new Promise((resolve) => {"
                    " setTimeout(() => { throw new Error('thrown from a timer') }, 100);"
                    " setTimeout(() => resolve(state), 60_000) })]",
    "rejection-left": "export default [(state) => {"
                      " Promise.reject(new Error('a promise nobody awaited'));"
                      " return new Promise((resolve) => setTimeout(() => resolve(state), 60_000)) }]",
}


def test_errors_thrown_outside_the_jobs_promise_chain_crash_the_run_at_once(server: ServerProcess) -> None:
    rs = Client(server.address, retries=1)
    rs.project_id = f"openfn-{time.monotonic_ns()}"
    rs.create_project(rs.project_id)
    runs = {}
    # Each crashing job twice, then one that succeeds: the worker serves on after every crash.
    # Then a job that succeeds and leaves a timer that throws while the next, slower job runs:
    # that error belongs to the finished job (ignored, logged), not to the job under way.
    later = {
        "success-leaving-a-timer": "export default [(state) => {"
                                   " setTimeout(() => { throw new Error('late') }, 300); return state }]",
        "success-slow": "export default [(state) => new Promise((resolve) => setTimeout(() => resolve(state), 1500))]",
    }
    for job in [*ASYNC_JOBS, *ASYNC_JOBS, "success", *later]:
        body = ASYNC_JOBS.get(job) or later.get(job) or JOBS["success"][0]
        workflow = f"{job}-{len(runs)}"
        rs.create_workflow(workflow, [{"id": "job", "body": body}])
        runs[workflow] = rs.create_work_order(workflow, {"patient": 7}).latest_run_id
    started = time.monotonic()
    worker = subprocess.run(
        ["npm", "run", "--silent", "runstatus-openfn-worker", "--", server.address, "--project", rs.project_id,
         "--until-idle", "--timeout-ms", "120000"],
        cwd=TS, capture_output=True, text=True, timeout=300, env={**os.environ, "NO_COLOR": "1"},
    )
    seconds = time.monotonic() - started
    assert worker.returncode == 0, worker.stdout + worker.stderr
    assert f"ran {len(runs)} run(s)" in worker.stdout, worker.stdout + worker.stderr
    assert seconds < 30, f"the worker took {seconds:.1f} s: a crash waited for its job"
    assert "uncaught exception after its job ended, ignored" in worker.stderr, worker.stderr
    for workflow, run_id in runs.items():
        run = rs.get_run(run_id)
        if workflow.startswith("success"):
            assert run.status == S.RUN_STATUS_SUCCESS, run
            continue
        assert run.status == S.RUN_STATUS_CRASHED, (workflow, run)
        lasted = run.end_time - run.start_time
        assert lasted.total_seconds() < 10, (workflow, lasted)
        error = run.step_runs[0].error
        assert (error.name, error.subtype, error.severity) == ("ExecutionError", "", ErrorSeverity.ERROR_SEVERITY_CRASH)
        assert error.classification.rule == "severity:crash;over:alias:ExecutionError"
        assert error.message == ("thrown from a timer" if workflow.startswith("timer") else "a promise nobody awaited")
        assert run.error.name == "ExecutionError"  # the run's error is the step's: the abort ended it
