"""Tests that need a SparkContext of their own (a context manager, getOrCreate creating
one, special settings). No test here uses the shared ``sc`` fixture, so conftest stops
the shared context before this module; every context made here is stopped by its test,
and no process may outlive it."""
from __future__ import annotations

import operator

import pytest

from sparkctl import SparkConf, SparkContext, TaskContext


def test_context_manager_stops_and_leaves_no_processes(assert_no_child_processes):
    with SparkContext("local[2]", "context-manager") as sc:
        assert sc.appName == "context-manager"
        assert sc.parallelize(range(10), 2).map(lambda x: x * x).sum() == sum(x * x for x in range(10))
    with pytest.raises(Exception):
        sc.parallelize([1]).collect()
    assert_no_child_processes(allow_shared=False)
    # a new context may start once the old one stopped
    with SparkContext("local[1]", "second") as sc2:
        assert sc2.defaultParallelism == 1
        assert sc2.parallelize([1, 2, 3]).collect() == [1, 2, 3]
    assert_no_child_processes(allow_shared=False)


def test_stop_is_idempotent(assert_no_child_processes):
    sc = SparkContext("local[2]", "stop-twice")
    assert sc.parallelize([1]).count() == 1
    sc.stop()
    sc.stop()
    assert_no_child_processes(allow_shared=False)


def test_get_or_create(assert_no_child_processes):
    conf = SparkConf().setMaster("local[2]").setAppName("made-by-getOrCreate")
    sc = SparkContext.getOrCreate(conf)
    try:
        assert sc.appName == "made-by-getOrCreate"
        assert SparkContext.getOrCreate() is sc
        assert SparkContext.getOrCreate(SparkConf().setAppName("ignored")) is sc
        with pytest.raises(ValueError):
            SparkContext("local[2]", "a second one")
        assert sc.parallelize(range(4), 2).glom().collect() == [[0, 1], [2, 3]]
    finally:
        sc.stop()
    assert_no_child_processes(allow_shared=False)


def test_default_parallelism_setting(assert_no_child_processes):
    conf = SparkConf().setMaster("local[2]").setAppName("parallelism").set("spark.default.parallelism", "5")
    with SparkContext(conf=conf) as sc:
        assert sc.defaultParallelism == 5
        assert sc.defaultMinPartitions == 2
        rdd = sc.parallelize([(i % 4, i) for i in range(40)])
        assert rdd.getNumPartitions() == 5
        # with spark.default.parallelism set, shuffles default to it (PySpark's rule)
        assert rdd.reduceByKey(operator.add).getNumPartitions() == 5
        assert sc.parallelize([(1, 1)], 2).groupByKey().getNumPartitions() == 5
        assert sorted(rdd.reduceByKey(operator.add).collect()) == \
            sorted({k: sum(i for i in range(40) if i % 4 == k) for k in range(4)}.items())
    assert_no_child_processes(allow_shared=False)


def test_accumulator_counts_only_successful_attempts(assert_no_child_processes):
    """A task that adds to an accumulator and then fails adds nothing; its successful
    retry adds once (local[N,F] retries a failed task up to F times)."""
    with SparkContext("local[2,4]", "retries") as sc:
        acc = sc.accumulator(0)

        def flaky(x):
            acc.add(1)
            tc = TaskContext.get()
            if tc.partitionId() in (1, 2) and tc.attemptNumber() < 2 and x % 10 == 9:
                raise RuntimeError("first attempts fail after counting")
            return x
        rdd = sc.parallelize(range(40), 4)
        assert rdd.map(flaky).collect() == list(range(40))
        assert acc.value == 40
        attempts = rdd.map(flaky).mapPartitions(lambda it: [(TaskContext.get().partitionId(),
                                                             TaskContext.get().attemptNumber(), len(list(it)))])
        assert attempts.collect() == [(0, 0, 10), (1, 2, 10), (2, 2, 10), (3, 0, 10)]
        assert acc.value == 80

        def always_fails(x):
            acc.add(100)
            raise ValueError("never works")
        with pytest.raises(ValueError, match="never works"):
            rdd.foreach(always_fails)
        assert acc.value == 80
        assert rdd.count() == 40  # the context survives a failed job
    assert_no_child_processes(allow_shared=False)


def test_local_mode_retries_up_to_max_failures(assert_no_child_processes):
    """Unlike Spark's local mode (which never retries), sparkctl retries a failed task up
    to spark.task.maxFailures in every mode; local[N,F] sets F."""
    try:
        with SparkContext("local[2]", "retries") as sc:
            def fail_first(x):
                if TaskContext.get().attemptNumber() == 0:
                    raise RuntimeError("first attempt fails")
                return x
            assert sc.parallelize(range(4), 2).map(fail_first).collect() == [0, 1, 2, 3]
        with SparkContext("local[2,1]", "no-retries") as sc:
            with pytest.raises(RuntimeError, match="first attempt fails"):
                sc.parallelize(range(4), 2).map(fail_first).collect()
    finally:
        assert_no_child_processes(allow_shared=False)


def test_small_executor_memory_spills_and_stays_correct(assert_no_child_processes):
    """With a few MB per executor, aggregation maps, sorts and shuffle buffers spill to
    disk (1 MiB budgets); every result must still equal plain Python's."""
    from collections import Counter, defaultdict

    from sparkctl import StorageLevel
    conf = SparkConf().setMaster("local[2]").setAppName("spills").set("spark.executor.memory", "4m")
    n, distinct = 200_000, 100_000
    keys = [f"k{i % distinct}" for i in range(n)]
    with SparkContext(conf=conf) as sc:
        rdd = sc.parallelize(range(n), 2).map(lambda i: (f"k{i % 100_000}", i))
        sums = defaultdict(int)
        for i, k in enumerate(keys):
            sums[k] += i
        assert dict(rdd.reduceByKey(operator.add, 3).collect()) == sums
        assert Counter(dict(rdd.groupByKey(2).mapValues(len).collect())) == Counter(keys)
        assert rdd.sortByKey(numPartitions=3).keys().collect() == sorted(keys)
        assert rdd.sortByKey(False, 1).keys().collect() == sorted(keys, reverse=True)
        assert rdd.values().distinct(4).count() == n
        # blocks larger than the storage memory go to disk (or are recomputed when the
        # level allows memory only): either way every read gives the same records
        acc = sc.accumulator(0)
        big = sc.parallelize(range(n), 2).map(lambda i: acc.add(1) or f"value-{i}")
        big.persist(StorageLevel.MEMORY_AND_DISK)
        assert big.count() == n
        assert big.filter(lambda s: s.endswith("7")).count() == n // 10
        assert acc.value == n
        big.unpersist()
        mem_only = sc.parallelize(range(n), 2).map(lambda i: f"value-{i}").cache()
        assert mem_only.count() == n and mem_only.count() == n
        assert mem_only.take(2) == ["value-0", "value-1"]
    assert_no_child_processes(allow_shared=False)
