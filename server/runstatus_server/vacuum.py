"""`runstatus vacuum`: the one-off conversion of an SQLite database made before runstatus gave
freed pages back to the file system (incremental auto-vacuum, set on every new file since).

SQLite records auto-vacuum in the file when its first table is made; an older file can only take
it by being rewritten whole (VACUUM), which needs the database to itself: the servers stopped.
After that, the leading server gives back in steps what retention frees (Tx.free_pages).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from .backup import DB_HELP, BackupError, err, unused
from .store import is_postgres_url, sqlite_path

INCREMENTAL = 2  # PRAGMA auto_vacuum's value


def convert(path: Path) -> tuple[int, int] | None:
    """Rewrites the database at path with incremental auto-vacuum: (bytes before, after), or
    None if it has it already."""
    if not path.is_file():
        raise BackupError(f"there is no database at {path}")
    before = path.stat().st_size
    with unused(path) as conn:
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == INCREMENTAL:
            return None
        conn.execute("COMMIT")  # the exclusive lock stays: locking_mode is EXCLUSIVE
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err,
                      transient=True) as progress:
            progress.add_task(f"rewriting {path}", total=None)
            conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != INCREMENTAL:
            raise BackupError(f"{path} was rewritten but did not take incremental auto-vacuum")
    return before, path.stat().st_size


def vacuum_command(
    db: Annotated[str, typer.Option(envvar="RUNSTATUS_DB", help=DB_HELP)] = "runstatus.db",
) -> None:
    """Once, with the servers stopped: rewrites an SQLite database made by an older runstatus so that space freed by retention goes back to the file system."""
    if is_postgres_url(db):
        err.print("PostgreSQL needs no conversion: autovacuum makes freed space reusable")
        return
    started = time.monotonic()
    try:
        done = convert(Path(sqlite_path(db)))
    except (BackupError, sqlite3.Error, OSError) as e:
        err.print(f"[red]cannot vacuum:[/] {e}", highlight=False)
        raise typer.Exit(1) from None
    if done is None:
        err.print(f"{sqlite_path(db)} gives freed space back already: nothing to do", highlight=False)
    else:
        err.print(f"rewrote {sqlite_path(db)} in {time.monotonic() - started:.1f} s: {done[0]:,} -> {done[1]:,} bytes; "
                  "space freed from now on goes back to the file system", highlight=False)
