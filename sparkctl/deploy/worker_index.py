"""The master's allocation policy, and the indexes of workers that its events read.

Spark's ``Master.schedule`` offers each waiting application the ALIVE workers with room for
one more executor, most free cores first, and hands out cores either spread over as many
of them as possible or packed onto as few as possible (:func:`plan_executors`).

Walking every worker for every waiting application costs O(workers × applications) per
event: at 5,000 workers and 99 waiting applications, 0.7 s for one executor's exit.
:class:`WorkerIndex` keeps the ALIVE workers that have at least one free core in buckets by
free cores, updated by the workers' own counters, so a pass reads only the workers with
room, in the order Spark's would (most free cores first, then registration order).

The periodic timeout check (Spark's ``timeOutDeadWorkers``) asks which ALIVE workers have
been silent too long and which DEAD ones have been listed long enough. :class:`HeartbeatOrder`
keeps the ALIVE workers in the order of their last heartbeat (a heartbeat moves its worker
to the end) and the DEAD ones in a heap by their last heartbeat, so the check pops only
what expired and stops at the first worker that has not.

```
 WorkerInfo.add_executor / pop_executor / set_state ──update(worker)──▶ WorkerIndex
                                                                       free cores ─▶ {seq: worker}
 MasterStateMachine.schedule ──with_room(min cores)──▶ [worker, ...] most free first

 register, heartbeat ──add / heartbeat(seq)──▶ HeartbeatOrder ◀──expired_dead, expired_alive── timeout tick
 declared DEAD ──dead──▶             (oldest heartbeat first)
```
"""
from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Sequence

from sparkctl.deploy.master_info import WorkerInfo
from sparkctl.deploy.messages import ALIVE, DEAD

__all__ = ["WorkerIndex", "HeartbeatOrder", "plan_executors"]


class WorkerIndex:
    """ALIVE workers with free cores, bucketed by how many."""

    def __init__(self) -> None:
        self._buckets: dict[int, dict[int, WorkerInfo]] = {}  # free cores -> {seq: worker}
        self._where: dict[int, int] = {}  # seq -> its bucket
        self._sizes: list[int] = []  # the buckets' keys, largest first

    def __len__(self) -> int:
        return len(self._where)

    def update(self, worker: WorkerInfo) -> None:
        """Re-file *worker* after its free cores or its state changed (O(1) unless a new
        free-cores value appears, which is rare: workers come in few sizes)."""
        free = worker.cores_free if worker.state == ALIVE else 0
        old = self._where.get(worker.seq)
        if old == free or (old is None and free <= 0):
            return
        if old is not None:
            bucket = self._buckets[old]
            del bucket[worker.seq]
            del self._where[worker.seq]
            if not bucket:
                del self._buckets[old]
                self._sizes.remove(old)
        if free > 0:
            into = self._buckets.get(free)
            if into is None:
                into = self._buckets[free] = {}
                self._sizes.append(free)
                self._sizes.sort(reverse=True)
            into[worker.seq] = worker
            self._where[worker.seq] = free

    def discard(self, worker: WorkerInfo) -> None:
        old = self._where.pop(worker.seq, None)
        if old is not None:
            bucket = self._buckets[old]
            del bucket[worker.seq]
            if not bucket:
                del self._buckets[old]
                self._sizes.remove(old)

    def with_room(self, cores: int) -> Iterator[WorkerInfo]:
        """The indexed workers with at least *cores* free cores: most free first, then in
        registration order (Spark's stable sort of the usable workers by free cores)."""
        for size in list(self._sizes):
            if size < cores:
                return
            bucket = self._buckets.get(size)
            if bucket:
                for seq in sorted(bucket):
                    yield bucket[seq]

    def most_free(self) -> int:
        """The most free cores on one ALIVE worker (0 when none has any)."""
        return self._sizes[0] if self._sizes else 0


class HeartbeatOrder:
    """Workers by last heartbeat, oldest first: the ALIVE ones to expire, the DEAD ones to forget.

    Every operation is O(1) but :meth:`dead` (O(log n)); the expiry queries cost what they
    return. The order assumes heartbeat times that do not go back: a wall clock set back
    only delays the expiry of the workers last heard from before it was.
    """

    def __init__(self) -> None:
        self._alive: OrderedDict[int, WorkerInfo] = OrderedDict()  # seq -> worker, oldest heartbeat first
        # (last heartbeat, seq, worker) of DEAD workers; entries of workers forgotten
        # since (or replaced) are dropped when they come up.
        self._dead: list[tuple[float, int, WorkerInfo]] = []
        # heartbeat(seq): the ALIVE worker *seq* just sent a heartbeat, so it is now the
        # newest. The OrderedDict's own method, called directly: this runs on every heartbeat.
        self.heartbeat: Callable[[int], None] = self._alive.move_to_end

    def add(self, worker: WorkerInfo) -> None:
        """A worker (re-)registered or was restored, with its last heartbeat set."""
        if worker.state == ALIVE:
            self._alive[worker.seq] = worker
        elif worker.state == DEAD:
            heapq.heappush(self._dead, (worker.last_heartbeat, worker.seq, worker))


    def dead(self, worker: WorkerInfo) -> None:
        """*worker* was declared DEAD: it waits to be forgotten, by its last heartbeat."""
        if self._alive.pop(worker.seq, None) is not None:
            heapq.heappush(self._dead, (worker.last_heartbeat, worker.seq, worker))

    def discard(self, worker: WorkerInfo) -> None:
        """*worker* is forgotten (its DEAD entry, if any, goes when it comes up)."""
        self._alive.pop(worker.seq, None)

    def expired_alive(self, now: float, timeout: float) -> list[WorkerInfo]:
        """The ALIVE workers silent for more than *timeout* at *now*, oldest first (still
        listed here until :meth:`dead` is called for each)."""
        out = []
        for worker in self._alive.values():
            if now - worker.last_heartbeat <= timeout:
                break
            out.append(worker)
        return out

    def expired_dead(self, now: float, forget_after: float, workers: dict[str, WorkerInfo]) -> list[WorkerInfo]:
        """Take the DEAD workers silent for more than *forget_after* at *now* that *workers*
        (the master's, by id) still lists, oldest first."""
        out = []
        heap = self._dead
        while heap and now - heap[0][0] > forget_after:
            worker = heapq.heappop(heap)[2]
            if workers.get(worker.id) is worker and worker.state == DEAD:
                out.append(worker)
        return out


def plan_executors(
    cores_wanted: int,
    executor_cores: int | None,
    executor_memory: int,
    free: Sequence[tuple[int, int]],
    spread_out: bool,
) -> list[tuple[int, int]]:
    """Decide how many cores and executors one application gets on each usable worker.

    *free* lists ``(free cores, free MiB)`` of the candidate workers; the result has one
    ``(cores, executors)`` pair per entry. Cores are handed out in units of
    *executor_cores* (1 when None); with ``executor_cores=None`` a worker gets at most one
    executor, which grows by a core per unit. With *spread_out* each pass gives every
    worker at most one unit (round robin); without it a worker is filled before the next.
    """
    unit = executor_cores or 1
    one_per_worker = executor_cores is None
    n = len(free)
    cores = [0] * n
    execs = [0] * n
    left = min(cores_wanted, sum(c for c, _ in free))

    def can_launch(i: int) -> bool:
        if left < unit or free[i][0] - cores[i] < unit:
            return False
        if one_per_worker and execs[i] > 0:
            return True  # another unit only grows the worker's one executor: no memory needed
        return free[i][1] - (execs[i] + 1) * executor_memory >= 0

    candidates = [i for i in range(n) if can_launch(i)]
    while candidates:
        for i in candidates:
            while can_launch(i):
                left -= unit
                cores[i] += unit
                execs[i] = 1 if one_per_worker else execs[i] + 1
                if spread_out:
                    break  # one unit per worker per pass
        candidates = [i for i in candidates if can_launch(i)]
    return list(zip(cores, execs))
