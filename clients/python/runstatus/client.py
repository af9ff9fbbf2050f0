"""The Python client: `Client` (blocking) and `AsyncClient` (asyncio), over the generated stubs.

    from runstatus import Client
    with Client("localhost:50051") as rs:
        order = rs.create_work_order("referral", {"patient": 123})
        print(rs.get_work_order(order.id).status)

Every mutating call carries a request_id (one is made if you pass none), so the channel
retries every call on UNAVAILABLE safely; List calls are iterators that follow
page_token; `watch` reconnects from its last cursor.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import grpc
import grpc.aio

from runstatus.v1 import classifier_service_pb2 as classifier_pb
from runstatus.v1 import classifier_service_pb2_grpc as classifier_grpc
from runstatus.v1 import project_service_pb2 as project_pb
from runstatus.v1 import project_service_pb2_grpc as project_grpc
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1 import work_order_service_pb2_grpc as wo_grpc
from runstatus.v1 import worker_service_pb2_grpc as worker_grpc
from runstatus.v1 import workflow_service_pb2 as wf_pb
from runstatus.v1 import workflow_service_pb2_grpc as wf_grpc
from runstatus.v1.status_pb2 import RunStatus

from . import _requests as req
from .errors import RunstatusError, from_rpc_error
from .models import Classification, Event, Project, Run, WorkOrder, Workflow

T = TypeVar("T")
DEFAULT_ADDRESS = "localhost:50051"
RECONNECT_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0)
# A watch that ends with these resumes from its cursor (a restart, a proxy, a lost network).
RECONNECT_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL)


def _service_config(retries: int) -> str:
    """Retry every call on UNAVAILABLE (safe: mutating calls carry request ids)."""
    if retries <= 1:
        return json.dumps({"methodConfig": [{"name": [{"service": ""}]}]})
    return json.dumps({"methodConfig": [{
        "name": [{"service": f"runstatus.v1.{s}"} for s in
                 ("ClassifierService", "WorkflowService", "ProjectService", "WorkOrderService", "WorkerService")],
        "retryPolicy": {"maxAttempts": min(retries, 5), "initialBackoff": "0.1s", "maxBackoff": "2s",
                        "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
    }]})


def _options(retries: int) -> list[tuple[str, Any]]:
    return [("grpc.service_config", _service_config(retries)), ("grpc.enable_retries", int(retries > 1))]


def _credentials(tls: bool | grpc.ChannelCredentials, root_certificates: bytes | None,
                 client_certificate: tuple[bytes, bytes] | None = None) -> grpc.ChannelCredentials | None:
    """TLS when asked; with `client_certificate` (chain, key), mTLS."""
    if isinstance(tls, grpc.ChannelCredentials):
        return tls
    if tls or root_certificates or client_certificate:
        chain, key = client_certificate or (None, None)
        return grpc.ssl_channel_credentials(root_certificates=root_certificates, private_key=key,
                                            certificate_chain=chain)
    return None


class _Settings:
    def __init__(self, token: str | None, timeout: float | None) -> None:
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.timeout = timeout


class Client:
    """A blocking client. Use as a context manager, or call `close()`."""

    def __init__(self, address: str = DEFAULT_ADDRESS, *, tls: bool | grpc.ChannelCredentials = False,
                 root_certificates: bytes | None = None, client_certificate: tuple[bytes, bytes] | None = None,
                 token: str | None = None, timeout: float | None = 30.0, retries: int = 4,
                 project_id: str = "") -> None:
        credentials = _credentials(tls, root_certificates, client_certificate)
        options = _options(retries)
        self.channel = (grpc.secure_channel(address, credentials, options) if credentials
                        else grpc.insecure_channel(address, options))
        self._settings = _Settings(token, timeout)
        self.project_id = project_id
        self.classifier = classifier_grpc.ClassifierServiceStub(self.channel)
        self.workflows = wf_grpc.WorkflowServiceStub(self.channel)
        self.projects = project_grpc.ProjectServiceStub(self.channel)
        self.work_orders = wo_grpc.WorkOrderServiceStub(self.channel)
        self.worker = worker_grpc.WorkerServiceStub(self.channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def call(self, method: Any, request: Any, timeout: float | None = None) -> Any:
        """Calls a raw stub method with this client's token and deadline; errors become RunstatusError."""
        try:
            return method(request, timeout=timeout or self._settings.timeout, metadata=self._settings.metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def _project(self, project_id: str | None) -> str:
        return self.project_id if project_id is None else project_id

    # Classification
    def classify(self, name: str, message: str = "", *, source: str | int = "job", language: str = "",
                 http_status: int = 0) -> Classification:
        report = req.error_report(name, message, source_=source, language=language, http_status=http_status)
        answer = self.call(self.classifier.Classify, classifier_pb.ClassifyRequest(error=report))
        return Classification.of(answer.classification)

    # Workflows
    def create_workflow(self, workflow_id: str, steps: Sequence[req.StepLike], edges: Sequence[req.EdgeLike] = (),
                        *, name: str = "", project_id: str | None = None, request_id: str | None = None) -> Workflow:
        request = req.create_workflow(workflow_id, steps, edges, self._project(project_id), name, request_id)
        return self.call(self.workflows.CreateWorkflow, request).workflow  # type: ignore[no-any-return]

    def get_workflow(self, workflow_id: str, version: int = 0, *, project_id: str | None = None) -> Workflow:
        request = wf_pb.GetWorkflowRequest(project_id=self._project(project_id), workflow_id=workflow_id,
                                           version=version)
        return self.call(self.workflows.GetWorkflow, request).workflow  # type: ignore[no-any-return]

    def list_workflows(self, *, project_id: str | None = None, page_size: int = 100) -> Iterator[Workflow]:
        token = ""
        while True:
            page = self.call(self.workflows.ListWorkflows, wf_pb.ListWorkflowsRequest(
                project_id=self._project(project_id), page_size=page_size, page_token=token))
            yield from page.workflows
            token = page.next_page_token
            if not token:
                return

    # Projects
    def create_project(self, project_id: str, *, name: str = "", max_in_flight: int | None = None,
                       max_per_window: int | None = None, window: timedelta | None = None,
                       max_runtime: timedelta | None = None, request_id: str | None = None) -> Project:
        project, _ = req.project(project_id, name, max_in_flight, max_per_window, window, max_runtime)
        request = project_pb.CreateProjectRequest(project=project, request_id=req.request_id(request_id))
        return self.call(self.projects.CreateProject, request).project  # type: ignore[no-any-return]

    def get_project(self, project_id: str) -> Project:
        return self.call(self.projects.GetProject,  # type: ignore[no-any-return]
                         project_pb.GetProjectRequest(project_id=project_id)).project

    def update_project(self, project_id: str, *, name: str | None = None, max_in_flight: int | None = None,
                       max_per_window: int | None = None, window: timedelta | None = None,
                       max_runtime: timedelta | None = None, request_id: str | None = None) -> Project:
        """Changes only what is given."""
        project, paths = req.project(project_id, name, max_in_flight, max_per_window, window, max_runtime)
        if not paths:
            return self.get_project(project_id)
        return self.call(self.projects.UpdateProject,  # type: ignore[no-any-return]
                         req.update_project(project, paths, request_id)).project

    def list_projects(self, *, page_size: int = 100) -> Iterator[Project]:
        token = ""
        while True:
            page = self.call(self.projects.ListProjects,
                             project_pb.ListProjectsRequest(page_size=page_size, page_token=token))
            yield from page.projects
            token = page.next_page_token
            if not token:
                return

    # Work orders
    def create_work_order(self, workflow_id: str, input: dict[str, Any] | None = None, *,  # noqa: A002
                          project_id: str | None = None, version: int = 0, priority: int = 0,
                          request_id: str | None = None) -> WorkOrder:
        request = req.create_work_order(workflow_id, input, self._project(project_id), version, priority, request_id)
        answer = self.call(self.work_orders.CreateWorkOrder, request)
        return WorkOrder.of(answer.work_order, answer.run)

    def get_work_order(self, work_order_id: str) -> WorkOrder:
        answer = self.call(self.work_orders.GetWorkOrder, wo_pb.GetWorkOrderRequest(work_order_id=work_order_id))
        return WorkOrder.of(answer.work_order, answer.latest_run)

    def list_work_orders(self, *, statuses: Iterable[req.StatusLike] = (), workflow_id: str = "",
                         created_after: datetime | None = None, created_before: datetime | None = None,
                         project_id: str | None = None, page_size: int = 100,
                         limit: int | None = None) -> Iterator[WorkOrder]:
        """Newest first, every page (or `limit` work orders)."""
        flt = req.work_order_filter(statuses, workflow_id, created_after, created_before)
        token, seen = "", 0
        while True:
            page = self.call(self.work_orders.ListWorkOrders, wo_pb.ListWorkOrdersRequest(
                project_id=self._project(project_id), filter=flt, page_size=page_size, page_token=token))
            for work_order in page.work_orders:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield WorkOrder.of(work_order)
            token = page.next_page_token
            if not token:
                return

    def count_work_orders(self, *, statuses: Iterable[req.StatusLike] = (), workflow_id: str = "",
                          created_after: datetime | None = None, created_before: datetime | None = None,
                          project_id: str | None = None) -> dict[str, int]:
        """{"RUN_STATUS_FAILED": 3, ...} for the statuses that have work orders."""
        flt = req.work_order_filter(statuses, workflow_id, created_after, created_before)
        answer = self.call(self.work_orders.CountWorkOrders,
                           wo_pb.CountWorkOrdersRequest(project_id=self._project(project_id), filter=flt))
        return {RunStatus.Name(c.status): c.count for c in answer.counts}

    def retry_work_order(self, work_order_id: str, *, start_step_id: str = "",
                         request_id: str | None = None) -> WorkOrder:
        answer = self.call(self.work_orders.RetryWorkOrder, wo_pb.RetryWorkOrderRequest(
            work_order_id=work_order_id, start_step_id=start_step_id, request_id=req.request_id(request_id)))
        return WorkOrder.of(answer.work_order, answer.run)

    def retry_work_orders(self, *, statuses: Iterable[req.StatusLike], workflow_id: str = "",
                          created_after: datetime | None = None, created_before: datetime | None = None,
                          project_id: str | None = None, request_id: str | None = None,
                          timeout: float | None = 600.0) -> tuple[int, int]:
        """Retries every matching work order: (retried, skipped)."""
        flt = req.work_order_filter(statuses, workflow_id, created_after, created_before)
        answer = self.call(self.work_orders.RetryWorkOrders, wo_pb.RetryWorkOrdersRequest(
            project_id=self._project(project_id), filter=flt, request_id=req.request_id(request_id)), timeout)
        return answer.retried_count, answer.skipped_count

    def get_run(self, run_id: str) -> Run:
        return Run.of(self.call(self.work_orders.GetRun, wo_pb.GetRunRequest(run_id=run_id)).run)

    def list_runs(self, work_order_id: str, *, page_size: int = 100) -> Iterator[Run]:
        """Newest first."""
        token = ""
        while True:
            page = self.call(self.work_orders.ListRuns, wo_pb.ListRunsRequest(
                work_order_id=work_order_id, page_size=page_size, page_token=token))
            yield from (Run.of(r) for r in page.runs)
            token = page.next_page_token
            if not token:
                return

    def cancel_run(self, run_id: str, reason: str = "", *, request_id: str | None = None) -> Run:
        return Run.of(self.call(self.work_orders.CancelRun, wo_pb.CancelRunRequest(
            run_id=run_id, reason=reason, request_id=req.request_id(request_id))).run)

    def watch(self, *, statuses: Iterable[req.StatusLike] = (), workflow_id: str = "",
              work_order_ids: Iterable[str] = (), after_cursor: str = "", project_id: str | None = None,
              reconnect: bool = True) -> Iterator[Event]:
        """Events after the cursor, then live ones, until you stop iterating. On a lost
        connection it reconnects from the last cursor it gave you, so nothing is missed
        and nothing is seen twice."""
        flt = req.work_order_filter(statuses, workflow_id)
        cursor, failures = after_cursor, 0
        while True:
            request = wo_pb.WatchWorkOrdersRequest(project_id=self._project(project_id), filter=flt,
                                                  after_cursor=cursor, work_order_ids=list(work_order_ids))
            stream = self.work_orders.WatchWorkOrders(request, metadata=self._settings.metadata)
            try:
                for item in stream:
                    cursor, failures = item.cursor, 0
                    yield Event.of(item.event, item.cursor)
                return
            except grpc.RpcError as e:
                if not reconnect or e.code() not in RECONNECT_CODES:
                    raise from_rpc_error(e) from None
                time.sleep(RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)])
                failures += 1
            finally:
                stream.cancel()


class AsyncClient:
    """The asyncio client: classify, create_workflow, and the work-order and run calls of
    `Client`, awaited; iterators are async. For the rest, `call` a raw stub (e.g.
    `await rs.call(rs.projects.GetProject, request)`)."""

    def __init__(self, address: str = DEFAULT_ADDRESS, *, tls: bool | grpc.ChannelCredentials = False,
                 root_certificates: bytes | None = None, client_certificate: tuple[bytes, bytes] | None = None,
                 token: str | None = None, timeout: float | None = 30.0, retries: int = 4,
                 project_id: str = "") -> None:
        credentials = _credentials(tls, root_certificates, client_certificate)
        options = _options(retries)
        self.channel = (grpc.aio.secure_channel(address, credentials, options) if credentials
                        else grpc.aio.insecure_channel(address, options))
        self._settings = _Settings(token, timeout)
        self.project_id = project_id
        self.classifier = classifier_grpc.ClassifierServiceStub(self.channel)
        self.workflows = wf_grpc.WorkflowServiceStub(self.channel)
        self.projects = project_grpc.ProjectServiceStub(self.channel)
        self.work_orders = wo_grpc.WorkOrderServiceStub(self.channel)
        self.worker = worker_grpc.WorkerServiceStub(self.channel)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    async def call(self, method: Any, request: Any, timeout: float | None = None) -> Any:
        try:
            return await method(request, timeout=timeout or self._settings.timeout, metadata=self._settings.metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def _project(self, project_id: str | None) -> str:
        return self.project_id if project_id is None else project_id

    async def classify(self, name: str, message: str = "", *, source: str | int = "job", language: str = "",
                       http_status: int = 0) -> Classification:
        report = req.error_report(name, message, source_=source, language=language, http_status=http_status)
        answer = await self.call(self.classifier.Classify, classifier_pb.ClassifyRequest(error=report))
        return Classification.of(answer.classification)

    async def create_workflow(self, workflow_id: str, steps: Sequence[req.StepLike],
                              edges: Sequence[req.EdgeLike] = (), *, name: str = "", project_id: str | None = None,
                              request_id: str | None = None) -> Workflow:
        request = req.create_workflow(workflow_id, steps, edges, self._project(project_id), name, request_id)
        return (await self.call(self.workflows.CreateWorkflow, request)).workflow  # type: ignore[no-any-return]

    async def create_work_order(self, workflow_id: str, input: dict[str, Any] | None = None, *,  # noqa: A002
                                project_id: str | None = None, version: int = 0, priority: int = 0,
                                request_id: str | None = None) -> WorkOrder:
        request = req.create_work_order(workflow_id, input, self._project(project_id), version, priority, request_id)
        answer = await self.call(self.work_orders.CreateWorkOrder, request)
        return WorkOrder.of(answer.work_order, answer.run)

    async def get_work_order(self, work_order_id: str) -> WorkOrder:
        answer = await self.call(self.work_orders.GetWorkOrder,
                                 wo_pb.GetWorkOrderRequest(work_order_id=work_order_id))
        return WorkOrder.of(answer.work_order, answer.latest_run)

    async def list_work_orders(self, *, statuses: Iterable[req.StatusLike] = (), workflow_id: str = "",
                               created_after: datetime | None = None, created_before: datetime | None = None,
                               project_id: str | None = None, page_size: int = 100) -> AsyncIterator[WorkOrder]:
        flt = req.work_order_filter(statuses, workflow_id, created_after, created_before)
        token = ""
        while True:
            page = await self.call(self.work_orders.ListWorkOrders, wo_pb.ListWorkOrdersRequest(
                project_id=self._project(project_id), filter=flt, page_size=page_size, page_token=token))
            for work_order in page.work_orders:
                yield WorkOrder.of(work_order)
            token = page.next_page_token
            if not token:
                return

    async def count_work_orders(self, *, statuses: Iterable[req.StatusLike] = (), workflow_id: str = "",
                                created_after: datetime | None = None, created_before: datetime | None = None,
                                project_id: str | None = None) -> dict[str, int]:
        flt = req.work_order_filter(statuses, workflow_id, created_after, created_before)
        answer = await self.call(self.work_orders.CountWorkOrders,
                                 wo_pb.CountWorkOrdersRequest(project_id=self._project(project_id), filter=flt))
        return {RunStatus.Name(c.status): c.count for c in answer.counts}

    async def retry_work_order(self, work_order_id: str, *, start_step_id: str = "",
                               request_id: str | None = None) -> WorkOrder:
        answer = await self.call(self.work_orders.RetryWorkOrder, wo_pb.RetryWorkOrderRequest(
            work_order_id=work_order_id, start_step_id=start_step_id, request_id=req.request_id(request_id)))
        return WorkOrder.of(answer.work_order, answer.run)

    async def get_run(self, run_id: str) -> Run:
        return Run.of((await self.call(self.work_orders.GetRun, wo_pb.GetRunRequest(run_id=run_id))).run)

    async def cancel_run(self, run_id: str, reason: str = "", *, request_id: str | None = None) -> Run:
        answer = await self.call(self.work_orders.CancelRun, wo_pb.CancelRunRequest(
            run_id=run_id, reason=reason, request_id=req.request_id(request_id)))
        return Run.of(answer.run)

    async def watch(self, *, statuses: Iterable[req.StatusLike] = (), workflow_id: str = "",
                    work_order_ids: Iterable[str] = (), after_cursor: str = "", project_id: str | None = None,
                    reconnect: bool = True) -> AsyncIterator[Event]:
        """As `Client.watch`: resumes from its last cursor after a lost connection."""
        flt = req.work_order_filter(statuses, workflow_id)
        cursor, failures = after_cursor, 0
        while True:
            request = wo_pb.WatchWorkOrdersRequest(project_id=self._project(project_id), filter=flt,
                                                  after_cursor=cursor, work_order_ids=list(work_order_ids))
            stream = self.work_orders.WatchWorkOrders(request, metadata=self._settings.metadata)
            try:
                async for item in stream:
                    cursor, failures = item.cursor, 0
                    yield Event.of(item.event, item.cursor)
                return
            except grpc.RpcError as e:
                if not reconnect or e.code() not in RECONNECT_CODES:
                    raise from_rpc_error(e) from None
                await asyncio.sleep(RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)])
                failures += 1
            finally:
                stream.cancel()


__all__ = ["AsyncClient", "Client", "RunstatusError"]
