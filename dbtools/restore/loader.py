"""Loader: loads one RestorePlan inside an open transaction, table by table
in the file's order, each with the strategy chosen for it (strategies.py)."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DatabaseError, connections, transaction
from django.db.models import QuerySet

from ..archive import ArchiveReader
from ..archive.codec import row_decoder
from ..archive.row_parsing import row_parser
from ..backends import backend_for, pg_loads
from . import foreign_keys, scope
from .failures import changed_under_us
from .natural_keys import NaturalKeys
from .overwrite import Mode
from .plan import NATURAL_KEYS, RestorePlan, TableMapping
from .rows import RowPipeline
from .strategies import (
    Batches,
    CompiledValue,
    Progress,
    TableLoad,
    TableReceipt,
    copy_strategy,
)

# What makes a table's COPY give way to batches, which name the failing row.
COPY_FAILURES = (
    DatabaseError,
    ValidationError,
    ValueError,
    TypeError,
    OverflowError,
    CompiledValue,
    pg_loads.KeyNotComparable,
)


class Loader:
    """Loads one RestorePlan inside an open transaction."""

    def __init__(
        self,
        plan: RestorePlan,
        mode: Mode,
        progress: Progress | None,
        migrations_own: dict[str, str] | None = None,
    ) -> None:
        self.plan = plan
        self.mode = mode
        # merge: tables holding only the rows the migrations make, with their
        # rows_fingerprint when that was checked; emptied first, so the
        # backup's rows win.
        self.migrations_own = {k.lower(): v for k, v in (migrations_own or {}).items()}
        self.progress = progress
        self.connection = connections[plan.using]
        self.using = plan.using
        # backup id -> id in this database, for tables matched by natural key
        self.remapped: dict[str, dict[Any, Any]] = {}
        replaced = {t.label.lower() for t in plan.scope} if mode == "replace" else set()
        replaced -= plan.matched_only
        self.match_by_natural_key = {label for label in NATURAL_KEYS if label not in replaced}
        self.loaded = {m.backup_label for m in plan.mappings if m.table}
        self.rows = RowPipeline(plan, self.connection, self.remapped)
        self.natural_keys = NaturalKeys(plan, self.rows)

    def empty_covered_tables(self) -> None:
        """--replace: delete every row of each table the backup covers (never
        the natural-key tables a subset names only some rows of)."""
        scope.empty(self.connection, self.plan.emptied_by_replace)

    def empty_migrations_own_tables(self) -> None:
        tables = [t for t in self.plan.covered if t.label.lower() in self.migrations_own]
        scope.empty_unchanged(self.connection, tables, self.migrations_own)

    def run(self) -> list[TableReceipt]:
        receipts = []
        # Set aside before --replace's DELETEs: PostgreSQL alters no table with
        # trigger events pending, and those DELETEs queue some.
        with foreign_keys.checked_once(self.connection, self.tables_checked_once()):
            if self.mode == "replace":
                self.empty_covered_tables()
            elif self.migrations_own:
                self.empty_migrations_own_tables()
            receipts = self.load_all()
        for receipt in receipts:
            if receipt.label.lower() in self.migrations_own:
                receipt.note = "held only the migrations' own rows: given the backup's"
        return receipts

    def load_all(self) -> list[TableReceipt]:
        receipts = []
        with ArchiveReader(self.plan.path, self.plan.source) as reader:
            if reader.meta.get("backup_id") != self.plan.meta.get("backup_id"):
                raise changed_under_us(self.plan)
            mappings = iter(self.plan.mappings)
            for section in reader.tables(self.parser_for):
                mapping = next(mappings, None)
                if mapping is None or section.meta.get("label") != mapping.backup_label:
                    raise changed_under_us(self.plan)
                if mapping.table is None:
                    label = mapping.backup_label.lower()
                    if label in self.match_by_natural_key:
                        self.natural_keys.learn(label, section.meta, section.rows)
                    continue
                receipts.append(self.load_table(mapping, section.rows))
        return receipts

    def tables_checked_once(self) -> list[str]:
        """PostgreSQL: the tables whose foreign keys are validated once after the
        load (see foreign_keys.py): those that start empty."""
        if not backend_for(self.connection).checks_foreign_keys_once:
            return []
        return [
            m.table.db_table
            for m in self.plan.mappings
            if m.table
            and (
                (self.mode == "replace" and m.table.label.lower() not in self.plan.matched_only)
                or not QuerySet(model=m.table.model, using=self.using).exists()
            )
        ]

    def parser_for(self, table_meta: dict[str, Any]) -> Callable[[bytes], tuple[int, Any]] | None:
        """How to parse a table's rows; None (read, checked, not parsed) for a
        table this restore neither loads nor learns natural keys from."""
        label = table_meta["label"]
        if label not in self.loaded and label.lower() not in self.match_by_natural_key:
            return None
        parse = row_parser(table_meta["columns"], keep_json_text=True, jsonb=self.into_jsonb(label))

        def parse_line(line: bytes) -> tuple[int, dict[str, Any]]:
            row = parse(line)
            if type(row) is not dict:
                raise ValueError("a row must be a JSON object")
            return len(line), row

        return parse_line

    def into_jsonb(self, label: str) -> bool:
        """Whether every JSON column of the backup's table `label` goes into a
        PostgreSQL jsonb column (or nowhere)."""
        if not backend_for(self.connection).has_jsonb:
            return False
        mapping = next((m for m in self.plan.mappings if m.backup_label == label), None)
        if mapping is None or mapping.table is None:
            return False
        json_sources = {c["name"] for c in mapping.columns if c.get("kind") == "json"}
        return all(
            model_field.db_type(self.connection) == "jsonb"
            for model_field, source in mapping.sources
            if source in json_sources
        )

    def reread(self, label: str) -> Iterator[tuple[int, Any]]:
        """One table's rows read again from the backup."""
        with ArchiveReader(self.plan.path, self.plan.source) as reader:
            for section in reader.tables(
                lambda meta: self.parser_for(meta) if meta.get("label") == label else None
            ):
                if section.meta.get("label") == label:
                    yield from section.rows
                    return
        raise changed_under_us(self.plan)

    def load_table(self, mapping: TableMapping, rows: Iterator[tuple[int, Any]]) -> TableReceipt:
        assert mapping.table is not None
        table = mapping.table
        started = time.monotonic()
        natural = table.label.lower() in self.match_by_natural_key
        # Into an empty table nothing can be skipped: no need to ask per batch.
        emptied = self.mode == "replace" and not natural
        empty = emptied or not QuerySet(model=table.model, using=self.using).exists()
        load = TableLoad(
            mapping=mapping,
            table=table,
            receipt=TableReceipt(table.label, mapping.rows, note=mapping.note),
            pipeline=self.rows,
            connection=self.connection,
            progress=self.progress,
            fields=self.rows.insert_fields(mapping),
            decode=row_decoder(mapping.columns),
            build=self.rows.row_builder(mapping),
            converters=self.rows.converters(mapping),
        )
        if not natural and self.copies(load, empty):
            try:
                with transaction.atomic(using=self.using):
                    copy_strategy(load, empty, self.mode == "overwrite").stream(load, rows)
                load.receipt.seconds = time.monotonic() - started
                return load.receipt
            except COPY_FAILURES:
                # One COPY for the whole table cannot say which row failed (or
                # send an expression). Load the table again in batches, whose
                # diagnosis names the row.
                receipt = load.receipt
                receipt.inserted = receipt.skipped = receipt.updated = receipt.unchanged = 0
                # The file is read on: the rows the COPY did not take first, or
                # the reader would take what follows the reread for this table's.
                collections.deque(rows, maxlen=0)
                rows = self.reread(mapping.backup_label)
        Batches(
            self.natural_keys if natural else None, empty, overwrite=self.mode == "overwrite"
        ).load(load, rows)
        load.receipt.seconds = time.monotonic() - started
        if natural:
            load.receipt.matched = True
            self.note_moved_ids(load.receipt, table.label.lower())
        return load.receipt

    def copies(self, load: TableLoad, empty: bool) -> bool:
        """Whether the table goes in by one bulk load: into an empty table
        (load_stream), or a merge whose written columns hold the primary key
        (PostgreSQL's COPY), where the database can."""
        backend = backend_for(self.connection)
        if empty:
            return backend.can_load_stream(load.fields)
        pk_columns = {str(f.column) for f in load.table.pk_fields}
        return {f.column for f in load.fields} >= pk_columns and backend.can_copy(load.fields)

    def note_moved_ids(self, receipt: TableReceipt, label: str) -> None:
        moved = sum(1 for old, new in self.remapped.get(label, {}).items() if old != new)
        if moved:
            receipt.note = (
                f"{moved} matched by natural key under a different id; references re-pointed"
            )
