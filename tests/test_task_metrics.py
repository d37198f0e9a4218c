"""Task metrics (Spark's TaskMetrics) measured in the executors reach the driver in each
task's outcome, and agree with what plain Python computes about the same data: lines and
bytes of the input file, pairs left after the map-side combine, slices of the shuffle
files, bytes of the part files written, sizes of pickled results.

The driver's status path is wrapped (in these tests only) to keep every unpickled
TaskOutcome with the executor that sent it.
"""
from __future__ import annotations

import gc
import json
import operator
import os
import pickle
import queue
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from sparkctl import SparkConf, SparkContext, serializers
from sparkctl.executor import task_metrics
from sparkctl.executor.executor import _log_urls
from sparkctl.rdd.dependencies import Aggregator
from sparkctl.rpc import Connection, Server
from sparkctl.scheduler import messages as m
from sparkctl.scheduler.backend import spawn_executor, stop_process
from sparkctl.scheduler.runtime import DriverRuntime
from sparkctl.storage.shuffle import MapStatus
from sparkctl.storage.spill import ExternalAppendOnlyMap
from tests.conftest import descendants

Seen = list[tuple[str, str, m.TaskOutcome]]  # (executor id, state, outcome) per finished task


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> Seen:
    """Every task outcome the driver receives from here on."""
    got: Seen = []
    original = DriverRuntime._on_status

    def capture(self: DriverRuntime, msg: m.StatusUpdate, counted: bool = False) -> None:
        if msg.outcome:  # an indirect result carries none here
            got.append((msg.executor_id, msg.state, pickle.loads(msg.outcome)))
        original(self, msg, counted)

    monkeypatch.setattr(DriverRuntime, "_on_status", capture)
    return got


def _context(master: str, **settings: str) -> SparkContext:
    # this module's own contexts (its ``sc`` fixture too): the suite's shared one must go first
    from tests.conftest import stop_shared_context
    stop_shared_context()
    conf = SparkConf().set("spark.log.level", "WARN").set("spark.ui.showConsoleProgress", "false")
    for k, v in settings.items():
        conf.set(k, v)
    return SparkContext(master, "task-metrics", conf=conf)


@pytest.fixture
def sc() -> Iterator[SparkContext]:
    before = set(descendants())
    context = _context("local[2]")
    yield context
    context.stop()
    assert set(descendants()) <= before


def _metric(outcomes: list[m.TaskOutcome], key: str) -> int:
    return sum((o.metrics or {}).get(key, 0) for o in outcomes)


def _map_tasks(seen: Seen) -> list[m.TaskOutcome]:
    return [o for _, state, o in seen if state == m.FINISHED and isinstance(o.value, MapStatus)]


def _result_tasks(seen: Seen) -> list[m.TaskOutcome]:
    return [o for _, state, o in seen if state == m.FINISHED and not isinstance(o.value, MapStatus)]


WORDS = [f"w{i}" for i in range(40)]


def _write_corpus(path: Path, lines: int) -> list[str]:
    """Lines that each hold every word, so every split of the file sees all of WORDS."""
    text = []
    for i in range(lines):
        rot = i % len(WORDS)
        text.append(" ".join(WORDS[rot:] + WORDS[:rot] + WORDS[: i % 7]))
    path.write_text("\n".join(text) + "\n")
    return text


@pytest.mark.timeout(60)
def test_word_count_input_shuffle_and_result_metrics(sc: SparkContext, seen: Seen, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    lines = _write_corpus(corpus, 20_000)
    rdd = sc.textFile(str(corpus), 3)
    counts = dict(rdd.flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(operator.add, 2).collect())
    expected: dict[str, int] = {}
    for line in lines:
        for w in line.split():
            expected[w] = expected.get(w, 0) + 1
    assert counts == expected

    maps, results = _map_tasks(seen), _result_tasks(seen)
    splits = rdd.getNumPartitions()
    assert splits >= 3 and len(maps) == splits and len(results) == 2
    # input: the splits' byte ranges cover the file once; every line read once
    assert _metric(maps, "inputBytesRead") == corpus.stat().st_size
    assert _metric(maps, "inputRecordsRead") == len(lines)
    assert all(o.metrics and o.metrics["inputRecordsRead"] > 0 for o in maps)
    # shuffle write: after the map-side combine each map task holds one pair per word
    assert [(o.metrics or {}).get("shuffleRecordsWritten") for o in maps] == [len(WORDS)] * splits
    written = _metric(maps, "shuffleBytesWritten")
    assert written == sum(sum(o.value.sizes) for o in maps)  # the data files' slices
    assert all((o.metrics or {}).get("shuffleWriteTime", 0) > 0 for o in maps)
    # shuffle read: local[2] is one executor, so every block is local
    assert _metric(results, "shuffleRecordsRead") == len(WORDS) * splits
    assert _metric(results, "shuffleLocalBytesRead") == written
    nonempty = sum(1 for o in maps for size in o.value.sizes if size)
    assert _metric(results, "shuffleLocalBlocksFetched") == nonempty
    assert _metric(results, "shuffleRemoteBlocksFetched") == _metric(results, "shuffleRemoteBytesRead") == 0
    # every task ran and says for how long, in Spark's units
    for o in maps + results:
        met = o.metrics or {}
        assert met.get("executorCpuTime", 0) > 0
        assert met.get("executorRunTime", 0) <= int(o.duration * 1000) + 5
        assert met.get("resultSize", 0) > 0
    # a result task's resultSize is its value pickled
    for o in results:
        assert (o.metrics or {})["resultSize"] == len(pickle.dumps(o.value, serializers.PROTOCOL))


@pytest.mark.timeout(60)
def test_result_size_of_a_large_result(sc: SparkContext, seen: Seen) -> None:
    got = sc.parallelize(range(4), 2).map(lambda i: bytes([i]) * 300_000).collect()
    assert [len(b) for b in got] == [300_000] * 4
    results = _result_tasks(seen)
    assert len(results) == 2
    for o in results:
        size = (o.metrics or {})["resultSize"]
        assert size == len(pickle.dumps(o.value, serializers.PROTOCOL)) and size > 600_000


@pytest.mark.timeout(120)
def test_remote_and_local_shuffle_blocks_on_two_hosts(seen: Seen) -> None:
    """local-cluster puts its two executors on 127.0.0.2 and 127.0.0.3: a reducer reads the
    slices its own host wrote from disk and fetches the others' from their block server."""
    before = set(descendants())
    with _context("local-cluster[2,1,512]") as sc:
        pairs = sc.parallelize([(i % 97, i) for i in range(20_000)], 6)
        summed = (pairs.reduceByKey(operator.add, 4)
                  .mapPartitionsWithIndex(lambda i, it: [(i, sum(1 for _ in it))]).collect())
        assert sum(n for _, n in summed) == 97
        partitions = pairs.glom().collect()
        runtime = sc._runtime
        assert runtime is not None
        executor_hosts = {e: h.host for e, h in runtime.executors.items()}
    assert set(descendants()) <= before
    job = seen[:10]  # the reduceByKey job's tasks; glom's came after
    maps = [(e, o) for e, state, o in job if state == m.FINISHED and isinstance(o.value, MapStatus)]
    reducers = [(e, o) for e, state, o in job if state == m.FINISHED and not isinstance(o.value, MapStatus)]
    assert len(maps) == 6 and len(reducers) == 4
    assert len({o.value.host for _, o in maps}) == 2  # both hosts wrote map output
    for executor, o in reducers:
        [(reduce_index, _)] = o.value
        host = executor_hosts[executor]
        local = [s.sizes[reduce_index] for _, s in ((e, mo.value) for e, mo in maps) if s.host == host]
        remote = [s.sizes[reduce_index] for _, s in ((e, mo.value) for e, mo in maps) if s.host != host]
        met = o.metrics or {}
        assert met.get("shuffleLocalBytesRead", 0) == sum(local)
        assert met.get("shuffleRemoteBytesRead", 0) == sum(remote)
        assert met.get("shuffleLocalBlocksFetched", 0) == sum(1 for s in local if s)
        assert met.get("shuffleRemoteBlocksFetched", 0) == sum(1 for s in remote if s)
        assert met.get("shuffleRemoteBytesReadToDisk", 0) == 0
    assert sum((o.metrics or {}).get("shuffleRemoteBlocksFetched", 0) for _, o in reducers) > 0
    # records: each key combined once per map task whose partition holds it
    written = sum((o.metrics or {}).get("shuffleRecordsWritten", 0) for _, o in maps)
    assert written == sum(len({k for k, _ in part}) for part in partitions)
    assert sum((o.metrics or {}).get("shuffleRecordsRead", 0) for _, o in reducers) == written


@pytest.mark.timeout(90)
def test_push_based_shuffle_reads_count_merged_blocks_and_chunks(seen: Seen, tmp_path: Path) -> None:
    """Six one-core workers: map tasks push their slices to five mergers, and each reducer
    reads every remote slice that was merged from its merger. Its metrics count those as
    Spark does: merged blocks (one per slice) and bytes, inside the remote totals, and one
    merged chunk per request; the map stage's event-log info names its mergers."""
    before = set(descendants())
    logs = tmp_path / "events"
    logs.mkdir()
    with _context("local-cluster[6,1,256]", **{"spark.eventLog.enabled": "true",
                                                "spark.eventLog.dir": str(logs)}) as sc:
        runtime = sc._runtime
        assert runtime is not None and runtime.push is not None
        runtime.wait_for_executors(6, 60)
        pairs = sc.parallelize([(i % 211, i) for i in range(30_000)], 6)
        counts = (pairs.reduceByKey(operator.add, 10)
                  .mapPartitionsWithIndex(lambda i, it: [(i, sum(1 for _ in it))]).collect())
        assert sum(n for _, n in counts) == 211
        executor_hosts = {e: h.host for e, h in runtime.executors.items()}
    assert set(descendants()) <= before
    maps = [mo.value for _, state, mo in seen if state == m.FINISHED and isinstance(mo.value, MapStatus)]
    reducers = [(e, o) for e, state, o in seen if state == m.FINISHED and not isinstance(o.value, MapStatus)]
    assert len(maps) == 6 and len(reducers) == 10
    assert all(s.merged for s in maps)  # every map task pushed
    merged_total = 0
    for executor, o in reducers:
        met = o.metrics or {}
        host = executor_hosts[executor]
        [(reduce_index, _)] = o.value
        merged = [s.sizes[reduce_index] for s in maps
                  if s.host != host and s.sizes[reduce_index] and s.merged[reduce_index] >= 0]
        assert met.get("shuffleMergedRemoteBlocksFetched", 0) == len(merged)
        assert met.get("shuffleMergedRemoteBytesRead", 0) == sum(merged)
        assert met.get("shuffleMergedRemoteBlocksFetched", 0) <= met.get("shuffleRemoteBlocksFetched", 0)
        assert (met.get("shuffleMergedRemoteChunksFetched", 0) >= 1) == bool(merged)
        assert met.get("shuffleMergedFetchFallbackCount", 0) == 0
        assert met.get("shuffleMergedRemoteReqsDuration", 0) <= met.get("shuffleRemoteReqsDuration", 0)
        merged_total += len(merged)
    assert merged_total > 0
    [log] = list(logs.iterdir())
    events = [json.loads(line) for line in log.read_text().splitlines()]
    submitted = {e["Stage Info"]["Stage ID"]: e["Stage Info"] for e in events
                 if e["Event"] == "SparkListenerStageSubmitted"}
    assert sorted((i["Shuffle Push Enabled"], i["Shuffle Push Mergers Count"]) for i in submitted.values()) == [
        (False, 0), (True, 5)]  # the map stage pushes to five mergers; the result stage pushes nothing


@pytest.mark.timeout(60)
def test_output_and_pickle_file_input(sc: SparkContext, seen: Seen, tmp_path: Path) -> None:
    data = [f"line {i}" * (i % 5) for i in range(5_000)]
    out = tmp_path / "text"
    sc.parallelize(data, 3).saveAsTextFile(str(out))
    parts = sorted(out.glob("part-*"))
    assert len(parts) == 3
    results = _result_tasks(seen)
    assert _metric(results, "outputRecordsWritten") == len(data)
    assert _metric(results, "outputBytesWritten") == sum(p.stat().st_size for p in parts)
    assert _metric(results, "inputBytesRead") == 0  # a driver-side collection is no input, as in Spark

    seen.clear()
    pickled = tmp_path / "pickled"
    sc.parallelize(range(3_000), 4).saveAsPickleFile(str(pickled), 100)
    assert _metric(_result_tasks(seen), "outputRecordsWritten") == 3_000
    seen.clear()
    assert sc.pickleFile(str(pickled)).count() == 3_000
    results = _result_tasks(seen)
    assert _metric(results, "inputRecordsRead") == 3_000
    assert _metric(results, "inputBytesRead") == sum(p.stat().st_size for p in pickled.glob("part-*"))


@pytest.mark.timeout(60)
def test_binary_records_and_whole_files_input(sc: SparkContext, seen: Seen, tmp_path: Path) -> None:
    blob = tmp_path / "records.bin"
    blob.write_bytes(os.urandom(16 * 10_000))
    assert sc.binaryRecords(str(blob), 16).count() == 10_000
    results = _result_tasks(seen)
    assert _metric(results, "inputRecordsRead") == 10_000
    assert _metric(results, "inputBytesRead") == blob.stat().st_size
    seen.clear()
    folder = tmp_path / "files"
    folder.mkdir()
    for i in range(5):
        (folder / f"f{i}.txt").write_text("x" * (1000 * i + 1))
    assert sc.wholeTextFiles(str(folder), 2).count() == 5
    results = _result_tasks(seen)
    assert _metric(results, "inputRecordsRead") == 5
    assert _metric(results, "inputBytesRead") == sum(p.stat().st_size for p in folder.iterdir())


@pytest.mark.timeout(60)
def test_cached_partitions_count_as_input(sc: SparkContext, seen: Seen) -> None:
    cached = sc.parallelize(range(1_000), 4).map(lambda x: x * 2).cache()
    assert cached.count() == 1_000
    assert _metric(_result_tasks(seen), "inputRecordsRead") == 0  # computed, then stored
    seen.clear()
    assert cached.count() == 1_000
    results = _result_tasks(seen)
    assert len(results) == 4
    assert _metric(results, "inputRecordsRead") == 1_000
    assert all((o.metrics or {}).get("inputBytesRead", 0) > 0 for o in results)


def _sleep_then(x: int) -> int:
    time.sleep(0.3)
    return x


def _spin(x: int) -> int:
    end = time.thread_time() + 0.3
    while time.thread_time() < end:
        pass
    return x


def _fail_after_sleep(x: int) -> int:
    time.sleep(0.2)
    raise ValueError("this task fails on purpose")


def _collect_garbage(x: int) -> int:
    junk = []
    for i in range(200_000):
        node: list[Any] = [i]
        node.append(node)  # a cycle: only the collector frees it
        junk.append(node)
    del junk
    gc.collect()
    return x


@pytest.mark.timeout(60)
def test_run_time_cpu_time_gc_time_and_failed_tasks(sc: SparkContext, seen: Seen) -> None:
    sc.parallelize([1], 1).map(_sleep_then).collect()
    [slept] = [o.metrics or {} for o in _result_tasks(seen)]
    assert 300 <= slept["executorRunTime"] < 3_000
    assert slept.get("executorCpuTime", 0) < 150_000_000  # ns: sleeping costs no CPU
    seen.clear()
    sc.parallelize([1], 1).map(_spin).collect()
    [spun] = [o.metrics or {} for o in _result_tasks(seen)]
    assert spun["executorCpuTime"] >= 300_000_000
    assert spun["executorRunTime"] >= 300
    seen.clear()
    sc.parallelize([1], 1).map(_collect_garbage).collect()
    [collected] = [o.metrics or {} for o in _result_tasks(seen)]
    assert collected.get("jvmGcTime", 0) >= 1
    seen.clear()
    with pytest.raises(Exception, match="on purpose"):
        sc.parallelize([1], 1).map(_fail_after_sleep).collect()
    failed = [o for _, state, o in seen if state == m.FAILED]
    assert failed, "no failed task reached the driver"
    for o in failed:
        met = o.metrics or {}
        assert met.get("executorRunTime", 0) >= 200
        assert met.get("resultSize", 0) == 0


@pytest.mark.timeout(90)
def test_spills_are_counted(seen: Seen) -> None:
    """With a tiny execution budget a groupByKey spills; with room to spare it does not."""
    groups = 2_000
    records = [(i % groups, f"value-{i:08d}") for i in range(200_000)]
    before = set(descendants())
    with _context("local[1]", **{"spark.executor.memory": "4m"}) as small:
        grouped = small.parallelize(records, 2).groupByKey(2).mapValues(len).collect()
    assert set(descendants()) <= before
    assert sorted(grouped) == [(k, 100) for k in range(groups)]
    tasks = [o for _, state, o in seen if state == m.FINISHED]
    assert _metric(tasks, "diskBytesSpilled") > 0
    assert _metric(tasks, "memoryBytesSpilled") > 0
    assert all((o.metrics or {}).get("peakExecutionMemory", 0) > 0 for o in tasks)
    seen.clear()
    with _context("local[1]") as roomy:
        assert len(roomy.parallelize(records[:2_000], 2).groupByKey(2).collect()) == groups
    tasks = [o for _, state, o in seen if state == m.FINISHED]
    assert _metric(tasks, "diskBytesSpilled") == _metric(tasks, "memoryBytesSpilled") == 0


@pytest.mark.timeout(30)
def test_a_spill_counts_its_file_and_its_size_in_memory(tmp_path: Path) -> None:
    """In process: the metrics add up the spill files' sizes exactly, and the estimate of
    what each spill held in memory."""
    metrics = task_metrics.begin()
    amap = ExternalAppendOnlyMap(Aggregator(lambda v: [v], lambda c, v: c + [v], operator.add), 1 << 20,
                                 str(tmp_path), 100)
    amap.budget = 64 << 10  # below the usual floor, to spill every few thousand records
    # each spill runs a full collection, which an executor makes cheap by freezing its
    # start-up heap; here the heap is the whole test session's (1.6 s alone, over 30 s
    # late in a full run), so freeze it as an executor does
    gc.freeze()
    try:
        amap.insert_values((i, str(i)) for i in range(50_000))
    finally:
        gc.unfreeze()
    assert len(amap.spills) > 2
    spilled = sum(s.size for s in amap.spills)
    assert metrics.disk_bytes_spilled == spilled == amap.spilled_bytes
    assert metrics.memory_bytes_spilled >= amap.budget * len(amap.spills)
    assert metrics.peak_execution_memory > amap.budget
    assert sum(len(c) for _, c in amap.items()) == 50_000  # reading may spill the rest first
    amap.cleanup()
    assert task_metrics.current().as_dict()["diskBytesSpilled"] == amap.spilled_bytes >= spilled


@pytest.mark.timeout(10)
def test_metrics_flatten_to_sparks_names_and_units() -> None:
    metrics = task_metrics.begin()
    assert metrics.as_dict() == {}  # an idle task sends no keys: a missing key means 0
    metrics.executor_run_time += 2_500_000  # ns kept, ms sent
    metrics.shuffle_write_time += 2_500_000  # ns, as Spark sends it
    metrics.shuffle_records_written += 7
    assert metrics.as_dict() == {"executorRunTime": 2, "shuffleWriteTime": 2_500_000, "shuffleRecordsWritten": 7}
    assert set(task_metrics.SPARK_NAMES.values()) == {
        "executorDeserializeTime", "executorDeserializeCpuTime", "executorRunTime", "executorCpuTime",
        "resultSize", "jvmGcTime", "resultSerializationTime", "memoryBytesSpilled", "diskBytesSpilled",
        "peakExecutionMemory", "inputBytesRead", "inputRecordsRead", "outputBytesWritten",
        "outputRecordsWritten", "shuffleRemoteBlocksFetched", "shuffleLocalBlocksFetched",
        "shuffleFetchWaitTime", "shuffleRemoteBytesRead", "shuffleRemoteBytesReadToDisk",
        "shuffleLocalBytesRead", "shuffleRecordsRead", "shuffleBytesWritten", "shuffleWriteTime",
        "shuffleRecordsWritten", "shuffleRemoteReqsDuration", "shuffleMergedRemoteBlocksFetched",
        "shuffleMergedRemoteChunksFetched", "shuffleMergedRemoteBytesRead", "shuffleMergedRemoteReqsDuration",
        "shuffleMergedFetchFallbackCount"}
    metrics.shuffle_merged_remote_reqs_duration += 3_000_000  # ns kept, ms sent
    assert metrics.as_dict()["shuffleMergedRemoteReqsDuration"] == 3


@pytest.mark.timeout(10)
def test_log_urls_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPARKCTL_EXECUTOR_LOG_URLS", raising=False)
    assert _log_urls() is None
    for bad in ("not json", "[1, 2]", '{"stdout": 3}'):
        monkeypatch.setenv("SPARKCTL_EXECUTOR_LOG_URLS", bad)
        assert _log_urls() is None
    monkeypatch.setenv("SPARKCTL_EXECUTOR_LOG_URLS", '{"stdout": "http://h/a", "stderr": "http://h/b"}')
    assert _log_urls() == {"stdout": "http://h/a", "stderr": "http://h/b"}


@pytest.mark.timeout(60)
def test_a_real_executor_registers_with_its_log_urls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    urls = {"stdout": "http://127.0.0.1:8081/logPage/?appId=a&executorId=7&logType=stdout",
            "stderr": "http://127.0.0.1:8081/logPage/?appId=a&executorId=7&logType=stderr"}
    monkeypatch.setenv("SPARKCTL_EXECUTOR_LOG_URLS", json.dumps(urls))
    secret = os.urandom(16).hex().encode()
    registered: queue.Queue[m.RegisterExecutor] = queue.Queue()

    def serve(conn: Connection) -> None:
        try:
            msg = conn.recv(timeout=30)
            assert isinstance(msg, m.RegisterExecutor)
            conn.send(m.RegisteredExecutor("app-metrics-test"))
            registered.put(msg)
            conn.recv(timeout=30)  # a heartbeat or the close
            conn.send(m.StopExecutor("test over"))
        except Exception:
            pass
        finally:
            conn.close()

    server = Server("127.0.0.1", 0, secret, serve, name="fake-driver").start()
    settings = {"executor_id": "7", "driver_host": "127.0.0.1", "driver_port": server.address[1], "cores": 1,
                "host": "127.0.0.1", "local_dir": str(tmp_path / "executor"), "memory": 64 << 20,
                "heartbeat_interval": 0.2}
    proc = spawn_executor(settings, secret, "WARNING")
    try:
        reg = registered.get(timeout=30)
        assert isinstance(reg, m.RegisterExecutor)
        assert reg.executor_id == "7" and reg.log_urls == urls
        proc.wait(30)
    finally:
        stop_process(proc)
        server.stop()
    assert proc.returncode is not None
    assert not [p for p, info in descendants().items() if "sparkctl.executor" in info[3]]


@pytest.mark.timeout(60)
def test_results_only_cloudpickle_can_carry_still_arrive(sc: SparkContext, seen: Seen) -> None:
    """A result holding a function made in the task goes through cloudpickle, small or
    large; its resultSize is still counted."""
    small = sc.parallelize([1], 1).map(lambda x: (lambda y: y + x)).collect()
    assert small[0](41) == 42
    large = sc.parallelize([2], 1).map(lambda x: (b"z" * 5000, lambda y: y * x)).collect()
    assert large[0][0] == b"z" * 5000 and large[0][1](21) == 42
    sizes = [(o.metrics or {}).get("resultSize", 0) for o in _result_tasks(seen)]
    assert len(sizes) == 2 and 0 < sizes[0] < 5000 < sizes[1]


@pytest.mark.timeout(60)
def test_gzip_text_input_counts_the_compressed_file(sc: SparkContext, seen: Seen, tmp_path: Path) -> None:
    import gzip
    lines = [f"row {i} " + "x" * (i % 13) for i in range(3_000)]
    packed = tmp_path / "rows.txt.gz"
    with gzip.open(packed, "wt") as f:
        f.write("\n".join(lines) + "\n")
    assert sc.textFile(str(packed)).collect() == lines
    results = _result_tasks(seen)
    assert _metric(results, "inputRecordsRead") == len(lines)
    assert _metric(results, "inputBytesRead") == packed.stat().st_size  # as stored, as Hadoop counts it
