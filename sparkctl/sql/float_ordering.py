"""Spark's ordering of floating-point values (SQLOrderingUtil): NaN equals NaN and is
greater than every other value, +inf included; NULL stays apart (a comparison with NULL is
NULL). pyarrow's kernels follow IEEE 754 instead (NaN equals nothing, compares false), so
comparisons over FLOAT/DOUBLE go through :func:`compare`:

    a = b   ─▶  (a = b)  OR (isnan(a) AND isnan(b))
    a > b   ─▶  (a > b)  OR (isnan(a) AND NOT isnan(b))
    a >= b  ─▶  (a >= b) OR isnan(a)
    (< and <= mirrored)

The OR and AND here are not Kleene's: a NULL operand gives NULL whatever the other side.
Arrays are equal by their grouping encoding (``array_keys``), which pyarrow cannot compare.
Other types go straight to pyarrow's kernel, at no cost.
"""
from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

KERNELS = {"=": "equal", "<": "less", "<=": "less_equal", ">": "greater", ">=": "greater_equal"}


def is_floating(t: pa.DataType) -> bool:
    return pa.types.is_floating(t)


def compare(op: str, a: Any, b: Any, common: pa.DataType) -> Any:
    """``a op b`` (op one of KERNELS) for two values of type *common*, NaN ordered as Spark's."""
    if op == "=" and (pa.types.is_list(common) or pa.types.is_large_list(common)):
        return pc.equal(_encoded(a), _encoded(b))
    plain = getattr(pc, KERNELS[op])(a, b)
    if not is_floating(common):
        return plain
    nan_a, nan_b = pc.is_nan(a), pc.is_nan(b)
    if op == "=":
        nan_case = pc.and_(nan_a, nan_b)
    elif op == ">":
        nan_case = pc.and_(nan_a, pc.invert(nan_b))
    elif op == "<":
        nan_case = pc.and_(nan_b, pc.invert(nan_a))
    elif op == ">=":
        nan_case = nan_a
    else:
        nan_case = nan_b
    return pc.or_(plain, nan_case)


def _encoded(value: Any) -> Any:
    """An array (or array scalar) as the bytes it groups by: equal bytes for arrays Spark
    counts equal (element by element, NULL elements alike, NaN = NaN, 0.0 = -0.0)."""
    from sparkctl.sql.array_keys import encode
    if isinstance(value, pa.Scalar):
        return encode(pa.array([value.as_py()], value.type))[0]
    return encode(value)


def max_with_nan(result: Any, any_nan: Any) -> Any:
    """A max that skipped NaN, made NaN where its group held one (Spark's max of a NaN is NaN)."""
    return pc.if_else(pc.fill_null(any_nan, False), pa.scalar(float("nan"), result.type), result)


def normalize(values: Any) -> Any:
    """FLOAT/DOUBLE grouping and join keys as Spark's NormalizeFloatingNumbers makes them:
    -0.0 as 0.0 and every NaN as one NaN, so that they group, hash and match alike. Other
    types are returned as they are."""
    if not is_floating(values.type):
        return values
    zeroed = pc.add(values, pa.scalar(0.0, values.type))  # -0.0 + 0.0 is 0.0
    return pc.if_else(pc.is_nan(zeroed), pa.scalar(float("nan"), values.type), zeroed)
