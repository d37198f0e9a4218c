"""Nothing outlives its owner: a driver killed with SIGKILL takes its local-cluster's
master, workers and executors with it; `sparkctl submit` cleans up on SIGTERM and SIGHUP
as on Ctrl-C; what a dead driver could not remove, the next driver does.

Every driver here is a real process whose temp dir (TMPDIR) is the test's own, so the
directories it makes, and the ones a later driver sweeps, are the test's to inspect.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.clusters import ROOT, CliCluster, processes_marked, wait_for

from sparkctl.util.cleanup import OWNER_FILE, ProcessIdentity, make_owned_dir, owned_dir_is_abandoned

pytestmark = pytest.mark.timeout(180)

DRIVER = textwrap.dedent("""
    import json, os, sys, time
    from sparkctl import SparkConf, SparkContext
    master, mode, tasks_dir = sys.argv[1:4]

    def sleepy(x):
        open(os.path.join(tasks_dir, f"task-{x}"), "w").close()  # the test waits for these
        time.sleep(120)
        return x

    sc = SparkContext(master, "leftovers", conf=SparkConf().set("spark.log.level", "ERROR"))
    backend = sc._backend
    assert sc.parallelize(range(8), 4).map(lambda x: x + 1).sum() == 36  # executors up and working
    print(json.dumps({"dir": getattr(backend, "dir", None) or backend.local_dir,
                      "daemons": [p.pid for p in getattr(backend, "procs", [])]}), flush=True)
    if mode == "job":
        sc.parallelize(range(4), 4).map(sleepy).collect()  # until a signal ends it
    elif mode == "wait":
        time.sleep(120)
    sc.stop()
""")


def _env(tmp_path: Path) -> dict[str, str]:
    temp = tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKCTL_")}
    env.update(PYTHONPATH=str(ROOT), TMPDIR=str(temp), SPARKCTL_CONF_DIR=str(tmp_path))
    return env


def _start(tmp_path: Path, prefix: list[str], master: str, mode: str,
           **kwargs: Any) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Start ``prefix driver.py MASTER MODE TASKS_DIR``; return the process and its first
    line (its directory and its daemons' pids), printed once its executors ran a job."""
    app = tmp_path / "driver.py"
    app.write_text(DRIVER)
    tasks = tmp_path / "tasks"
    tasks.mkdir(exist_ok=True)
    proc = subprocess.Popen([*prefix, str(app), master, mode, str(tasks)], env=_env(tmp_path), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(30)
        raise AssertionError(f"the driver ended before it was ready:\n{proc.stderr.read()}")
    return proc, json.loads(line)


def _python_driver(tmp_path: Path, master: str, mode: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    return _start(tmp_path, [sys.executable], master, mode)


def _submit(tmp_path: Path, master: str, mode: str, **kwargs: Any) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    return _start(tmp_path, [sys.executable, str(ROOT / "bin" / "sparkctl"), "submit", "--master", master], master,
                  mode, **kwargs)


def _wait_for_running_tasks(tmp_path: Path) -> None:
    wait_for(lambda: list((tmp_path / "tasks").iterdir()), 30, "tasks to start")


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(autouse=True)
def _nothing_left(tmp_path: Path) -> Iterator[None]:
    """Every process a test started carries its temp dir in its environment: none may be
    left, and a failing test's are killed before the next test runs."""
    yield
    left = processes_marked(str(tmp_path))
    _kill_all(left)
    assert not left, f"processes left behind: {left}"


def _dead_identity() -> ProcessIdentity:
    """The identity of a real process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    who = ProcessIdentity.of(proc.pid)
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(30)
    return who


# ---------------------------------------------------------------- ownership records


def test_a_reused_pid_or_a_zombie_is_not_the_owner() -> None:
    me = ProcessIdentity.current()
    assert me.start is not None and not me.is_dead()
    assert ProcessIdentity(me.pid, me.start - 1, me.boot).is_dead()  # same pid, another process
    assert ProcessIdentity(me.pid, me.start, "another-boot").is_dead()
    assert _dead_identity().is_dead()
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    who = ProcessIdentity.of(zombie.pid)
    wait_for(lambda: open(f"/proc/{zombie.pid}/stat", "rb").read().rsplit(b")", 1)[1].split()[0] == b"Z", 30,
             "the child to exit")
    assert who.is_dead()  # exited, not yet reaped
    zombie.wait(10)
    assert ProcessIdentity.from_json(me.to_json()) == me
    with pytest.raises(ValueError):
        ProcessIdentity.from_json('{"pid": "1"}')


def test_only_our_dirs_whose_owner_is_dead_are_abandoned(tmp_path: Path) -> None:
    dead, alive = _dead_identity(), ProcessIdentity.current()
    gone = make_owned_dir("sparkctl-x-", str(tmp_path), owner=dead)
    assert owned_dir_is_abandoned(gone)
    live = make_owned_dir("sparkctl-x-", str(tmp_path), owner=alive)
    assert not owned_dir_is_abandoned(live)
    no_owner = tmp_path / "sparkctl-no-owner"
    no_owner.mkdir()
    assert not owned_dir_is_abandoned(str(no_owner))
    garbled = make_owned_dir("sparkctl-x-", str(tmp_path), owner=dead)
    Path(garbled, OWNER_FILE).write_text("not json")
    assert not owned_dir_is_abandoned(garbled)
    link = tmp_path / "sparkctl-link"
    link.symlink_to(gone)
    assert not owned_dir_is_abandoned(str(link))
    # a daemon that shares the directory and still runs keeps it
    from sparkctl.util.cleanup import write_identity
    shared = make_owned_dir("sparkctl-x-", str(tmp_path), owner=dead)
    write_identity(shared, "worker-1", alive)
    assert not owned_dir_is_abandoned(shared)
    if os.getuid() == 0:  # another user's directory is never ours to remove
        theirs = make_owned_dir("sparkctl-x-", str(tmp_path), owner=dead)
        os.chown(theirs, 4242, 4242)
        assert not owned_dir_is_abandoned(theirs)


# ---------------------------------------------------------------- SIGKILL of a driver


def test_sigkill_of_a_local_cluster_driver_takes_its_daemons_and_executors_along(tmp_path: Path) -> None:
    driver, info = _python_driver(tmp_path, "local-cluster[2,1,512]", "wait")
    cluster_dir = info["dir"]
    daemons = info["daemons"]
    assert cluster_dir.startswith(str(tmp_path / "tmp")) and len(daemons) == 3
    before = processes_marked(cluster_dir)
    assert set(daemons) <= set(before) and len(before) > len(daemons), "no executors found"
    driver.kill()
    driver.wait(10)
    wait_for(lambda: not processes_marked(cluster_dir), 30, "the master, workers and executors to end")
    # the last daemon out removed the directory
    wait_for(lambda: not os.path.exists(cluster_dir), 10, f"{cluster_dir} to be removed")


def test_the_next_driver_removes_what_killed_drivers_left(tmp_path: Path) -> None:
    # A local-cluster driver and everything of it killed at once: nobody is left to clean up.
    driver, info = _python_driver(tmp_path, "local-cluster[1,1,512]", "wait")
    cluster_dir = info["dir"]
    _kill_all(processes_marked(cluster_dir))  # first, so none of them can clean up after the driver
    driver.kill()
    driver.wait(10)
    wait_for(lambda: not processes_marked(cluster_dir), 30, "the killed processes to end")
    assert os.path.isdir(cluster_dir)
    # A local driver killed: its executor follows it, its scratch directory stays.
    driver, info = _python_driver(tmp_path, "local[1]", "wait")
    app_dir = info["dir"]
    assert os.path.basename(app_dir).startswith("sparkctl-app-")
    driver.kill()
    driver.wait(10)
    wait_for(lambda: not processes_marked(str(tmp_path)), 30, "the local executor to follow its driver")
    assert os.path.isdir(app_dir)
    # Directories that must stay: a live owner's, and one without an owner record.
    temp = tmp_path / "tmp"
    live = make_owned_dir("sparkctl-app-live-", str(temp), owner=ProcessIdentity.current())
    (temp / "sparkctl-unknown").mkdir()

    driver, info = _python_driver(tmp_path, "local[1]", "stop")
    assert driver.wait(60) == 0
    assert not os.path.exists(cluster_dir) and not os.path.exists(app_dir)
    assert os.path.isdir(live) and (temp / "sparkctl-unknown").is_dir()
    assert not os.path.exists(info["dir"])  # and it removed its own on stop


# ---------------------------------------------------------------- signals to submit


@pytest.mark.parametrize("sig,master", [(signal.SIGTERM, "local[2]"), (signal.SIGHUP, "local[2]"),
                                        (signal.SIGTERM, "local-cluster[1,1,512]")],
                         ids=["SIGTERM", "SIGHUP", "SIGTERM-local-cluster"])
def test_sigterm_and_sighup_to_submit_clean_up_as_ctrl_c(tmp_path: Path, sig: int, master: str) -> None:
    submit, info = _submit(tmp_path, master, "job")
    _wait_for_running_tasks(tmp_path)
    submit.send_signal(sig)
    assert submit.wait(60) == 128 + sig
    assert submit.stderr is not None
    assert f"Interrupted by {signal.Signals(sig).name}" in submit.stderr.read()
    wait_for(lambda: not processes_marked(str(tmp_path)), 20, "the application's processes to end")
    assert not list((tmp_path / "tmp").iterdir()), "temp dirs left behind"


def test_sigterm_to_a_plain_python_driver_cleans_up(tmp_path: Path) -> None:
    driver, info = _python_driver(tmp_path, "local[2]", "job")
    _wait_for_running_tasks(tmp_path)
    driver.send_signal(signal.SIGTERM)
    assert driver.wait(60) == 128 + signal.SIGTERM  # the shell's code, once atexit stopped the context
    assert driver.stderr is not None and "Traceback" not in driver.stderr.read()
    wait_for(lambda: not processes_marked(str(tmp_path)), 20, "the executor to end")
    assert not list((tmp_path / "tmp").iterdir()), "temp dirs left behind"


def test_a_second_sigterm_ends_a_driver_that_caught_the_first(tmp_path: Path) -> None:
    """Code that catches SystemExit (a test runner does) swallows the first SIGTERM; the
    second ends the process as Python's default would, and its executor follows it."""
    app = tmp_path / "stubborn.py"
    app.write_text(textwrap.dedent("""
        import time
        from sparkctl import SparkContext
        sc = SparkContext("local[1]", "stubborn")
        try:
            print("ready", flush=True)  # inside the try: the first signal cannot land before it
            time.sleep(60)
        except SystemExit:
            print("caught", flush=True)
            time.sleep(60)
    """))
    driver = subprocess.Popen([sys.executable, str(app)], env=_env(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert driver.stdout is not None
        assert driver.stdout.readline().strip() == "ready"
        driver.send_signal(signal.SIGTERM)
        assert driver.stdout.readline().strip() == "caught"
        driver.send_signal(signal.SIGTERM)
        assert driver.wait(30) == -signal.SIGTERM
        wait_for(lambda: not processes_marked(str(tmp_path)), 20, "the executor to end")
    finally:
        if driver.poll() is None:
            driver.kill()
        driver.wait(10)


def test_a_handler_the_app_installed_is_kept(tmp_path: Path) -> None:
    app = tmp_path / "own_handler.py"
    app.write_text(textwrap.dedent("""
        import signal
        from sparkctl import SparkContext
        def mine(signum, frame):
            pass
        signal.signal(signal.SIGTERM, mine)
        sc = SparkContext("local[1]", "own-handler")
        print(signal.getsignal(signal.SIGTERM) is mine, signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL)
        sc.stop()
        print(signal.getsignal(signal.SIGTERM) is mine, signal.getsignal(signal.SIGHUP) is signal.SIG_DFL)
    """))
    out = subprocess.run([sys.executable, str(app)], env=_env(tmp_path), cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "True", "True"]


def test_a_signal_during_the_cleanup_waits_until_it_is_done(tmp_path: Path) -> None:
    script = tmp_path / "deferred.py"
    script.write_text(textwrap.dedent("""
        import os, signal
        from sparkctl.util import shutdown
        shutdown.install_driver_handlers()
        steps = []
        try:
            with shutdown.deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                steps.append("cleanup finished")
        except shutdown.Interrupted as e:
            steps.append(f"then interrupted by {signal.Signals(e.signum).name}")
        print("; ".join(steps))
    """))
    out = subprocess.run([sys.executable, str(script)], env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "cleanup finished; then interrupted by SIGTERM"


# ---------------------------------------------------------------- a worker's drivers


def test_a_cluster_mode_driver_ends_with_its_worker(tmp_path: Path) -> None:
    cluster = CliCluster(tmp_path)
    app = tmp_path / "sleepy.py"
    app.write_text(textwrap.dedent("""
        import os, time
        from sparkctl import SparkContext
        sc = SparkContext.getOrCreate()
        open("STARTED", "w").close()  # in the driver's directory on the worker
        sc.parallelize(range(2), 2).map(lambda x: time.sleep(120)).collect()
    """))
    try:
        cluster.start([("127.0.0.2", 2)])
        driver_id = cluster.cli("submit", "--master", cluster.url, "--deploy-mode", "cluster",
                                str(app)).stdout.strip()
        driver_dir = cluster.work / driver_id
        wait_for(lambda: (driver_dir / "STARTED").exists(), 60, "the driver's job to start")
        running = _processes_in(str(cluster.work))
        assert len(running) >= 2, "no driver and executor found"
        worker = int(next((tmp_path / "pids").glob("sparkctl-worker-*.pid")).read_text())
        os.kill(worker, signal.SIGKILL)  # its executors follow it; so must its driver
        wait_for(lambda: not _processes_in(str(cluster.work)), 30, "the driver and its executor to end")
    finally:
        cluster.stop()


def _processes_in(directory: str) -> list[int]:
    """Live processes whose working directory is under *directory*."""
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            cwd = os.readlink(f"/proc/{name}/cwd")
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if cwd.startswith(directory) and state != b"Z":
            found.append(int(name))
    return found
