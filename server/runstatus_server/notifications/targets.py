"""One attempt at a delivery, by its subscription's target kind: a webhook gets the body as it is
(signed), Slack a message rendered from it (slack.py), email a plain-text mail over SMTP (mail.py).
Each comes back as a sender.Attempt, never an exception.

At send time, as when the subscription was made, a target must resolve to public addresses only
unless the server allows private ones (addresses.py, --notify-allow-private): a name may resolve
elsewhere since (DNS rebinding). Over HTTP the check is the connection's own resolution (a
resolver that drops private addresses), so nothing resolves between the check and the connect;
an address given as such is checked before. An SMTP host is checked just before connecting.
The operator's --admin-webhook is never checked.
"""

from __future__ import annotations

import ipaddress
import time
import socket
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver

from ..store.base import NotificationDelivery, NotificationSubscription
from . import addresses, mail, sender, signing, slack
from .outbox import ADMIN_ID

WEBHOOK, SLACK, EMAIL = "webhook", "slack", "email"
PRIVATE_ALLOWED = " (refused unless the server runs with --notify-allow-private)"


class PublicOnly(AbstractResolver):
    """Resolves as aiohttp does, then keeps the public addresses only; none left is a refusal."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[Any]:
        found = await self._inner.resolve(host, port, family)
        public = [r for r in found if not addresses.address_refusal(ipaddress.ip_address(r["host"]))]
        if not public:
            why = addresses.address_refusal(ipaddress.ip_address(found[0]["host"])) if found else "does not resolve"
            raise OSError(f"host {host} {why}{PRIVATE_ALLOWED}")
        return public

    async def close(self) -> None:
        await self._inner.close()


def public_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, resolver=PublicOnly()))


def _literal_refusal(host: str) -> str:
    """Why a host given as an address is not public ("" for a name, checked when resolved)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return ""
    why = addresses.address_refusal(address)
    return f"host {host} {why}{PRIVATE_ALLOWED}" if why else ""


@dataclass(frozen=True)
class Targets:
    """What sending needs besides the delivery: the HTTP session (any address: the admin webhook's,
    or all with --notify-allow-private) and the one for subscriptions' URLs (public addresses
    only), the default SMTP server (--smtp-*), the history page's public URL for links ("": none),
    the timeout of one attempt."""

    session: aiohttp.ClientSession
    public: aiohttp.ClientSession | None = None  # None: private addresses allowed
    smtp: mail.SmtpServer = field(default_factory=mail.SmtpServer)
    public_url: str = ""
    timeout: float = sender.TIMEOUT_SECONDS

    @staticmethod
    def where(subscription: NotificationSubscription) -> str:
        """Where it goes, for the log: a URL's origin (its path may be a secret), an SMTP host."""
        if subscription.target_kind == EMAIL:
            smtp = mail.target_of(subscription.target).smtp
            return f"smtp://{smtp.host}:{smtp.port}" if smtp.host else "smtp (the server's --smtp-host)"
        return sender.origin(subscription.target)

    async def send(self, subscription: NotificationSubscription, delivery: NotificationDelivery) -> sender.Attempt:
        kind = subscription.target_kind
        checked = self.public is not None and subscription.id != ADMIN_ID
        if kind == EMAIL:
            target = mail.target_of(subscription.target)
            server = mail.server_for(target, subscription.secret, self.smtp)
            if checked and target.smtp.host:  # the operator's own --smtp-host is not checked
                if why := await addresses.host_refusal(server.host, allow_private=False):
                    return sender.Attempt(False, why)
            to = list(target.to)
            message = mail.message(delivery.id, delivery.body, to, server.from_address, self.public_url)
            return await mail.send(server, message, to, self.timeout)
        if kind not in (WEBHOOK, SLACK):
            return sender.Attempt(False, f"unknown target kind {kind!r}")
        session = self.session
        if checked and self.public is not None:
            if why := _literal_refusal(urllib.parse.urlsplit(subscription.target).hostname or ""):
                return sender.Attempt(False, why)
            session = self.public
        body = slack.render(delivery.body, self.public_url) if kind == SLACK else delivery.body
        headers = signing.headers(delivery.id, delivery.event_seq, body, subscription.secret, int(time.time()))
        return await sender.post(session, subscription.target, body, headers, self.timeout)
