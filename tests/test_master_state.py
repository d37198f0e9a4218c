"""The master's bookkeeping, driven with events only: no sockets, no clocks."""
from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest

from sparkctl.deploy import messages as m
from sparkctl.deploy.master_state import (
    Action,
    BindDriver,
    BindWorker,
    EXECUTOR_STABLE_RUN,
    SUPERVISE_STABLE_RUN,
    DisconnectWorker,
    DriverChanged,
    Log,
    MasterStateMachine,
    Reply,
    SendToDriver,
    SendToWorker,
    plan_executors,
    supervise_delay,
)

T0 = 1_700_000_000.0  # "now" at the start of every test, seconds since the epoch


# ----------------------------------------------------------------- helpers
def worker(wid: str, cores: int = 4, memory: int = 4096, host: str | None = None, port: int = 7078,
           executors: list[tuple[str, str, int, int]] | None = None) -> m.RegisterWorker:
    return m.RegisterWorker(wid, host or f"host-{wid}", port, cores, memory, webui_port=8081,
                            executors=executors or [])


def app(name: str = "app", cores_max: int | None = None, executor_cores: int | None = None,
        memory: int = 1024, app_id: str | None = None) -> m.RegisterApplication:
    desc = m.ApplicationDescription(name, "driver-host", 40000, cores_max, executor_cores, memory, user="alice",
                                    executor_settings={"spark.memory.fraction": "0.6"})
    return m.RegisterApplication(desc, app_id)


def of(actions: list[Action], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def launches(actions: list[Action]) -> list[tuple[str, m.LaunchExecutor]]:
    return [(a.worker_id, a.msg) for a in of(actions, SendToWorker) if isinstance(a.msg, m.LaunchExecutor)]


def to_driver(actions: list[Action], msg_type: type) -> list[tuple[str, Any]]:
    return [(a.app_id, a.msg) for a in of(actions, SendToDriver) if isinstance(a.msg, msg_type)]


def registered_app_id(actions: list[Action]) -> str:
    (reply,) = [a for a in of(actions, Reply) if isinstance(a.msg, m.RegisteredApplication)]
    return str(reply.msg.app_id)


def logs(actions: list[Action]) -> str:
    return "\n".join(a.text for a in of(actions, Log))


def cores_by_worker(actions: list[Action]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for wid, launch in launches(actions):
        out.setdefault(wid, []).append(launch.cores)
    return out


def fail(sm: MasterStateMachine, wid: str, app_id: str, eid: str, now: float, tail: str = "boom") -> list[Action]:
    return sm.executor_state_changed(
        wid, m.ExecutorStateChanged(app_id, eid, m.EXEC_FAILED, "could not start", 1, log_tail=tail), now)


# ----------------------------------------------------------------- registration
@pytest.mark.timeout(10)
def test_worker_registration_replies_binds_and_logs() -> None:
    sm = MasterStateMachine("spark://m:7077", "http://m:8080", worker_timeout=60)
    actions = sm.register_worker(worker("w1", cores=4, memory=2048), T0)
    assert actions.index(BindWorker("w1")) < next(i for i, a in enumerate(actions) if isinstance(a, Reply))
    (reply,) = of(actions, Reply)
    assert reply.msg == m.RegisteredWorker("spark://m:7077", "http://m:8080", 15.0)
    assert "Registering worker w1 at host-w1:7078 with 4 cores, 2048 MiB RAM" in logs(actions)
    w = sm.workers["w1"]
    assert (w.state, w.cores_free, w.memory_free, w.last_heartbeat) == (m.ALIVE, 4, 2048, T0)


@pytest.mark.timeout(10)
def test_invalid_worker_is_refused() -> None:
    sm = MasterStateMachine()
    actions = sm.register_worker(worker("w1", cores=0), T0)
    (reply,) = of(actions, Reply)
    assert isinstance(reply.msg, m.RegisterWorkerFailed) and "at least 1 core" in reply.msg.message
    assert not of(actions, BindWorker) and not sm.workers


@pytest.mark.timeout(10)
def test_application_registration_gets_id_and_executors() -> None:
    sm = MasterStateMachine("spark://m:7077")
    sm.register_worker(worker("w1", cores=4), T0)
    actions = sm.register_application(app("pi"), T0)
    app_id = registered_app_id(actions)
    assert app_id.startswith("app-") and app_id.endswith("-0000") and len(app_id) == len("app-20231114221320-0000")
    # bound before the reply, replied before the first ExecutorAdded
    kinds = [type(a).__name__ if not isinstance(a, (Reply, SendToDriver, SendToWorker)) else type(a.msg).__name__
             for a in actions if not isinstance(a, Log)]
    assert kinds == ["BindDriver", "RegisteredApplication", "LaunchExecutor", "ExecutorAdded"]
    (wid, launch), = launches(actions)
    assert (wid, launch.app_id, launch.executor_id, launch.cores, launch.memory) == ("w1", app_id, "0", 4, 1024)
    assert (launch.driver_host, launch.driver_port, launch.app_name) == ("driver-host", 40000, "pi")
    assert launch.settings == {"spark.memory.fraction": "0.6"}
    (_, added), = to_driver(actions, m.ExecutorAdded)
    assert added == m.ExecutorAdded("0", "w1", "host-w1", 4, 1024)
    text = logs(actions)
    assert f"Registered application pi with id {app_id}" in text
    assert f"Application {app_id} requests all available cores" in text
    assert f"Launching executor {app_id}/0 on worker w1 (host-w1:7078) with 4 cores, 1024 MiB RAM" in text
    assert sm.apps[app_id].state == m.RUNNING
    second = registered_app_id(sm.register_application(app("other"), T0))
    assert second.endswith("-0001")


@pytest.mark.timeout(10)
def test_invalid_application_is_refused() -> None:
    sm = MasterStateMachine()
    actions = sm.register_application(app(executor_cores=0), T0)
    (reply,) = of(actions, Reply)
    assert isinstance(reply.msg, m.ApplicationRemoved)
    assert reply.msg.message == "registration refused: spark.executor.cores must be at least 1, not 0"
    assert not of(actions, BindDriver) and not sm.apps


# ----------------------------------------------------------------- allocation
@pytest.mark.timeout(10)
@pytest.mark.parametrize("spread_out, executor_cores, cores_max, expected", [
    # one executor per worker, growing by a core per pass
    (True, None, None, {"w1": [4], "w2": [4]}),
    (True, None, 4, {"w1": [2], "w2": [2]}),
    (False, None, 4, {"w1": [4]}),
    (False, None, 6, {"w1": [4], "w2": [2]}),
    (True, None, 3, {"w1": [2], "w2": [1]}),
    # fixed-size executors
    (True, 2, None, {"w1": [2, 2], "w2": [2, 2]}),
    (True, 2, 4, {"w1": [2], "w2": [2]}),
    (False, 2, 4, {"w1": [2, 2]}),
    (True, 1, 3, {"w1": [1, 1], "w2": [1]}),
    (True, 3, 5, {"w1": [3]}),  # the 2 cores left over cannot make a 3-core executor
])
def test_allocation_across_two_workers(spread_out: bool, executor_cores: int | None, cores_max: int | None,
                                       expected: dict[str, list[int]]) -> None:
    sm = MasterStateMachine(spread_out=spread_out)
    sm.register_worker(worker("w1", cores=4, memory=8192), T0)
    sm.register_worker(worker("w2", cores=4, memory=8192), T0)
    actions = sm.register_application(app(cores_max=cores_max, executor_cores=executor_cores), T0)
    assert cores_by_worker(actions) == expected
    app_id = registered_app_id(actions)
    assert sm.apps[app_id].cores_granted == sum(sum(v) for v in expected.values())
    ids = [launch.executor_id for _, launch in launches(actions)]
    assert ids == [str(i) for i in range(len(ids))]


@pytest.mark.timeout(10)
def test_memory_limits_executors_per_worker() -> None:
    sm = MasterStateMachine()
    sm.register_worker(worker("w1", cores=8, memory=2048), T0)
    actions = sm.register_application(app(executor_cores=1, memory=1024), T0)
    assert cores_by_worker(actions) == {"w1": [1, 1]}  # 2 x 1024 MiB fill the worker's memory
    assert sm.workers["w1"].memory_free == 0 and sm.workers["w1"].cores_free == 6


@pytest.mark.timeout(10)
def test_plan_executors_is_pure() -> None:
    assert plan_executors(10, None, 512, [(4, 4096), (2, 4096)], True) == [(4, 1), (2, 1)]
    assert plan_executors(3, 1, 512, [(4, 4096), (4, 4096)], False) == [(3, 3), (0, 0)]
    assert plan_executors(3, 1, 512, [(4, 4096), (4, 4096)], True) == [(2, 2), (1, 1)]
    assert plan_executors(4, None, 512, [(4, 100)], True) == [(0, 0)]  # not enough memory


@pytest.mark.timeout(10)
def test_no_second_executor_per_worker_without_executor_cores() -> None:
    sm = MasterStateMachine()
    sm.register_worker(worker("w1", cores=4), T0)
    a1 = registered_app_id(sm.register_application(app("first", cores_max=2), T0))
    a2 = registered_app_id(sm.register_application(app("second"), T0))
    assert sm.apps[a2].cores_granted == 2
    # the first app finishing frees 2 cores; the second app already has its one executor there
    actions = sm.unregister_application(a1, m.FINISHED, T0 + 1)
    assert launches(actions) == []
    assert sm.workers["w1"].cores_free == 2


@pytest.mark.timeout(10)
def test_fifo_second_app_waits_then_gets_executors() -> None:
    sm = MasterStateMachine()
    sm.register_worker(worker("w1", cores=2), T0)
    sm.register_worker(worker("w2", cores=2), T0)
    first = registered_app_id(sm.register_application(app("first"), T0))
    actions = sm.register_application(app("second"), T0 + 1)
    second = registered_app_id(actions)
    assert launches(actions) == []
    assert sm.apps[first].cores_granted == 4
    assert sm.apps[second].state == m.WAITING
    reason = sm.waiting_reason(second)
    assert "needs 1 core and 1024 MiB per executor; largest free: 0 cores" in reason

    actions = sm.unregister_application(first, m.FINISHED, T0 + 10)
    kills = [(a.worker_id, a.msg) for a in of(actions, SendToWorker) if isinstance(a.msg, m.KillExecutor)]
    assert sorted(w for w, _ in kills) == ["w1", "w2"]
    finished = [a.worker_id for a in of(actions, SendToWorker) if isinstance(a.msg, m.ApplicationFinished)]
    assert sorted(finished) == ["w1", "w2"]
    assert to_driver(actions, m.ApplicationRemoved) == []  # it asked: nothing to tell it
    assert cores_by_worker(actions) == {"w1": [2], "w2": [2]}
    assert all(launch.app_id == second for _, launch in launches(actions))
    assert sm.apps[first].state == m.FINISHED and sm.apps[first].end_time == T0 + 10
    assert sm.apps[second].state == m.RUNNING
    assert sm.waiting_reason(second) == "2 executors launched on worker(s) w1, w2 and not running yet"


@pytest.mark.timeout(10)
def test_new_worker_serves_waiting_app() -> None:
    sm = MasterStateMachine()
    app_id = registered_app_id(sm.register_application(app(cores_max=4), T0))
    assert sm.waiting_reason(app_id) == "no worker has registered with the master"
    actions = sm.register_worker(worker("w1", cores=2), T0 + 1)
    assert cores_by_worker(actions) == {"w1": [2]}
    actions = sm.register_worker(worker("w2", cores=8), T0 + 2)
    assert cores_by_worker(actions) == {"w2": [2]}  # only the 2 cores it still wants


@pytest.mark.timeout(10)
def test_driver_disconnect_finishes_app_and_kills_executors() -> None:
    sm = MasterStateMachine()
    sm.register_worker(worker("w1"), T0)
    app_id = registered_app_id(sm.register_application(app(), T0))
    actions = sm.driver_disconnected(app_id, T0 + 5)
    assert [a.msg for a in of(actions, SendToWorker)] == [m.KillExecutor(app_id, "0"), m.ApplicationFinished(app_id)]
    assert sm.apps[app_id].state == m.FINISHED
    assert sm.workers["w1"].cores_used == 0
    assert sm.driver_disconnected(app_id, T0 + 6) == []  # idempotent
    # the worker's later KILLED report of that executor is harmless
    late = sm.executor_state_changed("w1", m.ExecutorStateChanged(app_id, "0", m.EXEC_KILLED), T0 + 7)
    assert not of(late, SendToDriver) and not of(late, SendToWorker)


@pytest.mark.timeout(10)
def test_kill_application_tells_driver() -> None:
    sm = MasterStateMachine()
    sm.register_worker(worker("w1"), T0)
    app_id = registered_app_id(sm.register_application(app(), T0))
    actions = sm.kill_application(app_id, T0 + 1)
    (_, removed), = to_driver(actions, m.ApplicationRemoved)
    assert "killed" in removed.message
    assert sm.apps[app_id].state == m.KILLED
    assert "unknown or completed" in logs(sm.kill_application(app_id, T0 + 2))


# ----------------------------------------------------------------- workers lost
@pytest.mark.timeout(10)
def test_worker_timeout_marks_dead_tells_drivers_and_reschedules() -> None:
    sm = MasterStateMachine(worker_timeout=60)
    sm.register_worker(worker("w1", cores=2), T0)
    sm.register_worker(worker("w2", cores=2), T0)
    a1 = registered_app_id(sm.register_application(app("a1", cores_max=2, executor_cores=1), T0))
    a2 = registered_app_id(sm.register_application(app("a2", cores_max=1), T0))
    # spread out: a1 has one executor on each worker; a2 fills w1's remaining core
    assert {e.worker_id for e in sm.apps[a1].executors.values()} == {"w1", "w2"}
    assert [e.worker_id for e in sm.apps[a2].executors.values()] == ["w1"]

    sm.worker_heartbeat("w2", T0 + 50)
    assert sm.check_worker_timeouts(T0 + 59, 60) == []
    actions = sm.check_worker_timeouts(T0 + 61, 60)
    assert sm.workers["w1"].state == m.DEAD and sm.workers["w2"].state == m.ALIVE
    assert DisconnectWorker("w1", "no heartbeat for 61 s (timeout 60 s)") in actions
    lost = to_driver(actions, m.ExecutorUpdated)
    assert sorted((app_id, u.state, u.worker_lost) for app_id, u in lost) == [(a1, m.LOST, True), (a2, m.LOST, True)]
    removed = to_driver(actions, m.WorkerRemoved)
    assert sorted(app_id for app_id, _ in removed) == sorted([a1, a2])
    assert all(r.worker_id == "w1" and r.host == "host-w1" for _, r in removed)
    # a1 replaces its lost core on w2's free core; a2 (FIFO second) finds nothing left
    assert cores_by_worker(actions) == {"w2": [1]}
    assert launches(actions)[0][1].app_id == a1
    assert sm.apps[a2].state == m.WAITING and not sm.apps[a2].executors
    assert "largest free: 0 cores" in sm.waiting_reason(a2)

    # w1 comes back (new process): a2 gets it
    actions = sm.register_worker(worker("w1", cores=2), T0 + 70)
    assert cores_by_worker(actions) == {"w1": [1]} and launches(actions)[0][1].app_id == a2

    # a heartbeat from a worker the master no longer counts as ALIVE asks it to re-register
    sm.check_worker_timeouts(T0 + 200, 60)
    assert sm.workers["w2"].state == m.DEAD
    assert of(sm.worker_heartbeat("w2", T0 + 201), DisconnectWorker)
    assert sm.waiting_reason(a1) == "no worker is alive (2 workers registered, all DEAD)"
    # long-dead workers are eventually forgotten
    sm.check_worker_timeouts(T0 + 200 + 17 * 60, 60)
    assert sm.workers == {}


@pytest.mark.timeout(10)
def test_worker_disconnect_is_immediate_death() -> None:
    sm = MasterStateMachine()
    sm.register_worker(worker("w1"), T0)
    app_id = registered_app_id(sm.register_application(app(), T0))
    actions = sm.worker_disconnected("w1", T0 + 1)
    assert sm.workers["w1"].state == m.DEAD
    assert [u.state for _, u in to_driver(actions, m.ExecutorUpdated)] == [m.LOST]
    assert sm.apps[app_id].state == m.WAITING
    assert sm.worker_disconnected("w1", T0 + 2) == []


@pytest.mark.timeout(10)
def test_reregistration_replaces_entry_and_keeps_listed_executors() -> None:
    sm = MasterStateMachine()
    sm.register_worker(worker("w1", cores=4), T0)
    app_id = registered_app_id(sm.register_application(app(executor_cores=1, cores_max=2), T0))
    assert sorted(sm.apps[app_id].executors) == ["0", "1"]
    # same host:port, new id (a restarted worker) still running executor 0 only
    actions = sm.register_worker(worker("w1b", cores=4, host="host-w1", executors=[(app_id, "0", 1, 1024)]), T0 + 1)
    assert "w1" not in sm.workers and sm.workers["w1b"].state == m.ALIVE
    assert actions.index(DisconnectWorker("w1", "replaced by a new registration from host-w1:7078")) < \
        actions.index(BindWorker("w1b"))
    lost = to_driver(actions, m.ExecutorUpdated)
    assert [(u.executor_id, u.state) for _, u in lost] == [("1", m.LOST)]
    assert sm.apps[app_id].executors["0"].worker_id == "w1b"
    # the lost core is replaced, with a fresh executor id
    assert [(w, launch.executor_id) for w, launch in launches(actions)] == [("w1b", "2")]
    assert sm.workers["w1b"].cores_used == 2


@pytest.mark.timeout(10)
def test_master_restart_readopts_executors() -> None:
    # A restarted master without snapshot: the worker lists an executor of an app the
    # master does not know yet; the driver re-registers with its old id and claims it.
    sm = MasterStateMachine()
    actions = sm.register_worker(worker("w1", cores=4, executors=[("app-1-0000", "3", 2, 1024)]), T0)
    assert sm.workers["w1"].cores_used == 2 and launches(actions) == []
    actions = sm.register_application(app(cores_max=4, executor_cores=2, app_id="app-1-0000"), T0 + 1)
    assert registered_app_id(actions) == "app-1-0000"
    application = sm.apps["app-1-0000"]
    assert "3" in application.executors and application.executors["3"].orphan_since is None
    assert [launch.executor_id for _, launch in launches(actions)] == ["4"]  # numbering continues
    assert application.cores_granted == 4

    # an executor nobody claims is killed after a timeout
    sm.register_worker(worker("w2", executors=[("app-gone", "0", 1, 512)]), T0 + 2)
    assert sm.check_worker_timeouts(T0 + 30, 60) == []
    sm.worker_heartbeat("w1", T0 + 60)
    sm.worker_heartbeat("w2", T0 + 60)
    actions = sm.check_worker_timeouts(T0 + 63, 60)
    assert [(a.worker_id, a.msg) for a in of(actions, SendToWorker)] == [("w2", m.KillExecutor("app-gone", "0"))]
    assert sm.workers["w2"].cores_used == 0


# ----------------------------------------------------------------- executor failures
@pytest.mark.timeout(10)
def test_executor_failure_is_replaced_and_reported() -> None:
    sm = MasterStateMachine()
    sm.register_worker(worker("w1", cores=2), T0)
    app_id = registered_app_id(sm.register_application(app(), T0))
    running = sm.executor_state_changed("w1", m.ExecutorStateChanged(app_id, "0", m.EXEC_RUNNING), T0 + 1)
    assert [(u.executor_id, u.state) for _, u in to_driver(running, m.ExecutorUpdated)] == [("0", m.EXEC_RUNNING)]

    actions = fail(sm, "w1", app_id, "0", T0 + 2, tail="Traceback...\nMemoryError")
    (_, update), = to_driver(actions, m.ExecutorUpdated)
    assert (update.executor_id, update.state, update.exit_code, update.log_tail, update.worker_lost) == \
        ("0", m.EXEC_FAILED, 1, "Traceback...\nMemoryError", False)
    assert [(w, launch.executor_id, launch.cores) for w, launch in launches(actions)] == [("w1", "1", 2)]
    assert sm.apps[app_id].failed_executors == 1
    # a clean exit is no failure, and the app (still wanting cores) gets a replacement
    actions = sm.executor_state_changed("w1", m.ExecutorStateChanged(app_id, "1", m.EXITED, exit_code=0), T0 + 3)
    assert sm.apps[app_id].failed_executors == 1 and len(launches(actions)) == 1


@pytest.mark.timeout(10)
def test_app_fails_after_ten_consecutive_executor_failures() -> None:
    sm = MasterStateMachine()
    sm.register_worker(worker("w1", cores=2), T0)
    app_id = registered_app_id(sm.register_application(app(), T0))
    executor_id = "0"
    for i in range(9):
        actions = fail(sm, "w1", app_id, executor_id, T0 + i, tail=f"ImportError: no module named foo ({i})")
        (_, launch), = launches(actions)
        executor_id = launch.executor_id
        assert sm.apps[app_id].active
    assert sm.waiting_reason(app_id) == (
        f"its executors are failing to start (9 in a row); the last, executor {app_id}/8 on host-w1 failed "
        "with code 1: could not start. Its log ends with:\nImportError: no module named foo (8)")
    actions = fail(sm, "w1", app_id, executor_id, T0 + 20, tail="ImportError: no module named foo (9)")
    assert launches(actions) == []
    application = sm.apps[app_id]
    assert application.state == m.FAILED
    (_, removed), = to_driver(actions, m.ApplicationRemoved)
    assert "failed 10 times in a row" in removed.message
    assert f"executor {app_id}/9 on host-w1 failed with code 1" in removed.message
    assert removed.message.endswith("ImportError: no module named foo (9)")
    assert any(isinstance(a, Log) and a.level == logging.ERROR for a in actions)
    assert sm.workers["w1"].cores_used == 0


@pytest.mark.timeout(10)
def test_executors_that_die_soon_after_running_add_up_to_the_limit() -> None:
    """RUNNING comes the moment the process starts: executors that each die seconds later
    (a task that kills every executor it lands on) must still fail the application."""
    sm = MasterStateMachine(max_executor_retries=3)
    sm.register_worker(worker("w1", cores=1), T0)
    app_id = registered_app_id(sm.register_application(app(), T0))
    eid = "0"
    for i in range(3):
        sm.executor_state_changed("w1", m.ExecutorStateChanged(app_id, eid, m.EXEC_RUNNING), T0 + 4 * i)
        actions = sm.executor_state_changed(
            "w1", m.ExecutorStateChanged(app_id, eid, m.EXITED, "", 137), T0 + 4 * i + 3)
        if i < 2:
            (_, launch), = launches(actions)
            eid = launch.executor_id
            assert sm.apps[app_id].failed_executors == i + 1 and sm.apps[app_id].active
    assert launches(actions) == [] and sm.apps[app_id].state == m.FAILED
    (_, removed), = to_driver(actions, m.ApplicationRemoved)
    assert "failed 3 times in a row (spark.deploy.maxExecutorRetries=3)" in removed.message
    assert f"executor {app_id}/2 on host-w1 exited with code 137" in removed.message
    assert sm.workers["w1"].cores_used == 0


@pytest.mark.timeout(10)
def test_failure_after_a_stable_run_starts_a_new_count() -> None:
    sm = MasterStateMachine(max_executor_retries=3)
    sm.register_worker(worker("w1", cores=1), T0)
    app_id = registered_app_id(sm.register_application(app(), T0))
    eid = "0"
    now = T0
    # (ran long before failing, the count after the failure): never 3 in a row
    for ran_long, count in [(False, 1), (False, 2), (True, 1), (False, 2), (True, 1), (False, 2)]:
        sm.executor_state_changed("w1", m.ExecutorStateChanged(app_id, eid, m.EXEC_RUNNING), now)
        now += EXECUTOR_STABLE_RUN if ran_long else 2
        (_, launch), = launches(fail(sm, "w1", app_id, eid, now))
        assert sm.apps[app_id].failed_executors == count
        eid = launch.executor_id
    assert sm.apps[app_id].active


@pytest.mark.timeout(10)
def test_negative_max_executor_retries_never_gives_up() -> None:
    sm = MasterStateMachine(max_executor_retries=-1)
    sm.register_worker(worker("w1", cores=1), T0)
    app_id = registered_app_id(sm.register_application(app(), T0))
    assert len(sm.apps[app_id].executors) == 1  # no failure yet: launched as usual
    eid = "0"
    for i in range(25):
        (_, launch), = launches(fail(sm, "w1", app_id, eid, T0 + i))
        eid = launch.executor_id
    assert sm.apps[app_id].active and sm.apps[app_id].failed_executors == 25


@pytest.mark.timeout(10)
def test_waiting_reason_texts() -> None:
    sm = MasterStateMachine()
    too_big = registered_app_id(sm.register_application(app("big", memory=10_000), T0))
    impossible = registered_app_id(sm.register_application(app("odd", executor_cores=4, cores_max=2), T0))
    assert sm.waiting_reason("app-nope") == "no application app-nope is registered with this master"
    assert "spark.executor.cores=4 is more than spark.cores.max=2" in sm.waiting_reason(impossible)
    sm.register_worker(worker("w1", cores=2, memory=2048), T0)
    assert sm.waiting_reason(too_big) == (
        "it needs 1 core and 10000 MiB per executor, but no worker is that large "
        "(the largest has 2 cores, the largest 2048 MiB)")
    hog = registered_app_id(sm.register_application(app("hog", memory=2048), T0))
    sm.executor_state_changed("w1", m.ExecutorStateChanged(hog, "0", m.EXEC_RUNNING), T0)
    assert sm.waiting_reason(hog) == ""
    late = registered_app_id(sm.register_application(app("late", memory=512), T0))
    assert sm.waiting_reason(late) == (
        "it needs 1 core and 512 MiB per executor; largest free: 0 cores (worker w1), 0 MiB (worker w1); "
        "other applications hold the rest")
    sm.unregister_application(hog, m.FINISHED, T0 + 1)
    assert sm.waiting_reason(hog) == f"application {hog} is FINISHED"
    assert sm.waiting_reason(late) == "1 executor launched on worker(s) w1 and not running yet"
    eid = next(iter(sm.apps[late].executors))
    fail(sm, "w1", late, eid, T0 + 2, tail="line 1\nline 2\n")
    # it got a replacement at once, which is not running yet either
    assert sm.waiting_reason(late) == (
        f"its executors are failing to start (1 in a row); the last, executor {late}/{eid} on host-w1 failed "
        "with code 1: could not start. Its log ends with:\nline 1\nline 2")
    sm.executor_state_changed("w1", m.ExecutorStateChanged(late, str(int(eid) + 1), m.EXEC_RUNNING), T0 + 3)
    assert sm.waiting_reason(late) == ""


@pytest.mark.timeout(10)
def test_app_with_a_running_executor_outlives_retries_until_it_ends() -> None:
    sm = MasterStateMachine(max_executor_retries=2)
    sm.register_worker(worker("w1", cores=1), T0)
    sm.register_worker(worker("w2", cores=1), T0)
    app_id = registered_app_id(sm.register_application(app(executor_cores=1), T0))
    sm.executor_state_changed("w2", m.ExecutorStateChanged(app_id, "1", m.EXEC_RUNNING), T0)
    assert [launch.executor_id for _, launch in launches(fail(sm, "w1", app_id, "0", T0 + 1))] == ["2"]
    actions = fail(sm, "w1", app_id, "2", T0 + 2)
    # two failures in a row, but executor 1 runs: the app lives on, without new executors
    assert launches(actions) == [] and sm.apps[app_id].state == m.RUNNING
    assert "gets no new ones" in logs(actions)
    assert sm.waiting_reason(app_id) == ""
    # its last running executor goes: nothing can replace it, so the app fails
    actions = sm.executor_state_changed("w2", m.ExecutorStateChanged(app_id, "1", m.EXEC_KILLED), T0 + 3)
    assert sm.apps[app_id].state == m.FAILED
    (_, removed), = to_driver(actions, m.ApplicationRemoved)
    assert "failed 2 times in a row" in removed.message and removed.message.endswith("boom")


# ----------------------------------------------------------------- JSON and snapshots
@pytest.mark.timeout(10)
def test_json_field_names() -> None:
    sm = MasterStateMachine("spark://m:7077")
    sm.register_worker(worker("w1", cores=4, memory=4096), T0)
    sm.register_worker(worker("w2", cores=2, memory=1024), T0)
    running = registered_app_id(sm.register_application(app("run", cores_max=3), T0))
    done = registered_app_id(sm.register_application(app("done", cores_max=1), T0))
    sm.unregister_application(done, m.FINISHED, T0 + 2.5)
    sm.worker_heartbeat("w1", T0 + 3)
    doc = sm.to_json(T0 + 4, "spark://m:7077")
    json.dumps(doc)  # plain data
    for key in ["url", "workers", "aliveworkers", "cores", "coresused", "memory", "memoryused", "activeapps",
                "completedapps", "status"]:
        assert key in doc, key
    assert (doc["url"], doc["status"], doc["aliveworkers"], doc["cores"], doc["memory"]) == \
        ("spark://m:7077", "ALIVE", 2, 6, 5120)
    assert doc["coresused"] == 3 and doc["memoryused"] == 2048
    w1 = doc["workers"][0]
    assert set(w1) == {"id", "host", "port", "webuiaddress", "cores", "coresused", "coresfree", "memory",
                       "memoryused", "memoryfree", "state", "lastheartbeat"}
    assert w1 == {"id": "w1", "host": "host-w1", "port": 7078, "webuiaddress": "http://host-w1:8081", "cores": 4,
                  "coresused": 2, "coresfree": 2, "memory": 4096, "memoryused": 1024, "memoryfree": 3072,
                  "state": "ALIVE", "lastheartbeat": int((T0 + 3) * 1000)}
    (active,) = doc["activeapps"]
    for key in ["id", "name", "cores", "user", "memoryperexecutor", "submitdate", "starttime", "duration", "state"]:
        assert key in active, key
    assert (active["id"], active["name"], active["cores"], active["user"], active["memoryperexecutor"],
            active["starttime"], active["duration"], active["state"]) == \
        (running, "run", 3, "alice", 1024, int(T0 * 1000), 4000, "RUNNING")
    assert str(active["submitdate"])[-4:].isdigit()
    (completed,) = doc["completedapps"]
    assert (completed["id"], completed["state"], completed["duration"], completed["cores"]) == (done, "FINISHED", 2500, 0)


@pytest.mark.timeout(10)
def test_completed_apps_are_retained_up_to_a_limit() -> None:
    sm = MasterStateMachine(retained_applications=2)
    ids = [registered_app_id(sm.register_application(app(f"a{i}"), T0)) for i in range(4)]
    for i in ids:
        sm.unregister_application(i, m.FINISHED, T0 + 1)
    assert [a["id"] for a in sm.to_json(T0 + 2)["completedapps"]] == ids[2:]


@pytest.mark.timeout(10)
def test_snapshot_restore_roundtrip() -> None:
    sm = MasterStateMachine()
    sm.register_worker(worker("w1", cores=4), T0)
    app_id = registered_app_id(sm.register_application(app(cores_max=2, executor_cores=1), T0))
    done = registered_app_id(sm.register_application(app("done"), T0))
    sm.unregister_application(done, m.FINISHED, T0 + 1)
    data = json.loads(json.dumps(sm.snapshot()))

    restored = MasterStateMachine()
    restored.restore(data, T0 + 100)
    # all kept; the active application is UNKNOWN until its driver re-registers
    again = restored.snapshot()
    assert [a["state"] for a in again["apps"]] == ["UNKNOWN", "FINISHED"]
    for a in again["apps"]:
        a["state"] = "RUNNING" if a["state"] == "UNKNOWN" else a["state"]
    assert again == data
    assert restored.workers["w1"].cores_used == 2 and restored.workers["w1"].last_heartbeat == T0 + 100
    assert restored.apps[done].state == m.FINISHED
    # the worker and the driver come back: nothing is lost, nothing relaunched
    actions = restored.register_worker(worker("w1", cores=4, executors=[(app_id, "0", 1, 1024),
                                                                        (app_id, "1", 1, 1024)]), T0 + 101)
    assert not to_driver(actions, m.ExecutorUpdated) and launches(actions) == []
    actions = restored.register_application(app(cores_max=2, executor_cores=1, app_id=app_id), T0 + 102)
    assert registered_app_id(actions) == app_id and launches(actions) == []
    assert restored.apps[app_id].state == m.RUNNING
    assert registered_app_id(restored.register_application(app("new"), T0 + 103)) != app_id


@pytest.mark.timeout(10)
def test_restored_app_whose_driver_never_returns_is_finished() -> None:
    sm = MasterStateMachine()
    app_id = registered_app_id(sm.register_application(app(), T0))
    restored = MasterStateMachine(worker_timeout=60)
    restored.restore(sm.snapshot(), T0 + 10)
    assert "has not re-registered" in restored.waiting_reason(app_id)
    assert restored.apps[app_id].state == m.UNKNOWN
    restored.check_worker_timeouts(T0 + 71)
    assert restored.apps[app_id].state == m.FINISHED
    # its driver, back too late, is told so rather than given a new application
    actions = restored.register_application(app(app_id=app_id), T0 + 72)
    (reply,) = of(actions, Reply)
    assert isinstance(reply.msg, m.ApplicationRemoved) and "already ended (FINISHED)" in reply.msg.message
    assert list(restored.apps) == [app_id]


# ----------------------------------------------------------------- drivers (cluster deploy mode)
def driver_desc(name: str = "app.py", cores: int = 1, memory: int = 1024, supervise: bool = False,
                py_files: list[str] | None = None) -> m.DriverDescription:
    return m.DriverDescription(m.DriverFile(name, b"print('hi')\n"), ["in.txt"],
                               [m.DriverFile(f, b"") for f in py_files or []], {"spark.app.name": "wc"}, cores,
                               memory, supervise, user="alice")


def submitted_driver_id(actions: list[Action]) -> str:
    (reply,) = [a for a in of(actions, Reply) if isinstance(a.msg, m.SubmitDriverResponse)]
    assert reply.msg.success, reply.msg.message
    return str(reply.msg.driver_id)


def driver_launches(actions: list[Action]) -> list[tuple[str, str]]:
    return [(a.worker_id, a.msg.driver_id) for a in of(actions, SendToWorker) if isinstance(a.msg, m.LaunchDriver)]


def driver_kills(actions: list[Action]) -> list[tuple[str, str]]:
    return [(a.worker_id, a.msg.driver_id) for a in of(actions, SendToWorker) if isinstance(a.msg, m.KillDriver)]


def driver_ended(sm: MasterStateMachine, wid: str, did: str, state: str, code: int | None,
                 now: float) -> list[Action]:
    return sm.driver_state_changed(wid, m.DriverStateChanged(did, state, code, f"exited with code {code}"), now)


@pytest.mark.timeout(10)
def test_driver_is_placed_before_applications_get_executors() -> None:
    sm = MasterStateMachine()
    app_id = registered_app_id(sm.register_application(app("greedy"), T0))  # wants every core there is
    did = submitted_driver_id(sm.submit_driver(driver_desc(cores=1, memory=1024), T0))
    assert re.fullmatch(r"driver-\d{14}-0000", did) and sm.drivers[did].state == m.WAITING
    actions = sm.register_worker(worker("w1", cores=3, memory=4096), T0 + 1)
    sends = [type(a.msg).__name__ for a in of(actions, SendToWorker)]
    assert sends == ["LaunchDriver", "LaunchExecutor"]  # the driver first, then the app gets the rest
    assert driver_launches(actions) == [("w1", did)]
    (_, launch), = launches(actions)
    assert (launch.app_id, launch.cores) == (app_id, 2)
    assert sm.drivers[did].state == m.SUBMITTED and DriverChanged(did) in actions
    w1 = sm.workers["w1"]
    assert (w1.cores_used, w1.memory_used) == (3, 2048)
    sm.driver_state_changed("w1", m.DriverStateChanged(did, m.RUNNING, None, "pid 42"), T0 + 2)
    assert sm.drivers[did].state == m.RUNNING
    assert submitted_driver_id(sm.submit_driver(driver_desc(), T0 + 3)).endswith("-0001")


@pytest.mark.timeout(10)
def test_driver_waits_for_a_worker_with_enough_cores_and_memory() -> None:
    sm = MasterStateMachine()
    sm.register_worker(worker("small", cores=2, memory=8192), T0)
    sm.register_worker(worker("lean", cores=8, memory=512), T0)
    actions = sm.submit_driver(driver_desc(cores=4, memory=2048), T0)
    did = submitted_driver_id(actions)
    assert driver_launches(actions) == []
    status = sm.driver_status(did)
    assert (status.found, status.state, status.worker_id) == (True, m.WAITING, "")
    assert "waiting for a worker with 4 cores and 2048 MiB free" in status.message
    actions = sm.register_worker(worker("big", cores=4, memory=4096), T0 + 1)
    assert driver_launches(actions) == [("big", did)]
    assert sm.driver_status(did).worker_host_port == "host-big:7078"
    assert not sm.driver_status("driver-nope").found


@pytest.mark.timeout(10)
def test_drivers_spread_over_workers_with_the_most_free_cores() -> None:
    sm = MasterStateMachine()
    sm.register_worker(worker("w1", cores=2), T0)
    sm.register_worker(worker("w2", cores=2), T0)
    placed = [driver_launches(sm.submit_driver(driver_desc(), T0))[0][0] for _ in range(3)]
    assert placed == ["w1", "w2", "w1"]


@pytest.mark.timeout(10)
def test_invalid_driver_is_refused() -> None:
    sm = MasterStateMachine()
    for desc, fragment in [(driver_desc(name="../evil.py"), "not a plain .py file name"),
                           (driver_desc(name="app.txt"), "not a plain .py file name"),
                           (driver_desc(cores=0), "at least 1 core"),
                           (driver_desc(py_files=["app.py"]), "two files are named 'app.py'"),
                           (driver_desc(py_files=["stdout"]), "py-file name 'stdout'")]:
        (reply,) = of(sm.submit_driver(desc, T0), Reply)
        assert not reply.msg.success and fragment in reply.msg.message, (fragment, reply.msg.message)
    assert not sm.drivers


@pytest.mark.timeout(10)
def test_driver_end_frees_its_worker_and_is_listed_as_completed() -> None:
    sm = MasterStateMachine(retained_drivers=1)
    sm.register_worker(worker("w1", cores=2), T0)
    did = submitted_driver_id(sm.submit_driver(driver_desc(), T0))
    sm.driver_state_changed("w1", m.DriverStateChanged(did, m.RUNNING), T0 + 1)
    doc = sm.to_json(T0 + 2)
    (active,) = doc["activedrivers"]
    assert {k: active[k] for k in ("id", "worker", "state", "starttime", "mainclass", "cores", "memory")} == \
        {"id": did, "worker": "w1", "state": "RUNNING", "starttime": int(T0 * 1000), "mainclass": "app.py",
         "cores": 1, "memory": 1024}
    actions = driver_ended(sm, "w1", did, m.FINISHED, 0, T0 + 5)
    assert DriverChanged(did) in actions
    doc = sm.to_json(T0 + 6)
    assert doc["activedrivers"] == [] and doc["coresused"] == 0
    (done,) = doc["completeddrivers"]
    assert (done["id"], done["state"], done["exitcode"], done["duration"]) == (did, "FINISHED", 0, 5000)
    assert sm.drivers[did].desc.app_file.data == b""  # the files are not kept past the end
    # a second failure, not supervised, is final too; only the newest completed one is retained
    other = submitted_driver_id(sm.submit_driver(driver_desc(), T0 + 7))
    actions = driver_ended(sm, "w1", other, m.FAILED, 3, T0 + 8)
    assert driver_launches(actions) == []
    assert [d["id"] for d in sm.to_json(T0 + 9)["completeddrivers"]] == [other]
    status = sm.driver_status(other)
    assert (status.state, status.exit_code, status.worker_id) == (m.FAILED, 3, "w1")


@pytest.mark.timeout(10)
def test_supervised_driver_is_relaunched_with_a_growing_delay() -> None:
    assert [supervise_delay(n) for n in range(1, 6)] == [0.0, 1.0, 2.0, 4.0, 8.0]
    sm = MasterStateMachine()
    sm.register_worker(worker("w1", cores=2), T0)
    did = submitted_driver_id(sm.submit_driver(driver_desc(supervise=True), T0))
    # a quick failure: relaunched at once
    actions = driver_ended(sm, "w1", did, m.FAILED, 3, T0 + 1)
    assert driver_launches(actions) == [("w1", did)]
    driver = sm.drivers[did]
    assert (driver.state, driver.launches) == (m.SUBMITTED, 2)
    assert "the previous one: exited with code 3" in sm.driver_status(did).message
    # a second quick failure: relaunched after 1 s
    actions = driver_ended(sm, "w1", did, m.FAILED, 3, T0 + 2)
    assert driver_launches(actions) == [] and driver.state == m.WAITING
    assert sm.next_wakeup() == T0 + 3
    assert "relaunching it in 1 s (supervised)" in sm.driver_status(did).message
    assert driver_launches(sm.check_worker_timeouts(T0 + 2.5)) == []
    assert driver_launches(sm.check_worker_timeouts(T0 + 3)) == [("w1", did)]
    assert sm.next_wakeup() is None
    # a failure after a long, healthy run starts the count afresh: at once again
    actions = driver_ended(sm, "w1", did, m.FAILED, 1, T0 + 3 + SUPERVISE_STABLE_RUN + 1)
    assert driver_launches(actions) == [("w1", did)]
    # a clean exit ends it for good
    actions = driver_ended(sm, "w1", did, m.FINISHED, 0, T0 + 100)
    assert driver_launches(actions) == [] and driver.state == m.FINISHED and driver.launches == 4


@pytest.mark.timeout(10)
def test_worker_loss_relaunches_supervised_drivers_elsewhere_and_fails_the_others() -> None:
    sm = MasterStateMachine(worker_timeout=60)
    sm.register_worker(worker("w1", cores=4), T0)
    kept = submitted_driver_id(sm.submit_driver(driver_desc(supervise=True), T0))
    plain = submitted_driver_id(sm.submit_driver(driver_desc(), T0))
    assert sm.drivers[kept].worker_id == sm.drivers[plain].worker_id == "w1"
    sm.register_worker(worker("w2", cores=4), T0 + 10)
    sm.worker_heartbeat("w2", T0 + 70)
    actions = sm.check_worker_timeouts(T0 + 71)
    assert driver_launches(actions) == [("w2", kept)]
    assert sm.drivers[kept].launches == 2 and sm.drivers[kept].quick_failures == 0  # not the driver's fault
    status = sm.driver_status(plain)
    assert status.state == m.ERROR and "its worker w1 was lost: no heartbeat" in status.message
    assert sm.workers["w1"].cores_used == 0 and sm.workers["w2"].cores_used == 1
    # a disconnect is a loss too
    actions = sm.worker_disconnected("w2", T0 + 72)
    assert sm.drivers[kept].state == m.WAITING and driver_launches(actions) == []
    actions = sm.register_worker(worker("w3", cores=1), T0 + 73)
    assert driver_launches(actions) == [("w3", kept)]


@pytest.mark.timeout(10)
def test_kill_driver_waiting_or_running() -> None:
    sm = MasterStateMachine()
    waiting = submitted_driver_id(sm.submit_driver(driver_desc(supervise=True), T0))
    (reply,) = of(sm.kill_driver(waiting, T0 + 1), Reply)
    assert reply.msg == m.KillDriverResponse(waiting, True, f"driver {waiting} killed before it was launched")
    assert sm.drivers[waiting].state == m.KILLED
    sm.register_worker(worker("w1"), T0 + 2)
    assert sm.drivers[waiting].launches == 0  # a killed driver is never launched

    running = submitted_driver_id(sm.submit_driver(driver_desc(supervise=True), T0 + 3))
    actions = sm.kill_driver(running, T0 + 4)
    assert driver_kills(actions) == [("w1", running)]
    assert sm.drivers[running].state == m.SUBMITTED  # until the worker says it ended
    actions = driver_ended(sm, "w1", running, m.KILLED, -15, T0 + 5)
    assert driver_launches(actions) == []  # supervised, yet killed on request: no relaunch
    assert sm.driver_status(running).state == m.KILLED
    (reply,) = of(sm.kill_driver(running, T0 + 6), Reply)
    assert not reply.msg.success and "already KILLED" in reply.msg.message
    (reply,) = of(sm.kill_driver("driver-x", T0 + 6), Reply)
    assert not reply.msg.success and "no driver driver-x" in reply.msg.message


@pytest.mark.timeout(10)
def test_reregistration_keeps_listed_drivers_and_kills_stale_copies() -> None:
    sm = MasterStateMachine(worker_timeout=60)
    sm.register_worker(worker("w1", cores=4), T0)
    did = submitted_driver_id(sm.submit_driver(driver_desc(), T0))
    # the connection broke; the same worker registers again, listing its driver: nothing changes
    sm.worker_disconnected("w1", T0 + 1)
    assert sm.drivers[did].state == m.ERROR  # not supervised: lost with its worker...
    actions = sm.register_worker(m.RegisterWorker("w1", "host-w1", 7078, 4, 4096, drivers=[(did, 1, 1024)]), T0 + 2)
    assert driver_kills(actions) == [("w1", did)]  # ...so the copy that still runs must go

    sup = submitted_driver_id(sm.submit_driver(driver_desc(supervise=True), T0 + 3))
    assert sm.drivers[sup].worker_id == "w1"
    # a re-registration (same id) that lists it keeps it where it is, no relaunch
    actions = sm.register_worker(m.RegisterWorker("w1", "host-w1", 7078, 4, 4096, drivers=[(sup, 1, 1024)]), T0 + 4)
    assert driver_launches(actions) == [] and driver_kills(actions) == []
    assert sm.workers["w1"].drivers[sup] is sm.drivers[sup] and sm.workers["w1"].cores_used == 1
    # one that does not list it: lost, and (supervised) relaunched
    actions = sm.register_worker(worker("w1", cores=4), T0 + 5)
    assert driver_launches(actions) == [("w1", sup)] and sm.drivers[sup].launches == 2
    # a master that never heard of a listed driver counts its resources
    fresh = MasterStateMachine()
    fresh.register_worker(m.RegisterWorker("w9", "h", 1, 4, 4096, drivers=[("driver-old", 2, 512)]), T0)
    assert fresh.workers["w9"].cores_used == 2 and fresh.drivers["driver-old"].state == m.RUNNING
    fresh.driver_state_changed("w9", m.DriverStateChanged("driver-old", m.FINISHED, 0), T0 + 1)
    assert fresh.workers["w9"].cores_used == 0


@pytest.mark.timeout(10)
def test_driver_snapshot_restore_roundtrip() -> None:
    sm = MasterStateMachine()
    sm.register_worker(worker("w1", cores=2), T0)
    running = submitted_driver_id(sm.submit_driver(driver_desc(supervise=True, py_files=["lib.py"]), T0))
    waiting = submitted_driver_id(sm.submit_driver(driver_desc(cores=8), T0))
    done = submitted_driver_id(sm.submit_driver(driver_desc(), T0))
    driver_ended(sm, "w1", done, m.FINISHED, 0, T0 + 1)
    data = json.loads(json.dumps(sm.snapshot()))
    restored = MasterStateMachine()
    actions = restored.restore(data, T0 + 10)
    assert restored.snapshot() == data
    assert "and 2 active drivers from a snapshot" in logs(actions)
    assert restored.drivers[running].desc == sm.drivers[running].desc  # files included
    assert restored.workers["w1"].drivers[running] is restored.drivers[running]
    assert restored.drivers[waiting].state == m.WAITING and restored.drivers[done].state == m.FINISHED
    assert submitted_driver_id(restored.submit_driver(driver_desc(), T0 + 11)).endswith("-0003")
    # the worker comes back listing its driver: kept, not relaunched
    actions = restored.register_worker(m.RegisterWorker("w1", "host-w1", 7078, 2, 4096, drivers=[(running, 1, 1024)]),
                                       T0 + 12)
    assert driver_kills(actions) == [] and restored.drivers[running].launches == 1
