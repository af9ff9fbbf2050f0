"""The Notifications page (/notifications) and its two actions, a test send and a redelivery:
like every page, made of public API calls with the caller's token (NotificationService), so a
token that may not manage notifications sees the server's refusal, worded as it was."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from runstatus.errors import RunstatusError
from runstatus.v1 import notification_service_pb2 as pb
from runstatus.v1 import token_service_pb2 as token_pb

from . import render, render_notifications

if TYPE_CHECKING:
    from .app import Api, WebServer

INSTANCE = "*"


class NotificationsPage:
    def __init__(self, server: WebServer) -> None:
        self.server = server

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/notifications", self.show)
        app.router.add_post("/notifications/subscriptions/{id}/test", self.send_test)
        app.router.add_post("/notifications/deliveries/{id}/redeliver", self.redeliver)

    @staticmethod
    def _project(request: web.Request) -> str:
        return request.query.get("project", "").strip()

    @classmethod
    def url(cls, request: web.Request) -> str:
        """This page, for the same project: built here, never taken from the request as a path."""
        project = cls._project(request)
        return "/notifications" + (f"?{urlencode({'project': project})}" if project else "")

    async def _subscriptions(self, api: Api, project: str) -> list[Any]:
        """The project's, then the instance's if the caller may see them. No project chosen: the
        token's own with --auth (the server scopes ""), else the default project, as the history."""
        chosen = project or ("" if self.server.auth else "default")
        listed = list((await api.call(api.client.notifications.ListNotificationSubscriptions,
                                      pb.ListNotificationSubscriptionsRequest(project_id=chosen,
                                                                              page_size=100))).subscriptions)
        if project != INSTANCE:
            with contextlib.suppress(RunstatusError):  # a project's admin may not see the instance's
                instance = await api.call(api.client.notifications.ListNotificationSubscriptions,
                                          pb.ListNotificationSubscriptionsRequest(project_id=INSTANCE, page_size=100))
                listed += [s for s in instance.subscriptions if s.id not in {x.id for x in listed}]
        return listed

    async def _deliveries(self, api: Api, subscription_id: str) -> list[Any]:
        answer = await api.call(api.client.notifications.ListNotificationDeliveries,
                                pb.ListNotificationDeliveriesRequest(
                                    subscription_id=subscription_id,
                                    page_size=render_notifications.SHOWN_DELIVERIES))
        return list(answer.deliveries)

    async def _why_not(self, api: Api) -> str:
        """Why the buttons are off, when the server says this token may not press them."""
        if not self.server.auth:
            return ""
        caller = await api.call(api.client.tokens.GetCallerToken, token_pb.GetCallerTokenRequest())
        if "runstatus.v1.NotificationService.SendTestNotification" in caller.allowed_methods:
            return ""
        return "this token's role may not manage notifications"

    async def show(self, request: web.Request, notice: str = "", status: int = 200) -> web.StreamResponse:
        api = self.server.api(request)
        project = self._project(request)
        query = f"?{urlencode({'project': project})}" if project else ""
        csrf = self.server.csrf(request)
        try:
            subscriptions = await self._subscriptions(api, project)
            deliveries = await asyncio.gather(*(self._deliveries(api, s.id) for s in subscriptions))
            why_not = await self._why_not(api)
        except RunstatusError as e:
            body = render_notifications.page_body([], notice + render.api_error(e), project)
            return await self.server.page(request, api, "Notifications", body, project, path="/notifications",
                                          status=status if notice else _status(e))
        sections = [render_notifications.subscription_section(s, d, query, csrf, why_not)
                    for s, d in zip(subscriptions, deliveries)]
        body = render_notifications.page_body(sections, notice, project)
        return await self.server.page(request, api, "Notifications", body, project, path="/notifications",
                                      status=status)

    async def send_test(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        return await self._act(request, "SendTestNotification", pb.SendTestNotificationRequest(
            subscription_id=request.match_info["id"], request_id=str(form.get("request_id", ""))))

    async def redeliver(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        return await self._act(request, "RedeliverNotification", pb.RedeliverNotificationRequest(
            delivery_id=request.match_info["id"], request_id=str(form.get("request_id", ""))))

    async def _act(self, request: web.Request, method: str, message: Any) -> web.StreamResponse:
        """The call, then this page again; or the page with the server's refusal as it worded it."""
        api = self.server.api(request)
        try:
            await api.call(getattr(api.client.notifications, method), message)
        except RunstatusError as e:
            return await self.show(request, render.api_error(e), _status(e))
        raise web.HTTPSeeOther(self.url(request))


def _status(error: RunstatusError) -> int:
    from .app import refusal_status  # app.py imports this module

    return refusal_status(error)
