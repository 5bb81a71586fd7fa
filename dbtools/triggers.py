"""Triggers on the restored tables are set aside while the rows go in.

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

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from django.db.backends.base.base import BaseDatabaseWrapper


@contextmanager
def triggers_set_aside(connection: BaseDatabaseWrapper, db_tables: Sequence[str]) -> Iterator[None]:
    if connection.vendor != "sqlite" or not db_tables:
        yield
        return
    marks = ", ".join(["%s"] * len(db_tables))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ({marks}) "
            f"ORDER BY name",
            list(db_tables),
        )
        found = cursor.fetchall()
        for name, _sql in found:
            cursor.execute(f"DROP TRIGGER {connection.ops.quote_name(name)}")
    yield  # on an error the transaction's rollback brings them back
    with connection.cursor() as cursor:
        for _name, sql in found:
            cursor.execute(sql)
