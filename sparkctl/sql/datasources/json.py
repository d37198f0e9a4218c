"""The JSON lines data source: ``pyarrow.json`` when a block fits the schema, else Python's
``json`` line by line (type conflicts kept as text, malformed lines, ``_corrupt_record``)."""
from __future__ import annotations

import base64
import datetime
import decimal
import io
import json
import re
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.sql.datasources.common import (BATCH_ROWS, CORRUPT, INFER_LIMIT, ReadSplit, ScanPlan, _flag,
                                             _line_splits, _lines, _mode, _opt, _split_bytes, _whole_bytes,
                                             _whole_files)
from sparkctl.sql.datasources.values import _SPECIAL_FLOAT, _float_text, _java_double, _matches, _to_text
from sparkctl.sql.datasources.csv import _failfast
from sparkctl.sql.datasources.text import _joined_lines


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
