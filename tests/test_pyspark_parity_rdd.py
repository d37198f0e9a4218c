"""RDD behaviours that PySpark's own core tests check (python/pyspark/tests/test_rdd.py),
written afresh against sparkctl: each test states the behaviour PySpark documents or
asserts, with plain Python computing the expected answer where there is one.

Behaviours already covered elsewhere in the suite (StopIteration from user code,
takeSample bounds, pickle and text files round trips) are not repeated here.
"""
from __future__ import annotations

import os
import threading
import time
from collections import defaultdict, namedtuple
from operator import itemgetter
from typing import Any

import pytest

from tests.clusters import wait_for

# A module-level global holding a function that is not importable by name (a lambda), so
# the task's closure carries it by value; a test rebinds it between two jobs.
greeting = lambda: "hello"  # noqa: E731


Point = namedtuple("Point", "x y label")


@pytest.mark.timeout(30)
def test_range_edge_cases(sc: Any) -> None:
    # an empty range, a one-element descending range, and a huge step
    assert sc.range(1, 1).count() == 0
    assert sc.range(1, 0, -1).collect() == [1]
    assert sc.range(0, 1 << 40, 1 << 39).collect() == [0, 1 << 39]


@pytest.mark.timeout(30)
def test_ids_are_stable_and_increase_by_one_per_new_rdd(sc: Any) -> None:
    base = sc.parallelize(range(10))
    first = base.id()
    assert base.id() == first
    derived = base.map(str)
    assert derived.id() == first + 1
    assert derived.id() == first + 1


@pytest.mark.timeout(30)
def test_empty_rdd_is_empty_and_sums_to_zero(sc: Any) -> None:
    assert sc.emptyRDD().isEmpty()
    assert sc.emptyRDD().sum() == 0
    assert sc.parallelize([1, 2, 3]).sum() == 6


@pytest.mark.timeout(30)
def test_to_local_iterator_over_many_partitions(sc: Any) -> None:
    rdd = sc.parallelize([1, 2, 3])
    assert sorted(rdd.toLocalIterator()) == [1, 2, 3]
    assert sorted(rdd.repartition(50).toLocalIterator()) == [1, 2, 3]


@pytest.mark.timeout(30)
def test_to_local_iterator_computes_partitions_only_when_reached(sc: Any) -> None:
    def fail_on_nine(x: int) -> int:
        if x == 9:
            raise RuntimeError("the last partition was computed")
        return x

    it = sc.range(12, numSlices=4).map(fail_on_nine).toLocalIterator()
    assert [next(it) for _ in range(4)] == [0, 1, 2, 3]


@pytest.mark.timeout(30)
def test_to_local_iterator_reports_task_failure(sc: Any) -> None:
    def fail(_x: int) -> int:
        raise RuntimeError("local iterator error")

    with pytest.raises(Exception, match="local iterator error"):
        for _ in sc.range(10).map(fail).toLocalIterator():
            pass


@pytest.mark.timeout(30)
def test_cartesian_result_can_be_transformed_and_chained(sc: Any) -> None:
    assert sorted(sc.parallelize([1, 2]).cartesian(sc.parallelize([3, 4])).map(lambda p: p[0] + p[1]).collect()) \
        == sorted(a + b for a in [1, 2] for b in [3, 4])
    rdd = sc.parallelize(range(6), 2)
    r = range(6)
    assert set(rdd.cartesian(rdd).cartesian(rdd).collect()) == {((x, y), z) for x in r for y in r for z in r}
    assert set(rdd.cartesian(rdd.cartesian(rdd)).collect()) == {(x, (y, z)) for x in r for y in r for z in r}
    assert set(rdd.cartesian(rdd.zip(rdd)).collect()) == {(x, (y, y)) for x in r for y in r}


@pytest.mark.timeout(30)
def test_zip_chaining(sc: Any) -> None:
    rdd = sc.parallelize("abc", 2)
    assert set(rdd.zip(rdd).zip(rdd).collect()) == {((c, c), c) for c in "abc"}
    assert set(rdd.zip(rdd.zip(rdd)).collect()) == {(c, (c, c)) for c in "abc"}


@pytest.mark.timeout(30)
def test_zip_of_objects_of_different_sizes(sc: Any) -> None:
    a = sc.parallelize(range(2000), 4).map(lambda i: "*" * i)
    b = sc.parallelize(range(2000, 4000), 4).map(lambda i: "*" * i)
    assert a.zip(b).count() == 2000


@pytest.mark.timeout(30)
def test_zip_with_mismatched_partitions_or_items_fails(sc: Any) -> None:
    a = sc.parallelize(range(5), 2)
    # a different number of partitions is refused at once, on the driver
    with pytest.raises(ValueError):
        a.zip(sc.parallelize(range(100, 106), 3))
    # the same number of partitions but a different number of items fails the job
    with pytest.raises(Exception):
        a.zip(sc.parallelize(range(100, 104), 2)).count()
    with pytest.raises(Exception):
        a.zip(sc.parallelize(range(100, 106), 2)).count()
    # the same total, distributed differently over the partitions
    x = sc.parallelize([2, 3], 2).flatMap(range)
    y = sc.parallelize([3, 2], 2).flatMap(range)
    assert x.count() == y.count()
    with pytest.raises(Exception):
        x.zip(y).count()


@pytest.mark.timeout(30)
def test_takesample_default_seed(sc: Any) -> None:
    assert len(sc.parallelize(range(1000), 1).takeSample(False, 10)) == 10


def _count_into(counts: defaultdict, x: int) -> defaultdict:
    counts[x] += 1
    return counts


def _merge_counts(a: defaultdict, b: defaultdict) -> defaultdict:
    for k, v in b.items():
        a[k] += v
    return a


@pytest.mark.timeout(30)
@pytest.mark.parametrize("slices", [1, 2])
def test_aggregate_and_tree_aggregate_with_a_mutable_zero_value(sc: Any, slices: int) -> None:
    # the zero value is copied per partition, so mutating it in place is safe
    data = sc.range(10, numSlices=slices)
    truth = defaultdict(int, {i: 1 for i in range(10)})
    assert data.aggregate(defaultdict(int), _count_into, _merge_counts) == truth
    assert data.treeAggregate(defaultdict(int), _count_into, _merge_counts, 2) == truth


@pytest.mark.timeout(30)
@pytest.mark.parametrize("slices", [1, 2])
def test_fold_with_a_mutable_zero_value(sc: Any, slices: int) -> None:
    counters = [defaultdict(int, {i: 1 for i in range(lo, hi)}) for lo, hi in [(0, 10), (3, 8), (4, 7), (5, 6)]]
    truth: defaultdict = defaultdict(int)
    for c in counters:
        _merge_counts(truth, c)
    assert sc.parallelize(counters, slices).fold(defaultdict(int), _merge_counts) == truth


@pytest.mark.timeout(30)
@pytest.mark.parametrize("slices", [1, 2])
def test_by_key_aggregations_with_a_mutable_zero_value(sc: Any, slices: int) -> None:
    def append(acc: list, v: Any) -> list:
        acc.append(v)
        return acc

    def extend(acc: list, more: list) -> list:
        acc.extend(more)
        return acc

    pairs = [(i % 10, 1) for i in range(20)]
    got = sorted(sc.parallelize(pairs, slices).aggregateByKey([], append, extend).collect())
    assert got == [(i, [1, 1]) for i in range(10)]

    ranges = [(i, list(range(i))) for i in range(10)] * 2
    got = sorted(sc.parallelize(ranges, slices).foldByKey([], extend).collect())
    assert got == [(i, list(range(i)) * 2) for i in range(10)]


@pytest.mark.timeout(30)
def test_aggregate_by_key_into_sets(sc: Any) -> None:
    def add(s: set, v: int) -> set:
        s.add(v)
        return s

    def union(a: set, b: set) -> set:
        a |= b
        return a

    data = sc.parallelize([(1, 1), (1, 1), (3, 2), (5, 1), (5, 3)], 2)
    assert dict(data.aggregateByKey(set(), add, union).collect()) == {1: {1}, 3: {2}, 5: {1, 3}}


@pytest.mark.timeout(30)
def test_itemgetter_and_namedtuples_travel_to_tasks(sc: Any) -> None:
    rdd = sc.parallelize([range(10)])
    assert rdd.map(itemgetter(1)).collect() == [1]
    assert rdd.map(itemgetter(2, 3)).collect() == [(2, 3)]
    points = [Point(1, 2, "a"), Point(3, 4, "b")]
    got = sc.parallelize(points, 2).collect()
    assert got == points
    assert [type(p).__name__ for p in got] == ["Point", "Point"]
    assert sc.parallelize(points, 2).map(lambda p: p.label).collect() == ["a", "b"]


@pytest.mark.timeout(30)
def test_large_closure(sc: Any) -> None:
    data = [float(i) for i in range(200_000)]
    rdd = sc.parallelize(range(1), 1).map(lambda _x: len(data))
    assert rdd.first() == 200_000
    assert rdd.map(lambda x: (x, 1)).groupByKey().count() == 1


@pytest.mark.timeout(30)
def test_rebinding_a_global_function_is_seen_by_the_next_job(sc: Any) -> None:
    global greeting
    assert sc.parallelize([1]).map(lambda _x: greeting()).first() == "hello"
    before = greeting
    try:
        greeting = lambda: "goodbye"  # noqa: E731
        assert sc.parallelize([1]).map(lambda _x: greeting()).first() == "goodbye"
    finally:
        greeting = before


@pytest.mark.timeout(30)
def test_count_approx_distinct(sc: Any) -> None:
    rdd = sc.parallelize(range(1000))
    for mapped in (rdd, rdd.map(float), rdd.map(str), rdd.map(lambda x: (x, -x))):
        assert 950 < mapped.countApproxDistinct(0.03) < 1050
    few = sc.parallelize([i % 20 for i in range(1000)], 7)
    for mapped in (few, few.map(float), few.map(str), few.map(lambda x: (x, -x))):
        assert 18 < mapped.countApproxDistinct() < 22
    with pytest.raises(ValueError):
        few.countApproxDistinct(0.00000001)


@pytest.mark.timeout(30)
def test_histogram_with_given_buckets(sc: Any) -> None:
    def hist(data: list, buckets: Any) -> list:
        return sc.parallelize(data, 2).histogram(buckets)[1]

    nan = float("nan")
    inf = float("inf")
    assert hist([], [0, 10]) == [0]
    assert hist([], [0, 4, 10]) == [0, 0]
    assert hist([10.01, -0.01], [0, 10]) == [0]
    assert hist([10.01, -0.01], (0, 4, 10)) == [0, 0]
    assert hist([1, 2, 3, 4], [0, 10]) == [4]
    assert hist([1, 2, 3, 4], [0, 4, 10]) == [3, 1]
    assert hist([1, 2, 3, 4], [1, 4]) == [4]  # the last bucket is closed
    assert hist([1, 2, 3, 5, 6], [0, 5, 10]) == [3, 2]
    assert hist([1, 2, 3, 5, 6, None, nan], [0, 5, 10]) == [3, 2]  # None and NaN are skipped
    assert hist([1, 2, 3, 5, 6], [0, 5, 11]) == [3, 2]
    assert hist([-0.01, 0.0, 1, 2, 3, 5, 6, 11.0, 11.01], [0, 5, 11]) == [4, 3]
    four = [-0.01, 0.0, 1, 2, 3, 5, 6, 11.01, 12.0, 199.0, 200.0, 200.1]
    assert hist(four, [0.0, 5.0, 11.0, 12.0, 200.0]) == [4, 2, 1, 3]
    assert hist(four + [None, nan], [0.0, 5.0, 11.0, 12.0, 200.0]) == [4, 2, 1, 3]
    assert hist([10.01, -0.01, nan, inf], [-inf, 0, inf]) == [1, 2]
    assert sc.parallelize(["ab", "ac", "b", "bd", "ef"], 2).histogram(["a", "b", "c"])[1] == [2, 2]


@pytest.mark.timeout(30)
def test_histogram_rejects_invalid_buckets(sc: Any) -> None:
    rdd = sc.parallelize([1.0, 2.0])
    for bad in ([], [1], 0):
        with pytest.raises(ValueError):
            rdd.histogram(bad)
    with pytest.raises(TypeError):
        rdd.histogram({})
    with pytest.raises(ValueError):
        sc.parallelize([]).histogram(1)  # no range to divide
    with pytest.raises(ValueError):
        sc.parallelize([1, float("inf")]).histogram(2)
    with pytest.raises(ValueError):
        sc.parallelize([float("nan")]).histogram(2)
    with pytest.raises(TypeError):
        sc.parallelize(["ab", "ef"]).histogram(2)  # strings cannot be divided evenly


@pytest.mark.timeout(30)
def test_histogram_with_a_bucket_count(sc: Any) -> None:
    assert sc.parallelize(range(1, 5)).histogram(1) == ([1, 4], [4])
    assert sc.parallelize([1]).histogram(1) == ([1, 1], [1])
    assert sc.parallelize([1] * 4).histogram(1) == ([1, 1], [4])
    assert sc.parallelize(range(1, 5)).histogram(2) == ([1, 2.5, 4], [2, 2])
    buckets, counts = sc.parallelize([1, 2]).histogram(5)
    assert buckets == pytest.approx([1 + 0.2 * i for i in range(6)])
    assert counts == [1, 0, 0, 0, 1]
    assert sc.parallelize(["ab", "ac", "b", "bd", "ef"], 2).histogram(1) == (["ab", "ef"], [5])


@pytest.mark.timeout(30)
@pytest.mark.parametrize("ascending", [True, False])
def test_repartition_and_sort_within_partitions(sc: Any, ascending: bool) -> None:
    data = [(0, 5), (3, 8), (2, 6), (0, 8), (3, 8), (1, 3)]
    parts = sc.parallelize(data, 2).repartitionAndSortWithinPartitions(2, lambda k: k % 2, ascending).glom().collect()
    for index, part in enumerate(parts):
        mine = [kv for kv in data if kv[0] % 2 == index]
        # sorted by key only; equal keys keep no promised order
        assert [k for k, _v in part] == sorted((k for k, _v in mine), reverse=not ascending)
        assert sorted(part) == sorted(mine)


@pytest.mark.timeout(30)
def test_repartition_and_shuffling_coalesce_leave_no_partition_empty(sc: Any) -> None:
    rdd = sc.parallelize(range(1000), 2)
    assert 0 not in rdd.repartition(20).glom().map(len).collect()
    assert 0 not in rdd.coalesce(20, True).glom().map(len).collect()


@pytest.mark.timeout(30)
def test_distinct_with_a_partition_count(sc: Any) -> None:
    rdd = sc.parallelize((1, 2, 3) * 10, 10)
    assert rdd.getNumPartitions() == 10
    assert rdd.distinct().count() == 3
    five = rdd.distinct(5)
    assert five.getNumPartitions() == 5
    assert sorted(five.collect()) == [1, 2, 3]


@pytest.mark.timeout(30)
def test_sort_by_key_on_an_empty_rdd(sc: Any) -> None:
    assert sc.parallelize(zip([], [])).sortByKey().collect() == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize("ascending", [True, False])
def test_sort_by_key_uses_every_partition(sc: Any, ascending: bool) -> None:
    seq = [(i * 59 % 101, i) for i in range(101)]
    ordered = sc.parallelize(seq).sortByKey(ascending=ascending, numPartitions=5)
    assert ordered.collect() == sorted(seq, reverse=not ascending)
    assert all(size > 0 for size in ordered.glom().map(len).collect())


@pytest.mark.timeout(30)
def test_sample_is_deterministic_per_seed(sc: Any) -> None:
    rdd = sc.parallelize(range(100), 4)
    assert rdd.sample(False, 0.1, 2).collect() == rdd.sample(False, 0.1, 2).collect()
    assert rdd.sample(True, 0.2, 5).collect() == rdd.sample(True, 0.2, 5).collect()
    assert set(rdd.sample(False, 0.3, 10).collect()) != set(rdd.sample(False, 0.3, 20).collect())
    assert set(rdd.sample(True, 0.4, 11).collect()) != set(rdd.sample(True, 0.4, 21).collect())


@pytest.mark.timeout(30)
def test_pipe_exit_codes_and_unicode(sc: Any) -> None:
    rdd = sc.parallelize(["1", "2", "3"])
    assert sorted(rdd.pipe("cat").collect()) == ["1", "2", "3"]
    # grep exits 1 when nothing matches: ignored unless checkCode is set
    assert rdd.pipe("grep 4").collect() == []
    with pytest.raises(Exception):
        rdd.pipe("grep 4", checkCode=True).collect()
    text = ["\u6d4b\u8bd5", "1"]
    assert sc.parallelize(text, 1).pipe("cat").collect() == text


@pytest.mark.timeout(30)
def test_deleted_input_file_fails_the_next_job(sc: Any, tmp_path: Any) -> None:
    path = tmp_path / "hello.txt"
    path.write_bytes(b"Hello World!")
    lines = sc.textFile(str(path)).filter(lambda _x: True)
    assert lines.count() == 1
    os.unlink(path)
    with pytest.raises(Exception):
        lines.count()


@pytest.mark.timeout(30)
def test_save_as_text_file_writes_unicode_and_utf8_bytes_alike(sc: Any, tmp_path: Any) -> None:
    text = "\u00a1Hola, mundo!"
    for name, value in (("str", text), ("bytes", text.encode("utf-8"))):
        out = tmp_path / name
        sc.parallelize([value]).saveAsTextFile(str(out))
        raw = b"".join((out / f).read_bytes() for f in sorted(os.listdir(out)) if f.startswith("part-"))
        assert raw.strip().decode("utf-8") == text


@pytest.mark.timeout(30)
def test_pickle_file_contents_can_be_transformed(sc: Any, tmp_path: Any) -> None:
    out = str(tmp_path / "pickled")
    sc.parallelize(["Hello", "World!"]).saveAsPickleFile(out)
    assert sorted(sc.pickleFile(out).map(str.upper).collect()) == ["HELLO", "WORLD!"]


@pytest.mark.timeout(30)
def test_union_of_pair_rdds(sc: Any) -> None:
    rdd = sc.parallelize([1, 2])
    pairs = rdd.zip(rdd)
    both = sc.union([pairs, pairs])
    assert sorted(both.collect()) == [(1, 1), (1, 1), (2, 2), (2, 2)]
    assert both.count() == 4


@pytest.mark.timeout(30)
def test_barrier_map_partitions_marks_the_rdd(sc: Any) -> None:
    # PySpark's test_rddbarrier on local[2]: a barrier stage may have at most as many tasks as slots
    rdd = sc.parallelize(range(12), 2)
    assert not rdd._is_barrier()
    assert rdd.barrier().mapPartitions(lambda it: it)._is_barrier()
    indexed = rdd.barrier().mapPartitionsWithIndex(lambda index, _it: [index])
    assert indexed._is_barrier()
    assert indexed.collect() == [0, 1]


def _slow(_x: int) -> int:
    time.sleep(60)  # a task that only ends by being cancelled
    return 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("by", ["group", "tag"])
def test_cancelling_one_group_of_concurrent_jobs_leaves_the_other(sc: Any, by: str) -> None:
    def label(name: str) -> None:
        if by == "group":
            sc.setJobGroup(name, "parity: concurrent jobs")
        else:
            sc.addJobTag(name)

    outcome: dict[str, Any] = {}

    def run(name: str, index: int, slow: bool) -> None:
        label(name)
        try:
            rdd = sc.parallelize([index], 1)
            outcome[f"{name}{index}"] = rdd.map(_slow if slow else (lambda x: x + 1)).collect()
        except Exception as e:  # the cancelled jobs end here
            outcome[f"{name}{index}"] = e

    tracker = sc.statusTracker()
    ids_of = tracker.getJobIdsForGroup if by == "group" else tracker.getJobIdsForTag
    to_cancel = [threading.Thread(target=run, args=(f"parity-cancel-{by}", i, True)) for i in (0, 2)]
    to_run = [threading.Thread(target=run, args=(f"parity-run-{by}", i, False)) for i in (1, 3)]
    try:
        for t in to_cancel:
            t.start()
        # both slow jobs hold the two slots before the others are submitted
        wait_for(lambda: len(set(ids_of(f"parity-cancel-{by}")) & set(tracker.getActiveJobsIds())) == 2,
                 what="both jobs to cancel running")
        for t in to_run:
            t.start()
        if by == "group":
            sc.cancelJobGroup(f"parity-cancel-{by}")
        else:
            sc.cancelJobsWithTag(f"parity-cancel-{by}")
        for t in to_cancel + to_run:
            t.join(30)
    finally:
        sc.cancelAllJobs()
        for t in to_cancel + to_run:
            t.join(30)
    assert isinstance(outcome[f"parity-cancel-{by}0"], Exception)
    assert isinstance(outcome[f"parity-cancel-{by}2"], Exception)
    assert outcome[f"parity-run-{by}1"] == [2]
    assert outcome[f"parity-run-{by}3"] == [4]


@pytest.mark.timeout(30)
def test_none_among_strings_and_bytes(sc: Any) -> None:
    assert sc.parallelize(["a", None, "b"]).collect() == ["a", None, "b"]
    assert sc.parallelize([b"a", None, b"b"]).collect() == [b"a", None, b"b"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("prefetch", [False, True])
def test_to_local_iterator_with_and_without_prefetch(sc: Any, prefetch: bool) -> None:
    rdd = sc.parallelize(range(10), 5).map(lambda x: x * x)
    assert list(rdd.toLocalIterator(prefetchPartitions=prefetch)) == [x * x for x in range(10)]
