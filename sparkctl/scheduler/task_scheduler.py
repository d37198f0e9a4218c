"""The task scheduler: task sets in, task launches onto free executor slots out.

A state machine with no I/O: the runtime tells it about executors (added, lost), task
sets (submitted, cancelled) and task status updates; it answers with ``Launch`` actions
(run partition P of task set T on executor E), ``KillTask`` actions and ``TaskEnded``
events for the DAG scheduler. It prefers the executor that caches a task's input, or an
executor on the host that holds it (an offer to several executors gives each its own
tasks before any takes another's: ``_offer_free``), runs a failed task elsewhere when
another executor exists, and gives up on a task set after
``spark.task.maxFailures`` failures of one task, reporting every attempt's reason. The
loss of the executor a task runs on counts as one of its failures unless the application
cannot have caused it (see ``executor_lost``).
Task sets are served first come, first served (FIFO by job, then stage).

A *barrier* task set (a stage of ``rdd.barrier()``) follows other rules, as Spark's: its
tasks start together or not at all (it waits until the cluster's free slots can hold all
of them, and fails at once if the cluster's slots never can); a failed task fails the
whole attempt: the others are killed and the DAG scheduler reruns the stage
(``BarrierTaskSetFailed``). It is never speculated.

Every event costs O(1) or O(log n) in the size of the cluster and of the stage, whatever
their size (see ``bench/scale_tasks.py``): an executor's running attempts are indexed by
executor, a task set's by task (``task_set_manager``); the executors with a free slot are
kept in an index, so an event that frees or needs slots offers only where there is room;
speculation reads a running median (``speculation``), fed as tasks finish.
"""
from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from dataclasses import dataclass, field
from typing import Any

from sparkctl.errors import BarrierStageError, ExecutorLostError, TaskFailedError
from sparkctl.scheduler.task_set_manager import HOST, PENDING, RUNNING, SUCCEEDED, TaskAttempt, TaskSetManager

__all__ = ["HOST", "BarrierTaskSetFailed", "ExecutorSlots", "KillTask", "Launch", "TaskAttempt", "TaskEnded",
           "TaskScheduler", "TaskSetAborted", "TaskSetManager"]


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


@dataclass(eq=False)
class ExecutorSlots:
    executor_id: str
    host: str
    cores: int
    free: int
    running: set[int] = field(default_factory=set)
    seq: int = 0  # registration order: offers go to executors in this order


class TaskScheduler:
    def __init__(self, max_failures: int = 4, cpus_per_task: int = 1) -> None:
        self.max_failures = max_failures
        self.executors: dict[str, ExecutorSlots] = {}
        # the executors with room for a task, by registration order (sorted ExecutorSlots.seq)
        self._free: list[int] = []
        self._by_seq: dict[int, str] = {}
        self._seq = 0
        # spark.task.cpus: a task takes this many of an executor's cores (ExecutorSlots.free
        # counts cores), so an executor of 4 cores runs 2 tasks at once with 2 cpus a task
        self.cpus_per_task = cpus_per_task
        # cores the cluster is meant to have (e.g. local[4]: 4), when the backend knows it;
        # with the registered executors' cores it bounds the barrier stages that can run
        self.expected_cores = 0
        self.task_sets: list[TaskSetManager] = []
        self.attempts: dict[int, TaskAttempt] = {}
        # spark.speculation is on (the runtime says so, or a check came): task sets feed
        # their median of task durations from their submission
        self.speculation = False
        self.next_task_id = 0

    @property
    def cpus_per_task(self) -> int:
        return self._cpus

    @cpus_per_task.setter
    def cpus_per_task(self, cpus: int) -> None:
        self._cpus = cpus
        self._free = sorted(e.seq for e in self.executors.values() if e.free >= cpus)

    # ------------------------------------------------------------- free slots
    def _unlist(self, seq: int) -> None:
        free = self._free
        k = bisect_left(free, seq)
        if k < len(free) and free[k] == seq:
            del free[k]

    def free_slots(self) -> int:
        """Tasks the executors could start now."""
        c = self._cpus
        by_seq, executors = self._by_seq, self.executors
        return sum(executors[by_seq[s]].free // c for s in self._free)

    def executors_with_free_slots(self) -> list[str]:
        """In registration order, the order offers go in."""
        by_seq = self._by_seq
        return [by_seq[s] for s in self._free]

    # ------------------------------------------------------------- executors
    def executor_added(self, executor_id: str, host: str, cores: int, now: float = 0.0) -> list[Any]:
        old = self.executors.get(executor_id)
        if old is not None:  # registered again: its old slots are gone, its place in the order stays
            self._unlist(old.seq)
            seq = old.seq
        else:
            self._seq += 1
            seq = self._seq
            self._by_seq[seq] = executor_id
        self.executors[executor_id] = ExecutorSlots(executor_id, host, cores, cores, seq=seq)
        if cores >= self._cpus:
            insort(self._free, seq)
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
        self._unlist(slots.seq)
        del self._by_seq[slots.seq]
        actions: list[Any] = []
        for tid in sorted(slots.running):
            att = self.attempts.pop(tid, None)
            if att is None:
                continue
            tsm = att.tsm
            tsm.remove_running(att)
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
            elif not tsm.other_copy_running(att.index):
                tsm.state[att.index] = PENDING
                tsm.pending.appendleft(att.index)
                tsm.add_reason(att.index, f"attempt {att.attempt} (not counted): {why}")
        self._drop_finished_sets()
        return actions + self._offer_free(now)

    # ------------------------------------------------------------- task sets
    def submit(self, tsm: TaskSetManager, now: float = 0.0) -> list[Any]:
        if tsm.barrier:
            c = self._cpus
            capacity = max(self.expected_cores // c, sum(e.cores // c for e in self.executors.values()))
            if 0 < capacity < len(tsm.partitions):
                tsm.zombie = True
                return [TaskSetAborted(tsm.stage_id, tsm.stage_attempt, BarrierStageError(
                    f"barrier stage {tsm.stage_id} has {len(tsm.partitions)} tasks, which must all run at once, "
                    f"but the cluster has only {capacity} task slots in total; give the barrier RDD at most "
                    f"{capacity} partitions (e.g. with repartition or coalesce before .barrier()) or add cores"))]
        if self.speculation and not tsm.barrier:
            tsm.feed_median()
        self.task_sets.append(tsm)
        self.task_sets.sort(key=lambda t: t.sort_key)
        return self._offer_free(now)

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
        sets = self.task_sets
        for t in sets:
            if not t.running and (t.zombie or t.is_done()):
                self.task_sets = [t for t in sets if not ((t.zombie or t.is_done()) and not t.running)]
                return

    # ------------------------------------------------------------- offers
    def _offer_free(self, now: float) -> list[Any]:
        """Offer the executors with a free slot, in registration order, to each task set in
        turn (FIFO): first every executor its own local tasks (those preferring it or its
        host), then any task to any of them.

        The local round is what keeps a task on its host: in one offer over several free
        executors, an executor with no local task left would otherwise take, as the next
        pending one, a task that prefers a host whose free executor comes later in the same
        offer. Outside such an offer, an executor with a free slot has been offered every
        waiting task it may run (each freed slot is offered at once; what waits is a task
        that failed there, or a barrier stage that needs more slots), so no other
        executor's task can be taken in ``_offer`` of one executor, and it needs no such
        round."""
        if not self._free:
            return []
        actions: list[Any] = []
        executors, by_seq, free = self.executors, self._by_seq, self._free
        n_exec = len(executors)
        c = self._cpus
        for tsm in self.task_sets:
            if not free:
                break
            if not tsm.has_work():
                continue
            if tsm.barrier:
                actions += self._offer_barrier(tsm, now)
                continue
            if tsm.has_local_work():
                for seq in list(free):
                    slots = executors[by_seq[seq]]
                    while slots.free >= c:
                        i = tsm.next_local_index(slots.executor_id, slots.host)
                        if i is None:
                            break
                        actions.append(Launch(self._start(tsm, i, slots, now)))
                    if not tsm.has_local_work():
                        break
            for seq in list(free):
                if not tsm.has_work():
                    break
                slots = executors[by_seq[seq]]
                while slots.free >= c:
                    i = tsm.next_index(slots.executor_id, n_exec, slots.host)
                    if i is None:
                        break
                    actions.append(Launch(self._start(tsm, i, slots, now)))
        return actions

    def _offer(self, executor_id: str, now: float) -> list[Any]:
        slots = self.executors.get(executor_id)
        if slots is None:
            return []
        actions: list[Any] = []
        n_exec = len(self.executors)
        c = self._cpus
        while slots.free >= c:
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
        input if one has a free slot, else to the executor with the most free slots on a
        host holding its input (the first such host, by name, with room), else to the
        executor with the most free slots, which spreads the tasks over the cluster."""
        n = len(tsm.partitions)
        c = self._cpus
        if tsm.zombie or tsm.running or tsm.num_succeeded or self.free_slots() < n:
            return []
        preferred = _by_task(tsm.by_executor)
        preferred_hosts = _by_task(tsm.by_host)
        executors = self.executors
        with_room = self.executors_with_free_slots()
        on_host: dict[str, list[ExecutorSlots]] = {}
        if preferred_hosts:
            for e in with_room:
                on_host.setdefault(executors[e].host, []).append(executors[e])
        # the executors with room, most free cores first, then by registration order; an entry
        # whose executor's free cores changed since (a preferred task took one) is stale
        roomiest = [(-executors[e].free, executors[e].seq, e) for e in with_room]
        heapq.heapify(roomiest)
        actions: list[Any] = []
        for i in range(n):
            slots = next((executors[e] for e in preferred.get(i, ())
                          if e in executors and executors[e].free >= c), None)
            if slots is None and i in preferred_hosts:
                slots = _roomiest_on(on_host, preferred_hosts[i], c)
            if slots is None:
                while True:
                    free, _, e = roomiest[0]
                    slots = executors[e]
                    if -free == slots.free:
                        break
                    heapq.heapreplace(roomiest, (-slots.free, slots.seq, e))
            actions.append(Launch(self._start(tsm, i, slots, now)))
            if roomiest and roomiest[0][2] == slots.executor_id:
                heapq.heapreplace(roomiest, (-slots.free, slots.seq, slots.executor_id))
        tsm.pending.clear()
        tsm.by_executor.clear()
        tsm.by_host.clear()
        return actions

    def _barrier_failed(self, att: TaskAttempt, error: BaseException, reason: str) -> list[Any]:
        """One task of a barrier attempt failed: kill the others and end the attempt."""
        tsm = att.tsm
        tsm.zombie = True
        tsm.add_reason(att.index, f"attempt {att.attempt} on executor {att.executor_id}: {reason}")
        actions: list[Any] = [KillTask(other.executor_id, other.task_id,
                                       f"task {tsm.partitions[att.index]} of the barrier stage failed")
                              for other in tsm.running.values()]
        actions.append(BarrierTaskSetFailed(tsm.stage_id, tsm.stage_attempt, error,
                                            f"task {tsm.partitions[att.index]} failed: {reason}"))
        return actions

    def _start(self, tsm: TaskSetManager, index: int, slots: ExecutorSlots, now: float) -> TaskAttempt:
        tid = self.next_task_id
        self.next_task_id += 1
        n = tsm.attempts[index]
        att = TaskAttempt(tid, tsm, index, slots.executor_id, n, now)
        tsm.attempts[index] = n + 1
        tsm.state[index] = RUNNING
        tsm.add_running(att)
        self.attempts[tid] = att
        slots.running.add(tid)
        # the slot is taken
        c = self._cpus
        slots.free -= c
        if slots.free < c:  # it had room (offers go only there): now it has none
            free = self._free
            k = bisect_left(free, slots.seq)
            if k < len(free) and free[k] == slots.seq:
                del free[k]
        return att

    # ------------------------------------------------------------- status updates
    def _release(self, att: TaskAttempt) -> None:
        tid = att.task_id
        self.attempts.pop(tid, None)
        att.tsm.remove_running(att)
        slots = self.executors.get(att.executor_id)
        if slots is not None and tid in slots.running:
            slots.running.discard(tid)
            # the slot is free
            c = self._cpus
            slots.free += c
            if slots.free < 2 * c:  # it had no room: now it has
                insort(self._free, slots.seq)

    def task_succeeded(self, task_id: int, value: Any, accum_updates: dict[int, Any] | None,
                       blocks_added: list[str] | None, now: float = 0.0) -> list[Any]:
        att = self.attempts.get(task_id)
        if att is None:
            return []
        self._release(att)
        tsm = att.tsm
        actions: list[Any] = []
        if tsm.state[att.index] != SUCCEEDED:
            tsm.task_finished(att.index, now - att.start)
            others = tsm.copies.get(att.index)
            if others:  # a speculative copy lost the race
                actions += [KillTask(o.executor_id, o.task_id, "another attempt succeeded") for o in others]
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
            if tsm.state[i] == RUNNING and not tsm.other_copy_running(i) and not tsm.zombie:
                tsm.state[i] = PENDING
                tsm.pending.appendleft(i)
        else:
            actions += self._count_failure(att, error, reason)
        self._drop_finished_sets()
        return actions + self._offer_free(now)

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
        tsm.record_failure(i, att.executor_id, f"attempt {att.attempt} on executor {att.executor_id}: {reason}")
        if tsm.failures[i] >= tsm.max_failures:
            tsm.zombie = True
            actions: list[Any] = [KillTask(other.executor_id, other.task_id, "stage aborted")
                                  for other in tsm.running.values()]
            actions.append(TaskSetAborted(tsm.stage_id, tsm.stage_attempt, self._abort_error(tsm, i, error)))
            return actions
        if not tsm.other_copy_running(i):
            tsm.state[i] = PENDING
            tsm.pending.append(i)
        return []

    def _abort_error(self, tsm: TaskSetManager, index: int, error: BaseException) -> BaseException:
        summary = (f"Job aborted: task {tsm.partitions[index]} in stage {tsm.stage_id}.{tsm.stage_attempt} "
                   f"failed {tsm.failures[index]} times (spark.task.maxFailures={tsm.max_failures}); attempts:\n  "
                   + "\n  ".join(tsm.reasons_of(index)))
        if isinstance(error, BaseException) and hasattr(error, "add_note"):
            try:
                error.add_note(summary)
                return error
            except Exception:
                pass
        return TaskFailedError(summary)

    def check_speculation(self, now: float, quantile: float, multiplier: float) -> list[Any]:
        """Launch second copies of stragglers on free slots of other executors."""
        self.speculation = True
        for t in self.task_sets:
            t.find_stragglers(now, quantile, multiplier)
        if not any(t.speculatable for t in self.task_sets):
            return []
        return self._offer_free(now)

    # ------------------------------------------------------------- queries
    def running_tasks(self) -> int:
        return len(self.attempts)


def _by_task(places: dict[str, list[int]]) -> dict[int, list[str]]:
    """A task set's places (executor ids or hosts) -> the tasks preferring each, turned into
    task -> its places, sorted."""
    out: dict[int, list[str]] = {}
    for place, indices in places.items():
        for i in indices:
            out.setdefault(i, []).append(place)
    for lst in out.values():
        lst.sort()
    return out


def _roomiest_on(on_host: dict[str, list[ExecutorSlots]], hosts: list[str], cpus: int) -> ExecutorSlots | None:
    """Of the first host in ``hosts`` with an executor that has ``cpus`` free cores, its
    executor with the most (the first registered among equals); None when no host has."""
    for host in hosts:
        best = None
        for slots in on_host.get(host, ()):
            if slots.free >= cpus and (best is None or slots.free > best.free):
                best = slots
        if best is not None:
            return best
    return None
