"""A retention policy (Project.retention, the server's --retention) as one line of text:
`SUCCESS=30d,FAILED=365d,CANCELLED=30d,payloads=7d,archive`. Each status by its name without
the RUN_STATUS_ prefix, `payloads` for how long payloads are kept, `archive` to archive before
removal; durations in s, m, h or d, and 0 for ever. The server's option and the command line
read it with `parse`, and show a policy with `describe`."""

from __future__ import annotations

import re

from google.protobuf.duration_pb2 import Duration

from runstatus import status_table
from runstatus.v1.project_pb2 import RetentionPolicy, StatusRetention
from runstatus.v1.status_pb2 import RunStatus

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhd]?)")


def _seconds(text: str, what: str) -> Duration:
    found = _DURATION.fullmatch(text.strip())
    if not found:
        raise ValueError(f"{what}: {text!r} is not a duration (a number and s, m, h or d: 30d, 12h, 0 for ever)")
    seconds = float(found.group(1)) * UNITS[found.group(2) or "s"]
    duration = Duration()
    duration.FromNanoseconds(int(seconds * 1e9))
    return duration


def terminal_statuses() -> list[RunStatus.ValueType]:
    return [s for s in status_table.statuses() if status_table.is_terminal(s)]


def parse(spec: str) -> RetentionPolicy:
    """The policy a line of text says (empty: none). Raises ValueError saying what is wrong."""
    policy = RetentionPolicy()
    seen: set[str] = set()
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, _, value = part.partition("=")
        key = name.strip().upper().removeprefix("RUN_STATUS_")
        if key in seen:
            raise ValueError(f"{name.strip()} is given twice")
        seen.add(key)
        if key == "ARCHIVE" and not value:
            policy.archive = True
        elif key == "PAYLOADS":
            policy.payloads.CopyFrom(_seconds(value, name))
        elif f"RUN_STATUS_{key}" in RunStatus.keys() and RunStatus.Value(f"RUN_STATUS_{key}") in terminal_statuses():
            policy.statuses.append(StatusRetention(status=RunStatus.Value(f"RUN_STATUS_{key}"),
                                                   keep=_seconds(value, name)))
        else:
            names = ", ".join(RunStatus.Name(s).removeprefix("RUN_STATUS_") for s in terminal_statuses())
            raise ValueError(f"{part!r}: expected STATUS=DURATION (a terminal status: {names}), "
                             "payloads=DURATION or archive")
    return policy


def _duration_text(duration: Duration) -> str:
    seconds = duration.ToNanoseconds() / 1e9
    if seconds == 0:
        return "0"
    for unit in ("d", "h", "m"):
        if seconds % UNITS[unit] == 0:
            return f"{int(seconds // UNITS[unit])}{unit}"
    return f"{seconds:g}s"


def describe(policy: RetentionPolicy) -> str:
    """The policy as `parse` reads it ("" for none)."""
    parts = [f"{RunStatus.Name(s.status).removeprefix('RUN_STATUS_')}={_duration_text(s.keep)}"
             for s in policy.statuses]
    if policy.HasField("payloads"):
        parts.append(f"payloads={_duration_text(policy.payloads)}")
    if policy.archive:
        parts.append("archive")
    return ",".join(parts)
