"""Storage behind a narrow interface: `Store` runs units of work, `Tx` reads and writes rows.

The run rules live in the domain modules and only see `Tx`. What every backend promises is
written in base.py; the rows, once for every database, in rows.py. Each database is a package
of the same files, which never import each other: engine.py (runs units of work), rows.py (the
hooks of store/rows.py and what that database does its own way) and migrations.py (its schema):
sqlite/ (the embedded default) and postgres/ (several servers on one database; locks.py too).
"""

from .base import Store, StoredRun, Tx, WorkOrderKey
from .postgres.engine import PostgresStore, is_postgres_url
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


__all__ = ["PostgresStore", "SqliteStore", "Store", "StoredRun", "Tx", "WorkOrderKey", "is_postgres_url",
           "open_store", "prepare", "sqlite_path"]
