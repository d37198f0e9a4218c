"""Authenticated, framed, pickled message connections: client ``connect``, ``Server``,
a reader loop and a type-based message ``Dispatcher``.

A :class:`Connection` is only ever built on a socket that has passed the mutual
shared-secret handshake of :mod:`sparkctl.rpc.auth`, which is what makes it acceptable
to unpickle what arrives on it.  Each message is one frame (see
:mod:`sparkctl.rpc.framing`) holding ``pickle.dumps(msg, protocol=5)``.

Threading model: any number of threads may send on one connection (a lock keeps frames
whole); one thread reads.  A :class:`Server` accepts in one daemon thread and gives each
new socket its own short-lived daemon thread for the handshake, which then runs the
``on_connection`` callback (typically :func:`serve_forever_reader`).

With ``spark.ssl.enabled`` (see :mod:`sparkctl.rpc.tls`) both sides wrap the socket in
TLS before the handshake and the connection is a :class:`TLSConnection`; without it
nothing on the message path differs.
"""
from __future__ import annotations

import errno
import logging
import pickle
import resource
import select
import selectors
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from sparkctl.errors import (
    AuthenticationError,
    ConfigError,
    ConnectionClosed,
    FrameTooLargeError,
    ProtocolError,
    RpcConnectError,
    RpcTimeoutError,
)
from sparkctl.rpc import tls as _tls
from sparkctl.rpc.auth import client_handshake, server_handshake
from sparkctl.rpc.framing import DEFAULT_MAX_FRAME, HEADER, HEADER_SIZE, SMALL_FRAME, send_frame
from sparkctl.rpc.waker import Waker

__all__ = [
    "Connection",
    "TLSConnection",
    "connect",
    "Server",
    "serve_forever_reader",
    "Dispatcher",
    "DEFAULT_MAX_PENDING_HANDSHAKES",
]

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


def _default_handshake_cap() -> int:
    """Handshakes a Server runs at once by default: enough that hundreds of idle or slow
    unauthenticated sockets leave room for legitimate peers, yet at most half of the
    process's file descriptors, so the rest stay free for authenticated connections."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return 1024
    if soft == resource.RLIM_INFINITY:
        return 1024
    return max(64, min(1024, soft // 2))


DEFAULT_MAX_PENDING_HANDSHAKES = _default_handshake_cap()

#: Default of the ``tls`` argument of connect() and Server: this process's spark.ssl.* settings.
FROM_CONF: Any = object()

_HAS_POLL = hasattr(select, "poll")
_MSG_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_NOW = -1.0  # the deadline of recv(timeout=0) on a plain socket: one non-blocking receive

# accept() failures that concern one connection (peer reset before we got to it).
_SKIP_ACCEPT_ERRNOS = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM}
# accept() failures from resource exhaustion: back off a little and retry.
_RETRY_ACCEPT_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


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


class Server:
    """Accepts authenticated connections and hands each to *on_connection*.

    ``on_connection(conn)`` runs in the connection's own daemon thread right after a
    successful handshake and may block for the connection's lifetime (e.g. run
    :func:`serve_forever_reader`).  Sockets that fail or do not finish the handshake
    within *handshake_timeout* are logged at WARNING and closed; at most
    *max_pending_handshakes* handshakes run at once, further sockets are closed
    immediately, so idle connections cannot exhaust threads.
    """

    def __init__(
        self,
        host: str,
        port: int,
        secret: bytes,
        on_connection: Callable[[Connection], None],
        *,
        handshake_timeout: float = 10.0,
        max_frame: int = DEFAULT_MAX_FRAME,
        name: str = "rpc",
        max_pending_handshakes: int = DEFAULT_MAX_PENDING_HANDSHAKES,
        backlog: int = 1024,
        tls: _tls.TLSConfig | None = FROM_CONF,
    ) -> None:
        if not secret:
            raise ConfigError("a Server needs a non-empty shared secret")
        self.host = host
        self.port = port
        self.name = name
        self.handshake_timeout = handshake_timeout
        self.max_frame = max_frame
        self.max_pending_handshakes = max_pending_handshakes
        self._secret = bytes(secret)
        self._on_connection = on_connection
        self._backlog = backlog
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._address: tuple[str, int] | None = None
        self._waker: Waker | None = None
        self._accept_thread: threading.Thread | None = None
        self._stopping = False
        self._handshaking: set[socket.socket] = set()
        self._conns: set[Connection] = set()
        self._workers: set[threading.Thread] = set()
        self._dropped = 0
        self._last_drop_log = 0.0
        self._tls_option = tls
        self._tls: _tls.TLSConfig | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)``; the real port when constructed with port 0.

        Still answers after ``stop()`` (with the address it had), for error messages.
        """
        if self._address is None:
            raise RuntimeError(f"{self.name} server is not started")
        return self._address

    @property
    def pending_handshakes(self) -> int:
        """Sockets currently in the handshake (for monitoring and tests)."""
        with self._lock:
            return len(self._handshaking)

    @property
    def connections(self) -> list[Connection]:
        """Live authenticated connections handed out by this server."""
        with self._lock:
            return list(self._conns)

    def start(self) -> Server:
        """Bind, listen and start accepting in a daemon thread; returns self."""
        if self._listener is not None or self._stopping:
            raise RuntimeError(f"{self.name} server already started (or stopped); create a new one")
        where = _format_addr((self.host, self.port))
        tls = _tls.configured() if self._tls_option is FROM_CONF else self._tls_option
        if tls is not None:
            tls.server_context()  # a bad certificate or key fails here, not on every connection
        self._tls = tls
        try:
            infos = socket.getaddrinfo(self.host or None, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror as e:
            raise _os_error(e.errno, f"{self.name} cannot listen on {where}: {e.strerror}") from e
        family, type_, proto, _, sockaddr = infos[0]
        listener = socket.socket(family, type_, proto)
        try:
            # SO_REUSEADDR: restart at once on a port whose old connections sit in
            # TIME_WAIT.  (On Linux it does not allow two live listeners on one port.)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(sockaddr)
            listener.listen(self._backlog)
        except OSError as e:
            listener.close()
            hint = " (is another sparkctl daemon running?)" if e.errno == errno.EADDRINUSE else ""
            raise _os_error(e.errno, f"{self.name} cannot listen on {where}: {e.strerror or e}{hint}") from e
        listener.setblocking(False)
        self._address = tuple(listener.getsockname()[:2])  # type: ignore[assignment]
        self._waker = Waker()
        self._listener = listener
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"{self.name}-accept", daemon=True
        )
        self._accept_thread.start()
        log.debug("%s listening on %s", self.name, _format_addr(self.address))
        return self

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None and self._waker is not None
        # Wait on the listener and a wake-up socketpair: stop() writes to the pair, which
        # ends the wait portably (closing a listener does not wake accept() everywhere).
        # A selector (epoll on Linux) because select() fails on fds above 1023.
        sel = selectors.DefaultSelector()
        sel.register(listener, selectors.EVENT_READ)
        sel.register(self._waker, selectors.EVENT_READ)
        try:
            while not self._stopping:
                try:
                    sel.select()
                except InterruptedError:
                    continue
                except (OSError, ValueError):
                    if not self._stopping:
                        log.critical("%s: accept loop failed; no longer accepting connections", self.name, exc_info=True)
                    return
                self._accept_pending(listener)
        finally:
            sel.close()

    def _accept_pending(self, listener: socket.socket) -> None:
        # Drain the whole accept queue per wake-up: bursts of connects are common.
        while not self._stopping:
            try:
                sock, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if self._stopping:
                    return
                if e.errno in _SKIP_ACCEPT_ERRNOS:
                    continue
                if e.errno in _RETRY_ACCEPT_ERRNOS:
                    log.error("%s: accept failed: %s", self.name, e)
                else:
                    log.exception("%s: accept failed", self.name)
                # The backlog keeps clients waiting; retrying at once would spin at 100%
                # CPU (and flood the log) on a listener that stays readable.
                time.sleep(0.05)
                return
            try:
                self._admit(sock, addr)
            except Exception:  # never let one socket kill the accept loop
                log.exception("%s: failed to start handling a connection from %s", self.name, _format_addr(addr))
                _hard_close(sock)

    def _admit(self, sock: socket.socket, addr: Any) -> None:
        peer = _format_addr(addr)
        with self._lock:
            stopping = self._stopping
            full = len(self._handshaking) >= self.max_pending_handshakes
            if not (stopping or full):
                self._handshaking.add(sock)
            elif full:
                # Rate-limit the warning: a flood of connects must not flood the log.
                self._dropped += 1
                now = time.monotonic()
                dropped = 0
                if now - self._last_drop_log >= 5.0:
                    self._last_drop_log = now
                    dropped, self._dropped = self._dropped, 0
        if stopping or full:
            _hard_close(sock)
            if full and dropped:
                log.warning(
                    "%s: refused connection from %s: %d handshakes already in progress "
                    "(%d connection(s) dropped for this reason since the last such warning)",
                    self.name, peer, self.max_pending_handshakes, dropped,
                )
            return
        sock.setblocking(True)
        tune_socket(sock)
        t = threading.Thread(target=self._handle, args=(sock, peer), name=f"{self.name}-conn-{peer}", daemon=True)
        with self._lock:
            self._workers.add(t)
        try:
            t.start()
        except BaseException:
            with self._lock:
                self._workers.discard(t)
                self._handshaking.discard(sock)
            raise

    def _handle(self, sock: socket.socket, peer: str) -> None:
        try:
            try:
                if self._tls is None:
                    server_handshake(sock, self._secret, self.handshake_timeout)
                else:
                    deadline = time.monotonic() + self.handshake_timeout
                    sock = self._start_tls(sock, peer, deadline)
                    server_handshake(sock, self._secret, max(deadline - time.monotonic(), 0.001))
            except AuthenticationError as e:
                if not self._stopping:
                    log.warning("%s: refused connection: %s", self.name, e)
                _hard_close(sock)
                return
            finally:
                with self._lock:
                    self._handshaking.discard(sock)
            conn = (Connection if self._tls is None else TLSConnection)(sock, max_frame=self.max_frame, peer=peer,
                                                                        tuned=True)
            with self._lock:
                if self._stopping:
                    conn.close()
                    return
                self._conns.add(conn)
            conn._add_close_hook(self._forget)
            log.debug("%s: accepted connection from %s", self.name, peer)
            try:
                self._on_connection(conn)
            except Exception:
                log.exception("%s: on_connection failed for %s; closing it", self.name, peer)
                conn.close()
        except Exception:
            log.exception("%s: unexpected error handling connection from %s", self.name, peer)
            _hard_close(sock)
        finally:
            with self._lock:
                self._workers.discard(threading.current_thread())

    def _start_tls(self, sock: socket.socket, peer: str, deadline: float) -> socket.socket:
        """The TLS handshake on an accepted socket; returns the TLS socket, which
        replaces *sock* (detached into it) among the handshaking ones stop() closes."""
        assert self._tls is not None
        try:
            tls_sock = _tls.start_server_tls(sock, self._tls)
        except OSError as e:  # closed by stop() meanwhile, or reset
            raise AuthenticationError(f"peer {peer}: connection lost before the TLS handshake: {e}") from None
        with self._lock:
            self._handshaking.discard(sock)
            self._handshaking.add(tls_sock)
            stopping = self._stopping
        try:
            if stopping:
                raise AuthenticationError(f"peer {peer}: {self.name} is stopping")
            _tls.finish_server_tls(tls_sock, peer, deadline - time.monotonic())
        except BaseException:
            with self._lock:
                self._handshaking.discard(tls_sock)
            _hard_close(tls_sock)
            raise
        return tls_sock

    def _forget(self, conn: Connection) -> None:
        with self._lock:
            self._conns.discard(conn)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection handed out, and join the threads.

        Waits up to *timeout* seconds for per-connection threads to return (their
        ``on_connection`` callbacks see their connection closed); logs any that do
        not.  Idempotent; safe to call from an ``on_connection`` thread.
        """
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            handshaking = list(self._handshaking)
            conns = list(self._conns)
        if self._waker is not None:
            self._waker.wake()
        me = threading.current_thread()
        if self._accept_thread is not None and self._accept_thread is not me:
            self._accept_thread.join()
        if self._listener is not None:
            self._listener.close()
        if self._waker is not None:
            self._waker.close()
        for sock in handshaking:
            _hard_close(sock)  # wakes the handshake thread, which then exits
        for conn in conns:
            conn.close()
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                workers = [t for t in self._workers if t is not me]
            if not workers:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning(
                    "%s: %d connection thread(s) still running after stop(): %s",
                    self.name, len(workers), ", ".join(t.name for t in workers),
                )
                break
            workers[0].join(remaining)

    def __enter__(self) -> Server:
        if self._listener is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = _format_addr(self._address) if self._address is not None else "not started"
        return f"<Server {self.name} {where}>"


def serve_forever_reader(
    conn: Connection,
    handler: Callable[[object], None],
    on_close: Callable[[Exception | None], None] | None = None,
) -> None:
    """Receive messages on *conn* and pass each to *handler* until the connection ends.

    Ends on EOF (``on_close(None)``) or on a framing/unpickling error, or when *handler*
    raises :class:`ProtocolError` (then the error is logged and passed to
    ``on_close``); *conn* is closed in every case.  Any other exception from *handler*
    is logged with its traceback and the loop goes on with the next message, so one
    bad message cannot take a daemon down.  Never raises.
    """
    err: Exception | None = None
    try:
        while True:
            try:
                msg = conn.recv()
            except ConnectionClosed:
                break
            except ProtocolError as e:
                log.warning("closing connection to %s: %s", conn.peer, e)
                err = e
                break
            try:
                handler(msg)
            except ConnectionClosed as e:
                if conn.closed:  # e.g. the handler's reply found our peer gone
                    break
                # Some *other* connection the handler used is gone: not this peer's fault.
                log.warning("handler for a %s from %s failed: %s", type(msg).__name__, conn.peer, e)
            except ProtocolError as e:
                log.warning("closing connection to %s: %s", conn.peer, e)
                err = e
                break
            except Exception:
                log.exception("handler failed for a %s from %s", type(msg).__name__, conn.peer)
    except Exception as e:  # belt and braces: nothing escapes into the caller's thread
        log.exception("reader for %s failed", conn.peer)
        err = e
    finally:
        conn.close()
        if on_close is not None:
            try:
                on_close(err)
            except Exception:
                log.exception("on_close callback failed for %s", conn.peer)


class Dispatcher:
    """Routes messages to handlers by their class.

    ``Dispatcher({Heartbeat: on_heartbeat, ...})``; ``dispatch(msg, *args)`` calls the
    handler registered for ``type(msg)`` (or, failing that, for its nearest registered
    base class) as ``handler(msg, *args)`` and returns its result.  Unknown types raise
    :class:`ProtocolError`, which makes :func:`serve_forever_reader` drop the peer.
    A Dispatcher is callable, so it can be the reader's handler directly.
    """

    def __init__(self, handlers: Mapping[type, Callable[..., Any]] | None = None) -> None:
        self._handlers: dict[type, Callable[..., Any]] = dict(handlers or {})
        self._resolved: dict[type, Callable[..., Any] | None] = dict(self._handlers)

    def register(self, msg_type: type, handler: Callable[..., Any]) -> None:
        self._handlers[msg_type] = handler
        self._resolved = dict(self._handlers)  # subclasses may now resolve differently

    def handler_for(self, msg_type: type) -> Callable[..., Any] | None:
        try:
            return self._resolved[msg_type]
        except KeyError:
            pass
        found = None
        for base in msg_type.__mro__[1:]:
            if base in self._handlers:
                found = self._handlers[base]
                break
        self._resolved[msg_type] = found  # cache misses too; messages types are few
        return found

    def dispatch(self, msg: object, *args: Any) -> Any:
        handler = self._resolved.get(type(msg)) or self.handler_for(type(msg))
        if handler is None:
            raise ProtocolError(f"unknown message type {type(msg).__module__}.{type(msg).__qualname__}")
        return handler(msg, *args)

    __call__ = dispatch
