"""Barrier execution mode on the driver: the BarrierCoordinator and its wiring.

Every task of a barrier stage attempt calls ``barrier()`` or ``allGather(message)`` on its
BarrierTaskContext; the call blocks until every task of the attempt has made the same
call, then all return together (``allGather`` with every task's message, ordered by
partition). The request travels over the connections that already exist:

```
 task slot ── ("barrier", task, epoch, kind, msg) ──▶ executor ── BarrierRequest ──▶ driver
                                                                                      │
                                        BarrierCoordinator collects one request per task of
                                        the stage attempt; the last one releases them all
                                                                                      │
 task slot ◀── ("barrier_reply", ...) ── executor ◀── BarrierResponse (one per task) ─┘
```
The coordinator is a state machine without I/O (requests in, replies out), so its rules
are unit-tested; the functions below it are the runtime's glue: they look up the sending
task, feed the coordinator and send its replies, and arm one timer for
``spark.barrier.sync.timeout``. A sync that times out fails every waiting task, which
fails the stage attempt (see the task scheduler's barrier rules).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sparkctl.scheduler import messages as m

if TYPE_CHECKING:
    from sparkctl.scheduler.runtime import DriverRuntime, ExecutorHandle
    from sparkctl.scheduler.task_scheduler import TaskAttempt

log = logging.getLogger("sparkctl.driver")

BARRIER = "barrier"
ALL_GATHER = "allGather"
SYNC_KINDS = (BARRIER, ALL_GATHER)
DEFAULT_SYNC_TIMEOUT = 365 * 24 * 3600.0  # Spark's default spark.barrier.sync.timeout, 365d


@dataclass
class BarrierReply:
    """The answer to one task's sync request: every message, or why the sync failed."""

    executor_id: str
    task_id: int
    epoch: int
    messages: list[str] | None = None
    error: str | None = None


@dataclass
class _Waiting:
    executor_id: str
    task_id: int
    message: str


@dataclass
class _SyncState:
    """One stage attempt's current sync round (its *epoch*: the n-th barrier call)."""

    num_tasks: int
    epoch: int = 0
    kind: str = ""
    started: float = 0.0
    waiting: dict[int, _Waiting] = field(default_factory=dict)  # task index -> request


class BarrierCoordinator:
    """Collects the sync requests of each barrier stage attempt, as Spark's coordinator.

    Each task counts its own calls (its epoch); a round completes when every task of the
    attempt has sent the request of the current epoch, and the next round starts. A
    request of another epoch, or of another kind than the round's first (one task calls
    ``barrier()`` while another calls ``allGather``), fails the round for every task: a
    program whose tasks disagree on how often they sync would otherwise hang.
    """

    def __init__(self, timeout: float = DEFAULT_SYNC_TIMEOUT) -> None:
        self.timeout = timeout
        self.states: dict[tuple[int, int], _SyncState] = {}

    def request(self, stage_key: tuple[int, int], num_tasks: int, index: int, executor_id: str, task_id: int,
                epoch: int, kind: str, message: str, now: float) -> list[BarrierReply]:
        state = self.states.get(stage_key)
        if state is None:
            state = self.states[stage_key] = _SyncState(num_tasks)
        if epoch != state.epoch:
            return self._fail_round(stage_key, state, extra=BarrierReply(
                executor_id, task_id, epoch, error=(
                    f"task {task_id} of barrier stage {stage_key[0]}.{stage_key[1]} asked to sync for its call "
                    f"#{epoch + 1}, but the stage's tasks are at call #{state.epoch + 1}: every task must call "
                    "barrier()/allGather() the same number of times")))
        if not state.waiting:
            state.kind = kind
            state.started = now
        elif kind != state.kind:
            return self._fail_round(stage_key, state, extra=BarrierReply(
                executor_id, task_id, epoch, error=(
                    f"tasks of barrier stage {stage_key[0]}.{stage_key[1]} called different sync methods in call "
                    f"#{epoch + 1}: {state.kind}() and {kind}(); all must call the same one")))
        state.waiting[index] = _Waiting(executor_id, task_id, message)
        if len(state.waiting) < state.num_tasks:
            return []
        messages = [state.waiting[i].message for i in sorted(state.waiting)]
        replies = [BarrierReply(w.executor_id, w.task_id, epoch, messages) for w in state.waiting.values()]
        state.waiting = {}
        state.epoch += 1
        return replies

    def _fail_round(self, stage_key: tuple[int, int], state: _SyncState, extra: BarrierReply) -> list[BarrierReply]:
        """Fail every task waiting in this round, and the one whose request broke it."""
        replies = [BarrierReply(w.executor_id, w.task_id, state.epoch, error=extra.error)
                   for w in state.waiting.values()]
        state.waiting = {}
        return replies + [extra]

    def next_deadline(self) -> float | None:
        """When the oldest open round times out (None: no task is waiting)."""
        starts = [s.started for s in self.states.values() if s.waiting]
        return min(starts) + self.timeout if starts else None

    def expire(self, now: float) -> list[BarrierReply]:
        """Fail the rounds that waited longer than the timeout."""
        replies: list[BarrierReply] = []
        for (stage_id, attempt), state in self.states.items():
            if state.waiting and now - state.started >= self.timeout:
                error = (f"barrier stage {stage_id}.{attempt}: only {len(state.waiting)} of its {state.num_tasks} "
                         f"tasks called {state.kind}() (call #{state.epoch + 1}) within spark.barrier.sync.timeout "
                         f"({self.timeout:g} s)")
                replies += [BarrierReply(w.executor_id, w.task_id, state.epoch, error=error)
                            for w in state.waiting.values()]
                state.waiting = {}
        return replies

    def stage_attempt_ended(self, stage_key: tuple[int, int]) -> list[BarrierReply]:
        """Forget an attempt that succeeded, failed or was cancelled; tasks still waiting
        (their attempt is being killed) are told so rather than left blocked."""
        state = self.states.pop(stage_key, None)
        if state is None or not state.waiting:
            return []
        error = f"barrier stage {stage_key[0]}.{stage_key[1]} ended while this task waited in {state.kind}()"
        return [BarrierReply(w.executor_id, w.task_id, state.epoch, error=error) for w in state.waiting.values()]


# --------------------------------------------------------------------- runtime glue
# Called by DriverRuntime under its lock.

def _coordinator(rt: "DriverRuntime") -> BarrierCoordinator:
    coord: BarrierCoordinator | None = getattr(rt, "barrier_coordinator", None)
    if coord is None:
        coord = rt.barrier_coordinator = BarrierCoordinator(getattr(rt, "barrier_sync_timeout", DEFAULT_SYNC_TIMEOUT))
    return coord


def on_barrier_request(rt: "DriverRuntime", h: "ExecutorHandle", msg: m.BarrierRequest) -> None:
    """A task's barrier()/allGather() call arrived from executor ``h``."""
    with rt.lock:
        att: TaskAttempt | None = rt.tasks.attempts.get(msg.task_id) if isinstance(msg.task_id, int) else None
        epoch = msg.epoch if isinstance(msg.epoch, int) else -1
        if (att is None or att.executor_id != h.executor_id or not att.tsm.barrier or att.tsm.zombie
                or msg.kind not in SYNC_KINDS or not isinstance(msg.message, str)):
            why = ("it is not a running task of a live barrier stage attempt" if msg.kind in SYNC_KINDS
                   else f"unknown sync method {msg.kind!r}")
            rt._send(h, m.BarrierResponse(msg.task_id, epoch, None, f"sync request refused: {why}"))
            return
        tsm = att.tsm
        coord = _coordinator(rt)
        live = {(t.stage_id, t.stage_attempt) for t in rt.tasks.task_sets if t.barrier and not t.zombie}
        for key in [k for k in coord.states if k not in live]:
            _send_replies(rt, coord.stage_attempt_ended(key))
        replies = coord.request((tsm.stage_id, tsm.stage_attempt), len(tsm.partitions), att.index, h.executor_id,
                                msg.task_id, epoch, msg.kind, msg.message, time.monotonic())
        _send_replies(rt, replies)
        _arm_timer(rt)


def barrier_stage_attempt_ended(rt: "DriverRuntime", stage_key: tuple[int, int]) -> None:
    coord: BarrierCoordinator | None = getattr(rt, "barrier_coordinator", None)
    if coord is not None:
        _send_replies(rt, coord.stage_attempt_ended(stage_key))


def barrier_properties(rt: "DriverRuntime", att: "TaskAttempt") -> dict[str, str]:
    """The local properties of a barrier task: the job's, plus every task's executor
    address in partition order (``addresses``, read by getTaskInfos, as Spark passes
    them). All tasks of a barrier attempt are placed at once, so all are known here."""
    payload = att.tsm.payload
    addresses = getattr(payload, "barrier_addresses", None)
    if addresses is None:
        by_index = {a.index: a.executor_id for a in att.tsm.running.values()}
        parts = []
        for i in range(len(att.tsm.partitions)):
            h = rt.executors.get(by_index.get(i, ""))
            parts.append(f"{h.host}:{h.port}" if h is not None else "")
        addresses = payload.barrier_addresses = ",".join(parts)
    props = dict(payload.properties or {})
    props["addresses"] = addresses
    return props


def _send_replies(rt: "DriverRuntime", replies: list[BarrierReply]) -> None:
    for r in replies:
        h = rt.executors.get(r.executor_id)
        if h is not None:
            rt._send(h, m.BarrierResponse(r.task_id, r.epoch, r.messages, r.error))


def _arm_timer(rt: "DriverRuntime") -> None:
    """One timer for the earliest open round's deadline; it fails the rounds that are
    late and re-arms itself for the next."""
    coord = _coordinator(rt)
    deadline = coord.next_deadline()
    timer: threading.Timer | None = getattr(rt, "barrier_timer", None)
    if deadline is None or (timer is not None and timer.is_alive() and getattr(timer, "deadline", 0) <= deadline):
        return
    if timer is not None:
        timer.cancel()

    def fire() -> None:
        with rt.lock:
            if rt.stopped:
                return
            _send_replies(rt, coord.expire(time.monotonic()))
            rt.barrier_timer = None
            _arm_timer(rt)

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), fire)
    timer.deadline = deadline  # type: ignore[attr-defined]
    timer.daemon = True
    timer.name = "barrier-timeout"
    rt.barrier_timer = timer
    timer.start()


def cancel_timer(rt: "DriverRuntime") -> None:
    timer: threading.Timer | None = getattr(rt, "barrier_timer", None)
    if timer is not None:
        timer.cancel()

