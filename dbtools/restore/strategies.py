"""How one table's rows go in, chosen once per table (Loader.load_table):

- CopyStream: every row in one bulk load (PostgreSQL's COPY, MariaDB's
  LOAD DATA LOCAL INFILE) into an empty table, or, on PostgreSQL, into one
  holding rows, leaving out the keys it holds;
- StagedMerge: PostgreSQL, a merge whose table's keys are too many to hold:
  COPY into a staging table, then insert the rows whose key is missing;
  or (overwrite) insert them all, the rows whose key is there updated;
- Batches: everywhere, and whenever a COPY fails (to name the row): batches
  through insert_batch(), skipping the keys already there (a merge) or
  updating their rows (overwrite.py), or matching rows by natural key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet

from ..archive.codec import AnyField, BadValue, kind_of, row_decoder
from ..backends import backend_for, pg_loads
from ..graph import Table
from .failures import bad_value_error, key_matched_by_collation, row_pk
from .inserts import holds_expression, insert_batch
from .natural_keys import NaturalKeys
from .overwrite import overwrite_batch
from .plan import TableMapping
from .rows import Converters, RowPipeline

BATCH_BYTES = 4 * 1024 * 1024  # well under MariaDB's default 16 MB max_allowed_packet
PROGRESS_ROWS = 5_000  # a table loaded in one COPY reports progress this often

Progress = Callable[[str, int, int], None]
Rows = Iterator[tuple[int, Any]]


class CompiledValue(Exception):
    """A row holds an expression for the insert compiler, which a COPY cannot
    send: the table is loaded again in batches, which compile it."""


@dataclass
class TableReceipt:
    label: str
    in_backup: int
    inserted: int = 0
    skipped: int = 0
    updated: int = 0  # --overwrite: rows whose primary key was there, given the backup's values
    unchanged: int = 0  # --overwrite: rows whose primary key was there, holding its values already
    seconds: float = 0.0
    note: str = ""
    # Matched by natural key: the rows already there were kept, so the table's
    # row count is no check of the restore (--replace counts the others).
    matched: bool = False


@dataclass
class TableLoad:
    """What every strategy needs to load one table."""

    mapping: TableMapping
    table: Table
    receipt: TableReceipt
    pipeline: RowPipeline
    connection: BaseDatabaseWrapper
    progress: Progress | None
    fields: list[AnyField]
    decode: Callable[[dict[str, Any]], dict[str, Any]]
    build: Callable[[dict[str, Any]], dict[str, Any]]
    converters: Converters

    def prepared(self, rows: Rows) -> Iterator[tuple[int, dict[str, Any]]]:
        return self.pipeline.prepared(self.mapping, rows, self.decode, self.build, self.converters)

    def report(self, done: int) -> None:
        if self.progress:
            self.progress(self.table.label, done, self.receipt.in_backup)


@dataclass
class CopyStream:
    """Into an empty table (or PostgreSQL's staging table `into`): every row
    in one bulk load (backend.load_stream), written as it is decoded, so the
    server's work overlaps this process's. With `skip` (a merge into a table holding rows), the
    rows whose primary key it holds are left out."""

    into: str | None = None
    skip: Callable[[object], bool] | None = None

    def stream(self, load: TableLoad, rows: Rows) -> None:
        backend = backend_for(load.connection)
        kept_as_text = backend.load_kept_as_text(load.fields)
        # A load stream refuses a decimal the database cannot store exactly itself.
        sources = load.pipeline.copied_as_they_are(
            load.mapping, load.fields, load.pipeline.type_changes(load.mapping)
        )
        # As they are, each kept text was tested by the decoder (row_decoder),
        # by its one field's test.
        tested = (
            sources is not None and kept_as_text is not None and len(set(sources)) == len(sources)
        )
        db_table = self.into or load.table.db_table
        with backend.load_stream(db_table, load.fields, text_tested=tested) as write:
            if sources is None or kept_as_text is None:
                number, skipped = self.prepared_rows(load, rows, write)
            else:
                number, skipped = self.rows_as_they_are(load, rows, write, sources, kept_as_text)
        load.receipt.inserted = number - skipped
        load.receipt.skipped = skipped
        load.report(number)

    def key_index(self, load: TableLoad) -> int:
        pk_column = load.table.pk_fields[0].column
        return next(i for i, f in enumerate(load.fields) if f.column == pk_column)

    def prepared_rows(
        self, load: TableLoad, rows: Rows, write: Callable[[list[Any]], None]
    ) -> tuple[int, int]:
        number = skipped = 0
        attnames = [f.attname for f in load.fields]
        made_here = [a for a in attnames if a in load.pipeline.made_here(load.mapping)]
        pk_attname = attnames[self.key_index(load) if self.skip else 0]
        for number, (_, values) in enumerate(load.prepared(rows), 1):
            if self.skip and self.skip(values[pk_attname]):
                skipped += 1
            else:
                if made_here and holds_expression([values], made_here):
                    raise CompiledValue
                write([values[a] for a in attnames])
            if load.progress and number % PROGRESS_ROWS == 0:
                load.report(number)
        return number, skipped

    def rows_as_they_are(
        self,
        load: TableLoad,
        rows: Rows,
        write: Callable[[list[Any]], None],
        sources: list[str],
        kept_as_text: list[Callable[[str], object] | None],
    ) -> tuple[int, int]:
        """The values straight from the decoded rows: no dict per row."""
        number = skipped = 0
        kept = {source: test for source, test in zip(sources, kept_as_text, strict=True) if test}
        decode = row_decoder(load.mapping.columns, kept_as_text=kept)
        pk_source = sources[self.key_index(load) if self.skip else 0]
        for number, (_, row) in enumerate(rows, 1):
            try:
                decode(row)
            except BadValue as exc:
                raise bad_value_error(load.pipeline.plan, load.mapping, number, row, exc) from exc
            if self.skip and self.skip(row.get(pk_source)):
                skipped += 1
            else:
                write([row.get(source) for source in sources])
            if load.progress and number % PROGRESS_ROWS == 0:
                load.report(number)
        return number, skipped


@dataclass
class StagedMerge:
    """PostgreSQL, a merge into a table whose keys are too many to hold: the
    rows COPY into a staging table, then those whose key is missing go in.
    With `overwrite`, they all go in, and a row whose key is there takes the
    backup's values of the columns the backup maps onto."""

    overwrite: bool = False

    def stream(self, load: TableLoad, rows: Rows) -> None:
        pk_columns = [str(f.column) for f in load.table.pk_fields]
        with pg_loads.staging_table(load.table.db_table, load.fields, load.connection) as staging:
            CopyStream(into=staging.name).stream(load, rows)
            streamed = load.receipt.inserted
            text_keys = [str(f.column) for f in load.table.pk_fields if kind_of(f) == "str"]
            if text_keys and (pair := staging.inexact_key(pk_columns, text_keys)):
                raise key_matched_by_collation(load.table, *pair)
            if self.overwrite:
                updating = [str(f.column) for f in load.pipeline.overwritten_fields(load.mapping)]
                inserted, updated = staging.overwrite(pk_columns, updating)
                load.receipt.inserted, load.receipt.updated = inserted, updated
                load.receipt.unchanged = streamed - inserted - updated
            else:
                load.receipt.inserted = staging.insert_missing(pk_columns)
                load.receipt.skipped = streamed - load.receipt.inserted


def copy_strategy(load: TableLoad, empty: bool, overwrite: bool) -> CopyStream | StagedMerge:
    """Into an empty table, a plain COPY; else one that leaves out the keys
    the table holds, read once, or, where they are too many, a staged merge;
    an overwrite into a table holding rows, always staged."""
    if empty:
        return CopyStream()
    if overwrite:
        return StagedMerge(overwrite=True)
    if present := pg_loads.existing_keys(load.table, load.connection):
        return CopyStream(skip=present)
    return StagedMerge()


@dataclass
class Batches:
    """Rows in batches through insert_batch(): into an empty table as they
    are; a merge leaves out the keys already there, an overwrite updates
    their rows; natural-key tables are matched by natural key."""

    natural_keys: NaturalKeys | None
    empty: bool
    overwrite: bool = False

    def load(self, load: TableLoad, rows: Rows) -> None:
        batch: list[dict[str, Any]] = []
        size = 0
        limit = load.pipeline.batch_limit(load.mapping)
        for line_size, values in load.prepared(rows):
            batch.append(values)
            size += line_size
            if len(batch) >= limit or size >= BATCH_BYTES:
                self.flush(load, batch)
                batch, size = [], 0
        self.flush(load, batch)

    def flush(self, load: TableLoad, batch: list[dict[str, Any]]) -> None:
        if not batch:
            return
        updated = unchanged = 0
        if self.natural_keys:
            to_insert, skipped = self.natural_keys.match(load.mapping, batch, insert_missing=True)
        elif self.empty:
            to_insert, skipped = batch, 0
        elif self.overwrite:
            lock = backend_for(load.connection).locks_keys_read
            to_insert, present = split_existing(load.table, batch, load.connection.alias, lock)
            updated = overwrite_batch(load, present)
            skipped, unchanged = 0, len(present) - updated
        else:
            to_insert, present = split_existing(load.table, batch, load.connection.alias)
            skipped = len(present)
        if to_insert:
            made_here = load.pipeline.made_here(load.mapping)
            insert_batch(
                load.table,
                load.fields,
                to_insert,
                load.connection,
                [f.attname for f in load.fields if f.attname in made_here],
            )
        load.receipt.skipped += skipped
        load.receipt.updated += updated
        load.receipt.unchanged += unchanged
        load.receipt.inserted += len(batch) - skipped - updated - unchanged
        receipt = load.receipt
        load.report(receipt.inserted + receipt.skipped + receipt.updated + receipt.unchanged)


def split_existing(
    table: Table, batch: list[dict[str, Any]], using: str, lock: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows whose primary key the table lacks, and those it holds (which a
    merge skips and an overwrite updates); `lock` holds the rows read until
    the transaction ends (SELECT … FOR UPDATE)."""
    pk_names = [f.attname for f in table.pk_fields]
    keys = [row_pk(row, pk_names) for row in batch]
    rows: QuerySet[Any] = QuerySet(model=table.model, using=using).filter(pk__in=keys)
    if lock:
        rows = rows.select_for_update()
    existing = set(rows.values_list(*pk_names, flat=len(pk_names) == 1))
    if not existing:
        return batch, []
    missing: list[dict[str, Any]] = []
    present: list[dict[str, Any]] = []
    for row, key in zip(batch, keys, strict=True):
        (present if key in existing else missing).append(row)
    if missing:
        refuse_inexact_keys(table, [row_pk(row, pk_names) for row in missing], using)
    return missing, present


def refuse_inexact_keys(table: Table, missing: list[Any], using: str) -> None:
    """The keys of `missing` are none of the keys the table holds, compared
    exactly; the database compares them by the column's collation, which may
    ignore case, accents or trailing spaces ('abc' finding 'ABC', MariaDB's
    'a ' finding 'a'): then the row it finds is
    not the backup's, and the restore stops (key_matched_by_collation).
    Only a key with a text part can: no query for integer or UUID keys."""
    if not any(kind_of(f) == "str" for f in table.pk_fields):
        return
    pk_names = [f.attname for f in table.pk_fields]
    rows: QuerySet[Any] = QuerySet(model=table.model, using=using)
    if not rows.filter(pk__in=missing).exists():
        return
    for key in missing:  # only on the way to the error: which pair
        held = rows.filter(pk=key).values_list(*pk_names, flat=len(pk_names) == 1).first()
        # The same key: another session wrote it since; the insert says so.
        if held is not None and held != key:
            raise key_matched_by_collation(table, key, held)
