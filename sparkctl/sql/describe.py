"""``DataFrame.describe`` and ``DataFrame.summary``: statistics of columns, as a DataFrame of
strings laid out as Spark lays it out (a ``summary`` column naming the statistic, then one
column per input column).

The counts, means, deviations and extremes are one aggregation job; percentiles are read
from each column's sorted non-null values (Spark's approximate percentile is exact at the
sizes a driver can sort: the value of rank ceil(p * n)).
"""
from __future__ import annotations

import math
import re
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.errors import AnalysisException
from sparkctl.sql.expressions import cast_array, is_numeric

DESCRIBE_STATS = ["count", "mean", "stddev", "min", "max"]
SUMMARY_STATS = ["count", "mean", "stddev", "min", "25%", "50%", "75%", "max"]
_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%$")


def _percent(stat: str) -> float:
    """The number of a percentile statistic such as ``"25%"``."""
    match = _PERCENT.match(stat)
    if match is None:
        raise ValueError(f"{stat!r} is not a percentile")
    return float(match.group(1))


def _default_columns(df: Any) -> list[str]:
    return [a.name for a in df._plan.output
            if is_numeric(a.dtype) or pa.types.is_string(a.dtype) or pa.types.is_large_string(a.dtype)]


def describe(df: Any, cols: Sequence[Any]) -> Any:
    if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
        cols = tuple(cols[0])
    names = list(cols) or _default_columns(df)
    return summarize(df, names, DESCRIBE_STATS)


def summary(df: Any, statistics: Sequence[str]) -> Any:
    return summarize(df, _default_columns(df), list(statistics) or SUMMARY_STATS)


def summarize(df: Any, names: list[str], stats: list[str]) -> Any:
    from sparkctl.sql import functions as F
    scope = df._plan.scope()
    attrs = [scope.lookup(n) for n in names]
    for s in stats:
        if s not in ("count", "mean", "stddev", "min", "max", "count_distinct", "approx_count_distinct") \
                and not _PERCENT.match(s):
            raise AnalysisException(f"[UNSUPPORTED_FEATURE] sparkctl's summary() does not compute the statistic "
                                    f"{s!r}", error_class="UNSUPPORTED_FEATURE")
    aggregates = []
    for a in attrs:
        c = F.col(f"`{a.name}`") if "." in a.name else F.col(a.name)
        numeric = is_numeric(a.dtype)
        for s in stats:
            if s == "count":
                aggregates.append(F.count(c).cast("string"))
            elif s == "mean":
                aggregates.append(F.avg(c).cast("string") if numeric else F.lit(None).cast("string"))
            elif s == "stddev":
                aggregates.append(F.stddev(c).cast("string") if numeric else F.lit(None).cast("string"))
            elif s == "min":
                aggregates.append(F.min(c).cast("string"))
            elif s == "max":
                aggregates.append(F.max(c).cast("string"))
            elif s in ("count_distinct", "approx_count_distinct"):
                aggregates.append(F.count_distinct(c).cast("string"))
    plain = [s for s in stats if not _PERCENT.match(s)]
    values: dict[tuple[str, str], Any] = {}
    if aggregates:
        row = df.agg(*aggregates).collect()[0]
        i = 0
        for a in attrs:
            for s in plain:
                values[(a.name, s)] = row[i]
                i += 1
    percents = [s for s in stats if _PERCENT.match(s)]
    if percents:
        table = df.select(*[F.col(a.name) for a in attrs]).toArrow() if attrs else None
        for j, a in enumerate(attrs):
            column = table.column(j).combine_chunks() if table is not None else None
            for s in percents:
                values[(a.name, s)] = _percentile(column, _percent(s) / 100) if is_numeric(a.dtype) else None
    rows = [[s] + [values.get((a.name, s)) for a in attrs] for s in stats]
    schema = "summary STRING" + "".join(f", `{a.name}` STRING" for a in attrs)
    from sparkctl.sql.types import _parse_datatype_string
    return df.sparkSession.createDataFrame(rows, _parse_datatype_string(schema))


def _percentile(column: pa.Array, p: float) -> str | None:
    present = column.drop_null()
    if pa.types.is_floating(present.type):
        present = present.filter(pc.invert(pc.is_nan(present)))
    n = len(present)
    if n == 0:
        return None
    ordered = present.take(pc.sort_indices(present))
    rank = max(1, math.ceil(p * n))
    return cast_array(ordered.slice(rank - 1, 1), pa.string())[0].as_py()
