"""Rolling a failed migration back to the state a backup recorded: migrate back
with Django's own `migrate` (so its signals fire), undo what a half-applied
migration left, restore the data with --replace, then compare the schema."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from django.core.management import call_command
from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration
from django.db.migrations.recorder import MigrationRecorder
from django.db.migrations.state import ProjectState

from ..archive import ArchiveReader
from ..exceptions import ArchiveError, DbtoolsError, MigrationError
from ..interrupts import retell
from ..restore import RestoreResult, prepare_restore, restore_database
from ..storage import BackupFile
from .schema import Difference, Schema, TableSchema, compare, drop_index, read_schema


@dataclass
class RollbackResult:
    unapplied: list[str]
    undone_partial: list[str] = field(default_factory=list)
    restore: RestoreResult | None = None
    tables_compared: int = 0  # tables whose schema was compared with the one recorded
    dropped_indexes: list[str] = field(default_factory=list)  # left by the failure, dropped
    schema_differences: list[Difference] = field(default_factory=list)  # still there
    # Set when the data was left alone because the database itself undid the
    # failed migration: the reason, to show the user.
    data_left_alone: str | None = None
    # What an earlier, killed run left; the schema was compared with the one
    # the recorded migrations make, which has none of them.
    leftovers: list[Leftover] = field(default_factory=list)

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


class RollbackIncomplete(MigrationError):
    """The rollback changed the database and then could not finish; the message
    says what it did and what is left."""


def rollback(
    backup: BackupFile,
    using: str,
    failed: str | None,
    recorded: Schema | None = None,
    stdout: Any = None,
    verbosity: int = 0,
    leftovers: list[Leftover] | None = None,
) -> RollbackResult:
    """Bring schema and data back to what `backup` recorded.

    Checks first that every migration to undo can be undone, and changes
    nothing if one cannot. Where DDL is not transactional (MariaDB/MySQL, or
    a migration with atomic = False), a failed migration can have left its
    first operations applied but itself unrecorded: those are found by looking
    at the schema and undone first. Migrating back goes through Django's own
    `migrate`, so pre_migrate/post_migrate receivers run as for any migrate.
    With `recorded` (the schema read before migrating), the schema is compared
    afterwards: indexes the failure left are dropped, and whatever else
    differs is returned, never hidden. `leftovers` are what an earlier, killed
    run left (`find_leftovers`, before migrating): the comparison is then with
    the schema the recorded migrations make, `recorded` without them.
    """
    try:
        with ArchiveReader(backup) as reader:
            backup_state = reader.meta.get("migrations", {})
    except ArchiveError as exc:  # e.g. encrypted, and no identity given
        raise MigrationError(
            f"The backup cannot be read, so nothing was rolled back: {exc}"
        ) from exc
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
            + ". The rollback changed nothing. "
            "Give them a reverse (reverse_code / reverse_sql), or restore the backup into a database "
            "migrated to the backup's state by hand."
        )
    result = RollbackResult(unapplied=[], leftovers=list(leftovers or []))
    if failed:
        app_label, name = failed.split(".", 1)
        migration = executor.loader.graph.nodes[(app_label, name)]
        if not connection.features.can_rollback_ddl or not migration.atomic:
            result.undone_partial = undo_partial_migration(
                executor, app_label, name, connection, recorded
            )
        elif not targets:
            # Its one transaction was rolled back by the database, and the applied
            # migrations are the backup's: nothing of this run is left to undo. A
            # --replace restore would only throw away what others wrote since the backup.
            result.data_left_alone = (
                f"{failed} is atomic and this database rolls back DDL, so what it did went with its "
                f"transaction, and the applied migrations are the backup's"
            )
            compare_schema(result, connection, recorded)
            return result
    before = applied_keys(connection)
    for target_app, target in targets:
        try:
            call_command(
                "migrate", target_app, target or "zero", database=using, interactive=False,
                verbosity=verbosity, stdout=stdout, stderr=stdout,
            )  # fmt: skip
        except KeyboardInterrupt as exc:
            back = "; ".join(f"`manage.py migrate {a} {t or 'zero'}`" for a, t in targets)
            retell(exc, (
                f"{interrupted_rollback(failed, 'migrating back')} {unapplied_so_far(before, connection)} "
                f"The data was not restored. To finish: {back}, then `manage.py restoredb --replace "
                f"--file {backup.name}`."
            ))  # fmt: skip
            raise
        except Exception as exc:
            raise RollbackIncomplete(
                f"Migrating {target_app} back to {target or 'zero'} failed: {one_line(exc)}. "
                f"{unapplied_so_far(before, connection)} The data was not restored. Fix the cause, "
                f"migrate back by hand (`manage.py migrate {target_app} {target or 'zero'}`), then "
                f"`manage.py restoredb --replace --file {backup.name}`."
            ) from exc
    after = applied_keys(connection)
    result.unapplied = sorted(f"{app}.{name}" for app, name in before - after)
    wanted = {(app, name) for app, names in backup_state.items() for name in names}
    migrated_apps = MigrationExecutor(connection).loader.migrated_apps
    off = sorted(f"{a}.{n}" for a, n in after ^ wanted if a in migrated_apps)
    if off:
        raise RollbackIncomplete(
            f"After migrating back, the applied migrations still differ from the backup's: "
            f"{', '.join(off)}. {unapplied_so_far(before, connection)} The data was not restored. "
            f"Migrate to the backup's state by hand, then `manage.py restoredb --replace --file "
            f"{backup.name}`."
        )
    try:
        result.restore = restore_database(prepare_restore(backup, using=using), mode="replace")
    except KeyboardInterrupt as exc:
        retell(exc, (
            f"{interrupted_rollback(failed, 'restoring the data')} {unapplied_so_far(before, connection)} "
            f"The restore was rolled back, so the data is as migrating back left it. To finish: "
            f"`manage.py restoredb --replace --file {backup.name}`."
        ))  # fmt: skip
        raise
    except (DbtoolsError, DatabaseError) as exc:
        raise RollbackIncomplete(
            f"{unapplied_so_far(before, connection)} Then restoring the data failed: "
            f"{restore_cause(exc)} The schema is at the backup's migrations; the data is as "
            f"migrating back left it. Fix the cause, then `manage.py restoredb --replace --file "
            f"{backup.name}`."
        ) from exc
    compare_schema(result, connection, recorded)
    return result


def compare_schema(
    result: RollbackResult, connection: BaseDatabaseWrapper, recorded: Schema | None
) -> None:
    """Indexes the failure left are dropped; whatever else differs is kept in the result."""
    if recorded is None:
        return
    now = read_schema(connection)
    wanted = without_leftovers(recorded, result.leftovers, now)
    differences = compare(wanted, now)
    for difference in differences:
        if difference.extra_index and not leftover_of(difference, result.leftovers):
            drop_index(connection, difference.table, difference.extra_index)
            result.dropped_indexes.append(f"{difference.table}.{difference.extra_index}")
    if result.dropped_indexes:
        now = read_schema(connection)
        differences = compare(wanted, now)
    result.schema_differences = [
        Difference(d.table, leftover_still_there(found), d.extra_index, d.name)
        if (found := leftover_of(d, result.leftovers))
        else d
        for d in differences
    ] + [
        Difference(found.table, leftover_still_there(found), name=found.column)
        for found in result.leftovers
        if still_missing(found, now)
    ]
    result.tables_compared = len(wanted)


def applied_keys(connection: BaseDatabaseWrapper) -> set[tuple[str, str]]:
    return set(MigrationRecorder(connection).applied_migrations())


def interrupted_rollback(failed: str | None, step: str) -> str:
    return f"{failed or 'A migration'} had failed, and the rollback was interrupted while {step}."


def unapplied_so_far(before: set[tuple[str, str]], connection: BaseDatabaseWrapper) -> str:
    try:
        undone = sorted(f"{app}.{name}" for app, name in before - applied_keys(connection))
    except DatabaseError:
        return "`manage.py showmigrations` shows which migrations it unapplied."
    return (
        f"The rollback unapplied {', '.join(undone)}." if undone else "No migration was unapplied."
    )


def restore_cause(exc: BaseException) -> str:
    """The restore's own message says 'nothing was changed' of its own
    transaction; within a rollback that has already migrated, say what it means."""
    text = one_line(exc)
    text = re.sub(r"[Nn]othing was changed(: the restore was rolled back)?",
                  "the restore wrote nothing (it was rolled back)", text)  # fmt: skip
    return text if text.endswith(".") else text + "."


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


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
            raise RollbackIncomplete(
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


# Leftovers of a killed run ------------------------------------------------------------


@dataclass(frozen=True)
class Leftover:
    """A change of a migration not recorded as applied that the schema already
    shows: what a run killed (or failed and not rolled back) part-way through
    that migration leaves where DDL is not transactional."""

    migration: str  # "app.0003_name"
    operation: str  # the operation's own description
    table: str
    column: str | None = None  # AddField, RemoveField; RenameField: the new name
    index: str | None = None  # AddIndex
    old_column: str | None = None  # RenameField: the name the recorded migrations give it
    made: bool = True  # False: the operation removed something (RemoveField, DeleteModel)

    @property
    def name(self) -> str:
        if self.index:
            return f"index {self.table}.{self.index}"
        if self.column is None:
            return f"table {self.table}"
        if self.old_column:
            return f"column {self.table}.{self.column} (renamed from {self.old_column})"
        return f"column {self.table}.{self.column}"

    @property
    def thing(self) -> str:
        return self.name if self.made else f"missing {self.name}"

    def __str__(self) -> str:
        return f"{self.thing}: {self.operation} ({self.migration})"


LEFTOVERS_HEADING = (
    "Left by an earlier run: the database already has these changes of a migration that is not "
    "recorded as applied, as a run killed (or failed, not rolled back) part-way through it leaves "
    "them where DDL is not transactional. They are not part of the schema the recorded migrations "
    "make; migrating fails on them, and a rollback undoes them:"
)


def find_leftovers(
    connection: BaseDatabaseWrapper, steps: list[tuple[Migration, bool]]
) -> list[Leftover]:
    """The changes of the plan's unrecorded migrations that the schema already shows.

    Each forwards step's operations are followed from the project state the
    recorded migrations before it make; an operation whose effect is there
    (`schema_shows`) was applied by a run that never recorded the migration.
    AlterField is not judged: without the schema of before that run, a
    column's type says nothing about who set it.
    """
    loader = MigrationExecutor(connection).loader
    found: list[Leftover] = []
    for migration, backwards in steps:
        if backwards:
            continue
        app_label, key = migration.app_label, f"{migration.app_label}.{migration.name}"
        state = loader.project_state((app_label, migration.name), at_end=False)
        for operation in migration.operations:
            after = state.clone()
            operation.state_forwards(app_label, after)
            try:
                shown = migrates_here(operation, app_label, state, after, connection) and (
                    schema_shows(operation, app_label, state, after, connection)
                )
            except LookupError:  # a model another app's unrecorded migration makes
                shown = False
            if shown:
                found.append(leftover(operation, key, app_label, state, after))
            state = after
    return found


def migrates_here(
    operation: Any,
    app_label: str,
    before: ProjectState,
    after: ProjectState,
    connection: BaseDatabaseWrapper,
) -> bool:
    """Would the operation touch this database? An unmanaged or proxy model, or
    one the routers keep elsewhere, has tables that no migration here makes."""
    from django.db.migrations import operations as ops

    if isinstance(operation, ops.CreateModel):
        model = after.apps.get_model(app_label, operation.name)
    elif isinstance(operation, ops.DeleteModel):
        model = before.apps.get_model(app_label, operation.name)
    elif isinstance(
        operation, (ops.AddField, ops.RemoveField, ops.RenameField, ops.AddIndex)
    ):  # the operations `schema_shows` judges without an earlier schema
        model = before.apps.get_model(app_label, operation.model_name)
    else:
        return False
    return bool(operation.allow_migrate_model(connection.alias, model))


def leftover(
    operation: Any, key: str, app_label: str, before: ProjectState, after: ProjectState
) -> Leftover:
    from django.db.migrations import operations as ops

    def meta(state: ProjectState, model_name: str) -> Any:
        return state.apps.get_model(app_label, model_name)._meta

    text = str(operation.describe())
    if isinstance(operation, ops.AddIndex):
        table = meta(after, operation.model_name).db_table
        return Leftover(key, text, table, index=operation.index.name)
    if isinstance(operation, ops.CreateModel):
        return Leftover(key, text, meta(after, operation.name).db_table)
    if isinstance(operation, ops.DeleteModel):
        return Leftover(key, text, meta(before, operation.name).db_table, made=False)
    if isinstance(operation, ops.AddField):
        model = meta(after, operation.model_name)
        column = model.get_field(operation.name).column
        return Leftover(key, text, model.db_table, column)
    if isinstance(operation, ops.RemoveField):
        model = meta(before, operation.model_name)
        column = model.get_field(operation.name).column
        return Leftover(key, text, model.db_table, column, made=False)
    assert isinstance(operation, ops.RenameField)
    model = meta(after, operation.model_name)
    old = meta(before, operation.model_name).get_field(operation.old_name).column
    return Leftover(
        key, text, model.db_table, model.get_field(operation.new_name).column, old_column=old
    )


def without_leftovers(recorded: Schema, leftovers: list[Leftover], now: Schema) -> Schema:
    """The schema the recorded migrations make: `recorded` (read before
    migrating) without what an earlier run left. What that run removed is
    taken as it is `now`, after the rollback put it back: the recorded
    migrations make it, so only its presence is compared."""
    wanted = dict(recorded)
    for found in leftovers:
        table = wanted.get(found.table)
        if found.index:
            if table:
                constraints = {k: c for k, c in table.constraints.items() if c.name != found.index}
                wanted[found.table] = TableSchema(table.columns, constraints)
        elif found.column is None:
            if found.made:
                wanted.pop(found.table, None)
            elif found.table in now:
                wanted[found.table] = now[found.table]
        elif not table:
            continue
        elif found.old_column:
            renamed = {
                (found.old_column if name == found.column else name): (
                    replace(c, name=found.old_column) if name == found.column else c
                )
                for name, c in table.columns.items()
            }
            constraints = {
                k: replace(c, columns=tuple(
                    found.old_column if n == found.column else n for n in c.columns
                ))
                for k, c in table.constraints.items()
            }  # fmt: skip
            wanted[found.table] = TableSchema(renamed, constraints)
        elif found.made:
            columns = {n: c for n, c in table.columns.items() if n != found.column}
            constraints = {
                k: c for k, c in table.constraints.items() if found.column not in c.columns
            }
            wanted[found.table] = TableSchema(columns, constraints)
        elif found.table in now and found.column in now[found.table].columns:
            back = now[found.table]
            columns = {**table.columns, found.column: back.columns[found.column]}
            constraints = {
                **table.constraints,
                **{k: c for k, c in back.constraints.items() if found.column in c.columns},
            }
            wanted[found.table] = TableSchema(columns, constraints)
    return wanted


def leftover_of(difference: Difference, leftovers: list[Leftover]) -> Leftover | None:
    """The leftover a difference from the recorded migrations' schema is about, if any."""
    for found in leftovers:
        if found.table != difference.table:
            continue
        if found.column is None and found.index is None and difference.name is None:
            return found
        if difference.name in (found.index, found.column) and difference.name is not None:
            return found
    return None


def leftover_still_there(found: Leftover) -> str:
    if found.made:
        return (
            f"{found.name} is still there: a leftover of an earlier run that was killed (or "
            f"failed) while applying {found.migration}; it is not part of the schema the recorded "
            f"migrations make, so remove it"
        )
    return (
        f"{found.name} is still missing: an earlier run that was killed (or failed) while "
        f"applying {found.migration} removed it; the recorded migrations make it, so put it back"
    )


def still_missing(found: Leftover, now: Schema) -> bool:
    """Something an earlier run removed, and the rollback did not put back."""
    if found.made:
        return False
    if found.column is None:
        return found.table not in now
    return found.table in now and found.column not in now[found.table].columns
