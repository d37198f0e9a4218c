"""Compressed files, as Hadoop's codecs name them: read by extension, written by codec class.

Input is decompressed by its file name's extension, as Hadoop's ``CompressionCodecFactory``
picks a codec: ``.gz`` (gzip), ``.bz2`` (bzip2), ``.xz`` (xz/LZMA), ``.deflate`` (zlib, Hadoop's
``DefaultCodec``), ``.zst`` (Zstandard frames, with the optional ``zstandard`` package:
``pip install 'sparkctl[zstd]'``) and ``.lz4`` (with the optional ``lz4`` package:
``pip install 'sparkctl[lz4]'``). A ``.lz4`` file is either the LZ4 frame format the ``lz4``
command writes (it starts with the magic number 0x184D2204) or Hadoop's ``Lz4Codec`` block
format, which Hadoop and Spark write::

    block:  uncompressed length (4 bytes, big-endian)
            chunk...: compressed length (4 bytes, big-endian), a raw LZ4 block
            (chunks until the block's uncompressed length is reached; a length 0 ends the stream)

A compressed file is read whole by one task, except by ``textFile``, which splits bzip2
files at their blocks as Hadoop's ``BZip2Codec`` does (``sparkctl.rdd.bzip2_split``).

Output codecs take PySpark's ``compressionCodecClass`` names (Hadoop's class names) or short
names: ``GzipCodec`` (.gz), ``DefaultCodec`` (.deflate), ``BZip2Codec`` (.bz2),
``ZStandardCodec`` (.zst) and ``Lz4Codec`` (.lz4, in Hadoop's block format above, one chunk a
block of up to 256 KiB less Hadoop's allowance for overhead, as its default
``io.compression.codec.lz4.buffersize`` makes them). Hadoop's ``SnappyCodec`` writes a block
format of Snappy's, which sparkctl has no library for; it is refused with a message saying so.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib
from typing import IO, Any, Callable

HADOOP = "org.apache.hadoop.io.compress."


class _ZlibReader:
    """A readable file of a zlib stream (Hadoop's ``.deflate``)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.z = zlib.decompressobj()
        self.buffer = b""
        self.eof = False

    def read(self, n: int = -1) -> bytes:
        while not self.eof and (n < 0 or len(self.buffer) < n):
            chunk = self.raw.read(1 << 16)
            if not chunk:
                self.buffer += self.z.flush()
                self.eof = True
                break
            self.buffer += self.z.decompress(chunk)
        if n < 0:
            out, self.buffer = self.buffer, b""
        else:
            out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> "_ZlibReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _ZlibWriter:
    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.z = zlib.compressobj(6)

    def write(self, data: bytes) -> int:
        self.raw.write(self.z.compress(data))
        return len(data)

    def close(self) -> None:
        self.raw.write(self.z.flush())


def _zstandard() -> Any:
    try:
        import zstandard  # type: ignore[import-not-found]
    except ImportError:
        raise ValueError("reading or writing .zst files needs the zstandard package: "
                         "pip install 'sparkctl[zstd]'") from None
    return zstandard


def _zst_reader(raw: IO[bytes]) -> IO[bytes]:
    return _zstandard().ZstdDecompressor().stream_reader(raw)  # type: ignore[no-any-return]


def _zst_writer(raw: IO[bytes]) -> IO[bytes]:
    return _zstandard().ZstdCompressor().stream_writer(raw, closefd=False)  # type: ignore[no-any-return]


def _lz4() -> Any:
    try:
        import lz4.block  # type: ignore[import-not-found, import-untyped]
        import lz4.frame  # type: ignore[import-not-found, import-untyped]
    except ImportError:
        raise ValueError("reading or writing .lz4 files needs the lz4 package: pip install 'sparkctl[lz4]'") from None
    return lz4


_LZ4_FRAME_MAGIC = b"\x04\x22\x4d\x18"
_BE_INT = struct.Struct(">I")
# Hadoop's Lz4Codec: io.compression.codec.lz4.buffersize (256 KiB) less its overhead
# allowance (buffersize / 255 + 16) is the most input one block holds
_HADOOP_LZ4_BUFFER = 256 << 10
HADOOP_LZ4_BLOCK = _HADOOP_LZ4_BUFFER - (_HADOOP_LZ4_BUFFER // 255 + 16)


class _BlockReader:
    """A readable file over a producer of decompressed pieces (``next_piece`` returns b""
    at the end)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.buffer = bytearray()
        self.eof = False

    def next_piece(self) -> bytes:
        raise NotImplementedError

    def read(self, n: int = -1) -> bytes:
        while not self.eof and (n < 0 or len(self.buffer) < n):
            piece = self.next_piece()
            if not piece:
                self.eof = True
                break
            self.buffer += piece
        if n < 0 or n >= len(self.buffer):
            out = bytes(self.buffer)
            self.buffer.clear()
        else:
            out = bytes(self.buffer[:n])
            del self.buffer[:n]
        return out

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> "_BlockReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _HadoopLz4Reader(_BlockReader):
    """Hadoop's Lz4Codec block format (module docstring), a block at a time."""

    def __init__(self, raw: IO[bytes], head: bytes) -> None:
        super().__init__(raw)
        self.head = head  # the bytes already read to tell the format
        self.block = _lz4().block

    def _exactly(self, n: int, what: str) -> bytes:
        data = self.head[:n]
        self.head = self.head[n:]
        if len(data) < n:
            data += self.raw.read(n - len(data))
        if len(data) < n:
            raise EOFError(f"truncated .lz4 file: it ends inside {what}")
        return data

    def next_piece(self) -> bytes:
        first = self.head[:4] + (self.raw.read(4 - len(self.head)) if len(self.head) < 4 else b"")
        self.head = self.head[4:]
        if not first:
            return b""
        if len(first) < 4:
            raise EOFError("truncated .lz4 file: it ends inside a block header")
        (total,) = _BE_INT.unpack(first)
        if total == 0:
            return b""  # how Hadoop ends an empty (or a finished) stream
        out = bytearray()
        while len(out) < total:
            (size,) = _BE_INT.unpack(self._exactly(4, "a chunk header"))
            chunk = self._exactly(size, "a compressed chunk")
            out += self.block.decompress(chunk, uncompressed_size=total - len(out))
        if len(out) != total:
            raise ValueError(f"corrupt .lz4 file: a block says {total} bytes and holds {len(out)}")
        return bytes(out)


def _lz4_reader(raw: IO[bytes]) -> IO[bytes]:
    """An LZ4 frame file (as the lz4 command writes) or Hadoop's Lz4Codec blocks, told
    apart by the frame format's magic number."""
    lz4 = _lz4()
    head = raw.read(4)
    if head == _LZ4_FRAME_MAGIC:
        raw.seek(0)
        return lz4.frame.LZ4FrameFile(raw, "rb")  # type: ignore[no-any-return]
    return _HadoopLz4Reader(raw, head)  # type: ignore[return-value]


class _HadoopLz4Writer:
    """Hadoop's Lz4Codec block format: one raw LZ4 block a chunk, one chunk a block, so
    Hadoop's and Spark's ``textFile`` read it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.block = _lz4().block
        self.buffer = bytearray()
        self.wrote = False

    def write(self, data: bytes) -> int:
        self.buffer += data
        while len(self.buffer) >= HADOOP_LZ4_BLOCK:
            self._block(bytes(self.buffer[:HADOOP_LZ4_BLOCK]))
            del self.buffer[:HADOOP_LZ4_BLOCK]
        return len(data)

    def _block(self, data: bytes) -> None:
        packed = self.block.compress(data, store_size=False)
        self.raw.write(_BE_INT.pack(len(data)) + _BE_INT.pack(len(packed)) + packed)
        self.wrote = True

    def close(self) -> None:
        if self.buffer:
            self._block(bytes(self.buffer))
            self.buffer.clear()
        elif not self.wrote:
            self.raw.write(_BE_INT.pack(0))  # Hadoop's empty stream: one block of length 0


#: extension -> a decompressing reader over the raw (compressed) file
READERS: dict[str, Callable[[IO[bytes]], Any]] = {
    ".gz": lambda raw: gzip.GzipFile(fileobj=raw, mode="rb"),
    ".bz2": lambda raw: bz2.BZ2File(raw, "rb"),
    ".xz": lambda raw: lzma.LZMAFile(raw, "rb"),
    ".deflate": _ZlibReader,
    ".zst": _zst_reader,
    ".lz4": _lz4_reader,
}

#: codec name -> (extension of the part files, a compressing writer over the raw file)
WRITERS: dict[str, tuple[str, Callable[[IO[bytes]], Any]]] = {
    "gzip": (".gz", lambda raw: gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6)),
    "deflate": (".deflate", _ZlibWriter),
    "bzip2": (".bz2", lambda raw: bz2.BZ2File(raw, "wb")),
    "zstd": (".zst", _zst_writer),
    "lz4": (".lz4", _HadoopLz4Writer),
}
_NAMES = {
    HADOOP + "GzipCodec": "gzip", "gzip": "gzip", "gz": "gzip",
    HADOOP + "DefaultCodec": "deflate", "deflate": "deflate", "default": "deflate",
    HADOOP + "BZip2Codec": "bzip2", "bzip2": "bzip2", "bz2": "bzip2",
    HADOOP + "ZStandardCodec": "zstd", "zstd": "zstd", "zst": "zstd",
    HADOOP + "Lz4Codec": "lz4", "lz4": "lz4",
}
_HADOOP_ONLY = {HADOOP + "SnappyCodec": "snappy", "snappy": "snappy"}


def suffix_of(path: str) -> str | None:
    """The compression extension of *path*, or None for a plain file."""
    for ext in READERS:
        if path.endswith(ext):
            return ext
    return None


def is_compressed(path: str) -> bool:
    return suffix_of(path) is not None


def decompressing(raw: IO[bytes], path: str) -> Any:
    """A reader of *path*'s contents over its raw (compressed) file *raw*."""
    ext = suffix_of(path)
    return raw if ext is None else READERS[ext](raw)


def open_input(path: str) -> Any:
    """*path* opened for reading, decompressed if its extension says so."""
    raw = open(path, "rb")
    ext = suffix_of(path)
    if ext is None:
        return raw
    try:
        return READERS[ext](raw)
    except BaseException:
        raw.close()
        raise


def output_codec(name: str) -> tuple[str, Callable[[IO[bytes]], Any]]:
    """(extension, writer factory) of a ``compressionCodecClass``; a clear ValueError otherwise."""
    key = _NAMES.get(name) or _NAMES.get(name.lower())
    if key is None:
        if name in _HADOOP_ONLY or name.lower() in _HADOOP_ONLY:
            raise ValueError(f"compression codec {name!r} writes Hadoop's own {_HADOOP_ONLY.get(name, name)} block "
                             "format, which sparkctl cannot write; use GzipCodec, BZip2Codec, DefaultCodec, "
                             "ZStandardCodec or Lz4Codec")
        known = sorted(n for n in _NAMES if n.startswith(HADOOP)) + ["gzip", "bzip2", "deflate", "zstd", "lz4"]
        raise ValueError(f"unknown compression codec {name!r}; use one of {', '.join(known)}")
    if key == "zstd":
        _zstandard()  # refuse now, naming the extra, rather than in every task
    if key == "lz4":
        _lz4()
    return WRITERS[key]
