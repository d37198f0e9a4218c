"""``sparkctl.statcounter``: where PySpark's ``pyspark.statcounter`` is; the class lives in
:mod:`sparkctl.rdd.statcounter`."""
from __future__ import annotations

from sparkctl.rdd.statcounter import StatCounter

__all__ = ["StatCounter"]
