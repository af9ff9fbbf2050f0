"""The gRPC server: services, health, reflection, the sweeper, the admin notifier and the
notifications' loops."""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import logging
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from runstatus.v1 import (
    classifier_service_pb2,
    notification_service_pb2,
    project_service_pb2,
    stats_service_pb2,
    token_service_pb2,
    work_order_service_pb2,
    worker_service_pb2,
    workflow_service_pb2,
)
from runstatus.v1.project_pb2 import RetentionPolicy

from . import idempotency, metrics, metrics_export, projects, pruner, sweeper, tracing
from .auth import Authenticator
from .classifier import Classifier, load_aliases
from .events import DEFAULT_BUFFER, DEFAULT_SEND_TIMEOUT, EventFeed
from .notifier import AdminNotifier, log_notifier
from .notifications import outbox, retention
from .notifications.delivery import Deliveries
from .notifications.mail import SmtpServer
from .notifications.retries import Retries
from .services.classifier_service import ClassifierService
from .limits import MAX_MESSAGE_BYTES, Limits
from .services.notification_service import NotificationService
from .services.rpc import App
from .services.project_service import ProjectService
from .services.registry import register
from .services.stats_service import StatsService
from .services.token_service import TokenService
from .services.work_order_service import WorkOrderService
from .services.worker_service import WorkerService
from .services.workflow_service import WorkflowService
from .store import Tx, open_store
from .util import now_us
from .worker_protocol import Leases

if TYPE_CHECKING:
    from .web import WebServer

log = logging.getLogger("runstatus.server")
STOP_STACKS_SECONDS = 20.0  # past the grace period: a stop this late logs every thread's stack
FREE_PAGES_PER_WRITE = 256  # SQLite pages (4 KiB each) given back to the file system per write
FREE_PAGES_PAUSE = 9  # after each, a pause this many times as long as it took


def _free_pages(tx: Tx, limit: int) -> int:
    return tx.free_pages(limit)

# Each service's descriptor and the class that implements it.
SERVICES = [
    (classifier_service_pb2.DESCRIPTOR.services_by_name["ClassifierService"], ClassifierService),
    (workflow_service_pb2.DESCRIPTOR.services_by_name["WorkflowService"], WorkflowService),
    (project_service_pb2.DESCRIPTOR.services_by_name["ProjectService"], ProjectService),
    (work_order_service_pb2.DESCRIPTOR.services_by_name["WorkOrderService"], WorkOrderService),
    (worker_service_pb2.DESCRIPTOR.services_by_name["WorkerService"], WorkerService),
    (token_service_pb2.DESCRIPTOR.services_by_name["TokenService"], TokenService),
    (notification_service_pb2.DESCRIPTOR.services_by_name["NotificationService"], NotificationService),
    (stats_service_pb2.DESCRIPTOR.services_by_name["StatsService"], StatsService),
]
SERVICE_NAMES = [service.full_name for service, _ in SERVICES]


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 50051
    db: str = "runstatus.db"
    lease_seconds: float = 30.0
    sweep_seconds: float = 1.0
    aliases: list[str] = field(default_factory=list)
    # The admin webhook (notifications/): its URL, the secret its deliveries are signed with ("":
    # unsigned), and how failed deliveries are retried.
    admin_webhook: str = ""
    admin_webhook_secret: str = ""
    notify_retries: Retries = field(default_factory=Retries)
    # Email (--smtp-*: the default SMTP server), links to the history page in messages
    # (--public-url; "": none), how long delivered and dead deliveries are kept, and the
    # window of each subscription's rate cap (a minute; shorter in the tests).
    smtp: SmtpServer = field(default_factory=SmtpServer)
    public_url: str = ""
    notify_retention_days: float = retention.DEFAULT_DAYS
    notify_rate_window_seconds: float = 60.0
    # Subscriptions' targets may be on loopback, private or link-local addresses (addresses.py).
    notify_allow_private: bool = False
    # How long the first answer to a request_id is kept (repeats within it get that answer).
    request_id_seconds: float = idempotency.DEFAULT_KEEP_SECONDS
    # Retention (pruner.py): the instance's default policy (--retention; empty: keep for ever), and
    # the archive that projects asking for one write to before deletion (None: such are not pruned).
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    archive: pruner.Archive | None = None
    # What one request may store (limits.py): chosen so that every answer fits in a message.
    limits: Limits = field(default_factory=Limits)
    grace_seconds: float = 10.0
    # Watches (events.py): how often the feed looks for other processes' commits; how many
    # events are held for a watcher before it reads the log instead; how long a client that
    # is behind may take nothing before it is cut off; how many streams may be open.
    watch_poll_seconds: float = 1.0
    watch_buffer: int = DEFAULT_BUFFER
    watch_send_timeout: float = DEFAULT_SEND_TIMEOUT
    max_watches: int = 10_000
    max_watches_per_caller: int = 1_000
    # HTTP/2 keepalive: ping an idle connection this often, drop it if the ping goes
    # unanswered for keepalive_timeout_seconds (a dead client's watches end).
    keepalive_seconds: float = 60.0
    keepalive_timeout_seconds: float = 20.0
    # Several processes may share the port (SO_REUSEPORT) and the database; only the
    # primary one runs the sweeper and the admin notifier.
    reuse_port: bool = False
    primary: bool = True
    # Require an API token on every call (health checks stay open).
    auth: bool = False
    # TLS: the server's certificate chain and key (PEM files); with a client CA, mTLS.
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    # Prometheus metrics over HTTP on this port (0: none).
    metrics_port: int = 0
    # The web UI (web/) on this port (0: none), over HTTPS with tls_cert; it calls this server's gRPC port.
    web_port: int = 0
    # The Host names the web UI answers to besides its own (a proxy's), and the key of its CSRF
    # tokens ("": one made at start; cli.py gives every process of a server the same).
    web_allowed_hosts: list[str] = field(default_factory=list)
    web_secret: str = ""
    # Traces over OTLP/gRPC as the OTEL_* environment variables say (tracing.py); off: free.
    otel: bool = False
    # The history page links a run to its trace: a URL with {trace_id} in it ("": no links).
    trace_url_template: str = ""


class Server:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.limits.check()
        self.store = open_store(settings.db, shared=settings.reuse_port)
        self._otlp_metrics: metrics_export.MetricsExporter | None = None
        if settings.otel:
            tracing.setup()
            from .store.traced import traced
            self.store = traced(self.store, tracing.recorder())
            if metrics_export.wanted():  # OTEL_METRICS_EXPORTER=otlp: the metrics over OTLP too
                metrics.register_store_gauges(self.store)
                self._otlp_metrics = metrics_export.MetricsExporter(metrics.REGISTRY, tracing.resource())
        self.feed = EventFeed(self.store, poll_seconds=settings.watch_poll_seconds, buffer=settings.watch_buffer,
                              send_timeout=settings.watch_send_timeout,
                              max_watches=settings.max_watches,
                              max_watches_per_caller=settings.max_watches_per_caller)
        self.classifier = Classifier(load_aliases(*settings.aliases))
        self.app = App(
            store=self.store, classifier=self.classifier, feed=self.feed,
            leases=Leases(int(settings.lease_seconds * 1e6)),
            limits=settings.limits,
            authenticator=Authenticator(self.store) if settings.auth else None,
            notify_allow_private=settings.notify_allow_private,
            retention_min_us=int(settings.request_id_seconds * 1e6),
        )
        self.health = health.aio.HealthServicer() if hasattr(health, "aio") else health.HealthServicer()
        self.port = 0
        self._grpc: grpc.aio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Future[None]] = set()
        self.web: WebServer | None = None  # imported when --web-port asks for it (aiohttp)

    async def start(self) -> int:
        await self.store.start()
        await self.store.write(projects.ensure_default, now_us())
        self.store.add_commit_listener(self.feed.notify)
        self.store.add_fault_listener(self._on_store_fault)
        self.store.add_commit_size_listener(metrics.COMMIT_BATCH.observe)
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", int(self.settings.reuse_port)),
            ("grpc.keepalive_time_ms", int(self.settings.keepalive_seconds * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.settings.keepalive_timeout_seconds * 1000)),
            # This gRPC's core times a keepalive ping out by this one (measured: with only
            # keepalive_timeout_ms, a frozen client's connection stayed open).
            ("grpc.http2.ping_timeout_ms", int(self.settings.keepalive_timeout_seconds * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            # Clients may ping as often as every 10 s (a watcher behind a proxy keeps its stream alive).
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
            ("grpc.http2.max_pings_without_data", 0),
        ]
        server = self._grpc = grpc.aio.server(options=options)
        for service, servicer in SERVICES:
            register(server, servicer(self.app), service)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection([*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
        address = f"{self.settings.host}:{self.settings.port}"
        credentials = self._credentials()
        self.port = (server.add_secure_port(address, credentials) if credentials
                     else server.add_insecure_port(address))
        if not self.port:
            raise OSError(f"cannot listen on {self.settings.host}:{self.settings.port}")
        await server.start()
        if self.settings.metrics_port:
            metrics.serve(self.settings.host, self.settings.metrics_port, self.store)
        if self._otlp_metrics is not None:
            self._otlp_metrics.start()
        if self.settings.web_port:
            from .web import WebServer
            self.web = WebServer(self.settings, self.port)
            await self.web.start()
        for name in ["", *SERVICE_NAMES]:
            await self._set_health(name, health_pb2.HealthCheckResponse.SERVING)
        self._tasks = [asyncio.create_task(self.feed.run(), name="event-feed")]
        if self.settings.primary:
            self._tasks += [
                asyncio.create_task(self._sweep_forever(), name="sweeper"),
                asyncio.create_task(self._prune_forever(), name="retention"),
                asyncio.create_task(self._admin_notifier().run(), name="notifier"),
                *await self._start_notifications(),
            ]
        # Everything made so far (modules, descriptors, the classifier's tables) lives as long as
        # the server: out of the collector's sight, a full collection takes microseconds, not
        # the ~13 ms pause (measured) that lands on some unlucky RPC's latency.
        gc.collect()
        gc.freeze()
        log.info("listening", extra={"host": self.settings.host, "port": self.port, "db": self.settings.db,
                                     "auth": self.settings.auth, "tls": bool(self.settings.tls_cert),
                                     "mtls": bool(self.settings.tls_client_ca)})
        return self.port

    def _admin_notifier(self) -> AdminNotifier:
        notifier = AdminNotifier(self.store, [log_notifier], poll_seconds=self.settings.watch_poll_seconds)
        self.store.add_commit_listener(notifier.notify)
        return notifier

    async def _start_notifications(self) -> list[asyncio.Task[None]]:
        """The admin subscription as --admin-webhook says, and the loops that deliver what the
        subscriptions are owed (they act while this server leads: Store.lead)."""
        s = self.settings
        dropped = await self.store.write(outbox.configure_admin, s.admin_webhook, s.admin_webhook_secret, now_us())
        if dropped:
            log.warning("no --admin-webhook: the notifications still owed to the admin webhook are dropped",
                        extra={"count": dropped})
        deliveries = Deliveries(self.store, s.notify_retries, smtp=s.smtp, public_url=s.public_url,
                                allow_private=s.notify_allow_private)
        self.app.wake_deliveries = deliveries.wake  # a redelivery or a test is sent at once
        scanner = outbox.Outbox(self.store, deliveries.wake, rate_window_seconds=s.notify_rate_window_seconds)
        self.store.add_commit_listener(scanner.notify)
        return [asyncio.create_task(scanner.run(), name="notification-outbox"),
                asyncio.create_task(deliveries.run(), name="notification-delivery")]

    def _credentials(self) -> grpc.ServerCredentials | None:
        s = self.settings
        if not s.tls_cert:
            return None
        with open(s.tls_cert, "rb") as cert, open(s.tls_key, "rb") as key:
            pair = (key.read(), cert.read())
        client_ca = None
        if s.tls_client_ca:
            with open(s.tls_client_ca, "rb") as ca:
                client_ca = ca.read()
        return grpc.ssl_server_credentials([pair], root_certificates=client_ca,
                                           require_client_auth=client_ca is not None)

    def _on_store_fault(self, fault: str) -> None:
        """Health says NOT_SERVING while the database cannot be written (load balancers and
        orchestrators stop sending work), SERVING again once it can."""
        status = health_pb2.HealthCheckResponse.NOT_SERVING if fault else health_pb2.HealthCheckResponse.SERVING
        for name in ["", *SERVICE_NAMES]:
            task = asyncio.ensure_future(self._set_health(name, status))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _set_health(self, name: str, status: int) -> None:
        result = self.health.set(name, status)
        if asyncio.iscoroutine(result):
            await result

    async def _sweep_forever(self) -> None:
        stalls = sweeper.Stalls(self.app.leases.lease_us)
        clock = asyncio.create_task(stalls.watch(), name="stall-watch")
        try:
            await self._sweep_passes(stalls)
        finally:
            clock.cancel()

    async def _sweep_passes(self, stalls: sweeper.Stalls) -> None:
        while True:
            try:
                # One server at a time sweeps a database that several share (store.lead).
                # A pass that fills its batch is followed by another at once.
                batch = self.store.batch_size
                while await self.store.lead():
                    with tracing.span("runstatus.sweep") as span:
                        killed, lost = await self.store.write(
                            sweeper.sweep, self.classifier, now_us(), batch, stalls.credit_us())
                        if span is not None:
                            span.set_attribute("runstatus.runs_killed", killed)
                            span.set_attribute("runstatus.runs_lost", lost)
                        if killed:
                            log.warning("runs killed for outliving their max runtime", extra={"count": killed})
                        if lost:
                            log.warning("runs lost: their leases expired", extra={"count": lost})
                    if killed < batch and lost < batch:
                        await self._prune_kept_answers()
                        await self._prune_notifications()
                        await self._free_pages()
                        break
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the sweeper must outlive a bad moment of the disk
                log.exception("sweep failed; trying again")
            await asyncio.sleep(self.settings.sweep_seconds)

    async def _prune_forever(self) -> None:
        """Retention (pruner.py), while this server leads: a pass every --sweep-seconds, beside
        the sweeper (a long pass never delays a lease's expiry)."""
        work = pruner.Pruner(self.store, self.settings.retention, self.settings.archive)
        while True:
            try:
                if await self.store.lead():
                    with tracing.span("runstatus.retention"):
                        await work.run_pass(now_us())
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - as the sweeper: the next pass tries again
                log.exception("retention pass failed; trying again")
            await asyncio.sleep(self.settings.sweep_seconds)

    async def _prune_kept_answers(self) -> None:
        """Kept answers older than --request-id-seconds go, a batch per write."""
        before, batch = now_us() - int(self.settings.request_id_seconds * 1e6), self.store.delete_batch_size
        while await self.store.write(idempotency.prune, before, batch) == batch:
            pass

    async def _free_pages(self) -> None:
        """What pruning freed goes back to the file system in steps (SQLite), a write per step,
        paced as the pruner is: after each, a pause FREE_PAGES_PAUSE times as long as it took, so
        the writers have the database most of the time (a step holds it for milliseconds)."""
        freed = 0
        while True:
            started = time.monotonic()
            step = await self.store.write(_free_pages, FREE_PAGES_PER_WRITE)
            freed += step
            if step < FREE_PAGES_PER_WRITE:
                break
            await asyncio.sleep(FREE_PAGES_PAUSE * (time.monotonic() - started))
        if freed:
            log.info("database pages given back to the file system", extra={"pages": freed})

    async def _prune_notifications(self) -> None:
        """Deliveries delivered or dead longer ago than --notify-retention-days go, a batch per write."""
        before = now_us() - int(self.settings.notify_retention_days * 86400 * 1e6)
        batch, deleted = self.store.delete_batch_size, 0
        while (gone := await self.store.write(retention.prune, before, batch)):
            deleted += gone
            if gone < batch:
                break
        if deleted:
            log.info("notification deliveries past their retention deleted",
                     extra={"count": deleted, "retention_days": self.settings.notify_retention_days})

    async def stop(self) -> None:
        """Graceful: refuse new RPCs, let in-flight ones (and their writes) finish, then close.
        Each phase's seconds are logged with "stopped"; a stop that outlasts the grace period by
        STOP_STACKS_SECONDS logs where each asyncio task waits and every thread's stack
        (faulthandler), to say why."""
        faulthandler.dump_traceback_later(self.settings.grace_seconds + STOP_STACKS_SECONDS)
        took: dict[str, float] = {}
        phase = ["web"]
        watchdog = asyncio.create_task(_report_late_stop(self.settings.grace_seconds + STOP_STACKS_SECONDS, phase))
        started = time.monotonic()

        def done(then: str) -> None:
            nonlocal started
            took[f"{phase[0]}_seconds"] = round(time.monotonic() - started, 3)
            phase[0], started = then, time.monotonic()

        try:
            for name in ["", *SERVICE_NAMES]:
                await self._set_health(name, health_pb2.HealthCheckResponse.NOT_SERVING)
            if self.web is not None:
                await self.web.stop()
            done("grpc")
            self.feed.close()  # watches end at once; unary calls get the grace period
            if self._grpc is not None:
                await self._grpc.stop(self.settings.grace_seconds)
            done("tasks")
            await _cancel(self._tasks)
            done("store")
            if self._otlp_metrics is not None:  # the last figures go out, read while the store is open
                try:
                    await asyncio.to_thread(self._otlp_metrics.stop)
                except Exception:  # noqa: BLE001 - the store still closes
                    log.exception("stopping the OTLP metrics failed")
            await self.store.close()
            tracing.shutdown()  # the spans still held go out
            done("")
        finally:
            faulthandler.cancel_dump_traceback_later()
            watchdog.cancel()
        log.info("stopped", extra=took)


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    """Cancels the tasks and waits for them to end, cancelling again those still running each
    second: Python 3.11's asyncio.wait_for loses a cancellation that arrives as the awaited
    future completes, and a loop around it (a poll) would then run on and hold the stop for ever."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.warning("a task ended with an error as the server stopped", extra={"task": task.get_name()},
                        exc_info=task.exception())


def _awaiting(task: asyncio.Task[object]) -> str:
    """Where a suspended task waits: its chain of awaits, outermost first (file:line function)."""
    where: list[str] = []
    coro: Any = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            where.append(f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return " > ".join(where) or repr(task)


async def _report_late_stop(after: float, phase: list[str]) -> None:
    await asyncio.sleep(after)
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            log.warning("the stop is late: a task still waits", extra={
                "phase": phase[0], "task": task.get_name(), "awaiting": _awaiting(task)})


async def serve(settings: Settings) -> None:
    server = Server(settings)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await server.stop()
