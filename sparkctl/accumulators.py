"""Accumulators: variables tasks add to and only the driver reads.

A task works on its own copy (reset to zero when the task starts) and its final value
travels back with the task's result. The driver adds it exactly once, and only when the
task succeeded: a failed, killed, duplicate (speculative) or recomputed attempt of the same
partition adds nothing.
"""
from __future__ import annotations

import threading
from typing import Any, Generic, TypeVar

from sparkctl.errors import SparkctlError

T = TypeVar("T")


class AccumulatorParam(Generic[T]):
    """How to make a zero and add two values; subclass for custom accumulators."""

    def zero(self, value: T) -> T:
        raise NotImplementedError

    def addInPlace(self, value1: T, value2: T) -> T:
        raise NotImplementedError


class AddingAccumulatorParam(AccumulatorParam[T]):
    def __init__(self, zero_value: T) -> None:
        self.zero_value = zero_value

    def zero(self, value: T) -> T:
        return self.zero_value

    def addInPlace(self, value1: T, value2: T) -> T:
        value1 += value2  # type: ignore[operator]
        return value1


INT_ACCUMULATOR_PARAM = AddingAccumulatorParam(0)
FLOAT_ACCUMULATOR_PARAM = AddingAccumulatorParam(0.0)
COMPLEX_ACCUMULATOR_PARAM = AddingAccumulatorParam(0.0j)

# executor side: the accumulators deserialized with the closures this slot runs
_local = threading.local()


def _loading_registry() -> list["Accumulator[Any]"] | None:
    return getattr(_local, "loading", None)


class collect_accumulators:
    """Context manager: accumulators unpickled inside it are appended to ``found``."""

    def __init__(self) -> None:
        self.found: list[Accumulator[Any]] = []

    def __enter__(self) -> list["Accumulator[Any]"]:
        _local.loading = self.found
        return self.found

    def __exit__(self, *exc: object) -> None:
        _local.loading = None


class Accumulator(Generic[T]):
    def __init__(self, aid: int, value: T, accum_param: AccumulatorParam[T]) -> None:
        self.aid = aid
        self.accum_param = accum_param
        self._value = value
        self._deserialized = False

    @property
    def value(self) -> T:
        if self._deserialized:
            raise SparkctlError("Accumulator.value cannot be accessed inside tasks")
        return self._value

    @value.setter
    def value(self, value: T) -> None:
        if self._deserialized:
            raise SparkctlError("Accumulator.value cannot be accessed inside tasks")
        self._value = value

    def add(self, term: T) -> None:
        self._value = self.accum_param.addInPlace(self._value, term)

    def __iadd__(self, term: T) -> "Accumulator[T]":
        self.add(term)
        return self

    def _reset(self) -> None:
        self._value = self.accum_param.zero(self._value)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (_deserialize_accumulator, (self.aid, self.accum_param.zero(self._value), self.accum_param))

    def __str__(self) -> str:
        return str(self._value)

    def __repr__(self) -> str:
        return f"Accumulator<id={self.aid}, value={self._value}>"


def _deserialize_accumulator(aid: int, zero: Any, param: AccumulatorParam[Any]) -> Accumulator[Any]:
    acc = Accumulator(aid, zero, param)
    acc._deserialized = True
    registry = _loading_registry()
    if registry is not None:
        registry.append(acc)
    return acc


def default_param(value: Any) -> AccumulatorParam[Any]:
    if isinstance(value, bool):
        raise TypeError(f"No default accumulator param for type {type(value)}")
    if isinstance(value, int):
        return INT_ACCUMULATOR_PARAM
    if isinstance(value, float):
        return FLOAT_ACCUMULATOR_PARAM
    if isinstance(value, complex):
        return COMPLEX_ACCUMULATOR_PARAM
    raise TypeError(f"No default accumulator param for type {type(value)}")
