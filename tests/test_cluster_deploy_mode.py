"""Cluster deploy mode end to end: real daemons on loopback (a master, workers on 127.0.0.2
and 127.0.0.3), drivers run by the workers, every command through the real CLI.

```
 test ── sparkctl submit --deploy-mode cluster ──▶ master ── LaunchDriver ──▶ worker
                                                                               │ runs
 test ◀── files the driver wrote, `logs`, `--status`, `status --json` ◀── driver (sparkctl submit, client mode)
```
"""
from __future__ import annotations

import collections
import os
import re
import signal
import stat
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sparkctl.cli import main

from tests.clusters import CliCluster, wait_for

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(60)
DRIVER_ID = re.compile(r"driver-\d{14}-\d{4}")


class Cluster(CliCluster):
    """A master and two workers, on 127.0.0.2 and 127.0.0.3."""

    def start(self, workers: list[tuple[str, int]] | None = None) -> None:
        super().start(workers or [("127.0.0.2", 2), ("127.0.0.3", 2)])

    def cli(self, *args: str, timeout: float = 45, check: bool = True) -> subprocess.CompletedProcess[str]:
        return super().cli(*args, timeout=timeout, check=check)

    def submit(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.cli("submit", "--master", self.url, *args, check=check)

    def driver(self, driver_id: str) -> dict[str, Any] | None:
        state = self.state()
        return next((d for d in state["activedrivers"] + state["completeddrivers"] if d["id"] == driver_id), None)

    def secret(self) -> str:
        return (self.conf / "secret").read_text().strip()


def processes_of(base: Path) -> list[tuple[int, str]]:
    """Live processes whose command line, environment or working directory points into *base*."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read().decode(errors="replace")
            cwd = os.readlink(f"/proc/{name}/cwd")
        except OSError:
            continue
        if state != b"Z" and str(base) in cmd + " " + env + " " + cwd:
            found.append((int(name), cmd))
    return found


def driver_processes(cluster: Cluster, driver_id: str) -> list[int]:
    """Processes running in the driver's work dir: the driver and anything it started."""
    where = str(cluster.work / driver_id)
    pids = []
    for pid, _ in processes_of(cluster.base):
        try:
            if os.readlink(f"/proc/{pid}/cwd") == where:
                pids.append(pid)
        except OSError:
            pass
    return pids


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    c.start()
    yield c
    c.stop()
    # nothing of ours may survive: daemons (detached), drivers and executors
    wait_for(lambda: not processes_of(tmp_path), 15, "every process of the test to end")


WORDCOUNT_APP = """
    import sys
    from sparkctl import SparkContext
    from wordsplit import words  # shipped with --py-files

    source, target = sys.argv[1], sys.argv[2]
    sc = SparkContext.getOrCreate()
    print("wordcount from", source, "to", target, flush=True)
    counts = sc.textFile(source, 4).flatMap(words).map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b, 3)
    counts.map(lambda kv: f"{kv[0]}\\t{kv[1]}").saveAsTextFile(target)
    print("wrote", counts.count(), "words", flush=True)
    sc.stop()
"""

WORDSPLIT = """
    def words(line):
        return line.lower().split()
"""


def test_cluster_mode_wordcount_with_wait_status_and_logs(cluster: Cluster) -> None:
    base = cluster.base
    (base / "wc.py").write_text(textwrap.dedent(WORDCOUNT_APP))
    (base / "wordsplit.py").write_text(textwrap.dedent(WORDSPLIT))
    text = "".join(f"the quick brown fox {i % 7} jumps over The lazy dog {i % 3}\n" for i in range(300))
    (base / "input.txt").write_text(text)
    out_dir = base / "counts"

    r = cluster.submit("--deploy-mode", "cluster", "--wait", "--py-files", str(base / "wordsplit.py"),
                       str(base / "wc.py"), str(base / "input.txt"), str(out_dir))
    driver_id = r.stdout.splitlines()[0]
    assert DRIVER_ID.fullmatch(driver_id), r.stdout
    assert f"{driver_id} FINISHED (exit code 0)" in r.stderr

    written = collections.Counter[str]()
    for part in sorted(out_dir.glob("part-*")):
        for line in part.read_text().splitlines():
            word, count = line.split("\t")
            written[word] += int(count)
    assert written == collections.Counter(text.lower().split())

    status = cluster.submit("--status", driver_id).stdout
    assert "state: FINISHED" in status and "exit code: 0" in status
    worker_line = next(line for line in status.splitlines() if line.startswith("worker: "))
    assert re.search(r"worker-\d{14}-127\.0\.0\.[23]-\d+ \(127\.0\.0\.[23]:\d+\)", worker_line), status

    # the driver's output stays on its worker; `logs` fetches it from here
    logs = cluster.cli("logs", "--master", cluster.url, driver_id).stdout
    assert f"wordcount from {base / 'input.txt'} to {out_dir}" in logs
    assert f"wrote {len(written)} words" in logs
    assert cluster.cli("logs", "--master", cluster.url, driver_id, "--stderr").returncode == 0
    directory = cluster.work / driver_id
    # no secret: only the app, its py-files (and their bytecode, unless PYTHONDONTWRITEBYTECODE) and its output
    assert sorted(p.name for p in directory.iterdir() if p.name != "__pycache__") == \
        ["stderr", "stdout", "wc.py", "wordsplit.py"]

    driver = cluster.driver(driver_id)
    assert driver is not None
    assert {k: driver[k] for k in ("id", "state", "mainclass", "cores", "memory")} == \
        {"id": driver_id, "state": "FINISHED", "mainclass": "wc.py", "cores": 1, "memory": 1024}
    assert driver["worker"] in worker_line and driver["starttime"] > 0
    table = cluster.cli("status", "--master", cluster.url).stdout
    assert "Completed drivers" in table and driver_id in table
    assert all(w["coresused"] == 0 for w in cluster.state()["workers"])  # the driver's core is free again


FILES_APP = """
    from sparkctl import SparkContext, SparkFiles
    sc = SparkContext.getOrCreate()
    def read(_):
        from sparkctl import SparkFiles
        import os
        with open(SparkFiles.get("lookup.txt")) as f:
            words = f.read().split()
        with open(os.path.join(SparkFiles.get("refdata"), "inner.txt")) as f:
            inner = f.read().strip()
        return [(len(words), inner)]
    print("driver sees", open(SparkFiles.get("lookup.txt")).read().split(), flush=True)
    print("tasks see", sorted(set(sc.parallelize(range(4), 4).mapPartitions(read).collect())), flush=True)
    sc.stop()
"""


def test_cluster_mode_ships_files_and_archives(cluster: Cluster) -> None:
    """--files and --archives travel with a cluster-mode submission, like the app: the worker
    that runs the driver has none of the submitter's files."""
    import zipfile
    base = cluster.base
    (base / "app.py").write_text(textwrap.dedent(FILES_APP))
    (base / "lookup.txt").write_text("alpha beta gamma\n")
    with zipfile.ZipFile(base / "ref.zip", "w") as z:
        z.writestr("inner.txt", "from the archive\n")
    r = cluster.submit("--deploy-mode", "cluster", "--wait", "--files", str(base / "lookup.txt"),
                       "--archives", f"{base / 'ref.zip'}#refdata", str(base / "app.py"))
    driver_id = r.stdout.splitlines()[0]
    assert f"{driver_id} FINISHED (exit code 0)" in r.stderr, r.stderr
    logs = cluster.cli("logs", "--master", cluster.url, driver_id).stdout
    assert "driver sees ['alpha', 'beta', 'gamma']" in logs, logs
    assert "tasks see [(3, 'from the archive')]" in logs, logs
    directory = cluster.work / driver_id
    assert sorted(p.name for p in (directory / "files").iterdir()) == ["lookup.txt"]
    assert sorted(p.name for p in (directory / "archives").iterdir()) == ["ref.zip"]
    bad = cluster.submit("--deploy-mode", "cluster", "--files", str(base), str(base / "app.py"), check=False)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "is a directory" in bad.stderr, \
        bad.stderr


FLAKY_APP = """
    import os, sys
    marker = sys.argv[1]
    if not os.path.exists(marker):
        open(marker, "w").write("failed once")
        print("first attempt: failing", flush=True)
        print("no luck this time", file=sys.stderr)
        sys.exit(3)
    from sparkctl import SparkContext
    sc = SparkContext.getOrCreate()
    print("second attempt: sum", sc.parallelize(range(100), 4).sum(), flush=True)
    sc.stop()
"""


def test_supervise_restarts_a_failed_driver(cluster: Cluster) -> None:
    app = cluster.base / "flaky.py"
    app.write_text(textwrap.dedent(FLAKY_APP))
    # without --supervise the first failure is final, and --wait passes its exit code on
    r = cluster.submit("--deploy-mode", "cluster", "--wait", str(app), str(cluster.base / "marker-plain"),
                       check=False)
    assert r.returncode == 3, r.stderr
    assert "FAILED (exit code 3)" in r.stderr and "no luck this time" in r.stderr  # its stderr's last lines
    plain = r.stdout.strip()
    status = cluster.submit("--status", plain).stdout
    assert "state: FAILED" in status and "exit code: 3" in status and "no luck this time" in status

    marker = cluster.base / "marker"
    r = cluster.submit("--deploy-mode", "cluster", "--supervise", "--wait", str(app), str(marker))
    driver_id = r.stdout.strip()
    assert marker.read_text() == "failed once"
    status = cluster.submit("--status", driver_id).stdout
    assert "state: FINISHED" in status and "launches: 2" in status, status
    assert "the previous one: driver process exited with code 3" in r.stderr
    driver = cluster.driver(driver_id)
    assert driver is not None and driver["supervise"] is True
    logs = cluster.cli("logs", "--master", cluster.url, driver_id).stdout
    if "first attempt" in logs:  # both launches on one worker: its stdout holds both
        assert logs.index("first attempt: failing") < logs.index("second attempt: sum 4950")
    assert "second attempt: sum 4950" in logs


WAITING_APP = """
    import sys, time
    from sparkctl import SparkContext
    sc = SparkContext.getOrCreate()
    print("STARTED", sc.parallelize(range(10), 2).sum(), flush=True)
    time.sleep(300)
"""


def test_kill_a_running_driver(cluster: Cluster) -> None:
    app = cluster.base / "sleepy.py"
    app.write_text(textwrap.dedent(WAITING_APP))
    r = cluster.submit("--deploy-mode", "cluster", str(app))
    driver_id = r.stdout.strip()
    assert DRIVER_ID.fullmatch(driver_id) and r.stderr == ""  # returns at once, without --wait
    wait_for(lambda: "STARTED 45" in cluster.cli("logs", "--master", cluster.url, driver_id, check=False).stdout,
             what="the driver's first job")
    assert "state: RUNNING" in cluster.submit("--status", driver_id).stdout
    (driver,) = cluster.state()["activedrivers"]
    assert (driver["id"], driver["state"]) == (driver_id, "RUNNING")
    assert sum(w["coresused"] for w in cluster.state()["workers"]) == 4  # its core and its executors

    # the cluster secret reaches the driver through a private 0600 file, never its command line or environment
    pids = driver_processes(cluster, driver_id)
    assert pids
    secret = cluster.secret()
    for pid in pids:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert secret.encode() not in f.read()
        with open(f"/proc/{pid}/environ", "rb") as f:
            assert secret.encode() not in f.read()
    secret_file = cluster.work / driver_id / "conf" / "secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600

    r = cluster.submit("--kill", driver_id)
    assert f"{driver_id} KILLED" in r.stdout
    assert "state: KILLED" in cluster.submit("--status", driver_id).stdout
    wait_for(lambda: not driver_processes(cluster, driver_id), 10, "the driver's processes to end")
    assert not secret_file.exists()
    # its application went with it, and so did its executors
    wait_for(lambda: all(w["coresused"] == 0 for w in cluster.state()["workers"]), 20, "cores freed")
    assert [a["state"] for a in cluster.state()["completedapps"]] == ["FINISHED"]
    r = cluster.submit("--kill", driver_id, check=False)
    assert r.returncode == 1 and "already KILLED" in r.stderr


def test_supervised_driver_moves_when_its_worker_stops(cluster: Cluster) -> None:
    app = cluster.base / "sleepy.py"
    app.write_text(textwrap.dedent(WAITING_APP))
    driver_id = cluster.submit("--deploy-mode", "cluster", "--supervise", str(app)).stdout.strip()
    first = wait_for(lambda: (d := cluster.driver(driver_id)) and d["state"] == "RUNNING" and d["worker"],
                     what="the driver to run")
    host = re.search(r"127\.0\.0\.[23]", first).group(0)  # type: ignore[union-attr]
    wait_for(lambda: "STARTED" in cluster.cli("logs", "--master", cluster.url, driver_id, check=False).stdout,
             what="the driver's first job")
    # Stop that worker (as `sparkctl worker stop` would): its driver goes down with it...
    pid = int((cluster.base / "pids" / f"sparkctl-worker-{host}-0.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not any(p == pid for p, _ in processes_of(cluster.base)), 20, "the worker to stop")
    # ...and the master starts it again on the other one
    moved = wait_for(lambda: (d := cluster.driver(driver_id)) and d["state"] == "RUNNING" and d["launches"] == 2
                     and d, what="the driver to run again")
    assert host not in moved["worker"]
    assert "was lost: its connection closed" in moved["message"]
    wait_for(lambda: cluster.cli("logs", "--master", cluster.url, driver_id, check=False).stdout.count("STARTED") == 2,
             what="the second launch's first job")
    assert f"{driver_id} KILLED" in cluster.submit("--kill", driver_id).stdout


@pytest.mark.timeout(30)
@pytest.mark.parametrize("args, message", [
    (["submit", "--deploy-mode", "cluster", "--master", "local[2]", "x.py"],
     "--deploy-mode cluster needs a spark://host:port master, not 'local[2]'"),
    (["submit", "--kill", "driver-20240101000000-0000"], "--kill needs a spark://host:port master"),
    (["submit", "--status", "driver-1", "--master", "local"], "--status needs a spark://host:port master"),
    (["submit", "--status", "d1", "--kill", "d2", "--master", "spark://h:7077"], "cannot be used together"),
    (["submit", "--supervise", "x.py"], "--supervise applies to --deploy-mode cluster only"),
    (["submit", "--wait", "--master", "spark://h:7077", "x.py"], "--wait applies to --deploy-mode cluster only"),
    (["submit", "--deploy-mode", "cluster", "--master", "spark://h:7077", "--driver-cores", "0", "x.py"],
     "--driver-cores must be at least 1"),
    (["submit", "--deploy-mode", "cluster", "--master", "spark://h:7077", "--driver-memory", "lots", "x.py"],
     "invalid --driver-memory"),
    (["submit", "--master", "spark://h:7077"], "missing the application file"),
    (["logs", "driver-1", "--master", "local[2]"], "logs needs a spark://host:port master"),
])
def test_cli_mistakes_are_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
                                          message: str) -> None:
    (tmp_path / "x.py").write_text("print('hi')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPARKCTL_CONF_DIR", str(tmp_path))
    monkeypatch.delenv("SPARKCTL_MASTER", raising=False)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], result.output


@pytest.mark.timeout(30)
def test_unreachable_master_is_one_line_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    (tmp_path / "x.py").write_text("print('hi')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPARKCTL_SECRET", "s3cret")
    for args in (["submit", "--deploy-mode", "cluster", "--master", f"spark://127.0.0.1:{port}", "x.py"],
                 ["submit", "--status", "driver-1", "--master", f"spark://127.0.0.1:{port}"],
                 ["logs", "driver-1", "--master", f"spark://127.0.0.1:{port}"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, result.output
        lines = [ln for ln in result.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and "connection refused" in lines[0], result.output
