"""File scans: what the optimizer pushes into them, and the RDD that reads them.

Pushed into a scan (``push_into_scans``, the optimizer's last step), as Spark's
``FileSourceStrategy`` does:

- **partition filters**: a predicate on partition columns only is evaluated on the driver
  against each file's ``k=v`` directory values, and the files it rejects are never listed
  in a split (whole directories skipped, for every format); the predicate then leaves the
  plan, since it holds for every row of a kept file;
- **data filters** (parquet): simple comparisons of a column with a literal (and the
  ``IsNotNull`` they imply) go to the reader as ``pyarrow.dataset`` filters, which skip the
  row groups whose statistics rule them out. The Filter stays above the scan: the pushed
  filter only skips data, and every row read is still filtered with Spark's semantics.

One partition of :class:`FileScanRDD` is a split of the data source's plan, read as Arrow
record batches by its task. It counts the rows it reads (the task's ``inputRecordsRead``
and the scan's ``records_read`` accumulator, Spark's "number of output rows" of a scan).
"""
from __future__ import annotations

import copy
import dataclasses
import datetime
import weakref
from typing import TYPE_CHECKING, Any, Iterator

import pyarrow as pa

from sparkctl.executor import task_metrics
from sparkctl.rdd.dependencies import Partition
from sparkctl.rdd.rdd import RDD
from sparkctl.sql import plan as lp
from sparkctl.sql.expressions import Attribute, AttributeRef, BinaryOp, Expr, In, IsNull, Literal

if TYPE_CHECKING:
    from sparkctl.taskcontext import TaskContext


class ScanPartition(Partition):
    __slots__ = ("split",)

    def __init__(self, index: int, split: Any) -> None:
        super().__init__(index)
        self.split = split


class FileScanRDD(RDD):
    def __init__(self, ctx: Any, scan: Any, attrs: list[Attribute]) -> None:
        super().__init__(ctx, [])
        self.scan = scan
        self.attrs = attrs
        self._parts = [ScanPartition(i, s) for i, s in enumerate(scan.splits)] or [ScanPartition(0, None)]
        self.records_read = ctx.accumulator(0)
        # every action builds new scans: the context forgets the counter with its RDD
        registry = getattr(ctx, "_accumulators", None)
        if isinstance(registry, dict):
            weakref.finalize(self, registry.pop, self.records_read.aid, None)

    def _get_partitions(self) -> list[Partition]:
        return list(self._parts)

    def compute(self, split: Partition, tc: "TaskContext") -> Iterator[Any]:
        from sparkctl.sql import datasources as ds
        assert isinstance(split, ScanPartition)
        if split.split is None:
            return
        names = [a.name for a in self.attrs]
        columns = [a.column for a in self.attrs]
        metrics = task_metrics.current()
        read = 0
        try:
            for batch in ds.read_split(self.scan, split.split, names):
                table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
                if table.num_rows:
                    read += table.num_rows
                    metrics.input_records_read += table.num_rows
                    yield table.select(names).rename_columns(columns) if table.column_names != names \
                        else table.rename_columns(columns)
        finally:
            self.records_read.add(read)


# ---------------------------------------------------------------------------- pushdown
_SPARK_NAMES = {"=": "EqualTo", "<": "LessThan", "<=": "LessThanOrEqual", ">": "GreaterThan",
                ">=": "GreaterThanOrEqual"}
_FLIP = {"=": "=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


@dataclasses.dataclass(frozen=True)
class PushedFilter:
    """One data filter a reader can apply by statistics: ``column op value``; op is one of
    = < <= > >=, ``in`` (value a tuple), ``is_null`` or ``is_not_null``."""

    column: str
    op: str
    value: Any = None

    def spark_string(self) -> str:
        if self.op == "is_null":
            return f"IsNull({self.column})"
        if self.op == "is_not_null":
            return f"IsNotNull({self.column})"
        if self.op == "in":
            return f"In({self.column}, [{','.join(_show(v) for v in self.value)}])"
        return f"{_SPARK_NAMES[self.op]}({self.column},{_show(self.value)})"

    def to_arrow(self) -> Any:
        import pyarrow.compute as pc
        field = pc.field(self.column)
        if self.op == "is_null":
            return field.is_null()
        if self.op == "is_not_null":
            return field.is_valid()
        if self.op == "in":
            return field.isin(list(self.value))
        return {"=": field.__eq__, "<": field.__lt__, "<=": field.__le__, ">": field.__gt__,
                ">=": field.__ge__}[self.op](self.value)


def _show(v: Any) -> str:
    return v.isoformat() if isinstance(v, datetime.date) else str(v)


def _pushable_column(t: pa.DataType) -> bool:
    # floats are left out: NaN orders differently in statistics and in Spark
    return pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_date32(t) or pa.types.is_boolean(t)


def _literal_fits(column_type: pa.DataType, lit: Expr) -> bool:
    if not isinstance(lit, Literal) or lit.value is None:
        return False
    v = lit.value
    if pa.types.is_boolean(column_type):
        return isinstance(v, bool)
    if pa.types.is_integer(column_type):
        return isinstance(v, int) and not isinstance(v, bool)
    if pa.types.is_string(column_type):
        return isinstance(v, str)
    if pa.types.is_date32(column_type):
        return isinstance(v, datetime.date) and not isinstance(v, datetime.datetime)
    return False


def translate(e: Expr) -> list[PushedFilter]:
    """The data filters a conjunct implies, empty when none can be pushed."""
    if isinstance(e, BinaryOp) and e.op in _SPARK_NAMES:
        a, b = e.children
        op = e.op
        if isinstance(b, AttributeRef) and not isinstance(a, AttributeRef):
            a, b, op = b, a, _FLIP[op]
        if isinstance(a, AttributeRef) and _pushable_column(a.attr.dtype) and _literal_fits(a.attr.dtype, b):
            assert isinstance(b, Literal)
            return [PushedFilter(a.attr.name, "is_not_null"), PushedFilter(a.attr.name, op, b.value)]
    if isinstance(e, IsNull):
        child = e.children[0]
        if isinstance(child, AttributeRef) and _pushable_column(child.attr.dtype):
            return [PushedFilter(child.attr.name, "is_not_null" if e.negated else "is_null")]
    if isinstance(e, In):
        child, *options = e.children
        if isinstance(child, AttributeRef) and _pushable_column(child.attr.dtype) and options \
                and all(_literal_fits(child.attr.dtype, o) for o in options):
            return [PushedFilter(child.attr.name, "is_not_null"),
                    PushedFilter(child.attr.name, "in", tuple(o.value for o in options))]  # type: ignore[attr-defined]
    return []


def push_into_scans(plan: lp.Plan) -> lp.Plan:
    from sparkctl.sql.optimizer import _with_children, and_all, conjuncts, is_deterministic, make_filter
    if isinstance(plan, lp.CachedPlan):
        return plan  # its node holds the persisted RDD: never copied
    children = [push_into_scans(c) for c in plan.children]
    plan = _with_children(plan, children)
    if not (isinstance(plan, lp.Filter) and isinstance(plan.child, lp.FileRelation)):
        return plan
    rel = plan.child
    part_schema = rel.scan.partition_schema
    part_names = set(part_schema.names) if part_schema is not None else set()
    by_id = {a.id: a for a in rel.output}
    partition_parts: list[Expr] = []
    data_parts: list[Expr] = []
    for p in conjuncts(plan.condition):
        refs = p.references()
        if refs and is_deterministic(p) and all(i in by_id and by_id[i].name in part_names for i in refs):
            partition_parts.append(p)
        else:
            data_parts.append(p)
    pushed: list[PushedFilter] = []
    if rel.fmt == "parquet":
        for p in data_parts:
            if is_deterministic(p):
                for f in translate(p):
                    if f.column not in part_names and f not in pushed:
                        pushed.append(f)
    new = copy.copy(rel)
    if not partition_parts and not pushed:
        new.data_filters = [p for p in data_parts if is_deterministic(p)]
        return _with_children(plan, [new])
    scan = dataclasses.replace(rel.scan)  # the partition schema with the rest
    if partition_parts:
        try:
            scan.splits = _prune_partitions(scan.splits, and_all(partition_parts), rel.output, part_schema)
        except Exception:  # an error evaluating it is raised by the filter at run time, as unpushed
            data_parts = partition_parts + data_parts
            partition_parts = []
    if partition_parts:
        new.partition_filters = list(rel.partition_filters) + partition_parts
    if pushed:
        scan.filters = list(scan.filters) + pushed
        new.pushed_filters = list(rel.pushed_filters) + pushed
    new.scan = scan
    new.data_filters = [p for p in data_parts if is_deterministic(p)]
    return make_filter(new, and_all(data_parts)) if data_parts else new


def _prune_partitions(splits: list[Any], condition: Expr, attrs: list[Attribute], part_schema: pa.Schema) -> list[Any]:
    """The splits whose files' partition values satisfy *condition* (NULL rejects, as a filter does)."""
    if not splits:
        return splits
    import pyarrow.compute as pc
    from sparkctl.sql.expressions import as_array
    refs = condition.references()
    columns = {}
    for a in attrs:
        if a.id in refs:
            i = part_schema.get_field_index(a.name)
            columns[a.column] = pa.array([s.partition_values[i] for s in splits], part_schema.field(i).type)
    table = pa.table(columns) if columns else pa.table({"__n": pa.nulls(len(splits))})
    keep = pc.fill_null(as_array(condition.eval(table), len(splits)), False).to_pylist()
    return [s for s, k in zip(splits, keep) if k]
