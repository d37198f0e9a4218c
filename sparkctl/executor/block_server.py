"""An executor's block server: what other executors and the driver may read from it.

```
 a reducer on another executor ══ FetchShuffleBlocks (its slices of our map outputs) ══▶
                               ══ FetchShuffleBlock  (one range of one slice) ═════════▶  BlockServer
 a task reading a cached block ══ FetchCachedBlock ═════════════════════════════════════▶  (one thread,
 the driver                    ══ FetchBlockChunk (an indirect task result) ════════════▶  every peer)
```
Every answer is a ``BlockData``: the bytes, or None and why. A request is checked before
any file is opened: a shuffle file name is a bare ``shuffle_*.data`` name inside the
executor's local dir, and every range and size is a non-negative int within bounds.

On a wide cluster every task slot of every other executor keeps a connection here: a
hundred executors make a hundred peers each. A thread blocked in ``recv`` per peer costs
a thread wake-up and a hand-over of the interpreter lock per request, which measured as
most of a 100-worker shuffle's CPU. So, as the master's dispatcher: after the handshake
(in the ``Server``'s thread) a connection joins one selector loop, which reads requests
as they arrive, answers them in order into the peer's outgoing buffer and writes that
buffer as the socket takes it. A peer that stops reading has its requests left unread
once ``MAX_BUFFERED`` bytes of answers wait for it, and holds up nobody else.
"""
from __future__ import annotations

import logging
import os
import selectors
import socket
import threading
from collections import deque

from sparkctl.errors import RpcTimeoutError
from sparkctl.executor.messages import (BlockData, FetchBlockChunk, FetchCachedBlock, FetchShuffleBlock,
                                        FetchShuffleBlocks)
from sparkctl.rpc import Connection
from sparkctl.rpc.connection import frame_message
from sparkctl.storage.block_manager import BlockManager
from sparkctl.storage.shuffle import read_local_block

log = logging.getLogger("sparkctl.executor")

MAX_CHUNK = 64 << 20  # the most bytes one request may ask for
MAX_RANGES = 100_000  # ranges in one FetchShuffleBlocks
MAX_BUFFERED = 8 << 20  # answers waiting for a peer before its requests are left unread


class _Peer:
    __slots__ = ("conn", "out", "sent", "buffered", "events")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.out: deque[bytes] = deque()  # framed answers, in order
        self.sent = 0  # bytes of out[0] already sent
        self.buffered = 0
        self.events = selectors.EVENT_READ


class BlockServer:
    def __init__(self, local_dir: str, blocks: BlockManager) -> None:
        self.local_dir = local_dir
        self.blocks = blocks
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._joining: list[Connection] = []
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="block-server-loop", daemon=True)

    def start(self) -> BlockServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
        self._wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)

    def serve(self, conn: Connection) -> None:
        """The ``Server``'s on_connection: hand ``conn`` to the loop and return."""
        with self._lock:
            if self._stopping:
                conn.close()
                return
            self._joining.append(conn)
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass  # already awake, or closed

    # ---- the loop
    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._stopping:
                        break
                for key, mask in self._selector.select():
                    peer = key.data
                    if peer is None:
                        self._join()
                        continue
                    self._service(peer)
        except Exception:
            log.exception("block server loop failed")
        finally:
            for key in list(self._selector.get_map().values()):
                if key.data is not None:
                    key.data.conn.close()
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def _join(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        with self._lock:
            joining, self._joining = self._joining, []
        for conn in joining:
            peer = _Peer(conn)
            self._selector.register(conn, peer.events, peer)
            self._service(peer)  # what came before it joined may be buffered: no event says so

    def _service(self, peer: _Peer) -> None:
        """Answer what ``peer`` has sent and send what the socket takes, until one of them
        cannot go on; then wait for the events that would let it."""
        while True:
            got = self._read(peer) if peer.buffered < MAX_BUFFERED else 0
            if peer.conn.closed or not self._flush(peer):
                return
            if not got or peer.out:
                break  # nothing more has come, or the socket is full
        want = (selectors.EVENT_WRITE if peer.out else 0) | (
            selectors.EVENT_READ if peer.buffered < MAX_BUFFERED else 0)
        if want != peer.events:
            peer.events = want
            self._selector.modify(peer.conn, want, peer)

    def _read(self, peer: _Peer) -> int:
        """Answer ``peer``'s requests that have arrived whole; how many there were."""
        conn = peer.conn
        got = 0
        while peer.buffered < MAX_BUFFERED:
            try:
                req = conn.recv(timeout=0)
            except RpcTimeoutError:
                break
            except Exception:  # EOF, reset, a frame that is no pickle: the peer is gone
                self._drop(peer)
                return got
            try:
                frame = frame_message(self.answer(req))
            except Exception as e:  # never let one request stop the loop
                frame = frame_message(BlockData(None, f"{type(e).__name__}: {e}"))
            peer.out.append(frame)
            peer.buffered += len(frame)
            got += 1
        return got

    def _flush(self, peer: _Peer) -> bool:
        """Send what the socket takes; False when the connection failed (and is dropped)."""
        conn = peer.conn
        try:
            while peer.out:
                head = peer.out[0]
                n = conn.send_nowait(memoryview(head)[peer.sent:])
                if not n:
                    break
                peer.sent += n
                if peer.sent == len(head):
                    peer.out.popleft()
                    peer.buffered -= len(head)
                    peer.sent = 0
        except Exception:
            self._drop(peer)
            return False
        return True

    def _drop(self, peer: _Peer) -> None:
        try:
            self._selector.unregister(peer.conn)
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
        return BlockData(None, f"unknown request {type(req).__name__}")

    def _block_chunk(self, req: FetchBlockChunk) -> BlockData:
        if (not isinstance(req.block_id, str) or not isinstance(req.offset, int) or not isinstance(req.length, int)
                or req.offset < 0 or not 0 < req.length <= MAX_CHUNK):
            return BlockData(None, f"bad chunk request: offset {req.offset!r}, length {req.length!r}")
        chunk = self.blocks.get_range(req.block_id, req.offset, req.length)
        return BlockData(chunk, "" if chunk is not None else f"no block {req.block_id}")

    def _data_path(self, file_name: object) -> str | None:
        if not isinstance(file_name, str):
            return None
        name = os.path.basename(file_name)
        if name != file_name or not name.startswith("shuffle_") or not name.endswith(".data"):
            return None
        return os.path.join(self.local_dir, name)

    def _shuffle_block(self, req: FetchShuffleBlock) -> BlockData:
        data_path = self._data_path(req.file_name)
        if data_path is None:
            return BlockData(None, f"not a shuffle file: {req.file_name!r}")
        try:
            return BlockData(read_local_block(data_path, data_path[:-5] + ".index", req.reduce_index,
                                              req.offset, req.length))
        except (OSError, TypeError, ValueError) as e:
            return BlockData(None, f"{type(e).__name__}: {e}")

    def _shuffle_blocks(self, req: FetchShuffleBlocks) -> BlockData:
        """The ranges one after the other, each exactly as long as asked (the reader knows
        the lengths from the map statuses), or the first reason one cannot be given."""
        ranges = req.ranges
        if not isinstance(req.reduce_index, int) or req.reduce_index < 0:
            return BlockData(None, f"bad reduce index {req.reduce_index!r}")
        if not isinstance(ranges, (list, tuple)) or not 0 < len(ranges) <= MAX_RANGES:
            return BlockData(None, f"bad ranges: {type(ranges).__name__}")
        parts = []
        total = 0
        for item in ranges:
            if not (isinstance(item, tuple) and len(item) == 3):
                return BlockData(None, f"bad range {item!r:.100}")
            file_name, offset, length = item
            data_path = self._data_path(file_name)
            if data_path is None:
                return BlockData(None, f"not a shuffle file: {file_name!r:.100}")
            if not (isinstance(offset, int) and isinstance(length, int) and offset >= 0 and length > 0):
                return BlockData(None, f"bad range of {file_name}: offset {offset!r}, length {length!r}")
            total += length
            if total > MAX_CHUNK:
                return BlockData(None, f"a request for more than {MAX_CHUNK} bytes")
            try:
                data = read_local_block(data_path, data_path[:-5] + ".index", req.reduce_index, offset, length)
            except OSError as e:
                return BlockData(None, f"{type(e).__name__}: {e}")
            if len(data) != length:
                return BlockData(None, f"{file_name} has {len(data)} of the {length} bytes asked from {offset}")
            parts.append(data)
        return BlockData(parts[0] if len(parts) == 1 else b"".join(parts))
