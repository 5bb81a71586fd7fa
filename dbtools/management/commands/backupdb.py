from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser
from django.db import DEFAULT_DB_ALIAS

from dbtools import checks
from dbtools.backup import BackupResult, backup_database

from ._common import DbtoolsCommand, add_compress_argument, progress_bar, shown, size


class Command(DbtoolsCommand):
    help = (
        "Back up every table the ORM manages to a timestamped JSON file in the backups "
        "folder (and db-backup-latest.json), read in one consistent snapshot."
    )
    # A backup is what people take when something is broken: a failing check in
    # the project's URLconf, admin or models must not stop it (it reads the
    # schema the migrations describe, not the current models), and the model
    # checks can connect to every database in DATABASES. dbtools' own still run.
    requires_system_checks = [checks.TAG]
    interrupted = "Nothing was written; earlier backups are untouched."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            help="Database alias to back up (default: %(default)s).",
        )
        parser.add_argument(
            "--output",
            help="A local folder, or a file name ending in .json, .json.gz or .json.zst (+ .age "
            "when encrypting; default: DBTOOLS['STORAGE'], else DBTOOLS['BACKUP_DIR']).",
        )
        parser.add_argument(
            "--only",
            action="append",
            default=[],
            metavar="LABEL",
            help="Back up only this app or app.Model (repeatable).",
        )
        parser.add_argument(
            "--exclude",
            action="append",
            default=None,
            metavar="LABEL",
            help="Leave out this app or app.Model (repeatable; default: DBTOOLS['EXCLUDE']).",
        )
        add_compress_argument(parser)
        parser.add_argument(
            "--keep",
            type=int,
            metavar="N",
            help="Afterwards delete all but the N newest timestamped backups in the folder.",
        )
        parser.add_argument(
            "--jobs",
            type=int,
            metavar="N",
            help="PostgreSQL: read with N connections that share one snapshot, as pg_dump -j "
            "does (default: 2; 1 reads on one connection).",
        )
        parser.add_argument(
            "--mask",
            action="store_true",
            help="Write a masked copy for development: DBTOOLS['MASK'] replaces personal fields "
            "with fake values before anything is written (see docs/masking.md); never made latest.",
        )
        parser.add_argument(
            "--include-unmanaged",
            action="store_true",
            help="Also back up unmanaged models whose tables exist.",
        )
        parser.add_argument(
            "--subset",
            action="append",
            default=[],
            metavar="MODEL:LOOKUPS",
            help="A subset backup: the rows of app.Model matching Django lookups "
            "(field__lookup=value, joined by commas), plus every row they reference (repeatable).",
        )
        parser.add_argument(
            "--limit",
            action="append",
            default=None,
            metavar="MODEL=N",
            help="A subset backup: the first N rows of app.Model by primary key (repeatable).",
        )
        parser.add_argument(
            "--with-children",
            action="store_true",
            help="With --subset/--limit: also the rows that point at the chosen ones "
            "(an order's items), downwards.",
        )

    def handle(
        self,
        *args: Any,
        database: str,
        output: str | None,
        only: list[str],
        exclude: list[str] | None,
        compress: bool | str | None,
        keep: int | None,
        jobs: int | None,
        include_unmanaged: bool,
        mask: bool,
        subset: list[str],
        limit: list[str] | None,
        with_children: bool,
        verbosity: int,
        **options: Any,
    ) -> None:
        bar = progress_bar(self, verbosity)
        try:
            result = backup_database(
                using=database,
                output=output,
                only=only,
                exclude=exclude,
                compress=compress,
                keep=keep,
                include_unmanaged=include_unmanaged,
                progress=bar,
                jobs=jobs,
                mask=mask,
                subset=subset,
                limit=limit,
                with_children=with_children,
            )
        finally:
            if bar:
                bar.clear()
        for warning in result.warnings:
            self.stderr.write(self.style.WARNING(f"WARNING: {warning}"))
        if verbosity >= 1:
            self.show(result)

    def show(self, result: BackupResult) -> None:
        width = max((len(t.label) for t in result.tables), default=10)
        for t in result.tables:
            self.stdout.write(f"  {t.label:<{width}}  {t.rows:>10,} rows  {t.seconds:6.2f}s")
        for cycle in result.cycles:
            self.stdout.write(
                f"  Foreign-key cycle: {' -> '.join(cycle)} (restore defers these checks)"
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Backed up {result.rows:,} rows from {len(result.tables)} tables to "
                f"{shown(result.path)} ({size(result.size)}, {result.seconds:.1f}s)"
            )
        )
        if result.latest:
            self.stdout.write(f"Latest backup: {shown(result.latest)}")
        if result.masked_with:
            self.stdout.write(
                f"Masked by DBTOOLS['MASK'] (rules {result.masked_with[:12]}): its personal "
                f"fields hold fake values."
            )
        for path in result.pruned:
            self.stdout.write(f"Deleted old backup {shown(path)}")
