"""Job tags and inheritable threads, with PySpark's semantics: tags belong to the thread
that set them (as job groups do), jobs carry them to the status tracker and to their tasks,
cancelJobsWithTag cancels exactly the tagged running jobs, and InheritableThread /
inheritable_thread_target hand the creating thread's local properties on."""
from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from sparkctl.errors import JobCancelledError
from sparkctl.taskcontext import TaskContext
from sparkctl.util.threads import InheritableThread, inheritable_thread_target
from tests.clusters import wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _clean_properties(sc: Any) -> Any:
    yield
    sc.clearJobTags()
    for key in ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel"):
        sc.setLocalProperty(key, None)


def _sleepy(x: int) -> int:
    time.sleep(60)
    return x


def _task_property(key: str) -> Any:
    def f(it: Any) -> Any:
        tc = TaskContext.get()
        yield tc.getLocalProperty(key) if tc is not None else "no task context"
    return f


def test_add_remove_get_clear(sc: Any) -> None:
    assert sc.getJobTags() == set()
    sc.addJobTag("a")
    sc.addJobTag("b")
    sc.addJobTag("a")
    assert sc.getJobTags() == {"a", "b"}
    sc.removeJobTag("a")
    sc.removeJobTag("never-added")
    assert sc.getJobTags() == {"b"}
    sc.clearJobTags()
    assert sc.getJobTags() == set()
    for bad in ("", "x,y"):
        with pytest.raises(ValueError):
            sc.addJobTag(bad)
        with pytest.raises(ValueError):
            sc.cancelJobsWithTag(bad)


def test_tags_are_thread_local(sc: Any) -> None:
    sc.addJobTag("main-only")
    seen: dict[str, Any] = {}
    t = threading.Thread(target=lambda: seen.update(tags=sc.getJobTags()))
    t.start()
    t.join(10)
    assert seen["tags"] == set()
    assert sc.getJobTags() == {"main-only"}


def test_jobs_carry_their_tags(sc: Any) -> None:
    tracker = sc.statusTracker()
    sc.addJobTag("t1")
    sc.addJobTag("t2")
    assert sc.parallelize(range(4), 2).mapPartitions(_task_property("spark.job.tags")).collect() == ["t1,t2"] * 2
    tagged = tracker.getJobIdsForTag("t1")
    assert len(tagged) == 1 and tracker.getJobIdsForTag("t2") == tagged
    assert tracker.getJobInfo(tagged[0]).status == "SUCCEEDED"
    sc.removeJobTag("t1")
    assert sc.parallelize(range(3)).count() == 3
    assert tracker.getJobIdsForTag("t1") == tagged  # the later job is not tagged t1
    assert len(tracker.getJobIdsForTag("t2")) == 2


def _start_tagged_job(sc: Any, tag: str) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def body() -> None:
        sc.addJobTag(tag)
        try:
            outcome["result"] = sc.parallelize(range(2), 2).map(_sleepy).collect()
        except BaseException as e:  # noqa: BLE001
            outcome["error"] = e

    t = threading.Thread(target=body)
    t.start()
    wait_for(lambda: sc.statusTracker().getJobIdsForTag(tag) and sc._runtime.tasks.running_tasks() == 2, 30,
             "the tagged job's tasks to run")
    return t, outcome


def test_cancel_jobs_with_tag(sc: Any) -> None:
    t, outcome = _start_tagged_job(sc, "slow")
    try:
        sc.cancelJobsWithTag("other")  # no running job has it
        assert sc.statusTracker().getActiveJobsIds() == sc.statusTracker().getJobIdsForTag("slow")
        started = time.monotonic()
        sc.cancelJobsWithTag("slow")
        t.join(30)
    finally:
        sc.cancelAllJobs()
        t.join(30)
    error = outcome.get("error")
    assert isinstance(error, JobCancelledError) and "slow" in str(error)
    assert time.monotonic() - started < 10  # the running tasks were stopped, not waited for
    assert sc.parallelize(range(10), 2).sum() == 45  # the slots are free again


def test_inheritable_thread_takes_properties_at_start(sc: Any) -> None:
    sc.setJobGroup("inherited-group", "described", interruptOnCancel=True)
    sc.addJobTag("inherited-tag")
    go = threading.Event()
    seen: dict[str, Any] = {}

    def body() -> None:
        go.wait(10)
        seen["tags"] = sc.getJobTags()
        seen["group"] = sc.getLocalProperty("spark.jobGroup.id")
        seen["description"] = sc.getLocalProperty("spark.job.description")
        seen["in task"] = sc.parallelize([0], 1).mapPartitions(_task_property("spark.jobGroup.id")).collect()

    t = InheritableThread(target=body)
    t.start()
    sc.addJobTag("added-after-start")  # the thread took a copy when it started
    go.set()
    t.join(30)
    assert seen["tags"] == {"inherited-tag"}
    assert (seen["group"], seen["description"]) == ("inherited-group", "described")
    assert seen["in task"] == ["inherited-group"]
    tracker = sc.statusTracker()
    assert set(tracker.getJobIdsForGroup("inherited-group")) == set(tracker.getJobIdsForTag("inherited-tag"))
    assert len(tracker.getJobIdsForTag("inherited-tag")) == 1
    # a plain thread inherits nothing
    plain: dict[str, Any] = {}
    p = threading.Thread(target=lambda: plain.update(tags=sc.getJobTags(), group=sc.getLocalProperty(
        "spark.jobGroup.id")))
    p.start()
    p.join(10)
    assert plain == {"tags": set(), "group": None}


def test_inheritable_thread_target_and_cancel_group(sc: Any) -> None:
    sc.setJobGroup("wrapped-group", "")
    outcome: dict[str, Any] = {}

    def body() -> None:
        try:
            sc.parallelize(range(2), 2).map(_sleepy).collect()
        except BaseException as e:  # noqa: BLE001
            outcome["error"] = e

    t = threading.Thread(target=inheritable_thread_target(body))
    sc.setLocalProperty("spark.jobGroup.id", None)  # the wrapper took the group already
    t.start()
    try:
        wait_for(lambda: sc.statusTracker().getJobIdsForGroup("wrapped-group"), 30, "the job to start")
        sc.cancelJobGroup("wrapped-group")
        t.join(30)
    finally:
        sc.cancelAllJobs()
        t.join(30)
    assert isinstance(outcome.get("error"), JobCancelledError)


def test_set_interrupt_on_cancel(sc: Any) -> None:
    sc.setInterruptOnCancel(True)
    assert sc.getLocalProperty("spark.job.interruptOnCancel") == "true"
    sc.setInterruptOnCancel(False)
    assert sc.parallelize([0], 1).mapPartitions(_task_property("spark.job.interruptOnCancel")).collect() == ["false"]


def test_module_paths_as_pyspark_util() -> None:
    import sparkctl.util as util
    assert util.InheritableThread is InheritableThread
    assert util.inheritable_thread_target is inheritable_thread_target
