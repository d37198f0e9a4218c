"""What the standalone master knows, and what it asks its daemon to do: records and actions.

The records are Spark's ``WorkerInfo``, ``ApplicationInfo``, ``DriverInfo`` and
``ExecutorDesc``. A worker's and an application's executors live in dicts that are read
freely but changed only through the records' methods, which keep the counters the
scheduler reads (cores and memory used on a worker, cores granted to an application) up
to date, and tell the :class:`~sparkctl.deploy.worker_index.WorkerIndex` when a worker's
free cores change. Nothing here sums over executors.

The actions are what :class:`~sparkctl.deploy.master_state.MasterStateMachine` returns
from every event, for the daemon to carry out.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

from sparkctl.deploy.messages import (
    ALIVE,
    FINAL_DRIVER_STATES,
    LAUNCHING,
    UNKNOWN,
    RUNNING,
    WAITING,
    ApplicationDescription,
    DriverDescription,
)

if TYPE_CHECKING:
    from sparkctl.deploy.messages import DriverStatusResponse
    from sparkctl.deploy.worker_index import HeartbeatOrder, WorkerIndex

__all__ = [
    "SendToWorker", "SendToDriver", "Reply", "BindWorker", "BindDriver", "DisconnectWorker", "DriverChanged", "Log",
    "Action", "ExecutorInfo", "WorkerInfo", "ApplicationInfo", "DriverInfo", "UNLIMITED", "log_info", "log_warning",
    "plural",
]

_ACTIVE_APP_STATES = (WAITING, RUNNING, UNKNOWN)
#: A cap standing in for "all the cores there are" when an app sets no spark.cores.max.
UNLIMITED = 1 << 62


# ----------------------------------------------------------------- actions out
@dataclass(frozen=True)
class SendToWorker:
    """Send *msg* on worker *worker_id*'s connection."""

    worker_id: str
    msg: Any


@dataclass(frozen=True)
class SendToDriver:
    """Send *msg* on the connection of application *app_id*'s driver."""

    app_id: str
    msg: Any


@dataclass(frozen=True)
class Reply:
    """Send *msg* on the connection the current event arrived on."""

    msg: Any


@dataclass(frozen=True)
class BindWorker:
    """The connection the current event arrived on now belongs to worker *worker_id*.

    Emitted after any :class:`DisconnectWorker` of an entry it replaces (which may have
    the same id), so the daemon drops the old connection before it binds the new one.
    """

    worker_id: str


@dataclass(frozen=True)
class BindDriver:
    """The connection the current event arrived on now belongs to application *app_id*'s driver."""

    app_id: str


@dataclass(frozen=True)
class DisconnectWorker:
    """Close worker *worker_id*'s connection (after what was queued on it): the master
    declared it DEAD or replaced it; a live worker then re-registers."""

    worker_id: str
    reason: str


@dataclass(frozen=True)
class DriverChanged:
    """Driver *driver_id* changed state: send its status to whoever follows it."""

    driver_id: str


@dataclass(frozen=True)
class Log:
    level: int  # a logging level: logging.INFO, logging.WARNING...
    text: str


Action = Union[SendToWorker, SendToDriver, Reply, BindWorker, BindDriver, DisconnectWorker, DriverChanged, Log]



# ----------------------------------------------------------------- records
@dataclass(eq=False)
class ExecutorInfo:
    """One executor granted to an application on a worker."""

    app_id: str
    executor_id: str
    worker_id: str
    cores: int
    memory: int  # MiB
    state: str = LAUNCHING
    running_since: float | None = None  # when it reported RUNNING (0.0: adopted, long running)
    # Set while no registered application claims this executor: a worker re-registered
    # with a restarted master listing it before its driver re-registered.
    orphan_since: float | None = None

    @property
    def full_id(self) -> str:
        return f"{self.app_id}/{self.executor_id}"


@dataclass(eq=False)
class WorkerInfo:
    """A worker as the master sees it. ``executors`` and ``drivers`` are read-only views:
    change them through :meth:`add_executor`, :meth:`pop_executor`, :meth:`add_driver`..."""

    id: str
    host: str
    port: int
    cores: int
    memory: int  # MiB
    webui_port: int = 0
    state: str = ALIVE
    last_heartbeat: float = 0.0  # seconds since the epoch
    executors: dict[tuple[str, str], ExecutorInfo] = field(default_factory=dict)  # (app id, executor id)
    drivers: dict[str, DriverInfo] = field(default_factory=dict)  # placed here: SUBMITTED or RUNNING
    # Counters kept by the methods below: what the executors and drivers placed here hold.
    cores_used: int = 0
    memory_used: int = 0
    # Executors here per application (the one-executor-per-worker rule asks "has app A one here?").
    app_executors: dict[str, int] = field(default_factory=dict)
    seq: int = 0  # registration order, which breaks ties between equally free workers
    index: WorkerIndex | None = field(default=None, repr=False)

    @property
    def cores_free(self) -> int:
        return self.cores - self.cores_used

    @property
    def memory_free(self) -> int:
        return self.memory - self.memory_used

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def webui_address(self) -> str:
        return f"http://{self.host}:{self.webui_port}"

    def _use(self, cores: int, memory: int) -> None:
        self.cores_used += cores
        self.memory_used += memory
        if self.index is not None:
            self.index.update(self)

    def add_executor(self, ex: ExecutorInfo) -> None:
        key = (ex.app_id, ex.executor_id)
        old = self.executors.get(key)
        if old is not None:
            self.pop_executor(key)
        self.executors[key] = ex
        self.app_executors[ex.app_id] = self.app_executors.get(ex.app_id, 0) + 1
        self._use(ex.cores, ex.memory)

    def pop_executor(self, key: tuple[str, str]) -> ExecutorInfo | None:
        ex = self.executors.pop(key, None)
        if ex is not None:
            left = self.app_executors[ex.app_id] - 1
            if left:
                self.app_executors[ex.app_id] = left
            else:
                del self.app_executors[ex.app_id]
            self._use(-ex.cores, -ex.memory)
        return ex

    def clear_executors(self) -> None:
        self.executors.clear()
        self.app_executors.clear()
        self._recount()

    def add_driver(self, driver: DriverInfo) -> None:
        if driver.id in self.drivers:
            self.pop_driver(driver.id)
        self.drivers[driver.id] = driver
        self._use(driver.desc.cores, driver.desc.memory)

    def pop_driver(self, driver_id: str) -> DriverInfo | None:
        driver = self.drivers.pop(driver_id, None)
        if driver is not None:
            self._use(-driver.desc.cores, -driver.desc.memory)
        return driver

    def clear_drivers(self) -> None:
        self.drivers.clear()
        self._recount()

    def _recount(self) -> None:
        self.cores_used = 0
        self.memory_used = 0
        self._use(sum(e.cores for e in self.executors.values()) + sum(d.desc.cores for d in self.drivers.values()),
                  sum(e.memory for e in self.executors.values()) + sum(d.desc.memory for d in self.drivers.values()))

    def set_state(self, state: str) -> None:
        self.state = state
        if self.index is not None:
            self.index.update(self)


@dataclass(eq=False)
class ApplicationInfo:
    """An application as the master sees it. ``executors`` is a read-only view: change it
    through :meth:`add_executor`, :meth:`pop_executor` and :meth:`clear_executors`."""

    id: str
    desc: ApplicationDescription
    submit_time: float  # registration time, seconds since the epoch; also Spark's "starttime"
    state: str = WAITING
    end_time: float | None = None
    executors: dict[str, ExecutorInfo] = field(default_factory=dict)
    next_executor_id: int = 0
    # Executor failures since one last reached RUNNING (Spark's retry count).
    failed_executors: int = 0
    last_failure: str = ""  # "executor 3 on host-a exited with code 1: ..."
    last_log_tail: str = ""
    # Set for an application restored from a snapshot until its driver re-registers.
    awaiting_driver_since: float | None = None
    cores_granted: int = 0  # the sum of its executors' cores, kept by the methods below
    # The workers that ran an executor of it, in the order first used: they hear when it
    # ends. None when not known (restored, or a driver reconnecting): every worker hears.
    hosts: dict[str, None] | None = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.state in _ACTIVE_APP_STATES

    @property
    def cores_left(self) -> int:
        wanted = self.desc.cores_max if self.desc.cores_max is not None else UNLIMITED
        return max(wanted - self.cores_granted, 0)

    def add_executor(self, ex: ExecutorInfo) -> None:
        old = self.executors.get(ex.executor_id)
        if old is not None:
            self.cores_granted -= old.cores
        self.executors[ex.executor_id] = ex
        self.cores_granted += ex.cores
        if self.hosts is not None:
            self.hosts[ex.worker_id] = None

    def pop_executor(self, executor_id: str) -> ExecutorInfo | None:
        ex = self.executors.pop(executor_id, None)
        if ex is not None:
            self.cores_granted -= ex.cores
        return ex

    def clear_executors(self) -> None:
        self.executors.clear()
        self.cores_granted = 0


@dataclass(eq=False)
class DriverInfo:
    """One driver submitted in cluster deploy mode, over all its launches."""

    id: str
    desc: DriverDescription
    submit_time: float  # seconds since the epoch; also Spark's "starttime"
    state: str = WAITING
    worker_id: str = ""  # the worker that runs it, or ran it last ("" before its first launch)
    start_time: float | None = None  # of its latest launch
    end_time: float | None = None
    exit_code: int | None = None
    message: str = ""  # why it ended, or why it waits again
    log_tail: str = ""
    launches: int = 0
    # Supervised failures in a row that came soon after their launch (see supervise_delay).
    quick_failures: int = 0
    not_before: float | None = None  # a delayed supervised relaunch waits until then
    kill_requested: bool = False

    @property
    def active(self) -> bool:
        return self.state not in FINAL_DRIVER_STATES




def log_info(text: str) -> Log:
    return Log(logging.INFO, text)


def log_warning(text: str) -> Log:
    return Log(logging.WARNING, text)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class MasterFields:
    """The master state machine's fields, declared once for each part that uses them
    (set in MasterStateMachine.__init__), and the methods one part calls on another
    (declared for the type checker only: each is defined by exactly one part)."""

    # The machine's state (see MasterStateMachine.__init__).
    workers: dict[str, WorkerInfo]
    apps: dict[str, ApplicationInfo]
    drivers: dict[str, DriverInfo]
    completed: list[str]
    completed_drivers: list[str]
    next_app_number: int
    next_driver_number: int
    master_url: str
    worker_timeout: float
    max_executor_retries: int
    retained_applications: int
    retained_drivers: int
    _index: WorkerIndex
    _by_address: dict[tuple[str, int], str]  # (host, port) -> worker id
    # Executors that workers run for applications not registered (yet), by app id.
    _orphans: dict[str, dict[tuple[str, tuple[str, str]], None]]
    _changed: dict[tuple[str, ...], bool]
    _meta_key: tuple[Any, ...]
    _heartbeats: HeartbeatOrder
    _awaiting_driver: dict[str, None]  # ids of restored applications waiting for their driver
    _delayed_drivers: dict[str, None]  # ids of drivers waiting out a relaunch delay

    if TYPE_CHECKING:
        # master_state.MasterStateMachine
        def _mark(self, *key: str, new: bool = False) -> None: ...
        def _add_worker(self, worker: WorkerInfo) -> None: ...
        def _ungrant(self, app: ApplicationInfo, executor_id: str) -> None: ...
        def _grant(self, app: ApplicationInfo, ex: ExecutorInfo) -> None: ...
        def _orphans_of(self, app_ids: list[str]) -> list[tuple[WorkerInfo, tuple[str, str], ExecutorInfo]]: ...
        def _refresh_app_state(self, app: ApplicationInfo) -> None: ...
        def _new_app_id(self, now: float) -> str: ...
        def active_apps(self) -> list[ApplicationInfo]: ...
        def alive_workers(self) -> list[WorkerInfo]: ...
        def schedule(self, now: float) -> list[Action]: ...
        # master_apps.ApplicationBookkeeping
        def _out_of_retries(self, app: ApplicationInfo) -> bool: ...
        def _failure_message(self, app: ApplicationInfo) -> str: ...
        # master_drivers.DriverBookkeeping
        def _driver_lost(self, driver: DriverInfo, why: str, now: float) -> list[Action]: ...
        def _drivers_delayed(self) -> list[DriverInfo]: ...
        def driver_status(self, driver_id: str) -> DriverStatusResponse: ...
