"""Compressed files, as Hadoop's codecs name them: read by extension, written by codec class.

Input is decompressed by its file name's extension, as Hadoop's ``CompressionCodecFactory``
picks a codec: ``.gz`` (gzip), ``.bz2`` (bzip2), ``.xz`` (xz/LZMA), ``.deflate`` (zlib, Hadoop's
``DefaultCodec``) and ``.zst`` (Zstandard frames, with the optional ``zstandard`` package:
``pip install 'sparkctl[zstd]'``). A compressed file is read whole by one task (unlike
Hadoop, bzip2 files are not split at block boundaries yet).

Output codecs take PySpark's ``compressionCodecClass`` names (Hadoop's class names) or short
names: ``GzipCodec`` (.gz), ``DefaultCodec`` (.deflate), ``BZip2Codec`` (.bz2),
``ZStandardCodec`` (.zst). Hadoop's ``Lz4Codec`` and ``SnappyCodec`` write Hadoop's own block
format, which no Python reader understands; they are refused with a message saying so.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
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


#: extension -> a decompressing reader over the raw (compressed) file
READERS: dict[str, Callable[[IO[bytes]], Any]] = {
    ".gz": lambda raw: gzip.GzipFile(fileobj=raw, mode="rb"),
    ".bz2": lambda raw: bz2.BZ2File(raw, "rb"),
    ".xz": lambda raw: lzma.LZMAFile(raw, "rb"),
    ".deflate": _ZlibReader,
    ".zst": _zst_reader,
}

#: codec name -> (extension of the part files, a compressing writer over the raw file)
WRITERS: dict[str, tuple[str, Callable[[IO[bytes]], Any]]] = {
    "gzip": (".gz", lambda raw: gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6)),
    "deflate": (".deflate", _ZlibWriter),
    "bzip2": (".bz2", lambda raw: bz2.BZ2File(raw, "wb")),
    "zstd": (".zst", _zst_writer),
}
_NAMES = {
    HADOOP + "GzipCodec": "gzip", "gzip": "gzip", "gz": "gzip",
    HADOOP + "DefaultCodec": "deflate", "deflate": "deflate", "default": "deflate",
    HADOOP + "BZip2Codec": "bzip2", "bzip2": "bzip2", "bz2": "bzip2",
    HADOOP + "ZStandardCodec": "zstd", "zstd": "zstd", "zst": "zstd",
}
_HADOOP_ONLY = {HADOOP + "Lz4Codec": "lz4", HADOOP + "SnappyCodec": "snappy", "lz4": "lz4", "snappy": "snappy"}


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
                             "format, which sparkctl cannot write; use GzipCodec, BZip2Codec, DefaultCodec or "
                             "ZStandardCodec")
        known = sorted(n for n in _NAMES if n.startswith(HADOOP)) + ["gzip", "bzip2", "deflate", "zstd"]
        raise ValueError(f"unknown compression codec {name!r}; use one of {', '.join(known)}")
    if key == "zstd":
        _zstandard()  # refuse now, naming the extra, rather than in every task
    return WRITERS[key]
