"""The parts of safemigrate that are not prompts: the lock, running Django's
own migrate, and rolling a failed migration back to the backup's state."""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration
from django.db.migrations.state import ProjectState

from .archive import ArchiveReader
from .backup import applied_migrations
from .exceptions import MigrationError
from .restore import RestoreResult, prepare_restore, restore_database
from .schema import Difference, Schema, compare, drop_index, read_schema

LOCK_NAME = "dbtools.safemigrate"
LOCK_KEY = int.from_bytes(hashlib.sha256(LOCK_NAME.encode()).digest()[:8], "big", signed=True)
BUSY = "Another safemigrate is already running on this database; wait for it to finish, then run this again."


def server_lock_name(connection: BaseDatabaseWrapper) -> str:
    """MariaDB/MySQL's GET_LOCK names are server-wide (PostgreSQL's advisory
    locks are per database): the database's name goes in, hashed to fit the
    64-character limit."""
    database = str(connection.settings_dict["NAME"])
    return f"{LOCK_NAME}.{hashlib.sha256(database.encode()).hexdigest()[:32]}"


@contextmanager
def migration_lock(using: str) -> Iterator[None]:
    """One safemigrate per database at a time.

    PostgreSQL: a transaction-scoped advisory lock held by a second connection
    for the whole run (safe through a transaction pooler). MariaDB/MySQL:
    GET_LOCK on a second connection. SQLite: an exclusive lock on a file
    next to the database.
    """
    connection = connections[using]
    if connection.vendor == "sqlite":
        name = str(connection.settings_dict["NAME"])
        if name == ":memory:" or name.startswith("file:"):
            yield
            return
        with open(name + ".safemigrate.lock", "w") as lock_file:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise MigrationError(BUSY) from None
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
        return
    holder = connections.create_connection(using)
    try:
        with holder.cursor() as cursor:
            if holder.vendor == "postgresql":
                holder.set_autocommit(False)
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [LOCK_KEY])
            else:
                cursor.execute("SELECT GET_LOCK(%s, 0)", [server_lock_name(holder)])
            (acquired,) = cursor.fetchone()
        if not acquired:
            raise MigrationError(BUSY)
        yield
    finally:
        try:
            if holder.vendor == "postgresql":
                holder.rollback()  # ends the transaction, and with it the lock
            elif holder.connection is not None:
                with holder.cursor() as cursor:
                    cursor.execute("SELECT RELEASE_LOCK(%s)", [server_lock_name(holder)])
        finally:
            holder.close()


@dataclass
class MigrateOutcome:
    ok: bool
    error: BaseException | None
    applied: list[str]  # migrations this run applied
    failed: str | None  # the migration that failed, if one did
    unapplied: list[str] = field(default_factory=list)  # migrations this run unapplied (going back)


def run_migrate(
    using: str,
    app_label: str | None,
    migration_name: str | None,
    planned: list[tuple[Migration, bool]],
    stdout: Any,
    stderr: Any,
    verbosity: int,
) -> MigrateOutcome:
    """Django's own migrate, output shown as usual; a failure is returned, not raised."""
    before = _applied_keys(using)
    args = [a for a in (app_label, migration_name) if a]
    error: BaseException | None = None
    try:
        call_command(
            "migrate",
            *args,
            database=using,
            interactive=False,
            verbosity=verbosity,
            stdout=stdout,
            stderr=stderr,
        )
    except (Exception, SystemExit) as exc:
        error = exc
    after = _applied_keys(using)
    applied = [
        f"{m.app_label}.{m.name}"
        for m, backwards in planned
        if not backwards and (m.app_label, m.name) in after - before
    ]
    unapplied = [
        f"{m.app_label}.{m.name}"
        for m, backwards in planned
        if backwards and (m.app_label, m.name) in before - after
    ]
    failed = None
    if error is not None:
        # The first step not done: not applied (forwards) or still applied (backwards).
        failed = next(
            (
                f"{m.app_label}.{m.name}"
                for m, backwards in planned
                if ((m.app_label, m.name) in after) == backwards
            ),
            None,
        )
    return MigrateOutcome(error is None, error, applied, failed, unapplied)


def _applied_keys(using: str) -> set[tuple[str, str]]:
    return {
        (app, name)
        for app, names in applied_migrations(connections[using]).items()
        for name in names
    }


@dataclass
class RollbackResult:
    unapplied: list[str]
    undone_partial: list[str] = field(default_factory=list)
    restore: RestoreResult | None = None
    tables_compared: int = 0  # tables whose schema was compared with the one recorded
    dropped_indexes: list[str] = field(default_factory=list)  # left by the failure, dropped
    schema_differences: list[Difference] = field(default_factory=list)  # still there

    @property
    def schema_as_it_was(self) -> bool:
        """True only when a comparison was made and found nothing."""
        return bool(self.tables_compared) and not self.schema_differences


def rollback_targets(
    executor: MigrationExecutor, backup_state: dict[str, list[str]]
) -> list[tuple[str, str | None]]:
    """Per app whose applied migrations differ from the backup's: migrate back to the backup's last one."""
    loader = executor.loader
    now = {key for key in loader.applied_migrations}
    wanted = {(app, name) for app, names in backup_state.items() for name in names}
    targets: list[tuple[str, str | None]] = []
    for app in sorted(loader.migrated_apps):
        current = {key for key in now if key[0] == app}
        backed_up = {key for key in wanted if key[0] == app}
        if current == backed_up:
            continue
        if not backed_up:
            targets.append((app, None))
            continue
        order = [
            key for leaf in loader.graph.leaf_nodes(app) for key in loader.graph.forwards_plan(leaf)
        ]
        last = [key for key in order if key in backed_up][-1]
        targets.append(last)
    return targets


def rollback(
    backup: Path, using: str, failed: str | None, recorded: Schema | None = None
) -> RollbackResult:
    """Bring schema and data back to what `backup` recorded.

    Checks first that every migration to undo can be undone, and changes
    nothing if one cannot. Where DDL is not transactional (MariaDB/MySQL, or
    a migration with atomic = False), a failed migration can have left its
    first operations applied but itself unrecorded: those are found by looking
    at the schema and undone first. With `recorded` (the schema read before
    migrating), the schema is compared afterwards: indexes the failure left
    are dropped, and whatever else differs is returned, never hidden.
    """
    with ArchiveReader(backup) as reader:
        backup_state = reader.meta.get("migrations", {})
    connection = connections[using]
    executor = MigrationExecutor(connection)
    targets = rollback_targets(executor, backup_state)
    steps = executor.migration_plan(targets) if targets else []
    stuck = [
        f"{migration.app_label}.{migration.name} ({operation.describe()})"
        for migration, backwards in steps
        if backwards
        for operation in migration.operations
        if not operation.reversible
    ]
    if stuck:
        raise MigrationError(
            "Cannot roll back: these migrations cannot be unapplied: "
            + "; ".join(stuck)
            + ". Nothing was changed. "
            "Give them a reverse (reverse_code / reverse_sql), or restore the backup into a database "
            "migrated to the backup's state by hand."
        )
    result = RollbackResult(
        unapplied=[f"{m.app_label}.{m.name}" for m, backwards in steps if backwards]
    )
    if failed:
        app_label, name = failed.split(".", 1)
        migration = executor.loader.graph.nodes[(app_label, name)]
        if not connection.features.can_rollback_ddl or not migration.atomic:
            result.undone_partial = undo_partial_migration(
                executor, app_label, name, connection, recorded
            )
    if targets:
        executor = MigrationExecutor(connection)
        executor.migrate(targets)
    result.restore = restore_database(prepare_restore(backup, using=using), mode="replace")
    if recorded is not None:
        differences = compare(recorded, read_schema(connection))
        for difference in differences:
            if difference.extra_index:
                drop_index(connection, difference.table, difference.extra_index)
                result.dropped_indexes.append(f"{difference.table}.{difference.extra_index}")
        if result.dropped_indexes:
            differences = compare(recorded, read_schema(connection))
        result.schema_differences = differences
        result.tables_compared = len(recorded)
    return result


def undo_partial_migration(
    executor: MigrationExecutor,
    app_label: str,
    name: str,
    connection: BaseDatabaseWrapper,
    recorded: Schema | None = None,
) -> list[str]:
    """Undo the operations of an unrecorded, half-applied migration that the schema shows were applied."""
    migration = executor.loader.graph.nodes[(app_label, name)]
    state = executor.loader.project_state((app_label, name), at_end=False)
    applied: list[tuple[Any, ProjectState, ProjectState]] = []
    for operation in migration.operations:
        after = state.clone()
        operation.state_forwards(app_label, after)
        if schema_shows(operation, app_label, state, after, connection, recorded):
            applied.append((operation, state, after))
        state = after
    undone = []
    for operation, before, after in reversed(applied):
        try:
            with connection.schema_editor(atomic=False) as editor:
                operation.database_backwards(app_label, editor, after, before)
        except DatabaseError as exc:
            raise MigrationError(
                f"Could not undo '{operation.describe()}' of the half-applied migration {app_label}.{name}: {exc}. "
                f"Undo it by hand, then restore the backup with `restoredb --replace`."
            ) from exc
        undone.append(operation.describe())
    return undone


def schema_shows(
    operation: Any,
    app_label: str,
    before: ProjectState,
    after: ProjectState,
    connection: BaseDatabaseWrapper,
    recorded: Schema | None = None,
) -> bool:
    """Has this operation's change reached the database? (Only for operations whose
    effect the schema shows; others are never undone here.)"""
    from django.db.migrations import operations as ops

    if isinstance(operation, ops.AddIndex):  # AddIndexConcurrently too
        table = after.apps.get_model(app_label, operation.model_name)._meta.db_table
        with connection.cursor() as cursor:
            return operation.index.name in connection.introspection.get_constraints(cursor, table)
    if isinstance(operation, ops.AlterField) and recorded is not None:
        model = before.apps.get_model(app_label, operation.model_name)
        table, column = model._meta.db_table, model._meta.get_field(operation.name).column
        was = recorded.get(table)
        now = read_schema(connection).get(table)
        return bool(was and now and was.columns.get(column) != now.columns.get(column))

    def columns(state: ProjectState, model_name: str) -> set[str] | None:
        model = state.apps.get_model(app_label, model_name)
        with connection.cursor() as cursor:
            if model._meta.db_table not in connection.introspection.table_names(cursor):
                return None
            return {
                c.name
                for c in connection.introspection.get_table_description(
                    cursor, model._meta.db_table
                )
            }

    def table_exists(state: ProjectState, model_name: str) -> bool:
        model = state.apps.get_model(app_label, model_name)
        with connection.cursor() as cursor:
            return model._meta.db_table in connection.introspection.table_names(cursor)

    if isinstance(operation, ops.CreateModel):
        return table_exists(after, operation.name)
    if isinstance(operation, ops.DeleteModel):
        return not table_exists(before, operation.name)
    if isinstance(operation, ops.AddField):
        column = (
            after.apps.get_model(app_label, operation.model_name)
            ._meta.get_field(operation.name)
            .column
        )
        return column in (columns(after, operation.model_name) or set())
    if isinstance(operation, ops.RemoveField):
        column = (
            before.apps.get_model(app_label, operation.model_name)
            ._meta.get_field(operation.name)
            .column
        )
        return column not in (columns(before, operation.model_name) or {column})
    if isinstance(operation, ops.RenameField):
        column = (
            after.apps.get_model(app_label, operation.model_name)
            ._meta.get_field(operation.new_name)
            .column
        )
        old = (
            before.apps.get_model(app_label, operation.model_name)
            ._meta.get_field(operation.old_name)
            .column
        )
        present = columns(after, operation.model_name) or set()
        return column != old and column in present
    return False
