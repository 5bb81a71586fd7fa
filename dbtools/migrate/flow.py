"""safemigrate's flow: plan, checks, backup, migrate, then restore or roll back.

`safe_migrate()` is the whole flow after planning, callable from a test or a
script without `call_command`: questions and messages go through the
`Console` the caller passes in. The command only parses options, prints the
plan and turns the outcome into an exit code.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.migration import Migration
from django.db.migrations.recorder import MigrationRecorder
from django.db.models.signals import pre_migrate

from ..backends import backend_for
from ..backup import BackupResult, applied_migrations, backup_database
from ..conf import get_settings, lock_timeout_problem
from ..display import shown
from ..envelope import can_decrypt, is_encrypted
from ..exceptions import ArchiveError, DbtoolsError, MigrationError, RestoreError
from ..interrupts import tell, told
from ..restore import RestoreResult, prepare_restore, restore_database
from .plan import MigrationPlan
from .rollback import Leftover, RollbackIncomplete, RollbackResult, find_leftovers, rollback
from .schema import read_schema

LOCK_NAME = "dbtools.safemigrate"
LOCK_KEY = int.from_bytes(hashlib.sha256(LOCK_NAME.encode()).digest()[:8], "big", signed=True)
BUSY = "Another safemigrate is already running on this database; wait for it to finish, then run this again."
RESTORE_HELP = (
    "Restoring puts back rows the migration removed or reset (a data migration that deleted rows, "
    "a table dropped and re-created); rows that are there are left alone."
)


RESTORE_CHOICES = ("ask", "never", "always")


class Exit(IntEnum):
    """safemigrate's exit codes, for scripts and CI."""

    OK = 0  # migrated, nothing to do, or --check found nothing at or above --fail-on
    FAILED = 1  # a migration (or the restore after it) failed and was not rolled back
    ROLLED_BACK = 2  # a migration failed; schema put back and compared, data restored or left alone
    CANCELLED = 3  # answered no at a prompt; nothing was changed
    SCHEMA_DIFFERS = 4  # rolled back, but the schema still differs (each difference printed)
    BLOCKED = 5  # findings at or above --fail-on (--check), or high findings under --no-input
    ROLLBACK_INCOMPLETE = 6  # the rollback changed the database, then could not finish


class Console(Protocol):
    def say(self, text: str, style: str = "") -> None:
        """Show a line; style is '', 'success', 'warning' or 'error'."""

    def ask(self, question: str) -> bool | None:
        """A yes/no answer, or None when nobody can answer (the input is closed)."""


@dataclass
class Options:
    using: str = DEFAULT_DB_ALIAS
    app_label: str | None = None
    migration_name: str | None = None
    interactive: bool = True
    restore: str | None = None  # ask, never, always; default: ask when interactive, else never
    rollback_on_failure: bool = False
    accept_risk: bool = False
    compress: bool | str | None = None  # None: DBTOOLS["COMPRESS"]; True: the default compression
    lock_timeout: str | None = None  # PostgreSQL duration; None: DBTOOLS['LOCK_TIMEOUT']
    verbosity: int = 1


@dataclass
class Outcome:
    exit: Exit
    message: str = ""  # the closing sentence, for a non-zero exit
    cause: BaseException | None = None
    backup: BackupResult | None = None
    migrate: MigrateOutcome | None = None
    rollback: RollbackResult | None = None
    restore: RestoreResult | None = None


def safe_migrate(
    plan: MigrationPlan,
    options: Options,
    console: Console,
    migrate_stdout: Any = None,
    migrate_stderr: Any = None,
) -> Outcome:
    """Back up, migrate as planned, then restore or roll back as asked."""
    if options.lock_timeout is not None and (problem := lock_timeout_problem(options.lock_timeout)):
        raise MigrationError(f"The lock timeout {problem}")
    if options.restore not in (None, *RESTORE_CHOICES):
        raise MigrationError(
            f"restore must be one of {', '.join(RESTORE_CHOICES)} (or None), "
            f"not {options.restore!r}."
        )
    if not plan.pending:
        return Outcome(Exit.OK)
    high = plan.high_risk
    if high and not options.accept_risk:
        if not options.interactive:
            return Outcome(Exit.BLOCKED, (
                f"{len(high)} high-risk finding(s), and --no-input cannot ask: nothing was changed. "
                f"Review them, then pass --accept-risk, or acknowledge each in its migration "
                f"(dbtools_accept) or in DBTOOLS['ACCEPT']."
            ))  # fmt: skip
        question = f"{len(high)} high-risk finding(s) above. Back up and migrate anyway? [y/N] "
        if not ask(console, question):
            return Outcome(Exit.CANCELLED, "Cancelled; nothing was changed.")
    with migration_lock(options.using):
        return migrate_with_backup(plan, options, console, migrate_stdout, migrate_stderr)


def migrate_with_backup(
    plan: MigrationPlan,
    options: Options,
    console: Console,
    migrate_stdout: Any,
    migrate_stderr: Any,
) -> Outcome:
    using = options.using
    try:
        backup = backup_database(using=using, compress=options.compress, label="pre-migrate")
    except KeyboardInterrupt as exc:
        tell(exc, "Nothing was migrated.")
        raise
    try:
        return migrate_after_backup(plan, options, console, migrate_stdout, migrate_stderr, backup)
    except KeyboardInterrupt as exc:
        tell(exc, f"The pre-migrate backup {backup.path.name} was kept.")
        raise


def migrate_after_backup(
    plan: MigrationPlan,
    options: Options,
    console: Console,
    migrate_stdout: Any,
    migrate_stderr: Any,
    backup: BackupResult,
) -> Outcome:
    using = options.using
    schema_before = read_schema(connections[using])
    # Read again under the lock: what a killed run left is not part of the
    # schema the rollback must bring back.
    leftovers = find_leftovers(connections[using], plan.steps)
    console.say(
        f"Backed up {backup.rows:,} rows from {len(backup.tables)} tables to {shown(backup.path)}",
        "success",
    )
    for path in backup.pruned:
        console.say(f"Deleted old backup {shown(path)}")
    for warning in backup.warnings:
        console.say(f"WARNING: {warning}", "warning")
    if is_encrypted(backup.path) and not can_decrypt():
        console.say(
            "WARNING: the backup is encrypted and no identity was given: restoring it or rolling "
            "back after this migrate needs --identity FILE (or DBTOOLS['IDENTITY']).",
            "warning",
        )
    timeout = (
        options.lock_timeout if options.lock_timeout is not None else get_settings().lock_timeout
    )
    migrated = run_migrate(
        using,
        options.app_label,
        options.migration_name,
        plan.steps,
        migrate_stdout,
        migrate_stderr,
        options.verbosity,
        timeout,
    )
    outcome = Outcome(Exit.OK, backup=backup, migrate=migrated)
    try:
        if migrated.ok:
            return after_success(outcome, options, console)
        return after_failure(outcome, options, console, schema_before, leftovers)
    except KeyboardInterrupt as exc:
        if migrated.ok:
            done = migrated.applied + [f"unapplied {name}" for name in migrated.unapplied]
            tell(exc, f"The migration stands: {', '.join(done) or 'nothing new'}.")
        elif not told(exc):  # the rollback says what it had done
            tell(exc, (
                f"{migrated.failed or 'A migration'} had failed, and what came after was cut short: "
                f"`manage.py showmigrations` shows where the database is."
            ))  # fmt: skip
        raise


def after_success(outcome: Outcome, options: Options, console: Console) -> Outcome:
    assert outcome.backup and outcome.migrate
    done = outcome.migrate.applied + [f"unapplied {name}" for name in outcome.migrate.unapplied]
    console.say(f"Migrated: {', '.join(done) or 'nothing new'}.", "success")
    choice = options.restore or ("ask" if options.interactive else "never")
    if choice == "never" or (
        choice == "ask"
        and not ask(console, f"{RESTORE_HELP}\nRestore data from the backup? [y/N] ")
    ):
        return outcome
    try:
        restore_plan = prepare_restore(outcome.backup.path, using=options.using)
    except (RestoreError, ArchiveError) as exc:  # e.g. encrypted, and no --identity
        # Refused before writing: the migration did its job and stands.
        console.say(f"Not restored: {exc}", "warning")
        return outcome
    try:
        outcome.restore = restore_database(restore_plan, mode="merge")
    except (DbtoolsError, DatabaseError) as exc:
        outcome.exit, outcome.cause = Exit.FAILED, exc
        outcome.message = (
            f"Migrated: {', '.join(done)}; then the restore failed and was rolled back, so it wrote "
            f"nothing: {one_line(exc)}"
        )
        return outcome
    console.say(
        f"Restored {outcome.restore.inserted:,} rows ({outcome.restore.skipped:,} already present).",
        "success",
    )
    for warning in outcome.restore.after_warnings:
        console.say(f"WARNING: {warning}", "warning")
    return outcome


def after_failure(
    outcome: Outcome,
    options: Options,
    console: Console,
    schema_before: Any,
    leftovers: list[Leftover] | None = None,
) -> Outcome:
    assert outcome.backup and outcome.migrate
    migrated, backup = outcome.migrate, outcome.backup
    outcome.cause = migrated.error
    if isinstance(migrated.error, PlanChanged):
        outcome.exit = Exit.FAILED
        outcome.message = (
            f"{migrated.error} Nothing was migrated; the backup {shown(backup.path)} was kept."
        )
        return outcome
    console.say(
        f"Migration failed: {migrated.failed or 'unknown'}: {describe(migrated.error)}", "error"
    )
    if migrated.applied:
        console.say(f"Applied before the failure: {', '.join(migrated.applied)}", "error")
    if migrated.unapplied:
        console.say(f"Unapplied before the failure: {', '.join(migrated.unapplied)}", "error")
    connection = connections[options.using]
    if not connection.features.can_rollback_ddl:
        console.say(
            f"{connection.vendor} cannot roll back DDL: {migrated.failed} may be half-applied.",
            "error",
        )
    question = "Roll back: migrate back to the backup's state and restore its data exactly? [y/N] "
    if not (options.rollback_on_failure or (options.interactive and ask(console, question))):
        outcome.exit = Exit.FAILED
        outcome.message = (
            f"The migration failed. The database is as migrate left it; to undo everything run "
            f"`manage.py safemigrate` again after fixing the migration, or restore with "
            f"`manage.py restoredb --replace --file {backup.path.name}` after migrating back."
        )
        left = [found.thing for found in leftovers or [] if found.migration == migrated.failed]
        if left and migrated.failed:
            outcome.message = (
                f"The migration failed. An earlier run left part of {migrated.failed} in the "
                f"database ({', '.join(left)}), and migrating it fails on that: "
                f"`manage.py safemigrate --rollback-on-failure` undoes it (a rollback), or undo it "
                f"by hand (`manage.py sqlmigrate {migrated.failed.replace('.', ' ', 1)} --backwards` "
                f"shows the SQL)."
            )
        return outcome
    try:
        rolled = rollback(
            backup.path, options.using, migrated.failed, schema_before, leftovers=leftovers
        )
    except RollbackIncomplete as exc:
        outcome.exit, outcome.cause = Exit.ROLLBACK_INCOMPLETE, exc
        outcome.message = f"The migration failed, and the rollback did not finish: {exc}"
        return outcome
    except MigrationError as exc:  # refused before changing anything
        outcome.exit, outcome.cause = Exit.FAILED, exc
        outcome.message = f"The migration failed. {exc}"
        return outcome
    outcome.rollback = rolled
    report_rollback(rolled, migrated.failed, backup, console)
    if not rolled.schema_as_it_was:
        outcome.exit = Exit.SCHEMA_DIFFERS
        outcome.message = (
            "Put these back by hand (`manage.py sqlmigrate APP MIGRATION --backwards` shows the SQL "
            "that reverses a migration) before migrating again: a re-run of the migration would "
            "fail on them."
        )
        if rolled.leftovers:
            outcome.message = (
                "Make the schema the one the recorded migrations make, as listed above, by hand "
                "(`manage.py sqlmigrate APP MIGRATION` shows the SQL of a migration, with "
                "--backwards the SQL that reverses it) before migrating again: a re-run of the "
                "migration would fail on them."
            )
        return outcome
    outcome.exit = Exit.ROLLED_BACK
    outcome.message = "The migration failed and was rolled back."
    return outcome


def report_rollback(
    rolled: RollbackResult, failed: str | None, backup: BackupResult, console: Console
) -> None:
    if rolled.undone_partial:
        console.say(f"Undid the half-applied part of {failed}: {'; '.join(rolled.undone_partial)}")
    if rolled.unapplied:
        console.say(f"Unapplied: {', '.join(rolled.unapplied)}")
    for index in rolled.dropped_indexes:
        console.say(f"Dropped index {index}, which the failed migration left behind.")
    if rolled.data_left_alone:
        data = (
            f"the data was left as it is: {rolled.data_left_alone}, so there was nothing to undo "
            f"(restoring the backup would have discarded writes made since it; "
            f"`restoredb --replace --file {backup.path.name}` does that if you want it)"
        )
    else:
        restored = rolled.restore.inserted if rolled.restore else 0
        data = (
            f"the data is the backup's ({restored:,} rows restored from {shown(backup.path)}, "
            f"row counts checked)"
        )
    if rolled.schema_as_it_was and rolled.leftovers:
        # Proven by the comparison: what the earlier run made is gone, what it removed is there.
        made = [leftover.thing for leftover in rolled.leftovers if leftover.made]
        removed = [leftover.name for leftover in rolled.leftovers if not leftover.made]
        if made:
            console.say(
                f"Removed the leftovers of an earlier run: {', '.join(made)} (not part of the "
                f"schema the recorded migrations make)."
            )
        if removed:
            console.say(
                f"Put back what an earlier run removed: {', '.join(removed)} (part of the schema "
                f"the recorded migrations make)."
            )
        console.say(
            f"Rolled back: the schema of all {rolled.tables_compared} tables matches the one the "
            f"recorded migrations make (what it was before safemigrate, less the leftovers above; "
            f"compared by introspection), and {data}.",
            "success",
        )
        return
    if rolled.schema_as_it_was:
        console.say(
            f"Rolled back: the schema of all {rolled.tables_compared} tables matches what it was before "
            f"safemigrate (compared by introspection), and {data}.",
            "success",
        )
        return
    if rolled.leftovers:
        console.say(
            f"Rolled back, and {data}; but the schema is not the one the recorded migrations make "
            f"(what it was before safemigrate, less what an earlier run left):",
            "error",
        )
    else:
        console.say(
            f"Rolled back, and {data}; but the schema is not as it was before safemigrate:", "error"
        )
    for difference in rolled.schema_differences:
        console.say(f"  - {difference}", "error")


def ask(console: Console, question: str) -> bool:
    """The console's answer; with nobody to answer, the documented default: no."""
    answer = console.ask(question)
    if answer is None:
        console.say("No answer (the input is closed): taking the default, no.", "warning")
        return False
    return answer


# The lock ---------------------------------------------------------------------------


def server_lock_name(connection: BaseDatabaseWrapper) -> str:
    """MariaDB/MySQL's GET_LOCK names are server-wide (PostgreSQL's advisory
    locks are per database): the database's name goes in, hashed to fit the
    64-character limit."""
    database = str(connection.settings_dict["NAME"])
    return f"{LOCK_NAME}.{hashlib.sha256(database.encode()).hexdigest()[:32]}"


@contextmanager
def migration_lock(using: str) -> Iterator[None]:
    """One safemigrate per database at a time.

    PostgreSQL: a transaction-scoped advisory lock held by a second connection
    for the whole run (safe through a transaction pooler). MariaDB/MySQL:
    GET_LOCK on a second connection. SQLite: an exclusive transaction on a
    small SQLite file next to the database, which SQLite's own file locking
    holds on every platform and releases if the process dies.
    """
    connection = connections[using]
    if backend_for(connection).database_is_file:
        name = str(connection.settings_dict["NAME"])
        if name == ":memory:" or name.startswith("file:"):
            yield
            return
        lock = sqlite3.connect(name + ".safemigrate.lock", timeout=0, isolation_level=None)
        try:
            try:
                lock.execute("BEGIN EXCLUSIVE")
            except sqlite3.OperationalError:
                raise MigrationError(BUSY) from None
            yield
        finally:
            lock.close()
        return
    holder = connections.create_connection(using)
    try:
        with holder.cursor() as cursor:
            if backend_for(holder).has_transaction_locks:
                holder.set_autocommit(False)
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [LOCK_KEY])
            else:
                cursor.execute("SELECT GET_LOCK(%s, 0)", [server_lock_name(holder)])
            (acquired,) = cursor.fetchone()
        if not acquired:
            raise MigrationError(BUSY)
        yield
    finally:
        try:
            if backend_for(holder).has_transaction_locks:
                holder.rollback()  # ends the transaction, and with it the lock
            elif holder.connection is not None:
                with holder.cursor() as cursor:
                    cursor.execute("SELECT RELEASE_LOCK(%s)", [server_lock_name(holder)])
        finally:
            holder.close()


# Running Django's migrate -------------------------------------------------------------


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
    after = _applied_keys(using)
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
