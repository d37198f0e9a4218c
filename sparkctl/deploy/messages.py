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
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# worker states
ALIVE = "ALIVE"
DEAD = "DEAD"
DECOMMISSIONED = "DECOMMISSIONED"

# application states
WAITING = "WAITING"
RUNNING = "RUNNING"
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
