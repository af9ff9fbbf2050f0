"""Whether a token id exists must not show in an answer's latency (issue 26, item 9).

    RUNSTATUS_TEST_DB=postgres .venv/bin/python scripts/token_timing.py

Starts a server with --auth (the tests' harness: SQLite, or a throwaway PostgreSQL under
RUNSTATUS_TEST_DB=postgres) and times GetCallerToken refused for a wrong secret of a known
token id and of an unknown one, alternating, 600 each. Prints both medians and their ratio
(1.00: no oracle). Not a test: timings are measured, never asserted.
"""

import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))

import grpc  # noqa: E402
from harness import ServerProcess, offline_admin_token  # noqa: E402

from runstatus.v1 import token_service_pb2 as pb  # noqa: E402
from runstatus.v1 import token_service_pb2_grpc  # noqa: E402


def main() -> None:
    tmp = pathlib.Path(tempfile.mkdtemp())
    secret = offline_admin_token(tmp / "timing.db")
    server = ServerProcess(tmp / "timing.db", "--auth").start()
    try:
        stub = token_service_pb2_grpc.TokenServiceStub(grpc.insecure_channel(server.address))
        wrong = "_" + "x" * 40
        known, unknown = secret.rsplit("_", 1)[0] + wrong, "rs_0123456789abcdef" + wrong

        def refused_in(token: str) -> float:
            start = time.perf_counter()
            try:
                stub.GetCallerToken(pb.GetCallerTokenRequest(), metadata=(("authorization", f"Bearer {token}"),))
            except grpc.RpcError:
                pass
            return time.perf_counter() - start

        times: dict[str, list[float]] = {"known": [], "unknown": []}
        for i in range(650):
            for name, token in (("known", known), ("unknown", unknown)):
                took = refused_in(token)
                if i >= 50:  # the first calls warm the channel and the caches
                    times[name].append(took)
        k, u = statistics.median(times["known"]), statistics.median(times["unknown"])
        print(f"refused, known id: p50 {k * 1000:.3f} ms; unknown id: p50 {u * 1000:.3f} ms; unknown/known {u / k:.2f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
