"""Pages encoded on several processes, written in order. Encoding (protobuf to JSON) is nearly all
of an export's CPU, and the reading must stay one keyset walk: so the walk stays here, a few pages
ahead of the writer, and each page is encoded by a worker process. The first page is encoded here:
an export that fits in one page starts no process."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Iterator
from multiprocessing.pool import AsyncResult

from .batches import Batch, Page, encode

HELD = {signal.SIGINT, signal.SIGTERM}


def default_jobs() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0))))


def _worker_signals() -> None:
    # Ctrl-C reaches the whole process group: the export stops in the parent, after a whole page.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The parent's SIGTERM handler (stop after the page) is not a worker's: the pool ends its
    # workers with SIGTERM, which must end them there and then.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD)  # held from the fork until these were set


def encoded(pages: Iterator[Page], jobs: int) -> Iterator[Batch]:
    """Each page's Batch, in the pages' order, `jobs` processes encoding (1: here, in turn)."""
    first = next(pages, None)
    if first is None:
        return
    yield encode(first)
    if jobs <= 1:
        yield from map(encode, pages)
        return
    second = next(pages, None)
    if second is None:
        return
    # fork: workers start at once, with this module loaded (spawn would import everything again);
    # they only encode what they are handed. They are forked with SIGINT and SIGTERM held, so that
    # none runs the parent's handlers before it has its own.
    signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
    try:
        pool = multiprocessing.get_context("fork").Pool(jobs, initializer=_worker_signals)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD)
    with pool:
        pending: deque[AsyncResult[Batch]] = deque()
        for page in itertools.chain([second], pages):
            pending.append(pool.apply_async(encode, (page,)))
            if len(pending) >= 2 * jobs:  # read ahead this far, no farther: memory stays a few pages
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
