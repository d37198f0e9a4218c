"""What every file data source shares: the scan plan and its splits, option parsing, raw
input (whole files, byte ranges of lines) and a byte-counting writer."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import IO, Any

import pyarrow as pa

from sparkctl.fs import FileStatus, FileSystem
from sparkctl.rdd.codecs import decompressing, is_compressed
from sparkctl.rdd.sources import _read_range, _split_lines, file_splits, list_inputs


FORMATS = ("text", "csv", "json", "parquet")
#: the most input bytes schema inference reads (Spark reads all of it)
INFER_LIMIT = 64 * 1024 * 1024
BATCH_ROWS = 64 * 1024
CORRUPT = "_corrupt_record"
_MODES = ("PERMISSIVE", "DROPMALFORMED", "FAILFAST")
_TEXT_CODECS = ("none", "uncompressed", "gzip", "bzip2", "deflate", "zstd", "lz4")
_PARQUET_CODECS = {"none": ("none", ""), "uncompressed": ("none", ""), "snappy": ("snappy", ".snappy"),
                   "gzip": ("gzip", ".gz"), "zstd": ("zstd", ".zstd"), "lz4": ("lz4", ".lz4raw"),
                   "lz4_raw": ("lz4", ".lz4raw"), "brotli": ("brotli", ".br")}


@dataclass(frozen=True)
class ReadSplit:
    """One task's input: a byte range of a file (the whole file where it cannot be cut)."""

    fs: FileSystem
    path: str
    start: int
    length: int
    partition_values: tuple = ()


@dataclass
class ScanPlan:
    """What the driver settled for a scan: the format, the rows' schema, the splits, the options."""

    format: str
    schema: pa.Schema
    splits: list[ReadSplit]
    options: dict[str, str]
    columns: list[str] | None = None
    filters: list[Any] = field(default_factory=list)
    partition_schema: pa.Schema | None = None  # the columns a partitioned directory's names give


# ---------------------------------------------------------------------------------- options

def _bad_option(fmt: str, key: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"{fmt} data source: option {key}={value!r} is not supported; {allowed}")


def _opt(options: dict[str, str], *keys: str, default: str | None = None) -> str | None:
    """The first of *keys* set (case-insensitive, as Spark's options are)."""
    lower = {k.lower(): v for k, v in options.items()}
    for k in keys:
        if k.lower() in lower:
            return lower[k.lower()]
    return default


def _flag(options: dict[str, str], key: str, fmt: str, default: bool = False) -> bool:
    value = _opt(options, key)
    if value is None:
        return default
    if value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _bad_option(fmt, key, value, "use true or false")


def _mode(options: dict[str, str], fmt: str) -> str:
    value = (_opt(options, "mode") or "PERMISSIVE").upper()
    if value not in _MODES:
        raise _bad_option(fmt, "mode", value, "use PERMISSIVE, DROPMALFORMED or FAILFAST")
    return value


def _check_encoding(options: dict[str, str], fmt: str) -> None:
    value = _opt(options, "encoding", "charset")
    if value is not None and value.lower().replace("-", "").replace("_", "") not in ("utf8",):
        raise _bad_option(fmt, "encoding", value, "sparkctl reads and writes UTF-8 only")


def _char(options: dict[str, str], key: str, fmt: str, default: str | None, *aliases: str) -> str | None:
    value = _opt(options, key, *aliases, default=default)
    if value is None or value == "":
        return None if value is None else ""
    value = {"\\t": "\t", "tab": "\t"}.get(value, value)
    if len(value) != 1:
        raise _bad_option(fmt, key, value, "use a single character")
    return value


_ISO_FORMATS = {"dateFormat": ("yyyy-MM-dd",),
                "timestampFormat": ("yyyy-MM-dd'T'HH:mm:ss[.SSS][XXX]", "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
                                    "yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ss")}


def _check_formats(options: dict[str, str], fmt: str) -> None:
    """Dates and timestamps are read and written in ISO form only: other patterns are refused."""
    for key, allowed in _ISO_FORMATS.items():
        value = _opt(options, key)
        if value is not None and value not in allowed:
            raise _bad_option(fmt, key, value, f"sparkctl reads and writes ISO dates and timestamps only "
                                               f"({', '.join(allowed)})")


def _line_sep(options: dict[str, str], fmt: str) -> str | None:
    """The ``lineSep`` option, None when unset (then \\n, \\r\\n and \\r all end a line)."""
    sep = _opt(options, "lineSep")
    if sep is None or sep == "":
        return None
    return sep


def _check_format(fmt: str) -> str:
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise ValueError(f"data source format {fmt!r} is not supported; use one of {', '.join(FORMATS)}")
    return fmt


def _list_files(urls: list[str], conf: Any) -> list[tuple[FileSystem, FileStatus]]:
    return [found for url in urls for found in list_inputs(url, conf)]


def _whole_files(files: list[tuple[FileSystem, FileStatus]]) -> list[ReadSplit]:
    return [ReadSplit(fs, st.path, 0, st.size) for fs, st in files]


def _line_splits(files: list[tuple[FileSystem, FileStatus]], min_partitions: int) -> list[ReadSplit]:
    return [ReadSplit(s.fs, s.path, s.start, s.length) for s in file_splits(files, min_partitions, False)]

def _codec(fmt: str, options: dict[str, str]) -> str | None:
    value = _opt(options, "compression", "codec")
    if value is None:
        return None
    key = value.lower()
    if key not in _TEXT_CODECS:
        raise _bad_option(fmt, "compression", value, f"use one of {', '.join(_TEXT_CODECS)}")
    return None if key in ("none", "uncompressed") else key


class _Counting:
    """A writable file that counts the bytes written through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.count = raw, 0

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.count += len(data)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()

    def tell(self) -> int:
        return self.count

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return False


# ---------------------------------------------------------------------------------- raw input

def _whole_bytes(split: ReadSplit) -> bytes:
    """A whole file's contents, decompressed by its extension."""
    with split.fs.open(split.path, "rb") as raw, decompressing(raw, split.path) as f:
        return f.read()  # type: ignore[no-any-return]


def _split_bytes(split: ReadSplit) -> bytes:
    """The whole lines of a split (a compressed file: all of it, read by its first split)."""
    if is_compressed(split.path):
        return _whole_bytes(split) if split.start == 0 else b""
    return b"".join(_read_range(split.fs, split.path, split.start, split.length))


def _lines(data: bytes) -> list[str]:
    return _split_lines(data, True) if data else []
