"""What every database must do for dbtools, with portable defaults.

Flags say what a database can do or needs; methods do what differs between
databases. A subclass per database overrides only what differs (see
postgresql.py, mysql.py, sqlite.py), as Django's own backends do with their
features and operations.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Sequence, Set
from decimal import Decimal
from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import functions

from ..archive.codec import AnyField
from ..graph import Table


class DatabaseBackend:
    # Shown to people: "the PostgreSQL database 'shop'". Empty: the vendor's own name.
    display_name = ""
    # The database is a file on this machine, not a server: no host, no
    # CREATE DATABASE, its own file for locks.
    database_is_file = False
    # The host named when the settings name none.
    default_host = "localhost"

    # Backup --------------------------------------------------------------------
    # The driver holds a whole result in memory, so large reads go by pages.
    pages_reads = False
    # Other connections can join a backup's snapshot (helper readers).
    shares_snapshots = False
    # The driver hands over some stored values as text, which text_reads.py
    # turns into their JSON without Django's per-value converters.
    reads_values_as_text = False
    # A UUID column sorts as its canonical text does (lowercase hex), so
    # diffdb can merge-join a table keyed by one without spilling it to sort.
    sorts_uuids_as_text = False
    # Decimals are stored as floating point, so they can hold fewer digits
    # than the field says; read raw and checked on restore.
    stores_decimals_inexactly = False

    # Restore -------------------------------------------------------------------
    # Foreign keys of the tables a restore starts empty are set aside and
    # validated once after the load (foreign_keys.py).
    checks_foreign_keys_once = False
    # A JSON column can be jsonb, which takes JSON text as it is.
    has_jsonb = False
    # JSON text compiles to a cast placeholder, not to a plain one.
    casts_json_text = False
    # INSERT ... ON CONFLICT (primary key) DO UPDATE, for --overwrite (upsert_sql).
    upserts_on_conflict = False
    # --overwrite reads which of a batch's keys the table holds, then upserts
    # those rows: where the upsert fires on any unique value, a row deleted
    # between the two would turn its upsert into an insert that rewrites the
    # row holding its other unique value, so the keys read are locked.
    locks_keys_read = False
    # The collation that compares text by code point (differs_sql, exact_text).
    binary_collation = "C"

    # Migrations ----------------------------------------------------------------
    # sqlglot's name for the SQL dialect, to parse RunSQL (migrate/checks/sql.py).
    sql_dialect: str | None = None
    # Which parser reads its SQL (migrate/checks/sql.py): PostgreSQL's own grammar
    # for PostgreSQL, sqlglot in `sql_dialect` for the others.
    sql_parser = "sqlglot"
    # A migrate's transactions can each be given a lock timeout that ends with them.
    has_transaction_lock_timeout = False
    # The migration lock can be a lock held by a transaction of a second connection.
    has_transaction_locks = False
    # A transaction around collected statements rolls back what an operation
    # wrote through its own cursor, DDL included.
    rolls_back_collected_writes = False
    # The catalogue's row estimate stands in for a count of a big table.
    estimates_row_counts = False
    # Migrations' SQL is checked for the locks each statement takes.
    checks_statement_locks = False
    # Adding a NOT NULL column over existing rows fills them with the type's
    # implicit value instead of failing.
    fills_new_not_null_columns = False
    # A NOT NULL column with DEFAULT NULL is refused.
    refuses_null_default_on_not_null = False

    # Scratch databases -----------------------------------------------------------
    # Appended to CREATE DATABASE.
    create_database_options = ""
    # The databases on the server whose name is LIKE %s, one per row.
    databases_like_sql = (
        "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s"
    )

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection

    def statement_canceller(self) -> Callable[[], None] | None:
        """A function that cancels, from another thread, the statement this
        connection is running, where its client library waits for the server
        without taking signals; None where it takes them (psycopg cancels the
        query itself, SQLite's wait is its busy timeout). Called in the thread
        that uses the connection."""
        return None

    def vendor_name(self) -> str:
        return self.display_name or self.connection.vendor

    def database_name(self, name: str) -> str:
        """How the settings' NAME is shown: never a host, user or password."""
        return name

    def create_database_grant(self, user: str, prefix: str) -> str:
        """What to run so that `user` may create scratch databases, named `prefix`..."""
        return f"grant {user} the right to create databases"

    def drop_index_sql(self, table: str, name: str) -> str:
        return f"DROP INDEX {self.connection.ops.quote_name(name)}"

    # Backup --------------------------------------------------------------------

    def isolation_read_apart(self) -> str | None:
        """The isolation level of the open transaction where it does not read
        every table at one moment (READ COMMITTED), else None. SQLite's
        transactions read one snapshot from their first read on."""
        return None

    def begin_snapshot(self) -> None:
        """Make the transaction just opened a read-only snapshot of every table.
        The default suits a database whose read transaction already is one."""

    def can_write_rows(self, table: Table) -> bool:
        """Whether the server itself writes `table`'s row lines (write_row_batches)."""
        return False

    def write_row_batches(
        self, table: Table, size: int, keys: list[Any] | None = None
    ) -> Generator[list[str] | list[bytes], None, None]:
        """The table's row lines, as the server writes them, `size` at a time;
        with `keys`, only the rows with those primary keys (a single-column key)."""
        raise NotImplementedError

    def can_write_masked_rows(self, table: Table, masked: Set[int]) -> bool:
        """Whether the server writes `table`'s row lines around the columns at
        `masked`, whose values Python masks (write_masked_row_batches)."""
        return False

    def write_masked_row_batches(
        self,
        table: Table,
        size: int,
        masked: Set[int],
        mask: Callable[[list[Any]], list[Any]],
        keys: list[Any] | None = None,
    ) -> Generator[list[str] | list[bytes], None, None]:
        """write_row_batches' lines with the values of the columns at `masked`
        (in field order) replaced by mask(those values); no original value of
        them is written anywhere."""
        raise NotImplementedError

    def stored_datetime_parser(self) -> Callable[[str], Any]:
        """The driver's own parse of a datetime column's stored text (reads_values_as_text)."""
        raise NotImplementedError

    # Restore -------------------------------------------------------------------

    def loading_session(self) -> contextlib.AbstractContextManager[None]:
        """Session settings a faithful load needs, put back afterwards."""
        return contextlib.nullcontext()

    def triggers_set_aside(
        self, db_tables: Sequence[str]
    ) -> contextlib.AbstractContextManager[None]:
        """The triggers on these tables kept from firing while the rows go in."""
        return contextlib.nullcontext()

    def can_copy(self, fields: list[AnyField]) -> bool:
        """Whether these fields' values can go in by the bulk path (COPY)."""
        return False

    def can_load_stream(self, fields: list[AnyField]) -> bool:
        """Whether these fields' values can go into an empty table by the bulk
        path (load_stream)."""
        return self.can_copy(fields)

    def load_stream(
        self, db_table: str, fields: list[AnyField], text_tested: bool = False
    ) -> contextlib.AbstractContextManager[Callable[[list[object]], None]]:
        """One bulk load into `db_table` that rows are written into as they come,
        by the function it yields (a row is its values, in the order of `fields`).
        It fails (a DatabaseError or ValueError) on any value the database
        would not store exactly, a decimal with more digits than it keeps
        included (RowPipeline.decimal_checks are left to it). With
        `text_tested`, every text in a column load_kept_as_text names has
        passed that column's test (the decoder kept it as text by it), so the
        load does not test it again."""
        raise NotImplementedError

    def inexact_decimal(self, value: Decimal, field: AnyField) -> str | None:
        """Why this database cannot store `value`, the value of the decimal
        `field` (or of a foreign key to one), exactly as Django reads it back
        (None: it can); asked only where stores_decimals_inexactly."""
        return None

    def load_kept_as_text(
        self, fields: list[AnyField]
    ) -> list[Callable[[str], object] | None] | None:
        """Per field, the test under which the backup's text of its column goes
        into load_stream as it is, not decoded (None: that column's values are
        decoded); None: every value is decoded."""
        return None

    def truncatable(self, db_tables: list[str]) -> list[str]:
        """The tables that one transactional TRUNCATE can empty as DELETE would."""
        return []

    def truncate(self, db_tables: list[str]) -> bool:
        """Empty these tables at once; False if nothing was done."""
        return False

    def upsert_sql(
        self, db_table: str, columns: list[str], pk_columns: list[str], update_columns: list[str]
    ) -> str | None:
        """One INSERT, for executemany with a row's values in `columns` order,
        that gives a row whose primary key exists the values of
        `update_columns`; None where the database has none (--overwrite then
        updates row by row through Django's update compiler)."""
        if not self.upserts_on_conflict:
            return None
        quote = self.connection.ops.quote_name
        return values_insert_sql(quote, db_table, columns) + self.on_conflict_sql(
            db_table, pk_columns, update_columns
        )

    def on_conflict_sql(
        self, db_table: str, pk_columns: list[str], update_columns: list[str]
    ) -> str:
        """The ON CONFLICT clause of PostgreSQL and SQLite, arbitrated by the primary
        key alone (a conflict on any other unique value still fails the
        statement), updating only a row whose values differ: the statement's
        row count is then the rows inserted and the rows that changed."""
        quote = self.connection.ops.quote_name
        keys = ", ".join(quote(c) for c in pk_columns)
        if not update_columns:
            return f" ON CONFLICT ({keys}) DO NOTHING"
        sets = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in update_columns)
        differs = " OR ".join(self.differs_sql(db_table, c) for c in update_columns)
        return f" ON CONFLICT ({keys}) DO UPDATE SET {sets} WHERE {differs}"

    def differs_sql(self, db_table: str, column: str) -> str:
        """The table's value of `column` is not the one the upsert brings, two NULLs
        being the same. Where a column's collation can ignore case, a backend
        compares under binary_collation: a change of case only is a change."""
        quote = self.connection.ops.quote_name
        return f"{quote(db_table)}.{quote(column)} IS DISTINCT FROM EXCLUDED.{quote(column)}"

    def exact_text(self, expression: Any) -> Any:
        """A text column's value as the portable --overwrite compares it: by
        code point, whatever the column's collation, so that 'Alice' is not
        taken for the backup's 'alice' (restore/overwrite.py)."""
        return functions.Collate(expression, self.binary_collation)

    def upserted_rows(self, rowcount: int, rows: int) -> int:
        """The rows that changed, of `rows` whose primary key the table holds, sent
        through upsert_sql() by one executemany whose row count was `rowcount`."""
        return rowcount

    def check_foreign_keys(self, db_tables: Sequence[str]) -> None:
        """Raise IntegrityError, naming the first row, if a row of these tables
        points at a row that does not exist (Django's own check)."""
        self.connection.check_constraints(table_names=list(db_tables))

    def count_rows(self, model: type[models.Model]) -> int:
        return models.QuerySet(model=model, using=self.connection.alias).count()

    def rows_up_to(self, db_tables: Sequence[str], most: int) -> int:
        """The rows of these tables, counted only as far as one past `most`:
        enough to tell whether they hold more, without reading a big table
        through."""
        quote = self.connection.ops.quote_name
        counted = 0
        with self.connection.cursor() as cursor:
            for db_table in db_tables:
                if counted > most:
                    break
                cursor.execute(
                    f"SELECT COUNT(*) FROM (SELECT 1 FROM {quote(db_table)} "
                    f"LIMIT {most + 1 - counted}) AS bounded"
                )
                counted += int(cursor.fetchone()[0])
        return counted

    def raise_sequences(self, model_list: list[type[models.Model]]) -> None:
        """Move the id counters past the restored ids, never back. The default
        suits a database that moves its counters itself."""


def values_insert_sql(quote: Callable[[str], str], db_table: str, columns: list[str]) -> str:
    """INSERT INTO table (columns) VALUES (%s, ...)."""
    names = ", ".join(quote(c) for c in columns)
    return f"INSERT INTO {quote(db_table)} ({names}) VALUES ({', '.join(['%s'] * len(columns))})"
