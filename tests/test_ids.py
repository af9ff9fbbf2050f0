"""Ids (util.new_id): random version-4 UUIDs as uuid.uuid4 makes them, from a buffer of
os.urandom's bytes; a forked child does not repeat its parent's."""

from __future__ import annotations

import os
import uuid

from runstatus_server.util import new_id


def test_ids_are_distinct_version_4_uuids_written_as_uuid_writes_them() -> None:
    ids = [new_id() for _ in range(20_000)]  # several refills of the buffer
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)


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
