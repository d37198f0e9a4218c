"""``df.explain()``: a DataFrame's plans printed as Spark prints them.

    DataFrame plan ──▶ "== Parsed Logical Plan ==" / "== Analyzed Logical Plan =="
                   ──▶ optimizer.optimize ──▶ "== Optimized Logical Plan =="
                   ──▶ physical_plan       ──▶ "== Physical Plan =="

sparkctl analyses a plan as it is built, so the parsed and the analysed plans are the same
tree. The physical plan is what ``execution.Planner`` runs, printed from the choices the
planner records for it (``strategies.py``, the records its RDDs are built from) with
Spark's operator names: a scan with its pushed and partition filters,
``Exchange hashpartitioning(...)`` where a shuffle cuts a stage, ``HashAggregate`` partial
and final, ``BroadcastHashJoin`` (the build side under a ``BroadcastExchange``) or
``ShuffledHashJoin``, ``Sort`` after an ``Exchange SinglePartition``. Attribute ids are
sparkctl's, not Spark's. There is no whole-stage code generation, so ``codegen`` mode
finds no subtree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from sparkctl.errors import IllegalArgumentException, PySparkTypeError, PySparkValueError
from sparkctl.sql import plan as lp
from sparkctl.sql.expressions import Alias, Attribute, AttributeRef, Expr, IsNull, spark_type_name

MODES = ("simple", "extended", "codegen", "cost", "formatted")


# ---------------------------------------------------------------------------- arguments
def explain_mode(extended: Any = None, mode: Any = None) -> str:
    """The mode PySpark's ``explain(extended, mode)`` asks for, with PySpark's errors."""
    if extended is not None and mode is not None:
        raise PySparkValueError("[CANNOT_SET_TOGETHER] extended and mode should not be set together.",
                                error_class="CANNOT_SET_TOGETHER")
    if extended is not None and not isinstance(extended, (bool, str)):
        raise PySparkTypeError(f"[NOT_BOOL_OR_STR] Argument `extended` should be a bool or str, got "
                               f"{type(extended).__name__}.", error_class="NOT_BOOL_OR_STR")
    if mode is not None and not isinstance(mode, str):
        raise PySparkTypeError(f"[NOT_STR] Argument `mode` should be a str, got {type(mode).__name__}.",
                               error_class="NOT_STR")
    chosen: str
    if isinstance(extended, bool):
        chosen = "extended" if extended else "simple"
    elif isinstance(extended, str):
        chosen = extended
    else:
        chosen = mode if isinstance(mode, str) else "simple"
    if chosen.lower() not in MODES:
        raise IllegalArgumentException(f"Unknown explain mode: {chosen}. Accepted explain modes are 'simple', "
                                       f"'extended', 'codegen', 'cost', 'formatted'.")
    return chosen.lower()


def explain_string(plan: lp.Plan, session: Any, mode: str) -> str:
    """What ``explain`` prints for *plan* in *mode* (one of :data:`MODES`)."""
    from sparkctl.sql.optimizer import optimize
    optimized = optimize(plan)
    physical = physical_plan(optimized, session)
    if mode == "simple":
        return "== Physical Plan ==\n" + physical.tree() + "\n"
    if mode == "extended":
        schema = ", ".join(f"{a.name}: {spark_type_name(a.dtype).lower()}" for a in plan.output)
        return ("== Parsed Logical Plan ==\n" + logical_tree(plan) + "\n\n"
                "== Analyzed Logical Plan ==\n" + schema + "\n" + logical_tree(plan) + "\n\n"
                "== Optimized Logical Plan ==\n" + logical_tree(optimized) + "\n\n"
                "== Physical Plan ==\n" + physical.tree() + "\n")
    if mode == "cost":
        return ("== Optimized Logical Plan ==\n" + logical_tree(optimized, with_stats=True) + "\n\n"
                "== Physical Plan ==\n" + physical.tree() + "\n")
    if mode == "codegen":
        return "Found 0 WholeStageCodegen subtrees.\n"
    return "== Physical Plan ==\n" + physical.formatted() + "\n"


# ---------------------------------------------------------------------------- expressions
class _Shown(Expr):
    """A rendered sub-expression, so a parent's ``sql()`` can be reused with ids in it."""

    def __init__(self, text: str) -> None:
        self.text = text

    def sql(self) -> str:
        return self.text


def attr_string(a: Attribute) -> str:
    return f"{a.name}#{a.id}{'L' if pa.types.is_int64(a.dtype) else ''}"


def expr_string(e: Expr) -> str:
    """*e* as Spark shows it in a plan: attributes with their ids, aliases with ``AS``."""
    if isinstance(e, AttributeRef):
        return attr_string(e.attr)
    if isinstance(e, Alias):
        suffix = "L" if _is_int64(e) else ""
        return f"{expr_string(e.child)} AS {e.name}#{e.attr_id}{suffix}"
    if isinstance(e, IsNull):
        return f"{'isnotnull' if e.negated else 'isnull'}({expr_string(e.children[0])})"
    if not e.children:
        return e.sql()
    try:
        text = e.with_children([_Shown(expr_string(c)) for c in e.children]).sql()
    except Exception:  # a node whose text needs its children's types: without ids
        text = e.sql()
    if getattr(e, "is_aggregate", False) and getattr(e, "distinct", False):
        text = text.replace("(DISTINCT ", "(distinct ", 1)  # as Spark's plans print an aggregate
    return text


def _is_int64(e: Expr) -> bool:
    try:
        return pa.types.is_int64(e.dtype)
    except Exception:
        return False


def _exprs(exprs: Any) -> str:
    return "[" + ", ".join(expr_string(e) for e in exprs) + "]"


def _attrs(attrs: list[Attribute]) -> str:
    return "[" + ", ".join(attr_string(a) for a in attrs) + "]"


# ---------------------------------------------------------------------------- logical plans
def logical_node(p: lp.Plan) -> str:
    from sparkctl.sql.window import WindowPlan
    if isinstance(p, lp.Project):
        return f"Project {_exprs(p.exprs)}"
    if isinstance(p, lp.Filter):
        return f"Filter {expr_string(p.condition)}"
    if isinstance(p, lp.Aggregate):
        return f"Aggregate {_exprs(p.groups)}, {_exprs(p.aggs)}"
    if isinstance(p, lp.Sort):
        return f"Sort {_exprs(p.orders)}, true"
    if isinstance(p, lp.Join):
        cond = " AND ".join(f"({attr_string(a)} = {attr_string(b)})" for a, b in p.keys)
        if p.residual is not None:
            cond = f"{cond} AND {expr_string(p.residual)}" if cond else expr_string(p.residual)
        how = {"left": "LeftOuter", "right": "RightOuter", "full": "FullOuter", "semi": "LeftSemi",
               "anti": "LeftAnti"}.get(p.how, p.how.capitalize())
        return f"Join {how}{', ' + cond if cond else ''}"
    if isinstance(p, lp.FileRelation):
        return f"Relation [{','.join(attr_string(a) for a in p.output)}] {p.fmt}"
    if isinstance(p, lp.LocalRelation):
        return f"LocalRelation {_attrs(p.output)}" if p.table.num_rows else f"LocalRelation <empty>, {_attrs(p.output)}"
    if isinstance(p, lp.RDDRelation):
        return f"LogicalRDD {_attrs(p.output)}, false"
    if isinstance(p, lp.Limit):
        return f"GlobalLimit {p.n}"
    if isinstance(p, lp.Repartition):
        if p.exprs:
            return f"RepartitionByExpression {_exprs(p.exprs)}, {p.n}"
        return f"Repartition {p.n}, {str(p.shuffle).lower()}"
    if isinstance(p, WindowPlan):
        return f"Window {_exprs(p.exprs)}"
    return p.node_string()


def logical_tree(p: lp.Plan, with_stats: bool = False) -> str:
    lines: list[str] = []

    def visit(node: lp.Plan, prefix: str, child_prefix: str) -> None:
        text = logical_node(node)
        if with_stats:
            text += f", Statistics(sizeInBytes={bytes_string(_size(node))})"
        lines.append(prefix + text)
        kids = node.children
        for i, c in enumerate(kids):
            last = i == len(kids) - 1
            visit(c, child_prefix + ("+- " if last else ":- "), child_prefix + ("   " if last else ":  "))
    visit(p, "", "")
    return "\n".join(lines)


def _size(p: lp.Plan) -> float:
    from sparkctl.sql.strategies import estimated_size
    try:
        return estimated_size(p)
    except Exception:
        return math.inf


def bytes_string(n: float) -> str:
    """Spark's ``Utils.bytesToString``: 9.2 KiB; an unknown size is Long.MaxValue, 8.0 EiB."""
    if math.isinf(n) or n >= 2 ** 63:
        n = 2 ** 63 - 1
    for unit, size in (("EiB", 2 ** 60), ("PiB", 2 ** 50), ("TiB", 2 ** 40), ("GiB", 2 ** 30),
                       ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= 2 * size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)}.0 B"


# ---------------------------------------------------------------------------- physical plans
@dataclass
class PhysicalNode:
    """One operator of the physical plan: Spark's name, its arguments, its inputs."""

    name: str
    args: str = ""
    children: list["PhysicalNode"] = field(default_factory=list)
    output: list[Attribute] = field(default_factory=list)

    def line(self) -> str:
        if self.name == "HashAggregate":
            return self.name + self.args
        return f"{self.name} {self.args}".rstrip()

    def tree(self) -> str:
        lines: list[str] = []

        def visit(node: PhysicalNode, prefix: str, child_prefix: str) -> None:
            lines.append(prefix + node.line())
            for i, c in enumerate(node.children):
                last = i == len(node.children) - 1
                visit(c, child_prefix + ("+- " if last else ":- "), child_prefix + ("   " if last else ":  "))
        visit(self, "", "")
        return "\n".join(lines)

    def formatted(self) -> str:
        order: list[PhysicalNode] = []

        def number(node: PhysicalNode) -> None:
            for c in node.children:
                number(c)
            order.append(node)
        number(self)
        ids = {id(n): i + 1 for i, n in enumerate(order)}
        lines: list[str] = []

        def visit(node: PhysicalNode, prefix: str, child_prefix: str) -> None:
            lines.append(f"{prefix}{node.name} ({ids[id(node)]})")
            for i, c in enumerate(node.children):
                last = i == len(node.children) - 1
                visit(c, child_prefix + ("+- " if last else ":- "), child_prefix + ("   " if last else ":  "))
        visit(self, "", "")
        details = []
        for node in order:
            text = f"({ids[id(node)]}) {node.name}\n"
            inputs = node.children[0].output if node.children else []
            if node.children:
                text += f"Input [{len(inputs)}]: {_attrs(inputs)}\n"
            else:
                text += f"Output [{len(node.output)}]: {_attrs(node.output)}\n"
            if node.args:
                text += f"Arguments: {node.args}\n"
            details.append(text)
        return "\n".join(lines) + "\n\n\n" + "\n".join(details)


def physical_plan(p: lp.Plan, session: Any) -> PhysicalNode:
    """The operators ``execution.Planner`` runs for the optimised plan *p*."""
    from sparkctl.sql.execution import Planner
    return _Physical(Planner(session)).visit(p)


class _Physical:
    """The physical operators, described from the choices the planner makes for each one
    (its ``*_strategy`` records, see ``strategies.py``), never decided again here."""

    def __init__(self, planner: Any) -> None:
        self.planner = planner

    def node(self, name: str, args: str, plan: lp.Plan, *children: PhysicalNode) -> PhysicalNode:
        return PhysicalNode(name, args, list(children), list(plan.output))

    def exchange(self, keys: list[str], child: PhysicalNode, n: int) -> PhysicalNode:
        """The exchange ``Planner.exchange`` runs: by a hash of *keys* into *n* partitions,
        or without keys every row into one."""
        if keys:
            args = f"hashpartitioning({', '.join(keys)}, {n}), ENSURE_REQUIREMENTS"
        else:
            args = "SinglePartition, ENSURE_REQUIREMENTS"
        return PhysicalNode("Exchange", args, [child], child.output)

    def visit(self, p: lp.Plan) -> PhysicalNode:
        method = getattr(self, "_" + type(p).__name__, None)
        if method is not None:
            return method(p)
        return self.node(p.node_string().split(" ")[0], "", p, *[self.visit(c) for c in p.children])

    # leaves
    def _FileRelation(self, p: lp.FileRelation) -> PhysicalNode:
        data_filters = [expr_string(e) for e in _data_filters(p)]
        partition_filters = [expr_string(e) for e in p.partition_filters]
        pushed = [f.spark_string() for f in p.pushed_filters]
        read_schema = ",".join(f"{a.name}:{spark_type_name(a.dtype).lower()}" for a in p.output)
        location = f"InMemoryFileIndex({len(p.paths)} paths)[{', '.join(p.paths)}]"
        args = (f"[{','.join(attr_string(a) for a in p.output)}] Batched: true, "
                f"DataFilters: [{', '.join(data_filters)}], Format: {p.fmt.capitalize()}, Location: {location}, "
                f"PartitionFilters: [{', '.join(partition_filters)}], PushedFilters: [{', '.join(pushed)}], "
                f"ReadSchema: struct<{read_schema}>")
        return PhysicalNode(f"FileScan {p.fmt}", args, [], list(p.output))

    def _LocalRelation(self, p: lp.LocalRelation) -> PhysicalNode:
        return self.node("LocalTableScan", _attrs(p.output) if p.table.num_rows else "<empty>, " + _attrs(p.output), p)

    def _RDDRelation(self, p: lp.RDDRelation) -> PhysicalNode:
        return PhysicalNode("Scan ExistingRDD" + _attrs(p.output).replace(", ", ","), "", [], list(p.output))

    def _RangeRelation(self, p: lp.RangeRelation) -> PhysicalNode:
        return self.node("Range", f"({p.start}, {p.end}, step={p.step}, splits={p.num_slices})", p)

    # narrow
    def _Project(self, p: lp.Project) -> PhysicalNode:
        return self.node("Project", _exprs(p.exprs), p, self.visit(p.child))

    def _Filter(self, p: lp.Filter) -> PhysicalNode:
        return self.node("Filter", expr_string(p.condition), p, self.visit(p.child))

    def _SubqueryAlias(self, p: lp.SubqueryAlias) -> PhysicalNode:
        return self.visit(p.child)

    def _CachedPlan(self, p: lp.CachedPlan) -> PhysicalNode:
        return self.node("InMemoryTableScan", _attrs(p.output), p,
                         self.node("InMemoryRelation", _attrs(p.output), p, self.visit(p.child)))

    def _Union(self, p: lp.Union) -> PhysicalNode:
        return self.node("Union", "", p, *[self.visit(c) for c in p.children])

    def _Repartition(self, p: lp.Repartition) -> PhysicalNode:
        child = self.visit(p.child)
        if not p.shuffle:
            return self.node("Coalesce", str(p.n), p, child)
        if p.exprs:
            return self.node("Exchange", f"hashpartitioning({', '.join(expr_string(e) for e in p.exprs)}, {p.n}), "
                             f"REPARTITION_BY_NUM", p, child)
        return self.node("Exchange", f"RoundRobinPartitioning({p.n}), REPARTITION_BY_NUM", p, child)

    # sort and limit
    def _Sort(self, p: lp.Sort) -> PhysicalNode:
        gathered = self.exchange([], self.visit(p.child), self.planner.sort_strategy(p).partitions)
        return self.node("Sort", f"{_exprs(p.orders)}, true, 0", p, gathered)

    def _Limit(self, p: lp.Limit) -> PhysicalNode:
        local = self.node("LocalLimit", str(p.n), p, self.visit(p.child))
        if self.planner.limit_strategy(p).gather:
            return self.node("GlobalLimit", f"{p.n}, {p.offset}", p, self.exchange([], local, 1))
        return self.node("GlobalLimit", f"{p.n}, {p.offset}", p, local)

    # aggregate
    def _Aggregate(self, p: lp.Aggregate) -> PhysicalNode:
        from sparkctl.sql.aggregation import aggregate_calls
        from sparkctl.sql.expressions import strip_alias
        child = self.visit(p.child)
        keys = [expr_string(strip_alias(g)) for g in p.groups]
        functions = [expr_string(c) for c in aggregate_calls(p)]
        final_args = f"keys=[{', '.join(keys)}], functions=[{', '.join(functions)}], output={_attrs(p.output)}"
        strategy = self.planner.aggregate_strategy(p)
        if strategy.two_phase:
            partial_args = f"keys=[{', '.join(keys)}], functions=[{', '.join('partial_' + f for f in functions)}]"
            partial = PhysicalNode("HashAggregate", f"({partial_args})", [child], child.output)
            shuffled = self.exchange(keys, partial, strategy.partitions)
        elif strategy.distinct_arguments:
            shuffled = self._distinct_aggregates(p, child, keys, strategy)
        else:
            shuffled = self.exchange(keys, child, strategy.partitions)
        return self.node("HashAggregate", f"({final_args})", p, shuffled)

    def _distinct_aggregates(self, p: lp.Aggregate, child: PhysicalNode, keys: list[str],
                             strategy: Any) -> PhysicalNode:
        """Spark's rewrite of DISTINCT aggregates, as aggregation._rewritten_distinct runs it:
        partial and merged aggregates by (keys, distinct arguments), then partial ones by the
        keys, exchanged into the final aggregate."""
        from sparkctl.sql.aggregation import aggregate_calls, mergeable
        calls = aggregate_calls(p)
        plain = [expr_string(c) for c in calls if mergeable(c)]
        inner_keys = keys + [expr_string(a) for a in strategy.distinct_arguments]

        def aggregate(keys: list[str], functions: list[str], below: PhysicalNode) -> PhysicalNode:
            return PhysicalNode("HashAggregate", f"(keys=[{', '.join(keys)}], functions=[{', '.join(functions)}])",
                                [below], below.output)
        first = aggregate(inner_keys, ["partial_" + f for f in plain], child)
        by_value = aggregate(inner_keys, ["merge_" + f for f in plain],
                             self.exchange(inner_keys, first, strategy.distinct_partitions))
        functions = [("merge_" if mergeable(c) else "partial_") + expr_string(c) for c in calls]
        return self.exchange(keys, aggregate(keys, functions, by_value), strategy.partitions)

    # join
    def _Join(self, p: lp.Join) -> PhysicalNode:
        from sparkctl.sql.strategies import BROADCAST_HASH, BROADCAST_NESTED_LOOP
        left, right = self.visit(p.children[0]), self.visit(p.children[1])
        strategy = self.planner.join_strategy(p)
        how = {"left": "LeftOuter", "right": "RightOuter", "full": "FullOuter", "semi": "LeftSemi",
               "anti": "LeftAnti"}.get(p.how, p.how.capitalize())
        build = "BuildLeft" if strategy.build_side == "left" else "BuildRight"
        residual = f", {expr_string(p.residual)}" if p.residual is not None else ""
        if strategy.operator == BROADCAST_NESTED_LOOP:
            left, right = self._broadcast_side(strategy.build_side, left, right, "IdentityBroadcastMode")
            return self.node("BroadcastNestedLoopJoin", f"{build}, {how}{residual}", p, left, right)
        lkeys = [attr_string(a) for a, _ in p.keys]
        rkeys = [attr_string(b) for _, b in p.keys]
        keys = f"[{', '.join(lkeys)}], [{', '.join(rkeys)}]"
        if strategy.operator == BROADCAST_HASH:
            left, right = self._broadcast_side(strategy.build_side, left, right, "HashedRelationBroadcastMode")
            return self.node("BroadcastHashJoin", f"{keys}, {how}, {build}{residual}, false", p, left, right)
        return self.node(strategy.operator, f"{keys}, {how}, {build}{residual}", p,
                         self.exchange(lkeys, left, strategy.partitions),
                         self.exchange(rkeys, right, strategy.partitions))

    def _broadcast_side(self, side: str, left: PhysicalNode, right: PhysicalNode,
                        mode: str) -> tuple[PhysicalNode, PhysicalNode]:
        """The two inputs, the one broadcast (the build side) under a ``BroadcastExchange``."""
        if side == "left":
            return self._broadcast(left, mode), right
        return left, self._broadcast(right, mode)

    def _broadcast(self, child: PhysicalNode, mode: str) -> PhysicalNode:
        return PhysicalNode("BroadcastExchange", mode, [child], child.output)

    # others
    def _WindowPlan(self, p: Any) -> PhysicalNode:
        return self.node("Window", _exprs(p.exprs), p, self.visit(p.child))

    def _MapInBatches(self, p: Any) -> PhysicalNode:
        name = "MapInPandas" if getattr(p, "pandas", False) else "MapInArrow"
        return self.node(name, _attrs(p.output), p, self.visit(p.child))

    def _Generate(self, p: Any) -> PhysicalNode:
        return self.node("Generate", expr_string(p.generator), p, self.visit(p.child))


def _data_filters(p: lp.FileRelation) -> list[Expr]:
    """Spark's DataFilters: the conditions of the Filter right above the scan."""
    return list(p.data_filters)
