"""Executors forked by a worker's fork server, as real processes on loopback.

```
 test ── ForkServer.launch() ──▶ fork server process ── fork ──▶ executor ── RegisterExecutor ──▶ FakeDriver
 test ── FakeMaster ── LaunchExecutor ×4 ──▶ worker process ── fork server ──▶ 4 executors ──▶ GatedDriver
```

The fork server's children must be what ``python -m sparkctl.executor`` would have been:
registered with their driver, in their own session, in their own directory and
environment, writing their own stdout and stderr, watched to their exit code, and gone
when what started them goes. A worker starts several at once: none waits for another.
"""
from __future__ import annotations

import os
import queue
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sparkctl.deploy import messages as dm
from sparkctl.deploy.fork_server import ROOM_VAR, ForkServer
from sparkctl.errors import ConnectionClosed
from sparkctl.rpc import Connection, Server
from sparkctl.scheduler import messages as sm
from sparkctl.scheduler.backend import executor_environment, stop_process
from tests.clusters import wait_for
from tests.test_worker import (  # noqa: F401 (dirs and cleanup are fixtures)
    SECRET, Dirs, FakeDriver, FakeMaster, WorkerProcess, cleanup, dirs, expect, free_port, launch, pid_alive,
)


def _settings(executor_id: str, driver_port: int, local_dir: Path) -> dict[str, Any]:
    return {"executor_id": executor_id, "driver_host": "127.0.0.1", "driver_port": driver_port, "cores": 1,
            "host": "127.0.0.1", "local_dir": str(local_dir), "memory": 256 << 20, "heartbeat_interval": 1.0,
            "secret": SECRET, "log_level": "INFO"}


def _stat(pid: int) -> list[bytes]:
    """Fields 3.. of /proc/PID/stat (state, ppid, pgrp, session, ...)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    return stat[stat.rindex(b")") + 2:].split()


def _children(pid: int) -> list[int]:
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = _stat(int(name))
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != b"Z":
            found.append(int(name))
    return found


@pytest.fixture
def fork_server() -> Any:
    server = ForkServer().start()
    yield server
    server.stop()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("in_process_slot", [True, False], ids=["inline-slot", "slot-process"])
def test_a_forked_executor_registers_with_its_own_session_directory_environment_and_logs(
        dirs: Dirs, fork_server: ForkServer, cleanup: list[Callable[[], None]], in_process_slot: bool) -> None:
    driver = FakeDriver()
    cleanup.append(driver.stop)
    home = dirs.work / "app-1" / "0"
    home.mkdir(parents=True)
    settings = {**_settings("0", driver.port, home / "local"), "in_process_slot": in_process_slot}
    env = executor_environment(settings, {"SPARKCTL_TEST_MARK": "forked-0"})
    proc = fork_server.launch(settings, env, str(home), str(home / "stdout"), str(home / "stderr"))
    reg = driver.expect_executor()
    assert (reg.executor_id, reg.pid, reg.cores) == ("0", proc.pid, 1)
    # as Popen(start_new_session=True, cwd=...) would have made it
    state, ppid, pgrp, session = _stat(proc.pid)[:4]
    assert (int(ppid), int(pgrp), int(session)) == (fork_server.pid, proc.pid, proc.pid)
    assert os.readlink(f"/proc/{proc.pid}/cwd") == str(home)
    environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
    assert b"SPARKCTL_TEST_MARK=forked-0" in environ
    assert not [v for v in environ if v.startswith(ROOM_VAR.encode()) or v.startswith(b"SPARKCTL_SECRET=")]
    assert Path(f"/proc/{proc.pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")[-2:] == [
        b"sparkctl.executor", b"(forked)"]
    assert os.readlink(f"/proc/{proc.pid}/fd/0") == os.devnull
    assert os.readlink(f"/proc/{proc.pid}/fd/2") == str(home / "stderr")
    assert fork_server.pid is not None
    if in_process_slot:  # one core: its slot runs in its own main thread
        slots = []
    else:  # its task slot was forked by it, not by the fork server
        slots = wait_for(lambda: _children(proc.pid), 10, "the executor's task slot")
        assert len(slots) == 1
    assert _children(fork_server.pid) == [proc.pid]
    wait_for(lambda: "registered with driver" in (home / "stderr").read_text(), 10,
             "the executor's log line in its stderr")
    assert proc.poll() is None and _children(proc.pid) == slots

    # The worker stops it as it stops any executor: its group, then its exit code.
    stop_process(proc, 0.0)
    assert proc.returncode is not None and proc.poll() == proc.returncode
    assert not pid_alive(proc.pid)
    # its slot had the same signal (its group's), and acts on it when it next runs
    wait_for(lambda: not any(pid_alive(s) for s in slots), 10, "the executor's task slot to end")


@pytest.mark.timeout(60)
def test_an_executor_that_fails_reports_its_exit_code_and_the_next_starts_fresh(
        dirs: Dirs, fork_server: ForkServer, cleanup: list[Callable[[], None]]) -> None:
    home = dirs.work / "app-1" / "1"
    home.mkdir(parents=True)
    nobody = free_port()  # no driver listens there: the executor exits with an error
    proc = fork_server.launch(_settings("1", nobody, home / "local"), executor_environment({}), str(home),
                              str(home / "stdout"), str(home / "stderr"))
    assert proc.wait(30) == 1  # as Spark's executor exits when it cannot register
    # one line that names the driver and the reason, no traceback
    log = (home / "stderr").read_text()
    assert f"executor 1: cannot register with the driver at 127.0.0.1:{nobody}: " in log
    assert "connection refused" in log and "Traceback" not in log, log
    assert not (home / "local").exists()  # its local dir went with it
    # A child's state is its own: one that exited leaves nothing behind for the next.
    driver = FakeDriver()
    cleanup.append(driver.stop)
    again = fork_server.launch(_settings("2", driver.port, home / "local2"), executor_environment({}), str(home),
                               str(home / "stdout"), str(home / "stderr"))
    assert driver.expect_executor().pid == again.pid != proc.pid
    stop_process(again, 0.0)


@pytest.mark.timeout(60)
def test_an_executor_whose_driver_is_not_a_sparkctl_driver_exits_with_one_line(
        dirs: Dirs, fork_server: ForkServer, cleanup: list[Callable[[], None]]) -> None:
    # something listens at the driver's address, but closes every connection unanswered
    listener = socket.create_server(("127.0.0.1", 0))
    cleanup.append(listener.close)
    home = dirs.work / "app-1" / "5"
    home.mkdir(parents=True)
    proc = fork_server.launch(_settings("5", listener.getsockname()[1], home / "local"), executor_environment({}),
                              str(home), str(home / "stdout"), str(home / "stderr"))
    conn, _ = listener.accept()
    conn.close()
    assert proc.wait(30) == 1
    log = (home / "stderr").read_text()
    lines = [line for line in log.splitlines() if "cannot register with the driver" in line]
    assert len(lines) == 1 and "Traceback" not in log, log
    assert not pid_alive(proc.pid) and not _children(proc.pid)


@pytest.mark.timeout(60)
def test_a_launch_into_a_missing_directory_fails_with_its_reason(dirs: Dirs, fork_server: ForkServer) -> None:
    from sparkctl.deploy.fork_server import ForkServerError

    missing = dirs.work / "nowhere"
    with pytest.raises(ForkServerError, match="No such file or directory"):
        fork_server.launch(_settings("3", free_port(), missing / "local"), executor_environment({}), str(missing),
                           str(missing / "stdout"), str(missing / "stderr"))
    assert fork_server.pid is not None and pid_alive(fork_server.pid)  # and it serves on


@pytest.mark.timeout(60)
def test_when_the_fork_server_dies_its_executors_are_killed_and_a_new_one_serves(
        dirs: Dirs, fork_server: ForkServer, cleanup: list[Callable[[], None]]) -> None:
    driver = FakeDriver()
    cleanup.append(driver.stop)
    home = dirs.work / "app-1" / "4"
    home.mkdir(parents=True)
    proc = fork_server.launch(_settings("4", driver.port, home / "local"), executor_environment({}), str(home),
                              str(home / "stdout"), str(home / "stderr"))
    driver.expect_executor()
    first = fork_server.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    # it cannot be watched any more: killed, and reported as killed
    assert proc.wait(15) == -signal.SIGKILL
    wait_for(lambda: not pid_alive(proc.pid), 10, "the orphaned executor to go")
    again = fork_server.launch(_settings("5", driver.port, home / "local5"), executor_environment({}), str(home),
                               str(home / "stdout"), str(home / "stderr"))
    assert driver.expect_executor().pid == again.pid
    assert fork_server.pid not in (None, first)
    stop_process(again, 0.0)


class GatedDriver:
    """A driver that answers no RegisterExecutor until *expected* executors have sent one:
    executors started one after the other, each waiting for the previous one to register,
    would never all get there."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.waiting: queue.Queue[tuple[Connection, sm.RegisterExecutor, float]] = queue.Queue()
        self.server = Server("127.0.0.1", 0, SECRET.encode(), self._serve, name="gated-driver").start()
        self.port = self.server.address[1]

    def _serve(self, conn: Connection) -> None:
        try:
            msg = conn.recv(timeout=60)
            assert isinstance(msg, sm.RegisterExecutor)
            self.waiting.put((conn, msg, time.monotonic()))
            while True:
                conn.recv()
        except (ConnectionClosed, AssertionError, OSError):
            conn.close()

    def gather(self, timeout: float) -> list[tuple[Connection, sm.RegisterExecutor, float]]:
        got: list[tuple[Connection, sm.RegisterExecutor, float]] = []
        deadline = time.monotonic() + timeout
        while len(got) < self.expected:
            try:
                got.append(self.waiting.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"{len(got)} of {self.expected} executors registered within {timeout}s; "
                                     "does a launch wait for the one before?") from None
        return got

    def stop(self) -> None:
        self.server.stop()


@pytest.mark.timeout(90)
def test_a_worker_starts_many_executors_at_once_and_takes_them_along_when_killed(
        dirs: Dirs, cleanup: list[Callable[[], None]]) -> None:
    n = 4
    master = FakeMaster(free_port())
    cleanup.append(master.stop)
    driver = GatedDriver(n)
    cleanup.append(driver.stop)
    w = WorkerProcess(dirs, master.server.address[1], cores=n, memory="2g")
    cleanup.append(w.close)
    conn, _ = master.register()
    for i in range(n):
        launch(conn, "app-1", str(i), driver.port)
    for _ in range(n):
        msg = expect(conn, dm.ExecutorStateChanged)
        assert isinstance(msg, dm.ExecutorStateChanged) and msg.state == dm.EXEC_RUNNING, msg
    # every executor is up and waiting on the driver at the same time
    waiting = driver.gather(30)
    assert sorted(reg.executor_id for _, reg, _ in waiting) == [str(i) for i in range(n)]
    for c, _, _ in waiting:
        c.send(sm.RegisteredExecutor("app-1"))
    pids = {reg.pid for _, reg, _ in waiting}
    # all forked by the worker's fork server, a child of the worker
    (server_pid,) = {int(_stat(p)[1]) for p in pids}
    assert int(_stat(server_pid)[1]) == w.proc.pid
    assert b"sparkctl.deploy.fork_server" in Path(f"/proc/{server_pid}/cmdline").read_bytes()

    # A worker killed outright: its fork server sees the socket close and exits, and the
    # executors, their parent gone, stop as they do when a worker that exec'd them dies.
    w.proc.send_signal(signal.SIGKILL)
    w.proc.wait(10)
    wait_for(lambda: not pid_alive(server_pid), 10, "the fork server to exit with its worker")
    wait_for(lambda: not any(pid_alive(p) for p in pids), 20, "the executors to stop with their worker")


@pytest.mark.timeout(60)
def test_the_fork_server_process_refuses_to_run_without_its_socket() -> None:
    import subprocess
    import sys

    from tests.clusters import ROOT

    r = subprocess.run([sys.executable, "-m", "sparkctl.deploy.fork_server"], capture_output=True, text=True,
                       timeout=30, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 2 and "usage" in r.stderr
    a, b = socket.socketpair()
    a.close()
    # its socket already closed: the worker is gone, so it exits at once, cleanly
    r = subprocess.run([sys.executable, "-m", "sparkctl.deploy.fork_server", str(b.fileno())], pass_fds=(b.fileno(),),
                       capture_output=True, text=True, timeout=30, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    b.close()
    assert r.returncode == 0, r.stderr
