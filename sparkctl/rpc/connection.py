"""Authenticated, framed, pickled message connections: ``Connection`` and the client's
``connect`` (the accepting side is :mod:`sparkctl.rpc.server`).

A :class:`Connection` is only ever built on a socket that has passed the mutual
shared-secret handshake of :mod:`sparkctl.rpc.auth`, which is what makes it acceptable
to unpickle what arrives on it.  Each message is one frame (see
:mod:`sparkctl.rpc.framing`) holding ``pickle.dumps(msg, protocol=5)``.

Threading model: any number of threads may send on one connection (a lock keeps frames
whole); one thread reads.

With ``spark.ssl.enabled`` (see :mod:`sparkctl.rpc.tls`) both sides wrap the socket in
TLS before the handshake and the connection is a :class:`TLSConnection`; without it
nothing on the message path differs.
"""
from __future__ import annotations

import logging
import pickle
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from sparkctl.errors import (
    AuthenticationError,
    ConnectionClosed,
    FrameTooLargeError,
    ProtocolError,
    RpcConnectError,
    RpcTimeoutError,
)
from sparkctl.rpc import tls as _tls
from sparkctl.rpc.auth import client_handshake
from sparkctl.rpc.framing import DEFAULT_MAX_FRAME, HEADER, HEADER_SIZE, SMALL_FRAME, send_frame

__all__ = ["Connection", "TLSConnection", "connect", "frame_message", "tune_socket"]

log = logging.getLogger("sparkctl.rpc")

_pack = HEADER.pack
_unpack_from = HEADER.unpack_from
_dumps = pickle.dumps
_loads = pickle.loads
_PICKLE_PROTOCOL = 5

#: Largest size of a connection's receive buffer.  Frames with a body below SMALL_FRAME
#: are parsed out of it (one recv_into can bring in many small frames); it must hold one
#: whole such frame.  Larger bodies are received straight into their own bytearray.
_RBUF_SIZE = 2 * SMALL_FRAME
#: A connection's receive buffer starts this small and doubles, up to _RBUF_SIZE, when a
#: frame does not fit or a receive fills it: a master's 5,000 mostly idle worker
#: connections held 640 MB of buffers at the full size.
_RBUF_START = 4096


#: Default of the ``tls`` argument of connect() and Server: this process's spark.ssl.* settings.
FROM_CONF: Any = object()

_HAS_POLL = hasattr(select, "poll")
_MSG_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_NOW = -1.0  # the deadline of recv(timeout=0) on a plain socket: one non-blocking receive



def _os_error(code: int | None, message: str, cls: type[OSError] = OSError) -> OSError:
    # OSError(errno, msg) keeps .errno for callers but prints "[Errno N] msg"; without a
    # code, a one-argument OSError reads better than "[Errno None] ...".
    return cls(code, message) if code is not None else cls(message)


def _format_addr(addr: Any) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        host, port = addr[0], addr[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(addr) or "<unix socket>"


def tune_socket(sock: socket.socket) -> None:
    """Small messages must leave at once (no Nagle delay); keepalive reaps dead peers. On
    Linux a listening socket's settings pass to the sockets it accepts."""
    for level, opt in ((socket.IPPROTO_TCP, socket.TCP_NODELAY), (socket.SOL_SOCKET, socket.SO_KEEPALIVE)):
        try:
            sock.setsockopt(level, opt, 1)
        except OSError:  # e.g. an AF_UNIX socketpair in tests
            pass


def _hard_close(sock: socket.socket) -> None:
    # shutdown() first: close() alone does not wake another thread blocked in recv()
    # or accept() on Linux, shutdown() does.
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class Connection:
    """One authenticated connection carrying pickled messages.

    ``send``/``send_bytes`` are thread-safe; ``recv``/``recv_bytes`` are meant for one
    reader thread (a lock makes concurrent readers safe, not useful).  A ``recv`` that
    times out keeps whatever part of a frame had arrived, so the connection stays
    usable.  Any EOF, reset or framing error closes the connection and raises
    :class:`ConnectionClosed` (or :class:`FrameTooLargeError`).
    """

    def __init__(self, sock: socket.socket, *, max_frame: int = DEFAULT_MAX_FRAME, peer: str | None = None,
                 unsent: bytes = b"", tuned: bool = False) -> None:
        # Reads with a timeout use poll() before recv, so the socket itself stays
        # blocking: a per-socket timeout would also hit other threads' sends.
        sock.settimeout(None)
        if not tuned:  # else whoever made the socket did (two system calls a connection saved)
            tune_socket(sock)
        # bytes that go out in front of the first message: a handshake's last message,
        # which then costs no send (and no wake-up of the peer) of its own
        self._unsent = unsent
        self._sock = sock
        self.max_frame = max_frame
        if peer is None:
            try:
                peer = _format_addr(sock.getpeername())
            except OSError:
                peer = "<unknown peer>"
        self._peer = peer
        self._send_lock = threading.Lock()
        self._recv_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._closed = False
        # Receive buffer, allocated on first recv (send-only connections never pay).
        self._buf: bytearray | None = None
        self._view: memoryview | None = None
        self._start = 0  # first unconsumed byte in _buf
        self._end = 0  # end of received data in _buf
        # A large frame being received straight into its own buffer, kept across timeouts.
        self._big: bytearray | None = None
        self._big_got = 0
        self._poller: Any = None
        # a TLS socket takes no flags on receive: its recv(timeout=0) polls first
        self._nowait = bool(_MSG_DONTWAIT) and type(sock) is socket.socket
        self._close_hooks: list[Callable[[Connection], None]] = []

    # -- introspection -------------------------------------------------------------

    @property
    def peer(self) -> str:
        """The remote end as ``"host:port"``."""
        return self._peer

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        return self._sock.fileno()

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned by ``recv``: an event loop reads on without
        another system call while a whole frame may be among them."""
        return self._end - self._start

    def __repr__(self) -> str:
        return f"<Connection {self._peer}{' closed' if self._closed else ''}>"

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sending -------------------------------------------------------------------

    def send(self, msg: object) -> None:
        """Pickle *msg* (protocol 5) and send it as one frame.  Thread-safe.

        Pickling errors propagate unchanged and leave the connection intact (nothing
        was sent); a network error closes the connection and raises ConnectionClosed.
        """
        data = _dumps(msg, protocol=_PICKLE_PROTOCOL)
        n = len(data)
        if n < SMALL_FRAME:
            # Inlined fast path of send_frame: one concatenation, one syscall.
            frame = _pack(n) + data
            with self._send_lock:
                if self._unsent:
                    frame = self._unsent + frame
                    self._unsent = b""
                try:
                    self._sock.sendall(frame)
                except OSError as e:
                    self._send_failed(e)
        else:
            self.send_bytes(data)

    def send_bytes(self, data: bytes | bytearray | memoryview) -> None:
        """Send an already-serialised payload as one frame.  Thread-safe."""
        with self._send_lock:
            try:
                self._send_unsent()
                send_frame(self._sock, data)
            except (OSError, RpcTimeoutError) as e:
                self._send_failed(e)

    def send_nowait(self, data: bytes | bytearray | memoryview) -> int:
        """Send what the socket takes at once of bytes already framed (``frame_message``),
        never blocking: the count sent, 0 when its buffer is full. For a single event
        loop that owns this connection's sending (no other sender may interleave)."""
        try:
            self._send_unsent()  # a few dozen bytes into an empty socket buffer: never blocks
            return self._sock.send(data, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as e:
            self._send_failed(e)
            raise  # unreachable: _send_failed raises

    def _send_unsent(self) -> None:
        """Send the bytes due in front of the first message, if they have not gone yet."""
        if self._unsent:
            self._sock.sendall(self._unsent)
            self._unsent = b""

    def _send_failed(self, e: BaseException) -> None:
        # A partly sent frame desynchronises the stream for good: close it.
        was_closed = self._closed
        self.close()
        if was_closed:
            raise ConnectionClosed(f"connection to {self._peer} is closed") from None
        raise ConnectionClosed(f"connection to {self._peer} lost while sending: {e}") from e

    # -- receiving -----------------------------------------------------------------

    def recv(self, timeout: float | None = None) -> object:
        """Receive and unpickle one message.

        Raises :class:`RpcTimeoutError` if no complete message arrived within *timeout*
        seconds (None = wait forever); :class:`ConnectionClosed` when the connection
        ends; :class:`ProtocolError` if the frame is not a loadable pickle (the stream
        itself is still in sync then; the caller decides whether to close).
        """
        data = self.recv_bytes(timeout)
        try:
            return _loads(data)
        except Exception as e:  # pickle can raise almost anything on bad input
            raise ProtocolError(f"cannot unpickle a {len(data)}-byte message from {self._peer}: {e!r}") from e

    def recv_bytes(self, timeout: float | None = None) -> bytes | bytearray:
        """Receive one frame's payload without unpickling it.

        Returns ``bytes`` for payloads below 64 KiB and, for larger ones, the
        ``bytearray`` the payload was received into (no second copy).
        """
        if timeout is None:
            deadline = None
        elif timeout <= 0 and self._nowait:
            deadline = _NOW  # one non-blocking receive, no poll first (an event loop's drain)
        else:
            deadline = time.monotonic() + timeout
        with self._recv_lock:
            try:
                return self._recv_locked(deadline)
            except OSError as e:
                was_closed = self._closed
                self.close()
                if was_closed:
                    raise ConnectionClosed(f"connection to {self._peer} is closed") from None
                raise ConnectionClosed(f"connection to {self._peer} lost: {e}") from e

    def _recv_locked(self, deadline: float | None) -> bytes | bytearray:
        if self._closed:
            raise ConnectionClosed(f"connection to {self._peer} is closed")
        if self._big is not None:
            return self._finish_big(deadline)
        if self._buf is None:
            self._buf = bytearray(_RBUF_START)
            self._view = memoryview(self._buf)
        if self._end - self._start < HEADER_SIZE:
            self._fill(HEADER_SIZE, deadline)
        start = self._start
        (n,) = _unpack_from(self._buf, start)
        if n > self.max_frame:
            self.close()
            raise FrameTooLargeError(
                f"{self._peer} sent a frame of {n} bytes, over the limit of {self.max_frame}; connection closed"
            )
        body = start + HEADER_SIZE
        if n < SMALL_FRAME:
            if self._end - body < n:
                self._fill(HEADER_SIZE + n, deadline)
                start = self._start
                body = start + HEADER_SIZE
            out = bytes(self._view[body : body + n])  # type: ignore[index]
            self._consume(body + n)
            return out
        # Large frame: move what is buffered of it into a dedicated buffer, receive the
        # rest directly into that (recv_into, no intermediate copies).
        big = bytearray(n)
        have = min(self._end - body, n)
        if have:
            big[:have] = self._view[body : body + have]  # type: ignore[index]
        self._consume(body + have)
        self._big = big
        self._big_got = have
        return self._finish_big(deadline)

    def _consume(self, upto: int) -> None:
        if upto >= self._end:
            self._start = self._end = 0  # empty: reuse the buffer from its start
        else:
            self._start = upto

    def _fill(self, need: int, deadline: float | None) -> None:
        """Receive until at least *need* unconsumed bytes are buffered."""
        buf = self._buf
        assert buf is not None
        if self._start + need > len(buf):
            avail = self._end - self._start
            if need > len(buf):
                self._grow(need)
                buf = self._buf
            else:
                # Not enough room after the unconsumed bytes: move them to the front.  The
                # slice copy happens before the assignment, so the overlap is harmless.
                buf[:avail] = buf[self._start : self._end]
            self._start, self._end = 0, avail
        view = self._view
        assert buf is not None
        recv_into = self._sock.recv_into
        flags = 0
        while self._end - self._start < need:
            if deadline is _NOW:
                flags = self._nowait_flags()
            elif deadline is not None:
                self._wait_readable(deadline)
            room = len(buf) - self._end
            try:
                k = recv_into(view[self._end :], 0, flags)  # type: ignore[index]
            except BlockingIOError:
                raise self._nothing_yet() from None
            if k == 0:
                self._eof(self._end - self._start)
            self._end += k
            if k == room and len(buf) < _RBUF_SIZE:
                # A busy stream filled the buffer: a bigger one takes more frames per recv.
                avail = self._end - self._start
                self._grow(2 * len(buf))
                buf, view = self._buf, self._view
                assert buf is not None
                self._start, self._end = 0, avail

    def _grow(self, need: int) -> None:
        """Move the unconsumed bytes to the front of a buffer of at least *need* bytes."""
        old = self._buf
        assert old is not None
        size = len(old)
        while size < need:
            size *= 2
        new = bytearray(min(size, _RBUF_SIZE))
        avail = self._end - self._start
        new[:avail] = old[self._start : self._end]
        self._buf = new
        self._view = memoryview(new)

    def _finish_big(self, deadline: float | None) -> bytearray:
        big = self._big
        assert big is not None
        n = len(big)
        got = self._big_got
        recv_into = self._sock.recv_into
        flags = 0
        with memoryview(big) as view:
            try:
                while got < n:
                    if deadline is _NOW:
                        flags = self._nowait_flags()
                    elif deadline is not None:
                        self._wait_readable(deadline)
                    try:
                        k = recv_into(view[got:], n - got, flags)
                    except BlockingIOError:
                        raise self._nothing_yet() from None
                    if k == 0:
                        self._eof(HEADER_SIZE + got)
                    got += k
            finally:
                self._big_got = got  # keep progress across a timeout
        self._big = None
        self._big_got = 0
        return big

    def _nowait_flags(self) -> int:
        if self._closed:
            raise ConnectionClosed(f"connection to {self._peer} is closed")
        return _MSG_DONTWAIT

    def _nothing_yet(self) -> RpcTimeoutError:
        return RpcTimeoutError(f"no message from {self._peer} within the timeout")

    def _wait_readable(self, deadline: float) -> None:
        if self._closed:
            raise ConnectionClosed(f"connection to {self._peer} is closed")
        remaining = deadline - time.monotonic()
        # A deadline already passed still gets one look without waiting, so recv(timeout=0)
        # takes what has arrived (an event loop drains a readable connection that way).
        if _HAS_POLL:
            if self._poller is None:
                self._poller = select.poll()
                self._poller.register(self._sock.fileno(), select.POLLIN)
            # Round up: poll(0) for a 0.4 ms remainder would spin.
            ready = self._poller.poll(int(remaining * 1000) + 1 if remaining > 0 else 0)
        else:
            ready = select.select([self._sock], [], [], max(remaining, 0.0))[0]
        if ready:
            return  # readable, EOF or error: recv_into reports which
        raise self._nothing_yet()

    def _eof(self, partial: int) -> None:
        was_closed = self._closed
        self.close()
        if was_closed:
            raise ConnectionClosed(f"connection to {self._peer} is closed")
        if partial:
            raise ConnectionClosed(f"{self._peer} closed the connection in the middle of a frame")
        raise ConnectionClosed(f"{self._peer} closed the connection")

    # -- closing -------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (idempotent, any thread); wakes a blocked reader/sender."""
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
            hooks, self._close_hooks = self._close_hooks, []
        _hard_close(self._sock)
        for hook in hooks:
            try:
                hook(self)
            except Exception:
                log.exception("close hook failed for connection to %s", self._peer)

    def _add_close_hook(self, hook: Callable[[Connection], None]) -> None:
        """Internal: call *hook(conn)* once when the connection closes (now, if it is closed)."""
        with self._state_lock:
            if not self._closed:
                self._close_hooks.append(hook)
                return
        hook(self)


class TLSConnection(Connection):
    """A :class:`Connection` over a TLS socket (made by :func:`connect` and :class:`Server`).

    Only the wait for readable data differs: OpenSSL may already hold decrypted bytes of
    a record it read, which poll() on the descriptor cannot see.
    """

    def _wait_readable(self, deadline: float) -> None:
        if self._sock.pending():  # type: ignore[attr-defined]
            return
        super()._wait_readable(deadline)

    def send_nowait(self, data: bytes | bytearray | memoryview) -> int:
        """TLS records cannot be sent in part without blocking: the whole of ``data``."""
        with self._send_lock:
            try:
                self._sock.sendall(data)
            except OSError as e:
                self._send_failed(e)
        return len(data)


def frame_message(msg: object) -> bytes:
    """``msg`` pickled and framed as ``Connection.send`` sends it."""
    data = _dumps(msg, protocol=_PICKLE_PROTOCOL)
    return _pack(len(data)) + data


def connect(
    host: str,
    port: int,
    secret: bytes,
    timeout: float = 10.0,
    max_frame: int = DEFAULT_MAX_FRAME,
    *,
    tls: _tls.TLSConfig | None = FROM_CONF,
) -> Connection:
    """Open an authenticated connection to a sparkctl :class:`Server` at *host*:*port*.

    *timeout* bounds the TCP connect plus the handshake together.  Raises
    :class:`RpcConnectError` if the connection cannot be made (refused, unreachable,
    unknown host), :class:`RpcTimeoutError` if the TCP connect times out, and
    :class:`AuthenticationError` if the handshake fails.

    *tls*: a :class:`~sparkctl.rpc.tls.TLSConfig` to wrap the connection in TLS, None
    for none; by default this process's ``spark.ssl.*`` settings decide.
    """
    where = _format_addr((host, port))
    deadline = time.monotonic() + timeout
    if tls is FROM_CONF:
        tls = _tls.configured()
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError as e:
        raise RpcTimeoutError(f"timed out after {timeout:g}s connecting to {where}") from e
    except ConnectionRefusedError as e:
        raise _os_error(
            e.errno,
            f"cannot connect to {where}: connection refused (is the sparkctl daemon running there?)",
            RpcConnectError,
        ) from e
    except OSError as e:
        raise _os_error(e.errno, f"cannot connect to {where}: {e.strerror or e}", RpcConnectError) from e
    try:
        tune_socket(sock)
        if tls is None:
            try:
                client_handshake(sock, secret, max(deadline - time.monotonic(), 0.001))
            except AuthenticationError as e:
                # A TLS server waits for a ClientHello while we wait for its challenge.
                if "waiting for the challenge" in str(e):
                    raise AuthenticationError(f"{e}; if that server has TLS enabled (spark.ssl.enabled), "
                                              "this process needs it too") from None
                raise
            return Connection(sock, max_frame=max_frame, peer=where, tuned=True)
        sock = _tls.wrap_client(sock, tls, where, host, deadline - time.monotonic())
        try:
            client_handshake(sock, secret, max(deadline - time.monotonic(), 0.001))
        except AuthenticationError as e:
            raise _tls.explain_handshake_failure(e) from None
        return TLSConnection(sock, max_frame=max_frame, peer=where, tuned=True)
    except BaseException:
        _hard_close(sock)
        raise
