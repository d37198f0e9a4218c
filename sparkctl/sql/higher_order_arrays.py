"""Higher-order functions over arrays (Spark's higherOrderFunctions.scala): ``transform``,
``filter``, ``exists``, ``forall``, ``aggregate`` (``reduce``) and ``zip_with``.

Each evaluates its lambda's body vectorised: the arrays of every row are flattened into one
column of elements, the parameters and the outer columns the body reads are laid out a row
per element, and the body runs once over that table:

    [[1, 2], NULL, [3]] ─▶ x: [1, 2, 3]   i: [0, 1, 0]   k (outer): [k0, k0, k2]
                        ─▶ body over 3 rows ─▶ rebuilt with the arrays' offsets

``aggregate`` folds in order, so it steps through positions: step k merges the k-th element
of every array that has one, all at once. A NULL array gives NULL without calling the lambda.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.errors import AnalysisException
from sparkctl.sql.expressions import Expr, Literal, Scope, as_array, spark_type_name
from sparkctl.sql.higher_order import ArraySort, LambdaFunction, arity_mismatch, free_columns

_ORDINALS = ("first", "second", "third", "fourth")


# ----------------------------------------------------------------------------- helpers
def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t)


def _type_mismatch(function: Expr, index: int, required: str, argument: Expr) -> AnalysisException:
    return AnalysisException(f"[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] Cannot resolve \"{function.sql()}\" due "
                             f"to data type mismatch: The {_ORDINALS[index]} parameter requires the \"{required}\" "
                             f"type, however \"{argument.sql()}\" has the type \"{spark_type_name(argument.dtype)}\".",
                             error_class="DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE")


def _resolved_array(function: Expr, index: int, scope: Scope) -> Expr:
    array = function.children[index].resolve(scope)
    if not _is_list(array.dtype):
        raise _type_mismatch(function, index, "ARRAY", array)
    return array


def element_nullable(array: Expr) -> bool:
    """Whether an array expression's elements may be NULL (Spark's containsNull), where it can
    be told from the expression; True otherwise (sparkctl's Arrow types do not carry it)."""
    from sparkctl.sql.builtins import Func
    if isinstance(array, Func) and array.name == "array":
        return any(c.nullable for c in array.children)
    if isinstance(array, Literal):
        return not isinstance(array.value, (list, tuple)) or any(v is None for v in array.value)
    if isinstance(array, (ArrayTransform, ZipWith)):
        return array.function.body.nullable
    if isinstance(array, (ArrayFilter, ArraySort)):
        return element_nullable(array.children[0])
    return True


def _bound(function: Expr, index: int, types: list[tuple[pa.DataType, bool]], scope: Scope,
           accepted: tuple[int, ...]) -> LambdaFunction:
    """The lambda at children[index] with its parameters typed and its body resolved; a lambda
    of fewer parameters than *types* gets the first ones (transform's (x) of (x, i))."""
    lambda_ = function.children[index]
    assert isinstance(lambda_, LambdaFunction)
    arity = len(lambda_.variables)
    if arity not in accepted:
        raise arity_mismatch(accepted[0], arity)  # Spark binds the first form and counts against it
    bound = lambda_.bind(types[:arity])
    return LambdaFunction(bound.body.resolve(scope), bound.variables)


def _lists(expr: Expr, table: pa.Table) -> pa.Array:
    lists = as_array(expr.eval(table), table.num_rows)
    return lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists


def _column(value: Any, length: int) -> pa.Array:
    value = as_array(value, length)
    return value.combine_chunks() if isinstance(value, pa.ChunkedArray) else value


@dataclass
class _Elements:
    """The arrays of a column laid out an element a row: values, the row each came from, its
    position in its array, and each row's length (0 for a NULL array)."""
    values: pa.Array
    rows: np.ndarray
    positions: np.ndarray
    lengths: np.ndarray

    @staticmethod
    def of(lists: pa.Array) -> "_Elements":
        lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        values = lists.flatten()  # skips the slots of NULL arrays, as the lengths do
        rows = np.repeat(np.arange(len(lists), dtype=np.int64), lengths)
        starts = np.cumsum(lengths) - lengths
        positions = np.arange(len(rows), dtype=np.int64) - np.repeat(starts, lengths)
        return _Elements(values, rows, positions, lengths)


def _with_index(function: LambdaFunction, elements: _Elements) -> list[Any]:
    """The arguments of ``x -> ...`` or ``(x, i) -> ...`` (the index only where it is asked for)."""
    if len(function.variables) < 2:
        return [elements.values]
    return [elements.values, pa.array(elements.positions.astype(np.int32))]


def _apply(function: LambdaFunction, table: pa.Table, rows: np.ndarray, arguments: list[Any],
           outer: list[str] | None = None) -> pa.Array:
    """The body over a table of one row per entry of *rows*: the parameters take *arguments*,
    the outer columns the body reads (*outer*, found when not given) are *table*'s at *rows*."""
    outer = free_columns(function, table) if outer is None else outer
    take = pa.array(rows, pa.int64()) if outer else None
    columns = {c: table.column(c).take(take) for c in outer}
    for variable, argument in zip(function.variables, arguments):
        columns[variable.column] = argument
    return _column(function.body.eval(pa.table(columns)), len(rows))


def _offsets(lengths: np.ndarray) -> pa.Array:
    return pa.array(np.concatenate([[0], np.cumsum(lengths)]), pa.int32())


def _null_mask(lists: pa.Array) -> pa.Array | None:
    return lists.is_null() if lists.null_count else None


class _HigherOrder(Expr):
    """A function of an array and a lambda (its last child)."""

    name = ""

    @property
    def function(self) -> LambdaFunction:
        function = self.children[-1]
        assert isinstance(function, LambdaFunction)
        return function

    @property
    def nullable(self) -> bool:
        return self.children[0].nullable

    def sql(self) -> str:
        return f"{self.name}({', '.join(c.sql() for c in self.children)})"


# ----------------------------------------------------------------------------- transform, filter
class ArrayTransform(_HigherOrder):
    """``transform(array, x -> ...)`` / ``(x, i) -> ...``: each element mapped, i its 0-based index."""

    name = "transform"

    def __init__(self, array: Expr, function: LambdaFunction) -> None:
        self.children = (array, function)

    def resolve(self, scope: Scope) -> Expr:
        array = _resolved_array(self, 0, scope)
        types = [(array.dtype.value_type, element_nullable(array)), (pa.int32(), False)]
        return self.with_children([array, _bound(self, 1, types, scope, (1, 2))])

    @property
    def dtype(self) -> pa.DataType:
        return pa.list_(self.function.body.dtype)

    def eval(self, table: pa.Table) -> Any:
        lists = _lists(self.children[0], table)
        elements = _Elements.of(lists)
        values = _apply(self.function, table, elements.rows, _with_index(self.function, elements))
        element_type = self.function.body.dtype
        if values.type != element_type:
            values = values.cast(element_type)
        return pa.ListArray.from_arrays(_offsets(elements.lengths), values, type=pa.list_(element_type),
                                        mask=_null_mask(lists))


class ArrayFilter(_HigherOrder):
    """``filter(array, x -> predicate)`` / ``(x, i) -> ...``: the elements the predicate holds for
    (NULL counts as false)."""

    name = "filter"

    def __init__(self, array: Expr, function: LambdaFunction) -> None:
        self.children = (array, function)

    def resolve(self, scope: Scope) -> Expr:
        array = _resolved_array(self, 0, scope)
        types = [(array.dtype.value_type, element_nullable(array)), (pa.int32(), False)]
        function = _bound(self, 1, types, scope, (1, 2))
        _check_predicate(self, function)
        return self.with_children([array, function])

    @property
    def dtype(self) -> pa.DataType:
        return self.children[0].dtype

    def eval(self, table: pa.Table) -> Any:
        lists = _lists(self.children[0], table)
        elements = _Elements.of(lists)
        keep = _apply(self.function, table, elements.rows, _with_index(self.function, elements))
        keep = pc.fill_null(keep if keep.type == pa.bool_() else keep.cast(pa.bool_()), False)
        kept = keep.to_numpy(zero_copy_only=False)
        lengths = np.bincount(elements.rows[kept], minlength=len(lists)).astype(np.int64)
        return pa.ListArray.from_arrays(_offsets(lengths), elements.values.filter(keep), type=lists.type,
                                        mask=_null_mask(lists))


def _check_predicate(function: Expr, lambda_: LambdaFunction) -> None:
    if not (pa.types.is_boolean(lambda_.body.dtype) or pa.types.is_null(lambda_.body.dtype)):
        raise _type_mismatch(function, 1, "BOOLEAN", lambda_)


# ----------------------------------------------------------------------------- exists, forall
class ArrayExists(_HigherOrder):
    """``exists(array, x -> predicate)``: true if the predicate holds for an element; else NULL if
    it was NULL for one (Spark's three-valued logic), else false."""

    name = "exists"
    #: the answer an element decides alone (true for exists, false for forall)
    decisive = True

    def __init__(self, array: Expr, function: LambdaFunction) -> None:
        self.children = (array, function)

    def resolve(self, scope: Scope) -> Expr:
        array = _resolved_array(self, 0, scope)
        function = _bound(self, 1, [(array.dtype.value_type, element_nullable(array))], scope, (1,))
        _check_predicate(self, function)
        return self.with_children([array, function])

    @property
    def dtype(self) -> pa.DataType:
        return pa.bool_()

    @property
    def nullable(self) -> bool:
        return self.children[0].nullable or self.function.body.nullable

    def eval(self, table: pa.Table) -> Any:
        lists = _lists(self.children[0], table)
        elements = _Elements.of(lists)
        try:
            any_decided, any_unknown = self._all_at_once(table, elements, len(lists))
        except Exception:  # noqa: BLE001 - Spark stops at an array's deciding element: an error past it is not raised
            any_decided, any_unknown = self._in_order(table, elements, len(lists))
        answer = np.where(any_decided, self.decisive, not self.decisive)
        null = (~any_decided & any_unknown) | lists.is_null().to_numpy(zero_copy_only=False)
        return pa.array(answer, pa.bool_(), mask=null)

    def _outcomes(self, outcome: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Which predicate results decide alone, and which are NULL."""
        if outcome.type != pa.bool_():
            outcome = outcome.cast(pa.bool_())
        decided = pc.fill_null(pc.equal(outcome, pa.scalar(self.decisive)), False).to_numpy(zero_copy_only=False)
        return decided, outcome.is_null().to_numpy(zero_copy_only=False)

    def _all_at_once(self, table: pa.Table, elements: _Elements, n: int) -> tuple[np.ndarray, np.ndarray]:
        decided, unknown = self._outcomes(_apply(self.function, table, elements.rows, [elements.values]))
        return (np.bincount(elements.rows[decided], minlength=n) > 0,
                np.bincount(elements.rows[unknown], minlength=n) > 0)

    def _in_order(self, table: pa.Table, elements: _Elements, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Position by position over the arrays not decided yet, as Spark's loop runs, so that an
        error is raised only for an element Spark also evaluates."""
        any_decided, any_unknown = np.zeros(n, bool), np.zeros(n, bool)
        starts = np.cumsum(elements.lengths) - elements.lengths
        outer = free_columns(self.function, table)
        active = np.flatnonzero(elements.lengths > 0)
        step = 0
        while len(active):
            x = elements.values.take(pa.array(starts[active] + step, pa.int64()))
            decided, unknown = self._outcomes(_apply(self.function, table, active, [x], outer))
            any_decided[active[decided]] = True
            any_unknown[active[unknown]] = True
            step += 1
            active = active[~decided & (elements.lengths[active] > step)]
        return any_decided, any_unknown


class ArrayForAll(ArrayExists):
    """``forall(array, x -> predicate)``: false if the predicate fails for an element; else NULL
    if it was NULL for one, else true."""

    name = "forall"
    decisive = False


# ----------------------------------------------------------------------------- aggregate
class ArrayAggregate(_HigherOrder):
    """``aggregate(array, zero, (acc, x) -> merge, acc -> finish)`` (``reduce`` is the same): the
    elements folded in order from *zero*; the merge must return zero's type, as in Spark."""

    def __init__(self, array: Expr, zero: Expr, merge: LambdaFunction, finish: LambdaFunction,
                 name: str = "aggregate") -> None:
        self.children = (array, zero, merge, finish)
        self.name = name

    @property
    def merge(self) -> LambdaFunction:
        merge = self.children[2]
        assert isinstance(merge, LambdaFunction)
        return merge

    def resolve(self, scope: Scope) -> Expr:
        array = _resolved_array(self, 0, scope)
        zero = self.children[1].resolve(scope)
        accumulator = (zero.dtype, True)
        merge = _bound(self, 2, [accumulator, (array.dtype.value_type, element_nullable(array))], scope, (2,))
        if not _same_structure(zero.dtype, merge.body.dtype):
            raise _type_mismatch(self, 2, spark_type_name(zero.dtype), merge)
        finish = _bound(self, 3, [accumulator], scope, (1,))
        return self.with_children([array, zero, merge, finish])

    @property
    def dtype(self) -> pa.DataType:
        return self.function.body.dtype

    @property
    def nullable(self) -> bool:
        return self.children[0].nullable or self.function.body.nullable

    def eval(self, table: pa.Table) -> Any:
        lists = _lists(self.children[0], table)
        n = len(lists)
        elements = _Elements.of(lists)
        starts = np.cumsum(elements.lengths) - elements.lengths
        # the rows of non-NULL arrays: nothing is evaluated for a NULL array (zero and finish included)
        valid = np.flatnonzero(~lists.is_null().to_numpy(zero_copy_only=False)) if lists.null_count \
            else np.arange(n, dtype=np.int64)
        lengths = elements.lengths[valid]
        zero_type = self.children[1].dtype
        zero_table = table if len(valid) == n else table.take(pa.array(valid, pa.int64()))
        accumulator = _typed(_column(self.children[1].eval(zero_table), len(valid)), zero_type)
        # positions (in valid) still folding, with their accumulators; the others' are final
        active = np.flatnonzero(lengths > 0)
        current = accumulator.take(pa.array(active, pa.int64()))
        done, done_values = [np.flatnonzero(lengths == 0)], [accumulator.filter(pa.array(lengths == 0))]
        outer = free_columns(self.merge, table)
        step = 0
        while len(active):
            going = lengths[active] > step
            if not going.all():
                done.append(active[~going])
                done_values.append(current.filter(pa.array(~going)))
                active, current = active[going], current.filter(pa.array(going))
                if not len(active):
                    break
            rows = valid[active]
            x = elements.values.take(pa.array(starts[rows] + step, pa.int64()))
            current = _typed(_apply(self.merge, table, rows, [current, x], outer), zero_type)
            step += 1
        order = np.argsort(np.concatenate(done), kind="stable")
        folded = pa.concat_arrays(done_values).take(pa.array(order, pa.int64()))
        result = _apply(self.function, table, valid, [folded])
        if len(valid) == n:
            return result
        at = np.full(n, -1, dtype=np.int64)
        at[valid] = np.arange(len(valid), dtype=np.int64)
        return result.take(pa.array(at, pa.int64(), mask=at < 0))


def _typed(values: pa.Array, dtype: pa.DataType) -> pa.Array:
    return values if values.type == dtype else values.cast(dtype)


def _same_structure(a: pa.DataType, b: pa.DataType) -> bool:
    """Spark's DataType.equalsStructurally ignoring nullability: equal types, struct field names aside."""
    if pa.types.is_struct(a) and pa.types.is_struct(b):
        return a.num_fields == b.num_fields and all(_same_structure(a.field(i).type, b.field(i).type)
                                                    for i in range(a.num_fields))
    if _is_list(a) and _is_list(b):
        return _same_structure(a.value_type, b.value_type)
    if pa.types.is_map(a) and pa.types.is_map(b):
        return _same_structure(a.key_type, b.key_type) and _same_structure(a.item_type, b.item_type)
    return a == b


# ----------------------------------------------------------------------------- zip_with
class ZipWith(_HigherOrder):
    """``zip_with(left, right, (x, y) -> ...)``: elements merged pairwise, the shorter array
    padded with NULLs; NULL if either array is."""

    name = "zip_with"

    def __init__(self, left: Expr, right: Expr, function: LambdaFunction) -> None:
        self.children = (left, right, function)

    def resolve(self, scope: Scope) -> Expr:
        left = _resolved_array(self, 0, scope)
        right = _resolved_array(self, 1, scope)
        types = [(left.dtype.value_type, True), (right.dtype.value_type, True)]
        return self.with_children([left, right, _bound(self, 2, types, scope, (2,))])

    @property
    def dtype(self) -> pa.DataType:
        return pa.list_(self.function.body.dtype)

    @property
    def nullable(self) -> bool:
        return self.children[0].nullable or self.children[1].nullable

    def eval(self, table: pa.Table) -> Any:
        left, right = _lists(self.children[0], table), _lists(self.children[1], table)
        a, b = _Elements.of(left), _Elements.of(right)
        null = pc.or_(left.is_null(), right.is_null())
        lengths = np.where(null.to_numpy(zero_copy_only=False), 0, np.maximum(a.lengths, b.lengths))
        rows = np.repeat(np.arange(len(left), dtype=np.int64), lengths)
        positions = np.arange(len(rows), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        arguments = [_padded(side, rows, positions) for side in (a, b)]
        values = _apply(self.function, table, rows, arguments)
        element_type = self.function.body.dtype
        if values.type != element_type:
            values = values.cast(element_type)
        return pa.ListArray.from_arrays(_offsets(lengths), values, type=pa.list_(element_type),
                                        mask=null if null.true_count else None)


def _padded(side: _Elements, rows: np.ndarray, positions: np.ndarray) -> pa.Array:
    """One side's element at each (row, position), NULL past the end of its array."""
    starts = np.cumsum(side.lengths) - side.lengths
    inside = positions < side.lengths[rows]
    indices = pa.array(np.where(inside, starts[rows] + positions, 0), pa.int64(), mask=~inside)
    return side.values.take(indices)
