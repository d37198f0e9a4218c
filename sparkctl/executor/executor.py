"""The executor process: task slots, a block manager and a block server, serving a driver.

The same program runs in local mode (started by the driver) and on a standalone worker
(started by the worker daemon), so both run the same code.

```
   driver ◀══ one authenticated connection ══▶ executor (this process)
                                                 ├─ slot 0 ┐ forked at start, warm,
                                                 ├─ slot 1 ┘ one task at a time each
                                                 ├─ block manager (cached RDD blocks)
   other executors ══ FetchShuffleBlocks ══════▶ └─ block server (block_server.py)
   driver ══ FetchBlockChunk (indirect results) ══▶ ┘
```
An executor of one slot runs it in its own main thread instead
(``spark.executor.inProcessSlot``, on by default; not with ``spark.executor.pyspark.memory``,
a limit on slot processes). The slot talks to the executor over the same socket pair either
way, so only where its loop runs differs: a one-core worker then has one process, not two,
and a new application's first tasks do not copy the pages of a second interpreter
(``docs/scaling.md``).
A task's StatusUpdate too large for one frame to the driver is kept in the block manager
and reported by block id and size; the driver fetches it in chunks, then removes it.
"""
from __future__ import annotations

import glob
import importlib
import json
import logging
import mmap
import os
import pickle
import queue
import select
import shutil
import signal
import socket
import struct
import sys
import tarfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from sparkctl import serializers
from sparkctl.errors import ProtocolError, SparkctlError, TaskFailedError
from sparkctl.executor import python_memory
from sparkctl.executor.files import ExecutorFiles
from sparkctl.executor.block_server import BlockServer
from sparkctl.executor.slot import SlotEnvironment, slot_main, slot_signals
from sparkctl.rpc import Connection, Server, connect, recv_frame, send_frame
from sparkctl.rpc import auth, tls
from sparkctl.scheduler import messages as m
from sparkctl.scheduler.map_output_tracker import MapOutputTrackerWorker, MetadataFetchFailedError
from sparkctl.storage import compression, sizing
from sparkctl.storage.block_manager import BlockManager
from sparkctl.storage.merged_shuffle import MERGED_IN_MEMORY
from sparkctl.storagelevel import StorageLevel
from sparkctl.util.fsutil import private_makedirs

log = logging.getLogger("sparkctl.executor")
_MAX_FRAME = 1 << 40
# Until the driver says otherwise: the default spark.rpc.message.maxSize, less room for the
# StatusUpdate around the result.
_DEFAULT_MAX_DIRECT_RESULT = (512 << 20) - (1 << 20)


@dataclass
class ExecutorSettings:
    executor_id: str
    driver_host: str
    driver_port: int
    cores: int
    host: str
    local_dir: str
    memory: int  # bytes
    memory_fraction: float = 0.6
    storage_fraction: float = 0.5
    batch_size: int = 1000
    heartbeat_interval: float = 10.0
    network_timeout: float = 120.0
    max_bytes_in_flight: int = 48 << 20  # spark.reducer.maxSizeInFlight
    app_id: str = ""
    worker_id: str | None = None
    extra_paths: list[str] = field(default_factory=list)
    task_cpus: int = 1  # spark.task.cpus, what TaskContext.cpus() reports
    pyspark_memory: int = 0  # spark.executor.pyspark.memory in bytes, split over the slots (0: no limit)
    io_compression: dict[str, Any] | None = None  # shuffle and spill codecs (storage.compression)
    in_process_slot: bool = True  # spark.executor.inProcessSlot: one slot runs in this process

    @property
    def storage_memory(self) -> int:
        return int(self.memory * self.memory_fraction * self.storage_fraction)

    @property
    def slot_memory(self) -> int:
        """Each slot's budget for shuffle buffers, aggregation maps and sorts."""
        return int(self.memory * self.memory_fraction * (1 - self.storage_fraction) / max(1, self.cores))

    @property
    def merge_memory(self) -> int:
        """What the block server may hold of merged shuffle files in memory."""
        return min(MERGED_IN_MEMORY, self.memory // 16)

    @property
    def inline_slot(self) -> bool:
        """Whether the one slot runs in the executor's own main thread, not a forked process."""
        return self.in_process_slot and self.cores == 1 and not self.pyspark_memory


class Slot:
    def __init__(self, index: int, pid: int, sock: socket.socket, inline: bool = False) -> None:
        self.index = index
        self.pid = pid  # the executor's own for an inline slot
        self.sock = sock
        self.inline = inline
        self.send_lock = threading.Lock()
        self.task_id: int | None = None
        self.killing = False
        # set once its reader saw the process go: no task is given to it, and the task it
        # holds (if any) is reported by _slot_died, after the replacement is in place
        self.dead = False
        self.stage_keys: set[tuple[int, int]] = set()
        self.broadcasts: set[int] = set()
        self.removed_broadcasts: list[int] = []

    def send(self, msg: Any) -> None:
        with self.send_lock:
            send_frame(self.sock, pickle.dumps(msg, serializers.PROTOCOL))


class Executor:
    def __init__(self, settings: ExecutorSettings, secret: bytes, parent: int | None = None) -> None:
        self.s = settings
        self.secret = secret
        # the process whose death ends this one (_watch_parent), known from the start: one
        # that dies while this executor registers has already handed it to another parent
        self.parent = os.getppid() if parent is None else parent
        compression.configure(settings.io_compression)  # before the slots fork: they inherit it
        private_makedirs(settings.local_dir)
        self.blocks = BlockManager(settings.storage_memory, os.path.join(settings.local_dir, "blocks"))
        # before the slots fork: they inherit the SparkFiles root and its place on sys.path
        self.files = ExecutorFiles(settings.local_dir)
        self.files.make_root()
        self.slots: list[Slot] = []
        self.lock = threading.Lock()
        self.stage_bins: dict[tuple[int, int], m.StageBinary] = {}
        # each stage pickled once for all the slots, not once per slot
        self.stage_frames: dict[tuple[int, int], bytes] = {}
        # shuffle statuses fetched from the driver once per shuffle and epoch, for every slot
        self.map_outputs = MapOutputTrackerWorker(self._ask_map_statuses, settings.network_timeout)
        self.broadcasts: dict[int, bytes] = {}
        self.driver: Connection | None = None
        self.server: Server | None = None
        self.block_server: BlockServer | None = None
        self.block_port = 0
        self.stopping = threading.Event()
        self._forks: queue.Queue[tuple[int, list[Slot], threading.Event]] = queue.Queue()
        # an inline slot's end of its socket pair and environment, for the main thread
        self._inline: tuple[socket.socket, SlotEnvironment] | None = None
        self._inline_running = False
        self._inline_done = threading.Event()  # the inline slot's loop has returned
        self._stopped = threading.Event()  # shutdown has finished
        self.max_direct_result = _DEFAULT_MAX_DIRECT_RESULT
        self.max_result_size = 0  # the driver's spark.driver.maxResultSize, 0 for none
        # shared with the forked slots: which task each slot is asked to kill
        self.kill_board = mmap.mmap(-1, 8 * max(1, settings.cores))
        for i in range(settings.cores):
            struct.pack_into("<q", self.kill_board, i * 8, -1)

    # ------------------------------------------------------------ slots
    def _slot_environment(self, sock: socket.socket) -> SlotEnvironment:
        env = SlotEnvironment(sock, self.s.executor_id, self.s.host, self.s.local_dir,
                              self.s.slot_memory, self.s.batch_size, self.secret)
        env.port = self.block_port
        env.task_cpus = self.s.task_cpus
        env.network_timeout = self.s.network_timeout
        env.max_bytes_in_flight = self.s.max_bytes_in_flight
        return env

    def _fork_slot(self, index: int) -> Slot:
        parent_sock, child_sock = socket.socketpair()
        if self.s.inline_slot:  # run by the main thread once registered (_run_inline_slot)
            env = self._slot_environment(child_sock)
            # the process also holds cached blocks and merged shuffle files
            env.shared_memory = self.s.storage_memory + self.s.merge_memory
            env.stop = self._exit_when_stopped
            self._inline = (child_sock, env)
            return Slot(index, os.getpid(), parent_sock, inline=True)
        pid = os.fork()
        if pid == 0:  # the slot
            code = 0
            try:
                _close_inherited_fds(keep=child_sock.fileno())
                env = self._slot_environment(child_sock)
                if self.s.pyspark_memory:
                    python_memory.apply(self.s.pyspark_memory, self.s.cores)
                slot_main(child_sock, env, self.kill_board, index)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        child_sock.close()
        return Slot(index, pid, parent_sock)

    def _slot_reader(self, slot: Slot) -> None:
        while not self.stopping.is_set():
            try:
                msg = pickle.loads(recv_frame(slot.sock, _MAX_FRAME))
            except Exception:
                self._slot_died(slot)
                return
            kind = msg[0]
            if kind == "done":
                _, task_id, state, update = msg
                with self.lock:
                    killed = slot.killing
                    slot.task_id = None
                    slot.killing = False
                if killed and state != m.FINISHED:
                    update = _restate(update, m.KILLED)
                log.debug("Task %d %s in slot %d; reporting to the driver", task_id, state.lower(), slot.index)
                if len(update) > self.max_direct_result:
                    update = self._indirect(task_id, state, update)
                self._to_driver_bytes(update)
            elif kind == "get_block":
                slot.send(self.blocks.get(msg[1]))  # type: ignore[arg-type]
            elif kind == "put_block":
                self.blocks.put(msg[1], msg[2], msg[3])
            elif kind == "map_statuses":  # a reduce task's first read of a shuffle in this slot
                self._map_statuses_to_slot(slot, msg[1], msg[2])
            elif kind == "barrier":  # a barrier task's sync: the driver's coordinator answers
                _, task_id, epoch, sync_kind, message = msg
                self._to_driver(m.BarrierRequest(self.s.executor_id, task_id, epoch, sync_kind, message))

    def _map_statuses_to_slot(self, slot: Slot, shuffle_id: int, epoch: int) -> None:
        """The encoded statuses of a shuffle, from this executor's cache or else the driver
        (this slot's reader waits; the driver's answer comes in on the driver's reader)."""
        try:
            data, error = self.map_outputs.get(shuffle_id, epoch), ""
        except MetadataFetchFailedError as e:
            data, error = None, str(e)
        try:
            slot.send(("map_statuses", shuffle_id, data, error))
        except OSError:
            pass  # the slot died: its task fails as such

    def _ask_map_statuses(self, shuffle_id: int) -> None:
        if self.driver is None:
            raise ProtocolError("not connected to the driver")
        self.driver.send(m.GetMapOutputStatuses(shuffle_id))

    def _map_statuses_from_driver(self, msg: m.MapOutputStatuses) -> None:
        data = msg.data
        if msg.broadcast_id is not None:  # large: sent as a broadcast just before this answer
            with self.lock:
                data = self.broadcasts.get(msg.broadcast_id)
        error = msg.error if data is None else ""
        if data is None and not error:
            error = f"the driver named broadcast {msg.broadcast_id}, which this executor does not hold"
        self.map_outputs.deliver(msg.shuffle_id, msg.epoch, data, bool(msg.complete), error)

    def _indirect(self, task_id: int, state: str, update: bytes) -> bytes:
        """Keep a StatusUpdate too large for one frame as a block; what goes to the driver
        instead names the block and its size (the driver fetches it, then removes it)."""
        block_id = f"taskresult_{task_id}"
        if state == m.FINISHED and 0 < self.max_result_size < len(update):
            # the driver refuses it on its size alone: spare the disk (the block stays absent)
            log.warning("Task %d: result of %d bytes is over spark.driver.maxResultSize (%d); dropped", task_id,
                        len(update), self.max_result_size)
        else:
            # in memory if it fits the storage budget, else on local disk, as Spark keeps them
            self.blocks.put(block_id, update, StorageLevel.MEMORY_AND_DISK)
            log.info("Task %d: result of %d bytes is over the direct limit of %d; kept as block %s", task_id,
                     len(update), self.max_direct_result, block_id)
        small = m.StatusUpdate(self.s.executor_id, task_id, state, b"", (block_id, len(update)))
        return pickle.dumps(small, serializers.PROTOCOL)

    def _slot_died(self, slot: Slot) -> None:
        if self.stopping.is_set() or slot.inline:  # an inline slot's end is _run_inline_slot's
            return
        try:
            _, status = os.waitpid(slot.pid, 0)
            how = (f"killed by signal {signal.Signals(-os.waitstatus_to_exitcode(status)).name}"
                   if os.WIFSIGNALED(status) else f"exited with code {os.waitstatus_to_exitcode(status)}")
        except (ChildProcessError, ValueError):
            how = "exited"
        if how.endswith("SIGKILL"):
            how += " (possibly by the kernel's out-of-memory killer: check spark.executor.memory)"
        with self.lock:  # from here on _launch skips it; a task it took before is reported below
            slot.dead = True
            task_id = slot.task_id
        log.warning("task slot %d (pid %d) %s", slot.index, slot.pid, how)
        slot.sock.close()
        # Replace the slot before reporting the task: the driver may retry it here at once.
        fresh = self._respawn(slot.index)
        if self.block_port:
            fresh.send(("init", self.block_port))
        threading.Thread(target=self._slot_reader, args=(fresh,), daemon=True, name=f"slot-{slot.index}").start()
        if task_id is not None:
            text = f"task slot process {how} while running task {task_id}"
            outcome = m.TaskOutcome(error=TaskFailedError(text), error_type="TaskFailedError", error_message=text)
            self._to_driver(m.StatusUpdate(self.s.executor_id, task_id, m.FAILED, cloudpickle.dumps(outcome)))

    def _respawn(self, index: int) -> Slot:
        """Fork a replacement slot from the forker thread, which lives as long as the
        executor: a slot's parent-death signal follows the *thread* that forked it."""
        done = threading.Event()
        box: list[Slot] = []
        self._forks.put((index, box, done))
        done.wait()
        return box[0]

    def _forker(self) -> None:
        while True:
            index, box, done = self._forks.get()
            with self.lock:
                fresh = self._fork_slot(index)
                self.slots[index] = fresh
            box.append(fresh)
            done.set()

    # ------------------------------------------------------------ driver
    def _to_driver(self, msg: Any) -> None:
        if self.driver is not None:
            try:
                self.driver.send(msg)
            except Exception as e:
                log.warning("could not reach the driver: %s", e)

    def _to_driver_bytes(self, data: bytes) -> None:
        if self.driver is not None:
            try:
                self.driver.send_bytes(data)
            except Exception as e:
                log.warning("could not reach the driver: %s", e)

    def _launch(self, desc: m.TaskDescription) -> None:
        # A slot that died while idle is replaced by its reader, which only then reports any
        # task of it to the driver. A task the driver sends meanwhile (to the core it believes
        # free) waits for the replacement rather than finding every slot busy.
        replacement_deadline = time.monotonic() + 30
        while True:
            with self.lock:
                slot = next((s for s in self.slots if s.task_id is None and not s.dead), None)
                if slot is not None or not any(s.dead for s in self.slots) \
                        or time.monotonic() > replacement_deadline:
                    if slot is None:
                        raise ProtocolError(f"driver sent task {desc.task_id} but all {len(self.slots)} slots are busy")
                    info = self.stage_bins.get(desc.stage_key)
                    if info is None:
                        raise ProtocolError(f"task {desc.task_id} names unknown stage {desc.stage_key}")
                    slot.task_id = desc.task_id
                    send_info = None
                    if desc.stage_key not in slot.stage_keys:
                        send_info = self.stage_frames[desc.stage_key]
                        slot.stage_keys.add(desc.stage_key)
                        if len(slot.stage_keys) > 32:
                            slot.stage_keys = {desc.stage_key}
                    bcasts = []
                    for bid in info.broadcast_ids:
                        if bid not in slot.broadcasts and bid in self.broadcasts:
                            bcasts.append((bid, self.broadcasts[bid]))
                            slot.broadcasts.add(bid)
                    removed, slot.removed_broadcasts = slot.removed_broadcasts, []
                    break
            time.sleep(0.005)  # a dead slot's replacement is being forked: it takes this task
        log.info("Running task %d (stage %d.%d, partition %d) in slot %d", desc.task_id, desc.stage_key[0],
                 desc.stage_key[1], desc.partition, slot.index)
        try:
            slot.send(("task", desc, send_info, bcasts, removed))
        except OSError as e:
            # the slot died meanwhile: its reader replaces it, then fails this task (it holds
            # the task's id), so the driver's retry finds a live slot and hears of it once
            log.warning("task slot %d was gone when task %d arrived: %s", slot.index, desc.task_id, e)

    def _kill(self, task_id: int) -> None:
        with self.lock:
            slot = next((s for s in self.slots if s.task_id == task_id), None)
            if slot is None:
                return
            slot.killing = True
            struct.pack_into("<q", self.kill_board, slot.index * 8, task_id)
        try:
            os.kill(slot.pid, signal.SIGINT)
        except ProcessLookupError:
            pass

    def _remove_shuffle(self, shuffle_id: int) -> None:
        if self.block_server is not None:
            self.block_server.forget_shuffle(shuffle_id)
        for path in glob.glob(os.path.join(self.s.local_dir, f"shuffle_{shuffle_id}_*")):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def _serve_driver(self) -> None:
        assert self.driver is not None
        conn = self.driver
        while not self.stopping.is_set():
            # the driver answers every heartbeat: this much silence means it is gone
            msg = conn.recv(timeout=self.s.network_timeout)
            if isinstance(msg, m.StopExecutor):
                log.info("executor %s asked to stop: %s", self.s.executor_id, msg.reason)
                return
            try:
                _check_fields(msg)
                self._handle_driver_message(msg)
            except (ProtocolError, TypeError, ValueError, AttributeError, KeyError) as e:
                # a malformed message costs that message, not the executor
                log.warning("ignoring a malformed %s from the driver: %s", type(msg).__name__, e)

    def _handle_driver_message(self, msg: Any) -> None:
        if isinstance(msg, m.LaunchTask):
            self._launch(msg.task)
        elif isinstance(msg, m.StageBinary):
            frame = pickle.dumps(msg, serializers.PROTOCOL)  # once, whatever the number of slots
            self.map_outputs.update_epoch(msg.map_output_epoch)
            with self.lock:
                self.stage_bins[msg.key] = msg
                self.stage_frames[msg.key] = frame
                if len(self.stage_bins) > 256:
                    for k in sorted(self.stage_bins)[:128]:
                        del self.stage_bins[k]
                        self.stage_frames.pop(k, None)
        elif isinstance(msg, m.MapOutputStatuses):
            self._map_statuses_from_driver(msg)
        elif isinstance(msg, m.PutBroadcast):
            with self.lock:
                self.broadcasts[msg.bid] = msg.data
        elif isinstance(msg, m.RemoveBroadcast):
            with self.lock:
                self.broadcasts.pop(msg.bid, None)
                for s in self.slots:
                    if msg.bid in s.broadcasts:
                        s.broadcasts.discard(msg.bid)
                        s.removed_broadcasts.append(msg.bid)
        elif isinstance(msg, m.KillTask):
            self._kill(msg.task_id)
        elif isinstance(msg, m.RemoveRdd):
            self.blocks.remove_rdd(msg.rdd_id)
        elif isinstance(msg, m.RemoveShuffle):
            self.map_outputs.remove_shuffle(msg.shuffle_id)
            self._remove_shuffle(msg.shuffle_id)
        elif isinstance(msg, m.RemoveBlock):
            self.blocks.remove(msg.block_id)
        elif isinstance(msg, m.BarrierResponse):
            self._barrier_reply(msg)
        elif isinstance(msg, m.PutFile):
            self._put_file(msg)
        elif isinstance(msg, m.HeartbeatResponse):
            pass
        else:
            log.warning("driver sent unexpected %s", type(msg).__name__)

    def _barrier_reply(self, msg: m.BarrierResponse) -> None:
        """Hand the coordinator's answer to the slot whose task waits for it; a task that
        ended meanwhile (killed) needs it no more. Sent under the lock, so the reply
        reaches the slot before any later task does."""
        with self.lock:
            slot = next((s for s in self.slots if s.task_id == msg.task_id), None)
            if slot is None:
                return
            try:
                slot.send(("barrier_reply", msg.task_id, msg.epoch, msg.messages, msg.error))
            except OSError:
                pass  # the slot died: its task fails as such

    def _put_file(self, msg: m.PutFile) -> None:
        """Store a chunk of an added file (before the next message, so before any later task).
        A complete addPyFile entry changes the import path: of this process, for slots forked
        later, and of every slot, which reads the change before its next task."""
        try:
            paths = self.files.receive(msg)
        except (OSError, ValueError, tarfile.TarError, zipfile.BadZipFile) as e:  # tasks that need it fail, not the executor
            log.warning("could not store the added file %s: %s: %s", msg.name, type(e).__name__, e)
            return
        if paths is None or not msg.python:
            return
        with self.lock:
            for p in reversed(paths):
                if p not in sys.path:
                    sys.path.insert(1, p)
            for slot in self.slots:
                try:
                    slot.send(("path", paths))
                except OSError:
                    pass  # a dead slot: its replacement forks from this process's path

    def _install_files(self, files: dict[str, bytes]) -> list[str]:
        """Write the app's --py-files here; the slots put them on sys.path."""
        directory = os.path.join(self.s.local_dir, "files")
        private_makedirs(directory)
        paths = [directory]
        for name, data in files.items():
            path = os.path.join(directory, os.path.basename(name))
            with open(path, "wb") as f:
                f.write(data)
            if path.endswith((".zip", ".egg")):
                paths.append(path)
        return paths

    def _heartbeat(self) -> None:
        while not self.stopping.wait(self.s.heartbeat_interval):
            with self.lock:
                running = tuple(s.task_id for s in self.slots if s.task_id is not None)
            self._to_driver(m.ExecutorHeartbeat(self.s.executor_id, running))
            for handler in logging.getLogger().handlers:
                handler.flush()  # buffered task log lines reach the log file at least this often

    def _watch_parent(self, parent: int) -> None:
        """The worker (or local driver) that started us died: so do we, with our slots,
        rather than linger as an orphan holding cores the master has given away. Waits on a
        pidfd of the parent, which turns readable when it exits: no wake-up until then (a
        hundred idle executors polling twice a second cost a share of a core); where the
        kernel has no pidfds, polls."""
        try:
            watched: int | None = os.pidfd_open(parent)
        except (AttributeError, OSError):
            watched = None
        if watched is not None:
            try:
                if os.getppid() == parent:  # still ours once the pidfd is open: not a reused pid
                    select.select([watched], [], [])
            finally:
                os.close(watched)
        else:
            while os.getppid() == parent:
                if self.stopping.wait(0.5):
                    return
        if self.stopping.is_set():
            return
        log.warning("executor %s: parent process %d is gone; shutting down", self.s.executor_id, parent)
        self.shutdown()
        os._exit(1)

    # ------------------------------------------------------------ lifecycle
    def run(self) -> None:
        _warm_imports()
        # fork the slots before any thread exists, so they start from a clean process, and
        # with malloc's free pages handed back: a slot then fills zero pages, not copies
        sizing.trim_heap()
        # resolved before the fork (it reads the conf dir's defaults file): each slot's
        # first shuffle connection asks for it, and would read and parse the file itself
        tls_config = tls.configured()
        self.slots = [self._fork_slot(i) for i in range(self.s.cores)]
        self.block_server = BlockServer(self.s.local_dir, self.blocks, self.secret, merge_memory=self.s.merge_memory)
        if tls_config is None:  # handshakes in the block server's loop
            port = self.block_server.listen(self.s.host)[1]
            self.block_server.start()
        else:  # TLS handshakes in the Server's threads, connections handed to the loop
            self.block_server.start()
            self.server = Server(self.s.host, 0, self.secret, self.block_server.serve, name="block-server").start()
            port = self.server.address[1]
        self.block_port = port
        for slot in self.slots:
            slot.send(("init", port))
        try:
            reply = self._register(port)
        except (OSError, SparkctlError) as e:
            # no driver there any more (its application ended while this executor started),
            # or not one of ours: one line, as Spark's executor exits when it cannot register
            log.error("executor %s: cannot register with the driver at %s:%d: %s; exiting", self.s.executor_id,
                      self.s.driver_host, self.s.driver_port, e)
            self.shutdown()
            raise SystemExit(1) from None
        if isinstance(reply.max_direct_result, int) and reply.max_direct_result > 0:
            self.max_direct_result = reply.max_direct_result
        if isinstance(reply.max_result_size, int) and reply.max_result_size > 0:
            self.max_result_size = reply.max_result_size
        if reply.files:
            paths = self._install_files(reply.files)
            for slot in self.slots:
                slot.send(("path", paths))
        log.info("executor %s registered with driver %s:%d; %d slots, block server on %s:%d",
                 self.s.executor_id, self.s.driver_host, self.s.driver_port, self.s.cores, self.s.host, port)
        for slot in self.slots:
            threading.Thread(target=self._slot_reader, args=(slot,), daemon=True, name=f"slot-{slot.index}").start()
        threading.Thread(target=self._heartbeat, daemon=True, name="heartbeat").start()
        threading.Thread(target=self._watch_parent, args=(self.parent,), daemon=True, name="parent-watch").start()
        if self._inline is None:
            threading.Thread(target=self._forker, daemon=True, name="slot-forker").start()
            self._serve_driver_until_end()
            return
        # the slot's SIGINT handler (what kills its task) from now on, before any task
        slot_signals(inline=True)
        threading.Thread(target=self._serve_driver_until_end, daemon=True, name="driver").start()
        self._run_inline_slot()

    def _serve_driver_until_end(self) -> None:
        try:
            self._serve_driver()
        except Exception as e:
            log.info("driver connection ended: %s", e)
        finally:
            self.shutdown()

    def _run_inline_slot(self) -> None:
        """The inline slot's loop, in the main thread (a task is killed by SIGINT, whose
        handler Python runs there), until the executor stops it."""
        assert self._inline is not None
        sock, env = self._inline
        self._inline_running = True
        failure: BaseException | None = None
        try:
            slot_main(sock, env, self.kill_board, 0, inline=True)
        except BaseException as e:
            failure = e
        finally:
            self._inline_done.set()
            sock.close()
        if self.stopping.is_set():  # told to stop: the thread that stopped it may still be cleaning up
            self._stopped.wait()
            return
        log.error("executor %s: its task slot ended unasked%s; exiting", self.s.executor_id,
                  "" if failure is None else f" ({type(failure).__name__}: {failure})", exc_info=failure)
        self.shutdown()
        raise SystemExit(1)

    def _exit_when_stopped(self) -> None:
        """What the inline slot does when told to stop while its task waits for an answer:
        let the executor's shutdown finish, then end the process."""
        self._inline_done.set()
        self._stopped.wait(30)
        logging.shutdown()  # the buffered log lines (run() returning would have flushed them)
        os._exit(0)

    def _register(self, port: int) -> m.RegisteredExecutor:
        self.driver = connect(self.s.driver_host, self.s.driver_port, self.secret, timeout=30, max_frame=_MAX_FRAME)
        self.driver.send(m.RegisterExecutor(self.s.executor_id, self.s.host, port, self.s.cores, os.getpid(),
                                            self.s.worker_id, _log_urls()))
        reply = self.driver.recv(timeout=60)
        if not isinstance(reply, m.RegisteredExecutor):
            raise ProtocolError(f"the driver answered the registration with {type(reply).__name__}")
        return reply

    def shutdown(self) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        for slot in self.slots:
            try:
                slot.send(("stop",))
            except OSError:
                pass
        deadline = time.monotonic() + 2
        if self._inline_running and threading.current_thread() is not threading.main_thread():
            self._inline_done.wait(2)  # it reads the stop once its task, if any, is done
        for slot in self.slots:
            if slot.inline:
                continue
            while time.monotonic() < deadline:
                try:
                    pid, _ = os.waitpid(slot.pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid:
                    break
                time.sleep(0.01)
            else:
                try:
                    os.kill(slot.pid, signal.SIGKILL)
                    os.waitpid(slot.pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
        if self.driver is not None:
            self.driver.close()
        if self.server is not None:
            self.server.stop()
        if self.block_server is not None:
            self.block_server.stop()
        shutil.rmtree(self.s.local_dir, ignore_errors=True)
        self._stopped.set()
        if self._inline_running and not self._inline_done.is_set():
            logging.shutdown()  # the buffered log lines
            os._exit(0)  # its task did not end within 2 s: as a slot process would be killed


# field -> required type, for the driver messages an executor acts on
_FIELD_TYPES: dict[type, dict[str, Any]] = {
    m.LaunchTask: {"task": m.TaskDescription},
    m.StageBinary: {"key": tuple, "binary": (bytes, bytearray), "shuffle_ids": tuple, "broadcast_ids": tuple,
                    "map_output_epoch": int, "push": (tuple, type(None))},
    m.MapOutputStatuses: {"shuffle_id": int, "epoch": int, "data": (bytes, bytearray, type(None)),
                          "broadcast_id": (int, type(None))},
    m.PutBroadcast: {"bid": int, "data": (bytes, bytearray)},
    m.RemoveBroadcast: {"bid": int},
    m.KillTask: {"task_id": int},
    m.RemoveRdd: {"rdd_id": int},
    m.RemoveShuffle: {"shuffle_id": int},
    m.RemoveBlock: {"block_id": str},
    m.PutFile: {"name": str, "kind": str, "offset": int, "data": (bytes, bytearray), "last": bool, "python": bool},
    m.BarrierResponse: {"task_id": int, "epoch": int},
}
_TASK_FIELDS: dict[str, type | tuple[type, ...]] = {"task_id": int, "stage_key": tuple, "partition": int, "attempt": int, "split": (bytes, bytearray)}


def _check_fields(msg: Any) -> None:
    for name, kind in _FIELD_TYPES.get(type(msg), {}).items():
        if not isinstance(getattr(msg, name, None), kind):
            raise ProtocolError(f"field {name} is not {kind}")
    if isinstance(msg, m.LaunchTask):
        for name, kind in _TASK_FIELDS.items():
            if not isinstance(getattr(msg.task, name, None), kind):
                raise ProtocolError(f"task field {name} is not {kind}")


def _log_urls() -> dict[str, str] | None:
    """Where this executor's stdout and stderr can be read, as the worker that started it
    said in SPARKCTL_EXECUTOR_LOG_URLS (a JSON object of name -> URL). The driver shows them
    on its executors page; a value it cannot use is dropped rather than failing the start."""
    text = os.environ.get("SPARKCTL_EXECUTOR_LOG_URLS")
    if not text:
        return None
    try:
        urls = json.loads(text)
    except ValueError:
        log.warning("SPARKCTL_EXECUTOR_LOG_URLS is not JSON; no log links for this executor")
        return None
    if not isinstance(urls, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in urls.items()):
        log.warning("SPARKCTL_EXECUTOR_LOG_URLS is not an object of strings; no log links for this executor")
        return None
    return urls


def _warm_imports() -> None:
    """Import what every task needs before forking, so the first task does not pay for it."""
    import sparkctl.rdd.narrow  # noqa: F401
    import sparkctl.rdd.pair  # noqa: F401
    import sparkctl.rdd.rdd  # noqa: F401
    import sparkctl.rdd.shuffled  # noqa: F401
    import sparkctl.rdd.sources  # noqa: F401
    import sparkctl.rdd.output  # noqa: F401
    import sparkctl.storage.spill  # noqa: F401

    # a str host given to getaddrinfo is IDNA-encoded: the codec's first use imports it
    importlib.import_module("encodings.idna")
    compression.preload()
    auth.warm()  # every slot's first shuffle connection makes a handshake


def _close_inherited_fds(keep: int) -> None:
    """In a freshly forked slot: close the sockets the executor had open (driver
    connection, block server, other slots), so they close when the executor closes them."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _restate(update: bytes, state: str) -> bytes:
    msg = pickle.loads(update)
    msg.state = state
    return pickle.dumps(msg, serializers.PROTOCOL)
