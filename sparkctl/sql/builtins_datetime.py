"""Date and time built-ins (``add_months``, ``date_format``, ``months_between``, ``trunc``,
``to_timestamp``, ``unix_timestamp``, ``from_unixtime``, ``to_date``...),
computed a whole column at a time: dates as day numbers in numpy, timestamps as
microseconds, Spark's datetime patterns turned into one Arrow string kernel per field.

The session time zone is UTC, as everywhere in sparkctl.
"""
from __future__ import annotations

import datetime
import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.errors import AnalysisException, ArithmeticException, DateTimeException
from sparkctl.sql.scalar_spec import ScalarSpec
from sparkctl.sql.expressions import Literal, as_array, spark_type_name

_US_PER_DAY = 86_400_000_000
_TS = pa.timestamp("us", tz="UTC")


def _date(types: list[pa.DataType]) -> pa.DataType:
    return pa.date32()


def _days(value: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Day numbers (since 1970-01-01) of a date or timestamp column, and where it is NULL."""
    value = as_array(value, n)
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    if pa.types.is_timestamp(value.type):
        value = pc.cast(value, pa.date32())
    elif pa.types.is_string(value.type) or pa.types.is_large_string(value.type):
        value = pc.cast(pc.utf8_slice_codeunits(value, 0, 10), pa.date32())
    null = value.is_null().to_numpy(zero_copy_only=False)
    days = pc.fill_null(pc.cast(value, pa.int32()), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    return days, null


def _micros(value: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Microseconds since the epoch of a date or timestamp column, and where it is NULL."""
    value = as_array(value, n)
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    if not pa.types.is_timestamp(value.type):
        days, null = _days(value, n)
        return days * _US_PER_DAY, null
    null = value.is_null().to_numpy(zero_copy_only=False)
    us = pc.fill_null(pc.cast(pc.cast(value, _TS), pa.int64()), 0).to_numpy(zero_copy_only=False)
    return us, null


def _date_array(days: np.ndarray, null: np.ndarray) -> pa.Array:
    return pa.array(days.astype(np.int32), mask=null).cast(pa.date32())


def _ints(value: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    value = as_array(value, n)
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    null = value.is_null().to_numpy(zero_copy_only=False)
    return pc.fill_null(pc.cast(value, pa.int64()), 0).to_numpy(zero_copy_only=False), null


def _month_parts(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(months since 1970-01, day of month from 0, days in that month) of day numbers."""
    d = days.astype("datetime64[D]")
    months = d.astype("datetime64[M]")
    first = months.astype("datetime64[D]")
    length = ((months + 1).astype("datetime64[D]") - first).astype(np.int64)
    return months.astype(np.int64), (d - first).astype(np.int64), length


def add_months(args: list[Any], n: int) -> Any:
    days, null = _days(args[0], n)
    months, null2 = _ints(args[1], n)
    month, dom, _ = _month_parts(days)
    target = month + months
    first = target.astype("datetime64[M]").astype("datetime64[D]")
    length = ((target + 1).astype("datetime64[M]").astype("datetime64[D]") - first).astype(np.int64)
    out = first.astype(np.int64) + np.minimum(dom, length - 1)
    return _date_array(out, null | null2)


def last_day(args: list[Any], n: int) -> Any:
    days, null = _days(args[0], n)
    month, dom, length = _month_parts(days)
    return _date_array(days - dom + length - 1, null)


_WEEKDAYS = {"MO": 0, "MON": 0, "MONDAY": 0, "TU": 1, "TUE": 1, "TUESDAY": 1, "WE": 2, "WED": 2, "WEDNESDAY": 2,
             "TH": 3, "THU": 3, "THURSDAY": 3, "FR": 4, "FRI": 4, "FRIDAY": 4, "SA": 5, "SAT": 5, "SATURDAY": 5,
             "SU": 6, "SUN": 6, "SUNDAY": 6}


def next_day(args: list[Any], n: int) -> Any:
    days, null = _days(args[0], n)
    name = args[1].as_py()
    target = _WEEKDAYS.get(str(name).upper()) if name is not None else None
    if target is None:
        return pa.nulls(n, pa.date32())
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    return _date_array(days + (target - weekday - 1) % 7 + 1, null)


def dayofweek(args: list[Any], n: int) -> Any:
    days, null = _days(args[0], n)
    return pa.array(((days + 4) % 7 + 1).astype(np.int32), mask=null)


def weekofyear(args: list[Any], n: int) -> Any:
    return pc.cast(pc.iso_week(pc.cast(as_array(args[0], n), pa.date32())
                               if not pa.types.is_timestamp(args[0].type) else args[0]), pa.int32())


def months_between(args: list[Any], n: int) -> Any:
    """Spark's months_between: whole months when both days are the same day of the month or
    both the last; otherwise the difference of (day, time) counted in 31-day months."""
    us1, null1 = _micros(args[0], n)
    us2, null2 = _micros(args[1], n)
    round_off = args[2].as_py() if len(args) > 2 else True
    d1, d2 = np.floor_divide(us1, _US_PER_DAY), np.floor_divide(us2, _US_PER_DAY)
    m1, dom1, len1 = _month_parts(d1)
    m2, dom2, len2 = _month_parts(d2)
    whole = (m1 - m2).astype(np.float64)
    sec1 = dom1 * 86400 + (us1 - d1 * _US_PER_DAY) / 1e6
    sec2 = dom2 * 86400 + (us2 - d2 * _US_PER_DAY) / 1e6
    diff = whole + (sec1 - sec2) / (31 * 86400)
    same = (dom1 == dom2) | ((dom1 == len1 - 1) & (dom2 == len2 - 1))
    out = np.where(same, whole, diff)
    if round_off:
        out = np.round(out, 8)
    return pa.array(out, mask=null1 | null2)


_TRUNC_DATE = {"year": "year", "yyyy": "year", "yy": "year", "month": "month", "mon": "month", "mm": "month",
               "quarter": "quarter", "week": "week"}
_TRUNC_TS = {**_TRUNC_DATE, "day": "day", "dd": "day", "hour": "hour", "minute": "minute", "second": "second",
             "millisecond": "millisecond", "microsecond": "microsecond"}


def trunc(args: list[Any], n: int) -> Any:
    unit = _TRUNC_DATE.get(str(args[1].as_py()).lower()) if args[1].is_valid else None
    if unit is None:
        return pa.nulls(n, pa.date32())
    value = pc.cast(as_array(args[0], n), pa.date32()) if not pa.types.is_date(args[0].type) else args[0]
    return pc.floor_temporal(value, unit=unit, week_starts_monday=True)


def date_trunc(args: list[Any], n: int) -> Any:
    unit = _TRUNC_TS.get(str(args[0].as_py()).lower()) if args[0].is_valid else None
    if unit is None:
        return pa.nulls(n, _TS)
    value = args[1]
    if isinstance(value, pa.Scalar):
        value = as_array(value, n)
    value = pc.cast(value, _TS)
    return pc.floor_temporal(value, unit=unit, week_starts_monday=True)


# ---------------------------------------------------------------------------- date_format
_TOKEN = re.compile(r"'(?:[^']|'')*'|([a-zA-Z])\1*|[^a-zA-Z']+")


def _field(letter: str, width: int, ts: Any) -> Any:
    """One pattern field of every timestamp, as strings."""
    def number(kernel: str, pad: int) -> Any:
        text = pc.cast(getattr(pc, kernel)(ts), pa.string())
        return pc.utf8_lpad(text, width=pad, padding="0") if pad > 1 else text

    if letter in "yu":
        if width == 2:
            return pc.utf8_slice_codeunits(pc.utf8_lpad(pc.cast(pc.year(ts), pa.string()), 4, "0"), 2, 4)
        return number("year", max(width, 1) if width > 2 else 1)
    if letter in "ML":
        if width >= 4:
            return pc.strftime(ts, format="%B")
        if width == 3:
            return pc.strftime(ts, format="%b")
        return number("month", width)
    if letter == "d":
        return number("day", width)
    if letter == "D":
        return number("day_of_year", width)
    if letter == "H":
        return number("hour", width)
    if letter == "h":  # clock hour of am/pm, 1-12
        text = pc.strftime(ts, format="%I")
        return text if width >= 2 else pc.cast(pc.cast(text, pa.int32()), pa.string())
    if letter == "m":
        return number("minute", width)
    if letter == "s":
        return number("second", width)
    if letter == "S":
        millis = pc.add(pc.multiply(pc.millisecond(ts), 1000), pc.microsecond(ts))
        text = pc.utf8_lpad(pc.cast(millis, pa.string()), width=6, padding="0")
        return pc.utf8_slice_codeunits(pc.utf8_rpad(text, width=max(width, 6), padding="0"), 0, width)
    if letter == "E":
        return pc.strftime(ts, format="%A" if width >= 4 else "%a")
    if letter == "a":
        return pc.strftime(ts, format="%p")
    if letter == "Q" or letter == "q":
        return number("quarter", width)
    raise AnalysisException(f"[INVALID_DATETIME_PATTERN] sparkctl does not format the pattern letter {letter!r} "
                            f"(in date_format) yet.", error_class="INVALID_DATETIME_PATTERN")


def date_format(args: list[Any], n: int) -> Any:
    value = as_array(args[0], n)
    if pa.types.is_string(value.type) or pa.types.is_large_string(value.type):
        value = pc.cast(value, _TS)
    ts = pc.cast(value, _TS)
    pattern = args[1].as_py()
    if pattern is None:
        return pa.nulls(n, pa.string())
    parts: list[Any] = []
    for m in _TOKEN.finditer(pattern):
        token = m.group(0)
        if token.startswith("'"):
            parts.append(pa.scalar(token[1:-1].replace("''", "'") if token != "''" else "'"))
        elif m.group(1):
            parts.append(_field(m.group(1), len(token), ts))
        else:
            parts.append(pa.scalar(token))
    if not parts:
        return pc.if_else(pc.is_null(ts), pa.scalar(None, pa.string()), "")
    arrays = [as_array(p, n) for p in parts]
    return pc.binary_join_element_wise(*arrays, "", null_handling="emit_null")


def _timestamp(types: list[pa.DataType]) -> pa.DataType:
    return _TS


class CurrentTime(Literal):
    """``current_timestamp()`` / ``current_date()``: the instant the column was made, so every
    partition of a query sees the same value (Spark fixes it when the query starts)."""

    def __init__(self, date: bool = False) -> None:
        now = datetime.datetime.now(datetime.timezone.utc)
        super().__init__(now.date() if date else now, pa.date32() if date else _TS)
        self.is_date = date

    @property
    def nullable(self) -> bool:
        return False

    def sql(self) -> str:
        return "current_date()" if self.is_date else "current_timestamp()"


# ---------------------------------------------------------------------------- text to timestamps
def _strptime_field(letter: str, width: int) -> str:
    """One pattern field as a strptime directive (for parsing)."""
    if letter in "yu":
        return "%y" if width == 2 else "%Y"
    if letter in "ML":
        return "%B" if width >= 4 else "%b" if width == 3 else "%m"
    simple = {"d": "%d", "D": "%j", "H": "%H", "h": "%I", "m": "%M", "s": "%S", "a": "%p"}
    if letter in simple:
        return simple[letter]
    if letter == "E":
        return "%A" if width >= 4 else "%a"
    raise AnalysisException(f"[INVALID_DATETIME_PATTERN] sparkctl does not parse the pattern letter {letter!r} "
                            f"yet.", error_class="INVALID_DATETIME_PATTERN")


def strptime_format(pattern: str) -> str:
    """Spark's datetime *pattern* (``yyyy-MM-dd HH:mm:ss``) as a strptime format."""
    out = []
    for m in _TOKEN.finditer(pattern):
        token = m.group(0)
        if token.startswith("'"):
            out.append((token[1:-1].replace("''", "'") if token != "''" else "'").replace("%", "%%"))
        elif m.group(1):
            out.append(_strptime_field(m.group(1), len(token)))
        else:
            out.append(token.replace("%", "%%"))
    return "".join(out)


#: the texts Spark's cast to timestamp takes: a year, then optional month, day, time, fraction and zone
_CAST_TEXT = re.compile(r"\s*(-?\d{4,6})(?:-(\d{1,2})(?:-(\d{1,2})(?:[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2})"
                        r"(?:\.(\d{0,9}))?)?)?T?\s*(Z|[+-]\d{1,2}(?::?\d{2})?)?)?)?\s*")
_EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()


def _cast_text_micros(text: str) -> int | None:
    import datetime
    m = _CAST_TEXT.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    try:
        days = datetime.date(int(year), int(month or 1), int(day or 1)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    hour, minute, second = int(hour or 0), int(minute or 0), int(second or 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    micros = int((fraction or "").ljust(6, "0")[:6] or 0)
    offset = 0
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        zh, zm = (int(digits[:-2]), int(digits[-2:])) if len(digits) > 2 else (int(digits), 0)
        offset = sign * (zh * 3600 + zm * 60)
    return (days * 86400 + hour * 3600 + minute * 60 + second - offset) * 1_000_000 + micros


def _pattern_micros(value: pa.Array, pattern: str) -> pa.Array:
    """Microseconds of each text parsed with a Spark *pattern*; NULL where it does not parse.

    strptime has no fraction of a second: a run of S after a literal (``ss.SSS``) is cut out
    of the text with a regex first, parsed as digits, and added back."""
    tokens = [m for m in _TOKEN.finditer(pattern)]
    fraction = [i for i, m in enumerate(tokens) if m.group(1) == "S"]
    if not fraction:
        return pc.cast(pc.strptime(value, format=strptime_format(pattern), unit="us", error_is_null=True), pa.int64())
    i = fraction[0]
    if len(fraction) > 1 or i == 0 or tokens[i - 1].group(1) or tokens[i - 1].group(0).startswith("'"):
        raise AnalysisException(f"[INVALID_DATETIME_PATTERN] sparkctl parses a fraction of a second (S) only once "
                                f"and right after a separator such as '.', not in {pattern!r} yet.",
                                error_class="INVALID_DATETIME_PATTERN")
    before, after = pattern[:tokens[i].start()], pattern[tokens[i].end():]
    width = len(tokens[i].group(0))
    separator = re.escape(tokens[i - 1].group(0))
    parts = pc.extract_regex(value, pattern=f"^(?P<pre>.*{separator})(?P<frac>\\d{{1,{width}}})(?P<post>.*)$")
    text = pc.binary_join_element_wise(pc.struct_field(parts, [0]), pc.struct_field(parts, [2]), "")
    whole = pc.cast(pc.strptime(text, format=strptime_format(before + after), unit="us", error_is_null=True),
                    pa.int64())
    digits = pc.utf8_rpad(pc.struct_field(parts, [1]), width=6, padding="0")
    return pc.add(whole, pc.cast(pc.utf8_slice_codeunits(digits, 0, 6), pa.int64()))


def _text_micros(value: pa.Array, pattern: str | None) -> tuple[pa.Array, pa.Array]:
    """Microseconds since the epoch of each text (UTC, the session time zone), and which texts failed."""
    if pattern is not None:
        micros = _pattern_micros(value, pattern)
    else:
        try:
            micros = pc.cast(pc.cast(value, pa.timestamp("us")), pa.int64())
        except pa.ArrowInvalid:  # Spark's looser forms (2020-1-5, a zone, a lone year): one text at a time
            micros = pa.array([None if v is None else _cast_text_micros(v) for v in value.to_pylist()], pa.int64())
    return micros, pc.and_(pc.is_valid(value), pc.is_null(micros))


def text_to_timestamp(value: Any, to: pa.DataType, safe: bool = True) -> Any:
    """``CAST(text AS TIMESTAMP)``: the forms Spark's cast reads, in the session time zone (UTC);
    a text that does not parse raises (``safe``, ANSI) or is NULL (``try_cast``)."""
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    micros, failed = _text_micros(value, None)
    if safe and pc.any(failed).as_py():
        raise _parse_error(value, failed, None, "TIMESTAMP")
    return pc.cast(pc.cast(micros, _TS), to)


def _parse_error(value: pa.Array, failed: pa.Array, pattern: str | None, to: str) -> Exception:
    shown = value[pc.index(failed, True).as_py()].as_py()
    if pattern is None:
        return ArithmeticException(
            f"[CAST_INVALID_INPUT] The value '{shown}' of the type \"STRING\" cannot be cast to \"{to}\" because "
            f"it is malformed. Correct the value as per the syntax, or change its target type. Use `try_cast` to "
            f"tolerate malformed input and return NULL instead. SQLSTATE: 22018", error_class="CAST_INVALID_INPUT")
    return DateTimeException(f"[CANNOT_PARSE_TIMESTAMP] Text '{shown}' could not be parsed with the pattern "
                             f"'{pattern}'. Use `try_to_timestamp` to tolerate invalid input string and return NULL "
                             f"instead. SQLSTATE: 22007", error_class="CANNOT_PARSE_TIMESTAMP")


def _to_micros(value: Any, pattern: str | None, n: int, to: str) -> pa.Array:
    """A string, date, timestamp or number (seconds) column as microseconds since the epoch."""
    value = as_array(value, n)
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    t = value.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        micros, failed = _text_micros(value, pattern)
        if pc.any(failed).as_py():
            raise _parse_error(value, failed, pattern, to)
        return micros
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return pc.cast(pc.cast(value, _TS), pa.int64())
    if pa.types.is_integer(t):
        return pc.multiply_checked(pc.cast(value, pa.int64()), 1_000_000)
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return pc.cast(pc.multiply(pc.cast(value, pa.float64()), 1e6), pa.int64())
    raise AnalysisException(f"[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] cannot read a timestamp from a "
                            f"\"{spark_type_name(t)}\".", error_class="DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE")


def _pattern(args: list[Any], i: int) -> str | None:
    return args[i].as_py() if len(args) > i else None


def _intolerant_with_pattern(count: int) -> str:
    return "intolerant" if count > 1 else ""


def to_timestamp(args: list[Any], n: int) -> Any:
    if len(args) > 1 and not args[1].is_valid:
        return pa.nulls(n, _TS)
    return pc.cast(_to_micros(args[0], _pattern(args, 1), n, "TIMESTAMP"), _TS)


def unix_timestamp(args: list[Any], n: int) -> Any:
    if len(args) > 1 and not args[1].is_valid:
        return pa.nulls(n, pa.int64())
    micros = _to_micros(args[0], _pattern(args, 1) or "yyyy-MM-dd HH:mm:ss", n, "TIMESTAMP")
    return pc.cast(pc.floor(pc.divide(pc.cast(micros, pa.float64()), 1e6)), pa.int64())


def from_unixtime(args: list[Any], n: int) -> Any:
    seconds, null = _ints(args[0], n)
    stamps = pa.array(seconds * 1_000_000, mask=null if null.any() else None).cast(_TS)
    return date_format([stamps, args[1] if len(args) > 1 else pa.scalar("yyyy-MM-dd HH:mm:ss")], n)


def to_date(args: list[Any], n: int) -> Any:
    if len(args) == 1:
        from sparkctl.sql.builtins import _to_date
        return _to_date(args, n)
    if not args[1].is_valid:
        return pa.nulls(n, pa.date32())
    micros = _to_micros(args[0], args[1].as_py(), n, "DATE")
    return pc.cast(pc.cast(micros, _TS), pa.date32())


DATETIME_SCALARS: dict[str, ScalarSpec] = {
    "add_months": ScalarSpec(_date, add_months, 2, 2),
    "last_day": ScalarSpec(_date, last_day),
    "next_day": ScalarSpec(_date, next_day, 2, 2),
    "months_between": ScalarSpec(lambda t: pa.float64(), months_between, 2, 3),
    "trunc": ScalarSpec(_date, trunc, 2, 2),
    "date_trunc": ScalarSpec(_timestamp, date_trunc, 2, 2),
    "date_format": ScalarSpec(lambda t: pa.string(), date_format, 2, 2),
    "dayofweek": ScalarSpec(lambda t: pa.int32(), dayofweek),
    "weekofyear": ScalarSpec(lambda t: pa.int32(), weekofyear),
    # without a pattern Spark casts, and a cast from text may be NULL; with one it raises instead (ANSI)
    "to_timestamp": ScalarSpec(_timestamp, to_timestamp, 1, 2, nulls=_intolerant_with_pattern),
    "unix_timestamp": ScalarSpec(lambda t: pa.int64(), unix_timestamp, 1, 2, nulls="intolerant"),
    "from_unixtime": ScalarSpec(lambda t: pa.string(), from_unixtime, 1, 2),
    "to_date": ScalarSpec(_date, to_date, 1, 2, nulls=_intolerant_with_pattern),
}
DATETIME_LITERAL_ARGS = {"next_day": 1, "trunc": 1, "date_format": 1, "months_between": 2, "to_timestamp": 1,
                         "unix_timestamp": 1, "from_unixtime": 1, "to_date": 1}
