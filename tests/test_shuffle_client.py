# mypy: disable-error-code="arg-type, list-item"
"""A slot's shuffle connections (``ConnectionShuffleClient``) against real block servers
(``BlockServer``) on 127.0.0.x, all in this process.

```
 ConnectionShuffleClient ══ FetchShuffleBlocks (pipelined) ══▶ BlockServer on 127.0.0.2 ─┐ map outputs
 (or ShuffleBlockFetcher)                                  ══▶ BlockServer on 127.0.0.3 ─┤ in tmp_path
                                                           ══▶ a scripted Server (dies, closes while idle)
```

Each block server runs both ways an executor runs it: accepting in its own loop
(``listen``), or behind ``sparkctl.rpc.Server`` (the TLS set-up) with the connections
handed to the loop. The reference is what ``read_local_block`` reads from the files, or
the records a plain Python partitioning gives.
"""
from __future__ import annotations

import os
import random
import socket
import struct
import threading
import time
from typing import Any, Callable, Iterator

import pytest

from sparkctl.errors import FetchFailedError, SparkctlError
from sparkctl.executor import block_server
from sparkctl.executor.block_server import MAX_CHUNK, MAX_RANGES, BlockServer
from sparkctl.executor.messages import (BlockData, FetchBlockChunk, FetchCachedBlock, FetchShuffleBlock,
                                        FetchShuffleBlocks)
from sparkctl.executor.shuffle_client import ConnectionShuffleClient
from sparkctl.rpc import Connection, Server, connect
from sparkctl.rpc.connection import frame_message
from sparkctl.storage import shuffle
from sparkctl.storage.block_fetcher import BlockRange, FetchRequest, ShuffleBlockFetcher
from sparkctl.storage.block_manager import BlockManager
from sparkctl.storage.shuffle import MapStatus, PartitionedWriter, read_local_block
from sparkctl.storagelevel import StorageLevel
from tests.clusters import wait_for

pytestmark = pytest.mark.timeout(30)

SECRET = b"shuffle-client-test-secret-7c21"
REDUCERS = 3
Address = tuple[str, int]


def wait_until(cond: Callable[[], Any], timeout: float = 5.0, what: str = "a condition") -> Any:
    return wait_for(cond, timeout, what, interval=0.005)


def wait_quiet(value: Callable[[], int], quiet: float = 0.3, timeout: float = 10.0) -> int:
    """Poll ``value`` until it has not changed for ``quiet`` seconds; that value."""
    deadline = time.monotonic() + timeout
    last, since = value(), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, "still changing"
        time.sleep(0.01)
        now = value()
        if now != last:
            last, since = now, time.monotonic()
    return last


def wait_all(client: ConnectionShuffleClient, requests: list[FetchRequest], timeout: float = 10.0) -> None:
    """Call ``wait`` until it has returned every request (done, failed or abandoned)."""
    deadline = time.monotonic() + timeout
    out = {id(r) for r in requests}
    while out:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{len(out)} requests still out"
        for r in client.wait(remaining):
            out.discard(id(r))


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    """Every server loop, connection thread and dialling thread a test started has ended."""
    before = set(threading.enumerate())
    yield
    wait_until(lambda: not set(threading.enumerate()) - before, what="the test's threads to end")


# ---------------------------------------------------------------- executors with map outputs
class Executor:
    """A block server on ``host`` serving map outputs of shuffle 0 from its own local dir."""

    def __init__(self, base: Any, host: str, mode: str, maps: list[int], seed: int = 0) -> None:
        self.host = host
        self.local_dir = base / host
        self.local_dir.mkdir()
        self.blocks = BlockManager(1 << 20, str(self.local_dir / "blocks"))
        self.records: dict[int, list[tuple[int, str]]] = {}
        self.statuses: dict[int, MapStatus] = {}
        self.server = BlockServer(str(self.local_dir), self.blocks, SECRET)
        self.rpc: Server | None = None
        if mode == "listen":  # the executor's default: the loop accepts and shakes hands itself
            self.address: Address = self.server.listen(host)
            self.server.start()
        else:  # as with TLS on: the Server's threads authenticate, the loop serves
            self.server.start()
            self.rpc = Server(host, 0, SECRET, self.server.serve, name="test-block-server").start()
            self.address = self.rpc.address
        for i in maps:
            rng = random.Random(seed * 100 + i)
            recs = [(rng.randrange(1000), "m%d:" % i + "y" * rng.randrange(300)) for _ in range(400)]
            writer = PartitionedWriter(REDUCERS, lambda k: k % REDUCERS, 1 << 30, str(self.local_dir), batch_size=31)
            writer.write_all(recs)
            data_path, index_path = shuffle.shuffle_paths(str(self.local_dir), 0, i, 0)
            self.records[i] = recs
            self.statuses[i] = MapStatus(f"exec-{host}", self.address[0], self.address[1], data_path, index_path,
                                         writer.commit(data_path, index_path))

    def slice(self, map_index: int, reduce_index: int, offset: int = 0, length: int | None = None) -> bytes:
        s = self.statuses[map_index]
        return read_local_block(s.data_path, s.index_path, reduce_index, offset, length)

    def request(self, map_index: int, reduce_index: int, *spans: tuple[int, int]) -> FetchRequest:
        """A request for ranges (offset, length) of one slice."""
        name = os.path.basename(self.statuses[map_index].data_path)
        req = FetchRequest(self.address, f"exec-{self.host}", reduce_index)
        for offset, length in spans:
            req.ranges.append(BlockRange(map_index, name, offset, length))
            req.size += length
        return req

    def stop(self) -> None:
        if self.rpc is not None:
            self.rpc.stop()
        self.server.stop()
        assert not self.server._thread.is_alive()


@pytest.fixture(params=["listen", "server"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def executors(tmp_path: Any, mode: str) -> Iterator[Callable[..., Executor]]:
    made: list[Executor] = []

    def make(host: str, maps: list[int], seed: int = 0) -> Executor:
        ex = Executor(tmp_path, host, mode, maps, seed)
        made.append(ex)
        return ex

    yield make
    for ex in made:
        ex.stop()


@pytest.fixture
def client() -> Iterator[ConnectionShuffleClient]:
    c = ConnectionShuffleClient(SECRET, timeout=10.0)
    yield c
    c.close_all()
    assert not c.peers


def expected(executors_: list[Executor], statuses: list[MapStatus], reduce_index: int) -> list[Any]:
    by_path = {s.data_path: ex.records[i] for ex in executors_ for i, s in ex.statuses.items()}
    return [kv for s in statuses for kv in by_path[s.data_path] if kv[0] % REDUCERS == reduce_index]


def read(statuses: list[MapStatus], reduce_index: int, client: ConnectionShuffleClient, *,
         request_size: int = 2000, window: int = 1 << 20, timeout: float = 10.0) -> ShuffleBlockFetcher:
    return ShuffleBlockFetcher(0, reduce_index, statuses, "127.0.0.1", client, timeout=timeout,
                               max_bytes_in_flight=window, request_size=request_size,
                               read_local=shuffle._local_batches)


# ---------------------------------------------------------------- pipelining
def test_many_requests_pipelined_to_several_servers(executors: Callable[..., Executor],
                                                    client: ConnectionShuffleClient) -> None:
    exs = [executors(f"127.0.0.{2 + k}", [k * 10 + j for j in range(3)], seed=k) for k in range(3)]
    rng = random.Random(4)
    requests = []
    for _ in range(150):
        ex = rng.choice(exs)
        req = FetchRequest(ex.address, f"exec-{ex.host}", rng.randrange(REDUCERS))
        for _ in range(rng.randrange(1, 4)):  # ranges of one reducer's slices, as a fetcher asks
            m = rng.choice(list(ex.statuses))
            size = ex.statuses[m].sizes[req.reduce_index]
            offset = rng.randrange(size)
            length = rng.randrange(1, size - offset + 1)
            req.ranges.append(BlockRange(m, os.path.basename(ex.statuses[m].data_path), offset, length))
            req.size += length
        requests.append((ex, req))
    client.connect(dict.fromkeys(ex.address for ex in exs))
    assert set(client.peers) == {ex.address for ex in exs}  # dialled side by side, before any send
    conns = {a: p.conn for a, p in client.peers.items()}
    for _, req in requests:  # all out before the first reply is read
        client.send(req)
    wait_all(client, [req for _, req in requests])
    for ex, req in requests:
        assert req.error is None, req.error
        assert req.data == b"".join(ex.slice(r.map_index, req.reduce_index, r.offset, r.length) for r in req.ranges)
    assert {a: p.conn for a, p in client.peers.items()} == conns  # one connection each, kept


def test_a_fetcher_reads_through_real_connections(executors: Callable[..., Executor],
                                                  client: ConnectionShuffleClient) -> None:
    exs = [executors(f"127.0.0.{2 + k}", [k * 10 + j for j in range(4)], seed=k) for k in range(3)]
    statuses = [ex.statuses[k * 10 + j] for j in range(4) for k, ex in enumerate(exs)]
    for r in range(REDUCERS):
        for window in (2000, 1 << 20):
            got = [rec for batch in read(statuses, r, client, window=window) for rec in batch]
            assert got == expected(exs, statuses, r)
    assert len(client.peers) == 3


def test_replies_of_megabytes_come_whole(executors: Callable[..., Executor], client: ConnectionShuffleClient) -> None:
    """Replies larger than a socket's buffer arrive over many receives, each taken as it
    comes (the client never blocks on one connection while others may have answered)."""
    exs = [executors(f"127.0.0.{2 + k}", []) for k in range(2)]
    statuses, records = [], []
    for i in range(4):
        ex = exs[i % 2]
        rng = random.Random(i)
        recs = [(rng.randrange(1000), rng.randbytes(rng.randrange(500, 3000))) for _ in range(2500)]
        writer = PartitionedWriter(2, lambda k: k % 2, 1 << 30, str(ex.local_dir), batch_size=50)
        writer.write_all(recs)
        data_path, index_path = shuffle.shuffle_paths(str(ex.local_dir), 0, i, 0)
        statuses.append(MapStatus(f"exec-{ex.host}", *ex.address, data_path, index_path,
                                  writer.commit(data_path, index_path)))
        records.append(recs)
    assert min(s.sizes[0] for s in statuses) > 1 << 20
    for request_size, window in ((1 << 20, 3 << 20), (4 << 20, 48 << 20)):
        for r in range(2):
            got = [rec for batch in read(statuses, r, client, request_size=request_size, window=window) for rec in batch]
            assert got == [kv for recs in records for kv in recs if kv[0] % 2 == r]


# ---------------------------------------------------------------- abandoned requests
def test_replies_to_abandoned_requests_are_dropped(executors: Callable[..., Executor],
                                                  client: ConnectionShuffleClient) -> None:
    ex = executors("127.0.0.2", [0, 1])
    big = ex.request(0, 0, (0, ex.statuses[0].sizes[0]))
    small = ex.request(1, 2, (5, 100))
    client.send(big)
    client.send(small)
    big.abandoned = True  # its reader stopped: its reply comes, and must go nowhere
    conn = client.peers[ex.address].conn
    wait_all(client, [big, small])
    assert big.data is None and big.error is None
    assert small.data == ex.slice(1, 2, 5, 100)
    later = ex.request(1, 1, (0, ex.statuses[1].sizes[1]))
    client.send(later)
    wait_all(client, [later])
    assert later.data == ex.slice(1, 1) and client.peers[ex.address].conn is conn


def test_a_reader_that_stopped_early_leaves_the_connection_in_step(executors: Callable[..., Executor],
                                                                   client: ConnectionShuffleClient) -> None:
    exs = [executors(f"127.0.0.{2 + k}", [k * 10 + j for j in range(4)], seed=k) for k in range(2)]
    statuses = [ex.statuses[k * 10 + j] for j in range(4) for k, ex in enumerate(exs)]
    s = statuses[0]  # map 0 is read from disk, while every other map's requests are out
    statuses[0] = MapStatus(s.executor_id, "127.0.0.1", 0, s.data_path, s.index_path, s.sizes)
    first = iter(read(statuses, 0, client, request_size=1500))
    next(first)
    outstanding = sum(len(p.outstanding) for p in client.peers.values())
    assert outstanding > 5
    first.close()  # type: ignore[attr-defined]  # take(): the replies still coming are someone else's problem now
    conns = {a: p.conn for a, p in client.peers.items()}
    for r in (1, 0):
        got = [rec for batch in read(statuses, r, client, request_size=1500) for rec in batch]
        assert got == expected(exs, statuses, r)
    assert {a: p.conn for a, p in client.peers.items()} == conns
    assert not any(p.outstanding for p in client.peers.values())


# ---------------------------------------------------------------- scripted servers
class ScriptedServer:
    """A ``Server`` whose n-th connection answers ``script[n]`` requests (None: all;
    "mute": reads them and never answers) with what ``reply(k, answer)`` makes of a real
    block server's k-th answer, then reads what else comes and hangs up (with nothing
    unread, so the peer gets an orderly end, not a reset)."""

    def __init__(self, ex: Executor, host: str, script: list[int | str | None],
                 reply: Callable[[int, Any], Any] | None = None, port: int = 0, batch: int = 1) -> None:
        self.answers = ex.server.answer
        self.script = list(script)
        self.reply = reply or (lambda k, answer: answer)
        self.batch = batch  # requests read before their answers go out, in one write
        self.connections = 0
        self.hung_up = threading.Event()
        self.lock = threading.Lock()
        self.server = Server(host, port, SECRET, self._serve, name="scripted").start()
        self.address: Address = self.server.address

    def _serve(self, conn: Connection) -> None:
        with self.lock:
            n = self.connections
            self.connections += 1
        answer = self.script[n] if n < len(self.script) else None
        try:
            if answer == "mute":
                while True:
                    conn.recv()
            k = 0
            while answer is None or k < answer:  # type: ignore[operator]
                reqs = [conn.recv(timeout=10) for _ in range(self.batch)]
                out = memoryview(b"".join(frame_message(self.reply(k + i, self.answers(r))) for i, r in enumerate(reqs)))
                while out:
                    out = out[conn.send_nowait(out):]
                k += self.batch
            while True:
                conn.recv(timeout=0.2)
        except SparkctlError:
            pass
        finally:
            conn.close()
            self.hung_up.set()

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def scripted(executors: Callable[..., Executor]) -> Iterator[Callable[..., tuple[ScriptedServer, Executor]]]:
    made: list[ScriptedServer] = []

    def make(script: list[int | str | None], **kw: Any) -> tuple[ScriptedServer, Executor]:
        ex = executors("127.0.0.2", [0, 1])
        server = ScriptedServer(ex, kw.pop("host", "127.0.0.3"), script, **kw)
        made.append(server)
        return server, ex

    yield make
    for server in made:
        server.stop()


def retarget(req: FetchRequest, address: Address) -> FetchRequest:
    req.address = address
    return req


@pytest.mark.parametrize("mode", ["listen"])
def test_a_server_that_dies_mid_stream_fails_what_it_owes(scripted: Any, client: ConnectionShuffleClient) -> None:
    server, ex = scripted([2])
    reqs = [retarget(ex.request(0, r, (0, ex.statuses[0].sizes[r])), server.address) for r in range(REDUCERS)]
    reqs.append(retarget(ex.request(1, 0, (0, 10)), server.address))
    for req in reqs:
        client.send(req)
    wait_all(client, reqs)
    assert reqs[0].data == ex.slice(0, 0) and reqs[1].data == ex.slice(0, 1)
    for req in reqs[2:]:
        assert req.data is None and req.error
        assert "ConnectionClosed" in req.error and f"127.0.0.3:{server.address[1]}" in req.error
    assert server.connections == 1  # a connection that broke mid-read is not redialled
    assert server.address not in client.peers or client.peers[server.address].conn.closed


@pytest.mark.parametrize("mode", ["listen"])
def test_a_fetch_from_a_dying_server_is_a_fetch_failure(scripted: Any, client: ConnectionShuffleClient) -> None:
    server, ex = scripted([1])
    host, port = server.address
    statuses = [MapStatus(s.executor_id, host, port, s.data_path, s.index_path, s.sizes) for s in ex.statuses.values()]
    with pytest.raises(FetchFailedError) as info:
        list(read(statuses, 0, client, request_size=ex.statuses[0].sizes[0]))  # map 0 in one request
    assert info.value.map_index == 1 and "ConnectionClosed" in info.value.message


@pytest.mark.parametrize("mode", ["listen"])
@pytest.mark.parametrize("second, ok", [(None, True), (0, False)])
def test_a_kept_connection_closed_while_idle_is_redialled_once(scripted: Any, client: ConnectionShuffleClient,
                                                               second: int | None, ok: bool) -> None:
    server, ex = scripted([1, second, None])
    first = retarget(ex.request(0, 0, (0, 50)), server.address)
    client.send(first)
    wait_all(client, [first])
    assert first.data == ex.slice(0, 0, 0, 50)
    assert server.hung_up.wait(5)  # the server closed the idle connection; the client has not noticed
    client.connect([server.address])  # a new read starts on the kept connection
    again = retarget(ex.request(1, 1, (0, 70)), server.address)
    client.send(again)
    wait_all(client, [again])
    assert server.connections == 2  # redialled once, never twice
    if ok:
        assert again.error is None and again.data == ex.slice(1, 1, 0, 70)
    else:
        assert again.data is None and "ConnectionClosed" in (again.error or "")


@pytest.mark.parametrize("mode", ["listen"])
def test_a_connection_not_kept_from_an_earlier_read_is_not_redialled(scripted: Any,
                                                                     client: ConnectionShuffleClient) -> None:
    """Only a connection kept idle from an earlier read may be stale; one that fails with
    no connect() since fails its requests (and the next send dials anew)."""
    server, ex = scripted([1, None])
    first = retarget(ex.request(0, 0, (0, 50)), server.address)
    client.send(first)
    wait_all(client, [first])
    assert server.hung_up.wait(5)
    again = retarget(ex.request(1, 1, (0, 70)), server.address)
    client.send(again)  # no connect(): this read never saw the connection idle
    wait_all(client, [again])
    assert again.data is None and again.error and server.connections == 1
    third = retarget(ex.request(1, 1, (0, 70)), server.address)
    client.send(third)  # the next send dials anew
    wait_all(client, [third])
    assert third.data == ex.slice(1, 1, 0, 70) and server.connections == 2


@pytest.mark.parametrize("mode", ["listen"])
def test_a_kept_connection_that_answered_is_not_redialled_when_it_breaks(scripted: Any,
                                                                          client: ConnectionShuffleClient) -> None:
    """A kept connection that answers is not stale: if it breaks after that, what it still
    owes fails (asking again elsewhere is the scheduler's decision, not the client's)."""
    server, ex = scripted([2, None])
    first = retarget(ex.request(0, 0, (0, 50)), server.address)
    client.send(first)
    wait_all(client, [first])
    client.connect([server.address])  # kept, idle: may be stale
    answered, owed = (retarget(ex.request(1, r, (0, 70)), server.address) for r in (1, 2))
    client.send(answered)  # the server's second and last answer
    client.send(owed)
    wait_all(client, [answered, owed])
    assert answered.data == ex.slice(1, 1, 0, 70)
    assert owed.data is None and "ConnectionClosed" in (owed.error or "") and server.connections == 1


@pytest.mark.parametrize("mode", ["listen"])
def test_an_idle_connection_the_server_closed_is_dropped_when_noticed(scripted: Any,
                                                                      client: ConnectionShuffleClient) -> None:
    server, ex = scripted([1, None])
    first = retarget(ex.request(0, 0, (0, 50)), server.address)
    client.send(first)
    wait_all(client, [first])
    assert server.hung_up.wait(5)
    other = ex.request(1, 0, (0, 30))  # a read from another executor meanwhile
    client.send(other)
    wait_all(client, [other])
    assert other.data == ex.slice(1, 0, 0, 30)
    wait_until(lambda: client.wait(0.01) == [] and server.address not in client.peers,
               what="the closed connection to be dropped")
    again = retarget(ex.request(1, 1, (0, 70)), server.address)
    client.send(again)
    wait_all(client, [again])
    assert again.data == ex.slice(1, 1, 0, 70) and server.connections == 2


@pytest.mark.parametrize("mode", ["listen"])
def test_close_fails_the_requests_in_flight_to_that_executor(scripted: Any, client: ConnectionShuffleClient) -> None:
    server, ex = scripted(["mute", None])
    mute = [retarget(ex.request(0, r, (0, 40)), server.address) for r in range(REDUCERS)]
    fine = ex.request(1, 0, (0, 30))
    for req in [*mute, fine]:
        client.send(req)
    wait_all(client, [fine])
    assert client.wait(0.1) == [] and not any(r.done for r in mute)
    client.close(server.address, "no reply within spark.network.timeout (0.1s)")
    wait_all(client, mute)
    assert all(r.data is None and r.error == "no reply within spark.network.timeout (0.1s)" for r in mute)
    assert server.address not in client.peers and ex.address in client.peers
    assert server.hung_up.wait(5)  # the connection really closed: the server saw its end
    again = retarget(ex.request(0, 0, (0, 40)), server.address)
    client.send(again)
    wait_all(client, [again])
    assert again.data == ex.slice(0, 0, 0, 40) and server.connections == 2


@pytest.mark.parametrize("mode", ["listen"])
def test_a_silent_executor_is_a_fetch_failure_after_the_timeout(scripted: Any,
                                                                client: ConnectionShuffleClient) -> None:
    server, ex = scripted(["mute"])
    host, port = server.address
    s = ex.statuses[1]
    statuses = [ex.statuses[0], MapStatus("exec-silent", host, port, s.data_path, s.index_path, s.sizes)]
    got: list[Any] = []
    started = time.monotonic()
    with pytest.raises(FetchFailedError) as info:
        for batch in read(statuses, 0, client, timeout=0.3):
            got.extend(batch)
    assert 0.3 <= time.monotonic() - started < 5
    assert info.value.map_index == 1 and "spark.network.timeout" in info.value.message
    assert "exec-silent" in info.value.message
    assert got == [kv for kv in ex.records[0] if kv[0] % REDUCERS == 0]
    assert server.address not in client.peers and server.hung_up.wait(5)


@pytest.mark.parametrize("mode", ["listen"])
@pytest.mark.parametrize("bad, error", [(lambda a: BlockData(a.data[:-1]), "sent 69 of 70 bytes"),
                                        (lambda a: BlockData(None, "disk on fire"), "disk on fire")])
def test_a_wrong_answer_fails_its_request_only(scripted: Any, client: ConnectionShuffleClient,
                                               bad: Callable[[Any], Any], error: str) -> None:
    # the three answers arrive together: the ones after the wrong one are read from the
    # connection's buffer, with no more readiness from the socket to say they are there
    server, ex = scripted([None], reply=lambda k, a: bad(a) if k == 0 else a, batch=REDUCERS)
    reqs = [retarget(ex.request(1, r, (0, 70)), server.address) for r in range(REDUCERS)]
    for req in reqs:
        client.send(req)
    wait_all(client, reqs)
    assert reqs[0].data is None and error in (reqs[0].error or "")
    assert [r.data for r in reqs[1:]] == [ex.slice(1, r, 0, 70) for r in range(1, REDUCERS)]
    assert server.connections == 1  # the connection stays in step


@pytest.mark.parametrize("mode", ["listen"])
def test_an_answer_that_is_no_block_data_drops_the_connection(scripted: Any, client: ConnectionShuffleClient) -> None:
    first = iter([True])  # the first answer of all, not of every connection
    server, ex = scripted([None, None], reply=lambda k, a: "no block data" if next(first, False) else a)
    reqs = [retarget(ex.request(1, r, (0, 70)), server.address) for r in range(REDUCERS)]
    for req in reqs:
        client.send(req)
    wait_all(client, reqs)
    assert all(r.data is None for r in reqs) and "answered with str" in (reqs[0].error or "")
    again = retarget(ex.request(1, 0, (0, 70)), server.address)
    client.send(again)
    wait_all(client, [again])
    assert again.data == ex.slice(1, 0, 0, 70) and server.connections == 2


# ---------------------------------------------------------------- nobody listening
def dead_address(host: str) -> Address:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[:2]


@pytest.mark.parametrize("how", ["side by side", "on send"])
def test_dialing_nothing_fails_each_request_not_the_caller(executors: Callable[..., Executor],
                                                          client: ConnectionShuffleClient, how: str) -> None:
    ex = executors("127.0.0.2", [0])
    dead = [dead_address("127.0.0.5"), dead_address("127.0.0.6")]
    if how == "side by side":
        client.connect([*dead, ex.address])  # several missing: dialled at once
    reqs = [retarget(ex.request(0, 0, (0, 10)), a) for a in dead for _ in range(2)]
    good = ex.request(0, 1, (0, 20))
    for req in [*reqs, good]:
        client.send(req)
    wait_all(client, [*reqs, good])
    assert good.data == ex.slice(0, 1, 0, 20)
    for req in reqs:
        assert req.data is None and f"cannot connect to {req.address[0]}:{req.address[1]}" in (req.error or "")


@pytest.mark.parametrize("mode", ["listen"])
def test_a_dial_error_is_reported_once_and_the_next_send_dials_again(scripted: Any,
                                                                     client: ConnectionShuffleClient) -> None:
    dead = [dead_address("127.0.0.5"), dead_address("127.0.0.6")]
    client.connect(dead)
    first = FetchRequest(dead[0], "exec-late", 0, [BlockRange(0, NAME, 0, 10)], 10)
    client.send(first)
    wait_all(client, [first])
    assert "cannot connect" in (first.error or "")
    server, ex = scripted([None], host=dead[0][0], port=dead[0][1])  # the executor is up now
    again = ex.request(0, 0, (0, 10))
    again.address = dead[0]
    client.send(again)
    wait_all(client, [again])
    assert again.data == ex.slice(0, 0, 0, 10) and server.connections == 1


class Refuser:
    """Something else listening where an executor was: it accepts and hangs up at once."""

    def __init__(self, host: str) -> None:
        self.sock = socket.create_server((host, 0))
        self.address: Address = self.sock.getsockname()[:2]
        self.accepted = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def stop(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)
        assert not self.thread.is_alive()


def test_a_failed_dial_is_not_tried_again_for_the_same_read(client: ConnectionShuffleClient) -> None:
    refuser = Refuser("127.0.0.7")
    try:
        client.connect([refuser.address, dead_address("127.0.0.5")])  # both missing: dialled side by side
        assert refuser.accepted == 1
        req = FetchRequest(refuser.address, "exec-gone", 0, [BlockRange(0, NAME, 0, 10)], 10)
        client.send(req)  # reports the dial's error: no second dial
        wait_all(client, [req])
        assert "cannot connect" in (req.error or "") and refuser.accepted == 1
    finally:
        refuser.stop()


def test_an_unreachable_executor_is_a_fetch_failure_of_its_map(executors: Callable[..., Executor],
                                                               client: ConnectionShuffleClient) -> None:
    ex = executors("127.0.0.2", [0, 1, 2])
    dead = dead_address("127.0.0.5")
    s = ex.statuses[1]
    statuses = [ex.statuses[0], MapStatus("exec-gone", *dead, s.data_path, s.index_path, s.sizes), ex.statuses[2]]
    got: list[Any] = []
    with pytest.raises(FetchFailedError) as info:
        for batch in read(statuses, 0, client):
            got.extend(batch)
    assert info.value.map_index == 1 and "cannot connect" in info.value.message
    assert got == [kv for kv in ex.records[0] if kv[0] % REDUCERS == 0]


# ---------------------------------------------------------------- a peer that stops reading
def thread_cpu(thread: threading.Thread) -> float:
    """CPU seconds ``thread`` (of this process) has used."""
    with open(f"/proc/self/task/{thread.native_id}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("how", ["one by one", "in one write"])
def test_a_peer_that_stops_reading_holds_up_nobody_else(tmp_path: Any, mode: str, monkeypatch: pytest.MonkeyPatch,
                                                        client: ConnectionShuffleClient, how: str) -> None:
    monkeypatch.setattr(block_server, "MAX_BUFFERED", 64 << 10)
    ex = Executor(tmp_path, "127.0.0.2", mode, [0])
    try:
        blob = random.Random(1).randbytes(1 << 20)
        (ex.local_dir / "shuffle_9_0_0.data").write_bytes(blob)
        (ex.local_dir / "shuffle_9_0_0.index").write_bytes(struct.pack("<2Q", 0, len(blob)))
        answered = {"slow": 0, "other": 0}
        answer = ex.server.answer

        def counting(req: Any) -> BlockData:
            answered["slow" if req.ranges[0][0] == "shuffle_9_0_0.data" else "other"] += 1
            return answer(req)

        ex.server.answer = counting  # type: ignore[method-assign]
        chunk = 512 << 10
        n = 200  # 100 MiB of answers, were they all read at once
        requests = [FetchShuffleBlocks(0, [("shuffle_9_0_0.data", i % 2 * chunk, chunk)]) for i in range(n)]
        with connect(*ex.address, SECRET, timeout=5) as slow:
            if how == "one by one":
                for req in requests:
                    slow.send(req)
            else:  # the server's first receive brings all of them
                out = memoryview(b"".join(frame_message(req) for req in requests))
                while out:
                    out = out[slow.send_nowait(out):]
            wait_until(lambda: answered["slow"] > 0, what="the server to start answering")
            started = time.monotonic()
            for r in range(REDUCERS):
                other = ex.request(0, r, (0, ex.statuses[0].sizes[r]))
                client.send(other)
                wait_all(client, [other], timeout=5)
                assert other.data == ex.slice(0, r)
            assert time.monotonic() - started < 3
            # the slow peer's requests are left unread once its answers pile up, and
            # waiting for it to read costs the server's loop nothing
            cpu = thread_cpu(ex.server._thread)
            quiet_from = time.monotonic()
            assert wait_quiet(lambda: answered["slow"], quiet=0.5) < n // 2, answered
            assert thread_cpu(ex.server._thread) - cpu < 0.1 + 0.2 * (time.monotonic() - quiet_from - 0.5)
            for i in range(n):  # it reads at last: every answer comes, in order
                reply = slow.recv(timeout=10)
                assert isinstance(reply, BlockData) and reply.data == blob[i % 2 * chunk:][:chunk], i
        assert answered == {"slow": n, "other": REDUCERS}
    finally:
        ex.stop()


# ---------------------------------------------------------------- bad requests
NAME = "shuffle_0_0_0.data"


def bad_requests(size: int) -> list[Any]:
    ok = (NAME, 0, 1)
    return [
        FetchShuffleBlocks(0, [("../" + NAME, 0, 1)]),
        FetchShuffleBlocks(0, [("../x", 0, 1)]),
        FetchShuffleBlocks(0, [("sub/" + NAME, 0, 1)]),
        FetchShuffleBlocks(0, [("/etc/passwd", 0, 1)]),
        FetchShuffleBlocks(0, [("shuffle_0_0_0.index", 0, 1)]),
        FetchShuffleBlocks(0, [("secret.data", 0, 1)]),  # in the local dir, with an index, not a shuffle's
        FetchShuffleBlocks(0, [("shuffle_9_9_9.bins", 0, 1)]),  # its "index" is shuffle_9_9_9.index
        FetchShuffleBlocks(0, [("", 0, 1)]),
        FetchShuffleBlocks(0, [(b"shuffle_0_0_0.data", 0, 1)]),
        FetchShuffleBlocks(0, [(None, 0, 1)]),
        FetchShuffleBlocks(0, [("shuffle_5_5_5.data", 0, 1)]),  # no such map output
        FetchShuffleBlocks(0, [(NAME, -1, 1)]),
        FetchShuffleBlocks(0, [(NAME, 0, 0)]),
        FetchShuffleBlocks(0, [(NAME, 0, -1)]),
        FetchShuffleBlocks(0, [(NAME, 0, 2 ** 70)]),
        FetchShuffleBlocks(0, [(NAME, 2 ** 70, 1)]),
        FetchShuffleBlocks(0, [(NAME, 0, MAX_CHUNK + 1)]),
        FetchShuffleBlocks(0, [(NAME, size - 1, 2)]),  # past the slice's end
        FetchShuffleBlocks(0, [(NAME, "0", 1)]),
        FetchShuffleBlocks(0, [(NAME, 0.0, 1)]),
        FetchShuffleBlocks(0, [(NAME, 0, None)]),
        FetchShuffleBlocks(0, [(NAME, 0, 1.5)]),
        FetchShuffleBlocks(0, [[NAME, 0, 1]]),
        FetchShuffleBlocks(0, [(NAME, 0)]),
        FetchShuffleBlocks(0, [(NAME, 0, 1, 2)]),
        FetchShuffleBlocks(0, [ok, "x"]),
        FetchShuffleBlocks(0, []),
        FetchShuffleBlocks(0, None),
        FetchShuffleBlocks(0, NAME),
        FetchShuffleBlocks(0, {ok: 1}),
        FetchShuffleBlocks(0, [ok] * (MAX_RANGES + 1)),
        FetchShuffleBlocks(0, [(NAME, 0, MAX_CHUNK // 2 + 1), (NAME, 0, MAX_CHUNK // 2 + 1)]),
        FetchShuffleBlocks(-1, [ok]),
        FetchShuffleBlocks(99, [ok]),  # no such reducer
        FetchShuffleBlocks("0", [ok]),
        FetchShuffleBlocks(None, [ok]),
        FetchShuffleBlocks(0.0, [ok]),
        FetchShuffleBlock("../" + NAME, 0),
        FetchShuffleBlock(NAME, 0, -3, 1),
        FetchShuffleBlock(NAME, 0, 0, "1"),
        FetchBlockChunk("rdd_1_0", -1, 10),
        FetchBlockChunk("rdd_1_0", 0, MAX_CHUNK + 1),
        FetchBlockChunk("no_such_block", 0, 10),
        FetchBlockChunk(None, 0, 10),
        "not a request",
    ]


def test_bad_requests_get_a_reason_and_the_server_keeps_serving(executors: Callable[..., Executor]) -> None:
    ex = executors("127.0.0.2", [0])
    (ex.local_dir.parent / NAME).write_bytes(b"outside the local dir")  # what '../' would reach
    (ex.local_dir.parent / "shuffle_0_0_0.index").write_bytes(struct.pack("<2Q", 0, 21))
    for name in ("secret", "shuffle_9_9_9"):  # files a shuffle name check must keep out of reach
        (ex.local_dir / f"{name}.index").write_bytes(struct.pack("<2Q", 0, 6))
    (ex.local_dir / "secret.data").write_bytes(b"secret")
    (ex.local_dir / "shuffle_9_9_9.bins").write_bytes(b"secret")
    ex.blocks.put("rdd_1_0", b"cached block bytes", StorageLevel.MEMORY_ONLY)
    size = ex.statuses[0].sizes[0]
    good = FetchShuffleBlocks(0, [(NAME, 3, 40), (NAME, 0, 3)])
    want = ex.slice(0, 0, 3, 40) + ex.slice(0, 0, 0, 3)
    with connect(*ex.address, SECRET, timeout=5) as conn:
        for bad in bad_requests(size):
            conn.send(bad)
            reply = conn.recv(timeout=10)
            assert isinstance(reply, BlockData) and reply.data is None and reply.error, (bad, reply)
            conn.send(good)  # the same connection still serves
            assert conn.recv(timeout=10) == BlockData(want), bad
        # and every kind of request is answered right
        conn.send(FetchShuffleBlock(NAME, 1, 2, 30))
        assert conn.recv(timeout=10) == BlockData(ex.slice(0, 1, 2, 30))
        conn.send(FetchShuffleBlock(NAME, 2))
        assert conn.recv(timeout=10) == BlockData(ex.slice(0, 2))
        conn.send(FetchCachedBlock("rdd_1_0"))
        assert conn.recv(timeout=10) == BlockData(b"cached block bytes")
        conn.send(FetchBlockChunk("rdd_1_0", 7, 5))
        assert conn.recv(timeout=10) == BlockData(b"block")
        conn.send(FetchCachedBlock("rdd_9_9"))
        assert conn.recv(timeout=10).data is None  # type: ignore[attr-defined]


def test_a_request_over_the_byte_limit_is_refused_before_reading(executors: Callable[..., Executor],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    ex = executors("127.0.0.2", [0])
    monkeypatch.setattr(block_server, "MAX_CHUNK", 1000)
    reads: list[Any] = []

    server_read = ex.server.files.read

    def counted(*args: Any) -> bytes:
        reads.append(args)
        return server_read(*args)

    monkeypatch.setattr(ex.server.files, "read", counted)
    with connect(*ex.address, SECRET, timeout=5) as conn:
        conn.send(FetchShuffleBlocks(0, [(NAME, 0, 400), (NAME, 400, 400), (NAME, 800, 400)]))
        reply = conn.recv(timeout=10)
        assert reply.data is None and "1000" in reply.error  # type: ignore[attr-defined]
        assert not reads  # every range is checked before any is read
        conn.send(FetchShuffleBlocks(0, [(NAME, 0, 400), (NAME, 400, 400)]))
        assert conn.recv(timeout=10) == BlockData(ex.slice(0, 0, 0, 800))


def test_a_removed_shuffle_s_open_files_are_closed_by_the_loop(executors: Callable[..., Executor]) -> None:
    ex = executors("127.0.0.2", [0, 1])
    with connect(*ex.address, SECRET, timeout=5) as conn:
        for m in (0, 1):
            conn.send(FetchShuffleBlocks(1, [(os.path.basename(ex.statuses[m].data_path), 0, 5)]))
            assert conn.recv(timeout=10) == BlockData(ex.slice(m, 1, 0, 5))
        assert ex.server.files.open_files == 2  # both map outputs' data files kept open
        ex.server.forget_shuffle(1)  # another shuffle's: nothing of shuffle 0 closes
        time.sleep(0.05)
        assert ex.server.files.open_files == 2
        ex.server.forget_shuffle(0)  # from this thread, as the executor's driver thread does
        wait_until(lambda: ex.server.files.open_files == 0, what="the loop to close the files")
        conn.send(FetchShuffleBlocks(2, [(os.path.basename(ex.statuses[0].data_path), 0, 5)]))
        assert conn.recv(timeout=10) == BlockData(ex.slice(0, 2, 0, 5))  # opened again


def test_an_error_inside_an_answer_is_sent_as_its_reason(executors: Callable[..., Executor],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    ex = executors("127.0.0.2", [0])

    def broken_get(block_id: str) -> bytes:
        raise PermissionError(f"cannot read the block file of {block_id}")

    monkeypatch.setattr(ex.blocks, "get", broken_get)
    with connect(*ex.address, SECRET, timeout=5) as conn:
        conn.send(FetchCachedBlock("rdd_3_1"))
        assert conn.recv(timeout=10) == BlockData(None, "PermissionError: cannot read the block file of rdd_3_1")
        conn.send(FetchShuffleBlocks(0, [(NAME, 0, 9)]))
        assert conn.recv(timeout=10) == BlockData(ex.slice(0, 0, 0, 9))


def test_a_peer_sending_garbage_is_dropped_and_others_are_served(executors: Callable[..., Executor],
                                                                 client: ConnectionShuffleClient) -> None:
    ex = executors("127.0.0.2", [0])
    with connect(*ex.address, SECRET, timeout=5) as bad:
        bad.send_bytes(b"\x80\x05 this is no pickle")
        with pytest.raises(SparkctlError):
            while True:  # the server hangs up on it
                bad.recv(timeout=5)
    req = ex.request(0, 0, (0, 10))
    client.send(req)
    wait_all(client, [req])
    assert req.data == ex.slice(0, 0, 0, 10)


def test_wait_with_nothing_out_returns_at_once(client: ConnectionShuffleClient) -> None:
    started = time.monotonic()
    assert client.wait(5.0) == []
    assert time.monotonic() - started < 1
