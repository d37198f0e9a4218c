"""``Column``: PySpark's column expressions, a thin wrapper over an expression tree."""
from __future__ import annotations

from typing import Any

import pyarrow as pa

from sparkctl.errors import AnalysisException
from sparkctl.sql.builtins import Func
from sparkctl.sql.expressions import (Alias, BinaryOp, CaseWhen, Cast, Expr, In, IsNull, Literal, Negate, Not,
                                      SortOrder, Star, UnresolvedColumn)


def to_expr(value: Any) -> Expr:
    """A Column, or a Python value as a literal."""
    if isinstance(value, Column):
        return value._expr
    if isinstance(value, Expr):
        return value
    return Literal(value)


def col_expr(name: str) -> Expr:
    if name == "*":
        return Star()
    if name.endswith(".*"):
        return Star(name[:-2])
    if "." in name and not name.startswith("`"):
        qualifier, _, rest = name.partition(".")
        return UnresolvedColumn(rest, qualifier)
    return UnresolvedColumn(name.strip("`"))


def parse_type(value: Any) -> pa.DataType:
    """A cast target: a DataType of sparkctl.sql.types or a type name as Spark writes it."""
    if isinstance(value, pa.DataType):
        return value
    from sparkctl.sql import types as T
    from sparkctl.sql.arrow_types import to_arrow
    if isinstance(value, T.DataType):
        return to_arrow(value)
    if isinstance(value, str):
        return to_arrow(T._parse_datatype_string(value))
    raise TypeError(f"[NOT_COLUMN_OR_DATATYPE_OR_STR] Argument `dataType` should be a DataType or str, "
                    f"got {type(value).__name__}.")


class Column:
    def __init__(self, expr: Expr) -> None:
        self._expr = expr

    # ---------------------------------------------------------------- operators
    def _bin(self, op: str, other: Any, reverse: bool = False) -> "Column":
        a, b = self._expr, to_expr(other)
        return Column(BinaryOp(op, b, a) if reverse else BinaryOp(op, a, b))

    def __add__(self, o: Any) -> "Column":
        return self._bin("+", o)

    def __radd__(self, o: Any) -> "Column":
        return self._bin("+", o, True)

    def __sub__(self, o: Any) -> "Column":
        return self._bin("-", o)

    def __rsub__(self, o: Any) -> "Column":
        return self._bin("-", o, True)

    def __mul__(self, o: Any) -> "Column":
        return self._bin("*", o)

    def __rmul__(self, o: Any) -> "Column":
        return self._bin("*", o, True)

    def __truediv__(self, o: Any) -> "Column":
        return self._bin("/", o)

    def __rtruediv__(self, o: Any) -> "Column":
        return self._bin("/", o, True)

    def __mod__(self, o: Any) -> "Column":
        return self._bin("%", o)

    def __rmod__(self, o: Any) -> "Column":
        return self._bin("%", o, True)

    def __pow__(self, o: Any) -> "Column":
        return Column(Func("power", [self._expr, to_expr(o)]))

    def __eq__(self, o: Any) -> "Column":  # type: ignore[override]
        return self._bin("=", o)

    def __ne__(self, o: Any) -> "Column":  # type: ignore[override]
        return Column(Not(BinaryOp("=", self._expr, to_expr(o))))

    def __lt__(self, o: Any) -> "Column":
        return self._bin("<", o)

    def __le__(self, o: Any) -> "Column":
        return self._bin("<=", o)

    def __gt__(self, o: Any) -> "Column":
        return self._bin(">", o)

    def __ge__(self, o: Any) -> "Column":
        return self._bin(">=", o)

    def eqNullSafe(self, o: Any) -> "Column":
        return self._bin("<=>", o)

    def __and__(self, o: Any) -> "Column":
        return self._bin("AND", o)

    def __rand__(self, o: Any) -> "Column":
        return self._bin("AND", o, True)

    def __or__(self, o: Any) -> "Column":
        return self._bin("OR", o)

    def __ror__(self, o: Any) -> "Column":
        return self._bin("OR", o, True)

    def __invert__(self) -> "Column":
        return Column(Not(self._expr))

    def __neg__(self) -> "Column":
        return Column(Negate(self._expr))

    def __bool__(self) -> bool:
        raise ValueError("[CANNOT_CONVERT_COLUMN_INTO_BOOL] Cannot convert column into bool: please use '&' for "
                         "'and', '|' for 'or', '~' for 'not' when building DataFrame boolean expressions.")

    __hash__ = None  # type: ignore[assignment]

    def __iter__(self) -> Any:
        raise TypeError("Column is not iterable")

    # ---------------------------------------------------------------- methods
    def alias(self, *names: str, **kwargs: Any) -> "Column":
        if len(names) != 1:
            raise NotImplementedError("sparkctl supports one name in alias()")
        return Column(Alias(self._expr, names[0]))

    name = alias

    def cast(self, dataType: Any) -> "Column":
        return Column(Cast(self._expr, parse_type(dataType), ansi=_ansi_enabled()))

    astype = cast

    def try_cast(self, dataType: Any) -> "Column":
        return Column(Cast(self._expr, parse_type(dataType), try_=True))

    def isNull(self) -> "Column":
        return Column(IsNull(self._expr))

    def isNotNull(self) -> "Column":
        return Column(IsNull(self._expr, negated=True))

    def isin(self, *values: Any) -> "Column":
        if len(values) == 1 and isinstance(values[0], (list, tuple, set)):
            values = tuple(values[0])
        return Column(In(self._expr, [to_expr(v) for v in values]))

    def between(self, lower: Any, upper: Any) -> "Column":
        return (self >= lower) & (self <= upper)

    def when(self, condition: "Column", value: Any) -> "Column":
        expr = self._expr
        if not isinstance(expr, CaseWhen) or expr.has_else:
            raise AnalysisException("when() can only be applied on a Column previously generated by when() function, "
                                    "and cannot be applied once otherwise() is applied")
        return Column(CaseWhen(expr.branches + [(to_expr(condition), to_expr(value))]))

    def otherwise(self, value: Any) -> "Column":
        expr = self._expr
        if not isinstance(expr, CaseWhen) or expr.has_else:
            raise AnalysisException("otherwise() can only be applied on a Column previously generated by when(), "
                                    "and only once")
        return Column(CaseWhen(expr.branches, to_expr(value)))

    def asc(self) -> "Column":
        return Column(SortOrder(self._expr, True, True))

    def asc_nulls_first(self) -> "Column":
        return Column(SortOrder(self._expr, True, True))

    def asc_nulls_last(self) -> "Column":
        return Column(SortOrder(self._expr, True, False))

    def desc(self) -> "Column":
        return Column(SortOrder(self._expr, False, False))

    def desc_nulls_first(self) -> "Column":
        return Column(SortOrder(self._expr, False, True))

    def desc_nulls_last(self) -> "Column":
        return Column(SortOrder(self._expr, False, False))

    def startswith(self, other: Any) -> "Column":
        return Column(Func("startswith", [self._expr, to_expr(other)]))

    def endswith(self, other: Any) -> "Column":
        return Column(Func("endswith", [self._expr, to_expr(other)]))

    def contains(self, other: Any) -> "Column":
        return Column(Func("contains", [self._expr, to_expr(other)]))

    def like(self, other: str) -> "Column":
        return Column(Func("like", [self._expr, Literal(other)]))

    def rlike(self, other: str) -> "Column":
        return Column(Func("rlike", [self._expr, Literal(other)]))

    def substr(self, startPos: Any, length: Any) -> "Column":
        return Column(Func("substring", [self._expr, to_expr(startPos), to_expr(length)]))

    def over(self, window: Any) -> "Column":
        from sparkctl.sql.window import WindowExpr
        return Column(WindowExpr(self._expr, window))

    def getField(self, name: str) -> "Column":
        from sparkctl.sql.builtins_complex import GetField
        return Column(GetField(self._expr, name))

    def getItem(self, key: Any) -> "Column":
        from sparkctl.sql.builtins_complex import GetItem
        return Column(_StructOrItem(self._expr, to_expr(key)) if isinstance(key, str) else GetItem(self._expr,
                                                                                                   to_expr(key)))

    def __getitem__(self, key: Any) -> "Column":
        if isinstance(key, slice):
            raise NotImplementedError("sparkctl does not support column[start:stop] yet")
        return self.getItem(key)

    def __getattr__(self, item: str) -> Any:
        if item.startswith("_"):
            raise AttributeError(item)
        raise NotImplementedError(f"Column.{item} is not supported by sparkctl yet")

    def __repr__(self) -> str:
        return f"Column<'{self._expr.sql()}'>"


class _StructOrItem(Expr):
    """``c["k"]``: a struct's field or a map's value, decided once the column's type is known."""

    def __init__(self, child: Expr, key: Expr) -> None:
        self.children = (child, key)

    def resolve(self, scope: Any) -> Expr:
        from sparkctl.sql.builtins_complex import GetField, GetItem
        child = self.children[0].resolve(scope)
        key = self.children[1]
        if pa.types.is_struct(child.dtype) and isinstance(key, Literal):
            return GetField(child, str(key.value)).resolve(scope)
        return GetItem(child, key.resolve(scope))

    def sql(self) -> str:
        return f"{self.children[0].sql()}[{self.children[1].sql()}]"


def _ansi_enabled() -> bool:
    """spark.sql.ansi.enabled of the active session (Spark 4's default, true, without one)."""
    from sparkctl.sql.session import SparkSession
    session = SparkSession.getActiveSession()
    if session is None:
        return True
    return str(session.conf.get("spark.sql.ansi.enabled", "true")).strip().lower() != "false"
