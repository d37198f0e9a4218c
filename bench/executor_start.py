"""How long executors take to start: from submit until N executors have registered.

    python bench/executor_start.py [--executors 10 100] [--runs 3] [--workers W]

Starts a master and W one-core workers (real daemons, ``python -m sparkctl.deploy.worker``)
on 127.0.0.2, 127.0.0.3, ... (W defaults to the largest N), waits until all are
registered, then for each N, *runs* times: makes a SparkContext in this process asking
for N one-core executors (``spark.cores.max=N``, ``spark.executor.cores=1``) and times
from just before the context is made until the driver's runtime has N registered
executors; then stops the context and waits until the workers' cores are free again.
Prints the median and the range of each N.

```
 this process (driver) ── RegisterApplication ──▶ master ── LaunchExecutor ×N ──▶ workers
        ▲                                                                          │ start
        └──────────────────────── RegisterExecutor ×N ──────────── executors ◀─────┘
 timed: SparkContext(...) called ──▶ N executors in the runtime
```

Target (issue 14): 100 executors registered within 3 s of submit on this machine.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from sparkctl.deploy.client import spawn_ready  # noqa: E402
from sparkctl.scheduler.backend import stop_process  # noqa: E402

TARGET_S = 3.0  # for 100 executors


class Cluster:
    """A master and *workers* one-core workers on 127.0.0.2.. under a private base dir."""

    def __init__(self, workers: int) -> None:
        self.base = tempfile.mkdtemp(prefix="sparkctl-bench-exec-start-")
        self.env = dict(os.environ, PYTHONPATH=ROOT, SPARKCTL_SECRET="bench-" + os.urandom(8).hex(),
                        SPARKCTL_CONF_DIR=self.base, SPARKCTL_WORK_DIR=os.path.join(self.base, "work"))
        with open(os.path.join(self.base, "sparkctl-defaults.conf"), "w") as f:
            f.write("spark.worker.cleanup.enabled false\n")
        self.procs: list[subprocess.Popen[bytes]] = []
        self.workers = workers
        self.url = ""
        self.webui = ""

    def start(self) -> float:
        t0 = time.monotonic()
        master, line = spawn_ready([sys.executable, "-m", "sparkctl.deploy.master", "--host", "127.0.0.1",
                                    "--port", "0", "--webui-port", "0"], self.env,
                                   os.path.join(self.base, "master.log"))
        self.procs.append(master)
        self.url = line.split()[1]
        pending = []
        for i in range(self.workers):
            host = f"127.0.0.{2 + i}"
            log = open(os.path.join(self.base, f"worker-{host}.log"), "wb")
            pending.append(subprocess.Popen(
                [sys.executable, "-m", "sparkctl.deploy.worker", "--master", self.url, "--cores", "1",
                 "--memory", "1g", "--host", host, "--port", "0", "--webui-port", "0",
                 "--work-dir", os.path.join(self.base, "work", host)],
                env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT))
            log.close()
        self.procs.extend(pending)
        self.wait_state(lambda s: s.get("aliveworkers") == self.workers, 120, "every worker to register")
        return time.monotonic() - t0

    def wait_state(self, cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = subprocess.run([sys.executable, os.path.join(ROOT, "bin", "sparkctl"), "status", "--master",
                                self.url, "--json"], env=self.env, capture_output=True, text=True)
            if r.returncode == 0 and cond(json.loads(r.stdout)):
                return
            time.sleep(0.3)
        raise SystemExit(f"timed out waiting for {what}")

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                stop_process(p, 0.0)
        shutil.rmtree(self.base, ignore_errors=True)


def time_registration(url: str, executors: int, timeout: float = 120.0) -> float:
    """Seconds from SparkContext(...) until *executors* executors registered with it."""
    from sparkctl import SparkConf, SparkContext

    conf = (SparkConf().setMaster(url).setAppName(f"executor-start-{executors}")
            .set("spark.cores.max", str(executors)).set("spark.executor.cores", "1")
            .set("spark.executor.memory", "512m").set("spark.ui.enabled", "false"))
    t0 = time.monotonic()
    sc = SparkContext(conf=conf)
    try:
        runtime = sc._runtime
        assert runtime is not None
        if not runtime.wait_for_executors(executors, timeout):
            raise SystemExit(f"only {len(runtime.executors)} of {executors} executors registered in {timeout:g}s")
        elapsed = time.monotonic() - t0
        # the executors are real: one task on each
        assert sc.parallelize(range(executors * 10), executors).map(lambda x: x * 2).sum() == \
            sum(x * 2 for x in range(executors * 10))
        return elapsed
    finally:
        sc.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executors", type=int, nargs="+", default=[10, 100], help="N values to time")
    parser.add_argument("--runs", type=int, default=3, help="submissions timed per N")
    parser.add_argument("--workers", type=int, default=None, help="one-core workers (default: the largest N)")
    args = parser.parse_args(argv)
    workers = args.workers or max(args.executors)
    if workers > 250:
        parser.error("at most 250 workers: they listen on 127.0.0.2 .. 127.0.0.251")
    cluster = Cluster(workers)
    # the driver runs in this process: it reads the cluster's secret and conf dir too
    os.environ.update({k: cluster.env[k] for k in ("SPARKCTL_SECRET", "SPARKCTL_CONF_DIR", "SPARKCTL_WORK_DIR")})
    ok = True
    try:
        up = cluster.start()
        print(f"{workers} one-core workers registered in {up:.1f} s (load average {os.getloadavg()[0]:.2f})")
        for n in args.executors:
            times = []
            for _ in range(args.runs):
                times.append(time_registration(cluster.url, n))
                cluster.wait_state(lambda s: all(w["coresused"] == 0 for w in s["workers"]), 60,
                                   "the executors to be released")
            median = statistics.median(times)
            verdict = ""
            if n >= 100:
                verdict = f"  target < {TARGET_S:g} s  {'PASS' if median < TARGET_S else 'FAIL'}"
                ok &= median < TARGET_S
            print(f"submit -> {n:4d} executors registered: median {median:.2f} s "
                  f"(min {min(times):.2f}, max {max(times):.2f}, {len(times)} runs: "
                  f"{', '.join(f'{t:.2f}' for t in times)}; load average {os.getloadavg()[0]:.1f}){verdict}")
    finally:
        cluster.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
