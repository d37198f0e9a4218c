"""The reduce side of a shuffle: read every map output's slice for this partition, then
aggregate (combineByKey family) or sort (sortByKey) in bounded memory."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator

from sparkctl.rdd.dependencies import Aggregator, Partition, Partitioner, ShuffleDependency
from sparkctl.rdd.rdd import RDD
from sparkctl.storage.spill import ExternalAppendOnlyMap, ExternalSorter

if TYPE_CHECKING:
    from sparkctl.taskcontext import TaskContext


class ShuffledRDD(RDD):
    def __init__(self, prev: RDD, partitioner: Partitioner, aggregator: Aggregator | None = None,
                 map_side_combine: bool = False,
                 key_ordering: tuple[Callable[[Any], Any], bool] | None = None) -> None:
        dep = ShuffleDependency(prev, prev.ctx._new_shuffle_id(), partitioner, aggregator, map_side_combine)
        super().__init__(prev.ctx, [dep])
        dep.creation_site = self._creation_site
        self.dep = dep
        self.partitioner = partitioner
        self.key_ordering = key_ordering

    def _get_partitions(self) -> list[Partition]:
        return [Partition(i) for i in range(self.dep.num_partitions)]

    def compute(self, split: Partition, tc: "TaskContext") -> Iterator[Any]:
        records = tc.read_shuffle(self.dep.shuffle_id, split.index)
        agg = self.dep.aggregator
        if agg is not None:
            amap = ExternalAppendOnlyMap(agg, tc.memory_budget, tc.local_dir, tc.batch_size)
            tc.add_completion_listener(amap.cleanup)
            if self.dep.map_side_combine:
                amap.insert_combiners(records)
            else:
                amap.insert_values(records)
            return amap.items()
        if self.key_ordering is not None:
            keyfunc, ascending = self.key_ordering
            sorter = ExternalSorter(keyfunc, ascending, tc.memory_budget, tc.local_dir, tc.batch_size)
            tc.add_completion_listener(sorter.cleanup)
            sorter.insert_all(records)
            return sorter.sorted_records()
        return records
