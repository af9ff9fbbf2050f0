"""Projects: their run limit and max runtime, and the default project."""

from __future__ import annotations

from google.protobuf.field_mask_pb2 import FieldMask

from runstatus.v1.project_pb2 import Project

from . import auth
from .errors import AlreadyExists, InvalidArgument, NotFound
from .store.base import Tx
from .util import MAX_NAME, check_id, duration_us, timestamp

DEFAULT = "default"
UPDATABLE = ("name", "run_limit", "max_runtime")
MAX_DURATION_US = 366 * 24 * 3600 * 1_000_000


def ensure_default(tx: Tx, now: int) -> None:
    if tx.get_project(DEFAULT) is None:
        tx.put_project(
            Project(id=DEFAULT, name="Default project", create_time=timestamp(now), update_time=timestamp(now)),
            new=True,
        )


def validate(project: Project, prefix: str = "project") -> None:
    v: list[tuple[str, str]] = []
    check_id(f"{prefix}.id", project.id, v)
    if len(project.name) > MAX_NAME:
        v.append((f"{prefix}.name", f"must be at most {MAX_NAME} characters"))
    limit = project.run_limit
    if limit.max_in_flight < 0:
        v.append((f"{prefix}.run_limit.max_in_flight", "must not be negative"))
    if limit.max_per_window < 0:
        v.append((f"{prefix}.run_limit.max_per_window", "must not be negative"))
    if limit.max_per_window and duration_us(limit.window) <= 0:
        v.append((f"{prefix}.run_limit.window", "must be positive when max_per_window is set"))
    for field, value in ((f"{prefix}.run_limit.window", limit.window), (f"{prefix}.max_runtime", project.max_runtime)):
        if not 0 <= duration_us(value) <= MAX_DURATION_US or not 0 <= value.nanos < 1_000_000_000:
            v.append((field, "must be between 0 and 366 days"))
    if v:
        raise InvalidArgument(v)


def get(tx: Tx, project_id: str) -> Project:
    """The project (empty: the caller's, or "default"), if the caller may see it."""
    project_id = auth.scope(project_id) or DEFAULT
    project = tx.get_project(project_id)
    if project is None:
        raise NotFound("project", project_id)
    auth.check_visible(project.id, "project", project_id)
    return project


def visible(tx: Tx, after_id: str, limit: int) -> list[Project]:
    """The projects the caller may see, by id."""
    who = auth.caller.get()
    if who is None or who.instance_admin:
        return tx.list_projects(after_id, limit)
    own = tx.get_project(who.project_id)
    return [own] if own is not None and own.id > after_id else []


def create(tx: Tx, project: Project, now: int) -> Project:
    validate(project)
    if tx.get_project(project.id) is not None:
        raise AlreadyExists("project", project.id)
    created = Project()
    created.CopyFrom(project)
    created.create_time.CopyFrom(timestamp(now))
    created.update_time.CopyFrom(timestamp(now))
    tx.put_project(created, new=True)
    return created


def update(tx: Tx, project: Project, mask: FieldMask, now: int) -> Project:
    paths = list(mask.paths) or list(UPDATABLE)
    bad = [p for p in paths if p not in UPDATABLE]
    if bad:
        raise InvalidArgument([("update_mask", f"cannot update {', '.join(bad)}; only {', '.join(UPDATABLE)}")])
    validate(project)
    current = get(tx, project.id)
    for path in paths:
        if path == "name":
            current.name = project.name
        elif project.HasField(path):
            getattr(current, path).CopyFrom(getattr(project, path))
        else:
            current.ClearField(path)
    current.update_time.CopyFrom(timestamp(now))
    tx.put_project(current, new=False)
    return current


def over_run_limit(tx: Tx, project: Project, now: int) -> str:
    """Why a new run would break the project's run limit, or "" if it would not."""
    limit = project.run_limit
    if limit.max_in_flight and tx.count_in_flight(project.id) >= limit.max_in_flight:
        return f"{limit.max_in_flight} runs in flight"
    if limit.max_per_window and duration_us(limit.window) > 0:
        if tx.count_created_since(project.id, now - duration_us(limit.window)) >= limit.max_per_window:
            return f"{limit.max_per_window} runs per {limit.window.seconds}s"
    return ""
