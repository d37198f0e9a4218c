"""An executor of one core runs its task slot in its own main thread
(``spark.executor.inProcessSlot``): real executors, as real processes on loopback.

The slot is the same loop over the same socket pair as a forked one; what has to hold is
what a slot process gave for free: its tasks can be killed, the executor still stops
when its application does (a task running or not), and nothing is left behind.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

from sparkctl import SparkConf, SparkContext
from sparkctl.errors import JobCancelledError
from sparkctl.executor.slot import executor_pid
from tests.clusters import pid_alive, proc_stats, wait_for

pytestmark = pytest.mark.timeout(120)


def _children(pid: int) -> list[int]:
    return [child for child, state, ppid, _ in proc_stats() if ppid == pid and state != b"Z"]


def _sleepy(x: int) -> int:
    time.sleep(60)
    return x


def _executor_pids(sc: SparkContext) -> set[int]:
    return {e.pid for e in sc._runtime.executors.values()}


@pytest.mark.parametrize("inline", [True, False])
def test_one_core_executors_run_tasks_in_their_own_process_unless_told_otherwise(inline: bool) -> None:
    conf = SparkConf().set("spark.executor.inProcessSlot", str(inline).lower())
    with SparkContext("local-cluster[2,1,512]", "inline-slot", conf=conf) as sc:
        rdd = sc.parallelize(range(1000), 4)
        assert sorted(rdd.map(lambda x: (x % 7, x)).reduceByKey(lambda a, b: a + b).collect()) == sorted(
            {k: sum(x for x in range(1000) if x % 7 == k) for k in range(7)}.items())
        executors = _executor_pids(sc)
        assert len(executors) == 2
        ran_in = set(rdd.map(lambda _: os.getpid()).collect())
        assert set(rdd.map(lambda _: executor_pid()).collect()) == executors
        if inline:
            assert ran_in == executors and not any(_children(pid) for pid in executors)
        else:
            assert not ran_in & executors and all(len(_children(pid)) == 1 for pid in executors)


def test_a_task_in_an_inline_slot_is_killed_and_its_executor_runs_the_next_job(
        assert_no_child_processes: Any) -> None:
    with SparkContext("local-cluster[1,1,512]", "inline-kill") as sc:
        executors = _executor_pids(sc)
        outcome: dict[str, Any] = {}

        def body() -> None:
            try:
                outcome["result"] = sc.parallelize([1], 1).map(_sleepy).collect()
            except BaseException as e:  # noqa: BLE001
                outcome["error"] = e

        thread = threading.Thread(target=body)
        thread.start()
        wait_for(lambda: sc._runtime.tasks.running_tasks() == 1, 30, "the task to run")
        time.sleep(0.3)  # in its sleep
        started = time.monotonic()
        sc.cancelAllJobs()
        thread.join(30)
        assert not thread.is_alive() and isinstance(outcome.get("error"), JobCancelledError)
        # killed, not waited for, and by the same executor that runs the next job
        assert sc.parallelize(range(10), 2).sum() == 45
        assert time.monotonic() - started < 10
        assert _executor_pids(sc) == executors and all(pid_alive(pid) for pid in executors)
    assert_no_child_processes()


@pytest.mark.parametrize("inline", [True, False])
def test_an_executor_whose_task_still_runs_ends_by_itself_with_its_application(
        inline: bool, assert_no_child_processes: Any) -> None:
    conf = SparkConf().set("spark.executor.inProcessSlot", str(inline).lower())
    sc = SparkContext("local[1]", "inline-stop", conf=conf)
    try:
        proc = sc._backend.proc  # type: ignore[union-attr]
        threading.Thread(target=_quietly, args=(lambda: sc.parallelize([1], 1).map(_sleepy).count(),),
                         daemon=True).start()
        wait_for(lambda: sc._runtime.tasks.running_tasks() == 1, 30, "the task to run")
    finally:
        sc.stop()
    # its task had a minute to go: the executor gave it 2 s and exited, before the driver's
    # grace (5 s) ran out and it sent SIGTERM, which would have made the code -15
    assert proc.returncode == 0
    assert_no_child_processes()


def _quietly(job: Any) -> None:
    try:
        job()
    except BaseException:  # noqa: BLE001 - the application is stopped under it
        pass
