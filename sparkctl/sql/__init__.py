"""``sparkctl.sql``: where PySpark's ``pyspark.sql`` is, so ``from sparkctl.sql import
SparkSession`` ports as it reads.

Only the session is here yet. The DataFrame names a program may import from ``pyspark.sql``
(``DataFrame``, ``Row``, ``functions``...) raise :class:`~sparkctl.errors.DataFramesNotSupportedError`
at the import, naming the name, rather than an ``ImportError`` that reads like a broken install.
"""
from __future__ import annotations

from typing import Any

from sparkctl.errors import DataFramesNotSupportedError
from sparkctl.sql.conf import RuntimeConfig
from sparkctl.sql.session import SparkSession

__all__ = ["SparkSession", "RuntimeConfig"]

# pyspark.sql's DataFrame-side names
_DATAFRAME_NAMES = frozenset({
    "SQLContext", "HiveContext", "UDFRegistration", "UDTFRegistration", "DataFrame", "GroupedData", "Column",
    "Catalog", "Observation", "Row", "DataFrameNaFunctions", "DataFrameStatFunctions", "Window", "WindowSpec",
    "DataFrameReader", "DataFrameWriter", "DataFrameWriterV2", "PandasCogroupedOps", "VariantVal",
    "functions", "types", "window", "column", "streaming", "avro", "pandas", "udf", "udtf", "readwriter",
    "dataframe", "group", "catalog", "observation", "datasource", "DataSource", "DataSourceReader",
    "DataSourceStreamReader", "DataSourceWriter", "DataSourceRegistration", "InputPartition", "WriterCommitMessage",
    "MergeIntoWriter", "TableValuedFunction",
})


def __getattr__(name: str) -> Any:
    if name in _DATAFRAME_NAMES:
        raise DataFramesNotSupportedError(f"sparkctl.sql.{name}")
    raise AttributeError(f"module 'sparkctl.sql' has no attribute {name!r}")
