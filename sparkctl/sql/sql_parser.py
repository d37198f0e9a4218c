"""``spark.sql(query)``: SQL text to a DataFrame, through sqlglot's Spark dialect.

The query is parsed by sqlglot (a maintained SQL parser) and its syntax tree is translated
into calls of PySpark's *public* DataFrame API only (``select``, ``filter``, ``groupBy().agg``,
``join``, ``orderBy``, ``functions``, ``Column`` operators, ``Window``)::

    SQL text ──sqlglot.parse_one(read="spark")──▶ syntax tree ──_Translator──▶ DataFrame calls
                                                                     │
                                           tables(name) ◀────────────┘ (temporary views, CTEs)

So the translation runs unchanged against sparkctl's own DataFrame and against real
PySpark, which is how the tests prove it: the same query through ``spark.sql`` and through
this module must give the same columns, schema and rows.

Output column names are Spark's because the Column expressions are the ones Spark builds:
``count(*)`` becomes ``F.count(F.lit(1))`` (named ``count(1)``), a function is called by the
name the query spells it with. After a GROUP BY the select list is rebuilt over the
aggregated DataFrame's columns, which carry the aggregates' own names, so ``sum(x) * 2``
is still named ``(sum(x) * 2)``.

Where PySpark's Column API has no way to build Spark SQL's exact expression, the data is the
same and only an unaliased column's name differs: a window frame ``1 PRECEDING`` (``-1 FOLLOWING``
from ``rowsBetween``), ``date + INTERVAL ...`` (``date_add``/``add_months``), and functions the
functions module only has under another name (``len`` -> ``length``, ``mean`` -> ``avg``).
An uncorrelated scalar subquery is cross-joined as a one-row DataFrame: if it returns no row,
the filter keeps no row (Spark compares with NULL, which also keeps none, except under IS NULL).

Anything outside the supported subset raises :class:`SqlNotSupportedError` (a
``NotImplementedError``) naming the construct and where it is in the query; text sqlglot
cannot parse raises :class:`SqlParseError` (a ``ValueError``).
"""
from __future__ import annotations

from typing import Any, Callable

import sqlglot
from sqlglot import exp

from sparkctl.sql.sql_expressions import (DIALECT, _PRIVATE, ExpressionTranslator, SqlNotSupportedError,
                                         SqlParseError, _name, _quote, _same, _Scope, _snippet, _unsupported,
                                         is_array_exists)

__all__ = ["SqlParseError", "SqlNotSupportedError", "sql_to_dataframe", "expression_to_column"]


# ----------------------------------------------------------------------------- entry points
def sql_to_dataframe(query: str, tables: Callable[[str], Any], F: Any, Window: Any, *,
                     args: dict | list | None = None, one_row: Callable[[], Any] | None = None) -> Any:
    """The DataFrame for a SELECT query. `tables(name)` returns the DataFrame of a temporary view
    (raising the caller's error for an unknown one); F is a `functions` module; Window the Window
    class; `args` binds parameters (a dict for ``:name``, a list for ``?``); `one_row()` gives a one-row DataFrame for
    queries without FROM."""
    tree = _parse(query)
    if not isinstance(tree, exp.Query):
        raise _unsupported(query, tree, f"{type(tree).__name__.upper()} statement (only queries are supported)")
    return _Translator(query, tables, F, Window, args or {}, one_row).query(tree, {})


def expression_to_column(text: str, F: Any, Window: Any = None) -> Any:
    """A SQL expression (for F.expr, df.selectExpr, df.filter("a > 1"), agg strings) as a Column."""
    tree = _parse(text)
    if isinstance(tree, exp.Query):
        raise _unsupported(text, tree, "a query where an expression was expected")
    return _Translator(text, _no_tables, F, Window, {}, None).column(tree, _Scope())


def _no_tables(name: str) -> Any:
    raise SqlNotSupportedError(f"table {name!r} in an expression")


def _parse(text: str) -> exp.Expr:
    try:
        trees = sqlglot.parse(text, read=DIALECT)
    except sqlglot.errors.ParseError as e:
        first = e.errors[0] if e.errors else {}
        where = f" at line {first.get('line')}, col {first.get('col')}" if first else ""
        message = str(first.get("description") or e).splitlines()[0]
        raise SqlParseError(f"cannot parse SQL{where}: {message} in: {_snippet(text)}") from None
    except sqlglot.errors.SqlglotError as e:  # tokenizer errors
        raise SqlParseError(f"cannot parse SQL: {str(e).splitlines()[0]} in: {_snippet(text)}") from None
    statements = [t for t in trees if t is not None]
    if len(statements) != 1:
        raise SqlParseError(f"expected one SQL statement, got {len(statements)} in: {_snippet(text)}")
    return statements[0]


def _conjuncts(node: exp.Expr | None) -> list[exp.Expr]:
    if node is None:
        return []
    if isinstance(node, exp.Paren):
        return _conjuncts(node.this) if isinstance(node.this, exp.And) else [node]
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    return [node]


def _aggregates(node: exp.Expr) -> list[exp.Expr]:
    """The aggregate calls of an expression (a window function's own call is not one)."""
    found: list[exp.Expr] = []

    def visit(n: exp.Expr, in_window_call: bool) -> None:
        if isinstance(n, (exp.Query, exp.Subquery)):
            return
        if isinstance(n, exp.Window):
            visit(n.this, True)
            for part in n.iter_expressions():
                if part is not n.this:
                    visit(part, False)
            return
        if _is_aggregate(n) and not in_window_call:
            found.append(n)
            return
        for child in n.iter_expressions():
            visit(child, False)

    visit(node, False)
    return found


_AGGREGATE_NAMES = frozenset({
    "mean", "collect_set", "collect_list", "bool_and", "bool_or", "every", "some", "any", "any_value",
    "count_if", "kurtosis", "skewness", "var_pop", "var_samp", "variance", "stddev_pop", "stddev_samp",
    "std", "stddev", "corr", "covar_pop", "covar_samp", "max_by", "min_by", "median", "mode", "percentile",
    "product", "first", "last", "approx_count_distinct", "percentile_approx", "bit_and", "bit_or", "bit_xor",
    "regr_count", "regr_avgx", "regr_avgy", "regr_slope", "regr_intercept", "regr_r2", "count_min_sketch",
})


def _is_aggregate(n: exp.Expr) -> bool:
    if isinstance(n, exp.AggFunc):
        return True
    return isinstance(n, exp.Anonymous) and str(n.this).lower() in _AGGREGATE_NAMES


# ----------------------------------------------------------------------------- the translator
class _Translator(ExpressionTranslator):
    """Turns one parsed query into DataFrame calls (see the module docstring)."""

    def __init__(self, text: str, tables: Callable[[str], Any], F: Any, Window: Any, args: dict | list,
                 one_row: Callable[[], Any] | None) -> None:
        self.text = text
        self.tables = tables
        self.F = F
        self.Window = Window
        self.args = args
        self.one_row = one_row
        self._counter = 0
        self._positional = 0

    # ------------------------------------------------------------------ helpers
    def private(self, kind: str) -> str:
        self._counter += 1
        return f"{_PRIVATE}{kind}{self._counter}"

    # ------------------------------------------------------------------ queries
    def query(self, node: exp.Expr, ctes: dict[str, Any]) -> Any:
        """A DataFrame for a SELECT, a set operation or a parenthesised query (with its CTEs)."""
        with_ = node.args.get("with_")
        if with_ is not None:
            if with_.args.get("recursive"):
                raise self.fail(with_, "WITH RECURSIVE")
            ctes = dict(ctes)
            for cte in with_.expressions:
                df = self.query(cte.this, ctes)
                columns = cte.args["alias"].columns if cte.args.get("alias") else []
                if columns:
                    df = df.toDF(*[_name(c) for c in columns])
                ctes[cte.alias_or_name.lower()] = df
        if isinstance(node, exp.Select):
            return self.select(node, ctes)
        if isinstance(node, exp.Subquery):
            return self.finish(self.query(node.this, ctes), node, ctes)
        if isinstance(node, exp.SetOperation):
            return self.finish(self.set_operation(node, ctes), node, ctes)
        raise self.fail(node, type(node).__name__.upper())

    def set_operation(self, node: exp.SetOperation, ctes: dict[str, Any]) -> Any:
        left = self.query(node.this, ctes)
        right = self.query(node.expression, ctes)
        distinct = node.args.get("distinct", True)
        if node.args.get("by_name"):
            return left.unionByName(right).distinct() if distinct else left.unionByName(right)
        if isinstance(node, exp.Union):
            return left.union(right).distinct() if distinct else left.union(right)
        if isinstance(node, exp.Intersect):
            return left.intersect(right) if distinct else left.intersectAll(right)
        if isinstance(node, exp.Except):
            return left.subtract(right) if distinct else left.exceptAll(right)
        raise self.fail(node, type(node).__name__.upper())

    def finish(self, df: Any, node: exp.Expr, ctes: dict[str, Any]) -> Any:
        """ORDER BY and LIMIT on a set operation or parenthesised query: over its output names."""
        order = node.args.get("order")
        if order is not None:
            names = df.columns
            keys = []
            for ordered in order.expressions:
                target = ordered.this
                if isinstance(target, exp.Literal) and not target.is_string:
                    keys.append(self.ordered(self.col(names[int(target.this) - 1]), ordered))
                else:
                    keys.append(self.ordered(self.column(target, _Scope()), ordered))
            df = df.orderBy(*keys)
        return self.limit(df, node)

    def limit(self, df: Any, node: exp.Expr) -> Any:
        if node.args.get("offset") is not None:
            raise self.fail(node.args["offset"], "OFFSET")
        limit = node.args.get("limit")
        if limit is None:
            return df
        value = limit.expression if limit.expression is not None else limit.this
        if not isinstance(value, exp.Literal) or value.is_string:
            raise self.fail(limit, "a LIMIT that is not an integer literal")
        return df.limit(int(value.this))

    # ------------------------------------------------------------------ SELECT
    def select(self, node: exp.Select, ctes: dict[str, Any]) -> Any:
        for key, what in (("laterals", "LATERAL VIEW"), ("qualify", "QUALIFY"), ("windows", "WINDOW clause"),
                          ("distribute", "DISTRIBUTE BY"), ("sort", "SORT BY"), ("cluster", "CLUSTER BY"),
                          ("into", "SELECT INTO"), ("prewhere", "PREWHERE"), ("connect", "CONNECT BY")):
            value = node.args.get(key)
            if value:
                target = value[0] if isinstance(value, list) else value
                raise self.fail(target if isinstance(target, exp.Expr) else node, what)
        distinct = node.args.get("distinct")
        if distinct is not None and distinct.args.get("on"):
            raise self.fail(distinct, "DISTINCT ON")
        conditions = _conjuncts(node.args["where"].this) if node.args.get("where") else []
        df, conditions = self.from_clause(node, ctes, conditions)
        df = self.where(df, conditions, ctes)

        items = list(node.expressions)
        scope = _Scope(aliases={item.alias.lower(): item.this for item in items if isinstance(item, exp.Alias)})
        having = node.args["having"].this if node.args.get("having") else None
        order = list(node.args["order"].expressions) if node.args.get("order") else []
        group = node.args.get("group")
        aggregates: list[exp.Expr] = []
        for part in items + ([having] if having is not None else []) + [o.this for o in order]:
            for agg in _aggregates(part):
                if not any(_same(agg, seen) for seen in aggregates):
                    aggregates.append(agg)
        if group is not None or aggregates:
            df = self.aggregate(df, node, items, group, aggregates, scope, ctes)
            if having is not None:
                df = self.filter_with_subqueries(df, [self.resolve_alias(having, scope)], ctes, scope)
        elif having is not None:
            raise self.fail(having, "HAVING without GROUP BY or aggregates")
        return self.project(df, node, items, order, scope, distinct is not None)

    def resolve_alias(self, node: exp.Expr, scope: _Scope) -> exp.Expr:
        """HAVING may name select aliases: put the aliased expressions in their place."""
        def swap(n: exp.Expr) -> exp.Expr:
            if isinstance(n, exp.Column) and not n.table and n.name.lower() in scope.aliases \
                    and not any(_same(n, r) for r, _ in scope.replace):
                return scope.aliases[n.name.lower()].copy()
            return n
        return node.copy().transform(swap)

    def aggregate(self, df: Any, node: exp.Select, items: list[exp.Expr], group: exp.Group | None,
                  aggregates: list[exp.Expr], scope: _Scope, ctes: dict[str, Any]) -> Any:
        """groupBy(keys).agg(aggregates); afterwards keys and aggregates are columns by their names."""
        keys: list[exp.Expr] = []
        if group is not None:
            for what in ("rollup", "cube", "grouping_sets", "totals"):
                if group.args.get(what):
                    raise self.fail(group, what.upper().replace("_", " "))
            source_columns = {c.lower() for c in df.columns}
            for key in group.expressions:
                if isinstance(key, (exp.Rollup, exp.Cube, exp.GroupingSets)):
                    raise self.fail(key, type(key).__name__.upper())
                if isinstance(key, exp.Literal) and not key.is_string:  # GROUP BY 1
                    key = items[int(key.this) - 1]
                    key = key.this if isinstance(key, exp.Alias) else key
                elif isinstance(key, exp.Column) and not key.table and key.name.lower() not in source_columns \
                        and key.name.lower() in scope.aliases:  # GROUP BY a select alias
                    key = scope.aliases[key.name.lower()]
                if _aggregates(key):
                    raise self.fail(key, "an aggregate in GROUP BY")
                keys.append(key)
        key_columns = [self.column(k, _Scope()) for k in keys]
        agg_columns = [self.column(a, _Scope()) for a in aggregates]
        if agg_columns:
            grouped = df.groupBy(*key_columns).agg(*agg_columns)
        else:
            grouped = df.select(*key_columns).distinct()
        names = grouped.columns
        if len({n.lower() for n in names}) < len(names):  # e.g. sum(t.x) and sum(u.x): both "sum(x)"
            names = [self.private("g") for _ in names]
            grouped = grouped.toDF(*names)
        scope.replace = list(zip(keys + aggregates, names))
        return grouped

    def project(self, df: Any, node: exp.Select, items: list[exp.Expr], order: list[exp.Ordered],
                scope: _Scope, distinct: bool) -> Any:
        """The select list, then DISTINCT, ORDER BY (over outputs or hidden input columns), LIMIT."""
        columns = [self.select_item(df, item, scope) for item in items]
        if scope.subquery_joins:
            raise self.fail(node, "a scalar subquery in the select list")
        if not order:
            out = df.select(*columns)
            return self.limit(out.distinct() if distinct else out, node)
        # each ORDER BY key: an output position, or an expression over the input (a hidden column)
        positions: list[int | None] = []
        hidden: list[Any] = []
        for ordered in order:
            position = self.output_position(ordered.this, items, scope)
            if position is None:
                if distinct:
                    raise self.fail(ordered, "ORDER BY an expression not in a SELECT DISTINCT list")
                hidden.append(self.column(ordered.this, scope))
            positions.append(position)
        out = df.select(*columns, *[h.alias(self.private("o")) for h in hidden])
        if distinct:
            out = out.distinct()
        names = out.columns
        n_out = len(names) - len(hidden)
        if not hidden and len({n.lower() for n in names}) == len(names):
            keys = [self.ordered(self.col(names[p]), o) for p, o in zip(positions, order)]
            return self.limit(out.orderBy(*keys), node)
        private = [self.private("c") for _ in names]
        out = out.toDF(*private)
        keys = []
        next_hidden = n_out
        for position, ordered in zip(positions, order):
            if position is None:
                position, next_hidden = next_hidden, next_hidden + 1
            keys.append(self.ordered(self.col(private[position]), ordered))
        out = out.orderBy(*keys)
        out = out.select(*[self.col(p).alias(n) for p, n in zip(private[:n_out], names[:n_out])])
        return self.limit(out, node)

    def output_position(self, target: exp.Expr, items: list[exp.Expr], scope: _Scope) -> int | None:
        """Which select item an ORDER BY key names (ordinal, alias or same expression), if any."""
        if isinstance(target, exp.Literal) and not target.is_string:
            return int(target.this) - 1
        if any(isinstance(i, exp.Star) or isinstance(getattr(i, "this", None), exp.Star) for i in items):
            return None
        for i, item in enumerate(items):
            if isinstance(item, exp.Alias):
                if isinstance(target, exp.Column) and not target.table and target.name.lower() == item.alias.lower():
                    return i
                if _same(item.this, target):
                    return i
            elif _same(item, target):
                return i
        return None

    def select_item(self, df: Any, item: exp.Expr, scope: _Scope) -> Any:
        if isinstance(item, exp.Star):
            return self.F.col("*")
        if isinstance(item, exp.Column) and isinstance(item.this, exp.Star):
            return self.F.col(f"{_quote(item.table)}.*")
        if isinstance(item, exp.Alias):
            return self.column(item.this, scope).alias(item.alias)
        column = self.column(item, scope)
        # where the Column API's name differs from Spark SQL's, name the item as Spark SQL does
        if isinstance(item, exp.Neg) and not isinstance(item.this, exp.Literal) and not self.is_typed_number(item.this):
            return column.alias(f"(- {self.name_of(df, item.this, scope)})")  # not "negative(a)"
        if isinstance(item, exp.If):  # not "CASE WHEN .. END"
            parts = [item.this, item.args["true"]] + ([item.args["false"]] if item.args.get("false") else [])
            return column.alias(f"(IF({', '.join(self.name_of(df, p, scope) for p in parts)}))")
        return column

    def name_of(self, df: Any, node: exp.Expr, scope: _Scope) -> str:
        """The name Spark gives an expression (asked of the DataFrame: it is the engine's to say)."""
        return df.select(self.column(node, scope)).columns[0]

    @staticmethod
    def ordered(column: Any, ordered: exp.Ordered) -> Any:
        desc = bool(ordered.args.get("desc"))
        nulls_first = ordered.args.get("nulls_first")
        if nulls_first is None:
            nulls_first = not desc  # Spark: ASC NULLS FIRST, DESC NULLS LAST
        if desc:
            return column.desc_nulls_first() if nulls_first else column.desc_nulls_last()
        return column.asc_nulls_first() if nulls_first else column.asc_nulls_last()

    # ------------------------------------------------------------------ FROM and JOIN
    def relation(self, node: exp.Expr, ctes: dict[str, Any]) -> tuple[Any, str]:
        """The DataFrame of one FROM item, aliased so qualified names (t.a) resolve, and its alias."""
        for key, what in (("pivots", "PIVOT"), ("sample", "TABLESAMPLE"), ("version", "time travel (VERSION AS OF)")):
            if node.args.get(key):
                raise self.fail(node, what)
        if isinstance(node, exp.Table):
            if not isinstance(node.this, exp.Identifier):
                raise self.fail(node, "a table-valued function")
            if node.args.get("joins") or node.args.get("laterals"):
                raise self.fail(node, "a nested join")
            name = ".".join(p.name for p in node.parts)
            df = ctes.get(name.lower()) if len(node.parts) == 1 else None
            if df is None:
                df = self.tables(name)
            alias = node.alias or node.name
        elif isinstance(node, exp.Subquery):
            df = self.query(node, ctes)
            alias = node.alias
        else:
            raise self.fail(node, f"{type(node).__name__} in FROM")
        table_alias = node.args.get("alias")
        if table_alias is not None and table_alias.columns:
            df = df.toDF(*[_name(c) for c in table_alias.columns])
        return (df.alias(alias) if alias else df), alias

    def from_clause(self, node: exp.Select, ctes: dict[str, Any],
                    conditions: list[exp.Expr]) -> tuple[Any, list[exp.Expr]]:
        """FROM and its JOINs; WHERE conjuncts that join a comma-listed table become its join condition
        (an inner join is what Spark's optimizer makes of them too), the rest are returned."""
        from_ = node.args.get("from_")
        if from_ is None:
            if node.args.get("joins"):
                raise self.fail(node, "JOIN without FROM")
            if self.one_row is None:
                raise self.fail(node, "SELECT without FROM (no one-row DataFrame given)")
            return self.one_row(), conditions
        df, alias = self.relation(from_.this, ctes)
        seen = {alias.lower(): {c.lower() for c in df.columns}}
        for join in node.args.get("joins") or []:
            right, right_alias = self.relation(join.this, ctes)
            right_columns = {c.lower() for c in right.columns}
            side = (join.side or "").lower()
            kind = (join.kind or "").lower()
            if join.args.get("method") or join.args.get("global_"):
                raise self.fail(join, f"{join.args.get('method') or 'GLOBAL'} JOIN")
            using = join.args.get("using")
            on = join.args.get("on")
            how = self.join_type(join, side, kind)
            if using:
                df = df.join(right, on=[_name(u) for u in using], how=how)
            elif on is not None:
                df = df.join(right, on=self.column(on, _Scope()), how=how)
            elif how == "cross":
                joined = dict(seen)
                joined[right_alias.lower()] = right_columns
                usable = [c for c in conditions if self.joins_on(c, seen, right_alias.lower(), right_columns)]
                if usable:
                    condition = self.column(exp.and_(*usable), _Scope())
                    df = df.join(right, on=condition, how="inner")
                    conditions = [c for c in conditions if not any(c is u for u in usable)]
                else:
                    df = df.crossJoin(right)
            else:
                raise self.fail(join, f"{how} JOIN without ON or USING")
            seen[right_alias.lower()] = right_columns
        return df, conditions

    def join_type(self, join: exp.Join, side: str, kind: str) -> str:
        if kind == "cross":
            return "cross"
        if kind in ("semi", "anti"):
            if side not in ("", "left"):
                raise self.fail(join, f"{side.upper()} {kind.upper()} JOIN")
            return f"left_{kind}"
        if kind not in ("", "inner", "outer"):
            raise self.fail(join, f"{kind.upper()} JOIN")
        if side == "":
            return "inner" if kind != "outer" else "full"
        return {"left": "left", "right": "right", "full": "full"}[side]

    @staticmethod
    def joins_on(condition: exp.Expr, seen: dict[str, set[str]], right: str, right_columns: set[str]) -> bool:
        """Whether a WHERE conjunct can join `right` to the tables before it: it names `right` and
        otherwise only those tables (no subquery, no aggregate)."""
        if condition.find(exp.Subquery, exp.Query, exp.Exists) is not None or _aggregates(condition):
            return False
        names_right = False
        for column in condition.find_all(exp.Column):
            table = column.table.lower()
            name = column.name.lower()
            if table:
                if table == right:
                    names_right = True
                elif table not in seen:
                    return False
            else:
                owners = [t for t, cols in seen.items() if name in cols] + ([right] if name in right_columns else [])
                if len(owners) != 1:
                    return False
                names_right = names_right or owners[0] == right
        return names_right

    # ------------------------------------------------------------------ WHERE and subqueries
    def where(self, df: Any, conditions: list[exp.Expr], ctes: dict[str, Any]) -> Any:
        """WHERE: IN/EXISTS subqueries become semi/anti joins, the rest one filter."""
        plain: list[exp.Expr] = []
        for condition in conditions:
            negated = isinstance(condition, exp.Not)
            inner = condition.this if negated else condition
            while isinstance(inner, exp.Paren):
                inner = inner.this
            if isinstance(inner, exp.In) and inner.args.get("query") is not None:
                df = self.in_subquery(df, inner, negated, ctes)
            elif isinstance(inner, exp.Exists) and not is_array_exists(inner):
                df = self.exists(df, inner, negated, ctes)
            else:
                plain.append(condition)
        return self.filter_with_subqueries(df, plain, ctes, _Scope()) if plain else df

    def filter_with_subqueries(self, df: Any, conditions: list[exp.Expr], ctes: dict[str, Any],
                               scope: _Scope) -> Any:
        """One filter; uncorrelated scalar subqueries are cross-joined as one-row columns, then dropped."""
        scope.subquery_joins = []
        scope.ctes = ctes
        condition = self.column(exp.and_(*conditions) if len(conditions) > 1 else conditions[0], scope)
        joins, scope.subquery_joins = scope.subquery_joins, []
        for _name_, sub in joins:
            df = df.crossJoin(sub)
        df = df.filter(condition)
        return df.drop(*[n for n, _ in joins]) if joins else df

    def subquery_frame(self, query: exp.Expr, ctes: dict[str, Any], what: str) -> Any:
        """An uncorrelated subquery's DataFrame with its one column renamed to a private name."""
        query = query.this if isinstance(query, exp.Subquery) else query
        inner_names = {t.alias_or_name.lower() for t in query.find_all(exp.Table)} | set(ctes)
        for column in query.find_all(exp.Column):
            if column.table and column.table.lower() not in inner_names:
                raise self.fail(query, f"a correlated {what}")
        df = self.query(query, ctes)
        if len(df.columns) != 1:
            raise self.fail(query, f"a {what} with {len(df.columns)} columns")
        return df.toDF(self.private("s"))

    def in_subquery(self, df: Any, node: exp.In, negated: bool, ctes: dict[str, Any]) -> Any:
        sub = self.subquery_frame(node.args["query"], ctes, "IN subquery")
        left = self.column(node.this, _Scope())
        right = self.col(sub.columns[0])
        if not negated:
            return df.join(sub, on=left == right, how="left_semi")
        # NOT IN is null-aware: a null on either side makes the row's predicate null (dropped)
        return df.join(sub, on=(left == right) | left.isNull() | right.isNull(), how="left_anti")

    def exists(self, df: Any, node: exp.Exists, negated: bool, ctes: dict[str, Any]) -> Any:
        """[NOT] EXISTS (SELECT .. FROM .. WHERE inner AND correlated): a semi (anti) join whose
        condition is the correlated conjuncts."""
        query = node.this.this if isinstance(node.this, exp.Subquery) else node.this
        if not isinstance(query, exp.Select) or any(query.args.get(k) for k in ("group", "having", "limit", "with_")):
            raise self.fail(node, "an EXISTS subquery other than SELECT .. FROM .. WHERE")
        conditions = _conjuncts(query.args["where"].this) if query.args.get("where") else []
        inner_aliases = {t.alias_or_name.lower() for t in query.find_all(exp.Table)}
        correlated = [c for c in conditions
                      if any(col.table and col.table.lower() not in inner_aliases for col in c.find_all(exp.Column))]
        local = [c for c in conditions if not any(c is k for k in correlated)]
        inner, rest = self.from_clause(query, ctes, local)
        inner = self.where(inner, rest, ctes)
        how = "left_anti" if negated else "left_semi"
        if not correlated:
            return df.join(inner.limit(1).select(self.F.lit(1).alias(self.private("e"))), how=how)
        return df.join(inner, on=self.column(exp.and_(*correlated), _Scope()), how=how)
