"""The Java client installs by Maven's normal means: `mvn install` of clients/java (built from a
copy holding only clients/java and proto/, so nothing else of the repository is needed), then a
fresh project outside the repository that depends on dev.runstatus:runstatus-client:0.1.0 builds
offline (-o) from the local repository and calls a real server.

The install goes to the default local repository (~/.m2): Maven 3.8 has no chained local
repository, and a temporary one would download every dependency again. Each run installs anew
before the fresh project reads it, so it never sees an older build."""

from __future__ import annotations

import os
import pathlib
import pwd
import re
import shutil
import subprocess
import zipfile

import pytest

from harness import ServerProcess

ROOT = pathlib.Path(__file__).resolve().parents[1]
VERSION = "0.1.0"
# Maven's ~ is Java's user.home: the account's home directory, whatever $HOME says.
INSTALLED = pathlib.Path(pwd.getpwuid(os.getuid()).pw_dir, ".m2/repository/dev/runstatus/runstatus-client", VERSION)

APP_MAIN = """\
package app;

import dev.runstatus.client.RunstatusClient;
import dev.runstatus.client.StatusTable;
import dev.runstatus.v1.ClassifyRequest;
import dev.runstatus.v1.Classification;
import dev.runstatus.v1.ErrorReport;

public final class Main {
  public static void main(String[] args) {
    try (RunstatusClient rs = RunstatusClient.connect(args[0])) {
      Classification c = rs.classifier().classify(ClassifyRequest.newBuilder()
          .setError(ErrorReport.newBuilder().setName("java.lang.NullPointerException").setLanguage("java"))
          .build()).getClassification();
      System.out.println("classified " + c.getStatus() + " " + StatusTable.label(c.getStatus()));
    }
  }
}
"""


def parent_plugin_version(artifact: str) -> str:
    """The version clients/java/pom.xml pins, so that the fresh project finds the plugin offline."""
    pom = (ROOT / "clients/java/pom.xml").read_text()
    match = re.search(rf"<artifactId>{artifact}</artifactId>\s*<version>([^<]+)</version>", pom)
    assert match, artifact
    return match.group(1)


def app_pom() -> str:
    plugins = "".join(
        f"<plugin><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
        f"<version>{parent_plugin_version(artifact)}</version></plugin>\n"
        for group, artifact in (("org.apache.maven.plugins", "maven-resources-plugin"),
                                ("org.apache.maven.plugins", "maven-compiler-plugin"),
                                ("org.codehaus.mojo", "exec-maven-plugin")))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>app</groupId>
  <artifactId>app</artifactId>
  <version>1</version>
  <properties>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
    <maven.compiler.release>17</maven.compiler.release>
  </properties>
  <dependencies>
    <dependency>
      <groupId>dev.runstatus</groupId>
      <artifactId>runstatus-client</artifactId>
      <version>{VERSION}</version>
    </dependency>
  </dependencies>
  <build><plugins>
{plugins}  </plugins></build>
</project>
"""


def mvn(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    # Without it Maven 3.8's Jansi writes ESC[0m around the output (clients/java/.mvn/jvm.config).
    env = {**os.environ, "MAVEN_OPTS": "-Djansi.noreset=true"}
    out = subprocess.run(["mvn", "-q", "-B", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


@pytest.mark.sqlite_only("the install does not depend on the backend; two runs at once would share ~/.m2")
@pytest.mark.timeout(900)  # two Maven builds: ~50 s on a quiet machine, past 120 s on a busy one
def test_the_installed_client_builds_and_runs_from_a_fresh_project_offline(
        server: ServerProcess, tmp_path: pathlib.Path) -> None:
    source = tmp_path / "checkout"
    shutil.copytree(ROOT / "clients/java", source / "clients/java", ignore=shutil.ignore_patterns("target"))
    shutil.copytree(ROOT / "proto", source / "proto")
    mvn("install", "-DskipTests", cwd=source / "clients/java")

    # A release: the jar, its sources and javadoc, and a POM that says what it is.
    for suffix in ("", "-sources", "-javadoc"):
        assert (INSTALLED / f"runstatus-client-{VERSION}{suffix}.jar").is_file(), suffix
    pom = (INSTALLED / f"runstatus-client-{VERSION}.pom").read_text()
    assert all(tag in pom for tag in ("<name>", "<description>", "<url>")), pom
    parent = (INSTALLED.parents[1] / "runstatus-parent" / VERSION / f"runstatus-parent-{VERSION}.pom").read_text()
    assert "<name>Apache-2.0</name>" in parent and "<scm>" in parent, "licenses and scm, inherited"
    # The contract runner and the example, and what only they use, stay out of it.
    assert "gson" not in pom and "protobuf-java-util" not in pom
    with zipfile.ZipFile(INSTALLED / f"runstatus-client-{VERSION}.jar") as jar:
        names = jar.namelist()
    assert "dev/runstatus/client/RunstatusClient.class" in names
    assert "dev/runstatus/v1/WorkerServiceGrpc.class" in names
    assert not [n for n in names if n.startswith(("dev/runstatus/contract/", "dev/runstatus/example/"))]

    app = tmp_path / "app"
    (app / "src/main/java/app").mkdir(parents=True)
    (app / "pom.xml").write_text(app_pom())
    (app / "src/main/java/app/Main.java").write_text(APP_MAIN)
    out = mvn("-o", "compile", "exec:java", "-Dexec.mainClass=app.Main", f"-Dexec.args={server.address}", cwd=app)
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert lines == ["classified RUN_STATUS_FAILED Failed"], out.stdout
