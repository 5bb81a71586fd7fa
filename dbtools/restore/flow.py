"""restore_database(): put a backup back exactly, in one transaction, or change nothing.

Two steps, so that nothing is written until everything has been checked:

1. `prepare_restore()` (plan.py) reads the whole file, checking every table's count and
   checksum, and maps the backup's tables and columns onto today's models
   (following RenameModel/RenameField migrations applied since the backup).
   A column that is required now and missing from the backup stops it here.
2. `restore_database()` loads the rows in one transaction, in the file's
   foreign-key order, with FK checks deferred (PostgreSQL, SQLite) or off
   (MariaDB/MySQL), then checks every constraint, resets sequences and commits.

Rows go in with each value prepared as Django's own insert compiler does
with raw=True (the path `save()` and `bulk_create()` use, minus pre_save),
so auto_now values and multi-table-inheritance children come back as they
were: on PostgreSQL through COPY where every column's kind allows,
elsewhere through one prepared INSERT and executemany, and through the
compiler itself for fields that make their own placeholder. The only conflict ever
skipped is a primary key that is already there: for a table that has rows,
each batch first asks which of its keys exist (on PostgreSQL, the table's
keys are read once, or its rows go through a staging table), then inserts
the rest with a plain INSERT or COPY, so any other problem (another unique value, NOT NULL, a
too-long string) fails the restore instead of being silently dropped as
INSERT IGNORE / OR IGNORE / ON CONFLICT DO NOTHING would.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model

from .._compat import queries_not_logged
from ..backends import backend_for, database_name, vendor_name
from ..diff import DiffResult
from ..display import counted, sentence
from ..exceptions import RestoreError
from ..interrupts import tell
from ..signals import announce, restore_finished
from ..storage import BackupRef
from .failures import plan_cause
from .loader import Loader
from .overwrite import Mode, check_keys, check_mode, check_partial_backup
from .overwrite import preview as overwrite_preview
from .plan import RestorePlan, prepare_restore
from .strategies import Progress, TableReceipt

__all__ = [
    "Mode",
    "Progress",
    "RestorePlan",
    "RestoreResult",
    "TableReceipt",
    "prepare_restore",
    "restore_database",
]


class _Rollback(Exception):
    """Raised inside the transaction to undo a --dry-run."""


@dataclass
class RestoreResult:
    path: BackupRef
    mode: Mode
    dry_run: bool
    tables: list[TableReceipt]
    seconds: float
    warnings: list[str]
    # What went wrong after the commit (a restore_finished receiver failing): the restore stands.
    after_warnings: list[str] = field(default_factory=list)
    # A dry run of --overwrite: the backup compared with the tables, row by row.
    preview: DiffResult | None = None

    @property
    def inserted(self) -> int:
        return sum(t.inserted for t in self.tables)

    @property
    def skipped(self) -> int:
        return sum(t.skipped for t in self.tables)

    @property
    def updated(self) -> int:
        return sum(t.updated for t in self.tables)

    @property
    def unchanged(self) -> int:
        return sum(t.unchanged for t in self.tables)

    @property
    def in_backup(self) -> int:
        return sum(t.in_backup for t in self.tables)


def describe_target(using: str) -> str:
    connection = connections[using]
    host = connection.settings_dict.get("HOST") or backend_for(connection).default_host
    return f"{vendor_name(connection)} database {database_name(connection)!r} on {host} (alias {using!r})"


def restore_database(
    plan: RestorePlan,
    *,
    mode: Mode = "merge",
    dry_run: bool = False,
    progress: Progress | None = None,
    announce_result: bool = True,
    migrations_own: dict[str, str] | None = None,
    fresh_target: bool = False,
    original: tuple[Mapping[str, Any], str] | None = None,
) -> RestoreResult:
    """Load `plan` in one transaction; on any error nothing is changed.

    `migrations_own` (a merge; from replay.tables_as_migrate_makes_them):
    tables holding only the rows the migrations make, with their
    rows_fingerprint; they are emptied before the load.

    `mode`: "merge" inserts the rows whose primary key is missing; "replace"
    empties the tables the backup covers first; "overwrite" also gives the
    rows whose primary key is there the backup's values, and leaves the rows
    not in the backup as they are. A dry run of "overwrite" first compares
    the backup with the tables (result.preview).

    A masked or subset backup is refused for "replace" and "overwrite" when a
    table it covers holds rows, unless `fresh_target` (the rows are only
    what migrations just made) or not `announce_result`; `original` (a
    replay): the header and name of the file the plan's was carried from.

    Once committed, `restore_finished` is sent (unless `announce_result` is
    false: a replay's scratch load is no restore of the user's database).
    """
    started = time.monotonic()
    try:
        check_mode(mode)
        if announce_result and not fresh_target:
            check_partial_backup(plan, mode, original)
        check_keys(plan, mode)
        preview = overwrite_preview(plan) if dry_run and mode == "overwrite" else None
    except BaseException:
        plan.close()
        raise
    restore = RestoreTransaction(plan, mode, dry_run, Loader(plan, mode, progress, migrations_own))
    try:
        restore.run()
    except _Rollback:
        pass
    except DatabaseError as exc:
        raise RestoreError(
            f"The restore failed: {sentence(plan_cause(plan, exc))}", rolled_back=True
        ) from exc
    except KeyboardInterrupt as exc:
        if announce_result:  # else a scratch database's load: the caller knows what that leaves
            restore.tell_interrupt(exc)
        raise
    finally:
        plan.close()
        if apps.is_installed("django.contrib.contenttypes"):
            from django.contrib.contenttypes.models import ContentType

            ContentType.objects.clear_cache()  # ids may have changed under it
    result = RestoreResult(
        plan.path, mode, dry_run, restore.receipts, time.monotonic() - started, plan.warnings,
        preview=preview,
    )  # fmt: skip
    if announce_result and not dry_run:
        announce_restore(result, plan.using)
    return result


class RestoreTransaction:
    """The load, its checks and the sequences, in one transaction; remembers
    where an interrupt found it, for what the user is told it left."""

    def __init__(self, plan: RestorePlan, mode: Mode, dry_run: bool, loader: Loader) -> None:
        self.plan = plan
        self.mode = mode
        self.dry_run = dry_run
        self.loader = loader
        self.connection = connections[plan.using]
        self.receipts: list[TableReceipt] = []
        self.inside: BaseException | None = None  # raised inside it, so rolled back on the way out
        self.committing = False

    def run(self) -> None:
        backend = backend_for(self.connection)
        with (
            queries_not_logged(self.connection),
            backend.loading_session(),
            transaction.atomic(using=self.plan.using),
        ):
            try:
                with (
                    self.connection.constraint_checks_disabled(),
                    naive_datetimes_taken_quietly(),
                    backend.triggers_set_aside([t.db_table for t in self.plan.covered]),
                ):
                    self.receipts = self.loader.run()
                self.check_and_finish()
            except BaseException as exc:
                self.inside = exc
                raise
            self.committing = True

    def check_and_finish(self) -> None:
        check_references(self.connection, self.plan)
        if self.mode == "replace":
            verify_counts(self.plan, self.receipts)
        if self.dry_run:
            raise _Rollback
        # Last, and never in a dry run: PostgreSQL's setval() is not undone
        # by a rollback, and a sequence moved back would hand out ids
        # that are taken.
        reset_sequences(self.connection, [m.table.model for m in self.plan.mappings if m.table])

    def tell_interrupt(self, exc: KeyboardInterrupt) -> None:
        if exc is self.inside:
            tell(exc, "The restore was rolled back; the database is unchanged.")
        elif self.committing:
            tell(exc, (
                "The restore's transaction was committing: it either committed whole or rolled "
                "back whole; the row counts (or a dry run of the same restore) tell which."
            ))  # fmt: skip
        else:
            tell(exc, "The restore had not begun writing; the database is unchanged.")


def announce_restore(result: RestoreResult, using: str) -> None:
    """Send restore_finished; what a receiver breaks becomes after_warnings."""
    try:
        result.after_warnings = announce(
            restore_finished, restore_database, result=result, using=using
        )
    except KeyboardInterrupt as exc:
        tell(exc, (
            f"The restore was committed before the interrupt: {result.inserted:,} rows were "
            f"restored from {result.path.name}; a restore_finished receiver was cut short."
        ))  # fmt: skip
        raise


@contextmanager
def naive_datetimes_taken_quietly() -> Iterator[None]:
    """Django warns for each naive datetime it takes as TIME_ZONE time under
    USE_TZ, and the value is in the warning, so a backup from a USE_TZ = False
    project printed (and remembered) one warning per row. The pre-flight says
    it once (plan.time_zone_warnings)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", r"DateTimeField .* received a naive datetime", RuntimeWarning
        )
        yield


def check_references(connection: BaseDatabaseWrapper, plan: RestorePlan) -> None:
    """Every foreign key of the restored tables, and of tables pointing into them, must resolve."""
    restored = {m.table.label for m in plan.mappings if m.table} | {t.label for t in plan.scope}
    tables = [t.db_table for t in plan.everything if t.label in restored or t.depends_on & restored]
    try:
        backend_for(connection).check_foreign_keys(tables)
    except DatabaseError as exc:
        raise RestoreError(
            f"After loading, a foreign key points at a row that does not exist: {plan_cause(plan, exc)}. "
            f"The backup may be partial (--only/--exclude when it was taken) or rows it refers to were removed; "
            f"restore the referenced tables too, or use --replace.",
            rolled_back=True,
        ) from exc


def reset_sequences(connection: BaseDatabaseWrapper, models: list[type[Model]]) -> None:
    """Move PostgreSQL sequences past the restored ids, never back (SQLite and
    MariaDB catch up themselves)."""
    backend_for(connection).raise_sequences(models)


def verify_counts(plan: RestorePlan, receipts: list[TableReceipt]) -> None:
    by_label = {r.label: r for r in receipts}
    for mapping in plan.mappings:
        if mapping.table is None or mapping.table.label.lower() in plan.matched_only:
            continue
        count = backend_for(connections[plan.using]).count_rows(mapping.table.model)
        if count != mapping.rows:
            raise RestoreError(
                f"{mapping.table.label} holds {counted(count, 'row')} after the restore, but the backup has "
                f"{mapping.rows:,} ({by_label[mapping.table.label].inserted:,} inserted).",
                rolled_back=True,
            )
