"""Reading an archive back: `verify` re-checks every file against its manifest, `records` streams
its lines (runstatus archive verify / show)."""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from .manifest import COUNTS, DATA_SUFFIX, MANIFEST_SUFFIX, Manifest, ManifestError, data_name
from .records import ArchivedWorkOrder
from .sink import ArchiveSink


class _Hashing(io.RawIOBase):
    """A stream that hashes (and counts) the bytes read through it: the file is read once, for
    its checksum and its lines together."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.raw.read(len(buffer))
        self.sha256.update(data)
        self.size += len(data)
        buffer[:len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


@dataclass
class Verified:
    files: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    problems: list[str] = field(default_factory=list)


def manifests(sink: ArchiveSink) -> Iterator[tuple[str, Manifest | ManifestError]]:
    """Each manifest by name (sorted: by day, then by when its batch was written), or why not."""
    for name in sink.names():
        if name.endswith(MANIFEST_SUFFIX):
            with sink.open(name) as f:
                data = f.read()
            try:
                yield name, Manifest.from_json(data)
            except ManifestError as e:
                yield name, e


def verify(sink: ArchiveSink, on_file: Callable[[int, int], None] | None = None) -> Verified:
    """Every file read whole: its size and SHA-256, every line parsed, and its counts, each against
    its manifest; a manifest whose file is gone, and a file no manifest vouches for. `on_file` is
    told (files done, files in all) as it goes."""
    result = Verified()
    vouched = set()
    found = list(manifests(sink))
    for done, (name, manifest) in enumerate(found, 1):
        if on_file is not None:
            on_file(done, len(found))
        vouched.add(data_name(name))
        if isinstance(manifest, ManifestError):
            result.problems.append(f"{name}: {manifest}")
            continue
        if manifest.file != data_name(name):
            result.problems.append(f"{name}: names {manifest.file}, not {data_name(name)}")
            continue
        result.files += 1
        for problem in _verify_file(sink, manifest):
            result.problems.append(f"{manifest.file}: {problem}")
        for key in COUNTS:
            result.counts[key] += getattr(manifest, key)
    for name in sink.names():
        if name.endswith(DATA_SUFFIX) and name not in vouched:
            result.problems.append(f"{name}: no manifest (a write that never finished, or its manifest is lost)")
    return result


def _verify_file(sink: ArchiveSink, manifest: Manifest) -> list[str]:
    try:
        raw = sink.open(manifest.file)
    except FileNotFoundError:
        return ["missing (its manifest is there)"]
    problems: list[str] = []
    counts = dict.fromkeys(COUNTS, 0)
    with raw:
        hashing = _Hashing(raw)
        try:
            with gzip.GzipFile(fileobj=io.BufferedReader(hashing, 1 << 20), mode="rb") as lines:
                for number, line in enumerate(lines, 1):
                    try:
                        record = ArchivedWorkOrder.parse(line)
                    except ValueError as e:
                        if len(problems) < 5:
                            problems.append(f"line {number} does not parse: {str(e)[:200]}")
                        continue
                    counts["work_orders"] += 1
                    counts["runs"] += len(record.runs)
                    counts["step_runs"] += record.step_run_count
                    counts["events"] += len(record.events or ())
        except (OSError, EOFError, zlib.error) as e:
            problems.append(f"not a whole gzip file: {e}")
        hashing.drain()
    if hashing.size != manifest.size:
        problems.append(f"{hashing.size:,} bytes, its manifest says {manifest.size:,}")
    if hashing.sha256.hexdigest() != manifest.sha256:
        problems.append("SHA-256 does not match its manifest's: the file was changed or damaged")
    for key in COUNTS:
        if counts[key] != getattr(manifest, key):
            problems.append(f"{counts[key]:,} {key.replace('_', ' ')}, its manifest says {getattr(manifest, key):,}")
    return problems


def lines(sink: ArchiveSink) -> Iterator[bytes]:
    """Every line of every file a manifest vouches for, in the manifests' order, streaming."""
    for _, manifest in manifests(sink):
        if isinstance(manifest, Manifest):
            with sink.open(manifest.file) as raw, gzip.GzipFile(fileobj=raw, mode="rb") as f:
                yield from f
