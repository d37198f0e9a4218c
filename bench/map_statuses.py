"""What a shuffle's map output statuses cost: their bytes, the driver's encoding, and what a
reducer pays to read its column of them.

    python bench/map_statuses.py [--sizes 100,1000] [--rounds 5]

For each size N it makes the statuses of an N x N push-based shuffle as a cluster would
register them: slices of 150-190 bytes, each merged at five mergers in an arrival order of
its own per reducer (so merged offsets are positions in files filled in that order), and
every fifth map output with nothing pushed. It prints the encoded bytes (what the driver
sends each executor, once per shuffle and epoch), the driver's time to encode them, and a
reduce task's time to decode what it needs and plan its reads, the way a task slot does:
``cold`` in a process forked for it (a new executor's first shuffle: it faults in the pages
it touches), ``warm`` the same again in that process. Medians over ``--rounds`` processes.
"""
from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from sparkctl.scheduler.map_output_tracker import ShuffleStatuses, encode_statuses  # noqa: E402
from sparkctl.storage.block_fetcher import plan  # noqa: E402
from sparkctl.storage.shuffle import MapStatus  # noqa: E402

MERGERS = tuple((f"exec-{k}", f"127.0.0.{k + 2}", 40000 + k) for k in range(5))


def statuses(n: int, seed: int = 7) -> list[MapStatus | None]:
    """N map outputs of N slices each, as a push-based shuffle registers them."""
    rng = random.Random(seed)
    sizes = [[rng.randint(150, 190) for _ in range(n)] for _ in range(n)]
    merged = [[-1] * n for _ in range(n)]
    for r in range(n):
        position = 0
        for m in rng.sample(range(n), n):  # the order the pushes reached the merger
            if m % 5 != 4:
                merged[m][r] = position
                position += sizes[m][r]
    out: list[MapStatus | None] = []
    for m in range(n):
        host = f"127.0.{m // 250}.{m % 250 + 2}"
        base = f"/var/sparkctl/work/app/{m}/local/shuffle_0_{m}_0"
        pushed = m % 5 != 4
        out.append(MapStatus(f"exec-{m}", host, 40000, base + ".data", base + ".index", tuple(sizes[m]),
                             tuple(merged[m]) if pushed else (), MERGERS if pushed else ()))
    return out


def _reduce_task(data: bytes, reduce_index: int) -> None:
    plan(0, ShuffleStatuses(data), reduce_index, "127.255.255.254", True)


def measure(data: bytes, reduce_index: int) -> tuple[float, float]:
    """(cold, warm) CPU-seconds of one reduce task's decode and plan, in a forked process."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        gc.collect()  # no collection of the bench's own objects inside either run
        started = time.thread_time()
        _reduce_task(data, reduce_index)
        cold = time.thread_time() - started
        gc.collect()
        started = time.thread_time()
        _reduce_task(data, reduce_index)
        warm = time.thread_time() - started
        os.write(write, f"{cold} {warm}".encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        answer = f.read()
    os.waitpid(pid, 0)
    cold, warm = answer.split()
    return float(cold), float(warm)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,1000", help="comma-separated N of N x N shuffles (default 100,1000)")
    ap.add_argument("--rounds", type=int, default=5, help="forked processes per size (default 5)")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error(f"--rounds {args.rounds}: expected at least 1")
    print(f"{'maps x reducers':>16} {'bytes':>11} {'encode ms':>10} {'reducer cold ms':>16} {'warm ms':>8}")
    for n in (int(x) for x in args.sizes.split(",")):
        made = statuses(n)
        started = time.perf_counter()
        data = encode_statuses(made, MERGERS)
        encode = time.perf_counter() - started
        runs = [measure(data, (i * 7919) % n) for i in range(args.rounds)]
        cold = statistics.median(c for c, _ in runs)
        warm = statistics.median(w for _, w in runs)
        print(f"{f'{n} x {n}':>16} {len(data):>11,} {encode * 1e3:>10.1f} {cold * 1e3:>16.2f} {warm * 1e3:>8.2f}",
              flush=True)


if __name__ == "__main__":
    main()
