"""What lies between the backup and this database: the migrations applied on
either side since (their renames, their data changes), and the time zone
settings the backup's date-times were written under."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import RenameField, RenameModel, RunPython, RunSQL


@dataclass(frozen=True)
class Rename:
    model: bool  # a RenameModel (else a RenameField)
    label: str  # the model's label, lower-case, before this step
    old: str  # model label or field name before this step
    new: str


def migration_steps(
    loader: MigrationLoader, backup_migrations: dict[str, list[str]]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The migrations between the backup's state and this database's, in the
    order they run: (applied here since the backup, applied in the backup's
    database but not here: to be undone, last first)."""
    backup_applied = {(app, name) for app, names in backup_migrations.items() for name in names}
    applied_now = set(loader.applied_migrations)
    since = _plan_order(loader, applied_now - backup_applied)
    behind = _plan_order(loader, (backup_applied - applied_now) & set(loader.graph.nodes))
    return since, list(reversed(behind))


def renames_between(
    loader: MigrationLoader, since: list[tuple[str, str]], behind: list[tuple[str, str]]
) -> list[Rename]:
    """Every RenameModel/RenameField from the backup's schema to this one: the
    migrations this database lacks undone (renamed back), then those it has since."""
    steps: list[Rename] = []
    for key, backwards in [(k, True) for k in behind] + [(k, False) for k in since]:
        app_label = key[0]
        operations = loader.graph.nodes[key].operations
        for operation in reversed(operations) if backwards else operations:
            if isinstance(operation, RenameModel):
                old = f"{app_label}.{operation.old_name_lower}"
                new = f"{app_label}.{operation.new_name_lower}"
                steps.append(
                    Rename(
                        True, new if backwards else old, *((new, old) if backwards else (old, new))
                    )
                )
            elif isinstance(operation, RenameField):
                label = f"{app_label}.{operation.model_name_lower}"
                names = (operation.new_name, operation.old_name)
                steps.append(Rename(False, label, *(names if backwards else names[::-1])))
    return steps


def migration_renames(
    loader: MigrationLoader, backup_migrations: dict[str, list[str]]
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Model and field renames between the backup's schema and this database's,
    in either direction (a backup taken after a RenameField restores into a
    database before it, too).

    Returns ({backup's model label: today's}, {today's model label: {backup's
    field name: today's}}), labels lower-case.
    """
    since, behind = migration_steps(loader, backup_migrations)
    model_renames: dict[str, str] = {}
    field_renames: dict[str, dict[str, str]] = {}
    for step in renames_between(loader, since, behind):
        if step.model:
            for original, current in list(model_renames.items()):
                if current == step.old:
                    model_renames[original] = step.new
            if step.old not in model_renames.values():
                model_renames.setdefault(step.old, step.new)
            if step.old in field_renames:
                field_renames[step.new] = field_renames.pop(step.old)
        else:
            fields = field_renames.setdefault(step.label, {})
            for original, current in list(fields.items()):
                if current == step.old:
                    fields[original] = step.new
            if step.old not in fields.values():
                fields.setdefault(step.old, step.new)
    return model_renames, field_renames


def data_migrations(loader: MigrationLoader, since: list[tuple[str, str]]) -> list[str]:
    """The migrations applied since the backup that can change rows (RunPython
    that does something, RunSQL): what a restore into today's schema would
    not repeat for the backup's rows."""
    found = []
    for key in since:
        kinds = [
            type(operation).__name__
            for operation in loader.graph.nodes[key].operations
            if (isinstance(operation, RunSQL) and not is_noop_sql(operation.sql))
            or (isinstance(operation, RunPython) and operation.code is not RunPython.noop)
        ]
        if kinds:
            found.append(f"{key[0]}.{key[1]} ({', '.join(dict.fromkeys(kinds))})")
    return found


def is_noop_sql(sql: Any) -> bool:
    """`RunSQL.noop` forwards (only its reverse does something): nothing runs
    on the way forward, which is the direction a restore's migrations take."""
    statements = [sql] if isinstance(sql, str) else list(sql)
    return all((s if isinstance(s, str) else s[0]).strip() == RunSQL.noop for s in statements)


def migrations_behind(
    loader: MigrationLoader, backup_migrations: dict[str, list[str]]
) -> list[str]:
    """A warning if the backup's database had migrations applied that this one has not."""
    applied_now = set(loader.applied_migrations)
    missing = sorted(
        f"{app}.{name}"
        for app, names in backup_migrations.items()
        for name in names
        if (app, name) not in applied_now
    )
    if not missing:
        return []
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return [
        f"The backup was taken with migrations applied that this database has not: {shown}. "
        f"What they added is not restored; run `manage.py migrate` first, then restore."
    ]


def time_zone_warnings(meta: dict[str, Any]) -> list[str]:
    """A warning when the backup's USE_TZ and TIME_ZONE are not this project's
    (or not recorded): they decide what a date-time in the file means."""
    use_tz, time_zone = meta.get("use_tz"), meta.get("time_zone")
    here = f"USE_TZ = {settings.USE_TZ}, TIME_ZONE = {settings.TIME_ZONE!r}"
    if type(use_tz) is not bool or type(time_zone) is not str:
        return [
            f"The backup does not record the USE_TZ and TIME_ZONE it was taken with (an older "
            f"dbtools wrote it): not known whether its date-times mean what they would here ({here})."
        ]
    if use_tz == settings.USE_TZ and time_zone == settings.TIME_ZONE:
        return []
    if not use_tz and settings.USE_TZ:
        meaning = (
            f"The backup's date-times have no time zone: they are taken as {settings.TIME_ZONE} "
            f"time, as Django takes a naive datetime."
        )
    elif not use_tz:
        meaning = (
            f"The backup's date-times have no time zone: they are restored as they are, and "
            f"read here as {settings.TIME_ZONE} time, not {time_zone}."
        )
    elif settings.USE_TZ:
        meaning = "The backup's date-times carry their UTC offset: each keeps its moment in time."
    else:
        meaning = (
            "The backup's date-times carry their UTC offset, which Django stores with USE_TZ = "
            "False only on PostgreSQL (on SQLite and MariaDB the restore fails)."
        )
    return [
        f"The backup was taken with USE_TZ = {use_tz}, TIME_ZONE = {time_zone!r}; this project "
        f"has {here}. {meaning}"
    ]


def _plan_order(loader: MigrationLoader, keys: set[tuple[str, str]]) -> list[tuple[str, str]]:
    order: list[tuple[str, str]] = []
    for leaf in loader.graph.leaf_nodes():
        for key in loader.graph.forwards_plan(leaf):
            if key in keys and key not in order:
                order.append(key)
    return order
