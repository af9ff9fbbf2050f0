"""A file's manifest: what the file must hold (its size, SHA-256 and counts), written after the
file and beside it (`<batch>.manifest.json` next to `<batch>.ndjson.gz`). The manifest is what
makes a file part of the archive: a file without one is a write that never finished. It carries
a checksum of its own fields, so a change to the manifest is caught as surely as one to its file."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import Any

FORMAT = "runstatus-archive/1"
DATA_SUFFIX = ".ndjson.gz"
MANIFEST_SUFFIX = ".manifest.json"
COUNTS = ("work_orders", "runs", "step_runs", "events")


class ManifestError(ValueError):
    """A manifest that cannot be read, or whose checksum does not match its fields."""


@dataclass(frozen=True)
class Manifest:
    file: str  # the data file's name in the archive, e.g. 2024-05-01/20240502T031500.123456Z-1a2b3c4d.ndjson.gz
    size: int  # its size in bytes, compressed
    sha256: str  # of its bytes, compressed (hex)
    work_orders: int
    runs: int
    step_runs: int
    events: int
    day: str  # the UTC day of its work orders' last change
    first_update_time: str  # the earliest and latest update_time among them (RFC 3339)
    last_update_time: str
    written: str  # when the file was written (RFC 3339)
    format: str = FORMAT

    def counts(self) -> dict[str, int]:
        return {key: getattr(self, key) for key in COUNTS}

    def to_json(self) -> bytes:
        body = asdict(self)
        body["checksum"] = _checksum(body)
        return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        try:
            body = json.loads(data)
        except ValueError as e:
            raise ManifestError(f"not JSON: {e}") from None
        if not isinstance(body, dict):
            raise ManifestError("not a JSON object")
        checksum = body.pop("checksum", None)
        if body.get("format") != FORMAT:
            raise ManifestError(f"format {body.get('format')!r}, not {FORMAT!r}")
        if checksum != _checksum(body):
            raise ManifestError("its checksum does not match its fields: the manifest was changed")
        names = {f.name for f in fields(cls)}
        if set(body) != names:
            raise ManifestError(f"fields {sorted(set(body) ^ names)} missing or unknown")
        return cls(**body)


def data_name(manifest_name: str) -> str:
    """The data file a manifest (by its name) is of."""
    return manifest_name.removesuffix(MANIFEST_SUFFIX) + DATA_SUFFIX


def _checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
