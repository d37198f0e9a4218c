"""The text of ``df.show()`` and ``df.printSchema()``, character for character as Spark's.

Spark renders each value as its ``ToPrettyString`` cast does (NULL, true/false, Java's
``Double.toString``, ``[1, 2]``, ``{k -> v}``, ``{1, x}``, ``[41 42]`` for binary), escapes
control characters, truncates cells to ``truncate`` UTF-16 units, and pads columns by
their display width, where East Asian full-width characters count twice.
"""
from __future__ import annotations

import datetime
import decimal
import math
import re
from typing import Any, Callable

import numpy as np

from sparkctl.sql import types as T

__all__ = ["show_string", "tree_string", "java_double_str", "java_float_str", "pretty_value"]


# ---------------------------------------------------------------------------- numbers as Java prints them
def _java_format(sign: str, digits: str, exponent: int) -> str:
    """Java's Double/Float.toString layout for ``0.digits x 10^(exponent+1)``: plain
    between 10^-3 and 10^7, otherwise ``d.dddE[-]n``, always a digit after the point."""
    digits = digits.rstrip("0") or "0"
    if -3 <= exponent < 7:
        if exponent >= 0:
            whole = digits[:exponent + 1].ljust(exponent + 1, "0")
            fraction = digits[exponent + 1:] or "0"
        else:
            whole, fraction = "0", "0" * (-exponent - 1) + digits
        return f"{sign}{whole}.{fraction}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exponent}"


# FloatingDecimal.insignificantDigitsNumber of JDK 17: low-order decimal digits an integer
# value of 2^(p + significand bits + 1) has beyond its precision
_INSIGNIFICANT = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 8, 8, 8, 9, 9,
                  9, 9, 10, 10, 10, 11, 11, 11, 12, 12, 12, 12, 13, 13, 13, 14, 14, 14, 15, 15, 15, 15, 16, 16, 16,
                  17, 17, 17, 18, 18, 18, 19]


def _integer_digits(x: float, significand_bits: int) -> tuple[str, int] | None:
    """JDK 17's fast path for whole numbers below 2^63: the exact integer, rounded half
    up to the digits its precision carries (so 2^53 as a float prints 9.0071993E15, not
    the shortest 9.007199E15). None when the value takes the general path."""
    value = abs(x)
    if value < 1 or value >= 2.0 ** 63 or value != math.floor(value):
        return None
    whole = int(value)
    p2 = whole.bit_length() - 1 - significand_bits - 1
    drop = _INSIGNIFICANT[p2] if 1 < p2 < len(_INSIGNIFICANT) else 0
    if drop:
        whole, residue = divmod(whole, 10 ** drop)
        whole += residue >= 10 ** drop // 2
    digits = str(whole)
    return digits, len(digits) - 1 + drop


def _special(x: float) -> str | None:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    return None


def java_double_str(x: float) -> str:
    """``Double.toString(x)`` as Java 17 (Spark 4's JVM) prints it, e.g. 1.0E10, 1.0E-5,
    123.456, NaN, -Infinity: the shortest digits that read back as ``x`` (Python's repr
    finds them), except whole numbers, which JDK 17 prints from their exact value."""
    special = _special(x)
    if special is not None:
        return special
    if abs(x) == 5e-324:  # Java prints Double.MIN_VALUE with two digits
        return "-4.9E-324" if x < 0 else "4.9E-324"
    whole = _integer_digits(x, 53)
    if whole is not None:
        return _java_format("-" if x < 0 else "", *whole)
    sign, digits, exp = decimal.Decimal(repr(float(x))).as_tuple()
    return _java_format("-" if sign else "", "".join(map(str, digits)), len(digits) - 1 + int(exp))


def java_float_str(x: float) -> str:
    """``Float.toString``: as :func:`java_double_str` with the shortest digits of the
    32-bit float nearest ``x``."""
    with np.errstate(over="ignore"):
        single = np.float32(x)
    special = _special(float(single))
    if special is not None:
        return special
    whole = _integer_digits(float(single), 24)
    if whole is not None:
        return _java_format("-" if single < 0 else "", *whole)
    text = np.format_float_scientific(single, unique=True, trim="k")
    mantissa, exp = text.split("e")
    sign = "-" if mantissa.startswith("-") else ""
    return _java_format(sign, mantissa.lstrip("-").replace(".", ""), int(exp))


# ---------------------------------------------------------------------------- values as show() prints them
def _timestamp_str(v: datetime.datetime) -> str:
    if v.tzinfo is not None:
        v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    text = v.strftime("%Y-%m-%d %H:%M:%S") if v.year >= 1000 else \
        "%04d-%02d-%02d %02d:%02d:%02d" % (v.year, v.month, v.day, v.hour, v.minute, v.second)
    return text + (".%06d" % v.microsecond).rstrip("0") if v.microsecond else text


def _date_str(v: datetime.date) -> str:
    return "%04d-%02d-%02d" % (v.year, v.month, v.day)


def _decimal_str(v: decimal.Decimal, scale: int) -> str:
    return format(v.quantize(decimal.Decimal(1).scaleb(-scale), context=decimal.Context(prec=100)), "f")


def _interval_str(v: datetime.timedelta, dt: T.DayTimeIntervalType) -> str:
    """Spark's ANSI interval literal, e.g. INTERVAL '1 02:03:04.5' DAY TO SECOND."""
    micros = (v.days * 86400 + v.seconds) * 1_000_000 + v.microseconds
    sign, micros = ("-" if micros < 0 else ""), abs(micros)
    units = [micros // 86_400_000_000, micros // 3_600_000_000 % 24, micros // 60_000_000 % 60,
             micros // 1_000_000 % 60]
    first, last = dt.startField, dt.endField
    units[first] = micros // [86_400_000_000, 3_600_000_000, 60_000_000, 1_000_000][first]
    parts = [str(units[first]) if i == first else "%02d" % units[i] for i in range(first, last + 1)]
    text = parts[0] if len(parts) == 1 else \
        (parts[0] + " " + ":".join(parts[1:]) if first == dt.DAY else ":".join(parts))
    if last == dt.SECOND and micros % 1_000_000:
        text += (".%06d" % (micros % 1_000_000)).rstrip("0")
    names = T.DayTimeIntervalType._fields
    unit = names[first].upper() + ("" if first == last else " TO " + names[last].upper())
    return f"INTERVAL '{sign}{text}' {unit}"


def _formatter(dt: T.DataType) -> Callable[[Any], str]:
    """The function rendering one non-null value of type ``dt`` as show() does."""
    if isinstance(dt, T.StringType):
        return str
    if isinstance(dt, T.BooleanType):
        return lambda v: "true" if v else "false"
    if isinstance(dt, T.DoubleType):
        return java_double_str
    if isinstance(dt, T.FloatType):
        return java_float_str
    if isinstance(dt, T.DecimalType):
        scale = dt.scale
        return lambda v: _decimal_str(v, scale)
    if isinstance(dt, (T.TimestampType, T.TimestampNTZType)):
        return _timestamp_str
    if isinstance(dt, T.DateType):
        return _date_str
    if isinstance(dt, T.BinaryType):
        return lambda v: "[" + " ".join("%02X" % b for b in bytes(v)) + "]"
    if isinstance(dt, T.DayTimeIntervalType):
        return lambda v: _interval_str(v, dt)
    if isinstance(dt, T.ArrayType):
        element = _nullable(_formatter(dt.elementType))
        return lambda v: "[" + ", ".join(element(x) for x in v) + "]"
    if isinstance(dt, T.MapType):
        key, value = _nullable(_formatter(dt.keyType)), _nullable(_formatter(dt.valueType))
        return lambda v: "{" + ", ".join(f"{key(k)} -> {value(x)}" for k, x in _items(v)) + "}"
    if isinstance(dt, T.StructType):
        fields = [_nullable(_formatter(f.dataType)) for f in dt.fields]
        return lambda v: "{" + ", ".join(f(x) for f, x in zip(fields, _struct_values(v))) + "}"
    return str


def _nullable(format_value: Callable[[Any], str]) -> Callable[[Any], str]:
    return lambda v: "NULL" if v is None else format_value(v)


def _items(v: Any) -> list:
    return list(v.items()) if isinstance(v, dict) else list(v)


def _struct_values(v: Any) -> list:
    return list(v.values()) if isinstance(v, dict) else list(v)


def pretty_value(value: Any, dt: T.DataType) -> str:
    """One value as ``show()`` renders it (before escaping and truncation)."""
    return _nullable(_formatter(dt))(value)


# ---------------------------------------------------------------------------- the table
_META = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f", "\b": "\\b", "\x0b": "\\v",
                       "\x07": "\\a"})
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_FULL_WIDTH = re.compile("[\u1100-\u115F\u2E80-\uA4CF\uAC00-\uD7A3\uF900-\uFAFF\uFE10-\uFE19\uFE30-\uFE6F"
                         "\uFF00-\uFF60\uFFE0-\uFFE6]")


def _java_len(s: str) -> int:
    """The length of ``s`` as a Java String (UTF-16 code units)."""
    return len(s) + sum(1 for c in s if ord(c) > 0xFFFF)


def _java_prefix(s: str, n: int) -> str:
    """``s.substring(0, n)`` in UTF-16 code units; half a surrogate pair left at the end
    reaches Python as "?", as Spark's string does."""
    if _java_len(s) == len(s):
        return s[:n]
    cut = s.encode("utf-16-le", "surrogatepass")[:2 * n].decode("utf-16-le", "surrogatepass")
    return _LONE_SURROGATE.sub("?", cut)


def _width(s: str) -> int:
    """Spark's ``Utils.stringHalfWidth``: full-width characters take two columns."""
    return _java_len(s) + len(_FULL_WIDTH.findall(s))


def _cell(text: str, truncate: int) -> str:
    text = text.translate(_META)
    if truncate > 0 and _java_len(text) > truncate:
        return _java_prefix(text, truncate) if truncate < 4 else _java_prefix(text, truncate - 3) + "..."
    return text


def _pad(text: str, width: int, left: bool) -> str:
    fill = " " * max(0, width - _width(text))
    return fill + text if left else text + fill


def show_string(rows: list[tuple], schema: T.StructType, n: int = 20, truncate: bool | int = True,
                vertical: bool = False, has_more: bool = False) -> str:
    """What ``df.show(n, truncate, vertical)`` prints for the first ``n`` of ``rows``
    (``has_more``: the frame has more than ``n`` rows, which adds the footer)."""
    width_limit = (20 if truncate else 0) if isinstance(truncate, bool) else int(truncate)
    n = max(0, n)
    formatters = [_nullable(_formatter(f.dataType)) for f in schema.fields]
    header = [name.translate(_META) for name in schema.names]
    data = [[_cell(f(v), width_limit) for f, v in zip(formatters, row)] for row in list(rows)[:n]]
    out: list[str] = []
    if not vertical:
        widths = [3] * len(header)
        for line in [header] + data:
            widths = [max(w, _width(c)) for w, c in zip(widths, line)]
        sep = "+" + "+".join("-" * w for w in widths) + "+\n"
        padded = [[_pad(c, w, width_limit > 0) for c, w in zip(line, widths)] for line in [header] + data]
        out.append(sep)
        out.append("|" + "|".join(padded[0]) + "|\n")
        out.append(sep)
        out.extend("|" + "|".join(line) + "|\n" for line in padded[1:])
        out.append(sep)
    else:
        name_width = max([3] + [_width(h) for h in header])
        data_width = max([3] + [max([0] + [_width(c) for c in line]) for line in data])
        for i, line in enumerate(data):
            out.append(f"-RECORD {i}".ljust(name_width + data_width + 5, "-") + "\n")
            out.extend(f" {_pad(h, name_width, False)} | {_pad(c, data_width, False)} \n"
                       for h, c in zip(header, line))
    if vertical and not data:
        out.append("(0 rows)")
    elif has_more:
        out.append(f"only showing top {n} {'row' if n == 1 else 'rows'}")
    return "".join(out)


# ---------------------------------------------------------------------------- printSchema
def _tree_type_name(dt: T.DataType) -> str:
    """Scala's ``DataType.typeName``: the JSON name of atomic types, array/map/struct."""
    if isinstance(dt, (T.ArrayType, T.MapType, T.StructType)):
        return dt.typeName()
    return str(dt.jsonValue())


def _tree_children(dt: T.DataType, prefix: str, out: list[str]) -> None:
    if isinstance(dt, T.StructType):
        for f in dt.fields:
            out.append(f"{prefix}-- {f.name.translate(_META)}: {_tree_type_name(f.dataType)} "
                       f"(nullable = {str(f.nullable).lower()})\n")
            _tree_children(f.dataType, prefix + "    |", out)
    elif isinstance(dt, T.ArrayType):
        out.append(f"{prefix}-- element: {_tree_type_name(dt.elementType)} "
                   f"(containsNull = {str(dt.containsNull).lower()})\n")
        _tree_children(dt.elementType, prefix + "    |", out)
    elif isinstance(dt, T.MapType):
        out.append(f"{prefix}-- key: {_tree_type_name(dt.keyType)}\n")
        _tree_children(dt.keyType, prefix + "    |", out)
        out.append(f"{prefix}-- value: {_tree_type_name(dt.valueType)} "
                   f"(valueContainsNull = {str(dt.valueContainsNull).lower()})\n")
        _tree_children(dt.valueType, prefix + "    |", out)


def tree_string(schema: T.StructType) -> str:
    """What ``df.printSchema()`` prints (Spark's ``StructType.treeString``)."""
    out = ["root\n"]
    _tree_children(schema, " |", out)
    return "".join(out)
