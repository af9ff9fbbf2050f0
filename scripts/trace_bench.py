"""What traces cost (issue 32): CreateWorkOrder with tracing off, on with every call sampled,
and on with the parent-based 10% sampler, against the same build, in one run; and, with
--untraced-src, tracing off against a build without the instrumentation.

    PATH=.tools/bin:$PATH .venv/bin/python scripts/trace_bench.py               # SQLite
    PATH=.tools/bin:$PATH .venv/bin/python scripts/trace_bench.py --backend postgres
    git worktree add --detach /tmp/wt-untraced b52af9d^      # the commit before the tracing
    PATH=.tools/bin:$PATH .venv/bin/python scripts/trace_bench.py --untraced-src /tmp/wt-untraced
    (`make tools` builds ghz's prerequisites; `make bench` builds ghz into .tools/bin)

The servers, each on a fresh database of its own (SQLite: a file; --backend postgres: a
database of one PostgreSQL cluster the script starts, scripts/postgres.py's LocalPostgres with
fsync on, as scripts/bench.py does), started once, with scripts/bench.py's Server:
  off        runstatus serve                                     (this checkout, or --server-src)
  on         runstatus serve --otel, OTEL_TRACES_SAMPLER=always_on
  10%        runstatus serve --otel, OTEL_TRACES_SAMPLER=parentbased_traceidratio, ARG=0.1
  untraced   runstatus serve from --untraced-src (a checkout of a commit before the tracing)
A server from another checkout runs with that checkout's server and Python client first on
PYTHONPATH (bench.py's --server-src does the same). The traced two export over OTLP/gRPC to a
receiver in this process (opentelemetry-proto's TraceService, on a real port; it keeps what it
is sent, and counts the spans in it once the measurements are over). Load is ghz, unary
CreateWorkOrder at --concurrency for --seconds; ghz sends no traceparent, so each call is a
root (the 10% server samples a tenth of them).

The servers take turns, round after round (the order rotating). Each one's median calls/s is
compared with off's (and off's with untraced's), and so is each round's, the servers of one
round being measured minutes apart at most: the machine is shared, so a round that another
process disturbed shows as spread between rounds. The server's CPU per call (its process's
user + system time over the calls of its turns; on PostgreSQL the cluster's too, which serves
one loaded server at a time) is steadier than calls/s on a busy machine, and says where the
time goes.

Targets (issue 32): off >= 0.98x of untraced; on >= 0.85x of off; parent-based 10% >= 0.95x.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from concurrent import futures
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import bench  # noqa: E402 - scripts/bench.py: its Server, runstatus_server, start_postgres

WORKFLOW = "trace-bench"
CALL = "runstatus.v1.WorkOrderService.CreateWorkOrder"
# name: (what it is compared with, the target ratio)
TARGETS = {"off": ("untraced", 0.98), "on": ("off", 0.85), "10%": ("off", 0.95), "0%": ("off", 0.0)}


class Receiver:
    """An OTLP/gRPC trace receiver that counts the spans it is sent, per service name. It keeps
    each request's bytes and decodes them when asked (after the measurements): decoding them as
    they come would take this process's CPU, on the 2 cores the servers are measured on, for the
    traced servers' turns only."""

    def __init__(self) -> None:
        import grpc

        self._received: list[bytes] = []
        self._lock = threading.Lock()

        def export(data: bytes, context: Any) -> bytes:
            with self._lock:
                self._received.append(data)
            return b""  # an empty ExportTraceServiceResponse: everything accepted

        handler = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.trace.v1.TraceService",
            {"Export": grpc.unary_unary_rpc_method_handler(export)})
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def counts(self) -> dict[str, int]:
        """The spans received so far, by service name (each request decoded once)."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        with self._lock:
            received = list(self._received)
        spans: dict[str, int] = {}
        for data in received:
            for resource_spans in ExportTraceServiceRequest.FromString(data).resource_spans:
                service = next((kv.value.string_value for kv in resource_spans.resource.attributes
                                if kv.key == "service.name"), "")
                spans[service] = spans.get(service, 0) + sum(len(scope.spans) for scope in resource_spans.scope_spans)
        return spans


def ghz(address: str, work: pathlib.Path, concurrency: int, seconds: float) -> dict[str, float]:
    data = work / "data.json"
    if not data.exists():
        data.write_text(json.dumps({"workflow_id": WORKFLOW, "input": {"patient": 123, "source": "trace-bench"}}))
    out = subprocess.run(
        ["ghz", "--insecure", "--protoset", str(work / "runstatus.protoset"), "--call", CALL,
         "--data-file", str(data), "-c", str(concurrency), "--connections", "1", "-z", f"{seconds}s",
         "--duration-stop", "ignore", "-t", "20s", "-O", "json", address],
        capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():
        raise RuntimeError(f"ghz failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}")
    report = json.loads(out.stdout)
    ok = int((report.get("statusCodeDistribution") or {}).get("OK", 0))
    errors = sum(int(n) for code, n in (report.get("statusCodeDistribution") or {}).items() if code != "OK")
    latency = {int(d["percentage"]): d["latency"] / 1e6 for d in report.get("latencyDistribution") or []}
    return {"ok": ok, "errors": errors, "rps": ok / (report["total"] / 1e9),
            "p50": latency.get(50, 0.0), "p99": latency.get(99, 0.0)}


def checkout(path: pathlib.Path, parser: argparse.ArgumentParser, option: str) -> dict[str, str]:
    """The environment that runs a server from another checkout: its server and Python client
    first on PYTHONPATH (as bench.py's --server-src)."""
    src = path.resolve()
    if not (src / "server" / "runstatus_server").is_dir():
        parser.error(f"{option} {src}: no server/runstatus_server in it")
    return {"PYTHONPATH": os.pathsep.join([str(src / "server"), str(src / "clients" / "python")])}


def described(path: pathlib.Path | None) -> str:
    """A checkout, as its commit (and whether its tree has changes)."""
    where = path.resolve() if path else ROOT
    try:
        commit = subprocess.run(["git", "-C", str(where), "log", "-1", "--format=%h %s"],
                                capture_output=True, text=True, check=True).stdout.strip()[:72]
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no", "server"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return str(where)
    return f"{where} at {commit}" + (" (server/ has uncommitted changes)" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seconds", type=float, default=5.0, help="each measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="each server's warm-up, once")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--server-src", type=pathlib.Path, default=None, metavar="DIR",
                        help="run the off, on and 10%% servers from this checkout (default: this one)")
    parser.add_argument("--untraced-src", type=pathlib.Path, default=None, metavar="DIR",
                        help="also run a server from this checkout of a commit before the tracing "
                             "(e.g. `git worktree add --detach /tmp/wt-untraced b52af9d^`), with tracing off's target")
    parser.add_argument("--servers", default="", metavar="NAMES",
                        help="only these of off,on,10%%,untraced,0%% (comma-separated; default: all but 0%%, a "
                             "diagnostic: the sampler sampling nothing), e.g. off,untraced")
    args = parser.parse_args()
    if shutil.which("ghz") is None:
        sys.exit("ghz is not on PATH: `make bench` builds it into .tools/bin (PATH=.tools/bin:$PATH)")
    from runstatus import Client

    source = checkout(args.server_src, parser, "--server-src") if args.server_src else {}
    configs: dict[str, tuple[dict[str, str], list[str]]] = {
        "off": (source, []),
        "on": ({**source, "OTEL_TRACES_SAMPLER": "always_on"}, ["--otel"]),
        "10%": ({**source, "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
                ["--otel"]),
    }
    # Diagnostic, asked for by name only: the 10% server's sampler sampling nothing, which
    # parts what every call pays (parse, sample, attach) from what the sampled tenth costs.
    configs["0%"] = ({**source, "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"},
                     ["--otel"])
    if args.untraced_src:
        configs["untraced"] = (checkout(args.untraced_src, parser, "--untraced-src"), [])
    if args.servers:
        wanted = [name.strip() for name in args.servers.split(",") if name.strip()]
        if unknown := [name for name in wanted if name not in configs]:
            parser.error(f"--servers: {', '.join(unknown)} not among {', '.join(configs)} (untraced needs --untraced-src)")
        configs = {name: configs[name] for name in wanted}
    else:
        del configs["0%"]
    receiver = Receiver()
    work = pathlib.Path(tempfile.mkdtemp(prefix="trace-bench-"))
    bench.write_protoset(work / "runstatus.protoset")
    pg = bench.start_postgres(work) if args.backend == "postgres" else None
    servers: dict[str, bench.Server] = {}
    warm_calls: dict[str, int] = {}
    try:
        print(f"servers: {described(args.server_src)}" + (
            f"; untraced: {described(args.untraced_src)}" if args.untraced_src else ""), flush=True)
        for name, (env, flags) in configs.items():
            label = name.strip("%")
            db: str | pathlib.Path = work / f"{label}.db" if pg is None else pg.create_database(f"trace_{label}")
            server = bench.runstatus_server(f"runstatus-{label}", db, work, *flags)
            server.env = {**server.env, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
                          "OTEL_SERVICE_NAME": f"runstatus-{name}", **env}
            if pg is not None:
                server.database, server.dbname = pg, str(db).rsplit("/", 1)[-1]
            servers[name] = server.start()
            with Client(server.address) as rs:
                rs.create_workflow(WORKFLOW, ["a"])
            warm = ghz(server.address, work, args.concurrency, args.warmup)
            warm_calls[name] = int(warm["ok"] + warm["errors"])
        print(f"CreateWorkOrder, {args.backend}, concurrency {args.concurrency}, {args.rounds} rounds of "
              f"{args.seconds:g} s per server (load average {os.getloadavg()[0]:.1f})", flush=True)
        names = list(configs)
        results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        calls = {name: 0 for name in names}  # calls made in the rounds
        loads: list[float] = [os.getloadavg()[0]]
        for round_ in range(args.rounds):
            turn = names[round_ % len(names):] + names[:round_ % len(names)]
            for name in turn:
                server = servers[name]
                cpu = sum(server.cpu_by_process().values()) + (sum(bench.database_cpu(pg).values()) if pg else 0.0)
                result = ghz(server.address, work, args.concurrency, args.seconds)
                cpu = sum(server.cpu_by_process().values()) + (
                    sum(bench.database_cpu(pg).values()) if pg else 0.0) - cpu
                made = int(result["ok"] + result["errors"])
                result["cpu_us"] = cpu / made * 1e6 if made else 0.0
                results[name].append(result)
                calls[name] += made
            loads.append(os.getloadavg()[0])
            print(f"  round {round_ + 1}: " + ", ".join(
                f"{name} {results[name][-1]['rps']:.0f}/s ({results[name][-1]['cpu_us']:.0f} µs CPU)"
                for name in names) + f"; load {loads[-1]:.1f}", flush=True)
        for name in names:  # the spans still held go out as each server stops
            servers.pop(name).stop()
        report(args, names, results, calls, warm_calls, receiver, loads, pg is not None)
    finally:
        for server in servers.values():
            server.stop()
        receiver.server.stop(0)
        if pg is not None:
            bench.DATABASES.remove(pg)
            pg.remove()
        shutil.rmtree(work, ignore_errors=True)


def report(args: argparse.Namespace, names: list[str], results: dict[str, list[dict[str, float]]],
           calls: dict[str, int], warm_calls: dict[str, int], receiver: Receiver, loads: list[float],
           postgres: bool) -> None:
    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    def paired(name: str, base: str) -> float:
        """The median of the rounds' ratios (each round's two measurements minutes apart at most)."""
        return statistics.median(a["rps"] / b["rps"] for a, b in zip(results[name], results[base]) if b["rps"])

    cpu = "CPU µs/call" + (" (+PostgreSQL)" if postgres else "")
    print()
    print(f"{'server':9} {'calls/s':>8} {'vs':>9} {'ratio':>6} {'rounds':>6} {'target':>12} {cpu:>12} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'spans/call':>10} {'errors':>6}")
    spans = receiver.counts()
    for name in names:
        rps = median(name, "rps")
        base, target = TARGETS.get(name, ("", 0.0))
        if base in results:
            ratio, by_round = rps / median(base, "rps"), paired(name, base)
            verdict = f">={target:.2f} {'met' if ratio >= target else 'NOT met'}" if target else ""
            compared = f"{ratio:6.3f} {by_round:6.3f}"
        else:
            base, verdict, compared = "", "", f"{'':6} {'':6}"
        sent, made = spans.get(f"runstatus-{name}", 0), calls[name] + warm_calls[name]
        print(f"{name:9} {rps:8.0f} {base:>9} {compared} {verdict:>12} {median(name, 'cpu_us'):12.0f} "
              f"{median(name, 'p50'):7.2f} {median(name, 'p99'):7.2f} {(sent / made if made else 0):10.2f} "
              f"{int(sum(r['errors'] for r in results[name])):6}")
    print("\nratio: of the median calls/s; rounds: the median of each round's ratio")
    print("rounds' calls/s: " + "; ".join(
        f"{name} " + " ".join(f"{r['rps']:.0f}" for r in results[name]) for name in names))
    print(f"load average (1 min) at each round's end: {' '.join(f'{x:.1f}' for x in loads)} "
          f"({os.cpu_count()} cores, shared)")


if __name__ == "__main__":
    main()
