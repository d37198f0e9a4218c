"""The master's applications and their executors: registration, removal, executors' states.

Part of :class:`~sparkctl.deploy.master_state.MasterStateMachine` (events in, actions out,
no I/O). Granting executors is the scheduler's (``schedule`` in master_state); this is what
happens to an application and its executors around that: a driver registers or comes back,
an executor reports RUNNING or exits, executors failing in a row end the application, a
worker that registers again lists the executors it still runs (kept, kept for a driver to
claim, or killed when the master had removed them).
"""
from __future__ import annotations

import logging

from sparkctl.deploy.master_info import (
    Action,
    ApplicationInfo,
    BindDriver,
    ExecutorInfo,
    Log,
    MasterFields,
    Reply,
    SendToDriver,
    SendToWorker,
    WorkerInfo,
    log_info as _info,
    log_warning as _warn,
    plural as _plural,
)
from sparkctl.deploy.messages import (
    ALIVE,
    EXEC_FAILED,
    EXEC_KILLED,
    EXEC_RUNNING,
    EXITED,
    FAILED,
    FINISHED,
    KILLED,
    LOST,
    ApplicationDescription,
    ApplicationFinished,
    ApplicationRemoved,
    ExecutorStateChanged,
    ExecutorUpdated,
    KillExecutor,
    RegisterApplication,
    RegisteredApplication,
)

#: An executor that failed after running this long (seconds) starts a new count of failures
#: in a row. Spark resets the count when an executor reaches RUNNING, but a worker reports
#: RUNNING as soon as the process starts, so executors that die seconds later, each time
#: (a task that runs every executor out of memory), would never add up to the limit.
EXECUTOR_STABLE_RUN = 30.0

_FINAL_EXECUTOR_STATES = (EXITED, EXEC_FAILED, EXEC_KILLED, LOST)


class ApplicationBookkeeping(MasterFields):
    """Applications and executors (a part of the master's state machine)."""

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

    # ------------------------------------------------------------- executors a worker lists
    def _adopt_executor(self, worker: WorkerInfo, ex: ExecutorInfo | None, key: tuple[str, str],
                        cores: int, memory: int, now: float) -> list[Action]:
        """A (re-)registering *worker* lists executor *key* as running there; *ex* is this
        master's record of it, if the worker's previous entry held it.

        As Spark's master does when a worker reconnects (``WorkerLatestState``), an executor of
        a known application that the master no longer holds is killed: the master removed it
        when it lost the worker (missed heartbeats, a closed connection) and told the driver
        it was lost, so it must not come back to the application. Only an executor of an
        application this master does not know (yet) is kept, for a driver that re-registers
        with a restarted master to claim.
        """
        app_id, executor_id = key
        app = self.apps.get(app_id)
        if app is not None and not app.active:
            return [_info(f"Worker {worker.id} still runs executor {app_id}/{executor_id} of finished application "
                          f"{app_id}; killing it"), SendToWorker(worker.id, KillExecutor(app_id, executor_id))]
        if ex is None and app is not None and executor_id not in app.executors:
            return [_info(f"Worker {worker.id} still runs executor {app_id}/{executor_id}, which this master "
                          "removed (its driver was told it was lost); killing it"),
                    SendToWorker(worker.id, KillExecutor(app_id, executor_id))]
        if ex is None:
            # Still running from before we (re)started; it has been working, so RUNNING.
            ex = ExecutorInfo(app_id, executor_id, worker.id, cores, memory, EXEC_RUNNING, running_since=0.0)
        ex.worker_id = worker.id
        worker.add_executor(ex)
        if app is None:
            ex.orphan_since = now
            # its driver may re-register soon; else it is killed after a timeout
            self._orphans.setdefault(app_id, {})[(worker.id, key)] = None
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
