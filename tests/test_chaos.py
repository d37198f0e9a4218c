"""Chaos: SIGKILL executors, workers and drivers, on a seeded random schedule, in the
middle of shuffle-heavy jobs on a cluster of real processes; every result must be exact,
and no process may outlive the application."""
from __future__ import annotations

import json
import operator
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import pytest

from sparkctl import SparkConf, SparkContext
from tests.clusters import ROOT, processes_marked, wait_for

pytestmark = pytest.mark.timeout(180)

SEEDS = [int(s) for s in os.environ.get("SPARKCTL_CHAOS_SEEDS", "7,11").split(",")]


def _slow(f: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def step(x: Any) -> Any:
        time.sleep(0.0005)  # long enough that the kills land mid-stage
        return f(x)
    return step


def wordcount(sc: SparkContext) -> tuple[Any, Any]:
    words = [f"w{(i * 7919) % 113}" for i in range(4000)]
    got = dict(sc.parallelize(words, 12).map(_slow(lambda w: (w, 1))).reduceByKey(operator.add, 6).collect())
    return got, dict(Counter(words))


def join(sc: SparkContext) -> tuple[Any, Any]:
    left = [(i % 150, i) for i in range(2000)]
    right = [(i % 100, -i) for i in range(1500)]
    got = sorted(sc.parallelize(left, 10).map(_slow(lambda kv: kv)).join(sc.parallelize(right, 6), 5).collect())
    expected = sorted((k, (v, w)) for k, v in left for k2, w in right if k == k2)
    return got, expected


def sort(sc: SparkContext) -> tuple[Any, Any]:
    data = [((i * 7919) % 5000, i) for i in range(5000)]
    got = sc.parallelize(data, 10).map(_slow(lambda kv: kv)).sortByKey(True, 5).collect()
    return got, sorted(data)


class Chaos:
    """Kills, from a seeded schedule: executors (the master launches replacements) and at
    most one worker (its executors die with it)."""

    def __init__(self, sc: SparkContext, seed: int, kills: int) -> None:
        self.sc = sc
        self.rng = random.Random(seed)
        self.kills = kills
        self.log: list[str] = []
        self.stop = threading.Event()
        self.worker_killed = False

    def run(self) -> None:
        runtime = self.sc._runtime
        backend = self.sc._backend
        for _ in range(self.kills):
            if self.stop.wait(self.rng.uniform(0.15, 0.5)):
                return
            with runtime.lock:
                executors = sorted(runtime.executors.values(), key=lambda h: h.executor_id)
            workers = backend.procs[1:]  # [0] is the master
            if not self.worker_killed and self.rng.random() < 0.3 and len(workers) > 2:
                victim = self.rng.choice(workers)
                self.log.append(f"worker pid {victim.pid}")
                self.worker_killed = True
                os.kill(victim.pid, signal.SIGKILL)
            elif len(executors) > 1:
                victim_e = self.rng.choice(executors)
                self.log.append(f"executor {victim_e.executor_id} pid {victim_e.pid}")
                try:
                    os.kill(victim_e.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("job", [wordcount, join, sort], ids=["wordcount", "join", "sort"])
def test_results_exact_under_kills(seed: int, job: Callable[[SparkContext], tuple[Any, Any]],
                                   assert_no_child_processes: Any) -> None:
    conf = SparkConf().set("spark.log.level", "ERROR").set("spark.worker.timeout", "2")
    with SparkContext("local-cluster[3,1,512]", f"chaos-{seed}", conf=conf) as sc:
        cluster_dir = sc._backend.dir
        chaos = Chaos(sc, seed, kills=2)
        killer = threading.Thread(target=chaos.run, daemon=True)
        killer.start()
        try:
            got, expected = job(sc)
        finally:
            chaos.stop.set()
            killer.join()
        assert got == expected, f"wrong result after kills: {chaos.log}"
        assert chaos.log, "the schedule killed nothing"
    assert_no_child_processes(allow_shared=False)
    # orphans (executors of a killed worker are no longer our descendants) are found by
    # the private directory the cluster's processes carry in their environment
    deadline = time.monotonic() + 10
    while _processes_of(cluster_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _processes_of(cluster_dir), f"left behind: {_processes_of(cluster_dir)}"


def _processes_of(marker: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    if marker.encode() in f.read():
                        with open(f"/proc/{name}/stat") as st:
                            if st.read().rsplit(")", 1)[1].split()[0] != "Z":
                                found.append(int(name))
            except OSError:
                pass
    return found


def test_hung_worker_is_declared_dead_after_the_timeout(assert_no_child_processes: Any) -> None:
    """A worker that stops answering (SIGSTOP) is marked DEAD after spark.worker.timeout;
    the driver drops its executors, reruns their work on the others, and the result is exact."""
    from sparkctl.deploy.client import request_master_state
    conf = SparkConf().set("spark.log.level", "ERROR").set("spark.worker.timeout", "1")
    with SparkContext("local-cluster[3,1,512]", "hung-worker", conf=conf) as sc:
        backend = sc._backend
        victim = backend.procs[1]
        hung = threading.Timer(0.3, os.kill, (victim.pid, signal.SIGSTOP))
        hung.start()
        try:
            got, expected = wordcount(sc)
            assert got == expected
            master = backend.inner
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                state = request_master_state(master.master_host, master.master_port, backend.inner.secret)
                if [w["state"] for w in state["workers"]].count("DEAD") == 1:
                    break
                time.sleep(0.1)
            assert [w["state"] for w in state["workers"]].count("DEAD") == 1
            # the master tells the driver after it marks the worker: give the message its moment
            deadline = time.monotonic() + 10
            while len(sc._runtime.executors) != 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(sc._runtime.executors) == 2
            assert sc.parallelize(range(100), 6).sum() == 4950
        finally:
            hung.cancel()
            os.kill(victim.pid, signal.SIGCONT)
    assert_no_child_processes(allow_shared=False)


@pytest.mark.parametrize("seed", SEEDS)
def test_local_executor_killed_mid_job_is_replaced(seed: int, assert_no_child_processes: Any) -> None:
    """local[N] has no master: the driver itself replaces its killed executor, and the
    lost tasks (and the lost map outputs) are rerun on the replacement."""
    rng = random.Random(seed)
    conf = SparkConf().set("spark.log.level", "ERROR")
    with SparkContext("local[2]", f"chaos-local-{seed}", conf=conf) as sc:
        runtime = sc._runtime
        killed: list[str] = []
        stop = threading.Event()

        def kill_once() -> None:
            if stop.wait(rng.uniform(0.1, 0.4)):
                return
            with runtime.lock:
                if not runtime.tasks.running_tasks():
                    return
                victim = next(iter(runtime.executors.values()))
            killed.append(f"executor {victim.executor_id} pid {victim.pid}")
            os.kill(victim.pid, signal.SIGKILL)

        killer = threading.Thread(target=kill_once, daemon=True)
        killer.start()
        try:
            got, expected = wordcount(sc)
        finally:
            stop.set()
            killer.join()
        assert got == expected, f"wrong result after kills: {killed}"
        assert killed, "the schedule killed nothing"
        assert "0" in runtime.lost_executors and len(runtime.executors) == 1
        got, expected = join(sc)
        assert got == expected
    assert_no_child_processes(allow_shared=False)


def test_oversized_results_leave_every_executor_alive(assert_no_child_processes: Any) -> None:
    """A result over a frame (spark.rpc.message.maxSize) used to close the executor's
    connection, which killed it and restarted its task forever; over
    spark.driver.maxResultSize it must fail only its job."""
    from sparkctl.errors import SparkctlError
    conf = (SparkConf().set("spark.log.level", "ERROR").set("spark.rpc.message.maxSize", "8m")
            .set("spark.driver.maxResultSize", "30m"))
    with SparkContext("local-cluster[2,1,512]", "chaos-oversized", conf=conf) as sc:
        runtime = sc._runtime
        pids = {e: h.pid for e, h in runtime.executors.items()}
        blobs = sc.parallelize(range(2), 2).map(lambda i: bytes([i]) * (12 << 20)).collect()
        assert [len(b) for b in blobs] == [12 << 20] * 2 and blobs[1].count(1) == 12 << 20
        with pytest.raises(SparkctlError, match=r"spark\.driver\.maxResultSize"):
            sc.parallelize(range(1), 1).map(lambda i: b"x" * (40 << 20)).collect()
        got, expected = wordcount(sc)
        assert got == expected
        assert not runtime.lost_executors and {e: h.pid for e, h in runtime.executors.items()} == pids
    assert_no_child_processes(allow_shared=False)


DRIVER_UNDER_FIRE = textwrap.dedent("""
    import json, operator, sys
    from sparkctl import SparkConf, SparkContext
    sc = SparkContext("local-cluster[2,1,512]", "chaos-driver", conf=SparkConf().set("spark.log.level", "ERROR"))
    print(json.dumps({"dir": sc._backend.dir}), flush=True)
    words = [f"w{(i * 7919) % 113}" for i in range(4000)]
    while True:  # shuffles until the driver is killed
        sc.parallelize(words, 12).map(lambda w: (w, 1)).reduceByKey(operator.add, 6).collect()
""")


@pytest.mark.parametrize("seed", SEEDS)
def test_local_cluster_driver_killed_mid_shuffle_leaves_nothing(seed: int, tmp_path: Path) -> None:
    """SIGKILL of a local-cluster driver at a seeded moment of a shuffle: its private master,
    workers, executors and their task slots end, and its directory goes with them."""
    rng = random.Random(seed)
    app = tmp_path / "driver.py"
    app.write_text(DRIVER_UNDER_FIRE)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKCTL_")}
    env.update(PYTHONPATH=str(ROOT), TMPDIR=str(temp), SPARKCTL_CONF_DIR=str(tmp_path))
    driver = subprocess.Popen([sys.executable, str(app)], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert driver.stdout is not None and driver.stderr is not None
        line = driver.stdout.readline()
        assert line, f"the driver ended before its cluster was up:\n{driver.stderr.read()}"
        cluster_dir = json.loads(line)["dir"]
        wait_for(lambda: len(processes_marked(cluster_dir)) > 3, 30, "the daemons and executors")
        time.sleep(rng.uniform(0.1, 1.5))  # the seeded moment of the kill
        assert driver.poll() is None, driver.stderr.read()
        driver.kill()
        driver.wait(10)
        wait_for(lambda: not processes_marked(str(tmp_path)), 30, "every process of the application to end")
        wait_for(lambda: not os.path.exists(cluster_dir), 10, f"{cluster_dir} to be removed")
    finally:
        left = processes_marked(str(tmp_path))
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        if driver.poll() is None:
            driver.kill()
            driver.wait(10)
