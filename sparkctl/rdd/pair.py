"""Key-value operations of an RDD of pairs (PySpark keeps them on RDD itself).

Every aggregation goes through one path, ``combineByKey``: a shuffle with an aggregator
(combined map-side, merged reduce-side in bounded memory), skipped when the data is
already partitioned the same way. Joins and cogroups tag each side's values and group
them in one shuffle, as PySpark does.
"""
from __future__ import annotations

import copy
import math
from functools import reduce as _reduce
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from sparkctl.rdd.dependencies import Aggregator, Partitioner, RangeBounds, identity
from sparkctl.rdd.resultiterable import ResultIterable
from sparkctl.rdd.sampling import KeySketch, range_bounds
from sparkctl.util.hashing import portable_hash

if TYPE_CHECKING:
    from sparkctl.rdd.rdd import RDD


_identity = identity


class PairRDDFunctions:
    """Mixed into RDD: operations on records that are (key, value) pairs."""

    def _default_reduce_partitions(self: "RDD") -> int:  # type: ignore[misc]
        if self.ctx._conf.contains("spark.default.parallelism"):
            return self.ctx.defaultParallelism
        return self.getNumPartitions()

    def keys(self: "RDD") -> "RDD":  # type: ignore[misc]
        return self.map(_first)

    def values(self: "RDD") -> "RDD":  # type: ignore[misc]
        return self.map(_second)

    def mapValues(self: "RDD", f: Callable[[Any], Any]) -> "RDD":  # type: ignore[misc]
        return self.map(_MapValue(f), preservesPartitioning=True)

    def flatMapValues(self: "RDD", f: Callable[[Any], Iterable[Any]]) -> "RDD":  # type: ignore[misc]
        return self.flatMap(_FlatMapValue(f), preservesPartitioning=True)

    def partitionBy(self: "RDD", numPartitions: int | None,  # type: ignore[misc]
                    partitionFunc: Callable[[Any], int] = portable_hash) -> "RDD":
        from sparkctl.rdd.shuffled import ShuffledRDD
        if numPartitions is None:
            numPartitions = self._default_reduce_partitions()
        partitioner = Partitioner(numPartitions, partitionFunc)
        if self.partitioner == partitioner:
            return self
        return ShuffledRDD(self, partitioner)

    def combineByKey(self: "RDD", createCombiner: Callable[[Any], Any],  # type: ignore[misc]
                     mergeValue: Callable[[Any, Any], Any], mergeCombiners: Callable[[Any, Any], Any],
                     numPartitions: int | None = None, partitionFunc: Callable[[Any], int] = portable_hash) -> "RDD":
        return self._combine(Aggregator(createCombiner, mergeValue, mergeCombiners), numPartitions,
                             partitionFunc, map_side_combine=True)

    def _combine(self: "RDD", agg: Aggregator, numPartitions: int | None,  # type: ignore[misc]
                 partitionFunc: Callable[[Any], int], map_side_combine: bool) -> "RDD":
        from sparkctl.rdd.shuffled import ShuffledRDD
        if numPartitions is None:
            numPartitions = self._default_reduce_partitions()
        partitioner = Partitioner(numPartitions, partitionFunc)
        if self.partitioner == partitioner:  # already co-located: combine in place, no shuffle
            return self.mapPartitions(_CombineLocally(agg), preservesPartitioning=True)
        return ShuffledRDD(self, partitioner, agg, map_side_combine)

    def reduceByKey(self: "RDD", func: Callable[[Any, Any], Any], numPartitions: int | None = None,  # type: ignore[misc]
                    partitionFunc: Callable[[Any], int] = portable_hash) -> "RDD":
        return self.combineByKey(_identity, func, func, numPartitions, partitionFunc)

    def reduceByKeyLocally(self: "RDD", func: Callable[[Any, Any], Any]) -> dict[Any, Any]:  # type: ignore[misc]
        def merge_maps(m1: dict[Any, Any], m2: dict[Any, Any]) -> dict[Any, Any]:
            for k, v in m2.items():
                m1[k] = func(m1[k], v) if k in m1 else v
            return m1
        parts = self.ctx.run_job(self, _ReduceLocally(func))
        return _reduce(merge_maps, parts, {})

    def foldByKey(self: "RDD", zeroValue: Any, func: Callable[[Any, Any], Any],  # type: ignore[misc]
                  numPartitions: int | None = None, partitionFunc: Callable[[Any], int] = portable_hash) -> "RDD":
        return self.combineByKey(_ZeroThen(zeroValue, func), func, func, numPartitions, partitionFunc)

    def aggregateByKey(self: "RDD", zeroValue: Any, seqFunc: Callable[[Any, Any], Any],  # type: ignore[misc]
                       combFunc: Callable[[Any, Any], Any], numPartitions: int | None = None,
                       partitionFunc: Callable[[Any], int] = portable_hash) -> "RDD":
        return self.combineByKey(_ZeroThen(zeroValue, seqFunc), seqFunc, combFunc, numPartitions, partitionFunc)

    def groupByKey(self: "RDD", numPartitions: int | None = None,  # type: ignore[misc]
                   partitionFunc: Callable[[Any], int] = portable_hash) -> "RDD":
        # no map-side combine: building lists before the shuffle saves nothing
        grouped = self._combine(_LIST_AGGREGATOR, numPartitions, partitionFunc, map_side_combine=False)
        return grouped.mapValues(ResultIterable)

    def countByKey(self: "RDD") -> dict[Any, int]:  # type: ignore[misc]
        return self.map(_first).countByValue()

    def collectAsMap(self: "RDD") -> dict[Any, Any]:  # type: ignore[misc]
        return dict(self.collect())

    def lookup(self: "RDD", key: Any) -> list[Any]:  # type: ignore[misc]
        values = self.filter(_KeyEquals(key)).values()
        if self.partitioner is not None:
            return self.ctx.run_job(values, list, [self.partitioner(key)])[0]
        return values.collect()

    def sortByKey(self: "RDD", ascending: bool = True, numPartitions: int | None = None,  # type: ignore[misc]
                  keyfunc: Callable[[Any], Any] = _identity) -> "RDD":
        from sparkctl.rdd.shuffled import ShuffledRDD
        if numPartitions is None:
            numPartitions = self._default_reduce_partitions()
        if numPartitions == 1:
            rdd = self.coalesce(1) if self.getNumPartitions() > 1 else self
            return rdd.mapPartitions(_SortPartition(keyfunc, ascending), True)
        # range-partition on bounds sampled from the keys, so each reducer gets a similar
        # share; one pass counts each partition and samples its keys together
        per_partition = math.ceil(3.0 * min(20.0 * numPartitions, 1e6) / max(1, self.getNumPartitions()))
        sketches = self.ctx.run_job(self, KeySketch(per_partition, seed=1), None)
        if not sum(n for n, _ in sketches):
            return self
        bounds = range_bounds(sketches, numPartitions, keyfunc)
        partitioner = Partitioner(numPartitions, RangeBounds(bounds, ascending, keyfunc, numPartitions))
        return ShuffledRDD(self, partitioner, key_ordering=(keyfunc, ascending))

    def sortBy(self: "RDD", keyfunc: Callable[[Any], Any], ascending: bool = True,  # type: ignore[misc]
               numPartitions: int | None = None) -> "RDD":
        return self.keyBy(keyfunc).sortByKey(ascending, numPartitions).values()

    def repartitionAndSortWithinPartitions(self: "RDD", numPartitions: int | None = None,  # type: ignore[misc]
                                           partitionFunc: Callable[[Any], int] = portable_hash,
                                           ascending: bool = True,
                                           keyfunc: Callable[[Any], Any] = _identity) -> "RDD":
        from sparkctl.rdd.shuffled import ShuffledRDD
        if numPartitions is None:
            numPartitions = self._default_reduce_partitions()
        return ShuffledRDD(self, Partitioner(numPartitions, partitionFunc), key_ordering=(keyfunc, ascending))

    # ---------------------------------------------------------------- joins
    def cogroup(self: "RDD", other: "RDD", numPartitions: int | None = None) -> "RDD":  # type: ignore[misc]
        return _tagged_group([self, other], numPartitions).mapValues(_Buffers(2))

    def groupWith(self: "RDD", other: "RDD", *others: "RDD") -> "RDD":  # type: ignore[misc]
        rdds = [self, other, *others]
        return _tagged_group(rdds, None).mapValues(_Buffers(len(rdds)))

    def join(self: "RDD", other: "RDD", numPartitions: int | None = None) -> "RDD":  # type: ignore[misc]
        return _tagged_group([self, other], numPartitions).flatMapValues(_JoinDispatch(False, False))

    def leftOuterJoin(self: "RDD", other: "RDD", numPartitions: int | None = None) -> "RDD":  # type: ignore[misc]
        return _tagged_group([self, other], numPartitions).flatMapValues(_JoinDispatch(False, True))

    def rightOuterJoin(self: "RDD", other: "RDD", numPartitions: int | None = None) -> "RDD":  # type: ignore[misc]
        return _tagged_group([self, other], numPartitions).flatMapValues(_JoinDispatch(True, False))

    def fullOuterJoin(self: "RDD", other: "RDD", numPartitions: int | None = None) -> "RDD":  # type: ignore[misc]
        return _tagged_group([self, other], numPartitions).flatMapValues(_JoinDispatch(True, True))

    def subtractByKey(self: "RDD", other: "RDD", numPartitions: int | None = None) -> "RDD":  # type: ignore[misc]
        return (_tagged_group([self, other], numPartitions)
                .flatMapValues(_LeftOnly()))


def _first(kv: Any) -> Any:
    return kv[0]


def _second(kv: Any) -> Any:
    return kv[1]


class _MapValue:
    def __init__(self, f: Callable[[Any], Any]) -> None:
        self.f = f

    def __call__(self, kv: Any) -> tuple[Any, Any]:
        return (kv[0], self.f(kv[1]))


class _FlatMapValue:
    def __init__(self, f: Callable[[Any], Iterable[Any]]) -> None:
        self.f = f

    def __call__(self, kv: Any) -> Iterator[tuple[Any, Any]]:
        k = kv[0]
        return ((k, v) for v in self.f(kv[1]))


class _ZeroThen:
    """createCombiner for foldByKey/aggregateByKey: a fresh copy of zero, then the value."""

    def __init__(self, zero: Any, f: Callable[[Any, Any], Any]) -> None:
        self.zero, self.f = zero, f

    def __call__(self, v: Any) -> Any:
        return self.f(copy.deepcopy(self.zero), v)


class _KeyEquals:
    def __init__(self, key: Any) -> None:
        self.key = key

    def __call__(self, kv: Any) -> bool:
        return kv[0] == self.key


def _list_create(v: Any) -> list[Any]:
    return [v]


def _list_append(c: list[Any], v: Any) -> list[Any]:
    c.append(v)
    return c


def _list_extend(c1: list[Any], c2: list[Any]) -> list[Any]:
    c1.extend(c2)
    return c1


_LIST_AGGREGATOR = Aggregator(_list_create, _list_append, _list_extend)


class _CombineLocally:
    def __init__(self, agg: Aggregator) -> None:
        self.agg = agg

    def __call__(self, it: Iterator[Any]) -> Iterator[tuple[Any, Any]]:
        from sparkctl.storage.spill import ExternalAppendOnlyMap
        from sparkctl.taskcontext import TaskContext
        tc = TaskContext.get()
        assert tc is not None
        amap = ExternalAppendOnlyMap(self.agg, tc.memory_budget, tc.local_dir, tc.batch_size)
        tc.add_completion_listener(amap.cleanup)
        amap.insert_values(it)
        return amap.items()


class _SortPartition:
    def __init__(self, keyfunc: Callable[[Any], Any], ascending: bool) -> None:
        self.keyfunc, self.ascending = keyfunc, ascending

    def __call__(self, it: Iterator[Any]) -> Iterator[Any]:
        from sparkctl.storage.spill import ExternalSorter
        from sparkctl.taskcontext import TaskContext
        tc = TaskContext.get()
        assert tc is not None
        sorter = ExternalSorter(self.keyfunc, self.ascending, tc.memory_budget, tc.local_dir, tc.batch_size)
        tc.add_completion_listener(sorter.cleanup)
        sorter.insert_all(it)
        return sorter.sorted_records()


class _ReduceLocally:
    def __init__(self, f: Callable[[Any, Any], Any]) -> None:
        self.f = f

    def __call__(self, it: Iterator[Any]) -> dict[Any, Any]:
        m: dict[Any, Any] = {}
        f = self.f
        for k, v in it:
            m[k] = f(m[k], v) if k in m else v
        return m


class _Tag:
    def __init__(self, i: int) -> None:
        self.i = i

    def __call__(self, kv: Any) -> tuple[Any, tuple[int, Any]]:
        return (kv[0], (self.i, kv[1]))


def _tagged_group(rdds: list["RDD"], numPartitions: int | None) -> "RDD":
    """(key, [(side, value), ...]) over every side, grouped in one shuffle."""
    tagged = [r.map(_Tag(i), preservesPartitioning=True) for i, r in enumerate(rdds)]
    union = _reduce(lambda a, b: a.union(b), tagged)
    return union._combine(_LIST_AGGREGATOR, numPartitions, portable_hash, map_side_combine=False)


class _Buffers:
    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, tagged: list[tuple[int, Any]]) -> tuple[ResultIterable, ...]:
        bufs: list[list[Any]] = [[] for _ in range(self.n)]
        for i, v in tagged:
            bufs[i].append(v)
        return tuple(ResultIterable(b) for b in bufs)


class _JoinDispatch:
    def __init__(self, keep_right_unmatched: bool, keep_left_unmatched: bool) -> None:
        self.keep_right = keep_right_unmatched
        self.keep_left = keep_left_unmatched

    def __call__(self, tagged: list[tuple[int, Any]]) -> list[tuple[Any, Any]]:
        left: list[Any] = []
        right: list[Any] = []
        for i, v in tagged:
            (left if i == 0 else right).append(v)
        if self.keep_left and not right:
            right.append(None)
        if self.keep_right and not left:
            left.append(None)
        return [(v, w) for v in left for w in right]


class _LeftOnly:
    def __call__(self, tagged: list[tuple[int, Any]]) -> list[Any]:
        left = [v for i, v in tagged if i == 0]
        if len(left) < len(tagged):
            return []
        return left

