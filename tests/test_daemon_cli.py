"""``sparkctl master|worker start|stop`` and ``sparkctl status``: argument checks through
click's CliRunner, detached daemons through :mod:`sparkctl.deploy.daemon`, and the real
command as a subprocess (``python -m sparkctl.cli``, ``bin/sparkctl``).

Where a master is needed but not under test, a fake one (an rpc Server in this process)
answers ``RegisterWorker`` or ``RequestMasterState``; the last test runs the real master.
Every test gets its own PID/LOG/WORK/CONF dirs and checks that it left no process behind.
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest

from tests.clusters import assert_none_left
from click.testing import CliRunner

from sparkctl.deploy import commands, daemon
from sparkctl.deploy import messages as dm
from sparkctl.errors import ConnectionClosed
from sparkctl.rpc import Connection, Server

ROOT = Path(__file__).resolve().parent.parent
SECRET = "daemon-cli-test-secret"


# ---------------------------------------------------------------- helpers


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rindex(b")") + 2 : st.rindex(b")") + 3] != b"Z"


@dataclass
class Dirs:
    root: Path
    pids: Path
    logs: Path
    work: Path
    conf: Path


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dirs]:
    # pids/ and logs/ do not exist yet: start_daemon must create them (mode 0700).
    d = Dirs(tmp_path, tmp_path / "pids", tmp_path / "logs", tmp_path / "work", tmp_path / "conf")
    d.conf.mkdir()
    monkeypatch.setenv("SPARKCTL_PID_DIR", str(d.pids))
    monkeypatch.setenv("SPARKCTL_LOG_DIR", str(d.logs))
    monkeypatch.setenv("SPARKCTL_WORK_DIR", str(d.work))
    monkeypatch.setenv("SPARKCTL_CONF_DIR", str(d.conf))
    monkeypatch.setenv("SPARKCTL_SECRET", SECRET)
    monkeypatch.delenv("SPARKCTL_MASTER", raising=False)
    yield d
    assert_none_left(tmp_path)


def cli_has_deploy_commands() -> bool:
    from sparkctl.cli import main

    return {"master", "worker", "status"} <= set(main.commands)


def cli_group() -> click.Group:
    """``sparkctl``'s group with the deploy commands (added here if cli.py does not yet)."""
    from sparkctl.cli import OneLineErrors, main

    if cli_has_deploy_commands():
        return main

    @click.group(cls=OneLineErrors)
    def group() -> None:
        pass

    for command in (commands.master, commands.worker, commands.status):
        group.add_command(command)
    return group


# What `sparkctl` will be once cli.py registers the commands; until then the same thing
# assembled in a one-liner, so the subprocess tests exercise these commands either way.
_SHIM = ("from sparkctl.cli import main, entry\n"
         "from sparkctl.deploy.commands import master, worker, status\n"
         "for c in (master, worker, status):\n"
         "    main.commands.setdefault(c.name, c)\n"
         "entry()\n")


def sparkctl_cmd() -> list[str]:
    if cli_has_deploy_commands():
        return [sys.executable, "-m", "sparkctl.cli"]
    return [sys.executable, "-c", _SHIM]


def run(args: list[str], timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), **env)
    return subprocess.run(sparkctl_cmd() + args, capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=str(ROOT), stdin=subprocess.DEVNULL)


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{text}"
    return lines[0]


class FakeMaster:
    """Plays the master's part: registers every worker, answers RequestMasterState."""

    def __init__(self, state: dict[str, Any] | None = None, secret: str = SECRET, port: int = 0) -> None:
        self.state = state or {}
        self.registered: list[dm.RegisterWorker] = []
        self.server = Server("127.0.0.1", port, secret.encode(), self._serve, name="fake-master").start()
        self.port = self.server.address[1]
        self.url = f"spark://127.0.0.1:{self.port}"

    def _serve(self, conn: Connection) -> None:
        try:
            while True:
                msg = conn.recv()
                if isinstance(msg, dm.RegisterWorker):
                    self.registered.append(msg)
                    conn.send(dm.RegisteredWorker(self.url, "http://127.0.0.1:8080", 1.0))
                elif isinstance(msg, dm.RequestMasterState):
                    conn.send(dm.MasterState(self.state))
        except ConnectionClosed:
            pass

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def fake_master() -> Iterator[FakeMaster]:
    m = FakeMaster()
    yield m
    m.stop()


SAMPLE_STATE: dict[str, Any] = {
    "url": "spark://127.0.0.1:7077", "status": "ALIVE", "aliveworkers": 2,
    "cores": 4, "coresused": 3, "memory": 4096, "memoryused": 1536,
    "workers": [
        {"id": "worker-20240101000000-127.0.0.2-7078", "host": "127.0.0.2", "port": 7078, "state": "ALIVE",
         "cores": 2, "coresused": 2, "memory": 2048, "memoryused": 1024, "webuiaddress": "http://127.0.0.2:8081"},
        {"id": "worker-20240101000000-127.0.0.3-7078", "host": "127.0.0.3", "port": 7078, "state": "ALIVE",
         "cores": 2, "coresused": 1, "memory": 2048, "memoryused": 512, "webuiaddress": "http://127.0.0.3:8081"},
    ],
    "activeapps": [{"id": "app-20240101000001-0001", "name": "wordcount", "cores": 3, "memoryperexecutor": 512,
                    "state": "RUNNING", "starttime": int(time.time() * 1000) - 90_000, "duration": 90_000}],
    "completedapps": [{"id": "app-20240101000000-0000", "name": "pi", "cores": 4, "memoryperexecutor": 1024,
                       "state": "FINISHED", "duration": 4200}],
}


# ---------------------------------------------------------------- argument checks


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args, fragment", [
    (["worker", "start", "--master", "http://h:7077"], "expected spark://host:port"),
    (["worker", "start", "--master", "spark://h"], "expected spark://host:port"),
    (["worker", "start", "--master", "spark://h:99999"], "expected spark://host:port"),
    (["worker", "start"], "Missing option '--master'"),
    (["worker", "start", "--master", "spark://h:7077", "--cores", "0"], "--cores must be at least 1"),
    (["worker", "start", "--master", "spark://h:7077", "--memory", "12x"], "invalid --memory '12x'"),
    (["worker", "start", "--master", "spark://h:7077", "--port", "65536"], "--port"),
    (["worker", "start", "--master", "spark://h:7077", "--webui-port", "-1"], "--webui-port"),
    (["master", "start", "--port", "70000"], "--port"),
    (["master", "start", "--host", "192.0.2.55", "--port", "0", "--webui-port", "0"], "not an address of this"),
    (["master", "start", "--port", "7123", "--webui-port", "7123"], "must differ"),
    (["status", "--master", "local[2]"], "expected spark://host:port"),
    (["status"], "no master to ask"),
    (["worker", "stop", "--port", "x"], "--port"),
])
def test_validation_errors_are_one_line_exit_2(dirs: Dirs, args: list[str], fragment: str) -> None:
    result = CliRunner().invoke(cli_group(), args)
    assert result.exit_code == 2, result.output
    assert fragment in one_line(result.output)
    assert not dirs.pids.exists()  # nothing was started


@pytest.mark.timeout(60)
def test_port_in_use_is_a_usage_error(dirs: Dirs) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for args in (["master", "start", "--port", str(port), "--webui-port", "0"],
                     ["master", "start", "--port", "0", "--webui-port", str(port)],
                     ["worker", "start", "--master", "spark://127.0.0.1:7077", "--port", str(port)]):
            result = CliRunner().invoke(cli_group(), args)
            assert result.exit_code == 2, result.output
            assert f"127.0.0.1:{port} is already in use" in one_line(result.output)


@pytest.mark.timeout(60)
def test_validation_through_the_real_command(dirs: Dirs) -> None:
    r = run(["worker", "start", "--master", "nope"])
    assert r.returncode == 2, r
    assert r.stdout == ""
    assert one_line(r.stderr).startswith("sparkctl: --master: 'nope' is not a master URL")
    r = run(["master", "start", "--port", "123456"])
    assert r.returncode == 2 and "--port" in one_line(r.stderr)


@pytest.mark.timeout(60)
def test_bin_sparkctl_has_the_deploy_commands(dirs: Dirs) -> None:
    if not cli_has_deploy_commands():
        pytest.skip("sparkctl/cli.py does not register the master, worker and status commands yet")
    r = subprocess.run([str(ROOT / "bin" / "sparkctl"), "worker", "start", "--master", "spark://h:1", "--cores", "0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--cores must be at least 1" in one_line(r.stderr)


# ---------------------------------------------------------------- status


@pytest.mark.timeout(60)
def test_status_of_an_unreachable_master_is_one_line(dirs: Dirs) -> None:
    port = free_port()
    r = run(["status", "--master", f"spark://127.0.0.1:{port}"])
    assert r.returncode == 1, r
    line = one_line(r.stderr)
    assert f"cannot reach the master at spark://127.0.0.1:{port}" in line and "refused" in line
    # SPARKCTL_MASTER is used when --master is not given
    r = run(["status"], SPARKCTL_MASTER=f"spark://127.0.0.1:{port}")
    assert r.returncode == 1 and "cannot reach the master" in one_line(r.stderr)


@pytest.mark.timeout(60)
def test_status_with_a_wrong_secret_is_one_line(dirs: Dirs) -> None:
    other = FakeMaster(secret="some-other-secret")
    try:
        result = CliRunner().invoke(cli_group(), ["status", "--master", other.url])
    finally:
        other.stop()
    assert result.exit_code == 1
    assert "did not accept our secret" in one_line(result.output)


@pytest.mark.timeout(60)
def test_status_without_a_secret(dirs: Dirs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPARKCTL_SECRET")
    result = CliRunner().invoke(cli_group(), ["status", "--master", "spark://127.0.0.1:7077"])
    assert result.exit_code == 1
    assert "no cluster secret" in one_line(result.output)


@pytest.mark.timeout(60)
def test_status_tables_and_json(dirs: Dirs) -> None:
    m = FakeMaster(SAMPLE_STATE)
    try:
        # the master from the config file, as `submit` resolves it
        (dirs.conf / "sparkctl-defaults.conf").write_text(f"spark.master {m.url}\n")
        result = CliRunner().invoke(cli_group(), ["status"])
        assert result.exit_code == 0, result.output
        out = result.output
        assert "Master: spark://127.0.0.1:7077 (ALIVE)" in out
        assert "2 alive; cores: 3 used of 4; memory: 1.5 GiB used of 4.0 GiB" in out
        worker_line = next(line for line in out.splitlines() if "127.0.0.2-7078" in line)
        assert "127.0.0.2:7078" in worker_line and "2/2" in worker_line and "1.0 GiB/2.0 GiB" in worker_line
        app_line = next(line for line in out.splitlines() if "wordcount" in line)
        assert "RUNNING" in app_line and "512 MiB" in app_line and "1.5 min" in app_line
        done = next(line for line in out.splitlines() if line.startswith("app-20240101000000-0000"))
        assert "pi" in done and "FINISHED" in done and "4 s" in done
        assert out.index("Running applications") < out.index("wordcount") < out.index("Completed applications")

        r = run(["status", "--master", m.url, "--json"])
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == SAMPLE_STATE
    finally:
        m.stop()


# ---------------------------------------------------------------- daemons


@pytest.mark.timeout(90)
def test_worker_daemon_start_double_start_and_stop(dirs: Dirs, fake_master: FakeMaster) -> None:
    runner = CliRunner()
    group = cli_group()
    port = free_port("127.0.0.2")
    args = ["worker", "start", "--master", fake_master.url, "--host", "127.0.0.2", "--port", str(port),
            "--webui-port", "0", "--cores", "1", "--memory", "512m"]
    result = runner.invoke(group, args)
    assert result.exit_code == 0, result.output
    reg = fake_master.registered[-1]
    assert (reg.host, reg.port, reg.cores, reg.memory) == ("127.0.0.2", port, 1, 512)
    assert f"worker {reg.worker_id} registered with {fake_master.url} (pid " in result.output

    pid_file = dirs.pids / f"sparkctl-worker-127.0.0.2-{port}.pid"
    pid = int(pid_file.read_text())
    assert pid_alive(pid)
    assert stat.S_IMODE(pid_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(dirs.pids.stat().st_mode) == 0o700
    assert stat.S_IMODE(dirs.logs.stat().st_mode) == 0o700
    assert stat.S_IMODE(dirs.work.stat().st_mode) == 0o700  # made by the worker
    log_file = dirs.logs / f"sparkctl-worker-127.0.0.2-{port}.log"
    assert "Registered with master" in log_file.read_text()
    assert (dirs.logs / f"sparkctl-worker-127.0.0.2-{port}.out").exists()

    again = runner.invoke(group, args)
    assert again.exit_code == 1
    assert f"already running on 127.0.0.2:{port} as process {pid}" in one_line(again.output)
    with pytest.raises(daemon.DaemonError, match=f"as process {pid}"):
        daemon.start_daemon("worker", args[2:], "127.0.0.2", port)

    stopped = runner.invoke(group, ["worker", "stop", "--port", str(port + 1 if port < 65535 else port - 1)])
    assert stopped.exit_code == 0 and "no worker running on port" in stopped.output
    assert pid_alive(pid)
    stopped = runner.invoke(group, ["worker", "stop"])
    assert stopped.exit_code == 0, stopped.output
    assert one_line(stopped.output) == f"stopped worker on 127.0.0.2:{port} (pid {pid})"
    assert not pid_alive(pid)
    assert not pid_file.exists()
    assert "Worker " + reg.worker_id + " stopped" in log_file.read_text()
    assert one_line(runner.invoke(group, ["worker", "stop"]).output) == "no worker running"


@pytest.mark.timeout(60)
def test_start_failure_carries_the_reason_and_log_tail(dirs: Dirs) -> None:
    port = free_port("127.0.0.2")
    # The daemon exits at once: a bad argument (printed before logging is set up, so it
    # comes from the .out file).
    with pytest.raises(daemon.DaemonError) as exc:
        daemon.start_daemon("worker", ["--master", "spark://127.0.0.1:1", "--cores", "0", "--host", "127.0.0.2",
                                       "--port", str(port)], "127.0.0.2", port, timeout=20)
    assert "worker exited with code 2 before it was ready" in exc.value.message
    assert "--cores must be at least 1" in exc.value.log_tail
    assert not (dirs.pids / f"sparkctl-worker-127.0.0.2-{port}.pid").exists()

    # The daemon runs but never gets ready (no master): stopped after the timeout.
    master_port = free_port()
    with pytest.raises(daemon.DaemonError) as exc:
        daemon.start_daemon("worker", ["--master", f"spark://127.0.0.1:{master_port}", "--host", "127.0.0.2",
                                       "--port", str(port), "--webui-port", "0"], "127.0.0.2", port, timeout=2)
    assert "did not become ready within 2s, so it was stopped" in exc.value.message
    assert "Cannot register with master" in exc.value.log_tail
    assert "last lines of its log" in str(exc.value)
    assert len(exc.value.log_tail.splitlines()) <= 2 * daemon.TAIL_LINES
    assert not (dirs.pids / f"sparkctl-worker-127.0.0.2-{port}.pid").exists()


@pytest.mark.timeout(60)
def test_cli_start_failure_is_exit_1_with_log_lines(dirs: Dirs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands, "START_TIMEOUT", 2.0)
    port = free_port("127.0.0.2")
    result = CliRunner().invoke(cli_group(), ["worker", "start", "--master", f"spark://127.0.0.1:{free_port()}",
                                              "--host", "127.0.0.2", "--port", str(port), "--webui-port", "0"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert "did not become ready within 2s" in lines[0]
    assert lines[1].startswith("last lines of its log")
    assert any("Cannot register with master" in line for line in lines[2:])


@pytest.mark.timeout(60)
def test_no_secret_refuses_worker_start(dirs: Dirs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPARKCTL_SECRET")
    result = CliRunner().invoke(cli_group(), ["worker", "start", "--master", "spark://127.0.0.1:7077", "--port", "0",
                                              "--webui-port", "0"])
    assert result.exit_code == 1
    assert "no cluster secret" in one_line(result.output)


@pytest.mark.timeout(60)
def test_stale_and_foreign_pid_files_are_removed_not_signalled(dirs: Dirs) -> None:
    dirs.pids.mkdir(mode=0o700)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (dirs.pids / "sparkctl-worker-127.0.0.2-7078.pid").write_text(f"{gone.pid}\n")
    # A live process that is not a sparkctl worker (the pid was reused): never signalled.
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (dirs.pids / "sparkctl-worker-127.0.0.3-7078.pid").write_text(f"{bystander.pid}\n")
        (dirs.pids / "sparkctl-master-127.0.0.1-7077.pid").write_text("garbage\n")
        assert daemon.running_pid("worker", "127.0.0.3", 7078) is None
        results = daemon.stop_daemons("worker")
        assert [(r.host, r.outcome) for r in results] == [("127.0.0.2", "stale"), ("127.0.0.3", "stale")]
        assert bystander.poll() is None
        assert sorted(os.listdir(dirs.pids)) == ["sparkctl-master-127.0.0.1-7077.pid"]
        out = CliRunner().invoke(cli_group(), ["master", "stop"]).output
        assert "removed its stale pid file" in one_line(out)
        assert os.listdir(dirs.pids) == []
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.timeout(60)
def test_daemon_logging_rotates_at_10_mb_keeping_5(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "d.log"
    code = ("import logging, logging.handlers, sys\n"
            "from sparkctl.deploy.daemon import setup_daemon_logging\n"
            "setup_daemon_logging(sys.argv[1])\n"
            "h = logging.getLogger().handlers[0]\n"
            "logging.getLogger('sparkctl.worker').info('hello')\n"
            "assert isinstance(h, logging.handlers.RotatingFileHandler)\n"
            "print(type(h).__name__, h.maxBytes, h.backupCount)\n")
    r = subprocess.run([sys.executable, "-c", code, str(log_file)], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["PrivateRotatingFileHandler", str(10 * 1024 * 1024), "5"]
    assert "INFO sparkctl.worker: hello" in log_file.read_text()
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(log_file.parent.stat().st_mode) == 0o700


@pytest.mark.timeout(60)
def test_worker_start_foreground_logs_to_stderr(dirs: Dirs, fake_master: FakeMaster) -> None:
    port = free_port("127.0.0.2")
    proc = subprocess.Popen(sparkctl_cmd() + ["worker", "start", "--foreground", "--master", fake_master.url,
                                              "--host", "127.0.0.2", "--port", str(port), "--webui-port", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=str(ROOT))
    try:
        assert proc.stderr is not None
        seen = b""
        deadline = time.monotonic() + 30
        while b"Registered with master" not in seen:
            left = deadline - time.monotonic()
            assert left > 0, f"no registration in the foreground worker's stderr:\n{seen.decode()}"
            if select.select([proc.stderr], [], [], left)[0]:
                chunk = os.read(proc.stderr.fileno(), 4096)
                assert chunk, f"the foreground worker exited:\n{seen.decode()}"
                seen += chunk
        assert not (dirs.pids / f"sparkctl-worker-127.0.0.2-{port}.pid").exists()  # not a detached daemon
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- the real master


@pytest.mark.timeout(180)
def test_real_cluster_start_status_stop(dirs: Dirs, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        import sparkctl.deploy.master  # noqa: F401
    except ImportError as e:
        pytest.skip(f"the master daemon is not available yet: {e}")
    monkeypatch.delenv("SPARKCTL_SECRET")  # the master creates the secret file, the rest use it
    mport, wport = free_port(), free_port()
    url = f"spark://127.0.0.1:{mport}"
    try:
        r = run(["master", "start", "--port", str(mport), "--webui-port", str(wport)])
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"master started at {url} (pid " in r.stdout
        assert f"web UI at http://127.0.0.1:{wport}" in r.stdout
        secret_file = dirs.conf / "secret"
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        master_pid = int((dirs.pids / f"sparkctl-master-127.0.0.1-{mport}.pid").read_text())

        r = run(["master", "start", "--port", str(mport), "--webui-port", str(wport)])
        assert r.returncode == 1
        assert f"as process {master_pid}" in one_line(r.stderr)

        ports = {}
        for host in ("127.0.0.2", "127.0.0.3"):
            ports[host] = free_port(host)
            r = run(["worker", "start", "--master", url, "--host", host, "--port", str(ports[host]),
                     "--webui-port", "0", "--cores", "1", "--memory", "512m"])
            assert r.returncode == 0, r.stdout + r.stderr
            assert f"registered with {url}" in r.stdout

        r = run(["status", "--master", url, "--json"])
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["aliveworkers"] == 2 and doc["cores"] == 2 and doc["memory"] == 1024
        assert sorted(w["host"] for w in doc["workers"]) == ["127.0.0.2", "127.0.0.3"]
        r = run(["status"], SPARKCTL_MASTER=url)
        assert r.returncode == 0, r.stderr
        assert f"Master: {url} (ALIVE)" in r.stdout
        assert all(f"{h}:{p}" in r.stdout for h, p in ports.items())

        r = run(["worker", "stop"])
        assert r.returncode == 0, r.stderr
        lines = r.stdout.strip().splitlines()
        assert len(lines) == 2, r.stdout
        for h, p in ports.items():
            assert any(line.startswith(f"stopped worker on {h}:{p} (pid ") for line in lines), r.stdout
        r = run(["master", "stop"])
        assert r.returncode == 0 and one_line(r.stdout) == f"stopped master on 127.0.0.1:{mport} (pid {master_pid})"
        r = run(["status", "--master", url])
        assert r.returncode == 1 and "cannot reach the master" in one_line(r.stderr)
        assert sorted(os.listdir(dirs.pids)) == [daemon.LOCK_FILE]  # no pid file left
    finally:
        # leave nothing running even if an assertion failed half-way
        daemon.stop_daemons("worker", grace=5)
        daemon.stop_daemons("master", grace=5)
