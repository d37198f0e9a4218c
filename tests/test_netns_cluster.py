"""A standalone cluster on real separate hosts: network namespaces (:mod:`tests.netns`).

Four namespaces on a private bridge, each with its own address, its own sshd on port 22
and its own worker on port 7078; the master and the drivers run in the root namespace at
the bridge's address. ``sparkctl cluster start`` brings the workers up over SSH. The tests
run the sample jobs across the four hosts against plain Python, then cut one worker's
link (``ip link set ... down``) while a job reads a shuffle: the master's heartbeat
timeout declares the worker dead, the driver loses its executor and the map outputs on
it, the reducers' fetches from it fail, the lost work is recomputed elsewhere and the
result is exact; with the link back, the worker re-registers with the master (which
closed its connection) and gets an executor of the running application again.

A reducer whose slot keeps a connection to the partitioned host gives its fetch up within
spark.network.timeout (it once waited a fixed 120 s).

Each test makes its own namespaces and removes them, with every process in them, even
when it fails (fixture finalizers); each also checks that ``ip netns list`` and
``ip link`` no longer show anything it made, and one checks that for a network whose
creation failed half-way. Needs root and iproute2 (else skipped, saying which). The
cluster tests are slow (CI's second pass); the harness's own two take a second.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import operator
import re
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tests.netns
from tests.netns import ROOT, NamespaceCluster, NamespaceHost, NamespaceNetwork, netns_missing_reason

HOSTS = 4
WORKER_TIMEOUT = 5.0  # spark.worker.timeout, seconds: the master's heartbeat timeout (reducers start 2 s after the cut)
SAMPLES = ROOT / "sample_jobs"


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def network() -> Iterator[NamespaceNetwork]:
    reason = netns_missing_reason()
    if reason:
        pytest.skip(reason)
    net = NamespaceNetwork(HOSTS)
    try:
        yield net.create()
    finally:
        net.destroy()  # again after the test's own check, or instead of it if the test failed
    assert net.leftovers() == []


@pytest.fixture
def cluster(tmp_path: Path, network: NamespaceNetwork, monkeypatch: pytest.MonkeyPatch) -> Iterator[NamespaceCluster]:
    for key in ("SPARKCTL_SECRET", "SPARKCTL_MASTER", "SSH_AUTH_SOCK"):
        monkeypatch.delenv(key, raising=False)
    c = NamespaceCluster(tmp_path, network, {"spark.worker.timeout": f"{WORKER_TIMEOUT:g}s"})
    try:
        c.start_sshd()
        yield c
    finally:
        left = c.shutdown()
        assert not left, f"processes left behind: {left}"


def finish(cluster: NamespaceCluster, network: NamespaceNetwork) -> None:
    """Stop the cluster and remove the network; nothing of either may remain."""
    r = cluster.stop()
    assert r.returncode == 0, r.stdout + r.stderr
    for h in network.hosts:
        assert re.search(rf"^{re.escape(h.address)}\s+stopped\s", r.stdout, re.M), r.stdout
    assert f"stopped master on {network.bridge_address}" in r.stdout
    assert cluster.shutdown() == []  # master, workers, executors, sshd: all gone
    assert all(h.pids() == [] for h in network.hosts)
    network.destroy()
    assert network.leftovers() == []


def start(cluster: NamespaceCluster, network: NamespaceNetwork) -> dict[str, str]:
    """``sparkctl cluster start``; the worker id of each host."""
    r = cluster.start()
    assert r.returncode == 0, r.stdout + r.stderr + cluster.log_text()
    assert f"master started at {cluster.url}" in r.stdout
    ids = {}
    for h in network.hosts:
        m = re.search(rf"^{re.escape(h.address)}\s+started\s+(\S+)\s+registered with {re.escape(cluster.url)}",
                      r.stdout, re.M)
        assert m, r.stdout
        ids[h.address] = m.group(1)
    workers = master_state(cluster)["workers"]
    assert sorted((w["host"], w["id"], w["state"]) for w in workers) == \
        sorted((a, i, "ALIVE") for a, i in ids.items())
    return ids


def master_state(cluster: NamespaceCluster) -> dict[str, Any]:
    from sparkctl.deploy.commands import fetch_master_state

    return fetch_master_state(cluster.url, (cluster.conf / "secret").read_bytes().strip(), timeout=5.0)


def executor_hosts(cluster: NamespaceCluster, network: NamespaceNetwork) -> set[str]:
    """The hosts on which some executor ran: each worker makes WORK_DIR/APP/EXECUTOR there."""
    return {h.address for h in network.hosts
            if any(d.is_dir() for d in (cluster.host_dir(h) / "work").glob("app-*/*"))}


def submit(cluster: NamespaceCluster, *args: str) -> str:
    job = cluster.sparkctl("submit", "--total-executor-cores", str(HOSTS), "--executor-cores", "1",
                           "--executor-memory", "512m", *args, timeout=120)
    assert job.returncode == 0, job.stdout + job.stderr + cluster.log_text()
    return job.stdout


# ---------------------------------------------------------------- the harness itself


@pytest.mark.timeout(30)
def test_missing_root_or_iproute2_is_named_in_the_skip_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert netns_missing_reason() == "network namespaces need root (ip netns add)"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(tests.netns.shutil, "which", lambda name: None)
    assert netns_missing_reason() == "the ip command (iproute2) is not installed; .ci/run installs iproute2"


@pytest.mark.timeout(60)
def test_a_network_that_fails_half_made_is_removed_with_its_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    reason = netns_missing_reason()
    if reason:
        pytest.skip(reason)
    real_ip = tests.netns._ip

    def failing_ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        if args[:2] == ("netns", "add") and args[2].endswith("-h3"):
            raise subprocess.CalledProcessError(1, ["ip", *args], "", "injected failure")
        return real_ip(*args, check=check)

    net = NamespaceNetwork(3)
    monkeypatch.setattr(tests.netns, "_ip", failing_ip)
    sleepers: list[subprocess.Popen[bytes]] = []
    try:
        with pytest.raises(subprocess.CalledProcessError):
            net.create()
        made = [h for h in net.hosts if h.netns.endswith(("-h1", "-h2"))]
        assert len(made) == 2 and net.leftovers()  # half made: two hosts and the bridge
        for h in made:  # a route to the bridge's subnet only: no default route, no way out
            routes = tests.netns._ip("-n", h.netns, "-4", "route", "show").stdout.splitlines()
            assert [r.split()[0] for r in routes] == [h.address.rsplit(".", 1)[0] + ".0/24"], routes
        for h in made:  # something running in each, as a worker would be
            sleepers.append(subprocess.Popen(h.command("sleep", "600")))
        _wait("the sleepers to be in their namespaces", lambda: all(len(h.pids()) == 1 for h in made), 10)
    finally:
        net.destroy()
        for proc in sleepers:
            proc.wait(10)  # ended by destroy(), reaped here
    assert [proc.returncode for proc in sleepers] == [-15, -15]
    assert net.leftovers() == []
    assert not any(h.netns in tests.netns._ip("netns", "list").stdout for h in net.hosts)
    assert net.bridge not in tests.netns._ip("link", "show").stdout


# ---------------------------------------------------------------- sample jobs


def join_expected(n_customers: int, n_orders: int) -> list[str]:
    """sample_jobs/join.py's report, computed in plain Python from the same generators."""
    spec = importlib.util.spec_from_file_location("sample_join", SAMPLES / "join.py")
    assert spec is not None and spec.loader is not None
    join = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(join)
    customers = dict(join.customer(c) for c in range(n_customers))
    orders = [join.order(o, n_customers) for o in range(n_orders)]
    joined = [(cid, cents) for cid, cents in orders if cid in customers]
    spend: Counter[tuple[int, str]] = Counter()
    cities: dict[str, list[int]] = {}
    for cid, cents in joined:
        spend[(cid, customers[cid][0])] += cents
        city = cities.setdefault(customers[cid][1], [0, 0])
        city[0] += cents
        city[1] += 1
    ordered = {cid for cid, _ in orders}
    lines = [f"{n_customers} customers, {n_orders} orders, {len(joined)} joined records",
             f"{len(spend)} customers ordered; {sum(1 for c in customers if c not in ordered)} never did",
             "Top 5 customers by spend:"]
    for (cid, name), cents in sorted(spend.items(), key=lambda kv: (-kv[1], kv[0]))[:5]:
        lines.append(f"  {name} (id {cid}): {cents / 100:,.2f}")
    lines.append("Orders and revenue by city:")
    for city, (cents, count) in sorted(cities.items()):
        lines.append(f"  {city:<12} {count:>6} orders {cents / 100:>12,.2f}")
    return lines


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_sample_jobs_run_across_four_namespace_hosts(cluster: NamespaceCluster, network: NamespaceNetwork,
                                                     tmp_path: Path) -> None:
    start(cluster, network)

    words = SAMPLES / "data" / "words.txt"
    out = tmp_path / "counts"
    stdout = submit(cluster, str(SAMPLES / "wordcount.py"), str(words), str(out))
    word = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
    expected = Counter(w for line in words.read_text().splitlines() for w in word.findall(line.lower()))
    saved: dict[str, int] = {}
    for part in sorted(out.glob("part-*")):
        for line in part.read_text().splitlines():
            w, _, n = line.rpartition("\t")
            saved[w] = int(n)
    assert (out / "_SUCCESS").exists()
    assert saved == dict(expected)
    assert f"{sum(expected.values())} words, {len(expected)} distinct" in stdout
    assert executor_hosts(cluster, network) == {h.address for h in network.hosts}

    stdout = submit(cluster, str(SAMPLES / "join.py"), "3000", "30000")
    assert stdout.splitlines()[:len(join_expected(3000, 30000))] == join_expected(3000, 30000)

    # The driver's own files reach the hosts, which cannot see its disk, through sparkctl.
    (cluster.driver_dir / "helper.py").write_text("FACTOR = 7\n\ndef scale(x, f):\n    return x * f + 1\n")
    (cluster.driver_dir / "table.txt").write_text("3 5 11 13\n")
    app = cluster.driver_dir / "files_app.py"
    app.write_text(textwrap.dedent(FILES_APP))
    stdout = submit(cluster, "--py-files", str(cluster.driver_dir / "helper.py"), str(app), str(cluster.driver_dir))
    rows = [line.split() for line in stdout.splitlines() if line.startswith("ROW ")]
    assert [int(r[2]) for r in rows] == [[3, 5, 11, 13][i % 4] * 7 + 1 for i in range(40)], stdout
    assert {r[1] for r in rows} == {h.address for h in network.hosts}
    assert {r[3] for r in rows} == {"-"}  # the driver's dir, as the executors saw it: empty

    # Cluster mode: the master runs the driver on one of the hosts, which cannot see the
    # app's file on this machine either; its executors take the other three.
    app = cluster.driver_dir / "cluster_app.py"
    app.write_text(textwrap.dedent(CLUSTER_APP))
    r = cluster.sparkctl("submit", "--deploy-mode", "cluster", "--wait", "--total-executor-cores", str(HOSTS - 1),
                         "--executor-cores", "1", "--executor-memory", "512m", str(app), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr + cluster.log_text()
    driver = re.search(r"\b(driver-\S+) FINISHED \(exit code 0\)", r.stdout + r.stderr)
    assert driver, r.stdout + r.stderr
    logs = cluster.sparkctl("logs", driver.group(1))
    assert logs.returncode == 0, logs.stderr
    report = dict(line.split(" ", 1) for line in logs.stdout.splitlines() if line.startswith(("DRIVER", "SUMS", "HOSTS")))
    expected_sums: Counter[int] = Counter()
    for x in range(10_000):
        expected_sums[x % 13] += x
    assert report["SUMS"] == repr(sorted(expected_sums.items()))
    others = {h.address for h in network.hosts} - {report["DRIVER"]}
    assert len(others) == HOSTS - 1  # the driver ran on one of the hosts
    assert set(report["HOSTS"].split(",")) <= others

    finish(cluster, network)


# Run by a worker in cluster mode: where its driver and executors are, and a shuffle's result.
CLUSTER_APP = """
    from sparkctl import SparkContext, TaskContext

    sc = SparkContext.getOrCreate()
    print("DRIVER", sc.getConf().get("spark.driver.host"))
    pairs = sc.parallelize(range(10_000), 6).map(lambda x: (x % 13, x))
    print("SUMS", sorted(pairs.reduceByKey(lambda a, b: a + b).collect()))
    print("HOSTS", ",".join(sorted(set(sc.parallelize(range(12), 6).map(lambda i: TaskContext.get().env.host).collect()))))
    sc.stop()
"""

# --py-files helper.py, sc.addFile(table.txt) and a broadcast, used on every host.
FILES_APP = """
    import os
    import sys

    import helper
    from sparkctl import SparkContext, SparkFiles, TaskContext

    driver_dir = sys.argv[1]
    sc = SparkContext.getOrCreate()
    sc.addFile(os.path.join(driver_dir, "table.txt"))
    factor = sc.broadcast(helper.FACTOR)

    def probe(i):
        with open(SparkFiles.get("table.txt")) as f:
            table = [int(x) for x in f.read().split()]
        seen = ",".join(sorted(os.listdir(driver_dir))) or "-"
        return TaskContext.get().env.host, helper.scale(table[i % len(table)], factor.value), seen

    for host, value, seen in sc.parallelize(range(40), 8).map(probe).collect():
        print("ROW", host, value, seen)
    sc.stop()
"""


# ---------------------------------------------------------------- a partitioned worker


class _DriverLog(logging.Handler):
    """The driver's warnings (lost executors, failed tasks), kept for the assertions."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _wait(what: str, condition: Any, timeout: float, interval: float = 0.05) -> float:
    """Poll *condition* until true; the time it took."""
    t0 = time.monotonic()
    while not condition():
        assert time.monotonic() - t0 < timeout, f"{what}: not within {timeout:g} s"
        time.sleep(interval)
    took = time.monotonic() - t0
    print(f"{what}: {took:.1f} s")  # shown with a failure, to tell a slow step from a stuck one
    return took


def _worker(cluster: NamespaceCluster, host: NamespaceHost) -> dict[str, Any]:
    return next((w for w in master_state(cluster)["workers"] if w["host"] == host.address), {})


def _context(cluster: NamespaceCluster, network: NamespaceNetwork, monkeypatch: pytest.MonkeyPatch,
             **settings: str) -> Any:
    """A SparkContext here, in the root namespace, with one executor on each host."""
    for key, value in cluster.env.items():
        monkeypatch.setenv(key, value)  # the driver reads the cluster's conf dir and secret
    from sparkctl import SparkConf, SparkContext

    conf = (SparkConf().setMaster(cluster.url).setAppName("partition")
            .set("spark.driver.host", network.bridge_address).set("spark.cores.max", str(HOSTS))
            .set("spark.executor.cores", "1").set("spark.executor.memory", "512m").set("spark.ui.enabled", "false"))
    for key, value in settings.items():
        conf.set(key, value)
    sc = SparkContext(conf=conf)
    try:
        _wait("four executors", lambda: sc.defaultParallelism == HOSTS, 60)
    except BaseException:
        sc.stop()
        raise
    return sc


def _expected_sums() -> list[tuple[Any, int]]:
    sums: Counter[int] = Counter()
    for x in range(40_000):
        sums[x % 1000] += x
    return sorted([("slow", i) for i in range(HOSTS)] + list(sums.items()), key=repr)


class _CutDuringShuffleRead:
    """One job, one stage: four slow partitions first (one per executor), then eight that
    read a shuffle whose map outputs lie on every host. *victim*'s link is cut while the
    slow ones run, so the reducers then fetch from a host that is gone but not yet known
    to be; :attr:`result` holds the job's records (or its error) once :attr:`runner` ends."""

    def __init__(self, sc: Any, victim: NamespaceHost) -> None:
        def slow(i: int) -> tuple[str, int]:  # defined here: it travels by value
            time.sleep(2.0)
            return ("slow", i)

        pairs = sc.parallelize(range(40_000), 8).map(lambda x: (x % 1000, x))
        job = sc.parallelize(range(HOSTS), HOSTS).map(slow).union(pairs.reduceByKey(operator.add, 8))
        self.result: dict[str, Any] = {}

        def run() -> None:
            try:
                self.result["value"] = sorted(job.collect(), key=repr)
            except BaseException as e:  # reported by the test's assertion
                self.result["error"] = e

        # a daemon: a job stuck on a partitioned host must not keep pytest from exiting
        self.runner = threading.Thread(target=run, name="partitioned-job", daemon=True)
        self.runner.start()
        tracker = sc.statusTracker()

        def slow_tasks_running() -> bool:
            infos = [tracker.getStageInfo(s) for s in tracker.getActiveStageIds()]
            return any(i is not None and i.numTasks == HOSTS + 8 and i.numActiveTasks >= HOSTS for i in infos)

        _wait("the slow tasks to run", slow_tasks_running, 60, 0.02)
        victim.cut()
        self.cut_at = time.monotonic()

    def wait(self, timeout: float) -> list[Any]:
        self.runner.join(max(0.0, self.cut_at + timeout - time.monotonic()))
        assert not self.runner.is_alive(), f"the job did not finish within {timeout:g} s of the cut"
        assert "error" not in self.result, self.result.get("error")
        return list(self.result["value"])


def _dump_threads() -> None:
    """Where every thread of this process (the driver) is, for a job that did not finish."""
    import sys
    import traceback
    for ident, frame in sys._current_frames().items():
        print(f"--- thread {ident}\n" + "".join(traceback.format_stack(frame)))


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_partitioned_worker_is_lost_the_job_stays_exact_and_it_comes_back(
        cluster: NamespaceCluster, network: NamespaceNetwork, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = start(cluster, network)
    victim = network.hosts[0]
    driver_log = _DriverLog()
    logging.getLogger("sparkctl.driver").addHandler(driver_log)
    sc = _context(cluster, network, monkeypatch)
    try:
        cut = _CutDuringShuffleRead(sc, victim)
        _wait("the master to declare the cut worker DEAD", lambda: _worker(cluster, victim).get("state") == "DEAD",
              WORKER_TIMEOUT + 10, 0.1)
        dead_after = time.monotonic() - cut.cut_at
        # the heartbeat timeout, not something sooner: the last heartbeat (every quarter of
        # the timeout) may have come up to one interval before the cut
        assert dead_after >= WORKER_TIMEOUT * 0.75 - 0.1, dead_after
        try:
            sums = cut.wait(90)
        except AssertionError:
            _dump_threads()
            print(cluster.log_text())
            raise
        assert sums == _expected_sums()
        print(f"the job: {time.monotonic() - cut.cut_at:.1f} s after the cut")
        assert any(line.startswith("Lost executor") and victim.address in line for line in driver_log.lines), \
            driver_log.lines
        assert any("fetch_failed" in line and victim.address in line for line in driver_log.lines), driver_log.lines

        # The link back: the worker finds the connection the master closed, registers again
        # (same id) and the application, still wanting four cores, gets an executor there.
        victim.heal()
        _wait("the worker to re-register", lambda: _worker(cluster, victim).get("state") == "ALIVE", 60, 0.2)
        assert _worker(cluster, victim)["id"] == ids[victim.address]
        _wait("an executor on the healed worker", lambda: sc.defaultParallelism == HOSTS, 60)

        def host_of(i: int) -> str:
            from sparkctl import TaskContext

            time.sleep(0.3)
            return str(TaskContext.get().env.host)  # type: ignore[union-attr]

        hosts = sc.parallelize(range(16), 16).map(host_of).collect()
        assert set(hosts) == {h.address for h in network.hosts}
    finally:
        logging.getLogger("sparkctl.driver").removeHandler(driver_log)
        sc.stop()
    finish(cluster, network)


NETWORK_TIMEOUT = 8.0


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_fetch_from_a_partitioned_host_gives_up_within_the_network_timeout(
        cluster: NamespaceCluster, network: NamespaceNetwork, monkeypatch: pytest.MonkeyPatch) -> None:
    start(cluster, network)
    sc = _context(cluster, network, monkeypatch, **{"spark.network.timeout": f"{NETWORK_TIMEOUT:g}s",
                                                    "spark.executor.heartbeatInterval": "1s"})
    try:
        # A first shuffle: every executor's slot fetches from every host and keeps the
        # connections, as a long application's slots do.
        warm = sc.parallelize(range(8000), 8).map(lambda x: (x % 100, 1)).reduceByKey(operator.add, 8)
        assert sorted(warm.collect()) == [(k, 80) for k in range(100)]
        cut = _CutDuringShuffleRead(sc, network.hosts[0])
        # Spark bounds a fetch by spark.network.timeout (spark.shuffle.io.connectionTimeout):
        # the reducers give up on the partitioned host, the lost maps run again elsewhere.
        assert cut.wait(3 * NETWORK_TIMEOUT + 10) == _expected_sums()
        network.hosts[0].heal()  # for `cluster stop` to reach its worker
    finally:
        sc.stop()
    finish(cluster, network)
