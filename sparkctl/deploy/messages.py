"""Messages of the standalone cluster: master <-> worker, master <-> driver, status clients.

Every arrow is one authenticated connection (sparkctl.rpc) kept open for the peer's life:
the master learns that a worker or a driver is gone when its connection closes (or its
heartbeats stop).

```
 worker ── RegisterWorker ─────────▶ master ◀── RegisterApplication ── driver
 worker ◀─ RegisteredWorker ──────── master ─── RegisteredApplication ─▶ driver
 worker ── WorkerHeartbeat ────────▶ master
 worker ◀─ LaunchExecutor ────────── master ─── ExecutorAdded ────────▶ driver
 worker ── ExecutorStateChanged ───▶ master ─── ExecutorUpdated ──────▶ driver
 worker ◀─ KillExecutor ──────────── master ◀── UnregisterApplication ─ driver
 worker ◀─ ApplicationFinished ───── master ─── WorkerRemoved ────────▶ driver
 status ── RequestMasterState ─────▶ master ─── MasterState ──────────▶ status
```

Cluster deploy mode (``sparkctl submit --deploy-mode cluster``): a submission client hands
the application's files to the master, which has a worker run the driver.

```
 submit ── RequestSubmitDriver ─────▶ master ─── SubmitDriverResponse ───▶ submit
 submit ── RequestDriverStatus ─────▶ master ─── DriverStatusResponse ───▶ submit (again on every
 submit ── RequestKillDriver ───────▶ master ─── KillDriverResponse ─────▶ submit  change if follow)
 worker ◀─ LaunchDriver / KillDriver ─ master ◀── DriverStateChanged ──── worker
 logs ──── RequestDriverLog ────────▶ worker ─── DriverLogResponse ──────▶ logs  (worker's rpc port)
```
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# worker states
ALIVE = "ALIVE"
DEAD = "DEAD"
DECOMMISSIONED = "DECOMMISSIONED"

# application states (UNKNOWN, as in Spark: restored by a recovering master, whose driver
# has not re-registered yet)
WAITING = "WAITING"
RUNNING = "RUNNING"
UNKNOWN = "UNKNOWN"
FINISHED = "FINISHED"
FAILED = "FAILED"
KILLED = "KILLED"

# executor states
LAUNCHING = "LAUNCHING"
EXEC_RUNNING = "RUNNING"
EXITED = "EXITED"
EXEC_FAILED = "FAILED"
EXEC_KILLED = "KILLED"
LOST = "LOST"

# driver states (cluster deploy mode). WAITING, FINISHED, FAILED and KILLED are shared with
# applications. WAITING: queued for a worker with room; SUBMITTED: sent to a worker, whose
# process has not started yet; RUNNING; then FINISHED (exit 0), FAILED (non-zero exit),
# KILLED (on request), or ERROR (could not be started, or lost with its worker).
SUBMITTED = "SUBMITTED"
ERROR = "ERROR"
FINAL_DRIVER_STATES = (FINISHED, FAILED, KILLED, ERROR)


# ---------------------------------------------------------------- worker <-> master
@dataclass(slots=True)
class RegisterWorker:
    worker_id: str
    host: str
    port: int
    cores: int
    memory: int  # MiB
    webui_port: int = 0
    # executors still running from before a master restart: (app_id, executor_id, cores, memory)
    executors: list[tuple[str, str, int, int]] = field(default_factory=list)
    # drivers it runs, or whose end it has not reported yet: (driver_id, cores, memory)
    drivers: list[tuple[str, int, int]] = field(default_factory=list)


@dataclass(slots=True)
class RegisteredWorker:
    master_url: str
    master_webui_url: str
    heartbeat_interval: float  # seconds between WorkerHeartbeat messages


@dataclass(slots=True)
class RegisterWorkerFailed:
    message: str


@dataclass(slots=True)
class WorkerHeartbeat:
    worker_id: str


@dataclass(slots=True)
class LaunchExecutor:
    app_id: str
    executor_id: str
    cores: int
    memory: int  # MiB
    driver_host: str
    driver_port: int
    app_name: str
    settings: dict[str, Any] = field(default_factory=dict)  # executor settings (memory fractions, batch size...)


@dataclass(slots=True)
class KillExecutor:
    app_id: str
    executor_id: str


@dataclass(slots=True)
class ApplicationFinished:
    app_id: str


@dataclass(slots=True)
class ExecutorStateChanged:
    app_id: str
    executor_id: str
    state: str
    message: str = ""
    exit_code: int | None = None
    log_tail: str = ""  # last lines of the executor's stderr, for "why did it fail" messages


# ---------------------------------------------------------------- driver <-> master
@dataclass(slots=True)
class ApplicationDescription:
    name: str
    driver_host: str
    driver_port: int
    cores_max: int | None  # spark.cores.max / --total-executor-cores; None: all
    executor_cores: int | None  # spark.executor.cores; None: one executor per worker with all its free cores
    executor_memory: int  # MiB
    user: str = ""
    executor_settings: dict[str, Any] = field(default_factory=dict)
    app_ui_url: str = ""  # the driver's live UI, linked from the master's page ("" without one)


@dataclass(slots=True)
class RegisterApplication:
    app: ApplicationDescription
    app_id: str | None = None  # set when a driver re-registers with a restarted master


@dataclass(slots=True)
class RegisteredApplication:
    app_id: str
    master_url: str


@dataclass(slots=True)
class ExecutorAdded:
    executor_id: str
    worker_id: str
    host: str
    cores: int
    memory: int


@dataclass(slots=True)
class ExecutorUpdated:
    executor_id: str
    state: str
    message: str = ""
    exit_code: int | None = None
    worker_lost: bool = False
    log_tail: str = ""


@dataclass(slots=True)
class WorkerRemoved:
    worker_id: str
    host: str
    message: str


@dataclass(slots=True)
class ApplicationRemoved:
    message: str


@dataclass(slots=True)
class UnregisterApplication:
    app_id: str
    state: str = FINISHED


# ---------------------------------------------------------------- status
@dataclass(slots=True)
class RequestMasterState:
    pass


@dataclass(slots=True)
class MasterState:
    """The master's JSON document (Spark's field names), as a dict."""

    json: dict[str, Any]


@dataclass(slots=True)
class RequestKillApplication:
    app_id: str


# ---------------------------------------------------------------- cluster deploy mode
@dataclass(slots=True)
class DriverFile:
    """One file of a driver's application, carried by value: the worker has no copy."""

    name: str  # a plain file name, no directory
    data: bytes


@dataclass(slots=True)
class DriverDescription:
    """What a worker needs to run a driver: ``sparkctl submit --deploy-mode client`` of these."""

    app_file: DriverFile
    app_args: list[str]
    py_files: list[DriverFile]
    settings: dict[str, str]  # the submitter's settings (--conf, defaults file, flags)
    cores: int  # reserved on the worker for the driver process
    memory: int  # MiB, reserved likewise
    supervise: bool = False  # start it again when it exits non-zero or its worker dies
    user: str = ""
    files: list[DriverFile] = field(default_factory=list)  # --files, for SparkFiles.get
    archives: list[DriverFile] = field(default_factory=list)  # --archives, unpacked on executors
    archive_aliases: list[str] = field(default_factory=list)  # each archive's #alias ("" for none)


@dataclass(slots=True)
class RequestSubmitDriver:
    desc: DriverDescription


@dataclass(slots=True)
class SubmitDriverResponse:
    success: bool
    driver_id: str | None
    message: str


@dataclass(slots=True)
class RequestKillDriver:
    driver_id: str


@dataclass(slots=True)
class KillDriverResponse:
    driver_id: str
    success: bool
    message: str


@dataclass(slots=True)
class RequestDriverStatus:
    driver_id: str
    follow: bool = False  # also send a DriverStatusResponse on every change, until a final state


@dataclass(slots=True)
class DriverStatusResponse:
    driver_id: str
    found: bool
    state: str = ""
    worker_id: str = ""  # the worker that runs it, or ran it last
    worker_host_port: str = ""  # that worker's rpc address, where its log can be asked for
    exit_code: int | None = None
    message: str = ""
    launches: int = 0
    log_tail: str = ""  # last lines of its stderr, when its last launch failed


@dataclass(slots=True)
class LaunchDriver:
    driver_id: str
    desc: DriverDescription


@dataclass(slots=True)
class KillDriver:
    driver_id: str


@dataclass(slots=True)
class DriverStateChanged:
    driver_id: str
    state: str  # RUNNING, FINISHED, FAILED, KILLED or ERROR
    exit_code: int | None = None
    message: str = ""
    log_tail: str = ""  # last lines of the driver's stderr when it failed


@dataclass(slots=True)
class RequestDriverLog:
    """Ask a worker for part of a driver's stdout or stderr, from byte *offset* on."""

    driver_id: str
    stream: str = "stdout"  # "stdout" or "stderr"
    offset: int = 0
    max_bytes: int = 1 << 20


@dataclass(slots=True)
class DriverLogResponse:
    driver_id: str
    stream: str
    data: bytes
    offset: int  # where *data* starts
    size: int  # the file's size when it was read
    error: str = ""  # set when there is no such log here
