"""Built-in functions as expression nodes: scalar functions evaluated with pyarrow's kernels,
and aggregate functions the planner computes in two phases (partial per partition, merged
after the exchange) where they can be.

A scalar function is a :class:`Func` with an entry in ``SCALARS``: how its result type
follows from its arguments' and how it computes a whole column. An unknown name raises
one clear error naming it; nothing falls back to per-row Python.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.errors import AnalysisException
from sparkctl.sql import float_ordering
from sparkctl.sql.scalar_spec import ScalarSpec
from sparkctl.sql.expressions import Expr, Literal, _coerce, as_array, common_type, is_numeric, spark_type_name




def _same(types: list[pa.DataType]) -> pa.DataType:
    return types[0]


def _string(types: list[pa.DataType]) -> pa.DataType:
    return pa.string()


def _int(types: list[pa.DataType]) -> pa.DataType:
    return pa.int32()


def _double(types: list[pa.DataType]) -> pa.DataType:
    return pa.float64()


def _bool(types: list[pa.DataType]) -> pa.DataType:
    return pa.bool_()


def _common(types: list[pa.DataType]) -> pa.DataType:
    t: pa.DataType = pa.null()
    for x in types:
        t = common_type(t, x)
    return t


def _coalesce(args: list[Any], n: int) -> Any:
    if all(isinstance(a, pa.Scalar) for a in args):
        return next((a for a in args if a.is_valid), args[-1])
    return pc.coalesce(*args)


def _substring(args: list[Any], n: int) -> Any:
    value, pos = args[0], args[1].as_py()
    length = args[2].as_py() if len(args) > 2 else None
    # Spark: 1-based; 0 acts as 1; negative counts from the end
    start = pos - 1 if pos > 0 else (0 if pos == 0 else pos)
    if length is None:
        return pc.utf8_slice_codeunits(value, start=start)
    if length <= 0:
        return pc.utf8_slice_codeunits(value, start=0, stop=0)
    stop = start + length
    if start < 0 <= stop:
        return pc.utf8_slice_codeunits(value, start=start)
    return pc.utf8_slice_codeunits(value, start=start, stop=stop)


def round_type(t: pa.DataType, scale: int) -> pa.DataType:
    """The type of ``round``/``bround`` of a *t* value to *scale* digits: a DECIMAL(p, s) gets
    the scale min(s, scale) (0 when *scale* is negative) and one more integral digit (99.5
    rounds to 100), as Spark's RoundBase; any other type stays as it is."""
    if not pa.types.is_decimal(t):
        return t
    integral = t.precision - t.scale + 1
    if scale < 0:
        return pa.decimal128(min(max(integral, 1 - scale), 38), 0)
    new_scale = min(t.scale, scale)
    return pa.decimal128(min(integral + new_scale, 38), new_scale)


def _rounding(mode: str) -> Callable[[list[Any], int], Any]:
    """``round`` (Spark's HALF_UP: a half goes away from zero, Arrow's half_towards_infinity) or
    ``bround`` (HALF_EVEN, Arrow's half_to_even)."""
    def run(args: list[Any], n: int) -> Any:
        scale = args[1].as_py() if len(args) > 1 else 0
        value = args[0]
        if pa.types.is_integer(value.type) and scale >= 0:
            return value
        if pa.types.is_decimal(value.type):  # rounded wider: 99.5 needs room for 100, round(9.5, -3) for 0
            t = value.type
            wide = pa.decimal128(min(38, max(t.precision, t.scale - scale) + 1), t.scale)
            rounded = pc.round(pc.cast(value, wide), ndigits=scale, round_mode=mode)
            return pc.cast(rounded, round_type(t, scale))
        return pc.round(value, ndigits=scale, round_mode=mode)
    return run


def _concat(args: list[Any], n: int) -> Any:
    arrays = [as_array(_coerce(a, a.type, pa.string()), n) for a in args]
    return pc.binary_join_element_wise(*arrays, "", null_handling="emit_null")


def _concat_ws(args: list[Any], n: int) -> Any:
    sep = args[0].as_py()
    arrays = [as_array(_coerce(a, a.type, pa.string()), n) for a in args[1:]]
    return pc.binary_join_element_wise(*arrays, sep, null_handling="skip")


def _datepart(kernel: str) -> Callable[[list[Any], int], Any]:
    def run(args: list[Any], n: int) -> Any:
        return pc.cast(getattr(pc, kernel)(args[0]), pa.int32())
    return run


def _to_date(args: list[Any], n: int) -> Any:
    value = args[0]
    if pa.types.is_date(value.type):
        return value
    if pa.types.is_timestamp(value.type):
        return pc.cast(value, pa.date32())
    if len(args) > 1:
        fmt = _java_to_strptime(args[1].as_py())
        return pc.cast(pc.strptime(value, format=fmt, unit="s", error_is_null=False), pa.date32())
    return pc.cast(pc.utf8_slice_codeunits(value, 0, 10), pa.date32())


def _java_to_strptime(fmt: str) -> str:
    out = fmt
    for java, c in (("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S")):
        out = out.replace(java, c)
    return out


def _date_add(sign: int) -> Callable[[list[Any], int], Any]:
    def run(args: list[Any], n: int) -> Any:
        days = pc.cast(pc.cast(args[0], pa.int32()), pa.int64())
        moved = pc.add(days, pc.multiply(pc.cast(args[1], pa.int64()), sign))
        return pc.cast(pc.cast(moved, pa.int32()), pa.date32())
    return run


def _datediff(args: list[Any], n: int) -> Any:
    end, start = (pc.cast(pc.cast(a, pa.date32()), pa.int32()) for a in args)
    return pc.subtract(end, start)


def _split(args: list[Any], n: int) -> Any:
    pattern = args[1].as_py()
    limit = args[2].as_py() if len(args) > 2 else -1
    return pc.split_pattern_regex(args[0], pattern=pattern, max_splits=None if limit <= 0 else limit - 1)


def _regexp_replace(args: list[Any], n: int) -> Any:
    return pc.replace_substring_regex(args[0], pattern=args[1].as_py(),
                                      replacement=args[2].as_py().replace("$", "\\"))


def _nanvl(args: list[Any], n: int) -> Any:
    return pc.if_else(pc.is_nan(args[0]), args[1], args[0])


def _greatest(args: list[Any], n: int) -> Any:
    result = pc.max_element_wise(*args, skip_nulls=True)
    if not pa.types.is_floating(result.type):
        return result
    # pyarrow's skips NaN, Spark's NaN is the greatest value
    return float_ordering.max_with_nan(result, functools.reduce(pc.or_kleene, [pc.is_nan(a) for a in args]))


def _least(args: list[Any], n: int) -> Any:
    return pc.min_element_wise(*args, skip_nulls=True)


def _log(args: list[Any], n: int) -> Any:
    if len(args) == 2:
        return pc.divide(pc.ln(pc.cast(args[1], pa.float64())), pc.ln(pc.cast(args[0], pa.float64())))
    return pc.ln(pc.cast(args[0], pa.float64()))


def _unary(kernel: str, to_double: bool = False) -> Callable[[list[Any], int], Any]:
    f = getattr(pc, kernel)

    def run(args: list[Any], n: int) -> Any:
        value = pc.cast(args[0], pa.float64()) if to_double else args[0]
        return f(value)
    return run


def _floor_ceil(kernel: str) -> Callable[[list[Any], int], Any]:
    f = getattr(pc, kernel)

    def run(args: list[Any], n: int) -> Any:
        value = args[0]
        if pa.types.is_integer(value.type):
            return pc.cast(value, pa.int64())
        return pc.cast(f(value), pa.int64())
    return run


def _floor_type(types: list[pa.DataType]) -> pa.DataType:
    return pa.int64()


def _length(args: list[Any], n: int) -> Any:
    value = args[0]
    if pa.types.is_binary(value.type):
        return pc.cast(pc.binary_length(value), pa.int32())
    return pc.cast(pc.utf8_length(value), pa.int32())


def _pad(kernel: str) -> Callable[[list[Any], int], Any]:
    def run(args: list[Any], n: int) -> Any:
        width = args[1].as_py()
        pad = args[2].as_py() if len(args) > 2 else " "
        value = args[0]
        padded = getattr(pc, kernel)(value, width=width, padding=pad[:1] or " ")
        return pc.utf8_slice_codeunits(padded, 0, width)
    return run


def _instr(args: list[Any], n: int) -> Any:
    return pc.add(pc.find_substring(args[0], pattern=args[1].as_py()), 1)


def _array_contains(arrays: Any, value: Any) -> Any:
    flat = pc.list_flatten(arrays)
    parents = pc.list_parent_indices(arrays)
    hits = float_ordering.compare("=", flat, value, flat.type)  # NaN finds NaN, as in Spark
    found = pa.table({"p": parents, "h": hits}).group_by("p").aggregate([("h", "any")])
    result = [False] * len(arrays)
    for p, h in zip(found.column("p").to_pylist(), found.column("h_any").to_pylist()):
        result[p] = bool(h)
    nulls = pc.is_null(arrays).to_pylist()
    return pa.array([None if nul else r for r, nul in zip(result, nulls)], pa.bool_())


def _sign_type(types: list[pa.DataType]) -> pa.DataType:
    return pa.float64()


def _regexp_extract(args: list[Any], n: int) -> Any:
    import re
    pattern, group = args[1].as_py(), args[2].as_py() if len(args) > 2 else 1
    # Arrow names each group; Spark numbers them: wrap the pattern's groups in named ones
    count = re.compile(pattern).groups
    if group > count:
        raise AnalysisException(f"[INVALID_PARAMETER_VALUE.REGEX_GROUP_INDEX] The value of parameter(s) `idx` in "
                                f"`regexp_extract` is invalid: Expects group index between 0 and {count}, but got "
                                f"{group}.", error_class="INVALID_PARAMETER_VALUE.REGEX_GROUP_INDEX")
    found = pc.extract_regex(args[0], pattern=f"(?P<g0>{pattern})") if group == 0 else None
    if found is None:
        named, seen, i = [], 0, 0
        while i < len(pattern):  # name the capturing groups g1, g2, ... in order
            ch = pattern[i]
            if ch == "\\":
                named.append(pattern[i:i + 2])
                i += 2
                continue
            if ch == "(" and not pattern.startswith("(?", i):
                seen += 1
                named.append(f"(?P<g{seen}>")
            else:
                named.append(ch)
            i += 1
        found = pc.extract_regex(args[0], pattern="".join(named))
    value = pc.struct_field(found, [0 if group == 0 else group - 1])
    # no match: Spark gives the empty string (NULL only for a NULL input)
    return pc.if_else(pc.is_null(args[0]), pa.scalar(None, pa.string()), pc.fill_null(value, ""))


def _nullif(args: list[Any], n: int) -> Any:
    a, b = args
    equal = pc.fill_null(pc.equal(a, b), False)
    return pc.if_else(equal, pa.scalar(None, a.type), a)


def _nvl2(args: list[Any], n: int) -> Any:
    t = common_type(args[1].type, args[2].type)
    return pc.if_else(pc.is_valid(as_array(args[0], n)), as_array(_coerce(args[1], args[1].type, t), n),
                      as_array(_coerce(args[2], args[2].type, t), n))


def _cbrt(args: list[Any], n: int) -> Any:
    import numpy as np
    value = as_array(pc.cast(args[0], pa.float64()), n)
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    numbers = pc.fill_null(value, 0.0).to_numpy(zero_copy_only=False)
    return pa.array(np.cbrt(numbers), mask=value.is_null().to_numpy(zero_copy_only=False))


def _atan2(args: list[Any], n: int) -> Any:
    return pc.atan2(pc.cast(args[0], pa.float64()), pc.cast(args[1], pa.float64()))


SCALARS: dict[str, ScalarSpec] = {
    "sin": ScalarSpec(_double, _unary("sin", True)),
    "cos": ScalarSpec(_double, _unary("cos", True)),
    "tan": ScalarSpec(_double, _unary("tan", True)),
    "asin": ScalarSpec(_double, _unary("asin", True)),
    "acos": ScalarSpec(_double, _unary("acos", True)),
    "atan": ScalarSpec(_double, _unary("atan", True)),
    "atan2": ScalarSpec(_double, _atan2, 2, 2),
    "degrees": ScalarSpec(_double, lambda a, n: pc.multiply(pc.cast(a[0], pa.float64()), 180.0 / 3.141592653589793)),
    "radians": ScalarSpec(_double, lambda a, n: pc.multiply(pc.cast(a[0], pa.float64()), 3.141592653589793 / 180.0)),
    "cbrt": ScalarSpec(_double, _cbrt),
    "repeat": ScalarSpec(_string, lambda a, n: pc.binary_repeat(a[0], max(0, a[1].as_py())), 2, 2),
    "regexp_extract": ScalarSpec(_string, _regexp_extract, 2, 3),
    "nullif": ScalarSpec(_same, _nullif, 2, 2),
    "nvl2": ScalarSpec(lambda t: common_type(t[1], t[2]), _nvl2, 3, 3),
    "upper": ScalarSpec(_string, lambda a, n: pc.utf8_upper(a[0])),
    "ucase": ScalarSpec(_string, lambda a, n: pc.utf8_upper(a[0])),
    "lower": ScalarSpec(_string, lambda a, n: pc.utf8_lower(a[0])),
    "lcase": ScalarSpec(_string, lambda a, n: pc.utf8_lower(a[0])),
    "length": ScalarSpec(_int, _length),
    "char_length": ScalarSpec(_int, _length),
    "trim": ScalarSpec(_string, lambda a, n: pc.utf8_trim(a[0], characters=" ")),
    "ltrim": ScalarSpec(_string, lambda a, n: pc.utf8_ltrim(a[0], characters=" ")),
    "rtrim": ScalarSpec(_string, lambda a, n: pc.utf8_rtrim(a[0], characters=" ")),
    "reverse": ScalarSpec(_string, lambda a, n: pc.utf8_reverse(a[0])),
    "initcap": ScalarSpec(_string, lambda a, n: pc.utf8_title(pc.utf8_lower(a[0]))),
    "substring": ScalarSpec(_string, _substring, 2, 3),
    "substr": ScalarSpec(_string, _substring, 2, 3),
    "concat": ScalarSpec(_string, _concat, 1, None),
    "concat_ws": ScalarSpec(_string, _concat_ws, 2, None),
    "lpad": ScalarSpec(_string, _pad("utf8_lpad"), 2, 3),
    "rpad": ScalarSpec(_string, _pad("utf8_rpad"), 2, 3),
    "instr": ScalarSpec(_int, _instr, 2, 2),
    "split": ScalarSpec(lambda t: pa.list_(pa.string()), _split, 2, 3),
    "regexp_replace": ScalarSpec(_string, _regexp_replace, 3, 3),
    "coalesce": ScalarSpec(_common, _coalesce, 1, None),
    "nvl": ScalarSpec(_common, _coalesce, 2, 2),
    "ifnull": ScalarSpec(_common, _coalesce, 2, 2),
    "greatest": ScalarSpec(_common, _greatest, 2, None),
    "least": ScalarSpec(_common, _least, 2, None),
    "abs": ScalarSpec(_same, lambda a, n: pc.abs_checked(a[0])),
    "sqrt": ScalarSpec(_double, _unary("sqrt", True)),
    "exp": ScalarSpec(_double, _unary("exp", True)),
    "ln": ScalarSpec(_double, _unary("ln", True)),
    "log": ScalarSpec(_double, _log, 1, 2),
    "log10": ScalarSpec(_double, _unary("log10", True)),
    "log2": ScalarSpec(_double, _unary("log2", True)),
    "pow": ScalarSpec(_double, lambda a, n: pc.power(pc.cast(a[0], pa.float64()), pc.cast(a[1], pa.float64())), 2, 2),
    "power": ScalarSpec(_double, lambda a, n: pc.power(pc.cast(a[0], pa.float64()), pc.cast(a[1], pa.float64())), 2, 2),
    "signum": ScalarSpec(_sign_type, lambda a, n: pc.cast(pc.sign(a[0]), pa.float64())),
    "floor": ScalarSpec(_floor_type, _floor_ceil("floor")),
    "ceil": ScalarSpec(_floor_type, _floor_ceil("ceil")),
    "round": ScalarSpec(_same, _rounding("half_towards_infinity"), 1, 2),
    "bround": ScalarSpec(_same, _rounding("half_to_even"), 1, 2),
    "isnan": ScalarSpec(_bool, lambda a, n: pc.fill_null(pc.is_nan(pc.cast(a[0], pa.float64())), False)),
    "nanvl": ScalarSpec(_double, _nanvl, 2, 2),
    "year": ScalarSpec(_int, _datepart("year")),
    "month": ScalarSpec(_int, _datepart("month")),
    "dayofmonth": ScalarSpec(_int, _datepart("day")),
    "day": ScalarSpec(_int, _datepart("day")),
    "hour": ScalarSpec(_int, _datepart("hour")),
    "minute": ScalarSpec(_int, _datepart("minute")),
    "second": ScalarSpec(_int, _datepart("second")),
    "quarter": ScalarSpec(_int, _datepart("quarter")),
    "dayofyear": ScalarSpec(_int, _datepart("day_of_year")),
    "to_date": ScalarSpec(lambda t: pa.date32(), _to_date, 1, 2),
    "date_add": ScalarSpec(lambda t: pa.date32(), _date_add(1), 2, 2),
    "date_sub": ScalarSpec(lambda t: pa.date32(), _date_add(-1), 2, 2),
    "datediff": ScalarSpec(_int, _datediff, 2, 2),
    "startswith": ScalarSpec(_bool, lambda a, n: pc.starts_with(a[0], pattern=a[1].as_py()), 2, 2),
    "endswith": ScalarSpec(_bool, lambda a, n: pc.ends_with(a[0], pattern=a[1].as_py()), 2, 2),
    "contains": ScalarSpec(_bool, lambda a, n: pc.match_substring(a[0], pattern=a[1].as_py()), 2, 2),
    "like": ScalarSpec(_bool, lambda a, n: pc.match_like(a[0], pattern=a[1].as_py()), 2, 2),
    # Spark's size() of a NULL array is -1 (spark.sql.legacy.sizeOfNull is false under ANSI: NULL)
    "size": ScalarSpec(_int, lambda a, n: pc.cast(pc.list_value_length(a[0]), pa.int32())),
    "array_contains": ScalarSpec(_bool, lambda a, n: _array_contains(a[0], a[1]), 2, 2),
    "rlike": ScalarSpec(_bool, lambda a, n: pc.match_substring_regex(a[0], pattern=a[1].as_py()), 2, 2),
}
#: functions whose later arguments must be literals (a pattern, a position)
LITERAL_ARGS = {"repeat": 1, "regexp_extract": 1, "substring": 1, "substr": 1, "round": 1, "bround": 1, "split": 1, "regexp_replace": 1, "lpad": 1, "rpad": 1,
                "instr": 1, "startswith": 1, "endswith": 1, "contains": 1, "like": 1, "rlike": 1, "concat_ws": 0,
                "to_date": 1}
#: how Spark prints a call whose SQL differs from name(args)
_SQL_FORMS: dict[str, Callable[[list[str]], str]] = {
    "startswith": lambda a: f"startswith({a[0]}, {a[1]})",
    "endswith": lambda a: f"endswith({a[0]}, {a[1]})",
    "contains": lambda a: f"contains({a[0]}, {a[1]})",
    "like": lambda a: f"{a[0]} LIKE {a[1]}",
    "rlike": lambda a: f"RLIKE({a[0]}, {a[1]})",
    "char_length": lambda a: f"char_length({a[0]})",
    "regexp_replace": lambda a: f"regexp_replace({', '.join(a)}, 1)",
}
#: functions whose result is NULL only where an argument is (Spark's NullIntolerant ones)
NULL_INTOLERANT = {"upper", "ucase", "lower", "lcase", "length", "char_length", "trim", "ltrim", "rtrim", "reverse",
                   "initcap", "substring", "substr", "concat", "lpad", "rpad", "instr", "abs", "pow", "power",
                   "startswith", "endswith", "contains", "like", "rlike", "year", "month", "dayofmonth", "day",
                   "hour", "minute", "second", "quarter", "dayofyear", "datediff", "date_add", "date_sub",
                   "regexp_replace", "map_keys", "map_values", "last_day", "add_months", "dayofweek", "weekofyear",
                   "date_format", "sin", "cos", "tan", "atan", "atan2", "degrees", "radians", "cbrt", "repeat",
                   "regexp_extract"}
#: functions whose result is never NULL
NEVER_NULL = {"isnan", "map", "array"}
#: functions whose result is NULL only where every argument is
NULL_IF_ALL = {"coalesce", "nvl", "ifnull", "greatest", "least"}
#: functions Spark prints in capitals
_UPPER = {"sin": "SIN", "cos": "COS", "tan": "TAN", "asin": "ASIN", "acos": "ACOS", "atan": "ATAN",
          "atan2": "ATAN2", "degrees": "DEGREES", "radians": "RADIANS", "cbrt": "CBRT", "sqrt": "SQRT", "exp": "EXP", "log10": "LOG10", "log2": "LOG2", "pow": "POWER", "power": "POWER",
          "signum": "SIGNUM", "floor": "FLOOR", "ceil": "CEIL", "log": "LOG"}


#: functions computed with a constant first argument as it is (the others get it as a column)
_SCALAR_FIRST_ARG = {"coalesce", "nvl", "ifnull", "greatest", "least", "concat", "concat_ws", "datediff", "date_add",
                     "date_sub", "pow", "power", "log"}


class Func(Expr):
    """A call of a built-in scalar function."""

    def __init__(self, name: str, args: Sequence[Expr]) -> None:
        key = name.lower()
        spec = SCALARS.get(key)
        if spec is None:
            raise AnalysisException(f"[UNRESOLVED_ROUTINE] Cannot resolve routine `{name}` on search path "
                                    f"[`system`.`builtin`]: sparkctl does not implement the function `{name}` yet.",
                                    error_class="UNRESOLVED_ROUTINE")
        if len(args) < spec.min_args or (spec.max_args is not None and len(args) > spec.max_args):
            raise AnalysisException(f"[WRONG_NUM_ARGS] The `{name}` requires {spec.min_args}"
                                    f"{'' if spec.max_args == spec.min_args else '+'} parameters but the actual number "
                                    f"is {len(args)}.", error_class="WRONG_NUM_ARGS")
        self.name = key
        self.spec = spec
        self.children = tuple(args)

    def resolve(self, scope: Any) -> Expr:
        new = super().resolve(scope)
        first = LITERAL_ARGS.get(self.name)
        if first is not None:
            for arg in new.children[first:] if first else new.children[:1]:
                if not isinstance(arg, Literal):
                    raise AnalysisException(f"[DATATYPE_MISMATCH.NON_FOLDABLE_INPUT] sparkctl's `{self.name}` needs a "
                                            f"literal for its argument {arg.sql()}.",
                                            error_class="DATATYPE_MISMATCH.NON_FOLDABLE_INPUT")
        return new

    @property
    def dtype(self) -> pa.DataType:
        if self.name in ("round", "bround"):
            scale = self.children[1].value if len(self.children) > 1 and isinstance(self.children[1], Literal) else 0
            return round_type(self.children[0].dtype, scale if isinstance(scale, int) else 0)
        return self.spec.result([c.dtype for c in self.children])

    @property
    def nullable(self) -> bool:
        nulls = self.spec.nulls(len(self.children)) if callable(self.spec.nulls) else self.spec.nulls
        if self.name in NULL_INTOLERANT or nulls == "intolerant":
            return any(c.nullable for c in self.children)
        if self.name in NULL_IF_ALL:
            return all(c.nullable for c in self.children)
        if self.name in NEVER_NULL or nulls == "never":
            return False
        if self.name == "nvl2":
            return self.children[1].nullable or self.children[2].nullable
        return True

    def eval(self, table: pa.Table) -> Any:
        n = table.num_rows
        args = [c.eval(table) for c in self.children]
        if self.spec.result is _common:
            target = self.dtype
            args = [_coerce(a, c.dtype, target) for a, c in zip(args, self.children)]
        first_array = next((i for i, a in enumerate(args) if not isinstance(a, pa.Scalar)), None)
        if first_array is None and self.children:
            args[0] = as_array(args[0], n)  # kernels want one column; a constant call is computed per row
        elif first_array not in (None, 0) and self.name not in _SCALAR_FIRST_ARG:
            args[0] = as_array(args[0], n)
        return self.spec.compute(args, n)

    def sql(self) -> str:
        args = [c.sql() for c in self.children]
        form = _SQL_FORMS.get(self.name)
        return form(args) if form else f"{_UPPER.get(self.name, self.name)}({', '.join(args)})"


def _register_more() -> None:
    """The date/time and complex-type built-ins live in their own modules."""
    from sparkctl.sql.builtins_datetime import DATETIME_LITERAL_ARGS, DATETIME_SCALARS
    from sparkctl.sql.builtins_complex import COMPLEX_LITERAL_ARGS, COMPLEX_SCALARS, COMPLEX_SQL_FORMS
    from sparkctl.sql.builtins_hash import HASH_LITERAL_ARGS, HASH_SCALARS
    for table, literal_args in ((DATETIME_SCALARS, DATETIME_LITERAL_ARGS), (COMPLEX_SCALARS, COMPLEX_LITERAL_ARGS),
                                (HASH_SCALARS, HASH_LITERAL_ARGS)):
        SCALARS.update(table)
        LITERAL_ARGS.update(literal_args)
        _SCALAR_FIRST_ARG.update(table)
    _SQL_FORMS.update(COMPLEX_SQL_FORMS)


_register_more()


# ---------------------------------------------------------------------------- aggregates
#: name -> (result type from the input type, pyarrow's hash aggregate, merge of partials)
AGGREGATES = {"sum", "count", "avg", "mean", "min", "max", "count_distinct", "first", "last", "collect_list",
              "collect_set", "stddev", "stddev_samp", "stddev_pop", "variance", "var_samp", "var_pop",
              "approx_count_distinct", "sum_distinct", "any_value", "bool_and", "bool_or", "every", "some", "any",
              "max_by", "min_by"}


class AggregateFunc(Expr):
    is_aggregate = True

    def __init__(self, name: str, child: Expr | None, distinct: bool = False, ignore_nulls: bool = False,
                 more: tuple[Expr, ...] = ()) -> None:
        """*more*: the further arguments of ``count(DISTINCT a, b, ...)``, which counts the
        distinct tuples none of whose values is null, and the ordering of ``max_by(x, ord)``."""
        key = name.lower()
        if key not in AGGREGATES:
            raise AnalysisException(f"[UNRESOLVED_ROUTINE] sparkctl does not implement the aggregate `{name}` yet.",
                                    error_class="UNRESOLVED_ROUTINE")
        if key == "mean":
            key = "avg"
        if key == "count_distinct":
            key, distinct = "count", True
        if key == "sum_distinct":
            key, distinct = "sum", True
        self.name = key
        self.distinct = distinct
        self.ignore_nulls = ignore_nulls
        self.children = ((child,) if child is not None else ()) + tuple(more)

    @property
    def child(self) -> Expr | None:
        return self.children[0] if self.children else None

    @property
    def dtype(self) -> pa.DataType:
        t = self.child.dtype if self.child is not None else pa.int64()
        name = self.name
        if name in ("count", "approx_count_distinct"):
            return pa.int64()
        if name == "sum":
            if pa.types.is_integer(t):
                return pa.int64()
            if pa.types.is_decimal(t):
                return pa.decimal128(min(38, t.precision + 10), t.scale)
            if not is_numeric(t) and not pa.types.is_null(t):
                raise self._wrong_type(t, "numeric")
            return pa.float64()
        if name == "avg":
            if pa.types.is_decimal(t):
                return pa.decimal128(min(38, t.precision + 4), min(38, t.scale + 4))
            if not is_numeric(t) and not pa.types.is_null(t):
                raise self._wrong_type(t, "numeric")
            return pa.float64()
        if name in ("stddev", "stddev_samp", "stddev_pop", "variance", "var_samp", "var_pop"):
            return pa.float64()
        if name in ("collect_list", "collect_set"):
            return pa.list_(t)
        if name in ("bool_and", "bool_or", "every", "some", "any"):
            return pa.bool_()
        return t

    @property
    def nullable(self) -> bool:
        return self.name not in ("count", "approx_count_distinct", "collect_list", "collect_set")

    def _wrong_type(self, t: pa.DataType, wanted: str) -> AnalysisException:
        return AnalysisException(f"[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] Cannot resolve \"{self.sql()}\" due to "
                                 f"data type mismatch: the parameter requires the {wanted} type, however "
                                 f"\"{self.child.sql() if self.child else ''}\" has the type \"{spark_type_name(t)}\".",
                                 error_class="DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE")

    def eval(self, table: pa.Table) -> Any:
        raise AnalysisException(f"[MISSING_GROUP_BY] the aggregate {self.sql()} is used outside an aggregation",
                                error_class="MISSING_GROUP_BY")

    def sql(self) -> str:
        arg = ", ".join(c.sql() for c in self.children) if self.children else "1"
        name = {"stddev_samp": "stddev_samp", "any": "any"}.get(self.name, self.name)
        return f"{name}({'DISTINCT ' if self.distinct else ''}{arg})"
