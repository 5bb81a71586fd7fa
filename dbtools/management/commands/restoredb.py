import dataclasses
import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.management.base import CommandParser
from django.db import DEFAULT_DB_ALIAS

from dbtools.archive import ArchiveReader, verify
from dbtools.backup.masked import masked_notice
from dbtools.display import counted
from dbtools.exceptions import ConfigurationError, NeedsReplay, RestoreError
from dbtools.restore import (
    Mode,
    RestorePlan,
    RestoreResult,
    choose_mode,
    describe_target,
    prepare_restore,
    restore_database,
)
from dbtools.restore.overlap import PREVIEW_MOST_ROWS, Overlap
from dbtools.restore.overwrite import MODES, preview_lines
from dbtools.restore.replay import replay_restore, restore_route
from dbtools.storage import BackupRef
from dbtools.storage.catalog import resolve_backup

from ._common import DbtoolsCommand, add_file_argument, add_identity_argument, progress_bar, shown


@dataclass(frozen=True)
class Request:
    """The options of one restoredb run."""

    file: str | None
    database: str
    mode: Mode
    only: list[str]
    exclude: list[str]
    set_values: list[str]
    no_replay: bool
    dry_run: bool
    interactive: bool
    verbosity: int


class Command(DbtoolsCommand):
    interrupted = "Nothing was restored; the database is unchanged."
    help = (
        "Restore a backup made by backupdb in one transaction: merge (default) inserts missing rows, "
        "--overwrite also puts back the backup's values of rows changed since, "
        "--replace makes the tables hold exactly the backup's rows."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_file_argument(parser, "restore")
        add_identity_argument(parser)
        parser.add_argument(
            "--replace",
            action="store_true",
            help="Empty the tables in scope first, so they end up exactly as in the backup.",
        )
        parser.add_argument(
            "--overwrite",
            action="store_true",
            help="Also give the rows whose primary key is there the backup's values; rows not in "
            "the backup are left as they are. With --dry-run, says per table what would change.",
        )
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            help="Database alias to restore into (default: %(default)s).",
        )
        parser.add_argument(
            "--only",
            action="append",
            default=[],
            metavar="LABEL",
            help="Restore only this app or app.Model (repeatable).",
        )
        parser.add_argument(
            "--exclude",
            action="append",
            default=[],
            metavar="LABEL",
            help="Leave out this app or app.Model (repeatable).",
        )
        parser.add_argument(
            "--set",
            action="append",
            default=[],
            dest="set_values",
            metavar="APP.MODEL.FIELD=VALUE",
            help="A value for a required field the backup has no column for, given to every restored "
            "row (repeatable; parsed as the field parses it).",
        )
        parser.add_argument(
            "--replay",
            action="store_true",
            help="Load the rows at the backup's schema in a scratch database, carry them forward with "
            "this project's migrations (data migrations included), then restore from there.",
        )
        parser.add_argument(
            "--no-replay",
            action="store_true",
            help="Restore into today's schema even though migrations that change data were applied "
            "since the backup (their changes are then not made to the restored rows).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Do everything inside the transaction, print the receipt, then roll back.",
        )
        parser.add_argument(
            "--no-input",
            "--noinput",
            action="store_false",
            dest="interactive",
            help="Do not ask for confirmation.",
        )

    def handle(
        self,
        *args: Any,
        file: str | None,
        database: str,
        replace: bool,
        overwrite: bool,
        only: list[str],
        exclude: list[str],
        set_values: list[str],
        replay: bool,
        no_replay: bool,
        dry_run: bool,
        interactive: bool,
        verbosity: int,
        **options: Any,
    ) -> None:
        request = Request(
            file, database, choose_mode(replace=replace, overwrite=overwrite), only, exclude, set_values,
            no_replay, dry_run, interactive, verbosity,
        )  # fmt: skip
        route = restore_route(database, replay=replay, no_replay=no_replay)
        if route == "migrate and replay":
            # The core migrates an empty target once the scratch database has
            # carried the rows forward, then replaces what the migrations made.
            if not dry_run:
                self.stdout.write(
                    "This database has no tables: the backup is carried forward through the "
                    "migrations in a scratch database, then this database is migrated (`manage.py "
                    "migrate`) and its tables that the backup covers are given the backup's rows."
                )
            # An interrupt once the database is migrated: the core says so.
            return self.replay(dataclasses.replace(request, mode="replace"))
        if route == "replay":
            return self.replay(request)
        try:
            plan = prepare_restore(
                file,
                using=database,
                only=only,
                exclude=exclude,
                set_values=set_values,
                no_replay=no_replay,
            )
        except NeedsReplay as exc:
            if not interactive:
                raise
            self.stderr.write(str(exc))
            if not self.ask("Replay the backup through the migrations instead? [y/N] "):
                raise RestoreError("Restore cancelled;", changed=False) from None
            return self.replay(dataclasses.replace(request, interactive=False))
        self.restore(plan, request)

    def restore(self, plan: RestorePlan, request: Request) -> None:
        for warning in plan.warnings:
            self.stderr.write(self.style.WARNING(f"WARNING: {warning}"))
        self.tell_if_partial(plan.meta)
        if request.verbosity >= 1 or request.interactive:
            self.show_plan(plan, request)
        if request.interactive and not self.confirm(plan.close):
            return
        bar = progress_bar(self, request.verbosity)
        try:
            result = restore_database(
                plan, mode=request.mode, dry_run=request.dry_run, progress=bar
            )
        finally:
            if bar:
                bar.clear()
        self.show_result(result, request)

    def show_plan(self, plan: RestorePlan, request: Request) -> None:
        size = f"{counted(plan.tables, 'table')}, {counted(plan.rows, 'row')} to restore"
        self.header(plan.path, plan.meta, size, request)
        changes = [
            (m.table.label, change) for m in plan.mappings if m.table for change in m.changes
        ]
        if changes:
            self.stdout.write("Changes since the backup, per table:")
            for label, change in changes:
                self.stdout.write(f"  {label}: {change}")
        if request.mode in ("replace", "overwrite") and plan.not_in_backup:
            self.stdout.write(
                "        Not in the backup, so left as they are: " + ", ".join(plan.not_in_backup)
            )
        if request.mode in ("replace", "overwrite") and plan.outside:
            self.stdout.write(
                "        Outside the subset (no chosen row reaches them), so left as they are: "
                + ", ".join(plan.outside)
            )
        if request.mode == "merge":
            self.show_overlap(plan.rows_already_there())
        elif request.mode == "overwrite":
            self.show_overwritten(plan.rows_already_there())

    def show_overwritten(self, overlap: Overlap) -> None:
        rows = sum(t.rows for t in overlap.tables)
        self.stdout.write(
            f"{counted(rows, 'row')} already there will be given the backup's values where they differ"
            + (":" if rows else ".")
        )
        for table in overlap.tables:
            self.stdout.write(f"  {table.label}: {table.rows:,}")
        self.show_unchecked(overlap)

    def show_unchecked(self, overlap: Overlap) -> None:
        if overlap.unchecked:
            self.stdout.write(
                f"Not checked for rows already there (over {PREVIEW_MOST_ROWS:,} rows): "
                + ", ".join(overlap.unchecked)
            )

    def show_overlap(self, overlap: Overlap) -> None:
        if overlap.tables:
            self.stdout.write(
                "Already in this database under the same primary key, so the merge skips the "
                "backup's version of these rows (rows a migration made have such keys, often):"
            )
            for table in overlap.tables:
                more = ", …" if table.rows > len(table.keys) else ""
                keys = ", ".join(str(key) for key in table.keys)
                self.stdout.write(f"  {table.label}: {table.rows:,} (primary key {keys}{more})")
            self.stdout.write(
                "  To take the backup's rows instead: --replay first empties the tables that hold only "
                "what the migrations made; --replace takes exactly the backup's rows."
            )
        self.show_unchecked(overlap)

    def replay(self, request: Request) -> None:
        path = resolve_backup(request.file)
        summary = verify(path)
        with ArchiveReader(path) as reader:
            meta = reader.meta
        self.tell_if_partial(meta)
        if request.verbosity >= 1 or request.interactive:
            self.header(
                path,
                meta,
                f"{counted(summary['tables'], 'table')}, {counted(summary['rows'], 'row')}",
                request,
            )
            self.stdout.write(
                "Replay: the rows are loaded at the backup's schema in a scratch database, carried "
                "forward by this project's migrations, then restored from there."
            )
        if request.interactive and not self.confirm(lambda: None):
            return
        bar = progress_bar(self, request.verbosity)
        try:
            result = replay_restore(
                path,
                using=request.database,
                mode=request.mode,
                only=request.only,
                exclude=request.exclude,
                set_values=request.set_values,
                dry_run=request.dry_run,
                progress=bar,
            )
        finally:
            if bar:
                bar.clear()
        self.show_result(result, request)

    def tell_if_partial(self, meta: dict[str, Any]) -> None:
        """Before anything is written, at every verbosity: a masked copy or a
        subset is no copy of production."""
        notices = [masked_notice(meta)]
        if meta.get("subset"):
            notices.append(
                "This backup is a subset (backupdb --subset/--limit): it holds only some rows of "
                "the database it was taken from."
            )
        for notice in filter(None, notices):
            self.stderr.write(self.style.NOTICE(f"NOTICE: {notice}"))

    def header(self, path: BackupRef, meta: dict[str, Any], size: str, request: Request) -> None:
        taken = datetime.datetime.fromisoformat(meta["created_at"]).strftime(
            "%Y-%m-%d %H:%M:%S UTC"
        )
        self.stdout.write(
            f"Backup: {shown(path)} (taken {taken} from {meta.get('vendor')} database "
            f"{meta.get('database')!r}; {size})\n"
            f"Into:   {describe_target(request.database)}\n"
            f"Mode:   {MODES[request.mode]}"
            + (
                "\n        (dry run: everything is rolled back at the end)"
                if request.dry_run
                else ""
            )
        )

    def ask(self, question: str) -> bool:
        try:
            return input(question).strip().lower() in {"y", "yes"}
        except EOFError:
            raise ConfigurationError(
                "No answer: standard input is closed.",
                changed=False,
                fix="pass --replay, --no-replay or --no-input to decide without being asked.",
            ) from None

    def confirm(self, cancel: Callable[[], None]) -> bool:
        try:
            answer = input("Type 'yes' to restore, or anything else to cancel: ")
        except EOFError:
            cancel()
            raise ConfigurationError(
                "No answer: standard input is closed.",
                changed=False,
                fix="pass --no-input to restore without being asked.",
            ) from None
        if answer.strip().lower() != "yes":
            cancel()
            self.stdout.write("Restore cancelled; nothing was changed.")
            return False
        return True

    def show_result(self, result: RestoreResult, request: Request) -> None:
        if request.verbosity >= 1:
            self.show_receipts(result)
        if result.preview is not None:
            self.stdout.write(
                "Compared row by row with the backup (rows only in the database are left as they are):"
            )
            for line in preview_lines(result.preview) or ["  no table to compare"]:
                self.stdout.write(line)
        if request.dry_run:
            self.stdout.write(
                self.style.WARNING("Dry run: rolled back; the database is unchanged.")
            )
        elif request.verbosity >= 1:
            self.stdout.write(self.style.SUCCESS(done_line(result)))
        for warning in result.after_warnings:
            self.stderr.write(self.style.WARNING(f"WARNING: {warning}"))

    def show_receipts(self, result: RestoreResult) -> None:
        counts = [("in backup", "in_backup"), ("inserted", "inserted")]
        if result.mode == "overwrite":
            counts += [("updated", "updated"), ("unchanged", "unchanged")]
        counts.append(("skipped", "skipped"))
        width = max([len(t.label) for t in result.tables] + [5])
        self.stdout.write(
            f"  {'table':<{width}}"
            + "".join(f"  {name:>10}" for name, _ in counts)
            + f"  {'time':>7}"
        )
        for t in result.tables:
            note = f"  ({t.note})" if t.note else ""
            self.stdout.write(
                f"  {t.label:<{width}}"
                + "".join(f"  {getattr(t, attr):>10,}" for _, attr in counts)
                + f"  {t.seconds:6.2f}s{note}"
            )
        self.stdout.write(
            f"  {'total':<{width}}"
            + "".join(f"  {getattr(result, attr):>10,}" for _, attr in counts)
            + f"  {result.seconds:6.2f}s"
        )


def done_line(result: RestoreResult) -> str:
    """The last line of a restore that committed."""
    # Only the tables that received rows: "20 rows into 12 tables" read as if each did.
    received = sum(1 for t in result.tables if t.inserted or t.updated)
    into = (
        counted(received, "table")
        if received == len(result.tables)
        else f"{received} of {len(result.tables)} tables"
    )
    source = f"from {shown(result.path)} in {result.seconds:.1f}s."
    if result.mode == "overwrite":
        kept = (
            f" {counted(result.skipped, 'row')} matched by natural key "
            + ("was left as it was." if result.skipped == 1 else "were left as they were.")
            if result.skipped
            else ""
        )
        same = (
            f" Left as they were, holding the backup's values already: "
            f"{counted(result.unchanged, 'row')}."
            if result.unchanged
            else ""
        )
        return (
            f"Restored {counted(result.inserted, 'row')} and gave "
            f"{counted(result.updated, 'row')} already present "
            f"the backup's values, in {into}, {source}{same}{kept}"
        )
    skipped = (
        f", {result.skipped:,} already present and left as they were"
        if result.mode == "merge" or result.skipped
        else ""
    )
    checked = replace_checked(result) if result.mode == "replace" else ""
    return f"Restored {counted(result.inserted, 'row')} into {into}{skipped} {source}{checked}"


def replace_checked(result: RestoreResult) -> str:
    """What --replace checked: the row count of each table it emptied and
    loaded; tables matched by natural key (a subset's content types) keep the
    rows they held, so their counts are no check."""
    counted_tables = [t for t in result.tables if not t.matched]
    matched = [t.label for t in result.tables if t.matched]
    line = (
        " The row count of this table matches the backup."
        if len(counted_tables) == 1
        else f" The row counts of these {len(counted_tables)} tables match the backup."
        if counted_tables
        else ""
    )
    if matched:
        line += f" Matched by natural key, keeping the rows they held: {', '.join(matched)}."
    return line
