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
        if already_sent:
            if self.frames:
                raise ValueError("only a send to an idle queue can start on the socket")
            if len(frame) <= already_sent:
                return
            self.offset = already_sent
        self.frames.append(frame)
        self.queued += len(frame) - already_sent

    def head(self, limit: int | None = None) -> bytes | memoryview:
        """The bytes to send next: what is left of the oldest frame (at most ``limit``)."""
        frame = self.frames[0]
        if limit is None:
            return memoryview(frame)[self.offset:] if self.offset else frame
        return memoryview(frame)[self.offset:self.offset + limit]

    def sent(self, n: int) -> None:
        """``n`` bytes of ``head()`` went out."""
        self.queued -= n
        frames = self.frames
        offset = self.offset + n
        if offset == len(frames[0]):  # the usual case: the rest of the oldest frame went
            frames.popleft()
            self.offset = 0
            return
        while frames and offset >= len(frames[0]):
            offset -= len(frames.popleft())
        self.offset = offset if frames else 0

    def clear(self) -> None:
        self.frames.clear()
        self.queued = self.offset = 0
