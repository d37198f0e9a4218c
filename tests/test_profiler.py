"""The Python profiler (``spark.python.profile``), checked as PySpark's test_profiler does:
every task's cProfile stats merged per RDD (each partition counted once), show_profiles
printing "Profile of RDD<id=N>" with pstats' table, dump_profiles writing rdd_N.pstats,
a custom profiler_cls, and a clear RuntimeError when the setting is off."""
from __future__ import annotations

import os
import pstats
from pathlib import Path
from typing import Any

import pytest

from sparkctl import SparkConf, SparkContext
from sparkctl.profiler import BasicProfiler

pytestmark = pytest.mark.timeout(60)


def heavy_foo(x: int) -> None:
    for _ in range(1 << 12):
        pass


def _calls(stats: pstats.Stats, name: str) -> int:
    return sum(nc for (_, _, fn), (_, nc, *_rest) in stats.stats.items() if fn == name)  # type: ignore[attr-defined]


def _profiled(**kwargs: Any) -> SparkContext:
    conf = (SparkConf().setMaster("local[2]").setAppName("profiler").set("spark.ui.showConsoleProgress", "false")
            .set("spark.python.profile", "true"))
    return SparkContext(conf=conf, **kwargs)


def test_profiles_merged_per_rdd_shown_and_dumped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with _profiled() as sc:
        rdd = sc.parallelize(range(100), 4)
        rdd.foreach(heavy_foo)
        profilers = sc.profiler_collector.profilers
        assert len(profilers) == 1
        rdd_id, profiler, shown = profilers[0]
        assert rdd_id == rdd.id() and not shown
        stats = profiler.stats()
        assert _calls(stats, "heavy_foo") == 100  # every partition's calls, each once
        capsys.readouterr()
        sc.show_profiles()
        out = capsys.readouterr().out
        assert f"Profile of RDD<id={rdd.id()}>" in out and "heavy_foo" in out
        assert "Ordered by: internal time, cumulative time" in out
        sc.show_profiles()  # already shown: nothing more
        assert capsys.readouterr().out == ""
        sc.dump_profiles(str(tmp_path / "profiles"))
        dumped = pstats.Stats(str(tmp_path / "profiles" / f"rdd_{rdd.id()}.pstats"))
        assert _calls(dumped, "heavy_foo") == 100
        assert sc.profiler_collector.profilers == []  # dumped profiles are done with, as PySpark's


def test_each_stage_rdd_of_a_shuffle_is_profiled(capsys: pytest.CaptureFixture[str]) -> None:
    with _profiled() as sc:
        def key(x: int) -> tuple[int, int]:
            heavy_foo(x)
            return x % 2, x

        pairs = sc.parallelize(range(20), 2).map(key).reduceByKey(lambda a, b: a + b)
        assert sorted(pairs.collect()) == [(0, 90), (1, 100)]
        ids = [entry[0] for entry in sc.profiler_collector.profilers]
        assert len(ids) == 2 and ids[1] == pairs.id()
        map_side = sc.profiler_collector.profilers[0][1].stats()
        assert _calls(map_side, "heavy_foo") == 20
        sc.show_profiles()
        out = capsys.readouterr().out
        assert all(f"Profile of RDD<id={i}>" in out for i in ids)


def test_custom_profiler_class() -> None:
    shown: list[int] = []

    class Custom(BasicProfiler):
        def show(self, id: int) -> None:
            shown.append(id)

    with _profiled(profiler_cls=Custom) as sc:
        rdd = sc.parallelize(range(10), 2)
        assert rdd.map(lambda x: x * 2).count() == 10
        assert isinstance(sc.profiler_collector.profilers[0][1], Custom)
        sc.show_profiles()
    assert shown == [sc.profiler_collector.profilers[0][0]]


def test_profiles_dumped_at_exit_to_the_configured_directory(tmp_path: Path) -> None:
    """spark.python.profile.dump: the collector registers its dump for exit; run it as exit would."""
    conf = (SparkConf().setMaster("local[1]").set("spark.python.profile", "true")
            .set("spark.python.profile.dump", str(tmp_path)))
    with SparkContext(conf=conf) as sc:
        rdd = sc.parallelize(range(10), 1)
        rdd.foreach(heavy_foo)
        collector = sc.profiler_collector
    assert collector.profile_dump_path == str(tmp_path)
    collector.dump_profiles(collector.profile_dump_path)
    assert os.listdir(tmp_path) == [f"rdd_{rdd.id()}.pstats"]


def test_profile_off_by_default() -> None:
    with SparkContext("local[1]", "no-profile") as sc:
        assert sc.profiler_collector is None
        assert sc._runtime.profile_accumulator is None  # no stage asks its tasks to profile
        assert sc.parallelize(range(10), 2).sum() == 45
        for call in (sc.show_profiles, lambda: sc.dump_profiles("/nonexistent")):
            with pytest.raises(RuntimeError, match="'spark.python.profile' configuration must be set to 'true'"):
                call()
