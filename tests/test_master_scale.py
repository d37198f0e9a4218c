"""The master's state machine under random events: its counters, its index of workers with
room and its journal always agree with the state they summarise, recomputed the slow way.

Each check below is the plain definition (a sum over executors, a walk over every worker,
the whole snapshot), which is what the master did on every event before it kept counters,
an index and a journal.
"""
from __future__ import annotations

import json
import random
from typing import Any

import pytest

from sparkctl.deploy import messages as m
from sparkctl.deploy.master_state import Log, MasterStateMachine, Reply, SendToWorker
from sparkctl.deploy.recovery import ReplayState

T0 = 1_700_000_000.0


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data, sort_keys=True, default=str))


def check_counters(sm: MasterStateMachine) -> None:
    """Every counter equals the sum it stands for; the index holds exactly the ALIVE workers
    with free cores, under their free cores; the heartbeat order holds the ALIVE workers."""
    for w in sm.workers.values():
        cores = sum(e.cores for e in w.executors.values()) + sum(d.desc.cores for d in w.drivers.values())
        memory = sum(e.memory for e in w.executors.values()) + sum(d.desc.memory for d in w.drivers.values())
        assert (w.cores_used, w.memory_used) == (cores, memory), w.id
        per_app: dict[str, int] = {}
        for app_id, _ in w.executors:
            per_app[app_id] = per_app.get(app_id, 0) + 1
        assert w.app_executors == per_app, w.id
    for a in sm.apps.values():
        assert a.cores_granted == sum(e.cores for e in a.executors.values()), a.id
    with_room = [w for w in sm.workers.values() if w.state == m.ALIVE and w.cores_free > 0]
    expected = sorted(with_room, key=lambda w: -w.cores_free)  # stable: registration order breaks ties
    assert list(sm._index.with_room(1)) == expected
    assert len(sm._index) == len(with_room)
    # The timeout tick's order: exactly the ALIVE workers, oldest heartbeat first.
    order = list(sm._heartbeats._alive.values())
    assert sorted(w.id for w in order) == sorted(w.id for w in sm.workers.values() if w.state == m.ALIVE)
    assert all(sm.workers[w.id] is w for w in order)
    assert [w.last_heartbeat for w in order] == sorted(w.last_heartbeat for w in order)


def check_nothing_left_to_grant(sm: MasterStateMachine) -> None:
    """After an event, no application that still wants cores could get an executor on any
    ALIVE worker: the schedule pass missed nothing (the definition, walking every worker)."""
    for a in sm.active_apps():
        if a.awaiting_driver_since is not None or sm._out_of_retries(a):
            continue
        unit = a.desc.executor_cores or 1
        if a.cores_left < unit:
            continue
        for w in sm.workers.values():
            if w.state != m.ALIVE or w.cores_free < unit or w.memory_free < a.desc.executor_memory:
                continue
            if a.desc.executor_cores is None and any(k[0] == a.id for k in w.executors):
                continue
            raise AssertionError(f"{a.id} wants {a.cores_left} cores and worker {w.id} has room: "
                                 f"{w.cores_free} cores, {w.memory_free} MiB")
    for d in sm.drivers.values():
        if d.state == m.WAITING and d.not_before is None:
            assert not any(w.state == m.ALIVE and w.cores_free >= d.desc.cores and w.memory_free >= d.desc.memory
                           for w in sm.workers.values()), d.id


def _driver_desc(rng: random.Random) -> m.DriverDescription:
    return m.DriverDescription(m.DriverFile("job.py", b"print(1)\n"), [], [], {}, rng.choice([1, 2]),
                               rng.choice([256, 1024]), supervise=rng.random() < 0.5)


class Driver:
    """Feeds a machine random events the daemon could feed it, in a plausible order."""

    def __init__(self, sm: MasterStateMachine, seed: int) -> None:
        self.sm = sm
        self.rng = random.Random(seed)
        self.now = T0
        self.next_worker = 0

    def step(self) -> list[Any]:
        sm, rng = self.sm, self.rng
        self.now += rng.choice([0.5, 1.0, 5.0, 30.0])
        workers = list(sm.workers.values())
        alive = [w for w in workers if w.state == m.ALIVE]
        apps = [a for a in sm.apps.values() if a.active]
        kind = rng.choices(
            ["worker", "reregister", "heartbeat", "app", "reconnect", "unregister", "disconnect", "running",
             "exit", "fail", "worker_lost", "tick", "driver", "driver_state", "kill_driver", "kill_app"],
            [6, 2, 4, 5, 1, 2, 1, 4, 4, 3, 2, 2, 2, 3, 1, 1])[0]
        if kind == "worker" or not workers:
            i = self.next_worker
            self.next_worker += 1
            return sm.register_worker(m.RegisterWorker(f"w{i}", f"h{i % 7}", 7000 + i, rng.choice([1, 2, 4, 8]),
                                                       rng.choice([1024, 2048, 4096])), self.now)
        if kind == "reregister":
            w = rng.choice(workers)
            listed = [(a, e, x.cores, x.memory) for (a, e), x in w.executors.items() if rng.random() < 0.7]
            drivers = [(d.id, d.desc.cores, d.desc.memory) for d in w.drivers.values()]
            wid = w.id if rng.random() < 0.7 else f"{w.id}b"  # same id, or a new id at the same address
            return sm.register_worker(m.RegisterWorker(wid, w.host, w.port, w.cores, w.memory, executors=listed,
                                                       drivers=drivers), self.now)
        if kind == "heartbeat":
            return sm.worker_heartbeat(rng.choice(workers).id, self.now)
        if kind == "app" or (not apps and kind in ("unregister", "disconnect", "kill_app")):
            desc = m.ApplicationDescription("a", "127.0.0.1", 40000, rng.choice([None, 2, 3, 8]),
                                            rng.choice([None, 1, 2]), rng.choice([256, 512, 1024]))
            return sm.register_application(m.RegisterApplication(desc), self.now)
        if kind == "reconnect":
            # a driver back after a restart, with its id: known, or not (yet)
            app_id = rng.choice(apps).id if apps and rng.random() < 0.5 else f"app-old-{rng.randrange(3)}"
            desc = m.ApplicationDescription("b", "127.0.0.1", 40001, None, 1, 256)
            return sm.register_application(m.RegisterApplication(desc, app_id), self.now)
        if kind == "unregister":
            return sm.unregister_application(rng.choice(apps).id, m.FINISHED, self.now)
        if kind == "disconnect":
            return sm.driver_disconnected(rng.choice(apps).id, self.now)
        if kind == "kill_app":
            return sm.kill_application(rng.choice(apps).id, self.now)
        executors = [(w, x) for w in alive for x in w.executors.values()]
        if kind in ("running", "exit", "fail") and executors:
            w, x = rng.choice(executors)
            state, code = {"running": (m.EXEC_RUNNING, None), "exit": (m.EXITED, 0),
                           "fail": (m.EXEC_FAILED, 1)}[kind]
            return sm.executor_state_changed(w.id, m.ExecutorStateChanged(x.app_id, x.executor_id, state,
                                                                          exit_code=code), self.now)
        if kind == "worker_lost" and alive:
            return sm.worker_disconnected(rng.choice(alive).id, self.now)
        if kind == "driver":
            return sm.submit_driver(_driver_desc(rng), self.now)
        placed = [(w, d) for w in alive for d in w.drivers.values()]
        if kind == "driver_state" and placed:
            w, d = rng.choice(placed)
            state = rng.choice([m.RUNNING, m.FINISHED, m.FAILED, m.KILLED])
            return sm.driver_state_changed(w.id, m.DriverStateChanged(d.id, state, exit_code=0), self.now)
        if kind == "kill_driver" and sm.drivers:
            return sm.kill_driver(rng.choice(list(sm.drivers)), self.now)
        # a tick, sometimes long after the last heartbeats: workers time out, orphans are reaped
        if rng.random() < 0.3:
            self.now += sm.worker_timeout + 1
        return sm.check_worker_timeouts(self.now)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", range(8))
def test_random_events_keep_counters_index_and_journal_exact(seed: int) -> None:
    sm = MasterStateMachine(spread_out=seed % 2 == 0, worker_timeout=60, max_executor_retries=3,
                            retained_applications=4, retained_drivers=3)
    sm.track_changes = True
    replay = ReplayState(_plain(sm.snapshot()))
    events = Driver(sm, seed)
    for step in range(400):
        actions = events.step()
        assert all(isinstance(a, (Log, Reply, SendToWorker)) or a is not None for a in actions)
        check_counters(sm)
        check_nothing_left_to_grant(sm)
        for record in _plain({"r": sm.take_changes()})["r"]:
            replay.apply(record)
        assert replay.snapshot() == _plain(sm.snapshot()), f"seed {seed}, step {step}"
    # the journal's state restores to the same master as the snapshot does
    a, b = MasterStateMachine(), MasterStateMachine()
    a.restore(replay.snapshot(), events.now)
    b.restore(_plain(sm.snapshot()), events.now)
    assert a.snapshot() == b.snapshot()
    check_counters(a)


@pytest.mark.timeout(10)
def test_heartbeats_record_nothing() -> None:
    sm = MasterStateMachine()
    sm.track_changes = True
    sm.register_worker(m.RegisterWorker("w1", "h1", 7078, 4, 4096), T0)
    assert sm.take_changes()  # the registration
    for i in range(5):
        assert sm.worker_heartbeat("w1", T0 + i) == []
    assert sm.take_changes() == []


@pytest.mark.timeout(60)
def test_one_exit_at_5000_workers_reads_only_workers_with_room() -> None:
    """5,000 full workers and 100 apps (99 waiting): an executor's exit offers only the one
    worker it freed, and the first app in line takes it back."""
    sm = MasterStateMachine()
    for i in range(5000):
        sm.register_worker(m.RegisterWorker(f"w{i}", f"h{i}", 7078, 4, 8192), T0)
    desc = m.ApplicationDescription("all", "127.0.0.1", 40000, None, None, 1024)
    first = next(a.msg.app_id for a in sm.register_application(m.RegisterApplication(desc), T0)
                 if isinstance(a, Reply))
    for j in range(99):
        sm.register_application(m.RegisterApplication(desc), T0)
    assert len(sm._index) == 0 and sm.apps[first].cores_granted == 20000
    ex = sm.apps[first].executors["1234"]
    offered: list[int] = []
    original = sm._index.with_room

    def counting(cores: int) -> Any:
        for w in original(cores):
            offered.append(1)
            yield w
    sm._index.with_room = counting  # type: ignore[method-assign]
    actions = sm.executor_state_changed(ex.worker_id, m.ExecutorStateChanged(first, "1234", m.EXITED, exit_code=0),
                                        T0 + 1)
    launched = [a.msg for a in actions if isinstance(a, SendToWorker) and isinstance(a.msg, m.LaunchExecutor)]
    assert [(x.app_id, x.cores) for x in launched] == [(first, 4)]
    assert len(offered) == 1  # one worker offered once, not 5,000 workers for each of 100 apps
    check_counters(sm)


@pytest.mark.timeout(30)
def test_receive_buffers_start_small_and_grow_for_what_arrives() -> None:
    """An idle connection (a worker that only heartbeats) keeps a small receive buffer; frames
    of every size, in bursts or split across receives, still arrive whole and in order."""
    import socket
    import threading

    from sparkctl.rpc import Connection

    a, b = socket.socketpair()
    ours, theirs = Connection(a), Connection(b)
    try:
        ours.send(m.WorkerHeartbeat("w1"))
        assert theirs.recv(timeout=5) == m.WorkerHeartbeat("w1")
        assert theirs._buf is not None and len(theirs._buf) <= 4096
        rng = random.Random(7)
        sizes = [rng.choice([0, 1, 100, 4000, 4100, 9000, 65000, 70000, 200000]) for _ in range(300)]
        sent = [("x" * n, i) for i, n in enumerate(sizes)] + [("burst", i) for i in range(2000)]
        sender = threading.Thread(target=lambda: [ours.send(msg) for msg in sent])
        sender.start()
        got = [theirs.recv(timeout=10) for _ in sent]
        sender.join(10)
        assert got == sent
        assert len(theirs._buf) <= 128 * 1024
    finally:
        ours.close()
        theirs.close()
