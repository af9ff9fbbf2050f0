"""Ids (util.new_id): time-ordered version-7 UUIDs (RFC 9562), their random bits from a buffer
of os.urandom's bytes; a process's ids sort in the order it made them; a forked child does not
repeat its parent's."""

from __future__ import annotations

import os
import time
import types
import uuid

import pytest

from runstatus_server import util
from runstatus_server.util import new_id


def test_ids_are_distinct_version_7_uuids_written_as_uuid_writes_them() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(20_000)]  # several refills of the buffer
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (7, uuid.RFC_4122, text)
        assert before <= parsed.int >> 80 <= after + 1  # unix_ts_ms (+1: a carry of the counter)


def test_ids_sort_in_the_order_they_were_made() -> None:
    # Many in one tick of the clock's fraction (244 ns) included: the counter keeps them in order.
    ids = [new_id() for _ in range(50_000)]
    assert ids == sorted(ids)
    assert len({text[:18] for text in ids}) == len(ids)  # and their time parts are distinct


def test_a_forked_child_draws_ids_of_its_own() -> None:
    new_id()  # the buffer is filled in the parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, "\n".join(new_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 10_000).decode().split("\n")
    os.close(read)
    assert not set(child) & {new_id() for _ in range(10)}


def parts(text: str) -> tuple[int, int]:
    """An id's unix milliseconds and the 12 bits after its version (the millisecond's fraction)."""
    value = uuid.UUID(text).int
    return value >> 80, value >> 64 & 0xFFF


def test_the_counter_keeps_order_within_a_tick_across_a_millisecond_and_a_clock_set_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1_796_000_000_000 * 1_000_000]  # ns: a millisecond's start
    monkeypatch.setattr(util, "time", types.SimpleNamespace(time_ns=lambda: clock[0]))
    new_id()  # whatever came before, from here the clock is this one
    clock[0] += 10**9
    same_tick = [new_id() for _ in range(5000)]  # more ids than a millisecond has ticks (4096)
    ms = clock[0] // 1_000_000
    assert same_tick == sorted(same_tick) and len(set(same_tick)) == 5000
    assert parts(same_tick[0]) == (ms, 0) and parts(same_tick[4095]) == (ms, 4095)
    assert parts(same_tick[4096]) == (ms + 1, 0)  # the carry: the next millisecond, fraction 0
    assert all(uuid.UUID(t).version == 7 and uuid.UUID(t).variant == uuid.RFC_4122 for t in same_tick)

    clock[0] -= 5 * 10**9  # set back 5 s: ids go on from the last
    back = new_id()
    assert back > same_tick[-1] and parts(back) == (ms + 1, parts(same_tick[-1])[1] + 1)

    clock[0] -= 100 * 10**9  # set back past 65 s: ids follow the clock, still distinct
    far = new_id()
    assert parts(far)[0] == clock[0] // 1_000_000 and far not in same_tick
