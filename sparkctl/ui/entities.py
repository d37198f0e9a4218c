"""What the UI knows of an application: jobs, stage attempts, tasks, executors, cached RDDs.

Filled in by :class:`sparkctl.ui.status_listener.AppStatusListener`. A stage attempt keeps
its tasks as they came: a live driver's raw tuples (``TaskStartRaw``, ``TaskEndRaw``) or
entries replayed from a log. Turning a tuple into a :class:`TaskEntry` and summing metrics
per stage and per executor happens when someone reads them (the UI, the REST API), and
each stage's sums are kept until its next task event: a task costs the driver about a
microsecond of bookkeeping while nobody is looking.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from operator import add
from typing import Any

from sparkctl.scheduler.events import PUSH_READ_METRICS, TaskStartRaw

Event = dict[str, Any]

#: The task metrics kept per task, in this order (the names of Spark's REST API, flattened).
METRIC_KEYS = (
    "executorDeserializeTime", "executorDeserializeCpuTime", "executorRunTime", "executorCpuTime", "resultSize",
    "jvmGcTime", "resultSerializationTime", "memoryBytesSpilled", "diskBytesSpilled", "peakExecutionMemory",
    "inputBytesRead", "inputRecordsRead", "outputBytesWritten", "outputRecordsWritten",
    "shuffleRemoteBlocksFetched", "shuffleLocalBlocksFetched", "shuffleFetchWaitTime", "shuffleRemoteBytesRead",
    "shuffleRemoteBytesReadToDisk", "shuffleLocalBytesRead", "shuffleRecordsRead", "shuffleBytesWritten",
    "shuffleWriteTime", "shuffleRecordsWritten", "shuffleRemoteReqsDuration",
    *(key for _, key in PUSH_READ_METRICS),  # push-based shuffle: reads of merged slices
)
M = {k: i for i, k in enumerate(METRIC_KEYS)}
ZERO_METRICS = (0,) * len(METRIC_KEYS)
_ZEROS = ZERO_METRICS

# where each flat metric sits in an event log's "Task Metrics" object
_JSON_PATHS: tuple[tuple[str, ...], ...] = (
    ("Executor Deserialize Time",), ("Executor Deserialize CPU Time",), ("Executor Run Time",),
    ("Executor CPU Time",), ("Result Size",), ("JVM GC Time",), ("Result Serialization Time",),
    ("Memory Bytes Spilled",), ("Disk Bytes Spilled",), ("Peak Execution Memory",),
    ("Input Metrics", "Bytes Read"), ("Input Metrics", "Records Read"),
    ("Output Metrics", "Bytes Written"), ("Output Metrics", "Records Written"),
    ("Shuffle Read Metrics", "Remote Blocks Fetched"), ("Shuffle Read Metrics", "Local Blocks Fetched"),
    ("Shuffle Read Metrics", "Fetch Wait Time"), ("Shuffle Read Metrics", "Remote Bytes Read"),
    ("Shuffle Read Metrics", "Remote Bytes Read To Disk"), ("Shuffle Read Metrics", "Local Bytes Read"),
    ("Shuffle Read Metrics", "Total Records Read"), ("Shuffle Write Metrics", "Shuffle Bytes Written"),
    ("Shuffle Write Metrics", "Shuffle Write Time"), ("Shuffle Write Metrics", "Shuffle Records Written"),
    ("Shuffle Read Metrics", "Remote Requests Duration"),
    *(("Shuffle Read Metrics", "Push Based Shuffle", name) for name, _ in PUSH_READ_METRICS),
)


def metrics_from_json(tm: Any) -> tuple[int, ...]:
    if not isinstance(tm, dict):
        return ZERO_METRICS
    out = []
    for path in _JSON_PATHS:
        v: Any = tm
        for k in path:
            v = v.get(k, 0) if isinstance(v, dict) else 0
        out.append(v if isinstance(v, int) else int(v) if isinstance(v, float) else 0)
    return tuple(out)


def metrics_from_flat(m: dict[str, int] | None, result_size: int, run_ms: int) -> tuple[int, ...]:
    if not m:
        base = list(ZERO_METRICS)
        base[M["resultSize"]] = result_size
        base[M["executorRunTime"]] = run_ms
        return tuple(base)
    vals = tuple(map(m.get, METRIC_KEYS, _ZEROS))  # in C: this runs for every task
    # the defaults the event log's JSON takes too (sparkctl.scheduler.events.task_metrics)
    if "resultSize" not in m or "executorRunTime" not in m:
        fixed = list(vals)
        if "resultSize" not in m:
            fixed[M["resultSize"]] = result_size
        if "executorRunTime" not in m:
            fixed[M["executorRunTime"]] = run_ms
        return tuple(fixed)
    return vals


# ----------------------------------------------------------------- entities
@dataclass(slots=True)
class TaskEntry:
    task_id: int
    index: int
    attempt: int
    partition: int
    launch: int
    executor_id: str
    host: str
    locality: str
    speculative: bool
    status: str = "RUNNING"  # RUNNING, SUCCESS, FAILED, KILLED
    finish: int = 0
    error: str = ""
    metrics: tuple[int, ...] = ZERO_METRICS


@dataclass(slots=True)
class ExecStageSummary:
    task_time: int = 0
    failed: int = 0
    succeeded: int = 0
    killed: int = 0
    metrics: list[int] = field(default_factory=lambda: [0] * len(METRIC_KEYS))


TaskValue = Any  # TaskStartRaw | TaskEndRaw | TaskEntry


def materialize(value: TaskValue) -> TaskEntry:
    """A task as the UI shows it, from what the stage keeps of it."""
    if isinstance(value, TaskEntry):
        return value
    if isinstance(value, TaskStartRaw):
        return TaskEntry(value.task_id, value.task_index, value.attempt, value.partition, value.ts,
                         value.executor_id, value.host, value.locality, value.speculative)
    s = value.start
    status = "SUCCESS" if value.state == "FINISHED" else "KILLED" if value.state == "KILLED" else "FAILED"
    error = "" if status == "SUCCESS" else (value.traceback or f"{value.error_type}: {value.error_message}")
    return TaskEntry(s.task_id, s.task_index, s.attempt, s.partition, s.ts, s.executor_id, s.host, s.locality,
                     s.speculative, status, value.ts, error,
                     metrics_from_flat(value.metrics, value.result_size, max(value.ts - s.ts, 0)))


@dataclass
class StageAggregates:
    """Sums over a stage attempt's finished tasks: all of them, and per executor."""

    metrics: list[int] = field(default_factory=lambda: [0] * len(METRIC_KEYS))
    executors: dict[str, ExecStageSummary] = field(default_factory=dict)

    def add(self, t: TaskEntry) -> None:
        if t.status == "RUNNING":
            return
        self.metrics = list(map(add, self.metrics, t.metrics))
        es = self.executors.get(t.executor_id)
        if es is None:
            es = self.executors[t.executor_id] = ExecStageSummary()
        es.task_time += max(t.finish - t.launch, 0)
        if t.status == "SUCCESS":
            es.succeeded += 1
        elif t.status == "KILLED":
            es.killed += 1
        else:
            es.failed += 1
        es.metrics = list(map(add, es.metrics, t.metrics))

    def merged(self, other: "StageAggregates") -> "StageAggregates":
        out = StageAggregates(list(map(add, self.metrics, other.metrics)))
        for source in (self.executors, other.executors):
            for eid, es in source.items():
                mine = out.executors.setdefault(eid, ExecStageSummary())
                mine.task_time += es.task_time
                mine.failed += es.failed
                mine.succeeded += es.succeeded
                mine.killed += es.killed
                mine.metrics = list(map(add, mine.metrics, es.metrics))
        return out


@dataclass
class StageEntry:
    stage_id: int
    attempt: int
    name: str
    num_tasks: int
    rdds: list[Event]
    parent_ids: list[int]
    details: str = ""
    status: str = "PENDING"  # PENDING, ACTIVE, COMPLETE, FAILED, SKIPPED
    job_ids: set[int] = field(default_factory=set)
    submitted: int | None = None
    first_launch: int | None = None
    completed: int | None = None
    failure: str | None = None
    pool: str = "default"
    description: str | None = None
    push_mergers: int = 0  # a map stage whose tasks push (push-based shuffle): to how many mergers
    active: int = 0
    complete: int = 0
    failed: int = 0
    killed: int = 0
    completed_indices: set[int] = field(default_factory=set)
    tasks: OrderedDict[int, TaskValue] = field(default_factory=OrderedDict)
    killed_summary: dict[str, int] = field(default_factory=dict)
    version: int = 0  # bumped by every task event: the cached sums are good while it holds
    trimmed: StageAggregates = field(default_factory=StageAggregates)  # tasks dropped past the retention
    _cache: tuple[int, StageAggregates] | None = None

    def start_task(self, task_id: int, value: TaskValue, launch: int) -> None:
        self.tasks[task_id] = value
        self.active += 1
        self.version += 1
        if self.first_launch is None:
            self.first_launch = launch

    def end_task(self, task_id: int, value: TaskValue, index: int, status: str, kill_reason: str) -> bool:
        """Record a task's end; whether its start had been seen."""
        started = task_id in self.tasks
        self.tasks[task_id] = value
        self.version += 1
        if started:
            self.active = max(self.active - 1, 0)
        if status == "SUCCESS":
            self.complete += 1
            self.completed_indices.add(index)
        elif status == "KILLED":
            self.killed += 1
            reason = kill_reason or "killed"
            self.killed_summary[reason] = self.killed_summary.get(reason, 0) + 1
        else:
            self.failed += 1
        return started

    def entries(self) -> list[TaskEntry]:
        """Every kept task as a TaskEntry (each built once)."""
        tasks = self.tasks
        out = []
        for tid, value in tasks.items():
            if not isinstance(value, TaskEntry):
                value = tasks[tid] = materialize(value)
            out.append(value)
        return out

    def aggregates(self) -> StageAggregates:
        cached = self._cache
        if cached is not None and cached[0] == self.version:
            return cached[1]
        agg = StageAggregates()
        for t in self.entries():
            agg.add(t)
        agg = agg.merged(self.trimmed)
        self._cache = (self.version, agg)
        return agg

    def trim(self, retained: int) -> None:
        """Past ``retained`` tasks, drop the oldest finished ones, keeping them in the sums."""
        excess = len(self.tasks) - retained
        if excess <= 0:
            return
        for tid in list(self.tasks):
            t = materialize(self.tasks[tid])
            if t.status == "RUNNING":
                continue
            self.trimmed.add(t)
            del self.tasks[tid]
            excess -= 1
            if excess <= 0:
                break
        self.version += 1


@dataclass
class JobEntry:
    job_id: int
    name: str
    submitted: int
    stage_ids: list[int]
    group: str | None
    tags: list[str]
    description: str | None
    status: str = "RUNNING"
    completed: int | None = None
    num_tasks: int = 0
    active_tasks: int = 0
    completed_tasks: int = 0
    skipped_tasks: int = 0
    failed_tasks: int = 0
    killed_tasks: int = 0
    completed_indices: set[tuple[int, int]] = field(default_factory=set)
    active_stages: set[int] = field(default_factory=set)
    completed_stages: set[int] = field(default_factory=set)
    failed_stages: int = 0
    skipped_stages: int = 0
    killed_summary: dict[str, int] = field(default_factory=dict)


@dataclass
class ExecutorEntry:
    executor_id: str
    host: str
    cores: int
    added: int
    port: int = 0
    removed: int | None = None
    remove_reason: str | None = None
    logs: dict[str, str] = field(default_factory=dict)
    active_tasks: int = 0
    failed_tasks: int = 0
    completed_tasks: int = 0
    max_memory: int = 0
    # task time and metrics of stages no longer kept (the rest are summed from the stages)
    dropped: ExecStageSummary = field(default_factory=ExecStageSummary)


@dataclass
class RDDEntry:
    rdd_id: int
    name: str
    num_partitions: int
    storage_level: dict[str, Any]
    blocks: dict[str, dict[str, Any]] = field(default_factory=dict)  # block id -> {executors, mem, disk}


@dataclass
class AppEntry:
    app_id: str = ""
    name: str = ""
    user: str = ""
    start: int = 0
    end: int | None = None
    last_updated: int = 0
    spark_version: str = ""
    environment: Event = field(default_factory=dict)
    exit_code: int | None = None  # from ApplicationEnd, when the log says
    log_path: str = ""  # the event log it was replayed from (history server)
