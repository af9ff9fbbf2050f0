"""The benchmark's baseline: a bare grpc.aio server that does no work.

It is set up as runstatus's Server.start sets up its server (the same grpc.aio
server, the same options: message size limits and so_reuseport; health and
reflection), and answers grpc.health.v1.Health/Check from the stock health
servicer. It also answers runstatus.v1.ClassifierService/Classify with a
constant, for a baseline of the same shape as a runstatus call. Whatever
runstatus does beyond this is the cost of its own work.

    .venv/bin/python scripts/baseline_server.py --port 0

Like runstatus it logs one JSON line with "listening" and the port on stderr,
and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from runstatus.v1 import classifier_service_pb2, classifier_service_pb2_grpc
from runstatus.v1.error_pb2 import Classification
from runstatus.v1.status_pb2 import ErrorType, RunStatus

# The same values as runstatus_server.server.Settings' defaults.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
CLASSIFIER = classifier_service_pb2.DESCRIPTOR.services_by_name["ClassifierService"].full_name

# Built once: the handler does nothing but return it.
CONSTANT = classifier_service_pb2.ClassifyResponse(classification=Classification(
    status=RunStatus.RUN_STATUS_FAILED, error_type=ErrorType.ERROR_TYPE_TYPE_ERROR, aborts_run=False,
    rule="seed:TypeError",
))


class ConstantClassifier(classifier_service_pb2_grpc.ClassifierServiceServicer):
    async def Classify(self, request: classifier_service_pb2.ClassifyRequest,
                       context: grpc.aio.ServicerContext) -> classifier_service_pb2.ClassifyResponse:
        return CONSTANT


def log(message: str, **fields: object) -> None:
    print(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": "info",
                      "logger": "baseline", "message": message, **fields}), file=sys.stderr, flush=True)


async def serve(host: str, port: int, reuse_port: bool) -> None:
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", int(reuse_port)),
    ]
    server = grpc.aio.server(options=options)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    classifier_service_pb2_grpc.add_ClassifierServiceServicer_to_server(ConstantClassifier(), server)
    reflection.enable_server_reflection([CLASSIFIER, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        raise OSError(f"cannot listen on {host}:{port}")
    await server.start()
    for name in ("", CLASSIFIER):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log("listening", host=host, port=bound)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(5)
    log("stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--reuse-port", action="store_true", help="set grpc.so_reuseport, as runstatus --processes N does")
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.reuse_port))


if __name__ == "__main__":
    main()
