"""DataFrame aggregations, joins and sorts in bounded memory, and the DataFrame shuffle's
metrics.

A session whose task slots get a budget of about half a MiB (``spark.memory.fraction``)
runs a groupBy/agg, joins and an orderBy over rows many times that budget, generated in
the tasks. Their rows must be plain Python's over the same generated values; the tasks'
metrics must show spills (``diskBytesSpilled``), spill files must appear in the executors'
local dir while the job runs and be gone when it ends. The shuffle's own metrics count
what a DataFrame exchange moved: rows (not IPC streams) and the bytes written and read.
"""
from __future__ import annotations

import os
import pickle
import threading
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

pytest.importorskip("pyarrow")

from sparkctl.scheduler import messages as m  # noqa: E402
from sparkctl.scheduler.runtime import DriverRuntime  # noqa: E402
from sparkctl.sql.spill import SPILL_PREFIX  # noqa: E402
from tests.conftest import descendants  # noqa: E402

pytestmark = pytest.mark.timeout(180)

N = 120_000  # rows of the fact table: about 6 MiB in memory, ~12x a slot's budget
KEYS = 20_011
DIM_STEP = 3  # dimension keys 0, 3, 6, ... below 30_000: some facts and some keys find no partner
DIM_LIMIT = 30_000


def fact(i: int) -> tuple[int, int, float, str | None]:
    """The fact row the DataFrame below computes for id *i* (plain Python's copy)."""
    k = i * 7919 % KEYS
    return i, k, (i % 1000) * 0.25, None if i % 17 == 0 else f"s{k % 5003}"


@pytest.fixture(scope="module")
def local_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sql-spill-local")


@pytest.fixture(scope="module")
def spark(local_dir: Path) -> Iterator[Any]:
    from sparkctl.sql import SparkSession
    from tests.conftest import stop_shared_context
    stop_shared_context()
    before = set(descendants())
    # 1g x 0.002 x (1 - 0.5 storage) / 2 slots: about 0.5 MiB a task slot
    session = (SparkSession.builder.master("local[2]").appName("sql-spill")
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
               .config("spark.local.dir", str(local_dir)).config("spark.memory.fraction", "0.002")
               .config("spark.sql.shuffle.partitions", "2").config("spark.sql.autoBroadcastJoinThreshold", "-1")
               .getOrCreate())
    yield session
    session.stop()
    assert set(descendants()) <= before


Outcomes = list[m.TaskOutcome]


@pytest.fixture
def outcomes(monkeypatch: pytest.MonkeyPatch) -> Outcomes:
    """Every finished task's outcome the driver receives from here on."""
    got: Outcomes = []
    original = DriverRuntime._on_status

    def capture(self: DriverRuntime, msg: m.StatusUpdate, counted: bool = False) -> None:
        if msg.outcome and msg.state == m.FINISHED:
            got.append(pickle.loads(msg.outcome))
        original(self, msg, counted)

    monkeypatch.setattr(DriverRuntime, "_on_status", capture)
    return got


def metric(outcomes: Outcomes, name: str) -> int:
    return sum((o.metrics or {}).get(name, 0) for o in outcomes)


def spill_files(directory: Path) -> list[str]:
    return [name for _, _, names in os.walk(directory) for name in names if name.startswith(SPILL_PREFIX)]


class SpillWatcher:
    """Looks at the executors' local dir while a job runs; remembers the spill files seen."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.seen.update(spill_files(self.directory))
            self._stop.wait(0.005)

    def __enter__(self) -> "SpillWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def facts(spark: Any, n: int = N) -> Any:
    from sparkctl.sql import functions as F
    k = F.col("id") * 7919 % KEYS
    return spark.range(0, n, 1, 4).select(
        F.col("id"), k.alias("k"), ((F.col("id") % 1000) * 0.25).alias("v"),
        F.when(F.col("id") % 17 == 0, F.lit(None)).otherwise(F.concat(F.lit("s"), (k % 5003).cast("string")))
        .alias("s"))


def dims(spark: Any) -> Any:
    from sparkctl.sql import functions as F
    return spark.range(0, DIM_LIMIT, DIM_STEP, 2).select(
        F.col("id").alias("dk"), F.concat(F.lit("name-"), F.col("id").cast("string")).alias("name"))


def run_spilling(spark: Any, local_dir: Path, outcomes: Outcomes, action: Callable[[], Any]) -> Any:
    """Run *action* (a job); check it spilled, that files were there while it ran and are gone."""
    with SpillWatcher(local_dir) as watcher:
        result = action()
    assert metric(outcomes, "diskBytesSpilled") > 0, "the job did not spill: the budget is not tiny enough"
    assert metric(outcomes, "memoryBytesSpilled") > 0
    assert watcher.seen, "no spill file was seen while the job ran"
    assert spill_files(local_dir) == []
    return result


def test_groupby_agg_over_many_budgets_spills_and_gives_plain_pythons_rows(spark: Any, local_dir: Path,
                                                                         outcomes: Outcomes) -> None:
    from sparkctl.sql import functions as F
    df = facts(spark).groupBy("k").agg(F.sum("v").alias("total"), F.count("*").alias("n"),
                                       F.max("s").alias("top"), F.avg("v").alias("mean"))
    got = run_spilling(spark, local_dir, outcomes, df.collect)
    sums: dict[int, float] = defaultdict(float)
    counts: Counter[int] = Counter()
    tops: dict[int, str] = {}
    for i in range(N):
        _, k, v, s = fact(i)
        sums[k] += v
        counts[k] += 1
        if s is not None and (k not in tops or s > tops[k]):
            tops[k] = s
    expected = sorted((k, sums[k], counts[k], tops.get(k), sums[k] / counts[k]) for k in counts)
    assert sorted(tuple(r) for r in got) == expected


def test_a_one_phase_aggregate_spills_its_input_rows(spark: Any, local_dir: Path, outcomes: Outcomes) -> None:
    """countDistinct cannot merge partials: the spill holds input rows, cut by the group key."""
    from sparkctl.sql import functions as F
    df = facts(spark).groupBy((F.col("k") % 1000).alias("g")).agg(F.countDistinct("s").alias("d"),
                                                                 F.count("s").alias("c"))
    got = run_spilling(spark, local_dir, outcomes, df.collect)
    distinct: dict[int, set[str]] = defaultdict(set)
    count: Counter[int] = Counter()
    for i in range(N):
        _, k, _, s = fact(i)
        count[k % 1000] += 0
        if s is not None:
            distinct[k % 1000].add(s)
            count[k % 1000] += 1
    assert sorted(tuple(r) for r in got) == sorted((g, len(distinct[g]), count[g]) for g in count)


@pytest.mark.parametrize("how", ["inner", "left", "full", "anti"])
def test_a_grace_hash_join_gives_plain_pythons_rows(spark: Any, local_dir: Path, outcomes: Outcomes,
                                                    how: str) -> None:
    f, d = facts(spark), dims(spark)
    joined = f.join(d, f.k == d.dk, how)
    got = run_spilling(spark, local_dir, outcomes, joined.collect)
    names = {dk: f"name-{dk}" for dk in range(0, DIM_LIMIT, DIM_STEP)}
    rows = [fact(i) for i in range(N)]
    if how == "anti":
        expected = [r for r in rows if r[1] not in names]
    else:
        expected = [(*r, r[1], names[r[1]]) for r in rows if r[1] in names]
        if how in ("left", "full"):
            expected += [(*r, None, None) for r in rows if r[1] not in names]
        if how == "full":
            matched = {r[1] for r in rows}
            expected += [(None, None, None, None, dk, name) for dk, name in names.items() if dk not in matched]
    key = lambda r: tuple((v is None, v) for v in r)  # noqa: E731 - rows with NULLs sort too
    assert sorted((tuple(r) for r in got), key=key) == sorted(expected, key=key)


def test_orderby_merges_spilled_runs_in_order(spark: Any, local_dir: Path, outcomes: Outcomes) -> None:
    from sparkctl.sql import functions as F
    df = facts(spark).orderBy(F.col("s").desc(), F.col("v"), F.col("id").desc())
    got = run_spilling(spark, local_dir, outcomes, df.collect)
    rows = [fact(i) for i in range(N)]
    rows.sort(key=lambda r: -r[0])
    rows.sort(key=lambda r: r[2])
    rows.sort(key=lambda r: (r[3] is not None, r[3] or ""), reverse=True)  # DESC: NULLs last
    assert [tuple(r) for r in got] == rows


def test_a_dataframe_shuffle_counts_rows_and_bytes(spark: Any, outcomes: Outcomes) -> None:
    """A repartition moves every row once: written and read rows are the rows (not one record
    per IPC stream), and the reducers read exactly the bytes the map tasks wrote."""
    rows = facts(spark, 50_000).repartition(3).collect()
    assert sorted(tuple(r) for r in rows) == [fact(i) for i in range(50_000)]
    assert metric(outcomes, "shuffleRecordsWritten") == 50_000
    assert metric(outcomes, "shuffleRecordsRead") == 50_000
    written = metric(outcomes, "shuffleBytesWritten")
    assert written > 0
    assert metric(outcomes, "shuffleLocalBytesRead") + metric(outcomes, "shuffleRemoteBytesRead") == written
