"""From a logical plan to sparkctl stages: an RDD whose elements are Arrow tables.

Narrow operators (project, filter, scans, union, coalesce) become ``mapPartitions`` over
tables, so a chain of them runs in one task, a whole table per call. Exchanges (aggregate,
join, repartition, global sort and limit) go through the RDD shuffle: a map task cuts
each table by a hash of the keys (``exchange.py``) and emits ``(partition, table)``; the
shuffle moves the tables as Arrow IPC streams (``arrow_serde.py``, compressed by Arrow's
IPC compression) and the reduce task concatenates what it got. The stages are ordinary sparkctl stages: the
same DAG scheduler, executors, retries, UI and fault tolerance as RDD jobs.

A table's columns are named after the attributes they hold (``_<id>``); names are a
logical concern only.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.errors import NotSupportedError
from sparkctl.sql import plan as lp
from sparkctl.sql.exchange import count_rows_read, counted, hash_split, shuffle
from sparkctl.sql.expressions import Alias, Attribute, AttributeRef, Expr, _coerce, as_array
from sparkctl.sql.strategies import (AggregateStrategy, JoinStrategy, LimitStrategy, SortStrategy,
                                     broadcast_threshold, choose_aggregate, choose_join, choose_limit,
                                     choose_sort)


def empty_table(attrs: list[Attribute]) -> pa.Table:
    return pa.table({a.column: pa.array([], a.dtype) for a in attrs})


def concat(tables: Iterable[pa.Table], attrs: list[Attribute]) -> pa.Table:
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return empty_table(attrs)
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="permissive")


def project_table(table: pa.Table, exprs: list[Expr], attrs: list[Attribute]) -> pa.Table:
    n = table.num_rows
    columns = {}
    for e, a in zip(exprs, attrs):
        value = as_array(e.eval(table), n)
        if value.type != a.dtype:
            value = _coerce(value, value.type, a.dtype)
        columns[a.column] = value
    return pa.table(columns) if columns else pa.table({"__rows": pa.nulls(n)}).drop_columns(["__rows"])


def _project(tables: Iterator[pa.Table], exprs: list[Expr], attrs: list[Attribute]) -> Iterator[pa.Table]:
    for t in tables:
        yield project_table(t, exprs, attrs)


def _filter(tables: Iterator[pa.Table], cond: Expr) -> Iterator[pa.Table]:
    for t in tables:
        mask = as_array(cond.eval(t), t.num_rows)
        out = t.filter(pc.fill_null(mask, False))
        if out.num_rows:
            yield out


def _gather(tables: Iterator[pa.Table], attrs: list[Attribute]) -> Iterator[pa.Table]:
    """The reduce side of an exchange: this partition's tables, as one."""
    got = list(tables)
    count_rows_read(got)
    if got:
        yield concat(got, attrs)


def _to_partition_zero(table: pa.Table) -> tuple[int, pa.Table]:
    return 0, table


class Planner:
    """Compiles plans to RDDs of tables for one session."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.sc = session.sparkContext

    @property
    def shuffle_partitions(self) -> int:
        value = self.session.conf.get("spark.sql.shuffle.partitions", None)
        if value:
            return max(1, int(value))
        # as Spark's adaptive execution coalesces its 200 default to what the data needs,
        # sparkctl starts from the cluster's parallelism
        return max(1, self.sc.defaultParallelism)

    # ------------------------------------------------------------------ choices (strategies.py)
    # what an operator's RDDs are built from, and what explain prints
    def join_strategy(self, plan: lp.Join) -> JoinStrategy:
        return choose_join(plan, broadcast_threshold(self.session.conf), self.shuffle_partitions)

    def aggregate_strategy(self, plan: lp.Aggregate) -> AggregateStrategy:
        return choose_aggregate(plan, self.shuffle_partitions)

    def sort_strategy(self, plan: lp.Sort) -> SortStrategy:
        return choose_sort(plan)

    def limit_strategy(self, plan: lp.Limit) -> LimitStrategy:
        return choose_limit(plan)

    def execute(self, plan: lp.Plan) -> Any:
        method = getattr(self, "_" + type(plan).__name__, None)
        if method is None:
            raise NotSupportedError(f"sparkctl cannot execute {type(plan).__name__} yet")
        return method(plan)

    def exchange(self, rdd: Any, keys: list[str], n: int, attrs: list[Attribute], gather: bool = True) -> Any:
        """Hash-partition an RDD of tables by *keys* into *n* partitions (one partition: all
        rows); each reduce partition is one table, or with ``gather=False`` the tables as they
        arrive (for an operator that bounds its memory, see ``spill.py``)."""
        if keys and n > 1:
            pairs = rdd.mapPartitions(partial(hash_split, keys=keys, n=n))
        else:
            pairs = rdd.map(_to_partition_zero)
            n = 1 if not keys else n
        if not gather:
            return shuffle(pairs, n).mapPartitions(counted)
        return shuffle(pairs, n).mapPartitions(partial(_gather, attrs=attrs))

    # ------------------------------------------------------------------ leaves
    def _LocalRelation(self, plan: lp.LocalRelation) -> Any:
        table = plan.table
        n = max(1, min(plan.num_slices, max(1, table.num_rows)))
        bounds = [(i * table.num_rows // n, (i + 1) * table.num_rows // n) for i in range(n)]
        slices = [table.slice(lo, hi - lo) for lo, hi in bounds]
        return self.sc.parallelize(slices, n)

    def _RangeRelation(self, plan: lp.RangeRelation) -> Any:
        start, end, step, n = plan.start, plan.end, plan.step, plan.num_slices
        count = max(0, -(-(end - start) // step))
        column = plan.output[0].column

        def make(i: int) -> pa.Table:
            lo, hi = i * count // n, (i + 1) * count // n
            return pa.table({column: pa.array(np.arange(lo, hi, dtype=np.int64) * step + start)})
        return self.sc.parallelize(range(n), n).map(make)

    def _RDDRelation(self, plan: lp.RDDRelation) -> Any:
        from sparkctl.sql.row_conversion import verify_and_convert
        schema, attrs = plan.spark_schema, plan.output

        def convert(rows: Iterator[Any]) -> Iterator[pa.Table]:
            batch = list(rows)
            if batch:
                t = verify_and_convert(batch, schema)
                yield t.rename_columns([a.column for a in attrs])
        return plan.rdd.mapPartitions(convert)

    def _FileRelation(self, plan: lp.FileRelation) -> Any:
        from sparkctl.sql.scan import FileScanRDD
        return FileScanRDD(self.sc, plan.scan, plan.output)

    # ------------------------------------------------------------------ narrow
    def _Project(self, plan: lp.Project) -> Any:
        child = self.execute(plan.child)
        refs = [e for e in plan.exprs if isinstance(e, AttributeRef)]
        if len(refs) == len(plan.exprs) and [e.attr.id for e in refs] == [a.id for a in plan.child.output]:
            return child
        return child.mapPartitions(partial(_project, exprs=plan.exprs, attrs=plan.output))

    def _Filter(self, plan: lp.Filter) -> Any:
        return self.execute(plan.child).mapPartitions(partial(_filter, cond=plan.condition))

    def _SubqueryAlias(self, plan: lp.SubqueryAlias) -> Any:
        return self.execute(plan.child)

    def _CachedPlan(self, plan: lp.CachedPlan) -> Any:
        if plan.rdd is None:
            plan.rdd = self.execute(plan.child).persist(plan.storage_level)
        return plan.rdd

    def _Union(self, plan: lp.Union) -> Any:
        rdds = []
        for child in plan.children:
            exprs: list[Expr] = [AttributeRef(a) for a in child.output]
            rdds.append(self.execute(child).mapPartitions(partial(_project, exprs=exprs, attrs=plan.output)))
        return self.sc.union(rdds)

    def _Repartition(self, plan: lp.Repartition) -> Any:
        child = self.execute(plan.child)
        if not plan.shuffle:
            return child.coalesce(plan.n)
        attrs = plan.output
        if plan.exprs:
            keyed = [Alias(e, f"__k{i}") for i, e in enumerate(plan.exprs)]
            key_cols = [f"__key{i}" for i in range(len(keyed))]

            def add_keys(tables: Iterator[pa.Table]) -> Iterator[pa.Table]:
                for t in tables:
                    for name, e in zip(key_cols, keyed):
                        t = t.append_column(name, as_array(e.eval(t), t.num_rows))
                    yield t
            shuffled = self.exchange(child.mapPartitions(add_keys), key_cols, plan.n, attrs)
            return shuffled.map(lambda t: t.drop_columns(key_cols))
        n = plan.n

        def round_robin(index: int, tables: Iterator[pa.Table]) -> Iterator[tuple[int, pa.Table]]:
            from sparkctl.sql.exchange import split_by
            offset = index
            for t in tables:
                ids = (np.arange(t.num_rows, dtype=np.int64) + offset) % n
                offset += t.num_rows
                yield from split_by(t, ids, n)
        return shuffle(child.mapPartitionsWithIndex(round_robin), n).mapPartitions(partial(_gather, attrs=attrs))

    # ------------------------------------------------------------------ sort and limit
    def _Sort(self, plan: lp.Sort) -> Any:
        child = self.execute(plan.child)
        attrs = plan.output
        orders = plan.orders
        from sparkctl.sql.sort import sort_partition
        gathered = self.exchange(child, [], self.sort_strategy(plan).partitions, attrs, gather=False)
        return gathered.mapPartitions(partial(sort_partition, orders=orders, attrs=attrs))

    def _Limit(self, plan: lp.Limit) -> Any:
        n = plan.n
        child = self.execute(plan.child)
        attrs = plan.output

        def head(tables: Iterator[pa.Table]) -> Iterator[pa.Table]:
            left = n
            for t in tables:
                if left <= 0:
                    return
                part = t.slice(0, left)
                left -= part.num_rows
                yield part
        if not self.limit_strategy(plan).gather:
            return child.mapPartitions(head)  # already one partition, in order
        return self.exchange(child.mapPartitions(head), [], 1, attrs).mapPartitions(head)

    # ------------------------------------------------------------------ aggregate
    def _Aggregate(self, plan: lp.Aggregate) -> Any:
        from sparkctl.sql.aggregation import aggregate_rdd
        return aggregate_rdd(self, plan)

    def _MapInBatches(self, plan: Any) -> Any:
        from sparkctl.sql.udf import map_in_batches_rdd
        return map_in_batches_rdd(self, plan)

    def _Generate(self, plan: Any) -> Any:
        from sparkctl.sql.generate import generate_rdd
        return generate_rdd(self, plan)

    def _WindowPlan(self, plan: Any) -> Any:
        from sparkctl.sql.window import window_rdd
        return window_rdd(self, plan)

    # ------------------------------------------------------------------ join
    def _Join(self, plan: lp.Join) -> Any:
        from sparkctl.sql.joins import join_rdd
        return join_rdd(self, plan)


def sort_table(table: pa.Table, orders: list[Any]) -> pa.Table:
    """Sort by each order's value, with its own null placement (a null flag sorted first) and
    NaN as the greatest FLOAT/DOUBLE (a NaN flag sorted with the value)."""
    from sparkctl.sql.sort import sort_keys, with_sort_columns
    if table.num_rows <= 1:
        return table
    work = with_sort_columns(table, orders, only_where_nan=True)
    indices = pc.sort_indices(work, sort_keys=sort_keys(orders, work.column_names))
    return table.take(indices)
