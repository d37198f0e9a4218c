"""Length-prefixed framing of a TCP byte stream.

Every message on a sparkctl connection is one *frame*: an 8-byte unsigned big-endian
length header (``!Q``) followed by exactly that many payload bytes.  An 8-byte header
costs nothing measurable and means no payload size ever needs a second encoding; the
receiver enforces a cap (``max_size``) instead, checked on the header alone so that a
hostile or confused peer cannot make us allocate or wait for a huge body.

Two readers are provided:

* :func:`recv_frame` reads one frame from a blocking socket (used by the handshake and
  by code that owns a socket directly);
* :class:`FrameDecoder` turns arbitrarily chunked bytes into frames for event-loop style
  (non-blocking) use.

:class:`sparkctl.rpc.connection.Connection` has its own buffered reader built on the
same format, because it also has to keep a partly received frame across a timeout.
"""
from __future__ import annotations

import socket
import struct
import time

from sparkctl.errors import ConnectionClosed, FrameTooLargeError, ProtocolError, RpcTimeoutError

__all__ = [
    "HEADER",
    "HEADER_SIZE",
    "DEFAULT_MAX_FRAME",
    "SMALL_FRAME",
    "send_frame",
    "recv_frame",
    "FrameDecoder",
]

#: The length header: 8 bytes, unsigned, network (big-endian) byte order.
HEADER = struct.Struct("!Q")
HEADER_SIZE = HEADER.size

#: Default cap on one frame's payload; a larger header is refused before any body is read.
DEFAULT_MAX_FRAME = 512 * 1024 * 1024

#: Payloads below this are copied behind the header and sent with one ``sendall`` (one
#: syscall, one TCP segment with TCP_NODELAY); at or above it the copy would cost more
#: than the extra syscall, so header and payload are sent separately.
SMALL_FRAME = 64 * 1024

_pack = HEADER.pack
_unpack_from = HEADER.unpack_from


def _as_bytes_view(payload: bytes | bytearray | memoryview) -> tuple[bytes | bytearray | memoryview, int]:
    """Return ``(payload, byte length)``, flattening multi-byte or N-d memoryviews."""
    if type(payload) is memoryview:
        if payload.ndim != 1 or payload.itemsize != 1 or not payload.c_contiguous:
            # len() of such a view counts items, not bytes, and sendall needs contiguous
            # memory; a flat byte view gives both (copying only a strided view).
            payload = payload.cast("B") if payload.c_contiguous else memoryview(payload.tobytes())
        return payload, payload.nbytes
    return payload, len(payload)


def send_frame(sock: socket.socket, payload: bytes | bytearray | memoryview) -> None:
    """Send *payload* as one frame on a blocking (or timeout-mode) socket.

    Not thread-safe by itself: two threads sending on one socket must hold a lock, or
    their frames interleave (``Connection`` does this).  If the socket times out, this
    raises :class:`RpcTimeoutError`; part of the frame may have gone out, so the stream
    must then be closed.
    """
    payload, n = _as_bytes_view(payload)
    try:
        if n < SMALL_FRAME:
            # bytes + any buffer concatenates into a new bytes: one copy of a small payload
            # is far cheaper than a second syscall (and a second TCP segment).
            sock.sendall(_pack(n) + payload)
        else:
            sock.sendall(_pack(n))
            sock.sendall(payload)
    except TimeoutError as e:  # socket.timeout is TimeoutError since 3.10
        raise RpcTimeoutError(f"timed out sending a {n}-byte frame") from e


def _set_remaining(sock: socket.socket, deadline: float | None, got: int, total: int) -> None:
    """Before each recv, shrink the socket timeout to what is left until *deadline*.

    Setting it once would let a peer that trickles one byte per timeout period hold
    the reader far beyond the deadline.
    """
    if deadline is None:
        return
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise RpcTimeoutError(_timeout_message(got, total))
    sock.settimeout(remaining)


def _timeout_message(got: int, total: int) -> str:
    if got == 0:
        return "timed out waiting for a frame"
    return f"timed out in the middle of a frame ({got} of {total} bytes); the stream is no longer usable"


def _recv_exact_into(sock: socket.socket, view: memoryview, deadline: float | None, done: int, total: int) -> None:
    """Fill *view* completely; *done*/*total* only make error messages precise."""
    got = 0
    n = len(view)
    recv_into = sock.recv_into
    while got < n:
        _set_remaining(sock, deadline, done + got, total)
        try:
            k = recv_into(view[got:], n - got)
        except TimeoutError as e:
            raise RpcTimeoutError(_timeout_message(done + got, total)) from e
        if k == 0:
            if done + got == 0:
                raise ConnectionClosed("connection closed by peer")
            raise ConnectionClosed(f"connection closed by peer in the middle of a frame ({done + got} of {total} bytes)")
        got += k


def recv_frame(sock: socket.socket, max_size: int, *, deadline: float | None = None) -> bytes | bytearray:
    """Read exactly one frame from a blocking (or timeout-mode) socket and return its payload.

    Payloads below :data:`SMALL_FRAME` come back as ``bytes``; larger ones as the
    ``bytearray`` they were received into with ``recv_into`` (returning it avoids a
    second full copy of a big payload; it is a bytes-like object accepted by
    ``pickle.loads``, ``bytes(...)``, comparisons, etc.).

    Raises :class:`FrameTooLargeError` when the header announces more than *max_size*
    bytes (nothing of the body is read or allocated), :class:`ConnectionClosed` on EOF,
    and :class:`RpcTimeoutError` when the socket's timeout (or the optional absolute
    ``time.monotonic()`` *deadline*) expires.  After any of these mid-frame, the stream
    position is lost and the socket must be closed.
    """
    header = bytearray(HEADER_SIZE)
    _recv_exact_into(sock, memoryview(header), deadline, 0, HEADER_SIZE)
    (n,) = _unpack_from(header)
    if n > max_size:
        raise FrameTooLargeError(f"frame of {n} bytes exceeds the limit of {max_size} bytes")
    total = HEADER_SIZE + n
    if n == 0:
        return b""
    if n < SMALL_FRAME:
        # Usual case: the whole small body is already in the kernel buffer, so one recv
        # returns it as a ready bytes object with no extra copy.
        _set_remaining(sock, deadline, HEADER_SIZE, total)
        try:
            first = sock.recv(n)
        except TimeoutError as e:
            raise RpcTimeoutError(_timeout_message(HEADER_SIZE, total)) from e
        if len(first) == n:
            return first
        if not first:
            raise ConnectionClosed(f"connection closed by peer in the middle of a frame ({HEADER_SIZE} of {total} bytes)")
        body = bytearray(n)
        body[: len(first)] = first
        _recv_exact_into(sock, memoryview(body)[len(first):], deadline, HEADER_SIZE + len(first), total)
        return bytes(body)
    body = bytearray(n)
    _recv_exact_into(sock, memoryview(body), deadline, HEADER_SIZE, total)
    return body


class FrameDecoder:
    """Incremental decoder for non-blocking readers: feed it bytes, get whole frames back.

    ``feed`` accepts chunks split anywhere (inside a header, across several frames) and
    returns the payloads (as ``bytes``) of every frame completed so far.  A header
    larger than *max_size* raises :class:`FrameTooLargeError` as soon as its 8 bytes
    have arrived; the decoder is then poisoned (further ``feed`` calls raise
    :class:`ProtocolError`) because the stream position is lost.
    """

    __slots__ = ("max_size", "_buf", "_need", "_failed")

    def __init__(self, max_size: int = DEFAULT_MAX_FRAME) -> None:
        self.max_size = max_size
        self._buf = bytearray()
        # Length of the payload whose header was already validated, or -1 while the
        # next header is not complete yet; avoids re-checking a header on every feed.
        self._need = -1
        self._failed = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a complete frame."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        if self._failed:
            raise ProtocolError("FrameDecoder used after a framing error")
        buf = self._buf
        buf += data  # amortised O(1) append: bytearray over-allocates
        frames: list[bytes] = []
        pos = 0
        end = len(buf)
        with memoryview(buf) as view:  # slicing a view copies once; buf[a:b] would copy twice
            while True:
                n = self._need
                if n < 0:
                    if end - pos < HEADER_SIZE:
                        break
                    (n,) = _unpack_from(buf, pos)
                    if n > self.max_size:
                        self._failed = True
                        raise FrameTooLargeError(f"frame of {n} bytes exceeds the limit of {self.max_size} bytes")
                    self._need = n
                if end - pos - HEADER_SIZE < n:
                    break
                start = pos + HEADER_SIZE
                frames.append(bytes(view[start : start + n]))
                pos = start + n
                self._need = -1
        if pos:
            # Deleting from the front of a bytearray only moves its start pointer in CPython.
            del buf[:pos]
        return frames
