"""Rolling a failed migration back to the state a backup recorded: migrate back
with Django's own `migrate` (so its signals fire), undo what a half-applied
migration left, restore the data with --replace, then compare the schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.management import call_command
from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
from django.db.migrations.state import ProjectState

from ..archive import ArchiveReader
from ..archive.format import unsafe_for_rollback
from ..display import sentence
from ..exceptions import ArchiveError, DbtoolsError, MigrationError, render
from ..interrupts import retell
from ..restore import RestoreResult, prepare_restore, restore_database
from ..storage import BackupFile
from .leftovers import (
    Leftover,
    leftover_of,
    leftover_still_there,
    schema_shows,
    still_missing,
    without_leftovers,
)
from .run import one_line
from .schema import Difference, Schema, compare, drop_index, read_schema


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
    backup_state = backup_migrations(backup)
    connection = connections[using]
    executor = MigrationExecutor(connection)
    targets = rollback_targets(executor, backup_state)
    refuse_irreversible(executor.migration_plan(targets) if targets else [])
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
    migrate_back(targets, connection, failed, backup, before, verbosity, stdout)
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
    result.restore = restore_backup(backup, connection, failed, before)
    compare_schema(result, connection, recorded)
    return result


def backup_migrations(backup: BackupFile) -> dict[str, list[str]]:
    """The migrations the backup recorded as applied, per app; refused for a
    backup that cannot put the data back as it was."""
    try:
        with ArchiveReader(backup) as reader:
            meta = reader.meta
    except ArchiveError as exc:  # e.g. encrypted, and no identity given
        raise MigrationError(
            f"The backup cannot be read, so nothing was rolled back: {exc}"
        ) from exc
    unsafe = unsafe_for_rollback(meta)
    if unsafe:
        raise MigrationError(
            f"The backup {backup.name} cannot be used for a rollback: {unsafe}. Nothing was "
            f"rolled back. Roll back from a whole, unmasked backup, such as the pre-migrate "
            f"backup safemigrate took."
        )
    return dict(meta.get("migrations", {}))


def refuse_irreversible(steps: list[tuple[Any, bool]]) -> None:
    """Before anything changes: every migration to unapply must have a reverse."""
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


def migrate_back(
    targets: list[tuple[str, str | None]],
    connection: BaseDatabaseWrapper,
    failed: str | None,
    backup: BackupFile,
    before: set[tuple[str, str]],
    verbosity: int,
    stdout: Any,
) -> None:
    """Django's own migrate back to each target, so its signals fire as for any migrate."""
    for target_app, target in targets:
        try:
            call_command(
                "migrate", target_app, target or "zero", database=connection.alias,
                interactive=False, verbosity=verbosity, stdout=stdout, stderr=stdout,
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


def restore_backup(
    backup: BackupFile,
    connection: BaseDatabaseWrapper,
    failed: str | None,
    before: set[tuple[str, str]],
) -> RestoreResult:
    """The backup's data with --replace, once the schema is at the backup's migrations."""
    try:
        return restore_database(prepare_restore(backup, using=connection.alias), mode="replace")
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
    """The restore's error says 'nothing was changed' of its own transaction;
    within a rollback that has already migrated, it says that the restore
    wrote nothing, from the error's fields."""
    if isinstance(exc, DbtoolsError) and exc.changed is False:
        said = render(exc.problem, "The restore wrote nothing (it was rolled back).", exc.fix)
        return " ".join([*said.split(), *" ".join(exc.details).split()])
    return sentence(one_line(exc))


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
