"""Small helpers: time in microseconds, timestamps, ids."""

from __future__ import annotations

import time
import uuid

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp


def now_us() -> int:
    return time.time_ns() // 1000


def timestamp(us: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMicroseconds(us)
    return ts


def duration_us(d: Duration) -> int:
    return d.seconds * 1_000_000 + d.nanos // 1000


def new_id() -> str:
    return str(uuid.uuid4())
