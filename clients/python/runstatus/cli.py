"""The `runstatus` command line: classify, workflows, projects, work orders, runs, tokens,
notifications (and `serve`, when the server is installed too).

Connection settings come from flags or the environment (see HELP). Human output is a table
with the status chips; `--json` prints JSON for scripts, in one style (`_cli_output`). What a
person types is checked before it is sent (`_cli_input`): a mistake exits 2 with one line, an
error from the server exits 1, and no input prints a traceback.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import re
import sys
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from importlib.metadata import entry_points
from typing import Annotated, Any, Optional

import grpc
import typer
from google.protobuf.message import Message
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.text import Text
from typer._click import exceptions as click_errors

from runstatus import _cli_input as check
from runstatus import _cli_output as out
from runstatus import retention as retention_text
from runstatus import status_table
from runstatus._cli_input import InputError
from runstatus.client import Client
from runstatus.errors import RunstatusError
from runstatus.models import Run, WorkOrder
from runstatus.v1 import error_pb2, token_service_pb2, work_order_service_pb2
from runstatus.v1.event_pb2 import EventType
from runstatus.v1.status_pb2 import ErrorType, RunStatus
from runstatus.v1.token_pb2 import Role
from runstatus.v1.workflow_pb2 import EdgeCondition

JSON_STYLE = ("protobuf's JSON mapping with the proto field names (snake_case, as in the .proto files), every "
              "field printed, enums by name, timestamps in RFC 3339, integers as numbers (123, not 123.0 or \"123\")")

HELP = f"""runstatus: work orders, runs and their statuses, over gRPC.

Connection settings come from the options below or from the environment:

  RUNSTATUS_ADDRESS   host:port of the server (default localhost:50051)
  RUNSTATUS_TOKEN     API token (bearer)
  RUNSTATUS_TLS       1 to connect with TLS
  RUNSTATUS_CA_FILE   CA certificates (PEM) for TLS
  RUNSTATUS_PROJECT   project id (default: the 'default' project)
  RUNSTATUS_TIMEOUT   deadline of each call, in seconds (default 30)

Output: a table with status chips for people. --json, on every command, prints JSON for scripts: {JSON_STYLE}.

Exit status: 0 done; 1 the server refused or could not be reached; 2 a mistake in the command (one line says what and what is allowed).
"""

app = typer.Typer(help=escape(HELP), no_args_is_help=True, pretty_exceptions_enable=False)
workflows = typer.Typer(help="Create and read workflows.", no_args_is_help=True)
projects = typer.Typer(help="Create, read and update projects: their run limits, max runtimes and retention.", no_args_is_help=True)
work_orders = typer.Typer(help="Create, read, list, count, retry and watch work orders.", no_args_is_help=True)
runs = typer.Typer(help="Read, list and cancel runs.", no_args_is_help=True)
tokens = typer.Typer(help="API tokens: create, revoke, list.", no_args_is_help=True)
app.add_typer(workflows, name="workflows")
app.add_typer(projects, name="projects")
app.add_typer(work_orders, name="work-orders")
app.add_typer(runs, name="runs")
app.add_typer(tokens, name="tokens")

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)
COLORS = {"white": "white", "blue": "blue", "green": "green", "red": "red", "orange": "dark_orange",
          "yellow": "yellow", "black": "bright_black"}
INT32 = 2**31 - 1
MAX_SECONDS = 315_576_000_000  # the largest google.protobuf.Duration
EX_SOFTWARE = 70  # a bug in runstatus itself (sysexits.h)


class Unreachable(Exception):
    """No server answers at the address: one line, exit 1."""


class _Connection:
    address = "localhost:50051"
    address_from = "--address"  # or RUNSTATUS_ADDRESS, where a mistake in it came from
    token: str | None = None
    tls = False
    ca_file: pathlib.Path | None = None
    project = ""
    timeout = 30.0


# Target schemes gRPC itself resolves (`unix:///run/rs.sock`, `dns:///host:port`); any other
# `scheme://` (http, https, grpc) gRPC reads as part of a host name: "Misformatted domain name".
GRPC_SCHEMES = {"dns", "unix", "unix-abstract", "ipv4", "ipv6", "vsock"}


def _check_address(address: str, where: str) -> None:
    if not address.strip():
        raise InputError(where, "is empty; give host:port, e.g. localhost:50051")
    url = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/]*)", address)
    if url is None or url[1].lower() in GRPC_SCHEMES:
        return
    tls = " and add --tls" if url[1].lower() in ("https", "grpcs") and not _Connection.tls else ""
    fixed = f"; give {url[2]}" if url[2] else ""
    raise InputError(where, f"takes host:port without a scheme: drop '{url[1]}://'{tls}{fixed}")


def client() -> Client:
    c = _Connection
    _check_address(c.address, c.address_from)
    check.positive_seconds("--timeout", c.timeout)
    roots = check.read_bytes("--ca-file", c.ca_file) if c.ca_file else None
    if roots is not None and b"-----BEGIN CERTIFICATE-----" not in roots:
        raise InputError("--ca-file", f"{str(c.ca_file)!r} holds no certificate; give CA certificates in PEM "
                                      "(-----BEGIN CERTIFICATE-----)")
    if c.token is not None and not re.fullmatch(r"[\x21-\x7e]+", c.token):
        raise InputError("--token", "is not a token: a token is printable ASCII without spaces (rs_...)")
    return Client(c.address, tls=c.tls, root_certificates=roots, token=c.token, timeout=c.timeout,
                  project_id=c.project)


def _json_anywhere(ctx: typer.Context, value: bool) -> bool:
    """A command's --json, or the one given before the command (`runstatus --json classify ...`)."""
    return value or bool(ctx.find_root().params.get("as_json"))


@app.callback()
def connection(
    ctx: typer.Context,
    address: Annotated[str, typer.Option(envvar="RUNSTATUS_ADDRESS", help="host:port of the server.")] = "localhost:50051",
    token: Annotated[Optional[str], typer.Option(envvar="RUNSTATUS_TOKEN", help="API token (bearer).")] = None,
    tls: Annotated[bool, typer.Option(envvar="RUNSTATUS_TLS", help="Connect with TLS.")] = False,
    ca_file: Annotated[Optional[pathlib.Path], typer.Option(envvar="RUNSTATUS_CA_FILE", help="CA certificates (PEM) for TLS.")] = None,
    project: Annotated[str, typer.Option(envvar="RUNSTATUS_PROJECT", help="Project id (default: the 'default' project).")] = "",
    timeout: Annotated[float, typer.Option(envvar="RUNSTATUS_TIMEOUT", help="Deadline of each call, in seconds.")] = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts; also after the command.")] = False,
) -> None:
    """runstatus: work orders, runs and their statuses, over gRPC."""
    source = ctx.get_parameter_source("address")
    _Connection.address_from = "RUNSTATUS_ADDRESS" if source is not None and source.name == "ENVIRONMENT" else "--address"
    _Connection.address, _Connection.token, _Connection.tls = address, token, tls or ca_file is not None
    _Connection.ca_file, _Connection.project, _Connection.timeout = ca_file, project, timeout


# Running the command: every failure is one line.

def _say(message: str) -> None:
    """`error: message` on one line (Rich neither wraps it nor reads markup in it)."""
    one_line = re.sub(r"\s*\n\s*", " ", message).strip().encode("utf-8", "backslashreplace").decode("utf-8")
    errors.print(Text.assemble(("error:", "red"), " ", one_line), soft_wrap=True)


TYPE_ERRORS = (
    ("Input should be a valid integer", "is not a whole number"),
    ("Input should be a valid number", "is not a number"),
    ("Input should be a valid datetime", "is not a date; give e.g. 2026-11-22 or 2026-11-22T08:30:00 (UTC)"),
    ("Input should be a valid boolean", "is not true or false"),
)


def _given(args: Sequence[str], opts: Sequence[str]) -> str | None:
    """The value typed for an option (its last occurrence), if any."""
    value = None
    for i, arg in enumerate(args):
        for opt in opts:
            if arg == opt and i + 1 < len(args):
                value = args[i + 1]
            elif arg.startswith(f"{opt}="):
                value = arg[len(opt) + 1:]
    return value


def _usage_error(e: click_errors.UsageError, args: Sequence[str]) -> str:
    ctx = e.ctx
    see = f"; see `{ctx.command_path} --help`" if ctx is not None else ""
    if isinstance(e, click_errors.NoSuchOption):
        known = [o for p in ctx.command.params for o in (*p.opts, *p.secondary_opts)] if ctx is not None else []
        return f"no such option {e.option_name}{check.nearest(e.option_name, known)}{see}"
    if isinstance(e, click_errors.MissingParameter) and e.param is not None:
        kind = e.param.param_type_name
        return f"missing {kind} {e.param.opts[0] if kind == 'option' else str(e.param.name).upper()}{see}"
    if isinstance(e, click_errors.BadParameter) and (e.param_hint is not None or e.param is not None):
        if e.param_hint is not None:
            where = e.param_hint if isinstance(e.param_hint, str) else " / ".join(e.param_hint)
            return f"{where}: {e.message}"
        assert e.param is not None
        is_option = e.param.param_type_name == "option"
        where = e.param.opts[0] if is_option else str(e.param.name).upper()
        value = _given(args, e.param.opts) if is_option else None
        envvar = getattr(e.param, "envvar", None)
        if value is None and isinstance(envvar, str) and envvar in os.environ:
            where, value = envvar, os.environ[envvar]
        if value is None:
            return f"{where}: {e.message}"
        for start, meaning in TYPE_ERRORS:
            if e.message.startswith(start):
                return f"{where}: {value!r} {meaning}"
        return f"{where}: {value!r}: {e.message[:1].lower()}{e.message[1:]}"
    message = e.format_message()
    if ctx is not None and message.startswith("No such command"):
        name = message.split("'")[1] if message.count("'") >= 2 else ""
        listed = getattr(ctx.command, "list_commands", None)
        commands = list(listed(ctx)) if callable(listed) else []
        return f"no such command {name!r}; the commands are {', '.join(commands)}{check.nearest(name, commands)}"
    return f"{message}{see}"


def _server_error(e: RunstatusError) -> None:
    if e.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and not e.violations:
        what = "cannot reach" if e.code == grpc.StatusCode.UNAVAILABLE else "no answer in time from"
        _say(f"{e.code.name}: {what} the server at {_Connection.address} ({e.message}); check --address "
             f"(RUNSTATUS_ADDRESS), --tls and --timeout")
        return
    _say(str(e))
    for v in e.violations:
        errors.print(Text.assemble("  ", (v.field, "bold"), f": {v.description}"), soft_wrap=True)
    if e.current_status:
        errors.print(f"  current status: {e.current_status}", soft_wrap=True, markup=False)


def run(args: Sequence[str]) -> int:
    """Runs the command line `args`; returns its exit status."""
    try:
        for arg in args:
            try:
                arg.encode("utf-8")
            except UnicodeEncodeError:
                raise InputError("", f"the argument {arg.encode('utf-8', 'surrogateescape')!r} is not UTF-8 text") \
                    from None
        if _needs_plugins(args):
            load_plugins()
        code = app(args=list(args), prog_name="runstatus", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except InputError as e:
        _say(str(e))
        return 2
    except click_errors.NoArgsIsHelpError:
        return 2  # the help is printed
    except click_errors.UsageError as e:
        try:
            message = _usage_error(e, args)
        except Exception:  # the wording is a nicety: never a traceback for it
            message = e.format_message()
        _say(message)
        return 2
    except click_errors.ClickException as e:
        _say(e.format_message())
        return e.exit_code
    except RunstatusError as e:
        _server_error(e)
        return 1
    except Unreachable as e:
        _say(str(e))
        return 1
    except (KeyboardInterrupt, typer.Abort):
        return 130
    except BrokenPipeError:
        sys.stdout = None  # nothing more to flush into the closed pipe
        return 1
    except Exception as e:
        if os.environ.get("RUNSTATUS_DEBUG"):
            raise
        _say(f"runstatus failed unexpectedly, a bug: {type(e).__name__}: {e} (RUNSTATUS_DEBUG=1 shows where)")
        return EX_SOFTWARE


def main() -> None:
    sys.exit(run(sys.argv[1:]))


# Output

# Read through _json_anywhere: `runstatus --json CMD` (the callback's --json) is `runstatus CMD --json`.
JsonOption = Annotated[bool, typer.Option("--json", callback=_json_anywhere,
                                          help="Print JSON for scripts (proto field names; see runstatus --help).")]


def chip(status: RunStatus.ValueType) -> Text:
    row = status_table.statuses().get(status)
    if row is None:
        return Text("?")
    return Text(f"{row.chip} {row.label}", style=COLORS.get(row.color, ""))


def _name(enum: Any, value: int, prefix: str = "") -> str:
    """An enum value's name without its prefix; its number when this client does not know it."""
    return str(enum.Name(value)).removeprefix(prefix) if value in enum.values() else str(value)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def print_json(value: Any) -> None:
    """A message, or a list or dict of them and plain values, in the one JSON style."""
    print(out.dumps(_jsonable(value)))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Message):
        return out.message(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _work_order_json(order: WorkOrder) -> dict[str, Any]:
    """The work order message, with its latest run (when the call returned it) as latest_run."""
    data = out.message(order.proto)
    if order.latest_run is not None:
        data["latest_run"] = out.message(order.latest_run.proto)
    return data


def work_order_table(orders: list[WorkOrder]) -> None:
    out.show_table(console, ("work order", "status", "workflow", "runs", "created"),
                   [(w.id, chip(w.status), f"{w.workflow_id} v{w.workflow_version}", str(w.run_count),
                     _when(w.create_time)) for w in orders])


def run_table(run: Run) -> None:
    rows = [(s.step_id + (" (reused)" if s.reused else ""), chip(s.status),
             f"{s.error.name}: {s.error.message}" if s.error else "", s.id) for s in run.step_runs]
    out.show_table(console, ("step", "status", "error", "step run"), rows, ids=(3,))


def describe_run(run: Run) -> None:
    console.print(Text.assemble("run ", (run.id, "bold"), f" #{run.number}  ", chip(run.status)), soft_wrap=True)
    if run.error:
        c = run.error.classification
        console.print(f"  error: {run.error.name}: {run.error.message} "
                      f"({_name(ErrorType, c.error_type)}, rule {c.rule})"
                      + (f" at step {run.error.step_id}" if run.error.step_id else ""), markup=False)
    if run.status_reason:
        console.print(f"  reason: {run.status_reason}", markup=False)
    if run.step_runs:
        run_table(run)


def _int_option(help_text: str, low: int = 0, high: int = INT32, flag: str | None = None) -> Any:
    return typer.Option(*([flag] if flag else []), help=help_text, min=low, max=high)


def _seconds(where: str, value: float | None) -> timedelta | None:
    if value is None:
        return None
    if not math.isfinite(value) or not 0 <= value <= MAX_SECONDS:
        raise InputError(where, f"{value} is not a number of seconds; give 0 to {MAX_SECONDS}")
    return timedelta(seconds=value) if value else None


# Commands of the server (`runstatus-server`: serve): found through entry points, so that the
# client works without it and never imports it; loaded only when the command line may need them
# (importing the server takes longer than everything else the client does).

BUILT_IN = {"classify", "workflows", "projects", "work-orders", "runs", "tokens"}
GLOBAL_VALUE_OPTIONS = {"--address", "--token", "--ca-file", "--project", "--timeout"}
_loaded: list[str] = []


def _plugins(group: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=group)}


def _needs_plugins(args: Sequence[str]) -> bool:
    """Whether the command is not one of the client's own (or there is none: the help lists all)."""
    i = 0
    while i < len(args):
        if args[i] in GLOBAL_VALUE_OPTIONS:
            i += 2
        elif args[i].startswith("-"):
            i += 1
        else:
            return args[i] not in BUILT_IN
    return True


def load_plugins() -> None:
    for name, entry in sorted(_plugins("runstatus.commands").items()):
        if name not in _loaded:
            command = entry.load()
            if isinstance(command, typer.Typer):  # a group of commands (runstatus archive verify|show)
                app.add_typer(command, name=name)
            else:
                app.command(name)(command)
            _loaded.append(name)


# classify

SOURCES = ("job", "runtime")
SEVERITIES = ("fail", "crash", "kill", "exception")


@app.command()
def classify(
    name: Annotated[str, typer.Argument(help="The error's class name as thrown, e.g. KeyError.")],
    message: Annotated[str, typer.Option(help="The error's message.")] = "",
    source: Annotated[str, typer.Option(help="job or runtime.")] = "job",
    language: Annotated[str, typer.Option(help="javascript, python, java, go, ...")] = "",
    http_status: Annotated[int, _int_option("The HTTP status of a failed request (0: none).", 0, 999)] = 0,
    subtype: Annotated[str, typer.Option(help="The wrapped error's class when NAME wraps one, e.g. TypeError inside OpenFn's RuntimeError.")] = "",
    severity: Annotated[str, typer.Option(help="The runtime's own verdict: fail, crash, kill or exception.")] = "",
    as_json: JsonOption = False,
) -> None:
    """How the server classifies an error."""
    source = check.choice("--source", source, "a source", SOURCES)
    if severity:
        severity = check.choice("--severity", severity, "a severity", SEVERITIES)
    with client() as c:
        result = c.classify(name, message, source=source, language=language, http_status=http_status,
                            subtype=subtype, severity=severity or None)
    if as_json:
        print_json(error_pb2.Classification(status=result.status, error_type=result.error_type,
                                            aborts_run=result.aborts_run, rule=result.rule))
        return
    console.print(Text.assemble(chip(result.status), f"  {_name(ErrorType, result.error_type)}",
                                "  aborts the run" if result.aborts_run else "  the run goes on",
                                f"  (rule {result.rule})"))


# workflows

WORKFLOW_EXAMPLE = """\
    id: referral
    name: Referral
    steps: [fetch, notify, alert]
    edges:
      - [fetch, notify, ON_SUCCESS]
      - {from: fetch, to: alert, condition: ON_FAILURE}
"""
WORKFLOWS_CREATE_HELP = f"""Create a workflow, or the next version of an existing one.

FILE (YAML or JSON) has an id, a name, steps and edges. A step is an id, or a mapping {{id, name, adaptor, body}}. An edge is [from, to, CONDITION] or a mapping {{from, to, condition}}; CONDITION is ALWAYS (the default), ON_SUCCESS, ON_FAILURE or EXPRESSION (with expression: ... in the mapping). For example, referral.yaml:

{WORKFLOW_EXAMPLE}"""


@workflows.command("create", help=escape(WORKFLOWS_CREATE_HELP))
def workflows_create(
    file: Annotated[pathlib.Path, typer.Argument(metavar="FILE", help="The workflow file: YAML or JSON, as below.")],
    as_json: JsonOption = False,
) -> None:
    workflow_id, steps, edges, name = check.workflow_file("FILE", file)
    with client() as c:
        workflow = c.create_workflow(workflow_id, steps, edges, name=name)
    if as_json:
        print_json(workflow)
    else:
        console.print(Text(f"workflow {workflow.id} version {workflow.version}: "
                           f"{len(workflow.steps)} steps, {len(workflow.edges)} edges"))


@workflows.command("get")
def workflows_get(
    workflow_id: str,
    version: Annotated[int, _int_option("The version (0: the latest).")] = 0,
    as_json: JsonOption = False,
) -> None:
    """A workflow version (the latest by default)."""
    with client() as c:
        workflow = c.get_workflow(workflow_id, version)
    if as_json:
        print_json(workflow)
        return
    console.print(Text(f"workflow {workflow.id} version {workflow.version} ({workflow.name})"), soft_wrap=True)
    console.print(Text("steps: " + ", ".join(s.id for s in workflow.steps)))
    out.show_table(console, ("from", "to", "condition"),
                   [(e.source_step_id, e.target_step_id,
                     _name(EdgeCondition, e.condition, "EDGE_CONDITION_")
                     + (f": {e.expression}" if e.expression else ""))
                    for e in workflow.edges], ids=(0, 1))


@workflows.command("list")
def workflows_list(as_json: JsonOption = False) -> None:
    """The latest version of every workflow."""
    with client() as c:
        found = list(c.list_workflows())
    if as_json:
        print_json(found)
        return
    out.show_table(console, ("workflow", "version", "steps", "name"),
                   [(w.id, str(w.version), str(len(w.steps)), w.name) for w in found])


# projects

@projects.command("create")
def projects_create(
    project_id: str,
    name: Annotated[str, typer.Option(help="A name for people.")] = "",
    max_in_flight: Annotated[Optional[int], _int_option("At most this many runs claimed at once.")] = None,
    max_per_window: Annotated[Optional[int], _int_option("At most this many runs started per window.")] = None,
    window_seconds: Annotated[Optional[float], typer.Option(help="The window of --max-per-window.")] = None,
    max_runtime_seconds: Annotated[Optional[float], typer.Option(help="A run still running after this long is killed.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a project, optionally with a run limit and a max runtime."""
    window = _seconds("--window-seconds", window_seconds)
    max_runtime = _seconds("--max-runtime-seconds", max_runtime_seconds)
    with client() as c:
        project = c.create_project(project_id, name=name, max_in_flight=max_in_flight,
                                   max_per_window=max_per_window, window=window, max_runtime=max_runtime)
    if as_json:
        print_json(project)
    else:
        console.print(Text.assemble("project ", (project.id, "bold"), " created"))


@projects.command("get")
def projects_get(project_id: str, as_json: JsonOption = False) -> None:
    """A project, as JSON (--json is accepted for symmetry with the other commands); its retention
    policy under "retention" (none: the server's --retention applies)."""
    with client() as c:
        print_json(c.get_project(project_id))


@projects.command("update")
def projects_update(
    project_id: str,
    name: Annotated[Optional[str], typer.Option(help="A name for people.")] = None,
    retention: Annotated[Optional[str], typer.Option(help=(
        "How long ended work orders are kept after their last change, by status, and their payloads: "
        "SUCCESS=30d,FAILED=365d,CANCELLED=30d,payloads=7d (s, m, h, d; 0 for ever; add ,archive to archive "
        "before deletion). A status not listed follows the server's --retention; \"\" clears the policy."))] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a project's name or retention (only what is given)."""
    try:
        policy = retention_text.parse(retention) if retention is not None else None
    except ValueError as e:
        raise InputError("--retention", str(e)) from None
    with client() as c:
        project = c.update_project(project_id, name=name, retention=policy)
    if as_json:
        print_json(project)
    else:
        kept = retention_text.describe(project.retention) or "the server's default"
        console.print(Text.assemble("project ", (project.id, "bold"), f" updated; retention: {kept}"))


# work orders

StatusOption = Annotated[Optional[list[str]], typer.Option(
    "--status", help=f"A status ({', '.join(check.STATUSES)}); repeatable, or comma-separated.")]
WorkflowOption = Annotated[str, typer.Option("--workflow", help="Workflow id.")]
SinceOption = Annotated[Optional[datetime], typer.Option("--since", help="Created at or after (UTC).")]
UntilOption = Annotated[Optional[datetime], typer.Option("--until", help="Created before (UTC).")]
ChangedSinceOption = Annotated[Optional[datetime], typer.Option(
    "--changed-since", help="Last changed (a run created, a status changed) at or after (UTC).")]
ChangedUntilOption = Annotated[Optional[datetime], typer.Option("--changed-until", help="Last changed before (UTC).")]


def _matching(status: list[str] | None, workflow: str, since: datetime | None, until: datetime | None,
              changed_since: datetime | None, changed_until: datetime | None) -> dict[str, Any]:
    return dict(statuses=check.statuses(status), workflow_id=workflow, created_after=since, created_before=until,
                updated_after=changed_since, updated_before=changed_until)


@work_orders.command("create")
def work_orders_create(
    workflow_id: str,
    input: Annotated[str, typer.Option("--input", help="The input: a JSON object, or @FILE.")] = "{}",  # noqa: A002
    priority: Annotated[int, _int_option("Higher runs first.", -INT32 - 1)] = 0,
    version: Annotated[int, _int_option("The workflow version (0: the latest).")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Create a work order (and its first run)."""
    data = check.json_object("--input", input)
    with client() as c:
        order = c.create_work_order(workflow_id, data, version=version, priority=priority)
    if as_json:
        print_json(_work_order_json(order))
    else:
        console.print(Text.assemble("work order ", (order.id, "bold"), "  ", chip(order.status)), soft_wrap=True)


@work_orders.command("get")
def work_orders_get(work_order_id: str, as_json: JsonOption = False) -> None:
    """A work order and its latest run."""
    with client() as c:
        order = c.get_work_order(work_order_id)
    if as_json:
        print_json(_work_order_json(order))
        return
    work_order_table([order])
    if order.latest_run:
        describe_run(order.latest_run)


@work_orders.command("list")
def work_orders_list(
    status: StatusOption = None, workflow: WorkflowOption = "", since: SinceOption = None, until: UntilOption = None,
    changed_since: ChangedSinceOption = None, changed_until: ChangedUntilOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most N work orders, the newest.")] = 50,
    show_all: Annotated[bool, typer.Option("--all", help="Show every matching work order.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Work orders, newest first; says how many more match when it does not show them all."""
    matching = _matching(status, workflow, since, until, changed_since, changed_until)
    with client() as c:
        found = list(c.list_work_orders(**matching, limit=None if show_all else limit,
                                        page_size=1000 if show_all else min(limit, 1000)))
        total = len(found)
        if not show_all and len(found) >= limit:
            total = max(total, sum(c.count_work_orders(**matching).values()))
    note = f"{len(found)} of {total} shown; --limit N or --all" if total > len(found) else ""
    if as_json:
        print_json([_work_order_json(w) for w in found])
        if note:
            errors.print(note, markup=False, soft_wrap=True)
        return
    if found:
        work_order_table(found)
    else:
        console.print("no work orders match")
    if note:
        console.print(note, markup=False, soft_wrap=True)


@work_orders.command("count")
def work_orders_count(status: StatusOption = None, workflow: WorkflowOption = "", since: SinceOption = None,
                      until: UntilOption = None, changed_since: ChangedSinceOption = None,
                      changed_until: ChangedUntilOption = None, as_json: JsonOption = False) -> None:
    """How many work orders, by status."""
    with client() as c:
        counts = c.count_work_orders(**_matching(status, workflow, since, until, changed_since, changed_until))
    if as_json:
        print_json({"counts": counts, "total": sum(counts.values())})
        return
    rows: list[tuple[str | Text, str]] = [(chip(RunStatus.Value(name)), str(n)) for name, n in counts.items()]
    out.show_table(console, ("status", "work orders"), [*rows, ("total", str(sum(counts.values())))], ids=())


@work_orders.command("retry")
def work_orders_retry(
    work_order_id: Annotated[Optional[str], typer.Argument(help="One work order; or use --status for many.")] = None,
    from_step: Annotated[str, typer.Option("--from", help="Start at this step; upstream results are kept.")] = "",
    status: StatusOption = None, workflow: WorkflowOption = "", since: SinceOption = None, until: UntilOption = None,
    changed_since: ChangedSinceOption = None, changed_until: ChangedUntilOption = None,
    as_json: JsonOption = False,
) -> None:
    """Retry one work order, or every work order matching --status (and --workflow, --since, --until,
    --changed-since, --changed-until)."""
    matching = _matching(status, workflow, since, until, changed_since, changed_until)
    if work_order_id is None and not matching["statuses"]:
        raise InputError("WORK_ORDER_ID", "missing; give a work order id, or --status (e.g. --status failed) "
                                          "to retry every work order in that status")
    if work_order_id is not None and (matching["statuses"] or workflow or since or until or changed_since
                                      or changed_until):
        raise InputError("--status", "goes without WORK_ORDER_ID: retry one work order, or those matching "
                                     "--status, --workflow, --since, --until, --changed-since, --changed-until")
    with client() as c:
        if work_order_id is not None:
            order = c.retry_work_order(work_order_id, start_step_id=from_step)
            if as_json:
                print_json(_work_order_json(order))
            else:
                console.print(Text.assemble(f"work order {order.id}: run {order.run_count} ", chip(order.status)),
                              soft_wrap=True)
            return
        if from_step:
            raise InputError("--from", "retries one work order from a step; give its WORK_ORDER_ID")
        retried, skipped = _bulk_retry(c, matching, show_progress=not as_json)
    if as_json:
        print_json({"retried_count": retried, "skipped_count": skipped})
    else:
        console.print(f"retried {retried} work orders" + (f", skipped {skipped}" if skipped else ""))


def _bulk_retry(c: Client, matching: dict[str, Any], show_progress: bool) -> tuple[int, int]:
    """RetryWorkOrders in a thread; the bar follows how many still match the filter."""
    total = sum(c.count_work_orders(**matching).values())
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["answer"] = c.retry_work_orders(**matching)
        except RunstatusError as e:
            result["error"] = e

    thread = threading.Thread(target=work)
    thread.start()
    if show_progress and total:
        columns = (TextColumn("retrying"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=errors, transient=True) as progress:
            task = progress.add_task("retry", total=total)
            while thread.is_alive():
                thread.join(0.2)
                left = sum(c.count_work_orders(**matching).values())
                progress.update(task, completed=max(total - left, 0))
            progress.update(task, completed=total)
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["answer"]  # type: ignore[no-any-return]


@work_orders.command("watch")
def work_orders_watch(
    status: StatusOption = None, workflow: WorkflowOption = "",
    after: Annotated[str, typer.Option("--after", help="Resume after this cursor (printed with each event).")] = "",
    from_start: Annotated[bool, typer.Option("--from-start", help="Replay the whole event log first.")] = False,
    work_order: Annotated[Optional[list[str]], typer.Option("--work-order", help="Only these work orders.")] = None,
    count: Annotated[Optional[int], typer.Option("--count", min=1, help="Stop after this many events.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Print events as they happen, from now on (--after CURSOR resumes, --from-start replays the log);
    reconnects by itself. --json: one WatchWorkOrdersResponse {event, cursor} per line."""
    if after and from_start:
        raise InputError("--from-start", "goes without --after: --after CURSOR resumes after an event, "
                                         "--from-start replays the whole log")
    check.cursor("--after", after)
    statuses = check.statuses(status)
    with client() as c:
        # A watch reconnects until it is answered: with no server there, say so instead of waiting.
        try:
            grpc.channel_ready_future(c.channel).result(timeout=_Connection.timeout)
        except grpc.FutureTimeoutError:
            raise Unreachable(f"UNAVAILABLE: cannot reach the server at {_Connection.address} within "
                              f"{_Connection.timeout:g} s; check --address (RUNSTATUS_ADDRESS), --tls and "
                              "--timeout") from None
        events = c.watch(statuses=statuses, workflow_id=workflow, after_cursor=after,
                         from_now=not after and not from_start, work_order_ids=work_order or [])
        for n, event in enumerate(events, start=1):
            if as_json:
                line = out.message(work_order_service_pb2.WatchWorkOrdersResponse(event=event.proto, cursor=event.cursor))
                print(json.dumps(line, ensure_ascii=False), flush=True)
            else:
                console.print(Text.assemble(
                    (f"{event.cursor:>8} ", "dim"), _when(event.time), "  ",
                    _name(EventType, event.type, "EVENT_TYPE_").lower().replace("_", " "), "  ",
                    (event.work_order_id, "bold"), f" run {event.run_number}  ", chip(event.status)),
                    soft_wrap=True)
            if count is not None and n >= count:
                return


# runs

@runs.command("get")
def runs_get(run_id: str, as_json: JsonOption = False) -> None:
    """A run with its step runs."""
    with client() as c:
        run = c.get_run(run_id)
    print_json(run.proto) if as_json else describe_run(run)


@runs.command("list")
def runs_list(work_order_id: str, as_json: JsonOption = False) -> None:
    """Every run of a work order, newest first."""
    with client() as c:
        found = list(c.list_runs(work_order_id))
    if as_json:
        print_json([r.proto for r in found])
        return
    out.show_table(console, ("run", "number", "status", "ended"),
                   [(r.id, str(r.number), chip(r.status), _when(r.end_time)) for r in found])


@runs.command("cancel")
def runs_cancel(run_id: str, reason: Annotated[str, typer.Option(help="Why, for the record.")] = "",
                as_json: JsonOption = False) -> None:
    """Cancel a run: a pending one at once, a running one at its worker's next report."""
    with client() as c:
        run = c.cancel_run(run_id, reason)
    if as_json:
        print_json(run.proto)
    elif run.cancel_requested and run.status == RunStatus.RUN_STATUS_RUNNING:
        console.print(f"run {run.id}: cancel requested; it ends at its worker's next heartbeat or report",
                      markup=False, soft_wrap=True)
    else:
        console.print(Text.assemble(f"run {run.id}: ", chip(run.status)), soft_wrap=True)


# tokens

ROLES = {"worker": 1, "client": 2, "admin": 3}


@tokens.command("create")
def tokens_create(
    role: Annotated[str, typer.Option(help="worker, client or admin.")],
    project: Annotated[str, typer.Option("--for-project", help="The token's project; '*' for an instance admin.")] = "",
    name: Annotated[str, typer.Option(help="What the token is for.")] = "",
    db: Annotated[Optional[str], typer.Option(
        help="Write straight into this database (a SQLite file, or a postgresql:// URL) instead of "
             "calling the server: for the first instance admin token of a server that runs with --auth.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API token. Its secret is printed once. --json: {token, secret}."""
    role = check.choice("--role", role, "a role", tuple(ROLES))
    project_id = project or _Connection.project
    if db is not None:
        token, secret = _create_token_offline(db, project_id or "*", ROLES[role], name)
    else:
        with client() as c:
            token, secret = c.create_token(role, project_id=project_id, name=name)
    if as_json:
        print_json(token_service_pb2.CreateTokenResponse(token=token, secret=secret))
    else:
        console.print(f"token {token.id} ({role} of project {token.project_id}); its secret, shown once:",
                      markup=False, soft_wrap=True)
        print(secret)


def _create_token_offline(db: str, project_id: str, role: int, name: str) -> Any:
    create = _plugins("runstatus.offline").get("create_token")
    if create is None:
        raise InputError("--db", "writing into a database needs the server: pip install runstatus-server")
    try:
        return create.load()(db, project_id, role, name)
    except Exception as e:  # a file that is not a database, a directory, no permission: all the person's
        shown = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", db)  # never a URL's password
        raise InputError("--db", f"cannot write a token into {shown!r}: {type(e).__name__}: {e}") from None


@tokens.command("revoke")
def tokens_revoke(token_id: str, as_json: JsonOption = False) -> None:
    """Revoke a token: it authenticates nothing from now on. --json: the token, with its revoke_time."""
    with client() as c:
        token = c.revoke_token(token_id)
    if as_json:
        print_json(token)
    else:
        console.print(f"token {token_id} revoked", markup=False, soft_wrap=True)


@tokens.command("list")
def tokens_list(as_json: JsonOption = False) -> None:
    """The tokens of the project (--project), without their secrets."""
    with client() as c:
        listed = list(c.list_tokens(page_size=1000))
    if as_json:
        print_json(listed)
        return
    out.show_table(console, ("token", "project", "role", "name", "revoked"),
                   [(t.id, t.project_id, _name(Role, t.role, "ROLE_").lower(), t.name,
                     "yes" if t.HasField("revoke_time") else "") for t in listed])


# notifications (their commands are in _cli_notifications, which reads this module's helpers)

from runstatus._cli_notifications import notifications  # noqa: E402

app.add_typer(notifications, name="notifications")

# stats (its command is in _cli_stats, which reads this module's helpers)

from runstatus._cli_stats import stats as _stats  # noqa: E402

app.command("stats")(_stats)
