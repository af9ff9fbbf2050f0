"""Each language's example runs against a real server, and the README shows it as it is."""

from __future__ import annotations

import pathlib
import subprocess

import pytest

from harness import ServerProcess

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")

EXAMPLES = {
    "go": (ROOT / "clients/go/cmd/example/main.go", ["go", "run", "./cmd/example"], ROOT / "clients/go"),
    "typescript": (ROOT / "clients/ts/examples/example.ts", ["npx", "--no-install", "tsx", "examples/example.ts"],
                   ROOT / "clients/ts"),
    "java": (ROOT / "clients/java/contract/src/main/java/dev/runstatus/example/Example.java",
             ["mvn", "-q", "-B", "compile", "exec:java", "-Dexec.mainClass=dev.runstatus.example.Example"],
             ROOT / "clients/java"),
}


@pytest.mark.parametrize("language", EXAMPLES)
def test_example_runs(server: ServerProcess, language: str) -> None:
    source, command, cwd = EXAMPLES[language]
    args = [*command, server.address] if language != "java" else [*command, f"-Dexec.args={server.address}"]
    out = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert lines[0] == "⚪ RUN_STATUS_PENDING"
    assert lines[1].startswith("🔴 ERROR_TYPE_") and lines[1].endswith("aborts: false")


@pytest.mark.parametrize("language", EXAMPLES)
def test_readme_shows_the_example(language: str) -> None:
    source = EXAMPLES[language][0].read_text(encoding="utf-8").strip()
    assert source in README, f"README.md does not show {EXAMPLES[language][0].relative_to(ROOT)} as it is"
