"""A project's retention on the history page: the policy in a line for everyone, and for a token
that may call UpdateProject (GetCallerToken says so; without --auth, anyone) a small form that
sets it, a POST to /retention with the CSRF token, answered with a redirect to the history page
or that page with the refusal, each field violation beside the field the server named."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from aiohttp import web
from google.protobuf.field_mask_pb2 import FieldMask

from runstatus.errors import RunstatusError
from runstatus.retention import describe, parse, terminal_statuses
from runstatus.v1 import project_service_pb2 as project_pb
from runstatus.v1 import token_service_pb2 as token_pb
from runstatus.v1.project_pb2 import Project, RetentionPolicy

from . import render
from .render import action_fields, esc, status_name

if TYPE_CHECKING:
    from .app import Api, WebServer

UPDATE = "runstatus.v1.ProjectService.UpdateProject"
PAYLOADS = "payloads"
# A violation the server names in the policy it was sent: statuses[i] is the i-th listed period.
STATUS_FIELD = re.compile(r"project\.retention\.statuses\[(\d+)\]")


def _values(policy: RetentionPolicy) -> dict[str, str]:
    """The form's fields as the policy fills them ({"SUCCESS": "30d", "payloads": "7d", "archive": "on"}),
    in describe()'s words, so the page and the CLI spell a period alike."""
    values: dict[str, str] = {}
    for part in filter(None, describe(policy).split(",")):
        name, _, value = part.partition("=")
        values[name] = value or "on"
    return values


def _policy(form: Mapping[str, str]) -> tuple[RetentionPolicy, list[str], dict[str, str]]:
    """The policy the form says, the field each listed status came from (statuses[i]), and what
    the page could not read, by field: each period read as the CLI reads it (retention.parse)."""
    policy, order, wrong = RetentionPolicy(), [], {}
    for field in [status_name(s) for s in terminal_statuses()] + [PAYLOADS]:
        text = form.get(field, "").strip()
        if not text:  # the instance's default
            continue
        try:
            one = parse(f"{field}={text}")
        except ValueError as e:
            wrong[field] = str(e)
            continue
        if field == PAYLOADS:
            policy.payloads.CopyFrom(one.payloads)
        else:
            policy.statuses.extend(one.statuses)
            order.append(field)
    policy.archive = form.get("archive", "") == "on"
    return policy, order, wrong


def _field_errors(error: RunstatusError, order: list[str]) -> dict[str, str]:
    """The server's field violations by the form field they name; the rest under ""."""
    wrong: dict[str, str] = {}
    for v in error.violations:
        found = STATUS_FIELD.match(v.field)
        if found and int(found.group(1)) < len(order):
            field = order[int(found.group(1))]
        elif v.field.startswith(f"project.retention.{PAYLOADS}"):
            field = PAYLOADS
        else:
            field = ""
        wrong[field] = f"{wrong[field]}; {v.description}" if field in wrong else v.description
    return wrong


def section(project: Project, csrf: str, may_set: bool, values: Mapping[str, str] | None = None,
            wrong: Mapping[str, str] | None = None, notice: str = "") -> str:
    """The policy in a line; with `may_set`, the form (open, with what was sent, after a refusal)."""
    said = describe(project.retention)
    kept = f"{esc(said)}; other statuses as the server's default" if said else "as the server's default says"
    line = f'<p class="retention">Retention: {kept}.</p>'
    if not may_set:
        return line
    values = _values(project.retention) if values is None else values
    wrong = wrong or {}

    def period(field: str, label: str) -> str:
        error = wrong.get(field, "")
        described = f' aria-invalid="true" aria-describedby="retention-{esc(field)}-error"' if error else ""
        beside = f' <span class="field-error" id="retention-{esc(field)}-error">{esc(error)}</span>' if error else ""
        return (f'<label class="period" data-field="{esc(field)}">{esc(label)} <input name="{esc(field)}" '
                f'value="{esc(values.get(field, ""))}" size="6" placeholder="default"{described}>{beside}</label>')

    fields = "".join(period(status_name(s), status_name(s).capitalize()) for s in terminal_statuses())
    archive = " checked" if values.get("archive") == "on" else ""
    general = f'<div class="error" role="alert">{esc(wrong[""])}</div>' if wrong.get("") else ""
    action = f"/retention?{esc(urlencode({'project': project.id}))}"
    return (f'{line}<details class="retention"{" open" if notice or wrong else ""}><summary>Set retention</summary>'
            f'<form class="retention" method="post" action="{action}">{action_fields(csrf)}{notice}{general}'
            f'<fieldset><legend>Keep ended work orders, by status</legend>{fields}</fieldset>'
            f'<div class="fields">{period(PAYLOADS, "Payloads")} <label><input type="checkbox" name="archive"{archive}> '
            'Archive before removing</label> <button type="submit">Save retention</button></div>'
            '<p class="muted">A period such as 30d, 12h or 90m; empty: the server\'s default; 0: for ever.</p>'
            '</form></details>')


class RetentionPage:
    def __init__(self, server: WebServer) -> None:
        self.server = server

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/retention", self.save)

    async def _may_set(self, api: Api) -> bool:
        """Whether the server lets this token call UpdateProject (it still decides the call)."""
        if not self.server.auth:
            return True
        caller = await api.call(api.client.tokens.GetCallerToken, token_pb.GetCallerTokenRequest())
        return UPDATE in caller.allowed_methods

    async def show(self, request: web.Request, api: Api, project_id: str, values: Mapping[str, str] | None = None,
                   wrong: Mapping[str, str] | None = None, notice: str = "") -> str:
        """The history page's retention part; "" when the token may not read the project."""
        try:
            project = (await api.call(api.client.projects.GetProject,
                                      project_pb.GetProjectRequest(project_id=project_id))).project
            may_set = await self._may_set(api)
        except RunstatusError:
            return ""
        return section(project, self.server.csrf(request), may_set, values, wrong, notice)

    async def save(self, request: web.Request) -> web.StreamResponse:
        """UpdateProject with the "retention" mask; then the history page (a redirect built
        from the project, never from the request's path), or it with the refusal beside the form."""
        api = self.server.api(request)
        project_id = request.query.get("project", "").strip()
        form = {k: str(v) for k, v in (await request.post()).items()}
        policy, order, wrong = _policy(form)
        if not wrong:
            try:
                await api.call(api.client.projects.UpdateProject, project_pb.UpdateProjectRequest(
                    project=Project(id=project_id, retention=policy), update_mask=FieldMask(paths=["retention"]),
                    request_id=form.get("request_id", "")))
            except RunstatusError as e:
                from .app import refusal_status  # app.py imports this module

                wrong = _field_errors(e, order)
                part = await self.show(request, api, project_id, form, wrong, render.api_error(e))
                return await self.server.history(request, status=refusal_status(e),
                                                 retention=part or render.api_error(e))
            raise web.HTTPSeeOther("/" + (f"?{urlencode({'project': project_id})}" if project_id else ""))
        part = await self.show(request, api, project_id, form, wrong)
        return await self.server.history(request, status=400, retention=part)
