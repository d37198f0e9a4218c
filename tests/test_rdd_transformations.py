"""Narrow and shuffling transformations of single-element RDDs, checked against plain Python.

Where PySpark defines an order (how parallelize slices, glom, coalesce, zipWithIndex,
union, ...) the test checks that order; elsewhere results are compared as multisets.
"""
from __future__ import annotations

import random
from collections import Counter
from itertools import chain

import pytest

from sparkctl import TaskContext


def pyspark_slices(data, n):
    """How PySpark cuts a driver-side collection into ``n`` partitions.

    A ``range`` is cut by element position. Any other sequence is first grouped into
    pickled batches of ``max(1, min(len // n, 1024))`` elements, and the JVM cuts the list
    of *batches* by position, so uneven sizes put the extra batches at the end.
    """
    if isinstance(data, range):
        size = len(data)
        return [list(data[i * size // n:(i + 1) * size // n]) for i in range(n)]
    data = list(data)
    size = len(data)
    batch = max(1, min(size // n, 1024))
    batches = [data[i:i + batch] for i in range(0, size, batch)]
    nb = len(batches)
    return [list(chain.from_iterable(batches[i * nb // n:(i + 1) * nb // n])) for i in range(n)]


# ---------------------------------------------------------------------------- creation
def test_parallelize_glom_matches_pyspark_example(sc):
    assert sc.parallelize([1, 2, 3, 4, 5], 2).glom().collect() == [[1, 2], [3, 4, 5]]
    assert sc.parallelize([0, 2, 3, 4, 6], 5).glom().collect() == [[0], [2], [3], [4], [6]]
    assert sc.parallelize(range(0, 6, 2), 5).glom().collect() == [[], [0], [], [2], [4]]


@pytest.mark.parametrize("size", [0, 1, 5, 10, 17, 100, 2500])
@pytest.mark.parametrize("slices", [1, 2, 3, 4, 7])
def test_parallelize_slicing_like_pyspark(sc, size, slices):
    data = [f"x{i}" for i in range(size)]
    rdd = sc.parallelize(data, slices)
    assert rdd.getNumPartitions() == slices
    assert rdd.glom().collect() == pyspark_slices(data, slices)
    assert rdd.collect() == data


@pytest.mark.parametrize("r", [range(10), range(3, 50, 4), range(20, 0, -3), range(0), range(7)])
@pytest.mark.parametrize("slices", [1, 3, 4])
def test_parallelize_range_slicing(sc, r, slices):
    rdd = sc.parallelize(r, slices)
    assert rdd.glom().collect() == pyspark_slices(r, slices)


def test_parallelize_generator_and_default_slices(sc):
    rdd = sc.parallelize(x * x for x in range(9))
    assert rdd.getNumPartitions() == sc.defaultParallelism
    assert rdd.collect() == [x * x for x in range(9)]
    with pytest.raises(ValueError):
        sc.parallelize([1], 0)


@pytest.mark.parametrize("args", [(10,), (2, 11), (0, 20, 3), (10, 0, -2), (5, 5)])
def test_range(sc, args):
    assert sc.range(*args).collect() == list(range(*args))
    assert sc.range(*args, numSlices=3).getNumPartitions() == 3
    assert sc.range(*args, numSlices=3).glom().collect() == pyspark_slices(range(*args), 3)


def test_empty_rdd(sc):
    e = sc.emptyRDD()
    assert e.getNumPartitions() == 0
    assert e.collect() == []
    assert e.count() == 0
    assert e.isEmpty()
    assert e.map(lambda x: x).take(3) == []
    assert e.union(sc.parallelize([1, 2], 2)).collect() == [1, 2]
    with pytest.raises(ValueError):
        e.reduce(lambda a, b: a + b)
    with pytest.raises(ValueError):
        e.first()


# ---------------------------------------------------------------------------- narrow
DATA = list(range(-20, 57))


def test_map_flatmap_filter(sc):
    rdd = sc.parallelize(DATA, 4)
    assert rdd.map(lambda x: x * 3 - 1).collect() == [x * 3 - 1 for x in DATA]
    assert rdd.flatMap(lambda x: [x] * (x % 3)).collect() == [y for x in DATA for y in [x] * (x % 3)]
    assert rdd.flatMap(lambda x: range(x % 4)).collect() == [y for x in DATA for y in range(x % 4)]
    assert rdd.filter(lambda x: x % 5 == 2).collect() == [x for x in DATA if x % 5 == 2]
    # chained (fused) steps keep each one's own function
    chained = rdd
    for k in range(5):
        chained = chained.map(lambda x, k=k: x + k)
    assert chained.collect() == [x + 10 for x in DATA]


def test_glom_and_map_partitions(sc):
    rdd = sc.parallelize(DATA, 5)
    parts = pyspark_slices(DATA, 5)
    assert rdd.glom().collect() == parts
    assert rdd.mapPartitions(lambda it: [sum(it)]).collect() == [sum(p) for p in parts]
    assert rdd.mapPartitionsWithIndex(lambda i, it: [(i, len(list(it)))]).collect() == \
        [(i, len(p)) for i, p in enumerate(parts)]

    def gen(i, it):
        for x in it:
            yield i * 1000 + x
    assert rdd.mapPartitionsWithIndex(gen).collect() == [i * 1000 + x for i, p in enumerate(parts) for x in p]
    # a partition function may return any iterable, or a generator function's result
    assert rdd.mapPartitions(lambda it: (x for x in it if x > 0)).collect() == [x for x in DATA if x > 0]


def test_key_by_keys_values(sc):
    rdd = sc.parallelize(DATA, 3).keyBy(lambda x: x % 7)
    assert rdd.collect() == [(x % 7, x) for x in DATA]
    assert rdd.keys().collect() == [x % 7 for x in DATA]
    assert rdd.values().collect() == DATA


def test_distinct(sc):
    rng = random.Random(1)
    data = [rng.randrange(20) for _ in range(200)] + ["a", "b", "a", None, (1, 2), (1, 2)]
    rdd = sc.parallelize(data, 4)
    out = rdd.distinct().collect()
    assert len(out) == len(set(data))
    assert set(out) == set(data)
    assert rdd.distinct(3).getNumPartitions() == 3
    assert sorted(rdd.filter(lambda x: isinstance(x, int)).distinct(1).collect()) == \
        sorted({x for x in data if isinstance(x, int)})


def test_sample_is_seeded(sc):
    rdd = sc.parallelize(range(1000), 4)
    a = rdd.sample(False, 0.1, seed=42).collect()
    b = rdd.sample(False, 0.1, seed=42).collect()
    c = rdd.sample(False, 0.1, seed=43).collect()
    assert a == b
    assert a != c
    assert a == sorted(set(a)) and set(a) <= set(range(1000))
    assert 40 < len(a) < 180
    assert rdd.sample(False, 0.0, 1).collect() == []
    assert rdd.sample(False, 1.0, 1).collect() == list(range(1000))
    w = rdd.sample(True, 2.0, seed=7).collect()
    assert w == rdd.sample(True, 2.0, seed=7).collect()
    assert set(w) <= set(range(1000))
    assert 1500 < len(w) < 2500
    assert max(Counter(w).values()) > 1
    with pytest.raises(ValueError):
        rdd.sample(False, -0.5)


def _pyspark_partition_rng(seed, split):
    rng = random.Random(seed ^ split)
    for _ in range(10):
        rng.randint(0, 1)
    return rng


def test_sample_picks_what_pyspark_picks(sc):
    """PySpark's sampler: per partition, random.Random(seed ^ index) stirred ten times,
    one uniform draw per record kept when below the fraction."""
    data = list(range(300))
    rdd = sc.parallelize(data, 3)
    expected = []
    for i, part in enumerate(pyspark_slices(data, 3)):
        rng = _pyspark_partition_rng(17, i)
        expected.extend(x for x in part if rng.random() < 0.3)
    assert rdd.sample(False, 0.3, 17).collect() == expected


def test_random_split(sc):
    data = list(range(2000))
    rdd = sc.parallelize(data, 4)
    splits = rdd.randomSplit([1, 2, 7], seed=11)
    parts = [s.collect() for s in splits]
    assert sorted(chain.from_iterable(parts)) == data  # disjoint and covering
    for p in parts:
        assert p == sorted(p)  # each split keeps the parent's order
    sizes = [len(p) for p in parts]
    assert 100 < sizes[0] < 320 and 250 < sizes[1] < 550 and 1200 < sizes[2] < 1600
    assert [s.collect() for s in rdd.randomSplit([1, 2, 7], seed=11)] == parts
    with pytest.raises(ValueError):
        rdd.randomSplit([1, -1])
    with pytest.raises(ValueError):
        rdd.randomSplit([0, 0])


def test_union(sc):
    a = sc.parallelize([1, 2, 3], 2)
    b = sc.parallelize(["x", "y"], 3)
    u = a.union(b)
    assert u.collect() == [1, 2, 3, "x", "y"]
    assert u.getNumPartitions() == 5
    assert (a + b).collect() == u.collect()
    assert sc.union([a, b, a]).collect() == [1, 2, 3, "x", "y", 1, 2, 3]
    assert a.union(a).collect() == [1, 2, 3, 1, 2, 3]


def test_union_of_copartitioned_keeps_partitioner(sc):
    a = sc.parallelize([(i, i) for i in range(10)], 2).partitionBy(3)
    b = sc.parallelize([(i, -i) for i in range(5, 15)], 4).partitionBy(3)
    u = a.union(b)
    assert u.partitioner == a.partitioner
    assert u.getNumPartitions() == 3
    assert sorted(u.collect()) == sorted([(i, i) for i in range(10)] + [(i, -i) for i in range(5, 15)])
    for i, part in enumerate(u.glom().collect()):
        assert all(a.partitioner(k) == i for k, _ in part)


def test_intersection_subtract(sc):
    xs = [1, 10, 2, 3, 4, 5, 5, "a", None, (1, 2)]
    ys = [1, 6, 2, 3, 7, 8, 5, "a", "b", (1, 2), (2, 1)]
    a, b = sc.parallelize(xs, 3), sc.parallelize(ys, 2)
    inter = a.intersection(b).collect()
    assert len(inter) == len(set(inter))
    assert set(inter) == set(xs) & set(ys)
    assert Counter(a.subtract(b).collect()) == Counter(x for x in xs if x not in set(ys))
    assert Counter(b.subtract(a).collect()) == Counter(y for y in ys if y not in set(xs))
    assert a.subtract(b, 5).getNumPartitions() == 5


def test_cartesian(sc):
    a = sc.parallelize(range(7), 3)
    b = sc.parallelize("abcd", 2)
    c = a.cartesian(b)
    assert c.getNumPartitions() == 6
    out = c.collect()
    assert Counter(out) == Counter((x, y) for x in range(7) for y in "abcd")
    assert c.count() == 28
    assert a.cartesian(sc.emptyRDD()).collect() == []


def test_group_by(sc):
    data = list(range(50))
    out = sc.parallelize(data, 4).groupBy(lambda x: x % 6).collect()
    assert sorted((k, sorted(v)) for k, v in out) == \
        sorted((k, [x for x in data if x % 6 == k]) for k in range(6))
    assert sc.parallelize(data, 4).groupBy(lambda x: x % 6, 2).getNumPartitions() == 2
    custom = sc.parallelize(data, 4).groupBy(lambda x: x % 6, 3, partitionFunc=lambda k: k // 2)
    for i, part in enumerate(custom.glom().collect()):
        assert all(k // 2 % 3 == i for k, _ in part)


# ---------------------------------------------------------------------------- partitioning
def test_coalesce_groups_consecutive_partitions(sc):
    data = list(range(100))
    rdd = sc.parallelize(data, 10)
    parts = rdd.glom().collect()
    for n in (1, 3, 4, 7, 10):
        co = rdd.coalesce(n)
        assert co.getNumPartitions() == n
        expected = [list(chain.from_iterable(parts[i * 10 // n:(i + 1) * 10 // n])) for i in range(n)]
        assert co.glom().collect() == expected
        assert co.collect() == data
    # no shuffle cannot make more partitions
    assert rdd.coalesce(20).getNumPartitions() == 10
    assert rdd.coalesce(20).glom().collect() == parts
    with pytest.raises(ValueError):
        rdd.coalesce(0)


@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_repartition(sc, n):
    data = [f"r{i}" for i in range(300)]
    rdd = sc.parallelize(data, 4)
    re = rdd.repartition(n)
    assert re.getNumPartitions() == n
    parts = re.glom().collect()
    assert Counter(chain.from_iterable(parts)) == Counter(data)
    assert max(map(len, parts)) - min(map(len, parts)) <= 8  # spread round-robin, evenly
    assert Counter(rdd.coalesce(n, shuffle=True).collect()) == Counter(data)


def test_zip(sc):
    a = sc.parallelize(range(20), 3)
    b = a.map(lambda x: x * x)
    assert a.zip(b).collect() == [(x, x * x) for x in range(20)]
    assert sc.parallelize(["a", "b", "c"], 2).zip(sc.parallelize([1, 2, 3], 2)).collect() == \
        [("a", 1), ("b", 2), ("c", 3)]
    with pytest.raises(ValueError):
        a.zip(sc.parallelize(range(20), 4))
    with pytest.raises(Exception, match="same number of elements"):
        a.zip(a.filter(lambda x: x != 5)).collect()


def test_zip_with_index(sc):
    data = [chr(97 + i % 26) * (i % 3 + 1) for i in range(41)]
    for n in (1, 2, 5, 9):
        rdd = sc.parallelize(data, n)
        assert rdd.zipWithIndex().collect() == [(x, i) for i, x in enumerate(data)]
    filtered = sc.parallelize(range(100), 6).filter(lambda x: x % 7 in (1, 2))
    assert filtered.zipWithIndex().collect() == list(zip([x for x in range(100) if x % 7 in (1, 2)], range(100)))
    assert sc.emptyRDD().zipWithIndex().collect() == []


def test_zip_with_unique_id(sc):
    data = list(range(23))
    rdd = sc.parallelize(data, 4)
    parts = rdd.glom().collect()
    expected = [(x, i * 4 + k) for k, p in enumerate(parts) for i, x in enumerate(p)]
    out = rdd.zipWithUniqueId().collect()
    assert out == expected
    assert len({i for _, i in out}) == len(data)


def test_pipe(sc):
    rdd = sc.parallelize(["a", "bb", "ccc"], 2)
    assert rdd.pipe("cat").collect() == ["a", "bb", "ccc"]
    assert rdd.pipe("wc -l").map(lambda s: int(s.strip())).collect() == [len(p) for p in rdd.glom().collect()]


def test_task_context_inside_tasks(sc):
    assert TaskContext.get() is None
    rdd = sc.parallelize(range(12), 4)

    def info(i, it):
        tc = TaskContext.get()
        yield (i, tc.partitionId(), tc.stageId(), tc.attemptNumber(), tc.taskAttemptId(), len(list(it)))
    out = rdd.mapPartitionsWithIndex(info).collect()
    assert [o[0] for o in out] == [0, 1, 2, 3]
    assert all(o[0] == o[1] for o in out)
    assert len({o[2] for o in out}) == 1 and out[0][2] >= 0
    assert all(o[3] == 0 for o in out)
    assert len({o[4] for o in out}) == 4
    # a later job runs a later stage; the result stage after a shuffle has its own id
    stages = (rdd.map(lambda x: (x % 2, x)).reduceByKey(lambda a, b: a + b)
              .mapPartitions(lambda it: [TaskContext.get().stageId()]).collect())
    assert len(set(stages)) == 1 and stages[0] > out[0][2]
