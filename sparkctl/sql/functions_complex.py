"""Struct, map and array functions of ``pyspark.sql.functions`` (re-exported by ``functions``)."""
from __future__ import annotations

from typing import Any, Callable

from sparkctl.sql.builtins import Func
from sparkctl.sql.builtins_complex import CreateStruct
from sparkctl.sql.column import Column, to_expr


def _c(value: Any) -> Any:
    from sparkctl.sql.functions import _c as column_arg
    return column_arg(value)


def _cols(cols: tuple[Any, ...]) -> list[Any]:
    if len(cols) == 1 and isinstance(cols[0], (list, tuple, set)):
        cols = tuple(cols[0])
    return [_c(c) for c in cols]


def struct(*cols: Any) -> Column:
    return Column(CreateStruct(_cols(cols)))


def create_map(*cols: Any) -> Column:
    return Column(Func("map", _cols(cols)))


def map_keys(col: Any) -> Column:
    return Column(Func("map_keys", [_c(col)]))


def map_values(col: Any) -> Column:
    return Column(Func("map_values", [_c(col)]))


def array(*cols: Any) -> Column:
    return Column(Func("array", _cols(cols)))


def array_repeat(col: Any, count: Any) -> Column:
    return Column(Func("array_repeat", [_c(col), to_expr(count) if isinstance(count, int) else _c(count)]))


def element_at(col: Any, extraction: Any) -> Column:
    return Column(Func("element_at", [_c(col), to_expr(extraction) if not isinstance(extraction, Column)
                                      else extraction._expr]))


def _arg(value: Any) -> Any:
    """A value argument: a Python value as a literal, else a column."""
    return _c(value) if isinstance(value, (Column, str)) else to_expr(value)


def array_distinct(col: Any) -> Column:
    return Column(Func("array_distinct", [_c(col)]))


def sort_array(col: Any, asc: Any = True) -> Column:
    if isinstance(asc, Column):  # SQL's sort_array(x, false) passes its flag as a literal column
        asc = getattr(asc._expr, "value", True)
    return Column(Func("sort_array", [_c(col), to_expr(bool(asc))]))


def array_sort(col: Any, comparator: Any = None) -> Column:
    """Each array sorted ascending, NULLs last; or by *comparator*, a function of two Columns
    returning a negative, zero or positive integer (Spark 3.4's ``array_sort(x, (l, r) -> ...)``)."""
    if comparator is not None:
        from sparkctl.sql.higher_order import ArraySort, python_lambda
        return Column(ArraySort(_c(col), python_lambda(comparator)))
    return Column(Func("array_sort", [_c(col)]))


def slice(x: Any, start: Any, length: Any) -> Column:  # noqa: A001
    return Column(Func("slice", [_c(x), _arg(start), _arg(length)]))


def array_max(col: Any) -> Column:
    return Column(Func("array_max", [_c(col)]))


def array_min(col: Any) -> Column:
    return Column(Func("array_min", [_c(col)]))


def array_position(col: Any, value: Any) -> Column:
    # PySpark takes a plain value as a literal, strings included
    return Column(Func("array_position", [_c(col), value._expr if isinstance(value, Column) else to_expr(value)]))


def array_remove(col: Any, element: Any) -> Column:
    return Column(Func("array_remove", [_c(col), element._expr if isinstance(element, Column) else to_expr(element)]))


def array_union(col1: Any, col2: Any) -> Column:
    return Column(Func("array_union", [_c(col1), _c(col2)]))


def array_intersect(col1: Any, col2: Any) -> Column:
    return Column(Func("array_intersect", [_c(col1), _c(col2)]))


def array_except(col1: Any, col2: Any) -> Column:
    return Column(Func("array_except", [_c(col1), _c(col2)]))


def flatten(col: Any) -> Column:
    return Column(Func("flatten", [_c(col)]))


def array_join(col: Any, delimiter: str, null_replacement: str | None = None) -> Column:
    args = [_c(col), to_expr(delimiter)] + ([to_expr(null_replacement)] if null_replacement is not None else [])
    return Column(Func("array_join", args))


def arrays_zip(*cols: Any) -> Column:
    from sparkctl.sql.builtins_arrays import ArraysZip
    return Column(ArraysZip(_cols(cols)))


# ----------------------------------------------------------------------------- higher-order functions
def transform(col: Any, f: Callable[..., Column]) -> Column:
    """Each element of the array mapped by ``f(x)``, or ``f(x, i)`` with i its 0-based index."""
    from sparkctl.sql.higher_order import python_lambda
    from sparkctl.sql.higher_order_arrays import ArrayTransform
    return Column(ArrayTransform(_c(col), python_lambda(f)))


def filter(col: Any, f: Callable[..., Column]) -> Column:  # noqa: A001
    """The elements for which ``f(x)`` (or ``f(x, i)``) is true."""
    from sparkctl.sql.higher_order import python_lambda
    from sparkctl.sql.higher_order_arrays import ArrayFilter
    return Column(ArrayFilter(_c(col), python_lambda(f)))


def exists(col: Any, f: Callable[[Column], Column]) -> Column:
    """Whether ``f(x)`` holds for some element (NULL if for none, but NULL for one)."""
    from sparkctl.sql.higher_order import python_lambda
    from sparkctl.sql.higher_order_arrays import ArrayExists
    return Column(ArrayExists(_c(col), python_lambda(f)))


def forall(col: Any, f: Callable[[Column], Column]) -> Column:
    """Whether ``f(x)`` holds for every element (NULL if it fails for none, but is NULL for one)."""
    from sparkctl.sql.higher_order import python_lambda
    from sparkctl.sql.higher_order_arrays import ArrayForAll
    return Column(ArrayForAll(_c(col), python_lambda(f)))


def aggregate(col: Any, initialValue: Any, merge: Callable[[Column, Column], Column],
              finish: Callable[[Column], Column] | None = None) -> Column:
    """The elements folded from *initialValue* by ``merge(acc, x)``, then ``finish(acc)``."""
    return _fold("aggregate", col, initialValue, merge, finish)


def reduce(col: Any, initialValue: Any, merge: Callable[[Column, Column], Column],
           finish: Callable[[Column], Column] | None = None) -> Column:
    """``aggregate`` under its other name (PySpark 3.5+)."""
    return _fold("reduce", col, initialValue, merge, finish)


def _fold(name: str, col: Any, initial: Any, merge: Callable[..., Column],
          finish: Callable[..., Column] | None) -> Column:
    from sparkctl.sql.higher_order import identity_lambda, python_lambda
    from sparkctl.sql.higher_order_arrays import ArrayAggregate
    return Column(ArrayAggregate(_c(col), _c(initial), python_lambda(merge),
                                 python_lambda(finish) if finish is not None else identity_lambda(), name))


def zip_with(left: Any, right: Any, f: Callable[[Column, Column], Column]) -> Column:
    """The two arrays merged element by element by ``f(x, y)``, the shorter padded with NULLs."""
    from sparkctl.sql.higher_order import python_lambda
    from sparkctl.sql.higher_order_arrays import ZipWith
    return Column(ZipWith(_c(left), _c(right), python_lambda(f)))


def transform_keys(col: Any, f: Callable[[Column, Column], Column]) -> Column:
    """The map with each key replaced by ``f(k, v)``."""
    from sparkctl.sql.higher_order import python_lambda
    from sparkctl.sql.higher_order_maps import TransformKeys
    return Column(TransformKeys(_c(col), python_lambda(f)))


def transform_values(col: Any, f: Callable[[Column, Column], Column]) -> Column:
    """The map with each value replaced by ``f(k, v)``."""
    from sparkctl.sql.higher_order import python_lambda
    from sparkctl.sql.higher_order_maps import TransformValues
    return Column(TransformValues(_c(col), python_lambda(f)))


def map_filter(col: Any, f: Callable[[Column, Column], Column]) -> Column:
    """The entries of the map for which ``f(k, v)`` is true."""
    from sparkctl.sql.higher_order import python_lambda
    from sparkctl.sql.higher_order_maps import MapFilter
    return Column(MapFilter(_c(col), python_lambda(f)))


def map_zip_with(col1: Any, col2: Any, f: Callable[[Column, Column, Column], Column]) -> Column:
    """The two maps merged by key, each key's value ``f(k, v1, v2)`` (NULL for a side without it)."""
    from sparkctl.sql.higher_order import python_lambda
    from sparkctl.sql.higher_order_maps import MapZipWith
    return Column(MapZipWith(_c(col1), _c(col2), python_lambda(f)))


def sequence(start: Any, stop: Any, step: Any = None) -> Column:
    """The array from *start* to *stop* (inclusive) by *step* (1 or -1 when not given)."""
    args = [_c(start), _c(stop)] + ([_c(step)] if step is not None else [])
    return Column(Func("sequence", args))
