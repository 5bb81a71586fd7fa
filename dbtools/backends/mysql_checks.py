"""MySQL and MariaDB: what a restore reads back before it commits (used through
backends.mysql): every foreign key of the restored tables, and each table's
row count.

Right after a bulk load InnoDB keeps most changes to a big table's secondary
indexes in its change buffer and merges them into each page as the page is
read: a query that reads a secondary index (COUNT(*) and Django's foreign-key
check take the smallest one) pays for merging the whole index at once,
minutes at 5M rows on the default buffer pool. The clustered index was
written in key order and reads back at disk speed, so both read it (FORCE
INDEX (PRIMARY)), each table once: all of its foreign keys are checked in one
pass. The keys themselves come from information_schema in one query, not in
several per table as Django's introspection asks: the same foreign keys
Django checks (those into this database's own tables).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import IntegrityError
from django.db.backends.base.base import BaseDatabaseWrapper

KEYS_SQL = """
SELECT TABLE_NAME, COLUMN_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME
FROM information_schema.KEY_COLUMN_USAGE
WHERE TABLE_SCHEMA = DATABASE() AND (CONSTRAINT_NAME = 'PRIMARY' OR (TABLE_NAME IN ({marks})
     AND REFERENCED_TABLE_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME IS NOT NULL
     AND REFERENCED_COLUMN_NAME IS NOT NULL))
ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION
"""


@dataclass
class Keys:
    """A table's primary key columns, and each foreign-key column with the
    table and column it references (one per column, as Django checks them)."""

    primary: list[str] = field(default_factory=list)
    references: list[tuple[str, str, str]] = field(default_factory=list)


def table_keys(connection: BaseDatabaseWrapper, db_tables: Sequence[str]) -> dict[str, Keys]:
    """The keys of `db_tables` (and the primary keys of every table, which the
    references need), each table by its own name only: information_schema
    compares names regardless of case and accents, and another table ("Foo",
    "café") is outside the check. Where the server folds names to lower case
    (lower_case_table_names), a name matches its folded form."""
    found: dict[str, Keys] = {}
    if not db_tables:
        return found
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@lower_case_table_names")
        (folded,) = cursor.fetchone()
        named = {str(n).lower() if folded else str(n): str(n) for n in db_tables}
        cursor.execute(KEYS_SQL.format(marks=", ".join(["%s"] * len(db_tables))), list(db_tables))
        for table, column, constraint, target_table, target_column in cursor.fetchall():
            name = named.get(table.lower() if folded else table, table)
            keys = found.setdefault(name, Keys())
            if constraint == "PRIMARY":
                keys.primary.append(column)
            elif name in db_tables:
                keys.references.append((column, target_table, target_column))
    return found


def check_foreign_keys(connection: BaseDatabaseWrapper, db_tables: Sequence[str]) -> None:
    """Raise IntegrityError with Django's message for a row of these tables
    whose foreign key points at no row (where several do, the first row by
    primary key of one pass, which may not be the one Django would name). A
    table without a primary key is skipped, as Django's check skips it."""
    keys = table_keys(connection, db_tables)
    for db_table in db_tables:
        own = keys.get(db_table)
        if own is None or not own.primary or not own.references:
            continue
        # References to a one-column primary key match one row at most, so they
        # are joined together; any other (a unique or non-unique column, part of
        # a composite key) alone, so that no join multiplies the rows.
        together = [r for r in own.references if keys.get(r[1], Keys()).primary == [r[2]]]
        groups = [together] if together else []
        groups += [[r] for r in own.references if r not in together]
        for group in groups:
            dangling(connection, db_table, own.primary[0], group)


def dangling(
    connection: BaseDatabaseWrapper,
    db_table: str,
    pk: str,
    references: list[tuple[str, str, str]],
) -> None:
    """One pass over `db_table` by its primary key, checking `references`."""
    quote = connection.ops.quote_name
    joins, missing, shown = [], [], [f"r.{quote(pk)}"]
    for i, (column, target_table, target_column) in enumerate(references):
        joins.append(
            f"LEFT JOIN {quote(target_table)} AS t{i} "
            f"ON r.{quote(column)} = t{i}.{quote(target_column)}"
        )
        missing.append(f"(r.{quote(column)} IS NOT NULL AND t{i}.{quote(target_column)} IS NULL)")
        shown += [f"r.{quote(column)}", missing[-1]]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(shown)} FROM {quote(db_table)} AS r FORCE INDEX (PRIMARY) "
            f"{' '.join(joins)} WHERE {' OR '.join(missing)} LIMIT 1"
        )
        bad = cursor.fetchone()
    if bad is None:
        return
    for i, (column, target_table, target_column) in enumerate(references):
        value, is_dangling = bad[1 + 2 * i], bad[2 + 2 * i]
        if is_dangling:
            raise IntegrityError(
                f"The row in table '{db_table}' with primary key '{bad[0]}' has an "
                f"invalid foreign key: {db_table}.{column} contains a value '{value}' "
                f"that does not have a corresponding value in {target_table}.{target_column}."
            )


def count_rows(connection: BaseDatabaseWrapper, db_table: str) -> int:
    quoted = connection.ops.quote_name(db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SHOW INDEX FROM {quoted} WHERE Key_name = 'PRIMARY'")
        hint = " FORCE INDEX (PRIMARY)" if cursor.fetchall() else ""
        cursor.execute(f"SELECT COUNT(*) FROM {quoted}{hint}")
        return int(cursor.fetchone()[0])
