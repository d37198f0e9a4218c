"""A worker the master declared DEAD comes back: the executors the master removed with it
(and told the driver were lost) are killed by the worker at the master's word, never
re-adopted; the application carries on with new executors and exact results.

Real processes: a ``local-cluster`` (master and two workers), one worker and its executor
frozen with SIGSTOP long enough to miss the worker timeout, as a network partition would.
"""
from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

from sparkctl import SparkConf, SparkContext
from sparkctl.deploy.client import request_master_state

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """Whether *pid* runs (a zombie, dead but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _ancestors(pid: int) -> list[int]:
    out = []
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            break
        out.append(pid)
    return out


def test_executor_of_a_worker_declared_dead_is_killed_when_the_worker_returns(
        assert_no_child_processes: Any) -> None:
    conf = SparkConf().set("spark.log.level", "ERROR").set("spark.worker.timeout", "1")
    with SparkContext("local-cluster[2,1,512]", "worker-reconnect", conf=conf) as sc:
        backend = sc._backend
        runtime = sc._runtime
        master = backend.inner
        assert sc.parallelize(range(100), 4).sum() == sum(range(100))
        victim = backend.procs[1]  # worker 0, on 127.0.0.2
        with runtime.lock:
            (stale,) = [h for h in runtime.executors.values() if h.host == "127.0.0.2"]
        assert victim.pid in _ancestors(stale.pid)

        def worker_states() -> list[str]:
            state = request_master_state(master.master_host, master.master_port, master.secret)
            return sorted(w["state"] for w in state["workers"])

        # The worker and its executor stop answering; the executor cannot exit on its own
        # while stopped, so only a kill ends it.
        os.kill(stale.pid, signal.SIGSTOP)
        os.kill(victim.pid, signal.SIGSTOP)
        try:
            _wait(lambda: worker_states() == ["ALIVE", "DEAD"], 20, "the silent worker to be declared DEAD")
            _wait(lambda: stale.executor_id not in runtime.executors, 10, "the driver to drop the lost executor")
            os.kill(victim.pid, signal.SIGCONT)
            _wait(lambda: worker_states() == ["ALIVE", "ALIVE"], 20, "the worker to register again")
            _wait(lambda: not _alive(stale.pid), 20, "the stale executor to be killed")
        finally:
            for pid in (victim.pid, stale.pid):
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        with open(os.path.join(backend.dir, "master.log"), encoding="utf-8") as f:
            assert f"executor {master.app_id}/{stale.executor_id}, which this master removed" in f.read()
        # The application gets a new executor on the returned worker, and exact results.
        _wait(lambda: len(runtime.executors) == 2, 30, "a new executor on the returned worker")
        with runtime.lock:
            hosts = sorted((h.host, h.executor_id) for h in runtime.executors.values())
        assert [host for host, _ in hosts] == ["127.0.0.2", "127.0.0.3"]
        assert stale.executor_id not in [e for _, e in hosts]
        words = [f"w{i % 7}" for i in range(700)]
        got = dict(sc.parallelize(words, 6).map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b, 4).collect())
        assert got == {f"w{k}": 100 for k in range(7)}
    assert_no_child_processes(allow_shared=False)
