"""What pending migrations will do, and what is risky in them.

The reference workflow's pre-migration checklist, worked out from the
migration operations themselves and, where it matters, from the data:

    high     a required field added with no default (restore of older backups
             has no value for it), a field or model removed (its data then lives
             only in the backup), a field made required where rows hold NULL,
             a unique constraint over data with duplicates
    warning  an incompatible type change, RunPython/RunSQL with no reverse
             (rolling back by migrating back is impossible), on PostgreSQL an
             operation that locks or rewrites a big table
    info     renames (safe: restoredb follows them)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db import connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations import operations as ops
from django.db.migrations.exceptions import AmbiguityError
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration
from django.db.migrations.state import ProjectState

from .exceptions import MigrationError

BIG_TABLE_ROWS = 100_000  # where a PostgreSQL table rewrite or lock starts to hurt


@dataclass
class Finding:
    level: str  # "high", "warning", "info"
    migration: str  # "shop.0002_add_sku"
    operation: str  # the operation's own description
    message: str  # what will happen and what to do


@dataclass
class MigrationPlan:
    using: str
    targets: list[tuple[str, str | None]]
    steps: list[tuple[Migration, bool]]  # (migration, backwards)
    findings: list[Finding] = field(default_factory=list)

    @property
    def pending(self) -> bool:
        return bool(self.steps)

    @property
    def high_risk(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "high"]


def resolve_targets(
    executor: MigrationExecutor, app_label: str | None, migration_name: str | None
) -> list[tuple[str, str | None]]:
    """The same targets `migrate [app_label] [migration_name]` would use."""
    loader = executor.loader
    if app_label:
        try:
            apps.get_app_config(app_label)
        except LookupError as exc:
            raise MigrationError(str(exc)) from None
        if app_label not in loader.migrated_apps:
            raise MigrationError(f"App '{app_label}' does not have migrations.")
    if app_label and migration_name:
        if migration_name == "zero":
            return [(app_label, None)]
        try:
            migration = loader.get_migration_by_prefix(app_label, migration_name)
        except AmbiguityError:
            raise MigrationError(
                f"More than one migration matches '{migration_name}' in app '{app_label}'. Please be more specific."
            ) from None
        except KeyError:
            raise MigrationError(
                f"Cannot find a migration matching '{migration_name}' from app '{app_label}'."
            ) from None
        return [(app_label, migration.name)]
    if app_label:
        return [key for key in loader.graph.leaf_nodes() if key[0] == app_label]
    return list(loader.graph.leaf_nodes())


def plan_migrations(
    using: str = "default", app_label: str | None = None, migration_name: str | None = None
) -> MigrationPlan:
    connection = connections[using]
    executor = MigrationExecutor(connection)
    executor.loader.check_consistent_history(connection)
    conflicts = executor.loader.detect_conflicts()
    if conflicts:
        names = "; ".join(f"{', '.join(n)} in {app}" for app, n in conflicts.items())
        raise MigrationError(
            f"Conflicting migrations detected; multiple leaf nodes in the migration graph: ({names}). "
            f"To fix them run 'python manage.py makemigrations --merge'."
        )
    targets = resolve_targets(executor, app_label, migration_name)
    steps = executor.migration_plan(targets)
    plan = MigrationPlan(using, targets, steps)
    if steps:
        state = executor._create_project_state(with_applied_migrations=True)  # type: ignore[attr-defined]
        plan.findings = assess(steps, state, connection)
    return plan


def describe_step(migration: Migration, backwards: bool) -> list[str]:
    """One line per operation, as `migrate --plan` shows them."""
    lines = []
    for operation in migration.operations:
        text = operation.describe()
        if backwards:
            text = ("Undo " + text) if operation.reversible else f"IRREVERSIBLE: {text}"
        lines.append(text)
    return lines


# Assessment ---------------------------------------------------------------------------


def assess(
    steps: Sequence[tuple[Migration, bool]], state: ProjectState, connection: BaseDatabaseWrapper
) -> list[Finding]:
    findings: list[Finding] = []
    for migration, backwards in steps:
        name = f"{migration.app_label}.{migration.name}"
        if backwards:
            for operation in migration.operations:
                if not operation.reversible:
                    findings.append(Finding("high", name, operation.describe(),
                        "This operation cannot be undone; migrating backwards will fail here."))  # fmt: skip
            continue
        for operation in migration.operations:
            before = state.clone()
            operation.state_forwards(migration.app_label, state)
            checker = Checker(connection, migration.app_label, before, state)
            for level, message in checker.check(operation):
                findings.append(Finding(level, name, operation.describe(), message))
    return findings


class Checker:
    """Looks at one operation with the project state before and after it."""

    def __init__(
        self,
        connection: BaseDatabaseWrapper,
        app_label: str,
        before: ProjectState,
        after: ProjectState,
    ):
        self.connection = connection
        self.app_label = app_label
        self.before = before
        self.after = after

    def model(self, state: ProjectState, model_name: str) -> type[models.Model] | None:
        try:
            return state.apps.get_model(self.app_label, model_name)
        except LookupError:
            return None

    def table_exists(self, model: type[models.Model]) -> bool:
        with self.connection.cursor() as cursor:
            return model._meta.db_table in self.connection.introspection.table_names(cursor)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def row_count(self, model: type[models.Model]) -> int:
        if not self.table_exists(model):
            return 0
        quote = self.connection.ops.quote_name
        return int(self.query(f"SELECT COUNT(*) FROM {quote(model._meta.db_table)}")[0][0])

    def check(self, operation: Any) -> list[tuple[str, str]]:
        method = getattr(self, "check_" + type(operation).__name__, None)
        found = method(operation) if method else []
        if isinstance(operation, (ops.RunPython, ops.RunSQL)) and not operation.reversible:
            found.append(("warning", "It has no reverse, so this migration cannot be rolled back by migrating "
                          "back; only restoring the backup undoes it. Add reverse_code/reverse_sql (or a no-op)."))  # fmt: skip
        return found

    def check_AddField(self, operation: ops.AddField) -> list[tuple[str, str]]:
        new_field = operation.field
        if (
            new_field.null
            or new_field.has_db_default()
            or (new_field.has_default() and operation.preserve_default)
        ):
            return []
        model = self.model(self.before, operation.model_name)
        rows = self.row_count(model) if model else 0
        if new_field.has_default() and not operation.preserve_default:
            return [("high", f"{operation.model_name}.{operation.name} is required with no default once migrated "
                     f"(the one-off default only fills today's {rows:,} rows). Backups taken before this "
                     f"migration have no value for it, so restoring them fails. Keep a default on the field.")]  # fmt: skip
        if rows:
            return [("high", f"{operation.model_name}.{operation.name} is required and has no default, and the table "
                     f"has {rows:,} rows: the migration will fail. Add a default, or make it nullable, "
                     f"fill it, then make it required.")]  # fmt: skip
        return [("warning", f"{operation.model_name}.{operation.name} is required with no default: backups taken "
                 f"before this migration cannot be restored into the new schema without one.")]  # fmt: skip

    def check_RemoveField(self, operation: ops.RemoveField) -> list[tuple[str, str]]:
        model = self.model(self.before, operation.model_name)
        rows = self.row_count(model) if model else 0
        return [("high", f"The column {operation.model_name}.{operation.name} and its data in {rows:,} rows are "
                 f"dropped; afterwards they exist only in the backup this command takes.")]  # fmt: skip

    def check_DeleteModel(self, operation: ops.DeleteModel) -> list[tuple[str, str]]:
        model = self.model(self.before, operation.name)
        rows = self.row_count(model) if model else 0
        return [("high", f"The table of {operation.name} and its {rows:,} rows are dropped; afterwards they "
                 f"exist only in the backup this command takes.")]  # fmt: skip

    def check_RenameField(self, operation: ops.RenameField) -> list[tuple[str, str]]:
        return [("info", f"Renames {operation.model_name}.{operation.old_name} to {operation.new_name}: safe; "
                 f"restoredb maps the old name in older backups to the new one.")]  # fmt: skip

    def check_RenameModel(self, operation: ops.RenameModel) -> list[tuple[str, str]]:
        return [
            (
                "info",
                f"Renames {operation.old_name} to {operation.new_name}: safe; restoredb follows it.",
            )
        ]

    def check_AlterField(self, operation: ops.AlterField) -> list[tuple[str, str]]:
        old_model = self.model(self.before, operation.model_name)
        new_model = self.model(self.after, operation.model_name)
        if old_model is None or new_model is None:
            return []
        old: Any = old_model._meta.get_field(operation.name)
        new: Any = new_model._meta.get_field(operation.name)
        found: list[tuple[str, str]] = []
        table = old_model._meta.db_table
        quote = self.connection.ops.quote_name
        exists = self.table_exists(old_model)
        if old.null and not new.null and exists and not new.has_db_default():
            nulls = self.query(
                f"SELECT COUNT(*) FROM {quote(table)} WHERE {quote(old.column)} IS NULL"
            )[0][0]
            if nulls:
                found.append(("high", f"{operation.model_name}.{operation.name} becomes required, but {nulls:,} rows "
                              f"hold NULL: the migration will fail. Fill them first (a data migration before this one)."))  # fmt: skip
        if old.db_type(self.connection) != new.db_type(self.connection):
            found.append(("warning", f"{operation.model_name}.{operation.name} changes type from "
                          f"{old.db_type(self.connection)} to {new.db_type(self.connection)}: values that do not "
                          f"convert make the migration fail, and older backups are converted value by value on restore."))  # fmt: skip
            found += self.big_table_lock(
                old_model, "rewrites the whole table under an exclusive lock"
            )
        if new.unique and not old.unique and exists:
            found += self.duplicates(
                old_model, [str(old.column)], f"{operation.model_name}.{operation.name}"
            )
        return found

    def check_AddConstraint(self, operation: ops.AddConstraint) -> list[tuple[str, str]]:
        constraint = operation.constraint
        model = self.model(self.before, operation.model_name)
        if (
            not isinstance(constraint, models.UniqueConstraint)
            or model is None
            or not constraint.fields
        ):
            return []
        if constraint.condition is not None or not self.table_exists(model):
            return []
        columns = [str(model._meta.get_field(name).column) for name in constraint.fields]  # type: ignore[union-attr]
        return self.duplicates(
            model, columns, f"{operation.model_name} ({', '.join(constraint.fields)})"
        )

    def check_AlterUniqueTogether(
        self, operation: ops.AlterUniqueTogether
    ) -> list[tuple[str, str]]:
        model = self.model(self.before, operation.name)
        if model is None or not self.table_exists(model):
            return []
        found = []
        for names in operation.unique_together or ():
            columns = [str(model._meta.get_field(name).column) for name in names]  # type: ignore[union-attr]
            found += self.duplicates(model, columns, f"{operation.name} ({', '.join(names)})")
        return found

    def check_AddIndex(self, operation: ops.AddIndex) -> list[tuple[str, str]]:
        model = self.model(self.before, operation.model_name)
        if model is None:
            return []
        return self.big_table_lock(
            model, "builds an index while blocking writes (use AddIndexConcurrently)"
        )

    def duplicates(
        self, model: type[models.Model], columns: list[str], what: str
    ) -> list[tuple[str, str]]:
        quote = self.connection.ops.quote_name
        cols = ", ".join(quote(c) for c in columns)
        rows = self.query(
            f"SELECT {cols}, COUNT(*) FROM {quote(model._meta.db_table)} GROUP BY {cols} HAVING COUNT(*) > 1 "
            f"ORDER BY COUNT(*) DESC LIMIT 5"
        )
        if not rows:
            return []
        shown = "; ".join(f"{row[:-1] if len(row) > 2 else row[0]!r} x{row[-1]}" for row in rows)
        return [("high", f"{what} must become unique, but the data has duplicates ({shown}): the migration will "
                 f"fail. Remove or merge the duplicates first.")]  # fmt: skip

    def big_table_lock(self, model: type[models.Model], what: str) -> list[tuple[str, str]]:
        if self.connection.vendor != "postgresql" or not self.table_exists(model):
            return []
        estimate = self.query(
            "SELECT reltuples::bigint FROM pg_class WHERE relname = %s", [model._meta.db_table]
        )
        rows = int(estimate[0][0]) if estimate else 0
        if rows < BIG_TABLE_ROWS:
            return []
        return [("warning", f"On PostgreSQL this {what} on {model._meta.db_table} (about {rows:,} rows); "
                 f"expect the table to be unavailable while it runs.")]  # fmt: skip
