"""The seed's status table, read back from the generated descriptors, row by row.

The table is kept in the repository (`tests/data/seed_status_table.md`, which says where
it comes from), so a clone tests green with nothing beside it.
"""

from __future__ import annotations

import pathlib

import pytest

from runstatus import status_table
from runstatus.v1.status_pb2 import ErrorType, RunStatus

SEED_TABLE = pathlib.Path(__file__).resolve().parent / "data" / "seed_status_table.md"
ABORT = {"Yes": True, "No": False, "-": None}


def seed_rows() -> list[dict[str, str]]:
    """The rows of the seed's table: Status | Chip | Type | Abort | Description."""
    rows = []
    for line in SEED_TABLE.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| ") or line.startswith("| Status"):
            continue
        status, chip, error_type, abort, description = (c.strip() for c in line.strip().strip("|").split("|"))
        rows.append({"status": status, "chip": chip, "type": error_type, "abort": abort, "description": description})
    return rows


def status_by_label() -> dict[str, status_table.StatusRow]:
    return {row.label: row for row in status_table.statuses().values()}


def test_the_seed_table_is_there() -> None:
    rows = seed_rows()
    assert len(rows) == 16
    assert {r["abort"] for r in rows} <= set(ABORT)


@pytest.mark.parametrize("row", seed_rows(), ids=lambda r: f"{r['status']}-{r['type'] or '-'}")
def test_seed_row_matches_descriptors(row: dict[str, str]) -> None:
    status = status_by_label()[row["status"]]
    assert status.chip == row["chip"]
    assert status.terminal == (row["status"] not in ("Pending", "Running"))
    assert status.aborts_run is ABORT[row["abort"]]
    if row["type"]:
        by_name = {t.name: t for t in status_table.error_types().values()}
        error_type = by_name[row["type"]]
        assert error_type.status == status.status
        assert error_type.example == row["description"]
    else:
        assert status.description == row["description"]


def test_every_status_and_error_type_carries_its_row() -> None:
    # Every value but UNSPECIFIED has options; every seed status and type is covered.
    assert set(status_table.statuses()) == set(RunStatus.values()) - {RunStatus.RUN_STATUS_UNSPECIFIED}
    assert set(status_table.error_types()) == set(ErrorType.values()) - {ErrorType.ERROR_TYPE_UNSPECIFIED}
    assert {r["status"] for r in seed_rows()} == set(status_by_label())
    assert {r["type"] for r in seed_rows() if r["type"]} == {
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
