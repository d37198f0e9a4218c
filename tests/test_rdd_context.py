"""SparkContext settings, shared variables (broadcast, accumulators), persistence,
checkpoints and RDD metadata, on the shared local[2] context."""
from __future__ import annotations

import os

import pytest

from sparkctl import AccumulatorParam, SparkContext, StorageLevel, TaskContext


# ---------------------------------------------------------------------------- context
def test_default_parallelism_and_min_partitions(sc):
    assert sc.defaultParallelism == 2
    assert sc.defaultMinPartitions == min(sc.defaultParallelism, 2)
    assert sc.parallelize(range(10)).getNumPartitions() == sc.defaultParallelism


def test_get_or_create_returns_the_running_context(sc):
    assert SparkContext.getOrCreate() is sc
    with pytest.raises(ValueError):
        SparkContext("local[1]")
    assert SparkContext.getOrCreate() is sc
    assert sc.parallelize([1, 2]).count() == 2


def test_set_log_level(sc):
    for level in ("INFO", "debug", "ERROR", "OFF", "WARN"):
        sc.setLogLevel(level)
    with pytest.raises(Exception):
        sc.setLogLevel("NOT-A-LEVEL")
    assert sc.parallelize(range(5), 2).sum() == 10


def test_set_job_group(sc):
    sc.setJobGroup("group-7", "a described job")
    try:
        assert sc.getLocalProperty("spark.jobGroup.id") == "group-7"
        assert sc.getLocalProperty("spark.job.description") == "a described job"
        assert sc.parallelize(range(4), 2).sum() == 6
    finally:
        for key in ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel"):
            sc.setLocalProperty(key, None)
    assert sc.getLocalProperty("spark.jobGroup.id") is None


def test_job_group_and_local_properties_reach_tasks(sc):
    sc.setJobGroup("group-8", "another job")
    sc.setLocalProperty("my.key", "my value")
    try:
        seen = sc.parallelize(range(4), 2).mapPartitions(
            lambda it: [tuple(TaskContext.get().getLocalProperty(k)
                              for k in ("spark.jobGroup.id", "spark.job.description", "my.key"))]).collect()
        assert seen == [("group-8", "another job", "my value")] * 2
    finally:
        for key in ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel", "my.key"):
            sc.setLocalProperty(key, None)


# ---------------------------------------------------------------------------- RDD metadata
def test_id_name_context_num_partitions(sc):
    a = sc.parallelize(range(5), 3)
    b = a.map(lambda x: x)
    assert isinstance(a.id(), int) and b.id() > a.id()
    assert a.context is sc
    assert a.name() is None
    assert a.setName("my numbers") is a
    assert a.name() == "my numbers"
    assert "my numbers" in a.toDebugString().decode()
    assert a.getNumPartitions() == 3 and b.getNumPartitions() == 3


def test_to_debug_string(sc):
    base = sc.parallelize(range(10), 3).setName("base")
    shuffled = base.map(lambda x: (x % 2, x)).reduceByKey(lambda a, b: a + b, 2).mapValues(str)
    s = shuffled.toDebugString()
    assert isinstance(s, bytes)
    text = s.decode()
    lines = text.splitlines()
    assert lines[0].startswith("(2)")
    assert text.count("+-") == 1
    assert "base" in lines[-1] and "(3)" in lines[-1]
    cached = base.map(lambda x: x).cache()
    assert "Memory Serialized 1x Replicated" in cached.toDebugString().decode().splitlines()[0]
    cached.unpersist()


# ---------------------------------------------------------------------------- persistence
def _counted(sc, n=20, parts=4):
    acc = sc.accumulator(0)

    def touch(x):
        acc.add(1)
        return x * 2
    return sc.parallelize(range(n), parts).map(touch), acc


@pytest.mark.parametrize("level", [StorageLevel.MEMORY_ONLY, StorageLevel.MEMORY_AND_DISK, StorageLevel.DISK_ONLY])
def test_persist_computes_once(sc, level):
    rdd, acc = _counted(sc)
    assert rdd.getStorageLevel() == StorageLevel.NONE
    assert rdd.persist(level) is rdd
    assert rdd.getStorageLevel() == level
    assert rdd.collect() == [x * 2 for x in range(20)]
    assert acc.value == 20
    assert rdd.count() == 20
    assert rdd.map(lambda x: x + 1).collect() == [x * 2 + 1 for x in range(20)]
    assert rdd.sum() == sum(x * 2 for x in range(20))
    assert acc.value == 20  # every later job read the cached blocks
    assert rdd.unpersist() is rdd
    assert rdd.getStorageLevel() == StorageLevel.NONE
    assert rdd.count() == 20
    assert acc.value == 40  # recomputed after unpersist


def test_cache_and_storage_level_values(sc):
    rdd, acc = _counted(sc)
    assert rdd.cache() is rdd
    assert rdd.getStorageLevel() == StorageLevel.MEMORY_ONLY == StorageLevel(False, True, False, False, 1)
    assert str(rdd.getStorageLevel()) == "Memory Serialized 1x Replicated"
    assert str(StorageLevel.DISK_ONLY) == "Disk Serialized 1x Replicated"
    assert str(StorageLevel.MEMORY_AND_DISK_2) == "Disk Memory Serialized 2x Replicated"
    assert repr(StorageLevel.MEMORY_AND_DISK) == "StorageLevel(True, True, False, False, 1)"
    rdd.count()
    rdd.count()
    assert acc.value == 20
    with pytest.raises(Exception):
        rdd.persist(StorageLevel.DISK_ONLY)  # a level cannot change once assigned
    rdd.cache()  # the same level again is fine
    rdd.unpersist()
    rdd.persist(StorageLevel.DISK_ONLY)  # after unpersist any level may be chosen
    assert rdd.getStorageLevel() == StorageLevel.DISK_ONLY
    rdd.unpersist()


def test_cached_shuffle_output_is_reused(sc):
    acc = sc.accumulator(0)

    def touch(kv):
        acc.add(1)
        return kv
    rdd = sc.parallelize([(i % 3, i) for i in range(30)], 3).reduceByKey(lambda a, b: a + b).map(touch).cache()
    first = sorted(rdd.collect())
    assert first == sorted({k: sum(i for i in range(30) if i % 3 == k) for k in range(3)}.items())
    assert sorted(rdd.collect()) == first
    assert acc.value == 3
    rdd.unpersist()


# ---------------------------------------------------------------------------- checkpoints
@pytest.fixture
def checkpoint_dir(sc, tmp_path):
    """A checkpoint directory on the shared context, unset again afterwards (no public
    API unsets it, so later tests would otherwise inherit it)."""
    saved = sc.getCheckpointDir()
    sc.setCheckpointDir(str(tmp_path / "ckpt"))
    yield tmp_path / "ckpt"
    sc._checkpoint_dir = saved


def test_checkpoint(sc, checkpoint_dir):
    rdd, acc = _counted(sc, 12, 3)
    doubled = rdd.map(lambda x: x + 1)
    doubled.checkpoint()
    lineage_before = doubled.toDebugString().decode()
    assert not doubled.isCheckpointed()
    assert doubled.getCheckpointFile() is None
    assert doubled.collect() == [x * 2 + 1 for x in range(12)]
    assert doubled.isCheckpointed()
    path = doubled.getCheckpointFile()
    assert path is not None and path.startswith("file:")
    local = path[len("file:"):]
    assert os.path.isdir(local) and local.startswith(str(checkpoint_dir))
    assert os.path.basename(local) == f"rdd-{doubled.id()}"
    before = acc.value
    assert doubled.collect() == [x * 2 + 1 for x in range(12)]
    assert doubled.map(lambda x: -x).sum() == -sum(x * 2 + 1 for x in range(12))
    assert acc.value == before  # read back from the checkpoint, the lineage is not run again
    assert "ParallelCollectionRDD" in lineage_before
    assert "ParallelCollectionRDD" not in doubled.toDebugString().decode()  # the lineage was cut
    # a checkpointed pair RDD keeps its partitioner, so no new shuffle is needed
    pairs = sc.parallelize([(i, i) for i in range(20)], 2).partitionBy(3)
    pairs.checkpoint()
    pairs.count()
    assert pairs.isCheckpointed()
    assert pairs.partitioner is not None and pairs.reduceByKey(max, 3).toDebugString().decode().count("+-") == 0
    assert sorted(pairs.reduceByKey(max, 3).collect()) == [(i, i) for i in range(20)]


def test_checkpoint_needs_a_directory(sc):
    if sc.getCheckpointDir() is not None:
        pytest.skip("an earlier test left a checkpoint directory set")
    with pytest.raises(Exception, match="[Cc]heckpoint directory"):
        sc.parallelize([1]).checkpoint()


def test_local_checkpoint(sc):
    rdd, acc = _counted(sc, 10, 2)
    rdd.localCheckpoint()
    assert rdd.isLocallyCheckpointed()
    assert not rdd.isCheckpointed()
    assert rdd.getStorageLevel() == StorageLevel.MEMORY_AND_DISK
    assert rdd.collect() == [x * 2 for x in range(10)]
    assert rdd.isCheckpointed()
    assert rdd.getCheckpointFile() is None
    assert rdd.count() == 10
    assert acc.value == 10
    rdd.unpersist()


# ---------------------------------------------------------------------------- broadcast
def test_broadcast_value_in_tasks(sc):
    table = {i: f"v{i}" for i in range(100)}
    b = sc.broadcast(table)
    assert b.value == table
    assert isinstance(b.id, int)
    rdd = sc.parallelize(range(100), 4)
    assert rdd.map(lambda x: b.value[x]).collect() == [table[i] for i in range(100)]
    big = sc.broadcast(list(range(200_000)))
    assert rdd.map(lambda x: big.value[x * 1000] + len(big.value)).collect() == [x * 1000 + 200_000 for x in range(100)]
    assert rdd.map(lambda x: (b.value[x], big.value[x])).collect() == [(table[i], i) for i in range(100)]
    big.destroy()


def test_broadcast_unpersist_then_reuse(sc):
    b = sc.broadcast([10, 20, 30])
    rdd = sc.parallelize(range(3), 3)
    assert rdd.map(lambda i: b.value[i]).collect() == [10, 20, 30]
    b.unpersist()
    assert rdd.map(lambda i: b.value[i] + 1).collect() == [11, 21, 31]  # sent again when needed
    assert b.value == [10, 20, 30]
    b.unpersist(blocking=True)
    assert rdd.map(lambda i: -b.value[i]).collect() == [-10, -20, -30]


def test_broadcast_destroy_then_use_fails(sc):
    b = sc.broadcast({"k": 1})
    rdd = sc.parallelize(range(4), 2)
    assert rdd.map(lambda x: b.value["k"] + x).collect() == [1, 2, 3, 4]
    b.destroy()
    with pytest.raises(Exception, match="destroyed"):
        rdd.map(lambda x: b.value["k"] + x).collect()
    assert rdd.map(lambda x: x).collect() == [0, 1, 2, 3]  # the context is still usable


# ---------------------------------------------------------------------------- accumulators
def test_accumulator_counts_once_per_task(sc):
    acc = sc.accumulator(0)
    facc = sc.accumulator(0.0)
    rdd = sc.parallelize(range(100), 7)

    def f(x):
        acc.add(1)
        facc.add(0.5)
    rdd.foreach(f)
    assert acc.value == 100
    assert facc.value == pytest.approx(50.0)

    def g(it):
        global_acc = acc
        global_acc += sum(1 for _ in it)
    rdd.foreachPartition(g)
    assert acc.value == 200
    # an accumulator updated in a transformation counts each time that transformation runs
    mapped = rdd.map(lambda x: acc.add(1) or x)
    mapped.count()
    mapped.count()
    assert acc.value == 400
    acc.value = 5
    assert acc.value == 5 and str(acc) == "5"
    sc.parallelize([1, 2, 3], 3).foreach(lambda x: acc.add(x))
    assert acc.value == 11


def test_accumulator_take_reads_only_what_it_needs(sc):
    """take() stops pulling records once it has enough, so a map before it runs only
    for the records taken (PySpark's lazy per-partition iterator does the same)."""
    acc = sc.accumulator(0)
    rdd = sc.parallelize(range(20), 4)
    rdd.foreach(lambda x: acc.add(1))
    assert acc.value == 20
    assert rdd.map(lambda x: acc.add(1) or x).take(3) == [0, 1, 2]
    assert acc.value == 23


class VectorParam(AccumulatorParam):
    def zero(self, value):
        return [0.0] * len(value)

    def addInPlace(self, v1, v2):
        for i in range(len(v1)):
            v1[i] += v2[i]
        return v1


class SetParam(AccumulatorParam):
    def zero(self, value):
        return set()

    def addInPlace(self, a, b):
        a |= b if isinstance(b, set) else {b}
        return a


def test_custom_accumulator_param(sc):
    vec = sc.accumulator([1.0, 2.0, 3.0], VectorParam())
    sc.parallelize(range(10), 3).foreach(lambda x: vec.add([x, 2 * x, 1.0]))
    assert vec.value == [1.0 + 45, 2.0 + 90, 3.0 + 10]
    seen = sc.accumulator(set(), SetParam())
    sc.parallelize("abcabcxyz", 4).foreach(lambda c: seen.add(c))
    assert seen.value == set("abcxyz")
    with pytest.raises(TypeError):
        sc.accumulator("no default param for str")


def test_accumulator_value_inside_task_raises(sc):
    acc = sc.accumulator(0)
    with pytest.raises(Exception, match="Accumulator.value cannot be accessed inside tasks"):
        sc.parallelize(range(4), 2).map(lambda x: acc.value + x).collect()
    with pytest.raises(Exception, match="cannot be accessed inside tasks"):
        sc.parallelize(range(4), 2).foreach(lambda x: setattr(acc, "value", x))
    assert acc.value == 0
