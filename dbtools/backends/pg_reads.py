"""PostgreSQL writes the backup's row lines itself (used through backends.postgresql).

On PostgreSQL 14+ the server can produce each row's JSON in exactly the form
archive/codec.py describes, with `row_to_json()`, so Python only moves text: this is
what brings backupdb near pg_dump's speed. Every kind is spelled out below;
a table with a column of any other kind (arrays, ranges, hstore, custom
fields) goes through the portable Python path instead, as do connections
without server-side cursors (DISABLE_SERVER_SIDE_CURSORS).

Timestamps are written in UTC: the snapshot transaction sets its time zone
with SET LOCAL, which lasts for that transaction only (pooler-safe).

HelperReaders read tables on more connections in the same snapshot.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Generator, Iterable, Sequence, Set
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import orjson
from django.db.backends.base.base import BaseDatabaseWrapper

from ..archive.codec import JSON_NULL_KEY, AnyField, kind_of
from ..archive.writer import longest_line, too_long_error
from ..conf import get_settings
from ..graph import Table
from ..storage.local import PARTIAL_SUFFIX
from .pg_loads import literal

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


def json_nulls_sql(table: Table, connection: BaseDatabaseWrapper) -> tuple[str, str] | None:
    """(a test true when a JSON column of the row holds JSON null, the JSON text
    of the list naming those columns), or None for a table without JSON columns.
    JSON null is written null, like SQL NULL, and the row names it (codec.py)."""
    quote = connection.ops.quote_name
    is_null = {
        f.name: f"t.{quote(str(f.column))}::jsonb = 'null'::jsonb"
        for f in table.fields
        if f.get_internal_type() == "JSONField"
    }
    if not is_null:
        return None
    names = ", ".join(
        f"CASE WHEN {test} THEN {literal(name, connection)} END" for name, test in is_null.items()
    )
    return (
        " OR ".join(is_null.values()),
        f"{literal(',' + json.dumps(JSON_NULL_KEY) + ':', connection)} || "
        f"array_to_json(array_remove(ARRAY[{names}]::text[], NULL))::text",
    )


def where_and_order(table: Table, connection: BaseDatabaseWrapper, keyed: bool) -> str:
    """The rows' filter (`keyed`: the single-column primary key in the array given
    as the query's one parameter) and their order, by the real key columns."""
    quote = connection.ops.quote_name
    order = ", ".join(f"t.{quote(str(f.column))}" for f in table.pk_fields)
    where = ""
    if keyed:
        (pk,) = table.pk_fields
        where = f"WHERE t.{quote(str(pk.column))} = ANY(%s::{pk.rel_db_type(connection)}[]) "
    return f"{where}ORDER BY {order}"


def members_sql(fields: Sequence[AnyField], connection: BaseDatabaseWrapper) -> str:
    quote = connection.ops.quote_name
    return ", ".join(f"{column_sql(f, connection)} AS {quote(f.name)}" for f in fields)


def rows_sql(table: Table, connection: BaseDatabaseWrapper, keyed: bool = False) -> str:
    """One JSON object per row, keyed by field name; ordered by the real key
    columns of the outer query, so the order is guaranteed, not incidental.
    `keyed`: only the rows whose (single-column) primary key is in the array
    given as the query's one parameter (a subset backup's)."""
    line = "row_to_json(r)::text"
    nulls = json_nulls_sql(table, connection)
    if nulls is not None:
        # The line's closing brace gives way to the key, for the rows that need it.
        test, key = nulls
        line = f"CASE WHEN {test} THEN left({line}, -1) || {key} || '}}' ELSE {line} END"
    return (
        f"SELECT {line} FROM {connection.ops.quote_name(table.db_table)} t, "
        f"LATERAL (SELECT {members_sql(table.fields, connection)}) r "
        f"{where_and_order(table, connection, keyed)}"
    )


def can_write_masked(table: Table, connection: BaseDatabaseWrapper, masked: Set[int]) -> bool:
    """Whether the server can write the line of `table` around the columns at
    `masked`, given as they are for Python to mask: text columns only, whose
    driver value is the ORM's and whose JSON is orjson's of the masked value."""
    return can_write(table, connection) and all(
        kind_of(table.fields[i]) == "str" and not table.fields[i].get_db_converters(connection)
        for i in masked
    )


def masked_rows_sql(
    table: Table, connection: BaseDatabaseWrapper, masked: Set[int], keyed: bool = False
) -> str:
    """rows_sql's rows with the columns at `masked` left out of the JSON: each
    run of other columns as one JSON object's text, each masked column's value
    as it is, in field order, then the JSON-null key's text ('' when none)."""
    quote = connection.ops.quote_name
    selected: list[str] = []
    joins: list[str] = []
    run: list[AnyField] = []
    for position, f in enumerate([*table.fields, None]):
        if (f is None or position in masked) and run:
            joins.append(f"LATERAL (SELECT {members_sql(run, connection)}) r{len(joins)}")
            selected.append(f"row_to_json(r{len(joins) - 1})::text")
            run = []
        if f is not None and position in masked:
            selected.append(f"t.{quote(str(f.column))}")
        elif f is not None:
            run.append(f)
    nulls = json_nulls_sql(table, connection)
    selected.append("''" if nulls is None else f"CASE WHEN {nulls[0]} THEN {nulls[1]} ELSE '' END")
    return (
        f"SELECT {', '.join(selected)} FROM {quote(table.db_table)} t"
        f"{''.join(', ' + join for join in joins)} {where_and_order(table, connection, keyed)}"
    )


def masked_row_batches(
    table: Table,
    connection: BaseDatabaseWrapper,
    size: int,
    masked: Set[int],
    mask: Callable[[list[list[Any]]], list[list[Any]]],
    keys: list[Any] | None = None,
) -> Generator[list[str], None, None]:
    """The lines row_batches would write had the columns at `masked` held their
    values masked: mask() takes a batch's values of those columns, column by
    column in field order, and gives them back masked. The server writes the
    other columns, Python the masked ones (masked_rows_sql), so no original
    value of them is written or spooled anywhere."""
    # Per selected column, in order: the JSON of a masked column's key, or None
    # for a run of the server's members (a JSON object's text).
    layout: list[str | None] = []
    for position, f in enumerate(table.fields):
        if position in masked:
            layout.append(orjson.dumps(f.name).decode() + ":")  # raw, as row_to_json writes it
        elif not layout or layout[-1] is not None:
            layout.append(None)
    values_at = [i for i, key in enumerate(layout) if key is not None]
    last = len(layout) - 1
    dumps = orjson.dumps

    def lines(batch: list[tuple[Any, ...]]) -> list[str]:
        masked_values = iter(mask([[row[i] for row in batch] for i in values_at]))
        # Without a JSON-null key to add, the last run's closing brace closes the line.
        closed = layout[-1] is None and not any(row[-1] for row in batch)
        # The line's pieces in order, each a column of the batch or the same text for all.
        pieces: list[Iterable[str]] = []
        for i, key in enumerate(layout):
            if key is None:
                if i:
                    pieces.append(repeat(","))
                end = None if i == last and closed else -1
                pieces.append([row[i][(1 if i else 0) : end] for row in batch])
            else:
                pieces.append(repeat(("," if i else "{") + key))
                pieces.append([dumps(value).decode() for value in next(masked_values)])
        if not closed:
            pieces += [[row[-1] for row in batch], repeat("}")]
        return list(map("".join, zip(*pieces, strict=False)))

    sql = masked_rows_sql(table, connection, masked, keyed=keys is not None)
    # Closed with this generator, so its reader thread stops with it (row_batches).
    with contextlib.closing(fetched(table, connection, size, sql, keys, whole=True)) as batches:
        for batch in batches:
            yield lines(batch)


def row_batches(
    table: Table, connection: BaseDatabaseWrapper, size: int, keys: list[Any] | None = None
) -> Generator[list[str], None, None]:
    """The table's row lines, in primary-key order, `size` at a time; with
    `keys`, only the rows with those primary keys (a single-column key)."""
    sql = rows_sql(table, connection, keyed=keys is not None)
    return fetched(table, connection, size, sql, keys, whole=False)


def fetched(
    table: Table,
    connection: BaseDatabaseWrapper,
    size: int,
    sql: str,
    keys: list[Any] | None,
    whole: bool,
) -> Generator[Any, None, None]:
    """The rows of `sql` (with `keys` as its parameter, if given), `size` at a
    time: each row whole, or (`whole` false) its one column.

    A server-side cursor makes the server build rows only when asked, so a
    thread asks for the next batch while this one is being written: the
    server's JSON work and the client's hashing and writing overlap. At most
    two batches wait in between, so memory stays flat.

    The caller closes the generator when it stops early (an error, an
    interrupt): that stops the thread. Until then a traceback may hold it
    paused; the thread never blocks for good meanwhile, and as a daemon it
    never keeps the process from exiting.
    """
    batches: queue.Queue[list[Any] | BaseException | None] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def hand_over(item: list[Any] | BaseException | None) -> None:
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
                hand_over(rows if whole else [row[0] for row in rows])
            hand_over(None)
        except BaseException as exc:  # handed to the reading thread, which raises it
            hand_over(exc)

    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, None if keys is None else [keys])
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


# Helper readers ---------------------------------------------------------------------


class Stopped(Exception):
    """The main reader stopped before a helper finished its table."""


class OverLimit(Exception):
    """A table would take the spools past their limit: the main reader reads it."""


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
    connection copies into it in order, so memory stays flat. With `limit`,
    the spools together never hold more than so many bytes: the table that
    would go past it, and every table after it, is left to the main
    connection, so the disk they take is bounded. Anything going
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
        limit: int | None = None,
    ) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_export_snapshot()")
            (self.snapshot_id,) = cursor.fetchone()
        self.alias = connection.alias
        self.folder = folder
        self.max_line_bytes = get_settings().max_line_bytes
        self.size = size
        self.limit = limit
        self.held = 0  # bytes in the spools, counted before they are written
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
        except OverLimit:
            with self.lock:  # the tables before the one over the limit are the main's
                self.queue.clear()
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
        rows = written = 0
        try:
            with os.fdopen(fd, "wb") as out, connection.chunked_cursor() as cursor:
                cursor.execute(rows_sql(table, connection))
                while batch := cursor.fetchmany(self.size):
                    if self.stopping.is_set():  # the backup was interrupted or failed
                        raise Stopped(table.label)
                    lines = [row[0] for row in batch]
                    if longest_line(lines) > self.max_line_bytes:
                        raise too_long_error(table.label, longest_line(lines), self.max_line_bytes)
                    data = (("," if rows else "") + "\n,".join(lines) + "\n").encode()
                    self.hold(len(data))
                    written += len(data)
                    out.write(data)
                    rows += len(lines)
        except BaseException:
            path.unlink(missing_ok=True)
            self.hold(-written)
            raise
        return Spooled(path, rows)

    def hold(self, size: int) -> None:
        """Count `size` more bytes into the spools, unless that goes past the limit."""
        with self.lock:
            if size > 0 and self.limit is not None and self.held + size > self.limit:
                raise OverLimit
            self.held += size

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
