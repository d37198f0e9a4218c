"""Tests of the handshake as a state machine, its event-loop driver, and the block server's
accept path.

```
 Handshake (rpc.auth)           payloads in, payloads out: no socket
 PendingHandshake (rpc.nonblocking)   drives it on a non-blocking socket
   ├─ BlockServer.listen: accepts and authenticates in its selector loop
   └─ ConnectionShuffleClient._dial_all: dials many executors in one selector
```
The machine is checked against the wire format its module documents (HMACs recomputed
here with ``hmac``); the event-loop ends against the blocking ``rpc.Server`` and
``rpc.connect``, which tests/test_rpc.py covers. Everything runs on 127.0.0.x with real
sockets; servers run in this process's threads and every one is stopped. Nothing sleeps
to wait for a condition: sockets are read with timeouts, or conditions polled against a
deadline.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import pickle
import re
import select
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import sparkctl.executor.block_server as block_server
from sparkctl.errors import AuthenticationError, ConnectionClosed
from sparkctl.executor.block_server import BlockServer
from sparkctl.executor.messages import BlockData, FetchCachedBlock
from sparkctl.executor.shuffle_client import ConnectionShuffleClient
from sparkctl.rpc import Connection, Server, connect, recv_frame, send_frame
from sparkctl.rpc.auth import MAGIC, MAX_AUTH_FRAME, PROTOCOL_VERSION, Handshake
from sparkctl.rpc.connection import frame_message
from sparkctl.rpc.framing import HEADER
from sparkctl.rpc.nonblocking import PendingHandshake, _resolve, start_dial
from sparkctl.storage.block_manager import BlockManager
from sparkctl.storagelevel import StorageLevel
from tests.clusters import wait_for

ROOT = Path(__file__).resolve().parents[1]
SECRET = b"nonblocking-handshake-test-secret"
OTHER_SECRET = b"a-different-cluster-secret"
HOST = "127.0.0.1"
PREFIX = MAGIC + struct.pack("!H", PROTOCOL_VERSION)
FAILURE_FRAME = HEADER.pack(len(PREFIX) + 1) + PREFIX + b"F"
BLOCK_ID, BLOCK_BYTES = "rdd_3_1", b"cached partition bytes " * 40

pytestmark = pytest.mark.timeout(30)


# ---------------------------------------------------------------------------- helpers
def wait_until(condition: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    wait_for(condition, timeout, what, interval=0.01)


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def raw_connect(address: tuple[str, int]) -> socket.socket:
    return socket.create_connection(address, timeout=5.0)


def read_frame(sock: socket.socket) -> bytes:
    return bytes(recv_frame(sock, MAX_AUTH_FRAME, deadline=time.monotonic() + 5.0))


def read_to_eof(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the peer sends until it closes (a reset counts as a close); fails if it
    has not closed within ``timeout``."""
    sock.settimeout(timeout)
    got = bytearray()
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                break
            got += data
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the server did not close the connection within {timeout:g}s "
                             f"(received {bytes(got)!r})") from None
    return bytes(got)


def is_open(sock: socket.socket) -> bool:
    """The peer has not closed ``sock`` (and sent nothing since)."""
    timeout = sock.gettimeout()
    sock.setblocking(False)  # a socket with a timeout polls before recv, whatever the flags
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except ConnectionResetError:
        return False
    finally:
        sock.settimeout(timeout)


def fetch(address: tuple[str, int], block_id: str = BLOCK_ID, secret: bytes = SECRET) -> object:
    with connect(address[0], address[1], secret, timeout=5.0, tls=None) as conn:
        conn.send(FetchCachedBlock(block_id))
        return conn.recv(timeout=5.0)


def client_handshake_nonblocking(address: tuple[str, int], secret: bytes, timeout: float = 5.0) -> Connection:
    """An event loop's client side: start_dial, then PendingHandshake driven by a selector."""
    where = f"{address[0]}:{address[1]}"
    pending = PendingHandshake(start_dial(*address), secret, "client", where, timeout, connecting=True)
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(pending.sock, pending.events())
            while True:
                assert sel.select(max(0.0, pending.deadline - time.monotonic())), "handshake stalled"
                if pending.advance():
                    sel.unregister(pending.sock)
                    return pending.connection()
                sel.modify(pending.sock, pending.events())
    except BaseException:
        pending.close()
        raise


def mac(label: bytes, first: bytes, second: bytes, secret: bytes = SECRET) -> bytes:
    """The MACs as rpc/auth.py's docstring specifies them."""
    return hmac.new(secret, label + first + second, hashlib.sha256).digest()


class _MakesDirectory:
    """Unpickling this creates a directory: proof that something was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (self.path,)


# ---------------------------------------------------------------------------- fixtures
class ListeningBlockServer(BlockServer):
    address: tuple[str, int]  # set by listen(), which the fixture calls


@pytest.fixture(autouse=True)
def _no_threads_left() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    wait_until(lambda: not [t for t in threading.enumerate() if t not in before and t.is_alive()],
               "the test's server threads to end")


@pytest.fixture
def refusals() -> Iterator[list[str]]:
    """The block server's warnings (it logs every socket it refuses, with the reason)."""
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("sparkctl.executor")
    handler = Collect(logging.WARNING)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if not logger.level or logger.level > logging.WARNING else logger.level)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(old_level)


@pytest.fixture
def block_servers(tmp_path: Path) -> Iterator[Callable[..., ListeningBlockServer]]:
    """``make(secret, host)``: a started BlockServer listening on ``host`` that holds
    BLOCK_ID; each is stopped (and its loop joined) after the test."""
    servers: list[ListeningBlockServer] = []

    def make(secret: bytes = SECRET, host: str = HOST) -> ListeningBlockServer:
        blocks = BlockManager(1 << 20, str(tmp_path / f"blocks-{len(servers)}"))
        blocks.put(BLOCK_ID, BLOCK_BYTES, StorageLevel.MEMORY_ONLY)
        server = ListeningBlockServer(str(tmp_path), blocks, secret)
        server.listen(host)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
        assert not server._thread.is_alive(), "the block server's loop did not stop"


@pytest.fixture
def echo_server() -> Iterator[Server]:
    """The blocking rpc.Server, answering each message with ("echo", message)."""
    def on_connection(conn: Connection) -> None:
        try:
            while True:
                conn.send(("echo", conn.recv()))
        except ConnectionClosed:
            pass

    server = Server(HOST, 0, SECRET, on_connection, name="echo", tls=None).start()
    yield server
    server.stop()


# ---------------------------------------------------------------------------- the state machine alone
def pair(server_secret: bytes = SECRET, client_secret: bytes = SECRET) -> tuple[Handshake, Handshake]:
    return Handshake(server_secret, "server", "client-peer"), Handshake(client_secret, "client", "server-peer")


def test_machines_fed_each_others_payloads_complete_as_the_wire_format_says() -> None:
    server, client = pair()
    assert client.first() is None  # the server speaks first
    challenge = server.first()
    assert challenge is not None and challenge[:len(PREFIX) + 1] == PREFIX + b"C"
    server_nonce = challenge[len(PREFIX) + 1:]
    assert len(server_nonce) == 32
    assert client.waiting_for == "challenge" and server.waiting_for == "challenge answer"

    answer = client.feed(challenge)
    assert answer is not None and answer[:len(PREFIX) + 1] == PREFIX + b"R"
    mac_c, client_nonce = answer[len(PREFIX) + 1:len(PREFIX) + 33], answer[len(PREFIX) + 33:]
    assert mac_c == mac(b"sparkctl-auth-v1 client", server_nonce, client_nonce)
    assert not client.done and client.waiting_for == "server's verdict"

    welcome = server.feed(answer)
    assert welcome == PREFIX + b"W" + mac(b"sparkctl-auth-v1 server", client_nonce, server_nonce)
    assert not server.done and server.waiting_for == "client's acceptance"

    accept = client.feed(welcome)
    assert accept == PREFIX + b"W" and client.done
    assert server.feed(accept) is None and server.done
    assert server.failure is None and client.failure is None


def test_each_handshake_uses_fresh_nonces() -> None:
    first, second = Handshake(SECRET, "server"), Handshake(SECRET, "server")
    assert first.first() != second.first()
    answers = {Handshake(SECRET, "client").feed(first.first() or b"") for _ in range(3)}
    assert len(answers) == 3


def test_wrong_secret_fails_on_the_server_which_tells_the_client() -> None:
    server, client = pair(client_secret=OTHER_SECRET)
    answer = client.feed(server.first() or b"")
    with pytest.raises(AuthenticationError, match="peer client-peer failed authentication: wrong secret"):
        server.feed(answer or b"")
    assert server.failure == PREFIX + b"F" and not server.done
    with pytest.raises(AuthenticationError, match="server server-peer failed: the server rejected our secret"):
        client.feed(server.failure)
    assert not client.done and client.failure is None  # nothing more to tell a server that refused us


def test_tampered_server_proof_fails_on_the_client_which_tells_the_server() -> None:
    server, client = pair()
    welcome = bytearray(server.feed(client.feed(server.first() or b"") or b"") or b"")
    welcome[-1] ^= 1
    with pytest.raises(AuthenticationError, match="could not prove it knows the secret"):
        client.feed(bytes(welcome))
    assert not client.done and client.failure == PREFIX + b"F"
    with pytest.raises(AuthenticationError, match="rejected this server's proof"):
        server.feed(client.failure)
    assert not server.done


def test_a_server_impostor_without_the_secret_is_caught_by_the_client() -> None:
    impostor, client = pair(server_secret=OTHER_SECRET)
    answer = client.feed(impostor.first() or b"")
    # The impostor cannot check the answer, so it pretends: a welcome under its own key.
    impostor_nonce = (impostor.first() or b"")[len(PREFIX) + 1:]
    client_nonce = (answer or b"")[len(PREFIX) + 33:]
    forged = PREFIX + b"W" + mac(b"sparkctl-auth-v1 server", client_nonce, impostor_nonce, OTHER_SECRET)
    with pytest.raises(AuthenticationError, match="could not prove it knows the secret"):
        client.feed(forged)


def test_reflected_challenge_answer_is_refused() -> None:
    """An attacker who sends the server's own messages back cannot pass for a client."""
    server = Handshake(SECRET, "server")
    challenge = server.first() or b""
    with pytest.raises(AuthenticationError, match="malformed challenge answer"):
        server.feed(challenge)


@pytest.mark.parametrize("role, frame_, reason, tells_peer", [
    ("server", b"GET / HTTP/1.1\r\n", "did not speak the sparkctl handshake", False),
    ("server", b"", "did not speak the sparkctl handshake", False),
    ("server", MAGIC, "truncated challenge answer", False),
    ("server", MAGIC + struct.pack("!H", PROTOCOL_VERSION + 1) + b"R" + bytes(64),
     f"protocol version {PROTOCOL_VERSION + 1}, this process speaks {PROTOCOL_VERSION}", False),
    ("server", PREFIX + b"W" + bytes(32), "malformed challenge answer", True),  # kind
    ("server", PREFIX + b"R" + bytes(63), "malformed challenge answer", True),  # body length
    ("server", PREFIX + b"R" + bytes(65), "malformed challenge answer", True),
    ("server", PREFIX + b"F" + b"why", "malformed challenge answer", True),  # F is not expected here
    ("client", b"SPARKCTL-AUTX" + struct.pack("!H", PROTOCOL_VERSION) + b"C" + bytes(32),
     "did not speak the sparkctl handshake", False),
    ("client", MAGIC + struct.pack("!H", 0) + b"C" + bytes(32), "protocol version 0", False),
    ("client", PREFIX + b"R" + bytes(64), "malformed challenge", True),
    ("client", PREFIX + b"C" + bytes(31), "malformed challenge", True),
])
def test_malformed_messages_raise_with_a_clear_reason(role: str, frame_: bytes, reason: str,
                                                      tells_peer: bool) -> None:
    machine = Handshake(SECRET, role, "p")
    with pytest.raises(AuthenticationError, match=reason.replace("(", r"\(")) as e:
        machine.feed(frame_)
    assert "p" in str(e.value) and not machine.done
    assert machine.failure == (PREFIX + b"F" if tells_peer else None)
    with pytest.raises(AuthenticationError, match="after the handshake failed"):
        machine.feed(frame_)  # a failed machine stays failed


def test_a_message_after_done_is_refused() -> None:
    server, client = pair()
    accept = client.feed(server.feed(client.feed(server.first() or b"") or b"") or b"")
    assert server.feed(accept or b"") is None
    assert server.done and client.done
    for machine in (server, client):
        with pytest.raises(AuthenticationError, match="sent a message after the handshake done"):
            machine.feed(PREFIX + b"W")


@pytest.mark.parametrize("secret", [b"", bytearray(), "a str secret", None])
def test_empty_or_non_bytes_secret_is_refused(secret: object) -> None:
    for role in ("server", "client"):
        with pytest.raises(AuthenticationError, match="empty or non-bytes shared secret"):
            Handshake(secret, role)  # type: ignore[arg-type]


def test_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError, match="role"):
        Handshake(SECRET, "peer")


def test_a_listening_block_server_needs_a_secret(tmp_path: Path) -> None:
    server = BlockServer(str(tmp_path), BlockManager(1 << 20, str(tmp_path / "b")), b"")
    with pytest.raises(ValueError, match="needs the cluster secret"):
        server.listen(HOST)
    server.stop()  # never started: releases its wake-up pair
    server._selector.close()
    server._waker.close()


# ---------------------------------------------------------------------------- interop both ways
def test_nonblocking_client_against_the_blocking_server(echo_server: Server) -> None:
    conn = client_handshake_nonblocking(echo_server.address, SECRET)
    try:
        for msg in ({"stage": 3}, b"x" * 100_000, None):
            conn.send(msg)
            assert conn.recv(timeout=5.0) == ("echo", msg)
    finally:
        conn.close()


def test_nonblocking_client_with_a_wrong_secret_is_told_by_the_blocking_server(echo_server: Server) -> None:
    with pytest.raises(AuthenticationError, match="the server rejected our secret"):
        client_handshake_nonblocking(echo_server.address, OTHER_SECRET)


def test_nonblocking_client_refuses_a_blocking_server_with_another_secret() -> None:
    with Server(HOST, 0, OTHER_SECRET, lambda conn: conn.close(), name="other", tls=None) as other:
        with pytest.raises(AuthenticationError, match="rejected our secret|could not prove"):
            client_handshake_nonblocking(other.address, SECRET)


def test_blocking_client_against_a_listening_block_server(block_servers: Callable[..., ListeningBlockServer]) -> None:
    server = block_servers()
    with connect(HOST, server.address[1], SECRET, timeout=5.0, tls=None) as conn:
        conn.send(FetchCachedBlock("rdd_99_0"))
        assert conn.recv(timeout=5.0) == BlockData(None)
        conn.send(FetchCachedBlock(BLOCK_ID))
        assert conn.recv(timeout=5.0) == BlockData(BLOCK_BYTES)


def test_blocking_client_with_a_wrong_secret_is_told_by_the_block_server(
        block_servers: Callable[..., ListeningBlockServer], refusals: list[str]) -> None:
    server = block_servers()
    with pytest.raises(AuthenticationError, match="the server rejected our secret"):
        connect(HOST, server.address[1], OTHER_SECRET, timeout=5.0, tls=None)
    wait_until(lambda: any("wrong secret" in r for r in refusals), "the refusal to be logged")
    assert fetch(server.address) == BlockData(BLOCK_BYTES)


def test_nonblocking_client_against_a_listening_block_server(block_servers: Callable[..., ListeningBlockServer]) -> None:
    server = block_servers()
    conn = client_handshake_nonblocking(server.address, SECRET)
    try:
        conn.send(FetchCachedBlock(BLOCK_ID))
        assert conn.recv(timeout=5.0) == BlockData(BLOCK_BYTES)
    finally:
        conn.close()


def _handshake_then_burst(address: tuple[str, int], requests: list[object]) -> Connection:
    """A client whose acceptance of the server's proof and its first requests leave in
    one send: they arrive in one segment, and the server must read only its handshake."""
    sock = raw_connect(address)
    client = Handshake(SECRET, "client")
    send_frame(sock, client.feed(read_frame(sock)) or b"")
    accept = client.feed(read_frame(sock))
    assert client.done and accept is not None
    sock.sendall(frame(accept) + b"".join(frame_message(r) for r in requests))
    return Connection(sock)


def test_requests_in_the_same_burst_as_the_handshake_end_are_answered(
        block_servers: Callable[..., ListeningBlockServer]) -> None:
    server = block_servers()
    with _handshake_then_burst(server.address, [FetchCachedBlock(BLOCK_ID), FetchCachedBlock("nope"),
                                                FetchCachedBlock(BLOCK_ID)]) as conn:
        assert conn.recv(timeout=5.0) == BlockData(BLOCK_BYTES)
        assert conn.recv(timeout=5.0) == BlockData(None)
        assert conn.recv(timeout=5.0) == BlockData(BLOCK_BYTES)


def test_blocking_server_also_leaves_a_burst_request_for_the_connection(echo_server: Server) -> None:
    with _handshake_then_burst(echo_server.address, ["first"]) as conn:
        assert conn.recv(timeout=5.0) == ("echo", "first")


# ---------------------------------------------------------------------------- the block server's accept path
def test_a_handshake_in_progress_holds_up_no_other_client(block_servers: Callable[..., ListeningBlockServer]) -> None:
    server = block_servers()  # the default timeout (10 s): the silent socket stays pending
    silent = raw_connect(server.address)
    try:
        assert read_frame(silent).startswith(PREFIX + b"C")  # accepted, its handshake begun
        for _ in range(3):
            assert fetch(server.address) == BlockData(BLOCK_BYTES)
        assert is_open(silent), "the silent socket was closed long before its handshake timeout"
    finally:
        silent.close()


def test_a_silent_socket_is_closed_after_the_handshake_timeout(
        monkeypatch: pytest.MonkeyPatch, block_servers: Callable[..., ListeningBlockServer], refusals: list[str]) -> None:
    monkeypatch.setattr(block_server, "HANDSHAKE_TIMEOUT", 0.3)
    server = block_servers()
    start = time.monotonic()
    silent = raw_connect(server.address)
    try:
        assert read_frame(silent).startswith(PREFIX + b"C")
        assert read_to_eof(silent) == b""  # closed, with nothing more said
        elapsed = time.monotonic() - start
    finally:
        silent.close()
    assert 0.25 <= elapsed < 3.0, elapsed
    wait_until(lambda: any("did not complete the handshake in time (waiting for the challenge answer)" in r
                           for r in refusals), "the timeout to be logged")
    assert fetch(server.address) == BlockData(BLOCK_BYTES)


def test_sockets_beyond_max_pending_are_refused_and_room_comes_back(
        monkeypatch: pytest.MonkeyPatch, block_servers: Callable[..., ListeningBlockServer],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sparkctl.executor")
    monkeypatch.setattr(block_server, "MAX_PENDING", 4)
    monkeypatch.setattr(block_server, "HANDSHAKE_TIMEOUT", 0.5)
    server = block_servers()
    silent = [raw_connect(server.address) for _ in range(4)]
    flood: list[socket.socket] = []
    try:
        for sock in silent:
            assert read_frame(sock).startswith(PREFIX + b"C")  # all four handshakes under way
        flood = [raw_connect(server.address) for _ in range(6)]
        for sock in flood:
            assert read_to_eof(sock) == b"", "a socket beyond MAX_PENDING got a challenge"
        # said once, not once per socket (a flood of connects must not flood the log)
        said = [r.getMessage() for r in caplog.records if "handshakes already in progress" in r.getMessage()]
        assert said == ["block server: refused 1 connection(s): 4 handshakes already in progress"]
        for sock in silent:
            assert read_to_eof(sock) == b""  # timed out
        assert fetch(server.address) == BlockData(BLOCK_BYTES)
        # every slot is free again, the served client's included
        again = [raw_connect(server.address) for _ in range(4)]
        flood += again
        for sock in again:
            assert read_frame(sock).startswith(PREFIX + b"C")
    finally:
        for sock in silent + flood:
            sock.close()


# Run in a process of its own: it lowers the open-file limit until accept() fails.
_OUT_OF_FDS = r"""
import json, logging, resource, socket, sys, tempfile, time
from sparkctl.executor.block_server import BlockServer
from sparkctl.executor.messages import FetchCachedBlock
from sparkctl.rpc import Connection, client_handshake
from sparkctl.storage.block_manager import BlockManager
from sparkctl.storagelevel import StorageLevel

warnings = []
class Collect(logging.Handler):
    def emit(self, record): warnings.append(record.getMessage())
logging.getLogger("sparkctl.executor").addHandler(Collect(logging.WARNING))
logging.getLogger("sparkctl.executor").setLevel(logging.WARNING)
local = tempfile.mkdtemp(dir=sys.argv[1])
blocks = BlockManager(1 << 20, local + "/blocks")
blocks.put("b", b"the block", StorageLevel.MEMORY_ONLY)
server = BlockServer(local, blocks, b"secret")
address = server.listen("127.0.0.1")
server.start()
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
hogs = []
try:
    while True:
        hogs.append(socket.socket())
except OSError:
    pass
hogs.pop().close()  # one left: the client's; the server's accept() then fails
client = socket.create_connection(address, timeout=10)
cpu = time.process_time()
time.sleep(0.5)
cpu = time.process_time() - cpu
for hog in hogs:
    hog.close()
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
client_handshake(client, b"secret", 10)  # the waiting client is accepted once fds are back
conn = Connection(client)
conn.send(FetchCachedBlock("b"))
reply = conn.recv(timeout=10)
conn.close()
server.stop()
print(json.dumps({"cpu": cpu, "warnings": warnings, "data": reply.data.decode()}))
"""


def test_out_of_file_descriptors_pauses_accepting_instead_of_spinning(tmp_path: Path) -> None:
    """accept() failing with EMFILE leaves the listener readable: the loop must not retry
    at once (it spun a core and logged a warning per retry, ~150,000 a second), and the
    waiting client must be served once descriptors are free again."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", _OUT_OF_FDS, str(tmp_path)], capture_output=True, text=True,
                         env=env, timeout=25)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["data"] == "the block"
    assert result["cpu"] < 0.25, f"the loop used {result['cpu']:.2f}s of CPU in 0.5s while out of fds"
    assert 1 <= len(result["warnings"]) <= 2 and "accept failed" in result["warnings"][0], result["warnings"]


def _wrong_secret_answer(sock: socket.socket) -> None:
    send_frame(sock, Handshake(OTHER_SECRET, "client").feed(read_frame(sock)) or b"")


def _reflect_challenge(sock: socket.socket) -> None:
    send_frame(sock, read_frame(sock))


def _shut_after(data: bytes) -> Callable[[socket.socket], None]:
    def act(sock: socket.socket) -> None:
        read_frame(sock)
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
    return act


def _send_after_challenge(data: bytes) -> Callable[[socket.socket], None]:
    def act(sock: socket.socket) -> None:
        read_frame(sock)
        sock.sendall(data)
    return act


def _reset(sock: socket.socket) -> None:
    read_frame(sock)
    sock.sendall(b"\0\0\0")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("act, told, reason", [
    (_send_after_challenge(b"GET / HTTP/1.1\r\nHost: executor\r\n\r\n"), b"", "oversized handshake frame"),
    (_send_after_challenge(frame(os.urandom(48).replace(MAGIC[:1], b"x"))), b"",
     "did not speak the sparkctl handshake"),
    (_send_after_challenge(HEADER.pack(MAX_AUTH_FRAME + 1) + bytes(MAX_AUTH_FRAME + 1)), b"",
     "oversized handshake frame"),
    (_send_after_challenge(HEADER.pack(1 << 62)), b"", "oversized handshake frame"),
    (_wrong_secret_answer, FAILURE_FRAME, "wrong secret"),
    (_reflect_challenge, FAILURE_FRAME, "malformed challenge answer"),
    (_shut_after(b""), b"", "closed the connection during the handshake, before sending the challenge answer"),
    (_shut_after(HEADER.pack(80)[:5]), b"", "closed the connection during the handshake"),
    (_shut_after(HEADER.pack(80) + PREFIX), b"", "closed the connection during the handshake"),
    (_reset, None, "closed the connection during the handshake|network error during the handshake"),
], ids=["http", "not-magic", "oversized", "huge-header", "wrong-secret", "reflected", "eof-before-answer",
        "eof-mid-header", "eof-mid-body", "reset"])
def test_a_bad_handshake_is_refused_and_the_loop_goes_on(
        block_servers: Callable[..., ListeningBlockServer], refusals: list[str],
        act: Callable[[socket.socket], None], told: bytes | None, reason: str) -> None:
    server = block_servers()
    sock = raw_connect(server.address)
    try:
        act(sock)
        if told is not None:
            assert read_to_eof(sock) == told
    finally:
        sock.close()
    wait_until(lambda: any("refused connection" in r and re.search(reason, r) for r in refusals),
               f"a refusal saying {reason!r} (logged: {refusals})")
    assert server._thread.is_alive()
    assert fetch(server.address) == BlockData(BLOCK_BYTES)


def test_nothing_is_unpickled_before_the_handshake(
        tmp_path: Path, block_servers: Callable[..., ListeningBlockServer], refusals: list[str]) -> None:
    probe = tmp_path / "made-by-the-probe"
    pickle.loads(pickle.dumps(_MakesDirectory(str(probe))))  # the payload works when loaded
    assert probe.is_dir()

    server = block_servers()
    instead_of_answer = tmp_path / "made-instead-of-the-answer"
    instead_of_accept = tmp_path / "made-instead-of-the-acceptance"
    first = pickle.dumps(_MakesDirectory(str(instead_of_answer)))
    last = pickle.dumps(_MakesDirectory(str(instead_of_accept)))
    assert len(first) <= MAX_AUTH_FRAME and len(last) <= MAX_AUTH_FRAME  # refused for content, not size

    sock = raw_connect(server.address)  # a pickle as the first frame
    try:
        read_frame(sock)
        send_frame(sock, first)
        assert read_to_eof(sock) == b""
    finally:
        sock.close()

    sock = raw_connect(server.address)  # a right answer, then a pickle instead of the acceptance
    try:
        client = Handshake(SECRET, "client")
        send_frame(sock, client.feed(read_frame(sock)) or b"")
        client.feed(read_frame(sock))
        send_frame(sock, last)
        assert read_to_eof(sock) == b""
    finally:
        sock.close()

    wait_until(lambda: sum("did not speak the sparkctl handshake" in r for r in refusals) == 2,
               f"both refusals to be logged ({refusals})")
    assert fetch(server.address) == BlockData(BLOCK_BYTES)
    assert not instead_of_answer.exists() and not instead_of_accept.exists()


def test_a_client_may_send_its_acceptance_long_after_the_handshake_timeout(
        monkeypatch: pytest.MonkeyPatch, block_servers: Callable[..., ListeningBlockServer], refusals: list[str]) -> None:
    """A client has proven itself once its answer checks out: the acceptance it keeps for
    its first request is no handshake left unfinished (a reader may dial a peer well
    before its window lets it ask that peer anything)."""
    monkeypatch.setattr(block_server, "HANDSHAKE_TIMEOUT", 0.2)
    server = block_servers()
    conn = client_handshake_nonblocking(server.address, SECRET)
    try:
        time.sleep(0.6)  # three handshake timeouts pass before the first request
        conn.send(FetchCachedBlock(BLOCK_ID))
        assert conn.recv(timeout=5.0) == BlockData(BLOCK_BYTES)
    finally:
        conn.close()
    assert not [r for r in refusals if "refused" in r or "did not complete" in r], refusals


def test_a_client_that_rejects_the_server_proof_is_dropped(
        block_servers: Callable[..., ListeningBlockServer], refusals: list[str]) -> None:
    server = block_servers()
    sock = raw_connect(server.address)
    try:
        client = Handshake(SECRET, "client")
        send_frame(sock, client.feed(read_frame(sock)) or b"")
        read_frame(sock)  # the server's proof, rejected whatever it says
        sock.sendall(FAILURE_FRAME + frame_message(FetchCachedBlock(BLOCK_ID)))
        assert read_to_eof(sock) == b""  # no answer to the request behind the refusal
    finally:
        sock.close()
    wait_until(lambda: any("rejected this server's proof" in r for r in refusals), f"the refusal ({refusals})")
    assert fetch(server.address) == BlockData(BLOCK_BYTES)


def test_more_than_one_handshake_message_at_once_is_refused(
        block_servers: Callable[..., ListeningBlockServer], refusals: list[str]) -> None:
    """Neither side sends anything after a handshake message until it is answered."""
    server = block_servers()
    sock = raw_connect(server.address)
    try:
        answer = Handshake(SECRET, "client").feed(read_frame(sock)) or b""
        sock.sendall(frame(answer) + frame(PREFIX + b"W"))
        read_to_eof(sock)
    finally:
        sock.close()
    wait_until(lambda: any("sent more than the challenge answer before it was answered" in r for r in refusals),
               f"the refusal ({refusals})")

    listener = socket.create_server((HOST, 0))
    listener.settimeout(5.0)

    def chatty_server() -> None:
        peer, _ = listener.accept()
        with peer:
            peer.sendall(frame(Handshake(SECRET, "server").first() or b"") + frame(b"more"))
            read_to_eof(peer)

    thread = threading.Thread(target=chatty_server, name="chatty-server")
    thread.start()
    try:
        with pytest.raises(AuthenticationError, match="sent more than the challenge before it was answered"):
            client_handshake_nonblocking(listener.getsockname()[:2], SECRET)
    finally:
        thread.join(5)
        listener.close()


def test_the_acceptance_leaves_with_the_first_message_in_one_segment() -> None:
    """What a server made of the handshake machine sees of a dialling event loop: the
    answer, then nothing until the client's first message, which brings the acceptance."""
    listener = socket.create_server((HOST, 0))
    listener.settimeout(5.0)
    seen: dict[str, object] = {}

    def server() -> None:
        sock, _ = listener.accept()
        with sock:
            machine = Handshake(SECRET, "server")
            send_frame(sock, machine.first() or b"")
            send_frame(sock, machine.feed(read_frame(sock)) or b"")
            seen["quiet"] = not select_readable(sock, 0.3)
            sock.settimeout(5.0)
            seen["first receive"] = sock.recv(4096)
            read_to_eof(sock)

    thread = threading.Thread(target=server, name="machine-server")
    thread.start()
    try:
        conn = client_handshake_nonblocking(listener.getsockname()[:2], SECRET)
        wait_until(lambda: "quiet" in seen, "the server to look for an early acceptance")
        conn.send("first")
        wait_until(lambda: "first receive" in seen, "the server's first receive")
        conn.close()
    finally:
        thread.join(5)
        listener.close()
    assert seen["quiet"], "the client sent its acceptance before it had anything to ask"
    assert seen["first receive"] == frame(PREFIX + b"W") + frame_message("first")


def select_readable(sock: socket.socket, timeout: float) -> bool:
    return bool(select.select([sock], [], [], timeout)[0])


def test_accepted_sockets_inherit_the_listener_s_tuning(block_servers: Callable[..., ListeningBlockServer]) -> None:
    """The block server tunes its listener once (no Nagle delay, keepalive); Linux passes
    both to every socket it accepts, each of which would otherwise cost two calls."""
    server = block_servers()
    conn = client_handshake_nonblocking(server.address, SECRET)
    try:
        conn.send(FetchCachedBlock(BLOCK_ID))
        assert conn.recv(timeout=5.0) == BlockData(BLOCK_BYTES)
        peers = [key.data for key in list(server._selector.get_map().values())
                 if isinstance(key.data, block_server._Peer)]
        assert len(peers) == 1
        accepted = peers[0].conn._sock
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert accepted.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        dialled = conn._sock
        assert dialled.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert dialled.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
    finally:
        conn.close()


# ---------------------------------------------------------------------------- dialling many at once
def _unused_address(host: str) -> tuple[str, int]:
    with socket.socket() as s:
        s.bind((host, 0))
        return host, s.getsockname()[1]


def test_dial_all_reports_each_address_on_its_own(block_servers: Callable[..., ListeningBlockServer]) -> None:
    good = block_servers(host="127.0.0.1")
    other = block_servers(secret=OTHER_SECRET, host="127.0.0.3")
    nothing = _unused_address("127.0.0.2")
    client = ConnectionShuffleClient(SECRET, timeout=5.0)
    start = time.monotonic()
    results = client._dial_all([good.address, nothing, other.address])
    elapsed = time.monotonic() - start
    try:
        assert elapsed < 5.0
        assert set(results) == {good.address, nothing, other.address}
        conn = results[good.address]
        assert isinstance(conn, Connection)
        conn.send(FetchCachedBlock(BLOCK_ID))
        assert conn.recv(timeout=5.0) == BlockData(BLOCK_BYTES)
        refused = results[nothing]
        assert isinstance(refused, str)
        assert f"cannot connect to 127.0.0.2:{nothing[1]}" in refused and "ECONNREFUSED" in refused
        wrong = results[other.address]
        assert isinstance(wrong, str)
        assert f"127.0.0.3:{other.address[1]}" in wrong and "the server rejected our secret" in wrong
    finally:
        for result in results.values():
            if isinstance(result, Connection):
                result.close()


def test_connect_keeps_the_connections_and_remembers_the_failures(block_servers: Callable[..., ListeningBlockServer]) -> None:
    good, also_good = block_servers(host="127.0.0.1"), block_servers(host="127.0.0.3")
    nothing = _unused_address("127.0.0.2")
    client = ConnectionShuffleClient(SECRET, timeout=5.0)
    try:
        client.connect([good.address, nothing, also_good.address])
        assert set(client.peers) == {good.address, also_good.address}
        assert set(client.failed) == {nothing} and "ECONNREFUSED" in client.failed[nothing]
        for address in (good.address, also_good.address):
            conn = client.peers[address].conn
            conn.send(FetchCachedBlock(BLOCK_ID))
            assert conn.recv(timeout=5.0) == BlockData(BLOCK_BYTES)
    finally:
        client.close_all()
        client.selector.close()


def test_dial_all_times_out_a_peer_that_never_sends_the_challenge(
        block_servers: Callable[..., ListeningBlockServer]) -> None:
    good = block_servers()
    with socket.socket() as mute:  # the kernel completes the connect; nobody ever answers
        mute.bind(("127.0.0.4", 0))
        mute.listen(8)
        address = mute.getsockname()[:2]
        client = ConnectionShuffleClient(SECRET, timeout=0.5)
        start = time.monotonic()
        results = client._dial_all([address, good.address])
        elapsed = time.monotonic() - start
    conn = results[good.address]
    assert isinstance(conn, Connection)
    conn.close()
    error = results[address]
    assert isinstance(error, str)
    assert "did not complete the handshake in time (waiting for the challenge)" in error
    assert 0.45 <= elapsed < 3.0, elapsed


def test_dial_all_times_out_a_server_that_never_gives_its_verdict(
        block_servers: Callable[..., ListeningBlockServer]) -> None:
    good = block_servers()
    listener = socket.create_server(("127.0.0.5", 0))
    listener.settimeout(5.0)
    address = listener.getsockname()[:2]
    release = threading.Event()

    def half_a_server() -> None:
        sock, _ = listener.accept()
        with sock:
            send_frame(sock, Handshake(SECRET, "server").first() or b"")
            release.wait(10)

    thread = threading.Thread(target=half_a_server, name="half-a-server")
    thread.start()
    try:
        client = ConnectionShuffleClient(SECRET, timeout=0.5)
        start = time.monotonic()
        results = client._dial_all([address, good.address])
        elapsed = time.monotonic() - start
    finally:
        release.set()
        thread.join(5)
        listener.close()
    conn = results[good.address]
    assert isinstance(conn, Connection)
    conn.close()
    error = results[address]
    assert isinstance(error, str)
    assert "did not complete the handshake in time (waiting for the server's verdict)" in error
    assert 0.45 <= elapsed < 3.0, elapsed


def test_an_ip_literal_is_dialled_without_the_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    """Executors advertise IP literals; a wide shuffle dials thousands of them."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def counted(host: str, *args: object, **kwargs: object) -> object:
        asked.append(host)
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", counted)
    assert _resolve("127.0.0.3", 7077) == (socket.AF_INET, ("127.0.0.3", 7077))
    assert _resolve("::1", 7077) == (socket.AF_INET6, ("::1", 7077, 0, 0))
    assert asked == []
    family, address = _resolve("localhost", 7077)  # a name still goes to the resolver
    assert asked == ["localhost"] and address[1] == 7077 and family in (socket.AF_INET, socket.AF_INET6)
