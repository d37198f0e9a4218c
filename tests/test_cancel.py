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

from tests.clusters import wait_for

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


@pytest.mark.parametrize("inherited", ["default", "ignored"])
def test_ctrl_c_in_driver_cancels_and_exits(tmp_path: Path, inherited: str) -> None:
    """Ctrl-C ends the job and the driver, and the executor and temp dirs go with it; also
    when submit was started with SIGINT ignored (as a shell starts a background job)."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(f"""
        import os, time
        from sparkctl import SparkContext
        def sleepy(x):
            open(os.path.join({str(tasks)!r}, str(x)), "w").close()
            time.sleep(60)
            return x
        sc = SparkContext.getOrCreate()
        sc.parallelize(range(4), 4).map(sleepy).collect()
    """))
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), SPARKCTL_CONF_DIR=str(tmp_path), TMPDIR=str(temp))
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if inherited == "ignored" else None
    proc = subprocess.Popen([sys.executable, str(ROOT / "bin" / "sparkctl"), "submit", "--master", "local[2]",
                             str(app)], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=ignore)
    try:
        wait_for(lambda: list(tasks.iterdir()) or proc.poll() is not None, 60, "tasks to start")
        proc.send_signal(signal.SIGINT)
        proc.wait(30)  # the tasks sleep for 60 s: they were cancelled, not waited for
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 130, proc.stderr.read() if proc.stderr else ""
    wait_for(lambda: not _processes_with(str(temp)), 20, "the executor and its task slots to end")
    assert not list(temp.iterdir()), "the driver left its temp dir"


def _processes_with(marker: str) -> list[int]:
    """Live processes whose environment holds *marker* (the executor and its task slots
    inherit the driver's TMPDIR)."""
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in env and state != b"Z":
            found.append(int(name))
    return found
