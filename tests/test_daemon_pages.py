"""The standalone daemons' pages: the worker's and the master's read as pages for people
(labels, dates, durations, sizes), the worker serves its executors' and drivers' stdout
and stderr (tails and byte ranges, only from its work dir), executors learn their log
URLs, and the master links applications to their driver UI and to the history server."""
from __future__ import annotations

import datetime
import html
import json
import os
import re
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sparkctl.conf import SparkConf
from sparkctl.deploy import messages as dm
from sparkctl.deploy.client import StandaloneBackend
from sparkctl.deploy.log_page import DEFAULT_BYTES, LOG_URLS_ENV
from sparkctl.deploy.master import MasterDaemon, MasterSettings, read_settings
from sparkctl.deploy.webui import render_master_page, render_worker_page
from sparkctl.deploy.worker import Worker, WorkerConfig
from sparkctl.rpc import connect
from tests.clusters import ROOT, CliCluster, processes_left, wait_for
from tests.test_worker import (  # noqa: F401 (dirs and cleanup are fixtures)
    Dirs, FakeDriver, FakeMaster, WorkerProcess, cleanup, dirs, expect_state, free_port, launch,
)

pytestmark = pytest.mark.timeout(60)
SECRET = b"daemon-pages-secret"
WHEN_MS = 1796032931000  # a fixed instant, shown in local time on the pages


def _local(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _get(url: str, host: str | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


# ---------------------------------------------------------------- pages, rendered


def _worker_doc() -> dict[str, Any]:
    executor = {"id": "0", "appid": "app-20261130-0001", "appname": "wordcount <b>", "cores": 2, "memory": 4096,
                "pid": 4242, "state": "RUNNING", "workdir": "/w/app/0", "starttime": WHEN_MS, "finishtime": None,
                "exitcode": None}
    done = dict(executor, id="1", state="EXITED", memory=512, finishtime=WHEN_MS + 3200, exitcode=0)
    driver = {"id": "driver-20261130-0003", "mainclass": "job.py", "cores": 1, "memory": 1024, "supervise": True,
              "pid": 77, "state": "RUNNING", "workdir": "/w/d", "starttime": WHEN_MS, "finishtime": None,
              "exitcode": None}
    return {"id": "worker-1", "host": "127.0.0.2", "port": 7078, "masterurl": "spark://127.0.0.1:7077",
            "masterwebuiurl": "http://127.0.0.1:8080", "state": "ALIVE", "cores": 4, "coresused": 3,
            "memory": 6144, "memoryused": 5120, "executors": [executor], "finishedexecutors": [done],
            "drivers": [driver], "finisheddrivers": [], "workdir": "/w"}


def test_worker_page_reads_as_a_page_with_links_to_logs() -> None:
    page = render_worker_page("sparkctl worker worker-1", _worker_doc())
    visible = re.sub(r"<[^>]+>", " ", page)  # the text a person sees, without tags and attributes
    for raw_key in ("finishedexecutors", "coresused", "memoryused", "masterwebuiurl", "starttime", "appid"):
        assert raw_key not in visible, raw_key
    for label in ("Running Executors (1)", "Finished Executors (1)", "Running Drivers (1)", "Finished Drivers (0)",
                  "Cores:", "4 (3 used)", "Memory:", "6.0 GiB (5.0 GiB used)", "Executor ID", "Exit code"):
        assert label in visible, label
    assert _local(WHEN_MS) in page and _local(WHEN_MS + 3200) in page
    assert "4.0 GiB" in page and "512 MiB" in page
    assert "wordcount &lt;b&gt;" in page and "wordcount <b>" not in page
    assert '<a href="http://127.0.0.1:8080">spark://127.0.0.1:7077</a>' in page
    assert '<meta http-equiv="refresh" content="5">' in page
    assert "<script" not in page and "src=" not in page  # nothing to run, nothing loaded from elsewhere
    links = re.findall(r'href="(/logPage/\?[^"]+)"', page)
    assert [html.unescape(u) for u in links] == [
        "/logPage/?appId=app-20261130-0001&executorId=0&logType=stdout",
        "/logPage/?appId=app-20261130-0001&executorId=0&logType=stderr",
        "/logPage/?appId=app-20261130-0001&executorId=1&logType=stdout",
        "/logPage/?appId=app-20261130-0001&executorId=1&logType=stderr",
        "/logPage/?driverId=driver-20261130-0003&logType=stdout",
        "/logPage/?driverId=driver-20261130-0003&logType=stderr",
    ]


def test_master_page_links_running_apps_to_their_ui_and_completed_ones_to_history() -> None:
    app = {"id": "app-1", "name": "pi <x>", "cores": 2, "user": "bob", "memoryperexecutor": 2048,
           "starttime": WHEN_MS, "duration": 3200, "state": "RUNNING", "waitingreason": "",
           "appuiurl": "http://127.0.0.1:4040"}
    sneaky = dict(app, id="app-2", name="sneaky", appuiurl="javascript:alert(1)")
    done = dict(app, id="app-0", name="old one", state="FINISHED", duration=246000, appuiurl="http://gone:4040")
    worker = {"id": "worker-1", "host": "127.0.0.2", "port": 7078, "webuiaddress": "http://127.0.0.2:8081",
              "cores": 4, "coresused": 1, "memory": 4096, "memoryused": 1024, "state": "ALIVE",
              "lastheartbeat": WHEN_MS}
    driver = {"id": "driver-20261130-0001", "starttime": WHEN_MS, "state": "RUNNING", "cores": 1, "memory": 1024,
              "worker": "worker-1", "mainclass": "job.py", "supervise": False, "exitcode": None, "message": ""}
    doc = {"url": "spark://127.0.0.1:7077", "workers": [worker], "aliveworkers": 1, "cores": 4, "coresused": 1,
           "memory": 8192, "memoryused": 2048, "activeapps": [app, sneaky], "completedapps": [done],
           "activedrivers": [driver], "completeddrivers": [], "status": "ALIVE"}
    page = render_master_page("sparkctl master", doc, history_url="http://127.0.0.1:18080/")
    assert '<a href="http://127.0.0.1:4040">pi &lt;x&gt;</a>' in page
    assert "javascript:" not in page and "<td>sneaky</td>" in page  # no link from another scheme
    assert '<a href="http://127.0.0.1:18080/history/app-0/jobs/">old one</a>' in page
    assert "http://gone:4040" not in page  # a finished app's driver UI is gone with it
    assert "8.0 GiB total, 2.0 GiB used" in page and "2.0 GiB" in page
    assert "3.2 s" in page and "4.1 min" in page and _local(WHEN_MS) in page
    # a driver's worker, and its logs there, are a click away
    assert '<a href="http://127.0.0.2:8081">worker-1</a>' in page
    assert ('<a href="http://127.0.0.2:8081/logPage/?driverId=driver-20261130-0001&amp;logType=stderr">stderr</a>'
            in page)
    # without a history server, a completed application's name is plain text
    assert "<td>old one</td>" in render_master_page("sparkctl master", doc)


def test_history_url_setting_and_the_driver_ui_url_in_the_registration() -> None:
    assert read_settings({"spark.master.ui.historyServerUrl": "http://h:18080"}).history_server_url == \
        "http://h:18080"
    assert read_settings({}).history_server_url == ""
    backend = StandaloneBackend("spark://127.0.0.1:7077", SparkConf(), "app", [])
    assert backend._description("127.0.0.1", 1).app_ui_url == ""
    backend.ui_url = "http://127.0.0.1:4041"  # type: ignore[attr-defined]  # set by the driver before start
    assert backend._description("127.0.0.1", 1).app_ui_url == "http://127.0.0.1:4041"


# ---------------------------------------------------------------- a master's pages, served


@pytest.mark.timeout(60)
def test_master_serves_app_ui_and_history_links() -> None:
    master = MasterDaemon("127.0.0.1", 0, 0, SECRET, MasterSettings(history_server_url="http://127.0.0.1:18080"))
    master.start()
    conn = None
    try:
        host, port = master.master_url[len("spark://"):].rsplit(":", 1)
        conn = connect(host, int(port), SECRET)
        conn.send(dm.RegisterApplication(dm.ApplicationDescription(
            "linked", "127.0.0.1", 1, None, None, 512, app_ui_url="http://127.0.0.1:4040")))
        reply = conn.recv(timeout=10)
        assert isinstance(reply, dm.RegisteredApplication)
        app_id = reply.app_id
        status, _, body = _get(master.webui_url + "/json")
        assert status == 200 and json.loads(body)["activeapps"][0]["appuiurl"] == "http://127.0.0.1:4040"
        status, headers, body = _get(master.webui_url + "/")
        assert status == 200 and '<a href="http://127.0.0.1:4040">linked</a>' in body.decode()
        assert headers["X-Content-Type-Options"] == "nosniff" and "script-src" not in headers["Content-Security-Policy"]
        conn.close()  # the driver goes: the application is completed
        wait_for(lambda: json.loads(_get(master.webui_url + "/json")[2])["completedapps"], 10, "the app to end")
        page = _get(master.webui_url + "/")[2].decode()
        assert f'<a href="http://127.0.0.1:18080/history/{app_id}/jobs/">linked</a>' in page
    finally:
        if conn is not None:
            conn.close()
        master.stop()


# ---------------------------------------------------------------- a worker's log pages


@pytest.fixture
def worker_ui(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An in-process worker (its master never answers) serving *work* on loopback."""
    work = tmp_path / "work"
    work.mkdir()
    config = WorkerConfig("127.0.0.1", free_port(), cores=2, memory=1024, host="127.0.0.1", port=0, webui_port=0,
                          work_dir=str(work))
    worker = Worker(config, SECRET).start()
    try:
        yield worker.webui_url(), work
    finally:
        worker.request_stop()
        worker.stop()


def test_logs_tail_by_default_and_serve_byte_ranges(worker_ui: tuple[str, Path]) -> None:
    base, work = worker_ui
    (work / "app-1" / "0").mkdir(parents=True)
    data = b"".join(b"line %06d <tag> & more\n" % i for i in range(14000))  # ~340 KB
    (work / "app-1" / "0" / "stderr").write_bytes(data)
    (work / "app-1" / "0" / "stdout").write_bytes(b"")
    q = "appId=app-1&executorId=0&logType=stderr"
    status, headers, body = _get(f"{base}/log?{q}")
    assert status == 200 and headers["Content-Type"].startswith("text/plain") and body == data[-DEFAULT_BYTES:]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert _get(f"{base}/log/?{q}&offset=100&byteLength=50")[2] == data[100:150]
    assert _get(f"{base}/log?{q}&byteLength=10")[2] == data[-10:]
    assert _get(f"{base}/log?{q}&offset={len(data) + 5}")[2] == b""
    assert _get(f"{base}/log?appId=app-1&executorId=0&logType=stdout")[:1] == (200,)
    # the page: the tail, escaped, with where it is in the file and links to the rest
    status, headers, body = _get(f"{base}/logPage/?{q}")
    page = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    start = len(data) - DEFAULT_BYTES
    assert f"Bytes {start:,}&ndash;{len(data):,} of {len(data):,}" in page
    pre = re.search(r'<pre class="log">(.*)</pre>', page, re.S)
    assert pre is not None and html.unescape(pre.group(1)).encode() == data[start:]
    assert "<tag>" not in page and "&lt;tag&gt; &amp; more" in page
    earlier = re.search(r'href="(/logPage/\?[^"]*offset=[^"]*)">&laquo; earlier', page)
    assert earlier is not None
    status, _, body = _get(base + html.unescape(earlier.group(1)))
    assert status == 200 and f"Bytes {start - DEFAULT_BYTES:,}&ndash;{start:,} of" in body.decode()
    assert "refresh" not in page  # a log is read at length: it does not reload under the reader


def test_logs_refuse_paths_outside_the_work_dir_and_unknown_apps(worker_ui: tuple[str, Path],
                                                                   tmp_path: Path) -> None:
    base, work = worker_ui
    secret_file = tmp_path / "outside.txt"
    secret_file.write_text("NOT FOR THE WEB\n")
    (work / "app-1" / "0").mkdir(parents=True)
    (work / "app-1" / "0" / "stdout").write_text("ok\n")
    (work / "app-1" / "9").mkdir()
    (work / "app-1" / "9" / "stdout").symlink_to(secret_file)  # a link planted in the work dir
    (work / "app-x").symlink_to(tmp_path, target_is_directory=True)  # an app dir that leads out
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "stdout").write_text("NOT FOR THE WEB EITHER\n")
    driver = work / "driver-20261130-0001"
    (driver / "conf").mkdir(parents=True)
    (driver / "conf" / "secret").write_text("s3cret")
    (driver / "stdout").write_text("driver says hi\n")
    cases = {
        "appId=..&executorId=0&logType=stdout": 400,
        "appId=app-1&executorId=..&logType=stdout": 400,
        "appId=app-1%2F0&executorId=0&logType=stdout": 400,
        "appId=app-1&executorId=0&logType=..%2F..%2Foutside.txt": 400,
        "appId=app-1&executorId=0&logType=secret": 400,
        "appId=app-1&logType=stdout": 400,
        "appId=app-1&executorId=0&driverId=driver-20261130-0001&logType=stdout": 400,
        "appId=app-1&appId=app-2&executorId=0&logType=stdout": 400,
        "appId=app-1&executorId=0&logType=stdout&offset=-1": 400,
        "appId=app-1&executorId=0&logType=stdout&byteLength=lots": 400,
        "appId=driver-20261130-0001&executorId=conf&logType=stdout": 400,
        "driverId=driver-20261130-0001%2Fconf&logType=stdout": 400,
        "driverId=worker&logType=stdout": 400,
        "appId=app-2&executorId=0&logType=stdout": 404,
        "appId=app-1&executorId=5&logType=stdout": 404,
        "appId=app-1&executorId=0&logType=stderr": 404,
        "driverId=driver-20261130-0002&logType=stdout": 404,
        "appId=app-1&executorId=9&logType=stdout": 403,
        "appId=app-x&executorId=0&logType=stdout": 403,
    }
    for query, expected in cases.items():
        for route in ("/log", "/logPage/"):
            status, _, body = _get(f"{base}{route}?{query}")
            assert status == expected, (route, query, status, body)
            assert b"NOT FOR THE WEB" not in body and b"s3cret" not in body
    # odd queries are refused with a reason, never a server error
    odd = ["", "appId=%00&executorId=0&logType=stdout", f"appId={'a' * 5000}&executorId=0&logType=stdout",
           "&".join(f"f{i}=1" for i in range(100)), "appId=app-1&executorId=0&logType=stdout&offset=1e9",
           "appId=%E2%80%AE&executorId=0&logType=stdout", "%%%&&==;"]
    for query in odd:
        status, _, body = _get(f"{base}/log?{query}")
        assert status == 400 and body.strip(), (query[:60], status, body)
    status, _, body = _get(f"{base}/log?appId=app-2&executorId=0&logType=stdout")
    assert b"no application app-2 has run on this worker" in body
    assert _get(f"{base}/log?driverId=driver-20261130-0001&logType=stdout")[::2] == (200, b"driver says hi\n")
    # what the web UI always checked still holds for the new routes
    assert _get(f"{base}/log?appId=app-1&executorId=0&logType=stdout", host="evil.example:80")[0] == 421
    req = urllib.request.Request(f"{base}/log?appId=app-1&executorId=0&logType=stdout", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 405


# ---------------------------------------------------------------- real processes


@pytest.mark.timeout(90)
def test_executor_gets_its_log_urls_and_they_serve_its_output(dirs: Dirs, cleanup: list[Any]) -> None:
    master = FakeMaster(free_port())
    cleanup.append(master.stop)
    driver = FakeDriver()
    cleanup.append(driver.stop)
    w = WorkerProcess(dirs, master.server.address[1])
    cleanup.append(w.close)
    conn, reg = master.register()
    launch(conn, "app-7", "3", driver.port)
    expect_state(conn, "app-7", "3", dm.EXEC_RUNNING)
    ex = driver.expect_executor()
    with open(f"/proc/{ex.pid}/environ", "rb") as f:
        env = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
    urls = json.loads(env[LOG_URLS_ENV.encode()])
    base = f"http://127.0.0.2:{reg.webui_port}"
    assert urls == {t: f"{base}/logPage/?appId=app-7&executorId=3&logType={t}" for t in ("stdout", "stderr")}
    stderr = dirs.work / "app-7" / "3" / "stderr"
    wait_for(lambda: stderr.stat().st_size > 0, 20, "the executor to write to its stderr")
    size = stderr.stat().st_size
    status, _, page = _get(urls["stderr"])
    assert status == 200 and "stderr of executor 3 of app-7" in page.decode()
    raw = _get(f"{base}/log?appId=app-7&executorId=3&logType=stderr&offset=0&byteLength={size}")[2]
    assert raw == stderr.read_bytes()[:size]
    # the worker's page links that executor's logs, running and after it ended
    worker_page = _get(base + "/")[2].decode()
    assert html.escape(urls["stdout"][len(base):]) in worker_page and "Running Executors (1)" in worker_page
    conn.send(dm.KillExecutor("app-7", "3"))
    expect_state(conn, "app-7", "3", dm.EXEC_KILLED)
    worker_page = _get(base + "/")[2].decode()
    assert "Finished Executors (1)" in worker_page and html.escape(urls["stderr"][len(base):]) in worker_page
    assert _get(urls["stderr"])[0] == 200  # the logs outlive the executor
    assert w.terminate() == 0


PAGES_APP = """
    import os, sys, time
    from sparkctl import SparkContext
    sc = SparkContext.getOrCreate()
    def shout(x):
        print(f"task output {x}", flush=True)
        return x
    assert sc.parallelize(range(4), 2).map(shout).sum() == 6
    print("UI", sc.uiWebUrl, flush=True)
    deadline = time.monotonic() + 60
    while not os.path.exists("go") and time.monotonic() < deadline:  # the test looks at the pages meanwhile
        time.sleep(0.05)
    sc.stop()
"""


@pytest.mark.timeout(180)
def test_cluster_pages_serve_executor_output_and_link_driver_ui_and_history(tmp_path: Path) -> None:
    cluster = CliCluster(tmp_path, "spark.master.ui.historyServerUrl http://127.0.0.1:18080\n")
    try:
        cluster.start([("127.0.0.2", 1)])
        app = tmp_path / "app.py"
        app.write_text(textwrap.dedent(PAGES_APP))
        driver = subprocess.Popen([sys.executable, str(ROOT / "bin" / "sparkctl"), "submit", "--master",
                                   cluster.url, str(app)], env=cluster.env, cwd=tmp_path, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        try:
            assert driver.stdout is not None
            ui_line = driver.stdout.readline()
            assert ui_line.startswith("UI http://"), (ui_line, driver.stderr.read() if driver.stderr else "")
            ui_url = ui_line.split()[1]
            # while it runs, the master's page links the application's name to its driver's UI
            master_ui = worker_ui_master(cluster)
            assert json.loads(_get(master_ui + "/json")[2])["activeapps"][0]["appuiurl"] == ui_url
            assert f'<a href="{html.escape(ui_url)}">' in _get(master_ui + "/")[2].decode()
        finally:
            (tmp_path / "go").touch()
            _, err = driver.communicate(timeout=120)
        assert driver.returncode == 0, err
        state = wait_for(lambda: (s := cluster.state())["completedapps"] and s, 30, "the app to complete")
        app_id = state["completedapps"][0]["id"]  # the master's id for it, which names its executors' dirs
        worker_ui = state["workers"][0]["webuiaddress"]
        page = wait_for(lambda: "Finished Executors (1)" in (p := _get(worker_ui + "/")[2].decode()) and p, 30,
                        "the worker to list the finished executor")
        links = [html.unescape(u) for u in re.findall(r'href="(/logPage/\?[^"]+logType=stdout)"', page)]
        assert links == [f"/logPage/?appId={app_id}&executorId=0&logType=stdout"]
        out = _get(worker_ui + links[0].replace("/logPage/", "/log"))[2].decode()
        assert all(f"task output {i}" in out for i in range(4)), out
        master_page = _get(master_ui + "/")[2].decode()
        assert f'href="http://127.0.0.1:18080/history/{app_id}/jobs/"' in master_page
    finally:
        cluster.stop()
    assert not processes_left(tmp_path)


def worker_ui_master(cluster: CliCluster) -> str:
    """The master's web UI, as its workers learnt it when they registered."""
    state = cluster.state()
    worker_doc = json.loads(_get(state["workers"][0]["webuiaddress"] + "/json")[2])
    return str(worker_doc["masterwebuiurl"])
