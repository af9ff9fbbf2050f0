"""Where a notification may go (issue 27, item 6): a subscription's webhook or Slack URL, or its
SMTP host, must resolve to public addresses only. Otherwise any project admin could make the
server POST to its own loopback services, the cloud's metadata endpoint (169.254.169.254) or the
private network behind it. The operator allows such targets with --notify-allow-private (the
tests' receivers listen on loopback); the operator's own --admin-webhook is never checked.

The check runs when a subscription is created or updated, and again at send time (a name may
resolve elsewhere later): `url_refusal` and `host_refusal` say why a target is refused, or "".
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import urllib.parse

RESOLVE_SECONDS = 3.0
SCHEMES = ("http", "https")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_refusal(address: IPAddress) -> str:
    """Why a resolved address is not a public one, or "" when it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 reaches 127.0.0.1
    for kind in ("loopback", "link_local", "unspecified", "multicast", "reserved", "private"):
        if getattr(address, f"is_{kind}"):
            article = "an" if kind[0] in "aeiou" else "a"
            return f"resolves to {address}, {article} {kind.replace('_', '-')} address"
    if not address.is_global:  # shared (100.64/10), documentation, benchmarking ranges...
        return f"resolves to {address}, not a public address"
    return ""


async def _resolve(host: str, timeout: float) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    found = await asyncio.wait_for(loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), timeout)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in found]


async def host_refusal(host: str, *, allow_private: bool, timeout: float = RESOLVE_SECONDS) -> str:
    """Why the host (a name or an address) must not be sent to, or "" when it may: every address
    it resolves to must be public unless `allow_private`; it must resolve in any case."""
    host = host.strip("[]")
    if not host:
        return "has no host"
    try:
        addresses = await _resolve(host, timeout)
    except (TimeoutError, asyncio.TimeoutError):
        return f"host {host} did not resolve within {timeout:g}s"
    except (OSError, UnicodeError, ValueError):
        return f"host {host} does not resolve"
    if not addresses:
        return f"host {host} does not resolve"
    if allow_private:
        return ""
    for address in addresses:
        if why := address_refusal(address):
            return f"host {host} {why} (refused unless the server runs with --notify-allow-private)"
    return ""


def url_shape_refusal(url: str) -> str:
    """What is wrong with a URL before any name is resolved: its scheme, user info, host."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        return "is not a URL"
    if parts.scheme.lower() not in SCHEMES:
        return "must be an http:// or https:// URL"
    if parts.username is not None or parts.password is not None:
        return "must not carry user info (user:password@): sign deliveries with a secret instead"
    if not parts.hostname:
        return "has no host"
    return ""


async def url_refusal(url: str, *, allow_private: bool, timeout: float = RESOLVE_SECONDS) -> str:
    """Why a webhook or Slack URL must not be sent to, or "" when it may (see `host_refusal`)."""
    if why := url_shape_refusal(url):
        return why
    return await host_refusal(urllib.parse.urlsplit(url).hostname or "", allow_private=allow_private,
                              timeout=timeout)
