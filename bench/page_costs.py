"""What a page fault costs on this machine: the price of a forked process's first shuffle.

    python bench/page_costs.py [--mib 64] [--rounds 5]

A task slot is a forked process. The first time it runs a shuffle it writes to pages it
shares with its executor (reference counts, the interpreter's caches), and the kernel
copies each one (a copy-on-write fault); it also faults in the fresh pages its heap grows
by. Later shuffles touch pages that are already its own. ``bench/wide_cluster.py`` counts
those faults per job; this script prices them, per 4 KiB page, in microseconds:

* ``fresh``: the first write to each page of a new anonymous mapping (the kernel hands
  out a zeroed page);
* ``copy``: the first write to each page of a mapping that a forked child shares with its
  parent (the kernel copies the page);
* ``again``: a second write to the same pages, no fault: what the Python loop itself costs,
  taken off the two above.

On bare metal a fresh page costs well under a microsecond; in a virtual machine it can cost
several, and the first run of a wide shuffle, a few hundred faults in each of hundreds of
processes, costs accordingly more.
"""
from __future__ import annotations

import argparse
import mmap
import os
import statistics
import time

PAGE = mmap.PAGESIZE


def _touch(m: mmap.mmap, value: int) -> float:
    """Seconds to write one byte to every page of ``m``."""
    started = time.perf_counter()
    for at in range(0, len(m), PAGE):
        m[at] = value
    return time.perf_counter() - started


def fresh_and_again(size: int) -> tuple[float, float]:
    """Seconds to fault in every page of a new mapping, and to write them all again."""
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        return _touch(m, 1), _touch(m, 2)
    finally:
        m.close()


def copied(size: int) -> float:
    """Seconds a forked child takes to write every page of a mapping its parent filled."""
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        _touch(m, 1)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: time the copies, report, leave at once
            code = 0
            try:
                os.write(write, repr(_touch(m, 3)).encode())
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(write)
        try:
            answer = os.read(read, 64)
        finally:
            os.close(read)
            os.waitpid(pid, 0)
        if not answer:
            raise SystemExit("the forked child reported nothing")
        return float(answer)
    finally:
        m.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=64, help="size of each mapping in MiB (default 64)")
    ap.add_argument("--rounds", type=int, default=5, help="measurements of each kind; medians are printed (default 5)")
    args = ap.parse_args(argv)
    if args.mib < 1:
        ap.error(f"--mib {args.mib}: expected at least 1")
    if args.rounds < 1:
        ap.error(f"--rounds {args.rounds}: expected at least 1")
    size = args.mib << 20
    pages = size // PAGE
    fresh, again, copy = [], [], []
    for _ in range(args.rounds):
        f, a = fresh_and_again(size)
        fresh.append(f)
        again.append(a)
        copy.append(copied(size))
    loop = statistics.median(again) / pages * 1e6
    print(f"{pages:,} pages of {PAGE} bytes, medians of {args.rounds} rounds, microseconds per page:")
    print(f"  fresh page (zero-filled) {statistics.median(fresh) / pages * 1e6 - loop:6.2f}")
    print(f"  copied page (after fork) {statistics.median(copy) / pages * 1e6 - loop:6.2f}")
    print(f"  no fault (the loop)      {loop:6.2f}")


if __name__ == "__main__":
    main()
