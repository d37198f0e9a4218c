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

No event walks every worker: free cores and memory are counters on each worker, the
workers with free cores are kept in a :class:`~sparkctl.deploy.worker_index.WorkerIndex`
that the schedule reads, and workers are found by id or by host:port in a dict. At 5,000
workers with 99 applications waiting, an executor's exit and the schedule it triggers cost
about 35 µs (1.5 s when every worker was walked for every waiting application). The
timeout tick reads workers by last heartbeat
(:class:`~sparkctl.deploy.worker_index.HeartbeatOrder`) and stops at the first that has
not expired, so it costs what expires.

Drivers submitted in cluster deploy mode are placed before applications get executors
(as Spark does): each WAITING driver, in submission order, goes to the ALIVE worker with
the most free cores among those with room for its cores and memory, which it then holds
as an executor would. A supervised driver that exits non-zero, or whose worker is lost,
becomes WAITING again; quick failures in a row are relaunched with a growing delay, so a
driver that cannot start does not spin.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from sparkctl.deploy.messages import (
    ALIVE,
    DEAD,
    EXEC_RUNNING,
    FAILED,
    FINISHED,
    LOST,
    RUNNING,
    UNKNOWN,
    WAITING,
    ExecutorAdded,
    ExecutorUpdated,
    KillExecutor,
    LaunchExecutor,
    RegisteredWorker,
    RegisterWorker,
    RegisterWorkerFailed,
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
from sparkctl.deploy.master_apps import EXECUTOR_STABLE_RUN, ApplicationBookkeeping
from sparkctl.deploy.master_drivers import (
    SUPERVISE_MAX_DELAY,
    SUPERVISE_STABLE_RUN,
    DriverBookkeeping,
    supervise_delay,
    valid_file_name,
)
from sparkctl.deploy.master_info import log_info as _info
from sparkctl.deploy.master_info import log_warning as _warn
from sparkctl.deploy.master_info import plural as _plural
from sparkctl.deploy.master_snapshot import MasterSnapshots
from sparkctl.deploy.master_status import MasterStatusViews, finish_json
from sparkctl.deploy.recovery import SNAPSHOT_VERSION
from sparkctl.deploy.worker_index import HeartbeatOrder, WorkerIndex, plan_executors

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
    "SUPERVISE_MAX_DELAY",
    "finish_json",
]

#: Spark's spark.deploy.maxExecutorRetries: consecutive executor failures before an app is failed.
DEFAULT_MAX_EXECUTOR_RETRIES = 10
#: Spark's spark.deploy.retainedApplications: completed apps kept for the UI and JSON.
DEFAULT_RETAINED_APPLICATIONS = 200
#: Spark's spark.deploy.retainedDrivers: completed drivers kept for the UI, JSON, --status and logs.
DEFAULT_RETAINED_DRIVERS = 200
#: Spark's spark.dead.worker.persistence: a DEAD worker stays listed for (this + 1) timeouts.
DEAD_WORKER_PERSISTENCE = 15

# ----------------------------------------------------------------- the machine
class MasterStateMachine(ApplicationBookkeeping, DriverBookkeeping, MasterStatusViews, MasterSnapshots):
    """The master's workers, applications and executors; events in, actions out.

    Every event method returns the list of :data:`Action` to carry out, in order. The
    workers, their index and the schedule are here; applications and executors are in
    :mod:`~sparkctl.deploy.master_apps`, drivers in :mod:`~sparkctl.deploy.master_drivers`,
    the status document in :mod:`~sparkctl.deploy.master_status`, snapshots and change
    records in :mod:`~sparkctl.deploy.master_snapshot`.
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
        self._heartbeats = HeartbeatOrder()  # workers by last heartbeat, for the timeout tick
        self._by_address: dict[tuple[str, int], str] = {}  # (host, port) -> worker id
        self._next_seq = 0
        # Executors that workers run for applications not registered (yet), by app id.
        self._orphans: dict[str, dict[tuple[str, tuple[str, str]], None]] = {}
        # Restored applications waiting for their driver, and drivers waiting out a relaunch
        # delay (ids; entries no longer so are dropped when read): the tick reads only these.
        self._awaiting_driver: dict[str, None] = {}
        self._delayed_drivers: dict[str, None] = {}
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
        self._heartbeats.add(worker)
        self._mark("worker", worker.id, new=True)

    def _forget_worker(self, worker: WorkerInfo) -> None:
        del self.workers[worker.id]
        if self._by_address.get((worker.host, worker.port)) == worker.id:
            del self._by_address[(worker.host, worker.port)]
        self._index.discard(worker)
        self._heartbeats.discard(worker)
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
        replaced; of the executors the worker lists (it outlived a master restart or a broken
        connection), those the master still holds are kept, those of applications it does not
        know are kept for their drivers, and those it removed with a lost worker are killed
        (see ``_adopt_executor``); the old entry's other executors are lost."""
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

    def worker_heartbeat(self, worker_id: str, now: float) -> list[Action]:
        worker = self.workers.get(worker_id)
        if worker is None or worker.state != ALIVE:
            # Declared DEAD (or forgotten) while it was only slow: make it re-register.
            return [_warn(f"Got a heartbeat from worker {worker_id}, which is not registered as ALIVE; "
                          "asking it to re-register"),
                    DisconnectWorker(worker_id, "not registered as ALIVE: re-register")]
        worker.last_heartbeat = now
        self._heartbeats.heartbeat(worker.seq)
        return []

    def worker_disconnected(self, worker_id: str, now: float) -> list[Action]:
        """The worker's connection closed: it is gone (a live worker reconnects and re-registers)."""
        worker = self.workers.get(worker_id)
        if worker is None or worker.state != ALIVE:
            return []
        return self._remove_worker(worker, "its connection closed", now) + self.schedule(now)

    def check_worker_timeouts(self, now: float, timeout: float | None = None) -> list[Action]:
        """The periodic tick: workers silent for *timeout* seconds are DEAD; long-dead ones are
        forgotten; unclaimed executors and restored apps whose drivers never came back go.

        It costs what expires, not the cluster's size: workers are read by last heartbeat,
        oldest first, up to the first that has not expired (:class:`HeartbeatOrder`).
        """
        timeout = self.worker_timeout if timeout is None else timeout
        actions: list[Action] = []
        changed = False
        forget_after = (DEAD_WORKER_PERSISTENCE + 1) * timeout
        # Forgotten before any is declared DEAD: one declared now stays listed until a later tick.
        for worker in self._heartbeats.expired_dead(now, forget_after, self.workers):
            actions.append(_info(f"Forgetting worker {worker.id} ({worker.address}), silent for more than "
                                 f"{forget_after:g} s"))
            self._forget_worker(worker)
        for worker in self._heartbeats.expired_alive(now, timeout):
            actions += self._remove_worker(
                worker, f"no heartbeat for {now - worker.last_heartbeat:.0f} s (timeout {timeout:g} s)", now)
            changed = True
        for worker, key, ex in self._orphans_of(list(self._orphans)):
            if now - ex.orphan_since > timeout:  # type: ignore[operator]
                worker.pop_executor(key)
                actions += [_info(f"No driver claimed executor {ex.full_id} on worker {worker.id} within "
                                  f"{timeout:g} s; killing it"),
                            SendToWorker(worker.id, KillExecutor(ex.app_id, ex.executor_id))]
                changed = True
        for app_id in list(self._awaiting_driver):
            app = self.apps.get(app_id)
            if app is None or not app.active or app.awaiting_driver_since is None:
                del self._awaiting_driver[app_id]
            elif now - app.awaiting_driver_since > timeout:
                actions.append(_info(f"The driver of application {app.id} did not re-register within {timeout:g} s "
                                     "of the master's recovery"))
                actions += self._remove_app(app, FINISHED, now, tell_driver=False, reschedule=False)
                changed = True
        if any(d.not_before <= now for d in self._drivers_delayed()):  # type: ignore[operator]
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
        self._heartbeats.dead(worker)
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
