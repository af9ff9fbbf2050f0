"""The README as a newcomer follows it: its Python example, its `runstatus` and `grpcurl`
command blocks run as written against a real server, every file and make target it names
exists, and `make example-*` runs the examples tests/test_examples.py runs."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import time
from typing import Any

import pytest

from harness import ServerProcess, running_server
from runstatus import Client
from runstatus.worker import Worker

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RUNSTATUS = pathlib.Path(sys.executable).with_name("runstatus")


def test_python_example_runs(server: ServerProcess) -> None:
    code = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert code is not None
    source = code.group(1).replace("localhost:50051", server.address)
    out = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["🔴 RUN_STATUS_FAILED", "notify KeyError alias:python:KeyError"]


# The README's command blocks: indented code outside the fenced examples.

def command_blocks() -> list[list[list[str]]]:
    """Each indented block of the README as its commands (a line ending in a backslash joined
    to the next; `# ...` comments dropped), each split as a shell splits it."""
    text = re.sub(r"```.*?```", "", README.read_text(encoding="utf-8"), flags=re.S)
    blocks = []
    for match in re.finditer(r"(?:^|\n\n)((?:    .*\n)+)", text):
        lines = match.group(1).replace("\\\n", " ").splitlines()
        blocks.append([shlex.split(line, comments=True) for line in lines if line.strip()])
    return blocks


def block_with(first_words: list[str]) -> list[list[str]]:
    found = [b for b in command_blocks() if any(c[:len(first_words)] == first_words for c in b)]
    assert len(found) == 1, f"README.md: expected one command block with `{' '.join(first_words)}`"
    return found[0]


def substituted(command: list[str], values: dict[str, str]) -> list[str]:
    """The command with the README's placeholders (WORK_ORDER_ID, RUN_ID, rs_...) filled in."""
    out = []
    for word in command:
        for placeholder, value in values.items():
            word = word.replace(placeholder, value)
        assert not re.search(r"\b[A-Z]+(?:_[A-Z]+)*_ID\b|\.\.\.", word), f"README.md: unknown placeholder in {word!r}"
        out.append(word)
    return out


def run_cli(args: list[str], env: dict[str, str], cwd: pathlib.Path = ROOT) -> subprocess.CompletedProcess[str]:
    assert args[0] == "runstatus", args
    out = subprocess.run([str(RUNSTATUS), *args[1:]], capture_output=True, text=True, timeout=60, cwd=cwd,
                         env={**os.environ, "COLUMNS": "200", **env})
    assert out.returncode == 0, f"{shlex.join(args)}: {out.stderr}"
    return out


def run_referral_worker(address: str) -> None:
    """The Python example's worker: fetch succeeds, notify fails with a KeyError (FAILED)."""
    with Client(address) as rs:
        worker = Worker(rs, worker_id="readme")

        @worker.step("fetch")
        def fetch(state: dict[str, Any]) -> dict[str, Any]:
            return {**state, "patient": {"id": state["patient_id"]}}

        @worker.step("notify")
        def notify(state: dict[str, Any]) -> dict[str, Any]:
            return {**state, "sent_to": state["patient"]["email"]}

        worker.run_until_idle()


def test_readme_cli_commands_run_as_written(tmp: pathlib.Path) -> None:
    """The `runstatus` block, line by line from the repository root, against a server of its
    own (its `default` project, as the README's commands use), with a worker failing the work
    order where a command needs a FAILED one, as the Python example's worker does."""
    block = block_with(["runstatus", "workflows", "create"])
    with running_server(tmp) as (server, _), Client(server.address) as rs:
        env = {"RUNSTATUS_ADDRESS": server.address, "RUNSTATUS_PROJECT": "", "RUNSTATUS_TOKEN": ""}
        values: dict[str, str] = {}
        ran = []
        for command in block:
            if command[1] == "runs" and "RUN_ID" not in values:
                order = rs.get_work_order(values["WORK_ORDER_ID"])
                if order.latest_run is not None and order.latest_run.end_time is not None:
                    rs.retry_work_order(order.id)  # a run to read and cancel: pending
                values["RUN_ID"] = rs.get_work_order(values["WORK_ORDER_ID"]).latest_run_id
            if command[1:3] == ["work-orders", "watch"]:
                out = watch_until_an_event(substituted(command, values), env, rs, values["WORK_ORDER_ID"])
            else:
                out = run_cli(substituted(command, values), env)
            ran.append(" ".join(command[1:3]))
            shown = out.stdout
            if command[1:3] == ["classify", "KeyError"]:
                assert "alias:python:KeyError" in shown
            elif command[1:3] == ["workflows", "create"]:
                assert "workflow referral version 1: 3 steps, 2 edges" in shown
            elif command[1:3] == ["work-orders", "create"]:
                created = re.search(r"work order (\S+)", shown)
                assert created is not None, shown
                values["WORK_ORDER_ID"] = created.group(1)
                run_referral_worker(server.address)  # FAILED: what list, count and retry below find
            elif command[1:3] == ["work-orders", "list"]:
                assert values["WORK_ORDER_ID"] in shown
            elif command[1:3] == ["work-orders", "count"]:
                assert "Failed" in shown, shown
            elif command[1:3] == ["work-orders", "retry"] and "--status" in command:
                assert "retried 1 work orders" in shown
                run_referral_worker(server.address)  # FAILED again: a run that ended, to retry from a step
            elif command[1:3] == ["work-orders", "retry"]:
                assert f"work order {values['WORK_ORDER_ID']}: run 3" in shown
            elif command[1:3] == ["runs", "get"]:
                assert values["RUN_ID"] in shown and "Pending" in shown
            elif command[1:3] == ["runs", "cancel"]:
                assert "Cancelled" in shown
            elif command[1] == "stats":  # the work order, failed twice: its workflow's row, its rule
                assert re.search(r"referral\s.*\b1\b", shown) and "alias:python:KeyError" in shown, shown
        assert ran == ["classify KeyError", "workflows create", "work-orders create", "work-orders list",
                       "work-orders count", "work-orders retry", "work-orders retry", "work-orders watch",
                       "stats --window", "runs get", "runs cancel"], \
            "README.md's runstatus block changed: update this test"


def watch_until_an_event(command: list[str], env: dict[str, str], rs: Client,
                         work_order_id: str) -> subprocess.CompletedProcess[str]:
    """`work-orders watch --status FAILED` (live from now) until it prints one event: the work
    order is failed again (retried, and the worker run) until the watch has seen it."""
    proc = subprocess.Popen([str(RUNSTATUS), *command[1:], "--count", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "COLUMNS": "200", **env})
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            run_referral_worker(env["RUNSTATUS_ADDRESS"])
            time.sleep(0.5)
            if proc.poll() is None:
                rs.retry_work_order(work_order_id)
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert work_order_id in stdout and "Failed" in stdout, stdout
    return subprocess.CompletedProcess(command, 0, stdout, stderr)


def test_readme_token_commands_run_as_written(tmp: pathlib.Path) -> None:
    """The first token from the database file, then a project's worker token listed and
    revoked, against a server with --auth whose database is the README's runstatus.db."""
    block = block_with(["runstatus", "tokens", "create", "--db", "runstatus.db"])
    with running_server(tmp, "--auth") as (server, _):
        env = {"RUNSTATUS_ADDRESS": server.address, "RUNSTATUS_PROJECT": "", "RUNSTATUS_TOKEN": ""}
        values: dict[str, str] = {}
        for command in block:
            if command[0] == "export":
                name, value = substituted(command[1:], values)[0].split("=", 1)
                env[name] = value
                continue
            # runstatus.db in the folder the server runs on (its URL under RUNSTATUS_TEST_DB=postgres).
            command = [server.db if word == "runstatus.db" else word for word in command]
            out = run_cli(substituted(command, values), env, cwd=tmp)
            if "--db" in command:
                values["rs_..."] = out.stdout.split()[-1]
            elif command[1:3] == ["tokens", "create"]:
                made = re.search(r"token (\S+) \(worker of project clinic\)", out.stdout)
                assert made is not None, out.stdout
                values["TOKEN_ID"] = made.group(1)
            elif command[-2:] == ["tokens", "list"]:
                assert values["TOKEN_ID"] in out.stdout and "pool 1" in out.stdout
            elif command[1:3] == ["tokens", "revoke"]:
                assert f"token {values['TOKEN_ID']} revoked" in out.stdout
        assert "rs_..." in values and "TOKEN_ID" in values, "README.md's token block changed: update this test"


def test_json_goes_before_or_after_the_command(server: ServerProcess) -> None:
    """As the README says: `runstatus --json CMD` prints what `runstatus CMD --json` does."""
    env = {"RUNSTATUS_ADDRESS": server.address}
    after = run_cli(["runstatus", "classify", "KeyError", "--language", "python", "--json"], env)
    before = run_cli(["runstatus", "--json", "classify", "KeyError", "--language", "python"], env)
    assert json.loads(before.stdout) == json.loads(after.stdout)
    assert json.loads(after.stdout)["rule"] == "alias:python:KeyError"
    text = README.read_text(encoding="utf-8")
    assert "`runstatus work-orders list --json`" in text and "`runstatus --json work-orders list`" in text


def test_readme_grpcurl_commands_run_as_written(server: ServerProcess) -> None:
    """The grpcurl lines, with the grpcurl `make tools` installs into .tools/bin (the one on the
    PATH `make test` gives, when this is a copy of the repository without its .tools)."""
    block = block_with([".tools/bin/grpcurl"])
    built = ROOT / ".tools/bin/grpcurl"
    grpcurl = str(built) if built.exists() else shutil.which("grpcurl")
    if grpcurl is None:
        pytest.fail("no .tools/bin/grpcurl: `make tools` installs it")
    outputs = []
    for command in block:
        assert command[0] == ".tools/bin/grpcurl", command
        args = [grpcurl] + [server.address if word == "localhost:50051" else word for word in command[1:]]
        out = subprocess.run(args, capture_output=True, text=True, timeout=30, cwd=ROOT)
        assert out.returncode == 0, f"{shlex.join(command)}: {out.stderr}"
        outputs.append(out.stdout)
    assert "runstatus.v1.ClassifierService" in outputs[0]
    assert json.loads(outputs[1])["classification"]["status"] == "RUN_STATUS_FAILED"


# Files and make targets the README names.

TOP_LEVEL = ("proto", "clients", "server", "tests", "scripts", "docs", "examples")


def test_every_path_the_readme_names_exists() -> None:
    text = README.read_text(encoding="utf-8")
    prose = re.sub(r"```.*?```", "", text, flags=re.S)  # the fenced examples' paths are their own folder's
    links = {t for t in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"[a-z]+:|#", t)}
    named = {p.rstrip(".,;:") for p in re.findall(rf"(?<![\w./@-])(?:{'|'.join(TOP_LEVEL)})/[\w./*-]*", prose)}
    assert "examples/referral.yaml" in named
    # The Layout table's row of the server names its modules relative to its folder.
    row = re.search(r"^\| `(server/runstatus_server/)` \|(.*)$", text, re.M)
    assert row is not None
    named |= {row.group(1) + p for p in re.findall(r"`([\w./]+)`", row.group(2))}
    missing = sorted(p for p in links | named if not list(ROOT.glob(p)))
    assert not missing, f"README.md names files that do not exist: {missing}"


def test_every_make_target_the_readme_names_exists() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = {name for line in re.findall(r"^([\w.%-]+(?:[ \t]+[\w.%-]+)*)[ \t]*:(?!=)", makefile, re.M)
               for name in line.split()}
    named = set(re.findall(r"(?:`|^    )(?:[A-Z_]+=\S+ )*make ([a-z][\w-]*)", README.read_text(encoding="utf-8"),
                           re.M))
    assert {"serve", "test", "tools", "example-go", "example-ts", "example-java"} <= named
    assert not named - targets, f"README.md names make targets the Makefile lacks: {sorted(named - targets)}"


MAKE_TARGETS = {"go": "example-go", "typescript": "example-ts", "java": "example-java"}


def example_command(language: str, address: str) -> list[str]:
    """What tests/test_examples.py runs for the language, from its client's folder."""
    from test_examples import EXAMPLES

    _, command, _ = EXAMPLES[language]
    return [*command, address] if language != "java" else [*command, f"-Dexec.args={address}"]


@pytest.mark.parametrize("language", MAKE_TARGETS)
def test_make_example_runs_what_test_examples_runs(language: str) -> None:
    """`make example-*` from the root runs, from the client's folder, the command
    tests/test_examples.py runs against a real server."""
    from test_examples import EXAMPLES

    cwd = EXAMPLES[language][2].relative_to(ROOT)
    planned = subprocess.run(["make", "--no-print-directory", "-n", MAKE_TARGETS[language], "ADDRESS=127.0.0.1:1"],
                             capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert planned.returncode == 0, planned.stderr
    assert f"cd {cwd} && {shlex.join(example_command(language, '127.0.0.1:1'))}" in planned.stdout.splitlines()
    default = subprocess.run(["make", "--no-print-directory", "-n", MAKE_TARGETS[language]],
                             capture_output=True, text=True, timeout=60, cwd=ROOT,
                             env={k: v for k, v in os.environ.items() if k != "ADDRESS"})
    assert "127.0.0.1:50051" in default.stdout  # where `make serve` listens


def test_make_example_go_runs_from_the_root(server: ServerProcess) -> None:
    out = subprocess.run(["make", "--no-print-directory", "example-go", f"ADDRESS={server.address}"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [line for line in out.stdout.splitlines() if line.strip() and not line.startswith("cd ")]
    assert lines[0] == "⚪ RUN_STATUS_PENDING" and lines[1].startswith("🔴 ERROR_TYPE_"), out.stdout
