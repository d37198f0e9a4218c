"""``sparkctl.sql.types`` and ``Row`` against PySpark's own pure-Python modules.

``pyspark.sql.types`` needs no JVM for data types, ``Row``, schema inference and value
verification, so these tests call it directly as the reference: reprs, JSON, inferred
schemas (on generated rows), accepted and rejected values. Only PySpark's DDL parser
needs a JVM: the slow test compares ours with it.
"""
from __future__ import annotations

import datetime
import decimal
import pickle
from functools import reduce
from typing import Any

import pytest

pytest.importorskip("pyarrow")
PT = pytest.importorskip("pyspark.sql.types")

import pyarrow as pa  # noqa: E402
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from sparkctl.sql import types as T  # noqa: E402
from sparkctl.sql.arrow_types import from_arrow, schema_from_arrow, schema_to_arrow, to_arrow  # noqa: E402
from sparkctl.sql.inference import infer_schema  # noqa: E402
from sparkctl.sql.row_conversion import arrow_to_rows, verify_and_convert  # noqa: E402
from sparkctl.sql.row import Row  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def pair(build: Any) -> tuple[Any, Any]:
    """The same type built with sparkctl's module and with PySpark's."""
    return build(T), build(PT)


TYPES = [
    lambda m: m.NullType(), lambda m: m.StringType(), lambda m: m.BinaryType(), lambda m: m.BooleanType(),
    lambda m: m.DateType(), lambda m: m.TimestampType(), lambda m: m.TimestampNTZType(),
    lambda m: m.DecimalType(), lambda m: m.DecimalType(38, 18), lambda m: m.DoubleType(), lambda m: m.FloatType(),
    lambda m: m.ByteType(), lambda m: m.IntegerType(), lambda m: m.LongType(), lambda m: m.ShortType(),
    lambda m: m.DayTimeIntervalType(), lambda m: m.DayTimeIntervalType(1, 2),
    lambda m: m.ArrayType(m.StringType()), lambda m: m.ArrayType(m.LongType(), False),
    lambda m: m.MapType(m.StringType(), m.DoubleType()), lambda m: m.MapType(m.IntegerType(), m.DateType(), False),
    lambda m: m.StructType([m.StructField("a", m.LongType()), m.StructField("b c", m.StringType(), False)]),
    lambda m: m.StructType([m.StructField("s", m.StructType([m.StructField("x", m.ArrayType(
        m.MapType(m.StringType(), m.DecimalType(5, 2))))]))]),
    lambda m: m.StructType(),
    lambda m: m.StructField("f", m.BinaryType(), True, {"comment": "c"}),
]


@pytest.mark.parametrize("index", range(len(TYPES)))
def test_type_strings_as_pyspark(index: int) -> None:
    mine, theirs = pair(TYPES[index])
    assert repr(mine) == repr(theirs)
    assert mine.simpleString() == theirs.simpleString()
    assert mine.jsonValue() == theirs.jsonValue()
    assert mine.json() == theirs.json()
    if not isinstance(mine, T.StructField):
        assert mine.typeName() == theirs.typeName()
    again = T._parse_datatype_json_string(theirs.json()) if not isinstance(mine, T.StructField) \
        else T.StructField.fromJson(theirs.jsonValue())
    assert again == mine and hash(again) == hash(mine)


def test_equality_and_struct_api() -> None:
    assert T.LongType() == T.LongType() and T.LongType() is T.LongType()
    assert T.DecimalType(10, 2) == T.DecimalType(10, 2) != T.DecimalType(10, 3)
    assert T.ArrayType(T.LongType()) != T.ArrayType(T.LongType(), False)
    mine = T.StructType().add("a", T.LongType()).add(T.StructField("b", T.StringType())).add("c", "double", False)
    theirs = PT.StructType().add("a", PT.LongType()).add(PT.StructField("b", PT.StringType())) \
        .add("c", "double", False)
    assert mine.json() == theirs.json()
    assert mine.fieldNames() == theirs.fieldNames() == mine.names == ["a", "b", "c"]
    assert repr(mine["b"]) == repr(theirs["b"]) and repr(mine[2]) == repr(theirs[2])
    assert repr(mine[1:]) == repr(theirs[1:])
    assert len(mine) == 3 and [f.name for f in mine] == ["a", "b", "c"]
    with pytest.raises(KeyError):
        mine["zz"]
    with pytest.raises(IndexError):
        mine[7]


# ---------------------------------------------------------------------------- DDL
DDL = ["a INT, b STRING", "int", "array<string>", "struct<a:int>", "map<string,int>", "decimal(10,2)", "decimal",
       "a: int, b: string", "a INT NOT NULL, b DOUBLE COMMENT 'the b'", "bigint", "tinyint", "smallint", "BOOLEAN",
       "float", "double", "date", "timestamp", "timestamp_ntz", "binary",
       "array<struct<x:int,y:array<map<string,double>>>>", "`a b` BIGINT, `c``d` STRING",
       "struct<a: int, b string>", "map<int, array<bigint>>", "x DECIMAL(38, 18)", "byte", "short", "long",
       "integer", "real", "numeric(5,1)", "interval day to second", "void", "timestamp_ltz",
       "a array<int>, b map<string,struct<c:date>>", "struct<>"]


def test_ddl_known_types() -> None:
    P = T._parse_datatype_string
    assert P("a INT, b STRING") == T.StructType([T.StructField("a", T.IntegerType()),
                                                 T.StructField("b", T.StringType())])
    assert P("int") == T.IntegerType() and P("decimal(10,2)") == T.DecimalType(10, 2)
    assert P("array<string>") == T.ArrayType(T.StringType())
    assert P("struct<a:int>") == T.StructType([T.StructField("a", T.IntegerType())])
    assert P("map<string,int>") == T.MapType(T.StringType(), T.IntegerType())
    assert P("a BIGINT NOT NULL")[0].nullable is False
    assert P("a STRING COMMENT 'it\\'s'")[0].metadata == {"comment": "it's"}
    for bad in ["", "array<int", "map<int>", "a INT,", "foo"]:
        with pytest.raises(ValueError):
            P(bad)


@pytest.mark.slow
def test_ddl_as_pyspark() -> None:
    """PySpark parses DDL in the JVM: every string gives the same type there and here."""
    from tests.spark_reference import reference_pyspark
    with reference_pyspark("ddl-reference", master="local[1]"):
        for text in DDL:
            assert T._parse_datatype_string(text).json() == PT._parse_datatype_string(text).json(), text


# ---------------------------------------------------------------------------- Arrow
def test_arrow_mapping() -> None:
    expected = {T.ByteType(): pa.int8(), T.ShortType(): pa.int16(), T.IntegerType(): pa.int32(),
                T.LongType(): pa.int64(), T.FloatType(): pa.float32(), T.DoubleType(): pa.float64(),
                T.BooleanType(): pa.bool_(), T.StringType(): pa.string(), T.BinaryType(): pa.binary(),
                T.DateType(): pa.date32(), T.TimestampType(): pa.timestamp("us", tz="UTC"),
                T.TimestampNTZType(): pa.timestamp("us"), T.DecimalType(12, 3): pa.decimal128(12, 3),
                T.NullType(): pa.null(), T.ArrayType(T.LongType()): pa.list_(pa.int64()),
                T.MapType(T.StringType(), T.LongType()): pa.map_(pa.string(), pa.int64()),
                T.StructType([T.StructField("a", T.DateType())]): pa.struct([("a", pa.date32())])}
    for spark_type, arrow_type in expected.items():
        assert to_arrow(spark_type) == arrow_type
        assert from_arrow(arrow_type) == spark_type
    assert from_arrow(pa.large_string()) == T.StringType()
    assert from_arrow(pa.timestamp("ms", tz="Europe/Paris")) == T.TimestampType()
    assert from_arrow(pa.timestamp("ns")) == T.TimestampNTZType()
    schema = T._parse_datatype_string("a INT NOT NULL, b ARRAY<STRING>")
    arrow = schema_to_arrow(schema)
    assert arrow.field("a").nullable is False and arrow.field("b").type == pa.list_(pa.string())
    assert schema_from_arrow(arrow) == schema


# ---------------------------------------------------------------------------- inference
def pyspark_infer(rows: list, names: list[str] | None) -> Any:
    """PySpark's createDataFrame inference, from its pure-Python functions."""
    schema = reduce(PT._merge_type, (PT._infer_schema(r, list(names) if names else None) for r in rows))
    if PT._has_nulltype(schema):
        raise ValueError("CANNOT_DETERMINE_TYPE")
    for i, name in enumerate(names or []):
        schema.fields[i].name = name
        schema.names[i] = name
    return schema


scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 63, 2 ** 63 - 1), st.floats(allow_nan=False),
                    st.text(max_size=5), st.binary(max_size=3), st.dates(),
                    st.datetimes(), st.decimals(allow_nan=False, allow_infinity=False, places=3))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=2), inner, max_size=3)), max_leaves=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.tuples(values, values), st.lists(values, min_size=2, max_size=2),
                          st.fixed_dictionaries({"k": values, "a": values})), min_size=1, max_size=4),
       st.sampled_from([None, ["x"], ["x", "y"]]))
def test_inference_as_pyspark(rows: list, names: list[str] | None) -> None:
    try:
        expected = pyspark_infer(rows, names)
    except (TypeError, ValueError) as e:
        with pytest.raises(type(e) if isinstance(e, ValueError) else TypeError):
            infer_schema(rows, names)
        return
    assert infer_schema(rows, names).json() == expected.json()


def test_inference_rows_objects_and_errors() -> None:
    rows = [Row(a=1, b=None), Row(a=None, b=[1.5])]
    theirs = [PT.Row(a=1, b=None), PT.Row(a=None, b=[1.5])]
    assert infer_schema(rows).json() == pyspark_infer(theirs, None).json()
    nested = [(Row(p=1, q="s"), {"k": datetime.datetime(2020, 1, 1)}, decimal.Decimal("1.5"), bytearray(b"x"))]
    nested_theirs = [(PT.Row(p=1, q="s"), {"k": datetime.datetime(2020, 1, 1)}, decimal.Decimal("1.5"),
                      bytearray(b"x"))]
    assert infer_schema(nested).json() == pyspark_infer(nested_theirs, None).json()
    with pytest.raises(ValueError, match="CANNOT_DETERMINE_TYPE"):
        infer_schema([(1, None), (2, None)])
    with pytest.raises(TypeError, match="CANNOT_MERGE_TYPE"):
        infer_schema([(1,), ("x", )][::-1] + [([1],)])
    with pytest.raises(ValueError, match="CANNOT_INFER_EMPTY_SCHEMA"):
        infer_schema([])


# ---------------------------------------------------------------------------- verification and conversion
SCHEMA_DDL = ("b TINYINT, s SMALLINT, i INT, l BIGINT, f FLOAT, d DOUBLE, flag BOOLEAN, str STRING, "
              "dec DECIMAL(6,2), day DATE, ts TIMESTAMP, ntz TIMESTAMP_NTZ, bin BINARY, "
              "arr ARRAY<INT>, m MAP<STRING, DOUBLE>, st STRUCT<x: BIGINT, y: ARRAY<STRING>>")
CANDIDATES = [None, 0, 1, 200, -40000, 3_000_000_000, 1 << 70, 1.5, True, "s", b"b", bytearray(b"y"),
              decimal.Decimal("1.25"), datetime.date(2020, 1, 2), datetime.datetime(2020, 1, 2, 3, 4, 5, 6),
              [1, 2], [1, None], ["a"], {"k": 1.0}, {"k": 1}, (1, ["z"]), {"x": 2, "y": None}, (1, 2, 3)]


def _pyspark_accepts(dt: Any, value: Any) -> bool:
    try:
        PT._make_type_verifier(dt, True)(value)
        return True
    except (TypeError, ValueError):
        return False


@pytest.mark.parametrize("field_index", range(16))
def test_verification_accepts_and_rejects_as_pyspark(field_index: int) -> None:
    mine_schema = T._parse_datatype_string(SCHEMA_DDL)
    theirs_type = PT._parse_datatype_json_string(mine_schema.json())[field_index].dataType
    field = mine_schema[field_index]
    single = T.StructType([field])
    for value in CANDIDATES:
        if _pyspark_accepts(theirs_type, value):
            table = verify_and_convert([(value,)], single)
            assert table.num_rows == 1 and table.schema.field(0).type == to_arrow(field.dataType)
        else:
            with pytest.raises((TypeError, ValueError)) as info:
                verify_and_convert([(value,)], single)
            assert field.name in str(info.value) or "VALUE_OUT_OF_BOUNDS" in str(info.value) \
                or "LENGTH_MISMATCH" in str(info.value)


def test_type_error_names_the_field_and_value() -> None:
    schema = T._parse_datatype_string("name STRING, age INT")
    with pytest.raises(TypeError, match=r"age.*'x'"):
        verify_and_convert([("a", 1), ("b", "x")], schema)
    with pytest.raises(ValueError, match="not nullable"):
        verify_and_convert([(None,)], T._parse_datatype_string("a INT NOT NULL"))


def test_round_trip_as_collect_gives() -> None:
    """Rows in, the same Python values out, as PySpark's collect gives them (UTC)."""
    schema = T._parse_datatype_string(SCHEMA_DDL)
    ts = datetime.datetime(2020, 1, 2, 3, 4, 5, 6)
    row = (1, 2, 3, 4, 1.5, 2.5, True, "s", decimal.Decimal("1.25"), datetime.date(2020, 1, 2), ts, ts, b"xy",
           [1, None], {"k": 1.0, "z": None}, Row(x=7, y=["a", None]))
    as_dict = dict(zip(schema.names, row))
    table = verify_and_convert([row, as_dict, (None,) * 16, PT.Row(*row)], schema)
    out = arrow_to_rows(table, schema)
    assert [tuple(r) for r in out[:2]] == [row, row]
    assert out[0].st == Row(x=7, y=["a", None]) and out[0].st.asDict() == {"x": 7, "y": ["a", None]}
    assert out[0].ts.tzinfo is None and out[0].ts == ts
    assert all(v is None for v in out[2])
    assert repr(out[0]) == repr(PT.Row(**dict(zip(schema.names, row))))
    aware = datetime.datetime(2020, 1, 2, 5, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    ts_schema = T._parse_datatype_string("t TIMESTAMP")
    assert arrow_to_rows(verify_and_convert([(aware,)], ts_schema), ts_schema)[0].t == \
        datetime.datetime(2020, 1, 2, 3, 4, 5)
    rounded = T._parse_datatype_string("d DECIMAL(5,1)")
    assert arrow_to_rows(verify_and_convert([(decimal.Decimal("1.25"),)], rounded), rounded)[0].d == \
        decimal.Decimal("1.3")
    strings = T._parse_datatype_string("s STRING")
    assert [r.s for r in arrow_to_rows(verify_and_convert([(True,), (1,)], strings), strings)] == ["true", "1"]


# ---------------------------------------------------------------------------- Row
def test_row_as_pyspark() -> None:
    mine, theirs = Row(name="Alice", age=11, tags=["x"]), PT.Row(name="Alice", age=11, tags=["x"])
    assert repr(mine) == repr(theirs) and mine == theirs
    assert hash(Row(a=1, b="x")) == hash(PT.Row(a=1, b="x")) == hash((1, "x"))
    assert mine.name == "Alice" and mine["age"] == 11 and mine[0] == "Alice" and mine[1:] == theirs[1:]
    assert ("name" in mine) == ("name" in theirs) and ("x" in mine) == ("x" in theirs)
    assert mine.asDict() == theirs.asDict()
    nested, nested_theirs = Row(k=1, v=Row(a=[Row(b=2)])), PT.Row(k=1, v=PT.Row(a=[PT.Row(b=2)]))
    assert nested.asDict(True) == nested_theirs.asDict(True)
    Person, PPerson = Row("name", "age"), PT.Row("name", "age")
    assert repr(Person) == repr(PPerson) and repr(Person("Bob", 3)) == repr(PPerson("Bob", 3))
    assert Row("Alice", 11) == Row(name="Alice", age=11)
    with pytest.raises(AttributeError):
        mine.missing
    with pytest.raises(ValueError):
        mine["missing"]
    with pytest.raises(RuntimeError):
        mine.name = "x"


def test_row_pickles_small() -> None:
    mine = Row(name="Alice", age=11)
    back = pickle.loads(pickle.dumps(mine))
    assert back == mine and back.__fields__ == ["name", "age"] and repr(back) == repr(mine)
    # rows of one collect share their field list: a batch stores the names once
    schema = T._parse_datatype_string("a_long_field_name BIGINT, another_long_field_name STRING")
    rows = arrow_to_rows(pa.table({"a_long_field_name": list(range(1000)),
                                     "another_long_field_name": ["v"] * 1000}), schema)
    data = pickle.dumps(rows)
    assert data.count(b"a_long_field_name") == 1
    theirs = [PT.Row(a_long_field_name=i, another_long_field_name="v") for i in range(1000)]
    assert len(data) < len(pickle.dumps(theirs))
    assert pickle.loads(pickle.dumps(rows)) == rows
