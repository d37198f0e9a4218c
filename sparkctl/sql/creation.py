"""Where DataFrames come from: ``createDataFrame`` (lists, Rows, dicts, pandas, Arrow,
RDDs), ``range``, ``sql`` over temporary views, and the session's small catalog."""
from __future__ import annotations

from typing import Any

import pyarrow as pa

from sparkctl.errors import AnalysisException
from sparkctl.sql import plan as lp
from sparkctl.sql.expressions import Attribute


def _attributes(schema: Any) -> list[Attribute]:
    from sparkctl.sql.arrow_types import to_arrow
    return [Attribute(f.name, to_arrow(f.dataType), f.nullable) for f in schema.fields]


def _schema_arg(schema: Any) -> tuple[Any, list[str] | None]:
    """(a StructType or None, column names or None) from createDataFrame's ``schema``."""
    from sparkctl.sql import types as T
    if schema is None:
        return None, None
    if isinstance(schema, (list, tuple)) and all(isinstance(s, str) for s in schema):
        return None, list(schema)
    if isinstance(schema, str):
        parsed = T._parse_datatype_string(schema)
        if not isinstance(parsed, T.StructType):
            parsed = T.StructType([T.StructField("value", parsed, True)])
        return parsed, None
    if isinstance(schema, T.StructType):
        return schema, None
    if isinstance(schema, T.DataType):
        return T.StructType([T.StructField("value", schema, True)]), None
    raise TypeError(f"[NOT_LIST_OR_NONE_OR_STRUCT] Argument `schema` should be a list, None or StructType, "
                    f"got {type(schema).__name__}.")


def create_data_frame(session: Any, data: Any, schema: Any, verify: bool) -> Any:
    from sparkctl.rdd.rdd import RDD
    from sparkctl.sql.arrow_types import schema_from_arrow, schema_to_arrow
    from sparkctl.sql.dataframe import DataFrame
    from sparkctl.sql.inference import infer_schema
    from sparkctl.sql.row_conversion import verify_and_convert
    struct, names = _schema_arg(schema)
    slices = session.sparkContext.defaultParallelism
    if isinstance(data, RDD):
        if struct is None:
            sample = data.take(100)
            struct = infer_schema(sample, names)
        return DataFrame(lp.RDDRelation(data, _attributes(struct), struct), session)
    if isinstance(data, pa.Table):
        table = data
        if names:
            table = table.rename_columns(names)
        if struct is not None:
            table = table.cast(schema_to_arrow(struct))
        struct = schema_from_arrow(table.schema)
    elif type(data).__module__.startswith("pandas"):
        table = pa.Table.from_pandas(data, preserve_index=False)
        if struct is not None:
            table = table.cast(schema_to_arrow(struct))
        struct = schema_from_arrow(table.schema)
        if names:
            table = table.rename_columns(names)
            struct = schema_from_arrow(table.schema)
    else:
        rows = list(data)
        if struct is None:
            if not rows:
                raise ValueError("[CANNOT_INFER_EMPTY_SCHEMA] Can not infer schema from an empty dataset.")
            rows = [r if isinstance(r, (tuple, list, dict)) or hasattr(r, "__fields__") else (r,) for r in rows]
            struct = infer_schema(rows, names)
        elif names is None and struct is not None and len(struct.fields) == 1 and rows and \
                not isinstance(rows[0], (tuple, list, dict)) and not hasattr(rows[0], "__fields__"):
            rows = [(r,) for r in rows]
        table = verify_and_convert(rows, struct)
    attrs = _attributes(struct)
    table = table.rename_columns([a.column for a in attrs])
    return DataFrame(lp.LocalRelation(table, attrs, slices), session)


def range_data_frame(session: Any, start: int, end: int | None, step: int, num_partitions: int | None) -> Any:
    from sparkctl.sql.dataframe import DataFrame
    if end is None:
        start, end = 0, start
    n = num_partitions or session.sparkContext.defaultParallelism
    return DataFrame(lp.RangeRelation(start, end, step, n), session)


def run_sql(session: Any, query: str, args: Any = None) -> Any:
    from sparkctl.sql import functions as F
    from sparkctl.sql.sql_parser import sql_to_dataframe
    from sparkctl.sql.window import Window
    from sparkctl.sql.udf import FunctionsWithUDFs
    functions = FunctionsWithUDFs(F, session._udfs) if session._udfs else F
    return sql_to_dataframe(query, session.table, functions, Window, args=args,
                            one_row=lambda: session.range(1).select())


class Catalog:
    """The session's temporary views (there is no metastore)."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def listTables(self, dbName: str | None = None) -> list[Any]:
        from sparkctl.sql.row import Row
        return [Row(name=name, catalog=None, namespace=[], description=None, tableType="TEMPORARY",
                    isTemporary=True) for name in sorted(self.session._views)]

    def tableExists(self, tableName: str, dbName: str | None = None) -> bool:
        return tableName.lower() in self.session._views

    def dropTempView(self, viewName: str) -> bool:
        return self.session._views.pop(viewName.lower(), None) is not None

    def currentDatabase(self) -> str:
        return "default"

    def __getattr__(self, name: str) -> Any:
        raise AnalysisException(f"spark.catalog.{name} is not supported by sparkctl (it has temporary views only)")
