"""RDD.histogram: counts per bucket, with evenly spaced buckets found in one pass."""
from __future__ import annotations

import bisect
import math
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from sparkctl.rdd.rdd import RDD


def _is_nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def histogram(rdd: "RDD", buckets: int | list[Any]) -> tuple[list[Any], list[int]]:
    if isinstance(buckets, int):
        if buckets < 1:
            raise ValueError("number of buckets must be >= 1")
        values = rdd.filter(lambda x: x is not None and not _is_nan(x))
        try:
            lo, hi = values.map(lambda x: (x, x)).reduce(lambda a, b: (min(a[0], b[0]), max(a[1], b[1])))
        except TypeError as e:
            if " empty " in str(e):
                raise ValueError("can not generate buckets from empty RDD") from None
            raise
        except ValueError:
            raise ValueError("can not generate buckets from empty RDD") from None
        if lo == hi or buckets == 1:
            return [lo, hi], [values.count()]
        try:
            inc = (hi - lo) / buckets
        except TypeError:
            raise TypeError("Can not generate buckets with non-number in RDD") from None
        if math.isinf(inc):
            raise ValueError("Can not generate buckets with infinite value")
        if int(inc) * buckets == hi - lo:  # keep integer bounds when they divide evenly
            inc = int(inc)
        bounds = [i * inc + lo for i in range(buckets)]
        bounds.append(hi)
        return bounds, _count(values, bounds, even=True)
    if not isinstance(buckets, (list, tuple)):
        raise TypeError("buckets should be a list or tuple or number(int or long)")
    if len(buckets) < 2:
        raise ValueError("buckets should have more than one value")
    if any(b is None or _is_nan(b) for b in buckets):
        raise ValueError("can not have None or NaN in buckets")
    if sorted(buckets) != list(buckets):
        raise ValueError("buckets should be sorted")
    if len(set(buckets)) != len(buckets):
        raise ValueError("buckets should not contain duplicated values")
    lo, hi = buckets[0], buckets[-1]
    n = len(buckets) - 1
    even = False
    inc = None
    try:
        steps = [buckets[i + 1] - buckets[i] for i in range(n)]
    except TypeError:
        pass
    else:
        maxv, minv = max(steps), min(steps)
        if maxv - minv < 1e-10:
            even = True
            inc = (hi - lo) / n
    return buckets, _count(rdd, list(buckets), even=even, inc=inc)  # as given, tuple or list


def _count(rdd: "RDD", bounds: list[Any], even: bool, inc: Any = None) -> list[int]:
    n = len(bounds) - 1
    lo, hi = bounds[0], bounds[-1]
    if inc is None:
        inc = (hi - lo) / n if even else None

    def per_partition(it: Iterator[Any]) -> list[int]:
        counts = [0] * n
        for x in it:
            if x is None or _is_nan(x) or x < lo or x > hi:
                continue
            if even:
                i = int((x - lo) / inc)
            else:
                i = bisect.bisect_right(bounds, x) - 1
            if i >= n:  # the last bucket is closed on the right
                i = n - 1
            counts[i] += 1
        return counts

    totals = [0] * n
    for part in rdd.ctx.run_job(rdd, per_partition):
        for i, c in enumerate(part):
            totals[i] += c
    return totals
