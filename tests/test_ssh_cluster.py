"""``sparkctl cluster|workers start|stop``: workers launched over SSH from conf/workers.

A real OpenSSH server (:mod:`tests.sshd_fixture`) listens on 127.0.0.1-3 at one port, so
``127.0.0.2:PORT`` and ``127.0.0.3:PORT`` are two "hosts" whose SSH target is also the
address their worker binds to; 127.0.0.4 has no sshd (connection refused). Each "host"
gets its own conf, pid, log and work dirs, as separate machines would. The tests cover a
two-worker cluster running a shuffle job, every way a host can fail (refused, wrong key,
unknown and changed host keys, no sparkctl there), the table the user sees, and that
stopping leaves no process behind.
"""
from __future__ import annotations

import getpass
import json
import os
import shlex
import socket
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
import click
import pytest
from click.testing import CliRunner

from sparkctl.deploy import daemon
from sparkctl.deploy import messages as dm
from sparkctl.deploy.cluster_commands import cluster, render_results, workers
from sparkctl.deploy.hosts import WorkerHost, parse_workers
from sparkctl.deploy.ssh import (
    HostDownError,
    HostResult,
    RemoteResult,
    SparkctlNotFoundError,
    SSHOptions,
    WorkerNotRegisteredError,
    _connect_error,
    interpret_start,
    interpret_stop,
    worker_start_command,
    worker_stop_command,
)
from sparkctl.errors import ConfigError, ConnectionClosed
from sparkctl.rpc import Connection, Server
from tests.sshd_fixture import (SSHServer, make_key, processes_mentioning, sparkctl_env,
                                sshd_missing_reason)

ROOT = Path(__file__).resolve().parent.parent
HOSTS = ("127.0.0.2", "127.0.0.3")
DOWN = "127.0.0.4"  # no sshd listens there


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    reason = sshd_missing_reason()
    if reason:
        pytest.skip(reason)
    server = SSHServer(tmp_path_factory.mktemp("sshd"), ("127.0.0.1", *HOSTS))
    try:
        server.start()
    except RuntimeError as e:
        if os.geteuid() != 0:
            pytest.skip(f"sshd cannot run as a non-root user here: {e}")
        raise
    yield server
    server.stop()  # the sessions are its children; the test's daemons are stopped by each test


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class Site:
    """This machine's dirs (master side), one set of dirs per worker "host", the SSH files."""

    def __init__(self, base: Path, sshd: SSHServer) -> None:
        self.base = base
        self.sshd = sshd
        self.conf = base / "conf"
        self.conf.mkdir()
        self.known_hosts = base / "known_hosts"
        self.known_hosts.write_text(sshd.known_hosts())
        self.env = sparkctl_env(base, self.conf)
        self.ssh_args = ["--identity", str(sshd.client_key), "--known-hosts", str(self.known_hosts)]

    def host_dir(self, address: str) -> Path:
        return self.base / "hosts" / address

    def line(self, address: str, **settings: object) -> str:
        """conf/workers line for a worker on *address*, with dirs of its own "machine"."""
        d = self.host_dir(address)
        defaults: dict[str, object] = {
            "cores": 1, "memory": "1g", "python": sys.executable, "pythonpath": ROOT,
            "port": free_port(address) if address != DOWN else 7078, "webui_port": 0,
            "conf_dir": d / "conf", "pid_dir": d / "pids", "log_dir": d / "logs", "work_dir": d / "work",
        }
        return self.sshd.workers_line(address, **{**defaults, **settings})

    def write_workers(self, *lines: str) -> None:
        (self.conf / "workers").write_text("# written by the test\n" + "".join(lines))

    def pid_dirs(self) -> list[Path]:
        return [self.base / "pids", *sorted((self.base / "hosts").glob("*/pids"))]


@pytest.fixture
def site(tmp_path: Path, sshd: SSHServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    s = Site(tmp_path, sshd)
    for k, v in s.env.items():
        monkeypatch.setenv(k, v)
    for k in ("SPARKCTL_SECRET", "SPARKCTL_MASTER", "SSH_AUTH_SOCK"):  # no agent: only the keys we pass
        monkeypatch.delenv(k, raising=False)
    yield s
    # Whatever a failed assertion left running: stop it, then insist nothing is left.
    for pids in s.pid_dirs():
        monkeypatch.setenv("SPARKCTL_PID_DIR", str(pids))
        for kind in ("worker", "master"):
            daemon.stop_daemons(kind, grace=5)
    deadline = time.monotonic() + 10
    while processes_mentioning(str(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = processes_mentioning(str(tmp_path))
    assert not left, f"processes left behind: {left}"


class FakeMaster:
    """Answers RequestMasterState, for tests whose hosts fail before registering."""

    def __init__(self, secret: bytes) -> None:
        self.server = Server("127.0.0.1", 0, secret, self._serve, name="fake-master").start()
        self.url = f"spark://127.0.0.1:{self.server.address[1]}"

    def _serve(self, conn: Connection) -> None:
        try:
            while True:
                if isinstance(conn.recv(), dm.RequestMasterState):
                    conn.send(dm.MasterState({"workers": []}))
        except ConnectionClosed:
            pass

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def fake_master(site: Site, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMaster]:
    secret = b"ssh-cluster-test-secret"
    monkeypatch.setenv("SPARKCTL_SECRET", secret.decode())
    m = FakeMaster(secret)
    yield m
    m.stop()


def group() -> click.Group:
    """``sparkctl`` with the cluster commands, as cli.py will register them."""
    from sparkctl.cli import OneLineErrors

    @click.group(cls=OneLineErrors)
    def g() -> None:
        pass

    g.add_command(cluster)
    g.add_command(workers)
    return g


# The real command, with the two groups added the way cli.py will add them.
_SHIM = ("from sparkctl.cli import main, entry\n"
         "from sparkctl.deploy.cluster_commands import cluster, workers\n"
         "for c in (cluster, workers):\n"
         "    main.commands.setdefault(c.name, c)\n"
         "entry()\n")


def sparkctl(site: Site, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SPARKCTL_SECRET", "SPARKCTL_MASTER", "SSH_AUTH_SOCK")}
    env.update(site.env)
    return subprocess.run([sys.executable, "-c", _SHIM, *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=str(site.base), stdin=subprocess.DEVNULL)


def row(output: str, label: str) -> str:
    """The table row of the host *label*."""
    table = output.split("\n\n")[0]  # the host's longer output may follow the table
    rows = [line for line in table.splitlines() if line.startswith(label + " ")]
    assert len(rows) == 1, f"no single row for {label} in:\n{output}"
    return rows[0]


# ---------------------------------------------------------------- a real cluster


HOSTS_APP = """
    import operator
    from sparkctl import SparkContext, TaskContext
    sc = SparkContext.getOrCreate()
    words = sc.parallelize([f"w{i % 50}" for i in range(5000)], 8)
    counts = dict(words.map(lambda w: (w, 1)).reduceByKey(operator.add, 4).collect())
    assert counts == {f"w{k}": 100 for k in range(50)}, counts
    hosts = sorted(set(words.mapPartitions(lambda it: [TaskContext.get().env.host]).collect()))
    print("HOSTS", ",".join(hosts))
    sc.stop()
"""


@pytest.mark.timeout(120)
def test_cluster_of_ssh_launched_workers_runs_a_shuffle_and_stops_clean(site: Site, sshd: SSHServer) -> None:
    site.write_workers(site.line(HOSTS[0]), site.line(HOSTS[1]), site.line(DOWN))
    url = f"spark://127.0.0.1:{free_port()}"
    down = f"{DOWN}:{sshd.port}"

    r = sparkctl(site, "cluster", "start", "--master", url, "--webui-port", "0", *site.ssh_args)
    # one host down: reported, the others started all the same, and the exit status says so
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"master started at {url}" in r.stdout
    ids = {}
    for h in HOSTS:
        line = row(r.stdout, f"{h}:{sshd.port}")
        assert " started " in line and f"registered with {url}" in line, r.stdout
        ids[h] = line.split()[2]
        assert ids[h].startswith("worker-") and h in ids[h]
    assert "FAILED" in row(r.stdout, down) and "connection refused" in row(r.stdout, down)
    assert r.stderr.strip() == f"sparkctl: could not start the worker on 1 of 3 hosts: {down} (connection refused)"

    # The secret went through the SSH channel into each host's conf dir, mode 600 ...
    secret = (site.conf / "secret").read_text().strip()
    for h in HOSTS:
        remote = site.host_dir(h) / "conf" / "secret"
        assert remote.read_text().strip() == secret
        assert stat.S_IMODE(remote.stat().st_mode) == 0o600
    # ... and is on no process's command line, nor in any worker's environment.
    for pid, cmd in processes_mentioning(str(site.base)):
        assert secret not in cmd
        try:
            assert secret.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            pass

    status = subprocess.run([sys.executable, "-m", "sparkctl.cli", "status", "--master", url, "--json"],
                            capture_output=True, text=True, timeout=30, env={**os.environ, **site.env})
    state = json.loads(status.stdout)
    assert sorted((w["host"], w["id"], w["state"]) for w in state["workers"]) == \
        sorted((h, ids[h], "ALIVE") for h in HOSTS)

    # Starting again, the master from the config file: running workers are recognised, not doubled.
    r = sparkctl(site, "workers", "start", *site.ssh_args)
    assert r.returncode == 2 and "no master" in r.stderr
    (site.conf / "sparkctl-defaults.conf").write_text(f"spark.master {url}\n")
    r = sparkctl(site, "workers", "start", *site.ssh_args)
    assert r.returncode == 1
    for h in HOSTS:
        line = row(r.stdout, f"{h}:{sshd.port}")
        assert "already running" in line and ids[h] in line

    app = site.base / "app.py"
    app.write_text(textwrap.dedent(HOSTS_APP))
    job = subprocess.run([sys.executable, "-m", "sparkctl.cli", "submit", "--master", url,
                          "--total-executor-cores", "2", "--executor-cores", "1", "--executor-memory", "512m",
                          str(app)], capture_output=True, text=True, timeout=90,
                         env={**os.environ, **site.env}, cwd=str(site.base))
    assert job.returncode == 0, job.stderr
    assert "HOSTS 127.0.0.2,127.0.0.3" in job.stdout  # executors ran on both SSH-launched workers

    r = sparkctl(site, "cluster", "stop", *site.ssh_args)
    assert r.returncode == 0, r.stdout + r.stderr  # the down host is reported, not fatal
    for h in HOSTS:
        assert "stopped worker on" in row(r.stdout, f"{h}:{sshd.port}")
    assert "unreachable" in row(r.stdout, down)
    assert "stopped master on 127.0.0.1" in r.stdout
    deadline = time.monotonic() + 10
    while processes_mentioning(str(site.base)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_mentioning(str(site.base)) == []  # master, workers, executors: all gone
    assert all(not list(d.glob("*.pid")) for d in site.pid_dirs() if d.exists())


# ---------------------------------------------------------------- hosts that fail


@pytest.mark.timeout(30)
def test_wrong_key_is_authentication_failed(site: Site, sshd: SSHServer, fake_master: FakeMaster) -> None:
    site.write_workers(site.line(HOSTS[0]))
    other = site.base / "other_key"
    make_key(other)
    result = CliRunner().invoke(group(), ["workers", "start", "--master", fake_master.url,
                                          "--identity", str(other), "--known-hosts", str(site.known_hosts)])
    assert result.exit_code == 1, result.output
    line = row(result.output, f"{HOSTS[0]}:{sshd.port}")
    assert "FAILED" in line and f"authentication failed for {getpass.getuser()}@{HOSTS[0]}:{sshd.port}" in line
    assert f"the key {other} not accepted" in line
    assert result.output.strip().splitlines()[-1] == \
        f"sparkctl: could not start the worker on 1 of 1 hosts: {HOSTS[0]}:{sshd.port} (authentication failed)"


@pytest.mark.timeout(30)
def test_host_without_sparkctl_is_reported(site: Site, sshd: SSHServer, fake_master: FakeMaster) -> None:
    # No such Python (the shell's exit 127), and a Python that cannot import sparkctl
    # (-I -S: no PYTHONPATH, no site-packages).
    bare = site.base / "bare-python"
    bare.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -I -S \"$@\"\n")
    bare.chmod(0o755)
    site.write_workers(site.line(HOSTS[0], python="/nonexistent/bin/python3"), site.line(HOSTS[1], python=bare))
    result = CliRunner().invoke(group(), ["workers", "start", "--master", fake_master.url, *site.ssh_args])
    assert result.exit_code == 1, result.output
    for h in HOSTS:
        line = row(result.output, f"{h}:{sshd.port}")
        assert "FAILED" in line and "sparkctl not found on the host" in line, result.output
    assert "No module named 'sparkctl'" in result.output  # the remote error, in words
    assert "2 of 2 hosts" in result.output


@pytest.mark.timeout(30)
def test_unknown_host_key_refused_then_accepted(site: Site, sshd: SSHServer) -> None:
    site.write_workers(site.line(HOSTS[0]), site.line(HOSTS[1]))
    site.known_hosts.unlink()
    args = ["workers", "stop", "--identity", str(sshd.client_key), "--known-hosts", str(site.known_hosts)]
    result = CliRunner().invoke(group(), args)
    assert result.exit_code == 1, result.output
    for h in HOSTS:
        line = row(result.output, f"{h}:{sshd.port}")
        assert "FAILED" in line and f"unknown host key: [{h}]:{sshd.port} is not in" in line
    assert not site.known_hosts.exists()  # nothing trusted behind the user's back

    result = CliRunner().invoke(group(), [*args, "--accept-new-host-keys"])
    assert result.exit_code == 0, result.output
    for h in HOSTS:
        line = row(result.output, f"{h}:{sshd.port}")
        assert "not running" in line and "added its host key ssh-ed25519 SHA256:" in line
    assert sorted(site.known_hosts.read_text().splitlines()) == sorted(sshd.known_hosts(HOSTS).splitlines())
    assert stat.S_IMODE(site.known_hosts.stat().st_mode) == 0o600
    # now known: no flag needed, nothing added twice
    result = CliRunner().invoke(group(), args)
    assert result.exit_code == 0 and "added" not in result.output, result.output
    assert len(site.known_hosts.read_text().splitlines()) == 2


@pytest.mark.timeout(30)
def test_changed_host_key_is_always_refused(site: Site, sshd: SSHServer) -> None:
    impostor_ed = make_key(site.base / "impostor_ed25519")
    impostor_ecdsa = make_key(site.base / "impostor_ecdsa", "ecdsa")
    site.write_workers(site.line(HOSTS[0]), site.line(HOSTS[1]))
    args = ["workers", "stop", "--identity", str(sshd.client_key), "--known-hosts", str(site.known_hosts)]
    # HOSTS[0] known with another key of the same type, then of another type only
    for impostor in (impostor_ed, impostor_ecdsa):
        recorded = sshd.known_hosts([HOSTS[0]], impostor) + sshd.known_hosts([HOSTS[1]])
        site.known_hosts.write_text(recorded)
        for extra in ([], ["--accept-new-host-keys"]):
            result = CliRunner().invoke(group(), args + extra)
            assert result.exit_code == 1, result.output
            line = row(result.output, f"{HOSTS[0]}:{sshd.port}")
            assert "FAILED" in line and "host key mismatch" in line and "refusing to connect" in line
            assert "not running" in row(result.output, f"{HOSTS[1]}:{sshd.port}")  # the other host is fine
            assert site.known_hosts.read_text() == recorded


# ---------------------------------------------------------------- the pieces, without SSH


@pytest.mark.timeout(10)
def test_workers_file_errors_name_file_and_line() -> None:
    text = "# comment\n\nalice@w1.example.org:2222 cores=4 memory=8g python=/opt/venv/bin/python work_dir=/data\n"
    hosts = parse_workers(text, "conf/workers")
    assert hosts == [WorkerHost("w1.example.org", "alice", 2222, cores=4, memory="8g",
                                python="/opt/venv/bin/python", work_dir="/data")]
    assert hosts[0].label == "alice@w1.example.org:2222" and hosts[0].where == "conf/workers:3"
    assert parse_workers('w2 work_dir="/data/my dir" port=0  # two words\n')[0].work_dir == "/data/my dir"
    for line, fragment in [
        ("w1 colors=4", "unknown setting 'colors'"),
        ("w1 cores=zero", "bad value 'zero' for cores"),
        ("w1 memory=8q", "bad value '8q' for memory"),
        ("w1:99999", "bad SSH port '99999'"),
        ("w1 port=70000", "bad value '70000' for port"),
        ("alice@", "empty host"),
        ("w1 cores", "expected key=value"),
        ('w1 work_dir="/x', "No closing quotation"),
    ]:
        with pytest.raises(ConfigError) as e:
            parse_workers(f"# header\n{line}\n", "/etc/sparkctl/workers")
        assert str(e.value).startswith("/etc/sparkctl/workers:2: ") and fragment in str(e.value), str(e.value)
    with pytest.raises(ConfigError, match=r"w:2: a worker on h port 7078 is already listed at w:1"):
        parse_workers("h\nh port=7078\n", "w")


@pytest.mark.timeout(10)
def test_remote_commands_carry_no_secret() -> None:
    h = WorkerHost("127.0.0.2", python="/opt/py dir/python", pythonpath="/src", port=7100, webui_port=0, cores=2,
                   memory="1g", work_dir="/w", conf_dir="/c")
    start = shlex.split(worker_start_command(h, "spark://m:7077"))
    assert start[:4] == ["env", "PYTHONPATH=/src", "SPARKCTL_CONF_DIR=/c", "SPARKCTL_WORK_DIR=/w"]
    assert start[4:] == ["/opt/py dir/python", "-m", "sparkctl.cli", "worker", "start", "--secret-stdin",
                         "--master", "spark://m:7077", "--host", "127.0.0.2", "--port", "7100", "--webui-port", "0",
                         "--cores", "2", "--memory", "1g", "--work-dir", "/w"]
    assert shlex.split(worker_stop_command(h))[-5:] == ["sparkctl.cli", "worker", "stop", "--port", "7100"]
    assert shlex.split(worker_stop_command(WorkerHost("h")))[-1] == "7078"


@pytest.mark.timeout(10)
def test_remote_output_becomes_a_reason() -> None:
    h = WorkerHost("h")
    ok = RemoteResult(0, "worker worker-1-h-7078 registered with spark://m:7077 (pid 42)\nlog: /l\n", "")
    assert interpret_start(h, ok) == ("started", "worker-1-h-7078", "registered with spark://m:7077 (pid 42)")
    never = RemoteResult(1, "", "sparkctl: worker did not become ready within 30s, so it was stopped\n"
                                "last lines of its log (/l/w.log):\nWARN Cannot register with master: refused\n")
    with pytest.raises(WorkerNotRegisteredError) as e:
        interpret_start(h, never)
    assert "worker started but never registered with the master" in e.value.message
    assert "Cannot register with master" in e.value.details
    with pytest.raises(SparkctlNotFoundError):
        interpret_start(h, RemoteResult(127, "", "env: 'python3': No such file or directory\n"))
    with pytest.raises(SparkctlNotFoundError):
        interpret_start(h, RemoteResult(1, "", "/usr/bin/python3: Error while finding module specification for "
                                               "'sparkctl.cli' (ModuleNotFoundError: No module named 'sparkctl')\n"))
    assert interpret_start(h, RemoteResult(1, "", "sparkctl: worker is already running on h:7078 as process 9; "
                                                  "stop it first\n"))[0] == "already running"
    assert interpret_stop(h, RemoteResult(0, "no worker running on port 7078\n", ""))[0] == "not running"
    assert interpret_stop(h, RemoteResult(0, "stopped worker on h:7078 (pid 9)\n", ""))[0] == "stopped"
    dns = _connect_error(socket.gaierror(socket.EAI_NONAME, "Name or service not known"), h, "u", SSHOptions())
    assert isinstance(dns, HostDownError) and dns.message.startswith("DNS failure: cannot resolve h")
    text = render_results([HostResult(h, True, "started", "worker-1", "registered"),
                           HostResult(WorkerHost("g", ssh_port=2200), False, "FAILED", message="boom",
                                      details="line 1\nline 2")])
    assert text.splitlines()[0].split() == ["host", "result", "worker", "id", "message"]
    assert text.endswith("\n\ng:2200:\n  line 1\n  line 2")


@pytest.mark.timeout(30)
def test_cli_refuses_bad_input_before_any_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARKCTL_CONF_DIR", str(tmp_path))
    monkeypatch.setenv("SPARKCTL_PID_DIR", str(tmp_path / "pids"))
    monkeypatch.delenv("SPARKCTL_MASTER", raising=False)
    result = CliRunner().invoke(group(), ["cluster", "start", "--master", "local[2]"])
    assert result.exit_code == 2 and "not a standalone master URL" in result.output
    result = CliRunner().invoke(group(), ["cluster", "start", "--master", "spark://127.0.0.1:7077"])
    assert result.exit_code == 1 and f"{tmp_path}/workers: no such file" in result.output
    (tmp_path / "workers").write_text("w1\nw2 cpus=3\n")
    result = CliRunner().invoke(group(), ["workers", "stop"])
    assert result.exit_code == 1 and f"{tmp_path}/workers:2: unknown setting 'cpus'" in result.output
    assert not (tmp_path / "pids").exists()  # no master was started
