"""The driver never waits on an executor that stops reading (sparkctl/scheduler/executor_outbox.py).

The outbox's state machine is driven here without sockets (order, partial writes, the
stall clock, the cap); the writer over a socketpair whose far end does not read (a send
returns at once, the backlog arrives whole and in order once it reads, a stall or the cap
closes the connection); and, end to end, a local cluster with one executor and its task
slots stopped by SIGSTOP while a job ships a large broadcast: another job runs meanwhile,
the driver declares that executor lost and the job finishes on the others with the exact
result; and an executor process that heartbeats but never reads, which only its stalled
backlog gives away.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sparkctl import SparkConf, SparkContext
from sparkctl.rpc.connection import Connection, TLSConnection, frame_message
from sparkctl.scheduler import messages as m
from sparkctl.scheduler.executor_outbox import ExecutorOutbox, ExecutorOutboxClosed, OutboxWriter
from tests.clusters import wait_for
from tests.conftest import descendants

pytestmark = pytest.mark.timeout(60)


# ---------------------------------------------------------------------------- the state machine
def _send_all(box: ExecutorOutbox, sizes: list[int], now: float = 0.0) -> bytes:
    """Drain ``box`` in pieces of the given sizes (cycled), as a socket taking that much would."""
    out = bytearray()
    i = 0
    while not box.idle:
        piece = bytes(box.head(sizes[i % len(sizes)]))
        out += piece
        box.sent(len(piece), now)
        i += 1
    return bytes(out)


def test_frames_leave_whole_and_in_order_through_partial_writes() -> None:
    box = ExecutorOutbox("1", stall_timeout=10.0)
    frames = [bytes([k]) * size for k, size in enumerate([1, 7, 300, 64, 5, 1000])]
    for f in frames:
        assert box.add(f, now=0.0)
    assert box.queued == sum(map(len, frames))
    assert _send_all(box, [3, 1, 250, 17]) == b"".join(frames)
    assert box.idle and box.queued == 0 and box.offset == 0


def test_a_frame_the_caller_began_to_send_is_queued_from_where_it_stopped() -> None:
    box = ExecutorOutbox("1", stall_timeout=10.0)
    first, second = b"a" * 100, b"b" * 50
    assert box.add(first, now=0.0, already_sent=40)
    assert box.queued == 60
    assert box.add(second, now=0.0)
    with pytest.raises(ValueError):  # only an idle outbox's frame can have started on the socket
        box.add(b"c", now=0.0, already_sent=1)
    assert _send_all(box, [7]) == first[40:] + second
    assert box.add(b"done", now=0.0, already_sent=4)  # sent whole by the caller: nothing queued
    assert box.idle


def test_the_stall_clock_runs_only_while_bytes_wait_and_restarts_on_progress() -> None:
    box = ExecutorOutbox("1", stall_timeout=5.0)
    assert not box.stalled(1e9) and box.deadline() is None  # nothing waits: never stalled
    box.add(b"x" * 100, now=10.0)
    assert box.deadline() == 15.0
    assert not box.stalled(14.9)
    box.sent(10, now=14.0)  # progress, however small, restarts the clock
    assert not box.stalled(18.9) and box.stalled(19.0)
    box.sent(90, now=19.5)
    assert box.idle and not box.stalled(1e9)
    box.add(b"y", now=100.0)  # a new backlog starts its own clock
    assert box.deadline() == 105.0


def test_a_backlog_over_the_cap_gives_the_outbox_up() -> None:
    box = ExecutorOutbox("7", stall_timeout=5.0, cap=1000)
    assert box.add(b"a" * 600, now=0.0)
    assert box.add(b"b" * 400, now=0.0)  # exactly at the cap
    box.sent(100, now=1.0)
    assert box.add(b"c" * 100, now=1.0)  # sent bytes no longer count
    assert not box.add(b"d", now=1.0)
    assert box.failure is not None and "over 1000 bytes queued for executor 7" in box.failure
    assert box.idle and box.queued == 0 and not box.stalled(1e9)  # the backlog is dropped
    with pytest.raises(ExecutorOutboxClosed):
        box.add(b"e", now=2.0)
    box.sent(5, now=3.0)  # a send that was under way when it was given up changes nothing
    assert box.idle and box.queued == 0


# ---------------------------------------------------------------------------- the writer, on a socketpair
@pytest.fixture
def pair() -> Iterator[tuple[Connection, socket.socket]]:
    """The driver's end as a Connection, and the executor's raw end (read only on demand)."""
    a, b = socket.socketpair()
    for s in (a, b):  # small buffers: a few hundred KB fill them
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
    conn = Connection(a, peer="executor")
    try:
        yield conn, b
    finally:
        conn.close()
        b.close()


@pytest.fixture
def writer() -> Iterator[OutboxWriter]:
    w = OutboxWriter(stall_timeout=30.0).start()
    try:
        yield w
    finally:
        w.stop()


def _receive(sock: socket.socket, count: int, timeout: float = 20.0) -> list[Any]:
    conn = Connection(sock, peer="driver")
    return [conn.recv(timeout=timeout) for _ in range(count)]


def test_sends_to_a_peer_that_does_not_read_return_at_once_and_arrive_in_order(
        pair: tuple[Connection, socket.socket], writer: OutboxWriter) -> None:
    conn, peer = pair
    link = writer.attach("1", conn)
    msgs: list[Any] = []
    for i in range(40):  # 40 x 256 KB, far over what the socket buffers hold
        msgs.append(m.PutBroadcast(i, bytes([i]) * (256 << 10)))
        msgs.append(m.KillTask(i, f"reason {i}"))  # small ones behind large ones keep their place
    started = time.monotonic()
    for msg in msgs:
        writer.send(link, frame_message(msg))
    assert time.monotonic() - started < 5.0  # nothing waited for the peer (blocking would hang)
    assert link.box.queued > 8 << 20
    got = _receive(peer, len(msgs))
    assert [(type(x).__name__, getattr(x, "bid", None), getattr(x, "task_id", None), getattr(x, "data", None))
            for x in got] == \
           [(type(x).__name__, getattr(x, "bid", None), getattr(x, "task_id", None), getattr(x, "data", None))
            for x in msgs]
    assert writer.drain(10) and link.box.idle and writer.gave_up(link) is None


def test_threads_sending_at_once_keep_each_ones_order(
        pair: tuple[Connection, socket.socket], writer: OutboxWriter) -> None:
    conn, peer = pair
    link = writer.attach("1", conn)
    per_thread = 300

    def sender(t: int) -> None:
        for i in range(per_thread):  # a mix of sizes: some go at once, some queue
            writer.send(link, frame_message(m.PutBroadcast(t * per_thread + i, b"z" * (i % 7 * 9000))))

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    got = _receive(peer, 4 * per_thread)
    for thread in threads:
        thread.join(10)
    ids = [x.bid for x in got]
    assert sorted(ids) == list(range(4 * per_thread))
    for k in range(4):
        mine = [i for i in ids if i // per_thread == k]
        assert mine == sorted(mine)
    for x in got:
        assert x.data == b"z" * (x.bid % per_thread % 7 * 9000)


def test_a_backlog_without_progress_closes_the_connection(pair: tuple[Connection, socket.socket]) -> None:
    conn, peer = pair
    writer = OutboxWriter(stall_timeout=0.5).start()
    try:
        link = writer.attach("3", conn)
        writer.send(link, frame_message(m.PutBroadcast(1, b"s" * (4 << 20))))
        started = time.monotonic()
        wait_for(lambda: conn.closed, 10, "the stalled connection to be closed")
        assert 0.4 <= time.monotonic() - started < 5.0
        reason = writer.gave_up(link)
        assert reason is not None and "no progress sending" in reason and "executor 3" in reason
        assert "spark.network.timeout" in reason
        with pytest.raises(ExecutorOutboxClosed):
            writer.send(link, frame_message(m.HeartbeatResponse()))
        assert writer.drain(1)  # the backlog was dropped
    finally:
        writer.stop()


def test_a_backlog_that_moves_slowly_is_not_a_stall(pair: tuple[Connection, socket.socket]) -> None:
    conn, peer = pair
    writer = OutboxWriter(stall_timeout=0.5).start()
    try:
        link = writer.attach("3", conn)
        frame = frame_message(m.PutBroadcast(1, b"s" * (768 << 10)))
        writer.send(link, frame)
        got = bytearray()
        deadline = time.monotonic() + 30
        while len(got) < len(frame):  # 64 KB every 0.15 s: three times the stall timeout in all, never still
            assert time.monotonic() < deadline
            time.sleep(0.15)
            got += peer.recv(1 << 16)
        assert bytes(got) == frame
        assert not conn.closed and writer.gave_up(link) is None
    finally:
        writer.stop()


def test_a_backlog_over_the_cap_closes_the_connection(pair: tuple[Connection, socket.socket]) -> None:
    conn, peer = pair
    writer = OutboxWriter(stall_timeout=60.0, cap=1 << 20).start()
    try:
        link = writer.attach("4", conn)
        with pytest.raises(ExecutorOutboxClosed, match="over 1048576 bytes queued for executor 4"):
            for i in range(20):
                writer.send(link, frame_message(m.PutBroadcast(i, b"c" * (200 << 10))))
        assert conn.closed
        assert "over 1048576 bytes" in (writer.gave_up(link) or "")
        assert link.box.queued == 0
    finally:
        writer.stop()


def test_a_peer_gone_fails_later_sends_without_blaming_a_stall(
        pair: tuple[Connection, socket.socket], writer: OutboxWriter) -> None:
    conn, peer = pair
    link = writer.attach("5", conn)
    writer.send(link, frame_message(m.PutBroadcast(1, b"g" * (1 << 20))))  # a backlog
    peer.close()
    wait_for(lambda: link.box.failure is not None, 10, "the writer to see the connection fail")
    assert conn.closed and writer.gave_up(link) is None  # its reader reports the loss, as any EOF
    with pytest.raises(ExecutorOutboxClosed):
        writer.send(link, frame_message(m.HeartbeatResponse()))


def test_a_broadcast_is_framed_once_for_every_executor_it_goes_to() -> None:
    """The runtime's _send: N executors waiting for one large broadcast hold one copy of
    its frame in their outboxes, not N."""
    from sparkctl.scheduler.runtime import DriverRuntime, ExecutorHandle
    data = os.urandom(4 << 20)
    rt = DriverRuntime("127.0.0.1", 0, b"secret", max_failures=1, max_result_size=0,
                       broadcast_source={7: data}.__getitem__, apply_accumulators=lambda _: None,
                       max_frame=64 << 20, network_timeout=30.0)
    rt.outboxes.start()
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        handles = []
        for i, (a, _b) in enumerate(pairs):
            a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
            conn = Connection(a, peer=f"executor {i}")
            handles.append(ExecutorHandle(str(i), "127.0.0.1", 0, 1, conn, link=rt.outboxes.attach(str(i), conn)))
        for h in handles:
            rt._send(h, m.PutBroadcast(7, rt.broadcast_source(7)))
        queued = [h.link.box.frames[0] for h in handles if h.link is not None and not h.link.box.idle]
        assert len(queued) == 3 and all(f is queued[0] for f in queued)  # the same bytes object
        for _a, b in pairs:
            got = Connection(b, peer="driver").recv(timeout=20)
            assert isinstance(got, m.PutBroadcast) and got.bid == 7 and got.data == data
        rt._forget_payloads()  # a job's end lets the frame go
        assert rt._broadcast_frame is None
    finally:
        rt.outboxes.stop()
        for a, b in pairs:
            a.close()
            b.close()


# ---------------------------------------------------------------------------- the writer, over TLS
@pytest.fixture
def tls_pair(tmp_path: Any) -> Iterator[tuple[Connection, Connection]]:
    """The driver's end (accepted by a TLS Server) and the executor's (connected), on loopback."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make certificates")
    from sparkctl.rpc import Server, TLSConfig, connect
    from tests.test_tls import make_ca, make_cert
    make_ca(tmp_path, "ca")
    cert, key = make_cert(tmp_path, "node", "ca")
    config = TLSConfig(str(cert), str(key), str(tmp_path / "ca.pem"))
    accepted: list[Connection] = []
    done = threading.Event()

    def on_connection(conn: Connection) -> None:
        accepted.append(conn)
        done.wait()  # the connection lives while this thread does

    server = Server("127.0.0.1", 0, b"outbox-secret", on_connection, tls=config).start()
    client = connect("127.0.0.1", server.address[1], b"outbox-secret", tls=config)
    try:
        wait_for(lambda: accepted, 10, "the TLS connection to be accepted")
        yield accepted[0], client
    finally:
        done.set()
        client.close()
        server.stop()


def test_tls_sends_return_at_once_and_arrive_in_order(tls_pair: tuple[Connection, Connection],
                                                      writer: OutboxWriter) -> None:
    conn, peer = tls_pair
    assert isinstance(conn, TLSConnection)
    link = writer.attach("1", conn)
    msgs = [m.PutBroadcast(i, bytes([i]) * (1 << 20)) for i in range(24)] + [m.KillTask(99, "last")]
    started = time.monotonic()
    for msg in msgs:
        writer.send(link, frame_message(msg))
    assert time.monotonic() - started < 5.0
    got = [peer.recv(timeout=20) for _ in msgs]
    assert [(type(x).__name__, getattr(x, "bid", None), getattr(x, "data", None)) for x in got] == \
           [(type(x).__name__, getattr(x, "bid", None), getattr(x, "data", None)) for x in msgs]
    assert writer.drain(10)


def test_tls_backlog_without_progress_closes_the_connection(tls_pair: tuple[Connection, Connection]) -> None:
    conn, peer = tls_pair
    writer = OutboxWriter(stall_timeout=0.5).start()
    try:
        link = writer.attach("2", conn)
        for i in range(24):
            writer.send(link, frame_message(m.PutBroadcast(i, b"t" * (1 << 20))))
        wait_for(lambda: conn.closed, 10, "the stalled TLS connection to be closed")
        assert "no progress sending" in (writer.gave_up(link) or "")
        wait_for(lambda: link.sender is not None and not link.sender.is_alive(), 10, "its sender thread to end")
    finally:
        writer.stop()


# ---------------------------------------------------------------------------- a stopped executor, for real
class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


NETWORK_TIMEOUT = 8.0


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_stopped_executor_stalls_nothing_else_and_is_lost(assert_no_child_processes: Any) -> None:
    """One executor of three (one slot each) and its task slots stopped with SIGSTOP; a job
    ships it a 48 MB broadcast, more than the sockets' buffers hold. Meanwhile a second job
    runs on the other two at once (a driver blocked in a send, under its lock, would hold it
    until the stopped executor's loss); then the first job ends, exact, once the driver has
    declared the stopped executor lost and rerun its task elsewhere."""
    conf = (SparkConf().set("spark.ui.showConsoleProgress", "false").set("spark.log.level", "WARN")
            .set("spark.network.timeout", f"{NETWORK_TIMEOUT:g}s").set("spark.executor.heartbeatInterval", "1s"))
    lines = _Lines()
    driver_log = logging.getLogger("sparkctl.driver")
    stopped: list[int] = []
    with SparkContext("local-cluster[3,1,512]", "stopped-executor", conf=conf) as sc:
        driver_log.addHandler(lines)
        runtime: Any = sc._runtime
        first: dict[str, Any] = {}
        job = threading.Thread(target=lambda: first.update(result=sc.parallelize(range(24), 6).map(
            lambda x: x * 3 + len(table.value)).collect()))
        try:
            wait_for(lambda: len(runtime.executors) == 3, 60, "three executors")
            data = os.urandom(48 << 20)  # random: no compression makes it small
            table = sc.broadcast(data)
            victim = sorted(runtime.executors)[0]
            vpid = runtime.executors[victim].pid
            sent_to_victim: list[str] = []
            original = runtime._send

            def record(h: Any, msg: Any) -> None:
                if h.executor_id == victim:
                    sent_to_victim.append(type(msg).__name__)
                original(h, msg)
            runtime._send = record
            # the executor and its task slots: processes of this test's own cluster
            stopped[:] = [vpid, *descendants(vpid)]
            for pid in stopped:
                os.kill(pid, signal.SIGSTOP)
            job.start()
            wait_for(lambda: "PutBroadcast" in sent_to_victim, 30, "the broadcast to be sent to the stopped executor")
            started = time.monotonic()
            second = sc.parallelize(range(100), 4).map(lambda x: x * x).sum()
            took = time.monotonic() - started
            assert second == sum(x * x for x in range(100))
            assert victim not in runtime.lost_executors, "the second job waited for the stopped executor's loss"
            assert took < NETWORK_TIMEOUT / 2, took
            job.join(4 * NETWORK_TIMEOUT)
            assert first.get("result") == [x * 3 + len(data) for x in range(24)]
            assert victim in runtime.lost_executors and victim not in runtime.executors
            assert any(line.startswith(f"Lost executor {victim}:") for line in lines.lines), lines.lines
        finally:
            driver_log.removeHandler(lines)
            runtime.__dict__.pop("_send", None)
            for pid in stopped:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            if job.is_alive():
                job.join(4 * NETWORK_TIMEOUT)
    assert_no_child_processes(allow_shared=False)


_SILENT_EXECUTOR = """
import os, sys, time
from sparkctl.rpc import connect
from sparkctl.scheduler import messages as m
conn = connect(sys.argv[1], int(sys.argv[2]), bytes.fromhex(os.environ["OUTBOX_TEST_SECRET"]))
conn.send(m.RegisterExecutor("silent-1", "127.0.0.1", 1, 4, os.getpid()))
try:
    while True:  # heartbeats, as a live executor sends them, but never a read
        conn.send(m.ExecutorHeartbeat("silent-1"))
        time.sleep(0.2)
except Exception:
    pass  # the driver closed the connection
"""


@pytest.mark.timeout(60)
def test_an_executor_that_heartbeats_but_never_reads_is_lost_for_its_stalled_backlog(
        assert_no_child_processes: Any) -> None:
    """Only the outbox can tell: the executor's heartbeats keep its connection from ever
    going silent, but what the driver sends it never moves."""
    import subprocess
    import sys
    from tests.clusters import ROOT
    timeout = 3.0
    conf = (SparkConf().set("spark.ui.showConsoleProgress", "false").set("spark.log.level", "WARN")
            .set("spark.network.timeout", f"{timeout:g}s").set("spark.executor.heartbeatInterval", "1s"))
    lines = _Lines()
    driver_log = logging.getLogger("sparkctl.driver")
    with SparkContext("local[1]", "silent-executor", conf=conf) as sc:
        runtime: Any = sc._runtime
        host, port = runtime.address
        env = dict(os.environ, PYTHONPATH=str(ROOT), OUTBOX_TEST_SECRET=runtime.secret.hex())
        proc = subprocess.Popen([sys.executable, "-c", _SILENT_EXECUTOR, host, str(port)], env=env)
        driver_log.addHandler(lines)
        try:
            wait_for(lambda: "silent-1" in runtime.executors, 20, "the silent executor to register")
            data = os.urandom(16 << 20)
            table = sc.broadcast(data)
            started = time.monotonic()
            got = sc.parallelize(range(40), 8).map(lambda x: x + len(table.value)).collect()
            took = time.monotonic() - started
            assert got == [x + len(data) for x in range(40)]
            reason = runtime.lost_executors.get("silent-1", "")
            assert "no progress sending" in reason and "spark.network.timeout" in reason, reason
            assert any(line.startswith("Lost executor silent-1: no progress sending") for line in lines.lines), \
                lines.lines
            assert timeout * 0.9 <= took < timeout + 20, took
            assert proc.wait(20) is not None  # its heartbeats fail once the driver closed the connection
        finally:
            driver_log.removeHandler(lines)
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
    assert_no_child_processes(allow_shared=False)
