"""Bounded memory: a groupByKey and a sortByKey over data several times larger than
spark.executor.memory finish, give the exact result, and no task slot grows past it."""
from __future__ import annotations

import os
import time

import pytest

from sparkctl import SparkConf, SparkContext

pytestmark = pytest.mark.timeout(240)

EXECUTOR_MEMORY = 64 * 1024 * 1024
RECORDS = 1_200_000  # about 170 bytes each in memory: over 3 x the executor memory


def _slot_memory(_: object) -> list[tuple[int, int, int]]:
    time.sleep(0.3)  # both tasks overlap, so each slot runs one
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = int(value.split()[0]) * 1024 if value.strip().endswith("kB") else 0
    return [(os.getpid(), fields["VmRSS"], fields["VmHWM"])]


def _record(i: int) -> tuple[int, str]:
    return (i % 40_000, "v" + str(i) * 5)


@pytest.fixture(scope="module")
def small_sc():
    conf = SparkConf().set("spark.executor.memory", "64m")
    sc = SparkContext("local[2]", "memory-test", conf=conf)
    yield sc
    sc.stop()


def _baseline(sc: SparkContext) -> dict[int, int]:
    return {pid: rss for pid, rss, _ in sc.parallelize(range(2), 2).mapPartitions(_slot_memory).collect()}


def _peaks(sc: SparkContext) -> dict[int, int]:
    return {pid: peak for pid, _, peak in sc.parallelize(range(2), 2).mapPartitions(_slot_memory).collect()}


def test_group_by_key_larger_than_executor_memory(small_sc: SparkContext) -> None:
    base = _baseline(small_sc)
    grouped = small_sc.range(RECORDS, numSlices=4).map(_record).groupByKey(4)
    sizes = dict(grouped.mapValues(len).collect())
    expected: dict[int, int] = {}
    for i in range(RECORDS):
        expected[i % 40_000] = expected.get(i % 40_000, 0) + 1
    assert sizes == expected
    for pid, peak in _peaks(small_sc).items():
        assert pid in base, "task slots are kept warm: the same processes ran every job"
        assert peak - base[pid] < EXECUTOR_MEMORY, f"slot {pid} grew by {(peak - base[pid]) >> 20} MiB"


def test_sort_by_key_larger_than_executor_memory(small_sc: SparkContext) -> None:
    base = _baseline(small_sc)
    ordered = small_sc.range(RECORDS, numSlices=4).map(lambda i: ((i * 7919) % RECORDS, "x" * 60)).sortByKey(True, 3)
    firsts = ordered.mapPartitions(lambda it: [sum(1 for _ in it)]).collect()
    assert sum(firsts) == RECORDS
    keys = ordered.keys().mapPartitionsWithIndex(lambda i, it: [(i, _ordered(it))]).collect()
    assert all(ok for _, ok in keys)
    for pid, peak in _peaks(small_sc).items():
        assert peak - base[pid] < EXECUTOR_MEMORY, f"slot {pid} grew by {(peak - base[pid]) >> 20} MiB"


def _ordered(it: object) -> bool:
    prev = None
    for k in it:  # type: ignore[attr-defined]
        if prev is not None and k < prev:
            return False
        prev = k
    return True
