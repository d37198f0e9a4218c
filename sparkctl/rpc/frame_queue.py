"""Framed messages waiting for one socket, in order: what an event loop that never blocks
on a send keeps per peer (the driver's outbox to an executor, a block server's answers to
a reader).

```
 add(frame) ─▶ [frame, frame, ...] ─▶ head() ─▶ socket.send ─▶ sent(n)
               offset: how much of the oldest has gone
```
"""
from __future__ import annotations

from collections import deque

__all__ = ["FrameQueue"]


class FrameQueue:
    """No I/O: the owner sends ``head()`` and reports what went with ``sent()``."""

    def __init__(self) -> None:
        self.frames: deque[bytes] = deque()
        self.offset = 0  # bytes of frames[0] already sent
        self.queued = 0  # bytes queued and not yet sent

    @property
    def idle(self) -> bool:
        return not self.frames

    def add(self, frame: bytes, already_sent: int = 0) -> None:
        """Queue ``frame``, of which the caller sent the first ``already_sent`` bytes itself
        (only on an idle queue)."""
        if already_sent and self.frames:
            raise ValueError("only a send to an idle queue can start on the socket")
        if len(frame) <= already_sent:
            return
        if not self.frames:
            self.offset = already_sent
        self.frames.append(frame)
        self.queued += len(frame) - already_sent

    def head(self, limit: int | None = None) -> memoryview:
        """The bytes to send next: what is left of the oldest frame (at most ``limit``)."""
        view = memoryview(self.frames[0])[self.offset:]
        return view if limit is None else view[:limit]

    def sent(self, n: int) -> None:
        """``n`` bytes of ``head()`` went out."""
        self.queued -= n
        self.offset += n
        frames = self.frames
        while frames and self.offset >= len(frames[0]):
            self.offset -= len(frames.popleft())
        if not frames:
            self.offset = 0

    def clear(self) -> None:
        self.frames.clear()
        self.queued = self.offset = 0
