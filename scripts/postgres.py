#!/usr/bin/env python3
"""A throwaway PostgreSQL: `initdb` into a temporary folder, started on a free loopback port.

    python3 scripts/postgres.py          # starts one, prints its URL, stops it on Ctrl-C
    python3 scripts/postgres.py --install  # only installs PostgreSQL if it is missing (make test)
    python3 scripts/postgres.py --serve COMMAND...  # runs COMMAND --db URL on one (make serve-postgres)

The tests use it as a module (tests/pg.py). When PostgreSQL's programs are missing it installs
Debian's `postgresql` package (as root; otherwise it says so in one line). `initdb` refuses to
run as root: as root, the cluster belongs to the `postgres` system user, which runs it.
Nothing is left behind: stop() stops the server and removes the folder.
"""

from __future__ import annotations

import glob
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SUPERUSER = "postgres"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be installed or started here (the message says why, in one line)."""


def _bin_dir() -> str | None:
    """The newest installed PostgreSQL's programs folder (Debian's layout), or the PATH's."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def ensure_installed() -> str:
    """PostgreSQL's programs folder, installing Debian's package first if there is none."""
    bin_dir = _bin_dir()
    if bin_dir:
        return bin_dir
    if os.geteuid() != 0:
        raise PostgresUnavailable("initdb not found and not root: install PostgreSQL (apt-get install postgresql)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise PostgresUnavailable(f"{' '.join(command)} failed: {last}")
    bin_dir = _bin_dir()
    if not bin_dir:
        raise PostgresUnavailable("apt-get installed postgresql, but no initdb was found in /usr/lib/postgresql/*/bin")
    return bin_dir


def free_port() -> int:
    """A loopback port nothing listens on now, chosen below the kernel's ephemeral range. A port
    the kernel hands out for bind(0) comes from that range, and an outgoing connection (a client,
    one of PostgreSQL's) can take it as its source port before the listener binds it: CI failed
    on "Address already in use" that way. Two test processes choosing at once pick at random
    from 10,000 ports, each checked."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(max(1024, low - 10000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # a machine with no room below its ephemeral range
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


class LocalPostgres:
    """One PostgreSQL cluster in a temporary folder; the superuser `postgres` logs in without
    a password over loopback (trust: nothing but this machine reaches it)."""

    def __init__(self, *, fsync: bool = True, parent: str | None = None, stat_statements: bool = False) -> None:
        """`parent`: the folder to make the cluster's folder in (default: the temporary one);
        `stat_statements`: load pg_stat_statements (BEGIN and COMMIT counted too), for benchmarks."""
        self.bin_dir = ensure_installed()
        self.fsync = fsync
        self.stat_statements = stat_statements
        self.root = tempfile.mkdtemp(prefix="runstatus-pg-", dir=parent)
        self.data = os.path.join(self.root, "data")
        self.sockets = os.path.join(self.root, "sockets")
        self.log = os.path.join(self.root, "server.log")
        self.port = 0
        # initdb and the server refuse to run as root: then they run as the postgres user.
        self.owner = "postgres" if os.geteuid() == 0 else ""
        os.mkdir(self.sockets)
        if self.owner:
            try:
                entry = pwd.getpwnam(self.owner)
            except KeyError:
                raise PostgresUnavailable("running as root, and there is no postgres system user to run initdb as") \
                    from None
            for path in (self.root, self.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", self.data, "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync",
                  "--locale=C")

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [os.path.join(self.bin_dir, program), *args]
        if self.owner:
            command = ["runuser", "-u", self.owner, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.root)
        if check and done.returncode != 0:
            detail = (done.stderr.strip() or done.stdout.strip()).splitlines()
            tail = open(self.log).read()[-2000:] if os.path.exists(self.log) else ""
            raise PostgresUnavailable(f"{program} failed: {detail[-1] if detail else done.returncode}\n{tail}")
        return done

    def start(self) -> LocalPostgres:
        """Starts the server (again, on the same port after a stop)."""
        self.port = self.port or free_port()
        options = (f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
                   f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=200")
        if self.stat_statements:
            options += " -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track_utility=on"
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "-t", "60", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stops the server; its folder stays (start() again), see remove()."""
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop", check=False)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        done = self._run("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                         "-p", str(self.port), "-U", SUPERUSER, "-d", dbname, "-c", sql)
        return done.stdout.strip()

    def create_database(self, name: str) -> str:
        """A new, empty database; its URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.remove()


def serve(command: list[str]) -> int:
    """Runs `command --db URL` on a throwaway PostgreSQL until it exits (Ctrl-C or SIGTERM stop
    it), then removes the PostgreSQL: runstatus on PostgreSQL, for trying it."""
    try:
        pg = LocalPostgres().start()
    except PostgresUnavailable as e:
        print(f"cannot start PostgreSQL: {e}", file=sys.stderr)
        return 1
    try:
        url = pg.create_database("runstatus")
        print(f"PostgreSQL for runstatus: {url} (removed when runstatus stops)", file=sys.stderr, flush=True)
        child = subprocess.Popen([*command, "--db", url])
        signal.signal(signal.SIGTERM, lambda *_: child.terminate())
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:  # the child has its own Ctrl-C: wait for it to stop
                continue
    finally:
        pg.remove()


def main() -> int:
    if sys.argv[1:] == ["--install"]:
        try:
            print(f"PostgreSQL's programs: {ensure_installed()}", flush=True)
        except PostgresUnavailable as e:
            print(f"cannot install PostgreSQL: {e}", file=sys.stderr)
            return 1
        return 0
    if sys.argv[1:2] == ["--serve"] and sys.argv[2:]:
        return serve(sys.argv[2:])
    if sys.argv[1:]:
        print("usage:\n" + "\n".join(__doc__.strip().splitlines()[2:5]), file=sys.stderr)
        return 2
    try:
        pg = LocalPostgres()
        pg.start()
    except PostgresUnavailable as e:
        print(f"cannot start PostgreSQL: {e}", file=sys.stderr)
        return 1
    try:
        print(pg.url(), flush=True)
        print("serve on it with: runstatus serve --db " + pg.url() + "   (Ctrl-C stops this PostgreSQL)",
              file=sys.stderr, flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        pg.remove()


if __name__ == "__main__":
    sys.exit(main())
