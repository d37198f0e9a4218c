"""Rewrites of an analysed plan before it runs, as Catalyst's optimizer makes them.

Each rule is a small function from a plan to an equal plan; a batch applies its rules over
and over until the plan stops changing (a fixed point) or a cap is reached::

    analysed plan ──▶ "Operator Optimization" (to a fixed point):
                          fold constants, simplify booleans, propagate nulls,
                          prune always-true/false filters, combine filters,
                          collapse projects, push predicates down
                  ──▶ column pruning (each node asks its children only for what it uses)
                  ──▶ push into file scans (partition pruning, parquet row-group filters)
                  ──▶ optimised plan

A rewrite never changes a result: a predicate moves only where every row it would remove
is a row the original plan removes too (never into the null-producing side of an outer
join, never past a limit or a non-deterministic expression), and an expression is folded
only when it has no column, is deterministic and evaluates without error (a division by
zero stays in the plan and fails at run time, as it would have).
"""
from __future__ import annotations

import copy
from typing import Callable, Iterable

import pyarrow as pa

from sparkctl.sql import plan as lp
from sparkctl.sql.expressions import (Alias, AttributeRef, BinaryOp, CaseWhen, Cast, Expr, In, IsNull, Literal,
                                      Negate, Not)
from sparkctl.sql.scan import push_into_scans

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
    new._type = pa.bool_()
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
    if isinstance(plan, lp.Filter) and isinstance(plan.child, lp.Filter) \
            and is_deterministic(plan.condition) and is_deterministic(plan.child.condition):
        return make_filter(plan.child.child, _and(plan.child.condition, plan.condition))
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


def _split_by_side(parts: list[Expr], left_ids: set[int], right_ids: set[int]) \
        -> tuple[list[Expr], list[Expr], list[Expr]]:
    left, right, stay = [], [], []
    for p in parts:
        refs = p.references()
        if not is_deterministic(p) or not refs:
            stay.append(p)
        elif refs <= left_ids:
            left.append(p)
        elif refs <= right_ids:
            right.append(p)
        else:
            stay.append(p)
    return left, right, stay


def push_down_predicates(plan: lp.Plan) -> lp.Plan:
    """A filter moves below Project, Join (to the side it names; never into an outer join's
    null-producing side), Aggregate (predicates on grouping columns), Window (predicates on
    the partition keys of every window), Generate (not on the generated column), Union,
    Sort, Repartition and SubqueryAlias."""
    if not isinstance(plan, lp.Filter):
        return plan
    child = plan.child
    parts = conjuncts(plan.condition)

    def rebuild(kept: list[Expr], new_child: lp.Plan) -> lp.Plan:
        return make_filter(new_child, and_all(kept)) if kept else new_child

    if isinstance(child, lp.Project):
        mapping = {e.attr_id: e.child for e in child.exprs if isinstance(e, Alias)}
        # a column computed by a UDF or a random function is not computed a second time below
        kept_above = {e.attr_id for e in child.exprs if isinstance(e, Alias) and not is_deterministic(e.child)}
        down, stay = [], []
        for p in parts:
            if is_deterministic(p) and not (p.references() & kept_above):
                down.append(substitute(p, mapping))
            else:
                stay.append(p)
        if not down:
            return plan
        return rebuild(stay, _with_children(child, [make_filter(child.child, and_all(down))]))

    if isinstance(child, lp.Join):
        left, right = child.children
        left_ids, right_ids = {a.id for a in left.output}, {a.id for a in right.output}
        to_left, to_right, stay = _split_by_side(parts, left_ids, right_ids)
        how = child.how
        if how in ("left", "semi", "anti"):
            stay += to_right
            to_right = []
        elif how == "right":
            stay += to_left
            to_left = []
        elif how == "full":
            stay += to_left + to_right
            to_left, to_right = [], []
        joined: lp.Plan = child
        if how in ("inner", "cross"):
            # a condition on both sides becomes the join's own (an equality of columns a key)
            into_join = [p for p in stay if is_deterministic(p) and p.references()
                         and p.references() <= left_ids | right_ids]
            if into_join:
                stay = [p for p in stay if not any(p is q for q in into_join)]
                joined = _with_condition(child, into_join, left_ids, right_ids)
        if not to_left and not to_right and joined is child:
            return plan
        new_left = make_filter(left, and_all(to_left)) if to_left else left
        new_right = make_filter(right, and_all(to_right)) if to_right else right
        return rebuild(stay, _with_children(joined, [new_left, new_right]))

    if isinstance(child, lp.Aggregate):
        group_ids = {g.attr.id for g in child.groups if isinstance(g, AttributeRef)}
        passthrough = {e.attr.id for e in child.aggs if isinstance(e, AttributeRef) and e.attr.id in group_ids}
        down = [p for p in parts if is_deterministic(p) and p.references() and p.references() <= passthrough]
        if not down:
            return plan
        stay = [p for p in parts if not any(p is d for d in down)]
        return rebuild(stay, _with_children(child, [make_filter(child.child, and_all(down))]))

    if isinstance(child, lp.Union):
        if not all(is_deterministic(p) for p in parts):
            return plan
        first = child.children[0].output
        new_children = []
        for c in child.children:
            mapping: dict[int, Expr] = {}
            for out_attr, a, f in zip(child.output, c.output, first):
                if a.dtype != out_attr.dtype or f.dtype != out_attr.dtype:
                    if out_attr.id in plan.condition.references():
                        return plan  # a widened column: its predicate stays above the union
                mapping[out_attr.id] = AttributeRef(a)
            new_children.append(make_filter(c, substitute(plan.condition, mapping)))
        return _with_children(child, new_children)

    from sparkctl.sql.generate import Generate
    from sparkctl.sql.window import WindowPlan
    if isinstance(child, (WindowPlan, Generate)):
        if isinstance(child, WindowPlan):
            # a partition key's predicate keeps or drops whole window partitions
            keys: set[int] | None = None
            for e in child.exprs:
                ids = {k.attr.id for k in e.child.partition if isinstance(k, AttributeRef)}
                keys = ids if keys is None else keys & ids
            allowed = keys or set()
        else:
            allowed = {a.id for a in child.children[0].output}  # not the generated column
        down = [p for p in parts if is_deterministic(p) and p.references() and p.references() <= allowed]
        if not down:
            return plan
        stay = [p for p in parts if not any(p is d for d in down)]
        return rebuild(stay, _with_children(child, [make_filter(child.children[0], and_all(down))]))

    if isinstance(child, (lp.Sort, lp.Repartition, lp.SubqueryAlias)) and is_deterministic(plan.condition):
        if isinstance(child, lp.Repartition) and not child.shuffle:
            return plan
        return _with_children(child, [make_filter(child.child, plan.condition)])
    return plan


def _with_condition(join: lp.Join, parts: list[Expr], left_ids: set[int], right_ids: set[int]) -> lp.Join:
    """*join* (inner or cross) also requiring *parts*: equalities of a left and a right column
    of one type become keys, the rest the residual; a cross join becomes an inner one."""
    new = copy.copy(join)
    new.keys = list(join.keys)
    residual = conjuncts(join.residual) if join.residual is not None else []
    for p in parts:
        pair = lp._equi_pair(p, left_ids, right_ids)
        if pair is not None and pair[0].dtype == pair[1].dtype:
            new.keys.append(pair)
        else:
            residual.append(p)
    new.residual = and_all(residual) if residual else None
    new.how = "inner"
    new._not_null_inferred = False  # new keys: their IsNotNull is inferred again
    return new


#: for each join type, which side's rows a one-sided ON condition may filter beforehand
_ON_PUSHABLE = {"inner": (True, True), "cross": (True, True), "semi": (True, True), "left": (False, True),
                "anti": (False, True), "right": (True, False)}


def push_join_condition(plan: lp.Plan) -> lp.Plan:
    """A conjunct of a join's condition that names one side only filters that side before
    the join, where that cannot turn a row into a NULL-extended one (``_ON_PUSHABLE``)."""
    if not isinstance(plan, lp.Join) or plan.residual is None or plan.how not in _ON_PUSHABLE:
        return plan
    left, right = plan.children
    left_ids, right_ids = {a.id for a in left.output}, {a.id for a in right.output}
    to_left, to_right, stay = _split_by_side(conjuncts(plan.residual), left_ids, right_ids)
    can_left, can_right = _ON_PUSHABLE[plan.how]
    if not can_left:
        stay, to_left = stay + to_left, []
    if not can_right:
        stay, to_right = stay + to_right, []
    if not to_left and not to_right:
        return plan
    new = copy.copy(plan)
    new.residual = and_all(stay) if stay else None
    new.children = (make_filter(left, and_all(to_left)) if to_left else left,
                    make_filter(right, and_all(to_right)) if to_right else right)
    return new


def infer_join_not_null(plan: lp.Plan) -> lp.Plan:
    """A row whose equi-join key is NULL never matches: ``IsNotNull`` filters on the keys of
    the sides whose unmatched rows the join drops (both sides of an inner or semi join, the
    right of a left join or an anti join, the left of a right join), once per join, as
    Spark's InferFiltersFromConstraints adds them; they are pushed into scans from there."""
    if not isinstance(plan, lp.Join) or not plan.keys or getattr(plan, "_not_null_inferred", False):
        return plan
    sides = {"inner": (True, True), "semi": (True, True), "left": (False, True), "anti": (False, True),
             "right": (True, False)}.get(plan.how)
    new = copy.copy(plan)
    new._not_null_inferred = True
    if sides is None:
        return new
    children = list(plan.children)
    for index, wanted in enumerate(sides):
        if not wanted:
            continue
        attrs = [pair[index] for pair in plan.keys]
        present = {(c.children[0].attr.id) for c in conjuncts(children[index].condition)
                   if isinstance(c, IsNull) and c.negated and isinstance(c.children[0], AttributeRef)} \
            if isinstance(children[index], lp.Filter) else set()
        checks: list[Expr] = []
        for a in attrs:
            if a.nullable and a.id not in present and all(x.children[0].attr.id != a.id for x in checks):
                checks.append(IsNull(AttributeRef(a), negated=True))
        if checks:
            children[index] = make_filter(children[index], and_all(checks))
    new.children = tuple(children)
    return new


# ---------------------------------------------------------------------------- batches
#: (name, rules, the most passes) as Catalyst's batches
BATCHES: list[tuple[str, list[Rule], int]] = [
    ("Operator Optimization", [fold_constants, prune_filters, combine_filters, collapse_projects,
                               push_down_predicates, push_join_condition, infer_join_not_null], 100),
]


def run_batch(plan: lp.Plan, rules: list[Rule], max_passes: int) -> lp.Plan:
    for _ in range(max_passes):
        before = plan
        for rule in rules:
            plan = transform_up(plan, rule)
        if plan is before:
            break
    return plan


def _optimize_cached(plan: lp.Plan) -> None:
    """The plan inside a cache is optimised once, in place (its node holds the persisted RDD,
    so every query over it must find that same node)."""
    if isinstance(plan, lp.CachedPlan):
        if not getattr(plan, "_optimized", False):
            plan.children = (optimize(plan.child),)
            plan._optimized = True
        return
    for c in plan.children:
        _optimize_cached(c)


def optimize(plan: lp.Plan) -> lp.Plan:
    _optimize_cached(plan)
    for _name, rules, passes in BATCHES:
        plan = run_batch(plan, rules, passes)
    plan = prune(plan, None)
    return push_into_scans(plan)


# ---------------------------------------------------------------------------- column pruning
def prune(plan: lp.Plan, required: set[int] | None) -> lp.Plan:
    """*plan* computing at least the attributes *required* (None: all of them)."""
    from sparkctl.sql.window import WindowPlan
    if isinstance(plan, lp.CachedPlan):
        return plan  # optimised once by itself (_optimize_cached)
    if isinstance(plan, lp.FileRelation):
        if required is None:
            return plan
        keep = [a for a in plan.output if a.id in required] or plan.output[:1]
        if len(keep) == len(plan.output):
            return plan
        new = copy.copy(plan)
        new._output = keep
        return new
    if isinstance(plan, lp.Project):
        return _with_children(plan, [prune(plan.child, _refs(plan.exprs))])
    if isinstance(plan, lp.Filter):
        need = None if required is None else required | plan.condition.references()
        return _with_children(plan, [prune(plan.child, need)])
    if isinstance(plan, lp.Aggregate):
        return _with_children(plan, [prune(plan.child, _refs(plan.groups) | _refs(plan.aggs))])
    if isinstance(plan, lp.Sort):
        need = None if required is None else required | _refs(plan.orders)
        return _with_children(plan, [prune(plan.child, need)])
    if isinstance(plan, (lp.Limit, lp.SubqueryAlias)):
        return _with_children(plan, [prune(plan.children[0], required)])
    if isinstance(plan, lp.Repartition):
        need = None if required is None else required | _refs(plan.exprs)
        return _with_children(plan, [prune(plan.child, need)])
    if isinstance(plan, lp.Join):
        left, right = plan.children
        if required is None:
            need = None
        else:
            need = set(required) | {a.id for pair in plan.keys for a in pair}
            if plan.residual is not None:
                need |= plan.residual.references()
            if plan.how in ("semi", "anti"):
                need |= {a.id for a in right.output} if plan.residual is None else set()
        # the join's output is computed from its children's columns: keep their order stable
        lneed = None if need is None else {a.id for a in left.output if a.id in need}
        rneed = None if need is None else {a.id for a in right.output if a.id in need}
        new_left, new_right = prune(left, lneed), prune(right, rneed)
        if new_left is left and new_right is right:
            return plan
        new = copy.copy(plan)
        new.children = (new_left, new_right)
        out_ids = {a.id for a in new_left.output} | {a.id for a in new_right.output}
        if plan.how == "full" and plan.using:
            out_ids |= {plan.full_key_id(la) for la, _ in plan.keys}
        new._output = [a for a in plan.output if a.id in out_ids]
        return new
    if isinstance(plan, WindowPlan):
        need = None
        if required is not None:
            produced = {e.attr_id for e in plan.exprs}
            need = (required - produced) | _refs(e.child for e in plan.exprs)
        new = _with_children(plan, [prune(plan.child, need)])
        if new is not plan:
            new._output = list(new.children[0].output) + plan.output[len(plan.child.output):]
        return new
    # union (by position), cached plans and leaves keep every column
    return _with_children(plan, [prune(c, None) for c in plan.children])
