"""``DataFrame`` and ``GroupedData``: PySpark's API over logical plans.

Every transformation builds (and so analyses) a plan node; actions compile the plan into
sparkctl stages (``execution.Planner``) and run them as a job.
"""
from __future__ import annotations

import operator
from functools import partial, reduce
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import pyarrow as pa

from sparkctl.errors import AnalysisException
from sparkctl.sql import plan as lp
from sparkctl.sql.builtins import AggregateFunc
from sparkctl.sql.column import Column, col_expr
from sparkctl.sql.expressions import Alias, AttributeRef, Expr, Literal, SortOrder, Star, strip_alias

if TYPE_CHECKING:
    from sparkctl.sql.session import SparkSession


def _expr_of(value: Any) -> Expr:
    if isinstance(value, Column):
        return value._expr
    if isinstance(value, str):
        return col_expr(value)
    raise TypeError(f"[NOT_COLUMN_OR_STR] Argument `col` should be a Column or str, got {type(value).__name__}.")


def _flatten(cols: Sequence[Any]) -> list[Any]:
    if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
        return list(cols[0])
    return list(cols)


def _rows_of(tables: Iterator[pa.Table], names: list[str], schema: Any) -> Iterator[Any]:
    from sparkctl.sql.row_conversion import arrow_to_rows
    for t in tables:
        yield from arrow_to_rows(t.rename_columns(names), schema)


class DataFrame:
    def __init__(self, plan: lp.Plan, session: "SparkSession") -> None:
        self._plan = plan
        self.sparkSession = session

    # ------------------------------------------------------------------ schema
    @property
    def schema(self) -> Any:
        from sparkctl.sql.arrow_types import from_arrow
        from sparkctl.sql.types import StructField, StructType
        return StructType([StructField(a.name, from_arrow(a.dtype), a.nullable) for a in self._plan.output])

    @property
    def columns(self) -> list[str]:
        return [a.name for a in self._plan.output]

    @property
    def dtypes(self) -> list[tuple[str, str]]:
        return [(f.name, f.dataType.simpleString()) for f in self.schema.fields]

    def printSchema(self, level: int | None = None) -> None:
        from sparkctl.sql.show import tree_string
        print(tree_string(self.schema), end="")

    def explain(self, extended: Any = None, mode: str | None = None) -> None:
        from sparkctl.sql.explain import explain_mode, explain_string
        print(explain_string(self._plan, self.sparkSession, explain_mode(extended, mode)))

    def __repr__(self) -> str:
        return "DataFrame[" + ", ".join(f"{n}: {t}" for n, t in self.dtypes) + "]"

    # ------------------------------------------------------------------ running
    def _rdd_of_tables(self) -> Any:
        from sparkctl.sql.execution import Planner
        from sparkctl.sql.optimizer import optimize
        return Planner(self.sparkSession).execute(optimize(self._plan))

    def _table(self) -> pa.Table:
        from sparkctl.sql.execution import concat
        tables = self._rdd_of_tables().collect()
        table = concat(tables, self._plan.output)
        return table.select([a.column for a in self._plan.output]) if table.num_columns else table

    def toArrow(self) -> pa.Table:
        return self._table().rename_columns(self.columns)

    def collect(self) -> list[Any]:
        from sparkctl.sql.row_conversion import arrow_to_rows
        return arrow_to_rows(self._table().rename_columns(self.columns), self.schema)

    def toPandas(self) -> Any:
        return self.toArrow().to_pandas()

    def count(self) -> int:
        return int(sum(self._rdd_of_tables().map(lambda t: t.num_rows).collect()))

    def take(self, num: int) -> list[Any]:
        return self.limit(num).collect()

    def head(self, n: int | None = None) -> Any:
        if n is None:
            rows = self.take(1)
            return rows[0] if rows else None
        return self.take(n)

    def first(self) -> Any:
        return self.head()

    def tail(self, num: int) -> list[Any]:
        rows = self.collect()
        return rows[-num:] if num else []

    def isEmpty(self) -> bool:
        return len(self.take(1)) == 0

    def show(self, n: int = 20, truncate: bool | int = True, vertical: bool = False) -> None:
        print(self._show_string(n, truncate, vertical))

    def _show_string(self, n: int = 20, truncate: bool | int = True, vertical: bool = False) -> str:
        from sparkctl.sql.show import show_string
        rows = self.limit(n + 1).collect() if n >= 0 else self.collect()
        has_more = n >= 0 and len(rows) > n
        return show_string([tuple(r) for r in rows[:n] if True], self.schema, n, truncate, vertical, has_more)

    def foreach(self, f: Any) -> None:
        self.rdd.foreach(f)

    def foreachPartition(self, f: Any) -> None:
        self.rdd.foreachPartition(f)

    @property
    def rdd(self) -> Any:
        names, schema = self.columns, self.schema
        return self._rdd_of_tables().mapPartitions(partial(_rows_of, names=names, schema=schema))

    def toDF(self, *cols: str) -> "DataFrame":
        if len(cols) != len(self.columns):
            raise ValueError(f"[LENGTH_MISMATCH] number of names ({len(cols)}) does not match the number of "
                             f"columns ({len(self.columns)})")
        return self._with(lp.Project(self._plan, [Alias(AttributeRef(a), n) for a, n in zip(self._plan.output, cols)]))

    # ------------------------------------------------------------------ transformations
    def _with(self, plan: lp.Plan) -> "DataFrame":
        return DataFrame(plan, self.sparkSession)

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, str):
            return Column(AttributeRef(self._plan.scope().lookup(item)))
        if isinstance(item, int):
            return Column(AttributeRef(self._plan.output[item]))
        if isinstance(item, Column):
            return self.filter(item)
        if isinstance(item, (list, tuple)):
            return self.select(*item)
        raise TypeError(f"unexpected item type: {type(item).__name__}")

    def __getattr__(self, name: str) -> Column:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return Column(AttributeRef(self._plan.scope().lookup(name)))
        except AnalysisException:
            raise AttributeError(f"'DataFrame' object has no attribute '{name}'") from None

    def select(self, *cols: Any) -> "DataFrame":
        return self._project([_expr_of(c) for c in _flatten(cols)])

    def _project(self, exprs: list[Expr]) -> "DataFrame":
        from sparkctl.sql.generate import contains_generator, plan_generator
        from sparkctl.sql.window import contains_window, plan_windows
        if any(contains_generator(e) for e in exprs):
            child, exprs = plan_generator(self._plan, exprs)
            return DataFrame(child, self.sparkSession)._project(exprs)
        if any(contains_window(e) for e in exprs):
            child, exprs = plan_windows(self._plan, exprs)
            return self._with(lp.Project(child, exprs))
        try:
            return self._with(lp.Project(self._plan, exprs))
        except AnalysisException as e:
            if e.error_class != "MISSING_GROUP_BY":
                raise
            missing_group_by = e
        try:  # a select of aggregates is a global aggregate, as Spark's analyzer makes it
            return self._with(lp.Aggregate(self._plan, [], exprs))
        except AnalysisException as e:
            if e.error_class == "MISSING_AGGREGATION":  # a column beside them: Spark's error is the select's
                raise missing_group_by from None
            raise

    def selectExpr(self, *expr: str) -> "DataFrame":
        from sparkctl.sql import functions as F
        return self.select(*[F.expr(e) for e in _flatten(expr)])

    def filter(self, condition: Any) -> "DataFrame":
        if isinstance(condition, str):
            from sparkctl.sql import functions as F
            condition = F.expr(condition)
        return self._with(lp.Filter(self._plan, _expr_of(condition)))

    where = filter

    def withColumn(self, colName: str, col: Column) -> "DataFrame":
        if not isinstance(col, Column):
            raise TypeError("[NOT_COLUMN] Argument `col` should be a Column, got " + type(col).__name__ + ".")
        return self.withColumns({colName: col})

    def withColumns(self, colsMap: dict[str, Column]) -> "DataFrame":
        exprs: list[Expr] = []
        replaced = set()
        for a in self._plan.output:
            match = next((k for k in colsMap if k.lower() == a.name.lower()), None)
            if match is not None:
                exprs.append(Alias(colsMap[match]._expr, match))
                replaced.add(match)
            else:
                exprs.append(AttributeRef(a))
        exprs += [Alias(c._expr, k) for k, c in colsMap.items() if k not in replaced]
        return self._project(exprs)

    def withColumnRenamed(self, existing: str, new: str) -> "DataFrame":
        return self.withColumnsRenamed({existing: new})

    def withColumnsRenamed(self, colsMap: dict[str, str]) -> "DataFrame":
        lowered = {k.lower(): v for k, v in colsMap.items()}
        exprs: list[Expr] = [Alias(AttributeRef(a), lowered[a.name.lower()]) if a.name.lower() in lowered
                             else AttributeRef(a) for a in self._plan.output]
        return self._with(lp.Project(self._plan, exprs))

    def drop(self, *cols: Any) -> "DataFrame":
        drop_ids = set()
        for c in cols:
            if isinstance(c, str):
                drop_ids |= {a.id for a in self._plan.output if a.name.lower() == c.lower()}
            else:
                e = c._expr.resolve(self._plan.scope())
                if isinstance(e, AttributeRef):
                    drop_ids.add(e.attr.id)
        return self._with(lp.Project(self._plan, [AttributeRef(a) for a in self._plan.output if a.id not in drop_ids]))

    def alias(self, alias: str) -> "DataFrame":
        return self._with(lp.SubqueryAlias(self._plan, alias))

    def limit(self, num: int) -> "DataFrame":
        return self._with(lp.Limit(self._plan, num))

    def distinct(self) -> "DataFrame":
        from sparkctl.sql.expressions import spark_type_name
        for a in self._plan.output:
            if pa.types.is_map(a.dtype):  # Spark groups by a map, but deduplicates no row holding one
                raise AnalysisException(
                    f"[UNSUPPORTED_FEATURE.SET_OPERATION_ON_MAP_TYPE] The feature is not supported: Cannot have MAP "
                    f"type columns in a set operation (INTERSECT, EXCEPT, etc.), but the type of column `{a.name}` "
                    f"is \"{spark_type_name(a.dtype)}\". SQLSTATE: 0A000",
                    error_class="UNSUPPORTED_FEATURE.SET_OPERATION_ON_MAP_TYPE")
        refs = [AttributeRef(a) for a in self._plan.output]
        return self._with(lp.Aggregate(self._plan, refs, refs))

    def dropDuplicates(self, subset: Sequence[str] | None = None) -> "DataFrame":
        if subset is None:
            return self.distinct()
        from sparkctl.sql.builtins import AggregateFunc
        scope = self._plan.scope()
        keys = [scope.lookup(s) for s in subset]
        key_ids = {a.id for a in keys}
        aggs: list[Expr] = [AttributeRef(a) if a.id in key_ids else
                            Alias(AggregateFunc("first", AttributeRef(a)), a.name) for a in self._plan.output]
        return self._with(lp.Aggregate(self._plan, [AttributeRef(k) for k in keys], aggs))

    drop_duplicates = dropDuplicates

    def orderBy(self, *cols: Any, ascending: Any = None) -> "DataFrame":
        items = _flatten(cols)
        exprs = [_expr_of(c) for c in items]
        if ascending is not None:
            flags = ascending if isinstance(ascending, list) else [ascending] * len(exprs)
            exprs = [SortOrder(strip_alias(e) if not isinstance(e, SortOrder) else e.child, bool(f))
                     for e, f in zip(exprs, flags)]
        return self._with(lp.Sort(self._plan, exprs))

    sort = orderBy

    def groupBy(self, *cols: Any) -> "GroupedData":
        return GroupedData(self, [_expr_of(c) for c in _flatten(cols)])

    groupby = groupBy

    def agg(self, *exprs: Any) -> "DataFrame":
        return self.groupBy().agg(*exprs)

    def join(self, other: "DataFrame", on: Any = None, how: str | None = None) -> "DataFrame":
        right = other._plan
        if {a.id for a in right.output} & {a.id for a in self._plan.output}:
            right = _fresh_ids(right)
        how = how or "inner"
        if on is None:
            return self._with(lp.Join(self._plan, right, how))  # no condition: every pair
        if isinstance(on, str):
            on = [on]
        if isinstance(on, (list, tuple)) and on and all(isinstance(x, str) for x in on):
            return self._with(lp.Join(self._plan, right, how, using=list(on)))
        if isinstance(on, (list, tuple)):
            cond = on[0]
            for c in on[1:]:
                cond = cond & c
            on = cond
        return self._with(lp.Join(self._plan, right, how, on._expr))

    def crossJoin(self, other: "DataFrame") -> "DataFrame":
        return self._with(lp.Join(self._plan, other._plan, "cross"))

    def union(self, other: "DataFrame") -> "DataFrame":
        return self._with(lp.Union([self._plan, other._plan]))

    unionAll = union

    def unionByName(self, other: "DataFrame", allowMissingColumns: bool = False) -> "DataFrame":
        scope = other._plan.scope()
        exprs: list[Expr] = []
        for a in self._plan.output:
            try:
                exprs.append(AttributeRef(scope.lookup(a.name)))
            except AnalysisException:
                if not allowMissingColumns:
                    raise AnalysisException(f"[UNRESOLVED_COLUMN.WITH_SUGGESTION] Cannot resolve column name "
                                            f"\"{a.name}\" among ({', '.join(other.columns)}).",
                                            error_class="UNRESOLVED_COLUMN.WITH_SUGGESTION") from None
                from sparkctl.sql.expressions import Cast
                exprs.append(Alias(Cast(Literal(None), a.dtype), a.name))
        left = self._plan
        if allowMissingColumns:
            extra = [b for b in other._plan.output if b.name.lower() not in {a.name.lower() for a in left.output}]
            if extra:
                from sparkctl.sql.expressions import Cast
                left = lp.Project(left, [AttributeRef(a) for a in left.output] +
                                  [Alias(Cast(Literal(None), b.dtype), b.name) for b in extra])
                exprs += [AttributeRef(b) for b in extra]
        return self._with(lp.Union([left, lp.Project(other._plan, exprs)]))

    def repartition(self, numPartitions: Any, *cols: Any) -> "DataFrame":
        if not isinstance(numPartitions, int):
            cols = (numPartitions, *cols)
            numPartitions = self.sparkSession.sparkContext.defaultParallelism
        return self._with(lp.Repartition(self._plan, numPartitions, [_expr_of(c) for c in cols]))

    def coalesce(self, numPartitions: int) -> "DataFrame":
        return self._with(lp.Repartition(self._plan, numPartitions, shuffle=False))

    def cache(self) -> "DataFrame":
        from sparkctl.storagelevel import StorageLevel
        return self.persist(StorageLevel.MEMORY_AND_DISK)

    def persist(self, storageLevel: Any = None) -> "DataFrame":
        from sparkctl.storagelevel import StorageLevel
        if not isinstance(self._plan, lp.CachedPlan):
            self._plan = lp.CachedPlan(self._plan, storageLevel or StorageLevel.MEMORY_AND_DISK)
        return self

    def unpersist(self, blocking: bool = False) -> "DataFrame":
        if isinstance(self._plan, lp.CachedPlan):
            if self._plan.rdd is not None:
                self._plan.rdd.unpersist()
            self._plan = self._plan.child
        return self

    def getNumPartitions(self) -> int:
        return self._rdd_of_tables().getNumPartitions()

    def createOrReplaceTempView(self, name: str) -> None:
        self.sparkSession._views[name.lower()] = self

    def createTempView(self, name: str) -> None:
        if name.lower() in self.sparkSession._views:
            raise AnalysisException(f"[TEMP_TABLE_OR_VIEW_ALREADY_EXISTS] Cannot create the temporary view `{name}` "
                                    f"because it already exists.", error_class="TEMP_TABLE_OR_VIEW_ALREADY_EXISTS")
        self.createOrReplaceTempView(name)

    registerTempTable = createOrReplaceTempView

    @property
    def write(self) -> Any:
        from sparkctl.sql.readwriter import DataFrameWriter
        return DataFrameWriter(self)

    @property
    def na(self) -> "DataFrameNaFunctions":
        return DataFrameNaFunctions(self)

    def fillna(self, value: Any, subset: Sequence[str] | None = None) -> "DataFrame":
        return self.na.fill(value, subset)

    def dropna(self, how: str = "any", thresh: int | None = None, subset: Sequence[str] | None = None) -> "DataFrame":
        return self.na.drop(how, thresh, subset)

    def mapInPandas(self, func: Any, schema: Any, barrier: bool = False) -> "DataFrame":
        from sparkctl.sql.udf import MapInBatches
        return self._with(MapInBatches(self._plan, func, schema, pandas=True))

    def mapInArrow(self, func: Any, schema: Any, barrier: bool = False) -> "DataFrame":
        from sparkctl.sql.udf import MapInBatches
        return self._with(MapInBatches(self._plan, func, schema, pandas=False))

    def _set_operation(self, other: "DataFrame", how: str, distinct: bool) -> "DataFrame":
        if len(other.columns) != len(self.columns):
            raise AnalysisException(f"[NUM_COLUMNS_MISMATCH] {how.upper()} can only be performed on inputs with the "
                                    f"same number of columns, but the first input has {len(self.columns)} columns "
                                    f"and the second input has {len(other.columns)} columns.",
                                    error_class="NUM_COLUMNS_MISMATCH")
        left = self.distinct() if distinct else self
        right = other.toDF(*[f"__set{i}" for i in range(len(other.columns))])
        same = [Column(AttributeRef(a)).eqNullSafe(Column(AttributeRef(b)))
                for a, b in zip(left._plan.output, right._plan.output)]
        # without columns, any row matches any other
        cond = reduce(operator.and_, same)._expr if same else Literal(True)
        joined = left._with(lp.Join(left._plan, right._plan, "semi" if how == "intersect" else "anti", cond))
        return joined

    def intersect(self, other: "DataFrame") -> "DataFrame":
        return self._set_operation(other, "intersect", True)

    def subtract(self, other: "DataFrame") -> "DataFrame":
        return self._set_operation(other, "except", True)

    def describe(self, *cols: Any) -> "DataFrame":
        from sparkctl.sql.describe import describe
        return describe(self, cols)

    def summary(self, *statistics: str) -> "DataFrame":
        from sparkctl.sql.describe import summary
        return summary(self, statistics)

    def exceptAll(self, other: "DataFrame") -> "DataFrame":
        """The rows of this DataFrame not in *other*, as a multiset (duplicates kept)."""
        return self._multiset_operation(other, "except")

    def intersectAll(self, other: "DataFrame") -> "DataFrame":
        """The rows in both DataFrames, each as many times as the lesser count."""
        return self._multiset_operation(other, "intersect")

    def _multiset_operation(self, other: "DataFrame", how: str) -> "DataFrame":
        # as Spark rewrites them: count each distinct row on both sides (null-safe, by
        # grouping), keep the difference or the lesser count, and replicate the row that often
        from sparkctl.sql import functions as F
        if len(other.columns) != len(self.columns):
            raise AnalysisException(f"[NUM_COLUMNS_MISMATCH] {how.upper()} ALL can only be performed on inputs with "
                                    f"the same number of columns, but the first input has {len(self.columns)} "
                                    f"columns and the second input has {len(other.columns)} columns.",
                                    error_class="NUM_COLUMNS_MISMATCH")
        names = [f"__c{i}" for i in range(len(self.columns))]
        left = self.toDF(*names).withColumns({"__l": F.lit(1), "__r": F.lit(0)})
        right = other.toDF(*names).withColumns({"__l": F.lit(0), "__r": F.lit(1)})
        counted = left.union(right).groupBy(*names).agg(F.sum("__l").alias("__nl"), F.sum("__r").alias("__nr"))
        keep = F.col("__nl") - F.col("__nr") if how == "except" else F.least(F.col("__nl"), F.col("__nr"))
        kept = counted.withColumn("__k", keep).filter(F.col("__k") > 0)
        copies = kept.select(*names, F.explode(F.array_repeat(F.lit(0), F.col("__k"))).alias("__x"))
        out = copies.select(*names).toDF(*self.columns)
        plan = out._plan
        assert isinstance(plan, lp.Project)  # toDF's renaming
        nullable = [a.nullable and (how == "except" or b.nullable)
                    for a, b in zip(self._plan.output, other._plan.output)]
        plan._output = [a if a.nullable == nl else a.__class__(a.name, a.dtype, nl, a.id, a.qualifier)
                        for a, nl in zip(plan.output, nullable)]
        return out

    def __getstate__(self) -> Any:
        raise TypeError("a DataFrame cannot be used inside a task (it belongs to the driver)")


def _fresh_ids(plan: lp.Plan) -> lp.Plan:
    """The same columns under new ids (a self-join's right side, as Spark deduplicates it),
    still nameable by the side's alias."""
    project = lp.Project(plan, [Alias(AttributeRef(a), a.name) for a in plan.output])
    project._output = [new.with_qualifier(old.qualifier) for new, old in zip(project._output, plan.output)]
    return project


class GroupedData:
    def __init__(self, df: DataFrame, groups: list[Expr]) -> None:
        self._df = df
        self._groups = groups

    def agg(self, *exprs: Any) -> DataFrame:
        if len(exprs) == 1 and isinstance(exprs[0], dict):
            from sparkctl.sql import functions as F
            cols = [getattr(F, fn if fn != "count" else "count")(name) for name, fn in exprs[0].items()]
        else:
            cols = list(exprs)
        aggs = [c._expr for c in cols]
        outputs = [g for g in self._groups if not isinstance(g, Star)] + aggs
        return self._df._with(lp.Aggregate(self._df._plan, self._groups, outputs))

    def _simple(self, name: str, cols: Sequence[str]) -> DataFrame:
        from sparkctl.sql import functions as F
        if not cols:
            numeric = [a.name for a in self._df._plan.output
                       if pa.types.is_integer(a.dtype) or pa.types.is_floating(a.dtype) or pa.types.is_decimal(a.dtype)]
            group_names = {strip_alias(g).sql().lower() for g in self._groups}
            cols = [c for c in numeric if c.lower() not in group_names]
        return self.agg(*[getattr(F, name)(c) for c in cols])

    def count(self) -> DataFrame:
        from sparkctl.sql import functions as F
        return self.agg(F.count("*").alias("count"))

    def sum(self, *cols: str) -> DataFrame:
        return self._simple("sum", cols)

    def avg(self, *cols: str) -> DataFrame:
        return self._simple("avg", cols)

    mean = avg

    def min(self, *cols: str) -> DataFrame:
        return self._simple("min", cols)

    def max(self, *cols: str) -> DataFrame:
        return self._simple("max", cols)

    def applyInPandas(self, func: Any, schema: Any) -> DataFrame:
        from sparkctl.sql.udf import apply_in_pandas
        return apply_in_pandas(self._df, self._groups, func, schema)

    def cogroup(self, other: "GroupedData") -> Any:
        from sparkctl.errors import DataFramesNotSupportedError
        raise DataFramesNotSupportedError("GroupedData.cogroup (cogroup(...).applyInPandas)")

    def pivot(self, pivot_col: str, values: list[Any] | None = None) -> "PivotedData":
        return PivotedData(self, pivot_col, values)


class PivotedData:
    """groupBy(...).pivot(col[, values]).agg(...): one aggregate column per pivot value."""

    def __init__(self, grouped: GroupedData, pivot_col: str, values: list[Any] | None) -> None:
        self.grouped, self.pivot_col, self.values = grouped, pivot_col, values

    def agg(self, *exprs: Column) -> DataFrame:
        from sparkctl.sql import functions as F
        values = self.values
        df = self.grouped._df
        if values is None:
            values = sorted((r[0] for r in df.select(self.pivot_col).distinct().collect() if r[0] is not None),
                            key=lambda v: (str(type(v)), v))
        cols = []
        for v in values:
            for e in exprs:
                call = strip_alias(e._expr)
                assert isinstance(call, AggregateFunc)
                cond_child = F.when(F.col(self.pivot_col) == v, Column(call.child)) if call.child is not None \
                    else F.when(F.col(self.pivot_col) == v, F.lit(1))
                new = AggregateFunc(call.name, cond_child._expr, call.distinct)
                name = str(v) if len(exprs) == 1 else f"{v}_{e._expr.sql()}"
                cols.append(Column(Alias(new, name)))
        return self.grouped.agg(*cols)

    def sum(self, *cols: str) -> DataFrame:
        from sparkctl.sql import functions as F
        return self.agg(*[F.sum(c) for c in cols])

    def count(self) -> DataFrame:
        from sparkctl.sql import functions as F
        return self.agg(F.count("*"))


class DataFrameNaFunctions:
    def __init__(self, df: DataFrame) -> None:
        self.df = df

    def fill(self, value: Any, subset: Sequence[str] | None = None) -> DataFrame:
        from sparkctl.sql import functions as F
        df = self.df
        exprs: list[Expr] = []
        names = None if subset is None else {s.lower() for s in ([subset] if isinstance(subset, str) else subset)}
        for a in df._plan.output:
            v = value.get(a.name) if isinstance(value, dict) else value
            fits = v is not None and (
                (isinstance(v, bool) and pa.types.is_boolean(a.dtype)) or
                (isinstance(v, (int, float)) and not isinstance(v, bool) and
                 (pa.types.is_integer(a.dtype) or pa.types.is_floating(a.dtype) or pa.types.is_decimal(a.dtype))) or
                (isinstance(v, str) and pa.types.is_string(a.dtype)))
            chosen = (names is None or a.name.lower() in names) and fits
            if isinstance(value, dict):
                chosen = a.name in value and fits
            if chosen:
                from sparkctl.sql.expressions import Cast
                exprs.append(Alias(F.coalesce(Column(AttributeRef(a)), Column(Cast(Literal(v), a.dtype)))._expr,
                                   a.name))
            else:
                exprs.append(AttributeRef(a))
        return df._with(lp.Project(df._plan, exprs))

    def drop(self, how: str = "any", thresh: int | None = None, subset: Sequence[str] | None = None) -> DataFrame:
        from sparkctl.sql import functions as F
        df = self.df
        cols = [df[c] for c in (subset if subset is not None else df.columns)]
        if thresh is None:
            thresh = len(cols) if how == "any" else 1
        count = None
        for c in cols:
            one = F.when(c.isNotNull(), F.lit(1)).otherwise(F.lit(0))
            count = one if count is None else count + one
        return df.filter(count >= thresh) if count is not None else df
