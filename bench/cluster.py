"""sparkctl on a standalone cluster beside local mode.

    python bench/cluster.py [--quick]

1. Runs every figure of ``bench/run.py`` on ``local[2]`` and on ``local-cluster[1,2,2048]``
   (a master and one worker of 2 cores as separate processes) and prints each cluster
   figure as a multiple of the local one. Target: every figure within 1.2 x local mode.
2. Starts a master and a worker (real daemons on loopback), then times ``sparkctl submit``
   of a small app from the moment the command starts to the moment its first task runs
   on an executor, the median of several submissions. Target: under 1 s.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from sparkctl.deploy.client import spawn_ready  # noqa: E402
from sparkctl.scheduler.backend import stop_process  # noqa: E402

FIRST_TASK_APP = """
    import sys, time
    from sparkctl import SparkContext

    marker = sys.argv[1]

    def mark(it):
        with open(marker, "w") as f:
            f.write(repr(time.time()))
        return [sum(1 for _ in it)]

    sc = SparkContext.getOrCreate()
    sc.parallelize(range(10), 1).mapPartitions(mark).collect()
    sc.stop()
"""


def figures(master: str, quick: bool) -> dict[str, float]:
    out = tempfile.mktemp(suffix=".json")
    cmd = [sys.executable, os.path.join(HERE, "run.py"), "--master", master, "--no-fail", "--output", out]
    if quick:
        cmd.append("--quick")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        doc = json.load(f)
    os.unlink(out)
    return {r["name"]: r["sparkctl_s"] for r in doc["results"]}


def submit_to_first_task(runs: int) -> list[float]:
    base = tempfile.mkdtemp(prefix="sparkctl-bench-cluster-")
    env = dict(os.environ, PYTHONPATH=ROOT, SPARKCTL_SECRET="bench-" + os.urandom(8).hex(),
               SPARKCTL_CONF_DIR=base, SPARKCTL_WORK_DIR=os.path.join(base, "work"))
    procs = []
    try:
        master, line = spawn_ready([sys.executable, "-m", "sparkctl.deploy.master", "--host", "127.0.0.1",
                                    "--port", "0", "--webui-port", "0"], env, os.path.join(base, "master.log"))
        procs.append(master)
        url = line.split()[1]
        worker, _ = spawn_ready([sys.executable, "-m", "sparkctl.deploy.worker", "--master", url, "--cores", "2",
                                 "--memory", "2g", "--host", "127.0.0.2", "--port", "0", "--webui-port", "0"],
                                env, os.path.join(base, "worker.log"))
        procs.append(worker)
        app = os.path.join(base, "first_task.py")
        with open(app, "w") as f:
            f.write(textwrap.dedent(FIRST_TASK_APP))
        latencies = []
        for i in range(runs):
            marker = os.path.join(base, f"first-{i}")
            start = time.time()
            r = subprocess.run([sys.executable, os.path.join(ROOT, "bin", "sparkctl"), "submit", "--master", url,
                                app, marker], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if r.returncode:
                raise SystemExit(f"submit failed:\n{r.stderr}")
            with open(marker) as f:
                latencies.append(float(f.read()) - start)
        return latencies
    finally:
        for p in reversed(procs):
            _terminate(p)


def _terminate(p: subprocess.Popen[bytes]) -> None:
    p.terminate()
    try:
        p.wait(15)
    except subprocess.TimeoutExpired:
        stop_process(p, 0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small data (see run.py --quick)")
    parser.add_argument("--runs", type=int, default=7, help="submissions timed for the first-task latency")
    args = parser.parse_args()
    ok = True
    lat = submit_to_first_task(args.runs)
    local = figures("local[2]", args.quick)
    cluster = figures("local-cluster[1,2,2048]", args.quick)
    print(f"{'figure':28} {'local[2] s':>11} {'cluster s':>10} {'ratio':>6}  target <= 1.2")
    for name, t_local in local.items():
        t_cluster = cluster[name]
        ratio = t_cluster / t_local
        ok &= ratio <= 1.2
        print(f"{name:28} {t_local:11.4f} {t_cluster:10.4f} {ratio:6.2f}  {'PASS' if ratio <= 1.2 else 'FAIL'}")
    median = statistics.median(lat)
    ok &= median < 1.0
    print(f"\nsubmit -> first task running, on a running cluster: median {median:.3f} s "
          f"(min {min(lat):.3f}, max {max(lat):.3f}, {len(lat)} runs)  target < 1 s  {'PASS' if median < 1 else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
