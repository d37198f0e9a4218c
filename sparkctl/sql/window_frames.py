"""Window frames: ``rowsBetween`` / ``rangeBetween`` with any bounds, and the aggregates
computed over them.

Rows arrive sorted by (partition keys, order keys). A frame becomes two index arrays, the
first row of each row's frame and one past its last; every aggregate is then computed for
all rows at once from them:

- ``sum``, ``count``, ``avg``, ``stddev``/``variance``: differences of cumulative sums;
- ``min``/``max``: over the values' ranks, a running accumulate when frames start at the
  partition's start, a reduce per partition for whole partitions, a sparse table (range
  minimum queries in O(1) after O(n log n)) for sliding frames;
- ``first``/``last``/``nth_value``: index arithmetic, with next/previous non-null indices
  for ``ignorenulls``.

A RANGE frame with offsets searches the (single, numeric or date) order key inside each
partition with numpy's ``searchsorted``.
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.errors import AnalysisException, NotSupportedError
from sparkctl.sql.expressions import _coerce, as_array

UNBOUNDED_PRECEDING = -(1 << 63)
UNBOUNDED_FOLLOWING = (1 << 63) - 1
CURRENT_ROW = 0


def bound_sql(value: int) -> str:
    if value == UNBOUNDED_PRECEDING:
        return "UNBOUNDED PRECEDING"
    if value == UNBOUNDED_FOLLOWING:
        return "UNBOUNDED FOLLOWING"
    if value == CURRENT_ROW:
        return "CURRENT ROW"
    return f"{value} FOLLOWING"  # Spark prints an API offset as a signed FOLLOWING


def frame_sql(frame: tuple[str, int, int]) -> str:
    kind, lo, hi = frame
    return f"{kind.upper()} BETWEEN {bound_sql(lo)} AND {bound_sql(hi)}"


def normal_bound(value: int) -> int:
    """As PySpark: a bound at or past the largest magnitude of a long is unbounded."""
    if value <= UNBOUNDED_PRECEDING + 1:
        return UNBOUNDED_PRECEDING
    if value >= UNBOUNDED_FOLLOWING:
        return UNBOUNDED_FOLLOWING
    return value


class Partitions:
    """Where each row's partition starts and ends, and its peer group (equal order keys)."""

    def __init__(self, gid: np.ndarray, gstart_idx: np.ndarray, peer_start: np.ndarray) -> None:
        n = len(gid)
        self.n = n
        self.gid = gid
        self.gstart_idx = gstart_idx
        sizes = np.bincount(gid, minlength=len(gstart_idx)) if n else np.zeros(0, np.int64)
        self.start = gstart_idx[gid] if n else np.zeros(0, np.int64)
        self.end = self.start + sizes[gid] if n else np.zeros(0, np.int64)
        starts = np.flatnonzero(peer_start)
        peer_id = np.cumsum(peer_start) - 1
        self.peer_first = starts[peer_id] if n else np.zeros(0, np.int64)
        self.peer_stop = np.append(starts[1:], n)[peer_id] if n else np.zeros(0, np.int64)


def frame_bounds(w: Any, table: pa.Table, parts: Partitions) -> tuple[np.ndarray, np.ndarray]:
    """(first row, one past the last row) of every row's frame."""
    n = parts.n
    idx = np.arange(n)
    frame = w.frame
    if frame is None:
        frame = ("range", UNBOUNDED_PRECEDING, CURRENT_ROW) if w.orders else \
            ("rows", UNBOUNDED_PRECEDING, UNBOUNDED_FOLLOWING)
    kind, lo, hi = frame
    if kind == "rows":
        start = parts.start if lo == UNBOUNDED_PRECEDING else np.clip(idx + lo, parts.start, parts.end)
        end = parts.end if hi == UNBOUNDED_FOLLOWING else np.clip(idx + hi + 1, parts.start, parts.end)
        return start, np.maximum(end, start)
    offsets = [b for b in (lo, hi) if b not in (UNBOUNDED_PRECEDING, UNBOUNDED_FOLLOWING, CURRENT_ROW)]
    values = _range_key(w, table) if offsets else None
    start = _range_side(lo, parts, values, w, "left")
    end = _range_side(hi, parts, values, w, "right")
    return start, np.maximum(end, start)


def _range_key(w: Any, table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    if len(w.orders) != 1:
        raise AnalysisException("[DATATYPE_MISMATCH.RANGE_FRAME_MULTI_ORDER] A range window frame with value "
                                "boundaries cannot be used in a window specification with multiple order by "
                                "expressions.", error_class="DATATYPE_MISMATCH.RANGE_FRAME_MULTI_ORDER")
    order = w.orders[0]
    value = as_array(order.child.eval(table), table.num_rows)
    t = value.type
    if pa.types.is_date(t):
        value = pc.cast(value, pa.int32())
    elif not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
        raise AnalysisException(f"[DATATYPE_MISMATCH.RANGE_FRAME_INVALID_TYPE] The data type of the order by "
                                f"expression {order.child.sql()} is not supported by a range frame with value "
                                f"boundaries.", error_class="DATATYPE_MISMATCH.RANGE_FRAME_INVALID_TYPE")
    null = value.is_null().to_numpy(zero_copy_only=False) if not isinstance(value, pa.ChunkedArray) else \
        value.combine_chunks().is_null().to_numpy(zero_copy_only=False)
    numbers = pc.fill_null(pc.cast(value, pa.float64()), 0).to_numpy(zero_copy_only=False)
    # a descending order counts offsets the other way: search the negated keys
    return (numbers if order.ascending else -numbers), null


def _range_side(bound: int, parts: Partitions, key: Any, w: Any, side: Literal["left", "right"]) -> np.ndarray:
    if bound == UNBOUNDED_PRECEDING:
        return parts.start.copy()
    if bound == UNBOUNDED_FOLLOWING:
        return parts.end.copy()
    if bound == CURRENT_ROW:
        return (parts.peer_first if side == "left" else parts.peer_stop).copy()
    values, null = key
    out = (parts.peer_first if side == "left" else parts.peer_stop).copy()  # NULL keys: their peers
    for g0 in parts.gstart_idx:
        g1 = parts.end[g0]
        seg_null = null[g0:g1]
        ok = np.flatnonzero(~seg_null)
        if not len(ok):
            continue
        lo_i, hi_i = g0 + ok[0], g0 + ok[-1] + 1  # non-null keys are contiguous within a partition
        segment = values[lo_i:hi_i]
        found = np.searchsorted(segment, segment + bound, side=side)
        out[lo_i:hi_i] = lo_i + found
    return out


# ---------------------------------------------------------------------------- aggregates
def _cumulative(values: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros(1, dtype=values.dtype), np.cumsum(values)])


def _frame_sum(values: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    c = _cumulative(values)
    return c[end] - c[start]


def _numbers(values: Any, dtype: pa.DataType) -> np.ndarray:
    if pa.types.is_integer(dtype):
        return pc.fill_null(pc.cast(values, pa.int64()), 0).to_numpy(zero_copy_only=False)
    return pc.fill_null(pc.cast(values, pa.float64()), 0).to_numpy(zero_copy_only=False)


def aggregate_over_frame(f: Any, values: Any, start: np.ndarray, end: np.ndarray, parts: Partitions) -> pa.Array:
    name = f.name
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    valid = values.is_valid().to_numpy(zero_copy_only=False) if len(values) else np.zeros(0, bool)
    counts = _frame_sum(valid.astype(np.int64), start, end)
    if f.distinct:
        raise NotSupportedError(f"sparkctl does not compute {f.sql()} (DISTINCT) over a window yet")
    if name == "count":
        return pa.array(counts.astype(np.int64))
    if name in ("sum", "avg"):
        t = values.type
        if pa.types.is_decimal(t):
            return _decimal_sum_or_avg(f, values, start, end, counts)
        sums = _frame_sum(_numbers(values, t), start, end)
        if name == "avg":
            return pa.array(sums / np.maximum(counts, 1), mask=counts == 0)
        out = pa.array(sums, mask=counts == 0)
        return _coerce(out, out.type, f.dtype) if out.type != f.dtype else out
    if name in ("stddev", "stddev_samp", "stddev_pop", "variance", "var_samp", "var_pop"):
        x = _numbers(values, pa.float64())
        s1, s2 = _frame_sum(x, start, end), _frame_sum(x * x, start, end)
        cnt = counts.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            m2 = np.maximum(s2 - s1 * s1 / np.maximum(cnt, 1), 0.0)
            population = name in ("stddev_pop", "var_pop")
            var = m2 / (cnt if population else cnt - 1)
        out = np.sqrt(var) if name.startswith("stddev") else var
        return pa.array(out, mask=counts == 0 if population else counts <= 1)
    if name in ("min", "max"):
        return _extreme(values, valid, start, end, parts, name)
    if name in ("first", "last", "any_value"):
        return _first_last(values, valid, start, end, "last" if name == "last" else "first", f.ignore_nulls)
    raise NotSupportedError(f"sparkctl does not compute {f.sql()} over a window yet")


def _decimal_sum_or_avg(f: Any, values: pa.Array, start: np.ndarray, end: np.ndarray,
                        counts: np.ndarray) -> pa.Array:
    """Decimal sums exactly, as cumulative sums of the unscaled integers (64-bit while the
    input has at most 18 digits; Python integers beyond)."""
    t = values.type
    scale = t.scale
    filled = pc.fill_null(values, 0)
    if t.precision <= 18:
        filled = pc.cast(filled, pa.decimal128(t.precision, scale))
        words = np.frombuffer(filled.buffers()[1], dtype=np.int64).reshape(-1, 2)
        unscaled = words[filled.offset:filled.offset + len(filled), 0]  # fits the low word: <= 18 digits
        sums = _frame_sum(unscaled, start, end)
        # a 128-bit decimal's bytes are its unscaled integer: low word, then the sign's high word
        words = np.empty((len(sums), 2), dtype=np.int64)
        words[:, 0], words[:, 1] = sums, sums >> 63
        out = pa.Array.from_buffers(pa.decimal128(38, scale), len(sums), [None, pa.py_buffer(words.tobytes())])
        out = pc.if_else(pa.array(counts == 0), pa.scalar(None, out.type), out)
    else:
        import decimal
        unscaled = np.array([int(v.scaleb(scale)) for v in filled.to_pylist()], dtype=object)
        sums = _frame_sum(unscaled, start, end)
        unit = decimal.Decimal(1).scaleb(-scale)
        out = pa.array([None if c == 0 else decimal.Decimal(int(v)) * unit for v, c in zip(sums, counts)],
                       pa.decimal128(38, scale))
    if f.name == "avg":
        wide = pc.divide(pc.cast(out, pa.decimal256(f.dtype.precision + 1, f.dtype.scale)),
                         pa.array(np.maximum(counts, 1).astype(np.int64)))
        return pc.cast(pc.round(wide, ndigits=f.dtype.scale, round_mode="half_towards_infinity"), f.dtype)
    return out.cast(f.dtype)


def _ranks(values: pa.Array, valid: np.ndarray) -> tuple[np.ndarray, pa.Array]:
    """Dense ranks from 0 of the values (any orderable type) and the distinct values in order."""
    present = values.filter(pa.array(valid))
    distinct = pc.unique(present)
    distinct = distinct.take(pc.sort_indices(distinct))
    rank = pc.index_in(values, value_set=distinct)
    return pc.fill_null(rank, 0).to_numpy(zero_copy_only=False).astype(np.int64), distinct


def _extreme(values: pa.Array, valid: np.ndarray, start: np.ndarray, end: np.ndarray, parts: Partitions,
             name: str) -> pa.Array:
    n = parts.n
    rank, distinct = _ranks(values, valid)
    m = len(distinct)
    is_min = name == "min"
    keys = np.where(valid, rank, m if is_min else -1)  # NULLs never win
    if (start == parts.start).all() and ((end == parts.end).all() or _increasing_ends(end, parts)):
        if (end == parts.end).all():
            reduce = np.minimum.reduceat if is_min else np.maximum.reduceat
            per_group = reduce(keys, parts.gstart_idx) if n else keys
            best = per_group[parts.gid]
        else:  # running frames: accumulate, restarting at each partition
            span = m + 2
            shift = (parts.gid.max() - parts.gid) if is_min else parts.gid
            shifted = keys + shift * span
            acc = np.minimum.accumulate(shifted) if is_min else np.maximum.accumulate(shifted)
            best = acc[np.maximum(end - 1, 0)] - shift * span
    else:
        best = _sparse_table_query(keys, start, end, is_min)
    empty = end <= start
    found = (best >= 0) & (best < m) & ~empty
    return distinct.take(pa.array(np.where(found, best, 0), mask=~found)) if m else pa.nulls(n, values.type)


def _increasing_ends(end: np.ndarray, parts: Partitions) -> bool:
    """Whether every frame ends at or after its own row (so a running accumulate answers it)."""
    return bool((end >= np.arange(parts.n) + 1).all())


def _sparse_table_query(keys: np.ndarray, start: np.ndarray, end: np.ndarray, is_min: bool) -> np.ndarray:
    op = np.minimum if is_min else np.maximum
    n = len(keys)
    levels = [keys]
    k = 1
    while (1 << k) <= n:
        prev, half = levels[-1], 1 << (k - 1)
        width = n - (1 << k) + 1
        levels.append(op(prev[:width], prev[half:half + width]))
        k += 1
    length = np.maximum(end - start, 1)
    level = np.floor(np.log2(length)).astype(np.int64)
    out = np.empty(n, dtype=np.int64)
    for j in np.unique(level):
        rows = level == j
        table = levels[j]
        lo = np.minimum(start[rows], len(table) - 1)
        hi = np.clip(end[rows] - (1 << j), 0, len(table) - 1)
        out[rows] = op(table[lo], table[hi])
    return out


def _first_last(values: pa.Array, valid: np.ndarray, start: np.ndarray, end: np.ndarray, which: str,
                ignore_nulls: bool) -> pa.Array:
    n = len(values)
    idx = np.arange(n)
    if which == "first":
        if ignore_nulls:
            nxt = np.minimum.accumulate(np.where(valid, idx, n)[::-1])[::-1] if n else idx
            pick = nxt[np.minimum(start, n - 1)] if n else start
        else:
            pick = start
        ok = (pick < end) & (end > start)
    else:
        if ignore_nulls:
            prv = np.maximum.accumulate(np.where(valid, idx, -1)) if n else idx
            pick = prv[np.maximum(end - 1, 0)] if n else end
        else:
            pick = end - 1
        ok = (pick >= start) & (end > start)
    return values.take(pa.array(np.where(ok, pick, 0), mask=~ok))


def nth_value(values: pa.Array, nth: int, ignore_nulls: bool, start: np.ndarray, end: np.ndarray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if ignore_nulls:
        valid = values.is_valid().to_numpy(zero_copy_only=False)
        c = _cumulative(valid.astype(np.int64))
        pick = np.searchsorted(c, c[start] + nth, side="left") - 1
    else:
        pick = start + nth - 1
    ok = (pick < end) & (pick >= start)
    return values.take(pa.array(np.where(ok, pick, 0), mask=~ok))
