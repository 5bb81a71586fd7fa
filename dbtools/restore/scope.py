"""The tables a restore empties first (--replace; a merge into tables holding
only what the migrations make), and the proof that emptying them reached
nothing outside the restore."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.db.backends.base.base import BaseDatabaseWrapper

from ..backends import backend_for
from ..exceptions import RestoreError
from ..graph import Table


def empty_unchanged(
    connection: BaseDatabaseWrapper, tables: list[Table], fingerprints: dict[str, str]
) -> None:
    """A merge into tables that held only the rows the migrations make:
    those rows give way to the backup's. Their rows are read again inside
    the transaction, locked where the database can, so a row written or
    edited since the comparison stops the restore instead of being deleted."""
    for table in tables:
        if rows_fingerprint(connection, table, lock=True) != fingerprints[table.label.lower()]:
            raise RestoreError(
                f"{table.label} changed while this restore compared it with what the "
                f"migrations make.",
                rolled_back=True,
                fix="Run it again.",
            )
    empty(connection, tables)


def empty(connection: BaseDatabaseWrapper, emptied: list[Table]) -> None:
    """Delete every row of `emptied`.

    With DELETE, not TRUNCATE, which would commit on MariaDB and could not
    be rolled back; on PostgreSQL, where TRUNCATE is transactional, with one
    TRUNCATE for the tables nothing outside it refers to (see
    PostgreSQLBackend.truncatable): DELETE leaves every old row behind as a dead
    tuple that each reloaded primary key must step over, which made a
    --replace markedly slower than a restore into empty tables.

    A database-level ON DELETE rule (CASCADE, SET NULL: Django's DB_CASCADE,
    or one written in SQL) could reach into a table this restore does not
    cover; the references into the emptied tables are counted before and
    after, and any change stops the restore.
    """
    references = outside_references(connection, emptied)
    before = count_references(connection, references)
    truncated: set[str] = set()
    backend = backend_for(connection)
    candidates = backend.truncatable([t.db_table for t in emptied])
    if candidates and backend.truncate(candidates):
        truncated = set(candidates)
    with connection.cursor() as cursor:
        for table in reversed(emptied):
            if table.db_table not in truncated:
                cursor.execute(f"DELETE FROM {connection.ops.quote_name(table.db_table)}")
    after = count_references(connection, references)
    for reference, count in before.items():
        if after[reference] != count:
            raise cascade_error(reference, count, after[reference], emptied)


@dataclass(frozen=True)
class Reference:
    """A foreign-key column of a table outside the restore, pointing into it."""

    table: str  # the referencing table, as the database names it
    column: str
    target: str  # the emptied table it points to


def outside_references(connection: BaseDatabaseWrapper, emptied: list[Table]) -> list[Reference]:
    """Every foreign key, known to the ORM or not, from a table that is not being
    emptied into one that is: read from the database's own constraints."""
    targets = {t.db_table for t in emptied}
    found = []
    with connection.cursor() as cursor:
        for name in connection.introspection.table_names(cursor):
            if name in targets:
                continue
            constraints = connection.introspection.get_constraints(cursor, name)
            for constraint in constraints.values():
                target = constraint.get("foreign_key")
                if target and target[0] in targets:
                    found += [
                        Reference(name, column, target[0]) for column in constraint["columns"]
                    ]
    return sorted(set(found), key=lambda r: (r.table, r.column))


def count_references(
    connection: BaseDatabaseWrapper, references: list[Reference]
) -> dict[Reference, int]:
    quote = connection.ops.quote_name
    counts = {}
    with connection.cursor() as cursor:
        for ref in references:
            cursor.execute(
                f"SELECT COUNT(*) FROM {quote(ref.table)} WHERE {quote(ref.column)} IS NOT NULL"
            )
            (counts[ref],) = cursor.fetchone()
    return counts


def cascade_error(ref: Reference, before: int, after: int, emptied: list[Table]) -> RestoreError:
    owner = next((t.label for t in emptied if t.db_table == ref.target), ref.target)
    return RestoreError(
        f"Emptying {owner} for --replace changed table {ref.table}, which this restore does not cover: "
        f"{before - after:,} of its rows lost their reference in column {ref.column} (a database-level "
        f"ON DELETE CASCADE or SET NULL). Restore {ref.table}'s model too (add it to --only), or restore "
        f"without --replace.",
        rolled_back=True,
    )


def rows_fingerprint(connection: BaseDatabaseWrapper, table: Table, lock: bool = False) -> str:
    """Every row of `table` as `connection` reads it, in no particular order,
    hashed: a merge replay's check that a table it compared is unchanged. Only
    for tables as small as a fresh migrate leaves them: the rows are sorted in
    memory. With `lock`, inside a transaction, the rows stay as read until
    commit (FOR UPDATE; SQLite's write transaction holds the whole file)."""
    sql = f"SELECT * FROM {connection.ops.quote_name(table.db_table)}"
    if lock and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql)
        rows = sorted(repr(tuple(row)) for row in cursor.fetchall())
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()
