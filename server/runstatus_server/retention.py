"""Retention by outcome (issue 29): what is due, by the rules of RetentionPolicy
(proto/runstatus/v1/project.proto).

A project's policy says how long an ended work order is kept after its last change, by its
latest run's status, and how long its payloads are; what it leaves out, the instance's default
(--retention) says; what neither says is kept for ever, so that an upgrade never deletes
anything unasked. A zero duration is "for ever" too. pruner.py applies what this says.
"""

from __future__ import annotations

from dataclasses import dataclass

from runstatus.retention import describe, parse, terminal_statuses
from runstatus.v1.project_pb2 import Project, RetentionPolicy
from runstatus.v1.status_pb2 import RunStatus

from .util import duration_us

__all__ = ["Rules", "check", "describe", "effective", "parse"]

# The longest period a policy may say (the other durations of a project go to 366 days; history
# is asked to be kept for years).
MAX_KEEP_US = 100 * 366 * 86400 * 1_000_000


@dataclass(frozen=True)
class Rules:
    """A project's retention in force: microseconds by terminal status (absent: for ever),
    payloads' (0: as long as the work order), and whether to archive before deleting."""

    keep_us: dict[int, int]
    payloads_us: int
    archive: bool

    @property
    def prunes(self) -> bool:
        return bool(self.keep_us or self.payloads_us)


def effective(project: Project, default: RetentionPolicy) -> Rules:
    """The project's policy over the instance's default: each status the project lists, then
    each the default lists; payloads likewise (set in the project, even to zero, wins)."""
    keep: dict[int, int] = {}
    for policy in (default, project.retention):  # the project's last: it overrides
        for rule in policy.statuses:
            keep[rule.status] = duration_us(rule.keep)
    own = project.retention
    payloads = own.payloads if own.HasField("payloads") else default.payloads
    return Rules({s: us for s, us in keep.items() if us > 0}, max(0, duration_us(payloads)),
                 own.archive if project.HasField("retention") else default.archive)


def check(policy: RetentionPolicy, field: str, min_us: int) -> list[tuple[str, str]]:
    """What is wrong with a policy, each violation with its field (`field`.statuses[1].keep):
    only terminal statuses, each once; each period zero (for ever) or at least `min_us` (the
    server's --request-id-seconds: a repeated request id must never create again what was removed)."""
    wrong: list[tuple[str, str]] = []
    terminal = terminal_statuses()
    names = ", ".join(RunStatus.Name(s) for s in terminal)
    seen: set[int] = set()

    def period(where: str, duration_seconds: int, nanos: int, us: int) -> None:
        if duration_seconds < 0 or nanos < 0 or nanos >= 1_000_000_000 or us > MAX_KEEP_US:
            wrong.append((where, "must be a duration between 0 and 100 years"))
        elif 0 < us < min_us:
            wrong.append((where, f"must be 0 (for ever) or at least {min_us / 1e6:g}s (the server's "
                                 "--request-id-seconds)"))

    for i, rule in enumerate(policy.statuses):
        if rule.status not in terminal:
            wrong.append((f"{field}.statuses[{i}].status", f"must be a terminal status: {names}"))
        elif rule.status in seen:
            wrong.append((f"{field}.statuses[{i}].status", "is listed twice"))
        seen.add(rule.status)
        period(f"{field}.statuses[{i}].keep", rule.keep.seconds, rule.keep.nanos, duration_us(rule.keep))
    period(f"{field}.payloads", policy.payloads.seconds, policy.payloads.nanos, duration_us(policy.payloads))
    return wrong


def describe_rules(rules: Rules) -> str:
    """Rules in force, as a line (for logs)."""
    policy = RetentionPolicy()
    for status, us in sorted(rules.keep_us.items()):
        rule = policy.statuses.add(status=status)
        rule.keep.FromMicroseconds(us)
    if rules.payloads_us:
        policy.payloads.FromMicroseconds(rules.payloads_us)
    policy.archive = rules.archive
    return describe(policy) or "keep for ever"
