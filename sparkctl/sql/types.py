"""``sparkctl.sql.types``: PySpark's data types (same names, reprs, JSON and DDL strings),
and the bridge between them and what the engine runs on: Arrow types and tables.

Besides ``pyspark.sql.types``' public API this module holds what ``createDataFrame`` and
``collect`` need: the schema inference PySpark does from Python data (``infer_schema``),
the verified conversion of Python rows to an Arrow table (``verify_and_convert``), and the
conversion back to the Python values PySpark's ``collect()`` gives (``arrow_to_rows``).
Spark types map to Arrow types one to one (``to_arrow``/``from_arrow``).
"""
from __future__ import annotations

import contextlib
import datetime
import decimal
import gc
import json as _json
import re
from array import array as _pyarray
from typing import Any, Callable, Iterator

import pyarrow as pa

from sparkctl.sql.row import Row, _row_class

__all__ = ["DataType", "NullType", "AtomicType", "NumericType", "IntegralType", "FractionalType", "StringType",
           "BinaryType", "BooleanType", "DateType", "TimestampType", "TimestampNTZType", "DecimalType",
           "DoubleType", "FloatType", "ByteType", "IntegerType", "LongType", "ShortType", "DayTimeIntervalType",
           "ArrayType", "MapType", "StructField", "StructType", "Row",
           "to_arrow", "from_arrow", "schema_to_arrow", "schema_from_arrow", "infer_schema",
           "verify_and_convert", "arrow_to_rows"]


# ---------------------------------------------------------------------------- types
class DataType:
    """Base class for data types; equal when of the same class with the same parameters."""

    def __repr__(self) -> str:
        return self.__class__.__name__ + "()"

    def __hash__(self) -> int:
        return hash(str(self))

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, self.__class__) and self.__dict__ == other.__dict__

    def __ne__(self, other: Any) -> bool:
        return not self.__eq__(other)

    @classmethod
    def typeName(cls) -> str:
        return cls.__name__[:-4].lower()

    def simpleString(self) -> str:
        return self.typeName()

    def jsonValue(self) -> Any:
        return self.typeName()

    def json(self) -> str:
        return _json.dumps(self.jsonValue(), separators=(",", ":"), sort_keys=True)

    def needConversion(self) -> bool:
        return False

    @classmethod
    def fromDDL(cls, ddl: str) -> "DataType":
        return _parse_datatype_string(ddl)


class _Singleton(type):
    """Parameterless types have one instance each, as in PySpark."""

    _instances: dict = {}

    def __call__(cls):  # type: ignore[override]
        if cls not in cls._instances:
            cls._instances[cls] = super().__call__()
        return cls._instances[cls]


class NullType(DataType, metaclass=_Singleton):
    """The type of None; Spark calls it void."""

    @classmethod
    def typeName(cls) -> str:
        return "void"


class AtomicType(DataType):
    """Types that are not arrays, maps or structs."""


class NumericType(AtomicType):
    """Numbers."""


class IntegralType(NumericType, metaclass=_Singleton):
    """Whole numbers."""


class FractionalType(NumericType):
    """Floating point and decimal numbers."""


class StringType(AtomicType, metaclass=_Singleton):
    """UTF-8 strings (the default UTF8_BINARY collation only)."""


class BinaryType(AtomicType, metaclass=_Singleton):
    """Byte strings."""


class BooleanType(AtomicType, metaclass=_Singleton):
    """true/false."""


class DateType(AtomicType, metaclass=_Singleton):
    """Calendar dates (days since the epoch)."""


class TimestampType(AtomicType, metaclass=_Singleton):
    """Instants in microseconds, shown in the session time zone."""


class TimestampNTZType(AtomicType, metaclass=_Singleton):
    """Local date-times without a time zone."""

    @classmethod
    def typeName(cls) -> str:
        return "timestamp_ntz"


class DecimalType(FractionalType):
    """Fixed-point decimals of ``precision`` digits, ``scale`` of them after the point."""

    def __init__(self, precision: int = 10, scale: int = 0) -> None:
        self.precision = precision
        self.scale = scale
        self.hasPrecisionInfo = True

    def simpleString(self) -> str:
        return "decimal(%d,%d)" % (self.precision, self.scale)

    def jsonValue(self) -> str:
        return self.simpleString()

    def __repr__(self) -> str:
        return "DecimalType(%d,%d)" % (self.precision, self.scale)


class DoubleType(FractionalType, metaclass=_Singleton):
    """64-bit floats."""


class FloatType(FractionalType, metaclass=_Singleton):
    """32-bit floats."""


class ByteType(IntegralType):
    """8-bit integers."""

    def simpleString(self) -> str:
        return "tinyint"


class IntegerType(IntegralType):
    """32-bit integers."""

    def simpleString(self) -> str:
        return "int"


class LongType(IntegralType):
    """64-bit integers."""

    def simpleString(self) -> str:
        return "bigint"


class ShortType(IntegralType):
    """16-bit integers."""

    def simpleString(self) -> str:
        return "smallint"


class DayTimeIntervalType(AtomicType):
    """Day-time intervals (microseconds), between ``startField`` and ``endField``."""

    DAY, HOUR, MINUTE, SECOND = 0, 1, 2, 3
    _fields = {DAY: "day", HOUR: "hour", MINUTE: "minute", SECOND: "second"}

    def __init__(self, startField: int | None = None, endField: int | None = None) -> None:
        if startField is None and endField is None:
            startField, endField = self.DAY, self.SECOND
        elif endField is None:
            endField = startField
        if startField not in self._fields or endField not in self._fields:
            raise ValueError(f"interval {startField} to {endField} is invalid")
        self.startField = startField
        self.endField = endField

    def _str_repr(self) -> str:
        start, end = self._fields[self.startField], self._fields[self.endField]
        return f"interval {start}" if start == end else f"interval {start} to {end}"

    simpleString = _str_repr
    jsonValue = _str_repr

    def __repr__(self) -> str:
        return "%s(%d, %d)" % (type(self).__name__, self.startField, self.endField)


class ArrayType(DataType):
    """Arrays of ``elementType``; ``containsNull`` says whether elements may be null."""

    def __init__(self, elementType: DataType, containsNull: bool = True) -> None:
        assert isinstance(elementType, DataType), f"elementType {elementType} should be a DataType"
        self.elementType = elementType
        self.containsNull = containsNull

    def simpleString(self) -> str:
        return "array<%s>" % self.elementType.simpleString()

    def __repr__(self) -> str:
        return "ArrayType(%s, %s)" % (self.elementType, self.containsNull)

    def jsonValue(self) -> dict:
        return {"type": self.typeName(), "elementType": self.elementType.jsonValue(),
                "containsNull": self.containsNull}

    @classmethod
    def fromJson(cls, json: dict) -> "ArrayType":
        return ArrayType(_from_json_value(json["elementType"]), json["containsNull"])


class MapType(DataType):
    """Maps from ``keyType`` (never null) to ``valueType``."""

    def __init__(self, keyType: DataType, valueType: DataType, valueContainsNull: bool = True) -> None:
        assert isinstance(keyType, DataType) and isinstance(valueType, DataType)
        self.keyType = keyType
        self.valueType = valueType
        self.valueContainsNull = valueContainsNull

    def simpleString(self) -> str:
        return "map<%s,%s>" % (self.keyType.simpleString(), self.valueType.simpleString())

    def __repr__(self) -> str:
        return "MapType(%s, %s, %s)" % (self.keyType, self.valueType, self.valueContainsNull)

    def jsonValue(self) -> dict:
        return {"type": self.typeName(), "keyType": self.keyType.jsonValue(),
                "valueType": self.valueType.jsonValue(), "valueContainsNull": self.valueContainsNull}

    @classmethod
    def fromJson(cls, json: dict) -> "MapType":
        return MapType(_from_json_value(json["keyType"]), _from_json_value(json["valueType"]),
                       json["valueContainsNull"])


class StructField(DataType):
    """A named, possibly nullable field of a :class:`StructType`."""

    def __init__(self, name: str, dataType: DataType, nullable: bool = True,
                 metadata: dict | None = None) -> None:
        assert isinstance(dataType, DataType), f"dataType {dataType} should be an instance of {DataType}"
        assert isinstance(name, str), f"field name {name} should be a string"
        self.name = name
        self.dataType = dataType
        self.nullable = nullable
        self.metadata = metadata or {}

    def simpleString(self) -> str:
        return "%s:%s" % (self.name, self.dataType.simpleString())

    def __repr__(self) -> str:
        return "StructField('%s', %s, %s)" % (self.name, self.dataType, str(self.nullable))

    def jsonValue(self) -> dict:
        return {"name": self.name, "type": self.dataType.jsonValue(), "nullable": self.nullable,
                "metadata": self.metadata}

    @classmethod
    def fromJson(cls, json: dict) -> "StructField":
        return StructField(json["name"], _from_json_value(json["type"]), json.get("nullable", True),
                           json.get("metadata"))

    def typeName(self) -> str:  # type: ignore[override]
        raise TypeError("StructField does not have typeName. Use typeName on its type explicitly instead.")


class StructType(DataType):
    """A row's type: an ordered list of :class:`StructField`."""

    def __init__(self, fields: list[StructField] | None = None) -> None:
        self.fields: list[StructField] = list(fields) if fields else []
        self.names: list[str] = [f.name for f in self.fields]
        assert all(isinstance(f, StructField) for f in self.fields), "fields should be a list of StructField"

    def add(self, field: str | StructField, data_type: str | DataType | None = None, nullable: bool = True,
            metadata: dict | None = None) -> "StructType":
        """Append a field (a StructField, or name and type); returns self, for chaining."""
        if not isinstance(field, StructField):
            if data_type is None:
                raise ValueError("[ARGUMENT_REQUIRED] Argument `data_type` is required when passing name "
                                 "of struct_field to create.")
            if isinstance(data_type, str):
                data_type = _from_json_value(data_type)
            field = StructField(field, data_type, nullable, metadata)
        self.fields.append(field)
        self.names.append(field.name)
        return self

    def __iter__(self) -> Iterator[StructField]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __getitem__(self, key: str | int | slice) -> Any:
        if isinstance(key, str):
            for f in self.fields:
                if f.name == key:
                    return f
            raise KeyError(f"[KEY_NOT_EXISTS] Key `{key}` is not exists.")
        if isinstance(key, int):
            try:
                return self.fields[key]
            except IndexError:
                raise IndexError(f"[INDEX_OUT_OF_RANGE] StructType index out of range, got '{key}'.") from None
        if isinstance(key, slice):
            return StructType(self.fields[key])
        raise TypeError(f"[NOT_EXPECTED_TYPE] Argument `key` should be int, slice or str, "
                        f"got {type(key).__name__}.")

    def simpleString(self) -> str:
        return "struct<%s>" % ",".join(f.simpleString() for f in self.fields)

    def __repr__(self) -> str:
        return "StructType([%s])" % ", ".join(str(f) for f in self.fields)

    def jsonValue(self) -> dict:
        return {"type": self.typeName(), "fields": [f.jsonValue() for f in self.fields]}

    @classmethod
    def fromJson(cls, json: dict) -> "StructType":
        return StructType([StructField.fromJson(f) for f in json["fields"]])

    def fieldNames(self) -> list[str]:
        return list(self.names)

    def treeString(self, maxDepth: int | None = None) -> str:
        from sparkctl.sql.show import tree_string
        return tree_string(self)


_ATOMIC_BY_JSON = {t().jsonValue(): t for t in (NullType, StringType, BinaryType, BooleanType, DateType,
                                                 TimestampType, TimestampNTZType, DoubleType, FloatType,
                                                 ByteType, IntegerType, LongType, ShortType)}


def _from_json_value(value: Any) -> DataType:
    """A DataType from its ``jsonValue()`` form."""
    if isinstance(value, dict):
        kinds = {"array": ArrayType, "map": MapType, "struct": StructType}
        if value.get("type") not in kinds:
            raise ValueError(f"Could not parse datatype: {value}")
        return kinds[value["type"]].fromJson(value)  # type: ignore[attr-defined]
    if value in _ATOMIC_BY_JSON:
        return _ATOMIC_BY_JSON[value]()
    if value == "decimal":
        return DecimalType()
    if isinstance(value, str) and value.startswith("decimal("):
        p, s = value[len("decimal("):-1].split(",")
        return DecimalType(int(p), int(s))
    if isinstance(value, str) and value.startswith("interval "):
        return _parse_datatype_string(value)
    raise ValueError(f"Could not parse datatype: {value}")


def _parse_datatype_json_string(json_string: str) -> DataType:
    return _from_json_value(_json.loads(json_string))


def _parse_datatype_json_value(json_value: Any) -> DataType:
    return _from_json_value(json_value)


def _parse_datatype_string(s: str) -> DataType:
    """A DataType from Spark's DDL: a schema ("a INT, b STRING") or one type ("array<int>")."""
    parser = _DDLParser(s)
    for attempt in (parser.schema, parser.data_type):
        parser.pos = 0
        try:
            result = attempt()
            if parser.pos == len(parser.tokens):
                return result
        except ValueError:
            pass
    raise ValueError(f"[PARSE_SYNTAX_ERROR] Syntax error: could not parse the data type {s!r}.")


_SIMPLE_DDL_TYPES: dict[str, Callable[[], DataType]] = {
    "boolean": BooleanType, "tinyint": ByteType, "byte": ByteType, "smallint": ShortType, "short": ShortType,
    "int": IntegerType, "integer": IntegerType, "bigint": LongType, "long": LongType, "float": FloatType,
    "real": FloatType, "double": DoubleType, "string": StringType, "binary": BinaryType, "date": DateType,
    "timestamp": TimestampType, "timestamp_ltz": TimestampType, "timestamp_ntz": TimestampNTZType,
    "void": NullType,
}
_DDL_TOKEN = re.compile(r"\s*(?:(`(?:[^`]|``)*`)|('(?:[^'\\]|\\.)*')|(\w+)|(\S))")


class _DDLParser:
    """A recursive-descent parser of Spark's type DDL (types, and field lists of a schema)."""

    def __init__(self, text: str) -> None:
        self.tokens: list[str] = [m.group(1) or m.group(2) or m.group(3) or m.group(4)
                                  for m in _DDL_TOKEN.finditer(text) if m.group(0).strip()]
        self.pos = 0

    def peek(self) -> str:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ""

    def next(self) -> str:
        token = self.peek()
        if not token:
            raise ValueError("unexpected end of the type string")
        self.pos += 1
        return token

    def expect(self, token: str) -> None:
        if self.next().lower() != token:
            raise ValueError(f"expected {token}")

    def accept(self, token: str) -> bool:
        if self.peek().lower() == token:
            self.pos += 1
            return True
        return False

    def name(self) -> str:
        token = self.next()
        if token.startswith("`"):
            return token[1:-1].replace("``", "`")
        if not re.fullmatch(r"\w+", token):
            raise ValueError(f"expected a name, got {token}")
        return token

    def schema(self) -> StructType:
        """``name [:] type [NOT NULL] [COMMENT '...'], ...``"""
        fields = [self.field()]
        while self.accept(","):
            fields.append(self.field())
        return StructType(fields)

    def field(self) -> StructField:
        name = self.name()
        self.accept(":")
        data_type = self.data_type()
        nullable, metadata = True, {}
        while True:
            if self.accept("not"):
                self.expect("null")
                nullable = False
            elif self.accept("comment"):
                text = self.next()
                if not text.startswith("'"):
                    raise ValueError("expected a comment string")
                metadata["comment"] = re.sub(r"\\(.)", r"\1", text[1:-1])
            else:
                return StructField(name, data_type, nullable, metadata)

    def data_type(self) -> DataType:
        word = self.next().lower()
        if word in _SIMPLE_DDL_TYPES:
            return _SIMPLE_DDL_TYPES[word]()
        if word in ("char", "varchar", "character"):
            self.expect("(")
            self.next()
            self.expect(")")
            return StringType()
        if word in ("decimal", "dec", "numeric"):
            return self.decimal()
        if word == "array":
            self.expect("<")
            element = self.data_type()
            self.expect(">")
            return ArrayType(element, True)
        if word == "map":
            self.expect("<")
            key = self.data_type()
            self.expect(",")
            value = self.data_type()
            self.expect(">")
            return MapType(key, value, True)
        if word == "struct":
            self.expect("<")
            fields: list[StructField] = []
            if not self.accept(">"):
                fields.append(self.field())
                while self.accept(","):
                    fields.append(self.field())
                self.expect(">")
            return StructType(fields)
        if word == "interval":
            return self.interval()
        raise ValueError(f"unknown type {word}")

    def decimal(self) -> DecimalType:
        if not self.accept("("):
            return DecimalType(10, 0)
        precision, scale = int(self.next()), 0
        if self.accept(","):
            scale = int(self.next())
        self.expect(")")
        return DecimalType(precision, scale)

    def interval(self) -> DataType:
        units = {v: k for k, v in DayTimeIntervalType._fields.items()}
        start = self.next().lower()
        if start not in units:
            raise ValueError(f"unsupported interval {start}")
        end = start
        if self.accept("to"):
            end = self.next().lower()
            if end not in units:
                raise ValueError(f"unsupported interval {end}")
        return DayTimeIntervalType(units[start], units[end])


# ---------------------------------------------------------------------------- Arrow
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


# ---------------------------------------------------------------------------- inference
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
