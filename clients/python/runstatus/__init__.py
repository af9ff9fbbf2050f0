"""runstatus: work orders, runs and their statuses, over gRPC.

`Client` and `AsyncClient` call the server; `Worker` executes runs; the generated
messages and stubs are in `runstatus.v1`; the status table, read from the proto
descriptors, is in `runstatus.status_table`.
"""

from runstatus import v1
from runstatus.client import AsyncClient, Client
from runstatus.errors import RunstatusError
from runstatus.status_table import aborts_run, chip, is_terminal, status_of
from runstatus.v1.error_reason_pb2 import ErrorReason
from runstatus.v1.status_pb2 import ErrorType, RunStatus

__all__ = [
    "AsyncClient", "Client", "ErrorReason", "ErrorType", "RunStatus", "RunstatusError", "aborts_run", "chip", "is_terminal",
    "status_of", "v1",
]
