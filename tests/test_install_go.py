"""The Go client installs by Go's normal means: its module, zipped at its version as a module
proxy serves it, is fetched with `go get` into a fresh project outside the repository, offline,
and the program built from it talks to a real server."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import zipfile

import pytest

from harness import ServerProcess

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODULE_DIR = ROOT / "clients/go"
MODULE = "github.com/runstatus/runstatus/clients/go"

MAIN_GO = """\
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/runstatus/runstatus/clients/go/client"
	runstatusv1 "github.com/runstatus/runstatus/clients/go/runstatus/v1"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rs, err := client.Dial(ctx, os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	defer rs.Close()
	answer, err := rs.Classifier.Classify(ctx, &runstatusv1.ClassifyRequest{Error: &runstatusv1.ErrorReport{
		Name: "runtime.Error", Language: "go", Message: "runtime error: index out of range [5] with length 2",
	}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(client.Version, client.Chip(answer.GetClassification().GetStatus()))
}
"""


def version() -> str:
    text = (MODULE_DIR / "client/version.go").read_text(encoding="utf-8")
    match = re.search(r'const Version = "([^"]+)"', text)
    assert match, "clients/go/client/version.go declares no Version"
    return match.group(1)


def module_files() -> list[str]:
    """The module's files as a release tag would hold them: tracked or not ignored, relative to
    clients/go (the module zip leaves out nested modules and vendor; this module has neither)."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "."], cwd=MODULE_DIR,
                         capture_output=True, text=True, check=True).stdout
    files = sorted({f for f in out.splitlines() if (MODULE_DIR / f).is_file()})
    assert not [f for f in files if f.endswith("/go.mod") or f.startswith("vendor/")]
    return files


def lay_out_proxy(proxy: pathlib.Path, tag: str) -> None:
    """<proxy>/<module>/@v/{list, tag.info, tag.mod, tag.zip}: what GOPROXY=file://<proxy> serves."""
    at_v = proxy / MODULE / "@v"
    at_v.mkdir(parents=True)
    (at_v / "list").write_text(tag + "\n")
    (at_v / f"{tag}.info").write_text(json.dumps({"Version": tag, "Time": "2026-01-01T00:00:00Z"}))
    shutil.copyfile(MODULE_DIR / "go.mod", at_v / f"{tag}.mod")
    with zipfile.ZipFile(at_v / f"{tag}.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for name in module_files():
            z.write(MODULE_DIR / name, f"{MODULE}@{tag}/{name}")


def go(args: list[str], cwd: pathlib.Path, env: dict[str, str]) -> str:
    out = subprocess.run(["go", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"go {' '.join(args)}:\n{out.stdout}{out.stderr}"
    return out.stdout


def test_go_module_installs_from_a_proxy_offline(server: ServerProcess, tmp_path: pathlib.Path) -> None:
    tag = f"v{version()}"
    proxy = tmp_path / "proxy"
    lay_out_proxy(proxy, tag)

    real_cache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True,
                                check=True).stdout.strip()
    env = dict(os.environ)
    env.update(
        # This module from the laid-out proxy, its dependencies from the machine's module cache,
        # and nothing from the network (",off" refuses whatever neither holds).
        GOPROXY=f"file://{proxy},file://{real_cache}/cache/download,off",
        # A module cache of its own, so an older v0.1.0 extracted before is never reused.
        GOMODCACHE=str(tmp_path / "modcache"),
        GONOSUMDB="github.com/runstatus",
        GOPRIVATE="",
        GOFLAGS="-mod=mod -buildvcs=false",
        GOTOOLCHAIN="local",
        GOWORK="off",
    )
    project = tmp_path / "fresh"
    project.mkdir()
    assert not project.resolve().is_relative_to(ROOT)
    (project / "main.go").write_text(MAIN_GO)
    go(["mod", "init", "example.com/fresh"], project, env)
    # The dependencies' checksums as the client module records them: the checksum database stays
    # out of an offline test, and a dependency fetched is still checked against a known hash.
    shutil.copyfile(MODULE_DIR / "go.sum", project / "go.sum")
    # `go get` records what the build needs; `go mod tidy` would also want the modules of the
    # dependencies' own tests (gonum for grpc's), which no offline cache need hold.
    go(["get", f"{MODULE}@{tag}"], project, env)
    go(["build", "-o", "fresh", "."], project, env)

    required = (project / "go.mod").read_text()
    assert f"{MODULE} {tag}" in required
    assert f"{MODULE} {tag} h1:" in (project / "go.sum").read_text()
    extracted = tmp_path / "modcache" / f"{MODULE}@{tag}"
    assert (extracted / "client/client.go").is_file()

    out = subprocess.run([str(project / "fresh"), server.address], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == f"{version()} 🔴"


def test_readme_gives_the_go_install_line() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"go get {MODULE}@v{version()}" in readme
    assert f"clients/go/v{version()}" in readme
