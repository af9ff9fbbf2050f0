"""The `runstatus` command line."""

from __future__ import annotations

import asyncio
import faulthandler
import ipaddress
import logging
import os
import re
import secrets
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Optional

import typer

from runstatus.v1.project_pb2 import RetentionPolicy

from . import logs
from . import retention as retention_rules
from .archive import Archiver, DirectorySink
from .archive.pruning import pruner_archive
from .processes import PER_PROCESS, serve_processes
from .limits import Limits
from .notifications.mail import SECURITIES, SmtpServer
from .notifications.retries import Retries
from .server import Settings, serve
from .store import is_postgres_url, sqlite_path
from .store.base import CannotOpen

log = logging.getLogger("runstatus.server")
# A --web-allowed-hosts name: as a Host header gives it.
HOST_HEADER = re.compile(r"([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?")

app = typer.Typer(help="runstatus: work orders, runs and their statuses, over gRPC.", no_args_is_help=True, pretty_exceptions_enable=False)


@app.callback()
def main_callback() -> None:
    """runstatus: work orders, runs and their statuses, over gRPC."""


@app.command("serve")
def serve_command(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(envvar="RUNSTATUS_PORT", help="Port to listen on; 0 picks a free one.")] = 50051,
    db: Annotated[str, typer.Option(envvar="RUNSTATUS_DB", help="The SQLite database file (a path, or sqlite:PATH), or a PostgreSQL URL: postgresql://user@host:port/dbname.")] = "runstatus.db",
    host: Annotated[str, typer.Option(envvar="RUNSTATUS_HOST", help="Address to listen on.")] = "127.0.0.1",
    lease_seconds: Annotated[float, typer.Option(envvar="RUNSTATUS_LEASE_SECONDS", help="Lease length of a claimed run.")] = 30.0,
    sweep_seconds: Annotated[float, typer.Option(envvar="RUNSTATUS_SWEEP_SECONDS", help="How often expired leases and timeouts are swept.")] = 1.0,
    aliases: Annotated[Optional[list[Path]], typer.Option(envvar="RUNSTATUS_ALIASES", help="Extra alias table (YAML); repeatable.")] = None,
    admin_webhook: Annotated[str, typer.Option(envvar="RUNSTATUS_ADMIN_WEBHOOK", help="URL that EXCEPTION and LOST runs are POSTed to, each until it is delivered (at least once) or the retry window ends.")] = "",
    admin_webhook_secret: Annotated[str, typer.Option(envvar="RUNSTATUS_ADMIN_WEBHOOK_SECRET", help="Sign the admin webhook's deliveries with this secret (header Runstatus-Signature); without it they are unsigned. Prefer the environment variable: a command line is visible to other users.")] = "",
    notify_retry_hours: Annotated[float, typer.Option(envvar="RUNSTATUS_NOTIFY_RETRY_HOURS", help="How long a notification that fails is retried before it is given up (dead, logged).")] = 24.0,
    notify_backoff_min_seconds: Annotated[float, typer.Option(envvar="RUNSTATUS_NOTIFY_BACKOFF_MIN_SECONDS", help="The first wait before a failed notification is retried; it doubles, with jitter, after each failure.")] = 1.0,
    notify_backoff_max_seconds: Annotated[float, typer.Option(envvar="RUNSTATUS_NOTIFY_BACKOFF_MAX_SECONDS", help="The longest wait between two attempts at a notification (a receiver's Retry-After may ask for longer).")] = 600.0,
    smtp_host: Annotated[str, typer.Option(envvar="RUNSTATUS_SMTP_HOST", help="The SMTP server email notifications go through, unless a subscription names its own (none: such subscriptions are retried, and fail).")] = "",
    smtp_port: Annotated[int, typer.Option(envvar="RUNSTATUS_SMTP_PORT", help="Its port (0: 25, 587 or 465 as --smtp-security says).")] = 0,
    smtp_security: Annotated[str, typer.Option(envvar="RUNSTATUS_SMTP_SECURITY", help="none, starttls or tls (TLS from the first byte).")] = "starttls",
    smtp_username: Annotated[str, typer.Option(envvar="RUNSTATUS_SMTP_USERNAME", help="Log in to the SMTP server as this user (none: no login).")] = "",
    smtp_password_file: Annotated[Optional[Path], typer.Option(envvar="RUNSTATUS_SMTP_PASSWORD_FILE", help="A file holding the SMTP password (never on the command line).")] = None,
    smtp_from: Annotated[str, typer.Option(envvar="RUNSTATUS_SMTP_FROM", help="The From address of email notifications.")] = "",
    public_url: Annotated[str, typer.Option(envvar="RUNSTATUS_PUBLIC_URL", help="The history page's public base URL (https://status.example.org): Slack and email notifications link each run's page under it; none: no links.")] = "",
    notify_retention_days: Annotated[float, typer.Option(envvar="RUNSTATUS_NOTIFY_RETENTION_DAYS", help="How long delivered and dead notification deliveries are kept (then deleted).")] = 30.0,
    notify_rate_window_seconds: Annotated[float, typer.Option(hidden=True)] = 60.0,
    notify_allow_private: Annotated[bool, typer.Option("--notify-allow-private", envvar="RUNSTATUS_NOTIFY_ALLOW_PRIVATE", help="Allow notification subscriptions whose webhook, Slack URL or SMTP host resolves to a loopback, private or link-local address (refused by default: a project admin could reach the server's own network). --admin-webhook is never checked.")] = False,
    max_input_bytes: Annotated[int, typer.Option(envvar="RUNSTATUS_MAX_INPUT_BYTES", help="Largest work order input (encoded).")] = Limits.max_input_bytes,
    max_output_bytes: Annotated[int, typer.Option(envvar="RUNSTATUS_MAX_OUTPUT_BYTES", help="Largest output of one step (encoded).")] = Limits.max_output_bytes,
    max_run_bytes: Annotated[int, typer.Option(envvar="RUNSTATUS_MAX_RUN_BYTES", help="Largest step runs of one run together: outputs and errors (encoded).")] = Limits.max_run_bytes,
    max_step_runs: Annotated[int, typer.Option(envvar="RUNSTATUS_MAX_STEP_RUNS", help="Most step runs in one run.")] = Limits.max_step_runs,
    max_workflow_bytes: Annotated[int, typer.Option(envvar="RUNSTATUS_MAX_WORKFLOW_BYTES", help="Largest workflow version (encoded).")] = Limits.max_workflow_bytes,
    request_id_seconds: Annotated[float, typer.Option(envvar="RUNSTATUS_REQUEST_ID_SECONDS", help="How long the first answer to a request_id is kept; a repeat within it gets that answer.")] = 86400.0,
    retention: Annotated[str, typer.Option(envvar="RUNSTATUS_RETENTION", help="How long ended work orders are kept after their last change, by status, where a project's own policy does not say: e.g. SUCCESS=30d,FAILED=365d,CANCELLED=30d,payloads=7d (s, m, h, d; 0 for ever; each at least --request-id-seconds). Empty: kept for ever.")] = "",
    archive_dir: Annotated[Optional[Path], typer.Option(envvar="RUNSTATUS_ARCHIVE_DIR", help="Where work orders are archived before retention removes them, for projects whose retention says archive (gzip NDJSON files with manifests; `runstatus archive verify DIR`). Without it, those projects' work orders are kept.")] = None,
    log_level: Annotated[str, typer.Option(envvar="RUNSTATUS_LOG_LEVEL")] = "info",
    auth: Annotated[bool, typer.Option("--auth", envvar="RUNSTATUS_AUTH", help="Require an API token on every call (health checks stay open).")] = False,
    insecure: Annotated[bool, typer.Option("--insecure", envvar="RUNSTATUS_INSECURE", help="Allow a non-loopback address without --auth.")] = False,
    tls_cert: Annotated[Optional[Path], typer.Option(envvar="RUNSTATUS_TLS_CERT", help="Serve TLS with this certificate chain (PEM).")] = None,
    tls_key: Annotated[Optional[Path], typer.Option(envvar="RUNSTATUS_TLS_KEY", help="The TLS private key (PEM).")] = None,
    tls_client_ca: Annotated[Optional[Path], typer.Option(envvar="RUNSTATUS_TLS_CLIENT_CA", help="Require client certificates signed by this CA (mTLS).")] = None,
    metrics_port: Annotated[int, typer.Option(envvar="RUNSTATUS_METRICS_PORT", help="Serve Prometheus metrics over HTTP on this port (0: off).")] = 0,
    otel: Annotated[bool, typer.Option("--otel", envvar="RUNSTATUS_OTEL", help="Send traces (OpenTelemetry, OTLP over gRPC) as the standard OTEL_* environment variables say: OTEL_EXPORTER_OTLP_ENDPOINT (http://host:4317 for plain text), OTEL_SERVICE_NAME (default runstatus), OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (default: every call, or as the caller's traceparent says); with OTEL_METRICS_EXPORTER=otlp, the Prometheus metrics too, every OTEL_METRIC_EXPORT_INTERVAL ms. Off: no cost.")] = False,
    trace_url_template: Annotated[str, typer.Option(envvar="RUNSTATUS_TRACE_URL_TEMPLATE", help="The history page links each run to its trace at this URL, {trace_id} replaced by the run's trace id (e.g. http://jaeger:16686/trace/{trace_id}); none: no links.")] = "",
    web_port: Annotated[int, typer.Option(envvar="RUNSTATUS_WEB_PORT", help="Serve the web UI (history page) on this port (0: off); over HTTPS with --tls-cert.")] = 0,
    web_allowed_hosts: Annotated[str, typer.Option(envvar="RUNSTATUS_WEB_ALLOWED_HOSTS", help="More names the web UI answers to, comma-separated, as a browser's Host header gives them (a proxy's: status.example.org, or status.example.org:8443); its own address, localhost, 127.0.0.1 and [::1] with --web-port always.")] = "",
    watch_buffer: Annotated[int, typer.Option(envvar="RUNSTATUS_WATCH_BUFFER", help="Events held for one watch; one that falls further behind reads the log instead.")] = 10_000,
    watch_send_timeout: Annotated[float, typer.Option(envvar="RUNSTATUS_WATCH_SEND_TIMEOUT", help="A watch that is behind and whose client takes no event for this long is cut off (RESOURCE_EXHAUSTED WATCH_TOO_SLOW; it resumes from its cursor).")] = 30.0,
    watch_poll_seconds: Annotated[float, typer.Option(envvar="RUNSTATUS_WATCH_POLL_SECONDS", help="How often each process reads the event log for commits it was not told of, for its watches and the admin notices (0 < s <= 3600): its own commits, and on PostgreSQL other servers' (a NOTIFY), wake them at once; the other processes' of --processes on SQLite, and any NOTIFY lost, wait for this poll.")] = 1.0,
    max_watches: Annotated[int, typer.Option(envvar="RUNSTATUS_MAX_WATCHES", help="Most watch streams open in one server process.")] = 10_000,
    max_watches_per_caller: Annotated[int, typer.Option(envvar="RUNSTATUS_MAX_WATCHES_PER_CALLER", help="Most watch streams open for one token (or, without --auth, one project).")] = 1_000,
    keepalive_seconds: Annotated[float, typer.Option(envvar="RUNSTATUS_KEEPALIVE_SECONDS", help="Ping idle connections this often (HTTP/2 keepalive).")] = 60.0,
    keepalive_timeout_seconds: Annotated[float, typer.Option(envvar="RUNSTATUS_KEEPALIVE_TIMEOUT_SECONDS", help="A connection that does not answer a ping within this long is dropped, with its watches.")] = 20.0,
    processes: Annotated[int, typer.Option(envvar="RUNSTATUS_PROCESSES", help="Server processes sharing the port (0: one per core).")] = 1,
    reuse_port: Annotated[bool, typer.Option(hidden=True)] = False,
    role: Annotated[str, typer.Option(hidden=True)] = "primary",
) -> None:
    """Start the server on an embedded SQLite database (or on PostgreSQL: --db postgresql://...)."""
    logs.setup(log_level)
    if lease_seconds <= 0 or sweep_seconds <= 0 or request_id_seconds <= 0 or keepalive_seconds <= 0 \
            or keepalive_timeout_seconds <= 0 or watch_send_timeout <= 0:
        raise typer.BadParameter(
            "--lease-seconds, --sweep-seconds, --request-id-seconds, --keepalive-seconds, "
            "--keepalive-timeout-seconds and --watch-send-timeout must be positive")
    if notify_retry_hours <= 0 or not 0 < notify_backoff_min_seconds <= notify_backoff_max_seconds:
        raise typer.BadParameter("--notify-retry-hours must be positive, and 0 < --notify-backoff-min-seconds <= "
                                 "--notify-backoff-max-seconds", param_hint="--notify-*")
    smtp = _smtp_server(smtp_host, smtp_port, smtp_security, smtp_username, smtp_password_file, smtp_from)
    if public_url and not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", public_url):
        raise typer.BadParameter("an http:// or https:// URL, without query or fragment", param_hint="--public-url")
    if notify_retention_days <= 0 or notify_rate_window_seconds <= 0:
        raise typer.BadParameter("must be positive", param_hint="--notify-retention-days")
    if not 0 < watch_poll_seconds <= 3600:
        raise typer.BadParameter("more than 0 and at most 3600", param_hint="--watch-poll-seconds")
    if watch_buffer < 1 or max_watches < 0 or max_watches_per_caller < 0:
        raise typer.BadParameter("--watch-buffer must be at least 1, --max-watches* at least 0",
                                 param_hint="--watch-buffer")
    if bool(tls_cert) != bool(tls_key) or (tls_client_ca and not tls_cert):
        raise typer.BadParameter("--tls-cert and --tls-key go together; --tls-client-ca needs them", param_hint="--tls-cert")
    if web_port and tls_client_ca:
        raise typer.BadParameter("the web UI has no client certificate to call an mTLS gRPC port with", param_hint="--web-port")
    allowed_hosts = [name.strip() for name in web_allowed_hosts.split(",") if name.strip()]
    if bad := [name for name in allowed_hosts if not HOST_HEADER.fullmatch(name)]:
        raise typer.BadParameter(f"{', '.join(bad)}: a Host header is a name or [IPv6 address], and a port maybe "
                                 "(status.example.org:8443), not a URL", param_hint="--web-allowed-hosts")
    if trace_url_template and (not re.fullmatch(r"https?://\S+", trace_url_template)
                               or "{trace_id}" not in trace_url_template):
        raise typer.BadParameter("an http:// or https:// URL with {trace_id} in it", param_hint="--trace-url-template")
    if not auth and not insecure and not _is_loopback(host):
        # Secure by default: a server others can reach requires tokens unless told otherwise.
        raise typer.BadParameter(
            f"{host} is not a loopback address: serve it with --auth, or say --insecure", param_hint="--host")
    retention_policy = _retention_policy(retention, request_id_seconds)
    limits = Limits(max_input_bytes=max_input_bytes, max_output_bytes=max_output_bytes, max_run_bytes=max_run_bytes,
                    max_step_runs=max_step_runs, max_workflow_bytes=max_workflow_bytes)
    try:
        limits.check()
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--max-*-bytes") from None
    if not is_postgres_url(db):
        Path(sqlite_path(db)).parent.mkdir(parents=True, exist_ok=True)
    if archive_dir is not None:
        archive_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(archive_dir, os.W_OK):
            raise typer.BadParameter(f"cannot write {archive_dir}", param_hint="--archive-dir")
    settings = Settings(
        host=host, port=port, db=db, lease_seconds=lease_seconds, sweep_seconds=sweep_seconds,
        aliases=[str(a) for a in aliases or []], admin_webhook=admin_webhook, limits=limits,
        admin_webhook_secret=admin_webhook_secret,
        notify_retries=Retries(window_seconds=notify_retry_hours * 3600, min_seconds=notify_backoff_min_seconds,
                               max_seconds=notify_backoff_max_seconds),
        smtp=smtp, public_url=public_url.rstrip("/"), notify_retention_days=notify_retention_days,
        notify_rate_window_seconds=notify_rate_window_seconds,
        notify_allow_private=notify_allow_private,
        request_id_seconds=request_id_seconds, retention=retention_policy,
        archive=pruner_archive(Archiver(DirectorySink(archive_dir))) if archive_dir is not None else None,
        reuse_port=reuse_port, primary=role == "primary", auth=auth,
        tls_cert=str(tls_cert or ""), tls_key=str(tls_key or ""), tls_client_ca=str(tls_client_ca or ""),
        metrics_port=metrics_port, web_port=web_port, web_allowed_hosts=allowed_hosts,
        # One key for the web UI's CSRF tokens in every process of this server: they inherit the environment.
        web_secret=os.environ.setdefault("RUNSTATUS_WEB_SECRET", secrets.token_urlsafe(32)),
        watch_buffer=watch_buffer, watch_send_timeout=watch_send_timeout, watch_poll_seconds=watch_poll_seconds,
        max_watches=max_watches,
        max_watches_per_caller=max_watches_per_caller, keepalive_seconds=keepalive_seconds,
        keepalive_timeout_seconds=keepalive_timeout_seconds,
        otel=otel, trace_url_template=trace_url_template,
    )
    processes = processes or os.cpu_count() or 1
    # From here the log is the server's: every line JSON, gRPC core's own included (logs.py).
    # (A mistake in the options above stays a line for the person who typed them.)
    logs.relay_stderr()
    # A crash in C says so in the log, with each thread's stack: a SIGBUS from a truncated -shm
    # (store/sqlite/engine.py) would otherwise end the server without a word.
    faulthandler.enable()
    try:
        if processes > 1:
            # The secret goes to the primary process through its environment, not its command line.
            if admin_webhook_secret:
                os.environ["RUNSTATUS_ADMIN_WEBHOOK_SECRET"] = admin_webhook_secret
            raise typer.Exit(serve_processes(settings, processes, _given_options(
                ctx, leave_out=(*PER_PROCESS, "admin_webhook_secret"))))
        asyncio.run(serve(settings))
    except CannotOpen as e:
        # A database the server must not serve: one clear line, no traceback, and a failing exit.
        log.error("cannot start: %s", e)
        raise typer.Exit(2) from None


def _retention_policy(spec: str, request_id_seconds: float) -> RetentionPolicy:
    """The instance's default retention (--retention), checked as a project's is."""
    try:
        policy = retention_rules.parse(spec)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--retention") from None
    if wrong := retention_rules.check(policy, "retention", int(request_id_seconds * 1e6)):
        raise typer.BadParameter("; ".join(f"{where} {why}" for where, why in wrong), param_hint="--retention")
    return policy


def _smtp_server(host: str, port: int, security: str, username: str, password_file: Path | None,
                 from_address: str) -> SmtpServer:
    """The default SMTP server of email notifications; its password read from a file (a command
    line is visible to other users, and every process of the server reads the same file)."""
    if security not in SECURITIES:
        raise typer.BadParameter(f"one of {', '.join(SECURITIES)}", param_hint="--smtp-security")
    if not 0 <= port < 65536:
        raise typer.BadParameter("a port number", param_hint="--smtp-port")
    password = ""
    if password_file is not None:
        try:
            password = password_file.read_text().rstrip("\r\n")
        except OSError as e:
            raise typer.BadParameter(f"cannot read it: {e.strerror}", param_hint="--smtp-password-file") from None
    return SmtpServer(host, port, SECURITIES[security], username, password, from_address)


def _given_options(ctx: typer.Context, leave_out: Collection[str]) -> list[str]:
    """Command-line options that give another process this command's options as they came
    out here (from the command line, the environment or the defaults), but those named in
    `leave_out`: every option the command has, so none can be forgotten."""
    args: list[str] = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if param.param_type_name != "option" or param.name in leave_out or value is None:
            continue
        if getattr(param, "is_flag", False):
            switch = param.opts[0] if value else next(iter(param.secondary_opts), "")
            args += [switch] if switch else []
        else:
            args += [f"{param.opts[0]}={v}" for v in (value if param.multiple else [value])]
    return args


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main() -> None:
    app()


