"""``sparkctl.sql.types``: PySpark's data types, with the same names, reprs, JSON and DDL
strings as ``pyspark.sql.types``.

What the engine does with them lives beside: ``arrow_types`` maps them to Arrow types one to
one, ``inference`` infers a schema from Python data as PySpark's ``createDataFrame`` does,
``row_conversion`` turns Python rows into a verified Arrow table and back into the values
PySpark's ``collect()`` gives, and ``type_ddl`` parses Spark's type DDL.
"""
from __future__ import annotations

import json as _json
from typing import Any, Iterator

from sparkctl.sql.row import Row

__all__ = ["DataType", "NullType", "AtomicType", "NumericType", "IntegralType", "FractionalType", "StringType",
           "BinaryType", "BooleanType", "DateType", "TimestampType", "TimestampNTZType", "DecimalType",
           "DoubleType", "FloatType", "ByteType", "IntegerType", "LongType", "ShortType", "DayTimeIntervalType",
           "ArrayType", "MapType", "StructField", "StructType", "Row"]


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
    from sparkctl.sql.type_ddl import DDLParser  # it builds the types above

    parser = DDLParser(s)
    for attempt in (parser.schema, parser.data_type):
        parser.pos = 0
        try:
            result = attempt()
            if parser.pos == len(parser.tokens):
                return result
        except ValueError:
            pass
    raise ValueError(f"[PARSE_SYNTAX_ERROR] Syntax error: could not parse the data type {s!r}.")
