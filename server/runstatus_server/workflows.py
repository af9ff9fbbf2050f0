"""Workflow versions: added, never changed (their shape is checked by services/checks.py)."""

from __future__ import annotations

from runstatus.v1.workflow_pb2 import Workflow

from . import projects
from .errors import NotFound
from .store.base import Page, Tx
from .util import timestamp


def create(tx: Tx, workflow: Workflow, now: int) -> Workflow:
    """Adds version 1 of a new workflow, or the next version of an existing one."""
    project = projects.get(tx, workflow.project_id)
    latest = tx.workflow_version(project.id, workflow.id)
    created = Workflow()
    created.CopyFrom(workflow)
    created.project_id = project.id
    created.version = (latest or 0) + 1
    created.create_time.CopyFrom(timestamp(now))
    tx.insert_workflow(created)
    return created


def get(tx: Tx, project_id: str, workflow_id: str, version: int = 0) -> Workflow:
    project = projects.get(tx, project_id)
    workflow = tx.get_workflow(project.id, workflow_id, version)
    if workflow is None:
        raise NotFound("workflow", f"{workflow_id} v{version}" if version else workflow_id)
    return workflow


def of_project(tx: Tx, project_id: str, after_id: str, limit: int, max_bytes: int) -> Page[Workflow]:
    """A page of a project's workflows, by id, within max_bytes."""
    return tx.list_workflows(projects.get(tx, project_id).id, after_id, limit, max_bytes)


def version_of(tx: Tx, project_id: str, workflow_id: str, version: int = 0) -> int:
    """The version a new work order pins (0: the latest), without reading the workflow."""
    found = tx.workflow_version(project_id, workflow_id, version)
    if found is None:
        raise NotFound("workflow", f"{workflow_id} v{version}" if version else workflow_id)
    return found
