"""DataFrame jobs under faults: an executor killed in the middle of a shuffled join, on a
two-worker cluster, and the join still gives exactly the rows plain Python gives."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("pyarrow")

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(240)

APP = """
    import os, signal, sys, time
    from sparkctl.executor.slot import executor_pid
    from sparkctl.sql import SparkSession, functions as F

    spark = SparkSession.builder.getOrCreate()
    sc = spark.sparkContext
    MARKER = sys.argv[1]

    def orders(index, it):
        for n, i in enumerate(it):
            if index == 1 and n == 100 and not os.path.exists(MARKER):  # once in the whole job
                # the left side's map outputs are written; this executor dies with its share
                open(MARKER, "w").close()
                os.kill(executor_pid(), signal.SIGKILL)
                time.sleep(30)
            yield (i, i % 97, float(i % 13))

    customers = spark.createDataFrame(sc.parallelize([(c, f"c{c}") for c in range(97)], 4), ["cid", "name"])
    facts = spark.createDataFrame(sc.parallelize(range(4000), 4).mapPartitionsWithIndex(orders), ["oid", "cid", "amount"])
    joined = facts.join(customers, "cid").groupBy("name").agg(F.sum("amount").alias("total"), F.count("*").alias("n"))
    for row in sorted(joined.collect()):
        print(row["name"], row["total"], row["n"])
    spark.stop()
"""


def test_a_killed_executor_during_a_dataframe_join_gives_the_right_result(tmp_path: Path) -> None:
    script = tmp_path / "join_app.py"
    script.write_text(textwrap.dedent(APP))
    env = dict(os.environ, PYTHONPATH=str(ROOT), SPARKCTL_CONF_DIR=str(tmp_path))
    confs = ["--conf", "spark.ui.showConsoleProgress=false", "--conf", "spark.sql.autoBroadcastJoinThreshold=-1",
             "--conf", "spark.sql.shuffle.partitions=4"]
    r = subprocess.run([sys.executable, str(ROOT / "bin" / "sparkctl"), "submit", "--master", "local-cluster[2,1,1024]",
                        *confs, str(script), str(tmp_path / "killed")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=200)
    assert r.returncode == 0, r.stderr[-3000:]
    expected: dict[str, list[float]] = {}
    for i in range(4000):
        expected.setdefault(f"c{i % 97}", [0.0, 0])
        expected[f"c{i % 97}"][0] += float(i % 13)
        expected[f"c{i % 97}"][1] += 1
    lines = sorted(f"{name} {total} {n}" for name, (total, n) in expected.items())
    assert sorted(r.stdout.splitlines()) == lines
    assert (tmp_path / "killed").exists(), "no executor was killed: the test proved nothing"
