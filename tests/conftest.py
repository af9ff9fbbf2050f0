from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

import harness
from harness import Client, ServerProcess, running_server


def pytest_report_header() -> str:
    return f"runstatus servers on: {harness.BACKEND} (RUNSTATUS_TEST_DB)"


# Tests of a client's own behaviour (its library, its package, its examples): the database behind
# the server they talk to changes nothing in them, so they run once, in the SQLite run; every
# client still meets both backends in the contract suite (make cross-language-postgres).
CLIENT_SIDE = {"test_client_go.py", "test_client_ts.py", "test_client_java.py", "test_client_package.py",
               "test_install_go.py", "test_install_ts.py", "test_install_java.py", "test_examples.py",
               "test_openfn_worker.py"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under RUNSTATUS_TEST_DB=postgres, tests about the SQLite database itself are skipped, and
    the client-side ones (CLIENT_SIDE), which the SQLite run has run."""
    if not harness.ON_POSTGRES:
        return
    for item in items:
        marker = item.get_closest_marker("sqlite_only")
        if marker is not None:
            why = marker.args[0] if marker.args else marker.kwargs.get("reason", "about SQLite itself")
            item.add_marker(pytest.mark.skip(reason=f"sqlite only: {why}"))
        elif item.path.name in CLIENT_SIDE:
            item.add_marker(pytest.mark.skip(reason="client side: run once, with the SQLite run"))


def pytest_sessionfinish() -> None:
    """The session's PostgreSQL (tests/pg.py), if it started one, goes with the session."""
    import pg

    pg.remove_session_postgres()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server per test module, with short leases so that LOST is quick to see."""
    tmp = tmp_path_factory.mktemp("server")
    with running_server(tmp, "--lease-seconds", "2", "--sweep-seconds", "0.2") as (srv, _):
        yield srv


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    c = Client(server.address)
    c.new_project()
    yield c
    c.close()


@pytest.fixture
def tmp(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path
