"""The database's schema as introspection sees it, and what differs between two looks.

safemigrate records the schema before it migrates. After a rollback it looks
again: only when nothing differs may it say the schema is as it was. Where
DDL is not transactional (MariaDB/MySQL, or a migration with atomic = False)
a failed migration can leave an index, a changed column or a NOT NULL
behind, and the comparison is what finds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from ..backends import backend_for


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # as Django's introspection names it, with its size
    null: bool
    default: str | None

    @property
    def label(self) -> str:
        return f"column {self.name}"

    @property
    def droppable_index(self) -> str | None:
        return None

    def describe(self) -> str:
        null = "NULL" if self.null else "NOT NULL"
        default = f" DEFAULT {self.default}" if self.default is not None else ""
        return f"{self.type} {null}{default}"


@dataclass(frozen=True)
class Constraint:
    name: str
    kind: str  # "primary key", "unique", "foreign key", "check", "index"
    columns: tuple[str, ...]
    detail: str  # the referenced table for a foreign key, the index type, ...

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"

    @property
    def droppable_index(self) -> str | None:
        """An index can be dropped without touching data; other constraints are not."""
        return self.name if self.kind == "index" else None

    def describe(self) -> str:
        target = f" -> {self.detail}" if self.kind == "foreign key" else ""
        return f"({', '.join(self.columns)}){target}"


@dataclass(frozen=True)
class TableSchema:
    columns: dict[str, Column]
    constraints: dict[str, Constraint]


Schema = dict[str, TableSchema]


def read_schema(connection: BaseDatabaseWrapper) -> Schema:
    """Every table of the database: columns (type, size, nullability, default)
    and constraints and indexes, by name."""
    introspection = connection.introspection
    schema: Schema = {}
    with connection.cursor() as cursor:
        for table in sorted(introspection.table_names(cursor)):
            columns = {
                info.name: Column(
                    info.name,
                    column_type(connection, info),
                    bool(info.null_ok),
                    _text(info.default),
                )
                for info in introspection.get_table_description(cursor, table)
            }
            found = introspection.get_constraints(cursor, table)
            constraints = {
                name: constraint_of(name, details)
                for name, details in found.items()
                if not _unnamed(name)
            }
            unnamed = [constraint_of("", d) for name, d in found.items() if _unnamed(name)]
            # SQLite numbers unnamed constraints in the order it finds them;
            # compare those by what they are, not by that number.
            for constraint in sorted(unnamed, key=lambda c: (c.kind, c.columns, c.detail)):
                key = f"{constraint.kind} ({', '.join(constraint.columns)})"
                constraints[key] = Constraint(
                    "(unnamed)", constraint.kind, constraint.columns, constraint.detail
                )
            schema[table] = TableSchema(columns, constraints)
    return schema


def _unnamed(name: str) -> bool:
    return name.startswith("__unnamed_constraint_") or (
        name.startswith("fk_") and name[3:].isdigit()
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def column_type(connection: BaseDatabaseWrapper, info: Any) -> str:
    try:
        name = connection.introspection.get_field_type(info.type_code, info)
    except KeyError:
        name = str(info.type_code)
    size = info.display_size or info.internal_size
    if info.precision is not None and info.scale is not None and "Decimal" in name:
        return f"{name}({info.precision},{info.scale})"
    if size and size > 0 and ("Char" in name or "Binary" in name):
        return f"{name}({size})"
    return name


def constraint_of(name: str, details: Mapping[str, Any]) -> Constraint:
    columns = tuple(details.get("columns") or ())
    if details.get("primary_key"):
        kind, detail = "primary key", ""
    elif details.get("foreign_key"):
        kind, detail = "foreign key", ".".join(str(p) for p in details["foreign_key"])
    elif details.get("unique"):
        kind, detail = "unique", ""
    elif details.get("check"):
        kind, detail = "check", ""
    else:
        kind, detail = "index", str(details.get("type") or "")
    return Constraint(name, kind, columns, detail)


@dataclass(frozen=True)
class Difference:
    table: str
    what: str  # a sentence: what is there now against what was there before
    extra_index: str | None = None  # an index that was not there before: can be dropped
    name: str | None = None  # the column or constraint it is about; None: the whole table

    def __str__(self) -> str:
        return f"{self.table}: {self.what}"


def compare(before: Schema, after: Schema) -> list[Difference]:
    """What differs in `after` from `before`, table by table, as sentences."""
    found: list[Difference] = []
    for table in sorted(set(before) | set(after)):
        if table not in after:
            found.append(Difference(table, "the table is gone"))
        elif table not in before:
            found.append(Difference(table, "the table was not there before"))
        else:
            old, new = before[table], after[table]
            found += _differences(table, old.columns, new.columns)
            found += _differences(table, old.constraints, new.constraints)
    return found


def _differences(
    table: str, before: Mapping[str, Column | Constraint], after: Mapping[str, Column | Constraint]
) -> list[Difference]:
    found = []
    for name in sorted(set(before) | set(after)):
        was, now = before.get(name), after.get(name)
        if was == now:
            continue
        if now is None:
            assert was is not None
            found.append(
                Difference(table, f"{was.label} is gone (was {was.describe()})", name=was.name)
            )
        elif was is None:
            found.append(
                Difference(
                    table,
                    f"{now.label} was not there before ({now.describe()})",
                    now.droppable_index,
                    now.name,
                )
            )
        else:
            found.append(
                Difference(
                    table, f"{now.label} is {now.describe()}, was {was.describe()}", name=now.name
                )
            )
    return found


def drop_index(connection: BaseDatabaseWrapper, table: str, name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(backend_for(connection).drop_index_sql(table, name))
