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
WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({marks})
AND (CONSTRAINT_NAME = 'PRIMARY' OR (REFERENCED_TABLE_SCHEMA = DATABASE()
     AND REFERENCED_TABLE_NAME IS NOT NULL AND REFERENCED_COLUMN_NAME IS NOT NULL))
ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION
"""


@dataclass
class Keys:
    """A table's primary key columns, and each foreign-key column with the
    table and column it references (one per column, as Django checks them)."""

    primary: list[str] = field(default_factory=list)
    references: list[tuple[str, str, str]] = field(default_factory=list)


def table_keys(connection: BaseDatabaseWrapper, db_tables: Sequence[str]) -> dict[str, Keys]:
    found: dict[str, Keys] = {name: Keys() for name in db_tables}
    if not db_tables:
        return found
    with connection.cursor() as cursor:
        cursor.execute(KEYS_SQL.format(marks=", ".join(["%s"] * len(db_tables))), list(db_tables))
        for table, column, constraint, target_table, target_column in cursor.fetchall():
            keys = found.setdefault(table, Keys())
            if constraint == "PRIMARY":
                keys.primary.append(column)
            else:
                keys.references.append((column, target_table, target_column))
    return found


def check_foreign_keys(connection: BaseDatabaseWrapper, db_tables: Sequence[str]) -> None:
    """Raise IntegrityError with Django's message for the first row of these
    tables whose foreign key points at no row. A table without a primary key
    is skipped, as Django's check skips it."""
    quote = connection.ops.quote_name
    for db_table, keys in table_keys(connection, db_tables).items():
        if not keys.primary or not keys.references:
            continue
        joins, missing, shown = [], [], [f"r.{quote(keys.primary[0])}"]
        for i, (column, target_table, target_column) in enumerate(keys.references):
            joins.append(
                f"LEFT JOIN {quote(target_table)} AS t{i} "
                f"ON r.{quote(column)} = t{i}.{quote(target_column)}"
            )
            missing.append(
                f"(r.{quote(column)} IS NOT NULL AND t{i}.{quote(target_column)} IS NULL)"
            )
            shown += [f"r.{quote(column)}", missing[-1]]
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {', '.join(shown)} FROM {quote(db_table)} AS r FORCE INDEX (PRIMARY) "
                f"{' '.join(joins)} WHERE {' OR '.join(missing)} LIMIT 1"
            )
            bad = cursor.fetchone()
        if bad is None:
            continue
        for i, (column, target_table, target_column) in enumerate(keys.references):
            value, dangling = bad[1 + 2 * i], bad[2 + 2 * i]
            if dangling:
                raise IntegrityError(
                    f"The row in table '{db_table}' with primary key '{bad[0]}' has an "
                    f"invalid foreign key: {db_table}.{column} contains a value '{value}' "
                    f"that does not have a corresponding value in {target_table}.{target_column}."
                )


def count_rows(connection: BaseDatabaseWrapper, db_table: str) -> int:
    keyed = bool(table_keys(connection, [db_table])[db_table].primary)
    hint = " FORCE INDEX (PRIMARY)" if keyed else ""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(db_table)}{hint}")
        return int(cursor.fetchone()[0])
