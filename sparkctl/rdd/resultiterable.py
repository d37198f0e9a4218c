"""ResultIterable: the values of one key from groupByKey and cogroup (PySpark's type)."""
from __future__ import annotations

from types import GenericAlias
from typing import Any, Iterable, Iterator


class ResultIterable:
    # ``ResultIterable[str]`` in a type hint, as PySpark's generic one (Spark's pagerank.py)
    def __class_getitem__(cls, item: Any) -> GenericAlias:  # a classmethod, implicitly
        return GenericAlias(cls, item)

    def __init__(self, data: Iterable[Any]) -> None:
        self.data = data if isinstance(data, list) else list(data)
        self.index = 0
        self.maxindex = len(self.data)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ResultIterable):
            return self.data == other.data
        if isinstance(other, list):
            return self.data == other
        return NotImplemented

    def __repr__(self) -> str:
        return f"ResultIterable({self.data!r})"
