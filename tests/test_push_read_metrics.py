"""Push-based shuffle read metrics from a task's outcome to every place Spark shows them.

A reducer's reads of merged slices reach the driver as flat metrics in ``TaskOutcome.metrics``
(``shuffleMergedRemoteBlocksFetched`` ...; sparkctl/executor/task_metrics.py), with the time
of its remote requests (``shuffleRemoteReqsDuration``). From there they must appear:

```
 TaskEndRaw ──task_end_json──▶ event log: "Shuffle Read Metrics" {"Remote Requests Duration",
     │                                     "Push Based Shuffle" {nine fields}}
     │                                          │ replayed (sparkctl history; Spark's History Server)
     ▼ live                                     ▼
 AppStatusListener ──────────────────────▶ /api/v1 stage (shuffleMerged*), taskList
                                           (shufflePushReadMetrics), taskSummary (...Dist)
```
The reference for the event-log shape and the REST names is Apache Spark 4.3 itself: its
History Server reads a log sparkctl wrote and must report the same numbers (a slow test,
skipped without Java and PySpark's jars). The numbers themselves are the flat metrics the
synthetic tasks carry, summed and ranked here in plain Python.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sparkctl.deploy.history import FsHistoryProvider
from sparkctl.scheduler import events as ev
from sparkctl.scheduler.event_logging import EventLoggingListener
from sparkctl.ui import api
from sparkctl.ui.status_listener import AppStatusListener
from tests.spark_reference import SparkHistoryServer, fetch_json, reference_missing

pytestmark = pytest.mark.timeout(60)

APP_ID = "local-1796049300000"
T0 = 1796049300000
# the flat metric of each field of Spark's REST shufflePushReadMetrics
PUSH_FIELDS = {
    "corruptMergedBlockChunks": "shuffleCorruptMergedBlockChunks",
    "mergedFetchFallbackCount": "shuffleMergedFetchFallbackCount",
    "remoteMergedBlocksFetched": "shuffleMergedRemoteBlocksFetched",
    "localMergedBlocksFetched": "shuffleMergedLocalBlocksFetched",
    "remoteMergedChunksFetched": "shuffleMergedRemoteChunksFetched",
    "localMergedChunksFetched": "shuffleMergedLocalChunksFetched",
    "remoteMergedBytesRead": "shuffleMergedRemoteBytesRead",
    "localMergedBytesRead": "shuffleMergedLocalBytesRead",
    "remoteMergedReqsDuration": "shuffleMergedRemoteReqsDuration",
}
NEW_KEYS = ("shuffleRemoteReqsDuration", *PUSH_FIELDS.values())

# The reduce stage's three tasks: two read merged slices (the second also the metrics sparkctl
# does not produce yet, local merged reads and corrupt chunks, to show they are carried), one
# found its merger gone and read the map outputs instead. Zeros are left out, as executors do.
REDUCE_METRICS: list[dict[str, int]] = [
    {"executorRunTime": 31, "executorCpuTime": 20_000_000, "resultSize": 1200, "shuffleRemoteBlocksFetched": 4,
     "shuffleRemoteBytesRead": 4000, "shuffleRecordsRead": 40, "shuffleFetchWaitTime": 2,
     "shuffleRemoteReqsDuration": 7, "shuffleMergedRemoteBlocksFetched": 2, "shuffleMergedRemoteChunksFetched": 1,
     "shuffleMergedRemoteBytesRead": 2500, "shuffleMergedRemoteReqsDuration": 5},
    {"executorRunTime": 45, "executorCpuTime": 30_000_000, "resultSize": 1300, "shuffleRemoteBlocksFetched": 6,
     "shuffleRemoteBytesRead": 7000, "shuffleLocalBlocksFetched": 1, "shuffleLocalBytesRead": 300,
     "shuffleRecordsRead": 70, "shuffleRemoteReqsDuration": 12, "shuffleMergedRemoteBlocksFetched": 3,
     "shuffleMergedRemoteChunksFetched": 2, "shuffleMergedRemoteBytesRead": 5100,
     "shuffleMergedRemoteReqsDuration": 9, "shuffleMergedLocalBlocksFetched": 1,
     "shuffleMergedLocalChunksFetched": 1, "shuffleMergedLocalBytesRead": 300, "shuffleCorruptMergedBlockChunks": 1},
    {"executorRunTime": 20, "executorCpuTime": 10_000_000, "resultSize": 1100, "shuffleRemoteBlocksFetched": 2,
     "shuffleRemoteBytesRead": 1500, "shuffleLocalBlocksFetched": 2, "shuffleLocalBytesRead": 900,
     "shuffleRecordsRead": 30, "shuffleRemoteReqsDuration": 3, "shuffleMergedFetchFallbackCount": 1},
]
MAP_METRICS: list[dict[str, int]] = [
    {"executorRunTime": 10, "resultSize": 900, "shuffleBytesWritten": 2000 + i, "shuffleWriteTime": 350_000,
     "shuffleRecordsWritten": 10, "inputRecordsRead": 50} for i in range(2)]


def _stages() -> tuple[SimpleNamespace, SimpleNamespace]:
    """Two stages as the DAG scheduler hands them to the event builders: a map stage whose
    tasks push to two mergers, and the reduce stage reading its shuffle."""
    def rdd(rdd_id: int, name: str, parts: int, parents: list[Any]) -> dict[str, Any]:
        return ev.rdd_info(SimpleNamespace(_id=rdd_id, _name=name, _creation_site=f"{name} at push.py:{rdd_id}",
                                           dependencies=[SimpleNamespace(rdd=p) for p in parents],
                                           _storage_level=None, partitions=list(range(parts))))
    source = SimpleNamespace(_id=0)
    map_stage = SimpleNamespace(id=0, attempt=0, num_partitions=2, parents=[], details="", push_mergers=2,
                                call_site="reduceByKey at push.py:3", _rdd_infos=[rdd(0, "parallelize", 2, [])])
    reduce_stage = SimpleNamespace(id=1, attempt=0, num_partitions=3, parents=[map_stage], details="",
                                   call_site="collect at push.py:4", _rdd_infos=[rdd(1, "reduceByKey", 3, [source])])
    return map_stage, reduce_stage


def task_events() -> list[Any]:
    """The application's events in the order a driver posts them: Spark JSON objects, and
    the per-task raw tuples."""
    map_stage, reduce_stage = _stages()
    out: list[Any] = [
        ev.application_start("push-read-metrics", APP_ID, T0, "tester"),
        ev.environment_update([("spark.app.name", "push-read-metrics"), ("spark.shuffle.push.enabled", "true")]),
        ev.resource_profile_added(1, 512, 1),
        ev.block_manager_added(T0 + 1, "driver", "127.0.0.1", 40000, 1 << 28),
    ]
    for n in (1, 2):
        out.append(ev.executor_added(T0 + 2, str(n), "127.0.0.1", 1, None))
        out.append(ev.block_manager_added(T0 + 2, str(n), "127.0.0.1", 40000 + n, 1 << 28))
    out.append(ev.job_start(0, T0 + 10, [map_stage, reduce_stage], {}))
    task_id, clock = 0, T0 + 20
    for stage, metrics in ((map_stage, MAP_METRICS), (reduce_stage, REDUCE_METRICS)):
        submitted = clock
        out.append(ev.stage_submitted(ev.stage_info(stage, 0, submitted=submitted), {}))
        for index, m in enumerate(metrics):
            start = ev.TaskStartRaw(clock, stage.id, 0, task_id, index, 0, index, str(1 + index % 2), "127.0.0.1",
                                    "NODE_LOCAL", False)
            out.append(start)
            clock += 60
            out.append(ev.TaskEndRaw(clock, start, stage is map_stage, "FINISHED", "", "", "", dict(m),
                                     m["resultSize"]))
            task_id += 1
        out.append(ev.stage_completed(ev.stage_info(stage, 0, submitted=submitted, completed=clock)))
    out.append(ev.job_end(0, clock + 1, None))
    out.append(ev.application_end(clock + 2, 0))
    return out


def _feed(listener: Any) -> None:
    """The application's events to a listener: tasks as raw tuples, the rest as JSON objects."""
    for e in task_events():
        if isinstance(e, ev.TaskStartRaw):
            listener.on_task_start_raw(e)
        elif isinstance(e, ev.TaskEndRaw):
            listener.on_task_end_raw(e)
        else:
            listener.on_event(e)


def write_event_log(log_dir: Path) -> Path:
    """The application's event log, written by sparkctl's own EventLoggingListener."""
    writer = EventLoggingListener(str(log_dir))
    writer.open(APP_ID)
    _feed(writer)
    writer.stop()
    return log_dir / APP_ID


def live_listener() -> AppStatusListener:
    """The live driver's status listener fed the same events."""
    st = AppStatusListener()
    _feed(st)
    return st


def quantiles(values: list[int], qs: tuple[float, ...] = (0.0, 0.5, 1.0)) -> list[float]:
    ranked = sorted(values)
    return [float(ranked[min(int(q * len(ranked)), len(ranked) - 1)]) for q in qs]


def expected_stage_fields() -> dict[str, int]:
    """StageData's fields for the reduce stage: the sums over its tasks."""
    return {key: sum(m.get(key, 0) for m in REDUCE_METRICS) for key in NEW_KEYS}


def route(apps: Any, path: str, query: dict[str, str] | None = None) -> Any:
    code, doc = api.route(f"applications/{APP_ID}/{path}", query or {}, apps)
    assert code == 200, (path, doc)
    return doc


# ----------------------------------------------------------------------------- the event log line
def test_task_end_line_carries_the_push_read_metrics() -> None:
    """Every new metric lands in its field of the task-end line, alone or with the others,
    and the fast template writes what the general builder (task_metrics) would."""
    assert all(any(m.get(k) for m in REDUCE_METRICS) for k in NEW_KEYS), "each metric must be nonzero somewhere"
    start = ev.TaskStartRaw(T0, 1, 0, 7, 1, 0, 1, "1", "127.0.0.1", "NODE_LOCAL", False)
    for m in [*REDUCE_METRICS, *({k: 5} for k in NEW_KEYS), MAP_METRICS[0], {}]:
        raw = ev.TaskEndRaw(T0 + 50, start, False, "FINISHED", "", "", "", m, 99)
        line = json.loads(ev.task_end_json(raw))
        assert line == ev.task_end(raw)
        read = line["Task Metrics"]["Shuffle Read Metrics"]
        assert read["Remote Requests Duration"] == m.get("shuffleRemoteReqsDuration", 0)
        assert read["Push Based Shuffle"] == {name: m.get(key, 0) for name, key in ev.PUSH_READ_METRICS}
        assert list(read["Push Based Shuffle"]) == [name for name, _ in ev.PUSH_READ_METRICS]
    # the failed attempt's metrics are written too
    failed = ev.TaskEndRaw(T0 + 50, start, False, "FAILED", "ValueError", "bad", "", REDUCE_METRICS[1], 0)
    assert json.loads(ev.task_end_json(failed)) == ev.task_end(failed)


# ----------------------------------------------------------------------------- sparkctl's status and REST API
def test_event_log_and_live_listener_show_them_in_the_rest_api(tmp_path: Path) -> None:
    """sparkctl's history (the log replayed) and the live listener (raw tuples) answer the
    same: stage sums under StageData's names, each task's shufflePushReadMetrics, quantiles."""
    write_event_log(tmp_path)
    provider = FsHistoryProvider(str(tmp_path))
    provider.scan()
    live = live_listener()
    for apps in (provider.applications, lambda: {APP_ID: live}):
        stage = route(apps, "stages/1/0")
        assert {k: stage[k] for k in NEW_KEYS} == expected_stage_fields()
        map_stage = route(apps, "stages/0/0")
        assert map_stage["shuffleMergedRemoteBlocksFetched"] == 0  # the map stage read nothing
        # the map stage pushed, to two mergers; the reduce stage pushed nothing
        assert (map_stage["isShufflePushEnabled"], map_stage["shuffleMergersCount"]) == (True, 2)
        assert (stage["isShufflePushEnabled"], stage["shuffleMergersCount"]) == (False, 0)

        tasks = route(apps, "stages/1/0/taskList", {"length": "10"})
        assert [t["index"] for t in tasks] == [0, 1, 2]
        for t, m in zip(tasks, REDUCE_METRICS):
            read = t["taskMetrics"]["shuffleReadMetrics"]
            assert read["remoteReqsDuration"] == m["shuffleRemoteReqsDuration"]
            assert read["shufflePushReadMetrics"] == {name: m.get(key, 0) for name, key in PUSH_FIELDS.items()}
        assert stage["tasks"][str(tasks[1]["taskId"])] == tasks[1]

        summary = route(apps, "stages/1/0/taskSummary", {"quantiles": "0,0.5,1"})
        read_q = summary["shuffleReadMetrics"]
        assert read_q["remoteReqsDuration"] == quantiles([m["shuffleRemoteReqsDuration"] for m in REDUCE_METRICS])
        assert read_q["shufflePushReadMetricsDist"] == {
            name: quantiles([m.get(key, 0) for m in REDUCE_METRICS]) for name, key in PUSH_FIELDS.items()}
    for path in ("stages/1/0", "stages/1/0/taskSummary"):
        assert route(provider.applications, path) == route(lambda: {APP_ID: live}, path)


# ----------------------------------------------------------------------------- Apache Spark's History Server
@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(reference_missing() is not None, reason=reference_missing() or "")
def test_sparks_history_server_reads_them_from_a_sparkctl_log(tmp_path: Path) -> None:
    """Apache Spark 4.3's History Server replays sparkctl's log into the same numbers: the
    stage's shuffleMerged* sums, each task's shufflePushReadMetrics, and the quantiles of
    taskSummary, each equal to what sparkctl's own REST API answers for the log."""
    logs = tmp_path / "eventlogs"
    logs.mkdir()
    write_event_log(logs)
    provider = FsHistoryProvider(str(logs))
    provider.scan()
    with SparkHistoryServer(logs, tmp_path / "spark-history") as server:
        server.wait_completed(APP_ID)
        base = f"{server.url}/api/v1/applications/{APP_ID}"
        stage = fetch_json(f"{base}/stages/1/0")
        map_stage = fetch_json(f"{base}/stages/0/0")
        tasks = fetch_json(f"{base}/stages/1/0/taskList?length=10")
        summary = fetch_json(f"{base}/stages/1/0/taskSummary?quantiles=0,0.5,1")
    assert {k: stage[k] for k in NEW_KEYS} == expected_stage_fields()
    push_fields = ("isShufflePushEnabled", "shuffleMergersCount")
    assert [map_stage[k] for k in push_fields] == [True, 2]
    assert [stage[k] for k in push_fields] == [False, 0]
    ours_tasks = {t["taskId"]: t for t in route(provider.applications, "stages/1/0/taskList", {"length": "10"})}
    assert sorted(t["taskId"] for t in tasks) == sorted(ours_tasks)
    for t in tasks:
        theirs, ours = t["taskMetrics"]["shuffleReadMetrics"], ours_tasks[t["taskId"]]["taskMetrics"]["shuffleReadMetrics"]
        assert theirs == ours
        assert theirs["shufflePushReadMetrics"] == {
            name: REDUCE_METRICS[t["index"]].get(key, 0) for name, key in PUSH_FIELDS.items()}
    ours_summary = route(provider.applications, "stages/1/0/taskSummary", {"quantiles": "0,0.5,1"})
    assert summary["shuffleReadMetrics"] == ours_summary["shuffleReadMetrics"]
    assert summary["shuffleReadMetrics"]["shufflePushReadMetricsDist"]["remoteMergedBytesRead"] == [0.0, 2500.0, 5100.0]
