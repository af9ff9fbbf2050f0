"""Every command of `runstatus`, swept with whatever a person might type: no input makes a
traceback. A mistake is one line and exit 2; the server's refusal exit 1 (issue 18).

Hypothesis draws command lines from the command tree itself (each command's options and
arguments, with awkward values) and runs them in-process through `runstatus.cli.run`, the
function the `runstatus` executable calls, against a real server; a few hundred command lines
a run. The last test runs what the sweep found worth keeping as the real executable.
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from harness import ServerProcess
from runstatus import cli

RUNSTATUS = pathlib.Path(sys.executable).with_name("runstatus")
LEFT_OUT = {"serve", "watch"}  # serve starts a server; watch without --count waits for events (tested in test_cli)

AWKWARD = ["", " ", "-", "--", "@", "@nope.json", "[1,2]", "{}", '{"a": 1e400}', '{"a": 12345678901234567890}',
           "null", "NaN", "-1", "0", "1", "2147483648", "-2147483649", "99999999999999999999", "1e309", "-1e309",
           "inf", "nan", "0.5", "2026-11-22", "2026-11-22T08:30:00", "0001-01-01", "9999-12-31T23:59:59",
           "FAILED", "faild", "failed,lost", ",", "ON_SUCCESS", "admin", "*", "💥", "a b", "\t", "x" * 300, "..",
           ".", "default", "RUN_STATUS_FAILED", "run_status_", "%s", "{0}", "[red]x[/red]", "\\", "'", '"',
           '{"a": ' + "1" * 5000 + "}", '{"\\ud800": 1}', '{"a": "\\udc00"}', "1" * 5000]


def _commands() -> list[tuple[list[str], Any]]:
    found = []

    def walk(path: list[str], command: Any) -> None:
        children = getattr(command, "commands", None)
        if children is None:
            found.append((path, command))
            return
        for name, child in sorted(children.items()):
            if name not in LEFT_OUT:
                walk([*path, name], child)

    walk([], typer.main.get_command(cli.app))
    return found


COMMANDS = _commands()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pathlib.Path]:
    tmp = tmp_path_factory.mktemp("sweep")
    made = {"dir": tmp / "a-directory", "good.yaml": tmp / "good.yaml", "bad.yaml": tmp / "bad.yaml",
            "list.yaml": tmp / "list.yaml", "binary": tmp / "binary", "input.json": tmp / "input.json",
            "text.db": tmp / "text.db"}
    made["dir"].mkdir()
    made["good.yaml"].write_text("id: swept\nsteps: [a, b]\nedges: [[a, b, ON_SUCCESS]]\n")
    made["bad.yaml"].write_text("id: swept\nsteps: [a, b]\nedges: [{from: a, to: b, condition: MAYBE}]\n")
    made["list.yaml"].write_text("- 1\n- 2\n")
    made["binary"].write_bytes(bytes(range(256)))
    made["input.json"].write_text('{"n": 1}')
    made["text.db"].write_text("not a database")
    return made


@pytest.fixture(scope="module")
def environment(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The in-process command's environment: the test server, a short deadline, a scratch directory."""
    saved = dict(os.environ)
    cwd = os.getcwd()
    os.environ.update(RUNSTATUS_ADDRESS=server.address, RUNSTATUS_PROJECT="", RUNSTATUS_TIMEOUT="5", COLUMNS="100")
    os.environ.pop("RUNSTATUS_TOKEN", None)
    os.chdir(tmp_path_factory.mktemp("cwd"))
    try:
        yield
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved)


def texts() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(AWKWARD), st.text(max_size=30).filter(lambda t: "\x00" not in t),
                     st.integers().map(str), st.floats().map(str))


@st.composite
def command_lines(draw: st.DrawFn, files: dict[str, pathlib.Path]) -> list[str]:
    paths = st.sampled_from([str(p) for p in files.values()] + ["nope.yaml", ""])
    path, command = draw(st.sampled_from(COMMANDS))
    items: list[list[str]] = []
    for param in command.params:
        if param.param_type_name == "argument":
            if draw(st.booleans()) or param.required:
                items.append([draw(paths if param.name == "file" else texts())])
            continue
        if not draw(st.integers(0, 2)):
            continue
        name = param.opts[0]
        if name == "--help":
            continue
        if getattr(param, "is_flag", False):
            items.append([name])
        elif name == "--db":
            items.append([name, draw(st.sampled_from([str(files["dir"]), str(files["text.db"]), "/proc/nope/x.db"]))])
        elif name == "--input":
            items.append([name, draw(st.one_of(texts(), paths.map(lambda p: f"@{p}")))])
        else:
            items.append([name, draw(texts())])
    if draw(st.integers(0, 9)) == 0:
        items.append([draw(st.sampled_from(["--nope", "--limt", "-x", "--json=1", "extra"]))])
    order = draw(st.permutations(items))
    flat = [token for item in order for token in item]
    connection = draw(st.sampled_from([[], [], ["--project", draw(texts())], ["--timeout", draw(texts())],
                                       ["--token", draw(texts())], ["--ca-file", draw(paths)]]))
    return [*connection, *path, *flat]


def run_in_process(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.run(args)
    return code, out.getvalue(), err.getvalue()


def check_answer(args: list[str], code: int, stdout: str, stderr: str) -> None:
    assert code in (0, 1, 2), (args, code, stderr)  # 70: runstatus failed unexpectedly
    assert "Traceback" not in stderr + stdout, (args, stderr)
    lines = stderr.splitlines()
    if code == 2:
        assert (len(lines) == 1 and lines[0].startswith("error: ")) or (not lines and "Usage" in stdout), \
            (args, stderr)
    if code == 1:
        assert lines and lines[0].startswith("error: "), (args, stderr)


def test_no_command_line_makes_a_traceback(environment: None, files: dict[str, pathlib.Path]) -> None:
    @settings(max_examples=int(os.environ.get("RUNSTATUS_SWEEP_EXAMPLES", "300")), deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(command_lines(files))
    @example(["notifications", "create", "--smtp-host", " ", "--smtp-port", "2147483648"])  # found by this sweep
    def sweep(args: list[str]) -> None:
        check_answer(args, *run_in_process(args))

    sweep()


def test_the_executable_answers_the_same(server: ServerProcess, files: dict[str, pathlib.Path]) -> None:
    """Command lines of the kinds the sweep found, run as the real `runstatus`."""
    lines = [
        ["work-orders", "create", "x", "--priority", "2147483648"],
        ["work-orders", "create", "x", "--input", '{"a": 1e400}'],
        ["workflows", "create", str(files["binary"])],
        ["workflows", "create", str(files["list.yaml"])],
        ["workflows", "create", str(files["bad.yaml"])],
        ["tokens", "create", "--role", "admin", "--db", str(files["text.db"])],
        ["projects", "create", "p", "--max-runtime-seconds", "1e309"],
        ["--token", "a b", "classify", "X"],
        ["--timeout", "nan", "classify", "X"],
        ["--ca-file", str(files["good.yaml"]), "classify", "X"],
        ["work-orders", "create", "x", "--input", '{"a": ' + "1" * 5000 + "}"],
        ["work-orders", "create", "x", "--input", '{"a": "\\udc00"}'],
        ["work-orders", "list", "--since", "0001-01-01", "--until", "x"],
    ]
    env = {**os.environ, "RUNSTATUS_ADDRESS": server.address, "COLUMNS": "100"}
    for args in lines:
        out = subprocess.run([str(RUNSTATUS), *args], capture_output=True, text=True, env=env, timeout=60)
        check_answer(args, out.returncode, out.stdout, out.stderr)
        assert out.returncode == 2, (args, out.stderr)


# What goes into files and --input: any content is a workflow or one line that says why not.

FIELD_NAMES = ["id", "name", "steps", "edges", "from", "to", "condition", "expression", "adaptor", "body",
               "source_step_id", "target_step_id", "nmae"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
                    st.sampled_from(["ON_SUCCESS", "on_failure", "ALWAYS", "EXPRESSION", "MAYBE", "a", "b"]))
YAML_VALUES = st.recursive(
    SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                     st.dictionaries(st.one_of(st.sampled_from(FIELD_NAMES), SCALARS), inner,
                                                     max_size=5)),
    max_leaves=25)


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(YAML_VALUES, st.fixed_dictionaries({"id": SCALARS}, optional={
    "name": SCALARS, "steps": YAML_VALUES, "edges": st.lists(st.one_of(YAML_VALUES, st.lists(SCALARS, max_size=4)),
                                                             max_size=4)})),
       st.booleans())
def test_any_workflow_file_is_a_workflow_or_one_line(tmp_path_factory: pytest.TempPathFactory, content: Any,
                                                     as_json: bool) -> None:
    import json

    import yaml

    from runstatus import _cli_input
    from runstatus._requests import create_workflow

    path = tmp_path_factory.getbasetemp() / "workflow.yaml"
    try:
        path.write_text(json.dumps(content) if as_json else yaml.safe_dump(content), encoding="utf-8")
    except ValueError:  # NaN in JSON, a key YAML cannot write: not a file a person has
        return
    try:
        workflow_id, steps, edges, name = _cli_input.workflow_file("FILE", path)
    except _cli_input.InputError as e:
        assert "\n" not in str(e) and str(e).startswith(str(path)), str(e)
        return
    create_workflow(workflow_id, steps, edges, "p", name, None)  # a request that can be sent


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(st.text(max_size=40), YAML_VALUES.map(lambda v: __import__("json").dumps(v)),
                 st.sampled_from(['{"a": ' + "1" * 5000 + "}", "[" * 100000, '{"a": NaN}', '{"a": -Infinity}'])))
@example('{"\\n": 9007199254740993}')  # a key with a newline in the error's path (found by this sweep)
def test_any_input_is_an_object_or_one_line(text: str) -> None:
    from runstatus import _cli_input
    from runstatus.models import to_struct

    try:
        data = _cli_input.json_object("--input", text)
    except _cli_input.InputError as e:
        assert "\n" not in str(e) and str(e).startswith("--input: "), str(e)
        return
    to_struct(data)  # goes into the request as it is
