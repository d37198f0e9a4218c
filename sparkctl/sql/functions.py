"""``sparkctl.sql.functions``: PySpark's built-in functions (``import ... functions as F``).

Each returns a :class:`Column` over an expression node (``builtins.py``); a function
sparkctl does not have is not defined here, so its use fails at once with an
AttributeError naming it, never later with a wrong result.
"""
from __future__ import annotations

from typing import Any

from sparkctl.sql.builtins import AggregateFunc, Func
from sparkctl.sql.column import Column, col_expr, to_expr
from sparkctl.sql.expressions import CaseWhen, Literal, SortOrder


def _c(value: Any) -> Any:
    """A column argument: a Column, or a column name."""
    if isinstance(value, Column):
        return value._expr
    if isinstance(value, str):
        return col_expr(value)
    return to_expr(value)


def col(col: str) -> Column:
    return Column(col_expr(col))


column = col


def lit(col: Any) -> Column:
    if isinstance(col, Column):
        return col
    if isinstance(col, (list, tuple)):
        raise NotImplementedError("sparkctl does not support array literals in lit() yet")
    return Column(Literal(col))


def expr(str: str) -> Column:  # noqa: A002 - PySpark's parameter name
    from sparkctl.sql.sql_parser import expression_to_column
    from sparkctl.sql.udf import functions_for_sql
    return expression_to_column(str, functions_for_sql())


def when(condition: Column, value: Any) -> Column:
    return Column(CaseWhen([(to_expr(condition), to_expr(value))]))


def broadcast(df: Any) -> Any:
    """A hint that *df* is small; sparkctl decides the join strategy itself."""
    return df


def asc(col: Any) -> Column:
    return Column(SortOrder(_c(col), True, True))


def desc(col: Any) -> Column:
    return Column(SortOrder(_c(col), False, False))


def asc_nulls_last(col: Any) -> Column:
    return Column(SortOrder(_c(col), True, False))


def desc_nulls_first(col: Any) -> Column:
    return Column(SortOrder(_c(col), False, True))


def isnull(col: Any) -> Column:
    return Column(_c(col)).isNull()


def isnotnull(col: Any) -> Column:
    return Column(_c(col)).isNotNull()


# ---------------------------------------------------------------------------- aggregates
def _agg(name: str, col: Any, distinct: bool = False) -> Column:
    return Column(AggregateFunc(name, _c(col), distinct))


def count(col: Any) -> Column:
    if isinstance(col, str) and col == "*":
        return Column(AggregateFunc("count", None))
    return _agg("count", col)


def sum(col: Any) -> Column:  # noqa: A001
    return _agg("sum", col)


def avg(col: Any) -> Column:
    return _agg("avg", col)


mean = avg


def min(col: Any) -> Column:  # noqa: A001
    return _agg("min", col)


def max(col: Any) -> Column:  # noqa: A001
    return _agg("max", col)


def max_by(col: Any, ord: Any) -> Column:  # noqa: A002
    """The value of *col* in the row of the largest *ord* (rows whose *ord* is NULL are skipped)."""
    return Column(AggregateFunc("max_by", _c(col), more=(_c(ord),)))


def min_by(col: Any, ord: Any) -> Column:  # noqa: A002
    """The value of *col* in the row of the smallest *ord* (rows whose *ord* is NULL are skipped)."""
    return Column(AggregateFunc("min_by", _c(col), more=(_c(ord),)))


def sum_distinct(col: Any) -> Column:
    return _agg("sum", col, distinct=True)


sumDistinct = sum_distinct


def _distinct_aggregate(name: str, col: Any) -> Column:
    """``name(DISTINCT col)``, for the SQL forms PySpark has no function of (``avg(DISTINCT x)``)."""
    return _agg(name, col, distinct=True)


def count_distinct(col: Any, *cols: Any) -> Column:
    """The number of distinct values (of tuples, for several columns) with no null in them."""
    return Column(AggregateFunc("count", _c(col), True, more=tuple(_c(c) for c in cols)))


countDistinct = count_distinct


def approx_count_distinct(col: Any, rsd: float | None = None) -> Column:
    """Counted exactly, which is within any relative error."""
    return _agg("approx_count_distinct", col)


approxCountDistinct = approx_count_distinct


def first(col: Any, ignorenulls: bool = False) -> Column:
    return Column(AggregateFunc("first", _c(col), ignore_nulls=ignorenulls))


def last(col: Any, ignorenulls: bool = False) -> Column:
    return Column(AggregateFunc("last", _c(col), ignore_nulls=ignorenulls))


def collect_list(col: Any) -> Column:
    return _agg("collect_list", col)


def collect_set(col: Any) -> Column:
    return _agg("collect_set", col)


def stddev(col: Any) -> Column:
    return _agg("stddev", col)


def stddev_samp(col: Any) -> Column:
    return _agg("stddev_samp", col)


def stddev_pop(col: Any) -> Column:
    return _agg("stddev_pop", col)


def variance(col: Any) -> Column:
    return _agg("variance", col)


def var_samp(col: Any) -> Column:
    return _agg("var_samp", col)


def var_pop(col: Any) -> Column:
    return _agg("var_pop", col)


def any_value(col: Any) -> Column:
    return _agg("any_value", col)


def bool_and(col: Any) -> Column:
    return _agg("bool_and", col)


def bool_or(col: Any) -> Column:
    return _agg("bool_or", col)


every = bool_and
some = bool_or


# ---------------------------------------------------------------------------- scalar
def _f(name: str, *args: Any) -> Column:
    return Column(Func(name, [_c(a) for a in args]))


def _lit_args(name: str, first: Any, *rest: Any) -> Column:
    return Column(Func(name, [_c(first), *(to_expr(r) for r in rest)]))


def upper(col: Any) -> Column:
    return _f("upper", col)


def lower(col: Any) -> Column:
    return _f("lower", col)


def length(col: Any) -> Column:
    return _f("length", col)


def trim(col: Any) -> Column:
    return _f("trim", col)


def ltrim(col: Any) -> Column:
    return _f("ltrim", col)


def rtrim(col: Any) -> Column:
    return _f("rtrim", col)


def reverse(col: Any) -> Column:
    return _f("reverse", col)


def initcap(col: Any) -> Column:
    return _f("initcap", col)


def substring(str: Any, pos: int, len: int) -> Column:  # noqa: A002
    return _lit_args("substring", str, pos, len)


def substr(str: Any, pos: Any, len: Any = None) -> Column:  # noqa: A002
    # Spark fills a missing length with the largest int (and names the column so)
    return Column(Func("substr", [_c(str), to_expr(pos), to_expr(2147483647 if len is None else len)]))


def ucase(str: Any) -> Column:  # noqa: A002
    return _f("ucase", str)


def lcase(str: Any) -> Column:  # noqa: A002
    return _f("lcase", str)


def char_length(str: Any) -> Column:  # noqa: A002
    return _f("char_length", str)


character_length = char_length


def concat(*cols: Any) -> Column:
    return _f("concat", *cols)


def concat_ws(sep: str, *cols: Any) -> Column:
    return Column(Func("concat_ws", [Literal(sep), *(_c(c) for c in cols)]))


def lpad(col: Any, len: int, pad: str) -> Column:  # noqa: A002
    return _lit_args("lpad", col, len, pad)


def rpad(col: Any, len: int, pad: str) -> Column:  # noqa: A002
    return _lit_args("rpad", col, len, pad)


def instr(str: Any, substr: str) -> Column:  # noqa: A002
    return _lit_args("instr", str, substr)


def split(str: Any, pattern: str, limit: int = -1) -> Column:  # noqa: A002
    return _lit_args("split", str, pattern, limit)


def regexp_replace(string: Any, pattern: str, replacement: str) -> Column:
    return _lit_args("regexp_replace", string, pattern, replacement)


def coalesce(*cols: Any) -> Column:
    return _f("coalesce", *cols)


def nvl(col1: Any, col2: Any) -> Column:
    return _f("nvl", col1, col2)


def ifnull(col1: Any, col2: Any) -> Column:
    return _f("ifnull", col1, col2)


def greatest(*cols: Any) -> Column:
    return _f("greatest", *cols)


def least(*cols: Any) -> Column:
    return _f("least", *cols)


def abs(col: Any) -> Column:  # noqa: A001
    return _f("abs", col)


def sqrt(col: Any) -> Column:
    return _f("sqrt", col)


def exp(col: Any) -> Column:
    return _f("exp", col)


def log(arg1: Any, arg2: Any = None) -> Column:
    if arg2 is None:
        return _f("ln", arg1)
    return Column(Func("log", [to_expr(arg1), _c(arg2)]))


def ln(col: Any) -> Column:
    return _f("ln", col)


def log10(col: Any) -> Column:
    return _f("log10", col)


def log2(col: Any) -> Column:
    return _f("log2", col)


def pow(col1: Any, col2: Any) -> Column:  # noqa: A001
    return Column(Func("pow", [_c(col1), _c(col2) if not isinstance(col2, (int, float)) else to_expr(col2)]))


power = pow


def signum(col: Any) -> Column:
    return _f("signum", col)


def floor(col: Any) -> Column:
    return _f("floor", col)


def ceil(col: Any) -> Column:
    return _f("ceil", col)


def round(col: Any, scale: int = 0) -> Column:  # noqa: A001
    return _lit_args("round", col, scale)


def bround(col: Any, scale: int = 0) -> Column:
    """*col* rounded to *scale* digits, a half to the even neighbour (HALF_EVEN)."""
    return _lit_args("bround", col, scale)


def isnan(col: Any) -> Column:
    return _f("isnan", col)


def nanvl(col1: Any, col2: Any) -> Column:
    return _f("nanvl", col1, col2)


def sin(col: Any) -> Column:
    return _f("sin", col)


def cos(col: Any) -> Column:
    return _f("cos", col)


def tan(col: Any) -> Column:
    return _f("tan", col)


def asin(col: Any) -> Column:
    return _f("asin", col)


def acos(col: Any) -> Column:
    return _f("acos", col)


def atan(col: Any) -> Column:
    return _f("atan", col)


def atan2(col1: Any, col2: Any) -> Column:
    return Column(Func("atan2", [to_expr(col1) if isinstance(col1, (int, float)) else _c(col1),
                                 to_expr(col2) if isinstance(col2, (int, float)) else _c(col2)]))


def degrees(col: Any) -> Column:
    return _f("degrees", col)


def radians(col: Any) -> Column:
    return _f("radians", col)


def cbrt(col: Any) -> Column:
    return _f("cbrt", col)


def repeat(col: Any, n: int) -> Column:
    return _lit_args("repeat", col, n)


def regexp_extract(str: Any, pattern: str, idx: int) -> Column:  # noqa: A002
    return _lit_args("regexp_extract", str, pattern, idx)


def nullif(col1: Any, col2: Any) -> Column:
    return _f("nullif", col1, col2)


def nvl2(col1: Any, col2: Any, col3: Any) -> Column:
    return _f("nvl2", col1, col2, col3)


def year(col: Any) -> Column:
    return _f("year", col)


def month(col: Any) -> Column:
    return _f("month", col)


def dayofmonth(col: Any) -> Column:
    return _f("dayofmonth", col)


def hour(col: Any) -> Column:
    return _f("hour", col)


def minute(col: Any) -> Column:
    return _f("minute", col)


def second(col: Any) -> Column:
    return _f("second", col)


def quarter(col: Any) -> Column:
    return _f("quarter", col)


def dayofyear(col: Any) -> Column:
    return _f("dayofyear", col)


def to_date(col: Any, format: str | None = None) -> Column:  # noqa: A002
    return _lit_args("to_date", col, format) if format else _f("to_date", col)


def date_add(start: Any, days: Any) -> Column:
    return Column(Func("date_add", [_c(start), to_expr(days) if isinstance(days, int) else _c(days)]))


def date_sub(start: Any, days: Any) -> Column:
    return Column(Func("date_sub", [_c(start), to_expr(days) if isinstance(days, int) else _c(days)]))


def datediff(end: Any, start: Any) -> Column:
    return _f("datediff", end, start)


# ---------------------------------------------------------------------------- window
def _window(name: str, *args: Any) -> Column:
    from sparkctl.sql.window import WindowFunction
    return Column(WindowFunction(name, list(args)))


def row_number() -> Column:
    return _window("row_number")


def rank() -> Column:
    return _window("rank")


def dense_rank() -> Column:
    return _window("dense_rank")


def percent_rank() -> Column:
    return _window("percent_rank")


def cume_dist() -> Column:
    return _window("cume_dist")


def ntile(n: int) -> Column:
    return _window("ntile", Literal(n))


def nth_value(col: Any, offset: int, ignoreNulls: bool | None = False) -> Column:
    return _window("nth_value", _c(col), Literal(offset), Literal(bool(ignoreNulls)))


def lag(col: Any, offset: int = 1, default: Any = None) -> Column:
    args = [_c(col), Literal(offset)] + ([to_expr(default)] if default is not None else [])
    return _window("lag", *args)


def lead(col: Any, offset: int = 1, default: Any = None) -> Column:
    args = [_c(col), Literal(offset)] + ([to_expr(default)] if default is not None else [])
    return _window("lead", *args)


# ---------------------------------------------------------------------------- arrays
def explode(col: Any) -> Column:
    from sparkctl.sql.generate import Explode
    return Column(Explode(_c(col)))


def explode_outer(col: Any) -> Column:
    from sparkctl.sql.generate import Explode
    return Column(Explode(_c(col), outer=True))


def size(col: Any) -> Column:
    return _f("size", col)


def array_contains(col: Any, value: Any) -> Column:
    return Column(Func("array_contains", [_c(col), to_expr(value)]))


# ---------------------------------------------------------------------------- Python UDFs
def udf(f: Any = None, returnType: Any = None, *, useArrow: bool | None = None) -> Any:
    from sparkctl.sql.udf import udf as make
    return make(f, returnType, useArrow=useArrow)


def pandas_udf(f: Any = None, returnType: Any = None, functionType: Any = None) -> Any:
    from sparkctl.sql.udf import pandas_udf as make
    return make(f, returnType, functionType)


# ---------------------------------------------------------------------------- more families
from sparkctl.sql.functions_complex import (array, array_repeat, create_map, element_at, map_keys,  # noqa: E402,F401
                                            map_values, struct)
from sparkctl.sql.functions_datetime import (add_months, date_format, date_trunc, dayofweek,  # noqa: E402,F401
                                             last_day, months_between, next_day, trunc, weekofyear)

_REEXPORTED = (array, array_repeat, create_map, element_at, map_keys, map_values, struct, add_months, date_format,
               date_trunc, dayofweek, last_day, months_between, next_day, trunc, weekofyear)
from sparkctl.sql.functions_complex import (array_distinct, array_except, array_intersect, array_join,  # noqa: E402
                                            array_max, array_min, array_position, array_remove, array_sort,
                                            array_union, arrays_zip, flatten, slice, sort_array)
from sparkctl.sql.functions_datetime import (current_date, current_timestamp, from_unixtime,  # noqa: E402
                                             to_timestamp, unix_timestamp)
from sparkctl.sql.functions_hash import crc32, hash, md5, sha1, sha2  # noqa: E402,A004

_REEXPORTED_MORE = (array_distinct, array_except, array_intersect, array_join, array_max, array_min, array_position,
                    array_remove, array_sort, array_union, arrays_zip, flatten, slice, sort_array, from_unixtime,
                    to_timestamp, unix_timestamp, crc32, hash, md5, sha1, sha2, current_date, current_timestamp)
from sparkctl.sql.functions_complex import (aggregate, exists, filter, forall, map_filter,  # noqa: E402,A004
                                            map_zip_with, reduce, sequence, transform, transform_keys,
                                            transform_values, zip_with)

_REEXPORTED_HIGHER_ORDER = (aggregate, exists, filter, forall, map_filter, map_zip_with, reduce, sequence, transform,
                            transform_keys, transform_values, zip_with)
