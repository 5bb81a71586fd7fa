"""The portable row source: a table's rows read through the ORM in primary-key
order, in one snapshot, and encoded as row lines by archive/codec.py."""

from __future__ import annotations

from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Sequence
from itertools import batched
from typing import Any, Protocol

import orjson
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Field, Func, Q, QuerySet, TextField
from django.db.models.functions import Cast

from ..archive.codec import JSON_NULL_KEY, encoder_for, is_json_null, kind_of
from ..backends import backend_for
from ..conf import sensitive
from ..exceptions import BackupError
from ..graph import Table
from ..restore.failures import row_pk, shown_pk
from ..restore.text_reads import UnreadableValue, raw_readers, text_readers

BATCH_ROWS = 5_000
# orjson gives each encoded row a buffer of 4 KB or more whatever its length,
# so the portable path hands rows on in small groups: thousands of them held
# at once would cost tens of megabytes.
ENCODED_ROWS = 250


def needs_paging(connection: BaseDatabaseWrapper) -> bool:
    """True where the driver would hold a whole result in memory."""
    return (
        backend_for(connection).pages_reads
        or bool(connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"))
        or not connection.features.can_use_chunked_reads
    )


class Unconverted(Func):
    """A column as the driver hands it over: its output field has no converters."""

    template = "%(expressions)s"


def key_filter(table: Table, keys: Sequence[Any]) -> Q:
    """The rows whose primary key is one of `keys` (tuples for a composite key)."""
    if len(table.pk_fields) == 1:
        return Q(**{f"{table.pk_fields[0].attname}__in": keys})
    return Q(pk__in=keys)


def read_rows(
    table: Table,
    connection: BaseDatabaseWrapper,
    as_text: Collection[int] = (),
    as_raw: Collection[int] = (),
    keys: Sequence[Any] | None = None,
) -> Iterator[tuple[Any, ...]]:
    """The table's rows as tuples of field values, in primary-key order; the
    fields at the positions `as_text` as the database's text, and those at
    `as_raw` as the driver's value (see text_reads.py). With `keys`, only the
    rows with those primary keys (a subset backup's)."""
    pk_names = [f.attname for f in table.pk_fields]
    # JSON columns come as the database's own JSON text, written to the file
    # as it is: parsing it only to serialise it again was a third of the time.
    columns = [
        Cast(f.attname, TextField())
        if f.get_internal_type() == "JSONField" or position in as_text
        else Unconverted(F(f.attname), output_field=Field())
        if position in as_raw
        else F(f.attname)
        for position, f in enumerate(table.fields)
    ]
    queryset: QuerySet[Any, tuple[Any, ...]] = (
        QuerySet(model=table.model, using=connection.alias)
        .order_by(*pk_names)
        .values_list(*columns)
    )
    if keys is not None:
        queryset = queryset.filter(key_filter(table, keys))
    if not needs_paging(connection):
        yield from queryset.iterator(chunk_size=BATCH_ROWS)
        return
    # Keyset pages inside the same snapshot: constant memory, and each page
    # is an index range scan rather than an ever-growing OFFSET.
    pk_positions = [table.fields.index(f) for f in table.pk_fields]
    after: Any = None
    while True:
        page_query = queryset if after is None else queryset.filter(pk__gt=after)
        page = list(page_query[:BATCH_ROWS])
        yield from page
        if len(page) < BATCH_ROWS:
            return
        last = page[-1]
        after = (
            last[pk_positions[0]]
            if len(pk_positions) == 1
            else tuple(last[i] for i in pk_positions)
        )


def dict_builder(names: Sequence[str]) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """row -> {names[0]: row[0], ...}, as a dict display compiled for these names.

    Python builds a display with constant keys in one step (BUILD_CONST_KEY_MAP),
    about twice as fast as dict(zip(names, row)), which ran once per row.
    The source holds only repr()s of the names, each a literal of exactly
    that string, and indexes."""
    items = ", ".join(f"{name!r}: row[{i}]" for i, name in enumerate(names))
    build: Callable[[Sequence[Any]], dict[str, Any]] = eval(f"lambda row: {{{items}}}")
    return build


def row_encoder(
    table: Table, readers: dict[int, Callable[[Any], Any]] | None = None
) -> Callable[[tuple[Any, ...]], bytes]:
    """Encodes a row; `readers` replace the codec's encoder at their positions."""
    as_dict = dict_builder([f.name for f in table.fields])
    readers = readers or {}
    converters = [
        (i, enc)
        for i, f in enumerate(table.fields)
        if (enc := readers.get(i) or encoder_for(kind_of(f))) is not None
    ]
    # JSON null is written null, like SQL NULL, and named in the row (codec.py).
    json_fields = [
        (i, f.name) for i, f in enumerate(table.fields) if f.get_internal_type() == "JSONField"
    ]
    dumps = orjson.dumps

    def encode(row: tuple[Any, ...]) -> bytes:
        if converters:
            values = list(row)
            json_nulls = [name for i, name in json_fields if is_json_null(values[i])]
            for i, convert in converters:
                if values[i] is not None:
                    values[i] = convert(values[i])
            if json_nulls:
                for i, name in json_fields:
                    if name in json_nulls:
                        values[i] = None
                as_row = as_dict(values)
                as_row[JSON_NULL_KEY] = json_nulls
                return dumps(as_row)
            return dumps(as_dict(values))
        return dumps(as_dict(row))

    return encode


class RowChange(Protocol):
    """Changes rows before they are encoded (backup/masked.py), a batch at a time;
    the fields at `positions` are read as Django's Python values, never as the
    database's text."""

    positions: frozenset[int]

    def rows(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]: ...


def python_batches(
    table: Table,
    connection: BaseDatabaseWrapper,
    key_chunks: Iterable[Sequence[Any]] | None = None,
    change: RowChange | None = None,
) -> Generator[list[bytes], None, None]:
    """The portable path: values from the ORM, encoded by codec.py. With
    `key_chunks`, only the rows with those primary keys, group by group."""
    skip = change.positions if change is not None else frozenset()
    as_text = {i: r for i, r in text_readers(table, connection).items() if i not in skip}
    as_raw = {i: r for i, r in raw_readers(table, connection).items() if i not in skip}
    encode = row_encoder(table, {**as_text, **as_raw})
    groups: Iterable[Sequence[Any] | None] = [None] if key_chunks is None else key_chunks
    found = (
        row
        for keys in groups
        for row in read_rows(table, connection, as_text.keys(), as_raw.keys(), keys)
    )
    for read in batched(found, ENCODED_ROWS):
        batch = []
        for row in read if change is None else change.rows(list(read)):
            try:
                batch.append(encode(row))
            except (TypeError, ValueError) as exc:
                raise unwritable_row(table, row, exc) from exc
        yield batch


def unwritable_row(table: Table, row: tuple[Any, ...], exc: Exception) -> BackupError:
    values = {f.name: value for f, value in zip(table.fields, row, strict=True)}
    pk_names = [f.name for f in table.pk_fields]
    hidden = sensitive(table.label, values)
    pk = shown_pk(row_pk(values, pk_names), pk_names, hidden)
    cause = (
        str(exc)
        if isinstance(exc, UnreadableValue)
        else f"a value cannot be written as JSON ({exc})"
    )
    for name in hidden:
        if values[name] is not None and str(values[name]):
            cause = cause.replace(str(values[name]), "…")
    return BackupError(
        f"Table {table.label} ({table.db_table}), row with primary key {pk!r}: {cause}. "
        f"Fix the value or leave the table out with --exclude {table.label}."
    )
