"""sparkctl: Apache Spark's architecture in Python, with PySpark's RDD API.

A PySpark RDD program runs with ``from pyspark import ...`` changed to
``from sparkctl import ...``.
"""
from __future__ import annotations

__version__ = "0.1.0"

from sparkctl.accumulators import Accumulator, AccumulatorParam
from sparkctl.broadcast import Broadcast
from sparkctl.conf import SparkConf
from sparkctl.context import SparkContext
from sparkctl.files import SparkFiles
from sparkctl.profiler import BasicProfiler, Profiler
from sparkctl.rdd.barrier import RDDBarrier
from sparkctl.rdd.dependencies import Partitioner
from sparkctl.rdd.rdd import RDD
from sparkctl.rdd.resultiterable import ResultIterable
from sparkctl.rdd.statcounter import StatCounter
from sparkctl.serializers import CPickleSerializer, MarshalSerializer
from sparkctl.status import SparkJobInfo, SparkStageInfo, StatusTracker
from sparkctl.storagelevel import StorageLevel
from sparkctl.taskcontext import BarrierTaskContext, BarrierTaskInfo, TaskContext
from sparkctl.util.hashing import portable_hash
from sparkctl.util.threads import InheritableThread

# PySpark's top-level names (pyspark/__init__.py), then sparkctl's own
__all__ = [
    "SparkConf", "SparkContext", "SparkFiles", "RDD", "StorageLevel", "Broadcast", "Accumulator",
    "AccumulatorParam", "MarshalSerializer", "CPickleSerializer", "StatusTracker", "SparkJobInfo", "SparkStageInfo",
    "Profiler", "BasicProfiler", "TaskContext", "RDDBarrier", "BarrierTaskContext", "BarrierTaskInfo",
    "InheritableThread",
    "StatCounter", "Partitioner", "ResultIterable", "portable_hash",
]
