"""SQLite's DatabaseReader (store/reader.py): a read-only connection, each page in a read
transaction (WAL: a snapshot that never blocks the writers)."""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from ..reader import ReadError
from .engine import connect


class SqliteReader:
    MARK = "?"
    STEP_ORDER = "s.rowid"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    @classmethod
    def connect(cls, path: str) -> SqliteReader:
        if not os.path.isfile(path):
            raise ReadError(f"there is no database at {path}")
        try:
            return cls(connect(path, readonly=True))
        except sqlite3.Error as e:
            raise ReadError(f"cannot open {path}: {e}") from None

    def rows(self, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise ReadError(f"cannot read the database: {e}") from None

    def begin(self) -> None:
        self.rows("BEGIN", [])

    def end(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def has_index(self, table: str, column: str) -> bool:
        for _, name, *_ in self.rows(f"PRAGMA index_list({table})", []):
            columns = self.rows(f"PRAGMA index_info({name!r})", [])
            if columns and columns[0][2] == column:
                return True
        return False

    def close(self) -> None:
        self.conn.close()
