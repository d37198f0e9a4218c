"""StatCounter, join and broadcast behaviours that PySpark's test_statcounter.py,
test_join.py and test_broadcast.py check, written afresh against sparkctl; expected
figures come from Python's statistics module.
"""
from __future__ import annotations

import hashlib
import math
import random
import statistics
from typing import Any

import pytest

from sparkctl.statcounter import StatCounter


def _assert_matches(stats: StatCounter, values: list[float]) -> None:
    assert stats.count() == len(values)
    assert stats.min() == min(values)
    assert stats.max() == max(values)
    assert stats.sum() == pytest.approx(sum(values))
    assert stats.mean() == pytest.approx(statistics.fmean(values))
    assert stats.variance() == pytest.approx(statistics.pvariance(values))
    assert stats.stdev() == pytest.approx(statistics.pstdev(values))
    assert stats.sampleVariance() == pytest.approx(statistics.variance(values))
    assert stats.sampleStdev() == pytest.approx(statistics.stdev(values))


@pytest.mark.timeout(30)
def test_stats_of_an_rdd(sc: Any) -> None:
    _assert_matches(sc.parallelize([1.0, 2.0, 3.0, 4.0]).stats(), [1.0, 2.0, 3.0, 4.0])


@pytest.mark.timeout(30)
def test_stats_as_dict_sample_by_default(sc: Any) -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    stats = sc.parallelize(values).stats()
    sample = stats.asDict()
    assert (sample["count"], sample["min"], sample["max"], sample["sum"], sample["mean"]) == (4, 1.0, 4.0, 10.0, 2.5)
    assert sample["stdev"] == pytest.approx(statistics.stdev(values))
    assert sample["variance"] == pytest.approx(statistics.variance(values))
    population = stats.asDict(sample=True)
    assert population["stdev"] == pytest.approx(statistics.pstdev(values))
    assert population["variance"] == pytest.approx(statistics.pvariance(values))


@pytest.mark.timeout(30)
def test_merge_a_value_and_merge_stats() -> None:
    stats = StatCounter([1.0, 2.0, 3.0, 4.0])
    stats.merge(5.0)
    _assert_matches(stats, [1.0, 2.0, 3.0, 4.0, 5.0])
    merged = StatCounter([1.0, 2.0, 3.0, 4.0]).mergeStats(StatCounter([1.0, 2.0, 3.0, 4.0]))
    _assert_matches(merged, [1.0, 2.0, 3.0, 4.0] * 2)
    # a small counter merged into a large one and the other way round
    for small_first in (True, False):
        small, large = StatCounter([1.0, 2.0]), StatCounter(range(1, 301))
        merged = small.mergeStats(large) if small_first else large.mergeStats(small)
        _assert_matches(merged, [1.0, 2.0] + [float(v) for v in range(1, 301)])


@pytest.mark.timeout(30)
def test_merge_stats_with_itself() -> None:
    stats = StatCounter([1.0, 2.0, 3.0, 4.0])
    stats.mergeStats(stats)
    _assert_matches(stats, [1.0, 2.0, 3.0, 4.0] * 2)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("values", [[], None])
def test_empty_stat_counter(values: Any) -> None:
    stats = StatCounter(values)
    assert stats.count() == 0
    assert stats.mean() == 0.0
    assert math.isnan(stats.variance())
    assert math.isnan(stats.sampleVariance())
    assert math.isinf(stats.max())
    assert math.isinf(stats.min())


@pytest.mark.timeout(60)
def test_joins_of_co_partitioned_rdds_need_no_extra_stage(sc: Any) -> None:
    rdd = sc.parallelize(range(10)).map(lambda x: (x, x))
    parted = rdd.partitionBy(2)
    # a union of two RDDs with the same partitioner keeps it; otherwise partitions add up
    assert parted.union(parted).getNumPartitions() == 2
    assert parted.union(rdd).getNumPartitions() == rdd.getNumPartitions() + 2
    assert rdd.union(parted).getNumPartitions() == rdd.getNumPartitions() + 2

    tracker = sc.statusTracker()
    # (group, job, stages the job runs, its first record with iterables made lists)
    cases = [("parity-join-1", lambda: parted.join(parted), 2, (0, (0, 0))),
             ("parity-join-2", lambda: parted.join(rdd), 3, (0, (0, 0))),
             ("parity-join-3", lambda: parted.cogroup(parted), 2, (0, ([0], [0]))),
             ("parity-join-4", lambda: parted.cogroup(rdd), 3, (0, ([0], [0])))]
    try:
        for group, build, stages, first in cases:
            sc.setJobGroup(group, "parity", True)
            result = sorted(build().collect(), key=lambda kv: kv[0])
            assert len(result) == 10
            key, (left, right) = result[0]
            if isinstance(left, int):
                assert (key, (left, right)) == first
            else:
                assert (key, (list(left), list(right))) == first
            [job_id] = tracker.getJobIdsForGroup(group)
            assert len(tracker.getJobInfo(job_id).stageIds) == stages, group
    finally:
        for key in ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel"):
            sc.setLocalProperty(key, None)


@pytest.mark.timeout(60)
def test_several_broadcasts_over_several_jobs(sc: Any) -> None:
    big = sc.broadcast(set(range(1 << 18)))
    order = list(range(1 << 12))
    for _job in range(2):
        random.shuffle(order)
        blob = str(order).encode()
        small = sc.broadcast(blob)
        seen = set(sc.parallelize(range(10), 10).map(
            lambda _x: (len(big.value), hashlib.md5(small.value).hexdigest())).collect())
        assert seen == {(1 << 18, hashlib.md5(blob).hexdigest())}
    assert big.value == set(range(1 << 18))  # the driver reads it too


@pytest.mark.timeout(60)
def test_large_broadcast(sc: Any) -> None:
    data = [[float(i) for i in range(100)] for _ in range(10_000)]
    b = sc.broadcast(data)
    try:
        assert sc.parallelize(range(1), 1).map(lambda _x: len(b.value)).sum() == 10_000
    finally:
        b.destroy()
