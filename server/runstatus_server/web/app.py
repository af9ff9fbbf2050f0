"""The web server: aiohttp handlers that read through the public gRPC API (see __init__.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import pathlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import grpc
from aiohttp import web

from runstatus import AsyncClient
from runstatus.client import RECONNECT_CODES
from runstatus.errors import RunstatusError, Unauthenticated, from_rpc_error
from runstatus.v1.error_reason_pb2 import ErrorReason
from runstatus.models import Run, WorkOrder
from runstatus.v1 import project_service_pb2 as project_pb
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1 import workflow_service_pb2 as wf_pb
from runstatus.v1.event_pb2 import EventType
from runstatus.v1.status_pb2 import RunStatus
from runstatus.v1.work_order_pb2 import WorkOrderFilter

from . import render
from .render import Filter, esc

if TYPE_CHECKING:
    from ..server import Settings

log = logging.getLogger("runstatus.web")

STATIC = pathlib.Path(__file__).with_name("static")
COOKIE = "runstatus_token"
CALL_TIMEOUT = 15.0
SSE_PING_SECONDS = 15.0
HEADERS = {
    # Nothing but this server's own files; no inline script or style.
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                                "form-action 'self'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    # Page tokens and filters are in URLs: they go nowhere else.
    "Referrer-Policy": "no-referrer",
}


class Api:
    """The public API with one caller's token: the web server's AsyncClient's stubs, with the
    token's metadata on each call; a refusal is the server's RunstatusError."""

    def __init__(self, client: AsyncClient, token: str) -> None:
        self.client = client
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()

    async def call(self, method: Any, request: Any) -> Any:
        try:
            return await method(request, timeout=CALL_TIMEOUT, metadata=self.metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None


class WebServer:
    """The web UI on settings.web_port (and settings.host), calling the gRPC server on
    `grpc_port` of this machine, as any client does."""

    def __init__(self, settings: Settings, grpc_port: int) -> None:
        self.host, self.port, self.auth, self.reuse_port = settings.host, settings.web_port, settings.auth, settings.reuse_port
        grpc_host = "127.0.0.1" if settings.host in ("", "0.0.0.0") else "::1" if settings.host == "::" else settings.host
        self.grpc_address = f"[{grpc_host}]:{grpc_port}" if ":" in grpc_host else f"{grpc_host}:{grpc_port}"
        self.client: AsyncClient | None = None
        self._runner: web.AppRunner | None = None
        self._streams: set[asyncio.Task[Any]] = set()

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._headers])
        app.router.add_get("/", self.history)
        app.router.add_get("/work-orders/{id}", self.work_order)
        app.router.add_get("/statuses", self.statuses)
        app.router.add_get("/events", self.events)
        app.router.add_get("/sign-in", self.sign_in_form)
        app.router.add_post("/sign-in", self.sign_in)
        app.router.add_post("/sign-out", self.sign_out)
        app.router.add_static("/static", STATIC)
        return app

    async def start(self) -> None:
        self.client = AsyncClient(self.grpc_address, timeout=CALL_TIMEOUT)
        self._runner = web.AppRunner(self.application(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, shutdown_timeout=2.0,
                           reuse_port=self.reuse_port or None)
        await site.start()
        log.info("web listening", extra={"host": self.host, "web_port": self.port})

    async def stop(self) -> None:
        for task in list(self._streams):  # live streams end at once
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.client is not None:
            await self.client.close()

    @web.middleware
    async def _headers(self, request: web.Request,
                       handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        response = await handler(request)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    # The caller

    def api(self, request: web.Request) -> Api:
        """The caller's API; with --auth and no token, off to the sign-in form."""
        assert self.client is not None
        token = request.cookies.get(COOKIE, "") if self.auth else ""
        if self.auth and not token:
            raise web.HTTPSeeOther(f"/sign-in?{urlencode({'next': request.path_qs})}")
        return Api(self.client, token)

    async def page(self, request: web.Request, api: Api, title: str, body: str, project: str) -> web.Response:
        projects: list[str] = []
        with contextlib.suppress(RunstatusError):  # a token that may not list projects sees no picker
            answer = await api.call(api.client.projects.ListProjects, project_pb.ListProjectsRequest(page_size=100))
            projects = [p.id for p in answer.projects]
        signed_in = bool(request.cookies.get(COOKIE)) if self.auth else None
        return web.Response(text=render.page(title, body, project=project, projects=projects, signed_in=signed_in,
                                             path=request.path), content_type="text/html")

    # Pages

    async def history(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        project = q.get("project", "").strip()
        if work_order_id := q.get("id", "").strip():
            suffix = f"?{urlencode({'project': project})}" if project else ""
            raise web.HTTPSeeOther(f"/work-orders/{quote(work_order_id, safe='')}{suffix}")
        api = self.api(request)
        problems: list[str] = []
        statuses = []
        for value in q.getall("status", []):
            status = render.parse_status(value)
            if status is None:
                problems.append(f"unknown status {value!r}")
            elif status not in statuses:
                statuses.append(status)
        try:
            size = min(max(int(q.get("size", render.DEFAULT_PAGE_SIZE)), 1), render.MAX_PAGE_SIZE)
        except ValueError:
            size = render.DEFAULT_PAGE_SIZE
        flt = Filter(project, statuses, q.get("workflow", "").strip(), q.get("created_after", ""),
                     q.get("created_before", ""), size)
        proto = WorkOrderFilter(statuses=flt.statuses, workflow_id=flt.workflow)  # type: ignore[arg-type]
        for name, value, target in (("created_after", flt.created_after, proto.create_time_start),
                                    ("created_before", flt.created_before, proto.create_time_end)):
            if value:
                try:
                    moment = datetime.fromisoformat(value)
                except ValueError:
                    problems.append(f"{name}: not a date and time: {value!r}")
                    continue
                target.FromDatetime(moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc))
        page_token = q.get("page", "")
        body = [f'<h1>History</h1>{render.filter_form(flt)}']
        if problems:
            body.append(f'<div class="error" role="alert">{esc("; ".join(problems))}</div>')
        else:
            everything = WorkOrderFilter()
            everything.CopyFrom(proto)
            del everything.statuses[:]
            answers: tuple[Any, Any] = await asyncio.gather(
                api.call(api.client.work_orders.ListWorkOrders, wo_pb.ListWorkOrdersRequest(
                    project_id=project, filter=proto, page_size=flt.size, page_token=page_token)),
                api.call(api.client.work_orders.CountWorkOrders,
                         wo_pb.CountWorkOrdersRequest(project_id=project, filter=everything)),
                return_exceptions=True)
            listed, counted = answers
            region = []
            for answer in (counted, listed):
                if isinstance(answer, RunstatusError):
                    region.append(render.api_error(answer))
                elif isinstance(answer, BaseException):
                    raise answer
            if isinstance(counted, wo_pb.CountWorkOrdersResponse):
                region.append(render.counts_bar(flt, {c.status: c.count for c in counted.counts}, counted.total))
            if isinstance(listed, wo_pb.ListWorkOrdersResponse):
                orders = [WorkOrder.of(w) for w in listed.work_orders]
                region.append(render.history_table(flt, orders, listed.next_page_token, page_token))
            live = f"/events?{flt.query()}"
            body.append(f'<p class="live" data-live="{esc(live)}" aria-live="polite"></p>'
                        f'<div data-live-region>{"".join(region)}</div>')
        return await self.page(request, api, "History", "".join(body), project)

    async def work_order(self, request: web.Request) -> web.StreamResponse:
        api = self.api(request)
        work_order_id = request.match_info["id"]
        project = request.query.get("project", "")
        chosen = request.query.get("run", "")
        title = f"Work order {work_order_id}"
        back = f'<p><a href="/{"?" + esc(urlencode({"project": project})) if project else ""}">⟨ History</a></p>'
        try:
            got, runs = await asyncio.gather(
                api.call(api.client.work_orders.GetWorkOrder, wo_pb.GetWorkOrderRequest(work_order_id=work_order_id)),
                api.call(api.client.work_orders.ListRuns, wo_pb.ListRunsRequest(
                    work_order_id=work_order_id, page_size=100, page_token=request.query.get("runs_page", ""))))
            order = WorkOrder.of(got.work_order, got.latest_run)
            run = order.latest_run
            if chosen and (run is None or run.id != chosen):
                run = Run.of((await api.call(api.client.work_orders.GetRun, wo_pb.GetRunRequest(run_id=chosen))).run)
                if run.work_order_id != order.id:
                    raise RunstatusError(f"run {chosen} is not a run of work order {order.id}",
                                         grpc.StatusCode.INVALID_ARGUMENT)
        except RunstatusError as e:
            return await self.page(request, api, title, f"{back}<h1>{esc(title)}</h1>{render.api_error(e)}", project)
        edges: dict[tuple[str, str], int] = {}
        if run is not None:
            with contextlib.suppress(RunstatusError):  # the edges only label the timeline
                workflow = (await api.call(api.client.workflows.GetWorkflow, wf_pb.GetWorkflowRequest(
                    project_id=order.project_id, workflow_id=run.proto.workflow_id,
                    version=run.proto.workflow_version))).workflow
                edges = {(e.source_step_id, e.target_step_id): e.condition for e in workflow.edges}
        listed = [Run.of(r) for r in runs.runs]
        more = ""
        if runs.next_page_token:
            query = urlencode({**({"project": project} if project else {}), "runs_page": runs.next_page_token})
            more = f'<a href="?{esc(query)}">Older runs ⟩</a>'
        run_part = '<p class="empty">No runs.</p>'
        if run is not None:
            run_part = (f'<section class="run" data-run="{esc(run.id)}"><h2>Run {run.number} '
                        f'<span class="muted">{esc(run.id)}</span></h2>{render.run_summary(run)}{render.why(run)}'
                        f'<h3>Steps</h3>{render.timeline(run, edges)}</section>')
        live = f"/events?{urlencode({**({'project': project} if project else {}), 'work_order': order.id})}"
        body = (f'{back}<h1>Work order <code>{esc(order.id)}</code></h1><p class="live" data-live="{esc(live)}" aria-live="polite"></p>'
                f'<div data-live-region><dl class="run-summary"><dt>status</dt><dd>{render.chip(order.status)}</dd>'
                f'<dt>project</dt><dd>{esc(order.project_id)}</dd>'
                f'<dt>workflow</dt><dd>{esc(order.workflow_id)} v{order.workflow_version}</dd>'
                f'<dt>created</dt><dd>{render.when(order.create_time)}</dd><dt>updated</dt><dd>{render.when(order.update_time)}</dd>'
                f'<dt>runs</dt><dd>{order.run_count}</dd></dl>'
                f'<div class="columns"><aside><h2>Runs</h2>{render.runs_list(order.id, project, listed, run.id if run else "")}{more}</aside>'
                f'<div class="main-column">{run_part}</div></div></div>')
        return await self.page(request, api, title, body, project)

    async def statuses(self, request: web.Request) -> web.StreamResponse:
        api = self.api(request)
        return await self.page(request, api, "Statuses", render.status_tables(), request.query.get("project", ""))

    # Live: WatchWorkOrders as Server-Sent Events

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Each event of WatchWorkOrders as an SSE message whose id is its cursor: a browser that
        reconnects sends it back as Last-Event-ID and resumes after it; a new stream starts
        from now."""
        api = self.api(request)
        q = request.query
        statuses = [s for s in (render.parse_status(v) for v in q.getall("status", [])) if s is not None]
        cursor = request.headers.get("Last-Event-ID", "") or q.get("after", "")
        watch = wo_pb.WatchWorkOrdersRequest(
            project_id=q.get("project", ""), filter=WorkOrderFilter(statuses=statuses, workflow_id=q.get("workflow", "")),  # type: ignore[arg-type]
            after_cursor=cursor, from_now=not cursor, work_order_ids=q.getall("work_order", []))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        await response.write(b"retry: 2000\n: open\n\n")
        stream = api.client.work_orders.WatchWorkOrders(watch, metadata=api.metadata)
        task = asyncio.current_task()
        if task is not None:
            self._streams.add(task)
        queue: asyncio.Queue[wo_pb.WatchWorkOrdersResponse | RunstatusError | None] = asyncio.Queue(maxsize=1000)

        async def read() -> None:
            try:
                async for item in stream:
                    await queue.put(item)
                await queue.put(None)
            except grpc.RpcError as e:
                await queue.put(from_rpc_error(e))

        reader = asyncio.create_task(read())
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), SSE_PING_SECONDS)
                except asyncio.TimeoutError:
                    await response.write(b": ping\n\n")  # keeps proxies open; finds a closed browser
                    continue
                if item is None:
                    break
                if isinstance(item, RunstatusError):
                    # A watch cut off for reading too slowly, or a server going away: the browser
                    # reconnects by itself, after the last event id. Anything else it is told.
                    if item.code not in RECONNECT_CODES and item.error_reason != ErrorReason.ERROR_REASON_WATCH_TOO_SLOW:
                        await response.write(f"event: failure\ndata: {json.dumps(str(item))}\n\n".encode())
                    break
                e = item.event
                data = {"type": EventType.Name(e.type), "work_order_id": e.work_order_id, "run_id": e.run_id,
                        "status": RunStatus.Name(e.status), "work_order_status": RunStatus.Name(e.work_order_status)}
                await response.write(f"id: {item.cursor}\ndata: {json.dumps(data)}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            stream.cancel()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            if task is not None:
                self._streams.discard(task)
        return response

    # Signing in (with --auth)

    async def sign_in_form(self, request: web.Request) -> web.StreamResponse:
        if not self.auth:
            raise web.HTTPSeeOther("/")
        body = render.sign_in(next_path=_local(request.query.get("next", "/")))
        return web.Response(text=render.page("Sign in", body), content_type="text/html")

    async def sign_in(self, request: web.Request) -> web.StreamResponse:
        if not self.auth:
            raise web.HTTPSeeOther("/")
        assert self.client is not None
        form = await request.post()
        token = str(form.get("token", "")).strip()
        next_path = _local(str(form.get("next", "/")))
        api = Api(self.client, token)
        try:  # any call tells whether the server knows the token; a role that may not count is still signed in
            await api.call(self.client.work_orders.CountWorkOrders, wo_pb.CountWorkOrdersRequest())
        except Unauthenticated as e:
            return web.Response(text=render.page("Sign in", render.sign_in(render.api_error(e), next_path)),
                                content_type="text/html", status=401)
        except RunstatusError:
            pass
        response = web.HTTPSeeOther(next_path)
        response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/",
                            secure=request.secure)
        raise response

    async def sign_out(self, request: web.Request) -> web.StreamResponse:
        response = web.HTTPSeeOther("/sign-in" if self.auth else "/")
        response.del_cookie(COOKIE, path="/")
        raise response


def _local(path: str) -> str:
    """A path on this server (never another site: no scheme, no //host)."""
    return path if path.startswith("/") and not path.startswith("//") and "\\" not in path else "/"
