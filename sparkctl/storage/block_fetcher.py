"""A reducer's remote reads: one request per executor, many in flight, records in map order.

A reduce task needs its slice of every map output. Asking for them one at a time costs a
round trip each, and on a wide cluster (a hundred executors, each holding one map output)
the task spends its life waiting. As Spark's ``ShuffleBlockFetcherIterator``:

```
 statuses ──plan──▶ requests: per executor, its slices for this reducer packed together
                    (each request at most REQUEST_SIZE bytes; a larger slice is split in ranges)
            ──send──▶ requests in flight while their bytes fit in max_bytes_in_flight
 records ◀──decode── slices taken in map order: a local one read from disk meanwhile, a
                    remote one as soon as its request's reply is in
```

Records come out in map order, as the one-at-a-time reader gave them, so a job's output
does not depend on which executor answered first. The transport is the ``ShuffleClient``
seam: the executor's slots use real connections (``sparkctl.executor.shuffle_client``),
tests and the single-range fetchers use ``RangeClient``.
"""
from __future__ import annotations

import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Protocol, Sequence

from sparkctl import serializers
from sparkctl.errors import FetchFailedError
from sparkctl.executor import task_metrics
from sparkctl.storage.merged_shuffle import merged_name, merger_of

log = logging.getLogger("sparkctl.executor")

Address = tuple[str, int]
REQUEST_SIZE = 4 << 20  # bytes one request may ask for: one reply frame of at most this
MAX_BYTES_IN_FLIGHT = 48 << 20  # spark.reducer.maxSizeInFlight's default


class BlockRange(NamedTuple):
    """Bytes ``offset``..``offset + length`` of map output ``map_index``'s slice. (A named
    tuple: a reducer of a wide shuffle makes one per map task, and a frozen dataclass
    costs twice as much to make.)"""

    map_index: int
    file_name: str  # the map output's data file, in its executor's local dir
    offset: int
    length: int


@dataclass(eq=False, slots=True)
class FetchRequest:
    """Ranges of one executor's map outputs, asked in one message; its reply is their bytes
    one after the other (the client knows each range's length)."""

    address: Address
    executor_id: str
    reduce_index: int
    ranges: list[BlockRange] = field(default_factory=list)
    size: int = 0
    data: bytes | bytearray | None = None  # the reply, once in
    error: str | None = None  # why there will be none
    taken: int = 0  # ranges the reader has taken from the reply
    start: int = 0  # where in the reader's order of remote bytes its first range is
    abandoned: bool = False  # its reader stopped early: a late reply is read and dropped
    # ranges of merged files at a merger (push-based shuffle): when it fails, the reader
    # reads these blocks from their map outputs instead
    merged_blocks: "list[Block] | None" = None
    # sent instead of the ranges (a map task's push: its reply's size is set, as a read's)
    message: Any = None
    sent: int = 0  # perf_counter_ns when the reader sent it
    replied: int = 0  # perf_counter_ns when its client took its reply in

    @property
    def done(self) -> bool:
        return self.data is not None or self.error is not None


class ShuffleClient(Protocol):
    """The transport a fetcher sends its requests through."""

    def connect(self, addresses: Iterable[Address], timeout: float | None = None) -> None:
        """Open what connections are missing to ``addresses`` (side by side, each within
        ``timeout`` seconds if given); a failure is reported later, as the error of that
        address's requests."""

    def send(self, request: FetchRequest) -> None:
        """Ask for ``request``'s ranges; it is returned by ``wait`` once done or failed."""

    def wait(self, timeout: float) -> list[FetchRequest]:
        """Requests done or failed since the last call; waits up to ``timeout`` seconds for
        at least one, and returns [] when none came."""

    def close(self, address: Address, reason: str) -> None:
        """Give up on ``address``: its connection closes, its requests in flight fail."""


# where one range of a slice is: its request, and its start and length in the reply
Part = tuple[FetchRequest, int, int]
Block = tuple[int, Any, list[Part]]  # (map index, status, [] for a local read, else its parts)


class ReducerColumn(NamedTuple):
    """What one reducer reads of a shuffle's statuses: for each map index, where its output
    is, the size of this reducer's slice of it, and where that slice starts in the
    reducer's merged file at its merger (-1: not merged)."""

    locations: Sequence[Any]  # a MapStatus or MapLocation each, None for a map output missing
    sizes: Sequence[int]
    merged: Sequence[int] | None  # None: no map output was merged
    mergers: tuple[tuple[str, str, int] | None, ...]  # the shuffle's mergers, None for a lost one
    reducers: int


def reducer_column(statuses: Any, reduce_index: int) -> ReducerColumn:
    """Reducer ``reduce_index``'s column of ``statuses``: asked of an executor's
    ``ShuffleStatuses``, which inflates only the group of columns it lies in, or read off a
    list of MapStatus (the local scheduler's, tests')."""
    column = getattr(statuses, "column", None)
    if column is not None:
        got: ReducerColumn = column(reduce_index)
        return got
    r = reduce_index
    sizes = [s.sizes[r] if s is not None else 0 for s in statuses]
    merged_status = next((s for s in statuses if s is not None and s.merged), None)
    merged = None
    if merged_status is not None:
        merged = [s.merged[r] if s is not None and s.merged else -1 for s in statuses]
    reducers = next((len(s.sizes) for s in statuses if s is not None), 0)
    return ReducerColumn(statuses, sizes, merged, merged_status.mergers if merged_status else (), reducers)


class _Planner:
    """Packs ranges into requests (see ``plan``)."""

    def __init__(self, reduce_index: int, request_size: int, shuffle_id: int = 0,
                 column: ReducerColumn | None = None) -> None:
        self.reduce_index = reduce_index
        self.request_size = request_size
        self.requests: list[FetchRequest] = []
        # (address, merged) -> the request ranges are added to: merged ranges go apart, so
        # that a failed merger fails nothing but what can be read from the map outputs
        self.open: dict[tuple[Address, bool], FetchRequest] = {}
        self.position = 0  # remote bytes planned so far, in the order the reader takes them
        # where the reducer's merged slices start, its merger and its merged file's name
        self._offsets: Sequence[int] | None = None
        self._merger: tuple[str, str, int] | None = None
        self._merged_name = ""
        if column is not None and column.merged is not None and column.mergers:
            self._offsets = column.merged
            self._merger = column.mergers[merger_of(reduce_index, column.reducers, len(column.mergers))]
            self._merged_name = merged_name(shuffle_id, reduce_index)

    def original(self, map_index: int, status: Any, size: int) -> list[Part]:
        """The requests of a map output's slice, from the map output itself."""
        address = (status.host, status.port)
        name = os.path.basename(status.data_path)
        return [self._add((address, False), status.executor_id, BlockRange(map_index, name, offset,
                                                                          min(self.request_size, size - offset)))
                for offset in range(0, size, self.request_size)]

    def merged(self, map_index: int, size: int) -> list[Part]:
        """The request of a slice from its merger's merged file, or [] when it has none
        there (not pushed, too large for one range, or the merger is lost)."""
        merger = self._merger
        if merger is None or size > self.request_size:
            return []
        assert self._offsets is not None
        offset = self._offsets[map_index]
        if offset < 0:
            return []
        executor_id, host, port = merger
        return [self._add(((host, port), True), executor_id, BlockRange(map_index, self._merged_name, offset, size))]

    def _add(self, key: tuple[Address, bool], executor_id: str, r: BlockRange) -> Part:
        req = self.open.get(key)
        if (req is None or req.size + r.length > self.request_size
                or self.position - req.start >= self.request_size):
            req = FetchRequest(key[0], executor_id, self.reduce_index, start=self.position,
                               merged_blocks=[] if key[1] else None)
            self.open[key] = req
            self.requests.append(req)
        part = (req, req.size, r.length)
        req.ranges.append(r)
        req.size += r.length
        self.position += r.length
        return part


def plan(shuffle_id: int, statuses: Any, reduce_index: int, local_host: str, remote: bool,
         request_size: int = REQUEST_SIZE, column: ReducerColumn | None = None
         ) -> tuple[list[Block], list[FetchRequest]]:
    """The reducer's work: each non-empty map output in map order, and the requests in the
    order they were made. A request packs one executor's ranges together up to
    ``request_size`` bytes, from at most ``request_size`` bytes of the reader's order
    apart: the reader holds a request until it has taken its last range, so a request
    spanning the whole read (executors taking turns over the maps) would be held, half
    read, beside one such request per executor. A remote slice that was pushed to a merger
    is read there (push-based shuffle: one request for the slices of every map task).
    ``statuses`` is a list of MapStatus or an executor's ``ShuffleStatuses``; ``column``,
    its column for this reducer, if already read."""
    if column is None:
        column = reducer_column(statuses, reduce_index)
    blocks: list[Block] = []
    planner = _Planner(reduce_index, request_size, shuffle_id, column)
    for map_index, (status, size) in enumerate(zip(column.locations, column.sizes)):
        if status is None:
            raise FetchFailedError(shuffle_id, map_index, reduce_index, "map output missing")
        if not size:
            continue
        if status.host == local_host or not remote:
            blocks.append((map_index, status, []))
            continue
        parts = planner.merged(map_index, size)
        block = (map_index, status, parts or planner.original(map_index, status, size))
        if parts:
            merged_blocks = parts[0][0].merged_blocks
            assert merged_blocks is not None
            merged_blocks.append(block)
        blocks.append(block)
    return blocks, planner.requests


class ShuffleBlockFetcher:
    """Yields the unpickled batches of every map output's slice for one reducer, in map
    order, with remote requests in flight ahead of the reader."""

    def __init__(self, shuffle_id: int, reduce_index: int, statuses: Any, local_host: str,
                 client: ShuffleClient | None, *, timeout: float = 120.0,
                 max_bytes_in_flight: int = MAX_BYTES_IN_FLIGHT, request_size: int = REQUEST_SIZE,
                 read_local: Callable[[Any, int], Iterator[list[Any]]]) -> None:
        self.shuffle_id = shuffle_id
        self.reduce_index = reduce_index
        self.client = client
        self.timeout = timeout
        self.max_bytes_in_flight = max(max_bytes_in_flight, request_size)
        self.read_local = read_local
        # as Spark's targetRequestSize: a fifth of the window, so that requests to several
        # executors are in flight at once and the ones the reader holds fit beside them
        self.request_size = max(1, min(request_size, self.max_bytes_in_flight // 5))
        column = reducer_column(statuses, reduce_index)
        self.sizes = column.sizes  # each map output's slice for this reducer, by map index
        self.blocks, requests = plan(shuffle_id, statuses, reduce_index, local_host, client is not None,
                                     self.request_size, column)
        self.unsent: deque[FetchRequest] = deque(requests)
        self.in_flight = 0  # bytes asked for and not yet handed to the reader

    def __iter__(self) -> Iterator[list[Any]]:
        try:
            yield from self._batches()
        finally:  # stopped early (take(), a failure): replies still to come are dropped
            for req in self.unsent:
                req.abandoned = True
            for _, _, parts in self.blocks:
                for req, _, _ in parts:
                    if req.taken < len(req.ranges):
                        req.abandoned = True
                        req.data = None

    def _batches(self) -> Iterator[list[Any]]:
        metrics = task_metrics.current()
        if self.client is not None and self.unsent:
            self.client.connect(dict.fromkeys(r.address for r in self.unsent))
            self._send_more()
        loads = serializers.loads_batch
        sizes = self.sizes
        for map_index, status, parts in self.blocks:
            size = sizes[map_index]
            if parts:
                metrics.shuffle_remote_blocks_fetched += 1
                metrics.shuffle_remote_bytes_read += size
                if len(parts) == 1:
                    # the whole slice in one range (a merged slice always is): its batches
                    # straight from the reply, with no generator or buffer of its own; a
                    # wide shuffle's reducer takes a hundred small slices this way
                    try:
                        view = self._whole_slice(parts[0])
                        if view is not None:
                            if parts[0][0].merged_blocks is not None:
                                metrics.shuffle_merged_remote_blocks_fetched += 1
                                metrics.shuffle_merged_remote_bytes_read += size
                            pos = 0
                            while pos < size:
                                end = pos + 4 + int.from_bytes(view[pos:pos + 4], "little")
                                if end > size:
                                    raise OSError("the slice ends inside a batch")
                                records = loads(view[pos + 4:end])
                                metrics.shuffle_records_read += len(records)
                                yield records
                                pos = end
                            continue
                    except FetchFailedError:
                        raise
                    except Exception as e:
                        raise self._fetch_failed(map_index, status, e) from None
                batches = self._remote_batches(map_index, status, parts)
            else:
                metrics.shuffle_local_blocks_fetched += 1
                metrics.shuffle_local_bytes_read += size
                batches = self.read_local(status, self.reduce_index)
            while True:
                try:
                    batch = next(batches, None)
                except FetchFailedError:
                    raise
                except Exception as e:
                    raise self._fetch_failed(map_index, status, e) from None
                if batch is None:
                    break
                metrics.shuffle_records_read += len(batch)
                yield batch

    def _fetch_failed(self, map_index: int, status: Any, e: Exception) -> FetchFailedError:
        """What a slice that cannot be read becomes (a missing or cut file, a dead
        executor): the map stage must rerun."""
        return FetchFailedError(self.shuffle_id, map_index, self.reduce_index,
                                f"{type(e).__name__}: {e} (from executor {status.executor_id})")

    def _remote_batches(self, map_index: int, status: Any, parts: list[Part]) -> Iterator[list[Any]]:
        """One remote slice's batches, from its ranges in order (a batch may span ranges).
        ``parts`` is read by position: a failed merged read replaces it in place."""
        loads = serializers.loads_batch
        pending = bytearray()
        i = 0
        while i < len(parts):
            req, start, length = parts[i]
            if req.merged_blocks is not None and not req.done:
                self._wait_for(req)
            if req.merged_blocks is not None and req.data is None:
                self._read_unmerged(req)  # parts now name the map output
                continue
            i += 1
            data = self._range(req, start, length)
            pending += data
            del data
            done = 0
            while len(pending) - done >= 4:
                n = int.from_bytes(pending[done:done + 4], "little")
                if len(pending) - done - 4 < n:
                    break
                yield loads(pending[done + 4:done + 4 + n])  # a copy: no view may pin `pending`
                done += 4 + n
            del pending[:done]
        if pending:
            raise OSError(f"the slice from executor {status.executor_id} ends inside a batch")

    def _whole_slice(self, part: Part) -> memoryview | None:
        """The bytes of a slice asked in one range, or None when that range was asked of a
        merger that failed (``_remote_batches`` then reads the map output instead)."""
        req, start, length = part
        if req.merged_blocks is not None:
            if not req.done:
                self._wait_for(req)
            if req.data is None:
                return None
        return self._range(req, start, length)

    def _range(self, req: FetchRequest, start: int, length: int) -> memoryview:
        """Bytes ``start``..``start + length`` of ``req``'s reply, waiting for it if need be."""
        if not req.done:
            self._wait_for(req)
        if req.data is None:
            raise OSError(req.error or "no data")
        data = memoryview(req.data)[start:start + length]
        req.taken += 1
        if req.taken == len(req.ranges):  # every range taken: its bytes leave the window
            self.in_flight -= req.size
            req.data = None
            self._count(req)
            self._send_more()
        return data

    @staticmethod
    def _count(req: FetchRequest) -> None:
        """A request read whole: its time in flight (send to reply) and, for a merged read,
        one merged chunk."""
        metrics = task_metrics.current()
        took = req.replied - req.sent if req.replied and req.sent else 0
        metrics.shuffle_remote_reqs_duration += took
        if req.merged_blocks is not None:
            metrics.shuffle_merged_remote_chunks_fetched += 1
            metrics.shuffle_merged_remote_reqs_duration += took

    def _read_unmerged(self, req: FetchRequest) -> None:
        """A merger could not give ``req``'s slices (lost, or a merged file gone): read them
        from their map outputs, ahead of every request not sent yet. Each merged slice is
        one range, so none of them was taken in part."""
        assert req.merged_blocks is not None
        log.warning("shuffle %d reducer %d: merger %s failed (%s); reading its %d slices from the map outputs",
                    self.shuffle_id, self.reduce_index, req.executor_id, req.error, len(req.merged_blocks))
        self.in_flight -= req.size
        task_metrics.current().shuffle_merged_fetch_fallback_count += 1
        planner = _Planner(self.reduce_index, self.request_size)
        for map_index, status, parts in req.merged_blocks:
            parts[:] = planner.original(map_index, status, self.sizes[map_index])
        req.merged_blocks = None
        self.unsent.extendleft(reversed(planner.requests))
        self._send_more()

    def _send_more(self) -> None:
        assert self.client is not None
        while self.unsent and (not self.in_flight or self.in_flight + self.unsent[0].size <= self.max_bytes_in_flight):
            self._send(self.unsent.popleft())

    def _send(self, req: FetchRequest) -> None:
        assert self.client is not None
        self.in_flight += req.size
        req.sent = time.perf_counter_ns()
        self.client.send(req)

    def _wait_for(self, req: FetchRequest) -> None:
        assert self.client is not None
        metrics = task_metrics.current()
        waited = time.perf_counter_ns()
        # the request may not be sent yet: a window full of later maps' ranges (one
        # executor's request packs maps from all over) must not hold the reader back
        while not req.done and any(r is req for r in self.unsent):
            self._send(self.unsent.popleft())
        deadline = time.monotonic() + self.timeout
        while not req.done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                reason = (f"no reply from executor {req.executor_id} at {req.address[0]}:{req.address[1]} "
                          f"within spark.network.timeout ({self.timeout:g}s)")
                self.client.close(req.address, reason)
                if not req.done:
                    req.error = reason
                break
            if self.client.wait(remaining):
                deadline = time.monotonic() + self.timeout  # progress: the timeout counts from here
        metrics.shuffle_fetch_wait_time += time.perf_counter_ns() - waited


class RangeClient:
    """A client over a plain function that returns one range's bytes: each request is done
    by calling it for every range, when ``wait`` is called (for tests and in-process use)."""

    def __init__(self, fetch: Callable[[FetchRequest, BlockRange], bytes]) -> None:
        self.fetch = fetch
        self.queue: deque[FetchRequest] = deque()

    def connect(self, addresses: Iterable[Address], timeout: float | None = None) -> None:
        pass

    def send(self, request: FetchRequest) -> None:
        self.queue.append(request)

    def wait(self, timeout: float) -> list[FetchRequest]:
        done = []
        while self.queue:
            req = self.queue.popleft()
            try:
                data = b"".join(self.fetch(req, r) for r in req.ranges)
                if len(data) == req.size:
                    req.data = data
                    req.replied = time.perf_counter_ns()
                else:
                    req.error = f"executor {req.executor_id} sent {len(data)} of {req.size} bytes"
            except Exception as e:
                req.error = f"{type(e).__name__}: {e}"
            done.append(req)
        return done

    def close(self, address: Address, reason: str) -> None:
        for req in [r for r in self.queue if r.address == address]:
            self.queue.remove(req)
            req.error = reason
