"""Partitions, dependencies, partitioners and aggregators: the vocabulary of lineage.

An RDD is a list of partitions plus a ``compute(split)`` that yields one partition's
records from its parents. Its dependencies say how: a *narrow* dependency reads a few
parent partitions in the same task; a *shuffle* dependency needs every map output of the
parent, so the DAG scheduler cuts a stage there.
"""
from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from sparkctl.util.hashing import portable_hash

if TYPE_CHECKING:
    from sparkctl.rdd.rdd import RDD


def identity(x: Any) -> Any:
    """The identity function; aggregation recognises it (a value is its own combiner)."""
    return x


class Partition:
    """One slice of an RDD; subclasses carry what ``compute`` needs to rebuild it."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for cls in type(self).__mro__ for k in getattr(cls, "__slots__", ()) if hasattr(self, k)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.index})"


class Dependency:
    def __init__(self, rdd: "RDD") -> None:
        self.rdd = rdd


class NarrowDependency(Dependency):
    def get_parents(self, partition_index: int) -> list[int]:
        raise NotImplementedError


class OneToOneDependency(NarrowDependency):
    def get_parents(self, partition_index: int) -> list[int]:
        return [partition_index]


class RangeDependency(NarrowDependency):
    """Child partitions [out_start, out_start+length) are parent's [in_start, ...) (union)."""

    def __init__(self, rdd: "RDD", in_start: int, out_start: int, length: int) -> None:
        super().__init__(rdd)
        self.in_start, self.out_start, self.length = in_start, out_start, length

    def get_parents(self, partition_index: int) -> list[int]:
        if self.out_start <= partition_index < self.out_start + self.length:
            return [partition_index - self.out_start + self.in_start]
        return []


class ExplicitNarrowDependency(NarrowDependency):
    """Parents given by a function (coalesce, cartesian, zip)."""

    def __init__(self, rdd: "RDD", parents: Callable[[int], list[int]]) -> None:
        super().__init__(rdd)
        self._parents = parents

    def get_parents(self, partition_index: int) -> list[int]:
        return self._parents(partition_index)


class Partitioner:
    """Maps a key to a partition: ``partitionFunc(key) % numPartitions`` (PySpark's)."""

    def __init__(self, numPartitions: int, partitionFunc: Callable[[Any], int] = portable_hash) -> None:
        self.numPartitions = numPartitions
        self.partitionFunc = partitionFunc

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Partitioner) and self.numPartitions == other.numPartitions
                and self.partitionFunc == other.partitionFunc)

    def __hash__(self) -> int:
        return hash((self.numPartitions, id(self.partitionFunc)))

    def __call__(self, key: Any) -> int:
        return self.partitionFunc(key) % self.numPartitions

    def partition_of(self) -> Callable[[Any], int]:
        """The same mapping as ``self(key)`` with the fewest Python calls per record, for
        the map side of a shuffle (one call per record)."""
        n = self.numPartitions
        func = self.partitionFunc
        if isinstance(func, RangeBounds):
            return func.fast()
        if func is portable_hash:
            def hashed(key: Any, _h: Callable[[Any], int] = portable_hash, _n: int = n) -> int:
                return _h(key) % _n
            return hashed

        def generic(key: Any, _f: Callable[[Any], int] = func, _n: int = n) -> int:
            return _f(key) % _n
        return generic

    def __repr__(self) -> str:
        return f"Partitioner({self.numPartitions}, {getattr(self.partitionFunc, '__name__', self.partitionFunc)})"


class RangeBounds:
    """A picklable partition function for sortByKey: the index of the key's range."""

    def __init__(self, bounds: Sequence[Any], ascending: bool, keyfunc: Callable[[Any], Any],
                 num_partitions: int) -> None:
        self.bounds = list(bounds)
        self.ascending = ascending
        self.keyfunc = keyfunc
        self.num_partitions = num_partitions

    def __call__(self, k: Any) -> int:
        p = bisect_left(self.bounds, self.keyfunc(k))
        return p if self.ascending else self.num_partitions - 1 - p

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, RangeBounds) and self.bounds == other.bounds
                and self.ascending == other.ascending and self.keyfunc is other.keyfunc)

    __hash__ = object.__hash__

    def fast(self) -> Callable[[Any], int]:
        if self.keyfunc is identity and self.ascending:
            return partial(bisect_left, self.bounds)  # all in C
        return self


@dataclass
class Aggregator:
    """combineByKey's three functions; ``merge_combiners`` also merges spilled runs."""

    create_combiner: Callable[[Any], Any]
    merge_value: Callable[[Any, Any], Any]
    merge_combiners: Callable[[Any, Any], Any]


def narrow_lineage(rdd: "RDD", through: type[Dependency] = NarrowDependency) -> Iterator["RDD"]:
    """``rdd`` and every RDD it reaches through dependencies of type *through* (narrow ones
    by default: what runs in the same task, stopping at shuffles), each once."""
    seen: set[int] = set()
    stack = [rdd]
    while stack:
        r = stack.pop()
        if r._id in seen:
            continue
        seen.add(r._id)
        yield r
        stack.extend(d.rdd for d in r.dependencies if isinstance(d, through))


class ShuffleDependency(Dependency):
    """The parent's records, partitioned by ``partitioner`` (and combined map-side)."""

    def __init__(self, rdd: "RDD", shuffle_id: int, partitioner: Partitioner,
                 aggregator: Aggregator | None = None, map_side_combine: bool = False) -> None:
        super().__init__(rdd)
        self.shuffle_id = shuffle_id
        self.partitioner = partitioner
        self.aggregator = aggregator
        self.map_side_combine = map_side_combine and aggregator is not None
        # None: records pickled in batches; else an object whose writer(...) makes the map
        # side's writer (a DataFrame exchange writes its tables as Arrow IPC streams)
        self.serializer: Any = None
        self.creation_site = ""  # "reduceByKey at app.py:4": names its map stage (driver only)

    @property
    def num_partitions(self) -> int:
        return self.partitioner.numPartitions

    def __getstate__(self) -> dict[str, Any]:
        # A task reads a shuffle's outputs, never its parent lineage: drop the parent so a
        # reduce stage's closure does not carry every stage before it.
        state = dict(self.__dict__)
        state["rdd"] = None
        state["creation_site"] = ""
        return state
