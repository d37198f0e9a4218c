"""The csv data source: split into string columns by ``pyarrow.csv`` and converted column by
column with Arrow kernels (``values.py``); written as Spark 4.3 writes it."""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.rdd.codecs import is_compressed
from sparkctl.rdd.sources import _read_range
from sparkctl.sql.datasources.common import (BATCH_ROWS, INFER_LIMIT, ReadSplit, ScanPlan, _bad_option, _char,
                                             _flag, _line_sep, _line_splits, _mode, _opt, _split_bytes, _whole_bytes,
                                             _whole_files)
from sparkctl.sql.datasources.text import _joined_lines
from sparkctl.sql.datasources.values import _from_strings, _infer_column, _matches, _to_text


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
