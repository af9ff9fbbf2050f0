"""Where an archive's files go: `ArchiveSink`, blobs by name, and its directory implementation.

Names are relative paths with "/" (`2024-05-01/<batch>.ndjson.gz`), as object keys are: an
S3-compatible sink (PutObject, which is atomic and durable when it answers; ListObjectsV2; GetObject)
implements the same three methods, and the Archiver, the pruner and the commands stay as they are."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol


class ArchiveSink(Protocol):
    def put(self, name: str, data: bytes) -> None:
        """Stores data under name, whole or not at all, durably before it returns; a name is
        written once (an archive never rewrites a file)."""
        ...

    def names(self) -> Iterator[str]:
        """Every complete blob's name, sorted."""
        ...

    def open(self, name: str) -> BinaryIO:
        """A blob to read, streaming; FileNotFoundError if there is none by that name."""
        ...


PARTIAL = ".partial-"  # the mark of a file still being written (never listed)


class DirectorySink:
    """Blobs as files under a directory. A file is written beside its final name (NAME.partial-*),
    flushed to disk, renamed, and its directory flushed too: a name that exists is complete and
    survives a crash; a crash mid-write leaves only a .partial file, which no one lists."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def _path(self, name: str) -> Path:
        parts = name.split("/")
        if not name or any(p in ("", ".", "..") for p in parts) or "\\" in name:
            raise ValueError(f"not a blob name: {name!r}")
        return self.root.joinpath(*parts)

    def put(self, name: str, data: bytes) -> None:
        path = self._path(name)
        new_dirs = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}{PARTIAL}{secrets.token_hex(4)}")
        try:
            with open(partial, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        # The rename, and each directory made for it, are durable only once their parents are.
        for directory in [path.parent, *(d.parent for d in new_dirs)]:
            _fsync_dir(directory)

    def names(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        found = []
        for directory, _, files in os.walk(self.root):
            for file in files:
                if PARTIAL not in file:
                    found.append(Path(directory, file).relative_to(self.root).as_posix())
        yield from sorted(found)

    def partials(self) -> list[str]:
        """Files a write left unfinished (a crash): not part of the archive, safe to delete."""
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob(f"*{PARTIAL}*"))

    def open(self, name: str) -> BinaryIO:
        return open(self._path(name), "rb")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
