"""The physical planner's choices, each made in one place (Spark's ``SparkStrategies``).

How a join runs (which side is broadcast, or a shuffle of both), whether an aggregate
merges partials or runs in one phase, how many partitions a global sort gathers into and
whether a limit needs an exchange: ``execution.Planner`` asks these functions, builds its
RDDs from the record it gets back, and ``explain`` prints the very same record, so what
``df.explain()`` shows is what runs:

    optimised plan ──▶ Planner.join_strategy / aggregate_strategy / sort_strategy / limit_strategy
                          │  JoinStrategy, AggregateStrategy, SortStrategy, LimitStrategy
                          ├──▶ join_rdd, aggregate_rdd, Planner._Sort, Planner._Limit: run it
                          └──▶ explain: prints it

The functions take plain values (a threshold, a number of partitions), so they are tested
without a session.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from sparkctl.sql import plan as lp

#: Spark's spark.sql.autoBroadcastJoinThreshold default: a right side estimated smaller is broadcast
BROADCAST_THRESHOLD = 10 * 1024 * 1024

BROADCAST_HASH: Final = "BroadcastHashJoin"
BROADCAST_NESTED_LOOP: Final = "BroadcastNestedLoopJoin"
SHUFFLED_HASH: Final = "ShuffledHashJoin"


def estimated_size(plan: lp.Plan) -> float:
    """An upper bound of a plan's output in bytes, where one is known (else infinity)."""
    if isinstance(plan, lp.LocalRelation):
        return float(plan.table.nbytes)
    if isinstance(plan, lp.FileRelation):
        # the bytes of the columns read, times 3 for files that grow in memory (compressed, columnar)
        on_disk = float(sum(s.length for s in plan.scan.splits))
        return on_disk * len(plan.output) / max(1, len(plan.scan.schema)) * 3
    if isinstance(plan, (lp.Filter, lp.Project, lp.SubqueryAlias, lp.Limit, lp.Sort)):
        return estimated_size(plan.children[0])
    return float("inf")


def broadcast_threshold(conf: Any) -> float:
    """spark.sql.autoBroadcastJoinThreshold in bytes (a size such as ``10m`` or a number);
    -1 (any negative value) turns broadcasting off."""
    value = conf.get("spark.sql.autoBroadcastJoinThreshold", None)
    if value is None:
        return BROADCAST_THRESHOLD
    from sparkctl.settings import Size
    number = int(Size().parse(str(value))) if not str(value).lstrip("-").isdigit() else int(value)
    return -1 if number < 0 else number


# ---------------------------------------------------------------------------- join
@dataclass(frozen=True)
class JoinStrategy:
    """How a join runs: Spark's operator, the build side (the side broadcast to every
    partition of the other, or hashed per partition of a shuffled join) and, for a shuffled
    join, the partitions both sides are exchanged into (0 when nothing is shuffled)."""

    operator: Literal["BroadcastHashJoin", "BroadcastNestedLoopJoin", "ShuffledHashJoin"]
    build_side: Literal["left", "right"]
    partitions: int = 0

    @property
    def broadcast(self) -> bool:
        return self.operator != SHUFFLED_HASH


def choose_join(plan: lp.Join, threshold: float, partitions: int) -> JoinStrategy:
    """Spark's JoinSelection as sparkctl runs joins. A join without keys (a cross join)
    broadcasts its right side. An equi-join broadcasts its right side when that is estimated
    within *threshold* bytes and the join keeps no unmatched right rows (inner, left, semi,
    anti); else the left side of an inner join when that one is small; else both sides are
    shuffled by the keys into *partitions* partitions. A negative threshold broadcasts no
    equi-join."""
    if plan.how == "cross" or not plan.keys:
        return JoinStrategy(BROADCAST_NESTED_LOOP, "right")
    left, right = plan.children
    if threshold >= 0:
        if plan.how in ("inner", "left", "semi", "anti") and estimated_size(right) <= threshold:
            return JoinStrategy(BROADCAST_HASH, "right")
        if plan.how == "inner" and estimated_size(left) <= threshold:
            return JoinStrategy(BROADCAST_HASH, "left")
    return JoinStrategy(SHUFFLED_HASH, "right", partitions)


# ---------------------------------------------------------------------------- aggregate
@dataclass(frozen=True)
class AggregateStrategy:
    """How an aggregate runs: partial aggregates in the map tasks merged after the exchange
    (``two_phase``), or every input row exchanged and aggregated once; the exchange's
    partitions (one for a global aggregate, which has no grouping keys).

    ``distinct_arguments`` (the DISTINCT aggregates' one argument list, when there is one and
    every other aggregate merges from partials) plans Spark's rewrite of a DISTINCT aggregate:
    partial aggregates by (group keys, distinct arguments), exchanged into
    ``distinct_partitions`` by those and merged, so each (group, distinct value) is one row in
    one task; then partial aggregates by the group keys (the distinct values counted or summed
    as they are), exchanged and merged as in two phases."""

    two_phase: bool
    partitions: int
    distinct_arguments: tuple[Any, ...] = ()
    distinct_partitions: int = 0


def choose_aggregate(plan: lp.Aggregate, partitions: int) -> AggregateStrategy:
    """Two phases when every aggregate function of the query merges from partials; Spark's
    rewrite when the others do and the DISTINCT ones share their arguments; else one phase."""
    from sparkctl.sql.aggregation import aggregate_calls, distinct_arguments, mergeable
    calls = aggregate_calls(plan)
    two_phase = all(mergeable(call) for call in calls)
    arguments = () if two_phase else distinct_arguments(calls)
    return AggregateStrategy(two_phase, partitions if plan.groups else 1, arguments,
                             partitions if arguments else 0)


# ---------------------------------------------------------------------------- sort and limit
@dataclass(frozen=True)
class SortStrategy:
    """A global sort: every row exchanged into ``partitions`` partitions and sorted there.
    sparkctl gathers into one (where Spark range-partitions), so its output is in order."""

    partitions: int


def choose_sort(plan: lp.Sort) -> SortStrategy:
    return SortStrategy(partitions=1)


@dataclass(frozen=True)
class LimitStrategy:
    """A global limit: ``gather`` when the local limits' rows must first be exchanged into
    one partition; not over an input that is one partition already (a global sort's)."""

    gather: bool


def choose_limit(plan: lp.Limit) -> LimitStrategy:
    child = plan.child
    one_partition = isinstance(child, lp.Sort) and choose_sort(child).partitions == 1
    return LimitStrategy(gather=not one_partition)
