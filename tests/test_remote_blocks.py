"""Cached blocks are served to executors on other hosts: a task scheduled away from the
executor that caches its input fetches the block over the block server instead of
recomputing it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from sparkctl import SparkConf, SparkContext

pytestmark = pytest.mark.timeout(120)


def test_task_away_from_cache_fetches_the_block(tmp_path: Path) -> None:
    marks = str(tmp_path)
    conf = SparkConf().set("spark.log.level", "WARN")
    with SparkContext("local-cluster[2,1,512]", "remote-blocks", conf=conf) as sc:
        def note(x: int) -> int:
            open(os.path.join(marks, f"{x}-{os.getpid()}-{os.urandom(4).hex()}"), "w").close()
            return x

        rdd = sc.parallelize(range(40), 4).map(note).cache()
        assert rdd.sum() == sum(range(40))
        assert len(os.listdir(marks)) == 40
        runtime = sc._runtime
        holders = {p: set(runtime.dag.cache_locs[(rdd.id(), p)]) for p in range(4)}
        assert all(len(h) == 1 for h in holders.values())
        assert len(set().union(*holders.values())) == 2  # the blocks live on both executors
        everyone = set(runtime.executors)
        # schedule every task on the executor that does NOT hold its block
        runtime.dag._preferred_locations = lambda r, p, depth=0: (everyone - holders[p]) if r is rdd else set()
        where = rdd.mapPartitionsWithIndex(lambda i, it: [(i, sum(it))]).collect()
        assert dict(where) == {p: sum(range(p * 10, p * 10 + 10)) for p in range(4)}
        assert len(os.listdir(marks)) == 40  # nothing was recomputed
