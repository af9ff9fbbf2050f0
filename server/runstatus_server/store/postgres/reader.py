"""PostgreSQL's DatabaseReader (store/reader.py): each page in a REPEATABLE READ, READ ONLY
transaction of its own, so no snapshot is held across the whole walk (which would hold back vacuum)."""

from __future__ import annotations

from typing import Any

import psycopg

from ..reader import ReadError
from .rows import _text


class PostgresReader:
    MARK = "%s"
    STEP_ORDER = "s.seq"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    @classmethod
    def connect(cls, url: str) -> PostgresReader:
        try:
            conn = psycopg.connect(url, autocommit=False)
        except psycopg.Error as e:
            raise ReadError(f"cannot connect to the database: {e}") from None
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        return cls(conn)

    def rows(self, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
        try:
            # Text as the store writes it (NUL escaped): ids and names compare as stored.
            return self.conn.execute(sql, [_text(a) for a in args]).fetchall()
        except psycopg.Error as e:
            raise ReadError(f"cannot read the database: {e}") from None

    def begin(self) -> None:
        pass  # psycopg begins the transaction at the first statement

    def end(self) -> None:
        self.conn.rollback()  # a read: nothing to commit

    def has_index(self, table: str, column: str) -> bool:
        found = self.rows("SELECT indexdef FROM pg_indexes WHERE tablename = %s", [table])
        self.end()
        return any(f"({column}" in d for (d,) in found)

    def close(self) -> None:
        self.conn.close()
