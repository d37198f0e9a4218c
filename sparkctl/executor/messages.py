"""Messages of the block server an executor runs for other executors (and the driver)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class FetchShuffleBlock:
    file_name: str  # the map output's data file name, inside the executor's local dir
    reduce_index: int
    offset: int = 0  # a range of the reducer's slice: reducers fetch large slices in chunks
    length: int | None = None  # None: to the slice's end


@dataclass(slots=True)
class FetchShuffleBlocks:
    """A reducer's ranges of several map outputs on one executor, in one request; the
    answer is their bytes one after the other."""

    reduce_index: int
    ranges: list[tuple[str, int, int]]  # (data file name, offset in the slice, length)


@dataclass(slots=True)
class PushShuffleBlocks:
    """A map task's slices for some of the reducers this executor merges (push-based
    shuffle, ``sparkctl.storage.merged_shuffle``): ``data`` is the slices one after the
    other, ``sizes[i]`` bytes of them for reducer ``reduce_indices[i]``. The answer's data
    is where each slice starts in its merged file, as little-endian int64s."""

    shuffle_id: int
    map_index: int
    reduce_indices: list[int]
    sizes: list[int]
    data: bytes


@dataclass(slots=True)
class FetchCachedBlock:
    block_id: str


@dataclass(slots=True)
class FetchBlockChunk:
    """Part of a block: the driver reads an indirect task result this way, each chunk well
    under the frame limit."""

    block_id: str
    offset: int
    length: int


@dataclass(slots=True)
class BlockData:
    data: bytes | None
    error: str = ""
