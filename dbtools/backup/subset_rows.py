"""The rows of a subset backup (subset.py says which tables): their keys chosen
inside the backup's snapshot, then read in primary-key order by the row path
a full backup takes, filtered by key (tables.row_source).

The keys are held in Python sets, one per reached table: about 100 bytes a
key, so a subset of a million rows in all costs about 100 MB. Each query
names at most `keys_per_query()` keys, within every backend's limit on
parameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet

from ..graph import Plan, Table
from .rows import key_filter, read_rows
from .subset import Seed, Selection

MAX_KEYS_PER_QUERY = 20_000


@dataclass
class Chosen:
    """The keys of the rows of every table a subset backup holds (none: empty)."""

    keys: Mapping[str, set[Any]]

    def keys_for(self, table: Table) -> set[Any] | None:
        """The keys of `table`'s rows to back up, or None for all of them (a table
        of the backup no subset names: not a subset backup's)."""
        return self.keys.get(table.label)


def keys_per_query(connection: BaseDatabaseWrapper, table: Table) -> int:
    limit = connection.features.max_query_params or MAX_KEYS_PER_QUERY
    # A few parameters are the query's own (a page's last key, a filter).
    return max(1, min(limit, MAX_KEYS_PER_QUERY) // len(table.pk_fields) - 10)


def chunks(keys: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for key in keys:
        chunk.append(key)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def rows_of(table: Table, alias: str) -> QuerySet[Any, Any]:
    return QuerySet(model=table.model, using=alias)


def key_values(queryset: QuerySet[Any, Any], table: Table) -> list[Any]:
    """The primary keys of the rows of `queryset`: values, or tuples for a composite key."""
    names = [f.attname for f in table.pk_fields]
    if len(names) == 1:
        return list(queryset.values_list(names[0], flat=True))
    return list(queryset.values_list(*names))


def seed_keys(seed: Seed, connection: BaseDatabaseWrapper) -> list[Any]:
    """The chosen rows: those matching the filters, the first `limit` by primary key."""
    queryset = rows_of(seed.table, connection.alias).order_by(
        *[f.attname for f in seed.table.pk_fields]
    )
    if seed.where is not None:
        # A lookup across a one-to-many relation (orders__status) joins a row
        # once per match: without DISTINCT the limit would count the copies.
        queryset = queryset.filter(seed.where).distinct()
    if seed.limit is not None:
        queryset = queryset[: seed.limit]
    return key_values(queryset, seed.table)


@dataclass(frozen=True)
class Link:
    """A foreign key of `table` to `target`, which holds `target_field`."""

    table: Table
    field: Any
    target: Table

    @property
    def to_key(self) -> bool:
        """Does it point at the target's primary key (not at another unique column)?"""
        pk = self.target.pk_fields
        return len(pk) == 1 and self.field.target_field.attname == pk[0].attname


def links(selection: Selection) -> list[Link]:
    """Every foreign key between two tables of the subset's reach."""
    found = []
    for label in selection.reached:
        table = selection.tables[label]
        for field in table.fields:
            if not field.is_relation or field.remote_field is None:
                continue
            model = field.related_model
            assert isinstance(model, type)
            target = selection.tables.get((model._meta.concrete_model or model)._meta.label)
            if target is not None and target.label in selection.reached:
                found.append(Link(table, field, target))
    return found


def referenced(link: Link, keys: list[Any], connection: BaseDatabaseWrapper) -> list[Any]:
    """The keys of the target rows that the rows `keys` of link.table point at."""
    alias, found = connection.alias, list[Any]()
    per_query = keys_per_query(connection, link.table)
    for chunk in chunks(keys, per_query):
        values = (
            rows_of(link.table, alias)
            .filter(key_filter(link.table, chunk))
            .filter(**{f"{link.field.attname}__isnull": False})
            .values_list(link.field.attname, flat=True)
        )
        found.extend(set(values))
    if link.to_key:
        return found
    column = link.field.target_field.attname
    return [
        key
        for chunk in chunks(found, keys_per_query(connection, link.target))
        for key in key_values(
            rows_of(link.target, alias).filter(**{f"{column}__in": chunk}), link.target
        )
    ]


def children(link: Link, keys: list[Any], connection: BaseDatabaseWrapper) -> list[Any]:
    """The keys of link.table's rows that point at the target rows `keys`."""
    alias = connection.alias
    values = keys
    if not link.to_key:
        column = link.field.target_field.attname
        values = [
            value
            for chunk in chunks(keys, keys_per_query(connection, link.target))
            for value in rows_of(link.target, alias)
            .filter(key_filter(link.target, chunk))
            .values_list(column, flat=True)
        ]
    return [
        key
        for chunk in chunks(values, keys_per_query(connection, link.table))
        for key in key_values(
            rows_of(link.table, alias).filter(**{f"{link.field.attname}__in": chunk}), link.table
        )
    ]


def choose_rows(selection: Selection, connection: BaseDatabaseWrapper) -> Chosen:
    """Every reached table's keys: the chosen rows, with --with-children the rows
    pointing at them (and at those, downwards), and every row any of them
    references, transitively. Run inside the backup's snapshot, so the keys
    and the rows read afterwards are of the same moment."""
    return RowClosure(selection, connection).run()


def subset_reads(
    selection: Selection | None, connection: BaseDatabaseWrapper, plan: Plan
) -> tuple[Chosen | None, Plan]:
    """(the subset's keys, the tables read whole: none), or (None, plan) for a full backup."""
    if selection is None:
        return None, plan
    return choose_rows(selection, connection), Plan(tables=(), cycles=())


class RowClosure:
    """The keys found so far and the rows whose links are still to follow."""

    def __init__(self, selection: Selection, connection: BaseDatabaseWrapper) -> None:
        self.selection, self.connection = selection, connection
        self.keys: dict[str, set[Any]] = {label: set() for label in selection.reached}
        self.keys.update({label: set() for label in selection.empty})
        # Rows reached downwards (chosen, or children): their children are followed too.
        self.down: dict[str, set[Any]] = {label: set() for label in selection.reached}
        all_links = links(selection)
        self.outgoing = {
            label: [k for k in all_links if k.table.label == label] for label in self.keys
        }
        self.incoming = {
            label: [k for k in all_links if k.target.label == label] for label in self.keys
        }
        self.todo: list[tuple[str, list[Any], list[Any]]] = []

    def add(self, label: str, found: list[Any], downwards: bool) -> None:
        found = list(dict.fromkeys(found))
        new = [key for key in found if key not in self.keys[label]]
        self.keys[label].update(new)
        new_down: list[Any] = []
        if downwards and self.selection.spec.with_children:
            new_down = [key for key in found if key not in self.down[label]]
            self.down[label].update(new_down)
        if new or new_down:
            self.todo.append((label, new, new_down))

    def run(self) -> Chosen:
        for seed in self.selection.seeds:
            self.add(seed.table.label, seed_keys(seed, self.connection), downwards=True)
        while self.todo:
            label, new, new_down = self.todo.pop()
            for link in self.outgoing[label] if new else ():
                self.add(link.target.label, referenced(link, new, self.connection), False)
            for link in self.incoming[label] if new_down else ():
                self.add(link.table.label, children(link, new_down, self.connection), True)
        return Chosen(self.keys)


def key_chunks(
    table: Table, connection: BaseDatabaseWrapper, keys: set[Any]
) -> Iterator[list[Any]]:
    """`keys` in groups that, each read in primary-key order, give the table's
    rows in the database's own primary-key order (which Python's sorted() may
    not match: collations, MariaDB's UUIDs), as a full backup writes them.

    Keys that fit one query go in one; more are grouped in the order a scan
    of the primary key alone finds them."""
    per_query = keys_per_query(connection, table)
    if len(keys) <= per_query:
        if keys:
            yield list(keys)
        return
    only_key = dataclasses.replace(table, fields=table.pk_fields)
    single = len(table.pk_fields) == 1
    found = (row[0] if single else row for row in read_rows(only_key, connection))
    yield from chunks((key for key in found if key in keys), per_query)
