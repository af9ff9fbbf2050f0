"""A read-only connection for a command that reads a whole database from outside any server (runstatus
export): its SQL is written once for both databases, with the dialect's parameter mark and the
column that keeps step runs in the order they were started; each database's connection is its own
package's (sqlite/reader.py, postgres/reader.py). Each page of reads is its own transaction
(`begin`, `end`): a consistent page, and no snapshot held for the whole walk."""

from __future__ import annotations

from typing import Any, Protocol


class ReadError(Exception):
    """The database cannot be opened or read; the message says why."""


class DatabaseReader(Protocol):
    MARK: str  # the parameter mark: "?" or "%s"
    STEP_ORDER: str  # of step_runs aliased s: the order they were started in

    def rows(self, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
        """A query's rows (text parameters as the store writes them)."""
        ...

    def begin(self) -> None: ...
    def end(self) -> None:
        """Ends the read transaction `begin` opened (nothing to commit)."""
        ...
    def has_index(self, table: str, column: str) -> bool:
        """Whether an index of the table starts with the column."""
        ...
    def close(self) -> None: ...


def open_reader(db: str) -> DatabaseReader:
    """A reader of the database at --db (a SQLite file or a PostgreSQL URL); ReadError if none."""
    from .postgres.engine import is_postgres_url

    if is_postgres_url(db):
        from .postgres.reader import PostgresReader

        return PostgresReader.connect(db)
    from .sqlite.reader import SqliteReader

    return SqliteReader.connect(db.removeprefix("sqlite:"))
