"""One table into the backup: from the server's own row lines (PostgreSQL), a
helper connection's spool, or the portable ORM path (rows.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet

from ..archive import ArchiveWriter
from ..archive.codec import kind_of
from ..backends import backend_for, pg_reads, vendor_name
from ..graph import Plan, Table
from . import rows
from .subset_rows import Chosen, key_chunks

if TYPE_CHECKING:
    from .masked import MaskedTables

Progress = Callable[[str, int, int], None]  # table label, rows done, rows expected
DEFAULT_JOBS = 2


@dataclass
class TableReport:
    label: str
    db_table: str
    rows: int
    seconds: float


def describe_table(table: Table) -> dict[str, Any]:
    """What a restore needs to know about a table without importing its model."""
    columns = []
    for f in table.fields:
        column: dict[str, Any] = {
            "name": f.name,
            "attname": f.attname,
            "column": f.column,
            "type": f.get_internal_type(),
            "kind": kind_of(f),
            "null": f.null,
        }
        if f.is_relation and f.remote_field is not None:
            column["references"] = f.remote_field.model._meta.label
        columns.append(column)
    return {
        "label": table.label,
        "db_table": table.db_table,
        "pk": [f.name for f in table.pk_fields],
        "auto_created": bool(table.model._meta.auto_created),
        "columns": columns,
    }


def count_rows(table: Table, connection: BaseDatabaseWrapper) -> int:
    return QuerySet(model=table.model, using=connection.alias).count()


def write_table(
    writer: ArchiveWriter,
    table: Table,
    connection: BaseDatabaseWrapper,
    progress: Progress | None,
    helpers: pg_reads.HelperReaders | None = None,
    masked: MaskedTables | None = None,
    chosen: Chosen | None = None,
) -> TableReport:
    """One table into the file; with `chosen` (a subset backup) only the rows
    it holds keys for (helpers are never given such a table)."""
    started = time.monotonic()
    keys = chosen.keys_for(table) if chosen else None
    expected = (len(keys) if keys is not None else count_rows(table, connection)) if progress else 0
    writer.begin_table(describe_table(table))
    spooled = helpers.result(table) if helpers and not helpers.take(table) else None
    if spooled is not None:
        writer.copy_rows(spooled.path, spooled.rows)
        spooled.path.unlink()
        if progress:
            progress(table.label, spooled.rows, expected)
        count, _ = writer.end_table()
        return TableReport(table.label, table.db_table, count, time.monotonic() - started)
    if keys is not None and not keys:  # a subset reaches no row of it: nothing to ask
        batches: Generator[list[str] | list[bytes], None, None] = no_batches()
    elif masked is not None and masked.covers(table):  # never the server's: it reads unmasked
        batches = masked.batches(table, connection, keys)
    else:
        batches = row_source(table, connection, keys)
    done = 0
    # Closed here, not whenever the generator is collected: a traceback keeps
    # it alive, and with it row_batches' reader thread and its cursor.
    with closing(batches):
        for batch in batches:
            writer.write_rows(batch)
            done += len(batch)
            if progress:
                progress(table.label, done, expected)
    count, _ = writer.end_table()
    return TableReport(table.label, table.db_table, count, time.monotonic() - started)


def no_batches() -> Generator[list[str] | list[bytes], None, None]:
    yield from ()


def row_source(
    table: Table, connection: BaseDatabaseWrapper, keys: set[Any] | None
) -> Generator[list[str] | list[bytes], None, None]:
    """Where the table's row lines come from: the server (PostgreSQL), or the
    portable path. A subset's table (`keys`) is read by the same path a full
    backup would take, filtered by key, so its lines are byte for byte a full
    backup's (a drill compares checksums); only a composite key, which the
    server's path cannot filter by, goes through the portable path."""
    backend = backend_for(connection)
    if backend.can_write_rows(table) and (keys is None or len(table.pk_fields) == 1):
        return backend.write_row_batches(
            table, rows.BATCH_ROWS, None if keys is None else list(keys)
        )
    if keys is not None:
        return rows.python_batches(table, connection, key_chunks(table, connection, keys))
    return rows.python_batches(table, connection)


def single_connection_reason(
    connection: BaseDatabaseWrapper,
    plan: Plan,
    folder: Path | None,
    owned: bool,
    encrypting: bool,
    subset: bool = False,
) -> str | None:
    """Why this backup must be read on one connection, or None if helpers may read."""
    if not backend_for(connection).shares_snapshots:
        return f"only PostgreSQL can share one snapshot between connections, not {vendor_name(connection)}"
    if subset:
        return "a subset backup reads its rows on the connection that chose their keys"
    if not owned:
        # In a caller's transaction the isolation level is the caller's, and
        # its snapshot may not be one to share.
        return "it runs inside a transaction of the caller's"
    if encrypting:
        return "an encrypted backup does not spool rows to local disk in the clear"
    if folder is None:
        return "a backup to a bucket keeps nothing on local disk"
    if connection.alias not in connections.settings:
        return "its connection is not one of settings.DATABASES, so no other can be opened like it"
    if sum(1 for t in plan.tables if backend_for(connection).can_write_rows(t)) < 2:
        return "there are not two tables the server can write as JSON"
    return None


@contextmanager
def helper_readers(
    connection: BaseDatabaseWrapper,
    plan: Plan,
    folder: Path | None,
    helpers: int,
    limit: int | None = None,
) -> Iterator[pg_reads.HelperReaders | None]:
    """On PostgreSQL, `helpers` more connections in the same snapshot read
    tables from the end of the plan, so several server processes build rows
    at once. Call with helpers > 0 only where single_connection_reason() found
    no reason against it (and so `folder` is the backup's). `limit`: the most
    bytes their spools may hold together (HelperReaders)."""
    readers = None
    if helpers > 0:
        assert folder is not None
        readers = pg_reads.HelperReaders(
            connection, list(plan.tables), folder, rows.BATCH_ROWS, helpers, limit
        )
    try:
        yield readers
    finally:
        if readers is not None:
            readers.close()
