"""A user function that raises ``StopIteration`` must fail its task, not end its partition.

``map(f, records)`` and ``filter(f, records)`` run ``f`` in C, and a ``StopIteration`` that
``f`` raises reads to every consumer as "no more records": the partition ends early and the
job succeeds with rows missing. PySpark wraps every user function in a ``try`` to catch it;
a Python wrapper per record would slow every record of every map measurably. Instead a
fused chain of record-by-record steps (``map``, ``filter``, ``flatMap`` and what is built on
them) is guarded once per task, at its two ends, at C speed in between:

```
 parent records ─▶ chain(records, end_reached) ─▶ f1 ─▶ f2 ... ─▶ chain(outputs, check)
                      marks "input ran out"                       runs after the last output:
                                                                  input not run out ⇒ a step
                                                                  stopped early ⇒ raise
```
Such steps consume their whole input, so when the chain's output ends while its input has
not, one of the user's functions raised ``StopIteration``. A consumer that stops early on its
own (``take``) never pulls past the last output, so the check does not run. Steps that may
legitimately stop before their input ends (a user's ``mapPartitions``) leave the chain
unguarded, as PySpark leaves the iterators a ``mapPartitions`` function returns.
"""
from __future__ import annotations

from itertools import chain
from typing import Any, Callable, Iterator, TypeVar

from sparkctl.errors import UserStopIterationError

F = TypeVar("F", bound=Callable[..., Any])


def consumes_whole_input(step: F) -> F:
    """Mark a pipeline step (``f(index, iterator)``) that reads its whole input before it ends."""
    step._consumes_whole_input = True  # type: ignore[attr-defined]
    return step


def is_whole_input(step: Callable[..., Any]) -> bool:
    return getattr(step, "_consumes_whole_input", False)


class _InputEnd:
    __slots__ = ("reached",)

    def __init__(self) -> None:
        self.reached = False


def _mark_end(end: _InputEnd) -> Iterator[Any]:
    end.reached = True
    return
    yield  # a generator: its body runs when the chain reaches it, after the last input record


def _check_end(end: _InputEnd) -> Iterator[Any]:
    if not end.reached:
        raise UserStopIterationError("a function given to map, filter, flatMap or a method built on them raised "
                                     "StopIteration, which would have ended the partition early")
    return
    yield


def guarded(func: Callable[[int, Iterator[Any]], Iterator[Any]], index: int,
            records: Iterator[Any]) -> Iterator[Any]:
    """``func(index, records)``, failing with :class:`UserStopIterationError` when its output
    ends before its input did."""
    end = _InputEnd()
    return chain(func(index, chain(records, _mark_end(end))), _check_end(end))
