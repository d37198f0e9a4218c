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

One module a format (``text``, ``csv``, ``json``, ``parquet``), with ``common`` (splits,
options, raw input), ``values`` (typed values from text and back) and ``partitions``
(Hive-style directories); this module plans scans and dispatches reads and writes.
"""
from __future__ import annotations

import posixpath
from dataclasses import replace
from typing import Any, Callable, Iterator

import pyarrow as pa

from sparkctl.fs import FileStatus, FileSystem, filesystem_for
from sparkctl.rdd.codecs import output_codec
from sparkctl.sql.datasources.common import (ReadSplit, ScanPlan, _Counting, _check_encoding, _check_format,
                                             _check_formats, _codec, _flag, _list_files)
from sparkctl.sql.datasources.csv import _csv_header, _csv_lines, _plan_csv, _read_csv
from sparkctl.sql.datasources.text import _plan_text, _read_text, _text_lines
from sparkctl.sql.datasources.json import _json_lines, _plan_json, _read_json
from sparkctl.sql.datasources.parquet import _parquet_codec, _plan_parquet, _read_parquet, _write_parquet
from sparkctl.sql.datasources.partitions import discover_partitions



# ---------------------------------------------------------------------------------- planning


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
    part_schema = plan.partition_schema
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



_PLANNERS: dict[str, Callable[..., ScanPlan]] = {"text": _plan_text, "csv": _plan_csv, "json": _plan_json,
                                                  "parquet": _plan_parquet}
_READERS: dict[str, Callable[..., Iterator[pa.RecordBatch]]] = {"text": _read_text, "csv": _read_csv,
                                                               "json": _read_json, "parquet": _read_parquet}

__all__ = ["ReadSplit", "ScanPlan", "plan_scan", "read_split", "write_partition", "file_extension",
           "discover_partitions", "FORMATS"]
