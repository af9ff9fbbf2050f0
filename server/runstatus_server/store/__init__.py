"""Storage behind a narrow interface: `Store` runs units of work, `Tx` reads and writes rows.

The run rules live in the domain modules and only see `Tx`. What every backend promises is
written in base.py; the rows, once for every database, in rows.py. Each database is a package
of the same files, which never import each other: engine.py (runs units of work), rows.py (the
hooks of store/rows.py and what that database does its own way) and migrations.py (its schema):
sqlite/ (the embedded default) and postgres/ (several servers on one database; locks.py too).
"""

from collections.abc import Callable
from pathlib import Path

from .base import CopyError, CopySummary, Store, StoredRun, Tx, WorkOrderKey
from .postgres import copies as postgres_copies
from .postgres.engine import PostgresStore, is_postgres_url
from .sqlite import copies as sqlite_copies
from .sqlite.engine import SqliteStore, open_database


def sqlite_path(db: str) -> str:
    """The file of an SQLite --db: a path, or `sqlite:` and a path."""
    return db.removeprefix("sqlite:")


def open_store(db: str, *, shared: bool = False) -> Store:
    """The store for --db (not started): a postgresql:// (or postgres://) URL selects
    PostgreSQL; a file path, or `sqlite:` and a path, SQLite. `shared`: other server
    processes write it too (PostgreSQL is shared anyway)."""
    if is_postgres_url(db):
        return PostgresStore(db, shared=shared)
    return SqliteStore(sqlite_path(db), shared=shared)


def prepare(db: str) -> None:
    """Creates the database at --db, or brings its schema up to date, before servers open it."""
    if is_postgres_url(db):
        PostgresStore(db).prepare()
    else:
        open_database(sqlite_path(db)).close()


def backup(db: str, dest: Path, progress: Callable[[int, int], None]) -> CopySummary:
    """A consistent copy of the live database at --db in the file dest (store/*/copies.py);
    progress(bytes done, bytes in all) as it goes, where the backend can tell."""
    if is_postgres_url(db):
        return postgres_copies.backup(db, dest)
    return sqlite_copies.backup(Path(sqlite_path(db)), dest, progress)


def restore(backup_file: Path, db: str) -> tuple[CopySummary | None, Path | None]:
    """Puts a backup in place of the database at --db, which no server may be using (SQLite: a
    file there is moved aside, and where to is returned), or into an empty PostgreSQL database."""
    if is_postgres_url(db):
        postgres_copies.restore(backup_file, db)
        return None, None
    return sqlite_copies.restore(backup_file, Path(sqlite_path(db)))


def give_back_freed_space(db: str) -> tuple[int, int] | None:
    """SQLite: rewrites an older file so that freed pages go back to the file system ((bytes
    before, after); None if it does so already). PostgreSQL needs none: None."""
    if is_postgres_url(db):
        return None
    return sqlite_copies.give_back_freed_space(Path(sqlite_path(db)))


__all__ = ["CopyError", "CopySummary", "backup", "give_back_freed_space", "restore", "PostgresStore", "SqliteStore", "Store", "StoredRun", "Tx", "WorkOrderKey", "is_postgres_url",
           "open_store", "prepare", "sqlite_path"]
