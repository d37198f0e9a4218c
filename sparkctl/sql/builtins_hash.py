"""Hash built-ins: ``md5``, ``sha1``, ``sha2``, ``crc32`` (of a string's UTF-8 bytes or a binary),
and ``hash``, Spark's Murmur3 x86 32-bit hash of the row's values with seed 42.

``hash`` runs a column at a time in numpy (uint32 arithmetic wraps as Java's int does),
following Spark's ``Murmur3HashFunction``: each non-NULL value updates the running hash,
which starts at 42 and passes from one argument to the next::

    seed 42 ──▶ hash(col1 value, seed) ──▶ hash(col2 value, h1) ──▶ ... ──▶ int
                 (a NULL value leaves the hash as it was)

Integers of 32 bits or fewer, booleans and dates are hashed as an int; longs, timestamps and
doubles (their IEEE bits) as a long; strings and binaries with Spark's byte-at-a-time tail
(``hashUnsafeBytes``), which differs from the reference Murmur3 on lengths not a multiple of 4;
arrays and structs element by element. md5, sha1 and sha2 have no Arrow kernel: they run per
value through hashlib, in C for each value.
"""
from __future__ import annotations

import hashlib
import zlib
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.errors import AnalysisException
from sparkctl.sql.expressions import as_array, spark_type_name
from sparkctl.sql.scalar_spec import ScalarSpec

SEED = 42
_C1, _C2 = np.uint32(0xCC9E2D51), np.uint32(0x1B873593)


def _plain(value: Any, n: int) -> pa.Array:
    value = as_array(value, n)
    return value.combine_chunks() if isinstance(value, pa.ChunkedArray) else value


# ---------------------------------------------------------------------------- Murmur3 x86_32, vectorized
def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _mix_k1(k1: np.ndarray) -> np.ndarray:
    return _rotl(k1 * _C1, 15) * _C2


def _mix_h1(h1: np.ndarray, k1: np.ndarray) -> np.ndarray:
    return _rotl(h1 ^ k1, 13) * np.uint32(5) + np.uint32(0xE6546B64)


def _fmix(h1: np.ndarray, length: np.ndarray | int) -> np.ndarray:
    h1 = h1 ^ np.asarray(length, dtype=np.uint32)
    h1 = h1 ^ (h1 >> np.uint32(16))
    h1 = h1 * np.uint32(0x85EBCA6B)
    h1 = h1 ^ (h1 >> np.uint32(13))
    h1 = h1 * np.uint32(0xC2B2AE35)
    return h1 ^ (h1 >> np.uint32(16))


def hash_int(values: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Spark's ``hashInt`` of 32-bit values under per-row seeds (all uint32)."""
    return _fmix(_mix_h1(seed, _mix_k1(values.astype(np.uint32))), 4)


def hash_long(values: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Spark's ``hashLong``: the low word, then the high word."""
    bits = values.astype(np.int64).view(np.uint64)
    low, high = (bits & np.uint64(0xFFFFFFFF)).astype(np.uint32), (bits >> np.uint64(32)).astype(np.uint32)
    return _fmix(_mix_h1(_mix_h1(seed, _mix_k1(low)), _mix_k1(high)), 8)


def hash_bytes(data: np.ndarray, offsets: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Spark's ``hashUnsafeBytes`` of each value ``data[offsets[i]:offsets[i + 1]]``: whole
    little-endian words, then each remaining byte (sign-extended) as a word of its own."""
    starts, lengths = offsets[:-1].astype(np.int64), np.diff(offsets).astype(np.int64)
    words = lengths // 4
    h1 = seed.copy()
    padded = np.concatenate([data, np.zeros(4, np.uint8)]).astype(np.uint32)
    for j in range(int(words.max()) if len(words) else 0):
        rows = np.flatnonzero(words > j)
        at = starts[rows] + 4 * j
        word = padded[at] | (padded[at + 1] << np.uint32(8)) | (padded[at + 2] << np.uint32(16)) | \
            (padded[at + 3] << np.uint32(24))
        h1[rows] = _mix_h1(h1[rows], _mix_k1(word))
    signed = data.view(np.int8)
    for j in range(3):
        rows = np.flatnonzero(lengths - words * 4 > j)
        byte = signed[starts[rows] + words[rows] * 4 + j].astype(np.int32).view(np.uint32)
        h1[rows] = _mix_h1(h1[rows], _mix_k1(byte))
    return _fmix(h1, lengths.astype(np.uint32))


def _update(value: pa.Array, seed: np.ndarray) -> np.ndarray:
    """The running hash of each row after *value* (rows where it is NULL keep their seed)."""
    t = value.type
    valid = value.is_valid().to_numpy(zero_copy_only=False)
    if pa.types.is_null(t) or not valid.any():
        return seed
    if pa.types.is_dictionary(t):
        value, t = value.dictionary_decode(), t.value_type
    if pa.types.is_boolean(t):
        hashed = hash_int(pc.fill_null(pc.cast(value, pa.int32()), 0).to_numpy(zero_copy_only=False), seed)
    elif pa.types.is_integer(t) and t.bit_width <= 32 or pa.types.is_date32(t):
        hashed = hash_int(pc.fill_null(pc.cast(value, pa.int32()), 0).to_numpy(zero_copy_only=False).view(np.uint32),
                          seed)
    elif pa.types.is_integer(t) or pa.types.is_timestamp(t):
        if pa.types.is_timestamp(t):
            value = pc.cast(pc.cast(value, pa.timestamp("us", tz=t.tz)), pa.int64())
        hashed = hash_long(pc.fill_null(pc.cast(value, pa.int64()), 0).to_numpy(zero_copy_only=False), seed)
    elif pa.types.is_float32(t):
        floats = pc.fill_null(value, 0.0).to_numpy(zero_copy_only=False).astype(np.float32)
        # Java's canonical NaN, and -0.0 as 0.0 (Spark normalizes it before hashing)
        floats = np.where(np.isnan(floats), np.float32(np.nan), np.where(floats == 0, np.float32(0), floats))
        hashed = hash_int(floats.view(np.uint32), seed)
    elif pa.types.is_float64(t):
        doubles = pc.fill_null(value, 0.0).to_numpy(zero_copy_only=False).astype(np.float64)
        doubles = np.where(np.isnan(doubles), np.float64(np.nan), np.where(doubles == 0, 0.0, doubles))
        hashed = hash_long(doubles.view(np.int64), seed)
    elif pa.types.is_decimal(t) and t.precision <= 18:
        unscaled = [0 if v is None else int(v.scaleb(t.scale)) for v in value.to_pylist()]
        hashed = hash_long(np.array(unscaled, dtype=np.int64), seed)
    elif pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_large_string(t) or \
            pa.types.is_large_binary(t):
        return _update_bytes(value, valid, seed)
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        return _update_lists(value, valid, seed)
    elif pa.types.is_struct(t):
        hashed = seed
        for i in range(t.num_fields):
            hashed = _update(pc.struct_field(value, [i]), hashed)
    else:
        raise _unhashable(t)
    return np.where(valid, hashed, seed)


def _update_bytes(value: pa.Array, valid: np.ndarray, seed: np.ndarray) -> np.ndarray:
    value = pc.cast(value, pa.large_binary())
    offsets = np.frombuffer(value.buffers()[1], dtype=np.int64)[value.offset:value.offset + len(value) + 1]
    data = np.frombuffer(value.buffers()[2], dtype=np.uint8) if value.buffers()[2] is not None else \
        np.zeros(0, np.uint8)
    hashed = hash_bytes(data, offsets, seed)
    return np.where(valid, hashed, seed)


def _update_lists(value: pa.Array, valid: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Each row's elements in turn: element k of every row at once, for k up to the longest."""
    lengths = pc.fill_null(pc.list_value_length(value), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = value.flatten()
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(lengths) else lengths
    h = seed.copy()
    for k in range(int(lengths.max()) if len(lengths) else 0):
        rows = np.flatnonzero(lengths > k)
        h[rows] = _update(flat.take(pa.array(starts[rows] + k)), h[rows])
    return np.where(valid, h, seed)


def _unhashable(t: pa.DataType) -> AnalysisException:
    if pa.types.is_map(t):
        return AnalysisException("[DATATYPE_MISMATCH.HASH_MAP_TYPE] Input to the function `hash` cannot contain "
                                 "elements of the \"MAP\" type. In Spark, same maps may have different hashcode, "
                                 "thus hash expressions are prohibited on \"MAP\" elements.",
                                 error_class="DATATYPE_MISMATCH.HASH_MAP_TYPE")
    return AnalysisException(f"[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] sparkctl's hash does not take "
                             f"\"{spark_type_name(t)}\" yet.", error_class="DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE")


def murmur3_hash(args: list[Any], n: int) -> Any:
    h = np.full(n, SEED, dtype=np.uint32)
    for arg in args:
        h = _update(_plain(arg, n), h)
    return pa.array(h.view(np.int32))


def _hash_type(types: list[pa.DataType]) -> pa.DataType:
    def check(t: pa.DataType) -> None:
        if pa.types.is_map(t):
            raise _unhashable(t)
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            check(t.value_type)
        if pa.types.is_struct(t):
            for f in t:
                check(f.type)
    for t in types:
        check(t)
    return pa.int32()


# ---------------------------------------------------------------------------- digests
def _bytes_of(value: Any, n: int) -> list[bytes | None]:
    value = _plain(value, n)
    if not (pa.types.is_binary(value.type) or pa.types.is_large_binary(value.type)):
        value = pc.cast(pc.cast(value, pa.string()), pa.binary())
    return value.to_pylist()


def _digest(name: str) -> Callable[[list[Any], int], Any]:
    def run(args: list[Any], n: int) -> Any:
        make = getattr(hashlib, name)
        return pa.array([None if b is None else make(b).hexdigest() for b in _bytes_of(args[0], n)], pa.string())
    return run


_SHA2 = {0: "sha256", 224: "sha224", 256: "sha256", 384: "sha384", 512: "sha512"}


def sha2(args: list[Any], n: int) -> Any:
    bits = args[1].as_py() if args[1].is_valid else None
    name = _SHA2.get(bits) if bits is not None else None
    if name is None:  # Spark: an unsupported bit length gives NULL
        return pa.nulls(n, pa.string())
    return _digest(name)(args, n)


def crc32(args: list[Any], n: int) -> Any:
    return pa.array([None if b is None else zlib.crc32(b) for b in _bytes_of(args[0], n)], pa.int64())


def _string(types: list[pa.DataType]) -> pa.DataType:
    return pa.string()


HASH_SCALARS: dict[str, ScalarSpec] = {
    "md5": ScalarSpec(_string, _digest("md5"), nulls="intolerant"),
    "sha1": ScalarSpec(_string, _digest("sha1"), nulls="intolerant"),
    "sha": ScalarSpec(_string, _digest("sha1"), nulls="intolerant"),
    "sha2": ScalarSpec(_string, sha2, 2, 2),
    "crc32": ScalarSpec(lambda t: pa.int64(), crc32, nulls="intolerant"),
    "hash": ScalarSpec(_hash_type, murmur3_hash, 1, None, nulls="never"),
}
HASH_LITERAL_ARGS = {"sha2": 1}
