"""Running runstatus on every core: several server processes share the port with
SO_REUSEPORT (the kernel spreads connections across them) and the SQLite database (WAL
lets them read at once; writes take turns on the file lock, each process group-committing
its own). The first process is the primary: it alone sweeps leases and notifies the admin.
Each process has its own event feed (events.py); it sees the other processes' commits by
polling the event log (`watch_poll_seconds`).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time

from .server import Settings
from . import store

log = logging.getLogger("runstatus.processes")

# The serve options serve_processes sets for each child itself; the children get every other
# option as the parent was given it.
PER_PROCESS = ("port", "processes", "reuse_port", "role", "metrics_port")


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def serve_processes(settings: Settings, processes: int, child_args: list[str]) -> int:
    """Starts `processes` servers on one port and waits; SIGTERM/SIGINT stop them all.
    `child_args` are the serve options they share (all but those in PER_PROCESS)."""
    store.prepare(settings.db)  # migrated once, before any process serves
    port = settings.port or free_port(settings.host)
    children = []
    for index in range(processes):
        args = [sys.executable, "-m", "runstatus_server", "serve", *child_args, "--port", str(port),
                "--processes", "1", "--reuse-port", "--role", "primary" if index == 0 else "secondary"]
        if settings.metrics_port:  # each process has its own metrics, on the next port up
            args += ["--metrics-port", str(settings.metrics_port + index)]
        children.append(subprocess.Popen(args, env={**os.environ, "RUNSTATUS_PROCESS_INDEX": str(index)}))
    log.info("listening", extra={"host": settings.host, "port": port, "db": settings.db, "processes": processes})

    def stop(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    while any(child.poll() is None for child in children):
        if any(child.poll() not in (None, 0) for child in children):
            status = 1
            stop(signal.SIGTERM, None)  # one died: stop the rest rather than serve half
        time.sleep(0.2)
    log.info("stopped")
    return status
