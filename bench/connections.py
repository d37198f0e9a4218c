"""CPU one authenticated shuffle connection costs, on each side.

    python bench/connections.py [--batches 60] [--batch 99] [--no-request]

A block server (``executor/block_server.py``) listens on 127.0.0.2 in a child process; this
process dials batches of connections to it the way a task slot dials the executors a
read needs (``rpc/nonblocking``: TCP connects and handshakes side by side in one
selector), makes each a ``Connection``, sends one request on each (a cached block the
server does not have: the smallest answer) and reads the answers, and closes them, as a
reducer's first read does. It prints the CPU microseconds per connection, user and
system, of the dialling side and of the serving side (the server's whole life, so its
start-up is spread over the connections).

A 100-executor shuffle opens 9,900 such connections the first time it runs
(``bench/wide_cluster.py``), so a microsecond here is about 10 ms of CPU there.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import selectors
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from proc_cpu import run_seconds  # noqa: E402

from sparkctl.executor.block_server import BlockServer  # noqa: E402
from sparkctl.executor.messages import BlockData, FetchCachedBlock  # noqa: E402
from sparkctl.rpc import Connection  # noqa: E402
from sparkctl.rpc.nonblocking import PendingHandshake, start_dial  # noqa: E402
from sparkctl.storage.block_manager import BlockManager  # noqa: E402

SECRET = b"bench-connections-secret-0123456789"


def serve(queue: Any, stop: Any) -> None:
    with tempfile.TemporaryDirectory() as local_dir:
        server = BlockServer(local_dir, BlockManager(1 << 20, os.path.join(local_dir, "blocks")), SECRET)
        queue.put(server.listen("127.0.0.2"))
        server.start()
        stop.wait()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        queue.put((usage.ru_utime, usage.ru_stime))
        server.stop()


def dial_batch(address: tuple[str, int], n: int) -> list[Connection]:
    conns = []
    with selectors.DefaultSelector() as sel:
        for _ in range(n):
            pending = PendingHandshake(start_dial(*address), SECRET, "client", "bench", 30, connecting=True)
            sel.register(pending.sock, pending.events(), pending)
        while sel.get_map():
            events = sel.select(30)
            if not events:
                raise SystemExit("the handshakes did not finish within 30 s")
            for key, _ in events:
                pending = key.data
                if pending.advance():
                    sel.unregister(key.fileobj)
                    conns.append(pending.connection())
                else:
                    sel.modify(key.fileobj, pending.events(), pending)
    return conns


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=60, help="batches of connections (default 60)")
    ap.add_argument("--batch", type=int, default=99, help="connections dialled at once (default 99)")
    ap.add_argument("--no-request", action="store_true", help="close each connection without a request")
    args = ap.parse_args(argv)
    ctx = mp.get_context("fork")
    queue, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=serve, args=(queue, stop))
    server.start()
    try:
        address = tuple(queue.get(timeout=30))
        for conn in dial_batch(address, 10):  # warm both sides
            conn.close()
        before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        ran_before, server_ran_before = run_seconds(), run_seconds(server.pid)
        for _ in range(args.batches):
            conns = dial_batch(address, args.batch)
            if not args.no_request:
                for conn in conns:
                    conn.send(FetchCachedBlock("rdd_0_0"))
                for conn in conns:
                    if conn.recv(timeout=30) != BlockData(None):
                        raise SystemExit("the block server answered the request with something else")
            for conn in conns:
                conn.close()
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        ran, server_ran = run_seconds() - ran_before, run_seconds(server.pid) - server_ran_before
        stop.set()
        server_user, server_sys = queue.get(timeout=30)
    finally:
        stop.set()
        server.join(30)
        if server.is_alive():
            server.kill()
    n = args.batches * args.batch
    per = 1e6 / n
    print(f"{n:,} connections in {wall:.2f} s")
    print(f"  dialling side: {(after.ru_utime - before.ru_utime) * per:.0f} us user, "
          f"{(after.ru_stime - before.ru_stime) * per:.0f} us system per connection")
    print(f"  serving side:  {server_user * per:.0f} us user, {server_sys * per:.0f} us system per connection "
          "(its whole life)")
    print(f"  on a CPU, both sides, this run only: {(ran + server_ran) * per:.0f} us per connection "
          f"(dialling {ran * per:.0f}, serving {server_ran * per:.0f})")


if __name__ == "__main__":
    main()
