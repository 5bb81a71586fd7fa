"""PostgreSQL's fast restore paths (used through backends.postgresql and the restore):
COPY loads, merges through a staging table or the table's keys read once,
and statements run together under a lock timeout.
"""

from __future__ import annotations

import contextlib
import datetime
import re
import sys
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from ..archive.codec import AnyField, kind_of
from ..conf import get_settings
from ..graph import Table

# Kinds whose Python values psycopg writes into COPY exactly as Django's own
# get_db_prep_save() would have sent them, so the per-value Django call (the
# slowest part of an INSERT-based load) can be skipped.
COPY_KINDS = {
    "int",
    "bool",
    "str",
    "uuid",
    "date",
    "time",
    "datetime",
    "decimal",
    "float",
    "duration",
    "binary",
    "json",
}


# Text from the backup that goes into COPY as it is, for PostgreSQL to read,
# by kind: what each test passes both readers take to the same value, and
# the rest is decoded here as before. Decoding and dumping a timestamp, a
# decimal and a UUID again was a fifth of a restore's client CPU.
# - uuid: any text; PostgreSQL accepts a subset of uuid.UUID's spellings and
#   reads them to the same value.
# - datetime: the ISO form backups write, at most 6 fractional digits (Python
#   truncates a 7th, PostgreSQL rounds), hours 00-23 and seconds 00-59
#   (PostgreSQL takes 24:00:00 and leap seconds, Python refuses them).
# - decimal: digits with an optional sign and point.
# Text PostgreSQL refuses fails the COPY, and the table goes to the batch
# path, where Python decides and names the row.
PLAIN_TIMESTAMP = re.compile(
    r"(?!0000)\d{4}-\d\d-\d\dT(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?(?:[+-]\d\d:\d\d)?",
    re.ASCII,
)
PLAIN_DECIMAL = re.compile(r"-?\d+(?:\.\d+)?", re.ASCII)
PARSED_BY_COPY: dict[str, Callable[[str], object]] = {
    "uuid": lambda text: True,
    "datetime": PLAIN_TIMESTAMP.fullmatch,
    "decimal": PLAIN_DECIMAL.fullmatch,
}
# With USE_TZ the session's time zone is UTC (or DATABASES' TIME_ZONE), which is
# how COPY would read a date-time without offset; Django takes a naive datetime
# as TIME_ZONE time. Such text is decoded here, and made aware as Django does.
AWARE_TIMESTAMP = re.compile(PLAIN_TIMESTAMP.pattern.removesuffix("?"), re.ASCII)


def parsed_by_copy() -> dict[str, Callable[[str], object]]:
    """PARSED_BY_COPY for the project's settings now."""
    if not settings.USE_TZ:
        return PARSED_BY_COPY
    return {**PARSED_BY_COPY, "datetime": AWARE_TIMESTAMP.fullmatch}


def can_copy(fields: list[AnyField], connection: BaseDatabaseWrapper) -> bool:
    """Whether COPY takes these fields' values as they are (PostgreSQL connections only)."""
    return all(
        kind_of(f) in COPY_KINDS and (kind_of(f) != "json" or f.get_internal_type() == "JSONField")
        for f in fields
    )


def copy_rows(
    db_table: str,
    fields: list[AnyField],
    rows: list[dict[str, object]],
    connection: BaseDatabaseWrapper,
) -> None:
    """Load rows with COPY ... FROM STDIN: several times faster than INSERT."""
    attnames = [f.attname for f in fields]
    with copy_stream(db_table, fields, connection) as write:
        for row in rows:
            write([row[name] for name in attnames])


@contextlib.contextmanager
def copy_stream(
    db_table: str, fields: list[AnyField], connection: BaseDatabaseWrapper
) -> Iterator[Callable[[list[object]], None]]:
    """One COPY ... FROM STDIN that rows are written into as they come, by the
    function yielded (a row is its values, in the order of `fields`): psycopg
    sends each 32 KB as it fills, so the server stores rows while this process
    decodes the next. (psycopg's QueuedLibpqWriter, which sends from a thread,
    was slower: 22.3-25.5 s against 21.2-21.7 s for 1M rows.)"""
    from psycopg.types.json import Jsonb

    from ..archive.codec import JSONText

    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(f.column)) for f in fields)
    json_columns = [i for i, f in enumerate(fields) if kind_of(f) == "json"]
    # Django's DateTimeField.get_prep_value() with USE_TZ: a naive datetime is
    # TIME_ZONE time (psycopg would send it for the session to read as UTC).
    naive_columns = (
        [i for i, f in enumerate(fields) if kind_of(f) == "datetime"] if settings.USE_TZ else []
    )
    local = timezone.get_default_timezone()
    with connection.cursor() as cursor, connection.wrap_database_errors:
        raw = cursor.cursor  # psycopg's own cursor, under Django's wrapper
        sql = f"COPY {quote(db_table)} ({columns}) FROM STDIN"
        with raw.copy(sql) as copy:
            write_row = copy.write_row
            if not json_columns and not naive_columns:
                yield write_row
                return

            def write(values: list[object]) -> None:
                for i in json_columns:
                    value = values[i]
                    if isinstance(value, JSONText):
                        values[i] = value.text  # the text as it was: PostgreSQL parses it
                    elif value is not None:
                        values[i] = Jsonb(value)
                for i in naive_columns:
                    value = values[i]
                    if type(value) is datetime.datetime and value.tzinfo is None:
                        values[i] = timezone.make_aware(value, local)
                write_row(values)

            yield write


class Staging:
    """A temporary table with the columns of `db_table` (same types, no
    constraints, no indexes) that the backup's rows are COPied into, and the
    set operations that then move them into the table in one statement."""

    def __init__(self, db_table: str, fields: list[AnyField], connection: BaseDatabaseWrapper):
        self.connection = connection
        quote = self.quote = connection.ops.quote_name
        self.db_table = db_table
        self.name = "dbtools_staging_" + db_table[:40]
        self.columns = [str(f.column) for f in fields]
        self.columns_sql = ", ".join(quote(c) for c in self.columns)

    def same_key(self, pk_columns: list[str]) -> str:
        """The staged row and the table's row `x` have the same primary key; the
        key's statistics gathered first, so the join is planned as one (the
        other columns', a jsonb payload's, are not needed)."""
        quote = self.quote
        with self.connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {quote(self.name)} ({', '.join(map(quote, pk_columns))})")
        return " AND ".join(f"x.{quote(c)} = s.{quote(c)}" for c in pk_columns)

    def inexact_key(
        self, pk_columns: list[str], text_columns: list[str]
    ) -> tuple[object, object] | None:
        """A staged key and the table's key it matches only by its columns'
        collation (a non-deterministic one, or citext's =), the text
        columns of `text_columns` compared by code point: (staged, table's)
        keys, or None where every match is exact."""
        quote = self.quote
        differs = " OR ".join(
            f'x.{quote(c)}::text COLLATE "C" <> s.{quote(c)}::text COLLATE "C"'
            for c in text_columns
        )
        keys = ", ".join(f"{side}.{quote(c)}" for side in "sx" for c in pk_columns)
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {keys} FROM {quote(self.name)} s JOIN {quote(self.db_table)} x "
                f"ON {self.same_key(pk_columns)} WHERE {differs} LIMIT 1"
            )
            found = cursor.fetchone()
        if found is None:
            return None
        size = len(pk_columns)
        staged, held = found[:size], found[size:]
        return (staged[0], held[0]) if size == 1 else (tuple(staged), tuple(held))

    def move(self, tail: str) -> int:
        """INSERT the staged rows into the table, `tail` ending the statement
        (a WHERE over the staged rows `s`, or an ON CONFLICT); how many went in."""
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {self.quote(self.db_table)} ({self.columns_sql}) "
                f"SELECT {self.columns_sql} FROM {self.quote(self.name)} s {tail}"
            )
            return int(cursor.rowcount)

    def insert_missing(self, pk_columns: list[str]) -> int:
        """A merge: the staged rows whose primary key the table lacks go in; how many."""
        same_key = self.same_key(pk_columns)
        table = self.quote(self.db_table)
        return self.move(f"WHERE NOT EXISTS (SELECT 1 FROM {table} x WHERE {same_key})")

    def overwrite(self, pk_columns: list[str], update_columns: list[str]) -> tuple[int, int]:
        """--overwrite: every staged row goes in, a row whose primary key is there
        taking the staged values of `update_columns`; (inserted, updated).
        The ON CONFLICT is arbitrated by the primary key alone, so any other
        unique clash, a CHECK or a NOT NULL fails the statement."""
        from . import backend_for  # postgresql.py imports this module

        on_conflict = backend_for(self.connection).on_conflict_sql(
            self.db_table, pk_columns, update_columns
        )
        if not update_columns:
            # ON CONFLICT DO NOTHING: the rows that are there are left, and the
            # rowcount is the rows that went in.
            return self.move(on_conflict), 0
        same_key = self.same_key(pk_columns)
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT count(*) FROM {self.quote(self.name)} s "
                f"WHERE NOT EXISTS (SELECT 1 FROM {self.quote(self.db_table)} x WHERE {same_key})"
            )
            (missing,) = cursor.fetchone()
        # The row count is the rows inserted and the rows whose values differed.
        moved = self.move(on_conflict)
        return int(missing), moved - int(missing)


@contextlib.contextmanager
def staging_table(
    db_table: str, fields: list[AnyField], connection: BaseDatabaseWrapper
) -> Iterator[Staging]:
    """A merge or an overwrite into a table that holds rows, as one set
    operation: the backup's rows are COPied into a temporary table, then
    moved into the table in one statement (Staging). It skips or updates
    only by primary key: any other conflict, a CHECK, a NOT NULL or a
    foreign key still fails it. Asking the table which keys exist, one query
    per batch of 1,000, was a third of such a merge.

    The table is dropped afterwards (and with the transaction, ON COMMIT
    DROP, if this is left by an error)."""
    staging = Staging(db_table, fields, connection)
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE {quote(staging.name)} ON COMMIT DROP AS "
            f"SELECT {staging.columns_sql} FROM {quote(db_table)} WITH NO DATA"
        )
    yield staging
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {quote(staging.name)}")


# Integer primary keys that a merge can hold in memory, 8 bytes each: 24 MB, so
# that with the array's spare room, a page being read and the ~62 MB process a
# merge stays under 100 MB. A table holding more goes through a
# staging table.
MAX_KEYS_HELD = 3_000_000
KEYS_PER_QUERY = 250_000
INTEGER_COLUMNS = {"smallint", "integer", "bigint", "smallserial", "serial", "bigserial"}


class KeyNotComparable(Exception):
    """A row's primary key is not a plain int (a hostile file, or a value this
    restore made): the merge cannot tell whether the table holds it."""


def existing_keys(table: Table, connection: BaseDatabaseWrapper) -> Callable[[object], bool] | None:
    """For a merge into a table that holds rows: whether it holds a primary
    key, answered from the table's keys read once, so that the backup's
    missing rows can go straight into the table in one COPY. A staging table
    costs a COPY of every row into it and an INSERT ... SELECT that this
    process must wait for; this costs reading the keys, 8 bytes each.

    Only for a primary key of one integer column, and a table holding at
    most MAX_KEYS_HELD rows; None otherwise (the merge uses staging_table).

    The answer is what this transaction sees when the keys are read. A row
    another session commits after that is not skipped: its key makes the
    COPY fail, and the table is merged again in batches, which ask anew."""
    if len(table.pk_fields) != 1:
        return None
    pk = table.pk_fields[0]
    if pk.db_type(connection) not in INTEGER_COLUMNS:
        return None
    quote = connection.ops.quote_name
    column, db_table = quote(str(pk.column)), quote(table.db_table)
    keys = array("q")
    with connection.cursor() as cursor:
        while True:
            # The last key as an integer literal: with a parameter the driver
            # would read a % in the table's name as a placeholder.
            after = f"WHERE {column} > {keys[-1]:d} " if keys else ""
            # Each key as 8 big-endian bytes, one value a page: a row per key
            # would cost this process more than the keys are worth.
            cursor.execute(
                f"SELECT string_agg(int8send(k), '' ORDER BY k) FROM "
                f"(SELECT {column}::int8 AS k FROM {db_table} {after}"
                f"ORDER BY {column} LIMIT {KEYS_PER_QUERY:d}) page"
            )
            (packed,) = cursor.fetchone()
            if not packed:
                break
            page = array("q")
            page.frombytes(packed)
            if sys.byteorder == "little":
                page.byteswap()
            keys.extend(page)
            if len(keys) > MAX_KEYS_HELD:
                return None
            if len(page) < KEYS_PER_QUERY:
                break
    return sorted_membership(keys)


def sorted_membership(keys: array[int]) -> Callable[[object], bool]:
    """Whether a key is in `keys` (ascending). A backup holds each table's rows
    in key order, so the search for a key starts where the one before ended
    and usually finds it a step or two on. A key further ahead is searched by
    bisection, and one smaller than the last from the start: a file in any
    order costs at most a bisection a key, never a walk over every key."""
    size = len(keys)
    position = 0
    previous: int | None = None

    def holds(key: object) -> bool:
        nonlocal position, previous
        if type(key) is not int:
            raise KeyNotComparable(key)
        low = 0 if previous is not None and key < previous else position
        previous = key
        near = min(low + 8, size)
        while low < near and keys[low] < key:
            low += 1
        if low == near < size and keys[low] < key:
            low = bisect_left(keys, key, low)
        position = low
        return low < size and keys[low] == key

    return holds


# Emptying tables for --replace --------------------------------------------------


def literal(text: str, connection: BaseDatabaseWrapper) -> str:
    """`text` as a quoted SQL string literal, for statements that take no bind
    parameters (COMMENT ON): run with no parameters, nothing in the statement
    is read as a placeholder."""
    from psycopg import sql

    connection.ensure_connection()
    return sql.Literal(text).as_string(connection.connection)


def at_once(connection: BaseDatabaseWrapper, statements: list[str]) -> bool:
    """Run these statements in a savepoint, waiting at most DBTOOLS['LOCK_TIMEOUT']
    for each lock: all of them, or (False) none, if any fails (a lock held
    elsewhere, a privilege missing)."""
    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('lock_timeout')")
            (previous,) = cursor.fetchone()
            cursor.execute(
                "SELECT set_config('lock_timeout', %s, true)", [get_settings().lock_timeout]
            )
            for statement in statements:
                cursor.execute(statement)
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])
    except DatabaseError:
        return False
    return True
