"""Every request's shape, checked before the request is acted on: one INVALID_ARGUMENT names
every wrong field (`Checks`). Whether a request fits what is stored (a run's status, a
workflow's steps) is for the domain modules to say.

One function a request (or a few requests of one shape), named after it. The services call
them first; those of a project (created or updated), a workflow and a token's role run inside
the write instead, once the request_id is looked up (project_service.py says why).
"""

from __future__ import annotations

import re
from typing import Any, Literal, get_args

from google.protobuf.struct_pb2 import Struct

from runstatus.v1 import classifier_service_pb2 as classifier_pb
from runstatus.v1 import notification_pb2 as notification_pb
from runstatus.v1 import notification_service_pb2 as notification_service_pb
from runstatus.v1 import project_service_pb2 as project_pb
from runstatus.v1 import token_service_pb2 as token_pb
from runstatus.v1 import work_order_service_pb2 as work_order_pb
from runstatus.v1 import worker_service_pb2 as worker_pb
from runstatus.v1 import workflow_service_pb2 as workflow_pb
from runstatus.v1.error_pb2 import ErrorReport, ErrorSeverity, ErrorSource
from runstatus.v1.event_pb2 import EventType
from runstatus.v1.project_pb2 import Project
from runstatus.v1.status_pb2 import RunStatus
from runstatus.v1.work_order_pb2 import WorkOrderFilter
from runstatus.v1.workflow_pb2 import EdgeCondition, Workflow

from ..auth import ADMIN, CLIENT, WORKER
from ..errors import InvalidArgument, invalid
from ..limits import Limits
from ..notifications.addresses import url_shape_refusal
from ..projects import UPDATABLE
from ..retention import check as retention_violations
from ..util import duration_us

MAX_CLAIM = 100
MAX_FILTER_STATUSES = 32
# A WorkOrderFilter's time bounds (its Timestamp fields): each checked as a timestamp;
# WatchWorkOrders takes none. (tests/test_bad_input.py holds them to the filter's Timestamp fields.)
TimeRangeField = Literal["create_time_start", "create_time_end", "update_time_start", "update_time_end"]
TIME_RANGE_FIELDS: tuple[TimeRangeField, ...] = get_args(TimeRangeField)
# The ids users choose (projects, workflows, steps) and the names they give them.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ID_RULE = "must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
MAX_NAME = 256
MAX_STEPS = 1000
MAX_EDGES = 5000
MAX_BODY = 256 * 1024
MAX_DURATION_US = 366 * 24 * 3600 * 1_000_000


def struct_depth(value: Struct) -> int:
    """How many Structs and lists deep a Struct nests (1 for a flat one)."""
    deepest, todo = 0, [(v, 1) for v in value.fields.values()]
    while todo:
        item, depth = todo.pop()
        deepest = max(deepest, depth)
        kind = item.WhichOneof("kind")
        if kind == "struct_value":
            todo += [(v, depth + 1) for v in item.struct_value.fields.values()]
        elif kind == "list_value":
            todo += [(v, depth + 1) for v in item.list_value.values]
    return deepest


def find_cycle(workflow: Workflow) -> list[str]:
    """A cycle as a list of step ids (first repeated at the end), or [] for a DAG."""
    children: dict[str, list[str]] = {step.id: [] for step in workflow.steps}
    for edge in workflow.edges:
        children[edge.source_step_id].append(edge.target_step_id)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in children:
        if state.get(start):
            continue
        path = [start]
        stack = [iter(children[start])]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(children[nxt]))
    return []


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


class Checks:
    """Collects field violations so that one INVALID_ARGUMENT names every wrong field."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.violations: list[tuple[str, str]] = []

    def add(self, field: str, description: str) -> None:
        self.violations.append((field, description))

    def short(self, field: str, value: str, *, required: bool = False) -> None:
        if required and not value:
            self.add(field, "is required")
        elif len(value) > self.limits.max_short:
            self.add(field, f"must be at most {self.limits.max_short} characters")

    def id(self, field: str, value: str) -> None:
        if not value:
            self.add(field, "is required")
        elif not ID_PATTERN.match(value):
            self.add(field, ID_RULE)

    def name(self, field: str, value: str) -> None:
        if len(value) > MAX_NAME:
            self.add(field, f"must be at most {MAX_NAME} characters")

    def struct(self, field: str, value: Struct, max_bytes: int) -> None:
        if value.ByteSize() > max_bytes:
            self.add(field, f"must be at most {max_bytes} bytes encoded")
        elif struct_depth(value) > self.limits.max_struct_depth:
            # Deeper states could not be read back: answers nest them further, past protobuf's limit.
            self.add(field, f"must nest at most {self.limits.max_struct_depth} levels deep")

    def enum(self, field: str, value: int, enum: Any, *, allow_unspecified: bool = True) -> None:
        if value not in enum.values() or (not allow_unspecified and value == 0):
            names = ", ".join(n for n in enum.keys() if not n.endswith("_UNSPECIFIED"))
            self.add(field, f"must be one of {names}")

    def error_report(self, field: str, report: ErrorReport) -> None:
        if not report.name.strip():
            self.add(f"{field}.name", "is required: the error's class name as thrown")
        elif _utf8_len(report.name) > self.limits.max_error_name:
            self.add(f"{field}.name", f"must be at most {self.limits.max_error_name} bytes (UTF-8)")
        # A wrapped error's class name: optional, bounded as the name is.
        if _utf8_len(report.subtype) > self.limits.max_error_name:
            self.add(f"{field}.subtype", f"must be at most {self.limits.max_error_name} bytes (UTF-8)")
        # Bytes, not characters: an error is stored, and answers carry it (limits.py).
        if _utf8_len(report.message) > self.limits.max_error_message:
            self.add(f"{field}.message", f"must be at most {self.limits.max_error_message} bytes (UTF-8)")
        if _utf8_len(report.stack) > self.limits.max_error_stack:
            self.add(f"{field}.stack", f"must be at most {self.limits.max_error_stack} bytes (UTF-8)")
        self.short(f"{field}.language", report.language)
        self.enum(f"{field}.source", report.source, ErrorSource)
        self.enum(f"{field}.severity", report.severity, ErrorSeverity)
        if report.http_status and not 100 <= report.http_status <= 599:
            self.add(f"{field}.http_status", "must be an HTTP status (100-599) or 0 for none")

    def work_order_filter(self, field: str, flt: WorkOrderFilter) -> None:
        if len(flt.statuses) > MAX_FILTER_STATUSES:
            self.add(f"{field}.statuses", f"at most {MAX_FILTER_STATUSES} statuses")
            return
        for i, status in enumerate(flt.statuses):
            self.enum(f"{field}.statuses[{i}]", status, RunStatus, allow_unspecified=False)
        self.short(f"{field}.workflow_id", flt.workflow_id)
        for name in TIME_RANGE_FIELDS:
            if flt.HasField(name):
                ts = getattr(flt, name)
                if not (0 <= ts.seconds < 253402300800 and 0 <= ts.nanos < 1_000_000_000):
                    self.add(f"{field}.{name}", "must be a valid timestamp")

    def done(self) -> None:
        if self.violations:
            raise InvalidArgument(self.violations)


def _one_id(limits: Limits, field: str, value: str, *, required: bool = True) -> None:
    """A request whose one field names what it is about."""
    checks = Checks(limits)
    checks.short(field, value, required=required)
    checks.done()


# --- ClassifierService

def classify(request: classifier_pb.ClassifyRequest, limits: Limits) -> None:
    checks = Checks(limits)
    if not request.HasField("error"):
        checks.add("error", "is required")
    else:
        checks.error_report("error", request.error)
    checks.done()


# --- ProjectService

def project_id(request: project_pb.GetProjectRequest | workflow_pb.ListWorkflowsRequest, limits: Limits) -> None:
    """A request that names a project, or none (the caller's, or the default)."""
    _one_id(limits, "project_id", request.project_id, required=False)


def project(value: Project, limits: Limits, min_retention_us: int = 0) -> None:
    """A project as created or updated: its id, name, run limit, max runtime and retention
    (each period at least min_retention_us, the server's --request-id-seconds)."""
    checks = Checks(limits)
    checks.id("project.id", value.id)
    checks.name("project.name", value.name)
    limit = value.run_limit
    if limit.max_in_flight < 0:
        checks.add("project.run_limit.max_in_flight", "must not be negative")
    if limit.max_per_window < 0:
        checks.add("project.run_limit.max_per_window", "must not be negative")
    if limit.max_per_window and duration_us(limit.window) <= 0:
        checks.add("project.run_limit.window", "must be positive when max_per_window is set")
    for field, duration in (("project.run_limit.window", limit.window), ("project.max_runtime", value.max_runtime)):
        if not 0 <= duration_us(duration) <= MAX_DURATION_US or not 0 <= duration.nanos < 1_000_000_000:
            checks.add(field, "must be between 0 and 366 days")
    checks.violations += retention_violations(value.retention, "project.retention", min_retention_us)
    checks.done()


def update_project(request: project_pb.UpdateProjectRequest, limits: Limits, min_retention_us: int = 0) -> None:
    """The fields it updates (its mask), then the project as it would be."""
    bad = [p for p in request.update_mask.paths if p not in UPDATABLE]
    if bad:
        raise invalid("update_mask", f"cannot update {', '.join(bad)}; only {', '.join(UPDATABLE)}")
    project(request.project, limits, min_retention_us)


# --- TokenService

def create_token(request: token_pb.CreateTokenRequest, limits: Limits) -> None:
    checks = Checks(limits)
    checks.short("project_id", request.project_id)
    checks.name("name", request.name)
    checks.done()


def token_role(request: token_pb.CreateTokenRequest) -> None:
    if request.role not in (WORKER, CLIENT, ADMIN):
        raise invalid("role", "must be ROLE_WORKER, ROLE_CLIENT or ROLE_ADMIN")


def revoke_token(request: token_pb.RevokeTokenRequest, limits: Limits) -> None:
    _one_id(limits, "token_id", request.token_id)


# --- WorkflowService

def create_workflow(request: workflow_pb.CreateWorkflowRequest, limits: Limits) -> None:
    """Where the workflow goes, and its size; what is in it is `workflow`'s to check."""
    checks = Checks(limits)
    checks.short("workflow.project_id", request.workflow.project_id)
    if request.workflow.ByteSize() > limits.max_workflow_bytes:
        # Every run of it carries it to its worker: it must fit in a claim's answer.
        checks.add("workflow", f"must be at most {limits.max_workflow_bytes} bytes encoded")
    checks.done()


def workflow(value: Workflow, limits: Limits) -> None:
    """A workflow version: its ids, steps, edges and conditions, and that it is a DAG."""
    checks = Checks(limits)
    checks.id("workflow.id", value.id)
    checks.name("workflow.name", value.name)
    if not value.steps:
        checks.add("workflow.steps", "a workflow needs at least one step")
    if len(value.steps) > MAX_STEPS:
        checks.add("workflow.steps", f"at most {MAX_STEPS} steps")
    if len(value.edges) > MAX_EDGES:
        checks.add("workflow.edges", f"at most {MAX_EDGES} edges")
    checks.done()

    step_ids: set[str] = set()
    for i, step in enumerate(value.steps):
        checks.id(f"workflow.steps[{i}].id", step.id)
        if step.id in step_ids:
            checks.add(f"workflow.steps[{i}].id", f"duplicate step id {step.id!r}")
        step_ids.add(step.id)
        if len(step.name) > MAX_NAME or len(step.adaptor) > MAX_NAME:
            checks.add(f"workflow.steps[{i}]", f"name and adaptor must be at most {MAX_NAME} characters")
        if len(step.body.encode()) > MAX_BODY:
            checks.add(f"workflow.steps[{i}].body", f"must be at most {MAX_BODY} bytes")

    seen_edges: set[tuple[str, str]] = set()
    for i, edge in enumerate(value.edges):
        where = f"workflow.edges[{i}]"
        for end in ("source_step_id", "target_step_id"):
            step_id = getattr(edge, end)
            if step_id not in step_ids:
                checks.add(f"{where}.{end}", f"no step {step_id!r} in this workflow")
        if edge.source_step_id == edge.target_step_id and edge.source_step_id:
            checks.add(where, "an edge cannot lead from a step to itself")
        pair = (edge.source_step_id, edge.target_step_id)
        if pair in seen_edges:
            checks.add(where, f"duplicate edge {pair[0]!r} -> {pair[1]!r}")
        seen_edges.add(pair)
        if edge.condition not in EdgeCondition.values() or edge.condition == EdgeCondition.EDGE_CONDITION_UNSPECIFIED:
            checks.add(f"{where}.condition", "must be ALWAYS, ON_SUCCESS, ON_FAILURE or EXPRESSION")
        elif edge.condition == EdgeCondition.EDGE_CONDITION_EXPRESSION and not edge.expression.strip():
            checks.add(f"{where}.expression", "is required for an EXPRESSION edge")
        elif edge.condition != EdgeCondition.EDGE_CONDITION_EXPRESSION and edge.expression:
            checks.add(f"{where}.expression", "is only allowed on an EXPRESSION edge")
        if len(edge.expression.encode()) > MAX_BODY:
            checks.add(f"{where}.expression", f"must be at most {MAX_BODY} bytes")
    checks.done()

    cycle = find_cycle(value)
    if cycle:
        raise invalid("workflow.edges", "the edges form a cycle: " + " -> ".join(cycle))


def _workflow_version(checks: Checks, project_id: str, workflow_id: str, version_field: str, version: int) -> None:
    """A workflow a request names: in a project (or the caller's), by id and version (0: the latest)."""
    checks.short("project_id", project_id)
    checks.short("workflow_id", workflow_id, required=True)
    if version < 0:
        checks.add(version_field, "must not be negative")


def get_workflow(request: workflow_pb.GetWorkflowRequest, limits: Limits) -> None:
    checks = Checks(limits)
    _workflow_version(checks, request.project_id, request.workflow_id, "version", request.version)
    checks.done()


# --- WorkOrderService

def create_work_order(request: work_order_pb.CreateWorkOrderRequest, limits: Limits) -> None:
    checks = Checks(limits)
    _workflow_version(checks, request.project_id, request.workflow_id, "workflow_version", request.workflow_version)
    checks.struct("input", request.input, limits.max_input_bytes)
    if abs(request.priority) > 1_000_000:
        checks.add("priority", "must be between -1000000 and 1000000")
    checks.done()


def work_order_id(request: work_order_pb.GetWorkOrderRequest | work_order_pb.ListRunsRequest, limits: Limits) -> None:
    """A request about one work order (GetWorkOrder, ListRuns)."""
    _one_id(limits, "work_order_id", request.work_order_id)


_Query = (work_order_pb.ListWorkOrdersRequest | work_order_pb.CountWorkOrdersRequest
          | work_order_pb.RetryWorkOrdersRequest | work_order_pb.WatchWorkOrdersRequest)


def _query(request: _Query, limits: Limits) -> Checks:
    checks = Checks(limits)
    checks.short("project_id", request.project_id)
    checks.work_order_filter("filter", request.filter)
    return checks


def work_order_query(request: _Query, limits: Limits) -> None:
    """A project's work orders by a filter (ListWorkOrders, CountWorkOrders)."""
    _query(request, limits).done()


def retry_work_order(request: work_order_pb.RetryWorkOrderRequest, limits: Limits) -> None:
    checks = Checks(limits)
    checks.short("work_order_id", request.work_order_id, required=True)
    checks.short("start_step_id", request.start_step_id)
    checks.done()


def retry_work_orders(request: work_order_pb.RetryWorkOrdersRequest, limits: Limits) -> None:
    checks = _query(request, limits)
    if not request.filter.statuses:
        checks.add("filter.statuses", "name at least one status, so that a bulk retry is deliberate")
    checks.done()


def get_run(request: work_order_pb.GetRunRequest, limits: Limits) -> None:
    _one_id(limits, "run_id", request.run_id)


def cancel_run(request: work_order_pb.CancelRunRequest, limits: Limits) -> None:
    checks = Checks(limits)
    checks.short("run_id", request.run_id, required=True)
    if len(request.reason) > limits.max_reason:
        checks.add("reason", f"must be at most {limits.max_reason} characters")
    checks.done()


MAX_WATCH_BATCH = 1000  # events in one batched watch response
MAX_WATCH_DELAY_US = 1_000_000  # how long a batched watch may hold an event back


def watch_work_orders(request: work_order_pb.WatchWorkOrdersRequest, limits: Limits) -> None:
    checks = _query(request, limits)
    for name in TIME_RANGE_FIELDS:
        if request.filter.HasField(name):
            checks.add(f"filter.{name}", "is not supported by WatchWorkOrders; filter by status or workflow")
    if len(request.work_order_ids) > 1000:
        checks.add("work_order_ids", "at most 1000")
    if request.from_now and request.after_cursor:
        checks.add("from_now", "cannot be given with after_cursor")
    if request.HasField("batching"):
        batching = request.batching
        if not 1 <= batching.max_events <= MAX_WATCH_BATCH:
            checks.add("batching.max_events", f"must be 1 to {MAX_WATCH_BATCH}")
        delay = batching.max_delay
        if not 0 <= duration_us(delay) <= MAX_WATCH_DELAY_US or not 0 <= delay.nanos < 1_000_000_000:
            checks.add("batching.max_delay", "must be 0 to 1s")
    checks.done()


def after_cursor(request: work_order_pb.WatchWorkOrdersRequest) -> int:
    """The event a watch resumes after, from its cursor (0: from the start)."""
    if not request.after_cursor:
        return 0
    if not re.fullmatch(r"[0-9]{1,18}", request.after_cursor):
        raise invalid("after_cursor", "is not a cursor this server gave out")
    return int(request.after_cursor)


# --- WorkerService

def claim_runs(request: worker_pb.ClaimRunsRequest, limits: Limits) -> None:
    checks = Checks(limits)
    checks.short("project_id", request.project_id)
    checks.short("worker_id", request.worker_id, required=True)
    if not 0 <= request.max_runs <= MAX_CLAIM:
        checks.add("max_runs", f"must be between 1 and {MAX_CLAIM} (0 means 1)")
    checks.done()


_Report = (worker_pb.HeartbeatRequest | worker_pb.StartRunRequest | worker_pb.StartStepRequest
           | worker_pb.CompleteStepRequest | worker_pb.CompleteRunRequest)


def _report(request: _Report, limits: Limits) -> Checks:
    """Every report names its run and carries its lease token."""
    checks = Checks(limits)
    checks.short("run_id", request.run_id, required=True)
    checks.short("lease_token", request.lease_token, required=True)
    return checks


def report(request: worker_pb.HeartbeatRequest | worker_pb.StartRunRequest, limits: Limits) -> None:
    """A report that carries nothing more (Heartbeat, StartRun)."""
    _report(request, limits).done()


def start_step(request: worker_pb.StartStepRequest, limits: Limits) -> None:
    checks = _report(request, limits)
    checks.short("step_id", request.step_id, required=True)
    checks.short("previous_step_run_id", request.previous_step_run_id)
    checks.done()


def complete_step(request: worker_pb.CompleteStepRequest, limits: Limits) -> None:
    checks = _report(request, limits)
    checks.short("step_run_id", request.step_run_id, required=True)
    if request.HasField("error"):
        checks.error_report("error", request.error)
    checks.struct("output", request.output, limits.max_output_bytes)
    checks.done()


def complete_run(request: worker_pb.CompleteRunRequest, limits: Limits) -> None:
    checks = _report(request, limits)
    if request.HasField("error"):
        checks.error_report("error", request.error)
    checks.done()


# --- NotificationService

MAX_URL = 2048
MAX_SECRET = 512
MAX_RECIPIENTS = 50
MAX_FILTER_ENTRIES = 100
MAX_PER_MINUTE = 100_000
NOTIFICATION_UPDATABLE = ("name", "target", "filter", "max_messages_per_minute")
# An email address as a header may carry it: no spaces or line breaks (no header injection).
EMAIL_ADDRESS = re.compile(r"[^\s@<>,;\"]{1,64}@[A-Za-z0-9.-]{1,253}")
SMTP_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}|\[?[0-9A-Fa-f:.]{2,45}\]?")


def _each(checks: Checks, field: str, values: Any, most: int, check_one: Any) -> None:
    """A list's entries, at most `most`: the first wrong one is named (a list of a thousand
    wrong entries is one violation, not a thousand)."""
    if len(values) > most:
        checks.add(field, f"at most {most} entries")
        return
    for i, value in enumerate(values):
        before = len(checks.violations)
        check_one(f"{field}[{i}]", value)
        if len(checks.violations) > before:
            return


def _url(checks: Checks, field: str, url: str) -> None:
    if not url:
        checks.add(field, "is required")
    elif len(url) > MAX_URL or not url.isprintable():
        checks.add(field, f"must be at most {MAX_URL} printable characters")
    elif why := url_shape_refusal(url):
        checks.add(field, why)


def _printable(checks: Checks, field: str, value: str, most: int) -> None:
    if len(value) > most or not value.isprintable():
        checks.add(field, f"must be at most {most} printable characters")


def _email(checks: Checks, field: str, email: notification_pb.EmailTarget) -> None:
    def recipient(where: str, address: str) -> None:
        if not EMAIL_ADDRESS.fullmatch(address):
            checks.add(where, "must be an email address, e.g. oncall@example.org")

    if not email.to:
        checks.add(f"{field}.to", "is required: at least one recipient")
    _each(checks, f"{field}.to", email.to, MAX_RECIPIENTS, recipient)
    if not email.HasField("smtp"):
        return
    smtp, where = email.smtp, f"{field}.smtp"
    if not smtp.host:
        checks.add(f"{where}.host", "is required with smtp (leave smtp unset for the server's own)")
    elif not SMTP_HOST.fullmatch(smtp.host):
        checks.add(f"{where}.host", "must be a host name or an IP address")
    if not 0 <= smtp.port <= 65535:
        checks.add(f"{where}.port", "must be a port (1-65535), or 0 for the security's usual one")
    checks.enum(f"{where}.security", smtp.security, notification_pb.SmtpSecurity)
    _printable(checks, f"{where}.username", smtp.username, MAX_NAME)
    _printable(checks, f"{where}.password", smtp.password, MAX_SECRET)
    if smtp.from_address and not EMAIL_ADDRESS.fullmatch(smtp.from_address):
        checks.add(f"{where}.from_address", "must be an email address, e.g. runstatus@example.org")


def _target(checks: Checks, field: str, target: notification_pb.NotificationTarget) -> None:
    kind = target.WhichOneof("kind")
    if kind is None:
        checks.add(field, "is required: a webhook, slack or email target")
    elif kind == "webhook":
        _url(checks, f"{field}.webhook.url", target.webhook.url)
        _printable(checks, f"{field}.webhook.secret", target.webhook.secret, MAX_SECRET)
    elif kind == "slack":
        _url(checks, f"{field}.slack.webhook_url", target.slack.webhook_url)
    else:
        _email(checks, f"{field}.email", target.email)


def _notification_filter(checks: Checks, field: str, flt: notification_pb.NotificationFilter) -> None:
    _each(checks, f"{field}.event_types", flt.event_types, MAX_FILTER_ENTRIES,
          lambda where, value: checks.enum(where, value, EventType, allow_unspecified=False))
    _each(checks, f"{field}.statuses", flt.statuses, MAX_FILTER_ENTRIES,
          lambda where, value: checks.enum(where, value, RunStatus, allow_unspecified=False))
    _each(checks, f"{field}.workflow_ids", flt.workflow_ids, MAX_FILTER_ENTRIES, checks.id)


def _subscription(checks: Checks, value: notification_pb.NotificationSubscription, fields: tuple[str, ...]) -> None:
    """The fields of a subscription as created (all) or updated (those in its mask)."""
    if "name" in fields:
        checks.name("subscription.name", value.name)
    if "target" in fields:
        _target(checks, "subscription.target", value.target)
    if "filter" in fields:
        _notification_filter(checks, "subscription.filter", value.filter)
    if "max_messages_per_minute" in fields and not 0 <= value.max_messages_per_minute <= MAX_PER_MINUTE:
        checks.add("subscription.max_messages_per_minute", f"must be between 0 (the default, 10) and {MAX_PER_MINUTE}")


def create_notification_subscription(request: notification_service_pb.CreateNotificationSubscriptionRequest,
                                     limits: Limits) -> None:
    checks = Checks(limits)
    project = request.subscription.project_id
    if project != "*":
        checks.id("subscription.project_id", project)
    if request.subscription.id:
        checks.add("subscription.id", "is assigned by the server: leave it empty")
    _subscription(checks, request.subscription, NOTIFICATION_UPDATABLE)
    checks.done()


def update_notification_subscription(request: notification_service_pb.UpdateNotificationSubscriptionRequest,
                                     limits: Limits) -> tuple[str, ...]:
    """The fields it updates (its mask; empty: all), checked."""
    checks = Checks(limits)
    checks.short("subscription.id", request.subscription.id, required=True)
    paths = tuple(request.update_mask.paths) or NOTIFICATION_UPDATABLE
    if bad := [p for p in paths if p not in NOTIFICATION_UPDATABLE]:
        checks.add("update_mask", f"cannot update {', '.join(bad)}; only {', '.join(NOTIFICATION_UPDATABLE)}")
    else:
        _subscription(checks, request.subscription, paths)
    checks.done()
    return paths


def list_notification_subscriptions(request: notification_service_pb.ListNotificationSubscriptionsRequest,
                                    limits: Limits) -> None:
    """A project's ("*": the instance's), or every one the caller manages (empty)."""
    _one_id(limits, "project_id", request.project_id, required=False)


def subscription_id(request: notification_service_pb.GetNotificationSubscriptionRequest
                    | notification_service_pb.DeleteNotificationSubscriptionRequest
                    | notification_service_pb.SendTestNotificationRequest, limits: Limits) -> None:
    """A request about one subscription (get, delete, its deliveries, a test)."""
    _one_id(limits, "subscription_id", request.subscription_id)


def list_notification_deliveries(request: notification_service_pb.ListNotificationDeliveriesRequest,
                                 limits: Limits) -> None:
    checks = Checks(limits)
    checks.short("subscription_id", request.subscription_id, required=True)
    _each(checks, "states", request.states, len(notification_pb.NotificationDeliveryState.keys()),
          lambda where, value: checks.enum(where, value, notification_pb.NotificationDeliveryState,
                                           allow_unspecified=False))
    checks.done()


def redeliver_notification(request: notification_service_pb.RedeliverNotificationRequest, limits: Limits) -> None:
    _one_id(limits, "delivery_id", request.delivery_id)
