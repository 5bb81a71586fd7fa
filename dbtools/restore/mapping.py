"""How the backup's columns map onto today's fields: copied (renamed
maybe), converted, defaulted, set with --set, or blocking the restore."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from django.core.exceptions import ValidationError

from ..archive import ArchiveReader
from ..archive.codec import AnyField, kind_of, row_decoder
from ..archive.row_parsing import row_parser
from ..graph import Table
from ..storage import BackupFile
from .failures import shown_in_error


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
    backup_pk: list[str] = field(default_factory=list)  # the backup's primary key (field names)


# Rows whose ids differ between databases that were migrated separately: a
# restore matches them by natural key and re-points references to them.
NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "contenttypes.contenttype": ("app_label", "model"),
    "auth.permission": ("content_type", "codename"),
}


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
        column = source_column(mapping, by_name, model_field, used)
        given = set_values.get(f"{label.lower()}.{model_field.name}")
        if column is not None and given is None:
            used.add(column["name"])
            map_copied(mapping, model_field, column)
        elif given is not None:
            problem = map_given(mapping, model_field, given)
            if problem:
                blockers.append(problem)
            elif column is not None:
                used.add(column["name"])
        elif model_field.primary_key:
            blockers.append(
                f"{label}.{model_field.name} is the primary key now, but the backup has no "
                f"values for it{was_key(mapping)}: the primary key changed since the backup, so "
                f"the backup's rows cannot be matched with the table's. Restore into the schema "
                f"the backup came from."
            )
        elif takes_default(model_field):
            map_default(mapping, model_field)
        else:
            blockers.append(
                f"{label}.{model_field.name} is required now and has no default, but the backup has no "
                f"values for it (it was added after the backup was taken). Pass --set "
                f"{label}.{model_field.name}=VALUE to give every restored row that value, or give the field "
                f"a default (or null=True) in a migration."
            )
    note_ignored(mapping, used)
    return blockers


def was_key(mapping: TableMapping) -> str:
    return f" (its primary key was {', '.join(mapping.backup_pk)})" if mapping.backup_pk else ""


def key_change(mapping: TableMapping) -> str | None:
    """How the table's primary key differs from the backup's (not one of its
    columns, of another kind, or another column), or None: what rows matched
    by primary key (an overwrite, a diff) cannot get past."""
    assert mapping.table is not None
    sources = {f.attname: column for f, column in mapping.sources}
    kinds = {c["name"]: c["kind"] for c in mapping.columns}
    for key in mapping.table.pk_fields:
        column = sources.get(key.attname)
        if column is None:
            was = f"it was {', '.join(mapping.backup_pk)}, and " if mapping.backup_pk else ""
            return f"{was}{key.name} is not in the backup"
        if kinds[column] != kind_of(key):
            return f"{key.name} was {kinds[column]}, and is {kind_of(key)} now"
    columns = [str(sources[key.attname]) for key in mapping.table.pk_fields]
    if mapping.backup_pk and columns != mapping.backup_pk:
        return f"it was {', '.join(mapping.backup_pk)}, and is {', '.join(columns)} now"
    return None


def takes_default(model_field: AnyField) -> bool:
    return bool(model_field.has_db_default() or model_field.has_default() or model_field.null)


def note_ignored(mapping: TableMapping, used: set[str]) -> None:
    """The backup's columns no field takes: noted, not restored."""
    mapping.ignored_columns = [c["name"] for c in mapping.columns if c["name"] not in used]
    if mapping.ignored_columns:
        mapping.note = "not in the model any more: " + ", ".join(mapping.ignored_columns)
        mapping.changes += [
            f"{name}: not in the model any more, ignored" for name in mapping.ignored_columns
        ]


def source_column(
    mapping: TableMapping,
    by_name: dict[str, dict[str, Any]],
    model_field: AnyField,
    used: set[str],
) -> dict[str, Any] | None:
    """The backup column that holds `model_field`'s values, if any."""
    column = by_name.get(model_field.name)
    if column is None and model_field.is_relation:
        # An auto-created M2M table whose model was renamed: match by target.
        target = model_field.related_model._meta.label  # type: ignore[union-attr]
        matches = [
            c for c in mapping.columns if c.get("references") == target and c["name"] not in used
        ]
        column = matches[0] if len(matches) == 1 else None
    return column


def map_copied(mapping: TableMapping, model_field: AnyField, column: dict[str, Any]) -> None:
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


def map_given(mapping: TableMapping, model_field: AnyField, given: str) -> str:
    """A --set value for `model_field`; the blocker if it does not parse."""
    assert mapping.table is not None
    try:
        value = model_field.to_python(given)
        # As a form would: a value the field does not hold is not rounded or cut to fit.
        model_field.run_validators(value)
        mapping.fixed[model_field.attname] = value
    except (ValidationError, TypeError, ValueError) as exc:
        message = exc.messages[0] if isinstance(exc, ValidationError) else str(exc)
        return f"--set {mapping.table.label}.{model_field.name}={given}: {message}"
    mapping.sources.append((model_field, None))
    mapping.changes.append(f"{model_field.name}: set to {given!r} (--set)")
    return ""


def map_default(mapping: TableMapping, model_field: AnyField) -> None:
    mapping.sources.append((model_field, None))
    default = (
        "the database's default"
        if model_field.has_db_default()
        else repr(model_field.get_default() if model_field.has_default() else None)
    )
    mapping.changes.append(f"{model_field.name}: not in the backup, takes {default}")


@dataclass
class Conversion:
    """A table's columns whose type changed since the backup, still to try."""

    mapping: TableMapping
    pending: dict[AnyField, str]  # field <- backup column
    kinds: dict[str, str]  # backup column -> its kind in the backup


def conversion_blockers(
    backup_path: BackupFile, source: IO[bytes], mappings: list[TableMapping]
) -> list[str]:
    """For each column whose type changed since the backup, the first value
    that will not convert: found before anything is written, with a second
    read of just those tables."""
    converted: dict[str, Conversion] = {}
    for mapping in mappings:
        if mapping.table is None:
            continue
        kinds = {c["name"]: c["kind"] for c in mapping.columns}
        pairs = {f: c for f, c in mapping.sources if c is not None and kind_of(f) != kinds[c]}
        if pairs:
            converted[mapping.backup_label] = Conversion(mapping, pairs, kinds)
    if not converted:
        return []

    def parser_for(meta: dict[str, Any]) -> Any:
        return row_parser(meta["columns"]) if meta["label"] in converted else None

    found: list[str] = []
    with ArchiveReader(backup_path, source) as reader:
        for section in reader.tables(parser_for):  # the reader checks what is not read here
            if section.meta["label"] in converted:
                found += first_failures(converted[section.meta["label"]], section.rows)
    return found


def first_failures(conversion: Conversion, rows: Iterator[Any]) -> list[str]:
    """The first value of each pending column that does not convert."""
    found = []
    pending = conversion.pending
    decode = row_decoder(conversion.mapping.columns)
    for row in rows:
        try:
            row = decode(row)
        except ValueError:
            continue  # a damaged value: the load names it
        for model_field, column in list(pending.items()):
            problem = conversion_problem(conversion, model_field, column, row)
            if problem:
                found.append(problem)
                del pending[model_field]
        if not pending:
            break
    return found


def conversion_problem(
    conversion: Conversion, model_field: AnyField, column: str, row: dict[str, Any]
) -> str:
    table = conversion.mapping.table
    assert table is not None
    value = row.get(column)
    try:
        if value is not None:
            model_field.to_python(value)
    except (ValidationError, TypeError, ValueError) as exc:
        message = exc.messages[0] if isinstance(exc, ValidationError) else str(exc)
        pk_names = [f.name for f in table.pk_fields]
        pk, shown, message = shown_in_error(
            table.label, row, pk_names, model_field.name, value, message
        )
        return (
            f"{table.label}.{model_field.name} was {conversion.kinds[column]} in the backup "
            f"and is {kind_of(model_field)} now; the value {shown} (row with primary "
            f"key {pk!r}) does not convert ({message}). "
            f"Restore with --replay (the migration's own conversion), or convert the "
            f"values before restoring."
        )
    return ""
