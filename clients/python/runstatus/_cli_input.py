"""What a person types into the `runstatus` command, checked before anything is sent.

Every mistake becomes an `InputError`: one line that names the option or the file's field,
says what was wrong and what is allowed, and suggests the nearest name when there is one.
The command prints it and exits 2.
"""

from __future__ import annotations

import difflib
import json
import math
import pathlib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import yaml

from runstatus.v1.status_pb2 import RunStatus
from runstatus.v1.workflow_pb2 import Edge, EdgeCondition, Step

R = TypeVar("R")  # what a file read returns (_read)

# A JSON number is a double: integers beyond this lose digits on the way.
EXACT_INTEGERS = 2**53


class InputError(Exception):
    """A person's mistake, worded for them: `where: what was wrong; what is allowed`."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)


def nearest(value: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the choice nearest to value, or ''."""
    by_key = {c.lower(): c for c in choices}
    found = difflib.get_close_matches(value.lower(), list(by_key), n=1, cutoff=0.5)
    return f" (did you mean '{by_key[found[0]]}'?)" if found else ""


def one_of(where: str, value: str, what: str, allowed: Sequence[str]) -> InputError:
    return InputError(where, f"{value!r} is not {what}; one of {', '.join(allowed)}{nearest(value, allowed)}")


def _enum_names(names: Iterable[str], prefix: str) -> list[str]:
    return [n.removeprefix(prefix) for n in names if not n.endswith("_UNSPECIFIED")]


STATUSES = [n.lower() for n in _enum_names(RunStatus.keys(), "RUN_STATUS_")]
CONDITIONS = _enum_names(EdgeCondition.keys(), "EDGE_CONDITION_")


def _enum(value: str, prefix: str) -> str:
    name = value.strip().upper().replace("-", "_")
    return name.removeprefix(prefix)


def statuses(values: Sequence[str] | None, where: str = "--status") -> list[str]:
    """--status FAILED --status lost,crashed: RUN_STATUS_ names, any case, with or without the prefix."""
    found = []
    for value in values or []:
        for part in value.split(","):
            if not part.strip():
                continue
            name = _enum(part, "RUN_STATUS_")
            if name.lower() not in STATUSES:
                raise one_of(where, part, "a status", STATUSES)
            found.append(f"RUN_STATUS_{name}")
    return found


def choice(where: str, value: str, what: str, allowed: Sequence[str]) -> str:
    """value (any case) when it is one of allowed, lowercased."""
    if value.lower() not in allowed:
        raise one_of(where, value, what, allowed)
    return value.lower()


MAX_TIMEOUT = 1_000_000.0


def positive_seconds(where: str, value: float) -> float:
    if not math.isfinite(value) or not 0 < value <= MAX_TIMEOUT:
        raise InputError(where, f"{value} is not a number of seconds; give a number above 0, "
                                f"at most {MAX_TIMEOUT:.0f}")
    return value


def cursor(where: str, value: str) -> str:
    if value and not re.fullmatch(r"[0-9]{1,18}", value):
        raise InputError(where, f"{value!r} is not a cursor; a cursor is the number `watch` printed for an event")
    return value


def read_text(where: str, path: pathlib.Path) -> str:
    """A file's text, or an InputError saying why it cannot be read."""
    return _read(where, path, lambda: path.read_text(encoding="utf-8"))


def read_bytes(where: str, path: pathlib.Path) -> bytes:
    return _read(where, path, path.read_bytes)


def _read(where: str, path: pathlib.Path, read: Callable[[], R]) -> R:
    try:
        return read()
    except FileNotFoundError:
        raise InputError(where, f"{str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise InputError(where, f"{str(path)!r} is a directory; give a file") from None
    except UnicodeDecodeError:
        raise InputError(where, f"{str(path)!r} is not UTF-8 text") from None
    except (OSError, ValueError) as e:
        raise InputError(where, f"cannot read {str(path)!r}: {getattr(e, 'strerror', None) or e}") from None


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "true or false", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _unicode(where: str, text: str) -> str:
    """Text that can be sent: no unpaired surrogate (a JSON escape such as \\ud800 alone)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = text.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
        raise InputError(where, f"{shown!r} has an unpaired surrogate escape (\\ud800-\\udfff alone); "
                                "write the character itself") from None
    return text


def _check_values(where: str, value: Any, path: str = "") -> None:
    """Unicode text, finite numbers, integers that a double holds exactly."""
    if isinstance(value, dict):
        for k, v in value.items():
            key = _unicode(f"{where}: {path}" if path else where, str(k))
            key = key if key.isprintable() else json.dumps(key)  # a key with a newline: an error stays one line
            _check_values(where, v, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_values(where, v, f"{path}[{i}]")
    elif isinstance(value, str):
        _unicode(f"{where}: {path}" if path else where, value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise InputError(where, f"{path or 'the value'}: {value} is not a finite number")
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > EXACT_INTEGERS:
        raise InputError(where, f"{path}: {value} is too large to keep exactly (JSON numbers are doubles, "
                                f"integers up to 2^53); write it as a string")


def json_object(where: str, text: str) -> dict[str, Any]:
    """--input '{...}' or --input @FILE: a JSON object."""
    if text.startswith("@"):
        if not text[1:]:
            raise InputError(where, "'@' needs a file name: @FILE reads the JSON from FILE")
        text = read_text(where, pathlib.Path(text[1:]))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(where, f"not JSON: {e.msg} at line {e.lineno} column {e.colno}; "
                                "give an object such as '{\"patient_id\": 123}', or @FILE") from None
    except RecursionError:
        raise InputError(where, "nested too deeply") from None
    except ValueError as e:  # an integer of more than 4,300 digits
        raise InputError(where, f"not JSON this command can read: {e}") from None
    if not isinstance(data, dict):
        raise InputError(where, f"is {_type_name(data)}; give a JSON object such as '{{\"patient_id\": 123}}'")
    _check_values(where, data)
    return data


# Workflow files

WORKFLOW_FIELDS = ("id", "name", "steps", "edges")
STEP_FIELDS = tuple(Step.DESCRIPTOR.fields_by_name)
EDGE_FIELDS = ("from", "to", "condition", "expression")
EDGE_ALIASES = {"source_step_id": "from", "target_step_id": "to"}
EXAMPLE = "see `runstatus workflows create --help` for an example"


def _unknown_fields(where: str, data: dict[Any, Any], allowed: Sequence[str], aliases: Sequence[str] = ()) -> None:
    for key in data:
        if str(key) not in allowed and str(key) not in aliases:
            raise InputError(where, f"unknown field {str(key)!r}; the fields are {', '.join(allowed)}"
                                    f"{nearest(str(key), allowed)}")


def _text(where: str, value: Any, what: str) -> str:
    """A name or id: text (a YAML number is taken as its digits)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputError(where, f"is {_type_name(value)}; {what} is text (quote it in YAML)")
    return _unicode(where, str(value))


def _step(where: str, value: Any) -> Step:
    if isinstance(value, dict):
        _unknown_fields(where, value, STEP_FIELDS)
        if "id" not in value:
            raise InputError(where, "has no id; a step is an id, or a mapping {id, name, adaptor, body}")
        return Step(**{k: _text(f"{where}.{k}", v, k) for k, v in value.items()})
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return Step(id=str(value))
    raise InputError(where, f"is {_type_name(value)}; a step is an id, or a mapping {{id, name, adaptor, body}}")


def condition(where: str, value: Any) -> EdgeCondition.ValueType:
    text = _text(where, value, "a condition")
    name = _enum(text, "EDGE_CONDITION_")
    if name not in CONDITIONS:
        raise one_of(where, text, "a condition", CONDITIONS)
    return EdgeCondition.Value(f"EDGE_CONDITION_{name}")


EDGE_FORMS = "an edge is [from, to, CONDITION] or a mapping {from, to, condition}"


def _edge(where: str, value: Any) -> Edge:
    if isinstance(value, list):
        if len(value) not in (2, 3):
            raise InputError(where, f"has {len(value)} items; {EDGE_FORMS} (CONDITION: ALWAYS when left out)")
        cond = condition(f"{where}.condition", value[2]) if len(value) == 3 else EdgeCondition.EDGE_CONDITION_ALWAYS
        return Edge(source_step_id=_text(f"{where}.from", value[0], "a step id"),
                    target_step_id=_text(f"{where}.to", value[1], "a step id"), condition=cond)
    if isinstance(value, dict):
        _unknown_fields(where, value, EDGE_FIELDS, tuple(EDGE_ALIASES))
        fields = {EDGE_ALIASES.get(str(k), str(k)): v for k, v in value.items()}
        for required in ("from", "to"):
            if required not in fields:
                raise InputError(where, f"has no {required!r}; {EDGE_FORMS}")
        expression = _text(f"{where}.expression", fields["expression"], "an expression") \
            if "expression" in fields else ""
        default = EdgeCondition.EDGE_CONDITION_EXPRESSION if expression else EdgeCondition.EDGE_CONDITION_ALWAYS
        cond = condition(f"{where}.condition", fields["condition"]) if "condition" in fields else default
        return Edge(source_step_id=_text(f"{where}.from", fields["from"], "a step id"),
                    target_step_id=_text(f"{where}.to", fields["to"], "a step id"), condition=cond,
                    expression=expression)
    raise InputError(where, f"is {_type_name(value)}; {EDGE_FORMS}")


def _list(where: str, value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(where, f"is {_type_name(value)}; {what} are a list")
    return value


def workflow_file(where: str, path: pathlib.Path) -> tuple[str, list[Step], list[Edge], str]:
    """A workflow file (YAML or JSON): {id, name, steps, edges}, as (id, steps, edges, name)."""
    text = read_text(where, path)
    try:
        data = json.loads(text)  # JSON first: YAML reads an escaped pair such as \\ud83d\\ude00 as two halves
    except (ValueError, RecursionError):
        data = None
    try:
        data = yaml.safe_load(text) if data is None else data
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        at = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise InputError(str(path), f"not YAML or JSON: {e.problem or e.context}{at}") from None
    except (yaml.YAMLError, RecursionError, ValueError) as e:  # ValueError: an integer of more than 4,300 digits
        first = str(e).splitlines()[0] if str(e) else "nested too deeply"
        raise InputError(str(path), f"not YAML or JSON this command can read: {first}") from None
    if not isinstance(data, dict):
        raise InputError(str(path), f"is {_type_name(data)}; a workflow is a mapping with an id, a name, steps "
                                    f"and edges; {EXAMPLE}")
    _unknown_fields(str(path), data, WORKFLOW_FIELDS)
    if "id" not in data:
        raise InputError(str(path), f"has no id; a workflow is a mapping with an id, a name, steps and edges; {EXAMPLE}")
    workflow_id = _text(f"{path}: id", data["id"], "the id")
    name = _text(f"{path}: name", data["name"], "the name") if data.get("name") is not None else ""
    steps = [_step(f"{path}: steps[{i}]", s) for i, s in enumerate(_list(f"{path}: steps", data.get("steps"), "steps"))]
    edges = [_edge(f"{path}: edges[{i}]", e) for i, e in enumerate(_list(f"{path}: edges", data.get("edges"), "edges"))]
    return workflow_id, steps, edges, name
