"""SQL expressions to Columns: the half of ``spark.sql``'s translator that turns sqlglot's
expression nodes (operators, literals, CASE, CAST, INTERVAL arithmetic, windows, function
calls) into PySpark Column API calls. ``sql_parser`` holds the queries' half (SELECT, FROM,
JOIN, WHERE, subqueries, set operations) and the entry points."""
from __future__ import annotations

import calendar
import dataclasses
import datetime as _dt
import decimal
import inspect
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import sqlglot
from sqlglot import exp

DIALECT = "spark"
_PRIVATE = "__sql_"  # prefix of helper columns this module adds and drops again


class SqlParseError(ValueError):
    """The text is not SQL sqlglot's Spark dialect can parse (one line, then the snippet)."""


class SqlNotSupportedError(NotImplementedError):
    """Valid SQL this translator does not turn into DataFrame calls (names the construct)."""


#: a number with Spark's type suffix: L (BIGINT), S (SMALLINT), Y (TINYINT), D, F, BD (DECIMAL)
_TYPED_NUMBER = re.compile(r"((?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(BD|[LSYDF])", re.IGNORECASE)


def to_is_decimal(node: exp.Cast) -> bool:
    return node.args["to"].this == exp.DataType.Type.DECIMAL


def _snippet(text: str, limit: int = 80) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[:limit - 3] + "..."


def _position(query: str, node: exp.Expr) -> str:
    """'line L, col C' of the node's leftmost token that sqlglot located ('' if none)."""
    starts = [n.meta["start"] for n in node.walk() if "start" in (getattr(n, "meta", None) or {})]
    if not starts:
        return ""
    start = min(starts)
    line_start = query.rfind("\n", 0, start) + 1
    return f"line {query.count(chr(10), 0, start) + 1}, col {start - line_start + 1}"


def _unsupported(query: str, node: exp.Expr, what: str) -> SqlNotSupportedError:
    where = _position(query, node)
    text = _snippet(node.sql(dialect=DIALECT), 60)
    return SqlNotSupportedError(f"not supported in spark.sql: {what}" + (f" at {where}" if where else "")
                                + f" ({text!r})")


# ----------------------------------------------------------------------------- scopes
@dataclass
class _Scope:
    """What names mean while translating one SELECT's expressions."""
    replace: list[tuple[exp.Expr, str]] = field(default_factory=list)  # subtree -> column name
    aliases: dict[str, exp.Expr] = field(default_factory=dict)  # select alias -> expression
    subquery_joins: list[tuple[str, Any]] = field(default_factory=list)  # scalar subqueries to cross-join
    ctes: dict[str, Any] | None = None  # set where scalar subqueries may appear (WHERE, HAVING)
    lambda_variables: dict[str, Any] = field(default_factory=dict)  # a lambda's parameter -> its Column


def _name(identifier: exp.Expr | str | None) -> str:
    if identifier is None:
        return ""
    return identifier if isinstance(identifier, str) else identifier.name


def _quote(name: str) -> str:
    """A column name for F.col: backticks only where the name would otherwise split."""
    return f"`{name.replace('`', '``')}`" if "." in name or "`" in name else name


def _same(a: exp.Expr, b: exp.Expr) -> bool:
    """Whether two expressions mean the same (column refs match by name when one is unqualified)."""
    if isinstance(a, exp.Paren):
        return _same(a.this, b)
    if isinstance(b, exp.Paren):
        return _same(a, b.this)
    if isinstance(a, exp.Column) and isinstance(b, exp.Column):
        if a.name.lower() != b.name.lower():
            return False
        return not a.table or not b.table or a.table.lower() == b.table.lower()
    return a == b


class ExpressionTranslator:
    """Expression translation, mixed into the query translator (which sets the attributes
    below and provides the query methods named under TYPE_CHECKING)."""

    text: str  # the query, for error messages
    F: Any  # sparkctl.sql.functions, or it with the session's registered UDFs
    Window: Any  # sparkctl.sql.window.Window
    args: dict | list  # spark.sql's named or positional parameters
    _positional: int  # the positional parameters used so far

    if TYPE_CHECKING:
        @staticmethod
        def ordered(column: Any, ordered: exp.Ordered) -> Any: ...

        def subquery_frame(self, query: exp.Expr, ctes: dict[str, Any], what: str) -> Any: ...

    def fail(self, node: exp.Expr, what: str) -> SqlNotSupportedError:
        return _unsupported(self.text, node, what)

    def col(self, name: str) -> Any:
        return self.F.col(_quote(name))

    # ------------------------------------------------------------------ expressions
    def column(self, node: exp.Expr, scope: _Scope) -> Any:
        """The Column of one expression; subtrees the scope names (group keys, aggregates) become
        references to the aggregated DataFrame's columns."""
        for replaced, name in scope.replace:
            if _same(node, replaced):
                return self.col(name)
        method = getattr(self, f"x_{type(node).__name__.lower()}", None)
        if method is not None:
            return method(node, scope)
        if isinstance(node, exp.Binary) and type(node) in _BINARY:
            return _BINARY[type(node)](self.column(node.this, scope), self.column(node.expression, scope))
        if isinstance(node, exp.Func):
            return self.function(node, scope)
        raise self.fail(node, _CONSTRUCTS.get(type(node), type(node).__name__))

    def x_paren(self, node: exp.Paren, scope: _Scope) -> Any:
        return self.column(node.this, scope)

    def x_alias(self, node: exp.Alias, scope: _Scope) -> Any:
        return self.column(node.this, scope).alias(node.alias)

    def x_lambda(self, node: exp.Lambda, scope: _Scope) -> Any:
        """``(l, r) -> body``: a Python function of Columns, as PySpark's higher-order functions take."""
        names = [_name(p).lower() for p in node.expressions]

        def function(*columns: Any) -> Any:
            inner = dataclasses.replace(scope, lambda_variables={**scope.lambda_variables, **dict(zip(names, columns))})
            return self.column(node.this, inner)
        function.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])
        function.lambda_names = [_name(p) for p in node.expressions]  # type: ignore[attr-defined]
        return function

    def x_struct(self, node: exp.Struct, scope: _Scope) -> Any:
        """``struct(a, b)`` and ``named_struct('x', a, 'y', b)``, which sqlglot both reads as a
        struct of ``name := value`` pairs: a pair whose name is its column's is struct()'s."""
        pairs = [(_name(e.this), e.expression) if isinstance(e, exp.PropertyEQ) else (None, e)
                 for e in node.expressions]
        if self.function_name(node) == "struct":
            return self.F.struct(*[self.struct_field(i, name, value, scope) for i, (name, value) in enumerate(pairs)])
        if all(name is None or (isinstance(value, exp.Column) and value.name == name) for name, value in pairs):
            return self.F.struct(*[self.column(value, scope) for _, value in pairs])
        columns = [(name, self.column(value, scope)) for name, value in pairs]
        shown = ", ".join(f"{name}, {column._expr.sql()}" for name, column in columns)
        return self.F.struct(*[column.alias(name) for name, column in columns]).alias(f"named_struct({shown})")

    def struct_field(self, i: int, name: str | None, value: exp.Expr, scope: _Scope) -> Any:
        """One argument of struct(): sqlglot names each field itself (a column by its name, a
        lambda's parameter, an Identifier, too; an expression colN), so only a name other than
        that one was given with AS and becomes an alias."""
        column = self.column(value, scope)
        if isinstance(value, (exp.Column, exp.Identifier)):
            implied = value.name
        else:
            implied = f"col{i + 1}"
        return column if name is None or name == implied else column.alias(name)

    def x_varmap(self, node: exp.VarMap, scope: _Scope) -> Any:
        """``map(k1, v1, k2, v2, ...)``, which sqlglot splits into its keys and its values."""
        keys, values = node.args["keys"].expressions, node.args["values"].expressions
        return self.F.create_map(*[self.column(e, scope) for pair in zip(keys, values) for e in pair])

    def x_identifier(self, node: exp.Identifier, scope: _Scope) -> Any:
        variable = scope.lambda_variables.get(node.name.lower())
        return variable if variable is not None else self.F.col(_quote(node.name))

    def x_column(self, node: exp.Column, scope: _Scope) -> Any:
        if not node.table and node.name.lower() in scope.lambda_variables:
            return scope.lambda_variables[node.name.lower()]
        if isinstance(node.this, exp.Star):
            return self.F.col(f"{_quote(node.table)}.*")
        parts = [p.name for p in node.parts]
        if scope.replace and not node.table and node.name.lower() in scope.aliases:
            # an alias of the select list named in HAVING/ORDER BY after a GROUP BY
            return self.column(scope.aliases[node.name.lower()], scope)
        return self.F.col(".".join(_quote(p) for p in parts))

    def x_star(self, node: exp.Star, scope: _Scope) -> Any:
        return self.F.col("*")

    def x_dot(self, node: exp.Dot, scope: _Scope) -> Any:
        return self.column(node.this, scope).getField(node.name)

    def x_bracket(self, node: exp.Bracket, scope: _Scope) -> Any:
        if len(node.expressions) != 1:
            raise self.fail(node, "a subscript with several indexes")
        index = node.expressions[0]
        key = self.literal_value(index) if isinstance(index, exp.Literal) else self.column(index, scope)
        return self.column(node.this, scope)[key]

    def x_literal(self, node: exp.Literal, scope: _Scope) -> Any:
        return self.F.lit(self.literal_value(node))

    @staticmethod
    def literal_value(node: exp.Literal) -> Any:
        """A Python value whose F.lit has Spark SQL's literal type (1.5 is a decimal, 1e3 a double)."""
        text = node.this
        if node.is_string:
            return text
        if any(c in text for c in "eE"):
            return float(text)
        if "." in text:
            return decimal.Decimal(text)
        return int(text)

    def x_boolean(self, node: exp.Boolean, scope: _Scope) -> Any:
        return self.F.lit(bool(node.this))

    def x_null(self, node: exp.Null, scope: _Scope) -> Any:
        return self.F.lit(None)

    def x_placeholder(self, node: exp.Placeholder, scope: _Scope) -> Any:
        """:name takes args[name]; ? takes the next of a list of args (as spark.sql's args)."""
        raw = node.this
        name = raw.name if isinstance(raw, exp.Expr) else (raw or "")
        if not name:
            if not isinstance(self.args, (list, tuple)) or self._positional >= len(self.args):
                raise self.fail(node, "a ? parameter without a value in a list of args")
            value = self.args[self._positional]
            self._positional += 1
        elif isinstance(self.args, dict) and name in self.args:
            value = self.args[name]
        else:
            raise self.fail(node, f"parameter :{name} without a value in args")
        return value if _is_column(value) else self.F.lit(value)

    def x_parameter(self, node: exp.Parameter, scope: _Scope) -> Any:
        return self.x_placeholder(exp.Placeholder(this=node.name), scope)

    def x_neg(self, node: exp.Neg, scope: _Scope) -> Any:
        if isinstance(node.this, exp.Literal) and not node.this.is_string:
            return self.F.lit(-self.literal_value(node.this))
        if isinstance(node.this, exp.Cast):  # -2L: the negative literal, as Spark's parser folds it
            negated = self.typed_number(node.this, node.this.args["to"].sql(dialect=DIALECT), sign=-1)
            if negated is not None:
                return negated
        return -self.column(node.this, scope)

    def x_not(self, node: exp.Not, scope: _Scope) -> Any:
        inner = node.this
        if isinstance(inner, exp.Is) and isinstance(inner.expression, exp.Null):
            return self.column(inner.this, scope).isNotNull()
        return ~self.column(inner, scope)

    def x_is(self, node: exp.Is, scope: _Scope) -> Any:
        if isinstance(node.expression, exp.Null):
            return self.column(node.this, scope).isNull()
        raise self.fail(node, "IS other than IS [NOT] NULL")

    def x_nullsafeeq(self, node: exp.NullSafeEQ, scope: _Scope) -> Any:
        return self.column(node.this, scope).eqNullSafe(self.column(node.expression, scope))

    def x_between(self, node: exp.Between, scope: _Scope) -> Any:
        return self.column(node.this, scope).between(self.column(node.args["low"], scope),
                                                     self.column(node.args["high"], scope))

    def x_in(self, node: exp.In, scope: _Scope) -> Any:
        if node.args.get("query") is not None:
            raise self.fail(node, "an IN subquery outside a WHERE conjunct")
        if node.args.get("unnest") or node.args.get("field"):
            raise self.fail(node, "IN UNNEST")
        values = [self.literal_value(v) if isinstance(v, exp.Literal) else self.column(v, scope)
                  for v in node.expressions]
        return self.column(node.this, scope).isin(*values)

    def pattern(self, node: exp.Expr, what: str) -> str:
        if not isinstance(node, exp.Literal) or not node.is_string:
            raise self.fail(node, f"{what} with a pattern that is not a string literal")
        return node.this

    def x_like(self, node: exp.Like, scope: _Scope) -> Any:
        like = self.column(node.this, scope).like(self.pattern(node.expression, "LIKE"))
        return ~like if node.args.get("negate") else like

    def x_ilike(self, node: exp.ILike, scope: _Scope) -> Any:
        like = self.column(node.this, scope).ilike(self.pattern(node.expression, "ILIKE"))
        return ~like if node.args.get("negate") else like

    def x_regexplike(self, node: exp.RegexpLike, scope: _Scope) -> Any:
        return self.column(node.this, scope).rlike(self.pattern(node.expression, "RLIKE"))

    def x_escape(self, node: exp.Escape, scope: _Scope) -> Any:
        raise self.fail(node, "LIKE ... ESCAPE")

    def x_dpipe(self, node: exp.DPipe, scope: _Scope) -> Any:
        return self.F.concat(self.column(node.this, scope), self.column(node.expression, scope))

    def x_case(self, node: exp.Case, scope: _Scope) -> Any:
        subject = node.this
        result = None
        for branch in node.args.get("ifs") or []:
            condition = branch.this if subject is None else exp.EQ(this=subject, expression=branch.this)
            value = self.column(branch.args["true"], scope)
            cond = self.column(condition, scope)
            result = self.F.when(cond, value) if result is None else result.when(cond, value)
        default = node.args.get("default")
        if result is None:
            raise self.fail(node, "CASE without WHEN")
        return result.otherwise(self.column(default, scope)) if default is not None else result

    def x_if(self, node: exp.If, scope: _Scope) -> Any:
        result = self.F.when(self.column(node.this, scope), self.column(node.args["true"], scope))
        false = node.args.get("false")
        return result.otherwise(self.column(false, scope)) if false is not None else result

    def x_cast(self, node: exp.Cast, scope: _Scope) -> Any:
        to = node.args["to"]
        target = to.sql(dialect=DIALECT)
        inner = node.this
        if type(node) is exp.Cast and isinstance(inner, exp.Literal) and inner.is_string:
            # DATE '2020-01-01' / TIMESTAMP '2020-01-01 10:00:00' typed literals (session time zone: UTC)
            kind = to.this
            try:
                if kind == exp.DataType.Type.DATE:
                    return self.F.lit(_dt.date.fromisoformat(inner.this.strip()))
                if kind in (exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPTZ,
                            exp.DataType.Type.TIMESTAMPLTZ):
                    value = _dt.datetime.fromisoformat(inner.this.strip())
                    if value.tzinfo is None:
                        value = value.replace(tzinfo=_dt.timezone.utc)
                    return self.F.lit(value)
            except ValueError:
                pass  # a form Python does not read: Spark's own cast reads it (or says why not)
        typed = self.typed_number(node, target)
        if typed is not None:
            return typed
        column = self.column(inner, scope)
        if node.args.get("safe"):
            return column.try_cast(target)
        return column.cast(target)

    def is_typed_number(self, node: exp.Expr) -> bool:
        """Whether *node* is a number with a type suffix (whatever its sign: -128Y is one)."""
        if not isinstance(node, exp.Cast):
            return False
        target = node.args["to"].sql(dialect=DIALECT)
        return self.typed_number(node, target) is not None or self.typed_number(node, target, sign=-1) is not None

    def typed_number(self, node: exp.Cast, target: str, sign: int = 1) -> Any:
        """A number with a type suffix (``0L``, ``2Y``, ``3S``, ``1.5D``, ``1.5F``, ``1.5BD``), which
        sqlglot reads as a cast, as the literal of that type it is: Spark names it by its value
        (``0``, ``1.5``), not ``CAST(0 AS BIGINT)``. None for any other cast."""
        from sparkctl.sql.column import Column, parse_type
        from sparkctl.sql.expressions import Literal
        inner = node.this
        if not isinstance(inner, exp.Literal):
            return None
        meta = inner.meta or {}
        if "start" in meta and "end" in meta:
            found = _TYPED_NUMBER.fullmatch(self.text[meta["start"]:meta["end"] + 1])
            if found is None:
                return None
            number, suffix = found.group(1), found.group(2).upper()
        elif inner.is_string and to_is_decimal(node) and _TYPED_NUMBER.fullmatch(inner.this + "BD"):
            number, suffix = inner.this, "BD"  # sqlglot locates no 1.5BD: the only unlocated string cast
        else:
            return None
        dtype = parse_type(target)
        if suffix in ("L", "S", "Y"):
            value: Any = sign * int(number)
            bits = dtype.bit_width
            if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
                return None  # out of range: the cast says so as Spark's parser does
        elif suffix == "BD":
            value = decimal.Decimal(number) * sign
        else:
            value = sign * float(number)
        return Column(Literal(value, dtype))

    x_trycast = x_cast

    def x_add(self, node: exp.Add, scope: _Scope) -> Any:
        return self.date_arithmetic(node, 1, scope)

    def x_sub(self, node: exp.Sub, scope: _Scope) -> Any:
        return self.date_arithmetic(node, -1, scope)

    def date_arithmetic(self, node: exp.Binary, sign: int, scope: _Scope) -> Any:
        """a + b, a - b; with an INTERVAL n DAY/MONTH/YEAR side: date arithmetic (folded on literals)."""
        left, right = node.this, node.expression
        if isinstance(left, exp.Interval) and sign == 1:
            left, right = right, left
        if not isinstance(right, exp.Interval):
            if isinstance(left, exp.Interval):
                raise self.fail(node, "INTERVAL minus a value")
            a, b = self.column(left, scope), self.column(right, scope)
            return a + b if sign == 1 else a - b
        amount, unit = self.interval(right)
        date = self.date_literal(left)
        if date is not None:  # DATE '1994-01-01' + INTERVAL '1' YEAR: a literal, as Spark folds it
            if unit == "day":
                return self.F.lit(date + _dt.timedelta(days=sign * amount))
            return self.F.lit(_add_months(date, sign * amount * (12 if unit == "year" else 1)))
        column = self.column(left, scope)
        if unit == "day":
            return self.F.date_add(column, sign * amount)
        return self.F.add_months(column, sign * amount * (12 if unit == "year" else 1))

    def interval(self, node: exp.Interval) -> tuple[int, str]:
        unit = (node.unit.name if node.unit is not None else "").lower().rstrip("s")
        value = node.this
        if unit not in ("day", "month", "year") or not isinstance(value, exp.Literal):
            raise self.fail(node, "INTERVAL other than a whole number of DAY, MONTH or YEAR added to a date")
        try:
            return int(value.this), unit
        except ValueError:
            raise self.fail(node, "INTERVAL other than a whole number of DAY, MONTH or YEAR") from None

    @staticmethod
    def date_literal(node: exp.Expr) -> _dt.date | None:
        if type(node) is exp.Cast and isinstance(node.this, exp.Literal) and node.this.is_string \
                and node.args["to"].this == exp.DataType.Type.DATE:
            return _dt.date.fromisoformat(node.this.this.strip())
        return None

    def x_interval(self, node: exp.Interval, scope: _Scope) -> Any:
        raise self.fail(node, "an INTERVAL value outside date + / - INTERVAL")

    def x_subquery(self, node: exp.Subquery, scope: _Scope) -> Any:
        ctes = scope.ctes
        if ctes is None:
            raise self.fail(node, "a scalar subquery outside WHERE or HAVING")
        sub = self.subquery_frame(node, ctes, "scalar subquery")
        scope.subquery_joins.append((sub.columns[0], sub))
        return self.col(sub.columns[0])

    def x_exists(self, node: exp.Exists, scope: _Scope) -> Any:
        if is_array_exists(node):  # exists(array, x -> predicate), the higher-order function
            return self.F.exists(self.column(node.this, scope), self.column(node.expression, scope))
        raise self.fail(node, "EXISTS outside a WHERE conjunct")

    def x_window(self, node: exp.Window, scope: _Scope) -> Any:
        if node.args.get("alias"):
            raise self.fail(node, "a named window")
        spec = self.Window.partitionBy(*[self.column(p, scope) for p in node.args.get("partition_by") or []])
        order = node.args.get("order")
        if order is not None:
            spec = spec.orderBy(*[self.ordered(self.column(o.this, scope), o) for o in order.expressions])
        frame = node.args.get("spec")
        if frame is not None:
            start = self.frame_bound(frame, frame.args.get("start"), frame.args.get("start_side"))
            end = self.frame_bound(frame, frame.args.get("end"), frame.args.get("end_side"))
            kind = (frame.args.get("kind") or "").upper()
            spec = spec.rowsBetween(start, end) if kind == "ROWS" else spec.rangeBetween(start, end)
        function = node.this
        if isinstance(function, (exp.IgnoreNulls, exp.RespectNulls)):
            raise self.fail(node, "IGNORE/RESPECT NULLS")
        return self.function(function, scope).over(spec) if isinstance(function, exp.Func) \
            else self.column(function, scope).over(spec)

    def frame_bound(self, frame: exp.Expr, value: Any, side: Any) -> int:
        text = (value.name if isinstance(value, exp.Expr) else str(value or "")).upper()
        side = str(side or "").upper()
        if text == "UNBOUNDED":
            return self.Window.unboundedPreceding if side == "PRECEDING" else self.Window.unboundedFollowing
        if text == "CURRENT ROW":
            return self.Window.currentRow
        try:
            n = int(text)
        except ValueError:
            raise self.fail(frame, f"window frame bound {text}") from None
        return -n if side == "PRECEDING" else n

    # ------------------------------------------------------------------ functions
    def function_name(self, node: exp.Func) -> str:
        """The function's name as the query spells it (nvl stays nvl), for Spark's column names."""
        if isinstance(node, exp.Anonymous):
            return str(node.this).lower()
        meta = getattr(node, "meta", None) or {}
        if "start" in meta and "end" in meta:
            spelled = self.text[meta["start"]:meta["end"] + 1]
            if spelled.replace("_", "").isalnum():
                return spelled.lower()
        return self.name_before_arguments(node) or node.sql_name().lower()

    def name_before_arguments(self, node: exp.Func) -> str | None:
        """For calls sqlglot did not locate (substr): the word before the '(' of the first argument."""
        starts = [n.meta["start"] for n in node.walk() if n is not node and "start" in (n.meta or {})]
        if not starts:
            return None
        i = min(starts) - 1
        while i >= 0 and self.text[i].isspace():
            i -= 1
        if i < 0 or self.text[i] != "(":
            return None
        i -= 1
        while i >= 0 and self.text[i].isspace():
            i -= 1
        end = i + 1
        while i >= 0 and (self.text[i].isalnum() or self.text[i] == "_"):
            i -= 1
        word = self.text[i + 1:end]
        return word.lower() if word and not word[0].isdigit() else None

    def function(self, node: exp.Func, scope: _Scope) -> Any:
        if isinstance(node, _IMPLIED_CONVERSIONS) and not node.meta and not node.args.get("format"):
            return self.column(node.this, scope)  # sqlglot's own wrapper (year(d) -> YEAR(TO_DATE(d)))
        name = self.function_name(node)
        F = self.F
        if isinstance(node, exp.Count):
            target = node.this
            if isinstance(target, exp.Star) or target is None:
                return F.count(F.lit(1))
            if isinstance(target, exp.Distinct):
                return F.count_distinct(*[self.column(e, scope) for e in target.expressions])
            extra = node.expressions
            if extra:
                raise self.fail(node, "count of several expressions without DISTINCT")
            return F.count(self.column(target, scope))
        if isinstance(node.args.get("this"), exp.Distinct):
            values = node.this.expressions
            if name == "sum" and len(values) == 1:
                return F.sum_distinct(self.column(values[0], scope))
            if name in ("avg", "mean", "min", "max", "collect_list", "collect_set") and len(values) == 1:
                distinct_aggregate = getattr(F, "_distinct_aggregate", None)
                if distinct_aggregate is not None:
                    return distinct_aggregate(name, self.column(values[0], scope))
                return F.expr(node.sql(dialect="spark"))  # PySpark has no function of these
            raise self.fail(node, f"{name}(DISTINCT ...)")
        if isinstance(node, exp.Anonymous):
            args = list(node.expressions)
        else:
            args = _function_arguments(node)
            if isinstance(node.args.get("format"), exp.Literal):
                # sqlglot keeps formats in strftime notation; Spark's functions take Spark's patterns
                spark_format = _SPARK_GENERATOR.format_time(node) or "''"
                args = [exp.Literal.string(spark_format[1:-1]) if a is node.args["format"] else a for a in args]
        # the spelling first (its column name is Spark's), else sqlglot's canonical name (substr -> substring)
        function = None
        for candidate in (name, _FUNCTION_ALIASES.get(name), node.sql_name().lower()):
            if candidate and not candidate.startswith("_") and callable(getattr(F, candidate, None)):
                function = getattr(F, candidate)
                break
        if function is None:
            raise self.fail(node, f"function {_FUNCTION_ALIASES.get(name, name)}()")
        return function(*self.arguments(function, args, scope, node))

    def arguments(self, function: Callable[..., Any], args: list[exp.Expr], scope: _Scope,
                  node: exp.Func) -> list[Any]:
        """Arguments for a functions-module call: Columns where its signature takes a Column, Python
        values where it takes a plain int/str (a string literal is never taken for a column name)."""
        try:
            parameters = list(inspect.signature(function).parameters.values())
        except (TypeError, ValueError):
            parameters = []
        values = []
        for i, arg in enumerate(args):
            if i < len(parameters):
                parameter = parameters[i]
            elif parameters and parameters[-1].kind is inspect.Parameter.VAR_POSITIONAL:
                parameter = parameters[-1]
            else:
                parameter = None
            if _takes_column(parameter):
                values.append(self.column(arg, scope))
            elif isinstance(arg, exp.Literal):
                values.append(self.literal_value(arg))
            elif isinstance(arg, exp.Neg) and isinstance(arg.this, exp.Literal):
                values.append(-self.literal_value(arg.this))
            else:
                what = parameter.name if parameter is not None else i
                raise self.fail(node, f"a non-literal argument {what!r} of {self.function_name(node)}()")
        return values


def _takes_column(parameter: inspect.Parameter | None) -> bool:
    """Whether a functions-module parameter takes a Column: unless its hint names only plain values
    (format: str, scale: int), as PySpark's hints do."""
    if parameter is None or parameter.annotation is inspect.Parameter.empty:
        return True
    hint = str(parameter.annotation)
    return "Column" in hint or not any(t in hint for t in ("int", "str", "float", "bool", "Sequence", "Tuple"))


def _function_arguments(node: exp.Func) -> list[exp.Expr]:
    """A typed sqlglot function's arguments in declaration order (flags such as big_int left out)."""
    out: list[exp.Expr] = []
    for key in node.arg_types:
        value = node.args.get(key)
        if (isinstance(node, exp.TsOrDsAdd) and key == "unit") or (isinstance(node, exp.ArraySort) and
                                                                    key == "nulls_first"):
            continue
        if isinstance(value, list):
            out.extend(v for v in value if isinstance(v, exp.Expr))
        elif isinstance(value, exp.Expr) and not isinstance(value, exp.DataType):
            out.append(value)
    return out


def is_array_exists(node: exp.Exists) -> bool:
    """Whether sqlglot's Exists is ``exists(array, lambda)`` rather than EXISTS (subquery)."""
    return node.args.get("expression") is not None


def _is_column(value: Any) -> bool:
    return type(value).__name__ == "Column"


def _add_months(date: _dt.date, months: int) -> _dt.date:
    """Spark's add_months: the same day of the month, clamped to the month's last day."""
    month_index = date.year * 12 + date.month - 1 + months
    year, month = divmod(month_index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return _dt.date(year, month + 1, min(date.day, last))


_SPARK_GENERATOR = sqlglot.Dialect.get_or_raise(DIALECT).generator()
# conversions sqlglot wraps arguments in (no position of their own): the argument as it is
_IMPLIED_CONVERSIONS = (exp.TsOrDsToDate, exp.TimeStrToTime, exp.TsOrDsToTimestamp)

# sqlglot's names for functions whose PySpark name differs
_FUNCTION_ALIASES = {
    "approx_quantile": "percentile_approx",
    "array_agg": "collect_list",
    "approx_distinct": "approx_count_distinct",
    "ts_or_ds_add": "date_add",
}

# how an error names a syntax node this module does not translate, where the class name would not say
_CONSTRUCTS: dict[type, str] = {
    exp.IntDiv: "the DIV operator", exp.BitwiseLeftShift: "<<", exp.BitwiseRightShift: ">>",
}

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    exp.Mul: lambda a, b: a * b,
    exp.Div: lambda a, b: a / b,
    exp.Mod: lambda a, b: a % b,
    exp.EQ: lambda a, b: a == b,
    exp.NEQ: lambda a, b: a != b,
    exp.GT: lambda a, b: a > b,
    exp.GTE: lambda a, b: a >= b,
    exp.LT: lambda a, b: a < b,
    exp.LTE: lambda a, b: a <= b,
    exp.And: lambda a, b: a & b,
    exp.Or: lambda a, b: a | b,
    exp.BitwiseAnd: lambda a, b: a.bitwiseAND(b),
    exp.BitwiseOr: lambda a, b: a.bitwiseOR(b),
    exp.BitwiseXor: lambda a, b: a.bitwiseXOR(b),
}
