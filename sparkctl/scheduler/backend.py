"""Scheduler backends: the one part of the driver that knows how executors come to exist.

``LocalBackend`` (``local[N]``) starts one executor process with N task slots itself;
the standalone backend asks a master for executors on workers. Either way the executors
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
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from sparkctl.errors import SparkctlError

if TYPE_CHECKING:
    from sparkctl.scheduler.runtime import DriverRuntime

log = logging.getLogger("sparkctl.driver")


class SchedulerBackend(ABC):
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


def package_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def spawn_executor(settings: dict[str, Any], secret: bytes, log_level: str, stdout: Any = None,
                   stderr: Any = None, cwd: str | None = None) -> subprocess.Popen[bytes]:
    """Start ``python -m sparkctl.executor``; settings and secret go through its stdin."""
    env = dict(os.environ)
    root = package_root()
    env["PYTHONPATH"] = os.pathsep.join([root] + settings.get("extra_paths", []) +
                                        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("SPARKCTL_SECRET", None)
    # -P: never import a `sparkctl` lying in the working directory instead of ours
    proc = subprocess.Popen([sys.executable, "-P", "-m", "sparkctl.executor"], stdin=subprocess.PIPE, stdout=stdout,
                            stderr=stderr, env=env, cwd=cwd, start_new_session=True)
    assert proc.stdin is not None
    line = json.dumps({**settings, "secret": secret.decode(), "log_level": log_level})
    proc.stdin.write(line.encode() + b"\n")
    proc.stdin.close()
    return proc


def stop_process(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
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


class LocalBackend(SchedulerBackend):
    def __init__(self, cores: int, conf: Any, app_id: str, extra_paths: list[str]) -> None:
        self.cores = cores
        self.conf = conf
        self.app_id = app_id
        self.extra_paths = extra_paths
        self.proc: subprocess.Popen[bytes] | None = None
        base = conf.get("spark.local.dir") or tempfile.gettempdir()
        os.makedirs(base, exist_ok=True)
        self.local_dir = tempfile.mkdtemp(prefix=f"sparkctl-{app_id}-", dir=base)
        self.log_path = os.path.join(self.local_dir, "executor.log")

    def default_parallelism(self) -> int:
        return self.cores

    def start(self, runtime: "DriverRuntime", secret: bytes) -> None:
        from sparkctl.conf import parse_size
        driver_host, driver_port = runtime.address
        settings = {
            "executor_id": "0",
            "driver_host": driver_host,
            "driver_port": driver_port,
            "cores": self.cores,
            "host": driver_host,
            "local_dir": os.path.join(self.local_dir, "executor-0"),
            "memory": parse_size(self.conf.get("spark.executor.memory") or "1g", "m"),
            "memory_fraction": float(self.conf.get("spark.memory.fraction") or 0.6),
            "storage_fraction": float(self.conf.get("spark.memory.storageFraction") or 0.5),
            "batch_size": int(self.conf.get("spark.shuffle.spill.batchSize") or 1000),
            "heartbeat_interval": self.conf.get_duration("spark.executor.heartbeatInterval"),
            "network_timeout": self.conf.get_duration("spark.network.timeout"),
            "app_id": self.app_id,
            "extra_paths": self.extra_paths,
        }
        level = "INFO" if logging.getLogger("sparkctl").getEffectiveLevel() <= logging.INFO else "WARNING"
        # task output (print) shows on the driver's console, as in PySpark's local mode
        self.proc = spawn_executor(settings, secret, level, cwd=os.getcwd())
        log.info("Started local executor 0 with %d task slots (pid %d)", self.cores, self.proc.pid)

    def diagnose(self) -> str:
        if self.proc is not None and self.proc.poll() is not None:
            return f"the local executor process exited with code {self.proc.returncode}"
        return "the local executor did not register in time"

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
        shutil.rmtree(self.local_dir, ignore_errors=True)
