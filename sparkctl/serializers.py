"""How closures and data become bytes.

Closures (an RDD's lineage and the user's functions) go through cloudpickle, so lambdas and
functions defined in ``__main__`` travel by value. Data goes through plain pickle in batches
(a list of records per pickle), never one pickle per record: the per-call overhead of
pickle is larger than the cost of a small record.

A batch is framed as a 4-byte little-endian length and its payload: the pickle itself
(which starts with the PROTO opcode, 0x80), or, in shuffle and spill files, the pickle
compressed as one frame of a codec that names itself by its magic number
(:mod:`sparkctl.storage.compression`). Readers tell the two apart by the first byte. A
DataFrame shuffle's frames are Arrow IPC streams instead (first byte 0xFF).
"""
from __future__ import annotations

import io
import itertools
import pickle
import struct
import threading
from typing import IO, Any, Iterable, Iterator

import cloudpickle

from sparkctl.storage import compression

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


def write_batch(out: IO[bytes], batch: list[Any], codec: compression.Codec | None = None) -> int:
    """Write one framed batch (compressed with *codec*, if any); return bytes written."""
    data = frame(pickle.dumps(batch, PROTOCOL), codec)
    out.write(data)
    return len(data)


def encode_batch(batch: list[Any], codec: compression.Codec | None = None) -> bytes:
    return frame(pickle.dumps(batch, PROTOCOL), codec)


# Pickled batches shorter than this are stored as they are: a codec's frame header and
# call cost more than it saves on them (on 172 bytes of 20 small records LZ4 saved 20), and
# a wide shuffle is made of such slices (200,000 records over 100 x 100 slices).
MIN_COMPRESSED = 256


def frame(pickled: bytes, codec: compression.Codec | None = None) -> bytes:
    """A pickled batch with its length before it; compressed by *codec* when that makes it
    smaller (a batch of incompressible data, or one shorter than ``MIN_COMPRESSED``, is
    stored as it is, and read the same way)."""
    if codec is not None and len(pickled) >= MIN_COMPRESSED:
        packed = codec.compress(pickled)
        if len(packed) < len(pickled):
            return _LEN.pack(len(packed)) + packed
    return _LEN.pack(len(pickled)) + pickled


_PROTO = pickle.PROTO[0]


_ARROW_STREAM = 0xFF  # an Arrow IPC stream's continuation marker, 0xFFFFFFFF


def loads_batch(payload: bytes | bytearray | memoryview) -> list[Any]:
    """One batch from its payload, decompressing it first when a codec wrote it. An Arrow
    IPC stream (a DataFrame shuffle's frame, see ``sparkctl.sql.arrow_serde``) is one
    record: its Table, read without a copy, or ``(tag, Table)`` when its schema has a tag."""
    if payload and payload[0] != _PROTO:
        if payload[0] == _ARROW_STREAM:
            return [_arrow_record(payload)]
        payload = compression.decompress(bytes(payload))
    return pickle.loads(payload)  # type: ignore[no-any-return]


def _arrow_record(payload: bytes | bytearray | memoryview) -> Any:
    import pyarrow as pa
    table = pa.ipc.open_stream(pa.py_buffer(payload)).read_all()
    metadata = table.schema.metadata
    if metadata and b"sparkctl.tag" in metadata:
        return metadata[b"sparkctl.tag"].decode(), table.replace_schema_metadata(None)
    return table


def read_batches(f: IO[bytes], limit: int | None = None) -> Iterator[list[Any]]:
    """Yield the pickled lists written by :func:`write_batches` (or :func:`write_batch`, compressed
    or not), at most ``limit`` bytes."""
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
        yield loads_batch(data)


def iter_batches_from_bytes(buf: bytes | memoryview) -> Iterator[list[Any]]:
    yield from read_batches(io.BytesIO(buf))


def load_records(f: IO[bytes], limit: int | None = None) -> Iterator[Any]:
    for batch in read_batches(f, limit):
        yield from batch


# ---------------------------------------------------------------------------------------
# PySpark's serializer classes, for programs that use them by name. sparkctl's own data path
# is the batched pickling above; these read and write PySpark's framing (a big-endian
# 4-byte length before each object) for code that calls them directly.

_FRAME = struct.Struct("!i")


class Serializer:
    """``dump_stream`` writes an iterator of objects to a binary stream; ``load_stream`` reads them back."""

    def dump_stream(self, iterator: Iterable[Any], stream: IO[bytes]) -> None:
        raise NotImplementedError

    def load_stream(self, stream: IO[bytes]) -> Iterator[Any]:
        raise NotImplementedError

    def _load_stream_without_unbatching(self, stream: IO[bytes]) -> Iterator[Any]:
        return self.load_stream(stream)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, self.__class__) and other.__dict__ == self.__dict__

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}()"


class FramedSerializer(Serializer):
    """Each object as its own frame: its length, then ``dumps(obj)``."""

    def dumps(self, obj: Any) -> bytes:
        raise NotImplementedError

    def loads(self, obj: bytes) -> Any:
        raise NotImplementedError

    def dump_stream(self, iterator: Iterable[Any], stream: IO[bytes]) -> None:
        for obj in iterator:
            data = self.dumps(obj)
            if len(data) > (1 << 31) - 1:
                raise ValueError("can not serialize object larger than 2G")
            stream.write(_FRAME.pack(len(data)))
            stream.write(data)

    def load_stream(self, stream: IO[bytes]) -> Iterator[Any]:
        while True:
            head = stream.read(4)
            if not head:
                return
            if len(head) < 4:
                raise EOFError("truncated frame header")
            (n,) = _FRAME.unpack(head)
            data = stream.read(n)
            if len(data) < n:
                raise EOFError("truncated frame")
            yield self.loads(data)


class PickleSerializer(FramedSerializer):
    """Objects through the standard pickle module."""

    def dumps(self, obj: Any) -> bytes:
        return pickle.dumps(obj, PROTOCOL)

    def loads(self, obj: bytes, encoding: str = "bytes") -> Any:
        return pickle.loads(obj, encoding=encoding)


CPickleSerializer = PickleSerializer


class CloudPickleSerializer(FramedSerializer):
    """Objects through cloudpickle, so functions and lambdas travel by value (what sparkctl
    uses for closures)."""

    def dumps(self, obj: Any) -> bytes:
        try:
            return cloudpickle.dumps(obj, PROTOCOL)
        except pickle.PickleError:
            raise
        except Exception as e:
            raise pickle.PicklingError(f"Could not serialize object: {type(e).__name__}: {e}") from e

    def loads(self, obj: bytes, encoding: str = "bytes") -> Any:
        return pickle.loads(obj, encoding=encoding)


class MarshalSerializer(FramedSerializer):
    """Objects through marshal: faster than pickle, for built-in types only."""

    def dumps(self, obj: Any) -> bytes:
        import marshal
        return marshal.dumps(obj)

    def loads(self, obj: bytes) -> Any:
        import marshal
        return marshal.loads(obj)


class NoOpSerializer(FramedSerializer):
    """Bytes as they are."""

    def dumps(self, obj: Any) -> bytes:
        return obj

    def loads(self, obj: bytes) -> Any:
        return obj


class UTF8Deserializer(Serializer):
    """Frames of UTF-8 text, read as ``str``."""

    def __init__(self, use_unicode: bool = True) -> None:
        self.use_unicode = use_unicode

    def dump_stream(self, iterator: Iterable[Any], stream: IO[bytes]) -> None:
        for text in iterator:
            data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
            stream.write(_FRAME.pack(len(data)))
            stream.write(data)

    def load_stream(self, stream: IO[bytes]) -> Iterator[Any]:
        raw = NoOpSerializer().load_stream(stream)
        return (b.decode("utf-8") for b in raw) if self.use_unicode else raw


class CompressedSerializer(FramedSerializer):
    """Another framed serializer's frames, zlib-compressed."""

    def __init__(self, serializer: FramedSerializer) -> None:
        if not isinstance(serializer, FramedSerializer):
            raise TypeError("CompressedSerializer needs a FramedSerializer")
        self.serializer = serializer

    def dumps(self, obj: Any) -> bytes:
        import zlib
        return zlib.compress(self.serializer.dumps(obj), 1)

    def loads(self, obj: bytes) -> Any:
        import zlib
        return self.serializer.loads(zlib.decompress(obj))

    def __repr__(self) -> str:
        return f"CompressedSerializer({self.serializer!r})"


UNLIMITED_BATCH_SIZE = -1
UNKNOWN_BATCH_SIZE = 0


class BatchedSerializer(Serializer):
    """Groups the objects into lists of ``batchSize`` (all in one list when unlimited) and
    writes each list with the inner serializer; reading gives the objects one by one."""

    def __init__(self, serializer: Serializer, batchSize: int = UNLIMITED_BATCH_SIZE) -> None:
        self.serializer = serializer
        self.batchSize = batchSize

    def _batched(self, iterator: Iterable[Any]) -> Iterator[list[Any]]:
        if self.batchSize == UNLIMITED_BATCH_SIZE:
            yield list(iterator)
            return
        it = iter(iterator)
        while True:
            batch = list(itertools.islice(it, self.batchSize))
            if not batch:
                return
            yield batch

    def dump_stream(self, iterator: Iterable[Any], stream: IO[bytes]) -> None:
        self.serializer.dump_stream(self._batched(iterator), stream)

    def load_stream(self, stream: IO[bytes]) -> Iterator[Any]:
        return itertools.chain.from_iterable(self._load_stream_without_unbatching(stream))

    def _load_stream_without_unbatching(self, stream: IO[bytes]) -> Iterator[Any]:
        return self.serializer.load_stream(stream)

    def __repr__(self) -> str:
        return f"BatchedSerializer({self.serializer!r}, {self.batchSize})"


class AutoBatchedSerializer(BatchedSerializer):
    """Batches grown or shrunk so that each written frame is near ``bestSize`` bytes."""

    def __init__(self, serializer: FramedSerializer, bestSize: int = 1 << 16) -> None:
        super().__init__(serializer, UNKNOWN_BATCH_SIZE)
        self.bestSize = bestSize

    def dump_stream(self, iterator: Iterable[Any], stream: IO[bytes]) -> None:
        inner = self.serializer
        assert isinstance(inner, FramedSerializer)
        batch, best = 1, self.bestSize
        it = iter(iterator)
        while True:
            records = list(itertools.islice(it, batch))
            if not records:
                return
            data = inner.dumps(records)
            stream.write(_FRAME.pack(len(data)))
            stream.write(data)
            if len(data) < best:
                batch *= 2
            elif len(data) > best * 10 and batch > 1:
                batch //= 2

    def __repr__(self) -> str:
        return f"AutoBatchedSerializer({self.serializer!r})"
