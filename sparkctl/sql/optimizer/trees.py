"""What the optimizer's rules share: walking and rebuilding plan and expression trees,
conjunctions, and which expressions are deterministic (and so may be folded or moved)."""
from __future__ import annotations

import copy
from typing import Callable, Iterable

import pyarrow as pa

from sparkctl.sql import plan as lp
from sparkctl.sql.expressions import (Alias, AttributeRef, BinaryOp, CaseWhen, Cast, Expr, In, IsNull, Literal,
                                      Negate, Not)

Rule = Callable[[lp.Plan], lp.Plan]

#: functions whose value changes between calls: never folded, duplicated or moved
NONDETERMINISTIC = frozenset({"rand", "randn", "random", "uuid", "shuffle", "monotonically_increasing_id",
                              "spark_partition_id", "input_file_name"})
#: expression classes the optimizer understands (anything else is left where it is)
_FOLDABLE_CLASSES = (Literal, BinaryOp, Not, Negate, IsNull, In, CaseWhen, Cast, Alias)


# ---------------------------------------------------------------------------- helpers
def _refs(exprs: Iterable[Expr]) -> set[int]:
    out: set[int] = set()
    for e in exprs:
        out |= e.references()
    return out


def _with_children(node: lp.Plan, children: list[lp.Plan]) -> lp.Plan:
    if all(a is b for a, b in zip(node.children, children)):
        return node
    new = copy.copy(node)
    new.children = tuple(children)
    return new


def transform_up(plan: lp.Plan, rule: Rule) -> lp.Plan:
    """*rule* applied to every node, children first. A cached plan is a leaf: its node
    holds the persisted RDD, so it is never copied (nor its inside rewritten)."""
    if isinstance(plan, lp.CachedPlan):
        return rule(plan)
    new = _with_children(plan, [transform_up(c, rule) for c in plan.children])
    return rule(new)


def transform_expr(e: Expr, rule: Callable[[Expr], Expr]) -> Expr:
    kids = [transform_expr(c, rule) for c in e.children]
    if any(a is not b for a, b in zip(kids, e.children)):
        e = e.with_children(kids)
    return rule(e)


def is_deterministic(e: Expr) -> bool:
    from sparkctl.sql.builtins import Func
    for node in e.walk():
        if isinstance(node, Func):
            if node.name in NONDETERMINISTIC:
                return False
        elif not isinstance(node, (AttributeRef,) + _FOLDABLE_CLASSES):
            return False  # Python UDFs, window and generator expressions, aggregates
    return True


def conjuncts(e: Expr) -> list[Expr]:
    if isinstance(e, BinaryOp) and e.op == "AND":
        return conjuncts(e.children[0]) + conjuncts(e.children[1])
    return [e]


def and_all(parts: list[Expr]) -> Expr:
    out = parts[0]
    for p in parts[1:]:
        out = _and(out, p)
    return out


def _and(a: Expr, b: Expr) -> Expr:
    new = BinaryOp("AND", a, b)
    new._type = pa.bool_()  # its resolved type, as resolve() sets it
    return new


def make_filter(child: lp.Plan, condition: Expr) -> lp.Filter:
    return lp.Filter(child, condition, resolved=True)


def substitute(e: Expr, mapping: dict[int, Expr]) -> Expr:
    """*e* with each attribute in *mapping* replaced by its expression."""
    def sub(node: Expr) -> Expr:
        if isinstance(node, AttributeRef) and node.attr.id in mapping:
            return mapping[node.attr.id]
        return node
    return transform_expr(e, sub)
