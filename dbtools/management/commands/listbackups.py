from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from dbtools.backup.masked import is_masked
from dbtools.backup.subset import subset_line
from dbtools.restore.drill import DrillResult
from dbtools.restore.drill import drill as drill_backup
from dbtools.storage import BackupStore, LocalFolder, backup_location
from dbtools.storage.catalog import BackupInfo, leftovers, list_backups, resolve_backup

from ._common import DbtoolsCommand, add_identity_argument, shown, size


class Command(DbtoolsCommand):
    # A drill's scratch database and folder go on the way out, as on any error.
    interrupted = (
        "Nothing was changed: listbackups only reads, and a drill works on a scratch copy."
    )
    help = (
        "List the backups in the backups folder (or DBTOOLS['STORAGE']), newest first; "
        "--verify checks each one's checksums, --drill restores one into a scratch database "
        "and compares."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--folder",
            help="Local folder to list (default: DBTOOLS['STORAGE'], else DBTOOLS['BACKUP_DIR']).",
        )
        parser.add_argument(
            "--verify",
            action="store_true",
            help="Read every backup through and check its row counts and checksums.",
        )
        parser.add_argument(
            "--drill",
            nargs="?",
            const="",
            default=None,
            metavar="NAME",
            help="Then restore NAME (default: latest) into a scratch database, compare every table's "
            "rows and checksum with the backup, and drop it; exit 1 on any difference.",
        )
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            help="With --drill: the scratch database goes beside this one (default: %(default)s).",
        )
        add_identity_argument(parser)

    def handle(
        self,
        *args: Any,
        folder: str | None,
        verify: bool,
        drill: str | None,
        database: str,
        verbosity: int,
        **options: Any,
    ) -> None:
        store = LocalFolder(folder) if folder else backup_location()
        infos = list_backups(store, check=verify)
        if not infos:
            self.stdout.write(f"No backups in {shown(store)}. Make one with `manage.py backupdb`.")
            self.drill_if_asked(store, drill, database)
            return
        self.stdout.write(f"Backups in {shown(store)}, newest first:")
        failed = sum(not self.show_backup(info, verify, verbosity) for info in infos)
        for name in leftovers(store):
            self.stdout.write(self.style.WARNING(store.leftover_warning(name)))
        if failed:
            raise CommandError(f"{failed} backup(s) failed verification; do not restore from them.")
        locked = [info.path.name for info in infos if info.locked]
        unverified = bool(locked) and verify
        if unverified and drill is not None:
            # The drill needs no identity unless its own backup is encrypted: it still runs.
            self.stderr.write(
                self.style.WARNING(
                    f"WARNING: not verified: {', '.join(locked)} (encrypted, and no identity was "
                    f"given to open {'it' if len(locked) == 1 else 'them'}). The drill goes on."
                )
            )
        self.drill_if_asked(store, drill, database)
        if unverified:
            raise CommandError(
                f"{len(locked)} encrypted backup(s) could not be verified without their identity; "
                f"run again with --identity FILE (or set DBTOOLS['IDENTITY'])."
            )

    def show_backup(self, info: BackupInfo, verify: bool, verbosity: int) -> bool:
        """One backup's line (and its migrations); False if it is damaged."""
        mark = (
            " <- latest (the timestamped backup it is a copy of is gone)"
            if info.only_as_latest
            else " <- latest"
            if info.is_latest
            else ""
        )
        if info.locked:
            self.stdout.write(
                f"  {info.path.name}  {size(info.size)}  encrypted (age): "
                f"{'NOT VERIFIED, ' if verify else ''}give --identity FILE to read "
                f"it{mark}"
            )
            return True
        if info.problem:
            self.stdout.write(
                self.style.ERROR(f"  {info.path.name}  {size(info.size)}  DAMAGED: {info.problem}")
            )
            return False
        meta = info.meta or {}
        taken = datetime.datetime.fromisoformat(meta["created_at"]).strftime(
            "%Y-%m-%d %H:%M:%S UTC"
        )
        status = "  verified" if verify else ""
        masked = "  masked" if is_masked(meta) else ""
        self.stdout.write(
            f"  {info.path.name}  {taken}  {size(info.size):>9}  "
            f"{info.tables} tables  {info.rows:,} rows  {meta.get('vendor')}:{meta.get('database')}"
            f"{'  subset' if meta.get('subset') else ''}{masked}{status}{mark}"
        )
        if verbosity >= 1 and meta.get("subset"):
            self.stdout.write(
                f"      subset: {subset_line(meta['subset'], redact=is_masked(meta))}"
            )
        if verbosity >= 1 and info.newest_migrations:
            migrations = ", ".join(f"{app} {name}" for app, name in info.newest_migrations.items())
            self.stdout.write(f"      migrations: {migrations}")
        return True

    def drill_if_asked(self, folder: BackupStore, name: str | None, database: str) -> None:
        if name is None:
            return
        # --drill NAME: a path or a name in the listed folder; no NAME: its latest.
        path = resolve_backup(name or None, folder=folder, option="--drill NAME")
        self.show_drill(drill_backup(path, using=database))

    def show_drill(self, result: DrillResult) -> None:
        if result.error:
            raise CommandError(
                f"Drill failed: restoring {result.path.name} into a scratch {result.vendor} "
                f"database failed, so restoredb would fail too: {result.error} (The scratch "
                f"database is dropped; your database was not touched.)"
            )
        self.stdout.write(
            f"Drill: restored {result.path.name} into a scratch {result.vendor} database in "
            f"{result.restore_seconds:.1f}s"
            + (
                " (replayed through the data migrations since the backup)"
                if result.replayed
                else ""
            )
            + "; the scratch database is dropped."
        )
        width = max([len(t.label) for t in result.tables] + [5])
        self.stdout.write(f"  {'table':<{width}}  {'in backup':>10}  {'restored':>10}  checksum")
        for t in result.tables:
            line = f"  {t.label:<{width}}  {t.in_backup:>10,}  {t.restored:>10,}  {t.checksum}"
            self.stdout.write(line if t.ok else self.style.ERROR(line))
        rows = sum(t.in_backup for t in result.tables)
        if not result.ok:
            names = ", ".join(t.label for t in result.failed)
            raise CommandError(
                f"Drill failed: {names} did not come back as the backup holds them. Do not rely on "
                f"{result.path.name}; use another backup, and report it if it was made by backupdb."
            )
        if result.unproven:
            self.stdout.write(
                self.style.WARNING(
                    f"Drill passed on row counts: {rows:,} rows in {len(result.tables)} tables came "
                    f"back; {len(result.unproven)} table(s) could not be compared value for value "
                    f"(see above)."
                )
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Drill passed: {rows:,} rows in {len(result.tables)} tables came back, and "
                    f"each table's checksum matches the backup's."
                )
            )
