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


# Ids are time-ordered UUIDs (version 7, RFC 9562): the milliseconds since the epoch, then the
# fraction of the millisecond in 12 bits, then 62 random bits. Each table's id index then grows
# at its end, as its time indexes do, instead of at a random leaf: a batch of creates dirties a
# few shared pages rather than one page per id per index (work_orders.id, runs.id, the runs of a
# work order, the events of a work order), which SQLite's COMMIT writes to its WAL and
# PostgreSQL to its own. On a file of 300,000 work orders a create wrote 7.9 WAL pages with
# random ids and writes 3.1 now, and creates ran 1.3x as fast (scripts/wal_per_write.py).
# The random bytes come from os.urandom as uuid4's, read 4 KiB at a time, and the text is
# written without a uuid.UUID: uuid4() cost ~3% of a create's CPU (a system call and a
# pure-Python object per id).
_ID_BYTES = 4096
_id_lock = threading.Lock()
_id_pool = bytearray()
_id_pid = 0
_id_last = 0


def new_id() -> str:
    """A time-ordered (version 7) UUID, as text; a process's ids in the order it made them."""
    global _id_pid, _id_last
    ms, ns = divmod(time.time_ns(), 1_000_000)
    head = ms << 16 | 0x7000 | ns * 4096 // 1_000_000  # unix_ts_ms, version 7, the ms's fraction
    with _id_lock:
        if not _id_pool or _id_pid != os.getpid():  # a forked child must not repeat its parent's ids
            _id_pool[:] = os.urandom(_ID_BYTES)
            _id_pid = os.getpid()
        drawn = _id_pool[-8:]
        del _id_pool[-8:]
        # Two ids in one tick of the fraction (244 ns), or a clock set back by up to 65 s: one tick
        # on from the last (RFC 9562's monotonic counter; a whole millisecond of ticks carries into
        # the next). Set back further, ids follow the clock: out of order, still unique by their
        # random bits.
        if head <= _id_last and _id_last - head < 1 << 32:
            head = _id_last + 1 if _id_last & 0xFFF != 0xFFF else ((_id_last >> 16) + 1) << 16 | 0x7000
        _id_last = head
    drawn[0] = drawn[0] & 0x3F | 0x80  # RFC 9562's variant
    h = head.to_bytes(8, "big").hex() + drawn.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"  # as str(uuid.UUID(...)) writes it
