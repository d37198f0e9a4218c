"""The handshake on non-blocking sockets, for event loops that accept or dial many peers.

A thread per handshake (``Server``, ``connect``) is fine for a daemon's few peers. A
shuffle on a wide cluster opens a connection between every pair of executors, thousands
of them at once on each machine, and there a thread each costs more than the handshake.
Here one loop runs them all: it asks each ``PendingHandshake`` which events it waits for,
and calls ``advance`` when they come. The protocol is ``auth.Handshake``'s, byte for byte;
frames are read exactly (header, then body), so nothing after the handshake is consumed
and the ``Connection`` made from the socket reads the first message itself.

```
 accept / dial ─▶ PendingHandshake ─ events() ─▶ selector ─▶ advance() ─▶ True: Connection(sock)
                                                                  └──▶ raises: close the socket
```
"""
from __future__ import annotations

import errno
import socket
import time

from sparkctl.errors import AuthenticationError
from sparkctl.rpc.auth import MAX_AUTH_FRAME, Handshake
from sparkctl.rpc.framing import HEADER, HEADER_SIZE

__all__ = ["PendingHandshake", "start_dial"]

READ, WRITE = 1, 2  # selectors.EVENT_READ, selectors.EVENT_WRITE


def _resolve(host: str, port: int) -> tuple[int, tuple]:
    """``(family, address)`` to connect to. An IP literal, what executors advertise, skips
    the resolver: getaddrinfo costs a netlink query and an IDNA encoding on every call, and
    a wide shuffle dials thousands of peers."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return family, ((host, port) if family == socket.AF_INET else (host, port, 0, 0))
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    return family, address


def start_dial(host: str, port: int) -> socket.socket:
    """A non-blocking TCP connect under way to ``host:port`` (writable once it is made)."""
    family, address = _resolve(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code = sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            raise OSError(code, f"cannot connect to {host}:{port}: {errno.errorcode.get(code, code)}")
    except BaseException:
        sock.close()
        raise
    return sock


class PendingHandshake:
    """One socket's handshake, advanced by its owner's event loop."""

    __slots__ = ("sock", "machine", "deadline", "connecting", "out", "inbuf", "need", "in_body", "peer")

    def __init__(self, sock: socket.socket, secret: bytes, role: str, peer: str, timeout: float,
                 connecting: bool = False) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.peer = peer
        self.machine = Handshake(secret, role, peer)
        self.deadline = time.monotonic() + timeout
        self.connecting = connecting  # a dial whose TCP connect has not completed yet
        first = self.machine.first()
        self.out = bytearray() if first is None else bytearray(HEADER.pack(len(first)) + first)
        self.inbuf = bytearray()
        self.need = HEADER_SIZE  # bytes of the current header or body still to read
        self.in_body = False

    def events(self) -> int:
        return WRITE if self.connecting or self.out else READ

    def advance(self) -> bool:
        """Do what the socket allows now; True once the handshake is complete and sent.
        Raises :class:`AuthenticationError` (or OSError for the TCP connect) on failure;
        the caller then calls ``close``."""
        if self.connecting:
            code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                raise OSError(code, f"cannot connect to {self.peer}: {errno.errorcode.get(code, code)}")
            self.connecting = False
        while True:
            if not self._flush():
                return False
            if self.machine.done:
                return True
            frame = self._read_frame()
            if frame is None:
                return False
            reply = self.machine.feed(frame)
            if reply is not None:
                self.out += HEADER.pack(len(reply)) + reply

    def _flush(self) -> bool:
        while self.out:
            try:
                n = self.sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as e:
                raise self._failed(f"network error during the handshake: {e}") from None
            del self.out[:n]
        return True

    def _read_frame(self) -> bytes | None:
        """The peer's next whole frame, or None until more has arrived."""
        while self.need:
            try:
                data = self.sock.recv(self.need)
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as e:
                raise self._failed(f"network error during the handshake: {e}") from None
            if not data:
                raise self._failed("closed the connection during the handshake, before sending the "
                                   f"{self.machine.waiting_for}")
            self.inbuf += data
            self.need -= len(data)
            if not self.need and not self.in_body:
                (n,) = HEADER.unpack(self.inbuf)
                if n > MAX_AUTH_FRAME:
                    raise self._failed("sent an oversized handshake frame instead of the "
                                       f"{self.machine.waiting_for} (not a sparkctl peer?)")
                self.inbuf.clear()
                self.in_body, self.need = True, n
        frame = bytes(self.inbuf)
        self.inbuf.clear()
        self.in_body, self.need = False, HEADER_SIZE
        return frame

    def _failed(self, reason: str) -> AuthenticationError:
        if self.machine.role == "server":
            return AuthenticationError(f"peer {self.peer} failed authentication: {reason}")
        return AuthenticationError(f"authentication with server {self.peer} failed: {reason}")

    def timed_out(self) -> AuthenticationError:
        return self._failed(f"did not complete the handshake in time (waiting for the {self.machine.waiting_for})")

    def close(self) -> None:
        """Tell the peer it failed, when it understands that, and close the socket."""
        failure = self.machine.failure
        if failure is not None:
            try:
                self.sock.send(HEADER.pack(len(failure)) + failure)
            except OSError:
                pass
        try:
            self.sock.close()
        except OSError:
            pass
