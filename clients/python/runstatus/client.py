"""The Python client: `Client` (blocking) and `AsyncClient` (asyncio), over the generated stubs.

    from runstatus import Client
    with Client("localhost:50051") as rs:
        order = rs.create_work_order("referral", {"patient": 123})
        print(rs.get_work_order(order.id).status)

Both have every call, defined once in `runstatus._calls` (request building and answer
reading); here is only how each runs them. Every mutating call carries a request_id (one
is made if you pass none), so the channel retries every call on UNAVAILABLE safely; List
calls are iterators that follow page_token; `watch` reconnects from its last cursor.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import grpc
import grpc.aio

from runstatus.v1 import classifier_service_pb2_grpc as classifier_grpc
from runstatus.v1 import notification_service_pb2_grpc as notification_grpc
from runstatus.v1 import project_service_pb2_grpc as project_grpc
from runstatus.v1 import stats_service_pb2_grpc as stats_grpc
from runstatus.v1 import token_service_pb2_grpc as token_grpc
from runstatus.v1 import work_order_service_pb2_grpc as wo_grpc
from runstatus.v1 import worker_service_pb2_grpc as worker_grpc
from runstatus.v1 import workflow_service_pb2_grpc as wf_grpc

from ._calls import DEFAULT_ADDRESS as DEFAULT_ADDRESS  # these three were defined here: still importable
from ._calls import RECONNECT_CODES as RECONNECT_CODES
from ._calls import RECONNECT_DELAYS as RECONNECT_DELAYS
from ._calls import Calls, PagedCall, UnaryCall, WatchCall
from ._trace import context_metadata
from .errors import RunstatusError, from_rpc_error
from .models import Event

T = TypeVar("T")


class Client(Calls[grpc.Channel]):
    """A blocking client. Use as a context manager, or call `close()`."""

    def _open(self, address: str, credentials: grpc.ChannelCredentials | None,
              options: list[tuple[str, Any]]) -> grpc.Channel:
        return (grpc.secure_channel(address, credentials, options) if credentials
                else grpc.insecure_channel(address, options))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def call(self, method: Any, request: Any, timeout: float | None = None) -> Any:
        """Calls a raw stub method with this client's token and deadline; errors become RunstatusError."""
        try:
            return method(request, timeout=timeout or self._settings.timeout,
                          metadata=context_metadata(self._settings.metadata))
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def _unary(self, plan: UnaryCall[T]) -> T:
        return plan.unpack(self.call(plan.method, plan.request, plan.timeout))

    def _paged(self, plan: PagedCall[T]) -> Iterator[T]:
        while (request := plan.next_request()) is not None:
            yield from plan.take(self.call(plan.method, request))

    def _watch(self, plan: WatchCall) -> Iterator[Event]:
        while True:
            stream = plan.method(plan.next_request(), metadata=context_metadata(self._settings.metadata))
            try:
                for item in stream:
                    yield from plan.events(item)
                return
            except grpc.RpcError as e:
                time.sleep(plan.backoff(e))
            finally:
                stream.cancel()


class AsyncClient(Calls[grpc.aio.Channel]):
    """The asyncio client: every call of `Client`, awaited; List calls and `watch` are
    async iterators. Use as an async context manager, or `await close()`."""

    classifier: classifier_grpc.ClassifierServiceAsyncStub
    workflows: wf_grpc.WorkflowServiceAsyncStub
    projects: project_grpc.ProjectServiceAsyncStub
    work_orders: wo_grpc.WorkOrderServiceAsyncStub
    worker: worker_grpc.WorkerServiceAsyncStub
    tokens: token_grpc.TokenServiceAsyncStub
    notifications: notification_grpc.NotificationServiceAsyncStub
    stats: stats_grpc.StatsServiceAsyncStub

    def _open(self, address: str, credentials: grpc.ChannelCredentials | None,
              options: list[tuple[str, Any]]) -> grpc.aio.Channel:
        return (grpc.aio.secure_channel(address, credentials, options) if credentials
                else grpc.aio.insecure_channel(address, options))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    async def call(self, method: Any, request: Any, timeout: float | None = None) -> Any:
        """Calls a raw stub method with this client's token and deadline; errors become RunstatusError."""
        try:
            return await method(request, timeout=timeout or self._settings.timeout,
                                metadata=context_metadata(self._settings.metadata))
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def _unary(self, plan: UnaryCall[T]) -> T:
        return plan.unpack(await self.call(plan.method, plan.request, plan.timeout))

    async def _paged(self, plan: PagedCall[T]) -> AsyncIterator[T]:
        while (request := plan.next_request()) is not None:
            for item in plan.take(await self.call(plan.method, request)):
                yield item

    async def _watch(self, plan: WatchCall) -> AsyncIterator[Event]:
        while True:
            stream = plan.method(plan.next_request(), metadata=context_metadata(self._settings.metadata))
            try:
                async for item in stream:
                    for event in plan.events(item):
                        yield event
                return
            except grpc.RpcError as e:
                await asyncio.sleep(plan.backoff(e))
            finally:
                stream.cancel()


__all__ = ["AsyncClient", "Client", "RunstatusError"]
