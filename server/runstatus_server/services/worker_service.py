from __future__ import annotations

import grpc

from runstatus.v1 import worker_service_pb2 as pb
from runstatus.v1 import worker_service_pb2_grpc as pb_grpc

from .. import worker
from ..errors import Refused
from ..idempotency import answer_or_raise, once
from ..store.base import Tx
from ..util import now_us
from .common import App, Checks, unary

MAX_CLAIM = 100


class WorkerService(pb_grpc.WorkerServiceServicer):
    def __init__(self, app: App) -> None:
        self.app = app

    def _checks(self, request: object) -> Checks:
        """Every report names its run and carries its lease token."""
        checks = Checks(self.app.limits)
        checks.short("run_id", getattr(request, "run_id"), required=True)
        checks.short("lease_token", getattr(request, "lease_token"), required=True)
        return checks

    @unary
    async def ClaimRuns(self, request: pb.ClaimRunsRequest, context: grpc.aio.ServicerContext) -> pb.ClaimRunsResponse:
        checks = Checks(self.app.limits)
        checks.short("project_id", request.project_id)
        checks.short("worker_id", request.worker_id, required=True)
        if not 0 <= request.max_runs <= MAX_CLAIM:
            checks.add("max_runs", f"must be between 1 and {MAX_CLAIM} (0 means 1)")
        checks.done()

        def op(tx: Tx) -> pb.ClaimRunsResponse:
            runs = worker.claim(
                tx, request.project_id, request.worker_id, request.max_runs or 1, self.app.leases, now_us()
            )
            return pb.ClaimRunsResponse(runs=runs)

        return answer_or_raise(await self.app.store.write(once("ClaimRuns", request, pb.ClaimRunsResponse, op,
                                               kept=worker.kept_claims, restore=worker.restored_claims)))

    @unary
    async def Heartbeat(self, request: pb.HeartbeatRequest, context: grpc.aio.ServicerContext) -> pb.HeartbeatResponse:
        self._checks(request).done()
        return await self.app.store.write(
            worker.heartbeat, request.run_id, request.lease_token, self.app.leases, now_us()
        )

    @unary
    async def StartRun(self, request: pb.StartRunRequest, context: grpc.aio.ServicerContext) -> pb.StartRunResponse:
        self._checks(request).done()

        def op(tx: Tx) -> pb.StartRunResponse | Refused:
            run = worker.start_run(tx, request.run_id, request.lease_token, self.app.leases, now_us())
            return run if isinstance(run, Refused) else pb.StartRunResponse(run=run)

        return answer_or_raise(await self.app.store.write(once("StartRun", request, pb.StartRunResponse, op)))

    @unary
    async def StartStep(self, request: pb.StartStepRequest, context: grpc.aio.ServicerContext) -> pb.StartStepResponse:
        checks = self._checks(request)
        checks.short("step_id", request.step_id, required=True)
        checks.short("previous_step_run_id", request.previous_step_run_id)
        checks.done()

        def op(tx: Tx) -> pb.StartStepResponse | Refused:
            step_run = worker.start_step(
                tx, request.run_id, request.lease_token, request.step_id, request.previous_step_run_id,
                self.app.leases, self.app.limits, now_us(),
            )
            return step_run if isinstance(step_run, Refused) else pb.StartStepResponse(step_run=step_run)

        return answer_or_raise(await self.app.store.write(once("StartStep", request, pb.StartStepResponse, op)))

    @unary
    async def CompleteStep(self, request: pb.CompleteStepRequest, context: grpc.aio.ServicerContext) -> pb.CompleteStepResponse:
        checks = self._checks(request)
        checks.short("step_run_id", request.step_run_id, required=True)
        if request.HasField("error"):
            checks.error_report("error", request.error)
        checks.struct("output", request.output, self.app.limits.max_output_bytes)
        checks.done()

        def op(tx: Tx) -> pb.CompleteStepResponse | Refused:
            return worker.complete_step(
                tx, self.app.classifier, request.run_id, request.lease_token, request.step_run_id,
                request.error if request.HasField("error") else None,
                request.output if request.HasField("output") else None,
                self.app.leases, self.app.limits, now_us(),
            )

        return answer_or_raise(await self.app.store.write(once("CompleteStep", request, pb.CompleteStepResponse, op)))

    @unary
    async def CompleteRun(self, request: pb.CompleteRunRequest, context: grpc.aio.ServicerContext) -> pb.CompleteRunResponse:
        checks = self._checks(request)
        if request.HasField("error"):
            checks.error_report("error", request.error)
        checks.done()

        def op(tx: Tx) -> pb.CompleteRunResponse | Refused:
            run = worker.complete_run(
                tx, self.app.classifier, request.run_id, request.lease_token,
                request.error if request.HasField("error") else None, self.app.leases, now_us(),
            )
            return run if isinstance(run, Refused) else pb.CompleteRunResponse(run=run)

        return answer_or_raise(await self.app.store.write(once("CompleteRun", request, pb.CompleteRunResponse, op)))
