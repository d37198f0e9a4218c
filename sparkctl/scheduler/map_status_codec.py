"""How a shuffle's map output statuses travel from the driver to an executor, and how a
reducer reads its column of them.

```
 encoded = MAGIC | header length | zlib(header) | zlib(group 0) | zlib(group 1) | ...
   header: each distinct (executor, host, port) once, each map's location and file names,
           the reducer count, the array types, the mergers, the group width and each
           group's length
   group g: the sizes of reducers g*width .. (g+1)*width-1 for every map, reducer by
           reducer (a column each), then their merged offsets the same way for every map
           output that pushed its slices
```
Every executor gets the whole of it, compressed, once per shuffle and epoch, as Spark's
executors get every MapStatus. A reducer reads one column: M sizes and M merged offsets.
Decoding the lot costs O(M x R) per executor, which made an executor of a 1,000 x 1,000
shuffle spend 30-40 ms on statuses to read 1,000 numbers of them. So the columns are
compressed in groups of about ``GROUP_BYTES`` and an executor inflates only the groups its
reducers fall in (``ShuffleStatuses.column``), the rest never. ``decode_statuses`` still
gives every status whole, for tools and tests.
"""
from __future__ import annotations

import pickle
import struct
import zlib
from array import array
from typing import Callable, Sequence

from sparkctl.storage.block_fetcher import ReducerColumn
from sparkctl.storage.shuffle import MapLocation, MapStatus

_MAGIC = b"MOS2"
_HEADER_LENGTH = struct.Struct("<I")
#: raw bytes of one group of columns (sizes and merged offsets): small enough that a
#: reducer inflates little beyond its own column (about 20 µs), large enough to compress
#: as the whole did (4 KB groups made a 100-worker shuffle's statuses 20% larger)
GROUP_BYTES = 16384

Location = tuple[str, str, int]


def _typecode(top: int, signed: bool = False) -> str:
    """The narrowest array type that holds values up to ``top`` (all >= 0, or >= -1 when
    ``signed``)."""
    if signed:
        return "b" if top < 1 << 7 else "h" if top < 1 << 15 else "i" if top < 1 << 31 else "q"
    return "B" if top < 1 << 8 else "H" if top < 1 << 16 else "I" if top < 1 << 32 else "Q"


def _planes(values: array[int]) -> bytes:
    """``values``' bytes, plane by plane: every value's lowest byte, then every value's next
    one, and so on. Sizes and offsets of one reducer are alike in their high bytes, which
    then lie together, where zlib finds them."""
    raw = values.tobytes()
    width = values.itemsize
    return raw if width == 1 else b"".join(raw[k::width] for k in range(width))


def _from_planes(typecode: str, data: bytes | memoryview) -> array[int]:
    """The array ``_planes`` laid out."""
    values = array(typecode)
    width = values.itemsize
    if width == 1:
        values.frombytes(data)
        return values
    n = len(data) // width
    raw = bytearray(len(data))
    for k in range(width):
        raw[k::width] = data[k * n:(k + 1) * n]
    values.frombytes(raw)
    return values


def _columns(rows: array[int], reducers: int) -> array[int]:
    """Row-major ``rows`` (one row of ``reducers`` values per map) as columns, one after
    another: reducer r's values are ``[r * maps, (r + 1) * maps)``."""
    out = array(rows.typecode)
    for r in range(reducers):
        out.extend(rows[r::reducers])
    return out


def encode_statuses(statuses: Sequence[MapStatus | None], mergers: Sequence[Location | None] = ()) -> bytes:
    """One shuffle's statuses, compact: each distinct (executor, host, port) once, and the
    sizes and merged offsets (push-based shuffle, -1 for a slice not merged) as columns of
    the narrowest type that holds them, zlib'd at level 1 in groups. Sizes stay exact: a
    reducer reads a remote slice up to its size. A missing status is a row of zero sizes;
    ``mergers`` is the shuffle's list, which every decoded status with merged offsets
    carries. (On 1,000 x 1,000 random sizes of 3-4 KB, zlib at level 1 gave a third of the
    pickled MapStatus list; lz4 was faster and 40% larger, level 6 no smaller.)"""
    locations: dict[Location, int] = {}
    where = array("i")
    data_paths: list[str] = []
    index_paths: list[str] = []
    sizes: list[int] = []
    merged: list[int] = []
    merged_rows = bytearray()
    reducers = max((len(s.sizes) for s in statuses if s is not None), default=0)
    for s in statuses:
        if s is None:
            where.append(-1)
            data_paths.append("")
            index_paths.append("")
            merged_rows.append(0)
            sizes.extend([0] * reducers)
            continue
        if len(s.sizes) != reducers:
            raise ValueError(f"map outputs disagree on the reducer count: {len(s.sizes)} and {reducers}")
        where.append(locations.setdefault((s.executor_id, s.host, s.port), len(locations)))
        data_paths.append(s.data_path)
        index_paths.append(s.index_path)
        sizes.extend(s.sizes)
        # merged offsets only for the map outputs that pushed: a row of -1 in every column
        # would break up what zlib finds in them
        if s.merged and mergers:
            if len(s.merged) != reducers:
                raise ValueError(f"a map output has {len(s.merged)} merged offsets for {reducers} reducers")
            merged_rows.append(1)
            merged.extend(s.merged)
        else:
            merged_rows.append(0)
    maps, pushed = len(statuses), sum(merged_rows)
    size_columns = _columns(array(_typecode(max(sizes, default=0)), sizes), reducers)
    merged_columns = _columns(array(_typecode(max(merged, default=0), signed=True), merged), reducers)
    width_bytes = maps * size_columns.itemsize + pushed * merged_columns.itemsize
    width = max(1, min(reducers, GROUP_BYTES // max(1, width_bytes)))
    groups = []
    for g0 in range(0, reducers, width):
        g1 = min(reducers, g0 + width)
        groups.append(zlib.compress(_planes(size_columns[g0 * maps:g1 * maps])
                                    + _planes(merged_columns[g0 * pushed:g1 * pushed]), 1))
    header = zlib.compress(pickle.dumps(
        (list(locations), where.tobytes(), data_paths, index_paths, reducers, size_columns.typecode,
         merged_columns.typecode if pushed else "", bytes(merged_rows), list(mergers) if pushed else [],
         width, [len(g) for g in groups]), 5), 1)
    return b"".join([_MAGIC, _HEADER_LENGTH.pack(len(header)), header, *groups])


class ShuffleStatuses:
    """One shuffle's encoded statuses as an executor's task slot holds them: the locations
    decoded at once, each group of columns inflated the first time a reducer in it asks."""

    __slots__ = ("data", "locations", "reducers", "mergers", "complete", "_rows", "_pushed", "_typecode",
                 "_merged_typecode", "_width", "_offsets", "_groups")

    def __init__(self, data: bytes) -> None:
        if data[:4] != _MAGIC:
            raise ValueError("not encoded map output statuses")
        (length,) = _HEADER_LENGTH.unpack_from(data, 4)
        start = 4 + _HEADER_LENGTH.size
        (locations, where_bytes, data_paths, index_paths, self.reducers, self._typecode, self._merged_typecode,
         self._rows, mergers, self._width, lengths) = pickle.loads(zlib.decompress(data[start:start + length]))
        self.data = data
        where = array("i")
        where.frombytes(where_bytes)
        hosts: list[Location] = [tuple(x) for x in locations]
        self.locations: list[MapLocation | None] = [
            None if loc < 0 else MapLocation(*hosts[loc], data_paths[i], index_paths[i])
            for i, loc in enumerate(where)]
        self.complete = -1 not in where
        self._pushed = [i for i, row in enumerate(self._rows) if row]  # map outputs with merged rows
        self.mergers: tuple[Location | None, ...] = tuple(tuple(m) if m is not None else None for m in mergers)
        self._offsets = [start + length]
        for n in lengths:
            self._offsets.append(self._offsets[-1] + n)
        if self._offsets[-1] != len(data):
            raise ValueError("encoded map output statuses of the wrong length")
        self._groups: dict[int, tuple[array[int], array[int] | None]] = {}

    def __len__(self) -> int:
        return len(self.locations)

    @property
    def groups(self) -> int:
        """How many groups of columns the statuses are compressed in."""
        return len(self._offsets) - 1

    @property
    def groups_inflated(self) -> int:
        """How many of them a reducer has read so far."""
        return len(self._groups)

    def _group(self, g: int) -> tuple[array[int], array[int] | None]:
        got = self._groups.get(g)
        if got is None:
            raw = memoryview(zlib.decompress(self.data[self._offsets[g]:self._offsets[g + 1]]))
            columns = min(self.reducers, (g + 1) * self._width) - g * self._width
            cut = columns * len(self.locations) * array(self._typecode).itemsize
            sizes = _from_planes(self._typecode, raw[:cut])
            merged = _from_planes(self._merged_typecode, raw[cut:]) if self._merged_typecode else None
            got = self._groups[g] = (sizes, merged)
        return got

    def column(self, reduce_index: int) -> ReducerColumn:
        """Reducer ``reduce_index``'s sizes and merged offsets, one per map index."""
        if not 0 <= reduce_index < self.reducers:
            raise IndexError(f"reducer {reduce_index} of a shuffle with {self.reducers} reducers")
        g, r = divmod(reduce_index, self._width)
        sizes, merged = self._group(g)
        maps, pushed = len(self.locations), len(self._pushed)
        offsets: Sequence[int] | None = None
        if merged is not None:
            offsets = merged[r * pushed:(r + 1) * pushed]
            if pushed < maps:  # -1 for the map outputs that pushed nothing
                full = array(merged.typecode, [-1]) * maps
                for i, offset in zip(self._pushed, offsets):
                    full[i] = offset
                offsets = full
        return ReducerColumn(self.locations, sizes[r * maps:(r + 1) * maps], offsets, self.mergers, self.reducers)

    def statuses(self, compact: bool = False) -> list[MapStatus | None]:
        """Every status whole (all groups inflated): sizes and merged offsets as tuples, or
        with ``compact`` as arrays."""
        maps, pushed = len(self.locations), len(self._pushed)
        rows: list[list[int]] = [[] for _ in range(maps)]
        merged_rows: list[list[int]] = [[] for _ in range(maps)]
        for g in range(self.groups):
            sizes, merged = self._group(g)
            for i in range(maps):
                rows[i].extend(sizes[i::maps])
            if merged is not None:
                for k, i in enumerate(self._pushed):
                    merged_rows[i].extend(merged[k::pushed])
        seq: Callable[[list[int]], Sequence[int]] = (lambda v: array("q", v)) if compact else tuple
        out: list[MapStatus | None] = []
        for i, loc in enumerate(self.locations):
            if loc is None:
                out.append(None)
            elif self._rows[i]:
                out.append(MapStatus(*loc, seq(rows[i]), seq(merged_rows[i]), self.mergers))
            else:
                out.append(MapStatus(*loc, seq(rows[i])))
        return out


def decode_statuses(data: bytes, compact: bool = False) -> list[MapStatus | None]:
    """The statuses ``encode_statuses`` encoded, whole (``ShuffleStatuses`` reads one
    reducer's column without inflating the rest)."""
    return ShuffleStatuses(data).statuses(compact)
