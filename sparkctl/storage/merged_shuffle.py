"""Push-based shuffle: map tasks push small slices to a few mergers, reducers read them there.

A pull shuffle of M map tasks on M executors into R reducers costs R x (M - 1) remote
requests, each a wake-up of another process and, the first time, a connection with its
handshake: on a hundred one-core workers that is 9,900 of each, and they, not the
records, are what a wide shuffle's time goes to. Spark's push-based shuffle (SPARK-30602)
adds mergers: each map task pushes its slices to the merger that owns their reducer, and
a reducer reads the slices of every map task from one merger. With K mergers, each owning
R / K contiguous reducers, a map task's pushes to one merger go as one message, so a
shuffle costs M x K pushes and about R reads, and each executor connects to K mergers.

```
 map task m: commit ─▶ slices of reducers owned by merger j ─ PushShuffleBlocks ─▶ merger j's block server
                       (each <= spark.shuffle.push.maxBlockSizeToPush,             appends each slice to
                        batches <= spark.shuffle.push.maxBlockBatchSize)            shuffle_S_merged_R.data,
             MapStatus(..., merged=offset of each slice in its merged file) ◀──── answers the offsets
 reducer r: slices of m where merged[r] >= 0 ─ one FetchShuffleBlocks of ranges ─▶ merger of r
            the others (not pushed, merger lost)  ─ as a pull shuffle reads them ─▶ the map outputs
```
What differs from Spark's, and why:
- A map task waits for its pushes' answers (at most ``PUSH_TIMEOUT``) and reports where
  its slices were merged in its own MapStatus. Spark pushes in the background and the
  driver finalizes each merger's partitions before the reduce stage; here nothing needs
  finalizing, a merged file is only appended to, and a reducer reads from it exactly the
  ranges of the map outputs the driver registered (a failed or speculative attempt's
  pushes are never read). Records reach the reducer in map order, as a pull reads them.
- Mergers are executors (their block servers), not an external shuffle service. When a
  merger is lost the driver stops naming it, and a reducer whose read from a merger fails
  reads those slices from the map outputs instead.
- A merger holds its merged files in memory up to a budget (``MergedShuffleFiles``),
  where Spark's write every block to disk as it comes: a wide shuffle's slices are small,
  and a file per reducer and a write per slice were most of a merger's work.
- ``choose_mergers`` takes the fewest mergers Spark would accept for the stage
  (``spark.shuffle.push.mergersMinStaticThreshold`` and ``mergersMinThresholdRatio``),
  not the most: the messages of a shuffle grow with M x K.
- So that K mergers on H hosts take no more bytes than one executor could serve, a map
  task pushes only slices of at most ``maxBlockSizeToPush x K / H`` (``push_block_limit``):
  a wide shuffle of small slices is all pushed, one of large slices is mostly pulled.
"""
from __future__ import annotations

import math
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

from sparkctl.storage.shuffle_block_resolver import pread_exactly

__all__ = ["MERGED_IN_MEMORY", "MergedShuffleFiles", "PushConfig", "choose_mergers", "merged_name", "merger_of",
           "owned_reducers", "parse_merged_name", "push_block_limit"]

#: merged files kept open by a merger (each shuffle has one per reducer it owns)
OPEN_MERGED_FILES = 256
#: the most bytes of merged files a merger holds in memory (an executor holds at most a
#: sixteenth of its memory), before it writes the least recently appended ones to disk
MERGED_IN_MEMORY = 32 << 20
#: how long a map task waits for its pushes' answers before it reports those slices unmerged
PUSH_TIMEOUT = 10.0
#: the largest shuffle id or reducer a merged file's name carries (18 digits)
MAX_ID = 10 ** 18 - 1
_NAME = re.compile(r"shuffle_(0|[1-9][0-9]{0,17})_merged_(0|[1-9][0-9]{0,17})\.data")

Location = tuple[str, str, int]  # (executor id, host, block server port)


@dataclass(frozen=True)
class PushConfig:
    """The application's push-based shuffle settings (``spark.shuffle.push.*``)."""

    enabled: bool = True
    max_block: int = 1 << 20  # spark.shuffle.push.maxBlockSizeToPush: larger slices are read from the map
    max_batch: int = 3 << 20  # spark.shuffle.push.maxBlockBatchSize: the most bytes of one push
    min_static: int = 5  # spark.shuffle.push.mergersMinStaticThreshold
    min_ratio: float = 0.05  # spark.shuffle.push.mergersMinThresholdRatio


def merged_name(shuffle_id: int, reduce_index: int) -> str:
    """The merged file of one reducer, in its merger's local dir (removed with the shuffle:
    it matches ``shuffle_{id}_*``)."""
    return f"shuffle_{shuffle_id}_merged_{reduce_index}.data"


def parse_merged_name(name: object) -> tuple[int, int] | None:
    """``(shuffle id, reducer)`` of a merged file's bare name, else None."""
    if not isinstance(name, str):
        return None
    match = _NAME.fullmatch(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def merger_of(reduce_index: int, reducers: int, mergers: int) -> int:
    """The merger that owns ``reduce_index``: each owns a contiguous run of reducers."""
    return reduce_index * mergers // reducers


def owned_reducers(merger: int, reducers: int, mergers: int) -> range:
    """The reducers merger ``merger`` owns (the inverse of ``merger_of``)."""
    return range(-(-merger * reducers // mergers), -(-(merger + 1) * reducers // mergers))


def choose_mergers(executors: Sequence[Location], reducers: int, tasks_per_executor: int,
                   min_static: int = 5, min_ratio: float = 0.05) -> tuple[Location, ...]:
    """The mergers of a shuffle with ``reducers`` reducers, one executor per host, spread
    over the hosts in order; () when push-based shuffle does not pay or cannot run.

    As Spark: the mergers wanted are one per ``tasks_per_executor`` reducers, at most one
    per host, and the stage takes push-based shuffle only when at least
    ``max(min_static, ceil(wanted x min_ratio))`` hosts are there; that least number is
    what it takes (see the module), and never more mergers than reducers."""
    by_host: dict[str, Location] = {}
    for loc in sorted(executors):
        by_host.setdefault(loc[1], loc)
    hosts = list(by_host.values())
    wanted = min(max(1, math.ceil(reducers / max(1, tasks_per_executor))), len(hosts))
    needed = max(min_static, math.ceil(wanted * min_ratio), 1)
    if len(hosts) < needed or reducers < needed:
        return ()
    step = len(hosts) / needed
    return tuple(hosts[int(i * step)] for i in range(needed))


def push_block_limit(max_block: int, mergers: int, hosts: int) -> int:
    """The largest slice a map task pushes to one of ``mergers`` mergers when the
    executors are on ``hosts`` hosts: ``max_block`` (``spark.shuffle.push.maxBlockSizeToPush``)
    scaled by ``mergers / hosts`` when there are more hosts than mergers.

    A merger takes the pushed slices of every map task for ``1 / mergers`` of the reducers,
    at most ``M x R / mergers`` slices of this limit, which is ``M x R x max_block / hosts``:
    no more than one executor's map outputs could hold, at the most, in a pull shuffle of
    slices up to ``max_block``. Spark keeps a merger's share near one executor's by taking
    a merger on every host; here the mergers stay few (a shuffle's pushes grow with
    M x K, see the module) and the larger slices are read from the map outputs instead."""
    if hosts <= mergers:
        return max_block
    return max(1, max_block * mergers // hosts)


class MergedShuffleFiles:
    """A merger's merged files (Spark's RemoteBlockPushResolver): slices pushed for a
    reducer are appended to its file, and read back by the ranges reducers ask for. Used
    by one thread, the block server's loop. Files are created private (0600).

    A merged file is held in memory until the merger's held bytes pass ``memory``; then
    the least recently appended files are written out whole, and are appended to on disk
    from then on. A wide shuffle of small slices (what pushing is for) then costs no file
    and no system call per slice: at 100 reducers a merger would otherwise create 20 files
    a shuffle and write 2,000 slices of about 170 bytes one by one. A file that cannot be
    written out (a full disk) is dropped: reading it, or appending to it, raises OSError,
    and reducers read those slices from the map outputs."""

    def __init__(self, local_dir: str, capacity: int = OPEN_MERGED_FILES, memory: int = MERGED_IN_MEMORY) -> None:
        self.local_dir = local_dir
        self.capacity = max(1, capacity)
        self.memory = max(0, memory)
        self._open: OrderedDict[str, list[int]] = OrderedDict()  # name -> [fd, size]
        self._held: OrderedDict[str, bytearray] = OrderedDict()  # name -> its bytes, least recently appended first
        self.held_bytes = 0
        self._written: set[str] = set()  # names whose bytes are on disk
        self._lost: dict[str, str] = {}  # name -> why it could not be written out
        self.bytes_merged = 0
        self.slices_merged = 0

    def _file(self, name: str, create: bool) -> list[int]:
        entry = self._open.get(name)
        if entry is not None:
            self._open.move_to_end(name)
            return entry
        flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
        fd = os.open(os.path.join(self.local_dir, name), flags, 0o600)
        entry = self._open[name] = [fd, os.fstat(fd).st_size]
        while len(self._open) > self.capacity:
            _close(self._open.popitem(last=False)[1][0])
        return entry

    def append(self, shuffle_id: int, reduce_index: int, data: bytes | memoryview) -> int:
        """Append one pushed slice to its reducer's merged file; returns where it starts."""
        name = merged_name(shuffle_id, reduce_index)
        size = len(data)
        held = self._held.get(name)
        if held is None and name not in self._written:
            if name in self._lost:
                raise OSError(f"{name} was lost: {self._lost[name]}")
            if size <= self.memory:
                held = self._held[name] = bytearray()
        if held is not None:
            at = len(held)
            held += data
            self._held.move_to_end(name)
            self.held_bytes += size
            self.bytes_merged += size
            self.slices_merged += 1
            if self.held_bytes > self.memory:
                self._write_out()
            return at
        entry = self._file(name, True)
        self._written.add(name)
        fd, at = entry
        written = _pwrite_all(fd, data, at)
        entry[1] = at + written
        self.bytes_merged += written
        self.slices_merged += 1
        return at

    def _write_out(self) -> None:
        """Write the least recently appended held files to disk until the held bytes fit."""
        while self.held_bytes > self.memory and self._held:
            name, held = self._held.popitem(last=False)
            self.held_bytes -= len(held)
            try:
                entry = self._file(name, True)
                entry[1] = _pwrite_all(entry[0], held, 0)
            except OSError as e:
                if name in self._open:  # created, but not all written: never read
                    _close(self._open.pop(name)[0])
                self._lost[name] = f"{type(e).__name__}: {e}"
            else:
                self._written.add(name)

    def read(self, name: str, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` of the merged file ``name`` (a bare name, checked
        by ``parse_merged_name``); OSError when they are not all there."""
        if not (isinstance(offset, int) and isinstance(length, int) and offset >= 0 and length >= 0):
            raise OSError(f"bad range of {name}: offset {offset!r}, length {length!r}")
        held = self._held.get(name)
        if held is not None:
            if offset + length > len(held):
                raise OSError(f"{name} holds {len(held)} bytes, not {offset}..{offset + length}")
            with memoryview(held) as view:
                return bytes(view[offset:offset + length])
        if name in self._lost:
            raise OSError(f"{name} was lost: {self._lost[name]}")
        fd, size = self._file(name, False)
        if offset + length > size:
            raise OSError(f"{name} holds {size} bytes, not {offset}..{offset + length}")
        data = pread_exactly(fd, length, offset)
        if len(data) != length:
            raise OSError(f"{name} is shorter than the range asked ({offset}..{offset + length})")
        return data

    def forget(self, shuffle_id: int) -> None:
        """Drop what shuffle ``shuffle_id`` holds in memory and close its merged files (the
        executor deletes them)."""
        prefix = f"shuffle_{shuffle_id}_merged_"
        for name in [n for n in self._held if n.startswith(prefix)]:
            self.held_bytes -= len(self._held.pop(name))
        for name in [n for n in self._open if n.startswith(prefix)]:
            _close(self._open.pop(name)[0])
        self._written = {n for n in self._written if not n.startswith(prefix)}
        for name in [n for n in self._lost if n.startswith(prefix)]:
            del self._lost[name]

    def close(self) -> None:
        self._held.clear()
        self.held_bytes = 0
        while self._open:
            _close(self._open.popitem()[1][0])


def _pwrite_all(fd: int, data: bytes | bytearray | memoryview, at: int) -> int:
    """Write all of ``data`` at ``at``; returns its length."""
    with memoryview(data) as view:
        written = 0
        while written < len(view):
            written += os.pwrite(fd, view[written:], at + written)
    return written


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
