"""Structured logs: one JSON object per line on stderr.

The server's own records are JSON (JsonFormatter). gRPC's C core logs past Python, through absl
straight to file descriptor 2 (`I1207 02:47:20.350052   13785 ssl_transport_security.cc:2563]
Handshake failed ...`, as GRPC_VERBOSITY and GRPC_TRACE ask), and so may any other C code or the
interpreter itself. `relay_stderr` puts a pipe on fd 2 with a small relay process behind it, which
passes JSON lines on as they are and wraps every other line into a record (`wrap`). A process of
its own, not a thread: whatever way the server ends (SIGKILL, a crash in C), the relay still reads
the pipe to its end, so the last lines, those that say why, are not lost.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
# absl's (and older gRPC's gpr) line: severity letter, MMDD, time, thread id, file:line] message.
GRPC_LINE = re.compile(r"([IWEFD])\d{4} [\d:.]+ +\d+ ([^\s\]]+)\] ?(.*)")
GRPC_LEVELS = {"I": "info", "W": "warning", "E": "error", "F": "critical", "D": "debug"}
# The relay's pipe (its inode): --processes children inherit it on fd 2 and need no relay of their own.
PIPE_ENV = "RUNSTATUS_LOG_PIPE"
RELAY_EXIT_SECONDS = 10.0
# With tracing on (tracing.py): the current span's trace and span ids in hex, None outside one.
# None itself while tracing is off: a log line then costs what it always did.
span_ids: Callable[[], tuple[str, str] | None] | None = None


def _timestamp(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if span_ids is not None and (ids := span_ids()) is not None:
            entry["trace_id"], entry["span_id"] = ids
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class UnparsableRequests(logging.Filter):
    """aiohttp logs every HTTP request it cannot parse at error level, with a traceback: the
    client's fault, not the server's, and a way for anyone to fill the log (about 2 KB a request).
    Such records become one warning line without the traceback, at most once per `every` seconds,
    saying how many there were since the last one."""

    def __init__(self, every: float = 60.0) -> None:
        super().__init__()
        self.every = every
        self._last = -every
        self._since = 0

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is None or type(error).__module__ != "aiohttp.http_exceptions":
            return True
        self._since += 1
        now = time.monotonic()
        if now - self._last < self.every:
            return False
        self._last, count, self._since = now, self._since, 0
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg, record.args = "unparsable HTTP requests on the web port", None
        record.exc_info = record.exc_text = None
        record.requests, record.last_error = count, " ".join(str(error).split())[:200]
        return True


def setup(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.server").addFilter(UnparsableRequests())


def wrap(line: str) -> str:
    """A line written to stderr as a JSON record: a JSON object as it is; a gRPC core line with
    its own level and file:line; anything else as an error of logger "stderr" (nothing the server
    means to say goes there but through the logging module)."""
    try:
        if isinstance(json.loads(line), dict):
            return line
    except ValueError:
        pass
    core = GRPC_LINE.fullmatch(line)
    if core:
        entry = {"time": _timestamp(time.time()), "level": GRPC_LEVELS[core[1]], "logger": "grpc.core",
                 "message": core[3], "source": core[2]}
    else:
        entry = {"time": _timestamp(time.time()), "level": "error", "logger": "stderr", "message": line}
    return json.dumps(entry)


def relay_stderr() -> None:
    """From here on, fd 2 goes through the relay (see above); at exit this process gives the real
    stderr back to fd 2, which ends the pipe, and waits for the relay's last line, so that whoever
    waits for the server finds its whole log written."""
    try:
        if os.environ.get(PIPE_ENV) == str(os.fstat(2).st_ino):
            return  # a --processes child: fd 2 is its parent's relay already
    except OSError:
        return  # no stderr at all: nothing to relay to
    read_end, write_end = os.pipe()
    # A session of its own: a Ctrl-C at the terminal is for the server, not the relay.
    relay = subprocess.Popen([sys.executable, "-m", "runstatus_server.logs"], stdin=read_end, stdout=2,
                             start_new_session=True)
    os.close(read_end)
    sys.stderr.flush()
    real_stderr = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)
    os.environ[PIPE_ENV] = str(os.fstat(2).st_ino)
    atexit.register(_end_relay, relay, real_stderr)


def _end_relay(relay: subprocess.Popen[bytes], real_stderr: int) -> None:
    # After this, fd 2 is the real stderr again: gRPC wrote nothing this late in tests with
    # GRPC_TRACE=all, and a line written raw is better than one lost.
    sys.stderr.flush()
    os.dup2(real_stderr, 2)
    os.close(real_stderr)
    try:
        relay.wait(RELAY_EXIT_SECONDS)
    except subprocess.TimeoutExpired:
        pass  # stderr itself is stuck (nobody reads it): the server still exits


def _relay() -> None:
    """The relay process: the server's stderr pipe on stdin, the real stderr on stdout."""
    # A SIGTERM to every process of the service is for the server; the relay ends when the server
    # has (its pipe closes), after the server's last words.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    readers = True
    for raw in sys.stdin.buffer:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line.strip() or not readers:
            continue  # with nobody reading stderr any more, the pipe is still drained: the server never blocks on it
        left = memoryview((wrap(line) + "\n").encode())
        try:
            while left:
                left = left[os.write(1, left):]
        except OSError:
            readers = False


if __name__ == "__main__":
    _relay()
