"""DataFrame programs written as PySpark users write them, run on sparkctl and compared.

Each case is a function of (spark, F, Window) that builds a DataFrame with PySpark's API.
With Java installed, the slow tests run every case on PySpark 4.3 itself too and require
the same columns, types, rows and ``show()`` text; the fast tests check a subset against
results computed in plain Python, so the suite means something without a JVM as well.
"""
from __future__ import annotations

import datetime
import math
from collections import defaultdict
from typing import Any, Callable

import pytest

pytest.importorskip("pyarrow")

from sparkctl.errors import AnalysisException  # noqa: E402

pytestmark = pytest.mark.timeout(300)

PEOPLE = [("alice", 34, "NY", 5200.0), ("bob", 45, "SF", None), ("carol", None, "NY", 6100.5),
          ("dave", 29, "LA", 4100.0), ("erin", 34, None, 3900.0), ("frank", 51, "SF", 7300.25),
          ("grace", 29, "NY", 4800.0), (None, 40, "LA", 5000.0)]
PEOPLE_COLS = ["name", "age", "city", "salary"]
ORDERS = [(1, "alice", 10.5), (2, "bob", 99.0), (3, "alice", 7.25), (4, "zed", 1.0), (5, None, 3.0),
          (6, "carol", 12.0), (7, "carol", None)]
ORDER_COLS = ["oid", "name", "amount"]


def people(spark: Any) -> Any:
    return spark.createDataFrame(PEOPLE, PEOPLE_COLS)


def orders(spark: Any) -> Any:
    return spark.createDataFrame(ORDERS, ORDER_COLS)


Case = Callable[[Any, Any, Any], Any]
CASES: dict[str, tuple[Case, bool]] = {}  # name -> (program, whether its row order is defined)


def case(ordered: bool = False) -> Callable[[Case], Case]:
    def register(f: Case) -> Case:
        CASES[f.__name__] = (f, ordered)
        return f
    return register


@case(ordered=True)
def select_expressions(spark, F, W):
    return people(spark).select("name", (F.col("age") + 1).alias("next"), F.upper("city"),
                                F.col("salary") * 2, F.lit(1), F.col("age") / 2).orderBy("name")


@case()
def filter_and_where(spark, F, W):
    df = people(spark)
    return df.filter((F.col("age") > 30) & F.col("city").isNotNull()).where(F.col("salary") > 4000)


@case()
def filter_sql_string(spark, F, W):
    return people(spark).filter("age >= 34 AND city = 'NY'")


@case(ordered=True)
def with_column_and_rename(spark, F, W):
    return (people(spark).withColumn("band", F.when(F.col("age") < 35, "young").when(F.col("age") < 50, "mid")
                                     .otherwise("senior"))
            .withColumnRenamed("city", "town").drop("salary").orderBy(F.col("name").asc_nulls_last()))


@case(ordered=True)
def null_handling(spark, F, W):
    df = people(spark)
    return df.select("name", F.coalesce("city", F.lit("?")).alias("c"), F.col("age").isNull().alias("no_age"),
                     F.isnull("salary")).orderBy(F.desc_nulls_first("name"))


@case()
def na_fill_and_drop(spark, F, W):
    df = people(spark)
    return df.na.fill({"city": "none", "age": 0}).union(df.na.drop(subset=["age", "city"]))


@case()
def group_by_agg(spark, F, W):
    return people(spark).groupBy("city").agg(F.count("*"), F.sum("age"), F.avg("salary"), F.min("name"),
                                             F.max("salary"), F.countDistinct("age"))


@case()
def group_by_shortcuts(spark, F, W):
    return people(spark).groupBy("city").count().join(people(spark).groupBy("city").max("age"), "city", "left")


@case()
def global_aggregate(spark, F, W):
    return people(spark).agg(F.sum("salary").alias("total"), F.count("city"), F.stddev("age"), F.collect_set("city"))


@case()
def aggregate_of_nothing(spark, F, W):
    return people(spark).filter(F.col("age") > 1000).agg(F.count("*"), F.sum("age"), F.max("name"))


@case()
def group_by_expression(spark, F, W):
    return people(spark).groupBy((F.col("age") % 2).alias("parity")).agg(F.count("name").alias("n"))


@case()
def pivot(spark, F, W):
    return people(spark).groupBy("age").pivot("city", ["NY", "SF", "LA"]).agg(F.sum("salary"))


@case()
def inner_join_on_names(spark, F, W):
    return people(spark).join(orders(spark), "name")


@case()
def join_types(spark, F, W):
    p, o = people(spark), orders(spark)
    out = None
    for how in ("left", "right", "full", "left_semi", "left_anti"):
        j = p.join(o, "name", how).select("name", F.lit(how).alias("how"))
        out = j if out is None else out.union(j)
    return out


@case()
def join_on_condition(spark, F, W):
    p, o = people(spark).alias("p"), orders(spark).alias("o")
    return p.join(o, (F.col("p.name") == F.col("o.name")) & (F.col("o.amount") > 5), "left") \
        .select("p.name", "o.oid", "o.amount")


@case()
def cross_join(spark, F, W):
    return spark.createDataFrame([(1,), (2,)], ["a"]).crossJoin(spark.createDataFrame([("x",), ("y",)], ["b"]))


@case()
def union_and_distinct(spark, F, W):
    df = people(spark).select("city")
    return df.union(df).distinct()


@case()
def union_by_name(spark, F, W):
    a = spark.createDataFrame([(1, "x")], ["n", "s"])
    b = spark.createDataFrame([("y", 2)], ["s", "n"])
    return a.unionByName(b)


@case()
def drop_duplicates_subset(spark, F, W):
    return people(spark).dropDuplicates(["age"]).select("age")


@case(ordered=True)
def order_by_several_keys(spark, F, W):
    return people(spark).orderBy(F.col("city").desc(), "age", F.col("name").asc_nulls_last())


@case(ordered=True)
def limit_after_sort(spark, F, W):
    return people(spark).orderBy(F.col("salary").desc_nulls_last()).limit(3)


@case()
def window_ranking(spark, F, W):
    w = W.partitionBy("city").orderBy("age")
    return people(spark).select("name", "city", "age", F.row_number().over(w).alias("rn"),
                                F.rank().over(w).alias("rk"), F.dense_rank().over(w).alias("drk"))


@case()
def window_lag_lead_running(spark, F, W):
    w = W.partitionBy("city").orderBy("name")
    return people(spark).select("name", "city", F.lag("age").over(w).alias("prev"),
                                F.lead("age", 1, -1).over(w).alias("next"),
                                F.sum("salary").over(w).alias("running"),
                                F.avg("salary").over(W.partitionBy("city")).alias("city_avg"))


@case()
def string_functions(spark, F, W):
    df = people(spark)
    return df.select(F.length("name"), F.substring("name", 2, 3), F.concat("name", F.lit("-"), "city"),
                     F.concat_ws("/", "name", "city"), F.trim(F.lit("  x  ")), F.lower(F.lit("ABC")),
                     F.col("name").startswith("a"), F.col("name").like("%a%"), F.regexp_replace("name", "a", "A"),
                     F.lpad("name", 7, "*"), F.initcap("city"))


@case()
def math_functions(spark, F, W):
    df = spark.createDataFrame([(1, 2.5), (-3, 0.25), (None, 9.0)], ["i", "d"])
    return df.select(F.abs("i"), F.sqrt("d"), F.round(F.col("d") * 3.3, 1), F.floor("d"), F.ceil("d"),
                     F.pow("d", 2), F.col("i") % 2, F.greatest("i", F.lit(0)), F.exp(F.lit(0)))


@case()
def dates(spark, F, W):
    df = spark.createDataFrame([(datetime.date(2024, 2, 28), "2024-03-01"), (datetime.date(2023, 12, 31), None)],
                               ["d", "s"])
    return df.select("d", F.year("d"), F.month("d"), F.dayofmonth("d"), F.date_add("d", 2), F.date_sub("d", 1),
                     F.to_date("s"), F.datediff(F.to_date("s"), "d"))


@case()
def casts(spark, F, W):
    df = spark.createDataFrame([("1", 2.7, True), (" 42 ", -1.5, False), (None, None, None)], ["s", "d", "b"])
    return df.select(F.col("s").cast("int"), F.col("d").cast("int"), F.col("d").cast("string"),
                     F.col("b").cast("string"), F.col("s").cast("double"), F.col("b").cast("int"))


@case()
def isin_and_between(spark, F, W):
    return people(spark).filter(F.col("city").isin("NY", "LA") & F.col("age").between(29, 40))


@case()
def empty_input(spark, F, W):
    df = people(spark).filter(F.lit(False))
    return df.groupBy("city").agg(F.sum("age")).union(df.select("city", "age"))


@case()
def repartition_and_coalesce(spark, F, W):
    return people(spark).repartition(3, "city").coalesce(2).select("name", "city")


@case()
def spark_range(spark, F, W):
    return spark.range(0, 20, 3, 4).select("id", (F.col("id") * 10).alias("x"))


@case()
def python_udfs(spark, F, W):
    shout = F.udf(lambda s: None if s is None else s.upper() + "!", "string")
    plus = F.pandas_udf(lambda a, b: a + b, "double")
    return people(spark).select(shout("name").alias("loud"), plus(F.col("salary"), F.col("salary")).alias("twice"))


@case()
def map_in_pandas(spark, F, W):
    def adults(batches):
        for pdf in batches:
            yield pdf[pdf["age"] > 30][["name", "age"]]
    return people(spark).mapInPandas(adults, "name string, age long")


@case()
def set_operations(spark, F, W):
    a = people(spark).select("city")
    b = spark.createDataFrame([("NY",), ("XX",), (None,)], ["c"])
    return a.intersect(b).union(a.subtract(b))


@case()
def self_join_with_aliases(spark, F, W):
    p = people(spark)
    return p.alias("a").join(p.alias("b"), F.col("a.age") == F.col("b.age")) \
        .select(F.col("a.name").alias("x"), F.col("b.name").alias("y"))


# ---------------------------------------------------------------------------- running the cases
@pytest.fixture(scope="module")
def ours() -> Any:
    from sparkctl.sql import SparkSession
    spark = SparkSession.builder.master("local[2]").appName("dataframes").config("spark.ui.enabled", "false") \
        .getOrCreate()
    yield spark
    spark.stop()


def _normal(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 9)
    if isinstance(value, (list, tuple)) and not hasattr(value, "__fields__"):
        return tuple(_normal(v) for v in value)
    if hasattr(value, "asDict"):
        return tuple(_normal(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _normal(v)) for k, v in value.items()))
    return value


def assert_same_frames(mine: Any, ref: Any, ordered: bool, *, nullability: bool = False,
                       rows: Callable[[list[tuple]], Any] = list) -> None:
    """sparkctl's DataFrame ``mine`` against PySpark's ``ref``: columns, types (and, when
    asked, nullability), rows (through ``rows``), and for an ordered result show()'s text."""
    assert mine.columns == ref.columns
    assert mine.dtypes == ref.dtypes
    if nullability:
        assert [f.nullable for f in mine.schema.fields] == [f.nullable for f in ref.schema.fields]
    assert rows(rows_of(mine, ordered)) == rows(rows_of(ref, ordered))
    if ordered:
        assert mine._show_string(20, True, False) == ref._jdf.showString(20, 20, False)


def rows_of(df: Any, ordered: bool) -> list[tuple]:
    rows = [tuple(_normal(v) for v in r) for r in df.collect()]
    return rows if ordered else sorted(rows, key=repr)


def _sets(rows: list[tuple]) -> list[tuple]:
    """collect_set's order is not defined: compare its elements sorted."""
    return [tuple(tuple(sorted(v, key=repr)) if isinstance(v, tuple) else v for v in r) for r in rows]


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_case_runs_on_sparkctl(ours: Any, name: str) -> None:
    from sparkctl.sql import Window, functions as F
    program, ordered = CASES[name]
    df = program(ours, F, Window)
    rows = rows_of(df, ordered)
    assert all(len(r) == len(df.columns) for r in rows)
    assert df.count() == len(rows)


# ---------------------------------------------------------------------------- against plain Python
def test_group_by_matches_plain_python(ours: Any) -> None:
    from sparkctl.sql import functions as F
    got = {r["city"]: (r["n"], r["total"], r["avg_sal"]) for r in
           people(ours).groupBy("city").agg(F.count("*").alias("n"), F.sum("age").alias("total"),
                                             F.avg("salary").alias("avg_sal")).collect()}
    expected: dict[Any, list] = defaultdict(lambda: [0, None, []])
    for _, age, city, salary in PEOPLE:
        e = expected[city]
        e[0] += 1
        if age is not None:
            e[1] = (e[1] or 0) + age
        if salary is not None:
            e[2].append(salary)
    assert got == {c: (n, t, (sum(s) / len(s)) if s else None) for c, (n, t, s) in expected.items()}


def test_joins_match_plain_python(ours: Any) -> None:
    p, o = people(ours), orders(ours)
    inner = sorted(tuple(r) for r in p.join(o, "name").select("name", "oid").collect())
    expected = sorted((n, oid) for n, *_ in PEOPLE for oid, on, _ in ORDERS if n is not None and n == on)
    assert inner == expected
    left = p.join(o, "name", "left").select("name", "oid").collect()
    matched = {n for n, *_ in PEOPLE} & {on for _, on, _ in ORDERS}
    assert len(left) == len(expected) + sum(1 for n, *_ in PEOPLE if n not in matched or n is None)
    anti = sorted(r[0] or "" for r in p.join(o, "name", "left_anti").select("name").collect())
    assert anti == sorted((n or "") for n, *_ in PEOPLE if n is None or n not in matched)


def test_sort_and_window_match_plain_python(ours: Any) -> None:
    from sparkctl.sql import Window, functions as F
    rows = people(ours).orderBy(F.col("salary").desc_nulls_last(), "name").collect()
    key = [(-(s if s is not None else -math.inf), n or "") for n, _, _, s in PEOPLE]
    assert [r["name"] for r in rows] == [PEOPLE[i][0] for i in sorted(range(len(PEOPLE)), key=lambda i: key[i])]
    w = Window.partitionBy("city").orderBy(F.col("salary").asc_nulls_last())
    got = {(r["name"], r["rn"]) for r in people(ours).select("name", F.row_number().over(w).alias("rn")).collect()}
    by_city: dict[Any, list] = defaultdict(list)
    for n, _, c, s in PEOPLE:
        by_city[c].append((s is None, s or 0, n))
    expected = {(n, i + 1) for group in by_city.values() for i, (_, _, n) in enumerate(sorted(group, key=repr))
                if True}
    assert {n for n, _ in got} == {n for n, _ in expected}
    assert {r for r in got if r[0] in ("alice", "carol", "grace")} == {("grace", 1), ("alice", 2), ("carol", 3)}


def test_analysis_errors_name_the_column(ours: Any) -> None:
    from sparkctl.sql import functions as F
    with pytest.raises(AnalysisException) as e:
        people(ours).select("nmae")
    assert "`nmae`" in str(e.value) and "`name`" in str(e.value)
    assert e.value.getErrorClass() == "UNRESOLVED_COLUMN.WITH_SUGGESTION"
    with pytest.raises(AnalysisException, match="MISSING_AGGREGATION"):
        people(ours).groupBy("city").agg(F.sum("salary"), F.col("age"))
    with pytest.raises(AttributeError):
        F.no_such_function  # noqa: B018
    from sparkctl.errors import ArithmeticException
    with pytest.raises(ArithmeticException, match="DIVIDE_BY_ZERO"):
        people(ours).select(F.col("age") / 0).collect()


# ---------------------------------------------------------------------------- against PySpark itself
@pytest.fixture(scope="module")
def theirs() -> Any:
    from tests.spark_reference import reference_pyspark
    with reference_pyspark("reference", conf={"spark.sql.shuffle.partitions": "4"}) as spark:
        yield spark


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_same_as_pyspark(ours: Any, theirs: Any, name: str) -> None:
    import pyspark.sql.functions as PF
    from pyspark.sql import Window as PW

    from sparkctl.sql import Window, functions as F
    program, ordered = CASES[name]
    mine, ref = program(ours, F, Window), program(theirs, PF, PW)
    assert_same_frames(mine, ref, ordered, rows=_sets if name == "global_aggregate" else list)
