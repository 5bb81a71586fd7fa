"""Rows whose ids differ between databases migrated separately (content types,
permissions): matched by natural key, their ids mapped, and references to
them re-pointed by the row pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import Q, QuerySet

from ..archive.codec import BadValue, row_decoder
from .failures import bad_value_error
from .mapping import NATURAL_KEYS, TableMapping, map_columns
from .plan import RestorePlan
from .rows import RowPipeline


class NaturalKeys:
    """The id map of one restore's natural-key tables, filled as they are read."""

    def __init__(self, plan: RestorePlan, rows: RowPipeline) -> None:
        self.plan = plan
        self.using = plan.using
        self.rows = rows
        self.remapped = rows.remapped

    def learn(
        self, label: str, table_meta: dict[str, Any], rows: Iterator[tuple[int, Any]]
    ) -> None:
        """A natural-key table that is not restored still tells how its ids map."""
        table = next((t for t in self.plan.everything if t.label.lower() == label), None)
        if table is None:
            return
        mapping = TableMapping(table_meta["label"], table, 0, table_meta["columns"])
        map_columns(mapping, {})  # only its key columns are used; nothing can block them
        decode = row_decoder(table_meta["columns"])
        build = self.rows.row_builder(mapping)
        values = []
        for number, (_, row) in enumerate(rows, 1):
            try:
                values.append(build(decode(row)))
            except BadValue as exc:
                raise bad_value_error(self.plan, mapping, number, row, exc) from exc
        if values:
            self.match(mapping, values, insert_missing=False)

    def match(
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
