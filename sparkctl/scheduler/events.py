"""Scheduler events as Apache Spark writes them in its event logs (``JsonProtocol``).

Every event on the listener bus is one of these JSON objects, so an event log written by
sparkctl opens in Spark's own History Server, and the status store reads one shape whether
it is live or replaying a log. Field names, nesting and units are Spark's: times are epoch
milliseconds, CPU times and the shuffle write time nanoseconds.

The per-task events are posted by the runtime as compact tuples (``TaskStartRaw``,
``TaskEndRaw``) and turned into JSON here, on the bus thread: the scheduler pays for a tuple.
"""
from __future__ import annotations

import getpass
import json
import os
import platform
import sys
from typing import Any, Iterable, NamedTuple

from sparkctl.rdd.dependencies import narrow_lineage

SPARK_VERSION = "4.3.0"  # the event-log format version written (and the PySpark API followed)

Event = dict[str, Any]

#: Spark's executor metrics (its ExecutorMetricType names). sparkctl has no JVM and does not
#: sample its processes' memory per task, so they read 0; they are there for the readers that
#: expect every one of them.
EXECUTOR_METRIC_NAMES = (
    "JVMHeapMemory", "JVMOffHeapMemory", "OnHeapExecutionMemory", "OffHeapExecutionMemory", "OnHeapStorageMemory",
    "OffHeapStorageMemory", "OnHeapUnifiedMemory", "OffHeapUnifiedMemory", "DirectPoolMemory", "MappedPoolMemory",
    "ProcessTreeJVMVMemory", "ProcessTreeJVMRSSMemory", "ProcessTreePythonVMemory", "ProcessTreePythonRSSMemory",
    "ProcessTreeOtherVMemory", "ProcessTreeOtherRSSMemory", "MinorGCCount", "MinorGCTime", "MajorGCCount",
    "MajorGCTime", "TotalGCTime", "ConcurrentGCCount", "ConcurrentGCTime")
#: The "Push Based Shuffle" object of a task's "Shuffle Read Metrics", in Spark's order: each
#: field and the flat metric of ``TaskOutcome.metrics`` it carries (reads of merged slices).
PUSH_READ_METRICS = (
    ("Corrupt Merged Block Chunks", "shuffleCorruptMergedBlockChunks"),
    ("Merged Fetch Fallback Count", "shuffleMergedFetchFallbackCount"),
    ("Merged Remote Blocks Fetched", "shuffleMergedRemoteBlocksFetched"),
    ("Merged Local Blocks Fetched", "shuffleMergedLocalBlocksFetched"),
    ("Merged Remote Chunks Fetched", "shuffleMergedRemoteChunksFetched"),
    ("Merged Local Chunks Fetched", "shuffleMergedLocalChunksFetched"),
    ("Merged Remote Bytes Read", "shuffleMergedRemoteBytesRead"),
    ("Merged Local Bytes Read", "shuffleMergedLocalBytesRead"),
    ("Merged Remote Requests Duration", "shuffleMergedRemoteReqsDuration"),  # ms
)


def executor_metrics_zero() -> dict[str, int]:
    return dict.fromkeys(EXECUTOR_METRIC_NAMES, 0)


def _storage_level(level: Any) -> dict[str, Any]:
    return {"Use Disk": bool(getattr(level, "useDisk", False)), "Use Memory": bool(getattr(level, "useMemory", False)),
            "Use Off Heap": bool(getattr(level, "useOffHeap", False)),
            "Deserialized": bool(getattr(level, "deserialized", False)),
            "Replication": int(getattr(level, "replication", 1))}


def rdd_name(rdd: Any) -> str:
    return rdd._name or type(rdd).__name__


def rdd_info(rdd: Any, cached_partitions: int = 0) -> Event:
    return {"RDD ID": rdd._id, "Name": rdd_name(rdd), "Callsite": getattr(rdd, "_creation_site", "") or "",
            "Parent IDs": [d.rdd._id for d in rdd.dependencies],
            "Storage Level": _storage_level(rdd._storage_level), "Barrier": bool(getattr(rdd, "_is_barrier", False)),
            "DeterministicLevel": "DETERMINATE", "Number of Partitions": len(rdd.partitions),
            "Number of Cached Partitions": cached_partitions, "Memory Size": 0, "Disk Size": 0}


def stage_rdds(stage: Any) -> list[Any]:
    """The RDDs a stage's tasks compute: its RDD and its narrow ancestors, up to shuffles."""
    return list(narrow_lineage(stage.rdd))


def _stage_rdd_infos(stage: Any) -> list[Event]:
    """The stage's RDD infos, built once per stage (job start, submission and completion
    all describe it); copied, as listeners keep what they are given."""
    infos = getattr(stage, "_rdd_infos", None)
    if infos is None:
        infos = stage._rdd_infos = [rdd_info(r) for r in stage_rdds(stage)]
    return [dict(i) for i in infos]


def stage_info(stage: Any, attempt: int, num_tasks: int | None = None, submitted: int | None = None,
               completed: int | None = None, failure: str | None = None, name: str | None = None) -> Event:
    info: Event = {
        "Stage ID": stage.id, "Stage Attempt ID": max(attempt, 0), "Stage Name": name or stage_name(stage),
        "Number of Tasks": stage.num_partitions if num_tasks is None else num_tasks,
        "RDD Info": _stage_rdd_infos(stage),
        "Parent IDs": sorted(p.id for p in stage.parents),
        "Details": getattr(stage, "details", "") or "",
        "Accumulables": [], "Resource Profile Id": 0,
    }
    mergers = getattr(stage, "push_mergers", 0)  # set when a map stage's tasks push (push-based shuffle)
    info["Shuffle Push Enabled"] = bool(mergers)
    info["Shuffle Push Mergers Count"] = mergers
    if submitted is not None:
        info["Submission Time"] = submitted
    if completed is not None:
        info["Completion Time"] = completed
    if failure is not None:
        info["Failure Reason"] = failure
    return info


def stage_name(stage: Any) -> str:
    """As Spark names stages: a result stage by its job's action and line, a shuffle map
    stage by the call that created the RDD the shuffle reads from."""
    site = getattr(stage, "call_site", None) or getattr(getattr(stage, "dep", None), "creation_site", None)
    if site:
        return str(site)
    rdd = stage.rdd
    return getattr(rdd, "_creation_site", "") or rdd_name(rdd)


def properties(props: dict[str, str] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (props or {}).items()}


# ----------------------------------------------------------------- application
def log_start() -> Event:
    return {"Event": "SparkListenerLogStart", "Spark Version": SPARK_VERSION}


def application_start(name: str, app_id: str, ts: int, user: str) -> Event:
    return {"Event": "SparkListenerApplicationStart", "App Name": name, "App ID": app_id, "Timestamp": ts,
            "User": user}


def application_end(ts: int, exit_code: int | None = None) -> Event:
    ev: Event = {"Event": "SparkListenerApplicationEnd", "Timestamp": ts}
    if exit_code is not None:
        ev["ExitCode"] = exit_code
    return ev


def environment_update(spark_properties: Iterable[tuple[str, str]]) -> Event:
    return {
        "Event": "SparkListenerEnvironmentUpdate",
        # Spark reports its JVM; we report the Python that runs the driver, in the same slots.
        "JVM Information": {"Java Version": f"Python {platform.python_version()}", "Java Home": sys.prefix,
                            "Scala Version": f"sparkctl on {platform.python_implementation()}"},
        "Spark Properties": {k: v for k, v in spark_properties},
        "Hadoop Properties": {},
        "System Properties": {"user.name": _user(), "os.name": platform.system(), "os.version": platform.release(),
                              "python.executable": sys.executable, "user.dir": os.getcwd()},
        "Metrics Properties": {},
        "Classpath Entries": {p: "Python Path" for p in sys.path if p},
    }


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return str(os.getuid())


def executor_added(ts: int, executor_id: str, host: str, cores: int, log_urls: dict[str, str] | None) -> Event:
    return {"Event": "SparkListenerExecutorAdded", "Timestamp": ts, "Executor ID": executor_id,
            "Executor Info": {"Host": host, "Total Cores": cores, "Log Urls": dict(log_urls or {}), "Attributes": {},
                              "Resources": {}, "Resource Profile Id": 0, "Registration Time": ts}}


def resource_profile_added(executor_cores: int, executor_memory_mib: int, task_cpus: int) -> Event:
    """The default resource profile (id 0), as Spark writes it first in every log."""
    def request(name: str, amount: int) -> Event:
        return {"Resource Name": name, "Amount": amount, "Discovery Script": "", "Vendor": ""}

    return {"Event": "SparkListenerResourceProfileAdded", "Resource Profile Id": 0,
            "Executor Resource Requests": {"cores": request("cores", executor_cores),
                                           "memory": request("memory", executor_memory_mib),
                                           "offHeap": request("offHeap", 0)},
            "Task Resource Requests": {"cpus": {"Resource Name": "cpus", "Amount": float(task_cpus)}}}


def executor_removed(ts: int, executor_id: str, reason: str) -> Event:
    return {"Event": "SparkListenerExecutorRemoved", "Timestamp": ts, "Executor ID": executor_id,
            "Removed Reason": reason}


def block_manager_added(ts: int, executor_id: str, host: str, port: int, max_mem: int) -> Event:
    return {"Event": "SparkListenerBlockManagerAdded", "Block Manager ID": {"Executor ID": executor_id,
                                                                            "Host": host, "Port": port},
            "Maximum Memory": max_mem, "Timestamp": ts, "Maximum Onheap Memory": max_mem,
            "Maximum Offheap Memory": 0}


def unpersist_rdd(rdd_id: int) -> Event:
    return {"Event": "SparkListenerUnpersistRDD", "RDD ID": rdd_id}


# ----------------------------------------------------------------- jobs and stages
def job_start(job_id: int, ts: int, stages: list[Any], props: dict[str, str] | None) -> Event:
    infos = [stage_info(st, st.attempt if st.attempt >= 0 else 0) for st in sorted(stages, key=lambda s: s.id)]
    return {"Event": "SparkListenerJobStart", "Job ID": job_id, "Submission Time": ts, "Stage Infos": infos,
            "Stage IDs": [i["Stage ID"] for i in infos], "Properties": properties(props)}


def job_end(job_id: int, ts: int, error: BaseException | None) -> Event:
    if error is None:
        result: Event = {"Result": "JobSucceeded"}
    else:
        result = {"Result": "JobFailed", "Exception": {"Message": f"{type(error).__name__}: {error}",
                                                       "Stack Trace": []}}
    return {"Event": "SparkListenerJobEnd", "Job ID": job_id, "Completion Time": ts, "Job Result": result}


def stage_submitted(info: Event, props: dict[str, str] | None) -> Event:
    return {"Event": "SparkListenerStageSubmitted", "Stage Info": info, "Properties": properties(props)}


def stage_completed(info: Event) -> Event:
    return {"Event": "SparkListenerStageCompleted", "Stage Info": info}


# ----------------------------------------------------------------- tasks
class TaskStartRaw(NamedTuple):
    ts: int
    stage_id: int
    stage_attempt: int
    task_id: int
    task_index: int
    attempt: int
    partition: int
    executor_id: str
    host: str
    locality: str
    speculative: bool


class TaskEndRaw(NamedTuple):
    ts: int
    start: TaskStartRaw
    is_map: bool
    state: str  # FINISHED, FAILED, KILLED, FETCH_FAILED (sparkctl.scheduler.messages)
    error_type: str
    error_message: str
    traceback: str
    metrics: dict[str, int] | None
    result_size: int


def _task_info(s: TaskStartRaw, finish: int = 0, failed: bool = False, killed: bool = False) -> Event:
    return {"Task ID": s.task_id, "Index": s.task_index, "Attempt": s.attempt, "Partition ID": s.partition,
            "Launch Time": s.ts, "Executor ID": s.executor_id, "Host": s.host, "Locality": s.locality,
            "Speculative": s.speculative, "Getting Result Time": 0, "Finish Time": finish, "Failed": failed,
            "Killed": killed, "Accumulables": []}


def task_start(raw: TaskStartRaw) -> Event:
    return {"Event": "SparkListenerTaskStart", "Stage ID": raw.stage_id, "Stage Attempt ID": raw.stage_attempt,
            "Task Info": _task_info(raw)}


def task_metrics(m: dict[str, int] | None, result_size: int, run_ms: int) -> Event:
    g = (m or {}).get
    return {
        "Executor Deserialize Time": g("executorDeserializeTime", 0),
        "Executor Deserialize CPU Time": g("executorDeserializeCpuTime", 0),
        "Executor Run Time": g("executorRunTime", run_ms),
        "Executor CPU Time": g("executorCpuTime", 0),
        "Peak Execution Memory": g("peakExecutionMemory", 0),
        "Peak On Heap Execution Memory": g("peakExecutionMemory", 0),
        "Peak Off Heap Execution Memory": 0,
        "Result Size": g("resultSize", result_size),
        "JVM GC Time": g("jvmGcTime", 0),
        "Result Serialization Time": g("resultSerializationTime", 0),
        "Memory Bytes Spilled": g("memoryBytesSpilled", 0),
        "Disk Bytes Spilled": g("diskBytesSpilled", 0),
        "Shuffle Read Metrics": {
            "Remote Blocks Fetched": g("shuffleRemoteBlocksFetched", 0),
            "Local Blocks Fetched": g("shuffleLocalBlocksFetched", 0),
            "Fetch Wait Time": g("shuffleFetchWaitTime", 0),
            "Remote Bytes Read": g("shuffleRemoteBytesRead", 0),
            "Remote Bytes Read To Disk": g("shuffleRemoteBytesReadToDisk", 0),
            "Local Bytes Read": g("shuffleLocalBytesRead", 0),
            "Total Records Read": g("shuffleRecordsRead", 0),
            "Remote Requests Duration": g("shuffleRemoteReqsDuration", 0),
            "Push Based Shuffle": {name: g(key, 0) for name, key in PUSH_READ_METRICS},
        },
        "Shuffle Write Metrics": {
            "Shuffle Bytes Written": g("shuffleBytesWritten", 0),
            "Shuffle Write Time": g("shuffleWriteTime", 0),
            "Shuffle Records Written": g("shuffleRecordsWritten", 0),
        },
        "Input Metrics": {"Bytes Read": g("inputBytesRead", 0), "Records Read": g("inputRecordsRead", 0)},
        "Output Metrics": {"Bytes Written": g("outputBytesWritten", 0), "Records Written": g("outputRecordsWritten", 0)},
        "Updated Blocks": [],
    }


def _end_reason(raw: TaskEndRaw) -> Event:
    if raw.state == "FINISHED":
        return {"Reason": "Success"}
    if raw.state == "KILLED":
        return {"Reason": "TaskKilled", "Kill Reason": raw.error_message or "killed", "Accumulator Updates": []}
    if raw.state == "FETCH_FAILED":
        return {"Reason": "FetchFailed", "Block Manager Address": None, "Shuffle ID": -1, "Map ID": -1,
                "Map Index": -1, "Reduce ID": -1, "Message": raw.error_message}
    if raw.error_type == "ExecutorLost":
        return {"Reason": "ExecutorLostFailure", "Executor ID": raw.start.executor_id, "Exit Caused By App": True,
                "Loss Reason": raw.error_message}
    full = f"{raw.error_type}: {raw.error_message}"
    return {"Reason": "ExceptionFailure", "Class Name": raw.error_type or "Exception",
            "Description": raw.error_message,
            "Stack Trace": [],
            "Full Stack Trace": f"{raw.traceback}" if raw.traceback else full,
            "Accumulator Updates": []}


def task_end(raw: TaskEndRaw) -> Event:
    s = raw.start
    ok = raw.state == "FINISHED"
    return {"Event": "SparkListenerTaskEnd", "Stage ID": s.stage_id, "Stage Attempt ID": s.stage_attempt,
            "Task Type": "ShuffleMapTask" if raw.is_map else "ResultTask",
            "Task End Reason": _end_reason(raw),
            "Task Info": _task_info(s, raw.ts, failed=not ok and raw.state != "KILLED", killed=raw.state == "KILLED"),
            "Task Executor Metrics": executor_metrics_zero(),
            "Task Metrics": task_metrics(raw.metrics, raw.result_size, max(raw.ts - s.ts, 0))}


def convert(raw: Any) -> Event | None:
    """The bus's converter: a raw tuple from the runtime to its Spark JSON object."""
    if isinstance(raw, TaskEndRaw):
        return task_end(raw)
    if isinstance(raw, TaskStartRaw):
        return task_start(raw)
    if callable(raw):  # an event built late, off the scheduler's lock
        return raw()  # type: ignore[no-any-return]
    raise TypeError(f"unknown raw listener event {type(raw).__name__}")


# ----------------------------------------------------------------- fast paths for the event log
# The per-task events as JSON text straight from a template: the same text json.dumps would
# give for task_start()/task_end() (the tests check it), several times faster, because an
# event log of a many-task job writes two of them per task.
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


_quoted: dict[str, str] = {}


def _q(text: str) -> str:
    """``text`` as a JSON string; executor ids, hosts and localities repeat, so they are kept."""
    q = _quoted.get(text)
    if q is None:
        if len(_quoted) > 4096:
            _quoted.clear()
        q = _quoted[text] = _dumps(text)
    return q


def task_info_prefix(s: TaskStartRaw) -> str:
    """A task's "Task Info" object up to its finish time: the same in its start and end lines."""
    return ('{"Task ID":%d,"Index":%d,"Attempt":%d,"Partition ID":%d,"Launch Time":%d,"Executor ID":%s,'
            '"Host":%s,"Locality":%s,"Speculative":%s,"Getting Result Time":0,"Finish Time":') % (
        s.task_id, s.task_index, s.attempt, s.partition, s.ts, _q(s.executor_id), _q(s.host),
        _q(s.locality), _B[s.speculative])


_B = {True: "true", False: "false"}
_INFO_END = '%d,"Failed":%s,"Killed":%s,"Accumulables":[]}'


def task_start_json(raw: TaskStartRaw, prefix: str | None = None) -> str:
    return '{"Event":"SparkListenerTaskStart","Stage ID":%d,"Stage Attempt ID":%d,"Task Info":%s%s}' % (
        raw.stage_id, raw.stage_attempt, prefix or task_info_prefix(raw), '0,"Failed":false,"Killed":false,'
                                                                           '"Accumulables":[]}')


_EXECUTOR_METRICS_JSON = "{" + ",".join(f'"{n}":0' for n in EXECUTOR_METRIC_NAMES) + "}"
# A task's "Push Based Shuffle" object: for most tasks (they read no merged slice) the zeros'
# constant, which map() yields by itself as the default of its slot in _METRIC_ORDER (no flat
# metric has the slot's name); formatted only for a task that has one of its metrics.
_PUSH_KEYS = tuple(key for _, key in PUSH_READ_METRICS)
_PUSH_KEY_SET = frozenset(_PUSH_KEYS)
_NO_PUSH = (0,) * len(_PUSH_KEYS)
_PUSH_ZEROS_JSON = "{" + ",".join(f'"{name}":0' for name, _ in PUSH_READ_METRICS) + "}"
_PUSH_TEMPLATE = "{" + ",".join(f'"{name}":%d' for name, _ in PUSH_READ_METRICS) + "}"
_PUSH_SLOT = "Push Based Shuffle"
_METRICS_TEMPLATE = (
    '{"Executor Deserialize Time":%d,"Executor Deserialize CPU Time":%d,"Executor Run Time":%d,'
    '"Executor CPU Time":%d,"Peak Execution Memory":%d,"Peak On Heap Execution Memory":%d,'
    '"Peak Off Heap Execution Memory":0,"Result Size":%d,"JVM GC Time":%d,'
    '"Result Serialization Time":%d,"Memory Bytes Spilled":%d,"Disk Bytes Spilled":%d,'
    '"Shuffle Read Metrics":{"Remote Blocks Fetched":%d,"Local Blocks Fetched":%d,"Fetch Wait Time":%d,'
    '"Remote Bytes Read":%d,"Remote Bytes Read To Disk":%d,"Local Bytes Read":%d,"Total Records Read":%d,'
    '"Remote Requests Duration":%d,"Push Based Shuffle":%s},'
    '"Shuffle Write Metrics":{"Shuffle Bytes Written":%d,"Shuffle Write Time":%d,'
    '"Shuffle Records Written":%d},"Input Metrics":{"Bytes Read":%d,"Records Read":%d},'
    '"Output Metrics":{"Bytes Written":%d,"Records Written":%d},"Updated Blocks":[]}')


_METRIC_ORDER = ("executorDeserializeTime", "executorDeserializeCpuTime", "executorRunTime", "executorCpuTime",
                 "peakExecutionMemory", "peakExecutionMemory", "resultSize", "jvmGcTime", "resultSerializationTime",
                 "memoryBytesSpilled", "diskBytesSpilled", "shuffleRemoteBlocksFetched", "shuffleLocalBlocksFetched",
                 "shuffleFetchWaitTime", "shuffleRemoteBytesRead", "shuffleRemoteBytesReadToDisk",
                 "shuffleLocalBytesRead", "shuffleRecordsRead", "shuffleRemoteReqsDuration", _PUSH_SLOT,
                 "shuffleBytesWritten", "shuffleWriteTime", "shuffleRecordsWritten", "inputBytesRead",
                 "inputRecordsRead", "outputBytesWritten", "outputRecordsWritten")
_NO_METRICS: tuple[int | str, ...] = tuple(_PUSH_ZEROS_JSON if k == _PUSH_SLOT else 0 for k in _METRIC_ORDER)
_EMPTY: dict[str, int] = {}

# One template for the whole line: the metrics' values follow the task's own in one tuple.
_END_TEMPLATE = ('{"Event":"SparkListenerTaskEnd","Stage ID":%d,"Stage Attempt ID":%d,"Task Type":"%s",'
                 '"Task End Reason":%s,"Task Info":%s' + _INFO_END + ',"Task Executor Metrics":' +
                 _EXECUTOR_METRICS_JSON + ',"Task Metrics":' + _METRICS_TEMPLATE + '}')
_HEAD = 8  # the values before the metrics': stage, attempt, task type, reason, task info, finish, failed, killed
_RUN, _SIZE, _PUSH = (_HEAD + _METRIC_ORDER.index(k) for k in ("executorRunTime", "resultSize", _PUSH_SLOT))


def task_end_json(raw: TaskEndRaw, prefix: str | None = None) -> str:
    """``prefix``: the task's ``task_info_prefix``, when its start line made it already."""
    s = raw.start
    state = raw.state
    ok = state == "FINISHED"
    m = raw.metrics or _EMPTY
    values = (s.stage_id, s.stage_attempt, "ShuffleMapTask" if raw.is_map else "ResultTask",
              '{"Reason":"Success"}' if ok else _dumps(_end_reason(raw)), prefix or task_info_prefix(s), raw.ts,
              _B[not ok and state != "KILLED"], _B[state == "KILLED"],
              *map(m.get, _METRIC_ORDER, _NO_METRICS))  # in C
    pushed = not _PUSH_KEY_SET.isdisjoint(m)
    if pushed or "executorRunTime" not in m or "resultSize" not in m:
        fixed = list(values)  # the defaults task_metrics() takes too, and the task's own push reads
        if "executorRunTime" not in m:
            fixed[_RUN] = max(raw.ts - s.ts, 0)
        if "resultSize" not in m:
            fixed[_SIZE] = raw.result_size
        if pushed:
            fixed[_PUSH] = _PUSH_TEMPLATE % tuple(map(m.get, _PUSH_KEYS, _NO_PUSH))
        values = tuple(fixed)
    return _END_TEMPLATE % values
