"""Spark's monitoring REST API (``/api/v1``), rendered from an :class:`AppStatusListener`.

Paths, field names, units and date formats are Apache Spark's, so tools written against
Spark's UI work here (see Spark's "Monitoring and Instrumentation" REST API page):

```
 /api/v1/applications                                 /api/v1/applications/APP/stages/N/A/taskList
 /api/v1/applications/APP                             /api/v1/applications/APP/stages/N/A/taskSummary
 /api/v1/applications/APP/jobs[/N]                    /api/v1/applications/APP/executors, allexecutors
 /api/v1/applications/APP/stages[/N[/A]]              /api/v1/applications/APP/storage/rdd[/N]
 /api/v1/applications/APP/environment                 /api/v1/version
```
One extension, for the UI's DAG pictures (Spark draws them server-side):
``/api/v1/applications/APP/sparkctl/dag?job=N`` or ``?stage=N&attempt=A``.

``route`` answers ``(status, document)``; the HTTP servers only encode it.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterable

from sparkctl.scheduler.events import SPARK_VERSION, executor_metrics_zero
from sparkctl.ui.entities import M, METRIC_KEYS, ExecutorEntry, JobEntry, RDDEntry, StageEntry, TaskEntry
from sparkctl.ui.status_listener import AppStatusListener

Doc = Any
NOT_FOUND = 404
BAD_REQUEST = 400

#: Which applications a server knows: every one (id -> listener), and how to find one.
AppLookup = Callable[[], dict[str, AppStatusListener]]


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def date(ms: int | None) -> str:
    """Spark's REST date format: ``2026-11-30T14:35:35.687GMT``."""
    if ms is None or ms < 0:
        return "1969-12-31T23:59:59.999GMT"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}GMT"


def now_ms() -> int:
    return int(time.time() * 1000)


# ----------------------------------------------------------------- applications
def application(st: AppStatusListener) -> Doc:
    a = st.app
    completed = a.end is not None
    end = a.end if completed else -1
    last = a.last_updated or a.start
    duration = (a.end - a.start) if completed and a.end is not None else max(now_ms() - a.start, 0) if st.live else \
        max(last - a.start, 0)
    attempt: dict[str, Any] = {
        "startTime": date(a.start), "endTime": date(end), "lastUpdated": date(last), "duration": duration,
        "sparkUser": a.user, "completed": completed, "appSparkVersion": a.spark_version or SPARK_VERSION}
    if a.exit_code is not None:
        attempt["exitCode"] = a.exit_code
    if a.log_path:  # replayed by a history server: which log it came from
        attempt["logSourceName"] = os.path.basename(a.log_path)
        attempt["logSourceFullPath"] = "file:" + a.log_path
    attempt.update({"startTimeEpoch": a.start, "endTimeEpoch": end, "lastUpdatedEpoch": last})
    return {"id": a.app_id, "name": a.name, "attempts": [attempt]}


# ----------------------------------------------------------------- jobs
def job(j: JobEntry) -> Doc:
    doc: dict[str, Any] = {"jobId": j.job_id, "name": j.name}
    if j.description:
        doc["description"] = j.description
    doc["submissionTime"] = date(j.submitted)
    if j.completed is not None:
        doc["completionTime"] = date(j.completed)
    doc["stageIds"] = list(j.stage_ids)
    if j.group:
        doc["jobGroup"] = j.group
    doc.update({
        "jobTags": list(j.tags), "status": j.status, "numTasks": j.num_tasks, "numActiveTasks": j.active_tasks,
        "numCompletedTasks": j.completed_tasks, "numSkippedTasks": j.skipped_tasks,
        "numFailedTasks": j.failed_tasks, "numKilledTasks": j.killed_tasks,
        "numCompletedIndices": len(j.completed_indices), "numActiveStages": len(j.active_stages),
        "numCompletedStages": len(j.completed_stages), "numSkippedStages": j.skipped_stages,
        "numFailedStages": j.failed_stages, "killedTasksSummary": dict(j.killed_summary)})
    return doc


# ----------------------------------------------------------------- stages and tasks
#: the metrics a task and a stage both report under their own names
_SCALAR_METRICS = ("executorDeserializeTime", "executorDeserializeCpuTime", "executorRunTime", "executorCpuTime",
                   "resultSize", "jvmGcTime", "resultSerializationTime", "memoryBytesSpilled", "diskBytesSpilled",
                   "peakExecutionMemory")


#: A task's ``shufflePushReadMetrics`` (and the quantiles' ``shufflePushReadMetricsDist``):
#: Spark's name of each field, and the flat metric it shows
_PUSH_READ_FIELDS = (
    ("corruptMergedBlockChunks", "shuffleCorruptMergedBlockChunks"),
    ("mergedFetchFallbackCount", "shuffleMergedFetchFallbackCount"),
    ("remoteMergedBlocksFetched", "shuffleMergedRemoteBlocksFetched"),
    ("localMergedBlocksFetched", "shuffleMergedLocalBlocksFetched"),
    ("remoteMergedChunksFetched", "shuffleMergedRemoteChunksFetched"),
    ("localMergedChunksFetched", "shuffleMergedLocalChunksFetched"),
    ("remoteMergedBytesRead", "shuffleMergedRemoteBytesRead"),
    ("localMergedBytesRead", "shuffleMergedLocalBytesRead"),
    ("remoteMergedReqsDuration", "shuffleMergedRemoteReqsDuration"),
)
#: StageData's fields that bear the flat metrics' own names, in its order (after shuffleReadRecords)
_STAGE_SHUFFLE_READ_EXTRAS = (
    "shuffleCorruptMergedBlockChunks", "shuffleMergedFetchFallbackCount", "shuffleMergedRemoteBlocksFetched",
    "shuffleMergedLocalBlocksFetched", "shuffleMergedRemoteChunksFetched", "shuffleMergedLocalChunksFetched",
    "shuffleMergedRemoteBytesRead", "shuffleMergedLocalBytesRead", "shuffleRemoteReqsDuration",
    "shuffleMergedRemoteReqsDuration")


def _scalars(m: list[int] | tuple[int, ...]) -> dict[str, Any]:
    return {k: m[M[k]] for k in _SCALAR_METRICS}


def _stage_metrics(m: list[int] | tuple[int, ...]) -> dict[str, int]:
    return {
        **_scalars(m),
        "inputBytes": m[M["inputBytesRead"]], "inputRecords": m[M["inputRecordsRead"]],
        "outputBytes": m[M["outputBytesWritten"]], "outputRecords": m[M["outputRecordsWritten"]],
        "shuffleRemoteBlocksFetched": m[M["shuffleRemoteBlocksFetched"]],
        "shuffleLocalBlocksFetched": m[M["shuffleLocalBlocksFetched"]],
        "shuffleFetchWaitTime": m[M["shuffleFetchWaitTime"]],
        "shuffleRemoteBytesRead": m[M["shuffleRemoteBytesRead"]],
        "shuffleRemoteBytesReadToDisk": m[M["shuffleRemoteBytesReadToDisk"]],
        "shuffleLocalBytesRead": m[M["shuffleLocalBytesRead"]],
        "shuffleReadBytes": m[M["shuffleRemoteBytesRead"]] + m[M["shuffleLocalBytesRead"]],
        "shuffleReadRecords": m[M["shuffleRecordsRead"]],
        **{k: m[M[k]] for k in _STAGE_SHUFFLE_READ_EXTRAS},
        "shuffleWriteBytes": m[M["shuffleBytesWritten"]], "shuffleWriteTime": m[M["shuffleWriteTime"]],
        "shuffleWriteRecords": m[M["shuffleRecordsWritten"]],
    }


def task_metrics(m: tuple[int, ...]) -> Doc:
    return {
        **_scalars(m),
        "inputMetrics": {"bytesRead": m[M["inputBytesRead"]], "recordsRead": m[M["inputRecordsRead"]]},
        "outputMetrics": {"bytesWritten": m[M["outputBytesWritten"]], "recordsWritten": m[M["outputRecordsWritten"]]},
        "shuffleReadMetrics": {
            "remoteBlocksFetched": m[M["shuffleRemoteBlocksFetched"]],
            "localBlocksFetched": m[M["shuffleLocalBlocksFetched"]],
            "fetchWaitTime": m[M["shuffleFetchWaitTime"]], "remoteBytesRead": m[M["shuffleRemoteBytesRead"]],
            "remoteBytesReadToDisk": m[M["shuffleRemoteBytesReadToDisk"]],
            "localBytesRead": m[M["shuffleLocalBytesRead"]], "recordsRead": m[M["shuffleRecordsRead"]],
            "remoteReqsDuration": m[M["shuffleRemoteReqsDuration"]],
            "shufflePushReadMetrics": {name: m[M[key]] for name, key in _PUSH_READ_FIELDS}},
        "shuffleWriteMetrics": {"bytesWritten": m[M["shuffleBytesWritten"]], "writeTime": m[M["shuffleWriteTime"]],
                                "recordsWritten": m[M["shuffleRecordsWritten"]]},
    }


def _duration(t: TaskEntry, live: bool) -> int:
    if t.status == "RUNNING":
        return max(now_ms() - t.launch, 0) if live else 0
    return max(t.finish - t.launch, 0)


def scheduler_delay(t: TaskEntry, duration: int) -> int:
    m = t.metrics
    return max(0, duration - m[M["executorRunTime"]] - m[M["executorDeserializeTime"]]
               - m[M["resultSerializationTime"]])


def task(t: TaskEntry, st: AppStatusListener) -> Doc:
    duration = _duration(t, st.live)
    ex = st.executors.get(t.executor_id)
    doc: dict[str, Any] = {
        "taskId": t.task_id, "index": t.index, "attempt": t.attempt, "partitionId": t.partition,
        "launchTime": date(t.launch), "duration": duration, "executorId": t.executor_id, "host": t.host,
        "status": t.status, "taskLocality": t.locality, "speculative": t.speculative, "accumulatorUpdates": []}
    if t.error:
        doc["errorMessage"] = t.error
    if t.status != "RUNNING":
        doc["taskMetrics"] = task_metrics(t.metrics)
    doc["executorLogs"] = dict(ex.logs) if ex is not None else {}
    doc["schedulerDelay"] = scheduler_delay(t, duration) if t.status != "RUNNING" else 0
    doc["gettingResultTime"] = 0
    return doc


def _executor_summary(s: StageEntry) -> Doc:
    out = {}
    for eid, es in s.aggregates().executors.items():
        m = es.metrics
        out[eid] = {
            "taskTime": es.task_time, "failedTasks": es.failed, "succeededTasks": es.succeeded,
            "killedTasks": es.killed, "inputBytes": m[M["inputBytesRead"]], "inputRecords": m[M["inputRecordsRead"]],
            "outputBytes": m[M["outputBytesWritten"]], "outputRecords": m[M["outputRecordsWritten"]],
            "shuffleRead": m[M["shuffleRemoteBytesRead"]] + m[M["shuffleLocalBytesRead"]],
            "shuffleReadRecords": m[M["shuffleRecordsRead"]], "shuffleWrite": m[M["shuffleBytesWritten"]],
            "shuffleWriteRecords": m[M["shuffleRecordsWritten"]], "memoryBytesSpilled": m[M["memoryBytesSpilled"]],
            "diskBytesSpilled": m[M["diskBytesSpilled"]], "isBlacklistedForStage": False,
            "isExcludedForStage": False}
    return out


def stage(s: StageEntry, st: AppStatusListener, details: bool) -> Doc:
    doc: dict[str, Any] = {
        "status": s.status, "stageId": s.stage_id, "attemptId": s.attempt, "numTasks": s.num_tasks,
        "numActiveTasks": s.active, "numCompleteTasks": s.complete, "numFailedTasks": s.failed,
        "numKilledTasks": s.killed, "numCompletedIndices": len(s.completed_indices)}
    if s.submitted is not None:
        doc["submissionTime"] = date(s.submitted)
    if s.first_launch is not None:
        doc["firstTaskLaunchedTime"] = date(s.first_launch)
    if s.completed is not None:
        doc["completionTime"] = date(s.completed)
    if s.failure is not None:
        doc["failureReason"] = s.failure
    doc.update(_stage_metrics(s.aggregates().metrics))
    doc["name"] = s.name
    if s.description:
        doc["description"] = s.description
    doc.update({"details": s.details, "schedulingPool": s.pool,
                "rddIds": [int(r.get("RDD ID", -1)) for r in s.rdds], "accumulatorUpdates": []})
    if details:
        doc["tasks"] = {str(t.task_id): task(t, st) for t in s.entries()}
        doc["executorSummary"] = _executor_summary(s)
    doc.update({"killedTasksSummary": dict(s.killed_summary), "resourceProfileId": 0})
    if s.first_launch is not None:
        doc["peakExecutorMetrics"] = executor_metrics_zero()
    doc.update({"isShufflePushEnabled": s.push_mergers > 0, "shuffleMergersCount": s.push_mergers})
    return doc


_TASK_SORT: dict[str, Callable[[TaskEntry], Any]] = {
    "ID": lambda t: t.task_id,
    "runtime": lambda t: t.metrics[M["executorRunTime"]],
    "-runtime": lambda t: -t.metrics[M["executorRunTime"]],
    "DECREASING_RUNTIME": lambda t: -t.metrics[M["executorRunTime"]],
    "INCREASING_RUNTIME": lambda t: t.metrics[M["executorRunTime"]],
}


def task_list(s: StageEntry, st: AppStatusListener, query: dict[str, str]) -> Doc:
    offset = _int(query, "offset", 0)
    length = _int(query, "length", 20)
    sort = query.get("sortBy", "ID")
    key = _TASK_SORT.get(sort)
    if key is None:
        raise ApiError(BAD_REQUEST, f"unknown sortBy {sort!r}; one of {', '.join(_TASK_SORT)}")
    tasks: Iterable[TaskEntry] = s.entries()
    status = query.get("status")
    if status:
        tasks = [t for t in tasks if t.status == status.upper()]
    ordered = sorted(tasks, key=key)
    return [task(t, st) for t in ordered[offset:offset + length]]


def _quantiles(values: list[float], qs: list[float]) -> list[float]:
    values = sorted(values)
    n = len(values)
    return [float(values[min(int(q * n), n - 1)]) for q in qs]


def task_summary(s: StageEntry, query: dict[str, str]) -> Doc:
    try:
        qs = [float(q) for q in query.get("quantiles", "0.05,0.25,0.5,0.75,0.95").split(",")]
    except ValueError:
        raise ApiError(BAD_REQUEST, f"quantiles must be numbers: {query.get('quantiles')!r}") from None
    if any(not 0 <= q <= 1 for q in qs):
        raise ApiError(BAD_REQUEST, "quantiles must be between 0 and 1")
    done = [t for t in s.entries() if t.status == "SUCCESS"]
    if not done:
        raise ApiError(NOT_FOUND, f"no successful task in stage {s.stage_id} attempt {s.attempt} yet")

    def q(values: Iterable[float]) -> list[float]:
        return _quantiles(list(values), qs)

    def metric(name: str) -> list[float]:
        i = M[name]
        return q(t.metrics[i] for t in done)

    durations = [max(t.finish - t.launch, 0) for t in done]
    return {
        "quantiles": qs, "duration": q(durations),
        "executorDeserializeTime": metric("executorDeserializeTime"),
        "executorDeserializeCpuTime": metric("executorDeserializeCpuTime"),
        "executorRunTime": metric("executorRunTime"), "executorCpuTime": metric("executorCpuTime"),
        "resultSize": metric("resultSize"), "jvmGcTime": metric("jvmGcTime"),
        "resultSerializationTime": metric("resultSerializationTime"), "gettingResultTime": q(0 for _ in done),
        "schedulerDelay": q(scheduler_delay(t, d) for t, d in zip(done, durations)),
        "peakExecutionMemory": metric("peakExecutionMemory"), "memoryBytesSpilled": metric("memoryBytesSpilled"),
        "diskBytesSpilled": metric("diskBytesSpilled"),
        "inputMetrics": {"bytesRead": metric("inputBytesRead"), "recordsRead": metric("inputRecordsRead")},
        "outputMetrics": {"bytesWritten": metric("outputBytesWritten"),
                          "recordsWritten": metric("outputRecordsWritten")},
        "shuffleReadMetrics": {
            "readBytes": q(t.metrics[M["shuffleRemoteBytesRead"]] + t.metrics[M["shuffleLocalBytesRead"]]
                           for t in done),
            "readRecords": metric("shuffleRecordsRead"),
            "remoteBlocksFetched": metric("shuffleRemoteBlocksFetched"),
            "localBlocksFetched": metric("shuffleLocalBlocksFetched"),
            "fetchWaitTime": metric("shuffleFetchWaitTime"), "remoteBytesRead": metric("shuffleRemoteBytesRead"),
            "remoteBytesReadToDisk": metric("shuffleRemoteBytesReadToDisk"),
            "totalBlocksFetched": q(t.metrics[M["shuffleRemoteBlocksFetched"]] +
                                    t.metrics[M["shuffleLocalBlocksFetched"]] for t in done),
            "remoteReqsDuration": metric("shuffleRemoteReqsDuration"),
            "shufflePushReadMetricsDist": {name: metric(key) for name, key in _PUSH_READ_FIELDS}},
        "shuffleWriteMetrics": {"writeBytes": metric("shuffleBytesWritten"),
                                "writeRecords": metric("shuffleRecordsWritten"),
                                "writeTime": metric("shuffleWriteTime")},
    }


# ----------------------------------------------------------------- executors, storage, environment
def executor(e: ExecutorEntry, st: AppStatusListener, totals: dict[str, Any]) -> Doc:
    t = totals.get(e.executor_id)
    m = t.metrics if t is not None else [0] * len(METRIC_KEYS)
    rdd_blocks = mem = disk = 0
    for rdd in st.rdds.values():
        for b in rdd.blocks.values():
            if e.executor_id in b["executors"]:
                rdd_blocks += 1
                mem += b["memory"]
                disk += b["disk"]
    doc: dict[str, Any] = {
        "id": e.executor_id, "hostPort": f"{e.host}:{e.port}" if e.port else e.host, "isActive": e.removed is None,
        "rddBlocks": rdd_blocks, "memoryUsed": mem, "diskUsed": disk, "totalCores": e.cores, "maxTasks": e.cores,
        "activeTasks": e.active_tasks, "failedTasks": e.failed_tasks, "completedTasks": e.completed_tasks,
        "totalTasks": e.active_tasks + e.failed_tasks + e.completed_tasks,
        "totalDuration": t.task_time if t is not None else 0, "totalGCTime": m[M["jvmGcTime"]],
        "totalInputBytes": m[M["inputBytesRead"]],
        "totalShuffleRead": m[M["shuffleRemoteBytesRead"]] + m[M["shuffleLocalBytesRead"]],
        "totalShuffleWrite": m[M["shuffleBytesWritten"]], "isBlacklisted": False, "maxMemory": e.max_memory,
        "addTime": date(e.added)}
    if e.removed is not None:
        doc["removeTime"] = date(e.removed)
        if e.remove_reason:
            doc["removeReason"] = e.remove_reason
    doc["executorLogs"] = dict(e.logs)
    doc["memoryMetrics"] = {"usedOnHeapStorageMemory": mem, "usedOffHeapStorageMemory": 0,
                            "totalOnHeapStorageMemory": e.max_memory, "totalOffHeapStorageMemory": 0}
    doc.update({"blacklistedInStages": [], "peakMemoryMetrics": executor_metrics_zero(), "attributes": {},
                "resources": {}, "resourceProfileId": 0, "isExcluded": False, "excludedInStages": []})
    return doc


def storage_level(level: dict[str, Any]) -> str:
    """Spark's description: ``Memory Serialized 1x Replicated``, ``Disk Memory Deserialized 1x Replicated``."""
    parts = []
    if level.get("Use Disk"):
        parts.append("Disk")
    if level.get("Use Memory"):
        parts.append("Memory")
    if level.get("Use Off Heap"):
        parts.append("Off Heap")
    parts.append("Deserialized" if level.get("Deserialized") else "Serialized")
    return " ".join(parts) + f" {int(level.get('Replication', 1))}x Replicated"


def rdd(r: RDDEntry, st: AppStatusListener) -> Doc:
    level = storage_level(r.storage_level)
    mem = sum(b["memory"] for b in r.blocks.values())
    disk = sum(b["disk"] for b in r.blocks.values())
    by_exec: dict[str, list[int]] = {}
    for b in r.blocks.values():
        for eid in b["executors"]:
            agg = by_exec.setdefault(eid, [0, 0])
            agg[0] += b["memory"]
            agg[1] += b["disk"]
    dist = []
    for eid, (m, d) in sorted(by_exec.items()):
        ex = st.executors.get(eid)
        addr = f"{ex.host}:{ex.port}" if ex is not None else eid
        remaining = max((ex.max_memory if ex is not None else 0) - m, 0)
        dist.append({"address": addr, "memoryUsed": m, "memoryRemaining": remaining, "diskUsed": d,
                     "onHeapMemoryUsed": m, "offHeapMemoryUsed": 0, "onHeapMemoryRemaining": remaining,
                     "offHeapMemoryRemaining": 0})
    parts = [{"blockName": name, "storageLevel": level, "memoryUsed": b["memory"], "diskUsed": b["disk"],
              "executors": list(b["executors"])} for name, b in sorted(r.blocks.items(), key=lambda kv: _block_key(kv[0]))]
    return {"id": r.rdd_id, "name": r.name, "numPartitions": r.num_partitions, "numCachedPartitions": len(r.blocks),
            "storageLevel": level, "memoryUsed": mem, "diskUsed": disk, "dataDistribution": dist,
            "partitions": parts}


def _block_key(name: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in name.split("_")[1:])
    except ValueError:
        return (0,)


def environment(st: AppStatusListener) -> Doc:
    env = st.app.environment

    def pairs(section: str) -> list[list[str]]:
        return [[str(k), str(v)] for k, v in sorted((env.get(section) or {}).items())]

    jvm = env.get("JVM Information") or {}
    return {"runtime": {"javaVersion": jvm.get("Java Version", ""), "javaHome": jvm.get("Java Home", ""),
                        "scalaVersion": jvm.get("Scala Version", "")},
            "sparkProperties": pairs("Spark Properties"), "hadoopProperties": pairs("Hadoop Properties"),
            "systemProperties": pairs("System Properties"), "metricsProperties": pairs("Metrics Properties"),
            "classpathEntries": pairs("Classpath Entries"), "resourceProfiles": []}


# ----------------------------------------------------------------- the DAG (sparkctl's extension)
def _latest_attempt(st: AppStatusListener, stage_id: int) -> StageEntry | None:
    return st.latest_attempt(stage_id)


def _dag_stage(s: StageEntry) -> Doc:
    return {"stageId": s.stage_id, "attemptId": s.attempt, "name": s.name, "status": s.status,
            "parentIds": list(s.parent_ids),
            "rdds": [{"id": int(r.get("RDD ID", -1)), "name": str(r.get("Name", "")),
                      "callsite": str(r.get("Callsite", "")), "parentIds": [int(p) for p in r.get("Parent IDs") or []],
                      "cached": bool((r.get("Storage Level") or {}).get("Use Memory") or
                                     (r.get("Storage Level") or {}).get("Use Disk")),
                      "numPartitions": int(r.get("Number of Partitions", 0))} for r in s.rdds]}


def dag(st: AppStatusListener, query: dict[str, str]) -> Doc:
    if "job" in query:
        j = st.jobs.get(_int(query, "job", -1))
        if j is None:
            raise ApiError(NOT_FOUND, f"unknown job {query['job']}")
        stages = [s for s in (_latest_attempt(st, sid) for sid in sorted(j.stage_ids)) if s is not None]
    elif "stage" in query:
        key = (_int(query, "stage", -1), _int(query, "attempt", 0))
        s = st.stages.get(key)
        if s is None:
            raise ApiError(NOT_FOUND, f"unknown stage {key[0]} attempt {key[1]}")
        parents = [p for p in (_latest_attempt(st, pid) for pid in s.parent_ids) if p is not None]
        stages = parents + [s]
    else:
        raise ApiError(BAD_REQUEST, "give ?job=N or ?stage=N&attempt=A")
    return {"stages": [_dag_stage(s) for s in stages]}


# ----------------------------------------------------------------- routing
def _int(query: dict[str, str], key: str, default: int) -> int:
    value = query.get(key)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ApiError(BAD_REQUEST, f"{key} must be an integer, not {value!r}") from None


def _stage_attempts(st: AppStatusListener, stage_id: int) -> list[StageEntry]:
    found = st._attempts(stage_id)[::-1]
    if not found:
        raise ApiError(NOT_FOUND, f"unknown stage {stage_id}")
    return found


def _app_route(st: AppStatusListener, rest: list[str], query: dict[str, str]) -> Doc:
    if not rest:
        return application(st)
    head, tail = rest[0], rest[1:]
    if head == "jobs":
        if not tail:
            wanted = {s.upper() for s in query.get("status", "").split(",") if s}
            jobs = sorted(st.jobs.values(), key=lambda j: -j.job_id)
            return [job(j) for j in jobs if not wanted or j.status in wanted]
        j = st.jobs.get(_int({"id": tail[0]}, "id", -1))
        if j is None or len(tail) > 1:
            raise ApiError(NOT_FOUND, f"unknown job {tail[0]}")
        return job(j)
    if head == "stages":
        if not tail:
            wanted = {s.upper() for s in query.get("status", "").split(",") if s}
            details = query.get("details", "false") == "true"
            stages = sorted(st.stages.values(), key=lambda s: (-s.stage_id, -s.attempt))
            return [stage(s, st, details) for s in stages if not wanted or s.status in wanted]
        sid = _int({"id": tail[0]}, "id", -1)
        if len(tail) == 1:
            return [stage(s, st, True) for s in _stage_attempts(st, sid)]
        s = st.stages.get((sid, _int({"attempt": tail[1]}, "attempt", -1)))
        if s is None:
            raise ApiError(NOT_FOUND, f"unknown stage {sid} attempt {tail[1]}")
        if len(tail) == 2:
            return stage(s, st, True)
        if tail[2:] == ["taskList"]:
            return task_list(s, st, query)
        if tail[2:] == ["taskSummary"]:
            return task_summary(s, query)
        raise ApiError(NOT_FOUND, f"unknown path {'/'.join(tail)}")
    if head in ("executors", "allexecutors") and not tail:
        totals = st.executor_totals()
        return [executor(e, st, totals) for e in st.executors.values() if head == "allexecutors" or e.removed is None]
    if head == "storage" and tail[:1] == ["rdd"]:
        if len(tail) == 1:
            return [rdd(r, st) for r in st.rdds.values() if r.blocks]
        r = st.rdds.get(_int({"id": tail[1]}, "id", -1))
        if r is None or len(tail) > 2:
            raise ApiError(NOT_FOUND, f"unknown RDD {tail[1]}")
        return rdd(r, st)
    if head == "environment" and not tail:
        return environment(st)
    if head == "sparkctl" and tail == ["dag"]:
        return dag(st, query)
    raise ApiError(NOT_FOUND, f"unknown path {'/'.join(rest)}")


def route(path: str, query: dict[str, str], apps: AppLookup) -> tuple[int, Doc]:
    """Answer ``GET /api/v1/...`` (``path`` is the part after ``/api/v1/``)."""
    parts = [p for p in path.split("/") if p]
    try:
        if parts == ["version"]:
            return 200, {"spark": SPARK_VERSION}
        if not parts or parts[0] != "applications":
            raise ApiError(NOT_FOUND, f"unknown path /api/v1/{path}")
        known = apps()
        if len(parts) == 1:
            docs = []
            for st in known.values():
                with st.lock:
                    if st.app.app_id:
                        docs.append(application(st))
            status = query.get("status", "").lower()
            if status in ("completed", "running"):
                docs = [d for d in docs if d["attempts"][0]["completed"] == (status == "completed")]
            docs.sort(key=lambda d: -d["attempts"][0]["startTimeEpoch"])
            limit = query.get("limit")
            return 200, docs[:_int(query, "limit", len(docs))] if limit else docs
        found = known.get(parts[1])
        if found is None:
            raise ApiError(NOT_FOUND, f"no such app: {parts[1]}")
        rest = parts[2:]
        if rest and rest[0] == "1" and _looks_like_attempt(rest):
            rest = rest[1:]  # /applications/APP/1/jobs: the attempt id Spark's cluster mode adds
        with found.lock:
            return 200, _app_route(found, rest, query)
    except ApiError as e:
        return e.status, {"error": str(e)}


def _looks_like_attempt(rest: list[str]) -> bool:
    return len(rest) > 1 and rest[1] in ("jobs", "stages", "executors", "allexecutors", "storage", "environment")


__all__ = ["route", "AppLookup", "ApiError", "date", "METRIC_KEYS"]
