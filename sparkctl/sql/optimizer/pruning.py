"""Column pruning: every node asks its children only for the attributes it uses, so a file
scan reads only the columns the query needs."""
from __future__ import annotations

import copy

from sparkctl.sql import plan as lp
from sparkctl.sql.optimizer.trees import _refs, _with_children


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
        joined = copy.copy(plan)
        joined.children = (new_left, new_right)
        out_ids = {a.id for a in new_left.output} | {a.id for a in new_right.output}
        if plan.how == "full" and plan.using:
            out_ids |= {plan.full_key_id(la) for la, _ in plan.keys}
        joined._output = [a for a in plan.output if a.id in out_ids]
        return joined
    if isinstance(plan, WindowPlan):
        need = None
        if required is not None:
            produced = {e.attr_id for e in plan.exprs}
            need = (required - produced) | _refs(e.child for e in plan.exprs)
        windowed = _with_children(plan, [prune(plan.child, need)])
        if windowed is not plan:
            windowed._output = list(  # type: ignore[attr-defined]
                windowed.children[0].output) + plan.output[len(plan.child.output):]
        return windowed
    # union (by position), cached plans and leaves keep every column
    return _with_children(plan, [prune(c, None) for c in plan.children])
