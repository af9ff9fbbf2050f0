"""runstatus: work orders, runs and their statuses, over gRPC.

`Client` and `AsyncClient` call the server; `Worker` and `AsyncWorker` execute runs,
following the plan's edge rules in `runstatus.plan` (the server's own); the generated
messages and stubs are in `runstatus.v1`; the status table, read from the proto
descriptors, is in `runstatus.status_table`.
"""

from runstatus import v1
from runstatus.client import AsyncClient, Client
from runstatus.errors import RunstatusError
from runstatus.status_table import aborts_run, chip, is_terminal, status_of
from runstatus.v1.error_reason_pb2 import ErrorReason
from runstatus.v1.status_pb2 import ErrorType, RunStatus
from runstatus.worker import AsyncWorker, RunOutcome, Worker

__all__ = [
    "AsyncClient", "AsyncWorker", "Client", "ErrorReason", "ErrorType", "RunOutcome", "RunStatus", "RunstatusError",
    "Worker", "aborts_run", "chip", "is_terminal", "status_of", "v1",
]
