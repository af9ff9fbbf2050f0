"""The `runstatus` command line: classify, workflows, projects, work orders, runs, tokens (and
`serve`, when the server is installed too).

Connection settings come from flags or the environment: RUNSTATUS_ADDRESS, RUNSTATUS_TOKEN,
RUNSTATUS_TLS, RUNSTATUS_CA_FILE, RUNSTATUS_PROJECT. Human output is a table with the
status chips; `--json` prints JSON for scripts.
"""

from __future__ import annotations

import json
import pathlib
import sys
import threading
from collections.abc import Iterator
from importlib.metadata import entry_points
from datetime import datetime
from typing import Annotated, Any, Optional

import typer
import yaml
from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from runstatus import status_table
from runstatus.client import Client
from runstatus.errors import RunstatusError
from runstatus.models import Event, Run, WorkOrder
from runstatus.v1.event_pb2 import EventType
from runstatus.v1.status_pb2 import ErrorType, RunStatus

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)
workflows = typer.Typer(help="Create and read workflows.", no_args_is_help=True)
projects = typer.Typer(help="Create and read projects, their run limits and max runtimes.", no_args_is_help=True)
work_orders = typer.Typer(help="Create, read, count, retry and watch work orders.", no_args_is_help=True)
runs = typer.Typer(help="Read and cancel runs.", no_args_is_help=True)
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


class _Connection:
    address = "localhost:50051"
    token: str | None = None
    tls = False
    ca_file: pathlib.Path | None = None
    project = ""
    timeout = 30.0


def client() -> Client:
    c = _Connection
    roots = c.ca_file.read_bytes() if c.ca_file else None
    return Client(c.address, tls=c.tls, root_certificates=roots, token=c.token, timeout=c.timeout,
                  project_id=c.project)


@app.callback()
def connection(
    address: Annotated[str, typer.Option(envvar="RUNSTATUS_ADDRESS", help="host:port of the server.")] = "localhost:50051",
    token: Annotated[Optional[str], typer.Option(envvar="RUNSTATUS_TOKEN", help="API token (bearer).")] = None,
    tls: Annotated[bool, typer.Option(envvar="RUNSTATUS_TLS", help="Connect with TLS.")] = False,
    ca_file: Annotated[Optional[pathlib.Path], typer.Option(envvar="RUNSTATUS_CA_FILE", help="CA certificates (PEM) for TLS.")] = None,
    project: Annotated[str, typer.Option(envvar="RUNSTATUS_PROJECT", help="Project id (default: the 'default' project).")] = "",
    timeout: Annotated[float, typer.Option(envvar="RUNSTATUS_TIMEOUT", help="Deadline of each call, in seconds.")] = 30.0,
) -> None:
    """runstatus: work orders, runs and their statuses, over gRPC."""
    _Connection.address, _Connection.token, _Connection.tls = address, token, tls or ca_file is not None
    _Connection.ca_file, _Connection.project, _Connection.timeout = ca_file, project, timeout


def main() -> None:
    try:
        app()
    except RunstatusError as e:
        errors.print(f"[red]error:[/red] {e}")
        for v in e.violations:
            errors.print(f"  [bold]{v.field}[/bold]: {v.description}")
        if e.current_status:
            errors.print(f"  current status: {e.current_status}")
        sys.exit(1)


# Output

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def chip(status: RunStatus.ValueType) -> Text:
    row = status_table.statuses().get(status)
    if row is None:
        return Text("?")
    return Text(f"{row.chip} {row.label}", style=COLORS.get(row.color, ""))


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _proto_json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def work_order_table(orders: list[WorkOrder]) -> Table:
    table = Table("work order", "status", "workflow", "runs", "created")
    for w in orders:
        table.add_row(w.id, chip(w.status), f"{w.workflow_id} v{w.workflow_version}", str(w.run_count),
                      _when(w.create_time))
    return table


def run_table(run: Run) -> Table:
    table = Table("step", "status", "error", "step run", title=f"run {run.number} ({run.id})")
    for s in run.step_runs:
        error = f"{s.error.name}: {s.error.message}" if s.error else ""
        table.add_row(s.step_id + (" (reused)" if s.reused else ""), chip(s.status), error, s.id)
    return table


def describe_run(run: Run) -> None:
    console.print(Text.assemble("run ", (run.id, "bold"), f" #{run.number}  ", chip(run.status)))
    if run.error:
        c = run.error.classification
        console.print(f"  error: {run.error.name}: {run.error.message} "
                      f"({ErrorType.Name(c.error_type)}, rule {c.rule})"
                      + (f" at step {run.error.step_id}" if run.error.step_id else ""))
    if run.status_reason:
        console.print(f"  reason: {run.status_reason}")
    if run.step_runs:
        console.print(run_table(run))


# Commands of the server (`runstatus-server`: serve): found through entry points, so that the
# client works without it and never imports it.

def _plugins(group: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=group)}


for _name, _entry in sorted(_plugins("runstatus.commands").items()):
    app.command(_name)(_entry.load())


# classify

@app.command()
def classify(
    name: Annotated[str, typer.Argument(help="The error's class name as thrown, e.g. KeyError.")],
    message: Annotated[str, typer.Option(help="The error's message.")] = "",
    source: Annotated[str, typer.Option(help="job or runtime.")] = "job",
    language: Annotated[str, typer.Option(help="javascript, python, java, go, ...")] = "",
    http_status: Annotated[int, typer.Option(help="The HTTP status of a failed request.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """How the server classifies an error."""
    with client() as c:
        result = c.classify(name, message, source=source, language=language, http_status=http_status)
    if as_json:
        print_json({"status": RunStatus.Name(result.status), "error_type": ErrorType.Name(result.error_type),
                    "aborts_run": result.aborts_run, "rule": result.rule})
        return
    console.print(Text.assemble(chip(result.status), f"  {ErrorType.Name(result.error_type)}",
                                "  aborts the run" if result.aborts_run else "  the run goes on",
                                f"  (rule {result.rule})"))


# workflows

@workflows.command("create")
def workflows_create(
    file: Annotated[pathlib.Path, typer.Argument(help="YAML or JSON: id, name, steps, edges ([from, to, CONDITION]).")],
    as_json: JsonOption = False,
) -> None:
    """Create a workflow, or the next version of an existing one."""
    from runstatus._requests import workflow_from_dict

    data = yaml.safe_load(file.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "id" not in data:
        raise typer.BadParameter("the file must be a mapping with at least an 'id' and 'steps'")
    workflow_id, steps, edges, name = workflow_from_dict(data)
    with client() as c:
        workflow = c.create_workflow(workflow_id, steps, edges, name=name)
    if as_json:
        print_json(_proto_json(workflow))
    else:
        console.print(f"workflow [bold]{workflow.id}[/bold] version {workflow.version}: "
                      f"{len(workflow.steps)} steps, {len(workflow.edges)} edges")


@workflows.command("get")
def workflows_get(workflow_id: str, version: int = 0, as_json: JsonOption = False) -> None:
    """A workflow version (the latest by default)."""
    with client() as c:
        workflow = c.get_workflow(workflow_id, version)
    if as_json:
        print_json(_proto_json(workflow))
        return
    console.print(f"workflow [bold]{workflow.id}[/bold] version {workflow.version} ({workflow.name})")
    table = Table("from", "to", "condition")
    for e in workflow.edges:
        table.add_row(e.source_step_id, e.target_step_id, e.expression or
                      json_format.MessageToDict(e, always_print_fields_with_no_presence=True)["condition"])
    console.print("steps: " + ", ".join(s.id for s in workflow.steps))
    console.print(table)


@workflows.command("list")
def workflows_list(as_json: JsonOption = False) -> None:
    """The latest version of every workflow."""
    with client() as c:
        found = list(c.list_workflows())
    if as_json:
        print_json([_proto_json(w) for w in found])
        return
    table = Table("workflow", "version", "steps", "name")
    for w in found:
        table.add_row(w.id, str(w.version), str(len(w.steps)), w.name)
    console.print(table)


# projects

@projects.command("create")
def projects_create(project_id: str, name: str = "", max_in_flight: Optional[int] = None,
                    max_per_window: Optional[int] = None, window_seconds: Optional[float] = None,
                    max_runtime_seconds: Optional[float] = None, as_json: JsonOption = False) -> None:
    """Create a project, optionally with a run limit and a max runtime."""
    from datetime import timedelta

    with client() as c:
        project = c.create_project(
            project_id, name=name, max_in_flight=max_in_flight, max_per_window=max_per_window,
            window=timedelta(seconds=window_seconds) if window_seconds else None,
            max_runtime=timedelta(seconds=max_runtime_seconds) if max_runtime_seconds else None)
    print_json(_proto_json(project)) if as_json else console.print(f"project [bold]{project.id}[/bold] created")


@projects.command("get")
def projects_get(project_id: str) -> None:
    """A project, as JSON."""
    with client() as c:
        print_json(_proto_json(c.get_project(project_id)))


# work orders

def _statuses(values: list[str] | None) -> list[str]:
    return [v for value in values or [] for v in value.split(",") if v]


StatusOption = Annotated[Optional[list[str]], typer.Option("--status", help="Status, e.g. FAILED (repeatable).")]
WorkflowOption = Annotated[str, typer.Option("--workflow", help="Workflow id.")]
SinceOption = Annotated[Optional[datetime], typer.Option("--since", help="Created at or after (UTC).")]
UntilOption = Annotated[Optional[datetime], typer.Option("--until", help="Created before (UTC).")]


@work_orders.command("create")
def work_orders_create(
    workflow_id: str,
    input: Annotated[str, typer.Option("--input", help="The input as JSON, or @FILE.")] = "{}",  # noqa: A002
    priority: int = 0,
    version: int = 0,
    as_json: JsonOption = False,
) -> None:
    """Create a work order (and its first run)."""
    text = pathlib.Path(input[1:]).read_text(encoding="utf-8") if input.startswith("@") else input
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise typer.BadParameter(f"--input is not JSON: {e}") from None
    with client() as c:
        order = c.create_work_order(workflow_id, data, version=version, priority=priority)
    if as_json:
        print_json({"id": order.id, "status": RunStatus.Name(order.status), "run_id": order.latest_run_id})
    else:
        console.print(Text.assemble("work order ", (order.id, "bold"), "  ", chip(order.status)))


@work_orders.command("get")
def work_orders_get(work_order_id: str, as_json: JsonOption = False) -> None:
    """A work order and its latest run."""
    with client() as c:
        order = c.get_work_order(work_order_id)
    if as_json:
        out = _proto_json(order.proto)
        if order.latest_run:
            out["latestRun"] = _proto_json(order.latest_run.proto)
        print_json(out)
        return
    console.print(work_order_table([order]))
    if order.latest_run:
        describe_run(order.latest_run)


@work_orders.command("list")
def work_orders_list(status: StatusOption = None, workflow: WorkflowOption = "", since: SinceOption = None,
                     until: UntilOption = None, limit: int = 50, as_json: JsonOption = False) -> None:
    """Work orders, newest first."""
    with client() as c:
        found = list(c.list_work_orders(statuses=_statuses(status), workflow_id=workflow, created_after=since,
                                        created_before=until, limit=limit, page_size=min(limit, 1000)))
    if as_json:
        print_json([_proto_json(w.proto) for w in found])
    else:
        console.print(work_order_table(found))


@work_orders.command("count")
def work_orders_count(status: StatusOption = None, workflow: WorkflowOption = "", since: SinceOption = None,
                      until: UntilOption = None, as_json: JsonOption = False) -> None:
    """How many work orders, by status."""
    with client() as c:
        counts = c.count_work_orders(statuses=_statuses(status), workflow_id=workflow, created_after=since,
                                     created_before=until)
    if as_json:
        print_json({"counts": counts, "total": sum(counts.values())})
        return
    table = Table("status", "work orders")
    for name, n in counts.items():
        table.add_row(chip(RunStatus.Value(name)), str(n))
    table.add_row("total", str(sum(counts.values())))
    console.print(table)


@work_orders.command("retry")
def work_orders_retry(
    work_order_id: Annotated[Optional[str], typer.Argument(help="One work order; or use --status for many.")] = None,
    from_step: Annotated[str, typer.Option("--from", help="Start at this step; upstream results are kept.")] = "",
    status: StatusOption = None, workflow: WorkflowOption = "", since: SinceOption = None, until: UntilOption = None,
    as_json: JsonOption = False,
) -> None:
    """Retry one work order, or every work order matching --status (and --workflow, --since, --until)."""
    with client() as c:
        if work_order_id:
            order = c.retry_work_order(work_order_id, start_step_id=from_step)
            if as_json:
                print_json({"id": order.id, "status": RunStatus.Name(order.status), "run_id": order.latest_run_id,
                            "run_number": order.run_count})
            else:
                console.print(Text.assemble(f"work order {order.id}: run {order.run_count} ", chip(order.status)))
            return
        statuses = _statuses(status)
        if not statuses:
            raise typer.BadParameter("give a work order id, or --status for a bulk retry")
        matching = dict(statuses=statuses, workflow_id=workflow, created_after=since, created_before=until)
        retried, skipped = _bulk_retry(c, matching, show_progress=not as_json)
    if as_json:
        print_json({"retried": retried, "skipped": skipped})
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
    after: Annotated[str, typer.Option("--after", help="Resume after this cursor.")] = "",
    work_order: Annotated[Optional[list[str]], typer.Option("--work-order", help="Only these work orders.")] = None,
    count: Annotated[Optional[int], typer.Option("--count", help="Stop after this many events.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Print events as they happen (past ones after --after first); reconnects by itself."""
    with client() as c:
        for n, event in enumerate(_events(c, status, workflow, after, work_order), start=1):
            if as_json:
                print(json.dumps({"cursor": event.cursor, **_proto_json(event.proto)}), flush=True)
            else:
                console.print(Text.assemble(
                    (f"{event.cursor:>8} ", "dim"), _when(event.time), "  ",
                    EventType.Name(event.type).removeprefix("EVENT_TYPE_").lower().replace("_", " "), "  ",
                    (event.work_order_id, "bold"), f" run {event.run_number}  ", chip(event.status)))
            if count is not None and n >= count:
                return


def _events(c: Client, status: list[str] | None, workflow: str, after: str,
            work_order: list[str] | None) -> Iterator[Event]:
    return c.watch(statuses=_statuses(status), workflow_id=workflow, after_cursor=after,
                   work_order_ids=work_order or [])


# runs

@runs.command("get")
def runs_get(run_id: str, as_json: JsonOption = False) -> None:
    """A run with its step runs."""
    with client() as c:
        run = c.get_run(run_id)
    print_json(_proto_json(run.proto)) if as_json else describe_run(run)


@runs.command("list")
def runs_list(work_order_id: str, as_json: JsonOption = False) -> None:
    """Every run of a work order, newest first."""
    with client() as c:
        found = list(c.list_runs(work_order_id))
    if as_json:
        print_json([_proto_json(r.proto) for r in found])
        return
    table = Table("run", "number", "status", "ended")
    for r in found:
        table.add_row(r.id, str(r.number), chip(r.status), _when(r.end_time))
    console.print(table)


@runs.command("cancel")
def runs_cancel(run_id: str, reason: str = "", as_json: JsonOption = False) -> None:
    """Cancel a run: a pending one at once, a running one at its worker's next report."""
    with client() as c:
        run = c.cancel_run(run_id, reason)
    if as_json:
        print_json({"id": run.id, "status": RunStatus.Name(run.status), "cancel_requested": run.cancel_requested})
    elif run.cancel_requested and run.status == RunStatus.RUN_STATUS_RUNNING:
        console.print(f"run {run.id}: cancel requested; it ends at its worker's next heartbeat or report")
    else:
        console.print(Text.assemble(f"run {run.id}: ", chip(run.status)))


# tokens

ROLES = {"worker": 1, "client": 2, "admin": 3}


@tokens.command("create")
def tokens_create(
    role: Annotated[str, typer.Option(help="worker, client or admin.")],
    project: Annotated[str, typer.Option("--for-project", help="The token's project; '*' for an instance admin.")] = "",
    name: Annotated[str, typer.Option(help="What the token is for.")] = "",
    db: Annotated[Optional[pathlib.Path], typer.Option(
        help="Write straight into this database file instead of calling the server: for the first "
             "instance admin token of a server that runs with --auth.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API token. Its secret is printed once."""
    if role not in ROLES:
        raise typer.BadParameter("worker, client or admin", param_hint="--role")
    project_id = project or _Connection.project
    if db is not None:
        token, secret = _create_token_offline(db, project_id or "*", ROLES[role], name)
    else:
        with client() as c:
            token, secret = c.create_token(role, project_id=project_id, name=name)
    if as_json:
        print_json({"id": token.id, "project_id": token.project_id, "role": role, "secret": secret})
    else:
        console.print(f"token {token.id} ({role} of project {token.project_id}); its secret, shown once:")
        print(secret)


def _create_token_offline(db: pathlib.Path, project_id: str, role: int, name: str) -> Any:
    create = _plugins("runstatus.offline").get("create_token")
    if create is None:
        raise typer.BadParameter("writing into a database needs the server: pip install runstatus-server",
                                 param_hint="--db")
    return create.load()(str(db), project_id, role, name)


@tokens.command("revoke")
def tokens_revoke(token_id: str) -> None:
    """Revoke a token: it authenticates nothing from now on."""
    with client() as c:
        c.revoke_token(token_id)
    console.print(f"token {token_id} revoked")


@tokens.command("list")
def tokens_list(as_json: JsonOption = False) -> None:
    """The tokens of the project (--project), without their secrets."""
    with client() as c:
        listed = list(c.list_tokens(page_size=1000))
    if as_json:
        print_json([_proto_json(t) for t in listed])
        return
    table = Table("token", "project", "role", "name", "revoked")
    for t in listed:
        table.add_row(t.id, t.project_id, ["?", "worker", "client", "admin"][t.role], t.name,
                      "yes" if t.HasField("revoke_time") else "")
    console.print(table)
