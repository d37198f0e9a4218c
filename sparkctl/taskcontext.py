"""TaskContext: what a running task knows about itself and its executor.

``TaskContext.get()`` and ``TaskContext()`` inside a task return the running task's context
(PySpark's API: ``partitionId()``, ``stageId()``, ``attemptNumber()``, ``taskAttemptId()``,
``cpus()``, ``resources()``, ``getLocalProperty()``). On the driver ``get()`` is ``None`` and
``TaskContext()`` an empty context whose ids are ``None``, as in PySpark. The same object
carries the executor-side services RDDs use while computing: reading shuffle blocks, getting
and putting cached blocks, the memory budget for spills.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, cast

if TYPE_CHECKING:
    from sparkctl.executor.slot import SlotEnvironment


class TaskContext:
    _current: ClassVar["TaskContext | None"] = None

    def __new__(cls, *args: Any, **kwargs: Any) -> "TaskContext":
        # PySpark's TaskContext() is the running task's context when there is one
        if not args and not kwargs:
            current = TaskContext._current
            if isinstance(current, cls):
                return current
        return object.__new__(cls)

    def __init__(self, stage_id: int | None = None, stage_attempt: int | None = None,
                 partition_id: int | None = None, attempt_number: int | None = None,
                 task_attempt_id: int | None = None, env: "SlotEnvironment | None" = None,
                 properties: dict[str, str] | None = None,
                 shuffle_statuses: Mapping[int, Any] | None = None) -> None:
        if stage_id is None and "_stage_id" in self.__dict__:
            return  # TaskContext() in a task: __new__ gave back the running context as it is
        # None only in an empty context made on the driver, which runs no task code
        self._stage_id = cast(int, stage_id)
        self._stage_attempt = cast(int, stage_attempt)
        self._partition_id = cast(int, partition_id)
        self._attempt_number = cast(int, attempt_number)
        self._task_attempt_id = cast(int, task_attempt_id)
        self._properties = properties or {}
        self.env = cast("SlotEnvironment", env)
        self.shuffle_statuses = shuffle_statuses or {}
        self.blocks_added: list[str] = []
        # block id -> (serialized size, kept on disk rather than in memory): the UI's storage page
        self.block_sizes: dict[str, tuple[int, bool]] = {}
        self._on_completion: list[Callable[[], None]] = []
        self.accumulator_updates: dict[int, Any] = {}
        self.block_locations: dict[str, tuple[str, int]] = {}

    @classmethod
    def get(cls) -> "TaskContext | None":
        return cls._current

    def partitionId(self) -> int:
        return self._partition_id

    def stageId(self) -> int:
        return self._stage_id

    def attemptNumber(self) -> int:
        return self._attempt_number

    def taskAttemptId(self) -> int:
        return self._task_attempt_id

    def getLocalProperty(self, key: str) -> str | None:
        return self._properties.get(key)

    def cpus(self) -> int | None:
        """The cores this task holds (spark.task.cpus); None on the driver."""
        if self.env is None:
            return None
        return getattr(self.env, "task_cpus", 1)

    def resources(self) -> dict[str, Any]:
        """Custom resources (GPUs...) assigned to the task: sparkctl schedules none, so empty."""
        return {}

    # executor-side services -------------------------------------------------
    @property
    def memory_budget(self) -> int:
        return self.env.memory_budget

    @property
    def local_dir(self) -> str:
        return self.env.local_dir

    @property
    def batch_size(self) -> int:
        return self.env.batch_size

    def read_shuffle(self, shuffle_id: int, reduce_index: int) -> Iterator[Any]:
        return self.env.read_shuffle(shuffle_id, reduce_index, self.shuffle_statuses[shuffle_id])

    def add_completion_listener(self, fn: Callable[[], None]) -> None:
        self._on_completion.append(fn)

    def run_completion_listeners(self) -> None:
        for fn in reversed(self._on_completion):
            try:
                fn()
            except Exception:  # a cleanup failure must not mask the task's outcome
                pass
        self._on_completion.clear()


class BarrierTaskInfo:
    """Where one task of a barrier stage runs: ``address`` is its executor's "host:port"."""

    __slots__ = ("address",)

    def __init__(self, address: str) -> None:
        self.address = address

    def __repr__(self) -> str:
        return f"BarrierTaskInfo(address={self.address!r})"


class BarrierTaskContext(TaskContext):
    """The context of a task of a barrier stage (``rdd.barrier().mapPartitions(f)``).

    Its tasks all run at once, so they can work together: ``barrier()`` waits until every
    task of the stage has called it, ``allGather(message)`` also hands each task every
    task's message (in partition order), and ``getTaskInfos()`` says where each task runs.
    A sync goes from the task's slot through its executor to the driver's
    BarrierCoordinator (sparkctl.scheduler.barrier), which answers all tasks at once.
    """

    _barrier_epoch = 0  # syncs this task completed: tells the coordinator which round it is in

    @classmethod
    def get(cls) -> "BarrierTaskContext":  # type: ignore[override]
        """The running barrier task's context; an error anywhere else (on the driver, in a
        task of an ordinary stage), since only a barrier stage's tasks can sync."""
        tc = TaskContext.get()
        if not isinstance(tc, BarrierTaskContext):
            raise RuntimeError("BarrierTaskContext.get() works only inside a task of a barrier stage "
                               "(rdd.barrier().mapPartitions(...))")
        return tc

    def barrier(self) -> None:
        """Block until every task of this stage attempt has called barrier(); fails after
        spark.barrier.sync.timeout, or when the tasks mix barrier() and allGather()."""
        self._sync("barrier", "")

    def allGather(self, message: str = "") -> list[str]:
        """As barrier(), and return every task's ``message``, ordered by partition."""
        if not isinstance(message, str):
            raise TypeError(f"allGather's message must be a str, got {type(message).__name__}")
        return self._sync("allGather", message)

    def getTaskInfos(self) -> list[BarrierTaskInfo]:
        """Every task of this barrier stage, ordered by partition."""
        addresses = self.getLocalProperty("addresses") or ""
        return [BarrierTaskInfo(a.strip()) for a in addresses.split(",")] if addresses else []

    def _sync(self, kind: str, message: str) -> list[str]:
        epoch = self._barrier_epoch
        env: Any = self.env  # a task's slot: BarrierTaskContext.get() raised anywhere else
        try:
            return env.barrier_sync(self.taskAttemptId(), epoch, kind, message)
        finally:
            self._barrier_epoch = epoch + 1
