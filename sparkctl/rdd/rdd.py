"""RDD: PySpark's resilient distributed dataset API, on sparkctl's scheduler.

An RDD is lineage only: a list of partitions, dependencies on parents, and
``compute(split, task_context)``. Transformations build new RDDs; actions hand the
final RDD and a per-partition function to ``SparkContext.run_job``, which the DAG scheduler
cuts into stages. Key-value operations live in :mod:`sparkctl.rdd.pair` (mixed in here).
"""
from __future__ import annotations

import heapq
import itertools
import math
import operator
import os
import random
import sys
from collections import deque
from functools import reduce as _reduce
from itertools import chain
from types import GenericAlias
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from sparkctl.status import call_site
from sparkctl.rdd.dependencies import Dependency, Partition, ShuffleDependency
from sparkctl.rdd.pair import PairRDDFunctions
from sparkctl.rdd.sampling import (BernoulliOrPoissonSampler, RangeSampler,
                                   fraction_for_sample_size, new_seed)
from sparkctl.rdd.statcounter import StatCounter
from sparkctl.errors import UserStopIterationError
from sparkctl.rdd.stopiteration import consumes_whole_input
from sparkctl.storagelevel import StorageLevel

if TYPE_CHECKING:
    from sparkctl.context import SparkContext
    from sparkctl.rdd.barrier import RDDBarrier
    from sparkctl.taskcontext import TaskContext


_EXACT_LENGTH: tuple[type, ...] = (list, tuple, range, type(iter([])), type(iter(())), type(iter(range(0))))


def _count_iter(it: Iterable[Any]) -> int:
    if type(it) in _EXACT_LENGTH:  # these know their length: do not walk the records
        return operator.length_hint(it)
    last = deque(enumerate(it, 1), maxlen=1)  # counts in C
    return last[0][0] if last else 0


class RDD(PairRDDFunctions):
    # ``RDD[Tuple[int, int]]`` in a type hint, as PySpark's generic RDD allows
    def __class_getitem__(cls, item: Any) -> GenericAlias:  # a classmethod, implicitly
        return GenericAlias(cls, item)

    def __init__(self, ctx: "SparkContext", deps: list[Dependency]) -> None:
        self.ctx = ctx
        self._deps = deps
        self._id = ctx._new_rdd_id()
        self._name: str | None = None
        self.partitioner: Any = None
        self._partitions: list[Partition] | None = None
        self._storage_level = StorageLevel.NONE
        self._checkpoint_requested: str | None = None  # "reliable" or "local"
        self._checkpoint_rdd: RDD | None = None
        # "map at app.py:12": the user's call that made this RDD (the UI's DAG, stage names)
        self._creation_site = call_site()

    # ------------------------------------------------------------------ lineage
    def _get_partitions(self) -> list[Partition]:
        raise NotImplementedError

    def compute(self, split: Partition, tc: "TaskContext") -> Iterator[Any]:
        raise NotImplementedError

    @property
    def partitions(self) -> list[Partition]:
        if self._partitions is None:
            self._partitions = self._get_partitions()
        return self._partitions

    @property
    def dependencies(self) -> list[Dependency]:
        if self._checkpoint_rdd is not None:
            return []
        return self._deps

    def iterator(self, split: Partition, tc: "TaskContext") -> Iterator[Any]:
        """The records of ``split``: from the checkpoint, the cache, or computed."""
        if self._checkpoint_rdd is not None:
            return self._checkpoint_rdd.compute(split, tc)
        if self._storage_level.useMemory or self._storage_level.useDisk:
            return tc.env.get_or_compute(self, split, tc)
        return self.compute(split, tc)

    def __getstate__(self) -> dict[str, Any]:
        # What a task needs: the lineage up to shuffle boundaries, never the driver's context
        # or the partition lists (each task carries its own partition).
        if self._checkpoint_rdd is not None:
            return {"_id": self._id, "_checkpoint_rdd": self._checkpoint_rdd, "partitioner": self.partitioner,
                    "_storage_level": StorageLevel.NONE, "_name": self._name}
        state = dict(self.__dict__)
        state.pop("_creation_site", None)
        state["ctx"] = None
        state["_partitions"] = None
        state["_deps"] = []
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_storage_level", StorageLevel.NONE)

    @property
    def context(self) -> "SparkContext":
        return self.ctx

    def id(self) -> int:
        return self._id

    def name(self) -> str | None:
        return self._name

    def setName(self, name: str) -> "RDD":
        self._name = name
        return self

    def getNumPartitions(self) -> int:
        return len(self.partitions)

    def __repr__(self) -> str:
        return f"{self._name or type(self).__name__}[{self._id}]"

    def toDebugString(self) -> bytes:
        """The lineage, one RDD a line; ``+-`` marks a shuffle (a stage boundary)."""
        lines: list[str] = []

        def walk(rdd: RDD, indent: str, marker: str) -> None:
            level = str(rdd._storage_level) if rdd.is_cached else ""
            lines.append(f"{indent}{marker}({rdd.getNumPartitions()}) {rdd!r} [{level}]")
            for dep in rdd.dependencies:
                if isinstance(dep, ShuffleDependency):
                    walk(dep.rdd, indent + "   ", "+-")
                else:
                    walk(dep.rdd, indent, " |  ")

        walk(self, "", "")
        return "\n".join(lines).encode("utf-8")

    # ------------------------------------------------------------------ persistence
    @property
    def is_cached(self) -> bool:
        return self._storage_level != StorageLevel.NONE

    def cache(self) -> "RDD":
        return self.persist(StorageLevel.MEMORY_ONLY)

    def persist(self, storageLevel: StorageLevel = StorageLevel.MEMORY_ONLY) -> "RDD":
        if self.is_cached and storageLevel != self._storage_level:
            raise ValueError("Cannot change storage level of an RDD after it was already assigned a level")
        self._storage_level = storageLevel
        self.ctx._persistent_rdds[self._id] = self
        return self

    def unpersist(self, blocking: bool = False) -> "RDD":
        self._storage_level = StorageLevel.NONE
        self.ctx._persistent_rdds.pop(self._id, None)
        self.ctx._remove_rdd_blocks(self._id)
        return self

    def getStorageLevel(self) -> StorageLevel:
        return self._storage_level

    def checkpoint(self) -> None:
        if self.ctx._checkpoint_dir is None:
            raise RuntimeError("Checkpoint directory has not been set in the SparkContext")
        self._checkpoint_requested = "reliable"

    def localCheckpoint(self) -> None:
        if not self.is_cached:
            self.persist(StorageLevel.MEMORY_AND_DISK)
        self._checkpoint_requested = "local"

    def isCheckpointed(self) -> bool:
        return self._checkpoint_rdd is not None or (self._checkpoint_requested == "local" and self._local_done)

    @property
    def is_checkpointed(self) -> bool:
        """Whether this RDD has been checkpointed (PySpark's property; also ``isCheckpointed()``)."""
        return self.isCheckpointed()

    def isLocallyCheckpointed(self) -> bool:
        return self._checkpoint_requested == "local"

    def getCheckpointFile(self) -> str | None:
        """The checkpoint's directory as a ``file:`` URI, as PySpark gives it; None until
        a reliable checkpoint was written."""
        directory = getattr(self._checkpoint_rdd, "directory", None)
        return None if directory is None else "file:" + directory

    _local_done = False

    # ------------------------------------------------------------------ narrow transformations
    def mapPartitionsWithIndex(self, f: Callable[[int, Iterator[Any]], Iterable[Any]],
                               preservesPartitioning: bool = False) -> "RDD":
        from sparkctl.rdd.narrow import MapPartitionsRDD
        return MapPartitionsRDD(self, f, preservesPartitioning)  # type: ignore[arg-type]

    def mapPartitions(self, f: Callable[[Iterator[Any]], Iterable[Any]], preservesPartitioning: bool = False) -> "RDD":
        return self.mapPartitionsWithIndex(_ignore_index(f), preservesPartitioning)

    def barrier(self) -> "RDDBarrier":
        """Mark the next mapPartitions as a barrier stage: its tasks start together and
        may sync with ``BarrierTaskContext.get().barrier()`` (see sparkctl.rdd.barrier)."""
        from sparkctl.rdd.barrier import RDDBarrier
        return RDDBarrier(self)

    def _is_barrier(self) -> bool:
        """Whether this RDD is computed in a barrier stage (PySpark's private check)."""
        from sparkctl.rdd.barrier import is_barrier
        return is_barrier(self)

    def mapPartitionsWithSplit(self, f: Callable[[int, Iterator[Any]], Iterable[Any]],
                               preservesPartitioning: bool = False) -> "RDD":
        return self.mapPartitionsWithIndex(f, preservesPartitioning)

    def map(self, f: Callable[[Any], Any], preservesPartitioning: bool = False) -> "RDD":
        return self.mapPartitionsWithIndex(_map_step(f), preservesPartitioning)

    def flatMap(self, f: Callable[[Any], Iterable[Any]], preservesPartitioning: bool = False) -> "RDD":
        return self.mapPartitionsWithIndex(_flat_map_step(f), preservesPartitioning)

    def filter(self, f: Callable[[Any], bool]) -> "RDD":
        return self.mapPartitionsWithIndex(_filter_step(f), True)

    def glom(self) -> "RDD":
        return self.mapPartitionsWithIndex(_glom_step, False)

    def keyBy(self, f: Callable[[Any], Any]) -> "RDD":
        return self.map(_key_by(f))

    def distinct(self, numPartitions: int | None = None) -> "RDD":
        return (self.map(_with_none).reduceByKey(_keep_first, numPartitions).map(operator.itemgetter(0)))

    def sample(self, withReplacement: bool, fraction: float, seed: int | None = None) -> "RDD":
        if fraction < 0.0:
            raise ValueError(f"Fraction must be nonnegative, got {fraction}")
        sampler = BernoulliOrPoissonSampler(withReplacement, fraction, new_seed() if seed is None else seed)
        return self.mapPartitionsWithIndex(sampler, True)

    def sampleByKey(self, withReplacement: bool, fractions: dict[Any, float], seed: int | None = None) -> "RDD":
        """A sample of an RDD of pairs, each key with its own fraction (stratified sampling)."""
        from sparkctl.rdd.sampling import StratifiedSampler
        for fraction in fractions.values():
            if fraction < 0.0:
                raise ValueError(f"Negative fraction value: {fraction}")
        sampler = StratifiedSampler(withReplacement, dict(fractions), new_seed() if seed is None else seed)
        return self.mapPartitionsWithIndex(sampler, True)

    def randomSplit(self, weights: list[float], seed: int | None = None) -> list["RDD"]:
        if not all(w >= 0 for w in weights):
            raise ValueError("Weights must be nonnegative")
        total = float(sum(weights))
        if total <= 0:
            raise ValueError("Sum of weights must be positive")
        cumulative = [0.0]
        for w in weights:
            cumulative.append(cumulative[-1] + w / total)
        if seed is None:
            seed = random.randint(0, 2 ** 32 - 1)
        return [self.mapPartitionsWithIndex(RangeSampler(lo, hi, seed), True)
                for lo, hi in zip(cumulative, cumulative[1:])]

    def union(self, other: "RDD") -> "RDD":
        from sparkctl.rdd.narrow import PartitionerAwareUnionRDD, UnionRDD
        if (self.partitioner is not None and self.partitioner == other.partitioner
                and self.getNumPartitions() == other.getNumPartitions()):
            return PartitionerAwareUnionRDD(self.ctx, [self, other])
        return UnionRDD(self.ctx, [self, other])

    def __add__(self, other: "RDD") -> "RDD":
        if not isinstance(other, RDD):
            raise TypeError
        return self.union(other)

    def intersection(self, other: "RDD") -> "RDD":
        return (self.map(_with_none).cogroup(other.map(_with_none))
                .filter(_both_sides_nonempty).keys())

    def subtract(self, other: "RDD", numPartitions: int | None = None) -> "RDD":
        return self.map(_with_true).subtractByKey(other.map(_with_true), numPartitions).keys()

    def cartesian(self, other: "RDD") -> "RDD":
        from sparkctl.rdd.narrow import CartesianRDD
        return CartesianRDD(self, other)

    def groupBy(self, f: Callable[[Any], Any], numPartitions: int | None = None,
                partitionFunc: Callable[[Any], int] | None = None) -> "RDD":
        rdd = self.map(_key_by(f))
        return rdd.groupByKey(numPartitions, partitionFunc) if partitionFunc else rdd.groupByKey(numPartitions)

    def pipe(self, command: str, env: dict[str, str] | None = None, checkCode: bool = False) -> "RDD":
        return self.mapPartitions(_PipeStep(command, env or {}, checkCode))

    def repartition(self, numPartitions: int) -> "RDD":
        return self.coalesce(numPartitions, shuffle=True)

    def coalesce(self, numPartitions: int, shuffle: bool = False) -> "RDD":
        if numPartitions <= 0:
            raise ValueError(f"Number of partitions ({numPartitions}) must be positive.")
        if shuffle:
            from sparkctl.rdd.dependencies import Partitioner
            from sparkctl.rdd.shuffled import ShuffledRDD
            keyed = self.mapPartitionsWithIndex(_RoundRobin(numPartitions))
            return ShuffledRDD(keyed, Partitioner(numPartitions, _identity_int)).values()
        from sparkctl.rdd.narrow import CoalescedRDD
        return CoalescedRDD(self, numPartitions)

    def zip(self, other: "RDD") -> "RDD":
        from sparkctl.rdd.narrow import ZippedRDD
        return ZippedRDD(self, other)

    def zipWithIndex(self) -> "RDD":
        starts = [0]
        n = self.getNumPartitions()
        if n > 1:
            counts = self.ctx.run_job(self, _count_iter, list(range(n - 1)))
            for c in counts:
                starts.append(starts[-1] + c)
        return self.mapPartitionsWithIndex(_IndexFrom(starts))

    def zipWithUniqueId(self) -> "RDD":
        return self.mapPartitionsWithIndex(_UniqueIds(self.getNumPartitions()))

    # ------------------------------------------------------------------ actions
    def collect(self) -> list[Any]:
        return list(chain.from_iterable(self.ctx.run_job(self, list)))

    def toLocalIterator(self, prefetchPartitions: bool = False) -> Iterator[Any]:
        for i in range(self.getNumPartitions()):
            yield from self.ctx.run_job(self, list, [i])[0]

    def count(self) -> int:
        return sum(self.ctx.run_job(self, _count_iter))

    def countApprox(self, timeout: int, confidence: float = 0.95) -> int:
        return int(self.count())

    def sumApprox(self, timeout: int, confidence: float = 0.95) -> float:
        return float(self.sum())

    def meanApprox(self, timeout: int, confidence: float = 0.95) -> float:
        return float(self.mean())

    def countApproxDistinct(self, relativeSD: float = 0.05) -> int:
        """The number of distinct records (counted exactly here, so within any accuracy asked);
        a *relativeSD* below 0.000017 is refused as PySpark refuses it (HyperLogLog's limit)."""
        if relativeSD < 0.000017:
            raise ValueError("relativeSD should be greater than 0.000017")
        return self.distinct().count()

    def foreach(self, f: Callable[[Any], None]) -> None:
        self.ctx.run_job(self, _ForeachStep(f))

    def foreachPartition(self, f: Callable[[Iterator[Any]], None]) -> None:
        self.ctx.run_job(self, _ForeachPartitionStep(f))

    def reduce(self, f: Callable[[Any, Any], Any]) -> Any:
        parts = [r for ok, r in self.ctx.run_job(self, _ReduceStep(f)) if ok]
        if not parts:
            raise ValueError("Can not reduce() empty RDD")
        return _on_driver(f, parts)

    def treeReduce(self, f: Callable[[Any, Any], Any], depth: int = 2) -> Any:
        if depth < 1:
            raise ValueError(f"Depth cannot be smaller than 1 but got {depth}.")
        zero = (None, True)

        def op(x: tuple[Any, bool], y: tuple[Any, bool]) -> tuple[Any, bool]:
            if x[1]:
                return y
            if y[1]:
                return x
            return f(x[0], y[0]), False

        value, empty = self.map(_pair_with_false).treeAggregate(zero, op, op, depth)
        if empty:
            raise ValueError("Cannot reduce empty RDD.")
        return value

    def fold(self, zeroValue: Any, op: Callable[[Any, Any], Any]) -> Any:
        results = self.ctx.run_job(self, _FoldStep(zeroValue, op))
        return _on_driver(op, results, zeroValue)

    def aggregate(self, zeroValue: Any, seqOp: Callable[[Any, Any], Any], combOp: Callable[[Any, Any], Any]) -> Any:
        results = self.ctx.run_job(self, _AggregateStep(zeroValue, seqOp))
        return _on_driver(combOp, results, zeroValue)

    def treeAggregate(self, zeroValue: Any, seqOp: Callable[[Any, Any], Any], combOp: Callable[[Any, Any], Any],
                      depth: int = 2) -> Any:
        if depth < 1:
            raise ValueError(f"Depth cannot be smaller than 1 but got {depth}.")
        if self.getNumPartitions() == 0:
            return zeroValue
        # zeroValue enters once per partition (as PySpark's); the partial results are then
        # combined with combOp alone, in rounds of `scale`, each round a small shuffle
        partial = self.mapPartitions(_AggregateStep(zeroValue, seqOp, as_list=True))
        num: float = partial.getNumPartitions()
        scale = max(math.ceil(num ** (1.0 / depth)), 2)
        while num > scale + num / scale:
            num /= scale
            cur = int(num)
            partial = (partial.mapPartitionsWithIndex(_TagByIndex(cur))
                       .reduceByKey(combOp, cur).values())
        return partial.reduce(combOp)

    def sum(self) -> Any:
        return self.mapPartitions(_sum_step).fold(0, operator.add)

    def stats(self) -> StatCounter:
        return self.mapPartitions(_stat_step).reduce(_merge_stats)

    def mean(self) -> float:
        return self.stats().mean()

    def variance(self) -> float:
        return self.stats().variance()

    def stdev(self) -> float:
        return self.stats().stdev()

    def sampleStdev(self) -> float:
        return self.stats().sampleStdev()

    def sampleVariance(self) -> float:
        return self.stats().sampleVariance()

    def max(self, key: Callable[[Any], Any] | None = None) -> Any:
        return self.reduce(max if key is None else _MaxBy(key))

    def min(self, key: Callable[[Any], Any] | None = None) -> Any:
        return self.reduce(min if key is None else _MinBy(key))

    def histogram(self, buckets: int | list[float]) -> tuple[list[Any], list[int]]:
        from sparkctl.rdd.histogram import histogram
        return histogram(self, buckets)

    def countByValue(self) -> dict[Any, int]:
        from collections import defaultdict
        parts = self.ctx.run_job(self, _count_values)
        total: dict[Any, int] = defaultdict(int)
        for part in parts:
            for k, v in part.items():
                total[k] += v
        return total

    def first(self) -> Any:
        rs = self.take(1)
        if rs:
            return rs[0]
        raise ValueError("RDD is empty")

    def isEmpty(self) -> bool:
        return self.getNumPartitions() == 0 or len(self.take(1)) == 0

    def take(self, num: int) -> list[Any]:
        """The first ``num`` records, scanning one partition first, then more each round."""
        items: list[Any] = []
        total = self.getNumPartitions()
        scanned = 0
        while len(items) < num and scanned < total:
            to_try = 1
            if scanned > 0:
                if not items:
                    to_try = scanned * 4
                else:
                    to_try = max(int(1.5 * num * scanned / len(items)) - scanned, 1)
                    to_try = min(to_try, scanned * 4)
            left = num - len(items)
            parts = list(range(scanned, min(scanned + to_try, total)))
            for res in self.ctx.run_job(self, _TakeStep(left), parts):
                items.extend(res)
            scanned += to_try
        return items[:num]

    def takeOrdered(self, num: int, key: Callable[[Any], Any] | None = None) -> list[Any]:
        if num < 0:
            raise ValueError("top N cannot be negative.")
        if num == 0 or self.getNumPartitions() == 0:
            return []
        parts = self.ctx.run_job(self, _NSmallest(num, key))
        return heapq.nsmallest(num, chain.from_iterable(parts), key=key)

    def top(self, num: int, key: Callable[[Any], Any] | None = None) -> list[Any]:
        if num < 0:
            raise ValueError("top N cannot be negative.")
        if num == 0 or self.getNumPartitions() == 0:
            return []
        parts = self.ctx.run_job(self, _NLargest(num, key))
        return heapq.nlargest(num, chain.from_iterable(parts), key=key)

    def takeSample(self, withReplacement: bool, num: int, seed: int | None = None) -> list[Any]:
        max_sample = sys.maxsize - int(10.0 * (sys.maxsize ** 0.5))
        if num < 0:
            raise ValueError("Sample size cannot be negative.")
        if num > max_sample:  # before any job, as PySpark checks
            raise ValueError(f"Sample size cannot be greater than {max_sample}.")
        if num == 0 or self.getNumPartitions() == 0:
            return []
        initial = self.count()
        if initial == 0:
            return []
        rand = random.Random(seed)
        if not withReplacement and num >= initial:
            samples = self.collect()
            rand.shuffle(samples)
            return samples
        fraction = fraction_for_sample_size(num, initial, withReplacement)
        samples = self.sample(withReplacement, fraction, seed).collect()
        while len(samples) < num:  # rare: the fraction was chosen to make this unlikely
            seed = rand.randint(0, sys.maxsize)
            samples = self.sample(withReplacement, fraction, seed).collect()
        rand.shuffle(samples)
        return samples[0:num]

    # ------------------------------------------------------------------ output
    def saveAsTextFile(self, path: str, compressionCodecClass: str | None = None) -> None:
        from sparkctl.rdd.output import save_as_text_file
        save_as_text_file(self, path, compressionCodecClass)

    def saveAsPickleFile(self, path: str, batchSize: int = 10) -> None:
        from sparkctl.rdd.output import save_as_pickle_file
        save_as_pickle_file(self, path, batchSize)


_NO_ZERO = object()


def _on_driver(f: Callable[[Any, Any], Any], parts: list[Any], zero: Any = _NO_ZERO) -> Any:
    """The partitions' results combined on the driver with the user's function: a
    StopIteration from it is an error here too, as in the tasks (and in PySpark)."""
    try:
        return _reduce(f, parts) if zero is _NO_ZERO else _reduce(f, parts, zero)
    except StopIteration as e:
        raise UserStopIterationError(repr(e)) from e


# Each pipeline step is built by a function (never a lambda in a loop) so every step
# binds its own `f`: a generator built in a loop would bind late and run the last one.

def _ignore_index(f: Callable[[Iterator[Any]], Iterable[Any]]) -> Callable[[int, Iterator[Any]], Iterable[Any]]:
    def step(_: int, it: Iterator[Any]) -> Iterable[Any]:
        return f(it)
    return step


# map, flatMap and filter read their whole input: marked so, a chain of them is guarded
# against a user function's StopIteration (sparkctl.rdd.stopiteration)

def _map_step(f: Callable[[Any], Any]) -> Callable[[int, Iterator[Any]], Iterator[Any]]:
    def step(_: int, it: Iterator[Any]) -> Iterator[Any]:
        return map(f, it)
    return consumes_whole_input(step)


def _flat_map_step(f: Callable[[Any], Iterable[Any]]) -> Callable[[int, Iterator[Any]], Iterator[Any]]:
    def step(_: int, it: Iterator[Any]) -> Iterator[Any]:
        return chain.from_iterable(map(f, it))
    return consumes_whole_input(step)


def _filter_step(f: Callable[[Any], bool]) -> Callable[[int, Iterator[Any]], Iterator[Any]]:
    def step(_: int, it: Iterator[Any]) -> Iterator[Any]:
        return filter(f, it)
    return consumes_whole_input(step)


@consumes_whole_input
def _glom_step(_: int, it: Iterator[Any]) -> Iterator[list[Any]]:
    yield list(it)


def _key_by(f: Callable[[Any], Any]) -> Callable[[Any], tuple[Any, Any]]:
    def key_by(x: Any) -> tuple[Any, Any]:
        return (f(x), x)
    return key_by


def _with_none(x: Any) -> tuple[Any, None]:
    return (x, None)


def _with_true(x: Any) -> tuple[Any, bool]:
    return (x, True)


def _keep_first(x: Any, _: Any) -> Any:
    return x


def _pair_with_false(x: Any) -> tuple[Any, bool]:
    return (x, False)


def _both_sides_nonempty(kv: tuple[Any, Any]) -> bool:
    return all(kv[1])


def _identity_int(x: int) -> int:
    return x


class _RoundRobin:
    """repartition: spread each partition's records over the targets, starting at a
    position that depends on the partition so small partitions do not all pile up on 0."""

    _consumes_whole_input = True  # see sparkctl.rdd.stopiteration

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, index: int, it: Iterator[Any]) -> Iterator[tuple[int, Any]]:
        n = self.n
        start = random.Random(index).randrange(n)
        return ((i % n, x) for i, x in enumerate(it, start))


class _IndexFrom:
    _consumes_whole_input = True  # see sparkctl.rdd.stopiteration

    def __init__(self, starts: list[int]) -> None:
        self.starts = starts

    def __call__(self, index: int, it: Iterator[Any]) -> Iterator[tuple[Any, int]]:
        return zip(it, itertools.count(self.starts[index]))


class _UniqueIds:
    _consumes_whole_input = True  # see sparkctl.rdd.stopiteration

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, index: int, it: Iterator[Any]) -> Iterator[tuple[Any, int]]:
        return zip(it, itertools.count(index, self.n))


class _TagByIndex:
    _consumes_whole_input = True  # see sparkctl.rdd.stopiteration

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, index: int, it: Iterator[Any]) -> Iterator[tuple[int, Any]]:
        key = index % self.n
        return ((key, x) for x in it)


class _ForeachStep:
    def __init__(self, f: Callable[[Any], None]) -> None:
        self.f = f

    def __call__(self, it: Iterator[Any]) -> None:
        f = self.f
        for x in it:
            f(x)


class _ForeachPartitionStep:
    def __init__(self, f: Callable[[Iterator[Any]], Any]) -> None:
        self.f = f

    def __call__(self, it: Iterator[Any]) -> None:
        r = self.f(it)
        if r is not None and hasattr(r, "__iter__"):
            for _ in r:  # a generator function does its work only when consumed
                pass


class _ReduceStep:
    def __init__(self, f: Callable[[Any, Any], Any]) -> None:
        self.f = f

    def __call__(self, it: Iterator[Any]) -> tuple[bool, Any]:
        it = iter(it)
        sentinel = object()
        first = next(it, sentinel)
        if first is sentinel:
            return (False, None)
        return (True, _reduce(self.f, it, first))


class _FoldStep:
    def __init__(self, zero: Any, op: Callable[[Any, Any], Any]) -> None:
        self.zero, self.op = zero, op

    def __call__(self, it: Iterator[Any]) -> Any:
        import copy
        return _reduce(self.op, it, copy.deepcopy(self.zero))


class _AggregateStep:
    def __init__(self, zero: Any, seq: Callable[[Any, Any], Any], as_list: bool = False) -> None:
        self.zero, self.seq, self.as_list = zero, seq, as_list

    def __call__(self, it: Iterator[Any]) -> Any:
        import copy
        acc = _reduce(self.seq, it, copy.deepcopy(self.zero))
        return [acc] if self.as_list else acc


def _sum_step(it: Iterator[Any]) -> list[Any]:
    return [sum(it)]


def _stat_step(it: Iterator[Any]) -> list[StatCounter]:
    return [StatCounter(it)]


def _merge_stats(a: StatCounter, b: StatCounter) -> StatCounter:
    return a.mergeStats(b)


class _MaxBy:
    def __init__(self, key: Callable[[Any], Any]) -> None:
        self.key = key

    def __call__(self, a: Any, b: Any) -> Any:
        return max(a, b, key=self.key)


class _MinBy:
    def __init__(self, key: Callable[[Any], Any]) -> None:
        self.key = key

    def __call__(self, a: Any, b: Any) -> Any:
        return min(a, b, key=self.key)


def _count_values(it: Iterator[Any]) -> dict[Any, int]:
    from collections import Counter
    return dict(Counter(it))


class _TakeStep:
    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, it: Iterator[Any]) -> list[Any]:
        return list(itertools.islice(it, self.n))


class _NSmallest:
    def __init__(self, n: int, key: Callable[[Any], Any] | None) -> None:
        self.n, self.key = n, key

    def __call__(self, it: Iterator[Any]) -> list[Any]:
        return heapq.nsmallest(self.n, it, key=self.key)


class _NLargest:
    def __init__(self, n: int, key: Callable[[Any], Any] | None) -> None:
        self.n, self.key = n, key

    def __call__(self, it: Iterator[Any]) -> list[Any]:
        return heapq.nlargest(self.n, it, key=self.key)


class _PipeStep:
    def __init__(self, command: str, env: dict[str, str], check: bool) -> None:
        self.command, self.env, self.check = command, env, check

    def __call__(self, it: Iterator[Any]) -> Iterator[str]:
        import shlex
        import subprocess
        import threading
        proc = subprocess.Popen(shlex.split(self.command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                env={**os.environ, **self.env})
        assert proc.stdin is not None and proc.stdout is not None
        stdin = proc.stdin

        def feed() -> None:
            try:
                for x in it:
                    stdin.write((str(x).rstrip("\n") + "\n").encode("utf-8"))
            finally:
                stdin.close()

        t = threading.Thread(target=feed, daemon=True)
        t.start()
        for line in proc.stdout:
            yield line.decode("utf-8").rstrip("\n")
        t.join()
        code = proc.wait()
        if self.check and code:
            raise RuntimeError(f"Pipe function `{self.command}' exited with error code {code}")

