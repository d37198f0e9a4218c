"""The schema PySpark's ``createDataFrame`` infers from Python data: each value's type,
rows' fields by name or position, and the types of many rows merged into one."""
from __future__ import annotations

import datetime
import decimal
from array import array as _pyarray
from typing import Any, Callable

from sparkctl.sql.row import Row
from sparkctl.sql.types import (DataType, NullType, AtomicType, StringType, BinaryType, BooleanType,
    DateType, TimestampType, TimestampNTZType, DecimalType, DoubleType, FloatType, ByteType, IntegerType,
    LongType, ShortType, DayTimeIntervalType, ArrayType, MapType, StructField, StructType)

_PY_TYPES: dict[type, Callable[[], DataType]] = {
    type(None): NullType, bool: BooleanType, int: LongType, float: DoubleType, str: StringType,
    bytearray: BinaryType, bytes: BinaryType, decimal.Decimal: lambda: DecimalType(38, 18),
    datetime.date: DateType, datetime.datetime: TimestampType, datetime.timedelta: DayTimeIntervalType,
}

_ARRAY_TYPECODES: dict[str, Callable[[], DataType]] = {
    "b": ByteType, "h": ShortType, "i": IntegerType, "l": LongType, "q": LongType,
    "B": ShortType, "H": IntegerType, "I": LongType, "f": FloatType, "d": DoubleType, "u": StringType,
}


def _infer_type(obj: Any) -> DataType:
    """The Spark type of one Python value, as PySpark's createDataFrame infers it."""
    make = _PY_TYPES.get(type(obj))
    if make is not None:
        return make()
    if isinstance(obj, dict):
        key_type: DataType = NullType()
        value_type: DataType = NullType()
        for k, v in obj.items():
            if k is not None:
                key_type = _merge_type(key_type, _infer_type(k))
            if v is not None:
                value_type = _merge_type(value_type, _infer_type(v))
        return MapType(key_type, value_type, True)
    if isinstance(obj, list):
        element: DataType = NullType()
        for i, v in enumerate(obj):
            element = _infer_type(v) if i == 0 else _merge_type(element, _infer_type(v))
        return ArrayType(element, True)
    if isinstance(obj, _pyarray):
        if obj.typecode not in _ARRAY_TYPECODES:
            raise TypeError(f"[UNSUPPORTED_DATA_TYPE] Unsupported DataType `array({obj.typecode})`.")
        return ArrayType(_ARRAY_TYPECODES[obj.typecode](), False)
    try:
        return _infer_row_schema(obj)
    except TypeError:
        raise TypeError(f"[UNSUPPORTED_DATA_TYPE] Unsupported DataType `{type(obj).__name__}`.") from None


def _row_items(row: Any, names: list[str] | None) -> list[tuple[str, Any]]:
    """(name, value) pairs of one row: dicts sorted by key, Rows and namedtuples by their
    fields, other tuples by ``names`` then ``_n``, other objects by their sorted __dict__."""
    if isinstance(row, dict):
        return sorted(row.items())
    if isinstance(row, (tuple, list)):
        fields = getattr(row, "__fields__", None) if isinstance(row, Row) else None
        if fields is None and isinstance(row, tuple) and hasattr(row, "_fields"):
            fields = row._fields
        if fields is not None:
            return list(zip(fields, tuple(row)))
        given = list(names or [])
        given += ["_%d" % i for i in range(len(given) + 1, len(row) + 1)]
        return list(zip(given, row))
    if hasattr(row, "__dict__"):
        return sorted(row.__dict__.items())
    raise TypeError(f"[CANNOT_INFER_SCHEMA_FOR_TYPE] Can not infer schema for type: `{type(row).__name__}`.")


def _infer_row_schema(row: Any, names: list[str] | None = None) -> StructType:
    fields = []
    for name, value in _row_items(row, names):
        try:
            fields.append(StructField(name, _infer_type(value), True))
        except TypeError:
            raise TypeError(f"[CANNOT_INFER_TYPE_FOR_FIELD] Unable to infer the type of the field `{name}`.") \
                from None
    return StructType(fields)


def _merge_type(a: DataType, b: DataType, name: str | None = None) -> DataType:
    """The type of a column holding values of types ``a`` and ``b`` (None's type gives way;
    string absorbs other atomic types; structs merge field by field)."""
    if isinstance(a, NullType):
        return b
    if isinstance(b, NullType):
        return a
    if isinstance(a, (TimestampType, TimestampNTZType)) and isinstance(b, (TimestampType, TimestampNTZType)):
        return a if isinstance(a, TimestampType) else b
    if isinstance(a, AtomicType) and isinstance(b, StringType):
        return b
    if isinstance(a, StringType) and isinstance(b, AtomicType):
        return a
    if type(a) is not type(b):
        where = "" if name is None else f" ({name})"
        raise TypeError(f"[CANNOT_MERGE_TYPE] Can not merge type `{type(a).__name__}` and "
                        f"`{type(b).__name__}`{where}.")
    if isinstance(a, StructType):
        assert isinstance(b, StructType)
        theirs = {f.name: f.dataType for f in b.fields}
        fields = [StructField(f.name, _merge_type(f.dataType, theirs.get(f.name, NullType()), f"field {f.name}"))
                  for f in a.fields]
        mine = {f.name for f in fields}
        fields += [StructField(n, t) for n, t in theirs.items() if n not in mine]
        return StructType(fields)
    if isinstance(a, ArrayType):
        assert isinstance(b, ArrayType)
        return ArrayType(_merge_type(a.elementType, b.elementType, f"element in array {name}"), True)
    if isinstance(a, MapType):
        assert isinstance(b, MapType)
        return MapType(_merge_type(a.keyType, b.keyType, f"key of map {name}"),
                       _merge_type(a.valueType, b.valueType, f"value of map {name}"), True)
    return a


def _has_nulltype(dt: DataType) -> bool:
    if isinstance(dt, StructType):
        return any(_has_nulltype(f.dataType) for f in dt.fields)
    if isinstance(dt, ArrayType):
        return _has_nulltype(dt.elementType)
    if isinstance(dt, MapType):
        return _has_nulltype(dt.keyType) or _has_nulltype(dt.valueType)
    return isinstance(dt, NullType)


def _scalar_row_key(row: Any) -> tuple | None:
    """The value types (and field names) of a row of scalars only, or None for other rows:
    rows with equal keys infer equal schemas."""
    if isinstance(row, dict):
        names: tuple | None = tuple(row)
        kinds = tuple(map(type, row.values()))
    elif type(row) in (tuple, list) or isinstance(row, Row):
        fields = getattr(row, "__fields__", None)
        names = None if fields is None else tuple(fields)
        kinds = tuple(map(type, row))
    else:
        return None
    if not all(t in _PY_TYPES for t in kinds):
        return None
    return (type(row), names, kinds)


def infer_schema(rows: list, names: list[str] | None = None) -> StructType:
    """The schema PySpark's ``createDataFrame(rows, names)`` infers: each row's types merged
    across rows; ``names`` then rename the columns in order. A column whose type stays
    unknown (all None, empty lists/dicts) is an error, as in PySpark."""
    if not rows:
        raise ValueError("[CANNOT_INFER_EMPTY_SCHEMA] Can not infer schema from an empty dataset.")
    names = list(names) if names is not None else None
    schema: DataType = NullType()
    merged: set[tuple] = set()
    for i, row in enumerate(rows):
        key = _scalar_row_key(row)
        if key is not None:
            if key in merged:
                continue  # a row of the same scalar types adds nothing to the merged schema
            merged.add(key)
        row_schema = _infer_row_schema(row, names)
        schema = row_schema if i == 0 else _merge_type(schema, row_schema)
    assert isinstance(schema, StructType)
    if _has_nulltype(schema):
        raise ValueError("[CANNOT_DETERMINE_TYPE] Some of types cannot be determined after inferring.")
    for i, name in enumerate(names or []):
        if i < len(schema.fields):
            schema.fields[i].name = name
            schema.names[i] = name
    return schema
