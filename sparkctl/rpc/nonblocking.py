"""The handshake on non-blocking sockets, for event loops that accept or dial many peers.

A thread per handshake (``Server``, ``connect``) is fine for a daemon's few peers. A
shuffle on a wide cluster opens a connection between every pair of executors, thousands
of them at once on each machine, and there a thread each costs more than the handshake.
Here one loop runs them all: it asks each ``PendingHandshake`` which events it waits for,
and calls ``advance`` when they come. The protocol is ``auth.Handshake``'s, byte for byte,
with its last message, the client's acceptance, moved: the client sends it in front of
its first request, and the server reads it as the connection's first frame. A connection
so costs three handshake messages before the first request instead of four, and each is
one receive.

```
 accept / dial ─▶ PendingHandshake ─ events() ─▶ selector ─▶ advance() ─▶ True: connection()
                                                                  └──▶ raises: close()
 server: the connection's first frame ─▶ accepted(frame) ─▶ raises unless the client's acceptance
```
"""
from __future__ import annotations

import errno
import socket
import time

from sparkctl.errors import AuthenticationError
from sparkctl.rpc.auth import MAX_AUTH_FRAME, Handshake
from sparkctl.rpc.connection import Connection, tune_socket
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
        tune_socket(sock)
        code = sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            raise OSError(code, f"cannot connect to {host}:{port}: {errno.errorcode.get(code, code)}")
    except BaseException:
        sock.close()
        raise
    return sock


class PendingHandshake:
    """One socket's handshake, advanced by its owner's event loop.

    Each side is done one message early, since nothing waits on the last one: a client
    once the server's proof checks out (its acceptance goes out in front of its first
    message, see ``connection()``); a server once it has sent its proof to a client that
    proved itself (the acceptance then arrives as the connection's first frame, for
    ``accepted`` to check before anything else on the connection is read). Each handshake
    message is read with one receive: neither side sends anything after one until it is
    answered, so a receive holding more than one message is a protocol error."""

    __slots__ = ("sock", "machine", "deadline", "connecting", "out", "inbuf", "peer")

    def __init__(self, sock: socket.socket, secret: bytes, role: str, peer: str, timeout: float,
                 connecting: bool = False) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.peer = peer
        self.machine = Handshake(secret, role, peer)
        self.deadline = time.monotonic() + timeout
        # a dial whose TCP connect may not have completed: the challenge (or the connect's
        # error) makes the socket readable, so no wait for it to become writable first
        self.connecting = connecting
        first = self.machine.first()
        self.out = bytearray() if first is None else bytearray(HEADER.pack(len(first)) + first)
        self.inbuf = bytearray()

    def events(self) -> int:
        return WRITE if self.out and not self.connecting else READ

    def advance(self) -> bool:
        """Do what the socket allows now; True once this side is done (see the class).
        Raises :class:`AuthenticationError` (or OSError for the TCP connect) on failure;
        the caller then calls ``close``."""
        while True:
            if self.out:
                if not self._flush():
                    return False
                if not (self.machine.done or self.machine.awaiting_acceptance):
                    return False  # the peer answers what it has not received yet: wait for it
            if self.machine.done or self.machine.awaiting_acceptance:
                return True
            frame = self._read_frame()
            if frame is None:
                return False
            reply = self.machine.feed(frame)
            if reply is not None:
                self.out += HEADER.pack(len(reply)) + reply
                if self.machine.done:  # the client's acceptance: it leaves with the first message
                    return True

    def connection(self) -> Connection:
        """The connection this completed handshake made; a client's acceptance goes out in
        front of its first message. A dialled socket is tuned by ``start_dial``; an
        accepted one by its listener (``tune_socket``)."""
        return Connection(self.sock, peer=self.peer, unsent=bytes(self.out), tuned=True)

    def accepted(self, frame: bytes | bytearray) -> None:
        """A server's check of the connection's first frame: the client's acceptance of
        our proof. Raises :class:`AuthenticationError` when it is anything else."""
        self.machine.feed(frame)

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
        while True:
            try:
                data = self.sock.recv(HEADER_SIZE + MAX_AUTH_FRAME - len(self.inbuf))
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as e:
                if self.connecting:
                    raise OSError(e.errno, f"cannot connect to {self.peer}: "
                                           f"{errno.errorcode.get(e.errno or 0, e.errno)}") from None
                raise self._failed(f"network error during the handshake: {e}") from None
            self.connecting = False
            if not data:
                raise self._failed("closed the connection during the handshake, before sending the "
                                   f"{self.machine.waiting_for}")
            self.inbuf += data
            if len(self.inbuf) < HEADER_SIZE:
                continue
            (n,) = HEADER.unpack_from(self.inbuf)
            if n > MAX_AUTH_FRAME:
                raise self._failed("sent an oversized handshake frame instead of the "
                                   f"{self.machine.waiting_for} (not a sparkctl peer?)")
            if len(self.inbuf) > HEADER_SIZE + n:
                raise self._failed(f"sent more than the {self.machine.waiting_for} before it was answered")
            if len(self.inbuf) == HEADER_SIZE + n:
                frame = bytes(self.inbuf[HEADER_SIZE:])
                self.inbuf.clear()
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
