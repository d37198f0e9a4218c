# mypy: disable-error-code="arg-type, list-item"
"""Push-based shuffle: map tasks push their small slices to a few merger executors, and a
reducer reads them from the merger that owns it (``sparkctl.storage.merged_shuffle``,
``block_pusher``, the block server's ``PushShuffleBlocks``, the fetcher's fallback).

```
 units        merger_of / owned_reducers / choose_mergers / plan_pushes / MergedShuffleFiles
 tracker      encode_statuses <-> decode_statuses with merged offsets; a lost merger
 block server push_map_output over real connections, then FetchShuffleBlocks of merged files
 fetcher      merged reads whose merger fails fall back to the map outputs, in map order
 cluster      local-cluster[6,1,256]: 6 hosts (127.0.0.2..7), so the shuffles take mergers
```
The reference is always plain Python: the records a partitioning gives, in map order, or
the slices ``read_local_block`` reads from the map outputs.
"""
from __future__ import annotations

import math
import os
import random
import signal
import socket
import stat
import time
from array import array
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from sparkctl import SparkConf, SparkContext
from sparkctl.errors import FetchFailedError
from sparkctl.executor import task_metrics
from sparkctl.executor.block_server import BlockServer
from sparkctl.executor.messages import BlockData, FetchShuffleBlocks, PushShuffleBlocks
from sparkctl.executor.shuffle_client import ConnectionShuffleClient
from sparkctl.rpc import connect
from sparkctl.scheduler.map_output_tracker import MapOutputTracker, decode_statuses, encode_statuses
from sparkctl.storage import shuffle
from sparkctl.storage.block_fetcher import BlockRange, FetchRequest, RangeClient, ShuffleBlockFetcher
from sparkctl.storage.block_manager import BlockManager
from sparkctl.storage import block_pusher
from sparkctl.storage.block_pusher import plan_pushes, push_map_output
from sparkctl.storage.merged_shuffle import (MERGED_IN_MEMORY, MergedShuffleFiles, choose_mergers, merged_name, merger_of,
                                             owned_reducers, parse_merged_name, push_block_limit)
from sparkctl.storage.shuffle import MapStatus, PartitionedWriter, read_local_block
from tests.clusters import pid_alive, wait_for

pytestmark = pytest.mark.timeout(30)

SECRET = b"push-shuffle-test-secret-5e0b"
LOCAL_HOST = "127.0.0.1"


# ============================================================================ units
@pytest.mark.timeout(10)
def test_merger_of_and_owned_reducers_are_inverse_and_cover_every_reducer_once() -> None:
    for reducers in range(1, 70):
        for mergers in range(1, reducers + 4):
            seen: Counter[int] = Counter()
            previous_end = 0
            for j in range(mergers):
                owned = owned_reducers(j, reducers, mergers)
                assert owned.step == 1 and owned.start == previous_end  # contiguous runs, in order
                previous_end = owned.stop
                for r in owned:
                    assert merger_of(r, reducers, mergers) == j, (r, reducers, mergers)
                    seen[r] += 1
            assert previous_end == reducers
            assert seen == Counter(range(reducers)), (reducers, mergers)
            if mergers <= reducers:  # none idle while there are reducers enough
                assert all(len(owned_reducers(j, reducers, mergers)) >= 1 for j in range(mergers))
                sizes = {len(owned_reducers(j, reducers, mergers)) for j in range(mergers)}
                assert max(sizes) - min(sizes) <= 1  # evenly spread


def _spark_least_mergers(hosts: int, reducers: int, tasks_per_executor: int, min_static: int,
                         ratio: float) -> int:
    """Spark's rule (DAGScheduler.getAndSetShufflePushMergerLocations with
    Utils.getPushBasedShuffleMergers...): the least number of mergers it accepts, 0 when it
    does not take push-based shuffle."""
    desired = min(max(1, math.ceil(reducers / tasks_per_executor)), hosts)
    least = max(min_static, math.ceil(desired * ratio))
    return least if hosts >= least and reducers >= least else 0


def _executors(hosts: int, per_host: int = 1, seed: int = 0) -> list[tuple[str, str, int]]:
    execs = [(f"e{h}-{k}", f"10.0.{h // 200}.{h % 200}", 7000 + h * 10 + k)
             for h in range(hosts) for k in range(per_host)]
    random.Random(seed).shuffle(execs)
    return execs


@pytest.mark.timeout(10)
def test_choose_mergers_examples() -> None:
    ten = _executors(10)
    assert choose_mergers(_executors(4), 100, 1) == ()  # fewer hosts than the static threshold
    assert choose_mergers(ten, 4, 1) == ()  # fewer reducers than mergers needed
    chosen = choose_mergers(ten, 100, 1)
    assert len(chosen) == 5 and len({h for _, h, _ in chosen}) == 5
    assert len(choose_mergers(_executors(100), 1000, 1, 5, 0.1)) == 10  # the ratio wants more
    assert len(choose_mergers(_executors(100), 1000, 1, 5, 0.05)) == 5
    assert len(choose_mergers(_executors(3), 1, 1, 1, 0.05)) == 1
    assert choose_mergers(_executors(3), 10, 1, 4, 0.05) == ()
    # more tasks per executor want fewer mergers, but never fewer than the static threshold
    assert len(choose_mergers(_executors(100), 1000, 100, 5, 1.0)) == 10
    assert choose_mergers([], 10, 1, 1, 0.05) == ()


@pytest.mark.timeout(10)
def test_choose_mergers_takes_the_least_spark_accepts_one_per_host() -> None:
    rng = random.Random(7)
    for case in range(400):
        hosts = rng.randrange(0, 40)
        per_host = rng.randrange(1, 4)
        reducers = rng.randrange(1, 300)
        tpe = rng.randrange(1, 9)
        min_static = rng.randrange(1, 8)
        ratio = rng.choice([0.01, 0.05, 0.2, 0.5, 1.0])
        execs = _executors(hosts, per_host, seed=case)
        chosen = choose_mergers(execs, reducers, tpe, min_static, ratio)
        want = _spark_least_mergers(hosts, reducers, tpe, min_static, ratio)
        assert len(chosen) == want, (hosts, reducers, tpe, min_static, ratio)
        assert len({loc[1] for loc in chosen}) == len(chosen)  # one per host
        for loc in chosen:
            assert loc in execs
            # the host's executor is a fixed one (the least), whatever order they came in
            assert loc == min(e for e in execs if e[1] == loc[1])
        assert chosen == choose_mergers(list(reversed(execs)), reducers, tpe, min_static, ratio)


@pytest.mark.timeout(10)
def test_push_block_limit_keeps_a_mergers_share_within_one_executors() -> None:
    assert push_block_limit(1 << 20, 5, 5) == 1 << 20  # a merger on every host: Spark's limit
    assert push_block_limit(1 << 20, 5, 3) == 1 << 20
    assert push_block_limit(1 << 20, 5, 100) == (1 << 20) // 20
    assert push_block_limit(600, 5, 6) == 500
    assert push_block_limit(1, 5, 100) == 1  # never below one byte
    rng = random.Random(5)
    for _ in range(500):
        max_block, hosts = rng.randrange(1, 1 << 22), rng.randrange(1, 3000)
        mergers = rng.randrange(1, hosts + 1)
        limit = push_block_limit(max_block, mergers, hosts)
        assert 1 <= limit <= max_block
        if hosts > mergers and max_block * mergers >= hosts:
            # M x R / K slices of the limit: at most the M x R x max_block / H of one executor
            assert limit * hosts <= max_block * mergers < (limit + 1) * hosts


@pytest.mark.timeout(10)
def test_plan_pushes_example() -> None:
    sizes = [0, 5, 2000, 7, 3, 3, 0, 9, 1, 4]
    mergers = [("m0", "h0", 1), None, ("m2", "h2", 3)]
    # merger 0 owns 0..3, merger 1 (lost) 4..6, merger 2 7..9
    assert plan_pushes(sizes, mergers, 10, 10) == [(0, [1]), (0, [3]), (2, [7, 8]), (2, [9])]
    assert plan_pushes(sizes, mergers, 10, 100) == [(0, [1, 3]), (2, [7, 8, 9])]
    assert plan_pushes(sizes, mergers, 0, 100) == []
    assert plan_pushes(sizes, [None, None], 10, 100) == []
    assert plan_pushes([0, 0, 0], [("m", "h", 1)], 10, 10) == []
    # a slice larger than a batch (but small enough to push) goes alone
    assert plan_pushes([3, 50, 3], [("m", "h", 1)], 100, 10) == [(0, [0]), (0, [1]), (0, [2])]


@pytest.mark.timeout(10)
def test_plan_pushes_properties() -> None:
    rng = random.Random(3)
    for _ in range(300):
        reducers = rng.randrange(1, 60)
        sizes = [rng.choice([0, 0, rng.randrange(1, 50), rng.randrange(1, 500)]) for _ in range(reducers)]
        k = rng.randrange(1, 8)
        mergers = [None if rng.random() < 0.3 else (f"m{j}", f"h{j}", j) for j in range(k)]
        max_block = rng.randrange(0, 400)
        max_batch = rng.randrange(1, 600)
        pushes = plan_pushes(sizes, mergers, max_block, max_batch)
        pushed = [r for _, rs in pushes for r in rs]
        expected = [r for r in range(reducers) if 0 < sizes[r] <= max_block
                    and mergers[merger_of(r, reducers, k)] is not None]
        assert pushed == expected  # each pushable slice once, in reducer order
        for j, rs in pushes:
            assert rs and all(merger_of(r, reducers, k) == j for r in rs)
            total = sum(sizes[r] for r in rs)
            assert total <= max_batch or len(rs) == 1
        # greedy: a batch is cut only where the next slice would not fit
        for (j1, a), (j2, b) in zip(pushes, pushes[1:]):
            if j1 == j2:
                assert sum(sizes[r] for r in a) + sizes[b[0]] > max_batch


def _fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


@pytest.mark.timeout(10)
def test_merged_files_append_read_mode_and_forget(tmp_path: Path) -> None:
    files = MergedShuffleFiles(str(tmp_path), memory=0)  # every slice written as it comes
    assert files.append(3, 0, b"abc") == 0
    assert files.append(3, 0, memoryview(b"defgh")) == 3
    assert files.append(3, 1, b"xy") == 0
    assert files.append(4, 0, b"other") == 0
    assert files.append(3, 0, b"ij") == 8
    assert files.bytes_merged == 17 and files.slices_merged == 5
    name = merged_name(3, 0)
    assert name == "shuffle_3_merged_0.data"
    assert files.read(name, 0, 10) == b"abcdefghij"
    assert files.read(name, 3, 5) == b"defgh"
    assert files.read(name, 10, 0) == b""
    assert files.read(merged_name(3, 1), 0, 2) == b"xy"
    with open(tmp_path / name, "rb") as f:
        assert f.read() == b"abcdefghij"
    for bad in [(8, 3), (11, 0), (0, 11), (-1, 2), (0, -1), (1.0, 2), (0, "2")]:
        with pytest.raises(OSError):
            files.read(name, *bad)
    with pytest.raises(OSError):  # nothing was pushed for it
        files.read(merged_name(3, 9), 0, 1)
    assert not (tmp_path / merged_name(3, 9)).exists()  # a read never creates a file
    for n in (name, merged_name(3, 1), merged_name(4, 0)):
        assert stat.S_IMODE(os.stat(tmp_path / n).st_mode) == 0o600
    fds = {n: entry[0] for n, entry in files._open.items()}
    assert set(fds) == {name, merged_name(3, 1), merged_name(4, 0)}
    files.forget(3)
    assert set(files._open) == {merged_name(4, 0)}
    assert not _fd_open(fds[name]) and not _fd_open(fds[merged_name(3, 1)]) and _fd_open(fds[merged_name(4, 0)])
    assert (tmp_path / name).exists()  # the executor deletes the files, not this
    # opened again, the file goes on where it ended
    assert files.append(3, 0, b"k") == 10
    assert files.read(name, 9, 2) == b"jk"
    files.close()
    assert not files._open


@pytest.mark.timeout(10)
def test_merged_files_capacity_closes_the_least_recent(tmp_path: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    files = MergedShuffleFiles(str(tmp_path), capacity=2, memory=0)
    expected: dict[int, bytes] = defaultdict(bytes)
    rng = random.Random(1)
    for _ in range(60):
        r = rng.randrange(5)
        data = rng.randbytes(rng.randrange(1, 20))
        assert files.append(0, r, data) == len(expected[r])
        expected[r] += data
        assert len(files._open) <= 2
        assert len(os.listdir("/proc/self/fd")) <= before + 2
    for r, data in expected.items():
        assert files.read(merged_name(0, r), 0, len(data)) == data
        with pytest.raises(OSError):
            files.read(merged_name(0, r), 0, len(data) + 1)
    files.close()
    assert len(os.listdir("/proc/self/fd")) == before


def _on_disk(tmp_path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in tmp_path.iterdir()}


@pytest.mark.timeout(10)
def test_merged_files_are_held_in_memory_then_written_out_least_recent_first(tmp_path: Path) -> None:
    files = MergedShuffleFiles(str(tmp_path), memory=10)
    a, b, c = merged_name(1, 0), merged_name(1, 1), merged_name(2, 0)
    assert files.append(1, 0, b"aaaa") == 0
    assert files.append(1, 1, memoryview(b"bbb")) == 0
    assert files.append(1, 0, b"AA") == 4
    assert files.held_bytes == 9 and _on_disk(tmp_path) == {}  # no file, no write
    assert files.read(a, 2, 4) == b"aaAA" and files.read(b, 0, 3) == b"bbb"
    assert files.append(2, 0, b"cc") == 0  # 11 bytes held: b, appended least recently, goes out
    assert _on_disk(tmp_path) == {b: b"bbb"} and files.held_bytes == 8
    assert stat.S_IMODE(os.stat(tmp_path / b).st_mode) == 0o600
    assert files.append(1, 1, b"B") == 3  # a written file is appended to on disk
    assert _on_disk(tmp_path) == {b: b"bbbB"} and files.held_bytes == 8
    assert files.read(b, 2, 2) == b"bB"
    assert files.append(3, 0, b"x" * 11) == 0  # more than the budget alone: straight to disk
    assert _on_disk(tmp_path)[merged_name(3, 0)] == b"x" * 11 and files.held_bytes == 8
    for bad in [(4, 3), (7, 0), (-1, 1), (0, 1.5)]:
        with pytest.raises(OSError):
            files.read(a, *bad)
    assert files.read(a, 6, 0) == b""
    assert files.bytes_merged == 4 + 3 + 2 + 2 + 1 + 11 and files.slices_merged == 6
    files.forget(1)  # a's bytes go; b's file is closed (the executor deletes it)
    assert files.held_bytes == 2 and files.read(c, 0, 2) == b"cc"
    with pytest.raises(OSError):
        files.read(a, 0, 1)
    assert files.append(1, 0, b"new") == 0  # a shuffle id is never reused; if it were, it starts over
    files.close()
    assert files.held_bytes == 0 and not files._open


@pytest.mark.timeout(20)
def test_merged_files_in_memory_and_on_disk_read_as_plain_concatenation(tmp_path: Path) -> None:
    """Random appends under a small budget: whatever is held or written out, every file
    reads back as the concatenation of its slices, each at the offset append gave it, the
    budget always holds, and what is on disk is each written file whole."""
    rng = random.Random(7)
    for trial in range(20):
        d = tmp_path / str(trial)
        d.mkdir()
        memory = rng.choice([0, 1, 16, 64, 200])
        files = MergedShuffleFiles(str(d), capacity=rng.choice([1, 3, 256]), memory=memory)
        expected: dict[str, bytes] = defaultdict(bytes)
        for _ in range(rng.randrange(1, 80)):
            shuffle_id, r = rng.randrange(2), rng.randrange(4)
            data = rng.randbytes(rng.randrange(1, 40))
            name = merged_name(shuffle_id, r)
            assert files.append(shuffle_id, r, data) == len(expected[name])
            expected[name] += data
            assert files.held_bytes <= memory
        assert files.held_bytes == sum(len(v) for v in files._held.values())
        for name, data in _on_disk(d).items():
            assert data == expected[name]
        assert set(_on_disk(d)) | set(files._held) == set(expected)
        for name, data in expected.items():
            at = rng.randrange(len(data))
            assert files.read(name, 0, len(data)) == data
            assert files.read(name, at, len(data) - at) == data[at:]
            with pytest.raises(OSError):
                files.read(name, at, len(data) - at + 1)
        files.close()


@pytest.mark.timeout(10)
def test_a_merged_file_that_cannot_be_written_out_is_lost_not_half_read(tmp_path: Path) -> None:
    gone = tmp_path / "gone"  # the merger's directory vanished (a full disk fails the same way)
    files = MergedShuffleFiles(str(gone), memory=8)
    assert files.append(0, 0, b"12345") == 0
    assert files.append(0, 1, b"6789") == 0  # 9 bytes: reducer 0's file is written out, and fails
    lost = merged_name(0, 0)
    with pytest.raises(OSError, match="lost: FileNotFoundError"):
        files.read(lost, 0, 5)
    with pytest.raises(OSError, match="lost"):  # its offsets would no longer hold
        files.append(0, 0, b"x")
    assert files.read(merged_name(0, 1), 0, 4) == b"6789" and files.held_bytes == 4
    files.forget(0)
    assert files.append(0, 0, b"x") == 0 and not gone.exists()


@pytest.mark.timeout(10)
def test_parse_merged_name() -> None:
    assert parse_merged_name("shuffle_3_merged_7.data") == (3, 7)
    assert parse_merged_name(merged_name(12345, 0)) == (12345, 0)
    assert parse_merged_name("shuffle_999999999999999999_merged_1.data") == (10 ** 18 - 1, 1)
    for bad in ["../shuffle_3_merged_7.data", "x/shuffle_3_merged_7.data", "shuffle_3_merged_7.data/",
                "/tmp/shuffle_3_merged_7.data", "shuffle_3_merged_7.data\0", "shuffle_3_merged_7.data\n",
                " shuffle_3_merged_7.data", "shuffle_x_merged_7.data", "shuffle_3_merged_y.data",
                "shuffle_-3_merged_7.data", "shuffle_3_merged_-7.data", "shuffle_3_merged_7.index",
                "shuffle_3_merged_7.datax", "shuffle_3_merged_7", "shuffle__merged_7.data",
                "shuffle_3_merged_.data", "shuffle_3_7_9.data", "shuffle_3_merged_7_1.data",
                "shuffle_1.5_merged_7.data", "shuffle_3_merged_7.DATA", "shuffle_1e3_merged_7.data",
                "shuffle_1000000000000000000_merged_1.data", "",
                # names merged_name never makes: leading zeros, digits other than ASCII's
                "shuffle_003_merged_7.data", "shuffle_3_merged_07.data", "shuffle_\u0663_merged_7.data"]:
        assert parse_merged_name(bad) is None, bad
    for not_str in [None, 3, b"shuffle_3_merged_7.data", ["shuffle_3_merged_7.data"], (3, 7)]:
        assert parse_merged_name(not_str) is None


# ============================================================================ tracker
def _status(eid: str, host: str, i: int, sizes: tuple[int, ...], merged: tuple[int, ...] = ()) -> MapStatus:
    return MapStatus(eid, host, 7000 + i, f"/d/{eid}/shuffle_0_{i}_0.data", f"/d/{eid}/shuffle_0_{i}_0.index",
                     sizes, merged)


@pytest.mark.timeout(10)
def test_encode_decode_round_trip_with_merged_offsets() -> None:
    mergers = [("m0", "10.0.0.1", 1), None, ("m2", "10.0.0.3", 3)]
    statuses = [
        _status("a", "h1", 0, (5, 0, 7, 300), (0, -1, 12, -1)),
        None,
        _status("b", "h2", 2, (1, 2, 3, 4)),  # pushed nothing
        _status("a", "h1", 3, (70000, 9, 0, 1), (-1, 1 << 40, -1, (1 << 31) + 5)),
        _status("c", "h3", 4, (0, 0, 0, 0), (-1, -1, -1, -1)),
    ]
    decoded = decode_statuses(encode_statuses(statuses, mergers))
    assert len(decoded) == len(statuses)
    assert decoded[1] is None
    for orig, got in zip(statuses, decoded):
        if orig is None:
            continue
        assert got is not None
        assert (got.executor_id, got.host, got.port, got.data_path, got.index_path, got.sizes) == (
            orig.executor_id, orig.host, orig.port, orig.data_path, orig.index_path, orig.sizes)
        assert got.merged == orig.merged
        assert got.mergers == (tuple(mergers) if orig.merged else ())
    assert decoded[0].mergers[1] is None
    # compact (as a slot decodes them): the same values, each status's held in array slices
    compact = decode_statuses(encode_statuses(statuses, mergers), compact=True)
    assert compact[0] is not None and not isinstance(compact[0].sizes, tuple)
    assert [s and s._replace(sizes=tuple(s.sizes), merged=tuple(s.merged)) for s in compact] == decoded
    # small offsets pack narrow, and stay exact
    small = decode_statuses(encode_statuses([_status("a", "h", 0, (1, 1), (0, 127))], mergers[:1]))
    assert small[0].merged == (0, 127) and small[0].mergers == (mergers[0],)
    # without mergers no offsets are served (nothing could be read by them)
    plain = decode_statuses(encode_statuses(statuses))
    assert all(s is None or (s.merged == () and s.mergers == ()) for s in plain)
    # nothing merged anywhere: no mergers carried
    none_merged = decode_statuses(encode_statuses([statuses[2]], mergers))
    assert none_merged[0].merged == () and none_merged[0].mergers == ()
    with pytest.raises(ValueError):
        encode_statuses([_status("a", "h", 0, (1, 2), (0,))], mergers)


@pytest.mark.timeout(10)
def test_tracker_chooses_mergers_once_and_drops_a_lost_one() -> None:
    tracker = MapOutputTracker()
    tracker.register_shuffle(0, 3)
    calls = []
    chosen = [("m0", "10.0.0.1", 1), ("m1", "10.0.0.2", 2)]

    def choose() -> list[tuple[str, str, int]]:
        calls.append(1)
        return list(chosen)

    assert tracker.shuffle_mergers(0, choose) == tuple(chosen)
    assert tracker.shuffle_mergers(0, lambda: pytest.fail("chosen again")) == tuple(chosen)
    assert len(calls) == 1
    assert tracker.shuffle_mergers(1, lambda: ()) == ()  # a shuffle that takes none
    assert tracker.shuffle_mergers(1, lambda: pytest.fail("chosen again")) == ()
    tracker.register_map_output(0, 0, _status("a", "h1", 0, (4, 5), (0, 0)))
    tracker.register_map_output(0, 1, _status("m1", "10.0.0.2", 1, (6, 7), (4, 5)))
    tracker.register_map_output(0, 2, _status("b", "h2", 2, (8, 9), (-1, 10)))
    served = tracker.serve(0, lambda bid: False)
    assert served.complete
    before = decode_statuses(served.data)
    assert [s.merged for s in before] == [(0, 0), (4, 5), (-1, 10)]
    assert all(s.mergers == tuple(chosen) for s in before)
    epoch = tracker.epoch

    tracker.remove_outputs_on_executor("m0")  # a merger without map outputs
    assert tracker.mergers[0] == [None, chosen[1]]
    assert tracker.epoch > epoch
    assert tracker.is_available(0)
    after = tracker.serve(0, lambda bid: False)
    assert after.data != served.data and after.epoch == tracker.epoch
    decoded = decode_statuses(after.data)
    assert all(s.mergers == (None, chosen[1]) for s in decoded)
    assert [s.merged for s in decoded] == [(0, 0), (4, 5), (-1, 10)]  # offsets kept: the others are good
    # a rerun's map stage pushes to the same list, less the lost
    assert tracker.shuffle_mergers(0, lambda: pytest.fail("chosen again")) == (None, chosen[1])

    epoch = tracker.epoch
    tracker.remove_outputs_on_executor("m1")  # a merger with a map output
    assert tracker.mergers[0] == [None, None]
    assert tracker.epoch > epoch
    assert tracker.missing_partitions(0) == [1]
    decoded = decode_statuses(tracker.serve(0, lambda bid: False).data)
    assert decoded[1] is None and decoded[0].mergers == (None, None)
    tracker.unregister_shuffle(0)
    assert 0 not in tracker.mergers


# ============================================================================ block server
REDUCERS = 7


def _records(seed: int, n: int = 300) -> list[tuple[int, str]]:
    rng = random.Random(seed)
    return [(rng.randrange(1000), f"m{seed}:{i}:" + "z" * rng.randrange(40)) for i in range(n)]


def _map_output(local_dir: Path, shuffle_id: int, map_index: int, host: str, port: int,
                records: list[tuple[int, str]], reducers: int = REDUCERS) -> MapStatus:
    writer = PartitionedWriter(reducers, lambda k: k % reducers, 1 << 30, str(local_dir), batch_size=23)
    writer.write_all(records)
    data_path, index_path = shuffle.shuffle_paths(str(local_dir), shuffle_id, map_index, 0)
    return MapStatus(f"exec-{host}", host, port, data_path, index_path, writer.commit(data_path, index_path))


def _expected(records_by_map: list[list[tuple[int, str]]], reduce_index: int,
              reducers: int = REDUCERS) -> list[tuple[int, str]]:
    return [kv for recs in records_by_map for kv in recs if kv[0] % reducers == reduce_index]


class _Server:
    def __init__(self, base: Path, host: str, merge_memory: int = MERGED_IN_MEMORY) -> None:
        self.host = host
        self.dir = base / host
        self.dir.mkdir()
        self.server = BlockServer(str(self.dir), BlockManager(1 << 20, str(self.dir / "blocks")), SECRET,
                                  merge_memory=merge_memory)
        self.address = self.server.listen(host)
        self.server.start()
        self.location = (f"exec-{host}", self.address[0], self.address[1])

    def stop(self) -> None:
        self.server.stop()
        assert not self.server._thread.is_alive()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., _Server]]:
    made: list[_Server] = []

    def make(host: str, merge_memory: int = MERGED_IN_MEMORY) -> _Server:
        s = _Server(tmp_path, host, merge_memory)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


@pytest.fixture
def client() -> Iterator[ConnectionShuffleClient]:
    c = ConnectionShuffleClient(SECRET, timeout=10.0)
    yield c
    c.close_all()


def _wait_all(client: ConnectionShuffleClient, requests: list[FetchRequest]) -> None:
    out = {id(r) for r in requests}
    for _ in range(1000):
        if not out:
            return
        for r in client.wait(10):
            out.discard(id(r))
    raise AssertionError("requests still out")


def _read_merged(client: ConnectionShuffleClient, merger: _Server, ranges: list[tuple[str, int, int]],
                 reduce_index: int = 0) -> FetchRequest:
    req = FetchRequest(merger.address, merger.location[0], reduce_index)
    for name, offset, length in ranges:
        req.ranges.append(BlockRange(0, name, offset, length))
        req.size += length
    client.connect([merger.address])
    client.send(req)
    _wait_all(client, [req])
    return req


def _fetch(statuses: list[MapStatus], reduce_index: int, client: Any, *, request_size: int = 64 << 10,
           window: int = 1 << 20) -> list[Any]:
    fetcher = ShuffleBlockFetcher(0, reduce_index, statuses, LOCAL_HOST, client, timeout=10.0,
                                  max_bytes_in_flight=window, request_size=request_size,
                                  read_local=shuffle._local_batches)
    return [rec for batch in fetcher for rec in batch]


def _pushed_cluster(tmp_path: Path, servers: Callable[..., _Server], client: ConnectionShuffleClient,
                    maps: int = 5, max_block: int = 1 << 20, max_batch: int = 3 << 20,
                    merge_memory: int = MERGED_IN_MEMORY
                    ) -> tuple[_Server, list[_Server], list[MapStatus], list[list[tuple[int, str]]]]:
    """A map executor's block server holding ``maps`` map outputs of shuffle 0, each pushed
    to two mergers; the statuses as the driver serves them (offsets and mergers)."""
    mapper = servers("127.0.0.2")
    mergers = [servers("127.0.0.3", merge_memory), servers("127.0.0.4", merge_memory)]
    locations = tuple(m.location for m in mergers)
    statuses, records = [], []
    for i in range(maps):
        recs = _records(i)
        s = _map_output(mapper.dir, 0, i, mapper.address[0], mapper.address[1], recs)
        merged = push_map_output(client, 0, i, s.data_path, s.sizes, locations, max_block, max_batch)
        records.append(recs)
        statuses.append(MapStatus(s.executor_id, s.host, s.port, s.data_path, s.index_path, s.sizes, merged))
    served = decode_statuses(encode_statuses(statuses, locations), compact=True)  # as a slot has them
    return mapper, mergers, served, records


@pytest.mark.timeout(30)
@pytest.mark.parametrize("merge_memory", [MERGED_IN_MEMORY, 0], ids=["held", "written"])
def test_pushed_slices_are_read_back_from_the_mergers(tmp_path: Path, servers: Callable[..., _Server],
                                                      client: ConnectionShuffleClient, merge_memory: int) -> None:
    mapper, mergers, statuses, records = _pushed_cluster(tmp_path, servers, client, merge_memory=merge_memory)
    for s in statuses:
        assert all(at >= 0 for at in s.merged), s.merged  # every slice is small: all were merged
    for r in range(REDUCERS):
        merger = mergers[merger_of(r, REDUCERS, 2)]
        slices = [read_local_block(s.data_path, s.index_path, r) for s in statuses]
        # each map task's slice where its status says, and the file is the slices in push order
        req = _read_merged(client, merger, [(merged_name(0, r), s.merged[r], s.sizes[r]) for s in statuses], r)
        assert req.error is None, req.error
        assert req.data == b"".join(slices)
        if merge_memory:  # all of it held: no file was made
            assert not (merger.dir / merged_name(0, r)).exists()
        else:
            assert (merger.dir / merged_name(0, r)).read_bytes() == b"".join(slices)
        assert [s.merged[r] for s in statuses] == [sum(map(len, slices[:i])) for i in range(len(slices))]
        other = mergers[1 - merger_of(r, REDUCERS, 2)]
        assert not (other.dir / merged_name(0, r)).exists()  # only its owner merged it
        with pytest.raises(OSError):
            other.server.merged.read(merged_name(0, r), 0, 1)
        # a range past the end of the merged file is an error, and the connection goes on
        past = _read_merged(client, merger, [(merged_name(0, r), sum(map(len, slices)), 1)], r)
        assert past.data is None and "holds" in (past.error or "")
    # reducers read the merged slices (the mapper's server not needed), records in map order;
    # each read counts every slice as a merged remote block, in one merged chunk, and times it
    mapper.stop()
    for r in range(REDUCERS):
        metrics = task_metrics.begin()
        assert _fetch(statuses, r, client) == _expected(records, r)
        sent = [s.sizes[r] for s in statuses if s.sizes[r]]
        assert metrics.shuffle_merged_remote_blocks_fetched == metrics.shuffle_remote_blocks_fetched == len(sent)
        assert metrics.shuffle_merged_remote_bytes_read == metrics.shuffle_remote_bytes_read == sum(sent)
        assert metrics.shuffle_merged_remote_chunks_fetched == 1
        assert metrics.shuffle_merged_fetch_fallback_count == 0
        assert 0 < metrics.shuffle_merged_remote_reqs_duration == metrics.shuffle_remote_reqs_duration  # ns


@pytest.mark.timeout(30)
def test_a_run_of_merged_ranges_is_read_once_in_any_order(tmp_path: Path, servers: Callable[..., _Server],
                                                          client: ConnectionShuffleClient) -> None:
    """A reader asks for a merged file's slices in map order, which need not be the order
    they were pushed in: the block server answers a run of ranges covering no more than
    they ask with one read of the file, and ranges apart one read each."""
    _, mergers, statuses, _ = _pushed_cluster(tmp_path, servers, client)
    merger = mergers[merger_of(0, REDUCERS, 2)]
    name = merged_name(0, 0)
    slices = [(name, s.merged[0], s.sizes[0]) for s in statuses]
    whole = _read_merged(client, merger, [(name, 0, sum(n for _, _, n in slices))]).data
    assert whole is not None and len(whole) == sum(s.sizes[0] for s in statuses)
    reads: list[tuple[int, int]] = []
    real_read = merger.server.merged.read

    def counted(file_name: str, offset: int, length: int) -> bytes:
        reads.append((offset, length))
        return real_read(file_name, offset, length)
    merger.server.merged.read = counted  # type: ignore[method-assign]

    def expect(ranges: list[tuple[str, int, int]], preads: int) -> None:
        reads.clear()
        req = _read_merged(client, merger, ranges)
        assert req.error is None, req.error
        assert req.data == b"".join(whole[o:o + n] for _, o, n in ranges)
        assert len(reads) == preads, reads

    expect(slices[::-1], 1)  # every slice, last pushed first: the whole file in one read
    expect(slices[1:] + slices[:1], 1)
    expect(slices + slices[:1], 1)  # a slice twice: the span is less than asked
    expect(slices[::2], len(slices[::2]))  # every other slice: the span is more than asked
    expect(slices[:1], 1)
    # one range of the run past the file's end fails the request, and the connection goes on
    past = _read_merged(client, merger, slices + [(name, len(whole), 1)])
    assert past.data is None and "holds" in (past.error or "")
    expect(slices, 1)


@pytest.mark.timeout(30)
def test_a_reducer_reads_from_the_map_outputs_when_its_merger_is_gone(
        tmp_path: Path, servers: Callable[..., _Server], client: ConnectionShuffleClient) -> None:
    mapper, mergers, statuses, records = _pushed_cluster(tmp_path, servers, client)
    mergers[0].stop()  # refuses connections from now on
    for r in range(REDUCERS):
        for request_size, window in ((64 << 10, 1 << 20), (200, 1000)):
            assert _fetch(statuses, r, client, request_size=request_size, window=window) == _expected(records, r)
    # and the merged file of a reducer gone (deleted with its shuffle) is as a lost merger
    for name in os.listdir(mergers[1].dir):
        if parse_merged_name(name):
            os.unlink(mergers[1].dir / name)
    mergers[1].server.forget_shuffle(0)
    for r in range(REDUCERS):
        assert _fetch(statuses, r, client) == _expected(records, r)


@pytest.mark.timeout(30)
def test_push_limits_leave_large_slices_at_the_map_output(
        tmp_path: Path, servers: Callable[..., _Server], client: ConnectionShuffleClient) -> None:
    mapper = servers("127.0.0.2")
    mergers = [servers("127.0.0.3"), servers("127.0.0.4")]
    locations = tuple(m.location for m in mergers)
    statuses, records = [], []
    for i in range(4):
        recs = _records(10 + i)
        s = _map_output(mapper.dir, 0, i, *mapper.address, recs)
        median = sorted(s.sizes)[REDUCERS // 2]
        merged = push_map_output(client, 0, i, s.data_path, s.sizes, locations, median, median + 1)
        for r, at in enumerate(merged):
            assert (at >= 0) == (0 < s.sizes[r] <= median), (r, s.sizes, merged)
        statuses.append(MapStatus(s.executor_id, s.host, s.port, s.data_path, s.index_path, s.sizes, merged))
        records.append(recs)
    served = decode_statuses(encode_statuses(statuses, locations))
    for r in range(REDUCERS):
        assert _fetch(served, r, client) == _expected(records, r)
    # no merger at all: nothing pushed, nothing sent
    s = statuses[0]
    assert push_map_output(client, 0, 9, s.data_path, s.sizes, (None, None), 1 << 20, 1 << 20) == (-1,) * REDUCERS


@pytest.mark.timeout(30)
def test_push_to_a_dead_merger_leaves_its_slices_unmerged(
        tmp_path: Path, servers: Callable[..., _Server], client: ConnectionShuffleClient) -> None:
    mapper = servers("127.0.0.2")
    alive, dead = servers("127.0.0.3"), servers("127.0.0.4")
    dead.stop()
    recs = _records(5)
    s = _map_output(mapper.dir, 0, 0, *mapper.address, recs)
    merged = push_map_output(client, 0, 0, s.data_path, s.sizes, (alive.location, dead.location), 1 << 20, 1 << 20)
    for r in range(REDUCERS):
        assert (merged[r] >= 0) == (merger_of(r, REDUCERS, 2) == 0 and s.sizes[r] > 0), merged
    status = MapStatus(s.executor_id, s.host, s.port, s.data_path, s.index_path, s.sizes, merged)
    served = decode_statuses(encode_statuses([status], (alive.location, dead.location)))
    for r in range(REDUCERS):
        assert _fetch(served, r, client) == _expected([recs], r)
    assert (dead.address[0], dead.address[1]) in block_pusher._failed  # skipped by this slot's next pushes
    block_pusher._failed.clear()


@pytest.mark.timeout(30)
def test_a_merger_that_never_answers_costs_a_push_timeout_once(
        tmp_path: Path, servers: Callable[..., _Server], client: ConnectionShuffleClient) -> None:
    """A merger cut off (here: a listener that accepts and never says a word) holds a map
    task up at most the push timeout, dial included; later pushes of the slot skip it."""
    mapper, alive = servers("127.0.0.2"), servers("127.0.0.3")
    silent = socket.socket()
    silent.bind(("127.0.0.5", 0))
    silent.listen(16)
    try:
        mute = ("mute", "127.0.0.5", silent.getsockname()[1])
        recs = _records(9)
        s = _map_output(mapper.dir, 0, 0, *mapper.address, recs)
        started = time.monotonic()
        merged = push_map_output(client, 0, 0, s.data_path, s.sizes, (alive.location, mute), 1 << 20, 1 << 20,
                                 timeout=1.0)
        assert time.monotonic() - started < 5.0
        for r in range(REDUCERS):
            assert (merged[r] >= 0) == (merger_of(r, REDUCERS, 2) == 0 and s.sizes[r] > 0), merged
        started = time.monotonic()
        again = push_map_output(client, 0, 1, s.data_path, s.sizes, (alive.location, mute), 1 << 20, 1 << 20,
                                timeout=1.0)
        assert time.monotonic() - started < 0.5  # skipped, not waited for
        assert [o >= 0 for o in again] == [o >= 0 for o in merged]
    finally:
        silent.close()
        block_pusher._failed.clear()


def _ask(conn: Any, message: Any) -> BlockData:
    conn.send(message)
    reply = conn.recv(timeout=10)
    assert isinstance(reply, BlockData)
    return reply


@pytest.mark.timeout(30)
def test_bad_pushes_are_refused_and_the_server_goes_on(tmp_path: Path,
                                                       servers: Callable[..., _Server]) -> None:
    merger = servers("127.0.0.3", 0)  # every slice written as it comes: the files show what was
    conn = connect(*merger.address, SECRET)
    try:
        good = _ask(conn, PushShuffleBlocks(7, 0, [0, 1], [2, 3], b"abcde"))
        assert good.data is not None and array("q", bytes(good.data)).tolist() == [0, 0]
        bad_pushes = [
            PushShuffleBlocks(7, 1, [0], [3], b"ab"),  # sizes do not sum to the bytes
            PushShuffleBlocks(7, 1, [0, 1], [1, 1], b"abc"),
            PushShuffleBlocks(7, 1, [0, 1], [2], b"ab"),  # lists of different lengths
            PushShuffleBlocks(7, 1, [-1], [2], b"ab"),  # negative reducer
            PushShuffleBlocks(7, 1, ["0"], [2], b"ab"),  # not ints
            PushShuffleBlocks(7, 1, [1.0], [2], b"ab"),
            PushShuffleBlocks(7, 1, [True], [2], b"ab"),
            PushShuffleBlocks(7, 1, [None], [2], b"ab"),
            PushShuffleBlocks(7, 1, [0], ["2"], b"ab"),
            PushShuffleBlocks(7, 1, [0], [2.0], b"ab"),
            PushShuffleBlocks(7, 1, [0, 1], [2, 0], b"ab"),  # an empty slice
            PushShuffleBlocks(7, 1, [0], [-2], b""),
            PushShuffleBlocks(7, 1, [], [], b""),  # empty lists
            PushShuffleBlocks(7, 1, (0,), (2,), b"ab"),  # tuples, not lists
            PushShuffleBlocks(7, 1, [0], [2], "ab"),  # not bytes
            PushShuffleBlocks(7, 1, [0], [2], bytearray(b"ab")),
            PushShuffleBlocks(7, 1, [0], [2], None),
            PushShuffleBlocks(-1, 1, [0], [2], b"ab"),  # bad shuffle ids
            PushShuffleBlocks("7", 1, [0], [2], b"ab"),
            PushShuffleBlocks(None, 1, [0], [2], b"ab"),
            PushShuffleBlocks(1 << 62, 1, [0], [2], b"ab"),
            PushShuffleBlocks(10 ** 18, 1, [0], [2], b"ab"),  # its merged file could not be named
            PushShuffleBlocks(7, 1, [10 ** 18], [2], b"ab"),
            PushShuffleBlocks(7, 1, [0, 1 << 62], [1, 1], b"ab"),  # too large a reducer, after a good one
            PushShuffleBlocks(7, 1, [5, -5], [1, 1], b"ab"),  # a good reducer, then a bad one
        ]
        for bad in bad_pushes:
            reply = _ask(conn, bad)
            assert reply.data is None and reply.error, bad
            # checked whole before anything is written: the next good push lands where it would
            ok = _ask(conn, FetchShuffleBlocks(0, [(merged_name(7, 0), 0, 2), (merged_name(7, 1), 0, 3)]))
            assert ok.data == b"abcde", bad
        assert sorted(n for n in os.listdir(merger.dir) if parse_merged_name(n)) == [merged_name(7, 0),
                                                                                    merged_name(7, 1)]
        again = _ask(conn, PushShuffleBlocks(7, 1, [1, 0, 2], [1, 2, 4], b"FGHIJKL"))
        assert array("q", bytes(again.data)).tolist() == [3, 2, 0]
        assert _ask(conn, FetchShuffleBlocks(0, [(merged_name(7, 0), 0, 4)])).data == b"abGH"
        assert _ask(conn, FetchShuffleBlocks(1, [(merged_name(7, 1), 0, 4)])).data == b"cdeF"
        assert _ask(conn, FetchShuffleBlocks(2, [(merged_name(7, 2), 0, 4)])).data == b"IJKL"
        # reads of merged files: past the end, bad ranges, bad names
        bad_reads = [
            [(merged_name(7, 0), 0, 5)], [(merged_name(7, 0), 4, 1)], [(merged_name(7, 0), -1, 2)],
            [(merged_name(7, 0), 0, 0)], [(merged_name(7, 9), 0, 1)], [(merged_name(8, 0), 0, 1)],
            [("../" + merged_name(7, 0), 0, 1)], [(str(merger.dir / merged_name(7, 0)), 0, 1)],
            [(merged_name(7, 0) + "/", 0, 1)], [("shuffle_7_merged_0.index", 0, 1)],
            [(merged_name(7, 0), 0, 2), (merged_name(7, 0), 3, 2)],  # the second range past the end
        ]
        for ranges in bad_reads:
            reply = _ask(conn, FetchShuffleBlocks(0, ranges))
            assert reply.data is None and reply.error, ranges
        assert _ask(conn, FetchShuffleBlocks(0, [(merged_name(7, 0), 1, 3)])).data == b"bGH"
    finally:
        conn.close()


# ============================================================================ fetcher fallback
class _Mergers:
    """Merged files of shuffle 0 in one directory per merger, filled as pushes would, and a
    RangeClient over them and the map outputs; mergers in ``failing`` fail every read."""

    def __init__(self, base: Path, statuses: list[MapStatus], k: int, pushed: Callable[[int, int], bool]) -> None:
        self.locations = [(f"merger{j}", f"10.1.0.{j}", 9000 + j) for j in range(k)]
        self.files = []
        for j in range(k):
            (base / f"merger{j}").mkdir()
            self.files.append(MergedShuffleFiles(str(base / f"merger{j}")))
        self.statuses = []
        reducers = len(statuses[0].sizes)
        for i, s in enumerate(statuses):
            merged = [-1] * reducers
            for r in range(reducers):
                if s.sizes[r] and pushed(i, r):
                    j = merger_of(r, reducers, k)
                    merged[r] = self.files[j].append(0, r, read_local_block(s.data_path, s.index_path, r))
            self.statuses.append(MapStatus(s.executor_id, s.host, s.port, s.data_path, s.index_path, s.sizes,
                                           tuple(merged)))
        self.failing: set[tuple[str, int]] = set()
        self.reads: Counter[str] = Counter()  # "merged" / "map" ranges asked for
        self.client = RangeClient(self.fetch)

    def served(self, mergers: list[Any] | None = None) -> list[MapStatus]:
        return decode_statuses(encode_statuses(self.statuses, self.locations if mergers is None else mergers))

    def fetch(self, req: FetchRequest, r: BlockRange) -> bytes:
        if parse_merged_name(r.file_name):
            self.reads["merged"] += 1
            if req.address in self.failing:
                raise ConnectionRefusedError(f"merger at {req.address} is gone")
            j = next(j for j, loc in enumerate(self.locations) if (loc[1], loc[2]) == req.address)
            return self.files[j].read(r.file_name, r.offset, r.length)
        self.reads["map"] += 1
        s = next(s for s in self.statuses if os.path.basename(s.data_path) == r.file_name)
        return read_local_block(s.data_path, s.index_path, req.reduce_index, r.offset, r.length)

    def close(self) -> None:
        for f in self.files:
            f.close()


def _map_outputs(base: Path, maps: int, reducers: int, local: set[int] = frozenset()
                 ) -> tuple[list[MapStatus], list[list[tuple[int, str]]]]:
    statuses, records = [], []
    for i in range(maps):
        d = base / f"map{i}"
        d.mkdir()
        recs = _records(100 + i, 200)
        host = LOCAL_HOST if i in local else f"127.0.1.{i % 3}"
        statuses.append(_map_output(d, 0, i, host, 8000 + i % 3, recs, reducers))
        records.append(recs)
    return statuses, records


@pytest.mark.timeout(30)
@pytest.mark.parametrize("failing", [(), (0,), (1,), (0, 1, 2)])
def test_fetcher_falls_back_to_the_map_outputs_in_map_order(tmp_path: Path, failing: tuple[int, ...]) -> None:
    reducers = 6
    statuses, records = _map_outputs(tmp_path, 8, reducers, local={3})
    rng = random.Random(len(failing))
    # most slices pushed; some not (too large, the push failed)
    pushed = {(i, r) for i in range(8) for r in range(reducers) if rng.random() < 0.8}
    merged = _Mergers(tmp_path, statuses, 3, lambda i, r: (i, r) in pushed)
    merged.failing = {(merged.locations[j][1], merged.locations[j][2]) for j in failing}
    try:
        served = merged.served()
        for r in range(reducers):
            for request_size, window in ((100_000, 1 << 20), (3000, 15_000), (700, 3500)):
                merged.reads.clear()
                metrics = task_metrics.begin()
                got = _fetch(served, r, merged.client, request_size=request_size, window=window)
                assert got == _expected(records, r, reducers), (r, request_size)
                remote_pushed = [i for i in range(8) if i != 3 and (i, r) in pushed and statuses[i].sizes[r]
                                 and statuses[i].sizes[r] <= max(1, min(request_size, window // 5))]
                remote = [i for i in range(8) if i != 3 and statuses[i].sizes[r]]
                assert metrics.shuffle_remote_blocks_fetched == len(remote)
                assert metrics.shuffle_remote_bytes_read == sum(statuses[i].sizes[r] for i in remote)
                if merger_of(r, reducers, 3) in failing:  # every merged request fell back
                    assert metrics.shuffle_merged_remote_blocks_fetched == 0
                    assert metrics.shuffle_merged_remote_chunks_fetched == 0
                    assert (metrics.shuffle_merged_fetch_fallback_count >= 1) == bool(remote_pushed)
                else:
                    assert metrics.shuffle_merged_remote_blocks_fetched == len(remote_pushed)
                    assert metrics.shuffle_merged_remote_bytes_read == sum(statuses[i].sizes[r]
                                                                           for i in remote_pushed)
                    assert (metrics.shuffle_merged_remote_chunks_fetched >= 1) == bool(remote_pushed)
                    assert metrics.shuffle_merged_fetch_fallback_count == 0
                if remote_pushed:
                    assert merged.reads["merged"] >= 1  # the merger was asked
                if merger_of(r, reducers, 3) in failing or not remote_pushed:
                    # every remote slice came from its map output
                    assert merged.reads["map"] >= sum(1 for i in range(8) if i != 3 and statuses[i].sizes[r])
    finally:
        merged.close()


@pytest.mark.timeout(30)
def test_fetcher_skips_a_lost_merger_and_fails_a_lost_map_output(tmp_path: Path) -> None:
    reducers = 4
    statuses, records = _map_outputs(tmp_path, 5, reducers)
    merged = _Mergers(tmp_path, statuses, 2, lambda i, r: True)
    try:
        # the driver knows merger 0 is lost: its reducers never ask it
        lost = merged.served([None, merged.locations[1]])
        merged.failing = {(merged.locations[0][1], merged.locations[0][2])}
        for r in range(reducers):
            merged.reads.clear()
            assert _fetch(lost, r, merged.client) == _expected(records, r, reducers)
            if merger_of(r, reducers, 2) == 0:
                assert merged.reads["merged"] == 0
            else:
                assert merged.reads["merged"] == 5 and merged.reads["map"] == 0
        # the merger fails, and so does a map output its reducer falls back to: a fetch failure
        # naming that map output (the map stage reruns)
        os.unlink(statuses[2].data_path)
        r = next(r for r in range(reducers) if merger_of(r, reducers, 2) == 0 and statuses[2].sizes[r])
        with pytest.raises(FetchFailedError) as info:
            _fetch(merged.served(), r, merged.client)
        assert info.value.map_index == 2 and info.value.reduce_index == r
        # a working merger still serves the slice whose map output is gone
        r = next(r for r in range(reducers) if merger_of(r, reducers, 2) == 1 and statuses[2].sizes[r])
        assert _fetch(merged.served(), r, merged.client) == _expected(records, r, reducers)
    finally:
        merged.close()


# ============================================================================ cluster
WORKERS = 6


def _conf(**settings: str) -> SparkConf:
    conf = (SparkConf().set("spark.log.level", "ERROR").set("spark.ui.showConsoleProgress", "false")
            .set("spark.ui.enabled", "false"))
    for key, value in settings.items():
        conf.set(key, value)
    return conf


def _data() -> list[tuple[int, tuple[int, int]]]:
    rng = random.Random(11)
    return [(rng.randrange(60), (i, rng.randrange(1000))) for i in range(3000)]


def _jobs(sc: SparkContext) -> dict[str, Any]:
    data = _data()
    rdd = sc.parallelize(data, 6)
    return {
        "distinct": sorted(rdd.map(lambda kv: kv[0] % 23).distinct(8).collect()),
        "reduce": sorted(rdd.mapValues(lambda v: v[1]).reduceByKey(lambda a, b: a + b, 9).collect()),
        "group": sorted(rdd.groupByKey(7).mapValues(list).collect()),
        "sort": rdd.map(lambda kv: (kv[1][1], kv[1][0])).sortByKey(numPartitions=8).collect(),
    }


def _plain() -> dict[str, Any]:
    data = _data()
    sums: dict[int, int] = defaultdict(int)
    groups: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for k, v in data:
        sums[k] += v[1]
        groups[k].append(v)  # parallelize keeps the order; map outputs are read in map order
    return {
        "distinct": sorted({k % 23 for k, _ in data}),
        "reduce": sorted(sums.items()),
        "group": sorted(groups.items()),
        "sort": sorted((v[1], v[0]) for _, v in data),
    }


def _shuffles_with_mergers(sc: SparkContext) -> dict[int, list[Any]]:
    tracker = sc._runtime.map_outputs
    return {sid: m for sid, m in tracker.mergers.items() if any(m)}


@pytest.fixture(scope="module")
def pull_reference() -> dict[str, Any]:
    """The jobs' results with push-based shuffle off (a plain pull shuffle)."""
    with SparkContext("local[3]", "pull-reference", conf=_conf(**{"spark.shuffle.push.enabled": "false"})) as sc:
        assert sc._runtime.push is None
        results = _jobs(sc)
        assert not _shuffles_with_mergers(sc)
    return results


@pytest.mark.timeout(90)
def test_cluster_shuffles_through_mergers(pull_reference: dict[str, Any], assert_no_child_processes: Any) -> None:
    plain = _plain()
    assert pull_reference == plain
    with SparkContext(f"local-cluster[{WORKERS},1,256]", "push-shuffle", conf=_conf()) as sc:
        runtime = sc._runtime
        wait_for(lambda: len(runtime.executors) == WORKERS, 30, "every executor")
        assert len({h.host for h in runtime.executors.values()}) == WORKERS
        results = _jobs(sc)
        assert results == plain
        assert results["group"] == pull_reference["group"]  # value lists in the same (map) order
        tracker = runtime.map_outputs
        with_mergers = _shuffles_with_mergers(sc)
        assert len(with_mergers) >= 4, tracker.mergers  # every shuffle of the jobs took mergers
        executors = {(eid, h.host, h.port) for eid, h in runtime.executors.items()}
        merged_somewhere = 0
        for sid, mergers in with_mergers.items():
            assert len(mergers) == 5 and len({m[1] for m in mergers}) == 5
            assert set(mergers) <= executors
            for status in tracker.outputs[sid]:
                assert status is not None and len(status.merged) in (0, len(status.sizes))
                assert all(at >= 0 for at, n in zip(status.merged, status.sizes) if n), status
                merged_somewhere += sum(1 for at in status.merged if at >= 0)
        assert merged_somewhere > 0
    assert_no_child_processes(allow_shared=False)


@pytest.mark.timeout(90)
def test_cluster_with_nothing_small_enough_to_push(pull_reference: dict[str, Any],
                                                   assert_no_child_processes: Any) -> None:
    conf = _conf(**{"spark.shuffle.push.maxBlockSizeToPush": "1"})
    with SparkContext(f"local-cluster[{WORKERS},1,256]", "push-nothing", conf=conf) as sc:
        runtime = sc._runtime
        wait_for(lambda: len(runtime.executors) == WORKERS, 30, "every executor")
        assert runtime.push is not None and runtime.push.max_block == 1
        assert _jobs(sc) == pull_reference
        tracker = runtime.map_outputs
        assert _shuffles_with_mergers(sc)  # mergers chosen, but no slice is one byte
        for sid in tracker.outputs:
            assert all(s is not None and s.merged == () for s in tracker.outputs[sid])
    assert_no_child_processes(allow_shared=False)


@pytest.mark.timeout(90)
def test_cluster_pushes_only_slices_within_the_limit_scaled_to_its_hosts(assert_no_child_processes: Any) -> None:
    # 6 hosts and 5 mergers: a 600-byte maxBlockSizeToPush becomes 500 bytes. One record a
    # slice, of a size set by its map task and reducer, so the slices run from about 30 to
    # over 900 bytes, on both sides of both limits (random bytes: compressing leaves them be).
    rng = random.Random(3)
    data = [(r, rng.randbytes(m * 40 + r * 27)) for m in range(WORKERS) for r in range(20)]
    groups: dict[int, list[bytes]] = defaultdict(list)
    for k, v in data:
        groups[k].append(v)  # in map order, as the reducer reads them
    conf = _conf(**{"spark.shuffle.push.maxBlockSizeToPush": "600"})
    with SparkContext(f"local-cluster[{WORKERS},1,256]", "push-limit", conf=conf) as sc:
        runtime = sc._runtime
        wait_for(lambda: len(runtime.executors) == WORKERS, 30, "every executor")
        rdd = sc.parallelize(data, WORKERS).groupByKey(20).mapValues(list)
        assert sorted(rdd.collect()) == sorted(groups.items())
        tracker = runtime.map_outputs
        (sid, mergers), = _shuffles_with_mergers(sc).items()
        assert len(mergers) == 5
        merged = unmerged = 0
        for status in tracker.outputs[sid]:
            assert status is not None and len(status.merged) == 20
            for at, size in zip(status.merged, status.sizes):
                assert (at >= 0) == (0 < size <= 500), (status.sizes, status.merged)
                merged += at >= 0
                unmerged += size > 500
        assert merged > 20 and unmerged > 20  # both kinds, many of each
    assert_no_child_processes(allow_shared=False)


@pytest.mark.timeout(120)
def test_cluster_loses_mergers_between_a_map_stage_and_its_reduce(assert_no_child_processes: Any) -> None:
    data = _data()
    expected = _plain()["group"]
    with SparkContext(f"local-cluster[{WORKERS},1,256]", "push-merger-lost", conf=_conf()) as sc:
        runtime = sc._runtime
        tracker = runtime.map_outputs
        wait_for(lambda: len(runtime.executors) == WORKERS, 30, "every executor")
        # three map outputs on three executors at most; five mergers: some hold no map output
        grouped = sc.parallelize(data, 3).groupByKey(8).mapValues(list)
        assert sorted(grouped.collect()) == expected
        (sid, chosen), = _shuffles_with_mergers(sc).items()
        mergers = list(chosen)  # the tracker's own list changes as mergers are lost
        assert all(m is not None for m in mergers)
        holders = {s.executor_id for s in tracker.outputs[sid]}
        assert any(at >= 0 for s in tracker.outputs[sid] for at in s.merged)

        # a merger that holds no map output: the reduce reads its slices from the map outputs
        victim = next(m for m in mergers if m[0] not in holders)
        pid = runtime.executors[victim[0]].pid
        os.kill(pid, signal.SIGKILL)
        assert sorted(grouped.collect()) == expected  # the same shuffle, read again
        wait_for(lambda: victim[0] in runtime.lost_executors, 30, "the driver to notice the loss")
        j = mergers.index(victim)
        assert tracker.mergers[sid][j] is None
        assert tracker.is_available(sid)
        assert sorted(grouped.collect()) == expected

        # a merger that also holds a map output (another holds the rest): that map task reruns
        victim2 = next(m for m in tracker.mergers[sid] if m is not None and m[0] in holders)
        assert holders - {victim2[0]}
        pid2 = runtime.executors[victim2[0]].pid
        os.kill(pid2, signal.SIGKILL)
        assert sorted(grouped.collect()) == expected
        wait_for(lambda: victim2[0] in runtime.lost_executors, 30, "the driver to notice the loss")
        assert tracker.mergers[sid][mergers.index(victim2)] is None
        assert sorted(grouped.collect()) == expected
        assert not pid_alive(pid) and not pid_alive(pid2)
    assert_no_child_processes(allow_shared=False)
