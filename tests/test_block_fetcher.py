"""The reducer's fetch logic (``sparkctl.storage.block_fetcher``), driven without a socket.

```
 statuses ──plan()──▶ requests ──send──▶ FakeClient (completes them in any order, late,
                                         or never; checks the window at every send)
 records  ◀──ShuffleBlockFetcher──────── replies read from real map outputs in tmp_path
```

The map outputs are written by ``PartitionedWriter`` and served range by range with
``read_local_block``, as a block server does. The reference is plain Python: the records
each map task wrote for the reducer, map after map.
"""
from __future__ import annotations

import os
import random
import time
from collections import defaultdict
from typing import Any, Iterable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparkctl.errors import FetchFailedError
from sparkctl.executor import task_metrics
from sparkctl.storage import shuffle
from sparkctl.storage.block_fetcher import BlockRange, FetchRequest, RangeClient, ShuffleBlockFetcher, plan
from sparkctl.storage.shuffle import MapStatus, PartitionedWriter, read_local_block

pytestmark = pytest.mark.timeout(60)

LOCAL = "here"
REDUCERS = 3
Address = tuple[str, int]


# ---------------------------------------------------------------- map outputs
def map_records(map_index: int, n: int, seed: int) -> list[tuple[int, str]]:
    rng = random.Random(seed * 1000 + map_index)
    return [(rng.randrange(10_000), "v%d-" % map_index + "x" * rng.randrange(200)) for _ in range(n)]


def write_map(tmp_path: Any, map_index: int, records: list[tuple[int, str]], host: str) -> MapStatus:
    writer = PartitionedWriter(REDUCERS, lambda k: k % REDUCERS, 1 << 30, str(tmp_path), batch_size=23)
    writer.write_all(records)
    data_path, index_path = shuffle.shuffle_paths(str(tmp_path), 0, map_index, 0)
    sizes = writer.commit(data_path, index_path)
    executor = "local" if host == LOCAL else "exec-" + host
    return MapStatus(executor, host, 7000 + int(host[1:]) if host != LOCAL else 0, data_path, index_path, sizes)


class Shuffle:
    """Map outputs on disk, each map task 'on' a host: LOCAL or a remote one ("h1", ...)."""

    def __init__(self, tmp_path: Any, hosts: list[str], n: int = 300, seed: int = 0,
                 empty: Iterable[tuple[int, int]] = ()) -> None:
        empty = set(empty)  # (map, reducer) slices with no records
        self.records: list[list[tuple[int, str]]] = []
        self.statuses: list[MapStatus] = []
        for i, host in enumerate(hosts):
            recs = [kv for kv in map_records(i, n, seed) if (i, kv[0] % REDUCERS) not in empty]
            self.records.append(recs)
            self.statuses.append(write_map(tmp_path, i, recs, host))
        for i, r in empty:
            assert self.statuses[i].sizes[r] == 0

    def expected(self, reduce_index: int) -> list[tuple[int, str]]:
        """What the reducer must read: every map's records for it, map after map, each map's
        in the order it wrote them."""
        return [kv for recs in self.records for kv in recs if kv[0] % REDUCERS == reduce_index]

    def fetch(self, req: FetchRequest, r: BlockRange) -> bytes:
        """One range, as a block server reads it."""
        status = self.statuses[r.map_index]
        assert os.path.basename(status.data_path) == r.file_name
        return read_local_block(status.data_path, status.index_path, req.reduce_index, r.offset, r.length)


def reading_order(fetcher: ShuffleBlockFetcher) -> Iterator[tuple[FetchRequest, int]]:
    """Each remote range as the reader takes it: (its request, its index in the request)."""
    seen: dict[int, int] = defaultdict(int)
    for _, _, parts in fetcher.blocks:
        for req, _, _ in parts:
            yield req, seen[id(req)]
            seen[id(req)] += 1


CLIENTS: list[FakeClient] = []


@pytest.fixture(autouse=True)
def windows_kept() -> Iterator[None]:
    CLIENTS.clear()
    yield
    for client in CLIENTS:
        client.check()
    CLIENTS.clear()


class FakeClient:
    """A ``ShuffleClient`` that completes requests in the ``order`` asked ("fifo",
    "reversed", "random"), one per ``wait`` after ``delay`` seconds; requests in ``fail``
    (by send position) get an error, those in ``never`` no reply at all. At every send it
    checks the fetcher's window: the bytes sent and not yet taken by the reader stay within
    ``max_bytes_in_flight``, unless the request sent holds the very range the reader needs
    next."""

    def __init__(self, shuffle_: Shuffle, order: str = "fifo", *, delay: float = 0.0, seed: int = 0,
                 fail: Iterable[int] = (), never: Iterable[int] = ()) -> None:
        self.shuffle = shuffle_
        self.order = order
        self.delay = delay
        self.rng = random.Random(seed)
        self.fail = set(fail)
        self.never = set(never)
        self.fetcher: ShuffleBlockFetcher | None = None
        self.limit = 0
        self.connected: list[list[Address]] = []
        self.sent: list[FetchRequest] = []
        self.pending: list[FetchRequest] = []
        self.closed: list[tuple[Address, str]] = []
        self.waits = 0
        self.peak = 0  # most bytes in the window at once
        self.peak_requests = 0
        self.over_window: list[FetchRequest] = []  # sends past the window (the reader's next request)
        self.violations: list[str] = []
        CLIENTS.append(self)

    def check(self) -> None:
        """No send went past the window (each client is checked after its test, too)."""
        found, self.violations = self.violations, []
        assert not found, found[:3]

    def watch(self, fetcher: ShuffleBlockFetcher, max_bytes_in_flight: int) -> ShuffleBlockFetcher:
        self.fetcher = fetcher
        self.limit = max_bytes_in_flight
        return fetcher

    def in_window(self) -> list[FetchRequest]:
        return [r for r in self.sent if r.taken < len(r.ranges)]

    def connect(self, addresses: Iterable[Address]) -> None:
        self.connected.append(list(addresses))

    def send(self, request: FetchRequest) -> None:
        assert request not in self.sent, "a request sent twice"
        assert self.connected and request.address in self.connected[-1], "sent before its address was connected"
        self.sent.append(request)
        window = self.in_window()
        in_flight = sum(r.size for r in window)
        self.peak = max(self.peak, in_flight)
        self.peak_requests = max(self.peak_requests, len(window))
        if in_flight > self.limit:
            # noted, not raised: the fetcher would turn an exception raised here into a fetch failure
            assert self.fetcher is not None
            needed = next(((req, k) for req, k in reading_order(self.fetcher) if k >= req.taken), None)
            if needed is None or needed[0] is not request:
                self.violations.append(f"{in_flight} bytes in flight (limit {self.limit}), and the request "
                                       f"sent is not the one the reader needs next")
            elif in_flight - request.size > self.limit:
                self.violations.append(f"{in_flight} bytes in flight (limit {self.limit}): past the window by "
                                       f"more than the reader's next request ({request.size} bytes)")
            self.over_window.append(request)
        if len(self.sent) - 1 not in self.never:
            self.pending.append(request)

    def wait(self, timeout: float) -> list[FetchRequest]:
        self.waits += 1
        if not self.pending:
            time.sleep(min(timeout, 0.01))
            return []
        if self.delay:
            time.sleep(min(self.delay, timeout))
        if self.order == "fifo":
            req = self.pending.pop(0)
        elif self.order == "reversed":
            req = self.pending.pop()
        else:
            req = self.pending.pop(self.rng.randrange(len(self.pending)))
        if self.sent.index(req) in self.fail:
            req.error = f"executor {req.executor_id} is on fire"
        else:
            req.data = b"".join(self.shuffle.fetch(req, r) for r in req.ranges)
            assert len(req.data) == req.size
        return [req]

    def close(self, address: Address, reason: str) -> None:
        self.closed.append((address, reason))
        for req in [r for r in self.pending if r.address == address]:
            self.pending.remove(req)
            req.error = reason


def local_batches(log: list[MapStatus] | None = None) -> Any:
    """The fetcher's local reader (the one the executors use), noting each map it reads."""
    def read(status: MapStatus, reduce_index: int) -> Iterator[list[Any]]:
        if log is not None:
            log.append(status)
        return shuffle._local_batches(status, reduce_index)
    return read


def make_fetcher(sh: Shuffle, client: FakeClient | None, reduce_index: int, *, max_bytes_in_flight: int,
                 request_size: int, timeout: float = 30.0, read_local: Any = None) -> ShuffleBlockFetcher:
    fetcher = ShuffleBlockFetcher(0, reduce_index, sh.statuses, LOCAL, client, timeout=timeout,
                                  max_bytes_in_flight=max_bytes_in_flight, request_size=request_size,
                                  read_local=read_local or local_batches())
    if client is not None:
        client.watch(fetcher, max(max_bytes_in_flight, request_size))
    return fetcher


def records_of(fetcher: ShuffleBlockFetcher) -> list[Any]:
    return [rec for batch in fetcher for rec in batch]


# ---------------------------------------------------------------- plan()
def fake_status(i: int, host: str, sizes: tuple[int, ...]) -> MapStatus:
    return MapStatus(f"exec-{host}", host, 7000 if host == LOCAL else 7000 + int(host[1:]),
                     f"/somewhere/{host}/shuffle_3_{i}_0.data", f"/somewhere/{host}/shuffle_3_{i}_0.index", sizes)


def check_plan(statuses: list[MapStatus], reduce_index: int, request_size: int, remote: bool) -> None:
    blocks, requests = plan(3, statuses, reduce_index, LOCAL, remote, request_size)
    nonempty = [i for i, s in enumerate(statuses) if s.sizes[reduce_index]]
    assert [b[0] for b in blocks] == nonempty  # every non-empty slice, in map order, once
    requested: dict[int, list[BlockRange]] = defaultdict(list)
    for req in requests:
        assert 0 < req.size <= request_size
        assert req.size == sum(r.length for r in req.ranges)
        assert req.reduce_index == reduce_index and req.ranges and not req.done
        for r in req.ranges:
            status = statuses[r.map_index]
            assert (status.host, status.port) == req.address and status.executor_id == req.executor_id
            assert r.file_name == os.path.basename(status.data_path)
            assert r.length > 0
            requested[r.map_index].append(r)
    for i, status, parts in blocks:
        assert status is statuses[i]
        size = status.sizes[reduce_index]
        if status.host == LOCAL or not remote:
            assert parts == [] and i not in requested  # read from disk, never asked for
            continue
        # the slice's ranges, in order, cover each of its bytes exactly once
        ranges = requested[i]
        assert [(r.offset, r.length) for r in ranges] == [(r.offset, r.length) for r in sorted(ranges, key=lambda r: r.offset)]
        covered = 0
        for r in ranges:
            assert r.offset == covered
            covered += r.length
        assert covered == size
        # each part points at its range's bytes in its request's reply
        assert len(parts) == len(ranges)
        for (req, start, length), r in zip(parts, ranges):
            k = next(j for j, x in enumerate(req.ranges) if x is r)
            assert start == sum(x.length for x in req.ranges[:k]) and length == r.length
    # packing: one executor's ranges share requests; a new request starts only where the
    # next range would not fit in the last one, or the last one began request_size bytes
    # or more earlier in the reader's order of remote bytes (so the reader never holds a
    # request spanning the whole read); every request's ranges lie within that span
    position = 0
    where: dict[int, int] = {}  # id(range) -> its place in the reader's order
    for _, _, parts in blocks:
        for req, start, length in parts:
            where[id(req.ranges[next(j for j, x in enumerate(req.ranges) if start == sum(
                y.length for y in req.ranges[:j]))])] = position
            position += length
    by_address: dict[Address, list[FetchRequest]] = defaultdict(list)
    for req in requests:
        by_address[req.address].append(req)
        assert req.start == where[id(req.ranges[0])]
        assert all(where[id(r)] - req.start < request_size for r in req.ranges)
    for reqs in by_address.values():
        for a, b in zip(reqs, reqs[1:]):
            assert a.size + b.ranges[0].length > request_size or b.start - a.start >= request_size
    if not remote:
        assert requests == []


hosts = st.sampled_from([LOCAL, "h1", "h2", "h3"])
slice_size = st.one_of(st.just(0), st.integers(1, 50), st.integers(1, 5000))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(maps=st.lists(st.tuples(hosts, st.lists(slice_size, min_size=2, max_size=2)), max_size=30),
       request_size=st.integers(1, 3000), reduce_index=st.integers(0, 1), remote=st.booleans())
def test_plan_packs_and_splits_within_the_request_size(maps: list[Any], request_size: int, reduce_index: int,
                                                      remote: bool) -> None:
    statuses = [fake_status(i, host, tuple(sizes)) for i, (host, sizes) in enumerate(maps)]
    check_plan(statuses, reduce_index, request_size, remote)


def test_plan_small_slices_of_one_executor_go_in_one_request() -> None:
    statuses = [fake_status(i, "h1", (100, 7)) for i in range(20)]
    _, requests = plan(3, statuses, 0, LOCAL, True, 4096)
    assert len(requests) == 1 and [r.map_index for r in requests[0].ranges] == list(range(20))
    _, requests = plan(3, statuses, 0, LOCAL, True, 1000)
    assert [len(r.ranges) for r in requests] == [10, 10]


def test_plan_splits_a_large_slice_into_ranges() -> None:
    statuses = [fake_status(0, "h1", (10_000,)), fake_status(1, "h2", (1,))]
    blocks, requests = plan(3, statuses, 0, LOCAL, True, 4096)
    assert [(r.offset, r.length) for req in requests[:3] for r in req.ranges] == [(0, 4096), (4096, 4096), (8192, 1808)]
    assert len(blocks[0][2]) == 3 and requests[3].address == ("h2", 7002)


def test_plan_a_missing_map_output_is_a_fetch_failure() -> None:
    statuses: list[Any] = [fake_status(0, "h1", (5,)), None, fake_status(2, "h1", (5,))]
    with pytest.raises(FetchFailedError) as info:
        plan(3, statuses, 0, LOCAL, True)
    assert (info.value.shuffle_id, info.value.map_index, info.value.reduce_index) == (3, 1, 0)


# ---------------------------------------------------------------- the fetcher
HOSTS = [LOCAL, "h1", "h2", "h1", "h3", LOCAL, "h2", "h2", "h1", "h3", "h1", LOCAL, "h3", "h2"]


@pytest.fixture(scope="module")
def maps(tmp_path_factory: pytest.TempPathFactory) -> Shuffle:
    # map 4 has nothing for reducer 1, map 6 nothing for reducers 0 and 2
    return Shuffle(tmp_path_factory.mktemp("maps"), HOSTS, empty=[(4, 1), (6, 0), (6, 2)])


@pytest.mark.parametrize("order", ["fifo", "reversed", "random"])
@pytest.mark.parametrize("request_size, window", [(1500, 4500), (4096, 1 << 20), (700, 700)])
def test_records_come_in_map_order_whatever_order_replies_come_in(maps: Shuffle, order: str, request_size: int,
                                                                 window: int) -> None:
    for r in range(REDUCERS):
        client = FakeClient(maps, order, seed=r)
        fetcher = make_fetcher(maps, client, r, max_bytes_in_flight=window, request_size=request_size)
        assert records_of(fetcher) == maps.expected(r)
        assert len(client.connected) == 1  # every address at once, before the first send
        assert set(client.connected[0]) == {req.address for req in client.sent}
        assert not client.pending and all(req.taken == len(req.ranges) and req.data is None for req in client.sent)
        assert not client.closed
        remote = [s for s in maps.statuses if s.host != LOCAL and s.sizes[r]]
        assert sum(req.size for req in client.sent) == sum(s.sizes[r] for s in remote)
        if window >= 3 * request_size:
            assert client.peak_requests >= 3  # requests really are in flight side by side


def test_replies_with_delays_in_random_order(maps: Shuffle) -> None:
    client = FakeClient(maps, "random", delay=0.001, seed=5)
    fetcher = make_fetcher(maps, client, 1, max_bytes_in_flight=5000, request_size=2000)
    assert records_of(fetcher) == maps.expected(1)


def test_a_large_window_sends_every_request_before_the_first_wait(maps: Shuffle) -> None:
    client = FakeClient(maps, "reversed")
    fetcher = make_fetcher(maps, client, 0, max_bytes_in_flight=1 << 30, request_size=1000)
    batches = iter(fetcher)
    first = next(batches)  # map 0 is local: read while every request is out
    _, requests = plan(0, maps.statuses, 0, LOCAL, True, 1000)
    assert client.waits == 0 and len(client.sent) == len(requests) > 3
    assert first + [rec for batch in batches for rec in batch] == maps.expected(0)


def test_local_slices_are_read_while_remote_requests_are_out(tmp_path: Any) -> None:
    sh = Shuffle(tmp_path, [LOCAL, "h1", LOCAL, "h2", "h1"])
    read: list[MapStatus] = []
    seen: list[tuple[int, int]] = []  # (requests sent, replies given) at each local read
    client = FakeClient(sh, "fifo")

    def read_local(status: MapStatus, reduce_index: int) -> Iterator[list[Any]]:
        seen.append((len(client.sent), client.waits))
        return local_batches(read)(status, reduce_index)

    fetcher = make_fetcher(sh, client, 2, max_bytes_in_flight=1 << 20, request_size=1 << 20, read_local=read_local)
    assert records_of(fetcher) == sh.expected(2)
    assert [s.host for s in read] == [LOCAL, LOCAL]
    assert seen[0] == (2, 0)  # both executors' requests went out before the first local read
    assert seen[1][0] == 2


def test_the_reader_s_next_request_goes_out_even_when_the_window_is_full(tmp_path: Any) -> None:
    # h1's one request packs maps 0 and 2 and fills the window; the reader then needs h2's
    # map 1, whose request cannot wait for map 2 to be read
    sh = Shuffle(tmp_path, ["h1", "h2", "h1"], n=60)
    sizes = [s.sizes[0] for s in sh.statuses]
    size = sizes[0] + sizes[2]
    client = FakeClient(sh, "fifo")
    fetcher = make_fetcher(sh, client, 0, max_bytes_in_flight=5 * size, request_size=size)
    fetcher.max_bytes_in_flight = size  # a window the first request fills
    client.watch(fetcher, size)
    assert [len(r.ranges) for r in fetcher.unsent] == [2, 1]
    assert records_of(fetcher) == sh.expected(0)
    assert [r.address for r in client.over_window] == [("h2", 7002)]


def test_the_window_holds_when_executors_take_turns(tmp_path: Any) -> None:
    """Map i on executor i % 12: a request packs an executor's maps only from a fifth of
    the window's span of the read, so the requests the reader holds half-read stay within
    it (one request per executor over the whole read held 37,768 bytes here)."""
    sh = Shuffle(tmp_path, [f"h{1 + i % 12}" for i in range(36)], n=30)
    client = FakeClient(sh, "fifo")
    fetcher = make_fetcher(sh, client, 0, max_bytes_in_flight=8000, request_size=4000)
    assert records_of(fetcher) == sh.expected(0)
    client.check()


@pytest.mark.parametrize("failing", [0, 2, 5])
def test_a_failed_request_is_a_fetch_failure_of_its_first_map(maps: Shuffle, failing: int) -> None:
    client = FakeClient(maps, "random", fail=[failing], seed=failing)
    fetcher = make_fetcher(maps, client, 0, max_bytes_in_flight=1 << 20, request_size=1200)
    got: list[Any] = []
    with pytest.raises(FetchFailedError) as info:
        for batch in fetcher:
            got.extend(batch)
    bad = client.sent[failing]
    first = bad.ranges[0].map_index
    assert (info.value.shuffle_id, info.value.map_index, info.value.reduce_index) == (0, first, 0)
    assert "is on fire" in info.value.message and bad.executor_id in info.value.message
    # what came before it is every record of the maps before, and nothing wrong
    before = [kv for recs in maps.records[:first] for kv in recs if kv[0] % REDUCERS == 0]
    assert got[:len(before)] == before and maps.expected(0)[:len(got)] == got


def test_a_reply_of_the_wrong_length_is_a_fetch_failure(maps: Shuffle) -> None:
    def short(req: FetchRequest, r: BlockRange) -> bytes:
        data = maps.fetch(req, r)
        return data[:-1] if r.map_index == 3 else data

    fetcher = ShuffleBlockFetcher(0, 0, maps.statuses, LOCAL, RangeClient(short), max_bytes_in_flight=1 << 20,
                                  request_size=1 << 20, read_local=local_batches())
    with pytest.raises(FetchFailedError) as info:
        records_of(fetcher)
    # h1's one request holds maps 1, 3, 8 and 10: it fails as a whole, at map 1
    assert info.value.map_index == 1 and "bytes" in info.value.message


@pytest.mark.parametrize("window", [6000, 1 << 30])
def test_stopping_early_abandons_the_outstanding_requests(maps: Shuffle, window: int) -> None:
    client = FakeClient(maps, "random", seed=1)  # some later replies are in before the reader needs them
    fetcher = make_fetcher(maps, client, 1, max_bytes_in_flight=window, request_size=500)
    all_requests = list(fetcher.unsent)
    batches = iter(fetcher)
    got: list[Any] = []
    while not any(r.taken for r in client.sent):  # into the remote maps' replies
        got += next(batches)
    assert any(r.data is not None and not r.taken for r in client.sent)  # a reply in hand, unread
    assert client.pending  # and requests still out
    batches.close()  # type: ignore[attr-defined]  # take(): the reader stops here
    assert got == maps.expected(1)[:len(got)]
    untaken = [r for r in all_requests if r.taken < len(r.ranges)]
    assert untaken and all(r.abandoned and r.data is None for r in untaken)
    assert all(not r.abandoned for r in all_requests if r.taken == len(r.ranges))
    if window < 1 << 30:
        assert any(r not in client.sent for r in untaken)  # never sent, and never will be


def test_a_request_that_never_completes_times_out(maps: Shuffle) -> None:
    client = FakeClient(maps, "fifo", never=[1])
    fetcher = make_fetcher(maps, client, 0, max_bytes_in_flight=1 << 20, request_size=1 << 20, timeout=0.05)
    got: list[Any] = []
    started = time.monotonic()
    with pytest.raises(FetchFailedError) as info:
        for batch in fetcher:
            got.extend(batch)
    assert time.monotonic() - started < 5
    silent = client.sent[1]
    assert info.value.map_index == silent.ranges[0].map_index
    assert "spark.network.timeout" in info.value.message and silent.executor_id in info.value.message
    assert [a for a, _ in client.closed] == [silent.address]
    assert "0.05s" in client.closed[0][1]
    assert got == maps.expected(0)[:len(got)]


def test_progress_on_other_requests_restarts_the_timeout(maps: Shuffle) -> None:
    # replies come last first, one every 40 ms: the reader's first request is answered
    # long after 0.3 s, but something arrives well within every 0.3 s
    client = FakeClient(maps, "reversed", delay=0.04)
    fetcher = make_fetcher(maps, client, 0, max_bytes_in_flight=1 << 20, request_size=6500, timeout=0.3)
    started = time.monotonic()
    assert records_of(fetcher) == maps.expected(0)
    assert len(client.sent) >= 16 and time.monotonic() - started > 0.6 and not client.closed


def test_metrics(maps: Shuffle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(task_metrics, "_current", task_metrics.TaskMetrics())
    for r in range(REDUCERS):
        metrics = task_metrics.begin()
        client = FakeClient(maps, "reversed", delay=0.002)
        fetcher = make_fetcher(maps, client, r, max_bytes_in_flight=4000, request_size=2000)
        records = records_of(fetcher)
        local = [s.sizes[r] for s in maps.statuses if s.host == LOCAL and s.sizes[r]]
        remote = [s.sizes[r] for s in maps.statuses if s.host != LOCAL and s.sizes[r]]
        assert metrics.shuffle_local_blocks_fetched == len(local)
        assert metrics.shuffle_local_bytes_read == sum(local)
        assert metrics.shuffle_remote_blocks_fetched == len(remote)
        assert metrics.shuffle_remote_bytes_read == sum(remote)
        assert metrics.shuffle_records_read == len(records) == len(maps.expected(r))
        assert metrics.shuffle_fetch_wait_time > 0  # the reader waited on the delayed replies
        spark = metrics.as_dict()
        assert spark["shuffleRemoteBytesRead"] == sum(remote) and spark["shuffleRecordsRead"] == len(records)


def test_read_shuffle_with_a_range_function_reads_what_is_on_disk(maps: Shuffle, monkeypatch: pytest.MonkeyPatch) -> None:
    """The single-range fetchers (tools, tests) go through RangeClient."""
    calls: list[tuple[int, int]] = []

    def fetch(status: MapStatus, shuffle_id: int, reduce_index: int, offset: int, length: int) -> bytes:
        calls.append((offset, length))
        return read_local_block(status.data_path, status.index_path, reduce_index, offset, length)

    monkeypatch.setattr(shuffle, "FETCH_CHUNK", 500)
    for r in range(REDUCERS):
        statuses: list[MapStatus | None] = list(maps.statuses)
        assert list(shuffle.read_shuffle(0, r, statuses, LOCAL, fetch)) == maps.expected(r)
    assert calls and max(length for _, length in calls) <= 500
