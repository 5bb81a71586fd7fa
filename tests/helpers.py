"""Shared test helpers: reading a backup back, comparing tables exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db.models import QuerySet

from dbtools.archive import ArchiveReader
from dbtools.codec import row_decoder, row_parser
from dbtools.graph import plan_tables


def read_backup(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Every table of a backup, rows decoded to Python values."""
    tables: dict[str, list[dict[str, Any]]] = {}
    with ArchiveReader(path) as reader:
        for section in reader.tables(lambda meta: row_parser([c["kind"] for c in meta["columns"]])):
            decode = row_decoder(section.meta["columns"])
            tables[section.meta["label"]] = [decode(row) for row in section.rows]
    return tables


def table_rows(alias: str, label: str) -> list[dict[str, Any]]:
    """A table's rows as the ORM reads them, keyed by field name, in pk order."""
    table = next(t for t in plan_tables(alias).tables if t.label == label)
    model = table.model
    names = [f.name for f in table.fields]
    rows = QuerySet(model=model, using=alias).order_by(*[f.attname for f in table.pk_fields])
    return [
        dict(zip(names, row, strict=True))
        for row in rows.values_list(*[f.attname for f in table.fields])
    ]


def database_contents(
    alias: str, labels: list[str] | None = None
) -> dict[str, list[dict[str, Any]]]:
    plan = plan_tables(alias)
    return {
        t.label: table_rows(alias, t.label)
        for t in plan.tables
        if labels is None or t.label in labels
    }


def comparable(value: Any) -> Any:
    """Values as they compare in a test: NaN equal to NaN, memoryview as bytes."""
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def comparable_tables(tables: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    return {
        label: [{k: comparable(v) for k, v in row.items()} for row in rows]
        for label, rows in tables.items()
    }
