"""Run a benchmark's tasks in this one process, stage by stage, timed and under cProfile.

    python bench/profile_tasks.py wordcount|groupby|sortbykey [--mb 100] [--pairs 2000000]
                                  [--top 25] [--sort tottime|cumtime] [--no-profile]

The task slots of a real run are forked processes that a driver-side cProfile cannot see.
This script builds the same RDD as ``bench/run.py`` on a ``local[1]`` SparkContext (whose
executor runs only the small driver-side jobs that building the lineage needs, e.g. the
sample of sortByKey), then walks the lineage itself: every shuffle map stage, parents
first, then the result stage, each task computed by the same code a slot runs
(``rdd.iterator`` -> ``write_map_output`` / the action's function), with a TaskContext
whose environment reads shuffle files straight from the local disk.

For every stage it prints each task's wall time (without the profiler), then the
profile of the whole stage (a second run under cProfile, whose per-call overhead inflates
Python-heavy code; compare the wall times, not the absolute profile seconds).
What it leaves out: pickling the closure, the scheduler and RPC round trips, and the
second core (tasks run one after another here).
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from operator import add
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as bench  # noqa: E402  (bench/run.py: data and pair generators)

from sparkctl import SparkConf, SparkContext  # noqa: E402
from sparkctl.rdd.dependencies import ShuffleDependency  # noqa: E402
from sparkctl.rdd.rdd import RDD, _count_iter  # noqa: E402
from sparkctl.storage.shuffle import MapStatus, read_shuffle, shuffle_paths, write_map_output  # noqa: E402
from sparkctl.taskcontext import TaskContext  # noqa: E402


class LocalEnv:
    """The parts of a slot's SlotEnvironment that computing a task uses."""

    host = "local"
    executor_id = "profile"

    def __init__(self, local_dir: str, memory_budget: int, batch_size: int) -> None:
        self.local_dir = local_dir
        self.memory_budget = memory_budget
        self.batch_size = batch_size

    def read_shuffle(self, shuffle_id: int, reduce_index: int, statuses: list[MapStatus | None]) -> Any:
        return read_shuffle(shuffle_id, reduce_index, statuses, self.host, None)

    def get_or_compute(self, rdd: RDD, split: Any, tc: TaskContext) -> Any:
        return rdd.compute(split, tc)  # no block manager here: recompute


def shuffle_deps(rdd: RDD) -> list[ShuffleDependency]:
    """Every shuffle dependency of the lineage, parents before children."""
    order: list[ShuffleDependency] = []
    seen_rdds: set[int] = set()

    def visit(r: RDD) -> None:
        if r._id in seen_rdds:
            return
        seen_rdds.add(r._id)
        for dep in r.dependencies:
            visit(dep.rdd)
            if isinstance(dep, ShuffleDependency) and all(d.shuffle_id != dep.shuffle_id for d in order):
                order.append(dep)

    visit(rdd)
    return order


def run_stages(final: RDD, func: Callable[[Any], Any], env: LocalEnv, profile: bool
               ) -> list[tuple[str, list[float], pstats.Stats | None, Any]]:
    statuses: dict[int, list[MapStatus | None]] = {}
    out = []
    task_id = 0
    stages: list[tuple[str, RDD, ShuffleDependency | None]] = [
        (f"shuffle map stage (shuffle {d.shuffle_id}, {d.rdd!r} -> {d.num_partitions} reducers"
         f"{', map-side combine' if d.map_side_combine else ''})", d.rdd, d) for d in shuffle_deps(final)]
    stages.append((f"result stage ({final!r})", final, None))
    for label, rdd, dep in stages:
        times: list[float] = []
        prof = cProfile.Profile() if profile else None
        results = []
        for part in rdd.partitions:
            tc = TaskContext(0, 0, part.index, 0, task_id, env, {}, dict(statuses))  # type: ignore[arg-type]
            TaskContext._current = tc
            t0 = time.perf_counter()
            if prof:
                prof.enable()
            try:
                records = rdd.iterator(part, tc)
                if dep is not None:
                    paths = shuffle_paths(env.local_dir, dep.shuffle_id, part.index, task_id)
                    sizes = write_map_output(records, dep, env.memory_budget, env.local_dir, paths, env.batch_size)
                    statuses.setdefault(dep.shuffle_id, [None] * len(rdd.partitions))[part.index] = \
                        MapStatus("profile", env.host, 0, paths[0], paths[1], sizes)
                else:
                    results.append(func(records))
            finally:
                tc.run_completion_listeners()
                TaskContext._current = None
                if prof:
                    prof.disable()
            times.append(time.perf_counter() - t0)
            task_id += 1
        stats = pstats.Stats(prof) if prof else None
        out.append((label, times, stats, results))
    return out


def build(sc: SparkContext, name: str, args: argparse.Namespace) -> tuple[RDD, Callable[[Any], Any]]:
    if name == "wordcount":
        path = bench.text_file(args.mb)
        return sc.textFile(path).flatMap(bench._split).map(bench._one).reduceByKey(add), list
    if name == "groupby":
        return sc.range(args.pairs).map(bench.group_pair).groupByKey(), _count_iter
    if name == "sortbykey":
        # building it runs sortByKey's count and sample jobs on the executor
        return sc.range(args.pairs).map(bench.sort_pair).sortByKey(), _count_iter
    raise SystemExit(f"unknown benchmark {name!r}: wordcount, groupby or sortbykey")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("benchmark", choices=["wordcount", "groupby", "sortbykey"])
    ap.add_argument("--mb", type=int, default=100, help="wordcount text size (default 100)")
    ap.add_argument("--pairs", type=int, default=2_000_000, help="pairs for groupby/sortbykey (default 2M)")
    ap.add_argument("--partitions", type=int, default=2, help="defaultParallelism to mimic (default 2)")
    ap.add_argument("--top", type=int, default=25, help="profile lines per stage")
    ap.add_argument("--sort", default="tottime", choices=["tottime", "cumtime"])
    ap.add_argument("--no-profile", action="store_true", help="only the wall times")
    args = ap.parse_args()

    conf = (SparkConf().setMaster("local[1]").setAppName("profile-tasks")
            .set("spark.default.parallelism", str(args.partitions)).set("spark.ui.showConsoleProgress", "false"))
    sc = SparkContext(conf=conf)
    local_dir = tempfile.mkdtemp(prefix="sparkctl-profile-")
    try:
        final, func = build(sc, args.benchmark, args)
        # a slot's budget under the defaults: 1g executor x 0.6 x (1 - 0.5) / 2 slots
        env = LocalEnv(local_dir, int((1 << 30) * 0.6 * 0.5 / args.partitions), 1000)
        for label, times, _, results in run_stages(final, func, env, profile=False):
            print(f"{label}: {len(times)} tasks, {sum(times):.3f}s in all; per task: "
                  + ", ".join(f"{t:.3f}" for t in times))
        if args.no_profile:
            return 0
        for label, times, stats, _ in run_stages(final, func, env, profile=True):
            assert stats is not None
            buf = io.StringIO()
            stats.stream = buf  # type: ignore[attr-defined]
            stats.sort_stats(args.sort).print_stats(args.top)
            print(f"\n===== {label}: {sum(times):.3f}s under cProfile")
            text = buf.getvalue()
            print(text[text.find("   ncalls"):].rstrip() if "   ncalls" in text else text)
    finally:
        sc.stop()
        shutil.rmtree(local_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
