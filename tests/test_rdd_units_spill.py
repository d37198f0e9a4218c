"""The bounded-memory structures behind combineByKey, sortByKey and the shuffle, run
in-process with a budget so small that they spill every few records (or with a resident
memory mark the process is past); results must equal plain Python's."""
from __future__ import annotations

import gc
import os
import random
import weakref
from collections import defaultdict

import pytest

from sparkctl import serializers
from sparkctl.errors import FetchFailedError
from sparkctl.rdd.dependencies import Aggregator, identity
from sparkctl.storage import shuffle, sizing
from sparkctl.storage.shuffle import MapStatus, PartitionedWriter, read_local_block, read_shuffle
from sparkctl.storage.sizing import SizeTracker, deep_size
from sparkctl.storage.spill import ExternalAppendOnlyMap, ExternalSorter
from sparkctl.util.hashing import portable_hash

@pytest.fixture(autouse=True)
def _frozen_session_heap():
    """Each spill runs a full collection (sizing.release_memory), cheap in an executor, whose
    start-up heap is frozen; here the heap is the whole test session's, which made these
    tests take 7-16 s each late in a full run (a second or less alone). Freeze it as an
    executor does; what a test makes is collected as usual."""
    gc.freeze()
    yield
    gc.unfreeze()


# -1 and -2 share CPython's hash (and so portable_hash): spilled runs merge by hash, and
# must still keep different keys with the same hash apart
KEYS = [-1, -2, 0, 1, "a", "b", "ü", "日本", None, (1, "x"), (None,), ("",), -(2 ** 61) + 1, 2 ** 70]


def records(n=4000, seed=0):
    rng = random.Random(seed)
    return [(rng.choice(KEYS) if rng.random() < 0.3 else rng.randrange(500), rng.randrange(100)) for _ in range(n)]


LIST_AGG = Aggregator(lambda v: [v], lambda c, v: c + [v], lambda a, b: a + b)
SUM_AGG = Aggregator(lambda v: v, lambda a, b: a + b, lambda a, b: a + b)


def test_hash_collision_keys_really_collide():
    assert portable_hash(-1) == portable_hash(-2)


@pytest.mark.parametrize("budget", [1, 10_000, 1 << 30])
def test_external_append_only_map(tmp_path, budget):
    data = records()
    amap = ExternalAppendOnlyMap(LIST_AGG, 0, str(tmp_path), batch_size=7)
    amap.budget = budget  # below the usual 1 MiB floor, to force spills
    amap.insert_values(data)
    if budget == 1:
        assert len(amap.spills) > 5
    if budget == 1 << 30:
        assert not amap.spills
    out = list(amap.items())
    ref = defaultdict(list)
    for k, v in data:
        ref[k].append(v)
    assert len(out) == len(ref)
    assert {k: sorted(v) for k, v in out} == {k: sorted(v) for k, v in ref.items()}
    amap.cleanup()
    assert [f for f in os.listdir(tmp_path) if f.startswith("spill-")] == []


def test_external_append_only_map_combiners(tmp_path):
    data = records(3000, seed=1)
    amap = ExternalAppendOnlyMap(SUM_AGG, 0, str(tmp_path), batch_size=10)
    amap.budget = 1
    half = len(data) // 2
    amap.insert_values(data[:half])
    amap.insert_combiners(data[half:])  # already-combined values merge with mergeCombiners
    ref = defaultdict(int)
    for k, v in data:
        ref[k] += v
    assert dict(amap.items()) == dict(ref)
    amap.cleanup()


@pytest.mark.parametrize("ascending", [True, False])
@pytest.mark.parametrize("budget", [1, 1 << 30])
def test_external_sorter(tmp_path, ascending, budget):
    rng = random.Random(2)
    data = [(rng.randrange(300), i) for i in range(5000)]
    sorter = ExternalSorter(lambda k: (k % 7, k), ascending, 0, str(tmp_path), batch_size=9)
    sorter.budget = budget
    sorter.insert_all(data)
    if budget == 1:
        assert len(sorter.spills) > 5
    out = list(sorter.sorted_records())
    # a stable sort, as list.sort: equal keys keep their arrival order, across spilled runs too
    assert out == sorted(data, key=lambda kv: (kv[0] % 7, kv[0]), reverse=not ascending)
    assert sorted(out) == sorted(data)
    sorter.cleanup()
    assert [f for f in os.listdir(tmp_path) if f.startswith("spill-")] == []


def test_size_tracking():
    assert deep_size([1, 2, 3]) > deep_size([])
    assert deep_size({"a": "x" * 1000}) > 1000
    items: list = []
    t = SizeTracker(lambda: deep_size(items))
    for i in range(1000):
        items.append(("key%d" % i, i))
        t.updates += 1
        if t.updates >= t.next_sample:
            t.sample()
    assert 0.5 * deep_size(items) < t.estimate() < 2 * deep_size(items)


# ---------------------------------------------------------------- real memory, not only estimates
@pytest.fixture
def rss_mark():
    """Set this process's resident-memory mark for one test (task slots set theirs at start)."""
    yield sizing.set_rss_limit
    sizing.set_rss_limit(None)


def test_rss_reads_this_process():
    now = sizing.rss()
    assert now is not None and now > 1 << 20
    blob = bytearray(64 << 20)  # touched pages are resident
    assert sizing.rss() > now + (32 << 20)
    del blob


@pytest.mark.parametrize("over", [False, True])
def test_map_spills_when_the_process_passes_its_mark(tmp_path, rss_mark, over):
    """The estimate stays under the budget; only the process's resident set says spill."""
    rss_mark(1 if over else None)  # every process is past a 1-byte mark
    amap = ExternalAppendOnlyMap(SUM_AGG, 16 << 20, str(tmp_path))
    data = [(i, i) for i in range(60_000)]  # a few MiB in a dict: under 16 MiB, over 1/8 of it
    amap.insert_values(data)
    assert bool(amap.spills) == over
    assert dict(amap.items()) == dict(data)
    amap.cleanup()


def test_a_small_collection_does_not_spill_for_the_process(tmp_path, rss_mark):
    """Past the mark, a collection holding less than an eighth of its budget keeps it: its
    spill would free nothing and only make tiny runs."""
    rss_mark(1)
    amap = ExternalAppendOnlyMap(SUM_AGG, 1 << 30, str(tmp_path))
    amap.insert_values((i, i) for i in range(20_000))
    assert not amap.spills
    amap.cleanup()


@pytest.fixture
def full_collections():
    """The generation-2 collections that run during one test."""
    seen: list[int] = []

    def watch(phase, info):
        if phase == "start" and info["generation"] == 2:
            seen.append(1)
    gc.callbacks.append(watch)
    yield seen
    gc.callbacks.remove(watch)
    sizing.hold_release(False)


@pytest.mark.timeout(10)
def test_held_free_pages_go_back_before_the_mark_counts_as_passed(rss_mark, full_collections):
    """A slot keeps a finished task's free pages while the next task follows at once; a
    collection that then finds the process past its mark hands them back first (a full
    collection and a heap trim) and spills only if it is still past the mark."""
    now = sizing.rss()
    assert now is not None
    rss_mark(now + (1 << 30))  # far above: nothing is handed back, the pages stay held
    sizing.hold_release()
    assert not sizing.over_rss_limit()
    assert sizing.release_held() and not full_collections
    rss_mark(1)  # past it: the held pages go back, and the process is still past its mark
    assert sizing.over_rss_limit()
    assert not sizing.release_held() and len(full_collections) == 1
    assert sizing.over_rss_limit() and len(full_collections) == 1  # handed back once, not at every sample


def test_writer_spills_when_the_process_passes_its_mark(tmp_path, rss_mark):
    rss_mark(1)
    writer = PartitionedWriter(3, lambda k: k % 3, 8 << 20, str(tmp_path), batch_size=100)
    data = [(i, "%06d" % i * 15) for i in range(60_000)]  # ~6 MiB pickled: under the budget
    writer.write_all(data)
    assert writer.spills
    data_path, index_path = str(tmp_path / "m.data"), str(tmp_path / "m.index")
    sizes = writer.commit(data_path, index_path)
    status = MapStatus("0", "here", 0, data_path, index_path, sizes)
    out = [rec for r in range(3) for rec in read_shuffle(0, r, [status], "here", None)]
    assert sorted(out) == sorted(data)


class Box:
    """A combiner that can be watched with a weak reference."""

    def __init__(self, v):
        self.v = v


def test_collections_are_freed_without_the_cyclic_collector(tmp_path):
    """A map or sort buffer dropped at task end goes at once: nothing in it refers back to
    its owner, which would leave it to the cyclic collector (rarely run in a task slot)."""
    agg = Aggregator(Box, lambda b, v: Box(b.v + v), lambda a, b: Box(a.v + b.v))
    amap = ExternalAppendOnlyMap(agg, 1 << 30, str(tmp_path))
    amap.insert_values([(i, i) for i in range(1000)])
    sorter = ExternalSorter(identity, True, 1 << 30, str(tmp_path))
    sorter.insert_all([(i, Box(i)) for i in range(1000)])
    watched = [weakref.ref(amap.map[7]), weakref.ref(sorter.buffer[7][1])]
    gc.disable()
    try:
        del amap, sorter
        assert [w() for w in watched] == [None, None]
    finally:
        gc.enable()


def test_merge_of_many_runs_goes_in_passes(tmp_path):
    data = records(6000, seed=3)
    amap = ExternalAppendOnlyMap(LIST_AGG, 0, str(tmp_path), batch_size=5)
    amap.budget = 1
    amap.insert_values(data)
    runs = len(amap.spills)
    assert runs > 20
    amap.budget = 400 << 10  # room to merge a few runs at a time (64 KiB of buffer each), not all
    out = dict(amap.items())  # the merge starts here
    assert 2 <= len(amap.spills) < runs
    assert sum(r.memory_to_merge() for r in amap.spills) <= amap.budget // 2 or len(amap.spills) <= 2
    ref = defaultdict(list)
    for k, v in data:
        ref[k].append(v)
    assert {k: sorted(v) for k, v in out.items()} == {k: sorted(v) for k, v in ref.items()}
    amap.cleanup()
    assert [f for f in os.listdir(tmp_path) if f.startswith("spill-")] == []


# ---------------------------------------------------------------- shuffle reads, streamed
def _map_output(tmp_path, data, reducers=2):
    writer = PartitionedWriter(reducers, lambda k: k % reducers, 1 << 30, str(tmp_path), batch_size=37)
    writer.write_all(data)
    data_path, index_path = str(tmp_path / "shuffle_0_0_0.data"), str(tmp_path / "shuffle_0_0_0.index")
    return MapStatus("0", "here", 0, data_path, index_path, writer.commit(data_path, index_path))


def _ranges(status, shuffle_id, reduce_index, offset, length):
    return read_local_block(status.data_path, status.index_path, reduce_index, offset, length)


@pytest.mark.parametrize("chunk", [3, 4096, 1 << 22])
def test_remote_reads_in_chunks_give_the_local_records(tmp_path, monkeypatch, chunk):
    data = [(i, "x" * (i % 300)) for i in range(3000)]
    status = _map_output(tmp_path, data)
    monkeypatch.setattr(shuffle, "FETCH_CHUNK", chunk)
    for r in range(2):
        local = list(read_shuffle(0, r, [status], "here", None))
        assert local == [kv for kv in data if kv[0] % 2 == r]
        assert list(read_shuffle(0, r, [status], "elsewhere", _ranges)) == local


@pytest.mark.parametrize("host", ["here", "elsewhere"])
def test_a_cut_map_output_is_a_fetch_failure(tmp_path, host):
    status = _map_output(tmp_path, [(i, "x" * 50) for i in range(3000)])
    with open(status.data_path, "r+b") as f:
        f.truncate(sum(status.sizes) - 10)
    list(read_shuffle(0, 0, [status], host, _ranges))  # the first slice is whole
    with pytest.raises(FetchFailedError):
        list(read_shuffle(0, 1, [status], host, _ranges))


@pytest.mark.parametrize("offset, length", [(-1, 10), (0, -5), ("0", 10), (0, 1.5)])
def test_block_ranges_are_checked(tmp_path, offset, length):
    status = _map_output(tmp_path, [(1, "x")])
    with pytest.raises(OSError):
        read_local_block(status.data_path, status.index_path, 1, offset, length)


@pytest.mark.parametrize("reducers", [1, 3])
def test_writer_keeps_every_batch(tmp_path, reducers):
    """Many batches to one reducer (a shuffle into a single partition) all arrive."""
    data = [(i, i) for i in range(2500)]
    writer = PartitionedWriter(reducers, lambda k: k % reducers, 1 << 30, str(tmp_path), batch_size=10)
    writer.write_all(data)
    data_path, index_path = str(tmp_path / "m.data"), str(tmp_path / "m.index")
    status = MapStatus("0", "here", 0, data_path, index_path, writer.commit(data_path, index_path))
    out = [rec for r in range(reducers) for rec in read_shuffle(0, r, [status], "here", None)]
    assert sorted(out) == data


def test_large_records_go_in_small_batches(tmp_path):
    """A batch of spark.shuffle.spill.batchSize records of 100 KiB would be 100 MiB: large
    records are batched by size instead, in the shuffle files and in spills."""
    data = [(i, str(i) * (100_000 // len(str(i)))) for i in range(300)]
    writer = PartitionedWriter(2, lambda k: k % 2, 1 << 30, str(tmp_path), batch_size=1000)
    writer.write_all(data)
    data_path, index_path = str(tmp_path / "m.data"), str(tmp_path / "m.index")
    sizes = writer.commit(data_path, index_path)
    with open(data_path, "rb") as f:
        batches = list(serializers.read_batches(f, sum(sizes)))
    assert max(len(serializers.dumps(b)) for b in batches) < 2 * sizing.BATCH_BYTES
    assert sorted(rec for b in batches for rec in b) == data
    sorter = ExternalSorter(identity, True, 0, str(tmp_path))
    sorter.budget = 1 << 30
    sorter.insert_all(data)
    sorter._spill()
    assert max(r.size // r.batches for r in sorter.spills) < 2 * sizing.BATCH_BYTES
    assert list(sorter.sorted_records()) == data
    sorter.cleanup()
