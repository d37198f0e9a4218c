"""Three more things a PySpark program meets, checked against plain Python and, in the slow
tests, against PySpark 4.3 itself:

- the aggregates ``max_by(x, ord)`` and ``min_by(x, ord)`` (functions and SQL), grouped and
  global: rows whose ord is NULL are skipped, NaN is the greatest ord, a tie goes to the
  later row, a group with no non-NULL ord gives NULL.
"""
from __future__ import annotations

import math
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
