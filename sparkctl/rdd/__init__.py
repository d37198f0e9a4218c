"""``sparkctl.rdd``: where PySpark's ``pyspark.rdd`` is, so ``from sparkctl.rdd import RDD``
ports as it reads. The RDD class lives in :mod:`sparkctl.rdd.rdd`, its key-value operations in
:mod:`sparkctl.rdd.pair`, the RDD kinds in :mod:`sparkctl.rdd.narrow`, ``shuffled`` and ``sources``.
"""
from __future__ import annotations

from sparkctl.rdd.dependencies import Partitioner
from sparkctl.rdd.narrow import MapPartitionsRDD as PipelinedRDD
from sparkctl.rdd.rdd import RDD
from sparkctl.rdd.resultiterable import ResultIterable
from sparkctl.util.hashing import portable_hash

__all__ = ["RDD", "PipelinedRDD", "Partitioner", "ResultIterable", "portable_hash"]
