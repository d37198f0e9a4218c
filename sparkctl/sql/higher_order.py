"""Higher-order functions: lambda functions over array elements (Spark's
higherOrderFunctions.scala). This module holds the lambdas themselves and
``array_sort(array, comparator)``; ``higher_order_arrays`` holds transform, filter,
exists, forall, aggregate and zip_with.

A lambda is an expression tree like any other; its parameters are
:class:`NamedLambdaVariable` leaves, which read a column of their own. A higher-order
function evaluates the lambda's body once, vectorised, over a table that holds a row per
call (the parameters' values, and the outer columns the body names, repeated for each):

    rows ─▶ array_sort: every ordered pair (i, j) of each array's elements
         ─▶ comparator body evaluated over all pairs at once ─▶ an L×L matrix per array
         ─▶ each array sorted by Python's TimSort reading the matrix (Java's TimSort,
            which Spark calls, makes the same comparisons in the same order)

Spark names the parameters ``namedlambdavariable()`` in column names, whatever they are
called in Python or SQL, and so does sparkctl.
"""
from __future__ import annotations

import functools
import inspect
import itertools
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.errors import AnalysisException, SparkSqlError
from sparkctl.sql.expressions import AttributeRef, Expr, Scope, as_array, spark_type_name

_variable_ids = itertools.count(1)
#: ordered pairs evaluated per batch of arrays (bounds the memory of one comparator evaluation)
_PAIRS_PER_BATCH = 1 << 20


class NamedLambdaVariable(Expr):
    """A lambda's parameter: the column ``__lambda_<id>`` of the table its body is evaluated over."""

    def __init__(self, name: str, dtype: pa.DataType = pa.null(), nullable: bool = True,
                 variable_id: int | None = None) -> None:
        self.name = name
        self._dtype = dtype
        self._nullable = nullable
        self.variable_id = variable_id or next(_variable_ids)

    @property
    def column(self) -> str:
        return f"__lambda_{self.variable_id}"

    def bound(self, dtype: pa.DataType, nullable: bool) -> "NamedLambdaVariable":
        return NamedLambdaVariable(self.name, dtype, nullable, self.variable_id)

    def resolve(self, scope: Scope) -> Expr:
        return self

    @property
    def dtype(self) -> pa.DataType:
        return self._dtype

    @property
    def nullable(self) -> bool:
        return self._nullable

    def eval(self, table: pa.Table) -> Any:
        return table.column(self.column)

    @property
    def field_name(self) -> str:
        """The name it gives a struct field made of it (``struct(x)``), as Spark's."""
        return self.name

    def sql(self) -> str:
        return "namedlambdavariable()"


class LambdaFunction(Expr):
    """``(x, y) -> body``: the body is its one child; the parameters are kept apart."""

    def __init__(self, body: Expr, variables: Sequence[NamedLambdaVariable]) -> None:
        self.children = (body,)
        self.variables = tuple(variables)

    @property
    def body(self) -> Expr:
        return self.children[0]

    def bind(self, types: Sequence[tuple[pa.DataType, bool]]) -> "LambdaFunction":
        """The function with its parameters typed (element type, nullability) throughout its body."""
        bound = {v.variable_id: v.bound(t, nullable) for v, (t, nullable) in zip(self.variables, types)}

        def substitute(e: Expr) -> Expr:
            if isinstance(e, NamedLambdaVariable):
                return bound.get(e.variable_id, e)
            return e.with_children([substitute(c) for c in e.children]) if e.children else e
        return LambdaFunction(substitute(self.body), [bound[v.variable_id] for v in self.variables])

    @property
    def dtype(self) -> pa.DataType:
        return self.body.dtype

    def eval(self, table: pa.Table) -> Any:
        return self.body.eval(table)

    def sql(self) -> str:
        return f"lambdafunction({self.body.sql()}, {', '.join(v.sql() for v in self.variables)})"


def python_lambda(function: Callable[..., Any]) -> LambdaFunction:
    """A Python function of one to three Columns as a LambdaFunction, checked as PySpark's
    ``_create_lambda`` checks it (the higher-order function checks the arity it takes)."""
    from sparkctl.errors import PySparkValueError
    from sparkctl.sql.column import Column
    name = getattr(function, "__name__", type(function).__name__)
    parameters = list(inspect.signature(function).parameters.values())
    if not 1 <= len(parameters) <= 3:
        raise PySparkValueError(f"[WRONG_NUM_ARGS_FOR_HIGHER_ORDER_FUNCTION] Function `{name}` should take between 1 "
                                f"and 3 arguments, but the provided function takes {len(parameters)}.",
                                error_class="WRONG_NUM_ARGS_FOR_HIGHER_ORDER_FUNCTION")
    positional = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.POSITIONAL_ONLY)
    if not all(p.kind in positional for p in parameters):
        raise PySparkValueError(f"[UNSUPPORTED_PARAM_TYPE_FOR_HIGHER_ORDER_FUNCTION] Function `{name}` should use "
                                f"only POSITIONAL or POSITIONAL OR KEYWORD arguments.",
                                error_class="UNSUPPORTED_PARAM_TYPE_FOR_HIGHER_ORDER_FUNCTION")
    # PySpark names them x_<n>, y_<n>, z_<n> whatever the Python names; SQL keeps the query's
    # (``lambda_names``, set by the SQL translator); they show as struct field names
    ids = [next(_variable_ids) for _ in parameters]
    names = getattr(function, "lambda_names", None) or [f"{letter}_{i}" for letter, i in zip("xyz", ids)]
    variables = [NamedLambdaVariable(name, variable_id=i) for name, i in zip(names, ids)]
    body = function(*[Column(v) for v in variables])
    if not isinstance(body, Column):
        raise PySparkValueError(f"[HIGHER_ORDER_FUNCTION_SHOULD_RETURN_COLUMN] Function `{name}` should return "
                                f"Column, got {type(body).__name__}.",
                                error_class="HIGHER_ORDER_FUNCTION_SHOULD_RETURN_COLUMN")
    return LambdaFunction(body._expr, variables)


def identity_lambda() -> LambdaFunction:
    """``x -> x`` (aggregate's finish when none is given)."""
    variable = NamedLambdaVariable("id")
    return LambdaFunction(variable, [variable])


def arity_mismatch(expected: int, got: int) -> AnalysisException:
    return AnalysisException(f"[INVALID_LAMBDA_FUNCTION_CALL.NUM_ARGS_MISMATCH] Invalid lambda function call. "
                             f"A higher order function expects {expected} arguments, but got {got}.",
                             error_class="INVALID_LAMBDA_FUNCTION_CALL.NUM_ARGS_MISMATCH")


def free_columns(function: LambdaFunction, table: pa.Table) -> list[str]:
    """The columns of *table* the body reads besides the function's own parameters: outer
    columns, and the parameters of the lambdas it is nested in."""
    own = {v.column for v in function.variables}
    names = {e.attr.column if isinstance(e, AttributeRef) else e.column for e in function.body.walk()
             if isinstance(e, AttributeRef) or (isinstance(e, NamedLambdaVariable) and e.column not in own)}
    return sorted(n for n in names if n in table.column_names)


class ArraySort(Expr):
    """``array_sort(array, comparator)``: each array sorted by a comparator that returns a
    negative, zero or positive integer; a NULL from the comparator is an error (Spark's
    COMPARATOR_RETURNS_NULL), NULL elements are passed to it like any other."""

    def __init__(self, array: Expr, function: LambdaFunction) -> None:
        self.children = (array, function)

    def resolve(self, scope: Scope) -> Expr:
        array = self.children[0].resolve(scope)
        t = array.dtype
        if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
            raise AnalysisException(f"[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] Cannot resolve \"{self.sql()}\" due "
                                    f"to data type mismatch: the first parameter requires the \"ARRAY\" type, "
                                    f"however \"{array.sql()}\" has the type \"{spark_type_name(t)}\".",
                                    error_class="DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE")
        function = self.children[1]
        assert isinstance(function, LambdaFunction)
        if len(function.variables) != 2:
            raise arity_mismatch(2, len(function.variables))
        element = (t.value_type, True)
        bound = function.bind([element, element])
        body = bound.body.resolve(scope)
        if not pa.types.is_integer(body.dtype):
            raise AnalysisException(f"[DATATYPE_MISMATCH.UNEXPECTED_RETURN_TYPE] Cannot resolve \"{self.sql()}\" due "
                                    f"to data type mismatch: The comparator must return an integer, however "
                                    f"\"{body.sql()}\" has the type \"{spark_type_name(body.dtype)}\".",
                                    error_class="DATATYPE_MISMATCH.UNEXPECTED_RETURN_TYPE")
        return self.with_children([array, LambdaFunction(body, bound.variables)])

    @property
    def function(self) -> LambdaFunction:
        function = self.children[1]
        assert isinstance(function, LambdaFunction)
        return function

    @property
    def dtype(self) -> pa.DataType:
        return self.children[0].dtype

    @property
    def nullable(self) -> bool:
        return self.children[0].nullable

    def sql(self) -> str:
        return f"array_sort({self.children[0].sql()}, {self.function.sql()})"

    def eval(self, table: pa.Table) -> Any:
        lists = as_array(self.children[0].eval(table), table.num_rows)
        lists = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
        values = lists.flatten()
        lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        order = np.arange(len(values), dtype=np.int64)
        outer = free_columns(self.function, table)
        for rows in _batches(lengths):
            self._sort_batch(table, outer, values, lengths, starts, rows, order)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        mask = lists.is_null()
        return pa.ListArray.from_arrays(pa.array(offsets), values.take(pa.array(order)), type=lists.type,
                                        mask=mask if mask.true_count else None)

    def _sort_batch(self, table: pa.Table, outer: list[str], values: pa.Array, lengths: np.ndarray,
                    starts: np.ndarray, rows: np.ndarray, order: np.ndarray) -> None:
        """Sort the arrays of *rows* in place in *order* (indices into *values*)."""
        rows = rows[lengths[rows] > 1]
        if not len(rows):
            return
        sizes = lengths[rows]
        squares = sizes * sizes
        # every ordered pair (i, j) of each array, as indices into values and the row it came from
        pair_rows = np.repeat(rows, squares)
        pair_sizes = np.repeat(sizes, squares)
        within = np.arange(int(squares.sum()), dtype=np.int64) - np.repeat(np.cumsum(squares) - squares, squares)
        left = starts[pair_rows] + within // pair_sizes
        right = starts[pair_rows] + within % pair_sizes
        first, second = self.function.variables
        columns = {c: table.column(c).take(pa.array(pair_rows)) for c in outer}
        columns[first.column] = values.take(pa.array(left))
        columns[second.column] = values.take(pa.array(right))
        result = as_array(self.function.body.eval(pa.table(columns)), len(left))
        result = result.combine_chunks() if isinstance(result, pa.ChunkedArray) else result
        outcome = pc.fill_null(pc.cast(result, pa.int64()), 0).to_numpy(zero_copy_only=False).tolist()
        nulls = result.is_null().to_numpy(zero_copy_only=False) if result.null_count else None
        at = 0
        for row, n in zip(rows.tolist(), sizes.tolist()):
            start = int(starts[row])
            if nulls is not None and nulls[at:at + n * n].any():
                # a NULL raises only if the sort asks for that comparison, as in Spark
                compare = _checked(outcome, nulls, at, n, values, start)
            else:
                def compare(i: int, j: int, at: int = at, n: int = n) -> int:
                    return outcome[at + i * n + j]
            ranked = sorted(range(n), key=functools.cmp_to_key(compare))
            order[start:start + n] = [start + k for k in ranked]
            at += n * n


def _checked(outcome: list[int], nulls: np.ndarray, at: int, n: int, values: pa.Array,
             start: int) -> Callable[[int, int], int]:
    def compare(i: int, j: int) -> int:
        if nulls[at + i * n + j]:
            raise _null_comparison(values[start + i].as_py(), values[start + j].as_py())
        return outcome[at + i * n + j]
    return compare


def _batches(lengths: np.ndarray) -> list[np.ndarray]:
    """Row numbers in batches of about _PAIRS_PER_BATCH ordered pairs (an array of more pairs
    is a batch of its own)."""
    pairs = lengths * lengths
    batches: list[np.ndarray] = []
    current: list[int] = []
    total = 0
    for row in np.flatnonzero(lengths > 1):
        if current and total + pairs[row] > _PAIRS_PER_BATCH:
            batches.append(np.asarray(current, np.int64))
            current, total = [], 0
        current.append(int(row))
        total += int(pairs[row])
    if current:
        batches.append(np.asarray(current, np.int64))
    return batches


def _null_comparison(a: Any, b: Any) -> SparkSqlError:
    from sparkctl.errors import SparkArithmeticError
    return SparkArithmeticError(
        f"[COMPARATOR_RETURNS_NULL] The comparator has returned a NULL for a comparison between {a} and {b}. It "
        f"should return a positive integer for \"greater than\", 0 for \"equal\" and a negative integer for \"less "
        f"than\". To revert to deprecated behavior where NULL is treated as 0 (equal), you must set "
        f"\"spark.sql.legacy.allowNullComparisonResultInArraySort\" to \"true\". SQLSTATE: 22004",
        error_class="COMPARATOR_RETURNS_NULL")
