"""A delivery as a plain-text email, sent over SMTP (aiosmtplib, on the server's loop).

The SMTP server is the subscription's own (its EmailTarget.smtp, password in its secret) or the
server's default (--smtp-*). The Message-ID is made from the delivery id, and the id is in
X-Runstatus-Delivery, so a resend (at least once) is recognisable as the same message.

Every failure is an attempt that failed, retried within the window (retries.py): a 4xx is
temporary by SMTP's own rules; a 5xx (a refused recipient, a rejected login) is permanent to
SMTP, yet retried all the same and logged with its code, because what fixes it (the relay's
configuration, a mailbox created) happens outside the message, and the window bounds the cost.
"""

from __future__ import annotations

import asyncio
import email.message
import email.utils
import ssl
from dataclasses import dataclass, replace

import aiosmtplib
from google.protobuf import json_format

from runstatus.v1.notification_pb2 import EmailTarget, SmtpSecurity

from . import messages
from .sender import Attempt

DELIVERY_HEADER = "X-Runstatus-Delivery"
SECURITIES = {"none": SmtpSecurity.SMTP_SECURITY_NONE, "starttls": SmtpSecurity.SMTP_SECURITY_STARTTLS,
              "tls": SmtpSecurity.SMTP_SECURITY_TLS}
DEFAULT_PORTS = {SmtpSecurity.SMTP_SECURITY_NONE: 25, SmtpSecurity.SMTP_SECURITY_STARTTLS: 587,
                 SmtpSecurity.SMTP_SECURITY_TLS: 465}


@dataclass(frozen=True)
class SmtpServer:
    host: str = ""
    port: int = 0  # 0: the security's usual port (25, 587, 465)
    security: SmtpSecurity.ValueType = SmtpSecurity.SMTP_SECURITY_STARTTLS
    username: str = ""
    password: str = ""  # never logged, never in a message
    from_address: str = ""

    def __repr__(self) -> str:  # a log line or a traceback shows no password
        return f"SmtpServer({self.host}:{self.port}, security={self.security}, username={self.username!r})"


def server_for(target: EmailTarget, password: str, default: SmtpServer) -> SmtpServer:
    """The subscription's own SMTP server when it names a host, else the server's default; its
    From address, else the default's."""
    own = target.smtp
    if not own.host:
        return default if default.from_address or not own.from_address else replace(default, from_address=own.from_address)
    return SmtpServer(own.host, own.port, own.security or SmtpSecurity.SMTP_SECURITY_STARTTLS, own.username,
                      password, own.from_address or default.from_address)


def target_of(text: str) -> EmailTarget:
    """A subscription's target: EmailTarget as protobuf JSON (store/base.py), without its password."""
    return json_format.Parse(text or "{}", EmailTarget(), ignore_unknown_fields=True)


def message(delivery_id: str, body: bytes, to: list[str], from_address: str, public_url: str) -> email.message.EmailMessage:
    said = messages.of(body, public_url)
    mail = email.message.EmailMessage()
    mail["Subject"] = said.subject
    mail["From"] = from_address
    mail["To"] = ", ".join(to)
    mail["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
    domain = from_address.rpartition("@")[2].strip(" >") or "runstatus.invalid"
    mail["Message-ID"] = f"<runstatus.{delivery_id}@{domain}>"
    mail[DELIVERY_HEADER] = delivery_id
    lines = [said.intro, ""] if said.intro else []
    for text, link in said.runs:
        lines.append(text + (f"\n    {link}" if link else ""))
    if said.more:
        lines.append(f"... and {said.more} more (not listed)")
    mail.set_content("\n".join(lines) + "\n")
    return mail


def _refusal(e: aiosmtplib.SMTPException) -> str:
    if isinstance(e, aiosmtplib.SMTPRecipientsRefused) and e.recipients:
        e = e.recipients[0]
    if isinstance(e, aiosmtplib.SMTPResponseException):
        permanent = " (a permanent refusal: retried within the window all the same)" if 500 <= e.code < 600 else ""
        return f"SMTP {e.code}: {' '.join(e.message.split())[:200]}{permanent}"
    return f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"


async def send(server: SmtpServer, mail: email.message.EmailMessage, to: list[str], timeout: float) -> Attempt:
    """Sends one email; any fault is an Attempt that failed, never an exception."""
    if not server.host:
        return Attempt(False, "no SMTP server: the subscription names none and the server has no --smtp-host")
    if not to:
        return Attempt(False, "no recipient")
    if not server.from_address:
        return Attempt(False, "no From address: set the subscription's smtp.from_address or --smtp-from")
    tls = server.security == SmtpSecurity.SMTP_SECURITY_TLS
    try:
        await asyncio.wait_for(aiosmtplib.send(
            mail, sender=server.from_address, recipients=to, hostname=server.host,
            port=server.port or DEFAULT_PORTS.get(server.security, 587),
            username=server.username or None, password=server.password or None,
            use_tls=tls, start_tls=server.security == SmtpSecurity.SMTP_SECURITY_STARTTLS,
            tls_context=ssl.create_default_context() if tls or server.security == SmtpSecurity.SMTP_SECURITY_STARTTLS else None,
            timeout=timeout), timeout)
        return Attempt(True)
    except TimeoutError:
        return Attempt(False, f"no answer within {timeout:g}s")
    except aiosmtplib.SMTPException as e:
        return Attempt(False, _refusal(e))
    except Exception as e:  # noqa: BLE001 - whatever the SMTP server or the network did, this attempt failed
        return Attempt(False, f"{type(e).__name__}: {' '.join(str(e).split())[:200]}")
