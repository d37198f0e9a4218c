"""The application's status, built from listener events: what the UI and the REST API show.

```
 live driver:   listener bus ──(Spark JSON events, or raw task tuples)──▶ AppStatusListener
 history server: event log lines ──json.loads──────────────────────────────▶ AppStatusListener
                                                                                   │
                                              sparkctl/ui/api.py (Spark's /api/v1) ◀┘
```
As Spark's ``AppStatusListener``, it keeps live entities (jobs, stage attempts, tasks,
executors, cached RDDs) and updates them from each event. Both a running driver and the
history server feed it the same events, so they show the same thing.

Task events from a live driver may arrive as raw tuples (``on_task_start_raw``,
``on_task_end_raw``): the per-task JSON is then never built unless an event log wants it.

Readers take ``lock``; the bus thread is the only writer. Old jobs, stages and tasks are
dropped past ``spark.ui.retainedJobs``, ``spark.ui.retainedStages`` and
``spark.ui.retainedTasks`` (per stage attempt), as Spark does.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from operator import add
from typing import Any

from sparkctl.scheduler.events import TaskEndRaw, TaskStartRaw
from sparkctl.ui.entities import (M, METRIC_KEYS, ZERO_METRICS, AppEntry, Event, ExecStageSummary,  # noqa: F401
                                  ExecutorEntry, JobEntry, RDDEntry, StageAggregates, StageEntry, TaskEntry,
                                  metrics_from_flat, metrics_from_json)


# ----------------------------------------------------------------- the listener
class AppStatusListener:
    """One application's status; ``on_event`` takes Spark event-log JSON objects."""

    def __init__(self, retained_jobs: int = 1000, retained_stages: int = 1000, retained_tasks: int = 100000,
                 live: bool = True) -> None:
        self.lock = threading.RLock()
        self.live = live
        self.retained_jobs = retained_jobs
        self.retained_stages = retained_stages
        self.retained_tasks = retained_tasks
        self.app = AppEntry()
        self.jobs: OrderedDict[int, JobEntry] = OrderedDict()
        self.stages: OrderedDict[tuple[int, int], StageEntry] = OrderedDict()
        self.executors: OrderedDict[str, ExecutorEntry] = OrderedDict()
        self.rdds: OrderedDict[int, RDDEntry] = OrderedDict()
        self.stage_jobs: dict[int, set[int]] = {}  # stage id -> running jobs containing it
        self.attempt_ids: dict[int, set[int]] = {}  # stage id -> its attempts in self.stages
        self.events_seen = 0
        self._handlers = {
            "SparkListenerLogStart": self._log_start,
            "SparkListenerApplicationStart": self._app_start,
            "SparkListenerApplicationEnd": self._app_end,
            "SparkListenerEnvironmentUpdate": self._environment,
            "SparkListenerExecutorAdded": self._executor_added,
            "SparkListenerExecutorRemoved": self._executor_removed,
            "SparkListenerBlockManagerAdded": self._block_manager_added,
            "SparkListenerJobStart": self._job_start,
            "SparkListenerJobEnd": self._job_end,
            "SparkListenerStageSubmitted": self._stage_submitted,
            "SparkListenerStageCompleted": self._stage_completed,
            "SparkListenerTaskStart": self._task_start,
            "SparkListenerTaskEnd": self._task_end,
            "SparkListenerUnpersistRDD": self._unpersist,
            "org.apache.spark.scheduler.SparkListenerBlockUpdated": self._block_updated,
            "SparkListenerBlockUpdated": self._block_updated,
        }

    # ------------------------------------------------------------- feeding
    def on_event(self, event: Event) -> None:
        handler = self._handlers.get(event.get("Event", ""))
        if handler is None:
            return
        with self.lock:
            self.events_seen += 1
            handler(event)

    def stop(self) -> None:
        pass

    def on_task_start_raw(self, raw: TaskStartRaw) -> None:
        with self.lock:
            self.events_seen += 1
            self._start_task(raw.stage_id, raw.stage_attempt, raw.task_id, raw.executor_id, raw.ts, raw)

    def on_task_end_raw(self, raw: TaskEndRaw) -> None:
        s = raw.start
        state = raw.state
        status = "SUCCESS" if state == "FINISHED" else "KILLED" if state == "KILLED" else "FAILED"
        with self.lock:
            self.events_seen += 1
            self._end_task(s.stage_id, s.stage_attempt, s.task_id, s.task_index, s.executor_id, raw.ts, status,
                           raw.error_message if status == "KILLED" else "", raw)

    # ------------------------------------------------------------- application
    def _log_start(self, e: Event) -> None:
        self.app.spark_version = str(e.get("Spark Version", ""))

    def _app_start(self, e: Event) -> None:
        a = self.app
        a.name = str(e.get("App Name", ""))
        a.app_id = str(e.get("App ID", "") or a.app_id)
        a.start = int(e.get("Timestamp", 0))
        a.last_updated = a.start
        a.user = str(e.get("User", ""))

    def _app_end(self, e: Event) -> None:
        self.app.end = int(e.get("Timestamp", 0))
        self.app.last_updated = self.app.end
        if isinstance(e.get("ExitCode"), int):
            self.app.exit_code = e["ExitCode"]

    def _environment(self, e: Event) -> None:
        self.app.environment = {k: v for k, v in e.items() if k != "Event"}

    # ------------------------------------------------------------- executors and storage
    def _executor_added(self, e: Event) -> None:
        info = e.get("Executor Info") or {}
        eid = str(e.get("Executor ID"))
        self.executors[eid] = ExecutorEntry(eid, str(info.get("Host", "")), int(info.get("Total Cores", 0)),
                                            int(e.get("Timestamp", 0)), logs=dict(info.get("Log Urls") or {}))

    def _executor_removed(self, e: Event) -> None:
        ex = self.executors.get(str(e.get("Executor ID")))
        if ex is not None:
            ex.removed = int(e.get("Timestamp", 0))
            ex.remove_reason = str(e.get("Removed Reason", ""))
            ex.active_tasks = 0
            for rdd in self.rdds.values():
                for block in list(rdd.blocks):
                    holders = rdd.blocks[block]["executors"]
                    if ex.executor_id in holders:
                        holders.remove(ex.executor_id)
                        if not holders:
                            del rdd.blocks[block]

    def _block_manager_added(self, e: Event) -> None:
        bm = e.get("Block Manager ID") or {}
        eid = str(bm.get("Executor ID"))
        ex = self.executors.get(eid)
        if ex is None and eid == "driver":  # as Spark, the driver is listed with its block manager
            ex = self.executors[eid] = ExecutorEntry(eid, str(bm.get("Host", "")), 0, int(e.get("Timestamp", 0)))
        if ex is not None:  # Spark's hostPort is the block manager's address
            ex.host = str(bm.get("Host") or ex.host)
            ex.port = int(bm.get("Port", 0))
            ex.max_memory = int(e.get("Maximum Memory", 0))

    def _block_updated(self, e: Event) -> None:
        info = e.get("Block Updated Info") or {}
        block = str(info.get("Block ID", ""))
        parts = block.split("_")
        if len(parts) != 3 or parts[0] != "rdd":
            return
        rdd = self.rdds.get(int(parts[1]))
        if rdd is None:
            return
        eid = str((info.get("Block Manager ID") or {}).get("Executor ID"))
        mem, disk = int(info.get("Memory Size", 0)), int(info.get("Disk Size", 0))
        level = info.get("Storage Level") or {}
        if not (level.get("Use Memory") or level.get("Use Disk")):
            holders = rdd.blocks.get(block, {}).get("executors", [])
            if eid in holders:
                holders.remove(eid)
            if not holders:
                rdd.blocks.pop(block, None)
            return
        entry = rdd.blocks.setdefault(block, {"executors": [], "memory": 0, "disk": 0})
        if eid not in entry["executors"]:
            entry["executors"].append(eid)
        entry["memory"], entry["disk"] = max(entry["memory"], mem), max(entry["disk"], disk)

    def _unpersist(self, e: Event) -> None:
        self.rdds.pop(int(e.get("RDD ID", -1)), None)

    def _note_rdds(self, infos: list[Event]) -> None:
        for info in infos:
            level = info.get("Storage Level") or {}
            if level.get("Use Memory") or level.get("Use Disk"):
                rid = int(info.get("RDD ID", -1))
                if rid not in self.rdds:
                    self.rdds[rid] = RDDEntry(rid, str(info.get("Name", "")), int(info.get("Number of Partitions", 0)),
                                              dict(level))

    # ------------------------------------------------------------- jobs and stages
    def _stage_entry(self, info: Event) -> StageEntry:
        key = (int(info["Stage ID"]), int(info.get("Stage Attempt ID", 0)))
        st = self.stages.get(key)
        if st is None:
            st = self.stages[key] = StageEntry(key[0], key[1], str(info.get("Stage Name", "")),
                                               int(info.get("Number of Tasks", 0)), list(info.get("RDD Info") or []),
                                               [int(p) for p in info.get("Parent IDs") or []],
                                               str(info.get("Details", "")))
            self._note_rdds(st.rdds)
            self.attempt_ids.setdefault(key[0], set()).add(key[1])
        return st

    def _job_start(self, e: Event) -> None:
        props = e.get("Properties") or {}
        infos = e.get("Stage Infos") or []
        job_id = int(e["Job ID"])
        stage_ids = [int(s) for s in e.get("Stage IDs") or [i["Stage ID"] for i in infos]]
        last = max(infos, key=lambda i: i["Stage ID"]) if infos else {}
        tags = [t for t in str(props.get("spark.job.tags", "")).split(",") if t]
        job = JobEntry(job_id, str(last.get("Stage Name", f"job {job_id}")), int(e.get("Submission Time", 0)),
                       stage_ids, props.get("spark.jobGroup.id"), sorted(tags), props.get("spark.job.description"))
        for info in infos:
            st = self._stage_entry(info)
            st.job_ids.add(job_id)
            job.num_tasks += st.num_tasks
            self.stage_jobs.setdefault(st.stage_id, set()).add(job_id)
        self.jobs[job_id] = job
        self._trim_jobs()

    def _job_end(self, e: Event) -> None:
        job = self.jobs.get(int(e["Job ID"]))
        if job is None:
            return
        result = (e.get("Job Result") or {}).get("Result")
        job.status = "SUCCEEDED" if result == "JobSucceeded" else "FAILED"
        job.completed = int(e.get("Completion Time", 0))
        # stages of the job that never ran are skipped (their output already existed)
        for sid in job.stage_ids:
            jobs = self.stage_jobs.get(sid)
            if jobs is not None:
                jobs.discard(job.job_id)
            for st in self._attempts(sid):
                if st.status == "PENDING" and not self.stage_jobs.get(sid):
                    st.status = "SKIPPED"
                if st.status == "SKIPPED" and st.attempt == 0 and job.job_id in st.job_ids:
                    job.skipped_stages += 1
                    job.skipped_tasks += st.num_tasks
        job.active_stages.clear()

    def _attempts(self, stage_id: int) -> list[StageEntry]:
        """A stage's known attempts, oldest first."""
        return [self.stages[(stage_id, a)] for a in sorted(self.attempt_ids.get(stage_id, ()))]

    def latest_attempt(self, stage_id: int) -> StageEntry | None:
        attempts = self._attempts(stage_id)
        return attempts[-1] if attempts else None

    def _stage_submitted(self, e: Event) -> None:
        info = e.get("Stage Info") or {}
        st = self._stage_entry(info)
        props = e.get("Properties") or {}
        st.status = "ACTIVE"
        st.submitted = info.get("Submission Time")
        st.num_tasks = int(info.get("Number of Tasks", st.num_tasks))
        st.pool = str(props.get("spark.scheduler.pool", "default"))
        st.description = props.get("spark.job.description")
        if info.get("Shuffle Push Enabled"):
            st.push_mergers = int(info.get("Shuffle Push Mergers Count") or 0)
        st.job_ids |= self.stage_jobs.get(st.stage_id, set())
        for jid in st.job_ids:
            job = self.jobs.get(jid)
            if job is not None and job.status == "RUNNING":
                job.active_stages.add(st.stage_id)
        self._trim_stages()

    def _stage_completed(self, e: Event) -> None:
        info = e.get("Stage Info") or {}
        st = self._stage_entry(info)
        st.completed = info.get("Completion Time")
        st.failure = info.get("Failure Reason")
        st.status = "FAILED" if st.failure is not None else "COMPLETE"
        for jid in st.job_ids:
            job = self.jobs.get(jid)
            if job is None:
                continue
            job.active_stages.discard(st.stage_id)
            if st.status == "COMPLETE":
                job.completed_stages.add(st.stage_id)
            else:
                job.failed_stages += 1

    # ------------------------------------------------------------- tasks
    def _task_start(self, e: Event) -> None:
        task = _task_entry(e.get("Task Info") or {})
        self._start_task(int(e["Stage ID"]), int(e.get("Stage Attempt ID", 0)), task.task_id, task.executor_id,
                         task.launch, task)

    def _task_end(self, e: Event) -> None:
        ti = e.get("Task Info") or {}
        reason = e.get("Task End Reason") or {}
        kind = reason.get("Reason", "Success")
        status = "SUCCESS" if kind == "Success" else "KILLED" if kind == "TaskKilled" else "FAILED"
        task = _task_entry(ti)
        task.status, task.finish = status, int(ti.get("Finish Time", 0))
        task.metrics = metrics_from_json(e.get("Task Metrics"))
        if status != "SUCCESS":
            task.error = str(reason.get("Full Stack Trace") or reason.get("Description") or reason.get("Kill Reason")
                             or reason.get("Loss Reason") or reason.get("Message") or kind)
        self._end_task(int(e["Stage ID"]), int(e.get("Stage Attempt ID", 0)), task.task_id, task.index,
                       task.executor_id, task.finish, status,
                       str(reason.get("Kill Reason", "")) if status == "KILLED" else "", task)

    def _start_task(self, stage_id: int, attempt: int, task_id: int, executor_id: str, launch: int,
                    value: Any) -> None:
        st = self.stages.get((stage_id, attempt))
        if st is not None:
            st.start_task(task_id, value, launch)
            if len(st.tasks) > self.retained_tasks:
                st.trim(self.retained_tasks)
            for jid in st.job_ids:
                job = self.jobs.get(jid)
                if job is not None and job.status == "RUNNING":
                    job.active_tasks += 1
        ex = self.executors.get(executor_id)
        if ex is not None:
            ex.active_tasks += 1

    def _end_task(self, stage_id: int, attempt: int, task_id: int, index: int, executor_id: str, finish: int,
                  status: str, kill_reason: str, value: Any) -> None:
        """Only counters here: metrics are summed when read (sparkctl.ui.entities)."""
        ok = status == "SUCCESS"
        st = self.stages.get((stage_id, attempt))
        started = True
        if st is not None:
            new_index = ok and index not in st.completed_indices
            started = st.end_task(task_id, value, index, status, kill_reason)
            for jid in st.job_ids:
                job = self.jobs.get(jid)
                if job is None:
                    continue
                if started and job.status == "RUNNING":
                    job.active_tasks = max(job.active_tasks - 1, 0)
                if ok:
                    job.completed_tasks += 1
                    if new_index:
                        job.completed_indices.add((stage_id, index))
                elif status == "KILLED":
                    job.killed_tasks += 1
                    reason = kill_reason or "killed"
                    job.killed_summary[reason] = job.killed_summary.get(reason, 0) + 1
                else:
                    job.failed_tasks += 1
        ex = self.executors.get(executor_id)
        if ex is not None:
            if started:
                ex.active_tasks = max(ex.active_tasks - 1, 0)
            if ok:
                ex.completed_tasks += 1
            elif status != "KILLED":
                ex.failed_tasks += 1
        if finish > self.app.last_updated:
            self.app.last_updated = finish

    # ------------------------------------------------------------- derived on read
    def executor_totals(self) -> dict[str, ExecStageSummary]:
        """Per executor: task time and metrics over every stage (kept or dropped)."""
        totals: dict[str, ExecStageSummary] = {}
        for ex in self.executors.values():
            d = ex.dropped
            totals[ex.executor_id] = ExecStageSummary(d.task_time, d.failed, d.succeeded, d.killed, list(d.metrics))
        for st in self.stages.values():
            for eid, es in st.aggregates().executors.items():
                t = totals.get(eid)
                if t is None:
                    continue
                t.task_time += es.task_time
                t.metrics = list(map(add, t.metrics, es.metrics))
        return totals

    # ------------------------------------------------------------- retention
    def _trim_jobs(self) -> None:
        while len(self.jobs) > self.retained_jobs:
            victim = next((j for j in self.jobs.values() if j.status != "RUNNING"), None)
            if victim is None:
                return
            del self.jobs[victim.job_id]

    def _trim_stages(self) -> None:
        while len(self.stages) > self.retained_stages:
            victim = next((k for k, s in self.stages.items() if s.status not in ("ACTIVE", "PENDING")), None)
            if victim is None:
                return
            for eid, es in self.stages[victim].aggregates().executors.items():
                ex = self.executors.get(eid)
                if ex is not None:
                    ex.dropped.task_time += es.task_time
                    ex.dropped.metrics = list(map(add, ex.dropped.metrics, es.metrics))
            del self.stages[victim]
            attempts = self.attempt_ids.get(victim[0])
            if attempts is not None:
                attempts.discard(victim[1])
                if not attempts:
                    del self.attempt_ids[victim[0]]



def _task_entry(ti: Event) -> TaskEntry:
    return TaskEntry(int(ti.get("Task ID", -1)), int(ti.get("Index", 0)), int(ti.get("Attempt", 0)),
                     int(ti.get("Partition ID", ti.get("Index")) or 0), int(ti.get("Launch Time", 0)),
                     str(ti.get("Executor ID", "")), str(ti.get("Host", "")), str(ti.get("Locality", "ANY")),
                     bool(ti.get("Speculative", False)))
