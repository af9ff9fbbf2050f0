"""TLS and mTLS by flags, a full disk answered UNAVAILABLE and recovered from, Prometheus metrics."""

from __future__ import annotations

import pathlib
import sqlite3
import subprocess
import time
from collections.abc import Iterator

import grpc
import pytest
import trustme

from harness import Client as StubClient
from harness import ServerProcess, free_port, rpc_error, scrape
from runstatus import Client
from runstatus.errors import Unavailable
from runstatus.v1 import work_order_service_pb2 as wo_pb


@pytest.fixture
def certs(tmp_path: pathlib.Path) -> dict[str, pathlib.Path]:
    ca = trustme.CA()
    server_cert = ca.issue_cert("localhost", "127.0.0.1")
    client_cert = ca.issue_cert("worker-1@runstatus")
    other_ca = trustme.CA()
    paths = {
        "ca": tmp_path / "ca.pem", "cert": tmp_path / "server.pem", "key": tmp_path / "server.key",
        "client_cert": tmp_path / "client.pem", "client_key": tmp_path / "client.key",
        "other_cert": tmp_path / "other.pem", "other_key": tmp_path / "other.key",
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    server_cert.private_key_pem.write_to_path(str(paths["key"]))
    server_cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    client_cert.private_key_pem.write_to_path(str(paths["client_key"]))
    client_cert.cert_chain_pems[0].write_to_path(str(paths["client_cert"]))
    stranger = other_ca.issue_cert("stranger")
    stranger.private_key_pem.write_to_path(str(paths["other_key"]))
    stranger.cert_chain_pems[0].write_to_path(str(paths["other_cert"]))
    return paths


def _tls_address(server: ServerProcess) -> str:
    return f"localhost:{server.port}"


def test_tls(tmp_path: pathlib.Path, certs: dict[str, pathlib.Path]) -> None:
    server = ServerProcess(tmp_path / "tls.db", "--tls-cert", str(certs["cert"]), "--tls-key", str(certs["key"])).start()
    try:
        with Client(_tls_address(server), root_certificates=certs["ca"].read_bytes(), retries=1, timeout=10) as rs:
            assert rs.classify("TypeError").rule == "seed:TypeError"
        with Client(_tls_address(server), retries=1, timeout=3) as plain:  # plaintext to a TLS port
            with pytest.raises(Unavailable):
                plain.classify("TypeError")
    finally:
        server.stop()


def test_mtls(tmp_path: pathlib.Path, certs: dict[str, pathlib.Path]) -> None:
    server = ServerProcess(tmp_path / "mtls.db", "--tls-cert", str(certs["cert"]), "--tls-key", str(certs["key"]),
                           "--tls-client-ca", str(certs["ca"])).start()
    roots = certs["ca"].read_bytes()
    try:
        mine = (certs["client_cert"].read_bytes(), certs["client_key"].read_bytes())
        with Client(_tls_address(server), root_certificates=roots, client_certificate=mine, retries=1) as rs:
            assert rs.classify("OomError").aborts_run
        for client_certificate in (None, (certs["other_cert"].read_bytes(), certs["other_key"].read_bytes())):
            with Client(_tls_address(server), root_certificates=roots, client_certificate=client_certificate,
                        retries=1, timeout=3) as refused:
                with pytest.raises(Unavailable):
                    refused.classify("OomError")
    finally:
        server.stop()


def test_tls_flags_go_together(tmp_path: pathlib.Path, certs: dict[str, pathlib.Path]) -> None:
    with pytest.raises(RuntimeError, match="--tls-key"):
        ServerProcess(tmp_path / "x.db", "--tls-cert", str(certs["cert"])).start()


@pytest.fixture
def small_disk(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    """A 4 MiB tmpfs of our own (the tests run as root, as CI does)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.sqlite_only("fills the disk under the SQLite file")
def test_a_full_disk_is_unavailable_and_recovers(small_disk: pathlib.Path) -> None:
    server = ServerProcess(small_disk / "full.db").start()
    c = StubClient(server.address)
    try:
        wf = c.workflow(["a"])
        kept = c.work_order(wf).work_order.id
        junk = small_disk / "junk"
        with open(junk, "wb", buffering=0) as f:  # unbuffered: nothing left to flush on a full disk
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        errors = []
        for _ in range(20):
            try:
                c.work_order(wf, {"blob": "y" * 20_000})
            except grpc.RpcError as e:
                errors.append(e)
        assert errors, "the disk never filled up"
        assert {e.code() for e in errors} == {grpc.StatusCode.UNAVAILABLE}
        assert "disk is full" in errors[0].details()
        # Reads still work, and nothing acknowledged was lost.
        assert c.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=kept)).work_order.id == kept
        junk.unlink()  # the fault goes
        assert c.work_order(wf).work_order.status == 1
    finally:
        c.close()
        server.stop()
    with sqlite3.connect(small_disk / "full.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"



def test_prometheus_metrics(tmp_path: pathlib.Path) -> None:
    port = free_port()
    server = ServerProcess(tmp_path / "m.db", "--metrics-port", str(port), "--lease-seconds", "0.3",
                           "--sweep-seconds", "0.1").start()
    c = StubClient(server.address)
    try:
        wf = c.workflow(["a"])
        created = c.work_order(wf)
        c.claim_run(created.run.id)  # never started: its lease expires, the run is LOST
        assert rpc_error(c.work_orders.GetRun, wo_pb.GetRunRequest(run_id="nope")).code() == grpc.StatusCode.NOT_FOUND
        deadline = time.monotonic() + 10
        while True:
            text = scrape(port)
            if 'runstatus_leases_expired_total 1.0' in text or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert 'runstatus_rpcs_total{code="OK",method="WorkOrderService.CreateWorkOrder"} 1.0' in text
        assert 'runstatus_rpcs_total{code="NOT_FOUND",method="WorkOrderService.GetRun"} 1.0' in text
        assert 'runstatus_rpc_seconds_count{method="WorkflowService.CreateWorkflow"} 1.0' in text
        assert 'runstatus_leases_expired_total 1.0' in text
        assert 'runstatus_run_status_changes_total{status="lost"} 1.0' in text
        assert 'runstatus_work_orders{status="lost"} 1.0' in text
        assert "runstatus_commit_batch_size_count" in text
    finally:
        c.close()
        server.stop()
