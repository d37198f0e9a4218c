"""Barrier execution mode with real processes: on local[2] (one executor, two slots) and
on a two-worker standalone cluster (local-cluster[2,1,512]: one executor of one slot on
each of 127.0.0.2 and 127.0.0.3). The behaviours are PySpark's (test_rddbarrier,
BarrierTaskContext's documentation): allGather returns every task's message in partition
order, barrier() lets no task through before all arrived, getTaskInfos names each task's
executor, a failed task reruns the whole stage, and a stage with more tasks than the
cluster has slots fails at once.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterator

import pytest

from sparkctl import BarrierTaskContext, SparkConf, SparkContext, TaskContext
from sparkctl.errors import BarrierStageError

MASTERS = ["local[2]", "local-cluster[2,1,512]"]
SYNC_TIMEOUT = "3s"  # far above any sync these tests wait for, short enough to test the timeout


@pytest.fixture(scope="module", params=MASTERS)
def bsc(request: Any) -> Iterator[SparkContext]:
    conf = (SparkConf().set("spark.ui.showConsoleProgress", "false").set("spark.log.level", "ERROR")
            .set("spark.stage.maxConsecutiveAttempts", "3").set("spark.barrier.sync.timeout", SYNC_TIMEOUT))
    with SparkContext(request.param, "barrier-tests", conf=conf) as sc:
        yield sc


def _gather_partition_ids(it: Iterator[int]) -> list[list[str]]:
    ctx = BarrierTaskContext.get()
    return [ctx.allGather(f"partition {ctx.partitionId()} saw {sum(it)}")]


@pytest.mark.timeout(60)
def test_all_gather_returns_every_message_in_partition_order(bsc: SparkContext) -> None:
    got = bsc.parallelize(range(10), 2).barrier().mapPartitions(_gather_partition_ids).collect()
    expected = ["partition 0 saw 10", "partition 1 saw 35"]  # sum(0..4), sum(5..9)
    assert got == [expected, expected]


def _arrive_then_pass(index: int, it: Iterator[int]) -> list[tuple[int, float, float]]:
    ctx = BarrierTaskContext.get()
    if index == 0:
        time.sleep(0.4)  # the slowest task: nobody may pass the barrier before it arrives
    arrived = time.time()
    ctx.barrier()
    passed = time.time()
    ctx.barrier()  # a second round works as the first
    rounds = ctx.allGather(str(index))
    assert rounds == ["0", "1"], rounds
    return [(index, arrived, passed)]


@pytest.mark.timeout(60)
def test_barrier_holds_every_task_until_the_slowest_arrives(bsc: SparkContext) -> None:
    rows = bsc.parallelize(range(2), 2).barrier().mapPartitionsWithIndex(_arrive_then_pass).collect()
    assert [r[0] for r in rows] == [0, 1]
    slowest_arrival = max(r[1] for r in rows)
    assert rows[0][1] - rows[1][1] > 0.2  # the fast task really arrived first...
    assert all(r[2] >= slowest_arrival for r in rows)  # ...and still waited for the slow one


def _task_addresses(it: Iterator[int]) -> list[list[str]]:
    return [[info.address for info in BarrierTaskContext.get().getTaskInfos()]]


@pytest.mark.timeout(60)
def test_task_infos_name_each_tasks_executor(bsc: SparkContext) -> None:
    lists = bsc.parallelize(range(4), 2).barrier().mapPartitions(_task_addresses).collect()
    assert len(lists) == 2 and lists[0] == lists[1]  # every task sees the same list
    addresses = lists[0]
    assert len(addresses) == 2
    hosts = [a.rsplit(":", 1)[0] for a in addresses]
    assert all(a.rsplit(":", 1)[1].isdigit() for a in addresses)
    if bsc.master.startswith("local-cluster"):
        assert sorted(hosts) == ["127.0.0.2", "127.0.0.3"]  # one task on each worker
    else:
        assert addresses[0] == addresses[1]  # local mode: one executor


def _fails_on_first_attempt(directory: str) -> Callable[[int, Iterator[int]], list[int]]:
    def run(index: int, it: Iterator[int]) -> list[int]:
        with open(os.path.join(directory, f"ran-{index}"), "a") as f:
            f.write("x\n")
        flag = os.path.join(directory, "failed-once")
        if index == 1 and not os.path.exists(flag):
            # fail only once partition 0 runs, so the rerun of partition 0 is the stage's doing
            deadline = time.monotonic() + 20
            while not os.path.exists(os.path.join(directory, "ran-0")) and time.monotonic() < deadline:
                time.sleep(0.01)
            open(flag, "w").close()
            raise ValueError("barrier task fails on its first attempt")
        BarrierTaskContext.get().barrier()
        return [index * 10 + sum(it)]
    return run


@pytest.mark.timeout(90)
def test_failed_task_reruns_the_whole_stage_and_the_job_succeeds(bsc: SparkContext, tmp_path: Any) -> None:
    rdd = bsc.parallelize(range(4), 2).barrier().mapPartitionsWithIndex(_fails_on_first_attempt(str(tmp_path)))
    assert rdd.collect() == [0 + 1, 10 + 5]
    # partition 0 was waiting in barrier() when partition 1 failed: it was killed and ran again
    assert (tmp_path / "ran-0").read_text().count("x") == 2
    assert (tmp_path / "ran-1").read_text().count("x") == 2


def _skips_the_barrier_once(directory: str) -> Callable[[int, Iterator[int]], list[int]]:
    def run(index: int, it: Iterator[int]) -> list[int]:
        first = not os.path.exists(os.path.join(directory, "timed-out"))
        if index == 0 and first:
            return [0]  # never calls barrier(): its partner waits in vain
        try:
            BarrierTaskContext.get().barrier()
        except BarrierStageError as e:
            with open(os.path.join(directory, "timed-out"), "w") as f:
                f.write(str(e))
            raise
        return [index]
    return run


@pytest.mark.timeout(90)
def test_sync_times_out_after_the_setting_and_the_stage_reruns(bsc: SparkContext, tmp_path: Any) -> None:
    start = time.monotonic()
    rdd = bsc.parallelize(range(2), 2).barrier().mapPartitionsWithIndex(_skips_the_barrier_once(str(tmp_path)))
    assert rdd.collect() == [0, 1]
    assert time.monotonic() - start >= 3.0
    text = (tmp_path / "timed-out").read_text()
    assert "only 1 of its 2 tasks called barrier()" in text and "spark.barrier.sync.timeout (3 s)" in text


def _always_fails(it: Iterator[int]) -> list[int]:
    if BarrierTaskContext.get().partitionId() == 0:
        raise KeyError("always")
    BarrierTaskContext.get().barrier()
    return [1]


@pytest.mark.timeout(90)
def test_stage_that_keeps_failing_fails_its_job_after_max_consecutive_attempts(bsc: SparkContext) -> None:
    with pytest.raises(KeyError) as info:
        bsc.parallelize(range(2), 2).barrier().mapPartitions(_always_fails).collect()
    assert "spark.stage.maxConsecutiveAttempts=3" in "\n".join(getattr(info.value, "__notes__", []))
    assert bsc.parallelize(range(10), 2).sum() == 45


@pytest.mark.timeout(60)
def test_more_tasks_than_slots_fails_clearly_and_normal_jobs_still_run(bsc: SparkContext) -> None:
    start = time.monotonic()
    with pytest.raises(BarrierStageError, match=r"3 tasks, which must all run at once.*only 2 task slots"):
        bsc.parallelize(range(3), 3).barrier().mapPartitions(lambda it: it).collect()
    assert time.monotonic() - start < 10  # at once, not after waiting for slots
    assert bsc.parallelize(range(100), 4).map(lambda x: x * 2).sum() == 9900
    with pytest.raises(BarrierStageError, match="1 of the 2 partitions"):
        bsc.parallelize(range(4), 2).barrier().mapPartitions(lambda it: it).first()


def _context_kind(it: Iterator[int]) -> list[str]:
    try:
        BarrierTaskContext.get()
    except RuntimeError as e:
        return [f"{type(TaskContext.get()).__name__}: {e}"]
    return ["barrier"]


@pytest.mark.timeout(60)
def test_barrier_context_only_in_barrier_tasks(bsc: SparkContext) -> None:
    assert bsc.parallelize([1], 1).mapPartitions(_context_kind).collect() == [
        "TaskContext: BarrierTaskContext.get() works only inside a task of a barrier stage "
        "(rdd.barrier().mapPartitions(...))"]
    assert bsc.parallelize([1, 2], 2).barrier().mapPartitions(_context_kind).collect() == ["barrier", "barrier"]
    with pytest.raises(RuntimeError, match="only inside a task of a barrier stage"):
        BarrierTaskContext.get()  # on the driver
