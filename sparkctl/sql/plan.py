"""Logical plans: what a DataFrame computes, analysed as it is built.

Each node knows its output attributes. Building a node resolves its expressions against
its child's output (``Scope``), so an unknown column or a type mismatch is raised at the
DataFrame call that made it, as PySpark does. ``execution.py`` turns a plan into sparkctl
stages; ``optimizer.py`` rewrites it first.
"""
from __future__ import annotations

from typing import Any, Sequence

import pyarrow as pa

from sparkctl.errors import AnalysisException
from sparkctl.sql.expressions import (Alias, Attribute, AttributeRef, BinaryOp, Expr, Scope, SortOrder, Star,
                                      common_type, new_id, output_name, strip_alias)


class Plan:
    children: tuple["Plan", ...] = ()

    @property
    def output(self) -> list[Attribute]:
        raise NotImplementedError

    def scope(self) -> Scope:
        return Scope(self.output)

    def node_string(self) -> str:
        return type(self).__name__

    def tree_string(self, indent: int = 0) -> str:
        prefix = "" if indent == 0 else "   " * (indent - 1) + "+- "
        attrs = ", ".join(f"{a.name}#{a.id}" for a in self.output)
        lines = [f"{prefix}{self.node_string()} [{attrs}]" if not isinstance(self, (Project, Aggregate))
                 else f"{prefix}{self.node_string()}"]
        for c in self.children:
            lines.append(c.tree_string(indent + 1))
        return "\n".join(lines)


class UnaryPlan(Plan):
    """A node over one child; its output is the child's unless it says otherwise."""

    @property
    def child(self) -> Plan:
        return self.children[0]

    @property
    def output(self) -> list[Attribute]:
        return self.child.output


# ---------------------------------------------------------------------------- leaves
class LocalRelation(Plan):
    """Rows given by the driver (createDataFrame): an Arrow table with the attributes' columns."""

    def __init__(self, table: pa.Table, output: list[Attribute], num_slices: int) -> None:
        self.table = table
        self._output = output
        self.num_slices = num_slices

    @property
    def output(self) -> list[Attribute]:
        return self._output


class RangeRelation(Plan):
    def __init__(self, start: int, end: int, step: int, num_slices: int) -> None:
        if step == 0:
            raise ValueError("the step of range() cannot be 0")
        self.start, self.end, self.step, self.num_slices = start, end, step, num_slices
        self._output = [Attribute("id", pa.int64(), False)]

    @property
    def output(self) -> list[Attribute]:
        return self._output

    def node_string(self) -> str:
        return f"Range ({self.start}, {self.end}, step={self.step}, splits={self.num_slices})"


class RDDRelation(Plan):
    """An RDD of Rows or tuples with a schema (createDataFrame(rdd), rdd.toDF())."""

    def __init__(self, rdd: Any, output: list[Attribute], spark_schema: Any) -> None:
        self.rdd = rdd
        self._output = output
        self.spark_schema = spark_schema

    @property
    def output(self) -> list[Attribute]:
        return self._output


class FileRelation(Plan):
    """Files read by a data source (spark.read). The optimizer narrows it: its output to the
    columns the query uses (projection pushdown), its splits to the partitions that pass
    ``partition_filters``, and ``pushed_filters`` (``scan.PushedFilter``) go to the reader."""

    partition_filters: tuple[Any, ...] | list[Any] = ()
    pushed_filters: tuple[Any, ...] | list[Any] = ()
    data_filters: tuple[Any, ...] | list[Any] = ()  # the conditions of the Filter above it (explain)

    def __init__(self, scan: Any, output: list[Attribute], fmt: str, paths: list[str]) -> None:
        self.scan = scan
        self._output = output
        self.fmt = fmt
        self.paths = paths

    @property
    def output(self) -> list[Attribute]:
        return self._output

    def node_string(self) -> str:
        return f"Relation [{', '.join(a.name for a in self.output)}] {self.fmt}"


# ---------------------------------------------------------------------------- unary
def named(expr: Expr) -> Expr:
    """An output expression with a name: an attribute as it is, anything else aliased."""
    if isinstance(expr, (Alias, AttributeRef)):
        return expr
    return Alias(expr, output_name(expr))


def expand_stars(exprs: Sequence[Expr], scope: Scope) -> list[Expr]:
    out: list[Expr] = []
    for e in exprs:
        out += e.expand(scope) if isinstance(e, Star) else [e]
    return out


def attribute_of(expr: Expr) -> Attribute:
    if isinstance(expr, AttributeRef):
        return expr.attr
    assert isinstance(expr, Alias)
    return Attribute(expr.name, expr.dtype, expr.nullable, expr.attr_id)


class Project(UnaryPlan):
    def __init__(self, child: Plan, exprs: Sequence[Expr]) -> None:
        self.children = (child,)
        scope = child.scope()
        resolved = [named(e.resolve(scope)) for e in expand_stars(exprs, scope)]
        for e in resolved:
            if e.contains_aggregate():
                raise AnalysisException("[MISSING_GROUP_BY] The query does not include a GROUP BY clause. Add GROUP "
                                        "BY or turn it into the window functions using OVER clauses.",
                                        error_class="MISSING_GROUP_BY")
        self.exprs = resolved
        self._output = [attribute_of(e) for e in resolved]

    @property
    def output(self) -> list[Attribute]:
        return self._output

    def node_string(self) -> str:
        return f"Project [{', '.join(e.sql() for e in self.exprs)}]"


class Filter(UnaryPlan):
    def __init__(self, child: Plan, condition: Expr, resolved: bool = False) -> None:
        self.children = (child,)
        cond = condition if resolved else condition.resolve(child.scope())
        if not (pa.types.is_boolean(cond.dtype) or pa.types.is_null(cond.dtype)):
            raise AnalysisException(f"[DATATYPE_MISMATCH.FILTER_NOT_BOOLEAN] Cannot resolve \"{cond.sql()}\" due to "
                                    f"data type mismatch: Filter expression \"{cond.sql()}\" of type "
                                    f"\"{cond.dtype}\" is not a boolean.", error_class="DATATYPE_MISMATCH.FILTER_NOT_BOOLEAN")
        if cond.contains_aggregate():
            raise AnalysisException("[INVALID_WHERE_CONDITION] The WHERE condition contains an aggregate; use HAVING "
                                    "(filter after groupBy().agg()).", error_class="INVALID_WHERE_CONDITION")
        self.condition = cond

    def node_string(self) -> str:
        return f"Filter {self.condition.sql()}"


class Aggregate(UnaryPlan):
    """GROUP BY ``groups``, computing ``aggs`` (named expressions over the groups and aggregate calls)."""

    def __init__(self, child: Plan, groups: Sequence[Expr], aggs: Sequence[Expr]) -> None:
        self.children = (child,)
        scope = child.scope()
        self.groups = [named(g.resolve(scope)) for g in groups]
        group_sqls = {strip_alias(g).sql() for g in self.groups}
        group_ids = {s.attr.id for s in map(strip_alias, self.groups) if isinstance(s, AttributeRef)}
        resolved = [named(a.resolve(scope)) for a in expand_stars(aggs, scope)]
        for a in resolved:
            _check_grouped(strip_alias(a), group_sqls, group_ids)
        self.aggs = resolved
        self._output = [attribute_of(a) for a in resolved]

    @property
    def output(self) -> list[Attribute]:
        return self._output

    def node_string(self) -> str:
        return f"Aggregate [{', '.join(g.sql() for g in self.groups)}], [{', '.join(a.sql() for a in self.aggs)}]"


def _check_grouped(e: Expr, group_sqls: set[str], group_ids: set[int]) -> None:
    if e.is_aggregate or e.sql() in group_sqls:
        return
    if isinstance(e, AttributeRef):
        if e.attr.id not in group_ids:
            raise AnalysisException(f"[MISSING_AGGREGATION] The non-aggregating expression \"{e.sql()}\" is based on "
                                    f"columns which are not participating in the GROUP BY clause. Add the columns or "
                                    f"the expression to the GROUP BY, aggregate the expression, or use "
                                    f"\"any_value({e.sql()})\" if you do not care which of the values within a group "
                                    f"is returned.", error_class="MISSING_AGGREGATION")
        return
    for c in e.children:
        _check_grouped(c, group_sqls, group_ids)


JOIN_TYPES = {
    "inner": "inner", "cross": "cross", "outer": "full", "full": "full", "fullouter": "full", "full_outer": "full",
    "left": "left", "leftouter": "left", "left_outer": "left", "right": "right", "rightouter": "right",
    "right_outer": "right", "semi": "semi", "leftsemi": "semi", "left_semi": "semi", "anti": "anti",
    "leftanti": "anti", "left_anti": "anti",
}


class Join(Plan):
    """``how`` is inner, left, right, full, semi, anti or cross; ``keys`` equi-join pairs
    (left attribute, right attribute); ``residual`` any other condition; ``using`` the names
    of a USING join (one output column each)."""

    def __init__(self, left: Plan, right: Plan, how: str, condition: Expr | None = None,
                 using: Sequence[str] = ()) -> None:
        self.children = (left, right)
        key = how.lower().replace(" ", "")
        if key not in JOIN_TYPES:
            raise AnalysisException(f"[UNSUPPORTED_JOIN_TYPE] Unsupported join type '{how}'. Supported join types "
                                    f"include: 'inner', 'outer', 'full', 'fullouter', 'full_outer', 'leftouter', "
                                    f"'left', 'left_outer', 'rightouter', 'right', 'right_outer', 'leftsemi', "
                                    f"'left_semi', 'semi', 'leftanti', 'left_anti', 'anti', 'cross'.",
                                    error_class="UNSUPPORTED_JOIN_TYPE")
        self.how = JOIN_TYPES[key]
        self.using = list(using)
        self.keys: list[tuple[Attribute, Attribute]] = []
        self.residual: Expr | None = None
        lscope, rscope = left.scope(), right.scope()
        if using:
            for name in using:
                try:
                    la, ra = lscope.lookup(name), rscope.lookup(name)
                except AnalysisException:
                    raise AnalysisException(f"[UNRESOLVED_USING_COLUMN_FOR_JOIN] USING column `{name}` cannot be "
                                            f"resolved on the {'left' if not _has(lscope, name) else 'right'} side of "
                                            f"the join.", error_class="UNRESOLVED_USING_COLUMN_FOR_JOIN") from None
                common_type(la.dtype, ra.dtype, f"the join key `{name}`")
                self.keys.append((la, ra))
        elif condition is not None:
            both = Scope(left.output + right.output)
            cond = condition.resolve(both)
            left_ids = {a.id for a in left.output}
            right_ids = {a.id for a in right.output}
            residual: list[Expr] = []
            for part in _conjuncts(cond):
                pair = _equi_pair(part, left_ids, right_ids)
                if pair is not None:
                    self.keys.append(pair)
                else:
                    residual.append(part)
            if residual:
                out = residual[0]
                for r in residual[1:]:
                    out = BinaryOp("AND", out, r)
                out = out.resolve(both)
                self.residual = out
            if self.residual is not None and self.how in ("left", "right", "full", "anti") and self.keys:
                pass  # evaluated per matched pair before the outer rows are added (see execution)
        if self.how == "cross" and (self.keys or self.residual):
            self.how = "inner"
        if self.how != "cross" and not self.keys and self.residual is None and condition is None and not using:
            self.how = "cross"
        self._output = self._compute_output()
        self._not_null_inferred = False  # the optimizer added IsNotNull filters for its keys

    def _compute_output(self) -> list[Attribute]:
        left, right = self.children
        if self.how in ("semi", "anti"):
            return list(left.output)
        lo = [a if self.how not in ("right", "full") else a.__class__(a.name, a.dtype, True, a.id, a.qualifier)
              for a in left.output]
        ro = [a if self.how not in ("left", "full") else a.__class__(a.name, a.dtype, True, a.id, a.qualifier)
              for a in right.output]
        if not self.using:
            return lo + ro
        # USING: each key once, first (the left one; coalesced for full joins), then the rest
        key_ids_left = {la.id for la, _ in self.keys}
        key_ids_right = {ra.id for _, ra in self.keys}
        keys = []
        for la, ra in self.keys:
            if self.how == "right":
                keys.append(next(a for a in ro if a.id == ra.id))
            elif self.how == "full":
                keys.append(Attribute(la.name, common_type(la.dtype, ra.dtype), True, self.full_key_id(la)))
            else:
                keys.append(next(a for a in lo if a.id == la.id))
        return keys + [a for a in lo if a.id not in key_ids_left] + [a for a in ro if a.id not in key_ids_right]

    def full_key_id(self, left_attr: Attribute) -> int:
        ids = self.__dict__.setdefault("_full_ids", {})
        if left_attr.id not in ids:
            ids[left_attr.id] = new_id()
        return ids[left_attr.id]

    @property
    def output(self) -> list[Attribute]:
        return self._output

    def node_string(self) -> str:
        cond = " AND ".join(f"({a.name}#{a.id} = {b.name}#{b.id})" for a, b in self.keys)
        if self.residual is not None:
            cond = f"{cond} AND {self.residual.sql()}" if cond else self.residual.sql()
        return f"Join {self.how.capitalize()}{', ' + cond if cond else ''}"


def _has(scope: Scope, name: str) -> bool:
    try:
        scope.lookup(name)
        return True
    except AnalysisException:
        return False


def _conjuncts(e: Expr) -> list[Expr]:
    if isinstance(e, BinaryOp) and e.op == "AND":
        return _conjuncts(e.children[0]) + _conjuncts(e.children[1])
    return [e]


def _equi_pair(e: Expr, left_ids: set[int], right_ids: set[int]) -> tuple[Attribute, Attribute] | None:
    if not (isinstance(e, BinaryOp) and e.op == "="):
        return None
    a, b = e.children
    if isinstance(a, AttributeRef) and isinstance(b, AttributeRef):
        if a.attr.id in left_ids and b.attr.id in right_ids:
            return a.attr, b.attr
        if b.attr.id in left_ids and a.attr.id in right_ids:
            return b.attr, a.attr
    return None


class Sort(UnaryPlan):
    def __init__(self, child: Plan, orders: Sequence[Expr]) -> None:
        self.children = (child,)
        scope = child.scope()
        out = []
        for o in orders:
            if not isinstance(o, SortOrder):
                o = SortOrder(o)
            out.append(o.resolve(scope))
        self.orders: list[SortOrder] = out  # type: ignore[assignment]

    def node_string(self) -> str:
        return f"Sort [{', '.join(o.sql() for o in self.orders)}], true"


class Limit(UnaryPlan):
    def __init__(self, child: Plan, n: int, offset: int = 0) -> None:
        if n < 0:
            raise AnalysisException(f"[INVALID_LIMIT_LIKE_EXPRESSION.IS_NEGATIVE] The limit like expression \"{n}\" is "
                                    f"invalid. The limit expression must be equal to or greater than 0, but got {n}.",
                                    error_class="INVALID_LIMIT_LIKE_EXPRESSION.IS_NEGATIVE")
        self.children = (child,)
        self.n = n
        self.offset = offset

    def node_string(self) -> str:
        return f"GlobalLimit {self.n}"


class Union(Plan):
    """UNION ALL by position: the first child's names and ids; types widened."""

    def __init__(self, children: Sequence[Plan]) -> None:
        self.children = tuple(children)
        first = children[0]
        for other in children[1:]:
            if len(other.output) != len(first.output):
                raise AnalysisException(f"[NUM_COLUMNS_MISMATCH] UNION can only be performed on inputs with the same "
                                        f"number of columns, but the first input has {len(first.output)} columns and "
                                        f"the second input has {len(other.output)} columns.",
                                        error_class="NUM_COLUMNS_MISMATCH")
        self._output = []
        for i, a in enumerate(first.output):
            t = a.dtype
            nullable = a.nullable
            for other in children[1:]:
                t = common_type(t, other.output[i].dtype, f"the union's column {a.name}")
                nullable = nullable or other.output[i].nullable
            self._output.append(Attribute(a.name, t, nullable, a.id))

    @property
    def output(self) -> list[Attribute]:
        return self._output

    def node_string(self) -> str:
        return "Union"


class Repartition(UnaryPlan):
    """``repartition(n[, cols])`` (a shuffle) or ``coalesce(n)`` (narrow: partitions merged)."""

    def __init__(self, child: Plan, n: int, exprs: Sequence[Expr] = (), shuffle: bool = True) -> None:
        if n <= 0:
            raise ValueError(f"Number of partitions must be positive, got {n}")
        self.children = (child,)
        self.n = n
        self.exprs = [e.resolve(child.scope()) for e in exprs]
        self.shuffle = shuffle

    def node_string(self) -> str:
        return f"Repartition {self.n}, {str(self.shuffle).lower()}"


class SubqueryAlias(UnaryPlan):
    """``df.alias("t")``: the same attributes, nameable as ``t.col``."""

    def __init__(self, child: Plan, alias: str) -> None:
        self.children = (child,)
        self.alias = alias
        self._output = [a.with_qualifier(alias) for a in child.output]

    @property
    def output(self) -> list[Attribute]:
        return self._output

    def node_string(self) -> str:
        return f"SubqueryAlias {self.alias}"


class CachedPlan(UnaryPlan):
    """A plan whose result is cached (df.cache()): its RDD of tables is persisted."""

    def __init__(self, child: Plan, storage_level: Any) -> None:
        self.children = (child,)
        self.storage_level = storage_level
        self.rdd: Any = None
        self._optimized = False  # the optimizer rewrote its child (once, in place)

    def node_string(self) -> str:
        return "InMemoryRelation"
