"""Helpers for tests of real processes: a standalone cluster started with the real CLI
under private conf/pid/log/work directories, polling with a deadline, sampling something
(a process's resident set, a directory) in a thread while a job runs, and finding the
processes a test left behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Self

ROOT = Path(__file__).resolve().parent.parent


class CliCluster:
    def __init__(self, base: Path, master_conf: str = "") -> None:
        self.base = base
        self.conf = base / "conf"
        self.conf.mkdir()
        (self.conf / "sparkctl-defaults.conf").write_text(master_conf)
        self.work = base / "work"
        self.env = dict(os.environ)
        self.env.update({
            "PYTHONPATH": str(ROOT),
            "SPARKCTL_CONF_DIR": str(self.conf),
            "SPARKCTL_PID_DIR": str(base / "pids"),
            "SPARKCTL_LOG_DIR": str(base / "logs"),
            "SPARKCTL_WORK_DIR": str(self.work),
        })
        self.env.pop("SPARKCTL_SECRET", None)
        self.env.pop("SPARKCTL_MASTER", None)
        self.url = ""

    def cli(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([sys.executable, str(ROOT / "bin" / "sparkctl"), *args], env=self.env, cwd=self.base,
                           capture_output=True, text=True, timeout=timeout)
        if check:
            assert r.returncode == 0, f"sparkctl {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
        return r

    def start(self, workers: list[tuple[str, int]]) -> None:
        out = self.cli("master", "start", "--host", "127.0.0.1", "--port", "0", "--webui-port", "0").stdout
        self.url = next(w for w in out.split() if w.startswith("spark://"))
        for host, cores in workers:
            self.cli("worker", "start", "--master", self.url, "--host", host, "--port", "0", "--webui-port", "0",
                     "--cores", str(cores), "--memory", "4g")

    def state(self) -> dict[str, Any]:
        return json.loads(self.cli("status", "--master", self.url, "--json").stdout)

    def stop(self) -> None:
        self.cli("worker", "stop", check=False)
        self.cli("master", "stop", check=False)


def proc_stats() -> Iterator[tuple[int, bytes, int, int]]:
    """(pid, state, ppid, process group) of every process /proc shows now."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        yield int(name), fields[0], int(fields[1]), int(fields[2])


def resident_bytes(pid: int) -> int:
    """The process's resident set size (RSS) in bytes; 0 once it has gone."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0  # exited between listing and reading


class Sampler:
    """Calls :meth:`sample` every ``interval`` seconds in a daemon thread while its ``with``
    block runs (the first call as the block starts); ``samples`` counts the calls."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=type(self).__name__)

    def sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(cond: Callable[[], Any], timeout: float = 30, what: str = "condition", interval: float = 0.05) -> Any:
    """Poll *cond* every *interval* seconds until it returns something truthy, or fail after
    *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def processes_left(tmp_path: Path) -> list[tuple[int, str]]:
    """Processes this test started and left: our descendants, or anything whose command
    line or working directory points into the test's tmp dir (executors are orphaned when
    their worker dies, but they keep their cwd under WORK_DIR)."""
    me = os.getpid()
    parents: dict[int, int] = {}
    info: dict[int, str] = {}
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                cwd = ""
        except OSError:
            continue
        rest = stat[stat.rindex(b")") + 2 :].split()
        if rest[0] == b"Z":
            try:
                os.waitpid(pid, os.WNOHANG)  # our own zombie: reap, not a leak
            except ChildProcessError:
                pass
            continue
        parents[pid] = int(rest[1])
        info[pid] = cmdline
        if str(tmp_path) in cmdline or cwd.startswith(str(tmp_path)):
            found.append(pid)
    for pid in parents:
        p, hops = parents.get(pid), 0
        while p and p != me and hops < 64:
            p, hops = parents.get(p), hops + 1
        if p == me and pid not in found:
            found.append(pid)
    return [(pid, info.get(pid, "")) for pid in found]


def assert_none_left(tmp_path: Path) -> None:
    """Fail if the test left processes behind (:func:`processes_left`), after killing
    them, so one bad test does not poison the next."""
    left = processes_left(tmp_path)
    for pid, _ in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    assert not left, f"processes left behind: {left}"


def processes_marked(marker: str) -> list[int]:
    """Live processes whose environment names *marker*: the test's temp dir is in the
    environment of every process a driver starts (daemons, executors, task slots),
    whoever their parent is now."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if marker.encode() not in f.read():
                    continue
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.rindex(b")") + 2:].split()[0] != b"Z":
            found.append(int(name))
    return found


def write_conf_dir(base: Path, secret: bytes, defaults: str = "") -> Path:
    """``base/conf`` (0700) with a sparkctl-defaults.conf and the cluster secret (0600)."""
    conf = base / "conf"
    conf.mkdir(mode=0o700, exist_ok=True)
    (conf / "sparkctl-defaults.conf").write_text(defaults)
    fd = os.open(conf / "secret", os.O_CREAT | os.O_WRONLY, 0o600)
    os.write(fd, secret + b"\n")
    os.close(fd)
    return conf


def child_env(conf: Path) -> dict[str, str]:
    """The environment of a process we start: our conf dir, nothing inherited that overrides it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKCTL_")}
    env.update(SPARKCTL_CONF_DIR=str(conf), PYTHONPATH=str(ROOT))
    return env
