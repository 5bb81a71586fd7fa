"""What is risky in pending migrations.

Every check has a stable code, a level and a fix. Checks read three things:
the operations, the SQL the schema editor would run on this database (what
`sqlmigrate` shows), and the data (row counts, NULLs, duplicates). Lock and
rewrite checks are PostgreSQL's: they read its statements, and the table's
size from the catalogue, never `count(*)` of a big table.
"""

from __future__ import annotations

import dis
import logging
import re
import sys
import types
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlglot
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations import operations as ops

from .backends import backend_for

LEVELS = ("info", "warning", "high")  # lowest first: --fail-on compares by this order
BIG_TABLE_ROWS = 100_000  # counted exactly below this; a catalogue estimate above
ACCEPT_ATTRIBUTE = "dbtools_accept"  # on a Migration class: {"DBT104": "why it is fine"}


@dataclass(frozen=True)
class Check:
    code: str
    level: str
    title: str
    fix: str
    migration_linter: str  # django-migration-linter's nearest check, or ""
    squawk: str  # squawk's nearest rule, or ""


CHECKS: dict[str, Check] = {
    check.code: check
    for check in [
        Check("DBT101", "high", "A required field without a default is added to a table that has rows",
              "Give the field a default (or db_default), or add it with null=True, fill it, then make it required.",
              "NOT_NULL", "adding-required-field"),
        Check("DBT102", "high", "A required field is added with a one-off default only",
              "Keep the default on the field (preserve_default=True) or give it a db_default: backups taken "
              "before this migration have no value for it.",
              "NOT_NULL", "adding-required-field"),
        Check("DBT103", "warning", "A required field without a default is added to an empty table",
              "Give the field a default, or null=True: backups taken before this migration have no value for it.",
              "NOT_NULL", "adding-required-field"),
        Check("DBT104", "high", "A column and its data are dropped",
              "Stop using the field in code and deploy that first; the column's data then lives only in the "
              "backup safemigrate takes.",
              "DROP_COLUMN", "ban-drop-column"),
        Check("DBT105", "high", "A table and its rows are dropped",
              "Stop using the model in code and deploy that first; the rows then live only in the backup "
              "safemigrate takes.",
              "DROP_TABLE", "ban-drop-table"),
        Check("DBT106", "high", "A field becomes required over rows that hold NULL, and nothing fills them",
              "Fill the NULLs in a data migration first, or give the field a default that is not None "
              "(Django then fills them as it migrates).",
              "NOT_NULL", ""),
        Check("DBT107", "high", "A unique constraint over data that has duplicates",
              "Remove or merge the duplicates in a data migration before this one.",
              "ADD_UNIQUE", ""),
        Check("DBT108", "warning", "A column changes type",
              "Check that every value converts; restoredb converts older backups value by value, or use "
              "restoredb --replay to run the migration's own conversion.",
              "ALTER_COLUMN", "changing-column-type"),
        Check("DBT109", "info", "A field or model is renamed",
              "Nothing for the data: restoredb follows renames in older backups. Code still running the "
              "old version fails until it is deployed.",
              "RENAME_COLUMN, RENAME_TABLE", "renaming-column, renaming-table"),
        Check("DBT110", "high", "Migrating backwards drops a table or column that holds data",
              "Keep the backup safemigrate takes, and restore from it what you need afterwards.",
              "", "ban-drop-table, ban-drop-column"),
        Check("DBT111", "high", "Migrating backwards over an operation that cannot be undone",
              "Give the operation a reverse (RunPython.noop / RunSQL.noop if nothing needs undoing).",
              "", ""),
        Check("DBT201", "warning", "PostgreSQL: an index is built without CONCURRENTLY on an existing table",
              "Use AddIndexConcurrently (django.contrib.postgres.operations) in a migration with "
              "atomic = False: it builds the index without blocking writes.",
              "CREATE_INDEX", "require-concurrent-index-creation"),
        Check("DBT202", "warning", "PostgreSQL: a foreign key is added and validated in one step",
              "Add it NOT VALID (RunSQL with state_operations), then VALIDATE CONSTRAINT in a later "
              "migration: the validation then takes a lock that lets writes through.",
              "", "adding-foreign-key-constraint"),
        Check("DBT203", "warning", "PostgreSQL: SET NOT NULL scans the table under an ACCESS EXCLUSIVE lock",
              "Add CHECK (column IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT, then SET NOT NULL (PostgreSQL "
              "12+ uses the check and skips the scan), then drop the check.",
              "NOT_NULL", "adding-not-nullable-field"),
        Check("DBT204", "warning", "PostgreSQL: a CHECK constraint is added and validated in one step",
              "Add it NOT VALID, then VALIDATE CONSTRAINT in a later migration.",
              "", "constraint-missing-not-valid"),
        Check("DBT205", "warning", "PostgreSQL: a column type change rewrites the table",
              "Add a new column, fill it in batches, then switch over; or run it when the table may be "
              "unavailable for the rewrite.",
              "ALTER_COLUMN", "changing-column-type"),
        Check("DBT206", "warning", "PostgreSQL: a UNIQUE constraint builds its index under an ACCESS EXCLUSIVE lock",
              "CREATE UNIQUE INDEX CONCURRENTLY, then ALTER TABLE … ADD CONSTRAINT … UNIQUE USING INDEX "
              "(RunSQL with state_operations).",
              "ADD_UNIQUE", "disallowed-unique-constraint"),
        Check("DBT401", "warning", "Running code: a required column the old code's INSERTs leave out or set to NULL",
              "Give the field a db_default (the database then fills it for the old code), or add it with "
              "null=True in this release and make it required in the next.",
              "NOT_NULL", "adding-required-field"),
        Check("DBT402", "warning", "Running code: a rename under the code that still uses the old name",
              "Keep the database name (db_column= / db_table= on the renamed field or model), or expand and "
              "contract: add the new column, write both, switch the reads, drop the old one a release later.",
              "RENAME_COLUMN, RENAME_TABLE", "renaming-column, renaming-table"),
        Check("DBT403", "warning", "Running code: a column or table dropped while the old code still selects it",
              "Remove it from the model one release earlier: SeparateDatabaseAndState(state_operations="
              "[RemoveField(…)]) now, the database operation in the next release.",
              "DROP_COLUMN, DROP_TABLE", "ban-drop-column, ban-drop-table"),
        Check("DBT404", "warning", "Running code: a unique constraint the old code does not know of",
              "Make the code avoid duplicates (get_or_create, a check before saving) and deploy that first; the "
              "old code's duplicate inserts fail once the constraint exists.",
              "ADD_UNIQUE", ""),
        Check("DBT405", "warning", "Running code: the new code uses a column or table this migration adds",
              "Run the migration before the new code starts (migrate-first), or add the field in a release "
              "before the code that uses it.",
              "", ""),
        Check("DBT301", "warning", "RunPython uses a model imported from the app instead of apps.get_model",
              "Use apps.get_model('app_label', 'Model'): the imported class is today's model, not the one "
              "at this migration, and breaks once the model changes.",
              "RUNPYTHON_MODEL_IMPORT", ""),
        Check("DBT302", "warning", "RunPython without reverse_code",
              "Add reverse_code (migrations.RunPython.noop if nothing needs undoing), so the migration can "
              "be unapplied and safemigrate can roll back by migrating back.",
              "RUNPYTHON_REVERSIBLE", ""),
        Check("DBT303", "warning", "RunSQL without reverse_sql",
              "Add reverse_sql (migrations.RunSQL.noop if nothing needs undoing).",
              "RUNSQL_REVERSIBLE", ""),
        Check("DBT304", "high", "RunSQL drops or truncates",
              "Make sure the data is not needed, or move it first; afterwards it lives only in the backup "
              "safemigrate takes.",
              "", "ban-drop-table, ban-drop-column, ban-truncate-cascade"),
    ]
}  # fmt: skip


@dataclass
class Finding:
    code: str
    level: str
    migration: str  # "shop.0002_add_sku"
    operation: str  # the operation's own description
    message: str  # what will happen, with this database's figures
    sql: str | None = None  # the statement the finding is about, where there is one
    operation_index: int | None = None
    backwards: bool = False
    acknowledged: str | None = None  # the reason given, when reviewed and accepted

    @property
    def fix(self) -> str:
        return CHECKS[self.code].fix

    @property
    def title(self) -> str:
        return CHECKS[self.code].title


def at_or_above(level: str, threshold: str) -> bool:
    return LEVELS.index(level) >= LEVELS.index(threshold)


def acceptance_problem(accepted: Any) -> str | None:
    """What is wrong with {code: reason}, or None."""
    example = '{"DBT104": "the column is unused since release 3.2"}'
    if not isinstance(accepted, Mapping):
        return f"must be a dict of finding codes to reasons, such as {example}, not {accepted!r}."
    for code, reason in accepted.items():
        if code not in CHECKS:
            return f"names {code!r}, which is not a finding code (see docs/safemigrate-checks.md)."
        if not isinstance(reason, str) or not reason.strip():
            return f"gives {code} no reason: say why the risk is accepted, such as {example}."
    return None


# The database's facts ---------------------------------------------------------------


class TableFacts:
    """What the checks ask the database, each asked once."""

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection
        self._tables: set[str] | None = None
        self._rows: dict[str, tuple[int, str]] = {}
        # What earlier operations of the plan leave, which the database does not show
        # yet: the tables they create (empty), and the columns they add to a table that
        # has rows (each row holds the field's default).
        self.planned: set[str] = set()
        self.added: dict[tuple[str, str], Any] = {}

    def follow(self, context: OperationContext) -> None:
        """Take in what a forwards operation leaves for the operations after it."""
        self.planned |= tables_created(context.sql)
        operation = context.operation
        if isinstance(operation, ops.AddField) and not operation.field.many_to_many:
            model = context.model(context.after, operation.model_name)
            if model is not None:
                field: Any = model._meta.get_field(operation.name)
                self.added[(model._meta.db_table, str(field.column))] = field

    def query(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def exists(self, table: str) -> bool:
        if self._tables is None:
            with self.connection.cursor() as cursor:
                self._tables = set(self.connection.introspection.table_names(cursor))
        return table in self._tables

    def rows(self, table: str) -> tuple[int, str]:
        """The number of rows and how to say it: exact below BIG_TABLE_ROWS,
        the catalogue's estimate above it on PostgreSQL."""
        if table in self.planned:
            return 0, "0"
        if table not in self._rows:
            self._rows[table] = self._count(table)
        return self._rows[table]

    def _count(self, table: str) -> tuple[int, str]:
        if not self.exists(table):
            return 0, "0"
        quote = self.connection.ops.quote_name
        if backend_for(self.connection).estimates_row_counts:
            (estimate,) = self.query("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                                     [quote(table)])[0]  # fmt: skip
            if estimate >= BIG_TABLE_ROWS:
                return int(estimate), f"about {int(estimate):,} (catalogue estimate)"
        (count,) = self.query(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM {quote(table)} LIMIT {BIG_TABLE_ROWS}) AS bounded"
        )[0]
        count = int(count)
        return count, (f"at least {count:,}" if count >= BIG_TABLE_ROWS else f"{count:,}")

    def column_type(self, table: str, column: str) -> str | None:
        """PostgreSQL's own name for a column's type today, e.g. 'character varying(20)'."""
        found = self.query(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attname = %s AND NOT attisdropped",
            [self.connection.ops.quote_name(table), column],
        )
        return str(found[0][0]) if found else None


# One operation --------------------------------------------------------------------


@dataclass
class OperationContext:
    """One operation of one step, with the states around it and its SQL."""

    connection: BaseDatabaseWrapper
    facts: TableFacts
    app_label: str
    operation: Any
    before: Any  # ProjectState before the operation (in the step's direction)
    after: Any
    sql: list[str]
    backwards: bool
    created_in_migration: set[str]  # tables the same migration creates (empty when locked)
    # In an atomic migration on PostgreSQL, the tables its statements so far hold under
    # ACCESS EXCLUSIVE until it commits, each with the statement that took the lock;
    # shared by the migration's operations. None: each statement commits on its own.
    exclusive: dict[str, str] | None = None
    # The deploy order the running-code checks assume; plan_migrations() sets the
    # project's (DBTOOLS['DEPLOY'], --deploy). Without one, no code is running.
    deploy: str = "downtime"

    def model(self, state: Any, name: str) -> type[models.Model] | None:
        try:
            return state.apps.get_model(self.app_label, name)  # type: ignore[no-any-return]
        except LookupError:
            return None

    def new_table(self, table: str) -> bool:
        """Created by this migration or an earlier step of the plan: it holds no rows
        when this operation runs, and no backup taken before the plan holds any."""
        return table in self.created_in_migration or table in self.facts.planned


class Raised(NamedTuple):
    code: str
    message: str
    sql: str | None = None  # the statement it is about
    level: str | None = None  # where it differs from the check's usual level


def check_operation(context: OperationContext) -> Iterator[Raised]:
    operation = context.operation
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
    label = f"{operation.model_name}.{operation.name}"
    model = context.model(context.before, operation.model_name)
    if model is not None and context.new_table(model._meta.db_table):
        return
    count, rows = context.facts.rows(model._meta.db_table) if model else (0, "0")
    if has_default(field):
        yield Raised("DBT102", f"{label} is required with no default once migrated (the one-off default only "
               f"fills today's {rows} rows). Backups taken before this migration have no value for it, "
               f"so restoring them needs --set or --replay.", None)  # fmt: skip
    elif (
        field.has_db_default() and backend_for(context.connection).refuses_null_default_on_not_null
    ):
        yield Raised("DBT101", f"{label} is required and its db_default is None: MariaDB and MySQL refuse "
               f"DEFAULT NULL on a NOT NULL column, so the migration will fail.", None)  # fmt: skip
    elif count:
        none = (
            " (a default of None is none)" if field.has_default() or field.has_db_default() else ""
        )
        # MariaDB and MySQL add a NOT NULL column over rows with the type's implicit value.
        fate = ("MariaDB fills them with the type's implicit value (0, '', …), which no code chose"
                if backend_for(context.connection).fills_new_not_null_columns else "the migration will fail")  # fmt: skip
        yield Raised("DBT101", f"{label} is required and has no default{none}, and the table has {rows} rows: "
               f"{fate}.", None)  # fmt: skip
    else:
        yield Raised("DBT103", f"{label} is required with no default: backups taken before this migration "
               f"cannot be restored into the new schema without --set.", None)  # fmt: skip


def has_default(field: Any) -> bool:
    """A default that gives a value: default=None fills a NOT NULL column with NULL."""
    return bool(field.has_default()) and field.default is not None


def has_db_default(field: Any) -> bool:
    """db_default=None (or Value(None)) is DEFAULT NULL, no value for a NOT NULL column."""
    default = field.db_default
    return bool(field.has_db_default()) and not (
        default is None or (isinstance(default, models.Value) and default.value is None)
    )


def check_remove_field(context: OperationContext) -> Iterator[Raised]:
    operation: ops.RemoveField = context.operation
    model = context.model(context.before, operation.model_name)
    if model is not None and context.new_table(model._meta.db_table):
        return
    _count, rows = context.facts.rows(model._meta.db_table) if model else (0, "0")
    yield Raised("DBT104", f"The column {operation.model_name}.{operation.name} and its data in {rows} rows "
           f"are dropped.", None)  # fmt: skip


def check_delete_model(context: OperationContext) -> Iterator[Raised]:
    operation: ops.DeleteModel = context.operation
    model = context.model(context.before, operation.name)
    if model is not None and context.new_table(model._meta.db_table):
        return
    _count, rows = context.facts.rows(model._meta.db_table) if model else (0, "0")
    yield Raised("DBT105", f"The table of {operation.name} and its {rows} rows are dropped.", None)


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
    exists = context.facts.exists(table) and not context.new_table(table)
    quote = context.connection.ops.quote_name
    if old.null and not new.null and exists and not fills_nulls(context, table, str(new.column)):
        added = context.facts.added.get((table, str(old.column)))
        if added is not None:  # not in the database yet: every row holds its default
            nulls = context.facts.rows(table)[0] if holds_null(added) else 0
        else:
            (nulls,) = context.facts.query(
                f"SELECT COUNT(*) FROM {quote(table)} WHERE {quote(old.column)} IS NULL"
            )[0]
        if nulls:
            yield Raised("DBT106", f"{label} becomes required, but {nulls:,} rows hold NULL and the migration "
                   f"fills nothing in: it will fail.", None)  # fmt: skip
    old_type, new_type = old.db_type(context.connection), new.db_type(context.connection)
    if exists and old_type != new_type and not widens(str(old_type), str(new_type)):
        yield Raised("DBT108", f"{label} changes type from {old_type} to {new_type}: values that do not "
               f"convert make the migration fail.", None)  # fmt: skip
    if new.unique and not old.unique and exists:
        yield from duplicates(context, table, [str(old.column)], label)


def holds_null(field: Any) -> bool:
    """What a column added with this field holds in the rows that were there."""
    return not (has_db_default(field) or has_default(field))


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
    for statement in statements(operation.sql, context.connection):
        if statement.destroys:
            yield Raised("DBT304", "The SQL drops or truncates; what it removes is afterwards only in the backup.",
                   statement.text)  # fmt: skip
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


# SQL as the database reads it: parsed by sqlglot in this database's dialect, so a
# statement is judged by what it is (DROP, TRUNCATE, ALTER TABLE … DROP COLUMN or
# RENAME), never by words that happen to appear in it (a string, a comment, a
# type such as numeric(12, 2)).
@dataclass(frozen=True)
class Statement:
    text: str
    destroys: bool  # drops a table, column, schema or database, or truncates
    renames: bool  # renames a table or column


def statements(sql: Any, connection: BaseDatabaseWrapper) -> Iterator[Statement]:
    """Each statement of a RunSQL's sql (a string, or a list of strings or
    (sql, params) pairs). What the parser cannot read (a DO block, a dialect's
    own syntax) is judged by its words, so nothing is passed over."""
    dialect = backend_for(connection).sql_dialect
    for text in sql_texts(sql):
        try:
            with quiet_parser():
                parsed = [e for e in sqlglot.parse(text, read=dialect) if e is not None]
        except sqlglot.errors.SqlglotError:
            parsed = []
        if not parsed or any(isinstance(e, sqlglot.exp.Command) for e in parsed):
            yield Statement(
                one_line(text), bool(DESTRUCTIVE_SQL.search(text)), bool(RENAME_SQL.search(text))
            )
            continue
        for expression in parsed:
            yield Statement(one_line(expression.sql(dialect=dialect)), destroys(expression),
                            renames(expression))  # fmt: skip


@contextmanager
def quiet_parser() -> Iterator[None]:
    """sqlglot logs a warning for each statement it reads as a plain Command."""
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def destroys(expression: Any) -> bool:
    exp = sqlglot.exp
    if isinstance(expression, exp.TruncateTable):
        return True
    if isinstance(expression, exp.Drop):
        return str(expression.args.get("kind") or "").upper() in {"TABLE", "SCHEMA", "DATABASE"}
    if isinstance(expression, exp.Alter):
        return any(
            isinstance(action, exp.Drop) and str(action.args.get("kind") or "").upper() == "COLUMN"
            for action in expression.args.get("actions") or []
        )
    return False


def renames(expression: Any) -> bool:
    exp = sqlglot.exp
    return isinstance(expression, exp.Alter) and any(
        isinstance(action, (exp.RenameColumn, exp.AlterRename))
        for action in expression.args.get("actions") or []
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
    "RemoveField": check_remove_field,
    "DeleteModel": check_delete_model,
    "RenameField": check_rename,
    "RenameModel": check_rename,
    "AlterField": check_alter_field,
    "AddConstraint": check_add_constraint,
    "AlterUniqueTogether": check_alter_unique_together,
    "RunPython": check_run_python,
    "RunSQL": check_run_sql,
}


# The code that runs while the migration does ---------------------------------------


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
    if isinstance(operation, ops.AddField) and not operation.field.many_to_many:
        field = operation.field
        if not field.null and not has_db_default(field) and not field.generated:
            yield Raised("DBT401", f"{operation.model_name}.{operation.name} is required and has no database "
                         f"default: the old code, which does not know the field, inserts rows without it, "
                         f"and each such INSERT fails until the new code runs.")  # fmt: skip
    elif isinstance(operation, ops.AlterField):
        old: Any = model._meta.get_field(operation.name)
        new = operation.field
        if old.null and not new.null and not has_db_default(new):
            yield Raised("DBT401", f"{operation.model_name}.{operation.name} becomes required with no database "
                         f"default: the old code may still save None in it, and each such write fails until "
                         f"the new code runs.")  # fmt: skip
        if new.unique and not old.unique:
            yield unique_for_old_code(f"{operation.model_name}.{operation.name}")
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
    elif isinstance(operation, ops.AddConstraint) and isinstance(
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
        for statement in statements(operation.reverse_sql, context.connection):
            if statement.destroys:
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


def fills_nulls(context: OperationContext, table: str, column: str) -> bool:
    """Does the SQL Django will run fill this column's NULLs with a value? It does
    for a field made NOT NULL with a default: an UPDATE … WHERE col IS NULL on
    PostgreSQL and MariaDB, coalesce(col, default) in SQLite's table rebuild."""
    quote = context.connection.ops.quote_name
    col = re.escape(quote(column))
    update = re.compile(rf"^UPDATE\s+{re.escape(quote(table))}\s+SET\s+{col}\s*=(?!\s*NULL\b).*"
                        rf"\bWHERE\s+{col}\s+IS\s+NULL", re.I | re.S)  # fmt: skip
    coalesce = re.compile(rf"coalesce\({col},(?!\s*NULL\s*\))", re.I)
    return any(update.search(s) or coalesce.search(s) for s in context.sql)


# PostgreSQL statements ------------------------------------------------------------

QUOTED = r'"((?:[^"]|"")+)"'
PG_CREATE_INDEX = re.compile(r"^\s*CREATE\s+(UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?"
                             rf"\S+\s+ON\s+(?:ONLY\s+)?{QUOTED}", re.I)  # fmt: skip
PG_ALTER_TABLE = re.compile(rf"^\s*ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?{QUOTED}", re.I)
PG_ADD_FK = re.compile(
    rf"ADD\s+CONSTRAINT\s+\S+\s+FOREIGN\s+KEY\s*\([^)]*\)\s*REFERENCES\s+{QUOTED}", re.I
)
PG_SET_NOT_NULL = re.compile(rf"ALTER\s+COLUMN\s+{QUOTED}\s+SET\s+NOT\s+NULL", re.I)
PG_ADD_CHECK = re.compile(r"ADD\s+CONSTRAINT\s+\S+\s+CHECK\b", re.I)
PG_ADD_UNIQUE = re.compile(r"ADD\s+CONSTRAINT\s+\S+\s+UNIQUE\b(?!\s+USING\s+INDEX)", re.I)
# The type runs to USING, COLLATE, the next action or the end; commas inside
# parentheses (numeric(12, 2)) belong to it.
PG_ALTER_TYPE = re.compile(rf"ALTER\s+COLUMN\s+{QUOTED}\s+(?:SET\s+DATA\s+)?TYPE\s+((?:\([^)]*\)|[^,;(])+?)"
                           r"(?=\s+USING\b|\s+COLLATE\b|\s*,|\s*;|\s*$)", re.I)  # fmt: skip
NOT_VALID = re.compile(r"\bNOT\s+VALID\b", re.I)
# The ALTER TABLE forms Django emits that take less than ACCESS EXCLUSIVE: a foreign
# key alone (SHARE ROW EXCLUSIVE), VALIDATE CONSTRAINT (SHARE UPDATE EXCLUSIVE).
PG_WEAKER_ALTER = re.compile(
    rf"^\s*ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?{QUOTED}\s+(?:ADD\s+CONSTRAINT\s+\S+\s+FOREIGN\s+"
    r"KEY\s*\([^)]*\)\s*REFERENCES\s+(?:[^,;()]|\([^)]*\))*|VALIDATE\s+CONSTRAINT\s+\S+)\s*;?\s*$",
    re.I,
)
# Only for what the parser cannot read (see statements()).
DESTRUCTIVE_SQL = re.compile(r"\b(DROP\s+(TABLE|COLUMN|SCHEMA|DATABASE)|TRUNCATE)\b", re.I)
RENAME_SQL = re.compile(r"\bRENAME\b", re.I)
# MariaDB and MySQL quote names with backticks.
CREATE_TABLE = re.compile(
    rf"^\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:{QUOTED}|`((?:[^`]|``)+)`)", re.I
)


def check_postgresql_sql(context: OperationContext) -> Iterator[Raised]:
    for statement in context.sql:
        yield from check_postgresql_statement(context, statement)


def check_postgresql_statement(context: OperationContext, statement: str) -> Iterator[Raised]:
    shown = one_line(statement)
    index = PG_CREATE_INDEX.match(statement)
    if index:
        table = unquote(index.group(3))
        if not index.group(2) and locks_existing(context, table):
            held = held_exclusive(context, table)
            if held:
                yield Raised("DBT201", f"The index build on {table} ({size(context, table)}) runs under the "
                       f"ACCESS EXCLUSIVE lock that {held} took earlier in this migration: reads and writes "
                       f"wait until it commits.", shown)  # fmt: skip
            else:
                yield Raised("DBT201", f"The index build blocks writes to {table} ({size(context, table)}) "
                       f"until it is done (SHARE lock).", shown)  # fmt: skip
        return
    alter = PG_ALTER_TABLE.match(statement)
    if not alter:
        return
    table = unquote(alter.group(1))
    if not locks_existing(context, table):
        return
    yield from check_postgresql_alter_table(context, statement, table)
    if context.exclusive is not None and not PG_WEAKER_ALTER.match(statement):
        context.exclusive.setdefault(table, shown.rstrip("; "))


def held_exclusive(context: OperationContext, *tables: str) -> str | None:
    """How to name the earlier statement of this transaction that holds one of
    these tables under ACCESS EXCLUSIVE, or None."""
    for table in tables:
        statement = (context.exclusive or {}).get(table)
        if statement:
            return statement if len(statement) <= 80 else f"{statement[:79]}…"
    return None


def check_postgresql_alter_table(
    context: OperationContext, statement: str, table: str
) -> Iterator[Raised]:
    shown = one_line(statement)
    where = f"{table} ({size(context, table)})"
    validated = not NOT_VALID.search(statement)
    foreign_key = PG_ADD_FK.search(statement)
    if foreign_key and validated:
        referenced = unquote(foreign_key.group(1))
        held = held_exclusive(context, table, referenced)
        if held:
            yield Raised("DBT202", f"Adding the foreign key scans {where} to validate it under the ACCESS "
                   f"EXCLUSIVE lock that {held} took earlier in this migration: reads and writes wait until "
                   f"it commits.", shown)  # fmt: skip
        else:
            yield Raised("DBT202", f"Adding the foreign key scans {where} to validate it, holding a SHARE ROW "
                   f"EXCLUSIVE lock on it and on {referenced} (writes to both wait).", shown)  # fmt: skip
    for match in PG_SET_NOT_NULL.finditer(statement):
        yield Raised("DBT203", f"SET NOT NULL on {unquote(match.group(1))} scans {where} under an ACCESS "
               f"EXCLUSIVE lock (reads and writes wait).", shown)  # fmt: skip
    if PG_ADD_CHECK.search(statement) and validated:
        yield Raised("DBT204", f"The CHECK constraint is validated against every row of {where} under an "
               f"ACCESS EXCLUSIVE lock (reads and writes wait).", shown)  # fmt: skip
    if PG_ADD_UNIQUE.search(statement):
        yield Raised("DBT206", f"The UNIQUE constraint builds its index on {where} under an ACCESS EXCLUSIVE "
               f"lock (reads and writes wait).", shown)  # fmt: skip
    for match in PG_ALTER_TYPE.finditer(statement):
        column, new_type = unquote(match.group(1)), match.group(2).strip()
        old_type = context.facts.column_type(table, column)
        if old_type and rewrites(old_type, new_type):
            yield Raised("DBT205", f"{column} from {old_type} to {new_type} rewrites {where} and its indexes "
                   f"under an ACCESS EXCLUSIVE lock (reads and writes wait).", shown)  # fmt: skip


def locks_existing(context: OperationContext, table: str) -> bool:
    """A table the same migration creates is empty and unused: locking it costs nothing."""
    return table not in context.created_in_migration and context.facts.exists(table)


def size(context: OperationContext, table: str) -> str:
    _count, rows = context.facts.rows(table)
    return f"{rows} rows"


VARCHAR = re.compile(r"(?:character varying|varchar)(?:\((\d+)\))?")
NUMERIC = re.compile(r"(?:numeric|decimal)\((\d+),\s*(\d+)\)")
TEXT = {"text", "longtext"}
INTEGER_BITS = {"smallint": 16, "integer": 32, "int": 32, "bigint": 64}


def column_type(name: str) -> str:
    """A type in one spelling, whoever spelt it: 'integer AUTO_INCREMENT' (MySQL's
    AutoField) is an integer, 'character varying(20)' a varchar(20), 'numeric(12, 2)'
    a numeric(12,2)."""
    name = " ".join(name.lower().split()).removesuffix(" auto_increment")
    return re.sub(r",\s*", ",", name.replace("character varying", "varchar"))


def integer_range(name: str) -> tuple[int, int] | None:
    base, _space, unsigned = name.partition(" ")
    bits = INTEGER_BITS.get(base)
    if bits is None or unsigned not in ("", "unsigned"):
        return None
    return (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def widens(old: str, new: str) -> bool:
    """Does every value of type `old` fit type `new` unchanged? A longer varchar,
    varchar to text, a wider integer, a numeric with more precision and the same
    scale: no value can fail to convert. Any spelling of PostgreSQL, MariaDB or SQLite."""
    old, new = column_type(old), column_type(new)
    if old == new:
        return False
    old_varchar, new_varchar = VARCHAR.fullmatch(old), VARCHAR.fullmatch(new)
    if new in TEXT or (new_varchar and not new_varchar.group(1)):
        return bool(old_varchar or old in TEXT)
    if old_varchar and new_varchar and old_varchar.group(1):
        return int(new_varchar.group(1)) > int(old_varchar.group(1))
    old_numeric, new_numeric = NUMERIC.fullmatch(old), NUMERIC.fullmatch(new)
    if old_numeric and new_numeric:
        same_scale = old_numeric.group(2) == new_numeric.group(2)
        return same_scale and int(new_numeric.group(1)) > int(old_numeric.group(1))
    old_range, new_range = integer_range(old), integer_range(new)
    if old_range and new_range:
        return new_range[0] <= old_range[0] and old_range[1] <= new_range[1]
    return False


def rewrites(old: str, new: str) -> bool:
    """Does ALTER COLUMN … TYPE rewrite the table on PostgreSQL? Not for the widenings
    it does in place (binary-coercible: varchar and numeric); a wider integer
    changes the stored width, so it rewrites like any other change."""
    if column_type(old) == column_type(new):
        return False
    return not widens(old, new) or integer_range(column_type(old)) is not None


def unquote(name: str) -> str:
    return name.replace('""', '"')


def one_line(sql: str) -> str:
    return " ".join(sql.split())


def sql_texts(sql: Any) -> list[str]:
    """RunSQL's sql or reverse_sql: a string, or a list of strings and (sql, params) pairs."""
    if sql is None or sql == "":
        return []
    if isinstance(sql, str):
        return [sql]
    return [item if isinstance(item, str) else str(item[0]) for item in sql]


def tables_created(statements: list[str]) -> set[str]:
    return {
        unquote(m.group(1)) if m.group(1) else m.group(2).replace("``", "`")
        for s in statements
        if (m := CREATE_TABLE.match(s))
    }


# RunPython code ---------------------------------------------------------------------


def function_name(code: Any) -> str:
    return str(getattr(code, "__qualname__", None) or getattr(code, "__name__", None) or repr(code))


def imported_models(function: Any) -> Iterator[str]:
    """Labels of real (today's) models a RunPython function reaches through its
    globals or its own imports, instead of through apps.get_model()."""
    code = getattr(function, "__code__", None)
    if code is None:
        return
    namespace = getattr(function, "__globals__", {})
    for instruction, attributes in instructions(code):
        value: Any = None
        if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
            value = namespace.get(instruction.argval)
        elif instruction.opname == "IMPORT_NAME":
            # Only modules already loaded (Django has loaded every app's models):
            # the check must not import anything itself.
            value = sys.modules.get(instruction.argval)
        if isinstance(value, type) and issubclass(value, models.Model):
            yield value._meta.label
        elif isinstance(value, types.ModuleType):
            for name in attributes:
                member = getattr(value, name, None)
                if isinstance(member, type) and issubclass(member, models.Model):
                    yield member._meta.label


def instructions(code: types.CodeType) -> Iterator[tuple[dis.Instruction, set[str]]]:
    """Every instruction, nested functions included, with the names the code uses as attributes."""
    attributes = {
        i.argval for i in dis.get_instructions(code) if i.opname in ("LOAD_ATTR", "IMPORT_FROM")
    }
    for instruction in dis.get_instructions(code):
        yield instruction, attributes
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from instructions(constant)
