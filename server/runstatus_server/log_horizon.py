"""How far back a watch can resume: retention deleted every event at or below the event log's
horizon (pruner.py), so a cursor below it may have missed events, and is refused with
OUT_OF_RANGE, CURSOR_EXPIRED, and the oldest cursor that can still be resumed from."""

from __future__ import annotations

import grpc
from google.rpc import code_pb2

from runstatus.v1.error_reason_pb2 import ErrorReason

from .errors import ApiError
from .store.base import Tx


class CursorExpired(ApiError):
    code = grpc.StatusCode.OUT_OF_RANGE
    rpc_code = code_pb2.OUT_OF_RANGE

    def __init__(self, cursor: int, oldest: int) -> None:
        super().__init__(
            f"cursor {cursor} is older than the oldest event kept: retention pruned the event log through "
            f"{oldest}. Re-read what you need (ListWorkOrders), then watch with from_now",
            reason=ErrorReason.ERROR_REASON_CURSOR_EXPIRED, metadata={"oldest_cursor": str(oldest)},
        )


def horizon(tx: Tx) -> int:
    return tx.event_log_horizon()


def check_cursor(tx: Tx, cursor: int) -> None:
    """Raises CursorExpired for a cursor a watch cannot resume after without a gap."""
    oldest = horizon(tx)
    if cursor < oldest:
        raise CursorExpired(cursor, oldest)
