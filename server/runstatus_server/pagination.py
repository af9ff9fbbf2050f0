"""Page sizes and opaque page tokens (AIP-158)."""

from __future__ import annotations

import base64
import binascii

from collections.abc import Callable, Sequence
from typing import TypeVar

from .errors import invalid

T = TypeVar("T")
# A page stops short of this many bytes (at least one item), inside the 4 MiB a client accepts.
MAX_PAGE_BYTES = 3 * 1024 * 1024

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(value: int) -> int:
    if value < 0:
        raise invalid("page_size", "must not be negative")
    return min(value or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode(*parts: object) -> str:
    return base64.urlsafe_b64encode("\x1f".join(str(p) for p in parts).encode()).decode()


def decode(token: str, count: int) -> list[str]:
    """The parts of a token made by `encode`; INVALID_ARGUMENT for anything else."""
    try:
        parts = base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True).decode().split("\x1f")
    except (binascii.Error, UnicodeError, ValueError):
        parts = []
    if len(parts) != count or not all(parts):
        raise invalid("page_token", "is not a token this server gave out")
    return parts


def decode_ints(token: str, count: int) -> list[int]:
    try:
        values = [int(p) for p in decode(token, count)]
    except ValueError:
        values = []
    if len(values) != count or not all(0 <= v < 2**63 for v in values):
        raise invalid("page_token", "is not a token this server gave out")
    return values


def within_bytes(items: Sequence[T], size: Callable[[T], int], limit: int = MAX_PAGE_BYTES) -> list[T]:
    """The longest head of `items` whose sizes add up to at most `limit` (never empty if items is not)."""
    kept, total = [], 0
    for item in items:
        total += size(item)
        if kept and total > limit:
            break
        kept.append(item)
    return kept
