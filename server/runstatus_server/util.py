"""Small helpers: time in microseconds, timestamps, ids."""

from __future__ import annotations

import os
import threading
import time

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


# Ids' random bytes, from os.urandom as uuid4's, but read 4 KiB at a time, and written out
# without a uuid.UUID: uuid4() cost ~3% of a create's CPU (a system call and a pure-Python
# object per id), more on a busy machine.
_ID_BYTES = 4096
_id_lock = threading.Lock()
_id_pool = bytearray()
_id_pid = 0


def new_id() -> str:
    """A random (version 4) UUID, as text."""
    global _id_pid
    with _id_lock:
        if not _id_pool or _id_pid != os.getpid():  # a forked child must not repeat its parent's ids
            _id_pool[:] = os.urandom(_ID_BYTES)
            _id_pid = os.getpid()
        drawn = _id_pool[-16:]
        del _id_pool[-16:]
    drawn[6] = drawn[6] & 0x0F | 0x40  # version 4
    drawn[8] = drawn[8] & 0x3F | 0x80  # RFC 4122's variant
    h = drawn.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"  # as str(uuid.UUID(...)) writes it
