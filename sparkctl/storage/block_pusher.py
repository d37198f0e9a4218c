"""A map task's side of push-based shuffle (Spark's ShuffleBlockPusher): its committed
slices go to the mergers that own their reducers (see ``merged_shuffle``).

```
 sizes, data file ─▶ per merger j: the slices of the reducers j owns, each of at most
                     max_block bytes, in batches of at most max_batch bytes (contiguous
                     slices read with one pread)
                  ─▶ PushShuffleBlocks, all of them in flight at once, over the slot's
                     block server connections (the ones its reduce tasks read through)
                  ◀─ where each slice starts in its merged file; a merger that fails or
                     does not answer within the timeout (dial included) leaves its slices
                     unmerged, and the slot skips it for SKIP_FAILED seconds
```
"""
from __future__ import annotations

import logging
import os
import sys
import time
from array import array
from typing import Sequence

from sparkctl.executor.messages import PushShuffleBlocks
from sparkctl.storage.block_fetcher import FetchRequest, ShuffleClient
from sparkctl.storage.merged_shuffle import PUSH_TIMEOUT, owned_reducers
from sparkctl.storage.shuffle_block_resolver import pread_exactly

log = logging.getLogger("sparkctl.executor")

Location = tuple[str, str, int]
#: how long a slot skips a merger whose push failed or went unanswered: every later map
#: task of the stage would otherwise wait for it too, until the driver declares it lost
SKIP_FAILED = 60.0
_failed: dict[tuple[str, int], float] = {}  # merger address -> when its push failed (this process)


def plan_pushes(sizes: Sequence[int], mergers: Sequence[Location | None], max_block: int,
                max_batch: int) -> list[tuple[int, list[int]]]:
    """``(merger, reducers)`` of each push: every non-empty slice of at most ``max_block``
    bytes goes to the merger owning its reducer, a merger's slices in batches of at most
    ``max_batch`` bytes (a slice larger than that alone)."""
    pushes: list[tuple[int, list[int]]] = []
    reducers = len(sizes)
    for j, loc in enumerate(mergers):
        if loc is None:
            continue
        batch: list[int] = []
        held = 0
        for r in owned_reducers(j, reducers, len(mergers)):
            n = sizes[r]
            if not 0 < n <= max_block:
                continue
            if batch and held + n > max_batch:
                pushes.append((j, batch))
                batch, held = [], 0
            batch.append(r)
            held += n
        if batch:
            pushes.append((j, batch))
    return pushes


def _read_slices(fd: int, starts: Sequence[int], sizes: Sequence[int], reducers: list[int]) -> bytes:
    """The slices of ``reducers`` one after the other; a run of adjacent ones in one read."""
    parts = []
    i = 0
    while i < len(reducers):
        j = i
        while j + 1 < len(reducers) and reducers[j + 1] == reducers[j] + 1:
            j += 1
        begin = starts[reducers[i]]
        length = starts[reducers[j]] + sizes[reducers[j]] - begin
        data = pread_exactly(fd, length, begin)
        if len(data) != length:
            raise OSError("a map output's data file is shorter than its slices")
        parts.append(data)
        i = j + 1
    return parts[0] if len(parts) == 1 else b"".join(parts)


def push_map_output(client: ShuffleClient, shuffle_id: int, map_index: int, data_path: str,
                    sizes: Sequence[int], mergers: Sequence[Location | None], max_block: int, max_batch: int,
                    timeout: float = PUSH_TIMEOUT) -> tuple[int, ...]:
    """Push a committed map output's small slices to their mergers; returns where each
    slice was merged (its offset in the merged file), -1 where it was not. Never raises
    for a merger's sake: a slice not merged is read from the map output. The dials and
    then the answers each get ``timeout`` seconds."""
    merged = [-1] * len(sizes)
    now = time.monotonic()
    for address, when in list(_failed.items()):
        if now - when >= SKIP_FAILED:
            del _failed[address]
    if _failed:
        mergers = [m if m is None or (m[1], m[2]) not in _failed else None for m in mergers]
    pushes = plan_pushes(sizes, mergers, max_block, max_batch)
    if not pushes:
        return tuple(merged)
    starts = [0] * len(sizes)
    for r in range(1, len(sizes)):
        starts[r] = starts[r - 1] + sizes[r - 1]
    requests = []
    fd = os.open(data_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        for j, reducers in pushes:
            executor_id, host, port = mergers[j]  # type: ignore[misc]
            req = FetchRequest((host, port), executor_id, -1, size=8 * len(reducers))
            req.message = PushShuffleBlocks(shuffle_id, map_index, reducers, [sizes[r] for r in reducers],
                                            _read_slices(fd, starts, sizes, reducers))
            requests.append(req)
    finally:
        os.close(fd)
    client.connect(dict.fromkeys(r.address for r in requests), timeout)  # a merger may be cut off
    for req in requests:
        client.send(req)
    deadline = time.monotonic() + timeout
    pending = {id(r): r for r in requests}  # the pushes not answered yet
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            for req in list(pending.values()):
                client.close(req.address, f"no answer to a push within {timeout:g}s")
            remaining = 0.0
        for req in client.wait(remaining):
            if pending.pop(id(req), None) is not req:
                continue  # a late reply of an earlier read on this connection
            if req.data is None:
                log.warning("shuffle %d map %d: push to merger %s failed: %s (its slices are read from the map "
                            "output; this slot skips it for %gs)", shuffle_id, map_index, req.executor_id, req.error,
                            SKIP_FAILED)
                _failed[req.address] = time.monotonic()
                continue
            offsets = array("q")
            offsets.frombytes(bytes(req.data))
            if sys.byteorder != "little":
                offsets.byteswap()
            for r, at in zip(req.message.reduce_indices, offsets):
                merged[r] = at
        if remaining <= 0:
            break
    for req in requests:
        req.message = None
    return tuple(merged)
