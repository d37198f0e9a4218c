"""Expressions: the trees behind Columns, resolved against a plan's attributes and
evaluated a whole Arrow table at a time with pyarrow's compute kernels.

An unresolved tree names columns (:class:`UnresolvedColumn`); :meth:`Expr.resolve` binds
each name to an :class:`Attribute` of the child plan (case-insensitively, as Spark does by
default) and checks types, so a mistake is found where the DataFrame call is made, with
Spark's error class and a "did you mean". A resolved attribute reads the physical column
``_<id>``: every attribute has a plan-wide unique id (Spark's exprId), so two columns of the
same name (a self-join) never collide.

:meth:`Expr.sql` renders an expression as Spark names it (``(a + 1)``, ``sum(x)``,
``CASE WHEN ... END``), which is the name of an unaliased output column.

Arithmetic follows Spark 4's ANSI mode (its default): an integer overflow, a division by
zero or an invalid cast raises rather than returning NULL or a wrapped value.
"""
from __future__ import annotations

import datetime
import decimal
import difflib
import itertools
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.errors import (AnalysisException, DataFrameQueryContext, SparkArithmeticError,
                             attach_query_context, user_query_context)
from sparkctl.sql import float_ordering

_ids = itertools.count(1)


def new_id() -> int:
    return next(_ids)


@dataclass(frozen=True)
class Attribute:
    """One column of a plan's output: its name, Arrow type, and unique id."""

    name: str
    dtype: pa.DataType
    nullable: bool = True
    id: int = field(default_factory=new_id)
    qualifier: str | None = None  # the DataFrame alias it can be named by ("t.a")

    @property
    def column(self) -> str:
        """The physical column name in the tables that carry it."""
        return f"_{self.id}"

    def renamed(self, name: str) -> "Attribute":
        return replace(self, name=name)

    def with_qualifier(self, qualifier: str | None) -> "Attribute":
        return replace(self, qualifier=qualifier)


# ---------------------------------------------------------------------------- base
class Expr:
    """An expression tree node. Subclasses keep their children in ``children``.

    ``origin`` is where the user's code built it (the API call and ``file:line``, PySpark
    4's DataFrameQueryContext): an error raised resolving or evaluating it, on the driver or
    in a task, names that place (``errors.attach_query_context`` wraps each subclass's
    ``resolve`` and ``eval``)."""

    children: tuple["Expr", ...] = ()
    is_aggregate = False
    origin: DataFrameQueryContext | None = None

    def __new__(cls, *args: Any, **kwargs: Any) -> "Expr":
        self = object.__new__(cls)
        if args or kwargs:  # built by the user's code (unpickling in a task passes nothing)
            self.origin = user_query_context(2)
        return self

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        attach_query_context(cls)

    def resolve(self, scope: "Scope") -> "Expr":
        return self.with_children([c.resolve(scope) for c in self.children])

    def with_children(self, children: Sequence["Expr"]) -> "Expr":
        if not children:
            return self
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.children = tuple(children)
        return new

    @property
    def dtype(self) -> pa.DataType:
        raise NotImplementedError(type(self).__name__)

    @property
    def nullable(self) -> bool:
        return True

    def eval(self, table: pa.Table) -> Any:
        """The expression's value for every row of *table*: an Array/ChunkedArray or a Scalar."""
        raise NotImplementedError(type(self).__name__)

    def sql(self) -> str:
        raise NotImplementedError(type(self).__name__)

    def walk(self) -> "Iterator[Expr]":
        yield self
        for c in self.children:
            yield from c.walk()

    def contains_aggregate(self) -> bool:
        return any(e.is_aggregate for e in self.walk())

    def references(self) -> set[int]:
        return {e.attr.id for e in self.walk() if isinstance(e, AttributeRef)}

    def __repr__(self) -> str:
        return f"Column<'{self.sql()}'>"


class Scope:
    """The attributes an expression may name: a plan's output (and, for a join's
    condition, both sides)."""

    def __init__(self, attrs: Sequence[Attribute], outer: Sequence[Attribute] = ()) -> None:
        self.attrs = list(attrs)
        self.outer = list(outer)

    def lookup(self, name: str, qualifier: str | None = None) -> Attribute:
        def matches(attrs: list[Attribute]) -> list[Attribute]:
            lname = name.lower()
            return [a for a in attrs if a.name.lower() == lname
                    and (qualifier is None or (a.qualifier or "").lower() == qualifier.lower())]

        found = matches(self.attrs)
        if not found and qualifier is None and "." in name:  # "t.a" given as one name
            q, _, n = name.partition(".")
            found = [a for a in self.attrs if a.name.lower() == n.lower() and (a.qualifier or "").lower() == q.lower()]
        if len({a.id for a in found}) > 1:
            shown = ", ".join(f"`{a.qualifier + '.' if a.qualifier else ''}{a.name}`" for a in found)
            raise AnalysisException(f"[AMBIGUOUS_REFERENCE] Reference `{name}` is ambiguous, could be: [{shown}].",
                                    error_class="AMBIGUOUS_REFERENCE")
        if found:
            return found[0]
        full = f"{qualifier}.{name}" if qualifier else name
        names = [a.name for a in self.attrs]
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.5) or names[:5]
        suggestion = ", ".join(f"`{n}`" for n in close)
        raise AnalysisException(
            f"[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column, variable, or function parameter with name `{full}` "
            f"cannot be resolved. Did you mean one of the following? [{suggestion}].",
            error_class="UNRESOLVED_COLUMN.WITH_SUGGESTION")


# ---------------------------------------------------------------------------- leaves
class UnresolvedColumn(Expr):
    def __init__(self, name: str, qualifier: str | None = None) -> None:
        self.name = name
        self.qualifier = qualifier

    def resolve(self, scope: Scope) -> Expr:
        if self.name == "*":
            raise AnalysisException("[INVALID_USAGE_OF_STAR_OR_REGEX] Invalid usage of '*' in expression.",
                                    error_class="INVALID_USAGE_OF_STAR_OR_REGEX")
        try:
            return AttributeRef(scope.lookup(self.name, self.qualifier))
        except AnalysisException:
            nested = self._struct_field(scope)
            if nested is None:
                raise
            return nested

    def _struct_field(self, scope: Scope) -> Expr | None:
        """``s.a`` (or ``t.s.a``) naming a field of the struct column ``s``."""
        from sparkctl.sql.builtins_complex import GetField
        parts = ([self.qualifier] if self.qualifier else []) + self.name.split(".")
        for head in (1, 2):
            if len(parts) <= head:
                return None
            try:
                attr = scope.lookup(parts[head - 1], parts[0] if head == 2 else None)
            except AnalysisException:
                continue
            if not pa.types.is_struct(attr.dtype):
                return None
            e: Expr = AttributeRef(attr)
            for part in parts[head:]:
                e = GetField(e, part).resolve(scope)
            e.named_by_field = True  # type: ignore[attr-defined]
            return e
        return None

    def sql(self) -> str:
        return f"{self.qualifier}.{self.name}" if self.qualifier else self.name


class Star(Expr):
    """``*`` or ``t.*`` in a select: expanded by the plan, never evaluated."""

    def __init__(self, qualifier: str | None = None) -> None:
        self.qualifier = qualifier

    def expand(self, scope: Scope) -> list[Expr]:
        attrs = [a for a in scope.attrs if self.qualifier is None
                 or (a.qualifier or "").lower() == self.qualifier.lower()]
        if self.qualifier is not None and not attrs:
            raise AnalysisException(f"[CANNOT_RESOLVE_STAR_EXPAND] Cannot resolve {self.qualifier}.* given input "
                                    f"columns {', '.join(a.name for a in scope.attrs)}.",
                                    error_class="CANNOT_RESOLVE_STAR_EXPAND")
        return [AttributeRef(a) for a in attrs]

    def sql(self) -> str:
        return f"{self.qualifier}.*" if self.qualifier else "*"


class AttributeRef(Expr):
    def __init__(self, attr: Attribute) -> None:
        self.attr = attr

    def resolve(self, scope: Scope) -> Expr:
        return self

    @property
    def dtype(self) -> pa.DataType:
        return self.attr.dtype

    @property
    def nullable(self) -> bool:
        return self.attr.nullable

    def eval(self, table: pa.Table) -> Any:
        return table.column(self.attr.column)

    def sql(self) -> str:
        return self.attr.name


def literal_type(value: Any) -> pa.DataType:
    if value is None:
        return pa.null()
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, int):
        return pa.int32() if -2**31 <= value < 2**31 else pa.int64()
    if isinstance(value, float):
        return pa.float64()
    if isinstance(value, str):
        return pa.string()
    if isinstance(value, (bytes, bytearray)):
        return pa.binary()
    if isinstance(value, datetime.datetime):
        return pa.timestamp("us", tz="UTC")
    if isinstance(value, datetime.date):
        return pa.date32()
    if isinstance(value, decimal.Decimal):
        digits = value.as_tuple()
        scale = max(0, -int(digits.exponent))
        return pa.decimal128(max(len(digits.digits), scale, 1), scale)
    raise TypeError(f"[UNSUPPORTED_DATA_TYPE] a literal of type {type(value).__name__} is not supported: {value!r}")


class Literal(Expr):
    def __init__(self, value: Any, dtype: pa.DataType | None = None) -> None:
        if isinstance(value, datetime.datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)  # the session time zone is UTC
        self.value = value
        self._dtype = dtype or literal_type(value)

    @property
    def dtype(self) -> pa.DataType:
        return self._dtype

    @property
    def nullable(self) -> bool:
        return self.value is None

    def eval(self, table: pa.Table) -> Any:
        return pa.scalar(self.value, type=self._dtype)

    def sql(self) -> str:
        v = self.value
        if v is None:
            return "NULL"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            from sparkctl.sql.show import java_double_str
            return java_double_str(v)
        if isinstance(v, datetime.datetime):
            return f"TIMESTAMP '{v.strftime('%Y-%m-%d %H:%M:%S')}'"
        if isinstance(v, datetime.date):
            return f"DATE '{v.isoformat()}'"
        if isinstance(v, (bytes, bytearray)):
            return "X'" + bytes(v).hex().upper() + "'"
        return str(v)


# ---------------------------------------------------------------------------- helpers
def as_array(value: Any, length: int) -> pa.ChunkedArray | pa.Array:
    """A Scalar broadcast to *length* rows; arrays pass through."""
    if isinstance(value, pa.Scalar):
        if not value.is_valid:
            return pa.nulls(length, type=value.type)
        return pa.repeat(value, length) if hasattr(pa, "repeat") else pc.fill_null(pa.nulls(length, value.type), value)
    return value


_INT_RANK = {pa.int8(): 1, pa.int16(): 2, pa.int32(): 3, pa.int64(): 4}


def is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def common_type(a: pa.DataType, b: pa.DataType, what: str = "") -> pa.DataType:
    """The type both sides are compared or combined in, as Spark widens them."""
    if a == b:
        return a
    if pa.types.is_null(a):
        return b
    if pa.types.is_null(b):
        return a
    if pa.types.is_integer(a) and pa.types.is_integer(b):
        return a if _INT_RANK.get(a, 4) >= _INT_RANK.get(b, 4) else b
    if is_numeric(a) and is_numeric(b):
        if pa.types.is_decimal(a) and pa.types.is_integer(b) or pa.types.is_decimal(b) and pa.types.is_integer(a):
            d = a if pa.types.is_decimal(a) else b
            return pa.decimal128(min(38, max(d.precision, 10 + d.scale)), d.scale)
        if pa.types.is_decimal(a) and pa.types.is_decimal(b):
            scale = max(a.scale, b.scale)
            return pa.decimal128(min(38, max(a.precision - a.scale, b.precision - b.scale) + scale), scale)
        return pa.float64()
    if pa.types.is_string(a) and pa.types.is_large_string(b) or pa.types.is_large_string(a) and pa.types.is_string(b):
        return pa.string()
    if pa.types.is_date(a) and pa.types.is_timestamp(b):
        return b
    if pa.types.is_timestamp(a) and pa.types.is_date(b):
        return a
    if pa.types.is_string(a) and (is_numeric(b) or pa.types.is_date(b) or pa.types.is_timestamp(b)
                                  or pa.types.is_boolean(b)):
        return b  # a string compared with a number or date is cast to it, as Spark's ANSI coercion does
    if pa.types.is_string(b) and (is_numeric(a) or pa.types.is_date(a) or pa.types.is_timestamp(a)
                                  or pa.types.is_boolean(a)):
        return a
    raise AnalysisException(f"[DATATYPE_MISMATCH.BINARY_OP_DIFF_TYPES] Cannot resolve {what or 'the expression'} due "
                            f"to data type mismatch: the left and right operands have different types "
                            f"(\"{spark_type_name(a)}\" and \"{spark_type_name(b)}\").",
                            error_class="DATATYPE_MISMATCH.BINARY_OP_DIFF_TYPES")


def spark_type_name(t: pa.DataType) -> str:
    """Spark's SQL name of an Arrow type (INT, BIGINT, STRING...), for messages and CAST names."""
    simple = {pa.int8(): "TINYINT", pa.int16(): "SMALLINT", pa.int32(): "INT", pa.int64(): "BIGINT",
              pa.float32(): "FLOAT", pa.float64(): "DOUBLE", pa.bool_(): "BOOLEAN", pa.string(): "STRING",
              pa.large_string(): "STRING", pa.binary(): "BINARY", pa.date32(): "DATE", pa.null(): "VOID"}
    if t in simple:
        return simple[t]
    if pa.types.is_timestamp(t):
        return "TIMESTAMP" if t.tz else "TIMESTAMP_NTZ"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"ARRAY<{spark_type_name(t.value_type)}>"
    if pa.types.is_map(t):
        return f"MAP<{spark_type_name(t.key_type)}, {spark_type_name(t.item_type)}>"
    if pa.types.is_struct(t):
        return "STRUCT<" + ", ".join(f"{f.name}: {spark_type_name(f.type)}" for f in t) + ">"
    return str(t).upper()


def cast_array(value: Any, to: pa.DataType, safe: bool = True, legacy: bool = False) -> Any:
    """Cast with Spark's ANSI rules: an impossible value raises (``safe``), else it is NULL.
    ``legacy``: Spark's rules with spark.sql.ansi.enabled off (``casts.numeric_cast``: NULL,
    wrapping or saturating, never an error)."""
    source = value.type
    if source == to:
        return value
    if legacy:
        from sparkctl.sql.casts import is_numeric_cast, numeric_cast
        if is_numeric_cast(source, to):
            return numeric_cast(value, to, safe=False, legacy=True)
        if (pa.types.is_string(source) or pa.types.is_large_string(source)) and pa.types.is_integer(to):
            # with ANSI off a text's fraction is dropped, as UTF8String.toInt allows ('1.25' is 1)
            value = pc.utf8_trim_whitespace(value)
            value = pc.if_else(pc.match_substring_regex(value, r"^[+-]?\d+\.\d*$"),
                               pc.replace_substring_regex(value, r"\.\d*$", ""), value)
        safe = False
    try:
        if pa.types.is_string(to) or pa.types.is_large_string(to):
            return _to_string(value)
        if pa.types.is_boolean(to) and (pa.types.is_string(source) or pa.types.is_large_string(source)):
            lowered = pc.utf8_lower(pc.utf8_trim_whitespace(value))
            true = pc.is_in(lowered, pa.array(["true", "t", "yes", "y", "1"]))
            false = pc.is_in(lowered, pa.array(["false", "f", "no", "n", "0"]))
            out = pc.if_else(true, True, pc.if_else(false, False, pa.scalar(None, pa.bool_())))
            if safe and pc.any(pc.and_(pc.is_valid(value), pc.is_null(out))).as_py():
                raise _cast_error(value, out, to)
            return out
        if (pa.types.is_string(source) or pa.types.is_large_string(source)) and pa.types.is_timestamp(to):
            from sparkctl.sql.builtins_datetime import text_to_timestamp  # Spark's forms, zone-less as UTC
            return text_to_timestamp(value, to, safe)
        from sparkctl.sql.casts import is_numeric_cast, numeric_cast
        if is_numeric_cast(source, to):
            return numeric_cast(value, to, safe)
        if (pa.types.is_string(source) or pa.types.is_large_string(source)) and is_numeric(to):
            value = pc.utf8_trim_whitespace(value)
        if pa.types.is_floating(source) and pa.types.is_integer(to):
            value = pc.trunc(value)
        return pc.cast(value, to, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        if not safe:
            return _lenient_cast(value, to)
        if isinstance(e, pa.ArrowNotImplementedError):
            raise AnalysisException(f"[DATATYPE_MISMATCH.CAST_WITHOUT_SUGGESTION] cannot cast "
                                    f"\"{spark_type_name(source)}\" to \"{spark_type_name(to)}\".",
                                    error_class="DATATYPE_MISMATCH.CAST_WITHOUT_SUGGESTION") from None
        raise _cast_error(value, _lenient_cast(value, to), to) from None


def _lenient_cast(value: Any, to: pa.DataType) -> Any:
    """Element by element, NULL where a value does not convert (try_cast)."""
    out = []
    for v in (value.to_pylist() if hasattr(value, "to_pylist") else [value.as_py()]):
        try:
            out.append(pc.cast(pa.array([v]), to, safe=True)[0].as_py() if v is not None else None)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
            out.append(None)
    return pa.array(out, type=to)


def _cast_error(value: Any, converted: Any, to: pa.DataType) -> Exception:
    bad = pc.and_(pc.is_valid(value), pc.is_null(converted))
    idx = pc.index(bad, True).as_py() if hasattr(bad, "type") else -1
    shown = value[idx].as_py() if idx is not None and idx >= 0 else "?"
    source = spark_type_name(value.type)
    return SparkArithmeticError(
        f"[CAST_INVALID_INPUT] The value '{shown}' of the type \"{source}\" cannot be cast to "
        f"\"{spark_type_name(to)}\" because it is malformed. Correct the value as per the syntax, or change its "
        f"target type. Use `try_cast` to tolerate malformed input and return NULL instead. SQLSTATE: 22018",
        error_class="CAST_INVALID_INPUT")


def _to_string(value: Any) -> Any:
    t = value.type
    if pa.types.is_floating(t):  # Java's Double.toString, Float.toString for a FLOAT (0.1, not 0.10000000149...)
        from sparkctl.sql.show import java_double_str, java_float_str
        text = java_float_str if t == pa.float32() else java_double_str
        return pa.array([None if v is None else text(v) for v in value.to_pylist()], pa.string())
    if pa.types.is_boolean(t):
        return pc.if_else(value, "true", "false")
    if pa.types.is_timestamp(t):
        return pa.array([None if v is None else _timestamp_str(v) for v in value.to_pylist()], pa.string())
    return pc.cast(value, pa.string())


def _timestamp_str(v: datetime.datetime) -> str:
    text = v.strftime("%Y-%m-%d %H:%M:%S")
    if v.microsecond:
        text += ("." + f"{v.microsecond:06d}").rstrip("0")
    return text


# ---------------------------------------------------------------------------- composite
class Alias(Expr):
    def __init__(self, child: Expr, name: str, attr_id: int | None = None) -> None:
        self.children = (child,)
        self.name = name
        self.attr_id = attr_id or new_id()

    @property
    def child(self) -> Expr:
        return self.children[0]

    @property
    def dtype(self) -> pa.DataType:
        return self.child.dtype

    @property
    def nullable(self) -> bool:
        return self.child.nullable

    def eval(self, table: pa.Table) -> Any:
        return self.child.eval(table)

    def sql(self) -> str:
        return self.name


class Cast(Expr):
    """``CAST(x AS t)``; ``ansi`` is spark.sql.ansi.enabled where the cast was written (Spark's
    evalMode, fixed as the expression is made): off, a value that does not fit is NULL (or
    wraps, for integers) instead of an error."""

    ansi = True

    def __init__(self, child: Expr, to: pa.DataType, try_: bool = False, ansi: bool = True) -> None:
        self.children = (child,)
        self.to = to
        self.try_ = try_
        self.ansi = ansi

    @property
    def dtype(self) -> pa.DataType:
        return self.to

    @property
    def nullable(self) -> bool:
        source = self.children[0].dtype
        # under ANSI a numeric cast that does not fit raises; only NaN to DECIMAL gives NULL
        exact = pa.types.is_integer(source) or pa.types.is_decimal(source)
        safe = (pa.types.is_string(self.to) or source == self.to
                or (pa.types.is_floating(self.to) and (exact or pa.types.is_floating(source)))
                or (pa.types.is_decimal(self.to) and exact)
                or (pa.types.is_integer(self.to) and pa.types.is_decimal(source))
                or (pa.types.is_integer(source) and pa.types.is_integer(self.to) and
                    _INT_RANK.get(self.to, 0) >= _INT_RANK.get(source, 5)))
        if not self.ansi and pa.types.is_decimal(self.to) and not (
                exact and _decimal_fits(source, self.to)):
            safe = False  # a decimal that does not fit is NULL with ANSI off
        return self.try_ or not safe or self.children[0].nullable

    def eval(self, table: pa.Table) -> Any:
        value = self.children[0].eval(table)
        legacy = not self.ansi and not self.try_
        if isinstance(value, pa.Scalar):
            return cast_array(pa.array([value.as_py()], value.type), self.to, safe=not self.try_, legacy=legacy)[0]
        return cast_array(value, self.to, safe=not self.try_, legacy=legacy)

    def sql(self) -> str:
        fn = "TRY_CAST" if self.try_ else "CAST"
        return f"{fn}({self.children[0].sql()} AS {spark_type_name(self.to)})"


def _decimal_fits(source: pa.DataType, to: pa.DataType) -> bool:
    """Whether every value of the integer or decimal type *source* fits DECIMAL *to* (Spark's
    canNullSafeCastToDecimal)."""
    digits = {8: 3, 16: 5, 32: 10, 64: 19}.get(source.bit_width, 0) if pa.types.is_integer(source) \
        else source.precision - source.scale
    scale = 0 if pa.types.is_integer(source) else source.scale
    return digits <= to.precision - to.scale and scale <= to.scale


def _checked(kernel: str) -> Callable[[Any, Any], Any]:
    f = getattr(pc, kernel)

    def run(a: Any, b: Any) -> Any:
        try:
            return f(a, b)
        except pa.ArrowInvalid as e:
            if "overflow" in str(e).lower():
                raise SparkArithmeticError(
                    "[ARITHMETIC_OVERFLOW] integer overflow. Use 'try_add' to tolerate overflow and return NULL "
                    "instead. If necessary set spark.sql.ansi.enabled to \"false\" to bypass this error. "
                    "SQLSTATE: 22003", error_class="ARITHMETIC_OVERFLOW") from None
            raise
    return run


_ARITH = {"+": "add_checked", "-": "subtract_checked", "*": "multiply_checked"}
_COMPARE = {"=": "equal", "<": "less", "<=": "less_equal", ">": "greater", ">=": "greater_equal"}


class BinaryOp(Expr):
    """Arithmetic, comparison and logic between two expressions."""

    _type: pa.DataType | None = None  # the result type, fixed once resolved

    def __init__(self, op: str, left: Expr, right: Expr) -> None:
        self.op = op
        self.children = (left, right)

    def resolve(self, scope: Scope) -> Expr:
        new = super().resolve(scope)
        assert isinstance(new, BinaryOp)
        new._type = new._result_type()
        return new

    def _result_type(self) -> pa.DataType:
        left, right = (c.dtype for c in self.children)
        op = self.op
        if op in ("AND", "OR"):
            for t in (left, right):
                if not (pa.types.is_boolean(t) or pa.types.is_null(t)):
                    raise AnalysisException(f"[DATATYPE_MISMATCH.BINARY_OP_WRONG_TYPE] Cannot resolve \"{self.sql()}\""
                                            f" due to data type mismatch: the operator requires BOOLEAN operands.",
                                            error_class="DATATYPE_MISMATCH.BINARY_OP_WRONG_TYPE")
            return pa.bool_()
        if op in _COMPARE or op in ("<=>",):
            common_type(left, right, f"\"{self.sql()}\"")
            return pa.bool_()
        if op == "/":
            common = common_type(left, right, f"\"{self.sql()}\"")
            if pa.types.is_decimal(common):
                return decimal_result(op, _decimal_operand(self.children[0]), _decimal_operand(self.children[1]))
            return pa.float64()
        if op in ("+", "-", "*", "%"):
            if not (is_numeric(left) or pa.types.is_null(left)) or not (is_numeric(right) or pa.types.is_null(right)):
                if op in ("+", "-") and pa.types.is_date(left) and pa.types.is_integer(right):
                    return pa.date32()
                raise AnalysisException(f"[DATATYPE_MISMATCH.BINARY_OP_DIFF_TYPES] Cannot resolve \"{self.sql()}\" "
                                        f"due to data type mismatch: the left and right operands have different types "
                                        f"(\"{spark_type_name(left)}\" and \"{spark_type_name(right)}\").",
                                        error_class="DATATYPE_MISMATCH.BINARY_OP_DIFF_TYPES")
            common = common_type(left, right)
            if pa.types.is_decimal(common):
                return decimal_result(op, _decimal_operand(self.children[0]), _decimal_operand(self.children[1]))
            return pa.int32() if pa.types.is_null(common) else common
        raise AnalysisException(f"unknown operator {op}")

    @property
    def dtype(self) -> pa.DataType:
        return self._type or self._result_type()

    @property
    def nullable(self) -> bool:
        if self.op in ("/", "%"):
            return True  # x / 0 and x % 0 are NULL outside ANSI mode, so Spark keeps them nullable
        if self.op == "<=>":
            return False
        return any(c.nullable for c in self.children)

    def eval(self, table: pa.Table) -> Any:
        op = self.op
        a, b = (c.eval(table) for c in self.children)
        if op == "AND":
            return pc.and_kleene(a, b)
        if op == "OR":
            return pc.or_kleene(a, b)
        left_t, right_t = self.children[0].dtype, self.children[1].dtype
        if op in ("+", "-") and pa.types.is_date(left_t):
            days = pc.cast(b, pa.int32())
            base = pc.cast(pc.cast(a, pa.int32()), pa.int64())
            moved = pc.add(base, days) if op == "+" else pc.subtract(base, days)
            return pc.cast(pc.cast(moved, pa.int32()), pa.date32())
        if op in _COMPARE or op == "<=>":
            common = common_type(left_t, right_t)
            a, b = _coerce(a, left_t, common), _coerce(b, right_t, common)
            if op == "<=>":
                both_null = pc.and_(pc.is_null(a), pc.is_null(b))
                return pc.or_(both_null, pc.fill_null(float_ordering.compare("=", a, b, common), False))
            return float_ordering.compare(op, a, b, common)
        result = self.dtype
        if pa.types.is_decimal(result):
            return _decimal_arith(op, a, b, self.children, result)
        a, b = _coerce(a, left_t, result if op != "/" else (result if pa.types.is_decimal(result) else pa.float64())), \
            _coerce(b, right_t, result if op != "/" else (result if pa.types.is_decimal(result) else pa.float64()))
        if op in _ARITH:
            return _checked(_ARITH[op])(a, b)
        zero = pc.equal(b, 0)
        if pc.any(zero).as_py() if not isinstance(zero, pa.Scalar) else zero.as_py():
            raise SparkArithmeticError(
                "[DIVIDE_BY_ZERO] Division by zero. Use `try_divide` to tolerate divisor being 0 and return NULL "
                "instead. If necessary set \"spark.sql.ansi.enabled\" to \"false\" to bypass this error. "
                "SQLSTATE: 22012", error_class="DIVIDE_BY_ZERO")
        if op == "/":
            return pc.divide(a, b)
        # Spark's % keeps the dividend's sign, as C's fmod does
        if pa.types.is_integer(result):
            quotient = pc.divide(a, b)  # integer division truncates toward zero in Arrow
            return pc.subtract(a, pc.multiply(quotient, b))
        return pc.subtract(a, pc.multiply(pc.trunc(pc.divide(a, b)), b))

    def sql(self) -> str:
        left, right = (c.sql() for c in self.children)
        if self.op == "!=":
            return f"(NOT ({left} = {right}))"
        return f"({left} {self.op} {right})"


_INT_DIGITS = {pa.int8(): 3, pa.int16(): 5, pa.int32(): 10, pa.int64(): 20}
MAX_DECIMAL_PRECISION = 38


def _decimal_operand(e: Expr) -> pa.DataType:
    """The decimal type an operand of decimal arithmetic counts as: an integer literal by its
    digits (``1 - price`` is DECIMAL(1,0) - price), an integer column by its type's width."""
    t = e.dtype
    if pa.types.is_decimal(t):
        return t
    if isinstance(e, Literal) and isinstance(e.value, int) and not isinstance(e.value, bool):
        return pa.decimal128(max(1, len(str(abs(e.value)))), 0)
    return pa.decimal128(_INT_DIGITS.get(t, 20), 0)


def _adjust_precision(precision: int, scale: int) -> pa.DataType:
    """Spark's DecimalType.adjustPrecisionScale: past 38 digits the integral part is kept
    and the scale shrinks, to no fewer than 6 digits."""
    if precision <= MAX_DECIMAL_PRECISION:
        return pa.decimal128(precision, scale)
    int_digits = precision - scale
    scale = max(MAX_DECIMAL_PRECISION - int_digits, min(scale, 6))
    return pa.decimal128(MAX_DECIMAL_PRECISION, scale)


def decimal_result(op: str, a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """The type of decimal *a* op *b*, by Spark's DecimalPrecision rules."""
    p1, s1, p2, s2 = a.precision, a.scale, b.precision, b.scale
    if op in ("+", "-"):
        scale = max(s1, s2)
        return _adjust_precision(max(p1 - s1, p2 - s2) + scale + 1, scale)
    if op == "*":
        return _adjust_precision(p1 + p2 + 1, s1 + s2)
    if op == "/":
        scale = max(6, s1 + p2 + 1)
        return _adjust_precision(p1 - s1 + s2 + scale, scale)
    scale = max(s1, s2)  # %
    return _adjust_precision(min(p1 - s1, p2 - s2) + scale, scale)


def _decimal_arith(op: str, a: Any, b: Any, operands: Sequence[Expr], result: pa.DataType) -> Any:
    """Decimal arithmetic computed exactly in 256-bit decimals, then rounded half-up to the
    result's scale, as Spark does."""
    wide = []
    for value, e in zip((a, b), operands):
        t = _decimal_operand(e)
        to = pa.decimal256(t.precision, t.scale)
        if isinstance(value, pa.Scalar):
            v = value.as_py()
            wide.append(pa.scalar(None if v is None else decimal.Decimal(v), to))
        else:
            wide.append(pc.cast(value, to))
    x, y = wide
    try:
        if op in ("/", "%"):
            zero = pc.equal(y, pa.scalar(0, y.type))
            if pc.any(zero).as_py() if not isinstance(zero, pa.Scalar) else zero.as_py():
                raise SparkArithmeticError(
                    "[DIVIDE_BY_ZERO] Division by zero. Use `try_divide` to tolerate divisor being 0 and return NULL "
                    "instead. If necessary set \"spark.sql.ansi.enabled\" to \"false\" to bypass this error. "
                    "SQLSTATE: 22012", error_class="DIVIDE_BY_ZERO")
            if op == "/":
                # the quotient must carry one digit past the result's scale (then rounded HALF_UP):
                # Arrow's quotient has a scale of its own (s1 - s2, or more where Arrow widens it),
                # so the dividend's scale is raised by what that scale lacks
                natural = pc.divide(pa.array([], x.type), y).type.scale
                extra = result.scale + 1 - natural
                if extra > 0:
                    x = pc.cast(x, pa.decimal256(min(76, x.type.precision + extra), x.type.scale + extra))
                exact = pc.divide(x, y)
            else:
                exact = pc.subtract(x, pc.multiply(pc.trunc(pc.divide(x, y)), y))
        else:
            exact = {"+": pc.add, "-": pc.subtract, "*": pc.multiply}[op](x, y)
        # Spark rounds HALF_UP, away from zero (Arrow's half_up rounds -0.5 up, to 0)
        rounded = pc.round(exact, ndigits=result.scale, round_mode="half_towards_infinity")
        return pc.cast(rounded, result)
    except pa.ArrowInvalid as e:
        raise SparkArithmeticError(f"[NUMERIC_VALUE_OUT_OF_RANGE] a decimal result does not fit "
                                   f"{spark_type_name(result)}: {e}", error_class="NUMERIC_VALUE_OUT_OF_RANGE") from None


def _coerce(value: Any, source: pa.DataType, to: pa.DataType) -> Any:
    if source == to or pa.types.is_null(to):
        return value
    if isinstance(value, pa.Scalar):
        if not value.is_valid:
            return pa.scalar(None, to)
        return cast_array(pa.array([value.as_py()], source), to)[0]
    return cast_array(value, to)


class Not(Expr):
    def __init__(self, child: Expr) -> None:
        self.children = (child,)

    @property
    def dtype(self) -> pa.DataType:
        return pa.bool_()

    @property
    def nullable(self) -> bool:
        return self.children[0].nullable

    def eval(self, table: pa.Table) -> Any:
        return pc.invert(self.children[0].eval(table))

    def sql(self) -> str:
        return f"(NOT {self.children[0].sql()})"


class Negate(Expr):
    def __init__(self, child: Expr) -> None:
        self.children = (child,)

    @property
    def dtype(self) -> pa.DataType:
        return self.children[0].dtype

    @property
    def nullable(self) -> bool:
        return self.children[0].nullable

    def eval(self, table: pa.Table) -> Any:
        return _checked("subtract_checked")(pa.scalar(0, self.dtype), self.children[0].eval(table))

    def sql(self) -> str:
        return f"negative({self.children[0].sql()})"


class IsNull(Expr):
    def __init__(self, child: Expr, negated: bool = False) -> None:
        self.children = (child,)
        self.negated = negated

    @property
    def dtype(self) -> pa.DataType:
        return pa.bool_()

    @property
    def nullable(self) -> bool:
        return False

    def eval(self, table: pa.Table) -> Any:
        value = self.children[0].eval(table)
        if isinstance(value, pa.Scalar):
            return pa.scalar(value.is_valid if self.negated else not value.is_valid)
        return pc.is_valid(value) if self.negated else pc.is_null(value)

    def sql(self) -> str:
        return f"({self.children[0].sql()} IS {'NOT ' if self.negated else ''}NULL)"


class In(Expr):
    def __init__(self, child: Expr, values: Sequence[Expr]) -> None:
        self.children = (child, *values)

    @property
    def dtype(self) -> pa.DataType:
        return pa.bool_()

    @property
    def nullable(self) -> bool:
        return any(c.nullable for c in self.children)

    def eval(self, table: pa.Table) -> Any:
        value = self.children[0].eval(table)
        n = table.num_rows
        value = as_array(value, n)
        result: Any = None
        for option in self.children[1:]:
            common = common_type(self.children[0].dtype, option.dtype)
            eq = float_ordering.compare("=", _coerce(value, self.children[0].dtype, common),
                                        _coerce(option.eval(table), option.dtype, common), common)
            result = eq if result is None else pc.or_kleene(result, eq)
        return result if result is not None else as_array(pa.scalar(False), n)

    def sql(self) -> str:
        return f"({self.children[0].sql()} IN ({', '.join(c.sql() for c in self.children[1:])}))"


class CaseWhen(Expr):
    """``CASE WHEN c1 THEN v1 ... ELSE e END``: children are c1, v1, c2, v2, ..., [else]."""

    def __init__(self, branches: Sequence[tuple[Expr, Expr]], otherwise: Expr | None = None) -> None:
        kids: list[Expr] = [e for pair in branches for e in pair]
        if otherwise is not None:
            kids.append(otherwise)
        self.children = tuple(kids)
        self.has_else = otherwise is not None

    @property
    def branches(self) -> list[tuple[Expr, Expr]]:
        n = len(self.children) - (1 if self.has_else else 0)
        return [(self.children[i], self.children[i + 1]) for i in range(0, n, 2)]

    @property
    def otherwise(self) -> Expr | None:
        return self.children[-1] if self.has_else else None

    @property
    def dtype(self) -> pa.DataType:
        values = [v for _, v in self.branches] + ([self.otherwise] if self.otherwise is not None else [])
        t: pa.DataType = pa.null()
        for v in values:
            t = common_type(t, v.dtype, f"\"{self.sql()}\"")
        return t

    @property
    def nullable(self) -> bool:
        otherwise = self.otherwise
        return otherwise is None or otherwise.nullable or any(v.nullable for _, v in self.branches)

    def eval(self, table: pa.Table) -> Any:
        n = table.num_rows
        out_type = self.dtype
        if pa.types.is_null(out_type):
            return pa.nulls(n)
        conds = [as_array(pc.fill_null(c.eval(table), False), n) for c, _ in self.branches]
        values = [as_array(_coerce(v.eval(table), v.dtype, out_type), n) for _, v in self.branches]
        other = self.otherwise
        default = as_array(_coerce(other.eval(table), other.dtype, out_type), n) if other is not None \
            else pa.nulls(n, out_type)
        result = default
        for cond, value in reversed(list(zip(conds, values))):
            result = pc.if_else(cond, value, result)
        return result

    def sql(self) -> str:
        parts = " ".join(f"WHEN {c.sql()} THEN {v.sql()}" for c, v in self.branches)
        tail = f" ELSE {self.otherwise.sql()}" if self.otherwise is not None else ""
        return f"CASE {parts}{tail} END"


class SortOrder(Expr):
    def __init__(self, child: Expr, ascending: bool = True, nulls_first: bool | None = None) -> None:
        self.children = (child,)
        self.ascending = ascending
        self.nulls_first = ascending if nulls_first is None else nulls_first

    @property
    def child(self) -> Expr:
        return self.children[0]

    @property
    def dtype(self) -> pa.DataType:
        return self.child.dtype

    def eval(self, table: pa.Table) -> Any:
        return self.child.eval(table)

    def sql(self) -> str:
        direction = "ASC" if self.ascending else "DESC"
        nulls = "NULLS FIRST" if self.nulls_first else "NULLS LAST"
        return f"{self.child.sql()} {direction} {nulls}"


def strip_alias(e: Expr) -> Expr:
    while isinstance(e, Alias):
        e = e.child
    return e


def output_name(e: Expr) -> str:
    """The name Spark gives an output column computed by *e*."""
    if isinstance(e, Alias):
        return e.name
    if isinstance(e, AttributeRef):
        return e.attr.name
    if getattr(e, "named_by_field", False):
        return e.field  # type: ignore[attr-defined]
    if isinstance(e, Cast) and isinstance(e.children[0], (AttributeRef, UnresolvedColumn)):
        return output_name(e.children[0]) if isinstance(e.children[0], AttributeRef) else e.children[0].name
    return e.sql()


def given_name(e: Expr) -> str | None:
    """The name an argument gives the field it becomes (an alias, a column), or None
    when it has none of its own; struct() and arrays_zip() name unnamed ones apart."""
    if isinstance(e, Alias):
        return e.name
    if isinstance(e, AttributeRef):
        return e.attr.name
    if isinstance(e, UnresolvedColumn):
        return e.name
    return getattr(e, "field_name", None)  # a lambda's parameter is named too
