"""The task scheduler's indexes, which keep each event's cost flat as the cluster and the
stage grow: running attempts by task and by executor, executors with free slots, the
running median of task durations, per-task state allocated only for tasks that need it.

Each index is checked against the same quantity recomputed from scratch (plain Python
over the scheduler's attempts), over random sequences of events.
"""
from __future__ import annotations

import random
import statistics
import tracemalloc
from collections import deque
from typing import Any

import pytest

from sparkctl.scheduler.speculation import RunningQuantile
from sparkctl.scheduler.task_scheduler import (KillTask, Launch, TaskEnded, TaskScheduler, TaskSetAborted,
                                               TaskSetManager)
from sparkctl.scheduler.task_set_manager import HOST, PENDING, RUNNING, PendingTasks

pytestmark = pytest.mark.timeout(60)


def launches(actions: list[Any]) -> list[Any]:
    return [a.attempt for a in actions if isinstance(a, Launch)]


def check_indexes(ts: TaskScheduler) -> None:
    """Every index the scheduler keeps equals its value recomputed from the attempts."""
    c = ts.cpus_per_task
    for tsm in ts.task_sets:
        mine = {tid: a for tid, a in ts.attempts.items() if a.tsm is tsm}
        assert tsm.running == mine
        by_index: dict[int, list[int]] = {}
        for a in mine.values():
            by_index.setdefault(a.index, []).append(a.task_id)
        assert {i: sorted(a.task_id for a in atts) for i, atts in tsm.copies.items()} == \
            {i: sorted(tids) for i, tids in by_index.items()}
        if not tsm.zombie:
            assert {i for i, s in enumerate(tsm.state) if s == RUNNING} == set(by_index)
    for eid, slots in ts.executors.items():
        running = {tid for tid, a in ts.attempts.items() if a.executor_id == eid}
        assert slots.running == running
        assert slots.free == slots.cores - c * len(running)
    assert ts.executors_with_free_slots() == [e for e, s in ts.executors.items() if s.free >= c]
    assert ts.free_slots() == sum(s.free // c for s in ts.executors.values())


# ---------------------------------------------------------------- the running quantile
@pytest.mark.parametrize("q", [0.0, 0.25, 0.5, 0.75, 0.9])
def test_running_quantile_equals_sorted_reference(q: float) -> None:
    rnd = random.Random(q)
    rq = RunningQuantile(q)
    seen: list[float] = []
    for n in range(2000):
        # repeated values and runs of rising and falling ones, as task durations have
        x = rnd.choice([rnd.random(), round(rnd.random(), 1), n * 1e-3, -n * 1e-3, 0.5])
        rq.add(x)
        seen.append(x)
        assert rq.value() == sorted(seen)[int(q * len(seen))], (q, n)
        assert len(rq) == len(seen)


@pytest.mark.parametrize("q", [0.0, 0.5, 0.75])
def test_running_quantile_takes_batches_as_one_at_a_time(q: float) -> None:
    """extend: small batches go in one by one, large ones (more than it holds) by a sort."""
    rnd = random.Random(int(q * 100))
    rq = RunningQuantile(q)
    seen: list[float] = []
    for size in [1, 0, 5, 3, 40, 2, 100, 7, 400, 1, 1, 30]:
        batch = [rnd.choice([rnd.random(), 0.25, 1.0]) for _ in range(size)]
        rq.extend(batch)
        seen += batch
        assert rq.value() == sorted(seen)[int(q * len(seen))] and len(rq) == len(seen)
        x = rnd.random() * 2
        rq.add(x)
        seen.append(x)
        assert rq.value() == sorted(seen)[int(q * len(seen))]


def test_running_median_is_the_upper_median_spark_uses() -> None:
    rq = RunningQuantile()
    for x in [5.0, 1.0, 3.0, 2.0]:
        rq.add(x)
    assert rq.value() == 3.0 == statistics.median_high([5.0, 1.0, 3.0, 2.0])
    with pytest.raises(IndexError):
        RunningQuantile().value()
    with pytest.raises(ValueError):
        RunningQuantile(1.0)


# ---------------------------------------------------------------- offers go where there is room
def asked_for_tasks(tsm: TaskSetManager) -> list[str]:
    """The executors the task set is asked to give a task to from now on, in order (one
    entry for consecutive asks of the same executor)."""
    offered: list[str] = []
    real = tsm.next_index

    def spy(executor_id: str, num_executors: int, host: str = "") -> int | None:
        if not offered or offered[-1] != executor_id:
            offered.append(executor_id)
        return real(executor_id, num_executors, host)

    tsm.next_index = spy  # type: ignore[method-assign]
    return offered


def test_failure_offers_only_executors_with_free_slots() -> None:
    ts = TaskScheduler(max_failures=4)
    for e in range(200):
        ts.executor_added(f"e{e}", f"h{e // 4}", 2)
    started = launches(ts.submit(TaskSetManager(0, 0, 0, list(range(5000)))))
    assert len(started) == 400 and ts.executors_with_free_slots() == []
    offered = asked_for_tasks(ts.task_sets[0])
    victim = started[137]
    (again,) = launches(ts.task_failed(victim.task_id, ValueError("bad"), "ValueError: bad"))
    assert offered == [victim.executor_id]  # the one executor with room, not all 200
    # the slot runs the next pending task; the failed one waits for another executor
    assert again.executor_id == victim.executor_id and again.index == 400
    assert list(ts.task_sets[0].pending)[-1] == victim.index and ts.task_sets[0].failed_on == {victim.index: {victim.executor_id}}
    offered.clear()
    ts.task_succeeded(started[0].task_id, None, None, None)
    assert offered == [started[0].executor_id]
    check_indexes(ts)


def test_no_offer_when_nothing_is_left_to_launch() -> None:
    ts = TaskScheduler()
    for e in range(50):
        ts.executor_added(f"e{e}", "h", 1)
    started = launches(ts.submit(TaskSetManager(0, 0, 0, list(range(10)))))
    offered = asked_for_tasks(ts.task_sets[0])
    # 41 executors have room, one task is to rerun: offers stop once it runs
    (again,) = launches(ts.task_failed(started[0].task_id, ValueError("x"), "x"))
    assert offered == ["e0", "e10"] and again.index == 0 and again.executor_id == "e10"  # not where it failed
    offered.clear()
    ts.task_succeeded(started[1].task_id, None, None, None)  # nothing pending: no scan of the idle ones
    assert not ts.check_speculation(100.0, 0.75, 1.5)  # too few tasks finished to speculate
    assert offered == ["e1"]
    # a killed task goes back to the queue: the first executor with room runs it, no other is asked
    (again,) = launches(ts.task_failed(started[2].task_id, ValueError("x"), "x", killed=True))
    assert offered == ["e1", "e0"] and again.index == 2 and again.executor_id == "e0"


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kind", ["host", "executor"])
def test_an_offer_to_many_executors_puts_every_task_it_can_where_it_prefers(kind: str, seed: int) -> None:
    """When a stage starts on a cluster with free slots, each host (or executor) runs as
    many of the tasks preferring it as it has slots for: min(demand, slots), the most any
    placement can; an executor that ran out of its own tasks does not take those of a host
    whose free executor comes later in the offer. Counted against plain Python."""
    rnd = random.Random(seed)
    ts = TaskScheduler()
    ts.cpus_per_task = rnd.choice([1, 2])
    for e in range(rnd.randint(4, 24)):
        ts.executor_added(f"e{e}", f"h{e // 3}", rnd.choice([2, 4]))
    slots_of: dict[str, int] = {}
    for eid, s in ts.executors.items():
        key = s.host if kind == "host" else eid
        slots_of[key] = slots_of.get(key, 0) + s.cores // ts.cpus_per_task
    places = sorted(slots_of)
    n = rnd.randint(1, 2 * sum(slots_of.values()))
    wanted = {p: rnd.choice(places) for p in range(n) if rnd.random() < 0.7}
    preferred = {p: {HOST + w if kind == "host" else w} for p, w in wanted.items()}
    started = launches(ts.submit(TaskSetManager(0, 0, 0, list(range(n)), preferred=preferred)))
    assert len(started) == min(n, sum(slots_of.values()))
    where = {a.executor_id: (ts.executors[a.executor_id].host if kind == "host" else a.executor_id)
             for a in started}
    local = [a for a in started if wanted.get(a.index) == where[a.executor_id]]
    demand = {w: list(wanted.values()).count(w) for w in places}
    assert len(local) == sum(min(demand[w], slots_of[w]) for w in places)
    # and the local ones, per place, are the lowest partitions preferring it
    for w in places:
        mine = sorted(a.index for a in local if wanted[a.index] == w)
        assert mine == sorted(p for p in wanted if wanted[p] == w)[: len(mine)]
    check_indexes(ts)


def test_offers_follow_registration_order_after_slots_free() -> None:
    ts = TaskScheduler()
    for e in range(4):
        ts.executor_added(f"e{e}", "h", 1)
    first = launches(ts.submit(TaskSetManager(0, 0, 0, list(range(4)))))
    for a in reversed(first):  # e3 frees first, e0 last
        ts.task_succeeded(a.task_id, None, None, None)
    assert ts.executors_with_free_slots() == ["e0", "e1", "e2", "e3"]
    started = launches(ts.submit(TaskSetManager(1, 0, 1, list(range(3)))))
    assert [(a.executor_id, a.index) for a in started] == [("e0", 0), ("e1", 1), ("e2", 2)]


def test_cpus_per_task_set_after_executors_registered_rebuilds_the_index() -> None:
    ts = TaskScheduler()
    ts.executor_added("small", "h1", 1)
    ts.executor_added("big", "h2", 4)
    ts.cpus_per_task = 2
    assert ts.executors_with_free_slots() == ["big"] and ts.free_slots() == 2
    started = launches(ts.submit(TaskSetManager(0, 0, 0, list(range(3)))))
    assert [a.executor_id for a in started] == ["big", "big"]
    check_indexes(ts)


# ---------------------------------------------------------------- executor loss
def test_executor_lost_with_many_tasks_requeues_exactly_its_tasks() -> None:
    ts = TaskScheduler(max_failures=4)
    for e in range(100):
        ts.executor_added(f"e{e}", f"h{e % 10}", 2)
    manager = TaskSetManager(0, 0, 0, list(range(20_000)))
    started = launches(ts.submit(manager))
    lost = {f"e{e}" for e in range(0, 100, 7)}
    on_lost = sorted(a.index for a in started if a.executor_id in lost)
    for eid in sorted(lost):
        actions = ts.executor_lost(eid, "connection closed")
        assert not launches(actions) and not of_type(actions, TaskSetAborted)  # every other slot is busy
    assert sorted(i for i, f in enumerate(manager.failures) if f) == on_lost
    assert all(manager.state[i] == PENDING for i in on_lost)
    assert {i: manager.reasons[i] for i in on_lost} == {
        a.index: [f"attempt 0 on executor {a.executor_id}: executor {a.executor_id} lost: connection closed"]
        for a in started if a.executor_id in lost}
    assert set(manager.failed_on) == set(on_lost)  # nothing allocated for the tasks that never failed
    assert ts.executors_with_free_slots() == [] and ts.free_slots() == 0
    check_indexes(ts)
    # the replacements run the lost tasks first (requeued at the back, after the untouched ones
    # by order of loss, as before): every lost task is back once all tasks have run
    for eid in sorted(lost):
        ts.executor_added(eid + "b", "h-new", 2)
    check_indexes(ts)
    ended = drain(ts)
    assert sorted(ended) == list(range(20_000)) and manager.is_done() and not ts.task_sets


def of_type(actions: list[Any], cls: type) -> list[Any]:
    return [a for a in actions if isinstance(a, cls)]


def drain(ts: TaskScheduler) -> list[int]:
    """Succeed the oldest running attempt until nothing runs; the partitions that ended."""
    ended: list[int] = []
    while ts.attempts:
        tid = next(iter(ts.attempts))
        ended += [e.partition for e in of_type(ts.task_succeeded(tid, None, None, None), TaskEnded)]
    return ended


# ---------------------------------------------------------------- random events against recomputed indexes
@pytest.mark.parametrize("seed", range(6))
def test_random_events_keep_indexes_and_end_every_task_once(seed: int) -> None:
    rnd = random.Random(seed)
    ts = TaskScheduler(max_failures=1000)
    ts.cpus_per_task = rnd.choice([1, 2])
    names = iter(range(10**6))
    for _ in range(rnd.randint(1, 12)):
        ts.executor_added(f"e{next(names)}", f"h{rnd.randint(0, 3)}", rnd.choice([2, 4]))
    sets = [TaskSetManager(s, 0, s, list(range(rnd.randint(1, 300))),
                           preferred={p: {rnd.choice(["e0", "e1", "host:h1", "host:h2"])} for p in range(0, 300, 7)},
                           max_failures=10**6)
            for s in range(3)]
    for t in sets:
        ts.submit(t, now=0.0)
    succeeded: dict[int, list[int]] = {t.stage_id: [] for t in sets}
    now = 0.0
    for step in range(6000):
        now += 0.01
        if not ts.attempts:
            if not ts.task_sets:
                break
            ts.executor_added(f"e{next(names)}", f"h{rnd.randint(0, 3)}", 2, now)
            continue
        tid = rnd.choice(list(ts.attempts))
        r = rnd.random()
        if r < 0.70:
            actions = ts.task_succeeded(tid, None, None, None, now)
        elif r < 0.82:
            actions = ts.task_failed(tid, ValueError("x"), "x", now=now)
        elif r < 0.86:
            actions = ts.task_failed(tid, ValueError("x"), "killed", killed=True, now=now)
        elif r < 0.90:
            eid = ts.attempts[tid].executor_id
            actions = ts.executor_lost(eid, "gone", now, caused_by_app=rnd.random() < 0.5)
            if rnd.random() < 0.9:
                actions += ts.executor_added(f"e{next(names)}", f"h{rnd.randint(0, 3)}", rnd.choice([2, 4]), now)
        else:
            actions = ts.check_speculation(now, 0.5, 1.2)
        for e in of_type(actions, TaskEnded):
            succeeded[e.stage_id].append(e.partition)
        for k in of_type(actions, KillTask):  # the runtime reports a killed attempt back
            if k.task_id in ts.attempts:
                for e in of_type(ts.task_failed(k.task_id, ValueError("k"), "killed", killed=True, now=now),
                                 TaskEnded):
                    succeeded[e.stage_id].append(e.partition)
        assert not of_type(actions, TaskSetAborted)
        if step % 50 == 0:
            check_indexes(ts)
    check_indexes(ts)
    for t in sets:
        assert sorted(succeeded[t.stage_id]) == sorted(set(succeeded[t.stage_id]))  # at most once each
        assert t.is_done() and sorted(succeeded[t.stage_id]) == t.partitions


# ---------------------------------------------------------------- speculation looks at the oldest only
def brute_force_stragglers(tsm: TaskSetManager, finished: list[float], now: float, multiplier: float) -> set[int]:
    """Spark's rule over every running attempt, with the median sorted from scratch."""
    durations = sorted(finished)
    threshold = max(multiplier * durations[len(durations) // 2], 0.1)
    copies: dict[int, int] = {}
    for a in tsm.running.values():
        copies[a.index] = copies.get(a.index, 0) + 1
    return {a.index for a in tsm.running.values() if copies[a.index] == 1 and now - a.start > threshold}


@pytest.mark.parametrize("in_order", [True, False])
@pytest.mark.parametrize("median_fed", ["from submit", "from a first check", "at the check"])
def test_stragglers_match_the_rule_over_every_running_task(in_order: bool, median_fed: str) -> None:
    """The same stragglers whether the running median took each duration as its task
    finished (speculation declared before the stage, or since an early check) or all of
    them at the first check that could speculate."""
    rnd = random.Random(7)
    ts = TaskScheduler()
    ts.speculation = median_fed == "from submit"
    for e in range(40):
        ts.executor_added(f"e{e}", "h", 1)
    manager = TaskSetManager(0, 0, 0, list(range(400)))
    finished: list[float] = []
    ts.submit(manager, now=0.0)
    now = 0.0
    while manager.num_succeeded < 300:
        if median_fed == "from a first check" and manager.num_succeeded == 50:
            assert manager.durations and not manager.find_stragglers(now, 0.75, 2.0)  # too few finished yet
        fed = median_fed == "from submit" or (median_fed == "from a first check" and manager.num_succeeded >= 50)
        # fed: each duration went into the median as its task finished; else they wait in a list
        assert len(manager.durations) == (0 if fed else manager.num_succeeded)
        tid = rnd.choice(list(ts.attempts))
        att = ts.attempts[tid]
        now += rnd.random() * 0.05
        # a clock that goes back now and then makes launches come out of start order
        at = now - (rnd.random() if not in_order and rnd.random() < 0.1 else 0.0)
        finished.append(at - att.start)
        ts.task_succeeded(tid, None, None, None, now=at)
    assert manager._started_in_order is in_order
    expected = brute_force_stragglers(manager, finished, now + 0.3, 2.0)
    assert manager.find_stragglers(now + 0.3, 0.75, 2.0) == bool(expected)
    assert manager.speculatable == expected and expected


def test_a_straggler_whose_copy_failed_is_marked_again() -> None:
    ts = TaskScheduler()
    ts.executor_added("e1", "h1", 2)
    ts.executor_added("e2", "h2", 2)
    manager = TaskSetManager(0, 0, 0, list(range(4)))
    started = launches(ts.submit(manager, now=0.0))
    slow = started[0]
    for att in started[1:]:
        ts.task_succeeded(att.task_id, None, None, None, now=1.0)
    (copy,) = launches(ts.check_speculation(3.0, 0.75, 1.5))
    assert copy.index == slow.index and not manager.speculatable
    assert not launches(ts.task_failed(copy.task_id, ValueError("x"), "x", now=3.1))  # the original still runs
    (again,) = launches(ts.check_speculation(3.2, 0.75, 1.5))
    assert again.index == slow.index and again.executor_id != slow.executor_id and again.attempt == 2


# ---------------------------------------------------------------- memory
def test_a_large_task_set_allocates_no_per_task_containers() -> None:
    n = 100_000
    partitions = list(range(n))
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        manager = TaskSetManager(0, 0, 0, partitions)
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    # flat arrays: about 17 bytes a task (an empty set a task alone was 216)
    assert held < 24 * n, held
    assert manager.failed_on == {} and manager.reasons == {} and manager.copies == {}


def test_a_clock_that_went_back_falls_back_to_checking_every_running_task() -> None:
    """Launches normally come in clock order, so the check stops at the first attempt not
    slow enough; one launched with an earlier clock than the one before makes it look at all."""
    ts = TaskScheduler()
    for e in range(3):
        ts.executor_added(f"e{e}", "h", 1)
    manager = TaskSetManager(0, 0, 0, list(range(6)))
    first = launches(ts.submit(manager, now=0.0))  # tasks 0, 1, 2 at 0.0
    (t3,) = launches(ts.task_succeeded(first[0].task_id, None, None, None, now=1.0))  # took 1.0
    (t4,) = launches(ts.task_succeeded(t3.task_id, None, None, None, now=1.5))  # took 0.5; task 4 starts at 1.5
    (t5,) = launches(ts.task_succeeded(first[1].task_id, None, None, None, now=0.5))  # the clock went back
    assert [a.index for a in manager.running.values()] == [2, 4, 5] and t5.start < t4.start
    # median of (1.0, 0.5, 0.5) is 0.5: at 2.0 tasks 2 (2.0 old) and 5 (1.5 old) are past 0.75, task 4 is not
    assert manager.find_stragglers(2.0, 0.5, 1.5)
    assert manager.speculatable == {2, 5}


@pytest.mark.parametrize("seed", range(5))
def test_barrier_tasks_go_where_the_plain_rule_puts_them(seed: int) -> None:
    """A barrier task goes to a preferred executor with room, else to the executor with the
    most free cores on the first preferred host (by name) that has room, else to the first
    executor, in registration order, with the most free cores: the scheduler places them as
    that rule does when recomputed over every executor for each task."""
    rnd = random.Random(seed)
    ts = TaskScheduler()
    for e in range(rnd.randint(3, 30)):
        ts.executor_added(f"e{e}", f"h{e % 3}", rnd.choice([1, 2, 4, 8]))
    cores = sum(s.cores for s in ts.executors.values())
    busy = launches(ts.submit(TaskSetManager(0, 0, 0, list(range(rnd.randint(0, cores))))))  # all of them run
    for a in busy[: len(busy) // 2]:
        ts.task_succeeded(a.task_id, None, None, None)
    free = {e: s.free for e, s in ts.executors.items()}
    n = rnd.randint(1, sum(free.values()))
    hosts = {e: s.host for e, s in ts.executors.items()}
    preferred: dict[int, set[str]] = {}
    for p in range(n):
        if rnd.random() < 0.3:
            preferred.setdefault(p, set()).add(f"e{rnd.randrange(len(free))}")
        if rnd.random() < 0.4:
            preferred.setdefault(p, set()).update(HOST + f"h{rnd.randrange(4)}" for _ in range(rnd.randint(1, 2)))
    expected = []
    for i in range(n):
        where = next((e for e in sorted(p for p in preferred.get(i, ()) if not p.startswith(HOST)) if free[e] >= 1),
                     None)
        for host in sorted(p[len(HOST):] for p in preferred.get(i, ()) if p.startswith(HOST)):
            if where is not None:
                break
            room = [e for e in free if hosts[e] == host and free[e] >= 1]
            if room:
                where = max(room, key=lambda e: free[e])
        if where is None:
            where = max(free, key=lambda e: free[e])  # the first of the largest, in dict (registration) order
        free[where] -= 1
        expected.append(where)
    barrier = TaskSetManager(1, 0, 1, list(range(n)), preferred=preferred, barrier=True)
    started = launches(ts.submit(barrier))
    assert sorted((a.index, a.executor_id) for a in started) == list(enumerate(expected))
    check_indexes(ts)


def test_pending_tasks_pop_in_the_order_a_deque_of_them_all_would() -> None:
    rnd = random.Random(3)
    for n in (0, 1, 5, 50):
        queue, ref = PendingTasks(n), deque(range(n))
        for _ in range(300):
            op = rnd.choice(["pop", "pop", "append", "appendleft", "clear"] if rnd.random() < 0.05 else
                            ["pop", "pop", "append", "appendleft"])
            if op == "pop":
                if ref:
                    assert queue.popleft() == ref.popleft()
                else:
                    with pytest.raises(IndexError):
                        queue.popleft()
            elif op == "clear":
                queue.clear()
                ref.clear()
            else:
                x = rnd.randrange(100)
                getattr(queue, op)(x)
                getattr(ref, op)(x)
            assert list(queue) == list(ref) and len(queue) == len(ref) and bool(queue) == bool(ref)


def test_pending_tasks_pop_first_skips_the_ones_no_longer_pending() -> None:
    rnd = random.Random(5)
    state = bytearray(rnd.choice([PENDING, RUNNING]) for _ in range(200))
    queue, ref = PendingTasks(200), deque(range(200))
    for i in rnd.sample(range(200), 30):
        queue.appendleft(i)
        ref.appendleft(i)
        queue.append(i)
        ref.append(i)
    while True:
        expected = None
        while ref:
            j = ref.popleft()
            if state[j] == PENDING:
                expected = j
                break
        got = queue.pop_first(state)
        assert got == expected and list(queue) == list(ref)
        if got is None:
            break
        state[got] = RUNNING
