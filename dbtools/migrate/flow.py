"""safemigrate's flow: plan, checks, backup, migrate, then restore or roll back.

`safe_migrate()` is the whole flow after planning, callable from a test or a
script without `call_command`: questions and messages go through the
`Console` the caller passes in. The command only parses options, prints the
plan and turns the outcome into an exit code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from ..archive.envelope import can_decrypt, is_encrypted
from ..backup import BackupResult, backup_database
from ..conf import get_settings, lock_timeout_problem
from ..display import counted, shown
from ..exceptions import ArchiveError, DbtoolsError, MigrationError, RestoreError
from ..interrupts import tell, told
from ..restore import RestoreResult, prepare_restore, restore_database
from .changes import changes_since_backup
from .leftovers import Leftover, find_leftovers
from .lock import migration_lock
from .plan import MigrationPlan
from .rollback import RollbackIncomplete, RollbackResult, rollback
from .run import MigrateOutcome, PlanChanged, describe, one_line, run_migrate
from .schema import read_schema

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


def check_plan(plan: MigrationPlan, fail_on: str) -> Outcome:
    """safemigrate --check: blocked by any finding at or above `fail_on` that
    nobody acknowledged."""
    blocking = plan.blocking(fail_on)
    if not blocking:
        return Outcome(Exit.OK)
    codes = ", ".join(sorted({f.code for f in blocking}))
    return Outcome(Exit.BLOCKED, (
        f"{len(blocking)} finding(s) at or above --fail-on {fail_on} ({codes}). Fix them, or "
        f"acknowledge each reviewed one in its migration (dbtools_accept) or in DBTOOLS['ACCEPT']."
    ))  # fmt: skip


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
    if choice == "never":
        return outcome
    # Decided before the summary and the question: a question whose yes would
    # be refused (data migrations since the backup, an encrypted backup and no
    # identity) is not asked.
    try:
        restore_plan = prepare_restore(outcome.backup.path, using=options.using)
    except (RestoreError, ArchiveError) as exc:
        say_changes(outcome.backup, options.using, console, restorable=False)
        # Refused before writing: the migration did its job and stands.
        console.say(f"Not restored: {exc}", "warning")
        return outcome
    try:
        say_changes(outcome.backup, options.using, console, restorable=True)
        wanted = choice == "always" or ask(
            console, f"{RESTORE_HELP}\nRestore data from the backup? [y/N] "
        )
    except BaseException:
        restore_plan.close()
        raise
    if not wanted:
        restore_plan.close()
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
        f"Restored {counted(outcome.restore.inserted, 'row')} "
        f"({outcome.restore.skipped:,} already present).",
        "success",
    )
    for warning in outcome.restore.after_warnings:
        console.say(f"WARNING: {warning}", "warning")
    return outcome


def say_changes(backup: BackupResult, using: str, console: Console, restorable: bool) -> None:
    """What a restore would compare against, so the answer (or --restore always) is informed."""
    for text, style in changes_since_backup(backup, using, restorable):
        console.say(text, style)


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
    say_failure(migrated, connections[options.using], console)
    question = "Roll back: migrate back to the backup's state and restore its data exactly? [y/N] "
    if not (options.rollback_on_failure or (options.interactive and ask(console, question))):
        outcome.exit = Exit.FAILED
        outcome.message = not_rolled_back(migrated.failed, backup, leftovers or [])
        return outcome
    return roll_back(outcome, options, console, schema_before, leftovers)


def say_failure(
    migrated: MigrateOutcome, connection: BaseDatabaseWrapper, console: Console
) -> None:
    console.say(
        f"Migration failed: {migrated.failed or 'unknown'}: {describe(migrated.error)}", "error"
    )
    if migrated.applied:
        console.say(f"Applied before the failure: {', '.join(migrated.applied)}", "error")
    if migrated.unapplied:
        console.say(f"Unapplied before the failure: {', '.join(migrated.unapplied)}", "error")
    if not connection.features.can_rollback_ddl:
        console.say(
            f"{connection.vendor} cannot roll back DDL: {migrated.failed} may be half-applied.",
            "error",
        )


def not_rolled_back(failed: str | None, backup: BackupResult, leftovers: list[Leftover]) -> str:
    """What to do when a failed migration is left as migrate left it."""
    left = [found.thing for found in leftovers if found.migration == failed]
    if left and failed:
        return (
            f"The migration failed. An earlier run left part of {failed} in the "
            f"database ({', '.join(left)}), and migrating it fails on that: "
            f"`manage.py safemigrate --rollback-on-failure` undoes it (a rollback), or undo it "
            f"by hand (`manage.py sqlmigrate {failed.replace('.', ' ', 1)} --backwards` "
            f"shows the SQL)."
        )
    return (
        f"The migration failed. The database is as migrate left it; to undo everything run "
        f"`manage.py safemigrate` again after fixing the migration, or restore with "
        f"`manage.py restoredb --replace --file {backup.path.name}` after migrating back."
    )


def roll_back(
    outcome: Outcome,
    options: Options,
    console: Console,
    schema_before: Any,
    leftovers: list[Leftover] | None,
) -> Outcome:
    assert outcome.backup and outcome.migrate
    migrated, backup = outcome.migrate, outcome.backup
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
    data = rollback_data(rolled, backup)
    if rolled.schema_as_it_was and rolled.leftovers:
        say_leftovers_undone(rolled.leftovers, console)
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


def rollback_data(rolled: RollbackResult, backup: BackupResult) -> str:
    """What the rollback did with the data, as the end of a sentence."""
    if rolled.data_left_alone:
        return (
            f"the data was left as it is: {rolled.data_left_alone}, so there was nothing to undo "
            f"(restoring the backup would have discarded writes made since it; "
            f"`restoredb --replace --file {backup.path.name}` does that if you want it)"
        )
    restored = rolled.restore.inserted if rolled.restore else 0
    return (
        f"the data is the backup's ({restored:,} rows restored from {shown(backup.path)}, "
        f"row counts checked)"
    )


def say_leftovers_undone(leftovers: list[Leftover], console: Console) -> None:
    # Proven by the comparison: what the earlier run made is gone, what it removed is there.
    made = [leftover.thing for leftover in leftovers if leftover.made]
    removed = [leftover.name for leftover in leftovers if not leftover.made]
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


def ask(console: Console, question: str) -> bool:
    """The console's answer; with nobody to answer, the documented default: no."""
    answer = console.ask(question)
    if answer is None:
        console.say("No answer (the input is closed): taking the default, no.", "warning")
        return False
    return answer
