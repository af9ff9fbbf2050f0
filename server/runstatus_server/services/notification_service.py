"""NotificationService: subscriptions (notifications/subscriptions.py converts them), their
deliveries' log, a redelivery and a test send. A project's admins manage its subscriptions,
instance admins every one (project "*" among them); a subscription of another project does not
exist for the caller (NOT_FOUND), as everywhere. Targets are checked when they are given: their
shape here (checks.py), where they resolve in notifications/addresses.py."""

from __future__ import annotations

import json

import grpc

from runstatus.v1 import notification_service_pb2 as pb
from runstatus.v1 import notification_service_pb2_grpc as pb_grpc
from runstatus.v1.error_reason_pb2 import ErrorReason
from runstatus.v1.notification_pb2 import NotificationTarget

from .. import auth, pagination
from ..errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, invalid
from ..notifications import addresses, outbox
from ..notifications import subscriptions as subs
from ..store.base import DELIVERY_PENDING, DELIVERY_TEST, NotificationDelivery, NotificationSubscription, Page, Tx
from ..util import new_id, now_us
from . import checks
from .kept_answers import write_once
from .rpc import App, unary

SUBSCRIPTION, DELIVERY = "notification subscription", "notification delivery"
TEST_MESSAGE = "A test notification from runstatus"


def _check_manages(project_id: str, kind: str, name: str) -> None:
    """Another project's subscription (or, for a project's admin, the instance's) is not found."""
    auth.check_visible(project_id, kind, name)


def _subscription(tx: Tx, subscription_id: str) -> NotificationSubscription:
    found = tx.get_notification_subscription(subscription_id)
    if found is None:
        raise NotFound(SUBSCRIPTION, subscription_id)
    _check_manages(subs.api_project(found.project_id), SUBSCRIPTION, subscription_id)
    return found


def _changeable(tx: Tx, subscription_id: str) -> NotificationSubscription:
    found = _subscription(tx, subscription_id)
    if found.id == outbox.ADMIN_ID:
        raise FailedPrecondition(
            f"{outbox.ADMIN_ID} follows the server's --admin-webhook option: change or remove it there",
            reason=ErrorReason.ERROR_REASON_NOTIFICATION_SUBSCRIPTION_READ_ONLY,
            metadata={"subscription_id": found.id})
    return found


def _may_create_in(project_id: str) -> None:
    who = auth.caller.get()
    if who is not None and not who.instance_admin and who.project_id != project_id:
        where = "the instance" if project_id == subs.INSTANCE else f"project {project_id}"
        raise PermissionDenied(f"only {where}'s admins manage its notification subscriptions",
                               role="ROLE_ADMIN", method="NotificationService.CreateNotificationSubscription")


def _listed_project(project_id: str) -> str | None:
    """The stored project_id a list is of (None: every one), for the caller."""
    who = auth.caller.get()
    if who is not None and not who.instance_admin:
        if project_id == subs.INSTANCE:
            raise PermissionDenied("only the instance's admins manage its notification subscriptions",
                                   role="ROLE_ADMIN", method="NotificationService.ListNotificationSubscriptions")
        if project_id and project_id != who.project_id:
            raise NotFound("project", project_id)
        return who.project_id
    return subs.stored_project(project_id) if project_id else None


async def _check_target(target_field: str, request_target: NotificationTarget, allow_private: bool) -> None:
    """Where a target given resolves: public addresses only, unless the server allows others."""
    kind = request_target.WhichOneof("kind")
    if kind == "webhook":
        field, why = "webhook.url", await addresses.url_refusal(request_target.webhook.url, allow_private=allow_private)
    elif kind == "slack":
        field, why = "slack.webhook_url", await addresses.url_refusal(request_target.slack.webhook_url,
                                                                      allow_private=allow_private)
    elif kind == "email" and request_target.email.HasField("smtp"):
        field, why = "email.smtp.host", await addresses.host_refusal(request_target.email.smtp.host,
                                                                     allow_private=allow_private)
    else:
        return  # email through the server's own SMTP server: the operator's
    if why:
        raise InvalidArgument([(f"{target_field}.{field}", why)])


class NotificationService(pb_grpc.NotificationServiceServicer):
    def __init__(self, app: App) -> None:
        self.app = app

    @unary
    async def CreateNotificationSubscription(
        self, request: pb.CreateNotificationSubscriptionRequest,
        context: grpc.aio.ServicerContext[pb.CreateNotificationSubscriptionRequest, pb.CreateNotificationSubscriptionResponse],
    ) -> pb.CreateNotificationSubscriptionResponse:
        checks.create_notification_subscription(request, self.app.limits)
        given = request.subscription
        _may_create_in(given.project_id)
        await _check_target("subscription.target", given.target, self.app.notify_allow_private)

        def op(tx: Tx) -> pb.CreateNotificationSubscriptionResponse:
            project = subs.stored_project(given.project_id)
            if project and tx.get_project(project) is None:
                raise NotFound("project", project)
            kind, target, secret = subs.target_row(given.target)
            now = now_us()
            made = NotificationSubscription(
                new_id(), kind, target, secret, subs.filter_json(subs.with_defaults(given.filter)),
                project_id=project, scan_cursor=tx.last_event_sequence(),  # owed what commits from now on
                create_time=now, update_time=now, name=given.name, max_per_minute=given.max_messages_per_minute)
            tx.put_notification_subscription(made, new=True)
            return pb.CreateNotificationSubscriptionResponse(subscription=subs.shown(made))

        return await write_once(self.app.store, "CreateNotificationSubscription", request,
                                pb.CreateNotificationSubscriptionResponse, op)

    @unary
    async def GetNotificationSubscription(
        self, request: pb.GetNotificationSubscriptionRequest,
        context: grpc.aio.ServicerContext[pb.GetNotificationSubscriptionRequest, pb.GetNotificationSubscriptionResponse],
    ) -> pb.GetNotificationSubscriptionResponse:
        checks.subscription_id(request, self.app.limits)
        found = await self.app.store.read(_subscription, request.subscription_id)
        return pb.GetNotificationSubscriptionResponse(subscription=subs.shown(found))

    @unary
    async def ListNotificationSubscriptions(
        self, request: pb.ListNotificationSubscriptionsRequest,
        context: grpc.aio.ServicerContext[pb.ListNotificationSubscriptionsRequest, pb.ListNotificationSubscriptionsResponse],
    ) -> pb.ListNotificationSubscriptionsResponse:
        checks.list_notification_subscriptions(request, self.app.limits)
        project = _listed_project(request.project_id)
        pager = pagination.by_id(request)

        def listed(tx: Tx) -> Page[NotificationSubscription]:
            return Page(tx.list_notification_subscriptions(project, pager.after, pager.size))

        found = await self.app.store.scan(listed)
        page, token = pager.cut(found, lambda s: (s.id,))
        return pb.ListNotificationSubscriptionsResponse(subscriptions=[subs.shown(s) for s in page],
                                                        next_page_token=token)

    @unary
    async def UpdateNotificationSubscription(
        self, request: pb.UpdateNotificationSubscriptionRequest,
        context: grpc.aio.ServicerContext[pb.UpdateNotificationSubscriptionRequest, pb.UpdateNotificationSubscriptionResponse],
    ) -> pb.UpdateNotificationSubscriptionResponse:
        paths = checks.update_notification_subscription(request, self.app.limits)
        given = request.subscription
        if "target" in paths:
            await _check_target("subscription.target", given.target, self.app.notify_allow_private)

        def op(tx: Tx) -> pb.UpdateNotificationSubscriptionResponse:
            current = _changeable(tx, given.id)
            if given.project_id and subs.stored_project(given.project_id) != current.project_id:
                raise invalid("subscription.project_id", "cannot change: create a subscription in the other project")
            if "name" in paths:
                current.name = given.name
            if "target" in paths:
                current.target_kind, current.target, current.secret = subs.target_row_keeping_secret(
                    given.target, current)
            if "filter" in paths:
                current.event_filter = subs.filter_json(subs.with_defaults(given.filter))
            if "max_messages_per_minute" in paths:
                current.max_per_minute = given.max_messages_per_minute
            current.update_time = now_us()
            tx.put_notification_subscription(current, new=False)
            return pb.UpdateNotificationSubscriptionResponse(subscription=subs.shown(current))

        return await write_once(self.app.store, "UpdateNotificationSubscription", request,
                                pb.UpdateNotificationSubscriptionResponse, op)

    @unary
    async def DeleteNotificationSubscription(
        self, request: pb.DeleteNotificationSubscriptionRequest,
        context: grpc.aio.ServicerContext[pb.DeleteNotificationSubscriptionRequest, pb.DeleteNotificationSubscriptionResponse],
    ) -> pb.DeleteNotificationSubscriptionResponse:
        checks.subscription_id(request, self.app.limits)

        def op(tx: Tx) -> pb.DeleteNotificationSubscriptionResponse:
            _changeable(tx, request.subscription_id)
            tx.delete_notification_subscription(request.subscription_id)  # and what it owes
            return pb.DeleteNotificationSubscriptionResponse()

        return await write_once(self.app.store, "DeleteNotificationSubscription", request,
                                pb.DeleteNotificationSubscriptionResponse, op)

    @unary
    async def ListNotificationDeliveries(
        self, request: pb.ListNotificationDeliveriesRequest,
        context: grpc.aio.ServicerContext[pb.ListNotificationDeliveriesRequest, pb.ListNotificationDeliveriesResponse],
    ) -> pb.ListNotificationDeliveriesResponse:
        checks.list_notification_deliveries(request, self.app.limits)
        size = pagination.page_size(request.page_size)
        after: tuple[int, str] | None = None
        if request.page_token:
            created, delivery_id = pagination.decode(request.page_token, 2)
            if not created.isdigit():
                raise invalid("page_token", "is not a token this server gave out")
            after = (int(created), delivery_id)
        states = [subs.STATE_QUERIES[s] for s in dict.fromkeys(request.states)]

        def listed(tx: Tx) -> Page[NotificationDelivery]:
            _subscription(tx, request.subscription_id)
            return Page(tx.list_notification_deliveries(request.subscription_id, states, after, size))

        found = await self.app.store.scan(listed)
        page, token = pagination.Pager(size, after).cut(found, lambda d: (d.create_time, d.id))
        return pb.ListNotificationDeliveriesResponse(deliveries=[subs.delivery_shown(d) for d in page],
                                                     next_page_token=token)

    @unary
    async def RedeliverNotification(
        self, request: pb.RedeliverNotificationRequest,
        context: grpc.aio.ServicerContext[pb.RedeliverNotificationRequest, pb.RedeliverNotificationResponse],
    ) -> pb.RedeliverNotificationResponse:
        checks.redeliver_notification(request, self.app.limits)

        def op(tx: Tx) -> pb.RedeliverNotificationResponse:
            delivery = tx.get_notification_delivery(request.delivery_id)
            subscription = tx.get_notification_subscription(delivery.subscription_id) if delivery else None
            if delivery is None or subscription is None:
                raise NotFound(DELIVERY, request.delivery_id)
            _check_manages(subs.api_project(subscription.project_id), DELIVERY, request.delivery_id)
            now = now_us()  # owed anew, with the same id, for a whole retry window
            delivery.state, delivery.attempts, delivery.last_error = DELIVERY_PENDING, 0, ""
            delivery.next_attempt_time = delivery.owed_time = delivery.update_time = now
            tx.put_notification_delivery(delivery)
            return pb.RedeliverNotificationResponse(delivery=subs.delivery_shown(delivery))

        answer = await write_once(self.app.store, "RedeliverNotification", request,
                                  pb.RedeliverNotificationResponse, op)
        self.app.wake_deliveries()
        return answer

    @unary
    async def SendTestNotification(
        self, request: pb.SendTestNotificationRequest,
        context: grpc.aio.ServicerContext[pb.SendTestNotificationRequest, pb.SendTestNotificationResponse],
    ) -> pb.SendTestNotificationResponse:
        checks.subscription_id(request, self.app.limits)

        def op(tx: Tx) -> pb.SendTestNotificationResponse:
            _subscription(tx, request.subscription_id)
            now = now_us()
            body = json.dumps({"type": "test", "subscriptionId": request.subscription_id,
                               "message": TEST_MESSAGE}).encode()
            # A test has no event: a negative sequence, unique per subscription (deliveries are).
            sequence = -now
            while True:
                test = NotificationDelivery(new_id(), request.subscription_id, sequence, body, create_time=now,
                                            next_attempt_time=now, kind=DELIVERY_TEST, event_count=0)
                if tx.add_notification_deliveries([test]):
                    return pb.SendTestNotificationResponse(delivery=subs.delivery_shown(test))
                sequence -= 1

        answer = await write_once(self.app.store, "SendTestNotification", request,
                                  pb.SendTestNotificationResponse, op)
        self.app.wake_deliveries()
        return answer
