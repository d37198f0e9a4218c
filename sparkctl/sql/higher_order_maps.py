"""Higher-order functions over maps (Spark's higherOrderFunctions.scala): ``transform_keys``,
``transform_values``, ``map_filter`` and ``map_zip_with``.

As over arrays (``higher_order_arrays``), the lambda's body runs once, vectorised, over a
table of one row per map entry: the key, the value, and the outer columns it reads:

    [{a: 1, b: 2}, NULL] ─▶ k: [a, b]   v: [1, 2]   ─▶ body over 2 rows ─▶ rebuilt with the offsets

``transform_keys`` checks the new keys as Spark's map builder does: a NULL key is
NULL_MAP_KEY, a key twice in one map DUPLICATED_MAP_KEY (spark.sql.mapKeyDedupPolicy's
default, EXCEPTION). ``map_zip_with`` merges two maps by key: the first map's keys in its
order, then the second's keys the first lacks, in theirs; a side without the key gives NULL.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.errors import AnalysisException, SparkSqlError
from sparkctl.sql.expressions import Expr, Scope, _coerce, common_type, spark_type_name
from sparkctl.sql.higher_order_arrays import _apply, _bound, _check_predicate, _HigherOrder, _lists, _offsets, \
    _type_mismatch


def _resolved_map(function: Expr, index: int, scope: Scope) -> Expr:
    value = function.children[index].resolve(scope)
    if not pa.types.is_map(value.dtype):
        raise _type_mismatch(function, index, "MAP", value)
    return value


def _entry_types(maps: Expr) -> list[tuple[pa.DataType, bool]]:
    t = maps.dtype
    return [(t.key_type, False), (t.item_type, True)]


class _Entries:
    """A column of maps laid out an entry a row: keys, values, the row each came from, and each
    row's number of entries (0 for a NULL map)."""

    def __init__(self, maps: pa.Array) -> None:
        offsets = maps.offsets.to_numpy(zero_copy_only=False).astype(np.int64)  # into the whole children
        lengths = np.diff(offsets)
        keys, values = maps.keys, maps.items
        if maps.null_count:  # a NULL map's slot may still span entries: skip them
            lengths = np.where(maps.is_null().to_numpy(zero_copy_only=False), 0, lengths)
            within = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            indices = pa.array(np.repeat(offsets[:-1], lengths) + within, pa.int64())
            keys, values = keys.take(indices), values.take(indices)
        elif len(offsets):
            start, stop = int(offsets[0]), int(offsets[-1])
            keys, values = keys.slice(start, stop - start), values.slice(start, stop - start)
        self.lengths = lengths
        self.keys = keys
        self.values = values
        self.rows = np.repeat(np.arange(len(maps), dtype=np.int64), lengths)


def _map(lengths: np.ndarray, keys: pa.Array, values: pa.Array, dtype: pa.DataType, null: Any) -> pa.Array:
    mask = null if null is not None and null.true_count else None
    return pa.MapArray.from_arrays(_offsets(lengths), keys, values, type=dtype, mask=mask)


def _null_of(maps: pa.Array) -> Any:
    return maps.is_null() if maps.null_count else None


def _typed(values: pa.Array, dtype: pa.DataType) -> pa.Array:
    return values if values.type == dtype else values.cast(dtype)


class _MapFunction(_HigherOrder):
    """A function of a map and a ``(k, v) -> ...`` lambda."""

    def __init__(self, maps: Expr, function: Any) -> None:
        self.children = (maps, function)

    def _resolve_lambda(self, scope: Scope) -> tuple[Expr, Any]:
        maps = _resolved_map(self, 0, scope)
        return maps, _bound(self, 1, _entry_types(maps), scope, (2,))


class TransformValues(_MapFunction):
    """``transform_values(map, (k, v) -> value)``: each entry's value replaced."""

    name = "transform_values"

    def resolve(self, scope: Scope) -> Expr:
        return self.with_children(list(self._resolve_lambda(scope)))

    @property
    def dtype(self) -> pa.DataType:
        return pa.map_(self.children[0].dtype.key_type, self.function.body.dtype)

    def eval(self, table: pa.Table) -> Any:
        maps = _lists(self.children[0], table)
        entries = _Entries(maps)
        values = _typed(_apply(self.function, table, entries.rows, [entries.keys, entries.values]),
                        self.function.body.dtype)
        return _map(entries.lengths, entries.keys, values, self.dtype, _null_of(maps))


class MapFilter(_MapFunction):
    """``map_filter(map, (k, v) -> predicate)``: the entries the predicate holds for (NULL is false)."""

    name = "map_filter"

    def resolve(self, scope: Scope) -> Expr:
        maps, function = self._resolve_lambda(scope)
        _check_predicate(self, function)
        return self.with_children([maps, function])

    @property
    def dtype(self) -> pa.DataType:
        return self.children[0].dtype

    def eval(self, table: pa.Table) -> Any:
        maps = _lists(self.children[0], table)
        entries = _Entries(maps)
        keep = _apply(self.function, table, entries.rows, [entries.keys, entries.values])
        keep = pc.fill_null(_typed(keep, pa.bool_()), False)
        kept = keep.to_numpy(zero_copy_only=False)
        lengths = np.bincount(entries.rows[kept], minlength=len(maps)).astype(np.int64)
        return _map(lengths, entries.keys.filter(keep), entries.values.filter(keep), self.dtype, _null_of(maps))


class TransformKeys(_MapFunction):
    """``transform_keys(map, (k, v) -> key)``: each entry's key replaced; a NULL or repeated new
    key is an error, as Spark's map builder raises it."""

    name = "transform_keys"

    def resolve(self, scope: Scope) -> Expr:
        return self.with_children(list(self._resolve_lambda(scope)))

    @property
    def dtype(self) -> pa.DataType:
        return pa.map_(self.function.body.dtype, self.children[0].dtype.item_type)

    def eval(self, table: pa.Table) -> Any:
        maps = _lists(self.children[0], table)
        entries = _Entries(maps)
        keys = _typed(_apply(self.function, table, entries.rows, [entries.keys, entries.values]),
                      self.function.body.dtype)
        if keys.null_count:
            raise SparkSqlError("[NULL_MAP_KEY] Cannot use null as map key. SQLSTATE: 2200E", error_class="NULL_MAP_KEY")
        _check_unique(entries.rows, keys)
        return _map(entries.lengths, keys, entries.values, self.dtype, _null_of(maps))


def _check_unique(rows: np.ndarray, keys: pa.Array) -> None:
    """DUPLICATED_MAP_KEY for the first key found twice in one map."""
    if len(keys) < 2:
        return
    pairs = pa.table({"r": pa.array(rows, pa.int64()), "k": keys})
    counts = pairs.group_by(["r", "k"], use_threads=False).aggregate([("r", "count")])
    repeated = counts.filter(pc.greater(counts.column("r_count"), 1))
    if repeated.num_rows:
        key = repeated.column("k")[0].as_py()
        raise SparkSqlError(
            f"[DUPLICATED_MAP_KEY] Duplicate map key {_key_text(key)} was found, please check the input data.\n"
            f"If you want to remove the duplicated keys, you can set \"spark.sql.mapKeyDedupPolicy\" to "
            f"\"LAST_WIN\" so that the key inserted at last takes precedence. SQLSTATE: 23505",
            error_class="DUPLICATED_MAP_KEY")


def _key_text(key: Any) -> str:
    if isinstance(key, bool):
        return str(key).lower()
    return str(key)


class MapZipWith(_HigherOrder):
    """``map_zip_with(left, right, (k, v1, v2) -> value)``: the two maps merged by key; NULL if
    either map is."""

    name = "map_zip_with"

    def __init__(self, left: Expr, right: Expr, function: Any) -> None:
        self.children = (left, right, function)

    def resolve(self, scope: Scope) -> Expr:
        left = _resolved_map(self, 0, scope)
        right = _resolved_map(self, 1, scope)
        lk, rk = left.dtype.key_type, right.dtype.key_type
        try:
            key = common_type(lk, rk)
        except AnalysisException:
            key = None
        if key is None or (lk != rk and not (pa.types.is_integer(lk) and pa.types.is_integer(rk))):
            raise AnalysisException(
                f"[DATATYPE_MISMATCH.MAP_ZIP_WITH_DIFF_TYPES] Cannot resolve \"{self.sql()}\" due to data type "
                f"mismatch: Input to the `map_zip_with` should have been two maps with compatible key types, "
                f"but it's [\"{spark_type_name(left.dtype)}\", \"{spark_type_name(right.dtype)}\"].",
                error_class="DATATYPE_MISMATCH.MAP_ZIP_WITH_DIFF_TYPES")
        types = [(key, False), (left.dtype.item_type, True), (right.dtype.item_type, True)]
        return self.with_children([left, right, _bound(self, 2, types, scope, (3,))])

    @property
    def key_type(self) -> pa.DataType:
        return common_type(self.children[0].dtype.key_type, self.children[1].dtype.key_type)

    @property
    def dtype(self) -> pa.DataType:
        return pa.map_(self.key_type, self.function.body.dtype)

    @property
    def nullable(self) -> bool:
        return self.children[0].nullable or self.children[1].nullable

    def eval(self, table: pa.Table) -> Any:
        left, right = _lists(self.children[0], table), _lists(self.children[1], table)
        null = pc.or_(left.is_null(), right.is_null())
        dropped = null.to_numpy(zero_copy_only=False)
        key_type = self.key_type
        sides = []
        for side, maps in enumerate((left, right)):
            entries = _Entries(maps)
            keep = ~dropped[entries.rows]
            positions = np.arange(len(entries.rows), dtype=np.int64) - \
                np.repeat(np.cumsum(entries.lengths) - entries.lengths, entries.lengths)
            sides.append(pa.table({
                "r": pa.array(entries.rows[keep], pa.int64()),
                "k": _coerce(entries.keys, entries.keys.type, key_type).filter(pa.array(keep)),
                f"p{side}": pa.array(positions[keep], pa.int64()),
                f"v{side}": entries.values.filter(pa.array(keep)),
            }))
        merged = sides[0].join(sides[1], ["r", "k"], join_type="full outer", use_threads=False, coalesce_keys=True)
        # the first map's keys in its order, then the second's own keys in theirs
        second_only = pc.is_null(merged.column("p0"))
        merged = merged.append_column("s", pc.cast(second_only, pa.int8())) \
            .append_column("p", pc.if_else(second_only, merged.column("p1"), merged.column("p0")))
        merged = merged.sort_by([("r", "ascending"), ("s", "ascending"), ("p", "ascending")])
        rows = merged.column("r").to_numpy()
        values = _typed(_apply(self.function, table, rows, [merged.column("k").combine_chunks(),
                                                             merged.column("v0").combine_chunks(),
                                                             merged.column("v1").combine_chunks()]),
                        self.function.body.dtype)
        lengths = np.bincount(rows, minlength=len(left)).astype(np.int64)
        return _map(lengths, merged.column("k").combine_chunks(), values, self.dtype, null)
