"""CPU a remote shuffle read costs per request, on the reader's side and on the servers'.

    python bench/shuffle_fetch.py [--servers 20] [--reducers 100] [--records 2000] [--rounds 5]

Each of ``servers`` child processes writes one map output of ``records`` integers hashed to
``reducers`` slices (as a map task of ``distinct()`` does) and serves it from a block
server on 127.0.0.(2+i), as an executor does (``executor/block_server.py``). This process
then reads every reducer's slices the way a task slot does (``storage.shuffle.read_shuffle``
over a ``ConnectionShuffleClient``): one request to each server per reducer, all of them
in flight at once. The first round also dials the servers; the later ones reuse the
connections.

It prints, per request, the CPU microseconds of the reader and of the servers together
(every thread's time on a CPU, ``bench/proc_cpu.py``), for the first round and for the
later ones. A 100-executor ``distinct()`` makes 9,900 such requests
(``bench/wide_cluster.py``), so a microsecond here is about 10 ms of CPU there;
``bench/connections.py`` measures a connection with its first request.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from proc_cpu import run_seconds as cpu  # noqa: E402

from sparkctl.executor.block_server import BlockServer  # noqa: E402
from sparkctl.executor.shuffle_client import ConnectionShuffleClient  # noqa: E402
from sparkctl.storage.block_manager import BlockManager  # noqa: E402
from sparkctl.storage.shuffle import MapStatus, PartitionedWriter, read_shuffle, shuffle_paths  # noqa: E402

SECRET = b"bench-shuffle-fetch-secret-0123456789"


def serve(index: int, reducers: int, records: int, queue: Any, stop: Any) -> None:
    with tempfile.TemporaryDirectory() as local_dir:
        writer = PartitionedWriter(reducers, lambda k: hash(k) % reducers, 64 << 20, local_dir)
        writer.write_all((k, None) for k in range(index * records, (index + 1) * records))
        data_path, index_path = shuffle_paths(local_dir, 0, index, 0)
        sizes = writer.commit(data_path, index_path)
        server = BlockServer(local_dir, BlockManager(1 << 20, os.path.join(local_dir, "blocks")), SECRET)
        host, port = server.listen(f"127.0.0.{2 + index}")
        server.start()
        queue.put(MapStatus(f"exec-{index}", host, port, data_path, index_path, tuple(sizes)))
        stop.wait()
        server.stop()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", type=int, default=20, help="block servers, one map output each (default 20)")
    ap.add_argument("--reducers", type=int, default=100, help="slices per map output (default 100)")
    ap.add_argument("--records", type=int, default=2000, help="integers per map output (default 2,000)")
    ap.add_argument("--rounds", type=int, default=5, help="times every reducer is read (default 5)")
    args = ap.parse_args(argv)
    ctx = mp.get_context("fork")
    queue, stop = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=serve, args=(i, args.reducers, args.records, queue, stop))
             for i in range(args.servers)]
    for p in procs:
        p.start()
    try:
        statuses: list[MapStatus | None] = sorted((queue.get(timeout=60) for _ in procs),
                                                  key=lambda s: s.executor_id)  # type: ignore[union-attr]
        client = ConnectionShuffleClient(SECRET)
        expected = args.servers * args.records
        per_round = []
        for _ in range(args.rounds):
            before_client, before_servers, started = cpu(), sum(_server_cpu(procs)), time.perf_counter()
            got = sum(len(list(read_shuffle(0, r, statuses, "127.0.0.1", client))) for r in range(args.reducers))
            wall = time.perf_counter() - started
            if got != expected:
                raise SystemExit(f"read {got} records, expected {expected}")
            per_round.append((cpu() - before_client, sum(_server_cpu(procs)) - before_servers, wall))
        client.close_all()
    finally:
        stop.set()
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    n = args.servers * args.reducers
    print(f"{args.servers} servers x {args.reducers} reducers = {n:,} requests a round")
    for label, rounds in (("first round (dials)", per_round[:1]), ("later rounds", per_round[1:])):
        if not rounds:
            continue
        c = sum(r[0] for r in rounds) * 1e6 / n / len(rounds)
        s = sum(r[1] for r in rounds) * 1e6 / n / len(rounds)
        w = min(r[2] for r in rounds)
        print(f"  {label:<20} reader {c:5.1f} us, servers {s:5.1f} us per request; {w:.3f} s a round")


def _server_cpu(procs: list[Any]) -> list[float]:
    return [cpu(p.pid) for p in procs]


if __name__ == "__main__":
    main()
