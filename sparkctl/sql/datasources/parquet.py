"""The parquet data source: the schema from a footer (or every footer, ``mergeSchema``),
splits of row groups by byte range as parquet-mr assigns them, pushed filters pruning row
groups by their statistics."""
from __future__ import annotations

from typing import Any, Iterator

import pyarrow as pa

from sparkctl.fs import FileSystem
from sparkctl.sql.datasources.common import (BATCH_ROWS, ReadSplit, ScanPlan, _Counting, _PARQUET_CODECS,
                                             _bad_option, _flag, _line_splits, _opt)


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


def _matching_row_groups(f: Any, groups: list[int], filters: list[Any]) -> list[int]:
    """The row groups among *groups* whose statistics do not rule out every pushed filter
    (``scan.PushedFilter``); all of them when the file cannot be checked."""
    import pyarrow.dataset as pds
    try:
        condition = filters[0].to_arrow()
        for flt in filters[1:]:
            condition = condition & flt.to_arrow()
        fragment = pds.ParquetFileFormat().make_fragment(f, row_groups=groups)
        return [rg.id for rg in fragment.subset(filter=condition).row_groups]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, KeyError, TypeError):
        return groups  # a column missing from this file, a type the statistics cannot compare


def _read_parquet(plan: ScanPlan, split: ReadSplit, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
    wanted = list(columns) if columns else plan.schema.names
    with split.fs.open(split.path, "rb") as f:
        import pyarrow.parquet as pq
        pf = pq.ParquetFile(f)
        groups = _row_groups(pf, split.start, split.length)
        if groups and plan.filters:
            groups = _matching_row_groups(f, groups, plan.filters)
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
