"""CPU seconds a process has run, from the scheduler's nanosecond count of each thread
(``/proc/<pid>/task/*/schedstat``): user and system ticks are too coarse to tell a few
microseconds a connection or a request apart over a run of a second."""
from __future__ import annotations

import os


def run_seconds(pid: int | str = "self") -> float:
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:  # a thread that ended since the listing
            pass
    return total / 1e9
