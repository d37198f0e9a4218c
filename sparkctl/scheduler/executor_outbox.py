"""The driver's messages to its executors: one outbox per executor, one writer thread.

The scheduler sends while it holds the runtime's lock, so a send must never wait on a
peer: an executor that stops reading (a cut link, a stopped process) would otherwise
stall the whole driver, and with it the timeout that would declare the executor lost.
As with Spark's asynchronous Netty writes, a send here only queues:

```
 caller (often under the runtime lock)           writer thread (one per driver)
  send(link, frame) ─▶ outbox idle and the socket
                       takes it all? ── sent ──▶ executor
                       │ no: queue the rest,
                       │ in order  ───── wake ──▶ selector: writable ─▶ send_nowait ─▶ executor
                       │                          no progress for spark.network.timeout,
                       └ over the cap ──┐         or the connection failed ──┐
                                        └───────────────────────────────────┴▶ close the connection:
                                           its reader thread reports the executor lost
```

:class:`ExecutorOutbox` is the state of one executor's queue (ordering, partial writes,
stall and cap), with no socket and no clock of its own; :class:`OutboxWriter` carries it
out over :class:`~sparkctl.rpc.connection.Connection`'s non-blocking send. A TLS
connection cannot send part of a record without blocking, so each of those gets its own
sender thread while it has a backlog (never the caller's thread); the writer still
watches its progress.
"""
from __future__ import annotations

import logging
import selectors
import threading
import time
from typing import Callable

from sparkctl.errors import ConnectionClosed
from sparkctl.rpc.connection import Connection, TLSConnection
from sparkctl.rpc.frame_queue import FrameQueue
from sparkctl.rpc.waker import Waker

__all__ = ["MAX_QUEUED_BYTES", "ExecutorOutbox", "ExecutorOutboxClosed", "OutboxLink", "OutboxWriter"]

log = logging.getLogger("sparkctl.driver")

#: The most bytes an executor's outbox may hold before the executor is given up, as one
#: that stopped reading (the driver's memory is not the place for an endless backlog).
#: The driver raises it to two of its largest frames (spark.rpc.message.maxSize).
MAX_QUEUED_BYTES = 1 << 30

#: What a TLS connection's sender hands to one blocking send: the writer sees progress
#: (and a stall) at this grain.
TLS_CHUNK = 1 << 20

#: The most the writer sends of one backlog before it lets the callers (who wait on the
#: outbox's lock meanwhile) and the other executors have a turn; the selector brings it back.
FLUSH_BYTES = 8 << 20


class ExecutorOutboxClosed(ConnectionClosed):
    """A send to an executor whose outbox was given up (stalled, over its cap, or lost)."""


class ExecutorOutbox(FrameQueue):
    """The framed messages waiting for one executor, in order, with the stall and the cap
    that give it up. No I/O: the owner sends ``head()``, reports what went with ``sent()``,
    and asks ``stalled(now)``."""

    def __init__(self, executor_id: str, stall_timeout: float, cap: int = MAX_QUEUED_BYTES) -> None:
        super().__init__()
        self.executor_id = executor_id
        self.stall_timeout = stall_timeout
        self.cap = cap
        self.last_progress = 0.0  # when bytes last went, or the backlog began
        self.failure: str | None = None  # why the outbox was given up; it takes nothing since

    def add(self, frame: bytes, now: float, already_sent: int = 0) -> bool:  # type: ignore[override]
        """Queue ``frame``, of which the caller sent the first ``already_sent`` bytes itself
        (only on an idle outbox). False, and the outbox given up, when the backlog would
        pass the cap."""
        if self.failure is not None:
            raise ExecutorOutboxClosed(self.failure)
        rest = len(frame) - already_sent
        if rest > 0 and self.queued + rest > self.cap:
            self.fail(f"over {self.cap} bytes queued for executor {self.executor_id} "
                      f"({self.queued} waiting, {rest} more): it does not read what the driver sends")
            return False
        if rest > 0 and not self.frames:
            self.last_progress = now  # the clock for a stall starts with the backlog
        super().add(frame, already_sent)
        return True

    def sent(self, n: int, now: float) -> None:  # type: ignore[override]
        """``n`` bytes of ``head()`` went out."""
        if n <= 0 or self.failure is not None:
            return
        self.last_progress = now
        super().sent(n)

    def deadline(self) -> float | None:
        """When the backlog counts as stalled if nothing goes meanwhile (None: no backlog)."""
        if not self.frames or self.failure is not None:
            return None
        return self.last_progress + self.stall_timeout

    def stalled(self, now: float) -> bool:
        deadline = self.deadline()
        return deadline is not None and now >= deadline

    def fail(self, reason: str) -> None:
        """Give the outbox up: its backlog is dropped (the first reason stays)."""
        if self.failure is None:
            self.failure = reason
        self.clear()


class OutboxLink:
    """One executor's connection and outbox, as the writer and the senders share them."""

    __slots__ = ("box", "conn", "lock", "tls", "fd", "scheduled", "gave_up", "ready", "sender")

    def __init__(self, box: ExecutorOutbox, conn: Connection) -> None:
        self.box = box
        self.conn = conn
        self.lock = threading.Lock()  # taken only around non-blocking steps
        self.tls = isinstance(conn, TLSConnection)
        self.fd = conn.fileno()
        self.scheduled = False  # the writer (or a TLS sender) owns the backlog; true whenever one exists
        self.gave_up: str | None = None  # why the driver cut the executor off (stalled, over the cap)
        self.ready = threading.Condition(self.lock)  # a TLS sender waits here for a backlog
        self.sender: threading.Thread | None = None  # a TLS connection's sender, once it had a backlog

    def fail(self, reason: str) -> None:
        """Give the outbox up (under ``lock``); a TLS sender waiting for work ends."""
        self.box.fail(reason)
        self.scheduled = False
        self.ready.notify_all()

    def __repr__(self) -> str:
        return f"<OutboxLink executor {self.box.executor_id} queued {self.box.queued}>"


class OutboxWriter:
    """Sends the backlogs of every executor's outbox from one thread, and gives up an
    executor whose backlog makes no progress for ``stall_timeout`` seconds."""

    def __init__(self, stall_timeout: float, cap: int = MAX_QUEUED_BYTES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_timeout = stall_timeout
        self.cap = cap
        self.clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a backlog drained or was given up
        self._links: set[OutboxLink] = set()
        self._handed: list[OutboxLink] = []  # new backlogs for the writer thread to take up
        self._selector = selectors.DefaultSelector()
        self._registered: dict[int, OutboxLink] = {}  # fd -> link; the writer thread's own
        self._waker = Waker()
        self._selector.register(self._waker, selectors.EVENT_READ, None)
        self._stopping = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ callers
    def start(self) -> OutboxWriter:
        self._thread = threading.Thread(target=self._run, name="driver-outbox-writer", daemon=True)
        self._thread.start()
        return self

    def attach(self, executor_id: str, conn: Connection) -> OutboxLink:
        link = OutboxLink(ExecutorOutbox(executor_id, self.stall_timeout, self.cap), conn)
        with self._lock:
            self._links.add(link)
        return link

    def send(self, link: OutboxLink, frame: bytes) -> None:
        """Send a framed message (``frame_message``) after those sent before it, never
        waiting on the peer. Raises :class:`ConnectionClosed` when the executor's
        connection has failed or its outbox was given up (the message is dropped)."""
        box = link.box
        with link.lock:
            if box.failure is not None:
                raise ExecutorOutboxClosed(f"not sent to executor {box.executor_id}: {box.failure}")
            sent = 0
            if box.idle and not link.tls:
                try:
                    sent = link.conn.send_nowait(frame)
                except ConnectionClosed as e:
                    link.fail(f"connection lost while sending: {e}")
                    raise
                if sent == len(frame):
                    return
            if box.add(frame, self.clock(), sent):
                if link.scheduled:
                    return
                link.scheduled = True
                if link.tls:  # its own sender thread sends, blocking; the writer only watches
                    if link.sender is None:
                        link.sender = threading.Thread(target=self._send_tls, args=(link,), daemon=True,
                                                       name=f"driver-outbox-tls-{box.executor_id}")
                        link.sender.start()
                    link.ready.notify()
                over = None
            else:
                over = box.failure
        if over is not None:
            self._give_up(link, over)
            raise ExecutorOutboxClosed(f"not sent to executor {box.executor_id}: {over}")
        with self._lock:
            self._handed.append(link)
        self._waker.wake()

    def gave_up(self, link: OutboxLink) -> str | None:
        """Why the driver cut the executor off (its backlog stalled or passed the cap), if
        it did; a connection that failed by itself is its reader's to explain."""
        with link.lock:
            return link.gave_up

    def detach(self, link: OutboxLink, reason: str) -> None:
        """The executor is gone: drop its backlog and stop watching it."""
        with link.lock:
            link.fail(reason)
        with self._lock:
            self._links.discard(link)
            self._changed.notify_all()
        self._waker.wake()  # the writer thread lets go of its registration

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every backlog to go; True when none is left."""
        with self._lock:
            return self._changed.wait_for(lambda: all(link.box.idle for link in self._links), timeout)

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            links = list(self._links)
        for link in links:  # ends the TLS senders
            with link.lock:
                link.fail("the driver stopped")
        self._waker.wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        self._selector.close()
        self._waker.close()

    # ------------------------------------------------------------------ the writer thread
    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                handed, self._handed = self._handed, []
            try:
                for link in handed:
                    self._take_up(link)
                ready = self._selector.select(self._next_timeout())
                for key, _ in ready:
                    if key.data is None:
                        self._waker.drain()
                    else:
                        self._flush(key.data)
                self._check_stalls()
            except Exception:  # the writer must outlive any one executor's trouble
                log.exception("the driver's outbox writer failed a round; going on")

    def _take_up(self, link: OutboxLink) -> None:
        if link.tls:
            return  # sent by its own thread; handed over only to be watched for a stall
        old = self._registered.get(link.fd)
        if old is link:
            return
        if old is not None:  # its socket was closed and the number reused: the old one is gone
            self._unregister(old)
        if link.conn.closed:
            self._give_up(link, "connection closed")
            return
        try:
            self._selector.register(link.fd, selectors.EVENT_WRITE, link)
        except (OSError, ValueError) as e:
            self._give_up(link, f"connection unusable: {e}")
            return
        self._registered[link.fd] = link
        self._flush(link)  # the socket may take some at once

    def _unregister(self, link: OutboxLink) -> None:
        if self._registered.get(link.fd) is link:
            del self._registered[link.fd]
            try:
                self._selector.unregister(link.fd)
            except (KeyError, ValueError, OSError):
                pass

    def _flush(self, link: OutboxLink) -> None:
        """Send what the socket takes of ``link``'s backlog; let go of it once it is empty."""
        box = link.box
        with link.lock:
            budget = FLUSH_BYTES
            try:
                while not box.idle and budget > 0:
                    n = link.conn.send_nowait(box.head(budget))
                    if not n:
                        break
                    box.sent(n, self.clock())
                    budget -= n
            except ConnectionClosed as e:  # closed by now: its reader reports the loss
                link.fail(f"connection lost while sending: {e}")
            done = box.idle
            if done:
                link.scheduled = False
        if done:
            self._unregister(link)
            with self._lock:
                self._changed.notify_all()

    def _send_tls(self, link: OutboxLink) -> None:
        """A TLS connection's sender: its backlog in blocking steps outside the outbox's
        lock, for as long as the connection lasts."""
        box = link.box
        while True:
            with link.lock:
                while box.idle and box.failure is None:
                    link.scheduled = False
                    link.ready.wait()
                if box.failure is not None:
                    break
                chunk = box.head(TLS_CHUNK)
            try:
                n = link.conn.send_nowait(chunk)  # all of it, or the connection fails
            except ConnectionClosed as e:  # closed by now (perhaps for a stall): the reader reports it
                with link.lock:
                    link.fail(f"connection lost while sending: {e}")
                break
            with link.lock:
                box.sent(n, self.clock())
                idle = box.idle
            if idle:
                with self._lock:
                    self._changed.notify_all()
        with self._lock:
            self._changed.notify_all()

    def _next_timeout(self) -> float | None:
        with self._lock:
            links = list(self._links)
        deadlines = [d for d in (link.box.deadline() for link in links) if d is not None]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - self.clock()) + 0.001

    def _check_stalls(self) -> None:
        now = self.clock()
        with self._lock:
            links = list(self._links)
        for link in links:
            with link.lock:
                box = link.box
                stalled = box.stalled(now)
                queued = box.queued
            if stalled:
                self._give_up(link, f"no progress sending {queued} queued bytes to executor {box.executor_id} "
                                    f"for {box.stall_timeout:g}s (spark.network.timeout)")
        for link in [link for link in self._registered.values() if link.box.failure is not None]:
            self._unregister(link)

    def _give_up(self, link: OutboxLink, reason: str) -> None:
        """Drop the executor's backlog and close its connection: its reader thread then
        reports the executor lost, with ``reason``."""
        with link.lock:
            link.fail(reason)
            if link.gave_up is None and not link.conn.closed:
                link.gave_up = link.box.failure
        if not link.conn.closed:  # else its reader has seen the end already
            log.warning("Giving up executor %s: %s", link.box.executor_id, link.box.failure)
            link.conn.close()
        with self._lock:
            self._changed.notify_all()
