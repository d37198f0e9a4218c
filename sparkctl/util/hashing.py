"""A hash that agrees across processes, for partitioning keys.

Python salts ``hash(str)`` and ``hash(bytes)`` per process (PYTHONHASHSEED), so two
executors started independently would send the same key to different reducers. Strings and
bytes are hashed with CRC-32 (C speed, no seed); tuples and frozensets combine their items;
numbers keep Python's own hash, which is not salted.
"""
from __future__ import annotations

from typing import Any
from zlib import crc32

_STR = str
_BYTES = bytes
_INT = int


def portable_hash(x: Any) -> int:
    t = type(x)
    if t is _STR:
        return crc32(x.encode("utf-8", "surrogatepass"))
    if t is _INT:
        return hash(x)
    if x is None:
        return 0
    if t is _BYTES or t is bytearray or t is memoryview:
        return crc32(x)
    if t is tuple:
        h = 0x345678
        for item in x:
            h ^= portable_hash(item)
            h = (h * 1000003) & 0xFFFFFFFFFFFFFFFF
        h ^= len(x)
        if h >= 1 << 63:
            h -= 1 << 64
        return h
    if t is frozenset:
        h = 0
        for item in x:
            h ^= portable_hash(item) * 2654435761 & 0xFFFFFFFF
        return h
    return hash(x)
