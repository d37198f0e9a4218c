"""GROUP BY as Spark runs it: a partial aggregate in each map task, an exchange by the
group keys, the final merge in each reduce task (pyarrow's hash aggregation both times).

DISTINCT aggregates (count, sum, avg) over one argument list, beside aggregates that merge,
run as Spark rewrites them (``strategies.choose_aggregate`` decides, explain prints it):

    rows ─▶ partials by (keys, x) ─▶ Exchange(keys, x) ─▶ merged: one row per (keys, x)
         ─▶ partials by keys (x counted, summed) ─▶ Exchange(keys) ─▶ final merge

Other aggregates that cannot be merged from partials (DISTINCT ones of different arguments,
collect_list, standard deviations, first/last) are computed in one phase after the exchange
instead: every row of a group is in one task, so ``sum(DISTINCT x)`` is the sum of the
group's distinct non-null x (pyarrow's hash ``distinct`` lists, then summed) and
``count(DISTINCT a, b)`` counts the distinct non-null codes of the (a, b) tuples;
``collect_list(DISTINCT x)`` is the group's distinct values, as ``collect_set(x)``. A global
aggregate (no keys) gathers its partials into one task and always gives one row. A struct
group key is grouped by its fields (``group_keys``) and rebuilt after the last merge.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.errors import NotSupportedError
from sparkctl.sql import plan as lp
from sparkctl.sql.builtins import AggregateFunc
from sparkctl.sql.group_keys import flatten_key, key_columns, restore_keys
from sparkctl.sql.array_keys import decode, encode, is_encoded, is_nested
from sparkctl.sql.float_ordering import max_with_nan
from sparkctl.sql.ordered_pick import ordering_positions, picked_values
from sparkctl.sql.expressions import Attribute, AttributeRef, Expr, Literal, _coerce, as_array, strip_alias

#: aggregates merged from partials: name -> [(partial kernel, merge kernel)]
_MERGEABLE = {
    "sum": [("sum", "sum")], "count": [("count", "sum")], "min": [("min", "min")], "max": [("max", "max")],
    "avg": [("sum", "sum"), ("count", "sum")], "bool_and": [("all", "all")], "every": [("all", "all")],
    "bool_or": [("any", "any")], "some": [("any", "any")], "any": [("any", "any")],
    "any_value": [("first", "first")],
}
#: the one-phase kernel of a mergeable aggregate, when another aggregate of the query forces one phase
_SINGLE = {"sum": "sum", "count": "count", "min": "min", "max": "max", "avg": "mean", "bool_and": "all",
           "every": "all", "bool_or": "any", "some": "any", "any": "any", "any_value": "first"}
_ONE_PHASE = {"count_distinct": "count_distinct", "approx_count_distinct": "count_distinct", "collect_list": "list",
              "collect_set": "distinct", "first": "first", "last": "last", "stddev": "stddev", "stddev_samp": "stddev",
              "stddev_pop": "stddev", "variance": "variance", "var_samp": "variance", "var_pop": "variance",
              "max_by": "max_by", "min_by": "min_by"}
#: aggregates of a value picked by an ordering: its arguments are (value, ordering)
_PICKED_BY = {"max_by", "min_by"}


#: aggregates that pick a value: a nested one (array, map, struct) is picked as its encoding
_BY_ENCODING = {"first", "last", "any_value", "max_by", "min_by"}
#: DISTINCT aggregates computed (min and max of the distinct values are those of all values, as
#: collect_set's are; collect_list(DISTINCT x) is the group's distinct values, as collect_set)
_DISTINCT = {"count", "sum", "avg", "min", "max", "collect_list", "collect_set"}


class AggSpec:
    """One aggregate call of the query: its input column and how it is computed. A call of
    several arguments (``count(DISTINCT a, b)``) has an input column per argument, coded
    into ``input`` after the exchange (``_tuple_codes``)."""

    def __init__(self, index: int, call: AggregateFunc) -> None:
        self.index = index
        self.call = call
        self.input = f"__a{index}"
        self.arguments = [f"__a{index}_{j}" for j in range(len(call.children))] if len(call.children) > 1 \
            else [self.input]
        self.name = call.name
        self.result_attr = Attribute(call.sql(), call.dtype, call.nullable)


def mergeable(call: AggregateFunc) -> bool:
    """Whether *call* is computed from partial aggregates (else it needs all its input rows)."""
    return call.name in _MERGEABLE and (not call.distinct or call.name in ("min", "max"))


def distinct_arguments(calls: list[AggregateFunc]) -> tuple[Expr, ...]:
    """The argument list every DISTINCT aggregate of *calls* shares, when Spark's rewrite runs
    them (each other call merges from partials; the DISTINCT ones are counts, sums and
    averages): () when the aggregate runs in one phase instead."""
    from sparkctl.sql.explain import expr_string  # with attribute ids: equal names may differ
    distinct = [c for c in calls if not mergeable(c)]
    if not distinct or any(not c.distinct or c.name not in ("count", "sum", "avg") for c in distinct):
        return ()
    if len({tuple(expr_string(a) for a in c.children) for c in distinct}) != 1:
        return ()
    return tuple(distinct[0].children)


def aggregate_calls(plan: lp.Aggregate) -> list[AggregateFunc]:
    """The distinct aggregate calls of the plan's output expressions, in order."""
    return _collect_calls([strip_alias(a) for a in plan.aggs])


def _collect_calls(exprs: list[Expr]) -> list[AggregateFunc]:
    calls: dict[str, AggregateFunc] = {}
    for e in exprs:
        for node in e.walk():
            if isinstance(node, AggregateFunc):
                calls.setdefault(node.sql(), node)
    return list(calls.values())


def _replace(e: Expr, mapping: dict[str, Attribute], group_attrs: dict[str, Attribute]) -> Expr:
    """The output expression over the aggregated table: calls and group keys become attributes."""
    key = e.sql()
    if isinstance(e, AggregateFunc) and key in mapping:
        return AttributeRef(mapping[key])
    if not isinstance(e, AggregateFunc) and key in group_attrs and not isinstance(e, Literal):
        return AttributeRef(group_attrs[key])
    if isinstance(e, AttributeRef) and e.attr.id in {a.id for a in group_attrs.values()}:
        return e
    if not e.children:
        return e
    return e.with_children([_replace(c, mapping, group_attrs) for c in e.children])


def aggregate_rdd(planner: Any, plan: lp.Aggregate) -> Any:
    child = planner.execute(plan.child)
    groups = [strip_alias(g) for g in plan.groups]
    calls = aggregate_calls(plan)
    specs = [AggSpec(i, c) for i, c in enumerate(calls)]
    for s in specs:
        if s.call.distinct and s.name not in _DISTINCT:
            raise NotSupportedError(f"sparkctl does not compute {s.call.sql()} yet (DISTINCT is supported in "
                                    f"{', '.join(sorted(_DISTINCT))})")
    group_attrs = [Attribute(f"__g{i}", g.dtype, g.nullable) for i, g in enumerate(groups)]
    group_cols = [f"__g{i}" for i in range(len(groups))]
    # the columns the keys are grouped by: a struct key's fields (group_keys), any other key itself
    key_layout = [(name, g.dtype) for name, g in zip(group_cols, groups)]
    key_cols = [c for name, dtype in key_layout for c in key_columns(name, dtype)]
    strategy = planner.aggregate_strategy(plan)
    n = strategy.partitions

    def inputs(tables: Iterator[pa.Table]) -> Iterator[pa.Table]:
        for t in tables:
            cols = {}
            for name, g in zip(group_cols, groups):
                cols.update(flatten_key(name, as_array(g.eval(t), t.num_rows)))
            for s in specs:
                if not s.call.children:
                    cols[s.input] = pa.nulls(t.num_rows, pa.int8()).fill_null(1)
                for j, (name, child_expr) in enumerate(zip(s.arguments, s.call.children)):
                    cols[name] = as_array(child_expr.eval(t), t.num_rows)
                    if s.name in _BY_ENCODING and j == 0 and is_nested(cols[name].type):
                        cols[name] = encode(cols[name])  # pyarrow's first/last take no nested value
                    if s.call.distinct and pa.types.is_floating(cols[name].type):
                        cols[name] = pc.add(cols[name], 0.0)  # -0.0 is 0.0, one value as Spark normalises it
            yield pa.table(cols) if cols else pa.table({"__one": pa.nulls(t.num_rows, pa.int8())})

    prepared = child.mapPartitions(inputs)
    if strategy.two_phase:
        partials = prepared.mapPartitions(partial(_partial, group_cols=key_cols, specs=specs))
        shuffled = planner.exchange(partials, key_cols, n, [], gather=False)
        merged = shuffled.mapPartitions(partial(_merge, group_cols=key_cols, specs=specs,
                                                global_agg=not groups, phase="final"))
    elif strategy.distinct_arguments:
        merged = _rewritten_distinct(planner, prepared, key_cols, specs, strategy)
    else:
        shuffled = planner.exchange(prepared, key_cols, n, [], gather=False)
        merged = shuffled.mapPartitions(partial(_merge, group_cols=key_cols, specs=specs,
                                                global_agg=not groups, phase="single"))
    if not groups:
        merged = _ensure_one_row(planner, merged, specs)
    # the query's own output expressions, over (group columns, results)
    mapping = {s.call.sql(): s.result_attr for s in specs}
    by_sql = {g.sql(): group_attrs[i] for i, g in enumerate(groups)}
    outputs = [_replace(strip_alias(a), mapping, by_sql) for a in plan.aggs]
    rename = {**{s.input + "_result": mapping[s.call.sql()].column for s in specs},
              **{group_cols[i]: by_sql[g.sql()].column for i, g in enumerate(groups)}}

    restore = any(pa.types.is_struct(dtype) or is_encoded(dtype) for _, dtype in key_layout)

    def finish(tables: Iterator[pa.Table]) -> Iterator[pa.Table]:
        from sparkctl.sql.execution import project_table
        for t in tables:
            if restore:
                t = restore_keys(t, key_layout)
            t = t.rename_columns([rename.get(c, c) for c in t.column_names])
            yield project_table(t, outputs, plan.output)
    return merged.mapPartitions(finish)


def _rewritten_distinct(planner: Any, prepared: Any, group_cols: list[str], specs: list[AggSpec],
                        strategy: Any) -> Any:
    """Spark's plan of DISTINCT aggregates over one argument list: partials of the other
    aggregates by (group keys, distinct arguments), exchanged by those and merged, so each
    (group, distinct value) is one row in one task; there the distinct values are counted and
    summed as they are (``_distinct_partial``), and those partials are exchanged by the group
    keys and merged like any other. The map side drops repeated values before the exchange,
    and no task holds a whole group's rows."""
    plain = [s for s in specs if mergeable(s.call)]
    distinct = [s for s in specs if not mergeable(s.call)]
    keys = group_cols + distinct[0].arguments
    partials = prepared.mapPartitions(partial(_partial, group_cols=keys, specs=plain))
    by_value = planner.exchange(partials, keys, strategy.distinct_partitions, [], gather=False)
    second = by_value.mapPartitions(partial(_distinct_partial, keys=keys, group_cols=group_cols, plain=plain,
                                            distinct=distinct))
    shuffled = planner.exchange(second, group_cols, strategy.partitions, [], gather=False)
    return shuffled.mapPartitions(partial(_merge, group_cols=group_cols, specs=specs, global_agg=not group_cols,
                                          phase="final"))


def _distinct_partial(tables: Iterator[pa.Table], keys: list[str], group_cols: list[str], plain: list[AggSpec],
                      distinct: list[AggSpec]) -> Iterator[pa.Table]:
    """After the exchange by (group keys, distinct arguments): one row per key (the other
    aggregates' partials merged), then partials by the group keys alone, where a DISTINCT
    count is the number of rows with no null argument and a DISTINCT sum the sum of the
    values: no other task holds the same (group, value)."""
    from sparkctl.sql.spill import grouped_in_budget
    self_merge = [(f"{s.input}_p{i}", merge, f"{s.input}_p{i}")
                  for s in plain for i, (_, merge) in enumerate(_MERGEABLE[s.name])]
    combine = partial(_combine_partials, group_cols=keys, aggs=self_merge)
    arguments = keys[len(group_cols):]

    def run(held: list[pa.Table]) -> Iterator[pa.Table]:
        unique = combine(held)
        valid = arguments[0]
        if len(arguments) > 1:  # count(DISTINCT a, b): the rows with no null among a, b
            valid = "__valid"
            ok = pc.and_(*[pc.is_valid(unique.column(a)) for a in arguments[:2]])
            for a in arguments[2:]:
                ok = pc.and_(ok, pc.is_valid(unique.column(a)))
            unique = unique.append_column(valid, pc.if_else(ok, pa.scalar(1, pa.int8()), pa.scalar(None, pa.int8())))
        grouped = _group(unique, group_cols, self_merge + [(valid, "count", "__count"), (arguments[0], "sum", "__sum")]
                         if any(s.name != "count" for s in distinct) else
                         self_merge + [(valid, "count", "__count")])
        for s in distinct:
            for i, column in enumerate({"count": ["__count"], "sum": ["__sum"], "avg": ["__sum", "__count"]}[s.name]):
                grouped = grouped.append_column(f"{s.input}_p{i}", grouped.column(column))
        yield grouped.drop_columns([c for c in ("__count", "__sum") if c in grouped.column_names])
    yield from grouped_in_budget(tables, keys, run, combine)


def _partial(tables: Iterator[pa.Table], group_cols: list[str], specs: list[AggSpec]) -> Iterator[pa.Table]:
    """The map side's partial aggregates: one table, or one per budget's worth of input (the
    reduce side merges partials whatever their number)."""
    from sparkctl.sql.execution import concat
    from sparkctl.sql.spill import SpillContext
    aggs = []
    for s in specs:
        for i, (kernel, _) in enumerate(_MERGEABLE[s.name]):
            aggs.append((s.input, kernel, f"{s.input}_p{i}"))
    ctx = SpillContext()
    held: list[pa.Table] = []
    held_bytes = 0
    for t in tables:
        if t.num_rows:
            held.append(t)
            held_bytes += t.nbytes
            ctx.note_held(held_bytes)
            if held_bytes > ctx.budget:
                yield _group(concat(held, []), group_cols, aggs)
                held, held_bytes = [], 0
    if held:
        yield _group(concat(held, []), group_cols, aggs)


def _group(table: pa.Table, group_cols: list[str], aggs: list[tuple[str, str, str]]) -> pa.Table:
    """``GROUP BY group_cols`` computing (input column, pyarrow kernel, output name) each."""
    picked = {col: ordering_positions(table, col, kernel == "max_by") for col, kernel, _ in aggs if kernel in _PICKED_BY}
    if not group_cols:
        out = {}
        for col, kernel, name in aggs:
            if kernel in _PICKED_BY:
                out[name] = picked_values(table, col, picked[col], pa.array([pc.max(picked[col][0]).as_py()], pa.int64()))
                continue
            out[name] = pa.array([_scalar(table.column(col), kernel)])
        return pa.table(out) if out else pa.table({"__one": [1]})
    requests: list[tuple[Any, ...]] = []
    for col, kernel, name in aggs:
        opts = None
        if kernel in _PICKED_BY:  # the winning row's position, its value taken below
            table = table.append_column(f"{col}__pos", picked[col][0])
            requests.append((f"{col}__pos", "max", pc.ScalarAggregateOptions(skip_nulls=True, min_count=1)))
            continue
        if kernel == "sum_distinct":  # the group's distinct values, summed below
            requests.append((col, "distinct", pc.CountOptions(mode="only_valid")))
            continue
        if kernel in ("count", "count_distinct"):
            opts = pc.CountOptions(mode="only_valid")
        elif kernel in ("stddev", "variance"):
            opts = pc.VarianceOptions(ddof=1)
        elif kernel in ("sum", "min", "max", "first", "last", "all", "any"):
            opts = pc.ScalarAggregateOptions(skip_nulls=True, min_count=1 if kernel != "all" else 0)
        requests.append((col, kernel, opts) if opts is not None else (col, kernel))
    # pyarrow's max skips NaN, Spark's is NaN where the group holds one: ask whether it does
    nan_flags = {col for col, kernel, _ in aggs if kernel == "max" and pa.types.is_floating(table.column(col).type)}
    for col in sorted(nan_flags):
        table = table.append_column(f"{col}__nan", pc.is_nan(table.column(col)))
        requests.append((f"{col}__nan", "any", pc.ScalarAggregateOptions(skip_nulls=True, min_count=1)))
    result = table.group_by(group_cols, use_threads=False).aggregate(requests)
    names = {f"{col}_{'distinct' if kernel == 'sum_distinct' else kernel}": name for col, kernel, name in aggs}
    names.update({f"{col}__pos_max": name for col, kernel, name in aggs if kernel in _PICKED_BY})
    result = result.rename_columns([names.get(c, c) for c in result.column_names])
    for col, kernel, name in aggs:
        if kernel == "max" and col in nan_flags:
            i = result.column_names.index(name)
            result = result.set_column(i, name, max_with_nan(result.column(name), result.column(f"{col}__nan_any")))
    if nan_flags:
        result = result.drop_columns([f"{col}__nan_any" for col in nan_flags])
    for col, kernel, name in aggs:
        if kernel in _PICKED_BY:
            i = result.column_names.index(name)
            result = result.set_column(i, name, picked_values(table, col, picked[col], result.column(name)))
        if kernel in ("sum_distinct", "list"):
            i = result.column_names.index(name)
            lists = result.column(name).combine_chunks()
            result = result.set_column(i, name, _sum_lists(lists) if kernel == "sum_distinct" else _valid_items(lists))
    return result


def _valid_items(lists: pa.Array) -> pa.Array:
    """Each list without its null items: collect_list skips NULL as Spark's does (pyarrow's
    hash ``list`` keeps them). The lists of a hash aggregate are never null themselves."""
    import numpy as np
    items = pc.list_flatten(lists)
    if not items.null_count:
        return lists
    keep = pc.is_valid(items)
    parents = pc.list_parent_indices(lists).filter(keep).to_numpy()
    offsets = np.zeros(len(lists) + 1, np.int32)
    np.cumsum(np.bincount(parents, minlength=len(lists)), out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), items.filter(keep), type=lists.type)


def _sum_lists(lists: pa.Array) -> pa.Array:
    """The sum of each list's values; null for an empty list (a group with no non-null value)."""
    parents = pc.list_parent_indices(lists)
    sums = pa.table({"i": parents, "v": pc.list_flatten(lists)}).group_by("i", use_threads=False) \
        .aggregate([("v", "sum")])
    where = pc.index_in(pa.array(range(len(lists)), pa.int64()), value_set=sums.column("i"))
    return pc.take(sums.column("v_sum"), where)


def _scalar(column: Any, kernel: str) -> Any:
    if kernel == "count":
        return pc.count(column, mode="only_valid").as_py()
    if kernel == "count_distinct":
        return pc.count_distinct(column, mode="only_valid").as_py()
    if kernel == "sum_distinct":
        return pc.sum(pc.unique(column.drop_null()), min_count=1).as_py()
    if kernel in ("stddev", "variance"):
        return getattr(pc, kernel)(column, ddof=1).as_py() if pc.count(column).as_py() > 1 else None
    if kernel == "list":
        return column.drop_null().to_pylist() if hasattr(column, "drop_null") else [v for v in column.to_pylist()
                                                                                      if v is not None]
    if kernel == "distinct":
        return pc.unique(column.drop_null()).to_pylist()
    if kernel in ("first", "last"):
        values = column.drop_null()
        return (values[0] if kernel == "first" else values[len(values) - 1]).as_py() if len(values) else None
    if kernel == "all":
        return pc.all(column, skip_nulls=True, min_count=0).as_py() if len(column.drop_null()) else None
    if kernel == "any":
        return pc.any(column, skip_nulls=True, min_count=1).as_py()
    if kernel == "max" and pa.types.is_floating(column.type) and pc.any(pc.is_nan(column)).as_py():
        return float("nan")  # pyarrow's max skips NaN, Spark's is NaN
    return getattr(pc, kernel)(column, skip_nulls=True, min_count=1).as_py()


def _merge(tables: Iterator[pa.Table], group_cols: list[str], specs: list[AggSpec], global_agg: bool,
           phase: str) -> Iterator[pa.Table]:
    """The reduce side: every group's rows (or partials) aggregated. Past the task's memory
    budget, partials are merged early and what remains is spilled by a hash of the group
    keys, then aggregated a spill file at a time (``spill.grouped_in_budget``); a global
    aggregate's rows are few (partials) or must be held together (one-phase aggregates)."""
    from sparkctl.sql.execution import concat
    from sparkctl.sql.spill import grouped_in_budget
    aggs = _merge_kernels(specs, phase)
    tuples = [s for s in specs if len(s.arguments) > 1 and s.name not in _PICKED_BY] if phase == "single" else []
    if not group_cols:
        table = concat(list(tables), [])
        if table.num_rows:  # else _ensure_one_row supplies the empty aggregate's row
            yield _results(_group_pop(_with_tuple_codes(table, tuples), group_cols, aggs), specs, phase)
        return

    def run(held: list[pa.Table]) -> Iterator[pa.Table]:
        table = concat(held, [])
        if table.num_rows:
            yield _results(_group_pop(_with_tuple_codes(table, tuples), group_cols, aggs), specs, phase)

    combine = None
    if phase == "final":
        # partials merged into partials (same columns): what a spill keeps is one row a group
        self_merge = [(f"{s.input}_p{i}", merge, f"{s.input}_p{i}")
                      for s in specs for i, (_, merge) in enumerate(_MERGEABLE[s.name])]
        combine = partial(_combine_partials, group_cols=group_cols, aggs=self_merge)
    yield from grouped_in_budget(tables, group_cols, run, combine)


def _combine_partials(held: list[pa.Table], group_cols: list[str], aggs: list[tuple[str, str, str]]) -> pa.Table:
    from sparkctl.sql.execution import concat
    table = concat(held, [])
    return _group(table, group_cols, aggs).select(table.column_names).cast(table.schema)


def _merge_kernels(specs: list[AggSpec], phase: str) -> list[tuple[str, str, str]]:
    """(input column, kernel, output column) of the reduce side's aggregation."""
    aggs = []
    if phase == "final":
        for s in specs:
            for i, (_, merge) in enumerate(_MERGEABLE[s.name]):
                aggs.append((f"{s.input}_p{i}", merge, f"{s.input}_m{i}"))
    else:
        for s in specs:
            if s.call.distinct and s.name in ("count", "sum", "avg"):
                # avg(DISTINCT x): the sum and the number of distinct values, divided in _results
                kernels = {"count": ["count_distinct"], "sum": ["sum_distinct"],
                           "avg": ["sum_distinct", "count_distinct"]}[s.name]
                aggs.extend((s.input, k, f"{s.input}_m{i}") for i, k in enumerate(kernels))
                continue
            kernel = _ONE_PHASE["collect_set" if s.call.distinct and s.name == "collect_list" else s.name] \
                if s.name in _ONE_PHASE else _SINGLE[s.name]
            if s.name in ("stddev_pop", "var_pop"):
                kernel = "pop_" + kernel
            aggs.append((s.input, kernel, f"{s.input}_m0"))
    return aggs


def _with_tuple_codes(table: pa.Table, specs: list[AggSpec]) -> pa.Table:
    """*table* with each multi-argument spec's ``input`` column: one int64 code per distinct
    tuple of its arguments, null where any argument is null (so counting the distinct codes
    counts the distinct tuples as Spark does). Codes stay below the number of rows: each
    argument's dictionary index is folded in, then the pairs are encoded again."""
    for s in specs:
        code: pa.Array | None = None
        for name in s.arguments:
            values = table.column(name).combine_chunks()
            if pa.types.is_null(values.type):
                code = pa.nulls(table.num_rows, pa.int64())
                break
            encoded = pc.dictionary_encode(values)
            indices = pc.cast(encoded.indices, pa.int64())
            if code is None:
                code = indices
            else:
                folded = pc.add(pc.multiply(code, len(encoded.dictionary)), indices)
                code = pc.cast(pc.dictionary_encode(folded).indices, pa.int64())
        table = table.append_column(s.input, code)
    return table


def _group_pop(table: pa.Table, group_cols: list[str], aggs: list[tuple[str, str, str]]) -> pa.Table:
    """_group, with population variants (ddof 0) of stddev and variance."""
    plain = [(c, k, n) for c, k, n in aggs if not k.startswith("pop_")]
    pops = [(c, k[4:], n) for c, k, n in aggs if k.startswith("pop_")]
    if not pops:
        return _group(table, group_cols, plain)
    if not group_cols:
        out = _group(table, group_cols, plain) if plain else pa.table({"__one": [1]})
        for c, k, n in pops:
            col = table.column(c)
            out = out.append_column(n, pa.array([getattr(pc, k)(col, ddof=0).as_py() if len(col.drop_null()) else None]))
        return out
    requests = [(c, k, pc.VarianceOptions(ddof=0)) for c, k, _ in pops]
    result = table.group_by(group_cols, use_threads=False).aggregate(requests)
    names = {f"{c}_{k}": n for c, k, n in pops}
    result = result.rename_columns([names.get(x, x) for x in result.column_names])
    if plain:
        other = _group(table, group_cols, plain)
        result = result.join(other, group_cols, use_threads=False, coalesce_keys=True)
    return result


def _results(grouped: pa.Table, specs: list[AggSpec], phase: str) -> pa.Table:
    out = grouped
    for s in specs:
        target = s.call.dtype
        if s.name == "avg" and (phase == "final" or s.call.distinct):
            total = pc.cast(out.column(f"{s.input}_m0"), pa.float64() if not pa.types.is_decimal(target) else target)
            count = out.column(f"{s.input}_m1")
            if pa.types.is_decimal(target):  # exact in 256 bits, rounded half-up to the result's scale
                wide = pc.divide(pc.cast(total, pa.decimal256(target.precision, target.scale)), count)
                total = pc.cast(pc.round(wide, ndigits=target.scale, round_mode="half_towards_infinity"), target)
                value = pc.if_else(pc.equal(count, 0), pa.scalar(None, target), total)
            else:
                value = pc.if_else(pc.equal(count, 0), pa.scalar(None, total.type), pc.divide(total, count))
        elif phase == "final" and s.name == "count":
            value = pc.fill_null(out.column(f"{s.input}_m0"), 0)
        else:
            value = out.column(f"{s.input}_m0")
        if s.name in _BY_ENCODING and is_nested(target):
            value = decode(value, target)
        if value.type != target:
            value = _coerce(value, value.type, target)
        out = out.append_column(f"{s.input}_result", value)
    return out


def _ensure_one_row(planner: Any, merged: Any, specs: list[AggSpec]) -> Any:
    """A global aggregate gives one row even over no input: count 0, the others NULL."""
    def fill(tables: Iterator[pa.Table]) -> Iterator[pa.Table]:
        got = [t for t in tables if t.num_rows]
        if got:
            yield from got
            return
        cols = {}
        for s in specs:
            t = s.call.dtype
            cols[f"{s.input}_result"] = pa.array([0 if s.name in ("count", "approx_count_distinct")
                                                  else ([] if s.name in ("collect_list", "collect_set") else None)],
                                                 type=t)
        yield pa.table(cols) if cols else pa.table({"__one": [1]})
    return merged.mapPartitions(fill)
