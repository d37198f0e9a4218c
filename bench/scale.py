"""The driver's and the master's state machines at scale, with no sockets.

    python bench/scale.py            # both: the task scheduler, then the master
    python bench/scale.py --quick    # smaller sizes, a smoke run

The task scheduler runs at 10, 100 and 1,000 executors x 1k, 10k and 100k tasks
(bench/scale_tasks.py), the master at 1,000 and 5,000 workers with 100 applications, 99 of
them waiting, with and without a recovery directory (bench/scale_master.py). Each prints
microseconds per event; docs/scaling.md says what the figures mean. A wide real cluster on
this machine is bench/wide_cluster.py and bench/executor_start.py.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scale_master  # noqa: E402
import scale_tasks  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="10 and 100 executors x 1k and 10k tasks; 1,000 workers")
    args = p.parse_args(argv)
    if args.quick:
        scale_tasks.main(["--executors", "10,100", "--tasks", "1000,10000"])
        print()
        return scale_master.main(["--workers", "1000"])
    scale_tasks.main([])
    print()
    return scale_master.main([])


if __name__ == "__main__":
    sys.exit(main())
