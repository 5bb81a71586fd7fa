"""One field's value to JSON and back, without losing anything.

`values_list()` gives the same Python types on every backend; each field is
given a *kind* that says how those values are written. orjson writes str,
int, bool, None, UUID and datetime/date/time (with microseconds) exactly
itself; the other kinds need help, because orjson would write NaN as null,
cannot write Decimal, timedelta or bytes, and reads integers beyond 64 bits
back as floats:

    decimal   "12.3400"                 str() keeps every digit and the scale
    float     1.5 or "NaN"/"Infinity"/"-Infinity"
    duration  93784000005               whole microseconds
    binary    "3q2+7w=="                base64
    json      the value itself, written by the standard library (big integers
              and key order kept) and read back by it
    array:K   a list of K values; range:K  {"lower", "upper", "bounds"} or {"empty": true}
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import math
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from django.db.models import Field

if TYPE_CHECKING:
    AnyField = Field[Any, Any]
else:
    AnyField = Field
Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]

NATIVE_KINDS = {"int", "str", "bool", "uuid", "datetime", "date", "time", "raw"}

INTERNAL_TYPE_KINDS = {
    "AutoField": "int",
    "BigAutoField": "int",
    "SmallAutoField": "int",
    "IntegerField": "int",
    "BigIntegerField": "int",
    "SmallIntegerField": "int",
    "PositiveIntegerField": "int",
    "PositiveBigIntegerField": "int",
    "PositiveSmallIntegerField": "int",
    "BooleanField": "bool",
    "NullBooleanField": "bool",
    "CharField": "str",
    "TextField": "str",
    "EmailField": "str",
    "SlugField": "str",
    "URLField": "str",
    "FileField": "str",
    "ImageField": "str",
    "FilePathField": "str",
    "GenericIPAddressField": "str",
    "IPAddressField": "str",
    "CICharField": "str",
    "CIEmailField": "str",
    "CITextField": "str",
    "UUIDField": "uuid",
    "DateTimeField": "datetime",
    "DateField": "date",
    "TimeField": "time",
    "DecimalField": "decimal",
    "FloatField": "float",
    "DurationField": "duration",
    "BinaryField": "binary",
    "JSONField": "json",
    "HStoreField": "json",
    "BigIntegerRangeField": "range:int",
    "IntegerRangeField": "range:int",
    "DecimalRangeField": "range:decimal",
    "DateTimeRangeField": "range:datetime",
    "DateRangeField": "range:date",
}


def value_field(field: AnyField) -> AnyField:
    """The field whose values a column holds: a foreign key holds its target's."""
    while field.is_relation and field.remote_field is not None:
        field = field.target_field  # type: ignore[attr-defined]
    return field


def kind_of(field: AnyField) -> str:
    field = value_field(field)
    internal_type = field.get_internal_type()
    if internal_type == "ArrayField":
        return "array:" + kind_of(field.base_field)  # type: ignore[attr-defined]
    return INTERNAL_TYPE_KINDS.get(internal_type, "raw")


# Encoding -----------------------------------------------------------------


def encode_float(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def encode_duration(value: datetime.timedelta) -> int:
    return (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds


def encode_binary(value: bytes | memoryview) -> str:
    return base64.b64encode(value).decode("ascii")


def encode_json(value: Any) -> orjson.Fragment:
    """A JSON value, embedded in the row as JSON (not as a string of JSON).

    The backup reads JSONField columns as the database's JSON text; that is
    used as it is unless it spans lines (hand-written JSON), which would
    break one row per line. allow_nan=False: NaN is not JSON.
    """
    if isinstance(value, str):
        if "\n" not in value and "\r" not in value:
            return orjson.Fragment(value)
        value = json.loads(value)
    return orjson.Fragment(json.dumps(value, ensure_ascii=False, allow_nan=False))


def encode_range(bound_encoder: Encoder | None) -> Encoder:
    def encode(value: Any) -> dict[str, Any]:
        if value.isempty:
            return {"empty": True}
        lower, upper = value.lower, value.upper
        if bound_encoder is not None:
            lower = None if lower is None else bound_encoder(lower)
            upper = None if upper is None else bound_encoder(upper)
        return {"lower": lower, "upper": upper, "bounds": value.bounds}

    return encode


def each_item(convert: Callable[[Any], Any] | None) -> Callable[[list[Any]], list[Any]]:
    """An array's conversion: its items', NULLs left alone (both directions)."""

    def convert_list(value: list[Any]) -> list[Any]:
        if convert is None:
            return value
        return [None if item is None else convert(item) for item in value]

    return convert_list


def encoder_for(kind: str) -> Encoder | None:
    """None means orjson writes the value exactly as it comes."""
    if kind in NATIVE_KINDS:
        return None
    if kind.startswith("array:"):
        inner = encoder_for(kind.removeprefix("array:"))
        return each_item(inner)
    if kind.startswith("range:"):
        return encode_range(encoder_for(kind.removeprefix("range:")))
    encoders: dict[str, Encoder] = {
        "decimal": str,
        "float": encode_float,
        "duration": encode_duration,
        "binary": encode_binary,
        "json": encode_json,
    }
    return encoders[kind]


# Decoding -----------------------------------------------------------------


def decode_float(value: float | int | str) -> float:
    return float(value)  # float("NaN"), float("-Infinity") work as written


def decode_duration(value: int) -> datetime.timedelta:
    return datetime.timedelta(microseconds=value)


def decode_binary(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def decode_range(bound_decoder: Decoder | None) -> Decoder:
    from django.db.backends.postgresql.psycopg_any import Range

    def decode(value: dict[str, Any]) -> Any:
        if value.get("empty"):
            return Range(empty=True)
        lower, upper = value["lower"], value["upper"]
        if bound_decoder is not None:
            lower = None if lower is None else bound_decoder(lower)
            upper = None if upper is None else bound_decoder(upper)
        return Range(lower, upper, value["bounds"])

    return decode


def decoder_for(kind: str) -> Decoder | None:
    """None means the parsed JSON value is already the Python value."""
    if kind.startswith("array:"):
        return each_item(decoder_for(kind.removeprefix("array:")))
    if kind.startswith("range:"):
        return decode_range(decoder_for(kind.removeprefix("range:")))
    decoders: dict[str, Decoder | None] = {
        "int": None,
        "str": None,
        "bool": None,
        "raw": None,
        "json": None,
        "uuid": uuid.UUID,
        "datetime": datetime.datetime.fromisoformat,
        "date": datetime.date.fromisoformat,
        "time": datetime.time.fromisoformat,
        "decimal": decimal.Decimal,
        "float": decode_float,
        "duration": decode_duration,
        "binary": decode_binary,
    }
    return decoders[kind]


def row_parser(kinds: list[str]) -> Callable[[bytes], dict[str, Any]]:
    """How to parse one row line: the standard library where JSON values may
    hold integers beyond 64 bits (orjson would make them floats), orjson elsewhere."""
    if any(kind == "json" for kind in kinds):
        return json.loads
    return orjson.loads


def row_decoder(columns: list[dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Turn a parsed row (as written by the backup) back into Python values, in place."""
    converters = [(c["name"], dec) for c in columns if (dec := decoder_for(c["kind"])) is not None]

    def decode(row: dict[str, Any]) -> dict[str, Any]:
        for name, convert in converters:
            value = row.get(name)
            if value is not None:
                row[name] = convert(value)
        return row

    return decode
