import datetime
from pathlib import Path

from django.core.management.base import CommandError

from dbtools.catalog import leftovers, list_backups
from dbtools.conf import get_settings
from dbtools.exceptions import DbtoolsError

from ._common import DbtoolsCommand, add_identity_argument, shown, size


class Command(DbtoolsCommand):
    help = "List the backups in the backups folder, newest first; --verify checks each one's checksums."

    def add_arguments(self, parser):
        parser.add_argument("--folder", help="Folder to list (default: DBTOOLS['BACKUP_DIR']).")
        parser.add_argument(
            "--verify",
            action="store_true",
            help="Read every backup through and check its row counts and checksums.",
        )
        add_identity_argument(parser)

    def handle(self, *args, **options):
        try:
            folder = Path(options["folder"]) if options["folder"] else get_settings().backup_dir
            infos = list_backups(folder, check=options["verify"])
        except DbtoolsError as exc:
            raise CommandError(str(exc)) from exc
        if not infos:
            self.stdout.write(f"No backups in {shown(folder)}. Make one with `manage.py backupdb`.")
            return
        failed = locked = 0
        self.stdout.write(f"Backups in {shown(folder)}, newest first:")
        for info in infos:
            mark = " <- latest" if info.is_latest else ""
            if info.locked:
                locked += 1
                self.stdout.write(
                    f"  {info.path.name}  {size(info.size)}  encrypted (age): "
                    f"{'NOT VERIFIED, ' if options['verify'] else ''}give --identity FILE to read "
                    f"it{mark}"
                )
                continue
            if info.problem:
                failed += 1
                self.stdout.write(
                    self.style.ERROR(
                        f"  {info.path.name}  {size(info.size)}  DAMAGED: {info.problem}"
                    )
                )
                continue
            meta = info.meta or {}
            taken = datetime.datetime.fromisoformat(meta["created_at"]).strftime(
                "%Y-%m-%d %H:%M:%S UTC"
            )
            status = "  verified" if options["verify"] else ""
            self.stdout.write(
                f"  {info.path.name}  {taken}  {size(info.size):>9}  "
                f"{info.tables} tables  {info.rows:,} rows  {meta.get('vendor')}:{meta.get('database')}{status}{mark}"
            )
            if options["verbosity"] >= 1 and info.newest_migrations:
                migrations = ", ".join(
                    f"{app} {name}" for app, name in info.newest_migrations.items()
                )
                self.stdout.write(f"      migrations: {migrations}")
        for path in leftovers(folder):
            self.stdout.write(
                self.style.WARNING(
                    f"  {path.name}: left by a backup that was interrupted; safe to delete."
                )
            )
        if failed:
            raise CommandError(f"{failed} backup(s) failed verification; do not restore from them.")
        if locked and options["verify"]:
            raise CommandError(
                f"{locked} encrypted backup(s) could not be verified without their identity; "
                f"run again with --identity FILE (or set DBTOOLS['IDENTITY'])."
            )
