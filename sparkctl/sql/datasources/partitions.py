"""Hive-style ``k=v`` partition directories (what ``partitionBy`` writes): discovered
under a root, typed as Spark infers partition values."""
from __future__ import annotations

import posixpath
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.fs import FileStatus, FileSystem
from sparkctl.sql.datasources.values import _all_parse, _from_strings


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
