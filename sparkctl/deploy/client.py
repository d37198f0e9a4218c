"""The driver's side of the standalone cluster: register the application with the master,
get executors, unregister on stop. Also ``local-cluster[W,C,M]``: a private master and W
workers started as real processes on loopback for one application.

```
 driver ── RegisterApplication ──▶ master ── LaunchExecutor ──▶ worker ──spawns──▶ executor
   ▲                                  │                                              │
   └──── ExecutorAdded/Updated ───────┘        executor ── RegisterExecutor ──▶ driver (runtime)
```
From then on the driver and its executors talk directly; the master only hands out
resources and watches liveness.
"""
from __future__ import annotations

import getpass
import logging
import os
import select
import shutil
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from sparkctl.conf import SparkConf
from sparkctl.deploy import messages as dm
from sparkctl.errors import ConfigError, SparkctlError
from sparkctl.rpc import Connection, connect
from sparkctl.scheduler.backend import SchedulerBackend, executor_settings, package_root, stop_process

if TYPE_CHECKING:
    from sparkctl.scheduler.runtime import DriverRuntime

log = logging.getLogger("sparkctl.driver")


def parse_master_url(url: str) -> tuple[str, int]:
    if not url.startswith("spark://"):
        raise ConfigError(f"invalid master URL {url!r}: expected spark://host:port")
    hostport = url[len("spark://"):].split(",")[0]
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"invalid master URL {url!r}: expected spark://host:port")
    return host, int(port)


class StandaloneBackend(SchedulerBackend):
    def __init__(self, master_url: str, conf: SparkConf, app_name: str, extra_paths: list[str]) -> None:
        self.master_url = master_url
        self.master_host, self.master_port = parse_master_url(master_url)
        self.conf = conf
        self.app_name = app_name
        self.extra_paths = extra_paths
        self.app_id: str | None = None
        self.connected = False  # registered on self.conn, and it has not been lost since
        self.conn: Connection | None = None
        self.runtime: DriverRuntime | None = None
        self.secret = b""
        self.lock = threading.Condition()
        self.granted: dict[str, dm.ExecutorAdded] = {}
        self.failures: list[dm.ExecutorUpdated] = []
        self.removed_message: str | None = None
        self.stopping = False

    def default_parallelism(self) -> int:
        cores = self.runtime.total_cores() if self.runtime is not None else 0
        return max(cores, 2)

    def _description(self, driver_host: str, driver_port: int) -> dm.ApplicationDescription:
        cores_max = self.conf.get("spark.cores.max")
        exec_cores = self.conf.get("spark.executor.cores")
        memory_mib = self.conf.get_size("spark.executor.memory") // (1 << 20)
        return dm.ApplicationDescription(
            name=self.app_name, driver_host=driver_host, driver_port=driver_port,
            cores_max=self.conf.get_int("spark.cores.max") if cores_max else None,
            executor_cores=self.conf.get_int("spark.executor.cores") if exec_cores else None,
            executor_memory=max(1, memory_mib), user=getpass.getuser(),
            executor_settings=executor_settings(self.conf, self.extra_paths),
            app_ui_url=getattr(self, "ui_url", "") or "")

    def start(self, runtime: "DriverRuntime", secret: bytes) -> None:
        self.runtime = runtime
        self.secret = secret
        host, port = runtime.address
        try:
            self.conn = connect(self.master_host, self.master_port, secret, timeout=10)
        except Exception as e:
            raise SparkctlError(f"cannot reach the master at {self.master_url}: {e}") from None
        self.conn.send(dm.RegisterApplication(self._description(host, port)))
        reply = self.conn.recv(timeout=30)
        if isinstance(reply, dm.ApplicationRemoved):
            raise SparkctlError(f"master at {self.master_url} refused the application: {reply.message}")
        if not isinstance(reply, dm.RegisteredApplication):
            raise SparkctlError(f"master at {self.master_url} answered {type(reply).__name__} to the registration")
        self.app_id = reply.app_id
        self.connected = True
        log.info("Registered application %s with master %s as %s", self.app_name, self.master_url, self.app_id)
        threading.Thread(target=self._listen, daemon=True, name="master-listener").start()

    def _listen(self) -> None:
        while not self.stopping:
            conn = self.conn
            assert conn is not None
            try:
                while True:
                    self._on_message(conn.recv())
            except Exception as e:
                if self.stopping:
                    return
                log.warning("lost connection to master %s: %s (running jobs continue; reconnecting)",
                            self.master_url, e)
            self.connected = False
            self._reconnect()
            if self.removed_message is not None:
                return

    def _reconnect(self) -> None:
        """A restarted master (recovery mode) learns of us again: same application id, and
        the executors we hold keep running. Meanwhile the executors talk to us directly."""
        assert self.runtime is not None
        delay = 0.2
        host, port = self.runtime.address
        while not self.stopping:
            try:
                conn = connect(self.master_host, self.master_port, self.secret, timeout=5)
                conn.send(dm.RegisterApplication(self._description(host, port), app_id=self.app_id))
                reply = conn.recv(timeout=30)
            except Exception:
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if self.stopping:  # stop() unregistered meanwhile
                conn.close()
                return
            if isinstance(reply, dm.RegisteredApplication):
                self.conn = conn
                self.connected = True
                log.info("Re-registered application %s with master %s", self.app_id, self.master_url)
                return
            conn.close()
            if isinstance(reply, dm.ApplicationRemoved):
                self._on_message(reply)
                return
            time.sleep(delay)

    def _on_message(self, msg: Any) -> None:
        runtime = self.runtime
        assert runtime is not None
        if isinstance(msg, dm.ExecutorAdded):
            log.info("Master granted executor %s on worker %s (%s) with %d cores, %d MiB", msg.executor_id,
                     msg.worker_id, msg.host, msg.cores, msg.memory)
            with self.lock:
                self.granted[msg.executor_id] = msg
                self.lock.notify_all()
        elif isinstance(msg, dm.ExecutorUpdated):
            if msg.state in (dm.EXITED, dm.EXEC_FAILED, dm.EXEC_KILLED, dm.LOST):
                with self.lock:
                    self.granted.pop(msg.executor_id, None)
                    if msg.state in (dm.EXEC_FAILED, dm.EXITED) and msg.executor_id not in runtime.executors:
                        self.failures.append(msg)
                    self.lock.notify_all()
                # As Spark's exitCausedByApp: a process that exited or failed may have been
                # brought down by its tasks; one killed on purpose or with its worker was not.
                by_app = msg.state in (dm.EXEC_FAILED, dm.EXITED) and not msg.worker_lost
                runtime.executor_lost(msg.executor_id, f"executor {msg.state.lower()}: {msg.message}".strip(": "),
                                      caused_by_app=by_app)
        elif isinstance(msg, dm.WorkerRemoved):
            log.warning("Worker %s (%s) removed: %s", msg.worker_id, msg.host, msg.message)
            with self.lock:
                lost = [e for e, g in self.granted.items() if g.worker_id == msg.worker_id]
                for e in lost:
                    self.granted.pop(e, None)
            for e in lost:
                runtime.executor_lost(e, f"worker {msg.worker_id} lost: {msg.message}", caused_by_app=False)
        elif isinstance(msg, dm.ApplicationRemoved):
            log.error("Master removed application %s: %s", self.app_id, msg.message)
            with self.lock:
                self.removed_message = msg.message
                self.lock.notify_all()
            # no executor will come any more: fail the running jobs and later ones with the
            # master's reason rather than let them wait for executors forever
            runtime.abort(f"the master removed the application: {msg.message}")

    def registered_app_id(self) -> str | None:
        return self.app_id

    def wait_ready(self, runtime: "DriverRuntime", timeout: float) -> None:
        """Until the executors the master granted at registration have connected (at least one)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                granted = set(self.granted)
                removed = self.removed_message
            if removed:
                raise SparkctlError(f"the master removed the application: {removed}")
            registered = set(runtime.executors)
            if registered and granted <= registered:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                if registered:
                    return
                raise SparkctlError(f"no executors registered within {timeout:g}s: {self.diagnose()}")
            runtime.wait_for_executors(len(registered) + 1, min(left, 0.2))

    def diagnose(self) -> str:
        with self.lock:
            failures = list(self.failures)
        if failures:
            last = failures[-1]
            tail = f"; last lines of its log:\n{last.log_tail}" if last.log_tail else ""
            return (f"executors are failing to start ({len(failures)} failed; last: executor {last.executor_id} "
                    f"{last.state.lower()} {last.message}){tail}")
        try:
            state = request_master_state(self.master_host, self.master_port, self.secret)
        except Exception as e:
            return f"the master at {self.master_url} does not answer: {e}"
        alive = [w for w in state.get("workers", []) if w.get("state") == dm.ALIVE]
        if not alive:
            return f"no workers are alive in the cluster at {self.master_url}"
        desc = self._description("", 0)
        need_cores = desc.executor_cores or 1
        free = ", ".join(f"{w['host']}: {w['coresfree']} cores, {w['memoryfree']} MiB free" for w in alive)
        return (f"not enough free cores or memory: each executor needs {need_cores} cores and "
                f"{desc.executor_memory} MiB; workers have {free}")

    def stop(self) -> None:
        self.stopping = True
        if self.conn is not None and self.app_id is not None:
            try:
                if self.connected:
                    self.conn.send(dm.UnregisterApplication(self.app_id))
                else:
                    # Still reconnecting to a restarted master: say it on a connection of its own,
                    # or the master waits out its recovery timeout for us.
                    with connect(self.master_host, self.master_port, self.secret, timeout=5) as conn:
                        conn.send(dm.UnregisterApplication(self.app_id))
                log.info("Unregistered application %s from the master", self.app_id)
            except Exception as e:
                log.warning("could not unregister from the master: %s", e)
        if self.conn is not None:
            self.conn.close()


def request_master_state(host: str, port: int, secret: bytes, timeout: float = 10) -> dict[str, Any]:
    conn = connect(host, port, secret, timeout=timeout)
    try:
        conn.send(dm.RequestMasterState())
        reply = conn.recv(timeout=timeout)
    finally:
        conn.close()
    if not isinstance(reply, dm.MasterState):
        raise SparkctlError(f"the master answered with a {type(reply).__name__} instead of its state")
    return reply.json


def spawn_ready(cmd: list[str], env: dict[str, str], log_path: str, timeout: float = 30,
                pass_fds: tuple[int, ...] = ()) -> tuple[subprocess.Popen[bytes], str]:
    """Start a daemon module in the foreground of this process tree and wait for its READY line."""
    rfd, wfd = os.pipe()
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(cmd + ["--ready-fd", str(wfd)], env=env, stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT, pass_fds=(wfd, *pass_fds), start_new_session=True)
    os.close(wfd)
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([rfd], [], [], left)[0]:
                break
            chunk = os.read(rfd, 4096)
            if not chunk:
                break
            buf += chunk
    finally:
        os.close(rfd)
    line = buf.decode(errors="replace").strip()
    if not line.startswith("READY"):
        stop_process(proc, 1.0)
        try:
            with open(log_path, errors="replace") as f:
                tail = "".join(f.readlines()[-20:])
        except OSError:
            tail = ""
        raise SparkctlError(f"{' '.join(cmd[2:4])} did not start; last lines of its log:\n{tail}")
    return proc, line


class LocalClusterBackend(SchedulerBackend):
    """``local-cluster[W,C,M]``: a private master and W workers of C cores and M MiB, as
    real processes; worker i listens on 127.0.0.(2+i), so every shuffle crosses TCP.

    They live no longer than this driver, even one killed with SIGKILL: each runs under
    :mod:`sparkctl.deploy.lifecycle`, holding the read end of a pipe whose write end only
    this process has, and stops itself when it reads EOF. Their directory names this
    process as its owner, so whatever they could not remove the next driver does."""

    def __init__(self, workers: int, cores: int, memory_mib: int, conf: SparkConf, app_name: str,
                 extra_paths: list[str]) -> None:
        if workers < 1 or cores < 1 or memory_mib < 1:
            raise ConfigError(f"{conf.source('spark.master')}: spark.master local-cluster[W,C,M] needs W, C and M "
                              f"of at least 1, not {conf.get('spark.master')!r}")
        self.workers, self.cores, self.memory_mib = workers, cores, memory_mib
        self.conf = conf.copy()
        self.conf.setIfMissing("spark.executor.memory", f"{memory_mib}m")
        self.app_name = app_name
        self.extra_paths = extra_paths
        self.procs: list[subprocess.Popen[bytes]] = []
        self.inner: StandaloneBackend | None = None
        self._owner_fd: int | None = None  # the pipe's write end: closed when we are gone
        from sparkctl.util.cleanup import make_owned_dir, sweep_leftovers
        sweep_leftovers([conf.get("spark.local.dir"), None])  # what killed drivers left behind
        self.dir = make_owned_dir("sparkctl-local-cluster-")

    def default_parallelism(self) -> int:
        return self.inner.default_parallelism() if self.inner else self.workers * self.cores

    def start(self, runtime: "DriverRuntime", secret: bytes) -> None:
        env = dict(os.environ)
        env["SPARKCTL_SECRET"] = secret.decode()
        env["SPARKCTL_CONF_DIR"] = os.path.join(self.dir, "conf")
        env["SPARKCTL_WORK_DIR"] = os.path.join(self.dir, "work")
        env["PYTHONPATH"] = os.pathsep.join([package_root()] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        os.makedirs(env["SPARKCTL_CONF_DIR"], mode=0o700, exist_ok=True)
        # the private master and workers take the app's cluster settings (worker timeout...)
        with open(os.path.join(env["SPARKCTL_CONF_DIR"], "sparkctl-defaults.conf"), "w") as f:
            for key, value in self.conf.getAll():
                if key.startswith(("spark.deploy.", "spark.worker.")):
                    f.write(f"{key} {value}\n")
        watch_fd, self._owner_fd = os.pipe()
        try:
            def owned(role: str) -> list[str]:
                return [sys.executable, "-m", "sparkctl.deploy.lifecycle", role, "--owner-fd", str(watch_fd),
                        "--dir", self.dir]

            master, line = spawn_ready(owned("master") + ["--host", "127.0.0.1", "--port", "0", "--webui-port", "0"],
                                       env, os.path.join(self.dir, "master.log"), pass_fds=(watch_fd,))
            self.procs.append(master)
            url = line.split()[1]
            log.info("local-cluster: master at %s", url)
            for i in range(self.workers):
                host = f"127.0.0.{2 + i}"
                worker, wline = spawn_ready(owned("worker") + ["--master", url, "--cores", str(self.cores),
                                                               "--memory", f"{self.memory_mib}m", "--host", host,
                                                               "--port", "0", "--webui-port", "0", "--work-dir",
                                                               os.path.join(self.dir, "work")],
                                            env, os.path.join(self.dir, f"worker-{i}.log"), pass_fds=(watch_fd,))
                self.procs.append(worker)
                log.info("local-cluster: worker %s on %s", wline.split()[1], host)
        finally:
            os.close(watch_fd)  # only the daemons read it
        self.inner = StandaloneBackend(url, self.conf, self.app_name, self.extra_paths)
        self.inner.start(runtime, secret)

    def registered_app_id(self) -> str | None:
        return self.inner.app_id if self.inner is not None else None

    def wait_ready(self, runtime: "DriverRuntime", timeout: float) -> None:
        assert self.inner is not None
        self.inner.wait_ready(runtime, timeout)
        # all W workers' executors, so the app really runs on every "host"
        deadline = time.monotonic() + timeout
        while len(runtime.executors) < self.workers and time.monotonic() < deadline:
            runtime.wait_for_executors(self.workers, 0.2)

    def diagnose(self) -> str:
        return self.inner.diagnose() if self.inner else "the local cluster did not start"

    def stop(self) -> None:
        if self.inner is not None:
            self.inner.stop()
        for proc in reversed(self.procs):  # workers first (they stop their executors), then the master
            _terminate(proc)
        self.procs = []
        if self._owner_fd is not None:
            os.close(self._owner_fd)  # any daemon still there stops on its own
            self._owner_fd = None
        shutil.rmtree(self.dir, ignore_errors=True)


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a graceful stop: a worker stops its executors first), then SIGKILL."""
    import signal
    try:
        proc.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        stop_process(proc, 0.0)


def make_cluster_backend(master: str, conf: SparkConf, app_name: str, app_id: str,
                         extra_paths: list[str]) -> SchedulerBackend:
    import re
    mt = re.match(r"^local-cluster\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]$", master)
    if mt:
        return LocalClusterBackend(int(mt.group(1)), int(mt.group(2)), int(mt.group(3)), conf, app_name, extra_paths)
    return StandaloneBackend(master, conf, app_name, extra_paths)
