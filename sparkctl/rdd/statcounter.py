"""StatCounter: count, mean, variance, min and max in one pass (Welford), mergeable.

As PySpark's, it also takes numpy arrays of one shape: the statistics are then arrays,
element by element (numpy is imported only when such a value arrives). And as PySpark's,
``asDict()`` gives the *sample* standard deviation and variance by default, and the
population ones with ``sample=True`` (PySpark's documented, if surprising, behaviour).
"""
from __future__ import annotations

import math
from typing import Any, Iterable


def _elementwise(name: str) -> Any:
    import numpy  # only for array values
    return getattr(numpy, name)


def _sqrt(value: Any) -> Any:
    try:
        return math.sqrt(value)
    except TypeError:  # an array's variance
        return _elementwise("sqrt")(value)


class StatCounter:
    def __init__(self, values: Iterable[Any] | None = None) -> None:
        self.n = 0
        self.mu: Any = 0.0
        self.m2: Any = 0.0
        self.maxValue: Any = float("-inf")
        self.minValue: Any = float("inf")
        for v in values or ():
            self.merge(v)

    def merge(self, value: Any) -> "StatCounter":
        delta = value - self.mu
        self.n += 1
        self.mu += delta / self.n
        self.m2 += delta * (value - self.mu)
        try:
            self.maxValue = max(self.maxValue, value)
            self.minValue = min(self.minValue, value)
        except (ValueError, TypeError):  # numpy arrays: element by element
            self.maxValue = _elementwise("maximum")(self.maxValue, value)
            self.minValue = _elementwise("minimum")(self.minValue, value)
        return self

    def mergeStats(self, other: "StatCounter") -> "StatCounter":
        if not isinstance(other, StatCounter):
            raise TypeError(f"Can only merge StatCounter, not {type(other).__name__}")
        if other is self:
            return self.mergeStats(other.copy())
        if self.n == 0:
            self.mu, self.m2, self.n = _copied(other.mu), _copied(other.m2), other.n
            self.maxValue, self.minValue = _copied(other.maxValue), _copied(other.minValue)
        elif other.n != 0:
            delta = other.mu - self.mu
            if other.n * 10 < self.n:
                self.mu = self.mu + (delta * other.n) / (self.n + other.n)
            elif self.n * 10 < other.n:
                self.mu = other.mu - (delta * self.n) / (self.n + other.n)
            else:
                self.mu = (self.mu * self.n + other.mu * other.n) / (self.n + other.n)
            try:
                self.maxValue = max(self.maxValue, other.maxValue)
                self.minValue = min(self.minValue, other.minValue)
            except (ValueError, TypeError):
                self.maxValue = _elementwise("maximum")(self.maxValue, other.maxValue)
                self.minValue = _elementwise("minimum")(self.minValue, other.minValue)
            self.m2 += other.m2 + (delta * delta * self.n * other.n) / (self.n + other.n)
            self.n += other.n
        return self

    def copy(self) -> "StatCounter":
        c = StatCounter()
        c.n, c.mu, c.m2, c.maxValue, c.minValue = self.n, _copied(self.mu), _copied(self.m2), \
            _copied(self.maxValue), _copied(self.minValue)
        return c

    def count(self) -> int:
        return int(self.n)

    def mean(self) -> Any:
        return self.mu

    def sum(self) -> Any:
        return self.n * self.mu

    def min(self) -> Any:
        return self.minValue

    def max(self) -> Any:
        return self.maxValue

    def variance(self) -> Any:
        return float("nan") if self.n == 0 else self.m2 / self.n

    def sampleVariance(self) -> Any:
        return float("nan") if self.n <= 1 else self.m2 / (self.n - 1)

    def stdev(self) -> Any:
        return _sqrt(self.variance())

    def sampleStdev(self) -> Any:
        return _sqrt(self.sampleVariance())

    def asDict(self, sample: bool = False) -> dict[str, Any]:
        """The statistics by name; ``stdev`` and ``variance`` are the sample ones unless
        ``sample=True`` (PySpark's behaviour, kept so ported programs print the same)."""
        return {
            "count": self.count(), "mean": self.mean(), "sum": self.sum(),
            "min": self.min(), "max": self.max(),
            "stdev": self.stdev() if sample else self.sampleStdev(),
            "variance": self.variance() if sample else self.sampleVariance(),
        }

    def __repr__(self) -> str:
        return "(count: %s, mean: %s, stdev: %s, max: %s, min: %s)" % (
            self.count(), self.mean(), self.stdev(), self.max(), self.min())


def _copied(value: Any) -> Any:
    """Arrays are updated in place by ``+=``: a copy must not share them."""
    return value.copy() if hasattr(value, "copy") else value
