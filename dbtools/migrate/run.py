"""Running Django's own migrate for safemigrate: only the plan that was shown,
a failure returned rather than raised, and what an interrupted run left said."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.core.management import call_command
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.migration import Migration
from django.db.migrations.recorder import MigrationRecorder
from django.db.models.signals import pre_migrate

from ..backends import backend_for
from ..backup import applied_migrations
from ..exceptions import MigrationError
from ..interrupts import tell


class PlanChanged(MigrationError):
    """What migrate was about to run is not the plan that was shown and checked."""


@dataclass
class MigrateOutcome:
    ok: bool
    error: BaseException | None
    applied: list[str]  # migrations this run applied
    failed: str | None  # the migration that failed, if one did
    unapplied: list[str] = field(default_factory=list)  # migrations this run unapplied (going back)


def run_migrate(
    using: str,
    app_label: str | None,
    migration_name: str | None,
    planned: list[tuple[Migration, bool]],
    stdout: Any,
    stderr: Any,
    verbosity: int,
    lock_timeout: str = "0",
) -> MigrateOutcome:
    """Django's own migrate, output shown as usual; a failure is returned, not raised.

    It runs only the plan that was shown: if what migrate is about to run
    differs (another process migrated, a file changed), it stops before the
    first migration.
    """
    before = _applied_keys(using)
    args = [a for a in (app_label, migration_name) if a]
    error: BaseException | None = None
    # Held here for the whole migrate: the signal keeps only a weak reference.
    same_plan = refuse_another_plan(using, planned)
    pre_migrate.connect(same_plan, dispatch_uid=f"dbtools.safemigrate.{using}")
    since_record = StatementsSinceRecord()
    try:
        with (
            postgresql_lock_timeout(connections[using], lock_timeout),
            connections[using].execute_wrapper(since_record),
        ):
            call_command(
                "migrate", *args, database=using, interactive=False, verbosity=verbosity,
                stdout=stdout, stderr=stderr,
            )  # fmt: skip
    except (Exception, SystemExit) as exc:  # SystemExit: migrate's own sys.exit paths
        error = exc
    except KeyboardInterrupt as exc:
        tell(exc, interrupted_migrate(using, planned, before, started=since_record.count > 0))
        raise
    finally:
        pre_migrate.disconnect(dispatch_uid=f"dbtools.safemigrate.{using}")
    return migrate_outcome(planned, before, _applied_keys(using), error)


def migrate_outcome(
    planned: list[tuple[Migration, bool]],
    before: set[tuple[str, str]],
    after: set[tuple[str, str]],
    error: BaseException | None,
) -> MigrateOutcome:
    """What migrate did of the plan, from the migrations recorded before and after it."""
    applied = [
        f"{m.app_label}.{m.name}"
        for m, backwards in planned
        if not backwards and (m.app_label, m.name) in after - before
    ]
    unapplied = [
        f"{m.app_label}.{m.name}"
        for m, backwards in planned
        if backwards and (m.app_label, m.name) in before - after
    ]
    failed = None
    if error is not None and not isinstance(error, PlanChanged):
        # The first step not done: not applied (forwards) or still applied (backwards).
        failed = next(
            (
                f"{m.app_label}.{m.name}"
                for m, backwards in planned
                if ((m.app_label, m.name) in after) == backwards
            ),
            None,
        )
    return MigrateOutcome(error is None, error, applied, failed, unapplied)


def refuse_another_plan(using: str, planned: list[tuple[Migration, bool]]) -> Callable[..., None]:
    """A pre_migrate receiver that stops migrate if what it is about to run is not `planned`."""
    expected = [(m.app_label, m.name, backwards) for m, backwards in planned]

    def same_plan(
        sender: Any, plan: list[tuple[Migration, bool]] | None = None, **kwargs: Any
    ) -> None:
        if kwargs.get("using") != using or plan is None:
            return
        actual = [(m.app_label, m.name, backwards) for m, backwards in plan]
        if actual != expected:
            names = ", ".join(f"{a}.{n}" for a, n, _ in actual) or "nothing"
            raise PlanChanged(
                f"migrate was about to run {names}, not the plan shown and checked; the database or "
                f"the migration files changed meanwhile. Run safemigrate again."
            )

    return same_plan


class StatementsSinceRecord:
    """Counts the statements that could change something which migrate sent
    since it last recorded a migration as applied or unapplied: none means the
    next migration had not begun."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        words = str(sql).lstrip().lower()
        if RECORDING.match(words):
            self.count = 0
        elif not words.startswith(CHANGE_NOTHING):
            self.count += 1
        return execute(sql, params, many, context)


RECORDS = MigrationRecorder.Migration._meta.db_table
# The recorder's own INSERT and DELETE have the table as their target; a
# migration's statement that only reads it (INSERT … SELECT … FROM it) is no record.
RECORDING = re.compile(rf"(insert\s+into|delete\s+from)\s+[`\"]?{re.escape(RECORDS)}[`\"]?\s")
# Reads, and the transaction and constraint-checking statements Django's schema
# editor sends between two migrations (SQLite's PRAGMA foreign_key_check, for one).
CHANGE_NOTHING = ("select", "pragma", "show", "begin", "savepoint", "release", "set constraints")


def interrupted_migrate(
    using: str,
    planned: list[tuple[Migration, bool]],
    before: set[tuple[str, str]],
    started: bool = True,
) -> str:
    """What an interrupted migrate left, as the migration table records it.

    `started`: whether migrate sent any statement after its last record, so
    that the first migration not recorded may have begun."""
    try:
        after = _applied_keys(using)
    except Exception:
        return (
            "Migrate was interrupted; `manage.py showmigrations` shows which migrations it applied."
        )
    done = [
        f"{'unapplied' if backwards else 'applied'} {m.app_label}.{m.name}"
        for m, backwards in planned
        if (m.app_label, m.name) in (before - after if backwards else after - before)
    ]
    pending = [
        (m, backwards) for m, backwards in planned if ((m.app_label, m.name) in after) == backwards
    ]
    said = f"migrate was interrupted: {', '.join(done) or 'nothing was migrated'}"
    if pending:
        m, backwards = pending[0]
        said += f"; {m.app_label}.{m.name} is {'still' if backwards else 'not'} recorded as applied"
        if not started:
            said += " and had not begun"
        elif not connections[using].features.can_rollback_ddl or not m.atomic:
            said += " and may be half-applied"
    return said[0].upper() + said[1:] + "."


@contextmanager
def postgresql_lock_timeout(connection: BaseDatabaseWrapper, timeout: str) -> Iterator[None]:
    """Every transaction migrate opens starts with SET LOCAL lock_timeout, so a
    migration waiting for a lock fails after `timeout` instead of queueing
    every other query on the table behind it. SET LOCAL ends with the
    transaction, so nothing leaks to other clients of a transaction pooler.
    Statements outside a transaction (a migration with atomic = False) are
    left without it: a session-wide SET would leak through the pooler."""
    if not backend_for(connection).has_transaction_lock_timeout or timeout.strip() in ("0", ""):
        yield
        return
    outermost: list[Any] = [None]

    def set_lock_timeout(
        execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        blocks = getattr(connection, "atomic_blocks", None)
        if connection.in_atomic_block and blocks and outermost[0] is not blocks[0]:
            outermost[0] = blocks[0]
            context["cursor"].cursor.execute(
                "SELECT set_config('lock_timeout', %s, true)", [timeout]
            )
        return execute(sql, params, many, context)

    with connection.execute_wrapper(set_lock_timeout):
        yield


def _applied_keys(using: str) -> set[tuple[str, str]]:
    return {
        (app, name)
        for app, names in applied_migrations(connections[using]).items()
        for name in names
    }


def describe(error: BaseException | None) -> str:
    if isinstance(error, SystemExit):
        return f"migrate exited with status {error.code}"
    return one_line(error) if error is not None else "unknown error"


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
