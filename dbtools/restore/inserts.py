"""Writing a batch of prepared rows: by COPY (PostgreSQL), one prepared INSERT
through executemany, or Django's insert compiler for values it must compile;
and, when a batch fails, finding the row that made it fail."""

from __future__ import annotations

import datetime
import types
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DatabaseError, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.base.operations import BaseDatabaseOperations

from .._compat import insert_raw
from ..archive.codec import AnyField, JSONText
from ..backends import backend_for, pg_loads
from ..backends.base import values_insert_sql
from ..exceptions import RestoreError
from ..graph import Table
from .failures import (
    collation_twin,
    keys_one_by_collation,
    repeats_primary_key,
    row_error,
    row_pk,
    unique_holder,
)
from .text_reads import own_field, reads_as_utc

# What a batch that cannot be written raises: the batch is then written row by
# row to name the row. ValidationError: a value Django's field will not save
# (a decimal NaN, which PostgreSQL's numeric holds).
BATCH_ERRORS = (DatabaseError, ValueError, TypeError, OverflowError, ValidationError)


def insert_batch(
    table: Table,
    fields: list[AnyField],
    batch: list[dict[str, Any]],
    connection: BaseDatabaseWrapper,
    made_here: list[str],
) -> None:
    """The rows of `batch` into `table`, in a savepoint, by the fastest path that
    stores what Django's insert compiler would."""
    using = connection.alias
    try:
        with transaction.atomic(using=using):
            if backend_for(connection).can_copy(fields) and not holds_expression(batch, made_here):
                pg_loads.copy_rows(table.db_table, fields, batch, connection)
            elif plain_insert_fits(fields, batch, connection, made_here):
                plain_insert(table.db_table, fields, batch, connection)
            else:
                # batch_limit() sized the batch for every field, so it fits one INSERT.
                insert_raw(
                    table.model, using, [types.SimpleNamespace(**row) for row in batch], fields
                )
    except BATCH_ERRORS as exc:

        def insert_one(row: dict[str, Any]) -> None:
            insert_raw(table.model, using, [types.SimpleNamespace(**row)], fields)

        raise diagnose(table, batch, exc, using, insert_one) from exc


def diagnose(
    table: Table,
    batch: list[dict[str, Any]],
    batch_error: Exception,
    using: str,
    write: Callable[[dict[str, Any]], None],
) -> RestoreError:
    """Write the failed batch row by row with `write` (each in a savepoint) to
    name the row that fails."""
    pk_names = [f.attname for f in table.pk_fields]
    for row in batch:
        try:
            with transaction.atomic(using=using):
                write(row)
        except BATCH_ERRORS as exc:
            key = row_pk(row, pk_names)
            if (
                repeats_primary_key(table, str(exc).lower())
                and (twin := collation_twin(table, row, using)) is not None
            ):
                return keys_one_by_collation(table, key, twin)
            holder = unique_holder(table, row, using) if clashes(table, exc) else None
            return row_error(table, key, exc, row, holder)
    return row_error(table, None, batch_error)


def clashes(table: Table, exc: Exception) -> bool:
    """Whether a row's error is a unique value (not its primary key) another row holds."""
    lowered = str(exc).lower()
    return (
        isinstance(exc, DatabaseError)
        and ("duplicate" in lowered or "unique" in lowered)
        and not repeats_primary_key(table, lowered)
    )


def holds_expression(batch: list[dict[str, Any]], attnames: list[str]) -> bool:
    """Does a row hold, in one of these columns, an expression for the insert
    compiler to compile (a JSONText aside, which COPY and a plain INSERT take
    as its text)?"""
    return any(
        type(value := row[attname]) is not JSONText and hasattr(value, "resolve_expression")
        for row in batch
        for attname in attnames
    )


def plain_insert_fits(
    fields: list[AnyField],
    batch: list[dict[str, Any]],
    connection: BaseDatabaseWrapper,
    made_here: list[str],
) -> bool:
    """True where one INSERT with a plain placeholder per column stores what
    Django's insert compiler would: no field makes its own placeholder (as
    binary and geometry fields do), and no value is an expression to compile
    other than a JSONText, which outside PostgreSQL compiles to its text.

    Only the columns in `made_here` (see RowPipeline.made_here) can hold one: the
    decoder makes no expression but JSONText, and looking at every value of
    every batch was 3% of a SQLite restore."""
    if backend_for(connection).casts_json_text:
        return False
    if any(getattr(f, "get_placeholder_sql", None) is not None for f in fields):
        return False
    return not holds_expression(batch, made_here)


def plain_insert(
    db_table: str,
    fields: list[AnyField],
    batch: list[dict[str, Any]],
    connection: BaseDatabaseWrapper,
) -> None:
    """The rows through one prepared INSERT and the driver's executemany, each
    value prepared by field.get_db_prep_save() as the insert compiler does
    with raw=True (a JSONText as its text, as it compiles): the same values
    stored, without the compiler building an SQL statement with a
    placeholder per value, per batch, that the backend then parses again."""
    sql = values_insert_sql(connection.ops.quote_name, db_table, [str(f.column) for f in fields])
    with connection.cursor() as cursor:
        cursor.executemany(sql, prepared_values(fields, batch, connection))


def prepared_values(
    fields: list[AnyField], batch: list[dict[str, Any]], connection: BaseDatabaseWrapper
) -> list[tuple[Any, ...]]:
    """Each row's values in the order of `fields`, for one statement with a
    plain placeholder per column (see plain_insert). Built a column at a
    time, the values a preparer passes on as they are kept inline: a call
    per value was a tenth of a SQLite restore."""
    columns = []
    for field in fields:
        prepare = value_preparer(field, connection)
        values = [row[field.attname] for row in batch]
        kept = KEPT_AS_THEY_ARE.get(prepare.__name__)
        if kept is None:
            columns.append([v.text if type(v) is JSONText else prepare(v) for v in values])
        else:
            columns.append(
                [
                    v if type(v) is kept else v.text if type(v) is JSONText else prepare(v)
                    for v in values
                ]
            )
    return list(zip(*columns, strict=True))


# value_preparer's functions that give a value of these types back as it is.
KEPT_AS_THEY_ARE: dict[str, type] = {"text": str, "integer": int, "boolean": bool}


def value_preparer(field: AnyField, connection: BaseDatabaseWrapper) -> Callable[[Any], Any]:
    """`field.get_db_prep_save(value, connection)`, with its result written
    out directly for the values where Django's own steps are known to end
    there: text for an exact CharField, TextField, EmailField, SlugField or
    URLField is sent as it is, and an IPv4 address's text for a
    GenericIPAddressField where the backend keeps the base class's
    adapt_ipaddressfield_value (not PostgreSQL's inet); a UTC
    datetime for an exact DateTimeField, where Django makes it naive in the
    connection's time zone (UTC) and sends str() of it, becomes that str();
    a uuid.UUID for an exact UUIDField without a native column type becomes
    its hex. Those steps (to_python, time zone checks, the backend's
    adapter) were a sixth of a MariaDB restore's time. An int for an exact
    integer field, a finite Decimal for a DecimalField and a bool for a
    BooleanField are sent as they are, where the backend keeps the base
    class's adapt_* hook (see INTEGER_FIELDS). Any other value, or any other
    field class, goes through get_db_prep_save()."""
    prepare = field.get_db_prep_save
    target = own_field(field)
    kind = type(target)

    def django(value: Any) -> Any:
        return prepare(value, connection=connection)

    if kind in TEXT_FIELDS:

        def text(value: Any) -> Any:
            return value if type(value) is str else prepare(value, connection=connection)

        return text
    if (
        kind is models.GenericIPAddressField
        and type(connection.ops).adapt_ipaddressfield_value
        is BaseDatabaseOperations.adapt_ipaddressfield_value
    ):

        def ip_text(value: Any) -> Any:
            # Only an IPv6 address (a colon) is rewritten; empty text is NULL.
            if type(value) is str and value and ":" not in value:
                return value
            return prepare(value, connection=connection)

        return ip_text
    if kind is models.DateTimeField and reads_as_utc(connection):

        def utc_datetime(value: Any) -> Any:
            if type(value) is datetime.datetime and value.tzinfo is datetime.UTC:
                return str(value.replace(tzinfo=None))
            return prepare(value, connection=connection)

        return utc_datetime
    if kind is models.UUIDField and not connection.features.has_native_uuid_field:

        def uuid_hex(value: Any) -> Any:
            return value.hex if type(value) is uuid.UUID else prepare(value, connection=connection)

        return uuid_hex
    return number_preparer(kind, connection, prepare) or django


def number_preparer(
    kind: type, connection: BaseDatabaseWrapper, prepare: Callable[..., Any]
) -> Callable[[Any], Any] | None:
    """value_preparer's shortcuts for an exact integer, decimal or boolean
    field class `kind`; None where there is none."""
    ops = type(connection.ops)
    if (
        kind in INTEGER_FIELDS
        and ops.adapt_integerfield_value is BaseDatabaseOperations.adapt_integerfield_value
    ) or (
        kind in AUTO_FIELDS
        and ops.validate_autopk_value is BaseDatabaseOperations.validate_autopk_value
    ):

        def integer(value: Any) -> Any:
            return value if type(value) is int else prepare(value, connection=connection)

        return integer
    if (
        kind is models.DecimalField
        and ops.adapt_decimalfield_value is BaseDatabaseOperations.adapt_decimalfield_value
    ):

        def finite_decimal(value: Any) -> Any:
            # to_python() copies a Decimal and refuses one that is not finite.
            if type(value) is Decimal and value.is_finite():
                return value
            return prepare(value, connection=connection)

        return finite_decimal
    if kind is models.BooleanField:

        def boolean(value: Any) -> Any:
            return value if type(value) is bool else prepare(value, connection=connection)

        return boolean
    return None


# Text fields whose preparation gives text back as it is (CharField.to_python).
TEXT_FIELDS = (
    models.CharField,
    models.TextField,
    models.EmailField,
    models.SlugField,
    models.URLField,
)
# int(value) is all Django does to an int for these, where the backend leaves
# adapt_integerfield_value (or, for an auto field, validate_autopk_value, which
# MySQL's refuses 0 with) as it is.
INTEGER_FIELDS = (
    models.IntegerField,
    models.BigIntegerField,
    models.SmallIntegerField,
    models.PositiveIntegerField,
    models.PositiveBigIntegerField,
    models.PositiveSmallIntegerField,
)
AUTO_FIELDS = (models.AutoField, models.BigAutoField, models.SmallAutoField)
