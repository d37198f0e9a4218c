"""Struct, map and array functions of ``pyspark.sql.functions`` (re-exported by ``functions``)."""
from __future__ import annotations

from typing import Any

from sparkctl.sql.builtins import Func
from sparkctl.sql.builtins_complex import CreateStruct
from sparkctl.sql.column import Column, to_expr


def _c(value: Any) -> Any:
    from sparkctl.sql.functions import _c as column_arg
    return column_arg(value)


def _cols(cols: tuple[Any, ...]) -> list[Any]:
    if len(cols) == 1 and isinstance(cols[0], (list, tuple, set)):
        cols = tuple(cols[0])
    return [_c(c) for c in cols]


def struct(*cols: Any) -> Column:
    return Column(CreateStruct(_cols(cols)))






def create_map(*cols: Any) -> Column:
    return Column(Func("map", _cols(cols)))


def map_keys(col: Any) -> Column:
    return Column(Func("map_keys", [_c(col)]))


def map_values(col: Any) -> Column:
    return Column(Func("map_values", [_c(col)]))


def array(*cols: Any) -> Column:
    return Column(Func("array", _cols(cols)))


def array_repeat(col: Any, count: Any) -> Column:
    return Column(Func("array_repeat", [_c(col), to_expr(count) if isinstance(count, int) else _c(count)]))


def element_at(col: Any, extraction: Any) -> Column:
    return Column(Func("element_at", [_c(col), to_expr(extraction) if not isinstance(extraction, Column)
                                      else extraction._expr]))
