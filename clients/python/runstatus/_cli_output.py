"""How the `runstatus` command prints: one JSON style, and tables that never cut an id.

JSON: protobuf's JSON mapping with the proto field names (snake_case, as in the .proto files),
every field printed (defaults included), enums by name, timestamps in RFC 3339, and numbers that
hold an integer printed as integers: 64-bit integer fields (strings in the mapping) and the
whole-number values of Struct fields (doubles on the wire) alike.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

_INT64 = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
          FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64}
_JSON_VALUES = {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}
EXACT_INTEGERS = 2**53


def plain_numbers(value: Any) -> Any:
    """Whole-number floats as ints, anywhere in a JSON value."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= EXACT_INTEGERS:
        return int(value)
    if isinstance(value, dict):
        return {k: plain_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_numbers(v) for v in value]
    return value


def _field_value(field: FieldDescriptor, value: Any) -> Any:
    if field.type in _INT64 and isinstance(value, str):
        return int(value)
    if field.message_type is not None:
        if field.message_type.full_name in _JSON_VALUES:
            return plain_numbers(value)
        if isinstance(value, dict):
            return _integers(field.message_type, value)
    return value


def _integers(descriptor: Any, data: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in data.items():
        field = descriptor.fields_by_name.get(key)
        if field is None:
            out[key] = value
        elif field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            out[key] = {k: _field_value(value_field, v) for k, v in value.items()}
        elif isinstance(value, list):
            out[key] = [_field_value(field, v) for v in value]
        else:
            out[key] = _field_value(field, value)
    return out


def message(m: Message) -> dict[str, Any]:
    """A message in the CLI's JSON style (see the module's docstring)."""
    data = json_format.MessageToDict(m, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    if m.DESCRIPTOR.full_name in _JSON_VALUES:
        return plain_numbers(data)  # type: ignore[no-any-return]
    return _integers(m.DESCRIPTOR, data)


def dumps(value: Any) -> str:
    return json.dumps(plain_numbers(value), indent=2, ensure_ascii=False, default=str)


# Tables

def _words(value: Text) -> int:
    return max((Text(w).cell_len for w in value.plain.split()), default=0)


def fit_widths(cells: Sequence[Sequence[Text]], ids: Sequence[int], room: int) -> list[int] | None:
    """Column widths (without padding) that fit `room`: the id columns whole, the others
    wrapped no narrower than their longest word; None when that does not fit."""
    columns = list(zip(*cells))
    natural = [max(c.cell_len for c in column) for column in columns]
    narrowest = [natural[i] if i in ids else max(_words(c) for c in column) for i, column in enumerate(columns)]
    if sum(narrowest) > room:
        return None
    widths = list(natural)
    while sum(widths) > room:
        widest = max((i for i in range(len(widths)) if widths[i] > narrowest[i]), key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def show_table(console: Console, headers: Sequence[str], rows: Sequence[Sequence[str | Text]],
               ids: Sequence[int] = (0,), title: str | None = None) -> None:
    """A table whose id columns (by index) are never wrapped or cut; the other columns wrap
    between words. When even that does not fit the terminal, one block per row instead: its
    first id alone on a line, then `header: value` lines, printed unwrapped."""
    cells = [[_styled(h, "bold") for h in headers], *([_styled(v, "") for v in row] for row in rows)]
    n = len(headers)
    widths = fit_widths(cells, ids, console.width - 3 * n + 1)  # padding of 1 on each side, a rule between
    if not rows or widths is not None:
        t = Table(title=title, show_edge=False)
        for i, header in enumerate(headers):
            t.add_column(header, no_wrap=i in ids, overflow="fold", width=widths[i] if widths else None)
        for row in rows:
            t.add_row(*row)
        console.print(t)
        return
    lines: list[Text] = [Text(title, style="bold")] if title else []
    first = ids[0] if ids else 0
    for row in rows:
        lines.append(_styled(row[first], "bold"))
        lines.extend(Text.assemble((f"  {header}: ", "dim"), _styled(row[i], ""))
                     for i, header in enumerate(headers) if i != first)
    for line in lines:
        console.print(line, soft_wrap=True)


def _styled(value: str | Text, style: str) -> Text:
    return Text(value, style=style) if isinstance(value, str) else value
