"""`runstatus backup` and `runstatus restore`: a consistent copy of a live database, taken without
stopping the servers that write it, and put back in place of a database that is not in use. How
each backend does it is store/sqlite/copies.py's and store/postgres/copies.py's."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from . import store
from .store import CopyError, is_postgres_url, sqlite_path

DB_HELP = "The database: an SQLite file (a path, or sqlite:PATH), or a PostgreSQL URL."

err = Console(stderr=True, soft_wrap=True)


def backup_command(
    dest: Annotated[Path, typer.Argument(help="The file to write; it must not exist (unless --force).")],
    db: Annotated[str, typer.Option(envvar="RUNSTATUS_DB", help=DB_HELP)] = "runstatus.db",
    force: Annotated[bool, typer.Option("--force", help="Replace DEST if it exists.")] = False,
) -> None:
    """A consistent copy of the database, taken while servers go on writing it; `runstatus restore` puts it back.

    SQLite: its online backup, within one snapshot. PostgreSQL: pg_dump's custom format."""
    try:
        if dest.exists() and not force:
            raise CopyError(f"{dest} exists: give another file, or --force to replace it")
        with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                      console=err, transient=True) as progress:
            task = progress.add_task("backing up", total=None)
            summary = store.backup(db, dest, lambda done, total: progress.update(task, completed=done, total=total))
        err.print(f"backed up to {dest}: {summary.line()}", highlight=False)
    except (CopyError, OSError) as e:
        err.print(f"[red]cannot back up:[/] {e}", highlight=False)
        raise typer.Exit(1) from None


def restore_command(
    backup: Annotated[Path, typer.Argument(help="A file `runstatus backup` wrote.")],
    db: Annotated[str, typer.Option(envvar="RUNSTATUS_DB", help=DB_HELP + " For PostgreSQL, an empty database.")]
    = "runstatus.db",
) -> None:
    """Puts a backup in place of the database; stop the servers that use it first.

    SQLite: a database already there is kept beside it, as DB.replaced-<time>. PostgreSQL: into an
    empty database."""
    try:
        summary, aside = store.restore(backup, db)
    except (CopyError, OSError) as e:
        err.print(f"[red]cannot restore:[/] {e}", highlight=False)
        raise typer.Exit(1) from None
    where = db.split("@")[-1] if is_postgres_url(db) else sqlite_path(db)  # a URL's password stays out
    err.print(f"restored {backup} to {where}" + (f": {summary.line()}" if summary else ""), highlight=False)
    if aside is not None:
        err.print(f"the database that was there is now {aside}", highlight=False)
