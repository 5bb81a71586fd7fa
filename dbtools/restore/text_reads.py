"""SQLite and MariaDB/MySQL: values written from what the database hands over,
without a Python object per value where the result is known.

On the portable backup path Django turns each stored timestamp and UUID
into a Python object (the driver parses the text, Django's converter makes
it aware or a uuid.UUID) and orjson turns it straight back into text: a
fifth of a MariaDB backup's time went into MySQLdb's datetime parser alone.

Such a column is selected as text instead (CAST ... AS text/char) and the
text is rewritten into what orjson would have written for Django's value,
but only when it is in the one form Django itself stores (naive UTC
timestamps "YYYY-MM-DD HH:MM:SS[.ffffff]", UUIDs as 32 lowercase hex
digits or the dashed form of MariaDB's uuid type) and, for a timestamp,
is a real date and time. Any other text goes through exactly the driver's
and Django's conversions the column would have had, so a value written by
hand in some other form comes out as it always did.

Only for the exact field classes (a subclass may convert in its own way),
never for primary keys (keyset paging compares them as values), and for
timestamps only where Django reads them as UTC (USE_TZ and no TIME_ZONE
on the connection).

Decimals on SQLite are read as the driver's float or int, without Django's
converter, which builds a decimal.Context for every value (a seventh of a
SQLite backup's time). SQLite keeps a DecimalField as REAL, and Django
rounds the float's exact binary value to 15 significant digits, then
quantizes it to the field's decimal places. Where the float's shortest
repr has at most 15 significant digits, that rounding gives back exactly
the repr (a 15-digit decimal survives a trip through a double: DBL_DIG),
and where the repr has no more decimal places than the field, quantizing
only pads it with zeros; likewise an int of at most 15 digits. Everything
else (more digits, an exponent, text SQLite kept as it was written) goes
through Django's own converter, which is not the same on Django 5.2 and 6.1.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.expressions import Col

from ..backends import backend_for
from ..graph import Table

STORED_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{6})?", re.ASCII)
HEX_UUID = re.compile(r"[0-9a-f]{32}", re.ASCII)
DASHED_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)

Reader = Callable[[str], Any]
RawReader = Callable[[Any], str]  # the driver's value -> its JSON text


class UnreadableValue(ValueError):
    """A stored value that Django's own conversion refuses; the message says
    which column holds it and what it holds."""


def text_readers(table: Table, connection: BaseDatabaseWrapper) -> dict[int, Reader]:
    """Position in table.fields -> how that column's text becomes its JSON value."""
    if not backend_for(connection).reads_values_as_text:
        return {}
    pk_columns = {f.column for f in table.pk_fields}
    readers = {}
    for position, field in enumerate(table.fields):
        if field.column in pk_columns:
            continue
        target = own_field(field)
        if type(target) is models.DateTimeField and reads_as_utc(connection):
            readers[position] = timestamp_reader(connection)
        elif type(target) is models.UUIDField:
            readers[position] = uuid_reader(connection)
    return readers


def own_field(field: Any) -> Any:
    """The field whose conversions a column gets: a plain foreign key's target's."""
    if field.is_relation:
        if type(field) not in (models.ForeignKey, models.OneToOneField):
            return None
        return field.target_field
    return field


def reads_as_utc(connection: BaseDatabaseWrapper) -> bool:
    return bool(settings.USE_TZ) and connection.timezone_name == "UTC"


def timestamp_reader(connection: BaseDatabaseWrapper) -> Reader:
    exact = exact_timestamp(connection)
    fullmatch = STORED_TIMESTAMP.fullmatch
    fromisoformat = datetime.datetime.fromisoformat

    def read(text: str) -> Any:
        if fullmatch(text):
            try:
                fromisoformat(text)  # a real date and time, not just its shape
            except ValueError:
                return exact(text)
            fraction = text[19:]
            if fraction == ".000000":
                fraction = ""
            return f"{text[:10]}T{text[11:19]}{fraction}+00:00"
        return exact(text)

    return read


def exact_timestamp(connection: BaseDatabaseWrapper) -> Reader:
    """The driver's parser, then Django's converter, as the column would have had."""
    convert = connection.ops.convert_datetimefield_value  # type: ignore[attr-defined]
    parse = backend_for(connection).stored_datetime_parser()

    def read(text: str) -> Any:
        return convert(parse(text), None, connection)

    return read


def uuid_reader(connection: BaseDatabaseWrapper) -> Reader:
    convert = connection.ops.convert_uuidfield_value  # type: ignore[attr-defined]
    hex_match = HEX_UUID.fullmatch
    dashed_match = DASHED_UUID.fullmatch

    def read(text: str) -> Any:
        if hex_match(text):
            return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
        if dashed_match(text):
            return text
        return convert(text, None, connection)

    return read


def raw_readers(table: Table, connection: BaseDatabaseWrapper) -> dict[int, RawReader]:
    """Position in table.fields -> how the driver's own value (no Django
    converter: see Unconverted in backup.py) becomes its JSON value."""
    if not backend_for(connection).stores_decimals_inexactly:
        return {}
    pk_columns = {f.column for f in table.pk_fields}
    return {
        position: sqlite_decimal_reader(field, connection)
        for position, field in enumerate(table.fields)
        if field.column not in pk_columns
        and type(field) is models.DecimalField
        and isinstance(field.max_digits, int)
        # str() of a Decimal switches to an exponent below 1E-6; with at most
        # six places a quantized value never gets there.
        and isinstance(field.decimal_places, int)
        and 0 <= field.decimal_places <= 6
    }


def sqlite_decimal_reader(
    field: models.DecimalField[Any, Any], connection: BaseDatabaseWrapper
) -> RawReader:
    column = Col("", field)  # the converter reads only its output field
    convert = connection.ops.get_decimalfield_converter(column)  # type: ignore[attr-defined]
    places = field.decimal_places
    max_digits = field.max_digits
    zeros = "0" * places

    def exact(value: Any) -> str:
        try:
            return str(convert(value, column, connection))
        except (ArithmeticError, TypeError, ValueError) as exc:
            # Django 6.1 raises InvalidOperation for text, 5.2 TypeError.
            raise UnreadableValue(
                f"{field.name} holds {value!r:.60}, which is not a number its "
                f"DecimalField(max_digits={max_digits}, decimal_places={places}) can hold"
            ) from exc

    def fits(whole: str, fraction: str) -> bool:
        # quantize() refuses a result longer than max_digits; so does exact().
        return len((whole.lstrip("-") + fraction).lstrip("0") or "0") <= max_digits

    def read(value: Any) -> str:
        kind = type(value)
        if kind is int:
            whole = str(value)
            # Django 5.2 rounds an int to 15 digits as it does a float; 6.1 keeps
            # it whole. Up to 15 digits both give the int itself.
            if len(whole.lstrip("-")) <= 15 and fits(whole, zeros):
                return f"{whole}.{zeros}" if places else whole
        elif kind is float:
            whole, _, fraction = repr(value).partition(".")
            # No "." or a non-digit after it: inf, nan or an exponent.
            if (
                fraction.isdigit()
                and len(fraction) <= places
                and len((whole.lstrip("-") + fraction).lstrip("0")) <= 15
            ):
                fraction = fraction.ljust(places, "0")
                if fits(whole, fraction):
                    return f"{whole}.{fraction}"
        return exact(value)

    return read
