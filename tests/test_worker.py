"""The worker daemon as a real process on loopback, against a fake master and a fake driver.

```
 test ── FakeMaster (rpc Server) ◀── RegisterWorker / heartbeats / ExecutorStateChanged ── worker process
      ── LaunchExecutor / KillExecutor / ApplicationFinished ──────────────────────────▶     │ spawns
 test ── FakeDriver (rpc Server) ◀── RegisterExecutor ── executor process (forked by the worker's
                                                          fork server, see test_fork_server.py)
```

Workers listen on 127.0.0.2 and 127.0.0.3, as if on other hosts. Every test gets its own
PID/LOG/WORK/CONF dirs and checks that it left no process behind.
"""
from __future__ import annotations

import json
import os
import queue
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.clusters import processes_left, wait_for

from sparkctl.deploy import messages as dm
from sparkctl.deploy.worker import backoff_delays, default_memory_mib, make_worker_id
from sparkctl.errors import ConnectionClosed, RpcTimeoutError
from sparkctl.rpc import Connection, Server
from sparkctl.scheduler import messages as sm
from sparkctl.util.cleanup import ProcessIdentity, make_owned_dir

ROOT = Path(__file__).resolve().parent.parent
SECRET = "worker-test-secret"


# ---------------------------------------------------------------- helpers


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def pid_alive(pid: int) -> bool:
    """A live, non-zombie process (works for processes that are not our children)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] != b"Z"


@dataclass
class Dirs:
    root: Path
    pids: Path
    logs: Path
    work: Path
    conf: Path


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dirs]:
    d = Dirs(tmp_path, tmp_path / "pids", tmp_path / "logs", tmp_path / "work", tmp_path / "conf")
    for p in (d.pids, d.logs, d.work, d.conf):
        p.mkdir()
    monkeypatch.setenv("SPARKCTL_PID_DIR", str(d.pids))
    monkeypatch.setenv("SPARKCTL_LOG_DIR", str(d.logs))
    monkeypatch.setenv("SPARKCTL_WORK_DIR", str(d.work))
    monkeypatch.setenv("SPARKCTL_CONF_DIR", str(d.conf))
    monkeypatch.setenv("SPARKCTL_SECRET", SECRET)
    yield d
    left = processes_left(tmp_path)
    for pid, _ in left:  # clean up before failing, so one bad test does not poison the rest
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    assert not left, f"processes left behind: {left}"


class FakeMaster:
    """An rpc Server playing the master: the test reads and answers its connections."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.conns: queue.Queue[Connection] = queue.Queue()
        self.server = Server(host, port, SECRET.encode(), self.conns.put, name="fake-master").start()
        self.url = f"spark://{host}:{port}"

    def accept(self, timeout: float = 15.0) -> Connection:
        try:
            return self.conns.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no worker connected to the fake master within {timeout}s") from None

    def register(self, timeout: float = 15.0, heartbeat: float = 0.2) -> tuple[Connection, dm.RegisterWorker]:
        conn = self.accept(timeout)
        msg = conn.recv(timeout=10)
        assert isinstance(msg, dm.RegisterWorker), msg
        conn.send(dm.RegisteredWorker(self.url, "http://127.0.0.1:8080", heartbeat))
        return conn, msg

    def stop(self) -> None:
        self.server.stop()


class FakeDriver:
    """An rpc Server playing a driver: answers RegisterExecutor, then just listens."""

    def __init__(self) -> None:
        self.registered: queue.Queue[sm.RegisterExecutor] = queue.Queue()
        self.server = Server("127.0.0.1", 0, SECRET.encode(), self._serve, name="fake-driver").start()
        self.port = self.server.address[1]

    def _serve(self, conn: Connection) -> None:
        try:
            msg = conn.recv(timeout=60)
            assert isinstance(msg, sm.RegisterExecutor)
            conn.send(sm.RegisteredExecutor("app-test"))
            self.registered.put(msg)
            while True:
                conn.recv()  # heartbeats; until the executor or the test closes it
        except (ConnectionClosed, AssertionError):
            conn.close()

    def expect_executor(self, timeout: float = 30.0) -> sm.RegisterExecutor:
        try:
            return self.registered.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no executor registered with the fake driver within {timeout}s") from None

    def stop(self) -> None:
        self.server.stop()


def expect(conn: Connection, cls: type, timeout: float = 20.0) -> object:
    """The next message of type *cls* on *conn*, skipping heartbeats; fail on anything else."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {cls.__name__} within {timeout}s")
        try:
            msg = conn.recv(timeout=left)
        except RpcTimeoutError:
            continue
        if isinstance(msg, dm.WorkerHeartbeat):
            continue
        assert isinstance(msg, cls), f"expected a {cls.__name__}, got {msg!r}"
        return msg


def expect_state(conn: Connection, app_id: str, executor_id: str, state: str,
                 timeout: float = 20.0) -> dm.ExecutorStateChanged:
    msg = expect(conn, dm.ExecutorStateChanged, timeout)
    assert isinstance(msg, dm.ExecutorStateChanged)
    assert (msg.app_id, msg.executor_id, msg.state) == (app_id, executor_id, state), msg
    return msg


class WorkerProcess:
    """``python -m sparkctl.deploy.worker`` with a ready pipe, as ``sparkctl worker start`` runs it."""

    def __init__(self, dirs: Dirs, master_port: int, host: str = "127.0.0.2", port: int | None = None,
                 cores: int = 2, memory: str = "1g") -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_file = dirs.logs / f"worker-{host}-{self.port}.log"
        self.out_file = dirs.logs / f"worker-{host}-{self.port}.out"
        self.ready_r, ready_w = os.pipe()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        with open(self.out_file, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sparkctl.deploy.worker", "--master", f"spark://127.0.0.1:{master_port}",
                 "--cores", str(cores), "--memory", memory, "--host", host, "--port", str(self.port),
                 "--webui-port", "0", "--work-dir", str(dirs.work), "--ready-fd", str(ready_w),
                 "--log-file", str(self.log_file)],
                pass_fds=(ready_w,), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                cwd=str(ROOT),
            )
        os.close(ready_w)

    def ready_line(self, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        buf = b""
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.ready_r], [], [], left)[0]:
                raise AssertionError(f"worker wrote no READY line within {timeout}s:\n{self.log()}")
            chunk = os.read(self.ready_r, 1024)
            if not chunk:
                raise AssertionError(f"worker closed the ready pipe without a line:\n{self.log()}")
            buf += chunk
        return buf.decode().strip()

    def log(self) -> str:
        text = self.log_file.read_text() if self.log_file.exists() else ""
        return text + (self.out_file.read_text() if self.out_file.exists() else "")

    def terminate(self, timeout: float = 20.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        try:
            os.close(self.ready_r)
        except OSError:
            pass


@pytest.fixture
def cleanup() -> Iterator[list[Callable[[], None]]]:
    """Teardown steps registered by a test, run last-in first-out even if it fails."""
    steps: list[Callable[[], None]] = []
    yield steps
    for step in reversed(steps):
        try:
            step()
        except Exception:
            pass


def launch(conn: Connection, app_id: str, executor_id: str, driver_port: int, cores: int = 1,
           memory: int = 300) -> None:
    conn.send(dm.LaunchExecutor(app_id, executor_id, cores, memory, "127.0.0.1", driver_port, "test-app",
                                {"heartbeat_interval": 1.0, "no_such_setting": 1}))


# ---------------------------------------------------------------- tests


def test_defaults_and_worker_id(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       8388608 kB\nMemFree:        1 kB\n")
    assert default_memory_mib(str(meminfo)) == 8192 - 1024
    meminfo.write_text("MemTotal:       1048576 kB\n")
    assert default_memory_mib(str(meminfo)) == 512  # never below 512 MiB
    assert re.fullmatch(r"worker-\d{14}-127\.0\.0\.2-7078", make_worker_id("127.0.0.2", 7078))
    delays = backoff_delays()
    assert [round(next(delays), 3) for _ in range(8)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]


@pytest.mark.timeout(60)
def test_registers_with_retry_until_master_is_up(dirs: Dirs, cleanup: list[Callable[[], None]]) -> None:
    master_port = free_port()
    w1 = WorkerProcess(dirs, master_port, host="127.0.0.2")
    cleanup.append(w1.close)
    # The master is not up yet: the worker keeps trying.
    wait_for(lambda: "Cannot register with master" in w1.log(), 15, "a failed registration attempt in the log")
    assert w1.proc.poll() is None
    master = FakeMaster(master_port)
    cleanup.append(master.stop)
    conn, reg = master.register()
    assert (reg.host, reg.port, reg.cores, reg.memory, reg.executors) == ("127.0.0.2", w1.port, 2, 1024, [])
    assert re.fullmatch(rf"worker-\d{{14}}-127\.0\.0\.2-{w1.port}", reg.worker_id), reg.worker_id
    assert w1.ready_line() == f"READY {reg.worker_id} spark://127.0.0.1:{master_port}"
    hb = conn.recv(timeout=5)
    assert hb == dm.WorkerHeartbeat(reg.worker_id)

    # A second "host" registers as a different worker.
    w2 = WorkerProcess(dirs, master_port, host="127.0.0.3", cores=1, memory="512m")
    cleanup.append(w2.close)
    conn2, reg2 = master.register()
    assert (reg2.host, reg2.cores, reg2.memory) == ("127.0.0.3", 1, 512)
    assert reg2.worker_id != reg.worker_id
    assert w2.ready_line().startswith(f"READY {reg2.worker_id} ")

    assert w1.terminate() == 0
    assert w2.terminate() == 0
    assert "Registered with master" in w1.log()
    assert "shutting down" in w1.log()


@pytest.mark.timeout(60)
def test_two_workers_cannot_share_a_port(dirs: Dirs, cleanup: list[Callable[[], None]]) -> None:
    master_port = free_port()  # nothing listens: both keep retrying, which is fine here
    w1 = WorkerProcess(dirs, master_port)
    cleanup.append(w1.close)
    wait_for(lambda: "listening on" in w1.log(), 15, "the first worker to listen")
    w2 = WorkerProcess(dirs, master_port, port=w1.port)
    cleanup.append(w2.close)
    assert w2.proc.wait(15) == 1
    assert "Address already in use" in w2.log()
    # SIGTERM before registration is still a graceful stop.
    assert w1.terminate() == 0


@pytest.mark.timeout(60)
def test_refuses_to_start_without_a_secret(dirs: Dirs, monkeypatch: pytest.MonkeyPatch,
                                           cleanup: list[Callable[[], None]]) -> None:
    monkeypatch.delenv("SPARKCTL_SECRET")
    w = WorkerProcess(dirs, free_port())
    cleanup.append(w.close)
    assert w.proc.wait(15) == 1
    assert "No cluster secret" in w.log()


@pytest.mark.timeout(90)
def test_launch_kill_and_application_finished(dirs: Dirs, cleanup: list[Callable[[], None]]) -> None:
    master = FakeMaster(free_port())
    cleanup.append(master.stop)
    driver = FakeDriver()
    cleanup.append(driver.stop)
    w = WorkerProcess(dirs, master.server.address[1])
    cleanup.append(w.close)
    conn, reg = master.register()

    launch(conn, "app-1", "0", driver.port)
    running = expect_state(conn, "app-1", "0", dm.EXEC_RUNNING)
    assert "pid" in running.message
    ex = driver.expect_executor()
    assert (ex.executor_id, ex.host, ex.cores, ex.worker_id) == ("0", "127.0.0.2", 1, reg.worker_id)
    exec_dir = dirs.work / "app-1" / "0"
    assert (exec_dir / "stdout").is_file() and (exec_dir / "stderr").is_file()
    assert (exec_dir / "local").is_dir()
    assert pid_alive(ex.pid)
    assert re.search(rf"Launched executor 0 of app-1 .* pid {ex.pid}", w.log())
    assert "no_such_setting" in w.log()  # unknown settings are dropped with a warning, not fatal
    # The worker's web UI shows the executor (its port came in RegisterWorker).
    assert reg.webui_port > 0
    with urllib.request.urlopen(f"http://127.0.0.2:{reg.webui_port}/json", timeout=10) as resp:
        doc = json.load(resp)
    assert doc["id"] == reg.worker_id and doc["coresused"] == 1
    assert [(e["appid"], e["id"], e["pid"]) for e in doc["executors"]] == [("app-1", "0", ex.pid)]

    conn.send(dm.KillExecutor("app-1", "0"))
    killed = expect_state(conn, "app-1", "0", dm.EXEC_KILLED)
    assert "killed by the master" in killed.message
    assert not (exec_dir / "local").exists()  # its shuffle files died with its block server
    assert (exec_dir / "stderr").is_file()  # its logs stay
    wait_for(lambda: not pid_alive(ex.pid), 10, "the killed executor's process to go")

    # ApplicationFinished stops every executor of that application.
    launch(conn, "app-2", "1", driver.port)
    launch(conn, "app-2", "2", driver.port)
    states = {}
    for _ in range(2):
        msg = expect(conn, dm.ExecutorStateChanged)
        assert isinstance(msg, dm.ExecutorStateChanged) and msg.state == dm.EXEC_RUNNING
    pids = {driver.expect_executor().pid for _ in range(2)}
    conn.send(dm.ApplicationFinished("app-2"))
    for _ in range(2):
        msg = expect(conn, dm.ExecutorStateChanged)
        assert isinstance(msg, dm.ExecutorStateChanged)
        states[msg.executor_id] = msg.state
    assert states == {"1": dm.EXEC_KILLED, "2": dm.EXEC_KILLED}
    wait_for(lambda: not any(pid_alive(p) for p in pids), 10, "app-2's executors to go")
    assert w.terminate() == 0


@pytest.mark.timeout(60)
def test_executor_that_dies_reports_failed_with_exit_code_and_log_tail(
        dirs: Dirs, cleanup: list[Callable[[], None]]) -> None:
    master = FakeMaster(free_port())
    cleanup.append(master.stop)
    w = WorkerProcess(dirs, master.server.address[1])
    cleanup.append(w.close)
    conn, _ = master.register()
    # No driver listens there: the executor fails to connect and exits with an error.
    launch(conn, "app-1", "7", free_port())
    expect_state(conn, "app-1", "7", dm.EXEC_RUNNING)
    failed = expect_state(conn, "app-1", "7", dm.EXEC_FAILED, timeout=30)
    assert failed.exit_code is not None and failed.exit_code > 0
    assert f"exited with code {failed.exit_code}" in failed.message
    assert "connection refused" in failed.log_tail
    assert len(failed.log_tail.splitlines()) <= 20
    assert "connection refused" in (dirs.work / "app-1" / "7" / "stderr").read_text()
    assert w.terminate() == 0


@pytest.mark.timeout(90)
def test_reregisters_listing_running_executors_when_the_master_goes(
        dirs: Dirs, cleanup: list[Callable[[], None]]) -> None:
    master_port = free_port()
    master = FakeMaster(master_port)
    cleanup.append(lambda: master.stop())
    driver = FakeDriver()
    cleanup.append(driver.stop)
    w = WorkerProcess(dirs, master_port)
    cleanup.append(w.close)
    conn, reg = master.register()
    launch(conn, "app-1", "0", driver.port, cores=1, memory=300)
    expect_state(conn, "app-1", "0", dm.EXEC_RUNNING)
    pid = driver.expect_executor().pid

    # 1. The connection drops but the master stays: the worker registers again at once.
    conn.close()
    conn, again = master.register()
    assert again.worker_id == reg.worker_id
    assert again.executors == [("app-1", "0", 1, 300)]
    assert pid_alive(pid)

    # 2. The master restarts (a new process on the same port): the worker retries until
    #    it is back, and the new master re-adopts the executor from RegisterWorker.
    master.stop()
    master = FakeMaster(master_port)
    conn, readopt = master.register(timeout=20)
    assert readopt.worker_id == reg.worker_id
    assert readopt.executors == [("app-1", "0", 1, 300)]
    assert pid_alive(pid)
    assert "Lost the connection to master" in w.log()

    # The new master can command the adopted executor.
    conn.send(dm.KillExecutor("app-1", "0"))
    expect_state(conn, "app-1", "0", dm.EXEC_KILLED)

    # 3. An executor that ends while no master listens is reported after the next
    #    registration (here: its driver goes away, so it exits with code 0).
    launch(conn, "app-1", "1", driver.port)
    expect_state(conn, "app-1", "1", dm.EXEC_RUNNING)
    pid = driver.expect_executor().pid
    master.stop()
    driver.stop()
    wait_for(lambda: re.search(rf"Executor 1 of app-1 \(pid {pid}\) exited with code 0", w.log()), 20,
             "the executor to exit while the master is down")
    master = FakeMaster(master_port)
    conn, after = master.register(timeout=20)
    assert after.executors == []
    exited = expect_state(conn, "app-1", "1", dm.EXITED)
    assert exited.exit_code == 0
    assert w.terminate() == 0


@pytest.mark.timeout(60)
def test_sigterm_stops_executors_first_then_exits_zero(dirs: Dirs, cleanup: list[Callable[[], None]]) -> None:
    master = FakeMaster(free_port())
    cleanup.append(master.stop)
    driver = FakeDriver()
    cleanup.append(driver.stop)
    w = WorkerProcess(dirs, master.server.address[1])
    cleanup.append(w.close)
    conn, _ = master.register()
    launch(conn, "app-1", "0", driver.port)
    expect_state(conn, "app-1", "0", dm.EXEC_RUNNING)
    pid = driver.expect_executor().pid

    w.proc.send_signal(signal.SIGTERM)
    # The executor is stopped and reported while the master connection is still open...
    killed = expect_state(conn, "app-1", "0", dm.EXEC_KILLED)
    assert "worker shutting down" in killed.message
    assert not pid_alive(pid)
    # ...then the worker closes it and exits 0.
    with pytest.raises(ConnectionClosed):
        expect(conn, dm.ExecutorStateChanged, 15)
    assert w.proc.wait(15) == 0
    log = w.log()
    assert log.index("Killing executor 0 of app-1") < log.index("Worker " + _worker_id(log) + " stopped")


def _age(path: Path, seconds: float) -> None:
    """Make *path* and everything under it look last modified *seconds* ago."""
    when = time.time() - seconds
    for p in [*path.rglob("*"), path]:
        os.utime(p, (when, when), follow_symlinks=False)


@pytest.mark.timeout(60)
def test_cleanup_removes_old_finished_app_dirs_and_keeps_running_ones(
        dirs: Dirs, cleanup: list[Callable[[], None]], monkeypatch: pytest.MonkeyPatch) -> None:
    (dirs.conf / "sparkctl-defaults.conf").write_text(
        "spark.worker.cleanup.enabled true\nspark.worker.cleanup.interval 100ms\nspark.worker.cleanup.appDataTtl 60\n")
    # a driver killed on this host left its scratch dir: a starting worker removes it too
    temp = dirs.root / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = ProcessIdentity.of(dead.pid)
    dead.wait(10)
    abandoned = make_owned_dir("sparkctl-app-killed-", str(temp), owner=owner)
    master = FakeMaster(free_port())
    cleanup.append(master.stop)
    driver = FakeDriver()
    cleanup.append(driver.stop)
    w = WorkerProcess(dirs, master.server.address[1])
    cleanup.append(w.close)
    conn, _ = master.register()
    launch(conn, "app-running", "0", driver.port)
    expect_state(conn, "app-running", "0", dm.EXEC_RUNNING)
    pid = driver.expect_executor().pid
    running = dirs.work / "app-running"
    _age(running, 3600)  # as old as the finished one: only running keeps it
    recent = dirs.work / "app-recent" / "0"
    recent.mkdir(parents=True)
    (recent / "stderr").write_text("finished a moment ago\n")
    _age(recent.parent, 30)  # within the TTL
    old = dirs.work / "app-old" / "0"
    old.mkdir(parents=True)
    (old / "stderr").write_text("finished long ago\n")
    _age(old.parent, 3600)
    # a file changed within the TTL keeps the whole application's directory
    touched = dirs.work / "app-touched" / "0"
    touched.mkdir(parents=True)
    (touched / "stdout").write_text("old\n")
    _age(touched.parent, 3600)
    os.utime(touched / "stdout")

    wait_for(lambda: not old.parent.exists(), 20, "the old application's directory to be removed")
    assert running.is_dir() and (running / "0" / "stderr").is_file() and pid_alive(pid)
    assert recent.is_dir() and touched.is_dir()
    assert not list(dirs.work.glob(".removing-*"))
    wait_for(lambda: not os.path.exists(abandoned), 10, "the killed driver's directory to be removed")
    assert "app-old" in w.log()
    assert w.terminate() == 0


def _worker_id(log: str) -> str:
    m = re.search(r"(worker-\d{14}-[\d.]+-\d+)", log)
    assert m, log
    return m.group(1)
