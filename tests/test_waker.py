"""``rpc.waker.Waker``: what the event loops (dispatcher, block server, driver outbox,
server accept loop) are woken by, against a real selector."""
from __future__ import annotations

import selectors
import threading
import time

import pytest

from sparkctl.rpc.waker import Waker

pytestmark = pytest.mark.timeout(30)


def test_a_wake_from_another_thread_ends_a_select_and_drain_rearms_it() -> None:
    waker = Waker()
    with selectors.DefaultSelector() as sel:
        sel.register(waker, selectors.EVENT_READ, "waker")
        assert sel.select(0.05) == []  # nothing yet: the select waits out its timeout
        started = time.monotonic()
        threading.Timer(0.1, waker.wake).start()
        events = sel.select(10)
        assert [key.data for key, _ in events] == ["waker"] and time.monotonic() - started < 5
        for _ in range(1000):  # wake-ups made before the loop looks collapse into one
            waker.wake()
        assert len(sel.select(0)) == 1
        waker.drain()
        assert sel.select(0.05) == []  # drained: it waits again
    waker.close()
    waker.wake()  # after close: a stopped loop's late wake-up is no error
    waker.drain()


def test_wakes_never_block_however_many() -> None:
    waker = Waker()
    try:
        for _ in range(200_000):  # far past the socket buffer: the extra bytes are dropped
            waker.wake()
        waker.drain()
        with selectors.DefaultSelector() as sel:
            sel.register(waker, selectors.EVENT_READ)
            assert sel.select(0) == []
    finally:
        waker.close()
