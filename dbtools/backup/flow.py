"""backup_database(): every table, one snapshot, streamed to one file.

The steps: check the options (options.py), choose where the file goes
(destination.py), read every table in one snapshot into the archive
(tables.py, rows.py), then make it `latest` and apply retention.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import django
from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.recorder import MigrationRecorder

from .. import __version__
from ..archive import ArchiveWriter
from ..archive.envelope import file_suffix
from ..backends import backend_for, connect, database_name, vendor_name
from ..exceptions import BackupError
from ..graph import Plan, plan_tables
from ..interrupts import tell
from ..signals import announce, backup_finished
from ..storage import BackupRef
from ..storage.catalog import LATEST_STEM, older_latest, prune
from .destination import Destination, choose_destination
from .masked import check_rules_match, header_fields, masked_tables
from .options import BackupOptions
from .subset import Selection, resolve
from .subset_rows import subset_reads
from .tables import (
    DEFAULT_JOBS,
    Progress,
    TableReport,
    helper_readers,
    single_connection_reason,
    write_table,
)


@dataclass
class BackupResult:
    path: BackupRef  # a Path, or a StoredBackup in DBTOOLS['STORAGE']
    latest: BackupRef | None
    tables: list[TableReport]
    cycles: list[list[str]]
    seconds: float
    size: int
    pruned: list[BackupRef] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    masked_with: str | None = None  # a masked backup's rules fingerprint

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def backup_database(*, progress: Progress | None = None, **options: Any) -> BackupResult:
    """Write a backup and return what was written; `options` are BackupOptions'
    keywords: using, output, only, exclude, compress, keep, include_unmanaged,
    label, encrypt_to, announce_result, jobs, mask, subset, limit, with_children.

    `label` adds a word to the file name (safemigrate uses "pre-migrate").
    Nothing is left behind on failure: the file appears only when complete.
    `encrypt_to` lists age public keys (None: DBTOOLS['ENCRYPT_TO']; empty: plain).
    Then `backup_finished` is sent, unless `announce_result` is false (a
    replay's intermediate file is no backup of the user's). `jobs` is how
    many connections read on PostgreSQL, sharing one snapshot (None: 2).
    `progress(label, rows done, rows expected)` is called as tables are read.
    `mask` applies DBTOOLS['MASK'] to the rows before anything is written
    (masked.py); a masked backup is never made `latest`.
    `subset` (["shop.Order:created_at__gte=2025-06-01"]), `limit`
    ({"shop.User": 1000}) and `with_children` make a subset backup
    (docs/subset-backups.md).
    """
    started = time.monotonic()
    return run_backup(BackupOptions(**options), progress, started)


def run_backup(options: BackupOptions, progress: Progress | None, started: float) -> BackupResult:
    now = datetime.datetime.now(datetime.UTC)
    target = choose_destination(options, now)
    connection = connect(options.using)
    refuse_if_no_tables(connection)
    check_rules_match(options.masker, options.using)
    exclude = options.exclude or ()
    plan = plan_tables(
        options.using,
        only=options.only,
        exclude=exclude,
        include_unmanaged=options.include_unmanaged,
    )
    spec = options.subset_spec
    selection = resolve(spec, plan, options.using) if spec else None
    warnings = target.store.prepare()
    written, reports = write_archive(
        options, target, connection, plan, now, progress, warnings, selection
    )
    result = BackupResult(
        path=written,
        latest=None,
        tables=reports,
        cycles=[list(c) for c in plan.cycles],
        seconds=0.0,
        size=written.size,
        warnings=warnings,
        masked_with=options.masker.fingerprint if options.masker else None,
    )
    publish(options, target, result, started)
    return result


def refuse_if_no_tables(connection: BaseDatabaseWrapper) -> None:
    """A backup of a database with no tables would hold nothing, yet become `latest`."""
    with connection.cursor() as cursor:
        if connection.introspection.table_names(cursor):
            return
    alias = connection.alias
    raise BackupError(
        f"The {vendor_name(connection)} database {database_name(connection)!r} (alias {alias!r}) "
        f"has no tables: it was never migrated, or DATABASES points at another database than you "
        f"meant. Nothing was written. Run `manage.py migrate --database {alias}` first, or check "
        f"DATABASES[{alias!r}]."
    )


@contextmanager
def snapshot(connection: BaseDatabaseWrapper) -> Iterator[bool]:
    """One read-only transaction in which every table is read at the same moment.

    Everything is transaction-scoped (no session SET, no WITH HOLD cursor), so
    it behaves the same through a transaction-mode pooler such as PgBouncer or
    Neon's -pooler endpoint.
    """
    outer = connection.in_atomic_block
    with transaction.atomic(using=connection.alias):
        if not outer:
            backend_for(connection).begin_snapshot()
        yield not outer  # True: the snapshot is ours, with our isolation level


def read_apart(connection: BaseDatabaseWrapper, owned: bool, what: str) -> list[str]:
    """Inside a caller's transaction (not `owned`) snapshot() takes none of its
    own (the isolation level is the caller's, and its own writes are to be
    seen): the warning that says so, where that transaction does not read
    one snapshot."""
    level = None if owned else backend_for(connection).isolation_read_apart()
    if level is None:
        return []
    return [
        f"{what} ran inside your open transaction (transaction.atomic()), whose isolation level "
        f"({level}) does not read every table at one moment: rows other sessions commit "
        f"meanwhile may show in some tables and not in others. Call it outside the transaction, "
        f"or in one begun at REPEATABLE READ, for one consistent view."
    ]


def write_archive(
    options: BackupOptions,
    target: Destination,
    connection: BaseDatabaseWrapper,
    plan: Plan,
    now: datetime.datetime,
    progress: Progress | None,
    warnings: list[str],
    selection: Selection | None = None,
) -> tuple[BackupRef, list[TableReport]]:
    """Every table of `plan` into the file, published only when complete; on any
    failure the unfinished file is removed. With `selection` (a subset backup)
    its rows are chosen in the snapshot and read on this connection alone."""
    store, name = target.store, target.name
    try:
        writer = ArchiveWriter(
            None, target.compression, encrypt_to=options.sealed_to, sink=store.writer(name)
        )
    except OSError as exc:
        raise BackupError(
            f"Cannot write in {store}: {exc.strerror or exc}. Choose another folder with --output."
        ) from exc
    try:
        with snapshot(connection) as owned:
            warnings += read_apart(connection, owned, "backup_database()")
            writer.write_header(describe_backup(connection, plan, now, options, selection))
            chosen, whole = subset_reads(selection, connection, plan)
            spool_in = store.folder  # a spool is plaintext on local disk
            # Masked tables are read on this connection only: never spooled unmasked.
            masked, served = masked_tables(options.masker, whole)
            alone = single_connection_reason(
                connection, served, spool_in, owned, options.encrypted, subset=chosen is not None
            )
            jobs = options.jobs
            if alone and jobs is not None and jobs > 1:
                warnings.append(f"--jobs {jobs} was not used: {alone}; one connection read it all.")
            extra = 0 if alone else (DEFAULT_JOBS if jobs is None else jobs) - 1
            with helper_readers(connection, served, spool_in, extra) as helpers:
                reports = [
                    write_table(writer, t, connection, progress, helpers, masked, chosen)
                    for t in plan.tables
                ]
        written: BackupRef = writer.commit()
    except OSError as exc:
        writer.abort()
        raise BackupError(
            f"Writing {name} failed: {exc.strerror or exc}. Nothing was kept; "
            f"earlier backups are untouched. Free some space or choose another folder with --output."
        ) from exc
    except DatabaseError as exc:
        writer.abort()
        raise BackupError(
            f"Reading the database failed: {' '.join(str(exc).split())}. Nothing was kept; "
            f"earlier backups are untouched."
        ) from exc
    except BaseException as exc:
        writer.abort()
        if options.announce_result:  # else a scratch copy: its caller says what stands
            tell(
                exc,
                "Nothing was kept (the unfinished backup was removed); earlier backups are untouched.",
            )
        raise
    return written, reports


def publish(
    options: BackupOptions, target: Destination, result: BackupResult, started: float
) -> None:
    """Make the complete backup `latest`, apply retention and send backup_finished,
    filling in `result`; an interrupt is told what each step left."""
    written, store = result.path, target.store
    # Neither a masked copy nor a subset is ever `latest`: restoredb's default,
    # and what a disaster recovery reaches for, stays a whole backup of the
    # real data (a plain `restoredb --replace` of a subset would put its few
    # rows in place of a whole database).
    in_folder = target.in_folder and options.masker is None and options.subset_spec is None
    # What an interrupt from here on leaves: the backup is complete, and the
    # steps after it are each done or not.
    left = "db-backup-latest was not updated and no old backup was deleted." if in_folder else ""
    try:
        if in_folder:
            latest_name = LATEST_STEM + file_suffix(target.compression, options.encrypted)
            result.latest = store.publish_copy(written, latest_name)
            others = older_latest(store, latest_name)
            left = f"{latest_name} now holds it; older copies of latest or old backups may remain."
            for other in others:
                other.delete()
            if options.keep or options.keep_pre_migrate:
                result.pruned = prune(store, options.keep, options.keep_pre_migrate)
        left = ("it is the latest backup; " if in_folder else "") + (
            "a backup_finished receiver was cut short."
        )
        result.seconds = time.monotonic() - started
        if options.announce_result:
            result.warnings += announce(
                backup_finished, backup_database, result=result, using=options.using
            )
    except BaseException as exc:
        if options.announce_result:
            tell(exc, f"The backup {written.name} is complete{'; ' if left else '.'}{left}")
        raise


def applied_migrations(connection: BaseDatabaseWrapper) -> dict[str, list[str]]:
    recorder = MigrationRecorder(connection)
    if not recorder.has_table():
        return {}
    applied: dict[str, list[str]] = {}
    for app_label, name in sorted(recorder.applied_migrations()):
        applied.setdefault(app_label, []).append(name)
    return applied


def describe_backup(
    connection: BaseDatabaseWrapper,
    plan: Plan,
    now: datetime.datetime,
    options: BackupOptions,
    selection: Selection | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "backup_id": uuid.uuid4().hex,
        "created_at": now.isoformat(),
        "dbtools_version": __version__,
        "django_version": django.get_version(),
        "vendor": connection.vendor,
        "database": database_name(connection),
        "use_tz": settings.USE_TZ,
        "time_zone": settings.TIME_ZONE,
        "only": list(options.only),
        "exclude": list(options.exclude or ()),
        "include_unmanaged": options.include_unmanaged,
        "migrations": applied_migrations(connection),
        "order": plan.labels(),
        "cycles": [list(c) for c in plan.cycles],
        **header_fields(options.masker),
    }
    if selection is not None:
        meta["subset"] = selection.definition(plan, redact=options.masker is not None)
    return meta
