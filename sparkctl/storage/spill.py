"""Aggregation and sorting in bounded memory: spill sorted runs to disk, merge them.

``ExternalAppendOnlyMap`` combines values by key in a dict; when its estimated size passes
the task's memory budget it sorts its entries by a process-independent hash of the key,
writes them to a spill file and starts over. Reading merges every run and the dict with
``heapq.merge`` on the hash, then combines equal keys within each hash group (so keys need
not be comparable, and hash collisions are harmless).

``ExternalSorter`` does the same for sortByKey: sorted runs on disk, merged lazily.
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
from sparkctl.rdd.dependencies import Aggregator, identity
from sparkctl.storage.sizing import SizeTracker, deep_size
from sparkctl.util.hashing import portable_hash

_MISSING = object()
_first = itemgetter(0)


class SpillFile:
    """A run of pickled batches on disk, deleted once read (or at task end)."""

    def __init__(self, directory: str, records: Iterable[Any], batch_size: int) -> None:
        fd, self.path = tempfile.mkstemp(prefix="spill-", dir=directory)
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            self.size = serializers.write_batches(f, records, batch_size)

    def __iter__(self) -> Iterator[Any]:
        try:
            with open(self.path, "rb", buffering=1 << 20) as f:
                yield from serializers.load_records(f)
        finally:
            self.delete()

    def delete(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class _Budgeted:
    def __init__(self, budget: int, spill_dir: str | None, batch_size: int) -> None:
        self.budget = max(budget, 1 << 20)
        self.spill_dir = spill_dir or tempfile.gettempdir()
        self.batch_size = batch_size
        self.spills: list[SpillFile] = []
        self.spilled_bytes = 0

    def _record_spill(self, spill: SpillFile) -> None:
        self.spills.append(spill)
        self.spilled_bytes += spill.size

    def cleanup(self) -> None:
        for s in self.spills:
            s.delete()


class ExternalAppendOnlyMap(_Budgeted):
    """combineByKey's hash map, spilling hash-sorted runs past ``budget`` bytes."""

    def __init__(self, aggregator: Aggregator, budget: int, spill_dir: str | None = None,
                 batch_size: int = 1000) -> None:
        super().__init__(budget, spill_dir, batch_size)
        self.agg = aggregator
        self.map: dict[Any, Any] = {}
        self.tracker = SizeTracker(lambda: deep_size(self.map))

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
            if tracker.updates >= tracker.next_sample and tracker.sample() > self.budget:
                self.spill()
            head = next(it, _MISSING)
            if head is _MISSING:
                return
            chunk_loop(self.map, (head,), create, merge)  # type: ignore[arg-type]
            tracker.updates += 1

    def spill(self) -> None:
        entries = sorted(((portable_hash(k), k, c) for k, c in self.map.items()), key=_first)
        self.map = {}
        self._record_spill(SpillFile(self.spill_dir, entries, self.batch_size))
        self.tracker.reset()

    def items(self) -> Iterator[tuple[Any, Any]]:
        """Every (key, combiner), each key once."""
        if not self.spills:
            return iter(self.map.items())
        return self._merged()

    def _merged(self) -> Iterator[tuple[Any, Any]]:
        in_memory = sorted(((portable_hash(k), k, c) for k, c in self.map.items()), key=_first)
        self.map = {}
        merge = self.agg.merge_combiners
        runs = [iter(s) for s in self.spills] + [iter(in_memory)]
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
        self.tracker = SizeTracker(self._measure)

    def _measure(self) -> int:
        buf = self.buffer
        if not buf:
            return 0
        tail = buf[-8:]
        return len(buf) * (8 + sum(deep_size(r) for r in tail) // len(tail))

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
            if tracker.updates >= tracker.next_sample and tracker.sample() > self.budget:
                self._spill()

    def _spill(self) -> None:
        self.buffer.sort(key=self.sort_key, reverse=self.reverse)
        self._record_spill(SpillFile(self.spill_dir, self.buffer, self.batch_size))
        self.buffer = []
        self.tracker.reset()

    def sorted_records(self) -> Iterator[Any]:
        self.buffer.sort(key=self.sort_key, reverse=self.reverse)
        if not self.spills:
            return iter(self.buffer)
        runs = [iter(s) for s in self.spills] + [iter(self.buffer)]
        return heapq.merge(*runs, key=self.sort_key, reverse=self.reverse)


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
