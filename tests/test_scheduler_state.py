"""The DAG and task schedulers driven as state machines: events in, actions out, no sockets.

RDDs here are built on a context stand-in: building lineage needs ids, not a cluster.
"""
from __future__ import annotations

import itertools
import operator

import pytest

from sparkctl.conf import SparkConf
from sparkctl.errors import FetchFailedError
from sparkctl.rdd.sources import ParallelCollectionRDD
from sparkctl.scheduler.dag_scheduler import (ApplyAccumulators, CancelTaskSet, DAGScheduler, DeliverResult,
                                              JobFailed, JobSucceeded, ShuffleMapStage, SubmitTaskSet)
from sparkctl.scheduler.task_scheduler import (KillTask, Launch, TaskEnded, TaskScheduler, TaskSetAborted,
                                               TaskSetManager)
from sparkctl.storage.shuffle import MapStatus

pytestmark = pytest.mark.timeout(30)


class FakeContext:
    """Just enough of SparkContext to build lineage."""

    def __init__(self) -> None:
        self._rdd_ids = itertools.count()
        self._shuffle_ids = itertools.count()
        self._conf = SparkConf(loadDefaults=False)
        self.defaultParallelism = 2

    def _new_rdd_id(self) -> int:
        return next(self._rdd_ids)

    def _new_shuffle_id(self) -> int:
        return next(self._shuffle_ids)


def status(executor: str, n_reduce: int) -> MapStatus:
    return MapStatus(executor, "127.0.0.1", 0, "/nonexistent.data", "/nonexistent.index", tuple([1] * n_reduce))


def of(actions: list, cls: type) -> list:
    return [a for a in actions if isinstance(a, cls)]


@pytest.fixture
def ctx() -> FakeContext:
    return FakeContext()


def test_narrow_job_is_one_stage(ctx: FakeContext) -> None:
    rdd = ParallelCollectionRDD(ctx, list(range(10)), 3).map(lambda x: x + 1).filter(bool)
    dag = DAGScheduler()
    actions = dag.submit_job(0, rdd, list, [0, 1, 2])
    (submit,) = of(actions, SubmitTaskSet)
    assert submit.partitions == [0, 1, 2]
    assert not submit.stage.is_shuffle_map()
    assert len(dag.stages) == 1


def test_shuffle_cuts_stages_and_parent_runs_first(ctx: FakeContext) -> None:
    pairs = ParallelCollectionRDD(ctx, [(i % 3, i) for i in range(12)], 4)
    reduced = pairs.reduceByKey(operator.add, 2).mapValues(str)
    dag = DAGScheduler()
    actions = dag.submit_job(0, reduced, list, [0, 1])
    (submit,) = of(actions, SubmitTaskSet)
    assert isinstance(submit.stage, ShuffleMapStage)
    assert submit.partitions == [0, 1, 2, 3]
    map_stage = submit.stage
    # three map tasks finish: no reduce stage yet
    for p in range(3):
        assert not of(dag.task_ended(map_stage.id, 0, p, success=True, value=status("e1", 2)), SubmitTaskSet)
    # the last one releases the result stage
    actions = dag.task_ended(map_stage.id, 0, 3, success=True, value=status("e1", 2))
    (result_submit,) = of(actions, SubmitTaskSet)
    assert result_submit.partitions == [0, 1]
    rs = result_submit.stage
    dag.task_ended(rs.id, 0, 0, success=True, value=["a"])
    done = dag.task_ended(rs.id, 0, 1, success=True, value=["b"])
    assert [d.value for d in of(done, DeliverResult)] == [["b"]]
    assert of(done, JobSucceeded)


def test_second_job_skips_computed_shuffle_stage(ctx: FakeContext) -> None:
    reduced = ParallelCollectionRDD(ctx, [(1, 1), (2, 2)], 2).reduceByKey(operator.add, 2)
    dag = DAGScheduler()
    (submit,) = of(dag.submit_job(0, reduced, list, [0, 1]), SubmitTaskSet)
    for p in range(2):
        dag.task_ended(submit.stage.id, 0, p, success=True, value=status("e1", 2))
    rs = [s for s in dag.running if not s.is_shuffle_map()][0]
    for p in range(2):
        dag.task_ended(rs.id, 0, p, success=True, value=[])
    # job 1 on the same shuffle goes straight to its result stage
    (again,) = of(dag.submit_job(1, reduced.mapValues(str), list, [0, 1]), SubmitTaskSet)
    assert not again.stage.is_shuffle_map()


def test_fetch_failure_resubmits_only_the_missing_map_partition(ctx: FakeContext) -> None:
    reduced = ParallelCollectionRDD(ctx, [(i, i) for i in range(8)], 4).groupByKey(2)
    dag = DAGScheduler()
    (submit,) = of(dag.submit_job(0, reduced, list, [0, 1]), SubmitTaskSet)
    map_stage = submit.stage
    for p in range(4):
        actions = dag.task_ended(map_stage.id, 0, p, success=True, value=status(f"e{p % 2}", 2))
    (result_submit,) = of(actions, SubmitTaskSet)
    err = FetchFailedError(map_stage.dep.shuffle_id, 2, 0, "connection refused")
    actions = dag.task_ended(result_submit.stage.id, 0, 0, success=False, error=err)
    assert of(actions, CancelTaskSet)
    (resubmit,) = of(actions, SubmitTaskSet)
    assert resubmit.stage is map_stage and resubmit.partitions == [2] and resubmit.attempt == 1
    actions = dag.task_ended(map_stage.id, 1, 2, success=True, value=status("e3", 2))
    (result_again,) = of(actions, SubmitTaskSet)
    assert result_again.stage is result_submit.stage and result_again.partitions == [0, 1]


def test_executor_lost_during_map_stage_reruns_its_outputs(ctx: FakeContext) -> None:
    reduced = ParallelCollectionRDD(ctx, [(i, i) for i in range(4)], 2).groupByKey(2)
    dag = DAGScheduler()
    (submit,) = of(dag.submit_job(0, reduced, list, [0, 1]), SubmitTaskSet)
    dag.task_ended(submit.stage.id, 0, 0, success=True, value=status("lost", 2))
    dag.executor_lost("lost")
    actions = dag.task_ended(submit.stage.id, 0, 1, success=True, value=status("alive", 2))
    (rerun,) = of(actions, SubmitTaskSet)
    assert rerun.stage is submit.stage and rerun.partitions == [0]


def test_accumulator_updates_count_once_per_partition(ctx: FakeContext) -> None:
    rdd = ParallelCollectionRDD(ctx, [1, 2], 2)
    dag = DAGScheduler()
    (submit,) = of(dag.submit_job(0, rdd, list, [0, 1]), SubmitTaskSet)
    first = dag.task_ended(submit.stage.id, 0, 0, success=True, value=[1], accum_updates={7: 1})
    duplicate = dag.task_ended(submit.stage.id, 0, 0, success=True, value=[1], accum_updates={7: 1})
    assert len(of(first, ApplyAccumulators)) == 1
    assert not of(duplicate, ApplyAccumulators) and not of(duplicate, DeliverResult)
    failed = dag.task_ended(submit.stage.id, 0, 1, success=False, error=ValueError("x"), accum_updates={7: 1})
    assert not of(failed, ApplyAccumulators)


def test_task_set_failure_fails_the_job(ctx: FakeContext) -> None:
    rdd = ParallelCollectionRDD(ctx, [1], 1)
    dag = DAGScheduler()
    (submit,) = of(dag.submit_job(0, rdd, list, [0]), SubmitTaskSet)
    err = ValueError("boom")
    (failed,) = of(dag.task_set_failed(submit.stage.id, err), JobFailed)
    assert failed.error is err and not dag.jobs


# ---------------------------------------------------------------- task scheduler
def tsm(parts: int, preferred: dict[int, set[str]] | None = None, max_failures: int = 4, job: int = 0,
        stage: int = 0) -> TaskSetManager:
    return TaskSetManager(stage, 0, job, list(range(parts)), preferred, max_failures)


def launches(actions: list) -> list:
    return [a.attempt for a in actions if isinstance(a, Launch)]


def test_tasks_fill_free_slots_and_stream_as_slots_free() -> None:
    ts = TaskScheduler()
    ts.executor_added("e1", "h1", 2)
    started = launches(ts.submit(tsm(5)))
    assert [a.index for a in started] == [0, 1]
    more = launches(ts.task_succeeded(started[0].task_id, None, None, None))
    assert [a.index for a in more] == [2] and more[0].executor_id == "e1"


def test_locality_preference_is_honoured() -> None:
    ts = TaskScheduler()
    ts.executor_added("e1", "h1", 1)
    ts.executor_added("e2", "h2", 1)
    started = launches(ts.submit(tsm(2, preferred={1: {"e1"}})))
    by_exec = {a.executor_id: a.index for a in started}
    assert by_exec["e1"] == 1 and by_exec["e2"] == 0


def test_a_host_holding_the_input_is_preferred() -> None:
    """A split whose filesystem names the hosts holding its bytes (HDFS) goes to an executor
    on one of them."""
    ts = TaskScheduler()
    ts.executor_added("e1", "h1", 1)
    ts.executor_added("e2", "h2", 1)
    started = launches(ts.submit(tsm(3, preferred={2: {"host:h1"}, 0: {"host:h2"}})))
    by_exec = {a.executor_id: a.index for a in started}
    assert by_exec == {"e1": 2, "e2": 0}


def test_failed_task_retries_elsewhere_then_aborts_with_every_reason() -> None:
    ts = TaskScheduler(max_failures=3)
    ts.executor_added("e1", "h1", 1)
    ts.executor_added("e2", "h2", 1)
    manager = tsm(1, max_failures=3)
    (att,) = launches(ts.submit(manager))
    executors = [att.executor_id]
    for n in range(2):
        (att,) = launches(ts.task_failed(att.task_id, ValueError("bad"), "ValueError: bad"))
        executors.append(att.executor_id)
    assert executors[0] != executors[1]  # the retry went to the other executor
    actions = ts.task_failed(att.task_id, ValueError("bad"), "ValueError: bad")
    (aborted,) = of(actions, TaskSetAborted)
    assert isinstance(aborted.error, ValueError)
    note = "\n".join(aborted.error.__notes__)
    assert "failed 3 times" in note and note.count("ValueError: bad") == 3


def test_executor_lost_not_caused_by_the_app_requeues_without_counting_a_failure() -> None:
    ts = TaskScheduler(max_failures=1)
    ts.executor_added("e1", "h1", 1)
    manager = tsm(1, max_failures=1)
    (att,) = launches(ts.submit(manager))
    assert not launches(ts.executor_lost("e1", "worker lost", caused_by_app=False))
    (again,) = launches(ts.executor_added("e2", "h2", 1))
    assert again.index == att.index and again.executor_id == "e2"
    assert manager.failures == [0]


def test_executor_loss_counts_against_the_running_task() -> None:
    """A task that takes down every executor it runs on fails its job after maxFailures."""
    ts = TaskScheduler(max_failures=3)
    ts.executor_added("e0", "h", 2)
    manager = tsm(2, max_failures=3)
    first = launches(ts.submit(manager))
    assert [a.index for a in first] == [0, 1]
    ts.task_succeeded(first[1].task_id, "ok", None, None)
    att = first[0]
    for n in range(1, 3):  # lost twice: retried on the replacement each time
        actions = ts.executor_lost(att.executor_id, "connection closed (EOFError)")
        assert not of(actions, TaskSetAborted) and manager.failures == [n, 0]
        (att,) = launches(ts.executor_added(f"e{n}", "h", 2))
        assert att.index == 0 and att.attempt == n
    actions = ts.executor_lost(att.executor_id, "connection closed (EOFError)")
    (aborted,) = of(actions, TaskSetAborted)
    assert manager.zombie and manager.failures == [3, 0]
    text = str(aborted.error) + "\n".join(aborted.error.__notes__)
    assert type(aborted.error).__name__ == "ExecutorLostError"
    assert "failed 3 times (spark.task.maxFailures=3)" in text
    assert all(f"executor e{n} lost: connection closed (EOFError)" in text for n in range(3))
    assert not launches(ts.executor_added("e9", "h", 2))  # nothing left to run


def test_release_frees_the_slot_without_a_retry() -> None:
    ts = TaskScheduler()
    ts.executor_added("e1", "h1", 1)
    manager = tsm(2)
    (att,) = launches(ts.submit(manager))
    manager.zombie = True  # its job was failed
    assert not launches(ts.release(att.task_id))
    assert ts.executors["e1"].free == 1 and ts.running_tasks() == 0 and manager.failures == [0, 0]


def test_fetch_failure_marks_task_set_zombie() -> None:
    ts = TaskScheduler()
    ts.executor_added("e1", "h1", 1)
    manager = tsm(3)
    (att,) = launches(ts.submit(manager))
    err = FetchFailedError(0, 1, 0, "gone")
    actions = ts.task_failed(att.task_id, err, "fetch", fetch_failed=True)
    (ended,) = of(actions, TaskEnded)
    assert ended.error is err and manager.zombie and not launches(actions)


def test_cancel_kills_running_tasks() -> None:
    ts = TaskScheduler()
    ts.executor_added("e1", "h1", 2)
    manager = tsm(4)
    started = launches(ts.submit(manager))
    kills = of(ts.cancel(0, 0, "job cancelled"), KillTask)
    assert sorted(k.task_id for k in kills) == sorted(a.task_id for a in started)


def test_fifo_across_jobs() -> None:
    ts = TaskScheduler()
    ts.executor_added("e1", "h1", 1)
    first = tsm(2, job=0, stage=0)
    second = tsm(2, job=1, stage=1)
    (a,) = launches(ts.submit(first))
    ts.submit(second)
    (b,) = launches(ts.task_succeeded(a.task_id, None, None, None))
    assert b.tsm is first


def test_speculation_relaunches_a_straggler_elsewhere_and_first_finish_wins() -> None:
    ts = TaskScheduler()
    ts.executor_added("e1", "h1", 2)
    ts.executor_added("e2", "h2", 2)
    manager = tsm(4)
    started = launches(ts.submit(manager, now=0.0))
    assert len(started) == 4
    slow = started[0]
    for att in started[1:]:
        ts.task_succeeded(att.task_id, None, None, None, now=1.0)
    assert not launches(ts.check_speculation(1.2, quantile=0.75, multiplier=1.5))  # not slow enough yet
    (copy,) = launches(ts.check_speculation(3.0, quantile=0.75, multiplier=1.5))
    assert copy.index == slow.index and copy.executor_id != slow.executor_id and copy.attempt == 1
    assert not launches(ts.check_speculation(3.5, quantile=0.75, multiplier=1.5))  # one copy only
    actions = ts.task_succeeded(copy.task_id, "fast", None, None, now=3.6)
    (ended,) = of(actions, TaskEnded)
    assert ended.value == "fast"
    (kill,) = of(actions, KillTask)
    assert kill.task_id == slow.task_id
    # the loser's late result changes nothing
    assert not of(ts.task_succeeded(slow.task_id, "slow", None, None, now=4.0), TaskEnded)
