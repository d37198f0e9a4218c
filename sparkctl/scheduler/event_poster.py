"""What the driver's runtime tells the listener bus, and when (always under the runtime's lock).

The runtime calls these hooks at the points where Spark's DAGScheduler and TaskSetManager
post their events: a job submitted, a stage attempt submitted or ended, a task launched or
ended, an executor added or lost. This class keeps the little state the events need (each
running task's start record, each live stage attempt's submission time) so the state
machines stay free of it. Without a bus (``spark.ui.enabled`` and ``spark.eventLog.enabled``
both off) the runtime holds a :class:`NoEvents` and pays nothing.
"""
from __future__ import annotations

import time
from functools import partial
from typing import Any

from sparkctl.scheduler import events as ev
from sparkctl.scheduler.listener import LiveListenerBus


def now_ms() -> int:
    return int(time.time() * 1000)


class NoEvents:
    """The hooks, doing nothing."""

    enabled = False

    def job_started(self, job_id: int, stages: list[Any], props: dict[str, str] | None, site: str) -> None: ...

    def job_ended(self, job_id: int, error: BaseException | None) -> None: ...

    def stage_submitted(self, stage: Any, attempt: int, num_tasks: int, props: dict[str, str] | None,
                        tsm: Any) -> None: ...

    def check_stage_ends(self) -> None: ...

    def task_launched(self, att: Any, host: str) -> None: ...

    def task_ended(self, task_id: int, state: str, error_type: str = "", message: str = "", traceback: str = "",
                   metrics: dict[str, int] | None = None, result_size: int = 0) -> None: ...

    def tasks_lost(self, attempts: dict[int, Any], executor_id: str, reason: str) -> None: ...

    def executor_added(self, executor_id: str, host: str, port: int, cores: int,
                       log_urls: dict[str, str] | None) -> None: ...

    def executor_removed(self, executor_id: str, reason: str) -> None: ...

    def rdd_unpersisted(self, rdd_id: int) -> None: ...

    def blocks_added(self, executor_id: str, host: str, port: int, blocks: list[str],
                     sizes: dict[str, tuple[int, bool]] | None = None) -> None: ...


class SchedulerEvents(NoEvents):
    enabled = True

    def __init__(self, bus: LiveListenerBus, executor_storage_memory: int = 0) -> None:
        self.bus = bus
        self.executor_storage_memory = executor_storage_memory  # what an executor may cache (bytes)
        self.running: dict[int, ev.TaskStartRaw] = {}  # task id -> its start
        self.task_map: dict[int, bool] = {}  # task id -> is a shuffle map task
        self.live: dict[tuple[int, int], tuple[Any, Any, int]] = {}  # (stage, attempt) -> (stage, tsm, submitted)
        self.open_jobs: set[int] = set()

    # ------------------------------------------------------------- jobs
    def job_started(self, job_id: int, stages: list[Any], props: dict[str, str] | None, site: str) -> None:
        self.open_jobs.add(job_id)
        for st in stages:
            if not st.is_shuffle_map() and getattr(st, "call_site", None) is None:
                st.call_site = site
        self.bus.post(partial(ev.job_start, job_id, now_ms(), list(stages), dict(props or {})))

    def job_ended(self, job_id: int, error: BaseException | None) -> None:
        if job_id in self.open_jobs:
            self.open_jobs.discard(job_id)
            self.check_stage_ends()
            self.bus.post(ev.job_end(job_id, now_ms(), error))

    # ------------------------------------------------------------- stages
    def stage_submitted(self, stage: Any, attempt: int, num_tasks: int, props: dict[str, str] | None,
                        tsm: Any) -> None:
        ts = now_ms()
        self.live[(stage.id, attempt)] = (stage, tsm, ts)
        self.bus.post(partial(_stage_submitted, stage, attempt, num_tasks, ts, dict(props or {})))

    def check_stage_ends(self) -> None:
        """Post StageCompleted for the stage attempts that finished or were given up since."""
        for key, (stage, tsm, submitted) in list(self.live.items()):
            if tsm.is_done():
                failure = None
            elif tsm.zombie:
                failure = _failure_reason(tsm)
            else:
                continue
            del self.live[key]
            self.bus.post(partial(_stage_completed, stage, key[1], len(tsm.partitions), submitted, now_ms(), failure))

    # ------------------------------------------------------------- tasks
    def task_launched(self, att: Any, host: str) -> None:
        tsm = att.tsm
        partition = tsm.partitions[att.index]
        prefs = getattr(tsm, "preferred", None)
        wanted = prefs.get(partition) if prefs else None
        locality = "PROCESS_LOCAL" if not wanted or att.executor_id in wanted else "ANY"
        raw = ev.TaskStartRaw(now_ms(), tsm.stage_id, tsm.stage_attempt, att.task_id, att.index, att.attempt,
                              partition, att.executor_id, host, locality, att.attempt > 0 and att.index in
                              getattr(tsm, "speculatable", ()))
        self.running[att.task_id] = raw
        self.task_map[att.task_id] = bool(tsm.payload.message.is_shuffle_map) if tsm.payload is not None else False
        self.bus.post(raw)

    def task_ended(self, task_id: int, state: str, error_type: str = "", message: str = "", traceback: str = "",
                   metrics: dict[str, int] | None = None, result_size: int = 0) -> None:
        start = self.running.pop(task_id, None)
        if start is None:
            return
        is_map = self.task_map.pop(task_id, False)
        self.bus.post(ev.TaskEndRaw(now_ms(), start, is_map, state, error_type, message, traceback, metrics,
                                    result_size))

    def tasks_lost(self, attempts: dict[int, Any], executor_id: str, reason: str) -> None:
        """Tasks that were running on a lost executor, and are no longer attempts."""
        for task_id, start in list(self.running.items()):
            if start.executor_id == executor_id and task_id not in attempts:
                self.task_ended(task_id, "FAILED", "ExecutorLost", reason)

    # ------------------------------------------------------------- executors and blocks
    def executor_added(self, executor_id: str, host: str, port: int, cores: int,
                       log_urls: dict[str, str] | None) -> None:
        ts = now_ms()
        self.bus.post(ev.executor_added(ts, executor_id, host, cores, log_urls))
        self.bus.post(ev.block_manager_added(ts, executor_id, host, port, self.executor_storage_memory))

    def executor_removed(self, executor_id: str, reason: str) -> None:
        self.bus.post(ev.executor_removed(now_ms(), executor_id, reason))

    def rdd_unpersisted(self, rdd_id: int) -> None:
        self.bus.post(ev.unpersist_rdd(rdd_id))

    def blocks_added(self, executor_id: str, host: str, port: int, blocks: list[str],
                     sizes: dict[str, tuple[int, bool]] | None = None) -> None:
        for block in blocks:
            if isinstance(block, str) and block.startswith("rdd_"):
                size, on_disk = (sizes or {}).get(block, (0, False))
                self.bus.post({"Event": "org.apache.spark.scheduler.SparkListenerBlockUpdated",
                               "Block Updated Info": {
                                   "Block Manager ID": {"Executor ID": executor_id, "Host": host, "Port": port},
                                   "Block ID": block,
                                   "Storage Level": {"Use Disk": on_disk, "Use Memory": not on_disk,
                                                     "Use Off Heap": False, "Deserialized": False, "Replication": 1},
                                   "Memory Size": 0 if on_disk else size, "Disk Size": size if on_disk else 0}})


def _stage_submitted(stage: Any, attempt: int, num_tasks: int, ts: int, props: dict[str, str]) -> ev.Event:
    return ev.stage_submitted(ev.stage_info(stage, attempt, num_tasks, submitted=ts), props)


def _stage_completed(stage: Any, attempt: int, num_tasks: int, submitted: int, completed: int,
                     failure: str | None) -> ev.Event:
    return ev.stage_completed(ev.stage_info(stage, attempt, num_tasks, submitted=submitted, completed=completed,
                                            failure=failure))


def _failure_reason(tsm: Any) -> str:
    reasons = tsm.reasons  # task index -> its failed attempts' reasons, for the tasks that failed
    for i in sorted(reasons):
        if reasons[i]:
            return str(reasons[i][-1])
    return "Stage cancelled"
