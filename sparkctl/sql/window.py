"""Window functions: ``Window.partitionBy(..).orderBy(..)``, ``F.row_number().over(w)``...

A window is computed as Spark computes it: rows are exchanged by the partition keys, each
task sorts its rows by (partition keys, order keys), and every function is computed over
the sorted columns with numpy: positions within each partition for ``row_number``, peer
groups (rows with equal order keys) for ``rank`` and ``dense_rank`` and for the default
frame of an ordered aggregate (``RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW``: a
row sees its peers too), shifted indices for ``lag`` and ``lead``.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.errors import AnalysisException, NotSupportedError
from sparkctl.sql import float_ordering, plan as lp
from sparkctl.sql.builtins import AggregateFunc
from sparkctl.sql.expressions import Alias, Attribute, AttributeRef, Expr, Literal, SortOrder, _coerce, as_array
from sparkctl.sql.window_frames import (CURRENT_ROW, UNBOUNDED_FOLLOWING, UNBOUNDED_PRECEDING, Partitions,
                                        aggregate_over_frame, frame_bounds, frame_sql, normal_bound, nth_value)



class WindowSpec:
    def __init__(self, partition: Sequence[Expr] = (), order: Sequence[Expr] = (),
                 frame: tuple[str, int, int] | None = None) -> None:
        self.partition = list(partition)
        self.order = list(order)
        self.frame = frame

    def partitionBy(self, *cols: Any) -> "WindowSpec":
        return WindowSpec(_exprs(cols), self.order, self.frame)

    def orderBy(self, *cols: Any) -> "WindowSpec":
        return WindowSpec(self.partition, _exprs(cols), self.frame)

    def rowsBetween(self, start: int, end: int) -> "WindowSpec":
        return WindowSpec(self.partition, self.order, ("rows", normal_bound(start), normal_bound(end)))

    def rangeBetween(self, start: int, end: int) -> "WindowSpec":
        return WindowSpec(self.partition, self.order, ("range", normal_bound(start), normal_bound(end)))

    def sql(self) -> str:
        parts = []
        if self.partition:
            parts.append("PARTITION BY " + ", ".join(e.sql() for e in self.partition))
        if self.order:
            parts.append("ORDER BY " + ", ".join((o if isinstance(o, SortOrder) else SortOrder(o)).sql()
                                                 for o in self.order))
        return " ".join(parts)


def _exprs(cols: Sequence[Any]) -> list[Expr]:
    from sparkctl.sql.column import Column, col_expr
    if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
        cols = tuple(cols[0])
    return [c._expr if isinstance(c, Column) else col_expr(c) for c in cols]


class Window:
    unboundedPreceding = UNBOUNDED_PRECEDING
    unboundedFollowing = UNBOUNDED_FOLLOWING
    currentRow = CURRENT_ROW

    @staticmethod
    def partitionBy(*cols: Any) -> WindowSpec:
        return WindowSpec().partitionBy(*cols)

    @staticmethod
    def orderBy(*cols: Any) -> WindowSpec:
        return WindowSpec().orderBy(*cols)

    @staticmethod
    def rowsBetween(start: int, end: int) -> WindowSpec:
        return WindowSpec().rowsBetween(start, end)

    @staticmethod
    def rangeBetween(start: int, end: int) -> WindowSpec:
        return WindowSpec().rangeBetween(start, end)


RANKING = {"row_number", "rank", "dense_rank", "percent_rank", "ntile", "cume_dist"}
OFFSET = {"lag", "lead"}


class WindowFunction(Expr):
    """A ranking or offset function before ``.over()``: row_number(), lag(col, 1)..."""

    def __init__(self, name: str, args: Sequence[Expr] = ()) -> None:
        self.name = name
        self.children = tuple(args)

    @property
    def dtype(self) -> pa.DataType:
        if self.name in ("row_number", "rank", "dense_rank", "ntile"):
            return pa.int32()
        if self.name in ("percent_rank", "cume_dist"):
            return pa.float64()
        return self.children[0].dtype

    @property
    def nullable(self) -> bool:
        return self.name not in RANKING

    def eval(self, table: pa.Table) -> Any:
        raise AnalysisException(f"[WINDOW_FUNCTION_WITHOUT_OVER_CLAUSE] Window function \"{self.sql()}\" requires an "
                                f"OVER clause.", error_class="WINDOW_FUNCTION_WITHOUT_OVER_CLAUSE")

    def sql(self) -> str:
        args = [c.sql() for c in self.children]
        if self.name in OFFSET and len(args) == 2:
            args.append("NULL")
        if self.name == "nth_value":
            args = args[:2]
        name = self.name.upper() if self.name in ("rank", "dense_rank", "percent_rank") else self.name
        return f"{name}({', '.join(args)})"


class WindowExpr(Expr):
    """``function OVER (spec)``: children are the function, then the partition and order expressions."""

    def __init__(self, function: Expr, spec: WindowSpec) -> None:
        if not isinstance(function, (WindowFunction, AggregateFunc)):
            raise AnalysisException(f"[UNSUPPORTED_EXPR_FOR_WINDOW] Expression \"{function.sql()}\" not supported "
                                    f"within a window function.", error_class="UNSUPPORTED_EXPR_FOR_WINDOW")
        orders = [o if isinstance(o, SortOrder) else SortOrder(o) for o in spec.order]
        if isinstance(function, WindowFunction) and function.name in RANKING | OFFSET and not orders:
            raise AnalysisException(f"[WINDOW_FUNCTION_WITHOUT_ORDER] Window function {function.name} requires window"
                                    f" to be ordered, please add ORDER BY clause.", error_class="WINDOW_FUNCTION_WITHOUT_ORDER")
        self.children = (function, *spec.partition, *orders)
        self.n_partition = len(spec.partition)
        self.frame = spec.frame

    @property
    def function(self) -> Expr:
        return self.children[0]

    @property
    def partition(self) -> list[Expr]:
        return list(self.children[1:1 + self.n_partition])

    @property
    def orders(self) -> list[SortOrder]:
        return list(self.children[1 + self.n_partition:])  # type: ignore[arg-type]

    @property
    def dtype(self) -> pa.DataType:
        return self.function.dtype

    @property
    def nullable(self) -> bool:
        return self.function.nullable

    def eval(self, table: pa.Table) -> Any:
        raise AnalysisException("a window expression is computed by its Window plan")

    def spec_key(self) -> str:
        return "|".join(e.sql() for e in self.children[1:]) + f"|{self.frame}"

    def sql(self) -> str:
        spec = WindowSpec(self.partition, self.orders)
        frame = ""
        if self.frame is not None:
            frame = " " + frame_sql(self.frame)
        elif isinstance(self.function, WindowFunction) and self.function.name in ("cume_dist", "nth_value"):
            frame = " RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
        else:
            frame = (" RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW" if self.orders
                     else " ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING")
            if isinstance(self.function, WindowFunction):
                frame = " ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
                if self.function.name in OFFSET:
                    offset = self.function.children[1].sql() if len(self.function.children) > 1 else "1"
                    offset = f"-{offset}" if self.function.name == "lag" else offset
                    frame = f" ROWS BETWEEN {offset} FOLLOWING AND {offset} FOLLOWING"
        return f"{self.function.sql()} OVER ({spec.sql()}{frame})"


def contains_window(e: Expr) -> bool:
    return any(isinstance(x, WindowExpr) for x in e.walk())


class WindowPlan(lp.Plan):
    """The child's columns plus one column per window expression (all of one spec)."""

    def __init__(self, child: lp.Plan, exprs: list[Alias]) -> None:
        self.children = (child,)
        self.exprs = exprs
        self._output = list(child.output) + [Attribute(e.name, e.dtype, e.nullable, e.attr_id) for e in exprs]

    @property
    def child(self) -> lp.Plan:
        return self.children[0]

    @property
    def output(self) -> list[Attribute]:
        return self._output

    def node_string(self) -> str:
        return f"Window [{', '.join(e.child.sql() for e in self.exprs)}]"


def plan_windows(child: lp.Plan, exprs: list[Expr]) -> tuple[lp.Plan, list[Expr]]:
    """Window nodes under a projection: each distinct window expression becomes a column of
    a WindowPlan (one per spec), and the projection reads those columns."""
    scope = child.scope()
    resolved = [e.resolve(scope) for e in lp.expand_stars(exprs, scope)]
    found: dict[str, WindowExpr] = {}
    for e in resolved:
        if isinstance(e, Expr):
            for node in e.walk():
                if isinstance(node, WindowExpr):
                    found.setdefault(node.sql() + node.spec_key(), node)
    by_spec: dict[str, list[Alias]] = {}
    replacement: dict[int, Attribute] = {}
    for key, node in found.items():
        alias = Alias(node, node.sql())
        by_spec.setdefault(node.spec_key(), []).append(alias)
        replacement[id(node)] = Attribute(alias.name, alias.dtype, alias.nullable, alias.attr_id)
    plan = child
    for aliases in by_spec.values():
        plan = WindowPlan(plan, aliases)
    keyed = {node.sql() + node.spec_key(): replacement[id(node)] for node in found.values()}

    def swap(e: Expr) -> Expr:
        if isinstance(e, WindowExpr):
            return AttributeRef(keyed[e.sql() + e.spec_key()])
        if not e.children:
            return e
        return e.with_children([swap(c) for c in e.children])
    return plan, [swap(e) for e in resolved]


# ---------------------------------------------------------------------------- execution
def window_rdd(planner: Any, plan: WindowPlan) -> Any:
    child = planner.execute(plan.child)
    first = plan.exprs[0].child
    assert isinstance(first, WindowExpr)
    keys = [f"__wp{i}" for i in range(first.n_partition)]
    partition_exprs = first.partition

    def add_keys(tables: Iterator[pa.Table]) -> Iterator[pa.Table]:
        for t in tables:
            for name, e in zip(keys, partition_exprs):
                t = t.append_column(name, as_array(e.eval(t), t.num_rows))
            yield t
    n = planner.shuffle_partitions if keys else 1
    shuffled = planner.exchange(child.mapPartitions(add_keys), keys, n, [])
    return shuffled.mapPartitions(partial(_compute, plan=plan, keys=keys))


def _boundaries(columns: list[Any], n: int) -> np.ndarray:
    """True where a row starts a new run of equal values (over all *columns*)."""
    starts = np.zeros(n, dtype=bool)
    if n:
        starts[0] = True
    for c in columns:
        arr = c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c
        if n <= 1:
            continue
        a, b = arr.slice(1), arr.slice(0, n - 1)
        eq = pc.fill_null(float_ordering.compare("=", a, b, a.type), False)
        both_null = pc.and_(pc.is_null(a), pc.is_null(b))
        same = pc.or_(eq, both_null).to_numpy(zero_copy_only=False)
        starts[1:] |= ~same
    return starts


def _compute(tables: Iterator[pa.Table], plan: WindowPlan, keys: list[str]) -> Iterator[pa.Table]:
    from sparkctl.sql.execution import concat, sort_table
    table = concat(list(tables), [])
    if table.num_rows == 0:
        return
    spec = plan.exprs[0].child
    assert isinstance(spec, WindowExpr)
    key_orders = []
    for k in keys:
        key_orders.append(SortOrder(_Col(k), True, True))
    table = sort_table(table, key_orders + spec.orders)
    n = table.num_rows
    group_start = _boundaries([table.column(k) for k in keys], n)
    order_values = [as_array(o.child.eval(table), n) for o in spec.orders]
    peer_start = group_start | _boundaries(order_values, n)
    gid = np.cumsum(group_start) - 1
    gstart_idx = np.flatnonzero(group_start)
    idx = np.arange(n)
    pos = idx - gstart_idx[gid]
    for alias in plan.exprs:
        w = alias.child
        assert isinstance(w, WindowExpr)
        value = _function(w, table, n, gid, gstart_idx, pos, peer_start)
        if value.type != alias.dtype and not pa.types.is_null(value.type):
            value = _coerce(value, value.type, alias.dtype)
        table = table.append_column(f"_{alias.attr_id}", value)
    yield table.select([a.column for a in plan.output])


def _constant(f: WindowFunction, i: int) -> Any:
    """The value of argument ``i`` of window function ``f``, which must be a literal (as
    Spark asks of an offset, a bucket count or an ignore-nulls flag)."""
    arg = f.children[i]
    if not isinstance(arg, Literal):
        raise AnalysisException(f"[DATATYPE_MISMATCH.NON_FOLDABLE_INPUT] sparkctl's `{f.name}` needs a literal "
                                f"for its argument {arg.sql()}.", error_class="DATATYPE_MISMATCH.NON_FOLDABLE_INPUT")
    return arg.value


class _Col(Expr):
    def __init__(self, name: str) -> None:
        self.name = name

    def eval(self, table: pa.Table) -> Any:
        return table.column(self.name)

    def sql(self) -> str:
        return self.name


def _peer_end(peer_start: np.ndarray) -> np.ndarray:
    """For each row, the index of the last row of its peer group."""
    n = len(peer_start)
    starts = np.flatnonzero(peer_start)
    ends = np.append(starts[1:], n) - 1
    peer_id = np.cumsum(peer_start) - 1
    return ends[peer_id]


def _function(w: WindowExpr, table: pa.Table, n: int, gid: np.ndarray, gstart: np.ndarray, pos: np.ndarray,
              peer_start: np.ndarray) -> pa.Array:
    f = w.function
    if isinstance(f, WindowFunction):
        name = f.name
        if name == "row_number":
            return pa.array((pos + 1).astype(np.int32))
        if name in ("rank", "dense_rank", "percent_rank"):
            peer_idx = np.maximum.accumulate(np.where(peer_start, np.arange(n), 0))
            rank = peer_idx - gstart[gid] + 1
            if name == "dense_rank":
                dense = np.cumsum(peer_start)
                rank = dense - dense[gstart[gid]] + 1
            if name == "percent_rank":
                sizes = np.bincount(gid)[gid]
                return pa.array(np.where(sizes > 1, (rank - 1) / np.maximum(sizes - 1, 1), 0.0))
            return pa.array(rank.astype(np.int32))
        if name in OFFSET:
            offset = int(_constant(f, 1)) if len(f.children) > 1 else 1
            default = f.children[2] if len(f.children) > 2 else None
            values = as_array(f.children[0].eval(table), n)
            src = pos - offset if name == "lag" else pos + offset
            sizes = np.bincount(gid)[gid]
            inside = (src >= 0) & (src < sizes)
            take = np.where(inside, gstart[gid] + src, 0)
            out = values.take(pa.array(take, mask=~inside))
            if default is not None:
                out = pc.if_else(pa.array(inside), out, _coerce(default.eval(table), default.dtype, values.type))
            return out
        parts = Partitions(gid, gstart, peer_start)
        if name == "cume_dist":
            return pa.array((parts.peer_stop - parts.start) / (parts.end - parts.start))
        if name == "ntile":
            buckets = int(_constant(f, 0))
            size = parts.end - parts.start
            q, r = size // buckets, size % buckets
            big = r * (q + 1)
            tile = np.where(pos < big, pos // (q + 1), r + (pos - big) // np.maximum(q, 1)) + 1
            return pa.array(tile.astype(np.int32))
        if name == "nth_value":
            start, end = frame_bounds(w, table, parts)
            nth = int(_constant(f, 1))
            ignore = bool(_constant(f, 2)) if len(f.children) > 2 else False
            return nth_value(as_array(f.children[0].eval(table), n), nth, ignore, start, end)
        raise NotSupportedError(f"sparkctl does not compute the window function {name} yet")
    assert isinstance(f, AggregateFunc)
    return _aggregate_over(w, f, table, n, Partitions(gid, gstart, peer_start))


def _aggregate_over(w: WindowExpr, f: AggregateFunc, table: pa.Table, n: int, parts: Partitions) -> pa.Array:
    values = as_array(f.child.eval(table), n) if f.child is not None else pa.array(np.ones(n, np.int64))
    start, end = frame_bounds(w, table, parts)
    return aggregate_over_frame(f, values, start, end, parts)
