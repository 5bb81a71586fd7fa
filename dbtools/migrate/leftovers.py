"""What a migration not recorded as applied left in the schema: the changes a
run killed (or failed and not rolled back) part-way through it leaves where
DDL is not transactional, found before migrating and taken out of the schema
a rollback compares with."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration
from django.db.migrations.state import ProjectState

from .schema import Difference, Schema, TableSchema, read_schema


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
        if found.index is None and found.column is None:
            if found.made:
                wanted.pop(found.table, None)
            elif found.table in now:
                wanted[found.table] = now[found.table]
        elif (table := wanted.get(found.table)) and (expected := table_without(found, table, now)):
            wanted[found.table] = expected
    return wanted


def table_without(found: Leftover, table: TableSchema, now: Schema) -> TableSchema | None:
    """`table` as the recorded migrations make it, without the index or column
    `found` is about (None: it stays as it is)."""
    if found.index:
        constraints = {k: c for k, c in table.constraints.items() if c.name != found.index}
        return TableSchema(table.columns, constraints)
    if found.old_column:
        return renamed_back(table, str(found.column), found.old_column)
    if found.made:
        columns = {n: c for n, c in table.columns.items() if n != found.column}
        constraints = {k: c for k, c in table.constraints.items() if found.column not in c.columns}
        return TableSchema(columns, constraints)
    if found.table in now and found.column in now[found.table].columns:
        back = now[found.table]
        columns = {**table.columns, str(found.column): back.columns[str(found.column)]}
        constraints = {
            **table.constraints,
            **{k: c for k, c in back.constraints.items() if found.column in c.columns},
        }
        return TableSchema(columns, constraints)
    return None


def renamed_back(table: TableSchema, column: str, old_column: str) -> TableSchema:
    """`table` with `column` under the name the recorded migrations give it."""
    renamed = {
        (old_column if name == column else name): (
            replace(c, name=old_column) if name == column else c
        )
        for name, c in table.columns.items()
    }
    constraints = {
        k: replace(c, columns=tuple(old_column if n == column else n for n in c.columns))
        for k, c in table.constraints.items()
    }
    return TableSchema(renamed, constraints)


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
