"""Joins as Spark's shuffled hash join: both sides exchanged by their keys into the same
partitions, then joined per partition with pyarrow's hash join (a grace hash join through
spill files when a partition passes the task's memory budget).

Every join type runs through one path: the inner join of the keys gives the matching
(left row, right row) pairs, a residual (non-equality) condition filters them, and outer,
semi and anti joins add or keep rows by which ones found a partner, so a condition that
is not an equality still means what it means in SQL. NULL keys never match. A cross join
(no keys) broadcasts its right side to every partition of the left, and so does an
equi-join whose other side is small: which way a join runs is ``strategies.choose_join``'s
choice, the one ``explain`` prints.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.sql import plan as lp
from sparkctl.sql.expressions import Attribute, _coerce, as_array, common_type
from sparkctl.sql.array_keys import join_key

_LEFT, _RIGHT = "__left_row", "__right_row"


def join_rdd(planner: Any, plan: lp.Join) -> Any:
    left_plan, right_plan = plan.children
    left, right = planner.execute(left_plan), planner.execute(right_plan)
    strategy = planner.join_strategy(plan)  # strategies.choose_join: explain prints the same choice
    if strategy.broadcast and strategy.build_side == "right":
        right_table = _collect(right, right_plan.output)
        key_cols = [f"__jk{i}" for i in range(len(plan.keys))]
        if plan.keys:
            right_table = _append_keys(right_table, [ra for _, ra in plan.keys], plan, key_cols)
        shared = planner.sc.broadcast(right_table)
        return left.mapPartitions(partial(_join_broadcast, shared=shared, plan=plan, key_cols=key_cols))
    if strategy.broadcast:
        # the small side is on the left of an inner join: broadcast it instead, as Spark does
        key_cols = [f"__jk{i}" for i in range(len(plan.keys))]
        left_table = _append_keys(_collect(left, left_plan.output), [la for la, _ in plan.keys], plan, key_cols)
        shared = planner.sc.broadcast(left_table)
        return right.mapPartitions(partial(_join_broadcast_left, shared=shared, plan=plan, key_cols=key_cols))
    key_types = [common_type(la.dtype, ra.dtype) for la, ra in plan.keys]
    n = strategy.partitions
    lkeys = [f"__jk{i}" for i in range(len(plan.keys))]

    def tag(side: str, keys: list[Attribute]) -> Any:
        def run(tables: Iterator[pa.Table]) -> Iterator[tuple[str, pa.Table]]:
            for t in tables:
                for name, attr, typ in zip(lkeys, keys, key_types):
                    t = t.append_column(name, join_key(_coerce(t.column(attr.column), attr.dtype, typ)))
                yield side, t
        return run

    from sparkctl.sql.exchange import partition_ids, shuffle, split_by

    def cut(pairs: Iterator[tuple[str, pa.Table]]) -> Iterator[tuple[int, tuple[str, pa.Table]]]:
        for side, t in pairs:
            for p, part in split_by(t, partition_ids(t, lkeys, n), n):
                yield p, (side, part)

    tagged = planner.sc.union([left.mapPartitions(tag("L", [la for la, _ in plan.keys])),
                               right.mapPartitions(tag("R", [ra for _, ra in plan.keys]))])
    shuffled = shuffle(tagged.mapPartitions(cut), n)
    return shuffled.mapPartitions(partial(_join_partition, plan=plan, key_cols=lkeys))


def _collect(rdd: Any, attrs: list[Attribute]) -> pa.Table:
    from sparkctl.sql.execution import concat
    return concat(rdd.collect(), attrs)


def _join_partition(items: Iterator[tuple[str, pa.Table]], plan: lp.Join,
                    key_cols: list[str]) -> Iterator[pa.Table]:
    """One reduce partition of a shuffled join: both sides' rows joined in memory, or, past
    the task's memory budget, as a grace hash join (both sides spilled by a second hash of
    the keys, joined one pair of spill files at a time; see ``spill.paired_in_budget``).
    Every key's rows of both sides meet in one pair, so outer, semi and anti joins hold."""
    from sparkctl.sql.exchange import counted
    from sparkctl.sql.execution import concat
    from sparkctl.sql.spill import paired_in_budget
    left_plan, right_plan = plan.children

    def run(lefts: list[pa.Table], rights: list[pa.Table]) -> Iterator[pa.Table]:
        # an empty side has no key columns: join_tables then finds no pairs
        out = join_tables(concat(lefts, left_plan.output), concat(rights, right_plan.output), plan, key_cols)
        if out.num_rows:
            yield out
    yield from paired_in_budget(counted(items), key_cols, run)


def _join_broadcast_left(tables: Iterator[pa.Table], shared: Any, plan: lp.Join,
                         key_cols: list[str]) -> Iterator[pa.Table]:
    small = shared.value
    for right in tables:
        out = join_tables(small, _append_keys(right, [ra for _, ra in plan.keys], plan, key_cols), plan, key_cols)
        if out.num_rows:
            yield out


def _append_keys(table: pa.Table, attrs: list[Attribute], plan: lp.Join, key_cols: list[str]) -> pa.Table:
    """The join key columns, cast to the type both sides compare in."""
    for name, attr, (la, ra) in zip(key_cols, attrs, plan.keys):
        table = table.append_column(name, join_key(_coerce(table.column(attr.column), attr.dtype,
                                                            common_type(la.dtype, ra.dtype))))
    return table


def _join_broadcast(tables: Iterator[pa.Table], shared: Any, plan: lp.Join, key_cols: list[str]) -> Iterator[pa.Table]:
    right = shared.value
    for left in tables:
        if key_cols:
            left = _append_keys(left, [la for la, _ in plan.keys], plan, key_cols)
        out = join_tables(left, right, plan, key_cols)
        if out.num_rows:
            yield out


def join_tables(left: pa.Table, right: pa.Table, plan: lp.Join, key_cols: list[str]) -> pa.Table:
    """The join of one partition's left and right rows, in the plan's output columns."""
    ln, rn = left.num_rows, right.num_rows
    li = left.append_column(_LEFT, pa.array(np.arange(ln, dtype=np.int64)))
    ri = right.append_column(_RIGHT, pa.array(np.arange(rn, dtype=np.int64)))
    if key_cols and ln and rn and all(k in li.column_names and k in ri.column_names for k in key_cols):
        lk = li.select(key_cols + [_LEFT])
        rk = ri.select(key_cols + [_RIGHT])
        pairs = lk.join(rk, key_cols, join_type="inner", use_threads=False, coalesce_keys=True)
        lidx = pairs.column(_LEFT).to_numpy()
        ridx = pairs.column(_RIGHT).to_numpy()
    elif not key_cols and ln and rn:
        lidx = np.repeat(np.arange(ln, dtype=np.int64), rn)
        ridx = np.tile(np.arange(rn, dtype=np.int64), ln)
    else:
        lidx = ridx = np.zeros(0, dtype=np.int64)
    left_data = left.drop_columns([c for c in key_cols if c in left.column_names])
    right_data = right.drop_columns([c for c in key_cols if c in right.column_names])
    if plan.residual is not None and len(lidx):
        both = _combine(left_data.take(pa.array(lidx)), right_data.take(pa.array(ridx)))
        keep = pc.fill_null(as_array(plan.residual.eval(both), both.num_rows), False).to_numpy(zero_copy_only=False)
        lidx, ridx = lidx[keep], ridx[keep]
    how = plan.how
    if how == "semi":
        return left_data.take(pa.array(np.unique(lidx)))
    if how == "anti":
        mask = np.ones(ln, dtype=bool)
        mask[lidx] = False
        return left_data.filter(pa.array(mask))
    pieces = [(lidx, ridx)]
    if how in ("left", "full"):
        unmatched = np.setdiff1d(np.arange(ln, dtype=np.int64), lidx)
        pieces.append((unmatched, np.full(len(unmatched), -1, dtype=np.int64)))
    if how in ("right", "full"):
        unmatched = np.setdiff1d(np.arange(rn, dtype=np.int64), ridx)
        pieces.append((np.full(len(unmatched), -1, dtype=np.int64), unmatched))
    all_l = np.concatenate([p[0] for p in pieces])
    all_r = np.concatenate([p[1] for p in pieces])
    joined = _combine(_take_or_null(left_data, all_l), _take_or_null(right_data, all_r))
    return _output(joined, plan)


def _take_or_null(table: pa.Table, idx: np.ndarray) -> pa.Table:
    """Rows at *idx*; -1 gives a row of NULLs."""
    missing = idx < 0
    if not missing.any():
        return table.take(pa.array(idx))
    indices = pa.array(np.where(missing, 0, idx), mask=missing)
    return table.take(indices)


def _combine(left: pa.Table, right: pa.Table) -> pa.Table:
    columns = {name: left.column(name) for name in left.column_names}
    columns.update({name: right.column(name) for name in right.column_names})
    return pa.table(columns)


def _output(joined: pa.Table, plan: lp.Join) -> pa.Table:
    cols = {}
    for a in plan.output:
        if a.column in joined.column_names:
            value = joined.column(a.column)
        else:  # a FULL OUTER USING key: the left key, else the right one
            la, ra = next((la, ra) for la, ra in plan.keys if plan.full_key_id(la) == a.id)
            value = pc.coalesce(_coerce(joined.column(la.column), la.dtype, a.dtype),
                                _coerce(joined.column(ra.column), ra.dtype, a.dtype))
        if value.type != a.dtype:
            value = _coerce(value, value.type, a.dtype)
        cols[a.column] = value
    return pa.table(cols)
