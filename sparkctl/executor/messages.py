"""Messages of the block server an executor runs for other executors (and the driver)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class FetchShuffleBlock:
    file_name: str  # the map output's data file name, inside the executor's local dir
    reduce_index: int


@dataclass(slots=True)
class FetchCachedBlock:
    block_id: str


@dataclass(slots=True)
class BlockData:
    data: bytes | None
    error: str = ""
