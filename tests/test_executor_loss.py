"""A lost executor ends in a replacement with its tasks retried, or in a clear job failure:
never in a job that waits forever. Real executor processes, killed with SIGKILL."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sparkctl import SparkConf, SparkContext
from sparkctl.errors import ExecutorLostError, SparkctlError
from sparkctl.executor.slot import executor_pid
from tests.clusters import pid_alive, wait_for

pytestmark = pytest.mark.timeout(60)


def _conf(**settings: str) -> SparkConf:
    conf = SparkConf().set("spark.log.level", "ERROR").set("spark.ui.showConsoleProgress", "false")
    for key, value in settings.items():
        conf.set(key.replace("_", "."), value)
    return conf


def _kills_its_executor(x: int) -> int:
    os.kill(executor_pid(), signal.SIGKILL)
    return x


def test_local_executor_killed_mid_job_is_replaced_and_the_job_completes(
        tmp_path: Path, assert_no_child_processes: Any) -> None:
    go = str(tmp_path / "go")
    with SparkContext("local[2]", "kill-local-executor", conf=_conf()) as sc:
        runtime = sc._runtime
        victim = runtime.executors["0"].pid

        def wait_for_go(x: int) -> int:
            while not os.path.exists(go):  # holds the first attempts until the executor is killed
                time.sleep(0.01)
            return x * x

        box: dict[str, Any] = {}
        job = threading.Thread(target=lambda: box.update(result=sc.parallelize(range(40), 4)
                                                        .map(wait_for_go).collect()))
        job.start()
        try:
            wait_for(lambda: runtime.tasks.running_tasks() == 2, 20, "two running tasks")
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: "0" in runtime.lost_executors, 20, "the driver to notice the loss")
            open(go, "w").close()
        finally:
            open(go, "a").close()
            job.join(30)
        assert box.get("result") == [x * x for x in range(40)]
        assert set(runtime.executors) == {"1"}  # the replacement, under a new id
        assert not pid_alive(victim)
        assert sc.parallelize(range(10), 2).sum() == 45
    assert_no_child_processes(allow_shared=False)


def test_task_that_kills_every_executor_fails_after_max_failures(assert_no_child_processes: Any) -> None:
    with SparkContext("local[2]", "executor-killer", conf=_conf(spark_task_maxFailures="3")) as sc:
        runtime = sc._runtime
        with pytest.raises(ExecutorLostError) as info:
            sc.parallelize([1], 1).map(_kills_its_executor).collect()
        text = str(info.value) + "\n".join(getattr(info.value, "__notes__", []))
        assert "task 0 in stage" in text and "failed 3 times (spark.task.maxFailures=3)" in text
        for eid in ("0", "1", "2"):
            assert f"attempt {eid} on executor {eid}: executor {eid} lost: connection closed" in text
        # the context goes on, on a fourth executor
        assert sc.parallelize(range(10), 2).sum() == 45
        assert set(runtime.executors) == {"3"}
    assert_no_child_processes(allow_shared=False)


def test_replacement_that_cannot_start_aborts_the_application(assert_no_child_processes: Any) -> None:
    with SparkContext("local[1]", "no-replacement", conf=_conf()) as sc:
        runtime = sc._runtime
        backend = sc._backend
        # every later executor starts with settings it refuses, so it exits at once
        original = backend._launch

        def broken_launch() -> Any:
            backend.cores = 0 if backend._next_executor else backend.cores
            return original()
        backend._launch = broken_launch
        with pytest.raises(SparkctlError, match="replacement local executor 1 exited with code"):
            sc.parallelize([1], 1).map(_kills_its_executor).collect()
        with pytest.raises(SparkctlError, match="aborted"):
            sc.parallelize(range(4), 2).count()
    assert_no_child_processes(allow_shared=False)


@pytest.mark.timeout(120)
def test_local_cluster_executor_killer_fails_the_job_then_the_app_goes_on(
        assert_no_child_processes: Any) -> None:
    conf = _conf(spark_task_maxFailures="3")
    with SparkContext("local-cluster[2,1,512]", "cluster-executor-killer", conf=conf) as sc:
        with pytest.raises(ExecutorLostError) as info:
            sc.parallelize([1], 1).map(_kills_its_executor).collect()
        text = str(info.value) + "\n".join(getattr(info.value, "__notes__", []))
        assert "failed 3 times (spark.task.maxFailures=3)" in text and text.count(" lost: ") >= 3
        wait_for(lambda: len(sc._runtime.executors) == 2, 60, "the master to replace the executors")
        assert sc.parallelize(range(10), 4).sum() == 45
    assert_no_child_processes(allow_shared=False)


@pytest.mark.timeout(120)
def test_master_gives_up_on_an_app_whose_executors_keep_dying(assert_no_child_processes: Any) -> None:
    """spark.deploy.maxExecutorRetries: the master removes the app once its executors failed
    that often in a row with none left running; the driver fails the job with its reason."""
    conf = _conf(spark_task_maxFailures="50", spark_deploy_maxExecutorRetries="3")
    with SparkContext("local-cluster[2,1,512]", "hopeless-app", conf=conf) as sc:
        with pytest.raises(SparkctlError) as info:
            sc.parallelize([1], 1).map(_kills_its_executor).collect()
        text = str(info.value)
        assert "the master removed the application" in text
        assert "spark.deploy.maxExecutorRetries=3" in text
        with pytest.raises(SparkctlError, match="spark.deploy.maxExecutorRetries=3"):
            sc.parallelize(range(4), 2).count()
    assert_no_child_processes(allow_shared=False)
