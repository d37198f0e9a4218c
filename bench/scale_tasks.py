"""The task scheduler's cost per event as the cluster and the stage grow, with no sockets.

    python bench/scale_tasks.py                       # 10, 100, 1,000 executors x 1k, 10k, 100k tasks
    python bench/scale_tasks.py --executors 10,1000 --tasks 100000 --json out.json

It drives the real ``TaskScheduler`` and ``TaskSetManager`` (the driver's state machines)
the way the runtime does, and times each event the runtime feeds them:

* ``stage``: ``submit`` of one task set, then ``task_succeeded`` for every task, oldest
  running first, each completion launching the next task on the freed slot: the whole
  stage's scheduling cost divided by its tasks (the per-task cost);
* ``task_succeeded``: the same loop's completions alone, with every slot busy;
* ``task_failed``: the oldest running task fails (counted) while every slot is busy and
  tasks are pending: the retry is queued and the freed slot runs another task;
* ``executor_lost``: the executor running the oldest task is lost (its task counts a
  failure and is requeued); the replacement's ``executor_added`` is not timed;
* ``check_speculation``: the periodic check once 75% of the tasks succeeded, every slot
  busy and no straggler among them (the usual case); ``first_check_speculation`` is the
  first check of the stage alone. Speculation is on from the start, as the runtime
  declares it, so the stage's tasks feed the running median as they finish:
  ``spec_stage_us_per_task`` is that stage's scheduling cost per task (to compare with
  ``stage_us_per_task``, speculation off);
* ``tsm_mb``: the memory a fresh ``TaskSetManager`` of that many tasks holds (tracemalloc).

Executors have one core each (``CORES``), so 1,000 executors are 1,000 task slots and as
many running attempts. A task takes one unit of the scheduler's clock on average (the
clock moves a random step at each completion, oldest task first). Times are
this process's CPU time (``time.process_time``), so that other load on the machine does
not count; on an idle machine they equal the wall time. The cyclic garbage collector is
off while events are timed: a full collection over a 100k-task stage's objects takes
milliseconds and would land on whichever event happened to allocate last.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import time
import tracemalloc
from collections import deque
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sparkctl.scheduler.task_scheduler import Launch, TaskScheduler, TaskSetManager  # noqa: E402

CORES = 1  # per executor
EXECUTORS = [10, 100, 1_000]
TASKS = [1_000, 10_000, 100_000]
SAMPLES = 200  # events timed for failure, loss and speculation
# CPU time of this process: the scheduler is single-threaded, and on a shared machine the
# wall clock also counts the time other processes held the core
clock = time.process_time


def _cluster(executors: int) -> TaskScheduler:
    ts = TaskScheduler(max_failures=4)
    for e in range(executors):
        ts.executor_added(f"exec-{e}", f"host-{e // 4}", CORES)
    return ts


def _launched(actions: list[Any], running: deque[int]) -> None:
    for a in actions:
        if isinstance(a, Launch):
            running.append(a.attempt.task_id)


def _run_stage(ts: TaskScheduler, tasks: int, stop_after: int | None = None) -> tuple[float, float, int, deque[int], float]:
    """Submit a stage and complete its tasks oldest first until ``stop_after`` succeeded.
    Returns (submit seconds, completion seconds, completions, running task ids, clock)."""
    executors = len(ts.executors)
    slots = executors * CORES
    tsm = TaskSetManager(0, 0, 0, list(range(tasks)))
    running: deque[int] = deque()
    limit = tasks if stop_after is None else stop_after
    t0 = clock()
    actions = ts.submit(tsm, now=0.0)
    submit_s = clock() - t0
    _launched(actions, running)
    now = 0.0
    # a task runs one time unit on average; steps of random length make the durations differ
    rnd = random.Random(tasks)
    steps = [rnd.random() * 2.0 / slots for _ in range(limit)]
    done = 0
    succeeded = ts.task_succeeded
    t0 = clock()
    while running and done < limit:
        now += steps[done]
        actions = succeeded(running.popleft(), None, None, None, now)
        for a in actions:
            if type(a) is Launch:
                running.append(a.attempt.task_id)
        done += 1
    complete_s = clock() - t0
    return submit_s, complete_s, done, running, now


def _per_event(n: int, event: Callable[[int], Any]) -> float:
    """Mean µs of ``event(k)`` for k in range(n)."""
    t0 = clock()
    for k in range(n):
        event(k)
    return (clock() - t0) / max(n, 1) * 1e6


def measure(executors: int, tasks: int) -> dict[str, Any]:
    gc.collect()
    gc.disable()
    try:
        return _measure(executors, tasks)
    finally:
        gc.enable()


def _measure(executors: int, tasks: int) -> dict[str, Any]:
    row: dict[str, Any] = {"executors": executors, "cores_per_executor": CORES, "tasks": tasks}

    ts = _cluster(executors)
    submit_s, complete_s, done, _, _ = _run_stage(ts, tasks)
    assert done == tasks and ts.running_tasks() == 0, "the stage did not finish"
    row["stage_us_per_task"] = (submit_s + complete_s) / tasks * 1e6
    row["task_succeeded_us"] = complete_s / done * 1e6

    # failures and losses with the stage a third done: every slot busy, tasks pending
    # the oldest running attempt fails, SAMPLES times
    ts = _cluster(executors)
    _, _, _, running, now = _run_stage(ts, tasks, stop_after=tasks // 3)
    err = RuntimeError("task failed")
    attempts = ts.attempts
    row["task_failed_us"] = _per_event(
        SAMPLES, lambda k: ts.task_failed(next(iter(attempts)), err, "RuntimeError", now=now))

    # the executor running the oldest attempt is lost, SAMPLES times; a new one replaces it
    ts = _cluster(executors)
    _, _, _, running, now = _run_stage(ts, tasks, stop_after=tasks // 3)
    spent = 0.0
    for k in range(SAMPLES):
        lost = ts.attempts[next(iter(ts.attempts))].executor_id
        t0 = clock()
        ts.executor_lost(lost, "connection closed", now)
        spent += clock() - t0
        ts.executor_added(f"exec-again-{k}", f"host-{k // 4}", CORES, now)
    row["executor_lost_us"] = spent / SAMPLES * 1e6

    # speculation on (the runtime says so when spark.speculation is set): the stage's tasks
    # feed the median as they finish; checks once 75% succeeded, the first one alone too
    ts = _cluster(executors)
    ts.speculation = True
    submit_s, complete_s, done, running, now = _run_stage(ts, tasks, stop_after=tasks * 3 // 4)
    row["spec_stage_us_per_task"] = (submit_s + complete_s) / done * 1e6
    row["first_check_speculation_us"] = _per_event(1, lambda k: ts.check_speculation(now, 0.75, 1.5))
    row["check_speculation_us"] = _per_event(50, lambda k: ts.check_speculation(now, 0.75, 1.5))
    return row


def tsm_memory_mb(tasks: int) -> float:
    """MB held by a fresh TaskSetManager of ``tasks`` tasks."""
    gc.collect()
    tracemalloc.start()
    try:
        partitions = list(range(tasks))
        base = tracemalloc.get_traced_memory()[0]
        tsm = TaskSetManager(0, 0, 0, partitions)
        after = tracemalloc.get_traced_memory()[0]
        del tsm
    finally:
        tracemalloc.stop()
    return (after - base) / 1e6


def run(executors: list[int], tasks: list[int]) -> list[dict[str, Any]]:
    """One row per (executors, tasks) pair, µs per event; ``tsm_mb`` per task count."""
    memory = {t: tsm_memory_mb(t) for t in tasks}
    rows = []
    for t in tasks:
        for e in executors:
            row = measure(e, t)
            row["tsm_mb"] = memory[t]
            rows.append(row)
    return rows


COLUMNS = [("executors", "executors", "{:,}"), ("tasks", "tasks", "{:,}"),
           ("stage_us_per_task", "stage µs/task", "{:.2f}"),
           ("spec_stage_us_per_task", "with speculation", "{:.2f}"), ("task_succeeded_us", "succeeded µs", "{:.2f}"),
           ("task_failed_us", "failed µs", "{:.2f}"), ("executor_lost_us", "exec lost µs", "{:.2f}"),
           ("check_speculation_us", "speculation µs", "{:.2f}"),
           ("first_check_speculation_us", "1st speculation µs", "{:.2f}"), ("tsm_mb", "TSM MB", "{:.2f}")]


def format_table(rows: list[dict[str, Any]]) -> str:
    header = [title for _, title, _ in COLUMNS]
    body = [[fmt.format(r[key]) for key, _, fmt in COLUMNS] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(header, *body)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in body]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--executors", default=",".join(map(str, EXECUTORS)), help="comma-separated executor counts")
    p.add_argument("--tasks", default=",".join(map(str, TASKS)), help="comma-separated task counts")
    p.add_argument("--json", help="also write the rows to this file")
    args = p.parse_args(argv)
    rows = run([int(x) for x in args.executors.split(",")], [int(x) for x in args.tasks.split(",")])
    print(f"TaskScheduler, {CORES}-core executors, µs per event")
    print(format_table(rows))
    by = {(r["executors"], r["tasks"]): r for r in rows}
    for t in sorted({r["tasks"] for r in rows}):
        es = sorted(e for e, tt in by if tt == t)
        if len(es) > 1:
            lo, hi = by[(es[0], t)], by[(es[-1], t)]
            print(f"{t:,} tasks: per-task cost at {es[-1]:,} executors is "
                  f"{hi['stage_us_per_task'] / lo['stage_us_per_task']:.2f} x that at {es[0]:,}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
