"""The RDD that reads a file scan: one partition a split of the data source's plan, each
read as Arrow record batches by its task and handed on as tables."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

import pyarrow as pa

from sparkctl.rdd.dependencies import Partition
from sparkctl.rdd.rdd import RDD
from sparkctl.sql.expressions import Attribute

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

    def _get_partitions(self) -> list[Partition]:
        return list(self._parts)

    def compute(self, split: Partition, tc: "TaskContext") -> Iterator[Any]:
        from sparkctl.sql import datasources as ds
        assert isinstance(split, ScanPartition)
        if split.split is None:
            return
        names = [a.name for a in self.attrs]
        columns = [a.column for a in self.attrs]
        for batch in ds.read_split(self.scan, split.split, names):
            table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
            if table.num_rows:
                yield table.select(names).rename_columns(columns) if table.column_names != names \
                    else table.rename_columns(columns)
