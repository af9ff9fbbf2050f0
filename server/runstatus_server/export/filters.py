"""Which work orders an export takes: its filter options as SQL conditions on work_orders (`w`)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from runstatus.v1.status_pb2 import RunStatus


class FilterError(ValueError):
    """A filter option that means nothing: the command says which and exits 2."""


def parse_status(text: str) -> int:
    """FAILED, failed or RUN_STATUS_FAILED."""
    name = text.strip().upper()
    name = name if name.startswith("RUN_STATUS_") else f"RUN_STATUS_{name}"
    try:
        return int(RunStatus.Value(name))
    except ValueError:
        known = ", ".join(n.removeprefix("RUN_STATUS_").lower() for n in RunStatus.keys()[1:])
        raise FilterError(f"--status {text!r}: not a run status ({known})") from None


def parse_time(option: str, text: str) -> int:
    """An ISO 8601 date or time (UTC unless it says otherwise) in microseconds since the epoch."""
    try:
        when = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(f"{option} {text!r}: not a date or time (2024-05-01, 2024-05-01T12:00:00Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    delta = when - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass
class ExportFilter:
    """Every condition given must hold; a list matches any of its values. Times: microseconds,
    `after` inclusive, `before` exclusive."""

    projects: list[str] = field(default_factory=list)
    workflows: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    created_after: int | None = None
    created_before: int | None = None
    updated_after: int | None = None
    updated_before: int | None = None

    def sql(self, mark: str) -> tuple[str, list[Any]]:
        """" AND ..." conditions on the alias w, and their parameters."""
        sql, args = "", list[Any]()
        for column, values in (("project_id", self.projects), ("workflow_id", self.workflows),
                               ("status", self.statuses)):
            if values:
                sql += f" AND w.{column} IN ({', '.join([mark] * len(values))})"
                args += values
        for column, op, bound in (("create_time", ">=", self.created_after), ("create_time", "<", self.created_before),
                                  ("update_time", ">=", self.updated_after), ("update_time", "<", self.updated_before)):
            if bound is not None:
                sql += f" AND w.{column} {op} {mark}"
                args.append(bound)
        return sql, args
