"""Watching at scale (events.py): one reader of the event log per process fans events out to
every watcher; a watcher resumes from its cursor exactly once; a watcher whose client does
not read is cut off (WATCH_TOO_SLOW) and resumes; watch streams are limited."""

from __future__ import annotations

import pathlib
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from harness import Client, ServerProcess, details, eventually, free_port, running_server, scrape
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1 import work_order_service_pb2_grpc as wo_grpc



def metric(port: int, name: str) -> float:
    text = scrape(port)
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def watches_open(port: int, n: int, what: str = "", timeout: float = 30) -> None:
    """Waits until the server counts `n` watch streams open: it counts one once it took it, and
    stops once it let it go, which a loaded machine may do late."""
    eventually(lambda: metric(port, "runstatus_watches") == n, what or f"{n} watch streams open", timeout=timeout)


def watch(address: str, project_id: str, after: str = "", timeout: float | None = None,
          **options: Any) -> Iterator[wo_pb.WatchWorkOrdersResponse]:
    channel = grpc.insecure_channel(address, options=list(options.items()))
    stub = wo_grpc.WorkOrderServiceStub(channel)
    return stub.WatchWorkOrders(  # type: ignore[no-any-return]
        wo_pb.WatchWorkOrdersRequest(project_id=project_id, after_cursor=after), timeout=timeout)


class Collector:
    """A watcher in a thread, keeping what it receives."""

    def __init__(self, address: str, project_id: str, after: str = "") -> None:
        self.seen: list[tuple[int, str]] = []
        self.stream = watch(address, project_id, after)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for item in self.stream:
                self.seen.append((int(item.cursor), item.event.work_order_id))
        except grpc.RpcError:
            pass

    def wait_for(self, n: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.seen) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.seen) >= n, (len(self.seen), n)

    def stop(self) -> None:
        self.stream.cancel()  # type: ignore[attr-defined]
        self.thread.join(5)


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, int]]:
    port = free_port()
    with running_server(tmp_path_factory.mktemp("fanout"), "--metrics-port", str(port)) as (srv, _):
        yield srv, port


def test_watchers_cost_one_read_of_the_log_per_commit_not_one_each(metered: tuple[ServerProcess, int]) -> None:
    server, port = metered
    c = Client(server.address)
    c.new_project()
    wf = c.workflow(["a"])
    watchers = [Collector(server.address, c.project_id) for _ in range(40)]
    c.work_order(wf)
    for w in watchers:
        w.wait_for(1)  # all 40 joined the live feed
    feed_before = metric(port, 'runstatus_event_log_reads_total{reader="feed"}')
    backlog_before = metric(port, 'runstatus_event_log_reads_total{reader="backlog"}')
    began = time.monotonic()
    for _ in range(20):
        c.work_order(wf)  # one commit each: the calls wait for their answers
    for w in watchers:
        w.wait_for(21)
    feed_reads = metric(port, 'runstatus_event_log_reads_total{reader="feed"}') - feed_before
    # The feed also reads once a second that no commit woke it: a slow machine takes more seconds.
    polls = 2 + int(time.monotonic() - began)
    backlog_reads = metric(port, 'runstatus_event_log_reads_total{reader="backlog"}') - backlog_before
    assert metric(port, "runstatus_watches") == 40
    # Each commit is read once for all 40 (a poll may add a read); no watcher reads on its own.
    assert feed_reads <= 20 + max(5, polls), (feed_reads, polls)
    assert backlog_reads == 0
    expected = [seen for seen in watchers[0].seen]
    assert len(expected) == 21 and len({wo for _, wo in expected}) == 21
    for w in watchers:
        assert w.seen == expected  # the same events, in order, once each
        w.stop()


def test_resuming_from_a_cursor_while_writes_go_on_is_exactly_once(metered: tuple[ServerProcess, int]) -> None:
    server, _ = metered
    c = Client(server.address)
    c.new_project()
    wf = c.workflow(["a"])
    stop = threading.Event()
    created: list[str] = []
    failures: list[Exception] = []

    def write() -> None:
        writer = Client(server.address, c.project_id)
        try:
            while not stop.is_set():
                created.append(writer.work_order(wf).work_order.id)
        except Exception as e:  # noqa: BLE001 - reported by the test below, not lost in a thread
            failures.append(e)

    def take(after: str, enough: Any) -> None:
        """Events after the cursor until enough(), or until none came for 20 s."""
        stream = watch(server.address, c.project_id, after, timeout=20)
        try:
            for item in stream:
                received.append((int(item.cursor), item.event.work_order_id))
                if enough():
                    break
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e
        finally:
            stream.cancel()  # type: ignore[attr-defined]

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    received: list[tuple[int, str]] = []
    try:
        # Disconnect and resume many times mid-stream: each resume crosses the backlog, the
        # seam and the live feed while writes land.
        for _ in range(15):
            take(str(received[-1][0]) if received else "", lambda: len(received) % 7 == 0)
    finally:
        stop.set()
        writer.join(30)
    assert not failures and not writer.is_alive(), failures
    # Then all that remains, once the writes have stopped.
    if len(received) < len(created):
        take(str(received[-1][0]) if received else "", lambda: len(received) >= len(created))
    cursors = [cursor for cursor, _ in received]
    assert cursors == sorted(set(cursors)), "a duplicate or an event out of order"
    assert [wo for _, wo in received] == created  # every work order's creation, none missed


def test_a_watcher_whose_client_does_not_read_is_cut_off_and_resumes(tmp: pathlib.Path) -> None:
    with running_server(tmp, "--watch-buffer", "20", "--watch-send-timeout", "1") as (server, _):
        c = Client(server.address)
        c.new_project()
        wf = c.workflow(["a"])
        c.work_order(wf)
        # A small receive window and no window growth: the client stops taking events soon.
        stream = watch(server.address, c.project_id, "", **{"grpc.http2.bdp_probe": 0,
                                                             "grpc.http2.lookahead_bytes": 1024})
        first = next(stream)  # the stream is open and live
        created = [first.event.work_order_id]
        # Many events while nobody reads them: they fill the window, then the buffer.
        for _ in range(30):
            page = [c.work_order(wf).work_order.id for _ in range(40)]
            created += page
        got = [first]
        with pytest.raises(grpc.RpcError) as raised:
            for item in stream:
                got.append(item)
        error = raised.value
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        info, _ = details(error)
        assert info.reason == "WATCH_TOO_SLOW"
        # The last event whose sending completed: at most the last one the client received.
        assert 0 < int(info.metadata["cursor"]) <= int(got[-1].cursor)
        assert len(got) < len(created)
        # The server is fine, and the watch resumes from its cursor with nothing lost.
        rest = watch(server.address, c.project_id, got[-1].cursor)
        for item in rest:
            got.append(item)
            if len(got) == len(created):
                break
        rest.cancel()  # type: ignore[attr-defined]
        assert [item.event.work_order_id for item in got] == created


def test_watch_streams_are_limited_per_caller_and_per_server(tmp: pathlib.Path) -> None:
    port = free_port()
    with running_server(tmp, "--max-watches-per-caller", "2", "--max-watches", "3", "--metrics-port", str(port)) as (
            server, _):
        c = Client(server.address)
        p1 = c.new_project()
        p2 = c.new_project()

        open_ = [Collector(server.address, p1), Collector(server.address, p1)]
        watches_open(port, 2)
        third = watch(server.address, p1)
        with pytest.raises(grpc.RpcError) as raised:
            next(third)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        info, _ = details(raised.value)
        assert info.reason == "TOO_MANY_WATCHES"
        assert dict(info.metadata) == {"scope": "caller", "limit": "2"}
        open_.append(Collector(server.address, p2))  # another project: its own count
        watches_open(port, 3)
        fourth = watch(server.address, p2)
        with pytest.raises(grpc.RpcError) as raised:
            next(fourth)
        assert dict(details(raised.value)[0].metadata) == {"scope": "server", "limit": "3"}
        # A closed stream frees its place.
        open_.pop(0).stop()
        watches_open(port, 2)
        again = Collector(server.address, p1)
        wf = c.workflow(["a"], project_id=p1)
        c.work_order(wf)
        again.wait_for(1)
        again.stop()
        for w in open_:
            w.stop()


WATCHER = """
import sys, grpc
from runstatus.v1 import work_order_service_pb2 as pb, work_order_service_pb2_grpc as g
stub = g.WorkOrderServiceStub(grpc.insecure_channel(sys.argv[1]))
print("watching", flush=True)
for _ in stub.WatchWorkOrders(pb.WatchWorkOrdersRequest(project_id=sys.argv[2])):
    pass
"""


def test_keepalive_drops_a_client_that_stopped_answering(tmp: pathlib.Path) -> None:
    port = free_port()
    with running_server(tmp, "--metrics-port", str(port), "--keepalive-seconds", "1",
                        "--keepalive-timeout-seconds", "1") as (server, _):
        c = Client(server.address)
        c.new_project()
        proc = subprocess.Popen([sys.executable, "-c", WATCHER, server.address, c.project_id],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "watching"
            watches_open(port, 1, timeout=20)
            # The client is frozen: its connection stays up in the kernel, but answers no ping.
            proc.send_signal(signal.SIGSTOP)
            watches_open(port, 0, "the dead client's watch closed")
        finally:
            proc.kill()
            proc.wait()


def test_a_watch_from_now_skips_the_log_and_misses_nothing_after(metered: tuple[ServerProcess, int]) -> None:
    from runstatus import Client as PyClient

    server, port = metered
    c = Client(server.address)
    c.new_project()
    wf = c.workflow(["a"])
    old = [c.work_order(wf).work_order.id for _ in range(3)]
    # The earlier tests' watches are closed: the one opened here is then the only one.
    watches_open(port, 0)
    with PyClient(server.address, project_id=c.project_id) as rs:
        events = rs.watch(from_now=True)
        new: list[str] = []

        def write() -> None:
            # Once the watch counts, its "now" was taken (a fixed sleep may end first on a loaded machine).
            watches_open(port, 1)
            new.extend(c.work_order(wf).work_order.id for _ in range(3))

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        seen = [next(events).work_order_id for _ in range(3)]
        writer.join(30)  # the third event can arrive before its create's answer does
        assert seen == new and not set(seen) & set(old)
        raw = wo_grpc.WorkOrderServiceStub(grpc.insecure_channel(server.address))
        with pytest.raises(grpc.RpcError) as raised:
            next(raw.WatchWorkOrders(wo_pb.WatchWorkOrdersRequest(project_id=c.project_id, after_cursor="5",
                                                                  from_now=True)))
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert details(raised.value)[1] == [("from_now", "cannot be given with after_cursor")]


# --- batched watch (issue 30) ------------------------------------------------------------------------------

def batched(address: str, project_id: str, max_events: int, max_delay_ms: int, after: str = "",
            timeout: float = 60) -> Iterator[wo_pb.WatchWorkOrdersResponse]:
    stub = wo_grpc.WorkOrderServiceStub(grpc.insecure_channel(address))
    batching = wo_pb.WatchBatching(max_events=max_events)
    batching.max_delay.FromMilliseconds(max_delay_ms)
    return stub.WatchWorkOrders(  # type: ignore[no-any-return]
        wo_pb.WatchWorkOrdersRequest(project_id=project_id, after_cursor=after, batching=batching), timeout=timeout)


def test_a_batched_watch_groups_events_in_order_and_resumes_from_the_last(metered: tuple[ServerProcess, int]) -> None:
    server, _ = metered
    c = Client(server.address)
    c.new_project()
    wf = c.workflow(["a"])
    backlog = [c.work_order(wf).work_order.id for _ in range(25)]
    plain = [(int(r.cursor), r.event) for _, r in zip(range(25), watch(server.address, c.project_id, timeout=30))]

    # The backlog in batches of at most 10, each response's cursor its last event's, the same
    # events in the same order as an unbatched watch gets them.
    stream = batched(server.address, c.project_id, 10, 200)
    got: list[Any] = []
    sizes = []
    while len(got) < 25:
        response = next(stream)
        assert not response.HasField("event") and 1 <= len(response.events) <= 10
        assert int(response.cursor) == response.events[-1].sequence
        sizes.append(len(response.events))
        got += response.events
    assert [e.work_order_id for e in got] == backlog and [(e.sequence, e) for e in got] == plain
    assert sizes[:2] == [10, 10]

    # Live: events committed together within max_delay arrive in one response.
    created = [c.work_order(wf).work_order.id for _ in range(3)]
    live: list[Any] = []
    while len(live) < 3:
        response = next(stream)
        live += response.events
    assert [e.work_order_id for e in live] == created
    stream.cancel()

    # Resuming from a batch's cursor gives what came after it, exactly once.
    resumed = batched(server.address, c.project_id, 1000, 0, after=str(got[9].sequence))
    after: list[Any] = []
    while len(after) < 18:
        after += next(resumed).events
    assert [e.work_order_id for e in after] == backlog[10:] + created
    resumed.cancel()


def test_a_batch_goes_when_full_or_when_its_first_event_waited_max_delay(metered: tuple[ServerProcess, int]) -> None:
    server, _ = metered
    c = Client(server.address)

    def created_within(seconds: float, work_orders: list[Any]) -> bool:
        """Whether the server made these work orders within `seconds` of the first: the batch
        rule below holds only then, and a loaded machine is sometimes slower than that."""
        times = [w.create_time.ToMicroseconds() for w in work_orders]
        return max(times) - times[0] < seconds * 1e6

    # The first event's batch waits up to max_delay (1 s) for company: a second event 0.2 s later
    # joins it. Tried in a fresh project up to five times, until the two were made close enough.
    for _ in range(5):
        c.new_project()
        wf = c.workflow(["a"])
        stream = batched(server.address, c.project_id, 1000, 1000)
        time.sleep(1.0)  # joined the feed by now
        pair = [c.work_order(wf).work_order]
        time.sleep(0.2)
        pair.append(c.work_order(wf).work_order)
        first = next(stream)
        stream.cancel()
        if created_within(0.5, pair):
            assert [e.work_order_id for e in first.events] == [w.id for w in pair]
            break
    else:
        pytest.fail("in five tries, the two work orders were never made within 0.5 s of each other")

    # Full at 2, then the third alone after its delay.
    for _ in range(5):
        c.new_project()
        wf = c.workflow(["a"])
        full = batched(server.address, c.project_id, 2, 1000)
        time.sleep(0.5)  # joined the feed by now (were it not, the two would come from the log, still together)
        made = [c.work_order(wf).work_order for _ in range(3)]
        responses = [next(full), next(full)]
        full.cancel()
        if created_within(0.5, made[:2]):
            ids = [w.id for w in made]
            assert [[e.work_order_id for e in r.events] for r in responses] == [ids[:2], ids[2:]]
            break
    else:
        pytest.fail("in five tries, the first two work orders were never made within 0.5 s of each other")


@pytest.mark.parametrize("max_events,max_delay_ms,field", [
    (0, 10, "batching.max_events"), (1001, 10, "batching.max_events"), (10, 1001, "batching.max_delay"),
    (10, -1, "batching.max_delay"),
])
def test_batching_out_of_range_is_invalid_argument_naming_the_field(
        metered: tuple[ServerProcess, int], max_events: int, max_delay_ms: int, field: str) -> None:
    server, _ = metered
    c = Client(server.address)
    c.new_project()
    with pytest.raises(grpc.RpcError) as raised:
        next(batched(server.address, c.project_id, max_events, max_delay_ms))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in details(raised.value)[1]] == [field]


def test_the_python_client_hands_out_a_batched_watch_event_by_event(metered: tuple[ServerProcess, int]) -> None:
    from runstatus import Client as PyClient

    server, _ = metered
    c = Client(server.address)
    c.new_project()
    wf = c.workflow(["a"])
    ids = [c.work_order(wf).work_order.id for _ in range(15)]
    with PyClient(server.address, project_id=c.project_id) as rs:
        batched_events = rs.watch(batch=10, max_delay=0.05)
        got = [next(batched_events) for _ in range(15)]
        assert [e.work_order_id for e in got] == ids
        plain = rs.watch()
        assert [(e.cursor, e.work_order_id) for e in (next(plain) for _ in range(15))] == \
            [(e.cursor, e.work_order_id) for e in got]
        # Resuming from an event in the middle of a batch gives the rest of it, then the next.
        rest = rs.watch(after_cursor=got[4].cursor, batch=10)
        assert [next(rest).work_order_id for _ in range(10)] == ids[5:15]


@pytest.mark.parametrize("seconds", ["0", "-1", "nan", "3601"])
def test_a_watch_poll_period_out_of_range_is_refused_at_start(tmp: pathlib.Path, seconds: str) -> None:
    done = subprocess.run([sys.executable, "-m", "runstatus_server", "serve", "--port", "0", "--db", str(tmp / "x.db"),
                           "--watch-poll-seconds", seconds], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--watch-poll-seconds" in done.stderr, done.stderr
    assert not (tmp / "x.db").exists()
