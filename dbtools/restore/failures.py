"""What a failed restore tells the user: which table, which row, why, and what to do."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..archive.codec import BadValue
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
    pk = [row.get(name) for name in pk_names]
    shown = repr(exc.value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return RestoreError(
        f"{plan.path.name}: table {mapping.backup_label}, row {number:,}"
        + (f" (primary key {pk[0] if len(pk) == 1 else tuple(pk)!r})" if pk else "")
        + f": column {exc.column} holds {shown}, which is not a {kind} value ({exc.cause}). "
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


def row_error(table: Table, pk: Any, exc: Exception) -> RestoreError:
    cause = " ".join(str(exc).split()) or type(exc).__name__
    lowered = cause.lower()
    if "nul (0x00)" in lowered:
        hint = "PostgreSQL text cannot hold NUL characters; clean the value in the source database and back up again."
    elif "not null" in lowered or "not-null" in lowered or "cannot be null" in lowered:
        hint = "The column is required now; give it a default in a migration, or restore into the schema the backup came from."
    elif isinstance(exc, OverflowError) or "out of range" in lowered:
        hint = "The value is too large for this database's column; restore into a database whose column can hold it."
    elif pk is not None and repeats_primary_key(table, lowered):
        hint = (
            f"Rows already there are skipped (merge) or emptied (--replace), so the backup holds "
            f"primary key {pk!r} more than once (backupdb writes each key once: the file was "
            f"edited or damaged; use another backup), or another session wrote that key during "
            f"the restore."
        )
    elif "duplicate" in lowered or "unique" in lowered:
        hint = (
            "Another row already holds that unique value under a different primary key (with "
            "--overwrite, values that moved between rows since the backup clash this way). See "
            f"the rows involved with `manage.py diffdb --only {table.label} --rows 20`, then change "
            "or remove the row that holds it; --replace is the blunt alternative: it empties the "
            "table first, so the rows added since the backup go too."
        )
    else:
        hint = "Check that the database is migrated to the state the backup was taken at (`manage.py showmigrations`)."
    where = f"the row with primary key {pk!r}" if pk is not None else "a batch of rows"
    return RestoreError(
        f"Restoring {table.label} (table {table.db_table}) failed at {where}: {sentence(cause)} {hint}",
        rolled_back=True,
    )
