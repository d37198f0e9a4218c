"""Key-value operations, each checked against a plain-Python reference.

Orders that PySpark does not define (the order of keys after a hash shuffle, of values
within a group) are compared as sorted lists or multisets; orders it does define
(sortByKey's global order, the partition a key lands in) are checked exactly.
"""
from __future__ import annotations

import operator
import random
from collections import Counter, defaultdict
from functools import reduce

import pytest

from sparkctl import portable_hash
from sparkctl.rdd.resultiterable import ResultIterable


def make_pairs(n=300, keys=17, seed=0):
    rng = random.Random(seed)
    return [(rng.randrange(keys), rng.randrange(1000)) for _ in range(n)]


PAIRS = make_pairs()
OTHER = make_pairs(120, 25, seed=1)


def grouped(pairs):
    g = defaultdict(list)
    for k, v in pairs:
        g[k].append(v)
    return g


def norm_groups(collected):
    return sorted((k, sorted(v)) for k, v in collected)


def ref_join(a, b):
    gb = grouped(b)
    return sorted((k, (v, w)) for k, v in a for w in gb.get(k, []))


def ref_left(a, b):
    gb = grouped(b)
    return sorted((k, (v, w)) for k, v in a for w in (gb.get(k) or [None]))


def ref_right(a, b):
    return sorted((k, (w, v)) for k, (v, w) in ref_left(b, a))


def ref_full(a, b):
    ga, gb = grouped(a), grouped(b)
    out = []
    for k in set(ga) | set(gb):
        for v in ga.get(k) or [None]:
            for w in gb.get(k) or [None]:
                out.append((k, (v, w)))
    return sorted(out, key=repr)


# ---------------------------------------------------------------------------- simple
def test_map_values_flat_map_values(sc):
    rdd = sc.parallelize(PAIRS, 4)
    assert rdd.mapValues(lambda v: v * 2).collect() == [(k, v * 2) for k, v in PAIRS]
    assert rdd.flatMapValues(lambda v: range(v % 3)).collect() == [(k, x) for k, v in PAIRS for x in range(v % 3)]
    part = rdd.partitionBy(3)
    assert part.mapValues(str).partitioner == part.partitioner
    assert part.flatMapValues(lambda v: [v]).partitioner == part.partitioner
    assert part.filter(lambda kv: kv[1] > 10).partitioner == part.partitioner
    assert part.map(lambda kv: kv).partitioner is None
    assert part.keys().partitioner is None


def test_reduce_by_key(sc):
    ref = defaultdict(int)
    for k, v in PAIRS:
        ref[k] += v
    for n in (None, 1, 3, 8):
        out = sc.parallelize(PAIRS, 4).reduceByKey(operator.add, n)
        assert sorted(out.collect()) == sorted(ref.items())
        assert out.getNumPartitions() == (4 if n is None else n)
    assert sc.parallelize([], 2).reduceByKey(operator.add).collect() == []


def test_reduce_by_key_places_keys_by_partition_func(sc):
    out = sc.parallelize(PAIRS, 4).reduceByKey(operator.add, 5, partitionFunc=lambda k: k * 7)
    for i, part in enumerate(out.glom().collect()):
        assert all((k * 7) % 5 == i for k, _ in part)
    default = sc.parallelize(PAIRS, 4).reduceByKey(operator.add, 5)
    for i, part in enumerate(default.glom().collect()):
        assert all(portable_hash(k) % 5 == i for k, _ in part)


def test_reduce_by_key_locally(sc):
    ref = defaultdict(int)
    for k, v in PAIRS:
        ref[k] += v
    assert sc.parallelize(PAIRS, 4).reduceByKeyLocally(operator.add) == dict(ref)
    assert sc.parallelize([], 3).reduceByKeyLocally(operator.add) == {}


def test_fold_by_key(sc):
    ref = defaultdict(int)
    for k, v in PAIRS:
        ref[k] += v
    out = sc.parallelize(PAIRS, 3).foldByKey(0, operator.add).collect()
    assert sorted(out) == sorted(ref.items())
    # a mutable zero is copied for every key
    lists = sc.parallelize(PAIRS, 3).foldByKey([], lambda a, b: a + (b if isinstance(b, list) else [b]))
    assert norm_groups(lists.collect()) == norm_groups(grouped(PAIRS).items())


def test_fold_and_aggregate_by_key_zero_once_per_key_and_partition(sc):
    """The zero value is folded in once per key in each map partition (PySpark's
    map-side combine), which a non-neutral zero makes visible."""
    rdd = sc.parallelize(PAIRS, 4)
    ref = defaultdict(int)
    for part in rdd.glom().collect():
        for k, vs in grouped(part).items():
            ref[k] += reduce(operator.add, vs, 1000)
    assert sorted(rdd.foldByKey(1000, operator.add).collect()) == sorted(ref.items())
    assert sorted(rdd.aggregateByKey(1000, operator.add, operator.add).collect()) == sorted(ref.items())


def test_aggregate_by_key(sc):
    rdd = sc.parallelize(PAIRS, 4)
    out = rdd.aggregateByKey((0, 0), lambda acc, v: (acc[0] + v, acc[1] + 1),
                             lambda a, b: (a[0] + b[0], a[1] + b[1]), 3)
    assert out.getNumPartitions() == 3
    ref = {k: (sum(vs), len(vs)) for k, vs in grouped(PAIRS).items()}
    assert dict(out.collect()) == ref
    sets = rdd.aggregateByKey(set(), lambda s, v: s | {v % 10}, lambda a, b: a | b).collectAsMap()
    assert sets == {k: {v % 10 for v in vs} for k, vs in grouped(PAIRS).items()}
    # functions that mutate the zero in place: every key gets its own copy of it
    lists = rdd.aggregateByKey([], lambda acc, v: acc.append(v) or acc, lambda a, b: a.extend(b) or a)
    assert norm_groups(lists.collect()) == norm_groups(grouped(PAIRS).items())
    folded = rdd.foldByKey([], lambda a, b: (a.extend(b) if isinstance(b, list) else a.append(b)) or a)
    assert norm_groups(folded.collect()) == norm_groups(grouped(PAIRS).items())


def test_combine_by_key(sc):
    out = sc.parallelize(PAIRS, 5).combineByKey(
        lambda v: [v], lambda c, v: c + [v], lambda a, b: a + b, numPartitions=2)
    assert out.getNumPartitions() == 2
    assert norm_groups(out.collect()) == norm_groups(grouped(PAIRS).items())
    mean = sc.parallelize(PAIRS, 5).combineByKey(
        lambda v: (v, 1), lambda c, v: (c[0] + v, c[1] + 1), lambda a, b: (a[0] + b[0], a[1] + b[1]))
    assert dict(mean.mapValues(lambda c: c[0] / c[1]).collect()) == \
        {k: sum(vs) / len(vs) for k, vs in grouped(PAIRS).items()}


def test_group_by_key(sc):
    out = sc.parallelize(PAIRS, 4).groupByKey()
    collected = out.collect()
    assert all(isinstance(v, ResultIterable) for _, v in collected)
    assert norm_groups((k, list(v)) for k, v in collected) == norm_groups(grouped(PAIRS).items())
    assert all(len(v) == len(grouped(PAIRS)[k]) for k, v in collected)
    assert sc.parallelize(PAIRS, 4).groupByKey(7).getNumPartitions() == 7
    assert sorted(sc.parallelize(PAIRS, 4).groupByKey().mapValues(len).collect()) == \
        sorted((k, len(v)) for k, v in grouped(PAIRS).items())


def test_count_by_key_and_collect_as_map(sc):
    rdd = sc.parallelize(PAIRS, 3)
    assert dict(rdd.countByKey()) == dict(Counter(k for k, _ in PAIRS))
    assert rdd.collectAsMap() == dict(PAIRS)  # the last value of each key wins, as dict() does
    assert sc.parallelize([(1, 2), (3, 4)], 2).collectAsMap() == {1: 2, 3: 4}


def test_lookup(sc):
    rdd = sc.parallelize(PAIRS, 4)
    g = grouped(PAIRS)
    for k in (0, 5, 16, 99):
        assert rdd.lookup(k) == [v for kk, v in PAIRS if kk == k]
    part = rdd.partitionBy(3).cache()
    for k in (0, 5, 16, 99):
        assert sorted(part.lookup(k)) == sorted(g.get(k, []))
    reduced = rdd.reduceByKey(operator.add)
    assert reduced.lookup(3) == [sum(g[3])]
    part.unpersist()
    ordered = rdd.sortByKey(numPartitions=4)
    assert ordered.partitioner is not None
    for k in (0, 5, 16, 99, -3):
        assert sorted(ordered.lookup(k)) == sorted(g.get(k, []))
    assert sc.parallelize([("a", 1)], 2).lookup("b") == []


# ---------------------------------------------------------------------------- sorting
@pytest.mark.parametrize("n", [None, 1, 2, 5, 9])
def test_sort_by_key(sc, n):
    rng = random.Random(3)
    data = [(rng.randrange(-500, 500), i) for i in range(400)]
    rdd = sc.parallelize(data, 4)
    asc = rdd.sortByKey(True, n)
    assert asc.getNumPartitions() == (4 if n is None else n)
    out = asc.collect()
    assert [k for k, _ in out] == sorted(k for k, _ in data)
    assert sorted(out) == sorted(data)
    desc = rdd.sortByKey(False, n).collect()
    assert [k for k, _ in desc] == sorted((k for k, _ in data), reverse=True)
    keyed = rdd.sortByKey(True, n, keyfunc=lambda k: (k % 10, -k)).collect()
    assert [k for k, _ in keyed] == sorted((k for k, _ in data), key=lambda k: (k % 10, -k))
    # each partition holds one contiguous range of the order
    parts = rdd.sortByKey(True, n).glom().collect()
    flat = [k for p in parts for k, _ in p]
    assert flat == sorted(flat)


def test_sort_by_key_strings_and_small_inputs(sc):
    words = "the quick brown fox jumps over the lazy dog évidemment 日本 Ωmega".split()
    pairs = [(w, i) for i, w in enumerate(words)]
    assert [k for k, _ in sc.parallelize(pairs, 3).sortByKey(numPartitions=4).collect()] == sorted(words)
    assert [k for k, _ in sc.parallelize(pairs, 3).sortByKey(False, 2, keyfunc=str.lower).collect()] == \
        sorted(words, key=str.lower, reverse=True)
    assert sc.parallelize([], 3).sortByKey().collect() == []
    assert sc.parallelize([(1, "a")], 3).sortByKey(numPartitions=3).collect() == [(1, "a")]
    assert sc.parallelize([(2, 0)] * 10 + [(1, 0)], 2).sortByKey(numPartitions=3).keys().collect() == [1] + [2] * 10


def test_sort_by(sc):
    rng = random.Random(4)
    data = [rng.random() for _ in range(250)]
    rdd = sc.parallelize(data, 5)
    assert rdd.sortBy(lambda x: x).collect() == sorted(data)
    assert rdd.sortBy(lambda x: x, ascending=False, numPartitions=3).collect() == sorted(data, reverse=True)
    assert rdd.sortBy(lambda x: abs(x - 0.5), numPartitions=1).collect() == sorted(data, key=lambda x: abs(x - 0.5))
    tuples = sc.parallelize([("a", 3), ("b", 1), ("c", 2)], 2)
    assert tuples.sortBy(lambda t: t[1]).collect() == [("b", 1), ("c", 2), ("a", 3)]


@pytest.mark.parametrize("ascending", [True, False])
def test_repartition_and_sort_within_partitions(sc, ascending):
    rng = random.Random(5)
    data = [(rng.randrange(100), rng.randrange(100)) for _ in range(300)]
    out = sc.parallelize(data, 4).repartitionAndSortWithinPartitions(3, lambda k: k % 3, ascending)
    assert out.getNumPartitions() == 3
    parts = out.glom().collect()
    for i, p in enumerate(parts):
        keys = [k for k, _ in p]
        assert all(k % 3 == i for k in keys)
        assert keys == sorted(keys, reverse=not ascending)
        assert sorted(p) == sorted(kv for kv in data if kv[0] % 3 == i)
    custom = sc.parallelize(data, 4).repartitionAndSortWithinPartitions(2, keyfunc=lambda k: -k)
    for i, p in enumerate(custom.glom().collect()):
        assert all(portable_hash(k) % 2 == i for k, _ in p)
        assert [k for k, _ in p] == sorted((k for k, _ in p), reverse=True)


# ---------------------------------------------------------------------------- partitioning
def test_partition_by(sc):
    rdd = sc.parallelize(PAIRS, 4)
    p = rdd.partitionBy(5)
    assert p.getNumPartitions() == 5
    assert p.partitioner is not None and p.partitioner.numPartitions == 5
    parts = p.glom().collect()
    for i, part in enumerate(parts):
        assert all(portable_hash(k) % 5 == i for k, _ in part)
    assert Counter(kv for part in parts for kv in part) == Counter(PAIRS)
    custom = rdd.partitionBy(3, lambda k: k)
    assert [sorted(p) for p in custom.glom().collect()] == \
        [sorted(kv for kv in PAIRS if kv[0] % 3 == i) for i in range(3)]


def _shuffles(rdd):
    return rdd.toDebugString().decode().count("+-")


def test_no_second_shuffle_when_already_partitioned(sc):
    p = sc.parallelize(PAIRS, 4).partitionBy(4)
    assert _shuffles(p) == 1
    assert p.partitionBy(4) is p
    assert _shuffles(p.partitionBy(3)) == 2
    for derived in (p.reduceByKey(operator.add, 4), p.groupByKey(4), p.foldByKey(0, operator.add, 4),
                    p.aggregateByKey(0, operator.add, operator.add, 4),
                    p.combineByKey(lambda v: v, operator.add, operator.add, 4), p.mapValues(abs).reduceByKey(max, 4)):
        assert _shuffles(derived) == 1, derived.toDebugString().decode()
        assert derived.partitioner == p.partitioner
    assert _shuffles(p.reduceByKey(operator.add, 5)) == 2
    assert _shuffles(p.map(lambda kv: kv).reduceByKey(operator.add, 4)) == 2
    ref = defaultdict(int)
    for k, v in PAIRS:
        ref[k] += v
    assert sorted(p.reduceByKey(operator.add, 4).collect()) == sorted(ref.items())
    # joins of two RDDs with the same partitioner need no new shuffle of either side
    q = sc.parallelize(OTHER, 3).partitionBy(4)
    joined = p.join(q, 4)
    assert _shuffles(joined) == 2  # one below each side
    assert sorted(joined.collect()) == ref_join(PAIRS, OTHER)
    default = p.leftOuterJoin(q)  # the union of co-partitioned sides keeps their partitioner
    assert default.getNumPartitions() == 4 and _shuffles(default) == 2
    assert sorted(default.collect(), key=repr) == sorted(ref_left(PAIRS, OTHER), key=repr)
    assert _shuffles(p.cogroup(q)) == 2 and _shuffles(p.cogroup(q, 5)) == 3


# ---------------------------------------------------------------------------- joins
def test_join_variants(sc):
    a = sc.parallelize(PAIRS, 3)
    b = sc.parallelize(OTHER, 2)
    assert sorted(a.join(b).collect()) == ref_join(PAIRS, OTHER)
    assert sorted(a.leftOuterJoin(b).collect(), key=repr) == sorted(ref_left(PAIRS, OTHER), key=repr)
    assert sorted(a.rightOuterJoin(b).collect(), key=repr) == sorted(ref_right(PAIRS, OTHER), key=repr)
    assert sorted(a.fullOuterJoin(b).collect(), key=repr) == ref_full(PAIRS, OTHER)
    # by default a join has as many partitions as both sides together, as in PySpark
    assert a.join(b).getNumPartitions() == 5
    assert a.join(b, 7).getNumPartitions() == 7


def test_join_pyspark_examples(sc):
    x = sc.parallelize([("a", 1), ("b", 4)])
    y = sc.parallelize([("a", 2), ("a", 3)])
    assert sorted(x.join(y).collect()) == [("a", (1, 2)), ("a", (1, 3))]
    assert sorted(x.leftOuterJoin(y).collect()) == [("a", (1, 2)), ("a", (1, 3)), ("b", (4, None))]
    assert sorted(y.rightOuterJoin(x).collect()) == [("a", (2, 1)), ("a", (3, 1)), ("b", (None, 4))]
    y2 = sc.parallelize([("a", 2), ("c", 8)])
    assert sorted(x.fullOuterJoin(y2).collect()) == [("a", (1, 2)), ("b", (4, None)), ("c", (None, 8))]
    assert x.join(sc.emptyRDD()).collect() == []


def test_cogroup_and_group_with(sc):
    a = sc.parallelize(PAIRS, 3)
    b = sc.parallelize(OTHER, 2)
    ga, gb = grouped(PAIRS), grouped(OTHER)
    out = a.cogroup(b).collect()
    assert all(isinstance(v, tuple) and all(isinstance(i, ResultIterable) for i in v) for _, v in out)
    assert sorted((k, sorted(v1), sorted(v2)) for k, (v1, v2) in out) == \
        sorted((k, sorted(ga.get(k, [])), sorted(gb.get(k, []))) for k in set(ga) | set(gb))
    assert a.cogroup(b, 3).getNumPartitions() == 3
    c = sc.parallelize([(k, str(k)) for k in range(30, 40)], 2)
    gw = a.groupWith(b, c).collect()
    assert sorted((k, tuple(sorted(map(str, vs)) for vs in v)) for k, v in gw) == sorted(
        (k, (sorted(map(str, ga.get(k, []))), sorted(map(str, gb.get(k, []))), [str(k)] if 30 <= k < 40 else []))
        for k in set(ga) | set(gb) | set(range(30, 40)))
    assert all(len(v) == 3 for _, v in gw)
    two = a.groupWith(b).mapValues(lambda vs: tuple(sorted(x) for x in vs)).collect()
    assert sorted(two) == sorted((k, (sorted(ga.get(k, [])), sorted(gb.get(k, [])))) for k in set(ga) | set(gb))


def test_subtract_by_key(sc):
    a = sc.parallelize(PAIRS, 3)
    b = sc.parallelize([(k, None) for k in range(0, 17, 3)], 2)
    keys = set(range(0, 17, 3))
    assert sorted(a.subtractByKey(b).collect()) == sorted(kv for kv in PAIRS if kv[0] not in keys)
    assert a.subtractByKey(b, 4).getNumPartitions() == 4
