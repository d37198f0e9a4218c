"""sc.statusTracker(): PySpark's status API (getJobIdsForGroup, getActiveJobsIds,
getActiveStageIds, getJobInfo, getStageInfo) over the scheduler's real state, checked on
real jobs (running, cancelled, finished, with retried tasks and shuffles) as PySpark's
test_context.test_progress_api and examples/status_api_demo.py use it."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sparkctl.errors import JobCancelledError
from sparkctl.status import AppStatusStore, SparkJobInfo, SparkStageInfo, StatusTracker
from tests.clusters import wait_for

pytestmark = pytest.mark.timeout(60)


def _sleepy(x: int) -> int:
    time.sleep(60)
    return x


def _new_job_ids(tracker: StatusTracker, before: set[int], group: str | None = None) -> list[int]:
    return sorted(set(tracker.getJobIdsForGroup(group)) - before)


def test_running_job_then_cancelled(sc: Any) -> None:
    tracker = sc.statusTracker()
    rdd = sc.parallelize(range(4), 4).map(_sleepy)
    outcome: dict[str, Any] = {}

    def body() -> None:
        sc.setJobGroup("status-group", "a job to watch")
        try:
            rdd.count()
        except BaseException as e:  # noqa: BLE001
            outcome["error"] = e

    t = threading.Thread(target=body)
    t.start()
    try:
        job_ids = wait_for(lambda: tracker.getJobIdsForGroup("status-group"), 30, "the job to start")
        assert len(job_ids) == 1
        job_id = job_ids[0]
        assert tracker.getActiveJobsIds() == [job_id]
        job = tracker.getJobInfo(job_id)
        assert isinstance(job, SparkJobInfo) and job.jobId == job_id and job.status == "RUNNING"
        assert len(job.stageIds) == 1
        stage_id = job.stageIds[0]
        wait_for(lambda: tracker.getStageInfo(stage_id).numActiveTasks == 2, 30, "both slots to run a task")
        assert tracker.getActiveStageIds() == [stage_id]
        stage = tracker.getStageInfo(stage_id)
        assert isinstance(stage, SparkStageInfo)
        assert (stage.stageId, stage.currentAttemptId, stage.numTasks) == (stage_id, 0, rdd.getNumPartitions())
        assert (stage.numCompletedTasks, stage.numFailedTasks) == (0, 0)
        assert stage.name.startswith("count at ") and "test_status_tracker.py" in stage.name
        assert job_id not in tracker.getJobIdsForGroup(None)  # it has a group
    finally:
        sc.cancelAllJobs()
        t.join(30)
    assert isinstance(outcome.get("error"), JobCancelledError)
    assert tracker.getJobInfo(job_id).status == "FAILED"
    assert tracker.getActiveJobsIds() == []
    assert tracker.getActiveStageIds() == []
    assert tracker.getStageInfo(stage_id).numActiveTasks == 0


def test_finished_shuffle_job(sc: Any) -> None:
    tracker = sc.statusTracker()
    before = set(tracker.getJobIdsForGroup())
    pairs = sc.parallelize(range(100), 4).map(lambda x: (x % 3, x)).reduceByKey(lambda a, b: a + b, 2)
    assert sorted(pairs.collect()) == [(0, 1683), (1, 1617), (2, 1650)]
    [job_id] = _new_job_ids(tracker, before)
    job = tracker.getJobInfo(job_id)
    assert job.status == "SUCCEEDED"
    assert len(job.stageIds) == 2
    map_stage, result_stage = (tracker.getStageInfo(s) for s in job.stageIds)
    assert (map_stage.numTasks, map_stage.numCompletedTasks, map_stage.numActiveTasks) == (4, 4, 0)
    assert (result_stage.numTasks, result_stage.numCompletedTasks, result_stage.numActiveTasks) == (2, 2, 0)
    assert map_stage.numFailedTasks == result_stage.numFailedTasks == 0
    assert result_stage.name.startswith("collect at ")
    # a second action reuses the map output: as in Spark, its job has two new stages, and the
    # map stage is skipped (no task of it runs)
    before = set(tracker.getJobIdsForGroup())
    assert pairs.count() == 3
    [again] = _new_job_ids(tracker, before)
    stage_ids = tracker.getJobInfo(again).stageIds
    assert len(stage_ids) == 2 and not set(stage_ids) & set(job.stageIds)
    skipped, counted = (tracker.getStageInfo(s) for s in stage_ids)
    assert (skipped.numTasks, skipped.numCompletedTasks) == (4, 0)
    assert (counted.numTasks, counted.numCompletedTasks) == (2, 2)
    assert tracker.getActiveJobsIds() == [] and tracker.getActiveStageIds() == []
    assert tracker.getJobInfo(10**9) is None
    assert tracker.getStageInfo(10**9) is None


def _fail_first(marker: str) -> Any:
    def f(x: int) -> int:
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise ValueError("first attempt fails")
        return x
    return f


def test_failed_attempt_counted(sc: Any, tmp_path: Path) -> None:
    tracker = sc.statusTracker()
    before = set(tracker.getJobIdsForGroup())
    assert sc.parallelize([1, 2, 3], 1).map(_fail_first(str(tmp_path / "m"))).collect() == [1, 2, 3]
    [job_id] = _new_job_ids(tracker, before)
    stage = tracker.getStageInfo(tracker.getJobInfo(job_id).stageIds[0])
    assert (stage.numTasks, stage.numCompletedTasks, stage.numFailedTasks) == (1, 1, 1)


def test_failed_job_status(sc: Any) -> None:
    tracker = sc.statusTracker()
    before = set(tracker.getJobIdsForGroup())

    def boom(x: int) -> int:
        raise KeyError(x)

    with pytest.raises(KeyError):
        sc.parallelize([1], 1).map(boom).collect()
    [job_id] = _new_job_ids(tracker, before)
    assert tracker.getJobInfo(job_id).status == "FAILED"
    stage = tracker.getStageInfo(tracker.getJobInfo(job_id).stageIds[0])
    assert stage.numCompletedTasks == 0 and stage.numFailedTasks == 4  # spark.task.maxFailures


# ------------------------------------------------------------------ the store alone
class _Stage:
    def __init__(self, sid: int, n: int) -> None:
        self.id, self.num_partitions = sid, n


def test_store_forgets_oldest_finished_jobs() -> None:
    store = AppStatusStore(retained_jobs=2, retained_stages=2)
    for jid in range(3):
        store.job_start(jid, [_Stage(jid, 1)], {"spark.jobGroup.id": "g"} if jid else None, "x at y:1")
    store.job_end(0, True)
    store.job_end(1, False)
    # two finished and one running: the oldest finished job goes, the running one stays
    assert sorted(store.job_ids(any_group=True)) == [1, 2]
    assert store.running_job_ids() == [2]
    store.job_end(2, True)
    tracker = StatusTracker(store)
    assert tracker.getJobInfo(0) is None and tracker.getJobInfo(1).status == "FAILED"
    assert sorted(tracker.getJobIdsForGroup("g")) == [1, 2]
    assert tracker.getStageInfo(0) is None and tracker.getStageInfo(2).numTasks == 1


def test_store_keeps_a_running_job_past_the_limit() -> None:
    store = AppStatusStore(retained_jobs=1, retained_stages=1)
    store.job_start(0, [_Stage(0, 2)], None, "x at y:1")  # long-running
    for jid in (1, 2):
        store.job_start(jid, [_Stage(jid, 1)], None, "x at y:2")
        store.job_end(jid, True)
    assert store.job_ids() == [0] and store.running_job_ids() == [0]
    assert list(store.stages) == [0]
    store.job_end(0, True)
    assert store.job_info(0).status == "SUCCEEDED"
