"""The text data source: one string column ``value`` a line (or a whole file, ``wholetext``)."""
from __future__ import annotations

from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.sql.datasources.common import (BATCH_ROWS, ReadSplit, ScanPlan, _flag, _line_sep, _line_splits, _lines,
                                             _split_bytes, _whole_bytes, _whole_files)


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
