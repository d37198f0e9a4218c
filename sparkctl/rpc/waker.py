"""Wakes a thread blocked in a selector, from any other thread.

The event loops (the master's and worker's ``Dispatcher``, an executor's ``BlockServer``,
the driver's ``OutboxWriter``) sleep in ``select`` and are handed work by other threads.
A ``Waker`` is a socket pair the loop registers for reading (the Waker itself: it has a
``fileno``); ``wake`` writes a byte to it, and the loop, woken, calls ``drain``. Bytes of
several wake-ups made before the loop looks collapse into one wake-up.
"""
from __future__ import annotations

import socket

__all__ = ["Waker"]


class Waker:
    def __init__(self) -> None:
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)

    def fileno(self) -> int:
        """The end a selector watches for reading."""
        return self._read.fileno()

    def wake(self) -> None:
        """Any thread: make the loop's next (or current) select return."""
        try:
            self._write.send(b"x")
        except OSError:
            pass  # full: a wake-up is pending already; closed: the loop has stopped

    def drain(self) -> None:
        """The loop: take the wake-ups' bytes, so the next select waits again."""
        try:
            while self._read.recv(4096):
                pass
        except OSError:  # nothing more (BlockingIOError), or closed
            pass

    def close(self) -> None:
        self._read.close()
        self._write.close()
