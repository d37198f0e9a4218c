"""The driver's live UI: Spark's REST API (/api/v1) over real jobs, the event log it writes,
and the history server replaying that log into the same answers.

References: the numbers come from the jobs themselves (partitions, records, which stage
must be skipped), computed here in plain Python; the shapes and names are those of Apache
Spark's REST API (checked against Spark itself in tests/test_history_compat.py)."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from sparkctl import SparkConf, SparkContext
from sparkctl.deploy.history import FsHistoryProvider
from sparkctl.ui import api
from tests.clusters import wait_for

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent


def get(url: str, host: str | None = None) -> Any:
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def status_of(url: str, method: str = "GET", host: str | None = None) -> int:
    req = urllib.request.Request(url, method=method, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is not allowed")
    return x


@pytest.mark.timeout(60)
def test_ui_disabled_has_no_url_but_a_status_tracker() -> None:
    sc = SparkContext(conf=SparkConf().setMaster("local[1]").set("spark.ui.enabled", "false"))
    try:
        assert sc.uiWebUrl is None and sc._ui.server is None
        assert sc.parallelize(range(3)).count() == 3
        [job] = sc.statusTracker().getJobIdsForGroup()
        assert sc.statusTracker().getJobInfo(job).status == "SUCCEEDED"
    finally:
        sc.stop()


@pytest.mark.timeout(30)
def test_task_event_templates_write_what_the_json_encoder_would() -> None:
    """The event log's fast per-task lines are the same JSON as the general builders'."""
    from sparkctl.scheduler import events as ev
    start = ev.TaskStartRaw(1796049302675, 3, 1, 42, 7, 2, 9, 'ex "0"', "höst\n", "ANY", True)
    metrics = {"executorRunTime": 12, "shuffleBytesWritten": 300, "inputRecordsRead": 5, "executorCpuTime": 10**12}
    ends = [ev.TaskEndRaw(1796049302999, start, True, "FINISHED", "", "", "", metrics, 77),
            ev.TaskEndRaw(1796049302999, start, False, "FAILED", "ValueError", "bad \"x\"", "Traceback\n  ...", None, 0),
            ev.TaskEndRaw(1796049302999, start, False, "KILLED", "TaskKilled", "job cancelled", "", {}, 0),
            ev.TaskEndRaw(1796049302999, start, True, "FETCH_FAILED", "FetchFailed", "gone", "", None, 3),
            ev.TaskEndRaw(1796049302999, start, True, "FAILED", "ExecutorLost", "worker died", "", None, 0)]
    assert json.loads(ev.task_start_json(start)) == ev.task_start(start)
    for end in ends:
        assert json.loads(ev.task_end_json(end)) == ev.task_end(end)


@pytest.mark.timeout(60)
def test_unpersisted_rdd_leaves_the_storage_page() -> None:
    sc = SparkContext(conf=SparkConf().setMaster("local[1]").set("spark.ui.port", "0"))
    try:
        cached = sc.parallelize(range(10), 2).cache()
        assert cached.count() == 10
        base = f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}"
        wait_for(lambda: [r["numCachedPartitions"] for r in get(f"{base}/storage/rdd")] == [2], what="cached")
        cached.unpersist()
        wait_for(lambda: get(f"{base}/storage/rdd") == [], what="gone from the storage page")
    finally:
        sc.stop()


@pytest.fixture(scope="module")
def app(tmp_path_factory: Any) -> Any:
    """A finished-but-open application: a shuffle job, a second job reusing it, a failed job."""
    logs = tmp_path_factory.mktemp("eventlogs")
    conf = (SparkConf().setMaster("local[2]").setAppName("ui <test> & more")
            .set("spark.ui.port", "0").set("spark.eventLog.enabled", "true").set("spark.eventLog.dir", str(logs))
            .set("spark.task.maxFailures", "2").set("spark.my.password", "hunter2")
            .set("spark.not.secret.value", "token-in-value"))
    sc = SparkContext(conf=conf)
    try:
        pairs = sc.parallelize(range(100), 4).map(lambda x: (x % 5, x)).reduceByKey(lambda a, b: a + b, 3)
        pairs.cache()
        first = sorted(pairs.collect())
        count = pairs.count()
        with pytest.raises(Exception):
            sc.parallelize(range(4), 2).map(_fail_on_three).collect()
        # the failed job's other task may still be ending (killed or finishing): wait for it
        wait_for(lambda: not sc._runtime.events.running, what="the failed job's last task to end")
        sc._ui.bus.flush()
        yield {"sc": sc, "logs": logs, "first": first, "count": count,
               "base": f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}"}
    finally:
        sc.stop()


def test_ui_url_and_application(app: Any) -> None:
    sc = app["sc"]
    assert sc.uiWebUrl.startswith("http://127.0.0.1:")
    [doc] = get(f"{sc.uiWebUrl}/api/v1/applications")
    assert doc["id"] == sc.applicationId and doc["name"] == "ui <test> & more"
    attempt = doc["attempts"][0]
    assert attempt["completed"] is False and attempt["endTimeEpoch"] == -1
    assert attempt["startTimeEpoch"] == sc.startTime and attempt["sparkUser"] == sc.sparkUser()
    assert get(f"{sc.uiWebUrl}/api/v1/version") == {"spark": "4.3.0"}


def test_jobs_match_what_ran(app: Any) -> None:
    assert app["first"] == [(k, sum(x for x in range(100) if x % 5 == k)) for k in range(5)] and app["count"] == 5
    jobs = get(f"{app['base']}/jobs")
    assert [j["jobId"] for j in jobs] == [2, 1, 0]  # newest first, as Spark lists them
    failed, second, first = jobs
    assert (first["status"], first["numTasks"], first["numCompletedTasks"], first["numSkippedStages"]) == \
        ("SUCCEEDED", 4 + 3, 7, 0)
    # the second job reads the first's shuffle: its map stage is skipped, as in Spark
    assert (second["status"], second["numTasks"], second["numCompletedTasks"]) == ("SUCCEEDED", 7, 3)
    assert (second["numSkippedStages"], second["numSkippedTasks"], second["numCompletedStages"]) == (1, 4, 1)
    assert not set(second["stageIds"]) & set(first["stageIds"])
    assert failed["status"] == "FAILED" and failed["numFailedStages"] == 1
    assert failed["numFailedTasks"] == 2  # spark.task.maxFailures=2 attempts of the one bad partition
    assert first["name"].startswith("collect at ") and __file__ in first["name"]
    assert get(f"{app['base']}/jobs/1") == second
    assert [j["jobId"] for j in get(f"{app['base']}/jobs?status=failed")] == [2]


def test_stages_tasks_and_summary(app: Any) -> None:
    stages = {(s["stageId"], s["attemptId"]): s for s in get(f"{app['base']}/stages")}
    statuses = sorted((k[0], s["status"]) for k, s in stages.items())
    assert statuses == [(0, "COMPLETE"), (1, "COMPLETE"), (2, "SKIPPED"), (3, "COMPLETE"), (4, "FAILED")]
    assert "three is not allowed" in stages[(4, 0)]["failureReason"]
    map_stage = stages[(0, 0)]
    # the map-side combine leaves at most 5 keys per map task: 4 tasks write at most 20 records
    assert map_stage["shuffleWriteRecords"] == 20 and map_stage["shuffleWriteBytes"] > 0
    assert stages[(1, 0)]["shuffleReadRecords"] == 20
    assert "tasks" not in map_stage
    detail = get(f"{app['base']}/stages/0/0")
    assert sorted(t["index"] for t in detail["tasks"].values()) == [0, 1, 2, 3]
    assert sum(e["succeededTasks"] for e in detail["executorSummary"].values()) == 4
    tasks = get(f"{app['base']}/stages/0/0/taskList?length=2&offset=1")
    assert [t["taskId"] for t in tasks] == sorted(int(t) for t in detail["tasks"])[1:3]
    for t in tasks:
        assert t["status"] == "SUCCESS" and t["taskMetrics"]["shuffleWriteMetrics"]["recordsWritten"] > 0
    summary = get(f"{app['base']}/stages/0/0/taskSummary?quantiles=0,0.5,1")
    durations = sorted(t["duration"] for t in detail["tasks"].values())
    assert summary["quantiles"] == [0.0, 0.5, 1.0]
    assert summary["duration"] == [float(durations[0]), float(durations[2]), float(durations[-1])]
    failing = get(f"{app['base']}/stages/4/0/taskList?status=failed")
    assert len(failing) == 2 and all("three is not allowed" in t["errorMessage"] for t in failing)
    dag = get(f"{app['base']}/sparkctl/dag?job=1")
    assert [(s["stageId"], s["status"]) for s in dag["stages"]] == [(2, "SKIPPED"), (3, "COMPLETE")]
    assert any(r["cached"] for r in dag["stages"][1]["rdds"])
    assert dag["stages"][1]["parentIds"] == [2]


def test_executors_storage_environment(app: Any) -> None:
    execs = {e["id"]: e for e in get(f"{app['base']}/executors")}
    assert set(execs) == {"driver", "0"}
    ex = execs["0"]
    assert ex["isActive"] and ex["totalCores"] == 2
    assert ex["completedTasks"] in (4 + 3 + 3, 4 + 3 + 3 + 1) and ex["failedTasks"] == 2  # the good partition of
    # the failed job may have been cancelled with it
    [cached] = get(f"{app['base']}/storage/rdd")
    assert cached["numCachedPartitions"] == 3 and cached["numPartitions"] == 3
    assert cached["storageLevel"].startswith("Memory") and len(cached["partitions"]) == 3
    assert cached["memoryUsed"] == sum(p["memoryUsed"] for p in cached["partitions"]) > 0
    assert [p["executors"] for p in cached["partitions"]] == [["0"]] * 3
    assert cached["dataDistribution"][0]["memoryRemaining"] > 0 and execs["0"]["memoryUsed"] == cached["memoryUsed"]
    env = get(f"{app['base']}/environment")
    props = dict(env["sparkProperties"])
    assert props["spark.my.password"] == "*********(redacted)"
    assert props["spark.not.secret.value"] == "*********(redacted)"  # the value matches, as Spark's redaction
    assert props["spark.app.name"] == "ui <test> & more"


def test_errors_and_read_only(app: Any) -> None:
    sc = app["sc"]
    assert status_of(f"{app['base']}/jobs/99") == 404
    assert status_of(f"{app['base']}/stages/0/7") == 404
    assert status_of(f"{app['base']}/stages/0/0/taskList?offset=x") == 400
    assert status_of(f"{sc.uiWebUrl}/api/v1/applications/nope/jobs") == 404
    assert status_of(f"{sc.uiWebUrl}/jobs/", method="POST") == 405
    assert status_of(f"{sc.uiWebUrl}/jobs/", host="attacker.example") == 421
    assert status_of(f"{sc.uiWebUrl}/static/../server.py") == 404
    with urllib.request.urlopen(f"{sc.uiWebUrl}/jobs/", timeout=10) as resp:
        page = resp.read().decode()
        assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert "ui &lt;test&gt; &amp; more" in page and "ui <test>" not in page


def test_event_log_replays_to_the_same_answers(app: Any) -> None:
    sc, logs = app["sc"], app["logs"]
    live = Path(logs) / (sc.applicationId + ".inprogress")
    assert live.exists() and stat.S_IMODE(live.stat().st_mode) == 0o600
    sc._ui.bus.flush()
    provider = FsHistoryProvider(str(logs))

    def all_written() -> bool:  # the writer process is at most a bus poll behind
        provider.scan()
        return sum(1 for line in live.read_text().splitlines() if '"SparkListenerTaskEnd"' in line) == \
            sum(1 for line in live.read_text().splitlines() if '"SparkListenerTaskStart"' in line) >= 12
    wait_for(all_written, 10, "the event log to hold every task's end")
    apps = provider.applications()
    assert list(apps) == [sc.applicationId]
    for path in ("jobs", "stages", "storage/rdd", "stages/0/0/taskList?length=100"):
        live_doc = get(f"{app['base']}/{path}")
        parts = path.split("?")
        query = dict(p.split("=") for p in parts[1].split("&")) if len(parts) > 1 else {}
        code, replayed = api.route(f"applications/{sc.applicationId}/{parts[0]}", query, provider.applications)
        assert code == 200
        for a, b in zip(_timeless(replayed) if isinstance(replayed, list) else [replayed],
                        _timeless(live_doc) if isinstance(live_doc, list) else [live_doc]):
            assert {k: v for k, v in a.items() if v != b.get(k)} == {}, (path, {k: b.get(k) for k in a if a[k] != b.get(k)})
    events = [json.loads(line)["Event"] for line in live.read_text().splitlines()]
    assert events[0] == "SparkListenerLogStart" and "SparkListenerApplicationStart" in events
    assert events.count("SparkListenerJobStart") == events.count("SparkListenerJobEnd") == 3
    assert events.count("SparkListenerTaskEnd") == events.count("SparkListenerTaskStart") >= 4 + 3 + 3 + 2


def _timeless(doc: Any) -> Any:
    """Drop what legitimately differs between a live answer and a replay: durations of
    running things and the executors' log links."""
    if isinstance(doc, dict):
        return {k: _timeless(v) for k, v in doc.items() if k not in ("duration",)}
    if isinstance(doc, list):
        return [_timeless(v) for v in doc]
    return doc


@pytest.mark.timeout(180)
def test_history_daemon_follows_a_running_application(tmp_path: Path) -> None:
    """`sparkctl history start` serves the applications of a log directory, picks up a
    running one as its log grows, shows it completed once it stops, and stops cleanly."""
    logs = tmp_path / "logs"
    logs.mkdir()
    env = dict(os.environ, SPARKCTL_PID_DIR=str(tmp_path / "pids"), SPARKCTL_LOG_DIR=str(tmp_path / "daemon-logs"))
    flag = tmp_path / "go"
    script = tmp_path / "app.py"
    script.write_text(
        "import os, sys, time\n"
        "from sparkctl import SparkConf, SparkContext\n"
        f"conf = SparkConf().setMaster('local[2]').setAppName('followed').set('spark.ui.enabled', 'false')"
        f".set('spark.eventLog.enabled', 'true').set('spark.eventLog.dir', {str(logs)!r})\n"
        "sc = SparkContext(conf=conf)\n"
        "print(sc.parallelize(range(10), 2).count(), flush=True)\n"
        f"while not os.path.exists({str(flag)!r}): time.sleep(0.05)\n"
        "print(sc.parallelize(range(10), 5).map(lambda x: (x, 1)).reduceByKey(lambda a, b: a + b).count(), flush=True)\n"
        "sc.stop()\n")
    cli = [sys.executable, str(ROOT / "bin" / "sparkctl")]
    out = subprocess.run(cli + ["history", "start", "--port", "0", "--log-directory", str(logs),
                                "--update-interval", "0.2"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    url = next(w for w in out.stdout.split() if w.startswith("http://"))
    driver = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert driver.stdout is not None and driver.stdout.readline().strip() == "10"
        [doc] = wait_for(lambda: get(f"{url}/api/v1/applications") or None, what="the running app listed")
        assert doc["name"] == "followed" and doc["attempts"][0]["completed"] is False
        app_id = doc["id"]
        wait_for(lambda: len(get(f"{url}/api/v1/applications/{app_id}/jobs")) == 1, what="its first job")
        flag.write_text("go")
        assert driver.stdout.readline().strip() == "10"
        assert driver.wait(60) == 0
        wait_for(lambda: get(f"{url}/api/v1/applications")[0]["attempts"][0]["completed"], what="completed")
        jobs = get(f"{url}/api/v1/applications/{app_id}/jobs")
        assert [(j["jobId"], j["status"], j["numTasks"]) for j in jobs] == [(1, "SUCCEEDED", 10), (0, "SUCCEEDED", 2)]
        assert status_of(f"{url}/history/{app_id}/jobs/") == 200
        assert status_of(f"{url}/history/nope/jobs/") == 404
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(10)
        stopped = subprocess.run(cli + ["history", "stop"], env=env, capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0 and "stopped history" in stopped.stdout, stopped.stdout + stopped.stderr


@pytest.mark.timeout(120)
def test_event_log_of_a_killed_driver_stays_in_progress(tmp_path: Path) -> None:
    """The log is written by a child process: a driver killed by SIGKILL leaves it with every
    event handed over so far, still named .inprogress (as Spark's), and no writer behind."""
    logs = tmp_path / "logs"
    logs.mkdir()
    script = tmp_path / "app.py"
    script.write_text(
        "import time\n"
        "from sparkctl import SparkConf, SparkContext\n"
        "sc = SparkContext(conf=SparkConf().setMaster('local[1]').set('spark.ui.enabled', 'false')"
        f".set('spark.eventLog.enabled', 'true').set('spark.eventLog.dir', {str(logs)!r}))\n"
        "print(sc.parallelize(range(10), 3).count(), sc._ui.event_log.proc.pid, sc.applicationId, flush=True)\n"
        "time.sleep(120)\n")
    driver = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert driver.stdout is not None
        count, writer_pid, app_id = driver.stdout.readline().split()
        assert count == "10"
        log = logs / (app_id + ".inprogress")
        wait_for(lambda: log.exists() and log.read_text().count('"SparkListenerTaskEnd"') == 3, 30, "three task ends")
    finally:
        driver.kill()
        driver.wait(10)
    wait_for(lambda: not os.path.exists(f"/proc/{writer_pid}"), 30, "the writer process to exit")
    assert [p.name for p in logs.iterdir()] == [app_id + ".inprogress"]
    events = [json.loads(line)["Event"] for line in log.read_text().splitlines()]
    assert events[0] == "SparkListenerLogStart" and events[-1] != "SparkListenerApplicationEnd"
