"""SQLite's bulk load into an empty table (used through backends.sqlite and the
restore's CopyStream): the rows through one prepared INSERT, a few thousand
at a time (executemany), as the batches' plain INSERT sends them, but without
a dict per row: each row's values are prepared by one expression compiled
for the table.

Each value is what the batches' plain INSERT sends (the same
get_db_prep_save() preparation, restore/inserts.value_preparer). Text the
backup holds for a timestamp, a decimal or a UUID is sent as the text that
preparation would have given, where a test proves it is (kept_as_text), and
is not decoded. An error (a duplicate key, a NOT NULL, a decimal SQLite
cannot hold exactly) fails the load; the restore rolls back its savepoint
and loads the table again in batches, whose diagnosis names the row.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
from collections.abc import Callable, Iterator
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from ..archive.codec import (
    CANONICAL_UUID,
    PLAIN_DECIMAL,
    UTC_TIMESTAMP,
    AnyField,
    JSONText,
    kind_of,
)
from .base import values_insert_sql

# Rows sent by one executemany(): memory stays flat, and each call is long
# enough that its own cost does not count.
STREAM_ROWS = 2_000
# SQLite keeps a decimal as a float: more significant digits than this are
# not kept exactly (restore/rows.py refuses them with the row's key).
SQLITE_DECIMAL_DIGITS = 15


def can_load(fields: list[AnyField]) -> bool:
    """Whether the plain INSERT takes these fields' values: a field that sends
    its value through a placeholder of its own is left to the insert compiler."""
    return all(getattr(f, "get_placeholder_sql", None) is None for f in fields)


def exact_decimal_text(text: str) -> bool:
    """Whether `text` is what the Decimal read from it is sent as (str(), the
    adapter Django registers) and has no more significant digits than SQLite
    keeps: plain digits, and not a value str() writes with an exponent
    (below 1E-6)."""
    if not PLAIN_DECIMAL.fullmatch(text) or "0.000000" in text[:9]:
        return False  # (and a few that str() writes plainly, which are decoded)
    if len(text) <= SQLITE_DECIMAL_DIGITS:  # it cannot hold more digits
        return True
    whole, _, fraction = text.lstrip("-").partition(".")
    # Within a float's range, as inexact() asks (a few within it are decoded).
    return len(whole) <= 307 and len((whole + fraction).strip("0")) <= SQLITE_DECIMAL_DIGITS


def sent_timestamp_text(text: str) -> bool:
    """Whether `text` is a backup's UTC timestamp whose naive str(), which
    Django sends, is the same text with a space for the T and no offset: a
    real date (SQLite would keep the 30th of February as it is) with no
    fraction or a fraction str() keeps (not .000000)."""
    if not UTC_TIMESTAMP.fullmatch(text) or text.endswith(".000000+00:00"):
        return False
    if text[8:10] <= "28":
        return True
    try:
        datetime.date.fromisoformat(text[:10])
    except ValueError:
        return False
    return True


def kept_as_text(
    fields: list[AnyField], connection: BaseDatabaseWrapper
) -> list[Callable[[str], object] | None]:
    """Per field, the test under which the backup's text is sent as it is or
    barely rewritten (row_preparer): where value_preparer takes the field's
    class for one of Django's own (KEPT_TEXT): a UUID's canonical spelling
    (its hex without the dashes, as UUIDField sends it where the column is
    text), a decimal's exact text, a UTC timestamp where the connection
    reads in UTC. A subclass's values are decoded, as its own preparation
    may expect."""
    from ..restore.inserts import value_preparer

    tests: list[Callable[[str], object] | None] = []
    for field in fields:
        kept = kept_text(field, value_preparer(field, connection).__name__)
        tests.append(kept[0] if kept else None)
    return tests


def kept_text(field: AnyField, name: str) -> tuple[Callable[[str], object], str] | None:
    """KEPT_TEXT's test and text for a field whose value_preparer is `name`.
    A decimal's text is kept only with no more places than its field: more
    would come back from SQLite rounded twice (inexact_at_places), so such a
    text is decoded and checked."""
    kept = KEPT_TEXT.get(name)
    if kept is None or name != "finite_decimal":
        return kept
    places = decimal_places(field)
    if places is None:
        return None
    test, sent = kept

    def within_places(text: str) -> object:
        return test(text) and len(text.partition(".")[2]) <= places

    return within_places, sent


def decimal_places(field: AnyField) -> int | None:
    """The places of a decimal field, or of the decimal key a foreign key holds."""
    target = getattr(field, "target_field", field) if field.is_relation else field
    places = getattr(target, "decimal_places", None)
    return places if isinstance(places, int) else None


# PostgreSQL's numeric and MariaDB's DECIMAL round a value to their places
# half away from zero.
EXACT = Context(prec=1_000, rounding=ROUND_HALF_UP)
# Django reads a float from SQLite rounded to 15 significant digits, then
# to the field's places (half to even).
READ_BACK = Context(prec=SQLITE_DECIMAL_DIGITS)


@functools.cache
def quantum(decimal_places: int) -> Decimal:
    return Decimal(1).scaleb(-decimal_places)


def at_places(value: Decimal, decimal_places: int) -> Decimal:
    """`value` to its field's decimal places, as PostgreSQL and MariaDB store
    it. Beyond a thousand digits (a hostile file) it is left as it is, which
    inexact() refuses."""
    try:
        return value.quantize(quantum(decimal_places), context=EXACT)
    except InvalidOperation:
        return value


def inexact_at_places(value: Decimal, decimal_places: int) -> str | None:
    """Why SQLite cannot keep `value`, a DecimalField's with `decimal_places`,
    as PostgreSQL and MariaDB keep it (None: it can). SQLite stores the float
    nearest the value sent, and Django rounds that float twice on reading it
    back: a float converted to a decimal (19.99 -> 19.98999…84) comes back
    as 19.99, but a tie at the places may come back rounded the other way."""
    if not value.is_finite():
        return None  # Django's DecimalField refuses it on every backend
    stored = at_places(value, decimal_places)
    if why := inexact(stored):
        return why
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -decimal_places:
        return None  # at most 15 digits, none past the places: read back as it is
    read_back = READ_BACK.create_decimal_from_float(float(value)).quantize(
        quantum(decimal_places), context=Context(prec=1_000)
    )
    if read_back != stored:
        return f"would read back as {read_back}, not {stored} as PostgreSQL and MariaDB store it"
    return None


def inexact_for(value: Decimal, field: AnyField) -> str | None:
    """Why SQLite cannot keep `value`, the value of the decimal `field` (or of
    a foreign key to one), as PostgreSQL and MariaDB would (None: it can)."""
    places = decimal_places(field)
    return inexact(value) if places is None else inexact_at_places(value, places)


def inexact(value: Decimal) -> str | None:
    """Why SQLite, which keeps a decimal as a float, cannot keep `value`
    exactly (None: it can). The digits are counted as they are: normalize()
    would first round them to the context's 28."""
    if not value.is_finite() or not value:
        return None
    if len("".join(map(str, value.as_tuple().digits)).strip("0")) > SQLITE_DECIMAL_DIGITS:
        return f"has more than {SQLITE_DECIMAL_DIGITS} significant digits"
    if not -307 <= value.adjusted() <= 307:
        return "is outside the range of a float (1E-307 to 1E+307)"
    return None


def checked_decimal(prepare: Callable[[Any], Any], field: AnyField) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if type(value) is Decimal and (why := inexact_for(value, field)):
            raise ValueError(f"{value} {why}, which SQLite cannot store exactly")
        return prepare(value)

    return check


# value_preparer's functions whose text kept_as_text keeps, with its test and
# the text sent for it.
KEPT_TEXT: dict[str, tuple[Callable[[str], object], str]] = {
    "utc_datetime": (sent_timestamp_text, "{v}[:10] + ' ' + {v}[11:-6]"),
    "uuid_hex": (CANONICAL_UUID.fullmatch, "{v}.replace('-', '')"),
    "finite_decimal": (exact_decimal_text, "{v}"),
}


def row_preparer(
    fields: list[AnyField], connection: BaseDatabaseWrapper, text_tested: bool = False
) -> Callable[..., tuple[Any, ...]]:
    """A function of a row's values (in the order of `fields`, one argument
    each) giving the parameters the plain INSERT sends for them (Django's
    get_db_prep_save() through restore/inserts.value_preparer, value for
    value), compiled into one expression for the table: the commonest
    values inline (an int, text, a bool as they are; a kept text as
    KEPT_TEXT writes it; a JSONText as its text), any other value through
    its column's preparer. A decimal with more significant digits than
    SQLite keeps raises ValueError. With `text_tested`, a text in a KEPT_TEXT
    column has passed its test already (BaseBackend.load_stream). The source
    holds only indexes, never a name."""
    from ..restore.inserts import KEPT_AS_THEY_ARE, value_preparer

    scope: dict[str, Any] = {"type": type, "str": str, "int": int, "bool": bool, "J": JSONText}
    parts = []
    for i, field in enumerate(fields):
        prepare = value_preparer(field, connection)
        name = prepare.__name__
        if kind_of(field) == "decimal":
            prepare = checked_decimal(prepare, field)
        scope[f"p{i}"] = prepare
        v = f"v{i}"
        otherwise = f"{v}.text if type({v}) is J else p{i}({v})"
        if name in KEPT_AS_THEY_ARE:
            kept_type = KEPT_AS_THEY_ARE[name].__name__  # str, int or bool, in scope
            parts.append(f"({v} if type({v}) is {kept_type} else {otherwise})")
        elif kept := kept_text(field, name):
            test, sent = kept
            scope[f"t{i}"] = test
            tested = "" if text_tested else f" and t{i}({v})"
            parts.append(f"({sent.format(v=v)} if type({v}) is str{tested} else {otherwise})")
        else:
            parts.append(f"({otherwise})")
    arguments = ", ".join(f"v{i}" for i in range(len(fields)))
    row: Callable[..., tuple[Any, ...]] = eval(
        f"lambda {arguments}: ({''.join(part + ', ' for part in parts)})", scope
    )
    return row


@contextlib.contextmanager
def load_stream(
    db_table: str, fields: list[AnyField], connection: BaseDatabaseWrapper, text_tested: bool
) -> Iterator[Callable[[list[object]], None]]:
    """Rows written into `db_table` as they come, by the function yielded (a
    row is its values, in the order of `fields`), STREAM_ROWS at a time."""
    prepared = row_preparer(fields, connection, text_tested)
    sql = values_insert_sql(connection.ops.quote_name, db_table, [str(f.column) for f in fields])
    waiting: list[tuple[Any, ...]] = []
    with connection.cursor() as cursor:

        def write(values: list[object]) -> None:
            waiting.append(prepared(*values))
            if len(waiting) >= STREAM_ROWS:
                cursor.executemany(sql, waiting)
                waiting.clear()

        yield write
        if waiting:
            cursor.executemany(sql, waiting)
