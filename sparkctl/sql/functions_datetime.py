"""Date and time functions of ``pyspark.sql.functions`` (re-exported by ``functions``)."""
from __future__ import annotations

from typing import Any

from sparkctl.sql.column import Column, to_expr
from sparkctl.sql.builtins import Func
from sparkctl.sql.builtins_datetime import CurrentTime


def _c(value: Any) -> Any:
    from sparkctl.sql.functions import _c as column_arg
    return column_arg(value)


def _num(value: Any) -> Any:
    """A count argument: a Python int as a literal, else a column."""
    return to_expr(value) if isinstance(value, int) else _c(value)


def add_months(start: Any, months: Any) -> Column:
    return Column(Func("add_months", [_c(start), _num(months)]))


def last_day(date: Any) -> Column:
    return Column(Func("last_day", [_c(date)]))


def next_day(date: Any, dayOfWeek: str) -> Column:
    return Column(Func("next_day", [_c(date), to_expr(dayOfWeek)]))


def months_between(date1: Any, date2: Any, roundOff: bool = True) -> Column:
    return Column(Func("months_between", [_c(date1), _c(date2), to_expr(roundOff)]))


def trunc(date: Any, format: str) -> Column:  # noqa: A002
    return Column(Func("trunc", [_c(date), to_expr(format)]))


def date_trunc(format: str, timestamp: Any) -> Column:  # noqa: A002
    return Column(Func("date_trunc", [to_expr(format), _c(timestamp)]))


def date_format(date: Any, format: str) -> Column:  # noqa: A002
    return Column(Func("date_format", [_c(date), to_expr(format)]))


def dayofweek(col: Any) -> Column:
    return Column(Func("dayofweek", [_c(col)]))


def weekofyear(col: Any) -> Column:
    return Column(Func("weekofyear", [_c(col)]))


def to_timestamp(col: Any, format: str | None = None) -> Column:  # noqa: A002
    args = [_c(col)] + ([to_expr(format)] if format is not None else [])
    return Column(Func("to_timestamp", args))


def unix_timestamp(timestamp: Any = None, format: str = "yyyy-MM-dd HH:mm:ss") -> Column:  # noqa: A002
    first = CurrentTime() if timestamp is None else _c(timestamp)
    return Column(Func("unix_timestamp", [first, to_expr(format)]))


def current_timestamp() -> Column:
    return Column(CurrentTime())


def current_date() -> Column:
    return Column(CurrentTime(date=True))


def from_unixtime(timestamp: Any, format: str = "yyyy-MM-dd HH:mm:ss") -> Column:  # noqa: A002
    return Column(Func("from_unixtime", [_c(timestamp), to_expr(format)]))

