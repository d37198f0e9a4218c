"""The application's job and stage status, and PySpark's ``StatusTracker`` over it.

```
 DriverRuntime (under its lock) ── job_start / stage_submitted / job_end ──▶ AppStatusStore
 sc.statusTracker() ── StatusTracker ── reads (under the same lock) ───────────┘
```
The store is the driver's one record of what jobs and stages exist and how they went, as
Spark's ``AppStatusStore`` is; a listener bus, the web UI and event logs can grow out of it.
It is fed at job and stage granularity only: the task counts of a running stage attempt
are read from its live task set when asked (as the console progress bar does), and
frozen into the record when the stage's last job ends. So tasks pay nothing for it.

Finished jobs and stages are kept up to ``spark.ui.retainedJobs`` and
``spark.ui.retainedStages`` (oldest first out), as Spark keeps them for its UI.
"""
from __future__ import annotations

import os
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple

# JobExecutionStatus, as Spark names them
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
UNKNOWN = "UNKNOWN"

JOB_GROUP = "spark.jobGroup.id"
JOB_TAGS = "spark.job.tags"
JOB_TAGS_SEP = ","


class SparkJobInfo(NamedTuple):
    """A job as PySpark's status API describes it."""

    jobId: int
    stageIds: list[int]
    status: str


class SparkStageInfo(NamedTuple):
    """A stage's latest attempt as PySpark's status API describes it."""

    stageId: int
    currentAttemptId: int
    name: str
    numTasks: int
    numActiveTasks: int
    numCompletedTasks: int
    numFailedTasks: int


@dataclass
class JobRecord:
    job_id: int
    stage_ids: list[int]
    group: str | None
    tags: frozenset[str]
    status: str = RUNNING


@dataclass
class StageRecord:
    stage_id: int
    name: str
    num_tasks: int
    attempt: int = 0
    # the current attempt's TaskSetManager while its job runs (counts are read from it)
    task_set: Any = None
    active_jobs: set[int] = field(default_factory=set)
    completed: int = 0
    failed: int = 0

    def counts(self) -> tuple[int, int, int, int]:
        """(tasks, active, completed, failed) of the current attempt."""
        tsm = self.task_set
        if tsm is None:
            return self.num_tasks, 0, self.completed, self.failed
        return len(tsm.partitions), len(tsm.running), tsm.num_succeeded, sum(tsm.failures)

    def freeze(self) -> None:
        """Keep the final counts and let go of the task set (it holds the stage's binary)."""
        if self.task_set is not None:
            self.num_tasks, _, self.completed, self.failed = self.counts()
            self.task_set = None

    def is_active(self) -> bool:
        tsm = self.task_set
        return tsm is not None and not tsm.zombie and not tsm.is_done()


def job_tags(properties: dict[str, str] | None) -> frozenset[str]:
    value = (properties or {}).get(JOB_TAGS)
    return frozenset(value.split(JOB_TAGS_SEP)) if value else frozenset()


class AppStatusStore:
    """Jobs and stages of this application; every method runs under ``lock`` (the runtime's)."""

    def __init__(self, lock: Any = None, retained_jobs: int = 1000, retained_stages: int = 1000) -> None:
        self.lock = lock if lock is not None else threading.RLock()
        self.retained_jobs = retained_jobs
        self.retained_stages = retained_stages
        self.jobs: OrderedDict[int, JobRecord] = OrderedDict()
        self.stages: OrderedDict[int, StageRecord] = OrderedDict()

    # ---------------------------------------------------------------- events in
    def job_start(self, job_id: int, stages: Iterable[Any], properties: dict[str, str] | None,
                  call_site: str) -> None:
        """``stages``: the DAG scheduler's stages of the job (each with ``id`` and ``num_partitions``)."""
        ids = []
        for st in stages:
            ids.append(st.id)
            rec = self.stages.get(st.id)
            if rec is None:
                rec = self.stages[st.id] = StageRecord(st.id, call_site, st.num_partitions)
            rec.active_jobs.add(job_id)
        self.jobs[job_id] = JobRecord(job_id, sorted(ids), (properties or {}).get(JOB_GROUP),
                                      job_tags(properties))

    def stage_submitted(self, stage_id: int, attempt: int, task_set: Any) -> None:
        rec = self.stages.get(stage_id)
        if rec is None:
            return
        rec.attempt = attempt
        rec.task_set = task_set
        rec.completed = rec.failed = 0

    def job_end(self, job_id: int, succeeded: bool) -> None:
        job = self.jobs.get(job_id)
        if job is None or job.status != RUNNING:
            return
        job.status = SUCCEEDED if succeeded else FAILED
        for sid in job.stage_ids:
            rec = self.stages.get(sid)
            if rec is not None:
                rec.active_jobs.discard(job_id)
                if not rec.active_jobs:
                    rec.freeze()
        self._trim()

    def _trim(self) -> None:
        """Forget the oldest finished jobs and stages past the limits. Records are in start
        order, so the walk stops after the few it drops (plus any still running before them)."""
        excess = len(self.jobs) - self.retained_jobs
        if excess > 0:
            drop = []
            for jid, job in self.jobs.items():
                if job.status != RUNNING:
                    drop.append(jid)
                    if len(drop) == excess:
                        break
            for jid in drop:
                del self.jobs[jid]
        excess = len(self.stages) - self.retained_stages
        if excess > 0:
            done = []
            for sid, stage in self.stages.items():
                if not stage.active_jobs:
                    done.append(sid)
                    if len(done) == excess:
                        break
            for sid in done:
                del self.stages[sid]

    # ---------------------------------------------------------------- queries
    def job_ids(self, *, group: str | None = None, any_group: bool = False, tag: str | None = None) -> list[int]:
        with self.lock:
            return [j.job_id for j in self.jobs.values()
                    if (any_group or j.group == group) and (tag is None or tag in j.tags)]

    def running_job_ids(self, tag: str | None = None) -> list[int]:
        with self.lock:
            return [j.job_id for j in self.jobs.values()
                    if j.status == RUNNING and (tag is None or tag in j.tags)]

    def active_stage_ids(self) -> list[int]:
        with self.lock:
            return sorted(s.stage_id for s in self.stages.values() if s.is_active())

    def job_info(self, job_id: int) -> SparkJobInfo | None:
        with self.lock:
            job = self.jobs.get(job_id)
            return None if job is None else SparkJobInfo(job.job_id, list(job.stage_ids), job.status)

    def stage_info(self, stage_id: int) -> SparkStageInfo | None:
        with self.lock:
            rec = self.stages.get(stage_id)
            if rec is None:
                return None
            total, active, completed, failed = rec.counts()
            return SparkStageInfo(rec.stage_id, rec.attempt, rec.name, total, active, completed, failed)


class StatusTracker:
    """PySpark's low-level status API (``sc.statusTracker()``).

    As Spark's, it promises only weak consistency: a job's stage ids may be known before
    the stage is, and information about old jobs and stages goes away (see the module).
    """

    def __init__(self, store: Any) -> None:
        # an AppStatusStore, or sparkctl.ui.tracker_source.ListenerStatusSource (the UI's status)
        self._store = store

    def getJobIdsForGroup(self, jobGroup: str | None = None) -> list[int]:
        """Every known job (running, failed or succeeded) of ``jobGroup``; with None, the
        jobs outside any group. In no particular order."""
        return self._store.job_ids(group=jobGroup)

    def getJobIdsForTag(self, jobTag: str) -> list[int]:
        """Every known job that carried ``jobTag`` (see ``SparkContext.addJobTag``)."""
        return self._store.job_ids(any_group=True, tag=jobTag)

    def getActiveStageIds(self) -> list[int]:
        return self._store.active_stage_ids()

    def getActiveJobsIds(self) -> list[int]:
        return sorted(self._store.running_job_ids())

    def getJobInfo(self, jobId: int) -> SparkJobInfo | None:
        """None if the job is unknown or was forgotten."""
        return self._store.job_info(jobId)

    def getStageInfo(self, stageId: int) -> SparkStageInfo | None:
        """None if the stage is unknown or was forgotten."""
        return self._store.stage_info(stageId)


# ---------------------------------------------------------------- call sites
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_ours: dict[str, bool] = {}


def _in_package(filename: str) -> bool:
    found = _ours.get(filename)
    if found is None:
        found = _ours[filename] = os.path.abspath(filename).startswith(_PACKAGE)
    return found


def call_site() -> str:
    """``"collect at app.py:12"``: the outermost sparkctl function on the calling thread's
    stack and the user's line that called it, as Spark names stages."""
    frame: Any = sys._getframe(1)
    last = None
    while frame is not None and _in_package(frame.f_code.co_filename):
        last = frame
        frame = frame.f_back
    action = last.f_code.co_name if last is not None else "<unknown>"
    if frame is None:
        return action
    return f"{action} at {frame.f_code.co_filename}:{frame.f_lineno}"
