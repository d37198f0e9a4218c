"""The temporary views the SQL tests query, built the same way on either engine.

``register_views`` takes any session with PySpark's ``createDataFrame`` and
``createOrReplaceTempView`` (PySpark's own, or sparkctl's), so a query's answer on
sparkctl can be compared with PySpark's on the very same rows:

    register_views(pyspark) ──▶ t, u, region … lineitem ◀── register_views(sparkctl)

``pyspark_with_views`` is the reference side as a context manager: a PySpark session with
the views registered, skipped where Spark cannot run, stopped (JVM included) on exit.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import random
from typing import Any, Iterator


D = decimal.Decimal


@contextlib.contextmanager
def pyspark_with_views(app: str) -> Iterator[Any]:
    """A PySpark session (two shuffle partitions) holding the views; the test skips without Spark."""
    from tests.spark_reference import reference_pyspark
    with reference_pyspark(app, conf={"spark.sql.shuffle.partitions": "2"}) as session:
        register_views(session)
        yield session


def register_views(spark: Any) -> None:
    """Small tables with nulls and several types, and a mini TPC-H."""
    t_rows = [
        (1, "alice", "a", 1.5, 10, dt.date(2020, 1, 1), dt.datetime(2020, 1, 1, 8), True, D("10.50")),
        (2, "bob", "b", 2.5, 3, dt.date(2020, 1, 3), dt.datetime(2020, 1, 3, 9), False, D("3.25")),
        (3, "carol", "a", None, 7, dt.date(2020, 2, 29), dt.datetime(2020, 1, 6, 10), True, None),
        (4, None, "c", 0.5, None, None, None, None, D("7.00")),
        (5, "dave", None, 3.5, 12, dt.date(2021, 3, 31), dt.datetime(2020, 1, 4, 23), False, D("1.10")),
        (6, "eve", "b", -1.0, 20, dt.date(2019, 12, 31), dt.datetime(2019, 12, 31), True, D("0.99")),
        (7, "ann", "a", 2.0, 1, dt.date(2020, 1, 5), dt.datetime(2020, 1, 5, 12), False, D("100.00")),
    ]
    spark.createDataFrame(t_rows, "id INT, name STRING, grp STRING, x DOUBLE, n BIGINT, d DATE, ts TIMESTAMP, "
                                  "flag BOOLEAN, price DECIMAL(10,2)").createOrReplaceTempView("t")
    u_rows = [(1, "one", 1), (2, "two", 2), (2, "two-b", 3), (4, "four", None), (8, "eight", 5), (None, "none", 0)]
    spark.createDataFrame(u_rows, "id INT, label STRING, w INT").createOrReplaceTempView("u")
    for name, (schema, rows) in tpch_tables().items():
        spark.createDataFrame(rows, schema).createOrReplaceTempView(name)


def tpch_tables() -> dict[str, tuple[str, list[tuple]]]:
    rng = random.Random(7)
    regions = ["AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST"]
    nations = [(i, f"NATION{i}", i % 5) for i in range(10)]
    customers = [(c, f"Customer#{c:03d}", f"addr {c}", c % 10, f"10-{c:03d}", D(rng.randint(-999, 9999)) / 100,
                  rng.choice(["BUILDING", "MACHINERY", "AUTOMOBILE"]), f"comment {c}") for c in range(1, 31)]
    suppliers = [(s, f"Supplier#{s}", (s * 3) % 10) for s in range(1, 9)]
    orders, lines = [], []
    start = dt.date(1993, 1, 1)
    for o in range(1, 121):
        date = start + dt.timedelta(days=rng.randint(0, 2000))
        orders.append((o, rng.randint(1, 30), rng.choice("OFP"), D(rng.randint(1000, 99999)) / 100, date,
                       rng.choice(["1-URGENT", "2-HIGH", "3-MEDIUM"]), f"Clerk#{o % 7}", 0, f"order {o}"))
        for line in range(1, rng.randint(1, 5) + 1):
            ship = date + dt.timedelta(days=rng.randint(1, 120))
            lines.append((o, rng.randint(1, 50), rng.randint(1, 8), line, D(rng.randint(1, 50)),
                          D(rng.randint(100, 100000)) / 100, D(rng.randint(0, 10)) / 100, D(rng.randint(0, 8)) / 100,
                          rng.choice("RAN"), rng.choice("OF"), ship, ship + dt.timedelta(days=3),
                          ship + dt.timedelta(days=9), "NONE", rng.choice(["AIR", "MAIL", "SHIP"]), f"line {o}"))
    money = "DECIMAL(15,2)"
    return {
        "region": ("r_regionkey INT, r_name STRING", [(i, r) for i, r in enumerate(regions)]),
        "nation": ("n_nationkey INT, n_name STRING, n_regionkey INT", nations),
        "customer": (f"c_custkey INT, c_name STRING, c_address STRING, c_nationkey INT, c_phone STRING, "
                     f"c_acctbal {money}, c_mktsegment STRING, c_comment STRING", customers),
        "supplier": ("s_suppkey INT, s_name STRING, s_nationkey INT", suppliers),
        "orders": (f"o_orderkey INT, o_custkey INT, o_orderstatus STRING, o_totalprice {money}, o_orderdate DATE, "
                   f"o_orderpriority STRING, o_clerk STRING, o_shippriority INT, o_comment STRING", orders),
        "lineitem": (f"l_orderkey INT, l_partkey INT, l_suppkey INT, l_linenumber INT, l_quantity {money}, "
                     f"l_extendedprice {money}, l_discount {money}, l_tax {money}, l_returnflag STRING, "
                     f"l_linestatus STRING, l_shipdate DATE, l_commitdate DATE, l_receiptdate DATE, "
                     f"l_shipinstruct STRING, l_shipmode STRING, l_comment STRING", lines),
    }
