"""Runs the contract suite in every language against one live server.

    .venv/bin/python tests/contract/run_all.py [--only LANG ...]

Starts a server on a temporary database (SQLite; a fresh PostgreSQL database under
RUNSTATUS_TEST_DB=postgres, see tests/harness.py), runs each language's runner (see README.md
here) with the server's address and this directory, prints a tally per language and a
total `N passed, N failed`, and exits non-zero if any case failed in any language or a
runner could not run.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from harness import BACKEND, ServerProcess  # noqa: E402

TALLY = re.compile(r"^(\d+) passed, (\d+) failed$", re.M)


def runners(address: str) -> dict[str, tuple[list[str], pathlib.Path]]:
    """Each language's command line and the directory it runs in."""
    cases = str(HERE)
    return {
        "python": ([sys.executable, str(HERE / "runner.py"), address, cases], ROOT),
        "go": (["go", "run", "./cmd/contract", "-addr", address, "-cases", cases], ROOT / "clients" / "go"),
        "typescript": (["npm", "run", "--silent", "contract", "--", address, cases], ROOT / "clients" / "ts"),
        "java": (["mvn", "-q", "-B", "compile", "exec:java", f"-Dexec.args={address} {cases}"], ROOT / "clients" / "java"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="languages to run (default: all)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(pathlib.Path(tmp) / "contract.db").start()
        try:
            results = {}
            for language, (command, cwd) in runners(server.address).items():
                if args.only and language not in args.only:
                    continue
                started = time.monotonic()
                out = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=1800)
                seconds = time.monotonic() - started
                tallies = TALLY.findall(out.stdout)
                failures = [line for line in out.stdout.splitlines() if line.startswith("FAIL")]
                if tallies:
                    passed, failed = map(int, tallies[-1])
                else:
                    passed, failed = 0, 1
                    failures.append(f"FAIL the {language} runner did not finish (exit {out.returncode})")
                if out.returncode != 0 and not failed:
                    failed = 1
                    failures.append(f"FAIL the {language} runner exited {out.returncode}")
                results[language] = (passed, failed)
                print(f"{language:<11} {passed} passed, {failed} failed  ({seconds:.0f}s)")
                for line in failures:
                    print(f"    {line}")
                if failures and not tallies:
                    print("    " + (out.stderr or out.stdout).strip()[-3000:].replace("\n", "\n    "))
        finally:
            server.stop()
    passed = sum(p for p, _ in results.values())
    failed = sum(f for _, f in results.values())
    print(f"contract ({BACKEND}): {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
