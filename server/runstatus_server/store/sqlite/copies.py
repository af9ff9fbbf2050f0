"""Copies of an SQLite database: a backup of a live one, its restore, and the one-off rewrite that
gives an older file incremental auto-vacuum (the commands are backup.py's and vacuum.py's).

The backup is SQLite's online backup, made in steps inside one read transaction on the source. In
WAL mode a reader sees one snapshot and never blocks the writers, and a backup whose source
connection holds that snapshot is not restarted by their commits: the copy is the database exactly
as it was when the backup began. It is written beside DEST, checked (PRAGMA integrity_check), made
durable and only then renamed to DEST: a DEST that exists is a complete, checked backup.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..base import CopyError, CopySummary
from .engine import connect
from .migrations import MIGRATIONS

STEP_PAGES = 1024  # pages copied per step: 4 MiB at SQLite's default page size
INCREMENTAL = 2  # PRAGMA auto_vacuum's value

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


def _summary(conn: sqlite3.Connection, size_bytes: int) -> CopySummary:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    last = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
    orders = conn.execute("SELECT count(*) FROM work_orders").fetchone()[0]
    return CopySummary(int(version), int(last), int(orders), size_bytes)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check(path: Path) -> CopySummary:
    """The copy at path opens, is intact and is a runstatus database this version knows."""
    try:
        conn = connect(str(path), readonly=True)
    except sqlite3.Error as e:
        raise CopyError(f"{path} is not a database SQLite can open: {e}") from None
    try:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise CopyError(f"{path} is damaged: " + "; ".join(problems[:5]))
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if not 0 < version <= len(MIGRATIONS):
            raise CopyError(f"{path} is not a runstatus database this version knows (schema version {version}; "
                            f"this runstatus knows 1 to {len(MIGRATIONS)})")
        return _summary(conn, path.stat().st_size)
    except sqlite3.DatabaseError as e:
        raise CopyError(f"{path} is not a runstatus database: {e}") from None
    finally:
        conn.close()


def backup(source: Path, dest: Path, progress: Progress) -> CopySummary:
    if not source.exists():
        raise CopyError(f"there is no database at {source}")
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
            src.backup(target, pages=STEP_PAGES,
                       progress=lambda _, remaining, total: progress((total - remaining) * page_size, total * page_size))
        finally:
            target.close()
        src.execute("COMMIT")
    except sqlite3.Error as e:
        partial.unlink(missing_ok=True)
        raise CopyError(f"cannot back up {source} to {dest}: {e}") from None
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
    return CopySummary(summary.schema_version, summary.last_event_sequence, summary.work_orders, checked.size_bytes)


@contextlib.contextmanager
def _unused(path: Path) -> Iterator[sqlite3.Connection]:
    """Holds the database at path exclusively: every server connected to it holds it shared
    (WAL mode), so this fails while one runs, and none can open it meanwhile."""
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=0)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # what its -wal holds goes into the file first
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
    except sqlite3.OperationalError:
        conn.close()
        raise CopyError(f"{path} is in use (a runstatus server has it open): stop it first") from None
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


def restore(backup: Path, target: Path) -> tuple[CopySummary, Path | None]:
    """Puts the backup at target. A database there (with its -wal and -shm) is moved aside, to
    TARGET.replaced-<time>, not deleted. Returns the backup's summary and where that one went."""
    summary = _check(backup)
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(backup, partial)
    _fsync(partial)
    aside = None
    try:
        if target.exists():
            aside = target.with_name(f"{target.name}.replaced-{time.strftime('%Y%m%dT%H%M%S')}")
            with _unused(target):
                for suffix in ("-wal", "-shm", ""):  # the database last: its -wal is its own until then
                    with contextlib.suppress(FileNotFoundError):
                        Path(f"{target}{suffix}").rename(f"{aside}{suffix}")
        partial.replace(target)
        _fsync(target.parent)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return summary, aside


def give_back_freed_space(path: Path) -> tuple[int, int] | None:
    """Rewrites an older database (made before runstatus set incremental auto-vacuum on new files,
    which SQLite records only when a file's first table is made) whole, with the servers stopped:
    (bytes before, after), or None if it has it already."""
    if not path.is_file():
        raise CopyError(f"there is no database at {path}")
    before = path.stat().st_size
    try:
        with _unused(path) as conn:
            if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == INCREMENTAL:
                return None
            conn.execute("COMMIT")  # the exclusive lock stays: locking_mode is EXCLUSIVE
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != INCREMENTAL:
                raise CopyError(f"{path} was rewritten but did not take incremental auto-vacuum")
    except sqlite3.Error as e:
        raise CopyError(f"cannot rewrite {path}: {e}") from None
    return before, path.stat().st_size
