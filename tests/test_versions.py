"""One version for the server and every client, and one licence (issue 28): a release names
one number, and each package carries the repository's LICENSE as it is."""

from __future__ import annotations

import json
import pathlib
import re
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def versions() -> dict[str, str]:
    pom = (ROOT / "clients/java/pom.xml").read_text()
    project = re.sub(r"<(parent|dependencies|build|dependencyManagement|modules)>.*?</\1>", "", pom, flags=re.S)
    found = {
        "runstatus-server": tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"],
        "runstatus-client (Python)": tomllib.loads((ROOT / "clients/python/pyproject.toml").read_text())["project"]["version"],
        "@runstatus/client": json.loads((ROOT / "clients/ts/package.json").read_text())["version"],
        "dev.runstatus (Java)": re.search(r"<version>([^<]+)</version>", project).group(1),  # type: ignore[union-attr]
        "Go client.Version": re.search(r'const Version = "([^"]+)"',  # type: ignore[union-attr]
                                       (ROOT / "clients/go/client/version.go").read_text()).group(1),
    }
    for module in ("client", "contract"):
        parent = re.search(r"<parent>.*?<version>([^<]+)</version>.*?</parent>",
                           (ROOT / f"clients/java/{module}/pom.xml").read_text(), re.S)
        assert parent, f"clients/java/{module}/pom.xml names no parent version"
        found[f"Java {module} module's parent"] = parent.group(1)
    return found


def test_the_server_and_every_client_share_one_version() -> None:
    found = versions()
    assert len(set(found.values())) == 1, found


def test_every_package_carries_the_repositorys_license() -> None:
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0" in license_text
    for folder in ("clients/python", "clients/go", "clients/ts", "clients/java"):
        assert (ROOT / folder / "LICENSE").read_text() == license_text, f"{folder}/LICENSE differs from LICENSE"
