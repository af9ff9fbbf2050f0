"""What one request may store, and why every answer then fits in one gRPC message.

A stored record that no answer can carry makes a run unreadable for good, so the limits
are chosen together: the largest answers are a claimed run (its workflow, its work order's
input, the step runs a retry reuses) and a work order with its latest run (the input, the
step runs, the run's error). `Limits.check` refuses, at start-up, limits whose sum could
not be sent.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024
# The gRPC message limit both ways (clients accept 4 MiB by default).
MAX_MESSAGE_BYTES = 4 * MIB
# An answer stops short of the limit: the frame and anything grpcio adds.
MAX_ANSWER_BYTES = MAX_MESSAGE_BYTES - 16 * 1024
# The fields around the bulk of an answer (ids, timestamps, statuses, tags).
OVERHEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class Limits:
    max_input_bytes: int = MIB  # a work order's input
    max_output_bytes: int = MIB  # one step's output
    max_run_bytes: int = 3 * MIB // 2  # the step runs of one run together, outputs and errors
    max_step_runs: int = 1000  # step runs in one run
    max_workflow_bytes: int = MIB  # one workflow version, encoded
    max_error_name: int = 256
    max_error_message: int = 64 * 1024
    max_error_stack: int = 256 * 1024
    max_short: int = 128  # worker ids, languages, ids
    max_reason: int = 1024
    max_struct_depth: int = 16

    @property
    def max_error_bytes(self) -> int:
        """A reported error with its classification, at most (its name and subtype each up to max_error_name)."""
        return 2 * self.max_error_name + self.max_error_message + self.max_error_stack + 4096

    def largest_claim(self) -> int:
        """The largest claimed run these limits allow: its workflow, its work order's input, the
        step runs a retry reuses, and what surrounds them. A run stored under other limits whose
        claim is larger is not handed out (worker_protocol.claim ends it REJECTED)."""
        return (self.max_workflow_bytes + self.max_input_bytes + self.max_run_bytes + self.max_error_bytes
                + OVERHEAD_BYTES)

    def largest_answer(self) -> int:
        """The largest answer these limits allow: a claimed run, or a work order with its run."""
        work_order = self.max_input_bytes + self.max_run_bytes + 2 * self.max_error_bytes + OVERHEAD_BYTES
        return max(self.largest_claim(), work_order)

    def check(self) -> None:
        """Raises ValueError for limits that could store a record no answer can carry."""
        for name in ("max_input_bytes", "max_output_bytes", "max_run_bytes", "max_step_runs", "max_workflow_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.max_output_bytes > self.max_run_bytes:
            raise ValueError("a step's output limit cannot be larger than the run's limit")
        if self.largest_answer() > MAX_ANSWER_BYTES:
            raise ValueError(
                f"the workflow, input and run limits add up to answers of {self.largest_answer()} bytes, "
                f"over the {MAX_ANSWER_BYTES} a gRPC message carries: lower one of them"
            )
