from collections.abc import Callable
from typing import Any

from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from dbtools.backup import backup_database
from dbtools.exceptions import DbtoolsError, RestoreError
from dbtools.migration_plan import MigrationPlan, describe_step, plan_migrations
from dbtools.restore import prepare_restore, restore_database
from dbtools.safemigrate import migration_lock, rollback, run_migrate
from dbtools.schema import read_schema

from ._common import DbtoolsCommand, shown

# Exit codes, for scripts: 0 migrated (or nothing to do), 1 migration failed,
# 2 failed and rolled back, 3 cancelled at a prompt, 4 failed and rolled back
# but the schema is not as it was (what differs is printed).
FAILED, ROLLED_BACK, CANCELLED, SCHEMA_DIFFERS = 1, 2, 3, 4

RESTORE_HELP = (
    "Restoring puts back rows the migration removed or reset (a data migration that deleted rows, "
    "a table dropped and re-created); rows that are there are left alone."
)


class Command(DbtoolsCommand):
    help = (
        "Show what pending migrations will do and what is risky in them, back up, run migrate, "
        "then offer to restore the data (or roll back if a migration failed)."
    )

    def add_arguments(self, parser):
        parser.add_argument("app_label", nargs="?", help="As for migrate: only this app.")
        parser.add_argument(
            "migration_name", nargs="?", help="As for migrate: up (or back) to this migration."
        )
        parser.add_argument(
            "--database", default=DEFAULT_DB_ALIAS, help="Database alias (default: %(default)s)."
        )
        parser.add_argument(
            "--no-input", "--noinput", action="store_false", dest="interactive", help="Ask nothing."
        )
        parser.add_argument(
            "--restore",
            choices=["ask", "never", "always"],
            default=None,
            help="After a successful migration, restore (merge) the backup: ask (default when interactive), never (default with --no-input), always.",
        )
        parser.add_argument(
            "--rollback-on-failure",
            action="store_true",
            help="If a migration fails, migrate back to the backup's state and restore it with --replace, without asking.",
        )
        parser.add_argument(
            "--compress", action="store_true", default=None, help="Write the backup gzipped."
        )
        parser.add_argument(
            "--plan", action="store_true", help="Only show the plan and the risks; change nothing."
        )

    def ask(self, question: str) -> bool:
        return input(question).strip().lower() in {"y", "yes"}

    def handle(self, *args, **options):
        using = options["database"]
        interactive = options["interactive"]
        restore_choice = options["restore"] or ("ask" if interactive else "never")
        try:
            plan = plan_migrations(using, options["app_label"], options["migration_name"])
        except DbtoolsError as exc:
            raise CommandError(str(exc)) from exc
        if not plan.pending:
            self.stdout.write("No migrations to apply; nothing was backed up.")
            return
        self.show_plan(plan)
        if options["plan"]:
            return
        if (
            plan.high_risk
            and interactive
            and not self.ask(
                f"{len(plan.high_risk)} high-risk finding(s) above. Back up and migrate anyway? [y/N] "
            )
        ):
            raise CommandError("Cancelled; nothing was changed.", returncode=CANCELLED)

        try:
            with migration_lock(using):
                self.migrate(plan, options, restore_choice)
        except DbtoolsError as exc:
            raise CommandError(str(exc)) from exc

    def show_plan(self, plan: MigrationPlan) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING("Planned operations:"))
        for migration, backwards in plan.steps:
            direction = "Unapply" if backwards else "Apply"
            self.stdout.write(f"  {direction} {migration.app_label}.{migration.name}")
            for line in describe_step(migration, backwards):
                self.stdout.write(f"    - {line}")
        if not plan.findings:
            self.stdout.write(self.style.SUCCESS("Risk check: nothing risky found."))
            return
        self.stdout.write(self.style.MIGRATE_HEADING("Risk check:"))
        style: dict[str, Callable[[str], str]] = {
            "high": self.style.ERROR,
            "warning": self.style.WARNING,
            "info": str,
        }
        for finding in plan.findings:
            self.stdout.write(
                style[finding.level](
                    f"  [{finding.level.upper()}] {finding.migration}: {finding.operation}"
                )
            )
            self.stdout.write(f"      {finding.message}")

    def migrate(self, plan: MigrationPlan, options: dict[str, Any], restore_choice: str) -> None:
        using = options["database"]
        verbosity = options["verbosity"]
        backup = backup_database(using=using, compress=options["compress"], label="pre-migrate")
        schema_before = read_schema(connections[using])
        self.stdout.write(self.style.SUCCESS(
            f"Backed up {backup.rows:,} rows from {len(backup.tables)} tables to {shown(backup.path)}"
        ))  # fmt: skip
        for path in backup.pruned:
            self.stdout.write(f"Deleted old backup {shown(path)}")
        outcome = run_migrate(
            using,
            options["app_label"],
            options["migration_name"],
            plan.steps,
            self.stdout._out,  # the raw streams: migrate wraps them itself
            self.stderr._out,
            verbosity,
        )
        if outcome.ok:
            done = outcome.applied + [f"unapplied {name}" for name in outcome.unapplied]
            self.stdout.write(self.style.SUCCESS(f"Migrated: {', '.join(done) or 'nothing new'}."))
            restore = restore_choice == "always" or (
                restore_choice == "ask"
                and self.ask(f"{RESTORE_HELP}\nRestore data from the backup? [y/N] ")
            )
            if restore:
                try:
                    restore_plan = prepare_restore(backup.path, using=using)
                except RestoreError as exc:
                    # The migration did its job; the restore changed nothing.
                    self.stderr.write(self.style.WARNING(f"Not restored: {exc}"))
                    return
                result = restore_database(restore_plan, mode="merge")
                self.stdout.write(self.style.SUCCESS(
                    f"Restored {result.inserted:,} rows ({result.skipped:,} already present)."
                ))  # fmt: skip
            return

        self.stderr.write(
            self.style.ERROR(
                f"Migration failed: {outcome.failed or 'unknown'}: {describe(outcome.error)}"
            )
        )
        if outcome.applied:
            self.stderr.write(f"Applied before the failure: {', '.join(outcome.applied)}")
        if not connections[using].features.can_rollback_ddl:
            self.stderr.write(
                f"{connections[using].vendor} cannot roll back DDL: {outcome.failed} may be half-applied."
            )
        if options["rollback_on_failure"] or (
            options["interactive"]
            and self.ask(
                "Roll back: migrate back to the backup's state and restore its data exactly? [y/N] "
            )
        ):
            rolled = rollback(backup.path, using, outcome.failed, schema_before)
            if rolled.undone_partial:
                self.stdout.write(
                    f"Undid the half-applied part of {outcome.failed}: {'; '.join(rolled.undone_partial)}"
                )
            if rolled.unapplied:
                self.stdout.write(f"Unapplied: {', '.join(rolled.unapplied)}")
            for index in rolled.dropped_indexes:
                self.stdout.write(f"Dropped index {index}, which the failed migration left behind.")
            restored = rolled.restore.inserted if rolled.restore else 0
            data = (
                f"the data is the backup's ({restored:,} rows restored from {shown(backup.path)}, "
                f"row counts checked)"
            )
            if not rolled.schema_as_it_was:
                self.stderr.write(
                    self.style.ERROR(
                        f"Rolled back, and {data}; but the schema is not as it was before safemigrate:"
                    )
                )
                for difference in rolled.schema_differences:
                    self.stderr.write(f"  - {difference}")
                raise CommandError(
                    "Put these back by hand (`manage.py sqlmigrate APP MIGRATION --backwards` shows the SQL "
                    "that reverses a migration) before migrating again: a re-run of the migration would "
                    "fail on them.",
                    returncode=SCHEMA_DIFFERS,
                )
            self.stdout.write(self.style.SUCCESS(
                f"Rolled back: the schema of all {rolled.tables_compared} tables matches what it was before "
                f"safemigrate (compared by introspection), and {data}."
            ))  # fmt: skip
            raise CommandError("The migration failed and was rolled back.", returncode=ROLLED_BACK)
        raise CommandError(
            f"The migration failed. The database is as migrate left it; to undo everything run "
            f"`manage.py safemigrate` again after fixing the migration, or restore with "
            f"`manage.py restoredb --replace --file {backup.path.name}` after migrating back.",
            returncode=FAILED,
        )


def describe(error: BaseException | None) -> str:
    if isinstance(error, SystemExit):
        return f"migrate exited with status {error.code}"
    return " ".join(str(error).split()) or type(error).__name__
