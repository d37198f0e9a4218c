"""``spark.read`` and ``df.write``: PySpark's DataFrameReader and DataFrameWriter over the
file data sources (``datasources.py``), any URL, committed as RDD output is."""
from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Iterator

import pyarrow as pa

from sparkctl.errors import AnalysisException
from sparkctl.sql import plan as lp
from sparkctl.sql.expressions import Attribute

if TYPE_CHECKING:
    from sparkctl.sql.dataframe import DataFrame

FORMATS = ("text", "csv", "json", "parquet")
_MODES = {"error": "error", "errorifexists": "error", "default": "error", "overwrite": "overwrite",
          "append": "append", "ignore": "ignore"}


def _options(kwargs: dict[str, Any]) -> dict[str, str]:
    out = {}
    for k, v in kwargs.items():
        if v is None:
            continue
        out[k] = ("true" if v else "false") if isinstance(v, bool) else str(v)
    return out


def _check_format(fmt: str) -> str:
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise AnalysisException(f"[DATA_SOURCE_NOT_FOUND] Failed to find the data source: {fmt}. sparkctl reads and "
                                f"writes {', '.join(FORMATS)}.", error_class="DATA_SOURCE_NOT_FOUND")
    return fmt


class DataFrameReader:
    def __init__(self, session: Any) -> None:
        self._session = session
        self._format = "parquet"
        self._options: dict[str, str] = {}
        self._schema: Any = None

    def format(self, source: str) -> "DataFrameReader":
        self._format = _check_format(source)
        return self

    def option(self, key: str, value: Any) -> "DataFrameReader":
        self._options.update(_options({key: value}))
        return self

    def options(self, **options: Any) -> "DataFrameReader":
        self._options.update(_options(options))
        return self

    def schema(self, schema: Any) -> "DataFrameReader":
        from sparkctl.sql.creation import _schema_arg
        struct, _ = _schema_arg(schema)
        self._schema = struct
        return self

    def load(self, path: Any = None, format: str | None = None, schema: Any = None,  # noqa: A002
             **options: Any) -> "DataFrame":
        if format is not None:
            self.format(format)
        if schema is not None:
            self.schema(schema)
        self._options.update(_options(options))
        if path is None:
            raise AnalysisException("[UNABLE_TO_INFER_SCHEMA] a path is needed to load files",
                                    error_class="UNABLE_TO_INFER_SCHEMA")
        paths = [path] if isinstance(path, str) else list(path)
        return self._scan(paths)

    def _scan(self, paths: list[str]) -> "DataFrame":
        from sparkctl.sql import datasources as ds
        from sparkctl.sql.dataframe import DataFrame
        from sparkctl.sql.arrow_types import schema_to_arrow
        session = self._session
        arrow_schema = schema_to_arrow(self._schema) if self._schema is not None else None
        scan = ds.plan_scan(self._format, paths, dict(self._options), arrow_schema, session.sparkContext._conf,
                            session.sparkContext.defaultMinPartitions)
        attrs = [Attribute(f.name, f.type, True) for f in scan.schema]
        return DataFrame(lp.FileRelation(scan, attrs, self._format, paths), session)

    def _read(self, fmt: str, paths: Any, options: dict[str, Any], schema: Any = None) -> "DataFrame":
        self.format(fmt)
        if schema is not None:
            self.schema(schema)
        self._options.update(_options(options))
        return self._scan([paths] if isinstance(paths, str) else list(paths))

    def text(self, paths: Any, wholetext: bool = False, lineSep: str | None = None, **options: Any) -> "DataFrame":
        return self._read("text", paths, {"wholetext": wholetext if wholetext else None, "lineSep": lineSep,
                                          **options})

    def csv(self, path: Any, schema: Any = None, **options: Any) -> "DataFrame":
        return self._read("csv", path, options, schema)

    def json(self, path: Any, schema: Any = None, **options: Any) -> "DataFrame":
        return self._read("json", path, options, schema)

    def parquet(self, *paths: str, **options: Any) -> "DataFrame":
        return self._read("parquet", list(paths), options)

    def table(self, tableName: str) -> "DataFrame":
        return self._session.table(tableName)


class DataFrameWriter:
    def __init__(self, df: "DataFrame") -> None:
        self._df = df
        self._format = "parquet"
        self._mode = "error"
        self._options: dict[str, str] = {}
        self._partition_by: list[str] = []

    def mode(self, saveMode: str | None) -> "DataFrameWriter":
        key = (saveMode or "error").lower()
        if key not in _MODES:
            raise ValueError(f"[INVALID_SAVE_MODE] The specified save mode \"{saveMode}\" is invalid. Valid save "
                             f"modes include \"append\", \"overwrite\", \"ignore\", \"error\", \"errorifexists\", "
                             f"and \"default\".")
        self._mode = _MODES[key]
        return self

    def format(self, source: str) -> "DataFrameWriter":
        self._format = _check_format(source)
        return self

    def option(self, key: str, value: Any) -> "DataFrameWriter":
        self._options.update(_options({key: value}))
        return self

    def options(self, **options: Any) -> "DataFrameWriter":
        self._options.update(_options(options))
        return self

    def partitionBy(self, *cols: str) -> "DataFrameWriter":
        if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
            cols = tuple(cols[0])
        self._partition_by = list(cols)
        return self

    def save(self, path: str, format: str | None = None, mode: str | None = None,  # noqa: A002
             partitionBy: Any = None, **options: Any) -> None:
        if format is not None:
            self.format(format)
        if mode is not None:
            self.mode(mode)
        if partitionBy is not None:
            self.partitionBy(partitionBy)
        self._options.update(_options(options))
        self._write(path)

    def _write(self, path: str) -> None:
        from sparkctl.fs import filesystem_for
        from sparkctl.rdd.output import save
        df = self._df
        sc = df.sparkSession.sparkContext
        if self._mode == "ignore":
            fs = filesystem_for(path, sc._conf)
            if fs.exists(fs.strip(path)):
                return
        if self._format == "text" and len(df.columns) != 1:
            raise AnalysisException(f"[_LEGACY_ERROR_TEMP_1125] Text data source supports only a single column, and "
                                    f"you have {len(df.columns)} columns.", error_class="_LEGACY_ERROR_TEMP_1125")
        names = df.columns
        for p in self._partition_by:
            if p not in names:
                raise AnalysisException(f"[UNRESOLVED_COLUMN.WITH_SUGGESTION] partition column `{p}` is not one of "
                                        f"[{', '.join(names)}]", error_class="UNRESOLVED_COLUMN.WITH_SUGGESTION")
        tables = df._rdd_of_tables()
        writer = _TableFiles(self._format, dict(self._options), names, list(self._partition_by), uuid.uuid4().hex)
        save(tables, path, writer, "append" if self._mode == "append" else self._mode)

    def text(self, path: str, compression: str | None = None, lineSep: str | None = None) -> None:
        self.format("text").options(compression=compression, lineSep=lineSep)._write(path)

    def csv(self, path: str, mode: str | None = None, compression: str | None = None, sep: str | None = None,
            header: Any = None, **options: Any) -> None:
        if mode is not None:
            self.mode(mode)
        self.format("csv").options(compression=compression, sep=sep, header=header, **options)._write(path)

    def json(self, path: str, mode: str | None = None, compression: str | None = None, **options: Any) -> None:
        if mode is not None:
            self.mode(mode)
        self.format("json").options(compression=compression, **options)._write(path)

    def parquet(self, path: str, mode: str | None = None, partitionBy: Any = None,
                compression: str | None = None) -> None:
        if mode is not None:
            self.mode(mode)
        if partitionBy is not None:
            self.partitionBy(partitionBy)
        self.format("parquet").options(compression=compression)._write(path)


class _TableFiles:
    """A task's writer of its tables: one file, or one a partition value (``k=v/``)."""

    def __init__(self, fmt: str, options: dict[str, str], names: list[str], partition_by: list[str],
                 job: str) -> None:
        self.fmt, self.options, self.names, self.partition_by, self.job = fmt, options, names, partition_by, job

    def __call__(self, fs: Any, attempt_dir: str, part: int, tables: Iterator[pa.Table]) -> list[tuple[str, int, int]]:
        import posixpath

        from sparkctl.sql import datasources as ds
        from sparkctl.sql.execution import concat
        table = concat(list(tables), [])
        if table.num_columns:
            table = table.rename_columns(self.names)
        ext = ds.file_extension(self.fmt, self.options)
        base = f"part-{part:05d}-{self.job}-c000{ext}"
        groups: list[tuple[str, pa.Table]]
        if not self.partition_by:
            groups = [("", table)]
        else:
            groups = _split_partitions(table, self.partition_by)
        written = []
        for subdir, data in groups:
            name = posixpath.join(subdir, base) if subdir else base
            target = posixpath.join(attempt_dir, name)
            if subdir:
                fs.makedirs(posixpath.dirname(target))
            records, size = ds.write_partition(iter(data.to_batches()), data.schema, self.fmt, fs, target, self.options)
            written.append((name, records, size))
        return written


def _split_partitions(table: pa.Table, cols: list[str]) -> list[tuple[str, pa.Table]]:
    """(``k=v/...`` directory, rows without the partition columns) per distinct value."""
    import urllib.parse
    if table.num_rows == 0:
        return []
    keys = table.select(cols).to_pylist()
    groups: dict[tuple, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(tuple(k[c] for c in cols), []).append(i)
    rest = table.drop_columns(cols)
    out = []
    for values, rows in groups.items():
        parts = []
        for c, v in zip(cols, values):
            text = "__HIVE_DEFAULT_PARTITION__" if v is None else urllib.parse.quote(str(v), safe=" ")
            parts.append(f"{c}={text}")
        out.append(("/".join(parts), rest.take(pa.array(rows))))
    return out
