"""Apache Spark itself as the reference for sparkctl's UI, REST API and event logs.

The pyspark wheel in the test environment is a whole Spark distribution (its ``jars/``
hold the History Server and the standalone cluster), so with Java installed the tests can
ask real Spark what it answers and compare sparkctl's answers with it:

    PySpark driver program ──event log──▶ LOG DIR ◀──event log── sparkctl driver program
          │ live UI /api/v1                  │                        │ live UI /api/v1
          ▼                                  ▼                        ▼
      fetch_json()               SparkHistoryServer (JVM)         fetch_json()
                                       │ /api/v1
                                       ▼
                                   fetch_json()

Everything binds to 127.0.0.1: Spark's servers bind where ``SPARK_LOCAL_IP`` says (they
take the wildcard address without it), the driver where ``spark.driver.bindAddress`` says;
:func:`listening_sockets` lets a test check that no JVM listens anywhere else. HTTP goes
through an opener with no proxy, so a proxy named in the environment never sees a request,
and :func:`fetch_json` refuses any host outside 127.0.0.0/8.

Driver programs follow a small flag-file protocol (:class:`DriverProgram`): after their
jobs they write ``ready.json`` (their UI URL and application id) and wait until the test
creates ``release``, so the test can query the live UI of an application that is still
running, then let it stop cleanly (which completes its event log).
"""
from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping

from tests.clusters import proc_stats

ROOT = Path(__file__).resolve().parent.parent
HISTORY_SERVER_CLASS = "org.apache.spark.deploy.history.HistoryServer"
LOOPBACK = "127.0.0.1"
# what Spark logs once its UI is bound ("... and started at http://127.0.0.1:PORT")
_STARTED_AT = re.compile(r"started at (https?)://([\w.\-\[\]:]+?):(\d+)")


# ----------------------------------------------------------------------------- where Spark is
def spark_home() -> Path | None:
    """The pyspark package directory when it carries Spark's jars (the pip wheel does)."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        home = Path(location)
        if (home / "jars").is_dir() and any((home / "jars").glob("spark-core_*.jar")):
            return home
    return None


def java() -> str | None:
    """The ``java`` launcher (Debian's openjdk-17-jre-headless puts it on PATH)."""
    return shutil.which("java")


def reference_missing() -> str | None:
    """Why Spark cannot run here (for ``pytest.skip``), or None when it can."""
    if spark_home() is None:
        return "Spark's jars are not installed: pyspark (the `test` extra, pyspark==4.3.0) carries them"
    if java() is None:
        return "Apache Spark needs Java (Debian's openjdk-17-jre-headless; .ci/run installs it)"
    return None


def private_spark_home(base: Path) -> Path:
    """A SPARK_HOME of our own under *base*: links to everything in the wheel's, but its own
    ``work/``. A local-cluster's workers put their executors' directories in
    SPARK_HOME/work, which would otherwise grow inside the installed package."""
    home = spark_home()
    assert home is not None, reference_missing()
    private = base / "spark-home"
    if not private.is_dir():
        private.mkdir(parents=True)
        for entry in home.iterdir():
            if entry.name != "work":
                (private / entry.name).symlink_to(entry)
        (private / "work").mkdir()
    return private


def spark_env(extra: Mapping[str, str] | None = None, home: Path | None = None) -> dict[str, str]:
    """The environment for a Spark process: none of the caller's Spark or sparkctl settings
    (a SPARK_CONF_DIR or SPARKCTL_MASTER of the developer's must not leak in), Spark's
    servers on the loopback address, and SPARK_HOME at *home* (default: the wheel)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK", "PYSPARK", "SPARKCTL_"))}
    home = home or spark_home()
    assert home is not None, reference_missing()
    env.update(SPARK_HOME=str(home), SPARK_LOCAL_IP=LOOPBACK, PYSPARK_PYTHON=sys.executable,
               PYSPARK_DRIVER_PYTHON=sys.executable)
    env.update(extra or {})
    return env


# ----------------------------------------------------------------------------- HTTP, loopback only
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _check_loopback(url: str) -> None:
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ValueError(f"refusing to fetch {url}: the tests talk to loopback addresses only")


def fetch(url: str, timeout: float = 10) -> tuple[int, bytes]:
    """(HTTP status, body) of a GET on a loopback URL, never through a proxy."""
    _check_loopback(url)
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def fetch_json(url: str, timeout: float = 10) -> Any:
    """The JSON a loopback URL answers with; an AssertionError naming the URL otherwise."""
    status, body = fetch(url, timeout)
    assert status == 200, f"GET {url} answered {status}: {body[:500]!r}"
    try:
        return json.loads(body)
    except ValueError as e:
        raise AssertionError(f"GET {url} answered with no JSON: {body[:500]!r}") from e


def wait_until(cond: Callable[[], Any], timeout: float, what: str,
               alive: Callable[[], str | None] = lambda: None) -> Any:
    """Poll *cond* until it returns something truthy. ``alive`` says why to give up early
    (a process that died), so a crashed server fails fast with its log, not a timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = cond()
        except (OSError, AssertionError):  # not answering yet
            value = None
        if value:
            return value
        dead = alive()
        if dead:
            raise AssertionError(f"gave up waiting for {what}: {dead}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


# ----------------------------------------------------------------------------- sockets
def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    except OSError:
        pass
    return inodes


def _decode_address(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    # /proc/net/tcp6 prints the address as four host-order 32-bit words
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return str(ipaddress.IPv6Address(words))


def listening_sockets(pids: list[int]) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every TCP socket the processes listen on."""
    by_inode = {inode: pid for pid in pids for inode in _socket_inodes(pid)}
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A":  # TCP_LISTEN
                continue
            pid = by_inode.get(fields[9])
            if pid is not None:
                addr, port = fields[1].split(":")
                found.append((pid, _decode_address(addr), int(port, 16)))
    return found


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def not_loopback(sockets: list[tuple[int, str, int]]) -> list[tuple[int, str, int]]:
    """The sockets among *sockets* that listen beyond the loopback addresses (the
    wildcard address included)."""
    return [s for s in sockets if not _is_loopback(s[1])]


def process_tree(root: int) -> list[int]:
    """*root* and every process below it."""
    children: dict[int, list[int]] = {}
    for pid, _, ppid, _ in proc_stats():
        children.setdefault(ppid, []).append(pid)
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, []))
    return out


def _stop_group(proc: subprocess.Popen[Any], grace: float) -> None:
    """SIGTERM the process group we started (its leader is *proc*), SIGKILL what is left
    after *grace* seconds, and reap the leader: no JVM outlives the test."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc.poll() is not None and not _group_alive(proc.pid):
                return
            time.sleep(0.05)
    proc.wait(10)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # only zombies of the group may remain once the leader is reaped
    if any(group == pgid and state != b"Z" for _, state, _, group in proc_stats()):
        return True
    return False


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


# ----------------------------------------------------------------------------- Spark's History Server
class SparkHistoryServer:
    """Apache Spark's own History Server (one JVM from the wheel's jars) reading the event
    logs in ``log_dir``; ``url`` is its base URL once :meth:`start` returns.

    It runs under ``work`` (its cwd, java.io.tmpdir and log file), in a process group of
    its own, with its UI on a port the kernel picks (``spark.history.ui.port=0``; the bound
    port is read from its log) and the log directory rescanned every second.
    """

    def __init__(self, log_dir: Path, work: Path, conf: Mapping[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.work = work
        self.conf = {
            "spark.history.fs.logDirectory": log_dir.resolve().as_uri(),
            "spark.history.ui.port": "0",
            "spark.history.fs.update.interval": "1s",
            "spark.history.fs.cleaner.enabled": "false",
            **(conf or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.log = work / "history-server.log"

    def command(self) -> list[str]:
        home = spark_home()
        launcher = java()
        assert home is not None and launcher is not None, reference_missing()
        props = [f"-D{k}={v}" for k, v in self.conf.items()]
        return [launcher, "-Xmx512m", f"-Djava.io.tmpdir={self.work / 'tmp'}", *props,
                "-cp", f"{home / 'jars'}/*", HISTORY_SERVER_CLASS]

    def start(self, timeout: float = 90) -> "SparkHistoryServer":
        (self.work / "tmp").mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(self.command(), cwd=self.work, env=spark_env(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            scheme, _host, port = wait_until(self._bound, timeout, "Spark's History Server to bind its UI",
                                             self._dead)
            self.url = f"{scheme}://{LOOPBACK}:{port}"
            wait_until(lambda: isinstance(fetch_json(self.url + "/api/v1/applications"), list), timeout,
                       "Spark's History Server to answer /api/v1/applications", self._dead)
        except BaseException:
            self.stop()
            raise
        return self

    def _bound(self) -> tuple[str, ...] | None:
        found = _STARTED_AT.search(_tail(self.log, 1 << 20))
        return found.groups() if found else None

    def _dead(self) -> str | None:
        if self.proc is not None and self.proc.poll() is not None:
            return f"the History Server exited with {self.proc.returncode}:\n{_tail(self.log)}"
        return None

    def applications(self) -> list[dict[str, Any]]:
        return fetch_json(self.url + "/api/v1/applications")  # type: ignore[no-any-return]

    def wait_completed(self, app_id: str, timeout: float = 60) -> dict[str, Any]:
        """The application's entry in /api/v1/applications once it is listed as completed."""
        def listed() -> dict[str, Any] | None:
            for app in self.applications():
                if app.get("id") == app_id and app.get("attempts") and all(a.get("completed")
                                                                           for a in app["attempts"]):
                    return app
            return None
        return wait_until(listed, timeout, f"Spark's History Server to list {app_id} as completed",  # type: ignore[no-any-return]
                          self._dead)

    def listening(self) -> list[tuple[int, str, int]]:
        assert self.proc is not None
        return listening_sockets(process_tree(self.proc.pid))

    def stop(self) -> None:
        if self.proc is not None:
            _stop_group(self.proc, grace=15)

    def __enter__(self) -> "SparkHistoryServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# ----------------------------------------------------------------------------- driver programs
class DriverProgram:
    """A driver program started by :func:`run_pyspark` or :func:`run_sparkctl`, following
    the flag-file protocol: it is given ``READY`` and ``RELEASE`` paths as its first two
    arguments, writes READY (JSON, written whole by a rename) when it has run its jobs,
    then waits until RELEASE exists and stops its SparkContext."""

    def __init__(self, proc: subprocess.Popen[bytes], work: Path, label: str) -> None:
        self.proc = proc
        self.work = work
        self.label = label
        self.ready_file = work / "ready.json"
        self.release_file = work / "release"
        self.stdout = work / "stdout.txt"
        self.stderr = work / "stderr.txt"

    def _dead(self) -> str | None:
        if self.proc.poll() is not None:
            return f"{self.label} exited with {self.proc.returncode}:\n{_tail(self.stderr)}"
        return None

    def wait_ready(self, timeout: float = 180) -> dict[str, Any]:
        """What the program wrote to READY, once it has."""
        def ready() -> Any:
            return self.ready_file.is_file() and json.loads(self.ready_file.read_text())
        return wait_until(ready, timeout, f"{self.label} to run its jobs", self._dead)  # type: ignore[no-any-return]

    def release(self) -> None:
        self.release_file.touch()

    def finish(self, timeout: float = 120) -> int:
        """Let the program stop its context and end; its exit status (the whole process
        group is gone when this returns, whatever happened)."""
        self.release()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.label} did not end within {timeout}s after release:\n{_tail(self.stderr)}")
        finally:
            self.kill()

    def listening(self) -> list[tuple[int, str, int]]:
        return listening_sockets(process_tree(self.proc.pid))

    def kill(self) -> None:
        _stop_group(self.proc, grace=5)

    def output(self) -> str:
        return _tail(self.stdout) + _tail(self.stderr)


def flag_args(work: Path) -> list[str]:
    return [str(work / "ready.json"), str(work / "release")]


def _conf_args(conf: Mapping[str, str]) -> list[str]:
    return [arg for key, value in conf.items() for arg in ("--conf", f"{key}={value}")]


def pyspark_conf(event_log_dir: Path | None) -> dict[str, str]:
    """Settings that keep a PySpark driver on loopback, its UI on a kernel-picked port and,
    with *event_log_dir*, its event log there: one uncompressed file named after the
    application (Spark 4 otherwise writes a directory of rolling files, eventlog_v2_APPID/,
    and its History Server reads both layouts)."""
    conf = {
        "spark.driver.host": LOOPBACK,
        "spark.driver.bindAddress": LOOPBACK,
        "spark.ui.port": "0",
        "spark.ui.showConsoleProgress": "false",
    }
    if event_log_dir is not None:
        conf.update({"spark.eventLog.enabled": "true", "spark.eventLog.dir": event_log_dir.resolve().as_uri(),
                     "spark.eventLog.compress": "false", "spark.eventLog.rolling.enabled": "false"})
    return conf


def run_pyspark(script: Path, work: Path, master: str, conf: Mapping[str, str] | None = None,
                args: list[str] | None = None) -> DriverProgram:
    """Start *script* under real PySpark (the driver JVM it launches, and for
    ``local-cluster`` the executor JVMs, in the program's own process group), with a
    SPARK_HOME and local dirs under *work*."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "local").mkdir(exist_ok=True)
    conf = {"spark.local.dir": str(work / "local"), **(conf or {})}
    submit_args = ["--master", master, *_conf_args(conf), "pyspark-shell"]
    env = spark_env({"PYSPARK_SUBMIT_ARGS": shlex.join(submit_args)}, home=private_spark_home(work))
    with open(work / "stdout.txt", "wb") as out, open(work / "stderr.txt", "wb") as err:
        proc = subprocess.Popen([sys.executable, str(script), *flag_args(work), *(args or [])], cwd=work, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
    return DriverProgram(proc, work, f"PySpark program {script.name}")


def run_sparkctl(script: Path, work: Path, master: str, conf: Mapping[str, str] | None = None,
                 args: list[str] | None = None) -> DriverProgram:
    """Start *script* with ``sparkctl submit`` (a private, empty conf dir: only *conf*)."""
    work.mkdir(parents=True, exist_ok=True)
    conf_dir = work / "conf"
    conf_dir.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK", "PYSPARK"))}
    env.update(PYTHONPATH=str(ROOT), SPARKCTL_CONF_DIR=str(conf_dir))
    cmd = [sys.executable, str(ROOT / "bin" / "sparkctl"), "submit", "--master", master, *_conf_args(conf or {}),
           str(script), *flag_args(work), *(args or [])]
    with open(work / "stdout.txt", "wb") as out, open(work / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True)
    return DriverProgram(proc, work, f"sparkctl program {script.name}")


# ----------------------------------------------------------------------------- event logs
def event_log_files(log_dir: Path) -> list[Path]:
    """The event logs in *log_dir*, Spark's single-file layout (APPID, APPID.inprogress,
    with a codec suffix when compressed) and its rolling layout (eventlog_v2_APPID/)."""
    return sorted(p for p in log_dir.iterdir() if not p.name.startswith("."))


def read_events(path: Path) -> list[dict[str, Any]]:
    """The JSON events of an uncompressed single-file event log."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ----------------------------------------------------------------------------- PySpark in this process
_WAREHOUSE_PREFIX = "pyspark-test-warehouse-"


def pyspark_session(app: str, master: str = "local[2]", conf: Mapping[str, str] | None = None) -> Any:
    """A PySpark SparkSession in this test process, everything on 127.0.0.1, UTC, no UI, its
    warehouse a private temporary directory (not ``spark-warehouse`` in the working directory);
    its Python workers run this interpreter (which has pyarrow). Stop it with stop_pyspark."""
    import pyspark.sql
    os.environ["SPARK_LOCAL_IP"] = LOOPBACK
    os.environ["PYSPARK_PYTHON"] = sys.executable
    builder = (pyspark.sql.SparkSession.builder.master(master).appName(app)
               .config("spark.driver.bindAddress", LOOPBACK).config("spark.driver.host", LOOPBACK)
               .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.warehouse.dir", tempfile.mkdtemp(prefix=_WAREHOUSE_PREFIX)))
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def stop_pyspark(session: Any) -> None:
    """Stop the session and its JVM: ``stop()`` alone leaves PySpark's gateway process running."""
    from pyspark import SparkContext
    warehouse = urllib.parse.urlparse(session.conf.get("spark.sql.warehouse.dir", "")).path
    session.stop()
    if os.path.basename(warehouse.rstrip("/")).startswith(_WAREHOUSE_PREFIX):
        shutil.rmtree(warehouse, ignore_errors=True)
    gateway = SparkContext._gateway
    if gateway is None:
        return
    process = getattr(gateway, "proc", None)
    gateway.shutdown()
    if process is not None:
        process.terminate()
        process.wait(30)
    SparkContext._gateway = None
    SparkContext._jvm = None


@contextmanager
def reference_pyspark(app: str, master: str = "local[2]", conf: Mapping[str, str] | None = None) -> Iterator[Any]:
    """A module fixture's PySpark session: the test is skipped, saying why, where PySpark
    or Java is missing; the session and its JVM are stopped at the end, whatever happens."""
    import pytest
    why = reference_missing()
    if why:
        pytest.skip(why)
    session = pyspark_session(app, master, conf)
    try:
        yield session
    finally:
        stop_pyspark(session)
