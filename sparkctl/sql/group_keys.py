"""Grouping keys as the hash aggregation takes them: a STRUCT key flattened into columns.

Spark groups by a struct's value (``groupBy(struct("a", "b"))``, ``distinct()`` over a
struct column). pyarrow's hash aggregation takes no struct key, so an aggregate groups by
the struct's leaf fields instead, plus one validity column per struct (a NULL struct is not
a struct of NULL fields), and puts the struct back together after the final merge:

    s: struct<a, b>  ─▶  s_v (bool), s_0 (a), s_1 (b)  ─▶ group, exchange, merge ─▶  s
                         (a NULL struct: s_v false, its fields NULL)

An ARRAY or MAP key is encoded into one BINARY column under its own name (pyarrow's hash
aggregation takes no list key either), equal values to equal bytes, and decoded after the
merge (``array_keys``). Other keys pass through under their own name, at no cost.
"""
from __future__ import annotations

from typing import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.sql.array_keys import decode, encode, is_encoded
from sparkctl.sql.float_ordering import normalize


def key_columns(name: str, dtype: pa.DataType) -> list[str]:
    """The columns that hold the key *name* of type *dtype* while it is grouped."""
    if not pa.types.is_struct(dtype):
        return [name]
    columns = [f"{name}_v"]
    for j, field in enumerate(dtype):
        columns.extend(key_columns(f"{name}_{j}", field.type))
    return columns


def flatten_key(name: str, values: pa.Array) -> dict[str, pa.Array]:
    """The key's columns (:func:`key_columns`) from its values."""
    if is_encoded(values.type):
        return {name: encode(values)}
    if not pa.types.is_struct(values.type):
        return {name: normalize(values)}
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    out = {f"{name}_v": pc.is_valid(values)}
    # flatten() applies the struct's own NULLs to its fields: every NULL struct groups alike
    for j, child in enumerate(values.flatten()):
        out.update(flatten_key(f"{name}_{j}", child))
    return out


def restore_keys(table: pa.Table, keys: Sequence[tuple[str, pa.DataType]]) -> pa.Table:
    """*table* with each struct key rebuilt from its columns (which are dropped)."""
    for name, dtype in keys:
        if not (pa.types.is_struct(dtype) or is_encoded(dtype)):
            continue
        rebuilt = _rebuild(table, name, dtype)
        table = table.drop_columns(key_columns(name, dtype)).append_column(name, rebuilt)
    return table


def _rebuild(table: pa.Table, name: str, dtype: pa.DataType) -> pa.Array:
    if is_encoded(dtype):
        return decode(table.column(name).combine_chunks(), dtype)
    if not pa.types.is_struct(dtype):
        column = table.column(name).combine_chunks()
        return column if column.type == dtype else column.cast(dtype)
    children = [_rebuild(table, f"{name}_{j}", field.type) for j, field in enumerate(dtype)]
    valid = pc.fill_null(table.column(f"{name}_v").combine_chunks(), False)
    return pa.StructArray.from_arrays(children, fields=list(dtype), mask=pc.invert(valid))
