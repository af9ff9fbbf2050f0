"""AIP-155 request ids: a repeated request with the same request_id gets the first answer.

The answer is stored in the same transaction as the change it reports, so a
request either happened once, with its answer kept, or not at all. Kept answers are
kept for a bounded time (`--request-id-seconds`, a day by default; `prune` removes
older ones) and stored compactly: without what the database holds anyway (a claimed
run's workflow, which the run pins), read back on a repeat, and compressed.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable
from typing import TypeVar

from google.protobuf.message import Message
from google.rpc import status_pb2

from runstatus.v1.error_reason_pb2 import ErrorReason

from .auth import caller
from .errors import FailedPrecondition, KeptRefusal, Refused, ResourceExhausted, invalid
from .limits import MAX_ANSWER_BYTES
from .store.base import Tx
from .util import now_us

M = TypeVar("M", bound=Message)
MAX_REQUEST_ID = 128
DEFAULT_KEEP_SECONDS = 24 * 3600
# Stored answers: plain protobuf (which never starts with a byte below 8: no field has number
# 0), or b"\x01" and the zlib-compressed protobuf, for answers large enough to be worth it, or
# b"\x02" and a refusal's google.rpc.Status (errors.Refused: a refusal that changed something).
_COMPRESSED = b"\x01"
_REFUSED = b"\x02"
_COMPRESS_FROM = 512


def pack(answer: bytes) -> bytes:
    if len(answer) < _COMPRESS_FROM:
        return answer
    packed = _COMPRESSED + zlib.compress(answer, 6)
    return packed if len(packed) < len(answer) else answer


def unpack(stored: bytes) -> bytes:
    return zlib.decompress(stored[1:]) if stored[:1] == _COMPRESSED else stored


def prune(tx: Tx, before_us: int, limit: int) -> int:
    """Removes up to `limit` kept answers older than before_us; how many it removed."""
    return tx.delete_requests_before(before_us, limit)


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


def answered(tx: Tx, method: str, request: Message, response_type: type[M], key: str | None = None,
             restore: Callable[[Tx, M], M] | None = None) -> M | Refused | None:
    """The first answer to this request_id, if there was one (a different request with it is
    refused): a response, or the refusal it was given."""
    key = _key(request) if key is None else key
    seen = tx.get_request(key) if key else None
    if seen is None:
        return None
    seen_method, seen_fingerprint, response = seen
    if seen_method != method or seen_fingerprint != _fingerprint(method, request):
        raise FailedPrecondition(
            f"request_id {getattr(request, 'request_id')!r} was already used for a different request",
            reason=ErrorReason.ERROR_REASON_REQUEST_ID_REUSED, metadata={"method": seen_method},
        )
    if response[:1] == _REFUSED:
        return Refused(KeptRefusal(status_pb2.Status.FromString(response[1:])))
    answer = response_type.FromString(unpack(response))
    return restore(tx, answer) if restore is not None else answer


def sized(method: str, answer: M) -> M:
    """An answer is sized before its write commits: one that could not be sent is refused
    (the write rolls back), never committed and then lost on the way out. The limits make
    this a last line (limits.py): no stored record should ever come near it."""
    size = answer.ByteSize()
    if size > MAX_ANSWER_BYTES:
        raise ResourceExhausted(
            f"the answer to {method} would be {size} bytes, over the {MAX_ANSWER_BYTES} a message carries; "
            "nothing was changed", reason=ErrorReason.ERROR_REASON_ANSWER_TOO_LARGE,
            metadata={"size": str(size), "limit": str(MAX_ANSWER_BYTES)},
        )
    return answer


def once(method: str, request: Message, response_type: type[M], op: Callable[[Tx], M | Refused],
         kept: Callable[[M], M] | None = None,
         restore: Callable[[Tx, M], M] | None = None) -> Callable[[Tx], M | Refused]:
    """Wraps a write so that it runs at most once per request_id: every repeat gets the first
    answer, a refusal that changed something (errors.Refused) included. `kept` is what of the
    answer is stored for repeats (all of it unless given: a secret must not be, and what
    the database holds anyway need not be), `restore` what puts the rest back on a repeat.
    The service gives the outcome with `answer_or_raise`, after the commit."""
    key = _key(request)

    def run(tx: Tx) -> M | Refused:
        earlier = answered(tx, method, request, response_type, key, restore) if key else None
        if earlier is not None:
            return earlier
        outcome = op(tx)
        if isinstance(outcome, Refused):
            stored = _REFUSED + outcome.error.to_status().SerializeToString()
        else:
            outcome = sized(method, outcome)
            stored = pack((kept(outcome) if kept is not None else outcome).SerializeToString())
        if key:
            tx.put_request(key, method, _fingerprint(method, request), stored, now_us())
        return outcome

    return run


def answer_or_raise(outcome: M | Refused) -> M:
    """A write's answer, or its refusal raised: after the commit, so the refusal's change stays."""
    if isinstance(outcome, Refused):
        raise outcome.error
    return outcome
