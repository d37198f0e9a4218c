"""The task scheduler: task sets in, task launches onto free executor slots out.

A state machine with no I/O: the runtime tells it about executors (added, lost), task
sets (submitted, cancelled) and task status updates; it answers with ``Launch`` actions
(run partition P of task set T on executor E), ``KillTask`` actions and ``TaskEnded``
events for the DAG scheduler. It prefers the executor that caches a task's input, runs a
failed task elsewhere when another executor exists, and gives up on a task set after
``spark.task.maxFailures`` failures of one task, reporting every attempt's reason. The
loss of the executor a task runs on counts as one of its failures unless the application
cannot have caused it (see ``executor_lost``).
Task sets are served first come, first served (FIFO by job, then stage).

A *barrier* task set (a stage of ``rdd.barrier()``) follows other rules, as Spark's: its
tasks start together or not at all (it waits until the cluster's free slots can hold all
of them, and fails at once if the cluster's slots never can); a failed task fails the
whole attempt: the others are killed and the DAG scheduler reruns the stage
(``BarrierTaskSetFailed``). It is never speculated.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sparkctl.errors import BarrierStageError, ExecutorLostError, TaskFailedError

PENDING, RUNNING, SUCCEEDED = 0, 1, 2


@dataclass
class TaskAttempt:
    task_id: int
    tsm: "TaskSetManager"
    index: int
    executor_id: str
    attempt: int
    start: float


@dataclass
class Launch:
    attempt: TaskAttempt


@dataclass
class KillTask:
    executor_id: str
    task_id: int
    reason: str


@dataclass
class TaskEnded:
    """For the DAG scheduler."""

    stage_id: int
    stage_attempt: int
    partition: int
    success: bool
    value: Any = None
    error: BaseException | None = None
    accum_updates: dict[int, Any] | None = None
    blocks_added: list[str] | None = None
    executor_id: str | None = None


@dataclass
class TaskSetAborted:
    stage_id: int
    stage_attempt: int
    error: BaseException


@dataclass
class BarrierTaskSetFailed:
    """A task of a barrier stage attempt failed: the attempt is over (its other tasks are
    being killed); the DAG scheduler decides whether the stage runs again."""

    stage_id: int
    stage_attempt: int
    error: BaseException
    reason: str


#: a preferred location that names a host rather than an executor
HOST = "host:"


class TaskSetManager:
    """One stage attempt's tasks: which are pending, running, done, and how often failed."""

    def __init__(self, stage_id: int, stage_attempt: int, job_id: int, partitions: list[int],
                 preferred: dict[int, set[str]] | None = None, max_failures: int = 4,
                 payload: Any = None, barrier: bool = False) -> None:
        self.stage_id = stage_id
        self.stage_attempt = stage_attempt
        self.job_id = job_id
        self.partitions = partitions
        self.payload = payload  # the runtime's serialized stage data; opaque here
        self.barrier = barrier  # all tasks start together; one failure ends the attempt
        self.max_failures = max_failures
        n = len(partitions)
        self.state = [PENDING] * n
        self.failures = [0] * n
        self.attempts = [0] * n
        self.failed_on: list[set[str]] = [set() for _ in range(n)]
        self.reasons: list[list[str]] = [[] for _ in range(n)]
        self.pending: deque[int] = deque(range(n))
        self.by_executor: dict[str, list[int]] = {}
        # partition -> where its data is (task locality): executor ids holding it cached, or
        # "host:H" for a host holding its input file's bytes (HDFS blocks)
        self.preferred = preferred or {}
        self.by_host: dict[str, list[int]] = {}
        for i, p in enumerate(partitions):
            for where in (preferred or {}).get(p, ()):
                if where.startswith(HOST):
                    self.by_host.setdefault(where[len(HOST):], []).append(i)
                else:
                    self.by_executor.setdefault(where, []).append(i)
        for lst in (*self.by_executor.values(), *self.by_host.values()):
            lst.reverse()  # pop() from the end takes them in partition order
        self.running: dict[int, TaskAttempt] = {}
        self.num_succeeded = 0
        self.zombie = False  # no more launches (aborted, cancelled or superseded)
        self.durations: list[float] = []  # of successful tasks, for speculation
        self.speculatable: set[int] = set()  # stragglers waiting for a second copy

    @property
    def sort_key(self) -> tuple[int, int]:
        return (self.job_id, self.stage_id)

    def is_done(self) -> bool:
        return self.num_succeeded == len(self.partitions)

    def next_index(self, executor_id: str, num_executors: int, host: str = "") -> int | None:
        if self.zombie:
            return None
        for local in (self.by_executor.get(executor_id), self.by_host.get(host)):
            while local:
                i = local.pop()
                if self.state[i] == PENDING:
                    return i
        pending = self.pending
        for _ in range(len(pending)):
            i = pending.popleft()
            if self.state[i] != PENDING:
                continue
            if executor_id in self.failed_on[i] and len(self.failed_on[i]) < num_executors:
                pending.append(i)  # it failed here: leave it for another executor
                continue
            return i
        return self._speculative_index(executor_id)

    def _speculative_index(self, executor_id: str) -> int | None:
        for i in sorted(self.speculatable):
            if self.state[i] != RUNNING:
                self.speculatable.discard(i)
                continue
            if all(a.executor_id != executor_id for a in self.running.values() if a.index == i):
                self.speculatable.discard(i)
                return i  # a copy on another executor: the first to finish wins
        return None

    def find_stragglers(self, now: float, quantile: float, multiplier: float, min_time: float = 0.1) -> bool:
        """Mark running tasks much slower than the median of finished ones (Spark's rule:
        once ``quantile`` of the tasks finished, a task running longer than ``multiplier``
        x their median is speculated). True if any task was newly marked."""
        n = len(self.partitions)
        if self.barrier or self.zombie or n < 2 or self.num_succeeded < max(1, int(quantile * n)) or not self.durations:
            return False
        median = sorted(self.durations)[len(self.durations) // 2]
        threshold = max(multiplier * median, min_time)
        copies: dict[int, int] = {}
        for a in self.running.values():
            copies[a.index] = copies.get(a.index, 0) + 1
        marked = False
        for a in self.running.values():
            if (self.state[a.index] == RUNNING and copies[a.index] == 1 and a.index not in self.speculatable
                    and now - a.start > threshold):
                self.speculatable.add(a.index)
                marked = True
        return marked


@dataclass
class ExecutorSlots:
    executor_id: str
    host: str
    cores: int
    free: int
    running: set[int] = field(default_factory=set)


class TaskScheduler:
    def __init__(self, max_failures: int = 4, cpus_per_task: int = 1) -> None:
        self.max_failures = max_failures
        # spark.task.cpus: a task takes this many of an executor's cores (ExecutorSlots.free
        # counts cores), so an executor of 4 cores runs 2 tasks at once with 2 cpus a task
        self.cpus_per_task = cpus_per_task
        # cores the cluster is meant to have (e.g. local[4]: 4), when the backend knows it;
        # with the registered executors' cores it bounds the barrier stages that can run
        self.expected_cores = 0
        self.executors: dict[str, ExecutorSlots] = {}
        self.task_sets: list[TaskSetManager] = []
        self.attempts: dict[int, TaskAttempt] = {}
        self.next_task_id = 0

    # ------------------------------------------------------------- executors
    def executor_added(self, executor_id: str, host: str, cores: int, now: float = 0.0) -> list[Any]:
        self.executors[executor_id] = ExecutorSlots(executor_id, host, cores, cores)
        return self._offer(executor_id, now)

    def executor_lost(self, executor_id: str, reason: str, now: float = 0.0, *,
                      caused_by_app: bool = True) -> list[Any]:
        """Requeue the tasks it was running.

        As Spark's ``exitCausedByApp``: when the loss may be the application's doing (the
        process died or its connection dropped; a task can kill its executor by running it
        out of memory or by a huge result), each of its running tasks counts the loss as one
        failure, so a task that takes down every executor it lands on fails its job after
        ``spark.task.maxFailures`` instead of killing executors forever. A loss the
        application cannot have caused (its worker died, the executor was killed on purpose)
        costs the tasks nothing.
        """
        slots = self.executors.pop(executor_id, None)
        if slots is None:
            return []
        actions: list[Any] = []
        for tid in sorted(slots.running):
            att = self.attempts.pop(tid, None)
            if att is None:
                continue
            tsm = att.tsm
            tsm.running.pop(tid, None)
            if tsm.state[att.index] != RUNNING or tsm.zombie:
                continue
            why = f"executor {executor_id} lost: {reason}"
            if tsm.barrier:
                actions += self._barrier_failed(att, ExecutorLostError(
                    f"executor {executor_id} was lost while running task {tsm.partitions[att.index]} of barrier "
                    f"stage {tsm.stage_id}.{tsm.stage_attempt}: {reason}"), why)
            elif caused_by_app:
                error = ExecutorLostError(
                    f"executor {executor_id} was lost while running task {tsm.partitions[att.index]} of stage "
                    f"{tsm.stage_id}.{tsm.stage_attempt} (attempt {att.attempt}): {reason}")
                actions += self._count_failure(att, error, why)
            elif not self._other_copy_running(tsm, att.index):
                tsm.state[att.index] = PENDING
                tsm.pending.appendleft(att.index)
                tsm.reasons[att.index].append(f"attempt {att.attempt} (not counted): {why}")
        self._drop_finished_sets()
        for eid in list(self.executors):
            actions += self._offer(eid, now)
        return actions

    @staticmethod
    def _other_copy_running(tsm: TaskSetManager, index: int) -> bool:
        return any(a.index == index for a in tsm.running.values())

    # ------------------------------------------------------------- task sets
    def submit(self, tsm: TaskSetManager, now: float = 0.0) -> list[Any]:
        if tsm.barrier:
            c = self.cpus_per_task
            capacity = max(self.expected_cores // c, sum(e.cores // c for e in self.executors.values()))
            if 0 < capacity < len(tsm.partitions):
                tsm.zombie = True
                return [TaskSetAborted(tsm.stage_id, tsm.stage_attempt, BarrierStageError(
                    f"barrier stage {tsm.stage_id} has {len(tsm.partitions)} tasks, which must all run at once, "
                    f"but the cluster has only {capacity} task slots in total; give the barrier RDD at most "
                    f"{capacity} partitions (e.g. with repartition or coalesce before .barrier()) or add cores"))]
        self.task_sets.append(tsm)
        self.task_sets.sort(key=lambda t: t.sort_key)
        actions: list[Any] = []
        for eid in list(self.executors):
            actions += self._offer(eid, now)
        return actions

    def cancel(self, stage_id: int, stage_attempt: int, reason: str) -> list[Any]:
        actions: list[Any] = []
        for tsm in self.task_sets:
            if tsm.stage_id == stage_id and tsm.stage_attempt == stage_attempt:
                tsm.zombie = True
                for att in tsm.running.values():
                    actions.append(KillTask(att.executor_id, att.task_id, reason))
        self._drop_finished_sets()
        return actions

    def _drop_finished_sets(self) -> None:
        self.task_sets = [t for t in self.task_sets if not ((t.zombie or t.is_done()) and not t.running)]

    # ------------------------------------------------------------- offers
    def _offer(self, executor_id: str, now: float) -> list[Any]:
        slots = self.executors.get(executor_id)
        if slots is None:
            return []
        actions: list[Any] = []
        n_exec = len(self.executors)
        while slots.free >= self.cpus_per_task:
            launched = False
            for tsm in self.task_sets:
                if tsm.barrier:
                    started = self._offer_barrier(tsm, now)
                    if not started:
                        continue
                    actions += started
                    launched = True
                    break
                i = tsm.next_index(executor_id, n_exec, slots.host)
                if i is None:
                    continue
                actions.append(Launch(self._start(tsm, i, slots, now)))
                launched = True
                break
            if not launched:
                break
        return actions

    def _offer_barrier(self, tsm: TaskSetManager, now: float) -> list[Any]:
        """Start every task of a barrier task set at once, or none while the free slots of
        all executors together cannot hold them. A task goes to an executor caching its
        input if one has a free slot, else to the executor with the most free slots, which
        spreads the tasks over the cluster."""
        n = len(tsm.partitions)
        c = self.cpus_per_task
        if tsm.zombie or tsm.running or tsm.num_succeeded or sum(e.free // c for e in self.executors.values()) < n:
            return []
        preferred: dict[int, list[str]] = {}
        for eid, indices in tsm.by_executor.items():
            for i in indices:
                preferred.setdefault(i, []).append(eid)
        actions: list[Any] = []
        for i in range(n):
            slots = next((self.executors[e] for e in preferred.get(i, ())
                          if e in self.executors and self.executors[e].free >= c), None)
            if slots is None:
                slots = max(self.executors.values(), key=lambda e: e.free)
            actions.append(Launch(self._start(tsm, i, slots, now)))
        tsm.pending.clear()
        tsm.by_executor.clear()
        tsm.by_host.clear()
        return actions

    def _barrier_failed(self, att: TaskAttempt, error: BaseException, reason: str) -> list[Any]:
        """One task of a barrier attempt failed: kill the others and end the attempt."""
        tsm = att.tsm
        tsm.zombie = True
        tsm.reasons[att.index].append(f"attempt {att.attempt} on executor {att.executor_id}: {reason}")
        actions: list[Any] = [KillTask(other.executor_id, other.task_id,
                                       f"task {tsm.partitions[att.index]} of the barrier stage failed")
                              for other in tsm.running.values()]
        actions.append(BarrierTaskSetFailed(tsm.stage_id, tsm.stage_attempt, error,
                                            f"task {tsm.partitions[att.index]} failed: {reason}"))
        return actions

    def _start(self, tsm: TaskSetManager, index: int, slots: ExecutorSlots, now: float) -> TaskAttempt:
        tid = self.next_task_id
        self.next_task_id += 1
        att = TaskAttempt(tid, tsm, index, slots.executor_id, tsm.attempts[index], now)
        tsm.attempts[index] += 1
        tsm.state[index] = RUNNING
        tsm.running[tid] = att
        self.attempts[tid] = att
        slots.free -= self.cpus_per_task
        slots.running.add(tid)
        return att

    # ------------------------------------------------------------- status updates
    def _release(self, att: TaskAttempt) -> None:
        self.attempts.pop(att.task_id, None)
        att.tsm.running.pop(att.task_id, None)
        slots = self.executors.get(att.executor_id)
        if slots is not None and att.task_id in slots.running:
            slots.running.discard(att.task_id)
            slots.free += self.cpus_per_task

    def task_succeeded(self, task_id: int, value: Any, accum_updates: dict[int, Any] | None,
                       blocks_added: list[str] | None, now: float = 0.0) -> list[Any]:
        att = self.attempts.get(task_id)
        if att is None:
            return []
        self._release(att)
        tsm = att.tsm
        actions: list[Any] = []
        if tsm.state[att.index] != SUCCEEDED:
            tsm.state[att.index] = SUCCEEDED
            tsm.num_succeeded += 1
            tsm.durations.append(now - att.start)
            tsm.speculatable.discard(att.index)
            for other in list(tsm.running.values()):  # a speculative copy lost the race
                if other.index == att.index:
                    actions.append(KillTask(other.executor_id, other.task_id, "another attempt succeeded"))
            actions.append(TaskEnded(tsm.stage_id, tsm.stage_attempt, tsm.partitions[att.index], True, value,
                                     None, accum_updates, blocks_added, att.executor_id))
        self._drop_finished_sets()
        return actions + self._offer(att.executor_id, now)

    def task_failed(self, task_id: int, error: BaseException, reason: str, *, fetch_failed: bool = False,
                    killed: bool = False, now: float = 0.0) -> list[Any]:
        att = self.attempts.get(task_id)
        if att is None:
            return []
        self._release(att)
        tsm = att.tsm
        i = att.index
        actions: list[Any] = []
        if fetch_failed:
            # the map output this task needs is gone: this stage attempt cannot finish
            tsm.zombie = True
            actions.append(TaskEnded(tsm.stage_id, tsm.stage_attempt, tsm.partitions[i], False, None, error))
        elif tsm.barrier and not tsm.zombie and tsm.state[i] != SUCCEEDED:
            actions += self._barrier_failed(att, error, reason)
        elif killed or tsm.zombie or tsm.state[i] == SUCCEEDED:
            if tsm.state[i] == RUNNING and not self._other_copy_running(tsm, i) and not tsm.zombie:
                tsm.state[i] = PENDING
                tsm.pending.appendleft(i)
        else:
            actions += self._count_failure(att, error, reason)
        self._drop_finished_sets()
        for eid in list(self.executors):
            actions += self._offer(eid, now)
        return actions

    def release(self, task_id: int, now: float = 0.0) -> list[Any]:
        """Forget an attempt whose outcome is thrown away (its job was failed because of
        it), freeing its slot without counting a failure or running it again."""
        att = self.attempts.get(task_id)
        if att is None:
            return []
        self._release(att)
        self._drop_finished_sets()
        return self._offer(att.executor_id, now)

    def _count_failure(self, att: TaskAttempt, error: BaseException, reason: str) -> list[Any]:
        """One more failure of the attempt's task: run it again, or give up on its task set."""
        tsm = att.tsm
        i = att.index
        tsm.failures[i] += 1
        tsm.failed_on[i].add(att.executor_id)
        tsm.reasons[i].append(f"attempt {att.attempt} on executor {att.executor_id}: {reason}")
        if tsm.failures[i] >= tsm.max_failures:
            tsm.zombie = True
            actions: list[Any] = [KillTask(other.executor_id, other.task_id, "stage aborted")
                                  for other in tsm.running.values()]
            actions.append(TaskSetAborted(tsm.stage_id, tsm.stage_attempt, self._abort_error(tsm, i, error)))
            return actions
        if not self._other_copy_running(tsm, i):
            tsm.state[i] = PENDING
            tsm.pending.append(i)
        return []

    def _abort_error(self, tsm: TaskSetManager, index: int, error: BaseException) -> BaseException:
        summary = (f"Job aborted: task {tsm.partitions[index]} in stage {tsm.stage_id}.{tsm.stage_attempt} "
                   f"failed {tsm.failures[index]} times (spark.task.maxFailures={tsm.max_failures}); attempts:\n  "
                   + "\n  ".join(tsm.reasons[index]))
        if isinstance(error, BaseException) and hasattr(error, "add_note"):
            try:
                error.add_note(summary)
                return error
            except Exception:
                pass
        return TaskFailedError(summary)

    def check_speculation(self, now: float, quantile: float, multiplier: float) -> list[Any]:
        """Launch second copies of stragglers on free slots of other executors."""
        for t in self.task_sets:
            t.find_stragglers(now, quantile, multiplier)
        if not any(t.speculatable for t in self.task_sets):
            return []
        actions: list[Any] = []
        for eid in list(self.executors):
            actions += self._offer(eid, now)
        return actions

    # ------------------------------------------------------------- queries
    def running_tasks(self) -> int:
        return len(self.attempts)
