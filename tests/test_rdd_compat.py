"""PySpark compatibility of the RDD layer: module paths, the running task's context,
user code that raises StopIteration or calls sys.exit(), and the small methods and checks
PySpark has (takeSample's bound, countApproxDistinct's accuracy, StatCounter over numpy
arrays, binaryFiles, binaryRecords, sampleByKey, is_checkpointed, resources).

The reference is PySpark's documented behaviour (its API docs and python/pyspark/tests:
test_rdd, test_taskcontext, test_statcounter) or plain Python.
"""
from __future__ import annotations

import io
import math
import os
import pickle
import statistics
import sys
import typing
from collections import Counter
from itertools import islice
from typing import Iterator, Tuple

import pytest

from sparkctl import SparkContext, TaskContext
from sparkctl.errors import TaskExitError, UserStopIterationError
from sparkctl.rdd.statcounter import StatCounter

pytestmark = pytest.mark.timeout(60)

STOP_MESSAGE = "Caught StopIteration thrown from user's code"


# ----------------------------------------------------------------------------- module paths
def test_module_paths_mirror_pyspark() -> None:
    import sparkctl
    import sparkctl.rdd
    import sparkctl.taskcontext
    from sparkctl.rdd import RDD
    from sparkctl.resultiterable import ResultIterable
    from sparkctl.statcounter import StatCounter as StatCounterAtPySparksPath
    from sparkctl.serializers import (AutoBatchedSerializer, BatchedSerializer, CloudPickleSerializer,
                                      CPickleSerializer, MarshalSerializer, PickleSerializer)
    assert RDD is sparkctl.RDD and sparkctl.rdd.RDD is RDD
    assert sparkctl.taskcontext.TaskContext is sparkctl.TaskContext
    # pyspark/__init__.py's names
    for name in ("SparkConf", "SparkContext", "SparkFiles", "RDD", "StorageLevel", "Broadcast", "Accumulator",
                 "AccumulatorParam", "MarshalSerializer", "CPickleSerializer", "StatusTracker", "SparkJobInfo",
                 "SparkStageInfo", "Profiler", "BasicProfiler", "TaskContext", "RDDBarrier", "BarrierTaskContext",
                 "BarrierTaskInfo", "InheritableThread"):
        assert name in sparkctl.__all__ and getattr(sparkctl, name) is not None, name
    from sparkctl import BarrierTaskContext, InheritableThread, SparkFiles  # noqa: F401
    assert CPickleSerializer is PickleSerializer
    assert ResultIterable is sparkctl.ResultIterable and StatCounterAtPySparksPath is StatCounter
    assert {AutoBatchedSerializer, BatchedSerializer, CloudPickleSerializer, MarshalSerializer}


def test_active_spark_context_is_the_running_one(sc: SparkContext) -> None:
    assert SparkContext._active_spark_context is sc


def test_rdd_is_subscriptable_in_type_hints(sc: SparkContext) -> None:
    from sparkctl import RDD

    from sparkctl.resultiterable import ResultIterable
    assert typing.get_origin(ResultIterable[str]) is ResultIterable
    alias = RDD[Tuple[int, int]]
    assert typing.get_origin(alias) is RDD and typing.get_args(alias) == (Tuple[int, int],)
    # a module-level annotation is evaluated when it runs (Spark's sort.py has one)
    namespace = {"RDD": RDD, "Tuple": Tuple, "rdd": sc.parallelize([(2, 1), (1, 1)], 2)}
    exec(compile("ordered: RDD[Tuple[int, int]] = rdd.sortByKey()", "<sort.py>", "exec", dont_inherit=True),
         namespace)
    assert namespace["__annotations__"]["ordered"] == alias
    assert namespace["ordered"].collect() == [(1, 1), (2, 1)]


@pytest.mark.parametrize("name", ["PickleSerializer", "CloudPickleSerializer", "MarshalSerializer"])
def test_serializers_round_trip_a_stream(name: str) -> None:
    from sparkctl import serializers
    ser = getattr(serializers, name)()
    records = [1, "two", (3, 4.5), {"k": [6]}, None]
    for wrapped in (ser, serializers.BatchedSerializer(ser, 2), serializers.BatchedSerializer(ser),
                    serializers.AutoBatchedSerializer(ser, bestSize=16)):
        buf = io.BytesIO()
        wrapped.dump_stream(iter(records), buf)
        buf.seek(0)
        assert list(wrapped.load_stream(buf)) == records, wrapped
    assert ser.loads(ser.dumps(records)) == records
    assert ser == getattr(serializers, name)()


def test_cloudpickle_serializer_carries_functions_by_value() -> None:
    from sparkctl.serializers import CloudPickleSerializer, PickleSerializer
    offset = 7
    f = lambda x: x + offset  # noqa: E731 - a lambda, which plain pickle refuses
    assert CloudPickleSerializer().loads(CloudPickleSerializer().dumps(f))(1) == 8
    with pytest.raises((pickle.PicklingError, AttributeError)):
        PickleSerializer().dumps(f)


# ----------------------------------------------------------------------------- TaskContext
def _context_of(index: int, it: Iterator[int]) -> Iterator[tuple]:
    tc = TaskContext.get()
    made = TaskContext()
    assert tc is not None and made is tc
    yield (index, tc.partitionId(), tc.stageId(), tc.attemptNumber(), tc.taskAttemptId(), tc.cpus(),
           tc.resources(), tc.getLocalProperty("test.prop"), sum(it))


def test_task_context_in_tasks(sc: SparkContext) -> None:
    sc.setLocalProperty("test.prop", "seen-in-task")
    try:
        rows = sc.parallelize(range(12), 3).mapPartitionsWithIndex(_context_of).collect()
    finally:
        sc.setLocalProperty("test.prop", None)
    assert [r[0] for r in rows] == [0, 1, 2] and [r[1] for r in rows] == [0, 1, 2]
    assert len({r[2] for r in rows}) == 1 and isinstance(rows[0][2], int)  # one stage
    assert [r[3] for r in rows] == [0, 0, 0]  # first attempts
    assert len({r[4] for r in rows}) == 3  # a task attempt id each
    assert all(r[5] == 1 and r[6] == {} and r[7] == "seen-in-task" for r in rows)
    assert [r[8] for r in rows] == [sum(range(0, 4)), sum(range(4, 8)), sum(range(8, 12))]
    # each job's stage has its own id (PySpark's test_stage_id)
    again = sc.parallelize(range(12), 3).mapPartitionsWithIndex(_context_of).collect()
    assert again[0][2] != rows[0][2] and len({r[2] for r in again}) == 1
    # map, filter, foreach and a shuffle's map side see it too
    assert sc.parallelize(range(4), 2).map(lambda x: TaskContext().partitionId()).collect() == [0, 0, 1, 1]
    keyed = sc.parallelize(range(6), 3).map(lambda x: (TaskContext.get().partitionId(), 1)).reduceByKey(
        lambda a, b: a + b)
    assert sorted(keyed.collect()) == [(0, 2), (1, 2), (2, 2)]


def test_task_context_on_the_driver(sc: SparkContext) -> None:
    assert TaskContext.get() is None
    empty = TaskContext()
    assert empty.partitionId() is None and empty.stageId() is None and empty.taskAttemptId() is None
    assert empty.getLocalProperty("x") is None and empty.resources() == {}
    assert TaskContext.get() is None


# ----------------------------------------------------------------------------- StopIteration
def _stop_at(bad: int):
    def f(x: int) -> int:
        if x == bad:
            raise StopIteration(f"stop at {x}")
        return x
    return f


@pytest.mark.parametrize("bad", [3, 9])  # in the middle of a partition; the last record of the last one
@pytest.mark.parametrize("build", ["map", "filter", "flatMap", "map-then-filter", "mapValues",
                                   "after-mapPartitions", "before-mapPartitions", "glom"])
def test_stop_iteration_in_user_code_fails_the_task(sc: SparkContext, build: str, bad: int) -> None:
    rdd = sc.parallelize(range(10), 2)
    f = _stop_at(bad)
    if build == "map":
        out = rdd.map(f)
    elif build == "filter":
        out = rdd.filter(lambda x: f(x) >= 0)
    elif build == "flatMap":
        out = rdd.flatMap(lambda x: [f(x)])
    elif build == "map-then-filter":
        out = rdd.map(lambda x: x).filter(lambda x: True).map(f)
    elif build == "mapValues":
        out = rdd.map(lambda x: (x, x)).mapValues(f)
    elif build == "after-mapPartitions":  # fused behind a step that may stop early on purpose
        out = rdd.mapPartitions(lambda it: it).map(f)
    elif build == "before-mapPartitions":
        out = rdd.map(f).mapPartitions(lambda it: it)
    else:
        out = rdd.map(f).glom()
    for action in (out.collect, out.count, lambda: out.take(100)):
        with pytest.raises(UserStopIterationError, match=STOP_MESSAGE):
            action()
    with pytest.raises(UserStopIterationError, match=STOP_MESSAGE):
        out.map(lambda x: (repr(x), 1)).reduceByKey(lambda a, b: a + b).collect()  # in a shuffle's map side


def test_stop_iteration_in_actions_fails_the_task(sc: SparkContext) -> None:
    rdd = sc.parallelize(range(10), 2)
    with pytest.raises(UserStopIterationError, match=STOP_MESSAGE):
        rdd.foreach(_stop_at(4))
    with pytest.raises(UserStopIterationError, match=STOP_MESSAGE):
        rdd.reduce(lambda a, b: a + _stop_at(4)(b))
    # combining the partitions' results on the driver: 0+1+2+3+4 = 10 is the first partition's
    with pytest.raises(UserStopIterationError, match=STOP_MESSAGE):
        rdd.reduce(lambda a, b: _stop_at(10)(a) + b)
    with pytest.raises(UserStopIterationError, match=STOP_MESSAGE):
        rdd.fold(0, lambda a, b: a + _stop_at(35)(b))  # 35 = 5+6+7+8+9, the second partition's sum
    with pytest.raises(UserStopIterationError, match=STOP_MESSAGE):
        rdd.aggregate(0, lambda a, b: a + b, lambda a, b: a + _stop_at(35)(b))


def test_stopping_early_on_purpose_is_not_an_error(sc: SparkContext) -> None:
    rdd = sc.parallelize(range(100), 2)
    # a mapPartitions function may stop before its input ends; take stops the pipeline early
    assert rdd.mapPartitions(lambda it: islice(it, 3)).collect() == [0, 1, 2, 50, 51, 52]
    assert rdd.map(lambda x: x * 2).take(3) == [0, 2, 4]

    class Countdown:  # an iterator class ends with StopIteration: the protocol, not an error
        def __init__(self, n: int) -> None:
            self.n = n

        def __iter__(self) -> "Countdown":
            return self

        def __next__(self) -> int:
            if self.n == 0:
                raise StopIteration
            self.n -= 1
            return self.n

    assert rdd.flatMap(lambda x: Countdown(x % 3)).count() == sum(x % 3 for x in range(100))
    assert sc.parallelize([], 2).map(lambda x: x).collect() == []


# ----------------------------------------------------------------------------- sys.exit in a task
def test_sys_exit_in_a_task_fails_the_job_not_the_driver(sc: SparkContext) -> None:
    def leave(x: int) -> int:
        if x == 5:
            sys.exit(3)
        return x

    with pytest.raises(TaskExitError, match=r"sys\.exit\(3\)") as info:
        sc.parallelize(range(10), 2).map(leave).collect()
    assert info.value.code == 3
    # the executor's slots survived: the context still runs jobs
    assert sc.parallelize(range(10), 2).map(lambda x: x + 1).sum() == 55


# ----------------------------------------------------------------------------- small methods and checks
def test_take_sample_refuses_impossible_sizes(sc: SparkContext) -> None:
    rdd = sc.parallelize(range(10), 2)
    with pytest.raises(ValueError, match="Sample size cannot be greater than"):
        rdd.takeSample(False, sys.maxsize)
    with pytest.raises(ValueError, match="Sample size cannot be negative"):
        rdd.takeSample(True, -1)
    assert sorted(rdd.takeSample(False, 20, seed=1)) == list(range(10))
    assert len(rdd.takeSample(True, 20, seed=1)) == 20


def test_count_approx_distinct(sc: SparkContext) -> None:
    rdd = sc.parallelize([i % 37 for i in range(1000)], 4)
    assert rdd.countApproxDistinct() == 37
    assert rdd.countApproxDistinct(0.000017) == 37
    for bad in (0.000016, 1e-8, 0.0):
        with pytest.raises(ValueError, match="relativeSD should be greater than 0.000017"):
            rdd.countApproxDistinct(bad)


def test_stats_as_dict_as_pyspark(sc: SparkContext) -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    d = sc.parallelize(values, 2).stats().asDict()
    # PySpark's asDict() gives the sample deviation and variance unless sample=True
    assert d["count"] == 4 and d["max"] == 4.0 and d["min"] == 1.0 and d["mean"] == 2.5 and d["sum"] == 10.0
    assert d["stdev"] == pytest.approx(statistics.stdev(values))
    assert d["variance"] == pytest.approx(statistics.variance(values))
    s = sc.parallelize(values, 2).stats().asDict(sample=True)
    assert s["stdev"] == pytest.approx(statistics.pstdev(values))
    assert s["variance"] == pytest.approx(statistics.pvariance(values))


def test_stat_counter_over_numpy_arrays(sc: SparkContext) -> None:
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(5)
    rows = [rng.normal(size=3) for _ in range(50)]
    matrix = np.vstack(rows)
    for st in (StatCounter(rows), sc.parallelize(rows, 3).stats()):
        assert st.count() == 50
        np.testing.assert_allclose(st.mean(), matrix.mean(axis=0))
        np.testing.assert_allclose(st.max(), matrix.max(axis=0))
        np.testing.assert_allclose(st.min(), matrix.min(axis=0))
        np.testing.assert_allclose(st.variance(), matrix.var(axis=0))
        np.testing.assert_allclose(st.stdev(), matrix.std(axis=0))
        np.testing.assert_allclose(st.sampleStdev(), matrix.std(axis=0, ddof=1))
        np.testing.assert_allclose(st.sum(), matrix.sum(axis=0))
    merged = StatCounter(rows[:10]).mergeStats(StatCounter(rows[10:]))
    np.testing.assert_allclose(merged.mean(), matrix.mean(axis=0))
    np.testing.assert_allclose(merged.max(), matrix.max(axis=0))
    first = StatCounter(rows[:10])
    before = first.mean().copy()
    StatCounter().mergeStats(first).merge(rows[20])  # merging into a copy leaves `first` alone
    np.testing.assert_allclose(first.mean(), before)


def test_binary_files(sc: SparkContext, tmp_path) -> None:
    blobs = {f"part-{i}.bin": os.urandom(100 + i) for i in range(5)}
    for name, data in blobs.items():
        (tmp_path / name).write_bytes(data)
    got = dict(sc.binaryFiles(str(tmp_path), 3).collect())
    assert got == {"file:" + str(tmp_path / name): data for name, data in blobs.items()}
    one = sc.binaryFiles(str(tmp_path / "part-2.bin")).collect()
    assert one == [("file:" + str(tmp_path / "part-2.bin"), blobs["part-2.bin"])]


def test_binary_records(sc: SparkContext, tmp_path) -> None:
    size = 7
    records = [bytes([i % 256]) * size for i in range(5000)]
    data = tmp_path / "records.bin"
    data.write_bytes(b"".join(records))
    rdd = sc.binaryRecords(str(data), size)
    assert rdd.collect() == records
    # split into many ranges: each record read once, whole, whichever range it starts in
    from sparkctl.rdd.binary import BinaryRecordsRDD
    many = BinaryRecordsRDD(sc, str(data), size, 9)
    assert many.getNumPartitions() >= 9 and many.collect() == records
    (tmp_path / "partial.bin").write_bytes(b"x" * (size * 3 + 2))
    with pytest.raises(ValueError, match="Partial record"):
        sc.binaryRecords(str(tmp_path / "partial.bin"), size).collect()
    with pytest.raises(ValueError, match="record length"):
        sc.binaryRecords(str(data), 0)


def test_sample_by_key(sc: SparkContext) -> None:
    pairs = [(k, i) for i in range(2000) for k in ("a", "b", "c")]
    rdd = sc.parallelize(pairs, 4)
    fractions = {"a": 0.1, "b": 0.5, "c": 0.0}
    sample = rdd.sampleByKey(False, fractions, seed=11).collect()
    assert sample == rdd.sampleByKey(False, fractions, seed=11).collect()  # a seed picks the same rows
    counts = Counter(k for k, _ in sample)
    assert counts["c"] == 0
    assert abs(counts["a"] - 200) < 60 and abs(counts["b"] - 1000) < 120
    assert set(sample) <= set(pairs) and len(set(sample)) == len(sample)
    with_repl = Counter(k for k, _ in rdd.sampleByKey(True, {"a": 2.0, "b": 0.5, "c": 0.0}, seed=3).collect())
    assert abs(with_repl["a"] - 4000) < 300 and abs(with_repl["b"] - 1000) < 150 and with_repl["c"] == 0
    with pytest.raises(ValueError, match="Negative fraction"):
        rdd.sampleByKey(False, {"a": -0.1, "b": 0.1, "c": 0.1})


def test_is_checkpointed_and_resources(sc: SparkContext, tmp_path) -> None:
    before = sc.getCheckpointDir()
    sc.setCheckpointDir(str(tmp_path))
    try:
        rdd = sc.parallelize(range(10), 2).map(lambda x: x * 3)
        assert rdd.is_checkpointed is False and rdd.isCheckpointed() is False
        rdd.checkpoint()
        assert rdd.sum() == 135
        assert rdd.is_checkpointed is True and rdd.isCheckpointed() is True
    finally:
        sc._checkpoint_dir = before
    assert sc.resources == {}


def test_seeded_sampling_is_reproducible_plain_python_reference() -> None:
    # the stratified sampler draws from the same per-partition generator as sample():
    # a partition's picks depend only on the seed and the partition index
    from sparkctl.rdd.sampling import StratifiedSampler
    data = [("k", i) for i in range(1000)]
    a = list(StratifiedSampler(False, {"k": 0.3}, 42)(1, iter(data)))
    b = list(StratifiedSampler(False, {"k": 0.3}, 42)(1, iter(data)))
    c = list(StratifiedSampler(False, {"k": 0.3}, 42)(2, iter(data)))
    assert a == b and a != c and 200 < len(a) < 400
    assert math.isclose(len(a) / 1000, 0.3, abs_tol=0.08)
