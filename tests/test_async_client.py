"""AsyncClient against a real server: every call of Client, awaited; pages, errors, tokens, watch."""

from __future__ import annotations

import asyncio
import inspect
import pathlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import aclosing
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import pytest

from harness import ServerProcess, offline_admin_token
from runstatus import AsyncClient, Client
from runstatus.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RunstatusError,
    Unauthenticated,
    Unavailable,
)
from runstatus.models import Event
from runstatus.v1.event_pb2 import EventType
from runstatus.v1.status_pb2 import ErrorType, RunStatus
from runstatus.v1.token_pb2 import Role

S = RunStatus
T = TypeVar("T")


def run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(asyncio.wait_for(scenario(), 60))


async def new_project(rs: AsyncClient, prefix: str = "async") -> str:
    rs.project_id = f"{prefix}-{time.monotonic_ns()}"
    await rs.create_project(rs.project_id, name="async client tests")
    return rs.project_id


async def take(events: AsyncIterator[Event], n: int) -> list[Event]:
    """The first n events, then the watch is closed (its stream cancelled)."""
    seen: list[Event] = []
    async with aclosing(events) as stream:  # type: ignore[type-var]
        async for event in stream:
            seen.append(event)
            if len(seen) == n:
                break
    return seen


def test_async_client_has_every_call_of_client() -> None:
    calls = {name for name, _ in inspect.getmembers(Client) if not name.startswith("_")} - {"close", "call"}
    assert {"classify", "create_project", "get_project", "update_project", "list_projects", "create_workflow",
            "get_workflow", "list_workflows", "create_work_order", "get_work_order", "list_work_orders",
            "count_work_orders", "retry_work_order", "retry_work_orders", "get_run", "list_runs", "cancel_run",
            "watch", "create_token", "revoke_token", "list_tokens", "claim_runs", "heartbeat", "start_run",
            "start_step", "complete_step", "complete_run", "caller", "create_notification_subscription",
            "get_notification_subscription", "list_notification_subscriptions", "update_notification_subscription",
            "delete_notification_subscription", "list_notification_deliveries", "redeliver_notification",
            "send_test_notification", "work_order_stats"} == calls

    async def scenario() -> None:
        sync = Client("127.0.0.1:1")
        async with AsyncClient("127.0.0.1:1") as aio:
            for name in sorted(calls):
                # One definition: the same parameters on both, without `self`.
                assert inspect.signature(getattr(sync, name)) == inspect.signature(getattr(aio, name)), name
                assert "self" not in inspect.signature(getattr(sync, name)).parameters, name
            assert list(inspect.signature(aio.get_workflow).parameters) == ["workflow_id", "version", "project_id"]
            assert "Changes only what is given" in (aio.update_project.__doc__ or "")
            assert asyncio.iscoroutine(coroutine := aio.get_project("p"))
            coroutine.close()
            assert hasattr(aio.list_projects(), "__anext__") and hasattr(aio.watch(), "__anext__")
            assert hasattr(sync.list_projects(), "__next__") and hasattr(sync.watch(), "__next__")
        sync.close()

    run(scenario)


def test_projects(server: ServerProcess) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.address, retries=1) as rs:
            project_id = await new_project(rs)
            made = await rs.get_project(project_id)
            assert (made.id, made.name) == (project_id, "async client tests")
            assert await AsyncClient.get_project(rs, project_id) == made  # called on the class, as methods can be
            updated = await rs.update_project(project_id, max_in_flight=7, window=timedelta(minutes=1),
                                              max_runtime=timedelta(minutes=5))
            assert (updated.run_limit.max_in_flight, updated.run_limit.window.seconds,
                    updated.max_runtime.seconds, updated.name) == (7, 60, 300, "async client tests")
            renamed = await rs.update_project(project_id, name="renamed")
            assert (renamed.name, renamed.run_limit.max_in_flight) == ("renamed", 7)  # the rest kept
            assert (await rs.update_project(project_id)).name == "renamed"  # nothing to change: a read
            others = [f"{project_id}-{i}" for i in range(3)]
            for other in others:
                await rs.create_project(other, max_per_window=3, window=timedelta(seconds=10))
            listed = [p.id async for p in rs.list_projects(page_size=2)]  # several pages
            assert set(others + [project_id]) <= set(listed)
            assert len(listed) == len(set(listed))  # no page twice
            assert (await rs.get_project(others[0])).run_limit.max_per_window == 3

    run(scenario)


def test_workflows(server: ServerProcess) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.address, retries=1) as rs:
            await new_project(rs)
            wf = await rs.create_workflow("referral", ["fetch", "notify", {"id": "alert", "name": "Alert"}],
                                          [("fetch", "notify", "on_success"), ("fetch", "alert", "ON_FAILURE")],
                                          name="Referral")
            assert (wf.version, wf.name, [e.condition for e in wf.edges]) == (1, "Referral", [2, 3])
            assert (await rs.create_workflow("referral", ["fetch"])).version == 2
            assert await rs.get_workflow("referral", 1) == wf
            assert [s.id for s in (await rs.get_workflow("referral")).steps] == ["fetch"]  # latest
            for i in range(4):
                await rs.create_workflow(f"w{i}", ["a"])
            ids = [w.id async for w in rs.list_workflows(page_size=2)]
            assert sorted(ids) == ["referral", "w0", "w1", "w2", "w3"]
            # In another project, by argument, not the client's.
            other = f"{rs.project_id}-other"
            await rs.create_project(other)
            await rs.create_workflow("elsewhere", ["x"], project_id=other)
            assert [w.id async for w in rs.list_workflows(project_id=other)] == ["elsewhere"]
            assert (await rs.get_workflow("elsewhere", project_id=other)).project_id == other

    run(scenario)


def test_work_orders_and_runs(server: ServerProcess) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.address, retries=1) as rs:
            assert (await rs.classify("IndexError", "out of range", language="python")).error_type == \
                ErrorType.ERROR_TYPE_RANGE_ERROR
            await new_project(rs)
            await rs.create_workflow("w", ["a"])
            before = datetime.now(timezone.utc) - timedelta(seconds=1)
            order = await rs.create_work_order("w", {"patient": {"id": 1}}, priority=2, request_id="same")
            repeated = await rs.create_work_order("w", {"patient": {"id": 1}}, priority=2, request_id="same")
            assert repeated.id == order.id  # a retried create is the same work order
            assert order.latest_run is not None and order.latest_run.number == 1
            got = await rs.get_work_order(order.id)
            assert (got.input, got.status) == ({"patient": {"id": 1}}, S.RUN_STATUS_PENDING)
            assert got.create_time is not None and got.create_time >= before
            cancelled = await rs.cancel_run(order.latest_run_id, "not needed")
            assert cancelled.status == S.RUN_STATUS_CANCELLED and "not needed" in cancelled.status_reason
            again = await rs.retry_work_order(order.id)
            assert (again.status, again.run_count) == (S.RUN_STATUS_PENDING, 2)
            runs = [r async for r in rs.list_runs(order.id, page_size=1)]  # two pages
            assert [r.number for r in runs] == [2, 1]
            assert (await rs.get_run(runs[1].id)).status == S.RUN_STATUS_CANCELLED
            assert await rs.count_work_orders(created_after=before) == {"RUN_STATUS_PENDING": 1}
            # Bulk retry, with its own deadline.
            others = [await rs.create_work_order("w") for _ in range(2)]
            for o in [order, *others]:
                await rs.cancel_run((await rs.get_work_order(o.id)).latest_run_id)
            assert await rs.retry_work_orders(statuses=["cancelled"], timeout=60) == (3, 0)
            assert await rs.count_work_orders() == {"RUN_STATUS_PENDING": 3}

    run(scenario)


def test_list_follows_pages(server: ServerProcess) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.address, retries=1) as rs:
            await new_project(rs)
            await rs.create_workflow("w", ["a"])
            await rs.create_workflow("v", ["a"])
            made = [(await rs.create_work_order("w")).id for _ in range(12)]
            other = (await rs.create_work_order("v")).id
            newest_first = made[::-1]
            assert [w.id async for w in rs.list_work_orders(page_size=5)] == [other, *newest_first]
            assert [w.id async for w in rs.list_work_orders(workflow_id="w", page_size=5)] == newest_first
            assert [w.id async for w in rs.list_work_orders(workflow_id="w", page_size=5, limit=7)] == \
                newest_first[:7]
            assert [w.id async for w in rs.list_work_orders(workflow_id="w", page_size=4, limit=4)] == \
                newest_first[:4]
            assert [w.id async for w in rs.list_work_orders(statuses=["PENDING"], page_size=3)] == \
                [other, *newest_first]
            assert [w async for w in rs.list_work_orders(statuses=[S.RUN_STATUS_FAILED])] == []
            # The same pages through the blocking client, from the same definition.
            with Client(server.address, retries=1, project_id=rs.project_id) as sync:
                assert [w.id for w in sync.list_work_orders(page_size=5)] == [other, *newest_first]
                assert Client.count_work_orders(sync, workflow_id="v") == {"RUN_STATUS_PENDING": 1}

    run(scenario)


def test_errors_are_typed(server: ServerProcess) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.address, retries=1) as rs:
            await new_project(rs)
            with pytest.raises(NotFound) as nf:
                await rs.get_work_order("nope")
            assert nf.value.reason == "WORK_ORDER_NOT_FOUND"
            with pytest.raises(InvalidArgument) as bad:
                await rs.create_workflow("x", [])
            assert [v.field for v in bad.value.violations] == ["workflow.steps"]
            with pytest.raises(AlreadyExists):
                await rs.create_project(rs.project_id)
            with pytest.raises(NotFound):  # raised while iterating
                [r async for r in rs.list_runs("nope")]
            with pytest.raises(NotFound):
                await rs.get_workflow("nope")
            await rs.create_workflow("w", ["a"])
            order = await rs.create_work_order("w")
            with pytest.raises(FailedPrecondition) as refused:
                await rs.retry_work_order(order.id)
            assert refused.value.current_status == "RUN_STATUS_PENDING"
            assert isinstance(refused.value, RunstatusError)

    run(scenario)


def test_watch_then_resume_from_a_cursor(server: ServerProcess) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.address, retries=1) as rs:
            await new_project(rs)
            await rs.create_workflow("w", ["a"])
            order = await rs.create_work_order("w")
            await rs.cancel_run(order.latest_run_id)
            events = await take(rs.watch(work_order_ids=[order.id]), 2)
            assert [e.work_order_id for e in events] == [order.id, order.id]
            assert events[0].type == EventType.EVENT_TYPE_WORK_ORDER_CREATED
            assert events[-1].status == S.RUN_STATUS_CANCELLED
            assert events[0].cursor != events[1].cursor
            # From the first cursor: the second event first, nothing seen twice.
            after = await take(rs.watch(work_order_ids=iter([order.id]), after_cursor=events[0].cursor), 1)
            assert [e.cursor for e in after] == [events[1].cursor]
            # Live: a work order made after the watch opened.
            watch = asyncio.ensure_future(take(rs.watch(workflow_id="w", after_cursor=events[-1].cursor), 1))
            await asyncio.sleep(0.2)
            later = await rs.create_work_order("w")
            assert [e.work_order_id for e in await watch] == [later.id]
            with pytest.raises(InvalidArgument):
                await take(rs.watch(after_cursor="not a cursor"), 1)

    run(scenario)


def test_watch_resumes_after_a_server_restart(tmp: pathlib.Path) -> None:
    async def scenario() -> None:
        server = ServerProcess(tmp / "watch.db").start()
        port = server.port
        seen: list[str] = []
        try:
            async with AsyncClient(server.address, timeout=10) as rs:
                await rs.create_workflow("w", ["a"])
                first = await rs.create_work_order("w")
                async with AsyncClient(server.address) as watcher:
                    async def watch() -> None:
                        async with aclosing(watcher.watch()) as events:  # type: ignore[type-var]
                            async for event in events:
                                seen.append(event.work_order_id)
                                if len(seen) == 3:
                                    return

                    task = asyncio.ensure_future(watch())
                    for _ in range(200):
                        if seen:
                            break
                        await asyncio.sleep(0.05)
                    assert seen == [first.id]
                    await asyncio.to_thread(server.stop)
                    # Back on the same port, later: the watch reconnects from its cursor.
                    server = await asyncio.to_thread(ServerProcess(tmp / "watch.db", port=port).start)
                    async with AsyncClient(server.address) as rs2:
                        # grpc shares one connection per address between channels: the watcher's,
                        # refused while the server was down, may still be backing off. Wait it out.
                        for _ in range(100):
                            try:
                                second = await rs2.create_work_order("w", request_id="second")
                                break
                            except Unavailable:
                                await asyncio.sleep(0.1)
                        third = await rs2.create_work_order("w")
                    await asyncio.wait_for(task, 20)
                    assert seen == [first.id, second.id, third.id]  # nothing missed, nothing twice
        finally:
            server.stop()

    run(scenario)


# Tokens: a server with --auth, and an instance admin token written straight into its database.

@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    db = tmp_path_factory.mktemp("async-auth") / "auth.db"
    secret = offline_admin_token(db)
    server = ServerProcess(db, "--auth").start()
    yield server, secret
    server.stop()


def test_tokens(secured: tuple[ServerProcess, str]) -> None:
    server, root_secret = secured

    async def scenario() -> None:
        async with AsyncClient(server.address, token=root_secret, retries=1) as root:
            await root.create_project("alpha")
            admin_token, admin_secret = await root.create_token("admin", project_id="alpha", name="alpha admin")
            assert (admin_token.project_id, admin_token.role, admin_token.name) == \
                ("alpha", Role.ROLE_ADMIN, "alpha admin")
            assert admin_secret and not admin_token.HasField("revoke_time")
        async with AsyncClient(server.address, token=admin_secret, retries=1) as admin:
            await admin.create_workflow("w", ["a"])  # the token's project: alpha
            roles: list[Role.ValueType | str] = ["client", Role.ROLE_WORKER, "ROLE_CLIENT"]
            made = [await admin.create_token(role, name=f"t{i}") for i, role in enumerate(roles)]
            assert [t.role for t, _ in made] == [Role.ROLE_CLIENT, Role.ROLE_WORKER, Role.ROLE_CLIENT]
            listed = [t async for t in admin.list_tokens(page_size=2)]  # two pages
            assert {t.id for t, _ in made} | {admin_token.id} == {t.id for t in listed}
            assert len(listed) == 4 and all(t.project_id == "alpha" for t in listed)
            client_token, client_secret = made[0]
            async with AsyncClient(server.address, token=client_secret, retries=1) as client:
                order = await client.create_work_order("w")
                assert (await client.get_work_order(order.id)).project_id == "alpha"
                with pytest.raises(PermissionDenied):
                    await client.create_token("admin")
                with pytest.raises(PermissionDenied):
                    [t async for t in client.list_tokens()]
                revoked = await admin.revoke_token(client_token.id)
                assert revoked.id == client_token.id and revoked.HasField("revoke_time")
                with pytest.raises(Unauthenticated):
                    await client.count_work_orders()
            with pytest.raises(PermissionDenied):  # a project admin makes no instance admins
                await admin.create_token("admin", project_id="*")
        async with AsyncClient(server.address, retries=1) as anonymous:
            with pytest.raises(Unauthenticated):
                await anonymous.get_project("alpha")

    run(scenario)
