"""sparkctl's live UI, event logs and history server answer as Apache Spark's do.

One two-job program runs twice on a two-worker local cluster (``local-cluster[2,1,512]``),
with event logging on and both event logs in one directory: once under PySpark 4.3 (the
reference) and once with ``sparkctl submit``. Its second job reuses the first job's
shuffle, so Spark shows that job's map stage as SKIPPED. While each program still runs
(it waits on a flag file after its jobs), the test reads its live UI's
``/api/v1/applications/APP/jobs``, ``/stages`` and ``/executors``; sparkctl's answers must
match Spark's in what is deterministic (job and stage ids, statuses, task and stage
counts, executors and their cores) and carry every field Spark's objects carry. After
both end, Apache Spark's History Server and ``sparkctl history``, pointed at the same
directory, must list sparkctl's application as completed with the same jobs, stages and
task counts as Spark's live UI showed for the reference.

Timings, ids of RDDs and names of call sites differ by nature and are not compared.
Java runs the reference; without it the module is skipped (.ci/run installs Java).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.clusters import assert_none_left
from tests.spark_reference import (DriverProgram, SparkHistoryServer, event_log_files, fetch_json, not_loopback,
                                   pyspark_conf, read_events, reference_missing, run_pyspark, run_sparkctl,
                                   wait_until)

ROOT = Path(__file__).resolve().parent.parent
MASTER = "local-cluster[2,1,512]"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

if reference_missing():
    pytest.skip(reference_missing() or "", allow_module_level=True)

# Job 0 (collect) runs the shuffle's map stage (4 tasks) and the reduce stage (2 tasks).
# Job 1 (count) needs the same shuffle: its map outputs exist, so its map stage is skipped.
PROGRAM = '''
import json, os, sys, time
from {api} import SparkConf, SparkContext

ready, release = sys.argv[1], sys.argv[2]
sc = SparkContext(conf=SparkConf().setAppName("history-compat"))
pairs = sc.parallelize(range(1000), 4).map(lambda x: (x % 10, 1)).reduceByKey(lambda a, b: a + b, 2)
counts = sorted(pairs.collect())
n = pairs.count()
info = {{"uiWebUrl": sc.uiWebUrl, "applicationId": sc.applicationId, "counts": counts, "count": n}}
with open(ready + ".tmp", "w") as f:
    json.dump(info, f)
os.rename(ready + ".tmp", ready)
deadline = time.monotonic() + 240
while not os.path.exists(release) and time.monotonic() < deadline:
    time.sleep(0.05)
sc.stop()
'''
EXPECTED_COUNTS = [[k, 100] for k in range(10)]

# What must agree between Spark's and sparkctl's answers, object by object.
JOB_FIELDS = ("jobId", "stageIds", "status", "numTasks", "numActiveTasks", "numCompletedTasks", "numSkippedTasks",
              "numFailedTasks", "numKilledTasks", "numCompletedIndices", "numActiveStages", "numCompletedStages",
              "numSkippedStages", "numFailedStages", "killedTasksSummary")
STAGE_FIELDS = ("stageId", "attemptId", "status", "numTasks", "numActiveTasks", "numCompleteTasks",
                "numFailedTasks", "numKilledTasks", "numCompletedIndices", "killedTasksSummary")
EXECUTOR_FIELDS = ("id", "isActive", "totalCores", "maxTasks", "activeTasks", "failedTasks", "rddBlocks")
# Spark's REST dates: "2026-11-30T15:12:03.123GMT"
SPARK_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}GMT$")


# ----------------------------------------------------------------------------- comparing answers
def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def shape_mismatches(theirs: Any, ours: Any, where: str) -> list[str]:
    """Where *ours* lacks a field Spark's object has, holds another kind of value (number,
    string, boolean, list, object), or writes a date in another format; nested objects and
    the first element of lists of objects are compared the same way."""
    found: list[str] = []
    if isinstance(theirs, dict):
        if not isinstance(ours, dict):
            return [f"{where}: expected an object, got {ours!r:.80}"]
        for key, value in theirs.items():
            if key not in ours:
                found.append(f"{where}.{key}: missing (Spark: {value!r:.60})")
                continue
            found += shape_mismatches(value, ours[key], f"{where}.{key}")
    elif isinstance(theirs, list):
        if not isinstance(ours, list):
            return [f"{where}: expected a list, got {ours!r:.80}"]
        if theirs and ours and isinstance(theirs[0], dict):
            found += shape_mismatches(theirs[0], ours[0], f"{where}[0]")
    elif theirs is not None and ours is not None and _kind(theirs) != _kind(ours):
        found.append(f"{where}: expected a {_kind(theirs)} like {theirs!r:.40}, got {ours!r:.60}")
    elif isinstance(theirs, str) and SPARK_DATE.match(theirs) and not SPARK_DATE.match(str(ours)):
        found.append(f"{where}: expected a date like {theirs!r}, got {ours!r:.60}")
    return found


def value_mismatches(theirs: dict[str, Any], ours: dict[str, Any], fields: tuple[str, ...], where: str) -> list[str]:
    return [f"{where}.{f}: expected {theirs.get(f)!r}, got {ours.get(f, '<missing>')!r}"
            for f in fields if f in theirs and theirs.get(f) != ours.get(f)]


def _action(job: dict[str, Any]) -> str:
    """The action a job ran for: Spark names a job "count at app.py:9"."""
    return str(job.get("name", "")).split(" at ")[0].strip()


def compare_jobs(theirs: list[dict[str, Any]], ours: list[dict[str, Any]], where: str) -> list[str]:
    found = []
    if [j.get("jobId") for j in theirs] != [j.get("jobId") for j in ours]:
        found.append(f"{where}: job ids (in the order listed) expected {[j.get('jobId') for j in theirs]}, "
                     f"got {[j.get('jobId') for j in ours]}")
    ours_by_id = {j.get("jobId"): j for j in ours}
    for job in theirs:
        mine = ours_by_id.get(job["jobId"])
        if mine is None:
            continue
        here = f"{where}[job {job['jobId']}]"
        found += value_mismatches(job, mine, JOB_FIELDS, here)
        if _action(job) != _action(mine):
            found.append(f"{here}.name: expected the action {_action(job)!r} ({job.get('name')!r}), "
                         f"got {mine.get('name')!r}")
        found += shape_mismatches(job, mine, here)
    return found


def compare_stages(theirs: list[dict[str, Any]], ours: list[dict[str, Any]], where: str) -> list[str]:
    def key(s: dict[str, Any]) -> tuple[Any, Any]:
        return s.get("stageId"), s.get("attemptId")
    found = []
    if [key(s) for s in theirs] != [key(s) for s in ours]:
        found.append(f"{where}: (stageId, attemptId) in the order listed expected {[key(s) for s in theirs]}, "
                     f"got {[key(s) for s in ours]}")
    ours_by_key = {key(s): s for s in ours}
    for stage in theirs:
        mine = ours_by_key.get(key(stage))
        if mine is None:
            continue
        here = f"{where}[stage {stage['stageId']}.{stage['attemptId']}]"
        found += value_mismatches(stage, mine, STAGE_FIELDS, here)
        found += shape_mismatches(stage, mine, here)
    return found


def compare_executors(theirs: list[dict[str, Any]], ours: list[dict[str, Any]], where: str) -> list[str]:
    found = []
    if sorted(e["id"] for e in theirs) != sorted(str(e.get("id")) for e in ours):
        found.append(f"{where}: executor ids expected {sorted(e['id'] for e in theirs)}, "
                     f"got {sorted(str(e.get('id')) for e in ours)}")
    for total in ("completedTasks", "totalTasks", "failedTasks"):
        want = sum(e.get(total, 0) for e in theirs)
        got = sum(e.get(total, 0) for e in ours if isinstance(e.get(total, 0), int))
        if want != got:
            found.append(f"{where}: {total} over all executors expected {want}, got {got}")
    ours_by_id = {e.get("id"): e for e in ours}
    for executor in theirs:
        mine = ours_by_id.get(executor["id"])
        if mine is None:
            continue
        here = f"{where}[executor {executor['id']}]"
        found += value_mismatches(executor, mine, EXECUTOR_FIELDS, here)
        if not re.fullmatch(r"[\w.\-]+:\d+", str(mine.get("hostPort", ""))):
            found.append(f"{here}.hostPort: expected host:port like {executor.get('hostPort')!r}, "
                         f"got {mine.get('hostPort')!r}")
        if sorted(executor.get("executorLogs", {})) != sorted(mine.get("executorLogs") or {}):
            found.append(f"{here}.executorLogs: expected the links {sorted(executor.get('executorLogs', {}))}, "
                         f"got {sorted(mine.get('executorLogs') or {})}")
        found += shape_mismatches(executor, mine, here)
    return found


def report(found: list[str]) -> str:
    return f"{len(found)} difference(s) from Apache Spark:\n  " + "\n  ".join(found)


# ----------------------------------------------------------------------------- running the program
def _program(base: Path, api: str) -> Path:
    path = base / f"history_compat_{api}.py"
    path.write_text(PROGRAM.format(api=api))
    return path


def live_snapshot(ui_url: str) -> dict[str, Any]:
    """What the live UI's REST API answers about its one application."""
    api = ui_url.rstrip("/") + "/api/v1"
    apps = fetch_json(api + "/applications")
    assert isinstance(apps, list) and len(apps) == 1, f"{api}/applications: expected one application, got {apps}"
    app_id = apps[0]["id"]
    return {
        "applications": apps,
        "app_id": app_id,
        "jobs": fetch_json(f"{api}/applications/{app_id}/jobs"),
        "stages": fetch_json(f"{api}/applications/{app_id}/stages"),
        "executors": fetch_json(f"{api}/applications/{app_id}/executors"),
    }


def _settled(snapshot: dict[str, Any]) -> bool:
    """Both jobs ended and every task they completed counted on an executor: the listener
    bus (Spark's too) delivers events after the action has returned, so a UI read at once
    may be a moment behind."""
    jobs, executors = snapshot["jobs"], snapshot["executors"]
    return (len(jobs) == 2 and all(j.get("status") not in ("RUNNING", "UNKNOWN") for j in jobs)
            and sum(j.get("numCompletedTasks", 0) for j in jobs) == sum(e.get("completedTasks", 0) for e in executors))


def settled_snapshot(ui_url: str, timeout: float = 10) -> dict[str, Any]:
    """The live snapshot once it is settled, or the last one after *timeout* seconds (the
    comparisons then show what was missing)."""
    deadline = time.monotonic() + timeout
    while True:
        snapshot = live_snapshot(ui_url)
        if _settled(snapshot) or time.monotonic() > deadline:
            return snapshot
        time.sleep(0.1)


def run_and_snapshot(program: DriverProgram, log_dir: Path) -> dict[str, Any]:
    """Wait for the program's jobs, read its live UI, then let it stop: the snapshot, its
    READY info, what it listened on, its event log's name while it ran, its exit status."""
    try:
        info = program.wait_ready()
        assert info["counts"] == EXPECTED_COUNTS and info["count"] == 10, info
        assert info["uiWebUrl"], f"{program.label}: sc.uiWebUrl is {info['uiWebUrl']!r}"
        snapshot = settled_snapshot(info["uiWebUrl"])
        running_logs = [p.name for p in event_log_files(log_dir) if info["applicationId"] in p.name]
        listening = program.listening()
        status = program.finish()
    finally:
        program.kill()
    return {"info": info, "live": snapshot, "listening": listening, "running_logs": running_logs, "status": status,
            "output": program.output()}


# ----------------------------------------------------------------------------- sparkctl history
class SparkctlHistory:
    """``sparkctl history start|stop`` under private pid, log, work and conf dirs."""

    def __init__(self, base: Path, log_dir: Path) -> None:
        self.base = base
        self.log_dir = log_dir
        conf = base / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "sparkctl-defaults.conf").write_text("")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK", "PYSPARK"))}
        self.env.update(PYTHONPATH=str(ROOT), SPARKCTL_CONF_DIR=str(conf), SPARKCTL_PID_DIR=str(base / "pids"),
                        SPARKCTL_LOG_DIR=str(base / "logs"), SPARKCTL_WORK_DIR=str(base / "work"))
        self.url = ""

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(ROOT / "bin" / "sparkctl"), "history", *args], env=self.env,
                              cwd=self.base, capture_output=True, text=True, timeout=60)

    def start(self) -> "SparkctlHistory":
        r = self.cli("start", "--host", "127.0.0.1", "--port", "0", "--log-directory", str(self.log_dir),
                     "--update-interval", "1")
        assert r.returncode == 0, f"sparkctl history start failed:\n{r.stdout}\n{r.stderr}"
        found = re.search(r"https?://[\w.\-]+:\d+", r.stdout + r.stderr)
        assert found, f"sparkctl history start printed no URL:\n{r.stdout}\n{r.stderr}"
        self.url = found.group(0)
        return self

    def stop(self) -> None:
        self.cli("stop")

    def wait_completed(self, app_id: str, timeout: float = 60) -> dict[str, Any]:
        def listed() -> dict[str, Any] | None:
            for app in fetch_json(self.url + "/api/v1/applications"):
                if app.get("id") == app_id and app.get("attempts") and all(a.get("completed")
                                                                           for a in app["attempts"]):
                    return app  # type: ignore[no-any-return]
            return None
        return wait_until(listed, timeout, f"sparkctl history to list {app_id} as completed")  # type: ignore[no-any-return]


def history_snapshot(url: str, app_id: str) -> dict[str, Any]:
    api = f"{url}/api/v1/applications/{app_id}"
    return {"jobs": fetch_json(api + "/jobs"), "stages": fetch_json(api + "/stages"),
            "executors": fetch_json(api + "/allexecutors")}


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("history-compat")
    (path / "eventlogs").mkdir()
    yield path
    assert_none_left(path)


@pytest.fixture(scope="module")
def log_dir(base: Path) -> Path:
    return base / "eventlogs"


def _conf(log_dir: Path) -> dict[str, str]:
    # a local-cluster worker offers 512 MiB: Spark refuses its 1 GiB executor default
    return {**pyspark_conf(log_dir), "spark.executor.memory": "512m"}


@pytest.fixture(scope="module")
def reference(base: Path, log_dir: Path) -> dict[str, Any]:
    """The program under PySpark 4.3, on Spark's own local-cluster."""
    run = run_and_snapshot(run_pyspark(_program(base, "pyspark"), base / "pyspark", MASTER, _conf(log_dir)), log_dir)
    assert run["status"] == 0, run["output"]
    return run


@pytest.fixture(scope="module")
def ours(base: Path, log_dir: Path, reference: dict[str, Any]) -> dict[str, Any]:
    """The same program with ``sparkctl submit`` (after the reference: one cluster at a time)."""
    run = run_and_snapshot(run_sparkctl(_program(base, "sparkctl"), base / "sparkctl", MASTER, _conf(log_dir)), log_dir)
    assert run["status"] == 0, run["output"]
    return run


@pytest.fixture(scope="module")
def spark_history(base: Path, log_dir: Path, reference: dict[str, Any],
                  ours: dict[str, Any]) -> Iterator[SparkHistoryServer]:
    with SparkHistoryServer(log_dir, base / "spark-history") as server:
        yield server


@pytest.fixture(scope="module")
def sparkctl_history(base: Path, log_dir: Path, ours: dict[str, Any]) -> Iterator[SparkctlHistory]:
    server = SparkctlHistory(base / "sparkctl-history", log_dir)
    try:
        yield server.start()
    finally:
        server.stop()


# ----------------------------------------------------------------------------- the reference itself
def test_reference_shows_a_skipped_stage(reference: dict[str, Any]) -> None:
    """The program does what this module relies on, under Spark itself: two jobs, the
    second with its map stage skipped (so the comparisons below compare something)."""
    jobs = {j["jobId"]: j for j in reference["live"]["jobs"]}
    assert sorted(jobs) == [0, 1]
    assert [jobs[0]["numSkippedStages"], jobs[1]["numSkippedStages"]] == [0, 1]
    assert jobs[1]["numSkippedTasks"] == 4 and jobs[1]["numCompletedTasks"] == 2
    assert sorted(s["status"] for s in reference["live"]["stages"]) == ["COMPLETE", "COMPLETE", "COMPLETE", "SKIPPED"]
    assert len(reference["live"]["executors"]) == 3  # the driver and one executor per worker
    assert not_loopback(reference["listening"]) == [], "PySpark listened beyond loopback"


# ----------------------------------------------------------------------------- the live UI
def test_live_ui_url_and_application(ours: dict[str, Any], reference: dict[str, Any]) -> None:
    info, live = ours["info"], ours["live"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", info["uiWebUrl"]), info["uiWebUrl"]
    assert live["app_id"] == info["applicationId"]
    found = shape_mismatches(reference["live"]["applications"][0], live["applications"][0], "applications[0]")
    app = live["applications"][0]
    if app.get("name") != "history-compat":
        found.append(f"applications[0].name: expected 'history-compat', got {app.get('name')!r}")
    if [a.get("completed") for a in app.get("attempts", [])] != [False]:
        found.append(f"applications[0].attempts[].completed: expected [False] while it runs, "
                     f"got {[a.get('completed') for a in app.get('attempts', [])]}")
    assert not found, report(found)


def test_live_jobs_as_spark(ours: dict[str, Any], reference: dict[str, Any]) -> None:
    found = compare_jobs(reference["live"]["jobs"], ours["live"]["jobs"], "jobs")
    assert not found, report(found)


def test_live_stages_as_spark_with_the_skipped_stage(ours: dict[str, Any], reference: dict[str, Any]) -> None:
    statuses = sorted(s.get("status") for s in ours["live"]["stages"])
    assert "SKIPPED" in statuses, f"no skipped stage in sparkctl's /stages: {statuses}"
    found = compare_stages(reference["live"]["stages"], ours["live"]["stages"], "stages")
    assert not found, report(found)


def test_live_executors_as_spark(ours: dict[str, Any], reference: dict[str, Any]) -> None:
    found = compare_executors(reference["live"]["executors"], ours["live"]["executors"], "executors")
    assert not found, report(found)


def test_driver_listens_on_loopback_only(ours: dict[str, Any]) -> None:
    assert ours["listening"], "found no listening socket of sparkctl's driver (its UI at least)"
    assert not_loopback(ours["listening"]) == []


# ----------------------------------------------------------------------------- event logs
def test_event_logs_named_as_spark_names_them(log_dir: Path, ours: dict[str, Any], reference: dict[str, Any]) -> None:
    """APPID.inprogress while the application runs, APPID once it has ended, as Spark's
    single-file event logs are named (the reference runs with rolling logs off)."""
    ours_id, theirs_id = ours["info"]["applicationId"], reference["info"]["applicationId"]
    assert reference["running_logs"] == [f"{theirs_id}.inprogress"]  # the reference itself
    assert ours["running_logs"] == [f"{ours_id}.inprogress"]
    assert sorted(p.name for p in event_log_files(log_dir)) == sorted([theirs_id, ours_id])


# Maps whose keys are data (settings, classpath, job properties), not the event's schema.
DATA_MAPS = {"Spark Properties", "Hadoop Properties", "System Properties", "Classpath Entries", "Metrics Properties",
             "Properties"}
# One of each per task, stage or job: the same program must log as many as Spark does.
COUNTED_EVENTS = ("SparkListenerJobStart", "SparkListenerJobEnd", "SparkListenerStageSubmitted",
                  "SparkListenerStageCompleted", "SparkListenerTaskStart", "SparkListenerTaskEnd",
                  "SparkListenerExecutorAdded", "SparkListenerApplicationStart", "SparkListenerApplicationEnd")


def _schema(event: Any) -> Any:
    if isinstance(event, dict):
        return {k: ({} if k in DATA_MAPS else _schema(v)) for k, v in event.items()}
    if isinstance(event, list):
        return [_schema(v) for v in event]
    return event


def test_event_log_events_as_spark_writes_them(log_dir: Path, ours: dict[str, Any],
                                               reference: dict[str, Any]) -> None:
    """The same kinds of events, as many of each, with every field Spark writes in them
    (the first event of each kind compared, nested objects included); ApplicationEnd last."""
    theirs = read_events(log_dir / reference["info"]["applicationId"])
    mine = read_events(log_dir / ours["info"]["applicationId"])
    first: dict[str, dict[str, Any]] = {}
    for event in mine:
        first.setdefault(event["Event"], event)
    found = [f"{kind}: Spark wrote it, sparkctl did not" for kind in sorted({e["Event"] for e in theirs} - set(first))]
    found += [f"{kind}: sparkctl wrote it, Spark did not" for kind in sorted(set(first) - {e["Event"] for e in theirs})]
    for kind in COUNTED_EVENTS:
        want, got = sum(e["Event"] == kind for e in theirs), sum(e["Event"] == kind for e in mine)
        if want != got:
            found.append(f"{kind}: expected {want} of them, got {got}")
    seen: set[str] = set()
    for event in theirs:
        kind = event["Event"]
        if kind in first and kind not in seen:
            seen.add(kind)
            found += shape_mismatches(_schema(event), _schema(first[kind]), kind)
    if mine[-1]["Event"] != "SparkListenerApplicationEnd":
        found.append(f"the last event: expected SparkListenerApplicationEnd, got {mine[-1]['Event']}")
    assert not found, report(found)


# ----------------------------------------------------------------------------- Spark's History Server
def test_spark_history_server_reads_the_reference(spark_history: SparkHistoryServer,
                                                  reference: dict[str, Any]) -> None:
    """The harness's own check: Spark's History Server lists PySpark's log as completed and
    answers for it what PySpark's live UI answered."""
    app_id = reference["live"]["app_id"]
    spark_history.wait_completed(app_id)
    replayed = history_snapshot(spark_history.url, app_id)
    found = compare_jobs(reference["live"]["jobs"], replayed["jobs"], "history jobs")
    found += compare_stages(reference["live"]["stages"], replayed["stages"], "history stages")
    assert not found, report(found)
    assert not_loopback(spark_history.listening()) == [], "Spark's History Server listened beyond loopback"


def test_spark_history_server_lists_sparkctl_app(spark_history: SparkHistoryServer, ours: dict[str, Any],
                                                 reference: dict[str, Any]) -> None:
    app_id = ours["live"]["app_id"]
    app = spark_history.wait_completed(app_id)
    assert app["name"] == "history-compat"
    replayed = history_snapshot(spark_history.url, app_id)
    reference_replayed = history_snapshot(spark_history.url, reference["live"]["app_id"])
    found = compare_jobs(reference_replayed["jobs"], replayed["jobs"], "jobs")
    found += compare_stages(reference_replayed["stages"], replayed["stages"], "stages")
    found += compare_executors(reference_replayed["executors"], replayed["executors"], "allexecutors")
    assert not found, report(found)


# ----------------------------------------------------------------------------- sparkctl history
def test_sparkctl_history_lists_sparkctl_app(sparkctl_history: SparkctlHistory, ours: dict[str, Any],
                                             reference: dict[str, Any], spark_history: SparkHistoryServer) -> None:
    """``sparkctl history`` answers for sparkctl's log what Spark's History Server answers."""
    app_id = ours["live"]["app_id"]
    app = sparkctl_history.wait_completed(app_id)
    spark_app = spark_history.wait_completed(app_id)
    found = shape_mismatches(spark_app, app, "applications[]")
    theirs = history_snapshot(spark_history.url, app_id)
    mine = history_snapshot(sparkctl_history.url, app_id)
    found += compare_jobs(theirs["jobs"], mine["jobs"], "jobs")
    found += compare_stages(theirs["stages"], mine["stages"], "stages")
    found += compare_executors(theirs["executors"], mine["executors"], "allexecutors")
    assert not found, report(found)


def test_sparkctl_history_reads_spark_event_log(sparkctl_history: SparkctlHistory, reference: dict[str, Any],
                                                spark_history: SparkHistoryServer) -> None:
    """Users with logs written by Spark itself can read them with ``sparkctl history``: the
    reference application, as Spark's History Server shows it."""
    app_id = reference["info"]["applicationId"]
    app = sparkctl_history.wait_completed(app_id)
    spark_app = spark_history.wait_completed(app_id)
    found = shape_mismatches(spark_app, app, "applications[]")
    theirs = history_snapshot(spark_history.url, app_id)
    mine = history_snapshot(sparkctl_history.url, app_id)
    found += compare_jobs(theirs["jobs"], mine["jobs"], "jobs")
    found += compare_stages(theirs["stages"], mine["stages"], "stages")
    found += compare_executors(theirs["executors"], mine["executors"], "allexecutors")
    assert not found, report(found)
