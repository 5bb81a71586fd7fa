"""The backup's rows whose primary key this database already holds: what a
merge would skip, shown before it asks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from ..archive import ArchiveReader
from ..archive.codec import AnyField, row_decoder
from ..archive.row_parsing import row_parser
from .mapping import NATURAL_KEYS, TableMapping

if TYPE_CHECKING:
    from .plan import RestorePlan

PREVIEW_MOST_ROWS = 100_000
PREVIEW_KEYS_SHOWN = 5
KEYS_PER_CHUNK = 10_000


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
class HeldKeys:
    """A table's primary keys as this database holds them, and where the backup has them."""

    mapping: TableMapping
    keys: set[Any]
    pk_fields: list[AnyField]
    key_columns: list[str]


def rows_already_there(plan: RestorePlan, most: int) -> Overlap:
    """One read of the file; a table's keys are read from the database when
    the file reaches its rows, and let go after them: one table's keys held
    at a time, not every table's at once."""
    candidates = {
        m.backup_label: m
        for m in plan.mappings
        if key_sources(m) is not None and holds_rows(m, plan.using)
    }
    found: list[TableOverlap] = []
    unchecked: list[str] = []
    if not candidates:  # into empty tables: nothing to find, the file is not read again
        return Overlap(found, unchecked)
    held: dict[str, HeldKeys] = {}

    def parser_for(meta: dict[str, Any]) -> Any:
        held.clear()  # the table before's keys
        mapping = candidates.get(meta["label"])
        keys = keys_held(mapping, plan.using, most, unchecked) if mapping else None
        if keys is None:
            return None
        held[meta["label"]] = keys
        return row_parser(meta["columns"])

    with ArchiveReader(plan.path, plan.source) as reader:
        for section in reader.tables(parser_for):
            keys = held.get(section.meta["label"])
            if keys is None:
                continue
            overlap = overlap_of(keys, section.rows)
            if overlap.rows:
                found.append(overlap)
    held.clear()
    return Overlap(found, unchecked)


def holds_rows(mapping: TableMapping, using: str) -> bool:
    return mapping.table is not None and mapping.table.model._base_manager.using(using).exists()


def keys_held(
    mapping: TableMapping, using: str, most: int, unchecked: list[str]
) -> HeldKeys | None:
    """The keys the table holds (holds_rows found some), if they are at most
    `most` (a bigger table is added to `unchecked`)."""
    key_columns = key_sources(mapping)
    if mapping.table is None or key_columns is None:
        return None
    table = mapping.table
    rows = table.model._base_manager.using(using)
    if rows.order_by()[most : most + 1].exists():  # bounded: no count of a big table
        unchecked.append(table.label)
        return None
    pk_fields = list(table.pk_fields)
    return HeldKeys(
        mapping, primary_keys(rows, [f.attname for f in pk_fields]), pk_fields, key_columns
    )


def key_sources(mapping: TableMapping) -> list[str] | None:
    """The backup columns of the table's primary key; None for a table not
    restored, empty in the backup, matched by natural key, or whose key the
    backup lacks (every row is new)."""
    table = mapping.table
    if table is None or not mapping.rows or table.label.lower() in NATURAL_KEYS:
        return None
    columns = dict((f.attname, c) for f, c in mapping.sources)
    sources = [columns.get(f.attname) for f in table.pk_fields]
    return None if None in sources else [str(c) for c in sources]


def primary_keys(rows: QuerySet[Any], names: list[str]) -> set[Any]:
    """In chunks: no list of every key beside the set."""
    keys = rows.values_list(*names) if len(names) > 1 else rows.values_list(names[0], flat=True)
    return set(keys.iterator(chunk_size=KEYS_PER_CHUNK))


def overlap_of(held: HeldKeys, rows: Iterator[Any]) -> TableOverlap:
    assert held.mapping.table is not None
    decode = row_decoder(held.mapping.columns)
    overlap = TableOverlap(held.mapping.table.label, 0, [])
    for row in rows:
        try:
            values = decode(row)
            key = tuple(
                f.to_python(values.get(c))
                for f, c in zip(held.pk_fields, held.key_columns, strict=True)
            )
        except (ValueError, ValidationError):
            continue  # a damaged value: the load names it
        if (key if len(key) > 1 else key[0]) in held.keys:
            overlap.rows += 1
            if len(overlap.keys) < PREVIEW_KEYS_SHOWN:
                overlap.keys.append(key if len(key) > 1 else key[0])
    return overlap
