"""Map output files held open for a block server, as Spark's IndexShuffleBlockResolver
resolves a block to a segment of its data file.

A reducer's request names map output files of this executor and ranges of its slice in
each. Opening a data file and its index for every range costs four system calls and two
path lookups before the two reads; on a wide cluster every map output is asked for by
every reducer, so the data files of the most recently asked map outputs stay open here,
their indexes stay in memory (as Spark's shuffle index cache), and a range costs one
``pread``. An index larger than ``CACHED_INDEX`` bytes (a map output with more than 8,191
reducers) stays open instead, and is read an entry at a time.

A committed map output never changes: its name carries the task attempt that wrote it,
and a retry writes other files. So an open file is never stale; when the driver removes
a shuffle, ``forget`` closes its files (a removed file's space is only freed once no
descriptor refers to it).

```
 FetchShuffleBlocks (name, offset, length)... ─▶ read(name, reducer, offset, length)
     name known ─▶ index[reducer], index[reducer + 1] from memory ─▶ pread the data range
     else       ─▶ read name.index, open name.data (least recently used closed past capacity)
```
"""
from __future__ import annotations

import os
import struct
from collections import OrderedDict

__all__ = ["ShuffleBlockResolver", "check_range", "pread_exactly", "slice_range"]

_TWO_OFFSETS = struct.Struct("<QQ")
#: map outputs whose data files stay open (and indexes in memory)
OPEN_MAP_OUTPUTS = 128
#: the largest index kept in memory: larger ones stay open, a second descriptor each
CACHED_INDEX = 64 << 10


def pread_exactly(fd: int, length: int, offset: int) -> bytes:
    """``length`` bytes at ``offset`` of the open file ``fd``, fewer only at its end."""
    data = os.pread(fd, length, offset)
    if len(data) < length and data:  # a short read of a regular file: ask for the rest
        parts = [data]
        got = len(data)
        while got < length:
            more = os.pread(fd, length - got, offset + got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        data = b"".join(parts)
    return data


def check_range(reduce_index: object, offset: object = 0, length: object = None) -> None:
    """OSError naming what is wrong with a requested range of a reducer's slice: a reducer
    index and offset that are not non-negative ints, a length neither None nor one."""
    if not isinstance(reduce_index, int) or reduce_index < 0:
        raise OSError(f"bad reducer index {reduce_index!r}")
    if not isinstance(offset, int) or offset < 0 or not (length is None or isinstance(length, int) and length >= 0):
        raise OSError(f"bad range of a shuffle block: offset {offset!r}, length {length!r}")


def slice_range(index_entry: bytes, where: str, reduce_index: int, offset: int,
                length: int | None) -> tuple[int, int]:
    """``(file position, bytes)`` of ``offset``..``offset + length`` of reducer
    ``reduce_index``'s slice, from its 16-byte index entry (to the slice's end when
    ``length`` is None); OSError names ``where`` when the entry is missing."""
    if len(index_entry) < 16:
        raise OSError(f"index {where} has no entry for reducer {reduce_index}")
    start, end = _TWO_OFFSETS.unpack(index_entry)
    size = end - start
    want = max(0, size - offset) if length is None else max(0, min(length, size - offset))
    return start + offset, want


class ShuffleBlockResolver:
    """Ranges of map output slices by data file name, from files kept open (see the module).
    Used by one thread, the block server's loop."""

    def __init__(self, local_dir: str, capacity: int = OPEN_MAP_OUTPUTS) -> None:
        self.local_dir = local_dir
        self.capacity = max(1, capacity)
        # data name -> (data fd, its index's bytes, or the open index's fd when it is large)
        self._open: OrderedDict[str, tuple[int, bytes | int]] = OrderedDict()

    def read(self, data_name: str, reduce_index: int, offset: int, length: int | None) -> bytes:
        """``length`` bytes from ``offset`` of reducer ``reduce_index``'s slice of the map
        output whose data file is ``data_name`` (a bare name in the local directory,
        checked by the caller; to the slice's end when ``length`` is None); OSError when
        the files or the range are not there."""
        check_range(reduce_index, offset, length)  # before any file is opened
        entry = self._open.get(data_name)
        if entry is None:
            entry = self._open_files(data_name)
        else:
            self._open.move_to_end(data_name)
        data_fd, index = entry
        at = reduce_index * 8
        index_entry = index[at:at + 16] if isinstance(index, bytes) else pread_exactly(index, 16, at)
        position, want = slice_range(index_entry, data_name[:-5] + ".index", reduce_index, offset, length)
        data = pread_exactly(data_fd, want, position) if want else b""
        if len(data) != want:
            raise OSError(f"{data_name} is shorter than its index says")
        return data

    def _open_files(self, data_name: str) -> tuple[int, bytes | int]:
        path = os.path.join(self.local_dir, data_name)
        index_fd = os.open(path[:-5] + ".index", os.O_RDONLY | os.O_CLOEXEC)
        index: bytes | int = index_fd
        try:
            size = os.fstat(index_fd).st_size
            if size <= CACHED_INDEX:
                index = pread_exactly(index_fd, size, 0)
            data_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except BaseException:
            os.close(index_fd)
            raise
        if isinstance(index, bytes):
            os.close(index_fd)
        self._open[data_name] = entry = (data_fd, index)
        while len(self._open) > self.capacity:
            self._close(*self._open.popitem(last=False)[1])
        return entry

    def forget(self, shuffle_id: int) -> None:
        """Close the files of shuffle ``shuffle_id``'s map outputs."""
        prefix = f"shuffle_{shuffle_id}_"
        for name in [n for n in self._open if n.startswith(prefix)]:
            self._close(*self._open.pop(name))

    def close(self) -> None:
        while self._open:
            self._close(*self._open.popitem()[1])

    @property
    def open_files(self) -> int:
        return sum(1 if type(index) is bytes else 2 for _, index in self._open.values())

    @staticmethod
    def _close(data_fd: int, index: bytes | int) -> None:
        for fd in (data_fd, index):
            if type(fd) is int:
                try:
                    os.close(fd)
                except OSError:
                    pass
