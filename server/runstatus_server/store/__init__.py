"""Storage behind a narrow interface: `Store` runs units of work, `Tx` reads and writes rows.

The run rules live in the domain modules and only see `Tx`, so a second
backend (PostgreSQL) implements these two classes and nothing else changes.
What every backend promises is written in store/base.py.
"""

from .base import Store, StoredRun, Tx, WorkOrderKey
from .sqlite import SqliteStore, open_database


def open_store(db: str, *, shared: bool = False) -> Store:
    """The store for --db (not started). `shared`: other server processes write it too."""
    return SqliteStore(db, shared=shared)


def prepare(db: str) -> None:
    """Creates the database at --db, or brings its schema up to date, before servers open it."""
    open_database(db).close()


__all__ = ["SqliteStore", "Store", "StoredRun", "Tx", "WorkOrderKey", "open_store", "prepare"]
