"""Rules that simplify without moving anything: constant folding, boolean simplification,
null propagation, always-true/false filters, adjacent filters and projects combined."""
from __future__ import annotations

import copy

import pyarrow as pa

from sparkctl.sql import plan as lp
from sparkctl.sql.expressions import Alias, AttributeRef, BinaryOp, Expr, IsNull, Literal, Not
from sparkctl.sql.optimizer.trees import (and_all, conjuncts, is_deterministic, make_filter, substitute,
                                          transform_expr)


# ---------------------------------------------------------------------------- expression rules
def _is_true(e: Expr) -> bool:
    return isinstance(e, Literal) and e.value is True


def _is_false(e: Expr) -> bool:
    return isinstance(e, Literal) and e.value is False


def _is_null(e: Expr) -> bool:
    return isinstance(e, Literal) and e.value is None


_ONE_ROW = pa.table({"__row": pa.array([0], pa.int8())})


def _fold(e: Expr) -> Expr:
    if isinstance(e, (Literal, Alias)) or not e.children:
        return e
    if e.references() or not is_deterministic(e) or e.contains_aggregate():
        return e
    if pa.types.is_nested(e.dtype):
        return e  # a struct, list or map stays as built
    try:
        value = e.eval(_ONE_ROW)
        if not isinstance(value, pa.Scalar):
            value = value[0]
        if value.type != e.dtype and not pa.types.is_null(value.type):
            return e
        return Literal(value.as_py(), e.dtype)
    except Exception:  # an error (a division by zero under ANSI) is raised at run time, as unfolded
        return e


def _simplify(e: Expr) -> Expr:
    """Boolean simplification and null propagation."""
    if isinstance(e, BinaryOp):
        a, b = e.children
        if e.op == "AND":
            if _is_true(a):
                return b
            if _is_true(b):
                return a
            if (_is_false(a) and is_deterministic(b)) or (_is_false(b) and is_deterministic(a)):
                return Literal(False)
        elif e.op == "OR":
            if _is_false(a):
                return b
            if _is_false(b):
                return a
            if (_is_true(a) and is_deterministic(b)) or (_is_true(b) and is_deterministic(a)):
                return Literal(True)
        elif e.op != "<=>" and (_is_null(a) or _is_null(b)) and is_deterministic(e):
            return Literal(None, e.dtype)  # arithmetic and comparisons with NULL are NULL
    elif isinstance(e, Not):
        inner = e.children[0]
        if isinstance(inner, Not):
            return inner.children[0]
    elif isinstance(e, IsNull):
        inner = e.children[0]
        if isinstance(inner, AttributeRef) and not inner.attr.nullable:
            return Literal(bool(e.negated))
    return e


def optimize_expr(e: Expr) -> Expr:
    return transform_expr(transform_expr(e, _simplify), _fold)


# ---------------------------------------------------------------------------- plan rules
def fold_constants(plan: lp.Plan) -> lp.Plan:
    """Literal-only expressions evaluated once; ``x AND true`` is ``x``; NULL propagated."""
    if isinstance(plan, lp.Filter):
        cond = optimize_expr(plan.condition)
        if cond is plan.condition:
            return plan
        return make_filter(plan.child, cond)
    if isinstance(plan, lp.Project):
        exprs = [optimize_expr(e) for e in plan.exprs]
        if all(a is b for a, b in zip(exprs, plan.exprs)):
            return plan
        new = copy.copy(plan)
        new.exprs = exprs
        return new
    return plan


def prune_filters(plan: lp.Plan) -> lp.Plan:
    """A filter that is always true goes; one that is always false or NULL gives no rows."""
    if isinstance(plan, lp.Filter):
        if _is_true(plan.condition):
            return plan.child
        if _is_false(plan.condition) or _is_null(plan.condition):
            from sparkctl.sql.execution import empty_table
            return lp.LocalRelation(empty_table(plan.output), plan.output, 1)
    return plan


def combine_filters(plan: lp.Plan) -> lp.Plan:
    """Two adjacent filters are one, each conjunct once (the same IsNotNull is often
    inferred from two joins)."""
    if isinstance(plan, lp.Filter) and isinstance(plan.child, lp.Filter) \
            and is_deterministic(plan.condition) and is_deterministic(plan.child.condition):
        from sparkctl.sql.explain import expr_string  # attributes with their ids: a faithful key
        parts: dict[str, Expr] = {}
        for c in conjuncts(plan.child.condition) + conjuncts(plan.condition):
            parts.setdefault(expr_string(c), c)
        return make_filter(plan.child.child, and_all(list(parts.values())))
    return plan


def collapse_projects(plan: lp.Plan) -> lp.Plan:
    """``select(...)`` over ``select(...)``: one projection, the inner expressions substituted
    (when each computed one is used at most once, so nothing is computed twice)."""
    if not (isinstance(plan, lp.Project) and isinstance(plan.child, lp.Project)):
        return plan
    inner = plan.child
    if not all(is_deterministic(e) for e in inner.exprs):
        return plan
    mapping: dict[int, Expr] = {}
    for e in inner.exprs:
        if isinstance(e, Alias):
            mapping[e.attr_id] = e.child
    uses: dict[int, int] = {}
    for e in plan.exprs:
        for node in e.walk():
            if isinstance(node, AttributeRef) and node.attr.id in mapping:
                uses[node.attr.id] = uses.get(node.attr.id, 0) + 1
    if any(n > 1 and not isinstance(mapping[i], (AttributeRef, Literal)) for i, n in uses.items()):
        return plan
    exprs: list[Expr] = []
    for e, attr in zip(plan.exprs, plan.output):
        if isinstance(e, AttributeRef) and e.attr.id in mapping:
            exprs.append(Alias(mapping[e.attr.id], attr.name, attr.id))
        else:
            exprs.append(substitute(e, mapping))
    new = copy.copy(plan)
    new.children = (inner.child,)
    new.exprs = exprs
    return new
