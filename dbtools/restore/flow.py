"""restore_database(): put a backup back exactly, in one transaction, or change nothing.

Two steps, so that nothing is written until everything has been checked:

1. `prepare_restore()` (restore_plan.py) reads the whole file, checking every table's count and
   checksum, and maps the backup's tables and columns onto today's models
   (following RenameModel/RenameField migrations applied since the backup).
   A column that is required now and missing from the backup stops it here.
2. `restore_database()` loads the rows in one transaction, in the file's
   foreign-key order, with FK checks deferred (PostgreSQL, SQLite) or off
   (MariaDB/MySQL), then checks every constraint, resets sequences and commits.

Rows go in with each value prepared as Django's own insert compiler does
with raw=True (the path `save()` and `bulk_create()` use, minus pre_save),
so auto_now values and multi-table-inheritance children come back as they
were: on PostgreSQL through COPY where every column's kind allows,
elsewhere through one prepared INSERT and executemany, and through the
compiler itself for fields that make their own placeholder. The only conflict ever
skipped is a primary key that is already there: for a table that has rows,
each batch first asks which of its keys exist (on PostgreSQL, the table's
keys are read once, or its rows go through a staging table), then inserts
the rest with a plain INSERT or COPY, so any other problem (another unique value, NOT NULL, a
too-long string) fails the restore instead of being silently dropped as
INSERT IGNORE / OR IGNORE / ON CONFLICT DO NOTHING would.
"""

from __future__ import annotations

import collections
import datetime
import hashlib
import time
import types
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models import Model, Q, QuerySet

from ..archive import ArchiveReader
from ..backends import backend_for, pg_fast
from ..backup import database_name, vendor_name
from ..codec import AnyField, BadValue, JSONText, kind_of, row_decoder, row_parser
from ..display import sentence
from ..exceptions import RestoreError
from ..graph import Table
from ..interrupts import tell
from ..signals import announce, restore_finished
from ..storage import BackupRef
from . import foreign_keys
from .plan import NATURAL_KEYS, RestorePlan, TableMapping, map_columns, prepare_restore
from .text_reads import own_field, reads_as_utc

__all__ = ["RestorePlan", "RestoreResult", "prepare_restore", "restore_database"]

Mode = Literal["merge", "replace"]
Progress = Callable[[str, int, int], None]

BATCH_ROWS = 1_000
BATCH_BYTES = 4 * 1024 * 1024  # well under MariaDB's default 16 MB max_allowed_packet
PROGRESS_ROWS = 5_000  # a table loaded in one COPY reports progress this often
SQLITE_DECIMAL_DIGITS = 15


class _Rollback(Exception):
    """Raised inside the transaction to undo a --dry-run."""


# Step 2: load -----------------------------------------------------------------------


class _CompiledValue(Exception):
    """A row holds an expression for the insert compiler, which a COPY cannot
    send: the table is loaded again in batches, which compile it."""


@dataclass
class TableReceipt:
    label: str
    in_backup: int
    inserted: int = 0
    skipped: int = 0
    seconds: float = 0.0
    note: str = ""


@dataclass
class RestoreResult:
    path: BackupRef
    mode: Mode
    dry_run: bool
    tables: list[TableReceipt]
    seconds: float
    warnings: list[str]
    # What went wrong after the commit (a restore_finished receiver failing): the restore stands.
    after_warnings: list[str] = field(default_factory=list)

    @property
    def inserted(self) -> int:
        return sum(t.inserted for t in self.tables)

    @property
    def skipped(self) -> int:
        return sum(t.skipped for t in self.tables)

    @property
    def in_backup(self) -> int:
        return sum(t.in_backup for t in self.tables)


def describe_target(using: str) -> str:
    connection = connections[using]
    host = connection.settings_dict.get("HOST") or backend_for(connection).default_host
    return f"{vendor_name(connection)} database {database_name(connection)!r} on {host} (alias {using!r})"


@contextmanager
def queries_not_logged(connection: BaseDatabaseWrapper) -> Iterator[None]:
    """With DEBUG = True (a development settings file's default) Django keeps
    the SQL of the last 9,000 queries, parameters written out: a restore's
    batches took SQLite and MariaDB from 79 MB at 100,000 rows to 169 MB at
    1,000,000, and writing each batch's SQL out cost time too. The load's
    queries go through plain cursors on this connection only, for the body."""
    connection.make_debug_cursor = connection.make_cursor  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        del connection.make_debug_cursor


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
        self.match_by_natural_key = {label for label in NATURAL_KEYS if label not in replaced}
        self.loaded = {m.backup_label for m in plan.mappings if m.table}

    def empty_covered_tables(self) -> None:
        """--replace: delete every row of each table the backup covers."""
        self.empty(self.plan.covered)

    def empty_migrations_own_tables(self) -> None:
        """A merge into tables that held only the rows the migrations make:
        those rows give way to the backup's. Their rows are read again inside
        the transaction, locked where the database can, so a row written or
        edited since the comparison stops the restore instead of being deleted."""
        tables = [t for t in self.plan.covered if t.label.lower() in self.migrations_own]
        for table in tables:
            if (
                rows_fingerprint(self.connection, table, lock=True)
                != self.migrations_own[table.label.lower()]
            ):
                raise RestoreError(
                    f"{table.label} changed while this restore compared it with what the "
                    f"migrations make; the restore was rolled back and nothing was changed. "
                    f"Run it again."
                )
        self.empty(tables)

    def empty(self, emptied: list[Table]) -> None:
        """Delete every row of `emptied`.

        With DELETE, not TRUNCATE, which would commit on MariaDB and could not
        be rolled back; on PostgreSQL, where TRUNCATE is transactional, with one
        TRUNCATE for the tables nothing outside it refers to (see
        PostgreSQLBackend.truncatable): DELETE leaves every old row behind as a dead
        tuple that each reloaded primary key must step over, which made a
        --replace 20-40% slower than a restore into empty tables.

        A database-level ON DELETE rule (CASCADE, SET NULL: Django's DB_CASCADE,
        or one written in SQL) could reach into a table this restore does not
        cover; the references into the emptied tables are counted before and
        after, and any change stops the restore.
        """
        references = outside_references(self.connection, emptied)
        before = count_references(self.connection, references)
        truncated: set[str] = set()
        backend = backend_for(self.connection)
        candidates = backend.truncatable([t.db_table for t in emptied])
        if candidates and backend.truncate(candidates):
            truncated = set(candidates)
        with self.connection.cursor() as cursor:
            for table in reversed(emptied):
                if table.db_table not in truncated:
                    cursor.execute(f"DELETE FROM {self.connection.ops.quote_name(table.db_table)}")
        after = count_references(self.connection, references)
        for reference, count in before.items():
            if after[reference] != count:
                raise cascade_error(reference, count, after[reference], emptied)

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
                raise RestoreError(changed_under_us(self.plan))
            mappings = iter(self.plan.mappings)
            for section in reader.tables(self.parser_for):
                mapping = next(mappings, None)
                if mapping is None or section.meta.get("label") != mapping.backup_label:
                    raise RestoreError(changed_under_us(self.plan))
                if mapping.table is None:
                    label = mapping.backup_label.lower()
                    if label in self.match_by_natural_key:
                        self.learn_natural_keys(label, section.meta, section.rows)
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
                self.mode == "replace"
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

    def learn_natural_keys(
        self, label: str, table_meta: dict[str, Any], rows: Iterator[tuple[int, Any]]
    ) -> None:
        """A natural-key table that is not restored still tells how its ids map."""
        table = next((t for t in self.plan.everything if t.label.lower() == label), None)
        if table is None:
            return
        mapping = TableMapping(table_meta["label"], table, 0, table_meta["columns"])
        map_columns(mapping, {})  # only its key columns are used; nothing can block them
        decode = row_decoder(table_meta["columns"])
        build = self.row_builder(mapping)
        values = []
        for number, (_, row) in enumerate(rows, 1):
            try:
                values.append(build(decode(row)))
            except BadValue as exc:
                raise bad_value_error(self.plan, mapping, number, row, exc) from exc
        if values:
            self.match_natural_keys(mapping, values, insert_missing=False)

    def row_builder(self, mapping: TableMapping) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """How one backup row becomes {attname: value} for today's fields: copied,
        re-pointed (references to tables matched by natural key), or defaulted.
        Built once per table, since this runs for every row."""
        copied, repointed, defaulted = self.columns_by_treatment(mapping)
        fixed = mapping.fixed
        null_defaults = mapping.null_defaults

        def build(row: dict[str, Any]) -> dict[str, Any]:
            values = {attname: row.get(source) for attname, source in copied}
            for attname, source, ids in repointed:
                value = row.get(source)
                values[attname] = ids.get(value, value)
            for model_field in defaulted:
                values[model_field.attname] = (
                    model_field.get_default() if model_field.has_default() else None
                )
            for model_field in null_defaults:
                if values[model_field.attname] is None:
                    values[model_field.attname] = model_field.get_default()
            values.update(fixed)
            return values

        return build

    def columns_by_treatment(
        self, mapping: TableMapping
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str, dict[Any, Any]]], list[AnyField]]:
        """Today's fields as (attname, backup column) copied; (attname, backup
        column, ids) re-pointed (references to tables matched by natural key);
        and those left to their default (with a db_default the database fills
        it in, and --set values come from mapping.fixed)."""
        copied: list[tuple[str, str]] = []
        repointed: list[tuple[str, str, dict[Any, Any]]] = []
        defaulted: list[AnyField] = []
        for model_field, source in mapping.sources:
            if source is None:
                if model_field.attname not in mapping.fixed and not model_field.has_db_default():
                    defaulted.append(model_field)
                continue
            related = model_field.related_model if model_field.is_relation else None
            target = related._meta.label_lower if isinstance(related, type) else None
            if target in self.remapped:
                repointed.append((model_field.attname, source, self.remapped[target]))
            else:
                copied.append((model_field.attname, source))
        return copied, repointed, defaulted

    def load_table(self, mapping: TableMapping, rows: Iterator[tuple[int, Any]]) -> TableReceipt:
        assert mapping.table is not None
        table = mapping.table
        started = time.monotonic()
        receipt = TableReceipt(table.label, mapping.rows, note=mapping.note)
        decode = row_decoder(mapping.columns)
        converters = self.converters(mapping)
        natural = table.label.lower() in self.match_by_natural_key
        # Into an empty table nothing can be skipped: no need to ask per batch.
        empty = self.mode == "replace" or not QuerySet(model=table.model, using=self.using).exists()
        build = self.row_builder(mapping)
        fields = self.insert_fields(mapping)
        pk_columns = [str(f.column) for f in table.pk_fields]
        merge_through_copy = not empty and {f.column for f in fields} >= set(pk_columns)
        if (
            (empty or merge_through_copy)
            and not natural
            and backend_for(self.connection).can_copy(fields)
        ):
            try:
                with transaction.atomic(using=self.using):
                    if empty:
                        self.stream(mapping, fields, rows, receipt, decode, build, converters)
                    elif present := pg_fast.existing_keys(table, self.connection):
                        self.stream(
                            mapping, fields, rows, receipt, decode, build, converters, skip=present
                        )
                    else:
                        with pg_fast.staging_table(table.db_table, fields, self.connection) as (
                            staging,
                            insert_missing,
                        ):
                            self.stream(
                                mapping, fields, rows, receipt, decode, build, converters, staging
                            )
                            streamed = receipt.inserted
                            receipt.inserted = insert_missing(pk_columns)
                            receipt.skipped = streamed - receipt.inserted
                receipt.seconds = time.monotonic() - started
                return receipt
            except (
                DatabaseError,
                ValueError,
                TypeError,
                OverflowError,
                _CompiledValue,
                pg_fast.KeyNotComparable,
            ):
                # One COPY for the whole table cannot say which row failed (or
                # send an expression). Load the table again in batches, whose
                # diagnosis names the row.
                receipt.inserted = receipt.skipped = 0
                # The file is read on: the rows the COPY did not take first, or
                # the reader would take what follows the reread for this table's.
                collections.deque(rows, maxlen=0)
                rows = self.reread(mapping.backup_label)
        batch: list[dict[str, Any]] = []
        size = 0
        limit = self.batch_limit(mapping)
        for line_size, values in self.prepared(mapping, rows, decode, build, converters):
            batch.append(values)
            size += line_size
            if len(batch) >= limit or size >= BATCH_BYTES:
                self.flush(mapping, batch, receipt, natural, empty)
                batch, size = [], 0
        self.flush(mapping, batch, receipt, natural, empty)
        receipt.seconds = time.monotonic() - started
        if natural and table.label.lower() in self.remapped:
            moved = sum(1 for old, new in self.remapped[table.label.lower()].items() if old != new)
            if moved:
                receipt.note = (
                    f"{moved} matched by natural key under a different id; references re-pointed"
                )
        return receipt

    def stream(
        self,
        mapping: TableMapping,
        fields: list[AnyField],
        rows: Iterator[tuple[int, Any]],
        receipt: TableReceipt,
        decode: Callable[[dict[str, Any]], dict[str, Any]],
        build: Callable[[dict[str, Any]], dict[str, Any]],
        converters: list[tuple[str, Callable[[Any, dict[str, Any]], Any]]],
        into: str | None = None,
        skip: Callable[[object], bool] | None = None,
    ) -> None:
        """PostgreSQL, into an empty table (or the staging table `into`): every row
        in one COPY, written as it is decoded, so the server's work overlaps
        this process's. With `skip` (a merge into a table holding rows), the
        rows whose primary key it holds are left out."""
        assert mapping.table is not None
        label = mapping.table.label
        number = skipped = 0
        sources = self.copied_as_they_are(mapping, fields, converters)
        progress = self.progress
        pk_column = mapping.table.pk_fields[0].column
        pk_index = next(i for i, f in enumerate(fields) if f.column == pk_column) if skip else 0
        with pg_fast.copy_stream(into or mapping.table.db_table, fields, self.connection) as write:
            if sources is None:
                attnames = [f.attname for f in fields]
                made_here = [a for a in attnames if a in self.made_here(mapping)]
                pk_attname = attnames[pk_index]
                prepared = self.prepared(mapping, rows, decode, build, converters)
                for number, (_, values) in enumerate(prepared, 1):
                    if skip and skip(values[pk_attname]):
                        skipped += 1
                    else:
                        if made_here and holds_expression([values], made_here):
                            raise _CompiledValue
                        write([values[a] for a in attnames])
                    if progress and number % PROGRESS_ROWS == 0:
                        progress(label, number, receipt.in_backup)
            else:  # the values straight from the decoded rows: no dict per row
                decode = row_decoder(mapping.columns, kept_as_text=pg_fast.parsed_by_copy())
                pk_source = sources[pk_index]
                for number, (_, row) in enumerate(rows, 1):
                    try:
                        decode(row)
                    except BadValue as exc:
                        raise bad_value_error(self.plan, mapping, number, row, exc) from exc
                    if skip and skip(row.get(pk_source)):
                        skipped += 1
                    else:
                        write([row.get(source) for source in sources])
                    if progress and number % PROGRESS_ROWS == 0:
                        progress(label, number, receipt.in_backup)
        receipt.inserted = number - skipped
        receipt.skipped = skipped
        if self.progress:
            self.progress(label, number, receipt.in_backup)

    def copied_as_they_are(
        self,
        mapping: TableMapping,
        fields: list[AnyField],
        converters: list[tuple[str, Callable[[Any, dict[str, Any]], Any]]],
    ) -> list[str] | None:
        """The backup column for each of `fields`, when every value goes in as the
        backup holds it (what row_builder and converters would do is nothing);
        else None."""
        if converters or mapping.fixed or mapping.null_defaults:
            return None
        copied, repointed, defaulted = self.columns_by_treatment(mapping)
        source_of = dict(copied)
        if repointed or defaulted or any(f.attname not in source_of for f in fields):
            return None
        return [source_of[f.attname] for f in fields]

    def prepared(
        self,
        mapping: TableMapping,
        rows: Iterator[tuple[int, Any]],
        decode: Callable[[dict[str, Any]], dict[str, Any]],
        build: Callable[[dict[str, Any]], dict[str, Any]],
        converters: list[tuple[str, Callable[[Any, dict[str, Any]], Any]]],
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """Each backup row as (line size, {attname: value}) for today's fields, checked."""
        for number, (line_size, row) in enumerate(rows, 1):
            try:
                values = build(decode(row))
            except BadValue as exc:
                raise bad_value_error(self.plan, mapping, number, row, exc) from exc
            for attname, convert in converters:
                if values.get(attname) is not None:
                    values[attname] = convert(values[attname], values)
            yield line_size, values

    def reread(self, label: str) -> Iterator[tuple[int, Any]]:
        """One table's rows read again from the backup."""
        with ArchiveReader(self.plan.path, self.plan.source) as reader:
            for section in reader.tables(
                lambda meta: self.parser_for(meta) if meta.get("label") == label else None
            ):
                if section.meta.get("label") == label:
                    yield from section.rows
                    return
        raise RestoreError(changed_under_us(self.plan))

    def made_here(self, mapping: TableMapping) -> set[str]:
        """The attnames whose values this restore makes instead of decoding them
        from the backup: a default, a --set value, a converted type. Only these
        can hold an expression for the insert compiler (a field's default may
        be one, such as Now())."""
        return (
            {f.attname for f, source in mapping.sources if source is None}
            | set(mapping.fixed)
            | {f.attname for f in mapping.null_defaults}
            | {attname for attname, _ in self.converters(mapping)}
        )

    def insert_fields(self, mapping: TableMapping) -> list[AnyField]:
        """The columns written: all but those left to a database default."""
        return [
            f
            for f, source in mapping.sources
            if source is not None or f.attname in mapping.fixed or not f.has_db_default()
        ]

    def batch_limit(self, mapping: TableMapping) -> int:
        assert mapping.table is not None
        fields = [f for f, _ in mapping.sources]
        return max(
            1, min(BATCH_ROWS, self.connection.ops.bulk_batch_size(fields, [None] * BATCH_ROWS))
        )

    def converters(
        self, mapping: TableMapping
    ) -> list[tuple[str, Callable[[Any, dict[str, Any]], Any]]]:
        """Per-column checks and conversions: a type changed since the backup,
        or a value this database cannot hold exactly."""
        assert mapping.table is not None
        label = mapping.table.label
        backup_kinds = {c["name"]: c["kind"] for c in mapping.columns}
        result = []
        for model_field, source in mapping.sources:
            if source is None:
                continue
            kind = kind_of(model_field)
            if backup_kinds[source] != kind:
                result.append(
                    (
                        model_field.attname,
                        self.type_change(label, model_field, backup_kinds[source]),
                    )
                )
            elif kind == "decimal" and backend_for(self.connection).stores_decimals_inexactly:
                result.append((model_field.attname, self.sqlite_decimal(label, model_field)))
        return result

    def type_change(
        self, label: str, model_field: AnyField, was: str
    ) -> Callable[[Any, dict[str, Any]], Any]:
        pk_names = [f.attname for f in model_field.model._meta.pk_fields]

        def convert(value: Any, row: dict[str, Any]) -> Any:
            try:
                if isinstance(value, JSONText):
                    value = value.parsed()
                return model_field.to_python(value)
            except (ValidationError, TypeError, ValueError) as exc:
                pk = row_pk(row, pk_names)
                message = exc.messages[0] if isinstance(exc, ValidationError) else str(exc)
                raise RestoreError(
                    f"{label}, row with primary key {pk!r}: column {model_field.name} was {was} in the backup "
                    f"and is {kind_of(model_field)} now, and {value!r} does not convert ({message}). "
                    f"Restore into the schema the backup came from, or convert the column in a migration "
                    f"after restoring; nothing was changed."
                ) from exc

        return convert

    def sqlite_decimal(
        self, label: str, model_field: AnyField
    ) -> Callable[[Any, dict[str, Any]], Any]:
        pk_names = [f.attname for f in model_field.model._meta.pk_fields]

        def check(value: Decimal, row: dict[str, Any]) -> Decimal:
            if (
                value.is_finite()
                and len(value.normalize().as_tuple().digits) > SQLITE_DECIMAL_DIGITS
            ):
                raise RestoreError(
                    f"{label}, row with primary key {row_pk(row, pk_names)!r}: {model_field.name} = {value} has "
                    f"more than {SQLITE_DECIMAL_DIGITS} significant digits, which SQLite cannot store exactly "
                    f"(it keeps decimals as floating point). Restore into PostgreSQL or MariaDB; nothing was changed."
                )
            return value

        return check

    def flush(
        self,
        mapping: TableMapping,
        batch: list[dict[str, Any]],
        receipt: TableReceipt,
        natural: bool,
        empty: bool,
    ) -> None:
        if not batch:
            return
        assert mapping.table is not None
        if natural:
            to_insert, skipped = self.match_natural_keys(mapping, batch, insert_missing=True)
        elif not empty:
            to_insert, skipped = self.without_existing(mapping.table, batch)
        else:
            to_insert, skipped = batch, 0
        if to_insert:
            self.insert(mapping, to_insert)
        receipt.skipped += skipped
        receipt.inserted += len(batch) - skipped
        if self.progress:
            self.progress(
                mapping.table.label, receipt.inserted + receipt.skipped, receipt.in_backup
            )

    def without_existing(
        self, table: Table, batch: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], int]:
        """Drop the rows whose primary key is already in the table (merge mode); count them."""
        pk_names = [f.attname for f in table.pk_fields]
        keys = [row_pk(row, pk_names) for row in batch]
        existing = set(
            QuerySet(model=table.model, using=self.using)
            .filter(pk__in=keys)
            .values_list(*pk_names, flat=len(pk_names) == 1)
        )
        if not existing:
            return batch, 0
        kept = [row for row, key in zip(batch, keys, strict=True) if key not in existing]
        return kept, len(batch) - len(kept)

    def match_natural_keys(
        self, mapping: TableMapping, batch: list[dict[str, Any]], insert_missing: bool
    ) -> tuple[list[dict[str, Any]], int]:
        """Map backup ids to this database's ids by natural key.

        Returns the rows still to insert and how many were already present.
        """
        assert mapping.table is not None
        model = mapping.table.model
        label = mapping.table.label.lower()
        key_fields = [model._meta.get_field(name).attname for name in NATURAL_KEYS[label]]  # type: ignore[union-attr]
        pk_name = model._meta.pk.attname
        wanted = Q()
        for row in batch:
            wanted |= Q(**{name: row[name] for name in key_fields})
        found = {
            tuple(values[1:]): values[0]
            for values in QuerySet(model=model, using=self.using)
            .filter(wanted)
            .values_list(pk_name, *key_fields)
        }
        taken_ids = set(
            QuerySet(model=model, using=self.using)
            .filter(pk__in=[row[pk_name] for row in batch])
            .values_list(pk_name, flat=True)
        )
        ids = self.remapped.setdefault(label, {})
        missing = []
        present = 0
        for row in batch:
            key = tuple(row[name] for name in key_fields)
            if key in found:
                ids[row[pk_name]] = found[key]
                present += 1
            elif insert_missing:
                if row[pk_name] in taken_ids:
                    # The id belongs to another row here: let the database pick one.
                    new = dict(row)
                    del new[pk_name]
                    obj = model(**new)
                    obj.save_base(using=self.using, raw=True, force_insert=True)
                    ids[row[pk_name]] = obj.pk
                else:
                    ids[row[pk_name]] = row[pk_name]
                    missing.append(row)
        return missing, present

    def insert(self, mapping: TableMapping, batch: list[dict[str, Any]]) -> None:
        assert mapping.table is not None
        model = mapping.table.model
        fields = self.insert_fields(mapping)
        made_here = [f.attname for f in fields if f.attname in self.made_here(mapping)]
        try:
            with transaction.atomic(using=self.using):
                if backend_for(self.connection).can_copy(fields) and not holds_expression(
                    batch, made_here
                ):
                    pg_fast.copy_rows(mapping.table.db_table, fields, batch, self.connection)
                elif plain_insert_fits(fields, batch, self.connection, made_here):
                    plain_insert(mapping.table.db_table, fields, batch, self.connection)
                else:
                    # batch_limit() sized the batch for every field, so it fits one INSERT.
                    QuerySet(model=model, using=self.using)._insert(  # type: ignore[attr-defined]
                        [types.SimpleNamespace(**row) for row in batch], fields=fields, raw=True
                    )
        except (DatabaseError, ValueError, TypeError, OverflowError) as exc:
            raise self.diagnose(mapping, fields, batch, exc) from exc

    def diagnose(
        self,
        mapping: TableMapping,
        fields: list[AnyField],
        batch: list[dict[str, Any]],
        batch_error: Exception,
    ) -> RestoreError:
        """Insert the failed batch row by row (each in a savepoint) to name the row that fails."""
        assert mapping.table is not None
        model = mapping.table.model
        pk_names = [f.attname for f in mapping.table.pk_fields]
        for row in batch:
            try:
                with transaction.atomic(using=self.using):
                    QuerySet(model=model, using=self.using)._insert(  # type: ignore[attr-defined]
                        [types.SimpleNamespace(**row)], fields=fields, raw=True
                    )
            except (DatabaseError, ValueError, TypeError, OverflowError) as exc:
                return row_error(mapping.table, row_pk(row, pk_names), exc)
        return row_error(mapping.table, None, batch_error)


def holds_expression(batch: list[dict[str, Any]], attnames: list[str]) -> bool:
    """Does a row hold, in one of these columns, an expression for the insert
    compiler to compile (a JSONText aside, which COPY and a plain INSERT take
    as its text)?"""
    return any(
        type(value := row[attname]) is not JSONText and hasattr(value, "resolve_expression")
        for row in batch
        for attname in attnames
    )


def plain_insert_fits(
    fields: list[AnyField],
    batch: list[dict[str, Any]],
    connection: BaseDatabaseWrapper,
    made_here: list[str],
) -> bool:
    """True where one INSERT with a plain placeholder per column stores what
    Django's insert compiler would: no field makes its own placeholder (as
    binary and geometry fields do), and no value is an expression to compile
    other than a JSONText, which outside PostgreSQL compiles to its text.

    Only the columns in `made_here` (see Loader.made_here) can hold one: the
    decoder makes no expression but JSONText, and looking at every value of
    every batch was 3% of a SQLite restore."""
    if backend_for(connection).casts_json_text:
        return False
    if any(getattr(f, "get_placeholder_sql", None) is not None for f in fields):
        return False
    return not holds_expression(batch, made_here)


def plain_insert(
    db_table: str,
    fields: list[AnyField],
    batch: list[dict[str, Any]],
    connection: BaseDatabaseWrapper,
) -> None:
    """The rows through one prepared INSERT and the driver's executemany, each
    value prepared by field.get_db_prep_save() as the insert compiler does
    with raw=True (a JSONText as its text, as it compiles): the same values
    stored, without the compiler building an SQL statement with a
    placeholder per value, per batch, that the backend then parses again."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(f.column)) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    preparers = [(f.attname, value_preparer(f, connection)) for f in fields]
    rows = [
        tuple(
            value.text if type(value := row[attname]) is JSONText else prepare(value)
            for attname, prepare in preparers
        )
        for row in batch
    ]
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {quote(db_table)} ({columns}) VALUES ({placeholders})", rows
        )


def value_preparer(field: AnyField, connection: BaseDatabaseWrapper) -> Callable[[Any], Any]:
    """`field.get_db_prep_save(value, connection)`, with its result written
    out directly for the values where Django's own steps are known to end
    there: text for an exact CharField or TextField is sent as it is; a UTC
    datetime for an exact DateTimeField, where Django makes it naive in the
    connection's time zone (UTC) and sends str() of it, becomes that str();
    a uuid.UUID for an exact UUIDField without a native column type becomes
    its hex. Those steps (to_python, time zone checks, the backend's
    adapter) were a sixth of a MariaDB restore's time. An int for an exact
    integer field, a finite Decimal for a DecimalField and a bool for a
    BooleanField are sent as they are, where the backend keeps the base
    class's adapt_* hook (see INTEGER_FIELDS). Any other value, or any other
    field class, goes through get_db_prep_save()."""
    prepare = field.get_db_prep_save
    target = own_field(field)
    kind = type(target)

    def django(value: Any) -> Any:
        return prepare(value, connection=connection)

    if kind in (models.CharField, models.TextField):

        def text(value: Any) -> Any:
            return value if type(value) is str else prepare(value, connection=connection)

        return text
    if kind is models.DateTimeField and reads_as_utc(connection):

        def utc_datetime(value: Any) -> Any:
            if type(value) is datetime.datetime and value.tzinfo is datetime.UTC:
                return str(value.replace(tzinfo=None))
            return prepare(value, connection=connection)

        return utc_datetime
    if kind is models.UUIDField and not connection.features.has_native_uuid_field:

        def uuid_hex(value: Any) -> Any:
            return value.hex if type(value) is uuid.UUID else prepare(value, connection=connection)

        return uuid_hex
    ops = type(connection.ops)
    if (
        kind in INTEGER_FIELDS
        and ops.adapt_integerfield_value is BaseDatabaseOperations.adapt_integerfield_value
    ) or (
        kind in AUTO_FIELDS
        and ops.validate_autopk_value is BaseDatabaseOperations.validate_autopk_value
    ):

        def integer(value: Any) -> Any:
            return value if type(value) is int else prepare(value, connection=connection)

        return integer
    if (
        kind is models.DecimalField
        and ops.adapt_decimalfield_value is BaseDatabaseOperations.adapt_decimalfield_value
    ):

        def finite_decimal(value: Any) -> Any:
            # to_python() copies a Decimal and refuses one that is not finite.
            if type(value) is Decimal and value.is_finite():
                return value
            return prepare(value, connection=connection)

        return finite_decimal
    if kind is models.BooleanField:

        def boolean(value: Any) -> Any:
            return value if type(value) is bool else prepare(value, connection=connection)

        return boolean
    return django


# int(value) is all Django does to an int for these, where the backend leaves
# adapt_integerfield_value (or, for an auto field, validate_autopk_value, which
# MySQL's refuses 0 with) as it is.
INTEGER_FIELDS = (
    models.IntegerField,
    models.BigIntegerField,
    models.SmallIntegerField,
    models.PositiveIntegerField,
    models.PositiveBigIntegerField,
    models.PositiveSmallIntegerField,
)
AUTO_FIELDS = (models.AutoField, models.BigAutoField, models.SmallAutoField)


@dataclass(frozen=True)
class Reference:
    """A foreign-key column of a table outside the restore, pointing into it."""

    table: str  # the referencing table, as the database names it
    column: str
    target: str  # the emptied table it points to


def outside_references(connection: BaseDatabaseWrapper, emptied: list[Table]) -> list[Reference]:
    """Every foreign key, known to the ORM or not, from a table that is not being
    emptied into one that is: read from the database's own constraints."""
    targets = {t.db_table for t in emptied}
    found = []
    with connection.cursor() as cursor:
        for name in connection.introspection.table_names(cursor):
            if name in targets:
                continue
            constraints = connection.introspection.get_constraints(cursor, name)
            for constraint in constraints.values():
                target = constraint.get("foreign_key")
                if target and target[0] in targets:
                    found += [
                        Reference(name, column, target[0]) for column in constraint["columns"]
                    ]
    return sorted(set(found), key=lambda r: (r.table, r.column))


def count_references(
    connection: BaseDatabaseWrapper, references: list[Reference]
) -> dict[Reference, int]:
    quote = connection.ops.quote_name
    counts = {}
    with connection.cursor() as cursor:
        for ref in references:
            cursor.execute(
                f"SELECT COUNT(*) FROM {quote(ref.table)} WHERE {quote(ref.column)} IS NOT NULL"
            )
            (counts[ref],) = cursor.fetchone()
    return counts


def cascade_error(ref: Reference, before: int, after: int, emptied: list[Table]) -> RestoreError:
    owner = next((t.label for t in emptied if t.db_table == ref.target), ref.target)
    return RestoreError(
        f"Emptying {owner} for --replace changed table {ref.table}, which this restore does not cover: "
        f"{before - after:,} of its rows lost their reference in column {ref.column} (a database-level "
        f"ON DELETE CASCADE or SET NULL). Restore {ref.table}'s model too (add it to --only), or restore "
        f"without --replace. Nothing was changed: the restore was rolled back."
    )


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
        f"The file was edited or damaged; nothing was changed: the restore was rolled back. "
        f"Use another backup, or correct the value in the file."
    )


def changed_under_us(plan: RestorePlan) -> str:
    return (
        f"{plan.path.name} changed while it was being restored (its tables are not the ones that were "
        f"checked). Nothing was changed: the restore was rolled back. Run the restore again."
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
            "Another row already holds that unique value under a different primary key. "
            "Use --replace to put the table back exactly as it was in the backup, or remove the conflicting row."
        )
    else:
        hint = "Check that the database is migrated to the state the backup was taken at (`manage.py showmigrations`)."
    where = f"the row with primary key {pk!r}" if pk is not None else "a batch of rows"
    return RestoreError(
        f"Restoring {table.label} (table {table.db_table}) failed at {where}: {sentence(cause)} {hint} "
        f"Nothing was changed: the restore was rolled back."
    )


def restore_database(
    plan: RestorePlan,
    *,
    mode: Mode = "merge",
    dry_run: bool = False,
    progress: Progress | None = None,
    announce_result: bool = True,
    migrations_own: dict[str, str] | None = None,
) -> RestoreResult:
    """Load `plan` in one transaction; on any error nothing is changed.

    `migrations_own` (a merge; from replay.tables_as_migrate_makes_them):
    tables holding only the rows the migrations make, with their
    rows_fingerprint; they are emptied before the load.

    Once committed, `restore_finished` is sent (unless `announce_result` is
    false: a replay's scratch load is no restore of the user's database).
    """
    started = time.monotonic()
    connection = connections[plan.using]
    loader = Loader(plan, mode, progress, migrations_own)
    receipts: list[TableReceipt] = []
    # Where an interrupt found the transaction: what the user is told it left.
    inside: BaseException | None = None  # raised inside it, so rolled back on the way out
    committing = False
    try:
        with (
            queries_not_logged(connection),
            backend_for(connection).loading_session(),
            transaction.atomic(using=plan.using),
        ):
            try:
                with (
                    connection.constraint_checks_disabled(),
                    naive_datetimes_taken_quietly(),
                    backend_for(connection).triggers_set_aside([t.db_table for t in plan.covered]),
                ):
                    receipts = loader.run()
                check_references(connection, plan)
                if mode == "replace":
                    verify_counts(plan, receipts)
                if dry_run:
                    raise _Rollback
                # Last, and never in a dry run: PostgreSQL's setval() is not undone
                # by a rollback, and a sequence moved back would hand out ids
                # that are taken.
                reset_sequences(connection, [m.table.model for m in plan.mappings if m.table])
            except BaseException as exc:
                inside = exc
                raise
            committing = True
    except _Rollback:
        pass
    except DatabaseError as exc:
        raise RestoreError(
            f"The restore failed and was rolled back; nothing was changed: {' '.join(str(exc).split())}"
        ) from exc
    except KeyboardInterrupt as exc:
        if not announce_result:
            raise  # a scratch database's load: the caller knows what that leaves
        if exc is inside:
            tell(exc, "The restore was rolled back; the database is unchanged.")
        elif committing:
            tell(exc, (
                "The restore's transaction was committing: it either committed whole or rolled "
                "back whole; the row counts (or a dry run of the same restore) tell which."
            ))  # fmt: skip
        else:
            tell(exc, "The restore had not begun writing; the database is unchanged.")
        raise
    finally:
        plan.close()
        if apps.is_installed("django.contrib.contenttypes"):
            from django.contrib.contenttypes.models import ContentType

            ContentType.objects.clear_cache()  # ids may have changed under it
    result = RestoreResult(
        plan.path, mode, dry_run, receipts, time.monotonic() - started, plan.warnings
    )
    if announce_result and not dry_run:
        try:
            result.after_warnings = announce(
                restore_finished, restore_database, result=result, using=plan.using
            )
        except KeyboardInterrupt as exc:
            tell(exc, (
                f"The restore was committed before the interrupt: {result.inserted:,} rows were "
                f"restored from {plan.path.name}; a restore_finished receiver was cut short."
            ))  # fmt: skip
            raise
    return result


def rows_fingerprint(connection: BaseDatabaseWrapper, table: Table, lock: bool = False) -> str:
    """Every row of `table` as `connection` reads it, in no particular order,
    hashed: a merge replay's check that a table it compared is unchanged. Only
    for tables as small as a fresh migrate leaves them: the rows are sorted in
    memory. With `lock`, inside a transaction, the rows stay as read until
    commit (FOR UPDATE; SQLite's write transaction holds the whole file)."""
    sql = f"SELECT * FROM {connection.ops.quote_name(table.db_table)}"
    if lock and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql)
        rows = sorted(repr(tuple(row)) for row in cursor.fetchall())
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


@contextmanager
def naive_datetimes_taken_quietly() -> Iterator[None]:
    """Django warns for each naive datetime it takes as TIME_ZONE time under
    USE_TZ, and the value is in the warning, so a backup from a USE_TZ = False
    project printed (and remembered) one warning per row. The pre-flight says
    it once (restore_plan.time_zone_warnings)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", r"DateTimeField .* received a naive datetime", RuntimeWarning
        )
        yield


def check_references(connection: BaseDatabaseWrapper, plan: RestorePlan) -> None:
    """Every foreign key of the restored tables, and of tables pointing into them, must resolve."""
    restored = {m.table.label for m in plan.mappings if m.table} | {t.label for t in plan.scope}
    tables = [t.db_table for t in plan.everything if t.label in restored or t.depends_on & restored]
    try:
        connection.check_constraints(table_names=tables)
    except DatabaseError as exc:
        raise RestoreError(
            f"After loading, a foreign key points at a row that does not exist: {' '.join(str(exc).split())}. "
            f"The backup may be partial (--only/--exclude when it was taken) or rows it refers to were removed; "
            f"restore the referenced tables too, or use --replace. Nothing was changed: the restore was rolled back."
        ) from exc


def reset_sequences(connection: BaseDatabaseWrapper, models: list[type[Model]]) -> None:
    """Move PostgreSQL sequences past the restored ids, never back (SQLite and
    MariaDB catch up themselves)."""
    backend_for(connection).raise_sequences(models)


def verify_counts(plan: RestorePlan, receipts: list[TableReceipt]) -> None:
    by_label = {r.label: r for r in receipts}
    for mapping in plan.mappings:
        if mapping.table is None:
            continue
        count = QuerySet(model=mapping.table.model, using=plan.using).count()
        if count != mapping.rows:
            raise RestoreError(
                f"{mapping.table.label} holds {count:,} rows after the restore, but the backup has "
                f"{mapping.rows:,} ({by_label[mapping.table.label].inserted:,} inserted). "
                f"Nothing was changed: the restore was rolled back."
            )
