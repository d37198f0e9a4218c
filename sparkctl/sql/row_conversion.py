"""Python rows and Arrow tables: ``verify_and_convert`` checks rows against a schema (as
PySpark's ``verifySchema``) and builds the Arrow table; ``arrow_to_rows`` gives back the
Python values PySpark's ``collect()`` gives."""
from __future__ import annotations

import contextlib
import datetime
import decimal
import gc
from array import array as _pyarray
from typing import Any, Callable, Iterator

import pyarrow as pa

from sparkctl.sql.arrow_types import schema_to_arrow
from sparkctl.sql.row import Row, _row_class
from sparkctl.sql.types import (DataType, NullType, StringType, BinaryType, BooleanType, DateType,
    TimestampType, TimestampNTZType, DecimalType, DoubleType, FloatType, ByteType, IntegerType, LongType,
    ShortType, DayTimeIntervalType, ArrayType, MapType, StructField, StructType)


# ---------------------------------------------------------------------------- Python rows -> Arrow
_ACCEPTABLE: dict[type, tuple[type, ...]] = {
    BooleanType: (bool,), ByteType: (int,), ShortType: (int,), IntegerType: (int,), LongType: (int,),
    FloatType: (float,), DoubleType: (float,), DecimalType: (decimal.Decimal,),
    BinaryType: (bytearray, bytes), DateType: (datetime.date, datetime.datetime),
    TimestampType: (datetime.datetime,), TimestampNTZType: (datetime.datetime,),
    DayTimeIntervalType: (datetime.timedelta,), ArrayType: (list, tuple, _pyarray), MapType: (dict,),
    StructType: (tuple, list, dict),
}

_BOUNDS: dict[type, int] = {ByteType: 7, ShortType: 15, IntegerType: 31, LongType: 63}


def _unacceptable(dt: DataType, obj: Any, name: str | None) -> TypeError:
    where = f"field {name}: " if name else ""
    return TypeError(f"[FIELD_DATA_TYPE_UNACCEPTABLE] {where}{dt} can not accept object {obj!r} "
                     f"in type {type(obj)}.")


def _converter(dt: DataType, nullable: bool, name: str) -> Callable[[Any], Any]:
    """A function checking one Python value against ``dt`` (PySpark's verifySchema rules)
    and returning it in the form ``pa.array(..., to_arrow(dt))`` takes."""
    convert: Callable[[Any], Any]
    if isinstance(dt, StringType):
        convert = _to_string
    elif isinstance(dt, NullType):
        convert = _to_none
    elif isinstance(dt, ArrayType):
        convert = _array_converter(dt, name)
    elif isinstance(dt, MapType):
        convert = _map_converter(dt, name)
    elif isinstance(dt, StructType):
        convert = _struct_converter(dt, name)
    else:
        convert = _atomic_converter(dt, name)

    def checked(v: Any) -> Any:
        if v is None or (type(v) is decimal.Decimal and v.is_nan()):
            if not nullable:
                raise ValueError(f"[FIELD_NOT_NULLABLE] Field `{name}`: This field is not nullable, "
                                 f"but got None.")
            return None
        return convert(v)
    return checked


def _to_string(v: Any) -> str:
    """Any value fits a string column, as str() (booleans as Spark writes them)."""
    return v if type(v) is str else ("true" if v else "false") if isinstance(v, bool) else str(v)


def _to_none(v: Any) -> None:
    return None


def _array_converter(dt: ArrayType, name: str) -> Callable[[Any], Any]:
    element = _converter(dt.elementType, dt.containsNull, f"element in array {name}")

    def convert(v: Any) -> Any:
        if type(v) not in _ACCEPTABLE[ArrayType]:
            raise _unacceptable(dt, v, name)
        return [element(x) for x in v]
    return convert


def _map_converter(dt: MapType, name: str) -> Callable[[Any], Any]:
    key = _converter(dt.keyType, False, f"key of map {name}")
    value = _converter(dt.valueType, dt.valueContainsNull, f"value of map {name}")

    def convert(v: Any) -> Any:
        if type(v) is not dict:
            raise _unacceptable(dt, v, name)
        return [(key(k), value(x)) for k, x in v.items()]
    return convert


def _atomic_converter(dt: DataType, name: str) -> Callable[[Any], Any]:
    acceptable = _ACCEPTABLE.get(type(dt))
    if acceptable is None:
        raise TypeError(f"[UNSUPPORTED_DATA_TYPE] Unsupported DataType `{dt!r}`.")
    bits = _BOUNDS.get(type(dt))
    precision = dt.precision if isinstance(dt, DecimalType) else 0
    quantum = decimal.Decimal(1).scaleb(-dt.scale) if isinstance(dt, DecimalType) else None

    def convert(v: Any) -> Any:
        if type(v) not in acceptable:
            raise _unacceptable(dt, v, name)
        if bits is not None and not -(1 << bits) <= v < (1 << bits):
            raise ValueError(f"[VALUE_OUT_OF_BOUNDS] Value for `obj` must be between {-(1 << bits)} and "
                             f"{(1 << bits) - 1} (inclusive), got {v}")
        if quantum is not None:
            v = v.quantize(quantum, rounding=decimal.ROUND_HALF_UP, context=_WIDE)
            return v if len(v.as_tuple().digits) <= precision else None
        if type(v) is datetime.datetime and isinstance(dt, DateType):
            return v.date()
        return v
    return convert


_WIDE = decimal.Context(prec=100)


def _struct_converter(dt: StructType, name: str | None) -> Callable[[Any], Any]:
    names = dt.names
    converters = [_converter(f.dataType, f.nullable, f.name if name is None else f"field {f.name} in {name}")
                  for f in dt.fields]

    def convert(v: Any) -> Any:
        values: Any
        if isinstance(v, dict):
            values = [v.get(n) for n in names]
        elif isinstance(v, (tuple, list)):
            if len(v) != len(converters):
                raise ValueError(f"[FIELD_STRUCT_LENGTH_MISMATCH] Length of object ({len(v)}) does not match "
                                 f"with length of fields ({len(converters)}).")
            values = v
        elif hasattr(v, "__dict__"):
            values = [v.__dict__.get(n) for n in names]
        else:
            raise _unacceptable(dt, v, name)
        return {n: c(x) for n, c, x in zip(names, converters, values)}
    return convert


def _row_values(row: Any, names: list[str]) -> Any:
    """One top-level row's values in schema order (tuples and lists by position)."""
    if isinstance(row, (tuple, list)):
        if len(row) != len(names):
            raise ValueError(f"[FIELD_STRUCT_LENGTH_MISMATCH] Length of object ({len(row)}) does not match "
                             f"with length of fields ({len(names)}).")
        return row
    if isinstance(row, dict):
        return [row.get(n) for n in names]
    if hasattr(row, "__dict__"):
        return [row.__dict__.get(n) for n in names]
    raise TypeError(f"[UNEXPECTED_TUPLE_WITH_STRUCT] Unexpected tuple {row!r} with StructType.")


#: types whose accepted Python values go to Arrow unchanged: a column of them is checked
#: by the set of its value types (and integer bounds) instead of value by value
_AS_IS = (BooleanType, ByteType, ShortType, IntegerType, LongType, FloatType, DoubleType, StringType, BinaryType,
          TimestampType, TimestampNTZType, DayTimeIntervalType)


def _column_values(values: list, field: StructField) -> list:
    """A column's values checked against ``field`` and ready for ``pa.array``."""
    dt = field.dataType
    if isinstance(dt, _AS_IS):
        kinds = set(map(type, values))
        has_null = type(None) in kinds
        kinds.discard(type(None))
        acceptable = (str,) if isinstance(dt, StringType) else _ACCEPTABLE[type(dt)]
        if kinds.issubset(acceptable) and (field.nullable or not has_null):
            bits = _BOUNDS.get(type(dt))
            present = [v for v in values if v is not None] if bits is not None and has_null else values
            if bits is None or not present or -(1 << bits) <= min(present) and max(present) < (1 << bits):
                return values
    convert = _converter(dt, field.nullable, field.name)
    return [convert(v) for v in values]


def verify_and_convert(rows: list, schema: StructType) -> pa.Table:
    """An Arrow table of ``rows`` (tuples, lists, dicts by name, Rows, objects) with
    ``schema``'s columns, each value checked against its field's type first: a wrong type
    is a TypeError naming the field and the value, as PySpark's verifySchema raises."""
    names = schema.names
    arrow = schema_to_arrow(schema)
    with _gc_paused():
        columns = [list(c) for c in zip(*(_row_values(r, names) for r in rows))] if rows else [[] for _ in names]
        arrays = [pa.array(_column_values(c, f), type=a.type) for c, f, a in zip(columns, schema.fields, arrow)]
    return pa.Table.from_arrays(arrays, schema=pa.schema([f.with_nullable(True) for f in arrow]))


# ---------------------------------------------------------------------------- Arrow -> Python rows
def _naive(t: pa.DataType) -> pa.DataType:
    """``t`` with every time-zone-aware timestamp made a naive (UTC) one."""
    if pa.types.is_timestamp(t) and t.tz is not None:
        return pa.timestamp(t.unit)
    if pa.types.is_map(t):
        return pa.map_(_naive(t.key_type), pa.field(t.item_field.name, _naive(t.item_type), t.item_field.nullable))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        make = pa.list_ if pa.types.is_list(t) else pa.large_list
        return make(t.value_field.with_type(_naive(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_naive(f.type)) for f in t])
    return t


def _python_wrapper(dt: DataType) -> Callable[[Any], Any] | None:
    """What turns Arrow's ``to_pylist`` value into PySpark's ``collect`` value, or None
    when they are the same (structs become Rows, maps dicts)."""
    if isinstance(dt, StructType):
        cls = _row_class(dt.names)
        wrappers = [_python_wrapper(f.dataType) for f in dt.fields]
        if not any(wrappers):
            return lambda v: None if v is None else tuple.__new__(cls, v.values())
        return lambda v: None if v is None else tuple.__new__(
            cls, [x if w is None or x is None else w(x) for w, x in zip(wrappers, v.values())])
    if isinstance(dt, ArrayType):
        element = _python_wrapper(dt.elementType)
        if element is None:
            return None
        return lambda v: None if v is None else [None if x is None else element(x) for x in v]
    if isinstance(dt, MapType):
        key, value = _python_wrapper(dt.keyType), _python_wrapper(dt.valueType)
        return lambda v: None if v is None else {
            (k if key is None else key(k)): (x if value is None or x is None else value(x)) for k, x in v}
    return None


def arrow_to_rows(table: pa.Table, schema: StructType) -> list[Row]:
    """Rows of ``table`` with the Python values PySpark's ``collect()`` gives: timestamps
    as naive datetimes in UTC (the session time zone), dates, Decimals, lists, dicts for
    maps and Rows for structs. Whole columns are converted at once; all Rows share one
    field-name list (pickling stores it once per batch)."""
    with _gc_paused():
        return _rows(table, schema)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small objects that hold no
    cycles: its generational passes otherwise take most of a large collect's time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _rows(table: pa.Table, schema: StructType) -> list[Row]:
    columns = []
    for column, field in zip(table.columns, schema.fields):
        naive = _naive(column.type)
        values = (column.cast(naive) if naive != column.type else column).to_pylist()
        wrap = _python_wrapper(field.dataType)
        if wrap is not None:
            values = [None if v is None else wrap(v) for v in values]
        columns.append(values)
    cls = _row_class(schema.names)
    if not columns:
        return [tuple.__new__(cls, ()) for _ in range(table.num_rows)]
    new = tuple.__new__
    return [new(cls, values) for values in zip(*columns)]
