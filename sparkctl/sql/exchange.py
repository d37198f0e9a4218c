"""Exchanges: cutting Arrow tables into partitions by a hash of key columns, the same way
in every map task, so equal keys meet in one reduce task.

The hash is computed a whole column at a time with numpy: integers, dates and timestamps
by their 64-bit value, floats by their bits (``-0.0`` as ``0.0``, one NaN), strings and
binaries by a polynomial over their bytes (computed over the column's data buffer with
cumulative sums, normalised by each value's start, so equal values hash alike wherever
they sit), NULL as a constant. Columns are combined and mixed (splitmix64's finaliser).

``shuffle`` is the exchange itself: the RDD shuffle, with the dependency's serializer set
so map tasks write Arrow IPC streams (``arrow_serde``) and reduce tasks read back tables.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_M = np.uint64(0x100000001B3)  # an odd multiplier: invertible modulo 2**64
_M_INV = np.uint64(pow(0x100000001B3, -1, 2**64))
_NULL = np.uint64(0x9E3779B97F4A7C15)


def _mix(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def _powers(base: np.uint64, n: int) -> np.ndarray:
    out = np.empty(n, dtype=np.uint64)
    if n:
        out[0] = 1
        out[1:] = base
        np.cumprod(out, out=out)
    return out


def _string_hash(arr: pa.Array) -> np.ndarray:
    offsets: np.ndarray
    if pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type):
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset:arr.offset + len(arr) + 1]
    else:
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset:arr.offset + len(arr) + 1]
    offsets = offsets.astype(np.int64)
    data_buf = arr.buffers()[2]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    lo, hi = int(offsets[0]), int(offsets[-1])
    data = data[lo:hi].astype(np.uint64)
    starts, ends = offsets[:-1] - lo, offsets[1:] - lo
    weighted = (data + np.uint64(1)) * _powers(_M, len(data))
    csum = np.concatenate(([np.uint64(0)], np.cumsum(weighted, dtype=np.uint64)))
    seg = csum[ends] - csum[starts]
    h = seg * _powers(_M_INV, len(data) + 1)[starts] + (ends - starts).astype(np.uint64)
    return h


def column_hash(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        h = _string_hash(arr)
    elif pa.types.is_floating(t):
        values = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
        values = np.where(values == 0.0, 0.0, values)
        values = np.where(np.isnan(values), np.nan, values)
        h = values.view(np.uint64).copy()
    elif pa.types.is_boolean(t):
        h = np.asarray(arr.fill_null(False).to_numpy(zero_copy_only=False), dtype=np.uint64)
    elif pa.types.is_decimal(t):
        h = _string_hash(pc.cast(arr, pa.string()))
    elif pa.types.is_null(t):
        h = np.zeros(len(arr), dtype=np.uint64)
    elif pa.types.is_integer(t) or pa.types.is_date(t) or pa.types.is_timestamp(t):
        if pa.types.is_date32(t):
            arr = pc.cast(arr, pa.int32())  # days; pyarrow casts a date to int32 only
        elif pa.types.is_date64(t) or pa.types.is_timestamp(t):
            arr = arr.view(pa.int64())
        h = pc.cast(arr.fill_null(0) if arr.null_count else arr, pa.int64()).to_numpy(zero_copy_only=False) \
            .astype(np.int64).view(np.uint64).copy()
    else:  # nested: by their text
        h = _string_hash(pa.array([None if v is None else repr(v) for v in arr.to_pylist()], pa.string()))
    if arr.null_count:
        valid = arr.is_valid().to_numpy(zero_copy_only=False)
        h = np.where(valid, h, _NULL)
    return h


def partition_ids(table: pa.Table, keys: list[str], n: int, seed: int = 0) -> np.ndarray:
    """Each row's reduce partition in [0, n). Another *seed* gives an independent hash (a
    spill cuts one exchange partition's rows again, see ``spill.py``)."""
    start = _mix(np.array([(0x2545F4914F6CDD1D + seed * 0x9E3779B97F4A7C15) % 2**64], dtype=np.uint64))[0] \
        if seed else np.uint64(0x2545F4914F6CDD1D)
    h = np.full(table.num_rows, start, dtype=np.uint64)
    for k in keys:
        h = _mix(h * np.uint64(31) + column_hash(table.column(k)))
    return (h % np.uint64(n)).astype(np.int64)


def split_by(table: pa.Table, ids: np.ndarray, n: int) -> Iterator[tuple[int, pa.Table]]:
    """(partition, rows of *table* going there) for every partition that gets rows."""
    if table.num_rows == 0:
        return
    order = np.argsort(ids, kind="stable")
    counts = np.bincount(ids, minlength=n)
    ordered = table.take(pa.array(order))
    pos = 0
    for p in range(n):
        c = int(counts[p])
        if c:
            yield p, ordered.slice(pos, c)
            pos += c


def hash_split(tables: Iterator[pa.Table], keys: list[str], n: int) -> Iterator[tuple[int, pa.Table]]:
    for t in tables:
        if t.num_rows:
            yield from split_by(t, partition_ids(t, keys, n), n)


def _identity(key: int) -> int:
    return key


def shuffle(pairs: Any, n: int) -> Any:
    """The RDD shuffle of ``(partition, table)`` (or ``(partition, (tag, table))``) records
    into *n* partitions, moved as Arrow IPC; a reduce task's records are the tables (or
    ``(tag, table)``) without their partition."""
    from sparkctl.rdd.dependencies import Partitioner
    from sparkctl.rdd.shuffled import ShuffledRDD
    from sparkctl.sql.arrow_serde import ARROW_SERIALIZER
    rdd = ShuffledRDD(pairs, Partitioner(n, _identity))
    rdd.dep.serializer = ARROW_SERIALIZER
    return rdd


def count_rows_read(tables: list[pa.Table]) -> None:
    """The shuffle's reader counts a record per IPC stream; Spark counts rows."""
    from sparkctl.executor import task_metrics
    task_metrics.current().shuffle_records_read += sum(t.num_rows for t in tables) - len(tables)


def counted(records: Iterator[Any]) -> Iterator[Any]:
    """A reduce task's tables (or ``(tag, table)``) as they arrive, rows counted as read."""
    from sparkctl.executor import task_metrics
    metrics = task_metrics.current()
    for r in records:
        metrics.shuffle_records_read += (r[1] if isinstance(r, tuple) else r).num_rows - 1
        yield r
