"""The TypeScript client's powers against real servers on real ports (issue 28, items 3-6 for
TypeScript): the built package (clients/ts/dist, as a user imports it) runs
clients/ts/test/live/client.live.test.mjs under `node --test`, given the servers this test starts
in environment variables: a Worker running a workflow to SUCCESS, a failing step reported with
its name/subtype/severity, a cancel reaching the running step's AbortSignal through the
heartbeat's stop, a watch resumed across a server restart with no event lost or repeated (the
node program asks this test to restart the server through a small HTTP control), a mutating call
retried after UNAVAILABLE done once, fieldViolations, TLS with a private CA and a client
certificate, TokenService and NotificationService."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trustme

from harness import ServerProcess, offline_admin_token

ROOT = pathlib.Path(__file__).resolve().parents[1]
TS = ROOT / "clients" / "ts"
PROGRAM = "test/live/client.live.test.mjs"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (TS / "node_modules" / ".bin" / "tsc").exists(),
    reason="needs Node.js and the TypeScript client's npm packages (make tools)",
)


@pytest.fixture(scope="module")
def built() -> None:
    """dist/ from the sources as they are now (npm run build)."""
    out = subprocess.run(["npm", "run", "--silent", "build"], cwd=TS, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.fixture
def certs(tmp_path: pathlib.Path) -> dict[str, pathlib.Path]:
    """A private CA, a server certificate from it for localhost, and a client's."""
    ca = trustme.CA()
    server_cert = ca.issue_cert("localhost", "127.0.0.1")
    client_cert = ca.issue_cert("ts-worker@runstatus")
    paths = {name: tmp_path / name for name in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}
    ca.cert_pem.write_to_path(str(paths["ca.pem"]))
    server_cert.cert_chain_pems[0].write_to_path(str(paths["server.pem"]))
    server_cert.private_key_pem.write_to_path(str(paths["server.key"]))
    client_cert.cert_chain_pems[0].write_to_path(str(paths["client.pem"]))
    client_cert.private_key_pem.write_to_path(str(paths["client.key"]))
    return paths


class Control:
    """POST /restart stops the server (SIGTERM; SIGKILL if it has not stopped within 20 s, as
    on a loaded machine a clean stop has taken longer) and starts it again on the same
    database and port."""

    def __init__(self, server: ServerProcess) -> None:
        control = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                if self.path != "/restart":
                    self.send_error(404)
                    return
                try:
                    began = time.monotonic()
                    try:
                        server.stop(timeout=20)
                    except subprocess.TimeoutExpired:
                        server.kill()
                    control.stop_seconds.append(time.monotonic() - began)
                    server.start()
                    control.restarts += 1
                except Exception as e:  # noqa: BLE001 - told to the node program, which fails on it
                    self.send_error(500, str(e))
                    return
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.restarts = 0
        self.stop_seconds: list[float] = []
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def servers(tmp_path: pathlib.Path, certs: dict[str, pathlib.Path]) -> Iterator[tuple[dict[str, str], Control]]:
    """Every server the node program talks to, as its environment names them."""
    plain = ServerProcess(tmp_path / "plain.db", "--lease-seconds", "2", "--sweep-seconds", "0.2")
    tls_args = ("--tls-cert", str(certs["server.pem"]), "--tls-key", str(certs["server.key"]))
    tls = ServerProcess(tmp_path / "tls.db", *tls_args)
    mtls = ServerProcess(tmp_path / "mtls.db", *tls_args, "--tls-client-ca", str(certs["ca.pem"]))
    admin_token = offline_admin_token(tmp_path / "auth.db")
    auth = ServerProcess(tmp_path / "auth.db", "--auth")
    # Request ids kept a second, so a project may keep its ended work orders a second: a cursor expires.
    pruning = ServerProcess(tmp_path / "pruning.db", "--request-id-seconds", "1", "--sweep-seconds", "0.2")
    started: list[ServerProcess] = []
    control: Control | None = None
    try:
        for server in (plain, tls, mtls, auth, pruning):
            started.append(server.start())
        control = Control(plain)
        yield {
            "RUNSTATUS_ADDRESS": plain.address,
            "RUNSTATUS_CONTROL": control.url,
            "RUNSTATUS_TLS_ADDRESS": tls.address,
            "RUNSTATUS_MTLS_ADDRESS": mtls.address,
            "RUNSTATUS_CA": str(certs["ca.pem"]),
            "RUNSTATUS_CLIENT_CERT": str(certs["client.pem"]),
            "RUNSTATUS_CLIENT_KEY": str(certs["client.key"]),
            "RUNSTATUS_AUTH_ADDRESS": auth.address,
            "RUNSTATUS_ADMIN_TOKEN": admin_token,
            "RUNSTATUS_PRUNING_ADDRESS": pruning.address,
        }, control
    finally:
        if control is not None:
            control.close()
        for server in started:
            server.stop()


def test_typescript_client_against_real_servers(built: None, servers: tuple[dict[str, str], Control]) -> None:
    env, control = servers
    out = subprocess.run(
        ["node", "--test", "--test-reporter=spec", PROGRAM], cwd=TS, capture_output=True, text=True,
        timeout=300, env={**os.environ, **env, "NO_COLOR": "1"},
    )
    print(out.stdout[-20_000:])
    print(f"the server stopped in {control.stop_seconds} s")
    assert out.returncode == 0, out.stdout[-20_000:] + out.stderr[-5_000:]
    assert "ℹ fail 0" in out.stdout, out.stdout[-5_000:]
    assert control.restarts == 1, "the watch test restarted the server once"


def test_api_reference_builds_without_warnings(tmp_path: pathlib.Path) -> None:
    """typedoc (typedoc.config.mjs treats warnings as errors): every export documented, no broken link."""
    out = subprocess.run(["npx", "--no-install", "typedoc", "--out", str(tmp_path / "api")], cwd=TS,
                         capture_output=True, text=True, timeout=300, env={**os.environ, "NO_COLOR": "1"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "warning" not in out.stdout + out.stderr
    assert (tmp_path / "api" / "classes" / "Worker.html").is_file()


def test_readme_gives_the_install_line_and_the_worker_example() -> None:
    readme = (TS / "README.md").read_text(encoding="utf-8")
    assert "npm install @runstatus/client @bufbuild/protobuf" in readme
    assert "new Worker(rs" in readme and "npm run docs" in readme
