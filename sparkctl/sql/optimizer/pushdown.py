"""Predicate pushdown: filters moved toward the scans, through every operator that keeps
the rows they remove out of the result anyway, into join conditions, and the IsNotNull
filters implied by equi-join keys."""
from __future__ import annotations

import copy

from sparkctl.sql import plan as lp
from sparkctl.sql.expressions import Alias, AttributeRef, Expr, IsNull
from sparkctl.sql.optimizer.trees import (_with_children, and_all, conjuncts, is_deterministic, make_filter,
                                          substitute)


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
        new_children: list[lp.Plan] = []
        for c in child.children:
            by_position: dict[int, Expr] = {}
            for out_attr, a, f in zip(child.output, c.output, first):
                if a.dtype != out_attr.dtype or f.dtype != out_attr.dtype:
                    if out_attr.id in plan.condition.references():
                        return plan  # a widened column: its predicate stays above the union
                by_position[out_attr.id] = AttributeRef(a)
            new_children.append(make_filter(c, substitute(plan.condition, by_position)))
        return _with_children(child, new_children)

    from sparkctl.sql.generate import Generate
    from sparkctl.sql.window import WindowPlan
    if isinstance(child, (WindowPlan, Generate)):
        if isinstance(child, WindowPlan):
            # a partition key's predicate keeps or drops whole window partitions
            keys: set[int] | None = None
            for e in child.exprs:
                ids = {k.attr.id for k in e.child.partition if isinstance(k, AttributeRef)}  # type: ignore[attr-defined]
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
        side = children[index]
        present = {c.children[0].attr.id for c in conjuncts(side.condition)
                   if isinstance(c, IsNull) and c.negated and isinstance(c.children[0], AttributeRef)} \
            if isinstance(side, lp.Filter) else set()
        checks: list[Expr] = []
        for a in attrs:
            if a.nullable and a.id not in present and a.id not in {x.references().pop() for x in checks}:
                checks.append(IsNull(AttributeRef(a), negated=True))
        if checks:
            children[index] = make_filter(children[index], and_all(checks))
    new.children = tuple(children)
    return new
