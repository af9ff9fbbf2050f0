"""Ids (util.new_id): time-ordered version-7 UUIDs (RFC 9562), their random bits from a buffer
of os.urandom's bytes; a process's ids sort in the order it made them; a forked child does not
repeat its parent's."""

from __future__ import annotations

import os
import time
import uuid

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
