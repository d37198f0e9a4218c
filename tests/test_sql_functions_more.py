"""Array, text-to-timestamp and hash functions of ``pyspark.sql.functions``: their answers against
plain Python on many rows, their SQL spellings, and (slow) names, types, nullability and rows
against PySpark 4.3 itself."""
from __future__ import annotations

import random
from typing import Any, Callable, Iterator

import pytest

pytest.importorskip("pyarrow")

from tests.test_sql_dataframes import assert_same_frames  # noqa: E402

pytestmark = pytest.mark.timeout(300)

ARRAYS_SCHEMA = "id INT, a ARRAY<INT>, b ARRAY<INT>, n ARRAY<ARRAY<INT>>, s ARRAY<STRING>"


def random_arrays(count: int, seed: int = 7) -> list[tuple]:
    rng = random.Random(seed)

    def ints() -> list[int | None] | None:
        if rng.random() < 0.1:
            return None
        return [None if rng.random() < 0.1 else rng.randint(-3, 6) for _ in range(rng.randint(0, 7))]

    def nested() -> list[list[int | None] | None] | None:
        if rng.random() < 0.1:
            return None
        return [ints() for _ in range(rng.randint(0, 3))]

    def strings() -> list[str | None] | None:
        if rng.random() < 0.1:
            return None
        return [None if rng.random() < 0.15 else rng.choice("abcde") * rng.randint(1, 2)
                for _ in range(rng.randint(0, 5))]

    return [(i, ints(), ints(), nested(), strings()) for i in range(count)]


# ---------------------------------------------------------------------------- plain-Python references
def distinct(xs: list) -> list:
    out: list = []
    for x in xs:
        if x not in out:
            out.append(x)
    return out


def _sort_key(x: Any) -> tuple:
    return (x is not None, x if x is not None else 0)


def py_slice(xs: list, start: int, length: int) -> list:
    first = start - 1 if start > 0 else len(xs) + start
    if first < 0 or first >= len(xs):
        return []
    return xs[first:first + length]


def zipped(a: list, b: list) -> list[tuple]:
    return [(a[i] if i < len(a) else None, b[i] if i < len(b) else None) for i in range(max(len(a), len(b)))]


def py_flatten(n: list) -> list | None:
    if any(inner is None for inner in n):
        return None
    return [x for inner in n for x in inner]


ONE_ARRAY: dict[str, tuple[Callable[[Any], Any], Callable[[list], Any]]] = {
    "distinct": (lambda F: F.array_distinct("a"), distinct),
    "sort_asc": (lambda F: F.sort_array("a"), lambda a: sorted(a, key=_sort_key)),
    "sort_desc": (lambda F: F.sort_array("a", asc=False), lambda a: sorted(a, key=_sort_key, reverse=True)),
    "array_sort": (lambda F: F.array_sort("a"),
                   lambda a: sorted(x for x in a if x is not None) + [None] * a.count(None)),
    "slice_2_3": (lambda F: F.slice("a", 2, 3), lambda a: py_slice(a, 2, 3)),
    "slice_-2_5": (lambda F: F.slice("a", -2, 5), lambda a: py_slice(a, -2, 5)),
    "max": (lambda F: F.array_max("a"), lambda a: max((x for x in a if x is not None), default=None)),
    "min": (lambda F: F.array_min("a"), lambda a: min((x for x in a if x is not None), default=None)),
    "position_3": (lambda F: F.array_position("a", 3), lambda a: a.index(3) + 1 if 3 in a else 0),
    "remove_3": (lambda F: F.array_remove("a", 3), lambda a: [x for x in a if x != 3]),
}
TWO_ARRAYS: dict[str, tuple[Callable[[Any], Any], Callable[[list, list], Any]]] = {
    "union": (lambda F: F.array_union("a", "b"), lambda a, b: distinct(a + b)),
    "intersect": (lambda F: F.array_intersect("a", "b"), lambda a, b: [x for x in distinct(a) if x in b]),
    "except": (lambda F: F.array_except("a", "b"), lambda a, b: [x for x in distinct(a) if x not in b]),
    "zip": (lambda F: F.arrays_zip("a", "b"), zipped),
}


@pytest.fixture(scope="module")
def ours() -> Iterator[Any]:
    from sparkctl.sql import SparkSession
    spark = SparkSession.builder.master("local[2]").appName("functions-more").config("spark.ui.enabled", "false") \
        .getOrCreate()
    yield spark
    spark.stop()


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "asDict"):
        return tuple(value)
    return value


def test_array_functions_match_python(ours: Any) -> None:
    from sparkctl.sql import functions as F
    rows = random_arrays(300)
    df = ours.createDataFrame(rows, ARRAYS_SCHEMA).repartition(3)
    names = list(ONE_ARRAY) + list(TWO_ARRAYS)
    got = df.select("id", *[ONE_ARRAY[k][0](F).alias(k) for k in ONE_ARRAY],
                    *[TWO_ARRAYS[k][0](F).alias(k) for k in TWO_ARRAYS],
                    F.flatten("n").alias("flatten"), F.array_join("s", "|").alias("join"),
                    F.array_join("s", ", ", "?").alias("join_null")).collect()
    assert len(got) == len(rows)
    by_id = {r[0]: r for r in rows}
    for r in got:
        _, a, b, n, s = by_id[r["id"]]
        for k in ONE_ARRAY:
            assert _plain(r[k]) == (None if a is None else ONE_ARRAY[k][1](a)), (k, a)
        for k in TWO_ARRAYS:
            want = None if a is None or b is None else TWO_ARRAYS[k][1](a, b)
            assert _plain(r[k]) == want, (k, a, b)
        assert r["flatten"] == (None if n is None else py_flatten(n)), n
        assert r["join"] == (None if s is None else "|".join(x for x in s if x is not None)), s
        assert r["join_null"] == (None if s is None else ", ".join("?" if x is None else x for x in s)), s
    assert len(names) == 14


def other_arrays(spark: Any) -> Any:
    import datetime as dt
    nan = float("nan")
    day = dt.date(2020, 1, 1)
    rows = [(1, ["b", None, "a", "b", None], ["a", "c"], [1.5, nan, -0.5, nan, 1.5], [nan, 2.0], [day, day, None]),
            (2, [], ["x"], [None, None], [None], [None, day]), (3, None, ["x"], None, [1.0], None)]
    return spark.createDataFrame(rows, "id INT, s ARRAY<STRING>, t ARRAY<STRING>, d ARRAY<DOUBLE>, e ARRAY<DOUBLE>, "
                                       "w ARRAY<DATE>")


def other_arrays_program(spark: Any, F: Any) -> Any:
    return other_arrays(spark).select("id", F.array_distinct("s"), F.array_union("s", "t"), F.array_except("s", "t"),
                                      F.array_distinct("d"), F.array_intersect("d", "e"), F.array_union("d", "e"),
                                      F.array_distinct("w")).orderBy("id")


def test_distinct_and_set_functions_on_strings_doubles_and_dates(ours: Any) -> None:
    """The other element types (Arrow's group-by for strings, numpy for the rest); NaN equals NaN."""
    import datetime as dt
    import math
    from sparkctl.sql import functions as F
    nan = float("nan")
    day = dt.date(2020, 1, 1)
    got = other_arrays_program(ours, F).collect()

    def same(a: Any, b: Any) -> bool:
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))

    expected = [[1, ["b", None, "a"], ["b", None, "a", "c"], ["b", None], [1.5, nan, -0.5], [nan],
                 [1.5, nan, -0.5, 2.0], [day, None]],
                [2, [], ["x"], [], [None], [None], [None], [None, day]],
                [3, None, None, None, None, None, None, None]]
    assert same([list(r) for r in got], expected)


def test_array_functions_types_names_and_nullability(ours: Any) -> None:
    from sparkctl.sql import functions as F
    df = ours.createDataFrame([([1, 2], [2.5], ["x"])], "a ARRAY<INT> NOT NULL, d ARRAY<DOUBLE>, s ARRAY<STRING>")
    out = df.select(F.array_distinct("a"), F.sort_array("a"), F.slice("a", 1, 1), F.array_position("a", 2),
                    F.array_union("a", "d"), F.array_max("a"), F.array_join("s", ","), F.arrays_zip("a", "s"))
    assert out.columns == ["array_distinct(a)", "sort_array(a, true)", "slice(a, 1, 1)", "array_position(a, 2)",
                           "array_union(a, d)", "array_max(a)", "array_join(s, ,)", "arrays_zip(a, s)"]
    assert [t for _, t in out.dtypes] == ["array<int>", "array<int>", "array<int>", "bigint", "array<double>", "int",
                                         "string", "array<struct<a:int,s:string>>"]
    assert [f.nullable for f in out.schema.fields] == [False, False, False, False, True, True, True, True]
    assert out.first()["array_union(a, d)"] == [1.0, 2.0, 2.5]
    zipped = df.select(F.arrays_zip(F.col("a").alias("x"), F.array_distinct("s")))
    assert zipped.columns == ["arrays_zip(a AS x, array_distinct(s))"]
    assert zipped.dtypes[0][1] == "array<struct<x:int,1:string>>"
    assert [tuple(z) for z in zipped.first()[0]] == [(1, "x"), (2, None)]


def test_slice_refuses_a_zero_start(ours: Any) -> None:
    from sparkctl.errors import AnalysisException
    from sparkctl.sql import functions as F
    df = ours.createDataFrame([([1, 2],)], "a ARRAY<INT>")
    with pytest.raises(AnalysisException, match="start"):
        df.select(F.slice("a", 0, 1)).collect()


def test_array_functions_from_sql(ours: Any) -> None:
    ours.createDataFrame([(1, [3, 1, 3, None], [1, 5])], "id INT, a ARRAY<INT>, b ARRAY<INT>") \
        .createOrReplaceTempView("arrays_more")
    row = ours.sql("SELECT array_distinct(a), sort_array(a, false), array_sort(a), slice(a, 2, 2), array_max(a), "
                   "array_position(a, 1), array_remove(a, 3), array_union(a, b), array_intersect(a, b), "
                   "array_except(a, b), flatten(array(a, b)), array_join(b, '-'), arrays_zip(a, b) "
                   "FROM arrays_more").first()
    assert [_plain(v) for v in row] == [[3, 1, None], [3, 3, 1, None], [1, 3, 3, None], [1, 3], 3, 2, [1, None],
                                        [3, 1, None, 5], [1], [3, None], [3, 1, 3, None, 1, 5], "1-5",
                                        [(3, 1), (1, 5), (3, None), (None, None)]]


# ---------------------------------------------------------------------------- text <-> timestamps
def random_stamps(count: int, seed: int = 3) -> list[tuple]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        seconds = rng.randint(-2_000_000_000, 4_000_000_000)
        out.append((i, None if i % 9 == 4 else seconds))
    return out


def test_text_and_seconds_round_trip_like_python(ours: Any) -> None:
    import calendar
    import datetime as dt
    from sparkctl.sql import functions as F
    rows = random_stamps(200)
    df = ours.createDataFrame(rows, "id INT, u BIGINT")
    text = df.select("id", "u", F.from_unixtime("u").alias("t"), F.from_unixtime("u", "dd/MM/yyyy HH.mm").alias("t2"))
    got = text.select("id", "u", "t", "t2", F.to_timestamp("t").alias("ts"),
                      F.to_timestamp("t", "yyyy-MM-dd HH:mm:ss").alias("ts_fmt"), F.unix_timestamp("t").alias("back"),
                      F.unix_timestamp("t2", "dd/MM/yyyy HH.mm").alias("back2"),
                      F.to_date("t2", "dd/MM/yyyy HH.mm").alias("d")).collect()
    assert len(got) == len(rows)
    for r in got:
        if r.u is None:
            assert (r.t, r.t2, r.ts, r.ts_fmt, r.back, r.back2, r.d) == (None,) * 7
            continue
        when = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=r.u)
        assert r.t == when.strftime("%Y-%m-%d %H:%M:%S")
        assert r.t2 == when.strftime("%d/%m/%Y %H.%M")
        assert r.ts == when and r.ts_fmt == when
        assert r.back == r.u == calendar.timegm(when.timetuple())
        assert r.back2 == r.u - when.second
        assert r.d == when.date()


def test_to_timestamp_reads_the_texts_spark_casts(ours: Any) -> None:
    import datetime as dt
    from sparkctl.sql import functions as F
    texts = ["2020-01-05", "2020-1-5 1:2:3.5", "2020-01-05T01:02:03Z", "2020-01-05 01:02:03+01:00", "2020",
             "2020-01-05 13:04:05.123456"]
    df = ours.createDataFrame([(t,) for t in texts], "t STRING")
    got = [r[0] for r in df.select(F.to_timestamp("t")).collect()]
    assert got == [dt.datetime(2020, 1, 5), dt.datetime(2020, 1, 5, 1, 2, 3, 500000), dt.datetime(2020, 1, 5, 1, 2, 3),
                   dt.datetime(2020, 1, 5, 0, 2, 3), dt.datetime(2020, 1, 1), dt.datetime(2020, 1, 5, 13, 4, 5, 123456)]


def test_a_fraction_of_a_second_in_the_pattern(ours: Any) -> None:
    import datetime as dt
    from sparkctl.sql import functions as F
    texts = ["2020-01-05 13:04:05.123", "2020-01-05 13:04:05.1", "1999-12-31 23:59:59.05"]
    df = ours.createDataFrame([(t,) for t in texts], "t STRING")
    got = [r[0] for r in df.select(F.to_timestamp("t", "yyyy-MM-dd HH:mm:ss.SSS")).collect()]
    assert got == [dt.datetime.strptime(t, "%Y-%m-%d %H:%M:%S.%f") for t in texts]


def test_unparsable_text_raises_as_under_ansi(ours: Any) -> None:
    from sparkctl.errors import SparkSqlError
    from sparkctl.sql import functions as F
    df = ours.createDataFrame([("2020-01-05",)], "t STRING")
    with pytest.raises(SparkSqlError, match="CANNOT_PARSE_TIMESTAMP"):
        df.select(F.to_timestamp("t", "yyyy-MM-dd HH:mm")).collect()
    with pytest.raises(SparkSqlError, match="CAST_INVALID_INPUT"):
        df.select(F.to_timestamp(F.lit("nope"))).collect()


def test_current_time_is_now_and_one_value_per_query(ours: Any) -> None:
    import datetime as dt
    import time
    from sparkctl.sql import functions as F
    before = int(time.time())
    df = ours.range(6).repartition(3).select(F.unix_timestamp(), F.current_timestamp(), F.current_date())
    rows = df.collect()
    after = int(time.time())
    assert df.columns == ["unix_timestamp(current_timestamp(), yyyy-MM-dd HH:mm:ss)", "current_timestamp()",
                          "current_date()"]
    assert [f.nullable for f in df.schema.fields] == [False, False, False]
    assert len(set(rows)) == 1 and len(rows) == 6
    seconds, stamp, day = rows[0]
    assert before <= seconds <= after
    assert seconds == int(stamp.replace(tzinfo=dt.timezone.utc).timestamp())
    assert day in {dt.datetime.fromtimestamp(t, dt.timezone.utc).date() for t in (before, after)}


def test_sql_cast_and_one_argument_to_timestamp_read_text_as_utc(ours: Any) -> None:
    """sqlglot turns to_timestamp(t) into CAST(t AS TIMESTAMP): both read Spark's forms."""
    import datetime as dt
    ours.createDataFrame([("2020-01-05 13:04:05",), ("2020-1-5T01:02:03.5+01:00",), (None,)], "t STRING") \
        .createOrReplaceTempView("stamps_more")
    rows = ours.sql("SELECT to_timestamp(t), CAST(t AS TIMESTAMP), TRY_CAST('x' AS TIMESTAMP) FROM stamps_more").collect()
    assert [tuple(r) for r in rows] == [(dt.datetime(2020, 1, 5, 13, 4, 5),) * 2 + (None,),
                                        (dt.datetime(2020, 1, 5, 0, 2, 3, 500000),) * 2 + (None,), (None, None, None)]


def test_timestamp_functions_from_sql(ours: Any) -> None:
    import datetime as dt
    row = ours.sql("SELECT to_timestamp('05/01/2020 13', 'dd/MM/yyyy HH'), unix_timestamp('2020-01-05 00:00:01'), "
                   "from_unixtime(86400), from_unixtime(0, 'yyyy/MM/dd'), to_date('2020.03.04', 'yyyy.MM.dd')").first()
    assert list(row) == [dt.datetime(2020, 1, 5, 13), 1578182401, "1970-01-02 00:00:00", "1970/01/01",
                         dt.date(2020, 3, 4)]


# ---------------------------------------------------------------------------- hashes
def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & 0xFFFFFFFF


def _mix(h1: int, k1: int) -> int:
    k1 = _rotl((k1 * 0xCC9E2D51) & 0xFFFFFFFF, 15) * 0x1B873593 & 0xFFFFFFFF
    return (_rotl(h1 ^ k1, 13) * 5 + 0xE6546B64) & 0xFFFFFFFF


def _fmix(h1: int, length: int) -> int:
    h1 ^= length
    h1 ^= h1 >> 16
    h1 = h1 * 0x85EBCA6B & 0xFFFFFFFF
    h1 ^= h1 >> 13
    h1 = h1 * 0xC2B2AE35 & 0xFFFFFFFF
    return h1 ^ (h1 >> 16)


def spark_murmur3(values: list, seed: int = 42) -> int:
    """Spark's Murmur3Hash of a row, one value at a time in plain Python (ints as int, strings
    as UTF-8 with Spark's byte-at-a-time tail, lists element by element)."""
    def one(v: Any, h: int) -> int:
        if v is None:
            return h
        if isinstance(v, bool) or isinstance(v, int) and -2**31 <= v < 2**31:
            return _fmix(_mix(h, int(v) & 0xFFFFFFFF), 4)
        if isinstance(v, int):
            bits = v & 0xFFFFFFFFFFFFFFFF
            return _fmix(_mix(_mix(h, bits & 0xFFFFFFFF), bits >> 32), 8)
        if isinstance(v, list):
            for item in v:
                h = one(item, h)
            return h
        data = v.encode("utf-8")
        aligned = len(data) - len(data) % 4
        for i in range(0, aligned, 4):
            h = _mix(h, int.from_bytes(data[i:i + 4], "little"))
        for b in data[aligned:]:
            h = _mix(h, (b - 256 if b > 127 else b) & 0xFFFFFFFF)
        return _fmix(h, len(data))

    h = seed
    for v in values:
        h = one(v, h)
    return h - 2**32 if h >= 2**31 else h


HASH_SCHEMA = "id INT, i INT, l BIGINT, s STRING, a ARRAY<INT>, b BOOLEAN"


def random_hash_rows(count: int, seed: int = 5) -> list[tuple]:
    rng = random.Random(seed)
    alphabet = "abcxyz 日本é"

    def maybe(v: Any) -> Any:
        return None if rng.random() < 0.1 else v
    return [(k, maybe(rng.randint(-2**31, 2**31 - 1)), maybe(rng.randint(-2**63, 2**63 - 1)),
             maybe("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 11)))),
             maybe([maybe(rng.randint(-9, 9)) for _ in range(rng.randint(0, 4))]), maybe(rng.random() < 0.5))
            for k in range(count)]


def test_hash_functions_match_python(ours: Any) -> None:
    import hashlib
    import zlib
    from sparkctl.sql import functions as F
    rows = random_hash_rows(300)
    df = ours.createDataFrame(rows, HASH_SCHEMA).repartition(2)
    got = df.select("id", F.hash("i").alias("hi"), F.hash("l").alias("hl"), F.hash("s").alias("hs"),
                    F.hash("a").alias("ha"), F.hash("b").alias("hb"), F.hash("i", "s", "a").alias("h3"),
                    F.md5("s").alias("md5"), F.sha1("s").alias("sha1"), F.sha2("s", 384).alias("sha384"),
                    F.sha2("s", 0).alias("sha0"), F.sha2("s", 100).alias("bad_bits"), F.crc32("s").alias("crc")
                    ).collect()
    assert len(got) == len(rows)
    by_id = {r[0]: r for r in rows}
    for r in got:
        _, i, l_, s_, a, b = by_id[r.id]
        assert (r.hi, r.hl, r.hs, r.ha, r.hb, r.h3) == (spark_murmur3([i]), spark_murmur3([l_]), spark_murmur3([s_]),
                                                        spark_murmur3([a]), spark_murmur3([b]),
                                                        spark_murmur3([i, s_, a])), by_id[r.id]
        data = None if s_ is None else s_.encode()
        assert r.md5 == (None if data is None else hashlib.md5(data).hexdigest())
        assert r.sha1 == (None if data is None else hashlib.sha1(data).hexdigest())
        assert r.sha384 == (None if data is None else hashlib.sha384(data).hexdigest())
        assert r.sha0 == (None if data is None else hashlib.sha256(data).hexdigest())
        assert r.bad_bits is None
        assert r.crc == (None if data is None else zlib.crc32(data))


def test_hash_agrees_with_values_spark_gave() -> None:
    """Values PySpark 4.3 printed for these literals (so the plain-Python Murmur3 above is Spark's)."""
    assert spark_murmur3([1]) == -559580957
    assert spark_murmur3([2147483648]) == 238268309
    assert spark_murmur3(["abc"]) == 1322437556
    assert spark_murmur3(["hello world!x"]) == 1364154069
    assert spark_murmur3(["日本語"]) == -1143049834
    assert spark_murmur3([[1, 2]]) == -222940379
    assert spark_murmur3([1, "a", None]) == -936062819


def test_hash_of_floats_dates_and_decimals_from_sql(ours: Any) -> None:
    """Values PySpark 4.3 gave for the same SQL."""
    row = ours.sql("SELECT hash(1.5D), hash(CAST(1.5 AS FLOAT)), hash(DATE'2020-01-01'), "
                   "hash(TIMESTAMP'2020-01-01 00:00:00'), hash(CAST(1.5 AS DECIMAL(10,2))), hash(0.0D), "
                   "hash(-0.0D), hash(NULL), hash(true), md5('x'), crc32('x'), sha2('x', 1)").first()
    assert list(row) == [1290763749, -221251528, -725858435, -1486022740, -2056712946, -1670924195, -1670924195,
                         42, -559580957, "9dd4e461268c8034f5c8564e155c67a6", 2363233923, None]


# ---------------------------------------------------------------------------- against PySpark
@pytest.fixture(scope="module")
def theirs() -> Iterator[Any]:
    from tests.spark_reference import reference_pyspark
    with reference_pyspark("reference-functions-more", conf={"spark.sql.shuffle.partitions": "4"}) as spark:
        yield spark


def array_program(spark: Any, F: Any) -> Any:
    df = spark.createDataFrame(random_arrays(40, seed=11), ARRAYS_SCHEMA)
    return df.select("id", *[f(F) for f, _ in ONE_ARRAY.values()], *[f(F) for f, _ in TWO_ARRAYS.values()],
                     F.flatten("n"), F.array_join("s", ","), F.array_join("s", ",", "?")).orderBy("id")


def timestamp_program(spark: Any, F: Any) -> Any:
    df = spark.createDataFrame(random_stamps(30, seed=5), "id INT, u BIGINT")
    text = df.select("id", "u", F.from_unixtime("u").alias("t"), F.from_unixtime(F.lit(1_000_000_000)).alias("c"))
    return text.select("id", F.from_unixtime("u", "yyyy-MM-dd'T'HH:mm"), F.to_timestamp("t"),
                       F.to_timestamp("t", "yyyy-MM-dd HH:mm:ss"), F.unix_timestamp("t"),
                       F.to_date("t", "yyyy-MM-dd HH:mm:ss"),
                       F.to_timestamp("c"), F.unix_timestamp("c"), F.to_date("c", "yyyy-MM-dd HH:mm:ss")).orderBy("id")


def hash_program(spark: Any, F: Any) -> Any:
    df = spark.createDataFrame(random_hash_rows(40, seed=9), HASH_SCHEMA)
    return df.select("id", F.hash("i"), F.hash("l"), F.hash("s"), F.hash("a"), F.hash("b"), F.hash("i", "l", "s", "a"),
                     F.hash(F.col("i").cast("double")), F.hash(F.col("id") / 4),
                     F.hash((F.col("id") - 20).cast("float")),
                     F.hash(F.date_add(F.lit("2000-01-01").cast("date"), F.col("id"))),
                     F.md5("s"), F.sha1("s"), F.sha2("s", 224), F.crc32("s"), F.md5(F.lit("k")), F.crc32(F.lit("k"))
                     ).orderBy("id")


FRACTION_TEXTS = ["2020-01-05 13:04:05.123", "2020-01-05 13:04:05.1", "1999-12-31 23:59:59.05", None]


def fraction_program(spark: Any, F: Any) -> Any:
    df = spark.createDataFrame([(i, t) for i, t in enumerate(FRACTION_TEXTS)], "id INT, t STRING")
    return df.select("id", F.to_timestamp("t", "yyyy-MM-dd HH:mm:ss.SSS"),
                     F.unix_timestamp("t", "yyyy-MM-dd HH:mm:ss.SSS"),
                     F.to_timestamp(F.concat(F.lit("at "), "t"), "'at' yyyy-MM-dd HH:mm:ss.SSS")).orderBy("id")


PROGRAMS = {"arrays": array_program, "fractions": fraction_program, "other_arrays": other_arrays_program,
            "timestamps": timestamp_program, "hashes": hash_program}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_same_as_pyspark(ours: Any, theirs: Any, name: str) -> None:
    import pyspark.sql.functions as PF
    from sparkctl.sql import functions as F
    program = PROGRAMS[name]
    assert_same_frames(program(ours, F), program(theirs, PF), True, nullability=True)
