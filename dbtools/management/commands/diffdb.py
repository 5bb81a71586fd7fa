from __future__ import annotations

import sys
from typing import Any

import orjson
from django.core.management.base import CommandParser
from django.db import DEFAULT_DB_ALIAS

from dbtools.diff import DiffResult, diff_database
from dbtools.diff.report import example_lines, summary_lines
from dbtools.display import counted

from ._common import DbtoolsCommand, add_file_argument, add_identity_argument


class Command(DbtoolsCommand):
    interrupted = "Nothing was changed: diffdb only reads."
    # As diff(1): 0 the same, 1 a difference, 2 the diff could not be made.
    error_status = 2
    unexpected_failure = "The diff could not be made"
    help = (
        "Show what changed between a backup and the database (or, with --against, another "
        "backup): per table the rows deleted, added and changed, and which columns changed. "
        "Exit 0 when nothing differs, 1 when something does."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_file_argument(parser, "compare")
        parser.add_argument(
            "--against",
            metavar="FILE",
            help="Compare with this second backup instead of the database.",
        )
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            help="Database alias to compare with (default: %(default)s).",
        )
        for option, what in (("--only", "Compare only"), ("--exclude", "Leave out")):
            parser.add_argument(
                option,
                action="append",
                default=[],
                metavar="LABEL",
                help=f"{what} this app or app.Model (repeatable).",
            )
        parser.add_argument(
            "--rows",
            type=int,
            default=0,
            metavar="N",
            help="Show up to N example rows per table: the changed columns, old -> new.",
        )
        parser.add_argument(
            "--jobs",
            type=int,
            metavar="N",
            help="PostgreSQL: read with N connections that share one snapshot, as backupdb "
            "does (default: 2; 1 reads on one connection and keeps nothing on disk).",
        )
        parser.add_argument(
            "--format",
            choices=["text", "json"],
            default="text",
            help="json: one document (docs/diffdb-report.schema.json) instead of text.",
        )
        add_identity_argument(parser)

    def handle(
        self,
        *args: Any,
        file: str | None,
        against: str | None,
        database: str,
        only: list[str],
        exclude: list[str],
        rows: int,
        jobs: int | None,
        format: str,
        verbosity: int,
        **options: Any,
    ) -> None:
        result = diff_database(
            file,
            using=database,
            against=against,
            only=only,
            exclude=exclude,
            rows=rows,
            jobs=jobs,
        )
        for warning in result.warnings:
            self.stderr.write(self.style.WARNING(f"WARNING: {warning}"))
        if format == "json":
            self.stdout.write(orjson.dumps(result.as_json(), option=orjson.OPT_INDENT_2).decode())
        else:
            self.write_text(result, verbosity)
        if result.differs:
            self.stdout.flush()
            sys.exit(1)

    def write_text(self, result: DiffResult, verbosity: int) -> None:
        header = f"{result.old} -> {result.new}"
        uncompared = sum(t.outside_subset for t in result.tables)
        apart = (
            f" ({counted(uncompared, 'row')} a subset did not take, not compared)"
            if uncompared
            else ""
        )
        if not result.differs:
            self.stdout.write(
                f"{header}: no difference in {counted(len(result.tables), 'table')}{apart}."
            )
            return
        self.stdout.write(
            f"{header}: {len(result.differing)} of {len(result.tables)} tables differ{apart}."
        )
        for table in result.differing:
            lines = summary_lines(table) + example_lines(table)
            self.stdout.write("\n".join(lines))
        if verbosity >= 2:
            same = [
                t.label + (f" ({t.outside_subset:,} rows not compared)" if t.outside_subset else "")
                for t in result.tables
                if not t.differs
            ]
            self.stdout.write(f"The same: {', '.join(same) or 'none'}.")
