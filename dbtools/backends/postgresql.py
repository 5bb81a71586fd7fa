"""PostgreSQL: snapshots helpers can join, rows the server writes, COPY,
transactional TRUNCATE, sequences raised after a restore.

The fast paths themselves are in pg_reads.py (server-written rows, helper
readers) and pg_loads.py (COPY, key reads, statements under a lock timeout).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Set
from typing import Any

from django.db import models
from django.db.models import functions

from ..archive.codec import AnyField, kind_of
from ..graph import Table
from . import pg_loads, pg_reads
from .base import DatabaseBackend

# A table TRUNCATE may empty in DELETE's place: a plain table (no partitions,
# no inheritance children) with no trigger or rule of the user's (TRUNCATE fires
# neither their DELETE triggers nor their rules) and no row-level security
# (DELETE removes only the rows a policy lets this role see; TRUNCATE, all)
# that this role may truncate.
TRUNCATABLE_SQL = """
SELECT c.relname
FROM pg_class c
WHERE c.oid IN (SELECT to_regclass(quote_ident(t)) FROM unnest(%s::text[]) AS t)
  AND c.relkind = 'r'
  AND NOT c.relrowsecurity
  AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid OR i.inhrelid = c.oid)
  AND NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid AND NOT g.tgisinternal)
  AND NOT EXISTS (SELECT 1 FROM pg_rewrite r WHERE r.ev_class = c.oid)
  AND has_table_privilege(c.oid, 'TRUNCATE')
"""

# Every foreign key into one of these tables, with the table it comes from.
REFERENCED_BY_SQL = """
SELECT target.relname, source.relname
FROM pg_constraint con
JOIN pg_class target ON target.oid = con.confrelid
JOIN pg_class source ON source.oid = con.conrelid
WHERE con.contype = 'f'
  AND con.confrelid IN (SELECT to_regclass(quote_ident(t)) FROM unnest(%s::text[]) AS t)
"""


class PostgreSQLBackend(DatabaseBackend):
    sql_parser = "pglast"
    display_name = "PostgreSQL"
    shares_snapshots = True
    sorts_uuids_as_text = True  # the uuid type compares its 16 bytes in order
    checks_foreign_keys_once = True
    has_jsonb = True
    upserts_on_conflict = True
    casts_json_text = True  # JSONText compiles to %s::jsonb
    has_transaction_lock_timeout = True
    has_transaction_locks = True
    rolls_back_collected_writes = True
    checks_statement_locks = True
    estimates_row_counts = True
    databases_like_sql = "SELECT datname FROM pg_database WHERE datname LIKE %s"

    def create_database_grant(self, user: str, prefix: str) -> str:
        return f"ALTER ROLE {user} CREATEDB;"

    def differs_sql(self, db_table: str, column: str) -> str:
        """Compared as text: a column type without an equality operator (json,
        xml, point) would fail the statement, and the text is what the table
        stores either way. The cast keeps a text column's collation, which may
        ignore case (a non-deterministic ICU one): "C" compares code points."""
        quote = self.connection.ops.quote_name
        return (
            f"{quote(db_table)}.{quote(column)}::text IS DISTINCT FROM "
            f"EXCLUDED.{quote(column)}::text COLLATE {quote(self.binary_collation)}"
        )

    def exact_text(self, expression: Any) -> Any:
        """Cast to text first, as in differs_sql: citext's own = ignores case
        under any collation."""
        return super().exact_text(functions.Cast(expression, models.TextField()))

    def isolation_read_apart(self) -> str | None:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('transaction_isolation')")
            (level,) = cursor.fetchone()
        return None if level in ("repeatable read", "serializable") else str(level)

    def begin_snapshot(self) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        pg_reads.prepare_snapshot(self.connection)

    def can_write_rows(self, table: Table) -> bool:
        return pg_reads.can_write(table, self.connection)

    def write_row_batches(
        self, table: Table, size: int, keys: list[Any] | None = None
    ) -> Generator[list[str], None, None]:
        return pg_reads.row_batches(table, self.connection, size, keys)

    def can_write_masked_rows(self, table: Table, masked: Set[int]) -> bool:
        return pg_reads.can_write_masked(table, self.connection, masked)

    def write_masked_row_batches(
        self,
        table: Table,
        size: int,
        masked: Set[int],
        mask: Callable[[list[Any]], list[Any]],
        keys: list[Any] | None = None,
    ) -> Generator[list[str], None, None]:
        return pg_reads.masked_row_batches(table, self.connection, size, masked, mask, keys)

    def can_copy(self, fields: list[AnyField]) -> bool:
        return pg_loads.can_copy(fields, self.connection)

    def load_stream(
        self, db_table: str, fields: list[AnyField], text_tested: bool = False
    ) -> contextlib.AbstractContextManager[Callable[[list[object]], None]]:
        return pg_loads.copy_stream(db_table, fields, self.connection)

    def load_kept_as_text(
        self, fields: list[AnyField]
    ) -> list[Callable[[str], object] | None] | None:
        parsed = pg_loads.parsed_by_copy()
        return [parsed.get(kind_of(f)) for f in fields]

    def truncatable(self, db_tables: list[str]) -> list[str]:
        """The tables of `db_tables` that one TRUNCATE can empty inside the
        transaction exactly as DELETE would: PostgreSQL refuses to truncate a table
        that a foreign key of a table outside the TRUNCATE refers to (even an empty
        one), so a table stays out while anything outside the set still refers to it."""
        with self.connection.cursor() as cursor:
            cursor.execute(TRUNCATABLE_SQL, [db_tables])
            chosen = {name for (name,) in cursor.fetchall()}
            cursor.execute(REFERENCED_BY_SQL, [db_tables])
            references = cursor.fetchall()
        while True:
            referred_from_outside = {
                t for t, source in references if t in chosen and source not in chosen
            }
            if not referred_from_outside:
                return [t for t in db_tables if t in chosen]
            chosen -= referred_from_outside

    def truncate(self, db_tables: list[str]) -> bool:
        """Empty these tables with one TRUNCATE: False (nothing done) if it cannot
        be done at once (see pg_loads.at_once)."""
        quote = self.connection.ops.quote_name
        return pg_loads.at_once(
            self.connection, [f"TRUNCATE {', '.join(quote(t) for t in db_tables)} RESTRICT"]
        )

    def raise_sequences(self, model_list: list[type[models.Model]]) -> None:
        """Move each table's id sequence past its greatest id, never back.

        Django's sequence_reset_sql sets a sequence to the table's maximum, even
        below its current value: an open transaction that has already taken the
        next id would then collide, once committed, with the id handed out after
        it. Inserting explicit ids does not move a sequence, so after a restore
        it may be behind the table (raise it) or ahead (leave it)."""
        quote = self.connection.ops.quote_name
        with self.connection.cursor() as cursor:
            for model in model_list:
                # The fields Django's sequence_reset_sql resets.
                field = next(
                    (f for f in model._meta.local_fields if isinstance(f, models.AutoField)), None
                )
                if field is None:
                    continue
                table, column = quote(model._meta.db_table), str(field.column)
                cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, column])
                (sequence,) = cursor.fetchone()
                if sequence is None:
                    continue
                # Neither name goes through a format string: `sequence` is the
                # server's own quoted spelling and no parameters are passed.
                cursor.execute(f"SELECT last_value, is_called FROM {sequence}")
                last_value, is_called = cursor.fetchone()
                handed_out = last_value if is_called else last_value - 1
                cursor.execute(f"SELECT max({quote(column)}) FROM {table}")
                (top,) = cursor.fetchone()
                if top is not None and top > handed_out:
                    cursor.execute("SELECT setval(%s::regclass, %s)", [sequence, top])
