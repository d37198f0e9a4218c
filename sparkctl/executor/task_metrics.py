"""TaskMetrics: what a task measured about itself, as Spark's executors report it.

The task slot starts a fresh :class:`TaskMetrics` for every task (``begin``) and the data
paths add to it where a count is already at hand: a shuffle writer when it pickles a
batch, a shuffle reader per batch and per block, a file reader per block of lines, a
spillable collection when it spills. Nothing counts per record, so the bookkeeping costs
a task nothing it can feel. At the end the slot flattens the metrics into the
``TaskOutcome.metrics`` dict the driver reads, under Spark's field names:

```
 slot: begin() ──▶ task runs; storage/ and rdd/ add to current() ──▶ as_dict() ──▶ TaskOutcome.metrics
                                                                                  (zeros left out)
```
Units follow Spark: wall times in milliseconds, CPU times and the shuffle write time in
nanoseconds, sizes in bytes. ``jvmGcTime`` is the time Python's cyclic collector ran
during the task (there is no JVM; it is the same kind of pause).
"""
from __future__ import annotations

import gc
import time
from typing import Any

# attribute -> Spark's name in TaskOutcome.metrics (and in its event logs and REST API)
SPARK_NAMES: dict[str, str] = {
    "executor_deserialize_time": "executorDeserializeTime",  # ms
    "executor_deserialize_cpu_time": "executorDeserializeCpuTime",  # ns
    "executor_run_time": "executorRunTime",  # ms
    "executor_cpu_time": "executorCpuTime",  # ns
    "result_size": "resultSize",  # bytes of the pickled result
    "jvm_gc_time": "jvmGcTime",  # ms in Python's cyclic collector
    "result_serialization_time": "resultSerializationTime",  # ms
    "memory_bytes_spilled": "memoryBytesSpilled",  # estimated size in memory of what spilled
    "disk_bytes_spilled": "diskBytesSpilled",  # bytes of the spill files
    "peak_execution_memory": "peakExecutionMemory",  # largest estimate of a shuffle/sort/aggregation buffer
    "input_bytes_read": "inputBytesRead",
    "input_records_read": "inputRecordsRead",
    "output_bytes_written": "outputBytesWritten",
    "output_records_written": "outputRecordsWritten",
    "shuffle_remote_blocks_fetched": "shuffleRemoteBlocksFetched",
    "shuffle_local_blocks_fetched": "shuffleLocalBlocksFetched",
    "shuffle_fetch_wait_time": "shuffleFetchWaitTime",  # ms
    "shuffle_remote_bytes_read": "shuffleRemoteBytesRead",
    "shuffle_remote_bytes_read_to_disk": "shuffleRemoteBytesReadToDisk",  # always 0: fetches stay in memory
    "shuffle_local_bytes_read": "shuffleLocalBytesRead",
    "shuffle_records_read": "shuffleRecordsRead",
    "shuffle_remote_reqs_duration": "shuffleRemoteReqsDuration",  # ms, each remote request from send to reply
    # push-based shuffle: slices read from a merger's merged file, in requests ("chunks");
    # counted in the remote blocks and bytes above too, as Spark counts them. A merged
    # slice is always read through its merger's block server, so none counts as local.
    "shuffle_merged_remote_blocks_fetched": "shuffleMergedRemoteBlocksFetched",
    "shuffle_merged_remote_chunks_fetched": "shuffleMergedRemoteChunksFetched",
    "shuffle_merged_remote_bytes_read": "shuffleMergedRemoteBytesRead",
    "shuffle_merged_remote_reqs_duration": "shuffleMergedRemoteReqsDuration",  # ms
    "shuffle_merged_fetch_fallback_count": "shuffleMergedFetchFallbackCount",  # merged requests read unmerged
    "shuffle_bytes_written": "shuffleBytesWritten",
    "shuffle_write_time": "shuffleWriteTime",  # ns
    "shuffle_records_written": "shuffleRecordsWritten",
}

# nanosecond counters kept at full resolution while the task runs, turned into Spark's
# milliseconds once at the end (a sum of rounded pieces would lose every short fetch)
_NS_TO_MS = frozenset(("executor_deserialize_time", "executor_run_time", "result_serialization_time",
                       "jvm_gc_time", "shuffle_fetch_wait_time", "shuffle_remote_reqs_duration",
                       "shuffle_merged_remote_reqs_duration"))


class TaskMetrics:
    """One task's counters; each starts at 0 and only grows while the task runs.

    The zeros are class attributes: a task gets its own value of a counter the first time
    it adds to it, so starting a task's metrics costs nothing and flattening them visits
    only the counters it touched."""

    executor_deserialize_time: int = 0
    executor_deserialize_cpu_time: int = 0
    executor_run_time: int = 0
    executor_cpu_time: int = 0
    result_size: int = 0
    jvm_gc_time: int = 0
    result_serialization_time: int = 0
    memory_bytes_spilled: int = 0
    disk_bytes_spilled: int = 0
    peak_execution_memory: int = 0
    input_bytes_read: int = 0
    input_records_read: int = 0
    output_bytes_written: int = 0
    output_records_written: int = 0
    shuffle_remote_blocks_fetched: int = 0
    shuffle_local_blocks_fetched: int = 0
    shuffle_fetch_wait_time: int = 0
    shuffle_remote_bytes_read: int = 0
    shuffle_remote_bytes_read_to_disk: int = 0
    shuffle_local_bytes_read: int = 0
    shuffle_records_read: int = 0
    shuffle_remote_reqs_duration: int = 0
    shuffle_merged_remote_blocks_fetched: int = 0
    shuffle_merged_remote_chunks_fetched: int = 0
    shuffle_merged_remote_bytes_read: int = 0
    shuffle_merged_remote_reqs_duration: int = 0
    shuffle_merged_fetch_fallback_count: int = 0
    shuffle_bytes_written: int = 0
    shuffle_write_time: int = 0
    shuffle_records_written: int = 0

    def note_execution_memory(self, estimate: int) -> None:
        """A buffer of the task (shuffle write, aggregation, sort) is estimated at this
        many bytes: the peak is the largest estimate seen (one buffer's, not their sum)."""
        if estimate > self.peak_execution_memory:
            self.peak_execution_memory = estimate

    def note_spill(self, memory_bytes: int, disk_bytes: int) -> None:
        self.memory_bytes_spilled += memory_bytes
        self.disk_bytes_spilled += disk_bytes

    def as_dict(self) -> dict[str, int]:
        """Spark's flat form for TaskOutcome.metrics; the zeros are left out (a missing key
        means 0), which keeps an empty task's status update small."""
        out: dict[str, int] = {}
        for name, value in vars(self).items():
            if name in _NS_TO_MS:
                value //= 1_000_000
            if value:
                out[SPARK_NAMES[name]] = int(value)
        return out


_current = TaskMetrics()
_gc_started: int = 0


def current() -> TaskMetrics:
    """The running task's metrics (in a slot between tasks, and on the driver, a spare
    object nobody reads: code that counts needs no check for "am I in a task")."""
    return _current


def begin() -> TaskMetrics:
    """Start counting for a new task."""
    global _current
    _current = TaskMetrics()
    return _current


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    global _gc_started
    if phase == "start":
        _gc_started = time.perf_counter_ns()
    elif _gc_started:
        _current.jvm_gc_time += time.perf_counter_ns() - _gc_started
        _gc_started = 0


def watch_gc() -> None:
    """Time the cyclic collector's runs into the running task's jvmGcTime. A callback runs
    twice per collection, not per allocation; a task slot raises the collector's
    thresholds, so that is rare."""
    if _on_gc not in gc.callbacks:
        gc.callbacks.append(_on_gc)
