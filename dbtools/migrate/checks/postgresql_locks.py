"""PostgreSQL's locks and rewrites, read from the statements Django will run as
PostgreSQL's own parser reads them: the ALTER TABLE subcommands, whether an
index is built CONCURRENTLY, whether a constraint is NOT VALID, and the type a
column changes to with its modifiers. Sizes come from the catalogue, never
from `count(*)` of a big table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pglast import ast as pg
from pglast.enums import AlterTableType, ConstrType

from .context import OperationContext
from .findings import Raised
from .postgresql_rewrites import check_index_builds, check_rewrites
from .postgresql_transaction import (
    exclusively_locked,
    not_null_proven,
    remember_not_valid,
    takes_weaker_lock,
    validated_in_same_transaction,
)
from .sql import one_line, postgresql_texts, relation_name

# django.contrib.postgres's operations that refuse to run in a transaction; by
# name, so that this module imports nothing of django.contrib.postgres.
NOT_IN_TRANSACTION = {"AddIndexConcurrently", "RemoveIndexConcurrently"}


def check_postgresql_sql(context: OperationContext) -> Iterator[Raised]:
    operation = type(context.operation)
    if context.atomic and any(c.__name__ in NOT_IN_TRANSACTION for c in operation.__mro__):
        yield Raised("DBT207", fails_in_transaction(operation.__name__), None)
    earlier: list[Any] = []  # this operation's statements so far
    for text in context.sql:
        for statement, part in postgresql_texts(text):
            yield from check_postgresql_statement(context, statement, part, earlier)
            earlier.append(statement)


def check_postgresql_statement(
    context: OperationContext, statement: Any, text: str, earlier: list[Any]
) -> Iterator[Raised]:
    shown = one_line(text)
    if context.atomic and concurrently(statement):
        yield Raised("DBT207", fails_in_transaction("CONCURRENTLY"), shown)
        return
    if isinstance(statement, pg.IndexStmt):
        table = relation_name(statement)
        if not statement.concurrent and locks_existing(context, table):
            held = held_exclusive(context, table)
            where = f"{table} ({size(context, table)})"
            message = (under_held_lock(f"The index build on {where} runs", held) if held
                       else f"The index build blocks writes to {where} until it is done (SHARE lock).")  # fmt: skip
            yield Raised("DBT201", message, shown)
        return
    for table in exclusively_locked(statement):
        if context.exclusive is not None and locks_existing(context, table):
            context.exclusive.setdefault(table, shown.rstrip("; "))
    if not isinstance(statement, pg.AlterTableStmt):
        return
    table = relation_name(statement)
    if not locks_existing(context, table):
        return
    yield from check_postgresql_alter_table(context, statement, table, shown, earlier)
    remember_not_valid(context, statement, shown)
    if context.exclusive is not None and not takes_weaker_lock(statement):
        context.exclusive.setdefault(table, shown.rstrip("; "))


def concurrently(statement: Any) -> bool:
    """CREATE INDEX or DROP INDEX CONCURRENTLY, which PostgreSQL refuses in a transaction."""
    return isinstance(statement, (pg.IndexStmt, pg.DropStmt)) and bool(statement.concurrent)


def fails_in_transaction(what: str) -> str:
    return (f"{what} cannot run inside a transaction block, and this migration is atomic (one "
            f"transaction): the migration will fail.")  # fmt: skip


def held_exclusive(context: OperationContext, *tables: str) -> str | None:
    """How to name the earlier statement of this transaction that holds one of
    these tables under ACCESS EXCLUSIVE, or None."""
    for table in tables:
        statement = (context.exclusive or {}).get(table)
        if statement:
            return statement if len(statement) <= 80 else f"{statement[:79]}…"
    return None


def under_held_lock(work: str, held: str) -> str:
    return (f"{work} under the ACCESS EXCLUSIVE lock that {held} took earlier in this migration: reads "
            f"and writes wait until it commits.")  # fmt: skip


def added_constraints(statement: Any, kind: ConstrType) -> list[Any]:
    return [
        cmd.def_
        for cmd in statement.cmds
        if cmd.subtype == AlterTableType.AT_AddConstraint and cmd.def_.contype == kind
    ]


def check_postgresql_alter_table(
    context: OperationContext, statement: Any, table: str, shown: str, earlier: list[Any]
) -> Iterator[Raised]:
    where = f"{table} ({size(context, table)})"
    foreign_keys = [
        c for c in added_constraints(statement, ConstrType.CONSTR_FOREIGN) if not c.skip_validation
    ]
    if foreign_keys:
        referenced = str(foreign_keys[0].pktable.relname)
        held = held_exclusive(context, table, referenced)
        scan = f"Adding the foreign key scans {where} to validate it"
        message = (under_held_lock(scan, held) if held else f"{scan}, holding a SHARE ROW EXCLUSIVE lock "
                   f"on it and on {referenced} (writes to both wait).")  # fmt: skip
        yield Raised("DBT202", message, shown)
    for cmd in statement.cmds:
        # PostgreSQL 12+ skips the scan where a validated CHECK (column IS NOT NULL) proves it.
        if cmd.subtype == AlterTableType.AT_SetNotNull and not not_null_proven(
            context, table, str(cmd.name), earlier
        ):
            yield Raised("DBT203", f"SET NOT NULL on {cmd.name} scans {where} under an ACCESS "
                   f"EXCLUSIVE lock (reads and writes wait).", shown)  # fmt: skip
    if any(not c.skip_validation for c in added_constraints(statement, ConstrType.CONSTR_CHECK)):
        yield Raised("DBT204", f"The CHECK constraint is validated against every row of {where} under an "
               f"ACCESS EXCLUSIVE lock (reads and writes wait).", shown)  # fmt: skip
    yield from validated_in_same_transaction(context, statement, where, shown)
    yield from check_index_builds(statement, where, shown)
    yield from check_rewrites(context, statement, table, where, shown)


def locks_existing(context: OperationContext, table: str) -> bool:
    """A table the same migration creates is empty and unused: locking it costs nothing."""
    return table not in context.created_in_migration and context.facts.exists(table)


def size(context: OperationContext, table: str) -> str:
    _count, rows = context.facts.rows(table)
    return f"{rows} rows"
