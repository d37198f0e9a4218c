"""The file data sources (text, csv, json, parquet) read and written as Spark does.

Fast tests check against Python's own csv and json modules and pyarrow.parquet; the slow
tests (Java needed) have PySpark 4.3 write files that sparkctl reads, and read the files
sparkctl writes, and require the same schema (through sparkctl's Spark-to-Arrow type
mapping) and the same rows.
"""
from __future__ import annotations

import csv
import datetime
import decimal
import glob
import gzip
import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from sparkctl.fs import LOCAL  # noqa: E402
from sparkctl.sql import datasources as ds  # noqa: E402

pytestmark = pytest.mark.timeout(240)
UTC = datetime.timezone.utc


def read(fmt: str, path: Any, schema: Any = None, min_partitions: int = 1, columns: Any = None,
         **options: Any) -> tuple[Any, list[dict[str, Any]], int]:
    """(schema, rows in split order, number of splits) of a whole scan, as the tasks read it."""
    opts = {k: ("true" if v is True else "false" if v is False else str(v)) for k, v in options.items()}
    plan = ds.plan_scan(fmt, [str(path)], opts, schema, None, min_partitions)
    rows: list[dict[str, Any]] = []
    for split in plan.splits:
        for batch in ds.read_split(plan, split, columns):
            assert batch.schema.names == (columns or plan.schema.names)
            rows += batch.to_pylist()
    return plan.schema, rows, len(plan.splits)


def write(fmt: str, table: Any, path: Path, **options: Any) -> tuple[int, int]:
    opts = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in options.items()}
    return ds.write_partition(iter(table.to_batches(max_chunksize=7)), table.schema, fmt, LOCAL, str(path), opts)


# ---------------------------------------------------------------------------------- text
def test_text_lines_across_splits_match_python(tmp_path: Path) -> None:
    rng = random.Random(1)
    lines = ["".join(rng.choice("abc xyz,é") for _ in range(rng.randint(0, 40))) for _ in range(3000)]
    ends = [rng.choice(["\n", "\r\n", "\r"]) for _ in lines]
    data = "".join(x + e for x, e in zip(lines, ends))
    (tmp_path / "t.txt").write_text(data, encoding="utf-8", newline="")
    schema, rows, n = read("text", tmp_path / "t.txt", min_partitions=9)
    assert n >= 9
    assert schema == pa.schema([pa.field("value", pa.string())])
    assert [r["value"] for r in rows] == data.splitlines()


def test_text_wholetext_linesep_and_gzip(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one\ntwo\n")
    (tmp_path / "b.txt").write_text("x;y;z")
    with gzip.open(tmp_path / "c.txt.gz", "wt") as f:
        f.write("g1\ng2\n")
    _, rows, _ = read("text", tmp_path, wholetext=True)
    assert sorted(r["value"] for r in rows) == sorted(["one\ntwo\n", "x;y;z", gzip.decompress(
        (tmp_path / "c.txt.gz").read_bytes()).decode()])
    _, rows, _ = read("text", tmp_path / "b.txt", lineSep=";")
    assert [r["value"] for r in rows] == "x;y;z".split(";")
    _, rows, _ = read("text", tmp_path / "c.txt.gz", min_partitions=4)
    assert [r["value"] for r in rows] == ["g1", "g2"]


def test_text_write_plain_and_compressed(tmp_path: Path) -> None:
    table = pa.table({"value": ["a", None, "b c", ""]})
    records, size = write("text", table, tmp_path / "p.txt")
    assert records == 4 and size == os.path.getsize(tmp_path / "p.txt")
    assert (tmp_path / "p.txt").read_text() == "a\n\nb c\n\n"
    assert ds.file_extension("text", {"compression": "gzip"}) == ".txt.gz"
    write("text", table, tmp_path / "p.txt.gz", compression="gzip")
    assert gzip.decompress((tmp_path / "p.txt.gz").read_bytes()).decode() == "a\n\nb c\n\n"


# ---------------------------------------------------------------------------------- csv
def _csv_rows(rng: random.Random, n: int) -> list[list[Any]]:
    rows = []
    for i in range(n):
        rows.append([i, rng.choice([rng.randint(-2**31, 2**31 - 1), None]), rng.choice([2**40 + i, -3]),
                     rng.choice([round(rng.uniform(-1e6, 1e6), 3), None, 7]),
                     rng.choice([True, False, None]),
                     rng.choice(["plain", "with, comma", 'a "quote"', None, "tail "]),
                     rng.choice([datetime.date(2000 + i % 30, 1 + i % 12, 1 + i % 28), None])])
    return rows


CSV_COLS = ["id", "i32", "i64", "dbl", "flag", "text", "day"]


def _write_py_csv(path: Path, rows: list[list[Any]], header: bool, lineterminator: str = "\n") -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator=lineterminator, doublequote=False, escapechar="\\")
        if header:
            w.writerow(CSV_COLS)
        for r in rows:
            w.writerow(["" if v is None else ("true" if v is True else "false" if v is False else v) for v in r])


def test_csv_infer_schema_and_rows_match_python_csv(tmp_path: Path) -> None:
    rows = _csv_rows(random.Random(2), 4000)
    _write_py_csv(tmp_path / "d.csv", rows, header=True, lineterminator="\r\n")
    schema, got, n = read("csv", tmp_path / "d.csv", min_partitions=5, header=True, inferSchema=True)
    assert n == 5
    assert schema == pa.schema([("id", pa.int32()), ("i32", pa.int32()), ("i64", pa.int64()), ("dbl", pa.float64()),
                                ("flag", pa.bool_()), ("text", pa.string()), ("day", pa.date32())])
    with open(tmp_path / "d.csv", newline="", encoding="utf-8") as f:
        reference = list(csv.reader(f, doublequote=False, escapechar="\\"))[1:]
    assert len(got) == len(reference)
    for row, ref in zip(got, reference):
        conv = [int(ref[0]), int(ref[1]) if ref[1] else None, int(ref[2]), float(ref[3]) if ref[3] else None,
                {"true": True, "false": False, "": None}[ref[4]], ref[5] or None,
                datetime.date.fromisoformat(ref[6]) if ref[6] else None]
        assert [row[c] for c in CSV_COLS] == conv


def test_csv_without_header_is_strings_named_c0(tmp_path: Path) -> None:
    rows = _csv_rows(random.Random(3), 50)
    _write_py_csv(tmp_path / "d.csv", rows, header=False)
    schema, got, _ = read("csv", tmp_path / "d.csv")
    assert schema.names == [f"_c{i}" for i in range(len(CSV_COLS))]
    assert set(schema.types) == {pa.string()}
    with open(tmp_path / "d.csv", newline="") as f:
        reference = [[v or None for v in r] for r in csv.reader(f, doublequote=False, escapechar="\\")]
    assert [list(r.values()) for r in got] == reference
    _, projected, _ = read("csv", tmp_path / "d.csv", columns=["_c5", "_c0"])
    assert projected == [{"_c5": r[5], "_c0": r[0]} for r in reference]


def test_csv_multiline_quoted_newlines(tmp_path: Path) -> None:
    records = [["k", "note"], ["1", "line one\nline two"], ["2", "a,b"], ["3", ""], ["4", 'say "hi"\r\nbye']]
    with open(tmp_path / "m.csv", "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(records)
    _, got, _ = read("csv", tmp_path / "m.csv", header=True, multiLine=True)
    # csv.writer leaves an empty string unquoted, which Spark reads as null
    assert [[r["k"], r["note"]] for r in got] == [[k, v or None] for k, v in records[1:]]


def test_csv_modes_and_explicit_schema(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text("a,b\n1,x\n2\n3,y,z\nfoo,w\n")
    schema = pa.schema([("a", pa.int32()), ("b", pa.string())])
    _, got, _ = read("csv", tmp_path / "b.csv", schema=schema, header=True)
    assert got == [{"a": 1, "b": "x"}, {"a": 2, "b": None}, {"a": 3, "b": "y"}, {"a": None, "b": "w"}]
    _, got, _ = read("csv", tmp_path / "b.csv", schema=schema, header=True, mode="DROPMALFORMED")
    assert got == [{"a": 1, "b": "x"}]
    with pytest.raises(ValueError, match="FAILFAST"):
        read("csv", tmp_path / "b.csv", schema=schema, header=True, mode="FAILFAST")


def test_csv_options_null_value_sep_comment(tmp_path: Path) -> None:
    (tmp_path / "o.csv").write_text("#skip me\nx|y\nNA|1\n2|\n")
    schema, got, _ = read("csv", tmp_path / "o.csv", header=True, sep="|", nullValue="NA", comment="#",
                          inferSchema=True)
    assert schema == pa.schema([("x", pa.int32()), ("y", pa.int32())])
    assert got == [{"x": None, "y": 1}, {"x": 2, "y": None}]


def test_csv_timestamps_parse_in_utc(tmp_path: Path) -> None:
    texts = ["2024-01-02T03:04:05", "2024-01-02 03:04:05.5", "2024-01-02T03:04:05.123Z", "2024-01-02T05:04:05+02:00"]
    (tmp_path / "t.csv").write_text("t\n" + "\n".join(texts) + "\n")
    schema, got, _ = read("csv", tmp_path / "t.csv", header=True, inferSchema=True)
    assert schema.field("t").type == pa.timestamp("us", "UTC")
    expected = [datetime.datetime.fromisoformat(t.replace("Z", "+00:00")) for t in texts]
    expected = [e if e.tzinfo else e.replace(tzinfo=UTC) for e in expected]
    assert [r["t"] for r in got] == expected


def test_csv_write_reads_back_with_python_csv(tmp_path: Path) -> None:
    table = pa.table({"i": pa.array([1, None, 3], pa.int32()), "s": ["a,b", None, 'q"x'], "e": ["", "z", " "],
                      "d": pa.array([1.0, 1e20, None]), "day": pa.array([datetime.date(2024, 1, 2)] * 3),
                      "ts": pa.array([datetime.datetime(2024, 1, 2, 3, 4, 5, 123456)] * 3, pa.timestamp("us", "UTC")),
                      "dec": pa.array([decimal.Decimal("1.50")] * 3, pa.decimal128(5, 2))})
    records, size = write("csv", table, tmp_path / "w.csv", header=True)
    assert records == 3 and size == os.path.getsize(tmp_path / "w.csv")
    with open(tmp_path / "w.csv", newline="") as f:
        got = list(csv.reader(f, doublequote=False, escapechar="\\"))
    assert got[0] == table.column_names
    assert got[1] == ["1", "a,b", "", "1.0", "2024-01-02", "2024-01-02T03:04:05.123Z", "1.50"]
    assert got[2] == ["", "", "z", "1.0E20", "2024-01-02", "2024-01-02T03:04:05.123Z", "1.50"]
    assert got[3][1] == 'q"x'
    write("csv", table, tmp_path / "w.csv.bz2", compression="bzip2")
    import bz2
    assert bz2.decompress((tmp_path / "w.csv.bz2").read_bytes()).decode().splitlines()[0].startswith("1,\"a,b\"")
    _, back, _ = read("csv", tmp_path / "w.csv", schema=table.schema, header=True)
    # Spark reads an empty quoted field as null
    assert back[0]["s"] == "a,b" and back[2]["s"] == 'q"x' and back[0]["e"] is None
    assert back[1]["i"] is None and back[0]["ts"] == datetime.datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)


def test_csv_write_quoting_round_trips_through_python_csv(tmp_path: Path) -> None:
    rng = random.Random(6)
    values = ["".join(rng.choice('ab,"\\\n #;') for _ in range(rng.randint(0, 8))) for _ in range(3000)]
    # Python's reader takes a backslash in an unquoted field as an escape, Spark's does not:
    # keep backslashes to fields that are quoted (they hold a separator)
    values = [v + ",z" if "\\" in v else v for v in values]
    write("csv", pa.table({"s": values, "i": list(range(len(values)))}), tmp_path / "q.csv")
    with open(tmp_path / "q.csv", newline="") as f:
        got = list(csv.reader(f, doublequote=False, escapechar="\\"))
    # Spark's writer trims leading and trailing blanks; a null and an empty string both read back as ''
    assert got == [[v.strip(" \n"), str(i)] for i, v in enumerate(values)]


def test_csv_doubles_round_trip_through_python_float(tmp_path: Path) -> None:
    rng = random.Random(5)
    values = [rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30) for _ in range(5000)] + \
        [0.0, -0.0, 1.0, 1e7, 1e-3, 9999999.999, float("inf"), float("-inf"), 123456789012345678.0]
    write("csv", pa.table({"d": values}), tmp_path / "d.csv")
    texts = (tmp_path / "d.csv").read_text().splitlines()
    java = {"Infinity": "inf", "-Infinity": "-inf"}
    assert [float(java.get(t, t)) for t in texts] == values
    # Java's form: a point always, E notation outside [1e-3, 1e7)
    for t, v in zip(texts, values):
        if t in java:
            continue
        assert "." in t and (("E" in t) == (v != 0 and not 1e-3 <= abs(v) < 1e7)), t


# ---------------------------------------------------------------------------------- json
def test_json_inference_and_rows_match_python_json(tmp_path: Path) -> None:
    rng = random.Random(4)
    records = []
    for i in range(2000):
        rec: dict[str, Any] = {"id": i, "zeta": rng.choice([1.5, 2, None]), "name": rng.choice(["a", "b", None])}
        if i % 3:
            rec["nested"] = {"y": i, "x": rng.choice(["s", None]), "list": [i, i + 1]}
        if i % 7 == 0:
            rec["tags"] = [rng.choice(["t1", "t2"]) for _ in range(i % 4)]
        records.append(rec)
    (tmp_path / "j.json").write_text("".join(json.dumps(r) + "\n" for r in records))
    schema, got, n = read("json", tmp_path / "j.json", min_partitions=6)
    assert n == 6
    assert schema == pa.schema([("id", pa.int64()), ("name", pa.string()),
                                ("nested", pa.struct([("list", pa.list_(pa.int64())), ("x", pa.string()),
                                                      ("y", pa.int64())])),
                                ("tags", pa.list_(pa.string())), ("zeta", pa.float64())])
    for row, rec in zip(got, records):
        expected = {k: rec.get(k) for k in schema.names}
        expected["zeta"] = None if rec["zeta"] is None else float(rec["zeta"])
        if "nested" in rec:
            expected["nested"] = {k: rec["nested"].get(k) for k in ("list", "x", "y")}
        assert row == expected
    assert len(got) == len(records)


def test_json_conflicts_nulls_and_corrupt_records(tmp_path: Path) -> None:
    lines = ['{"b":1,"a":{"y":1,"x":"s"},"c":[1,2.5]}', '{"b":2.5,"d":null,"e":[{"q":1},{"p":true}]}',
             '{"b":"str","f":1}', "not json", '{"g":[]}', '{"h": 99999999999999999999}']
    (tmp_path / "j.json").write_text("\n".join(lines) + "\n")
    schema, got, _ = read("json", tmp_path / "j.json")
    assert schema.names == ["_corrupt_record", "a", "b", "c", "d", "e", "f", "g", "h"]
    assert schema.field("b").type == pa.string() and schema.field("d").type == pa.string()
    assert schema.field("c").type == pa.list_(pa.float64()) and schema.field("g").type == pa.list_(pa.string())
    assert schema.field("e").type == pa.list_(pa.struct([("p", pa.bool_()), ("q", pa.int64())]))
    assert schema.field("h").type == pa.decimal128(20, 0)
    assert [r["b"] for r in got] == ["1", "2.5", "str", None, None, None]
    assert [r["_corrupt_record"] for r in got] == [None, None, None, "not json", None, None]
    _, dropped, _ = read("json", tmp_path / "j.json", mode="DROPMALFORMED")
    assert len(dropped) == 5
    with pytest.raises(ValueError, match="not json"):
        read("json", tmp_path / "j.json", mode="FAILFAST")


def test_json_multiline_and_explicit_schema(tmp_path: Path) -> None:
    doc = [{"a": 1, "b": {"c": "x"}}, {"a": 2, "b": None}]
    (tmp_path / "m.json").write_text(json.dumps(doc, indent=2))
    schema, got, _ = read("json", tmp_path / "m.json", multiLine=True)
    assert got == [{"a": 1, "b": {"c": "x"}}, {"a": 2, "b": None}]
    given = pa.schema([("a", pa.string()), ("when", pa.timestamp("us", "UTC"))])
    (tmp_path / "s.json").write_text('{"a":1,"when":"2024-01-02T03:04:05.000Z"}\n{"a":"t"}\n')
    _, got, _ = read("json", tmp_path / "s.json", schema=given)
    assert got == [{"a": "1", "when": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)}, {"a": "t", "when": None}]


def test_json_write_omits_nulls(tmp_path: Path) -> None:
    table = pa.table({"i": [1, None], "s": pa.array([{"x": 1, "y": None}, None],
                                                   pa.struct([("x", pa.int64()), ("y", pa.string())])),
                      "l": [[1.0, None], []], "t": pa.array([datetime.datetime(2024, 1, 2, 3, 4, 5)] * 2,
                                                            pa.timestamp("us", "UTC"))})
    records, _ = write("json", table, tmp_path / "w.json")
    got = [json.loads(line) for line in (tmp_path / "w.json").read_text().splitlines()]
    assert records == 2
    assert got == [{"i": 1, "s": {"x": 1}, "l": [1.0, None], "t": "2024-01-02T03:04:05.000Z"},
                   {"l": [], "t": "2024-01-02T03:04:05.000Z"}]
    write("json", table, tmp_path / "w.json.gz", compression="gzip")
    assert gzip.decompress((tmp_path / "w.json.gz").read_bytes()) == (tmp_path / "w.json").read_bytes()


# ---------------------------------------------------------------------------------- parquet
def test_parquet_row_groups_become_splits(tmp_path: Path) -> None:
    n = 200_000
    table = pa.table({"k": pa.array(range(n), pa.int64()), "v": [f"value-{i % 977}" for i in range(n)],
                      "ts": pa.array(range(n), pa.timestamp("us", "UTC"))})
    pq.write_table(table, tmp_path / "p.parquet", row_group_size=20_000, compression="none")
    schema, got, nsplits = read("parquet", tmp_path / "p.parquet", min_partitions=4)
    assert nsplits == 4 and schema == table.schema
    assert got == pq.read_table(tmp_path / "p.parquet").to_pylist()  # every row group once, in order
    plan = ds.plan_scan("parquet", [str(tmp_path / "p.parquet")], {}, None, None, 4)
    counts = [sum(b.num_rows for b in ds.read_split(plan, s, ["k"])) for s in plan.splits]
    assert sum(counts) == n and sum(1 for c in counts if c) >= 3


def test_parquet_write_codecs(tmp_path: Path) -> None:
    table = pa.table({"a": [1, 2, None], "b": ["x", None, "z"]})
    assert ds.file_extension("parquet", {}) == ".snappy.parquet"
    assert ds.file_extension("parquet", {"compression": "none"}) == ".parquet"
    for codec in ("snappy", "gzip", "zstd", "none"):
        path = tmp_path / f"w-{codec}.parquet"
        records, size = write("parquet", table, path, compression=codec)
        assert records == 3 and size == os.path.getsize(path)
        assert pq.read_table(path).equals(table)
        meta = pq.ParquetFile(path).metadata.row_group(0).column(0)
        assert meta.compression.lower() == {"none": "uncompressed"}.get(codec, codec)


def test_parquet_merge_schema(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1], "b": ["x"]}), tmp_path / "1.parquet")
    pq.write_table(pa.table({"a": [2], "c": [2.5]}), tmp_path / "2.parquet")
    schema, rows, _ = read("parquet", tmp_path)
    assert schema.names == ["a", "b"] and rows == [{"a": 1, "b": "x"}, {"a": 2, "b": None}]
    schema, rows, _ = read("parquet", tmp_path, mergeSchema=True)
    assert schema.names == ["a", "b", "c"]
    assert rows == [{"a": 1, "b": "x", "c": None}, {"a": 2, "b": None, "c": 2.5}]


def test_discover_partitions(tmp_path: Path) -> None:
    dirs = ["y=2024/d=2024-01-02/s=a%20b", "y=99999999999/d=__HIVE_DEFAULT_PARTITION__/s=1",
            "y=7/d=2024-02-01/s=x"]
    files = []
    for d in dirs:
        (tmp_path / d).mkdir(parents=True)
        (tmp_path / d / "part-0.csv").write_text("1\n")
        files.append(str(tmp_path / d / "part-0.csv"))
    schema, values = ds.discover_partitions(LOCAL, str(tmp_path), LOCAL.expand(",".join(
        str(tmp_path / d) for d in dirs)))
    assert schema == pa.schema([("y", pa.int64()), ("d", pa.date32()), ("s", pa.string())])
    assert values == [(2024, datetime.date(2024, 1, 2), "a b"), (99999999999, None, "1"),
                      (7, datetime.date(2024, 2, 1), "x")]
    with pytest.raises(ValueError, match="CONFLICTING_PARTITION_COLUMN_NAMES"):
        ds.discover_partitions(LOCAL, str(tmp_path), [files[0], str(tmp_path / "y=1" / "f.csv")])


# ---------------------------------------------------------------------------------- errors, fs
def test_unsupported_options_name_option_value_and_format(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a\n")
    with pytest.raises(ValueError, match=r"csv.*mode.*'BOGUS'"):
        read("csv", tmp_path / "x.csv", mode="bogus")
    with pytest.raises(ValueError, match=r"csv.*encoding.*latin1"):
        read("csv", tmp_path / "x.csv", encoding="latin1")
    with pytest.raises(ValueError, match=r"json.*compression.*'rar'"):
        ds.file_extension("json", {"compression": "rar"})
    with pytest.raises(ValueError, match=r"parquet.*compression.*'bzip2'"):
        ds.file_extension("parquet", {"compression": "bzip2"})
    with pytest.raises(ValueError, match="orc"):
        ds.file_extension("orc", {})
    with pytest.raises(ValueError, match=r"csv.*dateFormat.*'dd/MM/yyyy'"):
        read("csv", tmp_path / "x.csv", dateFormat="dd/MM/yyyy")
    with pytest.raises(ValueError, match=r"csv.*header.*'yes'"):
        read("csv", tmp_path / "x.csv", header="yes")


def test_memory_filesystem_planning() -> None:
    fsspec = pytest.importorskip("fsspec")
    mem = fsspec.filesystem("memory")
    mem.pipe("/dsplan/a.json", b'{"b":1}\n{"a":"x"}\n')
    mem.pipe("/dsplan/_SUCCESS", b"")
    try:
        plan = ds.plan_scan("json", ["memory://dsplan"], {}, None, None, 2)
        assert plan.schema == pa.schema([("a", pa.string()), ("b", pa.int64())])
        assert [s.path for s in plan.splits][0].endswith("a.json")
        rows = [r for s in plan.splits for b in ds.read_split(plan, s) for r in b.to_pylist()]
        assert rows == [{"a": None, "b": 1}, {"a": "x", "b": None}]
    finally:
        mem.rm("/dsplan", recursive=True)


# ---------------------------------------------------------------------------------- against PySpark
@pytest.fixture(scope="module")
def spark() -> Any:
    from tests.spark_reference import reference_pyspark
    with reference_pyspark("datasources") as session:
        yield session


def arrow_type(t: Any) -> Any:
    """A PySpark type as sparkctl's Arrow type (the mapping every DataFrame module uses)."""
    from pyspark.sql import types as T
    simple = {T.ByteType: pa.int8(), T.ShortType: pa.int16(), T.IntegerType: pa.int32(), T.LongType: pa.int64(),
              T.FloatType: pa.float32(), T.DoubleType: pa.float64(), T.BooleanType: pa.bool_(),
              T.StringType: pa.string(), T.BinaryType: pa.binary(), T.DateType: pa.date32(),
              T.TimestampType: pa.timestamp("us", "UTC"), T.TimestampNTZType: pa.timestamp("us"),
              T.NullType: pa.null()}
    for cls, typ in simple.items():
        if type(t) is cls:
            return typ
    if isinstance(t, T.DecimalType):
        return pa.decimal128(t.precision, t.scale)
    if isinstance(t, T.ArrayType):
        return pa.list_(arrow_type(t.elementType))
    if isinstance(t, T.MapType):
        return pa.map_(arrow_type(t.keyType), arrow_type(t.valueType))
    if isinstance(t, T.StructType):
        return pa.struct([pa.field(f.name, arrow_type(f.dataType)) for f in t.fields])
    raise AssertionError(f"unmapped type {t}")


def plain(value: Any) -> Any:
    """A value of either side in one comparable form (PySpark's local-time datetimes as UTC)."""
    if hasattr(value, "asDict"):
        return {k: plain(v) for k, v in value.asDict().items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        if value and all(type(v) is tuple and len(v) == 2 for v in value):  # an Arrow map's entries
            return {k: plain(v) for k, v in value}
        return [plain(v) for v in value]
    if isinstance(value, datetime.datetime):
        return value.astimezone(UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, float) and value != value:
        return "NaN"
    return value


def same_as_spark(spark: Any, fmt: str, path: Any, **options: Any) -> list[dict[str, Any]]:
    df = spark.read.format(fmt).options(**options).load(str(path))
    schema, rows, _ = read(fmt, path, min_partitions=3, **options)
    assert schema == pa.schema([pa.field(f.name, arrow_type(f.dataType)) for f in df.schema.fields])
    theirs = sorted((plain(r.asDict(recursive=True)) for r in df.collect()), key=repr)
    ours = sorted((plain(r) for r in rows), key=repr)
    assert ours == theirs
    return ours


SPARK_ROWS = [(1, "a,b", None, 2.5, True, datetime.date(2024, 1, 2), datetime.datetime(2024, 1, 2, 3, 4, 5, 123000)),
              (2, "multi\nline", "x", None, False, None, None),
              (3, 'q"uote', "", -1e10, None, datetime.date(1999, 12, 31), datetime.datetime(2000, 2, 29, 23, 59, 59)),
              (None, None, "tail ", 0.0, True, datetime.date(2024, 1, 3), datetime.datetime(2024, 1, 2, 0, 0))]
SPARK_SCHEMA = "i int, s string, n string, d double, b boolean, day date, ts timestamp"


@pytest.mark.slow
def test_csv_written_by_spark(spark: Any, tmp_path: Path) -> None:
    df = spark.createDataFrame(SPARK_ROWS, SPARK_SCHEMA)
    df.coalesce(1).write.csv(str(tmp_path / "h"), header=True)
    df.coalesce(1).write.csv(str(tmp_path / "n"))
    df.filter("i != 2").coalesce(1).write.csv(str(tmp_path / "single"), header=True)
    same_as_spark(spark, "csv", tmp_path / "h", header=True, inferSchema=True, multiLine=True)
    same_as_spark(spark, "csv", tmp_path / "n", multiLine=True)
    same_as_spark(spark, "csv", tmp_path / "single", header=True, inferSchema=True)
    same_as_spark(spark, "csv", tmp_path / "single", header=True)


@pytest.mark.slow
def test_csv_bad_lines_each_mode_as_spark(spark: Any, tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text("a,b,c\n1,x,2024-01-01\n2\n3,y,z,extra\nfoo,w,2024-02-30\n4,,\n")
    for mode in ("PERMISSIVE", "DROPMALFORMED"):
        same_as_spark(spark, "csv", tmp_path / "b.csv", header=True, inferSchema=True, mode=mode)
        df = spark.read.schema("a int, b string, c date").csv(str(tmp_path / "b.csv"), header=True, mode=mode)
        given = pa.schema([("a", pa.int32()), ("b", pa.string()), ("c", pa.date32())])
        _, ours, _ = read("csv", tmp_path / "b.csv", schema=given, header=True, mode=mode)
        assert sorted(map(repr, ours)) == sorted(repr(r.asDict()) for r in df.collect())


@pytest.mark.slow
def test_json_written_and_inferred_as_spark(spark: Any, tmp_path: Path) -> None:
    lines = ['{"b":1,"a":{"y":1,"x":"s"},"c":[1,2.5]}', '{"b":2.5,"d":null,"e":[{"q":1},{"p":true}]}',
             '{"b":"str","f":1,"a":{"z":[true]}}', "not json", '{"g":[]}', '{"h": 99999999999999999999}',
             "", '{"Upper": 1, "_under": "x", "t": "2024-01-02T03:04:05Z"}']
    (tmp_path / "j.json").write_text("\n".join(lines) + "\n")
    same_as_spark(spark, "json", tmp_path / "j.json")
    same_as_spark(spark, "json", tmp_path / "j.json", mode="DROPMALFORMED")
    df = spark.createDataFrame(SPARK_ROWS, SPARK_SCHEMA)
    df.coalesce(2).write.json(str(tmp_path / "w"))
    same_as_spark(spark, "json", tmp_path / "w")
    (tmp_path / "m.json").write_text(json.dumps([{"a": 1, "b": [{"c": 1}]}, {"a": 2.5}], indent=1))
    same_as_spark(spark, "json", tmp_path / "m.json", multiLine=True)


@pytest.mark.slow
def test_parquet_and_text_written_by_spark(spark: Any, tmp_path: Path) -> None:
    df = spark.createDataFrame(SPARK_ROWS, SPARK_SCHEMA).selectExpr(
        "*", "cast(i as bigint) as l", "cast(d as decimal(14, 2)) as dec", "array(i, 5) as arr",
        "named_struct('k', s, 'v', i) as st", "map('k', i) as m")
    df.coalesce(1).write.parquet(str(tmp_path / "p"))
    same_as_spark(spark, "parquet", tmp_path / "p")
    big = spark.range(300_000).selectExpr("id", "cast(id % 1000 as string) as s", "rand(1) as r")
    big.coalesce(1).write.option("parquet.block.size", 512 * 1024).parquet(str(tmp_path / "big"))
    plan = ds.plan_scan("parquet", [str(tmp_path / "big")], {}, None, None, 4)
    assert len(plan.splits) == 4
    counts = [sum(b.num_rows for b in ds.read_split(plan, s, ["id"])) for s in plan.splits]
    assert sum(counts) == 300_000 and sum(1 for c in counts if c) >= 2
    ids = sorted(i for s in plan.splits for b in ds.read_split(plan, s, ["id"]) for i in b.column(0).to_pylist())
    assert ids == list(range(300_000))
    spark.createDataFrame([("a",), (None,), ("b c",)], "v string").coalesce(1).write.text(str(tmp_path / "t"))
    same_as_spark(spark, "text", tmp_path / "t")
    spark.createDataFrame([("x",), ("y",)], "v string").coalesce(1).write.text(str(tmp_path / "tz"),
                                                                                 compression="gzip")
    assert glob.glob(str(tmp_path / "tz" / "*.txt.gz"))
    same_as_spark(spark, "text", tmp_path / "tz")


@pytest.mark.slow
def test_partition_discovery_as_spark(spark: Any, tmp_path: Path) -> None:
    rows = [(1, 2024, "2024-01-02", "a b", 1.5), (2, 7, "2024-02-01", None, 2.0), (3, 7, None, "x/y", -1.0)]
    spark.createDataFrame(rows, "v int, y int, d string, s string, f double").selectExpr(
        "v", "y", "cast(d as date) as d", "s", "f").write.partitionBy("y", "d", "s", "f").parquet(str(tmp_path / "t"))
    df = spark.read.parquet(str(tmp_path / "t"))
    files = ds._list_files([str(tmp_path / "t" / "*" / "*" / "*" / "*")], None)
    schema, values = ds.discover_partitions(LOCAL, str(tmp_path / "t"), [st for _, st in files])
    theirs = [f for f in df.schema.fields if f.name != "v"]
    assert schema == pa.schema([pa.field(f.name, arrow_type(f.dataType)) for f in theirs])
    data = [pq.read_table(st.path).column("v").to_pylist()[0] for _, st in files]
    ours = sorted([(v, *vals) for v, vals in zip(data, values)], key=repr)
    assert ours == sorted([tuple(r) for r in df.select("v", "y", "d", "s", "f").collect()], key=repr)


def _ours_to(tmp_path: Path, name: str, fmt: str, table: Any, **options: Any) -> Path:
    out = tmp_path / name
    out.mkdir()
    ext = ds.file_extension(fmt, {k: str(v) for k, v in options.items()})
    half = table.num_rows // 2
    for i, part in enumerate((table.slice(0, half), table.slice(half))):
        write(fmt, part, out / f"part-{i:05d}-x-c000{ext}", **options)
    return out


@pytest.mark.slow
def test_files_written_by_sparkctl_read_by_spark(spark: Any, tmp_path: Path) -> None:
    table = pa.table({
        "i": pa.array([r[0] for r in SPARK_ROWS], pa.int32()), "s": [r[1] for r in SPARK_ROWS],
        "n": [r[2] for r in SPARK_ROWS], "d": pa.array([r[3] for r in SPARK_ROWS], pa.float64()),
        "b": [r[4] for r in SPARK_ROWS], "day": pa.array([r[5] for r in SPARK_ROWS], pa.date32()),
        "ts": pa.array([r[6] for r in SPARK_ROWS], pa.timestamp("us", "UTC")),
        "dec": pa.array([decimal.Decimal("1.25"), None, decimal.Decimal("-3.5"), decimal.Decimal("0")],
                        pa.decimal128(10, 2)),
        "arr": pa.array([[1, None], None, [], [3]], pa.list_(pa.int64())),
        "st": pa.array([{"k": "a", "v": 1}, None, {"k": None, "v": 2}, {"k": "z", "v": None}],
                       pa.struct([("k", pa.string()), ("v", pa.int64())]))})
    expected = sorted((plain(r) for r in table.to_pylist()), key=repr)
    ddl = "i int, s string, n string, d double, b boolean, day date, ts timestamp, dec decimal(10,2), " \
          "arr array<bigint>, st struct<k:string,v:bigint>"
    for codec in ("snappy", "gzip", "zstd", "none"):
        path = _ours_to(tmp_path, f"pq-{codec}", "parquet", table, compression=codec)
        got = sorted((plain(r.asDict(recursive=True)) for r in spark.read.parquet(str(path)).collect()), key=repr)
        assert got == expected
    for codec in ("none", "gzip", "bzip2", "deflate"):
        path = _ours_to(tmp_path, f"json-{codec}", "json", table, compression=codec)
        got = sorted((plain(r.asDict(recursive=True)) for r in spark.read.schema(ddl).json(str(path)).collect()),
                     key=repr)
        assert got == expected
    flat = table.drop_columns(["arr", "st"])
    # strings are written trimmed, an empty one quoted, and Spark reads a quoted empty field as null
    flat_expected = sorted((plain({k: (v.strip() or None) if isinstance(v, str) else v for k, v in r.items()})
                            for r in flat.to_pylist()), key=repr)
    flat_ddl = ddl.rsplit(", arr", 1)[0]
    for codec in ("none", "gzip"):
        path = _ours_to(tmp_path, f"csv-{codec}", "csv", flat, header=True, compression=codec)
        df = spark.read.schema(flat_ddl).csv(str(path), header=True, multiLine=True)
        assert sorted((plain(r.asDict()) for r in df.collect()), key=repr) == flat_expected
    doubles = [0.0, -0.0, 1.0, 1e7, 9999999.5, 1e-3, 9.99e-4, 1e20, -2.5e-10, 123.456, 1 / 3, float("nan"),
               float("inf"), 2.0 ** 70]
    spark.createDataFrame([(d,) for d in doubles], "d double").coalesce(1).write.csv(str(tmp_path / "sd"))
    write("csv", pa.table({"d": doubles}), tmp_path / "od.csv")
    spark_text = Path(glob.glob(str(tmp_path / "sd" / "part-*.csv"))[0]).read_text()
    assert (tmp_path / "od.csv").read_text() == spark_text
    tricky = ["plain", "tail ", " lead", "a\\b", 'a\\"b', 'q"x', "", None, "a,b", "x\ny", "\t", "é", "#c", "a #b",
              "x,a\\b", "\\\""]
    frame = pa.table({"s": tricky, "i": pa.array(range(len(tricky)), pa.int32())})
    spark.createDataFrame(frame.to_pylist(), "s string, i int").coalesce(1).write.csv(str(tmp_path / "sq"),
                                                                                      header=True)
    write("csv", frame, tmp_path / "oq.csv", header=True)
    assert (tmp_path / "oq.csv").read_text() == Path(glob.glob(str(tmp_path / "sq" / "part-*.csv"))[0]).read_text()
    texts = pa.table({"value": ["a", None, "b c", "é"]})
    path = _ours_to(tmp_path, "text", "text", texts, compression="gzip")
    assert sorted(r.value for r in spark.read.text(str(path)).collect()) == sorted(["a", "", "b c", "é"])


def test_partitioned_output_reads_back_with_its_partition_columns(tmp_path: Path) -> None:
    """df.write.partitionBy(...) writes k=v directories; spark.read finds them and gives the
    partition columns last, typed as Spark infers them (against the rows written)."""
    from sparkctl.sql import SparkSession, functions as F
    rows = [("a", 2020, 1.0), ("b", 2021, 2.0), ("c", 2020, None), ("d", None, 4.0)]
    spark = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
    try:
        df = spark.createDataFrame(rows, ["k", "year", "v"])
        for fmt in ("parquet", "json", "csv"):
            out = str(tmp_path / fmt)
            df.write.partitionBy("year").format(fmt).option("header", True).save(out)
            assert sorted(p.name for p in (tmp_path / fmt).iterdir()) == \
                ["_SUCCESS", "year=2020", "year=2021", "year=__HIVE_DEFAULT_PARTITION__"]
            back = spark.read.format(fmt).option("header", True).option("inferSchema", True).load(out)
            assert back.columns == ["k", "v", "year"]
            assert dict(back.dtypes)["year"] == "int"
            assert sorted(tuple(r) for r in back.collect()) == sorted((k, v, y) for k, y, v in rows)
            assert sorted(r[0] for r in back.filter(F.col("year") == 2020).select("k").collect()) == ["a", "c"]
    finally:
        spark.stop()
