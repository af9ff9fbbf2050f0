"""The TypeScript client installs by npm's normal means: `npm pack` builds it (prepack) into a
tarball, which a fresh project outside the repository installs offline with its peer dependency
from the npm cache (`npm ci` filled it); a plain-Node ESM program from it talks to a real server,
and its declarations type-check a TypeScript program.

The fresh project installs from a lockfile (`npm ci --offline`): `npm ci` caches tarballs by
integrity but not the registry's full metadata, which a lockless `npm install` (npm 11) asks
for, so only a locked install can be offline on a machine that has run nothing else."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pathlib
import shutil
import subprocess

import pytest

from harness import ServerProcess

ROOT = pathlib.Path(__file__).resolve().parents[1]
TS = ROOT / "clients/ts"
PACKAGE = json.loads((TS / "package.json").read_text(encoding="utf-8"))
LOCK = json.loads((TS / "package-lock.json").read_text(encoding="utf-8"))

pytestmark = pytest.mark.skipif(
    shutil.which("npm") is None or not (TS / "node_modules/.bin/tsc").exists(),
    reason="needs Node.js and the TypeScript client's npm packages (make tools)",
)

APP_MJS = """\
import { createClients, chip, errorTypeEnumName, runStatusName } from "@runstatus/client";
import { EdgeCondition } from "@runstatus/client/gen/runstatus/v1/workflow_pb";

const rs = createClients(process.argv[2], { timeoutMs: 10_000 });
try {
  await rs.workflows.createWorkflow({
    workflow: {
      id: "ts-install",
      steps: [{ id: "a" }, { id: "b" }],
      edges: [{ sourceStepId: "a", targetStepId: "b", condition: EdgeCondition.ON_SUCCESS }],
    },
  });
  const { workOrder } = await rs.workOrders.createWorkOrder({ workflowId: "ts-install" });
  const { classification } = await rs.classifier.classify({ error: { name: "TypeError", language: "javascript" } });
  console.log(runStatusName(workOrder.status), chip(classification.status), errorTypeEnumName(classification.errorType));
} finally {
  rs.close();
}
"""

# Type-checked only: the package's .d.ts files through its exports map.
TYPES_MTS = """\
import { createClients, chip, reasonOf, ErrorReason, type Clients } from "@runstatus/client";
import { EdgeCondition, type Workflow } from "@runstatus/client/gen/runstatus/v1/workflow_pb";

const rs: Clients = createClients("127.0.0.1:1", { token: "t" });
const edge: EdgeCondition = EdgeCondition.ON_FAILURE;
export async function first(): Promise<Workflow | undefined> {
  const { workflows } = await rs.workflows.listWorkflows({});
  return workflows[0];
}
export const shown: string = chip(0) + String(edge);
export const ended = (e: unknown): boolean => reasonOf(e) === ErrorReason.RUN_ENDED;
"""


def locked(name: str) -> str:
    return LOCK["packages"][f"node_modules/{name}"]["version"]


def fresh_lock(tarball: str, integrity: str, wanted: dict[str, str]) -> dict:
    """The fresh project's package-lock.json: the tarball, and what it and `wanted` need at the
    versions (and integrities) of the client's own lock."""
    packages: dict[str, dict] = {
        "": {"name": "fresh", "version": "1.0.0", "dependencies": wanted},
        "node_modules/@runstatus/client": {
            "version": PACKAGE["version"], "resolved": tarball, "integrity": integrity,
            "license": PACKAGE["license"], "dependencies": PACKAGE["dependencies"],
            "peerDependencies": PACKAGE["peerDependencies"],
            "peerDependenciesMeta": PACKAGE["peerDependenciesMeta"], "engines": PACKAGE["engines"],
        },
    }
    todo = [*PACKAGE["dependencies"], *(name for name in wanted if name != "@runstatus/client")]
    while todo:
        path = f"node_modules/{todo.pop()}"
        if path in packages:
            continue
        entry = {k: v for k, v in LOCK["packages"][path].items() if k not in ("dev", "peer")}
        packages[path] = entry
        todo += [*entry.get("dependencies", {}), *entry.get("peerDependencies", {})]
    return {"name": "fresh", "version": "1.0.0", "lockfileVersion": 3, "requires": True, "packages": packages}


def run(args: list[str], cwd: pathlib.Path) -> str:
    env = {**os.environ, "npm_config_update_notifier": "false"}
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{' '.join(args)}:\n{out.stdout}{out.stderr}"
    return out.stdout


def test_npm_package_installs_offline_and_runs_under_plain_node(server: ServerProcess,
                                                               tmp_path: pathlib.Path) -> None:
    assert PACKAGE["peerDependencies"].keys() == {"@bufbuild/protobuf", "@opentelemetry/api"}
    # OpenTelemetry's API is an optional peer (issue 32): not installed here, the client works.
    assert PACKAGE["peerDependenciesMeta"] == {"@opentelemetry/api": {"optional": True}}
    packs = tmp_path / "packs"
    packs.mkdir()
    run(["npm", "pack", "--pack-destination", str(packs)], TS)
    (tarball,) = packs.glob("*.tgz")

    project = tmp_path / "fresh"
    project.mkdir()
    assert not project.resolve().is_relative_to(ROOT)
    # The peer dependency at the version the client is built and tested with; typescript and
    # @types/node only to type-check against the shipped declarations.
    wanted = {"@runstatus/client": f"file:../packs/{tarball.name}"}
    wanted |= {name: locked(name) for name in ("@bufbuild/protobuf", "typescript", "@types/node")}
    (project / "package.json").write_text(json.dumps(
        {"name": "fresh", "version": "1.0.0", "private": True, "dependencies": wanted}))
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    lock = fresh_lock(wanted["@runstatus/client"], integrity, wanted)
    (project / "package-lock.json").write_text(json.dumps(lock, indent=2))
    run(["npm", "ci", "--offline", "--no-audit", "--no-fund"], project)

    installed = project / "node_modules"
    assert (installed / "@runstatus/client/dist/index.d.ts").is_file()
    assert not (installed / "@runstatus/client/src").exists()
    assert not (installed / "@openfn").exists(), "OpenFn's packages belong to the example only"
    assert not (installed / "@opentelemetry").exists(), "OpenTelemetry is the user's choice"

    (project / "app.mjs").write_text(APP_MJS)
    out = run(["node", "app.mjs", server.address], project)
    assert out.split() == ["RUN_STATUS_PENDING", "🔴", "ERROR_TYPE_TYPE_ERROR"]

    (project / "types.mts").write_text(TYPES_MTS)
    run(["node", "node_modules/typescript/bin/tsc", "--noEmit", "--strict", "--target", "es2022",
         "--module", "nodenext", "--moduleResolution", "nodenext", "--types", "node", "types.mts"], project)


def test_package_is_publishable() -> None:
    assert "private" not in PACKAGE
    assert PACKAGE["license"] == "Apache-2.0"
    assert not {"@openfn/runtime", "@openfn/logger"} & PACKAGE["dependencies"].keys()
    assert "@bufbuild/protobuf" in PACKAGE["devDependencies"]


def test_readme_gives_the_npm_install_line() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"npm install ./runstatus-client-{PACKAGE['version']}.tgz @bufbuild/protobuf" in readme
