"""SQLite: a file, not a server; decimals stored as floating point; triggers
dropped while a restore's rows go in; empty tables loaded by sqlite_loads."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..archive.codec import AnyField
from . import sqlite_loads
from .base import DatabaseBackend


class SQLiteBackend(DatabaseBackend):
    sql_dialect = "sqlite"
    display_name = "SQLite"
    database_is_file = True
    default_host = "local file"
    reads_values_as_text = True
    upserts_on_conflict = True
    stores_decimals_inexactly = True
    binary_collation = "BINARY"

    def database_name(self, name: str) -> str:
        return Path(name).name

    def differs_sql(self, db_table: str, column: str) -> str:
        quote = self.connection.ops.quote_name
        return (
            f"{quote(db_table)}.{quote(column)} IS NOT "
            f"excluded.{quote(column)} COLLATE {quote(self.binary_collation)}"
        )

    def can_load_stream(self, fields: list[AnyField]) -> bool:
        return sqlite_loads.can_load(fields)

    def load_stream(
        self, db_table: str, fields: list[AnyField], text_tested: bool = False
    ) -> contextlib.AbstractContextManager[Callable[[list[object]], None]]:
        return sqlite_loads.load_stream(db_table, fields, self.connection, text_tested)

    def inexact_decimal(self, value: Decimal, field: AnyField) -> str | None:
        return sqlite_loads.inexact_for(value, field)

    def load_kept_as_text(
        self, fields: list[AnyField]
    ) -> list[Callable[[str], object] | None] | None:
        return sqlite_loads.kept_as_text(fields, self.connection)

    def stored_datetime_parser(self) -> Callable[[str], Any]:
        from django.utils.dateparse import parse_datetime

        return parse_datetime

    @contextlib.contextmanager
    def triggers_set_aside(self, db_tables: Sequence[str]) -> Iterator[None]:
        """The triggers on these tables are set aside while the rows go in.

        A restore writes a table's rows exactly as the backup holds them, and the
        backup holds every table a trigger would write to as well: Wagtail's SQLite
        search index, for one, is kept in step by triggers on its entries, and the
        backup has the index's own rows. Left in place, the trigger writes them a
        second time (a unique violation) or writes into a table outside the
        restore's scope. `pg_restore --disable-triggers` does the same for a
        data-only restore.

        SQLite: each trigger on a covered table is dropped inside the restore's
        transaction and created again from its own SQL after the load; SQLite's DDL
        is transactional, so a failed restore rolls the triggers back with
        everything else. PostgreSQL and MariaDB keep their triggers for now:
        disabling them there takes table locks or commits implicitly.
        """
        if not db_tables:
            yield
            return
        marks = ", ".join(["%s"] * len(db_tables))
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ({marks}) "
                f"ORDER BY name",
                list(db_tables),
            )
            found = cursor.fetchall()
            for name, _sql in found:
                cursor.execute(f"DROP TRIGGER {self.connection.ops.quote_name(name)}")
        yield  # on an error the transaction's rollback brings them back
        with self.connection.cursor() as cursor:
            for _name, sql in found:
                cursor.execute(sql)
