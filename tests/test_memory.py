"""Memory is real: shuffles four times larger than spark.executor.memory (about 1 GiB of
pickled records, generated inside the tasks) finish with exact results, while a sampler
reads the resident set of the executor process and of every one of its task slots every
50 ms; their sum must stay under spark.executor.memory plus spark.executor.memoryOverhead.

RSS counts the pages the forked slots still share with the executor once in each process,
so the sum is the strict measure (PSS would split them); it is the one asserted."""
from __future__ import annotations

import collections
import os
from typing import Any, Iterator

import pytest

from sparkctl import SparkConf, SparkContext
from sparkctl.conf import parse_size
from sparkctl.storage import shuffle
from tests.clusters import Sampler, resident_bytes
from tests.conftest import descendants

pytestmark = pytest.mark.timeout(240)

MEMORY = "256m"
OVERHEAD = "64m"  # tighter than the default max(384m, 10%): the test should be able to fail
LIMIT = parse_size(MEMORY, "m") + parse_size(OVERHEAD, "m")
DATA = 4 * parse_size(MEMORY, "m")  # pickled bytes of records each shuffle moves
VALUE = 200  # characters of each record's value: about 215 bytes a pickled record
RECORDS = DATA // 215
MAPS = 8
KEYS = 100_000


class ResidentSampler(Sampler):
    """Sums the RSS of a process tree every ``interval`` seconds, keeping the largest sum."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        super().__init__(interval)
        self.root = root
        self.peak = 0
        self.peak_parts: dict[int, int] = {}

    def sample(self) -> None:
        parts = {pid: resident_bytes(pid) for pid in [self.root, *descendants(self.root)]}
        total = sum(parts.values())
        if total > self.peak:
            self.peak, self.peak_parts = total, parts

    def report(self) -> str:
        parts = ", ".join(f"pid {pid}: {rss >> 20} MiB" for pid, rss in self.peak_parts.items())
        return f"peak {self.peak >> 20} MiB over {self.samples} samples ({parts}); limit {LIMIT >> 20} MiB"


@pytest.fixture(scope="module")
def small_sc() -> Iterator[tuple[SparkContext, int, dict[int, int]]]:
    before = set(descendants())
    conf = (SparkConf().set("spark.executor.memory", MEMORY).set("spark.executor.memoryOverhead", OVERHEAD)
            .set("spark.ui.showConsoleProgress", "false"))
    sc = SparkContext("local[2]", "memory-test", conf=conf)
    try:
        executors = [pid for pid, (ppid, *_) in descendants().items() if pid not in before and ppid == os.getpid()]
        assert len(executors) == 1, f"expected one local executor process, found {executors}"
        slots = {pid: resident_bytes(pid) for pid in descendants(executors[0])}
        assert len(slots) == 2, slots
        yield sc, executors[0], slots
    finally:
        sc.stop()


# -- records: made inside the tasks from their index, so the driver never holds them
def _grouped_records(m: int) -> Iterator[tuple[int, str]]:
    return ((j % KEYS, str(j).rjust(VALUE, "x")) for j in range(m * RECORDS // MAPS, (m + 1) * RECORDS // MAPS))


def _group_summary(kv: tuple[int, Any]) -> tuple[int, tuple[int, int]]:
    values = list(kv[1])
    return kv[0], (len(values), sum(int(v.lstrip("x")) for v in values))


def _sort_records(m: int) -> Iterator[tuple[int, str]]:
    # 7919 is prime and RECORDS is not a multiple of it: the keys are a permutation of range(RECORDS)
    return (((j * 7919) % RECORDS, str(j).rjust(VALUE, "y"))
            for j in range(m * RECORDS // MAPS, (m + 1) * RECORDS // MAPS))


def _sorted_partition_summary(index: int, it: Iterator[tuple[int, str]]) -> list[tuple[int, int, int, int, bool]]:
    """(partition, records, first key, last key, every key above the one before and each value
    the one its key was made with) of one sorted partition."""
    n, first, prev, ok = 0, -1, -1, True
    for k, v in it:
        j = int(v.lstrip("y"))
        ok = ok and k > prev and (j * 7919) % RECORDS == k
        if n == 0:
            first = k
        prev = k
        n += 1
    return [(index, n, first, prev, ok)]


@pytest.mark.slow
def test_group_by_key_four_times_executor_memory(small_sc: tuple[SparkContext, int, dict[int, int]]) -> None:
    sc, executor, _ = small_sc
    # two reducers: each reads half of the shuffle, about twice the executor's memory
    grouped = sc.parallelize(range(MAPS), MAPS).flatMap(_grouped_records).groupByKey(2).map(_group_summary)
    with ResidentSampler(executor) as sampler:
        result = dict(grouped.collect())
    expected: dict[int, list[int]] = {}
    for j in range(RECORDS):
        entry = expected.setdefault(j % KEYS, [0, 0])
        entry[0] += 1
        entry[1] += j
    assert result == {k: (c, s) for k, (c, s) in expected.items()}
    assert sampler.samples > 20, sampler.report()
    assert sampler.peak < LIMIT, sampler.report()


@pytest.mark.slow
def test_sort_by_key_four_times_executor_memory(small_sc: tuple[SparkContext, int, dict[int, int]]) -> None:
    sc, executor, _ = small_sc
    ordered = sc.parallelize(range(MAPS), MAPS).flatMap(_sort_records).sortByKey(True, 4)
    with ResidentSampler(executor) as sampler:
        parts = sorted(ordered.mapPartitionsWithIndex(_sorted_partition_summary).collect())
    assert sum(n for _, n, *_ in parts) == RECORDS
    assert all(ok for *_, ok in parts), parts
    non_empty = [p for p in parts if p[1]]
    assert non_empty[0][2] == 0 and non_empty[-1][3] == RECORDS - 1
    assert all(a[3] < b[2] for a, b in zip(non_empty, non_empty[1:])), "partitions are in key order"
    assert sampler.peak < LIMIT, sampler.report()


@pytest.mark.slow
def test_reduce_by_key_of_mostly_distinct_keys(small_sc: tuple[SparkContext, int, dict[int, int]]) -> None:
    """Map-side combining saves nothing here: the map tasks' combiners and the reducers'
    maps fill and spill."""
    sc, executor, _ = small_sc
    distinct = RECORDS // 2
    pairs = sc.parallelize(range(MAPS), MAPS).flatMap(_grouped_records).map(
        lambda kv: (int(kv[1].lstrip("x")) % distinct, kv[1]))
    summed = pairs.mapValues(len).reduceByKey(lambda a, b: a + b, 4)
    with ResidentSampler(executor) as sampler:
        counts = summed.map(lambda kv: kv[1]).countByValue()
    expected: dict[int, int] = {}
    for j in range(RECORDS):
        expected[j % distinct] = expected.get(j % distinct, 0) + VALUE
    assert dict(counts) == dict(collections.Counter(expected.values()))
    assert sampler.peak < LIMIT, sampler.report()


def test_remote_shuffle_reads_come_in_chunks(small_sc: tuple[SparkContext, int, dict[int, int]]) -> None:
    """A reducer reads another executor's map output through its block server in ranges:
    batches cut across chunks still decode to the very records a local read gives."""
    sc, _, _ = small_sc
    pairs = sc.parallelize([(i % 97, "v" * (i % 50)) for i in range(20_000)], 4).partitionBy(3)
    local = pairs.glom().map(sorted).collect()
    remote = pairs.mapPartitions(_read_through_block_server).collect()
    assert [len(p) for p in local] == [len(p) for p in remote]
    assert remote == local


def _read_through_block_server(_: Iterator[Any]) -> list[list[Any]]:
    from sparkctl.taskcontext import TaskContext
    tc = TaskContext.get()
    assert tc is not None
    shuffle.FETCH_CHUNK = 1000  # in this slot only: a few hundred chunks, batches span them
    [(shuffle_id, statuses)] = tc.shuffle_statuses.items()
    records = shuffle.read_shuffle(shuffle_id, tc.partitionId(), statuses, "another-host", tc.env.shuffle_client)
    return [sorted(records)]


def test_a_shuffle_into_one_partition_keeps_every_batch(small_sc: tuple[SparkContext, int, dict[int, int]]) -> None:
    sc, _, _ = small_sc
    sizes = sc.parallelize(range(5000), 3).map(lambda x: (x % 7, x)).groupByKey(1).mapValues(len).collectAsMap()
    assert sizes == dict(collections.Counter(x % 7 for x in range(5000)))


def test_task_slots_give_memory_back(small_sc: tuple[SparkContext, int, dict[int, int]]) -> None:
    """After the shuffles above (this module's tests run in order), each task slot at rest
    is back near the resident set it started with: spilled collections were freed and
    their pages returned, not kept for the next task. (Kept, they came to over 100 MiB a
    slot here; what may stay is what the slot's modules and caches grew by, and up to
    8 MiB it does not bother to hand back.)"""
    sc, executor, started = small_sc
    assert sum(sc.parallelize(range(4), 2).map(lambda x: x).collect()) == 6  # the slots are idle after a job
    now = {pid: resident_bytes(pid) for pid in descendants(executor)}
    assert set(now) == set(started), "task slots are kept warm: the same processes ran every job"
    for pid, rss in now.items():
        assert rss - started[pid] < 32 << 20, f"slot {pid}: {started[pid] >> 20} MiB at start, {rss >> 20} MiB now"
