"""Python UDFs: ``F.udf`` (a function of row values) and ``F.pandas_udf`` (a function of
pandas Series), evaluated in the task slots a whole Arrow table at a time; and the
DataFrame's ``mapInPandas`` / ``mapInArrow`` (a function of an iterator of batches).

A row UDF still calls Python once per row (that is what it is), but the values are handed
over per column batch, not per row through the JVM's pipes as in PySpark.
"""
from __future__ import annotations

import functools
from functools import partial
from typing import Any, Callable, Iterator

import pyarrow as pa

from sparkctl.errors import AnalysisException
from sparkctl.sql import plan as lp
from sparkctl.sql.expressions import Attribute, Expr, as_array


def _return_type(returnType: Any) -> pa.DataType:
    from sparkctl.sql.column import parse_type
    return parse_type(returnType if returnType is not None else "string")


class PythonUDF(Expr):
    user_code = True  # an exception it raises is the user's: a PythonException naming where it was applied

    def __init__(self, func: Callable[..., Any], name: str, args: list[Expr], dtype: pa.DataType,
                 vectorized: bool) -> None:
        self.func = func
        self.name = name
        self.children = tuple(args)
        self._dtype = dtype
        self.vectorized = vectorized

    @property
    def dtype(self) -> pa.DataType:
        return self._dtype

    def eval(self, table: pa.Table) -> Any:
        n = table.num_rows
        columns = [as_array(c.eval(table), n) for c in self.children]
        if self.vectorized:
            series = [c.to_pandas() for c in columns]
            result = self.func(*series)
            if len(result) != n:
                raise AnalysisException(f"[SCHEMA_MISMATCH_FOR_PANDAS_UDF] the pandas UDF {self.name} returned "
                                        f"{len(result)} values for {n} rows", error_class="SCHEMA_MISMATCH_FOR_PANDAS_UDF")
            return pa.array(result, type=self._dtype, from_pandas=True)
        values = [c.to_pylist() for c in columns]
        func = self.func
        out = [func(*row) for row in zip(*values)] if values else [func() for _ in range(n)]
        return pa.array(out, type=self._dtype)

    def sql(self) -> str:
        return f"{self.name}({', '.join(c.sql() for c in self.children)})"


class UserDefinedFunction:
    """What ``F.udf(f, returnType)`` returns: call it with columns to get a Column."""

    def __init__(self, func: Callable[..., Any], returnType: Any = None, name: str | None = None,
                 vectorized: bool = False) -> None:
        self.func = func
        self.returnType = returnType if returnType is not None else "string"
        self._name: str = name or str(getattr(func, "__name__", "udf"))
        self.vectorized = vectorized
        functools.update_wrapper(self, func)  # type: ignore[arg-type]

    def __call__(self, *cols: Any) -> Any:
        from sparkctl.sql.column import Column
        from sparkctl.sql.functions import _c
        expr = PythonUDF(self.func, self._name, [_c(c) for c in cols], _return_type(self.returnType),
                         self.vectorized)
        return Column(expr)


def udf(f: Any = None, returnType: Any = None, *, useArrow: bool | None = None) -> Any:
    if f is None or isinstance(f, (str, pa.DataType)) or hasattr(f, "simpleString"):
        rt = f if returnType is None else returnType
        return lambda func: UserDefinedFunction(func, rt)
    return UserDefinedFunction(f, returnType)


def pandas_udf(f: Any = None, returnType: Any = None, functionType: Any = None) -> Any:
    if f is None or isinstance(f, (str, pa.DataType)) or hasattr(f, "simpleString"):
        rt = f if returnType is None else returnType
        return lambda func: UserDefinedFunction(func, rt, vectorized=True)
    return UserDefinedFunction(f, returnType, vectorized=True)


# ---------------------------------------------------------------------------- spark.udf
class UDFRegistration:
    """``spark.udf``: Python functions registered by name, callable from ``spark.sql``,
    ``selectExpr`` and ``F.expr`` as built-ins are."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def register(self, name: str, f: Any, returnType: Any = None) -> UserDefinedFunction:
        if isinstance(f, UserDefinedFunction):
            if returnType is not None:
                raise TypeError("[CANNOT_SPECIFY_RETURN_TYPE_FOR_UDF] Invalid return type: returnType can not be "
                                f"specified when f is a user-defined function, but got {returnType}.")
            registered = UserDefinedFunction(f.func, f.returnType, name=name, vectorized=f.vectorized)
        else:
            registered = UserDefinedFunction(f, returnType, name=name)
        self._session._udfs[name.lower()] = registered
        return registered

    def registerJavaFunction(self, name: str, javaClassName: str, returnType: Any = None) -> None:
        from sparkctl.errors import DataFramesNotSupportedError
        raise DataFramesNotSupportedError(f"spark.udf.registerJavaFunction({name!r}, {javaClassName!r}): there is no "
                                          f"JVM in sparkctl")

    registerJavaUDAF = registerJavaFunction


class FunctionsWithUDFs:
    """The functions module as SQL sees it: the built-ins, then the session's registered UDFs."""

    def __init__(self, functions: Any, udfs: dict[str, UserDefinedFunction]) -> None:
        self._functions = functions
        self._udfs = udfs

    def __getattr__(self, name: str) -> Any:
        udf = self._udfs.get(name.lower())
        if udf is not None:
            return lambda *cols: udf(*cols)  # no signature: every argument is a column
        return getattr(self._functions, name)


def functions_for_sql() -> Any:
    """``functions``, with the active session's registered UDFs."""
    import sparkctl.sql.functions as F
    from sparkctl.sql.session import SparkSession
    session = SparkSession._activeSession or SparkSession._instantiatedSession
    udfs = getattr(session, "_udfs", None) if session is not None else None
    return FunctionsWithUDFs(F, udfs) if udfs else F


# ---------------------------------------------------------------------------- mapInPandas / mapInArrow
class MapInBatches(lp.Plan):
    def __init__(self, child: lp.Plan, func: Callable[..., Any], schema: Any, pandas: bool) -> None:
        from sparkctl.sql.arrow_types import schema_to_arrow, to_arrow
        from sparkctl.sql.creation import _schema_arg
        self.children = (child,)
        self.func = func
        self.pandas = pandas
        struct, _ = _schema_arg(schema)
        self.arrow_schema = schema_to_arrow(struct)
        self._output = [Attribute(f.name, to_arrow(f.dataType), f.nullable) for f in struct.fields]

    @property
    def output(self) -> list[Attribute]:
        return self._output

    def node_string(self) -> str:
        return f"{'MapInPandas' if self.pandas else 'MapInArrow'} {getattr(self.func, '__name__', 'func')}"


def map_in_batches_rdd(planner: Any, plan: MapInBatches) -> Any:
    child = plan.children[0]
    names = [a.name for a in child.output]
    return planner.execute(child).mapPartitions(partial(_map_in, plan=plan, names=names))


def _map_in(tables: Iterator[pa.Table], plan: MapInBatches, names: list[str]) -> Iterator[pa.Table]:
    def batches() -> Iterator[Any]:
        for t in tables:
            t = t.rename_columns(names)
            for b in t.to_batches():
                yield b.to_pandas() if plan.pandas else b
    columns = [a.column for a in plan.output]
    for out in plan.func(batches()):
        if plan.pandas:
            table = pa.Table.from_pandas(out, schema=plan.arrow_schema, preserve_index=False)
        else:
            table = pa.Table.from_batches([out]) if isinstance(out, pa.RecordBatch) else out
            table = table.cast(plan.arrow_schema)
        if table.num_rows:
            yield table.rename_columns(columns)


# ---------------------------------------------------------------------------- applyInPandas
def apply_in_pandas(df: Any, groups: list[Expr], func: Callable[..., Any], schema: Any) -> Any:
    """``groupBy(keys).applyInPandas(func, schema)``: rows exchanged by the keys (so a group is
    whole in one partition), then each group handed to *func* as one pandas DataFrame
    (``func(key, pdf)`` when it takes two parameters), in the task slots."""
    import inspect

    from sparkctl.errors import DataFramesNotSupportedError
    from sparkctl.sql.column import Column
    from sparkctl.sql.expressions import AttributeRef
    scope = df._plan.scope()
    keys = []
    for g in groups:
        resolved = g.resolve(scope)
        if not isinstance(resolved, AttributeRef):
            raise DataFramesNotSupportedError(f"applyInPandas grouped by the expression {g.sql()} (group by columns)")
        keys.append(resolved.attr.name)
    try:
        wants_key = len(inspect.signature(func).parameters) == 2
    except (TypeError, ValueError):
        wants_key = False
    n = df.sparkSession.sparkContext.defaultParallelism if keys else 1
    exchanged = df.repartition(n, *[Column(AttributeRef(scope.lookup(k))) for k in keys])
    return exchanged.mapInPandas(partial(_apply_groups, func=func, keys=keys, wants_key=wants_key), schema)


def _apply_groups(batches: Iterator[Any], func: Callable[..., Any], keys: list[str], wants_key: bool) -> Iterator[Any]:
    import pandas as pd
    frames = list(batches)
    if not frames:
        return
    pdf = pd.concat(frames, ignore_index=True)
    if not len(pdf):
        return
    if not keys:
        yield func((), pdf) if wants_key else func(pdf)
        return
    for key, group in pdf.groupby(keys, dropna=False, sort=False):
        group = group.reset_index(drop=True)
        key = key if isinstance(key, tuple) else (key,)
        key = tuple(None if pd.isna(k) else (k.item() if hasattr(k, "item") else k) for k in key)
        yield func(key, group) if wants_key else func(group)
