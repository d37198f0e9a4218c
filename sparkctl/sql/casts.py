"""Spark's numeric casts (the numeric rows of Cast.scala's matrix) over Arrow arrays.

A cast to a number from a number (or from text, to a decimal) is computed in two steps:
the converted values, and the mask of the values that have no result. Under ANSI mode
(Spark 4's default, and sparkctl's only mode) a masked value raises Spark's error for its
kind; ``try_cast`` returns NULL there instead:

    value ─▶ converted + bad mask ─▶ no bad value: converted
                                  └▶ bad: CAST_OVERFLOW / NUMERIC_VALUE_OUT_OF_RANGE /
                                          CAST_INVALID_INPUT (cast), NULL (try_cast)

What Spark does, and Arrow's casts alone do not:
- to FLOAT or DOUBLE: rounded to the nearest value (Arrow refuses an integer it cannot
  represent exactly); DOUBLE to FLOAT past its range is Infinity;
- to an integer type: a fraction truncated, out of range an overflow (CAST_OVERFLOW);
- to DECIMAL(p, s): rounded HALF_UP (away from zero) to s digits, a value of p - s or more
  integer digits an overflow (NUMERIC_VALUE_OUT_OF_RANGE); a DOUBLE is rounded from its
  decimal text (``Double.toString``), so 2.675 is 2.68 at scale 2, as Spark's BigDecimal.
"""
from __future__ import annotations

import decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.errors import SparkArithmeticError

#: Arrow's widest decimal: every intermediate value of a cast to DECIMAL(p, s) fits it
_WIDE_PRECISION = 76
#: Python's decimal context for rounding to scale s: room for the widest coefficient
#: Spark's DecimalType.MAX_PRECISION
_MAX_PRECISION = 38
_CONTEXT = decimal.Context(prec=_WIDE_PRECISION + 4, rounding=decimal.ROUND_HALF_UP)


def is_numeric_cast(source: pa.DataType, to: pa.DataType) -> bool:
    """Whether :func:`numeric_cast` computes the cast of *source* to *to*."""
    number = (pa.types.is_integer(source) or pa.types.is_floating(source) or pa.types.is_decimal(source))
    text = pa.types.is_string(source) or pa.types.is_large_string(source)
    if pa.types.is_decimal(to):
        return number or text
    return number and (pa.types.is_integer(to) or pa.types.is_floating(to))


def numeric_cast(value: pa.Array, to: pa.DataType, safe: bool, legacy: bool = False) -> pa.Array:
    """*value* cast to the number type *to* as Spark casts it; a value with no result raises
    Spark's error (``safe``, ANSI) or is NULL (``try_cast``). With ANSI mode off (``legacy``)
    an integer past its type's range wraps as Java's narrowing does, a fractional one saturates
    (NaN is 0), and a decimal that does not fit is NULL."""
    value = value.combine_chunks() if isinstance(value, pa.ChunkedArray) else value
    if pa.types.is_floating(to):
        return _to_floating(value, to)
    kinds: dict[str, pa.Array] = {}
    if pa.types.is_integer(to) and legacy:
        return _to_integer_legacy(value, to)
    if pa.types.is_integer(to):
        converted, bad = _to_integer(value, to)
    else:
        converted, bad, kinds = _to_decimal(value, to)
    if bad is not None and pc.any(bad).as_py():
        if safe and not legacy:
            first = pc.index(bad, True).as_py()
            kind = next((k for k, mask in kinds.items() if k != "overflow" and mask[first].as_py()), "overflow")
            raise _error(value, first, to, kind)
        converted = pc.if_else(bad, pa.scalar(None, converted.type), converted)
    return pc.cast(converted, to)


# ---------------------------------------------------------------------------- FLOAT and DOUBLE
def _to_floating(value: pa.Array, to: pa.DataType) -> pa.Array:
    source = value.type
    if pa.types.is_decimal(source):
        # through DOUBLE: Arrow's direct cast of a decimal to FLOAT is off by more than rounding
        value = pc.cast(value, pa.float64())
    return pc.cast(value, to, safe=False)


# ---------------------------------------------------------------------------- integers
def _integer_bounds(to: pa.DataType) -> tuple[int, int]:
    info = np.iinfo(to.to_pandas_dtype())
    return int(info.min), int(info.max)


def _to_integer(value: pa.Array, to: pa.DataType) -> tuple[pa.Array, pa.Array | None]:
    source = value.type
    low, high = _integer_bounds(to)
    if pa.types.is_integer(source):
        s_low, s_high = _integer_bounds(source)
        if s_low >= low and s_high <= high:
            return value, None
        bad = pc.or_(pc.less(value, pa.scalar(max(low, s_low), source)),
                     pc.greater(value, pa.scalar(min(high, s_high), source)))
    elif pa.types.is_floating(source):
        value = pc.trunc(pc.cast(value, pa.float64()))
        # Spark's bounds for a fractional value: [min, max + 1) both exact as doubles; NaN fails both
        ok = pc.and_(pc.greater_equal(value, float(low)), pc.less(value, float(high) + 1.0))
        bad = pc.invert(ok)
    else:  # decimal: truncated toward zero, then compared exactly
        whole = pc.round(pc.cast(value, pa.decimal256(_WIDE_PRECISION, source.scale)), 0, round_mode="towards_zero")
        value = pc.cast(whole, pa.decimal256(_WIDE_PRECISION, 0))
        wide = value.type
        bad = pc.or_(pc.less(value, pa.scalar(decimal.Decimal(low), wide)),
                     pc.greater(value, pa.scalar(decimal.Decimal(high), wide)))
    bad = pc.fill_null(bad, False)
    return pc.if_else(bad, pa.scalar(None, value.type), value), bad


def _to_integer_legacy(value: pa.Array, to: pa.DataType) -> pa.Array:
    """Spark's cast with ANSI mode off: Java's ``(int) x``. An integral value keeps its low
    bits; a fractional one is truncated and saturates at INT's or BIGINT's bounds (then keeps
    its low bits, for TINYINT and SMALLINT), NaN is 0; a decimal keeps the low bits of its
    integral part (BigDecimal.longValue)."""
    source = value.type
    if pa.types.is_integer(source):
        return pc.cast(value, to, safe=False)
    if pa.types.is_floating(source):
        through = pa.int64() if to == pa.int64() else pa.int32()
        low, high = _integer_bounds(through)
        x = pc.fill_null(pc.cast(value, pa.float64()), 0.0).to_numpy(zero_copy_only=False)
        with np.errstate(invalid="ignore"):
            whole = np.where(np.isnan(x), 0.0, np.trunc(x))
            ints = np.where(whole >= float(high), high, np.where(whole <= float(low), low,
                                                                     np.clip(whole, low, high).astype(np.int64)))
        out = pa.array(ints.astype(np.int64), mask=value.is_null().to_numpy(zero_copy_only=False))
        return pc.cast(pc.cast(out, through, safe=False), to, safe=False)
    whole = pc.round(pc.cast(value, pa.decimal256(_WIDE_PRECISION, source.scale)), 0, round_mode="towards_zero")
    bits = to.bit_width
    wrapped = [None if v is None else (int(v) + (1 << (bits - 1))) % (1 << bits) - (1 << (bits - 1))
               for v in whole.to_pylist()]
    return pa.array(wrapped, to)


# ---------------------------------------------------------------------------- DECIMAL(p, s)
#: the decimal digits of the largest value of an integer type, by its bit width
_INTEGER_DIGITS = {8: 3, 16: 5, 32: 10, 64: 19}


def _integer_digits(source: pa.DataType) -> int:
    """The most integer digits a value of *source* has once cast (a rounding may carry one more);
    more than any decimal holds for a number of unbounded digits (a double, a text)."""
    if pa.types.is_integer(source):
        return _INTEGER_DIGITS[source.bit_width]
    if pa.types.is_decimal(source):
        return source.precision - source.scale + 1
    return _WIDE_PRECISION


def _wide(digits: int, scale: int) -> pa.DataType:
    """A decimal of *scale* holding *digits* digits: 128 bits where they fit (faster), else 256."""
    return pa.decimal128(38, scale) if digits <= 38 else pa.decimal256(_WIDE_PRECISION, scale)


def _to_decimal(value: pa.Array, to: pa.DataType) -> tuple[pa.Array, pa.Array, dict[str, pa.Array]]:
    """The value at scale s in a wide decimal, the mask of values with no result, and the masks
    of those that are no overflow (malformed text, by the kind of their error)."""
    source = value.type
    wide = pa.decimal256(_WIDE_PRECISION, to.scale)
    kinds: dict[str, pa.Array] = {}
    if pa.types.is_integer(source):
        wide = _wide(_INTEGER_DIGITS[source.bit_width] + to.scale, to.scale)
        exact = pc.cast(value, wide)
    elif pa.types.is_decimal(source):
        # room for the integer digits, the larger scale and a carry of the rounding (99.95 -> 100.0)
        digits = source.precision - source.scale + max(source.scale, to.scale) + 1
        wide = _wide(digits, to.scale)
        exact = pc.cast(value, _wide(digits, source.scale))
        if source.scale > to.scale:
            exact = pc.round(exact, to.scale, round_mode="half_towards_infinity")
        exact = pc.cast(exact, wide)
    elif pa.types.is_floating(source):
        exact, kinds["overflow"] = _double_to_decimal(pc.cast(value, pa.float64()), to)
    else:
        exact, kinds["invalid"], kinds["unsupported"] = _text_to_decimal(value, to)
    if _integer_digits(source) <= to.precision - to.scale:  # every value fits: nothing to check
        bad = pa.array(np.zeros(len(value), bool))
    else:
        limit = pa.scalar(decimal.Decimal(10) ** (to.precision - to.scale), exact.type)
        bad = pc.fill_null(pc.greater_equal(pc.abs(exact), limit), False)
    for mask in kinds.values():
        bad = pc.or_(bad, mask)
    return exact, bad, kinds


def _double_to_decimal(value: pa.Array, to: pa.DataType) -> tuple[pa.Array, pa.Array]:
    """Rounded HALF_UP from the double's shortest decimal text. Arrow rounds the binary value,
    which differs at a tie written in decimal (2.675 is 2.67499999... in binary), so values
    near a tie, or too large for the scaled double to hold a fraction, are rounded in Python."""
    wide = pa.decimal256(_WIDE_PRECISION, to.scale)
    # NaN and the infinities have no decimal: NULL, even under ANSI (Spark's BigDecimal refuses them)
    value = pc.if_else(pc.fill_null(pc.is_finite(value), True), value, pa.scalar(None, pa.float64()))
    # a value of more integer digits than p - s is an overflow (masked here, before it meets Arrow's range)
    fits = pc.fill_null(pc.less(pc.abs(value), 10.0 ** (to.precision - to.scale)), True)
    kept = pc.if_else(fits, value, pa.scalar(None, pa.float64()))
    scaled = pc.abs(pc.multiply(kept, 10.0 ** to.scale))
    fraction = pc.subtract(scaled, pc.floor(scaled))
    near_tie = pc.fill_null(pc.or_(pc.less(pc.abs(pc.subtract(fraction, 0.5)), 1e-6),
                                   pc.greater_equal(scaled, 2.0 ** 50)), False)
    rounded = pc.cast(pc.round(kept, to.scale, round_mode="half_towards_infinity"), wide, safe=False)
    if pc.any(near_tie).as_py():
        exact = rounded.to_pylist()
        quantum = decimal.Decimal(1).scaleb(-to.scale)
        for i in np.flatnonzero(near_tie.to_numpy(zero_copy_only=False)):
            exact[i] = decimal.Decimal(repr(kept[i].as_py())).quantize(quantum, context=_CONTEXT)
        rounded = pa.array(exact, wide)
    return rounded, pc.invert(fits)


def _text_to_decimal(value: pa.Array, to: pa.DataType) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Text parsed as Java's BigDecimal (digits, a point, an exponent; spaces around) and
    rounded HALF_UP; the masks of texts that are no number, and of numbers of more than 38
    integer digits (NUMERIC_OUT_OF_SUPPORTED_RANGE)."""
    wide = pa.decimal256(_WIDE_PRECISION, to.scale)
    text = pc.utf8_trim_whitespace(value)
    try:  # every text of at most s decimals: Arrow parses them exactly
        parsed = pc.cast(text, wide)
        huge = pc.fill_null(pc.greater_equal(pc.abs(parsed), pa.scalar(decimal.Decimal(10) ** _MAX_PRECISION, wide)),
                            False)
        return parsed, pa.array(np.zeros(len(value), bool)), huge
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    quantum = decimal.Decimal(1).scaleb(-to.scale)
    out: list[Any] = []
    invalid = np.zeros(len(value), bool)
    unsupported = np.zeros(len(value), bool)
    for i, t in enumerate(text.to_pylist()):
        if t is None:
            out.append(None)
            continue
        try:
            number = decimal.Decimal(t) if "_" not in t else None
        except decimal.InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            invalid[i] = True
            out.append(None)
            continue
        if number.adjusted() >= _MAX_PRECISION:  # more integer digits than any DECIMAL holds
            unsupported[i] = True
            out.append(None)
            continue
        out.append(number.quantize(quantum, context=_CONTEXT))
    return pa.array(out, wide), pa.array(invalid), pa.array(unsupported)


# ---------------------------------------------------------------------------- errors
def _error(value: pa.Array, index: int, to: pa.DataType, kind: str) -> SparkArithmeticError:
    from sparkctl.sql.expressions import spark_type_name
    shown = value[index].as_py()
    source, target = spark_type_name(value.type), spark_type_name(to)
    if kind == "invalid":
        return SparkArithmeticError(
            f"[CAST_INVALID_INPUT] The value '{shown}' of the type \"{source}\" cannot be cast to \"{target}\" "
            f"because it is malformed. Correct the value as per the syntax, or change its target type. Use "
            f"`try_cast` to tolerate malformed input and return NULL instead. SQLSTATE: 22018",
            error_class="CAST_INVALID_INPUT")
    if kind == "unsupported":
        return SparkArithmeticError(
            f"[NUMERIC_OUT_OF_SUPPORTED_RANGE] The value {str(shown).strip()} cannot be interpreted as a numeric "
            f"since it has more than 38 digits. SQLSTATE: 22003", error_class="NUMERIC_OUT_OF_SUPPORTED_RANGE")
    if pa.types.is_decimal(to):
        return SparkArithmeticError(
            f"[NUMERIC_VALUE_OUT_OF_RANGE.WITH_SUGGESTION]  {_plain(shown)} cannot be represented as "
            f"Decimal({to.precision}, {to.scale}). If necessary set \"spark.sql.ansi.enabled\" to \"false\" to "
            f"bypass this error, and return NULL instead. SQLSTATE: 22003",
            error_class="NUMERIC_VALUE_OUT_OF_RANGE.WITH_SUGGESTION")
    return SparkArithmeticError(
        f"[CAST_OVERFLOW] The value {_sql_value(shown, value.type)} of the type \"{source}\" cannot be cast to "
        f"\"{target}\" due to an overflow. Use `try_cast` to tolerate overflow and return NULL instead. "
        f"SQLSTATE: 22003", error_class="CAST_OVERFLOW")


def _plain(v: Any) -> str:
    """A number as Java's BigDecimal.toPlainString prints it (a double from its shortest text)."""
    number = decimal.Decimal(repr(v)) if isinstance(v, float) else decimal.Decimal(v)
    return format(number, "f") if number.is_finite() else str(v)


def _sql_value(v: Any, t: pa.DataType) -> str:
    """Spark's toSQLValue: 5L (BIGINT), 5S, 5Y, 1.0E10D (DOUBLE), 1.5BD (DECIMAL)."""
    from sparkctl.sql.show import java_double_str, java_float_str
    if pa.types.is_floating(t):
        return java_float_str(v) if t == pa.float32() else java_double_str(v) + "D"
    if pa.types.is_decimal(t):
        return f"{v}BD"
    return f"{v}" + {pa.int64(): "L", pa.int16(): "S", pa.int8(): "Y"}.get(t, "")
