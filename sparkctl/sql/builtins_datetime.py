"""Date and time built-ins (``add_months``, ``date_format``, ``months_between``, ``trunc``...),
computed a whole column at a time: dates as day numbers in numpy, timestamps as
microseconds, Spark's datetime patterns turned into one Arrow string kernel per field.

The session time zone is UTC, as everywhere in sparkctl.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.errors import AnalysisException
from sparkctl.sql.scalar_spec import ScalarSpec
from sparkctl.sql.expressions import as_array

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
}
DATETIME_LITERAL_ARGS = {"next_day": 1, "trunc": 1, "date_format": 1, "months_between": 2}
