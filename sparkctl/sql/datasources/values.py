"""Typed values from text as Spark parses and infers them (csv fields, partition directory
names), and values as text as Spark writes them (csv, json)."""
from __future__ import annotations

import base64
import decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


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
