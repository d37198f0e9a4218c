"""The real master process on loopback: start-up, rpc roles, web UI, robustness, clean stop."""
from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sparkctl.deploy import messages as m
from sparkctl.deploy.webui import start_status_server
from sparkctl.errors import AuthenticationError, ConnectionClosed
from sparkctl.rpc import Connection, connect
from tests import clusters

SECRET = "test-master-secret"
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _children(pid: int) -> list[int]:
    """Live (non-zombie) processes whose parent is *pid*, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces or parentheses
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain *text* (e.g. a test's tmp dir)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            found.append(cmd)
    return found


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll *condition* until it returns something truthy; fail after *timeout* seconds."""
    return clusters.wait_for(condition, timeout, what, interval=0.02)


@dataclass
class Master:
    proc: subprocess.Popen[bytes]
    host: str
    port: int
    webui: str
    log_file: str

    def connect(self, secret: str = SECRET) -> Connection:
        return connect(self.host, self.port, secret.encode(), timeout=5.0)

    def json(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.webui}/json", timeout=5) as resp:
            assert resp.headers["Content-Type"] == "application/json"
            return json.loads(resp.read())  # type: ignore[no-any-return]

    def state(self) -> dict[str, Any]:
        with self.connect() as conn:
            conn.send(m.RequestMasterState())
            reply = conn.recv(timeout=5)
        assert isinstance(reply, m.MasterState)
        return reply.json

    def log(self) -> str:
        with open(self.log_file, encoding="utf-8") as f:
            return f.read()


def _read_ready(fd: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> str:
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("the master did not become ready in time")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise AssertionError(f"the master closed its ready fd without READY (exit code {proc.poll()})")
            data += chunk
    return data.decode()


@contextlib.contextmanager
def running_master(tmp_path: Any, *extra: str) -> Iterator[Master]:
    """A master process on loopback ports, killed if still running at the end."""
    conf = tmp_path / "conf"
    conf.mkdir(exist_ok=True)
    # A short worker timeout so the timer and the timeouts run within a test.
    (conf / "sparkctl-defaults.conf").write_text("spark.worker.timeout 2\n")
    env = dict(os.environ, SPARKCTL_SECRET=SECRET, SPARKCTL_CONF_DIR=str(conf))
    env["PYTHONPATH"] = os.pathsep.join([PROJECT_ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    log_file = str(tmp_path / "master.log")
    r, w = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sparkctl.deploy.master", "--host", "127.0.0.1", "--port", "0",
         "--webui-port", "0", "--ready-fd", str(w), "--log-file", log_file, *extra],
        pass_fds=[w], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    try:
        line = _read_ready(r, proc)
        assert line.startswith("READY spark://127.0.0.1:") and " http://127.0.0.1:" in line and line.endswith("\n")
        _, url, webui = line.split()
        port = int(url.rsplit(":", 1)[1])
        yield Master(proc, "127.0.0.1", port, webui, log_file)
    finally:
        os.close(r)
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


@pytest.fixture
def master(tmp_path: Any) -> Iterator[Master]:
    with running_master(tmp_path) as started:
        yield started
    assert started.proc.returncode is not None
    assert _processes_mentioning(str(tmp_path)) == [], "a process was left behind"


def stop(master: Master) -> int:
    assert _children(master.proc.pid) == []  # the master never starts processes of its own
    master.proc.send_signal(signal.SIGTERM)
    return master.proc.wait(10)


def _heartbeat(conn: Connection, worker_id: str, interval: float) -> None:
    while True:
        try:
            conn.send(m.WorkerHeartbeat(worker_id))
        except ConnectionClosed:
            return
        time.sleep(interval)


def register_worker(master: Master, worker_id: str = "worker-1", cores: int = 2, memory: int = 1024,
                    port: int = 40001, heartbeats: bool = True) -> Connection:
    """A fake worker: registers and (unless told not to) heartbeats until its connection closes."""
    conn = master.connect()
    conn.send(m.RegisterWorker(worker_id, "127.0.0.1", port, cores, memory, webui_port=8081))
    reply = conn.recv(timeout=5)
    assert isinstance(reply, m.RegisteredWorker), reply
    assert reply.master_url == f"spark://127.0.0.1:{master.port}" and reply.master_webui_url == master.webui
    assert reply.heartbeat_interval == pytest.approx(0.5)
    if heartbeats:
        threading.Thread(target=_heartbeat, args=(conn, worker_id, reply.heartbeat_interval), daemon=True).start()
    return conn


# ----------------------------------------------------------------- tests
@pytest.mark.timeout(60)
def test_worker_registers_and_shows_in_json(master: Master) -> None:
    doc = master.json()
    assert doc["url"] == f"spark://127.0.0.1:{master.port}" and doc["status"] == "ALIVE" and doc["workers"] == []
    with register_worker(master):
        doc = master.json()
        (w,) = doc["workers"]
        assert (w["id"], w["host"], w["port"], w["cores"], w["memory"], w["state"]) == \
            ("worker-1", "127.0.0.1", 40001, 2, 1024, "ALIVE")
        assert doc["aliveworkers"] == 1 and doc["cores"] == 2 and doc["memory"] == 1024
        # the same document over rpc, as many times as asked on one connection
        with master.connect() as status:
            for _ in range(3):
                status.send(m.RequestMasterState())
                reply = status.recv(timeout=5)
                assert isinstance(reply, m.MasterState)
                assert [x["id"] for x in reply.json["workers"]] == ["worker-1"]
        with urllib.request.urlopen(f"{master.webui}/", timeout=5) as resp:
            page = resp.read().decode()
        assert "<title>sparkctl master</title>" in page and "worker-1" in page
    # the worker's connection closing is its death
    wait_for(lambda: master.json()["workers"][0]["state"] == "DEAD", what="the worker to be DEAD")
    assert "Registering worker worker-1 at 127.0.0.1:40001 with 2 cores, 1024 MiB RAM" in master.log()
    assert stop(master) == 0


@pytest.mark.timeout(60)
def test_silent_worker_times_out(master: Master) -> None:
    with register_worker(master, heartbeats=False) as conn:
        # heartbeats keep it alive past the 2 s timeout...
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            conn.send(m.WorkerHeartbeat("worker-1"))
            time.sleep(0.2)
        assert master.json()["workers"][0]["state"] == "ALIVE"
        # ...silence does not: the master marks it DEAD and closes its connection
        with pytest.raises(ConnectionClosed):
            conn.recv(timeout=10)
        assert master.json()["workers"][0]["state"] == "DEAD"
    assert "no heartbeat for" in master.log()
    assert stop(master) == 0


@pytest.mark.timeout(60)
def test_application_gets_executor_and_is_cleaned_up_when_driver_goes(master: Master) -> None:
    worker = register_worker(master, cores=2, memory=2048)
    driver = master.connect()
    desc = m.ApplicationDescription("pi <script>", "127.0.0.1", 45000, None, None, 512, user="bob")
    driver.send(m.RegisterApplication(desc))
    registered = driver.recv(timeout=5)
    assert isinstance(registered, m.RegisteredApplication)
    app_id = registered.app_id
    added = driver.recv(timeout=5)
    assert added == m.ExecutorAdded("0", "worker-1", "127.0.0.1", 2, 512)
    launch = worker.recv(timeout=5)
    assert isinstance(launch, m.LaunchExecutor)
    assert (launch.app_id, launch.executor_id, launch.cores, launch.memory, launch.app_name) == \
        (app_id, "0", 2, 512, "pi <script>")
    worker.send(m.ExecutorStateChanged(app_id, "0", m.EXEC_RUNNING))
    update = driver.recv(timeout=5)
    assert isinstance(update, m.ExecutorUpdated) and update.state == m.EXEC_RUNNING

    (app,) = master.json()["activeapps"]
    assert (app["id"], app["name"], app["cores"], app["state"], app["user"]) == (app_id, "pi <script>", 2, "RUNNING",
                                                                               "bob")
    with urllib.request.urlopen(f"{master.webui}/", timeout=5) as resp:
        page = resp.read().decode()
    assert "pi &lt;script&gt;" in page and "pi <script>" not in page  # escaped

    driver.close()  # the driver is gone: its executors are killed, its app FINISHED
    assert worker.recv(timeout=5) == m.KillExecutor(app_id, "0")
    assert worker.recv(timeout=5) == m.ApplicationFinished(app_id)
    doc = wait_for(lambda: (d := master.json())["completedapps"] and d, what="the app to complete")
    assert doc["activeapps"] == [] and doc["completedapps"][0]["state"] == "FINISHED"
    assert doc["workers"][0]["coresused"] == 0
    log = master.log()
    assert f"Launching executor {app_id}/0 on worker worker-1 (127.0.0.1:40001)" in log
    assert f"The driver of application {app_id} disconnected" in log
    worker.close()
    assert stop(master) == 0


@pytest.mark.timeout(60)
def test_kill_application_request(master: Master) -> None:
    driver = master.connect()
    driver.send(m.RegisterApplication(m.ApplicationDescription("victim", "127.0.0.1", 45000, 1, None, 512)))
    registered = driver.recv(timeout=5)
    assert isinstance(registered, m.RegisteredApplication)
    with master.connect() as status:
        status.send(m.RequestKillApplication(registered.app_id))
        reply = status.recv(timeout=5)
    assert isinstance(reply, m.MasterState)
    assert [(a["id"], a["state"]) for a in reply.json["completedapps"]] == [(registered.app_id, "KILLED")]
    removed = driver.recv(timeout=5)
    assert isinstance(removed, m.ApplicationRemoved) and "killed" in removed.message
    driver.close()
    assert stop(master) == 0


@pytest.mark.timeout(60)
def test_wrong_secret_and_garbage_do_not_hurt(master: Master) -> None:
    with pytest.raises(AuthenticationError):
        master.connect(secret="not-the-secret")
    # raw garbage, a huge frame header, an HTTP request, and a connect-and-close
    for payload in (os.urandom(4096), b"\xff" * 8 + b"x" * 100, b"GET / HTTP/1.0\r\n\r\n", b""):
        with socket.create_connection((master.host, master.port), timeout=5) as s:
            try:
                if payload:
                    s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
                while s.recv(4096):  # until the master hangs up on us
                    pass
            except OSError:
                pass  # it may hang up (reset) before we are done sending: that is the point
    # an authenticated peer whose first message is no role, then one that sends unpicklable bytes
    with master.connect() as odd:
        odd.send(m.WorkerHeartbeat("who-am-i"))
        with pytest.raises(ConnectionClosed):
            odd.recv(timeout=5)
    with master.connect() as bad:
        bad.send_bytes(b"definitely not a pickle")
        with pytest.raises(ConnectionClosed):
            bad.recv(timeout=5)
    # a registered worker sending nonsense is dropped, and counts as gone
    worker = register_worker(master)
    worker.send(m.RequestKillApplication("app-x"))
    with pytest.raises(ConnectionClosed):
        worker.recv(timeout=5)
    worker.close()
    assert master.proc.poll() is None
    assert master.state()["status"] == "ALIVE"
    assert wait_for(lambda: master.json()["workers"][0]["state"] == "DEAD", what="the bad worker to be dropped")
    assert "failed authentication" in master.log()
    assert stop(master) == 0


@pytest.mark.timeout(60)
def test_webui_routes(master: Master) -> None:
    with urllib.request.urlopen(f"{master.webui}/json/", timeout=5) as resp:
        assert json.loads(resp.read())["status"] == "ALIVE"
    with pytest.raises(urllib.error.HTTPError) as e404:
        urllib.request.urlopen(f"{master.webui}/nope", timeout=5)
    assert e404.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as e405:
        urllib.request.urlopen(urllib.request.Request(f"{master.webui}/json", data=b"x", method="POST"), timeout=5)
    assert e405.value.code == 405
    assert stop(master) == 0


@pytest.mark.timeout(60)
def test_sigterm_with_connected_peers_exits_cleanly(master: Master) -> None:
    worker = register_worker(master)
    driver = master.connect()
    driver.send(m.RegisterApplication(m.ApplicationDescription("app", "127.0.0.1", 45000, None, 1, 256)))
    assert isinstance(driver.recv(timeout=5), m.RegisteredApplication)
    assert stop(master) == 0
    # the master closed our connections on its way out
    for conn in (worker, driver):
        with pytest.raises(ConnectionClosed):
            while True:
                conn.recv(timeout=5)
        conn.close()
    assert "Master shutting down" in master.log()


@pytest.mark.timeout(60)
def test_creates_a_secret_when_none_is_configured(tmp_path: Any) -> None:
    conf = tmp_path / "conf"
    env = {k: v for k, v in os.environ.items() if k != "SPARKCTL_SECRET"}
    env.update(SPARKCTL_CONF_DIR=str(conf), PYTHONPATH=PROJECT_ROOT)
    r, w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "sparkctl.deploy.master", "--host", "127.0.0.1", "--port", "0",
                             "--webui-port", "0", "--ready-fd", str(w), "--log-file", str(tmp_path / "master.log")],
                            pass_fds=[w], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    try:
        _, url, _ = _read_ready(r, proc).split()
        secret_file = conf / "secret"
        assert secret_file.stat().st_mode & 0o777 == 0o600
        port = int(url.rsplit(":", 1)[1])
        with connect("127.0.0.1", port, secret_file.read_bytes().strip(), timeout=5) as conn:
            conn.send(m.RequestMasterState())
            assert isinstance(conn.recv(timeout=5), m.MasterState)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        os.close(r)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert _processes_mentioning(str(tmp_path)) == []


@pytest.mark.timeout(60)
def test_recovery_dir_restores_workers_and_apps(tmp_path: Any) -> None:
    recovery = str(tmp_path / "recovery")
    with running_master(tmp_path, "--recovery-dir", recovery) as first:
        worker = register_worker(first)
        driver = first.connect()
        driver.send(m.RegisterApplication(m.ApplicationDescription("long", "127.0.0.1", 45000, None, None, 256)))
        registered = driver.recv(timeout=5)
        assert isinstance(registered, m.RegisteredApplication)
        launch = worker.recv(timeout=5)
        assert isinstance(launch, m.LaunchExecutor)
        worker.send(m.ExecutorStateChanged(registered.app_id, "0", m.EXEC_RUNNING))
        wait_for(lambda: first.json()["activeapps"][0]["waitingreason"] == "", what="the executor to run")
        assert stop(first) == 0
        worker.close()
        driver.close()
    with running_master(tmp_path, "--recovery-dir", recovery) as second:
        doc = second.json()
        assert [(w["id"], w["state"], w["coresused"]) for w in doc["workers"]] == [("worker-1", "ALIVE", 2)]
        (app,) = doc["activeapps"]
        assert app["id"] == registered.app_id and app["state"] == "UNKNOWN"  # as Spark's, until the driver is back
        assert app["waitingreason"] == "its driver has not re-registered since the master restarted"
        # the worker and the driver find the new master and keep what they had
        worker = second.connect()
        worker.send(m.RegisterWorker("worker-1", "127.0.0.1", 40001, 2, 1024,
                                     executors=[(registered.app_id, "0", 2, 256)]))
        assert isinstance(worker.recv(timeout=5), m.RegisteredWorker)
        driver = second.connect()
        driver.send(m.RegisterApplication(m.ApplicationDescription("long", "127.0.0.1", 45000, None, None, 256),
                                          registered.app_id))
        again = driver.recv(timeout=5)
        assert again == m.RegisteredApplication(registered.app_id, f"spark://127.0.0.1:{second.port}")
        doc = second.json()
        assert [(a["id"], a["state"], a["cores"]) for a in doc["activeapps"]] == [(registered.app_id, "RUNNING", 2)]
        assert "Recovered 1 worker and 1 active application" in second.log()
        worker.close()
        driver.close()
        assert stop(second) == 0
    assert _processes_mentioning(str(tmp_path)) == []


@pytest.mark.timeout(60)
def test_driver_ending_before_it_reconnects_unregisters_on_its_own_connection(tmp_path: Any) -> None:
    """A driver that ends while a restarted master still waits for it says so on a one-off
    connection; the application is FINISHED at once, and cannot come back under its id."""
    recovery = str(tmp_path / "recovery")
    desc = m.ApplicationDescription("short", "127.0.0.1", 45000, None, None, 256)
    with running_master(tmp_path, "--recovery-dir", recovery) as first:
        driver = first.connect()
        driver.send(m.RegisterApplication(desc))
        registered = driver.recv(timeout=5)
        assert isinstance(registered, m.RegisteredApplication)
        assert stop(first) == 0
        driver.close()
    with running_master(tmp_path, "--recovery-dir", recovery) as second:
        assert [a["state"] for a in second.json()["activeapps"]] == ["UNKNOWN"]
        once = second.connect()
        once.send(m.UnregisterApplication(registered.app_id))
        once.close()
        wait_for(lambda: [(a["id"], a["state"]) for a in second.json()["completedapps"]] ==
                 [(registered.app_id, "FINISHED")], what="the application to finish")
        assert second.json()["activeapps"] == []
        late = second.connect()
        late.send(m.RegisterApplication(desc, registered.app_id))
        refused = late.recv(timeout=5)
        assert isinstance(refused, m.ApplicationRemoved) and "already ended (FINISHED)" in refused.message
        late.close()
        assert [a["id"] for a in second.json()["completedapps"]] == [registered.app_id]
        assert stop(second) == 0
    assert _processes_mentioning(str(tmp_path)) == []


@pytest.mark.timeout(30)
def test_generic_status_page_for_other_daemons() -> None:
    doc = {"id": "worker-<1>", "cores": 2, "executors": [{"appid": "app-1", "name": "a & b"}], "finished": []}
    server = start_status_server("127.0.0.1", 0, lambda: doc, "sparkctl worker <x>")
    base = f"http://127.0.0.1:{server.port}"
    try:
        with urllib.request.urlopen(f"{base}/", timeout=5) as resp:
            assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
            page = resp.read().decode()
        assert "<title>sparkctl worker &lt;x&gt;</title>" in page
        assert "worker-&lt;1&gt;" in page and "a &amp; b" in page and "<th>appid</th>" in page
        with urllib.request.urlopen(f"{base}/json", timeout=5) as resp:
            assert json.loads(resp.read()) == doc
        for method in ("PUT", "DELETE", "HEAD"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(urllib.request.Request(f"{base}/", method=method), timeout=5)
            assert err.value.code == 405
    finally:
        server.stop()


def _threads(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


@pytest.mark.timeout(60)
def test_connections_share_one_reader_thread(master: Master) -> None:
    """300 workers on 300 connections: the master's threads do not grow with them (one
    dispatcher reads them all); each is served, a replaced connection is dropped, and
    every connection's close is noticed."""
    idle = _threads(master.proc.pid)
    conns = [register_worker(master, f"w{i}", port=41000 + i, heartbeats=False) for i in range(300)]
    try:
        for i, conn in enumerate(conns):
            conn.send(m.WorkerHeartbeat(f"w{i}"))
        assert _threads(master.proc.pid) <= idle + 10  # (a thread per connection: 600 more)
        doc = master.state()
        assert doc["aliveworkers"] == 300 and {w["id"] for w in doc["workers"]} == {f"w{i}" for i in range(300)}
        # w0 registers again on a new connection: the old one is closed by the master
        again = register_worker(master, "w0", port=41000, heartbeats=False)
        with pytest.raises(ConnectionClosed):
            conns[0].recv(timeout=5)
        conns[0] = again
        # more connections after that one closed (its descriptor may be reused) are served
        extra = [register_worker(master, f"x{i}", port=42000 + i, heartbeats=False) for i in range(20)]
        conns += extra
        assert master.state()["aliveworkers"] == 320
        for conn in conns[:100]:
            conn.close()
        wait_for(lambda: master.state()["aliveworkers"] == 220, what="closed connections to remove their workers")
    finally:
        for conn in conns:
            conn.close()
    wait_for(lambda: master.state()["aliveworkers"] == 0, what="every worker to be removed")
    assert _threads(master.proc.pid) <= idle + 10


@pytest.mark.timeout(30)
def test_dispatcher_reads_in_order_and_outbox_threads_end_when_idle() -> None:
    from sparkctl.deploy.dispatcher import Dispatcher, Outbox
    from sparkctl.errors import ProtocolError

    dispatcher = Dispatcher("test").start()
    pairs = [socket.socketpair() for _ in range(3)]
    conns = [(Connection(a), Connection(b)) for a, b in pairs]
    got: dict[int, list[object]] = {i: [] for i in range(3)}
    ended: dict[int, Exception | None] = {}

    def handler(i: int) -> Callable[[object], None]:
        def handle(msg: object) -> None:
            if msg == "bad":
                raise ProtocolError("a bad message")
            got[i].append(msg)
        return handle

    def on_close(i: int) -> Callable[[Exception | None], None]:
        return lambda err: ended.__setitem__(i, err)

    try:
        for i, (_, theirs) in enumerate(conns):
            dispatcher.register(theirs, handler(i), on_close(i))
        outboxes = [Outbox(ours, f"test-outbox-{i}") for i, (ours, _) in enumerate(conns)]
        for n in range(500):
            for outbox in outboxes:
                outbox.put(n)
        wait_for(lambda: all(len(got[i]) == 500 for i in range(3)), what="every message")
        assert all(got[i] == list(range(500)) for i in range(3))  # in order, per connection
        wait_for(lambda: not [t for t in threading.enumerate() if t.name.startswith("test-outbox-")],
                 what="the idle outboxes' threads to end")
        outboxes[0].close()  # after what is queued: an EOF for the reader
        outboxes[1].put("bad")  # the handler refuses it: that connection is dropped
        wait_for(lambda: 0 in ended and 1 in ended, what="both ends")
        assert ended[0] is None and isinstance(ended[1], ProtocolError) and conns[1][1].closed
        assert 2 not in ended
        outboxes[2].put("still served")
        wait_for(lambda: got[2][-1:] == ["still served"], what="the third connection")
    finally:
        dispatcher.stop()
        for ours, theirs in conns:
            ours.close()
            theirs.close()
