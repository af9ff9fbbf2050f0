from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from harness import Client, ServerProcess, running_server


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
