"""``sparkctl.resultiterable``: where PySpark's ``pyspark.resultiterable`` is (Spark's
pagerank.py imports ``ResultIterable`` from there); the class lives in
:mod:`sparkctl.rdd.resultiterable`."""
from __future__ import annotations

from sparkctl.rdd.resultiterable import ResultIterable

__all__ = ["ResultIterable"]
