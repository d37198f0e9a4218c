"""spark.sql through sqlglot: sparkctl.sql.sql_parser translates SQL into DataFrame API calls.

The proof is real PySpark: the translation only uses PySpark's public DataFrame API, so the
slow tests run it on PySpark's own DataFrames and compare with ``spark.sql(query)`` on the
same temporary views (columns, schema, rows). The fast tests check the one-line errors for
text that does not parse and constructs the translator refuses, and, through a recording
fake, which DataFrame calls a few queries make.
"""
from __future__ import annotations

import datetime as dt
import math
import types
from typing import Any, Iterator

import pytest

from sparkctl.sql.sql_parser import (SqlNotSupportedError, SqlParseError, expression_to_column,
                                     sql_to_dataframe)
from tests.sql_views import pyspark_with_views

pytestmark = pytest.mark.timeout(300)


# ----------------------------------------------------------------------------- the queries
QUERIES = [
    # projections, literals, operators, names
    "SELECT * FROM t",
    "SELECT id, name FROM t",
    "SELECT t.* FROM t",
    "SELECT id + 1, x * 2, n - id, x / 2, id % 3 FROM t",
    "SELECT id AS k, upper(name) AS up FROM t",
    "SELECT 1 + 1",
    "SELECT 'a', 1.5, 2, 1e3, NULL, TRUE, DATE '2020-01-01'",
    "SELECT -id, NOT flag, id = 2, id <> 2, id >= 2, id < 2 FROM t",
    "SELECT name || '-' || grp FROM t",
    "SELECT CAST(id AS STRING), CAST(x AS INT), CAST(price AS DOUBLE), CAST(price AS STRING) FROM t",
    "SELECT coalesce(x, 0.0), nvl(name, 'none'), ifnull(grp, 'g') FROM t",
    "SELECT lower(name), length(name), substring(name, 1, 2), concat(name, grp), trim(name) FROM t",
    "SELECT substr(name, 2), substr(name, 1, 3), ucase(name), char_length(grp), "
    "stddev(x) OVER (PARTITION BY grp) FROM t",
    "SELECT round(x, 1), abs(n), sqrt(abs(x)), floor(x), ceil(x) FROM t",
    "SELECT CASE WHEN x > 2 THEN 'big' WHEN x > 1 THEN 'mid' ELSE 'small' END AS size FROM t",
    "SELECT CASE grp WHEN 'a' THEN 1 WHEN 'b' THEN 2 END FROM t",
    "SELECT year(d), month(d), dayofmonth(d), date_add(d, 3), datediff(d, DATE '2020-01-01') FROM t",
    "SELECT d + INTERVAL 3 DAY AS later, d - INTERVAL '1' MONTH AS earlier FROM t",
    "SELECT x IS NULL, name IS NOT NULL FROM t",
    "SELECT id FROM t WHERE id BETWEEN 2 AND 4",
    "SELECT id FROM t WHERE id NOT BETWEEN 2 AND 4",
    "SELECT id FROM t WHERE grp IN ('a', 'c')",
    "SELECT id FROM t WHERE grp NOT IN ('a', 'c')",
    "SELECT id FROM t WHERE name LIKE 'a%'",
    "SELECT id FROM t WHERE name NOT LIKE '%e%'",
    "SELECT id FROM t WHERE name RLIKE '^[a-c]'",
    "SELECT id FROM t WHERE x IS NULL OR (flag AND n > 10)",
    "SELECT id FROM t WHERE d >= DATE '2020-01-03' AND ts < TIMESTAMP '2020-01-05 00:00:00'",
    # DISTINCT, ORDER BY, LIMIT
    "SELECT DISTINCT grp FROM t",
    "SELECT id, x FROM t ORDER BY x DESC NULLS LAST, id",
    "SELECT id, x FROM t ORDER BY x ASC NULLS LAST, id LIMIT 3",
    "SELECT id, name FROM t ORDER BY 2 DESC, 1",
    "SELECT id AS k FROM t ORDER BY k DESC",
    "SELECT name FROM t ORDER BY id DESC",
    "SELECT DISTINCT grp FROM t ORDER BY grp NULLS LAST",
    "SELECT * FROM t ORDER BY id LIMIT 2",
    # aggregates
    "SELECT count(*) FROM t",
    "SELECT count(*), count(x), count(DISTINCT grp), sum(n), avg(x), min(name), max(d) FROM t",
    "SELECT grp, count(*) AS c, sum(x) FROM t GROUP BY grp",
    "SELECT grp, sum(x) * 2, max(n) - min(n) FROM t GROUP BY grp",
    "SELECT grp, count(1) FROM t GROUP BY 1",
    "SELECT id % 2, count(*) FROM t GROUP BY id % 2",
    "SELECT id % 2 AS parity, sum(n) FROM t GROUP BY parity",
    "SELECT grp, flag, count(*) FROM t GROUP BY grp, flag",
    "SELECT grp, sum(n) FROM t GROUP BY grp HAVING sum(n) > 10",
    "SELECT grp FROM t GROUP BY grp HAVING count(*) > 1 AND max(x) > 1",
    "SELECT grp, sum(n) AS total FROM t GROUP BY grp HAVING total > 5",
    "SELECT grp, count(*) AS c FROM t GROUP BY grp ORDER BY c DESC, grp",
    "SELECT grp FROM t GROUP BY grp ORDER BY sum(n) DESC NULLS LAST, grp",
    "SELECT grp, sum(DISTINCT n), collect_set(id) IS NOT NULL FROM t GROUP BY grp",
    "SELECT grp, avg(DISTINCT n), count(DISTINCT n), sum(n) FROM t GROUP BY grp",
    "SELECT avg(DISTINCT x), max(DISTINCT name), min(DISTINCT n), count(DISTINCT grp, n) FROM t",
    "SELECT grp, count(DISTINCT n) + 1 AS c, sum(DISTINCT n) / count(*) AS r FROM t GROUP BY grp "
    "HAVING count(DISTINCT n) > 1",
    "SELECT grp, sum(price), avg(price) FROM t GROUP BY grp",
    "SELECT t.grp, sum(t.n) FROM t GROUP BY t.grp",
    "SELECT DISTINCT grp, count(*) FROM t GROUP BY grp",
    # windows
    "SELECT id, row_number() OVER (PARTITION BY grp ORDER BY id) AS rn FROM t",
    "SELECT id, rank() OVER (ORDER BY n DESC) FROM t",
    "SELECT id, sum(n) OVER (PARTITION BY grp ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS s "
    "FROM t",
    "SELECT id, avg(x) OVER (PARTITION BY grp) FROM t",
    "SELECT id, lag(n, 1) OVER (ORDER BY id), lead(n) OVER (ORDER BY id) FROM t",
    # (unaliased, Spark names the frame "1 PRECEDING", Window.rowsBetween(-1, 1) "-1 FOLLOWING")
    "SELECT id, sum(n) OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING) AS s3 FROM t",
    "SELECT id, date_format(d, 'yyyy/MM'), to_date(CAST(d AS STRING), 'yyyy-MM-dd') FROM t",
    "SELECT grp, sum(n), rank() OVER (ORDER BY sum(n) DESC) AS r FROM t GROUP BY grp",
    # joins
    "SELECT t.id, u.label FROM t JOIN u ON t.id = u.id",
    "SELECT t.id, u.label FROM t INNER JOIN u ON t.id = u.id AND u.w > 1",
    "SELECT a.id, b.label FROM t a LEFT JOIN u b ON a.id = b.id",
    "SELECT a.id, b.label FROM t a LEFT OUTER JOIN u b ON a.id = b.id",
    "SELECT t.id, u.id FROM t RIGHT JOIN u ON t.id = u.id",
    "SELECT t.id, u.id FROM t FULL OUTER JOIN u ON t.id = u.id",
    "SELECT * FROM t JOIN u USING (id)",
    "SELECT id, label FROM t LEFT JOIN u USING (id)",
    "SELECT * FROM t LEFT SEMI JOIN u ON t.id = u.id",
    "SELECT * FROM t LEFT ANTI JOIN u ON t.id = u.id",
    "SELECT t.id, u.w FROM t CROSS JOIN u",
    "SELECT t.id, u.w FROM t, u WHERE t.id = u.id AND u.w > 0",
    "SELECT u.label, count(*) FROM t JOIN u ON t.id = u.id GROUP BY u.label",
    # subqueries, CTEs, set operations
    "SELECT s.k, s.total FROM (SELECT grp AS k, sum(n) AS total FROM t GROUP BY grp) s WHERE s.total > 0",
    "SELECT * FROM (SELECT id, x FROM t WHERE x > 1) WHERE id > 1",
    "WITH a AS (SELECT id, n FROM t WHERE n > 3), b AS (SELECT id FROM a WHERE id < 5) SELECT * FROM b",
    "WITH g AS (SELECT grp, count(*) AS c FROM t GROUP BY grp) SELECT t.id, g.c FROM t JOIN g ON t.grp = g.grp",
    "SELECT id FROM t UNION SELECT id FROM u",
    "SELECT id FROM t UNION ALL SELECT id FROM u",
    "SELECT id FROM t INTERSECT SELECT id FROM u",
    "SELECT id FROM t EXCEPT SELECT id FROM u",
    "SELECT id FROM t UNION ALL SELECT id FROM u ORDER BY id DESC LIMIT 4",
    "SELECT id FROM t WHERE id IN (SELECT id FROM u)",
    "SELECT id FROM t WHERE id NOT IN (SELECT id FROM u WHERE w > 1)",
    "SELECT id FROM t WHERE x > (SELECT avg(x) FROM t)",
    "SELECT id FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.id = t.id AND u.w > 1)",
    "SELECT id FROM t WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.id = t.id)",
    "SELECT grp, count(*) FROM t GROUP BY grp HAVING count(*) >= (SELECT count(*) FROM u) - 3",
    # more corners
    "SELECT grp, count(*) FROM t GROUP BY grp ORDER BY count(*) DESC, grp NULLS FIRST",
    "SELECT sum(x), count(*) FROM t WHERE 1 = 0",
    "SELECT * FROM t a JOIN t b ON a.id = b.id",
    "SELECT a.*, b.label FROM t a JOIN u b ON a.id = b.id",
    "SELECT id FROM t ORDER BY x + n DESC NULLS FIRST, id",
    "SELECT if(x > 1, 'y', 'n'), greatest(id, n), least(id, n) FROM t",
    "SELECT count(*) FROM t, u",
    "SELECT DISTINCT grp FROM t ORDER BY 1 DESC",
    "SELECT id FROM t LIMIT 0",
    "SELECT id, name FROM t WHERE id IN (1, 2) AND grp IS NOT NULL",
    "SELECT grp, sum(n) FROM t GROUP BY grp ORDER BY 2 DESC NULLS FIRST",
    "SELECT t1.id FROM t t1 WHERE t1.id IN (SELECT id FROM u) AND t1.x > 0",
    "SELECT id FROM t INTERSECT ALL SELECT id FROM u",
    "SELECT id FROM u EXCEPT ALL SELECT id FROM t",
    "SELECT * FROM (SELECT * FROM (SELECT id, n FROM t) a WHERE n > 2) b ORDER BY id",
    "SELECT id, percent_rank() OVER (ORDER BY id), dense_rank() OVER (PARTITION BY grp ORDER BY n) FROM t",
    "SELECT grp, max(x), min(x) FROM t WHERE x IS NOT NULL GROUP BY grp HAVING min(x) < 2 ORDER BY grp",
    "SELECT u.label, t.name FROM u LEFT JOIN t ON u.id = t.id AND t.flag WHERE u.w IS NOT NULL",
    "SELECT CAST(d AS TIMESTAMP), CAST(ts AS DATE), d = DATE '2020-01-01' FROM t",
    "SELECT TIMESTAMP '2020-01-05 10:30:00', TIMESTAMP '2020-01-05', ts > TIMESTAMP '2020-01-04 12:00:00' FROM t",
    "SELECT max(d), min(ts), sum(price) * 2 FROM t",
    "SELECT grp AS g, count(*) FROM t GROUP BY grp HAVING g IS NOT NULL",
    "SELECT id FROM t WHERE (id > 1 AND id < 6) OR NOT (grp = 'a')",
]

# TPC-H queries 1, 3, 5, 6, 10 (the specification's text, its default substitution parameters)
TPCH = {
    "q1": """
        SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty, sum(l_extendedprice) AS sum_base_price,
               sum(l_extendedprice * (1 - l_discount)) AS sum_disc_price,
               sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge,
               avg(l_quantity) AS avg_qty, avg(l_extendedprice) AS avg_price, avg(l_discount) AS avg_disc,
               count(*) AS count_order
        FROM lineitem
        WHERE l_shipdate <= DATE '1998-12-01' - INTERVAL '90' DAY
        GROUP BY l_returnflag, l_linestatus
        ORDER BY l_returnflag, l_linestatus""",
    "q3": """
        SELECT l_orderkey, sum(l_extendedprice * (1 - l_discount)) AS revenue, o_orderdate, o_shippriority
        FROM customer, orders, lineitem
        WHERE c_mktsegment = 'BUILDING' AND c_custkey = o_custkey AND l_orderkey = o_orderkey
          AND o_orderdate < DATE '1995-03-15' AND l_shipdate > DATE '1995-03-15'
        GROUP BY l_orderkey, o_orderdate, o_shippriority
        ORDER BY revenue DESC, o_orderdate, l_orderkey
        LIMIT 10""",
    "q5": """
        SELECT n_name, sum(l_extendedprice * (1 - l_discount)) AS revenue
        FROM customer, orders, lineitem, supplier, nation, region
        WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey AND l_suppkey = s_suppkey
          AND c_nationkey = s_nationkey AND s_nationkey = n_nationkey AND n_regionkey = r_regionkey
          AND r_name = 'ASIA' AND o_orderdate >= DATE '1994-01-01'
          AND o_orderdate < DATE '1994-01-01' + INTERVAL '1' YEAR
        GROUP BY n_name
        ORDER BY revenue DESC""",
    "q6": """
        SELECT sum(l_extendedprice * l_discount) AS revenue
        FROM lineitem
        WHERE l_shipdate >= DATE '1994-01-01' AND l_shipdate < DATE '1994-01-01' + INTERVAL '1' YEAR
          AND l_discount BETWEEN 0.06 - 0.01 AND 0.06 + 0.01 AND l_quantity < 24""",
    "q10": """
        SELECT c_custkey, c_name, sum(l_extendedprice * (1 - l_discount)) AS revenue, c_acctbal, n_name,
               c_address, c_phone, c_comment
        FROM customer, orders, lineitem, nation
        WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey AND o_orderdate >= DATE '1993-10-01'
          AND o_orderdate < DATE '1993-10-01' + INTERVAL '3' MONTH AND l_returnflag = 'R'
          AND c_nationkey = n_nationkey
        GROUP BY c_custkey, c_name, c_acctbal, c_phone, n_name, c_address, c_comment
        ORDER BY revenue DESC, c_custkey
        LIMIT 20""",
}


# ----------------------------------------------------------------------------- PySpark reference
@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    with pyspark_with_views("sql-parser-reference") as session:
        yield session


def _normal(value: Any) -> Any:
    """Rows compared as values; doubles to 9 significant digits (sums may add in another order)."""
    if isinstance(value, float):
        return value if math.isnan(value) or value == 0 else float(f"{value:.9g}")
    if isinstance(value, (list, tuple)):
        return tuple(_normal(v) for v in value)
    return value


def _sort_key(row: tuple) -> tuple:
    return tuple((v is None, str(type(v)), v if v is not None else 0) for v in row)


def _fields(schema: Any) -> list[tuple]:
    """Name, type and nullability of each field (metadata holds Spark-internal markers)."""
    return [(f.name, f.dataType, f.nullable) for f in schema.fields]


def _translate(spark: Any, query: str) -> Any:
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    return sql_to_dataframe(query, spark.table, F, Window, one_row=lambda: spark.range(1).drop("id"))


def _check_same(spark: Any, query: str) -> None:
    expected = spark.sql(query)
    actual = _translate(spark, query)
    assert actual.columns == expected.columns, query
    assert _fields(actual.schema) == _fields(expected.schema), query
    want = [_normal(tuple(r)) for r in expected.collect()]
    got = [_normal(tuple(r)) for r in actual.collect()]
    if "ORDER BY" not in query.upper():
        want.sort(key=_sort_key)
        got.sort(key=_sort_key)
    assert got == want, query


@pytest.mark.slow
@pytest.mark.parametrize("query", QUERIES)
def test_query_matches_spark_sql(spark: Any, query: str) -> None:
    _check_same(spark, query)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TPCH))
def test_tpch_query_matches_spark_sql(spark: Any, name: str) -> None:
    query = TPCH[name]
    assert spark.sql(query).count() > 0, f"{name}: the mini tables should give rows"
    _check_same(spark, query)


@pytest.mark.slow
def test_expression_to_column_matches_selectExpr(spark: Any) -> None:
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    df = spark.table("t")
    for text in ["id + 1", "upper(name) AS up", "CASE WHEN x > 1 THEN 'y' ELSE 'n' END", "coalesce(x, 0.0) * 2",
                 "row_number() OVER (PARTITION BY grp ORDER BY id)", "id IN (1, 2)", "d + INTERVAL 1 DAY AS later"]:
        expected = df.selectExpr(text)
        actual = df.select(expression_to_column(text, F, Window))
        assert actual.columns == expected.columns, text
        assert sorted(map(tuple, actual.collect()), key=_sort_key) == \
            sorted(map(tuple, expected.collect()), key=_sort_key), text


@pytest.mark.slow
@pytest.mark.parametrize("query, args", [
    ("SELECT id, name FROM t WHERE id > :low AND grp = :g", {"low": 1, "g": "a"}),
    ("SELECT id FROM t WHERE id BETWEEN ? AND ? ORDER BY id", [2, 5]),
    ("SELECT :d AS day, id FROM t WHERE d < :d", {"d": dt.date(2020, 1, 4)}),
])
def test_parameters_match_spark_sql_args(spark: Any, query: str, args: Any) -> None:
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    expected = spark.sql(query, args=args)
    actual = sql_to_dataframe(query, spark.table, F, Window, args=args)
    assert _fields(actual.schema) == _fields(expected.schema)
    assert sorted(map(tuple, actual.collect()), key=_sort_key) == sorted(map(tuple, expected.collect()), key=_sort_key)


@pytest.mark.slow
def test_unknown_view_raises_the_callers_error(spark: Any) -> None:
    from pyspark.errors import AnalysisException
    with pytest.raises(AnalysisException):
        _translate(spark, "SELECT * FROM no_such_view")


# ----------------------------------------------------------------------------- errors (no JVM)
def _fail_tables(name: str) -> Any:
    raise AssertionError(f"no table should be read: {name}")


@pytest.mark.parametrize("query, construct", [
    ("CREATE TABLE x (a INT)", "CREATE"),
    ("INSERT INTO t SELECT 1", "INSERT"),
    ("SELECT a FROM range(10)", "table-valued function"),
    ("SELECT a FROM t LATERAL VIEW explode(x) y AS z", "LATERAL VIEW"),
    ("SELECT a FROM t PIVOT (sum(x) FOR y IN (1, 2))", "PIVOT"),
    ("SELECT a, sum(x) FROM t GROUP BY ROLLUP(a)", "ROLLUP"),
    ("SELECT a, sum(x) FROM t GROUP BY CUBE(a)", "CUBE"),
    ("SELECT a, (SELECT max(b) FROM u) FROM t", "scalar subquery"),
    ("SELECT a FROM t WHERE EXISTS (SELECT 1 FROM u GROUP BY b)", "EXISTS"),
    ("SELECT a FROM t WHERE x > (SELECT max(b) FROM u WHERE u.b = t.a)", "correlated scalar subquery"),
    ("SELECT a, sum(x) FROM t GROUP BY a GROUPING SETS ((a))", "GROUPING SETS"),
    ("SELECT a FROM t JOIN u ON t.a = u.a NATURAL JOIN v", "NATURAL"),
    ("SELECT a FROM t WHERE x IN (SELECT b FROM u) OR x > 1", "IN subquery"),
    ("SELECT a FROM t TABLESAMPLE (10 PERCENT)", "TABLESAMPLE"),
    ("SELECT a FROM t WINDOW w AS (ORDER BY a)", "WINDOW"),
    ("SELECT a DIV 2 FROM t", "DIV"),
])
def test_unsupported_constructs_name_themselves(query: str, construct: str) -> None:
    with pytest.raises(SqlNotSupportedError) as info:
        sql_to_dataframe(query, _Recorder.table, _Recorder("F"), _FakeWindow)
    message = str(info.value)
    assert construct in message and "\n" not in message
    assert isinstance(info.value, NotImplementedError)


def test_a_function_the_functions_module_lacks_is_named() -> None:
    functions = types.SimpleNamespace(col=_Recorder)
    with pytest.raises(SqlNotSupportedError, match=r"function no_such_function\(\) at line 1, col 8"):
        sql_to_dataframe("SELECT no_such_function(a) FROM t", _Recorder.table, functions, _FakeWindow)


def test_unsupported_error_gives_the_position() -> None:
    with pytest.raises(SqlNotSupportedError, match=r"LATERAL VIEW at line 2, col \d+"):
        sql_to_dataframe("SELECT a FROM t\nLATERAL VIEW explode(x) y AS z", _Recorder.table, _Recorder("F"),
                         _FakeWindow)


@pytest.mark.parametrize("query", ["SELECT FROM WHERE", "SELECT (1 + FROM t", "SELEC 1", "SELECT 'open"])
def test_parse_errors_are_one_line_value_errors(query: str) -> None:
    with pytest.raises(SqlParseError) as info:
        sql_to_dataframe(query, _fail_tables, None, None)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "\n" not in message and "cannot parse SQL" in message


def test_two_statements_are_refused() -> None:
    with pytest.raises(SqlParseError, match="one SQL statement"):
        sql_to_dataframe("SELECT 1; SELECT 2", _fail_tables, None, None)


# ----------------------------------------------------------------------------- which calls (fake)
class _Recorder:
    """A stand-in DataFrame/Column that records the API calls made on it."""
    calls: list[str] = []

    def __init__(self, label: str, columns: tuple[str, ...] = ("a", "b", "x")) -> None:
        self.label = label
        self.columns = list(columns)

    @classmethod
    def table(cls, name: str) -> "_Recorder":
        cls.calls.append(f"table({name})")
        return cls(name)

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> "_Recorder":
            _Recorder.calls.append(name)
            return _Recorder(f"{self.label}.{name}", tuple(self.columns))
        return call


def _recorded_operator(name: str) -> Any:
    def operator(self: _Recorder, *args: Any) -> _Recorder:
        _Recorder.calls.append(name)
        return _Recorder(f"{self.label}.{name}")
    return operator


for _op in ("__gt__", "__lt__", "__ge__", "__le__", "__eq__", "__ne__", "__and__", "__or__", "__invert__",
            "__add__", "__sub__", "__mul__", "__truediv__", "__mod__", "__neg__"):
    setattr(_Recorder, _op, _recorded_operator(_op))


class _FakeWindow:
    unboundedPreceding, unboundedFollowing, currentRow = -(1 << 63), (1 << 63) - 1, 0


def test_calls_for_a_join_aggregate_order_limit() -> None:
    _Recorder.calls = []
    sql_to_dataframe("SELECT a, count(*) AS c FROM t JOIN u USING (a) WHERE x > 1 GROUP BY a "
                     "ORDER BY c DESC LIMIT 5", _Recorder.table, _Recorder("F"), _FakeWindow)
    calls = [c for c in _Recorder.calls if c not in ("col", "lit", "count", "alias", "__gt__", "desc_nulls_last")]
    assert calls == ["table(t)", "table(u)", "join", "filter", "groupBy", "agg",
                     "select", "orderBy", "limit"], calls


def test_comma_join_with_where_becomes_an_inner_join() -> None:
    _Recorder.calls = []
    sql_to_dataframe("SELECT t.a FROM t, u WHERE t.a = u.b AND t.x > 0", _Recorder.table, _Recorder("F"), _FakeWindow)
    assert "crossJoin" not in _Recorder.calls
    assert _Recorder.calls.index("join") < _Recorder.calls.index("filter")
