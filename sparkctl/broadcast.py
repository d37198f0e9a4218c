"""Broadcast variables: a read-only value shipped to each executor once.

On the driver a ``Broadcast`` keeps its pickled value. Pickled into a task's closure it
travels as its id only, and the pickler notes the id (``serializers.note_broadcast``) so the
driver sends the value to an executor before the first task that needs it, and never again.
Inside a task ``.value`` unpickles the executor's copy once per task slot.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import cloudpickle

from sparkctl import serializers
from sparkctl.errors import SparkctlError

if TYPE_CHECKING:
    from sparkctl.context import SparkContext

T = TypeVar("T")
_UNSET = object()

# executor side: broadcast id -> pickled value (filled by the slot before a task runs)
_executor_blocks: dict[int, bytes] = {}
_executor_values: dict[int, Any] = {}
_lock = threading.Lock()


class Broadcast(Generic[T]):
    def __init__(self, sc: "SparkContext | None" = None, value: Any = _UNSET, _bid: int | None = None) -> None:
        self._sc = sc
        self._destroyed = False
        if sc is not None:
            self._bid = sc._register_broadcast(self, cloudpickle.dumps(value, protocol=serializers.PROTOCOL))
            self._value = value
        else:
            assert _bid is not None
            self._bid = _bid
            self._value = _UNSET

    @property
    def id(self) -> int:
        return self._bid

    @property
    def value(self) -> T:
        if self._destroyed:
            raise SparkctlError(f"Attempted to use broadcast {self._bid} after it was destroyed")
        if self._value is not _UNSET:
            return self._value  # type: ignore[return-value]
        with _lock:
            if self._bid not in _executor_values:
                data = _executor_blocks.get(self._bid)
                if data is None:
                    raise SparkctlError(f"broadcast {self._bid} is not available on this executor (was it unpersisted?)")
                _executor_values[self._bid] = serializers.loads(data)
            self._value = _executor_values[self._bid]
        return self._value  # type: ignore[return-value]

    def unpersist(self, blocking: bool = False) -> None:
        """Drop the executors' copies; the value is sent again if a later task uses it."""
        if self._sc is None:
            raise SparkctlError("Broadcast can only be unpersisted in driver")
        self._sc._unpersist_broadcast(self._bid, destroy=False)

    def destroy(self, blocking: bool = False) -> None:
        """Drop the value everywhere; using the broadcast afterwards is an error."""
        if self._sc is None:
            raise SparkctlError("Broadcast can only be destroyed in driver")
        self._sc._unpersist_broadcast(self._bid, destroy=True)
        self._destroyed = True
        self._value = _UNSET

    def dump(self, value: T, f: Any) -> None:
        cloudpickle.dump(value, f, protocol=serializers.PROTOCOL)

    def load(self, file: Any) -> T:
        return serializers.loads(file.read())

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        if self._destroyed:
            raise SparkctlError(f"Attempted to use broadcast {self._bid} after it was destroyed")
        serializers.note_broadcast(self._bid)
        return (_restore, (self._bid,))

    def __repr__(self) -> str:
        return f"<Broadcast {self._bid}>"


def _restore(bid: int) -> Broadcast[Any]:
    return Broadcast(_bid=bid)


def executor_put(bid: int, data: bytes) -> None:
    with _lock:
        _executor_blocks[bid] = data


def executor_remove(bid: int) -> None:
    with _lock:
        _executor_blocks.pop(bid, None)
        _executor_values.pop(bid, None)


def executor_has(bid: int) -> bool:
    return bid in _executor_blocks
