"""A task slot's connections to other executors' block servers, for shuffle reads.

One authenticated connection per executor, kept for the slot's life and shared by every
read of every task the slot runs. Requests on a connection are answered in order, so
replies are matched to requests first in, first out; a reader that stopped early leaves
its replies to be read and dropped, and the connection stays in step.

```
 ShuffleBlockFetcher ──connect(addresses)──▶ missing connections dialled side by side
                     ──send(request)──────▶ FetchShuffleBlocks on that executor's connection
                     ◀─wait(timeout)──────── selector over connections with requests out
```
"""
from __future__ import annotations

import logging
import selectors
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

from sparkctl.errors import AuthenticationError, RpcTimeoutError
from sparkctl.executor.messages import BlockData, FetchShuffleBlocks
from sparkctl.rpc import Connection, connect, tls
from sparkctl.rpc.nonblocking import PendingHandshake, start_dial
from sparkctl.storage.block_fetcher import Address, FetchRequest

log = logging.getLogger("sparkctl.executor")

CONNECT_PARALLELISM = 16  # handshakes in progress at once when a read needs many new peers


class _Peer:
    __slots__ = ("address", "conn", "outstanding", "may_retry", "registered")

    def __init__(self, address: Address, conn: Connection) -> None:
        self.address = address
        self.conn = conn
        self.outstanding: deque[FetchRequest] = deque()
        self.may_retry = False  # a connection kept from before may have gone stale: one redial
        self.registered = False


class ConnectionShuffleClient:
    """The ``ShuffleClient`` of a task slot (see ``sparkctl.storage.block_fetcher``)."""

    def __init__(self, secret: bytes, timeout: float = 120.0) -> None:
        self.secret = secret
        self.timeout = timeout
        self.peers: dict[Address, _Peer] = {}
        self.failed: dict[Address, str] = {}  # the last dial's error, reported by the next send
        self.selector = selectors.DefaultSelector()
        self.done: list[FetchRequest] = []

    # ---- connections
    def _dial(self, address: Address, timeout: float | None = None) -> Connection:
        return connect(address[0], address[1], self.secret, timeout=timeout or min(30.0, self.timeout))

    def connect(self, addresses: Iterable[Address], timeout: float | None = None) -> None:
        """Dial the missing connections to ``addresses`` side by side, each within
        ``timeout`` seconds (default: the lesser of 30 s and the network timeout); with no
        ``timeout`` a single missing one is left to its first send."""
        missing = []
        for address in addresses:
            peer = self.peers.get(address)
            if peer is None or peer.conn.closed:
                missing.append(address)
            elif not peer.outstanding:
                peer.may_retry = True
        if not missing or len(missing) == 1 and timeout is None:
            return  # one is dialled by its first send, with nothing to overlap
        if tls.configured() is None:
            results = self._dial_all(missing, timeout)
        else:  # TLS handshakes block: some threads overlap them
            with ThreadPoolExecutor(min(len(missing), CONNECT_PARALLELISM), thread_name_prefix="shuffle-dial") as pool:
                results = dict(zip(missing, pool.map(lambda a: self._try_dial(a, timeout), missing)))
        for address, result in results.items():
            if isinstance(result, Connection):
                self._drop(address)
                self.peers[address] = _Peer(address, result)
            else:
                self.failed[address] = result

    def _dial_all(self, addresses: list[Address], timeout: float | None = None) -> dict[Address, Connection | str]:
        """Dial every address at once, the handshakes run side by side in one selector."""
        results: dict[Address, Connection | str] = {}
        timeout = timeout or min(30.0, self.timeout)
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            for address in addresses:
                where = f"{address[0]}:{address[1]}"
                try:
                    sock = start_dial(*address)
                except OSError as e:
                    results[address] = f"cannot connect to {where}: {e}"
                    continue
                pending = PendingHandshake(sock, self.secret, "client", where, timeout, connecting=True)
                sel.register(sock, pending.events(), (address, pending))
            while sel.get_map():
                remaining = deadline - time.monotonic()
                events = sel.select(remaining) if remaining > 0 else []
                if not events:
                    for key in list(sel.get_map().values()):
                        address, pending = key.data
                        sel.unregister(key.fileobj)
                        pending.close()
                        results[address] = _dial_error(pending.peer, pending.timed_out())
                    break
                for key, _ in events:
                    address, pending = key.data
                    try:
                        done = pending.advance()
                    except Exception as e:
                        sel.unregister(key.fileobj)
                        pending.close()
                        results[address] = _dial_error(pending.peer, e)
                        continue
                    if done:
                        sel.unregister(key.fileobj)
                        results[address] = pending.connection()
                    else:
                        sel.modify(key.fileobj, pending.events(), key.data)
        return results

    def _try_dial(self, address: Address, timeout: float | None = None) -> Connection | str:
        try:
            return self._dial(address, timeout)
        except Exception as e:
            return f"cannot connect to {address[0]}:{address[1]}: {type(e).__name__}: {e}"

    def _peer(self, address: Address) -> _Peer | str:
        peer = self.peers.get(address)
        if peer is not None and not peer.conn.closed:
            return peer
        error = self.failed.pop(address, None)
        if error is not None:
            return error
        result = self._try_dial(address)
        if isinstance(result, str):
            return result
        self._drop(address)
        peer = self.peers[address] = _Peer(address, result)
        return peer

    def _drop(self, address: Address) -> None:
        peer = self.peers.pop(address, None)
        if peer is not None:
            if peer.registered:
                self.selector.unregister(peer.conn)
                peer.registered = False
            peer.conn.close()

    # ---- requests
    def send(self, request: FetchRequest) -> None:
        peer = self._peer(request.address)
        if isinstance(peer, str):
            self._fail(request, peer)
            return
        peer.outstanding.append(request)
        self._transmit(peer, request)

    def _transmit(self, peer: _Peer, request: FetchRequest) -> None:
        try:
            message = request.message
            if message is None:
                message = FetchShuffleBlocks(request.reduce_index,
                                             [(r.file_name, r.offset, r.length) for r in request.ranges])
            peer.conn.send(message)
        except Exception as e:
            self._broken(peer, e)
            return
        if not peer.registered:
            self.selector.register(peer.conn, selectors.EVENT_READ, peer)
            peer.registered = True

    def wait(self, timeout: float) -> list[FetchRequest]:
        if not self.done and self.selector.get_map():
            for key, _ in self.selector.select(timeout):
                self._drain(key.data)
        done, self.done = self.done, []
        return done

    def _drain(self, peer: _Peer) -> None:
        """Every reply that has arrived on ``peer``'s connection, matched in order. (A
        connection stays registered while idle: registering it anew for every request
        costs two system calls. Readable with nothing owed is its end, or a protocol
        error: either way it is dropped, and redialled when next needed.)"""
        if not peer.outstanding:
            try:
                peer.conn.recv(timeout=0)
            except RpcTimeoutError:
                return
            except Exception:
                pass
            self._drop(peer.address)
            return
        first = True  # one receive from the socket, then what it brought: the selector
        while peer.outstanding and (first or peer.conn.buffered >= 8):  # reports the rest
            first = False
            try:
                reply = peer.conn.recv(timeout=0)
            except RpcTimeoutError:
                break
            except Exception as e:  # EOF, reset, a frame that is no pickle
                self._broken(peer, e)
                return
            peer.may_retry = False  # it answers: a failure from now on is not staleness
            request = peer.outstanding.popleft()
            if not isinstance(reply, BlockData):
                self._broken(peer, TypeError(f"answered with {type(reply).__name__}"))
                self._fail(request, f"executor {request.executor_id} answered with {type(reply).__name__}")
                return
            if reply.data is None or len(reply.data) != request.size:
                got = "no data" if reply.data is None else f"{len(reply.data)} of {request.size} bytes"
                self._fail(request, reply.error or f"executor {request.executor_id} sent {got}")
                continue
            if not request.abandoned:
                request.data = reply.data
                request.replied = time.perf_counter_ns()
            self.done.append(request)

    def _broken(self, peer: _Peer, error: BaseException) -> None:
        """``peer``'s connection failed: redial once if it was kept from an earlier read (it
        may have gone stale while idle) and ask again, else fail what it owed."""
        owed = list(peer.outstanding)
        retry = peer.may_retry
        self._drop(peer.address)
        if retry and owed:
            fresh = self._peer(peer.address)
            if not isinstance(fresh, str):
                log.debug("shuffle: reconnected to %s:%d after %s", *peer.address, error)
                fresh.outstanding.extend(owed)
                for request in owed:
                    self._transmit(fresh, request)
                    if fresh.conn.closed:
                        return  # the redial broke too: _transmit failed everything owed
                return
        reason = f"{type(error).__name__}: {error}"
        for request in owed:
            self._fail(request, reason)

    def _fail(self, request: FetchRequest, reason: str) -> None:
        request.error = reason
        self.done.append(request)

    def close(self, address: Address, reason: str) -> None:
        peer = self.peers.get(address)
        owed = list(peer.outstanding) if peer is not None else []
        self._drop(address)
        for request in owed:
            self._fail(request, reason)

    def close_all(self) -> None:
        for address in list(self.peers):
            self.close(address, "the slot is closing its connections")
        self.done.clear()


def _dial_error(peer: str, error: BaseException) -> str:
    """Why dialling ``peer`` failed, naming it once."""
    if isinstance(error, AuthenticationError):
        reason = str(error)
        prefix = f"authentication with server {peer} failed: "
        return f"cannot connect to {peer}: authentication failed: {reason.removeprefix(prefix)}"
    if isinstance(error, OSError) and error.strerror and peer in error.strerror:
        return error.strerror  # the non-blocking connect's own message names it already
    return f"cannot connect to {peer}: {type(error).__name__}: {error}"
