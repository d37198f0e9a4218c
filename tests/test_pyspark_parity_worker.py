"""Task process behaviours that PySpark's test_worker.py checks, written afresh against
sparkctl: after a task fails, raises SystemExit, or its input file disappears, the same
executor runs the next job; accumulators stay separate across jobs that reuse the task
processes; a non-ASCII error message reaches the driver; a job that stops reading early
(first) leaves the slot usable; task processes are reused between jobs.
"""
from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from tests.clusters import wait_for


def slot_pids(sc: Any) -> set[int]:
    """The pids of the shared context's two task processes: jobs of two tasks until both
    slots have run one (a quick task may leave the other slot idle)."""
    seen: set[int] = set()

    def both() -> bool:
        seen.update(sc.parallelize(range(2), 2).map(lambda _x: os.getpid()).collect())
        return len(seen) >= 2

    wait_for(both, timeout=20, what="both task slots to run a task")
    return seen


def _next_job_works(sc: Any) -> None:
    assert sc.parallelize(range(100), 1).map(str).count() == 100


@pytest.mark.timeout(30)
def test_next_job_runs_after_a_task_raises(sc: Any) -> None:
    def fail(_x: int) -> None:
        raise RuntimeError("task failed on purpose")

    with pytest.raises(RuntimeError, match="task failed on purpose"):
        sc.parallelize(range(100), 1).foreach(fail)
    _next_job_works(sc)


@pytest.mark.timeout(30)
def test_next_job_runs_after_a_task_raises_system_exit(sc: Any) -> None:
    def leave(_x: int) -> None:
        raise SystemExit()

    with pytest.raises(Exception):
        sc.parallelize(range(100), 1).foreach(leave)
    _next_job_works(sc)


@pytest.mark.timeout(30)
def test_next_job_runs_after_the_input_file_went(sc: Any, tmp_path: Any) -> None:
    path = tmp_path / "gone.txt"
    path.write_bytes(b"Hello World!")
    rdd = sc.textFile(str(path), 1).filter(lambda _x: True)
    assert rdd.count() == 1
    os.unlink(path)
    with pytest.raises(Exception):
        rdd.count()
    _next_job_works(sc)


@pytest.mark.timeout(30)
def test_accumulators_stay_separate_when_task_processes_are_reused(sc: Any) -> None:
    first = sc.accumulator(0)
    sc.parallelize(range(100), 20).foreach(lambda x: first.add(x))
    assert first.value == sum(range(100))
    second = sc.accumulator(0)
    sc.parallelize(range(100), 20).foreach(lambda x: second.add(x))
    assert second.value == sum(range(100))
    assert first.value == sum(range(100))


@pytest.mark.timeout(30)
def test_slot_is_usable_after_first_stops_reading_early(sc: Any) -> None:
    rdd = sc.parallelize(range(100_000), 1)
    assert rdd.first() == 0
    assert rdd.count() == 100_000


@pytest.mark.timeout(30)
def test_non_ascii_error_message_reaches_the_driver(sc: Any) -> None:
    def fail(_x: int) -> None:
        raise RuntimeError("exception with \u4e2d and \xd6\xd0")

    with pytest.raises(RuntimeError, match="exception with \u4e2d and \xd6\xd0"):
        sc.parallelize([1]).map(fail).count()


@pytest.mark.timeout(30)
def test_task_processes_are_reused_between_jobs(sc: Any) -> None:
    before = slot_pids(sc)
    after = set(sc.parallelize(range(20), 8).map(lambda _x: os.getpid()).collect())
    assert after <= before
    assert os.getpid() not in before  # tasks run outside the driver


@pytest.mark.timeout(60)
def test_next_job_runs_after_idle_task_processes_are_killed(sc: Any) -> None:
    # SPARK-47565: a task process that dies while idle is replaced, not handed the next task
    rdd = sc.parallelize(range(20), 4)
    pids = slot_pids(sc)
    killed = sorted(pids)[1:]
    for pid in killed:
        os.kill(pid, signal.SIGTERM)
    # the next jobs run at once, whether a task reaches a killed slot or its replacement
    assert sorted(rdd.map(lambda x: x * 2).collect()) == [x * 2 for x in range(20)]
    assert rdd.count() == 20
    assert not set(killed) & slot_pids(sc)
