"""Workers: claim runs, execute a Python callable per step, follow the plan's edges,
heartbeat, and report every exception for the server to classify.

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

`AsyncWorker` is the same over `AsyncClient`: its methods are coroutines, a step may be a
coroutine function (awaited) or a plain function (called directly, so it holds the event
loop while it runs), and each run is heartbeaten by an asyncio task instead of a thread.

Both speak the protocol through the client's calls (`claim_runs`, `start_step`, ...): every
report carries a request_id, made once per report, so the channel's retries of it are
applied once. Where a run starts and which edges it follows come from `runstatus.plan`,
the rules the server checks. Both run the one run loop here, `_Worker._execute`, which
decides and yields what to do next (`_Do` a call, `_Invoke` a step function); `Worker` and
`AsyncWorker` only perform those, blocking or awaiting.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import traceback
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, Union

from runstatus.v1 import worker_service_pb2 as pb
from runstatus.v1.error_pb2 import ErrorReport, ErrorSeverity, ErrorSource
from runstatus.v1.status_pb2 import RunStatus
from runstatus.v1.workflow_pb2 import Edge

from . import _trace, plan
from ._calls import Calls, unary
from .client import AsyncClient, Client
from .errors import FailedPrecondition
from .models import to_dict

log = logging.getLogger("runstatus.worker")

P = ParamSpec("P")

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


# What the run loop asks its worker to do: make a call of the client, or run a step function.

class _Do(Generic[P]):
    """Make this call of the client (a `Calls` method, with these arguments); the answer, or
    the RunstatusError it raised, goes back to the run loop."""

    def __init__(self, call: unary[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> None:
        self.call, self.args, self.kwargs = call, args, kwargs

    def on(self, client: Calls[Any]) -> Any:
        """The call made on `client`: its answer (`Client`) or a coroutine (`AsyncClient`)."""
        return self.call(client, *self.args, **self.kwargs)


@dataclass
class _Invoke:
    """Run this step function on this state; its result, or the exception it raised, goes back."""
    fn: StepFunction
    state: dict[str, Any]


_Action = Union[_Do[Any], _Invoke]
_Loop = Generator[_Action, Any, RunOutcome]


class _Steps:
    """A run loop being driven: `advance` hands it the last answer (or error) and returns
    what it asks for next, None once it has finished with `outcome`."""

    def __init__(self, loop: _Loop) -> None:
        self._loop = loop
        self.outcome: RunOutcome | None = None

    def advance(self, answer: Any = None, error: Exception | None = None) -> _Action | None:
        try:
            return self._loop.throw(error) if error is not None else self._loop.send(answer)
        except StopIteration as done:
            self.outcome = done.value
            return None

    def close(self) -> None:
        self._loop.close()


def _interval(claimed: pb.ClaimedRun) -> float:
    return max(claimed.heartbeat_interval.ToTimedelta().total_seconds(), 0.05)


class _Worker:
    """What both workers share: the registrations, and the run loop's decisions."""

    def __init__(self, client: Calls[Any], worker_id: str, project_id: str | None, tracer_provider: Any) -> None:
        self.worker_id = worker_id
        self.project_id = client.project_id if project_id is None else project_id
        self.steps: dict[str, StepFunction] = {}
        self.conditions: dict[str, Condition] = {}
        self._tracer = _trace.tracer(tracer_provider)  # None without opentelemetry-api: no spans

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

    def _claim(self, max_runs: int) -> _Do[Any]:
        return _Do(Calls.claim_runs, self.worker_id, max_runs=max_runs, project_id=self.project_id)

    def _execute(self, claimed: pb.ClaimedRun, stop_asked: Callable[[], bool]) -> _Loop:
        """The run loop: starts the run, executes the plan, completes the run. A refusal
        (cancelled, killed by a timeout, or otherwise ended by the server) ends it early."""
        run, token = claimed.run, claimed.lease_token
        run_id = run.id
        outcome = RunOutcome(run_id, run.status)
        with _trace.span(self._tracer, f"run {run.workflow_id}", {
                "runstatus.run_id": run_id, "runstatus.work_order_id": run.work_order_id,
                "runstatus.project_id": run.project_id, "runstatus.workflow_id": run.workflow_id,
                "runstatus.workflow_version": run.workflow_version, "runstatus.run_number": run.number,
                "runstatus.worker_id": self.worker_id}) as span:
            try:
                yield _Do(Calls.start_run, run_id, token)
                status = yield from self._execute_steps(claimed, stop_asked, outcome)
                if status is None:
                    answer: pb.CompleteRunResponse = yield _Do(Calls.complete_run, run_id, token)
                    status = answer.run.status
                outcome.status = status
            except FailedPrecondition as e:
                log.info("run %s ended by the server: %s", run_id, e)
                outcome.status = (yield _Do(Calls.get_run, run_id)).status
            _trace.run_ended(span, outcome.status)
        return outcome

    def _execute_steps(self, claimed: pb.ClaimedRun, stop_asked: Callable[[], bool],
                       outcome: RunOutcome) -> Generator[_Action, Any, RunStatus.ValueType | None]:
        """Runs the plan; returns the run's status if a step aborted it, else None."""
        workflow, run_id, token = claimed.workflow, claimed.run.id, claimed.lease_token
        queue = self._starts(claimed)
        while queue:
            if stop_asked():
                raise FailedPrecondition("the server asked this worker to stop")
            branch = queue.pop(0)
            with _trace.span(self._tracer, f"step {branch.step_id}",
                             {"runstatus.run_id": run_id, "runstatus.step_id": branch.step_id}) as span:
                started: pb.StartStepResponse = yield _Do(Calls.start_step, run_id, token, branch.step_id,
                                                          previous_step_run_id=branch.previous_step_run_id)
                step_run_id = started.step_run.id
                if span is not None:
                    span.set_attribute("runstatus.step_run_id", step_run_id)
                outcome.executed.append(branch.step_id)
                output: dict[str, Any] | None = None
                error: ErrorReport | None = None
                raised: Exception | None = None
                try:
                    fn = self.steps.get(branch.step_id)
                    if fn is None:
                        raise _Unregistered(f"no function is registered for step {branch.step_id!r}")
                    result = yield _Invoke(fn, dict(branch.state))
                    state = output = result if isinstance(result, dict) else branch.state
                except Exception as e:  # noqa: BLE001 - the server classifies every exception
                    error, raised = _report(e), e
                    state = {**branch.state, "error": {"name": type(e).__name__, "message": str(e)}}
                answer: pb.CompleteStepResponse = yield _Do(Calls.complete_step, run_id, token, step_run_id,
                                                            output=output, error=error)
                if raised is not None:
                    _trace.step_error(span, raised,
                                      answer.classification if answer.HasField("classification") else None)
            if answer.run_status != RunStatus.RUN_STATUS_RUNNING:
                return answer.run_status  # an abort ended the run at once
            for target in plan.next_steps(workflow, answer.step_run, lambda edge: self._holds(edge, state)):
                queue.append(_Branch(target, step_run_id, state))
        return None

    def _starts(self, claimed: pb.ClaimedRun) -> list[_Branch]:
        """Where `plan.starts` says, with the work order's input; a retry's start step led to
        by a reused step run gets that step run's output (the input if it had none)."""
        input_ = to_dict(claimed.input)
        return [_Branch(step_id, "", input_) if previous is None
                else _Branch(step_id, previous.id, to_dict(previous.output) or input_)
                for step_id, previous in plan.starts(claimed.run, claimed.workflow)]

    def _holds(self, edge: Edge, state: dict[str, Any]) -> bool:
        """Whether an EXPRESSION edge's expression holds on the state, by its registered condition."""
        evaluate = self.conditions.get(edge.expression)
        if evaluate is None:
            log.warning("no condition registered for expression %r; edge not followed", edge.expression)
            return False
        return bool(evaluate(state))


class _Heartbeat(threading.Thread):
    """Heartbeats a run until stopped; notes when the server says to stop (e.g. a cancel)."""

    def __init__(self, client: Client, run_id: str, lease_token: str, interval: float) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{run_id[:8]}")
        self.client, self.run_id, self.lease_token = client, run_id, lease_token
        self.interval = interval
        self.stopped = threading.Event()
        self.stop_asked = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                answer = self.client.heartbeat(self.run_id, self.lease_token)
            except Exception as e:  # noqa: BLE001 - a missed heartbeat is retried at the next beat
                log.warning("heartbeat for run %s failed: %s", self.run_id, e)
                continue
            if answer.stop:
                self.stop_asked.set()
                return


class Worker(_Worker):
    """A blocking worker over `Client`; each run it executes is heartbeaten by a thread."""

    def __init__(self, client: Client, *, worker_id: str = "python-worker", project_id: str | None = None,
                 tracer_provider: Any = None) -> None:
        """`tracer_provider`: OpenTelemetry's, for the spans of runs and steps (None: the global one)."""
        super().__init__(client, worker_id, project_id, tracer_provider)
        self.client = client

    def run_once(self, max_runs: int = 1) -> list[RunOutcome]:
        """Claims up to `max_runs` pending runs and executes them; [] if there was none."""
        claimed: pb.ClaimRunsResponse = self._claim(max_runs).on(self.client)
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
        heartbeat = _Heartbeat(self.client, claimed.run.id, claimed.lease_token, _interval(claimed))
        heartbeat.start()
        steps = _Steps(self._execute(claimed, heartbeat.stop_asked.is_set))
        try:
            action = steps.advance()
            while action is not None:
                try:
                    answer = self._perform(action)
                except Exception as e:  # noqa: BLE001 - the run loop decides what an error means
                    action = steps.advance(error=e)
                else:
                    action = steps.advance(answer)
        finally:
            heartbeat.stopped.set()
            steps.close()
        assert steps.outcome is not None
        return steps.outcome

    def _perform(self, action: _Action) -> Any:
        if isinstance(action, _Do):
            return action.on(self.client)
        result = action.fn(action.state)
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            raise _Unregistered("the step function is a coroutine function: run it with an AsyncWorker")
        return result


class _AsyncHeartbeat:
    """Heartbeats a run from an asyncio task until stopped; notes when the server says to stop."""

    def __init__(self, client: AsyncClient, run_id: str, lease_token: str, interval: float) -> None:
        self.client, self.run_id, self.lease_token, self.interval = client, run_id, lease_token, interval
        self.stop_asked = False
        self._task = asyncio.create_task(self._beat(), name=f"heartbeat-{run_id[:8]}")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                answer = await self.client.heartbeat(self.run_id, self.lease_token)
            except Exception as e:  # noqa: BLE001 - a missed heartbeat is retried at the next beat
                log.warning("heartbeat for run %s failed: %s", self.run_id, e)
                continue
            if answer.stop:
                self.stop_asked = True
                return

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.wait([self._task])  # the beat ends; a cancel of our caller still propagates


class AsyncWorker(_Worker):
    """The asyncio worker over `AsyncClient`: the same registrations and run loop as `Worker`,
    awaited. A step may be a coroutine function (awaited) or a plain one (called directly)."""

    def __init__(self, client: AsyncClient, *, worker_id: str = "python-worker",
                 project_id: str | None = None, tracer_provider: Any = None) -> None:
        super().__init__(client, worker_id, project_id, tracer_provider)
        self.client = client

    async def run_once(self, max_runs: int = 1) -> list[RunOutcome]:
        """Claims up to `max_runs` pending runs and executes them, one after another; [] if
        there was none."""
        claimed: pb.ClaimRunsResponse = await self._claim(max_runs).on(self.client)
        return [await self.execute(run) for run in claimed.runs]

    async def run_until_idle(self) -> list[RunOutcome]:
        outcomes = []
        while batch := await self.run_once():
            outcomes += batch
        return outcomes

    async def run_forever(self, stop: asyncio.Event, poll_seconds: float = 1.0) -> None:
        while not stop.is_set():
            if not await self.run_once():
                try:
                    await asyncio.wait_for(stop.wait(), poll_seconds)
                except TimeoutError:
                    pass

    async def execute(self, claimed: pb.ClaimedRun) -> RunOutcome:
        heartbeat = _AsyncHeartbeat(self.client, claimed.run.id, claimed.lease_token, _interval(claimed))
        steps = _Steps(self._execute(claimed, lambda: heartbeat.stop_asked))
        try:
            action = steps.advance()
            while action is not None:
                try:
                    answer = await self._perform(action)
                except Exception as e:  # noqa: BLE001 - the run loop decides what an error means
                    action = steps.advance(error=e)
                else:
                    action = steps.advance(answer)
        finally:
            await heartbeat.stop()
            steps.close()
        assert steps.outcome is not None
        return steps.outcome

    async def _perform(self, action: _Action) -> Any:
        if isinstance(action, _Do):
            return await action.on(self.client)
        result = action.fn(action.state)
        return await result if inspect.isawaitable(result) else result


class Lease:
    """One claimed run and the reports its worker makes on it, for a worker that runs steps its
    own way (an engine of its own; the contract suite's lifecycle scenarios): each report fills
    in the run id, the lease token and a request id of its own, so the channel's retries of it
    are applied once. `Worker` makes the same calls."""

    def __init__(self, client: Client, claimed: pb.ClaimedRun) -> None:
        self.client = client
        self.claimed = claimed
        self.run_id = claimed.run.id
        self.lease_token = claimed.lease_token

    def start_run(self) -> Any:
        """PENDING -> RUNNING; the run."""
        return self.client.start_run(self.run_id, self.lease_token).run

    def start_step(self, step_id: str, previous_step_run_id: str = "") -> Any:
        """A step run starts (at a root, or along the edge from previous_step_run_id); the step run."""
        return self.client.start_step(self.run_id, self.lease_token, step_id,
                                      previous_step_run_id=previous_step_run_id).step_run

    def complete_step(self, step_run_id: str, *, output: dict[str, Any] | None = None,
                      error: ErrorReport | None = None) -> pb.CompleteStepResponse:
        return self.client.complete_step(self.run_id, self.lease_token, step_run_id, output=output, error=error)

    def complete_run(self, *, error: ErrorReport | None = None) -> Any:
        """The run ends (by the leaf rule, or with a run-level error); the run."""
        return self.client.complete_run(self.run_id, self.lease_token, error=error).run

    def heartbeat(self) -> pb.HeartbeatResponse:
        """Extends the lease; its `stop` says to stop working on the run."""
        return self.client.heartbeat(self.run_id, self.lease_token)


def claim(client: Client, worker_id: str, *, max_runs: int = 1, project_id: str | None = None) -> list[Lease]:
    """Claims up to max_runs pending runs of the project (the client's, when None): a Lease each."""
    return [Lease(client, claimed) for claimed in client.claim_runs(worker_id, max_runs=max_runs,
                                                                    project_id=project_id).runs]


class _Unregistered(Exception):
    """A step the worker cannot run (no function, or one of the wrong kind): the runtime's
    fault, not the job's."""


def _report(e: BaseException) -> ErrorReport:
    """The exception as the server classifies it. A wrapper exception may say what it wraps and
    how bad it is, the way OpenFn's runtime errors do: a `subtype` attribute (the wrapped class's
    name) and a `severity` attribute ("fail", "crash", "kill" or "exception")."""
    runtime = isinstance(e, _Unregistered)
    subtype = getattr(e, "subtype", "")
    return ErrorReport(
        name=_utf8_head(type(e).__name__, 256), message=_utf8_head(str(e), 60_000), language="python",
        source=ErrorSource.ERROR_SOURCE_RUNTIME if runtime else ErrorSource.ERROR_SOURCE_JOB,
        stack=_utf8_tail("".join(traceback.format_exception(e)), 200_000),
        subtype=_utf8_head(subtype, 256) if isinstance(subtype, str) else "",
        severity=_severity(getattr(e, "severity", None)),
    )


_SEVERITIES = {
    "fail": ErrorSeverity.ERROR_SEVERITY_FAIL, "crash": ErrorSeverity.ERROR_SEVERITY_CRASH,
    "kill": ErrorSeverity.ERROR_SEVERITY_KILL, "exception": ErrorSeverity.ERROR_SEVERITY_EXCEPTION,
}


def _severity(value: object) -> ErrorSeverity.ValueType:
    """An exception's own `severity`, if it is one the server knows; anything else is none."""
    if isinstance(value, str):
        return _SEVERITIES.get(value.strip().lower(), ErrorSeverity.ERROR_SEVERITY_UNSPECIFIED)
    if isinstance(value, int) and not isinstance(value, bool) and value in ErrorSeverity.values():
        return ErrorSeverity.ValueType(value)
    return ErrorSeverity.ERROR_SEVERITY_UNSPECIFIED


# The server limits error fields in UTF-8 bytes, so cut by bytes, never inside a character.
def _utf8_head(text: str, limit: int) -> str:
    return text.encode(errors="replace")[:limit].decode(errors="ignore")


def _utf8_tail(text: str, limit: int) -> str:
    return text.encode(errors="replace")[-limit:].decode(errors="ignore")
