"""The checks of each operation: what it does to the data and the schema,
forwards and backwards, with this database's figures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from django.db import models
from django.db.migrations import operations as ops

from ...backends import backend_for
from .context import OperationContext, has_db_default, has_default, holds_null
from .findings import Raised
from .postgresql_locks import check_postgresql_sql
from .python_code import function_name, imported_models
from .running_code import check_running_code, old_code_on_sql
from .sql import (
    RequiredColumn,
    Statement,
    fills_column,
    one_line,
    reader_for,
    statements,
    unparameterised_texts,
)
from .sql_findings import check_statement_rows
from .types import widens


def check_operation(context: OperationContext) -> Iterator[Raised]:
    operation = context.operation
    if context.parts is not None:  # SeparateDatabaseAndState: what reaches the database
        for part in context.parts:
            part.deploy = context.deploy
            yield from check_operation(part)
            context.facts.follow(part)
        return
    if context.backwards:
        yield from check_backwards(context)
    else:
        # The first class in the MRO with a check: a subclass of RunPython is checked as one.
        checker = next(
            (
                OPERATION_CHECKS[c.__name__]
                for c in type(operation).__mro__
                if c.__name__ in OPERATION_CHECKS
            ),
            None,
        )
        if checker:
            yield from checker(context)
        yield from check_running_code(context)
    if backend_for(context.connection).checks_statement_locks:
        yield from check_postgresql_sql(context)


def check_add_field(context: OperationContext) -> Iterator[Raised]:
    operation: ops.AddField = context.operation
    field = operation.field
    if field.null or field.many_to_many or has_db_default(field):
        return
    if has_default(field) and operation.preserve_default:
        return
    model = context.model(context.before, operation.model_name)
    if model is not None and context.new_table(model._meta.db_table):
        return
    count, rows = context.facts.rows(model._meta.db_table) if model else (0, "0")
    yield from required_field_added(
        context, f"{operation.model_name}.{operation.name}", count, rows
    )


def required_field_added(
    context: OperationContext, label: str, count: int, rows: str
) -> Iterator[Raised]:
    """A NOT NULL column whose default gives no value (or only a one-off one) over `rows`."""
    field = context.operation.field
    backend = backend_for(context.connection)
    if has_default(field):
        yield Raised("DBT102", f"{label} is required with no default once migrated (the one-off default only "
               f"fills today's {rows} rows). Backups taken before this migration have no value for it, "
               f"so restoring them needs --set or --replay.", None)  # fmt: skip
    elif field.has_db_default() and backend.refuses_null_default_on_not_null:
        yield Raised("DBT101", f"{label} is required and its db_default is None: MariaDB and MySQL refuse "
               f"DEFAULT NULL on a NOT NULL column, so the migration will fail.", None)  # fmt: skip
    elif count:
        none = (
            " (a default of None is none)" if field.has_default() or field.has_db_default() else ""
        )
        # MariaDB and MySQL add a NOT NULL column over rows with the type's implicit value.
        fate = ("MariaDB fills them with the type's implicit value (0, '', …), which no code chose"
                if backend.fills_new_not_null_columns else "the migration will fail")  # fmt: skip
        yield Raised("DBT101", f"{label} is required and has no default{none}, and the table has {rows} rows: "
               f"{fate}.", None)  # fmt: skip
    else:
        yield Raised("DBT103", f"{label} is required with no default: backups taken before this migration "
               f"cannot be restored into the new schema without --set.", None)  # fmt: skip


def check_drop(context: OperationContext) -> Iterator[Raised]:
    """RemoveField and DeleteModel: the data they drop with the column or table."""
    operation = context.operation
    removes_field = isinstance(operation, ops.RemoveField)
    rows = rows_dropped(context, operation.model_name if removes_field else operation.name)
    if rows is None:
        return
    if removes_field:
        yield Raised("DBT104", f"The column {operation.model_name}.{operation.name} and its data in {rows} "
               f"rows are dropped.", None)  # fmt: skip
    else:
        yield Raised(
            "DBT105", f"The table of {operation.name} and its {rows} rows are dropped.", None
        )


def rows_dropped(context: OperationContext, model_name: str) -> str | None:
    """How to say the rows of the model's table today; None for a table the plan
    creates, which holds nothing to lose."""
    model = context.model(context.before, model_name)
    if model is None:
        return "0"
    if context.new_table(model._meta.db_table):
        return None
    return context.facts.rows(model._meta.db_table)[1]


def check_rename(context: OperationContext) -> Iterator[Raised]:
    operation = context.operation
    if isinstance(operation, ops.RenameField):
        what = f"{operation.model_name}.{operation.old_name} to {operation.new_name}"
    else:
        what = f"{operation.old_name} to {operation.new_name}"
    yield Raised(
        "DBT109",
        f"Renames {what}: restoredb maps the old name in older backups to the new one.",
        None,
    )


def check_alter_field(context: OperationContext) -> Iterator[Raised]:
    operation: ops.AlterField = context.operation
    old_model = context.model(context.before, operation.model_name)
    new_model = context.model(context.after, operation.model_name)
    if old_model is None or new_model is None:
        return
    old: Any = old_model._meta.get_field(operation.name)
    new: Any = new_model._meta.get_field(operation.name)
    table, label = old_model._meta.db_table, f"{operation.model_name}.{operation.name}"
    if not context.facts.exists(table) or context.new_table(table):
        return
    if old.null and not new.null:
        yield from nulls_left(context, table, str(old.column), str(new.column), label)
    old_type, new_type = old.db_type(context.connection), new.db_type(context.connection)
    if old_type != new_type and not widens(str(old_type), str(new_type)):
        yield Raised("DBT108", f"{label} changes type from {old_type} to {new_type}: values that do not "
               f"convert make the migration fail.", None)  # fmt: skip
    if new.unique and not old.unique:
        yield from duplicates(context, table, [str(old.column)], label)


def nulls_left(
    context: OperationContext,
    table: str,
    old_column: str,
    new_column: str,
    label: str,
    shown: str | None = None,
) -> Iterator[Raised]:
    """A column made required over rows that hold NULL, which the migration does not fill."""
    # An UPDATE earlier in the migration or the plan fills them as well as Django's own.
    if fills_column(context.facts.earlier_sql + context.sql, table, new_column, context.connection):
        return
    added = context.facts.added.get((table, old_column))
    if added is not None:  # not in the database yet: every row holds its default
        nulls = context.facts.rows(table)[0] if holds_null(added) else 0
    else:
        quote = context.connection.ops.quote_name
        (nulls,) = context.facts.query(
            f"SELECT COUNT(*) FROM {quote(table)} WHERE {quote(old_column)} IS NULL"
        )[0]
    if nulls:
        yield Raised("DBT106", f"{label} becomes required, but {nulls:,} rows hold NULL and the migration "
               f"fills nothing in: it will fail.", shown)  # fmt: skip


def check_add_constraint(context: OperationContext) -> Iterator[Raised]:
    operation: ops.AddConstraint = context.operation
    constraint = operation.constraint
    model = context.model(context.before, operation.model_name)
    if not isinstance(constraint, models.UniqueConstraint) or model is None:
        return
    if not constraint.fields or constraint.condition is not None:
        return
    if not context.facts.exists(model._meta.db_table) or context.new_table(model._meta.db_table):
        return
    columns = [str(model._meta.get_field(name).column) for name in constraint.fields]  # type: ignore[union-attr]
    yield from duplicates(context, model._meta.db_table, columns,
                          f"{operation.model_name} ({', '.join(constraint.fields)})")  # fmt: skip


def check_alter_unique_together(context: OperationContext) -> Iterator[Raised]:
    operation: ops.AlterUniqueTogether = context.operation
    model = context.model(context.before, operation.name)
    table = model._meta.db_table if model is not None else ""
    if model is None or not context.facts.exists(table) or context.new_table(table):
        return
    for names in operation.unique_together or ():
        columns = [str(model._meta.get_field(name).column) for name in names]  # type: ignore[union-attr]
        yield from duplicates(context, model._meta.db_table, columns,
                              f"{operation.name} ({', '.join(names)})")  # fmt: skip


def check_run_python(context: OperationContext) -> Iterator[Raised]:
    operation: ops.RunPython = context.operation
    imported = sorted(set(imported_models(operation.code)))
    if imported:
        yield Raised("DBT301", f"{function_name(operation.code)} uses {', '.join(imported)} imported from the "
               f"app, not apps.get_model().", None)  # fmt: skip
    if not operation.reversible:
        yield from no_reverse(context, "DBT302", function_name(operation.code))


def check_run_sql(context: OperationContext) -> Iterator[Raised]:
    operation: ops.RunSQL = context.operation
    created: set[str] = set()
    for statement in statements(operation.sql, context.connection):
        created |= set(statement.creates)
        if statement.destroys and not drops_nothing_kept(context, statement, created):
            yield Raised("DBT304", "The SQL drops or truncates; what it removes is afterwards only in the backup.",
                   statement.text)  # fmt: skip
            yield from old_code_on_sql(context, statement)
        yield from check_statement_rows(context, statement, created)
        if statement.renames and context.deploy != "downtime":
            code = (
                "the old code still queries"
                if context.deploy == "migrate-first"
                else "the new code queries"
            )
            yield Raised("DBT402", f"The SQL renames a table or column: {code} the name it had (or will "
                         f"have), and every query it makes on it fails until the release is complete.",
                         statement.text)  # fmt: skip
    if not operation.reversible:
        yield from no_reverse(context, "DBT303", "The SQL")
    yield from check_run_sql_data(context)


def check_run_sql_data(context: OperationContext) -> Iterator[Raised]:
    """What the SQL does to the rows, judged as the same change made by Django's
    operations is; and SQL the server's own grammar rejects. Only where the
    parser is the server's (PostgreSQL): the other readers find nothing here."""
    reader = reader_for(context.connection)
    for text in unparameterised_texts(context.operation.sql):
        error = reader.syntax_error(text)
        if error:
            yield Raised("DBT305", f"{error}: the migration will fail.", one_line(text))
            continue
        for change in reader.required_columns(text):
            yield from column_made_required(context, change)


def column_made_required(context: OperationContext, change: RequiredColumn) -> Iterator[Raised]:
    table, label = change.table, f"{change.table}.{change.column}"
    if not context.facts.exists(table) or context.new_table(table):
        return
    if change.added:
        count, rows = context.facts.rows(table)
        if count and not change.given_value:
            yield Raised("DBT101", f"{label} is required and has no default, and the table has {rows} rows: "
                         f"the migration will fail.", change.text)  # fmt: skip
    # A column the database does not have yet is no one's to count (the SQL then fails anyway).
    elif (table, change.column) in context.facts.added or context.facts.column_type(
        table, change.column
    ):
        yield from nulls_left(context, table, change.column, change.column, label, change.text)


def drops_nothing_kept(context: OperationContext, statement: Statement, created: set[str]) -> bool:
    """A DROP TABLE only of tables the same SQL made (scratch), or, with IF EXISTS,
    that are not there."""
    return bool(statement.drops) and all(
        table in created or (statement.drops_if_exists and not context.facts.exists(table))
        for table in statement.drops
    )


def no_reverse(context: OperationContext, code: str, what: str) -> Iterator[Raised]:
    if getattr(context.operation, "elidable", False):
        yield Raised(code, f"{what} has no reverse, so the migration cannot be unapplied; it is "
                     f"elidable, so squashing drops it.", None, "info")  # fmt: skip
    else:
        yield Raised(code, f"{what} has no reverse, so the migration cannot be unapplied: only restoring the "
               f"backup undoes it.", None)  # fmt: skip


OPERATION_CHECKS: dict[str, Callable[[OperationContext], Iterator[Raised]]] = {
    "AddField": check_add_field,
    "RemoveField": check_drop,
    "DeleteModel": check_drop,
    "RenameField": check_rename,
    "RenameModel": check_rename,
    "AlterField": check_alter_field,
    "AddConstraint": check_add_constraint,
    "AlterUniqueTogether": check_alter_unique_together,
    "RunPython": check_run_python,
    "RunSQL": check_run_sql,
}


def check_backwards(context: OperationContext) -> Iterator[Raised]:
    """Undoing an operation: `before` holds what exists now, `after` what remains."""
    operation = context.operation
    if not operation.reversible:
        yield Raised("DBT111", "This operation cannot be undone; migrating backwards stops here with an error.",
               None)  # fmt: skip
        return
    if isinstance(operation, ops.CreateModel):
        model = context.model(context.before, operation.name)
        count, rows = context.facts.rows(model._meta.db_table) if model else (0, "0")
        if count:
            yield Raised(
                "DBT110",
                f"Undoing it drops the table of {operation.name} and its {rows} rows.",
                None,
            )
    elif isinstance(operation, ops.AddField) and not operation.field.many_to_many:
        model = context.model(context.before, operation.model_name)
        count, rows = context.facts.rows(model._meta.db_table) if model else (0, "0")
        if count:
            yield Raised("DBT110", f"Undoing it drops the column {operation.model_name}.{operation.name} and its "
                   f"data in {rows} rows.", None)  # fmt: skip
    elif isinstance(operation, ops.RunSQL):
        created: set[str] = set()
        for statement in statements(operation.reverse_sql, context.connection):
            created |= set(statement.creates)
            if statement.destroys and not drops_nothing_kept(context, statement, created):
                yield Raised("DBT304", "The reverse SQL drops or truncates; what it removes is afterwards only "
                       "in the backup.", statement.text)  # fmt: skip


def duplicates(
    context: OperationContext, table: str, columns: list[str], what: str
) -> Iterator[Raised]:
    added = [c for c in columns if (table, c) in context.facts.added]
    if any(holds_null(context.facts.added[(table, c)]) for c in added):
        return  # NULLs are never duplicates of each other
    columns = [c for c in columns if c not in added]
    if not columns:  # every row holds the same defaults
        count, many = context.facts.rows(table)
        if count > 1:
            yield Raised("DBT107", f"{what} must become unique, but all {many} rows hold the default their "
                   f"column was added with earlier in the plan: the migration will fail.", None)  # fmt: skip
        return
    quote = context.connection.ops.quote_name
    cols = ", ".join(quote(c) for c in columns)
    rows = context.facts.query(
        f"SELECT {cols}, COUNT(*) FROM {quote(table)} GROUP BY {cols} HAVING COUNT(*) > 1 "
        f"ORDER BY COUNT(*) DESC LIMIT 5"
    )
    if rows:
        shown = "; ".join(f"{row[:-1] if len(row) > 2 else row[0]!r} x{row[-1]}" for row in rows)
        yield Raised("DBT107", f"{what} must become unique, but the data has duplicates ({shown}): the "
               f"migration will fail.", None)  # fmt: skip
