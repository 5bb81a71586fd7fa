"""PostgreSQL: check a restored table's foreign keys once per constraint, not once per row.

Django's foreign keys on PostgreSQL are DEFERRABLE INITIALLY DEFERRED, so a
restore that inserts a million rows queues a million trigger events, and the
check at commit runs them one by one (about a quarter of a 1M-row restore,
measured in issue 11). For a table that is empty when the load starts (every
table of a --replace, or an empty one in a merge) the same guarantee costs
one validating join per constraint: its foreign keys are dropped inside the
restore's transaction and added back, exactly as they were, after the load.

`ALTER TABLE … ADD CONSTRAINT` with the definition PostgreSQL itself prints
(pg_get_constraintdef: columns, referenced table, MATCH, ON DELETE/UPDATE,
DEFERRABLE/INITIALLY, NOT VALID) validates every row, and PostgreSQL's DDL is
transactional, so all-or-nothing still holds: any failure rolls the whole
restore back, the constraints with it. A constraint's comment is put back too.

Set aside only when it cannot change what is restored: constraints of plain
tables (not partitioned, not inherited by a partition), validated ones (a
NOT VALID constraint, added back, would not check the restored rows that it
checks as they are inserted; it stays in place), and only if the drop
succeeds at once. And only when it locks nothing beyond the restore: the
drop takes ACCESS EXCLUSIVE on the referenced table too, so a table that
refers to one that is neither empty nor being replaced (a merge into an
empty table of activity whose users hold rows) keeps its constraints, and
the app can go on reading those users while the restore runs. Without
owner rights, or with a lock held elsewhere for longer than
DBTOOLS['LOCK_TIMEOUT'], the drop is undone (a savepoint) and the restore
checks row by row as before.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from ..backends import pg_loads
from ..exceptions import RestoreError


@dataclass(frozen=True)
class ForeignKey:
    schema: str
    table: str
    name: str
    definition: str  # pg_get_constraintdef(): everything after ADD CONSTRAINT <name>
    comment: str | None

    def on(self, connection: BaseDatabaseWrapper) -> str:
        quote = connection.ops.quote_name
        return f"{quote(self.schema)}.{quote(self.table)}"


CONSTRAINTS_SQL = """
SELECT n.nspname, c.relname, con.conname, pg_get_constraintdef(con.oid),
       obj_description(con.oid, 'pg_constraint'),
       c.relkind = 'r' AND con.conparentid = 0 AND con.conislocal AND con.coninhcount = 0,
       con.convalidated,
       con.confrelid IN (SELECT to_regclass(quote_ident(t)) FROM unnest(%(tables)s::text[]) AS t)
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE con.contype = 'f'
  AND con.conrelid IN (SELECT to_regclass(quote_ident(t)) FROM unnest(%(tables)s::text[]) AS t)
ORDER BY n.nspname, c.relname, con.conname
"""


def foreign_keys_of(connection: BaseDatabaseWrapper, db_tables: Sequence[str]) -> list[ForeignKey]:
    """The foreign keys defined on these tables that can be set aside: all of a
    table's, or none of them (a table with one that cannot is left as it is).

    Dropping a foreign key locks the table it refers to as well, ACCESS
    EXCLUSIVE until the restore commits: so a table is set aside only if
    every table it refers to is one of these (empty or being replaced), never
    one that holds live rows outside what this restore rewrites."""
    with connection.cursor() as cursor:
        cursor.execute(CONSTRAINTS_SQL, {"tables": list(db_tables)})
        rows = cursor.fetchall()
    unsafe = {
        (schema, table)
        for schema, table, *_, plain, validated, refers_within in rows
        if not plain or (validated and not refers_within)  # NOT VALID ones are never dropped
    }
    return [
        ForeignKey(schema, table, name, definition, comment)
        for schema, table, name, definition, comment, _, validated, _ in rows
        if (schema, table) not in unsafe and validated
    ]


@contextmanager
def checked_once(connection: BaseDatabaseWrapper, db_tables: Sequence[str]) -> Iterator[int]:
    """Inside a transaction: drop these tables' foreign keys for the body, then
    add them back, validating each once. Yields how many were set aside (0: none
    could be, and the rows are checked one by one as without this)."""
    keys = foreign_keys_of(connection, db_tables) if db_tables else []
    if keys and not _drop(connection, keys):
        keys = []
    yield len(keys)
    if not keys:
        return
    with connection.cursor() as cursor:
        # Run the deferred checks queued so far (a --replace's DELETEs queue some
        # for the references into the emptied tables) as the commit would: no
        # table with events pending can be altered.
        try:
            with transaction.atomic(using=connection.alias):
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        except IntegrityError as exc:
            raise RestoreError(
                f"After loading, a foreign key points at a row that does not exist: "
                f"{' '.join(str(exc).split()).rstrip('.')}. Either a restored row refers to a row "
                f"that is in neither the backup nor the database (the backup may be partial: "
                f"restore the referenced tables too), or rows the backup does not hold refer "
                f"to rows a --replace removed (restore those tables too).",
                rolled_back=True,
            ) from exc
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        for key in keys:
            try:
                with transaction.atomic(using=connection.alias):
                    cursor.execute(
                        f"ALTER TABLE {key.on(connection)} ADD CONSTRAINT "
                        f"{connection.ops.quote_name(key.name)} {key.definition}"
                    )
            except IntegrityError as exc:
                raise RestoreError(
                    f"After loading, a foreign key points at a row that does not exist: table "
                    f"{key.table}, constraint {key.name}: "
                    f"{' '.join(str(exc).split()).rstrip('.')}. The backup may be partial (--only/--exclude "
                    f"when it was taken) or rows it refers to were removed; restore the referenced "
                    f"tables too, or use --replace.",
                    rolled_back=True,
                ) from exc
            if key.comment is not None:
                # COMMENT takes no bind parameter, and a parameter would make
                # the driver read a % in the name as a placeholder: the
                # comment goes in as a quoted literal, with no parameters.
                cursor.execute(
                    f"COMMENT ON CONSTRAINT {connection.ops.quote_name(key.name)} "
                    f"ON {key.on(connection)} IS {pg_loads.literal(key.comment, connection)}"
                )


def _drop(connection: BaseDatabaseWrapper, keys: list[ForeignKey]) -> bool:
    """Drop them all in a savepoint, or none: False if any drop failed."""
    quote = connection.ops.quote_name
    return pg_loads.at_once(
        connection,
        [f"ALTER TABLE {key.on(connection)} DROP CONSTRAINT {quote(key.name)}" for key in keys],
    )
