"""Tests of sparkctl.rpc: framing, the shared-secret handshake, connections and servers.

Everything runs on 127.0.0.1 or socketpairs.  Waiting is done by polling a condition
against a deadline (``wait_until``) or by blocking calls with timeouts, never by sleeping
a fixed time; an autouse fixture arms ``faulthandler`` so a hung test dumps every
thread's stack and exits instead of hanging the run.
"""
from __future__ import annotations

import array
import dataclasses
import faulthandler
import logging
import os
import pickle
import queue
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sparkctl.rpc.auth as auth_mod
import sparkctl.rpc.connection as conn_mod
from sparkctl.errors import (
    AuthenticationError,
    ConnectionClosed,
    FrameTooLargeError,
    ProtocolError,
    RpcConnectError,
    RpcTimeoutError,
)
from sparkctl.rpc import (
    Connection,
    Dispatcher,
    FrameDecoder,
    Server,
    connect,
    create_secret_file,
    load_secret,
    recv_frame,
    send_frame,
    serve_forever_reader,
)
from sparkctl.rpc.auth import MAGIC, MAX_AUTH_FRAME, client_handshake, server_handshake
from sparkctl.rpc.framing import HEADER
from tests.clusters import wait_for

SECRET = b"0123456789abcdef-test-secret"
HOST = "127.0.0.1"
# Per-test limit, enforced by pytest-timeout or tests/conftest.py's SIGALRM fallback.
pytestmark = pytest.mark.timeout(60)
# Backstop if that cannot fire (e.g. no conftest): faulthandler dumps every thread's
# stack and exits, so a hang is diagnosable instead of silent.
TEST_TIMEOUT = 150.0


# -- helpers -------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _hard_timeout() -> Iterator[None]:
    faulthandler.dump_traceback_later(TEST_TIMEOUT, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def wait_until(cond: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    return wait_for(cond, timeout, what, interval=0.002)


def echo(conn: Connection) -> None:
    serve_forever_reader(conn, conn.send)


@pytest.fixture
def servers() -> Iterator[Callable[..., Server]]:
    """Factory of started servers on 127.0.0.1:0, all stopped at teardown."""
    made: list[Server] = []

    def make(on_connection: Callable[[Connection], None] = echo, **kw: Any) -> Server:
        kw.setdefault("name", "test-rpc")
        secret = kw.pop("secret", SECRET)
        server = Server(HOST, 0, secret, on_connection, **kw).start()
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def rpc_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="sparkctl.rpc")
    return caplog


def warnings_matching(caplog: pytest.LogCaptureFixture, *needles: str) -> list[str]:
    return [
        r.getMessage()
        for r in list(caplog.records)
        if r.levelno >= logging.WARNING and all(n in r.getMessage() for n in needles)
    ]


def raw_connect(server: Server, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(server.address, timeout=timeout)
    return sock


def wait_closed_by_peer(sock: socket.socket, timeout: float = 10.0) -> None:
    """Read (and discard) until the peer closes: EOF or a reset; fail on timeout."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not sock.recv(65536):
                return
        except (ConnectionResetError, BrokenPipeError):
            return
        except TimeoutError:
            break
    raise AssertionError("peer did not close the connection")


def authed_raw_socket(server: Server) -> socket.socket:
    """A raw socket that passed the handshake: lets a test send arbitrary frames."""
    sock = raw_connect(server)
    client_handshake(sock, SECRET, 10.0)
    return sock


def unused_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclasses.dataclass(frozen=True)
class TaskMsg:
    task_id: int
    stage: str
    partitions: tuple[int, ...]
    payload: bytes = b""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, compare=True, hash=False)


@dataclasses.dataclass
class Heartbeat:
    executor_id: str
    n: int


class SpecialHeartbeat(Heartbeat):
    pass


class _CreatesFile:
    """Unpickling this creates a file: proof of whether anything was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


# -- framing -------------------------------------------------------------------------


def _frames(payloads: list[bytes]) -> bytes:
    return b"".join(HEADER.pack(len(p)) + p for p in payloads)


@settings(max_examples=300, deadline=None)
@given(
    payloads=st.lists(st.binary(max_size=300), max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=20),
)
def test_frame_decoder_arbitrary_chunking(payloads: list[bytes], cuts: list[int]) -> None:
    stream = _frames(payloads)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)])]
    decoder = FrameDecoder(max_size=1000)
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    assert out == payloads
    assert decoder.buffered == 0
    assert all(type(f) is bytes for f in out)


def test_frame_decoder_large_frame_byte_by_byte_and_oversize() -> None:
    payload = os.urandom(70_000)
    decoder = FrameDecoder(max_size=100_000)
    stream = _frames([payload, b"", b"x"])
    got: list[bytes] = []
    for i in range(0, len(stream), 997):
        got.extend(decoder.feed(memoryview(stream)[i : i + 997]))
    assert got == [payload, b"", b"x"]

    decoder = FrameDecoder(max_size=10)
    assert decoder.feed(HEADER.pack(11)[:7]) == []
    with pytest.raises(FrameTooLargeError):
        decoder.feed(HEADER.pack(11)[7:])  # raised on the header alone, no body needed
    with pytest.raises(ProtocolError):
        decoder.feed(b"anything")  # poisoned: the stream position is lost


@pytest.mark.parametrize("size", [0, 1, 100, 65_535, 65_536, 1_000_003])
def test_send_recv_frame_sizes(size: int) -> None:
    a, b = socket.socketpair()
    with a, b:
        payload = os.urandom(size)
        t = threading.Thread(target=send_frame, args=(a, payload))
        t.start()
        b.settimeout(10)
        got = recv_frame(b, max_size=2_000_000)
        t.join(10)
        assert bytes(got) == payload
        assert isinstance(got, bytes if size < 65_536 else bytearray)


def test_send_frame_accepts_any_buffer() -> None:
    a, b = socket.socketpair()
    with a, b:
        b.settimeout(10)
        ints = array.array("i", range(10))  # itemsize 4: the frame length must count bytes
        send_frame(a, memoryview(ints))
        assert recv_frame(b, 1000) == ints.tobytes()
        send_frame(a, bytearray(b"abc"))
        assert recv_frame(b, 1000) == b"abc"
        send_frame(a, memoryview(b"0123456789")[::2])  # non-contiguous
        assert recv_frame(b, 1000) == b"02468"


def test_recv_frame_errors() -> None:
    a, b = socket.socketpair()
    with a, b:
        b.settimeout(10)
        a.sendall(HEADER.pack(1 << 40))
        with pytest.raises(FrameTooLargeError):
            recv_frame(b, max_size=1024)
    a, b = socket.socketpair()
    with a, b:
        b.settimeout(0.05)
        with pytest.raises(RpcTimeoutError):
            recv_frame(b, 1024)
        a.sendall(HEADER.pack(10) + b"abc")
        a.close()
        b.settimeout(10)
        with pytest.raises(ConnectionClosed, match="middle of a frame"):
            recv_frame(b, 1024)
    a, b = socket.socketpair()
    with a, b:
        a.close()
        with pytest.raises(ConnectionClosed):
            recv_frame(b, 1024)


# -- round trips ---------------------------------------------------------------------


def test_round_trip_dataclasses_and_builtins(servers: Callable[..., Server]) -> None:
    server = servers()
    messages: list[Any] = [
        TaskMsg(1, "stage-0", (0, 1, 2), b"\x00\xff", {"k": [1.5, None]}),
        [TaskMsg(i, "s", (i,)) for i in range(50)],
        Heartbeat("exec-1", 3),
        ("tuple", 1, 2.0, None, {"set": {1, 2}}),
        b"",
        "x" * 100_000,
    ]
    with connect(*server.address, SECRET) as c:
        for m in messages:
            c.send(m)
            assert c.recv(timeout=10) == m
        assert c.peer == f"{HOST}:{server.address[1]}"
        assert c.fileno() >= 0


def test_round_trip_20mb_payload(servers: Callable[..., Server]) -> None:
    server = servers()
    big = os.urandom(20 * 1024 * 1024)
    with connect(*server.address, SECRET) as c:
        c.send(("blob", big))
        tag, back = c.recv(timeout=30)
        assert tag == "blob" and back == big
        # pre-pickled payloads: send_bytes / recv_bytes carry them without pickling
        raw = pickle.dumps(big, protocol=5)
        c.send_bytes(memoryview(raw))
        assert c.recv(timeout=30) == big


def test_many_threads_sending_on_one_connection(servers: Callable[..., Server]) -> None:
    received: queue.Queue[Any] = queue.Queue()
    server = servers(lambda conn: serve_forever_reader(conn, received.put))
    n_threads, per_thread = 8, 150

    def size_of(t: int, i: int) -> int:
        # Mix small frames (one sendall) with large ones (header + body sendalls).
        return 70_000 + t if i % 10 == 0 else 1 + (i * 37 + t) % 3000

    with connect(*server.address, SECRET) as c:
        start = threading.Barrier(n_threads)

        def worker(t: int) -> None:
            start.wait(10)
            for i in range(per_thread):
                c.send((t, i, bytes([t]) * size_of(t, i)))

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
            assert not th.is_alive()
        seen: dict[int, list[int]] = {t: [] for t in range(n_threads)}
        for _ in range(n_threads * per_thread):
            t, i, data = received.get(timeout=30)
            assert data == bytes([t]) * size_of(t, i)  # whole, uncorrupted frame
            seen[t].append(i)
        assert all(seen[t] == list(range(per_thread)) for t in seen)  # per-sender order kept
        assert received.empty()


def test_recv_timeout_keeps_connection_usable(servers: Callable[..., Server]) -> None:
    server = servers()
    with connect(*server.address, SECRET) as c:
        with pytest.raises(RpcTimeoutError):
            c.recv(timeout=0.05)
        assert not c.closed
        c.send("after timeout")
        assert c.recv(timeout=10) == "after timeout"


@pytest.mark.parametrize("timeout", [0.05, 0])
@pytest.mark.parametrize("size", [10, 200_000])
def test_recv_timeout_mid_frame_resumes(size: int, timeout: float) -> None:
    a, b = socket.socketpair()
    conn = Connection(b, peer="pair")
    with a, conn:
        payload = pickle.dumps(os.urandom(size), protocol=5)
        frame = HEADER.pack(len(payload)) + payload
        half = len(frame) // 2
        sender = threading.Thread(target=a.sendall, args=(frame[:half],))
        sender.start()
        with pytest.raises(RpcTimeoutError):
            while True:  # drain what has arrived, then time out mid-frame
                conn.recv(timeout=timeout)
        if timeout == 0:
            assert conn._poller is None  # an event loop's drain: receives, never polls first
        sender.join(10)
        threading.Thread(target=a.sendall, args=(frame[half:] + HEADER.pack(2) + b"ok",)).start()
        assert conn.recv(timeout=10) == pickle.loads(payload)
        assert conn.recv_bytes(timeout=10) == b"ok"


def test_connection_max_frame_and_close_semantics() -> None:
    a, b = socket.socketpair()
    conn = Connection(b, max_frame=100, peer="pair")
    with a:
        a.sendall(HEADER.pack(101))
        with pytest.raises(FrameTooLargeError):
            conn.recv(timeout=10)
        assert conn.closed
        conn.close()  # idempotent
        with pytest.raises(ConnectionClosed):
            conn.send("x")
        with pytest.raises(ConnectionClosed):
            conn.recv(timeout=1)
        assert conn.fileno() == -1


def test_close_wakes_blocked_reader(servers: Callable[..., Server]) -> None:
    server = servers()
    c = connect(*server.address, SECRET)
    result: queue.Queue[BaseException] = queue.Queue()

    def reader() -> None:
        try:
            c.recv()
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            result.put(e)

    t = threading.Thread(target=reader)
    t.start()
    c.close()
    assert isinstance(result.get(timeout=10), ConnectionClosed)
    t.join(10)


def test_unpicklable_message_is_protocol_error(servers: Callable[..., Server]) -> None:
    def raw_echo(conn: Connection) -> None:
        try:
            while True:
                conn.send_bytes(conn.recv_bytes())
        except ConnectionClosed:
            pass

    server = servers(raw_echo)
    with connect(*server.address, SECRET) as c:
        c.send_bytes(b"\x80\x05not a pickle")
        with pytest.raises(ProtocolError, match="cannot unpickle"):
            c.recv(timeout=10)
        assert not c.closed  # frame boundaries are intact: the caller decides
        c.send("fine")
        assert c.recv(timeout=10) == "fine"


# -- authentication ------------------------------------------------------------------


def test_handshake_module_never_touches_pickle() -> None:
    assert "pickle" not in vars(auth_mod)


def test_wrong_secret_refused_and_logged(servers: Callable[..., Server], rpc_log: pytest.LogCaptureFixture) -> None:
    server = servers()
    sock = raw_connect(server)
    port = sock.getsockname()[1]
    with pytest.raises(AuthenticationError, match="rejected our secret"):
        client_handshake(sock, b"not-the-secret", 10.0)
    wait_closed_by_peer(sock)
    sock.close()
    msgs = wait_until(
        lambda: warnings_matching(rpc_log, "refused connection", f"{HOST}:{port}", "wrong secret"),
        what="the server's warning",
    )
    assert "failed authentication" in msgs[0]
    with pytest.raises(AuthenticationError):
        connect(*server.address, b"also wrong")
    # ...and the server still serves clients that know the secret.
    with connect(*server.address, SECRET) as c:
        c.send("hello")
        assert c.recv(timeout=10) == "hello"


def _fake_server(handler: Callable[[socket.socket], None]) -> tuple[tuple[str, int], threading.Thread, list[BaseException]]:
    listener = socket.create_server((HOST, 0))
    errors: list[BaseException] = []

    def run() -> None:
        with listener:
            listener.settimeout(10)
            sock, _ = listener.accept()
            with sock:
                sock.settimeout(10)
                try:
                    handler(sock)
                except BaseException as e:  # noqa: BLE001 - reported to the test
                    errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    return listener.getsockname()[:2], t, errors


def test_client_refuses_server_that_does_not_know_the_secret() -> None:
    """Mutual auth: an impostor that accepts any answer is still refused by the client."""
    prefix = MAGIC + struct.pack("!H", auth_mod.PROTOCOL_VERSION)
    after_verdict: list[bytes] = []

    def impostor(sock: socket.socket) -> None:
        send_frame(sock, prefix + b"C" + os.urandom(32))
        recv_frame(sock, MAX_AUTH_FRAME)  # the client's answer; we cannot check it
        send_frame(sock, prefix + b"W" + os.urandom(32))  # a forged proof
        after_verdict.append(bytes(recv_frame(sock, MAX_AUTH_FRAME)))
        try:
            while chunk := sock.recv(4096):  # nothing else may follow
                after_verdict.append(chunk)
        except ConnectionResetError:
            pass

    addr, t, errors = _fake_server(impostor)
    with pytest.raises(AuthenticationError, match="could not prove"):
        connect(*addr, SECRET)
    t.join(10)
    assert not errors
    assert after_verdict == [prefix + b"F"]  # the client said FAILURE and sent nothing else


def test_client_refuses_other_protocol_version() -> None:
    def future_server(sock: socket.socket) -> None:
        send_frame(sock, MAGIC + struct.pack("!H", 99) + b"C" + os.urandom(32))
        wait_closed_by_peer(sock)

    addr, t, errors = _fake_server(future_server)
    with pytest.raises(AuthenticationError, match="version 99"):
        connect(*addr, SECRET)
    t.join(10)
    assert not errors


@pytest.mark.parametrize("mode", ["instead_of_answer", "before_challenge", "unframed", "big_framed"])
def test_unauthenticated_pickle_is_never_loaded(
    mode: str,
    servers: Callable[..., Server],
    rpc_log: pytest.LogCaptureFixture,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded: list[bytes] = []
    real_loads = conn_mod._loads

    def recording_loads(data: Any) -> Any:
        loaded.append(bytes(data))
        return real_loads(data)

    monkeypatch.setattr(conn_mod, "_loads", recording_loads)
    marker = tmp_path / "pwned"
    exploit = pickle.dumps(_CreatesFile(str(marker)), protocol=5)
    if mode == "big_framed":  # larger than the handshake's frame cap
        exploit = pickle.dumps([_CreatesFile(str(marker)), "x" * 1000], protocol=5)
    server = servers()
    sock = raw_connect(server)
    port = sock.getsockname()[1]
    with sock:
        if mode == "instead_of_answer":
            recv_frame(sock, MAX_AUTH_FRAME)  # the challenge
            send_frame(sock, exploit)
        elif mode == "unframed":
            sock.sendall(exploit)
        else:
            send_frame(sock, exploit)
        wait_closed_by_peer(sock)
    wait_until(lambda: warnings_matching(rpc_log, "refused connection", f"{HOST}:{port}"), what="the warning")
    assert not marker.exists()
    assert loaded == []
    with connect(*server.address, SECRET) as c:  # still serving legitimate clients
        c.send("legit")
        assert c.recv(timeout=10) == "legit"
    assert not marker.exists()
    assert all(b"pwned" not in data for data in loaded)


def test_handshake_restores_timeout_and_times_out_silent_peer() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(3.5)
        b.settimeout(None)
        t = threading.Thread(target=server_handshake, args=(a, SECRET, 10.0))
        t.start()
        client_handshake(b, SECRET, 10.0)
        t.join(10)
        assert a.gettimeout() == 3.5 and b.gettimeout() is None
    a, b = socket.socketpair()
    with a, b:
        started = time.monotonic()
        with pytest.raises(AuthenticationError, match="within 0.2s"):
            server_handshake(a, SECRET, 0.2)  # b never answers
        assert time.monotonic() - started < 5
        assert a.gettimeout() is None


def test_trickling_peer_cannot_stretch_the_handshake() -> None:
    a, b = socket.socketpair()
    stop = threading.Event()

    def trickle() -> None:  # one byte of a plausible frame every 50 ms
        data = HEADER.pack(80) + MAGIC
        for byte in data:
            if stop.wait(0.05):
                return
            try:
                b.send(bytes([byte]))
            except OSError:
                return

    t = threading.Thread(target=trickle)
    with a, b:
        t.start()
        started = time.monotonic()
        with pytest.raises(AuthenticationError):
            server_handshake(a, SECRET, 0.3)
        assert time.monotonic() - started < 2.0
        stop.set()
        t.join(10)


# -- server robustness ---------------------------------------------------------------


def test_garbage_before_handshake_leaves_server_serving(servers: Callable[..., Server]) -> None:
    server = servers(handshake_timeout=5.0)
    client = connect(*server.address, SECRET)

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(garbage=st.binary(min_size=0, max_size=2000))
    def check(garbage: bytes) -> None:
        with raw_connect(server) as sock:
            try:
                sock.sendall(garbage)
                sock.shutdown(socket.SHUT_WR)
            except OSError:  # the server may already have hung up (reset, not connected)
                pass
            wait_closed_by_peer(sock)
        client.send(garbage)  # an established connection is unaffected
        assert client.recv(timeout=10) == garbage

    try:
        check()
        wait_until(lambda: server.pending_handshakes == 0, what="handshakes to finish")
        with connect(*server.address, SECRET) as c:
            c.send("still here")
            assert c.recv(timeout=10) == "still here"
    finally:
        client.close()


def test_oversize_header_closes_only_that_connection(servers: Callable[..., Server]) -> None:
    closed_with: queue.Queue[Exception | None] = queue.Queue()

    def on_conn(conn: Connection) -> None:
        serve_forever_reader(conn, conn.send, closed_with.put)

    server = servers(on_conn, max_frame=1024 * 1024)
    with connect(*server.address, SECRET) as good:
        bad = authed_raw_socket(server)
        with bad:
            bad.sendall(HEADER.pack(1024 * 1024 + 1))
            wait_closed_by_peer(bad)
        assert isinstance(closed_with.get(timeout=10), FrameTooLargeError)
        good.send("still fine")
        assert good.recv(timeout=10) == "still fine"
        with connect(*server.address, SECRET) as fresh:
            fresh.send("new")
            assert fresh.recv(timeout=10) == "new"


def test_bad_pickle_after_handshake_closes_only_that_connection(servers: Callable[..., Server]) -> None:
    closed_with: queue.Queue[Exception | None] = queue.Queue()
    server = servers(lambda conn: serve_forever_reader(conn, conn.send, closed_with.put))
    with connect(*server.address, SECRET) as good:
        bad = authed_raw_socket(server)
        with bad:
            send_frame(bad, b"\x80\x05garbage")
            wait_closed_by_peer(bad)
        assert isinstance(closed_with.get(timeout=10), ProtocolError)
        good.send(1)
        assert good.recv(timeout=10) == 1


def test_idle_client_dropped_after_handshake_timeout(
    servers: Callable[..., Server], rpc_log: pytest.LogCaptureFixture
) -> None:
    timeout = 1.0
    server = servers(handshake_timeout=timeout)
    started = time.monotonic()
    idle = raw_connect(server)
    port = idle.getsockname()[1]
    with idle:
        recv_frame(idle, MAX_AUTH_FRAME)  # the server's challenge: its handshake thread is running
        for i in range(5):  # others are served meanwhile
            with connect(*server.address, SECRET) as c:
                c.send(i)
                assert c.recv(timeout=10) == i
        wait_closed_by_peer(idle, timeout=timeout + 10)
        elapsed = time.monotonic() - started
    assert timeout * 0.9 <= elapsed < timeout + 10
    assert wait_until(lambda: warnings_matching(rpc_log, f"{HOST}:{port}", "within"), what="the warning")


def test_pending_handshake_cap(servers: Callable[..., Server], rpc_log: pytest.LogCaptureFixture) -> None:
    server = servers(max_pending_handshakes=2, handshake_timeout=30.0)
    idle = [raw_connect(server) for _ in range(2)]
    try:
        for s in idle:
            recv_frame(s, MAX_AUTH_FRAME)  # both are in the handshake now
        assert server.pending_handshakes == 2
        with raw_connect(server) as extra:
            wait_closed_by_peer(extra)  # closed at once, without a challenge
        wait_until(lambda: warnings_matching(rpc_log, "handshakes already in progress"), what="the warning")
    finally:
        for s in idle:
            s.close()
    wait_until(lambda: server.pending_handshakes == 0, what="the idle handshakes to end")
    with connect(*server.address, SECRET) as c:
        c.send("ok")
        assert c.recv(timeout=10) == "ok"


def test_port_in_use(servers: Callable[..., Server]) -> None:
    first = servers()
    port = first.address[1]
    second = Server(HOST, port, SECRET, echo, name="second")
    with pytest.raises(OSError, match=f"{HOST}:{port}"):
        second.start()


def test_connect_refused_names_the_address() -> None:
    port = unused_port()
    with pytest.raises(RpcConnectError, match=f"{HOST}:{port}") as info:
        connect(HOST, port, SECRET, timeout=5)
    assert isinstance(info.value, OSError)


def test_stop_leaves_no_thread_behind() -> None:
    before = set(threading.enumerate())
    server = Server(HOST, 0, SECRET, echo, name="leakcheck", handshake_timeout=30.0).start()
    clients = [connect(*server.address, SECRET) for _ in range(3)]
    idle = raw_connect(server)  # stuck in the handshake when stop() is called
    try:
        recv_frame(idle, MAX_AUTH_FRAME)
        for i, c in enumerate(clients):
            c.send(i)
            assert c.recv(timeout=10) == i
        assert len(server.connections) == 3
        server.stop()
        assert set(threading.enumerate()) - before == set()
        for c in clients:  # the server closed its ends
            with pytest.raises(ConnectionClosed):
                c.recv(timeout=10)
        server.stop()  # idempotent
        with pytest.raises(RpcConnectError):
            connect(*server.address, SECRET, timeout=5)
    finally:
        idle.close()
        for c in clients:
            c.close()


def test_stop_from_inside_a_connection_thread(servers: Callable[..., Server]) -> None:
    before = set(threading.enumerate())
    done = threading.Event()
    holder: dict[str, Server] = {}

    def on_conn(conn: Connection) -> None:
        serve_forever_reader(conn, lambda msg: (holder["server"].stop(), done.set()))

    server = Server(HOST, 0, SECRET, on_conn, name="selfstop").start()
    holder["server"] = server
    with connect(*server.address, SECRET) as c:
        c.send("shutdown")
        assert done.wait(10)
    wait_until(lambda: not (set(threading.enumerate()) - before), what="threads to exit")


# -- reader loop and dispatcher ------------------------------------------------------


def test_serve_forever_reader_survives_handler_errors() -> None:
    a, b = socket.socketpair()
    conn = Connection(b, peer="pair")
    seen: list[object] = []
    closed: queue.Queue[Exception | None] = queue.Queue()

    def handler(msg: object) -> None:
        if msg == "boom":
            raise ValueError("handler bug")
        seen.append(msg)

    t = threading.Thread(target=serve_forever_reader, args=(conn, handler, closed.put))
    t.start()
    with a:
        for m in ("boom", 1, "boom", 2):
            send_frame(a, pickle.dumps(m, protocol=5))
        wait_until(lambda: seen == [1, 2], what="messages after the failures")
    assert closed.get(timeout=10) is None  # clean EOF
    t.join(10)
    assert conn.closed


def test_dispatcher() -> None:
    calls: list[tuple[str, Any]] = []
    d = Dispatcher({Heartbeat: lambda m, *extra: calls.append(("hb", (m.n, *extra))) or "ret"})
    d.register(TaskMsg, lambda m: calls.append(("task", m.task_id)))
    assert d.dispatch(Heartbeat("e", 1)) == "ret"
    d.dispatch(Heartbeat("e", 2), "conn")
    d(SpecialHeartbeat("e", 3))  # resolved through the base class
    d.dispatch(TaskMsg(7, "s", ()))
    assert calls == [("hb", (1,)), ("hb", (2, "conn")), ("hb", (3,)), ("task", 7)]
    with pytest.raises(ProtocolError, match="unknown message type .*str"):
        d.dispatch("nope")


def test_dispatcher_unknown_message_drops_peer(servers: Callable[..., Server]) -> None:
    handled: queue.Queue[Any] = queue.Queue()
    closed: queue.Queue[Exception | None] = queue.Queue()
    d = Dispatcher({Heartbeat: handled.put})
    server = servers(lambda conn: serve_forever_reader(conn, d, closed.put))
    with connect(*server.address, SECRET) as c:
        c.send(Heartbeat("e", 1))
        assert handled.get(timeout=10) == Heartbeat("e", 1)
        c.send(object())
        err = closed.get(timeout=10)
        assert isinstance(err, ProtocolError) and "unknown message type" in str(err)
        with pytest.raises(ConnectionClosed):
            c.recv(timeout=10)


# -- secrets -------------------------------------------------------------------------


def test_load_secret_sources(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    monkeypatch.delenv("SPARKCTL_CONF_DIR", raising=False)
    assert load_secret() is None
    assert load_secret(str(tmp_path)) is None

    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / "secret").write_bytes(b"  from-env-dir\n")
    monkeypatch.setenv("SPARKCTL_CONF_DIR", str(env_dir))
    assert load_secret() == b"from-env-dir"

    arg_dir = tmp_path / "arg"
    arg_dir.mkdir()
    (arg_dir / "secret").write_bytes(b"from-arg\n")
    assert load_secret(str(arg_dir)) == b"from-arg"  # the argument beats the env var

    monkeypatch.setenv("SPARKCTL_SECRET", " from-env \n")
    assert load_secret(str(arg_dir)) == b"from-env"  # the env secret beats any file


def test_create_secret_file(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    conf = tmp_path / "conf"
    secret = create_secret_file(str(conf))
    assert len(secret) == 64 and bytes.fromhex(secret.decode())
    assert stat.S_IMODE(os.stat(conf / "secret").st_mode) == 0o600
    assert create_secret_file(str(conf)) == secret  # existing file kept
    assert load_secret(str(conf)) == secret
