"""MySQL and MariaDB: a consistent-snapshot transaction, rows the server writes
(mysql_reads.py), a strict session for loading, reads by pages, values read as
the driver's text."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any

from django.db import models
from django.db.models import CharField, Func

from .._compat import mysql_sql_mode_seen
from ..archive.codec import AnyField
from ..graph import Table
from . import mysql_checks, mysql_loads, mysql_reads
from .base import DatabaseBackend, values_insert_sql

LOADING_SQL_MODES = (
    "STRICT_TRANS_TABLES",
    "NO_ZERO_IN_DATE",
    "NO_ZERO_DATE",
    "NO_AUTO_VALUE_ON_ZERO",
)


class MySQLBackend(DatabaseBackend):
    display_name = "MySQL/MariaDB"
    pages_reads = True
    reads_values_as_text = True
    fills_new_not_null_columns = True
    refuses_null_default_on_not_null = True
    create_database_options = " CHARACTER SET utf8mb4"
    sql_dialect = "mysql"

    def statement_canceller(self) -> Callable[[], None] | None:
        """KILL QUERY from a connection of its own. The session id is read here,
        in the connection's own thread: mysqlclient refuses a connection used
        from two threads."""
        params = self.connection.get_connection_params()
        raw: Any = self.connection.connection
        session = raw.thread_id()

        def cancel() -> None:
            canceller: Any = self.connection.get_new_connection(params)
            try:
                canceller.cursor().execute("KILL QUERY %s", [session])
            finally:
                canceller.close()

        return cancel

    locks_keys_read = True

    def create_database_grant(self, user: str, prefix: str) -> str:
        return f"GRANT ALL ON `{prefix.replace('_', chr(92) + '_')}%`.* TO '{user}'@'%';"

    def drop_index_sql(self, table: str, name: str) -> str:
        return f"{super().drop_index_sql(table, name)} ON {self.connection.ops.quote_name(table)}"

    def upsert_sql(
        self, db_table: str, columns: list[str], pk_columns: list[str], update_columns: list[str]
    ) -> str | None:
        """ON DUPLICATE KEY UPDATE fires on any unique value, not only the primary
        key: --overwrite sends through it only rows whose primary key is there
        (the others go in by a plain INSERT, so that a clash on another unique
        value fails instead of updating the row that holds it). The driver's
        executemany sends one multi-row INSERT, where an UPDATE per row would
        be a round trip each.

        The primary key is set first, to the backup's: MariaDB may match a
        long unique value (kept as a hash) before the primary key, and the
        row it found then takes a key another row holds, which fails the
        statement instead of writing the backup's values into it."""
        quote = self.connection.ops.quote_name
        sets = ", ".join(f"{quote(c)} = VALUES({quote(c)})" for c in [*pk_columns, *update_columns])
        return f"{values_insert_sql(quote, db_table, columns)} ON DUPLICATE KEY UPDATE {sets}"

    def exact_text(self, expression: Any) -> Any:
        """Converted first: a utf8mb4 collation does not apply to a column of
        another character set."""
        return Func(
            expression,
            template="CONVERT(%(expressions)s USING utf8mb4) COLLATE utf8mb4_bin",
            output_field=CharField(),
        )

    def upserted_rows(self, rowcount: int, rows: int) -> int:
        """ON DUPLICATE KEY UPDATE counts a row it changes twice and one it leaves as
        it was once with CLIENT.FOUND_ROWS (Django's default), else not at all."""
        from MySQLdb.constants import CLIENT

        flags = self.connection.get_connection_params().get("client_flag", 0)
        return rowcount - rows if flags & CLIENT.FOUND_ROWS else rowcount // 2

    def isolation_read_apart(self) -> str | None:
        """The session's level, which Django sets (a SET TRANSACTION for this
        transaction alone cannot be read back). MariaDB before 11.1 and
        MySQL name the variable differently."""
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SHOW SESSION VARIABLES WHERE Variable_name IN "
                "('transaction_isolation', 'tx_isolation')"
            )
            (_name, level), *_ = cursor.fetchall()
        level = str(level).replace("-", " ").lower()
        return None if level in ("repeatable read", "serializable") else level

    def begin_snapshot(self) -> None:
        with self.connection.cursor() as cursor:
            # Django runs MySQL sessions at READ COMMITTED, where rows
            # committed mid-backup would show up in later tables.
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")

    def check_foreign_keys(self, db_tables: Sequence[str]) -> None:
        mysql_checks.check_foreign_keys(self.connection, db_tables)

    def count_rows(self, model: type[models.Model]) -> int:
        return mysql_checks.count_rows(self.connection, model._meta.db_table)

    # Asked of the server once (mysql_reads.quotes_as_orjson).
    quotes_as_orjson: bool | None = None

    def can_write_rows(self, table: Table) -> bool:
        if self.quotes_as_orjson is None:
            self.quotes_as_orjson = mysql_reads.quotes_as_orjson(self.connection)
        return self.quotes_as_orjson and mysql_reads.can_write(table, self.connection)

    def write_row_batches(
        self, table: Table, size: int, keys: list[Any] | None = None
    ) -> Generator[list[bytes], None, None]:
        return mysql_reads.row_batches(table, self.connection, size, keys)

    def stored_datetime_parser(self) -> Callable[[str], Any]:
        from django.db.backends.mysql.base import django_conversions
        from MySQLdb.constants import FIELD_TYPE

        parse: Callable[[str], Any] = django_conversions[FIELD_TYPE.DATETIME]
        return parse

    # Asked of the connection and the server once (mysql_loads.can_load).
    loads_local_files: bool | None = None

    def can_load_stream(self, fields: list[AnyField]) -> bool:
        """LOAD DATA LOCAL INFILE, where both the client connection and the
        server allow it; the fields' kinds are asked each time."""
        if not mysql_loads.can_load(fields):
            return False
        if self.loads_local_files is None:
            self.loads_local_files = mysql_loads.loads_local_files(self.connection)
        return self.loads_local_files

    def load_stream(
        self, db_table: str, fields: list[AnyField], text_tested: bool = False
    ) -> contextlib.AbstractContextManager[Callable[[list[object]], None]]:
        return mysql_loads.load_stream(db_table, fields, self.connection, text_tested)

    def load_kept_as_text(
        self, fields: list[AnyField]
    ) -> list[Callable[[str], object] | None] | None:
        return mysql_loads.kept_as_text(fields, self.connection)

    @contextlib.contextmanager
    def loading_session(self) -> Iterator[None]:
        """Strict mode makes too-long strings and bad values errors instead of
        silent truncation; NO_ZERO_IN_DATE and NO_ZERO_DATE refuse the zero
        month, day or date that strict mode alone stores (LOAD DATA takes the
        backup's datetime text as it is); NO_AUTO_VALUE_ON_ZERO keeps an
        explicit id 0."""
        connection = self.connection
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@SESSION.sql_mode")
            (previous,) = cursor.fetchone()
            modes = [m for m in previous.split(",") if m]
            modes += [m for m in LOADING_SQL_MODES if m not in modes]
            cursor.execute("SET SESSION sql_mode = %s", [",".join(modes)])
        try:
            with mysql_sql_mode_seen(connection, set(modes)):
                yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SET SESSION sql_mode = %s", [previous])
