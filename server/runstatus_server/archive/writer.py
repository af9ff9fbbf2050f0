"""`Archiver`: the one call the pruner makes before it deletes a batch of work orders.

    archiver = Archiver(DirectorySink(archive_dir))
    archiver.write(records)   # blocks until every record is durable; then delete them

A batch becomes one file per UTC day of its work orders' last change (`DAY/<time>-<random>.ndjson.gz`,
gzip-compressed NDJSON in the archive's shape, records.py), each followed by its manifest
(manifest.py). So a day's directory holds one file per pruning batch that touched it: files are
never appended to or rewritten, which a crash cannot tear and an object store (S3) takes as it is.
A crash between a file and its manifest leaves a file without one (verify names it); the work
orders in it were not deleted, and the next batch writes them again: a work order may be in an
archive more than once (the same content, or a later state), never in none.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import secrets
from collections import defaultdict
from collections.abc import Iterable

from .manifest import DATA_SUFFIX, MANIFEST_SUFFIX, Manifest
from .message_json import timestamp
from .records import ArchivedWorkOrder
from .sink import ArchiveSink


class Archiver:
    def __init__(self, sink: ArchiveSink, *, compresslevel: int = 6) -> None:
        self.sink = sink
        self.compresslevel = compresslevel

    def write(self, records: Iterable[ArchivedWorkOrder]) -> list[Manifest]:
        """Writes the records (work orders with their runs, step runs and events) to the archive
        and returns once all of them are durable, with the manifests of the files written (none
        for no records). Blocking I/O: from the event loop, `await asyncio.to_thread(archiver.write,
        records)`. An exception means the batch may be partly written and must not be deleted."""
        by_day: dict[str, list[ArchivedWorkOrder]] = defaultdict(list)
        for record in records:
            by_day[_day(record)].append(record)
        written = datetime.datetime.now(datetime.timezone.utc)
        batch = f"{written:%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(4)}"
        return [self._write_day(day, by_day[day], f"{day}/{batch}", written) for day in sorted(by_day)]

    def _write_day(self, day: str, records: list[ArchivedWorkOrder], name: str,
                   written: datetime.datetime) -> Manifest:
        for record in records:
            if record.events is None:
                record.events = []  # an archive always says which events it has: here none
        data = gzip.compress(b"".join(r.line() for r in records), self.compresslevel, mtime=0)
        times = [r.work_order.update_time for r in records]
        first = min(times, key=lambda t: (t.seconds, t.nanos))
        last = max(times, key=lambda t: (t.seconds, t.nanos))
        manifest = Manifest(
            file=name + DATA_SUFFIX, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
            work_orders=len(records), runs=sum(len(r.runs) for r in records),
            step_runs=sum(r.step_run_count for r in records), events=sum(len(r.events or ()) for r in records),
            day=day, first_update_time=timestamp(first), last_update_time=timestamp(last),
            written=written.isoformat().replace("+00:00", "Z"),
        )
        self.sink.put(manifest.file, data)
        self.sink.put(name + MANIFEST_SUFFIX, manifest.to_json())  # last: the file is now part of the archive
        return manifest


def _day(record: ArchivedWorkOrder) -> str:
    seconds = record.work_order.update_time.seconds
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d")
