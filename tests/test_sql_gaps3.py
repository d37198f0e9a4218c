"""Three more things a PySpark program meets, checked against plain Python and, in the slow
tests, against PySpark 4.3 itself:

- the aggregates ``max_by(x, ord)`` and ``min_by(x, ord)`` (functions and SQL), grouped and
  global: rows whose ord is NULL are skipped, NaN is the greatest ord, a tie goes to the
  later row, a group with no non-NULL ord gives NULL;
- ``round`` and ``bround`` of a DECIMAL: Spark's result type (the scale cut to the digits
  kept, one more integral digit) and its rounding, HALF_UP for round, HALF_EVEN for bround;
- SQL numbers with a type suffix (``0L``, ``2Y``, ``3S``, ``1.5D``, ``1.5F``, ``1.5BD``) are
  literals of that type, named by their value as Spark names them (``0``, not ``CAST(0 AS BIGINT)``);
- a ``select``/``selectExpr`` of aggregates alone aggregates the whole frame.
"""
from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Any, Callable, Iterator

import pytest

pytest.importorskip("pyarrow")

pytestmark = pytest.mark.timeout(120)

NAN = float("nan")
#: (key, value, ordering): ties, NaN, 0.0 against -0.0, NULL orderings and values, a NULL key
ROWS = [("a", 1, 10.0), ("a", 2, None), ("a", 5, NAN), ("a", 6, -3.0), ("b", None, 3.0), ("c", 7, None),
        (None, 8, 1.0), (None, 9, 2.0), ("d", 1, 2.0), ("d", 2, 2.0), ("d", 3, -1.0), ("e", 1, 0.0),
        ("e", 2, -0.0), ("f", None, 5.0), ("f", 4, 1.0), ("g", 3, -1.0), ("g", 4, -1.0)]


@pytest.fixture(scope="module")
def ours() -> Iterator[Any]:
    from sparkctl.sql import SparkSession
    spark = SparkSession.builder.master("local[2]").appName("sql-gaps3") \
        .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "3").getOrCreate()
    yield spark
    spark.stop()


def rows(spark: Any) -> Any:
    """ROWS in one partition, in order (which row of a tie is later is then defined)."""
    return spark.createDataFrame(ROWS, "k STRING, v INT, o DOUBLE").coalesce(1)


def _order_key(o: float) -> tuple:
    return (1, 0.0) if math.isnan(o) else (0, o)


def picked_by(pairs: list[tuple[Any, Any]], largest: bool) -> Any:
    """Spark's max_by/min_by over (value, ordering) pairs in input order: NULL orderings are
    skipped; a later row replaces the held one unless the held ordering is strictly better."""
    held: tuple[Any, Any] | None = None
    for value, o in pairs:
        if o is None:
            continue
        if held is not None:
            a, b = _order_key(held[1]), _order_key(o)
            if (a > b) if largest else (a < b):
                continue
        held = (value, o)
    return None if held is None else held[0]


def _groups() -> dict[Any, list[tuple[Any, Any]]]:
    out: dict[Any, list[tuple[Any, Any]]] = {}
    for k, v, o in ROWS:
        out.setdefault(k, []).append((v, o))
    return out


# ---------------------------------------------------------------------------- max_by, min_by
def test_max_by_min_by_grouped(ours: Any) -> None:
    from sparkctl.sql import functions as F
    df = rows(ours).groupBy("k").agg(F.max_by("v", "o"), F.min_by("v", "o"), F.count("*"))
    assert df.columns == ["k", "max_by(v, o)", "min_by(v, o)", "count(1)"]
    assert df.dtypes == [("k", "string"), ("max_by(v, o)", "int"), ("min_by(v, o)", "int"), ("count(1)", "bigint")]
    assert [f.nullable for f in df.schema.fields] == [True, True, True, False]
    got = {r[0]: tuple(r[1:]) for r in df.collect()}
    want = {k: (picked_by(p, True), picked_by(p, False), len(p)) for k, p in _groups().items()}
    assert got == want
    assert got["d"][0] == 2 and got["e"] == (2, 2, 2) and got["b"] == (None, None, 1)  # ties, -0.0, NULL value


def test_max_by_min_by_global_and_empty(ours: Any) -> None:
    from sparkctl.sql import functions as F
    pairs = [(v, o) for _, v, o in ROWS]
    got = rows(ours).agg(F.max_by("v", "o"), F.min_by(F.col("k"), "o")).collect()
    assert [tuple(r) for r in got] == [(picked_by(pairs, True), picked_by([(k, o) for k, _, o in ROWS], False))]
    empty = rows(ours).where("v > 100").agg(F.max_by("v", "o"), F.min_by("v", "o"))
    assert [tuple(r) for r in empty.collect()] == [(None, None)]
    all_null = rows(ours).where("o IS NULL").agg(F.max_by("v", "o"))
    assert [tuple(r) for r in all_null.collect()] == [(None,)]


def test_max_by_min_by_in_sql_nested_values_and_many_partitions(ours: Any) -> None:
    from sparkctl.sql import functions as F
    rows(ours).createOrReplaceTempView("gaps3_rows")
    df = ours.sql("SELECT k, max_by(array(v, 0), o) AS m, min_by(struct(v), o) FROM gaps3_rows GROUP BY k")
    assert df.columns == ["k", "m", "min_by(struct(v), o)"]
    got = {r[0]: (r[1], None if r[2] is None else r[2][0]) for r in df.collect()}
    # array(v, 0) is never NULL: NULL only where the group has no non-NULL ordering
    want = {k: (None if all(o is None for _, o in p) else [picked_by(p, True), 0], picked_by(p, False))
            for k, p in _groups().items()}
    assert got == want
    # orderings without ties in many partitions: the answer does not depend on the row order
    spread = ours.createDataFrame([(i % 7, i, (i * 37) % 101) for i in range(300)], "g INT, v INT, o INT") \
        .repartition(4)
    got2 = {r.g: (r.a, r.b) for r in spread.groupBy("g").agg(F.max_by("v", "o").alias("a"),
                                                                     F.min_by("v", "o").alias("b")).collect()}
    want2: dict[int, tuple[int, int]] = {}
    for g in range(7):
        members = [(i, (i * 37) % 101) for i in range(300) if i % 7 == g]
        want2[g] = (max(members, key=lambda p: p[1])[0], min(members, key=lambda p: p[1])[0])
    assert got2 == want2




# ---------------------------------------------------------------------------- round, bround of decimals
DECIMALS = [Decimal("12.345"), Decimal("-12.35"), Decimal("15.000"), Decimal("-25.000"), Decimal("9999999.999"),
            Decimal("0.005"), None]
#: digits -> the result type PySpark 4.3 gives for DECIMAL(10,3) (the same for round and bround)
ROUND_TYPES = {1: "decimal(9,1)", -1: "decimal(8,0)", 0: "decimal(8,0)", 5: "decimal(11,3)", -2: "decimal(8,0)",
               2: "decimal(10,2)"}


def _rounded(x: Decimal | None, digits: int, mode: str) -> Decimal | None:
    if x is None:
        return None
    return x.quantize(Decimal(1).scaleb(-min(digits, 3)), rounding=mode)


def test_round_and_bround_of_decimals(ours: Any) -> None:
    from sparkctl.sql import functions as F
    df = ours.createDataFrame([(x,) for x in DECIMALS], "x DECIMAL(10,3)")
    out = df.select(*[F.round("x", d) for d in ROUND_TYPES], *[F.bround("x", d) for d in ROUND_TYPES])
    names = [f"round(x, {d})" for d in ROUND_TYPES] + [f"bround(x, {d})" for d in ROUND_TYPES]
    assert out.dtypes == [(n, t) for n, t in zip(names, list(ROUND_TYPES.values()) * 2)]
    want = [tuple([_rounded(x, d, ROUND_HALF_UP) for d in ROUND_TYPES]
                  + [_rounded(x, d, ROUND_HALF_EVEN) for d in ROUND_TYPES]) for x in DECIMALS]
    got = [tuple(r) for r in out.collect()]
    assert got == want  # Decimal equality: 10 == 1E+1, the scale is checked by the types above
    assert got[3][1] == Decimal(-30) and got[3][len(ROUND_TYPES) + 1] == Decimal(-20)  # HALF_UP, HALF_EVEN
    # 99.5 needs a third integral digit, which the result type has
    small = ours.sql("SELECT round(CAST(99.5 AS DECIMAL(3,1))), bround(CAST(2.5 AS DECIMAL(2,1)), 0), "
                     "round(CAST(9.5 AS DECIMAL(2,1)), -3), round(CAST(1.25 AS DECIMAL(3,2)), 3)")
    assert [t for _, t in small.dtypes] == ["decimal(3,0)", "decimal(2,0)", "decimal(4,0)", "decimal(4,2)"]
    assert tuple(small.collect()[0]) == (Decimal(100), Decimal(2), Decimal(0), Decimal("1.25"))


def test_bround_of_doubles_is_half_even(ours: Any) -> None:
    from sparkctl.sql import functions as F
    values = [2.5, -3.5, 0.5, 1.5, None]
    df = ours.createDataFrame([(v,) for v in values], "x DOUBLE")
    got = [tuple(r) for r in df.select(F.bround("x", 0), F.round("x", 0)).collect()]
    assert df.select(F.bround("x", 0)).dtypes == [("bround(x, 0)", "double")]
    half_up = [None if v is None else float(math.copysign(math.floor(abs(v) + 0.5), v)) for v in values]
    assert got == [(None if v is None else float(round(v)), u) for v, u in zip(values, half_up)]



# ---------------------------------------------------------------------------- typed literals
#: SQL text -> (Spark's column name, type, value)
TYPED = {"0L": ("0", "bigint", 0), "2Y": ("2", "tinyint", 2), "3S": ("3", "smallint", 3), "1.5D": ("1.5", "double", 1.5),
         "1.5F": ("1.5", "float", 1.5), "1.5BD": ("1.5", "decimal(2,1)", Decimal("1.5")),
         "1.50BD": ("1.50", "decimal(3,2)", Decimal("1.50")), "10bd": ("10", "decimal(2,0)", Decimal(10)),
         "1e3D": ("1000.0", "double", 1000.0), "-2L": ("-2", "bigint", -2), "-128Y": ("-128", "tinyint", -128),
         "-1.5BD": ("-1.5", "decimal(2,1)", Decimal("-1.5")), "127y": ("127", "tinyint", 127)}


def test_typed_number_literals_named_by_value(ours: Any) -> None:
    df = ours.sql("SELECT " + ", ".join(TYPED))
    assert df.columns == [name for name, _, _ in TYPED.values()]
    assert [t for _, t in df.dtypes] == [t for _, t, _ in TYPED.values()]
    assert [f.nullable for f in df.schema.fields] == [False] * len(TYPED)
    got = tuple(df.collect()[0])
    assert got == tuple(v for _, _, v in TYPED.values())
    assert [type(v) for v in got] == [type(v) for _, _, v in TYPED.values()]
    # an explicit CAST keeps its name; a typed literal inside an expression is named by its value too
    other = ours.sql("SELECT CAST(0 AS BIGINT), 1 + 2L, round(1.5BD), CAST('1.5' AS DECIMAL(2,1))")
    assert other.columns == ["CAST(0 AS BIGINT)", "(1 + 2)", "round(1.5, 0)", "CAST(1.5 AS DECIMAL(2,1))"]
    assert other.dtypes[1] == ("(1 + 2)", "bigint") and tuple(other.collect()[0])[:3] == (0, 3, Decimal(2))


# ---------------------------------------------------------------------------- select of aggregates
def test_a_select_of_aggregates_is_a_global_aggregate(ours: Any) -> None:
    """``df.select(F.max("b"))`` and ``df.selectExpr("count(*)")`` aggregate the whole frame,
    as Spark's analyzer turns such a projection into an aggregate without grouping; a
    column beside the aggregates is still Spark's MISSING_GROUP_BY."""
    from sparkctl.errors import AnalysisException
    from sparkctl.sql import functions as F
    values = [v for _, v, _ in ROWS]
    frame = rows(ours)
    got = frame.select(F.max("v"), F.count("*"), (F.sum("v") + 1).alias("s")).collect()
    present = [v for v in values if v is not None]
    assert [tuple(r) for r in got] == [(max(present), len(ROWS), sum(present) + 1)]
    expr = frame.selectExpr("count(*)", "max(v) AS m", "sum(v) + 1")
    assert expr.columns == ["count(1)", "m", "(sum(v) + 1)"]
    assert tuple(expr.collect()[0]) == (len(ROWS), max(present), sum(present) + 1)
    empty = frame.where("v > 100").select(F.max("v"), F.count("*")).collect()
    assert [tuple(r) for r in empty] == [(None, 0)]
    for bad in (lambda: frame.select(F.max("v"), "k"), lambda: frame.select(F.max("v") + F.col("v"))):
        with pytest.raises(AnalysisException, match="MISSING_GROUP_BY"):
            bad().collect()


# ---------------------------------------------------------------------------- PySpark 4.3
def _normal(value: Any) -> Any:
    """A value comparable with ==: NaN as a marker of its own, rows and lists as tuples."""
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else repr(value)
    if isinstance(value, (list, tuple)):
        return tuple(_normal(v) for v in value)
    return value


def assert_same(mine: Any, ref: Any) -> None:
    assert mine.columns == ref.columns
    assert mine.dtypes == ref.dtypes
    assert [f.nullable for f in mine.schema.fields] == [f.nullable for f in ref.schema.fields]
    got = sorted((_normal(tuple(r)) for r in mine.collect()), key=repr)
    want = sorted((_normal(tuple(r)) for r in ref.collect()), key=repr)
    assert got == want


#: name -> program over a session and its functions module
PROGRAMS: dict[str, Callable[[Any, Any], Any]] = {
    "max_by_grouped": lambda spark, F: rows(spark).groupBy("k").agg(
        F.max_by("v", "o"), F.min_by("v", "o"), F.max_by("k", "v"), F.min_by(F.array("v"), "o")),
    "max_by_global": lambda spark, F: rows(spark).agg(F.max_by("v", "o"), F.min_by("k", "o"), F.max_by("o", "v")),
    "max_by_empty": lambda spark, F: rows(spark).where("v > 100").agg(F.max_by("v", "o"), F.min_by("v", "o")),
    "round_decimal": lambda spark, F: spark.createDataFrame([(x,) for x in DECIMALS], "x DECIMAL(10,3)").select(
        *[F.round("x", d) for d in ROUND_TYPES], *[F.bround("x", d) for d in ROUND_TYPES]),
    "round_decimal_sql": lambda spark, F: spark.sql(
        "SELECT round(CAST(99.5 AS DECIMAL(3,1))), bround(CAST(2.5 AS DECIMAL(2,1)), 0), "
        "round(CAST(9.5 AS DECIMAL(2,1)), -3), round(CAST(-1.25 AS DECIMAL(3,2)), 1), bround(-1.25BD, 1)").toDF(
        "a", "b", "c", "d", "e"),
    "bround_double": lambda spark, F: spark.createDataFrame([(2.5,), (-3.5,), (0.5,), (None,)], "x DOUBLE").select(
        F.bround("x", 0), F.round("x", 0), F.bround("x")),
    "typed_literals": lambda spark, F: spark.sql("SELECT " + ", ".join(TYPED)),
    "typed_literals_in_expressions": lambda spark, F: spark.sql(
        "SELECT CAST(0 AS BIGINT), 1 + 2L, round(1.5BD), CAST('1.5' AS DECIMAL(2,1)), 2.5D * 2, -0.0D, 1.5BD * 1.0BD"),
    "select_of_aggregates": lambda spark, F: rows(spark).select(F.max("v"), F.count("*"), F.avg("o")),
    "select_expr_of_aggregates": lambda spark, F: rows(spark).selectExpr("count(*)", "max(v) AS m", "sum(v) + 1"),
    "max_by_sql": lambda spark, F: (rows(spark).createOrReplaceTempView("gaps3_sql"), spark.sql(
        "SELECT k, max_by(v, o), min_by(v, o) AS least, max_by(k, o IS NULL) FROM gaps3_sql GROUP BY k"))[1],
}


@pytest.fixture(scope="module")
def theirs() -> Iterator[Any]:
    from tests.spark_reference import reference_pyspark
    with reference_pyspark("reference-sql-gaps3", conf={"spark.sql.shuffle.partitions": "3"}) as spark:
        yield spark


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_same_as_pyspark(ours: Any, theirs: Any, name: str) -> None:
    import pyspark.sql.functions as PF
    from sparkctl.sql import functions as F
    assert_same(PROGRAMS[name](ours, F), PROGRAMS[name](theirs, PF))
