"""runstatus: work orders, runs and their statuses, over gRPC.

The generated messages and stubs are in `runstatus.v1`; the status table,
read from the proto descriptors, is in `runstatus.status_table`.
"""

from runstatus.status_table import aborts_run, chip, is_terminal, status_of
from runstatus.v1.status_pb2 import ErrorType, RunStatus

__all__ = ["ErrorType", "RunStatus", "aborts_run", "chip", "is_terminal", "status_of"]
