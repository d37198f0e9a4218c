"""Built-ins over structs, maps and arrays: ``struct``, ``create_map``, ``map_keys``,
``map_values``, ``array``, ``array_repeat``, ``element_at`` and struct field access
(``col("s.a")``, ``col("s")["a"]``, ``getField``), each computed a whole column at a time
from Arrow's offsets and child arrays.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.errors import AnalysisException
from sparkctl.sql.scalar_spec import ScalarSpec
from sparkctl.sql.expressions import Expr, _coerce, as_array, common_type, given_name, spark_type_name


def _plain(value: Any, n: int) -> pa.Array:
    value = as_array(value, n)
    return value.combine_chunks() if isinstance(value, pa.ChunkedArray) else value


def _field_name(e: Expr, i: int) -> str:
    name = given_name(e)
    if name is not None:
        return name
    if isinstance(e, GetField):  # struct(s.a) names its field a, as Spark's CreateStruct
        return e.field
    return f"col{i + 1}"


class CreateStruct(Expr):
    """``struct(a, b)``: a struct column whose fields are named after the arguments."""

    def __init__(self, args: Sequence[Expr]) -> None:
        self.children = tuple(args)

    @property
    def names(self) -> list[str]:
        return [_field_name(c, i) for i, c in enumerate(self.children)]

    @property
    def dtype(self) -> pa.DataType:
        return pa.struct([pa.field(name, c.dtype, c.nullable) for name, c in zip(self.names, self.children)])

    @property
    def nullable(self) -> bool:
        return False

    def eval(self, table: pa.Table) -> Any:
        n = table.num_rows
        arrays = [_plain(c.eval(table), n) for c in self.children]
        return pa.StructArray.from_arrays(arrays, fields=list(self.dtype))

    def sql(self) -> str:
        return f"struct({', '.join(c.sql() for c in self.children)})"


class GetField(Expr):
    """``s.a``: one field of a struct column (NULL where the struct is)."""

    def __init__(self, child: Expr, field: str) -> None:
        self.children = (child,)
        self.field = field

    def resolve(self, scope: Any) -> Expr:
        new = super().resolve(scope)
        assert isinstance(new, GetField)
        new.index()  # the field must exist
        return new

    def index(self) -> int:
        t = self.children[0].dtype
        if not pa.types.is_struct(t):
            raise AnalysisException(f"[INVALID_EXTRACT_BASE_FIELD_TYPE] Can't extract a value from "
                                    f"\"{self.children[0].sql()}\". Need a complex type [STRUCT, ARRAY, MAP] but got "
                                    f"\"{spark_type_name(t)}\".", error_class="INVALID_EXTRACT_BASE_FIELD_TYPE")
        names = [f.name for f in t]
        lowered = [x.lower() for x in names]
        if self.field.lower() not in lowered:
            raise AnalysisException(f"[FIELD_NOT_FOUND] No such struct field `{self.field}` in "
                                    f"{', '.join(f'`{x}`' for x in names)}.", error_class="FIELD_NOT_FOUND")
        return lowered.index(self.field.lower())

    @property
    def dtype(self) -> pa.DataType:
        return self.children[0].dtype.field(self.index()).type

    @property
    def nullable(self) -> bool:
        return self.children[0].nullable or self.children[0].dtype.field(self.index()).nullable

    def eval(self, table: pa.Table) -> Any:
        value = _plain(self.children[0].eval(table), table.num_rows)
        return pc.struct_field(value, [self.index()])

    def sql(self) -> str:
        return f"{self.children[0].sql()}.{self.field}"


class GetItem(Expr):
    """``c[k]``: an array's element at a 0-based index, or a map's value at a key."""

    def __init__(self, child: Expr, key: Expr) -> None:
        self.children = (child, key)

    @property
    def dtype(self) -> pa.DataType:
        t = self.children[0].dtype
        if pa.types.is_map(t):
            return t.item_type
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            return t.value_type
        if pa.types.is_struct(t):
            return GetField(self.children[0], str(getattr(self.children[1], "value", ""))).dtype
        raise AnalysisException(f"[INVALID_EXTRACT_BASE_FIELD_TYPE] Can't extract a value from "
                                f"\"{self.children[0].sql()}\". Need a complex type [STRUCT, ARRAY, MAP] but got "
                                f"\"{spark_type_name(t)}\".", error_class="INVALID_EXTRACT_BASE_FIELD_TYPE")

    def eval(self, table: pa.Table) -> Any:
        n = table.num_rows
        container = _plain(self.children[0].eval(table), n)
        key = self.children[1].eval(table)
        if pa.types.is_map(container.type):
            return _map_lookup(container, _plain(key, n))
        return _list_at(container, _plain(key, n), one_based=False)

    def sql(self) -> str:
        return f"{self.children[0].sql()}[{self.children[1].sql()}]"


def _list_at(lists: pa.Array, index: pa.Array, one_based: bool) -> pa.Array:
    """Element *index* of each list (NULL out of range; with *one_based*, negative counts from the end)."""
    offsets = lists.offsets.to_numpy()
    starts, lengths = offsets[:-1], np.diff(offsets)
    idx = pc.fill_null(pc.cast(index, pa.int64()), 0).to_numpy(zero_copy_only=False)
    if one_based:
        if (idx == 0).any():
            raise AnalysisException("[INVALID_INDEX_OF_ZERO] The index 0 is invalid. An index shall be either < 0 or "
                                    "> 0 (the first element has index 1).", error_class="INVALID_INDEX_OF_ZERO")
        idx = np.where(idx > 0, idx - 1, lengths + idx)
    inside = (idx >= 0) & (idx < lengths)
    inside &= ~lists.is_null().to_numpy(zero_copy_only=False) & ~index.is_null().to_numpy(zero_copy_only=False)
    take = np.where(inside, starts + idx, 0)
    return lists.values.take(pa.array(take, mask=~inside))


def _map_lookup(maps: pa.Array, key: pa.Array) -> pa.Array:
    """The value at *key* in each map (NULL when absent)."""
    offsets = maps.offsets.to_numpy()
    lengths = np.diff(offsets)
    parents = np.repeat(np.arange(len(maps)), lengths)
    wanted = key.take(pa.array(parents)) if len(parents) else pa.array([], key.type)
    hits = pc.fill_null(pc.equal(maps.keys, wanted), False).to_numpy(zero_copy_only=False)
    found = np.full(len(maps), -1, dtype=np.int64)
    positions = np.flatnonzero(hits)
    found[parents[positions][::-1]] = positions[::-1]  # the first match in each map
    valid = found >= 0
    return maps.items.take(pa.array(np.where(valid, found, 0), mask=~valid))


# ---------------------------------------------------------------------------- maps and arrays
def _map_type(types: list[pa.DataType]) -> pa.DataType:
    if len(types) % 2:
        raise AnalysisException("[WRONG_NUM_ARGS] The `map` requires an even number of parameters.",
                                error_class="WRONG_NUM_ARGS")
    key: pa.DataType = pa.null()
    value: pa.DataType = pa.null()
    for k, v in zip(types[::2], types[1::2]):
        key, value = common_type(key, k), common_type(value, v)
    return pa.map_(key if not pa.types.is_null(key) else pa.string(), value)


def create_map(args: list[Any], n: int) -> Any:
    t = _map_type([a.type for a in args])
    pairs = len(args) // 2
    keys = [_plain(_coerce(a, a.type, t.key_type), n) for a in args[::2]]
    values = [_plain(_coerce(a, a.type, t.item_type), n) for a in args[1::2]]
    if pairs == 0:
        return pa.MapArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], t.key_type),
                                       pa.array([], t.item_type))
    order = (np.arange(n)[:, None] + np.arange(pairs)[None, :] * n).ravel()  # row by row, pair by pair
    flat_keys = pa.concat_arrays(keys).take(pa.array(order))
    flat_values = pa.concat_arrays(values).take(pa.array(order))
    if flat_keys.null_count:
        raise AnalysisException("[NULL_MAP_KEY] Cannot use null as map key.", error_class="NULL_MAP_KEY")
    offsets = pa.array(np.arange(0, n * pairs + 1, pairs, dtype=np.int32))
    return pa.MapArray.from_arrays(offsets, flat_keys, flat_values)


def _list_of(part: str) -> Callable[[list[Any], int], Any]:
    def run(args: list[Any], n: int) -> Any:
        maps = _plain(args[0], n)
        children = maps.keys if part == "keys" else maps.items
        offsets = maps.offsets
        if maps.null_count:
            offsets = pa.array(offsets.to_numpy(), mask=np.append(maps.is_null().to_numpy(zero_copy_only=False),
                                                                  False))
        return pa.ListArray.from_arrays(offsets, children)
    return run


def _map_part_type(part: str) -> Callable[[list[pa.DataType]], pa.DataType]:
    def result(types: list[pa.DataType]) -> pa.DataType:
        t = types[0]
        if not pa.types.is_map(t):
            raise AnalysisException(f"[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] map_{part} needs a MAP, got "
                                    f"\"{spark_type_name(t)}\".", error_class="DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE")
        return pa.list_(t.key_type if part == "keys" else t.item_type)
    return result


def _array_type(types: list[pa.DataType]) -> pa.DataType:
    t: pa.DataType = pa.null()
    for x in types:
        t = common_type(t, x)
    return pa.list_(t if not pa.types.is_null(t) else pa.null())


def array(args: list[Any], n: int) -> Any:
    t = _array_type([a.type for a in args]).value_type
    k = len(args)
    if k == 0:
        return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], t))
    parts = [_plain(_coerce(a, a.type, t), n) for a in args]
    order = (np.arange(n)[:, None] + np.arange(k)[None, :] * n).ravel()
    flat = pa.concat_arrays(parts).take(pa.array(order))
    return pa.ListArray.from_arrays(pa.array(np.arange(0, n * k + 1, k, dtype=np.int32)), flat)


def array_repeat(args: list[Any], n: int) -> Any:
    value = _plain(args[0], n)
    counts, null = (lambda c: (pc.fill_null(pc.cast(c, pa.int64()), 0).to_numpy(zero_copy_only=False),
                               c.is_null().to_numpy(zero_copy_only=False)))(_plain(args[1], n))
    counts = np.maximum(counts, 0)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    flat = value.take(pa.array(np.repeat(np.arange(n), counts)))
    return pa.ListArray.from_arrays(pa.array(offsets, mask=np.append(null, False)) if null.any() else
                                    pa.array(offsets), flat)


def element_at(args: list[Any], n: int) -> Any:
    container = _plain(args[0], n)
    key = _plain(args[1], n)
    if pa.types.is_map(container.type):
        return _map_lookup(container, key)
    return _list_at(container, key, one_based=True)


def _element_type(types: list[pa.DataType]) -> pa.DataType:
    t = types[0]
    return t.item_type if pa.types.is_map(t) else t.value_type


COMPLEX_SCALARS: dict[str, ScalarSpec] = {
    "map": ScalarSpec(_map_type, create_map, 0, None),
    "map_keys": ScalarSpec(_map_part_type("keys"), _list_of("keys")),
    "map_values": ScalarSpec(_map_part_type("values"), _list_of("values")),
    "array": ScalarSpec(_array_type, array, 0, None),
    "array_repeat": ScalarSpec(lambda t: pa.list_(t[0]), array_repeat, 2, 2),
    "element_at": ScalarSpec(_element_type, element_at, 2, 2),
}
COMPLEX_LITERAL_ARGS: dict[str, int] = {}
#: Spark names array_sort(x) after the comparator it fills in
_ARRAY_SORT_COMPARATOR = ("lambdafunction((IF(((namedlambdavariable() IS NULL) AND (namedlambdavariable() IS NULL)), 0, "
                          "(IF((namedlambdavariable() IS NULL), 1, (IF((namedlambdavariable() IS NULL), -1, "
                          "(IF((namedlambdavariable() < namedlambdavariable()), -1, (IF((namedlambdavariable() > "
                          "namedlambdavariable()), 1, 0)))))))))), namedlambdavariable(), namedlambdavariable())")
COMPLEX_SQL_FORMS: dict[str, Callable[[list[str]], str]] = {
    "array_sort": lambda a: f"array_sort({a[0]}, {_ARRAY_SORT_COMPARATOR})",
}


def _register_arrays() -> None:
    from sparkctl.sql.builtins_arrays import ARRAY_LITERAL_ARGS, ARRAY_SCALARS
    COMPLEX_SCALARS.update(ARRAY_SCALARS)
    COMPLEX_LITERAL_ARGS.update(ARRAY_LITERAL_ARGS)


_register_arrays()
