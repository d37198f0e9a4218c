"""The UI's pages in a real browser: headless Chromium loads the live UI of a running
sparkctl application and the history server's pages of a finished one, and the tests read
back the DOM the pages' scripts built (tests/browser.py).

The reference is the REST API the pages read: the DAG picture has the stages, RDDs and
edges of ``/sparkctl/dag``, the task table has the rows of ``taskList``, the quantiles are
``taskSummary``'s, and so on, with the raw numbers in ``data-value`` attributes. Every page
must draw (``data-ui-state="ready"``) with no JavaScript error, no request the
Content-Security-Policy blocked and no failed API call.

The application runs on a two-worker local cluster: two jobs over one shuffle (the second
reuses it, so its map stage is skipped), a job whose task fails once and is retried (an
error with its traceback), a cached RDD, a described job, a stage of 150 tasks (more than
a page of the task table), a join of two shuffles whose map sides share RDDs, and a job
that stays running until the test ends (a flag file), so the live UI stays up with an
active stage. The history server then shows the same application after it ended, and the
pages are also put in front of Apache Spark's own live UI running the same program under
PySpark, to show they read Spark's REST API itself (skipped without Java).

Without Chromium these tests skip, except in CI (``CI`` set), where .ci/run installs it and
a missing browser is a failure.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.browser import Chromium, Node, PageDump, find_chromium
from tests.clusters import ROOT, wait_for

# each test drives a real Chromium against a real application: minutes in all, so they run
# with the other slow suites (-m slow; .ci/run runs them)
pytestmark = pytest.mark.slow

SECRET_VALUE = "hunter2-not-for-pages"

APP = r'''
import os, sys, threading, time
from operator import add
from ENGINE import SparkConf, SparkContext, TaskContext

base, wait, name, master, events = sys.argv[1], sys.argv[2] == "wait", sys.argv[3], sys.argv[4], sys.argv[5]
conf = (SparkConf().setMaster(master).setAppName(name)
        .set("spark.ui.port", "0").set("spark.ui.showConsoleProgress", "false")
        .set("spark.eventLog.enabled", "true").set("spark.eventLog.dir", events)
        .set("spark.test.db.password", "SECRET"))
if "ENGINE" == "pyspark":  # Apache Spark itself, on loopback only
    conf.set("spark.driver.host", "127.0.0.1").set("spark.driver.bindAddress", "127.0.0.1")
sc = SparkContext(conf=conf)
pairs = sc.parallelize(range(1000), 4).map(lambda x: (x % 10, x)).reduceByKey(add, 3)
assert len(pairs.collect()) == 10          # job 0: map stage + result stage
assert pairs.count() == 10                  # job 1: the map stage is skipped (its shuffle is reused)

def fail_first_attempt(x):
    ctx = TaskContext.get()
    if ctx.partitionId() == 1 and ctx.attemptNumber() == 0:
        raise ValueError("first attempt fails <script>window.injected = 1</script>")
    return x

assert sc.parallelize(range(8), 2).map(fail_first_attempt).sum() == 28   # job 2: one failed attempt
cached = sc.parallelize(range(100), 2).setName("cached <i>numbers</i>").cache()
assert cached.count() == 100                # job 3: cached blocks
sc.setJobDescription("a described job")
assert sc.parallelize(range(10), 2).sum() == 45   # job 4
sc.setJobDescription(None)
many = 150 if "ENGINE" == "sparkctl" else 4  # PySpark takes 0.1 s a task: it need not show paging
assert sc.parallelize(range(many), many).count() == many   # job 5: more tasks than a page of the task table
keyed = sc.parallelize(range(100), 4).map(lambda x: (x % 7, x))
sums, sizes = keyed.reduceByKey(add), keyed.mapValues(lambda v: -v).groupByKey().mapValues(len)
assert len(sums.join(sizes).collect()) == 7   # job 6: a stage reading two shuffles whose map sides share RDDs
stop_flag = os.path.join(base, "stop")

def until_stopped(x):
    deadline = time.monotonic() + 300
    while not os.path.exists(stop_flag) and time.monotonic() < deadline:
        time.sleep(0.05)
    return (x % 2, x)

running = []
if wait:  # job 7 runs until the test ends: 2 of its 4 map tasks hold both task slots
    job = threading.Thread(target=lambda: running.append(
        sc.parallelize(range(4), 4).map(until_stopped).groupByKey().count()))
    job.start()
    while len(sc.statusTracker().getActiveStageIds()) == 0:
        time.sleep(0.02)
    while sc.statusTracker().getStageInfo(sc.statusTracker().getActiveStageIds()[0]).numActiveTasks < 2:
        time.sleep(0.02)
with open(os.path.join(base, "ready.tmp"), "w") as f:
    f.write(sc.uiWebUrl + "\n" + sc.applicationId)
os.rename(os.path.join(base, "ready.tmp"), os.path.join(base, "ready"))
deadline = time.monotonic() + 300
while wait and not os.path.exists(stop_flag) and time.monotonic() < deadline:
    time.sleep(0.05)
if wait:
    job.join()
    assert running == [2]
sc.stop()
'''.replace("SECRET", SECRET_VALUE)


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    binary = find_chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed, and in CI it must be (.ci/run installs the chromium package)")
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); the browser tests need it")
    b = Chromium(binary, tmp_path_factory.mktemp("chromium"))
    yield b
    left = b.processes_left()
    b.close()
    assert not left, f"Chromium processes outlived their run: {left}"


class App:
    """The test application in its own process, and what it printed."""

    def __init__(self, base: Path, wait: bool, name: str = "ui <b>browser</b> test",
                 master: str = "local-cluster[2,1,512]", engine: str = "sparkctl", events: Path | None = None) -> None:
        self.base = base
        script = base / "ui_app.py"
        script.write_text(APP.replace("ENGINE", engine))
        self.events = events or base / "events"
        self.events.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK", "PYSPARK"))}
        env["PYTHONPATH"] = str(ROOT)
        if engine == "pyspark":
            env.update(SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
        self.log = open(base / "app.log", "wb")
        # run as "ui_app.py", so call sites read "count at ui_app.py:14"
        self.proc = subprocess.Popen([sys.executable, script.name, str(base), "wait" if wait else "end", name,
                                      master, str(self.events)],
                                     cwd=base, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        ready = base / "ready"
        patience = 90 if engine == "sparkctl" else 240  # a JVM on a busy 2-core machine starts slowly
        wait_for(lambda: ready.exists() or self.proc.poll() is not None, patience, "the test application to run its jobs")
        assert ready.exists(), f"the test application failed:\n{(base / 'app.log').read_text()[-4000:]}"
        self.url, self.app_id = ready.read_text().split("\n")

    def api(self, path: str) -> Any:
        return fetch_json(f"{self.url}/api/v1/applications/{self.app_id}{path}")

    def finish(self, timeout: float = 60) -> None:
        (self.base / "stop").touch()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        finally:
            self.log.close()
        assert self.proc.returncode == 0, f"the test application failed:\n{(self.base / 'app.log').read_text()[-4000:]}"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    a = App(tmp_path_factory.mktemp("ui-app"), wait=True)
    yield a
    a.finish()


# loopback only: a proxy named in the environment must never see these requests
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str) -> tuple[int, bytes]:
    assert urllib.parse.urlsplit(url).hostname in ("127.0.0.1", "127.0.0.2", "127.0.0.3"), url
    try:
        with _OPENER.open(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def fetch_json(url: str) -> Any:
    status, body = fetch(url)
    assert status == 200, f"GET {url} answered {status}: {body[:300]!r}"
    return json.loads(body)


def dump(browser: Chromium, url: str, budget_ms: int = 3000) -> PageDump:
    page = browser.dump_dom(url, budget_ms)
    page.assert_clean()
    return page


def ints(nodes: list[Node], attr: str) -> list[int]:
    return [int(n.attrs[attr]) for n in nodes]


def value(td: Node) -> float:
    return float(td.attrs["data-value"])


# ---------------------------------------------------------------------------- the live UI
@pytest.mark.timeout(120)
def test_jobs_page_lists_every_job_and_draws_the_timeline(browser: Chromium, app: App) -> None:
    page = dump(browser, app.url + "/jobs/")
    jobs = {j["jobId"]: j for j in app.api("/jobs")}
    assert len(jobs) == 8
    rows = page.doc.find_all("tr", data_job_id=True)
    assert sorted(ints(rows, "data-job-id")) == sorted(jobs)
    for row in rows:
        j = jobs[int(row.attrs["data-job-id"])]
        assert row.attrs["data-status"] == j["status"] == ("RUNNING" if j["jobId"] == 7 else "SUCCEEDED")
        bar = row.cell("tasks").find("div", class_="progress")
        assert int(bar.attrs["data-completed"]) == j["numCompletedIndices"]
        assert int(bar.attrs["data-total"]) == j["numTasks"] - j["numSkippedTasks"]
    active = page.doc.find("table", id="active-jobs-table").find_all("tr", data_job_id=True)
    assert ints(active, "data-job-id") == [7]
    assert "(2 running)" in active[0].cell("tasks").text()
    assert "(1 skipped)" in next(r for r in rows if r.attrs["data-job-id"] == "1").cell("stages").text()
    failed_job = next(r for r in rows if r.attrs["data-job-id"] == "2")
    assert "(1 failed)" in failed_job.cell("tasks").text()
    described = next(r for r in rows if r.attrs["data-job-id"] == "4").cell("description")
    assert described.find("a").text() == "a described job"
    assert described.find("a").attrs["href"] == "/jobs/job/?id=4"

    timeline = page.doc.find("svg", class_="timeline")
    assert int(timeline.attrs["data-jobs"]) == len(jobs)
    assert sorted(ints(timeline.find_all("g", class_="tl-job"), "data-job-id")) == sorted(jobs)
    executors = app.api("/allexecutors")
    added = timeline.find_all("g", data_event="added")
    assert sorted(n.attrs["data-executor-id"] for n in added) == sorted(e["id"] for e in executors)

    # the application's name is text, never markup, and the nav bar marks the page
    assert page.doc.find("span", id="app-name").find("span", class_="app-title").text() == "ui <b>browser</b> test"
    assert not page.doc.find("header").find_all("b")
    assert page.doc.find("a", class_="active").attrs["data-tab"] == "jobs"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("job_id, statuses", [(1, ["COMPLETE", "SKIPPED"]), (6, ["COMPLETE"] * 3),
                                              (7, ["ACTIVE", "PENDING"])],
                         ids=["the skipped stage", "a join of two shuffles", "a running job"])
def test_job_page_draws_the_dag(browser: Chromium, app: App, job_id: int, statuses: list[str]) -> None:
    job = app.api(f"/jobs/{job_id}")
    dag = fetch_json(f"{app.url}/api/v1/applications/{app.app_id}/sparkctl/dag?job={job_id}")
    page = dump(browser, f"{app.url}/jobs/job/?id={job_id}")
    svg = page.doc.find("svg", class_="dag")

    boxes = svg.find_all("g", class_="dag-stage")
    assert {(int(b.attrs["data-stage-id"]), b.attrs["data-status"]) for b in boxes} == \
        {(s["stageId"], s["status"]) for s in dag["stages"]}
    assert sorted(s["status"] for s in dag["stages"]) == statuses
    assert sorted(s["stageId"] for s in dag["stages"]) == sorted(job["stageIds"])

    nodes = svg.find_all("g", class_="dag-rdd")
    assert sorted((int(n.attrs["data-stage-id"]), int(n.attrs["data-rdd-id"])) for n in nodes) == \
        sorted((s["stageId"], r["id"]) for s in dag["stages"] for r in s["rdds"])
    assert int(svg.attrs["data-rdds"]) == len(nodes)

    # one edge per parent that is in the picture, to each stage's drawing of the RDD; those
    # from another stage are the shuffle's (an RDD two stages compute is drawn in both)
    drawn = {r["id"] for s in dag["stages"] for r in s["rdds"]}
    expected = sorted((s["stageId"], p, r["id"], p not in {q["id"] for q in s["rdds"]})
                      for s in dag["stages"] for r in s["rdds"] for p in r["parentIds"] if p in drawn)
    edges = svg.find_all("path", class_="dag-edge")
    assert sorted((int(e.attrs["data-to-stage"]), int(e.attrs["data-from"]), int(e.attrs["data-to"]),
                   "shuffle" in e.attrs["class"].split()) for e in edges) == expected
    assert any(crossing for *_, crossing in expected), f"the DAG of job {job_id} has no shuffle edge"
    # a shuffle edge starts in the stage whose output its RDD is (no RDD of that stage reads
    # it), though another stage may compute the same RDD on the way to another shuffle
    read_within = {(s["stageId"], p) for s in dag["stages"] for r in s["rdds"] for p in r["parentIds"]}
    for e in edges:
        if "shuffle" in e.attrs["class"].split():
            assert (int(e.attrs["data-from-stage"]), int(e.attrs["data-from"])) not in read_within
    # each node's label is its RDD's name and id, as text
    for s in dag["stages"]:
        for r in s["rdds"]:
            node = svg.find("g", data_rdd_id=str(r["id"]), data_stage_id=str(s["stageId"]))
            assert node.find("title").text().startswith(f"{r['name']} [{r['id']}]\n{r['callsite']}")

    # the job's stage tables, one per status: the skipped stage among "Skipped Stages"
    rows = page.doc.find_all("tr", data_stage_id=True)
    assert sorted(ints(rows, "data-stage-id")) == sorted(job["stageIds"])
    table = {"SKIPPED": "skipped", "ACTIVE": "active", "PENDING": "pending", "COMPLETE": "completed"}
    for s in dag["stages"]:
        listed = page.doc.find("table", id=f"job-{table[s['status']]}-stages-table").find_all("tr", data_stage_id=True)
        assert str(s["stageId"]) in [r.attrs["data-stage-id"] for r in listed]


@pytest.mark.timeout(120)
def test_stage_page_shows_tasks_quantiles_and_a_failed_attempt(browser: Chromium, app: App) -> None:
    stage_id = app.api("/jobs/2")["stageIds"][0]
    base = f"/stages/{stage_id}/0"
    stage = app.api(base)
    tasks = app.api(base + "/taskList?offset=0&length=100&sortBy=ID")
    summary = app.api(base + "/taskSummary?quantiles=0.0,0.25,0.5,0.75,1.0")
    page = dump(browser, f"{app.url}/stages/stage/?id={stage_id}&attempt=0")

    rows = page.doc.find("table", id="tasks").find_all("tr", data_task_id=True)
    assert ints(rows, "data-task-id") == [t["taskId"] for t in tasks]
    assert len(tasks) == 3 and sorted(t["status"] for t in tasks) == ["FAILED", "SUCCESS", "SUCCESS"]
    for row, t in zip(rows, tasks):
        assert row.attrs["data-status"] == t["status"]
        assert row.cell("index").text() == str(t["index"])
        assert row.cell("attempt").text() == str(t["attempt"])
        assert row.cell("executor").text() == t["executorId"]
        assert row.cell("host").text() == t["host"]
        assert row.cell("locality").text() == t["taskLocality"]
        assert value(row.cell("duration")) == t["duration"]
        assert re.fullmatch(r"\d+ ms|\d+\.\d s", row.cell("duration").text())
        assert value(row.cell("result-size")) == t["taskMetrics"]["resultSize"]
    # a failed attempt's error, in a row of its own under the attempt's row
    errors = page.doc.find("table", id="tasks").find_all("tr", class_="detail-row")
    failed = [t for t in tasks if t["status"] == "FAILED"]
    assert [int(e.attrs["data-detail-for"]) for e in errors] == [t["taskId"] for t in failed]
    cell = errors[0].find("details", class_="error-cell")
    assert cell.find("summary").text() == "ValueError: first attempt fails <script>window.injected = 1</script>"
    assert cell.find("pre", class_="stacktrace").text() == failed[0]["errorMessage"]
    assert "Traceback" in failed[0]["errorMessage"]
    assert not page.doc.find("main").find_all("script"), "an error message became markup"

    quantiles = page.doc.find("table", id="task-summary")
    duration = summary.get("duration") or summary["executorRunTime"]
    assert [value(td) for td in quantiles.find("tr", data_metric="duration").find_all("td")] == duration
    assert [value(td) for td in quantiles.find("tr", data_metric="result-size").find_all("td")] == summary["resultSize"]
    assert [value(td) for td in quantiles.find("tr", data_metric="scheduler-delay").find_all("td")] == \
        summary["schedulerDelay"]

    by_executor = page.doc.find("table", id="stage-executors").find_all("tr", data_executor_id=True)
    assert sorted(r.attrs["data-executor-id"] for r in by_executor) == sorted(stage["executorSummary"])
    for r in by_executor:
        s = stage["executorSummary"][r.attrs["data-executor-id"]]
        assert (value(r.cell("succeeded")), value(r.cell("failed"))) == (s["succeededTasks"], s["failedTasks"])

    focus = page.doc.find("svg", class_="dag").find("g", class_="focus")
    assert focus.attrs["data-stage-id"] == str(stage_id)


@pytest.mark.timeout(120)
def test_task_table_pages_through_a_large_stage(browser: Chromium, app: App) -> None:
    stage_id = app.api("/jobs/5")["stageIds"][0]
    first = app.api(f"/stages/{stage_id}/0/taskList?offset=0&length=100&sortBy=ID")
    assert len(first) == 100
    page = dump(browser, f"{app.url}/stages/stage/?id={stage_id}&attempt=0")
    rows = page.doc.find("table", id="tasks").find_all("tr", data_task_id=True)
    assert ints(rows, "data-task-id") == [t["taskId"] for t in first]
    pager = page.doc.find("div", class_="pager")
    assert "Task attempts 1–100" in pager.text()
    prev, nxt = pager.find_all("button")
    assert "disabled" in prev.attrs and "disabled" not in nxt.attrs
    assert page.doc.find("details", id="stage-tasks").find("span", class_="count").text() == " (150)"


@pytest.mark.timeout(120)
def test_running_and_pending_stages_and_an_unknown_job(browser: Chromium, app: App) -> None:
    active, pending = sorted(app.api("/jobs/7")["stageIds"])
    tasks = app.api(f"/stages/{active}/0/taskList?offset=0&length=100&sortBy=ID")
    assert [t["status"] for t in tasks] == ["RUNNING", "RUNNING"]
    page = dump(browser, f"{app.url}/stages/stage/?id={active}&attempt=0")
    rows = page.doc.find("table", id="tasks").find_all("tr", data_task_id=True)
    assert [(int(r.attrs["data-task-id"]), r.attrs["data-status"]) for r in rows] == \
        [(t["taskId"], "RUNNING") for t in tasks]
    assert not page.doc.find_all("table", id="task-summary")  # no task has finished: no quantiles yet
    assert "No task has reported its metrics yet." in page.doc.find("details", id="stage-summary").text()

    page = dump(browser, f"{app.url}/stages/stage/?id={pending}")  # no attempt given: the latest
    assert page.doc.find("div", class_="page-stage").attrs["data-stage-id"] == str(pending)
    assert not page.doc.find("table", id="tasks").find_all("tr", data_task_id=True)
    assert page.doc.find("svg", class_="dag").find("g", class_="focus").attrs["data-status"] == "PENDING"

    missing = browser.dump_dom(app.url + "/jobs/job/?id=999")
    assert not missing.js_errors
    assert missing.state == "error" and missing.root_attrs["data-polling"] == "stopped"
    problem = missing.doc.find("div", id="problem").text()
    assert problem.startswith("Not found") and "999" in problem


@pytest.mark.timeout(120)
def test_shuffle_stages_show_their_reads_and_writes(browser: Chromium, app: App) -> None:
    map_stage, reduce_stage = sorted(app.api("/jobs/0")["stageIds"])
    for stage_id, column, metric in ((map_stage, "shuffle-write", "shuffle-write"),
                                     (reduce_stage, "shuffle-read", "shuffle-read")):
        tasks = app.api(f"/stages/{stage_id}/0/taskList?offset=0&length=100&sortBy=ID")
        summary = app.api(f"/stages/{stage_id}/0/taskSummary?quantiles=0.0,0.25,0.5,0.75,1.0")
        page = dump(browser, f"{app.url}/stages/stage/?id={stage_id}&attempt=0")
        rows = page.doc.find("table", id="tasks").find_all("tr", data_task_id=True)
        assert ints(rows, "data-task-id") == [t["taskId"] for t in tasks]
        for row, t in zip(rows, tasks):
            m = t["taskMetrics"]
            want = (m["shuffleWriteMetrics"]["bytesWritten"] if column == "shuffle-write" else
                    m["shuffleReadMetrics"]["localBytesRead"] + m["shuffleReadMetrics"]["remoteBytesRead"])
            assert want > 0 and value(row.cell(column)) == want
            assert re.fullmatch(r"[\d.]+ (B|KiB|MiB) / \d+", row.cell(column).text())
        q = summary["shuffleWriteMetrics"]["writeBytes"] if column == "shuffle-write" else \
            summary["shuffleReadMetrics"]["readBytes"]
        row = page.doc.find("table", id="task-summary").find("tr", data_metric=metric)
        assert [value(td) for td in row.find_all("td")] == q
        field = "shuffleWrite" if column == "shuffle-write" else "shuffleRead"
        per_executor = app.api(f"/stages/{stage_id}/0")["executorSummary"]
        for r in page.doc.find("table", id="stage-executors").find_all("tr", data_executor_id=True):
            assert value(r.cell(column)) == per_executor[r.attrs["data-executor-id"]][field]


@pytest.mark.timeout(120)
def test_stage_page_shows_push_read_quantiles_of_a_stage_that_read_merged_slices(browser: Chromium,
                                                                                tmp_path: Path) -> None:
    """A push-based shuffle's reduce stage shows the quantiles of its merged reads under the
    shuffle read rows; its map stage, which read nothing merged, shows none of them. The
    application is an event log with push read metrics (tests/test_push_read_metrics.py),
    served by sparkctl's history server."""
    from sparkctl.deploy.history import HistoryServer
    from tests.test_push_read_metrics import APP_ID, write_event_log
    write_event_log(tmp_path)
    server = HistoryServer("127.0.0.1", 0, str(tmp_path), update_interval=60).start()
    try:
        api = f"{server.url}/api/v1/applications/{APP_ID}"
        read = fetch_json(api + "/stages/1/0/taskSummary?quantiles=0.0,0.25,0.5,0.75,1.0")["shuffleReadMetrics"]
        push = read["shufflePushReadMetricsDist"]
        page = dump(browser, f"{server.url}/history/{APP_ID}/stages/stage/?id=1&attempt=0")
        table = page.doc.find("table", id="task-summary")
        for metric, values in (("shuffle-remote-reqs", read["remoteReqsDuration"]),
                               ("push-remote-reads", push["remoteMergedBytesRead"]),
                               ("push-local-reads", push["localMergedBytesRead"]),
                               ("push-remote-chunks", push["remoteMergedChunksFetched"]),
                               ("push-local-chunks", push["localMergedChunksFetched"]),
                               ("push-remote-reqs", push["remoteMergedReqsDuration"]),
                               ("push-fallback", push["mergedFetchFallbackCount"]),
                               ("push-corrupt", push["corruptMergedBlockChunks"])):
            assert [value(td) for td in table.find("tr", data_metric=metric).find_all("td")] == values, metric
        # the largest remote merged read: its size, then its blocks
        assert table.find("tr", data_metric="push-remote-reads").find_all("td")[-1].text() == \
            f"5.0 KiB / {int(push['remoteMergedBlocksFetched'][-1])}"
        assert table.find("tr", data_metric="push-fallback").find_all("td")[-1].text() == "1"

        page = dump(browser, f"{server.url}/history/{APP_ID}/stages/stage/?id=0&attempt=0")
        shown = [r.attrs["data-metric"] for r in page.doc.find("table", id="task-summary").find_all("tr", data_metric=True)]
        assert "shuffle-write" in shown and not [m for m in shown if m.startswith("push-")], shown
    finally:
        server.stop()


@pytest.mark.timeout(120)
def test_storage_environment_and_executors_pages(browser: Chromium, app: App) -> None:
    rdds = app.api("/storage/rdd")
    assert [r["name"] for r in rdds] == ["cached <i>numbers</i>"]
    page = dump(browser, app.url + "/storage/")
    rows = page.doc.find_all("tr", data_rdd_id=True)
    assert ints(rows, "data-rdd-id") == [rdds[0]["id"]]
    assert rows[0].cell("name").find("a").text() == "cached <i>numbers</i>"
    assert rows[0].cell("cached").text() == "2 / 2"
    assert rows[0].cell("where").text() == ", ".join(d["address"] for d in rdds[0]["dataDistribution"])

    detail = app.api(f"/storage/rdd/{rdds[0]['id']}")
    page = dump(browser, f"{app.url}/storage/rdd/?id={rdds[0]['id']}")
    parts = page.doc.find("table", id="rdd-partitions-table").find_all("td", data_col="block")
    assert [p.text() for p in parts] == [p["blockName"] for p in detail["partitions"]]

    env = app.api("/environment")
    page = dump(browser, app.url + "/environment/")
    for key in ("sparkProperties", "systemProperties"):
        table = page.doc.find("table", id=f"env-{key}-table")
        assert int(table.attrs["data-rows"]) == len(env[key]) > 0
    names = [td.text() for td in page.doc.find("table", id="env-sparkProperties-table").find_all("td", data_col="name")]
    assert "spark.app.name" in names and "spark.test.db.password" in names
    assert SECRET_VALUE not in page.html, "a secret setting reached the page"

    executors = app.api("/allexecutors")
    page = dump(browser, app.url + "/executors/")
    rows = page.doc.find("table", id="executors").find_all("tr", data_executor_id=True)
    assert sorted(r.attrs["data-executor-id"] for r in rows) == sorted(e["id"] for e in executors)
    for r in rows:
        e = next(x for x in executors if x["id"] == r.attrs["data-executor-id"])
        assert value(r.cell("completed")) == e["completedTasks"]
        assert value(r.cell("failed")) == e["failedTasks"]
        assert value(r.cell("cores")) == e["totalCores"]
        links = {a.attrs["data-log"]: a.attrs["href"] for a in r.cell("logs").find_all("a")}
        assert links == e["executorLogs"]
        if e["id"] != "driver":  # the workers serve each executor's stdout and stderr
            assert sorted(links) == ["stderr", "stdout"]
            assert fetch(links["stderr"])[0] == 200
    total = page.doc.find("table", id="executor-totals").find("tr", data_row="total").find_all("td")
    assert value(total[0]) == len(executors)


@pytest.mark.timeout(120)
def test_live_pages_keep_polling(browser: Chromium, app: App) -> None:
    """While the application runs, a page redraws itself every 2 s (virtual time here)."""
    page = dump(browser, app.url + "/stages/", budget_ms=4500)
    assert int(page.root_attrs["data-renders"]) >= 2
    assert page.root_attrs["data-polling"] == "on"


@pytest.mark.timeout(120)
def test_screenshots(browser: Chromium, app: App, tmp_path: Path) -> None:
    """Screenshots work. README's pictures are made this way: with SPARKCTL_UI_SCREENSHOTS
    naming a directory (docs/img), they are taken of an application with a plain name and
    written there."""
    out = Path(os.environ.get("SPARKCTL_UI_SCREENSHOTS") or tmp_path)
    demo = None
    if os.environ.get("SPARKCTL_UI_SCREENSHOTS"):
        demo_dir = Path(tempfile.mkdtemp(prefix="demo-"))  # a short path for the call sites shown
        demo = app = App(demo_dir, wait=True, name="wordcount-demo")
    stage_id = max(app.api("/jobs/1")["stageIds"])  # its parent stage was skipped
    shots = [(app.url + "/jobs/", out / "jobs.png", 1280, 860),
             (f"{app.url}/stages/stage/?id={stage_id}&attempt=0", out / "stage-dag.png", 1280, 1100)]
    try:
        for url, path, width, height in shots:
            browser.screenshot(url, path, width, height)
            head = path.read_bytes()[:24]
            assert head[:8] == b"\x89PNG\r\n\x1a\n"
            assert struct.unpack(">II", head[16:24]) == (width, height)
    finally:
        if demo is not None:
            demo.finish()
            shutil.rmtree(demo.base, ignore_errors=True)


# ---------------------------------------------------------------------------- the history server
@pytest.mark.timeout(180)
def test_history_server_pages(browser: Chromium, app: App, tmp_path: Path) -> None:
    """The history server reads the event logs of two applications: one that has ended, and
    the live one, still running (its log still in progress)."""
    (tmp_path / "ended").mkdir()
    ended = App(tmp_path / "ended", wait=False, events=app.events)
    ended.finish()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK", "PYSPARK"))}
    env.update(PYTHONPATH=str(ROOT), SPARKCTL_CONF_DIR=str(tmp_path / "conf"), SPARKCTL_PID_DIR=str(tmp_path / "pids"),
               SPARKCTL_LOG_DIR=str(tmp_path / "logs"), SPARKCTL_WORK_DIR=str(tmp_path / "work"))
    (tmp_path / "conf").mkdir()

    def history(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(ROOT / "bin" / "sparkctl"), "history", *args], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)

    r = history("start", "--host", "127.0.0.1", "--port", "0", "--log-directory", str(app.events),
                "--update-interval", "0.5")
    assert r.returncode == 0, f"sparkctl history start failed:\n{r.stdout}\n{r.stderr}"
    try:
        found = re.search(r"http://127\.0\.0\.1:\d+", r.stdout)
        assert found, r.stdout
        url = found.group(0)

        def both_listed() -> bool:
            apps = {a["id"]: a["attempts"][0]["completed"] for a in fetch_json(url + "/api/v1/applications")}
            return apps.get(ended.app_id) is True and apps.get(app.app_id) is False
        wait_for(both_listed, 60, "the history server to list one completed and one running application")

        page = dump(browser, url + "/")
        rows = page.doc.find("table", id="completed-apps-table").find_all("tr", data_app_id=True)
        assert [r.attrs["data-app-id"] for r in rows] == [ended.app_id]
        running = page.doc.find("table", id="incomplete-apps-table").find_all("tr", data_app_id=True)
        assert [r.attrs["data-app-id"] for r in running] == [app.app_id]
        assert page.root_attrs["data-polling"] == "on"  # while an application is incomplete
        link = rows[0].cell("id").find("a")
        assert link.attrs["href"] == f"/history/{ended.app_id}/jobs/"
        assert rows[0].cell("name").text() == "ui <b>browser</b> test"

        # the running application, as far as its log goes: its pages go on polling
        so_far = fetch_json(f"{url}/api/v1/applications/{app.app_id}/jobs")
        page = dump(browser, f"{url}/history/{app.app_id}/jobs/")
        assert sorted(ints(page.doc.find_all("tr", data_job_id=True), "data-job-id")) == sorted(j["jobId"] for j in so_far)
        assert page.root_attrs["data-polling"] == "on"

        api = f"{url}/api/v1/applications/{ended.app_id}"
        root = f"{url}/history/{ended.app_id}"
        jobs = fetch_json(api + "/jobs")
        page = dump(browser, root + "/jobs/")
        assert sorted(ints(page.doc.find_all("tr", data_job_id=True), "data-job-id")) == sorted(j["jobId"] for j in jobs)
        assert page.root_attrs["data-polling"] == "stopped"  # a completed application's page stops polling
        timeline = page.doc.find("svg", class_="timeline")
        gone = [e["id"] for e in fetch_json(api + "/allexecutors") if e.get("removeTime")]
        assert sorted(n.attrs["data-executor-id"] for n in timeline.find_all("g", data_event="removed")) == sorted(gone)
        assert page.doc.find("a", class_="job-link").attrs["href"].startswith(f"/history/{ended.app_id}/jobs/job/?id=")

        dag = fetch_json(api + "/sparkctl/dag?job=1")
        page = dump(browser, root + "/jobs/job/?id=1")
        boxes = page.doc.find("svg", class_="dag").find_all("g", class_="dag-stage")
        assert {(int(b.attrs["data-stage-id"]), b.attrs["data-status"]) for b in boxes} == \
            {(s["stageId"], s["status"]) for s in dag["stages"]}

        stage_id = fetch_json(api + "/jobs/2")["stageIds"][0]
        tasks = fetch_json(api + f"/stages/{stage_id}/0/taskList?offset=0&length=100&sortBy=ID")
        page = dump(browser, f"{root}/stages/stage/?id={stage_id}&attempt=0")
        assert ints(page.doc.find("table", id="tasks").find_all("tr", data_task_id=True), "data-task-id") == \
            [t["taskId"] for t in tasks]
        for name in ("stages/", "storage/", "environment/"):
            dump(browser, f"{root}/{name}")
        executors = fetch_json(api + "/allexecutors")
        page = dump(browser, f"{root}/executors/")
        listed = page.doc.find("table", id="executors").find_all("tr", data_executor_id=True)
        assert sorted(n.attrs["data-executor-id"] for n in listed) == sorted(e["id"] for e in executors)
        assert sum(1 for e in executors if e["id"] != "driver") == 2  # the two workers' executors
        for n in listed:
            e = next(x for x in executors if x["id"] == n.attrs["data-executor-id"])
            assert {a.attrs["data-log"]: a.attrs["href"] for a in n.cell("logs").find_all("a")} == e["executorLogs"]
    finally:
        stopped = history("stop")
        assert stopped.returncode == 0, stopped.stderr


# ---------------------------------------------------------------------------- Apache Spark's own API
def spark_missing() -> str | None:
    """Why Apache Spark cannot run here, or None (the pyspark wheel carries its jars)."""
    try:
        import pyspark
    except ImportError:
        return "pyspark is not installed (the `test` extra has it)"
    if not any(Path(pyspark.__file__).parent.glob("jars/spark-core_*.jar")):
        return "this pyspark carries no Spark jars"
    if shutil.which("java") is None:
        return "Apache Spark needs Java (Debian's openjdk-17-jre-headless; .ci/run installs it)"
    return None


class PagesOverSpark:
    """sparkctl's pages in front of Apache Spark's own live UI: the page shells and static
    files as sparkctl's UI server serves them, every /api/v1 request passed to Spark. So the
    pages are shown to read Spark's REST API itself, not only sparkctl's rendering of it."""

    def __init__(self, spark_url: str, app_id: str) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from sparkctl.ui.server import PAGES, STATIC_DIR, render_shell

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def answer(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Security-Policy", "default-src 'self'")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = urllib.parse.urlsplit(self.path).path
                if path.startswith("/api/v1/"):
                    code, body = fetch(spark_url + self.path)
                    self.answer(code, "application/json", body)
                elif path.startswith("/static/") and re.fullmatch(r"[\w.-]+", path[len("/static/"):]):
                    name = Path(STATIC_DIR) / path[len("/static/"):]
                    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
                    if name.is_file():
                        self.answer(200, types.get(name.suffix, "application/octet-stream"), name.read_bytes())
                    else:
                        self.answer(404, "text/plain", b"no such file")
                elif path.lstrip("/") in PAGES:
                    page = PAGES[path.lstrip("/")]
                    self.answer(200, "text/html; charset=utf-8", render_shell(page, app_id, "", "Spark - " + page))
                else:
                    self.answer(404, "text/plain", b"not found")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


@pytest.mark.timeout(420)
def test_pages_draw_apache_sparks_own_api(browser: Chromium, tmp_path: Path) -> None:
    """The same application under PySpark 4.3: its live UI's REST API, drawn by sparkctl's
    pages. Spark has no DAG endpoint (it draws DAGs on its server), so there the pages say
    they have no DAG; everything else must draw from Spark's own field names and dates."""
    why = spark_missing()
    if why:
        pytest.skip(why)
    spark = App(tmp_path, wait=True, master="local[2,2]", engine="pyspark")
    proxy = PagesOverSpark(spark.url, spark.app_id)
    try:
        jobs = {j["jobId"]: j for j in spark.api("/jobs")}
        page = dump(browser, proxy.url + "/jobs/")
        rows = page.doc.find_all("tr", data_job_id=True)
        assert {int(r.attrs["data-job-id"]): r.attrs["data-status"] for r in rows} == \
            {i: j["status"] for i, j in jobs.items()}
        assert page.doc.find("span", class_="app-title").text() == "ui <b>browser</b> test"
        assert sorted(ints(page.doc.find("svg", class_="timeline").find_all("g", class_="tl-job"), "data-job-id")) == \
            sorted(jobs)

        page = dump(browser, proxy.url + "/jobs/job/?id=1")
        assert "No DAG to show yet." in page.doc.find("details", id="job-dag").text()
        skipped = page.doc.find("table", id="job-skipped-stages-table").find_all("tr", data_stage_id=True)
        assert [r.attrs["data-status"] for r in skipped] == ["SKIPPED"]

        stage_id = jobs[2]["stageIds"][0]
        base = f"/stages/{stage_id}/0"
        tasks = spark.api(base + "/taskList?offset=0&length=100&sortBy=ID")
        summary = spark.api(base + "/taskSummary?quantiles=0.0,0.25,0.5,0.75,1.0")
        page = dump(browser, f"{proxy.url}/stages/stage/?id={stage_id}&attempt=0")
        rows = page.doc.find("table", id="tasks").find_all("tr", data_task_id=True)
        assert [(int(r.attrs["data-task-id"]), r.attrs["data-status"]) for r in rows] == \
            [(t["taskId"], t["status"]) for t in tasks]
        for row, t in zip(rows, tasks):
            assert value(row.cell("duration")) == t["duration"]
            assert row.cell("host").text() == t["host"]
        errors = page.doc.find("table", id="tasks").find_all("tr", class_="detail-row")
        failed = [t for t in tasks if t["status"] == "FAILED"]
        assert [int(e.attrs["data-detail-for"]) for e in errors] == [t["taskId"] for t in failed]
        assert "ValueError: first attempt fails" in errors[0].find("summary").text()
        assert [value(td) for td in page.doc.find("tr", data_metric="duration").find_all("td")] == \
            (summary.get("duration") or summary["executorRunTime"])

        executors = spark.api("/allexecutors")
        page = dump(browser, proxy.url + "/executors/")
        assert sorted(r.attrs["data-executor-id"] for r in page.doc.find("table", id="executors")
                      .find_all("tr", data_executor_id=True)) == sorted(e["id"] for e in executors)
        env = spark.api("/environment")
        page = dump(browser, proxy.url + "/environment/")
        assert int(page.doc.find("table", id="env-sparkProperties-table").attrs["data-rows"]) == len(env["sparkProperties"])
        assert SECRET_VALUE not in page.html
        for name in ("/stages/", "/storage/", f"/storage/rdd/?id={spark.api('/storage/rdd')[0]['id']}"):
            dump(browser, proxy.url + name)
    finally:
        proxy.stop()
        spark.finish()
