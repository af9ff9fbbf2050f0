from __future__ import annotations

import grpc

from runstatus.v1 import worker_service_pb2 as pb
from runstatus.v1 import worker_service_pb2_grpc as pb_grpc

from .. import tracing
from .. import worker_protocol as protocol
from ..errors import Refused
from ..store.base import Tx
from ..util import now_us
from . import checks
from .kept_answers import write_once
from .rpc import App, unary


class WorkerService(pb_grpc.WorkerServiceServicer):
    def __init__(self, app: App) -> None:
        self.app = app

    def _terms(self, traced: bool = False) -> protocol.Terms:
        """`traced`: a call that may begin a run (ClaimRuns, StartRun), which remembers its trace."""
        return protocol.Terms(self.app.leases, self.app.limits, self.app.classifier, now_us(),
                              tracing.sampled_trace_id() if traced else "")

    @unary
    async def ClaimRuns(
        self, request: pb.ClaimRunsRequest,
        context: grpc.aio.ServicerContext[pb.ClaimRunsRequest, pb.ClaimRunsResponse],
    ) -> pb.ClaimRunsResponse:
        checks.claim_runs(request, self.app.limits)

        def op(tx: Tx) -> pb.ClaimRunsResponse:
            runs = protocol.claim(tx, request.project_id, request.worker_id, request.max_runs or 1,
                                  self._terms(traced=True))
            return pb.ClaimRunsResponse(runs=runs)

        return await write_once(self.app.store, "ClaimRuns", request, pb.ClaimRunsResponse, op)

    @unary
    async def Heartbeat(
        self, request: pb.HeartbeatRequest,
        context: grpc.aio.ServicerContext[pb.HeartbeatRequest, pb.HeartbeatResponse],
    ) -> pb.HeartbeatResponse:
        checks.report(request, self.app.limits)
        terms = self._terms()  # a beat counts from when it came, not from when its write runs

        def op(tx: Tx) -> pb.HeartbeatResponse:
            beat = protocol.heartbeat(tx, protocol.Report(request.run_id, request.lease_token), terms)
            return pb.HeartbeatResponse(status=beat.status, stop=beat.stop, lease_expire_time=beat.lease_expire_time)

        return await self.app.store.write(op)

    @unary
    async def StartRun(
        self, request: pb.StartRunRequest,
        context: grpc.aio.ServicerContext[pb.StartRunRequest, pb.StartRunResponse],
    ) -> pb.StartRunResponse:
        checks.report(request, self.app.limits)

        def op(tx: Tx) -> pb.StartRunResponse | Refused:
            run = protocol.start_run(tx, protocol.Report(request.run_id, request.lease_token),
                                     self._terms(traced=True))
            return run if isinstance(run, Refused) else pb.StartRunResponse(run=run)

        return await write_once(self.app.store, "StartRun", request, pb.StartRunResponse, op)

    @unary
    async def StartStep(
        self, request: pb.StartStepRequest,
        context: grpc.aio.ServicerContext[pb.StartStepRequest, pb.StartStepResponse],
    ) -> pb.StartStepResponse:
        checks.start_step(request, self.app.limits)
        report = protocol.StepStart(request.run_id, request.lease_token, request.step_id, request.previous_step_run_id)

        def op(tx: Tx) -> pb.StartStepResponse | Refused:
            step_run = protocol.start_step(tx, report, self._terms())
            return step_run if isinstance(step_run, Refused) else pb.StartStepResponse(step_run=step_run)

        return await write_once(self.app.store, "StartStep", request, pb.StartStepResponse, op)

    @unary
    async def CompleteStep(
        self, request: pb.CompleteStepRequest,
        context: grpc.aio.ServicerContext[pb.CompleteStepRequest, pb.CompleteStepResponse],
    ) -> pb.CompleteStepResponse:
        checks.complete_step(request, self.app.limits)
        report = protocol.StepEnd(
            request.run_id, request.lease_token, request.step_run_id,
            error=request.error if request.HasField("error") else None,
            output=request.output if request.HasField("output") else None,
        )

        def op(tx: Tx) -> pb.CompleteStepResponse | Refused:
            ended = protocol.complete_step(tx, report, self._terms())
            if isinstance(ended, Refused):
                return ended
            return pb.CompleteStepResponse(step_run=ended.step_run, run_status=ended.run_status,
                                           classification=ended.classification)

        return await write_once(self.app.store, "CompleteStep", request, pb.CompleteStepResponse, op)

    @unary
    async def CompleteRun(
        self, request: pb.CompleteRunRequest,
        context: grpc.aio.ServicerContext[pb.CompleteRunRequest, pb.CompleteRunResponse],
    ) -> pb.CompleteRunResponse:
        checks.complete_run(request, self.app.limits)
        report = protocol.RunEnd(request.run_id, request.lease_token,
                                 error=request.error if request.HasField("error") else None)

        def op(tx: Tx) -> pb.CompleteRunResponse | Refused:
            run = protocol.complete_run(tx, report, self._terms())
            return run if isinstance(run, Refused) else pb.CompleteRunResponse(run=run)

        return await write_once(self.app.store, "CompleteRun", request, pb.CompleteRunResponse, op)
