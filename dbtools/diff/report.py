"""The result of a diff: per table, counts, changed columns, schema changes
and a few example rows; as a JSON document (docs/diffdb-report.schema.json)
and as the lines diffdb and safemigrate print."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from ..exceptions import DbtoolsError

SCHEMA_VERSION = 2  # 2: outside_subset
# Long values are cut in examples: an example shows where, not the whole document.
LONGEST_VALUE = 60
HIDDEN = "(hidden)"


class DiffError(DbtoolsError):
    """A diff that cannot be made: what failed and what to do."""


@dataclass
class RowExample:
    """One row that differs: its primary key, and for a changed row each
    changed column's old (backup) and new (database, or --against) value."""

    kind: str  # "changed", "only_in_backup" or "only_in_database"
    key: list[Any]
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)


@dataclass
class TableDiff:
    label: str
    only_in_backup: int = 0  # deleted since the backup
    only_in_database: int = 0  # added since
    changed: int = 0  # same primary key, other values
    same: int = 0
    columns: dict[str, int] = field(default_factory=dict)  # column -> rows where it changed
    schema_changes: list[str] = field(default_factory=list)
    examples: list[RowExample] = field(default_factory=list)
    compared: bool = True  # False: rows not compared (see schema_changes)
    # Rows one side lacks because that side is a subset that took only some
    # of the table's rows: not known to be added or deleted, not compared.
    outside_subset: int = 0
    partial: str | None = None  # "old", "new" or "both": the side(s) holding only some rows

    @property
    def differs(self) -> bool:
        return bool(
            self.only_in_backup or self.only_in_database or self.changed or self.schema_changes
        )


@dataclass
class DiffResult:
    old: str  # the backup's name
    new: str  # "database <alias>", or the other backup's name
    tables: list[TableDiff]
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)  # how the database side was read

    @property
    def differs(self) -> bool:
        return any(t.differs for t in self.tables)

    @property
    def differing(self) -> list[TableDiff]:
        return [t for t in self.tables if t.differs]

    def as_json(self) -> dict[str, Any]:
        """The document `diffdb --format json` prints."""
        return {
            "format": "dbtools-diff",
            "version": SCHEMA_VERSION,
            "old": self.old,
            "new": self.new,
            "differs": self.differs,
            "tables": [table_json(t) for t in self.tables],
        }


def table_json(table: TableDiff) -> dict[str, Any]:
    return {
        "label": table.label,
        "compared": table.compared,
        "only_in_backup": table.only_in_backup,
        "only_in_database": table.only_in_database,
        "outside_subset": table.outside_subset,
        "changed": table.changed,
        "same": table.same,
        "columns": dict(table.columns),
        "schema_changes": list(table.schema_changes),
        "examples": [
            {
                "kind": e.kind,
                "key": e.key,
                "changes": {c: {"old": old, "new": new} for c, (old, new) in e.changes.items()},
            }
            for e in table.examples
        ],
    }


def cut(value: Any) -> Any:
    """A value as an example shows it: long text, or a long JSON value as
    text, cut to LONGEST_VALUE characters."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict | list):
        text = orjson.dumps(value).decode()
        if len(text) <= LONGEST_VALUE:
            return value
    else:
        return value
    return text if len(text) <= LONGEST_VALUE else text[: LONGEST_VALUE - 1] + "…"


def shown_value(value: Any) -> str:
    if value is None:
        return "NULL"
    if value == HIDDEN:
        return HIDDEN
    return orjson.dumps(value).decode()


def shown_key(key: list[Any]) -> str:
    return shown_value(key[0]) if len(key) == 1 else "(" + ", ".join(map(shown_value, key)) + ")"


def summary_lines(table: TableDiff) -> list[str]:
    """One table's difference in a line, and a line per schema change (no
    examples): rows deleted (only in the backup), added (only in the database,
    or the second backup) and changed, with the count per changed column."""
    if not table.compared:
        return [f"{table.label}: {'; '.join(table.schema_changes)}"]
    counts = [
        f"{n:,} {what}"
        for n, what in (
            (table.only_in_backup, "deleted"),
            (table.only_in_database, "added"),
            (table.changed, "changed"),
        )
        if n
    ]
    line = f"{table.label}: {', '.join(counts) or 'no row differs'}"
    if table.columns:
        line += " (" + ", ".join(f"{name} {n:,}" for name, n in table.columns.items()) + ")"
    if table.outside_subset:
        line += f"; {table.outside_subset:,} not in the subset, not compared"
    return [line, *(f"  schema: {change}" for change in table.schema_changes)]


def example_lines(table: TableDiff) -> list[str]:
    """The examples: each changed row on a line, old -> new; the keys of
    deleted and of added rows on a line each."""
    lines = []
    for example in table.examples:
        if example.kind == "changed":
            changes = "; ".join(
                f"{name}: {shown_value(old)} -> {shown_value(new)}"
                for name, (old, new) in example.changes.items()
            )
            lines.append(f"  ~ {shown_key(example.key)}: {changes}")
    for kind, mark, what in (
        ("only_in_backup", "-", "deleted"),
        ("only_in_database", "+", "added"),
    ):
        keys = [shown_key(e.key) for e in table.examples if e.kind == kind]
        if keys:
            lines.append(f"  {mark} {what}: {', '.join(keys)}")
    return lines
