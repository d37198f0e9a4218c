"""Barrier stages in the scheduler state machines and the coordinator: events in, actions
out, no sockets. The rules are Spark's barrier execution mode: a barrier task set starts
all its tasks at once or none, fails at once when the cluster can never hold it, and one
failed task reruns the whole stage (up to spark.stage.maxConsecutiveAttempts)."""
from __future__ import annotations

import pytest

from sparkctl.errors import BarrierStageError, ExecutorLostError
from sparkctl.rdd.barrier import is_barrier
from sparkctl.rdd.sources import ParallelCollectionRDD
from sparkctl.scheduler.barrier import BarrierCoordinator
from sparkctl.scheduler.dag_scheduler import DAGScheduler, DeliverResult, JobFailed, JobSucceeded, SubmitTaskSet
from sparkctl.scheduler.task_scheduler import (BarrierTaskSetFailed, KillTask, Launch, TaskEnded, TaskScheduler,
                                               TaskSetAborted, TaskSetManager)
from tests.test_scheduler_state import FakeContext, of

pytestmark = pytest.mark.timeout(30)


def barrier_set(stage_id: int, n: int, attempt: int = 0, job_id: int = 0) -> TaskSetManager:
    return TaskSetManager(stage_id, attempt, job_id, list(range(n)), barrier=True)


def two_executors(cores: int = 1) -> TaskScheduler:
    ts = TaskScheduler()
    ts.executor_added("e1", "127.0.0.2", cores)
    ts.executor_added("e2", "127.0.0.3", cores)
    return ts


# ------------------------------------------------------------------ task scheduler
def test_barrier_tasks_start_together_only_when_all_fit() -> None:
    ts = two_executors()
    (busy,) = of(ts.submit(TaskSetManager(0, 0, 0, [0])), Launch)  # one of the two slots is taken
    assert of(ts.submit(barrier_set(1, 2, job_id=1)), Launch) == []  # one free slot: no task starts
    assert ts.running_tasks() == 1
    actions = ts.task_succeeded(busy.attempt.task_id, "v", None, None)
    launches = of(actions, Launch)
    assert sorted(a.attempt.index for a in launches) == [0, 1]  # both at once, on different executors
    assert sorted(a.attempt.executor_id for a in launches) == ["e1", "e2"]


def test_barrier_set_waits_while_ordinary_sets_use_free_slots() -> None:
    """A barrier set that does not fit does not block the slots for later task sets."""
    ts = TaskScheduler()
    ts.executor_added("e1", "h", 2)
    ts.submit(TaskSetManager(0, 0, 0, [0]))
    assert not of(ts.submit(barrier_set(1, 2, job_id=1)), Launch)
    (later,) = of(ts.submit(TaskSetManager(2, 0, 2, [0])), Launch)
    assert later.attempt.tsm.stage_id == 2


def test_barrier_set_larger_than_the_cluster_fails_at_once() -> None:
    ts = two_executors()
    (aborted,) = ts.submit(barrier_set(0, 3))
    assert isinstance(aborted, TaskSetAborted)
    assert isinstance(aborted.error, BarrierStageError)
    assert "3 tasks" in str(aborted.error) and "only 2 task slots" in str(aborted.error)
    assert ts.task_sets == [] and ts.running_tasks() == 0


def test_expected_cores_count_executors_not_yet_registered() -> None:
    ts = TaskScheduler()
    ts.expected_cores = 4
    ts.executor_added("e1", "h", 2)
    assert ts.submit(barrier_set(0, 4)) == []  # fits the cluster once the others are back: waits
    assert not ts.task_sets[0].zombie
    launches = of(ts.executor_added("e2", "h", 2), Launch)
    assert len(launches) == 4


def test_one_failed_barrier_task_kills_the_others_and_ends_the_attempt() -> None:
    ts = two_executors()
    launches = of(ts.submit(barrier_set(0, 2)), Launch)
    t0, t1 = (a.attempt.task_id for a in sorted(launches, key=lambda a: a.attempt.index))
    actions = ts.task_failed(t0, ValueError("boom"), "ValueError: boom")
    (kill,) = of(actions, KillTask)
    assert kill.task_id == t1
    (failed,) = of(actions, BarrierTaskSetFailed)
    assert (failed.stage_id, failed.stage_attempt) == (0, 0) and isinstance(failed.error, ValueError)
    assert not of(actions, Launch)  # never retried inside the same attempt
    # the killed task comes back: nothing more happens, the slot is free again
    assert ts.task_failed(t1, KeyboardInterrupt(), "killed", killed=True) == []
    assert ts.running_tasks() == 0 and ts.task_sets == []


def test_lost_executor_fails_the_barrier_attempt() -> None:
    ts = two_executors()
    ts.submit(barrier_set(0, 2))
    actions = ts.executor_lost("e1", "worker died", caused_by_app=False)
    (failed,) = of(actions, BarrierTaskSetFailed)
    assert isinstance(failed.error, ExecutorLostError)
    assert len(of(actions, KillTask)) == 1


def test_barrier_set_is_never_speculated() -> None:
    ts = TaskScheduler()
    ts.executor_added("e1", "h", 4)
    launches = of(ts.submit(barrier_set(0, 3)), Launch)
    for a in launches[:2]:
        ts.task_succeeded(a.attempt.task_id, None, None, None, now=0.1)
    assert ts.check_speculation(100.0, 0.5, 1.5) == []


# ------------------------------------------------------------------ DAG scheduler
def barrier_rdd(ctx: FakeContext, n: int = 2):
    return ParallelCollectionRDD(ctx, list(range(2 * n)), n).barrier().mapPartitions(lambda it: it)


def test_barrier_lineage_is_found_through_later_maps() -> None:
    ctx = FakeContext()
    b = barrier_rdd(ctx)
    assert is_barrier(b) and is_barrier(b.map(str).filter(bool))
    assert not is_barrier(ParallelCollectionRDD(ctx, [1], 1).map(str))
    assert not is_barrier(b.map(lambda x: (x, x)).reduceByKey(max))  # the shuffle starts a new stage


def run_attempt(dag: DAGScheduler, submit: SubmitTaskSet, fail: int | None) -> list:
    """Feed the DAG scheduler one attempt of a barrier result stage through a real task
    scheduler: every task succeeds but ``fail``."""
    ts = two_executors()
    tsm = TaskSetManager(submit.stage.id, submit.attempt, submit.job_id, submit.partitions, barrier=submit.barrier)
    launches = sorted(of(ts.submit(tsm), Launch), key=lambda a: a.attempt.index)
    assert len(launches) == len(submit.partitions)
    out: list = []
    for a in launches:
        if a.attempt.index == fail:
            continue
        for ev in of(ts.task_succeeded(a.attempt.task_id, f"p{a.attempt.index}", None, None), TaskEnded):
            out += dag.task_ended(ev.stage_id, ev.stage_attempt, ev.partition, success=True, value=ev.value)
    if fail is not None:
        for ev in of(ts.task_failed(launches[fail].attempt.task_id, RuntimeError("x"), "x"), BarrierTaskSetFailed):
            out += dag.barrier_stage_failed(ev.stage_id, ev.stage_attempt, ev.error, ev.reason)
    return out


def test_failed_barrier_task_reruns_the_whole_stage_then_the_job_succeeds() -> None:
    ctx = FakeContext()
    dag = DAGScheduler()
    (submit,) = of(dag.submit_job(0, barrier_rdd(ctx), list, [0, 1]), SubmitTaskSet)
    assert submit.barrier and submit.partitions == [0, 1]
    actions = run_attempt(dag, submit, fail=1)  # partition 0 succeeded, partition 1 failed
    assert not of(actions, JobSucceeded)
    (again,) = of(actions, SubmitTaskSet)
    assert again.attempt == 1 and again.partitions == [0, 1]  # partition 0 too: the whole stage
    # a late success of the abandoned attempt counts for nothing
    assert dag.task_ended(submit.stage.id, 0, 1, success=True, value="stale") == []
    actions = run_attempt(dag, again, fail=None)
    assert [a.value for a in of(actions, DeliverResult)] == ["p0", "p1"]
    assert of(actions, JobSucceeded)


def test_barrier_stage_gives_up_after_max_consecutive_attempts() -> None:
    ctx = FakeContext()
    dag = DAGScheduler(max_stage_attempts=2)
    (submit,) = of(dag.submit_job(0, barrier_rdd(ctx), list, [0, 1]), SubmitTaskSet)
    (again,) = of(run_attempt(dag, submit, fail=0), SubmitTaskSet)
    actions = run_attempt(dag, again, fail=0)
    (failed,) = of(actions, JobFailed)
    assert not of(actions, SubmitTaskSet)
    assert "spark.stage.maxConsecutiveAttempts=2" in "".join(getattr(failed.error, "__notes__", []))


def test_barrier_map_stage_rerun_replaces_every_output() -> None:
    ctx = FakeContext()
    dag = DAGScheduler()
    reduced = barrier_rdd(ctx).map(lambda x: (x, 1)).reduceByKey(max, 1)
    (submit,) = of(dag.submit_job(0, reduced, list, [0]), SubmitTaskSet)
    assert submit.barrier and submit.stage.is_shuffle_map()
    from tests.test_scheduler_state import status
    dag.task_ended(submit.stage.id, 0, 0, success=True, value=status("e1", 1))
    (again,) = of(dag.barrier_stage_failed(submit.stage.id, 0, RuntimeError("x"), "x"), SubmitTaskSet)
    assert again.partitions == [0, 1]  # not only the missing one


def test_partial_jobs_and_partition_changes_on_barrier_rdds_fail_clearly() -> None:
    ctx = FakeContext()
    dag = DAGScheduler()
    b = barrier_rdd(ctx)
    (failed,) = dag.submit_job(0, b, list, [0])  # take()/first() compute only some partitions
    assert isinstance(failed, JobFailed) and isinstance(failed.error, BarrierStageError)
    assert "1 of the 2 partitions" in str(failed.error)
    (failed,) = dag.submit_job(1, b.coalesce(1), list, [0])
    assert isinstance(failed, JobFailed) and "partition count" in str(failed.error)
    assert of(dag.submit_job(2, b.map(str), list, [0, 1]), SubmitTaskSet)


# ------------------------------------------------------------------ coordinator
def test_all_gather_answers_everyone_when_the_last_arrives_in_partition_order() -> None:
    c = BarrierCoordinator()
    key = (3, 0)
    assert c.request(key, 3, 2, "e2", 12, 0, "allGather", "c", now=0.0) == []
    assert c.request(key, 3, 0, "e1", 10, 0, "allGather", "a", now=0.1) == []
    replies = c.request(key, 3, 1, "e1", 11, 0, "allGather", "b", now=0.2)
    assert sorted(r.task_id for r in replies) == [10, 11, 12]
    assert all(r.messages == ["a", "b", "c"] and r.error is None and r.epoch == 0 for r in replies)
    # the next round starts at epoch 1
    assert c.request(key, 3, 0, "e1", 10, 1, "barrier", "", now=0.3) == []
    assert c.states[key].epoch == 1


def test_mixed_sync_methods_or_epochs_fail_the_round() -> None:
    c = BarrierCoordinator()
    c.request((0, 0), 2, 0, "e1", 1, 0, "barrier", "", now=0.0)
    replies = c.request((0, 0), 2, 1, "e1", 2, 0, "allGather", "x", now=0.0)
    assert sorted(r.task_id for r in replies) == [1, 2] and all("different sync methods" in r.error for r in replies)
    c.request((1, 0), 2, 0, "e1", 3, 0, "barrier", "", now=0.0)
    replies = c.request((1, 0), 2, 1, "e1", 4, 1, "barrier", "", now=0.0)
    assert sorted(r.task_id for r in replies) == [3, 4] and all("same number of times" in r.error for r in replies)


def test_sync_times_out_and_ended_attempts_release_their_waiters() -> None:
    c = BarrierCoordinator(timeout=5.0)
    c.request((0, 0), 2, 0, "e1", 1, 0, "barrier", "", now=10.0)
    assert c.next_deadline() == 15.0
    assert c.expire(14.9) == []
    (late,) = c.expire(15.0)
    assert late.task_id == 1 and "1 of its 2 tasks" in late.error and "spark.barrier.sync.timeout" in late.error
    assert c.next_deadline() is None
    c.request((2, 0), 2, 0, "e1", 7, 0, "barrier", "", now=0.0)
    (ended,) = c.stage_attempt_ended((2, 0))
    assert ended.task_id == 7 and ended.error
    assert (2, 0) not in c.states
