"""Cluster deploy mode on the worker: one driver, run as a ``sparkctl submit`` process.

The master sends ``LaunchDriver`` with the application's files by value; the worker
writes them into the driver's own directory and runs the client-mode submit there:

```
 master ── LaunchDriver(id, files, args, settings) ──▶ worker
                                                        │ WORK_DIR/DRIVER_ID/
                                                        │   app.py, py-files      (from the message)
                                                        │   conf/secret           (the worker's secret, 0600)
                                                        │   stdout, stderr        (the driver's output)
                                                        ▼
            python -P -m sparkctl.cli submit --deploy-mode client --master <the worker's master>
                                             [--py-files ...] [--conf k=v ...] app.py args
 master ◀── DriverStateChanged(RUNNING, then FINISHED | FAILED | KILLED, exit code) ── worker
```

The cluster secret reaches the driver through a private conf dir (``SPARKCTL_CONF_DIR``),
never through its command line or environment, and is removed when the driver ends. The
worker's pid is in its environment, so that the driver ends with the worker
(:func:`sparkctl.deploy.lifecycle.watch_worker`).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sparkctl.deploy import messages as dm
from sparkctl.deploy.lifecycle import WORKER_PID_VAR
from sparkctl.deploy.master_state import valid_file_name
from sparkctl.scheduler.backend import package_root
from sparkctl.util.fsutil import private_makedirs

__all__ = ["DriverRunner", "prepare_driver_dir", "driver_command", "driver_env", "spawn_driver", "read_driver_log",
           "LOG_STREAMS"]

LOG_STREAMS = ("stdout", "stderr")
#: The most a worker sends in one DriverLogResponse; a client asks again for the rest.
MAX_LOG_CHUNK = 4 << 20
# Settings that are the worker's to decide for a driver it runs, not the submitter's.
_WORKER_SETTINGS = ("spark.master", "spark.submit.deployMode", "spark.submit.pyFiles", "spark.driver.host",
                    "spark.files", "spark.archives")
# --files and --archives land in subdirectories of the driver's, apart from the app and its py-files.
_SHIPPED_DIRS = (("files", "files"), ("archives", "archives"))


@dataclass
class DriverRunner:
    """One driver process this worker started, and what became of it."""

    driver_id: str
    main: str  # the application file's name
    cores: int
    memory: int  # MiB
    supervise: bool
    directory: str
    proc: subprocess.Popen[bytes]
    started: float = field(default_factory=time.time)
    state: str = dm.RUNNING
    kill_reason: str | None = None  # set once we decided to stop it
    report: bool = True  # False when the worker stops it on its way out (the master learns that itself)
    finished: float | None = None
    exit_code: int | None = None
    watcher: threading.Thread | None = None

    @property
    def stderr_path(self) -> str:
        return os.path.join(self.directory, "stderr")

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.driver_id, "mainclass": self.main, "cores": self.cores, "memory": self.memory,
            "supervise": self.supervise, "pid": self.proc.pid, "state": self.state, "workdir": self.directory,
            "starttime": int(self.started * 1000),
            "finishtime": int(self.finished * 1000) if self.finished else None, "exitcode": self.exit_code,
        }


def _write(path: str, data: bytes, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def prepare_driver_dir(work_dir: str, driver_id: str, desc: dm.DriverDescription, secret: bytes) -> str:
    """Write the driver's files and private conf dir under *work_dir*; return its directory.

    A relaunch on the same worker reuses the directory: the files are written afresh and
    stdout/stderr grow, so the log of every attempt is kept.
    """
    names = [f.name for f in (desc.app_file, *desc.py_files, *desc.files, *desc.archives)]
    bad = [n for n in names if not valid_file_name(n)]
    if bad:
        raise ValueError(f"unsafe file name {bad[0]!r}")
    directory = os.path.join(work_dir, driver_id)
    private_makedirs(directory)
    for f in [desc.app_file, *desc.py_files]:
        _write(os.path.join(directory, f.name), f.data)
    for attr, sub in _SHIPPED_DIRS:
        shipped = getattr(desc, attr)
        if shipped:
            private_makedirs(os.path.join(directory, sub))
        for f in shipped:
            _write(os.path.join(directory, sub, f.name), f.data)
    conf = os.path.join(directory, "conf")
    private_makedirs(conf)
    os.chmod(conf, 0o700)
    _write(os.path.join(conf, "secret"), secret, 0o600)  # created 0600: never readable by others
    return directory


def driver_command(directory: str, desc: dm.DriverDescription, master_url: str, host: str) -> list[str]:
    """``sparkctl submit --deploy-mode client`` of the driver's files, as an argv (no shell)."""
    cmd = [sys.executable, "-P", "-m", "sparkctl.cli", "submit", "--deploy-mode", "client", "--master", master_url]
    if desc.py_files:
        cmd += ["--py-files", ",".join(os.path.join(directory, f.name) for f in desc.py_files)]
    if desc.files:
        cmd += ["--files", ",".join(os.path.join(directory, "files", f.name) for f in desc.files)]
    if desc.archives:
        aliases = desc.archive_aliases or [""] * len(desc.archives)
        cmd += ["--archives", ",".join(os.path.join(directory, "archives", f.name) + (f"#{alias}" if alias else "")
                                       for f, alias in zip(desc.archives, aliases))]
    settings = {k: v for k, v in desc.settings.items() if k not in _WORKER_SETTINGS}
    # Executors on other hosts connect to the driver: it must listen on this worker's
    # address, not on the submitter's idea of a driver host.
    settings["spark.driver.host"] = host
    for key, value in sorted(settings.items()):
        cmd += ["--conf", f"{key}={value}"]
    return cmd + [os.path.join(directory, desc.app_file.name), *desc.app_args]


def driver_env(directory: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The driver's environment: our sparkctl importable, the private conf dir, no secret or master."""
    env = dict(os.environ if base is None else base)
    for key in ("SPARKCTL_SECRET", "SPARKCTL_MASTER", "SPARKCTL_SUBMIT_CONF"):
        env.pop(key, None)
    env["PYTHONPATH"] = os.pathsep.join([package_root()] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["SPARKCTL_CONF_DIR"] = os.path.join(directory, "conf")
    env[WORKER_PID_VAR] = str(os.getpid())  # we start it: it ends with us
    return env


def spawn_driver(directory: str, desc: dm.DriverDescription, master_url: str, host: str) -> subprocess.Popen[bytes]:
    """Start the driver in *directory*, in a session of its own (so it is stopped as a group)."""
    with open(os.path.join(directory, "stdout"), "ab") as out, open(os.path.join(directory, "stderr"), "ab") as err:
        return subprocess.Popen(driver_command(directory, desc, master_url, host), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err, cwd=directory, env=driver_env(directory),
                                start_new_session=True)


def forget_secret(directory: str) -> None:
    """Remove the driver's private conf dir once it has ended: its secret has no more use."""
    shutil.rmtree(os.path.join(directory, "conf"), ignore_errors=True)


def read_driver_log(work_dir: str, msg: dm.RequestDriverLog) -> dm.DriverLogResponse:
    """Part of a driver's stdout or stderr from this worker's work dir, for ``sparkctl logs``."""
    def refuse(error: str) -> dm.DriverLogResponse:
        return dm.DriverLogResponse(msg.driver_id, msg.stream, b"", msg.offset, 0, error)

    # Both become parts of a path: only a plain driver id and a known stream name will do.
    if not (msg.driver_id.startswith("driver-") and valid_file_name(msg.driver_id)):
        return refuse(f"{msg.driver_id!r} is not a driver id")
    if msg.stream not in LOG_STREAMS:
        return refuse(f"no log stream {msg.stream!r}; use stdout or stderr")
    path = os.path.join(work_dir, msg.driver_id, msg.stream)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            offset = min(max(msg.offset, 0), size)
            f.seek(offset)
            data = f.read(max(0, min(msg.max_bytes, MAX_LOG_CHUNK)))
    except FileNotFoundError:
        return refuse(f"this worker has no {msg.stream} of driver {msg.driver_id}")
    except OSError as e:
        return refuse(f"cannot read {path}: {e.strerror or e}")
    return dm.DriverLogResponse(msg.driver_id, msg.stream, data, offset, size)
