"""The worker daemon: offers one host's cores and memory to the master, runs executors and drivers.

``python -m sparkctl.deploy.worker --master spark://H:P [--cores N] [--memory 4g]
[--host H] [--port P] [--webui-port P] [--work-dir D] [--ready-fd FD] [--log-file PATH]``

```
 master ◀── RegisterWorker / WorkerHeartbeat / ExecutorStateChanged ── worker (this process)
 master ─── RegisteredWorker / LaunchExecutor / KillExecutor ────────▶   │ spawns, watches, stops
            ApplicationFinished                                          ▼
                              executor process, forked by the worker's fork server ── registers ──▶ driver
                              cwd, stdout, stderr: WORK_DIR/APP_ID/EXECUTOR_ID/   (executor_runner, fork_server)
 master ─── LaunchDriver / KillDriver ──▶ worker ── DriverStateChanged ──▶ master
                              driver process (sparkctl submit --deploy-mode client, see driver_runner)
                              cwd, stdout, stderr: WORK_DIR/DRIVER_ID/
 sparkctl logs ── RequestDriverLog ──▶ worker's rpc port ── DriverLogResponse ──▶ sparkctl logs
 browser ── GET / , /json, /logPage/?appId=..&executorId=..&logType=stderr ──▶ worker's web UI
```

Executors are forked from the worker's fork server (:mod:`sparkctl.deploy.fork_server`),
a process started with the worker that has already imported the executor: a launch takes
milliseconds and never waits for the executors launched before it to register.

Each executor it launches gets, in ``SPARKCTL_EXECUTOR_LOG_URLS``, the URLs of its
stdout and stderr on this worker's web UI (:mod:`sparkctl.deploy.log_page`), as Spark's
executors carry their log URLs.

The worker dials the master and keeps that one connection for commands. When it
drops, executors keep running (their drivers talk to them directly) and the worker
registers again with exponential backoff, listing the executors it still runs: that is
how a restarted master re-adopts them. A master that declared this worker DEAD meanwhile
(it missed heartbeats) has told the drivers those executors were lost; it answers with a
``KillExecutor`` for each, as Spark's master does, and they are killed. It also listens on its own rpc port, so two
workers cannot share host:port, and a master (or a tool) holding the secret can reach
it there with the same commands.

With ``spark.worker.cleanup.enabled`` (the default), every
``spark.worker.cleanup.interval`` the worker removes the directories of applications and
drivers that no longer run here and in which nothing changed for
``spark.worker.cleanup.appDataTtl``: finished applications' logs and files do not pile up.

On SIGTERM (or SIGINT) the worker stops its executors first, reports them KILLED,
then exits 0. Its drivers are stopped too but not reported: the master learns from the
closed connection that they are gone with their worker (and relaunches supervised ones
elsewhere), rather than reading "KILLED" as a request it made.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sparkctl.conf import conf_dir, load_defaults_file, parse_size
from sparkctl.deploy import messages as dm
from sparkctl.deploy.daemon import notify_ready, parse_master_url, setup_daemon_logging, tail_lines, work_dir
from sparkctl.deploy.work_dir_cleanup import cleanup_settings, remove_old_dirs
from sparkctl.deploy.log_page import LOG_URLS_ENV, executor_log_urls
from sparkctl.deploy.driver_runner import DriverRunner, forget_secret, prepare_driver_dir, read_driver_log, spawn_driver
from sparkctl.errors import ConfigError, ConnectionClosed, ProtocolError, SparkctlError
from sparkctl.rpc import Connection, Dispatcher, Server, connect, load_secret, serve_forever_reader
from sparkctl.deploy.executor_runner import (SAFE_ID, ExecutorLauncher, ExecutorRunner, executor_settings,
                                              how_it_ended)
from sparkctl.scheduler.backend import stop_process
from sparkctl.util.fsutil import private_makedirs
from sparkctl.util.processes import raise_fd_limit

if TYPE_CHECKING:
    from sparkctl.deploy.webui import StatusServer

log = logging.getLogger("sparkctl.worker")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7078
DEFAULT_WEBUI_PORT = 8081

#: Registration retries: 0.2 s, doubling, at most 5 s apart, until the master answers.
BACKOFF_START = 0.2
BACKOFF_MAX = 5.0
#: Connect + handshake + RegisteredWorker must fit in this; else the attempt is retried.
REGISTER_TIMEOUT = 10.0
#: Lines of a dead executor's stderr sent to the master (and on to the driver).
LOG_TAIL_LINES = 20
#: Finished executors remembered for the web UI / state document.
FINISHED_KEPT = 100
#: How long stop() waits for the final ExecutorStateChanged reports to go out.
REPORT_WAIT = 10.0

_FINAL_STATES = (dm.EXITED, dm.EXEC_FAILED, dm.EXEC_KILLED, dm.LOST)
_StateReport = dm.ExecutorStateChanged | dm.DriverStateChanged


def default_cores() -> int:
    return os.cpu_count() or 1


def default_memory_mib(meminfo: str = "/proc/meminfo") -> int:
    """Total memory minus 1 GiB for the OS and the daemons, in MiB, at least 512."""
    total_mib = 0
    try:
        with open(meminfo, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    total_mib = int(line.split()[1]) // 1024  # the kernel reports kB
                    break
    except (OSError, ValueError, IndexError):
        pass
    if not total_mib:
        try:
            total_mib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20)
        except (ValueError, OSError):
            total_mib = 0
    return max(512, total_mib - 1024)


def backoff_delays(start: float = BACKOFF_START, cap: float = BACKOFF_MAX) -> Iterator[float]:
    """Pauses between registration attempts: *start*, doubling, then *cap* forever."""
    delay = start
    while True:
        yield delay
        delay = min(delay * 2, cap)


def make_worker_id(host: str, port: int, when: float | None = None) -> str:
    """``worker-YYYYMMDDHHMMSS-HOST-PORT``, as Spark names its workers."""
    return f"worker-{time.strftime('%Y%m%d%H%M%S', time.localtime(when))}-{host}-{port}"


@dataclass
class WorkerConfig:
    master_host: str
    master_port: int
    cores: int = field(default_factory=default_cores)
    memory: int = field(default_factory=default_memory_mib)  # MiB
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    webui_port: int = DEFAULT_WEBUI_PORT
    work_dir: str = field(default_factory=work_dir)
    cleanup_enabled: bool = False  # spark.worker.cleanup.*: see cleanup_settings()
    cleanup_interval: float = 1800.0
    app_data_ttl: float = 7 * 24 * 3600.0

    @property
    def master_url(self) -> str:
        return f"spark://{self.master_host}:{self.master_port}"


class Worker:
    """The worker's state and threads; ``start()``, then ``wait()``, then ``stop()``.

    Threads: the rpc server's (commands from whoever dials in), ``master-link`` (connect,
    register, then read the master's commands until the connection drops, again and
    again), ``heartbeat`` (one per registration) and one watcher per executor process.
    """

    def __init__(self, config: WorkerConfig, secret: bytes, ready_fd: int | None = None) -> None:
        self.config = config
        self.secret = secret
        self.ready_fd = ready_fd
        self.worker_id = ""
        self.exit_code = 0
        self._lock = threading.Lock()
        # Held from "not stopping?" to "registered" by each launch, and once by stop() after it
        # set _stopping: so stop() sees every process that was started, and none starts later.
        self._launch_lock = threading.Lock()
        self._executors: dict[tuple[str, str], ExecutorRunner] = {}
        self._finished: deque[ExecutorRunner] = deque(maxlen=FINISHED_KEPT)
        self._drivers: dict[str, DriverRunner] = {}
        self._finished_drivers: deque[DriverRunner] = deque(maxlen=FINISHED_KEPT)
        self._master: Connection | None = None
        self._master_webui_url = ""
        # Final executor and driver states the master did not get (the connection was down):
        # sent after the next registration. RUNNING needs no replay: RegisterWorker lists them.
        self._undelivered: list[_StateReport] = []
        self._stop_requested = threading.Event()
        self._stopping = threading.Event()
        self._registered_once = False
        self._server: Server | None = None
        self._launcher: ExecutorLauncher | None = None
        self._webui: StatusServer | None = None
        self._commands = Dispatcher({
            dm.LaunchExecutor: self._on_launch_executor,
            dm.KillExecutor: self._on_kill_executor,
            dm.ApplicationFinished: self._on_application_finished,
            dm.RegisteredWorker: self._on_late_registered,
            dm.LaunchDriver: self._on_launch_driver,
            dm.KillDriver: self._on_kill_driver,
        })

    # ------------------------------------------------------------ lifecycle
    def start(self) -> Worker:
        """Bind the rpc server (and web UI), then start registering with the master."""
        self._server = Server(self.config.host, self.config.port, self.secret, self._serve_peer,
                              name="worker").start()
        host, port = self._server.address
        self.config.port = port  # the real one when asked for 0
        self.worker_id = make_worker_id(self.config.host, port)
        private_makedirs(self.config.work_dir)
        # its fork server imports the executor while the worker registers
        self._launcher = ExecutorLauncher(self.secret)
        log.info("Worker %s listening on %s:%d with %d cores, %d MiB; work dir %s", self.worker_id,
                 self.config.host, port, self.config.cores, self.config.memory, self.config.work_dir)
        self._start_webui()
        threading.Thread(target=self._master_link, name="master-link", daemon=True).start()
        if self.config.cleanup_enabled:
            threading.Thread(target=self._cleanup_loop, name="work-dir-cleanup", daemon=True).start()
        return self

    def request_stop(self, exit_code: int = 0) -> None:
        """Ask for a stop (signal handlers, fatal errors); ``wait()`` then returns."""
        if not self._stop_requested.is_set():
            self.exit_code = exit_code
        self._stop_requested.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Until a stop is requested; True if it was."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            # short waits in a loop keep the main thread responsive to signals
            left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if left <= 0:
                return self._stop_requested.is_set()
            if self._stop_requested.wait(left):
                return True

    def stop(self) -> None:
        """Graceful stop: executors first (reported KILLED), then the connections."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._stop_requested.set()
        log.info("Worker %s shutting down", self.worker_id)
        with self._launch_lock:
            pass  # a launch under way registers its process before we look
        with self._lock:
            runners = list(self._executors.values())
            drivers = list(self._drivers.values())
        kill_drivers = threading.Thread(target=self._kill_drivers, args=(drivers, "worker shutting down", True),
                                        kwargs={"report": False}, name="kill-drivers", daemon=True)
        kill_drivers.start()
        self._kill_runners(runners, "worker shutting down", wait=True)
        kill_drivers.join()
        for runner in runners:
            if runner.watcher is not None:
                runner.watcher.join(REPORT_WAIT)  # so the KILLED reports go out first
        for driver in drivers:
            if driver.watcher is not None:
                driver.watcher.join(REPORT_WAIT)  # and their secrets are removed
        if self._launcher is not None:
            self._launcher.stop()
        with self._lock:
            conn, self._master = self._master, None
        if conn is not None:
            conn.close()
        if self._webui is not None:
            try:
                self._webui.stop()
            except Exception:
                log.exception("web UI did not stop cleanly")
        if self._server is not None:
            self._server.stop(timeout=2.0)
        log.info("Worker %s stopped", self.worker_id)

    # ------------------------------------------------------------ master link
    def _master_link(self) -> None:
        while not self._stopping.is_set():
            delays = backoff_delays()
            attempt = 1
            conn = self._register(attempt)
            while conn is None:
                if self._stop_requested.wait(next(delays)):
                    return
                attempt += 1
                conn = self._register(attempt)
            self._serve_master(conn)
            if not self._stopping.is_set():
                with self._lock:
                    running = len(self._executors)
                log.warning("Lost the connection to master %s; %d executor(s) keep running; registering again",
                            self.config.master_url, running)

    def _register(self, attempt: int) -> Connection | None:
        """One registration attempt: the registered connection, or None to retry later."""
        url = self.config.master_url
        try:
            conn = connect(self.config.master_host, self.config.master_port, self.secret, timeout=REGISTER_TIMEOUT)
        except (SparkctlError, OSError) as e:
            # The first failure and then every tenth are INFO; a master that is still
            # starting is normal, and a long outage should not flood the log.
            level = logging.INFO if attempt == 1 or attempt % 10 == 0 else logging.DEBUG
            log.log(level, "Cannot register with master %s yet (attempt %d): %s; retrying", url, attempt, e)
            return None
        with self._lock:
            running = [(r.app_id, r.executor_id, r.cores, r.memory) for r in self._executors.values()]
            drivers = self._drivers_to_list()
        try:
            conn.send(dm.RegisterWorker(self.worker_id, self.config.host, self.config.port, self.config.cores,
                                        self.config.memory, self._webui_port(), running, drivers))
            reply = conn.recv(timeout=REGISTER_TIMEOUT)
        except (SparkctlError, OSError) as e:
            log.info("Registration with master %s failed (attempt %d): %s; retrying", url, attempt, e)
            conn.close()
            return None
        if isinstance(reply, dm.RegisterWorkerFailed):
            # Spark's worker exits here too: the master will not take this worker (e.g. a
            # duplicate id), and retrying would only repeat the refusal.
            log.error("Master %s refused to register worker %s: %s", url, self.worker_id, reply.message)
            conn.close()
            self.request_stop(1)
            return None
        if not isinstance(reply, dm.RegisteredWorker):
            log.warning("Master %s answered RegisterWorker with a %s; retrying", url, type(reply).__name__)
            conn.close()
            return None
        with self._lock:
            if self._stopping.is_set():
                conn.close()
                return None
            self._master = conn
            self._master_webui_url = reply.master_webui_url
            undelivered, self._undelivered = self._undelivered, []
        log.info("Registered with master %s as %s (%d running executor(s) listed)", url, self.worker_id, len(running))
        for msg in undelivered:
            self._send_to_master(msg)
        threading.Thread(target=self._heartbeat, args=(conn, max(0.05, reply.heartbeat_interval)),
                         name="heartbeat", daemon=True).start()
        if not self._registered_once:
            self._registered_once = True
            notify_ready(self.ready_fd, f"READY {self.worker_id} {url}")
            self.ready_fd = None
        return conn

    def _serve_master(self, conn: Connection) -> None:
        serve_forever_reader(conn, self._handle_command)
        with self._lock:
            if self._master is conn:
                self._master = None

    def _heartbeat(self, conn: Connection, interval: float) -> None:
        while not conn.closed and not self._stopping.wait(interval):
            try:
                conn.send(dm.WorkerHeartbeat(self.worker_id))
            except ConnectionClosed:
                return  # the master link notices and registers again

    def _drivers_to_list(self) -> list[tuple[str, int, int]]:
        """The drivers a registration lists: running ones, and ended ones whose end the master
        has not heard yet (so it does not take them for lost before the report arrives)."""
        listed = [(r.driver_id, r.cores, r.memory) for r in self._drivers.values()]
        unreported = {m.driver_id for m in self._undelivered if isinstance(m, dm.DriverStateChanged)}
        listed += [(r.driver_id, r.cores, r.memory) for r in self._finished_drivers if r.driver_id in unreported]
        return listed

    @staticmethod
    def _is_final(msg: _StateReport) -> bool:
        if isinstance(msg, dm.DriverStateChanged):
            return msg.state in dm.FINAL_DRIVER_STATES
        return msg.state in _FINAL_STATES

    def _send_to_master(self, msg: _StateReport) -> None:
        with self._lock:
            conn = self._master
            if conn is None:
                if self._is_final(msg):
                    self._undelivered.append(msg)
                return
        try:
            conn.send(msg)
        except ConnectionClosed:
            if self._is_final(msg):
                with self._lock:
                    self._undelivered.append(msg)

    # ------------------------------------------------------------ commands
    def _serve_peer(self, conn: Connection) -> None:
        def handle(msg: object) -> None:
            if isinstance(msg, dm.RequestDriverLog):
                conn.send(read_driver_log(self.config.work_dir, msg))  # answered on the asker's connection
            else:
                self._handle_command(msg)

        serve_forever_reader(conn, handle)

    def _handle_command(self, msg: object) -> None:
        try:
            self._commands.dispatch(msg)
        except ProtocolError:
            # A newer master may send more than this worker knows; that is no reason to
            # drop the connection (which would make us re-register).
            log.warning("Ignoring an unexpected %s", type(msg).__name__)

    def _on_late_registered(self, msg: dm.RegisteredWorker) -> None:
        log.debug("ignoring a repeated RegisteredWorker from %s", msg.master_url)

    def _on_launch_executor(self, msg: dm.LaunchExecutor) -> None:
        with self._launch_lock:
            self._launch_executor(msg)

    def _launch_executor(self, msg: dm.LaunchExecutor) -> None:
        key = (msg.app_id, msg.executor_id)
        if not (SAFE_ID.fullmatch(msg.app_id) and SAFE_ID.fullmatch(msg.executor_id)):
            self._send_to_master(dm.ExecutorStateChanged(msg.app_id, msg.executor_id, dm.EXEC_FAILED,
                                                         "application and executor ids must be plain names"))
            return
        with self._lock:
            if self._stopping.is_set():
                refuse = "the worker is shutting down"
            elif key in self._executors:
                refuse = "this worker already runs that executor"
            else:
                refuse = ""
        if refuse:
            log.warning("Not launching executor %s of %s: %s", msg.executor_id, msg.app_id, refuse)
            if "already" not in refuse:
                self._send_to_master(dm.ExecutorStateChanged(msg.app_id, msg.executor_id, dm.EXEC_FAILED, refuse))
            return
        directory = os.path.join(self.config.work_dir, msg.app_id, msg.executor_id)
        try:
            private_makedirs(directory)
            settings = executor_settings(msg, directory, self.config.host, self.worker_id)
            assert self._launcher is not None  # made by start(), before the master link
            proc = self._launcher.launch(settings, directory, self._executor_env(msg.app_id, msg.executor_id))
        except (OSError, ValueError) as e:
            log.error("Could not start executor %s of %s: %s", msg.executor_id, msg.app_id, e)
            self._send_to_master(dm.ExecutorStateChanged(msg.app_id, msg.executor_id, dm.EXEC_FAILED,
                                                         f"the worker could not start it: {e}"))
            return
        runner = ExecutorRunner(msg.app_id, msg.executor_id, msg.app_name, msg.cores, msg.memory, directory, proc)
        with self._lock:
            self._executors[key] = runner
        log.info("Launched executor %s of %s (%s) on %s with %d cores, %d MiB: pid %d, driver %s:%d, dir %s",
                 msg.executor_id, msg.app_id, msg.app_name, self.config.host, msg.cores, msg.memory, proc.pid,
                 msg.driver_host, msg.driver_port, directory)
        # RUNNING goes out before the watcher exists, so it always precedes the final state.
        self._send_to_master(dm.ExecutorStateChanged(msg.app_id, msg.executor_id, dm.EXEC_RUNNING,
                                                     f"pid {proc.pid}"))
        runner.watcher = threading.Thread(target=self._watch, args=(runner,), daemon=True,
                                          name=f"executor-{msg.app_id}-{msg.executor_id}")
        runner.watcher.start()

    def _on_kill_executor(self, msg: dm.KillExecutor) -> None:
        with self._lock:
            runner = self._executors.get((msg.app_id, msg.executor_id))
        if runner is None:
            log.info("Asked to kill executor %s of %s, which is not running here", msg.executor_id, msg.app_id)
            return
        self._kill_runners([runner], "killed by the master", wait=False)

    def _on_application_finished(self, msg: dm.ApplicationFinished) -> None:
        with self._lock:
            runners = [r for r in self._executors.values() if r.app_id == msg.app_id]
        log.info("Application %s finished; stopping its %d executor(s)", msg.app_id, len(runners))
        self._kill_runners(runners, f"application {msg.app_id} finished", wait=False)

    def _kill_runners(self, runners: list[ExecutorRunner], reason: str, wait: bool) -> None:
        """SIGTERM each executor's process group, SIGKILL it if it lingers (all in parallel).

        Never blocks the caller unless *wait*: the master's reader must keep reading.
        """
        self._stop_in_parallel(runners, reason, wait, lambda r: f"executor {r.executor_id} of {r.app_id}")

    def _stop_in_parallel(self, runners: list[Any], reason: str, wait: bool, describe: Callable[[Any], str],
                          report: bool | None = None) -> None:
        """Stop executor or driver processes, each in a thread of its own; a runner already
        being killed or already finished is left alone."""
        threads = []
        for runner in runners:
            with self._lock:
                if runner.kill_reason is not None or runner.finished is not None:
                    continue
                runner.kill_reason = reason
                if report is not None:
                    runner.report = report
            what = describe(runner)
            log.info("Killing %s (pid %d): %s", what, runner.proc.pid, reason)
            t = threading.Thread(target=stop_process, args=(runner.proc, 0.0), daemon=True,
                                 name=f"kill-{what.replace(' ', '-')}")
            t.start()
            threads.append(t)
        if wait:
            for t in threads:
                t.join()

    def _watch(self, runner: ExecutorRunner) -> None:
        code = runner.proc.wait()
        runner.clean_up_after_exit()
        with self._lock:
            self._executors.pop(runner.key, None)
            runner.ended(code)
            self._finished.append(runner)
        self._send_to_master(runner.final_report(LOG_TAIL_LINES))

    # ------------------------------------------------------------ drivers (cluster deploy mode)
    def _on_launch_driver(self, msg: dm.LaunchDriver) -> None:
        with self._launch_lock:
            self._launch_driver(msg)

    def _launch_driver(self, msg: dm.LaunchDriver) -> None:
        driver_id = msg.driver_id
        if not (driver_id.startswith("driver-") and SAFE_ID.fullmatch(driver_id)):
            self._send_to_master(dm.DriverStateChanged(driver_id, dm.ERROR, None, "driver ids must be plain names"))
            return
        with self._lock:
            if self._stopping.is_set():
                refuse = "the worker is shutting down"
            elif driver_id in self._drivers:
                log.warning("Not launching driver %s: it already runs here", driver_id)
                return
            else:
                refuse = ""
        if refuse:
            log.warning("Not launching driver %s: %s", driver_id, refuse)
            self._send_to_master(dm.DriverStateChanged(driver_id, dm.ERROR, None, refuse))
            return
        desc = msg.desc
        try:
            directory = prepare_driver_dir(self.config.work_dir, driver_id, desc, self.secret)
            proc = spawn_driver(directory, desc, self.config.master_url, self.config.host)
        except (OSError, ValueError) as e:
            log.error("Could not start driver %s: %s", driver_id, e)
            self._send_to_master(dm.DriverStateChanged(driver_id, dm.ERROR, None, f"the worker could not start it: {e}"))
            return
        runner = DriverRunner(driver_id, desc.app_file.name, desc.cores, desc.memory, desc.supervise, directory, proc)
        with self._lock:
            self._drivers[driver_id] = runner
        log.info("Launched driver %s (%s) with %d cores, %d MiB: pid %d, dir %s", driver_id, desc.app_file.name,
                 desc.cores, desc.memory, proc.pid, directory)
        # RUNNING goes out before the watcher exists, so it always precedes the final state.
        self._send_to_master(dm.DriverStateChanged(driver_id, dm.RUNNING, None, f"pid {proc.pid}"))
        runner.watcher = threading.Thread(target=self._watch_driver, args=(runner,), daemon=True,
                                          name=f"driver-{driver_id}")
        runner.watcher.start()

    def _on_kill_driver(self, msg: dm.KillDriver) -> None:
        with self._lock:
            runner = self._drivers.get(msg.driver_id)
        if runner is None:
            log.info("Asked to kill driver %s, which is not running here", msg.driver_id)
            return
        # In a thread of its own: the master's reader must keep reading meanwhile.
        threading.Thread(target=self._kill_drivers, args=([runner], "killed by the master", True), daemon=True,
                         name=f"kill-{msg.driver_id}").start()

    def _kill_drivers(self, runners: list[DriverRunner], reason: str, wait: bool, report: bool = True) -> None:
        """SIGTERM each driver's process group, SIGKILL it if it lingers (all in parallel)."""
        self._stop_in_parallel(runners, reason, wait, lambda r: f"driver {r.driver_id}", report)

    def _watch_driver(self, runner: DriverRunner) -> None:
        code = runner.proc.wait()
        try:
            os.killpg(runner.proc.pid, signal.SIGKILL)  # whatever the application left running
        except (ProcessLookupError, PermissionError):
            pass
        forget_secret(runner.directory)
        with self._lock:
            self._drivers.pop(runner.driver_id, None)
            runner.finished = time.time()
            runner.exit_code = code
            killed = runner.kill_reason
            if killed is not None:
                runner.state = dm.KILLED
            else:
                runner.state = dm.FINISHED if code == 0 else dm.FAILED
            self._finished_drivers.append(runner)
        how = how_it_ended(code)
        message = f"{killed}; it {how}" if killed is not None else f"driver process {how}"
        tail = tail_lines(runner.stderr_path, LOG_TAIL_LINES) if runner.state == dm.FAILED else ""
        (log.info if runner.state != dm.FAILED else log.warning)("Driver %s (pid %d) %s", runner.driver_id,
                                                                   runner.proc.pid, message)
        if runner.report:
            self._send_to_master(dm.DriverStateChanged(runner.driver_id, runner.state, code, message, tail))

    # ------------------------------------------------------------ work dir cleanup
    def _cleanup_loop(self) -> None:
        from sparkctl.util.cleanup import sweep_leftovers
        sweep_leftovers([None])  # what drivers of this user killed on this host left in the temp dir
        while not self._stopping.wait(self.config.cleanup_interval):
            try:
                self.cleanup_work_dir()
                sweep_leftovers([None])
            except Exception:  # a failed pass must not end the cleanups to come
                log.exception("Cleaning up the work dir %s failed", self.config.work_dir)

    def cleanup_work_dir(self, now: float | None = None) -> list[str]:
        """Remove the work dir's application and driver directories that nothing here runs
        and in which nothing was written for ``app_data_ttl``; returns their names."""
        cutoff = (time.time() if now is None else now) - self.config.app_data_ttl
        return remove_old_dirs(self.config.work_dir, cutoff, self._running_here, self._launch_lock)

    def _running_here(self, name: str) -> bool:
        with self._lock:
            return name in self._drivers or any(r.app_id == name for r in self._executors.values())

    # ------------------------------------------------------------ state and web UI
    def state_json(self) -> dict[str, Any]:
        """The worker's state with Spark's worker JSON field names (for the web UI)."""
        with self._lock:
            running = [r.describe() for r in self._executors.values()]
            finished = [r.describe() for r in self._finished]
            drivers = [r.describe() for r in self._drivers.values()]
            finished_drivers = [r.describe() for r in self._finished_drivers]
            registered = self._master is not None
        return {
            "id": self.worker_id,
            "host": self.config.host,
            "port": self.config.port,
            "masterurl": self.config.master_url,
            "masterwebuiurl": self._master_webui_url,
            "state": dm.ALIVE if registered else "DISCONNECTED",
            "cores": self.config.cores,
            "coresused": sum(e["cores"] for e in running + drivers),
            "memory": self.config.memory,
            "memoryused": sum(e["memory"] for e in running + drivers),
            "executors": running,
            "finishedexecutors": finished,
            "drivers": drivers,
            "finisheddrivers": finished_drivers,
            "workdir": self.config.work_dir,
        }

    def _webui_port(self) -> int:
        return self._webui.port if self._webui is not None else 0

    def webui_url(self) -> str:
        """``http://HOST:PORT`` of this worker's web UI as others reach it ("" without one)."""
        if self._webui is None:
            return ""
        host = self.config.host
        if host in ("", "0.0.0.0", "::"):
            host = socket.getfqdn()  # bound everywhere: the name others know this host by
        return f"http://{f'[{host}]' if ':' in host else host}:{self._webui.port}"

    def _executor_env(self, app_id: str, executor_id: str) -> dict[str, str]:
        """The executor's log URLs on this worker's web UI, for it to report to its driver."""
        base = self.webui_url()
        return {LOG_URLS_ENV: json.dumps(executor_log_urls(base, app_id, executor_id))} if base else {}

    def _start_webui(self) -> None:
        # The web UI module is optional: without it the worker works, just without a page.
        try:
            from sparkctl.deploy import log_page
            from sparkctl.deploy.webui import render_body, render_worker_page, start_status_server
        except ImportError:
            log.info("No web UI (sparkctl.deploy.webui is not available)")
            return
        work = self.config.work_dir

        def page(query: str) -> tuple[int, str, bytes]:
            return log_page.serve_log_page(work, query, render_body)

        def raw(query: str) -> tuple[int, str, bytes]:
            return log_page.serve_raw_log(work, query)

        # Spark's worker paths; its links end in "/logPage/?", curl users often omit the slash.
        routes = {"/logPage": page, "/logPage/": page, "/log": raw, "/log/": raw}
        try:
            self._webui = start_status_server(self.config.host, self.config.webui_port, self.state_json,
                                              f"sparkctl worker {self.worker_id}", render_worker_page,
                                              routes=routes)
        except OSError as e:
            # A busy UI port should not keep the worker from offering its cores.
            log.warning("Web UI could not start on %s:%d: %s", self.config.host, self.config.webui_port, e)
            return
        log.info("Worker web UI at http://%s:%d", self.config.host, self._webui_port())


# ---------------------------------------------------------------- entry point


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sparkctl.deploy.worker",
                                description="sparkctl worker daemon: runs executors for the master")
    p.add_argument("--master", required=True, help="spark://host:port of the master")
    p.add_argument("--cores", type=int, default=None, help="task slots to offer (default: all cores)")
    p.add_argument("--memory", default=None, help="memory to offer, e.g. 4g (default: total minus 1 GiB)")
    p.add_argument("--host", default=DEFAULT_HOST, help="address to listen on and to advertise")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="rpc port (0: any free port)")
    p.add_argument("--webui-port", type=int, default=DEFAULT_WEBUI_PORT, help="web UI port (0: any free port)")
    p.add_argument("--work-dir", default=None, help="executors' directories (default: $SPARKCTL_WORK_DIR or work/)")
    p.add_argument("--ready-fd", type=int, default=None, help="write 'READY <id> <master>' here once registered")
    p.add_argument("--log-file", default=None, help="log here (rotated) instead of stderr")
    return p


def parse_config(argv: list[str] | None = None) -> tuple[WorkerConfig, argparse.Namespace]:
    parser = _parser()
    ns = parser.parse_args(argv)
    try:
        master_host, master_port = parse_master_url(ns.master)
        memory = default_memory_mib() if ns.memory is None else parse_size(ns.memory, "m", "--memory") >> 20
    except ConfigError as e:
        parser.error(str(e))
    if ns.cores is not None and ns.cores < 1:
        parser.error(f"--cores must be at least 1, got {ns.cores}")
    if memory < 1:
        parser.error(f"--memory must be at least 1m, got {ns.memory!r}")
    try:
        cleanup_enabled, cleanup_interval, app_data_ttl = cleanup_settings(load_defaults_file())
    except ConfigError as e:
        parser.error(str(e))
    for name, port in (("--port", ns.port), ("--webui-port", ns.webui_port)):
        if not 0 <= port <= 65535:
            parser.error(f"{name} must be within 0..65535, got {port}")
    config = WorkerConfig(
        master_host, master_port,
        cores=ns.cores if ns.cores is not None else default_cores(), memory=memory,
        host=ns.host, port=ns.port, webui_port=ns.webui_port,
        work_dir=os.path.abspath(ns.work_dir or work_dir()),
        cleanup_enabled=cleanup_enabled, cleanup_interval=cleanup_interval, app_data_ttl=app_data_ttl,
    )
    return config, ns


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)  # work dirs, executor and driver output, app files: this user only
    raise_fd_limit()  # its fork server's executors inherit it
    config, ns = parse_config(argv)
    setup_daemon_logging(ns.log_file)
    secret = load_secret(conf_dir())
    if not secret:
        log.error("No cluster secret: set SPARKCTL_SECRET or put the master's secret file in %s/secret",
                  conf_dir())
        return 1
    worker = Worker(config, secret, ns.ready_fd)
    # Handlers before start(): a SIGTERM during startup must still be a graceful stop.
    signal.signal(signal.SIGTERM, lambda *_: worker.request_stop())
    signal.signal(signal.SIGINT, lambda *_: worker.request_stop())
    try:
        worker.start()
    except (OSError, SparkctlError) as e:
        log.error("Worker cannot start: %s", e)
        return 1
    worker.wait()
    worker.stop()
    return worker.exit_code


if __name__ == "__main__":
    sys.exit(main())
