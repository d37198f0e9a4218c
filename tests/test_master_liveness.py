"""The master's liveness rules, driven with events only: which workers the timeout tick
declares DEAD or forgets, and in what order (checked against a plain-Python model that
walks every worker, as the tick once did), through a recovery too; and what becomes of
the executors and drivers a worker lists when it comes back after the master lost it."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

import pytest

from sparkctl.deploy import messages as m
from sparkctl.deploy.master_state import (
    DEAD_WORKER_PERSISTENCE,
    Action,
    DisconnectWorker,
    Log,
    MasterStateMachine,
    Reply,
    SendToDriver,
    SendToWorker,
)
from sparkctl.deploy.recovery import ReplayState

T0 = 1_700_000_000.0
TIMEOUT = 60.0
FORGET_AFTER = (DEAD_WORKER_PERSISTENCE + 1) * TIMEOUT


def worker(wid: str, cores: int = 4, memory: int = 4096, executors: list[tuple[str, str, int, int]] | None = None,
           drivers: list[tuple[str, int, int]] | None = None) -> m.RegisterWorker:
    return m.RegisterWorker(wid, f"host-{wid}", 7078, cores, memory, webui_port=8081, executors=executors or [],
                            drivers=drivers or [])


def app(cores_max: int | None = None, executor_cores: int | None = None, app_id: str | None = None
        ) -> m.RegisterApplication:
    return m.RegisterApplication(m.ApplicationDescription("app", "driver-host", 40000, cores_max, executor_cores, 512),
                                 app_id)


def of(actions: list[Action], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def registered_app_id(actions: list[Action]) -> str:
    (reply,) = [a for a in of(actions, Reply) if isinstance(a.msg, m.RegisteredApplication)]
    return str(reply.msg.app_id)


def declared_dead(actions: list[Action]) -> list[str]:
    return [a.worker_id for a in of(actions, DisconnectWorker)]


def forgotten(actions: list[Action]) -> list[str]:
    return [a.text.split()[2] for a in of(actions, Log) if a.text.startswith("Forgetting worker ")]


def to_worker(actions: list[Action], msg_type: type) -> list[tuple[str, Any]]:
    return [(a.worker_id, a.msg) for a in of(actions, SendToWorker) if isinstance(a.msg, msg_type)]


def killed(actions: list[Action]) -> list[tuple[str, str, str]]:
    """(worker, app, executor) of every KillExecutor, sorted."""
    return sorted((w, k.app_id, k.executor_id) for w, k in to_worker(actions, m.KillExecutor))


def to_driver(actions: list[Action]) -> list[tuple[str, Any]]:
    return [(a.app_id, a.msg) for a in of(actions, SendToDriver)]


# ----------------------------------------------------------------- a model of Spark's rule
@dataclass
class _Entry:
    state: str
    last_heartbeat: float
    touched: int  # when it last registered or sent a heartbeat, in event order
    seq: int  # registration order


class LivenessModel:
    """Spark's ``timeOutDeadWorkers``, walking every worker: silent ALIVE workers become DEAD
    (oldest heartbeat first), DEAD ones silent for (persistence + 1) timeouts are forgotten
    (before any is declared DEAD in the same tick)."""

    def __init__(self) -> None:
        self.workers: dict[str, _Entry] = {}
        self._events = 0

    def _next(self) -> int:
        self._events += 1
        return self._events

    def register(self, wid: str, now: float) -> None:
        self.workers.pop(wid, None)
        self.workers[wid] = _Entry(m.ALIVE, now, self._next(), self._next())

    def heartbeat(self, wid: str, now: float) -> None:
        entry = self.workers.get(wid)
        if entry is not None and entry.state == m.ALIVE:
            entry.last_heartbeat = now
            entry.touched = self._next()

    def disconnect(self, wid: str) -> None:
        entry = self.workers.get(wid)
        if entry is not None and entry.state == m.ALIVE:
            entry.state = m.DEAD

    def tick(self, now: float) -> tuple[list[str], list[str]]:
        gone = sorted((w for w, e in self.workers.items()
                       if e.state == m.DEAD and now - e.last_heartbeat > FORGET_AFTER),
                      key=lambda w: (self.workers[w].last_heartbeat, self.workers[w].seq))
        for wid in gone:
            del self.workers[wid]
        dead = sorted((w for w, e in self.workers.items() if e.state == m.ALIVE and now - e.last_heartbeat > TIMEOUT),
                      key=lambda w: self.workers[w].touched)
        for wid in dead:
            self.workers[wid].state = m.DEAD
        return dead, gone


def _states(sm: MasterStateMachine) -> dict[str, str]:
    return {w.id: w.state for w in sm.workers.values()}


# ----------------------------------------------------------------- the tick
@pytest.mark.timeout(10)
def test_workers_expire_in_heartbeat_order_and_a_heartbeat_moves_one_back() -> None:
    sm = MasterStateMachine(worker_timeout=TIMEOUT)
    for wid in ("w1", "w2", "w3", "w4", "w5"):
        sm.register_worker(worker(wid), T0)
    sm.worker_heartbeat("w3", T0 + 10)
    sm.worker_heartbeat("w1", T0 + 20)
    sm.worker_heartbeat("w5", T0 + 30)
    assert declared_dead(sm.check_worker_timeouts(T0 + 60)) == []  # silent for exactly the timeout: not yet
    assert declared_dead(sm.check_worker_timeouts(T0 + 61)) == ["w2", "w4"]  # equal silence: registration order
    assert declared_dead(sm.check_worker_timeouts(T0 + 71)) == ["w3"]
    sm.worker_heartbeat("w1", T0 + 75)  # moves w1 behind w5
    assert declared_dead(sm.check_worker_timeouts(T0 + 91)) == ["w5"]
    assert declared_dead(sm.check_worker_timeouts(T0 + 135)) == []
    assert declared_dead(sm.check_worker_timeouts(T0 + 136)) == ["w1"]
    assert all(w.state == m.DEAD for w in sm.workers.values())


@pytest.mark.timeout(10)
def test_dead_workers_are_forgotten_by_last_heartbeat_not_by_when_they_died() -> None:
    sm = MasterStateMachine(worker_timeout=TIMEOUT)
    sm.register_worker(worker("old"), T0)
    sm.register_worker(worker("late"), T0)
    sm.worker_heartbeat("late", T0 + 50)
    sm.worker_disconnected("late", T0 + 55)  # dies first, heard from last
    assert declared_dead(sm.check_worker_timeouts(T0 + 61)) == ["old"]
    # a worker declared DEAD in a tick is not forgotten in the same tick, however long silent
    sm.register_worker(worker("silent"), T0 + 62)
    actions = sm.check_worker_timeouts(T0 + 62 + FORGET_AFTER + 1)
    assert forgotten(actions) == ["old", "late"] and declared_dead(actions) == ["silent"]
    assert list(sm.workers) == ["silent"]
    assert forgotten(sm.check_worker_timeouts(T0 + 62 + FORGET_AFTER + 2)) == ["silent"]
    # a DEAD entry replaced by a new registration is not forgotten under its new life
    sm.register_worker(worker("back"), T0 + 2000)
    sm.worker_disconnected("back", T0 + 2001)
    sm.register_worker(worker("back"), T0 + 2002)
    sm.check_worker_timeouts(T0 + 2000 + FORGET_AFTER + 1)
    assert sm.workers["back"].state == m.DEAD  # the new entry timed out, once
    assert "back" in sm.workers


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.timeout(10)
def test_tick_matches_a_model_that_walks_every_worker(seed: int) -> None:
    rng = random.Random(seed)
    sm = MasterStateMachine(worker_timeout=TIMEOUT)
    model = LivenessModel()
    now = T0
    names = [f"w{i}" for i in range(40)]
    for _ in range(1500):
        now += rng.choice([0.0, 0.5, 3.0, 10.0, 40.0])
        wid = rng.choice(names)
        r = rng.random()
        if r < 0.15:
            sm.register_worker(worker(wid), now)
            model.register(wid, now)
        elif r < 0.7:
            actions = sm.worker_heartbeat(wid, now)
            alive = wid in model.workers and model.workers[wid].state == m.ALIVE
            assert bool(of(actions, DisconnectWorker)) == (not alive)
            model.heartbeat(wid, now)
        elif r < 0.75:
            sm.worker_disconnected(wid, now)
            model.disconnect(wid)
        else:
            if rng.random() < 0.05:
                now += FORGET_AFTER * rng.random()
            actions = sm.check_worker_timeouts(now)
            assert (declared_dead(actions), forgotten(actions)) == model.tick(now)
        assert _states(sm) == {w: e.state for w, e in model.workers.items()}


@pytest.mark.timeout(10)
def test_a_recovered_master_expires_the_same_workers_as_the_one_before() -> None:
    """A master restored from its journal (or from a snapshot) counts every restored worker
    as just heard from; given the same heartbeats from then on, it declares the same
    workers DEAD, in the same order, and forgets the DEAD ones at the same time."""
    sm = MasterStateMachine(worker_timeout=TIMEOUT)
    sm.track_changes = True
    replay = ReplayState(sm.snapshot())
    for i in range(8):
        sm.register_worker(worker(f"w{i}"), T0 + i)
        for r in sm.take_changes():
            replay.apply(r)
    for wid, when in (("w5", 20.0), ("w2", 30.0), ("w7", 40.0)):
        sm.worker_heartbeat(wid, T0 + when)
    sm.worker_disconnected("w1", T0 + 45)
    sm.register_worker(worker("w3"), T0 + 50)  # back after a restart: a new entry, last in order
    sm.check_worker_timeouts(T0 + 67)  # w0, w4 and w6 (silent since they registered) are declared DEAD
    for r in sm.take_changes():
        replay.apply(json.loads(json.dumps(r)))
    assert _states(sm) == {"w0": m.DEAD, "w1": m.DEAD, "w2": m.ALIVE, "w4": m.DEAD, "w5": m.ALIVE,
                           "w6": m.DEAD, "w7": m.ALIVE, "w3": m.ALIVE}
    t1 = T0 + 100
    from_journal = MasterStateMachine(worker_timeout=TIMEOUT)
    from_journal.restore(replay.snapshot(), t1)
    from_snapshot = MasterStateMachine(worker_timeout=TIMEOUT)
    from_snapshot.restore(json.loads(json.dumps(sm.snapshot())), t1)
    # The master before, as if it had heard from every ALIVE worker at t1, in its order.
    for wid in list(sm.workers):
        if sm.workers[wid].state == m.ALIVE:
            sm.worker_heartbeat(wid, t1)
    machines = (sm, from_journal, from_snapshot)
    assert len({json.dumps(_states(x)) for x in machines}) == 1
    # The same heartbeats from then on, then the same ticks.
    for x in machines:
        x.worker_heartbeat("w7", t1 + 30)
        x.worker_heartbeat("w2", t1 + 40)
    expected_dead = {t1 + 61: ["w5", "w3"], t1 + 91: ["w7"], t1 + 101: ["w2"]}
    for when in (t1 + 61, t1 + 91, t1 + 101, t1 + FORGET_AFTER + 1, t1 + FORGET_AFTER + 101):
        results = [(declared_dead(a), forgotten(a)) for a in (x.check_worker_timeouts(when) for x in machines)]
        assert [dead for dead, _ in results] == [expected_dead.get(when, [])] * 3
        # The restored ones heard from every worker at t1, DEAD or not, so they forget
        # together what the master before forgot (the same workers) by older heartbeats.
        assert results[1][1] == results[2][1] and sorted(results[0][1]) == sorted(results[1][1])
    assert results[0][1] == results[1][1] == ["w7", "w2"]
    assert sm.workers == {} and from_journal.workers == {} and from_snapshot.workers == {}


@pytest.mark.timeout(10)
def test_restored_apps_and_delayed_drivers_are_still_seen_by_the_tick() -> None:
    sm = MasterStateMachine()
    sm.register_worker(worker("w1", cores=1), T0)
    desc = m.DriverDescription(m.DriverFile("app.py", b""), [], [], {}, 1, 512, supervise=True)
    did = str(of(sm.submit_driver(desc, T0), Reply)[0].msg.driver_id)
    gone = registered_app_id(sm.register_application(app(), T0))
    back = registered_app_id(sm.register_application(app(), T0))
    for when in (T0 + 1, T0 + 2):  # two quick failures: the next launch waits 1 s
        sm.driver_state_changed("w1", m.DriverStateChanged(did, m.FAILED, 1, "exited with code 1"), when)
    assert sm.drivers[did].not_before == T0 + 3
    restored = MasterStateMachine(worker_timeout=TIMEOUT)
    restored.restore(json.loads(json.dumps(sm.snapshot())), T0 + 2.5)
    restored.register_worker(worker("w1", cores=1), T0 + 2.6)
    assert restored.next_wakeup() == T0 + 3
    assert not to_worker(restored.check_worker_timeouts(T0 + 2.9), m.LaunchDriver)
    assert [d.driver_id for _, d in to_worker(restored.check_worker_timeouts(T0 + 3), m.LaunchDriver)] == [did]
    assert restored.next_wakeup() is None
    # of two restored applications, the one whose driver does not come back within a timeout ends
    restored.register_application(app(app_id=back), T0 + 10)
    restored.worker_heartbeat("w1", T0 + 60)
    assert restored.check_worker_timeouts(T0 + 62.5) == []
    actions = restored.check_worker_timeouts(T0 + 62.6)
    assert [a.text for a in of(actions, Log) if "did not re-register" in a.text] == [
        f"The driver of application {gone} did not re-register within 60 s of the master's recovery"]
    assert (restored.apps[gone].state, restored.apps[back].state) == (m.FINISHED, m.WAITING)
    assert restored.check_worker_timeouts(T0 + 63) == []


# ----------------------------------------------------------------- a lost worker comes back
def _cluster() -> tuple[MasterStateMachine, str]:
    sm = MasterStateMachine(worker_timeout=TIMEOUT)
    sm.register_worker(worker("w1", cores=2), T0)
    sm.register_worker(worker("w2", cores=2), T0)
    app_id = registered_app_id(sm.register_application(app(executor_cores=1), T0))
    assert sorted(e.worker_id for e in sm.apps[app_id].executors.values()) == ["w1", "w1", "w2", "w2"]
    return sm, app_id


def _listed(sm: MasterStateMachine, wid: str, app_id: str) -> list[tuple[str, str, int, int]]:
    return [(app_id, e.executor_id, e.cores, e.memory) for e in sm.apps[app_id].executors.values()
            if e.worker_id == wid]


@pytest.mark.parametrize("how", ["timeout", "disconnect"])
@pytest.mark.timeout(10)
def test_executors_of_a_worker_declared_dead_are_killed_when_it_comes_back(how: str) -> None:
    sm, app_id = _cluster()
    listed = _listed(sm, "w1", app_id)
    if how == "timeout":
        sm.worker_heartbeat("w2", T0 + 50)
        lost = sm.check_worker_timeouts(T0 + 61)  # w1 is silent (say, partitioned away)
    else:
        lost = sm.worker_disconnected("w1", T0 + 61)
    told = sorted(u.executor_id for _, u in to_driver(lost) if isinstance(u, m.ExecutorUpdated))
    assert told == sorted(e for _, e, _, _ in listed)
    # w1 heals and registers again, listing the executors it still runs
    actions = sm.register_worker(worker("w1", cores=2, executors=listed), T0 + 70)
    assert killed(actions) == sorted(("w1", a, e) for a, e, _, _ in listed)
    held = sm.apps[app_id].executors
    assert not {e for _, e, _, _ in listed} & set(held)
    # the driver hears of no killed executor again; its freed cores go to new executors
    new = [msg for _, msg in to_driver(actions) if isinstance(msg, m.ExecutorAdded)]
    assert [x.worker_id for x in new] == ["w1", "w1"]
    assert not {x.executor_id for x in new} & {e for _, e, _, _ in listed}
    assert sm.workers["w1"].cores_used == 2
    assert sm.apps[app_id].cores_granted == sum(e.cores for e in held.values()) == 4
    # the killed executors' last reports come to nothing
    for _, eid, _, _ in listed:
        report = sm.executor_state_changed("w1", m.ExecutorStateChanged(app_id, eid, m.EXEC_KILLED, "killed"), T0 + 71)
        assert to_driver(report) == [] and to_worker(report, m.LaunchExecutor) == []
    assert sm.apps[app_id].failed_executors == 0


@pytest.mark.timeout(10)
def test_executors_the_master_still_holds_or_does_not_know_are_kept() -> None:
    sm, app_id = _cluster()
    listed = _listed(sm, "w1", app_id)
    # the connection broke but the master had not noticed: same id, executors still held
    actions = sm.register_worker(worker("w1", cores=2, executors=listed + [("app-unknown", "7", 1, 512)]), T0 + 5)
    assert to_worker(actions, m.KillExecutor) == []
    assert sorted(e.executor_id for e in sm.apps[app_id].executors.values() if e.worker_id == "w1") == \
        sorted(e for _, e, _, _ in listed)
    assert not [msg for _, msg in to_driver(actions) if isinstance(msg, m.ExecutorUpdated)]
    assert ("app-unknown", "7") in sm.workers["w1"].executors  # kept for its driver to claim


@pytest.mark.timeout(10)
def test_a_recovered_master_kills_the_executors_its_predecessor_removed() -> None:
    sm, app_id = _cluster()
    listed_w1 = _listed(sm, "w1", app_id)
    listed_w2 = _listed(sm, "w2", app_id)
    sm.worker_disconnected("w1", T0 + 5)  # the old master lost w1, then stopped
    restored = MasterStateMachine(worker_timeout=TIMEOUT)
    restored.restore(json.loads(json.dumps(sm.snapshot())), T0 + 10)
    actions = restored.register_worker(worker("w1", cores=2, executors=listed_w1), T0 + 11)
    assert killed(actions) == sorted(("w1", a, e) for a, e, _, _ in listed_w1)
    actions = restored.register_worker(worker("w2", cores=2, executors=listed_w2), T0 + 12)
    assert to_worker(actions, m.KillExecutor) == []
    assert sorted(restored.apps[app_id].executors) == sorted(e for _, e, _, _ in listed_w2)


@pytest.mark.timeout(10)
def test_drivers_of_a_worker_declared_dead_are_killed_when_it_comes_back_if_moved_on() -> None:
    sm = MasterStateMachine(worker_timeout=TIMEOUT)
    sm.register_worker(worker("w1", cores=2), T0)
    desc = m.DriverDescription(m.DriverFile("app.py", b""), [], [], {}, 1, 512, supervise=False)
    plain = str(of(sm.submit_driver(desc, T0), Reply)[0].msg.driver_id)
    supervised = str(of(sm.submit_driver(m.DriverDescription(m.DriverFile("app.py", b""), [], [], {}, 1, 512,
                                                             supervise=True), T0), Reply)[0].msg.driver_id)
    sm.register_worker(worker("w2", cores=1), T0 + 1)
    sm.worker_heartbeat("w2", T0 + 50)
    sm.check_worker_timeouts(T0 + 61)
    assert sm.drivers[plain].state == m.ERROR and sm.drivers[supervised].worker_id == "w2"
    actions = sm.register_worker(worker("w1", cores=2, drivers=[(plain, 1, 512), (supervised, 1, 512)]), T0 + 70)
    assert sorted(d.driver_id for _, d in to_worker(actions, m.KillDriver)) == sorted([plain, supervised])
    assert sm.workers["w1"].drivers == {} and sm.workers["w1"].cores_used == 0
    assert sm.drivers[supervised].worker_id == "w2" and sm.drivers[supervised].state == m.SUBMITTED
