"""The worker's executors: how one is started, and what the worker remembers of it.

```
 master ── LaunchExecutor ──▶ worker ── ExecutorLauncher.launch() ──▶ fork server ── fork ──▶ executor
                                │        (python -m sparkctl.executor, if the fork server cannot)
                                ▼
                         ExecutorRunner: ids, resources, WORK_DIR/APP_ID/EXECUTOR_ID/{stdout,stderr,local},
                         the process (a Popen or a ForkedProcess), its state and exit code
```

The launcher forks executors from the worker's fork server (:mod:`sparkctl.deploy.fork_server`),
a few milliseconds each, and only starts a new interpreter (about 0.2 s of CPU) when the
fork server cannot answer. A launch returns once the process exists: it never waits for
the executor to register with its driver, so the master's many LaunchExecutor messages
become executors that start side by side.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sparkctl.deploy import messages as dm
from sparkctl.deploy.daemon import tail_lines
from sparkctl.deploy.fork_server import ForkServer, ForkServerError
# imported with the worker, not on its first launch: 14 ms alone, up to a second when every
# worker of a cluster pays it at once for the same application
from sparkctl.executor.executor import ExecutorSettings
from sparkctl.scheduler.backend import ExecutorProcess, executor_environment, spawn_executor

log = logging.getLogger("sparkctl.worker")

# app and executor ids become directory names: keep them to one safe path component
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass
class ExecutorRunner:
    """One executor process this worker started, and what became of it."""

    app_id: str
    executor_id: str
    app_name: str
    cores: int
    memory: int  # MiB
    directory: str
    proc: ExecutorProcess
    started: float = field(default_factory=time.time)
    state: str = dm.EXEC_RUNNING
    kill_reason: str | None = None  # set once we decided to stop it
    finished: float | None = None
    exit_code: int | None = None
    watcher: threading.Thread | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.app_id, self.executor_id)

    @property
    def stderr_path(self) -> str:
        return os.path.join(self.directory, "stderr")

    def clean_up_after_exit(self) -> None:
        """Once its process exited: its task slots and its local dir go with it."""
        # The slots share its process group; if it died abruptly they may linger, holding
        # memory and the work dir.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        # Its shuffle files and disk blocks were only reachable through its block server,
        # which died with it: free the disk now. stdout/stderr stay, as Spark keeps them.
        shutil.rmtree(os.path.join(self.directory, "local"), ignore_errors=True)

    def ended(self, code: int) -> None:
        """Record the exit (under the worker's lock): KILLED if we stopped it, else EXITED or FAILED."""
        self.finished = time.time()
        self.exit_code = code
        if self.kill_reason is not None:
            self.state = dm.EXEC_KILLED
        else:
            self.state = dm.EXITED if code == 0 else dm.EXEC_FAILED

    def final_report(self, tail_lines_kept: int) -> dm.ExecutorStateChanged:
        """The ExecutorStateChanged for the master after :meth:`ended`, logged; a failure
        carries the end of the executor's stderr."""
        assert self.exit_code is not None
        code, how, tail = self.exit_code, how_it_ended(self.exit_code), ""
        if self.kill_reason is not None:
            message = f"{self.kill_reason}; it {how}"
            log.info("Executor %s of %s (pid %d) %s", self.executor_id, self.app_id, self.proc.pid, message)
        else:
            message = f"executor process {how}"
            tail = tail_lines(self.stderr_path, tail_lines_kept)
            (log.info if code == 0 else log.warning)("Executor %s of %s (pid %d) %s", self.executor_id,
                                                     self.app_id, self.proc.pid, how)
        return dm.ExecutorStateChanged(self.app_id, self.executor_id, self.state, message, code, tail)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.executor_id, "appid": self.app_id, "appname": self.app_name, "cores": self.cores,
            "memory": self.memory, "pid": self.proc.pid, "state": self.state, "workdir": self.directory,
            "starttime": int(self.started * 1000),
            "finishtime": int(self.finished * 1000) if self.finished else None, "exitcode": self.exit_code,
        }


def executor_settings(msg: dm.LaunchExecutor, directory: str, host: str, worker_id: str) -> dict[str, Any]:
    """The settings an executor of *msg* starts with: the driver's, less the ones this
    sparkctl does not know (with a warning), and the worker's identity and resources."""
    known = {f.name for f in dataclasses.fields(ExecutorSettings)}
    unknown = sorted(set(msg.settings) - known)
    if unknown:
        # The executor would refuse them; one ignored knob beats an executor that never starts.
        log.warning("Ignoring unknown executor settings for %s/%s: %s", msg.app_id, msg.executor_id,
                    ", ".join(unknown))
    settings = {k: v for k, v in msg.settings.items() if k in known}
    # Identity and resources are the worker's to set, whatever the settings say.
    settings.update(
        executor_id=msg.executor_id, driver_host=msg.driver_host, driver_port=msg.driver_port,
        cores=msg.cores, host=host, local_dir=os.path.join(directory, "local"),
        memory=msg.memory * (1 << 20), app_id=msg.app_id, worker_id=worker_id,
    )
    return settings


class ExecutorLauncher:
    """Starts executor processes: forked by the fork server, else ``python -m sparkctl.executor``."""

    def __init__(self, secret: bytes, log_level: str = "INFO", use_fork_server: bool = True) -> None:
        self.secret = secret
        self.log_level = log_level
        self.fork_server: ForkServer | None = None
        if use_fork_server:
            try:
                self.fork_server = ForkServer().start()  # warms up while the worker registers
            except OSError as e:
                log.warning("No executor fork server (%s): executors start as new interpreters", e)

    def launch(self, settings: dict[str, Any], directory: str, extra_env: dict[str, str]) -> ExecutorProcess:
        """Start an executor with cwd *directory* and its stdout and stderr files there."""
        stdout, stderr = os.path.join(directory, "stdout"), os.path.join(directory, "stderr")
        if self.fork_server is not None:
            cfg = {**settings, "secret": self.secret.decode(), "log_level": self.log_level}
            try:
                return self.fork_server.launch(cfg, executor_environment(settings, extra_env), directory,
                                               stdout, stderr)
            except ForkServerError as e:
                log.warning("The fork server could not start executor %s (%s); starting a new interpreter",
                            settings.get("executor_id"), e)
        with open(stdout, "ab") as out, open(stderr, "ab") as err:
            return spawn_executor(settings, self.secret, self.log_level, stdout=out, stderr=err, cwd=directory,
                                  extra_env=extra_env)

    def stop(self) -> None:
        if self.fork_server is not None:
            self.fork_server.stop()


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def how_it_ended(code: int) -> str:
    """``exited with code N`` or ``was killed by signal SIGX``, from a Popen-style return code."""
    return f"was killed by signal {signal_name(-code)}" if code < 0 else f"exited with code {code}"
