"""Projects: their run limit, max runtime and retention, and the default project."""

from __future__ import annotations

from typing import Literal, get_args

from google.protobuf.field_mask_pb2 import FieldMask

from runstatus.v1.project_pb2 import Project

from . import auth
from .errors import AlreadyExists, NotFound
from .store.base import Page, Tx
from .util import duration_us, timestamp

DEFAULT = "default"
# The fields UpdateProject sets (its update_mask names them).
Updatable = Literal["name", "run_limit", "max_runtime", "retention"]
UPDATABLE: tuple[Updatable, ...] = get_args(Updatable)


def ensure_default(tx: Tx, now: int) -> None:
    if tx.get_project(DEFAULT) is None:
        tx.put_project(
            Project(id=DEFAULT, name="Default project", create_time=timestamp(now), update_time=timestamp(now)),
            new=True,
        )


def get(tx: Tx, project_id: str) -> Project:
    """The project (empty: the caller's, or "default"), if the caller may see it."""
    project_id = auth.scope(project_id) or DEFAULT
    project = tx.get_project(project_id)
    if project is None:
        raise NotFound("project", project_id)
    auth.check_visible(project.id, "project", project_id)
    return project


def visible(tx: Tx, after_id: str, limit: int, max_bytes: int) -> Page[Project]:
    """The projects the caller may see, by id, within max_bytes (Tx.list_projects)."""
    who = auth.caller.get()
    if who is None or who.instance_admin:
        return tx.list_projects(after_id, limit, max_bytes)
    own = tx.get_project(who.project_id)
    return Page([own] if own is not None and own.id > after_id else [])


def create(tx: Tx, project: Project, now: int) -> Project:
    """A new project (its shape checked by services/checks.py)."""
    if tx.get_project(project.id) is not None:
        raise AlreadyExists("project", project.id)
    created = Project()
    created.CopyFrom(project)
    created.create_time.CopyFrom(timestamp(now))
    created.update_time.CopyFrom(timestamp(now))
    tx.put_project(created, new=True)
    return created


def update(tx: Tx, project: Project, mask: FieldMask, now: int) -> Project:
    """The mask's fields of a project (all UPDATABLE ones if it names none) set to `project`'s."""
    paths = list(mask.paths) or list(UPDATABLE)
    current = get(tx, project.id)
    for path in paths:
        if path not in UPDATABLE:  # checks.update_project refuses it first
            raise ValueError(f"UpdateProject does not set {path!r}")
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
