"""An executor's blocks: cached RDD partitions and indirect task results, serialized, in
memory under a limit with LRU eviction, or on its local disk, per each block's storage
level. Other processes read them through the executor's block server, whole or (for task
results larger than a frame) in chunks."""
from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict

from sparkctl.storagelevel import StorageLevel
from sparkctl.util.fsutil import private_makedirs

log = logging.getLogger("sparkctl.storage")


class BlockManager:
    def __init__(self, memory_limit: int, disk_dir: str) -> None:
        self.memory_limit = memory_limit
        self.disk_dir = disk_dir
        self.memory: OrderedDict[str, bytes] = OrderedDict()
        self.memory_used = 0
        self.disk: dict[str, str] = {}
        self.levels: dict[str, StorageLevel] = {}
        self.lock = threading.Lock()
        self.evictions = 0
        private_makedirs(disk_dir)

    def get(self, block_id: str) -> bytes | None:
        with self.lock:
            data = self.memory.get(block_id)
            if data is not None:
                self.memory.move_to_end(block_id)
                return data
            path = self.disk.get(block_id)
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def get_range(self, block_id: str, offset: int, length: int) -> bytes | None:
        """``length`` bytes of a block from ``offset`` (fewer at its end); None if it is gone.
        A block on disk is read only in that range, so a chunked fetch never loads it whole."""
        with self.lock:
            data = self.memory.get(block_id)
            path = self.disk.get(block_id) if data is None else None
        if data is not None:
            return data[offset:offset + length]
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                return f.read(length)
        except FileNotFoundError:
            return None

    def remove(self, block_id: str) -> None:
        with self.lock:
            self._remove_locked(block_id)

    def put(self, block_id: str, data: bytes, level: StorageLevel) -> bool:
        """Store a block; False if it fits nowhere its level allows (it is then recomputed)."""
        with self.lock:
            self._remove_locked(block_id)
            self.levels[block_id] = level
            if level.useMemory and len(data) <= self.memory_limit:
                while self.memory_used + len(data) > self.memory_limit and self.memory:
                    self._evict_one()
                self.memory[block_id] = data
                self.memory_used += len(data)
                return True
            if level.useDisk:
                self._write_disk(block_id, data)
                return True
            self.levels.pop(block_id, None)
            return False

    def _evict_one(self) -> None:
        victim, data = self.memory.popitem(last=False)
        self.memory_used -= len(data)
        self.evictions += 1
        level = self.levels.get(victim)
        if level is not None and level.useDisk:
            self._write_disk(victim, data)
        else:
            self.levels.pop(victim, None)
        log.debug("evicted block %s (%d bytes) from memory", victim, len(data))

    def _write_disk(self, block_id: str, data: bytes) -> None:
        path = os.path.join(self.disk_dir, block_id)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        self.disk[block_id] = path

    def _remove_locked(self, block_id: str) -> None:
        data = self.memory.pop(block_id, None)
        if data is not None:
            self.memory_used -= len(data)
        path = self.disk.pop(block_id, None)
        if path is not None:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self.levels.pop(block_id, None)

    def remove_rdd(self, rdd_id: int) -> int:
        prefix = f"rdd_{rdd_id}_"
        with self.lock:
            ids = [b for b in list(self.memory) + list(self.disk) if b.startswith(prefix)]
            for b in ids:
                self._remove_locked(b)
        return len(ids)

    def block_ids(self) -> list[str]:
        with self.lock:
            return sorted(set(self.memory) | set(self.disk))
