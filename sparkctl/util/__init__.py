"""Helpers shared by sparkctl's parts; like ``pyspark.util``, it offers the threads that
carry a SparkContext's local properties (``from sparkctl.util import InheritableThread``)."""
from __future__ import annotations

from sparkctl.util.threads import InheritableThread, inheritable_thread_target

__all__ = ["InheritableThread", "inheritable_thread_target"]
