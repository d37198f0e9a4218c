"""Higher-order array functions with lambdas: ``transform``, ``filter``, ``exists``,
``forall``, ``aggregate``/``reduce`` and ``zip_with``, from Python lambdas and from SQL.

Checked against plain Python (element by element, Spark's three-valued logic written out
by hand), and in the slow tests against PySpark 4.3 itself: column names, types,
nullability and rows.
"""
from __future__ import annotations

import random
from typing import Any, Callable, Iterator

import pytest

pytest.importorskip("pyarrow")

from tests.test_sql_dataframes import assert_same_frames  # noqa: E402

pytestmark = pytest.mark.timeout(120)

#: (a, b, k): NULL arrays, empty arrays, NULL elements, arrays of different lengths, an outer column
ROWS = [([1, 2, None, 4], [10, 20], 1), (None, [1], 2), ([], [], 3), ([5], None, None), ([None, None], [7, 8, 9], 5),
        ([3, 1, 2], [0, 0, 0], -1), ([0, -3, 8, 8, 2, 7], [4], 0)]
SCHEMA = "a ARRAY<INT>, b ARRAY<INT>, k INT"


@pytest.fixture(scope="module")
def ours() -> Iterator[Any]:
    from sparkctl.sql import SparkSession
    spark = SparkSession.builder.master("local[2]").appName("sql-higher-order") \
        .config("spark.ui.enabled", "false").getOrCreate()
    frame(spark).createOrReplaceTempView("t")
    yield spark
    spark.stop()


def frame(spark: Any) -> Any:
    return spark.createDataFrame(ROWS, SCHEMA).repartition(2)


def _by_row(df: Any) -> dict[int | None, tuple]:
    """The rows keyed by k (unique in ROWS), without k."""
    return {r["k"]: tuple(r)[1:] for r in df.collect()}


def _map(values: list | None, f: Callable[..., Any]) -> list | None:
    return None if values is None else [f(x, i) for i, x in enumerate(values)]


def _add(x: Any, y: Any) -> Any:
    return None if x is None or y is None else x + y


# ---------------------------------------------------------------------------- transform, filter
def test_transform_matches_python(ours: Any) -> None:
    from sparkctl.sql import functions as F
    df = frame(ours).select("k", F.transform("a", lambda x: x * 2).alias("double"),
                            F.transform("a", lambda x, i: x + i).alias("plus_index"),
                            F.transform("a", lambda x: F.coalesce(x, F.col("k")) + F.col("k")).alias("outer"),
                            F.transform("a", lambda x: F.concat(F.lit("#"), x.cast("string"))).alias("text"))
    assert df.dtypes[1:] == [("double", "array<int>"), ("plus_index", "array<int>"), ("outer", "array<int>"),
                             ("text", "array<string>")]
    want = {k: (_map(a, lambda x, i: None if x is None else 2 * x),
                _map(a, lambda x, i: _add(x, i)),
                _map(a, lambda x, i: _add(x if x is not None else k, k)),
                _map(a, lambda x, i: None if x is None else f"#{x}")) for a, _, k in ROWS}
    assert _by_row(df) == want


def test_filter_matches_python(ours: Any) -> None:
    from sparkctl.sql import functions as F
    df = frame(ours).select("k", F.filter("a", lambda x: x > F.col("k")).alias("above_k"),
                            F.filter("a", lambda x, i: (i % 2 == 0) | x.isNull()).alias("even_or_null"))
    assert df.dtypes[1:] == [("above_k", "array<int>"), ("even_or_null", "array<int>")]
    want = {k: (None if a is None else [x for x in a if x is not None and k is not None and x > k],
                None if a is None else [x for i, x in enumerate(a) if i % 2 == 0 or x is None]) for a, _, k in ROWS}
    assert _by_row(df) == want


# ---------------------------------------------------------------------------- exists, forall
def _exists(values: list | None, predicate: Callable[[Any], bool | None]) -> bool | None:
    """Spark's three-valued exists: true if one is true, else NULL if one is NULL, else false."""
    if values is None:
        return None
    outcomes = [predicate(x) for x in values]
    return True if True in outcomes else (None if None in outcomes else False)


def _forall(values: list | None, predicate: Callable[[Any], bool | None]) -> bool | None:
    if values is None:
        return None
    outcomes = [predicate(x) for x in values]
    return False if False in outcomes else (None if None in outcomes else True)


def test_exists_and_forall_follow_three_valued_logic(ours: Any) -> None:
    from sparkctl.sql import functions as F
    df = frame(ours).select("k", F.exists("a", lambda x: x > 2).alias("some_big"),
                            F.forall("a", lambda x: x < 8).alias("all_small"),
                            F.exists("a", lambda x: x.isNull()).alias("has_null"),
                            F.forall("a", lambda x: x >= F.col("k")).alias("all_at_least_k"))
    assert df.dtypes[1:] == [(c, "boolean") for c in ("some_big", "all_small", "has_null", "all_at_least_k")]

    def gt(x: Any, y: Any) -> bool | None:
        return None if x is None or y is None else x > y
    want = {k: (_exists(a, lambda x: gt(x, 2)), _forall(a, lambda x: gt(8, x)), _exists(a, lambda x: x is None),
                _forall(a, lambda x: None if x is None or k is None else x >= k)) for a, _, k in ROWS}
    assert _by_row(df) == want
    # the cases that tell three-valued logic apart: NULL where no element decides, false/true where one does
    assert want[5] == (None, None, True, None) and want[1][0] is True and want[1][1] is None
    assert want[3] == (False, True, False, True)


DIVISORS = [([1, 0], [5, 0], 1), ([2, 5], [20, 2], 2), ([0, 4], None, 3), (None, [10, 0, 1], 4)]


def divisors(spark: Any) -> Any:
    return spark.createDataFrame(DIVISORS, "a ARRAY<INT>, b ARRAY<INT>, k INT").repartition(2)


def test_exists_and_forall_stop_at_the_deciding_element(ours: Any) -> None:
    """As Spark's loop: an element after the one that decides is not evaluated, so 10 / 0 there
    raises nothing; before it, it raises."""
    from sparkctl.errors import ArithmeticException
    from sparkctl.sql import functions as F
    df = divisors(ours).filter(F.col("k") != 3).select(
        "k", F.exists("a", lambda x: 10 / x > 1).alias("e"), F.forall("b", lambda x: 10 / x > 5).alias("f"))
    assert _by_row(df) == {1: (True, False), 2: (True, False), 4: (None, False)}
    with pytest.raises(ArithmeticException) as e:
        divisors(ours).select(F.exists("a", lambda x: 10 / x > 1)).collect()
    assert e.value.error_class == "DIVIDE_BY_ZERO"


def test_nothing_is_evaluated_for_a_null_array(ours: Any) -> None:
    from sparkctl.sql import functions as F
    df = divisors(ours).filter(F.col("k") != 3).select(
        "k", F.aggregate("a", F.lit(0), lambda acc, x: acc + x, lambda acc: 10 / acc).alias("g"),
        F.aggregate("a", 10 / (F.col("k") - 4), lambda acc, x: acc).alias("z"))
    assert _by_row(df) == {1: (10.0, 10 / -3), 2: (10 / 7, -5.0), 4: (None, None)}


# ---------------------------------------------------------------------------- aggregate, reduce
def _fold(values: list | None, zero: Any, merge: Callable[[Any, Any], Any],
          finish: Callable[[Any], Any] = lambda acc: acc) -> Any:
    if values is None:
        return None
    acc = zero
    for x in values:
        acc = merge(acc, x)
    return finish(acc)


def test_aggregate_matches_python(ours: Any) -> None:
    from sparkctl.sql import functions as F
    df = frame(ours).select(
        "k",
        F.aggregate("a", F.lit(0), lambda acc, x: acc + x).alias("sum"),
        F.aggregate("a", F.lit(0), lambda acc, x: acc + F.coalesce(x, F.lit(0)), lambda acc: acc * 10).alias("finish"),
        F.aggregate("a", F.lit(""), lambda acc, x: F.concat(acc, F.coalesce(x.cast("string"), F.lit("_")))
                    ).alias("text"),
        F.reduce("a", F.col("k"), lambda acc, x: F.greatest(acc, x)).alias("max_from_k"),
        F.aggregate("a", F.lit(0.5), lambda acc, x: acc * 2 + F.coalesce(x, F.lit(0))).alias("double"))
    assert df.dtypes[1:] == [("sum", "int"), ("finish", "int"), ("text", "string"), ("max_from_k", "int"),
                             ("double", "double")]

    def greatest(acc: Any, x: Any) -> Any:
        present = [v for v in (acc, x) if v is not None]
        return max(present) if present else None
    want = {k: (_fold(a, 0, _add), _fold(a, 0, lambda acc, x: acc + (x or 0), lambda acc: acc * 10),
                _fold(a, "", lambda acc, x: acc + ("_" if x is None else str(x))), _fold(a, k, greatest),
                _fold(a, 0.5, lambda acc, x: acc * 2 + (x or 0))) for a, _, k in ROWS}
    assert _by_row(df) == want


def test_aggregate_over_many_arrays_of_different_lengths(ours: Any) -> None:
    """The fold steps through positions over all arrays at once: arrays of every length, in
    several partitions, each folded in its own order (a non-commutative merge shows it)."""
    from sparkctl.sql import functions as F
    rng = random.Random(7)
    rows = [([rng.randint(-5, 9) for _ in range(rng.randint(0, 40))] if rng.random() > 0.1 else None, i)
            for i in range(300)]
    df = ours.createDataFrame(rows, "a ARRAY<INT>, id INT").repartition(3).select(
        "id", F.aggregate("a", F.lit(0).cast("long"), lambda acc, x: acc * 2 - x + F.col("id")).alias("fold"),
        F.transform("a", lambda x, i: x * i).alias("t"), F.filter("a", lambda x: x > 0).alias("f"))
    got = {r["id"]: (r["fold"], r["t"], r["f"]) for r in df.collect()}
    assert got == {i: (_fold(a, 0, lambda acc, x, i=i: acc * 2 - x + i), _map(a, lambda x, j: x * j),
                       None if a is None else [x for x in a if x > 0]) for a, i in rows}


def test_aggregate_merge_must_return_the_initial_values_type(ours: Any) -> None:
    from sparkctl.errors import AnalysisException
    from sparkctl.sql import functions as F
    with pytest.raises(AnalysisException) as e:
        frame(ours).select(F.aggregate("a", F.lit(0), lambda acc, x: acc + 0.5))
    assert e.value.error_class == "DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE"
    assert 'The third parameter requires the "INT" type' in str(e.value)
    assert 'has the type "DOUBLE"' in str(e.value)
    with pytest.raises(AnalysisException):
        frame(ours).select(F.aggregate("a", F.lit(0), lambda acc, x: (acc + x).cast("long")))
    # a BIGINT zero takes INT elements (the sum widens to BIGINT)
    assert frame(ours).select(F.aggregate("a", F.lit(0).cast("long"), lambda acc, x: acc + x)).dtypes[0][1] == "bigint"


# ---------------------------------------------------------------------------- zip_with
def test_zip_with_pads_the_shorter_array_with_nulls(ours: Any) -> None:
    from sparkctl.sql import functions as F
    df = frame(ours).select("k", F.zip_with("a", "b", lambda x, y: F.coalesce(x, F.lit(0)) * 100 + y).alias("z"),
                            F.zip_with("b", "a", lambda x, y: F.struct(x.alias("l"), y.alias("r"))).alias("pairs"))
    assert df.dtypes[1:] == [("z", "array<int>"), ("pairs", "array<struct<l:int,r:int>>")]

    def zipped(left: list | None, right: list | None) -> list | None:
        if left is None or right is None:
            return None
        n = max(len(left), len(right))
        return [(left[i] if i < len(left) else None, right[i] if i < len(right) else None) for i in range(n)]
    want = {k: (None if zipped(a, b) is None else [None if y is None else (x or 0) * 100 + y for x, y in zipped(a, b)],
                None if zipped(b, a) is None else [tuple(p) for p in zipped(b, a)]) for a, b, k in ROWS}
    got = {k: (z, None if p is None else [tuple(s) for s in p]) for k, (z, p) in _by_row(df).items()}
    assert got == want


# ---------------------------------------------------------------------------- nesting, names, SQL
def test_nested_lambdas_read_the_enclosing_parameter(ours: Any) -> None:
    from sparkctl.sql import functions as F
    df = frame(ours).select("k", F.transform("a", lambda x: F.aggregate("b", F.coalesce(x, F.lit(0)),
                                                                        lambda acc, y: acc + y * x)).alias("n"),
                            F.transform("a", lambda x: F.filter("b", lambda y: y > x)).alias("above"))

    def inner(x: Any, b: list | None) -> Any:
        return _fold(b, x or 0, lambda acc, y: None if acc is None or x is None else acc + y * x)
    want = {k: (_map(a, lambda x, i: inner(x, b)),
                _map(a, lambda x, i: None if b is None else [y for y in b if x is not None and y > x]))
            for a, b, k in ROWS}
    assert _by_row(df) == want


def test_column_names_are_sparks(ours: Any) -> None:
    from sparkctl.sql import functions as F
    df = frame(ours).select(F.transform("a", lambda x: x + 1), F.filter("a", lambda x, i: i > 0),
                            F.aggregate("a", F.lit(0), lambda acc, x: acc + x),
                            F.zip_with("a", "b", lambda x, y: x + y))
    # the names PySpark 4.3 gives these columns
    assert df.columns == [
        "transform(a, lambdafunction((namedlambdavariable() + 1), namedlambdavariable()))",
        "filter(a, lambdafunction((namedlambdavariable() > 0), namedlambdavariable(), namedlambdavariable()))",
        "aggregate(a, 0, lambdafunction((namedlambdavariable() + namedlambdavariable()), namedlambdavariable(), "
        "namedlambdavariable()), lambdafunction(namedlambdavariable(), namedlambdavariable()))",
        "zip_with(a, b, lambdafunction((namedlambdavariable() + namedlambdavariable()), namedlambdavariable(), "
        "namedlambdavariable()))"]


def test_struct_fields_take_the_parameters_names_as_pyspark_gives_them(ours: Any) -> None:
    """PySpark names a lambda's parameters x_<n>, y_<n> whatever the Python function calls them;
    a struct made of one takes that name (PySpark 4.3: ``array<struct<x_1:int,col2:int>>``)."""
    import re
    from sparkctl.sql import functions as F
    df = frame(ours).filter(F.col("k") == 1).select(F.transform("a", lambda v: F.struct(v, v * 2)).alias("s"),
                                                    F.zip_with("a", "b", lambda p, q: F.struct(p, q)).alias("z"))
    assert re.fullmatch(r"array<struct<x_(\d+):int,col2:int>>", df.dtypes[0][1])
    assert re.fullmatch(r"array<struct<x_(\d+):int,y_(\d+):int>>", df.dtypes[1][1])
    row = df.first()
    assert [tuple(s) for s in row["s"]] == [(1, 2), (2, 4), (None, None), (4, 8)]
    assert [tuple(z) for z in row["z"]] == [(1, 10), (2, 20), (None, None), (4, None)]


def test_sql_lambdas_keep_their_parameters_names(ours: Any) -> None:
    """In SQL the parameters are named as the query names them (PySpark 4.3:
    ``array<struct<x:int,col2:int>>``), and struct() is named struct(...)."""
    df = ours.sql("SELECT transform(a, x -> struct(x, x * k)) AS s, struct(k, k * 2), struct(k AS col1, b) AS n "
                  "FROM t WHERE k = 1")
    assert df.dtypes == [("s", "array<struct<x:int,col2:int>>"), ("struct(k, (k * 2))", "struct<k:int,col2:int>"),
                         ("n", "struct<col1:int,b:array<int>>")]
    assert [tuple(e) for e in df.first()["s"]] == [(1, 1), (2, 2), (None, None), (4, 4)]


def test_sql_higher_order_functions_match_python(ours: Any) -> None:
    rows = ours.sql("SELECT k, transform(a, x -> x + k), transform(a, (x, i) -> i), filter(a, x -> x IS NOT NULL), "
                    "exists(a, x -> x = 8), forall(a, x -> x IS NULL), aggregate(a, 0, (acc, x) -> acc + coalesce(x, 1), "
                    "acc -> acc * 2), reduce(b, 1, (acc, y) -> acc * y), zip_with(a, b, (x, y) -> coalesce(x, y)) "
                    "FROM t").collect()
    got = {r[0]: tuple(r)[1:] for r in rows}
    want = {k: (_map(a, lambda x, i: _add(x, k)), _map(a, lambda x, i: i),
                None if a is None else [x for x in a if x is not None], _exists(a, lambda x: None if x is None else x == 8),
                _forall(a, lambda x: x is None), _fold(a, 0, lambda acc, x: acc + (1 if x is None else x),
                                                       lambda acc: acc * 2),
                _fold(b, 1, lambda acc, y: acc * y),
                None if a is None or b is None else
                [x if x is not None else y for x, y in
                 [(a[i] if i < len(a) else None, b[i] if i < len(b) else None) for i in range(max(len(a), len(b)))]])
            for a, b, k in ROWS}
    assert got == want


def test_sql_exists_with_a_lambda_in_where(ours: Any) -> None:
    rows = ours.sql("SELECT k FROM t WHERE exists(a, x -> x > 3) AND NOT forall(b, y -> y > 0)").collect()
    assert sorted(r[0] for r in rows) == sorted(
        k for a, b, k in ROWS if _exists(a, lambda x: None if x is None else x > 3) is True
        and _forall(b, lambda y: None if y is None else y > 0) is False)


# ---------------------------------------------------------------------------- errors
def test_lambdas_of_the_wrong_shape_are_refused(ours: Any) -> None:
    from sparkctl.errors import AnalysisException, PySparkValueError
    from sparkctl.sql import functions as F
    with pytest.raises(PySparkValueError) as e:
        F.transform("a", lambda: F.lit(1))
    assert e.value.error_class == "WRONG_NUM_ARGS_FOR_HIGHER_ORDER_FUNCTION"
    with pytest.raises(PySparkValueError) as e:
        F.transform("a", lambda *xs: xs[0])
    assert e.value.error_class == "UNSUPPORTED_PARAM_TYPE_FOR_HIGHER_ORDER_FUNCTION"
    with pytest.raises(PySparkValueError) as e:
        F.transform("a", lambda x: 1)
    assert e.value.error_class == "HIGHER_ORDER_FUNCTION_SHOULD_RETURN_COLUMN"
    with pytest.raises(AnalysisException) as e:
        frame(ours).select(F.exists("a", lambda x, i: x > i))
    assert e.value.error_class == "INVALID_LAMBDA_FUNCTION_CALL.NUM_ARGS_MISMATCH"
    assert "expects 1 arguments, but got 2" in str(e.value)
    with pytest.raises(AnalysisException) as e:
        frame(ours).select(F.filter("a", lambda x: x + 1))
    assert e.value.error_class == "DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE"
    with pytest.raises(AnalysisException) as e:
        frame(ours).select(F.transform("k", lambda x: x))
    assert 'requires the "ARRAY" type' in str(e.value)


# ---------------------------------------------------------------------------- against PySpark
PROGRAMS: dict[str, Callable[[Any, Any], Any]] = {
    "transform": lambda spark, F: frame(spark).select(
        "k", F.transform("a", lambda x: x + 1), F.transform("a", lambda x, i: x * i),
        F.transform("a", lambda x: F.coalesce(x, F.col("k"))), F.transform("b", lambda x: x.cast("string"))),
    "filter": lambda spark, F: frame(spark).select(
        "k", F.filter("a", lambda x: x > 1), F.filter("a", lambda x, i: i > F.col("k"))),
    "exists_forall": lambda spark, F: frame(spark).select(
        "k", F.exists("a", lambda x: x > 2), F.forall("a", lambda x: x < 8), F.exists("a", lambda x: x.isNull()),
        F.forall("b", lambda x: F.lit(True))),
    "aggregate": lambda spark, F: frame(spark).select(
        "k", F.aggregate("a", F.lit(0), lambda acc, x: acc + x),
        F.aggregate("a", F.lit(0), lambda acc, x: acc + F.coalesce(x, F.lit(0)), lambda acc: acc * 10),
        F.aggregate("a", F.lit(0).cast("long"), lambda acc, x: acc + x),
        F.aggregate("a", F.lit(0.5), lambda acc, x: acc * 2 + F.coalesce(x, F.lit(0))),
        F.reduce("b", F.col("k"), lambda acc, x: F.greatest(acc, x))),
    "zip_with": lambda spark, F: frame(spark).select(
        "k", F.zip_with("a", "b", lambda x, y: x + y), F.zip_with("a", "b", lambda x, y: F.coalesce(x, y))),
    "nested": lambda spark, F: frame(spark).select(
        "k", F.transform("a", lambda x: F.filter("b", lambda y: y > x)),
        F.transform("a", lambda x: F.aggregate("b", F.coalesce(x, F.lit(0)), lambda acc, y: acc + y))),
    "short_circuit": lambda spark, F: divisors(spark).filter(F.col("k") != 3).select(
        "k", F.exists("a", lambda x: 10 / x > 1), F.forall("b", lambda x: 10 / x > 5),
        F.aggregate("a", F.lit(0), lambda acc, x: acc + x, lambda acc: 10 / acc),
        F.aggregate("a", 10 / (F.col("k") - 4), lambda acc, x: acc)),
    "sql": lambda spark, F: spark.sql(
        "SELECT transform(array(1, 2, 3), x -> x + 1), filter(array(1, 2, 3), x -> x > 1), "
        "exists(array(1, 2), x -> x > 1), forall(array(1, 2), x -> x > 1), exists(array(1, NULL), x -> x > 1), "
        "aggregate(array(1, 2, 3), 0, (acc, x) -> acc + x, acc -> acc * 2), zip_with(array(1, 2), array(3), "
        "(x, y) -> x + y), reduce(array(1, 2, 3), 0, (acc, x) -> acc + x), transform(array(1, 2), (x, i) -> x + i), "
        "filter(array(1, 2), (x, i) -> i > 0)"),
    "sql_struct": lambda spark, F: spark.sql(
        "SELECT k, transform(a, x -> struct(x, x * k)), zip_with(a, b, (l, r) -> struct(l, r)), struct(k, k * 2) "
        "FROM t"),
    "sql_table": lambda spark, F: spark.sql(
        "SELECT k, transform(a, x -> x * k), exists(a, x -> x = 8), aggregate(b, 0, (acc, y) -> acc + y) FROM t "
        "WHERE forall(b, y -> y < 10)"),
}


@pytest.fixture(scope="module")
def theirs() -> Iterator[Any]:
    from tests.spark_reference import reference_pyspark
    with reference_pyspark("reference-sql-higher-order") as spark:
        frame(spark).createOrReplaceTempView("t")
        yield spark


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_same_as_pyspark(ours: Any, theirs: Any, name: str) -> None:
    import pyspark.sql.functions as PF
    from sparkctl.sql import functions as F
    assert_same_frames(PROGRAMS[name](ours, F), PROGRAMS[name](theirs, PF), False, nullability=True)
