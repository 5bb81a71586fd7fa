"""The code that runs while the migration does: the old code against the new
schema (migrate-first), or the new code against the old schema (code-first)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db import models
from django.db.migrations import operations as ops

from .context import OperationContext, has_db_default
from .findings import Raised
from .sql import Statement


def check_running_code(context: OperationContext) -> Iterator[Raised]:
    """What the release's other half does while this forwards operation applies:
    the old code against the new schema (migrate-first), or the new code
    against the old schema (code-first). Tables the plan creates have no code
    running against them yet. An operation that sends no SQL (a rename kept by
    db_column or db_table, a proxy or unmanaged model) leaves the schema as both
    codes know it."""
    if context.deploy == "downtime" or not context.sql:
        return
    operation = context.operation
    name = getattr(operation, "model_name", None) or getattr(operation, "name", "")
    if isinstance(operation, ops.RenameModel):
        name = operation.old_name
    model = context.model(context.before, name) if name else None
    if model is None or context.new_table(model._meta.db_table):
        if isinstance(operation, ops.CreateModel) and context.deploy == "code-first":
            yield Raised("DBT405", f"The new code starts before this migration creates the table of "
                         f"{operation.name}: its queries on {operation.name} fail until then.")  # fmt: skip
        return
    if context.deploy == "migrate-first":
        yield from old_code_on_new_schema(context, model)
    else:
        yield from new_code_on_old_schema(context, model)


def old_code_on_new_schema(
    context: OperationContext, model: type[models.Model]
) -> Iterator[Raised]:
    operation = context.operation
    if isinstance(operation, (ops.AddField, ops.AlterField)):
        yield from old_code_on_field(operation, model)
    elif isinstance(operation, (ops.RenameField, ops.RenameModel)):
        yield Raised("DBT402", f"{renamed(operation)}: the old code still queries the old name, and every "
                     f"query it makes on it fails from this migration until the new code runs.")  # fmt: skip
    elif isinstance(operation, ops.RemoveField):
        yield Raised("DBT403", f"The old code selects {operation.model_name}.{operation.name} in every query "
                     f"on {operation.model_name}: they all fail from this migration until the new code "
                     f"runs.")  # fmt: skip
    elif isinstance(operation, ops.DeleteModel):
        yield Raised("DBT403", f"The old code still queries {operation.name}: every such query fails from "
                     f"this migration until the new code runs.")  # fmt: skip
    else:
        yield from old_code_on_new_unique(operation, model)


def old_code_on_field(operation: Any, model: type[models.Model]) -> Iterator[Raised]:
    """A field added or altered under the old code: a required one it does not fill,
    a unique one it does not expect."""
    label = f"{operation.model_name}.{operation.name}"
    if isinstance(operation, ops.AddField):
        field = operation.field
        if not (field.many_to_many or field.null or has_db_default(field) or field.generated):
            yield Raised("DBT401", f"{label} is required and has no database default: the old code, which "
                         f"does not know the field, inserts rows without it, and each such INSERT fails "
                         f"until the new code runs.")  # fmt: skip
        return
    old: Any = model._meta.get_field(operation.name)
    new = operation.field
    if old.null and not new.null and not has_db_default(new):
        yield Raised("DBT401", f"{label} becomes required with no database default: the old code may still "
                     f"save None in it, and each such write fails until the new code runs.")  # fmt: skip
    if new.unique and not old.unique:
        yield unique_for_old_code(label)


def old_code_on_new_unique(operation: Any, model: type[models.Model]) -> Iterator[Raised]:
    if isinstance(operation, ops.AddConstraint) and isinstance(
        operation.constraint, models.UniqueConstraint
    ):
        yield unique_for_old_code(
            f"{operation.model_name} ({', '.join(operation.constraint.fields)})"
        )
    elif isinstance(operation, ops.AlterUniqueTogether):
        before = {tuple(t) for t in model._meta.unique_together}
        for names in operation.unique_together or ():
            if tuple(names) not in before:
                yield unique_for_old_code(f"{operation.name} ({', '.join(names)})")


def unique_for_old_code(what: str) -> Raised:
    return Raised("DBT404", f"{what} becomes unique: the old code does not expect it, and a duplicate it "
                  f"inserts now fails with an IntegrityError instead of being saved.")  # fmt: skip


def new_code_on_old_schema(
    context: OperationContext, model: type[models.Model]
) -> Iterator[Raised]:
    operation = context.operation
    if isinstance(operation, ops.AddField) and not operation.field.many_to_many:
        yield Raised("DBT405", f"The new code starts before this migration adds {operation.model_name}."
                     f"{operation.name}: it selects the column in every query on {operation.model_name}, "
                     f"and they all fail until the migration runs.")  # fmt: skip
    elif isinstance(operation, (ops.RenameField, ops.RenameModel)):
        yield Raised("DBT402", f"{renamed(operation)}: the new code queries the new name, and every query it "
                     f"makes on it fails until the migration runs.")  # fmt: skip
    elif isinstance(operation, ops.RemoveField):
        field: Any = model._meta.get_field(operation.name)
        if not (field.null or has_db_default(field) or field.many_to_many or field.generated):
            yield Raised("DBT401", f"{operation.model_name}.{operation.name} is required in the database until "
                         f"this migration drops it: the new code, which no longer knows it, inserts rows "
                         f"without it, and each such INSERT fails until the migration runs.")  # fmt: skip


def renamed(operation: Any) -> str:
    if isinstance(operation, ops.RenameField):
        return f"Renames {operation.model_name}.{operation.old_name} to {operation.new_name}"
    return f"Renames {operation.old_name} to {operation.new_name}"


def old_code_on_sql(context: OperationContext, statement: Statement) -> Iterator[Raised]:
    """A column or table RunSQL drops that the models before this migration still
    have: the old code selects it, as after a RemoveField or DeleteModel. One the
    models no longer have (removed from the state a release earlier, DBT403's
    fix) is no one's to select."""
    if context.deploy != "migrate-first":
        return
    models_by_table = {
        model._meta.db_table: model
        for model in context.before.apps.get_models()
        if not context.new_table(model._meta.db_table)
    }
    for table, column in statement.dropped_columns:
        model = models_by_table.get(table)
        field = (
            next((f for f in model._meta.concrete_fields if f.column == column), None)
            if model
            else None
        )
        if model is not None and field is not None:
            name = model._meta.model_name
            yield Raised("DBT403", f"The old code selects {name}.{field.name} in every query on {name}: they "
                         f"all fail from this migration until the new code runs.", statement.text)  # fmt: skip
    for table in statement.drops:
        if table in models_by_table:
            yield Raised("DBT403", f"The old code still queries {models_by_table[table].__name__}: every such "
                         f"query fails from this migration until the new code runs.", statement.text)  # fmt: skip
