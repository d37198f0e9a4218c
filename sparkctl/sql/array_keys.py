"""ARRAY and MAP values as grouping keys: each encoded into bytes, equal values to equal bytes.

pyarrow's hash aggregation takes no list or map key, so ``groupBy("arr")``, ``distinct()``
over a frame with an array column and ``groupBy("m")`` (Spark 4 groups a map by its entries
sorted by key) group by a BINARY column instead, which hashes, shuffles and merges like any
string, and is decoded back after the final merge.

The common arrays are encoded a whole column at a time with numpy, every element prefixed
by a validity byte so that concatenating a row's elements is unambiguous:

    fixed-width elements (numbers, dates, timestamps, decimals, booleans):
        [1, NULL, 3]  ─▶  01 <1 as 4 bytes> 00 <4 zero bytes> 01 <3 as 4 bytes>
    strings and binaries:
        ["ab", NULL]  ─▶  01 <length 2 as 4 bytes> 'a' 'b' 00 <length 0>

Decoding reads the bytes back a column at a time too. A NULL array is a NULL key (apart from the empty array, which is no bytes). FLOAT/DOUBLE
elements are normalized first (-0.0 as 0.0, one NaN), as Spark normalizes them in keys.
Other arrays (of arrays, structs, maps) and maps are encoded a value at a time (pickled,
a map's entries sorted by key).
"""
from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.sql.float_ordering import normalize


def is_encoded(t: pa.DataType) -> bool:
    """Whether a key of type *t* is grouped by its encoding."""
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_map(t)


def is_nested(t: pa.DataType) -> bool:
    """Whether *t* is a type pyarrow's hash kernels take no values of (first, last): encoded too."""
    return is_encoded(t) or pa.types.is_struct(t)


def _by_value(t: pa.DataType) -> bool:
    """Whether values of *t* are encoded a value at a time (pickled)."""
    return not is_encoded(t) or pa.types.is_map(t) or not (_fixed_width(t.value_type) or _is_text(t.value_type))


def _fixed_width(t: pa.DataType) -> int:
    """Bytes an element of *t* takes in the encoding; 0 where it is not fixed-width."""
    if pa.types.is_boolean(t):
        return 1
    if (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_date(t) or pa.types.is_timestamp(t)
            or pa.types.is_time(t) or pa.types.is_duration(t) or pa.types.is_decimal128(t)):
        return t.bit_width // 8
    return 0


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_binary(t)


def _array(values: Any) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def encode(values: Any) -> pa.Array:
    """The key's bytes, one LARGE_BINARY value a row (NULL for a NULL value)."""
    values = _array(values)
    t = values.type
    if _by_value(t):
        return pa.array([None if v is None else pickle.dumps(_sorted_maps(v, t), protocol=5)
                         for v in values.to_pylist()], pa.large_binary())
    lengths = pc.fill_null(pc.list_value_length(values), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    elements = normalize(pc.list_flatten(values))
    elements = _array(elements)
    if _is_text(elements.type):
        data, element_ends = _encode_text(elements)
    else:
        data, element_ends = _encode_fixed(elements)
    # a row's bytes are its elements' bytes, which follow each other
    ends = np.concatenate([[0], np.cumsum(lengths)])
    offsets = np.concatenate([[0], element_ends])[ends].astype(np.int64)
    validity = pc.is_valid(values).buffers()[1] if values.null_count else None
    return pa.Array.from_buffers(pa.large_binary(), len(values),
                                 [validity, pa.py_buffer(offsets), pa.py_buffer(data)], values.null_count)


def _encode_fixed(elements: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    t = elements.type
    width = _fixed_width(t)
    m = len(elements)
    valid = elements.is_valid().to_numpy(zero_copy_only=False) if elements.null_count else np.ones(m, bool)
    if pa.types.is_boolean(t):
        raw = pc.fill_null(elements, False).to_numpy(zero_copy_only=False).astype(np.uint8).reshape(m, 1)
    else:
        buffer = np.frombuffer(elements.buffers()[1], np.uint8)
        raw = buffer[elements.offset * width:(elements.offset + m) * width].reshape(m, width)
    encoded = np.zeros((m, width + 1), np.uint8)
    encoded[:, 0] = valid
    encoded[valid, 1:] = raw[valid]
    return encoded.ravel(), np.arange(1, m + 1, dtype=np.int64) * (width + 1)


def _encode_text(elements: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    m = len(elements)
    offsets, source = _variable_width_buffers(elements)
    valid = elements.is_valid().to_numpy(zero_copy_only=False) if elements.null_count else np.ones(m, bool)
    lengths = np.where(valid, np.diff(offsets), 0)
    sizes = lengths + 5
    ends = np.cumsum(sizes)
    starts = ends - sizes
    out = np.zeros(int(ends[-1]) if m else 0, np.uint8)
    out[starts] = valid
    out[starts[:, None] + np.arange(1, 5)] = lengths.astype("<u4").view(np.uint8).reshape(m, 4)
    within = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[np.repeat(starts + 5, lengths) + within] = source[np.repeat(offsets[:-1], lengths) + within]
    return out, ends


def _variable_width_buffers(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A string or binary array's value offsets (int64, from 0) and the bytes they index."""
    n = len(values)
    large = pa.types.is_large_string(values.type) or pa.types.is_large_binary(values.type)
    offsets = np.frombuffer(values.buffers()[1], np.int64 if large else np.int32)[
        values.offset:values.offset + n + 1].astype(np.int64)
    data = values.buffers()[2]
    data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    return offsets - offsets[0], data[int(offsets[0]):int(offsets[-1])]


def decode(encoded: pa.Array, dtype: pa.DataType) -> pa.Array:
    """The keys of type *dtype* back from :func:`encode`'s bytes."""
    encoded = _array(encoded)
    if _by_value(dtype):
        return pa.array([None if b is None else pickle.loads(b) for b in encoded.to_pylist()], dtype)
    offsets, data = _variable_width_buffers(encoded)
    element_type = dtype.value_type
    if _is_text(element_type):
        elements, counts = _decode_text(data, offsets, element_type)
    else:
        width = _fixed_width(element_type) + 1
        counts = np.diff(offsets) // width
        elements = _decode_fixed(data.reshape(-1, width), element_type)
    list_offsets = np.concatenate([[0], np.cumsum(counts)])
    list_offsets = pa.array(list_offsets, pa.int64() if pa.types.is_large_list(dtype) else pa.int32())
    mask = encoded.is_null() if encoded.null_count else None
    array_type = pa.LargeListArray if pa.types.is_large_list(dtype) else pa.ListArray
    return array_type.from_arrays(list_offsets, elements, type=dtype, mask=mask)


def _decode_fixed(encoded: np.ndarray, t: pa.DataType) -> pa.Array:
    valid = encoded[:, 0].astype(bool)
    mask = pa.array(~valid) if not valid.all() else None
    if pa.types.is_boolean(t):
        return pa.array(encoded[:, 1].astype(bool), pa.bool_(), mask=~valid if mask is not None else None)
    raw = np.ascontiguousarray(encoded[:, 1:])
    validity = pa.array(valid).buffers()[1] if mask is not None else None
    return pa.Array.from_buffers(t, len(encoded), [validity, pa.py_buffer(raw)],
                                 int((~valid).sum()))


def _decode_text(data: np.ndarray, offsets: np.ndarray, t: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """The strings of every row, read a wave at a time: wave k reads the k-th element's header
    of every row that has one, all at once."""
    n = len(offsets) - 1
    position, end = offsets[:-1].copy(), offsets[1:]
    active = np.flatnonzero(position < end)
    rows, waves, starts, lengths, valid = [], [], [], [], []
    wave = 0
    while len(active):
        at = position[active]
        header = data[at[:, None] + np.arange(1, 5)].astype(np.uint32)
        length = (header[:, 0] | header[:, 1] << 8 | header[:, 2] << 16 | header[:, 3] << 24).astype(np.int64)
        rows.append(active)
        waves.append(np.full(len(active), wave, np.int64))
        starts.append(at + 5)
        lengths.append(length)
        valid.append(data[at].astype(bool))
        position[active] = at + 5 + length
        active = active[position[active] < end[active]]
        wave += 1
    if not rows:
        return pa.array([], t), np.zeros(n, np.int64)
    row, order_wave = np.concatenate(rows), np.concatenate(waves)
    order = np.lexsort((order_wave, row))  # row by row, each row's elements in order
    row, start, length, ok = row[order], np.concatenate(starts)[order], np.concatenate(lengths)[order], \
        np.concatenate(valid)[order]
    within = np.arange(int(length.sum()), dtype=np.int64) - np.repeat(np.cumsum(length) - length, length)
    chars = data[np.repeat(start, length) + within]
    large = pa.types.is_large_string(t) or pa.types.is_large_binary(t)
    value_offsets = np.concatenate([[0], np.cumsum(length)]).astype(np.int64 if large else np.int32)
    validity = pa.array(ok).buffers()[1] if not ok.all() else None
    values = pa.Array.from_buffers(t, len(row), [validity, pa.py_buffer(value_offsets), pa.py_buffer(chars)],
                                   int((~ok).sum()))
    return values, np.bincount(row, minlength=n).astype(np.int64)


def _sorted_maps(value: Any, t: pa.DataType) -> Any:
    """*value* (as pyarrow gives it) with every map's entries sorted by key, so that maps of
    the same entries encode alike whatever their order (Spark sorts a map key's entries)."""
    if value is None:
        return None
    if pa.types.is_map(t):
        entries = [(k, _sorted_maps(v, t.item_type)) for k, v in value]
        try:
            return sorted(entries, key=lambda kv: kv[0])
        except TypeError:
            return sorted(entries, key=lambda kv: repr(kv[0]))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return [_sorted_maps(v, t.value_type) for v in value]
    if pa.types.is_struct(t):
        return {f.name: _sorted_maps(value[f.name], f.type) for f in t}
    return value


def join_key(values: Any) -> Any:
    """A join key column as the hash join matches it: arrays and maps by their encoding,
    FLOAT/DOUBLE normalized, anything else as it is."""
    if is_encoded(values.type):
        return encode(values)
    return normalize(values)
