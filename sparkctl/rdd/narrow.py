"""RDDs whose partitions each read a few parent partitions in the same task (no shuffle)."""
from __future__ import annotations

from itertools import chain
from typing import TYPE_CHECKING, Any, Callable, Iterator

from sparkctl.rdd.dependencies import (Dependency, ExplicitNarrowDependency, OneToOneDependency, Partition,
                                       RangeDependency)
from sparkctl.rdd.rdd import RDD
from sparkctl.rdd.stopiteration import guarded, is_whole_input

if TYPE_CHECKING:
    from sparkctl.taskcontext import TaskContext

PartitionFunc = Callable[[int, Iterator[Any]], Iterator[Any]]


class MapPartitionsRDD(RDD):
    """Applies ``f(partition_index, iterator)``; consecutive ones fuse into one function
    (PySpark's PipelinedRDD), so a chain of maps costs one generator per record, not one
    per step.

    Steps that read their whole input (map, filter, flatMap...) are guarded against a user
    function's StopIteration once per task (sparkctl.rdd.stopiteration): the fused function
    is kept as a ``prefix`` (steps that may stop early, each whole run of guarded steps
    before them already wrapped in its guard) and a trailing ``segment`` of whole-input
    steps, which ``compute`` guards.
    """

    prev: RDD
    prefix: PartitionFunc | None
    segment: PartitionFunc | None

    def __init__(self, prev: RDD, f: PartitionFunc, preservesPartitioning: bool = False) -> None:
        prefix: PartitionFunc | None = None
        segment: PartitionFunc | None = None
        if isinstance(prev, MapPartitionsRDD) and prev._can_fuse():
            prefix, segment = prev.prefix, prev.segment
            source = prev.prev
        else:
            source = prev
        if is_whole_input(f):
            segment = f if segment is None else _compose(segment, f)
        else:
            if segment is not None:
                done = _Guarded(segment)
                prefix = done if prefix is None else _compose(prefix, done)
                segment = None
            prefix = f if prefix is None else _compose(prefix, f)
        super().__init__(prev.ctx, [OneToOneDependency(source)])
        self.prev = source
        self.prefix = prefix
        self.segment = segment
        self.preservesPartitioning = preservesPartitioning
        self.partitioner = prev.partitioner if preservesPartitioning else None

    @property
    def func(self) -> PartitionFunc:
        """The whole fused function, guards included."""
        if self.segment is None:
            assert self.prefix is not None
            return self.prefix
        done = _Guarded(self.segment)
        return done if self.prefix is None else _compose(self.prefix, done)

    def _can_fuse(self) -> bool:
        return not self.is_cached and not self._checkpoint_requested and self._checkpoint_rdd is None

    def _get_partitions(self) -> list[Partition]:
        return self.prev.partitions

    def compute(self, split: Partition, tc: "TaskContext") -> Iterator[Any]:
        records = self.prev.iterator(split, tc)
        if self.prefix is not None:
            records = self.prefix(split.index, records)
        if self.segment is not None:
            return guarded(self.segment, split.index, records)
        return records


class _Guarded:
    """A run of whole-input steps with its StopIteration guard, inside a longer pipeline."""

    def __init__(self, segment: PartitionFunc) -> None:
        self.segment = segment

    def __call__(self, index: int, records: Iterator[Any]) -> Iterator[Any]:
        return guarded(self.segment, index, records)


def _compose(first: PartitionFunc, second: PartitionFunc) -> PartitionFunc:
    def pipeline(index: int, iterator: Iterator[Any]) -> Iterator[Any]:
        return second(index, first(index, iterator))
    return pipeline


class UnionPartition(Partition):
    __slots__ = ("rdd_index", "parent")

    def __init__(self, index: int, rdd_index: int, parent: Partition) -> None:
        super().__init__(index)
        self.rdd_index = rdd_index
        self.parent = parent


class UnionRDD(RDD):
    def __init__(self, ctx: Any, rdds: list[RDD]) -> None:
        deps: list[Dependency] = []
        pos = 0
        for r in rdds:
            n = r.getNumPartitions()
            deps.append(RangeDependency(r, 0, pos, n))
            pos += n
        super().__init__(ctx, deps)
        self.rdds = rdds

    def _get_partitions(self) -> list[Partition]:
        parts: list[Partition] = []
        for i, r in enumerate(self.rdds):
            for p in r.partitions:
                parts.append(UnionPartition(len(parts), i, p))
        return parts

    def compute(self, split: Partition, tc: "TaskContext") -> Iterator[Any]:
        assert isinstance(split, UnionPartition)
        return self.rdds[split.rdd_index].iterator(split.parent, tc)


class MultiParentPartition(Partition):
    __slots__ = ("parents",)

    def __init__(self, index: int, parents: list[Partition]) -> None:
        super().__init__(index)
        self.parents = parents


class PartitionerAwareUnionRDD(RDD):
    """Union of RDDs partitioned alike: partition i is every parent's partition i, so the
    result keeps the partitioner and a later shuffle by it is skipped."""

    def __init__(self, ctx: Any, rdds: list[RDD]) -> None:
        super().__init__(ctx, [OneToOneDependency(r) for r in rdds])
        self.rdds = rdds
        self.partitioner = rdds[0].partitioner

    def _get_partitions(self) -> list[Partition]:
        n = self.rdds[0].getNumPartitions()
        return [MultiParentPartition(i, [r.partitions[i] for r in self.rdds]) for i in range(n)]

    def compute(self, split: Partition, tc: "TaskContext") -> Iterator[Any]:
        assert isinstance(split, MultiParentPartition)
        return chain.from_iterable(r.iterator(p, tc) for r, p in zip(self.rdds, split.parents))


class CoalescedRDD(RDD):
    """Merges consecutive parent partitions into fewer partitions, without a shuffle."""

    def __init__(self, prev: RDD, num_partitions: int) -> None:
        n_parent = prev.getNumPartitions()
        n = max(1, min(num_partitions, n_parent)) if n_parent else 0
        ranges = [range(i * n_parent // n, (i + 1) * n_parent // n) for i in range(n)]
        super().__init__(prev.ctx, [ExplicitNarrowDependency(prev, lambda i: list(ranges[i]))])
        self.prev = prev
        self.ranges = ranges

    def _get_partitions(self) -> list[Partition]:
        parent_parts = self.prev.partitions
        return [MultiParentPartition(i, [parent_parts[j] for j in r]) for i, r in enumerate(self.ranges)]

    def compute(self, split: Partition, tc: "TaskContext") -> Iterator[Any]:
        assert isinstance(split, MultiParentPartition)
        return chain.from_iterable(self.prev.iterator(p, tc) for p in split.parents)


class PairPartition(Partition):
    __slots__ = ("first", "second")

    def __init__(self, index: int, first: Partition, second: Partition) -> None:
        super().__init__(index)
        self.first = first
        self.second = second


class ZippedRDD(RDD):
    def __init__(self, a: RDD, b: RDD) -> None:
        if a.getNumPartitions() != b.getNumPartitions():
            raise ValueError("Can only zip RDDs with same number of partitions")
        super().__init__(a.ctx, [OneToOneDependency(a), OneToOneDependency(b)])
        self.a, self.b = a, b

    def _get_partitions(self) -> list[Partition]:
        return [PairPartition(i, pa, pb) for i, (pa, pb) in enumerate(zip(self.a.partitions, self.b.partitions))]

    def compute(self, split: Partition, tc: "TaskContext") -> Iterator[Any]:
        assert isinstance(split, PairPartition)
        left = self.a.iterator(split.first, tc)
        right = self.b.iterator(split.second, tc)
        sentinel = object()
        for x in left:
            y = next(right, sentinel)
            if y is sentinel:
                raise ValueError("Can only zip RDDs with same number of elements in each partition")
            yield (x, y)
        if next(right, sentinel) is not sentinel:
            raise ValueError("Can only zip RDDs with same number of elements in each partition")


class CartesianRDD(RDD):
    def __init__(self, a: RDD, b: RDD) -> None:
        nb = b.getNumPartitions()
        super().__init__(a.ctx, [ExplicitNarrowDependency(a, lambda i: [i // nb]),
                                 ExplicitNarrowDependency(b, lambda i: [i % nb])])
        self.a, self.b = a, b

    def _get_partitions(self) -> list[Partition]:
        return [PairPartition(i * len(self.b.partitions) + j, pa, pb)
                for i, pa in enumerate(self.a.partitions) for j, pb in enumerate(self.b.partitions)]

    def compute(self, split: Partition, tc: "TaskContext") -> Iterator[Any]:
        assert isinstance(split, PairPartition)
        right = list(self.b.iterator(split.second, tc))
        for x in self.a.iterator(split.first, tc):
            for y in right:
                yield (x, y)


class EmptyRDD(RDD):
    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx, [])

    def _get_partitions(self) -> list[Partition]:
        return []

    def compute(self, split: Partition, tc: "TaskContext") -> Iterator[Any]:
        return iter(())
