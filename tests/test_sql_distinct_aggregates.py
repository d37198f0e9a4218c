"""DISTINCT aggregates (``sum_distinct``, ``count_distinct`` of one or more columns,
``avg(DISTINCT x)``, ``min``/``max(DISTINCT x)``), alone and beside ordinary aggregates, with
and without grouping keys, over nulls and over several partitions (so the rows cross an
exchange), both as sparkctl plans them: in one phase (DISTINCT aggregates of different
arguments) and by Spark's rewrite (one argument list: aggregated by group and value first,
which explain shows as four HashAggregates). The fast tests check the answers against plain Python over the same rows; the
slow test runs the same programs on PySpark 4.3 and requires the same columns, types,
nullability and rows.
"""
from __future__ import annotations

import decimal
from statistics import mean
from typing import Any, Callable, Iterator

import pytest

pytest.importorskip("pyarrow")

from tests.test_sql_dataframes import assert_same_frames  # noqa: E402

pytestmark = pytest.mark.timeout(120)

#: (k, a, b, c): keys with nulls, repeated values, nulls in every column
ROWS = [(i % 3 if i % 7 else None, i % 4 if i % 5 else None, (i % 6) * 1.5 if i % 3 else None,
         f"s{i % 5}" if i % 4 else None) for i in range(60)]
SCHEMA = "k INT, a INT, b DOUBLE, c STRING"


def frame(spark: Any) -> Any:
    return spark.createDataFrame(ROWS, SCHEMA).repartition(3)


@pytest.fixture(scope="module")
def ours() -> Iterator[Any]:
    from sparkctl.sql import SparkSession
    spark = SparkSession.builder.master("local[2]").appName("distinct-aggregates") \
        .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "3").getOrCreate()
    frame(spark).createOrReplaceTempView("t")
    yield spark
    spark.stop()


# ---------------------------------------------------------------------------- plain Python answers
def _groups() -> dict[Any, list[tuple]]:
    groups: dict[Any, list[tuple]] = {}
    for r in ROWS:
        groups.setdefault(r[0], []).append(r)
    return groups


def _distinct(rows: list[tuple], i: int) -> set[Any]:
    return {r[i] for r in rows if r[i] is not None}


def _sum_or_none(values: Any) -> Any:
    values = list(values)
    return sum(values) if values else None


def _expected(rows: list[tuple]) -> tuple:
    """sum(a), sum(DISTINCT a), count(DISTINCT c), count(DISTINCT a, c), avg(DISTINCT b)."""
    tuples = {(r[1], r[3]) for r in rows if r[1] is not None and r[3] is not None}
    distinct_b = _distinct(rows, 2)
    return (_sum_or_none(r[1] for r in rows if r[1] is not None), _sum_or_none(_distinct(rows, 1)),
            len(_distinct(rows, 3)), len(tuples), mean(distinct_b) if distinct_b else None)


def _mixed(F: Any) -> list[Any]:
    return [F.sum("a"), F.sum_distinct("a"), F.count_distinct("c"), F.countDistinct("a", "c")]


def _sorted(rows: list[Any]) -> list[tuple]:
    return sorted((tuple(r) for r in rows), key=lambda r: (r[0] is None, r[0]))


def test_grouped_distinct_beside_ordinary_aggregates_match_python(ours: Any) -> None:
    from sparkctl.sql import functions as F
    df = frame(ours).groupBy("k").agg(*_mixed(F))
    assert df.columns == ["k", "sum(a)", "sum(DISTINCT a)", "count(DISTINCT c)", "count(DISTINCT a, c)"]
    assert [f.nullable for f in df.schema.fields] == [True, True, True, False, False]
    assert [t for _, t in df.dtypes] == ["int", "bigint", "bigint", "bigint", "bigint"]
    want = [(k, *_expected(rows)[:4]) for k, rows in _groups().items()]
    assert _sorted(df.collect()) == _sorted(want)


def test_global_distinct_aggregates_match_python(ours: Any) -> None:
    from sparkctl.sql import functions as F
    df = frame(ours).agg(*_mixed(F), F.count("*"))
    assert [tuple(r) for r in df.collect()] == [(*_expected(ROWS)[:4], len(ROWS))]


def test_sql_avg_count_sum_distinct_match_python(ours: Any) -> None:
    df = ours.sql("SELECT k, avg(DISTINCT b), count(DISTINCT a), sum(DISTINCT a), count(DISTINCT a, c), "
                  "max(DISTINCT b), min(DISTINCT a), count(a) FROM t GROUP BY k")
    assert df.columns == ["k", "avg(DISTINCT b)", "count(DISTINCT a)", "sum(DISTINCT a)", "count(DISTINCT a, c)",
                          "max(DISTINCT b)", "min(DISTINCT a)", "count(a)"]
    assert [t for _, t in df.dtypes] == ["int", "double", "bigint", "bigint", "bigint", "double", "int", "bigint"]
    want = []
    for k, rows in _groups().items():
        e = _expected(rows)
        want.append((k, e[4], len(_distinct(rows, 1)), e[1], e[3], max(_distinct(rows, 2), default=None),
                     min(_distinct(rows, 1), default=None), sum(r[1] is not None for r in rows)))
    got = _sorted(df.collect())
    assert [r[:1] + r[2:] for r in got] == [r[:1] + r[2:] for r in _sorted(want)]
    assert [r[1] for r in got] == pytest.approx([r[1] for r in _sorted(want)])


def _aggregates_in_plan(df: Any, capsys: pytest.CaptureFixture[str]) -> int:
    df.explain()
    return sum("HashAggregate" in line for line in capsys.readouterr().out.splitlines())


def test_one_argument_list_runs_as_spark_rewrites_it(ours: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from sparkctl.sql import functions as F
    df = frame(ours).groupBy("k").agg(F.sum("b"), F.count_distinct("a", "c"), F.count("*"), F.max("c"))
    assert _aggregates_in_plan(df, capsys) == 4
    want = []
    for k, rows in _groups().items():
        bs = [r[2] for r in rows if r[2] is not None]
        want.append((k, sum(bs) if bs else None, _expected(rows)[3], len(rows),
                     max((r[3] for r in rows if r[3] is not None), default=None)))
    assert _sorted(df.collect()) == _sorted(want)
    sql = ours.sql("SELECT k, sum(DISTINCT a), avg(DISTINCT a), count(DISTINCT a), min(a) FROM t GROUP BY k")
    assert _aggregates_in_plan(sql, capsys) == 4
    want = [(k, _expected(rows)[1], mean(_distinct(rows, 1)), len(_distinct(rows, 1)), min(_distinct(rows, 1)))
            for k, rows in _groups().items()]
    assert _sorted(sql.collect()) == _sorted(want)


def test_global_rewrite_matches_python(ours: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from sparkctl.sql import functions as F
    df = frame(ours).agg(F.sum_distinct("a"), F.count_distinct("a"), F.sum("a"), F.count("*"))
    assert _aggregates_in_plan(df, capsys) == 4
    e = _expected(ROWS)
    assert [tuple(r) for r in df.collect()] == [(e[1], len(_distinct(ROWS, 1)), e[0], len(ROWS))]
    empty = frame(ours).filter(F.col("k") > 100).agg(F.sum_distinct("a"), F.count_distinct("a"), F.max("c"))
    assert _aggregates_in_plan(empty, capsys) == 4
    assert [tuple(r) for r in empty.collect()] == [(None, 0, None)]


def test_distinct_aggregates_over_no_rows(ours: Any) -> None:
    from sparkctl.sql import functions as F
    empty = frame(ours).filter(F.col("k") > 100)
    assert [tuple(r) for r in empty.agg(F.sum_distinct("a"), F.count_distinct("a", "c"), F.sum("a")).collect()] \
        == [(None, 0, None)]
    assert empty.groupBy("k").agg(F.sum_distinct("a")).collect() == []
    only_nulls = ours.sql("SELECT sum(DISTINCT a), avg(DISTINCT a), count(DISTINCT a) FROM t WHERE a IS NULL")
    assert [tuple(r) for r in only_nulls.collect()] == [(None, None, 0)]


ZEROS = [(1, 0.0), (1, -0.0), (1, 1.5), (1, 1.5), (1, None), (2, -0.0), (2, -0.0), (2, 2.0)]


def test_minus_zero_is_zero_in_both_plans(ours: Any) -> None:
    from sparkctl.sql import functions as F
    df = ours.createDataFrame(ZEROS, "g INT, x DOUBLE").repartition(3)
    for aggregates in ([F.count_distinct("x"), F.sum_distinct("x")],  # Spark's rewrite
                       [F.count_distinct("x"), F.sum_distinct("x"), F.collect_list("g")]):  # one phase
        got = {r[0]: tuple(r[1:3]) for r in df.groupBy("g").agg(*aggregates).collect()}
        for g in (1, 2):
            values = {x for k, x in ZEROS if k == g and x is not None}  # 0.0 == -0.0 in a Python set too
            assert got[g] == (len(values), sum(values))


def test_decimal_sum_and_avg_distinct_are_exact(ours: Any) -> None:
    values = [decimal.Decimal(v) for v in ("1.10", "1.10", "2.25", "0.01", "2.25", "0.02")] + [None]
    ours.createDataFrame([(i % 2, v) for i, v in enumerate(values)], "g INT, d DECIMAL(10,2)") \
        .createOrReplaceTempView("decimals")
    for query in ("SELECT g, sum(DISTINCT d), avg(DISTINCT d) FROM decimals GROUP BY g",  # Spark's rewrite
                  "SELECT g, sum(DISTINCT d), avg(DISTINCT d), collect_list(d) FROM decimals GROUP BY g"):  # one phase
        df = ours.sql(query)
        assert df.dtypes[1:3] == [("sum(DISTINCT d)", "decimal(20,2)"), ("avg(DISTINCT d)", "decimal(14,6)")]
        for g, total, average, *_ in df.collect():
            distinct = {v for i, v in enumerate(values) if i % 2 == g and v is not None}
            assert total == sum(distinct)
            assert average == (sum(distinct) / len(distinct)).quantize(decimal.Decimal("0.000001"),
                                                                       rounding=decimal.ROUND_HALF_UP)


def test_explain_shows_the_distinct_aggregate(ours: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from sparkctl.sql import functions as F
    frame(ours).groupBy("k").agg(F.sum("a"), F.count_distinct("c")).explain()
    out = capsys.readouterr().out
    assert "== Physical Plan ==" in out
    aggregates = [line for line in out.splitlines() if "HashAggregate" in line]
    assert aggregates and any("count(distinct c#" in line for line in aggregates), out
    assert "Exchange hashpartitioning(k#" in out


# ---------------------------------------------------------------------------- against PySpark
Program = Callable[[Any, Any], Any]
PROGRAMS: dict[str, Program] = {
    "grouped_mixed": lambda spark, F: frame(spark).groupBy("k").agg(*_mixed(F), F.avg("b")),
    "global_mixed": lambda spark, F: frame(spark).agg(F.sum_distinct("b"), F.count_distinct("a", "c"),
                                                       F.count("*"), F.max("c")),
    "sql_avg_distinct": lambda spark, F: spark.sql("SELECT k, avg(DISTINCT b), sum(DISTINCT a), "
                                                   "count(DISTINCT a, c), max(DISTINCT b) FROM t GROUP BY k"),
    "decimals_and_strings": lambda spark, F: frame(spark).select(
        "k", F.col("b").cast("decimal(6,1)").alias("d"), "c").groupBy("k").agg(
        F.sum_distinct("d"), F.count_distinct("c"), F.count_distinct("d", "c"), F.sum("d")),
    "rewrite_grouped": lambda spark, F: spark.sql(
        "SELECT k, sum(a), count(DISTINCT b), sum(DISTINCT b), avg(DISTINCT b), max(c), count(*) FROM t GROUP BY k"),
    "rewrite_global": lambda spark, F: frame(spark).agg(F.count_distinct("a", "c"), F.sum("b"), F.min("c")),
    "rewrite_decimals": lambda spark, F: frame(spark).select(F.col("b").cast("decimal(6,1)").alias("d")).agg(
        F.sum_distinct("d"), F.count_distinct("d"), F.sum("d"), F.avg("d")),
    "zeros_and_nans": lambda spark, F: spark.createDataFrame(
        ZEROS + [(1, float("nan")), (2, float("nan")), (2, float("nan"))], "g INT, x DOUBLE").repartition(3)
        .groupBy("g").agg(F.count_distinct("x"), F.sum_distinct("x"), F.avg("x")),
    "two_keys": lambda spark, F: frame(spark).groupBy("k", "c").agg(F.sum_distinct("a"), F.count_distinct("b")),
}


@pytest.fixture(scope="module")
def theirs() -> Iterator[Any]:
    from tests.spark_reference import reference_pyspark
    with reference_pyspark("reference-distinct", conf={"spark.sql.shuffle.partitions": "3"}) as spark:
        frame(spark).createOrReplaceTempView("t")
        yield spark


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_same_as_pyspark(ours: Any, theirs: Any, name: str) -> None:
    import pyspark.sql.functions as PF
    from sparkctl.sql import functions as F
    assert_same_frames(PROGRAMS[name](ours, F), PROGRAMS[name](theirs, PF), False, nullability=True)
