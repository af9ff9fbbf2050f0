"""The archive's shape: one work order per line, as a JSON object

    {"work_order": WorkOrder, "runs": [Run, ...], "events": [Event, ...]}

each part in protobuf's JSON mapping with proto field names (json_format.ParseDict reads it back):
the runs by number, oldest first, each with its step runs (Run.step_runs, in the order they were
started); the events of the work order by sequence. An export may leave "events" out (it says so
by not writing the key); an archive always writes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format

from runstatus.v1.event_pb2 import Event
from runstatus.v1.work_order_pb2 import Run, StepRun, WorkOrder

from .message_json import converter

_work_order = converter(WorkOrder.DESCRIPTOR)
_run = converter(Run.DESCRIPTOR)
_event = converter(Event.DESCRIPTOR)
_step_run = converter(StepRun.DESCRIPTOR)
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass
class ArchivedWorkOrder:
    """A work order with its runs (each with its step runs) and, where known, its events."""

    work_order: WorkOrder
    runs: list[Run] = field(default_factory=list)
    events: list[Event] | None = None  # None: not read (an export without --events)

    @property
    def step_run_count(self) -> int:
        return sum(len(r.step_runs) for r in self.runs)

    def line(self) -> bytes:
        """The record as one NDJSON line, newline included."""
        return encode_line(self.work_order, self.runs, self.events)

    @classmethod
    def parse(cls, line: str | bytes) -> ArchivedWorkOrder:
        """A line back as messages; ValueError if it is not one (json_format.ParseError is not a
        ValueError: a damaged byte in a field name raises it)."""
        obj = json.loads(line)
        if not isinstance(obj, dict) or not isinstance(obj.get("work_order"), dict):
            raise ValueError("not an archived work order: no \"work_order\" object")
        try:
            return cls(
                json_format.ParseDict(obj["work_order"], WorkOrder()),
                [json_format.ParseDict(r, Run()) for r in _list(obj, "runs")],
                [json_format.ParseDict(e, Event()) for e in _list(obj, "events")] if "events" in obj else None,
            )
        except json_format.ParseError as e:
            raise ValueError(str(e)) from e


def _list(obj: dict[str, Any], key: str) -> list[Any]:
    value = obj.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"not an archived work order: {key!r} is not a list")
    return value


def encode_line(work_order: WorkOrder, runs: list[Run], events: list[Event] | None,
                step_runs: Mapping[str, list[StepRun]] | None = None) -> bytes:
    """The line of a work order, its runs and its events (None: left out). The runs carry their
    step runs, or `step_runs` has them by run id (read apart: copying them into each Run costs
    more than converting them)."""
    run_dicts = [_run(r) for r in runs]
    if step_runs:
        for run, d in zip(runs, run_dicts):
            if found := step_runs.get(run.id):
                d["step_runs"] = [_step_run(s) for s in found]
    record: dict[str, Any] = {"work_order": _work_order(work_order), "runs": run_dicts}
    if events is not None:
        record["events"] = [_event(e) for e in events]
    return (_dumps(record) + "\n").encode()
