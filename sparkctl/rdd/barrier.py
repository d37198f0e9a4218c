"""Barrier execution mode on the RDD side: ``rdd.barrier()`` and the RDD it makes.

``rdd.barrier().mapPartitions(f)`` returns an RDD whose stage is a *barrier stage*: all
its tasks are started together or not at all, each task can wait for the others with
``BarrierTaskContext.get().barrier()`` or exchange a message with ``allGather``, and a
failed task reruns the whole stage. This is how Spark starts distributed training, where
each worker process must know and reach all the others. A stage is a barrier stage when a
barrier RDD lies in its narrow lineage (the lineage its tasks compute without a shuffle);
the schedulers do the rest (see ``scheduler/barrier.py``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from sparkctl.rdd.dependencies import narrow_lineage
from sparkctl.rdd.narrow import MapPartitionsRDD

if TYPE_CHECKING:
    from sparkctl.rdd.rdd import RDD


class BarrierMapPartitionsRDD(MapPartitionsRDD):
    """A mapPartitions of a barrier stage. Later maps do not fuse into it, so that it
    stays in the lineage where the DAG scheduler looks for it."""

    def _can_fuse(self) -> bool:
        return False


class RDDBarrier:
    """Wraps an RDD whose next mapPartitions runs as a barrier stage (PySpark's RDDBarrier)."""

    def __init__(self, rdd: "RDD") -> None:
        self.rdd = rdd

    def mapPartitions(self, f: Callable[[Iterator[Any]], Iterable[Any]],
                      preservesPartitioning: bool = False) -> "RDD":
        """A new RDD applying ``f`` to each partition, all partitions' tasks running together."""
        from sparkctl.rdd.rdd import _ignore_index
        return BarrierMapPartitionsRDD(self.rdd, _ignore_index(f), preservesPartitioning)  # type: ignore[arg-type]

    def mapPartitionsWithIndex(self, f: Callable[[int, Iterator[Any]], Iterable[Any]],
                               preservesPartitioning: bool = False) -> "RDD":
        """As :meth:`mapPartitions`, with the partition's index as ``f``'s first argument."""
        return BarrierMapPartitionsRDD(self.rdd, f, preservesPartitioning)  # type: ignore[arg-type]


def is_barrier(rdd: "RDD") -> bool:
    """Whether the stage computing ``rdd`` is a barrier stage (as Spark's RDD.isBarrier)."""
    return any(isinstance(r, BarrierMapPartitionsRDD) for r in narrow_lineage(rdd))


def barrier_lineage_problem(rdd: "RDD", partitions: list[int]) -> str:
    """Why a job over ``partitions`` of ``rdd`` cannot run in barrier mode ('' if it can).

    A barrier stage's tasks start and sync together, so each stage computes every
    partition of its barrier RDDs, once, in one task each: a job on some of the partitions
    (``take``, ``first``) or a narrow change of the partition count after the barrier RDD
    (``coalesce``, ``union``) would leave some tasks waiting for partners that never run.
    """
    barrier_rdds = [r for r in narrow_lineage(rdd) if isinstance(r, BarrierMapPartitionsRDD)]
    if not barrier_rdds:
        return ""
    n = rdd.getNumPartitions()
    if len(partitions) != n:
        return (f"barrier mode runs every partition of a barrier stage together, but this job computes "
                f"{len(partitions)} of the {n} partitions of {rdd!r} (take(), first() and similar do): run an "
                "action over all partitions, such as collect(), instead")
    for b in barrier_rdds:
        if b.getNumPartitions() != n:
            return (f"barrier mode needs a barrier stage's RDDs to keep their partition count, but {b!r} has "
                    f"{b.getNumPartitions()} partitions and {rdd!r}, computed in the same stage, has {n} "
                    "(coalesce() or union() after barrier() do this): shuffle in between (e.g. repartition())")
    return ""
