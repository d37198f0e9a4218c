"""Seeded per-partition samplers behind sample, randomSplit and takeSample.

Each partition draws from ``random.Random(seed ^ partition_index)``, stirred a few times
because neighbouring seeds start out correlated, so a given seed picks the same records
on every run and every cluster (and the same ones PySpark picks).
"""
from __future__ import annotations

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


class RangeSampler:
    """Keeps records whose uniform draw falls in [lower, upper): one slice of randomSplit."""

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
