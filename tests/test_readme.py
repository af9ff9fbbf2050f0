"""The README's Python example runs as written against a real server."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

from harness import ServerProcess

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_python_example_runs(server: ServerProcess) -> None:
    code = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert code is not None
    source = code.group(1).replace("localhost:50051", server.address)
    out = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["🔴 RUN_STATUS_FAILED", "notify KeyError alias:python:KeyError"]
