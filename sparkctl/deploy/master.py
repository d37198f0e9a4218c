"""The standalone master daemon: ``python -m sparkctl.deploy.master``.

It is the network around :class:`~sparkctl.deploy.master_state.MasterStateMachine`: an
authenticated rpc server whose connections each get a role from their first message,
a timer that expires silent workers, and the read-only web UI.

```
 worker ──RegisterWorker, WorkerHeartbeat, Executor/DriverStateChanged─▶ ┐
 driver ──RegisterApplication, UnregisterApplication───────────────────▶ ├─ event ─▶ state machine
 client ──RequestMasterState, RequestKillApplication, RequestSubmit/ ──▶ │  (one lock)     │
          Kill/StatusDriver                                              │                 │
 timer (every worker timeout / 4, or when a relaunch is due) ──────────▶ ┘                 │ actions
                                                                                           ▼
 worker ◀── LaunchExecutor, KillExecutor, ApplicationFinished, ◀────── per-connection outbox queues
            LaunchDriver, KillDriver                                                 │
 driver ◀── ExecutorAdded, ExecutorUpdated, WorkerRemoved, ApplicationRemoved ◀──────┤
 client ◀── MasterState, SubmitDriverResponse, KillDriverResponse, DriverStatusResponse ◀┘
```

A connection's role is fixed by its first message: ``RegisterWorker`` (a worker),
``RegisterApplication`` (a driver), or one of the requests of a client (``sparkctl
status`` or ``sparkctl submit``), answered one reply per request until it closes. A
client that asks for a driver's status with ``follow`` also gets a new
``DriverStatusResponse`` whenever that driver changes, until it ends. A worker or driver
is gone when its connection closes.

Every connection is read by one dispatcher thread (:mod:`sparkctl.deploy.dispatcher`),
not a thread each: 5,000 workers on loopback held 10,000 threads and 860 MB that way.
Messages to workers and drivers are queued, under the lock, on a per-connection outbox
drained by a sender thread that runs only while the queue is not empty: the order of
messages to one peer is the order the state machine decided, and a peer that stops
reading stalls only its own queue, never the lock or the dispatcher.
"""
from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from sparkctl.conf import SparkConf, conf_dir, load_defaults_file
from sparkctl.deploy.master_state import (
    DEFAULT_MAX_EXECUTOR_RETRIES,
    finish_json,
    Action,
    BindDriver,
    BindWorker,
    DisconnectWorker,
    DriverChanged,
    Log,
    MasterStateMachine,
    Reply,
    SendToDriver,
    SendToWorker,
)
from sparkctl.deploy.messages import (
    FINAL_DRIVER_STATES,
    DriverStateChanged,
    ExecutorStateChanged,
    MasterState,
    RegisterApplication,
    RegisterWorker,
    RequestDriverStatus,
    RequestKillApplication,
    RequestKillDriver,
    RequestMasterState,
    RequestSubmitDriver,
    UnregisterApplication,
    WorkerHeartbeat,
)
from sparkctl.deploy.webui import (
    HISTORY_SERVER_URL_KEY,
    StatusServer,
    kill_token,
    render_master_page,
    start_status_server,
)
from sparkctl.errors import ConfigError, ProtocolError, RpcTimeoutError
from sparkctl.deploy.recovery import LEGACY_SNAPSHOT_FILE, Journal
from sparkctl.deploy.dispatcher import Deferred, Dispatcher, Outbox
from sparkctl.rpc import Connection, Server, create_secret_file, load_secret
from sparkctl.util.processes import raise_fd_limit

__all__ = ["MasterDaemon", "MasterSettings", "default_host", "read_settings", "main", "SNAPSHOT_FILE"]

log = logging.getLogger("sparkctl.master")

DEFAULT_PORT = 7077
DEFAULT_WEBUI_PORT = 8080
#: How long a fresh connection may stay silent before its first message decides its role.
FIRST_MESSAGE_TIMEOUT = 30.0
#: Seconds before a recovery journal that could not be written is started again (from the whole state).
JOURNAL_RETRY_INTERVAL = 30.0
#: The whole-state file older masters kept in --recovery-dir (read once, then replaced by a journal).
SNAPSHOT_FILE = LEGACY_SNAPSHOT_FILE
#: First messages of a client connection (status, submission, driver control).
# UnregisterApplication also comes as a one-off request: from a driver that ends while its
# connection to a restarted master is still being re-established.
_CLIENT_REQUESTS = (RequestMasterState, RequestKillApplication, RequestSubmitDriver, RequestKillDriver,
                    RequestDriverStatus, UnregisterApplication)


def default_host() -> str:
    """This host's name's address if it is a loopback one, else 127.0.0.1.

    A master listens on loopback unless told otherwise (``--host``): exposing a daemon
    that runs pickled work to the network must be a deliberate choice.
    """
    try:
        addr = socket.gethostbyname(socket.gethostname())
        if ipaddress.ip_address(addr).is_loopback:
            return addr
    except (OSError, ValueError):
        pass
    return "127.0.0.1"


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class MasterSettings:
    """The master's tunables, from the defaults file."""

    def __init__(self, worker_timeout: float = 60.0, spread_out: bool = True,
                 max_executor_retries: int = DEFAULT_MAX_EXECUTOR_RETRIES, kill_enabled: bool = False,
                 history_server_url: str = "") -> None:
        if worker_timeout <= 0:
            raise ConfigError(f"spark.worker.timeout must be positive, not {worker_timeout:g}")
        self.worker_timeout = worker_timeout
        self.spread_out = spread_out
        self.max_executor_retries = max_executor_retries
        self.kill_enabled = kill_enabled  # spark.ui.killEnabled: kill buttons on the web UI
        # spark.master.ui.historyServerUrl: where the page links completed applications
        self.history_server_url = history_server_url


def _configured_recovery_dir() -> str | None:
    """Spark's ``spark.deploy.recoveryMode FILESYSTEM`` + ``spark.deploy.recoveryDirectory``."""
    values = load_defaults_file()
    mode = values.get("spark.deploy.recoveryMode", "NONE").upper()
    if mode == "NONE":
        return None
    if mode != "FILESYSTEM":
        raise ConfigError(f"spark.deploy.recoveryMode={mode!r} is not supported: use NONE or FILESYSTEM")
    directory = values.get("spark.deploy.recoveryDirectory")
    if not directory:
        raise ConfigError("spark.deploy.recoveryMode=FILESYSTEM needs spark.deploy.recoveryDirectory")
    return directory


def read_settings(values: dict[str, str] | None = None) -> MasterSettings:
    """Settings from *values* (default: the conf dir's sparkctl-defaults.conf)."""
    conf = SparkConf.from_values(load_defaults_file() if values is None else values)
    return MasterSettings(conf.get_duration("spark.worker.timeout"), conf.get_bool("spark.deploy.spreadOut", True),
                          conf.get_int("spark.deploy.maxExecutorRetries", DEFAULT_MAX_EXECUTOR_RETRIES),
                          conf.get_bool("spark.ui.killEnabled", False),
                          conf.get(HISTORY_SERVER_URL_KEY) or "")


class MasterDaemon:
    """The master: rpc server, timeout timer and web UI around the state machine.

    Usable in-process too (tests, a local cluster): ``MasterDaemon(...).start()``, then
    :attr:`master_url`, :attr:`webui_url`, :meth:`state_json`, :meth:`stop`.
    """

    def __init__(self, host: str, port: int, webui_port: int, secret: bytes,
                 settings: MasterSettings | None = None, *, recovery_dir: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.host = host
        self.port = port
        self.webui_port = webui_port
        self.settings = settings or MasterSettings()
        self.recovery_dir = recovery_dir
        self._secret = secret
        self._clock = clock
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: Server | None = None
        # One thread reads every connection (see sparkctl.deploy.dispatcher).
        self._dispatcher = Dispatcher("master")
        self._webui: StatusServer | None = None
        self._timer: threading.Thread | None = None
        self._state = MasterStateMachine(spread_out=self.settings.spread_out,
                                         worker_timeout=self.settings.worker_timeout,
                                         max_executor_retries=self.settings.max_executor_retries)
        self._workers: dict[str, Outbox] = {}
        self._drivers: dict[str, Outbox] = {}
        # Clients following a driver (``submit --wait``): driver id -> their outboxes.
        self._followers: dict[str, list[Outbox]] = {}
        # The timer sleeps until _timer_target (a due relaunch) at the latest; an earlier one wakes it.
        self._timer_wake = threading.Event()
        self._timer_target: float | None = None
        self._journal: Journal | None = None
        self._journal_retry_at = 0.0  # time.monotonic() before which a failed journal is not reopened
        self._compaction: threading.Thread | None = None
        self.master_url = ""
        self.webui_url = ""

    # ------------------------------------------------------------- lifecycle
    def start(self) -> MasterDaemon:
        # Held until the URLs are known and any snapshot restored: a peer connecting in the
        # meantime waits for it instead of seeing a half-made state (or having its
        # registration wiped by the restore).
        with self._lock:
            self._dispatcher.start()
            self._server = Server(self.host, self.port, self._secret, self._on_connection, name="master").start()
            try:
                port = self._server.address[1]
                self.master_url = f"spark://{_format_host(self.host)}:{port}"
                history = self.settings.history_server_url
                if self.settings.kill_enabled:
                    token = kill_token(self._secret)
                    self._webui = start_status_server(
                        self.host, self.webui_port, self.state_json, "sparkctl master",
                        lambda title, doc: render_master_page(title, doc, token, history), self._web_kill, token)
                else:
                    self._webui = start_status_server(
                        self.host, self.webui_port, self.state_json, "sparkctl master",
                        lambda title, doc: render_master_page(title, doc, history_url=history))
                self.webui_url = f"http://{_format_host(self.host)}:{self._webui.port}"
            except BaseException:
                self._server.stop()
                self._dispatcher.stop()
                raise
            self._state.master_url = self.master_url
            self._state.webui_url = self.webui_url
            self._recover()
        self._timer = threading.Thread(target=self._tick, name="master-timeouts", daemon=True)
        self._timer.start()
        log.info("Master listening on %s, web UI at %s (worker timeout %g s, spreadOut %s)",
                 self.master_url, self.webui_url, self.settings.worker_timeout, self.settings.spread_out)
        return self

    def stop(self) -> None:
        """Stop serving: close every connection, the web UI and the timer. Idempotent."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._timer_wake.set()
        log.info("Master shutting down")
        if self._webui is not None:
            self._webui.stop()
        if self._server is not None:
            self._server.stop()
        self._dispatcher.stop()
        if self._timer is not None:
            self._timer.join(5.0)
        with self._lock:
            compaction = self._compaction
        if compaction is not None:
            compaction.join(30.0)
        with self._lock:
            if self._journal is not None:
                self._journal.close()
        log.info("Master stopped")

    def _web_kill(self, kind: str, ident: str) -> str:
        """A kill from the web UI (spark.ui.killEnabled, token already checked)."""
        with self._lock:
            now = self._clock()
            if kind == "app":
                if ident not in self._state.apps:
                    return f"no application {ident}"
                self._carry_out(self._state.kill_application(ident, now), None)
            else:
                self._carry_out(self._state.kill_driver(ident, now), None)
        return f"kill requested for {kind} {ident}"

    def state_json(self) -> dict[str, Any]:
        # Only a copy is made under the lock; the document is built after releasing it.
        with self._lock:
            parts = self._state.json_parts(self._clock(), self.master_url)
        return finish_json(parts)

    def _tick(self) -> None:
        # A quarter of the timeout: a worker is declared DEAD at most 1.25 timeouts after
        # its last heartbeat. Sooner when a supervised driver's relaunch delay ends first.
        interval = max(self.settings.worker_timeout / 4, 0.05)
        while not self._stopping.is_set():
            with self._lock:
                self._timer_target = self._state.next_wakeup()
                wait = interval
                if self._timer_target is not None:
                    wait = min(interval, max(self._timer_target - self._clock(), 0.0) + 0.01)
            self._timer_wake.wait(wait)
            self._timer_wake.clear()
            if self._stopping.is_set():
                return
            try:
                with self._lock:
                    self._carry_out(self._state.check_worker_timeouts(self._clock()), None)
            except Exception:
                log.exception("worker timeout check failed")

    # ------------------------------------------------------------- actions
    def _carry_out(self, actions: list[Action], reply_to: Outbox | None) -> None:
        """Carry out the state machine's actions; called with the lock held (queueing never blocks)."""
        changed_drivers: dict[str, None] = {}
        for a in actions:
            if isinstance(a, DriverChanged):
                changed_drivers[a.driver_id] = None
            elif isinstance(a, Log):
                log.log(a.level, "%s", a.text)
            elif isinstance(a, SendToWorker):
                self._send(self._workers.get(a.worker_id), a.msg, f"worker {a.worker_id}")
            elif isinstance(a, SendToDriver):
                self._send(self._drivers.get(a.app_id), a.msg, f"the driver of {a.app_id}")
            elif isinstance(a, Reply):
                self._send(reply_to, a.msg, "the requesting peer")
            elif isinstance(a, BindWorker) and reply_to is not None:
                self._workers[a.worker_id] = reply_to
            elif isinstance(a, BindDriver) and reply_to is not None:
                self._drivers[a.app_id] = reply_to
            elif isinstance(a, DisconnectWorker):
                outbox = self._workers.pop(a.worker_id, None)
                if outbox is not None:
                    log.info("Closing the connection of worker %s: %s", a.worker_id, a.reason)
                    outbox.close()
        # Once per driver, after the whole event: followers see where it ended up.
        for driver_id in changed_drivers:
            self._tell_followers(driver_id)
        wake = self._state.next_wakeup()
        if wake is not None and (self._timer_target is None or wake < self._timer_target):
            self._timer_wake.set()
        self._persist()

    def _tell_followers(self, driver_id: str) -> None:
        followers = self._followers.get(driver_id)
        if not followers:
            return
        status = self._state.driver_status(driver_id)
        for outbox in followers:
            outbox.put(status)
        if not status.found or status.state in FINAL_DRIVER_STATES:
            del self._followers[driver_id]  # nothing more will happen to it

    @staticmethod
    def _send(outbox: Outbox | None, msg: Any, who: str) -> None:
        if outbox is None:
            log.debug("not sending a %s to %s: not connected", type(msg).__name__, who)
        else:
            outbox.put(msg)

    # ------------------------------------------------------------- recovery
    def _recover(self) -> None:
        """Restore what the recovery directory holds, then journal from the restored state on."""
        if self.recovery_dir is None:
            return
        journal = Journal(self.recovery_dir)
        try:
            data = journal.load()
            if data is not None:
                actions = self._state.restore(data, self._clock())
                self._journal = journal  # opened below: carrying out the restore writes nothing yet
                self._carry_out(actions, None)
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.error("Cannot recover from %s (%s); starting with an empty state", self.recovery_dir, e)
        self._open_journal(journal)

    def _open_journal(self, journal: Journal) -> None:
        """Start a history from the whole current state (at start-up, or after a failed write)."""
        try:
            self._state.track_changes = True
            self._state.take_changes()  # the snapshot below holds them
            journal.start(self._state.snapshot())
            self._journal = journal
        except OSError as e:
            self._journal = None
            self._journal_retry_at = time.monotonic() + JOURNAL_RETRY_INTERVAL
            log.error("Cannot write the recovery journal in %s (trying again in %g s): %s", self.recovery_dir,
                      JOURNAL_RETRY_INTERVAL, e)

    def _persist(self) -> None:
        """Append what the last event changed to the journal; called with the lock held."""
        if self.recovery_dir is None or self._stopping.is_set():
            return
        if self._journal is None:
            # Recovery enabled after start-up (a benchmark does), or a write failed: start over
            # from the whole state, once no compaction still works on the old files.
            if self._compaction is None and time.monotonic() >= self._journal_retry_at:
                self._open_journal(Journal(self.recovery_dir))
            return
        try:
            self._journal.append(self._state.take_changes())
            if self._journal.wants_compaction() and self._compaction is None:
                through = self._journal.rotate()
                self._compaction = threading.Thread(target=self._compact, args=(self._journal, through),
                                                    name="master-journal-compaction", daemon=True)
                self._compaction.start()
        except (OSError, TypeError, ValueError) as e:
            # The journal now misses what this event changed: it is abandoned, and the next
            # attempt writes the whole state again.
            log.error("Cannot append to the recovery journal in %s (starting it again in %g s): %s",
                      self.recovery_dir, JOURNAL_RETRY_INTERVAL, e)
            self._journal.close()
            self._journal = None
            self._journal_retry_at = time.monotonic() + JOURNAL_RETRY_INTERVAL

    def _compact(self, journal: Journal, through: int) -> None:
        try:
            journal.compact(through)
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.error("Cannot compact the recovery journal in %s: %s", self.recovery_dir, e)
        finally:
            with self._lock:
                self._compaction = None

    # ------------------------------------------------------------- connections
    def _on_connection(self, conn: Connection) -> None:
        try:
            first = conn.recv(timeout=FIRST_MESSAGE_TIMEOUT)
        except RpcTimeoutError:
            log.warning("%s sent nothing within %g s of connecting; closing it", conn.peer, FIRST_MESSAGE_TIMEOUT)
            conn.close()
            return
        except ProtocolError as e:  # includes ConnectionClosed
            log.warning("Dropping connection from %s before it said who it is: %s", conn.peer, e)
            conn.close()
            return
        if isinstance(first, RegisterWorker):
            self._serve_worker(conn, first)
        elif isinstance(first, RegisterApplication):
            self._serve_driver(conn, first)
        elif isinstance(first, _CLIENT_REQUESTS):
            self._serve_client(conn, first)
        else:
            log.warning("%s opened with a %s; expected RegisterWorker, RegisterApplication or a client request; "
                        "closing it", conn.peer, type(first).__name__)
            conn.close()

    def _serve_worker(self, conn: Connection, reg: RegisterWorker) -> None:
        worker_id = reg.worker_id
        outbox = Outbox(conn, f"master-to-worker-{worker_id}")
        with self._lock:
            self._carry_out(self._state.register_worker(reg, self._clock()), outbox)
            registered = self._workers.get(worker_id) is outbox
        if not registered:
            outbox.close()  # after the RegisterWorkerFailed reply
            return

        def handle(msg: object) -> None:
            with self._lock:
                if self._workers.get(worker_id) is not outbox:
                    return  # replaced by a newer registration or declared DEAD: stale connection
                if isinstance(msg, WorkerHeartbeat):
                    if msg.worker_id != worker_id:
                        log.warning("Worker %s sent a heartbeat for %s; ignored", worker_id, msg.worker_id)
                        return
                    actions = self._state.worker_heartbeat(worker_id, self._clock())
                elif isinstance(msg, ExecutorStateChanged):
                    actions = self._state.executor_state_changed(worker_id, msg, self._clock())
                elif isinstance(msg, DriverStateChanged):
                    actions = self._state.driver_state_changed(worker_id, msg, self._clock())
                else:
                    raise ProtocolError(f"worker {worker_id} sent an unexpected {type(msg).__name__}")
                self._carry_out(actions, outbox)

        def closed(err: Exception | None) -> None:
            outbox.close()
            with self._lock:
                # While stopping, every connection closes because *we* close it: that is no
                # news about the worker (and must not reach a recovery snapshot).
                if self._stopping.is_set() or self._workers.get(worker_id) is not outbox:
                    return
                del self._workers[worker_id]
                log.info("Connection of worker %s (%s) closed%s", worker_id, conn.peer, f": {err}" if err else "")
                self._carry_out(self._state.worker_disconnected(worker_id, self._clock()), None)

        self._dispatcher.register(conn, handle, closed)

    def _serve_driver(self, conn: Connection, reg: RegisterApplication) -> None:
        outbox = Outbox(conn, f"master-to-driver-{conn.peer}")
        try:
            with self._lock:
                actions = self._state.register_application(reg, self._clock())
                self._carry_out(actions, outbox)
        except Exception as e:  # a malformed registration costs only its connection
            log.warning("Refused a malformed application registration from %s: %s: %s", conn.peer,
                        type(e).__name__, e)
            outbox.close()
            conn.close()
            return
        app_id = next((a.app_id for a in actions if isinstance(a, BindDriver)), None)
        if app_id is None:
            outbox.close()  # registration refused; the reply says why
            return

        def handle(msg: object) -> None:
            if not isinstance(msg, UnregisterApplication):
                raise ProtocolError(f"the driver of {app_id} sent an unexpected {type(msg).__name__}")
            if msg.app_id != app_id:
                log.warning("The driver of %s asked to unregister %s; ignored", app_id, msg.app_id)
                return
            with self._lock:
                self._carry_out(self._state.unregister_application(app_id, msg.state, self._clock()), outbox)

        def closed(err: Exception | None) -> None:
            outbox.close()
            with self._lock:
                if self._stopping.is_set() or self._drivers.get(app_id) is not outbox:
                    return  # we are closing it, or the driver re-registered on a newer connection
                del self._drivers[app_id]
                self._carry_out(self._state.driver_disconnected(app_id, self._clock()), None)

        self._dispatcher.register(conn, handle, closed)

    def _serve_client(self, conn: Connection, first: object) -> None:
        # Replies, and a follower's pushed driver updates, leave through one outbox: in
        # order, and a slow client only slows itself.
        outbox = Outbox(conn, f"master-to-client-{conn.peer}")

        def handle(msg: object) -> None:
            if isinstance(msg, RequestMasterState):
                # The copy is taken here, under the lock; the document is made by the
                # client's sender thread, not by the dispatcher that reads every connection.
                with self._lock:
                    parts = self._state.json_parts(self._clock(), self.master_url)
                outbox.put(Deferred(lambda: MasterState(finish_json(parts))))
                return
            if not isinstance(msg, _CLIENT_REQUESTS):
                raise ProtocolError(f"client sent an unexpected {type(msg).__name__}")
            with self._lock:
                now = self._clock()
                if isinstance(msg, RequestKillApplication):
                    self._carry_out(self._state.kill_application(msg.app_id, now), None)
                    parts = self._state.json_parts(now, self.master_url)
                    outbox.put(Deferred(lambda: MasterState(finish_json(parts))))
                elif isinstance(msg, RequestSubmitDriver):
                    self._carry_out(self._state.submit_driver(msg.desc, now), outbox)
                elif isinstance(msg, RequestKillDriver):
                    self._carry_out(self._state.kill_driver(msg.driver_id, now), outbox)
                elif isinstance(msg, UnregisterApplication):
                    self._carry_out(self._state.unregister_application(msg.app_id, msg.state, now), None)
                elif isinstance(msg, RequestDriverStatus):
                    status = self._state.driver_status(msg.driver_id)
                    outbox.put(status)
                    if msg.follow and status.found and status.state not in FINAL_DRIVER_STATES:
                        self._followers.setdefault(msg.driver_id, []).append(outbox)

        def closed(err: Exception | None) -> None:
            outbox.close()
            with self._lock:
                for driver_id, followers in list(self._followers.items()):
                    if outbox in followers:
                        followers.remove(outbox)
                        if not followers:
                            del self._followers[driver_id]

        try:
            handle(first)
        except Exception as e:  # ProtocolError, or fields of the wrong type: drop this client only
            if not isinstance(e, ProtocolError):
                log.warning("Dropped client %s: malformed %s: %s: %s", conn.peer, type(first).__name__,
                            type(e).__name__, e)
            outbox.close()
            conn.close()
            return
        self._dispatcher.register(conn, handle, closed)


# ----------------------------------------------------------------- command line
def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sparkctl.deploy.master",
                                description="Run a sparkctl standalone master.")
    p.add_argument("--host", default=None, help="address to listen on (default: a loopback address)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"rpc port, 0 = any free (default {DEFAULT_PORT})")
    p.add_argument("--webui-port", type=int, default=DEFAULT_WEBUI_PORT,
                   help=f"web UI port, 0 = any free (default {DEFAULT_WEBUI_PORT})")
    p.add_argument("--ready-fd", type=int, default=None,
                   help="file descriptor to write 'READY spark://HOST:PORT http://HOST:WEBUIPORT' to, then close")
    p.add_argument("--recovery-dir", default=None, help="directory for state snapshots, recovered at start")
    p.add_argument("--log-file", default=None, help="append logs here instead of stderr")
    return p.parse_args(argv)


def _setup_logging(path: str | None) -> None:
    from sparkctl.deploy.daemon import setup_daemon_logging
    setup_daemon_logging(path)  # rotated, and uncaught exceptions logged
    logging.getLogger("sparkctl.rpc").setLevel(logging.INFO)


def _signal_ready(fd: int | None, line: str) -> None:
    if fd is None:
        return
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)  # recovery snapshots and logs are for this user only
    raise_fd_limit()  # a connection from every worker, driver and client of a large cluster
    args = _parse_args(argv)
    try:
        _setup_logging(args.log_file)
    except OSError as e:
        print(f"sparkctl master: cannot open the log file: {e}", file=sys.stderr)
        return 1
    from sparkctl.deploy.daemon import stop_on_signals
    stop = stop_on_signals(log)
    try:
        secret = load_secret()
        if secret is None:
            directory = conf_dir()
            secret = create_secret_file(directory)
            log.info("No cluster secret configured; created %s", os.path.join(directory, "secret"))
        settings = read_settings()
        daemon = MasterDaemon(args.host or default_host(), args.port, args.webui_port, secret, settings,
                              recovery_dir=args.recovery_dir or _configured_recovery_dir()).start()
    except (ConfigError, OSError) as e:
        log.error("Cannot start the master: %s", e)
        if args.log_file:
            print(f"sparkctl master: {e}", file=sys.stderr)
        return 1
    try:
        line = f"READY {daemon.master_url} {daemon.webui_url}\n"
        try:
            _signal_ready(args.ready_fd, line)
        except OSError as e:
            log.warning("Cannot write to --ready-fd %s: %s", args.ready_fd, e)
        log.info("Master ready: %s", line.strip())
        # Woken now and then: a signal that another thread received runs its handler here.
        while not stop.wait(1.0):
            pass
    finally:
        daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
