"""The DataFrame optimizer: each rule's rewrite, results that never change (checked with
DuckDB on the same Parquet files, nulls included), and pushdown into file scans that
really reads fewer rows (row groups skipped by statistics, partition directories skipped).
"""
from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyarrow")
duckdb = pytest.importorskip("duckdb")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from sparkctl.sql import plan as lp  # noqa: E402
from sparkctl.sql.expressions import BinaryOp, Literal  # noqa: E402
from sparkctl.sql.optimizer import conjuncts, optimize  # noqa: E402

pytestmark = pytest.mark.timeout(180)

ROWS = 1000
GROUP_ROWS = 100


@pytest.fixture(scope="module")
def spark() -> Any:
    from sparkctl.sql import SparkSession
    session = SparkSession.builder.master("local[2]").appName("optimizer").config("spark.ui.enabled", "false") \
        .getOrCreate()
    yield session
    session.stop()


@pytest.fixture(scope="module")
def F() -> Any:
    from sparkctl.sql import functions
    return functions


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """t.parquet: ids 0..999 in ten row groups of 100 (sorted, so statistics can prune),
    a nullable int, a nullable string; u.parquet: a small table to join; part/: t's rows
    written by partitionBy(p) with a NULL partition."""
    root = tmp_path_factory.mktemp("optimizer")
    ids = list(range(ROWS))
    t = pa.table({"id": pa.array(ids, pa.int64()),
                  "v": pa.array([None if i % 7 == 0 else i % 13 for i in ids], pa.int32()),
                  "s": pa.array([None if i % 11 == 0 else f"s{i % 5}" for i in ids], pa.string()),
                  "d": pa.array([datetime.date(2024, 1, 1) + datetime.timedelta(days=i % 90) for i in ids])})
    pq.write_table(t, root / "t.parquet", row_group_size=GROUP_ROWS)
    u = pa.table({"k": pa.array([1, 2, 3, None, 500, 999], pa.int64()),
                  "w": pa.array(["a", None, "c", "d", "e", "f"], pa.string())})
    pq.write_table(u, root / "u.parquet")
    for p in ("x", "y", None):
        folder = root / "part" / f"p={p if p is not None else '__HIVE_DEFAULT_PARTITION__'}"
        folder.mkdir(parents=True)
        keep = [i for i in ids if ("x", "y", None)[i % 3] == p]
        pq.write_table(t.take(keep), folder / "part-0.parquet", row_group_size=GROUP_ROWS)
    return root


def nodes(plan: lp.Plan) -> list[lp.Plan]:
    out = [plan]
    for c in plan.children:
        out += nodes(c)
    return out


def ours(df: Any) -> list[tuple]:
    return sorted((tuple(r) for r in df.collect()), key=repr)


def duck(data: Path, sql: str) -> list[tuple]:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{data / 't.parquet'}')")
    con.execute(f"CREATE VIEW u AS SELECT * FROM read_parquet('{data / 'u.parquet'}')")
    con.execute(f"CREATE VIEW part AS SELECT * FROM read_parquet('{data / 'part' / '*' / '*.parquet'}', "
                f"hive_partitioning = true)")
    rows = con.execute(sql).fetchall()
    con.close()
    return sorted((tuple(None if v == "__HIVE_DEFAULT_PARTITION__" else v for v in r) for r in rows), key=repr)


def scans_of(df: Any) -> list[Any]:
    from sparkctl.sql.scan import FileScanRDD
    rdd = df._rdd_of_tables()
    found, stack = [], [rdd]
    while stack:
        r = stack.pop()
        if isinstance(r, FileScanRDD):
            found.append(r)
        stack += [d.rdd for d in r.dependencies]
    return rdd, found


def rows_read(df: Any) -> tuple[int, int]:
    """(rows the query returns, rows its scans read), from one run of its stages."""
    rdd, scans = scans_of(df)
    returned = sum(rdd.map(lambda t: t.num_rows).collect())
    return returned, sum(s.records_read.value for s in scans)


# ---------------------------------------------------------------------------- rules, one by one
def test_constant_folding_and_boolean_simplification(spark: Any, F: Any, data: Path) -> None:
    df = spark.read.parquet(str(data / "t.parquet"))
    q = df.filter((F.lit(1) + 1 == 2) & (F.col("id") < 5)).select((F.lit(6) * 7).alias("c"), "id")
    opt = optimize(q._plan)
    filters = [n for n in nodes(opt) if isinstance(n, lp.Filter)]
    assert len(filters) == 1
    # "(1 + 1) = 2 AND id < 5" is "id < 5": the literal-only conjunct was folded to true and dropped
    cond = filters[0].condition
    assert isinstance(cond, BinaryOp) and cond.op == "<" and cond.children[0].sql() == "id"
    project = next(n for n in nodes(opt) if isinstance(n, lp.Project))
    assert isinstance(project.exprs[0].child, Literal) and project.exprs[0].child.value == 6 * 7
    assert ours(q) == [(42, i) for i in range(5)]


def test_false_or_x_and_null_propagation(spark: Any, F: Any, data: Path) -> None:
    df = spark.read.parquet(str(data / "t.parquet"))
    q = df.filter(F.lit(False) | (F.col("id") == 3)).select("id", (F.col("v") + F.lit(None)).alias("n"))
    opt = optimize(q._plan)
    cond = next(n for n in nodes(opt) if isinstance(n, lp.Filter)).condition
    assert isinstance(cond, BinaryOp) and cond.op == "=" and cond.children[0].sql() == "id"
    project = next(n for n in nodes(opt) if isinstance(n, lp.Project))
    assert isinstance(project.exprs[1].child, Literal) and project.exprs[1].child.value is None
    assert ours(q) == [(3, None)]


def test_always_false_filter_reads_nothing(spark: Any, F: Any, data: Path) -> None:
    df = spark.read.parquet(str(data / "t.parquet"))
    q = df.filter(F.lit(1) > 2)
    assert not any(isinstance(n, lp.FileRelation) for n in nodes(optimize(q._plan)))
    assert q.count() == 0 and q.columns == ["id", "v", "s", "d"]


def test_division_by_zero_is_not_folded_away(spark: Any, F: Any, data: Path) -> None:
    from sparkctl.errors import ArithmeticException
    df = spark.read.parquet(str(data / "t.parquet"))
    with pytest.raises(ArithmeticException, match="DIVIDE_BY_ZERO"):
        df.select((F.lit(1) / F.lit(0)).alias("x")).collect()


def test_adjacent_filters_and_projects_combine(spark: Any, F: Any, data: Path) -> None:
    df = spark.read.parquet(str(data / "t.parquet"))
    q = df.filter(F.col("id") > 10).filter(F.col("v") < 5).withColumn("a", F.col("id") + 1) \
        .withColumn("b", F.col("a") * 2).select("id", "b")
    opt = optimize(q._plan)
    assert sum(isinstance(n, lp.Filter) for n in nodes(opt)) == 1
    assert sum(isinstance(n, lp.Project) for n in nodes(opt)) == 1
    assert ours(q) == duck(data, "SELECT id, (id + 1) * 2 FROM t WHERE id > 10 AND v < 5")


def test_filter_pushed_below_project_and_into_the_scan(spark: Any, F: Any, data: Path) -> None:
    df = spark.read.parquet(str(data / "t.parquet"))
    q = df.select("id", (F.col("v") * 2).alias("v2")).filter((F.col("v2") > 10) & (F.col("id") < 300))
    opt = optimize(q._plan)
    assert isinstance(opt, lp.Project)
    scan_filter = opt.children[0]
    assert isinstance(scan_filter, lp.Filter) and isinstance(scan_filter.child, lp.FileRelation)
    rel = scan_filter.child
    assert [f.spark_string() for f in rel.pushed_filters] == ["IsNotNull(id)", "LessThan(id,300)"]
    assert ours(q) == duck(data, "SELECT id, v * 2 FROM t WHERE v * 2 > 10 AND id < 300")


def test_join_pushdown_goes_to_the_side_it_names(spark: Any, F: Any, data: Path) -> None:
    t = spark.read.parquet(str(data / "t.parquet"))
    u = spark.read.parquet(str(data / "u.parquet"))
    q = t.join(u, t.id == u.k).filter((F.col("w") != "c") & (F.col("v") > 3))
    opt = optimize(q._plan)
    join = next(n for n in nodes(opt) if isinstance(n, lp.Join))
    left, right = join.children
    assert isinstance(left, lp.Filter) and {c.sql() for c in conjuncts(left.condition)} >= {"(v > 3)"}
    assert isinstance(right, lp.Filter) and "(NOT (w = c))" in {c.sql() for c in conjuncts(right.condition)}
    # the join keys cannot be NULL on either side (InferFiltersFromConstraints)
    assert "(id IS NOT NULL)" in {c.sql() for c in conjuncts(left.condition)}
    assert "(k IS NOT NULL)" in {c.sql() for c in conjuncts(right.condition)}
    assert ours(q) == duck(data, "SELECT * FROM t JOIN u ON t.id = u.k WHERE w != 'c' AND v > 3")


def test_no_pushdown_into_the_null_producing_side_of_an_outer_join(spark: Any, F: Any, data: Path) -> None:
    t = spark.read.parquet(str(data / "t.parquet")).filter(F.col("id") < 20)
    u = spark.read.parquet(str(data / "u.parquet"))
    q = t.join(u, t.id == u.k, "left").filter(F.col("w").isNull() & (F.col("id") > 0))
    opt = optimize(q._plan)
    assert isinstance(opt, lp.Filter) and opt.condition.sql() == "(w IS NULL)"
    join = opt.child
    assert isinstance(join, lp.Join) and join.how == "left"
    assert all("w" not in c.sql() for n in nodes(join.children[1]) if isinstance(n, lp.Filter)
               for c in conjuncts(n.condition))
    assert ours(q) == duck(data, "SELECT * FROM t LEFT JOIN u ON t.id = u.k WHERE w IS NULL AND id > 0 AND id < 20")
    full = t.join(u, t.id == u.k, "full").filter(F.col("k").isNull() | (F.col("id") == 2))
    assert isinstance(optimize(full._plan), lp.Filter)
    assert ours(full) == duck(data, "SELECT * FROM (SELECT * FROM t WHERE id < 20) t FULL JOIN u ON t.id = u.k "
                                    "WHERE k IS NULL OR id = 2")


def test_cross_join_filter_becomes_an_equi_join(spark: Any, F: Any, data: Path) -> None:
    t = spark.read.parquet(str(data / "t.parquet"))
    u = spark.read.parquet(str(data / "u.parquet"))
    q = t.crossJoin(u).filter((F.col("id") == F.col("k")) & (F.col("w") != "a") & (F.col("v") + F.col("k") > 5))
    opt = optimize(q._plan)
    join = next(n for n in nodes(opt) if isinstance(n, lp.Join))
    assert join.how == "inner" and [(a.name, b.name) for a, b in join.keys] == [("id", "k")]
    assert join.residual is not None and join.residual.sql() == "((v + k) > 5)"
    assert not isinstance(opt, lp.Filter)
    assert ours(q) == duck(data, "SELECT * FROM t, u WHERE t.id = u.k AND w != 'a' AND v + k > 5")


def test_one_sided_on_conditions(spark: Any, F: Any, data: Path) -> None:
    """A left join's ON condition on the right side filters the right side first; one on the
    left side stays in the join (it decides matches, never drops a left row)."""
    t = spark.read.parquet(str(data / "t.parquet")).filter(F.col("id") < 12)
    u = spark.read.parquet(str(data / "u.parquet"))
    q = t.join(u, (t.id == u.k) & (u.w != "c") & (t.v > 1), "left")
    opt = optimize(q._plan)
    join = next(n for n in nodes(opt) if isinstance(n, lp.Join))
    assert join.residual is not None and join.residual.sql() == "(v > 1)"
    assert isinstance(join.children[1], lp.Filter) and "(NOT (w = c))" in \
        {c.sql() for c in conjuncts(join.children[1].condition)}
    assert ours(q) == duck(data, "SELECT * FROM (SELECT * FROM t WHERE id < 12) t LEFT JOIN u "
                                 "ON t.id = u.k AND u.w != 'c' AND t.v > 1")
    anti = t.join(u, (t.id == u.k) & (u.w == "a"), "anti")
    assert ours(anti) == duck(data, "SELECT * FROM t WHERE id < 12 AND NOT EXISTS "
                                    "(SELECT 1 FROM u WHERE t.id = u.k AND u.w = 'a')")


def test_aggregate_pushdown_only_on_grouping_columns(spark: Any, F: Any, data: Path) -> None:
    df = spark.read.parquet(str(data / "t.parquet"))
    q = df.groupBy("s").agg(F.count("*").alias("n"), F.sum("v").alias("total")) \
        .filter((F.col("s") != "s1") & (F.col("total") > 100))
    opt = optimize(q._plan)
    assert isinstance(opt, lp.Filter) and opt.condition.sql() == "(total > 100)"
    below = opt.child.child
    assert isinstance(below, lp.Filter) and below.condition.sql() == "(NOT (s = s1))"
    assert ours(q) == duck(data, "SELECT s, count(*), sum(v) FROM t GROUP BY s HAVING s != 's1' AND sum(v) > 100")


def test_window_and_generate_pushdown(spark: Any, F: Any, data: Path) -> None:
    from sparkctl.sql import Window
    df = spark.read.parquet(str(data / "t.parquet"))
    ranked = df.withColumn("r", F.row_number().over(Window.partitionBy("s").orderBy("id"))) \
        .filter((F.col("s") == "s1") & (F.col("r") <= 3) & (F.col("id") > 50))
    opt = optimize(ranked._plan)
    scan_filter = next(n for n in nodes(opt) if isinstance(n, lp.Filter) and isinstance(n.child, lp.FileRelation))
    # the partition key's predicate went below the window; the others (r, and id, which
    # would change the row numbers) stayed above it
    assert [c.sql() for c in conjuncts(scan_filter.condition)] == ["(s = s1)"]
    assert ours(ranked.select("id", "r")) == duck(
        data, "SELECT id, r FROM (SELECT *, row_number() OVER (PARTITION BY s ORDER BY id) AS r FROM t) "
              "WHERE s = 's1' AND r <= 3 AND id > 50")
    exploded = df.select("id", F.explode(F.array(F.col("v"), F.col("v") + 1)).alias("e")) \
        .filter((F.col("id") < 5) & (F.col("e") > 2))
    opt = optimize(exploded._plan)
    rel = next(n for n in nodes(opt) if isinstance(n, lp.FileRelation))
    assert [f.spark_string() for f in rel.pushed_filters] == ["IsNotNull(id)", "LessThan(id,5)"]
    assert ours(exploded) == duck(data, "SELECT id, e FROM (SELECT id, unnest([v, v + 1]) AS e FROM t) "
                                        "WHERE id < 5 AND e > 2")


def test_union_pushdown(spark: Any, F: Any, data: Path) -> None:
    a = spark.read.parquet(str(data / "t.parquet")).select("id", "s")
    b = spark.read.parquet(str(data / "t.parquet")).select((F.col("id") + 1000).alias("id"), "s")
    q = a.union(b).filter((F.col("id") % 250 == 0) & F.col("s").isNotNull())
    opt = optimize(q._plan)
    assert isinstance(opt, lp.Union) and all(any(isinstance(n, lp.Filter) for n in nodes(c)) for c in opt.children)
    assert ours(q) == duck(data, "SELECT * FROM (SELECT id, s FROM t UNION ALL SELECT id + 1000, s FROM t) "
                                 "WHERE id % 250 = 0 AND s IS NOT NULL")


def test_nondeterministic_filter_stays_above_the_project(spark: Any, F: Any, data: Path) -> None:
    df = spark.read.parquet(str(data / "t.parquet"))
    plus = F.udf(lambda x: None if x is None else x + 1, "long")
    q = df.select(plus("id").alias("p")).filter(F.col("p") < 4)
    opt = optimize(q._plan)
    assert isinstance(opt, lp.Filter)  # the UDF's column is not recomputed below
    assert ours(q) == [(1,), (2,), (3,)]
    both = df.select("id", plus("id").alias("p")).filter((F.col("p") < 40) & (F.col("id") < 30))
    opt = optimize(both._plan)
    assert isinstance(opt, lp.Filter) and opt.condition.sql() == "(p < 40)"
    rel = next(n for n in nodes(opt) if isinstance(n, lp.FileRelation))
    assert [f.spark_string() for f in rel.pushed_filters] == ["IsNotNull(id)", "LessThan(id,30)"]
    assert sorted(ours(both)) == [(i, i + 1) for i in range(30)]


def test_a_cached_plan_is_never_rewritten(spark: Any, F: Any, data: Path) -> None:
    cached = spark.read.parquet(str(data / "t.parquet")).select("id", "v").filter(F.col("id") < 50).cache()
    node = next(n for n in nodes(cached._plan) if isinstance(n, lp.CachedPlan))
    assert cached.count() == 50
    derived = cached.filter(F.col("v") > 3)
    assert any(n is node for n in nodes(optimize(derived._plan)))  # the node that holds the persisted RDD
    first = node.rdd
    assert first is not None and ours(derived) == duck(data, "SELECT id, v FROM t WHERE id < 50 AND v > 3")
    assert node.rdd is first
    cached.unpersist()


def test_null_semantics_kept_under_pushdown(spark: Any, F: Any, data: Path) -> None:
    """NOT, IN with NULLs, comparisons with NULL columns: the pushed plans return DuckDB's rows."""
    df = spark.read.parquet(str(data / "t.parquet"))
    cases = [
        (df.filter(~(F.col("v") > 5)).select("id", "v"), "SELECT id, v FROM t WHERE NOT (v > 5)"),
        (df.filter(F.col("v").isin(1, 2, None)).select("id"), "SELECT id FROM t WHERE v IN (1, 2, NULL)"),
        (df.filter((F.col("s") == "s2") | F.col("v").isNull()).select("id"),
         "SELECT id FROM t WHERE s = 's2' OR v IS NULL"),
        (df.filter(F.col("d") >= datetime.date(2024, 3, 1)).select("id", "d"),
         "SELECT id, d FROM t WHERE d >= DATE '2024-03-01'"),
        (df.filter(F.col("id").between(95, 205)).select("id"), "SELECT id FROM t WHERE id BETWEEN 95 AND 205"),
    ]
    for q, sql in cases:
        assert ours(q) == duck(data, sql), sql


# ---------------------------------------------------------------------------- pushdown into scans
def test_parquet_row_groups_skipped_by_statistics(spark: Any, F: Any, data: Path) -> None:
    df = spark.read.parquet(str(data / "t.parquet"))
    returned, read = rows_read(df.select("id"))
    assert (returned, read) == (ROWS, ROWS)
    q = df.filter(F.col("id") < 150).select("id", "v")
    returned, read = rows_read(q)
    expected = sum(1 for i in range(ROWS) if i < 150)
    assert returned == expected
    assert read == 2 * GROUP_ROWS  # row groups 0 and 1 only: [0, 100) and [100, 200)
    returned, read = rows_read(df.filter((F.col("id") >= 420) & (F.col("id") <= 430)))
    assert (returned, read) == (11, GROUP_ROWS)
    returned, read = rows_read(df.filter(F.col("id").isin(5, 905)))
    assert (returned, read) == (2, 2 * GROUP_ROWS)
    assert ours(df.filter(F.col("id").isin(5, 905)).select("id")) == [(5,), (905,)]


def test_partition_pruning_skips_directories(spark: Any, F: Any, data: Path) -> None:
    df = spark.read.parquet(str(data / "part"))
    every = rows_read(df)
    assert every == (ROWS, ROWS)
    q = df.filter(F.col("p") == "x")
    opt = optimize(q._plan)
    rel = next(n for n in nodes(opt) if isinstance(n, lp.FileRelation))
    assert [e.sql() for e in rel.partition_filters] == ["(p = x)"]
    assert {s.partition_values for s in rel.scan.splits} == {("x",)}
    assert not any(isinstance(n, lp.Filter) for n in nodes(opt))  # the whole condition held per directory
    returned, read = rows_read(q)
    assert returned == read == len(range(0, ROWS, 3))
    assert ours(q.select("id", "p")) == duck(data, "SELECT id, p FROM part WHERE p = 'x'")
    nulls = df.filter(F.col("p").isNull() & (F.col("id") < 30))
    assert ours(nulls.select("id", "p")) == duck(data, "SELECT id, p FROM part WHERE p IS NULL AND id < 30")
    returned, read = rows_read(nulls)
    assert read == GROUP_ROWS  # the NULL partition only, its first row group only


def test_partition_pruning_for_csv(spark: Any, F: Any, tmp_path: Path) -> None:
    for p in (1, 2, 3):
        folder = tmp_path / f"p={p}"
        folder.mkdir()
        (folder / "part-0.csv").write_text("".join(f"{p * 100 + i},n{i}\n" for i in range(10)))
    df = spark.read.csv(str(tmp_path), schema="a INT, b STRING")
    q = df.filter(F.col("p") >= 2).filter(F.col("b") != "n3")
    returned, read = rows_read(q)
    assert (returned, read) == (18, 20)
    assert sorted(r.a for r in q.collect()) == sorted(p * 100 + i for p in (2, 3) for i in range(10) if i != 3)


def test_pushed_filter_never_changes_results_on_mixed_types(spark: Any, F: Any, data: Path) -> None:
    """A comparison the reader cannot take exactly (a long column with a double literal, a
    string with a number) is not pushed, and the answer is DuckDB's."""
    df = spark.read.parquet(str(data / "t.parquet"))
    q = df.filter(F.col("id") < 10.5).select("id")
    rel = next(n for n in nodes(optimize(q._plan)) if isinstance(n, lp.FileRelation))
    assert [f.spark_string() for f in rel.pushed_filters] == []
    assert ours(q) == duck(data, "SELECT id FROM t WHERE id < 10.5")


def test_optimized_plan_is_stable(spark: Any, F: Any, data: Path) -> None:
    """Optimizing an optimized plan changes nothing more (the batches reached a fixed point)."""
    t = spark.read.parquet(str(data / "t.parquet"))
    u = spark.read.parquet(str(data / "u.parquet"))
    q = t.join(u, t.id == u.k).filter(F.col("v") > 1).groupBy("w").count().filter(F.col("w") != "a")
    once = optimize(q._plan)
    assert [type(n).__name__ for n in nodes(optimize(once))] == [type(n).__name__ for n in nodes(once)]
    assert ours(q) == duck(data, "SELECT w, count(*) FROM t JOIN u ON t.id = u.k WHERE v > 1 GROUP BY w "
                                 "HAVING w != 'a'")


def test_random_predicates_over_nulls_match_duckdb(spark: Any, F: Any, data: Path) -> None:
    """Random conjunctions, disjunctions and negations of comparisons, IS NULL and IN over
    nullable columns, filtered above a projection, a join and a partitioned scan, so every
    pushdown rule and the scan's row-group and partition pruning see them: DuckDB's rows."""
    import random
    rng = random.Random(13)

    def atom() -> tuple[Any, str]:
        kind = rng.choice(["cmp_id", "cmp_v", "cmp_s", "null", "in", "d"])
        op = rng.choice(["<", "<=", ">", ">=", "="])
        ops = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
               ">=": lambda a, b: a >= b, "=": lambda a, b: a == b}
        if kind == "cmp_id":
            n = rng.randrange(0, ROWS)
            return ops[op](F.col("id"), n), f"id {op} {n}"
        if kind == "cmp_v":
            n = rng.randrange(0, 13)
            return ops[op](F.col("v"), n), f"v {op} {n}"
        if kind == "cmp_s":
            text = f"s{rng.randrange(5)}"
            return ops[op](F.col("s"), text), f"s {op} '{text}'"
        if kind == "null":
            name = rng.choice(["v", "s"])
            return (F.col(name).isNull(), f"{name} IS NULL") if rng.random() < 0.5 else \
                (F.col(name).isNotNull(), f"{name} IS NOT NULL")
        if kind == "in":
            values = rng.sample(range(13), 3)
            return F.col("v").isin(*values), f"v IN ({', '.join(map(str, values))})"
        day = datetime.date(2024, 1, 1) + datetime.timedelta(days=rng.randrange(90))
        return ops[op](F.col("d"), day), f"d {op} DATE '{day.isoformat()}'"

    def predicate(depth: int) -> tuple[Any, str]:
        if depth == 0 or rng.random() < 0.3:
            return atom()
        choice = rng.random()
        (a, sa), (b, sb) = predicate(depth - 1), predicate(depth - 1)
        if choice < 0.45:
            return a & b, f"({sa} AND {sb})"
        if choice < 0.85:
            return a | b, f"({sa} OR {sb})"
        return ~a, f"(NOT {sa})"

    t = spark.read.parquet(str(data / "t.parquet"))
    u = spark.read.parquet(str(data / "u.parquet"))
    part = spark.read.parquet(str(data / "part"))
    for _ in range(12):
        cond, sql = predicate(3)
        assert ours(t.select("id", "v", "s", "d").filter(cond).select("id")) == \
            duck(data, f"SELECT id FROM t WHERE {sql}"), sql
        assert ours(t.join(u, t.id == u.k, "left").filter(cond).select("id", "w")) == \
            duck(data, f"SELECT id, w FROM t LEFT JOIN u ON t.id = u.k WHERE {sql}"), sql
        if rng.random() < 0.5:
            p_cond, p_sql = cond & (F.col("p") != "y"), f"({sql}) AND p != 'y'"
        else:
            p_cond, p_sql = cond | F.col("p").isNull(), f"({sql}) OR p IS NULL"
        assert ours(part.filter(p_cond).select("id", "p")) == \
            duck(data, f"SELECT id, p FROM part WHERE {p_sql}"), p_sql
