"""SparkContext life-cycle behaviours that PySpark's test_context.py checks, written
afresh against sparkctl. Every test here makes and stops its own context (local[1]), so
the shared one is stopped while this module runs (see conftest).
"""
from __future__ import annotations

import time
from typing import Any

import pytest

from sparkctl import SparkConf, SparkContext
from sparkctl.errors import ContextOnlyOnDriverError
from sparkctl.executor.slot import executor_pid


def _conf() -> SparkConf:
    return SparkConf().setMaster("local[1]").setAppName("parity-context")


@pytest.mark.timeout(60)
def test_invalid_master_fails_the_start_and_leaves_no_context() -> None:
    with pytest.raises(Exception):
        SparkContext("an-invalid-master-name")
    assert SparkContext._active_spark_context is None
    # the failed start does not block the next context
    with SparkContext(conf=_conf()) as sc:
        assert sc.parallelize([1, 2]).count() == 2


@pytest.mark.timeout(60)
def test_stop_clears_the_active_context() -> None:
    sc = SparkContext(conf=_conf())
    try:
        assert SparkContext._active_spark_context is sc
    finally:
        sc.stop()
    assert SparkContext._active_spark_context is None


@pytest.mark.timeout(60)
def test_with_block_stops_on_exit_on_error_and_after_an_explicit_stop() -> None:
    with SparkContext(conf=_conf()) as sc:
        assert SparkContext._active_spark_context is sc
        assert SparkContext.getOrCreate() is sc
    assert SparkContext._active_spark_context is None

    with pytest.raises(RuntimeError, match="inside the block"):
        with SparkContext(conf=_conf()):
            raise RuntimeError("inside the block")
    assert SparkContext._active_spark_context is None

    with SparkContext(conf=_conf()) as sc:
        sc.stop()
    assert SparkContext._active_spark_context is None


@pytest.mark.timeout(60)
def test_get_or_create_makes_one_when_none_runs() -> None:
    assert SparkContext._active_spark_context is None
    with SparkContext.getOrCreate(_conf()) as sc:
        assert SparkContext.getOrCreate() is sc


@pytest.mark.timeout(60)
def test_start_time_and_resources() -> None:
    before = int(time.time() * 1000)
    with SparkContext(conf=_conf()) as sc:
        # milliseconds since the epoch, taken while the context started
        assert before <= sc.startTime <= int(time.time() * 1000)
        assert sc.resources == {}


def _make_a_context(_x: Any) -> None:
    SparkContext(conf=_conf())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("master", ["local[1]", "local-cluster[2,1,512]"])
def test_a_context_cannot_be_created_inside_a_task(master: str) -> None:
    # local mode's task processes are forked from the driver, a cluster's are not: both refuse
    with SparkContext(master, "parity-context-in-task") as sc:
        with pytest.raises(ContextOnlyOnDriverError, match="CONTEXT_ONLY_VALID_ON_DRIVER"):
            sc.range(2).foreach(_make_a_context)
        assert sc.range(3).count() == 3


def _values_in_tasks(sc: SparkContext, values: list[int]) -> None:
    """Broadcast each value, read them all in tasks on every executor, and check no task
    of any job so far failed (PySpark's test_broadcast helper, on a standalone cluster)."""
    bs = [sc.broadcast(v) for v in values]
    seen = sc.parallelize(range(4), 4).map(lambda _x: [b.value for b in bs]).collect()
    assert seen == [values] * 4
    tracker = sc.statusTracker()
    for job_id in tracker.getJobIdsForGroup():
        for stage_id in tracker.getJobInfo(job_id).stageIds:
            assert tracker.getStageInfo(stage_id).numFailedTasks == 0


@pytest.mark.timeout(90)
def test_broadcasts_on_a_two_worker_cluster() -> None:
    with SparkContext("local-cluster[2,1,512]", "parity-broadcast") as sc:
        assert sc.broadcast(5).value == 5  # on the driver too
        _values_in_tasks(sc, [5])
        _values_in_tasks(sc, [5, 10, 20])
        # the four tasks start two at once, one per worker
        assert len(set(sc.parallelize(range(4), 4).map(lambda _x: executor_pid()).collect())) == 2
        b = sc.broadcast(list(range(1000)))
        b.unpersist()  # the next job ships it again
        assert sc.parallelize(range(4), 4).map(lambda _x: len(b.value)).collect() == [1000] * 4
        b.destroy()
        with pytest.raises(Exception):
            sc.parallelize(range(4), 4).map(lambda _x: len(b.value)).collect()


def _sum_in_a_nested_context(_x: Any) -> int:
    conf = _conf().setAppName("nested").set("spark.executor.allowSparkContext", "true")
    with SparkContext(conf=conf) as inner:
        return inner.parallelize([1, 2, 3]).sum()


@pytest.mark.timeout(60)
def test_a_context_can_be_created_inside_a_task_when_allowed() -> None:
    with SparkContext(conf=_conf()) as sc:
        assert sc.parallelize([0], 1).map(_sum_in_a_nested_context).collect() == [6]
        assert SparkContext._active_spark_context is sc
