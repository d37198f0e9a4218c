"""Task resources: ``spark.task.cpus`` reserves that many cores per task (an executor of
4 cores runs 2 tasks at once with 2 cpus a task, TaskContext.cpus() says 2, a setting
larger than an executor's cores is refused) and ``spark.executor.pyspark.memory`` limits
the address space of the task slots (a task past it fails with MemoryError naming the
setting; the slot lives on)."""
from __future__ import annotations

import os
import resource
import time
from typing import Any

import pytest

from sparkctl import SparkConf, SparkContext
from sparkctl.errors import ConfigError
from sparkctl.scheduler.task_scheduler import Launch, TaskScheduler, TaskSetManager
from sparkctl.taskcontext import TaskContext

pytestmark = pytest.mark.timeout(90)


# ------------------------------------------------------------------ the task scheduler alone
def _launches(actions: list[Any]) -> list[Launch]:
    return [a for a in actions if isinstance(a, Launch)]


def test_offers_count_cores_per_task() -> None:
    ts = TaskScheduler(cpus_per_task=2)
    assert _launches(ts.executor_added("small", "h1", 1)) == []
    assert _launches(ts.executor_added("big", "h2", 4)) == []
    first = _launches(ts.submit(TaskSetManager(0, 0, 0, list(range(5)))))
    assert [a.attempt.executor_id for a in first] == ["big", "big"]  # 4 cores / 2 a task; 1 core holds none
    more = _launches(ts.task_succeeded(first[0].attempt.task_id, None, None, None))
    assert len(more) == 1 and more[0].attempt.executor_id == "big"
    assert ts.executors["big"].free == 0 and ts.executors["small"].free == 1


# ------------------------------------------------------------------ real executors
def _task_window(sleep: float) -> Any:
    def f(it: Any) -> Any:
        start = time.time()
        time.sleep(sleep)  # the work whose overlap is measured
        tc = TaskContext.get()
        yield (tc.cpus() if tc is not None else None, resource.getrlimit(resource.RLIMIT_AS)[0], os.getppid(), start,
               time.time())
    return f


def _max_overlap(windows: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in windows] + [(e, -1) for _, e in windows])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def _conf(master: str, **settings: str) -> SparkConf:
    conf = SparkConf().setMaster(master).setAppName("task-resources").set("spark.ui.showConsoleProgress", "false")
    for key, value in settings.items():
        conf.set(key.replace("_", "."), value)
    return conf


def test_local_executor_runs_cores_over_cpus_tasks_at_once() -> None:
    with SparkContext(conf=_conf("local[4]", spark_task_cpus="2")) as sc:
        rows = sc.parallelize(range(6), 6).mapPartitions(_task_window(0.4)).collect()
    assert [r[0] for r in rows] == [2] * 6
    # no spark.executor.pyspark.memory: the slots keep the limit they inherited
    assert all(r[1] == resource.getrlimit(resource.RLIMIT_AS)[0] for r in rows)
    assert _max_overlap([(r[3], r[4]) for r in rows]) == 2


def test_task_cpus_over_executor_cores_refused() -> None:
    with pytest.raises(ConfigError, match=r"spark\.task\.cpus=3 is more than the 2 cores"):
        SparkContext(conf=_conf("local[2]", spark_task_cpus="3"))
    assert SparkContext._active is None
    with pytest.raises(ConfigError, match=r"spark\.task\.cpus=2 is more than the 1 cores .*local-cluster"):
        SparkContext(conf=_conf("local-cluster[2,1,512]", spark_task_cpus="2"))
    assert SparkContext._active is None


@pytest.mark.timeout(120)
def test_cluster_executors_run_one_two_cpu_task_at_a_time() -> None:
    """Both settings reach executors on workers (through the master and the worker)."""
    conf = _conf("local-cluster[2,2,512]", spark_task_cpus="2", spark_executor_pyspark_memory="512m")
    with SparkContext(conf=conf) as sc:
        rows = sc.parallelize(range(6), 6).mapPartitions(_task_window(0.3)).collect()
    assert [r[0] for r in rows] == [2] * 6
    assert all(r[1] != resource.RLIM_INFINITY for r in rows)
    by_executor: dict[int, list[tuple[float, float]]] = {}
    for _, _, executor_pid, start, end in rows:
        by_executor.setdefault(executor_pid, []).append((start, end))
    assert all(_max_overlap(w) == 1 for w in by_executor.values()), by_executor


# ------------------------------------------------------------------ spark.executor.pyspark.memory
def _allocate(n: int) -> Any:
    def f(it: Any) -> Any:
        block = bytearray(n)
        yield len(block), os.getpid()
    return f


def _address_limit(it: Any) -> Any:
    yield resource.getrlimit(resource.RLIMIT_AS)[0], os.getpid()


def test_pyspark_memory_limits_task_slots() -> None:
    conf = _conf("local[2,1]", spark_executor_pyspark_memory="512m")
    with SparkContext(conf=conf) as sc:
        limits = sc.parallelize(range(2), 2).mapPartitions(_address_limit).collect()
        assert all(limit != resource.RLIM_INFINITY and limit > 256 << 20 for limit, _ in limits)
        slots = {pid for _, pid in limits}
        with pytest.raises(MemoryError, match=r"spark\.executor\.pyspark\.memory=512m"):
            sc.parallelize([0], 1).mapPartitions(_allocate(4 << 30)).collect()
        # the slot lives on, and a task within its share runs
        after = sc.parallelize(range(2), 2).mapPartitions(_allocate(64 << 20)).collect()
        assert [n for n, _ in after] == [64 << 20] * 2
        assert {pid for _, pid in after} <= slots
