from __future__ import annotations

import sys
from typing import Any

import orjson
from django.core.management.base import CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from dbtools._compat import underlying_stream
from dbtools.conf import DEPLOY_ORDERS, lock_timeout_problem
from dbtools.migrate.checks.findings import Finding
from dbtools.migrate.flow import RESTORE_CHOICES, Exit, Options, Outcome, check_plan, safe_migrate
from dbtools.migrate.leftovers import LEFTOVERS_HEADING
from dbtools.migrate.plan import (
    FAIL_ON,
    MigrationPlan,
    describe_step,
    plan_migrations,
    plan_report,
)

from ._common import DbtoolsCommand, add_compress_argument, add_identity_argument

EXIT_CODES = (
    "Exit codes: 0 migrated, nothing to do, or --check found nothing at or above --fail-on; "
    "1 a migration (or the restore after it) failed and was not rolled back, or an error; "
    "2 a migration failed and was rolled back (schema compared and equal; data restored, or left "
    "as it is where the database had undone the migration itself); "
    "3 cancelled at a prompt, nothing changed; 4 rolled back, but the schema still differs; "
    "5 findings at or above --fail-on (--check), or high-risk findings under --no-input "
    "without --accept-risk, nothing changed; 6 the rollback changed the database and could not "
    "finish (the message says what was done)."
)


class Command(DbtoolsCommand):
    interrupted = "Nothing was migrated."
    help = (
        "Show what pending migrations will do and what is risky in them, back up, run migrate, "
        "then offer to restore the data (or roll back if a migration failed)."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.epilog = EXIT_CODES
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("app_label", nargs="?", help="As for migrate: only this app.")
        parser.add_argument(
            "migration_name", nargs="?", help="As for migrate: up (or back) to this migration."
        )
        parser.add_argument(
            "--database", default=DEFAULT_DB_ALIAS, help="Database alias (default: %(default)s)."
        )
        parser.add_argument(
            "--no-input", "--noinput", action="store_false", dest="interactive",
            help="Ask nothing: refuse high-risk findings unless --accept-risk; --restore defaults to never.",
        )  # fmt: skip
        parser.add_argument(
            "--restore", choices=RESTORE_CHOICES, default=None,
            help="After a successful migration, restore (merge) the backup: ask (default when "
            "interactive), never (default with --no-input), always.",
        )  # fmt: skip
        parser.add_argument(
            "--rollback-on-failure", action="store_true",
            help="If a migration fails, migrate back to the backup's state and restore it with "
            "--replace, without asking.",
        )  # fmt: skip
        add_compress_argument(parser)
        add_identity_argument(parser)
        parser.add_argument(
            "--plan",
            action="store_true",
            help="Only show the plan and the findings; change nothing.",
        )
        parser.add_argument(
            "--check", action="store_true",
            help="As --plan, and exit 5 if a finding at or above --fail-on is not acknowledged (for CI).",
        )  # fmt: skip
        parser.add_argument(
            "--fail-on", choices=FAIL_ON, default="high",
            help="The lowest level that fails --check (default: %(default)s).",
        )  # fmt: skip
        parser.add_argument(
            "--format", choices=["text", "json"], default="text",
            help="json: the plan and findings as one JSON document (with --plan or --check).",
        )  # fmt: skip
        parser.add_argument(
            "--accept-risk", action="store_true",
            help="Migrate over high-risk findings without asking (needed with --no-input).",
        )  # fmt: skip
        parser.add_argument(
            "--lock-timeout", default=None, metavar="DURATION",
            help="PostgreSQL: how long a migration statement may wait for a lock before it fails, "
            "e.g. 5s or 500ms; 0 waits forever (default: DBTOOLS['LOCK_TIMEOUT'], else 5s).",
        )  # fmt: skip

        parser.add_argument(
            "--deploy", choices=DEPLOY_ORDERS, default=None,
            help="How a release reaches production, for the checks of the code running meanwhile: "
            "migrate-first (the old code runs on the new schema), code-first (the new code on the old "
            "schema) or downtime (none) (default: DBTOOLS['DEPLOY'], else migrate-first).",
        )  # fmt: skip

    def handle(
        self,
        *args: Any,
        app_label: str | None,
        migration_name: str | None,
        database: str,
        interactive: bool,
        restore: str | None,
        rollback_on_failure: bool,
        compress: bool | str | None,
        plan: bool,
        check: bool,
        fail_on: str,
        format: str,
        accept_risk: bool,
        lock_timeout: str | None,
        deploy: str | None,
        verbosity: int,
        **options: Any,
    ) -> None:
        only_plan = plan or check
        refuse_options(only_plan, format, lock_timeout, interactive)
        planned = plan_migrations(database, app_label, migration_name, deploy)
        if format == "json":
            report = plan_report(planned, fail_on)
            self.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        elif not planned.pending:
            self.stdout.write("No migrations to apply; nothing was backed up.")
        else:
            self.show_plan(planned)
        if check:
            self.finish(check_plan(planned, fail_on))
            if format == "text":
                self.stdout.write(
                    self.style.SUCCESS(f"Check passed: no finding at or above {fail_on}.")
                )
        if only_plan:
            return
        flow_options = Options(
            using=database,
            app_label=app_label,
            migration_name=migration_name,
            interactive=interactive,
            restore=restore,
            rollback_on_failure=rollback_on_failure,
            accept_risk=accept_risk,
            compress=compress,
            lock_timeout=lock_timeout,
            verbosity=verbosity,
        )
        # The raw streams: migrate wraps them itself.
        self.finish(
            safe_migrate(
                planned,
                flow_options,
                self,
                underlying_stream(self.stdout),
                underlying_stream(self.stderr),
            )
        )

    def finish(self, outcome: Outcome) -> None:
        if outcome.exit != Exit.OK:
            raise CommandError(outcome.message, returncode=outcome.exit) from outcome.cause

    # The console safe_migrate talks through.

    def say(self, text: str, style: str = "") -> None:
        stream = self.stderr if style in ("warning", "error") else self.stdout
        stream.write(self.paint(style, text))

    def paint(self, kind: str, text: str) -> str:
        """Colour by kind: a console style or a finding's level."""
        name = {"success": "SUCCESS", "warning": "WARNING", "error": "ERROR", "high": "ERROR"}.get(
            kind
        )
        return getattr(self.style, name)(text) if name else text

    def ask(self, question: str) -> bool | None:
        self.stdout.write(question, ending="")
        self.stdout.flush()
        line = sys.stdin.readline() if sys.stdin is not None and not sys.stdin.closed else ""
        if not line:
            self.stdout.write("")
            return None
        return line.strip().lower() in {"y", "yes"}

    def show_plan(self, plan: MigrationPlan) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING("Planned operations:"))
        for migration, backwards in plan.steps:
            direction = "Unapply" if backwards else "Apply"
            self.stdout.write(f"  {direction} {migration.app_label}.{migration.name}")
            for line in describe_step(migration, backwards):
                self.stdout.write(f"    - {line}")
        if plan.leftovers:
            self.say(LEFTOVERS_HEADING, "warning")
            for leftover in plan.leftovers:
                self.say(f"  - {leftover}", "warning")
        if not plan.findings:
            self.stdout.write(self.style.SUCCESS("Risk check: nothing risky found."))
            return
        self.stdout.write(self.style.MIGRATE_HEADING("Risk check:"))
        for finding in plan.findings:
            self.show_finding(finding)
        self.stdout.write(f"Findings: {plan.summary()}.")

    def show_finding(self, finding: Finding) -> None:
        level = finding.level.upper()
        if finding.acknowledged is not None:
            level = f"{level}, acknowledged"
        self.stdout.write(self.paint(
            finding.level, f"  [{level}] {finding.code} {finding.migration}: {finding.operation}"
        ))  # fmt: skip
        self.stdout.write(f"      {finding.message}")
        if finding.sql:
            self.stdout.write(f"      SQL: {finding.sql}")
        if finding.acknowledged is not None:
            self.stdout.write(f"      Acknowledged: {finding.acknowledged}")
        else:
            self.stdout.write(f"      Fix: {finding.fix}")


def refuse_options(
    only_plan: bool, format: str, lock_timeout: str | None, interactive: bool
) -> None:
    """Options that cannot work together, or cannot work here: refused before planning."""
    if format == "json" and not only_plan:
        raise CommandError("--format json goes with --plan or --check.")
    if lock_timeout is not None and (problem := lock_timeout_problem(lock_timeout)):
        raise CommandError(f"--lock-timeout {problem}")
    if interactive and not only_plan and (sys.stdin is None or sys.stdin.closed):
        raise CommandError(
            "safemigrate asks before it migrates, but its input is closed; nothing was changed. "
            "Pass --no-input (with --restore and --rollback-on-failure as you want them)."
        )
