"""Spark types and Arrow types, one to one: the Arrow type a column of each Spark type is
held in, and back."""
from __future__ import annotations

import pyarrow as pa

from sparkctl.sql.types import (DataType, NullType, StringType, BinaryType, BooleanType, DateType,
    TimestampType, TimestampNTZType, DecimalType, DoubleType, FloatType, ByteType, IntegerType, LongType,
    ShortType, DayTimeIntervalType, ArrayType, MapType, StructField, StructType)

_TO_ARROW: dict[type, pa.DataType] = {
    NullType: pa.null(), StringType: pa.string(), BinaryType: pa.binary(), BooleanType: pa.bool_(),
    DateType: pa.date32(), TimestampType: pa.timestamp("us", tz="UTC"), TimestampNTZType: pa.timestamp("us"),
    DoubleType: pa.float64(), FloatType: pa.float32(), ByteType: pa.int8(), ShortType: pa.int16(),
    IntegerType: pa.int32(), LongType: pa.int64(), DayTimeIntervalType: pa.duration("us"),
}


def to_arrow(dt: DataType) -> pa.DataType:
    """The Arrow type a column of ``dt`` is held in.

    Arrow list and map children are left nullable whatever ``containsNull`` says, so arrays
    built by different operators always have equal Arrow types."""
    if type(dt) in _TO_ARROW:
        return _TO_ARROW[type(dt)]
    if isinstance(dt, DecimalType):
        return pa.decimal128(dt.precision, dt.scale)
    if isinstance(dt, ArrayType):
        return pa.list_(to_arrow(dt.elementType))
    if isinstance(dt, MapType):
        return pa.map_(to_arrow(dt.keyType), to_arrow(dt.valueType))
    if isinstance(dt, StructType):
        return pa.struct([pa.field(f.name, to_arrow(f.dataType), True) for f in dt.fields])
    raise TypeError(f"[UNSUPPORTED_DATA_TYPE] Unsupported DataType `{dt!r}`.")


def from_arrow(t: pa.DataType) -> DataType:
    """The Spark type of an Arrow type (large and dictionary-encoded variants included)."""
    if pa.types.is_dictionary(t):
        return from_arrow(t.value_type)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", bool)(t):
        return StringType()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return BinaryType()
    if pa.types.is_timestamp(t):
        return TimestampType() if t.tz is not None else TimestampNTZType()
    if pa.types.is_date(t):
        return DateType()
    if pa.types.is_decimal(t):
        return DecimalType(t.precision, t.scale)
    if pa.types.is_duration(t):
        return DayTimeIntervalType()
    if pa.types.is_map(t):
        return MapType(from_arrow(t.key_type), from_arrow(t.item_type), t.item_field.nullable)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return ArrayType(from_arrow(t.value_type), t.value_field.nullable)
    if pa.types.is_struct(t):
        return StructType([StructField(f.name, from_arrow(f.type), f.nullable) for f in t])
    for spark_type, arrow_type in _TO_ARROW.items():
        if t == arrow_type:
            return spark_type()
    unsigned = {pa.uint8(): ShortType, pa.uint16(): IntegerType, pa.uint32(): LongType}
    if t in unsigned:
        return unsigned[t]()
    if t == pa.float16():
        return FloatType()
    raise TypeError(f"[UNSUPPORTED_DATA_TYPE_FOR_ARROW_CONVERSION] {t} is not supported in conversion to Arrow.")


def schema_to_arrow(schema: StructType) -> pa.Schema:
    """An Arrow schema with one field per StructField (nullability kept at the top level)."""
    return pa.schema([pa.field(f.name, to_arrow(f.dataType), f.nullable) for f in schema.fields])


def schema_from_arrow(schema: pa.Schema) -> StructType:
    return StructType([StructField(f.name, from_arrow(f.type), f.nullable) for f in schema])
