"""Array built-ins: ``array_distinct``, ``sort_array``, ``array_sort``, ``slice``, ``array_max``,
``array_min``, ``array_position``, ``array_remove``, the set operations ``array_union``,
``array_intersect``, ``array_except``, and ``flatten``, ``array_join``, ``arrays_zip``.

Each works a whole column at a time on the flattened elements and the row each came from::

    list column ──flatten──▶ (parents, elements) ──group/sort/filter in Arrow──▶ kept positions
                                                                                      │
    list column ◀──────────── offsets from the kept parents (bincount) ◀──────────────┘

As in Spark, NULL elements count as equal to each other in the distinct and set functions.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.errors import AnalysisException
from sparkctl.sql import float_ordering
from sparkctl.sql.expressions import Alias, Expr, _coerce, as_array, common_type, given_name, spark_type_name
from sparkctl.sql.scalar_spec import ScalarSpec


class _Flat:
    """A list column taken apart: its elements, the row each came from, and the NULL rows."""

    def __init__(self, value: Any, n: int) -> None:
        lists = _plain(value, n)
        if not (pa.types.is_list(lists.type) or pa.types.is_large_list(lists.type)):
            raise _not_array(lists.type)
        self.n = n
        self.lists = lists
        self.lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        self.values = lists.flatten()  # minds the slice offset and NULL lists backed by elements
        self.parents = np.repeat(np.arange(n, dtype=np.int64), self.lengths)
        self.null = lists.is_null().to_numpy(zero_copy_only=False)

    @property
    def starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64) if self.n else \
            np.zeros(0, np.int64)


def _plain(value: Any, n: int) -> pa.Array:
    value = as_array(value, n)
    return value.combine_chunks() if isinstance(value, pa.ChunkedArray) else value


def _not_array(t: pa.DataType) -> AnalysisException:
    return AnalysisException(f"[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] the function needs an ARRAY, got "
                             f"\"{spark_type_name(t)}\".", error_class="DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE")


def _lists(parents: np.ndarray, values: pa.Array, null: np.ndarray, n: int) -> pa.Array:
    """A list column of *values*, whose row numbers *parents* are ascending; NULL where *null*."""
    counts = np.bincount(parents, minlength=n) if len(parents) else np.zeros(n, np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    mask = np.append(null, False) if null.any() else None
    return pa.ListArray.from_arrays(pa.array(offsets, mask=mask), values)


def _mask(values: np.ndarray, null: np.ndarray, t: pa.DataType) -> pa.Array:
    return pa.array(values, mask=null if null.any() else None).cast(t)


def _nulls(value: Any, n: int) -> np.ndarray:
    return _plain(value, n).is_null().to_numpy(zero_copy_only=False)


def _ints(value: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    value = _plain(value, n)
    return (pc.fill_null(pc.cast(value, pa.int64()), 0).to_numpy(zero_copy_only=False),
            value.is_null().to_numpy(zero_copy_only=False))


def _numeric_keys(values: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """Numbers numpy can sort and compare for a value column, and its NULL mask (None: use Arrow)."""
    t = values.type
    if pa.types.is_date32(t):
        values = pc.cast(values, pa.int32())
    elif pa.types.is_date64(t) or pa.types.is_timestamp(t) or pa.types.is_boolean(t):
        values = pc.cast(values, pa.int64())
    elif not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        return None
    null = values.is_null().to_numpy(zero_copy_only=False)
    return pc.fill_null(values, 0).to_numpy(zero_copy_only=False), null


def _groups(parents: np.ndarray, values: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """The positions sorted by (row, value), stably, and where each run of equal (row, value)
    starts in that order; NULLs equal each other, as do NaNs. None where numpy cannot sort the type."""
    keys = _numeric_keys(values)
    if keys is None:
        return None
    v, null = keys
    nan = np.isnan(v) if v.dtype.kind == "f" else np.zeros(len(v), bool)
    v = np.where(nan, 0, v)
    # one int64 key (row, then NULL < NaN < each value's rank) sorts far faster than several
    if v.dtype.kind in "iu" and len(v) and int(v.max()) - int(v.min()) < 2**31:
        rank, width = (v - v.min()).astype(np.int64), int(v.max()) - int(v.min()) + 3
    else:
        distinct, rank = np.unique(v, return_inverse=True)
        width = len(distinct) + 2
    if (int(parents[-1]) + 1) * width < 2**62:
        key = parents * width + np.where(null, 0, np.where(nan, 1, rank.astype(np.int64) + 2))
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        new = np.ones(len(order), bool)
        new[1:] = sorted_key[1:] != sorted_key[:-1]
        return order, np.flatnonzero(new)
    order = np.lexsort((v, nan, null, parents))
    sp, sv, snull, snan = parents[order], v[order], null[order], nan[order]
    new = np.ones(len(order), bool)
    new[1:] = (sp[1:] != sp[:-1]) | (sv[1:] != sv[:-1]) | (snull[1:] != snull[:-1]) | (snan[1:] != snan[:-1])
    return order, np.flatnonzero(new)


def _first_of_each(parents: np.ndarray, values: pa.Array) -> np.ndarray:
    """Positions of the first occurrence of each (row, value), in order."""
    if not len(parents):
        return np.zeros(0, np.int64)
    grouped = _groups(parents, values)
    if grouped is not None:
        order, starts = grouped
        return np.sort(order[starts])  # a stable sort keeps each run's first position first
    t = pa.table({"p": parents, "v": values, "i": np.arange(len(parents))})
    groups = t.group_by(["p", "v"], use_threads=False).aggregate([("i", "min")])
    return np.sort(groups.column("i_min").to_numpy())


# ---------------------------------------------------------------------------- one array
def array_distinct(args: list[Any], n: int) -> Any:
    f = _Flat(args[0], n)
    values = float_ordering.normalize(f.values)  # -0.0 is 0.0 and one NaN, as Spark's distinct gives them
    keep = _first_of_each(f.parents, values)
    return _lists(f.parents[keep], values.take(pa.array(keep, pa.int64())), f.null, n)


def _sorted(f: _Flat, ascending: bool) -> pa.Array:
    """Each row's elements sorted: NULLs first ascending, last descending (Spark's sort_array)."""
    t = pa.table({"p": f.parents, "v": f.values})
    direction, nulls = ("ascending", "at_start") if ascending else ("descending", "at_end")
    keys = [("p", "ascending", "at_end"), ("v", direction, nulls)]
    if pa.types.is_floating(f.values.type) and len(f.values):
        # pyarrow places NaN with the NULLs; Spark's NaN is the greatest value, NULL apart from it
        t = t.append_column("n", pc.is_null(f.values)).append_column("q", pc.fill_null(pc.is_nan(f.values), False))
        keys = [("p", "ascending", "at_end"), ("n", "descending" if ascending else "ascending", "at_end"),
                ("q", direction, "at_end"), ("v", direction, "at_end")]
    order = pc.sort_indices(t, sort_keys=keys)
    return _lists(f.parents, f.values.take(order), f.null, f.n)


def sort_array(args: list[Any], n: int) -> Any:
    ascending = args[1].as_py() if len(args) > 1 else True
    return _sorted(_Flat(args[0], n), bool(ascending))


def array_sort(args: list[Any], n: int) -> Any:
    f = _Flat(args[0], n)
    t = pa.table({"p": f.parents, "v": f.values})
    order = pc.sort_indices(t, sort_keys=[("p", "ascending", "at_end"), ("v", "ascending", "at_end")])
    return _lists(f.parents, f.values.take(order), f.null, n)


def slice_(args: list[Any], n: int) -> Any:
    """``slice(x, start, length)``: 1-based *start*, negative counting from the end."""
    f = _Flat(args[0], n)
    start, null_start = _ints(args[1], n)
    length, null_length = _ints(args[2], n)
    null = f.null | null_start | null_length
    if ((start == 0) & ~null).any():
        raise AnalysisException("[INVALID_PARAMETER_VALUE.START] The value of parameter(s) `start` in `slice` is "
                                "invalid: Expects a positive or a negative value for `start`, but got 0.",
                                error_class="INVALID_PARAMETER_VALUE.START")
    if ((length < 0) & ~null).any():
        bad = int(length[(length < 0) & ~null][0])
        raise AnalysisException(f"[INVALID_PARAMETER_VALUE.LENGTH] The value of parameter(s) `length` in `slice` is "
                                f"invalid: Expects `length` greater than or equal to 0, but got {bad}.",
                                error_class="INVALID_PARAMETER_VALUE.LENGTH")
    first = np.where(start > 0, start - 1, f.lengths + start)
    inside = (first >= 0) & (first < f.lengths) & ~null
    counts = np.where(inside, np.minimum(length, f.lengths - first), 0).astype(np.int64)
    base = np.repeat(f.starts + first, counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    take = pa.array(base + within, pa.int64())
    return _lists(np.repeat(np.arange(n), counts), f.values.take(take), null, n)


def _extreme(aggregate: str) -> Any:
    def run(args: list[Any], n: int) -> Any:
        f = _Flat(args[0], n)
        t = pa.table({"p": f.parents, "v": f.values})
        requests = [("v", aggregate)]
        nan_flag = aggregate == "max" and pa.types.is_floating(f.values.type)
        if nan_flag:  # pyarrow's max skips NaN, Spark's is NaN where the array holds one
            t = t.append_column("q", pc.is_nan(f.values))
            requests.append(("q", "any"))
        groups = t.group_by("p", use_threads=False).aggregate(requests)
        where = np.full(n, -1, np.int64)
        where[groups.column("p").to_numpy()] = np.arange(groups.num_rows)
        found = where >= 0
        result = groups.column(f"v_{aggregate}").combine_chunks()
        if nan_flag:
            result = float_ordering.max_with_nan(result, groups.column("q_any").combine_chunks())
        return result.take(pa.array(np.where(found, where, 0), mask=~found))
    return run


def _equal_to(f: _Flat, value: Any) -> tuple[np.ndarray, np.ndarray]:
    """Which elements equal their row's *value*, and the rows where *value* is NULL."""
    value = _plain(value, f.n)
    t = common_type(f.values.type, value.type)
    values, wanted = _coerce(f.values, f.values.type, t), _coerce(value, value.type, t)
    per_element = wanted.take(pa.array(f.parents, pa.int64())) if len(f.parents) else pa.array([], t)
    hits = pc.fill_null(float_ordering.compare("=", values, per_element, t), False).to_numpy(zero_copy_only=False)
    return hits, value.is_null().to_numpy(zero_copy_only=False)


def array_position(args: list[Any], n: int) -> Any:
    f = _Flat(args[0], n)
    hits, null_value = _equal_to(f, args[1])
    found = np.zeros(n, np.int64)
    positions = np.flatnonzero(hits)[::-1]  # the last write wins: the first match in each row
    found[f.parents[positions]] = positions - f.starts[f.parents[positions]] + 1
    return _mask(found, f.null | null_value, pa.int64())


def array_remove(args: list[Any], n: int) -> Any:
    f = _Flat(args[0], n)
    hits, null_value = _equal_to(f, args[1])
    keep = np.flatnonzero(~hits)
    return _lists(f.parents[keep], f.values.take(pa.array(keep, pa.int64())), f.null | null_value, n)


def flatten(args: list[Any], n: int) -> Any:
    outer = _Flat(args[0], n)
    inner = _Flat(outer.values, len(outer.values))
    # a NULL inner array makes its row NULL
    null = outer.null | (np.bincount(outer.parents, weights=inner.null, minlength=n) > 0 if len(outer.parents)
                         else np.zeros(n, bool))
    per_row = np.bincount(outer.parents, weights=inner.lengths, minlength=n).astype(np.int64) if \
        len(outer.parents) else np.zeros(n, np.int64)
    keep = ~np.repeat(null, per_row)
    parents = np.repeat(np.arange(n), per_row)[keep]
    values = inner.values.filter(pa.array(keep)) if not keep.all() else inner.values
    return _lists(parents, values, null, n)


def array_join(args: list[Any], n: int) -> Any:
    f = _Flat(args[0], n)
    delimiter = args[1].as_py()
    replacement = args[2].as_py() if len(args) > 2 else None
    values = _coerce(f.values, f.values.type, pa.string())
    parents = f.parents
    if len(args) > 2 and replacement is None:  # a NULL replacement makes the result NULL
        return pa.nulls(n, pa.string())
    if replacement is None:
        keep = values.is_valid()
        parents = parents[keep.to_numpy(zero_copy_only=False)]
        values = values.filter(keep)
    else:
        values = pc.fill_null(values, replacement)
    if delimiter is None:
        return pa.nulls(n, pa.string())
    return pc.binary_join(_lists(parents, values, f.null, n), delimiter)


# ---------------------------------------------------------------------------- two arrays as sets
def _set_operation(kind: str) -> Any:
    def run(args: list[Any], n: int) -> Any:
        a, b = _Flat(args[0], n), _Flat(args[1], n)
        t = common_type(a.values.type, b.values.type)
        values = float_ordering.normalize(pa.concat_arrays([_coerce(a.values, a.values.type, t),
                                                            _coerce(b.values, b.values.type, t)]))
        parents = np.concatenate([a.parents, b.parents])
        side = np.concatenate([np.zeros(len(a.parents), np.int8), np.ones(len(b.parents), np.int8)])
        null = a.null | b.null
        if not len(parents):
            return _lists(parents, values, null, n)
        grouped = _groups(parents, values)
        if grouped is not None:
            order, starts = grouped
            first = order[starts]
            lowest, highest = np.minimum.reduceat(side[order], starts), np.maximum.reduceat(side[order], starts)
        else:
            table = pa.table({"p": parents, "v": values, "i": np.arange(len(parents)), "s": side})
            groups = table.group_by(["p", "v"], use_threads=False).aggregate([("i", "min"), ("s", "min"),
                                                                              ("s", "max")])
            first = groups.column("i_min").to_numpy()
            lowest, highest = groups.column("s_min").to_numpy(), groups.column("s_max").to_numpy()
        if kind == "intersect":
            first = first[(lowest == 0) & (highest == 1)]
        elif kind == "except":
            first = first[highest == 0]
        first = first[np.lexsort((first, parents[first]))]
        keep = ~null[parents[first]]
        first = first[keep]
        return _lists(parents[first], values.take(pa.array(first, pa.int64())), null, n)
    return run


def _set_type(types: list[pa.DataType]) -> pa.DataType:
    for t in types:
        if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
            raise _not_array(t)
    return pa.list_(common_type(types[0].value_type, types[1].value_type))


# ---------------------------------------------------------------------------- arrays_zip
def _zip_field(e: Expr, i: int) -> str:
    name = given_name(e)
    return str(i) if name is None else name  # unnamed ones by position, as Spark's ArraysZip


class ArraysZip(Expr):
    """``arrays_zip(a, b)``: the i-th elements of each array as one struct, padded with NULLs to the
    longest array; NULL where any array is."""

    def __init__(self, args: Sequence[Expr]) -> None:
        self.children = tuple(args)

    @property
    def dtype(self) -> pa.DataType:
        fields = []
        for i, c in enumerate(self.children):
            t = c.dtype
            if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
                raise _not_array(t)
            fields.append(pa.field(_zip_field(c, i), t.value_type))
        return pa.list_(pa.struct(fields))

    @property
    def nullable(self) -> bool:
        return any(c.nullable for c in self.children)

    def eval(self, table: pa.Table) -> Any:
        n = table.num_rows
        flats = [_Flat(c.eval(table), n) for c in self.children]
        null = np.zeros(n, bool)
        longest = np.zeros(n, np.int64)
        for f in flats:
            null |= f.null
            longest = np.maximum(longest, f.lengths)
        longest = np.where(null, 0, longest)
        row = np.repeat(np.arange(n), longest)
        within = np.arange(longest.sum()) - np.repeat(np.cumsum(longest) - longest, longest)
        columns = []
        for f in flats:
            inside = within < f.lengths[row]
            take = np.where(inside, f.starts[row] + within, 0)
            columns.append(f.values.take(pa.array(take, pa.int64(), mask=~inside)) if len(f.values)
                           else pa.nulls(len(take), f.values.type))
        struct_type = self.dtype.value_type
        values = pa.StructArray.from_arrays(columns, fields=list(struct_type)) if columns else \
            pa.array([{}] * len(row), struct_type)
        return _lists(row, values, null, n)

    def sql(self) -> str:
        # an alias names its struct field, and Spark prints it inside the call
        return "arrays_zip(" + ", ".join(f"{c.child.sql()} AS {c.name}" if isinstance(c, Alias) else c.sql()
                                         for c in self.children) + ")"


# ---------------------------------------------------------------------------- the table
def _array_arg(types: list[pa.DataType]) -> pa.DataType:
    t = types[0]
    if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
        raise _not_array(t)
    return t


def _element(types: list[pa.DataType]) -> pa.DataType:
    return _array_arg(types).value_type


def _flatten_type(types: list[pa.DataType]) -> pa.DataType:
    inner = _element(types)
    if not (pa.types.is_list(inner) or pa.types.is_large_list(inner)):
        raise _not_array(inner)
    return pa.list_(inner.value_type)


ARRAY_SCALARS: dict[str, ScalarSpec] = {
    "array_distinct": ScalarSpec(_array_arg, array_distinct, nulls="intolerant"),
    "sort_array": ScalarSpec(_array_arg, sort_array, 1, 2, nulls="intolerant"),
    "array_sort": ScalarSpec(_array_arg, array_sort, nulls="intolerant"),
    "slice": ScalarSpec(_array_arg, slice_, 3, 3, nulls="intolerant"),
    "array_max": ScalarSpec(_element, _extreme("max")),
    "array_min": ScalarSpec(_element, _extreme("min")),
    "array_position": ScalarSpec(lambda t: (_array_arg(t), pa.int64())[1], array_position, 2, 2, nulls="intolerant"),
    "array_remove": ScalarSpec(_array_arg, array_remove, 2, 2, nulls="intolerant"),
    "array_union": ScalarSpec(_set_type, _set_operation("union"), 2, 2, nulls="intolerant"),
    "array_intersect": ScalarSpec(_set_type, _set_operation("intersect"), 2, 2, nulls="intolerant"),
    "array_except": ScalarSpec(_set_type, _set_operation("except"), 2, 2, nulls="intolerant"),
    "flatten": ScalarSpec(_flatten_type, flatten),
    "array_join": ScalarSpec(lambda t: (_array_arg(t), pa.string())[1], array_join, 2, 3, nulls="intolerant"),
}
ARRAY_LITERAL_ARGS = {"sort_array": 1, "array_join": 1}

from sparkctl.sql.builtins_sequence import SEQUENCE_SCALARS  # noqa: E402

ARRAY_SCALARS.update(SEQUENCE_SCALARS)
