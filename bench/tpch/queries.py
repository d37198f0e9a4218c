"""TPC-H queries 1, 3, 5, 6 and 10, twice: with PySpark's DataFrame API and as SQL for DuckDB.

The DataFrame versions are functions ``q1(spark, F, tables)`` and so on, where ``F`` is
the engine's ``functions`` module and ``tables`` maps a table name to a DataFrame; the very
same function runs on sparkctl and on PySpark. They use only filter, join on column
conditions, groupBy/agg, select, orderBy, limit, arithmetic and date literals
(``F.lit(datetime.date(...))``), in the join order a planner would pick from the SQL.

The SQL versions are the specification's query text with the substitution parameters of
its validation run (Q1 DELTA 90; Q3 BUILDING, 1995-03-15; Q5 ASIA, 1994-01-01; Q6
1994-01-01, 0.06, 24; Q10 1993-10-01), run by :func:`reference` over the same Parquet files.
"""
from __future__ import annotations

import datetime
import math
import os
from typing import Any, Callable

QUERIES = (1, 3, 5, 6, 10)
#: queries whose result order is defined by their ORDER BY (all five here)
ORDERED = frozenset(QUERIES)

Q1_SHIP_BEFORE = datetime.date(1998, 12, 1) - datetime.timedelta(days=90)
Q3_SEGMENT, Q3_DATE = "BUILDING", datetime.date(1995, 3, 15)
Q5_REGION, Q5_FROM, Q5_TO = "ASIA", datetime.date(1994, 1, 1), datetime.date(1995, 1, 1)
Q6_FROM, Q6_TO, Q6_DISCOUNT, Q6_QUANTITY = datetime.date(1994, 1, 1), datetime.date(1995, 1, 1), 0.06, 24
Q10_FROM, Q10_TO = datetime.date(1993, 10, 1), datetime.date(1994, 1, 1)

Tables = dict[str, Any]


def _revenue(F: Any) -> Any:
    return F.col("l_extendedprice") * (1 - F.col("l_discount"))


# --------------------------------------------------------------------------- DataFrame API
def q1(spark: Any, F: Any, t: Tables) -> Any:
    """Pricing summary report."""
    disc_price = F.col("l_extendedprice") * (1 - F.col("l_discount"))
    return (t["lineitem"].filter(F.col("l_shipdate") <= F.lit(Q1_SHIP_BEFORE))
            .groupBy("l_returnflag", "l_linestatus")
            .agg(F.sum("l_quantity").alias("sum_qty"), F.sum("l_extendedprice").alias("sum_base_price"),
                 F.sum(disc_price).alias("sum_disc_price"),
                 F.sum(disc_price * (1 + F.col("l_tax"))).alias("sum_charge"),
                 F.avg("l_quantity").alias("avg_qty"), F.avg("l_extendedprice").alias("avg_price"),
                 F.avg("l_discount").alias("avg_disc"), F.count(F.lit(1)).alias("count_order"))
            .orderBy("l_returnflag", "l_linestatus"))


def q3(spark: Any, F: Any, t: Tables) -> Any:
    """Shipping priority: the 10 unshipped orders of a segment with the highest revenue."""
    customer = t["customer"].filter(F.col("c_mktsegment") == Q3_SEGMENT)
    orders = t["orders"].filter(F.col("o_orderdate") < F.lit(Q3_DATE))
    lineitem = t["lineitem"].filter(F.col("l_shipdate") > F.lit(Q3_DATE))
    return (customer.join(orders, F.col("c_custkey") == F.col("o_custkey"))
            .join(lineitem, F.col("l_orderkey") == F.col("o_orderkey"))
            .groupBy("l_orderkey", "o_orderdate", "o_shippriority")
            .agg(F.sum(_revenue(F)).alias("revenue"))
            .select("l_orderkey", "revenue", "o_orderdate", "o_shippriority")
            .orderBy(F.col("revenue").desc(), F.col("o_orderdate"))
            .limit(10))


def q5(spark: Any, F: Any, t: Tables) -> Any:
    """Local supplier volume: revenue of a region's nations from suppliers and customers of
    the same nation, over one year."""
    region = t["region"].filter(F.col("r_name") == Q5_REGION)
    orders = t["orders"].filter((F.col("o_orderdate") >= F.lit(Q5_FROM)) & (F.col("o_orderdate") < F.lit(Q5_TO)))
    return (region.join(t["nation"], F.col("r_regionkey") == F.col("n_regionkey"))
            .join(t["supplier"], F.col("n_nationkey") == F.col("s_nationkey"))
            .join(t["lineitem"], F.col("s_suppkey") == F.col("l_suppkey"))
            .join(orders, F.col("l_orderkey") == F.col("o_orderkey"))
            .join(t["customer"], (F.col("o_custkey") == F.col("c_custkey"))
                  & (F.col("c_nationkey") == F.col("s_nationkey")))
            .groupBy("n_name")
            .agg(F.sum(_revenue(F)).alias("revenue"))
            .orderBy(F.col("revenue").desc()))


def q6(spark: Any, F: Any, t: Tables) -> Any:
    """Forecasting revenue change: one scan, one sum."""
    shipdate, discount = F.col("l_shipdate"), F.col("l_discount")
    return (t["lineitem"]
            .filter((shipdate >= F.lit(Q6_FROM)) & (shipdate < F.lit(Q6_TO))
                    & discount.between(round(Q6_DISCOUNT - 0.01, 2), round(Q6_DISCOUNT + 0.01, 2))
                    & (F.col("l_quantity") < Q6_QUANTITY))
            .agg(F.sum(F.col("l_extendedprice") * discount).alias("revenue")))


def q10(spark: Any, F: Any, t: Tables) -> Any:
    """Returned item reporting: the 20 customers who lost the most revenue to returns in a quarter."""
    orders = t["orders"].filter((F.col("o_orderdate") >= F.lit(Q10_FROM)) & (F.col("o_orderdate") < F.lit(Q10_TO)))
    lineitem = t["lineitem"].filter(F.col("l_returnflag") == "R")
    return (t["customer"].join(orders, F.col("c_custkey") == F.col("o_custkey"))
            .join(lineitem, F.col("l_orderkey") == F.col("o_orderkey"))
            .join(t["nation"], F.col("c_nationkey") == F.col("n_nationkey"))
            .groupBy("c_custkey", "c_name", "c_acctbal", "c_phone", "n_name", "c_address", "c_comment")
            .agg(F.sum(_revenue(F)).alias("revenue"))
            .select("c_custkey", "c_name", "revenue", "c_acctbal", "n_name", "c_address", "c_phone", "c_comment")
            .orderBy(F.col("revenue").desc())
            .limit(20))


DATAFRAME_QUERIES: dict[int, Callable[[Any, Any, Tables], Any]] = {1: q1, 3: q3, 5: q5, 6: q6, 10: q10}

#: the tables each query reads
TABLES_OF = {1: ("lineitem",), 3: ("customer", "orders", "lineitem"),
             5: ("customer", "orders", "lineitem", "supplier", "nation", "region"), 6: ("lineitem",),
             10: ("customer", "orders", "lineitem", "nation")}


def read_tables(spark: Any, paths: dict[str, str], names: Any = None) -> Tables:
    """Table name -> ``spark.read.parquet(directory)`` (lazy: nothing is read yet)."""
    return {name: spark.read.parquet(paths[name]) for name in (names or paths)}


# --------------------------------------------------------------------------- SQL (DuckDB)
SQL = {
    1: """
select l_returnflag, l_linestatus, sum(l_quantity) as sum_qty, sum(l_extendedprice) as sum_base_price,
       sum(l_extendedprice * (1 - l_discount)) as sum_disc_price,
       sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) as sum_charge, avg(l_quantity) as avg_qty,
       avg(l_extendedprice) as avg_price, avg(l_discount) as avg_disc, count(*) as count_order
from lineitem
where l_shipdate <= date '1998-12-01' - interval '90' day
group by l_returnflag, l_linestatus
order by l_returnflag, l_linestatus""",
    3: """
select l_orderkey, sum(l_extendedprice * (1 - l_discount)) as revenue, o_orderdate, o_shippriority
from customer, orders, lineitem
where c_mktsegment = 'BUILDING' and c_custkey = o_custkey and l_orderkey = o_orderkey
  and o_orderdate < date '1995-03-15' and l_shipdate > date '1995-03-15'
group by l_orderkey, o_orderdate, o_shippriority
order by revenue desc, o_orderdate
limit 10""",
    5: """
select n_name, sum(l_extendedprice * (1 - l_discount)) as revenue
from customer, orders, lineitem, supplier, nation, region
where c_custkey = o_custkey and l_orderkey = o_orderkey and l_suppkey = s_suppkey
  and c_nationkey = s_nationkey and s_nationkey = n_nationkey and n_regionkey = r_regionkey
  and r_name = 'ASIA' and o_orderdate >= date '1994-01-01' and o_orderdate < date '1994-01-01' + interval '1' year
group by n_name
order by revenue desc""",
    6: """
select sum(l_extendedprice * l_discount) as revenue
from lineitem
where l_shipdate >= date '1994-01-01' and l_shipdate < date '1994-01-01' + interval '1' year
  and l_discount between 0.06 - 0.01 and 0.06 + 0.01 and l_quantity < 24""",
    10: """
select c_custkey, c_name, sum(l_extendedprice * (1 - l_discount)) as revenue, c_acctbal, n_name, c_address,
       c_phone, c_comment
from customer, orders, lineitem, nation
where c_custkey = o_custkey and l_orderkey = o_orderkey and o_orderdate >= date '1993-10-01'
  and o_orderdate < date '1993-10-01' + interval '3' month and l_returnflag = 'R' and c_nationkey = n_nationkey
group by c_custkey, c_name, c_acctbal, c_phone, n_name, c_address, c_comment
order by revenue desc
limit 20""",
}


def register(con: Any, path: str) -> None:
    """Views over the Parquet files under ``path`` (one directory a table) in a DuckDB connection."""
    for name in sorted(os.listdir(path)):
        if not os.path.isdir(os.path.join(path, name)):
            continue
        glob = os.path.join(path, name, "*.parquet").replace("'", "''")
        con.execute(f"create or replace view {name} as select * from read_parquet('{glob}')")


def reference(con: Any, n: int, path: str) -> list[tuple]:
    """Query ``n``'s rows as DuckDB answers it over the Parquet files under ``path``."""
    register(con, path)
    return [tuple(row) for row in con.execute(SQL[n]).fetchall()]


# --------------------------------------------------------------------------- comparing answers
def _close(a: Any, b: Any, rel: float) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)
    return a == b


def difference(got: list[tuple], expected: list[tuple], ordered: bool, rel: float = 1e-6) -> str | None:
    """None when ``got`` has ``expected``'s rows (in its order if ``ordered``; doubles within
    ``rel``, as engines add in different orders), else what differs first."""
    if len(got) != len(expected):
        return f"{len(got)} rows, expected {len(expected)}"
    if not ordered:
        got, expected = sorted(got, key=repr), sorted(expected, key=repr)
    for i, (g, e) in enumerate(zip(got, expected)):
        if len(g) != len(e) or not all(_close(x, y, rel) for x, y in zip(g, e)):
            return f"row {i}: {g} != expected {e}"
    return None
