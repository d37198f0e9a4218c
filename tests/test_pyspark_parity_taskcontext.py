"""TaskContext behaviours that PySpark's own tests check (python/pyspark/tests/
test_taskcontext.py and test_rddbarrier.py), written afresh against sparkctl on the shared
local[2] context. Barrier mode across two workers is in test_barrier.py; retries and
attempt numbers in test_rdd_zz_own_context.py.
"""
from __future__ import annotations

import os
from typing import Any, Iterator

import pytest

from sparkctl import BarrierTaskContext, TaskContext
from tests.test_pyspark_parity_worker import slot_pids


def _kind_of_context(it: Iterator[int]) -> Iterator[int]:
    """partitionId + 1 in a barrier task, + 2 in a normal one, -1 with no context."""
    tc = TaskContext.get()
    if isinstance(tc, BarrierTaskContext):
        yield tc.partitionId() + 1
    elif isinstance(tc, TaskContext):
        yield tc.partitionId() + 2
    else:
        yield -1


def _barrier_partition_or_minus_one(it: Iterator[int]) -> Iterator[tuple[int, int, int]]:
    tp = TaskContext.get().partitionId()
    try:
        bp = BarrierTaskContext.get().partitionId()
    except Exception:
        bp = -1
    yield tp, bp, os.getpid()


@pytest.mark.timeout(30)
def test_resources_are_empty_by_default(sc: Any) -> None:
    rdd = sc.parallelize(range(10))
    assert rdd.map(lambda _x: TaskContext.get().resources()).take(1)[0] == {}
    assert rdd.map(lambda _x: TaskContext().resources()).take(1)[0] == {}


@pytest.mark.timeout(30)
def test_partition_ids(sc: Any) -> None:
    one = sc.parallelize(range(10), 1).map(lambda _x: TaskContext.get().partitionId()).collect()
    two = sc.parallelize(range(10), 2).map(lambda _x: TaskContext.get().partitionId()).collect()
    assert one == [0] * 10
    assert two == [0] * 5 + [1] * 5


@pytest.mark.timeout(30)
def test_task_attempt_ids_differ_between_tasks(sc: Any) -> None:
    ids = sc.parallelize(range(4), 4).map(lambda _x: (TaskContext.get().attemptNumber(),
                                                       TaskContext.get().taskAttemptId())).collect()
    assert [attempt for attempt, _id in ids] == [0, 0, 0, 0]
    assert len({task_id for _a, task_id in ids}) == 4


@pytest.mark.timeout(30)
def test_local_property_set_on_the_driver_and_a_missing_one(sc: Any) -> None:
    sc.setLocalProperty("parity.key", "parity-value")
    try:
        rdd = sc.parallelize(range(1), 1)
        assert rdd.map(lambda _x: TaskContext.get().getLocalProperty("parity.key")).collect() == ["parity-value"]
        assert rdd.map(lambda _x: TaskContext.get().getLocalProperty("parity.other")).collect() == [None]
    finally:
        sc.setLocalProperty("parity.key", None)
    # unset again: the next job's tasks no longer see it
    assert sc.parallelize([0], 1).map(lambda _x: TaskContext.get().getLocalProperty("parity.key")).collect() == [None]


@pytest.mark.timeout(30)
def test_task_context_get_in_normal_and_barrier_stages(sc: Any) -> None:
    rdd = sc.parallelize(range(10), 2)
    assert rdd.mapPartitions(_kind_of_context).collect() == [2, 3]
    assert rdd.barrier().mapPartitions(_kind_of_context).collect() == [1, 2]


@pytest.mark.timeout(30)
def test_barrier_task_context_get_only_in_barrier_stages(sc: Any) -> None:
    def partition_or_minus_one(it: Iterator[int]) -> Iterator[int]:
        try:
            yield BarrierTaskContext.get().partitionId()
        except Exception:
            yield -1

    rdd = sc.parallelize(range(10), 2)
    assert rdd.mapPartitions(partition_or_minus_one).collect() == [-1, -1]
    assert rdd.barrier().mapPartitions(partition_or_minus_one).collect() == [0, 1]


@pytest.mark.timeout(30)
def test_barrier_after_a_map_in_the_same_stage(sc: Any) -> None:
    # PySpark's test_barrier/test_all_gather: barrier().mapPartitions(f).map(g), where g
    # synchronises; every task sees every partition's message
    def gather(_total: int) -> list[int]:
        tc = BarrierTaskContext.get()
        tc.barrier()
        return sorted(int(m) for m in tc.allGather(str(tc.partitionId())))

    sums = sc.parallelize(range(10), 2).barrier().mapPartitions(lambda it: [sum(it)])
    assert sums.map(gather).collect() == [[0, 1], [0, 1]]
    infos = sums.map(lambda _x: len(BarrierTaskContext.get().getTaskInfos())).collect()
    assert infos == [2, 2]


@pytest.mark.timeout(30)
def test_task_context_is_right_in_stages_before_and_after_a_barrier_stage(sc: Any) -> None:
    rdd = sc.parallelize(range(10), 2)
    for barrier, expected in ((False, (-1, -1)), (True, (0, 1)), (False, (-1, -1))):
        stage = rdd.barrier() if barrier else rdd
        tps, bps, _pids = zip(*stage.mapPartitions(_barrier_partition_or_minus_one).collect())
        assert tps == (0, 1)
        assert bps == expected


@pytest.mark.timeout(30)
def test_barrier_stage_reuses_the_task_processes_of_an_earlier_job(sc: Any) -> None:
    # SPARK-25921: barrier() works in task processes that already ran normal tasks
    before = slot_pids(sc)

    def synced(_total: int) -> int:
        BarrierTaskContext.get().barrier()
        return os.getpid()

    pids = sc.parallelize(range(10), 2).barrier().mapPartitions(lambda it: [sum(it)]).map(synced).collect()
    assert len(pids) == 2
    assert set(pids) <= before
