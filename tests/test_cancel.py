"""Cancellation: cancelJobGroup, cancelAllJobs and Ctrl-C stop the running tasks, and the
executor's slots are free for the next job at once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sparkctl import SparkContext
from sparkctl.errors import JobCancelledError

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(120)


def _sleepy(x: int) -> int:
    time.sleep(60)
    return x


def _run_in_thread(sc: SparkContext, group: str | None) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def body() -> None:
        if group:
            sc.setJobGroup(group, "a long job")
        try:
            outcome["result"] = sc.parallelize(range(4), 4).map(_sleepy).collect()
        except BaseException as e:  # noqa: BLE001
            outcome["error"] = e

    t = threading.Thread(target=body)
    t.start()
    deadline = time.monotonic() + 30
    while sc._runtime.tasks.running_tasks() < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    return t, outcome


@pytest.fixture(scope="module")
def own_sc() -> Any:
    sc = SparkContext("local[2]", "cancel")
    yield sc
    sc.stop()


@pytest.mark.parametrize("how", ["group", "all"])
def test_cancel_stops_running_tasks(own_sc: SparkContext, how: str) -> None:
    thread, outcome = _run_in_thread(own_sc, "g1" if how == "group" else None)
    started = time.monotonic()
    if how == "group":
        own_sc.cancelJobGroup("other-group")  # not ours: nothing happens
        time.sleep(0.2)
        assert thread.is_alive()
        own_sc.cancelJobGroup("g1")
    else:
        own_sc.cancelAllJobs()
    thread.join(30)
    assert not thread.is_alive()
    assert isinstance(outcome.get("error"), JobCancelledError)
    # the slots were freed by killing the tasks, not by waiting 60 s for them
    assert own_sc.parallelize(range(10), 2).sum() == 45
    assert time.monotonic() - started < 10


def test_ctrl_c_in_driver_cancels_and_exits(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent("""
        import time
        from sparkctl import SparkContext
        def sleepy(x):
            time.sleep(60)
            return x
        sc = SparkContext.getOrCreate()
        print("running", flush=True)
        sc.parallelize(range(4), 4).map(sleepy).collect()
    """))
    env = dict(os.environ, PYTHONPATH=str(ROOT), SPARKCTL_CONF_DIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, str(ROOT / "bin" / "sparkctl"), "submit", "--master", "local[2]",
                             str(app)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "running"
    time.sleep(0.5)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(30)
    assert proc.returncode == 130
    assert time.monotonic() - started < 15
