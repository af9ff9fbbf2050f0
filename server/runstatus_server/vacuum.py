"""`runstatus vacuum`: the one-off conversion of an SQLite database made before runstatus gave
freed pages back to the file system (incremental auto-vacuum, set on every new file since).

SQLite records auto-vacuum in the file when its first table is made; an older file can only take
it by being rewritten whole, which needs the database to itself: the servers stopped. After that,
the leading server gives back in steps what retention frees (Tx.free_pages).
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from . import store
from .backup import DB_HELP, err
from .store import CopyError, is_postgres_url, sqlite_path


def vacuum_command(
    db: Annotated[str, typer.Option(envvar="RUNSTATUS_DB", help=DB_HELP)] = "runstatus.db",
) -> None:
    """Once, with the servers stopped: rewrites an SQLite database made by an older runstatus so that space freed by retention goes back to the file system."""
    if is_postgres_url(db):
        err.print("PostgreSQL needs no conversion: autovacuum makes freed space reusable")
        return
    started = time.monotonic()
    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err,
                      transient=True) as progress:
            progress.add_task(f"rewriting {sqlite_path(db)}", total=None)
            done = store.give_back_freed_space(db)
    except (CopyError, OSError) as e:
        err.print(f"[red]cannot vacuum:[/] {e}", highlight=False)
        raise typer.Exit(1) from None
    if done is None:
        err.print(f"{sqlite_path(db)} gives freed space back already: nothing to do", highlight=False)
    else:
        err.print(f"rewrote {sqlite_path(db)} in {time.monotonic() - started:.1f} s: {done[0]:,} -> {done[1]:,} bytes; "
                  "space freed from now on goes back to the file system", highlight=False)
