"""``df.explain()``: the sections and operators Spark prints, and PySpark's argument errors.

The fast tests check sparkctl's output against the shape Spark documents (its section
headers, its operator names) and the physical plan against what sparkctl really runs
(a broadcast join is a broadcast, a shuffle an Exchange). The slow test runs the same
queries on PySpark 4.3 and requires the same section headers and the same operators
(ids, paths and sizes differ and are not compared).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyarrow")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

pytestmark = pytest.mark.timeout(180)

HEADERS = {
    "simple": ["== Physical Plan =="],
    "extended": ["== Parsed Logical Plan ==", "== Analyzed Logical Plan ==", "== Optimized Logical Plan ==",
                 "== Physical Plan =="],
    "cost": ["== Optimized Logical Plan ==", "== Physical Plan =="],
    "formatted": ["== Physical Plan =="],
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("explain")
    pq.write_table(pa.table({"id": pa.array(range(1000), pa.int64()), "s": [f"s{i % 7}" for i in range(1000)]}),
                   root / "t.parquet", row_group_size=100)
    pq.write_table(pa.table({"k": pa.array([1, 2, 3], pa.int64()), "w": ["a", "b", "c"]}), root / "u.parquet")
    for p in ("x", "y"):
        (root / "part" / f"p={p}").mkdir(parents=True)
        pq.write_table(pa.table({"id": pa.array(range(10), pa.int64())}), root / "part" / f"p={p}" / "part-0.parquet")
    return root


@pytest.fixture(scope="module")
def spark() -> Any:
    from sparkctl.sql import SparkSession
    session = SparkSession.builder.master("local[2]").appName("explain").config("spark.ui.enabled", "false") \
        .getOrCreate()
    yield session
    session.stop()


def queries(spark: Any, F: Any, data: Path) -> dict[str, Any]:
    t = spark.read.parquet(str(data / "t.parquet"))
    u = spark.read.parquet(str(data / "u.parquet"))
    return {
        "filter_project": t.filter(F.col("id") < 150).select("id", (F.col("id") * 2).alias("x")),
        "aggregate_sort": t.groupBy("s").agg(F.sum("id").alias("total")).orderBy("s"),
        "broadcast_join": t.join(u, t.id == u.k).filter(u.w == "a"),
        "partition_filter": spark.read.parquet(str(data / "part")).filter(F.col("p") == "x").select("id"),
        "distinct_aggregate": t.groupBy("s").agg(F.sum("id"), F.count_distinct(F.col("id") % 10)),
    }


def explained(df: Any, capsys: pytest.CaptureFixture, *args: Any, **kwargs: Any) -> str:
    capsys.readouterr()
    df.explain(*args, **kwargs)
    return capsys.readouterr().out


def headers(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("== ") and line.endswith(" ==")]


def physical_section(text: str) -> str:
    return text.split("== Physical Plan ==\n", 1)[1].split("\n\n", 1)[0]


_TREE = re.compile(r"^[\s:+\-|]*")


def operators(physical: str) -> list[str]:
    """The operator names of a physical plan tree, Spark's wrappers left out (whole-stage
    codegen markers, AdaptiveSparkPlan, ColumnarToRow: sparkctl has no such stages)."""
    out = []
    for line in physical.splitlines():
        body = _TREE.sub("", line)
        body = re.sub(r"^\*\(\d+\) ", "", body)
        name = re.match(r"[A-Za-z]+(?: (?:parquet|ExistingRDD))?", body)
        if name and name.group(0) not in ("AdaptiveSparkPlan", "ColumnarToRow"):
            out.append(name.group(0))
    return out


def test_every_mode_prints_spark_s_sections(spark: Any, data: Path, capsys: pytest.CaptureFixture) -> None:
    from sparkctl.sql import functions as F
    df = queries(spark, F, data)["aggregate_sort"]
    assert headers(explained(df, capsys)) == HEADERS["simple"]
    assert headers(explained(df, capsys, True)) == HEADERS["extended"]
    assert headers(explained(df, capsys, extended=True)) == HEADERS["extended"]
    assert headers(explained(df, capsys, False)) == HEADERS["simple"]
    for mode, expected in HEADERS.items():
        assert headers(explained(df, capsys, mode=mode)) == expected, mode
        assert headers(explained(df, capsys, mode.upper())) == expected, mode
    assert explained(df, capsys, mode="codegen").startswith("Found 0 WholeStageCodegen subtrees.")
    extended = explained(df, capsys, "extended")
    assert "\nid: bigint, s: string\n" not in extended  # the analysed schema is the query's output
    assert "\ns: string, total: bigint\n" in extended


def test_physical_operators_are_what_runs(spark: Any, data: Path, capsys: pytest.CaptureFixture) -> None:
    from sparkctl.sql import functions as F
    q = queries(spark, F, data)
    agg = physical_section(explained(q["aggregate_sort"], capsys))
    assert operators(agg) == ["Sort", "Exchange", "HashAggregate", "Exchange", "HashAggregate", "FileScan parquet"]
    assert "functions=[partial_sum(id#" in agg and "Exchange hashpartitioning(s#" in agg
    join = physical_section(explained(q["broadcast_join"], capsys))
    assert operators(join)[:1] == ["BroadcastHashJoin"] and "BroadcastExchange" in operators(join)
    spark.conf.set("spark.sql.autoBroadcastJoinThreshold", "-1")
    try:
        shuffled = physical_section(explained(q["broadcast_join"], capsys))
        assert operators(shuffled)[0] == "ShuffledHashJoin" and operators(shuffled).count("Exchange") == 2
        assert q["broadcast_join"].count() == 1  # and that is the plan that runs
    finally:
        spark.conf.unset("spark.sql.autoBroadcastJoinThreshold")
    scan = physical_section(explained(q["filter_project"], capsys))
    assert "PushedFilters: [IsNotNull(id), LessThan(id,150)]" in scan
    assert "ReadSchema: struct<id:bigint>" in scan
    distinct = physical_section(explained(q["distinct_aggregate"], capsys))
    assert operators(distinct) == ["HashAggregate", "Exchange", "HashAggregate", "HashAggregate", "Exchange",
                                   "HashAggregate", "FileScan parquet"]
    assert "functions=[merge_sum(id#" in distinct and "partial_count(distinct (id#" in distinct, distinct
    assert sorted(map(tuple, q["distinct_aggregate"].collect())) == sorted(
        (f"s{r}", sum(range(r, 1000, 7)), len({i % 10 for i in range(r, 1000, 7)})) for r in range(7))
    part = physical_section(explained(q["partition_filter"], capsys))
    assert operators(part) == ["Project", "FileScan parquet"]
    assert re.search(r"PartitionFilters: \[\(p#\d+ = x\)\], PushedFilters: \[\]", part), part


def test_formatted_numbers_operators(spark: Any, data: Path, capsys: pytest.CaptureFixture) -> None:
    from sparkctl.sql import functions as F
    text = explained(queries(spark, F, data)["aggregate_sort"], capsys, mode="formatted")
    tree = physical_section(text)
    numbers = [int(n) for n in re.findall(r"\((\d+)\)$", tree, re.M)]
    assert numbers == [6, 5, 4, 3, 2, 1]
    for n in numbers:
        assert re.search(rf"^\({n}\) \w+", text, re.M), n


def test_bad_arguments_raise_pyspark_s_errors(spark: Any, data: Path) -> None:
    from sparkctl.errors import IllegalArgumentException, PySparkTypeError, PySparkValueError
    df = spark.read.parquet(str(data / "u.parquet"))
    with pytest.raises(IllegalArgumentException) as bad:
        df.explain("bogus")
    assert str(bad.value) == ("Unknown explain mode: bogus. Accepted explain modes are 'simple', 'extended', "
                              "'codegen', 'cost', 'formatted'.")
    with pytest.raises(PySparkValueError, match=r"^\[CANNOT_SET_TOGETHER\] extended and mode should not be set "
                                                r"together\.$"):
        df.explain(True, "simple")
    with pytest.raises(PySparkTypeError, match=r"NOT_BOOL_OR_STR"):
        df.explain(3)


def _join_plan(df: Any) -> Any:
    """The Join node of *df*'s optimised plan (what the planner and explain both see)."""
    from sparkctl.sql import plan as lp
    from sparkctl.sql.optimizer import optimize
    stack = [optimize(df._plan)]
    while stack:
        node = stack.pop()
        if isinstance(node, lp.Join):
            return node
        stack.extend(node.children)
    raise AssertionError("no join in the plan")


def _join_inputs(spark: Any, sides: str) -> tuple[Any, Any]:
    """Two sides, each keyed by its first column: "small" is a local table of known size,
    "big" a range (its size unknown, so never broadcast)."""
    small = spark.createDataFrame([(1, "a"), (2, "b"), (3, "c")], "k LONG, w STRING")
    big = spark.range(0, 100, 1, 2)
    other = spark.range(0, 50, 1, 2).withColumnRenamed("id", "k")
    return {"big-small": (big, small), "small-big": (small, big), "big-big": (big, other)}[sides]


def _joined(left: Any, right: Any, how: str) -> Any:
    if how == "cross":
        return left.crossJoin(right)
    return left.join(right, left[left.columns[0]] == right[right.columns[0]], how)


def _python_join_count(left: list[int], right: list[int], how: str) -> int:
    """The rows a join of the two key lists gives, counted in plain Python."""
    if how == "cross":
        return len(left) * len(right)
    pairs = sum(left.count(k) * right.count(k) for k in set(left))
    left_alone = sum(1 for k in left if k not in right)
    right_alone = sum(1 for k in right if k not in left)
    return {"inner": pairs, "left": pairs + left_alone, "right": pairs + right_alone,
            "full": pairs + left_alone + right_alone, "semi": len(left) - left_alone, "anti": left_alone}[how]


# Spark's JoinSelection without join hints: broadcast the right side of an inner, left outer,
# semi or anti join when it is small, the left side of an inner join when that one is, never
# the preserved side of an outer join; a join without keys is a broadcast nested loop join
JOIN_SELECTION = [
    ("inner", "big-small", "BroadcastHashJoin", "right"),
    ("inner", "small-big", "BroadcastHashJoin", "left"),
    ("inner", "big-big", "ShuffledHashJoin", "right"),
    ("left", "big-small", "BroadcastHashJoin", "right"),
    ("left", "small-big", "ShuffledHashJoin", "right"),
    ("right", "big-small", "ShuffledHashJoin", "right"),
    ("full", "big-small", "ShuffledHashJoin", "right"),
    ("semi", "big-small", "BroadcastHashJoin", "right"),
    ("anti", "big-small", "BroadcastHashJoin", "right"),
    ("cross", "big-big", "BroadcastNestedLoopJoin", "right"),
]


@pytest.mark.parametrize("how, sides, operator, build_side", JOIN_SELECTION)
def test_join_strategy_follows_spark_s_join_selection(spark: Any, how: str, sides: str, operator: str,
                                                      build_side: str) -> None:
    from sparkctl.sql.strategies import BROADCAST_THRESHOLD, choose_join
    plan = _join_plan(_joined(*_join_inputs(spark, sides), how))
    chosen = choose_join(plan, BROADCAST_THRESHOLD, 4)
    assert (chosen.operator, chosen.build_side) == (operator, build_side)
    assert chosen.partitions == (4 if operator == "ShuffledHashJoin" else 0)
    if operator == "BroadcastHashJoin":  # broadcasting off, or a threshold below the small side
        assert choose_join(plan, -1, 4).operator == "ShuffledHashJoin"
        assert choose_join(plan, 1, 4).operator == "ShuffledHashJoin"


@pytest.mark.parametrize("how, sides", [(how, sides) for how, sides, _, _ in JOIN_SELECTION])
def test_the_join_explain_prints_is_the_join_that_runs(spark: Any, how: str, sides: str,
                                                       capsys: pytest.CaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The side explain puts under a BroadcastExchange is the table the driver broadcasts
    when the join runs; a ShuffledHashJoin broadcasts nothing; the join gives plain Python's
    number of rows either way."""
    left, right = _join_inputs(spark, sides)
    left_keys, right_keys = ([row[0] for row in side.collect()] for side in (left, right))
    df = _joined(left, right, how)
    physical = physical_section(explained(df, capsys))
    context = type(spark.sparkContext)
    broadcast = context.broadcast
    sent: list[Any] = []

    def recording(self: Any, value: Any) -> Any:
        sent.append(value)
        return broadcast(self, value)

    monkeypatch.setattr(context, "broadcast", recording)
    assert df.count() == _python_join_count(left_keys, right_keys, how)
    monkeypatch.undo()
    if operators(physical)[0] == "ShuffledHashJoin":
        assert sent == [], physical
        return
    assert len(sent) == 1 and isinstance(sent[0], pa.Table), physical
    built = "left" if "BuildLeft" in physical.splitlines()[0] else "right"
    assert sent[0].num_rows == len({"left": left_keys, "right": right_keys}[built]), physical


@pytest.mark.slow
def test_same_sections_and_operators_as_pyspark(spark: Any, data: Path, capsys: pytest.CaptureFixture) -> None:
    from sparkctl.sql import functions as F
    from tests.spark_reference import reference_pyspark
    with reference_pyspark("explain", conf={"spark.sql.adaptive.enabled": "false"}) as theirs_session:
        from pyspark.sql import functions as PF
        theirs = queries(theirs_session, PF, data)
        mine = queries(spark, F, data)
        for name in theirs:
            for mode in ("simple", "extended", "cost", "formatted"):
                t_text, m_text = explained(theirs[name], capsys, mode=mode), explained(mine[name], capsys, mode=mode)
                assert headers(m_text) == headers(t_text), (name, mode)
            t_ops = operators(physical_section(explained(theirs[name], capsys)))
            m_ops = operators(physical_section(explained(mine[name], capsys)))
            # Spark calls its scan FileScan parquet too; it builds the broadcast on either side
            assert sorted(m_ops) == sorted(t_ops), (name, t_ops, m_ops)
        with pytest.raises(Exception) as their_error:
            theirs["filter_project"].explain("bogus")
        with pytest.raises(Exception) as our_error:
            mine["filter_project"].explain("bogus")
        assert str(our_error.value) == str(their_error.value)
        assert type(our_error.value).__name__ == type(their_error.value).__name__
