"""Storage behind a narrow interface: `Store` runs units of work, `Tx` reads and writes rows.

The run rules live in the domain modules and only see `Tx`, so a second
backend (PostgreSQL) implements these two classes and nothing else changes.
"""

from .base import Store, StoredRun, Tx, WorkOrderKey
from .sqlite import SqliteStore

__all__ = ["SqliteStore", "Store", "StoredRun", "Tx", "WorkOrderKey"]
