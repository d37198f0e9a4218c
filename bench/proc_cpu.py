"""CPU seconds a process has run, from the scheduler's nanosecond count of each thread
(``/proc/<pid>/task/*/schedstat``): user and system ticks are too coarse to tell a few
microseconds a connection or a request apart over a run of a second. And the machine's
processes with their ``/proc/<pid>/stat`` fields, to find a process's children."""
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


def stat_fields() -> dict[int, list[str]]:
    """Every process's ``/proc/<pid>/stat`` fields after its command name: [0] its state,
    [1] its parent's pid, [11] and [12] its user and system ticks."""
    out: dict[int, list[str]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    out[int(name)] = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):  # a process that ended since the listing
                continue
    return out
