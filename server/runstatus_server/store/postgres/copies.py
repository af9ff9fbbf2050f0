"""Copies of a PostgreSQL database: pg_dump's custom format of one snapshot (the writers go on),
restored by pg_restore into an empty database (the commands are backup.py's)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import psycopg

from ..base import CopyError, CopySummary


def _pg_program(name: str) -> str:
    """pg_dump or pg_restore: on PATH, or Debian's newest (as scripts/postgres.py finds initdb)."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                                                   key=lambda p: int(p.split("/")[4]), reverse=True)), None)
    if found is None:
        raise CopyError(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    return found


def _run(command: list[str], doing: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise CopyError(f"{doing} failed: {done.stderr.strip() or done.returncode}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup(url: str, dest: Path) -> CopySummary:
    """pg_dump of one snapshot, exported by a transaction of this process that also reads what
    the summary says: the summary is of the very data dumped."""
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
        raise CopyError(f"cannot back up the database: {e}") from None
    finally:
        partial.unlink(missing_ok=True)
    return CopySummary(int(version or 0), int(last), int(orders), dest.stat().st_size)


def restore(backup: Path, url: str) -> None:
    if not backup.is_file():
        raise CopyError(f"there is no backup at {backup}")
    _run([_pg_program("pg_restore"), "--no-owner", "--exit-on-error", "--single-transaction", "--dbname", url,
          str(backup)], "pg_restore (into an empty database)")
