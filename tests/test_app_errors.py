"""Application mistakes get messages that point at the cause."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from sparkctl.errors import SparkctlError
from tests.clusters import wait_for

pytestmark = pytest.mark.timeout(60)

def test_unserializable_closure_names_the_object(sc: Any) -> None:
    guard = threading.Lock()

    def uses_lock(x: int) -> int:  # defined here, so it travels by value with what it uses
        with guard:
            return x

    with pytest.raises(SparkctlError) as info:
        sc.parallelize(range(4), 2).map(uses_lock).collect()
    text = str(info.value)
    assert "Task not serializable" in text and "free variable 'guard'" in text and "uses_lock" in text
    assert "_thread.lock" in text
    assert sc.parallelize(range(4), 2).sum() == 6  # the context is still fine


def test_missing_input_path_fails_fast_and_names_it(sc: Any, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such.txt"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        sc.textFile(str(missing))
    with pytest.raises(FileNotFoundError, match="such"):
        sc.textFile(str(tmp_path / "no" / "such*.txt"))


def test_results_over_max_result_size_name_the_setting(sc: Any) -> None:
    runtime = sc._runtime
    saved = runtime.max_result_size
    runtime.max_result_size = 64 * 1024  # as spark.driver.maxResultSize=64k would
    try:
        with pytest.raises(SparkctlError, match="spark.driver.maxResultSize"):
            sc.parallelize(range(4), 4).map(lambda i: "x" * 40_000).collect()
    finally:
        runtime.max_result_size = saved
    # every slot comes back: a refused result's task used to keep its slot for good, and
    # once all were held the next job waited forever
    wait_for(lambda: runtime.tasks.running_tasks() == 0, 10, "the job's tasks to end")
    assert all(s.free == s.cores for s in runtime.tasks.executors.values())
    assert sc.parallelize(range(10), 2).count() == 10


def test_slot_killed_like_the_oom_killer_says_so(sc: Any) -> None:
    import os
    import signal

    def die(x: int) -> int:
        if x == 0:
            os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's out-of-memory killer does
        return x

    with pytest.raises(Exception) as info:
        sc.parallelize(range(4), 2).map(die).collect()
    text = str(info.value) + "".join(getattr(info.value, "__notes__", []))
    assert "SIGKILL" in text and "out-of-memory" in text and "spark.executor.memory" in text
    assert sc.parallelize(range(4), 2).sum() == 6  # the slots were replaced
