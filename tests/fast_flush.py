"""The flush after each transactional test, without redoing what is already so.

Django's TransactionTestCase empties every table after a test (TRUNCATE of all
of them on PostgreSQL, each a new file) and then sends post_migrate, whose
receivers make the content types and permissions again. Most tests write to
a few tables and never touch those two, so most of that work rebuilds what
is already there: it was about a sixth of the suite's time.

This flush leaves the same state: every table empty but those post_migrate
fills, which hold what post_migrate made. It empties only the tables that
hold rows, and keeps post_migrate's tables (and does not send it) when their
rows are exactly those it made after the last full flush; otherwise it does
the full flush and sends post_migrate, as Django does. The one difference
is the ids of the rows post_migrate makes, which a full flush would give
anew: no test relies on them.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.management import call_command
from django.core.management.color import no_style
from django.db import connections
from django.test.testcases import TransactionTestCase

# Per database alias: each post_migrate table's rows after the last full
# flush, and the tables those tables reference (emptying one of them would
# take post_migrate's rows with it, by CASCADE on PostgreSQL).
BASELINE: dict[str, tuple[dict[str, list[tuple[Any, ...]]], set[str]]] = {}


def table_rows(alias: str, table: str) -> list[tuple[Any, ...]]:
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
        return sorted(cursor.fetchall(), key=repr)


def tables_holding_rows(alias: str, tables: list[str]) -> list[str]:
    """Of `tables`, those holding a row: one query."""
    if not tables:
        return []
    connection = connections[alias]
    quote = connection.ops.quote_name
    probes = " UNION ALL ".join(
        f"SELECT {index} FROM (SELECT 1 AS x FROM {quote(table)} LIMIT 1) t{index}"
        for index, table in enumerate(tables)
    )
    with connection.cursor() as cursor:
        cursor.execute(probes)
        return [tables[row[0]] for row in cursor.fetchall()]


def full_flush(alias: str) -> None:
    call_command("flush", verbosity=0, interactive=False, database=alias, reset_sequences=False)
    connection = connections[alias]
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    filled = tables_holding_rows(alias, tables)
    # Transitively: TRUNCATE ... CASCADE of a table empties those that refer to
    # it, and those that refer to them.
    referenced: set[str] = set()
    pending = list(filled)
    with connection.cursor() as cursor:
        while pending:
            relations = connection.introspection.get_relations(cursor, pending.pop())
            for relation in relations.values():  # 6.1 adds on_delete to each
                if relation[1] not in referenced:
                    referenced.add(relation[1])
                    pending.append(relation[1])
    BASELINE[alias] = ({table: table_rows(alias, table) for table in filled}, referenced)


def flush(alias: str) -> None:
    baseline = BASELINE.get(alias)
    if baseline is None:
        full_flush(alias)
        return
    kept, referenced = baseline
    connection = connections[alias]
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    if not set(kept) <= set(tables):
        full_flush(alias)
        return
    holding = tables_holding_rows(alias, tables)
    emptied = [table for table in holding if table not in kept]
    if referenced & set(emptied) or any(table_rows(alias, t) != rows for t, rows in kept.items()):
        full_flush(alias)
        return
    if emptied:
        # CASCADE: PostgreSQL refuses to truncate a table another one references
        # unless that one is truncated too, even when it holds no rows.
        sql = connection.ops.sql_flush(
            no_style(), emptied, reset_sequences=False, allow_cascade=True
        )
        connection.ops.execute_sql_flush(sql)


ORIGINAL_TEARDOWN = TransactionTestCase._fixture_teardown


def fixture_teardown(self: TransactionTestCase) -> None:
    if self.available_apps is not None or self.serialized_rollback:
        ORIGINAL_TEARDOWN(self)
        return
    for alias in self._databases_names(include_mirrors=False):
        flush(alias)


def install() -> None:
    """DBTOOLS_TESTS_DJANGO_FLUSH=1 keeps Django's own flush (to rule this one out)."""
    if os.environ.get("DBTOOLS_TESTS_DJANGO_FLUSH") != "1":
        TransactionTestCase._fixture_teardown = fixture_teardown  # type: ignore[method-assign]
