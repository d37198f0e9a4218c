"""``Row``: PySpark's row, a tuple whose fields also have names.

``Row(a=1, b=2)`` is a row (fields in keyword order, as since PySpark 3.0);
``Row("a", "b")`` is a row "class" that makes rows when called. Rows compare and hash as
tuples, and pickle as (field names, values): rows of one collect share their field list,
so pickling a batch stores it once.
"""
from __future__ import annotations

from typing import Any


class Row(tuple):
    """A row of a DataFrame: ``row.key``, ``row["key"]``, ``row[0]``; ``"key" in row``."""

    def __new__(cls, *args: Any, **kwargs: Any) -> "Row":
        if args and kwargs:
            raise ValueError("[CANNOT_SET_TOGETHER] args and kwargs should not be set together.")
        if kwargs:
            row = tuple.__new__(cls, list(kwargs.values()))
            row.__fields__ = list(kwargs.keys())
            return row
        return tuple.__new__(cls, args)

    def asDict(self, recursive: bool = False) -> dict[str, Any]:
        """The row as a dict (nested Rows, lists and dicts of Rows too if ``recursive``)."""
        if not hasattr(self, "__fields__"):
            raise TypeError("[CANNOT_CONVERT_TYPE] Cannot convert Row into dict.")
        if recursive:
            return dict(zip(self.__fields__, (_as_dict(v) for v in self)))
        return dict(zip(self.__fields__, self))

    def __contains__(self, item: Any) -> bool:
        if hasattr(self, "__fields__"):
            return item in self.__fields__
        return super().__contains__(item)

    def __call__(self, *args: Any) -> "Row":
        """A row with this row's values as field names (``Row("a", "b")(1, 2)``)."""
        if len(args) > len(self):
            raise ValueError(f"[TOO_MANY_VALUES] Expected {len(self)} values for `fields`, got {len(args)}.")
        return _make_row(self, args)

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, (int, slice)):
            return super().__getitem__(item)
        try:
            return super().__getitem__(self.__fields__.index(item))
        except IndexError:
            raise KeyError(f"[KEY_NOT_EXISTS] Key `{item}` is not exists.") from None
        except (ValueError, AttributeError):
            raise ValueError(item) from None

    def __getattr__(self, item: str) -> Any:
        if item.startswith("__"):
            raise AttributeError(f"[ATTRIBUTE_NOT_SUPPORTED] Attribute `{item}` is not supported.")
        try:
            return self[self.__fields__.index(item)]
        except (IndexError, ValueError):
            raise AttributeError(f"[ATTRIBUTE_NOT_SUPPORTED] Attribute `{item}` is not supported.") from None

    def __setattr__(self, key: Any, value: Any) -> None:
        if key != "__fields__":
            raise RuntimeError("[READ_ONLY] Row is read-only.")
        self.__dict__[key] = value

    def __reduce__(self) -> Any:
        if hasattr(self, "__fields__"):
            return (_make_row, (self.__fields__, tuple(self)))
        return tuple.__reduce__(self)

    def __repr__(self) -> str:
        if hasattr(self, "__fields__"):
            return "Row(%s)" % ", ".join("%s=%r" % (k, v) for k, v in zip(self.__fields__, tuple(self)))
        return "<Row(%s)>" % ", ".join(repr(field) for field in self)


def _as_dict(value: Any) -> Any:
    if isinstance(value, Row):
        return value.asDict(True)
    if isinstance(value, list):
        return [_as_dict(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_dict(v) for k, v in value.items()}
    return value


#: field names -> the Row subclass carrying them as a class attribute
_ROW_CLASSES: dict[tuple, type] = {}


def _row_class(fields: Any) -> type:
    """A subclass of Row whose rows are named by ``fields``: rows made from it need no
    per-row attribute dict (a third of the time and memory of a collect), and all share
    one field list, which pickling then stores once per batch."""
    key = tuple(fields)
    cls = _ROW_CLASSES.get(key)
    if cls is None:
        if len(_ROW_CLASSES) > 10_000:
            _ROW_CLASSES.clear()
        cls = type("Row", (Row,), {"__slots__": (), "__fields__": list(key), "__module__": __name__,
                                   "__qualname__": "Row"})
        _ROW_CLASSES[key] = cls
    return cls


def _make_row(fields: Any, values: Any) -> Row:
    """A Row of ``values`` named by ``fields``."""
    return tuple.__new__(_row_class(fields), values)
