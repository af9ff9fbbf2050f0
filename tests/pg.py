"""A real PostgreSQL for the tests (scripts/postgres.py), as pytest fixtures.

A test module that needs it says `pytest_plugins = ["pg"]`: the cluster is started once per
session (initdb into a temporary folder, a free loopback port) and removed at the end; each
test gets a database of its own (`pg_url`), dropped after it. The same cluster serves the
servers of the whole suite under RUNSTATUS_TEST_DB=postgres (harness.py: each ServerProcess
gets a database of its own on it).
"""

from __future__ import annotations

import atexit
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import harness

local_postgres = harness.postgres_script()
LocalPostgres = local_postgres.LocalPostgres
PostgresUnavailable = local_postgres.PostgresUnavailable


def start_postgres(**kwargs: Any) -> Any:
    """A started LocalPostgres; the test fails in one line if there can be none."""
    try:
        return LocalPostgres(**kwargs).start()
    except PostgresUnavailable as e:
        pytest.fail(f"no PostgreSQL for the tests: {e}", pytrace=False)


_session: Any = None


def session_postgres() -> Any:
    """The session's PostgreSQL, started at its first use, removed when the session ends
    (conftest.py) or, at the latest, when the process exits. Without fsync: the tests never
    crash the machine under it, and a server killed or a PostgreSQL stopped loses nothing
    that the page cache holds."""
    global _session
    if _session is None:
        _session = start_postgres(fsync=False)
        atexit.register(remove_session_postgres)
    return _session


def remove_session_postgres() -> None:
    global _session
    if _session is not None:
        _session.remove()
        _session = None


@pytest.fixture(scope="session")
def postgres() -> Any:
    return session_postgres()


@pytest.fixture
def pg_url(postgres: Any) -> Iterator[str]:
    """A fresh, empty database for one test: its postgresql:// URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = postgres.create_database(name)
    yield url
    postgres.drop_database(name)


@pytest.fixture
def own_postgres() -> Iterator[Any]:
    """A PostgreSQL of the test's own, which it may stop and start again."""
    pg = start_postgres()
    try:
        yield pg
    finally:
        pg.remove()
