"""The accepting side of rpc connections: ``Server``, the ``serve_forever_reader`` loop
and a type-based message ``Dispatcher``.

A :class:`Server` accepts in one daemon thread and gives each new socket its own
short-lived daemon thread for the handshake (:mod:`sparkctl.rpc.auth`, under TLS when
``spark.ssl.enabled``), which then runs the ``on_connection`` callback with the
:class:`~sparkctl.rpc.connection.Connection` it made (typically
:func:`serve_forever_reader`). Nothing is unpickled from a socket before its handshake
has passed.
"""
from __future__ import annotations

import errno
import logging
import resource
import selectors
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from sparkctl.errors import AuthenticationError, ConfigError, ConnectionClosed, ProtocolError
from sparkctl.rpc import tls as _tls
from sparkctl.rpc.auth import server_handshake
from sparkctl.rpc.connection import (
    FROM_CONF,
    Connection,
    TLSConnection,
    _format_addr,
    _hard_close,
    _os_error,
    tune_socket,
)
from sparkctl.rpc.framing import DEFAULT_MAX_FRAME
from sparkctl.rpc.waker import Waker

__all__ = ["Server", "serve_forever_reader", "Dispatcher", "DEFAULT_MAX_PENDING_HANDSHAKES"]

log = logging.getLogger("sparkctl.rpc")


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

# accept() failures that concern one connection (peer reset before we got to it).
_SKIP_ACCEPT_ERRNOS = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM}
# accept() failures from resource exhaustion: back off a little and retry.
_RETRY_ACCEPT_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


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
