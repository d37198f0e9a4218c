"""Aggregation and sorting in bounded memory: spill sorted runs to disk, merge them.

``ExternalAppendOnlyMap`` combines values by key in a dict; when its estimated size passes
the task's memory budget it sorts its entries by a process-independent hash of the key,
writes them to a spill file and starts over. Reading merges every run and the dict with
``heapq.merge`` on the hash, then combines equal keys within each hash group (so keys need
not be comparable, and hash collisions are harmless).

``ExternalSorter`` does the same for sortByKey: sorted runs on disk, merged lazily.

Both spill when their size estimate passes the budget, or when the task slot's real
resident memory passes its mark (see ``sizing``), whichever comes first; after a spill the
old collection is dropped at once (no reference cycle keeps it) and free heap pages go
back to the kernel. At task end the collection is let go (a slot frees it once the task's
result is sent). A merge holds one batch and a small read buffer per run; when there
are too many runs for that to fit the budget, neighbouring runs are first merged into
longer ones, in as many passes as it takes.

With ``spark.shuffle.spill.compress`` each pickled batch of a run is compressed on its own
(see ``compression``); a run's size is then its bytes on disk (Spark's diskBytesSpilled),
while the memory a merge needs follows the pickled bytes.
"""
from __future__ import annotations

import heapq
import os
import tempfile
import operator
from itertools import groupby, islice
from operator import itemgetter
from typing import Any, Callable, Iterable, Iterator

from sparkctl import serializers
from sparkctl.executor import task_metrics
from sparkctl.rdd.dependencies import Aggregator, identity
from sparkctl.storage import compression, sizing
from sparkctl.storage.sizing import SizeTracker, deep_size
from sparkctl.util.hashing import portable_hash

_MISSING = object()
_first = itemgetter(0)


# Bytes a merge reads ahead from each run: enough for sequential reads, small enough
# that a merge of many runs fits the budget.
_MERGE_READ_BUFFER = 64 << 10
# A run's unpickled batch takes about this many times its pickled bytes.
_UNPICKLED_FACTOR = 4


class SpillFile:
    """A run of pickled batches on disk, deleted once read (or at task end)."""

    def __init__(self, directory: str, records: Iterable[Any], batch_size: int) -> None:
        fd, self.path = tempfile.mkstemp(prefix="spill-", dir=directory)
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            self.size, self.batches, self.pickled = _write_run(f, records, batch_size, compression.spill_codec())

    def memory_to_merge(self) -> int:
        """What reading this run in a merge holds: its read buffer and one unpickled batch."""
        return _MERGE_READ_BUFFER + _UNPICKLED_FACTOR * self.pickled // max(1, self.batches)

    def __iter__(self) -> Iterator[Any]:
        try:
            with open(self.path, "rb", buffering=_MERGE_READ_BUFFER) as f:
                yield from serializers.load_records(f)
        finally:
            self.delete()

    def delete(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def _write_run(out: Any, records: Iterable[Any], batch_size: int,
               codec: compression.Codec | None) -> tuple[int, int, int]:
    """Write records as pickled batches (of fewer records when they are large, see
    ``sizing.batch_limit``), each compressed by *codec* if any; return (bytes written,
    batches, pickled bytes)."""
    written = batches = pickled_bytes = 0
    batch: list[Any] = []
    append = batch.append
    limit = min(batch_size, sizing.FIRST_BATCH)
    dumps, protocol, frame = serializers.dumps, serializers.PROTOCOL, serializers.frame
    it = iter(records)
    while True:
        for rec in it:
            append(rec)
            if len(batch) >= limit:
                break
        if not batch:
            return written, batches, pickled_bytes
        pickled = dumps(batch, protocol)
        data = frame(pickled, codec)
        out.write(data)
        limit = sizing.batch_limit(batch_size, len(batch), len(pickled))
        written += len(data)
        pickled_bytes += len(pickled)
        batches += 1
        batch.clear()


class _Budgeted:
    def __init__(self, budget: int, spill_dir: str | None, batch_size: int) -> None:
        self.budget = max(budget, 1 << 20)
        self.spill_dir = spill_dir or tempfile.gettempdir()
        self.batch_size = batch_size
        self.spills: list[SpillFile] = []
        self.spilled_bytes = 0

    def _must_spill(self, estimate: int) -> bool:
        """At a sample point: past the budget by estimate, or the process past its real
        memory mark while this collection holds enough for a spill to help (a small one
        spilling would free nothing and only make many tiny runs)."""
        task_metrics.current().note_execution_memory(estimate)
        if estimate > self.budget:
            return True
        return estimate >= self.budget >> 3 and sizing.over_rss_limit()

    def _record_spill(self, spill: SpillFile, in_memory: int) -> None:
        """A run went to disk: ``in_memory`` is what the collection was estimated to hold
        (Spark's memoryBytesSpilled), the run's file size its diskBytesSpilled."""
        self.spills.append(spill)
        self.spilled_bytes += spill.size
        task_metrics.current().note_spill(in_memory, spill.size)

    def _runs_to_merge(self, key: Callable[[Any], Any], reverse: bool) -> list[SpillFile]:
        """The spilled runs, oldest first, after as many passes as it takes for a merge of
        all of them (a batch and a read buffer per run) to fit half the budget: each pass
        merges neighbouring runs, so equal keys keep their order."""
        runs = self.spills
        while len(runs) > 2 and sum(r.memory_to_merge() for r in runs) > self.budget // 2:
            fit = max(2, self.budget // 2 // max(r.memory_to_merge() for r in runs))
            merged: list[SpillFile] = []
            for i in range(0, len(runs), fit):
                group = runs[i:i + fit]
                merged.append(group[0] if len(group) == 1 else
                              SpillFile(self.spill_dir, heapq.merge(*group, key=key, reverse=reverse),
                                        self.batch_size))
            runs = self.spills = merged
        return list(runs)

    def _merge_room(self) -> int:
        """Budget left for the in-memory part once the runs' merge buffers are counted."""
        return self.budget - sum(r.memory_to_merge() for r in self.spills)

    def cleanup(self) -> None:
        """At task end: delete the runs, let go of the collection."""
        for s in self.spills:
            s.delete()
        self._drop()

    def _drop(self) -> None:
        raise NotImplementedError


class ExternalAppendOnlyMap(_Budgeted):
    """combineByKey's hash map, spilling hash-sorted runs past ``budget`` bytes."""

    def __init__(self, aggregator: Aggregator, budget: int, spill_dir: str | None = None,
                 batch_size: int = 1000) -> None:
        super().__init__(budget, spill_dir, batch_size)
        self.agg = aggregator
        self.map: dict[Any, Any] = {}
        self.tracker = SizeTracker()

    def insert_values(self, records: Iterable[tuple[Any, Any]]) -> None:
        """Add raw (key, value) records: createCombiner / mergeValue."""
        self._insert(records, self.agg.create_combiner, self.agg.merge_value)

    def insert_combiners(self, records: Iterable[tuple[Any, Any]]) -> None:
        """Add (key, combiner) records from map-side combines: mergeCombiners."""
        self._insert(records, None, self.agg.merge_combiners)

    def _insert(self, records: Iterable[tuple[Any, Any]], create: Callable[[Any], Any] | None,
                merge: Callable[[Any, Any], Any]) -> None:
        # The loop runs per record and is most of a shuffle's cost: take records in chunks
        # between two size samples (no counter per record), and specialise the common
        # cases (value is its own combiner; merge is `+`) so they call no Python function.
        if create is identity:
            create = None
        chunk_loop = (_merge_add if merge is operator.add else _merge_with) if create is None else _create_merge
        tracker = self.tracker
        it = iter(records)
        while True:
            n = max(1, tracker.next_sample - tracker.updates)
            chunk_loop(self.map, islice(it, n), create, merge)
            tracker.updates += n
            if tracker.updates >= tracker.next_sample and self._must_spill(tracker.sample(deep_size(self.map))):
                self.spill()
            head = next(it, _MISSING)
            if head is _MISSING:
                return
            chunk_loop(self.map, (head,), create, merge)  # type: ignore[arg-type]
            tracker.updates += 1

    def spill(self) -> None:
        entries = _drain_by_hash(self.map)
        self.map = {}
        self._record_spill(SpillFile(self.spill_dir, entries, self.batch_size), self.tracker.estimate())
        self.tracker.reset()
        sizing.release_memory()

    def _drop(self) -> None:
        sizing.retire(self.map)
        self.map = {}

    def items(self) -> Iterator[tuple[Any, Any]]:
        """Every (key, combiner), each key once."""
        if not self.spills:
            return iter(self.map.items())
        return self._merged()

    def _merged(self) -> Iterator[tuple[Any, Any]]:
        if self.map and deep_size(self.map) > self._merge_room():
            self.spill()
        in_memory = _drain_by_hash(self.map)
        self.map = {}
        merge = self.agg.merge_combiners
        runs = [iter(s) for s in self._runs_to_merge(_first, False)] + [in_memory]
        for _, group in groupby(heapq.merge(*runs, key=_first), key=_first):
            first = next(group)
            rest = list(group)
            if not rest:
                yield first[1], first[2]
                continue
            combined: dict[Any, Any] = {first[1]: first[2]}
            for _, k, c in rest:
                if k in combined:
                    combined[k] = merge(combined[k], c)
                else:
                    combined[k] = c
            yield from combined.items()


class ExternalSorter(_Budgeted):
    """Sorts (key, value) records by ``keyfunc(key)``, spilling sorted runs past budget."""

    def __init__(self, keyfunc: Callable[[Any], Any], ascending: bool, budget: int,
                 spill_dir: str | None = None, batch_size: int = 1000) -> None:
        super().__init__(budget, spill_dir, batch_size)
        self.sort_key = _compose_key(keyfunc)
        self.reverse = not ascending
        self.buffer: list[Any] = []
        self.ordered: list[Any] = []  # the buffer in sort order, once read
        self.tracker = SizeTracker()

    def _measure(self) -> int:
        buf = self.buffer
        if not buf:
            return 0
        tail = buf[-8:]
        # a reference in the buffer and one in its sorted copy, and the record itself
        return len(buf) * (16 + sum(deep_size(r) for r in tail) // len(tail))

    def insert_all(self, records: Iterable[Any]) -> None:
        tracker = self.tracker
        it = iter(records)
        while True:
            before = len(self.buffer)
            self.buffer.extend(islice(it, max(1, tracker.next_sample - tracker.updates)))  # C speed
            added = len(self.buffer) - before
            if not added:
                return
            tracker.updates += added
            if tracker.updates >= tracker.next_sample and self._must_spill(tracker.sample(self._measure())):
                self._spill()

    def _in_order(self) -> list[Any]:
        """The buffer sorted, as a new list. The buffer itself stays in arrival order, which
        is the records' order in memory: freed in that order after the sorted list, a
        million records cost a few tens of milliseconds; freed in sort order, a cache miss
        each, four times as much."""
        return sorted(self.buffer, key=self.sort_key, reverse=self.reverse)

    def _spill(self) -> None:
        ordered = self._in_order()
        self._record_spill(SpillFile(self.spill_dir, ordered, self.batch_size), self.tracker.estimate())
        del ordered
        self.buffer = []
        self.tracker.reset()
        sizing.release_memory()

    def _drop(self) -> None:
        sizing.retire(self.ordered)  # first: dropping it only lowers reference counts
        sizing.retire(self.buffer)
        self.ordered = self.buffer = []

    def sorted_records(self) -> Iterator[Any]:
        if self.spills and self.buffer and self._measure() > self._merge_room():
            self._spill()
        self.ordered = self._in_order()
        if not self.spills:
            return iter(self.ordered)
        runs = [iter(s) for s in self._runs_to_merge(self.sort_key, self.reverse)]
        return heapq.merge(*runs, iter(self.ordered), key=self.sort_key, reverse=self.reverse)


def _drain_by_hash(d: dict[Any, Any]) -> Iterator[tuple[int, Any, Any]]:
    """(hash, key, combiner) for every entry of ``d`` in hash order, emptying ``d`` as it
    goes. Only the keys are sorted (a reference each, the hashes recomputed after), so a
    spill does not need a second copy of the map in memory."""
    keys = sorted(d, key=portable_hash)
    pop = d.pop
    for k in keys:
        yield portable_hash(k), k, pop(k)


def _compose_key(keyfunc: Callable[[Any], Any]) -> Callable[[Any], Any]:
    if keyfunc is identity:
        return _first  # one C call per record instead of two Python calls

    def sort_key(kv: Any) -> Any:
        return keyfunc(kv[0])
    return sort_key


def _merge_add(d: dict[Any, Any], records: Iterable[tuple[Any, Any]], create: Any, merge: Any) -> None:
    get = d.get
    missing = _MISSING
    for k, v in records:
        c = get(k, missing)
        d[k] = v if c is missing else c + v


def _merge_with(d: dict[Any, Any], records: Iterable[tuple[Any, Any]], create: Any,
                merge: Callable[[Any, Any], Any]) -> None:
    get = d.get
    missing = _MISSING
    for k, v in records:
        c = get(k, missing)
        d[k] = v if c is missing else merge(c, v)


def _create_merge(d: dict[Any, Any], records: Iterable[tuple[Any, Any]], create: Any,
                  merge: Callable[[Any, Any], Any]) -> None:
    get = d.get
    missing = _MISSING
    for k, v in records:
        c = get(k, missing)
        d[k] = create(v) if c is missing else merge(c, v)
