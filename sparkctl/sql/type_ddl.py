"""Spark's type DDL ("a INT, b ARRAY<STRING> NOT NULL", "map<string,int>"), parsed into
``sparkctl.sql.types`` (``types._parse_datatype_string`` is the entry point)."""
from __future__ import annotations

import re
from typing import Callable

from sparkctl.sql.types import (DataType, NullType, StringType, BinaryType, BooleanType, DateType,
    TimestampType, TimestampNTZType, DecimalType, DoubleType, FloatType, ByteType, IntegerType, LongType,
    ShortType, DayTimeIntervalType, ArrayType, MapType, StructField, StructType)

_SIMPLE_DDL_TYPES: dict[str, Callable[[], DataType]] = {
    "boolean": BooleanType, "tinyint": ByteType, "byte": ByteType, "smallint": ShortType, "short": ShortType,
    "int": IntegerType, "integer": IntegerType, "bigint": LongType, "long": LongType, "float": FloatType,
    "real": FloatType, "double": DoubleType, "string": StringType, "binary": BinaryType, "date": DateType,
    "timestamp": TimestampType, "timestamp_ltz": TimestampType, "timestamp_ntz": TimestampNTZType,
    "void": NullType,
}
_DDL_TOKEN = re.compile(r"\s*(?:(`(?:[^`]|``)*`)|('(?:[^'\\]|\\.)*')|(\w+)|(\S))")


class DDLParser:
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
