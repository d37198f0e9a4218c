"""Shuffle and spill compression (spark.shuffle.compress, spark.shuffle.spill.compress,
spark.io.compression.codec): results equal plain Python's with each codec and with
compression off, on one executor and on two (reducers fetch the other host's compressed
blocks); the files on disk really hold the codec's frames, read back with the codec
libraries themselves; bad and missing codecs fail at context start in one line."""
from __future__ import annotations

import logging
import operator
import os
import pickle
import random
import struct
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

import pytest

from sparkctl import SparkConf, SparkContext, serializers
from sparkctl.errors import ConfigError
from sparkctl.rdd.dependencies import Aggregator
from sparkctl.scheduler import messages as m
from sparkctl.scheduler.runtime import DriverRuntime
from sparkctl.storage import compression
from sparkctl.storage.shuffle import MapStatus
from sparkctl.storage.spill import ExternalAppendOnlyMap, ExternalSorter
from tests.conftest import descendants

pytestmark = pytest.mark.timeout(120)

lz4_frame = pytest.importorskip("lz4.frame")  # both in the test extra
zstandard = pytest.importorskip("zstandard")

MAGIC = {"lz4": b"\x04\x22\x4d\x18", "zstd": b"\x28\xb5\x2f\xfd"}
_LEN = struct.Struct("<I")


def reference_decompress(payload: bytes) -> bytes:
    """A batch's pickle, by the codec libraries' own decoders (not sparkctl's)."""
    if payload[:4] == MAGIC["lz4"]:
        return lz4_frame.decompress(payload)  # type: ignore[no-any-return]
    if payload[:4] == MAGIC["zstd"]:
        return zstandard.ZstdDecompressor().decompress(payload)  # type: ignore[no-any-return]
    assert payload[:1] == pickle.PROTO
    return payload


def frames(data: bytes) -> Iterator[bytes]:
    """The payloads of a shuffle or spill file's length-prefixed batches."""
    pos = 0
    while pos < len(data):
        (n,) = _LEN.unpack_from(data, pos)
        yield data[pos + 4:pos + 4 + n]
        pos += 4 + n
    assert pos == len(data)


def check_file(data: bytes, codec: str | None) -> tuple[int, int, list[Any]]:
    """(stored bytes, bytes had the batches not been compressed, records) of a file of
    batches; every batch is in *codec*'s format, or a plain pickle where it is shorter than
    ``serializers.MIN_COMPRESSED`` or compressing it would not have made it smaller."""
    raw = 0
    records: list[Any] = []
    for payload in frames(data):
        if codec is None or payload[:1] == pickle.PROTO:
            assert payload[:1] == pickle.PROTO
            if codec == "lz4" and len(payload) >= serializers.MIN_COMPRESSED:
                assert len(lz4_frame.compress(payload, store_size=True)) >= len(payload)
        else:
            assert payload[:4] == MAGIC[codec]
        pickled = reference_decompress(payload)
        raw += 4 + len(pickled)
        records += pickle.loads(pickled)
    return len(data), raw, records


# ------------------------------------------------------------------ end to end

Seen = list[tuple[str, int, m.TaskOutcome]]


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> Seen:
    """Every task outcome the driver receives from here on."""
    got: Seen = []
    original = DriverRuntime._on_status

    def capture(self: DriverRuntime, msg: m.StatusUpdate, counted: bool = False) -> None:
        if msg.outcome:
            got.append((msg.executor_id, msg.state, pickle.loads(msg.outcome)))
        original(self, msg, counted)

    monkeypatch.setattr(DriverRuntime, "_on_status", capture)
    return got


def _context(master: str, **settings: str) -> SparkContext:
    from tests.conftest import stop_shared_context
    stop_shared_context()  # a context of our own: the suite's shared one goes first
    conf = SparkConf().set("spark.log.level", "WARN").set("spark.ui.showConsoleProgress", "false")
    conf.set("spark.ui.enabled", "false")
    for k, v in settings.items():
        conf.set(k, v)
    return SparkContext(master, "shuffle-compression", conf=conf)


CODECS: dict[str, dict[str, str]] = {
    "lz4": {"spark.io.compression.codec": "lz4"},
    "zstd": {"spark.io.compression.codec": "zstd", "spark.io.compression.zstd.level": "3"},
    "off": {"spark.shuffle.compress": "false", "spark.shuffle.spill.compress": "false"},
}


def _pairs(n: int, seed: int = 7) -> list[tuple[Any, Any]]:
    rng = random.Random(seed)
    keys = [f"key-{i:04d}" for i in range(300)] + list(range(200)) + [None, (1, "x")]
    return [(rng.choice(keys), f"value {rng.randrange(1000)} " * 3) for _ in range(n)]


@pytest.mark.parametrize("master", ["local[2]", "local-cluster[2,1,512]"])
@pytest.mark.parametrize("codec", sorted(CODECS))
def test_pair_operations_equal_plain_python(seen: Seen, master: str, codec: str) -> None:
    before = set(descendants())
    data = _pairs(30_000)
    other = [(k, i) for i, (k, _) in enumerate(data[:400])]
    groups: defaultdict[Any, list[Any]] = defaultdict(list)
    for k, v in data:
        groups[k].append(v)
    with _context(master, **CODECS[codec]) as sc:
        rdd = sc.parallelize(data, 6)
        grouped = rdd.groupByKey(4).mapValues(sorted).collect()
        assert dict(grouped) == {k: sorted(v) for k, v in groups.items()} and len(grouped) == len(groups)
        lengths = rdd.mapValues(len).reduceByKey(operator.add, 3).collect()
        assert dict(lengths) == {k: sum(map(len, v)) for k, v in groups.items()}
        ints = sc.parallelize([(i * 7919 % 10_007, i) for i in range(20_000)], 5)
        assert ints.sortByKey(numPartitions=4).collect() == sorted((i * 7919 % 10_007, i) for i in range(20_000))
        joined = rdd.join(sc.parallelize(other, 3), 4).collect()
        ref = [(k, (v, w)) for k, v in data for k2, w in other if k == k2]
        assert sorted(joined, key=repr) == sorted(ref, key=repr)

        # the shuffle files as written: every batch in the codec's format, smaller than the
        # pickles for this repetitive data; the metrics count the bytes as stored
        maps = [(e, o) for e, state, o in seen if state == m.FINISHED and isinstance(o.value, MapStatus)]
        assert maps
        stored = raw = 0
        for _, o in maps:
            status = o.value
            with open(status.data_path, "rb") as f:
                s, r, _records = check_file(f.read(), None if codec == "off" else codec)
            assert s == sum(status.sizes) == (o.metrics or {}).get("shuffleBytesWritten")
            stored, raw = stored + s, raw + r
        if codec == "off":
            assert stored == raw
        else:
            assert stored < raw * 0.6, (stored, raw)
        reducers = [o for _, state, o in seen if state == m.FINISHED and not isinstance(o.value, MapStatus)]
        remote = sum((o.metrics or {}).get("shuffleRemoteBlocksFetched", 0) for o in reducers)
        read = sum((o.metrics or {}).get("shuffleLocalBytesRead", 0) + (o.metrics or {}).get("shuffleRemoteBytesRead", 0)
                   for o in reducers)
        assert read == stored  # each slice read once, counted as stored
        if master.startswith("local-cluster"):
            assert remote > 0  # reducers fetched the other host's (compressed) slices
    assert set(descendants()) <= before


def test_spills_of_a_small_executor_are_compressed_and_correct(seen: Seen) -> None:
    before = set(descendants())
    data = _pairs(60_000, seed=3)
    groups: defaultdict[Any, list[Any]] = defaultdict(list)
    for k, v in data:
        groups[k].append(v)
    with _context("local[2]", **{"spark.executor.memory": "4m", "spark.io.compression.codec": "lz4"}) as sc:
        got = sc.parallelize(data, 2).groupByKey(2).mapValues(sorted).collect()
        assert dict(got) == {k: sorted(v) for k, v in groups.items()}
    spilled = sum((o.metrics or {}).get("diskBytesSpilled", 0) for _, state, o in seen if state == m.FINISHED)
    in_memory = sum((o.metrics or {}).get("memoryBytesSpilled", 0) for _, state, o in seen if state == m.FINISHED)
    assert spilled > 0
    assert spilled < in_memory  # what went to disk is the compressed runs
    assert set(descendants()) <= before


def test_an_unknown_codec_stops_the_context_naming_key_and_value() -> None:
    before = set(descendants())
    with pytest.raises(ConfigError) as info:
        _context("local[2]", **{"spark.io.compression.codec": "snappy"})
    text = str(info.value)
    assert "spark.io.compression.codec" in text and "'snappy'" in text and "lz4 or zstd" in text
    assert "\n" not in text
    assert set(descendants()) <= before


def test_an_explicit_codec_without_its_library_stops_the_context(monkeypatch: pytest.MonkeyPatch) -> None:
    before = set(descendants())
    monkeypatch.setattr(compression, "library_installed", lambda codec: codec != "zstd")
    with pytest.raises(ConfigError) as info:
        _context("local[2]", **{"spark.io.compression.codec": "zstd"})
    text = str(info.value)
    assert "pip install 'sparkctl[zstd]'" in text and "spark.io.compression.codec" in text and "\n" not in text
    assert set(descendants()) <= before


def test_the_default_codec_without_lz4_writes_uncompressed_with_one_warning(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, seen: Seen) -> None:
    before = set(descendants())
    monkeypatch.setattr(compression, "library_installed", lambda codec: False)
    monkeypatch.setattr(compression, "_warned", False)
    conf = SparkConf(loadDefaults=False)
    with caplog.at_level(logging.WARNING, logger="sparkctl.storage"):
        assert compression.executor_settings(conf)["shuffle"] is False
        assert compression.executor_settings(conf)["spill"] is False
        with _context("local[2]") as sc:
            got = sc.parallelize(_pairs(2_000), 3).reduceByKey(operator.add, 2).count()
            assert got == len({k for k, _ in _pairs(2_000)})
            statuses = [o.value for _, state, o in seen if state == m.FINISHED and isinstance(o.value, MapStatus)]
            for status in statuses:
                with open(status.data_path, "rb") as f:
                    check_file(f.read(), None)
    warnings = [r for r in caplog.records if "pip install 'sparkctl[lz4]'" in r.getMessage()]
    assert len(warnings) == 1
    assert set(descendants()) <= before


def test_settings_reach_the_executor_dict() -> None:
    conf = SparkConf(loadDefaults=False).set("spark.io.compression.codec", "org.apache.spark.io.ZStdCompressionCodec")
    conf.set("spark.io.compression.zstd.level", "5").set("spark.shuffle.spill.compress", "false")
    got = compression.executor_settings(conf)
    assert got["codec"] == "zstd" and got["zstd_level"] == 5
    assert got["shuffle"] is True and got["spill"] is False and got["explicit"] is True
    with pytest.raises(ConfigError, match="spark.io.compression.zstd.level"):
        compression.executor_settings(SparkConf(loadDefaults=False).set("spark.io.compression.zstd.level", "99"))


# ------------------------------------------------------------------ spills in-process

LIST_AGG = Aggregator(lambda v: [v], lambda c, v: c + [v], lambda a, b: a + b)


@pytest.fixture
def spill_codec(request: pytest.FixtureRequest) -> Iterator[str | None]:
    codec = request.param
    compression.configure({"shuffle": codec is not None, "spill": codec is not None, "codec": codec or "lz4",
                           "explicit": True, "zstd_level": 1, "lz4_block_size": 32 << 10})
    yield codec
    compression.configure(None)


def _spill_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.startswith("spill-"))


@pytest.mark.slow
@pytest.mark.parametrize("spill_codec", ["lz4", "zstd", None], indirect=True)
def test_aggregation_spills_are_compressed(tmp_path: Path, spill_codec: str | None) -> None:
    data = _pairs(20_000, seed=11)
    amap = ExternalAppendOnlyMap(LIST_AGG, 0, str(tmp_path), batch_size=200)
    amap.budget = 200_000  # below the usual 1 MiB floor: several spills
    amap.insert_values(data)
    assert len(amap.spills) >= 2
    stored = raw = 0
    for path in _spill_files(tmp_path):
        s, r, records = check_file(path.read_bytes(), spill_codec)
        assert records and all(len(rec) == 3 for rec in records)  # (hash, key, combiner)
        stored, raw = stored + s, raw + r
    assert stored == sum(s.size for s in amap.spills)  # diskBytesSpilled: the bytes on disk
    if spill_codec is None:
        assert stored == raw
    else:
        assert stored < raw * 0.6
    ref: defaultdict[Any, list[Any]] = defaultdict(list)
    for k, v in data:
        ref[k].append(v)
    assert {k: sorted(v) for k, v in amap.items()} == {k: sorted(v) for k, v in ref.items()}
    amap.cleanup()
    assert _spill_files(tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize("spill_codec", ["lz4", "zstd", None], indirect=True)
def test_sort_spills_are_compressed(tmp_path: Path, spill_codec: str | None) -> None:
    data = [(f"k{(i * 7919) % 5000:05d}", "payload " * 4) for i in range(20_000)]
    sorter = ExternalSorter(lambda k: k, True, 0, str(tmp_path), batch_size=200)
    sorter.budget = 200_000
    sorter.insert_all(data)
    assert len(sorter.spills) >= 2
    for path in _spill_files(tmp_path):
        s, r, records = check_file(path.read_bytes(), spill_codec)
        assert records == sorted(records, key=lambda kv: kv[0])  # each run sorted
        if spill_codec is not None:
            assert s < r
    assert [k for k, _ in sorter.sorted_records()] == sorted(k for k, _ in data)
    sorter.cleanup()


def test_incompressible_batches_are_stored_as_they_are(tmp_path: Path) -> None:
    compression.configure({"shuffle": True, "spill": True, "codec": "lz4", "explicit": True})
    try:
        data = [(i, os.urandom(64)) for i in range(5_000)]
        sorter = ExternalSorter(lambda k: k, True, 0, str(tmp_path), batch_size=100)
        sorter.budget = 100_000
        sorter.insert_all(data)
        assert sorter.spills
        for path in _spill_files(tmp_path):
            payloads = list(frames(path.read_bytes()))
            # random bytes do not shrink; their pickles stay as they are, and still read back
            assert sum(p[:1] == pickle.PROTO for p in payloads) >= len(payloads) // 2
        assert list(sorter.sorted_records()) == data
        sorter.cleanup()
    finally:
        compression.configure(None)


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_short_batches_are_stored_as_they_are(codec: str) -> None:
    """A batch pickled shorter than MIN_COMPRESSED goes uncompressed though the codec would
    shrink it a little; from that length on, it is compressed."""
    c = compression.Codec(codec)
    short = pickle.dumps([(f"key-{i % 3}", 1) for i in range(16)], serializers.PROTOCOL)
    assert len(short) < serializers.MIN_COMPRESSED
    assert len(c.compress(short)) < len(short)  # the codec would have saved something
    framed = serializers.frame(short, c)
    assert framed[4:] == short
    assert serializers.loads_batch(framed[4:]) == pickle.loads(short)
    records = [(f"key-{i % 3}", 1) for i in range(200)]
    long = pickle.dumps(records, serializers.PROTOCOL)
    assert len(long) >= serializers.MIN_COMPRESSED
    framed = serializers.frame(long, c)
    assert framed[4:8] == MAGIC[codec]
    assert serializers.loads_batch(framed[4:]) == records
