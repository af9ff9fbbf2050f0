"""One attempt at a webhook delivery, over aiohttp's client. Whatever the receiver does (refuses,
answers 500 or 429, hangs, sends bytes that are not HTTP, fails TLS, redirects, streams an endless
body), an `Attempt` comes back, never an exception: one bad receiver must not stop the notifier."""

from __future__ import annotations

import contextlib
import time
import urllib.parse
from dataclasses import dataclass

import aiohttp
import yarl

from .retries import retry_after_seconds

TIMEOUT_SECONDS = 10.0  # the whole attempt: connecting, sending, the answer's status and headers
MAX_ANSWER = 4096  # of a refusal's body, read for its error message; the rest is never read


@dataclass(frozen=True)
class Attempt:
    ok: bool
    error: str = ""  # why not, in one line, for the log and the delivery's last_error
    retry_after: float | None = None  # seconds the receiver asked to wait (Retry-After)


def origin(url: str) -> str:
    """scheme://host:port of a URL, for messages: its path and query may hold a secret (a Slack
    incoming webhook's does), its user info a password."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return "?"
    host = parts.hostname or "?"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def _said(e: BaseException, url: str) -> str:
    """An exception on one line, the URL in it (aiohttp's messages name it) cut to its origin."""
    text = " ".join(str(e).split())
    spellings = {url}
    with contextlib.suppress(ValueError, TypeError):
        spellings.add(str(yarl.URL(url)))  # as aiohttp writes it
    for spelled in sorted(spellings - {""}, key=len, reverse=True):
        text = text.replace(spelled, origin(url))
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _printable(answer: bytes) -> str:
    text = answer.decode("utf-8", "replace")
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())[:200]


async def post(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str],
               timeout: float = TIMEOUT_SECONDS) -> Attempt:
    """POSTs body to url once: a 2xx answer is a delivery, anything else a failure. Redirects are
    not followed (a receiver that moved says so in the error; no loop to follow)."""
    try:
        async with session.post(url, data=body, headers=headers, allow_redirects=False,
                                timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            if 200 <= response.status < 300:
                return Attempt(True)  # its body is not read: the connection closes with it unread
            answer = _printable(await response.content.read(MAX_ANSWER))
            moved = " (redirects are not followed)" if 300 <= response.status < 400 else ""
            return Attempt(False, f"HTTP {response.status}{moved}" + (f": {answer}" if answer else ""),
                           retry_after_seconds(response.headers.get("Retry-After"), time.time()))
    except TimeoutError:
        return Attempt(False, f"no answer within {timeout:g}s")
    except Exception as e:  # noqa: BLE001 - whatever the receiver or the network did, this attempt failed
        return Attempt(False, _said(e, url))
