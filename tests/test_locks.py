"""Every tool and library the build and tests use comes from a committed lock, and the committed
generated code was made by exactly the generators those locks pin (so `make fresh` compares
like with like, whatever upstream releases meanwhile).

The locks: requirements/*.txt (Python, hashed), tools/go.mod (code generators, grpcurl),
tools/ghz/go.mod (the benchmark's ghz), clients/go/go.sum, clients/ts/package-lock.json,
clients/java/pom.xml. `make lock` writes them; these tests say when one is missing or stale.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).resolve().parents[1]
LOCAL = {"runstatus-client", "runstatus-server"}  # this checkout's own distributions, never from an index


def python_lock(name: str) -> dict[str, str]:
    """requirements/NAME.txt as {package: version}; fails on a requirement without a hash."""
    text = (ROOT / "requirements" / f"{name}.txt").read_text()
    pins: dict[str, str] = {}
    for entry in re.split(r"\n(?=\S)", text):
        line = entry.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"([A-Za-z0-9_.-]+)==([^\s;\\]+)", line)
        assert match, f"requirements/{name}.txt: not an exact pin: {line.splitlines()[0]}"
        assert "--hash=sha256:" in entry, f"requirements/{name}.txt: {match.group(1)} has no hash"
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def pyproject(path: str) -> dict:
    return tomllib.loads((ROOT / path).read_text())


def go_requirements(path: str) -> dict[str, str]:
    text = (ROOT / path).read_text()
    return dict(re.findall(r"^\s*(?:require\s+)?([\w./-]+\.[\w./-]+)\s+(v[^\s]+)", text, re.M))


def generated(pattern: str) -> list[pathlib.Path]:
    files = sorted(ROOT.glob(pattern))
    assert files, pattern
    return files


def versions_in(files: list[pathlib.Path], regex: str) -> set[str]:
    found = set()
    for path in files:
        match = re.search(regex, path.read_text())
        assert match, f"{path.relative_to(ROOT)}: no generator version ({regex})"
        found.add(match.group(1))
    return found


@pytest.mark.parametrize("lock, lists", [
    ("dev", [("clients/python/pyproject.toml", None), ("clients/python/pyproject.toml", "cli"), ("pyproject.toml", None),
             ("pyproject.toml", "dev")]),
    ("bench", [("pyproject.toml", None), ("pyproject.toml", "dev"), ("pyproject.toml", "bench")]),
    ("client", [("clients/python/pyproject.toml", None), ("clients/python/pyproject.toml", "cli")]),
])
def test_each_python_lock_pins_every_declared_dependency_within_its_range(lock: str, lists: list) -> None:
    pins = python_lock(lock)
    for path, extra in lists:
        project = pyproject(path)["project"]
        declared = project["optional-dependencies"][extra] if extra else project["dependencies"]
        for line in declared:
            requirement = Requirement(line)
            name = canonicalize_name(requirement.name)
            if name in LOCAL:
                continue
            assert name in pins, f"{path} [{extra or 'dependencies'}] {line}: not in requirements/{lock}.txt: make lock"
            assert requirement.specifier.contains(pins[name], prereleases=True), \
                f"requirements/{lock}.txt has {name}=={pins[name]}, {path} asks {line}: make lock"


def test_the_python_locks_agree_and_the_installed_environment_is_the_lock() -> None:
    dev, bench, client, uv = python_lock("dev"), python_lock("bench"), python_lock("client"), python_lock("uv")
    for name, other in (("bench", bench), ("client", client), ("uv", uv)):
        differ = {p: (dev[p], v) for p, v in other.items() if p in dev and dev[p] != v}
        assert not differ, f"requirements/{name}.txt differs from dev.txt: {differ}"
    assert "setuptools" in dev and "uv" in dev, "make setup installs the checkout with both, from the lock"
    # What `make setup` installed is exactly dev.txt (uv pip sync), plus the checkout itself.
    frozen = subprocess.run([sys.executable, "-m", "pip", "list", "--format=json"], capture_output=True,
                            text=True, check=True).stdout
    installed = {canonicalize_name(p["name"]): p["version"] for p in json.loads(frozen)}
    wrong = {p: (v, installed.get(p)) for p, v in dev.items() if installed.get(p, v) != v}
    assert not wrong, f"installed versions differ from requirements/dev.txt (lock: installed): {wrong}"


def test_the_python_code_generators_are_pinned_exactly() -> None:
    dev_extra = {canonicalize_name(Requirement(r).name): Requirement(r)
                 for r in pyproject("pyproject.toml")["project"]["optional-dependencies"]["dev"]}
    for generator in ("grpcio-tools", "mypy-protobuf", "buf-bin"):
        specifiers = list(dev_extra[generator].specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", f"{generator}: pin it exactly"


def test_the_committed_python_code_was_made_by_the_locked_grpcio_tools() -> None:
    tools = python_lock("dev")["grpcio-tools"]
    assert versions_in(generated("clients/python/runstatus/v1/*_pb2_grpc.py"),
                       r"GRPC_GENERATED_VERSION = '([^']+)'") == {tools}
    # The messages carry the version of the protoc that grpcio-tools bundles.
    protoc = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "--version"], capture_output=True,
                            text=True, check=True).stdout.split()[-1]
    made_with = versions_in(generated("clients/python/runstatus/v1/*_pb2.py"), r"# Protobuf Python Version: (\S+)")
    assert len(made_with) == 1 and made_with.pop().endswith(protoc), protoc


def test_the_committed_go_code_was_made_by_the_locked_generators() -> None:
    tools = go_requirements("tools/go.mod")
    messages = [path for path in generated("clients/go/runstatus/v1/*.pb.go") if not path.name.endswith("_grpc.pb.go")]
    assert versions_in(messages,
                       r"//\s+protoc-gen-go (v\S+)") == {tools["google.golang.org/protobuf"]}
    assert versions_in(generated("clients/go/runstatus/v1/*_grpc.pb.go"),
                       r"// - protoc-gen-go-grpc (v?\S+)") == {tools["google.golang.org/grpc/cmd/protoc-gen-go-grpc"]}


def test_the_committed_typescript_code_was_made_by_the_locked_protoc_gen_es() -> None:
    lock = json.loads((ROOT / "clients/ts/package-lock.json").read_text())
    locked = lock["packages"]["node_modules/@bufbuild/protoc-gen-es"]["version"]
    assert versions_in(generated("clients/ts/src/gen/**/*.ts"),
                       r"// @generated by protoc-gen-es v(\S+)") == {locked}


def test_go_modules_are_locked() -> None:
    for module in ("tools", "tools/ghz", "tools/otelcol", "clients/go"):
        text = (ROOT / module / "go.mod").read_text()
        assert "replace" not in text, f"{module}/go.mod: a replace directive escapes the lock"
        assert (ROOT / module / "go.sum").stat().st_size > 0, f"{module}/go.sum missing: make lock"
    tool_lines = re.findall(r"^\s+([\w./-]+/cmd/[\w-]+)$", (ROOT / "tools/go.mod").read_text(), re.M)
    assert set(tool_lines) >= {"google.golang.org/protobuf/cmd/protoc-gen-go",
                               "google.golang.org/grpc/cmd/protoc-gen-go-grpc",
                               "github.com/fullstorydev/grpcurl/cmd/grpcurl"}, tool_lines


def test_npm_dependencies_are_exact_and_the_lock_has_an_integrity_for_each() -> None:
    package = json.loads((ROOT / "clients/ts/package.json").read_text())
    for section in ("dependencies", "devDependencies"):
        for name, version in package[section].items():
            assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"package.json {name}: {version} is a range"
    lock = json.loads((ROOT / "clients/ts/package-lock.json").read_text())
    unhashed = [path for path, entry in lock["packages"].items()
                if path and not entry.get("link") and "integrity" not in entry]
    assert not unhashed, unhashed


def test_maven_plugins_and_dependencies_have_fixed_versions() -> None:
    # clients/java/pom.xml is the parent of client/ and contract/: a module's plugin without a
    # version takes the one the parent pins, and ${...} reads the parent's properties too.
    parent = (ROOT / "clients/java/pom.xml").read_text()
    managed = parent.split("<pluginManagement>")[1].split("</pluginManagement>")[0]
    # A BOM the parent imports (at a fixed version, checked below) fixes its family's versions:
    # OpenTelemetry's instrumentation BOM those of io.opentelemetry and its instrumentation.
    boms = [re.search(r"<groupId>([^<]+)</groupId>", block).group(1).rsplit(".", 1)[0]
            for block in re.findall(r"<dependency>(.*?)</dependency>", parent, re.S) if "<scope>import</scope>" in block]
    for path in ("clients/java/pom.xml", "clients/java/client/pom.xml", "clients/java/contract/pom.xml"):
        pom = (ROOT / path).read_text()
        properties = {"project.version": re.search(r"<version>([^<]+)</version>", parent).group(1)}
        for text in (parent, pom):
            if "<properties>" in text:
                section = text.split("<properties>")[1].split("</properties>")[0]
                properties.update(re.findall(r"<([\w.-]+)>([^<]+)</\1>", section))
        for kind, block in re.findall(r"<(plugin|dependency|extension)>(.*?)</\1>", pom, re.S):
            artifact = re.search(r"<artifactId>([^<]+)</artifactId>", block)
            version = re.search(r"<version>([^<]+)</version>", block)
            assert artifact, f"{path}: {block.strip()[:80]}"
            if not version and kind == "plugin" and path != "clients/java/pom.xml":
                in_parent = re.search(rf"<artifactId>{artifact.group(1)}</artifactId>\s*<version>", parent)
                assert in_parent, f"{path} {artifact.group(1)}: no version here or in the parent"
                continue
            group = re.search(r"<groupId>([^<]+)</groupId>", block)
            if not version and kind == "dependency" and group and group.group(1).startswith(tuple(boms)):
                continue
            assert version, f"{path}: {block.strip()[:80]} has no version"
            value = re.sub(r"\$\{([^}]+)\}", lambda m: properties[m.group(1)], version.group(1))
            # A release's qualifier (OpenTelemetry's instrumentation BOM is "2.31.1-alpha") is as
            # fixed as its number; a range, LATEST or a SNAPSHOT is not.
            fixed = re.fullmatch(r"\d+(\.\d+)*(-[A-Za-z][A-Za-z0-9.]*)?", value) and "SNAPSHOT" not in value
            assert fixed, f"{path} {artifact.group(1)}: {value} is not a fixed version"
        # The executables the build runs (protoc, the grpc-java plugin) are versioned the same way.
        for artifact in re.findall(r"<(?:protocArtifact|pluginArtifact)>([^<]+)<", pom):
            assert re.search(r":\$\{[\w.-]+\}:exe:", artifact), artifact
    # The default lifecycle's plugins (surefire, jar, …) and the release's (sources, javadoc) are
    # pinned in the parent, not left to Maven's own choice.
    for plugin in ("maven-clean-plugin", "maven-resources-plugin", "maven-compiler-plugin", "maven-surefire-plugin",
                   "maven-jar-plugin", "maven-install-plugin", "maven-deploy-plugin", "maven-source-plugin",
                   "maven-javadoc-plugin"):
        assert f"<artifactId>{plugin}</artifactId>" in managed, plugin


def test_the_makefile_installs_only_from_the_locks() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipes = [line.strip() for line in makefile.splitlines() if line.startswith("\t")]
    for line in recipes:
        assert not re.search(r"go (install|get) \S+@", line), f"Makefile: {line}: use tools/go.mod"
        assert "npm install" not in line, f"Makefile: {line}: npm ci installs from the lock"
        if re.search(r"\b(pip|uv pip) install\b", line):
            assert "--require-hashes" in line or "--no-deps" in line, f"Makefile: {line}: not from a lock"
