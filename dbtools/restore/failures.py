"""What a failed restore tells the user: which table, which row, why, and what to do."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.db.models import QuerySet

from ..archive.codec import BadValue
from ..conf import sensitive
from ..display import sentence
from ..exceptions import RestoreError
from ..graph import Table

if TYPE_CHECKING:
    from .plan import RestorePlan, TableMapping


def bad_value_error(
    plan: RestorePlan, mapping: TableMapping, number: int, row: dict[str, Any], exc: BadValue
) -> RestoreError:
    kind = next((c["kind"] for c in mapping.columns if c["name"] == exc.column), "?")
    pk_names = [f.name for f in mapping.table.pk_fields] if mapping.table else []
    hidden = sensitive(mapping.backup_label, pk_names)
    pk = [HIDDEN if name in hidden else row.get(name) for name in pk_names]
    shown = repr(exc.value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    cause = exc.cause
    if sensitive(mapping.backup_label, [exc.column]):
        shown = NOT_SHOWN
        cause = cause.replace(str(exc.value), "…") if str(exc.value) else cause
    return RestoreError(
        f"{plan.path.name}: table {mapping.backup_label}, row {number:,}"
        + (f" (primary key {pk[0] if len(pk) == 1 else tuple(pk)!r})" if pk else "")
        + f": column {exc.column} holds {shown}, which is not a {kind} value ({cause}). "
        f"The file was edited or damaged;",
        rolled_back=True,
        fix="Use another backup, or correct the value in the file.",
    )


def changed_under_us(plan: RestorePlan) -> RestoreError:
    return RestoreError(
        f"{plan.path.name} changed while it was being restored (its tables are not the ones that were "
        f"checked).",
        rolled_back=True,
        fix="Run the restore again.",
    )


class _Hidden:
    """A part of a primary key that DBTOOLS['SENSITIVE_FIELDS'] lists, as an error shows it."""

    def __repr__(self) -> str:
        return "(hidden)"


HIDDEN = _Hidden()


def shown_pk(pk: Any, pk_names: list[str], hidden: Iterable[str]) -> Any:
    """`pk` (row_pk's value or tuple, for `pk_names`; or None) with its parts in
    `hidden` as HIDDEN."""
    hidden = set(hidden)
    if pk is None:
        return None
    if len(pk_names) == 1:
        return HIDDEN if pk_names[0] in hidden else pk
    return tuple(HIDDEN if n in hidden else p for n, p in zip(pk_names, pk, strict=True))


NOT_SHOWN = "a value (not shown: DBTOOLS['SENSITIVE_FIELDS'] lists the column)"


def shown_in_error(
    label: str,
    row: dict[str, Any],
    pk_names: list[str],
    name: str,
    value: Any,
    message: str = "",
    show: Callable[[Any], str] = repr,
) -> tuple[Any, str, str]:
    """The row's primary key, `value` (of field `name`) and a `message` that may
    quote it, as an error shows them: what DBTOOLS['SENSITIVE_FIELDS'] lists is not."""
    hidden = sensitive(label, [*pk_names, name])
    pk = shown_pk(row_pk({n: row.get(n) for n in pk_names}, pk_names), pk_names, hidden)
    if name not in hidden:
        return pk, show(value), message
    return pk, NOT_SHOWN, message.replace(str(value), "…") if str(value) else message


def row_pk(row: dict[str, Any], pk_names: list[str]) -> Any:
    return row[pk_names[0]] if len(pk_names) == 1 else tuple(row[name] for name in pk_names)


def repeats_primary_key(table: Table, lowered: str) -> bool:
    """Whether a database's (lower-cased) error is a duplicate of the primary key itself."""
    columns = [(f.column or "").lower() for f in table.pk_fields]
    return (
        f"key ({', '.join(columns)})=(" in lowered  # PostgreSQL
        or lowered.endswith(  # SQLite
            "unique constraint failed: "
            + ", ".join(f"{table.db_table.lower()}.{c}" for c in columns)
        )
        or ("duplicate entry" in lowered and "primary'" in lowered)  # MySQL, MariaDB
    )


# Where a database's error quotes row values: PostgreSQL's DETAIL (a key, a
# failing row), MySQL's and MariaDB's duplicate entry and bad value.
QUOTED_VALUES = (
    (
        re.compile(r"(Key \(.*?\))=\(.*\)( already exists| is not present| is still referenced)"),
        r"\1=(…)\2",
    ),
    (re.compile(r"(Failing row contains )\(.*\)"), r"\1(…)"),
    (re.compile(r"(Duplicate entry )'.*'( for key)"), r"\1'…'\2"),
    (re.compile(r"(value: )'.*'( for column)"), r"\1'…'\2"),
)


def hidden_fields(table: Table) -> frozenset[str]:
    """The attnames of `table`'s fields listed in DBTOOLS['SENSITIVE_FIELDS']."""
    names = sensitive(table.label, (f.name for f in table.fields))
    return frozenset(str(f.attname) for f in table.fields if f.name in names)


def database_cause(exc: Exception, hide: bool, values: Iterable[Any] = ()) -> str:
    """A database's error on one line; with `hide`, without the row values it
    quotes (nor any of `values`), saying so: a table with sensitive fields
    never has their values printed."""
    said = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
    cause = " ".join(said.split()) or type(exc).__name__
    if not hide:
        return cause
    shown = cause
    for pattern, replacement in QUOTED_VALUES:
        shown = pattern.sub(replacement, shown)
    for value in values:
        if value is not None and str(value):
            shown = shown.replace(str(value), "…")
    return (
        f"{sentence(shown)} Its row values are not shown: DBTOOLS['SENSITIVE_FIELDS'] lists "
        f"fields of the tables restored."
    )


def plan_cause(plan: RestorePlan, exc: Exception) -> str:
    """A database's error during `plan`'s restore, not tied to a row: without
    the values it quotes when a table restored has sensitive fields."""
    return database_cause(exc, any(hidden_fields(t) for t in plan.covered)).rstrip(".")


def row_error(
    table: Table,
    pk: Any,
    exc: Exception,
    row: dict[str, Any] | None = None,
    holder: tuple[Any, list[str]] | None = None,
) -> RestoreError:
    """`holder`: the primary key of the row that holds the unique value the
    row failed on, and that value's fields (unique_holder)."""
    hidden = hidden_fields(table)
    cause = database_cause(exc, bool(hidden), [(row or {}).get(name) for name in hidden])
    pk_names = [str(f.attname) for f in table.pk_fields]
    pk = shown_pk(pk, pk_names, hidden)
    cause = held_by(cause, holder, pk_names, hidden)
    hint = row_hint(table, pk, exc, cause)
    where = f"the row with primary key {pk!r}" if pk is not None else "a batch of rows"
    return RestoreError(
        f"Restoring {table.label} (table {table.db_table}) failed at {where}: {sentence(cause)} {hint}",
        rolled_back=True,
    )


def row_hint(table: Table, pk: Any, exc: Exception, cause: str) -> str:
    """What to do about a row's error, by what the database said."""
    lowered = cause.lower()
    if "nul (0x00)" in lowered:
        return "PostgreSQL text cannot hold NUL characters; clean the value in the source database and back up again."
    if "not null" in lowered or "not-null" in lowered or "cannot be null" in lowered:
        return "The column is required now; give it a default in a migration, or restore into the schema the backup came from."
    if isinstance(exc, OverflowError) or "out of range" in lowered:
        return "The value is too large for this database's column; restore into a database whose column can hold it."
    if isinstance(exc, ValidationError):
        return (
            "Django's field refuses that value whatever the database (a DecimalField saves no "
            "NaN, though PostgreSQL's numeric holds one); correct it in the source database "
            "and back up again."
        )
    if pk is not None and repeats_primary_key(table, lowered):
        return (
            f"Rows already there are skipped (merge) or emptied (--replace), so the backup holds "
            f"primary key {pk!r} more than once (backupdb writes each key once: the file was "
            f"edited or damaged; use another backup), or another session wrote that key during "
            f"the restore."
        )
    if "duplicate" in lowered or "unique" in lowered:
        return (
            "Another row already holds that unique value under a different primary key (with "
            "--overwrite, values that moved between rows since the backup clash this way). See "
            f"the rows involved with `manage.py diffdb --only {table.label} --rows 20`, then change "
            "or remove the row that holds it; --replace is the blunt alternative: it empties the "
            "table first, so the rows added since the backup go too."
        )
    return "Check that the database is migrated to the state the backup was taken at (`manage.py showmigrations`)."


def key_matched_by_collation(table: Table, backup_key: Any, database_key: Any) -> RestoreError:
    """The backup's primary key `backup_key` is not a key this database holds,
    but its column's collation (MariaDB's *_ci, and every MariaDB collation
    for trailing spaces, SQLite's NOCASE, a non-deterministic PostgreSQL
    collation, citext) takes it for
    `database_key`: a merge would skip the backup's row as already there,
    an overwrite write it into a row the backup does not hold."""
    pk_names = [str(f.attname) for f in table.pk_fields]
    hidden = hidden_fields(table)
    backup_key = shown_pk(backup_key, pk_names, hidden)
    database_key = shown_pk(database_key, pk_names, hidden)
    return RestoreError(
        f"Restoring {table.label} (table {table.db_table}): the backup's row with primary key "
        f"{backup_key!r} matches this database's row {database_key!r} only by the column's "
        f"collation, which takes them for the same key (case, accents or trailing spaces), "
        f"so it would be taken for that row.",
        rolled_back=True,
        fix="Change one of the two keys, or restore the table with --replace (it empties the "
        "table first, so the rows added since the backup go too).",
    )


def collation_twin(table: Table, row: dict[str, Any], using: str) -> Any:
    """The primary key of the row this database takes for `row`'s that is not
    `row`'s own: equal only by the columns' collations; None if there is none."""
    pk_names = [str(f.attname) for f in table.pk_fields]
    key = row_pk(row, pk_names)
    if any(row.get(name) is None for name in pk_names):
        return None
    rows: QuerySet[Any] = QuerySet(model=table.model, using=using)
    try:
        with transaction.atomic(using=using):
            found = rows.filter(**{n: row[n] for n in pk_names}).values_list(*pk_names).first()
    except (DatabaseError, ValueError, TypeError):
        return None
    if found is None:
        return None
    held = found[0] if len(found) == 1 else tuple(found)
    return held if held != key else None


def keys_one_by_collation(table: Table, key: Any, twin: Any) -> RestoreError:
    """A backup's key that the table's column takes for another row's (two
    keys of a backup from a database that tells them apart, or one written
    by another session): "more than once" would blame the file."""
    pk_names = [str(f.attname) for f in table.pk_fields]
    hidden = hidden_fields(table)
    return RestoreError(
        f"Restoring {table.label} (table {table.db_table}) failed at the row with primary key "
        f"{shown_pk(key, pk_names, hidden)!r}: this database's column takes it for "
        f"{shown_pk(twin, pk_names, hidden)!r}, a row the table holds now, as the same key "
        f"(its collation ignores case, accents or trailing spaces), so it cannot hold both.",
        rolled_back=True,
        fix="Restore into a database whose column tells the keys apart (a collation that "
        "minds case and accents; on MariaDB one with NO PAD for trailing spaces), or change "
        "one of the two keys in the source database and back up again.",
    )


def held_by(
    cause: str, holder: tuple[Any, list[str]] | None, pk_names: list[str], hidden: Iterable[str]
) -> str:
    """`cause`, and which row holds the unique value, if found (unique_holder)."""
    if holder is None:
        return cause
    key = shown_pk(holder[0], pk_names, hidden)
    return f"{sentence(cause)} The row with primary key {key!r} holds its {' and '.join(holder[1])} now"


def unique_sets(table: Table) -> list[list[str]]:
    """The attnames of each unique value of `table` but its primary key: a
    field, unique_together, a UniqueConstraint on fields."""
    meta = table.model._meta
    sets = [[f.name] for f in table.fields if f.unique and not f.primary_key]
    sets += [list(names) for names in meta.unique_together]
    sets += [list(c.fields) for c in meta.total_unique_constraints if c.fields]
    attname = {f.name: str(f.attname) for f in table.fields}
    return [[attname[n] for n in names] for names in sets if all(n in attname for n in names)]


def unique_holder(table: Table, row: dict[str, Any], using: str) -> tuple[Any, list[str]] | None:
    """The primary key of another row holding one of `row`'s unique values,
    and those values' fields; None if none is found. Only the key is shown,
    never the value."""
    pk_names = [str(f.attname) for f in table.pk_fields]
    rows: QuerySet[Any] = QuerySet(model=table.model, using=using)
    rows = rows.exclude(pk=row_pk(row, pk_names))
    names = {str(f.attname): f.name for f in table.fields}
    for attnames in unique_sets(table):
        if any(row.get(a) is None for a in attnames):
            continue  # NULL clashes with nothing
        try:
            with transaction.atomic(using=using):
                found = rows.filter(**{a: row[a] for a in attnames}).values_list(*pk_names).first()
        except (DatabaseError, ValueError, TypeError):
            continue  # a value the lookup cannot take: the error stays as it is
        if found is not None:
            return (found[0] if len(found) == 1 else tuple(found)), [names[a] for a in attnames]
    return None
