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
from pathlib import Path
from typing import IO, Any

from django.db import connections
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import RenameField, RenameModel

from .archive import ArchiveReader, open_backup
from .backup import connect, latest_path
from .codec import AnyField, known_kind
from .conf import get_settings
from .exceptions import ArchiveError, RestoreError
from .graph import Table, plan_tables


@dataclass
class TableMapping:
    """How one table of the backup goes into one table of today's schema."""

    backup_label: str
    table: Table | None  # None: no such model any more, rows not restored
    rows: int
    columns: list[dict[str, Any]]  # the backup's column descriptions
    sources: list[tuple[AnyField, str | None]] = field(
        default_factory=list
    )  # field <- backup column
    ignored_columns: list[str] = field(default_factory=list)
    note: str = ""


@dataclass
class RestorePlan:
    """What a restore will do. It holds the backup file open, so the load reads
    the file that was checked; restore_database() closes it (a plan is used once)."""

    path: Path
    source: IO[bytes]
    using: str
    meta: dict[str, Any]
    mappings: list[TableMapping]  # in file order
    scope: list[Table]  # today's tables in scope (--only/--exclude of this restore)
    everything: tuple[Table, ...]  # every table of the database, in or out of scope
    warnings: list[str]

    def close(self) -> None:
        self.source.close()

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

    @property
    def not_in_backup(self) -> list[str]:
        """Tables in scope the backup does not cover (left out when it was taken,
        or made since): no restore touches them."""
        restored = {m.table.label for m in self.mappings if m.table}
        return [t.label for t in self.scope if t.label not in restored]


def resolve_backup(name: str | Path | None) -> Path:
    """--file NAME: a path, or a name in the backups folder; default: latest."""
    folder = get_settings().backup_dir
    if name is None:
        candidates = [
            p for p in (latest_path(folder, False), latest_path(folder, True)) if p.exists()
        ]
        if not candidates:
            raise ArchiveError(
                f"There is no backup to restore in {folder} (no db-backup-latest.json). "
                f"Make one with `manage.py backupdb`, or name a file with --file."
            )
        return max(candidates, key=lambda p: p.stat().st_mtime)
    path = Path(name)
    if path.exists():
        return path
    if (folder / path).exists():
        return folder / path
    raise ArchiveError(
        f"Backup file {name} was not found (looked in the current folder and in {folder}). "
        f"`manage.py listbackups` shows the backups there."
    )


def migration_renames(
    loader: MigrationLoader, backup_migrations: dict[str, list[str]]
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Model and field renames made by migrations applied since the backup.

    Returns ({old model label: new}, {model label: {old field: new}}), labels
    lower-case, so rows can follow a RenameField/RenameModel automatically.
    """
    backup_applied = {(app, name) for app, names in backup_migrations.items() for name in names}
    applied_now = set(loader.applied_migrations)
    since = applied_now - backup_applied
    if not since:
        return {}, {}
    ordered = _plan_order(loader, since)
    model_renames: dict[str, str] = {}
    field_renames: dict[str, dict[str, str]] = {}
    for app_label, name in ordered:
        migration = loader.graph.nodes[(app_label, name)]
        for operation in migration.operations:
            if isinstance(operation, RenameModel):
                old, new = (
                    f"{app_label}.{operation.old_name_lower}",
                    f"{app_label}.{operation.new_name_lower}",
                )
                for original, current in list(model_renames.items()):
                    if current == old:
                        model_renames[original] = new
                model_renames.setdefault(old, new)
                if old in field_renames:
                    field_renames[new] = field_renames.pop(old)
            elif isinstance(operation, RenameField):
                label = f"{app_label}.{operation.model_name_lower}"
                fields = field_renames.setdefault(label, {})
                for original, current in list(fields.items()):
                    if current == operation.old_name:
                        fields[original] = operation.new_name
                if operation.old_name not in fields.values():
                    fields.setdefault(operation.old_name, operation.new_name)
    return model_renames, field_renames


def migrations_behind(
    loader: MigrationLoader, backup_migrations: dict[str, list[str]]
) -> list[str]:
    """A warning if the backup's database had migrations applied that this one has not."""
    applied_now = set(loader.applied_migrations)
    missing = sorted(
        f"{app}.{name}"
        for app, names in backup_migrations.items()
        for name in names
        if (app, name) not in applied_now
    )
    if not missing:
        return []
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return [
        f"The backup was taken with migrations applied that this database has not: {shown}. "
        f"What they added is not restored; run `manage.py migrate` first, then restore."
    ]


def _plan_order(loader: MigrationLoader, keys: set[tuple[str, str]]) -> list[tuple[str, str]]:
    order: list[tuple[str, str]] = []
    for leaf in loader.graph.leaf_nodes():
        for key in loader.graph.forwards_plan(leaf):
            if key in keys and key not in order:
                order.append(key)
    return order


def prepare_restore(
    path: str | Path | None = None,
    *,
    using: str = "default",
    only: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> RestorePlan:
    """Verify the whole file and map it onto today's models; writes nothing."""
    backup_path = resolve_backup(path)
    connect(using)
    source = open_backup(backup_path)
    try:
        return map_backup(backup_path, source, using, only, exclude)
    except BaseException:
        source.close()
        raise


def map_backup(
    backup_path: Path, source: IO[bytes], using: str, only: Sequence[str], exclude: Sequence[str]
) -> RestorePlan:
    counts: dict[str, int] = {}
    columns: dict[str, list[dict[str, Any]]] = {}
    order: list[str] = []
    with ArchiveReader(backup_path, source) as reader:
        meta = reader.meta
        for section in reader.tables():
            label = section.meta["label"]
            order.append(label)
            columns[label] = section.meta["columns"]
            counts[label] = sum(1 for _ in section.rows)  # reading checks the checksum

    # Unmanaged tables too: a backup made with --include-unmanaged holds them,
    # and only the tables a backup holds are ever written to.
    unknown = sorted(
        {
            f"{label}.{c['name']} ({c['kind']})"
            for label in order
            for c in columns[label]
            if not known_kind(c["kind"])
        }
    )
    if unknown:
        raise ArchiveError(
            f"{backup_path.name} has columns of a kind this dbtools does not know: {', '.join(unknown)}. "
            f"The file was edited, or written by a newer dbtools; nothing was changed."
        )
    whole = plan_tables(using, include_unmanaged=True)
    scope = list(whole.select(only, exclude).tables)
    everything = {t.label.lower(): t for t in whole.tables}
    in_scope = {t.label.lower() for t in scope}
    loader = MigrationLoader(connections[using], ignore_no_migrations=True)
    model_renames, field_renames = migration_renames(loader, meta.get("migrations", {}))
    warnings = migrations_behind(loader, meta.get("migrations", {}))
    mappings: list[TableMapping] = []
    for label in order:
        current_label = current_table_label(label, model_renames)
        table = everything.get(current_label)
        mapping = TableMapping(label, None, counts[label], columns[label])
        if table is None:
            if counts[label]:
                warnings.append(
                    f"{label}: {counts[label]:,} rows in the backup, but the project has no such model now; "
                    f"they are not restored."
                )
        elif current_label in in_scope:
            mapping.table = table
            map_columns(mapping, field_renames.get(current_label, {}))
        mappings.append(mapping)
    return RestorePlan(backup_path, source, using, meta, mappings, scope, whole.tables, warnings)


def current_table_label(label: str, model_renames: dict[str, str]) -> str:
    """Today's label for a backed-up table, following model renames (and their M2M tables)."""
    label = label.lower()
    if label in model_renames:
        return model_renames[label]
    # An auto-created M2M table is "<app>.<model>_<field>"; app labels and
    # field names may hold "_" too, so the owner is found by prefix.
    owners = [old for old in model_renames if label.startswith(old + "_")]
    if owners:
        old = max(owners, key=len)
        return model_renames[old] + label[len(old) :]
    return label


def map_columns(mapping: TableMapping, renames: dict[str, str]) -> None:
    assert mapping.table is not None
    by_name = {renames.get(c["name"], c["name"]): c for c in mapping.columns}
    used: set[str] = set()
    for model_field in mapping.table.fields:
        column = by_name.get(model_field.name)
        if column is None and model_field.is_relation:
            # An auto-created M2M table whose model was renamed: match by target.
            target = model_field.related_model._meta.label  # type: ignore[union-attr]
            matches = [
                c
                for c in mapping.columns
                if c.get("references") == target and c["name"] not in used
            ]
            column = matches[0] if len(matches) == 1 else None
        if column is not None:
            used.add(column["name"])
            mapping.sources.append((model_field, column["name"]))
            continue
        if model_field.has_db_default() or model_field.has_default() or model_field.null:
            mapping.sources.append((model_field, None))
            continue
        raise RestoreError(
            f"{mapping.table.label}.{model_field.name} is required now and has no default, but the backup "
            f"has no values for it (it was added after the backup was taken). Give the field a default "
            f"(or null=True) in a migration, restore, then fill it with a data migration; nothing was changed."
        )
    mapping.ignored_columns = [c["name"] for c in mapping.columns if c["name"] not in used]
    if mapping.ignored_columns:
        mapping.note = "not in the model any more: " + ", ".join(mapping.ignored_columns)
