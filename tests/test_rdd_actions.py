"""Actions: each result compared with the same computation in plain Python."""
from __future__ import annotations

import bisect
import math
import operator
import random
import statistics
from collections import Counter
from functools import reduce

import pytest

from sparkctl import StatCounter

_RNG = random.Random(5)
NUMS = [_RNG.uniform(-100, 100) for _ in range(333)]
INTS = [_RNG.randrange(-50, 1000) for _ in range(257)]


def test_collect_count(sc):
    for n in (1, 2, 7):
        rdd = sc.parallelize(INTS, n)
        assert rdd.collect() == INTS
        assert rdd.count() == len(INTS)
        assert rdd.filter(lambda x: x > 500).count() == sum(1 for x in INTS if x > 500)
    assert sc.parallelize([], 3).count() == 0


def test_count_approx(sc):
    rdd = sc.parallelize(INTS, 4)
    approx = rdd.countApprox(1000)
    assert isinstance(approx, int)
    assert approx == len(INTS)
    assert rdd.countApprox(1000, 0.5) == len(INTS)


def test_to_local_iterator(sc):
    assert list(sc.parallelize(INTS, 5).toLocalIterator()) == INTS


def test_first_take(sc):
    data = list(range(100))
    for n in (1, 3, 10, 50):
        rdd = sc.parallelize(data, n)
        assert rdd.first() == 0
        for k in (0, 1, 5, 37, 99, 100, 150):
            assert rdd.take(k) == data[:k]
    # data skewed into the last partitions: take must keep scanning, in partition order
    sparse = sc.parallelize(data, 20).filter(lambda x: x > 80)
    assert sparse.take(3) == [81, 82, 83]
    assert sparse.take(30) == [x for x in data if x > 80]
    assert sparse.first() == 81
    with pytest.raises(ValueError):
        sc.parallelize([], 4).first()
    assert sc.parallelize([], 4).take(5) == []


def test_take_on_ordered_data(sc):
    words = [f"w{random.Random(i).randrange(10 ** 6):07d}" for i in range(200)]
    ordered = sc.parallelize(words, 6).sortBy(lambda w: w, numPartitions=4)
    assert ordered.take(25) == sorted(words)[:25]
    assert ordered.first() == min(words)
    desc = sc.parallelize(words, 6).sortBy(lambda w: w, ascending=False, numPartitions=5)
    assert desc.take(40) == sorted(words, reverse=True)[:40]


def test_is_empty(sc):
    assert sc.parallelize([], 3).isEmpty()
    assert sc.emptyRDD().isEmpty()
    assert not sc.parallelize([1], 3).isEmpty()
    assert sc.parallelize(range(10), 3).filter(lambda x: x > 100).isEmpty()
    assert not sc.parallelize(range(10), 5).filter(lambda x: x == 9).isEmpty()


def test_take_ordered_and_top(sc):
    rdd = sc.parallelize(INTS, 4)
    for k in (0, 1, 10, 300):
        assert rdd.takeOrdered(k) == sorted(INTS)[:k]
        assert rdd.takeOrdered(k, key=lambda x: -x) == sorted(INTS, key=lambda x: -x)[:k]
        assert rdd.top(k) == sorted(INTS, reverse=True)[:k]
        assert rdd.top(k, key=lambda x: x % 17) == sorted(INTS, key=lambda x: x % 17, reverse=True)[:k]
    assert sc.parallelize([10, 4, 2, 12, 3], 2).top(1) == [12]
    assert sc.parallelize("ba_c", 2).takeOrdered(2) == ["_", "a"]
    assert sc.emptyRDD().top(3) == [] and sc.emptyRDD().takeOrdered(3) == []
    with pytest.raises(ValueError):
        rdd.top(-1)
    with pytest.raises(ValueError):
        rdd.takeOrdered(-1)


def test_take_sample(sc):
    data = list(range(500))
    rdd = sc.parallelize(data, 4)
    s = rdd.takeSample(False, 20, seed=3)
    assert len(s) == 20 and len(set(s)) == 20 and set(s) <= set(data)
    assert rdd.takeSample(False, 20, seed=3) == s
    assert rdd.takeSample(False, 20, seed=4) != s
    everything = rdd.takeSample(False, 800, seed=1)
    assert sorted(everything) == data
    w = rdd.takeSample(True, 700, seed=9)
    assert len(w) == 700 and set(w) <= set(data)
    assert rdd.takeSample(True, 700, seed=9) == w
    assert rdd.takeSample(False, 0) == []
    assert sc.parallelize([], 2).takeSample(True, 5, 1) == []
    with pytest.raises(ValueError):
        rdd.takeSample(False, -1)


def test_reduce_fold_aggregate(sc):
    for n in (1, 3, 8):
        rdd = sc.parallelize(INTS, n)
        assert rdd.reduce(operator.add) == sum(INTS)
        assert rdd.reduce(max) == max(INTS)
        assert rdd.fold(0, operator.add) == sum(INTS)
        assert rdd.aggregate((0, 0), lambda acc, x: (acc[0] + x, acc[1] + 1),
                             lambda a, b: (a[0] + b[0], a[1] + b[1])) == (sum(INTS), len(INTS))
        # a mutable zero: every partition must start from its own copy
        assert sorted(rdd.aggregate([], lambda acc, x: acc + [x] if x < 0 else acc,
                                    lambda a, b: a + b)) == sorted(x for x in INTS if x < 0)
        assert sorted(rdd.aggregate([], lambda acc, x: (acc.append(x) if x < 0 else None) or acc,
                                    lambda a, b: a.extend(b) or a)) == sorted(x for x in INTS if x < 0)
        assert sorted(rdd.fold([], lambda a, b: (a.extend(b) if isinstance(b, list) else a.append(b)) or a)) == \
            sorted(INTS)
    with pytest.raises(ValueError):
        sc.parallelize([], 2).reduce(operator.add)
    assert sc.parallelize([], 2).fold(0, operator.add) == 0
    assert sc.parallelize([5], 3).reduce(operator.add) == 5


def test_fold_and_aggregate_apply_zero_per_partition(sc):
    """PySpark folds each partition from zeroValue and then the partition results from
    zeroValue again, so a non-neutral zero counts (partitions + 1) times."""
    for n in (1, 2, 5):
        rdd = sc.parallelize(range(10), n)
        parts = rdd.glom().collect()
        expected = reduce(operator.add, [reduce(operator.add, p, 1) for p in parts], 1)
        assert rdd.fold(1, operator.add) == expected
        assert rdd.aggregate(1, operator.add, operator.add) == expected


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
@pytest.mark.parametrize("n", [1, 2, 9, 30])
def test_tree_reduce_and_aggregate(sc, n, depth):
    rdd = sc.parallelize(INTS, n)
    assert rdd.treeReduce(operator.add, depth) == sum(INTS)
    assert rdd.treeReduce(min, depth) == min(INTS)
    assert rdd.treeAggregate(0, operator.add, operator.add, depth) == sum(INTS)
    assert rdd.treeAggregate((0, 0), lambda acc, x: (acc[0] + x, acc[1] + 1),
                             lambda a, b: (a[0] + b[0], a[1] + b[1]), depth) == (sum(INTS), len(INTS))
    # like PySpark, the zero value enters once per partition, and the partial results are
    # then combined without it
    parts = rdd.glom().collect()
    assert rdd.treeAggregate(1, operator.add, operator.add, depth) == sum(INTS) + len(parts)


def test_tree_reduce_errors(sc):
    with pytest.raises(ValueError):
        sc.parallelize([], 3).treeReduce(operator.add)
    with pytest.raises(ValueError):
        sc.parallelize([1], 3).treeReduce(operator.add, 0)
    with pytest.raises(ValueError):
        sc.parallelize([1], 3).treeAggregate(0, operator.add, operator.add, 0)
    assert sc.emptyRDD().treeAggregate(7, operator.add, operator.add) == 7
    assert sc.parallelize([4], 6).treeReduce(operator.add) == 4


def test_sum_mean_min_max(sc):
    rdd = sc.parallelize(NUMS, 5)
    assert rdd.sum() == pytest.approx(sum(NUMS))
    assert rdd.mean() == pytest.approx(statistics.fmean(NUMS))
    assert rdd.max() == max(NUMS) and rdd.min() == min(NUMS)
    assert rdd.max(key=abs) == max(NUMS, key=abs) and rdd.min(key=abs) == min(NUMS, key=abs)
    assert sc.parallelize(INTS, 3).sum() == sum(INTS)
    assert sc.parallelize([], 3).sum() == 0
    words = sc.parallelize(["pear", "fig", "banana"], 2)
    assert words.max() == "pear" and words.min(key=len) == "fig"


def test_stats_family(sc):
    rdd = sc.parallelize(NUMS, 4)
    st = rdd.stats()
    assert isinstance(st, StatCounter)
    assert st.count() == len(NUMS)
    assert st.mean() == pytest.approx(statistics.fmean(NUMS))
    assert st.sum() == pytest.approx(sum(NUMS))
    assert st.min() == min(NUMS) and st.max() == max(NUMS)
    assert st.variance() == pytest.approx(statistics.pvariance(NUMS))
    assert st.stdev() == pytest.approx(statistics.pstdev(NUMS))
    assert st.sampleVariance() == pytest.approx(statistics.variance(NUMS))
    assert st.sampleStdev() == pytest.approx(statistics.stdev(NUMS))
    assert rdd.variance() == pytest.approx(statistics.pvariance(NUMS))
    assert rdd.stdev() == pytest.approx(statistics.pstdev(NUMS))
    assert rdd.sampleVariance() == pytest.approx(statistics.variance(NUMS))
    assert rdd.sampleStdev() == pytest.approx(statistics.stdev(NUMS))
    d = st.asDict()  # PySpark's asDict(): the sample variance unless sample=True
    assert d["count"] == len(NUMS) and d["variance"] == pytest.approx(statistics.variance(NUMS))
    assert st.asDict(sample=True)["stdev"] == pytest.approx(statistics.pstdev(NUMS))
    one = sc.parallelize([3.0], 3).stats()
    assert one.count() == 1 and one.variance() == 0.0 and math.isnan(one.sampleVariance())
    empty = sc.parallelize([], 2).stats()
    assert empty.count() == 0 and math.isnan(empty.variance())


def test_stat_counter():
    rng = random.Random(8)
    xs = [rng.gauss(3, 10) for _ in range(1000)]
    ys = [rng.gauss(-40, 2) for _ in range(13)]
    a = StatCounter(xs)
    assert a.count() == 1000
    assert a.mean() == pytest.approx(statistics.fmean(xs))
    assert a.variance() == pytest.approx(statistics.pvariance(xs))
    merged = StatCounter(xs).mergeStats(StatCounter(ys))
    ref = xs + ys
    assert merged.count() == len(ref)
    assert merged.mean() == pytest.approx(statistics.fmean(ref))
    assert merged.sampleVariance() == pytest.approx(statistics.variance(ref))
    assert merged.min() == min(ref) and merged.max() == max(ref)
    # merging either way round, and merging an empty counter, give the same statistics
    other = StatCounter(ys).mergeStats(StatCounter(xs))
    assert other.mean() == pytest.approx(merged.mean()) and other.variance() == pytest.approx(merged.variance())
    assert StatCounter().mergeStats(StatCounter(xs)).variance() == pytest.approx(a.variance())
    assert StatCounter(xs).mergeStats(StatCounter()).mean() == pytest.approx(a.mean())
    s = StatCounter([1.0, 2.0])
    s.mergeStats(s)
    assert s.count() == 4 and s.mean() == pytest.approx(1.5)
    c = s.copy()
    c.merge(100.0)
    assert s.count() == 4 and c.count() == 5 and c.max() == 100.0
    assert "count: 4" in repr(s)


def _hist_reference(values, buckets):
    counts = [0] * (len(buckets) - 1)
    for x in values:
        if x is None or (isinstance(x, float) and math.isnan(x)) or x < buckets[0] or x > buckets[-1]:
            continue
        i = min(bisect.bisect_right(buckets, x) - 1, len(counts) - 1)
        counts[i] += 1
    return counts


def test_histogram_explicit_buckets(sc):
    data = list(range(51))
    rdd = sc.parallelize(data, 3)
    for buckets in ([0, 5, 25, 50], [0, 15, 30, 45, 60], [-10, 0, 10], [10, 20.5, 49.9], [0, 50]):
        b, counts = rdd.histogram(buckets)
        assert list(b) == buckets
        assert counts == _hist_reference(data, buckets)
    assert rdd.histogram([0, 5, 25, 50]) == ([0, 5, 25, 50], [5, 20, 26])
    strings = sc.parallelize(["ab", "ac", "b", "bd", "ef"], 2)
    assert strings.histogram(("a", "b", "c")) == (("a", "b", "c"), [2, 2])
    floats = sc.parallelize(NUMS + [None, float("nan")], 4)
    assert floats.histogram([-100, -10, 0, 33.3, 100])[1] == _hist_reference(NUMS, [-100, -10, 0, 33.3, 100])
    for bad in ([1], [3, 1, 2], [1, 1, 2], [0, None, 2], [0, float("nan")]):
        with pytest.raises(ValueError):
            rdd.histogram(bad)


def test_histogram_bucket_count(sc):
    rdd = sc.parallelize(range(51), 4)
    assert rdd.histogram(2) == ([0, 25, 50], [25, 26])
    for n in (1, 3, 7, 10):
        buckets, counts = rdd.histogram(n)
        assert len(buckets) == n + 1 and buckets[0] == 0 and buckets[-1] == 50
        assert counts == _hist_reference(range(51), buckets)
        assert sum(counts) == 51
    buckets, counts = sc.parallelize(NUMS + [None, float("nan")], 3).histogram(6)
    assert buckets[0] == min(NUMS) and buckets[-1] == max(NUMS)
    assert buckets == pytest.approx([min(NUMS) + i * (max(NUMS) - min(NUMS)) / 6 for i in range(7)])
    assert sum(counts) == len(NUMS)
    assert sc.parallelize([4, 4, 4], 2).histogram(3) == ([4, 4], [3])
    with pytest.raises(ValueError):
        sc.parallelize([], 2).histogram(3)
    with pytest.raises(ValueError):
        rdd.histogram(0)
    with pytest.raises(ValueError):
        sc.parallelize([1.0, float("inf")], 2).histogram(2)


def test_count_by_value(sc):
    data = [x % 13 for x in INTS] + ["x", "y", "x", None]
    out = sc.parallelize(data, 4).countByValue()
    assert dict(out) == dict(Counter(data))


def test_foreach_and_foreach_partition(sc, tmp_path):
    rdd = sc.parallelize(range(40), 4)
    acc = sc.accumulator(0)

    def add(x):
        acc.add(x)
    rdd.foreach(add)
    assert acc.value == sum(range(40))

    out = tmp_path / "parts"
    out.mkdir()

    def write(it):
        from sparkctl import TaskContext
        with open(out / f"p{TaskContext.get().partitionId()}", "w") as f:
            f.write(",".join(map(str, it)))
    rdd.foreachPartition(write)
    assert [(out / f"p{i}").read_text() for i in range(4)] == \
        [",".join(map(str, p)) for p in rdd.glom().collect()]
    assert rdd.foreach(lambda x: None) is None
