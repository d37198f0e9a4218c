"""``rpc.frame_queue.FrameQueue``: frames handed to a socket in pieces come out whole and in
order, whatever sizes the socket takes; the reference is the frames joined."""
from __future__ import annotations

import random

import pytest

from sparkctl.rpc.frame_queue import FrameQueue

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("seed", range(5))
def test_pieces_of_any_size_give_the_frames_in_order(seed: int) -> None:
    rng = random.Random(seed)
    queue = FrameQueue()
    frames = [bytes([i % 251]) * rng.randrange(1, 300) for i in range(200)]
    wire = bytearray()
    pending = list(frames)
    while pending or not queue.idle:
        for _ in range(rng.randrange(3)):  # frames arrive while earlier ones are half sent
            if pending:
                queue.add(pending.pop(0))
        if queue.idle:
            continue
        piece = bytes(queue.head(rng.choice([1, 7, 64, 1000, None])))
        taken = piece[:rng.randrange(1, len(piece) + 1)]  # the socket takes part of what it is offered
        wire += taken
        queue.sent(len(taken))
        assert queue.queued == sum(map(len, frames)) - len(wire) - sum(map(len, pending))
    assert bytes(wire) == b"".join(frames)
    assert queue.idle and queue.queued == 0 and queue.offset == 0


def test_a_frame_the_caller_started_sending_itself_is_queued_from_there() -> None:
    queue = FrameQueue()
    queue.add(b"abcdef", already_sent=4)
    assert bytes(queue.head()) == b"ef" and queue.queued == 2
    with pytest.raises(ValueError, match="idle"):
        queue.add(b"xyz", already_sent=1)  # only the first frame of an idle queue
    queue.add(b"xyz")
    queue.sent(3)
    assert bytes(queue.head()) == b"yz" and queue.queued == 2
    queue.add(b"all of it", already_sent=0)
    queue.clear()
    assert queue.idle and queue.queued == 0
    queue.add(b"done", already_sent=4)  # sent whole by the caller: nothing to queue
    assert queue.idle
