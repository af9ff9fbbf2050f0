"""`runstatus backup` and `runstatus restore`: a consistent copy of a live database, taken without
stopping the servers that write it, and put back in place of a database that is not in use.

SQLite: the copy is SQLite's online backup, made in steps (progress is shown) inside one read
transaction on the source. In WAL mode a reader sees one snapshot and never blocks the writers, and
a backup whose source connection holds that snapshot is not restarted by their commits: the copy is
the database exactly as it was when the backup began. It is written beside DEST, checked
(PRAGMA integrity_check), made durable and only then renamed to DEST: a DEST that exists is a
complete, checked backup.

PostgreSQL: pg_dump's custom format (one snapshot of the database, writers go on), restored by
pg_restore into an empty database.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from .store import is_postgres_url, sqlite_path
from .store.sqlite.engine import connect
from .store.sqlite.migrations import MIGRATIONS

STEP_PAGES = 1024  # pages copied per step: 4 MiB at SQLite's default page size
DB_HELP = "The database: an SQLite file (a path, or sqlite:PATH), or a PostgreSQL URL."

err = Console(stderr=True, soft_wrap=True)


class BackupError(Exception):
    """Why a backup or a restore was not made; nothing was changed."""


@dataclass(frozen=True)
class Summary:
    schema_version: int
    last_event_sequence: int
    work_orders: int
    size_bytes: int

    def line(self) -> str:
        return (f"schema version {self.schema_version}, {self.work_orders:,} work orders, events up to "
                f"sequence {self.last_event_sequence:,}, {self.size_bytes:,} bytes")


def _summary(conn: sqlite3.Connection, size_bytes: int) -> Summary:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    last = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
    orders = conn.execute("SELECT count(*) FROM work_orders").fetchone()[0]
    return Summary(int(version), int(last), int(orders), size_bytes)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check(path: Path) -> Summary:
    """The copy at path opens, is intact and is a runstatus database this version knows."""
    try:
        conn = connect(str(path), readonly=True)
    except sqlite3.Error as e:
        raise BackupError(f"{path} is not a database SQLite can open: {e}") from None
    try:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise BackupError(f"{path} is damaged: " + "; ".join(problems[:5]))
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if not 0 < version <= len(MIGRATIONS):
            raise BackupError(f"{path} is not a runstatus database this version knows (schema version {version}; "
                              f"this runstatus knows 1 to {len(MIGRATIONS)})")
        return _summary(conn, path.stat().st_size)
    except sqlite3.DatabaseError as e:
        raise BackupError(f"{path} is not a runstatus database: {e}") from None
    finally:
        conn.close()


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                    console=err, transient=True)


def backup_sqlite(source: Path, dest: Path) -> Summary:
    if not source.exists():
        raise BackupError(f"there is no database at {source}")
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    src = connect(str(source), readonly=True)
    try:
        # One snapshot for the whole copy: the read transaction stays open across the steps.
        src.execute("BEGIN")
        summary = _summary(src, 0)
        page_size = src.execute("PRAGMA page_size").fetchone()[0]
        target = sqlite3.connect(str(partial))
        try:
            with _progress() as progress:
                task = progress.add_task(f"backing up {source}", total=None)

                def step(status: int, remaining: int, total: int) -> None:
                    progress.update(task, total=total * page_size, completed=(total - remaining) * page_size)

                src.backup(target, pages=STEP_PAGES, progress=step)
        finally:
            target.close()
        src.execute("COMMIT")
    except sqlite3.Error as e:
        partial.unlink(missing_ok=True)
        raise BackupError(f"cannot back up {source} to {dest}: {e}") from None
    finally:
        src.close()
    try:
        checked = _check(partial)
        _fsync(partial)
        partial.replace(dest)
        _fsync(dest.parent)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return Summary(summary.schema_version, summary.last_event_sequence, summary.work_orders, checked.size_bytes)


@contextlib.contextmanager
def unused(path: Path) -> Iterator[sqlite3.Connection]:
    """Holds the database at path exclusively: every server connected to it holds it shared
    (WAL mode), so this fails while one runs, and none can open it meanwhile."""
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=0)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # what its -wal holds goes into the file first
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
    except sqlite3.OperationalError:
        conn.close()
        raise BackupError(f"{path} is in use (a runstatus server has it open): stop it first") from None
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


def restore_sqlite(backup: Path, target: Path) -> tuple[Summary, Path | None]:
    """Puts the backup at target. A database there (with its -wal and -shm) is moved aside, to
    TARGET.replaced-<time>, not deleted: which one it is, is said. Returns where it went."""
    summary = _check(backup)
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(backup, partial)
    _fsync(partial)
    aside = None
    try:
        if target.exists():
            aside = target.with_name(f"{target.name}.replaced-{time.strftime('%Y%m%dT%H%M%S')}")
            with unused(target):
                for suffix in ("-wal", "-shm", ""):  # the database last: its -wal is its own until then
                    with contextlib.suppress(FileNotFoundError):
                        Path(f"{target}{suffix}").rename(f"{aside}{suffix}")
        partial.replace(target)
        _fsync(target.parent)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return summary, aside


def _pg_program(name: str) -> str:
    """pg_dump or pg_restore: on PATH, or Debian's (the newest, as scripts/postgres.py finds initdb)."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                                                   key=lambda p: int(p.split("/")[4]), reverse=True)), None)
    if found is None:
        raise BackupError(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    return found


def _run(command: list[str], doing: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"{doing} failed: {done.stderr.strip() or done.returncode}")


def backup_postgres(url: str, dest: Path) -> Summary:
    """pg_dump of one snapshot, exported by a transaction of this process that also reads what
    the summary says: the summary is of the very data dumped."""
    import psycopg

    partial = dest.with_name(dest.name + ".partial")
    try:
        with psycopg.connect(url) as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
            version, last, orders = conn.execute(
                "SELECT (SELECT max(version) FROM schema_version), (SELECT coalesce(max(seq), 0) FROM events), "
                "(SELECT count(*) FROM work_orders)").fetchone()  # type: ignore[misc]
            _run([_pg_program("pg_dump"), "--format=custom", "--no-owner", f"--snapshot={snapshot}",
                  "--file", str(partial), "--dbname", url], "pg_dump")
        _fsync(partial)
        partial.replace(dest)
        _fsync(dest.parent)
    except psycopg.Error as e:
        raise BackupError(f"cannot back up the database: {e}") from None
    finally:
        partial.unlink(missing_ok=True)
    return Summary(int(version or 0), int(last), int(orders), dest.stat().st_size)


def restore_postgres(backup: Path, url: str) -> None:
    if not backup.is_file():
        raise BackupError(f"there is no backup at {backup}")
    _run([_pg_program("pg_restore"), "--no-owner", "--exit-on-error", "--single-transaction", "--dbname", url,
          str(backup)], "pg_restore (into an empty database)")


def backup_command(
    dest: Annotated[Path, typer.Argument(help="The file to write; it must not exist (unless --force).")],
    db: Annotated[str, typer.Option(envvar="RUNSTATUS_DB", help=DB_HELP)] = "runstatus.db",
    force: Annotated[bool, typer.Option("--force", help="Replace DEST if it exists.")] = False,
) -> None:
    """A consistent copy of the database, taken while servers go on writing it; `runstatus restore` puts it back.

    SQLite: its online backup, within one snapshot. PostgreSQL: pg_dump's custom format."""
    try:
        if dest.exists() and not force:
            raise BackupError(f"{dest} exists: give another file, or --force to replace it")
        if is_postgres_url(db):
            summary = backup_postgres(db, dest)
        else:
            summary = backup_sqlite(Path(sqlite_path(db)), dest)
        err.print(f"backed up to {dest}: {summary.line()}", highlight=False)
    except (BackupError, OSError) as e:
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
        if is_postgres_url(db):
            restore_postgres(backup, db)
            err.print(f"restored {backup} into {db.split('@')[-1]}")
        else:
            summary, aside = restore_sqlite(backup, Path(sqlite_path(db)))
            err.print(f"restored {backup} to {sqlite_path(db)}: {summary.line()}", highlight=False)
            if aside is not None:
                err.print(f"the database that was there is now {aside}")
    except (BackupError, OSError) as e:
        err.print(f"[red]cannot restore:[/] {e}", highlight=False)
        raise typer.Exit(1) from None
