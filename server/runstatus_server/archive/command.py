"""`runstatus archive verify DIR` and `runstatus archive show DIR`: an archive (--archive-dir of a
server, written by the pruner) checked and read back."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .reader import lines, verify
from .sink import DirectorySink

app = typer.Typer(help="Archives of pruned work orders: verify them, read them back.", no_args_is_help=True)
err = Console(stderr=True, soft_wrap=True, highlight=False)
DirArgument = Annotated[Path, typer.Argument(help="The archive's directory (a server's --archive-dir).")]


def _sink(directory: Path) -> DirectorySink:
    if not directory.is_dir():
        err.print(f"[red]error:[/] {directory} is not a directory")
        raise typer.Exit(2)
    return DirectorySink(directory)


@app.command("verify")
def verify_command(directory: DirArgument) -> None:
    """Re-reads every file against its manifest: size, SHA-256, every line, counts.

    Exit 1 when anything is wrong, each problem on a line of its own."""
    sink = _sink(directory)
    if err.is_terminal:  # a large archive takes a while: files done of files in all
        with Progress(TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=err, transient=True) as progress:
            task = progress.add_task("verifying", total=None)
            result = verify(sink, lambda done, total: progress.update(task, completed=done, total=total))
    else:
        result = verify(sink)
    for partial in sink.partials():
        err.print(f"note: {partial} is a write that never finished (not part of the archive; may be deleted)")
    counts = ", ".join(f"{n:,} {key.replace('_', ' ')}" for key, n in result.counts.items())
    if result.problems:
        for problem in result.problems:
            print(problem)
        err.print(f"[red]{len(result.problems)} problem(s)[/] in {directory} ({result.files} files: {counts})")
        raise typer.Exit(1)
    err.print(f"ok: {result.files} files, {counts}")


def _row(record: dict[str, Any]) -> str:
    wo = record.get("work_order", {})
    runs = record.get("runs", [])
    steps = sum(len(r.get("step_runs", [])) for r in runs)
    status = str(wo.get("status", "")).removeprefix("RUN_STATUS_")
    return (f"{wo.get('update_time', ''):<28} {wo.get('id', ''):<38} {wo.get('project_id', ''):<16} "
            f"{wo.get('workflow_id', ''):<20} {status:<10} {len(runs):>4} {steps:>5} {len(record.get('events', [])):>6}")


@app.command("show")
def show_command(
    directory: DirArgument,
    work_order: Annotated[Optional[str], typer.Option("--work-order", help="Only this work order.")] = None,
    project: Annotated[Optional[str], typer.Option("--project", help="Only this project's work orders.")] = None,
    table: Annotated[bool, typer.Option("--table", help="A short table instead of the JSON lines.")] = False,
) -> None:
    """The archive's work orders as stored (JSON lines), or a short table; oldest file first, streaming.

    Each line: the work order, its runs with their step runs, its events."""
    out = sys.stdout
    if table:
        out.write(f"{'updated':<28} {'work order':<38} {'project':<16} {'workflow':<20} {'status':<10} "
                  f"{'runs':>4} {'steps':>5} {'events':>6}\n")
    # A cheap look for the id first (as the lines spell it, JSON-escaped): most lines are not the one asked for.
    needles = [json.dumps(v, ensure_ascii=False)[1:-1].encode() for v in (work_order, project) if v]
    try:
        for line in lines(_sink(directory)):
            if any(n not in line for n in needles):
                continue
            record = json.loads(line) if (work_order or project or table) else None
            if record is not None:
                wo = record.get("work_order", {})
                if (work_order and wo.get("id") != work_order) or (project and wo.get("project_id") != project):
                    continue
            out.write(_row(record) + "\n" if table and record is not None else line.decode())
    except BrokenPipeError:
        sys.stderr.close()  # `| head`: the reader has what it wanted
    except (OSError, EOFError, ValueError) as e:
        err.print(f"[red]cannot read the archive:[/] {e} (runstatus archive verify says where)")
        raise typer.Exit(1) from None
