"""Speculative execution end to end: a straggling task gets a copy on another executor,
the first to finish wins, and output is committed once."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from sparkctl import SparkConf, SparkContext, TaskContext

pytestmark = pytest.mark.timeout(120)


def test_straggler_is_speculated_and_output_committed_once(tmp_path: Path) -> None:
    conf = (SparkConf().set("spark.speculation", "true").set("spark.speculation.interval", "50ms")
            .set("spark.speculation.quantile", "0.5").set("spark.speculation.multiplier", "2"))
    out = tmp_path / "out"
    with SparkContext("local-cluster[2,1,512]", "speculation", conf=conf) as sc:
        def slow_first_attempt(i: int, it):  # type: ignore[no-untyped-def]
            tc = TaskContext.get()
            if i == 3 and tc.attemptNumber() == 0:
                time.sleep(20)  # a straggler: its copy finishes long before
            return (f"{i}:{x}" for x in it)

        started = time.monotonic()
        rdd = sc.parallelize(range(40), 8).mapPartitionsWithIndex(slow_first_attempt)
        rdd.saveAsTextFile(str(out))
        elapsed = time.monotonic() - started
    assert elapsed < 15, f"the straggler was waited for ({elapsed:.1f} s)"
    parts = sorted(p.name for p in out.iterdir())
    assert parts == ["_SUCCESS"] + [f"part-{i:05d}" for i in range(8)]
    lines = [ln for i in range(8) for ln in (out / f"part-{i:05d}").read_text().splitlines()]
    assert lines == [f"{x // 5}:{x}" for x in range(40)]
    assert not (out / "_temporary").exists()
