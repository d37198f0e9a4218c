"""The standalone master's bookkeeping: workers, applications, executors, drivers. A state machine with no I/O.

The master daemon (:mod:`sparkctl.deploy.master`) feeds events in through the methods of
:class:`MasterStateMachine` (a worker registered, a heartbeat arrived, an executor
exited, a driver's connection closed, the timer ticked...) and carries out the actions
that come back: messages to send to a worker or a driver, a reply on the connection the
event arrived on, a worker connection to drop, log lines. Time is an argument (``now``,
seconds since the epoch), never read from a clock, so every rule here is a fast unit test.

```
 register_worker ─┐                           ┌─▶ SendToWorker(LaunchExecutor | KillExecutor
 worker_heartbeat │                           │                | ApplicationFinished)
 executor_state_  │   ┌────────────────────┐  ├─▶ SendToDriver(ExecutorAdded | ExecutorUpdated
   changed        ├──▶│ workers, apps,     │──┤                | WorkerRemoved | ApplicationRemoved)
 register_/unreg- │   │ executors; FIFO    │  ├─▶ Reply(RegisteredWorker | RegisteredApplication ...)
   ister_app...   │   │ schedule()         │  ├─▶ BindWorker / BindDriver / DisconnectWorker
 check_worker_    │   └────────────────────┘  ├─▶ DriverChanged(driver id)
   timeouts(now) ─┘                           └─▶ Log(level, text)
```
Cluster deploy mode feeds ``submit_driver``, ``kill_driver`` and ``driver_state_changed``
in the same way; ``LaunchDriver`` and ``KillDriver`` go out as :class:`SendToWorker`.

Scheduling follows Spark's ``Master.schedule``: applications are served first come, first
served; each takes what it still wants (``cores_max``, or everything when None) from the
ALIVE workers with room for one more executor, either spread over as many workers as
possible (``spread_out``) or packed onto as few as possible. An application that gets
nothing stays WAITING and is considered again whenever cores free up.

Drivers submitted in cluster deploy mode are placed before applications get executors
(as Spark does): each WAITING driver, in submission order, goes to the ALIVE worker with
the most free cores among those with room for its cores and memory, which it then holds
as an executor would. A supervised driver that exits non-zero, or whose worker is lost,
becomes WAITING again; quick failures in a row are relaunched with a growing delay, so a
driver that cannot start does not spin.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import replace
from typing import Any

from sparkctl.deploy.messages import (
    ALIVE,
    DEAD,
    ERROR,
    EXEC_FAILED,
    EXEC_KILLED,
    EXEC_RUNNING,
    EXITED,
    FAILED,
    FINAL_DRIVER_STATES,
    FINISHED,
    KILLED,
    LOST,
    RUNNING,
    SUBMITTED,
    UNKNOWN,
    WAITING,
    ApplicationDescription,
    ApplicationFinished,
    ApplicationRemoved,
    DriverDescription,
    DriverFile,
    DriverStateChanged,
    DriverStatusResponse,
    ExecutorAdded,
    ExecutorStateChanged,
    ExecutorUpdated,
    KillDriver,
    KillDriverResponse,
    KillExecutor,
    LaunchDriver,
    LaunchExecutor,
    RegisterApplication,
    RegisteredApplication,
    RegisteredWorker,
    RegisterWorker,
    RegisterWorkerFailed,
    SubmitDriverResponse,
    WorkerRemoved,
)
from sparkctl.deploy.master_info import (
    Action,
    ApplicationInfo,
    BindDriver,
    BindWorker,
    DisconnectWorker,
    DriverChanged,
    DriverInfo,
    ExecutorInfo,
    Log,
    Reply,
    SendToDriver,
    SendToWorker,
    WorkerInfo,
)
from sparkctl.deploy.recovery import (
    SNAPSHOT_VERSION,
    app_record,
    driver_from_record,
    driver_record,
    executor_record,
    worker_record,
)
from sparkctl.deploy.worker_index import WorkerIndex, plan_executors

__all__ = [
    "SendToWorker",
    "SendToDriver",
    "Reply",
    "BindWorker",
    "BindDriver",
    "DisconnectWorker",
    "DriverChanged",
    "Log",
    "Action",
    "ExecutorInfo",
    "WorkerInfo",
    "ApplicationInfo",
    "DriverInfo",
    "MasterStateMachine",
    "plan_executors",
    "DEFAULT_MAX_EXECUTOR_RETRIES",
    "DEFAULT_RETAINED_APPLICATIONS",
    "DEFAULT_RETAINED_DRIVERS",
    "SUPERVISE_STABLE_RUN",
    "EXECUTOR_STABLE_RUN",
    "supervise_delay",
    "valid_file_name",
    "DEAD_WORKER_PERSISTENCE",
    "SNAPSHOT_VERSION",
    "finish_json",
]

#: Spark's spark.deploy.maxExecutorRetries: consecutive executor failures before an app is failed.
DEFAULT_MAX_EXECUTOR_RETRIES = 10
#: Spark's spark.deploy.retainedApplications: completed apps kept for the UI and JSON.
DEFAULT_RETAINED_APPLICATIONS = 200
#: Spark's spark.deploy.retainedDrivers: completed drivers kept for the UI, JSON, --status and logs.
DEFAULT_RETAINED_DRIVERS = 200
#: A supervised driver that ran this long (seconds) before it failed is relaunched at once;
#: see :func:`supervise_delay` for quicker failures.
SUPERVISE_STABLE_RUN = 30.0
#: An executor that failed after running this long (seconds) starts a new count of failures
#: in a row. Spark resets the count when an executor reaches RUNNING, but a worker reports
#: RUNNING as soon as the process starts, so executors that die seconds later, each time
#: (a task that runs every executor out of memory), would never add up to the limit.
EXECUTOR_STABLE_RUN = 30.0
#: The longest pause between two launches of a supervised driver that keeps failing.
SUPERVISE_MAX_DELAY = 60.0
#: Spark's spark.dead.worker.persistence: a DEAD worker stays listed for (this + 1) timeouts.
DEAD_WORKER_PERSISTENCE = 15

_FINAL_EXECUTOR_STATES = (EXITED, EXEC_FAILED, EXEC_KILLED, LOST)
# The files of a driver become files in the worker's work dir: one plain, visible name each.
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_PY_FILE_SUFFIXES = (".py", ".zip", ".egg")


def valid_file_name(name: str) -> bool:
    """Whether *name* is safe as a file name in a driver's directory (no path, no dot file)."""
    return bool(_FILE_NAME.fullmatch(name)) and name not in ("stdout", "stderr", "conf")


def supervise_delay(quick_failures: int) -> float:
    """Seconds before relaunching a supervised driver after *quick_failures* quick failures in a row.

    The first is relaunched at once (a flaky start deserves a second chance without
    waiting); then 1 s, 2 s, 4 s... up to :data:`SUPERVISE_MAX_DELAY`.
    """
    if quick_failures <= 1:
        return 0.0
    return min(2.0 ** (quick_failures - 2), SUPERVISE_MAX_DELAY)



def _info(text: str) -> Log:
    return Log(logging.INFO, text)


def _warn(text: str) -> Log:
    return Log(logging.WARNING, text)


def _format_date(t: float) -> str:
    # Java's Date.toString, which Spark's JSON uses for "submitdate".
    return time.strftime("%a %b %d %H:%M:%S %Z %Y", time.localtime(t))


def _ms(t: float) -> int:
    return int(round(t * 1000))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"



# ----------------------------------------------------------------- the machine
class MasterStateMachine:
    """The master's workers, applications and executors; events in, actions out.

    Every event method returns the list of :data:`Action` to carry out, in order.
    """

    def __init__(
        self,
        master_url: str = "spark://127.0.0.1:7077",
        webui_url: str = "",
        *,
        spread_out: bool = True,
        worker_timeout: float = 60.0,
        max_executor_retries: int = DEFAULT_MAX_EXECUTOR_RETRIES,
        retained_applications: int = DEFAULT_RETAINED_APPLICATIONS,
        retained_drivers: int = DEFAULT_RETAINED_DRIVERS,
    ) -> None:
        self.master_url = master_url
        self.webui_url = webui_url
        self.spread_out = spread_out
        self.worker_timeout = worker_timeout
        self.max_executor_retries = max_executor_retries
        self.retained_applications = retained_applications
        self.retained_drivers = retained_drivers
        self.workers: dict[str, WorkerInfo] = {}  # registration order
        self.apps: dict[str, ApplicationInfo] = {}  # registration order = FIFO order
        self.completed: list[str] = []  # ids of finished apps still listed, oldest first
        self.next_app_number = 0
        self.drivers: dict[str, DriverInfo] = {}  # submission order = FIFO order
        self.completed_drivers: list[str] = []  # ids of ended drivers still listed, oldest first
        self.next_driver_number = 0
        self._index = WorkerIndex()  # ALIVE workers with free cores
        self._by_address: dict[tuple[str, int], str] = {}  # (host, port) -> worker id
        self._next_seq = 0
        # Executors that workers run for applications not registered (yet), by app id.
        self._orphans: dict[str, dict[tuple[str, tuple[str, str]], None]] = {}
        # What changed since take_changes(), when recording for recovery: (kind, key...) -> new entry.
        self.track_changes = False
        self._changed: dict[tuple[str, ...], bool] = {}
        self._meta_key: tuple[Any, ...] = ()

    # ------------------------------------------------------------- bookkeeping
    def _mark(self, *key: str, new: bool = False) -> None:
        """Note that the record *key* ("worker", id | "app", id | "exec", app id, executor id |
        "driver", id) changed, appeared (*new*) or went; :meth:`take_changes` says how."""
        if self.track_changes:
            self._changed[key] = self._changed.get(key, False) or new

    def _add_worker(self, worker: WorkerInfo) -> None:
        worker.seq = self._next_seq
        self._next_seq += 1
        worker.index = self._index
        self.workers[worker.id] = worker
        self._by_address[(worker.host, worker.port)] = worker.id
        self._index.update(worker)
        self._mark("worker", worker.id, new=True)

    def _forget_worker(self, worker: WorkerInfo) -> None:
        del self.workers[worker.id]
        if self._by_address.get((worker.host, worker.port)) == worker.id:
            del self._by_address[(worker.host, worker.port)]
        self._index.discard(worker)
        worker.index = None
        self._mark("worker", worker.id)

    def _grant(self, app: ApplicationInfo, ex: ExecutorInfo) -> None:
        self._mark("exec", app.id, ex.executor_id, new=ex.executor_id not in app.executors)
        app.add_executor(ex)

    def _ungrant(self, app: ApplicationInfo, executor_id: str) -> None:
        app.pop_executor(executor_id)
        self._mark("exec", app.id, executor_id)

    # ------------------------------------------------------------- queries
    @property
    def heartbeat_interval(self) -> float:
        # Four heartbeats per timeout, as Spark: one lost heartbeat never kills a worker.
        return self.worker_timeout / 4

    def active_apps(self) -> list[ApplicationInfo]:
        return [a for a in self.apps.values() if a.active]

    def alive_workers(self) -> list[WorkerInfo]:
        return [w for w in self.workers.values() if w.state == ALIVE]

    def _new_app_id(self, now: float) -> str:
        stamp = time.strftime("%Y%m%d%H%M%S", time.localtime(now))
        while True:
            app_id = f"app-{stamp}-{self.next_app_number:04d}"
            self.next_app_number += 1
            if app_id not in self.apps:
                return app_id

    # ------------------------------------------------------------- workers
    def register_worker(self, msg: RegisterWorker, now: float) -> list[Action]:
        """A worker (re-)registers. An entry with the same id or the same host:port is
        replaced; executors the worker lists (it outlived a master restart or a broken
        connection) are kept or re-adopted, the old entry's other executors are lost."""
        problem = self._invalid_worker(msg)
        if problem:
            return [_warn(f"Refusing to register worker {msg.worker_id!r} at {msg.host}:{msg.port}: {problem}"),
                    Reply(RegisterWorkerFailed(problem))]
        actions: list[Action] = [_info(
            f"Registering worker {msg.worker_id} at {msg.host}:{msg.port} with "
            f"{_plural(msg.cores, 'core')}, {msg.memory} MiB RAM")]
        listed = {(a, e): (c, m) for a, e, c, m in msg.executors}
        listed_drivers = {d: (c, m) for d, c, m in msg.drivers}
        kept: dict[tuple[str, str], ExecutorInfo] = {}
        kept_drivers: set[str] = set()
        olds = {w.id: w for w in (self.workers.get(msg.worker_id),
                                  self.workers.get(self._by_address.get((msg.host, msg.port), ""))) if w is not None}
        for old in sorted(olds.values(), key=lambda w: w.seq):
            for key in [k for k in old.executors if k in listed]:
                kept[key] = old.pop_executor(key)  # type: ignore[assignment]
            for driver_id in [d for d in old.drivers if d in listed_drivers]:
                old.pop_driver(driver_id)  # still running there: not lost with the old entry
                kept_drivers.add(driver_id)
            if old.state == ALIVE:
                actions += self._remove_worker(old, f"replaced by a new registration from {msg.host}:{msg.port}",
                                               now, announce=bool(old.executors))
            self._forget_worker(old)
        worker = WorkerInfo(msg.worker_id, msg.host, msg.port, msg.cores, msg.memory, msg.webui_port,
                            ALIVE, now)
        self._add_worker(worker)
        actions += [BindWorker(worker.id),
                    Reply(RegisteredWorker(self.master_url, self.webui_url, self.heartbeat_interval))]
        for key, (cores, memory) in listed.items():
            actions += self._adopt_executor(worker, kept.get(key), key, cores, memory, now)
        for driver_id, (cores, memory) in listed_drivers.items():
            actions += self._adopt_driver(worker, driver_id, driver_id in kept_drivers, cores, memory, now)
        return actions + self.schedule(now)

    @staticmethod
    def _invalid_worker(msg: RegisterWorker) -> str:
        if not msg.worker_id:
            return "the worker id is empty"
        if msg.cores < 1:
            return f"a worker needs at least 1 core, not {msg.cores}"
        if msg.memory < 1:
            return f"a worker needs at least 1 MiB of memory, not {msg.memory}"
        return ""

    def _adopt_executor(self, worker: WorkerInfo, ex: ExecutorInfo | None, key: tuple[str, str],
                        cores: int, memory: int, now: float) -> list[Action]:
        app_id, executor_id = key
        if ex is None:
            # Still running from before we (re)started; it has been working, so RUNNING.
            ex = ExecutorInfo(app_id, executor_id, worker.id, cores, memory, EXEC_RUNNING, running_since=0.0)
        ex.worker_id = worker.id
        app = self.apps.get(app_id)
        if app is not None and not app.active:
            return [_info(f"Worker {worker.id} still runs executor {ex.full_id} of finished application {app_id}; "
                          "killing it"), SendToWorker(worker.id, KillExecutor(app_id, executor_id))]
        worker.add_executor(ex)
        if app is None:
            ex.orphan_since = now
            self._orphans.setdefault(app_id, {})[(worker.id, key)] = None  # its driver may re-register soon; else reaped after a timeout
            return [_info(f"Worker {worker.id} runs executor {ex.full_id} of an application this master does not "
                          "know (yet); keeping it for its driver to re-register")]
        self._attach(app, ex)
        return [_info(f"Re-adopted executor {ex.full_id} on worker {worker.id} ({worker.address})")]

    def _attach(self, app: ApplicationInfo, ex: ExecutorInfo) -> None:
        ex.orphan_since = None
        stale = app.executors.get(ex.executor_id)
        if stale is not None and stale is not ex:
            # A restored record placed it on a worker entry that no longer matches: the
            # executor is where a worker now says it is, and must not be counted twice.
            holder = self.workers.get(stale.worker_id)
            if holder is not None:
                holder.pop_executor((app.id, stale.executor_id))
        self._grant(app, ex)
        if ex.executor_id.isdigit():
            app.next_executor_id = max(app.next_executor_id, int(ex.executor_id) + 1)
        self._refresh_app_state(app)

    def worker_heartbeat(self, worker_id: str, now: float) -> list[Action]:
        worker = self.workers.get(worker_id)
        if worker is None or worker.state != ALIVE:
            # Declared DEAD (or forgotten) while it was only slow: make it re-register.
            return [_warn(f"Got a heartbeat from worker {worker_id}, which is not registered as ALIVE; "
                          "asking it to re-register"),
                    DisconnectWorker(worker_id, "not registered as ALIVE: re-register")]
        worker.last_heartbeat = now
        return []

    def worker_disconnected(self, worker_id: str, now: float) -> list[Action]:
        """The worker's connection closed: it is gone (a live worker reconnects and re-registers)."""
        worker = self.workers.get(worker_id)
        if worker is None or worker.state != ALIVE:
            return []
        return self._remove_worker(worker, "its connection closed", now) + self.schedule(now)

    def check_worker_timeouts(self, now: float, timeout: float | None = None) -> list[Action]:
        """The periodic tick: workers silent for *timeout* seconds are DEAD; long-dead ones are
        forgotten; unclaimed executors and restored apps whose drivers never came back go."""
        timeout = self.worker_timeout if timeout is None else timeout
        actions: list[Action] = []
        changed = False
        forget_after = (DEAD_WORKER_PERSISTENCE + 1) * timeout
        for worker in list(self.workers.values()):
            silent = now - worker.last_heartbeat
            if worker.state == ALIVE and silent > timeout:
                actions += self._remove_worker(worker, f"no heartbeat for {silent:.0f} s (timeout {timeout:g} s)",
                                               now)
                changed = True
            elif worker.state == DEAD and silent > forget_after:
                actions.append(_info(f"Forgetting worker {worker.id} ({worker.address}), silent for more than "
                                     f"{forget_after:g} s"))
                self._forget_worker(worker)
        for worker, key, ex in self._orphans_of(list(self._orphans)):
            if now - ex.orphan_since > timeout:  # type: ignore[operator]
                worker.pop_executor(key)
                actions += [_info(f"No driver claimed executor {ex.full_id} on worker {worker.id} within "
                                  f"{timeout:g} s; killing it"),
                            SendToWorker(worker.id, KillExecutor(ex.app_id, ex.executor_id))]
                changed = True
        for app in self.active_apps():
            if app.awaiting_driver_since is not None and now - app.awaiting_driver_since > timeout:
                actions.append(_info(f"The driver of application {app.id} did not re-register within {timeout:g} s "
                                     "of the master's recovery"))
                actions += self._remove_app(app, FINISHED, now, tell_driver=False, reschedule=False)
                changed = True
        if any(d.state == WAITING and d.not_before is not None and d.not_before <= now
               for d in self.drivers.values()):
            changed = True  # a supervised driver's relaunch delay is over
        if changed:
            actions += self.schedule(now)
        return actions

    def _orphans_of(self, app_ids: list[str]) -> list[tuple[WorkerInfo, tuple[str, str], ExecutorInfo]]:
        """The unclaimed executors of *app_ids* that ALIVE workers still run, in the workers'
        registration order; entries no longer unclaimed are dropped on the way."""
        found = []
        for app_id in app_ids:
            entries = self._orphans.get(app_id, {})
            for worker_id, key in list(entries):
                worker = self.workers.get(worker_id)
                ex = worker.executors.get(key) if worker is not None and worker.state == ALIVE else None
                if worker is None or ex is None or ex.orphan_since is None:
                    del entries[(worker_id, key)]
                else:
                    found.append((worker, key, ex))
            if not entries:
                self._orphans.pop(app_id, None)
        found.sort(key=lambda f: f[0].seq)
        return found

    def _remove_worker(self, worker: WorkerInfo, reason: str, now: float, announce: bool = True) -> list[Action]:
        """Mark *worker* DEAD, take its executors from their apps and end (or requeue) its
        drivers; the caller reschedules."""
        actions: list[Action] = [_info(f"Removing worker {worker.id} on {worker.address}: {reason}")]
        worker.set_state(DEAD)
        self._mark("worker", worker.id)
        for driver in list(worker.drivers.values()):
            actions += self._driver_lost(driver, f"its worker {worker.id} was lost: {reason}", now)
        worker.clear_drivers()
        for ex in list(worker.executors.values()):
            app = self.apps.get(ex.app_id)
            if app is None or not app.active or app.executors.get(ex.executor_id) is not ex:
                continue
            self._ungrant(app, ex.executor_id)
            self._refresh_app_state(app)
            actions += [_info(f"Telling application {app.id} that executor {ex.executor_id} is lost with its worker"),
                        SendToDriver(app.id, ExecutorUpdated(ex.executor_id, LOST, f"worker {worker.id} lost: {reason}",
                                                             None, worker_lost=True))]
        worker.clear_executors()
        if announce:
            # Every driver hears of it (not only those with executors there): it forgets the
            # shuffle outputs it had located on that host.
            actions += [SendToDriver(app.id, WorkerRemoved(worker.id, worker.host, reason))
                        for app in self.active_apps() if app.awaiting_driver_since is None]
        actions.append(DisconnectWorker(worker.id, reason))
        return actions

    # ------------------------------------------------------------- applications
    def register_application(self, msg: RegisterApplication, now: float) -> list[Action]:
        desc = msg.app
        problem = self._invalid_app(desc)
        if problem:
            return [_warn(f"Refusing to register application {desc.name!r}: {problem}"),
                    Reply(ApplicationRemoved(f"registration refused: {problem}"))]
        app = self.apps.get(msg.app_id) if msg.app_id else None
        if app is not None and not app.active:
            # A driver reconnecting after its application ended here (it unregistered on
            # another connection, or the recovery timed out): it must not come back as a new one.
            return [_warn(f"Refusing to re-register application {app.id}: it is {app.state}"),
                    Reply(ApplicationRemoved(f"application {app.id} has already ended ({app.state})"))]
        if app is not None:
            # A driver reconnecting (e.g. to a restarted master) keeps its application.
            app.desc = desc
            app.awaiting_driver_since = None
            self._mark("app", app.id)
            self._refresh_app_state(app)
            actions: list[Action] = [_info(f"Application {app.id} ({desc.name}) re-registered from "
                                           f"{desc.driver_host}:{desc.driver_port}")]
        else:
            app_id = msg.app_id if msg.app_id else self._new_app_id(now)
            app = ApplicationInfo(app_id, desc, now)
            if msg.app_id:
                app.hosts = None  # a driver back after a master restart: where it ran is not known
            self.apps[app_id] = app
            self._mark("app", app_id, new=True)
            actions = [_info(f"Registered application {desc.name} with id {app_id} (driver at "
                             f"{desc.driver_host}:{desc.driver_port})"),
                       _info(f"Application {app_id} requests {self._describe_request(desc)}")]
        for worker, _, ex in self._orphans_of([app.id]):
            self._attach(app, ex)
            actions.append(_info(f"Re-adopted executor {ex.full_id} on worker {worker.id} ({worker.address})"))
        self._orphans.pop(app.id, None)
        actions += [BindDriver(app.id), Reply(RegisteredApplication(app.id, self.master_url))]
        return actions + self.schedule(now)

    @staticmethod
    def _invalid_app(desc: ApplicationDescription) -> str:
        if desc.executor_memory < 1:
            return f"executor memory must be at least 1 MiB, not {desc.executor_memory}"
        if desc.executor_cores is not None and desc.executor_cores < 1:
            return f"spark.executor.cores must be at least 1, not {desc.executor_cores}"
        if desc.cores_max is not None and desc.cores_max < 1:
            return f"spark.cores.max must be at least 1, not {desc.cores_max}"
        return ""

    @staticmethod
    def _describe_request(desc: ApplicationDescription) -> str:
        total = f"{_plural(desc.cores_max, 'core')} in all" if desc.cores_max is not None else "all available cores"
        if desc.executor_cores is None:
            return f"{total}: one executor per worker with its free cores and {desc.executor_memory} MiB"
        return f"{total}: executors of {_plural(desc.executor_cores, 'core')} and {desc.executor_memory} MiB each"

    def unregister_application(self, app_id: str, state: str, now: float) -> list[Action]:
        """The driver says it is done (normally FINISHED; FAILED or KILLED if it says so)."""
        app = self.apps.get(app_id)
        if app is None or not app.active:
            return [_warn(f"Unregister request for unknown or completed application {app_id}")]
        if state not in (FINISHED, FAILED, KILLED):
            state = FINISHED
        return [_info(f"Received unregister request from application {app_id} ({state})")] + \
            self._remove_app(app, state, now, tell_driver=False)

    def driver_disconnected(self, app_id: str, now: float) -> list[Action]:
        """The driver's connection closed. As Spark does, a vanished driver's app is FINISHED."""
        app = self.apps.get(app_id)
        if app is None or not app.active:
            return []
        return [_info(f"The driver of application {app_id} disconnected")] + \
            self._remove_app(app, FINISHED, now, tell_driver=False)

    def kill_application(self, app_id: str, now: float) -> list[Action]:
        app = self.apps.get(app_id)
        if app is None or not app.active:
            return [_warn(f"Asked to kill unknown or completed application {app_id}")]
        return [_info(f"Killing application {app_id} on request")] + \
            self._remove_app(app, KILLED, now, message=f"the master killed application {app_id} on request")

    def _remove_app(self, app: ApplicationInfo, state: str, now: float, *, message: str = "",
                    tell_driver: bool = True, reschedule: bool = True) -> list[Action]:
        actions: list[Action] = [_info(f"Removing application {app.id} ({app.desc.name}): {state}")]
        for ex in app.executors.values():
            worker = self.workers.get(ex.worker_id)
            if worker is not None and worker.pop_executor((app.id, ex.executor_id)) is not None:
                actions.append(SendToWorker(worker.id, KillExecutor(app.id, ex.executor_id)))
            self._mark("exec", app.id, ex.executor_id)
        app.clear_executors()
        app.state = state
        app.end_time = now
        app.awaiting_driver_since = None
        self._mark("app", app.id)
        if tell_driver:
            actions.append(SendToDriver(app.id, ApplicationRemoved(message or state)))
        # Every worker cleans up what it keeps for the app (work dirs), executors or not.
        # Only those that ran an executor of it have any, unless that is not known.
        if app.hosts is None:
            hosts = self.alive_workers()
        else:
            hosts = sorted((w for w in map(self.workers.get, app.hosts) if w is not None and w.state == ALIVE),
                           key=lambda w: w.seq)
        actions += [SendToWorker(w.id, ApplicationFinished(app.id)) for w in hosts]
        self.completed.append(app.id)
        while len(self.completed) > self.retained_applications:
            gone = self.completed.pop(0)
            self.apps.pop(gone, None)
            self._mark("app", gone)
        return actions + (self.schedule(now) if reschedule else [])

    # ------------------------------------------------------------- executors
    def executor_state_changed(self, worker_id: str, msg: ExecutorStateChanged, now: float) -> list[Action]:
        worker = self.workers.get(worker_id)
        key = (msg.app_id, msg.executor_id)
        ex = worker.executors.get(key) if worker is not None else None
        if worker is None or ex is None:
            # Typically the KILLED report of an executor we already freed with its app.
            return [Log(logging.DEBUG, f"State {msg.state} of unknown executor {msg.app_id}/{msg.executor_id} "
                                       f"from worker {worker_id}; ignored")]
        app = self.apps.get(msg.app_id)
        if app is not None and (not app.active or app.executors.get(msg.executor_id) is not ex):
            app = None
        if msg.state not in _FINAL_EXECUTOR_STATES:
            if msg.state == EXEC_RUNNING and ex.state != EXEC_RUNNING:
                ex.running_since = now
            ex.state = msg.state
            self._mark("exec", msg.app_id, msg.executor_id)
            if app is None:
                return []
            return [SendToDriver(app.id, ExecutorUpdated(msg.executor_id, msg.state, msg.message, msg.exit_code,
                                                         log_tail=msg.log_tail))]
        worker.pop_executor(key)
        ex.state = msg.state
        how = self._describe_exit(msg)
        clean = msg.state == EXEC_KILLED or (msg.state == EXITED and msg.exit_code == 0)
        actions: list[Action] = [Log(logging.INFO if clean else logging.WARNING,
                                     f"Executor {ex.full_id} on worker {worker.id} ({worker.address}) {how}")]
        if app is None:
            return actions + self.schedule(now)  # an orphan ended: only its resources matter
        self._ungrant(app, msg.executor_id)
        self._refresh_app_state(app)
        actions.append(SendToDriver(app.id, ExecutorUpdated(msg.executor_id, msg.state, msg.message, msg.exit_code,
                                                            log_tail=msg.log_tail)))
        # Spark counts every exit but a clean one (code 0) as a failure; a KILLED executor
        # was stopped on purpose (by a worker shutting down, or by us), which is no fault of the app.
        if not clean:
            ran_stably = ex.running_since is not None and now - ex.running_since >= EXECUTOR_STABLE_RUN
            # after a long run, earlier failures say nothing about this one: a new count
            app.failed_executors = 1 if ran_stably else app.failed_executors + 1
            app.last_failure = f"executor {ex.full_id} on {worker.host} {how}"
            app.last_log_tail = msg.log_tail
            self._mark("app", app.id)
            if (self._out_of_retries(app) and app.failed_executors == max(self.max_executor_retries, 1)
                    and any(e.state == EXEC_RUNNING for e in app.executors.values())):
                # (Without a running executor, schedule() fails the app right below.)
                actions.append(_warn(
                    f"Application {app.id} had {app.failed_executors} executor failures in a row; "
                    "it keeps its running executors but gets no new ones"))
        return actions + self.schedule(now)

    @staticmethod
    def _describe_exit(msg: ExecutorStateChanged) -> str:
        text = {EXITED: "exited", EXEC_FAILED: "failed", EXEC_KILLED: "was killed", LOST: "was lost"}[msg.state]
        if msg.exit_code is not None:
            text += f" with code {msg.exit_code}"
        return f"{text}: {msg.message}" if msg.message else text

    def _out_of_retries(self, app: ApplicationInfo) -> bool:
        """Whether the app gets no new executors; as in Spark, a negative
        spark.deploy.maxExecutorRetries never gives up."""
        return 0 <= self.max_executor_retries <= app.failed_executors and app.failed_executors > 0

    def _failure_message(self, app: ApplicationInfo) -> str:
        text = (f"Application {app.id} failed: its executors failed {app.failed_executors} times in a row "
                f"(spark.deploy.maxExecutorRetries={self.max_executor_retries}); the last, {app.last_failure}")
        tail = app.last_log_tail.strip()
        return f"{text}. Its log ends with:\n{tail}" if tail else f"{text} (it left no log output)"

    # ------------------------------------------------------------- drivers (cluster deploy mode)
    def _new_driver_id(self, now: float) -> str:
        stamp = time.strftime("%Y%m%d%H%M%S", time.localtime(now))
        while True:
            driver_id = f"driver-{stamp}-{self.next_driver_number:04d}"
            self.next_driver_number += 1
            if driver_id not in self.drivers:
                return driver_id

    def submit_driver(self, desc: DriverDescription, now: float) -> list[Action]:
        """A submission client hands over a driver to run on some worker."""
        problem = self._invalid_driver(desc)
        if problem:
            return [_warn(f"Refusing to accept driver {desc.app_file.name!r}: {problem}"),
                    Reply(SubmitDriverResponse(False, None, problem))]
        driver = DriverInfo(self._new_driver_id(now), desc, now)
        self.drivers[driver.id] = driver
        self._mark("driver", driver.id, new=True)
        how = f"{_plural(desc.cores, 'core')}, {desc.memory} MiB" + (", supervised" if desc.supervise else "")
        actions: list[Action] = [_info(f"Accepted driver {driver.id} ({desc.app_file.name}; {how})"),
                                 Reply(SubmitDriverResponse(True, driver.id, f"driver {driver.id} submitted")),
                                 DriverChanged(driver.id)]
        return actions + self.schedule(now)

    @staticmethod
    def _invalid_driver(desc: DriverDescription) -> str:
        if desc.cores < 1:
            return f"a driver needs at least 1 core, not {desc.cores}"
        if desc.memory < 1:
            return f"a driver needs at least 1 MiB of memory, not {desc.memory}"
        name = desc.app_file.name
        if not (valid_file_name(name) and name.endswith(".py")):
            return f"the application file name {name!r} is not a plain .py file name"
        names = [name]
        for f in desc.py_files:
            if not (valid_file_name(f.name) and f.name.endswith(_PY_FILE_SUFFIXES)):
                return f"the py-file name {f.name!r} is not a plain .py, .zip or .egg file name"
            if f.name in names:
                return f"two files are named {f.name!r}"
            names.append(f.name)
        for kind, shipped in (("file", desc.files), ("archive", desc.archives)):
            seen: set[str] = set()
            for f in shipped:
                if not valid_file_name(f.name) or f.name in seen:
                    return f"the {kind} name {f.name!r} is not a plain file name, or is given twice"
                seen.add(f.name)
        if desc.archive_aliases and (len(desc.archive_aliases) != len(desc.archives)
                                     or any(a and not valid_file_name(a) for a in desc.archive_aliases)):
            return "the archives' aliases are not plain names, one for each archive"
        return ""

    def kill_driver(self, driver_id: str, now: float) -> list[Action]:
        """A client asks to kill a driver: at once if it waits, else through its worker."""
        driver = self.drivers.get(driver_id)
        if driver is None or not driver.active:
            why = f"driver {driver_id} is already {driver.state}" if driver else \
                f"no driver {driver_id} is known to this master"
            return [_warn(f"Cannot kill driver {driver_id}: {why}"), Reply(KillDriverResponse(driver_id, False, why))]
        if driver.state == WAITING:
            return [Reply(KillDriverResponse(driver_id, True, f"driver {driver_id} killed before it was launched"))] + \
                self._end_driver(driver, KILLED, now, "killed on request before it was launched")
        driver.kill_requested = True
        self._mark("driver", driver.id)
        return [_info(f"Killing driver {driver_id} on worker {driver.worker_id} on request"),
                SendToWorker(driver.worker_id, KillDriver(driver_id)),
                Reply(KillDriverResponse(driver_id, True,
                                         f"asked worker {driver.worker_id} to kill driver {driver_id}"))]

    def driver_state_changed(self, worker_id: str, msg: DriverStateChanged, now: float) -> list[Action]:
        """A worker reports that a driver it was given runs, or ended."""
        worker = self.workers.get(worker_id)
        driver = self.drivers.get(msg.driver_id)
        if worker is None or driver is None or worker.drivers.get(driver.id) is not driver:
            if msg.state == RUNNING and worker is not None:
                # A copy we no longer count on (ended, or relaunched elsewhere while this
                # worker was out of touch): two copies of one driver must not both run.
                return [_warn(f"Worker {worker_id} runs driver {msg.driver_id}, which is not placed there; "
                              "killing that copy"), SendToWorker(worker_id, KillDriver(msg.driver_id))]
            return [Log(logging.DEBUG, f"State {msg.state} of driver {msg.driver_id} from worker {worker_id}, "
                                       "where it is not placed; ignored")]
        self._mark("driver", driver.id)
        if msg.state not in FINAL_DRIVER_STATES:
            driver.state = RUNNING
            return [_info(f"Driver {driver.id} is RUNNING on worker {worker.id} ({msg.message or worker.address})"),
                    DriverChanged(driver.id)]
        worker.pop_driver(driver.id)
        driver.exit_code = msg.exit_code
        driver.log_tail = msg.log_tail
        how = msg.message or msg.state.lower()
        if msg.state == FINISHED:
            actions = self._end_driver(driver, FINISHED, now, how)
        elif driver.kill_requested:
            actions = self._end_driver(driver, KILLED, now, how if msg.state == KILLED else f"killed on request; {how}")
        elif driver.desc.supervise:
            ran = now - driver.start_time if driver.start_time is not None else 0.0
            driver.quick_failures = driver.quick_failures + 1 if ran < SUPERVISE_STABLE_RUN else 1
            actions = self._relaunch_driver(driver, how, now, supervise_delay(driver.quick_failures))
        else:
            actions = self._end_driver(driver, msg.state, now, how)
        return actions + self.schedule(now)

    def _driver_lost(self, driver: DriverInfo, why: str, now: float) -> list[Action]:
        """*driver*'s worker is gone, and the driver with it; the caller reschedules."""
        if driver.kill_requested:
            return self._end_driver(driver, KILLED, now, f"killed on request; {why}")
        if driver.desc.supervise:
            # No fault of the driver: relaunched at once, and not counted as a quick failure.
            return self._relaunch_driver(driver, why, now, 0.0)
        return self._end_driver(driver, ERROR, now, why)

    def _relaunch_driver(self, driver: DriverInfo, why: str, now: float, delay: float) -> list[Action]:
        self._mark("driver", driver.id)
        driver.state = WAITING
        driver.not_before = now + delay if delay > 0 else None
        when = f" in {delay:g} s" if delay > 0 else ""
        driver.message = f"{why}; relaunching it{when} (supervised)"
        return [_warn(f"Driver {driver.id} {why}; relaunching it{when} (supervised, launch {driver.launches + 1})"),
                DriverChanged(driver.id)]

    def _end_driver(self, driver: DriverInfo, state: str, now: float, message: str) -> list[Action]:
        self._mark("driver", driver.id)
        driver.state = state
        driver.end_time = now
        driver.message = message
        driver.not_before = None
        # The files are needed only to launch it again; an ended driver keeps their names.
        desc = driver.desc
        driver.desc = replace(desc, app_file=DriverFile(desc.app_file.name, b""),
                              py_files=[DriverFile(f.name, b"") for f in desc.py_files],
                              files=[DriverFile(f.name, b"") for f in desc.files],
                              archives=[DriverFile(f.name, b"") for f in desc.archives])
        self.completed_drivers.append(driver.id)
        while len(self.completed_drivers) > self.retained_drivers:
            gone = self.completed_drivers.pop(0)
            self.drivers.pop(gone, None)
            self._mark("driver", gone)
        level = logging.INFO if state in (FINISHED, KILLED) else logging.WARNING
        return [Log(level, f"Driver {driver.id} {state}: {message}"), DriverChanged(driver.id)]

    def _adopt_driver(self, worker: WorkerInfo, driver_id: str, kept: bool, cores: int, memory: int,
                      now: float) -> list[Action]:
        """A (re-)registering worker lists *driver_id* as running there (or ended, not yet reported)."""
        driver = self.drivers.get(driver_id)
        if driver is None:
            # Running from before this master started without a record of it: count its
            # resources; its end will be reported like any other.
            desc = DriverDescription(DriverFile("(unknown)", b""), [], [], {}, cores, memory)
            driver = DriverInfo(driver_id, desc, now, RUNNING, worker.id, start_time=now, launches=1,
                                message="found running on a worker after a master restart")
            self.drivers[driver_id] = driver
            self._mark("driver", driver_id, new=True)
        elif not (kept or driver.state == WAITING):
            # Ended, or relaunched elsewhere, while this worker was out of touch.
            return [_info(f"Worker {worker.id} still runs driver {driver_id}, which is {driver.state}"
                          + (f" on worker {driver.worker_id}" if driver.state in (SUBMITTED, RUNNING) else "")
                          + "; killing that copy"), SendToWorker(worker.id, KillDriver(driver_id))]
        elif driver.state == WAITING:
            # Requeued when we lost touch with the worker, yet it kept running: keep that run.
            driver.not_before = None
            driver.message = ""
        # Listed means launched, even if the RUNNING report was lost with the connection.
        driver.state = RUNNING
        driver.worker_id = worker.id
        worker.add_driver(driver)
        self._mark("driver", driver_id)
        return [_info(f"Re-adopted driver {driver_id} on worker {worker.id} ({worker.address})"),
                DriverChanged(driver_id)]

    def driver_status(self, driver_id: str) -> DriverStatusResponse:
        """What ``sparkctl submit --status`` shows (and ``logs`` needs: where it ran)."""
        driver = self.drivers.get(driver_id)
        if driver is None:
            return DriverStatusResponse(driver_id, False, message=f"no driver {driver_id} is known to this master")
        worker = self.workers.get(driver.worker_id)
        message = driver.message
        if driver.state == WAITING and not message:
            message = self._driver_waiting_reason(driver)
        return DriverStatusResponse(driver.id, True, driver.state, driver.worker_id,
                                    worker.address if worker is not None else "", driver.exit_code, message,
                                    driver.launches, driver.log_tail)

    def _driver_waiting_reason(self, driver: DriverInfo) -> str:
        need = f"{_plural(driver.desc.cores, 'core')} and {driver.desc.memory} MiB"
        alive = self.alive_workers()
        if not alive:
            return f"waiting for a worker with {need} free: no worker is alive"
        most = max(alive, key=lambda w: w.cores_free)
        return (f"waiting for a worker with {need} free (most free: {_plural(most.cores_free, 'core')}, "
                f"{most.memory_free} MiB on worker {most.id})")

    def next_wakeup(self) -> float | None:
        """When a delayed supervised relaunch falls due (seconds since the epoch), if one is pending.

        The daemon's timer should call :meth:`check_worker_timeouts` by then.
        """
        due = [d.not_before for d in self.drivers.values() if d.state == WAITING and d.not_before is not None]
        return min(due) if due else None

    def _schedule_drivers(self, now: float) -> list[Action]:
        actions: list[Action] = []
        for driver in list(self.drivers.values()):
            if driver.state != WAITING or (driver.not_before is not None and driver.not_before > now):
                continue
            # The most free cores among the workers it fits on, the earliest registered on a tie.
            fit = next((w for w in self._index.with_room(driver.desc.cores)
                        if w.memory_free >= driver.desc.memory), None)
            if fit is not None:
                actions += self._launch_driver(driver, fit, now)
        return actions

    def _launch_driver(self, driver: DriverInfo, worker: WorkerInfo, now: float) -> list[Action]:
        self._mark("driver", driver.id)
        driver.state = SUBMITTED
        driver.worker_id = worker.id
        driver.start_time = now
        driver.launches += 1
        driver.not_before = None
        driver.exit_code = None
        driver.log_tail = ""
        # What became of the previous launch stays visible to --status and --wait.
        previous = driver.message.split("; relaunching")[0]
        driver.message = f"launch {driver.launches}; the previous one: {previous}" if driver.launches > 1 else ""
        worker.add_driver(driver)
        again = f" (launch {driver.launches})" if driver.launches > 1 else ""
        return [_info(f"Launching driver {driver.id} on worker {worker.id} ({worker.address}) with "
                      f"{_plural(driver.desc.cores, 'core')}, {driver.desc.memory} MiB RAM{again}"),
                SendToWorker(worker.id, LaunchDriver(driver.id, driver.desc)),
                DriverChanged(driver.id)]

    # ------------------------------------------------------------- scheduling
    def schedule(self, now: float) -> list[Action]:
        """Grant free cores to applications that still want some, first come first served.

        Also fails an application whose executors failed ``max_executor_retries`` times in a
        row once it has no running executor left: it gets no new ones, so it could only wait.
        Waiting drivers are placed first: an application's driver must run before it can
        use any executor.
        """
        actions: list[Action] = self._schedule_drivers(now)
        # (cores, MiB) per executor that no ALIVE worker has room for in this pass: an app
        # that needs as much or more is not offered anything either. Launches only take
        # room, so this holds until an app's removal frees some.
        no_room: list[tuple[int, int]] = []
        for app in self.active_apps():
            if app.failed_executors and self._out_of_retries(app):
                if not any(e.state == EXEC_RUNNING for e in app.executors.values()):
                    text = self._failure_message(app)
                    actions.append(Log(logging.ERROR, text))
                    # Its freed cores go to the applications after it in this same pass.
                    actions += self._remove_app(app, FAILED, now, message=text, reschedule=False)
                    no_room.clear()
                continue
            desc = app.desc
            unit = desc.executor_cores or 1
            if unit > self._index.most_free() or app.awaiting_driver_since is not None or app.cores_left <= 0:
                continue
            if any(unit >= c and desc.executor_memory >= mem for c, mem in no_room):
                continue
            one_per_worker = desc.executor_cores is None
            excluded = False
            usable = []
            # Most free cores first, registration order breaking ties (Spark's stable sort).
            for w in self._index.with_room(unit):
                if w.memory_free < desc.executor_memory:
                    continue
                if one_per_worker and app.id in w.app_executors:
                    excluded = True
                    continue
                usable.append(w)
            if not usable:
                if not excluded:
                    no_room.append((unit, desc.executor_memory))
                continue
            plan = plan_executors(app.cores_left, desc.executor_cores, desc.executor_memory,
                                  [(w.cores_free, w.memory_free) for w in usable], self.spread_out)
            for worker, (cores, count) in zip(usable, plan):
                if cores == 0:
                    continue
                per_executor = cores if desc.executor_cores is None else desc.executor_cores
                for _ in range(count):
                    actions += self._launch_executor(app, worker, per_executor)
        return actions

    def _launch_executor(self, app: ApplicationInfo, worker: WorkerInfo, cores: int) -> list[Action]:
        desc = app.desc
        ex = ExecutorInfo(app.id, str(app.next_executor_id), worker.id, cores, desc.executor_memory)
        app.next_executor_id += 1
        self._grant(app, ex)
        worker.add_executor(ex)
        self._refresh_app_state(app)
        return [
            _info(f"Launching executor {ex.full_id} on worker {worker.id} ({worker.address}) with "
                  f"{_plural(cores, 'core')}, {desc.executor_memory} MiB RAM"),
            SendToWorker(worker.id, LaunchExecutor(app.id, ex.executor_id, cores, desc.executor_memory,
                                                   desc.driver_host, desc.driver_port, desc.name,
                                                   dict(desc.executor_settings))),
            SendToDriver(app.id, ExecutorAdded(ex.executor_id, worker.id, worker.host, cores, desc.executor_memory)),
        ]

    def _refresh_app_state(self, app: ApplicationInfo) -> None:
        # Unlike Spark, which leaves an app RUNNING forever once it got an executor, an app
        # holding no executor shows WAITING: that is what a user looking at it wants to know.
        # One restored by a recovering master is UNKNOWN until its driver re-registers.
        if app.active:
            app.state = UNKNOWN if app.awaiting_driver_since is not None else RUNNING if app.executors else WAITING
        self._mark("app", app.id)

    # ------------------------------------------------------------- explanations
    def _room(self) -> _Room:
        """The ALIVE workers' extremes, in one pass (for explanations)."""
        room = _Room()
        for w in self.workers.values():
            if w.state != ALIVE:
                continue
            room.alive += 1
            room.biggest_cores = max(room.biggest_cores, w.cores)
            room.biggest_memory = max(room.biggest_memory, w.memory)
            if room.most_cores is None or w.cores_free > room.most_cores.cores_free:
                room.most_cores = w
            if room.most_memory is None or w.memory_free > room.most_memory.memory_free:
                room.most_memory = w
        return room

    def waiting_reason(self, app_id: str, room: _Room | None = None) -> str:
        """Why *app_id* has no running executor, in a sentence or two; "" once one runs.

        *room* (from :meth:`_room`) saves a walk over the workers when explaining many apps.
        """
        app = self.apps.get(app_id)
        if app is None:
            return f"no application {app_id} is registered with this master"
        if not app.active:
            return f"application {app_id} is {app.state}"
        if app.awaiting_driver_since is not None:
            return "its driver has not re-registered since the master restarted"
        if any(e.state == EXEC_RUNNING for e in app.executors.values()):
            return ""
        desc = app.desc
        unit = desc.executor_cores or 1
        if desc.executor_cores is not None and desc.cores_max is not None and desc.executor_cores > desc.cores_max:
            return (f"spark.executor.cores={desc.executor_cores} is more than spark.cores.max={desc.cores_max}, "
                    "so no executor can ever be launched")
        if self._out_of_retries(app):
            return self._failure_message(app)
        if app.failed_executors and app.last_failure:
            text = (f"its executors are failing to start ({app.failed_executors} in a row); "
                    f"the last, {app.last_failure}")
            tail = app.last_log_tail.strip()
            return f"{text}. Its log ends with:\n{tail}" if tail else text
        if app.executors:
            where = sorted({e.worker_id for e in app.executors.values()})
            return (f"{_plural(len(app.executors), 'executor')} launched on worker(s) {', '.join(where)} "
                    "and not running yet")
        room = room if room is not None else self._room()
        if room.most_cores is None or room.most_memory is None:
            if self.workers:
                return f"no worker is alive ({_plural(len(self.workers), 'worker')} registered, all DEAD)"
            return "no worker has registered with the master"
        need = f"needs {_plural(unit, 'core')} and {desc.executor_memory} MiB per executor"
        if unit > room.biggest_cores or desc.executor_memory > room.biggest_memory:
            return (f"it {need}, but no worker is that large (the largest has {_plural(room.biggest_cores, 'core')}, "
                    f"the largest {room.biggest_memory} MiB)")
        most_cores, most_memory = room.most_cores, room.most_memory
        return (f"it {need}; largest free: {_plural(most_cores.cores_free, 'core')} (worker {most_cores.id}), "
                f"{most_memory.memory_free} MiB (worker {most_memory.id}); other applications hold the rest")

    # ------------------------------------------------------------- JSON
    def to_json(self, now: float, url: str | None = None) -> dict[str, Any]:
        """The master's status with Spark's field names (memory in MiB, times in ms since the epoch)."""
        return finish_json(self.json_parts(now, url))

    def json_parts(self, now: float, url: str | None = None) -> dict[str, Any]:
        """What :meth:`to_json` needs from the live state, copied: the workers as plain tuples.

        The daemon takes this under its lock and makes the document (:func:`finish_json`)
        after releasing it, so a status request costs the scheduler only this copy.
        """
        room: list[_Room] = []

        def app_json(a: ApplicationInfo) -> dict[str, Any]:
            if a.active and not room:
                room.append(self._room())
            return self._app_json(a, now, room[0] if room else None)

        alive = [w for w in self.workers.values() if w.state == ALIVE]
        return {
            "url": url if url is not None else self.master_url,
            "workers": [(w.id, w.host, w.port, w.webui_port, w.cores, w.cores_used, w.memory, w.memory_used,
                         w.state, w.last_heartbeat) for w in self.workers.values()],
            "aliveworkers": len(alive),
            "cores": sum(w.cores for w in alive),
            "coresused": sum(w.cores_used for w in alive),
            "memory": sum(w.memory for w in alive),
            "memoryused": sum(w.memory_used for w in alive),
            "activeapps": [app_json(a) for a in self.active_apps()],
            "completedapps": [app_json(self.apps[i]) for i in self.completed if i in self.apps],
            "activedrivers": [self._driver_json(d, now) for d in self.drivers.values() if d.active],
            "completeddrivers": [self._driver_json(self.drivers[i], now) for i in self.completed_drivers
                                 if i in self.drivers],
            "status": "ALIVE",
        }

    def _app_json(self, a: ApplicationInfo, now: float, room: _Room | None = None) -> dict[str, Any]:
        end = a.end_time if a.end_time is not None else now
        return {
            "id": a.id,
            "name": a.desc.name,
            "cores": a.cores_granted,
            "user": a.desc.user,
            "memoryperexecutor": a.desc.executor_memory,
            "submitdate": _format_date(a.submit_time),
            "starttime": _ms(a.submit_time),
            "duration": max(_ms(end) - _ms(a.submit_time), 0),
            "state": a.state,
            # Not in Spark 4's document: why an active app has no running executor ("" once
            # one runs), and its driver's UI (the name Spark 1's master used for it).
            "waitingreason": self.waiting_reason(a.id, room) if a.active else "",
            "appuiurl": a.desc.app_ui_url,
        }

    def _driver_json(self, d: DriverInfo, now: float) -> dict[str, Any]:
        end = d.end_time if d.end_time is not None else now
        return {
            "id": d.id,
            "starttime": _ms(d.submit_time),
            "submitdate": _format_date(d.submit_time),
            "state": d.state,
            "cores": d.desc.cores,
            "memory": d.desc.memory,
            "worker": d.worker_id or "None",  # Spark's spelling of "not placed yet"
            "mainclass": d.desc.app_file.name,
            # Not in Spark's document:
            "user": d.desc.user,
            "supervise": d.desc.supervise,
            "launches": d.launches,
            "exitcode": d.exit_code,
            "duration": max(_ms(end) - _ms(d.submit_time), 0),
            "message": self.driver_status(d.id).message,
        }

    # ------------------------------------------------------------- persistence
    def snapshot(self) -> dict[str, Any]:
        """The persistent part (workers, applications) as JSON-ready plain data.

        Heartbeat times are left out: they mean nothing to a master restarted later, and
        leaving them out means a snapshot changes only when the cluster does.
        """
        return {
            "version": SNAPSHOT_VERSION,
            "next_app_number": self.next_app_number,
            "workers": [worker_record(w) for w in self.workers.values()],
            "apps": [dict(app_record(a), executors=[executor_record(e) for e in a.executors.values()])
                     for a in self.apps.values()],
            "completed": list(self.completed),
            "next_driver_number": self.next_driver_number,
            "drivers": [driver_record(d) for d in self.drivers.values()],
            "completed_drivers": list(self.completed_drivers),
        }

    def take_changes(self) -> list[dict[str, Any]]:
        """The journal records of what changed since the last call (needs :attr:`track_changes`).

        Replayed in order onto the :meth:`snapshot` taken before them
        (:class:`~sparkctl.deploy.recovery.ReplayState`), they give the snapshot of now.
        Costs what changed, never the whole state: a heartbeat changes nothing.
        """
        records: list[dict[str, Any]] = []
        changed, self._changed = self._changed, {}
        for kind in ("worker", "app", "exec", "driver"):
            for key, new in changed.items():
                if key[0] != kind:
                    continue
                if kind == "exec":
                    app = self.apps.get(key[1])
                    ex = app.executors.get(key[2]) if app is not None else None
                    records.append({"t": "exec", "app": key[1], "new": new, "v": executor_record(ex)} if ex else
                                   {"t": "-exec", "app": key[1], "id": key[2]})
                    continue
                table: dict[str, Any] = {"worker": self.workers, "app": self.apps, "driver": self.drivers}[kind]
                entry = table.get(key[1])
                if entry is None:
                    records.append({"t": "-" + kind, "id": key[1]})
                else:
                    make = {"worker": worker_record, "app": app_record, "driver": driver_record}[kind]
                    records.append({"t": kind, "new": new, "v": make(entry)})
        # The id counters and the completed lists (which only grow at the end and shrink at the front).
        meta_key = (self.next_app_number, self.next_driver_number, len(self.completed), self.completed[:1],
                    self.completed[-1:], len(self.completed_drivers), self.completed_drivers[:1],
                    self.completed_drivers[-1:])
        if meta_key != self._meta_key:
            self._meta_key = meta_key
            records.append({"t": "meta", "v": {"next_app_number": self.next_app_number,
                                               "next_driver_number": self.next_driver_number,
                                               "completed": list(self.completed),
                                               "completed_drivers": list(self.completed_drivers)}})
        return records

    def restore(self, data: dict[str, Any], now: float) -> list[Action]:
        """Replace the state with a :meth:`snapshot` taken earlier (by a master that then stopped).

        Restored ALIVE workers count as having just sent a heartbeat: those that do not
        re-register within a timeout become DEAD. Restored active applications get no new
        executors until their driver re-registers (with its app id), and are finished if
        it does not within a timeout.
        """
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported master snapshot version {data.get('version')!r}")
        self.workers = {}
        self.apps = {}
        self._index = WorkerIndex()
        self._by_address = {}
        self._orphans = {}
        for wd in data["workers"]:
            self._add_worker(WorkerInfo(wd["id"], wd["host"], int(wd["port"]), int(wd["cores"]), int(wd["memory"]),
                                        int(wd.get("webui_port", 0)), wd["state"], now))
        for ad in data["apps"]:
            desc = ApplicationDescription(**ad["desc"])
            app = ApplicationInfo(ad["id"], desc, float(ad["submit_time"]), ad["state"], ad.get("end_time"),
                                  next_executor_id=int(ad.get("next_executor_id", 0)),
                                  failed_executors=int(ad.get("failed_executors", 0)),
                                  last_failure=ad.get("last_failure", ""), last_log_tail=ad.get("last_log_tail", ""))
            app.hosts = None  # where it ran before the restart is not known
            self.apps[app.id] = app
            if not app.active:
                continue
            app.awaiting_driver_since = now
            for ed in ad.get("executors", []):
                worker = self.workers.get(ed["worker_id"])
                if worker is None or worker.state != ALIVE:
                    continue
                ex = ExecutorInfo(app.id, ed["executor_id"], worker.id, int(ed["cores"]), int(ed["memory"]),
                                  ed.get("state", EXEC_RUNNING))
                ex.running_since = 0.0 if ex.state == EXEC_RUNNING else None
                app.add_executor(ex)
                worker.add_executor(ex)
            self._refresh_app_state(app)
        self.completed = [i for i in data.get("completed", []) if i in self.apps]
        self.next_app_number = int(data.get("next_app_number", 0))
        actions = self._restore_drivers(data, now)
        active_drivers = sum(1 for d in self.drivers.values() if d.active)
        drivers = f" and {_plural(active_drivers, 'active driver')}" if active_drivers else ""
        # The journal starts again from this state's snapshot, not from these changes.
        self._changed = {}
        self._meta_key = ()
        return [_info(f"Recovered {_plural(len(self.workers), 'worker')} and "
                      f"{_plural(len(self.active_apps()), 'active application')}{drivers} from a snapshot")] + actions

    def _restore_drivers(self, data: dict[str, Any], now: float) -> list[Action]:
        # Snapshots from before cluster deploy mode have no drivers: nothing to restore.
        self.drivers = {}
        actions: list[Action] = []
        for dd in data.get("drivers", []):
            driver = driver_from_record(dd)
            self.drivers[driver.id] = driver
        self.completed_drivers = [i for i in data.get("completed_drivers", []) if i in self.drivers]
        self.next_driver_number = int(data.get("next_driver_number", 0))
        for driver in list(self.drivers.values()):
            if driver.state not in (SUBMITTED, RUNNING):
                continue
            worker = self.workers.get(driver.worker_id)
            if worker is not None and worker.state == ALIVE:
                # It stays placed; the worker's re-registration says whether it still runs.
                worker.add_driver(driver)
            else:
                actions += self._driver_lost(driver, f"its worker {driver.worker_id} was gone when the master "
                                                     "recovered", now)
        return actions


class _Room:
    """The ALIVE workers' extremes: the largest, and the ones with the most room free."""

    def __init__(self) -> None:
        self.alive = 0
        self.biggest_cores = 0
        self.biggest_memory = 0
        self.most_cores: WorkerInfo | None = None
        self.most_memory: WorkerInfo | None = None


def finish_json(parts: dict[str, Any]) -> dict[str, Any]:
    """The status document from :meth:`MasterStateMachine.json_parts` (no live state read)."""
    doc = dict(parts)
    doc["workers"] = [
        {"id": wid, "host": host, "port": port, "webuiaddress": f"http://{host}:{webui_port}", "cores": cores,
         "coresused": cores_used, "coresfree": cores - cores_used, "memory": memory, "memoryused": memory_used,
         "memoryfree": memory - memory_used, "state": state, "lastheartbeat": _ms(heartbeat)}
        for wid, host, port, webui_port, cores, cores_used, memory, memory_used, state, heartbeat in parts["workers"]
    ]
    return doc
