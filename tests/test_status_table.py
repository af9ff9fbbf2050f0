"""The seed table, read back from the generated descriptors, row by row.

Both seed files are parsed: the markdown (001), whose emoji were saved as
UTF-8 read as cp1252, and the plain text copy (000).
"""

from __future__ import annotations

import os
import pathlib

import pytest

from runstatus import status_table
from runstatus.v1.status_pb2 import ErrorType, RunStatus

SEEDS = pathlib.Path(
    os.environ.get("RUNSTATUS_SEEDS", pathlib.Path(__file__).resolve().parents[2] / "shared" / "seeds")
)
ABORT = {"Yes": True, "No": False, "-": None, "": None}


def _unmangle(text: str) -> str:
    try:
        return text.encode("cp1252").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def markdown_rows() -> list[dict[str, str]]:
    """The table of the markdown seed: Status | Chip | Type | Abort Run?* | Description."""
    text = next(SEEDS.glob("001_*.txt")).read_text(encoding="utf-8")
    rows = []
    for line in text.splitlines():
        if not line.startswith("|") or line.startswith("| Status") or line.startswith("| :"):
            continue
        # Strip plain spaces only: a mangled chip ends in a no-break space byte.
        cells = [cell.strip(" ") for cell in line.strip().strip("|").split("|")]
        status, chip, error_type, abort, description = cells
        rows.append(
            {
                "status": status,
                "chip": _unmangle(chip),
                "type": error_type,
                "abort": abort,
                "description": description.replace("_", "").replace("`", ""),
            }
        )
    return rows


def text_rows() -> list[list[str]]:
    """The plain seed's rows: a missing Type cell shifts the others left."""
    text = next(SEEDS.glob("000_*.txt")).read_text(encoding="utf-8")
    return [
        [cell.strip() for cell in line.split("|")]
        for line in text.splitlines()
        if line.count("|") >= 3 and not line.startswith("Status") and not line.startswith("---")
    ]


def status_by_label() -> dict[str, status_table.StatusRow]:
    return {row.label: row for row in status_table.statuses().values()}


def test_seed_files_are_there() -> None:
    assert len(markdown_rows()) == 16
    assert len(text_rows()) == 16


@pytest.mark.parametrize("row", markdown_rows(), ids=lambda r: f"{r['status']}-{r['type'] or '-'}")
def test_markdown_row_matches_descriptors(row: dict[str, str]) -> None:
    status = status_by_label()[row["status"]]
    assert status.chip == row["chip"]
    assert status.terminal == (row["status"] not in ("Pending", "Running"))
    if row["type"]:
        by_name = {t.name: t for t in status_table.error_types().values()}
        error_type = by_name[row["type"]]
        assert error_type.status == status.status
        assert error_type.example == row["description"]
        assert status.aborts_run is ABORT[row["abort"]]
    else:
        assert status.aborts_run is ABORT[row["abort"]]
        assert status.description == row["description"]


@pytest.mark.parametrize("cells", text_rows(), ids=lambda c: c[0])
def test_text_row_matches_descriptors(cells: list[str]) -> None:
    status = status_by_label()[cells[0]]
    assert status.chip == cells[1]
    if cells[2] in ABORT:  # no Type cell: Status | Chip | Abort | Description
        assert status.aborts_run is ABORT[cells[2]]
        assert status.description == cells[3]
    else:
        by_name = {t.name: t for t in status_table.error_types().values()}
        assert by_name[cells[2]].status == status.status
        assert status.aborts_run is ABORT[cells[3]]
        assert by_name[cells[2]].example == cells[4]


def test_every_status_and_error_type_carries_its_row() -> None:
    # Every value but UNSPECIFIED has options; every seed status and type is covered.
    assert set(status_table.statuses()) == set(RunStatus.values()) - {RunStatus.RUN_STATUS_UNSPECIFIED}
    assert set(status_table.error_types()) == set(ErrorType.values()) - {ErrorType.ERROR_TYPE_UNSPECIFIED}
    assert {r["status"] for r in markdown_rows()} == set(status_by_label())
    assert {r["type"] for r in markdown_rows() if r["type"]} == {
        t.name for t in status_table.error_types().values()
    }


def test_enum_numbers_are_the_contract() -> None:
    names = [
        "UNSPECIFIED", "PENDING", "RUNNING", "SUCCESS", "FAILED", "CRASHED",
        "CANCELLED", "KILLED", "EXCEPTION", "LOST", "REJECTED",
    ]
    assert [(v.name, v.number) for v in RunStatus.DESCRIPTOR.values] == [
        (f"RUN_STATUS_{n}", i) for i, n in enumerate(names)
    ]
    types = [
        "UNSPECIFIED", "JOB_ERROR", "TYPE_ERROR", "RANGE_ERROR", "SYNTAX_ERROR",
        "REFERENCE_ERROR", "SECURITY_ERROR", "IMPORT_ERROR", "OOM_ERROR", "TIMEOUT_ERROR",
    ]
    assert [(v.name, v.number) for v in ErrorType.DESCRIPTOR.values] == [
        (f"ERROR_TYPE_{n}", i) for i, n in enumerate(types)
    ]


def test_helpers() -> None:
    assert status_table.chip(RunStatus.RUN_STATUS_FAILED) == "🔴"
    assert status_table.aborts_run(RunStatus.RUN_STATUS_CRASHED)
    assert not status_table.aborts_run(RunStatus.RUN_STATUS_FAILED)
    assert not status_table.aborts_run(RunStatus.RUN_STATUS_SUCCESS)
    assert status_table.status_of(ErrorType.ERROR_TYPE_IMPORT_ERROR) == RunStatus.RUN_STATUS_KILLED
    assert status_table.is_terminal(RunStatus.RUN_STATUS_LOST)
    assert not status_table.is_terminal(RunStatus.RUN_STATUS_RUNNING)


def test_readme_shows_the_table_from_the_descriptors() -> None:
    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- status-table")
    start = readme.index("\n", start) + 1
    end = readme.index("<!-- /status-table -->")
    assert readme[start:end].strip() == status_table.markdown()
