"""Hash functions of ``pyspark.sql.functions`` (re-exported by ``functions``)."""
from __future__ import annotations

from typing import Any

from sparkctl.sql.builtins import Func
from sparkctl.sql.column import Column, to_expr


def _c(value: Any) -> Any:
    from sparkctl.sql.functions import _c as column_arg
    return column_arg(value)


def md5(col: Any) -> Column:
    return Column(Func("md5", [_c(col)]))


def sha1(col: Any) -> Column:
    return Column(Func("sha1", [_c(col)]))


def sha2(col: Any, numBits: int) -> Column:
    return Column(Func("sha2", [_c(col), to_expr(numBits)]))


def crc32(col: Any) -> Column:
    return Column(Func("crc32", [_c(col)]))


def hash(*cols: Any) -> Column:  # noqa: A001
    if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
        cols = tuple(cols[0])
    return Column(Func("hash", [_c(c) for c in cols]))
