"""PostgreSQL's fast paths, used through backends.postgresql.

PostgreSQL writes the backup's row lines itself.

On PostgreSQL 14+ the server can produce each row's JSON in exactly the form
codec.py describes, with `row_to_json()`, so Python only moves text: this is
what brings backupdb near pg_dump's speed. Every kind is spelled out below;
a table with a column of any other kind (arrays, ranges, hstore, custom
fields) goes through the portable Python path instead, as do connections
without server-side cursors (DISABLE_SERVER_SIDE_CURSORS).

Timestamps are written in UTC: the snapshot transaction sets its time zone
with SET LOCAL, which lasts for that transaction only (pooler-safe).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import queue
import re
import sys
import tempfile
import threading
from array import array
from bisect import bisect_left
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from ..archive import PARTIAL_SUFFIX, longest_line, too_long_error
from ..codec import JSON_NULL_KEY, AnyField, kind_of
from ..conf import get_settings
from ..graph import Table

# How each kind's column becomes the JSON value codec.py would write. {c} is
# the quoted column.
SQL_FOR_KIND = {
    "int": "{c}",
    "bool": "{c}",
    "str": "{c}",
    "uuid": "{c}",
    "date": "{c}",
    "time": "{c}",
    "datetime": "{c}",
    "json": "{c}",
    "decimal": "{c}::text",
    # to_json() already writes NaN and the infinities as strings, as codec does;
    # -0 is spelled as a float so that it reads back with its sign.
    "float": "CASE WHEN {c} = 0 AND {c}::text = '-0' THEN '-0.0'::json ELSE to_json({c}) END",
    # Whole microseconds; beyond 64 bits (timedelta.max) as a string, as codec does.
    "duration": "CASE WHEN abs(EXTRACT(EPOCH FROM {c}) * 1000000) < 9223372036854775808 "
    "THEN to_json((EXTRACT(EPOCH FROM {c}) * 1000000)::bigint) "
    "ELSE to_json(trunc(EXTRACT(EPOCH FROM {c}) * 1000000)::text) END",
    "binary": "translate(encode({c}, 'base64'), E'\\n', '')",
}
MIN_VERSION = 140000  # EXTRACT(EPOCH FROM interval) is exact (numeric) from 14 on


def column_sql(field: AnyField, connection: BaseDatabaseWrapper) -> str | None:
    kind = kind_of(field)
    if kind == "json" and field.get_internal_type() != "JSONField":
        return None  # hstore and friends
    template = SQL_FOR_KIND.get(kind)
    if template is None:
        return None
    return template.format(c="t." + connection.ops.quote_name(str(field.column)))


def can_write(table: Table, connection: BaseDatabaseWrapper) -> bool:
    """Whether the server can write this table's row lines (PostgreSQL connections only)."""
    return (
        connection.pg_version >= MIN_VERSION  # type: ignore[attr-defined]
        and not connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS")
        and all(column_sql(f, connection) is not None for f in table.fields)
    )


def rows_sql(table: Table, connection: BaseDatabaseWrapper) -> str:
    """One JSON object per row, keyed by field name; ordered by the real key
    columns of the outer query, so the order is guaranteed, not incidental."""
    quote = connection.ops.quote_name
    columns = ", ".join(f"{column_sql(f, connection)} AS {quote(f.name)}" for f in table.fields)
    order = ", ".join(f"t.{quote(str(f.column))}" for f in table.pk_fields)
    line = "row_to_json(r)::text"
    # JSON null is written null, like SQL NULL, and the row names it (codec.py):
    # the line's closing brace gives way to the key, for the rows that need it.
    is_null = {
        f.name: f"t.{quote(str(f.column))}::jsonb = 'null'::jsonb"
        for f in table.fields
        if f.get_internal_type() == "JSONField"
    }
    if is_null:
        names = ", ".join(
            f"CASE WHEN {test} THEN {literal(name, connection)} END"
            for name, test in is_null.items()
        )
        line = (
            f"CASE WHEN {' OR '.join(is_null.values())} THEN left({line}, -1) || "
            f"{literal(',' + json.dumps(JSON_NULL_KEY) + ':', connection)} || "
            f"array_to_json(array_remove(ARRAY[{names}]::text[], NULL))::text || '}}' "
            f"ELSE {line} END"
        )
    return (
        f"SELECT {line} FROM {quote(table.db_table)} t, LATERAL (SELECT {columns}) r "
        f"ORDER BY {order}"
    )


def row_batches(
    table: Table, connection: BaseDatabaseWrapper, size: int
) -> Generator[list[str], None, None]:
    """The table's row lines, in primary-key order, `size` at a time.

    A server-side cursor makes the server build rows only when asked, so a
    thread asks for the next batch while this one is being written: the
    server's JSON work and the client's hashing and writing overlap. At most
    two batches wait in between, so memory stays flat.

    The caller closes the generator when it stops early (an error, an
    interrupt): that stops the thread. Until then a traceback may hold it
    paused; the thread never blocks for good meanwhile, and as a daemon it
    never keeps the process from exiting.
    """
    batches: queue.Queue[list[str] | BaseException | None] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def hand_over(item: list[str] | BaseException | None) -> None:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                batches.put(item, timeout=0.1)
                return

    def fetch(cursor: Any) -> None:
        try:
            while not stop.is_set():
                rows = cursor.fetchmany(size)
                if not rows:
                    break
                hand_over([row[0] for row in rows])
            hand_over(None)
        except BaseException as exc:  # handed to the reading thread, which raises it
            hand_over(exc)

    with connection.chunked_cursor() as cursor:
        cursor.execute(rows_sql(table, connection))
        worker = threading.Thread(
            target=fetch, args=(cursor,), name=f"dbtools-fetch-{table.db_table}", daemon=True
        )
        worker.start()
        try:
            while (batch := batches.get()) is not None:
                if isinstance(batch, BaseException):
                    with connection.wrap_database_errors:
                        raise batch
                yield batch
        finally:
            stop.set()  # a put() waiting gives up within 0.1 s, a fetch ends with its batch
            worker.join()


def prepare_snapshot(connection: BaseDatabaseWrapper) -> None:
    """Settings for the snapshot transaction, for that transaction only (SET LOCAL):
    timestamps as UTC text; no JIT, whose compile time a full-table read of
    row_to_json() pays on every table and never earns back."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL TIME ZONE 'UTC'")
        cursor.execute("SET LOCAL jit = off")


# Restoring ------------------------------------------------------------------------

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

    from ..codec import JSONText

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


@contextlib.contextmanager
def staging_table(
    db_table: str, fields: list[AnyField], connection: BaseDatabaseWrapper
) -> Iterator[tuple[str, Callable[[list[str]], int]]]:
    """A merge into a table that holds rows, as one set operation: the backup's
    rows are COPied into a temporary table with the same column types (no
    constraints, no indexes), and one INSERT ... SELECT ... WHERE NOT EXISTS
    adds those whose primary key is not there. It skips only primary keys:
    any other conflict, a CHECK, a NOT NULL or a foreign key still fails
    the INSERT. Asking the table which keys exist, one query per batch of
    1,000, was a third of such a merge.

    Yields the staging table's name and `insert_missing(pk_columns)`, which
    returns how many rows it inserted. The table is dropped afterwards (and
    with the transaction, ON COMMIT DROP, if this is left by an error)."""
    quote = connection.ops.quote_name
    staging = "dbtools_staging_" + db_table[:40]
    columns = ", ".join(quote(str(f.column)) for f in fields)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE {quote(staging)} ON COMMIT DROP AS "
            f"SELECT {columns} FROM {quote(db_table)} WITH NO DATA"
        )

    def insert_missing(pk_columns: list[str]) -> int:
        same_key = " AND ".join(f"x.{quote(c)} = s.{quote(c)}" for c in pk_columns)
        keys = ", ".join(quote(c) for c in pk_columns)
        with connection.cursor() as cursor:
            # The row count and the key's statistics, so the anti-join is planned
            # as one; the other columns' (a jsonb payload's) are not needed.
            cursor.execute(f"ANALYZE {quote(staging)} ({keys})")
            cursor.execute(
                f"INSERT INTO {quote(db_table)} ({columns}) SELECT {columns} FROM {quote(staging)} s "
                f"WHERE NOT EXISTS (SELECT 1 FROM {quote(db_table)} x WHERE {same_key})"
            )
            return int(cursor.rowcount)

    yield staging, insert_missing
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {quote(staging)}")


# Integer primary keys that a merge can hold in memory, 8 bytes each: 24 MB, so
# that with the array's spare room, a page being read and the ~62 MB process a
# merge stays under issue 11's 100 MB. A table holding more goes through a
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


# Helper readers ---------------------------------------------------------------------


class Stopped(Exception):
    """The main reader stopped before a helper finished its table."""


@dataclass
class Spooled:
    path: Path
    rows: int


class HelperReaders:
    """Connections that read tables from the end of the plan while the main one
    works from the start, all in the same snapshot.

    The main transaction exports its snapshot (pg_export_snapshot, as
    `pg_dump -j` does); each helper's transaction adopts it, so every
    connection sees the database at the same moment. Helpers spool their
    tables to hidden `.partial` files beside the backup, which the main
    connection copies into it in order, so memory stays flat. Anything going
    wrong in a helper (a pooler or server refusing the snapshot, no free
    connection, a lost connection) only means the main connection reads the
    tables that helper did not finish itself.
    """

    def __init__(
        self,
        connection: BaseDatabaseWrapper,
        tables: list[Table],
        folder: Path,
        size: int,
        helpers: int = 1,
    ) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_export_snapshot()")
            (self.snapshot_id,) = cursor.fetchone()
        self.alias = connection.alias
        self.folder = folder
        self.max_line_bytes = get_settings().max_line_bytes
        self.size = size
        self.lock = threading.Lock()
        self.queue = [
            t for t in tables if can_write(t, connection)
        ]  # the main reader takes from the front
        helpers = min(helpers, len(self.queue) - 1)  # the main reader takes one table at least
        self.claimed: dict[str, threading.Event] = {}
        self.spooled: dict[str, Spooled] = {}
        self.working: set[threading.Thread] = set()  # helpers that claimed a table
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self.run, name=f"dbtools-reader-{n}", daemon=True)
            for n in range(2, helpers + 2)
        ]
        for thread in self.threads:
            thread.start()

    def take(self, table: Table) -> bool:
        """The main reader is about to read `table`: True if it should (not claimed here)."""
        with self.lock:
            if table in self.queue:
                self.queue.remove(table)
                return True
            return table.label not in self.claimed

    def result(self, table: Table) -> Spooled | None:
        """Wait for a claimed table; None if its helper failed (read it yourself)."""
        self.claimed[table.label].wait()
        return self.spooled.get(table.label)

    def run(self) -> None:
        from django.db import connections

        connection = connections.create_connection(self.alias)
        mine: list[str] = []
        try:
            connection.ensure_connection()
            connection.set_autocommit(False)
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                cursor.execute("SET TRANSACTION SNAPSHOT %s", [self.snapshot_id])
            prepare_snapshot(connection)
            while not self.stopping.is_set():
                with self.lock:
                    if not self.queue:
                        break
                    table = self.queue.pop()
                    self.claimed[table.label] = threading.Event()
                    self.working.add(threading.current_thread())
                mine.append(table.label)
                self.spooled[table.label] = self.spool(table, connection)
                self.claimed[table.label].set()  # on failure, set below with the rest of mine
        except Exception:
            pass  # the main connection reads what this helper did not spool
        finally:
            for label in mine:
                self.claimed[label].set()
            try:
                connection.rollback()
            except Exception:
                pass  # a lost connection has nothing left to roll back
            finally:
                connection.close()

    def spool(self, table: Table, connection: BaseDatabaseWrapper) -> Spooled:
        # A name no one can guess or plant a link at, created exclusively, 0600:
        # the spool holds rows, and the folder may be readable by others.
        fd, name = tempfile.mkstemp(
            dir=self.folder, prefix=".dbtools-", suffix=f".spool{PARTIAL_SUFFIX}"
        )
        path = Path(name)
        rows = 0
        try:
            with os.fdopen(fd, "wb") as out, connection.chunked_cursor() as cursor:
                cursor.execute(rows_sql(table, connection))
                while batch := cursor.fetchmany(self.size):
                    if self.stopping.is_set():  # the backup was interrupted or failed
                        raise Stopped(table.label)
                    lines = [row[0] for row in batch]
                    if longest_line(lines) > self.max_line_bytes:
                        raise too_long_error(table.label, longest_line(lines), self.max_line_bytes)
                    out.write((("," if rows else "") + "\n,".join(lines) + "\n").encode())
                    rows += len(lines)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return Spooled(path, rows)

    def close(self) -> None:
        """Called when every table has been read, or the backup stopped early (an
        error, an interrupt): a helper still spooling stops at its next batch
        and removes its spool. A helper that never claimed a table may still be
        waiting for a connection (a pooler with no free server connection until
        this transaction ends): it is not waited for; it finds the snapshot
        gone and ends by itself."""
        self.stopping.set()
        with self.lock:
            self.queue.clear()
            working = list(self.working)
        for thread in working:
            thread.join()
        for spooled in self.spooled.values():
            spooled.path.unlink(missing_ok=True)


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
