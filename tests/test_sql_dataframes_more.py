"""More DataFrame programs, side by side with PySpark 4.3: grouped pandas functions, UDFs
registered for SQL, describe/summary, multiset set operations, structs and maps, date
functions, and window frames with any bounds.

As in test_sql_dataframes.py, each case is a function of (spark, F, Window); the slow tests
run it on sparkctl and on PySpark and require the same columns, types, rows and ``show()``
text. The fast tests check a few answers against plain Python.
"""
from __future__ import annotations

import calendar
import datetime as dt
from collections import Counter
from typing import Any, Callable, Iterator

import pytest

pytest.importorskip("pyarrow")

from sparkctl.errors import DataFramesNotSupportedError  # noqa: E402
from tests.test_sql_dataframes import assert_same_frames  # noqa: E402

pytestmark = pytest.mark.timeout(300)

SALES = [(1, "east", "ann", 10.0, dt.date(2020, 1, 31)), (2, "east", "bob", None, dt.date(2020, 2, 29)),
         (3, "east", "ann", 7.5, dt.date(2020, 3, 1)), (4, "west", "cid", 3.0, None),
         (5, "west", None, 3.0, dt.date(2021, 12, 31)), (6, None, "dan", 1.25, dt.date(2019, 6, 15)),
         (7, "east", "eve", 2.0, dt.date(2020, 1, 1)), (8, "west", "bob", -4.0, dt.date(2020, 7, 4))]
SALES_SCHEMA = "id INT, region STRING, rep STRING, amount DOUBLE, day DATE"
STAMPS = [(1, dt.datetime(2020, 1, 5, 13, 4, 5, 123000)), (2, dt.datetime(2021, 12, 31, 0, 0, 0)),
          (3, None), (4, dt.datetime(1999, 7, 9, 23, 59, 59, 999999))]


def sales(spark: Any) -> Any:
    return spark.createDataFrame(SALES, SALES_SCHEMA)


def empty_sales(spark: Any) -> Any:
    return spark.createDataFrame([], SALES_SCHEMA)


Case = Callable[[Any, Any, Any], Any]
CASES: dict[str, tuple[Case, bool]] = {}


def case(ordered: bool = False) -> Callable[[Case], Case]:
    def register(f: Case) -> Case:
        CASES[f.__name__] = (f, ordered)
        return f
    return register


# ---------------------------------------------------------------------------- 1. Python functions
def _centered(pdf: Any) -> Any:
    out = pdf[["id", "amount"]].copy()
    out["amount"] = out["amount"] - out["amount"].mean()
    return out


def _counted(key: Any, pdf: Any) -> Any:
    import pandas as pd
    return pd.DataFrame({"n": [len(pdf)], "total": [float(pdf["amount"].sum())]})


@case(ordered=True)
def apply_in_pandas_per_group(spark, F, W):
    return sales(spark).groupBy("region").applyInPandas(_centered, "id int, amount double").orderBy("id")


@case()
def apply_in_pandas_with_key(spark, F, W):
    return sales(spark).groupBy("region").applyInPandas(_counted, "n long, total double")


@case()
def apply_in_pandas_empty(spark, F, W):
    return empty_sales(spark).groupBy("region").applyInPandas(_centered, "id int, amount double")


def _doubled(v: Any) -> Any:
    return None if v is None else v * 2


@case(ordered=True)
def udf_registered_for_sql(spark, F, W):
    spark.udf.register("doubled", _doubled, "double")
    sales(spark).createOrReplaceTempView("sales")
    return spark.sql("SELECT id, doubled(amount), doubled(amount) + 1 AS more FROM sales ORDER BY id")


@case(ordered=True)
def udf_registered_from_f_udf(spark, F, W):
    spark.udf.register("initial", F.udf(lambda s: None if s is None else s[:1].upper(), "string"))
    return sales(spark).selectExpr("id", "initial(rep) AS i").orderBy("id")


# ---------------------------------------------------------------------------- 2. describe / summary
@case(ordered=True)
def describe_all_columns(spark, F, W):
    return sales(spark).describe()


@case(ordered=True)
def describe_some_columns(spark, F, W):
    return sales(spark).describe("amount", "rep")


@case(ordered=True)
def describe_empty(spark, F, W):
    return empty_sales(spark).describe()


@case(ordered=True)
def summary_default(spark, F, W):
    return sales(spark).summary()


@case(ordered=True)
def summary_chosen(spark, F, W):
    return sales(spark).select("id", "amount").summary("count", "min", "10%", "90%", "max")


# ---------------------------------------------------------------------------- 3. multisets
def _pairs(spark: Any, rows: list[tuple]) -> Any:
    return spark.createDataFrame(rows, "k INT, v STRING")


LEFT = [(1, "a"), (1, "a"), (1, "a"), (2, None), (2, None), (3, "c"), (None, None)]
RIGHT = [(1, "a"), (2, None), (4, "d"), (None, None), (None, None)]


@case()
def except_all(spark, F, W):
    return _pairs(spark, LEFT).exceptAll(_pairs(spark, RIGHT))


@case()
def intersect_all(spark, F, W):
    return _pairs(spark, LEFT).intersectAll(_pairs(spark, RIGHT))


@case()
def except_all_empty(spark, F, W):
    return _pairs(spark, LEFT).exceptAll(_pairs(spark, [])).union(_pairs(spark, []).intersectAll(_pairs(spark, LEFT)))


# ---------------------------------------------------------------------------- 4. structs, maps, dates
@case(ordered=True)
def structs_and_maps(spark, F, W):
    df = sales(spark).select("id", F.struct("rep", "amount").alias("s"),
                             F.create_map(F.coalesce("region", F.lit("none")), "amount").alias("m"), F.struct("id", F.col("amount") + 1))
    return df.select("id", "s", F.col("s.rep"), F.col("s")["amount"], F.col("s").getField("rep"),
                     F.map_keys("m"), F.map_values("m"), F.col("m")["east"], (F.col("s.amount") * 2)).orderBy("id")


@case(ordered=True)
def date_arithmetic(spark, F, W):
    return sales(spark).select("id", F.add_months("day", 1), F.add_months("day", -13), F.last_day("day"),
                               F.next_day("day", "Sun"), F.next_day("day", "tuesday"),
                               F.months_between("day", F.lit("2020-01-15").cast("date")),
                               F.months_between(F.lit("2021-03-31").cast("date"), "day", False),
                               F.trunc("day", "year"), F.trunc("day", "month"), F.trunc("day", "quarter"),
                               F.date_trunc("month", "day"), F.dayofweek("day"), F.weekofyear("day")).orderBy("id")


@case(ordered=True)
def date_format_patterns(spark, F, W):
    df = spark.createDataFrame(STAMPS, "id INT, ts TIMESTAMP")
    return df.select("id", F.date_format("ts", "yyyy-MM-dd HH:mm:ss.SSS"), F.date_format("ts", "E EEE EEEE"),
                     F.date_format("ts", "MMM MMMM M d D"), F.date_format("ts", "hh h a yy"),
                     F.date_format("ts", "'at' HH'h' mm"), F.date_format(F.col("ts").cast("date"), "dd/MM/yyyy"),
                     F.date_trunc("hour", "ts"), F.date_trunc("week", "ts")).orderBy("id")


@case()  # rows compared to 9 digits, not show(): libm and the JVM's trigonometry may differ in the last bit
def math_string_and_null_functions(spark, F, W):
    df = sales(spark)
    return df.select("id", F.sin("amount"), F.cos("id"), F.tan("amount"), F.atan("amount"), F.atan2("amount", "id"),
                     F.degrees("amount"), F.radians("id"), F.cbrt("amount"), F.repeat("rep", 2),
                     F.regexp_extract("rep", "(a|e)(n|v)", 1), F.regexp_extract("rep", "([a-z])([a-z]+)", 2),
                     F.regexp_extract("region", "st", 0), F.nullif("region", F.lit("east")),
                     F.nvl2("amount", F.lit("has"), F.lit("none")), F.nvl2("rep", "id", F.lit(0.5))).orderBy("id")


# ---------------------------------------------------------------------------- 5. window frames
def _w(W: Any) -> Any:
    return W.partitionBy("region").orderBy("id")


@case(ordered=True)
def sliding_rows_frames(spark, F, W):
    w = _w(W)
    return sales(spark).select("id", "region", F.sum("amount").over(w.rowsBetween(-1, 1)).alias("s3"),
                               F.avg("amount").over(w.rowsBetween(-2, 0)).alias("a3"),
                               F.count("amount").over(w.rowsBetween(0, 2)).alias("c3"),
                               F.min("amount").over(w.rowsBetween(-1, 1)).alias("lo"),
                               F.max("rep").over(w.rowsBetween(-1, 1)).alias("hi"),
                               F.sum("id").over(w.rowsBetween(1, 3)).alias("ahead"),
                               F.max("amount").over(w.rowsBetween(W.currentRow, W.unboundedFollowing)).alias("rest"),
                               F.stddev("amount").over(w.rowsBetween(-1, 1)).alias("sd")).orderBy("id")


@case(ordered=True)
def whole_partition_and_range_frames(spark, F, W):
    whole = _w(W).rowsBetween(W.unboundedPreceding, W.unboundedFollowing)
    by_amount = W.partitionBy("region").orderBy("amount")
    return sales(spark).select("id", F.sum("amount").over(whole).alias("total"),
                               F.min("day").over(whole).alias("first_day"),
                               F.sum("id").over(by_amount.rangeBetween(-3, 3)).alias("near"),
                               F.count("*").over(by_amount.rangeBetween(W.currentRow, 5)).alias("up5"),
                               F.sum("id").over(W.partitionBy("region").orderBy(F.desc("amount"))
                                                .rangeBetween(-1, 0)).alias("desc_range"),
                               F.max("amount").over(by_amount).alias("running_max")).orderBy("id")


@case(ordered=True)
def ranking_and_value_functions(spark, F, W):
    w = _w(W)
    return sales(spark).select("id", F.ntile(2).over(w), F.ntile(3).over(w), F.percent_rank().over(w),
                               F.cume_dist().over(W.partitionBy("region").orderBy("amount")),
                               F.first("amount").over(w), F.last("amount").over(w),
                               F.first("amount", True).over(w.rowsBetween(1, 2)).alias("f_ign"),
                               F.last("amount", True).over(w.rowsBetween(-2, 0)).alias("l_ign"),
                               F.nth_value("rep", 2).over(w), F.nth_value("amount", 2, True).over(
                                   w.rowsBetween(W.unboundedPreceding, W.unboundedFollowing)).alias("nth_ign")
                               ).orderBy("id")


@case(ordered=True)
def decimal_window_sums(spark, F, W):
    import decimal
    rows = [(1, "a", decimal.Decimal("10.50")), (2, "a", decimal.Decimal("-3.25")), (3, "a", None),
            (4, "b", decimal.Decimal("7.00")), (5, "b", decimal.Decimal("0.01"))]
    df = spark.createDataFrame(rows, "id INT, g STRING, p DECIMAL(10,2)")
    w = W.partitionBy("g").orderBy("id")
    return df.select("id", F.sum("p").over(w.rowsBetween(-1, 0)), F.avg("p").over(w.rowsBetween(-1, 1)),
                     F.sum("p").over(w), F.max("p").over(w.rowsBetween(0, 1))).orderBy("id")


@case(ordered=True)
def window_frames_on_empty_input(spark, F, W):
    w = _w(W)
    return empty_sales(spark).select("id", F.sum("amount").over(w.rowsBetween(-1, 1)), F.ntile(2).over(w))


# ---------------------------------------------------------------------------- against PySpark
@pytest.fixture(scope="module")
def theirs() -> Iterator[Any]:
    from tests.spark_reference import reference_pyspark
    with reference_pyspark("reference-more", conf={"spark.sql.shuffle.partitions": "4"}) as spark:
        yield spark


@pytest.fixture(scope="module")
def ours() -> Iterator[Any]:
    from sparkctl.sql import SparkSession
    spark = SparkSession.builder.master("local[2]").appName("dataframes-more").config("spark.ui.enabled", "false") \
        .getOrCreate()
    yield spark
    spark.stop()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_same_as_pyspark(ours: Any, theirs: Any, name: str) -> None:
    import pyspark.sql.functions as PF
    from pyspark.sql import Window as PW
    from sparkctl.sql import Window, functions as F
    program, ordered = CASES[name]
    mine, ref = program(ours, F, Window), program(theirs, PF, PW)
    assert_same_frames(mine, ref, ordered, nullability=True)


# ---------------------------------------------------------------------------- fast, against plain Python
def test_multisets_match_counters(ours: Any) -> None:
    left, right = Counter(LEFT), Counter(RIGHT)
    got_except = Counter(tuple(r) for r in _pairs(ours, LEFT).exceptAll(_pairs(ours, RIGHT)).collect())
    got_intersect = Counter(tuple(r) for r in _pairs(ours, LEFT).intersectAll(_pairs(ours, RIGHT)).collect())
    assert got_except == left - right
    assert got_intersect == left & right


def test_sliding_sum_and_months_match_python(ours: Any) -> None:
    from sparkctl.sql import Window, functions as F
    w = Window.partitionBy("region").orderBy("id").rowsBetween(-1, 1)
    rows = sales(ours).select("id", "region", "amount", "day", F.sum("amount").over(w).alias("s"),
                              F.add_months("day", 1).alias("next")).collect()
    by_region: dict[Any, list[Any]] = {}
    for r in sorted(rows, key=lambda r: r.id):
        by_region.setdefault(r.region, []).append(r)
    for members in by_region.values():
        for i, r in enumerate(members):
            window = [m.amount for m in members[max(0, i - 1):i + 2] if m.amount is not None]
            assert r.s == (sum(window) if window else None)
    for r in rows:
        if r.day is None:
            assert r.next is None
            continue
        year, month = (r.day.year + r.day.month // 12, r.day.month % 12 + 1)
        assert r.next == dt.date(year, month, min(r.day.day, calendar.monthrange(year, month)[1]))


def test_unsupported_cogroup_names_itself(ours: Any) -> None:
    df = sales(ours)
    with pytest.raises(DataFramesNotSupportedError, match="cogroup"):
        df.groupBy("region").cogroup(df.groupBy("region"))
