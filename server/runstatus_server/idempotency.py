"""AIP-155 request ids: a repeated request with the same request_id gets the first answer.

The answer is stored in the same transaction as the change it reports, so a
request either happened once, with its answer kept, or not at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TypeVar

from google.protobuf.message import Message

from .auth import caller
from .errors import FailedPrecondition, invalid
from .store.base import Tx
from .util import now_us

M = TypeVar("M", bound=Message)
MAX_REQUEST_ID = 128


def check_request_id(request_id: str) -> None:
    if len(request_id) > MAX_REQUEST_ID or not request_id.isprintable():
        raise invalid("request_id", f"must be at most {MAX_REQUEST_ID} printable characters (a UUID is best)")


def _key(request: Message) -> str:
    """The request's request_id as stored: per project, so one never sees another's answers."""
    request_id: str = getattr(request, "request_id")
    check_request_id(request_id)
    who = caller.get()
    return f"{who.project_id}/{request_id}" if request_id and who is not None else request_id


def _fingerprint(method: str, request: Message) -> bytes:
    return hashlib.sha256(method.encode() + request.SerializeToString(deterministic=True)).digest()


def answered(tx: Tx, method: str, request: Message, response_type: type[M], key: str | None = None) -> M | None:
    """The first answer to this request_id, if there was one (a different request with it is refused)."""
    key = _key(request) if key is None else key
    seen = tx.get_request(key) if key else None
    if seen is None:
        return None
    seen_method, seen_fingerprint, response = seen
    if seen_method != method or seen_fingerprint != _fingerprint(method, request):
        raise FailedPrecondition(
            f"request_id {getattr(request, 'request_id')!r} was already used for a different request",
            reason="REQUEST_ID_REUSED", metadata={"method": seen_method},
        )
    return response_type.FromString(response)


def once(method: str, request: Message, response_type: type[M], op: Callable[[Tx], M],
         kept: Callable[[M], M] | None = None) -> Callable[[Tx], M]:
    """Wraps a write so that it runs at most once per request_id. `kept` is what of the
    answer is stored for repeats (all of it unless given: a secret must not be)."""
    key = _key(request)

    def run(tx: Tx) -> M:
        if not key:
            return op(tx)
        earlier = answered(tx, method, request, response_type, key)
        if earlier is not None:
            return earlier
        answer = op(tx)
        stored = kept(answer) if kept is not None else answer
        tx.put_request(key, method, _fingerprint(method, request), stored.SerializeToString(), now_us())
        return answer

    return run
