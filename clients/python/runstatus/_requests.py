"""Request building shared by the sync and async clients: keyword arguments in, messages out."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Union

from google.protobuf import json_format
from google.protobuf.field_mask_pb2 import FieldMask

from runstatus.v1 import project_service_pb2 as project_pb
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1 import workflow_service_pb2 as wf_pb
from runstatus.v1.error_pb2 import ErrorReport, ErrorSeverity, ErrorSource
from runstatus.v1.event_pb2 import EventType
from runstatus.v1.notification_pb2 import (
    EmailTarget,
    NotificationDeliveryState,
    NotificationFilter,
    NotificationTarget,
    SlackTarget,
    SmtpServer,
    WebhookTarget,
)
from runstatus.v1.project_pb2 import Project, RunLimit
from runstatus.v1.status_pb2 import RunStatus
from runstatus.v1.work_order_pb2 import WorkOrderFilter
from runstatus.v1.workflow_pb2 import Edge, EdgeCondition, Step, Workflow

from .models import to_duration, to_struct, to_timestamp

StatusLike = Union[RunStatus.ValueType, str]
StepLike = Union[str, dict[str, Any], Step]
EdgeLike = Union[tuple[str, str], tuple[str, str, str], dict[str, Any], Edge]


def request_id(value: str | None) -> str:
    """Every mutating call carries a request_id, so that retrying it is safe (AIP-155)."""
    return value or str(uuid.uuid4())


def status(value: StatusLike) -> RunStatus.ValueType:
    """RunStatus.RUN_STATUS_FAILED, "RUN_STATUS_FAILED", "FAILED" or "failed"."""
    if isinstance(value, str):
        name = value.upper()
        return RunStatus.Value(name if name.startswith("RUN_STATUS_") else f"RUN_STATUS_{name}")
    return value


def source(value: str | int) -> ErrorSource.ValueType:
    if isinstance(value, str):
        name = value.upper()
        return ErrorSource.Value(name if name.startswith("ERROR_SOURCE_") else f"ERROR_SOURCE_{name}")
    return ErrorSource.ValueType(value)


def severity(value: str | int | None) -> ErrorSeverity.ValueType:
    """The runtime's verdict: ErrorSeverity.ERROR_SEVERITY_CRASH, "ERROR_SEVERITY_CRASH", "CRASH" or "crash"
    (OpenFn's spelling); "", None or "-" (OpenFn's "none given") for none."""
    if value is None:
        return ErrorSeverity.ERROR_SEVERITY_UNSPECIFIED
    if isinstance(value, str):
        name = value.strip().upper()
        if name in ("", "-"):
            return ErrorSeverity.ERROR_SEVERITY_UNSPECIFIED
        return ErrorSeverity.Value(name if name.startswith("ERROR_SEVERITY_") else f"ERROR_SEVERITY_{name}")
    return ErrorSeverity.ValueType(value)


def error_report(name: str, message: str = "", *, source_: str | int = "job", language: str = "",
                 http_status: int = 0, stack: str = "", subtype: str = "",
                 severity_: str | int | None = None) -> ErrorReport:
    return ErrorReport(name=name, message=message, source=source(source_), language=language,
                       http_status=http_status, stack=stack, subtype=subtype, severity=severity(severity_))


def work_order_filter(statuses: Iterable[StatusLike] = (), workflow_id: str = "",
                      created_after: datetime | None = None, created_before: datetime | None = None,
                      updated_after: datetime | None = None, updated_before: datetime | None = None) -> WorkOrderFilter:
    flt = WorkOrderFilter(statuses=[status(s) for s in statuses], workflow_id=workflow_id)
    for field, value in (("create_time_start", created_after), ("create_time_end", created_before),
                         ("update_time_start", updated_after), ("update_time_end", updated_before)):
        if value is not None:
            getattr(flt, field).CopyFrom(to_timestamp(value))
    return flt


def _step(value: StepLike) -> Step:
    if isinstance(value, Step):
        return value
    if isinstance(value, str):
        return Step(id=value)
    return json_format.ParseDict(value, Step())


def _edge(value: EdgeLike) -> Edge:
    if isinstance(value, Edge):
        return value
    if isinstance(value, dict):
        return json_format.ParseDict(value, Edge())
    source_step, target, *rest = value
    condition = (rest[0] if rest else "ALWAYS").upper()
    if not condition.startswith("EDGE_CONDITION_"):
        condition = f"EDGE_CONDITION_{condition}"
    return Edge(source_step_id=source_step, target_step_id=target, condition=EdgeCondition.Value(condition))


def create_workflow(workflow_id: str, steps: Sequence[StepLike], edges: Sequence[EdgeLike], project_id: str,
                    name: str, rid: str | None) -> wf_pb.CreateWorkflowRequest:
    workflow = Workflow(id=workflow_id, project_id=project_id, name=name,
                        steps=[_step(s) for s in steps], edges=[_edge(e) for e in edges])
    return wf_pb.CreateWorkflowRequest(workflow=workflow, request_id=request_id(rid))


def workflow_from_dict(data: dict[str, Any]) -> tuple[str, list[StepLike], list[EdgeLike], str]:
    """A workflow file's content: {id, name, steps: [...], edges: [[a, b, CONDITION] | {...}]}."""
    edges: list[EdgeLike] = [tuple(e) if isinstance(e, list) else e for e in data.get("edges", [])]
    return str(data["id"]), list(data.get("steps", [])), edges, str(data.get("name", ""))


def project(project_id: str, name: str | None, max_in_flight: int | None, max_per_window: int | None,
            window: timedelta | None, max_runtime: timedelta | None) -> tuple[Project, list[str]]:
    """A Project with the given fields and the update mask naming them."""
    p = Project(id=project_id)
    paths = []
    if name is not None:
        p.name = name
        paths.append("name")
    if max_in_flight is not None or max_per_window is not None or window is not None:
        p.run_limit.CopyFrom(RunLimit(max_in_flight=max_in_flight or 0, max_per_window=max_per_window or 0))
        if window is not None:
            p.run_limit.window.CopyFrom(to_duration(window))
        paths.append("run_limit")
    if max_runtime is not None:
        p.max_runtime.CopyFrom(to_duration(max_runtime))
        paths.append("max_runtime")
    return p, paths


def update_project(p: Project, paths: list[str], rid: str | None) -> project_pb.UpdateProjectRequest:
    return project_pb.UpdateProjectRequest(project=p, update_mask=FieldMask(paths=paths), request_id=request_id(rid))


def create_work_order(workflow_id: str, input_: dict[str, Any] | None, project_id: str, version: int,
                      priority: int, rid: str | None) -> wo_pb.CreateWorkOrderRequest:
    return wo_pb.CreateWorkOrderRequest(project_id=project_id, workflow_id=workflow_id, workflow_version=version,
                                        input=to_struct(input_), priority=priority, request_id=request_id(rid))


# Notifications

EventTypeLike = Union[EventType.ValueType, str]
DeliveryStateLike = Union[NotificationDeliveryState.ValueType, str]


def _enum_value(enum: Any, prefix: str, value: int | str) -> Any:
    """An enum's value from itself, its full name, or its name without the prefix in any case."""
    if isinstance(value, str):
        name = value.upper().replace("-", "_")
        return enum.Value(name if name.startswith(prefix) else prefix + name)
    return value


def event_type(value: EventTypeLike) -> EventType.ValueType:
    """EventType.EVENT_TYPE_RUN_STATUS_CHANGED, "EVENT_TYPE_RUN_STATUS_CHANGED" or "run_status_changed"."""
    return _enum_value(EventType, "EVENT_TYPE_", value)  # type: ignore[no-any-return]


def delivery_state(value: DeliveryStateLike) -> NotificationDeliveryState.ValueType:
    """NOTIFICATION_DELIVERY_STATE_DEAD, or "dead"."""
    return _enum_value(NotificationDeliveryState, "NOTIFICATION_DELIVERY_STATE_", value)  # type: ignore[no-any-return]


def notification_target(*, webhook_url: str = "", secret: str = "", slack_url: str = "",
                        email_to: Sequence[str] = (), smtp: SmtpServer | None = None) -> NotificationTarget | None:
    """The one target given (a webhook with its signing secret, a Slack incoming webhook, or
    email through `smtp`, the server's own when None); None when none is."""
    given = [bool(webhook_url), bool(slack_url), bool(email_to)]
    if sum(given) > 1:
        raise ValueError("give one target: a webhook URL, a Slack URL or email recipients")
    if webhook_url:
        return NotificationTarget(webhook=WebhookTarget(url=webhook_url, secret=secret))
    if slack_url:
        return NotificationTarget(slack=SlackTarget(webhook_url=slack_url))
    if email_to:
        return NotificationTarget(email=EmailTarget(to=list(email_to), smtp=smtp))
    return None


def notification_filter(statuses: Iterable[StatusLike] = (), event_types: Iterable[EventTypeLike] = (),
                        workflow_ids: Iterable[str] = ()) -> NotificationFilter:
    return NotificationFilter(statuses=[status(s) for s in statuses], event_types=[event_type(t) for t in event_types],
                              workflow_ids=list(workflow_ids))
