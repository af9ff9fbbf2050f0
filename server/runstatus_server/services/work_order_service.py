from __future__ import annotations

import grpc

from runstatus.v1 import work_order_service_pb2 as pb
from runstatus.v1 import work_order_service_pb2_grpc as pb_grpc

from .. import auth, events, log_horizon, pagination, projects, work_orders
from ..idempotency import answer_or_raise, answered
from ..runs import load, load_work_order, with_step_runs
from ..store.base import Tx
from ..util import now_us
from . import checks
from .kept_answers import write_once
from .rpc import App, streaming, unary


class WorkOrderService(pb_grpc.WorkOrderServiceServicer):
    def __init__(self, app: App) -> None:
        self.app = app

    @unary
    async def CreateWorkOrder(
        self, request: pb.CreateWorkOrderRequest,
        context: grpc.aio.ServicerContext[pb.CreateWorkOrderRequest, pb.CreateWorkOrderResponse],
    ) -> pb.CreateWorkOrderResponse:
        checks.create_work_order(request, self.app.limits)

        def op(tx: Tx) -> pb.CreateWorkOrderResponse:
            work_order, run = work_orders.create(
                tx, request.project_id, request.workflow_id, request.workflow_version, request.input,
                request.priority, now_us(),
            )
            return pb.CreateWorkOrderResponse(work_order=work_order, run=run)

        return await write_once(self.app.store, "CreateWorkOrder", request, pb.CreateWorkOrderResponse, op)

    @unary
    async def GetWorkOrder(
        self, request: pb.GetWorkOrderRequest,
        context: grpc.aio.ServicerContext[pb.GetWorkOrderRequest, pb.GetWorkOrderResponse],
    ) -> pb.GetWorkOrderResponse:
        checks.work_order_id(request, self.app.limits)

        def op(tx: Tx) -> pb.GetWorkOrderResponse:
            work_order = load_work_order(tx, request.work_order_id)
            return pb.GetWorkOrderResponse(work_order=work_order, latest_run=work_orders.latest_run(tx, work_order))

        return await self.app.store.read(op)

    @unary
    async def ListWorkOrders(
        self, request: pb.ListWorkOrdersRequest,
        context: grpc.aio.ServicerContext[pb.ListWorkOrdersRequest, pb.ListWorkOrdersResponse],
    ) -> pb.ListWorkOrdersResponse:
        checks.work_order_query(request, self.app.limits)
        pager = pagination.by_numbers(request, 2, None)
        found = await self.app.store.scan(work_orders.matching, request.project_id, request.filter,
                                          pager.after, pager.size, pager.max_bytes)  # type: ignore[arg-type]
        page, token = pager.cut(found, lambda item: item[1])
        return pb.ListWorkOrdersResponse(work_orders=[w for w, _ in page], next_page_token=token)

    @unary
    async def CountWorkOrders(
        self, request: pb.CountWorkOrdersRequest,
        context: grpc.aio.ServicerContext[pb.CountWorkOrdersRequest, pb.CountWorkOrdersResponse],
    ) -> pb.CountWorkOrdersResponse:
        checks.work_order_query(request, self.app.limits)
        counts = await self.app.store.scan(work_orders.count, request.project_id, request.filter)
        return pb.CountWorkOrdersResponse(
            counts=[pb.StatusCount(status=s, count=c) for s, c in sorted(counts.items())],  # type: ignore[arg-type]
            total=sum(counts.values()),
        )

    @unary
    async def RetryWorkOrder(
        self, request: pb.RetryWorkOrderRequest,
        context: grpc.aio.ServicerContext[pb.RetryWorkOrderRequest, pb.RetryWorkOrderResponse],
    ) -> pb.RetryWorkOrderResponse:
        checks.retry_work_order(request, self.app.limits)

        def op(tx: Tx) -> pb.RetryWorkOrderResponse:
            work_order, run = work_orders.retry(tx, request.work_order_id, request.start_step_id, now_us())
            return pb.RetryWorkOrderResponse(work_order=work_order, run=run)

        return await write_once(self.app.store, "RetryWorkOrder", request, pb.RetryWorkOrderResponse, op)

    @unary
    async def RetryWorkOrders(
        self, request: pb.RetryWorkOrdersRequest,
        context: grpc.aio.ServicerContext[pb.RetryWorkOrdersRequest, pb.RetryWorkOrdersResponse],
    ) -> pb.RetryWorkOrdersResponse:
        checks.retry_work_orders(request, self.app.limits)
        # A repeat gets the first answer; the pages below are separate transactions.
        earlier = await self.app.store.read(answered, "RetryWorkOrders", request, pb.RetryWorkOrdersResponse)
        if earlier is not None:
            return answer_or_raise(earlier)
        # One page per write, so a bulk retry of thousands never holds the event loop long.
        retried = skipped = 0
        after = None
        while True:
            r, s, after = await self.app.store.write(
                work_orders.retry_page, request.project_id, request.filter, after, self.app.store.batch_size, now_us()
            )
            retried, skipped = retried + r, skipped + s
            if after is None:
                break
        answer = pb.RetryWorkOrdersResponse(retried_count=retried, skipped_count=skipped)
        return await write_once(self.app.store, "RetryWorkOrders", request, pb.RetryWorkOrdersResponse, lambda tx: answer)

    @unary
    async def GetRun(
        self, request: pb.GetRunRequest,
        context: grpc.aio.ServicerContext[pb.GetRunRequest, pb.GetRunResponse],
    ) -> pb.GetRunResponse:
        checks.get_run(request, self.app.limits)
        return pb.GetRunResponse(run=await self.app.store.read(lambda tx: with_step_runs(tx, load(tx, request.run_id).run)))

    @unary
    async def ListRuns(
        self, request: pb.ListRunsRequest,
        context: grpc.aio.ServicerContext[pb.ListRunsRequest, pb.ListRunsResponse],
    ) -> pb.ListRunsResponse:
        checks.work_order_id(request, self.app.limits)
        pager = pagination.by_numbers(request, 1, (2**31,))  # newest first: the page runs before this number
        found = await self.app.store.scan(work_orders.runs_of, request.work_order_id, pager.after[0], pager.size,
                                          pager.max_bytes)
        page, token = pager.cut(found, lambda run: (run.number,) if run.number > 1 else None)  # nothing after run 1
        return pb.ListRunsResponse(runs=page, next_page_token=token)

    @unary
    async def CancelRun(
        self, request: pb.CancelRunRequest,
        context: grpc.aio.ServicerContext[pb.CancelRunRequest, pb.CancelRunResponse],
    ) -> pb.CancelRunResponse:
        checks.cancel_run(request, self.app.limits)

        def op(tx: Tx) -> pb.CancelRunResponse:
            return pb.CancelRunResponse(run=work_orders.cancel(tx, request.run_id, request.reason, now_us()))

        return await write_once(self.app.store, "CancelRun", request, pb.CancelRunResponse, op)

    # A coroutine that writes its messages with context.write, which grpc.aio takes for a
    # server-streaming method; the generated servicer declares only an iterator. Its messages
    # may be encoded already (registry._encoded): one event goes to every watcher.
    @streaming
    async def WatchWorkOrders(  # type: ignore[override]
        self, request: pb.WatchWorkOrdersRequest,
        context: grpc.aio.ServicerContext[pb.WatchWorkOrdersRequest, pb.WatchWorkOrdersResponse | bytes],
    ) -> None:
        checks.watch_work_orders(request, self.app.limits)
        after = checks.after_cursor(request)
        project_id = auth.scope(request.project_id)
        if project_id:
            await self.app.store.read(projects.get, project_id)
        feed = self.app.feed
        if request.from_now:
            after = await feed.last_sequence()
        elif request.after_cursor:  # an empty cursor starts at the oldest event kept
            await self.app.store.read(log_horizon.check_cursor, after)
        who = auth.caller.get()
        with feed.admit(f"token:{who.token_id}" if who else f"project:{project_id}"):
            sub = feed.subscription(project_id, request.filter, request.work_order_ids)
            if not request.HasField("batching"):
                async for batch in feed.watch(sub, after):
                    with sub.sending(batch[0]):
                        await context.write(batch[0].encoded())  # encoded once for every watcher
                return
            max_delay = request.batching.max_delay.ToMicroseconds() / 1e6
            async for batch in feed.watch(sub, after, request.batching.max_events, max_delay):
                with sub.sending(batch[-1]):
                    await context.write(events.batch_encoded(batch))
