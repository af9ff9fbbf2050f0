"""`runstatus export [filters] > out.ndjson`: work orders in the archive's shape on stdout, resumable.

The cursor is the `seq` of the last work order written (the order work orders were inserted in):
`--after CURSOR` goes on after it, so an export cut short and resumed writes each work order
exactly once. It is printed on stderr at the end, and when the export is interrupted (Ctrl-C,
SIGTERM, --limit reached): a page is written and flushed whole before the cursor moves past it,
with those signals held off meanwhile, so the cursor printed is exactly what was written."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from typing import Annotated, BinaryIO, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .batches import Page, Source, SourceError
from .filters import ExportFilter, FilterError, parse_status, parse_time
from .pipeline import default_jobs, encoded

DB_HELP = "The database: an SQLite file (a path, or sqlite:PATH), or a PostgreSQL URL."
err = Console(stderr=True, soft_wrap=True, highlight=False)


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived: the export stops after the page it is writing."""


def _interrupt(signum: int, frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def pages(source: Source, flt: ExportFilter, after: int, limit: int | None, batch_size: int,
          events: bool) -> Iterator[Page]:
    """The keyset walk: pages of work orders after the cursor, up to limit in all."""
    taken = 0
    while limit is None or taken < limit:
        want = batch_size if limit is None else min(batch_size, limit - taken)
        page = source.page(flt, after, want, events=events)
        if page is None:
            return
        yield page
        taken += len(page.found)
        after = int(page.found[-1][0])
        if len(page.found) < want:
            return


def export(source: Source, flt: ExportFilter, out: BinaryIO, *, after: int = 0, limit: int | None = None,
           batch_size: int = 2000, events: bool = False, jobs: int = 1,
           progress: Progress | None = None) -> dict[str, int]:
    """Writes the matching work orders after the cursor `after` to out; their counts and the
    cursor after the last one written ("cursor"). Interrupted propagates with `.counts` set."""
    counts = {"work_orders": 0, "runs": 0, "step_runs": 0, "events": 0, "cursor": after}
    task = progress.add_task("exporting", total=source.count(flt, after)) if progress is not None else None
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        for batch in encoded(pages(source, flt, after, limit, batch_size, events), jobs):
            # A page goes out whole, or not at all, before the cursor moves past it.
            signal.pthread_sigmask(signal.SIG_BLOCK, held)
            try:
                out.write(batch.data)
                out.flush()
                counts["cursor"] = batch.cursor
                for key in ("work_orders", "runs", "step_runs", "events"):
                    counts[key] += getattr(batch, key)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, held)  # a signal held off is raised here
            if progress is not None and task is not None:
                progress.update(task, advance=batch.work_orders)
    except (Interrupted, KeyboardInterrupt, BrokenPipeError) as e:
        e.counts = counts  # type: ignore[union-attr]
        raise
    return counts


def _summary(counts: dict[str, int], seconds: float, events: bool) -> str:
    rate = counts["work_orders"] / seconds if seconds > 0 else 0.0
    what = f"{counts['work_orders']:,} work orders, {counts['runs']:,} runs, {counts['step_runs']:,} step runs"
    if events:
        what += f", {counts['events']:,} events"
    return f"{what} in {seconds:.1f} s ({rate:,.0f} work orders/s)"


def export_command(
    db: Annotated[str, typer.Option(envvar="RUNSTATUS_DB", help=DB_HELP)] = "runstatus.db",
    project: Annotated[Optional[list[str]], typer.Option("--project", help="Only this project's (repeatable: any of them).")] = None,
    workflow: Annotated[Optional[list[str]], typer.Option("--workflow", help="Only this workflow's (repeatable).")] = None,
    status: Annotated[Optional[list[str]], typer.Option("--status", help="Only work orders in this status: failed, success, ... (repeatable).")] = None,
    created_after: Annotated[str, typer.Option(help="Created at or after this time (ISO 8601; UTC unless it says).")] = "",
    created_before: Annotated[str, typer.Option(help="Created before this time.")] = "",
    updated_after: Annotated[str, typer.Option(help="Last changed at or after this time.")] = "",
    updated_before: Annotated[str, typer.Option(help="Last changed before this time.")] = "",
    after: Annotated[int, typer.Option("--after", help="Go on after this cursor (printed by an earlier export).", min=0)] = 0,
    limit: Annotated[Optional[int], typer.Option(help="Stop after this many work orders (the cursor says where).", min=1)] = None,
    events: Annotated[bool, typer.Option("--events", help="Each work order's events too.")] = False,
    batch_size: Annotated[int, typer.Option(help="Work orders read per page.", min=1, max=20000)] = 2000,
    jobs: Annotated[int, typer.Option(help="Processes encoding pages (0: one per CPU, up to 4).", min=0)] = 0,
) -> None:
    """Work orders with their runs and step runs, as NDJSON on stdout in the archive's shape
    (one work order per line), straight from the database. Resumable: the cursor printed on
    stderr at the end (or on interruption) goes to --after."""
    try:
        flt = ExportFilter(
            projects=project or [], workflows=workflow or [], statuses=[parse_status(s) for s in status or []],
            created_after=parse_time("--created-after", created_after) if created_after else None,
            created_before=parse_time("--created-before", created_before) if created_before else None,
            updated_after=parse_time("--updated-after", updated_after) if updated_after else None,
            updated_before=parse_time("--updated-before", updated_before) if updated_before else None,
        )
    except FilterError as e:
        err.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from None
    try:
        source = Source.open(db)
    except SourceError as e:
        err.print(f"[red]cannot export:[/] {e}")
        raise typer.Exit(1) from None
    if events and not source.event_index():
        err.print("note: this database has no index of events by work order: each page's events are found by "
                  "reading the whole event log (slow on a large database)")
    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    out = sys.stdout.buffer
    progress = None
    if err.is_terminal:
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), console=err, transient=True)
    try:
        with progress or contextlib.nullcontext():
            counts = export(source, flt, out, after=after, limit=limit, batch_size=batch_size, events=events,
                            jobs=jobs or default_jobs(), progress=progress)
    except (Interrupted, KeyboardInterrupt, BrokenPipeError) as e:
        counts = e.counts  # type: ignore[union-attr]
        why = "interrupted"
        if isinstance(e, BrokenPipeError):
            why = "the reader went away"
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        err.print(f"{why} after {_summary(counts, time.monotonic() - started, events)}")
        err.print(f"cursor: {counts['cursor']} (go on with --after {counts['cursor']})")
        raise typer.Exit(130 if not isinstance(e, BrokenPipeError) else 1) from None
    except SourceError as e:
        err.print(f"[red]cannot export:[/] {e}")
        raise typer.Exit(1) from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        source.close()
    done = "stopped at --limit" if limit is not None and counts["work_orders"] >= limit else "exported"
    err.print(f"{done}: {_summary(counts, time.monotonic() - started, events)}")
    err.print(f"cursor: {counts['cursor']} (go on with --after {counts['cursor']})")
