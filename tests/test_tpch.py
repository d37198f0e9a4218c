"""TPC-H queries 1, 3, 5, 6 and 10 on sparkctl DataFrames return DuckDB's answers.

The eight tables are generated at scale factor 0.01 (lineitem about 60k rows, orders and
lineitem in several files) into a temporary directory; each query, written with PySpark's
DataFrame API in bench/tpch/queries.py, runs on sparkctl over those Parquet files, on
``local[2]`` and on a two-worker cluster, and must give the rows DuckDB gives for the
specification's SQL text over the same files: the same rows, in the same order where the
query orders them, doubles within a relative 1e-6 (the engines add in different orders).
The generator itself is checked against the specification's rules with DuckDB.
"""
from __future__ import annotations

import datetime
import os
from typing import Any, Iterator

import pytest

pytest.importorskip("pyarrow")
duckdb = pytest.importorskip("duckdb", reason="duckdb (the test extra) computes the reference TPC-H answers")

from bench.tpch import datagen  # noqa: E402
from bench.tpch.queries import DATAFRAME_QUERIES, ORDERED, QUERIES, TABLES_OF, difference, reference  # noqa: E402

pytestmark = pytest.mark.timeout(120)

SF = 0.01
MASTERS = ["local[2]", "local-cluster[2,1,1024]"]
REL = 1e-6

#: query -> (what sparkctl lacks, text of the error it raises meanwhile); such a query's
#: test is an expected failure while the error is that one, and passes once it is fixed
KNOWN_GAPS: dict[int, tuple[str, str]] = {}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = str(tmp_path_factory.mktemp("tpch") / "sf0_01")
    datagen.generate(out, SF, files=3)
    return out


@pytest.fixture(scope="module")
def con() -> Iterator[Any]:
    connection = duckdb.connect()
    yield connection
    connection.close()


@pytest.fixture(scope="module", params=MASTERS)
def spark(request: pytest.FixtureRequest) -> Iterator[Any]:
    from sparkctl.sql import SparkSession
    session = (SparkSession.builder.master(request.param).appName("tpch")
               .config("spark.ui.enabled", "false").getOrCreate())
    yield session
    session.stop()


# ---------------------------------------------------------------------------- the queries
@pytest.mark.parametrize("n", QUERIES)
def test_query_matches_duckdb(spark: Any, con: Any, data: str, n: int) -> None:
    from sparkctl.sql import functions as F
    tables = {name: spark.read.parquet(os.path.join(data, name)) for name in TABLES_OF[n]}
    expected = reference(con, n, data)
    assert expected, "the generated data should give every query rows"
    try:
        got = [tuple(row) for row in DATAFRAME_QUERIES[n](spark, F, tables).collect()]
    except Exception as e:  # noqa: BLE001 - a known gap is told apart by its message
        gap = KNOWN_GAPS.get(n)
        if gap and gap[1] in str(e):
            pytest.xfail(f"Q{n} needs {gap[0]}")
        raise
    problem = difference(got, expected, n in ORDERED, REL)
    assert problem is None, f"Q{n} on {spark.sparkContext.master}: {problem}"


def test_query_columns_are_the_specification_s(spark: Any, data: str) -> None:
    from sparkctl.sql import functions as F
    tables = {name: spark.read.parquet(os.path.join(data, name)) for name in TABLES_OF[10]}
    assert DATAFRAME_QUERIES[10](spark, F, tables).columns == [
        "c_custkey", "c_name", "revenue", "c_acctbal", "n_name", "c_address", "c_phone", "c_comment"]
    tables = {name: spark.read.parquet(os.path.join(data, name)) for name in TABLES_OF[1]}
    assert DATAFRAME_QUERIES[1](spark, F, tables).columns[:2] == ["l_returnflag", "l_linestatus"]


# ---------------------------------------------------------------------------- the generator
def _one(con: Any, data: str, sql: str) -> Any:
    from bench.tpch.queries import register
    register(con, data)
    return con.execute(sql).fetchone()


def test_cardinalities_and_keys(con: Any, data: str) -> None:
    sizes = datagen.cardinalities(SF)
    for table in ("region", "nation", "supplier", "customer", "part", "partsupp", "orders"):
        assert _one(con, data, f"select count(*) from {table}")[0] == sizes[table]
    lines, orders = _one(con, data, "select count(*), count(distinct l_orderkey) from lineitem")
    assert orders == sizes["orders"] and 3.5 * orders < lines < 4.5 * orders
    assert len(os.listdir(os.path.join(data, "lineitem"))) == 3
    # primary keys unique, foreign keys present
    assert _one(con, data, "select count(*) - count(distinct o_orderkey) from orders")[0] == 0
    assert _one(con, data, "select count(*) - count(distinct (l_orderkey, l_linenumber)) from lineitem")[0] == 0
    assert _one(con, data, "select count(*) from lineitem l anti join partsupp ps "
                           "on l_partkey = ps_partkey and l_suppkey = ps_suppkey")[0] == 0
    assert _one(con, data, "select count(*) from orders where o_custkey % 3 = 0 or o_custkey > "
                           f"{sizes['customer']}")[0] == 0
    assert _one(con, data, "select count(*) from nation join region on n_regionkey = r_regionkey")[0] == 25


def test_value_rules(con: Any, data: str) -> None:
    current = datetime.date(1995, 6, 17)
    bad = _one(con, data, f"""
        select count(*) filter (where (l_receiptdate <= date '{current}') <> (l_returnflag in ('R', 'A'))),
               count(*) filter (where l_linestatus <> case when l_shipdate > date '{current}' then 'O' else 'F' end),
               count(*) filter (where l_quantity not between 1 and 50 or l_discount not between 0 and 0.1
                                 or l_tax not between 0 and 0.08),
               count(*) filter (where l_shipdate <= o_orderdate or l_shipdate > o_orderdate + 121
                                 or l_receiptdate <= l_shipdate or l_receiptdate > l_shipdate + 30),
               count(*) filter (where abs(l_extendedprice - l_quantity * p_retailprice) > 0.006)
        from lineitem join orders on l_orderkey = o_orderkey join part on l_partkey = p_partkey""")
    assert bad == (0, 0, 0, 0, 0)
    lo, hi = _one(con, data, "select min(o_orderdate), max(o_orderdate) from orders")
    assert datetime.date(1992, 1, 1) <= lo and hi <= datetime.date(1998, 8, 2)
    # the order's status and total price come from its lines
    mismatched = _one(con, data, """
        select count(*) from orders join (
            select l_orderkey, case when bool_and(l_linestatus = 'F') then 'F'
                                    when bool_and(l_linestatus = 'O') then 'O' else 'P' end as status,
                   sum(l_extendedprice * (1 + l_tax) * (1 - l_discount)) as total
            from lineitem group by l_orderkey) on o_orderkey = l_orderkey
        where o_orderstatus <> status or abs(o_totalprice - total) > 0.01""")[0]
    assert mismatched == 0
    segments = _one(con, data, "select list(distinct c_mktsegment order by c_mktsegment) from customer")[0]
    assert segments == sorted(datagen.SEGMENTS)


def test_same_seed_same_data(tmp_path: Any) -> None:
    import pyarrow.parquet as pq
    a = datagen.generate(str(tmp_path / "a"), 0.002, seed=7, files=2)
    b = datagen.generate(str(tmp_path / "b"), 0.002, seed=7, files=2)
    for table in ("customer", "orders", "lineitem"):
        assert pq.ParquetDataset(a[table]).read().equals(pq.ParquetDataset(b[table]).read())
