"""The repository stands alone: a copy of it in an empty folder, with nothing beside it,
collects the whole suite and passes the tests that read the repository's own data files."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUTSIDE = "../" + "shared"  # spelled in two parts, so that this file does not name it


def _tracked_files() -> list[str]:
    """The files a clone gets: tracked ones, and new ones not yet committed (but not ignored)."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                         capture_output=True, check=True)
    return [name for name in out.stdout.decode().split("\0") if name and (ROOT / name).is_file()]


def test_no_file_reads_outside_the_repository() -> None:
    offenders = []
    for name in _tracked_files():
        path = ROOT / name
        if path.suffix in {".png", ".jar"} or path.stat().st_size > 2_000_000:
            continue
        if OUTSIDE in path.read_text(encoding="utf-8", errors="replace"):
            offenders.append(name)
    assert offenders == [], f"these files refer to {OUTSIDE}, which a clone does not have: {offenders}"


def test_a_copy_in_an_empty_folder_tests_green(tmp_path: pathlib.Path) -> None:
    clone = tmp_path / "empty" / "runstatus"
    for name in _tracked_files():
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, clone / name)
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == ["runstatus"]
    # The copy's own packages, not the ones installed from this checkout.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(clone / p) for p in ("clients/python", "server"))}
    where = subprocess.run(
        [sys.executable, "-c", "import runstatus, runstatus_server; print(runstatus.__file__, runstatus_server.__file__)"],
        cwd=clone, env=env, capture_output=True, text=True, check=True,
    ).stdout.split()
    assert all(pathlib.Path(p).is_relative_to(clone) for p in where), where
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    collected = subprocess.run([*pytest, "--collect-only"], cwd=clone, env=env, capture_output=True, text=True)
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    ran = subprocess.run([*pytest, "tests/test_status_table.py", "tests/test_readme.py", "tests/test_examples.py",
                          "-k", "not test_example_runs"], cwd=clone, env=env, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert " passed" in ran.stdout
