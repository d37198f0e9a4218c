"""Reading and writing files: textFile, wholeTextFiles, pickleFile, saveAsTextFile,
saveAsPickleFile. Expected lines come from splitting the file's text in the test."""
from __future__ import annotations

import gzip
import os
import random
import re

import pytest

import sparkctl.rdd.sources as sources


def ref_lines(raw: bytes) -> list[str]:
    """Hadoop's line reader: lines end at \\n, \\r\\n or \\r; a final terminator does not
    start another (empty) line."""
    if not raw:
        return []
    lines = re.split(r"\r\n|\r|\n", raw.decode("utf-8"))
    if lines[-1] == "":
        lines.pop()
    return lines


def random_text(seed: int, n_lines: int, eol: str = "\n", trailing: bool = True) -> str:
    rng = random.Random(seed)
    alphabet = "abcdefghij klmnopqrstuvwxyzé日本ü,;"
    lines = []
    for _ in range(n_lines):
        length = rng.choice([0, 0, 1, 2, 5, 13, 40, 90])
        lines.append("".join(rng.choice(alphabet) for _ in range(length)))
    return eol.join(lines) + (eol if trailing else "")


CASES = {
    "lf": random_text(1, 80),
    "crlf": random_text(2, 70, "\r\n"),
    "no-trailing-newline": random_text(3, 60, trailing=False),
    "crlf-no-trailing": random_text(4, 50, "\r\n", trailing=False),
    "mixed-eol": "a\r\nb\nc\rd\r\n\r\n\n\ne" + random_text(5, 30, "\r\n"),
    "empty-lines": "\n\n\nx\n\n\ny\n\n",
    "cr-only": "x\ry\r\rz\r" + random_text(6, 20, "\r"),
    "only-newlines": "\n" * 17,
    "one-line": "just one line without newline",
    "one-long-line": "z" * 700 + "\n",
    "empty": "",
}


@pytest.fixture
def write(tmp_path):
    def write(name: str, content: str | bytes, gz: bool = False) -> str:
        data = content.encode("utf-8") if isinstance(content, str) else content
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if gz:
            with gzip.open(path, "wb") as f:
                f.write(data)
        else:
            path.write_bytes(data)
        return str(path)
    return write


# ---------------------------------------------------------------------------- splitting, in-process
@pytest.mark.parametrize("case", sorted(CASES))
def test_byte_range_splits_cover_each_line_once(tmp_path, monkeypatch, case):
    """Every split size, every read-chunk size: the splits' lines, concatenated, are
    exactly the file's lines (the split logic run directly, without a cluster)."""
    raw = CASES[case].encode("utf-8")
    path = tmp_path / "f.txt"
    path.write_bytes(raw)
    expected = ref_lines(raw)
    for block in sorted({1, 2, 3, 4, 7, 16, 33, 100, max(1, len(raw) // 3), len(raw) + 1}):
        monkeypatch.setattr(sources, "LOCAL_BLOCK_SIZE", block)
        for chunk in (1, 3, 64, 1 << 20):
            monkeypatch.setattr(sources, "READ_CHUNK", chunk)
            splits = sources.file_splits(sources.input_files(None, str(path)), 1)
            assert sum(s.length for s in splits) == len(raw)
            got = [line for s in splits for b in sources._read_range(s.fs, s.path, s.start, s.length)
                   for line in sources._split_lines(b, True)]
            assert got == expected, (block, chunk)


# ---------------------------------------------------------------------------- textFile, through jobs
@pytest.mark.parametrize("case", sorted(CASES))
def test_text_file_cases(sc, write, case):
    path = write(f"{case}.txt", CASES[case])
    expected = ref_lines(CASES[case].encode("utf-8"))
    assert sc.textFile(path).collect() == expected
    assert sc.textFile(path, 5).collect() == expected
    assert sc.textFile(path).count() == len(expected)
    assert sc.textFile(path, 3, use_unicode=False).collect() == [line.encode("utf-8") for line in expected]


def test_text_file_many_split_sizes(sc, write, monkeypatch):
    text = random_text(10, 400) + random_text(11, 300, "\r\n", trailing=False)
    path = write("big.txt", text)
    size = os.path.getsize(path)
    expected = ref_lines(text.encode("utf-8"))
    for block in (37, 100, 251, 1000, 4096, size // 2 + 1, size, 32 * 1024 * 1024):
        monkeypatch.setattr(sources, "LOCAL_BLOCK_SIZE", block)
        rdd = sc.textFile(path, 1)
        assert rdd.getNumPartitions() >= max(1, size // block)
        assert rdd.collect() == expected, block
    monkeypatch.setattr(sources, "LOCAL_BLOCK_SIZE", 32 * 1024 * 1024)
    for min_parts in (1, 2, 3, 8, 33, 97):
        rdd = sc.textFile(path, minPartitions=min_parts)
        assert rdd.getNumPartitions() >= min_parts
        assert rdd.collect() == expected, min_parts
    assert sc.textFile(path, 13).zipWithIndex().map(lambda t: t[1]).collect() == list(range(len(expected)))


def test_text_file_use_unicode_false(sc, write):
    text = "héllo\r\nwörld\nlast"
    path = write("u.txt", text)
    assert sc.textFile(path, use_unicode=False).collect() == [s.encode("utf-8") for s in ref_lines(text.encode())]


def test_text_file_default_partitions(sc, write):
    path = write("d.txt", random_text(12, 100))
    assert sc.textFile(path).getNumPartitions() == sc.defaultMinPartitions


def test_text_file_directories_globs_and_lists(sc, write, tmp_path):
    contents = {"a.txt": "a1\na2\n", "b.txt": "b1\r\nb2", "c.log": "c1\n", "empty.txt": "",
                "_SUCCESS": "", ".hidden": "secret\n", "_meta": "meta\n"}
    for name, text in contents.items():
        write(f"dir/{name}", text)
    d = str(tmp_path / "dir")
    visible = sorted(n for n in contents if not n.startswith(("_", ".")))
    expected = [line for n in visible for line in ref_lines(contents[n].encode())]
    assert sc.textFile(d).collect() == expected
    assert sc.textFile(d + "/").collect() == expected
    assert sc.textFile(f"file://{d}").collect() == expected
    assert sc.textFile(os.path.join(d, "*.txt")).collect() == \
        [line for n in visible if n.endswith(".txt") for line in ref_lines(contents[n].encode())]
    assert sc.textFile(os.path.join(d, "[bc]*")).collect() == ["b1", "b2", "c1"]
    assert sc.textFile(f"{d}/c.log,{d}/a.txt").collect() == ["c1", "a1", "a2"]
    (tmp_path / "empty-dir").mkdir()
    assert sc.textFile(str(tmp_path / "empty-dir")).collect() == []
    with pytest.raises(Exception):
        sc.textFile(str(tmp_path / "missing.txt")).collect()
    with pytest.raises(Exception):
        sc.textFile(str(tmp_path / "nothing-*.txt")).collect()


def test_text_file_gzip(sc, write, tmp_path):
    big = random_text(13, 500, "\r\n")
    write("gz/a.txt.gz", big, gz=True)
    write("gz/b.txt.gz", "", gz=True)
    write("gz/c.txt", "plain\n")
    write("gz/d.txt.gz", "x\ny", gz=True)
    d = str(tmp_path / "gz")
    expected = ref_lines(big.encode()) + ["plain", "x", "y"]
    assert sc.textFile(d).collect() == expected
    assert sc.textFile(d, 20).collect() == expected
    assert sc.textFile(os.path.join(d, "a.txt.gz"), 8).getNumPartitions() == 1  # gzip is not splittable


def test_whole_text_files(sc, write, tmp_path):
    files = {"one.txt": "first\nfile\n", "two.txt": "second\r\nfile", "three.txt": "", "uni.txt": "日本\n"}
    for name, text in files.items():
        write(f"w/{name}", text)
    write("w/zipped.txt.gz", "compressed\n", gz=True)
    write("w/_SUCCESS", "")
    d = tmp_path / "w"
    out = sc.wholeTextFiles(str(d)).collect()
    expected = {f"file:{d / name}": text for name, text in files.items()}
    expected[f"file:{d / 'zipped.txt.gz'}"] = "compressed\n"
    assert dict(out) == expected
    assert [p for p, _ in out] == sorted(expected)
    assert dict(sc.wholeTextFiles(str(d), 3).collect()) == expected
    raw = dict(sc.wholeTextFiles(str(d / "uni.txt"), use_unicode=False).collect())
    assert raw == {f"file:{d / 'uni.txt'}": "日本\n".encode()}


# ---------------------------------------------------------------------------- output
def test_save_as_text_file(sc, tmp_path):
    data = ["x", "ü", 1, 2.5, None, ("a", 1), "", "line"]
    out = tmp_path / "out"
    sc.parallelize(data, 3).saveAsTextFile(str(out))
    names = sorted(os.listdir(out))
    assert names == ["_SUCCESS", "part-00000", "part-00001", "part-00002"]
    assert (out / "_SUCCESS").read_bytes() == b""
    parts = sc.parallelize(data, 3).glom().collect()
    for i, p in enumerate(parts):
        assert (out / f"part-{i:05d}").read_text("utf-8") == "".join(f"{x}\n" for x in p)
    assert sc.textFile(str(out)).collect() == [str(x) for x in data]
    with pytest.raises(Exception, match="already exists"):
        sc.parallelize(data, 2).saveAsTextFile(str(out))
    with pytest.raises(Exception, match="already exists"):
        sc.parallelize(data, 2).saveAsTextFile(f"file://{out}")


def test_save_as_text_file_empty_partitions_and_bytes(sc, tmp_path):
    out = tmp_path / "sparse"
    sc.parallelize([b"bytes", "str"], 4).saveAsTextFile(str(out))
    assert sorted(os.listdir(out)) == ["_SUCCESS"] + [f"part-{i:05d}" for i in range(4)]
    assert sc.textFile(str(out)).collect() == ["bytes", "str"]
    empty = tmp_path / "empty"
    sc.emptyRDD().saveAsTextFile(str(empty))
    assert os.listdir(empty) == ["_SUCCESS"]


def test_save_as_text_file_gzip(sc, tmp_path):
    data = [f"row {i} é" for i in range(100)]
    out = tmp_path / "gz"
    sc.parallelize(data, 3).saveAsTextFile(str(out), compressionCodecClass="org.apache.hadoop.io.compress.GzipCodec")
    names = sorted(os.listdir(out))
    assert names == ["_SUCCESS", "part-00000.gz", "part-00001.gz", "part-00002.gz"]
    parts = sc.parallelize(data, 3).glom().collect()
    for i, p in enumerate(parts):
        with gzip.open(out / f"part-{i:05d}.gz", "rt", encoding="utf-8") as f:
            assert f.read() == "".join(f"{x}\n" for x in p)
    assert sc.textFile(str(out)).collect() == data


def test_pickle_file_round_trip(sc, tmp_path):
    data = [1, "two", (3, 4.5), {"five": [6]}, None, b"\x00", frozenset({7})] * 9
    out = tmp_path / "pickled"
    sc.parallelize(data, 4).saveAsPickleFile(str(out), batchSize=5)
    assert "_SUCCESS" in os.listdir(out)
    assert len([n for n in os.listdir(out) if n.startswith("part-")]) == 4
    back = sc.pickleFile(str(out))
    assert back.collect() == data
    assert back.getNumPartitions() == 4
    assert sc.pickleFile(str(out), 3).collect() == data
    other = tmp_path / "pickled-default"
    sc.parallelize(range(1000), 2).saveAsPickleFile(str(other))
    assert sc.pickleFile(str(other)).collect() == list(range(1000))
    with pytest.raises(Exception, match="already exists"):
        sc.parallelize(data).saveAsPickleFile(str(out))
