"""``ShuffleBlockResolver``: a block server's open map output files. The reference is
``read_local_block``, which opens the files for each read, over map outputs written by the
real ``PartitionedWriter``."""
from __future__ import annotations

import os
import random
from typing import Any

import pytest

from sparkctl.storage.shuffle import MapStatus, PartitionedWriter, read_local_block
from sparkctl.storage import shuffle_block_resolver
from sparkctl.storage.shuffle_block_resolver import ShuffleBlockResolver

pytestmark = pytest.mark.timeout(60)

REDUCERS = 5


def map_output(local_dir: Any, shuffle_id: int, map_index: int, seed: int) -> MapStatus:
    rng = random.Random(seed)
    data = [(rng.randrange(1000), "v" * rng.randrange(60)) for _ in range(rng.randrange(50, 400))]
    writer = PartitionedWriter(REDUCERS, lambda k: k % REDUCERS, 1 << 30, str(local_dir), batch_size=17)
    writer.write_all(data)
    base = os.path.join(str(local_dir), f"shuffle_{shuffle_id}_{map_index}_{100 + map_index}")
    return MapStatus("0", "here", 0, base + ".data", base + ".index", writer.commit(base + ".data", base + ".index"))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def outputs(tmp_path: Any) -> list[MapStatus]:
    return [map_output(tmp_path, s, m, seed=10 * s + m) for s in (0, 1) for m in range(6)]


@pytest.mark.parametrize("cached_index", [64 << 10, 0], ids=["index-in-memory", "index-kept-open"])
def test_ranges_read_as_read_local_block_reads_them(tmp_path: Any, outputs: list[MapStatus], cached_index: int,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shuffle_block_resolver, "CACHED_INDEX", cached_index)
    resolver = ShuffleBlockResolver(str(tmp_path), capacity=4)
    rng = random.Random(7)
    try:
        for _ in range(400):  # more map outputs than stay open: files closed and opened again
            status = rng.choice(outputs)
            r = rng.randrange(REDUCERS)
            size = status.sizes[r]
            offset = rng.randrange(size + 3)
            length = rng.choice([None, rng.randrange(size + 5)])
            want = read_local_block(status.data_path, status.index_path, r, offset, length)
            assert resolver.read(os.path.basename(status.data_path), r, offset, length) == want
            assert resolver.open_files <= (1 if cached_index else 2) * 4
    finally:
        resolver.close()


def test_open_files_are_bounded_forgotten_by_shuffle_and_closed(tmp_path: Any, outputs: list[MapStatus]) -> None:
    before = open_fds()
    resolver = ShuffleBlockResolver(str(tmp_path), capacity=8)
    for status in outputs:  # 12 map outputs, 6 of each shuffle
        resolver.read(os.path.basename(status.data_path), 0, 0, None)
    assert resolver.open_files == 8 and open_fds() == before + 8  # data files; the indexes are in memory
    resolver.forget(1)  # the 6 of shuffle 1 were the most recent: 2 of shuffle 0 stay
    assert resolver.open_files == 2 and open_fds() == before + 2
    first = outputs[0]  # its files were closed past the capacity: they open again
    assert resolver.read(os.path.basename(first.data_path), 1, 0, None) == read_local_block(
        first.data_path, first.index_path, 1)
    resolver.close()
    assert resolver.open_files == 0 and open_fds() == before


def test_a_removed_shuffle_read_after_forget_is_an_error(tmp_path: Any, outputs: list[MapStatus]) -> None:
    resolver = ShuffleBlockResolver(str(tmp_path))
    status = outputs[-1]
    name = os.path.basename(status.data_path)
    want = read_local_block(status.data_path, status.index_path, 2)
    try:
        assert resolver.read(name, 2, 0, None) == want
        os.unlink(status.data_path)
        os.unlink(status.index_path)
        assert resolver.read(name, 2, 0, None) == want  # still open: the bytes as written
        resolver.forget(1)
        with pytest.raises(FileNotFoundError):
            resolver.read(name, 2, 0, None)
    finally:
        resolver.close()


@pytest.mark.parametrize("name, reducer, error, kept_open", [
    ("shuffle_9_9_9.data", 0, "No such file", 0),
    (None, 99, "no entry for reducer 99", 1),
    (None, -1, "bad reducer index", 0),  # refused before any file is opened
    (None, "0", "bad reducer index", 0),
])
def test_bad_requests_are_oserrors_naming_why(tmp_path: Any, outputs: list[MapStatus], name: Any, reducer: Any,
                                              error: str, kept_open: int) -> None:
    resolver = ShuffleBlockResolver(str(tmp_path))
    try:
        with pytest.raises(OSError, match=error):
            resolver.read(name or os.path.basename(outputs[0].data_path), reducer, 0, None)
        assert resolver.open_files == kept_open
    finally:
        resolver.close()


def test_a_data_file_shorter_than_its_index_is_an_error(tmp_path: Any, outputs: list[MapStatus]) -> None:
    status = outputs[0]
    with open(status.data_path, "r+b") as f:
        f.truncate(sum(status.sizes) - 1)
    resolver = ShuffleBlockResolver(str(tmp_path))
    try:
        resolver.read(os.path.basename(status.data_path), 0, 0, None)  # whole
        with pytest.raises(OSError, match="shorter than its index"):
            resolver.read(os.path.basename(status.data_path), REDUCERS - 1, 0, None)
    finally:
        resolver.close()
