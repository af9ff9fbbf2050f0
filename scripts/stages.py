"""`make test`: run make targets as timed stages and print each stage's wall time at the end.

    python3 scripts/stages.py setup tools pytest-sqlite+pytest-postgres ...

Stages run in order and stop at the first failure; `a+b` runs targets a and b at once, each
with its output held back and printed whole when it ends (as make's --output-sync does), so
the two never interleave. The table at the end is printed pass or fail, so a slow or failing
stage shows in every CI log. Standard library only: it runs before the virtualenv exists.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time


def run_group(targets: list[str]) -> dict[str, tuple[float, int]]:
    """Runs the targets at once; returns each one's wall time and exit status."""
    started = time.monotonic()
    if len(targets) == 1:
        code = subprocess.call(["make", "--no-print-directory", targets[0]])
        return {targets[0]: (time.monotonic() - started, code)}
    running = {}
    for target in targets:
        out = tempfile.TemporaryFile()
        process = subprocess.Popen(["make", "--no-print-directory", target], stdout=out, stderr=subprocess.STDOUT)
        running[target] = (process, out)
    results: dict[str, tuple[float, int]] = {}
    while len(results) < len(targets):
        for target, (process, out) in running.items():
            if target in results or process.poll() is None:
                continue
            results[target] = (time.monotonic() - started, process.returncode)
            out.seek(0)
            sys.stdout.flush()
            sys.stdout.buffer.write(out.read())
            sys.stdout.buffer.flush()
            out.close()
            print(f"== {target}: {'ok' if process.returncode == 0 else 'FAILED'} "
                  f"({format_seconds(results[target][0])})", flush=True)
        time.sleep(0.5)
    return results


def format_seconds(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{seconds:.1f}s"


def main(stages: list[str]) -> int:
    began = time.monotonic()
    table: list[tuple[str, str, str]] = []
    failed = False
    for stage in stages:
        targets = stage.split("+")
        if failed:
            table.extend((target, "-", "not run") for target in targets)
            continue
        print(f"== {' and '.join(targets)}", flush=True)
        for target, (seconds, code) in run_group(targets).items():
            table.append((target, format_seconds(seconds), ("ok" if code == 0 else f"FAILED (exit {code})")
                          + (f"  (at once with {', '.join(t for t in targets if t != target)})" if len(targets) > 1 else "")))
            failed = failed or code != 0
    width = max(len(name) for name, _, _ in table)
    print("\nstage wall times (make test):")
    for name, seconds, result in table:
        print(f"  {name:<{width}}  {seconds:>7}  {result}")
    print(f"  {'total':<{width}}  {format_seconds(time.monotonic() - began):>7}  "
          f"{'FAILED' if failed else 'ok'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
