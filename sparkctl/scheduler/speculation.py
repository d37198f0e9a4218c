"""Speculative execution's statistics: a quantile of finished task durations kept as tasks
finish, so that the periodic straggler check costs O(1) for it instead of a sort.

Spark's rule (``TaskSetManager.checkSpeculatableTasks``): once ``spark.speculation.quantile``
of a stage's tasks have succeeded, a task running longer than
``spark.speculation.multiplier`` x the *median* duration of the successful ones gets a
second copy on another executor. ``RunningQuantile`` holds that median.

    task succeeded ──add(duration)──▶ RunningQuantile ──value()──▶ straggler threshold
                                       low: max-heap of the k smallest
                                       high: min-heap of the rest, high[0] is the answer
"""
from __future__ import annotations

import heapq


class RunningQuantile:
    """The element at index ``int(q * n)`` of the sorted values seen so far (q = 0.5 gives
    ``sorted(values)[n // 2]``, the upper median), in O(log n) per ``add`` and O(1) per
    ``value``.

    Two heaps split the values: ``low`` (a max-heap, stored negated) keeps the ``int(q * n)``
    smallest, ``high`` (a min-heap) the others, whose smallest is the answer. Each ``add``
    changes the split point by at most one, so at most one value moves between the heaps.
    """

    __slots__ = ("q", "_low", "_high")

    def __init__(self, q: float = 0.5) -> None:
        if not 0.0 <= q < 1.0:
            raise ValueError(f"quantile must be in [0, 1), got {q}")
        self.q = q
        self._low: list[float] = []  # negated
        self._high: list[float] = []

    def __len__(self) -> int:
        return len(self._low) + len(self._high)

    def add(self, x: float) -> None:
        low, high = self._low, self._high
        if high and x >= high[0]:
            heapq.heappush(high, x)
        else:
            heapq.heappush(low, -x)
        # the split point moved by at most one, and x went to one side: one move at most
        k = int(self.q * (len(low) + len(high)))
        if len(low) > k:
            heapq.heappush(high, -heapq.heappop(low))
        elif len(low) < k:
            heapq.heappush(low, -heapq.heappop(high))

    def extend(self, values: list[float]) -> None:
        """Add many: one at a time, or, when they outnumber the values held, by sorting
        everything once (C speed)."""
        if len(values) <= len(self):
            for x in values:
                self.add(x)
            return
        every = sorted([-x for x in self._low] + self._high + values)
        k = int(self.q * len(every))
        self._low = [-x for x in reversed(every[:k])]  # descending when negated: ascending, a heap
        self._high = every[k:]  # sorted: a heap

    def value(self) -> float:
        """The quantile; ``IndexError`` when nothing was added."""
        if not self._high:
            raise IndexError("no values")
        return self._high[0]
