"""What the checks know about one operation: the database's facts (tables,
row counts, column types), each asked once, and the operation with the states
around it and its SQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations import operations as ops

from ...backends import backend_for
from .sql import tables_created

BIG_TABLE_ROWS = 100_000  # counted exactly below this; a catalogue estimate above


class TableFacts:
    """What the checks ask the database, each asked once."""

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection
        self._tables: set[str] | None = None
        self._rows: dict[str, tuple[int, str]] = {}
        # What earlier operations of the plan leave, which the database does not show
        # yet: the tables they create (empty), and the columns they add to a table that
        # has rows (each row holds the field's default).
        self.planned: set[str] = set()
        self.added: dict[tuple[str, str], Any] = {}
        # Their SQL, which may fill a column's NULLs before a later operation makes it required.
        self.earlier_sql: list[str] = []

    def follow(self, context: OperationContext) -> None:
        """Take in what a forwards operation leaves for the operations after it."""
        if context.parts is not None:
            return  # check_operation() takes in each part as it checks it, for the next part
        self.planned |= tables_created(context.sql, self.connection)
        self.earlier_sql += context.sql
        operation = context.operation
        if isinstance(operation, ops.AddField) and not operation.field.many_to_many:
            model = context.model(context.after, operation.model_name)
            if model is not None:
                field: Any = model._meta.get_field(operation.name)
                self.added[(model._meta.db_table, str(field.column))] = field

    def query(
        self, sql: str, params: list[Any] | tuple[Any, ...] | dict[str, Any] = ()
    ) -> list[tuple[Any, ...]]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def exists(self, table: str) -> bool:
        if self._tables is None:
            with self.connection.cursor() as cursor:
                self._tables = set(self.connection.introspection.table_names(cursor))
        return table in self._tables

    def rows(self, table: str) -> tuple[int, str]:
        """The number of rows and how to say it: exact below BIG_TABLE_ROWS,
        the catalogue's estimate above it on PostgreSQL."""
        if table in self.planned:
            return 0, "0"
        if table not in self._rows:
            self._rows[table] = self._count(table)
        return self._rows[table]

    def _count(self, table: str) -> tuple[int, str]:
        if not self.exists(table):
            return 0, "0"
        quote = self.connection.ops.quote_name
        if backend_for(self.connection).estimates_row_counts:
            (estimate,) = self.query("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                                     [quote(table)])[0]  # fmt: skip
            if estimate >= BIG_TABLE_ROWS:
                return int(estimate), f"about {int(estimate):,} (catalogue estimate)"
        (count,) = self.query(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM {quote(table)} LIMIT {BIG_TABLE_ROWS}) AS bounded"
        )[0]
        count = int(count)
        return count, (f"at least {count:,}" if count >= BIG_TABLE_ROWS else f"{count:,}")

    def column_type(self, table: str, column: str) -> str | None:
        """PostgreSQL's own name for a column's type today, e.g. 'character varying(20)'."""
        found = self.query(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attname = %s AND NOT attisdropped",
            [self.connection.ops.quote_name(table), column],
        )
        return str(found[0][0]) if found else None


# One operation --------------------------------------------------------------------


@dataclass
class OperationContext:
    """One operation of one step, with the states around it and its SQL."""

    connection: BaseDatabaseWrapper
    facts: TableFacts
    app_label: str
    operation: Any
    before: Any  # ProjectState before the operation (in the step's direction)
    after: Any
    sql: list[str]
    backwards: bool
    created_in_migration: set[str]  # tables the same migration creates (empty when locked)
    # In an atomic migration on PostgreSQL, the tables its statements so far hold under
    # ACCESS EXCLUSIVE until it commits, each with the statement that took the lock;
    # shared by the migration's operations. None: each statement commits on its own.
    exclusive: dict[str, str] | None = None
    # Likewise, the constraints its statements so far added NOT VALID: name -> (kind,
    # the statement). Validating one later in the same transaction scans under that lock.
    not_valid: dict[str, tuple[str, str]] | None = None
    # The deploy order the running-code checks assume; plan_migrations() sets the
    # project's (DBTOOLS['DEPLOY'], --deploy). Without one, no code is running.
    deploy: str = "downtime"
    # A SeparateDatabaseAndState's database operations, each checked as if on its
    # own; None for any other operation.
    parts: list[OperationContext] | None = None

    @property
    def atomic(self) -> bool:
        """Does the migration run in one transaction?"""
        return self.exclusive is not None

    def with_parts(self) -> Iterator[OperationContext]:
        """This context and those of the database operations it holds, at any depth."""
        yield self
        for part in self.parts or ():
            yield from part.with_parts()

    def model(self, state: Any, name: str) -> type[models.Model] | None:
        try:
            return state.apps.get_model(self.app_label, name)  # type: ignore[no-any-return]
        except LookupError:
            return None

    def new_table(self, table: str) -> bool:
        """Created by this migration or an earlier step of the plan: it holds no rows
        when this operation runs, and no backup taken before the plan holds any."""
        return table in self.created_in_migration or table in self.facts.planned


def has_default(field: Any) -> bool:
    """A default that gives a value: default=None fills a NOT NULL column with NULL."""
    return bool(field.has_default()) and field.default is not None


def has_db_default(field: Any) -> bool:
    """db_default=None (or Value(None)) is DEFAULT NULL, no value for a NOT NULL column."""
    default = field.db_default
    return bool(field.has_db_default()) and not (
        default is None or (isinstance(default, models.Value) and default.value is None)
    )


def holds_null(field: Any) -> bool:
    """What a column added with this field holds in the rows that were there."""
    return not (has_db_default(field) or has_default(field))
