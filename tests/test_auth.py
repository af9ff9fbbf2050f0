"""Authentication and isolation: tokens by project and role, over a real server with --auth."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness import Client, ServerProcess, db_arg, details, offline_admin_token, query, rpc_error
from runstatus.v1 import project_service_pb2 as project_pb
from runstatus.v1 import token_service_pb2 as token_pb
from runstatus.v1 import token_service_pb2_grpc
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1 import worker_service_pb2 as worker_pb
from runstatus.v1.project_pb2 import Project
from runstatus.v1.token_pb2 import Role

RUNSTATUS = pathlib.Path(sys.executable).with_name("runstatus")


class Authed(Client):
    """A client whose every call carries a bearer token."""

    def __init__(self, address: str, secret: str, project_id: str = "") -> None:
        super().__init__(address, project_id)
        header = (("authorization", f"Bearer {secret}"),)
        for stub in (self.classifier, self.workflows, self.projects, self.work_orders, self.worker):
            for name, method in list(vars(stub).items()):
                setattr(stub, name, _with_metadata(method, header))
        self.tokens = token_service_pb2_grpc.TokenServiceStub(self.channel)
        for name, method in list(vars(self.tokens).items()):
            setattr(self.tokens, name, _with_metadata(method, header))


def _with_metadata(method: Any, header: tuple[tuple[str, str], ...]) -> Any:
    def call(request: Any, **kw: Any) -> Any:
        return method(request, metadata=header, **kw)
    return call


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    db = tmp_path_factory.mktemp("auth") / "auth.db"
    secret = offline_admin_token(db)
    server = ServerProcess(db, "--auth").start()
    yield server, secret
    server.stop()


def make_token(admin: Authed, project_id: str, role: int) -> str:
    return admin.tokens.CreateToken(token_pb.CreateTokenRequest(project_id=project_id, role=role)).secret  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def world(secured: tuple[ServerProcess, str]) -> dict[str, Any]:
    server, root_secret = secured
    root = Authed(server.address, root_secret)
    for p in ("alpha", "beta"):
        root.projects.CreateProject(project_pb.CreateProjectRequest(project=Project(id=p)))
    secrets = {f"{p}-{r}": make_token(root, p, role) for p in ("alpha", "beta")
               for r, role in (("worker", Role.ROLE_WORKER), ("client", Role.ROLE_CLIENT), ("admin", Role.ROLE_ADMIN))}
    clients = {name: Authed(server.address, secret, name.split("-")[0]) for name, secret in secrets.items()}
    wf = clients["alpha-admin"].workflow(["a"])
    order = clients["alpha-client"].work_order(wf)
    return {"server": server, "root": root, "clients": clients, "secrets": secrets, "wf": wf, "order": order}


def code(call: Any, *args: Any) -> grpc.StatusCode:
    return rpc_error(call, *args).code()  # type: ignore[no-any-return]


def test_no_token_is_unauthenticated_but_health_is_open(secured: tuple[ServerProcess, str]) -> None:
    server, _ = secured
    bare = Client(server.address)
    assert code(bare.work_orders.GetWorkOrder, wo_pb.GetWorkOrderRequest(work_order_id="x")) == \
        grpc.StatusCode.UNAUTHENTICATED
    wrong = Authed(server.address, "rs_0000000000000000_nope")
    assert code(wrong.work_orders.GetWorkOrder, wo_pb.GetWorkOrderRequest(work_order_id="x")) == \
        grpc.StatusCode.UNAUTHENTICATED
    health = health_pb2_grpc.HealthStub(bare.channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_another_projects_resources_do_not_exist(world: dict[str, Any]) -> None:
    beta = world["clients"]["beta-client"]
    order = world["order"]
    for call, request in [
        (beta.work_orders.GetWorkOrder, wo_pb.GetWorkOrderRequest(work_order_id=order.work_order.id)),
        (beta.work_orders.GetRun, wo_pb.GetRunRequest(run_id=order.run.id)),
        (beta.work_orders.ListRuns, wo_pb.ListRunsRequest(work_order_id=order.work_order.id)),
        (beta.work_orders.CancelRun, wo_pb.CancelRunRequest(run_id=order.run.id)),
        (beta.work_orders.RetryWorkOrder, wo_pb.RetryWorkOrderRequest(work_order_id=order.work_order.id)),
        (beta.work_orders.ListWorkOrders, wo_pb.ListWorkOrdersRequest(project_id="alpha")),
        (beta.projects.GetProject, project_pb.GetProjectRequest(project_id="alpha")),
    ]:
        e = rpc_error(call, request)
        assert e.code() == grpc.StatusCode.NOT_FOUND, (call, e.details())
    # Their own project is empty; the other's work order is not counted.
    assert beta.work_orders.CountWorkOrders(wo_pb.CountWorkOrdersRequest()).total == 0
    assert [p.id for p in beta.projects.ListProjects(project_pb.ListProjectsRequest()).projects] == ["beta"]
    beta_worker = world["clients"]["beta-worker"]
    assert beta_worker.worker.ClaimRuns(worker_pb.ClaimRunsRequest(worker_id="w")).runs == []
    e = rpc_error(beta_worker.worker.ClaimRuns, worker_pb.ClaimRunsRequest(worker_id="w", project_id="alpha"))
    assert e.code() == grpc.StatusCode.NOT_FOUND


def test_roles(world: dict[str, Any]) -> None:
    c = world["clients"]
    denied = grpc.StatusCode.PERMISSION_DENIED
    assert code(c["alpha-client"].worker.ClaimRuns, worker_pb.ClaimRunsRequest(worker_id="w")) == denied
    assert code(c["alpha-worker"].work_orders.CreateWorkOrder,
                wo_pb.CreateWorkOrderRequest(workflow_id=world["wf"].id)) == denied
    assert code(c["alpha-client"].projects.UpdateProject,
                project_pb.UpdateProjectRequest(project=Project(id="alpha"))) == denied
    assert code(c["alpha-admin"].projects.CreateProject,
                project_pb.CreateProjectRequest(project=Project(id="gamma"))) == denied
    assert code(c["alpha-client"].tokens.CreateToken,
                token_pb.CreateTokenRequest(role=Role.ROLE_ADMIN)) == denied
    e = rpc_error(c["alpha-worker"].work_orders.GetWorkOrder, wo_pb.GetWorkOrderRequest(work_order_id="x"))
    assert details(e)[0].metadata["role"] == "ROLE_WORKER"
    # What each role may do, it can.
    lease = c["alpha-worker"].claim_run(world["order"].run.id, project_id="")
    lease.start()
    lease.done(lease.step("a").id)
    assert lease.complete().status == 3
    admin = c["alpha-admin"]
    admin.projects.UpdateProject(project_pb.UpdateProjectRequest(project=Project(id="alpha", name="Alpha")))
    assert code(admin.projects.UpdateProject, project_pb.UpdateProjectRequest(project=Project(id="beta"))) == \
        grpc.StatusCode.NOT_FOUND
    assert code(admin.tokens.CreateToken, token_pb.CreateTokenRequest(project_id="*", role=Role.ROLE_ADMIN)) == denied


def test_each_token_learns_who_it_is_and_what_its_role_may_call(world: dict[str, Any]) -> None:
    """GetCallerToken: the token a call is made with (never its secret) and the methods its role
    may call, which are exactly those the server lets it call."""
    c = world["clients"]
    worker = c["alpha-worker"].tokens.GetCallerToken(token_pb.GetCallerTokenRequest())
    assert (worker.token.project_id, worker.token.role) == ("alpha", Role.ROLE_WORKER) and worker.token.id
    assert "runstatus.v1.WorkerService.ClaimRuns" in worker.allowed_methods
    assert "runstatus.v1.WorkOrderService.RetryWorkOrder" not in worker.allowed_methods
    assert code(c["alpha-worker"].work_orders.RetryWorkOrder,
                wo_pb.RetryWorkOrderRequest(work_order_id=world["order"].work_order.id)) == grpc.StatusCode.PERMISSION_DENIED
    client = c["alpha-client"].tokens.GetCallerToken(token_pb.GetCallerTokenRequest())
    assert client.token.role == Role.ROLE_CLIENT
    assert {"runstatus.v1.WorkOrderService.RetryWorkOrder", "runstatus.v1.WorkOrderService.CancelRun"} <= set(
        client.allowed_methods)
    assert "runstatus.v1.TokenService.CreateToken" not in client.allowed_methods
    everything = world["root"].tokens.GetCallerToken(token_pb.GetCallerTokenRequest())
    assert everything.token.project_id == "*" and "runstatus.v1.ProjectService.CreateProject" in everything.allowed_methods
    for secret in world["secrets"].values():
        assert secret.split("_", 2)[2] not in str(worker) + str(client) + str(everything)


def test_request_ids_are_per_project(world: dict[str, Any]) -> None:
    c = world["clients"]
    alpha = c["alpha-client"].work_order(world["wf"], request_id="same-id")
    beta_wf = c["beta-admin"].workflow(["a"], wid=world["wf"].id)
    beta = c["beta-client"].work_order(beta_wf, request_id="same-id")
    assert beta.work_order.id != alpha.work_order.id
    assert beta.work_order.project_id == "beta"


def test_revoked_tokens_stop_working_and_secrets_are_not_stored(world: dict[str, Any]) -> None:
    admin = world["clients"]["alpha-admin"]
    made = admin.tokens.CreateToken(token_pb.CreateTokenRequest(role=Role.ROLE_CLIENT, name="temp"))
    temp = Authed(world["server"].address, made.secret)
    assert temp.work_orders.CountWorkOrders(wo_pb.CountWorkOrdersRequest()).total >= 1
    listed = admin.tokens.ListTokens(token_pb.ListTokensRequest()).tokens
    assert made.token.id in [t.id for t in listed] and all(t.project_id == "alpha" for t in listed)
    admin.tokens.RevokeToken(token_pb.RevokeTokenRequest(token_id=made.token.id))
    assert code(temp.work_orders.CountWorkOrders, wo_pb.CountWorkOrdersRequest()) == grpc.StatusCode.UNAUTHENTICATED
    db = world["server"].db
    stored = b"".join(bytes(r[0]) for r in query(db, "SELECT data FROM tokens")) + b"".join(
        r[0].encode() for r in query(db, "SELECT secret_hash FROM tokens"))
    for secret in [made.secret, *world["secrets"].values()]:
        assert secret.encode() not in stored and secret.split("_", 2)[2].encode() not in stored


def test_a_repeated_create_token_names_the_token_but_never_stores_or_repeats_its_secret(
        world: dict[str, Any]) -> None:
    admin = world["clients"]["alpha-admin"]
    request = token_pb.CreateTokenRequest(role=Role.ROLE_WORKER, name="once", request_id="create-token-once")
    made = admin.tokens.CreateToken(request)
    assert made.secret and made.token.id
    with pytest.raises(grpc.RpcError) as repeat:
        admin.tokens.CreateToken(request)
    info, _ = details(repeat.value)
    assert repeat.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info.reason == "TOKEN_SECRET_SHOWN_ONCE" and info.metadata["token_id"] == made.token.id
    assert made.secret not in str(repeat.value.details())
    listed = admin.tokens.ListTokens(token_pb.ListTokensRequest(page_size=1000)).tokens
    assert [t.id for t in listed].count(made.token.id) == 1 and sum(t.name == "once" for t in listed) == 1
    kept = b"".join(bytes(r[0]) for r in query(world["server"].db, "SELECT response FROM requests"))
    assert made.secret.encode() not in kept and made.secret.split("_", 2)[2].encode() not in kept


def test_cli_with_a_token(world: dict[str, Any]) -> None:
    env = {**os.environ, "RUNSTATUS_ADDRESS": world["server"].address,
           "RUNSTATUS_TOKEN": world["secrets"]["alpha-client"]}
    out = subprocess.run([str(RUNSTATUS), "work-orders", "count", "--json"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["total"] >= 1
    env["RUNSTATUS_TOKEN"] = "rs_bad_token"
    out = subprocess.run([str(RUNSTATUS), "work-orders", "count"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 1 and "UNAUTHENTICATED" in out.stderr


def test_refuses_a_public_address_without_auth(tmp_path: pathlib.Path) -> None:
    out = subprocess.run([str(RUNSTATUS), "serve", "--host", "0.0.0.0", "--port", "0", "--db", str(tmp_path / "x.db")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--auth" in out.stderr


def test_an_unknown_token_id_costs_what_a_known_one_does(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No timing oracle: whether a token id exists must not show in how long the answer takes.
    Measured on PostgreSQL before, unknown ids read the database on every call (1.55-1.64 ms)
    while known ones came from the cache (1.00 ms). Now both do the same work: one database
    read per id per cache period, one hash of the secret and one constant-time compare."""
    import asyncio

    from runstatus_server import auth, tokens
    from runstatus_server.errors import Unauthenticated
    from runstatus_server.store import open_store
    from runstatus_server.util import now_us

    hashed: list[str] = []
    real_hash = auth._hash
    monkeypatch.setattr(auth, "_hash", lambda secret: hashed.append(secret) or real_hash(secret))

    async def main() -> tuple[int, int, list[int]]:
        store = open_store(db_arg(tmp_path / "tokens.db"))
        await store.start()
        try:
            _, secret = await store.write(lambda tx: tokens.create(tx, auth.INSTANCE, auth.ADMIN, "a", now_us()))
            unknown = "rs_" + "0" * 16 + "_" + secret.split("_", 2)[2]
            reads: list[str] = []
            read = store.read

            async def counted(fn: Any, *args: Any, **kw: Any) -> Any:
                reads.append("read")
                return await read(fn, *args, **kw)

            store.read = counted  # type: ignore[method-assign]
            checker = auth.Authenticator(store, ttl=60)
            hashes = []
            for _ in range(3):
                before = len(hashed)
                await checker.authenticate(f"Bearer {secret}")
                known = len(hashed) - before
                with pytest.raises(Unauthenticated, match="not valid"):
                    await checker.authenticate(f"Bearer {unknown}")
                hashes.append(len(hashed) - before - known - known)
                assert known == 1
            return len(reads), len(checker._cache), hashes
        finally:
            await store.close()

    reads, cached, extra_hashes = asyncio.run(main())
    assert reads == 2, "one read for each id, known or not, in the cache period"
    assert cached == 2
    assert extra_hashes == [0, 0, 0], "an unknown id's secret is hashed as a known one's is"
