"""How a built-in scalar function is typed and computed (kept apart so the modules of
built-ins can be imported in any order, as an executor unpickling an expression does)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pyarrow as pa


@dataclass(frozen=True)
class ScalarSpec:
    result: Callable[[list[pa.DataType]], pa.DataType]
    compute: Callable[[list[Any], int], Any]  # argument values (arrays or scalars), row count
    min_args: int = 1
    max_args: int | None = 1
    #: "intolerant": NULL only where an argument is NULL (Spark's NullIntolerant); "never": never NULL;
    #: "": may be NULL anywhere; or a function of the argument count giving one of these
    nulls: str | Callable[[int], str] = ""
