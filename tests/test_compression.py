"""Compressed input and output, as Hadoop's codecs do it: files read by extension, part files
written by ``compressionCodecClass``. The reference is Python's own gzip, bz2, lzma and zlib."""
from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from pathlib import Path
from typing import Any, Callable

import pytest

pytestmark = pytest.mark.timeout(120)

LINES = [f"line {i} {'x' * (i % 17)}" for i in range(5000)]
TEXT = ("\n".join(LINES) + "\n").encode()

zstandard = pytest.importorskip("zstandard")  # in the test extra


def _zst_decompress(data: bytes) -> bytes:
    with zstandard.ZstdDecompressor().stream_reader(data) as r:
        return bytes(r.read())


WRITE: dict[str, Callable[[bytes], bytes]] = {
    ".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress, ".deflate": zlib.compress,
    ".zst": lambda data: zstandard.ZstdCompressor().compress(data),
}
READ: dict[str, Callable[[bytes], bytes]] = {
    ".gz": gzip.decompress, ".bz2": bz2.decompress, ".xz": lzma.decompress, ".deflate": zlib.decompress,
    ".zst": _zst_decompress,
}


@pytest.mark.parametrize("ext", sorted(WRITE))
def test_text_file_reads_compressed_input_by_extension(sc: Any, tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"data.txt{ext}"
    path.write_bytes(WRITE[ext](TEXT))
    rdd = sc.textFile(str(path), 4)
    assert rdd.getNumPartitions() == 1  # a compressed file is read whole
    assert rdd.collect() == LINES


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
    ("org.apache.hadoop.io.compress.Lz4Codec", "Hadoop's own lz4 block format"),
    ("com.example.NoSuchCodec", "unknown compression codec 'com.example.NoSuchCodec'"),
])
def test_codecs_that_cannot_be_written_are_refused_before_any_task(sc: Any, tmp_path: Path, codec: str,
                                                                  says: str) -> None:
    with pytest.raises(ValueError, match=says):
        sc.parallelize(LINES, 2).saveAsTextFile(str(tmp_path / "out"), compressionCodecClass=codec)
    assert not (tmp_path / "out").exists()
