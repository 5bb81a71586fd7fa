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
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import RenameField, RenameModel, RunPython, RunSQL

from ..archive import ArchiveReader, open_backup
from ..backup import connect
from ..codec import AnyField, kind_of, known_kind, row_decoder, row_parser
from ..exceptions import ArchiveError, ConfigurationError, NeedsReplay, RestoreError
from ..graph import Table, plan_tables
from ..storage import BackupFile, BackupRef
from ..storage.catalog import resolve_backup


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
    fixed: dict[str, Any] = field(default_factory=dict)  # attname -> value given with --set
    null_defaults: list[AnyField] = field(default_factory=list)  # NULL in the backup -> default
    changes: list[str] = field(default_factory=list)  # what the pre-flight report shows


# Rows whose ids differ between databases that were migrated separately: a
# restore matches them by natural key and re-points references to them.
NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "contenttypes.contenttype": ("app_label", "model"),
    "auth.permission": ("content_type", "codename"),
}
PREVIEW_MOST_ROWS = 100_000
PREVIEW_KEYS_SHOWN = 5


@dataclass
class TableOverlap:
    label: str
    rows: int  # rows of the backup whose primary key is already there
    keys: list[Any]  # the first few of those keys, in file order


@dataclass
class Overlap:
    tables: list[TableOverlap]
    unchecked: list[str]  # tables with more rows than the preview reads


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

    def rows_already_there(self, most: int = PREVIEW_MOST_ROWS) -> Overlap:
        """The backup's rows whose primary key this database already holds: the
        rows a merge skips, leaving the database's version (rows a migration
        made, often). A second read of the tables whose database table has rows,
        when it has at most `most` of them; bigger ones are named as unchecked."""
        return rows_already_there(self, most)

    @property
    def not_in_backup(self) -> list[str]:
        """Tables in scope the backup does not cover (left out when it was taken,
        or made since): no restore touches them."""
        restored = {m.table.label for m in self.mappings if m.table}
        return [t.label for t in self.scope if t.label not in restored]


def rows_already_there(plan: RestorePlan, most: int) -> Overlap:
    present: dict[str, tuple[TableMapping, set[Any], list[AnyField], list[str]]] = {}
    unchecked = []
    for mapping in plan.mappings:
        table = mapping.table
        if table is None or not mapping.rows or table.label.lower() in NATURAL_KEYS:
            continue
        columns = dict((f.attname, c) for f, c in mapping.sources)
        pk_fields = list(table.pk_fields)
        if any(columns.get(f.attname) is None for f in pk_fields):
            continue  # a key the backup lacks: every row is new
        rows = table.model._base_manager.using(plan.using)
        if not rows.exists():
            continue
        if rows.order_by()[most : most + 1].exists():  # bounded: no count of a big table
            unchecked.append(table.label)
            continue
        names = [f.attname for f in pk_fields]
        keys = set(
            rows.values_list(*names) if len(names) > 1 else rows.values_list(names[0], flat=True)
        )
        present[mapping.backup_label] = (mapping, keys, pk_fields, [str(columns[n]) for n in names])
    found: list[TableOverlap] = []
    if not present:
        return Overlap(found, unchecked)

    def parser_for(meta: dict[str, Any]) -> Any:
        return row_parser(meta["columns"]) if meta["label"] in present else None

    with ArchiveReader(plan.path, plan.source) as reader:
        for section in reader.tables(parser_for):
            if section.meta["label"] not in present:
                continue
            mapping, keys, pk_fields, key_columns = present[section.meta["label"]]
            assert mapping.table is not None
            decode = row_decoder(mapping.columns)
            overlap = TableOverlap(mapping.table.label, 0, [])
            for row in section.rows:
                try:
                    values = decode(row)
                    key = tuple(
                        f.to_python(values.get(c))
                        for f, c in zip(pk_fields, key_columns, strict=True)
                    )
                except (ValueError, ValidationError):
                    continue  # a damaged value: the load names it
                if (key if len(key) > 1 else key[0]) in keys:
                    overlap.rows += 1
                    if len(overlap.keys) < PREVIEW_KEYS_SHOWN:
                        overlap.keys.append(key if len(key) > 1 else key[0])
            if overlap.rows:
                found.append(overlap)
    return Overlap(found, unchecked)


@dataclass(frozen=True)
class Rename:
    model: bool  # a RenameModel (else a RenameField)
    label: str  # the model's label, lower-case, before this step
    old: str  # model label or field name before this step
    new: str


def migration_steps(
    loader: MigrationLoader, backup_migrations: dict[str, list[str]]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The migrations between the backup's state and this database's, in the
    order they run: (applied here since the backup, applied in the backup's
    database but not here: to be undone, last first)."""
    backup_applied = {(app, name) for app, names in backup_migrations.items() for name in names}
    applied_now = set(loader.applied_migrations)
    since = _plan_order(loader, applied_now - backup_applied)
    behind = _plan_order(loader, (backup_applied - applied_now) & set(loader.graph.nodes))
    return since, list(reversed(behind))


def renames_between(
    loader: MigrationLoader, since: list[tuple[str, str]], behind: list[tuple[str, str]]
) -> list[Rename]:
    """Every RenameModel/RenameField from the backup's schema to this one: the
    migrations this database lacks undone (renamed back), then those it has since."""
    steps: list[Rename] = []
    for key, backwards in [(k, True) for k in behind] + [(k, False) for k in since]:
        app_label = key[0]
        operations = loader.graph.nodes[key].operations
        for operation in reversed(operations) if backwards else operations:
            if isinstance(operation, RenameModel):
                old = f"{app_label}.{operation.old_name_lower}"
                new = f"{app_label}.{operation.new_name_lower}"
                steps.append(
                    Rename(
                        True, new if backwards else old, *((new, old) if backwards else (old, new))
                    )
                )
            elif isinstance(operation, RenameField):
                label = f"{app_label}.{operation.model_name_lower}"
                names = (operation.new_name, operation.old_name)
                steps.append(Rename(False, label, *(names if backwards else names[::-1])))
    return steps


def migration_renames(
    loader: MigrationLoader, backup_migrations: dict[str, list[str]]
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Model and field renames between the backup's schema and this database's,
    in either direction (a backup taken after a RenameField restores into a
    database before it, too).

    Returns ({backup's model label: today's}, {today's model label: {backup's
    field name: today's}}), labels lower-case.
    """
    since, behind = migration_steps(loader, backup_migrations)
    model_renames: dict[str, str] = {}
    field_renames: dict[str, dict[str, str]] = {}
    for step in renames_between(loader, since, behind):
        if step.model:
            for original, current in list(model_renames.items()):
                if current == step.old:
                    model_renames[original] = step.new
            if step.old not in model_renames.values():
                model_renames.setdefault(step.old, step.new)
            if step.old in field_renames:
                field_renames[step.new] = field_renames.pop(step.old)
        else:
            fields = field_renames.setdefault(step.label, {})
            for original, current in list(fields.items()):
                if current == step.old:
                    fields[original] = step.new
            if step.old not in fields.values():
                fields.setdefault(step.old, step.new)
    return model_renames, field_renames


def data_migrations(loader: MigrationLoader, since: list[tuple[str, str]]) -> list[str]:
    """The migrations applied since the backup that can change rows (RunPython
    that does something, RunSQL): what a restore into today's schema would
    not repeat for the backup's rows."""
    found = []
    for key in since:
        kinds = [
            type(operation).__name__
            for operation in loader.graph.nodes[key].operations
            if (isinstance(operation, RunSQL) and not is_noop_sql(operation.sql))
            or (isinstance(operation, RunPython) and operation.code is not RunPython.noop)
        ]
        if kinds:
            found.append(f"{key[0]}.{key[1]} ({', '.join(dict.fromkeys(kinds))})")
    return found


def is_noop_sql(sql: Any) -> bool:
    """`RunSQL.noop` forwards (only its reverse does something): nothing runs
    on the way forward, which is the direction a restore's migrations take."""
    statements = [sql] if isinstance(sql, str) else list(sql)
    return all((s if isinstance(s, str) else s[0]).strip() == RunSQL.noop for s in statements)


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


def time_zone_warnings(meta: dict[str, Any]) -> list[str]:
    """A warning when the backup's USE_TZ and TIME_ZONE are not this project's
    (or not recorded): they decide what a date-time in the file means."""
    use_tz, time_zone = meta.get("use_tz"), meta.get("time_zone")
    here = f"USE_TZ = {settings.USE_TZ}, TIME_ZONE = {settings.TIME_ZONE!r}"
    if type(use_tz) is not bool or type(time_zone) is not str:
        return [
            f"The backup does not record the USE_TZ and TIME_ZONE it was taken with (an older "
            f"dbtools wrote it): not known whether its date-times mean what they would here ({here})."
        ]
    if use_tz == settings.USE_TZ and time_zone == settings.TIME_ZONE:
        return []
    if not use_tz and settings.USE_TZ:
        meaning = (
            f"The backup's date-times have no time zone: they are taken as {settings.TIME_ZONE} "
            f"time, as Django takes a naive datetime."
        )
    elif not use_tz:
        meaning = (
            f"The backup's date-times have no time zone: they are restored as they are, and "
            f"read here as {settings.TIME_ZONE} time, not {time_zone}."
        )
    elif settings.USE_TZ:
        meaning = "The backup's date-times carry their UTC offset: each keeps its moment in time."
    else:
        meaning = (
            "The backup's date-times carry their UTC offset, which Django stores with USE_TZ = "
            "False only on PostgreSQL (on SQLite and MariaDB the restore fails)."
        )
    return [
        f"The backup was taken with USE_TZ = {use_tz}, TIME_ZONE = {time_zone!r}; this project "
        f"has {here}. {meaning}"
    ]


def _plan_order(loader: MigrationLoader, keys: set[tuple[str, str]]) -> list[tuple[str, str]]:
    order: list[tuple[str, str]] = []
    for leaf in loader.graph.leaf_nodes():
        for key in loader.graph.forwards_plan(leaf):
            if key in keys and key not in order:
                order.append(key)
    return order


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


def map_backup(
    backup_path: BackupRef,
    source: IO[bytes],
    using: str,
    only: Sequence[str],
    exclude: Sequence[str],
    set_values: dict[str, str],
    no_replay: bool,
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
    backup_migrations = meta.get("migrations", {})
    loader = MigrationLoader(connections[using], ignore_no_migrations=True)
    warnings = time_zone_warnings(meta) + migrations_behind(loader, backup_migrations)
    rows_in_backup = sum(counts.values())
    if not loader.applied_migrations and rows_in_backup:
        raise blocked(
            warnings,
            f"This database has no migrations applied, so it has none of the backup's tables "
            f"({rows_in_backup:,} rows in {backup_path.name}). Run `manage.py migrate` first (to the "
            f"backup's migrations, which `manage.py listbackups` shows, if the code has moved on), "
            f"then restore. Nothing was changed.",
        )
    since, _behind = migration_steps(loader, backup_migrations)
    changed_data = data_migrations(loader, since)
    if changed_data and not no_replay:
        raise blocked(
            warnings,
            f"Migrations applied since the backup was taken can change rows: {', '.join(changed_data)}. "
            f"Restored into today's schema, the backup's rows would not get those changes (a column "
            f"they fill would take its default instead). Nothing was changed. To restore exactly, "
            f"pass --replay: the rows are loaded at the backup's schema in a scratch database and "
            f"carried forward by those migrations. To restore into today's schema anyway, pass "
            f"--no-replay.",
            kind=NeedsReplay,
        )
    if changed_data:
        warnings.append(
            f"--no-replay: the changes of {', '.join(changed_data)} are not made to the restored rows."
        )

    # Unmanaged tables too: a backup made with --include-unmanaged holds them,
    # and only the tables a backup holds are ever written to.
    whole = plan_tables(using, include_unmanaged=True)
    scope = list(whole.select(only, exclude).tables)
    everything = {t.label.lower(): t for t in whole.tables}
    in_scope = {t.label.lower() for t in scope}
    model_renames, field_renames = migration_renames(loader, backup_migrations)
    mappings: list[TableMapping] = []
    blockers: list[str] = []
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
            blockers += map_columns(mapping, field_renames.get(current_label, {}), set_values)
        mappings.append(mapping)
    blockers += conversion_blockers(backup_path, source, mappings)
    unused = sorted(
        set(set_values)
        - {f"{m.table.label.lower()}.{f.name}" for m in mappings if m.table for f, _ in m.sources}
    )
    if unused:
        blockers.append(f"--set names no field this restore fills: {', '.join(unused)}.")
    if blockers:
        # Migrations since the backup may fill what cannot be mapped (an
        # AddField with a one-off default): a replay can restore it.
        raise blocked(
            warnings,
            f"The restore cannot go on ({len(blockers)} problem(s)); nothing was changed:",
            *[f"  - {blocker}" for blocker in blockers],
            *(
                [
                    "Or pass --replay to carry the rows forward through the migrations since the backup."
                ]
                if since
                else []
            ),
            kind=NeedsReplay if since else RestoreError,
        )
    plan = RestorePlan(backup_path, source, using, meta, mappings, scope, whole.tables, warnings)
    if rows_in_backup and not any(m.rows for m in mappings if m.table) and not (only or exclude):
        plan.close()
        raise blocked(
            warnings,
            f"None of the backup's tables with rows maps onto a table of this database "
            f"({rows_in_backup:,} rows in {backup_path.name}): it was taken from another project, or "
            f"this database is not migrated. Nothing was changed.",
        )
    return plan


def conversion_blockers(
    backup_path: BackupFile, source: IO[bytes], mappings: list[TableMapping]
) -> list[str]:
    """For each column whose type changed since the backup, the first value
    that will not convert: found before anything is written, with a second
    read of just those tables."""
    converted: dict[str, tuple[TableMapping, dict[AnyField, str], dict[str, str]]] = {}
    for mapping in mappings:
        if mapping.table is None:
            continue
        kinds = {c["name"]: c["kind"] for c in mapping.columns}
        pairs = {f: c for f, c in mapping.sources if c is not None and kind_of(f) != kinds[c]}
        if pairs:
            converted[mapping.backup_label] = (mapping, pairs, kinds)
    if not converted:
        return []

    def parser_for(meta: dict[str, Any]) -> Any:
        return row_parser(meta["columns"]) if meta["label"] in converted else None

    found: list[str] = []
    with ArchiveReader(backup_path, source) as reader:
        for section in reader.tables(parser_for):  # the reader checks what is not read here
            if section.meta["label"] not in converted:
                continue
            mapping, pending, kinds = converted[section.meta["label"]]
            assert mapping.table is not None
            decode = row_decoder(mapping.columns)
            for row in section.rows:
                try:
                    row = decode(row)
                except ValueError:
                    continue  # a damaged value: the load names it
                for model_field, column in list(pending.items()):
                    value = row.get(column)
                    try:
                        if value is not None:
                            model_field.to_python(value)
                    except (ValidationError, TypeError, ValueError) as exc:
                        message = exc.messages[0] if isinstance(exc, ValidationError) else str(exc)
                        pk = [row.get(f.name) for f in mapping.table.pk_fields]
                        found.append(
                            f"{mapping.table.label}.{model_field.name} was {kinds[column]} in the backup "
                            f"and is {kind_of(model_field)} now; the value {value!r} (row with primary "
                            f"key {pk[0] if len(pk) == 1 else tuple(pk)!r}) does not convert ({message}). "
                            f"Restore with --replay (the migration's own conversion), or convert the "
                            f"values before restoring."
                        )
                        del pending[model_field]
                if not pending:
                    break
    return found


def blocked(
    warnings: list[str], *lines: str, kind: type[RestoreError] = RestoreError
) -> RestoreError:
    """A refusal that shows the warnings first: they are often the reason."""
    return kind("\n".join([*warnings, *lines]))


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


def map_columns(
    mapping: TableMapping, renames: dict[str, str], set_values: dict[str, str] | None = None
) -> list[str]:
    """Pair each of today's fields with a backup column, a default or a --set
    value; note every change for the pre-flight report. Returns the blockers."""
    assert mapping.table is not None
    label = mapping.table.label
    set_values = set_values or {}
    by_name = {renames.get(c["name"], c["name"]): c for c in mapping.columns}
    used: set[str] = set()
    blockers = []
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
        given = set_values.get(f"{label.lower()}.{model_field.name}")
        if column is not None and given is None:
            used.add(column["name"])
            mapping.sources.append((model_field, column["name"]))
            if column["name"] != model_field.name:
                mapping.changes.append(f"{column['name']} -> {model_field.name} (renamed)")
            if column.get("null", True) and not model_field.null and model_field.has_default():
                # What `migrate` did to existing rows when the field became required.
                mapping.null_defaults.append(model_field)
                mapping.changes.append(
                    f"{model_field.name}: NULL takes the default {model_field.get_default()!r} (required now)"
                )
            if column["kind"] != kind_of(model_field):
                mapping.changes.append(
                    f"{model_field.name}: converted from {column['kind']} to {kind_of(model_field)}"
                )
            continue
        if given is not None:
            try:
                mapping.fixed[model_field.attname] = model_field.to_python(given)
            except (ValidationError, TypeError, ValueError) as exc:
                message = exc.messages[0] if isinstance(exc, ValidationError) else str(exc)
                blockers.append(f"--set {label}.{model_field.name}={given}: {message}")
                continue
            if column is not None:
                used.add(column["name"])
            mapping.sources.append((model_field, None))
            mapping.changes.append(f"{model_field.name}: set to {given!r} (--set)")
            continue
        if model_field.has_db_default() or model_field.has_default() or model_field.null:
            mapping.sources.append((model_field, None))
            default = (
                "the database's default"
                if model_field.has_db_default()
                else repr(model_field.get_default() if model_field.has_default() else None)
            )
            mapping.changes.append(f"{model_field.name}: not in the backup, takes {default}")
            continue
        blockers.append(
            f"{label}.{model_field.name} is required now and has no default, but the backup has no "
            f"values for it (it was added after the backup was taken). Pass --set "
            f"{label}.{model_field.name}=VALUE to give every restored row that value, or give the field "
            f"a default (or null=True) in a migration."
        )
    mapping.ignored_columns = [c["name"] for c in mapping.columns if c["name"] not in used]
    if mapping.ignored_columns:
        mapping.note = "not in the model any more: " + ", ".join(mapping.ignored_columns)
        mapping.changes += [
            f"{name}: not in the model any more, ignored" for name in mapping.ignored_columns
        ]
    return blockers
