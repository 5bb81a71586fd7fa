"""MySQL and MariaDB's bulk load into an empty table (used through backends.mysql
and the restore's CopyStream): LOAD DATA LOCAL INFILE, what mariadb-import
uses, fed through a named pipe.

The driver sends a LOCAL file by reading it by name, so the rows go through a
FIFO in a folder only this user can open (named with this process's id, so
that the next run removes it if this one is killed: restore/scratch.py), and
no row is ever written to disk. The statement runs in a thread, which the
driver lets run without the GIL while the server reads, and this thread writes
the rows into the pipe as they are decoded, so the server stores rows while
this process decodes the next.

LOCAL turns every error (a duplicate key, a bad or too long value) into a
warning, and the row is skipped or its value adjusted: a load is taken only
if it stored every row sent and raised no warning at all; otherwise it fails
with a DatabaseError, its savepoint is rolled back and the table is loaded
again in batches of INSERTs, which are strict and name the failing row.

Each value is what the batches' plain INSERT sends (the same
get_db_prep_save() preparation), written as LOAD DATA's text reads it back
to the same stored value: NULL as \\N, tab, newline, carriage return, NUL
and backslash escaped, binary as hex put through UNHEX().
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from django.db import DatabaseError, models
from django.db.backends.base.base import BaseDatabaseWrapper

from ..archive.codec import (
    CANONICAL_UUID,
    PLAIN_DECIMAL,
    UTC_TIMESTAMP,
    AnyField,
    JSONText,
    kind_of,
)
from .pg_loads import COPY_KINDS

# The private folders that hold a load's pipe: dbtools-load-<pid>-<random>.
LOAD_FOLDER_PREFIX = "dbtools-load-"
# Rows are written to the pipe in chunks of about this many characters.
CHUNK_CHARS = 256 * 1024

# The kinds PostgreSQL's COPY takes, every scalar kind: each is written as the
# plain INSERT's preparation gives it (text_writer).
LOADED_KINDS = COPY_KINDS

ESCAPED = re.compile("[\\\\\t\n\r\0]")
ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})
NULL = "\\N"


def can_load(fields: list[AnyField]) -> bool:
    """Whether LOAD DATA can take these fields' values: fields whose value
    the plain INSERT sends through a placeholder of their own (a geometry)
    are left to it, binary aside (hex, put through UNHEX)."""
    return all(
        kind_of(f) in LOADED_KINDS
        and (kind_of(f) == "binary" or getattr(f, "get_placeholder_sql", None) is None)
        for f in fields
    )


def loads_local_files(connection: BaseDatabaseWrapper) -> bool:
    """Whether this connection can LOAD DATA LOCAL: the client connected with
    the LOCAL capability (libmariadb's default; an OPTIONS local_infile of 0
    turns it off: the capability is settled when connecting) and the
    server's local_infile is on."""
    from MySQLdb.constants import CLIENT

    connection.ensure_connection()
    raw: Any = connection.connection
    if not raw.client_flag & CLIENT.LOCAL_FILES:
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@GLOBAL.local_infile")
        (enabled,) = cursor.fetchone()
    return bool(int(enabled))


def text_writer(field: AnyField, connection: BaseDatabaseWrapper) -> Callable[[Any], str]:
    """How one column's value is written: prepared as the plain INSERT prepares
    it (restore/inserts.value_preparer), then as the driver would have quoted
    it, in LOAD DATA's text; by a shortcut for the types whose preparation is
    known to end there (shortcuts)."""
    return column_writer(field, connection)[0]


def column_writer(
    field: AnyField, connection: BaseDatabaseWrapper
) -> tuple[Callable[[Any], str], dict[type, Callable[[Any], str]]]:
    """text_writer's function, and the shortcuts it takes by type."""
    from ..restore.inserts import value_preparer

    prepare = value_preparer(field, connection)
    quick = shortcuts(field, connection, prepare)

    def write(value: Any) -> str:
        if value is None:
            return NULL
        shortcut = quick.get(type(value))
        if shortcut is not None:
            return shortcut(value)
        return as_text(prepare(value))

    return write, quick


def line_writer(
    fields: list[AnyField], connection: BaseDatabaseWrapper, text_tested: bool = False
) -> Callable[[list[object]], str]:
    """A row's values (in the order of `fields`) -> its line of LOAD DATA text,
    each value written by its column's text_writer, compiled into one
    expression for the table: a function call per value was a third of a
    restore's own time. The commonest values are written in line, exactly as
    their shortcut writes them: an int by str(), text with nothing to escape
    as it is, the forms a Kept shortcut takes. With `text_tested`, a text a
    Kept shortcut for text takes has passed its test already
    (BaseBackend.load_stream). The source holds only indexes, never a name."""
    scope: dict[str, Any] = {"search": ESCAPED.search, "str": str, "int": int, "type": type}
    parts = []
    for i, field in enumerate(fields):
        scope[f"w{i}"], quick = column_writer(field, connection)
        v, w = f"values[{i}]", f"w{i}(values[{i}])"
        kept = next((k for k in (quick.get(int), quick.get(str)) if isinstance(k, Kept)), None)
        if quick.get(int) is str:
            parts.append(f"(str({v}) if type({v}) is int else {w})")
        elif quick.get(str) is escaped:
            parts.append(f"({v} if type({v}) is str and not search({v}) else {w})")
        elif kept is not None:
            scope[f"t{i}"], scope[f"r{i}"] = kept.test, kept.rewrite
            kind = "int" if quick.get(int) is kept else "str"
            tested = "" if text_tested and kind == "str" else f" and t{i}({v})"
            parts.append(f"(r{i}({v}) if type({v}) is {kind}{tested} else {w})")
        else:
            parts.append(w)
    if not parts:
        return lambda values: ""
    line: Callable[[list[object]], str] = eval(
        f"lambda values: '\\t'.join(({', '.join(parts)},))", scope
    )
    return line


def escaped(text: str) -> str:
    return text.translate(ESCAPES) if ESCAPED.search(text) else text


def shortcuts(
    field: AnyField, connection: BaseDatabaseWrapper, prepare: Callable[[Any], Any]
) -> dict[type, Callable[[Any], str]]:
    """By a value's type, its text where get_db_prep_save() is known to give it
    back as it is (or, for a native uuid, the UUID the driver writes as
    str()): value_preparer's own shortcuts, and those it leaves to Django on
    every backend but that MySQL's steps end in the same way for. A
    JSONText goes in as its text, as a plain INSERT sends it."""
    from ..restore.text_reads import own_field

    target = own_field(field)
    kind = type(target)
    quick: dict[type, Callable[[Any], str]] = {JSONText: lambda value: escaped(value.text)}
    name = prepare.__name__
    if name == "text" or kind in (models.EmailField, models.SlugField, models.URLField):
        quick[str] = escaped
    elif text := KEPT_TEXT_WRITERS.get(name):
        quick[str] = Kept(*text, prepare)
    elif name == "integer":
        quick[int] = str
    elif kind in (models.AutoField, models.BigAutoField, models.SmallAutoField):
        # MySQL refuses 0 for an auto field, unless the session allows it.
        quick[int] = Kept(bool, str, prepare)
    elif name == "boolean":
        quick[bool] = lambda value: "1" if value else "0"
    elif kind is models.UUIDField and connection.features.has_native_uuid_field:
        quick[uuid.UUID] = str
        quick[str] = Kept(CANONICAL_UUID.fullmatch, str, prepare)
    return quick


class Kept:
    """A value written as rewrite(value) where test(value) holds, else prepared
    as the INSERT prepares it (line_writer writes the first case in line)."""

    def __init__(
        self,
        test: Callable[[Any], object],
        rewrite: Callable[[Any], str],
        prepare: Callable[[Any], Any],
    ) -> None:
        self.test, self.rewrite, self.prepare = test, rewrite, prepare

    def __call__(self, value: Any) -> str:
        return self.rewrite(value) if self.test(value) else as_text(self.prepare(value))


# The backup's text that MariaDB takes as it is, or barely rewritten
# (codec.py's spellings), so that it is neither decoded nor prepared: a
# decimal as format(value, "f") writes it; a UTC timestamp where the
# connection reads in UTC (str() of the naive datetime Django sends is the
# same with a space for the T; a day past the month's end the server refuses:
# a warning, so the load is not kept); for MariaDB's native uuid column, the
# canonical spelling, which is str() of the UUID the driver is given.
# By value_preparer's name: the test of the text, and how it is written.
KEPT_TEXT_WRITERS: dict[str, tuple[Callable[[str], object], Callable[[str], str]]] = {
    "finite_decimal": (PLAIN_DECIMAL.fullmatch, str),
    "utc_datetime": (UTC_TIMESTAMP.fullmatch, lambda text: f"{text[:10]} {text[11:-6]}"),
}


def kept_as_text(
    fields: list[AnyField], connection: BaseDatabaseWrapper
) -> list[Callable[[str], object] | None]:
    """Per field, the test under which the backup's text goes into the load as
    it is: where its column's writer has a Kept shortcut for text (the
    field's own class among Django's, see KEPT_TEXT_WRITERS); a subclass's
    values are decoded, as its own preparation may expect."""
    from ..restore.inserts import value_preparer

    tests: list[Callable[[str], object] | None] = []
    for field in fields:
        kept = shortcuts(field, connection, value_preparer(field, connection)).get(str)
        tests.append(kept.test if isinstance(kept, Kept) else None)
    return tests


def as_text(value: Any) -> str:
    """A prepared value as mysqlclient writes it into a statement, unquoted and
    escaped for LOAD DATA; a value of any other type raises TypeError (the
    table then goes in by INSERT)."""
    kind = type(value)
    if kind is str:
        return escaped(value)
    if kind is bool:
        return "1" if value else "0"
    if kind is int:
        return str(value)
    if value is None:
        return NULL
    if kind is Decimal:
        return format(value, "f")
    if kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value} cannot be stored")
        return repr(value)
    if kind in (bytes, bytearray, memoryview):
        return bytes(value).hex()
    if kind is uuid.UUID:
        return str(value)
    raise TypeError(f"a value of type {kind.__name__} is not written by LOAD DATA")


def load_sql(
    db_table: str, fields: list[AnyField], path: str, connection: BaseDatabaseWrapper
) -> str:
    quote = connection.ops.quote_name
    targets, sets = [], []
    for number, field in enumerate(fields):
        column = quote(str(field.column))
        if kind_of(field) == "binary":
            targets.append(f"@v{number}")
            sets.append(f"{column} = UNHEX(@v{number})")
        else:
            targets.append(column)
    literal = path.replace("\\", "\\\\").replace("'", "\\'")
    set_sql = f" SET {', '.join(sets)}" if sets else ""
    return (
        f"LOAD DATA LOCAL INFILE '{literal}' INTO TABLE {quote(db_table)} CHARACTER SET utf8mb4 "
        f"FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' "
        f"({', '.join(targets)}){set_sql}"
    )


class Load:
    """One LOAD DATA statement running in a thread on the connection's driver
    connection, reading the pipe at `path`."""

    def __init__(self, sql: str, path: str, connection: BaseDatabaseWrapper) -> None:
        from . import backend_for

        raw: Any = connection.connection
        self.raw = raw
        # Read here, in the connection's own thread (statement_canceller).
        self.canceller = backend_for(connection).statement_canceller()
        self.cancelled_at: float | None = None
        self.cursor = raw.cursor()
        self.sql = sql
        self.path = path
        self.stored = 0
        self.warnings = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self.run, name="dbtools-load", daemon=True)

    def run(self) -> None:
        try:
            self.stored = int(self.cursor.execute(self.sql))
            self.warnings = int(self.raw.warning_count())
        except BaseException as exc:  # handed to the main thread
            self.error = exc

    def open_pipe(self) -> int | None:
        """The pipe's writing end, once the driver opens it for reading; None if
        the statement ended first (it failed before asking for the file)."""
        while True:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
                if not self.thread.is_alive():
                    return None
                self.cancel_again()
                time.sleep(0.001)
                continue
            os.set_blocking(fd, True)
            return fd

    def check(self, db_table: str, sent: int, connection: BaseDatabaseWrapper) -> None:
        """Raise the statement's error, or a DatabaseError unless it stored every
        row sent without a warning."""
        with connection.wrap_database_errors:
            if self.error is not None:
                raise self.error
        if self.stored != sent or self.warnings:
            raise DatabaseError(
                f"LOAD DATA stored {self.stored:,} of the {sent:,} rows sent to "
                f"{db_table}, with {self.warnings:,} warnings"
            )

    def cancel(self) -> None:
        """End the statement, wherever it is (waiting for a lock, reading the
        rows): the writer side failed or was interrupted, and the main thread,
        which takes the signals, waits for it next."""
        self.cancelled_at = time.monotonic()
        if self.canceller is not None:
            with contextlib.suppress(Exception):  # it then ends as the pipe closes
                self.canceller()

    def cancel_again(self) -> None:
        """A cancel sent before the statement began is lost: sent again while
        the statement runs on."""
        if self.cancelled_at is not None and time.monotonic() - self.cancelled_at > 1:
            self.cancel()

    def wait(self) -> None:
        """Until the statement has ended: the connection is the thread's till then."""
        interrupted: BaseException | None = None
        while self.thread.is_alive():
            try:
                self.thread.join(timeout=0.2)
                self.cancel_again()
            except KeyboardInterrupt as exc:
                interrupted = exc
                self.cancel()
        if interrupted is not None:
            raise interrupted


@contextlib.contextmanager
def load_stream(
    db_table: str, fields: list[AnyField], connection: BaseDatabaseWrapper, text_tested: bool
) -> Iterator[Callable[[list[object]], None]]:
    """One LOAD DATA LOCAL INFILE into `db_table` that rows are written into as
    they come, by the function yielded (a row is its values, in the order of
    `fields`). Raises DatabaseError unless the table took every row sent,
    exactly (no warning). Unique checks stay on: with them off, InnoDB's bulk
    load of an empty table keeps a duplicate in a long (hash) unique index
    without a word."""
    line = line_writer(fields, connection, text_tested)
    folder = tempfile.mkdtemp(prefix=f"{LOAD_FOLDER_PREFIX}{os.getpid()}-")
    path = os.path.join(folder, "rows")
    try:
        os.mkfifo(path, 0o600)
        connection.ensure_connection()
        yield from loaded(db_table, fields, connection, path, line)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def loaded(
    db_table: str,
    fields: list[AnyField],
    connection: BaseDatabaseWrapper,
    path: str,
    line: Callable[[list[object]], str],
) -> Iterator[Callable[[list[object]], None]]:
    """load_stream's statement, reading the pipe at `path`."""
    load = Load(load_sql(db_table, fields, path, connection), path, connection)
    load.thread.start()
    pipe = Pipe()
    stopped = False
    try:
        pipe.fd = load.open_pipe()

        def write(values: list[object]) -> None:
            pipe.add(line(values))

        yield write
        pipe.flush()
    except PipeClosed:
        stopped = True  # the statement's own error says why (check)
    except BaseException:
        load.cancel()
        raise
    finally:
        pipe.close(load)
    load.check(db_table, pipe.sent, connection)
    if stopped:
        raise DatabaseError(f"LOAD DATA into {db_table} stopped reading its rows")


class PipeClosed(Exception):
    """The statement stopped reading the rows (it failed)."""


class Pipe:
    """The rows' way into the statement: lines gathered into chunks."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self.lines: list[str] = []
        self.size = 0
        self.sent = 0

    def add(self, line: str) -> None:
        self.lines.append(line)
        self.size += len(line)
        self.sent += 1
        if self.size >= CHUNK_CHARS:
            self.flush()

    def flush(self) -> None:
        if not self.lines:
            return
        if self.fd is None:
            raise PipeClosed
        self.lines.append("")
        data = memoryview("\n".join(self.lines).encode())
        self.lines, self.size = [], 0
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except BrokenPipeError as exc:
            raise PipeClosed from exc

    def close(self, load: Load) -> None:
        """End the rows; the statement then ends, and is waited for. A statement
        still about to open the pipe is let open it and read its end."""
        if self.fd is None and load.thread.is_alive():
            self.fd = load.open_pipe()
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None
        load.wait()
