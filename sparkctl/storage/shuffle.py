"""Shuffle files: one data file and one index per map task; a reducer reads its slice.

```
 map task ──records──▶ [map-side combine] ──▶ PartitionedWriter ──▶ shuffle_S_M_A.data
                                              (per-reducer pickled        shuffle_S_M_A.index
                                               batches; spills past        (n+1 offsets)
                                               budget, concatenated)
 reduce task r ──▶ for each map output: index[r]..index[r+1] of its data file
                   (read from disk on the same host, else fetched from its executor:
                   block_fetcher, one request per executor, several in flight)
```

With ``spark.shuffle.compress`` each batch is compressed on its own (see ``compression``), so
a slice is still a run of whole batches: the index's offsets, the block server's ranges
and the task metrics' shuffle bytes are all of the bytes as stored.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from array import array
from itertools import chain
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

from sparkctl import serializers
from sparkctl.executor import task_metrics
from sparkctl.rdd.dependencies import ShuffleDependency
from sparkctl.storage import compression, sizing
from sparkctl.storage.block_fetcher import (MAX_BYTES_IN_FLIGHT, REQUEST_SIZE, BlockRange, FetchRequest, RangeClient,
                                            ShuffleBlockFetcher, ShuffleClient)
from sparkctl.storage.shuffle_block_resolver import check_range, pread_exactly, slice_range
from sparkctl.storage.spill import ExternalAppendOnlyMap



class MapStatus(NamedTuple):
    """Where one map task's output lives and how big each reducer's slice is. A named
    tuple: every executor builds one per map output of a shuffle it reads (a hundred
    thousand for a 1,000 x 100 shuffle), which a frozen dataclass makes three times as
    costly."""

    executor_id: str
    host: str
    port: int
    data_path: str
    index_path: str
    sizes: Sequence[int]  # a tuple; in an executor's decoded statuses, an array slice
    # push-based shuffle (storage/merged_shuffle.py): where each slice starts in its
    # reducer's merged file at the merger that owns the reducer, -1 where it was not
    # merged; () when the map task pushed nothing
    merged: Sequence[int] = ()
    # the shuffle's mergers (executor id, host, block server port), None for a lost one:
    # the driver's list, set on the statuses it serves
    mergers: tuple[tuple[str, str, int] | None, ...] = ()


class MapLocation(NamedTuple):
    """Where one map task's output lives: a MapStatus without its sizes (an executor's
    ``ShuffleStatuses`` gives a reducer its column of sizes apart)."""

    executor_id: str
    host: str
    port: int
    data_path: str
    index_path: str


def shuffle_paths(local_dir: str, shuffle_id: int, map_index: int, attempt_id: int) -> tuple[str, str]:
    base = os.path.join(local_dir, f"shuffle_{shuffle_id}_{map_index}_{attempt_id}")
    return base + ".data", base + ".index"


class PartitionedWriter:
    """Buckets records by reducer into pickled batches; spills them past ``budget``."""

    def __init__(self, num_partitions: int, partition_of: Callable[[Any], int], budget: int,
                 spill_dir: str, batch_size: int = 1000) -> None:
        self.n = num_partitions
        self.partition_of = partition_of
        self.budget = max(budget, 1 << 20)
        self.spill_dir = spill_dir
        self.batch_size = batch_size
        # records a batch: batch_size, fewer of large records (see sizing.batch_limit)
        self.batch_limit = min(batch_size, sizing.FIRST_BATCH)
        self.buckets: list[list[Any]] = [[] for _ in range(num_partitions)]
        self.buffers: list[bytearray] = [bytearray() for _ in range(num_partitions)]
        self.buffered = 0
        self.pending = 0
        self.record_bytes = 64  # running estimate of an unpickled record's memory
        self.spills: list[tuple[str, list[int]]] = []
        # counted as batches are pickled, not per record: Spark's shuffle records written
        self.records_written = 0
        self.codec = compression.shuffle_codec()

    def write_all(self, records: Iterable[tuple[Any, Any]]) -> None:
        n = self.n
        limit = self.batch_limit
        buckets = self.buckets  # each bucket is emptied in place, so these stay valid
        part = self.partition_of
        if n == 1:
            b0 = buckets[0]
            for rec in records:
                b0.append(rec)
                if len(b0) >= limit:
                    self._flush_bucket(0)
                    limit = self.batch_limit
            return
        for rec in records:
            p = part(rec[0])
            b = buckets[p]
            b.append(rec)
            if len(b) >= limit:
                self._flush_bucket(p)
                limit = self.batch_limit

    def _flush_bucket(self, p: int) -> None:
        bucket = self.buckets[p]
        pickled = serializers.dumps(bucket, serializers.PROTOCOL)
        # batch sizes follow the pickled bytes (what a reader holds), not the stored ones
        self.record_bytes = max(16, 3 * len(pickled) // max(1, len(bucket)))
        self.batch_limit = sizing.batch_limit(self.batch_size, len(bucket), len(pickled))
        data = serializers.frame(pickled, self.codec)
        del pickled
        self.buffers[p] += data
        self.records_written += len(bucket)
        bucket.clear()
        self.buffered += len(data)
        # records waiting in the other buckets count too; and the process's real memory,
        # which also holds what the map task's own code keeps
        held = self.buffered + self._pending_estimate()
        task_metrics.current().note_execution_memory(held)
        if held > self.budget or (self.buffered >= self.budget >> 3 and sizing.over_rss_limit()):
            self.spill()

    def _pending_estimate(self) -> int:
        return sum(map(len, self.buckets)) * self.record_bytes

    def spill(self) -> None:
        in_memory = self.buffered + self._pending_estimate()
        self._encode_buckets()
        started = time.perf_counter_ns()
        fd, path = tempfile.mkstemp(prefix="shuffle-spill-", dir=self.spill_dir)
        offsets = [0]
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            for p in range(self.n):
                f.write(self.buffers[p])
                offsets.append(offsets[-1] + len(self.buffers[p]))
                self.buffers[p] = bytearray()
        self.spills.append((path, offsets))
        self.buffered = 0
        metrics = task_metrics.current()
        metrics.shuffle_write_time += time.perf_counter_ns() - started
        metrics.note_spill(in_memory, offsets[-1])
        sizing.trim_heap()  # the buffers were malloc'd bytes: nothing for the collector

    def _encode_buckets(self) -> None:
        for p in range(self.n):
            if self.buckets[p]:
                self.buffers[p] += serializers.encode_batch(self.buckets[p], self.codec)
                self.records_written += len(self.buckets[p])
                self.buckets[p].clear()

    def commit(self, data_path: str, index_path: str) -> tuple[int, ...]:
        """Write the final data file and index atomically; return each slice's size.
        The task's shuffle write metrics count what went into the data file, and the
        time spent writing it (and any spill of the buffers before)."""
        self._encode_buckets()
        started = time.perf_counter_ns()
        sizes = []
        tmp_data = data_path + ".tmp"
        spill_files = [(open(path, "rb"), offs) for path, offs in self.spills]
        # a buffer no larger than the output: a 1 MiB one for a few KB is mapped, faulted in
        # and unmapped again by every map task of a wide shuffle
        held = sum(map(len, self.buffers)) + sum(offs[-1] for _, offs in self.spills)
        try:
            with open(tmp_data, "wb", buffering=min(1 << 20, max(8192, held))) as out:
                for p in range(self.n):
                    size = 0
                    for f, offs in spill_files:
                        length = offs[p + 1] - offs[p]
                        if length:
                            f.seek(offs[p])
                            _copy(f, out, length)
                            size += length
                    out.write(self.buffers[p])
                    size += len(self.buffers[p])
                    self.buffers[p] = bytearray()
                    sizes.append(size)
        finally:
            for f, _ in spill_files:
                f.close()
            for path, _ in self.spills:
                os.unlink(path)
            self.spills = []
        offsets = [0]
        for s in sizes:
            offsets.append(offsets[-1] + s)
        tmp_index = index_path + ".tmp"
        index = array("Q", offsets)
        if sys.byteorder != "little":
            index.byteswap()
        with open(tmp_index, "wb") as index_file:
            index_file.write(index.tobytes())
        os.replace(tmp_index, index_path)
        os.replace(tmp_data, data_path)
        metrics = task_metrics.current()
        metrics.shuffle_write_time += time.perf_counter_ns() - started
        metrics.shuffle_bytes_written += offsets[-1]
        metrics.shuffle_records_written += self.records_written
        return tuple(sizes)


def _copy(src: Any, dst: Any, length: int, chunk: int = 1 << 20) -> None:
    """Copy ``length`` bytes a chunk at a time (a spilled slice can be as large as the budget)."""
    while length > 0:
        data = src.read(min(chunk, length))
        if not data:
            raise OSError(f"spill file {src.name} is shorter than its offsets say")
        dst.write(data)
        length -= len(data)


def write_map_output(records: Iterator[Any], dep: ShuffleDependency, budget: int, local_dir: str,
                     paths: tuple[str, str], batch_size: int) -> tuple[int, ...]:
    """Run a shuffle map task's write side; returns the size of each reducer's slice."""
    make_writer = dep.serializer.writer if dep.serializer is not None else PartitionedWriter
    writer = make_writer(dep.num_partitions, dep.partitioner.partition_of(), budget, local_dir, batch_size)
    if dep.map_side_combine:
        assert dep.aggregator is not None
        combiner = _MapSideCombiner(dep, writer, budget // 2, local_dir, batch_size)
        combiner.run(records)
    else:
        writer.write_all(records)
    return writer.commit(*paths)


class _MapSideCombiner(ExternalAppendOnlyMap):
    """Combines before the shuffle; when full it hands its partial combiners to the writer
    rather than spilling sorted runs: the reducer merges combiners anyway, so a second
    partial combiner for a key is correct and costs only some extra bytes."""

    def __init__(self, dep: ShuffleDependency, writer: PartitionedWriter, budget: int,
                 spill_dir: str, batch_size: int) -> None:
        assert dep.aggregator is not None
        super().__init__(dep.aggregator, budget, spill_dir, batch_size)
        self.writer = writer

    def spill(self) -> None:
        self.writer.write_all(self.map.items())
        self.map = {}
        self.tracker.reset()
        sizing.release_memory()

    def run(self, records: Iterable[tuple[Any, Any]]) -> None:
        self.insert_values(records)
        self.writer.write_all(self.map.items())
        self.map = {}


def read_index(index_path: str, reduce_index: int) -> tuple[int, int]:
    """``(file position, bytes)`` of reducer ``reduce_index``'s whole slice."""
    return _slice_position(index_path, reduce_index, 0, None)


def _slice_position(index_path: str, reduce_index: int, offset: int, length: int | None) -> tuple[int, int]:
    check_range(reduce_index, offset, length)
    return slice_range(_pread(index_path, 16, reduce_index * 8), index_path, reduce_index, offset, length)


def _pread(path: str, length: int, offset: int) -> bytes:
    """``length`` bytes at ``offset`` of ``path``, with no file object (cheaper than one
    for the two small reads of a range)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return pread_exactly(fd, length, offset)
    finally:
        os.close(fd)


def read_local_block(data_path: str, index_path: str, reduce_index: int, offset: int = 0,
                     length: int | None = None) -> bytes:
    """Bytes ``offset``..``offset + length`` of reducer ``reduce_index``'s slice (to its end
    when ``length`` is None), opening the files for this one read (a block server keeps
    them open instead: ``ShuffleBlockResolver``)."""
    position, want = _slice_position(index_path, reduce_index, offset, length)
    data = _pread(data_path, want, position) if want else b""
    if len(data) != want:
        raise OSError(f"{data_path} is shorter than its index says")
    return data


def _local_batches(status: MapStatus, reduce_index: int) -> Iterator[list[Any]]:
    """One map output's slice for this reducer, a pickled batch at a time: the reader holds
    one batch and a file buffer, never the whole slice (a slice can be much larger than the
    task's memory budget when there are few reducers)."""
    start, remaining = read_index(status.index_path, reduce_index)
    loads = serializers.loads_batch
    with open(status.data_path, "rb", buffering=_READ_BUFFER) as f:
        f.seek(start)
        read = f.read
        while remaining > 0:
            head = read(4)
            n = int.from_bytes(head, "little")
            data = read(n)
            if len(head) < 4 or len(data) < n:
                raise OSError(f"{status.data_path} is shorter than its index says")
            remaining -= 4 + n
            yield loads(data)


# (status, shuffle id, reduce index, offset, length) -> those bytes of the map output's
# slice: a plain function serves as a transport too (tests, tools), called range by range
BlockFetcher = Callable[[MapStatus, int, int, int, int], bytes]
FETCH_CHUNK = REQUEST_SIZE  # the most bytes one request asks for (a larger slice goes in ranges)
_READ_BUFFER = 1 << 20


def read_shuffle(shuffle_id: int, reduce_index: int, statuses: Any, local_host: str,
                 remote: ShuffleClient | BlockFetcher | None, *, timeout: float = 120.0,
                 max_bytes_in_flight: int = MAX_BYTES_IN_FLIGHT) -> Iterator[Any]:
    """Every record map tasks wrote for reducer ``reduce_index``, map by map, streamed a
    batch at a time: local slices read from disk, remote ones through ``remote`` with
    requests in flight ahead of the reader (``block_fetcher``); with no ``remote`` every
    slice is read from disk. A map output that cannot be read is a fetch failure (its map
    stage must rerun). The batches are flattened in C: a generator resumed once per record
    would cost about as much as the reducer's own work on a small record. ``statuses`` is
    a list of MapStatus, or an executor's ``ShuffleStatuses``."""
    if remote is not None and not hasattr(remote, "wait"):
        fetch = remote
        locations = getattr(statuses, "locations", statuses)

        def one_range(req: FetchRequest, r: BlockRange) -> bytes:
            status = locations[r.map_index]
            assert status is not None
            return fetch(status, shuffle_id, reduce_index, r.offset, r.length)  # type: ignore[operator]
        remote = RangeClient(one_range)
    fetcher = ShuffleBlockFetcher(shuffle_id, reduce_index, statuses, local_host, remote,  # type: ignore[arg-type]
                                  timeout=timeout, max_bytes_in_flight=max_bytes_in_flight,
                                  request_size=FETCH_CHUNK, read_local=_local_batches)
    return chain.from_iterable(fetcher)
