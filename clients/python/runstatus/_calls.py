"""Every call of the Python client, written once for `Client` and `AsyncClient`.

A call is a method of `Calls` that builds its request from keyword arguments and returns a
plan: which stub method to call with that request, and how to read the answer
(`UnaryCall`), how to ask for each page and find its items (`PagedCall`), or how to
(re)open a watch from a cursor (`WatchCall`). Its decorator (`unary`, `paged`, `watching`)
hands the plan to the client it is called on, which supplies only the running of plans:
`Client` blocks and returns values and iterators, `AsyncClient` returns coroutines and
async iterators. The decorators' overloads give each client its precise signature.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, Union, overload

import grpc
import grpc.aio
from google.protobuf.field_mask_pb2 import FieldMask

from runstatus.v1 import classifier_service_pb2 as classifier_pb
from runstatus.v1 import classifier_service_pb2_grpc as classifier_grpc
from runstatus.v1 import notification_pb2
from runstatus.v1 import notification_service_pb2 as notification_pb
from runstatus.v1 import notification_service_pb2_grpc as notification_grpc
from runstatus.v1 import project_service_pb2 as project_pb
from runstatus.v1 import project_service_pb2_grpc as project_grpc
from runstatus.v1 import stats_service_pb2 as stats_pb
from runstatus.v1 import stats_service_pb2_grpc as stats_grpc
from runstatus.v1 import token_pb2
from runstatus.v1 import token_service_pb2 as token_pb
from runstatus.v1 import token_service_pb2_grpc as token_grpc
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1 import work_order_service_pb2_grpc as wo_grpc
from runstatus.v1 import worker_service_pb2 as worker_pb
from runstatus.v1 import worker_service_pb2_grpc as worker_grpc
from runstatus.v1 import workflow_service_pb2 as wf_pb
from runstatus.v1 import workflow_service_pb2_grpc as wf_grpc
from runstatus.v1.error_pb2 import ErrorReport
from runstatus.v1.error_reason_pb2 import ErrorReason
from runstatus.v1.status_pb2 import RunStatus
from runstatus.v1.project_pb2 import RetentionPolicy
from runstatus.v1.token_pb2 import Role

from . import _requests as req
from . import retention as retention_policy
from .errors import from_rpc_error
from .models import Classification, Event, Project, Run, WorkOrder, Workflow, to_struct, to_timestamp

if TYPE_CHECKING:
    from .client import AsyncClient, Client

P = ParamSpec("P")
T = TypeVar("T")
Req = TypeVar("Req")
Resp = TypeVar("Resp")
Ch = TypeVar("Ch", grpc.Channel, grpc.aio.Channel)

Token = token_pb2.Token
Subscription = notification_pb2.NotificationSubscription
Delivery = notification_pb2.NotificationDelivery
RoleLike = Union[Role.ValueType, str]

DEFAULT_ADDRESS = "localhost:50051"
RECONNECT_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0)
# A watch that ends with these resumes from its cursor (a restart, a proxy, a lost network).
RECONNECT_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL)
SERVICES = ("ClassifierService", "WorkflowService", "ProjectService", "WorkOrderService", "WorkerService",
            "TokenService", "NotificationService", "StatsService")


def service_config(retries: int) -> str:
    """Retry every call on UNAVAILABLE (safe: mutating calls carry request ids), and spread calls
    over every address the target names (several servers on one database behind one DNS name,
    or "ipv4:10.0.0.1:50051,10.0.0.2:50051"): round_robin, where gRPC's default would pin the
    client to the first server that answers."""
    balancing: list[dict[str, Any]] = [{"round_robin": {}}]
    if retries <= 1:
        return json.dumps({"loadBalancingConfig": balancing, "methodConfig": [{"name": [{"service": ""}]}]})
    return json.dumps({"loadBalancingConfig": balancing, "methodConfig": [{
        "name": [{"service": f"runstatus.v1.{s}"} for s in SERVICES],
        "retryPolicy": {"maxAttempts": min(retries, 5), "initialBackoff": "0.1s", "maxBackoff": "2s",
                        "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
    }]})


def channel_options(retries: int) -> list[tuple[str, Any]]:
    return [
        ("grpc.service_config", service_config(retries)), ("grpc.enable_retries", int(retries > 1)),
        # Each client its own connection: a new client must not inherit the reconnect backoff of
        # another one's connection (gRPC shares them per target by default), or its first call
        # after a server restart fails while the old connection still waits to retry.
        ("grpc.use_local_subchannel_pool", 1),
        # After a restart, reconnect within seconds, not gRPC's default of up to two minutes.
        ("grpc.max_reconnect_backoff_ms", 5000),
    ]


def credentials(tls: bool | grpc.ChannelCredentials, root_certificates: bytes | None,
                client_certificate: tuple[bytes, bytes] | None = None) -> grpc.ChannelCredentials | None:
    """TLS when asked; with `client_certificate` (chain, key), mTLS."""
    if isinstance(tls, grpc.ChannelCredentials):
        return tls
    if tls or root_certificates or client_certificate:
        chain, key = client_certificate or (None, None)
        return grpc.ssl_channel_credentials(root_certificates=root_certificates, private_key=key,
                                            certificate_chain=chain)
    return None


def _answer(answer: Resp) -> Resp:
    """The answer as it came: the worker calls return the response messages."""
    return answer


def _role(value: RoleLike) -> Role.ValueType:
    """Role.ROLE_ADMIN, "ROLE_ADMIN", "ADMIN" or "admin"."""
    if isinstance(value, str):
        name = value.upper()
        return Role.Value(name if name.startswith("ROLE_") else f"ROLE_{name}")
    return value


# Plans: what a client runs.

class UnaryCall(Generic[T]):
    """One call: a stub method, its request, how to read the answer, and the deadline (the
    client's when None)."""

    def __init__(self, method: grpc.UnaryUnaryMultiCallable[Req, Resp], request: Req,
                 unpack: Callable[[Resp], T], timeout: float | None = None) -> None:
        self.method: Any = method
        self.request: Any = request
        self.unpack: Callable[[Any], T] = unpack
        self.timeout = timeout


class PagedCall(Generic[T]):
    """A List call, page after page until one has no next_page_token (or `limit` items
    have been taken): `next_request()` is None when it is done, `take(page)` reads a page."""

    def __init__(self, method: grpc.UnaryUnaryMultiCallable[Req, Resp], request: Callable[[str], Req],
                 items: Callable[[Resp], Iterable[T]], limit: int | None = None) -> None:
        self.method: Any = method
        self._request: Callable[[str], Any] = request
        self._items: Callable[[Any], Iterable[T]] = items
        self._limit = limit
        self._page_token: str | None = ""
        self._taken = 0

    def next_request(self) -> Any:
        if self._page_token is None or (self._limit is not None and self._taken >= self._limit):
            return None
        return self._request(self._page_token)

    def take(self, page: Any) -> list[T]:
        items = list(self._items(page))
        if self._limit is not None:
            items = items[:max(self._limit - self._taken, 0)]
        self._taken += len(items)
        self._page_token = page.next_page_token or None
        return items


class WatchCall:
    """A server stream of events that is reopened after the last cursor seen when the
    connection breaks: `event(item)` for each item, `backoff(error)` when it breaks."""

    def __init__(self, method: grpc.UnaryStreamMultiCallable[Req, wo_pb.WatchWorkOrdersResponse],
                 request: Callable[[str], Req], cursor: str, reconnect: bool) -> None:
        self.method: Any = method
        self._request: Callable[[str], Any] = request
        self.cursor = cursor
        self._reconnect = reconnect
        self._failures = 0

    def next_request(self) -> Any:
        return self._request(self.cursor)

    def events(self, item: wo_pb.WatchWorkOrdersResponse) -> Iterator[Event]:
        """The response's event, or each of a batched response's: the cursor moves as each is
        handed out (a reconnection resumes after the last one given)."""
        self._failures = 0
        if not item.events:
            self.cursor = item.cursor
            yield Event.of(item.event, item.cursor)
        for event in item.events:
            self.cursor = str(event.sequence)
            yield Event.of(event, self.cursor)

    def backoff(self, error: grpc.RpcError) -> float:
        """The seconds to wait before reopening, or the error as a RunstatusError."""
        failure = from_rpc_error(error)
        # A watch cut off for reading too slowly resumes at once: its backlog comes from the log.
        if self._reconnect and failure.error_reason == ErrorReason.ERROR_REASON_WATCH_TOO_SLOW:
            return 0.0
        if not self._reconnect or error.code() not in RECONNECT_CODES:
            raise failure from None
        delay = RECONNECT_DELAYS[min(self._failures, len(RECONNECT_DELAYS) - 1)]
        self._failures += 1
        return delay


# Decorators: a plan-building function becomes a method of both clients.

class _Call(Generic[P, T]):
    def __init__(self, build: Callable[Concatenate[Any, P], T]) -> None:
        self.build = build
        for name in ("__module__", "__name__", "__qualname__", "__doc__"):
            setattr(self, name, getattr(build, name))
        # For help() and IDEs: the parameters, not the plan (and, bound, not self).
        self.__signature__ = inspect.signature(build).replace(return_annotation=inspect.Signature.empty)
        self._signature = self.__signature__.replace(parameters=list(self.__signature__.parameters.values())[1:])

    def __call__(self, client: Calls[Any], /, *args: Any, **kwargs: Any) -> Any:
        """Called on the class, as `Client.get_project(rs, "p")`: as `rs.get_project("p")`."""
        return getattr(client, self.build.__name__)(*args, **kwargs)

    def _bind(self, client: Calls[Any], run: Callable[[T], Any]) -> Any:
        build = self.build

        @functools.wraps(build)
        def method(*args: Any, **kwargs: Any) -> Any:
            return run(build(client, *args, **kwargs))

        method.__signature__ = self._signature  # type: ignore[attr-defined]
        return method


class unary(_Call[P, UnaryCall[T]]):  # noqa: N801
    """One request, one answer: `Client` returns it, `AsyncClient` a coroutine."""

    @overload
    def __get__(self, client: None, owner: type[Any]) -> unary[P, T]: ...
    @overload
    def __get__(self, client: Client, owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self, client: AsyncClient, owner: type[Any]) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(self, client: Calls[Any] | None, owner: type[Any]) -> Any:
        return self if client is None else self._bind(client, client._unary)


class paged(_Call[P, PagedCall[T]]):  # noqa: N801
    """Every page's items: `Client` returns an iterator, `AsyncClient` an async iterator."""

    @overload
    def __get__(self, client: None, owner: type[Any]) -> paged[P, T]: ...
    @overload
    def __get__(self, client: Client, owner: type[Any]) -> Callable[P, Iterator[T]]: ...
    @overload
    def __get__(self, client: AsyncClient, owner: type[Any]) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, client: Calls[Any] | None, owner: type[Any]) -> Any:
        return self if client is None else self._bind(client, client._paged)


class watching(_Call[P, WatchCall]):  # noqa: N801
    """Events until the caller stops: `Client` returns an iterator, `AsyncClient` an async one."""

    @overload
    def __get__(self, client: None, owner: type[Any]) -> watching[P]: ...
    @overload
    def __get__(self, client: Client, owner: type[Any]) -> Callable[P, Iterator[Event]]: ...
    @overload
    def __get__(self, client: AsyncClient, owner: type[Any]) -> Callable[P, AsyncIterator[Event]]: ...
    def __get__(self, client: Calls[Any] | None, owner: type[Any]) -> Any:
        return self if client is None else self._bind(client, client._watch)


class Settings:
    def __init__(self, token: str | None, timeout: float | None) -> None:
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.timeout = timeout


class Calls(Generic[Ch]):
    """The calls, shared by `Client` and `AsyncClient`; each of those supplies its channel
    (`_open`) and how it runs a plan (`_unary`, `_paged`, `_watch`)."""

    channel: Ch
    classifier: classifier_grpc.ClassifierServiceStub
    workflows: wf_grpc.WorkflowServiceStub
    projects: project_grpc.ProjectServiceStub
    work_orders: wo_grpc.WorkOrderServiceStub
    worker: worker_grpc.WorkerServiceStub
    tokens: token_grpc.TokenServiceStub
    notifications: notification_grpc.NotificationServiceStub
    stats: stats_grpc.StatsServiceStub

    def __init__(self, address: str = DEFAULT_ADDRESS, *, tls: bool | grpc.ChannelCredentials = False,
                 root_certificates: bytes | None = None, client_certificate: tuple[bytes, bytes] | None = None,
                 token: str | None = None, timeout: float | None = 30.0, retries: int = 4,
                 project_id: str = "") -> None:
        self.channel = self._open(address, credentials(tls, root_certificates, client_certificate),
                                  channel_options(retries))
        self._settings = Settings(token, timeout)
        self.project_id = project_id
        self.classifier = classifier_grpc.ClassifierServiceStub(self.channel)
        self.workflows = wf_grpc.WorkflowServiceStub(self.channel)
        self.projects = project_grpc.ProjectServiceStub(self.channel)
        self.work_orders = wo_grpc.WorkOrderServiceStub(self.channel)
        self.worker = worker_grpc.WorkerServiceStub(self.channel)
        self.tokens = token_grpc.TokenServiceStub(self.channel)
        self.notifications = notification_grpc.NotificationServiceStub(self.channel)
        self.stats = stats_grpc.StatsServiceStub(self.channel)

    def _open(self, address: str, credentials: grpc.ChannelCredentials | None,
              options: list[tuple[str, Any]]) -> Ch:
        raise NotImplementedError

    def _unary(self, plan: UnaryCall[Any]) -> Any:
        raise NotImplementedError

    def _paged(self, plan: PagedCall[Any]) -> Any:
        raise NotImplementedError

    def _watch(self, plan: WatchCall) -> Any:
        raise NotImplementedError

    def _project(self, project_id: str | None) -> str:
        return self.project_id if project_id is None else project_id

    # Classification
    @unary
    def classify(self, name: str, message: str = "", *, source: str | int = "job", language: str = "",
                 http_status: int = 0, subtype: str = "",
                 severity: str | int | None = None) -> UnaryCall[Classification]:
        """How the server classifies an error. `subtype`: the wrapped error's class when `name` is a
        wrapper ("TypeError" inside OpenFn's "RuntimeError"); `severity`: the runtime's own verdict
        ("fail", "crash", "kill", "exception")."""
        report = req.error_report(name, message, source_=source, language=language, http_status=http_status,
                                  subtype=subtype, severity_=severity)
        return UnaryCall(self.classifier.Classify, classifier_pb.ClassifyRequest(error=report),
                         lambda answer: Classification.of(answer.classification))

    # Workflows
    @unary
    def create_workflow(self, workflow_id: str, steps: Sequence[req.StepLike], edges: Sequence[req.EdgeLike] = (),
                        *, name: str = "", project_id: str | None = None,
                        request_id: str | None = None) -> UnaryCall[Workflow]:
        request = req.create_workflow(workflow_id, steps, edges, self._project(project_id), name, request_id)
        return UnaryCall(self.workflows.CreateWorkflow, request, lambda answer: answer.workflow)

    @unary
    def get_workflow(self, workflow_id: str, version: int = 0, *,
                     project_id: str | None = None) -> UnaryCall[Workflow]:
        request = wf_pb.GetWorkflowRequest(project_id=self._project(project_id), workflow_id=workflow_id,
                                           version=version)
        return UnaryCall(self.workflows.GetWorkflow, request, lambda answer: answer.workflow)

    @paged
    def list_workflows(self, *, project_id: str | None = None, page_size: int = 100) -> PagedCall[Workflow]:
        project = self._project(project_id)
        return PagedCall(self.workflows.ListWorkflows,
                         lambda token: wf_pb.ListWorkflowsRequest(project_id=project, page_size=page_size,
                                                                  page_token=token),
                         lambda page: page.workflows)

    # Projects
    @unary
    def create_project(self, project_id: str, *, name: str = "", max_in_flight: int | None = None,
                       max_per_window: int | None = None, window: timedelta | None = None,
                       max_runtime: timedelta | None = None, request_id: str | None = None) -> UnaryCall[Project]:
        project, _ = req.project(project_id, name, max_in_flight, max_per_window, window, max_runtime)
        request = project_pb.CreateProjectRequest(project=project, request_id=req.request_id(request_id))
        return UnaryCall(self.projects.CreateProject, request, lambda answer: answer.project)

    @unary
    def get_project(self, project_id: str) -> UnaryCall[Project]:
        return UnaryCall(self.projects.GetProject, project_pb.GetProjectRequest(project_id=project_id),
                         lambda answer: answer.project)

    @unary
    def update_project(self, project_id: str, *, name: str | None = None, max_in_flight: int | None = None,
                       max_per_window: int | None = None, window: timedelta | None = None,
                       max_runtime: timedelta | None = None, retention: RetentionPolicy | str | None = None,
                       request_id: str | None = None) -> UnaryCall[Project]:
        """Changes only what is given. `retention`: how long ended work orders are kept, by
        status (a RetentionPolicy, or its text: "SUCCESS=30d,FAILED=365d,payloads=7d", see
        runstatus.retention; "" clears it: the server's default applies)."""
        project, paths = req.project(project_id, name, max_in_flight, max_per_window, window, max_runtime)
        if retention is not None:
            project.retention.CopyFrom(retention_policy.parse(retention) if isinstance(retention, str) else retention)
            if not project.retention.ByteSize():
                project.ClearField("retention")
            paths.append("retention")
        if not paths:
            return UnaryCall(self.projects.GetProject, project_pb.GetProjectRequest(project_id=project_id),
                             lambda answer: answer.project)
        return UnaryCall(self.projects.UpdateProject, req.update_project(project, paths, request_id),
                         lambda answer: answer.project)

    @paged
    def list_projects(self, *, page_size: int = 100) -> PagedCall[Project]:
        return PagedCall(self.projects.ListProjects,
                         lambda token: project_pb.ListProjectsRequest(page_size=page_size, page_token=token),
                         lambda page: page.projects)

    # Work orders
    @unary
    def create_work_order(self, workflow_id: str, input: dict[str, Any] | None = None, *,  # noqa: A002
                          project_id: str | None = None, version: int = 0, priority: int = 0,
                          request_id: str | None = None) -> UnaryCall[WorkOrder]:
        request = req.create_work_order(workflow_id, input, self._project(project_id), version, priority, request_id)
        return UnaryCall(self.work_orders.CreateWorkOrder, request,
                         lambda answer: WorkOrder.of(answer.work_order, answer.run))

    @unary
    def get_work_order(self, work_order_id: str) -> UnaryCall[WorkOrder]:
        return UnaryCall(self.work_orders.GetWorkOrder, wo_pb.GetWorkOrderRequest(work_order_id=work_order_id),
                         lambda answer: WorkOrder.of(answer.work_order, answer.latest_run))

    @paged
    def list_work_orders(self, *, statuses: Iterable[req.StatusLike] = (), workflow_id: str = "",
                         created_after: datetime | None = None, created_before: datetime | None = None,
                         updated_after: datetime | None = None, updated_before: datetime | None = None,
                         project_id: str | None = None, page_size: int = 100,
                         limit: int | None = None) -> PagedCall[WorkOrder]:
        """Newest first, every page (or `limit` work orders)."""
        flt = req.work_order_filter(statuses, workflow_id, created_after, created_before, updated_after,
                                    updated_before)
        project = self._project(project_id)
        return PagedCall(self.work_orders.ListWorkOrders,
                         lambda token: wo_pb.ListWorkOrdersRequest(project_id=project, filter=flt,
                                                                   page_size=page_size, page_token=token),
                         lambda page: [WorkOrder.of(w) for w in page.work_orders], limit)

    @unary
    def count_work_orders(self, *, statuses: Iterable[req.StatusLike] = (), workflow_id: str = "",
                          created_after: datetime | None = None, created_before: datetime | None = None,
                          updated_after: datetime | None = None, updated_before: datetime | None = None,
                          project_id: str | None = None) -> UnaryCall[dict[str, int]]:
        """{"RUN_STATUS_FAILED": 3, ...} for the statuses that have work orders."""
        flt = req.work_order_filter(statuses, workflow_id, created_after, created_before, updated_after,
                                    updated_before)
        return UnaryCall(self.work_orders.CountWorkOrders,
                         wo_pb.CountWorkOrdersRequest(project_id=self._project(project_id), filter=flt),
                         lambda answer: {RunStatus.Name(c.status): c.count for c in answer.counts})

    @unary
    def work_order_stats(self, *, since: datetime | None = None, until: datetime | None = None,
                         bucket: str | int = "hour", workflow_id: str = "", top_errors: int = 0,
                         project_id: str | None = None) -> UnaryCall[stats_pb.GetWorkOrderStatsResponse]:
        """StatsService.GetWorkOrderStats: work orders created in [since, until) (default: the 24
        hours before now) by status per bucket ("minute", "hour", "day"), per workflow (counts,
        success rate, run duration p50/p95, LOST and EXCEPTION) and the top errors; the response
        message as it is."""
        request = stats_pb.GetWorkOrderStatsRequest(
            project_id=self._project(project_id), workflow_id=workflow_id, top_errors=top_errors,
            bucket=stats_pb.StatsBucket.ValueType(bucket) if isinstance(bucket, int)
            else stats_pb.StatsBucket.Value(f"STATS_BUCKET_{bucket.upper()}"))
        if since is not None:
            request.window_start.CopyFrom(to_timestamp(since))
        if until is not None:
            request.window_end.CopyFrom(to_timestamp(until))
        return UnaryCall(self.stats.GetWorkOrderStats, request, lambda answer: answer)

    @unary
    def retry_work_order(self, work_order_id: str, *, start_step_id: str = "",
                         request_id: str | None = None) -> UnaryCall[WorkOrder]:
        request = wo_pb.RetryWorkOrderRequest(work_order_id=work_order_id, start_step_id=start_step_id,
                                              request_id=req.request_id(request_id))
        return UnaryCall(self.work_orders.RetryWorkOrder, request,
                         lambda answer: WorkOrder.of(answer.work_order, answer.run))

    @unary
    def retry_work_orders(self, *, statuses: Iterable[req.StatusLike], workflow_id: str = "",
                          created_after: datetime | None = None, created_before: datetime | None = None,
                          updated_after: datetime | None = None, updated_before: datetime | None = None,
                          project_id: str | None = None, request_id: str | None = None,
                          timeout: float | None = 600.0) -> UnaryCall[tuple[int, int]]:
        """Retries every matching work order: (retried, skipped)."""
        flt = req.work_order_filter(statuses, workflow_id, created_after, created_before, updated_after,
                                    updated_before)
        request = wo_pb.RetryWorkOrdersRequest(project_id=self._project(project_id), filter=flt,
                                               request_id=req.request_id(request_id))
        return UnaryCall(self.work_orders.RetryWorkOrders, request,
                         lambda answer: (answer.retried_count, answer.skipped_count), timeout)

    @unary
    def get_run(self, run_id: str) -> UnaryCall[Run]:
        return UnaryCall(self.work_orders.GetRun, wo_pb.GetRunRequest(run_id=run_id),
                         lambda answer: Run.of(answer.run))

    @paged
    def list_runs(self, work_order_id: str, *, page_size: int = 100) -> PagedCall[Run]:
        """Newest first."""
        return PagedCall(self.work_orders.ListRuns,
                         lambda token: wo_pb.ListRunsRequest(work_order_id=work_order_id, page_size=page_size,
                                                             page_token=token),
                         lambda page: [Run.of(r) for r in page.runs])

    @unary
    def cancel_run(self, run_id: str, reason: str = "", *, request_id: str | None = None) -> UnaryCall[Run]:
        request = wo_pb.CancelRunRequest(run_id=run_id, reason=reason, request_id=req.request_id(request_id))
        return UnaryCall(self.work_orders.CancelRun, request, lambda answer: Run.of(answer.run))

    @watching
    def watch(self, *, statuses: Iterable[req.StatusLike] = (), workflow_id: str = "",
              work_order_ids: Iterable[str] = (), after_cursor: str = "", from_now: bool = False,
              project_id: str | None = None, reconnect: bool = True, batch: int = 0,
              max_delay: float = 0.1) -> WatchCall:
        """Events after the cursor (none: from the start of the log; `from_now`: only what is
        committed from now on), then live ones, until you stop iterating. On a lost
        connection it reconnects from the last cursor it gave you, so nothing is missed
        and nothing is seen twice. A cursor older than the oldest event the server keeps
        (retention pruned the log past it) ends the watch with errors.CursorExpired: re-read
        what you need, then watch from_now.

        `batch` (1 to 1000): the server sends up to that many events per message, holding an
        event back at most `max_delay` seconds (0 to 1) for company; far cheaper for the server
        when many watch a busy project. You still get the events one by one."""
        if from_now and after_cursor:
            raise ValueError("give after_cursor or from_now, not both")
        flt = req.work_order_filter(statuses, workflow_id)
        project, ids = self._project(project_id), list(work_order_ids)
        batching = None
        if batch:
            batching = wo_pb.WatchBatching(max_events=batch)
            batching.max_delay.FromNanoseconds(round(max_delay * 1e9))
        return WatchCall(self.work_orders.WatchWorkOrders,
                         lambda cursor: wo_pb.WatchWorkOrdersRequest(project_id=project, filter=flt,
                                                                     after_cursor=cursor, from_now=from_now and not cursor,
                                                                     work_order_ids=ids, batching=batching),
                         after_cursor, reconnect)

    # Tokens (admin tokens, on a server that runs with --auth)
    @unary
    def create_token(self, role: RoleLike, *, project_id: str | None = None, name: str = "",
                     request_id: str | None = None) -> UnaryCall[tuple[Token, str]]:
        """A token of `role` ("worker", "client", "admin") for the project ("*": an instance
        admin): (token, secret). The secret is in this answer only."""
        request = token_pb.CreateTokenRequest(project_id=self._project(project_id), role=_role(role), name=name,
                                              request_id=req.request_id(request_id))
        return UnaryCall(self.tokens.CreateToken, request, lambda answer: (answer.token, answer.secret))

    @unary
    def revoke_token(self, token_id: str, *, request_id: str | None = None) -> UnaryCall[Token]:
        """From now on the token authenticates nothing."""
        request = token_pb.RevokeTokenRequest(token_id=token_id, request_id=req.request_id(request_id))
        return UnaryCall(self.tokens.RevokeToken, request, lambda answer: answer.token)

    @paged
    def list_tokens(self, *, project_id: str | None = None, page_size: int = 100) -> PagedCall[Token]:
        """The project's tokens, without their secrets (revoked ones have a revoke_time)."""
        project = self._project(project_id)
        return PagedCall(self.tokens.ListTokens,
                         lambda token: token_pb.ListTokensRequest(project_id=project, page_size=page_size,
                                                                  page_token=token),
                         lambda page: page.tokens)

    @unary
    def caller(self) -> UnaryCall[tuple[Token | None, frozenset[str]]]:
        """The token these calls are made with (None without authentication), and the methods
        its role may call ({"runstatus.v1.WorkOrderService.RetryWorkOrder", ...})."""
        return UnaryCall(self.tokens.GetCallerToken, token_pb.GetCallerTokenRequest(),
                         lambda answer: (answer.token if answer.HasField("token") else None,
                                         frozenset(answer.allowed_methods)))

    # Notifications (a project's admins; the instance's, project "*", its admins)
    @unary
    def create_notification_subscription(
            self, *, webhook_url: str = "", secret: str = "", slack_url: str = "", email_to: Sequence[str] = (),
            smtp: notification_pb2.SmtpServer | None = None, project_id: str | None = None, name: str = "",
            statuses: Iterable[req.StatusLike] = (), event_types: Iterable[req.EventTypeLike] = (),
            workflow_ids: Iterable[str] = (), max_messages_per_minute: int = 0,
            request_id: str | None = None) -> UnaryCall[Subscription]:
        """A subscription of the project ("*": the instance) to its events, sent to one target: a
        webhook (signed with `secret`), a Slack incoming webhook, or email to `email_to` (through
        `smtp`, or the server's own). Without a filter: run status changes to EXCEPTION or LOST."""
        target = req.notification_target(webhook_url=webhook_url, secret=secret, slack_url=slack_url,
                                         email_to=email_to, smtp=smtp)
        subscription = Subscription(
            project_id=self._project(project_id), name=name, target=target,
            filter=req.notification_filter(statuses, event_types, workflow_ids),
            max_messages_per_minute=max_messages_per_minute)
        request = notification_pb.CreateNotificationSubscriptionRequest(subscription=subscription,
                                                                        request_id=req.request_id(request_id))
        return UnaryCall(self.notifications.CreateNotificationSubscription, request, lambda a: a.subscription)

    @unary
    def get_notification_subscription(self, subscription_id: str) -> UnaryCall[Subscription]:
        """A subscription; its secrets are never shown (has_secret, has_password say one is set)."""
        request = notification_pb.GetNotificationSubscriptionRequest(subscription_id=subscription_id)
        return UnaryCall(self.notifications.GetNotificationSubscription, request, lambda a: a.subscription)

    @paged
    def list_notification_subscriptions(self, *, project_id: str | None = None,
                                        page_size: int = 100) -> PagedCall[Subscription]:
        """The project's subscriptions ("*": the instance's; "": every one the caller manages)."""
        project = self._project(project_id)
        return PagedCall(self.notifications.ListNotificationSubscriptions,
                         lambda token: notification_pb.ListNotificationSubscriptionsRequest(
                             project_id=project, page_size=page_size, page_token=token),
                         lambda page: page.subscriptions)

    @unary
    def update_notification_subscription(
            self, subscription_id: str, *, name: str | None = None, webhook_url: str = "", secret: str = "",
            slack_url: str = "", email_to: Sequence[str] = (), smtp: notification_pb2.SmtpServer | None = None,
            statuses: Iterable[req.StatusLike] | None = None, event_types: Iterable[req.EventTypeLike] | None = None,
            workflow_ids: Iterable[str] | None = None, max_messages_per_minute: int | None = None,
            request_id: str | None = None) -> UnaryCall[Subscription]:
        """Changes what is given, nothing else. A target given without its secret keeps the stored
        one if it goes to the same URL (or SMTP host). A filter given (any of statuses,
        event_types, workflow_ids) replaces the whole filter; empty lists mean the defaults."""
        subscription = Subscription(id=subscription_id, name=name or "")
        paths = ["name"] if name is not None else []
        target = req.notification_target(webhook_url=webhook_url, secret=secret, slack_url=slack_url,
                                         email_to=email_to, smtp=smtp)
        if target is not None:
            subscription.target.CopyFrom(target)
            paths.append("target")
        if statuses is not None or event_types is not None or workflow_ids is not None:
            subscription.filter.CopyFrom(req.notification_filter(statuses or (), event_types or (), workflow_ids or ()))
            paths.append("filter")
        if max_messages_per_minute is not None:
            subscription.max_messages_per_minute = max_messages_per_minute
            paths.append("max_messages_per_minute")
        if not paths:
            raise ValueError("nothing to update: give a name, a target, a filter or max_messages_per_minute")
        request = notification_pb.UpdateNotificationSubscriptionRequest(
            subscription=subscription, update_mask=FieldMask(paths=paths), request_id=req.request_id(request_id))
        return UnaryCall(self.notifications.UpdateNotificationSubscription, request, lambda a: a.subscription)

    @unary
    def delete_notification_subscription(self, subscription_id: str, *,
                                         request_id: str | None = None) -> UnaryCall[None]:
        """Deletes it, and the deliveries it is still owed."""
        request = notification_pb.DeleteNotificationSubscriptionRequest(subscription_id=subscription_id,
                                                                        request_id=req.request_id(request_id))
        return UnaryCall(self.notifications.DeleteNotificationSubscription, request, lambda a: None)

    @paged
    def list_notification_deliveries(self, subscription_id: str, *, states: Iterable[req.DeliveryStateLike] = (),
                                     page_size: int = 100) -> PagedCall[Delivery]:
        """Its deliveries, newest first; `states` ("pending", "retrying", "delivered", "dead") filter them."""
        wanted = [req.delivery_state(s) for s in states]
        return PagedCall(self.notifications.ListNotificationDeliveries,
                         lambda token: notification_pb.ListNotificationDeliveriesRequest(
                             subscription_id=subscription_id, states=wanted, page_size=page_size, page_token=token),
                         lambda page: page.deliveries)

    @unary
    def redeliver_notification(self, delivery_id: str, *, request_id: str | None = None) -> UnaryCall[Delivery]:
        """Owes the delivery anew (a dead one, or one a receiver lost): same id, a new retry window."""
        request = notification_pb.RedeliverNotificationRequest(delivery_id=delivery_id,
                                                               request_id=req.request_id(request_id))
        return UnaryCall(self.notifications.RedeliverNotification, request, lambda a: a.delivery)

    @unary
    def send_test_notification(self, subscription_id: str, *, request_id: str | None = None) -> UnaryCall[Delivery]:
        """Owes the subscription a test message; its delivery (listed like any) says how it went."""
        request = notification_pb.SendTestNotificationRequest(subscription_id=subscription_id,
                                                              request_id=req.request_id(request_id))
        return UnaryCall(self.notifications.SendTestNotification, request, lambda a: a.delivery)

    # Workers: claim runs, heartbeat them, report what each step did. `Worker` and
    # `AsyncWorker` (runstatus.worker) go through these; each returns the response message.
    @unary
    def claim_runs(self, worker_id: str, *, max_runs: int = 1, project_id: str | None = None,
                   request_id: str | None = None) -> UnaryCall[worker_pb.ClaimRunsResponse]:
        """Up to `max_runs` pending runs of the project ("": any project), highest priority
        then oldest first, each with its workflow, input and lease token."""
        request = worker_pb.ClaimRunsRequest(project_id=self._project(project_id), worker_id=worker_id,
                                             max_runs=max_runs, request_id=req.request_id(request_id))
        return UnaryCall(self.worker.ClaimRuns, request, _answer)

    @unary
    def heartbeat(self, run_id: str, lease_token: str) -> UnaryCall[worker_pb.HeartbeatResponse]:
        """Extends the lease; `stop` in the answer: the run was cancelled or has otherwise ended.
        (No request_id: a heartbeat changes nothing that repeating it would change twice.)"""
        return UnaryCall(self.worker.Heartbeat, worker_pb.HeartbeatRequest(run_id=run_id, lease_token=lease_token),
                         _answer)

    @unary
    def start_run(self, run_id: str, lease_token: str, *,
                  request_id: str | None = None) -> UnaryCall[worker_pb.StartRunResponse]:
        """PENDING -> RUNNING."""
        request = worker_pb.StartRunRequest(run_id=run_id, lease_token=lease_token,
                                            request_id=req.request_id(request_id))
        return UnaryCall(self.worker.StartRun, request, _answer)

    @unary
    def start_step(self, run_id: str, lease_token: str, step_id: str, *, previous_step_run_id: str = "",
                   request_id: str | None = None) -> UnaryCall[worker_pb.StartStepResponse]:
        """A step starts: at a root or a retry's start step (no previous_step_run_id), or along
        the edge from the executed step run `previous_step_run_id`."""
        request = worker_pb.StartStepRequest(run_id=run_id, lease_token=lease_token, step_id=step_id,
                                             previous_step_run_id=previous_step_run_id,
                                             request_id=req.request_id(request_id))
        return UnaryCall(self.worker.StartStep, request, _answer)

    @unary
    def complete_step(self, run_id: str, lease_token: str, step_run_id: str, *,
                      output: dict[str, Any] | None = None, error: ErrorReport | None = None,
                      request_id: str | None = None) -> UnaryCall[worker_pb.CompleteStepResponse]:
        """A step ends: with `error` (the server classifies it) or, without, successfully."""
        request = worker_pb.CompleteStepRequest(run_id=run_id, lease_token=lease_token, step_run_id=step_run_id,
                                                request_id=req.request_id(request_id))
        if output is not None:
            request.output.CopyFrom(to_struct(output))
        if error is not None:
            request.error.CopyFrom(error)
        return UnaryCall(self.worker.CompleteStep, request, _answer)

    @unary
    def complete_run(self, run_id: str, lease_token: str, *, error: ErrorReport | None = None,
                     request_id: str | None = None) -> UnaryCall[worker_pb.CompleteRunResponse]:
        """The run ends: by the leaf rule, or with a run-level `error` (e.g. a TimeoutError)."""
        request = worker_pb.CompleteRunRequest(run_id=run_id, lease_token=lease_token,
                                               request_id=req.request_id(request_id))
        if error is not None:
            request.error.CopyFrom(error)
        return UnaryCall(self.worker.CompleteRun, request, _answer)
