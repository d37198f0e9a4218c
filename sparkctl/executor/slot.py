"""A task slot: one warm process of an executor that runs one task at a time.

The executor forks its slots once at start-up and keeps them for its lifetime, so a task
costs a message, not a process start. A slot talks only to its executor over a private
socket pair:

```
 executor ── ("task", TaskDescription, pickled StageBinary|None, broadcasts, removed) ──▶ slot
 executor ◀── ("get_block", id) / ("put_block", id, bytes, level) ───────────── slot  (during a task)
 executor ◀── ("map_statuses", shuffle_id, epoch) ───────────────────────────── slot  (a shuffle's first read)
 executor ── ("map_statuses", shuffle_id, encoded statuses|None, error) ───────▶ slot
 executor ◀── ("barrier", task_id, epoch, kind, message) ─────────────────────── slot  (a barrier task's sync)
 executor ── ("barrier_reply", task_id, epoch, messages, error) ──────────────▶ slot
 executor ◀── ("done", task_id, state, pickled StatusUpdate) ───────────────── slot
```
The stage binary (the closure) arrives once per slot and stage attempt, pickled once by
the executor for all its slots, and is unpickled once; broadcasts arrive once per slot. A
shuffle's map statuses are asked of the executor (which asks the driver once for all its
slots) at the first read of the shuffle, and kept decoded until a stage of a newer map
output epoch says outputs were lost since.
"""
from __future__ import annotations

import ctypes
import gc
import importlib
import os
import pickle
import select
import signal
import socket
import struct
import sys
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Iterator

import cloudpickle

from sparkctl import accumulators, broadcast, serializers
from sparkctl.errors import (BarrierStageError, FetchFailedError, TaskExitError,
                             UserStopIterationError)
from sparkctl.executor import python_memory, task_metrics
from sparkctl.executor.messages import BlockData, FetchCachedBlock
from sparkctl.executor.shuffle_client import ConnectionShuffleClient
from sparkctl.rpc import connect, recv_frame, send_frame
from sparkctl.scheduler import messages as m
from sparkctl.scheduler.map_output_tracker import MetadataFetchFailedError, ShuffleStatuses
from sparkctl.storage import sizing
from sparkctl.storage.block_fetcher import MAX_BYTES_IN_FLIGHT
from sparkctl.storage.block_pusher import push_map_output
from sparkctl.storage.merged_shuffle import PUSH_TIMEOUT
from sparkctl.storage.shuffle import MapStatus, read_shuffle, shuffle_paths, write_map_output
from sparkctl.taskcontext import BarrierTaskContext, TaskContext

_MAX_FRAME = 1 << 40
_RELEASE_STEP = 8 << 20
_SHORT_TASK = 0.002  # seconds: too short to have grown the slot much; its RSS goes unread
_IDLE = 0.005  # seconds without a message after which a slot counts as at rest


class SlotEnvironment:
    """What a task running in this slot can use: disk, memory budget, blocks, shuffles."""

    def __init__(self, sock: socket.socket, executor_id: str, host: str, local_dir: str, memory_budget: int,
                 batch_size: int, secret: bytes) -> None:
        self.sock = sock
        self.executor_id = executor_id
        self.host = host
        self.port = 0  # the executor's block server, set by the executor's "init" message
        self.local_dir = local_dir
        self.memory_budget = memory_budget
        self.batch_size = batch_size
        self.secret = secret
        # memory the process holds besides the slot's own (an inline slot's executor: cached
        # blocks, merged shuffle files): above its start, the resident set may grow by both
        self.shared_memory = 0
        # told to stop while a task waits for an answer: end the process (an inline slot's
        # executor first finishes its shutdown)
        self.stop: Callable[[], Any] = _exit_now
        self._shuffle_client: ConnectionShuffleClient | None = None
        # spark.network.timeout: how long a block fetch from another executor may take
        self.network_timeout = 120.0
        # spark.reducer.maxSizeInFlight: bytes a reducer's remote requests may ask for at once
        self.max_bytes_in_flight = MAX_BYTES_IN_FLIGHT
        self.task_cpus = 1  # spark.task.cpus, set by the executor (TaskContext.cpus())
        # shuffle id -> (map output epoch, decoded statuses), for the tasks of later stages
        self._statuses: OrderedDict[int, tuple[int, ShuffleStatuses]] = OrderedDict()

    # ---- requests to the executor process
    def _request(self, msg: tuple[Any, ...]) -> Any:
        """Ask the executor for a block; its answer is the block's bytes or None."""
        send_frame(self.sock, pickle.dumps(msg, serializers.PROTOCOL))
        return self._reply(lambda r: not isinstance(r, tuple))

    def _reply(self, wanted: Any) -> Any:
        """The executor's next message that ``wanted`` accepts. An import path change is
        applied on the way; anything else is an answer meant for an earlier task of this
        slot, killed while it waited (a barrier reply, a shuffle's statuses), and skipped."""
        while True:
            reply = pickle.loads(recv_frame(self.sock, _MAX_FRAME))
            if wanted(reply):
                return reply
            if reply == ("stop",):
                self.stop()  # the executor is stopping: no answer will come
            if isinstance(reply, tuple) and len(reply) == 2 and reply[0] == "path":
                for p in reversed(reply[1]):  # the import path grew while this task waited
                    if p not in sys.path:
                        sys.path.insert(0, p)

    def get_or_compute(self, rdd: Any, split: Any, tc: TaskContext) -> Iterator[Any]:
        block_id = f"rdd_{rdd._id}_{split.index}"
        reply = self._request(("get_block", block_id))
        if reply is None and block_id in tc.block_locations:
            host, port = tc.block_locations[block_id]
            try:
                reply = self.fetch_cached(host, port, block_id)  # cached on another executor
            except Exception:
                reply = None  # gone with its executor: recompute from lineage
        if reply is not None:
            records = pickle.loads(reply)
            # a cached partition read counts as the task's input, as Spark counts it
            metrics = task_metrics.current()
            metrics.input_bytes_read += len(reply)
            metrics.input_records_read += len(records)
            return iter(records)
        records = list(rdd.compute(split, tc))
        data = pickle.dumps(records, serializers.PROTOCOL)
        send_frame(self.sock, pickle.dumps(("put_block", block_id, data, rdd._storage_level), serializers.PROTOCOL))
        tc.blocks_added.append(block_id)
        tc.block_sizes[block_id] = (len(data), not rdd._storage_level.useMemory)
        return iter(records)

    # ---- shuffle
    def map_statuses(self, shuffle_id: int, epoch: int) -> ShuffleStatuses:
        """The statuses of ``shuffle_id`` as of map output ``epoch`` or later: kept from an
        earlier task, else asked of the executor (each reducer's column is inflated when a
        task first reads it)."""
        cached = self._statuses.get(shuffle_id)
        if cached is not None and cached[0] >= epoch:
            self._statuses.move_to_end(shuffle_id)
            return cached[1]
        send_frame(self.sock, pickle.dumps(("map_statuses", shuffle_id, epoch), serializers.PROTOCOL))
        _, _, data, error = self._reply(lambda r: isinstance(r, tuple) and len(r) == 4
                                        and r[0] == "map_statuses" and r[1] == shuffle_id)
        if data is None:
            raise MetadataFetchFailedError(error)
        statuses = ShuffleStatuses(data)
        if statuses.complete:  # one still missing may be registered by the next request
            self._statuses[shuffle_id] = (epoch, statuses)
            while len(self._statuses) > 16:
                self._statuses.popitem(last=False)
        return statuses

    def read_shuffle(self, shuffle_id: int, reduce_index: int, statuses: ShuffleStatuses) -> Iterator[Any]:
        return read_shuffle(shuffle_id, reduce_index, statuses, self.host, self.shuffle_client,
                            timeout=self.network_timeout, max_bytes_in_flight=self.max_bytes_in_flight)

    @property
    def shuffle_client(self) -> ConnectionShuffleClient:
        """This slot's connections to other executors' block servers, kept across tasks."""
        client = self._shuffle_client
        if client is None or client.timeout != self.network_timeout:
            if client is not None:
                client.close_all()
            client = self._shuffle_client = ConnectionShuffleClient(self.secret, self.network_timeout)
        return client

    def barrier_sync(self, task_id: int, epoch: int, kind: str, message: str) -> list[str]:
        """A barrier task's barrier()/allGather(): ask the driver's coordinator through the
        executor and wait for its answer, however long the other tasks take (the
        coordinator's timeout bounds it; a kill interrupts it). A reply meant for an earlier
        task of this slot (killed while it waited) is skipped."""
        send_frame(self.sock, pickle.dumps(("barrier", task_id, epoch, kind, message), serializers.PROTOCOL))
        _, _, _, messages, error = self._reply(lambda r: isinstance(r, tuple) and len(r) == 5
                                               and r[0] == "barrier_reply" and r[1] == task_id and r[2] == epoch)
        if error is not None:
            raise BarrierStageError(error)
        return list(messages)

    def fetch_cached(self, host: str, port: int, block_id: str) -> bytes | None:
        conn = connect(host, port, self.secret, timeout=min(30.0, self.network_timeout))
        try:
            conn.send(FetchCachedBlock(block_id))
            reply = conn.recv(timeout=self.network_timeout)
        finally:
            conn.close()
        return reply.data if isinstance(reply, BlockData) else None


class _ShuffleStatuses(Mapping[int, ShuffleStatuses]):
    """A task's view of the statuses of the shuffles its stage reads: fetched at the first
    read of each (TaskContext.shuffle_statuses), so a task that reads none asks nothing."""

    __slots__ = ("env", "shuffle_ids", "epoch")

    def __init__(self, env: SlotEnvironment, shuffle_ids: tuple[int, ...], epoch: int) -> None:
        self.env, self.shuffle_ids, self.epoch = env, shuffle_ids, epoch

    def __getitem__(self, shuffle_id: int) -> ShuffleStatuses:
        if shuffle_id not in self.shuffle_ids:
            raise KeyError(shuffle_id)
        return self.env.map_statuses(shuffle_id, self.epoch)

    def __iter__(self) -> Iterator[int]:
        return iter(self.shuffle_ids)

    def __len__(self) -> int:
        return len(self.shuffle_ids)


class _Stage:
    __slots__ = ("rdd", "func", "accumulators", "info")

    def __init__(self, rdd: Any, func: Any, accs: list[Any], info: m.StageBinary) -> None:
        self.rdd, self.func, self.accumulators, self.info = rdd, func, accs, info


# Killing a task: the executor writes the task id into this slot's cell of a board shared
# by all its slots, then sends SIGINT. The id tells a kill meant for the task starting now
# (it may arrive before the task does) from a late one meant for a task already finished.
_current_task: int | None = None
_board: Any = None
_cell = 0


def _kill_target() -> int:
    return -1 if _board is None else struct.unpack_from("<q", _board, _cell)[0]


def _on_sigint(signum: int, frame: Any) -> None:
    if _current_task is not None and _kill_target() == _current_task:
        raise KeyboardInterrupt("task killed")


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: no orphan if the executor dies
    except OSError:
        pass


def _exit_now() -> None:
    os._exit(0)


_inline = False  # whether this slot runs in its executor's own process


def executor_pid() -> int:
    """In a task: the pid of the executor running it (a slot process's parent, or this
    process for an inline slot)."""
    return os.getpid() if _inline else os.getppid()


def slot_signals(inline: bool = False) -> None:
    """SIGINT kills the running task if it is the one named on the kill board; a slot
    process also dies at once on SIGTERM (an inline slot leaves its executor's as they are)."""
    signal.signal(signal.SIGINT, _on_sigint)
    if not inline:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def slot_main(sock: socket.socket, env: SlotEnvironment, board: Any = None, index: int = 0,
              inline: bool = False) -> None:
    """Run tasks as the executor sends them over *sock* until it says stop. *inline*: in
    the executor's own main thread rather than a process forked for it."""
    global _current_task, _board, _cell, _inline
    _board, _cell, _inline = board, index * 8, inline
    if not inline:
        _die_with_parent()
    # Everything imported so far lives as long as the slot: keep the collector off it, and
    # collect the young generation less often (tasks allocate millions of short-lived tuples).
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    # This slot's share of executor memory is its resident set now plus its execution
    # budget: spillable collections spill when the process passes that mark, whatever
    # their own size estimates say.
    start_rss = sizing.rss()
    if start_rss is not None:
        sizing.set_rss_limit(start_rss + env.memory_budget + env.shared_memory)
    # A task's spent collections are freed after its result is sent. A task that leaves
    # the slot this much above its last low point gets its memory handed back once the
    # slot is at rest: between tasks that follow each other the next one reuses the free
    # pages, where handing them back would make it fault every page in again.
    sizing.defer_freeing()
    release_mark = None if start_rss is None else start_rss + _RELEASE_STEP
    slot_signals(inline)
    task_metrics.watch_gc()
    stages: OrderedDict[tuple[int, int], _Stage] = OrderedDict()
    while True:
        if release_mark is not None and sizing.release_held() and not _message_within(sock, _IDLE):
            sizing.hold_release(False)
            if (sizing.rss() or 0) > release_mark:
                sizing.release_memory()
                # what stays is held by live objects (the user's, the stage cache): the next
                # release waits for growth beyond it, not after every task
                release_mark = max(start_rss or 0, sizing.rss() or 0) + _RELEASE_STEP
        try:
            msg = pickle.loads(recv_frame(sock, _MAX_FRAME))
        except Exception:
            return  # the executor went away
        kind = msg[0]
        if kind == "stop":
            return
        if kind == "init":
            env.port = msg[1]
            continue
        if kind == "path":
            for p in reversed(msg[1]):
                if p not in sys.path:
                    sys.path.insert(0, p)
            importlib.invalidate_caches()  # a module added to a directory already on the path
            continue
        if kind != "task":
            continue
        _, desc, info, bcasts, removed = msg
        for bid in removed:
            broadcast.executor_remove(bid)
        for bid, data in bcasts:
            broadcast.executor_put(bid, data)
        _current_task = desc.task_id
        metrics = task_metrics.begin()
        try:
            if _kill_target() == desc.task_id:
                raise KeyboardInterrupt("task killed before it started")
            state, outcome = _run_task(desc, info, stages, env, metrics)
        except KeyboardInterrupt as e:  # killed before the task began or after it ended
            state, outcome = m.KILLED, m.TaskOutcome(error_type="TaskKilled", error_message=str(e))
        finally:
            _current_task = None
        try:
            data = _serialize_outcome(outcome, metrics)
        except Exception as e:
            state = m.FAILED
            metrics.result_size = 0
            data = cloudpickle.dumps(m.TaskOutcome(error_type=type(e).__name__,
                                                   error_message=f"task result could not be serialized: {e}",
                                                   traceback=traceback.format_exc(), metrics=metrics.as_dict()))
        update = pickle.dumps(m.StatusUpdate(env.executor_id, desc.task_id, state, data), serializers.PROTOCOL)
        send_frame(sock, pickle.dumps(("done", desc.task_id, state, update), serializers.PROTOCOL))
        worked = outcome.duration > _SHORT_TASK
        del update, data, outcome
        sizing.free_retired()
        if worked and release_mark is not None:
            sizing.hold_release()


def _message_within(sock: socket.socket, timeout: float) -> bool:
    """Whether the executor sends something within ``timeout`` seconds."""
    try:
        return bool(select.select([sock], [], [], timeout)[0])
    except (OSError, ValueError):
        return True  # a closed socket: the next read says so


def _load_stage(key: tuple[int, int], frame: bytes | None,
                stages: "OrderedDict[tuple[int, int], _Stage]") -> _Stage:
    if frame is not None:
        info: m.StageBinary = pickle.loads(frame)
        try:
            with accumulators.collect_accumulators() as found:
                rdd, func = pickle.loads(info.binary)
        except BaseException as e:
            # later tasks of this stage arrive without the binary: they fail the same way
            stages[key] = _Stage(None, e, [], info)
            raise
        stages[key] = _Stage(rdd, func, found, info)
        while len(stages) > 32:
            stages.popitem(last=False)
    stage = stages[key]
    stages.move_to_end(key)
    if stage.rdd is None:
        raise stage.func
    return stage


def _serialize_outcome(outcome: m.TaskOutcome, metrics: task_metrics.TaskMetrics) -> bytes:
    """The pickled outcome, with the task's metrics in it. The result value is pickled on
    its own first (by the C pickler when it can, as the outcome), so that its size and the
    time it took (Spark's resultSize and resultSerializationTime) can ride in the same
    outcome; the driver's one unpickling still gives back the value itself (see
    _PickledValue)."""
    if outcome.value is not None:
        started = time.perf_counter_ns()
        try:
            data = pickle.dumps(outcome.value, serializers.PROTOCOL)
        except Exception:  # a function, or a class made in the driver's __main__
            data = cloudpickle.dumps(outcome.value, protocol=serializers.PROTOCOL)
        metrics.result_serialization_time += time.perf_counter_ns() - started
        metrics.result_size = len(data)
        if len(data) > _INLINE_RESULT:
            outcome.value = _PickledValue(data)  # else pickling it again is cheaper than the wrapper
    outcome.metrics = metrics.as_dict()
    try:
        # the C pickler handles nearly every outcome, at a third of cloudpickle's cost per
        # task; cloudpickle takes what it refuses (a user's class in an error or accumulator)
        return pickle.dumps(outcome, serializers.PROTOCOL)
    except Exception:
        return cloudpickle.dumps(outcome, protocol=serializers.PROTOCOL)


_INLINE_RESULT = 1024  # bytes: a result this small is pickled twice rather than wrapped


class _PickledValue:
    """A task's result already pickled: it pickles as a call that unpickles it, so the
    outcome around it is unpickled in one go and the driver never sees this wrapper."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return pickle.loads, (self.data,)


def _run_task(desc: m.TaskDescription, info: bytes | None,
              stages: "OrderedDict[tuple[int, int], _Stage]", env: SlotEnvironment,
              metrics: task_metrics.TaskMetrics) -> tuple[str, m.TaskOutcome]:
    start = time.perf_counter()
    # Spark's split of a task's time: deserializing the closure and the partition, then
    # running it (which includes writing its shuffle output); wall and CPU time of each
    wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
    running = False
    tc: TaskContext | None = None
    profile: Any = None
    try:
        stage = _load_stage(desc.stage_key, info, stages)
        for acc in stage.accumulators:
            acc._reset()
        split = pickle.loads(desc.split)
        wall, cpu = _phase_done(metrics, wall, cpu, False)
        running = True
        context_class = BarrierTaskContext if stage.info.barrier else TaskContext
        shuffle_ids = stage.info.shuffle_ids
        tc = context_class(desc.stage_key[0], desc.stage_key[1], desc.partition, desc.attempt, desc.task_id, env,
                           desc.properties,
                           _ShuffleStatuses(env, shuffle_ids, stage.info.map_output_epoch) if shuffle_ids else None)
        tc.block_locations = desc.block_locations or {}
        TaskContext._current = tc
        if stage.info.profile_aid is not None:  # spark.python.profile
            from sparkctl.profiler import TaskProfile
            profile = TaskProfile()
        records = stage.rdd.iterator(split, tc)
        if stage.info.is_shuffle_map:
            dep = stage.func
            paths = shuffle_paths(env.local_dir, dep.shuffle_id, desc.partition, desc.task_id)
            sizes = write_map_output(records, dep, env.memory_budget, env.local_dir, paths, env.batch_size)
            merged: tuple[int, ...] = ()
            if stage.info.push is not None:  # push-based shuffle: slices to their mergers
                mergers, max_block, max_batch = stage.info.push
                merged = push_map_output(env.shuffle_client, dep.shuffle_id, desc.partition, paths[0], sizes,
                                         mergers, max_block, max_batch, min(PUSH_TIMEOUT, env.network_timeout))
                if max(merged, default=-1) < 0:
                    merged = ()
            value: Any = MapStatus(env.executor_id, env.host, env.port, paths[0], paths[1], sizes, merged)
        else:
            value = stage.func(records)
        updates = {acc.aid: acc._value for acc in stage.accumulators}
        if profile is not None:
            updates[stage.info.profile_aid] = profile.finish()
            profile = None
        return m.FINISHED, m.TaskOutcome(value, updates, list(tc.blocks_added),
                                         duration=time.perf_counter() - start,
                                         block_sizes=tc.block_sizes or None)
    except FetchFailedError as e:
        return m.FETCH_FAILED, m.TaskOutcome(error=e, error_type="FetchFailed", error_message=str(e),
                                             duration=time.perf_counter() - start)
    except BaseException as e:  # noqa: BLE001 - every failure goes back to the driver
        state = m.KILLED if isinstance(e, KeyboardInterrupt) else m.FAILED
        return state, _failure(_task_error(python_memory.explain(e)), start)
    finally:
        if profile is not None:
            profile.stop()
        if tc is not None:
            tc.run_completion_listeners()
        TaskContext._current = None
        _phase_done(metrics, wall, cpu, running)


def _phase_done(metrics: task_metrics.TaskMetrics, wall: int, cpu: int, running: bool) -> tuple[int, int]:
    """Add the time since (wall, cpu) to the deserialize or the run phase; returns now."""
    now_wall, now_cpu = time.perf_counter_ns(), time.thread_time_ns()
    if running:
        metrics.executor_run_time += now_wall - wall
        metrics.executor_cpu_time += now_cpu - cpu
    else:
        metrics.executor_deserialize_time += now_wall - wall
        metrics.executor_deserialize_cpu_time += now_cpu - cpu
    return now_wall, now_cpu


def _task_error(e: BaseException) -> BaseException:
    """The error the driver gets for *e*: a StopIteration or SystemExit from the user's code
    becomes a typed error, since as itself it would end an iteration on the driver or the
    driver program (PySpark fails the task likewise); the original stays as its cause."""
    if isinstance(e, StopIteration):
        err: BaseException = UserStopIterationError(repr(e))
    elif isinstance(e, SystemExit):
        err = TaskExitError(e.code)
    else:
        return e
    err.__cause__ = e
    return err.with_traceback(e.__traceback__)


def _failure(e: BaseException, start: float) -> m.TaskOutcome:
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    error: BaseException | None = e
    try:
        cloudpickle.dumps(e, protocol=serializers.PROTOCOL)
        e.__traceback__ = None
    except Exception:
        error = None  # rebuilt on the driver from its type name and message
    return m.TaskOutcome(error=error, error_type=type(e).__name__, error_message=str(e), traceback=tb,
                         duration=time.perf_counter() - start)

