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

Rules live by kind: ``folding`` (simplify in place), ``pushdown`` (move filters toward the
scans), ``pruning`` (columns), over the tree helpers of ``trees``; this module runs them.

A rewrite never changes a result: a predicate moves only where every row it would remove
is a row the original plan removes too (never into the null-producing side of an outer
join, never past a limit or a non-deterministic expression), and an expression is folded
only when it has no column, is deterministic and evaluates without error (a division by
zero stays in the plan and fails at run time, as it would have).
"""
from __future__ import annotations

from sparkctl.sql import plan as lp
from sparkctl.sql.optimizer.folding import (collapse_projects, combine_filters, fold_constants, optimize_expr,
                                            prune_filters)
from sparkctl.sql.optimizer.pruning import prune
from sparkctl.sql.optimizer.pushdown import infer_join_not_null, push_down_predicates, push_join_condition
from sparkctl.sql.optimizer.trees import (NONDETERMINISTIC, Rule, _with_children, and_all, conjuncts,
                                          is_deterministic, make_filter, substitute, transform_expr, transform_up)
from sparkctl.sql.scan import push_into_scans


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


__all__ = ["BATCHES", "NONDETERMINISTIC", "Rule", "_with_children", "and_all", "collapse_projects", "combine_filters",
           "conjuncts", "fold_constants", "infer_join_not_null", "is_deterministic", "make_filter", "optimize",
           "optimize_expr", "prune", "prune_filters", "push_down_predicates", "push_into_scans",
           "push_join_condition", "run_batch", "substitute", "transform_expr", "transform_up"]
