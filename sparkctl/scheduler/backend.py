"""Scheduler backends: the one part of the driver that knows how executors come to exist.

``LocalBackend`` (``local[N]``) starts one executor process with N task slots itself,
and a replacement (with a new executor id) whenever that one is lost while the context
runs; the standalone backend asks a master for executors on workers. Either way the executors
connect back to the driver runtime and register, and from then on the runtime cannot tell
them apart.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Protocol

from sparkctl.errors import SparkctlError
from sparkctl.storage import compression

if TYPE_CHECKING:
    from sparkctl.conf import SparkConf
    from sparkctl.scheduler.runtime import DriverRuntime

log = logging.getLogger("sparkctl.driver")


class SchedulerBackend(ABC):
    #: the application's live UI, set before ``start`` (a standalone master links to it)
    ui_url: str = ""

    def registered_app_id(self) -> str | None:
        """The id a cluster manager gave the application (after ``start``), if any."""
        return None

    @abstractmethod
    def start(self, runtime: "DriverRuntime", secret: bytes) -> None:
        """Bring executors into existence; they connect to ``runtime.address``."""

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def default_parallelism(self) -> int: ...

    def wait_ready(self, runtime: "DriverRuntime", timeout: float) -> None:
        """Return once the first executors registered; raise with the reason in words if none did."""
        if not runtime.wait_for_executors(1, timeout):
            raise SparkctlError(f"no executors registered within {timeout:g}s: {self.diagnose()}")

    def diagnose(self) -> str:
        """Why executors did not arrive, in words, for the user."""
        return ""


class ExecutorProcess(Protocol):
    """What starting an executor gives: a ``subprocess.Popen``, or a worker's
    ``ForkedProcess`` (:mod:`sparkctl.deploy.fork_server`), which acts as one."""

    pid: int
    returncode: int | None

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...


def package_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def executor_environment(settings: dict[str, Any], extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """An executor's environment: ours, *extra_env*, sparkctl and the app's paths first on
    PYTHONPATH, and never the cluster secret (the executor gets it with its settings)."""
    env = dict(os.environ, **(extra_env or {}))
    root = package_root()
    env["PYTHONPATH"] = os.pathsep.join([root] + settings.get("extra_paths", []) +
                                        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("SPARKCTL_SECRET", None)
    return env


def spawn_executor(settings: dict[str, Any], secret: bytes, log_level: str, stdout: Any = None,
                   stderr: Any = None, cwd: str | None = None,
                   extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``python -m sparkctl.executor``; settings and secret go through its stdin,
    *extra_env* (e.g. a worker's log URLs for it) into its environment."""
    env = executor_environment(settings, extra_env)
    # -P: never import a `sparkctl` lying in the working directory instead of ours
    proc = subprocess.Popen([sys.executable, "-P", "-m", "sparkctl.executor"], stdin=subprocess.PIPE, stdout=stdout,
                            stderr=stderr, env=env, cwd=cwd, start_new_session=True)
    assert proc.stdin is not None
    line = json.dumps({**settings, "secret": secret.decode(), "log_level": log_level})
    proc.stdin.write(line.encode() + b"\n")
    proc.stdin.close()
    return proc


def stop_process(proc: ExecutorProcess, grace: float = 5.0) -> None:
    """Wait for a process asked to stop; SIGTERM, then SIGKILL, if it does not."""
    for sig, wait in ((None, grace), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        if sig is not None:
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                try:
                    proc.send_signal(sig)
                except ProcessLookupError:
                    pass
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def executor_settings(conf: "SparkConf", extra_paths: list[str]) -> dict[str, Any]:
    """The executor settings that come from the application's conf, for a local executor
    or for the master to hand its workers (they add identity and resources)."""
    return {
        "memory_fraction": conf.get_float("spark.memory.fraction", 0.6),
        "storage_fraction": conf.get_float("spark.memory.storageFraction", 0.5),
        "batch_size": conf.get_int("spark.shuffle.spill.batchSize", 1000),
        "heartbeat_interval": conf.get_duration("spark.executor.heartbeatInterval") or 10.0,
        "network_timeout": conf.get_duration("spark.network.timeout") or 120.0,
        "max_bytes_in_flight": conf.get_size("spark.reducer.maxSizeInFlight", "m"),
        "extra_paths": extra_paths,
        "task_cpus": conf.get_int("spark.task.cpus", 1),
        "pyspark_memory": conf.get_size("spark.executor.pyspark.memory", "m"),
        "io_compression": compression.executor_settings(conf),
        "in_process_slot": conf.get_bool("spark.executor.inProcessSlot", True),
    }


class LocalBackend(SchedulerBackend):
    def __init__(self, cores: int, conf: Any, app_id: str, extra_paths: list[str]) -> None:
        self.cores = cores
        self.conf = conf
        self.app_id = app_id
        self.extra_paths = extra_paths
        self.proc: subprocess.Popen[bytes] | None = None
        from sparkctl.util.cleanup import make_owned_dir, sweep_leftovers
        base = conf.get_dir("spark.local.dir") or tempfile.gettempdir()
        # A driver killed with SIGKILL could not remove its directories: the next one does.
        # Ours records this process as its owner, so that one can tell when it is abandoned.
        sweep_leftovers([base, None])
        self.local_dir = make_owned_dir(f"sparkctl-{app_id}-", base)
        self.log_path = os.path.join(self.local_dir, "executor.log")

    def default_parallelism(self) -> int:
        return self.cores

    # Set by start(); a replacement executor gets the next id.
    _runtime: "DriverRuntime | None" = None
    _secret = b""
    _next_executor = 0
    _stopping = False

    def start(self, runtime: "DriverRuntime", secret: bytes) -> None:
        self._runtime = runtime
        self._secret = secret
        self._lock = threading.Lock()
        self._retired: list[subprocess.Popen[bytes]] = []
        runtime.executor_loss_listeners.append(self._on_executor_lost)
        with self._lock:
            self._launch()

    def _launch(self) -> subprocess.Popen[bytes]:
        """Start executor ``_next_executor`` (under ``_lock``)."""
        assert self._runtime is not None
        executor_id = str(self._next_executor)
        self._next_executor += 1
        driver_host, driver_port = self._runtime.address
        settings = {
            "executor_id": executor_id,
            "driver_host": driver_host,
            "driver_port": driver_port,
            "cores": self.cores,
            "host": driver_host,
            "local_dir": os.path.join(self.local_dir, f"executor-{executor_id}"),
            "memory": self.conf.get_size("spark.executor.memory"),
            "app_id": self.app_id,
            **executor_settings(self.conf, self.extra_paths),
        }
        level = "INFO" if logging.getLogger("sparkctl").getEffectiveLevel() <= logging.INFO else "WARNING"
        # task output (print) shows on the driver's console, as in PySpark's local mode
        self.proc = spawn_executor(settings, self._secret, level, cwd=os.getcwd())
        log.info("Started local executor %s with %d task slots (pid %d)", executor_id, self.cores, self.proc.pid)
        return self.proc

    def _on_executor_lost(self, executor_id: str, reason: str, caused_by_app: bool) -> None:
        """Local mode has no master to ask: replace the lost executor at once, so its tasks
        are retried (each loss counted against them: a task that kills every executor fails
        its job after spark.task.maxFailures rather than forever)."""
        runtime = self._runtime
        with self._lock:
            if (self._stopping or runtime is None or runtime.stopped or runtime.aborted is not None
                    or executor_id != str(self._next_executor - 1)):  # only the current one is replaced
                return
            old = self.proc
            if old is not None:
                self._retired.append(old)
                # it may still be on its way out (a connection it broke): reap it meanwhile
                threading.Thread(target=stop_process, args=(old, 2.0), daemon=True, name="reap-executor").start()
            proc = self._launch()
            executor = str(self._next_executor - 1)
        log.warning("Replacing lost local executor %s (%s) with executor %s", executor_id, reason, executor)
        threading.Thread(target=self._watch_start, args=(proc, executor), daemon=True,
                         name=f"watch-executor-{executor}").start()

    def _watch_start(self, proc: subprocess.Popen[bytes], executor_id: str) -> None:
        """A replacement that exits before it registers would leave jobs waiting for an
        executor that never comes: abort the application with the reason instead."""
        runtime = self._runtime
        assert runtime is not None
        while not self._stopping and not runtime.stopped:
            with runtime.lock:
                if executor_id in runtime.executors or executor_id in runtime.lost_executors:
                    return
                runtime.executor_changed.wait(0.2)
            if proc.poll() is not None:
                with runtime.lock:
                    registered = executor_id in runtime.executors or executor_id in runtime.lost_executors
                if not registered and not self._stopping:
                    runtime.abort(f"the replacement local executor {executor_id} exited with code "
                                  f"{proc.returncode} before it registered; see the driver's console output")
                return

    def diagnose(self) -> str:
        if self.proc is not None and self.proc.poll() is not None:
            return f"the local executor process exited with code {self.proc.returncode}"
        return "the local executor did not register in time"

    def stop(self) -> None:
        self._stopping = True
        lock = getattr(self, "_lock", None)
        if lock is not None:
            with lock:  # no replacement starts from here on
                pass
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
        for old in getattr(self, "_retired", ()):
            stop_process(old, 0.0)
        shutil.rmtree(self.local_dir, ignore_errors=True)
