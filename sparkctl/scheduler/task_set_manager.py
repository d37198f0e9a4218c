"""One stage attempt's tasks inside the task scheduler: which are pending, running, done,
and how often each failed; which task an offered slot should run next.

The state is sized for stages of 100,000 tasks and more:

* per task, only flat arrays (state, failure and attempt counts) and no pending-queue
  entry (``PendingTasks`` is a cursor over the never-launched indices); what only some
  tasks need (the executors a task failed on, the reasons of its failed attempts) lives
  in dicts filled when a task first fails;
* running attempts are indexed by task id (``running``, in launch order) and by task
  index (``copies``), so finishing an attempt never scans the others;
* speculation keeps the median of finished durations as tasks finish
  (``speculation.RunningQuantile``, O(log n) a task once the set is checked for
  stragglers, or from its submission when the scheduler knows speculation is on) and,
  since attempts are launched in clock order, looks at the oldest running attempts only,
  stopping at the first one that is not slow enough.
"""
from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterator

from sparkctl.scheduler.speculation import RunningQuantile

PENDING, RUNNING, SUCCEEDED = 0, 1, 2

#: a preferred location that names a host rather than an executor
HOST = "host:"


@dataclass(slots=True, eq=False)
class TaskAttempt:
    task_id: int
    tsm: "TaskSetManager"
    index: int
    executor_id: str
    attempt: int
    start: float


class PendingTasks:
    """Task indices waiting for a slot, as a deque of them all would hold them, without an
    entry per task: the ones put back in front, then the never-launched ones in index order
    (a cursor over ``range(n)``), then the ones put back at the end."""

    __slots__ = ("_front", "_next", "_end", "_back")

    def __init__(self, n: int) -> None:
        self._front: deque[int] = deque()
        self._next = 0
        self._end = n
        self._back: deque[int] = deque()

    def __len__(self) -> int:
        return len(self._front) + self._end - self._next + len(self._back)

    def __iter__(self) -> Iterator[int]:
        yield from self._front
        yield from range(self._next, self._end)
        yield from self._back

    def popleft(self) -> int:
        if self._front:
            return self._front.popleft()
        i = self._next
        if i < self._end:
            self._next = i + 1
            return i
        return self._back.popleft()  # IndexError when empty, as a deque's

    def pop_first(self, state: bytearray) -> int | None:
        """Take entries until one whose state is PENDING, and return it (None if none)."""
        front = self._front
        while front:
            i = front.popleft()
            if state[i] == PENDING:
                return i
        i, end = self._next, self._end
        while i < end:
            if state[i] == PENDING:
                self._next = i + 1
                return i
            i += 1
        self._next = end
        back = self._back
        while back:
            i = back.popleft()
            if state[i] == PENDING:
                return i
        return None

    def append(self, index: int) -> None:
        self._back.append(index)

    def appendleft(self, index: int) -> None:
        self._front.appendleft(index)

    def clear(self) -> None:
        self._front.clear()
        self._back.clear()
        self._next = self._end


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
        self.state = bytearray(n)  # PENDING, RUNNING or SUCCEEDED per task index
        self.failures = [0] * n
        self.attempts = [0] * n
        # only for tasks that failed: the executors they failed on, each attempt's reason
        self.failed_on: dict[int, set[str]] = {}
        self.reasons: dict[int, list[str]] = {}
        self.pending = PendingTasks(n)  # may hold indices no longer pending
        self.by_executor: dict[str, list[int]] = {}
        # partition -> where its data is (task locality): executor ids holding it cached, or
        # "host:H" for a host holding its input file's bytes (HDFS blocks)
        self.preferred = preferred or {}
        self.by_host: dict[str, list[int]] = {}
        if preferred:
            for i, p in enumerate(partitions):
                for where in preferred.get(p, ()):
                    if where.startswith(HOST):
                        self.by_host.setdefault(where[len(HOST):], []).append(i)
                    else:
                        self.by_executor.setdefault(where, []).append(i)
            for lst in (*self.by_executor.values(), *self.by_host.values()):
                lst.reverse()  # pop() from the end takes them in partition order
        self.running: dict[int, TaskAttempt] = {}  # task id -> attempt, in launch order
        self.copies: dict[int, list[TaskAttempt]] = {}  # task index -> its running attempts
        self.num_succeeded = 0
        self.zombie = False  # no more launches (aborted, cancelled or superseded)
        # of successful tasks, for speculation: each goes into the running median as its
        # task finishes once the set feeds it (``feed_median``); until then (speculation
        # is off, or not known to be on) they are only appended here
        self.durations: list[float] = []
        self._median = RunningQuantile(0.5)
        self._feeding = False
        self.speculatable: set[int] = set()  # stragglers waiting for a second copy
        self._speculatable_order: list[int] = []  # heap of the same, lowest index first; may hold stale ones
        self._last_start = float("-inf")
        self._started_in_order = True  # launches came with a clock that never went back

    @property
    def sort_key(self) -> tuple[int, int]:
        return (self.job_id, self.stage_id)

    def is_done(self) -> bool:
        return self.num_succeeded == len(self.partitions)

    def has_work(self) -> bool:
        """Whether an offer could launch something: false means surely not (a pending
        queue may still hold indices that were launched since)."""
        return not self.zombie and bool(self.pending or self.speculatable)

    # ------------------------------------------------------------- running attempts
    def add_running(self, att: TaskAttempt) -> None:
        self.running[att.task_id] = att
        same = self.copies.get(att.index)
        if same is None:
            self.copies[att.index] = [att]
        else:
            same.append(att)
        if att.start < self._last_start:
            self._started_in_order = False
        else:
            self._last_start = att.start

    def remove_running(self, att: TaskAttempt) -> bool:
        """Forget a running attempt; False if it was not running."""
        if self.running.pop(att.task_id, None) is None:
            return False
        same = self.copies[att.index]
        if len(same) == 1:
            del self.copies[att.index]
        else:
            same.remove(att)
        return True

    def other_copy_running(self, index: int) -> bool:
        return index in self.copies

    # ------------------------------------------------------------- failures
    def record_failure(self, index: int, executor_id: str, reason: str) -> None:
        self.failures[index] += 1
        failed_on = self.failed_on.get(index)
        if failed_on is None:
            self.failed_on[index] = {executor_id}
        else:
            failed_on.add(executor_id)
        self.add_reason(index, reason)

    def add_reason(self, index: int, reason: str) -> None:
        reasons = self.reasons.get(index)
        if reasons is None:
            self.reasons[index] = [reason]
        else:
            reasons.append(reason)

    def reasons_of(self, index: int) -> list[str]:
        return self.reasons.get(index, [])

    # ------------------------------------------------------------- offers
    def has_local_work(self) -> bool:
        """Whether some executor or host may still have a pending task that prefers it."""
        return bool(self.by_executor or self.by_host)

    def next_local_index(self, executor_id: str, host: str) -> int | None:
        """A pending task that prefers this executor (its cached input) or its host, in
        partition order; None if none. A preference list is dropped once used up, so
        ``has_local_work`` turns false when none is left."""
        state = self.state
        for prefs, key in ((self.by_executor, executor_id), (self.by_host, host)):
            local = prefs.get(key)
            if local is None:
                continue
            while local:
                i = local.pop()
                if state[i] == PENDING:
                    if not local:
                        del prefs[key]
                    return i
            del prefs[key]
        return None

    def next_index(self, executor_id: str, num_executors: int, host: str = "") -> int | None:
        """The task an offered slot of this executor should run: one that prefers it or its
        host, else the next pending one (not where it failed, while other executors exist),
        else a straggler's copy."""
        if self.zombie:
            return None
        state = self.state
        if self.by_executor or self.by_host:
            i = self.next_local_index(executor_id, host)
            if i is not None:
                return i
        pending = self.pending
        failed_on = self.failed_on
        if not failed_on:  # no task failed yet: the first one still pending
            i = pending.pop_first(state)
            if i is not None:
                return i
            return self._speculative_index(executor_id) if self.speculatable else None
        for _ in range(len(pending)):
            i = pending.popleft()
            if state[i] != PENDING:
                continue
            where = failed_on.get(i)
            if where is not None and executor_id in where and len(where) < num_executors:
                pending.append(i)  # it failed here: leave it for another executor
                continue
            return i
        if self.speculatable:
            return self._speculative_index(executor_id)
        return None

    def _speculative_index(self, executor_id: str) -> int | None:
        """The lowest straggler with no copy on this executor (a copy elsewhere: the first
        to finish wins)."""
        order = self._speculatable_order
        skipped: list[int] = []
        found = None
        while order:
            i = heapq.heappop(order)
            if i not in self.speculatable:
                continue  # already given a copy, or finished
            if self.state[i] != RUNNING:
                self.speculatable.discard(i)
                continue
            if all(a.executor_id != executor_id for a in self.copies.get(i, ())):
                self.speculatable.discard(i)
                found = i
                break
            skipped.append(i)
        for i in skipped:
            heapq.heappush(order, i)
        return found

    # ------------------------------------------------------------- speculation
    def task_finished(self, index: int, duration: float) -> None:
        """A task's first successful attempt."""
        self.state[index] = SUCCEEDED
        self.num_succeeded += 1
        if self._feeding:
            self._median.add(duration)
        else:
            self.durations.append(duration)
        if self.speculatable:
            self.speculatable.discard(index)

    def feed_median(self) -> None:
        """From now on each successful task's duration goes into the running median as it
        finishes, so that no straggler check takes in many at once (the durations kept so
        far go in now)."""
        if self.durations:
            self._median.extend(self.durations)
            self.durations.clear()
        self._feeding = True

    def median_duration(self) -> float:
        """The median (upper, as Spark's) of the successful tasks' durations."""
        if self.durations:
            self._median.extend(self.durations)
            self.durations.clear()
        return self._median.value()

    def find_stragglers(self, now: float, quantile: float, multiplier: float, min_time: float = 0.1) -> bool:
        """Mark running tasks much slower than the median of finished ones (Spark's rule:
        once ``quantile`` of the tasks finished, a task running longer than ``multiplier``
        x their median is speculated). True if any task was newly marked."""
        n = len(self.partitions)
        if self.barrier or self.zombie or n < 2:
            return False
        if not self._feeding:  # the first check of this set
            self.feed_median()
        if self.num_succeeded < max(1, int(quantile * n)):
            return False
        threshold = max(multiplier * self.median_duration(), min_time)
        ordered = self._started_in_order
        state, copies, speculatable = self.state, self.copies, self.speculatable
        marked = False
        for a in self.running.values():
            if now - a.start <= threshold:
                if ordered:
                    break  # every later attempt started later still
                continue
            i = a.index
            if state[i] == RUNNING and len(copies[i]) == 1 and i not in speculatable:
                speculatable.add(i)
                heapq.heappush(self._speculatable_order, i)
                marked = True
        return marked
