"""Messages between a driver and its executors (one authenticated connection each).

```
 executor ── RegisterExecutor ──▶ driver
 executor ◀─ RegisteredExecutor ─ driver
 executor ◀─ StageBinary / PutBroadcast (once per executor) ─ driver
 executor ◀─ LaunchTask ───────── driver      (streamed as slots free up)
 executor ── GetMapOutputStatuses ──▶ driver  (once per shuffle and epoch, see scheduler/map_output_tracker.py)
 executor ◀─ [PutBroadcast] MapOutputStatuses ─ driver  (compressed; a broadcast when large)
 executor ── StatusUpdate ───────▶ driver     (result, failure or fetch failure)
 driver ══ FetchBlockChunk ══▶ executor's block server   (an indirect result, in chunks)
 executor ◀─ RemoveBlock ──────── driver      (once the driver has the result, or refused it)
 executor ── ExecutorHeartbeat ──▶ driver
 executor ── BarrierRequest ─────▶ driver     (a barrier task's barrier()/allGather(), see scheduler/barrier.py)
 executor ◀─ BarrierResponse ──── driver     (once every task of the stage attempt asked)
 executor ◀─ KillTask / RemoveBroadcast / RemoveRdd / RemoveShuffle / StopExecutor ─ driver
 executor ◀─ PutFile chunks ────── driver     (addFile/addArchive/addPyFile, before any later LaunchTask)
```
A task result too large for one frame (``spark.rpc.message.maxSize``) never rides in its
StatusUpdate: the executor keeps the whole update as a block and reports only the block's
id and size (an *indirect* result, as Spark's), and the driver fetches it in chunks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class RegisterExecutor:
    executor_id: str
    host: str
    port: int  # block server: other executors fetch shuffle and cached blocks here
    cores: int
    pid: int
    worker_id: str | None = None
    # where this executor's stdout/stderr can be read (Spark's executor log URLs), as the
    # worker gave them in SPARKCTL_EXECUTOR_LOG_URLS; None when it gave none
    log_urls: dict[str, str] | None = None


@dataclass(slots=True)
class RegisteredExecutor:
    app_id: str
    files: dict[str, bytes] = field(default_factory=dict)  # the app's --py-files, put on the slots' path
    # a StatusUpdate larger than this goes back as an indirect result (below the driver's frame limit)
    max_direct_result: int = 0
    # spark.driver.maxResultSize (0: none): a larger result is refused unseen, so it is not even kept
    max_result_size: int = 0


@dataclass(slots=True)
class StageBinary:
    """What every task of one stage attempt shares, sent once per executor."""

    key: tuple[int, int]  # (stage id, stage attempt)
    binary: bytes  # cloudpickled (rdd, result func) or (rdd, shuffle dependency)
    # the shuffles this stage reads: their map statuses are asked for (GetMapOutputStatuses),
    # never carried here, where they would cost maps x reducers bytes per executor
    shuffle_ids: tuple[int, ...]
    broadcast_ids: tuple[int, ...]
    is_shuffle_map: bool
    barrier: bool = False  # a barrier stage: its tasks get a BarrierTaskContext
    # spark.python.profile: the accumulator the tasks' cProfile stats are added to (None: off)
    profile_aid: int | None = None
    # the driver's map output epoch when the stage was submitted: statuses an executor
    # fetched at an older epoch may name lost outputs, and are fetched again
    map_output_epoch: int = 0
    # a shuffle map stage with push-based shuffle: (mergers, largest slice pushed, largest
    # push), see storage/merged_shuffle.py; None: map tasks push nothing
    push: tuple[tuple[tuple[str, str, int] | None, ...], int, int] | None = None


@dataclass(slots=True)
class GetMapOutputStatuses:
    """An executor asks for one shuffle's map statuses (Spark's GetMapOutputStatuses)."""

    shuffle_id: int


@dataclass(slots=True)
class MapOutputStatuses:
    """The answer: the statuses encoded by ``map_output_tracker.encode_statuses``, inline,
    or (when large) held in broadcast ``broadcast_id``, which the driver sent first unless
    the executor already had it."""

    shuffle_id: int
    epoch: int  # the driver's map output epoch when it answered
    data: bytes | None
    broadcast_id: int | None = None
    complete: bool = True  # every map output is registered
    error: str = ""


@dataclass(slots=True)
class TaskDescription:
    task_id: int
    stage_key: tuple[int, int]
    partition: int
    attempt: int
    split: bytes  # the pickled Partition this task computes
    properties: dict[str, str] | None = None
    # cached blocks this task may read that live on other executors: block id -> (host, port)
    block_locations: dict[str, tuple[str, int]] | None = None


@dataclass(slots=True)
class LaunchTask:
    task: TaskDescription


@dataclass(slots=True)
class PutBroadcast:
    bid: int
    data: bytes


@dataclass(slots=True)
class RemoveBroadcast:
    bid: int


@dataclass(slots=True)
class RemoveRdd:
    rdd_id: int


@dataclass(slots=True)
class RemoveShuffle:
    shuffle_id: int


@dataclass(slots=True)
class KillTask:
    task_id: int
    reason: str


@dataclass(slots=True)
class RemoveBlock:
    """Drop a block the driver no longer needs (an indirect task result it fetched or refused)."""

    block_id: str


@dataclass(slots=True)
class PutFile:
    """One chunk of a file the application added (addFile, addArchive, addPyFile); see
    sparkctl/files.py. Chunks of one entry arrive in order, offset 0 first."""

    name: str  # its name under the executor's SparkFiles root
    kind: str  # "file": stored as is; "zip" / "tar": unpacked into a directory of that name
    offset: int
    data: bytes
    last: bool
    python: bool = False  # added by addPyFile: the task slots' import path changes


@dataclass(slots=True)
class StopExecutor:
    reason: str = "driver stopped"


# task states, as Spark names them
FINISHED = "FINISHED"
FAILED = "FAILED"
KILLED = "KILLED"
FETCH_FAILED = "FETCH_FAILED"


@dataclass(slots=True)
class TaskOutcome:
    """Pickled inside a StatusUpdate by the task slot; the driver unpickles it."""

    value: Any = None  # result of a result task, MapStatus of a shuffle map task
    accum_updates: dict[int, Any] = field(default_factory=dict)
    blocks_added: list[str] = field(default_factory=list)
    error: BaseException | None = None
    error_type: str = ""
    error_message: str = ""
    traceback: str = ""
    duration: float = 0.0
    # Spark's TaskMetrics, flat: executorRunTime, shuffleBytesWritten, inputRecordsRead, ...
    # (see sparkctl/executor/task_metrics.py for every key); a missing key means 0
    metrics: dict[str, int] | None = None
    # cached blocks this task stored: block id -> (serialized bytes, on disk rather than in memory)
    block_sizes: dict[str, tuple[int, bool]] | None = None


@dataclass(slots=True)
class StatusUpdate:
    executor_id: str
    task_id: int
    state: str
    outcome: bytes
    # set for an indirect result: (block id, size) of the full pickled StatusUpdate, kept in
    # the executor's block manager; ``outcome`` is then empty
    result_block: tuple[str, int] | None = None


@dataclass(slots=True)
class ExecutorHeartbeat:
    executor_id: str
    running: tuple[int, ...] = ()


@dataclass(slots=True)
class BarrierRequest:
    """A barrier task's ``barrier()``/``allGather()`` call, relayed by its executor; the
    driver's BarrierCoordinator answers once every task of the stage attempt has called."""

    executor_id: str
    task_id: int
    epoch: int  # how many syncs this task completed before this one
    kind: str  # "barrier" or "allGather"
    message: str = ""


@dataclass(slots=True)
class BarrierResponse:
    """Every task's message in partition order, or why the sync failed."""

    task_id: int
    epoch: int
    messages: list[str] | None
    error: str | None = None


@dataclass(slots=True)
class HeartbeatResponse:
    """Keeps the executor's side of the connection busy: silence means the driver is gone."""
