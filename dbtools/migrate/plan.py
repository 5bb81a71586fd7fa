"""What pending migrations will do, and what is risky in them.

The plan is Django's own: `migrate --plan` resolves the targets (squashed
migrations, `zero`, prefixes, conflicts and history checks included), so
safemigrate shows exactly what `migrate` will run. For each operation the
SQL the schema editor would execute on this database is collected, as
`sqlmigrate` does, and the checks of `dbtools.migrate.checks` judge it together
with the operation and the data.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from django.core.management.base import CommandError
from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations import operations as ops
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.migration import Migration
from django.db.migrations.state import ProjectState

from .._compat import migrate_plan_keys, state_before_migrating
from ..backends import backend_for
from ..conf import deploy_problem, get_settings
from ..exceptions import MigrationError
from .checks.context import OperationContext, TableFacts
from .checks.findings import (
    ACCEPT_ATTRIBUTE,
    CHECKS,
    LEVELS,
    Finding,
    acceptance_problem,
    at_or_above,
)
from .checks.operations import check_operation
from .checks.sql import tables_created
from .leftovers import Leftover, find_leftovers

Step = tuple[Migration, bool]  # (migration, backwards)
FAIL_ON = tuple(level for level in LEVELS if level != "info")  # what --fail-on accepts


@dataclass
class OperationSQL:
    """One operation in the order it runs (backwards: last first), with its SQL."""

    description: str
    sql: list[str]


@dataclass
class MigrationPlan:
    using: str
    vendor: str
    steps: list[Step]
    deploy: str  # the deploy order the running-code checks assumed
    sql: dict[str, list[OperationSQL]] = field(default_factory=dict)  # per "app.name"
    findings: list[Finding] = field(default_factory=list)
    leftovers: list[Leftover] = field(default_factory=list)  # of an earlier, killed run

    @property
    def pending(self) -> bool:
        return bool(self.steps)

    @property
    def risks(self) -> list[Finding]:
        """Findings nobody has acknowledged."""
        return [f for f in self.findings if f.acknowledged is None]

    @property
    def high_risk(self) -> list[Finding]:
        return [f for f in self.risks if f.level == "high"]

    def summary(self) -> str:
        """The findings counted by level, highest first, then the acknowledged ones."""
        counts = {
            level: sum(1 for f in self.risks if f.level == level) for level in reversed(LEVELS)
        }
        summary = ", ".join(f"{n} {level}" for level, n in counts.items() if n)
        acknowledged = len(self.findings) - len(self.risks)
        if not acknowledged:
            return summary
        return (
            f"{summary}; {acknowledged} acknowledged" if summary else f"{acknowledged} acknowledged"
        )

    def blocking(self, fail_on: str) -> list[Finding]:
        if fail_on not in FAIL_ON:
            raise MigrationError(f"--fail-on must be one of {', '.join(FAIL_ON)}, not {fail_on!r}.")
        return [f for f in self.risks if at_or_above(f.level, fail_on)]


def plan_migrations(
    using: str = "default",
    app_label: str | None = None,
    migration_name: str | None = None,
    deploy: str | None = None,
) -> MigrationPlan:
    """`deploy`: the order a release reaches production in, which the checks of
    the running code assume (None: DBTOOLS['DEPLOY'])."""
    if deploy is not None and (problem := deploy_problem(deploy)):
        raise MigrationError(f"deploy {problem}")
    connection = connections[using]
    steps = django_plan(using, app_label, migration_name)
    plan = MigrationPlan(using, connection.vendor, steps, deploy or get_settings().deploy)
    if steps:
        executor = MigrationExecutor(connection)
        acknowledged = acknowledgements(steps)
        facts = TableFacts(connection)
        state = state_before_migrating(executor)
        for migration, backwards in steps:
            key = f"{migration.app_label}.{migration.name}"
            if backwards:
                before = executor.loader.project_state(
                    (migration.app_label, migration.name), at_end=False
                )
                contexts = backwards_contexts(connection, facts, migration, before)
            else:
                contexts = forwards_contexts(connection, facts, migration, state)
            plan.sql[key] = [
                OperationSQL(describe(c.operation, backwards), c.sql) for c in contexts
            ]
            for index, context in enumerate(contexts):
                context.deploy = plan.deploy
                for code, message, sql, level in check_operation(context):
                    plan.findings.append(Finding(
                        code, level or CHECKS[code].level, key, describe(context.operation, backwards),
                        message, sql, index, backwards, acknowledged.get(key, {}).get(code),
                    ))  # fmt: skip
                if not backwards:
                    facts.follow(context)
            if contexts and not backwards:
                state = contexts[-1].after
        plan.leftovers = find_leftovers(connection, steps)
    return plan


def django_plan(using: str, app_label: str | None, migration_name: str | None) -> list[Step]:
    """The plan `migrate [app_label] [migration_name]` would run, from Django's own
    `migrate --plan`: its output names each migration on a line of its own."""
    args = [a for a in (app_label, migration_name) if a]
    try:
        keys = migrate_plan_keys(using, args)
    except CommandError as exc:
        raise MigrationError(" ".join(str(exc).split()).rstrip(".") + ".") from exc
    loader = MigrationLoader(connections[using])
    steps: list[Step] = []
    for key in keys:
        if key not in loader.graph.nodes:
            continue  # the rest of an operation whose description has a line break
        # A plan goes forwards over unapplied migrations and backwards over applied ones.
        steps.append((loader.graph.nodes[key], key in loader.applied_migrations))
    return steps


def forwards_contexts(
    connection: BaseDatabaseWrapper, facts: TableFacts, migration: Migration, state: ProjectState
) -> list[OperationContext]:
    contexts = []
    for operation in migration.operations:
        after = state.clone()
        operation.state_forwards(migration.app_label, after)
        contexts.append(forwards_context(connection, facts, migration, operation, state, after))
        state = after
    created = tables_created([s for c in contexts for s in c.sql], connection)
    exclusive: dict[str, str] | None = {} if migration.atomic else None
    not_valid: dict[str, tuple[str, str]] | None = {} if migration.atomic else None
    for context in contexts:
        for each in context.with_parts():
            each.created_in_migration = created
            each.exclusive, each.not_valid = exclusive, not_valid
    return contexts


def forwards_context(
    connection: BaseDatabaseWrapper,
    facts: TableFacts,
    migration: Migration,
    operation: Any,
    before: ProjectState,
    after: ProjectState,
) -> OperationContext:
    sql = collect_sql(connection, migration, operation, before, after, backwards=False)
    context = OperationContext(connection, facts, migration.app_label, operation,
                               before, after, sql, False, set())  # fmt: skip
    if isinstance(operation, ops.SeparateDatabaseAndState):
        # Its database operations run as they are, each from the state the one
        # before it leaves (as Django runs them); its state operations send nothing.
        context.parts, state = [], before
        for part in operation.database_operations:
            part_after = state.clone()
            part.state_forwards(migration.app_label, part_after)
            context.parts.append(
                forwards_context(connection, facts, migration, part, state, part_after)
            )
            state = part_after
    return context


def backwards_contexts(
    connection: BaseDatabaseWrapper, facts: TableFacts, migration: Migration, state: ProjectState
) -> list[OperationContext]:
    """Operations in the order Migration.unapply() undoes them, `state` being the
    project state before the migration."""
    pairs: list[tuple[Any, ProjectState, ProjectState]] = []
    for operation in migration.operations:
        with_it = state.clone()
        operation.state_forwards(migration.app_label, with_it)
        pairs.insert(0, (operation, with_it, state))
        state = with_it
    contexts = []
    for operation, applied, undone in pairs:
        sql = (
            collect_sql(connection, migration, operation, applied, undone, backwards=True)
            if operation.reversible
            else []
        )
        contexts.append(OperationContext(connection, facts, migration.app_label, operation,
                                         applied, undone, sql, True, set()))  # fmt: skip
    exclusive: dict[str, str] | None = {} if migration.atomic else None
    not_valid: dict[str, tuple[str, str]] | None = {} if migration.atomic else None
    for context in contexts:
        context.exclusive, context.not_valid = exclusive, not_valid
    return contexts


def collect_sql(
    connection: BaseDatabaseWrapper,
    migration: Migration,
    operation: Any,
    before: ProjectState,
    after: ProjectState,
    backwards: bool,
) -> list[str]:
    """The statements this operation would run here, collected and not run (as sqlmigrate).
    RunPython has none; an operation that cannot be collected here has none either."""
    if isinstance(operation, ops.RunPython):
        return []
    # An operation that writes through its own cursor instead of the schema
    # editor would really write: on PostgreSQL that is rolled back here.
    guarded = backend_for(connection).rolls_back_collected_writes and migration.atomic
    try:
        with transaction.atomic(using=connection.alias) if guarded else nullcontext():
            with connection.schema_editor(collect_sql=True, atomic=migration.atomic) as editor:
                if backwards:
                    operation.database_backwards(migration.app_label, editor, before, after)
                else:
                    operation.database_forwards(migration.app_label, editor, before, after)
            if guarded:
                transaction.set_rollback(True, using=connection.alias)
    except (DatabaseError, LookupError, ValueError, NotImplementedError):
        return []
    return [str(statement) for statement in editor.collected_sql]


def describe(operation: Any, backwards: bool) -> str:
    text = str(operation.describe())
    if backwards:
        return ("Undo " + text) if operation.reversible else f"IRREVERSIBLE: {text}"
    return text


def describe_step(migration: Migration, backwards: bool) -> list[str]:
    """One line per operation, as `migrate --plan` shows them."""
    return [describe(operation, backwards) for operation in migration.operations]


# Findings in Django's own migrations that were reviewed and are no danger.
REVIEWED_IN_DJANGO = {
    "contenttypes.0002_remove_content_type_name": {
        "DBT104": "Django's own migration: the column held each model's verbose name, which Django "
        "computes from the model since 1.8, so nothing is lost with it."
    },
}


def acknowledgements(steps: list[Step]) -> dict[str, dict[str, str]]:
    """Reviewed findings, by migration and code: dbtools' own review of Django's
    migrations, then the migration's own `dbtools_accept` and DBTOOLS['ACCEPT']."""
    found: dict[str, dict[str, str]] = {k: dict(v) for k, v in REVIEWED_IN_DJANGO.items()}
    for key, accepted in get_settings().accept.items():
        found.setdefault(key, {}).update(accepted)
    for migration, _backwards in steps:
        key = f"{migration.app_label}.{migration.name}"
        declared = getattr(migration, ACCEPT_ATTRIBUTE, None)
        if declared is None:
            continue
        problem = acceptance_problem(declared)
        if problem:
            raise MigrationError(f"{key}: {ACCEPT_ATTRIBUTE} {problem}")
        found.setdefault(key, {}).update(declared)
    return found


REPORT_FORMAT = "dbtools.safemigrate.report/1"
RUNNING_CODE = ("DBT401", "DBT402", "DBT403", "DBT404", "DBT405")


def plan_report(plan: MigrationPlan, fail_on: str) -> dict[str, Any]:
    """The plan and its findings as one JSON document (docs/safemigrate-report.schema.json)."""
    return {
        "format": REPORT_FORMAT,
        "database": plan.using,
        "vendor": plan.vendor,
        "deploy": plan.deploy,
        "steps": [
            {
                "migration": f"{migration.app_label}.{migration.name}",
                "direction": "backwards" if backwards else "forwards",
                "atomic": bool(migration.atomic),
                "operations": [
                    {"description": operation.description, "sql": operation.sql}
                    for operation in plan.sql[f"{migration.app_label}.{migration.name}"]
                ],
            }
            for migration, backwards in plan.steps
        ],
        "findings": [
            {
                "code": f.code,
                "level": f.level,
                "title": f.title,
                "migration": f.migration,
                "operation": f.operation,
                "operation_index": f.operation_index,
                "direction": "backwards" if f.backwards else "forwards",
                "message": f.message,
                "sql": f.sql,
                "running_code": f.message if f.code in RUNNING_CODE else None,
                "fix": f.fix,
                "acknowledged": f.acknowledged,
            }
            for f in plan.findings
        ],
        "leftovers": [
            {"what": found.thing, "migration": found.migration, "operation": found.operation}
            for found in plan.leftovers
        ],
        "fail_on": fail_on,
        "blocking": len(plan.blocking(fail_on)),
    }
