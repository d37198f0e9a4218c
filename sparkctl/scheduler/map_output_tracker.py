"""Where each shuffle's map outputs are, and how an executor learns it: Spark's MapOutputTracker.

```
 driver: MapOutputTracker (the master side; the DAG scheduler registers and unregisters outputs)
   shuffle id -> one MapStatus per map partition, an epoch, and each shuffle's statuses
   encoded once (compressed; past spark.shuffle.mapOutput.minSizeForBroadcast, a broadcast)
            ▲ GetMapOutputStatuses(shuffle)           │ MapOutputStatuses(shuffle, epoch, bytes | broadcast id)
            │ (once per shuffle and epoch)             ▼
 executor: MapOutputTrackerWorker: shuffle id -> the encoded statuses, dropped when a stage
   arrives with a newer epoch (outputs were lost: a fetch failure, an executor gone)
            ▲ ("map_statuses", shuffle, epoch)         │ the encoded bytes
            │                                          ▼
 task slot: ShuffleStatuses: the locations decoded once per shuffle and epoch, and a
   reducer's column of sizes inflated with its group only (scheduler/map_status_codec.py)
```
Statuses never ride in a stage's binary: a reduce stage over M maps and R reducers would
otherwise carry M x R sizes to every executor and, pickled again, to every slot.

The epoch rises whenever an output is unregistered, as Spark's does; every stage carries
the epoch it was submitted at, and an executor that sees a newer one forgets what it
fetched. Outputs registered later (a rerun map task) need no epoch: the stage that reads
them is submitted after they exist, and a list still missing one is never cached.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Sequence

from sparkctl.scheduler.map_status_codec import ShuffleStatuses, decode_statuses, encode_statuses
from sparkctl.storage.shuffle import MapStatus

__all__ = ["MIN_SIZE_FOR_BROADCAST", "MapOutputTracker", "MapOutputTrackerWorker", "MetadataFetchFailedError",
           "ServedStatuses", "ShuffleStatuses", "decode_statuses", "encode_statuses"]

# the default of spark.shuffle.mapOutput.minSizeForBroadcast (512k, as Spark's): encoded
# statuses at least this large go to an executor as a broadcast (kept there until they
# change), not inside the reply; the runtime passes the application's setting
MIN_SIZE_FOR_BROADCAST = 512 << 10


# ----------------------------------------------------------------------------- driver side
@dataclass(frozen=True)
class ServedStatuses:
    """What the driver answers one request with: the encoded statuses inline, or the id of
    the broadcast that holds them (sent before the answer if that executor lacks it)."""

    shuffle_id: int
    epoch: int
    data: bytes
    broadcast_id: int | None
    complete: bool  # every map output is registered (else the executor does not cache them)


class MapOutputTracker:
    """The driver's side: the DAG scheduler's bookkeeping of map outputs, plus each shuffle's
    statuses encoded once per change for every executor that asks. No I/O: the runtime
    sends what ``serve`` returns and removes the broadcasts ``retired_broadcasts`` names."""

    def __init__(self, min_size_for_broadcast: int = MIN_SIZE_FOR_BROADCAST) -> None:
        self.outputs: dict[int, list[MapStatus | None]] = {}
        # push-based shuffle: each shuffle's mergers, chosen once (a lost one becomes None)
        self.mergers: dict[int, list[tuple[str, str, int] | None]] = {}
        self.epoch = 0
        self.min_size_for_broadcast = min_size_for_broadcast
        # shuffle id -> (encoded statuses, broadcast id or None, complete), dropped on any change
        self._encoded: dict[int, tuple[bytes, int | None, bool]] = {}
        self._next_broadcast = -1  # broadcast ids below zero: the context's own ids are >= 0
        self._retired: list[int] = []
        # what executors were sent: bytes of statuses (inline or as a broadcast), requests answered
        self.bytes_served = 0
        self.requests_served = 0

    def _changed(self, shuffle_id: int) -> None:
        cached = self._encoded.pop(shuffle_id, None)
        if cached is not None and cached[1] is not None:
            self._retired.append(cached[1])

    def register_shuffle(self, shuffle_id: int, num_maps: int) -> None:
        self.outputs.setdefault(shuffle_id, [None] * num_maps)

    def unregister_shuffle(self, shuffle_id: int) -> None:
        self.outputs.pop(shuffle_id, None)
        self.mergers.pop(shuffle_id, None)
        self._changed(shuffle_id)

    def shuffle_mergers(self, shuffle_id: int, choose: Callable[[], Sequence[tuple[str, str, int]]]
                        ) -> tuple[tuple[str, str, int] | None, ...]:
        """The mergers of ``shuffle_id``'s map tasks: ``choose()`` at its first map stage,
        the same ones (less the lost) at every rerun, as the merged offsets of registered
        map outputs refer to them."""
        mergers = self.mergers.get(shuffle_id)
        if mergers is None:
            mergers = self.mergers[shuffle_id] = list(choose())
        return tuple(mergers)

    def register_map_output(self, shuffle_id: int, map_index: int, status: MapStatus) -> None:
        self.outputs[shuffle_id][map_index] = status
        self._changed(shuffle_id)

    def unregister_map_output(self, shuffle_id: int, map_index: int) -> None:
        outs = self.outputs.get(shuffle_id)
        if outs is not None and 0 <= map_index < len(outs) and outs[map_index] is not None:
            outs[map_index] = None
            self.epoch += 1
            self._changed(shuffle_id)

    def remove_outputs_on_executor(self, executor_id: str) -> None:
        for shuffle_id, mergers in self.mergers.items():
            for j, loc in enumerate(mergers):
                if loc is not None and loc[0] == executor_id:  # its merged slices are read from the maps
                    mergers[j] = None
                    self.epoch += 1
                    self._changed(shuffle_id)
        for shuffle_id, outs in self.outputs.items():
            lost = False
            for i, status in enumerate(outs):
                if status is not None and status.executor_id == executor_id:
                    outs[i] = None
                    lost = True
            if lost:
                self.epoch += 1
                self._changed(shuffle_id)

    def missing_partitions(self, shuffle_id: int) -> list[int]:
        return [i for i, s in enumerate(self.outputs.get(shuffle_id, [])) if s is None]

    def is_available(self, shuffle_id: int) -> bool:
        outs = self.outputs.get(shuffle_id)
        return outs is not None and all(s is not None for s in outs)

    def statuses(self, shuffle_id: int) -> list[MapStatus | None]:
        return list(self.outputs.get(shuffle_id, []))

    def serve(self, shuffle_id: int, has_broadcast: Callable[[int], bool]) -> ServedStatuses:
        """The answer to an executor's request for ``shuffle_id``'s statuses, encoded once per
        change of the shuffle. Counts the bytes that go to the executor: the encoded
        statuses, unless they are a broadcast it already holds (``has_broadcast``)."""
        cached = self._encoded.get(shuffle_id)
        if cached is None:
            data = encode_statuses(self.outputs.get(shuffle_id, []), self.mergers.get(shuffle_id, ()))
            bid = None
            if len(data) >= self.min_size_for_broadcast:
                bid = self._next_broadcast
                self._next_broadcast -= 1
            cached = self._encoded[shuffle_id] = (data, bid, self.is_available(shuffle_id))
        data, bid, complete = cached
        self.requests_served += 1
        if bid is None or not has_broadcast(bid):
            self.bytes_served += len(data)
        return ServedStatuses(shuffle_id, self.epoch, data, bid, complete)

    def retired_broadcasts(self) -> list[int]:
        """Broadcasts of statuses that changed since: executors may drop them."""
        out, self._retired = self._retired, []
        return out


# ----------------------------------------------------------------------------- executor side
class MetadataFetchFailedError(Exception):
    """The driver did not answer a request for a shuffle's statuses."""


class MapOutputTrackerWorker:
    """An executor's cache of encoded statuses, one driver request per shuffle and epoch
    however many slots ask at once. ``request(shuffle_id)`` sends the request; the
    answer comes back through ``deliver`` from the thread that reads the driver."""

    def __init__(self, request: Callable[[int], None], timeout: float = 120.0) -> None:
        self._request = request
        self.timeout = timeout
        self.epoch = 0
        self._cache: dict[int, bytes] = {}
        self._pending: dict[int, threading.Event] = {}
        self._answers: dict[int, tuple[int, bytes | None, str]] = {}
        self._lock = threading.Lock()
        self.requests_sent = 0

    def update_epoch(self, epoch: int) -> None:
        """A stage submitted at ``epoch``: what was fetched before it may name lost outputs."""
        with self._lock:
            if epoch > self.epoch:
                self.epoch = epoch
                self._cache.clear()

    def get(self, shuffle_id: int, epoch: int) -> bytes:
        """The encoded statuses of ``shuffle_id`` as of ``epoch`` or later, asking the driver
        unless they are cached."""
        self.update_epoch(epoch)
        while True:
            with self._lock:
                data = self._cache.get(shuffle_id)
                if data is not None:
                    return data
                event = self._pending.get(shuffle_id)
                ask = event is None
                if event is None:  # the first to ask
                    event = self._pending[shuffle_id] = threading.Event()
                    self.requests_sent += 1
            if ask:
                try:
                    self._request(shuffle_id)
                except Exception as e:
                    self._finish(shuffle_id, self.epoch, None, f"{type(e).__name__}: {e}")
            if not event.wait(self.timeout):
                self._finish(shuffle_id, self.epoch, None, f"no answer from the driver within {self.timeout:g}s")
            with self._lock:
                answer = self._answers.get(shuffle_id)
            if answer is None:
                continue  # answered and already taken by another waiter, then dropped: ask again
            _, data, error = answer
            if data is None:
                raise MetadataFetchFailedError(f"could not get the map output statuses of shuffle {shuffle_id}: "
                                               f"{error}")
            return data

    def deliver(self, shuffle_id: int, epoch: int, data: bytes | None, complete: bool = True,
                error: str = "") -> None:
        """The driver's answer (``data`` None: it failed, ``error`` says why). A list still
        missing an output is handed to the waiting tasks (they fail to fetch, and the map
        stage reruns) but not kept: the output may be registered by the next request."""
        self._finish(shuffle_id, epoch, data, error, complete)

    def _finish(self, shuffle_id: int, epoch: int, data: bytes | None, error: str, complete: bool = False) -> None:
        with self._lock:
            event = self._pending.pop(shuffle_id, None)
            self._answers[shuffle_id] = (epoch, data, error)
            if data is not None and complete and epoch >= self.epoch:
                self._cache[shuffle_id] = data
        if event is not None:
            event.set()

    def remove_shuffle(self, shuffle_id: int) -> None:
        with self._lock:
            self._cache.pop(shuffle_id, None)
            self._answers.pop(shuffle_id, None)
