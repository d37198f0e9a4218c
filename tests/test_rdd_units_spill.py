"""The bounded-memory structures behind combineByKey and sortByKey, run in-process with a
budget so small that they spill every few records; results must equal plain Python's."""
from __future__ import annotations

import os
import random
from collections import defaultdict

import pytest

from sparkctl.rdd.dependencies import Aggregator
from sparkctl.storage.sizing import SizeTracker, deep_size
from sparkctl.storage.spill import ExternalAppendOnlyMap, ExternalSorter
from sparkctl.util.hashing import portable_hash

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
