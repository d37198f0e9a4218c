"""Shared-secret mutual authentication of a fresh TCP connection, and secret storage.

Connections carry pickles, and unpickling runs arbitrary code, so nothing a peer sends
is unpickled before that peer has proved it knows the cluster secret.  The handshake
below runs on raw frames (at most :data:`MAX_AUTH_FRAME` bytes each) and only compares
bytes.  It follows CPython's ``multiprocessing.connection`` (``deliver_challenge`` /
``answer_challenge``) but uses HMAC-SHA256 and authenticates both directions, so a
client also never sends work to, or accepts results from, an impostor server.

Wire format (every message is one frame; ``H`` = ``MAGIC`` + 2-byte version)::

    server -> client   H "C" server_nonce[32]                   challenge
    client -> server   H "R" mac_c[32] client_nonce[32]         answer + counter-challenge
    server -> client   H "W" mac_s[32]   |   H "F"              welcome + proof, or failure
    client -> server   H "W"             |   H "F"              client accepts, or not

    mac_c = HMAC-SHA256(secret, b"sparkctl-auth-v1 client" + server_nonce + client_nonce)
    mac_s = HMAC-SHA256(secret, b"sparkctl-auth-v1 server" + client_nonce + server_nonce)

The role labels keep an attacker from reflecting one side's challenge back to it as an
answer, and each MAC covers both nonces. The client's acceptance may leave together with
its first message, and a server may take the client as proven once its answer checks
out, reading the acceptance as the connection's first frame (``rpc.nonblocking``): either
way the client has proven the secret before the server unpickles anything it sends.  The handshake does not protect against a
man in the middle relaying traffic, nor does it encrypt: use it on a trusted network.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import socket
import stat
import struct
import time

from sparkctl.errors import (
    AuthenticationError,
    ConfigError,
    ConnectionClosed,
    FrameTooLargeError,
    RpcTimeoutError,
)
from sparkctl.rpc.framing import recv_frame, send_frame
from sparkctl.util.fsutil import private_makedirs

__all__ = [
    "MAGIC",
    "PROTOCOL_VERSION",
    "MAX_AUTH_FRAME",
    "SECRET_ENV",
    "CONF_DIR_ENV",
    "SECRET_FILE",
    "Handshake",
    "server_handshake",
    "client_handshake",
    "load_secret",
    "create_secret_file",
]

log = logging.getLogger("sparkctl.rpc")

MAGIC = b"SPARKCTL-AUTH"
PROTOCOL_VERSION = 1
_PREFIX = MAGIC + struct.pack("!H", PROTOCOL_VERSION)
_PLEN = len(_PREFIX)
NONCE_SIZE = 32
_MAC_SIZE = hashlib.sha256().digest_size
#: Cap on a handshake frame: the largest legitimate one is 15 + 1 + 32 + 32 = 80 bytes.
MAX_AUTH_FRAME = 256

_CLIENT_LABEL = b"sparkctl-auth-v1 client"
_SERVER_LABEL = b"sparkctl-auth-v1 server"

_CHALLENGE = b"C"
_RESPONSE = b"R"
_WELCOME = b"W"
_FAILURE = b"F"

SECRET_ENV = "SPARKCTL_SECRET"
CONF_DIR_ENV = "SPARKCTL_CONF_DIR"
SECRET_FILE = "secret"


def _mac(secret: bytes, label: bytes, first: bytes, second: bytes) -> bytes:
    # the one-shot form runs in OpenSSL without an HMAC object: a handshake a tenth as dear
    return hmac.digest(secret, label + first + second, "sha256")


def warm() -> None:
    """Have OpenSSL build its HMAC-SHA256 methods now. It does at their first use in a
    process, which costs about 1 ms of CPU and 200 page faults; a process that forks many
    children (a fork server, an executor forking its slots) calls this first, and each
    child's first handshake then costs a quarter of that."""
    _mac(b"\0" * 32, b"", b"", b"")


def _peer_name(sock: socket.socket) -> str:
    try:
        addr = sock.getpeername()
    except OSError:
        return "<unknown peer>"
    if isinstance(addr, tuple):
        host, port = addr[0], addr[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(addr) or "<unix socket>"


class _Fail(Exception):
    """Internal: a handshake step failed for *reason* (turned into AuthenticationError)."""

    def __init__(self, reason: str, tell_peer: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        # Whether the peer spoke our protocol well enough that a FAILURE message is
        # useful to it (it then reports "wrong secret" instead of "connection closed").
        self.tell_peer = tell_peer


def _parse(frame: bytes, expected: tuple[bytes, ...], body_size: int, what: str) -> tuple[bytes, bytes]:
    """One handshake message of a kind in *expected*: ``(kind, body)``. A FAILURE message
    has an empty body; every other kind has exactly *body_size* bytes."""
    if not frame.startswith(MAGIC):
        raise _Fail(f"did not speak the sparkctl handshake (bad {what})")
    if len(frame) < _PLEN + 1:
        raise _Fail(f"sent a truncated {what}")
    (version,) = struct.unpack_from("!H", frame, len(MAGIC))
    if version != PROTOCOL_VERSION:
        raise _Fail(f"speaks sparkctl rpc protocol version {version}, this process speaks {PROTOCOL_VERSION}")
    kind = frame[_PLEN : _PLEN + 1]
    body = frame[_PLEN + 1 :]
    if kind == _FAILURE and _FAILURE in expected and not body:
        return kind, body
    if kind not in expected or kind == _FAILURE or len(body) != body_size:
        raise _Fail(f"sent a malformed {what}", tell_peer=True)
    return kind, body


class Handshake:
    """The handshake as a state machine over frame payloads, apart from any socket: the
    blocking handshakes below drive it, and so can an event loop that owns the I/O.

    ``first()`` is what to send at the start (the server's challenge; nothing for a
    client); ``feed(payload)`` takes each frame the peer sends and returns the payload
    to send back, or None. ``done`` once both sides are proven. A failure raises
    :class:`AuthenticationError`; ``failure`` is then the FAILURE payload to send the
    peer first, when it spoke the protocol well enough to understand it (else None).
    ``waiting_for`` names the message expected next, for timeout and EOF errors.
    """

    def __init__(self, secret: bytes, role: str, peer: str = "<peer>") -> None:
        if not isinstance(secret, (bytes, bytearray)) or not secret:
            # An empty key would make every MAC computable by anyone.
            raise AuthenticationError("an empty or non-bytes shared secret cannot authenticate anything")
        if role not in ("server", "client"):
            raise ValueError(f"role must be 'server' or 'client', not {role!r}")
        self.secret = bytes(secret)
        self.role = role
        self.peer = peer
        self.done = False
        self.failure: bytes | None = None
        self._server_nonce = secrets.token_bytes(NONCE_SIZE) if role == "server" else b""
        self._client_nonce = b""
        self._state = "answer" if role == "server" else "challenge"

    @property
    def waiting_for(self) -> str:
        return {"answer": "challenge answer", "accept": "client's acceptance", "challenge": "challenge",
                "verdict": "server's verdict"}.get(self._state, "nothing")

    @property
    def awaiting_acceptance(self) -> bool:
        """A server whose client has proven itself and been sent this server's proof: only
        the client's acceptance is still to come."""
        return self._state == "accept"

    def first(self) -> bytes | None:
        return _PREFIX + _CHALLENGE + self._server_nonce if self.role == "server" else None

    def feed(self, frame: bytes | bytearray) -> bytes | None:
        """The next payload to send for the peer's *frame* (see the class)."""
        try:
            return self._step(bytes(frame))
        except _Fail as e:
            raise self._error(e) from None

    def _error(self, e: _Fail) -> AuthenticationError:
        self._state = "failed"
        self.failure = _PREFIX + _FAILURE if e.tell_peer else None
        if self.role == "server":
            return AuthenticationError(f"peer {self.peer} failed authentication: {e.reason}")
        return AuthenticationError(f"authentication with server {self.peer} failed: {e.reason}")

    def _step(self, frame: bytes) -> bytes | None:
        secret = self.secret
        state = self._state
        if state == "answer":
            _, body = _parse(frame, (_RESPONSE,), _MAC_SIZE + NONCE_SIZE, "challenge answer")
            mac_c, client_nonce = body[:_MAC_SIZE], body[_MAC_SIZE:]
            if not hmac.compare_digest(mac_c, _mac(secret, _CLIENT_LABEL, self._server_nonce, client_nonce)):
                raise _Fail("wrong secret", tell_peer=True)
            self._state = "accept"
            return _PREFIX + _WELCOME + _mac(secret, _SERVER_LABEL, client_nonce, self._server_nonce)
        if state == "accept":
            kind, _ = _parse(frame, (_WELCOME, _FAILURE), 0, "client's acceptance")
            if kind == _FAILURE:
                raise _Fail("the client rejected this server's proof of the secret (secrets differ?)")
            self._state, self.done = "done", True
            return None
        if state == "challenge":
            _, self._server_nonce = _parse(frame, (_CHALLENGE,), NONCE_SIZE, "challenge")
            self._client_nonce = secrets.token_bytes(NONCE_SIZE)
            self._state = "verdict"
            mac_c = _mac(secret, _CLIENT_LABEL, self._server_nonce, self._client_nonce)
            return _PREFIX + _RESPONSE + mac_c + self._client_nonce
        if state == "verdict":
            kind, mac_s = _parse(frame, (_WELCOME, _FAILURE), _MAC_SIZE, "server's verdict")
            if kind == _FAILURE:
                raise _Fail("the server rejected our secret "
                            "(wrong secret: check SPARKCTL_SECRET / the conf dir's secret file)")
            if not hmac.compare_digest(mac_s, _mac(secret, _SERVER_LABEL, self._client_nonce, self._server_nonce)):
                raise _Fail("the server could not prove it knows the secret (wrong secret or impostor)",
                            tell_peer=True)
            self._state, self.done = "done", True
            return _PREFIX + _WELCOME
        raise _Fail(f"sent a message after the handshake {state}")


class _Channel:
    """The socket plus the handshake's overall deadline."""

    def __init__(self, sock: socket.socket, deadline: float, timeout: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.timeout = timeout

    def send(self, payload: bytes) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise _Fail(f"did not complete the handshake within {self.timeout:g}s")
        self.sock.settimeout(remaining)
        try:
            send_frame(self.sock, payload)
        except RpcTimeoutError as e:
            raise _Fail(f"did not complete the handshake within {self.timeout:g}s") from e
        except OSError as e:
            raise _Fail(f"network error during the handshake: {e}") from e

    def recv(self, what: str) -> bytes:
        try:
            return bytes(recv_frame(self.sock, MAX_AUTH_FRAME, deadline=self.deadline))
        except FrameTooLargeError as e:
            raise _Fail(f"sent an oversized handshake frame instead of the {what} (not a sparkctl peer?)") from e
        except ConnectionClosed as e:
            raise _Fail(f"closed the connection during the handshake, before sending the {what}") from e
        except RpcTimeoutError as e:
            raise _Fail(f"did not complete the handshake within {self.timeout:g}s (waiting for the {what})") from e
        except OSError as e:
            raise _Fail(f"network error during the handshake: {e}") from e


def _run(sock: socket.socket, secret: bytes, timeout: float, role: str) -> None:
    machine = Handshake(secret, role, _peer_name(sock))
    old_timeout = sock.gettimeout()
    chan = _Channel(sock, time.monotonic() + timeout, timeout)
    try:
        try:
            out = machine.first()
            while True:
                if out is not None:
                    chan.send(out)
                if machine.done:
                    return
                out = machine._step(chan.recv(machine.waiting_for))
        except _Fail as e:
            error = machine._error(e)
            if machine.failure is not None:
                try:
                    chan.send(machine.failure)
                except Exception:  # best effort: the peer may be gone already
                    pass
            raise error from None
    finally:
        try:
            sock.settimeout(old_timeout)
        except OSError:  # closed under us (e.g. Server.stop); the caller closes anyway
            pass


def server_handshake(sock: socket.socket, secret: bytes, timeout: float) -> None:
    """Authenticate the client on *sock* (and prove ourselves to it), within *timeout* seconds.

    Raises :class:`AuthenticationError` on a wrong secret, a protocol mismatch, EOF, a
    network error or a timeout; the caller then closes the socket.  The socket's
    previous timeout is restored either way.
    """
    _run(sock, secret, timeout, "server")


def client_handshake(sock: socket.socket, secret: bytes, timeout: float) -> None:
    """Counterpart of :func:`server_handshake` for the connecting side."""
    _run(sock, secret, timeout, "client")


def _secret_path(conf_dir: str | None) -> str | None:
    if conf_dir is None:
        from sparkctl.conf import conf_dir as default_conf_dir  # $SPARKCTL_CONF_DIR, else the project's conf/
        conf_dir = default_conf_dir()
    return os.path.join(conf_dir, SECRET_FILE)


def load_secret(conf_dir: str | None = None) -> bytes | None:
    """Return the cluster secret, or None if none is configured.

    Looks at ``$SPARKCTL_SECRET`` first, then the file ``secret`` in *conf_dir* (or, if
    that is None, in ``$SPARKCTL_CONF_DIR``).  Surrounding whitespace is stripped; an
    empty value counts as unset.
    """
    env = os.environ.get(SECRET_ENV, "").strip()
    if env:
        return env.encode()
    path = _secret_path(conf_dir)
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            value = f.read().strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(f"cannot read the secret file {path}: {e}") from e
    mode = st.st_mode
    # Whoever can write the file chooses the secret, and so may run code on every host.
    if st.st_uid not in (os.geteuid(), 0):
        raise ConfigError(f"secret file {path} belongs to uid {st.st_uid}, not to us (uid {os.geteuid()}) "
                          "or root; whoever owns it chooses the cluster's secret")
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(f"secret file {path} is writable by group or others (mode {stat.S_IMODE(mode):o}); "
                          "chmod 600 it")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("secret file %s is readable by other users (mode %o); chmod 600 it", path, stat.S_IMODE(mode))
    return value or None


def create_secret_file(conf_dir: str) -> bytes:
    """Create ``conf_dir/secret`` holding 32 random bytes, hex-encoded, mode 0600; return it.

    If the file already exists, its (stripped) content is returned instead, so several
    processes racing to initialise a conf dir end up with the same secret.
    """
    private_makedirs(conf_dir)
    path = os.path.join(conf_dir, SECRET_FILE)
    value = secrets.token_hex(NONCE_SIZE).encode()
    try:
        # O_EXCL: never overwrite a secret other processes already use; mode 0600 is
        # applied atomically at creation, so the secret is never briefly world-readable.
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        # A racing creator writes its 64 bytes right after creating the file; give it a
        # moment instead of returning an empty secret.
        deadline = time.monotonic() + 2.0
        while True:
            with open(path, "rb") as f:
                existing = f.read().strip()
            if existing:
                return existing
            if time.monotonic() > deadline:
                raise ConfigError(f"secret file {path} exists but is empty; delete it or put a secret in it")
            time.sleep(0.01)
    try:
        os.write(fd, value + b"\n")
    finally:
        os.close(fd)
    return value
