"""More DataFrame and SQL features a PySpark program meets, checked against plain Python and,
in the slow tests, against PySpark 4.3 itself:

- NaN as Spark orders it: NaN = NaN, NaN greater than every other double (comparisons, IN,
  <=>, sorting either way, max/min, greatest/least, window peers), one group for all NaNs
  and for 0.0 and -0.0 (grouping, distinct, join keys);
- grouping by an array (``groupBy("arr")``, ``distinct()``, ``dropDuplicates``, SQL GROUP
  BY), by a map (entries in any order group alike), and no distinct() over a map column;
- the map higher-order functions ``transform_keys``, ``transform_values``, ``map_filter``,
  ``map_zip_with`` from Python lambdas and in SQL, with Spark's errors for NULL and
  repeated keys;
- ``sequence(start, stop[, step])`` over integers and dates.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any, Callable, Iterator

import pytest

pytest.importorskip("pyarrow")

pytestmark = pytest.mark.timeout(120)

NAN = float("nan")
INF = float("inf")
#: doubles in every position Spark's ordering distinguishes
DOUBLES = [NAN, 1.0, None, -INF, NAN, 0.0, -0.0, INF, -1.5]


@pytest.fixture(scope="module")
def ours() -> Iterator[Any]:
    from sparkctl.sql import SparkSession
    spark = SparkSession.builder.master("local[2]").appName("sql-gaps2") \
        .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "3").getOrCreate()
    yield spark
    spark.stop()


def doubles(spark: Any) -> Any:
    return spark.createDataFrame([(i, x) for i, x in enumerate(DOUBLES)], "i INT, x DOUBLE").repartition(3)


def _key(v: float) -> tuple:
    """Spark's order of a non-NULL double: NaN after every number, 0.0 and -0.0 equal."""
    return (1, 0.0) if math.isnan(v) else (0, v)


def _compare(op: str, a: float | None, b: float | None) -> bool | None:
    if a is None or b is None:
        return None
    ka, kb = _key(a), _key(b)
    return {"=": ka == kb, "<": ka < kb, "<=": ka <= kb, ">": ka > kb, ">=": ka >= kb}[op]


def _same(a: Any, b: Any) -> bool:
    """Equal values, NaN equal to NaN (and only to NaN)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


# ---------------------------------------------------------------------------- NaN
def test_comparisons_order_nan_as_spark(ours: Any) -> None:
    from sparkctl.sql import functions as F
    df = doubles(ours)
    pairs = df.alias("l").crossJoin(df.alias("r")).select(
        F.col("l.x").alias("a"), F.col("r.x").alias("b"),
        (F.col("l.x") == F.col("r.x")).alias("eq"), (F.col("l.x") < F.col("r.x")).alias("lt"),
        (F.col("l.x") <= F.col("r.x")).alias("le"), (F.col("l.x") > F.col("r.x")).alias("gt"),
        (F.col("l.x") >= F.col("r.x")).alias("ge"), F.col("l.x").eqNullSafe(F.col("r.x")).alias("ns"))
    rows = pairs.collect()
    assert len(rows) == len(DOUBLES) ** 2
    for r in rows:
        want = [_compare(op, r.a, r.b) for op in ("=", "<", "<=", ">", ">=")]
        null_safe = (r.a is None and r.b is None) or bool(_compare("=", r.a, r.b))
        assert [r.eq, r.lt, r.le, r.gt, r.ge, r.ns] == want + [null_safe], (r.a, r.b)


def test_nan_in_sql_literals_and_in_lists(ours: Any) -> None:
    from sparkctl.sql import functions as F
    row = ours.sql("SELECT double('NaN') = double('NaN') AS eq, double('NaN') > double('Infinity') AS gt, "
                   "double('NaN') < 1.0 AS lt, greatest(double('NaN'), 1.0) AS g, least(double('NaN'), 1.0) AS l, "
                   "1.0 IN (double('NaN'), 2.0) AS no, double('NaN') IN (1.0, double('NaN')) AS yes").collect()[0]
    assert (row.eq, row.gt, row.lt, row.l, row.no, row.yes) == (True, True, False, 1.0, False, True)
    assert math.isnan(row.g)
    got = sorted(r.i for r in doubles(ours).filter(F.col("x").isin(NAN, INF)).collect())
    assert got == [i for i, x in enumerate(DOUBLES) if x is not None and (math.isnan(x) or x == INF)]


@pytest.mark.parametrize("ascending", [True, False])
@pytest.mark.parametrize("nulls_first", [True, False])
def test_sorting_puts_nan_above_every_number(ours: Any, ascending: bool, nulls_first: bool) -> None:
    from sparkctl.sql import functions as F
    column = F.col("x")
    order = {(True, True): column.asc_nulls_first(), (True, False): column.asc_nulls_last(),
             (False, True): column.desc_nulls_first(), (False, False): column.desc_nulls_last()}
    got = [r.x for r in doubles(ours).orderBy(order[(ascending, nulls_first)]).collect()]
    numbers = sorted((x for x in DOUBLES if x is not None), key=_key, reverse=not ascending)
    nulls = [None] * DOUBLES.count(None)
    want = nulls + numbers if nulls_first else numbers + nulls
    assert len(got) == len(want) and all(_same(a, b) or (a == b == 0.0) for a, b in zip(got, want)), got


def test_max_is_nan_where_a_nan_is_and_min_skips_it(ours: Any) -> None:
    from sparkctl.sql import functions as F
    rows = [("a", NAN), ("a", 1.0), ("b", 2.0), ("b", None), ("c", NAN), ("c", NAN), ("d", None)]
    df = ours.createDataFrame(rows, "k STRING, x DOUBLE").repartition(2)
    got = {r.k: (r.hi, r.lo) for r in df.groupBy("k").agg(F.max("x").alias("hi"), F.min("x").alias("lo")).collect()}
    for k in "abcd":
        values = [x for key, x in rows if key == k and x is not None]
        hi = max(values, key=_key) if values else None
        lo = min(values, key=_key) if values else None
        assert _same(got[k][0], hi) and _same(got[k][1], lo), (k, got[k])
    total = df.agg(F.max("x").alias("hi"), F.min("x").alias("lo")).collect()[0]
    assert math.isnan(total.hi) and total.lo == 1.0


def test_nans_and_zeros_group_and_join_together(ours: Any) -> None:
    from sparkctl.sql import functions as F
    df = doubles(ours)
    counts = {("NaN" if r.x is not None and math.isnan(r.x) else r.x): r["count"]
              for r in df.groupBy("x").count().collect()}
    want = Counter("NaN" if x is not None and math.isnan(x) else (0.0 if x == 0.0 else x) for x in DOUBLES)
    assert counts == dict(want)
    assert df.select("x").distinct().count() == len(want)
    joined = df.alias("l").join(df.alias("r"), F.col("l.x") == F.col("r.x")).count()
    assert joined == sum(n * n for x, n in want.items() if x is not None)


def test_window_peers_count_nans_as_equal(ours: Any) -> None:
    from sparkctl.sql import Window, functions as F
    got = {r.i: r.rank for r in doubles(ours).select("i", F.rank().over(Window.orderBy("x")).alias("rank")).collect()}
    keys = [(0, (0, 0)) if x is None else (1, _key(x)) for x in DOUBLES]
    for i, k in enumerate(keys):
        assert got[i] == 1 + sum(other < k for other in keys), i


DOUBLE_ARRAYS = [(1, [NAN, 1.0, None, -0.0, 2.0]), (2, [NAN]), (3, [1.0, NAN, 1.0]), (4, None), (5, [])]


def double_arrays(spark: Any) -> Any:
    return spark.createDataFrame(DOUBLE_ARRAYS, "k INT, a ARRAY<DOUBLE>")


def _sorted_spark(values: list, ascending: bool) -> list:
    nulls = [v for v in values if v is None]
    numbers = sorted((v for v in values if v is not None), key=_key, reverse=not ascending)
    return nulls + numbers if ascending else numbers + nulls


def test_array_functions_order_nan_as_spark(ours: Any) -> None:
    from sparkctl.sql import functions as F
    df = double_arrays(ours).select("k", F.sort_array("a").alias("up"), F.sort_array("a", False).alias("down"),
                                    F.array_max("a").alias("hi"), F.array_min("a").alias("lo"),
                                    F.array_contains("a", NAN).alias("has"), F.array_position("a", NAN).alias("at"),
                                    F.array_remove("a", NAN).alias("rest"))
    for r in df.collect():
        a = dict(DOUBLE_ARRAYS)[r.k]
        if a is None:
            assert list(r)[1:] == [None] * 7
            continue
        same_lists = [len(x) == len(y) and all(_same(p, q) or p == q for p, q in zip(x, y))
                      for x, y in ((r.up, _sorted_spark(a, True)), (r.down, _sorted_spark(a, False)),
                                   (r.rest, [v for v in a if v is None or not math.isnan(v)]))]
        assert all(same_lists), r
        numbers = [v for v in a if v is not None]
        assert _same(r.hi, max(numbers, key=_key) if numbers else None), r
        assert _same(r.lo, min(numbers, key=_key) if numbers else None), r
        nan_at = [i for i, v in enumerate(a) if v is not None and math.isnan(v)]
        assert (r.has, r.at) == (bool(nan_at), nan_at[0] + 1 if nan_at else 0), r


def test_arrays_compare_equal_element_by_element(ours: Any) -> None:
    from sparkctl.sql import functions as F
    df = double_arrays(ours)
    got = {r.k: r.eq for r in df.select("k", (F.col("a") == F.array(F.lit(NAN))).alias("eq")).collect()}
    assert got == {k: None if a is None else (len(a) == 1 and a[0] is not None and math.isnan(a[0]))
                   for k, a in DOUBLE_ARRAYS}
    pairs = df.alias("l").join(df.alias("r"), F.col("l.a") == F.col("r.a")).select("l.k", "r.k").collect()
    assert sorted(tuple(p) for p in pairs) == [(k, k) for k, a in DOUBLE_ARRAYS if a is not None]
    assert sorted(r.k for r in df.select("k", "a").intersect(df.filter("k > 2").select("k", "a")).collect()) == [3, 4, 5]


# ---------------------------------------------------------------------------- grouping by arrays and maps
ARRAYS = [(1, [1, 2], ["x"]), (2, [1, 2], ["x", None]), (3, None, None), (4, [3], []), (5, [], ["x"]),
          (6, [None], ["x", None]), (7, [1, 2], None), (8, [], [])]


def arrays(spark: Any) -> Any:
    return spark.createDataFrame(ARRAYS, "k INT, a ARRAY<INT>, s ARRAY<STRING>").repartition(3)


def _t(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def test_group_by_an_array_matches_python(ours: Any) -> None:
    from sparkctl.sql import functions as F
    df = arrays(ours).groupBy("a").agg(F.count("*").alias("n"), F.sum("k").alias("total"))
    assert df.dtypes == [("a", "array<int>"), ("n", "bigint"), ("total", "bigint")]
    got = {_t(r.a): (r.n, r.total) for r in df.collect()}
    want: dict[Any, list[int]] = {}
    for k, a, _ in ARRAYS:
        entry = want.setdefault(_t(a), [0, 0])
        entry[0] += 1
        entry[1] += k
    assert got == {a: tuple(v) for a, v in want.items()}
    by_both = Counter((_t(a), _t(s)) for _, a, s in ARRAYS)
    assert Counter({(_t(r.a), _t(r.s)): r["count"] for r in arrays(ours).groupBy("a", "s").count().collect()}) \
        == by_both


def test_distinct_and_drop_duplicates_over_arrays(ours: Any) -> None:
    df = arrays(ours)
    got = [(_t(r.a), _t(r.s)) for r in df.select("a", "s").distinct().collect()]
    assert sorted(got, key=repr) == sorted(set((_t(a), _t(s)) for _, a, s in ARRAYS), key=repr)
    assert df.dropDuplicates(["a"]).count() == len({_t(a) for _, a, _ in ARRAYS})
    kept = {r.k: (_t(r.a), _t(r.s)) for r in df.dropDuplicates(["k"]).collect()}
    assert kept == {k: (_t(a), _t(s)) for k, a, s in ARRAYS}


def test_group_by_an_array_in_sql_and_inside_a_struct(ours: Any) -> None:
    from sparkctl.sql import functions as F
    arrays(ours).createOrReplaceTempView("arrays")
    got = {_t(r.s): r.n for r in ours.sql("SELECT s, count(*) AS n FROM arrays GROUP BY s").collect()}
    assert got == dict(Counter(_t(s) for _, _, s in ARRAYS))
    nested = arrays(ours).groupBy(F.struct("a", (F.col("k") % 2).alias("odd")).alias("g")).count().collect()
    assert Counter({(_t(r.g.a), r.g.odd): r["count"] for r in nested}) == \
        Counter((_t(a), k % 2) for k, a, _ in ARRAYS)


def test_group_by_arrays_of_doubles_and_of_arrays(ours: Any) -> None:
    rows = [([1.0, NAN],), ([1.0, NAN],), ([0.0],), ([-0.0],), ([2.0],)]
    df = ours.createDataFrame(rows, "a ARRAY<DOUBLE>")
    got = sorted(r["count"] for r in df.groupBy("a").count().collect())
    assert got == [1, 2, 2]  # [1.0, NaN] twice, [0.0] and [-0.0] alike, [2.0]
    nested = ours.createDataFrame([([[1], [2, None]],), ([[1], [2, None]],), ([[1]],), (None,)], "a ARRAY<ARRAY<INT>>")
    assert Counter({repr(r.a): r["count"] for r in nested.groupBy("a").count().collect()}) == \
        Counter({repr([[1], [2, None]]): 2, repr([[1]]): 1, repr(None): 1})


def test_group_by_a_map_ignores_entry_order_and_distinct_refuses_it(ours: Any) -> None:
    from sparkctl.errors import AnalysisException
    df = ours.createDataFrame([(1, {"a": 1, "b": 2}), (2, {"b": 2, "a": 1}), (3, {"a": 1}), (4, None)],
                              "k INT, m MAP<STRING, INT>")
    got = Counter({repr(sorted(r.m.items()) if r.m is not None else None): r["count"]
                   for r in df.groupBy("m").count().collect()})
    assert got == Counter({repr([("a", 1), ("b", 2)]): 2, repr([("a", 1)]): 1, repr(None): 1})
    with pytest.raises(AnalysisException, match="SET_OPERATION_ON_MAP_TYPE"):
        df.distinct()
    assert df.dropDuplicates(["k"]).count() == 4


# ---------------------------------------------------------------------------- map higher-order functions
MAPS = [(1, {"a": 1, "b": 2}), (2, None), (3, {}), (4, {"c": None, "d": 4})]


def maps(spark: Any) -> Any:
    return spark.createDataFrame(MAPS, "k INT, m MAP<STRING, INT>")


def _by_k(df: Any) -> dict[int, Any]:
    return {r[0]: r[1] for r in df.collect()}


def _on(m: dict | None, f: Callable[[dict], dict]) -> dict | None:
    return None if m is None else f(m)


def test_transform_values_and_keys_match_python(ours: Any) -> None:
    from sparkctl.sql import functions as F
    values = maps(ours).select("k", F.transform_values("m", lambda k, v: v * F.col("k") + F.length(k)))
    assert values.dtypes[1][1] == "map<string,int>"
    assert _by_k(values) == {k: _on(m, lambda m, k=k: {a: None if v is None else v * k + len(a) for a, v in m.items()})
                             for k, m in MAPS}
    keys = maps(ours).select("k", F.transform_keys("m", lambda k, v: F.concat(F.upper(k), F.col("k").cast("string"))))
    assert _by_k(keys) == {k: _on(m, lambda m, k=k: {a.upper() + str(k): v for a, v in m.items()}) for k, m in MAPS}


def test_map_filter_matches_python(ours: Any) -> None:
    from sparkctl.sql import functions as F
    df = maps(ours).select("k", F.map_filter("m", lambda k, v: (v > 1) | (k == "a")))
    assert _by_k(df) == {k: _on(m, lambda m: {a: v for a, v in m.items() if a == "a" or (v is not None and v > 1)})
                         for k, m in MAPS}


def test_map_zip_with_merges_by_key(ours: Any) -> None:
    from sparkctl.sql import functions as F
    other = F.create_map(F.lit("b"), F.lit(10), F.lit("z"), F.col("k"))
    df = maps(ours).select("k", F.map_zip_with("m", other, lambda k, x, y: F.coalesce(x, F.lit(0)) * 100 + y))

    def merged(m: dict, k: int) -> dict:
        right = {"b": 10, "z": k}
        out = {}
        for key in list(m) + [key for key in right if key not in m]:
            x, y = m.get(key), right.get(key)
            out[key] = None if y is None else (x if x is not None else 0) * 100 + y
        return out
    got = _by_k(df)
    assert got == {k: _on(m, lambda m, k=k: merged(m, k)) for k, m in MAPS}
    assert list(got[1]) == ["a", "b", "z"]  # the first map's keys, then the second's own


def test_map_functions_in_sql(ours: Any) -> None:
    row = ours.sql("SELECT transform_keys(map(1, 2, 3, 4), (k, v) -> k * 10) AS tk, "
                   "transform_values(map(1, 2), (k, v) -> v + k) AS tv, "
                   "map_filter(map(1, 2, 3, 4), (k, v) -> k > 1) AS mf, "
                   "map_zip_with(map(1, 2), map(1, 3, 2, 4), (k, a, b) -> a + b) AS mz").collect()[0]
    assert (row.tk, row.tv, row.mf, row.mz) == ({10: 2, 30: 4}, {1: 3}, {3: 4}, {1: 5, 2: None})


def test_transform_keys_refuses_null_and_repeated_keys(ours: Any) -> None:
    from sparkctl.errors import SparkSqlError
    from sparkctl.sql import functions as F
    with pytest.raises(SparkSqlError, match="DUPLICATED_MAP_KEY.*Duplicate map key x was found"):
        maps(ours).select(F.transform_keys("m", lambda k, v: F.lit("x"))).collect()
    with pytest.raises(SparkSqlError, match="NULL_MAP_KEY"):
        maps(ours).select(F.transform_keys("m", lambda k, v: F.lit(None).cast("string"))).collect()


def test_map_functions_check_their_arguments(ours: Any) -> None:
    from sparkctl.errors import AnalysisException
    from sparkctl.sql import functions as F
    with pytest.raises(AnalysisException, match="NUM_ARGS_MISMATCH"):
        maps(ours).select(F.transform_values("m", lambda v: v))
    with pytest.raises(AnalysisException, match="requires the \"MAP\" type"):
        maps(ours).select(F.map_filter("k", lambda k, v: v > 1))
    with pytest.raises(AnalysisException, match="MAP_ZIP_WITH_DIFF_TYPES"):
        ours.sql("SELECT map_zip_with(map(1, 2), map('a', 3), (k, a, b) -> a + b)")


# ---------------------------------------------------------------------------- sequence
def _range(start: int, stop: int, step: int | None = None) -> list[int]:
    step = step if step is not None else (1 if start <= stop else -1)
    return list(range(start, stop + (1 if step > 0 else -1), step))


def test_sequence_matches_python_range(ours: Any) -> None:
    from sparkctl.sql import functions as F
    row = ours.sql("SELECT sequence(1, 5) AS a, sequence(5, 1) AS b, sequence(1, 10, 3) AS c, sequence(2, 2) AS d, "
                   "sequence(10, 1, -4) AS e, sequence(1, NULL) AS f, sequence(3L, 1L) AS g").collect()[0]
    assert list(row) == [_range(1, 5), _range(5, 1), _range(1, 10, 3), _range(2, 2), _range(10, 1, -4), None,
                         _range(3, 1)]
    df = ours.range(6).select("id", F.sequence(F.col("id"), F.lit(3)).alias("s"),
                              F.sequence(F.lit(0), F.col("id") * 2, F.lit(3)).alias("t"))
    assert df.dtypes == [("id", "bigint"), ("s", "array<bigint>"), ("t", "array<bigint>")]
    assert {r.id: (r.s, r.t) for r in df.collect()} == {i: (_range(i, 3), _range(0, 2 * i, 3)) for i in range(6)}


def test_sequence_of_dates_steps_a_day(ours: Any) -> None:
    import datetime
    row = ours.sql("SELECT sequence(DATE'2024-02-27', DATE'2024-03-02') AS up, "
                   "sequence(DATE'2024-01-02', DATE'2023-12-31') AS down").collect()[0]
    day = datetime.timedelta(days=1)
    assert row.up == [datetime.date(2024, 2, 27) + i * day for i in range(5)]
    assert row.down == [datetime.date(2024, 1, 2) - i * day for i in range(3)]


def test_sequence_refuses_a_step_away_from_stop(ours: Any) -> None:
    from sparkctl.errors import IllegalArgumentException
    for query, text in [("SELECT sequence(1, 5, -1)", "1 to 5 by -1"), ("SELECT sequence(1, 5, 0)", "1 to 5 by 0")]:
        with pytest.raises(IllegalArgumentException, match=f"Illegal sequence boundaries: {text}"):
            ours.sql(query).collect()
    assert ours.sql("SELECT sequence(4, 4, 0) AS s").collect()[0].s == [4]


# ---------------------------------------------------------------------------- against PySpark
def _normal(value: Any) -> Any:
    """A value comparable with ==: NaN as a marker of its own (not NULL), -0.0 apart from 0.0,
    dicts as sorted items."""
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else repr(round(value, 9))
    if isinstance(value, dict):
        return ("map", tuple(sorted((repr(k), _normal(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return tuple(_normal(v) for v in value)
    return value


def assert_same(mine: Any, ref: Any, ordered: bool) -> None:
    assert mine.columns == ref.columns
    assert mine.dtypes == ref.dtypes
    assert [f.nullable for f in mine.schema.fields] == [f.nullable for f in ref.schema.fields]
    got = [_normal(tuple(r)) for r in mine.collect()]
    want = [_normal(tuple(r)) for r in ref.collect()]
    if not ordered:
        got, want = sorted(got, key=repr), sorted(want, key=repr)
    assert got == want


#: name -> (program over a session, its functions module and Window, whether its order is defined)
PROGRAMS: dict[str, tuple[Callable[[Any, Any, Any], Any], bool]] = {
    "nan_compare": (lambda spark, F, W: doubles(spark).select(
        "i", F.col("x") == F.lit(NAN), F.col("x") > 1, F.col("x") < F.lit(NAN), F.col("x") >= F.lit(INF),
        F.col("x").eqNullSafe(F.lit(NAN)), F.col("x").isin(NAN, 1.0), F.greatest("x", F.lit(0.5)),
        F.least("x", F.lit(0.5))), False),
    "nan_sort_asc": (lambda spark, F, W: doubles(spark).orderBy("x", "i"), True),
    "nan_sort_desc": (lambda spark, F, W: doubles(spark).orderBy(F.col("x").desc(), "i"), True),
    "nan_sort_desc_nulls_first": (lambda spark, F, W: doubles(spark).orderBy(F.col("x").desc_nulls_first(), "i"), True),
    "nan_group": (lambda spark, F, W: doubles(spark).groupBy("x").agg(F.count("*"), F.max("i")), False),
    "nan_max_min": (lambda spark, F, W: doubles(spark).groupBy((F.col("i") % 3).alias("g")).agg(
        F.max("x"), F.min("x")), False),
    "nan_join": (lambda spark, F, W: doubles(spark).alias("l").join(doubles(spark).alias("r"), "x")
                 .select("x", F.col("l.i"), F.col("r.i")), False),
    "nan_window": (lambda spark, F, W: doubles(spark).select("i", "x", F.rank().over(W.orderBy("x"))), False),
    "nan_array_functions": (lambda spark, F, W: double_arrays(spark).select(
        "k", F.sort_array("a"), F.sort_array("a", False), F.array_max("a"), F.array_min("a"),
        F.array_contains("a", NAN), F.array_position("a", NAN), F.array_remove("a", NAN)), False),
    "array_distinct_and_sets": (lambda spark, F, W: double_arrays(spark).select(
        "k", F.array_distinct("a"), F.array_union("a", F.array(F.lit(-0.0), F.lit(NAN))),
        F.array_intersect("a", F.array(F.lit(0.0), F.lit(NAN))), F.array_except("a", F.array(F.lit(1.0)))), False),
    "array_equality": (lambda spark, F, W: double_arrays(spark).select(
        "k", F.col("a") == F.array(F.lit(NAN)), F.col("a").eqNullSafe(F.array(F.lit(1.0), F.lit(NAN), F.lit(1.0)))),
        False),
    "array_intersect_rows": (lambda spark, F, W: double_arrays(spark).select("a").intersect(
        double_arrays(spark).filter("k > 1").select("a")), False),
    "array_group": (lambda spark, F, W: arrays(spark).groupBy("a").agg(F.count("*"), F.sum("k")), False),
    "array_group_strings": (lambda spark, F, W: arrays(spark).groupBy("s", "a").count(), False),
    "array_distinct_rows": (lambda spark, F, W: arrays(spark).select("a", "s").distinct(), False),
    "array_drop_duplicates": (lambda spark, F, W: arrays(spark).dropDuplicates(["k"]), False),
    "map_group": (lambda spark, F, W: spark.createDataFrame(
        [(1, {"a": 1, "b": 2}), (2, {"b": 2, "a": 1}), (3, None)], "k INT, m MAP<STRING, INT>")
        .groupBy("m").agg(F.sum("k")), False),
    "map_functions": (lambda spark, F, W: maps(spark).select(
        "k", F.transform_keys("m", lambda k, v: F.upper(k)), F.transform_values("m", lambda k, v: v + 1),
        F.map_filter("m", lambda k, v: v > 1),
        F.map_zip_with("m", F.create_map(F.lit("b"), F.lit(10)), lambda k, x, y: F.coalesce(x, y))), False),
    "map_functions_sql": (lambda spark, F, W: spark.sql(
        "SELECT transform_keys(map(1, 2), (k, v) -> k + 1), transform_values(map(1, 2), (k, v) -> v + k), "
        "map_filter(map(1, 2, 3, 4), (k, v) -> k > 1), "
        "map_zip_with(map(1, 2), map(1, 3, 2, 4), (k, a, b) -> a + b)"), False),
    "sequence_sql": (lambda spark, F, W: spark.sql(
        "SELECT sequence(1, 5), sequence(5, 1), sequence(1, 10, 3), sequence(1, 1), sequence(10, 1, -4), "
        "sequence(1, NULL), sequence(DATE'2024-02-27', DATE'2024-03-02')"), False),
    "sequence_columns": (lambda spark, F, W: spark.range(5).select(
        "id", F.sequence(F.col("id"), F.lit(2)), F.sequence(F.lit(1), F.lit(9), F.lit(4))), False),
}


@pytest.fixture(scope="module")
def theirs() -> Iterator[Any]:
    from tests.spark_reference import reference_pyspark
    with reference_pyspark("reference-sql-gaps2", conf={"spark.sql.shuffle.partitions": "3"}) as spark:
        yield spark


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_same_as_pyspark(ours: Any, theirs: Any, name: str) -> None:
    import pyspark.sql.functions as PF
    from pyspark.sql import Window as PW
    from sparkctl.sql import Window, functions as F
    program, ordered = PROGRAMS[name]
    assert_same(program(ours, F, Window), program(theirs, PF, PW), ordered)


@pytest.mark.slow
def test_errors_same_as_pyspark(ours: Any, theirs: Any) -> None:
    """The error classes PySpark raises, raised by sparkctl for the same programs."""
    import pyspark.sql.functions as PF
    from sparkctl.sql import functions as F

    def error_class(run: Callable[[], Any]) -> str:
        try:
            run()
        except Exception as e:  # noqa: BLE001 - the class is what is compared
            text = str(e)
            return text[text.index("[") + 1:text.index("]")] if "[" in text else text.split(":")[0]
        return "no error"
    programs: list[Callable[[Any, Any], Any]] = [
        lambda spark, F: maps(spark).select(F.transform_keys("m", lambda k, v: F.lit("x"))).collect(),
        lambda spark, F: maps(spark).select(F.transform_keys("m", lambda k, v: F.lit(None).cast("string"))).collect(),
        lambda spark, F: maps(spark).distinct().collect(),
        lambda spark, F: spark.sql("SELECT map_zip_with(map(1, 2), map('a', 3), (k, a, b) -> a + b)").collect(),
    ]
    for program in programs:
        assert error_class(lambda: program(ours, F)) == error_class(lambda: program(theirs, PF))
    def message(run: Callable[[], Any]) -> str:
        with pytest.raises(Exception) as caught:
            run()
        found = re.search(r"Illegal sequence boundaries: [^\n]*?by -?\d+", str(caught.value))
        return found.group(0) if found else str(caught.value)
    for query in ("SELECT sequence(1, 5, -1)", "SELECT sequence(1, 5, 0)"):
        mine, ref = message(lambda: ours.sql(query).collect()), message(lambda: theirs.sql(query).collect())
        assert ref.startswith("Illegal sequence boundaries") and mine == ref
