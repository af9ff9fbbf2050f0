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


def once(method: str, request: Message, response_type: type[M], op: Callable[[Tx], M]) -> Callable[[Tx], M]:
    """Wraps a write so that it runs at most once per request_id."""
    request_id: str = getattr(request, "request_id")
    check_request_id(request_id)
    who = caller.get()
    if request_id and who is not None:
        request_id = f"{who.project_id}/{request_id}"  # one project never sees another's answers

    def run(tx: Tx) -> M:
        if not request_id:
            return op(tx)
        fingerprint = hashlib.sha256(method.encode() + request.SerializeToString(deterministic=True)).digest()
        seen = tx.get_request(request_id)
        if seen is not None:
            seen_method, seen_fingerprint, response = seen
            if seen_method != method or seen_fingerprint != fingerprint:
                raise FailedPrecondition(
                    f"request_id {request_id!r} was already used for a different request",
                    reason="REQUEST_ID_REUSED", metadata={"method": seen_method},
                )
            return response_type.FromString(response)
        answer = op(tx)
        tx.put_request(request_id, method, fingerprint, answer.SerializeToString(), now_us())
        return answer

    return run
