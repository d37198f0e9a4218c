"""The standalone master's cost per event as the cluster grows, with no sockets.

    python bench/scale_master.py                          # 1,000 and 5,000 workers, 100 applications
    python bench/scale_master.py --workers 5000 --apps 100 --json out.json
    python bench/scale_master.py --loopback 5000          # real sockets: threads, memory, heartbeat latency

It drives the real master: :class:`~sparkctl.deploy.master.MasterDaemon` built but not
started (no socket is opened), its state machine fed events directly, and every event's
actions carried out by the daemon's own ``_carry_out`` (messages queued nowhere, since no
peer is connected; with a recovery directory, the state persisted as the daemon does).

The cluster: *workers* workers of ``WORKER_CORES`` cores and ``WORKER_MEMORY`` MiB; a first
application that wants every core (one executor per worker), which holds the whole
cluster, then *apps* - 1 applications that wait for cores. Each event is timed in turn:

* ``register_worker``: a new worker joins (the first application takes its cores);
* ``heartbeat``: a worker's heartbeat;
* ``executor_exit``: an executor of the first application exits, and the schedule it
  triggers gives the freed cores back (the first application is first in line);
* ``app_register``: one more application registers and waits;
* ``app_finish``: such a waiting application unregisters;
* ``worker_lost``: a worker's connection closes (its executor is lost, every driver told).

Each is timed over ``SAMPLES`` events, or as many as fit in ``BUDGET`` seconds (at least
``MIN_SAMPLES``), and reported as the mean and the largest, in µs per event. Not events but
measured alongside: ``timeout_tick``, the periodic check for silent workers (every worker
timeout / 4) when none has expired; ``tick_expiring``, that check when exactly one ALIVE
worker has been silent too long (every other one sent a heartbeat just before, untimed),
so it declares that one DEAD (and, once the clock has run 16 timeouts on, forgets one
declared DEAD that long ago); ``status_json``, the ``/json`` document (``json_lock``: the
part of it built under the master's lock).

``--loopback N`` measures the real daemon instead: a master in this process, and N workers
simulated by ``CLIENT_PROCESSES`` client processes, each worker a real authenticated
connection on 127.0.0.1 that registers and then sends heartbeats in rounds (every worker
once per round, ``ROUND_INTERVAL`` apart). It reports the master's threads and resident
memory before and after, how long registration took, and the heartbeats' latency, from
the client's send to the master's state machine handling it (one clock: same host).
"""
from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sparkctl.deploy import messages as m  # noqa: E402
from sparkctl.deploy.master import MasterDaemon, MasterSettings  # noqa: E402
from sparkctl.rpc import connect  # noqa: E402

WORKERS = [1_000, 5_000]
APPS = 100
WORKER_CORES = 4
WORKER_MEMORY = 8192  # MiB
EXECUTOR_MEMORY = 1024  # MiB
SAMPLES = 200
MIN_SAMPLES = 3
BUDGET = 5.0  # seconds per event kind at most
T0 = 1_700_000_000.0
EVENTS = ["register_worker", "heartbeat", "executor_exit", "app_register", "app_finish", "worker_lost",
          "timeout_tick", "tick_expiring", "status_json", "json_lock"]
CLIENT_PROCESSES = 4
ROUNDS = 5
ROUND_INTERVAL = 2.0  # seconds; a real worker sends one every worker timeout / 4 (15 s by default)


def _worker(i: int) -> m.RegisterWorker:
    return m.RegisterWorker(f"worker-{i}", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 7078, WORKER_CORES,
                            WORKER_MEMORY, webui_port=8081)


def _app(name: str) -> m.RegisterApplication:
    return m.RegisterApplication(m.ApplicationDescription(name, "127.0.0.1", 40000, None, None, EXECUTOR_MEMORY))


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def _build(workers: int, apps: int) -> tuple[MasterDaemon, _Clock, str]:
    clock = _Clock()
    daemon = MasterDaemon("127.0.0.1", 0, 0, b"bench-secret", clock=clock)
    state = daemon._state
    for i in range(workers):
        daemon._carry_out(state.register_worker(_worker(i), clock()), None)
    first = ""
    for j in range(apps):
        actions = state.register_application(_app(f"app-{j}"), clock())
        daemon._carry_out(actions, None)
        if j == 0:
            first = next(a.msg.app_id for a in actions if isinstance(getattr(a, "msg", None), m.RegisteredApplication))
    return daemon, clock, first


def _time(events: Callable[[int], Callable[[], None]]) -> tuple[float, float, int]:
    """Mean and largest µs of up to SAMPLES calls; *events(k)* prepares (untimed) the k-th."""
    times: list[float] = []
    spent = 0.0
    for k in range(SAMPLES):
        event = events(k)
        if event is None:
            break
        t = time.perf_counter()
        event()
        took = time.perf_counter() - t
        times.append(took)
        spent += took
        if spent > BUDGET and len(times) >= MIN_SAMPLES:
            break
    if not times:
        return 0.0, 0.0, 0
    return sum(times) / len(times) * 1e6, max(times) * 1e6, len(times)


def _measure(workers: int, apps: int, recovery: bool) -> list[dict[str, Any]]:
    daemon, clock, first = _build(workers, apps)
    state = daemon._state
    rng = random.Random(42)
    tmp = tempfile.mkdtemp(prefix="scale-master-") if recovery else None
    if tmp is not None:
        daemon.recovery_dir = os.path.join(tmp, "recovery")
        daemon._persist()  # the first write of the whole state is set-up, not an event
    results: list[dict[str, Any]] = []

    def record(event: str, figures: tuple[float, float, int]) -> None:
        mean, largest, n = figures
        results.append({"workers": workers, "apps": apps, "recovery": recovery, "event": event,
                        "us_per_event": round(mean, 1), "max_us": round(largest, 1), "samples": n})

    def carry(actions: list[Any]) -> None:
        daemon._carry_out(actions, None)

    next_worker = [workers]

    def register(k: int) -> Callable[[], None]:
        i = next_worker[0]
        next_worker[0] += 1
        return lambda: carry(state.register_worker(_worker(i), clock()))

    def heartbeat(k: int) -> Callable[[], None]:
        wid = f"worker-{rng.randrange(workers)}"
        return lambda: carry(state.worker_heartbeat(wid, clock()))

    def executor_exit(k: int) -> Callable[[], None] | None:
        app = state.apps[first]
        if not app.executors:
            return None
        ex = rng.choice(list(app.executors.values()))
        msg = m.ExecutorStateChanged(first, ex.executor_id, m.EXITED, "done", 0)
        return lambda: carry(state.executor_state_changed(ex.worker_id, msg, clock()))

    registered: list[str] = []

    def app_register(k: int) -> Callable[[], None]:
        def event() -> None:
            actions = state.register_application(_app(f"extra-{k}"), clock())
            carry(actions)
            registered.extend(a.msg.app_id for a in actions
                              if isinstance(getattr(a, "msg", None), m.RegisteredApplication))
        return event

    def app_finish(k: int) -> Callable[[], None] | None:
        if not registered:
            return None
        app_id = registered.pop()
        return lambda: carry(state.unregister_application(app_id, m.FINISHED, clock()))

    alive = [w for w in state.workers if w.startswith("worker-")]
    rng.shuffle(alive)

    def worker_lost(k: int) -> Callable[[], None] | None:
        if not alive:
            return None
        wid = alive.pop()
        return lambda: carry(state.worker_disconnected(wid, clock()))

    def tick_expiring(k: int) -> Callable[[], None] | None:
        alive_now = state.alive_workers()
        if len(alive_now) < 2:
            return None
        victim = min(alive_now, key=lambda w: w.last_heartbeat)
        clock.now = max(clock.now, victim.last_heartbeat + state.worker_timeout + 0.5)
        for w in alive_now:
            if w is not victim:
                state.worker_heartbeat(w.id, clock.now)
        return lambda: carry(state.check_worker_timeouts(clock()))

    gc.collect()
    try:
        for name, events in (("register_worker", register), ("heartbeat", heartbeat),
                             ("executor_exit", executor_exit), ("app_register", app_register),
                             ("app_finish", app_finish), ("worker_lost", worker_lost)):
            record(name, _time(events))
        record("timeout_tick", _time(lambda k: lambda: carry(state.check_worker_timeouts(clock()))))
        record("tick_expiring", _time(tick_expiring))
        record("status_json", _time(lambda k: daemon.state_json))
        if hasattr(state, "json_parts"):  # (a master from before the status copy has none)
            record("json_lock", _time(lambda k: lambda: state.json_parts(clock(), "spark://m:7077")))
        with daemon._lock:
            compaction = getattr(daemon, "_compaction", None)
        if compaction is not None:
            compaction.join()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return results


def run(workers: list[int], apps: int) -> list[dict[str, Any]]:
    """µs per master event for each cluster size in *workers*, with *apps* applications,
    without and with a recovery directory."""
    logging.getLogger("sparkctl").setLevel(logging.ERROR)
    results: list[dict[str, Any]] = []
    for n in workers:
        for recovery in (False, True):
            results += _measure(n, apps, recovery)
    return results


def _table(results: list[dict[str, Any]]) -> str:
    keys = sorted({(r["workers"], r["recovery"]) for r in results})
    lines = [f"{'workers':>8} {'recovery':>8} " + " ".join(f"{e:>16}" for e in EVENTS)]
    for n, recovery in keys:
        cells = {r["event"]: r for r in results if (r["workers"], r["recovery"]) == (n, recovery)}
        lines.append(f"{n:>8} {'yes' if recovery else 'no':>8} " +
                     " ".join(f"{cells[e]['us_per_event']:>16,.1f}" if e in cells else f"{'':>16}" for e in EVENTS))
    return "\n".join(lines)


# ----------------------------------------------------------------- real sockets
def _proc_status(pid: int | str = "self") -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Threads", "VmRSS"):
                out[key] = int(value.split()[0])
    return out


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _client(host: str, port: int, first: int, count: int, rounds: int, interval: float, out: str) -> None:
    """One client process: *count* workers, each its own connection. Reads the secret from
    stdin's first line, says REGISTERED, waits for GO, sends its rounds, writes the send
    times to *out*, says DONE and holds its connections until stdin closes."""
    _raise_fd_limit()
    secret = sys.stdin.readline().strip().encode()
    conns = []
    for i in range(first, first + count):
        conn = connect(host, port, secret, timeout=60, tls=None)
        conn.send(m.RegisterWorker(f"worker-{i}", "127.0.0.1", 20000 + i, WORKER_CORES, WORKER_MEMORY))
        conns.append(conn)
    for conn in conns:
        reply = conn.recv(timeout=120)
        assert isinstance(reply, m.RegisteredWorker), reply
    print("REGISTERED", flush=True)
    assert sys.stdin.readline().strip() == "GO"
    sends: list[list[float]] = []
    for _ in range(rounds):
        start = time.monotonic()
        row = []
        for i, conn in enumerate(conns):
            row.append(time.time())
            conn.send(m.WorkerHeartbeat(f"worker-{first + i}"))
        sends.append(row)
        time.sleep(max(start + interval - time.monotonic(), 0.0))
    with open(out, "w", encoding="utf-8") as f:
        json.dump(sends, f)
    print("DONE", flush=True)
    sys.stdin.read()
    for conn in conns:
        conn.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] if ordered else 0.0


def loopback(workers: int, processes: int = CLIENT_PROCESSES, rounds: int = ROUNDS,
             interval: float = ROUND_INTERVAL) -> dict[str, Any]:
    """The real master with *workers* simulated workers on loopback connections."""
    _raise_fd_limit()
    logging.getLogger("sparkctl").setLevel(logging.ERROR)
    secret = b"bench-loopback-secret"
    daemon = MasterDaemon("127.0.0.1", 0, 0, secret, MasterSettings(worker_timeout=3600.0)).start()
    handled: dict[str, list[float]] = {}
    state = daemon._state
    heartbeat = state.worker_heartbeat

    def timed_heartbeat(worker_id: str, now: float) -> list[Any]:
        handled.setdefault(worker_id, []).append(time.time())
        return heartbeat(worker_id, now)
    state.worker_heartbeat = timed_heartbeat  # type: ignore[method-assign]
    before = _proc_status()
    tmp = tempfile.mkdtemp(prefix="scale-master-loopback-")
    clients: list[subprocess.Popen[str]] = []
    result: dict[str, Any] = {"workers": workers, "client_processes": processes,
                              "threads_before": before["Threads"], "rss_mib_before": round(before["VmRSS"] / 1024, 1)}
    try:
        port = daemon._server.address[1] if daemon._server is not None else 0
        t = time.monotonic()
        share = -(-workers // processes)
        for p in range(processes):
            first, count = p * share, min(share, workers - p * share)
            if count <= 0:
                break
            proc = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--client", "127.0.0.1", str(port), str(first), str(count),
                 str(rounds), str(interval), os.path.join(tmp, f"sends-{p}.json")],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert proc.stdin is not None
            proc.stdin.write(secret.decode() + "\n")
            proc.stdin.flush()
            clients.append(proc)
        for proc in clients:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "REGISTERED"
        result["register_all_s"] = round(time.monotonic() - t, 2)
        with daemon._lock:
            result["registered"] = len(state.workers)
        after = _proc_status()
        result["threads_after"] = after["Threads"]
        result["rss_mib_after"] = round(after["VmRSS"] / 1024, 1)
        result["kib_per_worker"] = round((after["VmRSS"] - before["VmRSS"]) / workers, 1)
        t = time.perf_counter()
        daemon.state_json()
        result["status_json_ms"] = round((time.perf_counter() - t) * 1000, 2)
        cpu = time.process_time()
        wall = time.monotonic()
        for proc in clients:
            assert proc.stdin is not None
            proc.stdin.write("GO\n")
            proc.stdin.flush()
        for proc in clients:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "DONE"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(map(len, handled.values())) < workers * rounds:
            time.sleep(0.05)
        result["heartbeat_cpu_share"] = round((time.process_time() - cpu) / (time.monotonic() - wall), 3)
        latencies = []
        for p in range(len(clients)):
            with open(os.path.join(tmp, f"sends-{p}.json"), encoding="utf-8") as f:
                sends = json.load(f)
            first = p * share
            for r, row in enumerate(sends):
                for i, sent in enumerate(row):
                    times = handled.get(f"worker-{first + i}", [])
                    if r < len(times):
                        latencies.append((times[r] - sent) * 1000)
        result["heartbeats_handled"] = len(latencies)
        result["heartbeat_ms_p50"] = round(_percentile(latencies, 0.5), 2)
        result["heartbeat_ms_p99"] = round(_percentile(latencies, 0.99), 2)
        result["heartbeat_ms_max"] = round(max(latencies, default=0.0), 2)
        result["heartbeats_per_s"] = round(workers / interval)
    finally:
        for proc in clients:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in clients:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        daemon.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--client":
        host, port, first, count, rounds, interval, out = sys.argv[2:9]
        _client(host, int(port), int(first), int(count), int(rounds), float(interval), out)
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", default=",".join(map(str, WORKERS)), help="comma-separated cluster sizes")
    p.add_argument("--apps", type=int, default=APPS, help="applications (the first holds the cluster)")
    p.add_argument("--json", default=None, help="also write the figures here")
    p.add_argument("--loopback", type=int, default=None, metavar="N",
                   help="instead: the real master with N simulated workers on loopback connections")
    p.add_argument("--rounds", type=int, default=ROUNDS, help="heartbeat rounds (--loopback)")
    p.add_argument("--interval", type=float, default=ROUND_INTERVAL, help="seconds between rounds (--loopback)")
    args = p.parse_args(argv)
    if args.loopback:
        figures = loopback(args.loopback, rounds=args.rounds, interval=args.interval)
        print(json.dumps(figures, indent=1))
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(figures, f, indent=1)
        return 0
    results = run([int(x) for x in args.workers.split(",")], args.apps)
    print("µs per event (mean)")
    print(_table(results))
    print("\nlargest µs per event")
    keyed = [dict(r, us_per_event=r["max_us"]) for r in results]
    print(_table(keyed))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
