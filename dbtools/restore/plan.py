"""Step 1 of a restore: check the whole file and map it onto today's schema.

`prepare_restore()` reads the backup through (every table's count and
checksum), then works out, table by table and column by column, where each
backed-up value goes in the database as its applied migrations left it:
following RenameModel/RenameField in either direction, taking defaults for
fields added since, and stopping on what cannot be mapped. It writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any

from django.db import connections
from django.db.migrations.loader import MigrationLoader

from ..archive import ArchiveReader, open_backup
from ..archive.codec import known_kind
from ..archive.format import outside_subset, partial_kind
from ..backends import backend_for, connect
from ..display import counted
from ..exceptions import ArchiveError, ConfigurationError, NeedsReplay, RestoreError
from ..graph import Table, plan_tables
from ..storage import BackupFile, BackupRef
from ..storage.catalog import resolve_backup
from .mapping import (
    NATURAL_KEYS,
    TableMapping,
    conversion_blockers,
    current_table_label,
    map_columns,
)
from .overlap import PREVIEW_MOST_ROWS, Overlap, rows_already_there
from .since_backup import (
    data_migrations,
    migration_renames,
    migration_steps,
    migrations_behind,
    time_zone_warnings,
)

__all__ = [
    "NATURAL_KEYS",
    "PREVIEW_MOST_ROWS",
    "Overlap",
    "RestorePlan",
    "TableMapping",
    "prepare_restore",
]


@dataclass
class RestorePlan:
    """What a restore will do. It holds the backup file open, so the load reads
    the file that was checked; restore_database() closes it (a plan is used once)."""

    path: BackupRef
    source: IO[bytes]
    using: str
    meta: dict[str, Any]
    mappings: list[TableMapping]  # in file order
    scope: list[Table]  # today's tables in scope (--only/--exclude of this restore)
    everything: tuple[Table, ...]  # every table of the database, in or out of scope
    warnings: list[str]
    # Today's labels of the tables outside a subset (no chosen row reaches them):
    # in the file with no rows, covered by no restore.
    outside: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.source.close()

    @property
    def matched_only(self) -> set[str]:
        """Lower-case labels of the natural-key tables (content types,
        permissions) this restore matches by natural key whatever its mode: a
        subset holds only the ones its rows reference, so --replace leaves the
        others, which `migrate` made, in place and empties none of them."""
        if partial_kind(self.meta) != "subset":
            return set()
        return {m.table.label.lower() for m in self.mappings if m.table} & set(NATURAL_KEYS)

    @property
    def emptied_by_replace(self) -> list[Table]:
        """The tables --replace empties: those it covers, less `matched_only`."""
        return [t for t in self.covered if t.label.lower() not in self.matched_only]

    @property
    def rows(self) -> int:
        return sum(m.rows for m in self.mappings if m.table)

    @property
    def tables(self) -> int:
        return sum(1 for m in self.mappings if m.table)

    @property
    def covered(self) -> list[Table]:
        """The tables in scope that the backup holds (a table with no rows in it
        included): the only tables --replace empties."""
        restored = {m.table.label for m in self.mappings if m.table}
        return [t for t in self.scope if t.label in restored]

    def rows_already_there(self, most: int = PREVIEW_MOST_ROWS) -> Overlap:
        """The backup's rows whose primary key this database already holds: the
        rows a merge skips, leaving the database's version (rows a migration
        made, often). A second read of the tables whose database table has rows,
        when it has at most `most` of them; bigger ones are named as unchecked."""
        return rows_already_there(self, most)

    @property
    def not_in_backup(self) -> list[str]:
        """Tables in scope the backup does not cover (left out when it was taken,
        made since): no restore touches them. A subset's `outside` tables are not listed."""
        restored = {m.table.label for m in self.mappings if m.table} | set(self.outside)
        return [t.label for t in self.scope if t.label not in restored]


def prepare_restore(
    path: str | BackupFile | None = None,
    *,
    using: str = "default",
    only: Sequence[str] = (),
    exclude: Sequence[str] = (),
    set_values: Sequence[str] = (),
    no_replay: bool = False,
) -> RestorePlan:
    """Verify the whole file and map it onto today's models; writes nothing.

    `set_values` are "app.Model.field=VALUE" for required fields the backup
    has no column for. `no_replay` restores into today's schema even though
    data migrations lie between the backup and now (their changes to the
    backup's rows are then not made).
    """
    backup_path = resolve_backup(path)
    connect(using)
    source = open_backup(backup_path)
    try:
        return map_backup(
            backup_path, source, using, only, exclude, parse_set_values(set_values), no_replay
        )
    except BaseException:
        source.close()
        raise


def parse_set_values(items: Sequence[str]) -> dict[str, str]:
    """--set app.Model.field=VALUE, keyed by "app.model.field" (model lower-case)."""
    values = {}
    for item in items:
        target, sep, value = item.partition("=")
        model, _, field_name = target.rpartition(".")
        if not sep or model.count(".") != 1 or not field_name:
            raise ConfigurationError(
                f"--set {item!r}: write it as app_label.Model.field=VALUE, for example "
                f"--set shop.Product.featured=false."
            )
        values[f"{model.lower()}.{field_name}"] = value
    return values


@dataclass
class BackupTables:
    """The backup's tables, in file order, as its whole first read found them."""

    meta: dict[str, Any]
    order: list[str]
    columns: dict[str, list[dict[str, Any]]]
    counts: dict[str, int]
    pks: dict[str, list[str]] = field(default_factory=dict)  # the primary key's field names

    @property
    def rows(self) -> int:
        return sum(self.counts.values())


def read_through(backup_path: BackupRef, source: IO[bytes]) -> BackupTables:
    """Every table's rows read (which checks each checksum) and counted."""
    tables = BackupTables({}, [], {}, {})
    with ArchiveReader(backup_path, source) as reader:
        tables.meta = reader.meta
        for section in reader.tables():
            label = section.meta["label"]
            tables.order.append(label)
            tables.columns[label] = section.meta["columns"]
            tables.pks[label] = list(section.meta.get("pk", []))
            tables.counts[label] = sum(1 for _ in section.rows)  # reading checks the checksum
    unknown = sorted(
        {
            f"{label}.{c['name']} ({c['kind']})"
            for label in tables.order
            for c in tables.columns[label]
            if not known_kind(c["kind"])
        }
    )
    if unknown:
        raise ArchiveError(
            f"{backup_path.name} has columns of a kind this dbtools does not know: {', '.join(unknown)}. "
            f"The file was edited, or written by a newer dbtools;",
            changed=False,
        )
    return tables


def map_backup(
    backup_path: BackupRef,
    source: IO[bytes],
    using: str,
    only: Sequence[str],
    exclude: Sequence[str],
    set_values: dict[str, str],
    no_replay: bool,
) -> RestorePlan:
    backup = read_through(backup_path, source)
    backup_migrations = backup.meta.get("migrations", {})
    loader = MigrationLoader(connections[using], ignore_no_migrations=True)
    warnings = time_zone_warnings(backup.meta) + migrations_behind(loader, backup_migrations)
    since = migrations_since(loader, backup, backup_path, warnings, no_replay)
    # Unmanaged tables too: a backup made with --include-unmanaged holds them,
    # and only the tables a backup holds are ever written to.
    whole = plan_tables(using, include_unmanaged=True)
    scope = list(whole.select(only, exclude).tables)
    mappings, blockers, outside = map_tables(
        backup, loader, whole.tables, scope, set_values, warnings
    )
    blockers += conversion_blockers(backup_path, source, mappings)
    if refused := inexact_set_values(mappings, using):
        # A replay ends with the same --set: it cannot help.
        raise cannot_go_on(warnings, blockers + refused, replayable=False)
    unused = sorted(
        set(set_values)
        - {f"{m.table.label.lower()}.{f.name}" for m in mappings if m.table for f, _ in m.sources}
    )
    if unused:
        blockers.append(f"--set names no field this restore fills: {', '.join(unused)}.")
    if blockers:
        raise cannot_go_on(warnings, blockers, bool(since))
    plan = RestorePlan(
        backup_path, source, using, backup.meta, mappings, scope, whole.tables, warnings
    )
    plan.outside = outside
    if backup.rows and not any(m.rows for m in mappings if m.table) and not (only or exclude):
        plan.close()
        raise blocked(
            warnings,
            f"None of the backup's tables with rows maps onto a table of this database "
            f"({counted(backup.rows, 'row')} in {backup_path.name}): it was taken from another project, or "
            f"this database is not migrated.",
        )
    return plan


def migrations_since(
    loader: MigrationLoader,
    backup: BackupTables,
    backup_path: BackupRef,
    warnings: list[str],
    no_replay: bool,
) -> list[tuple[str, str]]:
    """The migrations applied here since the backup; refuses a restore into a
    database with none applied, or past data migrations unless `no_replay`."""
    backup_migrations = backup.meta.get("migrations", {})
    if not loader.applied_migrations and backup.rows:
        raise blocked(
            warnings,
            f"This database has no migrations applied, so it has none of the backup's tables "
            f"({counted(backup.rows, 'row')} in {backup_path.name}). Run `manage.py migrate` first (to the "
            f"backup's migrations, which `manage.py listbackups` shows, if the code has moved on), "
            f"then restore.",
        )
    since, _behind = migration_steps(loader, backup_migrations)
    changed_data = data_migrations(loader, since)
    if changed_data and not no_replay:
        raise blocked(
            warnings,
            f"Migrations applied since the backup was taken can change rows: {', '.join(changed_data)}. "
            f"Restored into today's schema, the backup's rows would not get those changes (a column "
            f"they fill would take its default instead).",
            fix="To restore exactly, pass --replay: the rows are loaded at the backup's schema in a "
            "scratch database and carried forward by those migrations. To restore into today's "
            "schema anyway, pass --no-replay.",
            kind=NeedsReplay,
        )
    if changed_data:
        warnings.append(
            f"--no-replay: the changes of {', '.join(changed_data)} are not made to the restored rows."
        )
    return since


def map_tables(
    backup: BackupTables,
    loader: MigrationLoader,
    everything: tuple[Table, ...],
    scope: list[Table],
    set_values: dict[str, str],
    warnings: list[str],
) -> tuple[list[TableMapping], list[str], list[str]]:
    """Each backup table mapped onto today's (following renames), in file order;
    the blockers; today's labels of the tables in scope outside a subset."""
    by_label = {t.label.lower(): t for t in everything}
    in_scope = {t.label.lower() for t in scope}
    not_covered = outside_subset(backup.meta, backup.counts)
    outside: list[str] = []
    model_renames, field_renames = migration_renames(loader, backup.meta.get("migrations", {}))
    mappings: list[TableMapping] = []
    blockers: list[str] = []
    for label in backup.order:
        current_label = current_table_label(label, model_renames)
        table = by_label.get(current_label)
        mapping = TableMapping(label, None, backup.counts[label], backup.columns[label])
        mapping.backup_pk = backup.pks.get(label, [])
        if table is None:
            if backup.counts[label]:
                warnings.append(
                    f"{label}: {backup.counts[label]:,} rows in the backup, but the project has no such model now; "
                    f"they are not restored."
                )
        elif current_label in in_scope and label in not_covered:
            outside.append(table.label)
        elif current_label in in_scope:
            mapping.table = table
            blockers += map_columns(mapping, field_renames.get(current_label, {}), set_values)
        mappings.append(mapping)
    return mappings, blockers, outside


def inexact_set_values(mappings: list[TableMapping], using: str) -> list[str]:
    """A --set decimal this database would not store exactly (SQLite keeps
    decimals as floating point): refused before anything is written, as the
    backup's own decimals are refused row by row."""
    backend = backend_for(connections[using])
    found = []
    for mapping in mappings:
        if mapping.table is None:
            continue
        for model_field in mapping.table.fields:
            value = mapping.fixed.get(model_field.attname)
            if isinstance(value, Decimal) and (why := backend.inexact_decimal(value, model_field)):
                found.append(
                    f"--set {mapping.table.label}.{model_field.name}={value}: {why}, which "
                    f"{backend.display_name} cannot store exactly (it keeps decimals as "
                    f"floating point)."
                )
    return found


def cannot_go_on(warnings: list[str], blockers: list[str], replayable: bool) -> RestoreError:
    # Migrations since the backup may fill what cannot be mapped (an
    # AddField with a one-off default): a replay can restore it.
    details = [f"  - {blocker}" for blocker in blockers]
    if replayable:
        details.append(
            "Or pass --replay to carry the rows forward through the migrations since the backup."
        )
    problem = "\n".join([*warnings, f"The restore cannot go on ({len(blockers)} problem(s));"])
    error = NeedsReplay if replayable else RestoreError
    return error(problem, changed=False, details=tuple(details))


def blocked(
    warnings: list[str],
    problem: str,
    *,
    fix: str = "",
    kind: type[RestoreError] = RestoreError,
) -> RestoreError:
    """A refusal that shows the warnings first: they are often the reason."""
    return kind("\n".join([*warnings, problem]), fix=fix, changed=False)
