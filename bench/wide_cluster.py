"""A distinct() across many one-core workers on this machine: what map output statuses cost.

    python bench/wide_cluster.py [--workers 20,100] [--records 200000] [--memory 256] [--rounds N]
                                 [--conf KEY=VALUE ...]

For each worker count W it starts ``local-cluster[W,1,M]`` (a private master and W
workers, worker i on 127.0.0.(2+i), so every shuffle block crosses TCP), waits for the W
executors, runs one small job to warm them, then times
``parallelize(range(records), W).distinct().count()``: W map tasks and W reducers, each
reducer needing every map task's status. It prints, per W, the seconds the first such job
took (cold: each task slot also opens its connections to the W-1 other block servers),
the best of two more (warm: new shuffles, connections kept), and the bytes of map output
statuses the driver served for the first job (the driver's ``MapOutputTracker.bytes_served``:
each executor's one request per shuffle and epoch, compressed, whether it went in the
reply or as a broadcast). It also prints the CPU-seconds the driver, the executors and
their task slots spent on the first job and on the best warm one, from the kernel's
count of each process's threads (a one-core executor runs its slot in its own process, so
there the executors' count holds the tasks'; ``--conf spark.executor.inProcessSlot=false``
forks slot processes instead): on a machine with fewer cores than workers the jobs
are bound by that sum, and the difference between the two is what a process's first
shuffle costs it once (its first connections, the pages it copies from its parent), and
the minor page faults of the same processes in each (``bench/page_costs.py`` prices one
on this machine).
With five or more workers the shuffle is push-based (``spark.shuffle.push.enabled``, on by
default): ``--conf spark.shuffle.push.enabled=false`` measures the pull shuffle.
``--rounds N`` runs the worker counts N times, taking turns, and prints the median times
and their ratio: this machine's speed drifts by tens of percent within minutes, and a
20-worker job of a quarter of a second moves most.

Target (issue 14): at most one compressed copy of the statuses per executor, and W=100
within 3 x the W=20 time.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from proc_cpu import run_seconds, stat_fields  # noqa: E402
from sparkctl import SparkConf, SparkContext  # noqa: E402


def _cluster_pids(executor_pids: set[int]) -> list[int]:
    """The driver, the executors and the executors' task slots (their children)."""
    slots = [pid for pid, fields in stat_fields().items() if int(fields[1]) in executor_pids]
    return [os.getpid(), *executor_pids, *slots]


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += run_seconds(pid)
        except OSError:
            pass
    return total


def _faults(pids: list[int]) -> int:
    """The minor page faults the processes have taken (``bench/page_costs.py`` prices one)."""
    fields = stat_fields()
    return sum(int(fields[pid][7]) for pid in pids if pid in fields)


def run(workers: int, records: int, memory_mib: int,
        settings: dict[str, str] | None = None) -> tuple[float, float, int, int, float, float, int, int]:
    """(seconds of the first distinct job, of the best later one, status bytes served for the
    first, requests for them, CPU-seconds of the first and of the best later one, and the
    page faults of each)."""
    conf = (SparkConf().setMaster(f"local-cluster[{workers},1,{memory_mib}]").setAppName(f"wide-{workers}")
            .set("spark.ui.enabled", "false"))
    for key, value in (settings or {}).items():
        conf.set(key, value)
    sc = SparkContext(conf=conf)
    try:
        rt = sc._runtime
        assert rt is not None
        if not rt.wait_for_executors(workers, 300):
            raise SystemExit(f"only {len(rt.executors)} of {workers} executors registered")
        sc.parallelize(range(workers), workers).map(lambda x: x).count()  # every executor warm
        tracker = rt.map_outputs
        served, fetches = tracker.bytes_served, tracker.requests_served
        pids = _cluster_pids({h.pid for h in rt.executors.values()})
        times, cpus, faults = [], [], []
        for i in range(3):
            cpu, fault = _cpu(pids), _faults(pids)
            started = time.perf_counter()
            n = sc.parallelize(range(records), workers).distinct().count()
            times.append(time.perf_counter() - started)
            cpus.append(_cpu(pids) - cpu)
            faults.append(_faults(pids) - fault)
            if n != records:
                raise SystemExit(f"distinct() counted {n}, expected {records}")
            if i == 0:
                served, fetches = tracker.bytes_served - served, tracker.requests_served - fetches
        best = min(range(1, len(times)), key=times.__getitem__)
        return times[0], times[best], served, fetches, cpus[0], cpus[best], faults[0], faults[best]
    finally:
        sc.stop()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="20,100", help="comma-separated worker counts (default 20,100)")
    ap.add_argument("--records", type=int, default=200_000, help="distinct integers (default 200,000)")
    ap.add_argument("--memory", type=int, default=256, help="MiB per worker and executor (default 256)")
    ap.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="a setting for the application")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run every worker count this many times, taking turns, then print the medians (default 1)")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error(f"--rounds {args.rounds}: expected at least 1")
    settings = {}
    for item in args.conf:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--conf {item!r}: expected KEY=VALUE")
        settings[key] = value
    print(f"{'workers':>8} {'seconds':>9} {'warm s':>8} {'status bytes':>13} {'requests':>9} {'bytes/executor':>15}"
          f" {'CPU s':>7} {'warm CPU s':>11} {'faults':>8} {'warm faults':>12}")
    counts = [int(x) for x in args.workers.split(",")]
    times: dict[int, list[tuple[float, float]]] = {w: [] for w in counts}
    for _ in range(args.rounds):
        for w in counts:
            seconds, warm, status_bytes, fetches, cpu, warm_cpu, faults, warm_faults = run(
                w, args.records, args.memory, settings)
            times[w].append((seconds, warm))
            print(f"{w:>8} {seconds:>9.3f} {warm:>8.3f} {status_bytes:>13,} {fetches:>9}"
                  f" {status_bytes // max(1, w):>15,} {cpu:>7.2f} {warm_cpu:>11.2f} {faults:>8,} {warm_faults:>12,}",
                  flush=True)
    if args.rounds > 1:
        # the machine's speed drifts over minutes: rounds that take turns, and medians
        medians = {w: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts)) for w, ts in times.items()}
        for w, (first, warm) in medians.items():
            print(f"median {w:>4} workers: {first:.3f} s first, {warm:.3f} s warm ({args.rounds} rounds)")
        low, high = min(counts), max(counts)
        if high > low:
            print(f"{high} / {low} workers, medians: {medians[high][0] / medians[low][0]:.1f} x first,"
                  f" {medians[high][1] / medians[low][1]:.1f} x warm")


if __name__ == "__main__":
    main()
