"""An executor's block server: what other executors and the driver may read from it.

```
 a reducer on another executor ══ FetchShuffleBlocks (its slices of our map outputs, ═▶
                                  or of the merged files of reducers we merge)
 a map task on any executor    ══ PushShuffleBlocks (slices for reducers we merge) ════▶
                               ══ FetchShuffleBlock  (one range of one slice) ═════════▶  BlockServer
 a task reading a cached block ══ FetchCachedBlock ═════════════════════════════════════▶  (one thread,
 the driver                    ══ FetchBlockChunk (an indirect task result) ════════════▶  every peer)
```
Every answer is a ``BlockData``: the bytes, or None and why. A request is checked before
any file is opened: a shuffle file name is a bare ``shuffle_*.data`` name inside the
executor's local dir, and every range and size is a non-negative int within bounds.

On a wide cluster every task slot of every other executor keeps a connection here: a
hundred executors make a hundred peers each, all of them connecting during the first
shuffle. A thread per peer costs a thread start per connection, and a wake-up and a
hand-over of the interpreter lock per request, which measured as most of a 100-worker
shuffle's CPU. So one selector loop does it all: it accepts, runs each handshake
(``rpc.nonblocking``; with TLS on, the ``Server``'s threads run them and hand the
connections over), reads requests as they arrive, answers them in order into the peer's
outgoing buffer and writes that buffer as the socket takes it. A peer that stops reading
has its requests left unread once ``MAX_BUFFERED`` bytes of answers wait for it, and
holds up nobody else; a socket that does not finish its handshake within
``HANDSHAKE_TIMEOUT`` is closed, and at most ``MAX_PENDING`` handshakes run at once. When
``accept`` fails for the process's sake (out of file descriptors), accepting pauses for
``ACCEPT_PAUSE`` while serving goes on: the listener stays readable, and retrying at once
would spin the loop.
"""
from __future__ import annotations

import errno
import logging
import selectors
import socket
import sys
import threading
import time
from array import array
from collections import deque
from typing import Any, Sequence

from sparkctl.errors import AuthenticationError, RpcTimeoutError
from sparkctl.executor.messages import (BlockData, FetchBlockChunk, FetchCachedBlock, FetchShuffleBlock,
                                        FetchShuffleBlocks, PushShuffleBlocks)
from sparkctl.rpc import Connection
from sparkctl.rpc.connection import frame_message, tune_socket
from sparkctl.rpc.server import DEFAULT_MAX_PENDING_HANDSHAKES
from sparkctl.rpc.frame_queue import FrameQueue
from sparkctl.rpc.nonblocking import PendingHandshake
from sparkctl.rpc.waker import Waker
from sparkctl.storage.block_manager import BlockManager
from sparkctl.storage.merged_shuffle import MAX_ID, MERGED_IN_MEMORY, MergedShuffleFiles, parse_merged_name
from sparkctl.storage.shuffle_block_resolver import ShuffleBlockResolver

log = logging.getLogger("sparkctl.executor")

MAX_CHUNK = 64 << 20  # the most bytes one request may ask for
MAX_RANGES = 100_000  # ranges in one FetchShuffleBlocks, slices in one PushShuffleBlocks
MAX_BUFFERED = 8 << 20  # answers waiting for a peer before its requests are left unread
_HEADER = 8  # a frame's length prefix
HANDSHAKE_TIMEOUT = 10.0
MAX_PENDING = DEFAULT_MAX_PENDING_HANDSHAKES
ACCEPT_PAUSE = 0.05  # accepting stops this long after accept() fails for the process (out of fds, memory)
_ONE_CONNECTION_ERRNOS = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM}  # accept's other errors persist


class _Peer:
    __slots__ = ("conn", "handle", "out", "events", "handshake")

    def __init__(self, conn: Connection, handle: Any = None, handshake: PendingHandshake | None = None) -> None:
        self.conn = conn
        # a handshake whose last message, the client's acceptance, is the first frame to come
        self.handshake = handshake
        # what the selector knows it by: a closed connection's fd is gone, and the
        # selector then finds it by this object only
        self.handle = conn if handle is None else handle
        self.out = FrameQueue()  # framed answers, in order
        self.events = selectors.EVENT_READ


class BlockServer:
    def __init__(self, local_dir: str, blocks: BlockManager, secret: bytes = b"",
                 merge_memory: int = MERGED_IN_MEMORY) -> None:
        self.local_dir = local_dir
        self.blocks = blocks
        self.secret = secret
        self.address: tuple[str, int] | None = None
        self._listener: socket.socket | None = None
        self._handshakes: deque[PendingHandshake] = deque()  # by deadline: all take the same time
        self._shaking = 0  # of those, the ones not done yet
        self._refused = 0  # connections closed at the cap since the last warning
        self._refused_warned = -10.0
        self._accept_resumes = 0.0  # while accepting is paused: when it resumes
        self._accept_warned = 0.0
        self._selector = selectors.DefaultSelector()
        self._waker = Waker()
        self._selector.register(self._waker, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._joining: list[Connection] = []
        self._forgotten: list[int] = []  # shuffles removed since the loop last looked
        self.files = ShuffleBlockResolver(local_dir)  # the loop's alone
        # the loop's alone: slices pushed here, held in memory up to merge_memory bytes
        self.merged = MergedShuffleFiles(local_dir, memory=merge_memory)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="block-server-loop", daemon=True)

    def listen(self, host: str) -> tuple[str, int]:
        """Accept connections on ``host`` (a free port) in the loop itself; call before
        ``start``. The address it listens on."""
        if not self.secret:
            raise ValueError("a block server that accepts connections needs the cluster secret")
        family, type_, proto, _, address = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM,
                                                              flags=socket.AI_PASSIVE)[0]
        listener = socket.socket(family, type_, proto)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tune_socket(listener)  # the sockets it accepts inherit it
            listener.bind(address)
            listener.listen(4096)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self.address = listener.getsockname()[:2]
        self._selector.register(listener, selectors.EVENT_READ, "listener")
        return self.address

    def start(self) -> BlockServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
        self._waker.wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)

    def serve(self, conn: Connection) -> None:
        """The ``Server``'s on_connection: hand ``conn`` to the loop and return."""
        with self._lock:
            if self._stopping:
                conn.close()
                return
            self._joining.append(conn)
        self._waker.wake()

    def forget_shuffle(self, shuffle_id: int) -> None:
        """Close the files of a removed shuffle that the loop holds open (any thread)."""
        with self._lock:
            self._forgotten.append(shuffle_id)
        self._waker.wake()

    # ---- the loop
    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._stopping:
                        break
                for key, mask in self._selector.select(self._next_timeout()):
                    peer = key.data
                    if peer is None:
                        self._join()
                    elif peer == "listener":
                        self._accept()
                    elif isinstance(peer, PendingHandshake):
                        self._shake(peer)
                    else:
                        self._service(peer)
                self._expire()
        except Exception:
            log.exception("block server loop failed")
        finally:
            for key in list(self._selector.get_map().values()):
                if isinstance(key.data, _Peer):
                    key.data.conn.close()
                elif isinstance(key.data, PendingHandshake):
                    key.data.close()
            if self._listener is not None:
                self._listener.close()
            self._selector.close()
            self.files.close()
            self.merged.close()
            self._waker.close()

    # ---- accepting and authenticating
    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in _ONE_CONNECTION_ERRNOS:  # reset before we got to it
                    continue
                self._pause_accepting(e)
                return
            if self._shaking >= MAX_PENDING:
                sock.close()  # the oldest handshakes time out and make room
                self._refused += 1
                now = time.monotonic()
                if now - self._refused_warned >= 5.0:  # at most one line in 5 s, as Server's
                    self._refused_warned = now
                    log.warning("block server: refused %d connection(s): %d handshakes already in progress",
                                self._refused, MAX_PENDING)
                    self._refused = 0
                continue
            pending = PendingHandshake(sock, self.secret, "server", f"{addr[0]}:{addr[1]}", HANDSHAKE_TIMEOUT)
            self._handshakes.append(pending)
            self._shaking += 1
            self._shake(pending, registered=False)  # its challenge goes out now: no wait for writable

    def _pause_accepting(self, error: OSError) -> None:
        """accept() failed for the process's sake (out of file descriptors, or memory): the
        listener stays readable, so accepting again at once would spin the loop. Pause it
        (the clients wait in the backlog); serving goes on."""
        assert self._listener is not None
        self._selector.unregister(self._listener)
        now = time.monotonic()
        self._accept_resumes = now + ACCEPT_PAUSE
        if now - self._accept_warned >= 5.0:  # a flood of connects must not flood the log
            self._accept_warned = now
            log.warning("block server: accept failed, accepting paused %gs at a time: %s", ACCEPT_PAUSE, error)

    def _shake(self, pending: PendingHandshake, registered: bool = True) -> None:
        """Advance a handshake; ``registered`` once its socket is in the selector. A socket
        changes its registration's events and data, never leaves and rejoins (two system
        calls a connection saved)."""
        try:
            done = pending.advance()
        except Exception as e:
            log.warning("block server: refused connection: %s", e)
            self._end_handshake(pending, unregister=registered)
            pending.close()
            return
        if done:  # the client sends its acceptance and first request once it has our proof
            self._end_handshake(pending, unregister=False)
            peer = _Peer(pending.connection(), pending.sock, pending)
            if registered:
                self._selector.modify(pending.sock, peer.events, peer)
            else:
                self._selector.register(pending.sock, peer.events, peer)
        elif registered:
            self._selector.modify(pending.sock, pending.events(), pending)
        else:
            self._selector.register(pending.sock, pending.events(), pending)

    def _end_handshake(self, pending: PendingHandshake, unregister: bool = True) -> None:
        if pending.deadline:
            self._shaking -= 1
        if unregister:
            try:
                self._selector.unregister(pending.sock)
            except (KeyError, ValueError):
                pass
        pending.deadline = 0.0  # done: _expire drops it from the queue when it reaches it

    def _next_timeout(self) -> float | None:
        while self._handshakes and not self._handshakes[0].deadline:
            self._handshakes.popleft()
        wake = self._handshakes[0].deadline if self._handshakes else 0.0
        if self._accept_resumes:
            wake = min(wake, self._accept_resumes) if wake else self._accept_resumes
        return max(0.0, wake - time.monotonic()) if wake else None

    def _expire(self) -> None:
        now = time.monotonic()
        if self._accept_resumes and self._accept_resumes <= now:
            assert self._listener is not None
            self._accept_resumes = 0.0
            self._selector.register(self._listener, selectors.EVENT_READ, "listener")
        while self._handshakes and self._handshakes[0].deadline <= now:
            pending = self._handshakes.popleft()
            if pending.deadline:  # still shaking
                log.warning("block server: %s", pending.timed_out())
                self._end_handshake(pending)
                pending.close()

    def _join(self) -> None:
        self._waker.drain()
        with self._lock:
            joining, self._joining = self._joining, []
            forgotten, self._forgotten = self._forgotten, []
        for shuffle_id in forgotten:
            self.files.forget(shuffle_id)
            self.merged.forget(shuffle_id)
        for conn in joining:
            peer = _Peer(conn)
            self._selector.register(conn, peer.events, peer)
            self._service(peer)  # what came before it joined may be buffered: no event says so

    def _service(self, peer: _Peer) -> None:
        """Answer what ``peer`` has sent and send what the socket takes, until one of them
        cannot go on; then wait for the events that would let it."""
        out = peer.out
        while True:
            full = self._read(peer) if out.queued < MAX_BUFFERED else True
            if peer.conn.closed or not self._flush(peer):
                return
            if not full or out.frames:
                break  # all that came is answered, or the socket is full
        want = (selectors.EVENT_WRITE if out.frames else 0) | (
            selectors.EVENT_READ if out.queued < MAX_BUFFERED else 0)
        if want != peer.events:
            peer.events = want
            self._selector.modify(peer.handle, want, peer)

    def _read(self, peer: _Peer) -> bool:
        """Answer ``peer``'s requests that have arrived whole: one receive from the socket,
        then what it brought. True when it stopped for ``MAX_BUFFERED`` (more may wait);
        the selector (level-triggered) reports what is still in the socket."""
        conn = peer.conn
        out = peer.out
        first = True
        while first or conn.buffered >= _HEADER:
            if out.queued >= MAX_BUFFERED:
                return True
            try:
                if peer.handshake is not None:
                    peer.handshake.accepted(conn.recv_bytes(timeout=0))  # not unpickled
                    peer.handshake = None
                    first = False
                    continue
                req = conn.recv(timeout=0)
            except RpcTimeoutError:
                break
            except AuthenticationError as e:
                log.warning("block server: refused connection: %s", e)
                self._drop(peer)
                return False
            except Exception:  # EOF, reset, a frame that is no pickle: the peer is gone
                self._drop(peer)
                return False
            first = False
            try:
                frame = frame_message(self.answer(req))
            except Exception as e:  # never let one request stop the loop
                frame = frame_message(BlockData(None, f"{type(e).__name__}: {e}"))
            out.add(frame)
        return False

    def _flush(self, peer: _Peer) -> bool:
        """Send what the socket takes; False when the connection failed (and is dropped)."""
        conn = peer.conn
        out = peer.out
        try:
            while out.frames:
                n = conn.send_nowait(out.head())
                if not n:
                    break
                out.sent(n)
        except Exception:
            self._drop(peer)
            return False
        return True

    def _drop(self, peer: _Peer) -> None:
        try:
            self._selector.unregister(peer.handle)
        except (KeyError, ValueError):
            pass
        peer.conn.close()

    def answer(self, req: object) -> BlockData:
        if isinstance(req, FetchShuffleBlocks):
            return self._shuffle_blocks(req)
        if isinstance(req, FetchShuffleBlock):
            return self._shuffle_block(req)
        if isinstance(req, FetchCachedBlock):
            return BlockData(self.blocks.get(req.block_id) if isinstance(req.block_id, str) else None)
        if isinstance(req, FetchBlockChunk):
            return self._block_chunk(req)
        if isinstance(req, PushShuffleBlocks):
            return self._merge(req)
        return BlockData(None, f"unknown request {type(req).__name__}")

    def _block_chunk(self, req: FetchBlockChunk) -> BlockData:
        if (not isinstance(req.block_id, str) or not isinstance(req.offset, int) or not isinstance(req.length, int)
                or req.offset < 0 or not 0 < req.length <= MAX_CHUNK):
            return BlockData(None, f"bad chunk request: offset {req.offset!r}, length {req.length!r}")
        chunk = self.blocks.get_range(req.block_id, req.offset, req.length)
        return BlockData(chunk, "" if chunk is not None else f"no block {req.block_id}")

    @staticmethod
    def _is_data_name(file_name: object) -> bool:
        """Whether a request names a map output's data file in the local directory."""
        return (isinstance(file_name, str) and file_name.startswith("shuffle_") and file_name.endswith(".data")
                and "/" not in file_name and "\0" not in file_name)

    def _shuffle_block(self, req: FetchShuffleBlock) -> BlockData:
        if not self._is_data_name(req.file_name):
            return BlockData(None, f"not a shuffle file: {req.file_name!r}")
        try:
            return BlockData(self.files.read(req.file_name, req.reduce_index, req.offset, req.length))
        except (OSError, TypeError, ValueError) as e:
            return BlockData(None, f"{type(e).__name__}: {e}")

    def _shuffle_blocks(self, req: FetchShuffleBlocks) -> BlockData:
        """The ranges one after the other, each exactly as long as asked (the reader knows
        the lengths from the map statuses), or the first reason one cannot be given. Every
        range is checked before any is read. Consecutive ranges of one merged file (a
        reducer's merged slices, one per map task) are read with one ``pread`` of the span
        they cover, when that span is no longer than what they ask for."""
        ranges = req.ranges
        if not isinstance(req.reduce_index, int) or req.reduce_index < 0:
            return BlockData(None, f"bad reduce index {req.reduce_index!r}")
        if not isinstance(ranges, (list, tuple)) or not 0 < len(ranges) <= MAX_RANGES:
            return BlockData(None, f"bad ranges: {type(ranges).__name__}")
        merged_file: dict[str, bool] = {}  # each file named, checked once: merged or a map output
        total = 0
        for item in ranges:
            if not (isinstance(item, tuple) and len(item) == 3):
                return BlockData(None, f"bad range {item!r:.100}")
            file_name, offset, length = item
            if not (isinstance(file_name, str) and file_name in merged_file):
                merged = parse_merged_name(file_name) is not None  # slices pushed here
                if not merged and not self._is_data_name(file_name):
                    return BlockData(None, f"not a shuffle file: {file_name!r:.100}")
                merged_file[file_name] = merged
            if not (type(offset) is int and type(length) is int and offset >= 0 and length > 0):
                return BlockData(None, f"bad range of {file_name}: offset {offset!r}, length {length!r}")
            total += length
            if total > MAX_CHUNK:
                return BlockData(None, f"a request for more than {MAX_CHUNK} bytes")
        parts: list[bytes | memoryview] = []
        try:
            i = 0
            while i < len(ranges):
                file_name, offset, length = ranges[i]
                if merged_file[file_name]:
                    i = self._merged_run(ranges, i, parts)
                    continue
                data = self.files.read(file_name, req.reduce_index, offset, length)
                if len(data) != length:
                    return BlockData(None, f"{file_name} has {len(data)} of the {length} bytes asked from {offset}")
                parts.append(data)
                i += 1
        except OSError as e:
            return BlockData(None, f"{type(e).__name__}: {e}")
        return BlockData(parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else b"".join(parts))

    def _merged_run(self, ranges: Sequence[tuple[str, int, int]], i: int, parts: list[bytes | memoryview]) -> int:
        """Read the run of ranges of one merged file that starts at ``ranges[i]`` into
        ``parts``; returns where the run ends. (``MergedShuffleFiles.read`` raises OSError
        for bytes the file does not hold.)"""
        name = ranges[i][0]
        low, high, asked = ranges[i][1], 0, 0
        j = i
        while j < len(ranges) and ranges[j][0] == name:
            _, offset, length = ranges[j]
            low, high, asked = min(low, offset), max(high, offset + length), asked + length
            j += 1
        if j - i == 1 or high - low > asked:  # one range, or ranges apart: each read alone
            parts.extend(self.merged.read(name, offset, length) for _, offset, length in ranges[i:j])
            return j
        span = memoryview(self.merged.read(name, low, high - low))
        parts.extend(span[offset - low:offset - low + length] for _, offset, length in ranges[i:j])
        return j

    def _merge(self, req: PushShuffleBlocks) -> BlockData:
        """Append a map task's pushed slices to their reducers' merged files; the answer is
        where each one starts. Checked whole before anything is written."""
        indices, sizes, data = req.reduce_indices, req.sizes, req.data
        if not (type(req.shuffle_id) is int and 0 <= req.shuffle_id <= MAX_ID):
            return BlockData(None, f"bad shuffle id {req.shuffle_id!r:.100}")
        if not (isinstance(indices, list) and isinstance(sizes, list) and isinstance(data, bytes)
                and 0 < len(indices) == len(sizes) <= MAX_RANGES):
            return BlockData(None, "bad push: reducers, sizes and bytes do not match")
        if not all(type(r) is int and 0 <= r <= MAX_ID for r in indices) or not all(
                type(n) is int and n > 0 for n in sizes) or sum(sizes) != len(data):
            return BlockData(None, "bad push: reducers, sizes and bytes do not match")
        view = memoryview(data)
        starts = array("q")
        at = 0
        try:
            for reduce_index, size in zip(indices, sizes):
                starts.append(self.merged.append(req.shuffle_id, reduce_index, view[at:at + size]))
                at += size
        except OSError as e:  # a full disk: the map task reads its slices as unmerged
            return BlockData(None, f"{type(e).__name__}: {e}")
        if sys.byteorder != "little":
            starts.byteswap()
        return BlockData(starts.tobytes())
