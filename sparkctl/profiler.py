"""The Python profiler (``spark.python.profile``): cProfile data of every task, per RDD.

```
 driver: a stage's RDD gets a profiler ── its accumulator id rides in the StageBinary ──▶ executor
 slot:   cProfile around the whole task ── raw stats as that accumulator's update ──▶ driver
 driver: merged into the RDD's pstats.Stats, once per partition ── sc.show_profiles() / dump_profiles()
```
The task's stats travel as an accumulator update, so they count exactly once per
partition, as any accumulator's (a failed, killed or speculative attempt adds nothing).
With the setting off, no stage carries an accumulator id and a task checks one field.

As PySpark's, profiles are shown at exit unless shown or dumped before, or written to
``spark.python.profile.dump`` at exit when that is set; ``profiler_cls`` picks the class.
"""
from __future__ import annotations

import atexit
import cProfile
import os
import pstats
from typing import Any

from sparkctl.accumulators import AccumulatorParam


class Profiler:
    """PySpark's developer API: a profiler for one RDD. Subclass and pass as
    ``SparkContext(profiler_cls=...)`` to show or dump profiles another way."""

    def __init__(self, ctx: Any) -> None:
        pass

    def profile(self, func: Any) -> Any:
        """Tasks are profiled in the task slots (always with cProfile)."""
        raise NotImplementedError

    def stats(self) -> pstats.Stats | None:
        raise NotImplementedError

    def show(self, id: int) -> None:
        """Print the profile of RDD ``id`` to stdout, by internal time, then cumulative time."""
        stats = self.stats()
        if stats:
            print("=" * 60)
            print(f"Profile of RDD<id={id}>")
            print("=" * 60)
            stats.sort_stats("time", "cumulative").print_stats()

    def dump(self, id: int, path: str) -> None:
        """Write the profile of RDD ``id`` to ``path/rdd_<id>.pstats`` (pstats' format)."""
        os.makedirs(path, exist_ok=True)
        stats = self.stats()
        if stats:
            stats.dump_stats(os.path.join(path, f"rdd_{id}.pstats"))


class _RawStats:
    """What ``pstats.Stats`` loads from: a finished profile's stats dictionary."""

    def __init__(self, stats: dict[Any, Any]) -> None:
        self.stats = stats

    def create_stats(self) -> None:
        pass


class PStatsParam(AccumulatorParam[Any]):
    """Adds a task's raw cProfile stats into a ``pstats.Stats`` (None until the first)."""

    def zero(self, value: Any) -> Any:
        return None

    def addInPlace(self, value1: Any, value2: Any) -> Any:
        if isinstance(value2, dict):
            if not value2:
                return value1
            value2 = pstats.Stats(_RawStats(value2)).strip_dirs()  # type: ignore[arg-type]
        if value1 is None:
            return value2
        if value2 is not None:
            value1.add(value2)
        return value1


class BasicProfiler(Profiler):
    """The default: the merged cProfile stats of every task that computed the RDD."""

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self._accumulator = ctx.accumulator(None, PStatsParam())

    def stats(self) -> pstats.Stats | None:
        value: pstats.Stats | None = self._accumulator.value
        return value


class ProfilerCollector:
    """The driver's profilers, one per profiled RDD, in the order their first stage ran."""

    def __init__(self, ctx: Any, profiler_cls: type[Profiler] = BasicProfiler, dump_path: str | None = None) -> None:
        self.ctx = ctx
        self.profiler_cls = profiler_cls
        self.profile_dump_path = dump_path
        self.profilers: list[list[Any]] = []  # [rdd id, profiler, shown]
        self._by_rdd: dict[int, int] = {}  # rdd id -> accumulator id

    def new_profiler(self, ctx: Any) -> Profiler:
        return self.profiler_cls(ctx)

    def add_profiler(self, id: int, profiler: Profiler) -> None:
        if not self.profilers:
            if self.profile_dump_path:
                atexit.register(self.dump_profiles, self.profile_dump_path)
            else:
                atexit.register(self.show_profiles)
        self.profilers.append([id, profiler, False])

    def accumulator_for(self, rdd_id: int) -> int | None:
        """The accumulator a stage computing RDD ``rdd_id`` adds its tasks' stats to
        (called by the driver runtime once per stage attempt it serializes)."""
        aid = self._by_rdd.get(rdd_id)
        if aid is None:
            profiler = self.new_profiler(self.ctx)
            acc = getattr(profiler, "_accumulator", None)
            if acc is None:
                return None
            aid = self._by_rdd[rdd_id] = acc.aid
            self.add_profiler(rdd_id, profiler)
        return aid

    def show_profiles(self) -> None:
        for entry in self.profilers:
            rdd_id, profiler, shown = entry
            if not shown and profiler:
                profiler.show(rdd_id)
                entry[2] = True

    def dump_profiles(self, path: str) -> None:
        for rdd_id, profiler, _ in self.profilers:
            profiler.dump(rdd_id, path)
        self.profilers = []
        self._by_rdd.clear()


class TaskProfile:
    """In a task slot: cProfile running from construction until ``finish``."""

    __slots__ = ("_profile",)

    def __init__(self) -> None:
        self._profile = cProfile.Profile()
        self._profile.enable()

    def finish(self) -> dict[Any, Any]:
        """Stop and return the raw stats, the accumulator update the driver merges."""
        self._profile.create_stats()
        stats: dict[Any, Any] = self._profile.stats  # type: ignore[attr-defined]
        return stats

    def stop(self) -> None:
        self._profile.disable()
