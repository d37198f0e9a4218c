"""The driver's scheduler runtime: where network events meet the two state machines.

```
 user thread ── run_job ──▶ DAGScheduler ──SubmitTaskSet──▶ TaskScheduler ──Launch──▶ executor
                   ▲                                             ▲                      │
                   └──── DeliverResult / JobSucceeded ◀── TaskEnded ◀── StatusUpdate ◀──┘
```
Each executor connection has a reader thread; every event is handled under one lock, by
feeding the state machines and carrying out the actions they return (sending messages,
waking the job's waiter). A send never waits on the executor: it goes through the
executor's outbox (executor_outbox.py), whose backlog one writer thread sends; a backlog
stalled for spark.network.timeout closes the connection, and the reader thread reports
the executor lost. The runtime knows executors only as connections: how they came
to exist is the scheduler backend's business, so local mode and a standalone cluster run
exactly this code.

A result too large for one frame arrives *indirectly*: the StatusUpdate names a block in
the executor's block manager and its size. ``spark.driver.maxResultSize`` is checked on
that size first; only then does a fetcher thread read the block in chunks from the
executor's block server and feed the full StatusUpdate in as if it had come directly.
When an executor is lost, the scheduler backend hears of it (``executor_loss_listeners``)
and may start a replacement; a backend that learns the application cannot go on calls
``abort``, which fails the running jobs and every later one with the reason.
"""
from __future__ import annotations

import logging
import pickle
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import cloudpickle

from sparkctl import serializers
from sparkctl.errors import (FetchFailedError, JobCancelledError, RemoteTraceback,
                             SparkctlError, TaskFailedError)
from sparkctl.executor.messages import BlockData, FetchBlockChunk
from sparkctl.rpc import Connection, Server, connect
from sparkctl.rpc.connection import frame_message
from sparkctl.scheduler import messages as m
from sparkctl.scheduler.barrier import (barrier_properties, barrier_stage_attempt_ended, cancel_timer,
                                        on_barrier_request)
from sparkctl.scheduler.event_poster import NoEvents
from sparkctl.scheduler.executor_outbox import MAX_QUEUED_BYTES, OutboxLink, OutboxWriter
from sparkctl.scheduler.dag_scheduler import (ApplyAccumulators, CancelTaskSet, DAGScheduler, DeliverResult,
                                              JobFailed, JobSucceeded, ShuffleMapStage, SubmitTaskSet)
from sparkctl.scheduler.map_output_tracker import MIN_SIZE_FOR_BROADCAST, MapOutputTracker
from sparkctl.scheduler.task_scheduler import (BarrierTaskSetFailed, KillTask, Launch, TaskAttempt, TaskEnded,
                                               TaskScheduler, TaskSetAborted, TaskSetManager)
from sparkctl.status import AppStatusStore, call_site
from sparkctl.storage.merged_shuffle import PushConfig, choose_mergers, push_block_limit

if TYPE_CHECKING:
    from sparkctl.rdd.rdd import RDD

log = logging.getLogger("sparkctl.driver")


class JobWaiter:
    def __init__(self, job_id: int, n: int, group: str | None) -> None:
        self.job_id = job_id
        self.results: list[Any] = [None] * n
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.result_bytes = 0
        self.group = group

    def fail(self, error: BaseException) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()


@dataclass
class StagePayload:
    """A stage attempt serialized once: sent to each executor once, then referenced."""

    message: m.StageBinary
    splits: dict[int, bytes]  # partition -> pickled Partition
    broadcast_ids: tuple[int, ...]
    properties: dict[str, str] | None = None  # the job's local properties (job group...)
    barrier_addresses: str | None = None  # a barrier attempt's task addresses, once its tasks are placed
    cached_rdds: tuple[int, ...] = ()  # persisted RDDs this stage computes through (narrow lineage)


@dataclass
class ExecutorHandle:
    executor_id: str
    host: str
    port: int
    cores: int
    conn: Connection
    pid: int = 0
    stage_keys: set[tuple[int, int]] = field(default_factory=set)
    broadcasts: set[int] = field(default_factory=set)
    last_heartbeat: float = field(default_factory=time.monotonic)
    link: OutboxLink | None = None  # what the driver sends it goes through here (_send)


class DriverRuntime:
    def __init__(self, host: str, port: int, secret: bytes, *, max_failures: int, max_result_size: int,
                 broadcast_source: Callable[[int], bytes], apply_accumulators: Callable[[dict[int, Any]], None],
                 max_frame: int, network_timeout: float = 120.0,
                 map_output_broadcast_size: int = MIN_SIZE_FOR_BROADCAST,
                 push: PushConfig | None = None) -> None:
        self.lock = threading.RLock()
        self.network_timeout = network_timeout
        self._stop_event = threading.Event()
        # spark.shuffle.mapOutput.minSizeForBroadcast: statuses this large go as a broadcast
        self.dag = DAGScheduler(MapOutputTracker(map_output_broadcast_size))
        # the DAG scheduler's map output bookkeeping; also answers executors' status requests
        self.map_outputs = self.dag.tracker
        # spark.shuffle.push.*: None or disabled, every shuffle is a pull shuffle
        self.push = push if push is not None and push.enabled else None
        self.tasks = TaskScheduler(max_failures)
        # jobs and stages as sc.statusTracker() reports them (sparkctl/status.py), fed under the lock
        self.status = AppStatusStore(self.lock)
        # what the listener bus hears (sparkctl/scheduler/event_poster.py); the context sets a live one
        self.events: NoEvents = NoEvents()
        # spark.python.profile: RDD id -> accumulator id its stage's tasks add cProfile stats to
        self.profile_accumulator: Callable[[int], int | None] | None = None
        self.max_failures = max_failures
        self.max_result_size = max_result_size
        self.broadcast_source = broadcast_source
        self.apply_accumulators = apply_accumulators
        self.executors: dict[str, ExecutorHandle] = {}
        self.executor_changed = threading.Condition(self.lock)
        self.lost_executors: dict[str, str] = {}
        self.waiters: dict[int, JobWaiter] = {}
        self.payloads: dict[tuple[int, int], StagePayload] = {}
        self.next_job_id = 0
        self.app_id = ""
        # what addFile/addArchive/addPyFile added (sparkctl.files.FileEntry): sent to each
        # executor at registration and to the registered ones when added, before any later task
        self.app_files: list[Any] = []
        self.stopped = False
        self.listeners: list[Callable[[str, Any], None]] = []
        self.progress_bar: Any = None  # the console bar (sparkctl.ui.progress), told of job ends in run_job
        # called (executor id, reason, caused by the app) after an executor is lost, off the lock
        self.executor_loss_listeners: list[Callable[[str, str, bool], None]] = []
        self.aborted: str | None = None  # why the application cannot run jobs any more
        # barrier stages (scheduler/barrier.py): the coordinator and its timer exist once used
        self.barrier_sync_timeout = 365 * 24 * 3600.0  # spark.barrier.sync.timeout
        self.barrier_coordinator: Any = None
        self.barrier_timer: Any = None
        self.secret = secret
        self.max_frame = max_frame
        # a StatusUpdate over this goes back indirectly; the reserve covers its own fields
        self.max_direct_result = max_frame - min(1 << 20, max_frame // 4)
        self.server = Server(host, port, secret, self._on_connection, name="driver", max_frame=max_frame)
        # sends to executors never wait on one (executor_outbox.py): a backlog that makes no
        # progress for spark.network.timeout, or outgrows two of the largest frames, loses it
        self.outboxes = OutboxWriter(network_timeout, max(MAX_QUEUED_BYTES, 2 * max_frame))
        # the last broadcast framed (bid, its data, the frame): one copy queued for every
        # executor that needs it, not one each; dropped when a job ends
        self._broadcast_frame: tuple[int, bytes, bytes] | None = None

    def start(self) -> tuple[str, int]:
        self.outboxes.start()
        self.server.start()
        return self.server.address

    def enable_speculation(self, interval: float, quantile: float, multiplier: float) -> None:
        """Relaunch stragglers (spark.speculation): checked every ``interval`` seconds."""
        self.tasks.speculation = True  # task sets feed their median of durations as tasks finish

        def loop() -> None:
            while not self._stop_event.wait(interval):
                with self.lock:
                    if self.tasks.task_sets:
                        actions = self.tasks.check_speculation(time.monotonic(), quantile, multiplier)
                        for a in actions:
                            if isinstance(a, Launch):
                                log.info("Speculating task %d of stage %d (partition %d) on executor %s",
                                         a.attempt.task_id, a.attempt.tsm.stage_id,
                                         a.attempt.tsm.partitions[a.attempt.index], a.attempt.executor_id)
                        self._execute(actions)
        threading.Thread(target=loop, daemon=True, name="speculation").start()

    @property
    def address(self) -> tuple[str, int]:
        return self.server.address

    # ----------------------------------------------------------------- jobs
    def run_job(self, rdd: "RDD", func: Callable[..., Any], partitions: list[int],
                properties: dict[str, str] | None = None) -> list[Any]:
        with self.lock:
            if self.stopped:
                raise SparkctlError("Cannot call methods on a stopped SparkContext")
            if self.aborted is not None:
                raise SparkctlError(f"The application was aborted and runs no more jobs: {self.aborted}")
            job_id = self.next_job_id
            self.next_job_id += 1
            waiter = JobWaiter(job_id, len(partitions), (properties or {}).get("spark.jobGroup.id"))
            self.waiters[job_id] = waiter
            log.info("Got job %d (%d partitions of %r)", job_id, len(partitions), rdd)
            self._notify("job_start", (job_id, len(partitions)))
            actions = self.dag.submit_job(job_id, rdd, func, partitions, properties)
            stages = self._job_stages(job_id)
            site = call_site()
            self.status.job_start(job_id, stages, properties, site)
            self.events.job_started(job_id, stages, properties, site)
            self._execute(actions)
        try:
            while not waiter.done.wait(0.5):
                pass
        except KeyboardInterrupt:
            self.cancel_job(job_id, "interrupted (Ctrl-C)")
            raise
        finally:
            with self.lock:
                self.waiters.pop(job_id, None)
                # a job failed before its stages ran (abort, stop) ends here
                self.status.job_end(job_id, waiter.done.is_set() and waiter.error is None)
                self.events.job_ended(job_id, waiter.error if waiter.done.is_set() else
                                      SparkctlError("the job was interrupted"))
        self._notify("job_end", job_id)
        if self.progress_bar is not None:  # erased before the caller prints again
            self.progress_bar.job_ended(job_id, waiter.error is None)
        if waiter.error is not None:
            raise waiter.error
        return waiter.results

    def cancel_job(self, job_id: int, reason: str) -> None:
        with self.lock:
            self._execute(self.dag.cancel_job(job_id, JobCancelledError(f"Job {job_id} cancelled: {reason}")))

    def cancel_all(self, reason: str = "cancelled by cancelAllJobs") -> None:
        with self.lock:
            for jid in list(self.waiters):
                self.cancel_job(jid, reason)

    def cancel_group(self, group: str) -> None:
        with self.lock:
            for jid, w in list(self.waiters.items()):
                if w.group == group:
                    self.cancel_job(jid, f"part of cancelled job group {group}")

    def cancel_tagged(self, tag: str) -> None:
        """Cancel every running job that carries job tag ``tag`` (SparkContext.addJobTag)."""
        with self.lock:
            for jid in self.status.running_job_ids(tag):
                if jid in self.waiters:
                    self.cancel_job(jid, f"part of cancelled job tag {tag}")

    def _job_stages(self, job_id: int) -> list[Any]:
        """The stages of a job just submitted: its result stage and every ancestor."""
        job = self.dag.jobs.get(job_id)
        if job is None:
            return []
        found: dict[int, Any] = {}
        stack: list[Any] = [job.final_stage]
        while stack:
            st = stack.pop()
            if st.id not in found:
                found[st.id] = st
                stack.extend(st.parents)
        return list(found.values())

    def abort(self, reason: str) -> None:
        """The application cannot go on (e.g. the master removed it): fail the running jobs
        and refuse later ones, with ``reason``, instead of letting them wait for executors."""
        with self.lock:
            if self.stopped or self.aborted is not None:
                return
            self.aborted = reason
            log.error("Aborting the application: %s", reason)
            for jid in list(self.waiters):
                self._execute(self.dag.cancel_job(jid, SparkctlError(f"Job {jid} aborted: {reason}")))
            for w in self.waiters.values():  # a job whose stages were not yet submitted
                w.fail(SparkctlError(f"Job {w.job_id} aborted: {reason}"))

    def _notify(self, event: str, data: Any) -> None:
        for fn in self.listeners:
            try:
                fn(event, data)
            except Exception:
                log.debug("listener failed", exc_info=True)

    # ----------------------------------------------------------------- actions
    def _execute(self, actions: list[Any]) -> None:
        queue = deque(actions)
        while queue:
            action = queue.popleft()
            if isinstance(action, Launch):
                self._launch(action.attempt)
            elif isinstance(action, TaskEnded):
                queue += self.dag.task_ended(action.stage_id, action.stage_attempt, action.partition,
                                             success=action.success, value=action.value, error=action.error,
                                             accum_updates=action.accum_updates, blocks_added=action.blocks_added,
                                             executor_id=action.executor_id)
            elif isinstance(action, SubmitTaskSet):
                queue += self._submit_task_set(action)
            elif isinstance(action, DeliverResult):
                w = self.waiters.get(action.job_id)
                if w is not None:
                    w.results[action.output_index] = action.value
            elif isinstance(action, JobSucceeded):
                w = self.waiters.get(action.job_id)
                log.info("Job %d finished", action.job_id)
                self.status.job_end(action.job_id, True)
                self.events.job_ended(action.job_id, None)
                if w is not None:
                    w.done.set()
                self._forget_payloads()
            elif isinstance(action, JobFailed):
                w = self.waiters.get(action.job_id)
                log.info("Job %d failed: %s", action.job_id, action.error)
                self.status.job_end(action.job_id, False)
                self.events.job_ended(action.job_id, action.error)
                if w is not None:
                    w.fail(action.error)
                self._forget_payloads()
            elif isinstance(action, CancelTaskSet):
                queue += self.tasks.cancel(action.stage_id, action.attempt, action.reason)
                self.events.check_stage_ends()
            elif isinstance(action, TaskSetAborted):
                queue += self.dag.task_set_failed(action.stage_id, action.error)
            elif isinstance(action, BarrierTaskSetFailed):
                log.warning("Barrier stage %d.%d failed: %s", action.stage_id, action.stage_attempt, action.reason)
                barrier_stage_attempt_ended(self, (action.stage_id, action.stage_attempt))
                queue += self.dag.barrier_stage_failed(action.stage_id, action.stage_attempt, action.error,
                                                       action.reason)
            elif isinstance(action, KillTask):
                h = self.executors.get(action.executor_id)
                if h is not None:
                    self._send(h, m.KillTask(action.task_id, action.reason))
            elif isinstance(action, ApplyAccumulators):
                self.apply_accumulators(action.updates)
            elif action is not None:
                raise AssertionError(f"unknown scheduler action {action!r}")

    def _forget_payloads(self) -> None:
        self._broadcast_frame = None
        live = {(t.stage_id, t.stage_attempt) for t in self.tasks.task_sets}
        for key in [k for k in self.payloads if k not in live]:
            del self.payloads[key]
        self._drop_retired_statuses()

    # ----------------------------------------------------------------- map output statuses
    def _serve_map_statuses(self, h: ExecutorHandle, msg: m.GetMapOutputStatuses) -> None:
        """Answer an executor's request for a shuffle's statuses: encoded once per change of
        the shuffle (sparkctl/scheduler/map_output_tracker.py); large ones go as a broadcast
        the executor keeps, sent ahead of the answer unless it has it already."""
        sid = msg.shuffle_id
        if not isinstance(sid, int) or isinstance(sid, bool):
            log.warning("executor %s asked for the statuses of shuffle %r", h.executor_id, sid)
            return
        with self.lock:
            self._drop_retired_statuses()
            served = self.map_outputs.serve(sid, h.broadcasts.__contains__)
            if served.broadcast_id is None:
                reply = m.MapOutputStatuses(sid, served.epoch, served.data, None, served.complete)
            else:
                if served.broadcast_id not in h.broadcasts:
                    # under the lock, so a RemoveBroadcast of it (once retired) cannot overtake it
                    self._send(h, m.PutBroadcast(served.broadcast_id, served.data))
                    h.broadcasts.add(served.broadcast_id)
                reply = m.MapOutputStatuses(sid, served.epoch, None, served.broadcast_id, served.complete)
        # an inline answer goes off the lock; this reader thread alone answers this
        # executor's requests, so it follows the broadcast it names
        self._send(h, reply)

    def _drop_retired_statuses(self) -> None:
        """Executors drop broadcasts of statuses that have changed since. Under the lock."""
        for bid in self.map_outputs.retired_broadcasts():
            for other in self.executors.values():
                if bid in other.broadcasts:
                    other.broadcasts.discard(bid)
                    self._send(other, m.RemoveBroadcast(bid))

    def _submit_task_set(self, action: SubmitTaskSet) -> list[Any]:
        stage = action.stage
        key = (stage.id, action.attempt)
        try:
            payload = self._serialize_stage(stage, action.attempt, action.partitions)
        except Exception as e:
            from sparkctl.util.pickling import describe_unpicklable
            obj = (stage.rdd, stage.dep if isinstance(stage, ShuffleMapStage) else getattr(stage, "func", None))
            err = SparkctlError(f"Task not serializable: {_describe_pickle_error(e)}; "
                                f"the object that cannot be serialized: {describe_unpicklable(obj)}")
            err.__cause__ = e
            return self.dag.task_set_failed(stage.id, err)
        payload.properties = action.properties or None
        self.payloads[key] = payload
        log.info("Submitting %d tasks of stage %d.%d (%r)", len(action.partitions), stage.id, action.attempt, stage.rdd)
        self._notify("stage_submit", (stage.id, action.attempt, len(action.partitions)))
        if action.barrier:
            payload.message.barrier = True
        tsm = TaskSetManager(stage.id, action.attempt, action.job_id, action.partitions, action.preferred,
                             self.max_failures, payload, action.barrier)
        self.status.stage_submitted(stage.id, action.attempt, tsm)
        self.events.stage_submitted(stage, action.attempt, len(action.partitions), action.properties, tsm)
        return self.tasks.submit(tsm, time.monotonic())

    def _serialize_stage(self, stage: Any, attempt: int, partitions: list[int]) -> StagePayload:
        if isinstance(stage, ShuffleMapStage):
            obj: Any = (stage.rdd, stage.dep)
            is_map = True
        else:
            obj = (stage.rdd, stage.func)
            is_map = False
        binary, bids = serializers.dumps_closure(obj)
        shuffle_ids = tuple(p.dep.shuffle_id for p in stage.parents if isinstance(p, ShuffleMapStage))
        all_parts = stage.rdd.partitions
        splits = {p: cloudpickle.dumps(all_parts[p], protocol=serializers.PROTOCOL) for p in partitions}
        msg = m.StageBinary((stage.id, attempt), binary, shuffle_ids, tuple(sorted(bids)), is_map,
                            map_output_epoch=self.map_outputs.epoch)
        if is_map and self.push is not None:
            msg.push = self._push_plan(stage.dep)
            # the stage's event-log info and UI name how many mergers it pushes to
            stage.push_mergers = sum(1 for loc in msg.push[0] if loc) if msg.push else 0
        if self.profile_accumulator is not None:
            msg.profile_aid = self.profile_accumulator(stage.rdd._id)
        return StagePayload(msg, splits, tuple(sorted(bids)), cached_rdds=_cached_in_stage(stage.rdd))

    def _push_plan(self, dep: Any) -> tuple[tuple[tuple[str, str, int] | None, ...], int, int] | None:
        """The mergers a shuffle's map tasks push to, chosen at its first map stage from
        the executors there (storage/merged_shuffle.py), the largest slice they push (scaled
        to the hosts there now) and the most bytes of one push; None when it takes none."""
        push = self.push
        assert push is not None

        def choose() -> tuple[tuple[str, str, int], ...]:
            executors = [(h.executor_id, h.host, h.port) for h in self.executors.values() if h.port]
            slots = min((h.cores for h in self.executors.values()), default=1) // max(1, self.tasks.cpus_per_task)
            return choose_mergers(executors, dep.num_partitions, slots, push.min_static, push.min_ratio)

        mergers = self.map_outputs.shuffle_mergers(dep.shuffle_id, choose)
        if not any(mergers):
            return None
        hosts = len({h.host for h in self.executors.values() if h.port})
        return mergers, push_block_limit(push.max_block, len(mergers), hosts), push.max_batch

    def _launch(self, att: TaskAttempt) -> None:
        h = self.executors.get(att.executor_id)
        payload: StagePayload = att.tsm.payload
        if h is None:
            return
        key = payload.message.key
        try:
            for bid in payload.broadcast_ids:
                if bid not in h.broadcasts:
                    self._send(h, m.PutBroadcast(bid, self.broadcast_source(bid)))
                    h.broadcasts.add(bid)
            if key not in h.stage_keys:
                self._send(h, payload.message)
                h.stage_keys.add(key)
        except KeyError as e:
            # a destroyed broadcast: fail the task, not the driver
            self._execute(self.tasks.task_failed(att.task_id, SparkctlError(f"broadcast {e} was destroyed"),
                                                 "broadcast destroyed"))
            return
        partition = att.tsm.partitions[att.index]
        desc = m.TaskDescription(att.task_id, key, partition, att.attempt, payload.splits[partition],
                                 barrier_properties(self, att) if att.tsm.barrier else payload.properties,
                                 self._remote_blocks(payload, partition, h.executor_id))
        log.info("Starting task %d (stage %d.%d, partition %d) on executor %s", att.task_id, key[0], key[1],
                  partition, h.executor_id)
        self.events.task_launched(att, h.host)
        self._send(h, m.LaunchTask(desc))

    def _remote_blocks(self, payload: StagePayload, partition: int,
                       executor_id: str) -> dict[str, tuple[str, int]] | None:
        """Where another executor caches this partition of the stage's persisted RDDs, so
        the task fetches the block rather than recomputing it."""
        found = {}
        for rdd_id in payload.cached_rdds:
            holders = self.dag.cache_locs.get((rdd_id, partition), ())
            if executor_id in holders:
                continue
            for eid in sorted(holders):
                other = self.executors.get(eid)
                if other is not None:
                    found[f"rdd_{rdd_id}_{partition}"] = (other.host, other.port)
                    break
        return found or None

    def _send(self, h: ExecutorHandle, msg: Any) -> None:
        """Send ``msg`` to the executor after what was sent to it before; never waits on it
        (a backlog is the outbox writer's), so holding the lock here is safe."""
        try:
            if type(msg) is m.PutBroadcast:
                memo = self._broadcast_frame
                if memo is None or memo[0] != msg.bid or memo[1] is not msg.data:
                    memo = self._broadcast_frame = (msg.bid, msg.data, frame_message(msg))
                frame = memo[2]
            else:
                frame = frame_message(msg)
            self.outboxes.send(h.link, frame)  # type: ignore[arg-type]
        except Exception as e:  # the reader thread notices the dead connection and reports the loss
            log.warning("could not send to executor %s: %s", h.executor_id, e)

    # ----------------------------------------------------------------- executors
    def _on_connection(self, conn: Connection) -> None:
        try:
            reg = conn.recv(timeout=30)
        except Exception as e:
            log.warning("connection from %s closed before registering: %s", conn.peer, e)
            conn.close()
            return
        if not isinstance(reg, m.RegisterExecutor):
            log.warning("connection from %s sent %s instead of RegisterExecutor; closing it", conn.peer,
                        type(reg).__name__)
            conn.close()
            return
        problem = _registration_problem(reg)
        if problem:
            log.warning("refused executor registration from %s: %s", conn.peer, problem)
            conn.close()
            return
        h = ExecutorHandle(reg.executor_id, reg.host, reg.port, reg.cores, conn, reg.pid)
        with self.lock:
            if self.stopped:
                conn.close()
                return
            if reg.executor_id in self.executors:
                log.warning("refused a second executor %s from %s: one with that id is connected",
                            reg.executor_id, conn.peer)
                conn.close()
                return
            self.executors[reg.executor_id] = h
            h.link = self.outboxes.attach(reg.executor_id, conn)
            log.info("Registered executor %s at %s:%d with %d cores (pid %d)", reg.executor_id, reg.host,
                     reg.port, reg.cores, reg.pid)
            if reg.cores < self.tasks.cpus_per_task:
                log.warning("Executor %s has %d cores, fewer than spark.task.cpus=%d: it can run no task",
                            reg.executor_id, reg.cores, self.tasks.cpus_per_task)
            self._send(h, m.RegisteredExecutor(self.app_id, {}, self.max_direct_result, self.max_result_size))
            for entry in self.app_files:
                for chunk in entry.messages(self._file_chunk()):
                    self._send(h, chunk)  # a failure: the reader below sees the connection gone
            self.events.executor_added(reg.executor_id, reg.host, reg.port, reg.cores,
                                       getattr(reg, "log_urls", None))
            self._execute(self.tasks.executor_added(reg.executor_id, reg.host, reg.cores, time.monotonic()))
            self.executor_changed.notify_all()
        error: BaseException | None = None
        try:
            while True:
                # executors heartbeat every few seconds: silence this long means it is gone
                msg = conn.recv(timeout=self.network_timeout)
                if isinstance(msg, m.StatusUpdate):
                    if msg.result_block is not None:
                        self._on_indirect_status(msg, h)
                    else:
                        self._on_status(msg)
                elif isinstance(msg, m.ExecutorHeartbeat):
                    h.last_heartbeat = time.monotonic()
                    self._send(h, m.HeartbeatResponse())
                elif isinstance(msg, m.GetMapOutputStatuses):
                    self._serve_map_statuses(h, msg)
                elif isinstance(msg, m.BarrierRequest):
                    on_barrier_request(self, h, msg)
                else:
                    log.warning("executor %s sent unexpected %s", reg.executor_id, type(msg).__name__)
        except Exception as e:
            error = e
        finally:
            conn.close()
            # An unexplained end of the connection (the process died, or broke the protocol)
            # may be the app's doing, as Spark assumes of an executor process lost.
            why = f"{type(error).__name__}: {error}" if error is not None and str(error) else \
                type(error).__name__ if error is not None else "EOF"
            # closed because it stopped taking what the driver sends: say so
            stalled = self.outboxes.gave_up(h.link)  # type: ignore[arg-type]
            self.executor_lost(reg.executor_id, stalled or f"connection closed ({why})")

    def executor_lost(self, executor_id: str, reason: str, caused_by_app: bool = True) -> None:
        """Forget an executor and rerun what it was running. ``caused_by_app``: whether its
        running tasks count the loss as a failure (False when, say, its worker died)."""
        with self.lock:
            h = self.executors.pop(executor_id, None)
            if h is None:
                return
            self.lost_executors[executor_id] = reason
            if h.link is not None:
                self.outboxes.detach(h.link, f"executor {executor_id} lost: {reason}")
            stopped = self.stopped
            if not stopped:
                log.warning("Lost executor %s: %s", executor_id, reason)
            self._execute(self.dag.executor_lost(executor_id))
            self._execute(self.tasks.executor_lost(executor_id, reason, time.monotonic(),
                                                   caused_by_app=caused_by_app))
            self.events.tasks_lost(self.tasks.attempts, executor_id, reason)
            if not stopped:  # as Spark, a normal stop removes no executor in the log
                self.events.executor_removed(executor_id, reason)
            self.events.check_stage_ends()
            self.executor_changed.notify_all()
        if not stopped:
            for listener in list(self.executor_loss_listeners):
                try:
                    listener(executor_id, reason, caused_by_app)
                except Exception:
                    log.warning("executor loss listener failed", exc_info=True)
        # declared lost (e.g. its worker went silent) but perhaps still alive: cut it off, so
        # it stops rather than run on unseen and report on tasks that were rerun elsewhere
        h.conn.close()

    def wait_for_executors(self, count: int, timeout: float) -> bool:
        with self.lock:
            return self.executor_changed.wait_for(lambda: len(self.executors) >= count, timeout)

    def total_cores(self) -> int:
        with self.lock:
            return sum(h.cores for h in self.executors.values())

    def _on_indirect_status(self, msg: m.StatusUpdate, h: ExecutorHandle) -> None:
        """A result kept in the executor's block manager: check its size against
        spark.driver.maxResultSize, then fetch it off this executor's reader thread."""
        block = msg.result_block
        if (not isinstance(block, tuple) or len(block) != 2 or not isinstance(block[0], str)
                or not isinstance(block[1], int) or block[1] < 0):
            log.warning("executor %s sent a malformed indirect result for task %s", h.executor_id, msg.task_id)
            return
        block_id, size = block
        with self.lock:
            att = self.tasks.attempts.get(msg.task_id)
            wanted = att is not None and att.executor_id == h.executor_id
            if wanted and msg.state == m.FINISHED and self._result_over_limit(msg.task_id, size):
                wanted = False
        if not wanted:
            self._send(h, m.RemoveBlock(block_id))
            return
        log.info("Task %d: fetching its result of %d bytes (block %s) from executor %s", msg.task_id, size,
                 block_id, h.executor_id)
        threading.Thread(target=self._fetch_indirect, args=(msg, h, block_id, size), daemon=True,
                         name=f"result-fetcher-{msg.task_id}").start()

    def _fetch_indirect(self, msg: m.StatusUpdate, h: ExecutorHandle, block_id: str, size: int) -> None:
        try:
            data = self._fetch_block(h, block_id, size)
            update = pickle.loads(data)
            if not isinstance(update, m.StatusUpdate) or update.task_id != msg.task_id:
                raise TaskFailedError(f"block {block_id} does not hold the result of task {msg.task_id}")
        except Exception as e:
            with self.lock:
                if msg.task_id in self.tasks.attempts:
                    log.warning("Task %d: could not fetch its result from executor %s: %s", msg.task_id,
                                h.executor_id, e)
                    err = TaskFailedError(f"could not fetch the result of task {msg.task_id} from executor "
                                          f"{h.executor_id}: {type(e).__name__}: {e}")
                    self.events.task_ended(msg.task_id, m.FAILED, "TaskFailedError", str(err))
                    self._execute(self.tasks.task_failed(msg.task_id, err, str(err), now=time.monotonic()))
            return
        finally:
            self._send(h, m.RemoveBlock(block_id))
        del data
        self._on_status(update, counted=True)

    def _fetch_block(self, h: ExecutorHandle, block_id: str, size: int) -> bytearray:
        """Read a block from an executor's block server, in chunks well under a frame."""
        chunk = max(1 << 16, min(8 << 20, self.max_frame // 4))
        buf = bytearray(size)
        conn = connect(h.host, h.port, self.secret, timeout=30, max_frame=self.max_frame)
        try:
            offset = 0
            while offset < size:
                conn.send(FetchBlockChunk(block_id, offset, min(chunk, size - offset)))
                reply = conn.recv(timeout=self.network_timeout)
                if not isinstance(reply, BlockData) or reply.data is None:
                    raise TaskFailedError(getattr(reply, "error", "") or f"no data for block {block_id}")
                if not reply.data:
                    raise TaskFailedError(f"block {block_id} ended at {offset} of {size} bytes")
                buf[offset:offset + len(reply.data)] = reply.data
                offset += len(reply.data)
        finally:
            conn.close()
        return buf

    def _result_over_limit(self, task_id: int, size: int) -> bool:
        """Add a result task's result to its job's total; past spark.driver.maxResultSize, fail
        the job and free the task's slot (its result is dropped, never retried). Under the lock."""
        att = self.tasks.attempts.get(task_id)
        if att is None or att.tsm.payload.message.is_shuffle_map:
            return False
        w = self.waiters.get(att.tsm.job_id)
        if w is None or not self.max_result_size:
            return False
        w.result_bytes += size
        if w.result_bytes <= self.max_result_size:
            return False
        self._execute(self.dag.cancel_job(att.tsm.job_id, SparkctlError(
            f"Total size of serialized results of job {att.tsm.job_id} ({w.result_bytes} bytes, with task "
            f"{task_id}'s result of {size} bytes) is bigger than spark.driver.maxResultSize "
            f"({self.max_result_size} bytes)")))
        self.events.task_ended(task_id, m.FAILED, "TaskResultLost", "result over spark.driver.maxResultSize")
        self._execute(self.tasks.release(task_id, time.monotonic()))
        self.events.check_stage_ends()
        return True

    def _on_status(self, msg: m.StatusUpdate, counted: bool = False) -> None:
        try:
            outcome: m.TaskOutcome = serializers.loads(msg.outcome)
        except Exception as e:
            outcome = m.TaskOutcome(error=TaskFailedError(f"could not deserialize the task's result: {e}"),
                                    traceback="")
            msg.state = m.FAILED
        with self.lock:
            now = time.monotonic()
            if msg.state == m.FINISHED:
                if not counted and self._result_over_limit(msg.task_id, len(msg.outcome)):
                    return
                log.info("Finished task %d in %.0f ms on executor %s (result %d bytes)", msg.task_id,
                         outcome.duration * 1000, msg.executor_id, len(msg.outcome))
                events = self.events
                if events.enabled:
                    events.task_ended(msg.task_id, m.FINISHED, metrics=getattr(outcome, "metrics", None),
                                      result_size=len(msg.outcome))
                    if outcome.blocks_added:
                        h = self.executors.get(msg.executor_id)
                        if h is not None:
                            events.blocks_added(h.executor_id, h.host, h.port, outcome.blocks_added,
                                                getattr(outcome, "block_sizes", None))
                self._execute(self.tasks.task_succeeded(msg.task_id, outcome.value, outcome.accum_updates,
                                                        outcome.blocks_added, now))
                events.check_stage_ends()
                return
            error = rebuild_error(outcome)
            reason = f"{outcome.error_type}: {outcome.error_message}"
            log.warning("Task %d %s on executor %s: %s", msg.task_id, msg.state.lower(), msg.executor_id, reason)
            self.events.task_ended(msg.task_id, msg.state, outcome.error_type, outcome.error_message,
                                   outcome.traceback, getattr(outcome, "metrics", None), len(msg.outcome))
            self._execute(self.tasks.task_failed(msg.task_id, error, reason,
                                                 fetch_failed=msg.state == m.FETCH_FAILED,
                                                 killed=msg.state == m.KILLED, now=now))
            self.events.check_stage_ends()

    # ----------------------------------------------------------------- files
    def add_file(self, entry: Any) -> None:
        """Send an added file (a sparkctl.files.FileEntry) to every executor, and to each
        one that registers later. Under the lock, so no task launched after this returns
        reaches an executor before the file does (one ordered connection each)."""
        with self.lock:
            self.app_files.append(entry)
            for h in list(self.executors.values()):
                for chunk in entry.messages(self._file_chunk()):
                    self._send(h, chunk)

    def _file_chunk(self) -> int:
        return max(1 << 16, min(8 << 20, self.max_frame // 4))

    # ----------------------------------------------------------------- cleanup
    def broadcast_to_executors(self, msg: Any) -> None:
        with self.lock:
            for h in list(self.executors.values()):
                if isinstance(msg, m.RemoveBroadcast):
                    h.broadcasts.discard(msg.bid)
                self._send(h, msg)

    def stop(self) -> None:
        with self.lock:
            if self.stopped:
                return
            self.stopped = True
            self._stop_event.set()
            cancel_timer(self)
            for w in self.waiters.values():
                w.fail(SparkctlError("SparkContext was stopped while the job was running"))
            handles = list(self.executors.values())
        for h in handles:
            log.info("Stopping executor %s", h.executor_id)
            self._send(h, m.StopExecutor())
        self.outboxes.drain(min(self.network_timeout, 10.0))  # what is queued, StopExecutor last
        self.server.stop()
        self.outboxes.stop()


def _registration_problem(reg: m.RegisterExecutor) -> str:
    """Why a RegisterExecutor cannot be trusted as is ('' when it can)."""
    if not isinstance(reg.executor_id, str) or not reg.executor_id:
        return "executor id must be a non-empty string"
    if not isinstance(reg.host, str) or not reg.host:
        return "host must be a non-empty string"
    for name in ("port", "cores", "pid"):
        value = getattr(reg, name)
        if not isinstance(value, int) or isinstance(value, bool):
            return f"{name} must be an integer, got {type(value).__name__}"
    if reg.cores < 1 or not 0 <= reg.port < 65536:
        return f"cores {reg.cores} or port {reg.port} out of range"
    return ""


def _cached_in_stage(rdd: Any) -> tuple[int, ...]:
    """Persisted RDDs reached from ``rdd`` through one-to-one dependencies (same partition
    index), stopping at shuffles."""
    from sparkctl.rdd.dependencies import OneToOneDependency, narrow_lineage
    return tuple(r._id for r in narrow_lineage(rdd, OneToOneDependency) if r.is_cached)


def rebuild_error(outcome: m.TaskOutcome) -> BaseException:
    """The task's exception as its original type, with the remote traceback as its cause."""
    err = outcome.error
    if isinstance(err, FetchFailedError):
        return err
    if not isinstance(err, BaseException):
        err = TaskFailedError(f"{outcome.error_type}: {outcome.error_message}")
    if outcome.traceback:
        err.__cause__ = RemoteTraceback(outcome.traceback)
    return err


def _describe_pickle_error(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text}"

