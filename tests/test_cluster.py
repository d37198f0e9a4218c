"""The standalone cluster end to end, with real processes on loopback: a master, workers
on 127.0.0.2 and 127.0.0.3 as different hosts, drivers started by `sparkctl submit`."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from tests.clusters import CliCluster, wait_for
from tests.conftest import descendants

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(180)


class Cluster(CliCluster):
    def submit(self, app: Path, *args: str, wait: bool = True) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, str(ROOT / "bin" / "sparkctl"), "submit", "--master", self.url,
                                 *args, str(app)], env=self.env, cwd=self.base, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        if wait:
            proc.wait(120)
        return proc


def daemon_pids(base: Path) -> list[int]:
    pids = []
    for f in (base / "pids").glob("*.pid") if (base / "pids").exists() else []:
        try:
            pids.append(int(f.read_text().split()[0]))
        except (ValueError, IndexError):
            pass
    return pids


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    yield c
    c.stop()
    # nothing of ours may survive: daemons (detached) and their executors
    for pid in daemon_pids(tmp_path):
        assert not os.path.exists(f"/proc/{pid}"), f"daemon {pid} still running"
    leftovers = [p for p in _all_sparkctl_processes() if str(tmp_path) in p[1]]
    assert not leftovers, f"processes left behind: {leftovers}"


def _all_sparkctl_processes() -> list[tuple[int, str]]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read().decode(errors="replace")
        except OSError:
            continue
        if "sparkctl" in cmd:
            found.append((int(name), cmd + " " + env))
    return found


HOSTS_APP = """
    import operator, socket
    from sparkctl import SparkContext, TaskContext
    sc = SparkContext.getOrCreate()
    def where(i, it):
        return [(i, sc_host()) for _ in it][:1]
    def sc_host():
        return TaskContext.get().env.host
    words = sc.parallelize([f"w{i % 50}" for i in range(5000)], 8)
    counts = dict(words.map(lambda w: (w, 1)).reduceByKey(operator.add, 4).collect())
    assert counts == {f"w{k}": 100 for k in range(50)}, counts
    hosts = sorted(set(h for _, h in words.mapPartitionsWithIndex(where).collect()))
    runtime = sc._runtime
    map_hosts = sorted({s.host for outs in runtime.dag.tracker.outputs.values() for s in outs if s})
    print("HOSTS", ",".join(hosts))
    print("MAPHOSTS", ",".join(map_hosts))
    print("EXECUTORS", len(runtime.executors))
    sc.stop()
"""


def test_local_cluster_shuffle_crosses_hosts(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(HOSTS_APP))
    env = dict(os.environ, PYTHONPATH=str(ROOT), SPARKCTL_CONF_DIR=str(tmp_path))
    before = set(descendants())
    r = subprocess.run([sys.executable, str(ROOT / "bin" / "sparkctl"), "submit", "--master",
                        "local-cluster[2,1,512]", str(app)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
    assert lines["HOSTS"] == "127.0.0.2,127.0.0.3"
    assert lines["MAPHOSTS"] == "127.0.0.2,127.0.0.3"  # reducers fetched blocks from both hosts
    assert lines["EXECUTORS"] == "2"
    assert set(descendants()) <= before


def test_spread_out_places_executors_on_both_workers(cluster: Cluster) -> None:
    cluster.start([("127.0.0.2", 2), ("127.0.0.3", 2)])
    app = cluster.base / "app.py"
    app.write_text(textwrap.dedent(HOSTS_APP))
    proc = cluster.submit(app, "--total-executor-cores", "2", "--executor-cores", "1")
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert "HOSTS 127.0.0.2,127.0.0.3" in out
    state = cluster.state()
    assert [a["state"] for a in state["completedapps"]] == ["FINISHED"]
    assert all(w["coresused"] == 0 for w in state["workers"])  # the master freed the executors


def test_spread_out_off_fills_one_worker_first(tmp_path: Path) -> None:
    c = Cluster(tmp_path, master_conf="spark.deploy.spreadOut false\n")
    try:
        c.start([("127.0.0.2", 2), ("127.0.0.3", 2)])
        app = tmp_path / "app.py"
        app.write_text(textwrap.dedent(HOSTS_APP))
        proc = c.submit(app, "--total-executor-cores", "2", "--executor-cores", "1")
        out, err = proc.communicate()
        assert proc.returncode == 0, err
        hosts = [ln for ln in out.splitlines() if ln.startswith("HOSTS")][0].split()[1].split(",")
        assert len(hosts) == 1
    finally:
        c.stop()


WAIT_APP = """
    import os, sys, time
    from sparkctl import SparkContext
    sc = SparkContext.getOrCreate()
    print("STARTED", time.time(), flush=True)
    flag = sys.argv[1] if len(sys.argv) > 1 else None
    if flag:
        deadline = time.time() + 60
        while not os.path.exists(flag) and time.time() < deadline:
            time.sleep(0.05)
    print("SUM", sc.parallelize(range(100), 4).sum(), flush=True)
    print("DONE", time.time(), flush=True)
    sc.stop()
"""


def test_two_applications_queue_fifo(cluster: Cluster) -> None:
    cluster.start([("127.0.0.2", 2)])
    app = cluster.base / "wait.py"
    app.write_text(textwrap.dedent(WAIT_APP))
    flag = cluster.base / "release"
    first = subprocess.Popen([sys.executable, str(ROOT / "bin" / "sparkctl"), "submit", "--master", cluster.url,
                              str(app), str(flag)], env=cluster.env, cwd=cluster.base, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    wait_for(lambda: any(a["state"] == "RUNNING" for a in cluster.state()["activeapps"]), what="first app running")
    second = subprocess.Popen([sys.executable, str(ROOT / "bin" / "sparkctl"), "submit", "--master", cluster.url,
                               str(app)], env=cluster.env, cwd=cluster.base, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    waiting = wait_for(lambda: [a for a in cluster.state()["activeapps"] if a["state"] == "WAITING"],
                       what="second app waiting")
    assert len(waiting) == 1
    status_text = cluster.cli("status", "--master", cluster.url).stdout
    assert "WAITING" in status_text and "RUNNING" in status_text and "127.0.0.2" in status_text
    flag.write_text("go")
    out1, err1 = first.communicate(timeout=120)
    out2, err2 = second.communicate(timeout=120)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert "SUM 4950" in out1 and "SUM 4950" in out2
    done_first = float(out1.split("DONE ")[1].split()[0])
    started_second = float(out2.split("STARTED ")[1].split()[0])
    assert started_second >= done_first - 0.5  # it got its executors when the first let go
    assert [a["state"] for a in cluster.state()["completedapps"]] == ["FINISHED", "FINISHED"]


def test_no_workers_gives_a_reason(cluster: Cluster) -> None:
    cluster.start([])
    app = cluster.base / "app.py"
    app.write_text("from sparkctl import SparkContext\nSparkContext.getOrCreate()\n")
    proc = cluster.submit(app, "--conf", "spark.executor.registrationTimeout=2s")
    _, err = proc.communicate()
    assert proc.returncode == 1
    assert "no workers are alive" in err


def test_not_enough_memory_gives_a_reason(cluster: Cluster) -> None:
    cluster.start([("127.0.0.2", 1)])
    app = cluster.base / "app.py"
    app.write_text("from sparkctl import SparkContext\nSparkContext.getOrCreate()\n")
    proc = cluster.submit(app, "--executor-memory", "8g", "--conf", "spark.executor.registrationTimeout=2s")
    _, err = proc.communicate()
    assert proc.returncode == 1
    assert "not enough free cores or memory" in err and "8192 MiB" in err


def test_wrong_secret_is_refused(cluster: Cluster) -> None:
    cluster.start([("127.0.0.2", 1)])
    env = dict(cluster.env, SPARKCTL_SECRET="not-the-secret")
    r = subprocess.run([sys.executable, str(ROOT / "bin" / "sparkctl"), "status", "--master", cluster.url],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert cluster.state()["aliveworkers"] == 1  # the master still serves everyone else


def test_driver_killed_frees_its_executors(cluster: Cluster) -> None:
    cluster.start([("127.0.0.2", 2)])
    app = cluster.base / "wait.py"
    app.write_text(textwrap.dedent(WAIT_APP))
    proc = subprocess.Popen([sys.executable, str(ROOT / "bin" / "sparkctl"), "submit", "--master", cluster.url,
                             str(app), str(cluster.base / "never")], env=cluster.env, cwd=cluster.base,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: any(w["coresused"] == 2 for w in cluster.state()["workers"]), what="executors granted")
    proc.kill()
    proc.wait()
    wait_for(lambda: all(w["coresused"] == 0 for w in cluster.state()["workers"]), what="cores freed")
    wait_for(lambda: not [p for p in _all_sparkctl_processes() if "sparkctl.executor" in p[1]
                          and str(cluster.base) in p[1]], what="executors gone")


def test_master_restart_with_recovery_dir(cluster: Cluster) -> None:
    """Kill the master (SIGKILL) while an application runs; a new master on the same port
    with the same --recovery-dir gets the worker and the driver back, and the application
    finishes through the outage."""
    recovery = cluster.base / "recovery"
    out = cluster.cli("master", "start", "--host", "127.0.0.1", "--port", "0", "--webui-port", "0",
                      "--recovery-dir", str(recovery)).stdout
    cluster.url = next(w for w in out.split() if w.startswith("spark://"))
    port = cluster.url.rsplit(":", 1)[1]
    cluster.cli("worker", "start", "--master", cluster.url, "--host", "127.0.0.2", "--port", "0",
                "--webui-port", "0", "--cores", "2", "--memory", "4g")
    app = cluster.base / "wait.py"
    app.write_text(textwrap.dedent(WAIT_APP))
    flag = cluster.base / "release"
    driver = subprocess.Popen([sys.executable, str(ROOT / "bin" / "sparkctl"), "submit", "--master", cluster.url,
                               str(app), str(flag)], env=cluster.env, cwd=cluster.base, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    wait_for(lambda: any(a["state"] == "RUNNING" for a in cluster.state()["activeapps"]), what="app running")
    (master_pid,) = [p for p in daemon_pids(cluster.base)
                     if "sparkctl.deploy.master" in Path(f"/proc/{p}/cmdline").read_text()]
    os.kill(master_pid, 9)
    wait_for(lambda: not os.path.exists(f"/proc/{master_pid}") or
             Path(f"/proc/{master_pid}/stat").read_text().split(") ")[1].startswith("Z"), what="master gone")
    for pid_file in (cluster.base / "pids").glob("*master*.pid"):
        pid_file.unlink()  # as after a crash: the pid file is stale
    # the second master finds the same directory through Spark's settings instead of the flag
    (cluster.conf / "sparkctl-defaults.conf").write_text(
        f"spark.deploy.recoveryMode FILESYSTEM\nspark.deploy.recoveryDirectory {recovery}\n")
    cluster.cli("master", "start", "--host", "127.0.0.1", "--port", port, "--webui-port", "0")
    state = wait_for(lambda: (lambda s: s if s["aliveworkers"] == 1 and any(
        a["state"] == "RUNNING" for a in s["activeapps"]) else None)(cluster.state()),
        what="worker and driver back")
    assert state["workers"][0]["host"] == "127.0.0.2"
    flag.write_text("go")
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 0, err
    assert "SUM 4950" in out
    wait_for(lambda: [a["state"] for a in cluster.state()["completedapps"]] == ["FINISHED"], what="app finished")
