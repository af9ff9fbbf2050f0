"""`pip install runstatus-client` (its wheel, built from clients/python, with its locked
dependencies, offline) gives a working client: in a virtualenv of its own, without the server
distribution or its dependencies, the README's Python example runs against a real server;
with the `cli` extra, the command line works (with no `serve`)."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

from harness import ServerProcess

ROOT = pathlib.Path(__file__).resolve().parents[1]
WHEELS = ROOT / ".tools/wheels"
SERVER_ONLY = {"runstatus-server", "prometheus-client", "grpcio-health-checking", "grpcio-reflection"}


def test_the_client_distribution_works_without_the_server(server: ServerProcess, tmp_path: pathlib.Path) -> None:
    # The wheel, built from a copy (so that building leaves nothing in the checkout), with the
    # build backend of this environment: no network.
    source = tmp_path / "runstatus-client"
    shutil.copytree(ROOT / "clients/python", source,
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                            "--wheel-dir", str(dist), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    assert [w.name.split("-")[0] for w in dist.glob("*.whl")] == ["runstatus_client"]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python, pip = venv / "bin/python", venv / "bin/pip"
    cli = venv / "bin/runstatus"

    # Installed as a user would (`pip install runstatus-client`), offline: its dependencies come
    # from the wheels of requirements/client.txt (`make tools` downloads them, by hash), which
    # `make lock` makes from the client's own dependency list, so a dependency it forgot to
    # declare is missing here too.
    def install(requirement: str) -> None:
        installed = subprocess.run([str(pip), "install", "--quiet", "--disable-pip-version-check", "--no-index",
                                    "--find-links", str(WHEELS), "--find-links", str(dist), requirement],
                                   capture_output=True, text=True, timeout=900)
        assert installed.returncode == 0, installed.stdout + installed.stderr
        checked = subprocess.run([str(pip), "check"], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr

    # The library alone: none of the command line's packages, and the command says which extra.
    install("runstatus-client")
    library = subprocess.run([str(python), "-c", "import runstatus, importlib.util as u; "
                              "print([m for m in ('typer', 'rich', 'yaml') if u.find_spec(m)])"],
                             capture_output=True, text=True, timeout=60)
    assert library.stdout.strip() == "[]", library.stdout + library.stderr
    bare = subprocess.run([str(cli), "--help"], capture_output=True, text=True, timeout=60)
    assert bare.returncode == 1 and "pip install 'runstatus-client[cli]'" in bare.stderr, bare.stderr
    install("runstatus-client[cli]")

    listed = subprocess.run([str(pip), "list", "--format=freeze"], capture_output=True, text=True, check=True)
    names = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert "runstatus-client" in names and not names & SERVER_ONLY, names
    no_server = subprocess.run([str(python), "-c", "import runstatus_server"], capture_output=True, text=True)
    assert "No module named 'runstatus_server'" in no_server.stderr

    code = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    assert code is not None
    example = code.group(1).replace("localhost:50051", server.address)
    out = subprocess.run([str(python), "-c", example], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["🔴 RUN_STATUS_FAILED", "notify KeyError alias:python:KeyError"]

    classified = subprocess.run([str(cli), "--address", server.address, "classify", "KeyError", "--language",
                                 "python", "--json"], capture_output=True, text=True, timeout=60)
    assert classified.returncode == 0 and "RUN_STATUS_FAILED" in classified.stdout, classified.stderr
    helped = subprocess.run([str(cli), "--help"], capture_output=True, text=True, timeout=60)
    assert "classify" in helped.stdout and " serve " not in helped.stdout
    offline = subprocess.run([str(cli), "tokens", "create", "--db", str(tmp_path / "x.db"), "--role", "admin"],
                             capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "300"})
    assert offline.returncode == 2 and "pip install runstatus-server" in offline.stderr, offline.stderr
    assert not (tmp_path / "x.db").exists()


def test_the_api_reference_builds(tmp_path: pathlib.Path) -> None:
    """`make docs`' Python half: pdoc documents every public module of the client. Its only
    warnings are about the generated async stubs, which exist for type checkers alone (.pyi)."""
    command = re.search(r"\$\(BIN\)/pdoc (.*)", (ROOT / "Makefile").read_text())
    assert command is not None
    args = command.group(1).replace("docs-api/python", str(tmp_path)).split()
    built = subprocess.run([str(pathlib.Path(sys.executable).with_name("pdoc")), *args],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    warnings = [line for line in built.stderr.splitlines() if line.startswith("Warn")]
    assert all("AsyncStub" in line for line in warnings), warnings
    for page in ("runstatus/client.html", "runstatus/worker.html", "runstatus/errors.html"):
        assert (tmp_path / page).stat().st_size > 10_000, page
    assert 'id="Worker"' in (tmp_path / "runstatus/worker.html").read_text()
