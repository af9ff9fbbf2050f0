"""The `runstatus` command, run for real against a real server."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from harness import ServerProcess

RUNSTATUS = pathlib.Path(sys.executable).with_name("runstatus")


def run(server: ServerProcess, *args: str, project: str = "", check: bool = True,
        columns: int = 200) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RUNSTATUS_ADDRESS": server.address, "RUNSTATUS_PROJECT": project, "COLUMNS": str(columns)}
    out = subprocess.run([str(RUNSTATUS), *args], capture_output=True, text=True, env=env, timeout=60)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def run_json(server: ServerProcess, *args: str, project: str = "") -> Any:
    return json.loads(run(server, *args, "--json", project=project).stdout)


def run_many(server: ServerProcess, commands: list[tuple[str, ...]], project: str = "",
             columns: int = 200) -> list[subprocess.CompletedProcess[str]]:
    """Several commands at once (each is a process that mostly imports)."""
    with ThreadPoolExecutor(3) as pool:
        return list(pool.map(lambda args: run(server, *args, project=project, check=False, columns=columns),
                             commands))


@pytest.fixture
def project(server: ServerProcess) -> str:
    name = f"cli-{time.monotonic_ns()}"
    run(server, "projects", "create", name, "--max-in-flight", "100")
    return name


REFERRAL = ("id: referral\nname: Referral\nsteps: [fetch, notify, alert]\n"
            "edges:\n  - [fetch, notify, ON_SUCCESS]\n  - [fetch, alert, ON_FAILURE]\n")


def test_classify(server: ServerProcess) -> None:
    human = run(server, "classify", "KeyError", "--language", "python").stdout
    assert "🔴 Failed" in human and "ERROR_TYPE_RANGE_ERROR" in human and "alias:python:KeyError" in human
    assert run_json(server, "classify", "SyntaxError") == {
        "status": "RUN_STATUS_CRASHED", "error_type": "ERROR_TYPE_SYNTAX_ERROR", "aborts_run": True,
        "rule": "seed:SyntaxError"}
    # A wrapped error, as OpenFn's runtime throws it: the subtype decides.
    wrapped = run_json(server, "classify", "RuntimeError", "--subtype", "TypeError", "--severity", "FAIL",
                       "--source", "runtime", "--language", "javascript")
    assert (wrapped["status"], wrapped["error_type"]) == ("RUN_STATUS_FAILED", "ERROR_TYPE_TYPE_ERROR")
    bad = run(server, "classify", "X", "--severity", "crsh", check=False)
    assert bad.returncode == 2 and "--severity: 'crsh' is not a severity" in bad.stderr


def test_workflow_and_work_order_commands(server: ServerProcess, project: str, tmp: pathlib.Path) -> None:
    spec = tmp / "referral.yaml"
    spec.write_text(REFERRAL)
    created = run(server, "workflows", "create", str(spec), project=project).stdout
    assert "referral" in created and "version 1" in created
    assert run_json(server, "workflows", "get", "referral", project=project)["version"] == 1
    assert [w["id"] for w in run_json(server, "workflows", "list", project=project)] == ["referral"]

    ids = [run_json(server, "work-orders", "create", "referral", "--input", '{"patient": 123}', project=project)["id"]
           for _ in range(3)]
    shown = run(server, "work-orders", "get", ids[0], project=project).stdout
    assert ids[0] in shown and "⚪ Pending" in shown
    got = run_json(server, "work-orders", "get", ids[0], project=project)
    assert got["input"] == {"patient": 123} and got["latest_run"]["number"] == 1
    listed = run_json(server, "work-orders", "list", "--status", "PENDING", "--limit", "2", project=project)
    assert [w["id"] for w in listed] == ids[::-1][:2]
    assert "referral v1" in run(server, "work-orders", "list", project=project).stdout
    assert run_json(server, "work-orders", "count", project=project) == {
        "counts": {"RUN_STATUS_PENDING": 3}, "total": 3}
    # --changed-since/--changed-until: the filter on when a work order last changed.
    assert run_json(server, "work-orders", "count", "--changed-since", "2000-01-01", project=project)["total"] == 3
    assert run_json(server, "work-orders", "list", "--changed-until", "2000-01-01", project=project) == []

    run_id = got["latest_run"]["id"]
    assert run_json(server, "runs", "cancel", run_id, "--reason", "duplicate", project=project)["status"] == \
        "RUN_STATUS_CANCELLED"
    assert "Cancelled" in run(server, "runs", "get", run_id, project=project).stdout
    retried = run_json(server, "work-orders", "retry", ids[0], project=project)
    assert (retried["status"], retried["run_count"], retried["latest_run"]["number"]) == ("RUN_STATUS_PENDING", 2, 2)
    assert [r["number"] for r in run_json(server, "runs", "list", ids[0], project=project)] == [2, 1]

    for i in ids[1:]:
        rid = run_json(server, "work-orders", "get", i, project=project)["latest_run"]["id"]
        run(server, "runs", "cancel", rid, project=project)
    bulk = run(server, "work-orders", "retry", "--status", "CANCELLED", project=project).stdout
    assert "retried 2 work orders" in bulk
    assert run_json(server, "work-orders", "count", "--status", "PENDING", project=project)["total"] == 3

    events = run(server, "work-orders", "watch", "--from-start", "--count", "4", "--json",
                 project=project).stdout.splitlines()
    assert [json.loads(e)["event"]["work_order_id"] for e in events][:3] == ids
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


def test_json_before_the_command_as_after_it(server: ServerProcess, project: str) -> None:
    """--json is a global option too: `runstatus --json classify ...` is `runstatus classify ... --json`."""
    expected = {"status": "RUN_STATUS_CRASHED", "error_type": "ERROR_TYPE_SYNTAX_ERROR", "aborts_run": True,
                "rule": "seed:SyntaxError"}
    before, after, nested, both = run_many(server, [
        ("--json", "classify", "SyntaxError"), ("classify", "SyntaxError", "--json"),
        ("--json", "work-orders", "count"), ("--json", "work-orders", "count", "--json")], project=project)
    assert json.loads(before.stdout) == json.loads(after.stdout) == expected, (before.stderr, after.stderr)
    assert json.loads(nested.stdout) == json.loads(both.stdout) == {"counts": {}, "total": 0}, nested.stderr
    assert "--json" in run(server, "--help", columns=200).stdout
    # tokens revoke, which printed only a line, has --json too (the revoked token), in either place.
    first, second = (run_json(server, "tokens", "create", "--role", "client", project=project)["token"]["id"]
                     for _ in range(2))
    for revoked, args in ((first, ("--json", "tokens", "revoke", first)), (second, ("tokens", "revoke", second, "--json"))):
        token = json.loads(run(server, *args, project=project).stdout)
        assert token["id"] == revoked and token["revoke_time"], token


# 1. A person's mistake is one line and exit 2, never a traceback.

def one_line(out: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in out.stderr and out.stdout == "", (out.stdout, out.stderr)
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_mistakes_are_one_line_naming_the_option_what_is_allowed_and_the_nearest_name(
        server: ServerProcess, project: str, tmp: pathlib.Path) -> None:
    (tmp / "referral.yaml").write_text(REFERRAL)
    (tmp / "sometimes.yaml").write_text(REFERRAL.replace("ON_FAILURE", "ON_SOMETIMES"))
    (tmp / "typo.yaml").write_text(REFERRAL.replace("name:", "nmae:"))
    (tmp / "broken.yaml").write_text("id: x\nsteps: [a, b\n")
    (tmp / "step.yaml").write_text("id: x\nsteps: [{id: a, adaptr: http}]\n")
    cases = [
        (("work-orders", "list", "--status", "FAILD"),
         "error: --status: 'FAILD' is not a status; one of pending, running, success, failed, crashed, "
         "cancelled, killed, exception, lost, rejected (did you mean 'failed'?)"),
        (("work-orders", "count", "--status", "pending,runing"), "error: --status: 'runing' is not a status; "),
        (("work-orders", "create", "referral", "--input", "[1,2]"),
         "error: --input: is an array; give a JSON object such as '{\"patient_id\": 123}'"),
        (("work-orders", "create", "referral", "--input", "@nope.json"), "error: --input: 'nope.json' does not exist"),
        (("work-orders", "create", "referral", "--input", '{"n": 12345678901234567890}'),
         "error: --input: n: 12345678901234567890 is too large to keep exactly"),
        (("workflows", "create", "nope.yaml"), "error: FILE: 'nope.yaml' does not exist"),
        (("workflows", "create", str(tmp / "sometimes.yaml")),
         f"error: {tmp / 'sometimes.yaml'}: edges[1].condition: 'ON_SOMETIMES' is not a condition; "
         "one of ALWAYS, ON_SUCCESS, ON_FAILURE, EXPRESSION (did you mean 'ON_SUCCESS'?)"),
        (("workflows", "create", str(tmp / "typo.yaml")),
         f"error: {tmp / 'typo.yaml'}: unknown field 'nmae'; the fields are id, name, steps, edges "
         "(did you mean 'name'?)"),
        (("workflows", "create", str(tmp / "broken.yaml")), f"error: {tmp / 'broken.yaml'}: not YAML or JSON: "),
        (("workflows", "create", str(tmp / "step.yaml")),
         f"error: {tmp / 'step.yaml'}: steps[0]: unknown field 'adaptr'; the fields are id, name, adaptor, body "
         "(did you mean 'adaptor'?)"),
        (("workflows", "create", str(tmp)), f"error: FILE: '{tmp}' is a directory; give a file"),
        (("work-orders", "lst"), "error: no such command 'lst'; the commands are create, get, list, count, retry, "
                                 "watch (did you mean 'list'?)"),
        (("work-orders", "list", "--limt", "3"), "error: no such option --limt (did you mean '--limit'?)"),
        (("work-orders", "list", "--limit", "x"), "error: --limit: 'x' is not a whole number"),
        (("work-orders", "list", "--limit", "0"), "error: --limit: '0': input should be greater than or equal to 1"),
        (("work-orders", "list", "--since", "yesterday"),
         "error: --since: 'yesterday' is not a date; give e.g. 2026-11-22 or 2026-11-22T08:30:00 (UTC)"),
        (("work-orders", "create"), "error: missing argument WORKFLOW_ID; see `runstatus work-orders create --help`"),
        (("work-orders", "create", "referral", "--priority", "99999999999"), "error: --priority: '99999999999': "),
        (("work-orders", "retry"), "error: WORK_ORDER_ID: missing; give a work order id, or --status"),
        (("work-orders", "watch", "--after", "yesterday"), "error: --after: 'yesterday' is not a cursor"),
        (("work-orders", "watch", "--after", "3", "--from-start"), "error: --from-start: goes without --after"),
        (("classify", "X", "--source", "jobb"), "error: --source: 'jobb' is not a source; one of job, runtime "
                                                "(did you mean 'job'?)"),
        (("tokens", "create", "--role", "admn"), "error: --role: 'admn' is not a role; one of worker, client, admin "
                                                 "(did you mean 'admin'?)"),
        (("projects", "create", "p", "--window-seconds", "-1"), "error: --window-seconds: -1.0 is not a number of "
                                                                "seconds; give 0 to "),
        (("--ca-file", "nope.pem", "classify", "X"), "error: --ca-file: 'nope.pem' does not exist"),
        (("--ca-file", str(tmp / "referral.yaml"), "classify", "X"),
         f"error: --ca-file: '{tmp / 'referral.yaml'}' holds no certificate; give CA certificates in PEM"),
        (("--timeout", "0", "classify", "X"), "error: --timeout: 0.0 is not a number of seconds; give a number above 0"),
    ]
    for (args, expected), out in zip(cases, run_many(server, [args for args, _ in cases], project=project)):
        assert out.returncode == 2, (args, out.stderr)
        assert one_line(out).startswith(expected), (args, out.stderr)


def test_edges_as_lists_and_as_mappings(server: ServerProcess, project: str, tmp: pathlib.Path) -> None:
    spec = tmp / "mapped.yaml"
    spec.write_text("id: mapped\nsteps: [fetch, notify, alert, audit]\nedges:\n"
                    "  - {from: fetch, to: notify, condition: ON_SUCCESS}\n"
                    "  - [fetch, alert, on_failure]\n"
                    "  - {from: notify, to: audit, expression: \"state.ok\"}\n"
                    "  - [alert, audit]\n")
    run(server, "workflows", "create", str(spec), project=project)
    edges = run_json(server, "workflows", "get", "mapped", project=project)["edges"]
    assert [(e["source_step_id"], e["target_step_id"], e["condition"], e["expression"]) for e in edges] == [
        ("fetch", "notify", "EDGE_CONDITION_ON_SUCCESS", ""), ("fetch", "alert", "EDGE_CONDITION_ON_FAILURE", ""),
        ("notify", "audit", "EDGE_CONDITION_EXPRESSION", "state.ok"), ("alert", "audit", "EDGE_CONDITION_ALWAYS", "")]


def test_an_address_with_a_url_scheme_is_named_as_the_mistake(server: ServerProcess) -> None:
    """gRPC would read `http://host:port` as a host name ("Misformatted domain name"): one line
    that says to drop the scheme, exit 2, for the flag and for RUNSTATUS_ADDRESS."""
    host_port = server.address
    cases = [
        (["--address", f"http://{host_port}"], {}, f"error: --address: takes host:port without a scheme: drop "
                                                   f"'http://'; give {host_port}"),
        (["--address", f"https://{host_port}/"], {}, "error: --address: takes host:port without a scheme: drop "
                                                     f"'https://' and add --tls; give {host_port}"),
        (["--address", f"grpc://{host_port}"], {}, "error: --address: takes host:port without a scheme: drop "
                                                   f"'grpc://'; give {host_port}"),
        ([], {"RUNSTATUS_ADDRESS": f"http://{host_port}"}, "error: RUNSTATUS_ADDRESS: takes host:port without a "
                                                           f"scheme: drop 'http://'; give {host_port}"),
    ]
    for args, env, expected in cases:
        out = subprocess.run([str(RUNSTATUS), *args, "classify", "KeyError"], capture_output=True, text=True,
                             timeout=60, env={**os.environ, "RUNSTATUS_ADDRESS": "127.0.0.1:1", **env})
        assert out.returncode == 2, (args, env, out.stderr)
        assert one_line(out) == expected
    # gRPC's own target schemes still reach the server.
    out = subprocess.run([str(RUNSTATUS), "--address", f"dns:///{host_port}", "classify", "KeyError", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and json.loads(out.stdout)["status"] == "RUN_STATUS_FAILED", out.stderr


def test_connection_failure_is_one_line(server: ServerProcess) -> None:
    down = subprocess.run([str(RUNSTATUS), "--address", "127.0.0.1:1", "--timeout", "2", "classify", "X"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "40"})
    assert down.returncode == 1
    line = one_line(down)
    assert line.startswith("error: UNAVAILABLE: cannot reach the server at 127.0.0.1:1 (") and "--address" in line
    # A watch reconnects by itself once it is open; with no server there at all it says so.
    started = time.monotonic()
    watch = subprocess.run([str(RUNSTATUS), "--address", "127.0.0.1:1", "--timeout", "2", "work-orders", "watch"],
                           capture_output=True, text=True, timeout=60)
    assert watch.returncode == 1 and time.monotonic() - started < 20
    assert one_line(watch) == ("error: UNAVAILABLE: cannot reach the server at 127.0.0.1:1 within 2 s; check "
                               "--address (RUNSTATUS_ADDRESS), --tls and --timeout")


# 2. One JSON style: the proto field names, integers as integers.

def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v) if not isinstance(v, str)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_one_json_style(server: ServerProcess, project: str, tmp: pathlib.Path) -> None:
    spec = tmp / "referral.yaml"
    spec.write_text(REFERRAL)
    run(server, "workflows", "create", str(spec), project=project)
    order = run_json(server, "work-orders", "create", "referral", "--input", '{"patient": 123, "weight": 70.5, '
                     '"visits": [1, 2.0], "address": {"zip": 10115}}', project=project)
    assert order["input"] == {"patient": 123, "weight": 70.5, "visits": [1, 2], "address": {"zip": 10115}}
    raw = run(server, "work-orders", "get", order["id"], "--json", project=project).stdout
    # Whole numbers stay whole (a Struct holds doubles); the input's keys come in any order.
    assert re.search(r'"patient": 123\s*[,}]', raw) and "123.0" not in raw
    outputs = [order] + [run_json(server, *args, project=project) for args in [
        ("classify", "KeyError"), ("workflows", "get", "referral"), ("workflows", "list"),
        ("projects", "get", project), ("work-orders", "get", order["id"]), ("work-orders", "list"),
        ("work-orders", "count"), ("runs", "get", order["latest_run_id"]), ("runs", "list", order["id"]),
        ("work-orders", "watch", "--from-start", "--count", "1")]]
    keys = set().union(*(_keys(o) for o in outputs))
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", k) for k in keys - {"input", "RUN_STATUS_PENDING", "patient"}
               - {"weight", "visits", "address", "zip"}), sorted(keys)
    assert {"project_id", "latest_run_id", "work_order_id", "aborts_run", "error_type", "source_step_id",
            "run_limit", "max_in_flight", "step_runs"} <= keys
    event = outputs[-1]
    assert isinstance(event["event"]["sequence"], int) and event["event"]["work_order_id"] == order["id"]
    assert run_json(server, "work-orders", "retry", "--status", "LOST", project=project) == {
        "retried_count": 0, "skipped_count": 0}
    assert "proto field names" in run(server, "--help", columns=100).stdout.replace("\n ", " ")


# 3. Lists that say what they left out; ids whole at any width; watch from now.

def test_list_says_how_many_it_left_out(server: ServerProcess, project: str, tmp: pathlib.Path) -> None:
    spec = tmp / "referral.yaml"
    spec.write_text(REFERRAL)
    run(server, "workflows", "create", str(spec), project=project)
    ids = [run_json(server, "work-orders", "create", "referral", project=project)["id"] for _ in range(4)]
    human, as_json, everything, help_text = run_many(server, [
        ("work-orders", "list", "--limit", "3"), ("work-orders", "list", "--limit", "3", "--json"),
        ("work-orders", "list", "--all"), ("work-orders", "list", "--help")], project=project)
    assert human.stdout.rstrip().splitlines()[-1] == "3 of 4 shown; --limit N or --all"
    assert [w["id"] for w in json.loads(as_json.stdout)] == ids[::-1][:3]
    assert as_json.stderr.strip() == "3 of 4 shown; --limit N or --all"
    assert all(i in everything.stdout for i in ids) and "shown" not in everything.stdout
    assert "Show at most N work orders" in help_text.stdout and "--all" in help_text.stdout


def test_ids_are_never_cut(server: ServerProcess, project: str, tmp: pathlib.Path) -> None:
    spec = tmp / "referral.yaml"
    spec.write_text(REFERRAL)
    run(server, "workflows", "create", str(spec), project=project)
    order = run_json(server, "work-orders", "create", "referral", project=project)
    run_id = order["latest_run_id"]
    run(server, "runs", "cancel", run_id, project=project)
    for columns in (40, 60, 80, 120):
        listed, got, runs = run_many(server, [("work-orders", "list"), ("work-orders", "get", order["id"]),
                                              ("runs", "list", order["id"])], project=project, columns=columns)
        for out in (listed, got, runs):
            assert out.returncode == 0, out.stderr
            if columns >= 80:  # a table that fits
                assert max(len(line) for line in out.stdout.splitlines()) <= columns, out.stdout
        assert order["id"] in listed.stdout and order["id"] in got.stdout, listed.stdout
        assert run_id in runs.stdout and run_id in got.stdout, runs.stdout


def test_watch_starts_live_from_now_and_from_start_replays(server: ServerProcess, project: str,
                                                           tmp: pathlib.Path) -> None:
    spec = tmp / "referral.yaml"
    spec.write_text(REFERRAL)
    run(server, "workflows", "create", str(spec), project=project)
    old = run_json(server, "work-orders", "create", "referral", project=project)["id"]
    env = {**os.environ, "RUNSTATUS_ADDRESS": server.address, "RUNSTATUS_PROJECT": project}
    watch = subprocess.Popen([str(RUNSTATUS), "work-orders", "watch", "--count", "1", "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    created = []
    try:
        deadline = time.monotonic() + 40
        while watch.poll() is None and time.monotonic() < deadline:  # until the watch is open and sees one
            created.append(run_json(server, "work-orders", "create", "referral", project=project)["id"])
            time.sleep(0.3)
        stdout, stderr = watch.communicate(timeout=30)
    finally:
        watch.kill()
    assert watch.returncode == 0, stderr
    first = json.loads(stdout)["event"]["work_order_id"]
    assert first != old and first in created
    replayed = run_json(server, "work-orders", "watch", "--from-start", "--count", "1", project=project)
    assert replayed["event"]["work_order_id"] == old
    help_text = run(server, "work-orders", "watch", "--help", columns=100).stdout
    assert "from now on" in help_text and "--from-start" in help_text


# 4. Help that reads right.

def test_workflows_create_help_shows_the_edge_format_and_an_example(server: ServerProcess, tmp: pathlib.Path) -> None:
    help_text = run(server, "workflows", "create", "--help", columns=100).stdout
    assert "[from, to, CONDITION]" in help_text and "{from, to, condition}" in help_text
    example = help_text[help_text.rindex("\n", 0, help_text.index("id: referral")) + 1:]
    lines = [line.strip() for line in example.splitlines()[:6]]
    assert lines == ["id: referral", "name: Referral", "steps: [fetch, notify, alert]", "edges:",
                     "- [fetch, notify, ON_SUCCESS]", "- {from: fetch, to: alert, condition: ON_FAILURE}"]
    # The example is a file that works.
    spec = tmp / "example.yaml"
    spec.write_text(textwrap.dedent("\n".join(example.splitlines()[:6])) + "\n")
    project = f"cli-help-{time.monotonic_ns()}"
    run(server, "projects", "create", project)
    assert "3 steps, 2 edges" in run(server, "workflows", "create", str(spec), project=project).stdout


def test_top_level_help_lists_the_environment_variables(server: ServerProcess) -> None:
    help_text = run(server, "--help", columns=80).stdout
    described = {m.group(1): m.group(2) for m in re.finditer(r"^ +(RUNSTATUS_[A-Z_]+) +(\S.*?) *$", help_text, re.M)}
    assert list(described) == ["RUNSTATUS_ADDRESS", "RUNSTATUS_TOKEN", "RUNSTATUS_TLS", "RUNSTATUS_CA_FILE",
                               "RUNSTATUS_PROJECT", "RUNSTATUS_TIMEOUT"], help_text
    assert described["RUNSTATUS_ADDRESS"] == "host:port of the server (default localhost:50051)"
