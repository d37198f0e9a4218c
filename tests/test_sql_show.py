"""``show()`` and ``printSchema()`` text: sparkctl's against PySpark 4.3's own.

The slow tests build DataFrames in real PySpark (a JVM) with many types, nulls, long and
unicode strings, nested values and empty frames, take ``showString`` and ``treeString``
from the JVM, and require :func:`show_string` and :func:`tree_string` to give the same
text for the rows PySpark collected. The fast tests check strings recorded from those runs
(so they, too, are Spark's output, not ours) and Java's number formatting against rules
checked with Python's float parsing.
"""
from __future__ import annotations

import datetime
import decimal
import math
import os
import struct
from typing import Any, Callable

import pytest

pytest.importorskip("pyarrow")

from sparkctl.sql import types as T  # noqa: E402
from sparkctl.sql.row_conversion import arrow_to_rows, verify_and_convert  # noqa: E402
from sparkctl.sql.show import java_double_str, java_float_str, show_string, tree_string  # noqa: E402

pytestmark = pytest.mark.timeout(300)

UTC = datetime.timezone.utc

# ---------------------------------------------------------------------------- frames built in PySpark
Frame = Callable[[Any, Any], Any]  # (spark, pyspark.sql.types) -> DataFrame
FRAMES: dict[str, Frame] = {}


def frame(f: Frame) -> Frame:
    FRAMES[f.__name__] = f
    return f


@frame
def atomic(spark, PT):
    schema = PT.StructType([
        PT.StructField("b", PT.ByteType()), PT.StructField("s", PT.ShortType()),
        PT.StructField("i", PT.IntegerType()), PT.StructField("l", PT.LongType()),
        PT.StructField("f", PT.FloatType()), PT.StructField("d", PT.DoubleType()),
        PT.StructField("flag", PT.BooleanType()), PT.StructField("str", PT.StringType()),
        PT.StructField("dec", PT.DecimalType(10, 2)), PT.StructField("dec0", PT.DecimalType(5, 0)),
        PT.StructField("day", PT.DateType()), PT.StructField("ts", PT.TimestampType()),
        PT.StructField("ntz", PT.TimestampNTZType()), PT.StructField("bin", PT.BinaryType()),
    ])
    rows = [
        (1, 300, 70000, 1 << 40, 1.5, 2.25, True, "x", decimal.Decimal("12.30"), decimal.Decimal("7"),
         datetime.date(2024, 2, 29), datetime.datetime(2024, 1, 2, 3, 4, 5, 120000),
         datetime.datetime(2020, 12, 31, 23, 59, 59, 999999), b"AB\x00\xff"),
        (-128, -32768, -2147483648, -(1 << 63), -0.0, -1e-7, False, "", decimal.Decimal("-0.01"),
         decimal.Decimal("0"), datetime.date(1, 1, 1), datetime.datetime(1970, 1, 1),
         datetime.datetime(1999, 1, 1, 0, 0, 0, 1), b""),
        (None,) * 14,
    ]
    return spark.createDataFrame(rows, schema)


@frame
def doubles(spark, PT):
    values = [1.0, 1e10, 1e-5, 0.001, 0.00099, 1e7, 9999999.0, 123456789.123, 0.1 + 0.2, 1e300, -2.5e-300,
              float("nan"), float("inf"), float("-inf"), 100.0, 3.141592653589793, 1 / 3, 2.0 ** 53, 1e21, 1e22,
              12345.678e-10]
    schema = PT.StructType([PT.StructField("d", PT.DoubleType()), PT.StructField("f", PT.FloatType())])
    return spark.createDataFrame([(v, v if abs(v) < 3e38 or math.isinf(v) or math.isnan(v) else 1e38)
                                  for v in values], schema)


@frame
def strings(spark, PT):
    values = ["short", "exactly twenty chars", "twenty-one characters", "a" * 40,
              "日本語のテキストです、とても長い文字列", "naïve café", "tab\there", "new\nline",
              "emoji 😀😀😀😀😀😀😀😀😀😀 end", "ｆｕｌｌｗｉｄｔｈ", "한국어", None, "  spaces  "]
    return spark.createDataFrame([(i, v) for i, v in enumerate(values)], "id INT, `long name of a column here` STRING")


@frame
def nested(spark, PT):
    schema = PT.StructType([
        PT.StructField("arr", PT.ArrayType(PT.LongType())),
        PT.StructField("words", PT.ArrayType(PT.StringType())),
        PT.StructField("m", PT.MapType(PT.StringType(), PT.DoubleType())),
        PT.StructField("st", PT.StructType([PT.StructField("x", PT.IntegerType()),
                                            PT.StructField("y", PT.StringType()),
                                            PT.StructField("z", PT.ArrayType(PT.DateType()))])),
        PT.StructField("deep", PT.ArrayType(PT.MapType(PT.StringType(), PT.ArrayType(PT.IntegerType())))),
        PT.StructField("structs", PT.ArrayType(PT.StructType([PT.StructField("k", PT.StringType(), False),
                                                              PT.StructField("v", PT.BooleanType())]), False)),
    ])
    rows = [
        ([1, 2, 3], ["a", None, "c"], {"one": 1.0, "big": 1e10}, (1, "x", [datetime.date(2020, 1, 1), None]),
         [{"k": [1, None]}, None], [("a", True), ("b", None)]),
        ([], [], {}, (None, None, None), [], []),
        (None, None, None, None, None, None),
        ([None], [""], {"n": None}, (2, None, []), [{}], [("z", False)]),
    ]
    return spark.createDataFrame(rows, schema)


@frame
def empty(spark, PT):
    return spark.createDataFrame([], "a INT, b STRING, c ARRAY<INT>")


@frame
def many_rows(spark, PT):
    return spark.range(30).selectExpr("id", "id * 1.5 AS x", "CAST(id AS STRING) AS s")


@frame
def intervals(spark, PT):
    values = [datetime.timedelta(days=1, hours=2, minutes=3, seconds=4), datetime.timedelta(microseconds=500000),
              datetime.timedelta(days=-3, seconds=5), datetime.timedelta(0), None]
    return spark.createDataFrame([(v,) for v in values], "t INTERVAL DAY TO SECOND")


@frame
def inferred(spark, PT):
    return spark.createDataFrame([(1, 2.0, "a", True, [1, 2], {"k": "v"}, PT.Row(p=1, q="s"),
                                   decimal.Decimal("1.5"), datetime.datetime(2021, 5, 6, 7, 8, 9),
                                   bytearray(b"xy"))])


VARIANTS = [(20, True, False), (20, False, False), (5, 3, False), (3, 10, False), (2, 8, True), (20, True, True),
            (20, False, True), (1, True, False), (0, True, False), (2, 30, False)]


@pytest.fixture(scope="module")
def spark() -> Any:
    from tests.spark_reference import reference_pyspark
    os.environ["TZ"] = "UTC"
    with reference_pyspark("show-reference", master="local[1]") as session:
        yield session


def _ours(schema: Any) -> T.StructType:
    return T.StructType.fromJson(schema.jsonValue())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FRAMES))
def test_show_and_schema_text_as_pyspark(spark: Any, name: str) -> None:
    import pyspark.sql.types as PT
    df = FRAMES[name](spark, PT)
    schema = _ours(df.schema)
    assert tree_string(schema) == df._jdf.schema().treeString()
    rows = df.collect()
    for n, truncate, vertical in VARIANTS:
        width = (20 if truncate else 0) if isinstance(truncate, bool) else truncate
        expected = df._jdf.showString(n, width, vertical)
        mine = show_string([tuple(r) for r in rows[:n]], schema, n, truncate, vertical, len(rows) > n)
        assert mine == expected, f"{name} n={n} truncate={truncate} vertical={vertical}\n{mine}\n{expected}"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FRAMES))
def test_collect_values_as_pyspark(spark: Any, name: str) -> None:
    """Arrow tables built from PySpark's own rows give back exactly the rows it collects."""
    import pyspark.sql.types as PT
    df = FRAMES[name](spark, PT)
    schema = _ours(df.schema)
    theirs = df.collect()
    mine = arrow_to_rows(verify_and_convert([tuple(r) for r in theirs], schema), schema)
    assert _typed(mine) == _typed(theirs)
    assert [repr(r) for r in mine] == [repr(r) for r in theirs]


def _typed(value: Any) -> Any:
    """Values with their Python types, NaN made comparable, Rows as (fields, values)."""
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    if isinstance(value, tuple) and hasattr(value, "__fields__"):
        return ("Row", tuple(value.__fields__), tuple(_typed(v) for v in value))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_typed(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((_typed(k), _typed(v)) for k, v in value.items()))
    return (type(value).__name__, value)


@pytest.mark.slow
def test_java_number_strings_as_spark(spark: Any) -> None:
    """``cast(double as string)`` in Spark is Java's Double.toString (and Float's)."""
    import random
    rng = random.Random(7)
    values = [rng.choice([-1, 1]) * 10 ** rng.uniform(-12, 25) for _ in range(300)]
    values += [struct.unpack("<d", rng.randbytes(8))[0] for _ in range(200)]
    values += [float(rng.randint(1, 2 ** 62)) for _ in range(100)] + [rng.randint(1, 10 ** 9) / 8 for _ in range(100)]
    values = [v for v in values if not math.isnan(v)] + [0.5, 2.0, 1e-3, 1e7, -1e7, 9.999999e6]
    df = spark.createDataFrame([(v,) for v in values], "d DOUBLE")
    got = df.selectExpr("CAST(d AS STRING)", "CAST(CAST(d AS FLOAT) AS STRING)").collect()
    mismatched = [(v, d, java_double_str(v)) for v, (d, _) in zip(values, got) if d != java_double_str(v)]
    assert not mismatched
    import numpy as np
    with np.errstate(over="ignore"):
        mismatched = [(v, f, java_float_str(v)) for v, (_, f) in zip(values, got) if f != java_float_str(v)]
    assert not mismatched


# ---------------------------------------------------------------------------- fast: recorded Spark output
def _schema(ddl: str) -> T.StructType:
    parsed = T._parse_datatype_string(ddl)
    assert isinstance(parsed, T.StructType)
    return parsed


def test_show_recorded_table() -> None:
    # recorded from PySpark 4.3: spark.createDataFrame([(1, 'a' * 25, None), (22, 'b', 1.5)],
    # 'x INT, s STRING, d DOUBLE').show(1)
    expected = ("+---+--------------------+----+\n"
                "|  x|                   s|   d|\n"
                "+---+--------------------+----+\n"
                "|  1|aaaaaaaaaaaaaaaaa...|NULL|\n"
                "+---+--------------------+----+\n"
                "only showing top 1 row")
    rows = [(1, "a" * 25, None), (22, "b", 1.5)]
    assert show_string(rows[:1], _schema("x INT, s STRING, d DOUBLE"), 1, True, False, True) == expected


def test_show_recorded_vertical_and_untruncated() -> None:
    # recorded from PySpark 4.3: the same frame, .show(truncate=False) and .show(vertical=True)
    schema = _schema("x INT, s STRING, d DOUBLE")
    rows = [(1, "a" * 25, None), (22, "b", 1.5)]
    assert show_string(rows, schema, 20, False) == (
        "+---+-------------------------+----+\n"
        "|x  |s                        |d   |\n"
        "+---+-------------------------+----+\n"
        "|1  |aaaaaaaaaaaaaaaaaaaaaaaaa|NULL|\n"
        "|22 |b                        |1.5 |\n"
        "+---+-------------------------+----+\n")
    assert show_string(rows, schema, 20, True, True) == (
        "-RECORD 0-------------------\n"
        " x   | 1                    \n"
        " s   | aaaaaaaaaaaaaaaaa... \n"
        " d   | NULL                 \n"
        "-RECORD 1-------------------\n"
        " x   | 22                   \n"
        " s   | b                    \n"
        " d   | 1.5                  \n")
    assert show_string([], schema, 20, True, True) == "(0 rows)"


def test_tree_string_recorded() -> None:
    # recorded from PySpark 4.3's printSchema() for this DDL
    schema = _schema("a BIGINT, arr ARRAY<STRING>, m MAP<STRING, STRUCT<x: INT>>, d DECIMAL(10,2)")
    assert tree_string(schema) == (
        "root\n"
        " |-- a: long (nullable = true)\n"
        " |-- arr: array (nullable = true)\n"
        " |    |-- element: string (containsNull = true)\n"
        " |-- m: map (nullable = true)\n"
        " |    |-- key: string\n"
        " |    |-- value: struct (valueContainsNull = true)\n"
        " |    |    |-- x: integer (nullable = true)\n"
        " |-- d: decimal(10,2) (nullable = true)\n")


@pytest.mark.parametrize("value", [1.0, 1e10, 1e-5, 123.456, 0.001, 0.00099, 1e7, 9999999.0, -0.0, 0.1 + 0.2,
                                   1e300, 2.5e-300, 1234567.125, 100.0, 1 / 3])
def test_java_double_str_reads_back(value: float) -> None:
    """Java's layout: plain between 1e-3 and 1e7, else d.dddE±n; the digits read back exactly."""
    text = java_double_str(value)
    assert float(text) == value and math.copysign(1, float(text)) == math.copysign(1, value)
    assert ("E" in text) == (not 1e-3 <= abs(value) < 1e7) or value == 0
    mantissa = text.split("E")[0]
    assert "." in mantissa and not mantissa.endswith(".")
    assert len(mantissa.lstrip("-").replace(".", "").strip("0")) <= len(repr(value).replace(".", ""))


def test_java_specials() -> None:
    assert [java_double_str(v) for v in (math.nan, math.inf, -math.inf, 0.0, -0.0)] == \
        ["NaN", "Infinity", "-Infinity", "0.0", "-0.0"]
    # float32: the shortest digits of the float, not of the double
    assert java_float_str(0.1) == "0.1" and java_double_str(float(struct.unpack("<f", struct.pack("<f", 0.1))[0])) \
        == "0.10000000149011612"
