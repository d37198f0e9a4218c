"""Seeded per-partition samplers behind sample, randomSplit and takeSample.

Each partition draws from ``random.Random(seed ^ partition_index)``, stirred a few times
because neighbouring seeds start out correlated, so a given seed picks the same records
on every run and every cluster (and the same ones PySpark picks).
"""
from __future__ import annotations

import itertools
import math
import random
import sys
from typing import Any, Iterator


def new_seed() -> int:
    return random.randint(0, sys.maxsize)


def _partition_rng(seed: int, split: int) -> random.Random:
    rng = random.Random(seed ^ split)
    for _ in range(10):
        rng.randint(0, 1)
    return rng


def _poisson(rng: random.Random, mean: float) -> int:
    if mean < 20.0:  # Knuth: multiply uniforms until below e^-mean
        limit = math.exp(-mean)
        k = 0
        p = rng.random()
        while p > limit:
            k += 1
            p *= rng.random()
        return k
    total = rng.expovariate(mean)  # sum exponential gaps until past 1
    k = 0
    while total < 1.0:
        k += 1
        total += rng.expovariate(mean)
    return k


class BernoulliOrPoissonSampler:
    _consumes_whole_input = True  # reads every record: see sparkctl.rdd.stopiteration

    def __init__(self, with_replacement: bool, fraction: float, seed: int) -> None:
        self.with_replacement = with_replacement
        self.fraction = fraction
        self.seed = seed

    def __call__(self, split: int, iterator: Iterator[Any]) -> Iterator[Any]:
        rng = _partition_rng(self.seed, split)
        fraction = self.fraction
        if self.with_replacement:
            for obj in iterator:
                for _ in range(_poisson(rng, fraction)):
                    yield obj
        else:
            draw = rng.random
            for obj in iterator:
                if draw() < fraction:
                    yield obj


class StratifiedSampler:
    """sampleByKey: each (key, value) drawn with its key's fraction; a key missing from the
    fractions is an error, as in PySpark."""

    _consumes_whole_input = True  # reads every record: see sparkctl.rdd.stopiteration

    def __init__(self, with_replacement: bool, fractions: dict[Any, float], seed: int) -> None:
        self.with_replacement = with_replacement
        self.fractions = fractions
        self.seed = seed

    def __call__(self, split: int, iterator: Iterator[Any]) -> Iterator[Any]:
        rng = _partition_rng(self.seed, split)
        fractions = self.fractions
        if self.with_replacement:
            for kv in iterator:
                for _ in range(_poisson(rng, fractions[kv[0]])):
                    yield kv
        else:
            draw = rng.random
            for kv in iterator:
                if draw() < fractions[kv[0]]:
                    yield kv


class RangeSampler:
    """Keeps records whose uniform draw falls in [lower, upper): one slice of randomSplit."""

    _consumes_whole_input = True  # reads every record: see sparkctl.rdd.stopiteration

    def __init__(self, lower: float, upper: float, seed: int) -> None:
        self.lower, self.upper, self.seed = lower, upper, seed

    def __call__(self, split: int, iterator: Iterator[Any]) -> Iterator[Any]:
        draw = _partition_rng(self.seed, split).random
        lower, upper = self.lower, self.upper
        for obj in iterator:
            if lower <= draw() < upper:
                yield obj


def fraction_for_sample_size(lower_bound: int, total: int, with_replacement: bool) -> float:
    """A sampling fraction that yields at least ``lower_bound`` of ``total`` records with
    very high probability (so takeSample rarely needs a second pass)."""
    fraction = float(lower_bound) / total
    if with_replacement:
        num_stdev = 9 if lower_bound < 12 else 5
        return fraction + num_stdev * math.sqrt(fraction / total)
    delta = 0.00005
    gamma = -math.log(delta) / total
    return min(1.0, fraction + gamma + math.sqrt(gamma * gamma + 2 * gamma * fraction))


class KeySketch:
    """One pass over a partition of pairs: its size and a uniform sample of its keys
    (reservoir sampling with Li's skips, so the records skipped are skipped in C)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = max(1, size)
        self.seed = seed

    def __call__(self, it: Iterator[Any]) -> tuple[int, list[Any]]:
        from sparkctl.taskcontext import TaskContext
        tc = TaskContext.get()
        rng = _partition_rng(self.seed, tc.partitionId() if tc is not None else 0)
        k = self.size
        counter = itertools.count()
        records = zip(it, counter)  # zip stops before drawing from counter: it counts records
        reservoir = list(itertools.islice(records, k))
        if len(reservoir) == k:
            w = math.exp(math.log(max(rng.random(), 1e-300)) / k)
            while True:
                skip = int(math.log(max(rng.random(), 1e-300)) / math.log1p(-w))
                item = next(itertools.islice(records, skip, skip + 1), None)
                if item is None:
                    break
                reservoir[rng.randrange(k)] = item
                w *= math.exp(math.log(max(rng.random(), 1e-300)) / k)
        return next(counter), [rec[0] for rec, _ in reservoir]


def range_bounds(sketches: list[tuple[int, list[Any]]], partitions: int, keyfunc: Any) -> list[Any]:
    """Up to ``partitions - 1`` increasing bounds (in ``keyfunc`` space) that split the
    sampled keys, each weighted by its partition's size / sample size, into equal shares."""
    weighted = [(keyfunc(key), n / len(sample)) for n, sample in sketches if sample for key in sample]
    weighted.sort(key=lambda kw: kw[0])
    step = sum(w for _, w in weighted) / partitions
    bounds: list[Any] = []
    target = step
    cumulative = 0.0
    for key, w in weighted:
        cumulative += w
        if cumulative >= target and (not bounds or key != bounds[-1]):
            bounds.append(key)
            target += step
            if len(bounds) == partitions - 1:
                break
    return bounds
