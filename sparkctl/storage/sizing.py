"""Estimating how much memory a growing collection holds, cheaply.

Measuring every record would cost more than processing it, so, as Spark's SizeTracker,
we measure a sample now and then (each time the number of updates grows by 10%) and
extrapolate the bytes per update in between. The estimate errs high: objects shared
between records (interned strings, small ints) are counted once per use.
"""
from __future__ import annotations

import sys
from itertools import islice
from typing import Any, Callable

_getsizeof = sys.getsizeof
_SAMPLE = 8


def deep_size(obj: Any, depth: int = 3) -> int:
    """Approximate bytes of ``obj`` and what it holds, by sampling containers."""
    size = _getsizeof(obj)
    if depth <= 0:
        return size
    t = type(obj)
    if t is tuple or t is list:
        n = len(obj)
        if n:
            sample = obj[:_SAMPLE] if n > _SAMPLE else obj
            size += sum(deep_size(x, depth - 1) for x in sample) * n // len(sample)
    elif t is dict:
        n = len(obj)
        if n:
            sample = list(islice(obj.items(), _SAMPLE))
            size += sum(deep_size(k, depth - 1) + deep_size(v, depth - 1) for k, v in sample) * n // len(sample)
    elif t is set or t is frozenset:
        n = len(obj)
        if n:
            sample = list(islice(obj, _SAMPLE))
            size += sum(deep_size(x, depth - 1) for x in sample) * n // len(sample)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        size += deep_size(vars(obj), depth - 1)
    return size


class SizeTracker:
    """Extrapolates a collection's size from occasional samples."""

    def __init__(self, measure: Callable[[], int]) -> None:
        self._measure = measure
        self.reset()

    def reset(self) -> None:
        self.updates = 0
        self.next_sample = 64
        self._last_updates = 0
        self._last_bytes = 0
        self._bytes_per_update = 0.0

    def sample(self) -> int:
        """Measure now; returns the measured bytes. Call when ``updates >= next_sample``."""
        measured = self._measure()
        delta_updates = self.updates - self._last_updates
        if delta_updates > 0:
            self._bytes_per_update = max(0.0, (measured - self._last_bytes) / delta_updates)
        self._last_updates = self.updates
        self._last_bytes = measured
        self.next_sample = int(self.updates * 1.1) + 64
        return measured

    def estimate(self) -> int:
        return int(self._last_bytes + (self.updates - self._last_updates) * self._bytes_per_update)
