from __future__ import annotations

import re

import grpc

from runstatus.v1 import work_order_service_pb2 as pb
from runstatus.v1 import work_order_service_pb2_grpc as pb_grpc
from runstatus.v1.work_order_pb2 import Run

from .. import auth, events, pagination, projects, work_orders
from ..errors import invalid
from ..idempotency import answer_or_raise, answered, once
from ..runs import load, load_work_order, with_step_runs
from ..store.base import Tx
from ..util import now_us
from .common import TIME_RANGE_FIELDS, App, Checks, streaming, unary


def _kept_creation(answer: pb.CreateWorkOrderResponse) -> pb.CreateWorkOrderResponse:
    """A creation's answer as kept for its request_id: without the input, which never changes."""
    compact = pb.CreateWorkOrderResponse()
    compact.CopyFrom(answer)
    compact.work_order.ClearField("input")
    return compact


def _restored_creation(tx: Tx, answer: pb.CreateWorkOrderResponse) -> pb.CreateWorkOrderResponse:
    stored = tx.get_work_order(answer.work_order.id)
    answer.work_order.input.SetInParent()
    if stored is not None:
        answer.work_order.input.CopyFrom(stored.input)
    return answer


class WorkOrderService(pb_grpc.WorkOrderServiceServicer):
    def __init__(self, app: App) -> None:
        self.app = app

    def _checks(self) -> Checks:
        return Checks(self.app.limits)

    @unary
    async def CreateWorkOrder(self, request: pb.CreateWorkOrderRequest, context: grpc.aio.ServicerContext) -> pb.CreateWorkOrderResponse:
        checks = self._checks()
        checks.short("project_id", request.project_id)
        checks.short("workflow_id", request.workflow_id, required=True)
        if request.workflow_version < 0:
            checks.add("workflow_version", "must not be negative")
        checks.struct("input", request.input, self.app.limits.max_input_bytes)
        if abs(request.priority) > 1_000_000:
            checks.add("priority", "must be between -1000000 and 1000000")
        checks.done()

        def op(tx: Tx) -> pb.CreateWorkOrderResponse:
            work_order, run = work_orders.create(
                tx, request.project_id, request.workflow_id, request.workflow_version, request.input,
                request.priority, now_us(),
            )
            return pb.CreateWorkOrderResponse(work_order=work_order, run=run)

        return answer_or_raise(await self.app.store.write(once("CreateWorkOrder", request, pb.CreateWorkOrderResponse, op,
                                               kept=_kept_creation, restore=_restored_creation)))

    @unary
    async def GetWorkOrder(self, request: pb.GetWorkOrderRequest, context: grpc.aio.ServicerContext) -> pb.GetWorkOrderResponse:
        checks = self._checks()
        checks.short("work_order_id", request.work_order_id, required=True)
        checks.done()

        def op(tx: Tx) -> pb.GetWorkOrderResponse:
            work_order = load_work_order(tx, request.work_order_id)
            return pb.GetWorkOrderResponse(work_order=work_order, latest_run=work_orders.latest_run(tx, work_order))

        return await self.app.store.read(op)

    @unary
    async def ListWorkOrders(self, request: pb.ListWorkOrdersRequest, context: grpc.aio.ServicerContext) -> pb.ListWorkOrdersResponse:
        checks = self._checks()
        checks.short("project_id", request.project_id)
        checks.work_order_filter("filter", request.filter)
        checks.done()
        pager = pagination.by_numbers(request, 2, None)

        def op(tx: Tx) -> pb.ListWorkOrdersResponse:
            project = projects.get(tx, request.project_id)
            found = tx.list_work_orders(project.id, request.filter, pager.after, pager.size)  # type: ignore[arg-type]
            page, token = pager.cut(found, lambda item: item[1], size=lambda item: item[0].ByteSize())
            return pb.ListWorkOrdersResponse(work_orders=[w for w, _ in page], next_page_token=token)

        return await self.app.store.scan(op)

    @unary
    async def CountWorkOrders(self, request: pb.CountWorkOrdersRequest, context: grpc.aio.ServicerContext) -> pb.CountWorkOrdersResponse:
        checks = self._checks()
        checks.short("project_id", request.project_id)
        checks.work_order_filter("filter", request.filter)
        checks.done()

        def op(tx: Tx) -> pb.CountWorkOrdersResponse:
            counts = tx.count_work_orders(projects.get(tx, request.project_id).id, request.filter)
            return pb.CountWorkOrdersResponse(
                counts=[pb.StatusCount(status=s, count=c) for s, c in sorted(counts.items())],  # type: ignore[arg-type]
                total=sum(counts.values()),
            )

        return await self.app.store.scan(op)

    @unary
    async def RetryWorkOrder(self, request: pb.RetryWorkOrderRequest, context: grpc.aio.ServicerContext) -> pb.RetryWorkOrderResponse:
        checks = self._checks()
        checks.short("work_order_id", request.work_order_id, required=True)
        checks.short("start_step_id", request.start_step_id)
        checks.done()

        def op(tx: Tx) -> pb.RetryWorkOrderResponse:
            work_order, run = work_orders.retry(tx, request.work_order_id, request.start_step_id, now_us())
            return pb.RetryWorkOrderResponse(work_order=work_order, run=run)

        return answer_or_raise(await self.app.store.write(once("RetryWorkOrder", request, pb.RetryWorkOrderResponse, op)))

    @unary
    async def RetryWorkOrders(self, request: pb.RetryWorkOrdersRequest, context: grpc.aio.ServicerContext) -> pb.RetryWorkOrdersResponse:
        checks = self._checks()
        checks.short("project_id", request.project_id)
        checks.work_order_filter("filter", request.filter)
        if not request.filter.statuses:
            checks.add("filter.statuses", "name at least one status, so that a bulk retry is deliberate")
        checks.done()
        # A repeat gets the first answer; the pages below are separate transactions.
        earlier = await self.app.store.read(answered, "RetryWorkOrders", request, pb.RetryWorkOrdersResponse)
        if earlier is not None:
            return earlier
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
        kept = once("RetryWorkOrders", request, pb.RetryWorkOrdersResponse, lambda tx: answer)
        return answer_or_raise(await self.app.store.write(kept))

    @unary
    async def GetRun(self, request: pb.GetRunRequest, context: grpc.aio.ServicerContext) -> pb.GetRunResponse:
        checks = self._checks()
        checks.short("run_id", request.run_id, required=True)
        checks.done()
        return pb.GetRunResponse(run=await self.app.store.read(lambda tx: with_step_runs(tx, load(tx, request.run_id).run)))

    @unary
    async def ListRuns(self, request: pb.ListRunsRequest, context: grpc.aio.ServicerContext) -> pb.ListRunsResponse:
        checks = self._checks()
        checks.short("work_order_id", request.work_order_id, required=True)
        checks.done()
        pager = pagination.by_numbers(request, 1, (2**31,))  # newest first: the page runs before this number

        def op(tx: Tx) -> list[Run]:
            load_work_order(tx, request.work_order_id)
            return [with_step_runs(tx, r) for r in tx.list_runs(request.work_order_id, pager.after[0], pager.size)]

        found = await self.app.store.scan(op)
        page, token = pager.cut(
            found, lambda run: (run.number,) if run.number > 1 else None,  # nothing comes after run 1
            size=lambda run: run.ByteSize(),
        )
        return pb.ListRunsResponse(runs=page, next_page_token=token)

    @unary
    async def CancelRun(self, request: pb.CancelRunRequest, context: grpc.aio.ServicerContext) -> pb.CancelRunResponse:
        checks = self._checks()
        checks.short("run_id", request.run_id, required=True)
        if len(request.reason) > self.app.limits.max_reason:
            checks.add("reason", f"must be at most {self.app.limits.max_reason} characters")
        checks.done()

        def op(tx: Tx) -> pb.CancelRunResponse:
            return pb.CancelRunResponse(run=work_orders.cancel(tx, request.run_id, request.reason, now_us()))

        return answer_or_raise(await self.app.store.write(once("CancelRun", request, pb.CancelRunResponse, op)))

    @streaming
    async def WatchWorkOrders(self, request: pb.WatchWorkOrdersRequest, context: grpc.aio.ServicerContext) -> None:
        checks = self._checks()
        checks.short("project_id", request.project_id)
        checks.work_order_filter("filter", request.filter)
        for name in TIME_RANGE_FIELDS:
            if request.filter.HasField(name):
                checks.add(f"filter.{name}", "is not supported by WatchWorkOrders; filter by status or workflow")
        if len(request.work_order_ids) > 1000:
            checks.add("work_order_ids", "at most 1000")
        if request.from_now and request.after_cursor:
            checks.add("from_now", "cannot be given with after_cursor")
        checks.done()
        after = 0
        if request.after_cursor:
            if not re.fullmatch(r"[0-9]{1,18}", request.after_cursor):
                raise invalid("after_cursor", "is not a cursor this server gave out")
            after = int(request.after_cursor)
        project_id = auth.scope(request.project_id)
        if project_id:
            await self.app.store.read(projects.get, project_id)
        feed = self.app.feed
        if request.from_now:
            after = await feed.last_sequence()
        who = auth.caller.get()
        with feed.admit(f"token:{who.token_id}" if who else f"project:{project_id}"):
            sub = feed.subscription(project_id, request.filter, request.work_order_ids)
            async for delivery in feed.watch(sub, after):
                with sub.sending(delivery):
                    await context.write(delivery.encoded())  # encoded once for every watcher
