"""Small helpers: time in microseconds, timestamps, ids."""

from __future__ import annotations

import re
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


# The ids users choose (projects, workflows, steps) and the names they give them.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ID_RULE = "must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
MAX_NAME = 256


def check_id(field: str, value: str, violations: list[tuple[str, str]]) -> None:
    if not value:
        violations.append((field, "is required"))
    elif not ID_PATTERN.match(value):
        violations.append((field, ID_RULE))
