"""The headers of a delivery: its stable id, its event's sequence, and a signature in the style
of Stripe's, so that a receiver can drop forgeries and replays (README: "Admin webhook").

    Runstatus-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>

The timestamp is the attempt's (a retry is signed anew), so a receiver can refuse one outside its
tolerance; a replay within it carries a delivery id the receiver has already seen.
"""

from __future__ import annotations

import hashlib
import hmac

DELIVERY = "Runstatus-Delivery"
SEQUENCE = "Runstatus-Event-Sequence"
SIGNATURE = "Runstatus-Signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The header's value for `body` sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def headers(delivery_id: str, event_seq: int, body: bytes, secret: str, timestamp: int) -> dict[str, str]:
    """Every header of one attempt; unsigned without a secret."""
    sent = {"Content-Type": "application/json", "User-Agent": "runstatus-notifier", DELIVERY: delivery_id,
            SEQUENCE: str(event_seq)}
    if secret:
        sent[SIGNATURE] = signature(secret, timestamp, body)
    return sent
