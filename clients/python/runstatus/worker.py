"""A small worker: claims runs, executes a Python callable per step, follows the plan's
edges, heartbeats in the background, and reports every exception for the server to classify.

    worker = Worker(Client("localhost:50051"), worker_id="py-1")

    @worker.step("fetch")
    def fetch(state: dict) -> dict:
        return {**state, "patient": lookup(state["patient_id"])}

    worker.run_until_idle()          # or worker.run_forever(stop_event)

A step receives the state its upstream step passed on (the work order's input for a root)
and returns the state to pass downstream. A step that raises is reported with the
exception's class name, so a KeyError becomes a RangeError (FAILED, the run goes on along
ON_FAILURE/ALWAYS edges) and a NameError a ReferenceError (CRASHED, the run ends at once).
A failing step's downstream steps receive its input state with an "error" entry.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runstatus.v1 import worker_service_pb2 as pb
from runstatus.v1.error_pb2 import ErrorReport, ErrorSource
from runstatus.v1.status_pb2 import RunStatus
from runstatus.v1.workflow_pb2 import EdgeCondition

from .client import Client
from .errors import FailedPrecondition
from .models import to_dict, to_struct

log = logging.getLogger("runstatus.worker")

StepFunction = Callable[[dict[str, Any]], Any]
Condition = Callable[[dict[str, Any]], bool]


@dataclass
class _Branch:
    step_id: str
    previous_step_run_id: str
    state: dict[str, Any]


@dataclass
class RunOutcome:
    run_id: str
    status: RunStatus.ValueType
    executed: list[str] = field(default_factory=list)


class _Heartbeat(threading.Thread):
    """Heartbeats a run until stopped; notes when the server says to stop (e.g. a cancel)."""

    def __init__(self, client: Client, run_id: str, lease_token: str, interval: float) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{run_id[:8]}")
        self.client, self.run_id, self.lease_token = client, run_id, lease_token
        self.interval = max(interval, 0.05)
        self.stopped = threading.Event()
        self.stop_asked = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                answer = self.client.call(self.client.worker.Heartbeat,
                                          pb.HeartbeatRequest(run_id=self.run_id, lease_token=self.lease_token))
            except Exception as e:  # noqa: BLE001 - a missed heartbeat is retried at the next beat
                log.warning("heartbeat for run %s failed: %s", self.run_id, e)
                continue
            if answer.stop:
                self.stop_asked.set()
                return


class Worker:
    def __init__(self, client: Client, *, worker_id: str = "python-worker", project_id: str | None = None) -> None:
        self.client = client
        self.worker_id = worker_id
        self.project_id = client.project_id if project_id is None else project_id
        self.steps: dict[str, StepFunction] = {}
        self.conditions: dict[str, Condition] = {}

    def step(self, step_id: str) -> Callable[[StepFunction], StepFunction]:
        """Registers the function that executes a step."""
        def register(fn: StepFunction) -> StepFunction:
            self.steps[step_id] = fn
            return fn
        return register

    def condition(self, expression: str) -> Callable[[Condition], Condition]:
        """Registers how to evaluate an EXPRESSION edge's text on a state."""
        def register(fn: Condition) -> Condition:
            self.conditions[expression] = fn
            return fn
        return register

    def run_once(self, max_runs: int = 1) -> list[RunOutcome]:
        """Claims up to `max_runs` pending runs and executes them; [] if there was none."""
        claimed = self.client.call(self.client.worker.ClaimRuns, pb.ClaimRunsRequest(
            project_id=self.project_id, worker_id=self.worker_id, max_runs=max_runs))
        return [self.execute(run) for run in claimed.runs]

    def run_until_idle(self) -> list[RunOutcome]:
        outcomes = []
        while batch := self.run_once():
            outcomes += batch
        return outcomes

    def run_forever(self, stop: threading.Event, poll_seconds: float = 1.0) -> None:
        while not stop.is_set():
            if not self.run_once():
                stop.wait(poll_seconds)

    def execute(self, claimed: pb.ClaimedRun) -> RunOutcome:
        run_id, token = claimed.run.id, claimed.lease_token
        heartbeat = _Heartbeat(self.client, run_id, token, claimed.heartbeat_interval.ToTimedelta().total_seconds())
        heartbeat.start()
        outcome = RunOutcome(run_id, claimed.run.status)
        try:
            self.client.call(self.client.worker.StartRun, pb.StartRunRequest(run_id=run_id, lease_token=token))
            status = self._execute_steps(claimed, heartbeat, outcome)
            if status is None:
                answer = self.client.call(self.client.worker.CompleteRun,
                                          pb.CompleteRunRequest(run_id=run_id, lease_token=token))
                status = answer.run.status
            outcome.status = status
        except FailedPrecondition as e:
            # Cancelled, killed by a timeout, or otherwise ended by the server: stop here.
            log.info("run %s ended by the server: %s", run_id, e)
            outcome.status = self.client.get_run(run_id).status
        finally:
            heartbeat.stopped.set()
        return outcome

    def _execute_steps(self, claimed: pb.ClaimedRun, heartbeat: _Heartbeat,
                       outcome: RunOutcome) -> RunStatus.ValueType | None:
        """Runs the plan; returns the run's status if a step aborted it, else None."""
        run, workflow = claimed.run, claimed.workflow
        run_id, token = run.id, claimed.lease_token
        queue = self._starts(claimed)
        while queue:
            if heartbeat.stop_asked.is_set():
                raise FailedPrecondition("the server asked this worker to stop")
            branch = queue.pop(0)
            step_run = self.client.call(self.client.worker.StartStep, pb.StartStepRequest(
                run_id=run_id, lease_token=token, step_id=branch.step_id,
                previous_step_run_id=branch.previous_step_run_id)).step_run
            outcome.executed.append(branch.step_id)
            request = pb.CompleteStepRequest(run_id=run_id, lease_token=token, step_run_id=step_run.id)
            try:
                fn = self.steps.get(branch.step_id)
                if fn is None:
                    raise _Unregistered(f"no function is registered for step {branch.step_id!r}")
                result = fn(dict(branch.state))
                state = result if isinstance(result, dict) else branch.state
                request.output.CopyFrom(to_struct(state))
            except Exception as e:  # noqa: BLE001 - the server classifies every exception
                request.error.CopyFrom(_report(e))
                state = {**branch.state, "error": {"name": type(e).__name__, "message": str(e)}}
            answer: pb.CompleteStepResponse = self.client.call(self.client.worker.CompleteStep, request)
            if answer.run_status != RunStatus.RUN_STATUS_RUNNING:
                return answer.run_status  # an abort ended the run at once
            succeeded = answer.step_run.status == RunStatus.RUN_STATUS_SUCCESS
            for edge in workflow.edges:
                if edge.source_step_id == branch.step_id and self._follows(edge, succeeded, state):
                    queue.append(_Branch(edge.target_step_id, step_run.id, state))
        return None

    def _starts(self, claimed: pb.ClaimedRun) -> list[_Branch]:
        """The roots with the work order's input; for a retry from a step, that step, led
        to by the latest reused upstream step run that has an edge to it."""
        run, workflow, input_ = claimed.run, claimed.workflow, to_dict(claimed.input)
        if not run.start_step_id:
            targets = {e.target_step_id for e in workflow.edges}
            return [_Branch(s.id, "", input_) for s in workflow.steps if s.id not in targets]
        parents = {e.source_step_id for e in workflow.edges if e.target_step_id == run.start_step_id}
        reused = [s for s in run.step_runs if s.step_id in parents]
        if not reused:
            return [_Branch(run.start_step_id, "", input_)]
        previous = max(reused, key=lambda s: s.end_time.ToMicroseconds())
        return [_Branch(run.start_step_id, previous.id, to_dict(previous.output) or input_)]

    def _follows(self, edge: Any, succeeded: bool, state: dict[str, Any]) -> bool:
        if edge.condition == EdgeCondition.EDGE_CONDITION_ALWAYS:
            return True
        if edge.condition == EdgeCondition.EDGE_CONDITION_ON_SUCCESS:
            return succeeded
        if edge.condition == EdgeCondition.EDGE_CONDITION_ON_FAILURE:
            return not succeeded
        evaluate = self.conditions.get(edge.expression)
        if evaluate is None:
            log.warning("no condition registered for expression %r; edge not followed", edge.expression)
            return False
        return bool(evaluate(state))


class _Unregistered(Exception):
    """A step the worker has no function for: the runtime's fault, not the job's."""


def _report(e: BaseException) -> ErrorReport:
    runtime = isinstance(e, _Unregistered)
    return ErrorReport(
        name=_utf8_head(type(e).__name__, 256), message=_utf8_head(str(e), 60_000), language="python",
        source=ErrorSource.ERROR_SOURCE_RUNTIME if runtime else ErrorSource.ERROR_SOURCE_JOB,
        stack=_utf8_tail("".join(traceback.format_exception(e)), 200_000),
    )


# The server limits error fields in UTF-8 bytes, so cut by bytes, never inside a character.
def _utf8_head(text: str, limit: int) -> str:
    return text.encode(errors="replace")[:limit].decode(errors="ignore")


def _utf8_tail(text: str, limit: int) -> str:
    return text.encode(errors="replace")[-limit:].decode(errors="ignore")
