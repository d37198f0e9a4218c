"""Driver-runtime behaviour seen from the outside: broadcasts reach each executor once,
computed shuffle outputs are reused by later jobs, cached blocks live in the executor
under an LRU limit. (The console progress bar's tests are in test_progress_bar.py.)"""
from __future__ import annotations

import operator
import os
from typing import Any

import pytest

from sparkctl import StorageLevel
from sparkctl.scheduler import messages as m
from sparkctl.storage.block_manager import BlockManager

pytestmark = pytest.mark.timeout(60)


class Recorder:
    """Counts what the runtime sends and which stages it submits."""

    def __init__(self, sc: Any) -> None:
        self.runtime = sc._runtime
        self.sent: list[Any] = []
        self.stages: list[tuple[int, int, int]] = []
        self._orig = self.runtime._send

    def __enter__(self) -> "Recorder":
        def send(h: Any, msg: Any) -> None:
            self.sent.append((h.executor_id, msg))
            self._orig(h, msg)
        self.runtime._send = send
        self.runtime.listeners.append(self._listen)
        return self

    def _listen(self, event: str, data: Any) -> None:
        if event == "stage_submit":
            self.stages.append(data)

    def __exit__(self, *exc: object) -> None:
        self.runtime._send = self._orig
        self.runtime.listeners.remove(self._listen)


def test_broadcast_reaches_each_executor_once(sc: Any) -> None:
    table = sc.broadcast({i: i * i for i in range(1000)})
    with Recorder(sc) as rec:
        for _ in range(3):
            got = sc.parallelize(range(1000), 8).map(lambda x: table.value[x]).sum()
            assert got == sum(i * i for i in range(1000))
    puts = [(e, msg.bid) for e, msg in rec.sent if isinstance(msg, m.PutBroadcast)]
    launches = [msg for _, msg in rec.sent if isinstance(msg, m.LaunchTask)]
    assert len(launches) == 24
    assert puts == [(e, table.id) for e in sorted(sc._runtime.executors)]
    table.unpersist()
    with Recorder(sc) as rec:  # after unpersist it is shipped again when used
        assert sc.parallelize(range(10), 2).map(lambda x: table.value[x]).sum() == sum(i * i for i in range(10))
    assert len([1 for _, msg in rec.sent if isinstance(msg, m.PutBroadcast)]) == len(sc._runtime.executors)


def test_closure_sent_once_per_executor_per_stage(sc: Any) -> None:
    with Recorder(sc) as rec:
        sc.parallelize(range(100), 10).map(lambda x: x + 1).count()
    binaries = [msg for _, msg in rec.sent if isinstance(msg, m.StageBinary)]
    assert len(binaries) == len(sc._runtime.executors)


def test_shuffle_outputs_are_reused_by_later_jobs(sc: Any) -> None:
    counts = sc.parallelize([(i % 5, 1) for i in range(100)], 4).reduceByKey(operator.add, 3)
    with Recorder(sc) as rec:
        first = sorted(counts.collect())
    with Recorder(sc) as rec2:
        second = sorted(counts.mapValues(lambda v: v * 2).collect())
    assert first == [(k, 20) for k in range(5)]
    assert second == [(k, 40) for k in range(5)]
    assert [n for _, _, n in rec.stages] == [4, 3]  # map stage, then result stage
    assert [n for _, _, n in rec2.stages] == [3]  # the map stage was skipped


def test_cached_partitions_are_not_recomputed(sc: Any, tmp_path: Any) -> None:
    marks = tmp_path / "computed"
    marks.mkdir()

    def note(x: int) -> int:
        open(os.path.join(str(marks), f"{x}-{os.getpid()}-{len(os.listdir(str(marks)))}"), "w").close()
        return x

    rdd = sc.parallelize(range(20), 4).map(note).cache()
    assert rdd.sum() == 190
    assert rdd.count() == 20
    assert sorted(rdd.collect()) == list(range(20))
    assert len(os.listdir(str(marks))) == 20  # computed once, read from the cache twice
    rdd.unpersist()
    assert rdd.count() == 20
    assert len(os.listdir(str(marks))) == 40


def test_block_manager_lru_eviction(tmp_path: Any) -> None:
    bm = BlockManager(memory_limit=250, disk_dir=str(tmp_path / "blocks"))
    bm.put("rdd_1_0", b"a" * 100, StorageLevel.MEMORY_ONLY)
    bm.put("rdd_1_1", b"b" * 100, StorageLevel.MEMORY_AND_DISK)
    assert bm.get("rdd_1_0") == b"a" * 100  # now most recently used
    bm.put("rdd_1_2", b"c" * 100, StorageLevel.MEMORY_ONLY)
    # rdd_1_1 was least recently used: evicted from memory, kept on disk (its level allows)
    assert "rdd_1_1" not in bm.memory and bm.get("rdd_1_1") == b"b" * 100
    bm.put("rdd_1_3", b"d" * 100, StorageLevel.MEMORY_ONLY)
    assert bm.get("rdd_1_0") is None  # MEMORY_ONLY evicted: dropped, recomputed on demand
    assert bm.memory_used <= 250
    bm.put("rdd_2_0", b"e" * 10, StorageLevel.DISK_ONLY)
    assert "rdd_2_0" not in bm.memory and bm.get("rdd_2_0") == b"e" * 10
    assert bm.remove_rdd(1) == 3 and bm.block_ids() == ["rdd_2_0"]
