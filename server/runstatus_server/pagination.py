"""Page sizes and opaque page tokens (AIP-158)."""

from __future__ import annotations

import base64
import binascii

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from .errors import invalid
from .store.base import Page

T = TypeVar("T")
K = TypeVar("K")
F = TypeVar("F")
# A page stops short of this many bytes (at least one item), inside the 4 MiB a client accepts:
# the store reads only the rows that fit (store/rows.py, within_bytes).
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


class PageRequest(Protocol):
    """Any List request: AIP-158's two fields."""

    page_size: int
    page_token: str


@dataclass(frozen=True)
class Pager(Generic[K]):
    """One List call's paging: how many items to read (`size`) and bytes at most (`max_bytes`),
    where this page starts (`after`: the key in the request's token, or the first page's), and
    the answer's page and next token (`cut`)."""

    size: int
    after: K
    max_bytes: int = MAX_PAGE_BYTES

    def cut(self, found: Page[T], key: Callable[[T], Sequence[object] | None]) -> tuple[list[T], str]:
        """The page to answer with and its next_page_token.

        `found` is what the store read for at most `self.size` items and `self.max_bytes`. The
        token names `key` of the page's last item and is empty when there is nothing after it:
        the store found fewer than asked without stopping at the byte budget, or `key` says
        the item is the last one there is (None)."""
        more = found.cut or len(found) == self.size
        last = key(found[-1]) if found and more else None
        return list(found), encode(*last) if last is not None else ""


def by_id(request: PageRequest) -> Pager[str]:
    """Paging in order of a string id; the first page starts after ""."""
    size = page_size(request.page_size)
    return Pager(size, decode(request.page_token, 1)[0] if request.page_token else "")


def by_numbers(request: PageRequest, count: int, first: F) -> Pager[tuple[int, ...] | F]:
    """Paging by a key of `count` whole numbers; the first page starts at `first`."""
    size = page_size(request.page_size)
    after: tuple[int, ...] | F = tuple(decode_ints(request.page_token, count)) if request.page_token else first
    return Pager(size, after)
