"""Compressed input and output, as Hadoop's codecs do it: files read by extension, part files
written by ``compressionCodecClass``. The reference is Python's own gzip, bz2, lzma and zlib."""
from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib
from pathlib import Path
from typing import Any, Callable

import pytest

pytestmark = pytest.mark.timeout(120)

LINES = [f"line {i} {'x' * (i % 17)}" for i in range(5000)]
TEXT = ("\n".join(LINES) + "\n").encode()

zstandard = pytest.importorskip("zstandard")  # in the test extra
lz4_block = pytest.importorskip("lz4.block")  # in the test extra
lz4_frame = pytest.importorskip("lz4.frame")


def _zst_decompress(data: bytes) -> bytes:
    with zstandard.ZstdDecompressor().stream_reader(data) as r:
        return bytes(r.read())


def _hadoop_lz4(data: bytes, block: int = 100_000) -> bytes:
    """Hadoop's Lz4Codec block format, built here from its description (BlockCompressorStream):
    per block the big-endian uncompressed length, then big-endian length + raw LZ4 block
    chunks; a block here is split over two chunks, as Hadoop splits a write larger than its
    buffer."""
    out = bytearray()
    for i in range(0, len(data), block):
        piece = data[i:i + block]
        out += struct.pack(">I", len(piece))
        half = len(piece) // 2
        for chunk in (piece[:half], piece[half:]):
            packed = lz4_block.compress(chunk, store_size=False)
            out += struct.pack(">I", len(packed)) + packed
    return bytes(out)


def _hadoop_lz4_decompress(data: bytes) -> bytes:
    """The reference reader of Hadoop's Lz4Codec blocks, for what sparkctl writes."""
    out, pos = bytearray(), 0
    while pos < len(data):
        (total,) = struct.unpack_from(">I", data, pos)
        pos += 4
        if total == 0:
            break
        got = 0
        while got < total:
            (n,) = struct.unpack_from(">I", data, pos)
            piece = lz4_block.decompress(data[pos + 4:pos + 4 + n], uncompressed_size=total - got)
            out += piece
            got += len(piece)
            pos += 4 + n
    return bytes(out)


WRITE: dict[str, Callable[[bytes], bytes]] = {
    ".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress, ".deflate": zlib.compress,
    ".zst": lambda data: zstandard.ZstdCompressor().compress(data),
    ".lz4": lz4_frame.compress,  # the LZ4 frame format, as the lz4 command writes
}
READ: dict[str, Callable[[bytes], bytes]] = {
    ".gz": gzip.decompress, ".bz2": bz2.decompress, ".xz": lzma.decompress, ".deflate": zlib.decompress,
    ".zst": _zst_decompress,
    ".lz4": _hadoop_lz4_decompress,
}


@pytest.mark.parametrize("ext", sorted(WRITE))
def test_text_file_reads_compressed_input_by_extension(sc: Any, tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"data.txt{ext}"
    path.write_bytes(WRITE[ext](TEXT))
    rdd = sc.textFile(str(path), 4)
    # a compressed file is read whole, but bzip2, which Hadoop splits at its blocks
    assert rdd.getNumPartitions() == (4 if ext == ".bz2" else 1)
    assert rdd.collect() == LINES


def test_a_bzip2_file_is_split_at_its_blocks(sc: Any, tmp_path: Path) -> None:
    """Many 100 kB blocks (level 1) cut into byte ranges: every line once, in order, and
    each range read by its own task."""
    lines = [f"{i} " + "abcdefghij"[i % 10] * (i % 300) for i in range(40_000)]
    data = ("\n".join(lines) + "\n").encode()
    path = tmp_path / "big.txt.bz2"
    path.write_bytes(bz2.compress(data, 1))
    rdd = sc.textFile(str(path), 8)
    assert rdd.getNumPartitions() == 8
    sizes = rdd.glom().map(len).collect()
    assert sum(sizes) == len(lines) and sum(1 for n in sizes if n) >= 4
    assert rdd.collect() == lines
    assert sc.binaryRecords(str(path), 10).getNumPartitions() == 1  # fixed-length records: read whole


def test_a_directory_mixing_plain_and_compressed_files(sc: Any, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(TEXT)
    (tmp_path / "b.txt.bz2").write_bytes(bz2.compress(TEXT))
    (tmp_path / "c.txt.xz").write_bytes(lzma.compress(TEXT))
    assert sorted(sc.textFile(str(tmp_path)).collect()) == sorted(LINES * 3)
    whole = dict(sc.wholeTextFiles(str(tmp_path)).collect())
    assert sorted(whole.values()) == [TEXT.decode()] * 3


@pytest.mark.parametrize("codec,ext", [
    ("org.apache.hadoop.io.compress.GzipCodec", ".gz"),
    ("org.apache.hadoop.io.compress.BZip2Codec", ".bz2"),
    ("org.apache.hadoop.io.compress.DefaultCodec", ".deflate"),
    ("org.apache.hadoop.io.compress.ZStandardCodec", ".zst"),
    ("org.apache.hadoop.io.compress.Lz4Codec", ".lz4"),
    ("bzip2", ".bz2"),
])
def test_save_as_text_file_with_a_codec(sc: Any, tmp_path: Path, codec: str, ext: str) -> None:
    out = tmp_path / "out"
    sc.parallelize(LINES, 3).saveAsTextFile(str(out), compressionCodecClass=codec)
    parts = sorted(out.glob("part-*"))
    assert [p.name for p in parts] == [f"part-0000{i}{ext}" for i in range(3)]
    assert (out / "_SUCCESS").exists()
    written = b"".join(READ[ext](p.read_bytes()) for p in parts)
    assert written == TEXT  # Python's own decompressor reads what was written
    assert sc.textFile(str(out)).collect() == LINES  # and so does textFile


@pytest.mark.parametrize("codec,says", [
    ("org.apache.hadoop.io.compress.SnappyCodec", "Hadoop's own snappy block format"),
    ("com.example.NoSuchCodec", "unknown compression codec 'com.example.NoSuchCodec'"),
])
def test_codecs_that_cannot_be_written_are_refused_before_any_task(sc: Any, tmp_path: Path, codec: str,
                                                                  says: str) -> None:
    with pytest.raises(ValueError, match=says):
        sc.parallelize(LINES, 2).saveAsTextFile(str(tmp_path / "out"), compressionCodecClass=codec)
    assert not (tmp_path / "out").exists()


def test_text_file_reads_hadoop_lz4_blocks(sc: Any, tmp_path: Path) -> None:
    path = tmp_path / "data.txt.lz4"
    path.write_bytes(_hadoop_lz4(TEXT))
    assert sc.textFile(str(path)).collect() == LINES
    assert [text for _, text in sc.wholeTextFiles(str(path)).collect()] == [TEXT.decode()]


def test_lz4_round_trip_and_empty_parts(sc: Any, tmp_path: Path) -> None:
    """Large parts span several Hadoop blocks; an empty part is Hadoop's empty stream."""
    from sparkctl.rdd import codecs
    big = [f"{i} {'y' * (i % 300)}" for i in range(40_000)]
    out = tmp_path / "out"
    sc.parallelize(big, 2).saveAsTextFile(str(out), "org.apache.hadoop.io.compress.Lz4Codec")
    for part in sorted(out.glob("part-*.lz4")):
        data = part.read_bytes()
        (first,) = struct.unpack_from(">I", data, 0)
        assert first == codecs.HADOOP_LZ4_BLOCK  # a full first block, as Hadoop's default buffer makes
    text = b"".join(_hadoop_lz4_decompress(p.read_bytes()) for p in sorted(out.glob("part-*")))
    assert text == ("\n".join(big) + "\n").encode()
    assert sc.textFile(str(out)).collect() == big
    empty = tmp_path / "empty"
    sc.parallelize([], 1).saveAsTextFile(str(empty), "lz4")
    assert (empty / "part-00000.lz4").read_bytes() == b"\0\0\0\0"
    assert sc.textFile(str(empty)).collect() == []


def test_lz4_needs_its_package(sc: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    monkeypatch.setitem(sys.modules, "lz4", None)  # as if not installed (in this process)
    monkeypatch.setitem(sys.modules, "lz4.block", None)
    monkeypatch.setitem(sys.modules, "lz4.frame", None)
    with pytest.raises(ValueError, match=r"pip install 'sparkctl\[lz4\]'"):
        sc.parallelize(LINES, 1).saveAsTextFile(str(tmp_path / "out"), "org.apache.hadoop.io.compress.Lz4Codec")
    from sparkctl.rdd import codecs
    with pytest.raises(ValueError, match=r"pip install 'sparkctl\[lz4\]'"):
        codecs.READERS[".lz4"](open(__file__, "rb"))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_pyspark_reads_our_lz4_output(sc: Any, tmp_path: Path) -> None:
    """Apache Spark's own textFile (Hadoop's Lz4Codec) reads what saveAsTextFile wrote."""
    import json
    import os
    import signal
    import subprocess
    import sys

    from tests import spark_reference
    why = spark_reference.reference_missing()
    if why:
        pytest.skip(why)
    out = tmp_path / "out"
    sc.parallelize(LINES, 3).saveAsTextFile(str(out), "org.apache.hadoop.io.compress.Lz4Codec")
    script = tmp_path / "read.py"
    script.write_text(
        "import json, sys\n"
        "from pyspark import SparkConf, SparkContext\n"
        "conf = SparkConf().set('spark.driver.host', '127.0.0.1').set('spark.driver.bindAddress', '127.0.0.1')"
        ".set('spark.ui.enabled', 'false')\n"
        "sc = SparkContext('local[1]', 'read-lz4', conf=conf)\n"
        "json.dump(sc.textFile(sys.argv[1]).collect(), open(sys.argv[2], 'w'))\n"
        "sc.stop()\n")
    env = spark_reference.spark_env(home=spark_reference.private_spark_home(tmp_path))
    proc = subprocess.Popen([sys.executable, str(script), out.as_uri(), str(tmp_path / "got.json")], cwd=tmp_path,
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, log.decode(errors="replace")[-3000:]
    assert json.loads((tmp_path / "got.json").read_text()) == LINES
