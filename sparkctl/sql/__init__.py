"""``sparkctl.sql``: where PySpark's ``pyspark.sql`` is, so a DataFrame program ports by
replacing ``pyspark`` with ``sparkctl`` in its imports.

``SparkSession`` needs nothing more than sparkctl; DataFrames need pyarrow (the ``sql``
extra: ``pip install 'sparkctl[sql]'``), so their names are imported when first used, and
a missing pyarrow is one clear error naming the extra. Names of ``pyspark.sql`` that
sparkctl does not have yet raise :class:`~sparkctl.errors.DataFramesNotSupportedError`,
naming them, rather than an ImportError that reads like a broken install.
"""
from __future__ import annotations

import importlib
from typing import Any

from sparkctl.errors import DataFramesNotSupportedError
from sparkctl.sql.conf import RuntimeConfig
from sparkctl.sql.session import SparkSession

__all__ = ["SparkSession", "RuntimeConfig", "DataFrame", "Column", "Row", "GroupedData", "functions", "types",
           "DataFrameReader", "DataFrameWriter", "DataFrameNaFunctions", "Catalog"]

#: name -> (module, attribute or None for the module itself)
_LAZY = {
    "DataFrame": ("sparkctl.sql.dataframe", "DataFrame"),
    "GroupedData": ("sparkctl.sql.dataframe", "GroupedData"),
    "DataFrameNaFunctions": ("sparkctl.sql.dataframe", "DataFrameNaFunctions"),
    "Column": ("sparkctl.sql.column", "Column"),
    "Row": ("sparkctl.sql.row", "Row"),
    "DataFrameReader": ("sparkctl.sql.readwriter", "DataFrameReader"),
    "DataFrameWriter": ("sparkctl.sql.readwriter", "DataFrameWriter"),
    "Catalog": ("sparkctl.sql.creation", "Catalog"),
    "functions": ("sparkctl.sql.functions", None),
    "types": ("sparkctl.sql.types", None),
    "column": ("sparkctl.sql.column", None),
    "dataframe": ("sparkctl.sql.dataframe", None),
    "readwriter": ("sparkctl.sql.readwriter", None),
    "group": ("sparkctl.sql.dataframe", None),
    "Window": ("sparkctl.sql.window", "Window"),
    "WindowSpec": ("sparkctl.sql.window", "WindowSpec"),
    "window": ("sparkctl.sql.window", None),
}

# pyspark.sql's names sparkctl does not have yet
_NOT_YET = frozenset({
    "SQLContext", "HiveContext", "UDFRegistration", "UDTFRegistration", "Observation",
    "DataFrameStatFunctions", "DataFrameWriterV2", "PandasCogroupedOps", "VariantVal",
    "streaming", "avro", "pandas", "udf", "udtf", "catalog", "observation", "datasource", "DataSource",
    "DataSourceReader", "DataSourceStreamReader", "DataSourceWriter", "DataSourceRegistration", "InputPartition",
    "WriterCommitMessage", "MergeIntoWriter", "TableValuedFunction",
})


def require_arrow() -> None:
    """DataFrames run on Arrow: without pyarrow, one line naming the extra."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ImportError("sparkctl's DataFrames need pyarrow: pip install 'sparkctl[sql]'") from None


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        require_arrow()
        module_name, attr = _LAZY[name]
        module = importlib.import_module(module_name)
        value = module if attr is None else getattr(module, attr)
        globals()[name] = value
        return value
    if name in _NOT_YET:
        raise DataFramesNotSupportedError(f"sparkctl.sql.{name}")
    raise AttributeError(f"module 'sparkctl.sql' has no attribute {name!r}")
