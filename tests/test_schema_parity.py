"""The two schemas are one: SQLite's and PostgreSQL's migrations, run from empty, make the same
tables, the same columns (by name and meaning: a small set of kinds, nullability, default) and
the same indexes (by table, columns, uniqueness and condition), and every column list of the
rows module (store/rows.py, the `*_COLUMNS`) names columns both have, all an INSERT needs.

The two histories are numbered apart and cannot be renumbered (databases in use went through
them); this test is what holds them together. Where the two differ on purpose, the difference
is spelled out below, and the test fails too once it is gone.
"""

from __future__ import annotations

import pathlib
import re
from dataclasses import dataclass

import psycopg
import pytest

from runstatus_server.store import prepare, rows
from runstatus_server.store.postgres.rows import PostgresTx
from runstatus_server.store.sqlite.engine import open_database
from runstatus_server.store.sqlite.rows import SqliteTx
from runstatus_server.store.stats import STATS_COUNT_TABLES

pytestmark = pytest.mark.postgres

pytest_plugins = ["pg"]

# Declared types by what they mean to the rows module.
SQLITE_KINDS = {"INTEGER": "integer", "TEXT": "text", "BLOB": "bytes", "REAL": "real", "BOOLEAN": "bool"}
POSTGRES_KINDS = {"smallint": "integer", "integer": "integer", "bigint": "integer", "text": "text", "bytea": "bytes",
                  "real": "real", "double precision": "real", "boolean": "bool"}
AUTO = "numbered by the database"  # SQLite's INTEGER PRIMARY KEY, PostgreSQL's identity column


@dataclass(frozen=True)
class Column:
    kind: str
    not_null: bool
    default: str | None


@dataclass(frozen=True)
class Index:
    columns: tuple[str, ...]  # "name" or "name DESC"
    unique: bool
    where: str | None  # the condition of a partial index, spelled alike for both (_condition)


@dataclass
class Schema:
    columns: dict[str, dict[str, Column]]  # by table, then column
    indexes: dict[str, set[Index]]  # by table; a primary key or UNIQUE constraint is an index too


def _condition(sql: str | None) -> str | None:
    """A partial index's condition, as both databases spell it alike: PostgreSQL writes
    `x IN (1, 2)` as `x = ANY (ARRAY[1, 2])` and `!=` as `<>`, and adds parentheses."""
    if sql is None:
        return None
    sql = re.sub(r"(\w+) = ANY \(ARRAY\[([^\]]*)\]\)", r"\1 IN (\2)", sql).replace("<>", "!=")
    return re.sub(r"[\s()]", "", sql).lower()


def sqlite_schema(path: pathlib.Path) -> Schema:
    conn = open_database(str(path))
    try:
        schema = Schema({}, {})
        tables = [t for (t,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        for table in tables:
            info = conn.execute(f"PRAGMA table_info({table})").fetchall()  # cid, name, type, notnull, default, pk
            keys = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5]]
            rowid_key = len(keys) == 1 and next(r[2] for r in info if r[1] == keys[0]) == "INTEGER"
            schema.columns[table] = {
                name: Column(SQLITE_KINDS[kind], bool(not_null or pk), AUTO if rowid_key and pk else default)
                for _, name, kind, not_null, default, pk in info
            }
            # An INTEGER PRIMARY KEY is the rowid, the table's own order: an index with no entry of its own.
            indexes = {Index((keys[0],), True, None)} if rowid_key else set()
            for _, name, unique, _, partial in conn.execute(f"PRAGMA index_list({table})"):
                columns = tuple(f"{c} DESC" if desc else c for _, _, c, desc, _, key
                                in conn.execute(f"PRAGMA index_xinfo({name})") if key)
                where = None
                if partial:
                    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]
                    where = re.split(r"\bWHERE\b", sql, flags=re.I)[1]
                indexes.add(Index(columns, bool(unique), _condition(where)))
            schema.indexes[table] = indexes
        return schema
    finally:
        conn.close()


def postgres_schema(url: str) -> Schema:
    prepare(url)
    schema = Schema({}, {})
    with psycopg.connect(url) as conn:
        for table, name, kind, nullable, default, identity in conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity "
            "FROM information_schema.columns WHERE table_schema = 'public' AND table_name != 'schema_version'"
        ):
            default = AUTO if identity == "YES" else default.split("::")[0] if default else None
            schema.columns.setdefault(table, {})[name] = Column(POSTGRES_KINDS[kind], nullable == "NO", default)
        for table, unique, columns, options, where in conn.execute(
            "SELECT t.relname, ix.indisunique, "
            "array(SELECT a.attname FROM unnest(ix.indkey) WITH ORDINALITY k(n, i) "
            "      JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n ORDER BY k.i), "
            "ix.indoption::int2[], pg_get_expr(ix.indpred, ix.indrelid) "
            "FROM pg_index ix JOIN pg_class t ON t.oid = ix.indrelid JOIN pg_namespace s ON s.oid = t.relnamespace "
            "WHERE s.nspname = 'public' AND t.relname != 'schema_version'"
        ):
            named = tuple(f"{c} DESC" if option & 1 else c for c, option in zip(columns, options))
            schema.indexes.setdefault(table, set()).add(Index(named, unique, _condition(where)))
    return schema


def as_sqlite_has_it(schema: Schema) -> Schema:
    """PostgreSQL's schema with its deliberate differences from SQLite's undone, each checked
    to be there still (a difference that is gone must leave this list)."""
    # Step runs are read in the order they were started: by SQLite's rowid, which every index of
    # a rowid table ends with unseen; PostgreSQL has a column for it (the rows' STEP_ORDER hook).
    assert (SqliteTx.STEP_ORDER, PostgresTx.STEP_ORDER) == ("rowid", "seq")
    assert schema.columns["step_runs"].pop("seq") == Column("integer", True, AUTO)
    seq_key = Index(("seq",), True, None)
    assert seq_key in schema.indexes["step_runs"]
    schema.indexes["step_runs"] = {Index(i.columns[:-1], i.unique, i.where) if i.columns[-1] == "seq" else i
                                   for i in schema.indexes["step_runs"] - {seq_key}}
    # PostgreSQL keeps the count buckets as rows of changes that the sweeper merges (its
    # migration 3, PostgresTx.merge_count_deltas): a `pending` column, and an index of each
    # bucket's rows and one of the pending rows where SQLite has one row a bucket, its key.
    for table in rows.COUNT_TABLES:
        assert schema.columns[table].pop("pending") == Column("bool", True, "false")
        bucket = ("project_id", "workflow_id", "status", "hour")
        assert schema.indexes[table] == {Index(bucket, False, None), Index(bucket, False, "pending")}
        schema.indexes[table] = {Index(bucket, True, None)}
    # The statistics' hour buckets alike (store/stats.py; postgres/stats.py merge_deltas), each by its own key.
    for table, key in STATS_COUNT_TABLES.items():
        assert schema.columns[table].pop("pending") == Column("bool", True, "false")
        assert schema.indexes[table] == {Index(key, False, None), Index(key, False, "pending")}
        schema.indexes[table] = {Index(key, True, None)}
    return schema


def test_both_migrations_make_the_same_schema(tmp_path: pathlib.Path, pg_url: str) -> None:
    lite, pg = sqlite_schema(tmp_path / "parity.db"), as_sqlite_has_it(postgres_schema(pg_url))
    assert sorted(lite.columns) == sorted(pg.columns)
    for table in lite.columns:
        assert lite.columns[table] == pg.columns[table], table
        assert lite.indexes.get(table, set()) == pg.indexes.get(table, set()), table


def _plural(name: str) -> str:
    """A table's name from its column list's (NOTIFICATION_DELIVERY_COLUMNS: notification_deliveries)."""
    return f"{name[:-1]}ies" if name.endswith("y") else f"{name}s"


def test_the_rows_module_column_lists_fit_both_schemas(tmp_path: pathlib.Path, pg_url: str) -> None:
    """Each `*_COLUMNS` list of store/rows.py (PROJECT_COLUMNS for projects, ...) names columns
    of its table on both backends, and every column an INSERT must give (one without a default);
    so do the columns a StoredRun is read from."""
    written = {_plural(name.removesuffix("_COLUMNS").lower()): columns
               for name, columns in vars(rows).items() if name.endswith("_COLUMNS")}
    for schema in (sqlite_schema(tmp_path / "lists.db"), postgres_schema(pg_url)):
        for table, columns in written.items():
            have = schema.columns.get(table, {})
            assert set(columns) <= set(have), (table, set(columns) - set(have))
            needed = {name for name, column in have.items() if column.default is None}
            assert needed <= set(columns), (table, needed - set(columns))
        assert set(rows.STORED_RUN.split(", ")) <= set(schema.columns["runs"])
