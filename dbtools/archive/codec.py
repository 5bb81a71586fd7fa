"""One field's value to JSON and back, without losing anything.

`values_list()` gives the same Python types on every backend; each field is
given a *kind* that says how those values are written. orjson writes str,
int, bool, None, UUID and datetime/date/time (with microseconds) exactly
itself; the other kinds need help, because orjson would write NaN as null,
cannot write Decimal, timedelta or bytes, and reads integers beyond 64 bits
back as floats:

    decimal   "12.3400"                 str() keeps every digit and the scale
    float     1.5 or "NaN"/"Infinity"/"-Infinity"
    duration  93784000005               whole microseconds; as a string of digits
                                        beyond 64 bits ("86399999999999999999")
    binary    "3q2+7w=="                base64
    json      the value itself, as the database's own JSON text (exact numbers,
              big integers and key order kept); a restore writes that text back
              as it is, never through a float
    array:K   a list of K values; range:K  {"lower", "upper", "bounds"} or {"empty": true}

SQL NULL is null for every kind. A JSONField can also hold JSON null, a value
(NOT NULL allows it); Django reads both as None. Such a column is written
null too, and the row names it under JSON_NULL_KEY: {"data":null,"$json_null":["data"]}.
A bare null (every file written before the key existed) stays SQL NULL.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from django.db.models import Expression, Field, TextField

if TYPE_CHECKING:
    AnyField = Field[Any, Any]
else:
    AnyField = Field
Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]

# Not "time": orjson 3.13 writes time(0, 19, 32, 16179) as "00:19:32.16179",
# a different time (found by the property tests); times go through isoformat().
NATIVE_KINDS = {"int", "str", "bool", "uuid", "datetime", "date", "raw"}

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


INT64 = 2**63


def encode_duration(value: datetime.timedelta) -> int | str:
    micro = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    # orjson writes no integer beyond 64 bits (timedelta.max is about 2**66 µs)
    return micro if abs(micro) < INT64 else str(micro)


def encode_time(value: datetime.time) -> str:
    return value.isoformat()


def encode_binary(value: bytes | memoryview) -> str:
    return base64.b64encode(value).decode("ascii")


def encode_json(value: Any) -> orjson.Fragment:
    """A JSON value, embedded in the row as JSON (not as a string of JSON).

    The backup reads JSONField columns as the database's JSON text and keeps
    it as it is. Line breaks in it (hand-written JSON) would break one row per
    line; valid JSON can hold them only as white space between tokens, so
    they become spaces, which changes no value.
    """
    if isinstance(value, str):
        if "\n" in value or "\r" in value:
            json.loads(value)  # only valid JSON may be changed this way
            value = value.replace("\r", " ").replace("\n", " ")
        return orjson.Fragment(value)
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
        "time": encode_time,
    }
    return encoders[kind]


# Not a field name: those are Python identifiers.
JSON_NULL_KEY = "$json_null"


def is_json_null(text: Any) -> bool:
    """Whether a JSON column's text, as the database gives it, is JSON null."""
    return type(text) is str and len(text) < 32 and text.strip(" \t\n\r") == "null"


def json_field_names(columns: list[dict[str, Any]]) -> frozenset[str]:
    """The columns of a table (as the backup describes them) that can hold JSON null."""
    return frozenset(
        c["name"] for c in columns if c.get("kind") == "json" and c.get("type") == "JSONField"
    )


def take_json_nulls(row: dict[str, Any], names: frozenset[str], as_text: bool) -> None:
    """Put JSON null back into the columns the row names under JSON_NULL_KEY:
    as JSONText("null") when JSON values are kept as text, else as None (what
    Django reads). Raises ValueError if the key names anything but JSONField
    columns whose value is null."""
    listed = row.pop(JSON_NULL_KEY)
    if (
        type(listed) is not list
        or not listed
        or len(set(listed)) != len(listed)
        or any(type(n) is not str or n not in names or row.get(n, 0) is not None for n in listed)
    ):
        raise ValueError(f"{JSON_NULL_KEY} must list JSONField columns whose value is null")
    if as_text:
        for name in listed:
            row[name] = JSONText("null")


# Decoding -----------------------------------------------------------------


def _expect(kind: type, what: str) -> Decoder:
    """A check that a JSON value has the type a column's kind writes (exactly:
    True is no integer here), so a damaged file fails instead of being
    coerced by a lenient database (SQLite stores anything; PostgreSQL reads
    1 as true)."""

    def check(value: Any) -> Any:
        if type(value) is not kind:
            raise TypeError(f"not {what}")
        return value

    return check


def _from_text(parse: Callable[[str], Any], what: str) -> Decoder:
    def decode(value: Any) -> Any:
        if type(value) is not str:
            raise TypeError(f"not {what} written as text")
        return parse(value)

    return decode


def parse_decimal(value: str) -> decimal.Decimal:
    try:
        return decimal.Decimal(value)
    except decimal.InvalidOperation:
        raise ValueError("not a decimal number") from None


FLOAT_WORDS = {"NaN", "Infinity", "-Infinity"}


def decode_float(value: float | int | str) -> float:
    if type(value) in (float, int) or (type(value) is str and value in FLOAT_WORDS):
        return float(value)  # float("NaN"), float("-Infinity") work as written
    raise TypeError("not a number")


def decode_duration(value: int | str) -> datetime.timedelta:
    if isinstance(value, str):
        if not value.lstrip("-").isdigit():
            raise ValueError(f"{value!r} is not a whole number of microseconds")
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{value!r} is not a whole number of microseconds")
    return datetime.timedelta(microseconds=value)


def decode_binary(value: str) -> bytes:
    if type(value) is not str:
        raise TypeError("not base64 text")
    return base64.b64decode(value, validate=True)


def decode_range(bound_decoder: Decoder | None) -> Decoder:
    from django.db.backends.postgresql.psycopg_any import Range

    def decode(value: dict[str, Any]) -> Any:
        if type(value) is not dict:
            raise TypeError("not a range object")
        if value.get("empty"):
            return Range(empty=True)
        lower, upper = value["lower"], value["upper"]
        if bound_decoder is not None:
            lower = None if lower is None else bound_decoder(lower)
            upper = None if upper is None else bound_decoder(upper)
        return Range(lower, upper, value["bounds"])

    return decode


DECODERS: dict[str, Decoder | None] = {
    "int": _expect(int, "a whole number"),
    "str": _expect(str, "text"),
    "bool": _expect(bool, "true or false"),
    "raw": None,
    "json": None,
    "uuid": _from_text(uuid.UUID, "a UUID"),
    "datetime": _from_text(datetime.datetime.fromisoformat, "a date and time"),
    "date": _from_text(datetime.date.fromisoformat, "a date"),
    "time": _from_text(datetime.time.fromisoformat, "a time"),
    "decimal": _from_text(parse_decimal, "a decimal"),
    "float": decode_float,
    "duration": decode_duration,
    "binary": decode_binary,
}


def decoder_for(kind: str) -> Decoder | None:
    """How a JSON value of this kind becomes the Python value, checked; None
    means any parsed value is the value. KeyError for a kind no dbtools writes."""
    if kind.startswith("array:"):
        convert_items = each_item(decoder_for(kind.removeprefix("array:")))

        def decode_array(value: Any) -> list[Any]:
            if type(value) is not list:
                raise TypeError("not a list")
            return convert_items(value)

        return decode_array
    if kind.startswith("range:"):
        return decode_range(decoder_for(kind.removeprefix("range:")))
    return DECODERS[kind]


def known_kind(kind: str) -> bool:
    try:
        decoder_for(kind)
    except KeyError:
        return False
    return True


class BadValue(ValueError):
    """A value in a backup that is not of its column's kind."""

    def __init__(self, column: str, value: Any, cause: BaseException) -> None:
        self.column, self.value = column, value
        self.cause = str(cause) or type(cause).__name__
        super().__init__(f"column {column}: {self.cause}")


class JSONText(Expression):
    """A JSON value to store as exactly this text: the database parses it, so
    no number goes through a Python float on the way (3.14159265358979323846,
    1e-400 and 1e400 stay as they are)."""

    output_field = TextField()  # one for all: made per value, it was a third of the parse time

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def __repr__(self) -> str:
        return f"JSONText({self.text!r})"

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[str]]:
        return "%s", (self.text,)

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, tuple[str]]:
        return "%s::jsonb", (self.text,)

    def parsed(self) -> Any:
        return json.loads(self.text)


# The backup's own spellings of some values, which a bulk load may send as
# they are, or barely rewritten, instead of decoding them (each backend's
# kept_as_text says where that holds):
# - a decimal: digits, an optional sign and point, no leading zero;
# - a UTC timestamp: the ISO form backups write in UTC, months 01-12, days
#   01-31 (the day is not checked against its month here), hours 00-23, no
#   or six fractional digits;
# - a UUID: the canonical lower-case spelling.
PLAIN_DECIMAL = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?", re.ASCII)
UTC_TIMESTAMP = re.compile(
    r"(?!0000)\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
    r"T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{6})?\+00:00",
    re.ASCII,
)
CANONICAL_UUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII
)


NATIVE_TYPES = {"int": int, "str": str, "bool": bool}


def _text_or_decoded(plain: Callable[[str], object], decode: Decoder) -> Decoder:
    def convert(value: Any) -> Any:
        return value if type(value) is str and plain(value) else decode(value)

    return convert


def row_decoder(
    columns: list[dict[str, Any]], kept_as_text: Mapping[str, Callable[[str], object]] = {}
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Turn a parsed row (as written by the backup) back into Python values, in place.

    Integers, text and booleans are only checked, and inline: a call per
    value was the larger part of decoding. `kept_as_text` maps a column's
    name to a test of its text: text that passes stays text, for a load
    that takes it as it is (the backends' load_kept_as_text); the rest is
    decoded."""
    checks = [
        (c["name"], NATIVE_TYPES[c["kind"]], DECODERS[c["kind"]])
        for c in columns
        if c["kind"] in NATIVE_TYPES
    ]
    converters = [
        (
            c["name"],
            _text_or_decoded(kept_as_text[c["name"]], dec) if c["name"] in kept_as_text else dec,
        )
        for c in columns
        if c["kind"] not in NATIVE_TYPES and (dec := decoder_for(c["kind"])) is not None
    ]

    def decode(row: dict[str, Any]) -> dict[str, Any]:
        for name, expected, check in checks:
            value = row.get(name)
            if value is not None and type(value) is not expected:
                try:
                    check(value)  # type: ignore[misc]  # raises, with the kind's own words
                except TypeError as exc:
                    raise BadValue(name, value, exc) from exc
        for name, convert in converters:
            value = row.get(name)
            if value is not None:
                try:
                    row[name] = convert(value)
                except (ValueError, TypeError, ArithmeticError, AttributeError, KeyError) as exc:
                    raise BadValue(name, value, exc) from exc
        return row

    return decode
