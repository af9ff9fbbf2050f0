"""The web server: aiohttp handlers that read through the public gRPC API (see __init__.py)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import pathlib
import re
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

import grpc
from aiohttp import web
from cryptography import x509
from google.protobuf.duration_pb2 import Duration

from runstatus import AsyncClient
from runstatus.client import RECONNECT_CODES
from runstatus.errors import RunstatusError, Unauthenticated, from_rpc_error
from runstatus.v1.error_reason_pb2 import ErrorReason
from runstatus.models import Run, WorkOrder
from runstatus.v1 import project_service_pb2 as project_pb
from runstatus.v1 import token_service_pb2 as token_pb
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1 import workflow_service_pb2 as wf_pb
from runstatus.v1.event_pb2 import EventType
from runstatus.v1.status_pb2 import RunStatus
from runstatus.v1.token_pb2 import Role
from runstatus.v1.work_order_pb2 import WorkOrderFilter

from . import render
from .dashboard import DashboardPage
from .notifications_page import NotificationsPage
from .retention_page import RetentionPage
from .render import Filter, esc

if TYPE_CHECKING:
    from ..server import Settings

log = logging.getLogger("runstatus.web")

STATIC = pathlib.Path(__file__).with_name("static")
COOKIE = "runstatus_token"
# A random value each browser gets with its first page: the session its forms' CSRF tokens are
# made for (WebServer.csrf).
SESSION_COOKIE = "runstatus_session"
SESSION_VALUE = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
# What a browser can keep as a token: one cookie holds about 4 KB, and a gRPC header value is
# printable ASCII. (Longer ones made every later request too large for the web port.)
MAX_TOKEN_CHARS = 4000
TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")
CALL_TIMEOUT = 15.0
SSE_PING_SECONDS = 15.0
SSE_BATCH_MS = 250  # a live page's events come in batches of at most this long (WebServer.events)
HEADERS = {
    # Nothing but this server's own files; no inline script or style.
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                                "form-action 'self'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    # Page tokens and filters are in URLs: they go to no other site. (Not "no-referrer": with it
    # browsers send a POST's Origin as "null", and the Origin is what `_same_origin` checks.)
    "Referrer-Policy": "same-origin",
}
# A refusal from the API as the HTTP status of the page that shows it.
REFUSAL_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.FAILED_PRECONDITION: 409, grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
# The page's actions (WorkOrderService methods) whose buttons a token's role may rule out.
ACTIONS = ("RetryWorkOrder", "RetryWorkOrders", "CancelRun")
REFUSALS_SECONDS = 60.0  # how long a token's refusals are remembered
PROGRESS_SECONDS = 0.25  # how often a bulk retry's progress is read


class SignInAgain(Exception):
    """The browser's token is none the server takes (revoked, made up, mangled): whatever it
    asked for, it gets the sign-in form with `notice` (HTML) under `status`, and loses the cookie."""

    def __init__(self, status: int, notice: str) -> None:
        super().__init__(notice)
        self.status, self.notice = status, notice


class Api:
    """The public API with one caller's token: the web server's AsyncClient's stubs, with the
    token's metadata on each call; a refusal is the server's RunstatusError, but for a token
    the server does not take, which is SignInAgain."""

    def __init__(self, client: AsyncClient, token: str) -> None:
        self.client = client
        self.token = token
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()

    async def call(self, method: Any, request: Any) -> Any:
        try:
            return await method(request, timeout=CALL_TIMEOUT, metadata=self.metadata)
        except grpc.RpcError as e:
            error = from_rpc_error(e)
        if isinstance(error, Unauthenticated):  # (only with --auth)
            raise SignInAgain(401, render.api_error(error))
        raise error


class LoopbackClient(AsyncClient):
    """The AsyncClient over TLS to this server's own gRPC port: it trusts exactly the certificate
    the port serves, and checks it against a name that certificate carries (the port is reached
    at a loopback address, which the certificate need not name)."""

    def __init__(self, address: str, cert_file: str) -> None:
        self.tls_name = certificate_name(cert_file)
        super().__init__(address, root_certificates=pathlib.Path(cert_file).read_bytes(), timeout=CALL_TIMEOUT)

    def _open(self, address: str, credentials: grpc.ChannelCredentials | None,
              options: list[tuple[str, Any]]) -> grpc.aio.Channel:
        return super()._open(address, credentials, [*options, ("grpc.ssl_target_name_override", self.tls_name)])


def certificate_name(cert_file: str) -> str:
    """The first name (DNS or IP address) the PEM certificate is for, else its common name."""
    cert = x509.load_pem_x509_certificate(pathlib.Path(cert_file).read_bytes())
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        for name in names:
            if isinstance(name, (x509.DNSName, x509.IPAddress)):
                return str(name.value).replace("*", "web", 1)  # a wildcard's name: any one it covers
    except x509.ExtensionNotFound:
        pass
    common = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(common[0].value) if common else "localhost"


class WebServer:
    """The web UI on settings.web_port (and settings.host), calling the gRPC server on
    `grpc_port` of this machine, as any client does; with the server's TLS certificate, both
    over TLS."""

    def __init__(self, settings: Settings, grpc_port: int) -> None:
        self.host, self.port, self.auth, self.reuse_port = settings.host, settings.web_port, settings.auth, settings.reuse_port
        self.tls_cert, self.tls_key = settings.tls_cert, settings.tls_key
        self.trace_url_template = settings.trace_url_template
        grpc_host = "127.0.0.1" if settings.host in ("", "0.0.0.0") else "::1" if settings.host == "::" else settings.host
        self.grpc_address = f"[{grpc_host}]:{grpc_port}" if ":" in grpc_host else f"{grpc_host}:{grpc_port}"
        self.client: AsyncClient | None = None
        self._runner: web.AppRunner | None = None
        self._streams: set[asyncio.Task[Any]] = set()
        self._jobs: set[asyncio.Task[Any]] = set()  # bulk retries, which finish without their browser
        self._refusals: dict[str, tuple[float, dict[str, str]]] = {}
        self.retention = RetentionPage(self)
        # The Host names answered (_own_host): the bind address, localhost, 127.0.0.1 and [::1]
        # with the web port (a browser leaves out its scheme's default one), and a proxy's.
        names = {f"[{n}]" if ":" in n else n for n in {settings.host, "localhost", "127.0.0.1", "::1"} if n}
        default = names if self.port == (443 if self.tls_cert else 80) else set()
        self.hosts = {f"{n}:{self.port}".lower() for n in names} | default
        self.hosts |= {h.lower() for h in settings.web_allowed_hosts}
        # The key of the forms' CSRF tokens: one per server, shared by its processes (cli.py).
        self.secret = settings.web_secret.encode() or secrets.token_bytes(32)

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._headers, self._own_host, self._same_origin, self._sign_in_again])
        app.router.add_get("/", self.history)
        app.router.add_get("/work-orders/{id}", self.work_order)
        app.router.add_get("/statuses", self.statuses)
        app.router.add_get("/events", self.events)
        app.router.add_post("/work-orders/{id}/retry", self.retry)
        app.router.add_post("/work-orders/{id}/runs/{run}/cancel", self.cancel)
        app.router.add_post("/retry-matching", self.retry_matching)
        NotificationsPage(self).add_routes(app)
        DashboardPage(self).add_routes(app)
        self.retention.add_routes(app)
        app.router.add_get("/sign-in", self.sign_in_form)
        app.router.add_post("/sign-in", self.sign_in)
        app.router.add_post("/sign-out", self.sign_out)
        app.router.add_static("/static", STATIC)
        return app

    async def start(self) -> None:
        tls: ssl.SSLContext | None = None
        if self.tls_cert:
            self.client = LoopbackClient(self.grpc_address, self.tls_cert)
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(self.tls_cert, self.tls_key)
        else:
            self.client = AsyncClient(self.grpc_address, timeout=CALL_TIMEOUT)
        self._runner = web.AppRunner(self.application(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, shutdown_timeout=2.0,
                           reuse_port=self.reuse_port or None, ssl_context=tls)
        await site.start()
        log.info("web listening", extra={"host": self.host, "web_port": self.port, "tls": bool(tls)})

    async def stop(self) -> None:
        for task in [*self._streams, *self._jobs]:  # live streams end at once, and bulk retries with the server
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.client is not None:
            await self.client.close()

    @web.middleware
    async def _headers(self, request: web.Request,
                       handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """Every answer's security headers, and the session cookie of a browser that had none
        (made by `csrf` for the page's forms)."""
        response = await handler(request)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if (session := request.get(SESSION_COOKIE)) and not response.prepared:
            response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="Strict", path="/",
                                secure=request.secure)
        return response

    @web.middleware
    async def _own_host(self, request: web.Request,
                        handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """DNS rebinding: a site can point its own name at 127.0.0.1, and its pages then reach
        this port with that name as Host and as Origin (which so passes _same_origin). Only
        this server's own names are answered (self.hosts; a proxy's: --web-allowed-hosts)."""
        host = request.headers.get("Host", "")
        if host.lower() not in self.hosts:
            return web.Response(text=f"refused: {host or 'no Host'!r} is not a name of this server "
                                     "(a proxy's name is allowed with --web-allowed-hosts)", status=421)
        return await handler(request)

    @web.middleware
    async def _same_origin(self, request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """A POST only from this site's own pages: its Origin must be this host, and its form
        must carry this browser's CSRF token (`csrf`). The sign-in cookie is SameSite=Strict
        already; without --auth there is no cookie, and any site could post to a loopback
        port, which this refuses too. Browsers send the Origin of every POST
        (Referrer-Policy same-origin: the real one, not "null")."""
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            origin = request.headers.get("Origin", "")
            try:
                same = bool(origin) and urlsplit(origin).netloc == request.host
            except ValueError:  # not a URL at all ("http://[x")
                same = False
            if not same:
                return web.Response(text=f"refused: a {request.method} from another site ({origin or 'no Origin'!r})",
                                    status=403)
            try:
                form = await request.post()  # kept: the handler reads the same
            except ValueError as e:  # bytes that are not UTF-8, a broken multipart body
                return web.Response(text=f"refused: the form could not be read ({e})", status=400)
            sent = str(form.get("csrf_token", ""))
            if not sent:
                return web.Response(text="refused: a form without its csrf_token (send it from the page)", status=403)
            if not hmac.compare_digest(sent.encode(errors="replace"), self.csrf(request).encode()):
                return web.Response(text="refused: the form's csrf_token is not this browser session's "
                                         "(a page from before the server restarted?): reload the page", status=403)
        return await handler(request)

    @web.middleware
    async def _sign_in_again(self, request: web.Request,
                             handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """A SignInAgain from any handler: the sign-in form, back to the page after (a GET's)."""
        try:
            return await handler(request)
        except SignInAgain as e:
            next_path = request.path_qs if request.method == "GET" else "/"
            response = self.sign_in_page(request, e.notice, next_path, e.status)
            response.del_cookie(COOKIE, path="/")
            return response

    def csrf(self, request: web.Request) -> str:
        """The CSRF token of this browser's forms: an HMAC, with this server's secret, of its
        session cookie (a random value it gets with its first page, _headers). Another site
        can neither read it nor make one, even for a session cookie it planted."""
        session = request.cookies.get(SESSION_COOKIE, "")
        if not SESSION_VALUE.fullmatch(session):
            session = request.setdefault(SESSION_COOKIE, secrets.token_urlsafe(32))
        return hmac.new(self.secret, session.encode(), hashlib.sha256).hexdigest()

    # The caller

    def api(self, request: web.Request) -> Api:
        """The caller's API; with --auth and no token, off to the sign-in form."""
        assert self.client is not None
        token = request.cookies.get(COOKIE, "") if self.auth else ""
        if self.auth and not token:
            raise web.HTTPSeeOther(f"/sign-in?{urlencode({'next': request.path_qs})}")
        if problem := token_problem(token):
            raise SignInAgain(400, render.notice(f"The sign-in cookie holds no API token: {problem}. Sign in again."))
        return Api(self.client, token)

    async def page(self, request: web.Request, api: Api, title: str, body: str, project: str, *,
                   path: str = "", status: int = 200) -> web.Response:
        """A whole page; `path`: the page's own (an action's answer is shown at its own URL)."""
        projects: list[str] = []
        with contextlib.suppress(RunstatusError):  # a token that may not list projects sees no picker
            answer = await api.call(api.client.projects.ListProjects, project_pb.ListProjectsRequest(page_size=100))
            projects = [p.id for p in answer.projects]
        signed_in = bool(request.cookies.get(COOKIE)) if self.auth else None
        return web.Response(text=render.page(title, body, project=project, projects=projects, signed_in=signed_in,
                                             path=path or request.path, csrf=self.csrf(request)),
                            content_type="text/html", status=status)

    async def refusals(self, api: Api) -> dict[str, str]:
        """The actions this token's role may not call ({"CancelRun": why}), so the page can
        leave their buttons disabled, with the reason: the server says which methods the token
        may call (GetCallerToken). Remembered per token for a minute; the server still decides
        each real call."""
        if not self.auth:
            return {}
        key = hashlib.sha256(api.token.encode()).hexdigest()
        now = time.monotonic()
        known = self._refusals.get(key)
        if known is not None and now - known[0] < REFUSALS_SECONDS:
            return known[1]
        caller = await api.call(api.client.tokens.GetCallerToken, token_pb.GetCallerTokenRequest())
        role = Role.Name(caller.token.role)
        refused = {name: f"a {role} token may not call WorkOrderService.{name}" for name in ACTIONS
                   if f"runstatus.v1.WorkOrderService.{name}" not in caller.allowed_methods}
        if len(self._refusals) > 1000:
            self._refusals.clear()
        self._refusals[key] = (now, refused)
        return refused

    # Pages

    async def history(self, request: web.Request, notice: str = "", status: int = 200,
                      retention: str = "") -> web.StreamResponse:
        """The history page; `notice`: an action's answer or refusal, shown above the list;
        `retention`: the retention form as a refused POST left it (retention_page.py)."""
        q = request.query
        project = q.get("project", "").strip()
        if work_order_id := q.get("id", "").strip():
            suffix = f"?{urlencode({'project': project})}" if project else ""
            raise web.HTTPSeeOther(f"/work-orders/{quote(work_order_id, safe='')}{suffix}")
        api = self.api(request)
        flt, proto, problems = read_filter(q)
        page_token = q.get("page", "")
        retention = retention or await self.retention.show(request, api, project)
        body = [f'<h1>History</h1>{retention}{render.filter_form(flt)}']
        if not problems:
            refused = (await self.refusals(api)).get("RetryWorkOrders")
            body.append(render.bulk_retry_form(flt, refused, self.csrf(request)))
        body.append(notice)
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
            here = f"/?{flt.query(page=page_token)}".rstrip("?")
            body.append(f'<p class="live" data-live="{esc(live)}" data-page="{esc(here)}" aria-live="polite"></p>'
                        f'<div data-live-region>{"".join(region)}</div>')
        return await self.page(request, api, "History", "".join(body), project, path="/", status=status)

    async def work_order(self, request: web.Request, notice: str = "", status: int = 200) -> web.StreamResponse:
        """A work order's page; `notice`: an action's refusal, shown above its buttons."""
        api = self.api(request)
        work_order_id = request.match_info["id"]
        project = request.query.get("project", "")
        chosen = request.query.get("run", "")
        title = f"Work order {work_order_id}"
        path = f"/work-orders/{quote(work_order_id, safe='')}"
        back = f'<p><a href="/{"?" + esc(urlencode({"project": project})) if project else ""}">⟨ History</a></p>'
        try:
            got, runs, refusals = await asyncio.gather(
                api.call(api.client.work_orders.GetWorkOrder, wo_pb.GetWorkOrderRequest(work_order_id=work_order_id)),
                api.call(api.client.work_orders.ListRuns, wo_pb.ListRunsRequest(
                    work_order_id=work_order_id, page_size=100, page_token=request.query.get("runs_page", ""))),
                self.refusals(api))
            order = WorkOrder.of(got.work_order, got.latest_run)
            run = order.latest_run
            if chosen and (run is None or run.id != chosen):
                run = Run.of((await api.call(api.client.work_orders.GetRun, wo_pb.GetRunRequest(run_id=chosen))).run)
                if run.work_order_id != order.id:
                    raise RunstatusError(f"run {chosen} is not a run of work order {order.id}",
                                         grpc.StatusCode.INVALID_ARGUMENT)
        except RunstatusError as e:  # the page with the refusal, under its HTTP status (an unknown id: 404)
            body = f"{back}<h1>{esc(title)}</h1>{notice}{render.api_error(e)}"
            return await self.page(request, api, title, body, project, path=path, status=refusal_status(e))
        edges: dict[tuple[str, str], int] = {}
        steps: list[str] = []
        with contextlib.suppress(RunstatusError):  # the workflow labels the timeline and offers its steps to retry from
            workflow = (await api.call(api.client.workflows.GetWorkflow, wf_pb.GetWorkflowRequest(
                project_id=order.project_id, workflow_id=order.workflow_id, version=order.workflow_version))).workflow
            edges = {(e.source_step_id, e.target_step_id): e.condition for e in workflow.edges}
            steps = [s.id for s in workflow.steps]
        listed = [Run.of(r) for r in runs.runs]
        page_query = {"project": project} if project else {}
        more = ""
        if runs.next_page_token:
            more = f'<a href="{esc(path)}?{esc(urlencode({**page_query, "runs_page": runs.next_page_token}))}">Older runs ⟩</a>'
        run_part = '<p class="empty">No runs.</p>'
        if run is not None:
            run_part = (f'<section class="run" data-run="{esc(run.id)}"><h2>Run {run.number} '
                        f'<span class="muted">{esc(run.id)}</span></h2>{render.run_summary(run)}'
                        f'{render.trace_link(self.trace_url_template, run.proto.trace_id)}{render.why(run)}'
                        f'<h3>Steps</h3>{render.timeline(run, edges)}</section>')
        actions = render.work_order_actions(order, run, steps, project, refusals, self.csrf(request))
        live = f"/events?{urlencode({**page_query, 'work_order': order.id})}"
        here = f"{path}?{urlencode({**page_query, **({'run': chosen} if chosen else {})})}".rstrip("?")
        body = (f'{back}<h1>Work order <code>{esc(order.id)}</code></h1>{notice}'
                f'<p class="live" data-live="{esc(live)}" data-page="{esc(here)}" aria-live="polite"></p>'
                f'<div data-live-region>{actions}<dl class="run-summary"><dt>status</dt><dd>{render.chip(order.status)}</dd>'
                f'<dt>project</dt><dd>{esc(order.project_id)}</dd>'
                f'<dt>workflow</dt><dd>{esc(order.workflow_id)} v{order.workflow_version}</dd>'
                f'<dt>created</dt><dd>{render.when(order.create_time)}</dd><dt>updated</dt><dd>{render.when(order.update_time)}</dd>'
                f'<dt>runs</dt><dd>{order.run_count}</dd></dl>'
                f'<div class="columns"><aside><h2>Runs</h2>{render.runs_list(order.id, project, listed, run.id if run else "")}{more}</aside>'
                f'<div class="main-column">{run_part}</div></div></div>')
        return await self.page(request, api, title, body, project, path=path, status=status)

    # Actions: each a POST from the page's own form (see _same_origin), with the form's request_id
    # (made when the page was, so a form sent twice is one action); a refusal is shown as worded.

    async def retry(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        return await self._act(request, "RetryWorkOrder", wo_pb.RetryWorkOrderRequest(
            work_order_id=request.match_info["id"], start_step_id=str(form.get("start_step_id", "")),
            request_id=str(form.get("request_id", ""))))

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        run_id = request.match_info["run"]
        return await self._act(request, "CancelRun", wo_pb.CancelRunRequest(
            run_id=run_id, reason=str(form.get("reason", "")).strip(), request_id=str(form.get("request_id", ""))),
            run=run_id)

    async def _act(self, request: web.Request, method: str, message: Any, run: str = "") -> web.StreamResponse:
        """A work order page's action: the call, then that page again (the run it acted on), or
        the page with the server's refusal as it worded it."""
        api = self.api(request)
        try:
            await api.call(getattr(api.client.work_orders, method), message)
        except RunstatusError as e:
            return await self.work_order(request, render.api_error(e), refusal_status(e))
        raise web.HTTPSeeOther(self.work_order_url(request, request.match_info["id"], **({"run": run} if run else {})))

    def _forget_job(self, job: asyncio.Task[Any]) -> None:
        self._jobs.discard(job)
        if not job.cancelled():
            job.exception()  # read, so that a refusal nobody waited for is not logged as lost

    @staticmethod
    def work_order_url(request: web.Request, work_order_id: str, **extra: str) -> str:
        project = request.query.get("project", "")
        query = urlencode({**({"project": project} if project else {}), **extra})
        return f"/work-orders/{quote(work_order_id, safe='')}" + (f"?{query}" if query else "")

    async def retry_matching(self, request: web.Request) -> web.StreamResponse:
        """RetryWorkOrders over the history filter in the query string. The script asks for
        progress (Accept: application/x-ndjson): then the answer is a stream of JSON lines, how
        far it got every quarter second and the result at the end (`stream_bulk_retry`). Without
        the script, the history page with the result."""
        api = self.api(request)
        form = await request.post()
        flt, proto, problems = read_filter(request.query)
        if problems:
            raise web.HTTPBadRequest(text="; ".join(problems))
        retry = wo_pb.RetryWorkOrdersRequest(project_id=flt.project, filter=proto,
                                             request_id=str(form.get("request_id", "")))
        if "application/x-ndjson" in request.headers.get("Accept", ""):
            return await self.stream_bulk_retry(request, api, retry)
        try:
            answer = await api.call(api.client.work_orders.RetryWorkOrders, retry)
        except RunstatusError as e:
            return await self.history(request, render.api_error(e), refusal_status(e))
        return await self.history(request, render.bulk_result(answer.retried_count, answer.skipped_count))

    async def stream_bulk_retry(self, request: web.Request, api: Api,
                                retry: wo_pb.RetryWorkOrdersRequest) -> web.StreamResponse:
        """Why one streamed answer: the call and its progress live in this one request, so no
        job is kept between requests (with --processes the next request may reach another
        process), and the call goes on to its end if the browser leaves. RetryWorkOrders
        answers only at its end; its progress is read meanwhile from CountWorkOrders over the
        same filter, which falls as each page of retries commits (a retried work order's new
        run leaves the filter's statuses; a filter that includes PENDING or REJECTED may not
        fall until the end). The last line is the server's own answer, or its refusal."""
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-cache",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)

        async def matching() -> int | None:
            try:
                answer = await api.call(api.client.work_orders.CountWorkOrders, wo_pb.CountWorkOrdersRequest(
                    project_id=retry.project_id, filter=retry.filter))
                return int(answer.total)
            except (RunstatusError, SignInAgain):
                return None  # no progress to show; the retry's own answer still comes

        async def send(line: dict[str, Any]) -> None:
            with contextlib.suppress(ConnectionResetError):  # the browser left; the retry goes on
                await response.write(json.dumps(line).encode() + b"\n")

        total = await matching()
        done = 0
        await send({"total": total, "done": done})
        job = asyncio.create_task(api.call(api.client.work_orders.RetryWorkOrders, retry))
        self._jobs.add(job)
        job.add_done_callback(self._forget_job)
        while not job.done():
            await asyncio.wait({job}, timeout=PROGRESS_SECONDS)
            if total and not job.done() and (left := await matching()) is not None:
                done = max(done, min(total - left, total))
                await send({"total": total, "done": done})
        try:
            answer = job.result()
        except (RunstatusError, SignInAgain) as e:  # (a token revoked meanwhile: said here, the answer has begun)
            html = e.notice if isinstance(e, SignInAgain) else render.api_error(e)
            await send({"total": total, "done": done, "html": html, "request_id": render.new_request_id()})
        else:
            await send({"total": total, "done": total, "retried": answer.retried_count, "skipped": answer.skipped_count,
                        "html": render.bulk_result(answer.retried_count, answer.skipped_count),
                        "request_id": render.new_request_id()})
        return response

    async def statuses(self, request: web.Request) -> web.StreamResponse:
        api = self.api(request)
        return await self.page(request, api, "Statuses", render.status_tables(), request.query.get("project", ""))

    # Live: WatchWorkOrders as Server-Sent Events

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Each event of WatchWorkOrders as an SSE message whose id is its cursor: a browser that
        reconnects sends it back as Last-Event-ID and resumes after it; a new stream starts
        from now."""
        api = self.api(request)
        if self.auth:  # a token the server does not take: the sign-in form, while the answer can still be one
            await api.call(api.client.tokens.GetCallerToken, token_pb.GetCallerTokenRequest())
        q = request.query
        statuses = [s for s in (render.parse_status(v) for v in q.getall("status", [])) if s is not None]
        cursor = request.headers.get("Last-Event-ID", "") or q.get("after", "")
        try:
            cursor.encode()
        except UnicodeEncodeError:  # aiohttp keeps a header's bytes that are not UTF-8 as surrogates
            raise web.HTTPBadRequest(text="Last-Event-ID is not UTF-8: send an event's id back as it came") from None
        watch = wo_pb.WatchWorkOrdersRequest(
            project_id=q.get("project", ""), filter=WorkOrderFilter(statuses=statuses, workflow_id=q.get("workflow", "")),  # type: ignore[arg-type]
            after_cursor=cursor, from_now=not cursor, work_order_ids=q.getall("work_order", []),
            # A tab needs the latest state, not every step: one message per SSE_BATCH_MS at most
            # (the script refreshes the page at most that often anyway), which costs the server a
            # message per tab per batch instead of one per event.
            batching=wo_pb.WatchBatching(max_events=1000, max_delay=Duration(nanos=SSE_BATCH_MS * 1_000_000)))
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
                e = item.events[-1]  # the batch's latest, and how many it stands for
                data = {"type": EventType.Name(e.type), "work_order_id": e.work_order_id, "run_id": e.run_id,
                        "status": RunStatus.Name(e.status), "work_order_status": RunStatus.Name(e.work_order_status),
                        "events": len(item.events)}
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

    def sign_in_page(self, request: web.Request, notice: str = "", next_path: str = "/",
                     status: int = 200) -> web.Response:
        body = render.sign_in(notice, next_path, self.csrf(request))
        return web.Response(text=render.page("Sign in", body), content_type="text/html", status=status)

    async def sign_in_form(self, request: web.Request) -> web.StreamResponse:
        if not self.auth:
            raise web.HTTPSeeOther("/")
        return self.sign_in_page(request, next_path=_local(request.query.get("next", "/")))

    async def sign_in(self, request: web.Request) -> web.StreamResponse:
        if not self.auth:
            raise web.HTTPSeeOther("/")
        assert self.client is not None
        form = await request.post()
        token = str(form.get("token", "")).strip()
        next_path = _local(str(form.get("next", "/")))
        if problem := token_problem(token):
            return self.sign_in_page(request, render.notice(f"That is no API token: {problem}."), next_path, 400)
        api = Api(self.client, token)
        try:  # any call tells whether the server knows the token; a role that may not count is still signed in
            await api.call(self.client.work_orders.CountWorkOrders, wo_pb.CountWorkOrdersRequest())
        except SignInAgain as e:
            return self.sign_in_page(request, e.notice, next_path, e.status)
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
    r"""A path on this server, else "/" (never another site). Read as a browser reads a
    Location: without tabs, newlines and other control characters, with backslashes as
    slashes; so "/\t/evil.example" and "/\evil.example" are "//evil.example", another host."""
    path = re.sub(r"[\x00-\x1f\x7f]", "", path).replace("\\", "/")
    return path if path.startswith("/") and not path.startswith("//") else "/"


def token_problem(token: str) -> str:
    """Why `token` cannot be an API token a browser keeps, or "" (the server judges the rest)."""
    if len(token) > MAX_TOKEN_CHARS:
        return f"it is {len(token):,} characters long, and an API token is at most {MAX_TOKEN_CHARS:,}"
    if token and not TOKEN_CHARS.fullmatch(token):
        return "it has characters an API token has not (printable ASCII, no spaces)"
    return ""


def read_filter(q: Any) -> tuple[Filter, WorkOrderFilter, list[str]]:
    """The history filter in a query string: as the page shows it, as the API takes it, and
    what in it could not be read."""
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
    times = {name: q.get(name, "") for name, _, _ in render.TIME_BOUNDS if q.get(name, "")}
    flt = Filter(q.get("project", "").strip(), statuses, q.get("workflow", "").strip(), times, size)
    proto = WorkOrderFilter(statuses=flt.statuses, workflow_id=flt.workflow)  # type: ignore[arg-type]
    for name, field, _ in render.TIME_BOUNDS:
        if value := times.get(name):
            try:
                moment = datetime.fromisoformat(value)
                # A time past year 9999 in UTC (9999-12-31T23:59-14:00) overflows the conversion.
                getattr(proto, field).FromDatetime(moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc))
            except (ValueError, OverflowError):
                problems.append(f"{name}: not a date and time: {value!r}")
    return flt, proto, problems


def refusal_status(error: RunstatusError) -> int:
    return REFUSAL_STATUS.get(error.code, 502)
