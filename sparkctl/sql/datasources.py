"""File data sources for DataFrames: text, csv, json and parquet, read and written as Arrow.

The driver plans a scan (:func:`plan_scan`): it lists the files through the filesystem seam
(``sparkctl.fs``), settles the schema (given, read from a parquet footer, or inferred from
the data as Spark infers it) and cuts the files into :class:`ReadSplit` s. Each task reads
its split as record batches (:func:`read_split`) and writes its partition's file
(:func:`write_partition`); partitioned directories, save modes and the commit protocol
belong to the caller (``readwriter.py``).

Splits: line formats are cut into byte ranges as ``textFile`` cuts them (Hadoop's line
rule, ``sparkctl.rdd.sources``); compressed files, ``multiLine`` csv/json and ``wholetext``
are read whole by one task; a parquet split reads the row groups whose midpoint falls in
its byte range, as parquet-mr assigns them, so a large file gives several partitions.

Parsing is vectorized where Arrow can do it: csv is split into string columns by
``pyarrow.csv`` and converted column by column with Arrow kernels (Python's ``csv`` module
only re-reads a block that has rows of the wrong width); JSON lines go through
``pyarrow.json`` when the block fits the schema, else through Python's ``json`` module line
by line (type conflicts kept as text, malformed lines, Spark's ``_corrupt_record``).

Schema inference reads the input on the driver, as Spark does, up to :data:`INFER_LIMIT`
bytes of it (the rest is read with the schema the first part gave).
"""
from __future__ import annotations

import base64
import csv
import datetime
import decimal
import io
import json
import posixpath
import re
from dataclasses import dataclass, field, replace
from typing import IO, Any, Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.fs import FileStatus, FileSystem, filesystem_for
from sparkctl.rdd.codecs import decompressing, is_compressed, output_codec
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


# ---------------------------------------------------------------------------------- planning

def _list_files(urls: list[str], conf: Any) -> list[tuple[FileSystem, FileStatus]]:
    return [found for url in urls for found in list_inputs(url, conf)]


def _whole_files(files: list[tuple[FileSystem, FileStatus]]) -> list[ReadSplit]:
    return [ReadSplit(fs, st.path, 0, st.size) for fs, st in files]


def _line_splits(files: list[tuple[FileSystem, FileStatus]], min_partitions: int) -> list[ReadSplit]:
    return [ReadSplit(s.fs, s.path, s.start, s.length) for s in file_splits(files, min_partitions, False)]


def plan_scan(fmt: str, urls: list[str], options: dict[str, str], schema: pa.Schema | None, conf: Any,
              min_partitions: int) -> ScanPlan:
    """The files *urls* name, cut into splits, with the schema their rows have."""
    fmt = _check_format(fmt)
    options = dict(options)
    _check_encoding(options, fmt)
    _check_formats(options, fmt)
    files, partitions = _partitioned_files(list(urls), conf)
    if partitions is None:
        return _PLANNERS[fmt](files, options, schema, max(1, min_partitions))
    part_schema, values_of = partitions
    data_schema = None
    if schema is not None:  # a given schema names the partition columns too
        data_schema = pa.schema([f for f in schema if f.name not in part_schema.names])
    plan = _PLANNERS[fmt](files, options, data_schema, max(1, min_partitions))
    plan.splits = [replace(s, partition_values=values_of[s.path]) for s in plan.splits]
    plan.schema = pa.schema(list(plan.schema) + [f for f in part_schema if f.name not in plan.schema.names])
    plan.partition_schema = part_schema
    return plan


def _partitioned_files(urls: list[str], conf: Any) -> tuple[list[tuple[FileSystem, FileStatus]], Any]:
    """The data files, and for Hive-style ``k=v`` directories (what ``partitionBy`` writes),
    (the partition columns' schema, each file's values) as Spark discovers them; else None."""
    if len(urls) != 1 or "," in urls[0] or _glob_magic(urls[0]):
        return _list_files(urls, conf), None
    fs = filesystem_for(urls[0], conf)
    root = fs.strip(urls[0])
    if not fs.isdir(root):
        return _list_files(urls, conf), None
    base = root.rstrip("/")
    found = [st for st in fs.find(root)
             if not any(part.startswith(("_", ".")) for part in posixpath.relpath(st.path, base).split("/"))]
    if not any("=" in part for st in found for part in posixpath.relpath(posixpath.dirname(st.path), base).split("/")):
        return _list_files(urls, conf), None
    part_schema, values = discover_partitions(fs, root, found)
    return [(fs, st) for st in found], (part_schema, {st.path: v for st, v in zip(found, values)})


def _glob_magic(url: str) -> bool:
    return any(c in url for c in "*?[")


def read_split(plan: ScanPlan, split: ReadSplit, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The rows of one split as record batches of *plan*'s schema (only *columns*, when given)."""
    names = columns if columns is not None else plan.columns
    part_schema = getattr(plan, "partition_schema", None)
    if part_schema is not None:
        yield from _with_partition_values(plan, split, names, part_schema)
        return
    for batch in _READERS[plan.format](plan, split, names):
        if batch.num_rows == 0:
            continue
        if names is not None and batch.schema.names != list(names):
            batch = pa.RecordBatch.from_arrays([batch.column(n) for n in names], names=list(names))
        yield batch


def _with_partition_values(plan: ScanPlan, split: ReadSplit, names: list[str] | None,
                           part_schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """A partitioned directory's rows: the file's columns, then its directories' values."""
    wanted = list(names) if names is not None else plan.schema.names
    data_cols = [n for n in wanted if n not in part_schema.names]
    if not data_cols:  # only partition columns: the file still says how many rows
        data_cols = [f.name for f in plan.schema if f.name not in part_schema.names][:1]
    values = dict(zip(part_schema.names, split.partition_values))
    for batch in _READERS[plan.format](plan, split, data_cols):
        if batch.num_rows == 0:
            continue
        arrays = []
        for n in wanted:
            if n in values:
                arrays.append(pa.array([values[n]] * batch.num_rows, part_schema.field(n).type))
            else:
                arrays.append(batch.column(batch.schema.get_field_index(n)))
        yield pa.RecordBatch.from_arrays(arrays, names=wanted)


def write_partition(batches: Iterator[pa.RecordBatch], schema: pa.Schema, fmt: str, fs: FileSystem, path: str,
                    options: dict[str, str]) -> tuple[int, int]:
    """Write one partition's rows to the file *path*: (records, bytes) written."""
    fmt = _check_format(fmt)
    _check_encoding(options, fmt)
    _check_formats(options, fmt)
    if fmt == "parquet":
        return _write_parquet(batches, schema, fs, path, options)
    encode = {"text": _text_lines, "csv": _csv_lines, "json": _json_lines}[fmt]
    codec = _codec(fmt, options)
    records = 0
    with fs.open(path, "wb") as raw:
        counted = _Counting(raw)
        out: Any = counted if codec is None else output_codec(codec)[1](counted)  # type: ignore[arg-type]
        if fmt == "csv" and _flag(options, "header", fmt):
            out.write(_csv_header(schema, options))
        for batch in batches:
            if batch.num_rows:
                out.write(encode(batch, options))
                records += batch.num_rows
        if out is not counted:
            out.close()
    return records, counted.count


def file_extension(fmt: str, options: dict[str, str]) -> str:
    """The part files' extension, as Spark names them (``.csv.gz``, ``.snappy.parquet``)."""
    fmt = _check_format(fmt)
    if fmt == "parquet":
        return _parquet_codec(options)[1] + ".parquet"
    base = {"text": ".txt", "csv": ".csv", "json": ".json"}[fmt]
    codec = _codec(fmt, options)
    return base + (output_codec(codec)[0] if codec else "")


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


# ---------------------------------------------------------------------------------- text

TEXT_SCHEMA = pa.schema([pa.field("value", pa.string())])


def _plan_text(files: list, options: dict[str, str], schema: pa.Schema | None, n: int) -> ScanPlan:
    whole = _flag(options, "wholetext", "text") or _line_sep(options, "text") not in (None, "\n", "\r\n", "\r")
    splits = _whole_files(files) if whole else _line_splits(files, n)
    return ScanPlan("text", schema or TEXT_SCHEMA, splits, options)


def _read_text(plan: ScanPlan, split: ReadSplit, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
    name = plan.schema.names[0]
    if _flag(plan.options, "wholetext", "text"):
        lines = [_whole_bytes(split).decode("utf-8", "replace")]
    else:
        sep = _line_sep(plan.options, "text")
        if sep not in (None, "\n", "\r\n", "\r"):
            text = _whole_bytes(split).decode("utf-8", "replace")
            lines = text.split(sep)
            if lines and lines[-1] == "":
                lines.pop()
        else:
            lines = _lines(_split_bytes(split))
    for i in range(0, len(lines), BATCH_ROWS):
        yield pa.RecordBatch.from_arrays([pa.array(lines[i:i + BATCH_ROWS], pa.string())], names=[name])


def _text_lines(batch: pa.RecordBatch, options: dict[str, str]) -> bytes:
    sep = _line_sep(options, "text") or "\n"
    return _joined_lines(pc.fill_null(batch.column(0).cast(pa.string()), ""), sep)


def _joined_lines(col: Any, sep: str = "\n") -> bytes:
    """The strings of a column, each ended by *sep*, as one bytes object (straight from
    the Arrow buffers: no Python string a row)."""
    if len(col) == 0:
        return b""
    ended = pa.concat_arrays([pc.binary_join_element_wise(col, sep, "")])
    _, offsets, data = ended.buffers()
    first = int.from_bytes(offsets.to_pybytes()[:4], "little", signed=True)
    last = int.from_bytes(offsets.to_pybytes()[-4:], "little", signed=True)
    return data.to_pybytes()[first:last]


# ---------------------------------------------------------------------------------- csv

@dataclass
class _CsvOptions:
    header: bool
    sep: str
    quote: str | None
    escape: str | None
    comment: str | None
    null_value: str
    mode: str
    multiline: bool

    @classmethod
    def of(cls, options: dict[str, str]) -> "_CsvOptions":
        sep = _opt(options, "sep", "delimiter", default=",") or ","
        sep = {"\\t": "\t", "tab": "\t"}.get(sep, sep)
        if len(sep) != 1:
            raise _bad_option("csv", "sep", sep, "sparkctl supports a single-character separator")
        quote = _char(options, "quote", "csv", '"')
        return cls(header=_flag(options, "header", "csv"), sep=sep, quote=quote or None,
                   escape=_char(options, "escape", "csv", "\\") or None,
                   comment=_char(options, "comment", "csv", None) or None,
                   null_value=_opt(options, "nullValue", default="") or "", mode=_mode(options, "csv"),
                   multiline=_flag(options, "multiLine", "csv"))


def _plan_csv(files: list, options: dict[str, str], schema: pa.Schema | None, n: int) -> ScanPlan:
    o = _CsvOptions.of(options)
    _flag(options, "inferSchema", "csv")
    if _line_sep(options, "csv") not in (None, "\n", "\r\n", "\r"):
        raise _bad_option("csv", "lineSep", _line_sep(options, "csv"), "sparkctl reads csv lines ending in \\n, "
                          "\\r\\n or \\r")
    splits = _whole_files(files) if o.multiline else _line_splits(files, n)
    if schema is None:
        names = _csv_names(files, o)
        schema = pa.schema([pa.field(c, pa.string()) for c in names])
        if _flag(options, "inferSchema", "csv") and files:
            schema = _infer_csv(ScanPlan("csv", schema, splits, {**options, "mode": "PERMISSIVE"}))
    return ScanPlan("csv", schema, splits, options)


def _csv_first_record(files: list, o: _CsvOptions) -> list[str] | None:
    for fs, st in files:
        data = _whole_bytes(ReadSplit(fs, st.path, 0, st.size)) if is_compressed(st.path) or o.multiline \
            else b"".join(_read_range(fs, st.path, 0, min(st.size, 1 << 20)))
        for row in _py_csv(_drop_comments(data, o).decode("utf-8", "replace"), o):
            if row:
                return row
    return None


def _csv_names(files: list, o: _CsvOptions) -> list[str]:
    """Spark's column names: the header's (empty ones ``_c<i>``, duplicates numbered), or
    ``_c0``, ``_c1``... as many as the first record has fields."""
    first = _csv_first_record(files, o) or []
    if not o.header:
        return [f"_c{i}" for i in range(len(first))]
    names = [v if v not in ("", None) and v != o.null_value else f"_c{i}" for i, v in enumerate(first)]
    lowered = [x.lower() for x in names]
    return [f"{x}{i}" if lowered.count(x.lower()) > 1 else x for i, x in enumerate(names)]


def _drop_comments(data: bytes, o: _CsvOptions) -> bytes:
    if not o.comment:
        return data
    return re.sub(rb"(?m)^" + re.escape(o.comment.encode()) + rb"[^\n]*(\n|$)", b"", data)


def _py_csv(text: str, o: _CsvOptions) -> Iterator[list[str]]:
    return csv.reader(io.StringIO(text, newline=""), delimiter=o.sep, quotechar=o.quote or "\0",
                      escapechar=o.escape, doublequote=True, strict=False,
                      quoting=csv.QUOTE_MINIMAL if o.quote else csv.QUOTE_NONE)


def _csv_strings(data: bytes, names: list[str], o: _CsvOptions, skip_header: bool) -> tuple[pa.Table, list[str]]:
    """The split's records as string columns (nulls where Spark reads null) and the text of
    the records that had the wrong number of fields."""
    import pyarrow.csv as pcsv
    data = _drop_comments(data, o)
    bad: list[str] = []

    def invalid(row: Any) -> str:
        bad.append(row.text)
        return "skip"

    types = {n: pa.string() for n in names}
    try:
        table = pcsv.read_csv(
            io.BytesIO(data),
            read_options=pcsv.ReadOptions(column_names=names, skip_rows=1 if skip_header else 0, use_threads=False,
                                          block_size=max(1 << 20, min(len(data) + 1, 1 << 30))),
            parse_options=pcsv.ParseOptions(delimiter=o.sep, quote_char=o.quote or False, escape_char=o.escape or False,
                                            double_quote=True, newlines_in_values=o.multiline,
                                            invalid_row_handler=invalid),
            convert_options=pcsv.ConvertOptions(column_types=types, null_values=["", o.null_value],
                                                strings_can_be_null=True, quoted_strings_can_be_null=True))
    except pa.ArrowInvalid as e:
        if "Empty CSV file" in str(e):
            return pa.table({n: pa.array([], pa.string()) for n in names}), []
        bad.append(str(e))
        table = None
    if table is not None and (not bad or o.mode == "DROPMALFORMED"):
        return table, bad
    if o.mode == "FAILFAST":
        _failfast(bad[0])
    # PERMISSIVE: short records padded with nulls, long ones cut, as Spark reads them
    rows = list(_py_csv(data.decode("utf-8", "replace"), o))
    if skip_header and rows:
        rows = rows[1:]
    rows = [r for r in rows if r]
    cols = [[(r[i] if i < len(r) else None) for r in rows] for i in range(len(names))]
    cols = [[None if v in ("", o.null_value) else v for v in c] for c in cols]
    return pa.table({n: pa.array(c, pa.string()) for n, c in zip(names, cols)}), []


def _failfast(record: str) -> None:
    raise ValueError(f"[MALFORMED_RECORD_IN_PARSING] Malformed records are detected in record parsing: {record}. "
                     "Parse Mode: FAILFAST. To process malformed records as null result, try setting the option "
                     "'mode' as 'PERMISSIVE'.")


def _read_csv(plan: ScanPlan, split: ReadSplit, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
    o = _CsvOptions.of(plan.options)
    data = _whole_bytes(split) if o.multiline else _split_bytes(split)
    if not data:
        return
    names = plan.schema.names
    table, _ = _csv_strings(data, names, o, o.header and split.start == 0)
    wanted = list(columns) if columns else names
    # every column is converted when malformed rows are dropped or fail the read: a bad
    # value in a column the query does not use still makes its row malformed, as in Spark
    check = names if o.mode != "PERMISSIVE" else wanted
    converted: dict[str, pa.Array] = {}
    bad_rows = None
    for name in check:
        typ = plan.schema.field(name).type
        values, bad = _from_strings(table.column(name), typ)
        converted[name] = values
        if o.mode != "PERMISSIVE" and bad is not None:
            bad_rows = bad if bad_rows is None else pc.or_(bad_rows, bad)
    out = pa.table({n: converted[n] for n in wanted})
    if bad_rows is not None and pc.any(bad_rows).as_py():
        if o.mode == "FAILFAST":
            first = pc.index(bad_rows, True).as_py()
            _failfast(str([table.column(n)[first].as_py() for n in names]))
        out = out.filter(pc.invert(bad_rows))
    yield from out.combine_chunks().to_batches(BATCH_ROWS)


_INT = r"^[+-]?\d+$"
_FLOAT = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?[dDfF]?$"
_SPECIAL_FLOAT = {"NaN": "nan", "Infinity": "inf", "+Infinity": "inf", "-Infinity": "-inf", "Inf": "inf",
                  "+Inf": "inf", "-Inf": "-inf"}
_DATE = r"^\d{4}-\d{1,2}-\d{1,2}$"
_TS = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$"
_ZONE = r"(Z|[+-]\d{2}:?\d{2})$"


#: types Arrow parses from text as Spark does (where it refuses, the patterns below decide)
_STRICT_CASTS = (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.date32())


def _matches(col: pa.ChunkedArray | pa.Array, pattern: str) -> pa.Array:
    return pc.fill_null(pc.match_substring_regex(col, pattern), False)


def _masked_cast(col: Any, ok: Any, typ: pa.DataType) -> Any:
    """*col* cast to *typ* where *ok*, null elsewhere. The patterns that make *ok* let few
    bad values through (2024-02-30, an integer past the long range): when one gets as far
    as the cast, the column is cast value by value and that value is null."""
    masked = pc.if_else(ok, col, pa.scalar(None, pa.string()))
    try:
        return pc.cast(masked, typ)
    except (pa.ArrowInvalid, OverflowError):
        return pa.array([_cast_or_none(v, typ) for v in masked], typ)


def _cast_or_none(value: pa.Scalar, typ: pa.DataType) -> Any:
    try:
        return value.cast(typ)
    except (pa.ArrowInvalid, OverflowError):
        return None


def _from_strings(col: Any, typ: pa.DataType) -> tuple[Any, Any]:
    """(column of *typ*, rows whose non-null text did not parse, or None) from a string column."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    present = pc.is_valid(col)
    if typ in _STRICT_CASTS:
        try:  # Arrow's own parser takes the usual text and refuses the rest: then look closer
            return pc.cast(col, typ), None
        except (pa.ArrowInvalid, OverflowError):
            pass
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return col.cast(typ), None
    if pa.types.is_integer(typ):
        trimmed = col
        ok = _matches(trimmed, _INT)
        wide = _masked_cast(trimmed, pc.and_(ok, pc.less_equal(pc.utf8_length(trimmed), 19)), pa.int64())
        info = {8: (-2**7, 2**7 - 1), 16: (-2**15, 2**15 - 1), 32: (-2**31, 2**31 - 1), 64: (-2**63, 2**63 - 1)}
        lo, hi = info[typ.bit_width]
        fits = pc.fill_null(pc.and_(pc.greater_equal(wide, lo), pc.less_equal(wide, hi)), False)
        values = pc.cast(pc.if_else(fits, wide, pa.scalar(None, pa.int64())), typ)
    elif pa.types.is_floating(typ):
        trimmed = pc.utf8_trim_whitespace(col)
        for word, repl in _SPECIAL_FLOAT.items():
            trimmed = pc.if_else(pc.fill_null(pc.equal(trimmed, word), False), repl, trimmed)
        trimmed = pc.replace_substring_regex(trimmed, "[dDfF]$", "")
        ok = pc.or_(_matches(trimmed, _FLOAT), pc.is_in(trimmed, pa.array(["nan", "inf", "-inf"])))
        values = _masked_cast(trimmed, pc.fill_null(ok, False), pa.float64()).cast(typ)
    elif pa.types.is_boolean(typ):
        low = pc.utf8_lower(col)
        ok = pc.fill_null(pc.is_in(low, pa.array(["true", "false"])), False)
        values = pc.if_else(ok, pc.equal(low, "true"), pa.scalar(None, pa.bool_()))
    elif pa.types.is_decimal(typ):
        trimmed = pc.utf8_trim_whitespace(col)
        ok = _matches(trimmed, r"^[+-]?(\d+\.?\d*|\.\d+)$")
        values = _decimal_cast(trimmed, ok, typ)
    elif pa.types.is_date32(typ):
        trimmed = pc.utf8_trim_whitespace(col)
        ok = _matches(trimmed, r"^\d{4}-\d{2}-\d{2}$")
        values = _masked_cast(trimmed, ok, pa.timestamp("s")).cast(pa.date32())
    elif pa.types.is_timestamp(typ):
        values = _timestamps(pc.utf8_trim_whitespace(col), typ)
    else:
        raise ValueError(f"csv data source: a column of type {typ} cannot be read from csv")
    bad = pc.and_(present, pc.is_null(values))
    return values, bad


def _decimal_cast(col: Any, ok: Any, typ: pa.DataType) -> Any:
    """Decimal text as *typ*, rounded half up to its scale as Spark rounds; null where it
    does not fit. Arrow casts what needs no rounding; Python's decimal does the rest."""
    try:
        return pc.cast(pc.if_else(ok, col, pa.scalar(None, pa.string())), typ)
    except (pa.ArrowInvalid, OverflowError):
        pass
    values: list[Any] = []
    for text, good in zip(col.to_pylist(), ok.to_pylist()):
        if not good:
            values.append(None)
            continue
        d = decimal.Decimal(text).quantize(decimal.Decimal(1).scaleb(-typ.scale), rounding=decimal.ROUND_HALF_UP)
        values.append(d if len(d.as_tuple().digits) <= typ.precision else None)
    return pa.array(values, typ)


def _timestamps(col: Any, typ: pa.DataType) -> Any:
    """ISO timestamps: a zone offset where given (else UTC, the session time zone)."""
    ok = _matches(col, _TS)
    ok_date = _matches(col, r"^\d{4}-\d{2}-\d{2}$")
    text = pc.if_else(ok_date, pc.binary_join_element_wise(col, " 00:00:00", ""), col)
    ok = pc.or_(ok, ok_date)
    zoned = pc.and_(ok, _matches(text, _ZONE))
    text = pc.replace_substring_regex(text, r"([+-]\d{2})(\d{2})$", r"\1:\2")
    naive = pc.and_(ok, pc.invert(zoned))
    local = _masked_cast(text, naive, pa.timestamp("us"))
    if typ.tz is None:
        return pc.if_else(zoned, _masked_cast(text, zoned, pa.timestamp("us", "UTC")).cast(pa.timestamp("us")),
                          local)
    return pc.if_else(zoned, _masked_cast(text, zoned, pa.timestamp("us", "UTC")), local.cast(typ))


def _infer_csv(plan: ScanPlan) -> pa.Schema:
    """Spark's csv inference over the input (up to INFER_LIMIT bytes): per column the
    narrowest of int, bigint, double, date, timestamp, boolean that every non-null value
    parses as, else string; a column of nulls only is string. (Spark widens value by value;
    checking each type against the whole column gives the same result.)"""
    batches: list[pa.RecordBatch] = []
    seen = 0
    for split in plan.splits:
        if seen >= INFER_LIMIT:
            break
        seen += split.length
        batches += _read_csv(plan, split, None)
    return pa.schema([pa.field(name, _infer_column([b.column(i) for b in batches]))
                      for i, name in enumerate(plan.schema.names)])


def _infer_column(chunks: list[pa.Array]) -> pa.DataType:
    chunks = [c for c in (pc.drop_null(c) for c in chunks) if len(c)]
    if not chunks:
        return pa.string()
    head = chunks[0].slice(0, 1000)
    for typ in (pa.int32(), pa.int64(), pa.float64(), pa.date32(), pa.timestamp("us", "UTC"), pa.bool_()):
        # a sample rules most types out cheaply; the whole column decides the rest
        if _all_parse(head, typ) and all(_all_parse(c, typ) for c in chunks):
            return typ
    return pa.string()


def _all_parse(values: pa.Array, typ: pa.DataType) -> bool:
    bad = _from_strings(values, typ)[1]
    return bad is None or not pc.any(bad).as_py()


_BLANKS = "".join(chr(i) for i in range(33))  # what the csv writer trims: characters up to the space


def _csv_quote(col: Any, o: _CsvOptions, options: dict[str, str] | None = None) -> Any:
    """Spark's csv field text: leading and trailing blanks trimmed (Spark's writer default);
    quoted when it holds the separator, a quote or a line break, starts with ``#`` (the
    comment character), or is empty; inside quotes the escape character and the quote are
    escaped; a null is an empty field."""
    options = options or {}
    if _flag(options, "ignoreLeadingWhiteSpace", "csv", True):
        col = pc.utf8_ltrim(col, _BLANKS)
    if _flag(options, "ignoreTrailingWhiteSpace", "csv", True):
        col = pc.utf8_rtrim(col, _BLANKS)
    quote = o.quote or '"'
    escape = o.escape or "\\"
    comment = o.comment or "#"
    special = "[" + re.escape(o.sep + quote + "\r\n") + "]"
    needs = pc.or_(pc.or_(_matches(col, special), pc.fill_null(pc.equal(col, ""), False)),
                   pc.fill_null(pc.starts_with(col, comment), False))
    escaped = col if escape == quote else pc.replace_substring(col, escape, escape + escape)
    escaped = pc.replace_substring(escaped, quote, escape + quote)
    quoted = pc.binary_join_element_wise(quote, escaped, quote, "")
    return pc.fill_null(pc.if_else(needs, quoted, col), "")


def _csv_header(schema: pa.Schema, options: dict[str, str]) -> bytes:
    o = _CsvOptions.of(options)
    names = _csv_quote(pa.array(schema.names, pa.string()), o).to_pylist()
    return (o.sep.join(names) + "\n").encode("utf-8")


def _csv_lines(batch: pa.RecordBatch, options: dict[str, str]) -> bytes:
    o = _CsvOptions.of(options)
    cols = [_csv_quote(_to_text(batch.column(i), True), o, options) for i in range(batch.num_columns)]
    if not cols:
        return b"\n" * batch.num_rows
    joined = pc.binary_join_element_wise(*cols, o.sep) if len(cols) > 1 else cols[0]
    return _joined_lines(joined)


# ---------------------------------------------------------------------------------- values as text

def _java_double(x: float) -> str:
    """Java's Double.toString of *x* (what Spark writes): ``1.0``, ``1.0E20``, ``NaN``."""
    return _java_number(repr(x))


def _java_number(text: str) -> str:
    """A float's shortest decimal text (``1e+20``, ``1``, ``nan``) as Java prints it."""
    low = text.lower()
    if "nan" in low:
        return "NaN"
    if "inf" in low:
        return "-Infinity" if low.startswith("-") else "Infinity"
    d = decimal.Decimal(text)
    if d == 0:
        return "-0.0" if d.is_signed() else "0.0"
    if decimal.Decimal("1e-3") <= abs(d) < decimal.Decimal("1e7"):
        plain = format(d, "f")
        return plain if "." in plain else plain + ".0"
    t = d.normalize().as_tuple()
    digits = "".join(map(str, t.digits))
    exp = len(digits) - 1 + int(t.exponent)
    return f"{'-' if t.sign else ''}{digits[0]}.{digits[1:] or '0'}E{exp}"


def _float_text(col: Any) -> Any:
    """Floats as Java prints them, vectorized: Arrow's shortest text, ``.0`` added to whole
    numbers; only values Java prints in E notation (or NaN, Infinity) go through Python."""
    text = pc.cast(col, pa.string())
    mag = pc.abs(col.cast(pa.float64()))
    plain = pc.fill_null(pc.and_(pc.is_finite(mag), pc.or_(pc.equal(mag, 0), pc.and_(
        pc.greater_equal(mag, 1e-3), pc.less(mag, 1e7)))), True)
    whole = pc.invert(_matches(text, "[.eEn]"))
    text = pc.if_else(whole, pc.binary_join_element_wise(text, ".0", ""), text)
    if pc.all(plain).as_py():
        return text
    special = [None if (v is None or ok) else _java_number(v) for v, ok in zip(text.to_pylist(), plain.to_pylist())]
    return pc.if_else(plain, text, pa.array(special, pa.string()))


def _to_text(col: Any, for_csv: bool) -> Any:
    """A column as the text Spark writes for it (nulls stay null)."""
    typ = col.type
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return col.cast(pa.string())
    if pa.types.is_floating(typ):
        return _float_text(col)
    if pa.types.is_timestamp(typ):
        ms = pc.cast(col.cast(pa.timestamp("us", typ.tz)), pa.timestamp("ms", typ.tz), safe=False)
        text = pc.strftime(ms, "%Y-%m-%dT%H:%M:%S")
        return pc.binary_join_element_wise(text, "Z" if typ.tz else "", "")
    if pa.types.is_date(typ) or pa.types.is_integer(typ) or pa.types.is_decimal(typ) or pa.types.is_boolean(typ):
        return col.cast(pa.string())
    if pa.types.is_null(typ):
        return pa.nulls(len(col), pa.string())
    if pa.types.is_binary(typ):
        return pa.array([None if v is None else base64.b64encode(v).decode() for v in col.to_pylist()], pa.string())
    if for_csv:
        raise ValueError(f"csv data source: a column of type {typ} cannot be written as csv "
                         "([UNSUPPORTED_DATA_TYPE_FOR_DATASOURCE])")
    return col


# ---------------------------------------------------------------------------------- json

def _plan_json(files: list, options: dict[str, str], schema: pa.Schema | None, n: int) -> ScanPlan:
    _mode(options, "json")
    multiline = _flag(options, "multiLine", "json")
    splits = _whole_files(files) if multiline else _line_splits(files, n)
    if schema is None:
        schema = _infer_json(ScanPlan("json", pa.schema([]), splits, options))
    return ScanPlan("json", schema, splits, options)


def _json_records(plan: ScanPlan, split: ReadSplit) -> Iterator[tuple[str, Any]]:
    """(raw text, parsed object or _BAD) per record of the split."""
    if _flag(plan.options, "multiLine", "json"):
        text = _whole_bytes(split).decode("utf-8", "replace")
        if not text.strip():
            return
        yield from _json_values(text)
        return
    for line in _lines(_split_bytes(split)):
        if line.strip():
            yield from _json_values(line)


_BAD = object()


def _json_values(text: str) -> Iterator[tuple[str, Any]]:
    try:
        value = json.loads(text)
    except ValueError:
        yield text, _BAD
        return
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        for v in value:
            yield text, v
    elif isinstance(value, dict):
        yield text, value
    else:
        yield text, _BAD


def _json_type(value: Any) -> pa.DataType:
    """Spark's JSON type of one value (fields sorted by name)."""
    if value is None:
        return pa.null()
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, int):
        if -2**63 <= value < 2**63:
            return pa.int64()
        digits = len(str(abs(value)))
        return pa.decimal128(digits, 0) if digits <= 38 else pa.float64()
    if isinstance(value, float):
        return pa.float64()
    if isinstance(value, str):
        return pa.string()
    if isinstance(value, dict):
        return pa.struct([pa.field(k, _json_type(value[k])) for k in sorted(value)])
    if isinstance(value, list):
        elem: pa.DataType = pa.null()
        for v in value:
            elem = _merge(elem, _json_type(v))
        return pa.list_(elem)
    return pa.string()


def _merge(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """Spark's JSON type widening: nulls give way, bigint and double make double, structs
    and arrays merge, anything else becomes string."""
    if a == b:
        return a
    if pa.types.is_null(a):
        return b
    if pa.types.is_null(b):
        return a
    numeric = (pa.types.is_int64(a) or pa.types.is_float64(a) or pa.types.is_decimal(a),
               pa.types.is_int64(b) or pa.types.is_float64(b) or pa.types.is_decimal(b))
    if all(numeric):
        if pa.types.is_float64(a) or pa.types.is_float64(b):
            return pa.float64()
        da = a if pa.types.is_decimal(a) else pa.decimal128(20, 0)
        db = b if pa.types.is_decimal(b) else pa.decimal128(20, 0)
        scale = max(da.scale, db.scale)
        precision = max(da.precision - da.scale, db.precision - db.scale) + scale
        return pa.decimal128(precision, scale) if precision <= 38 else pa.float64()
    if pa.types.is_struct(a) and pa.types.is_struct(b):
        fa = {f.name: f.type for f in a}
        fb = {f.name: f.type for f in b}
        return pa.struct([pa.field(k, _merge(fa.get(k, pa.null()), fb.get(k, pa.null())))
                          for k in sorted(set(fa) | set(fb))])
    if pa.types.is_list(a) and pa.types.is_list(b):
        return pa.list_(_merge(a.value_type, b.value_type))
    return pa.string()


_LONG_NUMBER = re.compile(rb"(?<![\d.])\d{19,}(?![\d.eE])")


def _arrow_inferred(data: bytes) -> pa.DataType | None:
    """The Spark type of a block of JSON lines from pyarrow.json's own inference, where
    that agrees with Spark's: None when a line is malformed, a field changes type, or a
    number is too long for pyarrow to keep exact (Spark makes it a decimal)."""
    import pyarrow.json as pjson
    if not data.strip() or _LONG_NUMBER.search(data):
        return None
    try:
        schema = pjson.read_json(io.BytesIO(data), read_options=pjson.ReadOptions(use_threads=False)).schema
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return _spark_json_type(pa.struct(list(schema)))


def _spark_json_type(typ: pa.DataType) -> pa.DataType:
    """pyarrow.json's inferred type as Spark's: fields sorted; strings it read as
    timestamps are strings (Spark infers no timestamps by default)."""
    if pa.types.is_struct(typ):
        return pa.struct(sorted((pa.field(f.name, _spark_json_type(f.type)) for f in typ), key=lambda f: f.name))
    if pa.types.is_list(typ):
        return pa.list_(_spark_json_type(typ.value_type))
    if pa.types.is_timestamp(typ) or pa.types.is_date(typ) or pa.types.is_time(typ):
        return pa.string()
    return typ


def _finish(typ: pa.DataType) -> pa.DataType:
    """Types left open by inference closed as Spark closes them: null becomes string."""
    if pa.types.is_null(typ):
        return pa.string()
    if pa.types.is_struct(typ):
        return pa.struct([pa.field(f.name, _finish(f.type)) for f in typ])
    if pa.types.is_list(typ):
        return pa.list_(_finish(typ.value_type))
    return typ


def _infer_json(plan: ScanPlan) -> pa.Schema:
    row: pa.DataType = pa.struct([])
    corrupt = False
    seen = 0
    multiline = _flag(plan.options, "multiLine", "json")
    for split in plan.splits:
        if seen >= INFER_LIMIT:
            break
        seen += split.length
        fast = None if multiline else _arrow_inferred(_split_bytes(split))
        if fast is not None:
            row = _merge(row, fast)
            continue
        for text, value in _json_records(plan, split):
            if value is _BAD:
                corrupt = True
            else:
                row = _merge(row, _json_type(value))
    fields = [pa.field(f.name, _finish(f.type)) for f in row]
    if corrupt and _mode(plan.options, "json") == "PERMISSIVE":
        name = _opt(plan.options, "columnNameOfCorruptRecord", default=CORRUPT) or CORRUPT
        fields = sorted(fields + [pa.field(name, pa.string())], key=lambda f: f.name)
    return pa.schema(fields)


class _Unfit(Exception):
    """A JSON value that does not fit its field's type."""


def _coerce(value: Any, typ: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if pa.types.is_boolean(typ):
        if isinstance(value, bool):
            return value
        raise _Unfit
    if pa.types.is_integer(typ):
        if isinstance(value, int) and not isinstance(value, bool) and -2**(typ.bit_width - 1) <= value < \
                2**(typ.bit_width - 1):
            return value
        raise _Unfit
    if pa.types.is_floating(typ):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and value in _SPECIAL_FLOAT:
            return float(_SPECIAL_FLOAT[value])
        raise _Unfit
    if pa.types.is_decimal(typ):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            d = decimal.Decimal(repr(value) if isinstance(value, float) else value)
            d = d.quantize(decimal.Decimal(1).scaleb(-typ.scale), rounding=decimal.ROUND_HALF_UP)
            if len(d.as_tuple().digits) <= typ.precision:
                return d
        raise _Unfit
    if pa.types.is_date32(typ) and isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            raise _Unfit from None
    if pa.types.is_timestamp(typ) and isinstance(value, str):
        try:
            ts = datetime.datetime.fromisoformat(value)
        except ValueError:
            raise _Unfit from None
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=datetime.timezone.utc)
        return ts if typ.tz else ts.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    if pa.types.is_binary(typ) and isinstance(value, str):
        return base64.b64decode(value)
    if pa.types.is_struct(typ) and isinstance(value, dict):
        out = {}
        for f in typ:
            try:
                out[f.name] = _coerce(value.get(f.name), f.type)
            except _Unfit:
                out[f.name] = None  # a nested field that does not fit is null, its record kept
        return out
    if pa.types.is_list(typ) and isinstance(value, list):
        return [_coerce(v, typ.value_type) for v in value]
    if pa.types.is_map(typ) and isinstance(value, dict):
        return [(k, _coerce(v, typ.item_type)) for k, v in value.items()]
    raise _Unfit


def _coerce_row(value: dict[str, Any], schema: pa.Schema, skip: str) -> tuple[dict[str, Any], bool]:
    """A parsed record as a row of *schema* (fields that do not fit are null) and whether one did not fit."""
    row, bad = {}, False
    for f in schema:
        if f.name == skip:
            continue
        try:
            row[f.name] = _coerce(value.get(f.name), f.type)
        except _Unfit:
            row[f.name], bad = None, True
    return row, bad


def _read_json(plan: ScanPlan, split: ReadSplit, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
    schema = plan.schema
    fast = _json_fast(plan, split)
    if fast is not None:
        yield from fast.to_batches(BATCH_ROWS)
        return
    mode = _mode(plan.options, "json")
    corrupt = _opt(plan.options, "columnNameOfCorruptRecord", default=CORRUPT) or CORRUPT
    keep_corrupt = corrupt in schema.names
    rows: list[dict[str, Any]] = []
    for text, value in _json_records(plan, split):
        if value is _BAD:
            row: dict[str, Any] = {}
            bad = True
        else:
            row, bad = _coerce_row(value, schema, corrupt)
        if bad:
            if mode == "FAILFAST":
                _failfast(text)
            if mode == "DROPMALFORMED":
                continue
            if keep_corrupt:
                row[corrupt] = text
        rows.append(row)
        if len(rows) >= BATCH_ROWS:
            yield pa.RecordBatch.from_pylist(rows, schema=schema)
            rows = []
    if rows:
        yield pa.RecordBatch.from_pylist(rows, schema=schema)


def _json_fast(plan: ScanPlan, split: ReadSplit) -> pa.Table | None:
    """The split parsed by pyarrow.json, where every record fits the schema; else None."""
    import pyarrow.json as pjson
    if _flag(plan.options, "multiLine", "json") or not plan.schema.names:
        return None
    if any(not _arrow_json_type(f.type) for f in plan.schema):
        return None
    data = _split_bytes(split)
    if not data.strip():
        return pa.table({n: pa.array([], t) for n, t in zip(plan.schema.names, plan.schema.types)})
    try:
        table = pjson.read_json(io.BytesIO(data), read_options=pjson.ReadOptions(use_threads=False),
                                parse_options=pjson.ParseOptions(explicit_schema=plan.schema,
                                                                 unexpected_field_behavior="ignore"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table.select(plan.schema.names).cast(plan.schema)


def _arrow_json_type(typ: pa.DataType) -> bool:
    """Types whose values pyarrow.json reads as Spark does (no dates, decimals, timestamps)."""
    if pa.types.is_struct(typ):
        return all(_arrow_json_type(f.type) for f in typ)
    if pa.types.is_list(typ):
        return _arrow_json_type(typ.value_type)
    return typ in (pa.string(), pa.int64(), pa.float64(), pa.bool_())


def _json_text(value: Any, typ: pa.DataType) -> str:
    if pa.types.is_floating(typ):
        text = _java_double(value)
        return text if text[-1].isdigit() else json.dumps(text)
    if pa.types.is_decimal(typ):
        return str(value)
    if pa.types.is_timestamp(typ):
        ts = value if value.tzinfo is None else value.astimezone(datetime.timezone.utc)
        return '"' + ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}" + \
            ("Z" if typ.tz else "") + '"'
    if pa.types.is_date(typ):
        return '"' + value.isoformat() + '"'
    if pa.types.is_binary(typ):
        return json.dumps(base64.b64encode(value).decode())
    if pa.types.is_struct(typ):
        parts = [json.dumps(f.name) + ":" + _json_text(value[f.name], f.type) for f in typ
                 if value.get(f.name) is not None]
        return "{" + ",".join(parts) + "}"
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return "[" + ",".join("null" if v is None else _json_text(v, typ.value_type) for v in value) + "]"
    if pa.types.is_map(typ):
        return "{" + ",".join(json.dumps(str(k)) + ":" + ("null" if v is None else _json_text(v, typ.item_type))
                              for k, v in value) + "}"
    return json.dumps(value, ensure_ascii=False)


def _json_lines(batch: pa.RecordBatch, options: dict[str, str]) -> bytes:
    """JSON lines as Spark writes them: null fields left out, timestamps in ISO with
    milliseconds and ``Z``. Built a column at a time: each field's ``"name":value`` text,
    joined with nulls skipped."""
    pieces = [pc.binary_join_element_wise(json.dumps(f.name, ensure_ascii=False) + ":", _json_column(col), "")
              for f, col in zip(batch.schema, batch.columns)]
    if not pieces:
        return b"{}\n" * batch.num_rows
    body = pc.binary_join_element_wise(*pieces, ",", null_handling="skip")
    return _joined_lines(pc.binary_join_element_wise("{", body, "}", ""))


_CONTROL = "[\x00-\x08\x0b\x0c\x0e-\x1f]"


def _json_column(col: Any) -> Any:
    """A column's values as JSON text (null where null)."""
    typ = col.type
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        col = col.cast(pa.string())
        if pc.any(_matches(col, _CONTROL)).as_py():
            return pa.array([None if v is None else json.dumps(v, ensure_ascii=False) for v in col.to_pylist()],
                            pa.string())
        for raw, escaped in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
            col = pc.replace_substring(col, raw, escaped)
        return pc.binary_join_element_wise('"', col, '"', "")
    if pa.types.is_floating(typ):
        text = _float_text(col)
        return pc.if_else(_matches(text, "[0-9]$"), text, pc.binary_join_element_wise('"', text, '"', ""))
    if pa.types.is_integer(typ) or pa.types.is_decimal(typ) or pa.types.is_boolean(typ):
        return col.cast(pa.string())
    if pa.types.is_timestamp(typ) or pa.types.is_date(typ):
        return pc.binary_join_element_wise('"', _to_text(col, False), '"', "")
    if pa.types.is_null(typ):
        return pa.nulls(len(col), pa.string())
    return pa.array([None if v is None else _json_text(v, typ) for v in col.to_pylist()], pa.string())


# ---------------------------------------------------------------------------------- parquet

def _spark_type(typ: pa.DataType, int96: bool = False) -> pa.DataType:
    """A parquet column's Arrow type as sparkctl maps Spark's types."""
    if pa.types.is_timestamp(typ):
        return pa.timestamp("us", "UTC" if (typ.tz or int96) else None)
    if pa.types.is_large_string(typ):
        return pa.string()
    if pa.types.is_large_binary(typ):
        return pa.binary()
    if pa.types.is_date64(typ):
        return pa.date32()
    if pa.types.is_uint8(typ) or pa.types.is_uint16(typ):
        return pa.int32()
    if pa.types.is_uint32(typ):
        return pa.int64()
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return pa.list_(pa.field(typ.value_field.name, _spark_type(typ.value_type)))
    if pa.types.is_struct(typ):
        return pa.struct([pa.field(f.name, _spark_type(f.type)) for f in typ])
    if pa.types.is_map(typ):
        return pa.map_(_spark_type(typ.key_type), _spark_type(typ.item_type))
    return typ


def _parquet_schema(pf: Any) -> pa.Schema:
    arrow = pf.schema_arrow
    int96 = {pf.schema.column(i).path.split(".")[0] for i in range(len(pf.schema))
             if pf.schema.column(i).physical_type == "INT96"}
    return pa.schema([pa.field(f.name, _spark_type(f.type, f.name in int96)) for f in arrow])


def _plan_parquet(files: list, options: dict[str, str], schema: pa.Schema | None, n: int) -> ScanPlan:
    merge = _flag(options, "mergeSchema", "parquet")
    files = [(fs, st) for fs, st in files if st.size > 0]
    if schema is None:
        if not files:
            raise ValueError("[UNABLE_TO_INFER_SCHEMA] Unable to infer schema for Parquet. It must be specified "
                             "manually.")
        # Spark takes one file's footer; with mergeSchema, every file's fields in the order first seen
        fields: dict[str, pa.Field] = {}
        for fs, st in files if merge else files[:1]:
            with fs.open(st.path, "rb") as f:
                import pyarrow.parquet as pq
                for fld in _parquet_schema(pq.ParquetFile(f)):
                    if fld.name in fields and fields[fld.name].type != fld.type:
                        raise ValueError(f"[CANNOT_MERGE_SCHEMAS] parquet column {fld.name} is "
                                         f"{fields[fld.name].type} in one file and {fld.type} in another")
                    fields.setdefault(fld.name, fld)
        schema = pa.schema(list(fields.values()))
    return ScanPlan("parquet", schema, _line_splits(files, n), options)


def _row_groups(pf: Any, start: int, length: int) -> list[int]:
    """The row groups whose midpoint lies in [start, start + length), parquet-mr's rule."""
    meta = pf.metadata
    groups = []
    for i in range(meta.num_row_groups):
        rg = meta.row_group(i)
        first = rg.column(0)
        offset = first.dictionary_page_offset if first.has_dictionary_page and first.dictionary_page_offset \
            else first.data_page_offset
        size = sum(rg.column(c).total_compressed_size for c in range(rg.num_columns))
        if start <= offset + size // 2 < start + length:
            groups.append(i)
    return groups


def _read_parquet(plan: ScanPlan, split: ReadSplit, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
    wanted = list(columns) if columns else plan.schema.names
    with split.fs.open(split.path, "rb") as f:
        import pyarrow.parquet as pq
        pf = pq.ParquetFile(f)
        groups = _row_groups(pf, split.start, split.length)
        if not groups:
            return
        present = set(pf.schema_arrow.names)
        read = [c for c in wanted if c in present]
        for batch in pf.iter_batches(row_groups=groups, columns=read, batch_size=BATCH_ROWS):
            arrays = []
            for name in wanted:
                typ = plan.schema.field(name).type
                if name in present:
                    col = batch.column(name)
                    arrays.append(col if col.type == typ else col.cast(typ))
                else:
                    arrays.append(pa.nulls(batch.num_rows, typ))
            yield pa.RecordBatch.from_arrays(arrays, names=wanted)


def _parquet_codec(options: dict[str, str]) -> tuple[str, str]:
    value = _opt(options, "compression", "codec", default="snappy") or "snappy"
    key = value.lower()
    if key not in _PARQUET_CODECS:
        raise _bad_option("parquet", "compression", value, f"use one of {', '.join(_PARQUET_CODECS)}")
    return _PARQUET_CODECS[key]


def _write_parquet(batches: Iterator[pa.RecordBatch], schema: pa.Schema, fs: FileSystem, path: str,
                   options: dict[str, str]) -> tuple[int, int]:
    import pyarrow.parquet as pq
    codec = _parquet_codec(options)[0]
    records = 0
    with fs.open(path, "wb") as raw:
        counted = _Counting(raw)
        with pq.ParquetWriter(counted, schema, compression=codec) as writer:
            for batch in batches:
                if batch.num_rows:
                    writer.write_batch(batch)
                    records += batch.num_rows
    return records, counted.count


# ---------------------------------------------------------------------------------- partitions

HIVE_DEFAULT_PARTITION = "__HIVE_DEFAULT_PARTITION__"


def discover_partitions(fs: FileSystem, root: str, files: list[Any]) -> tuple[pa.Schema, list[tuple]]:
    """Hive-style ``k=v`` directories between *root* and each file: (the partition columns
    with the types Spark infers for their values, each file's values). A value is
    URL-unquoted; ``__HIVE_DEFAULT_PARTITION__`` is null; a column is int if every value
    fits, else bigint, double, date, timestamp, and string otherwise."""
    import urllib.parse
    base = fs.strip(root).rstrip("/")
    found: list[list[tuple[str, str]]] = []
    for item in files:
        path = item.path if isinstance(item, FileStatus) else fs.strip(str(item))
        rel = posixpath.relpath(posixpath.dirname(path), base)
        parts = [] if rel in (".", "") else rel.split("/")
        found.append([(k, urllib.parse.unquote(v)) for k, _, v in (p.partition("=") for p in parts if "=" in p)])
    names = [k for k, _ in found[0]] if found else []
    for kv in found:
        if [k for k, _ in kv] != names:
            raise ValueError(f"[CONFLICTING_PARTITION_COLUMN_NAMES] Conflicting partition column names detected: "
                             f"{names} and {[k for k, _ in kv]} under {root}")
    fields, columns = [], []
    for i, name in enumerate(names):
        texts = pa.array([None if kv[i][1] == HIVE_DEFAULT_PARTITION else kv[i][1] for kv in found], pa.string())
        typ = _infer_partition_type(texts)
        fields.append(pa.field(name, typ))
        columns.append(_from_strings(texts, typ)[0].to_pylist())
    return pa.schema(fields), [tuple(col[j] for col in columns) for j in range(len(found))]


def _infer_partition_type(texts: pa.Array) -> pa.DataType:
    values = pc.drop_null(texts)
    if len(values) == 0:
        return pa.string()
    for typ in (pa.int32(), pa.int64(), pa.float64(), pa.date32(), pa.timestamp("us", "UTC")):
        if _all_parse(values, typ):
            return typ
    return pa.string()


_PLANNERS: dict[str, Callable[..., ScanPlan]] = {"text": _plan_text, "csv": _plan_csv, "json": _plan_json,
                                                  "parquet": _plan_parquet}
_READERS: dict[str, Callable[..., Iterator[pa.RecordBatch]]] = {"text": _read_text, "csv": _read_csv,
                                                               "json": _read_json, "parquet": _read_parquet}

__all__ = ["ReadSplit", "ScanPlan", "plan_scan", "read_split", "write_partition", "file_extension",
           "discover_partitions", "FORMATS"]
