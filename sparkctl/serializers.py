"""How closures and data become bytes.

Closures (an RDD's lineage and the user's functions) go through cloudpickle, so lambdas and
functions defined in ``__main__`` travel by value. Data goes through plain pickle in batches
(a list of records per pickle), never one pickle per record: the per-call overhead of
pickle is larger than the cost of a small record.
"""
from __future__ import annotations

import io
import pickle
import struct
import threading
from typing import IO, Any, Iterable, Iterator

import cloudpickle

PROTOCOL = pickle.HIGHEST_PROTOCOL
_LEN = struct.Struct("<I")

# Broadcast ids seen while pickling a closure, so the driver ships each executor the
# broadcasts a stage needs before the stage's tasks (see sparkctl.broadcast).
_collect = threading.local()


def dumps_closure(obj: Any) -> tuple[bytes, set[int]]:
    """cloudpickle ``obj``; also return the ids of the broadcasts it references."""
    _collect.broadcasts = set()
    try:
        data = cloudpickle.dumps(obj, protocol=PROTOCOL)
        return data, _collect.broadcasts
    finally:
        _collect.broadcasts = None


def note_broadcast(bid: int) -> None:
    seen = getattr(_collect, "broadcasts", None)
    if seen is not None:
        seen.add(bid)


dumps = pickle.dumps
loads = pickle.loads


def write_batches(out: IO[bytes], records: Iterable[Any], batch_size: int = 1000) -> int:
    """Write records as length-prefixed pickled lists; return bytes written."""
    written = 0
    batch: list[Any] = []
    append = batch.append
    for rec in records:
        append(rec)
        if len(batch) >= batch_size:
            written += write_batch(out, batch)
            batch.clear()
    if batch:
        written += write_batch(out, batch)
    return written


def write_batch(out: IO[bytes], batch: list[Any]) -> int:
    data = pickle.dumps(batch, PROTOCOL)
    out.write(_LEN.pack(len(data)))
    out.write(data)
    return len(data) + 4


def encode_batch(batch: list[Any]) -> bytes:
    data = pickle.dumps(batch, PROTOCOL)
    return _LEN.pack(len(data)) + data


def read_batches(f: IO[bytes], limit: int | None = None) -> Iterator[list[Any]]:
    """Yield the pickled lists written by :func:`write_batches`, at most ``limit`` bytes."""
    remaining = limit
    read = f.read
    while remaining is None or remaining > 0:
        head = read(4)
        if len(head) < 4:
            if head:
                raise EOFError("truncated batch header")
            return
        (n,) = _LEN.unpack(head)
        data = read(n)
        if len(data) < n:
            raise EOFError("truncated batch")
        if remaining is not None:
            remaining -= n + 4
        yield pickle.loads(data)


def iter_batches_from_bytes(buf: bytes | memoryview) -> Iterator[list[Any]]:
    yield from read_batches(io.BytesIO(buf))


def load_records(f: IO[bytes], limit: int | None = None) -> Iterator[Any]:
    for batch in read_batches(f, limit):
        yield from batch
