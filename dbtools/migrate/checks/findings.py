"""The findings safemigrate reports: each check's code, level and fix, and a
project's acceptance of a risk ({code: reason}), validated here so that the
settings (conf.py) and the plan share one rule."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

LEVELS = ("info", "warning", "high")  # lowest first: --fail-on compares by this order
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
              "NOT_NULL", "ban-drop-default"),
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
              "NOT_NULL", "adding-not-nullable-field"),
        Check("DBT107", "high", "A unique constraint over data that has duplicates",
              "Remove or merge the duplicates in a data migration before this one.",
              "ADD_UNIQUE", "disallowed-unique-constraint, constraint-missing-not-valid"),
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
              "RUNPYTHON_REVERSIBLE, RUNSQL_REVERSIBLE", ""),
        Check("DBT201", "warning", "PostgreSQL: an index is built without CONCURRENTLY on an existing table",
              "Use AddIndexConcurrently (django.contrib.postgres.operations) in a migration with "
              "atomic = False: it builds the index without blocking writes.",
              "CREATE_INDEX", "require-concurrent-index-creation"),
        Check("DBT202", "warning", "PostgreSQL: a foreign key is added and validated in one step",
              "Add it NOT VALID (RunSQL with state_operations), then VALIDATE CONSTRAINT in a later "
              "migration: the validation then takes a lock that lets writes through.",
              "", "adding-foreign-key-constraint, constraint-missing-not-valid"),
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
        Check("DBT206", "warning", "PostgreSQL: a UNIQUE or PRIMARY KEY constraint builds its index under an "
              "ACCESS EXCLUSIVE lock",
              "CREATE UNIQUE INDEX CONCURRENTLY, then ALTER TABLE … ADD CONSTRAINT … UNIQUE (or PRIMARY KEY) "
              "USING INDEX (RunSQL with state_operations).",
              "ADD_UNIQUE", "disallowed-unique-constraint, constraint-missing-not-valid"),
        Check("DBT207", "high", "PostgreSQL: CONCURRENTLY in an atomic migration, which PostgreSQL refuses",
              "Set atomic = False on the migration, and keep in it only the concurrent operations (each "
              "then commits on its own, so a failure leaves the others done).",
              "", "ban-concurrent-index-creation-in-transaction"),
        Check("DBT208", "warning", "PostgreSQL: a column added with a value computed for each row rewrites the table",
              "Add the column with no default (or a constant one), set the default for new rows, fill the "
              "existing rows in batches; or run it when the table may be unavailable for the rewrite.",
              "", "adding-field-with-default"),
        Check("DBT401", "warning", "Running code: a required column the old code's INSERTs leave out or set to NULL",
              "Give the field a db_default (the database then fills it for the old code), or add it with "
              "null=True in this release and make it required in the next.",
              "NOT_NULL", "ban-drop-default"),
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
              "ADD_UNIQUE", "disallowed-unique-constraint, constraint-missing-not-valid"),
        Check("DBT405", "warning", "Running code: the new code uses a column or table this migration adds",
              "Run the migration before the new code starts (migrate-first), or add the field in a release "
              "before the code that uses it.",
              "NOT_NULL", "adding-required-field"),
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
              "DROP_TABLE", "ban-drop-table, ban-drop-column, ban-truncate-cascade"),
        Check("DBT305", "high", "PostgreSQL: RunSQL that the server's own grammar rejects",
              "Correct the SQL: the parser's message says where it stops; try it in psql on a copy of the "
              "database.",
              "", "syntax-error"),
        Check("DBT306", "high", "RunSQL deletes every row of a table (DELETE without WHERE)",
              "Add the WHERE the deletion needs, or make sure the rows are not needed; afterwards they live "
              "only in the backup safemigrate takes.",
              "", ""),
        Check("DBT307", "high", "PostgreSQL: RunSQL drops a type, domain or extension with CASCADE, and with it the "
              "columns of that type",
              "Drop or convert the columns that use it first, in their own migration, then drop the type "
              "without CASCADE (it then fails rather than drop data).",
              "", "ban-drop-type"),
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


class Raised(NamedTuple):
    """What a check finds in one operation, before it becomes a Finding."""

    code: str
    message: str
    sql: str | None = None  # the statement it is about
    level: str | None = None  # where it differs from the check's usual level
