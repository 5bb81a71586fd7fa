"""The row pipeline: how each backup row becomes the values written for today's
fields (copied, re-pointed to rows matched by natural key, defaulted, set with
--set, converted where the type changed or the database cannot hold a value
exactly)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db.backends.base.base import BaseDatabaseWrapper

from ..archive.codec import AnyField, BadValue, JSONText, kind_of
from ..backends import backend_for
from ..exceptions import RestoreError
from .failures import bad_value_error, shown_in_error
from .plan import RestorePlan, TableMapping

BATCH_ROWS = 1_000

Converters = list[tuple[str, Callable[[Any, dict[str, Any]], Any]]]


class RowPipeline:
    """Prepares the rows of one restore's tables for this database."""

    def __init__(
        self,
        plan: RestorePlan,
        connection: BaseDatabaseWrapper,
        remapped: dict[str, dict[Any, Any]],
    ) -> None:
        self.plan = plan
        self.connection = connection
        # backup id -> id in this database, for tables matched by natural key
        self.remapped = remapped

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

    def copied_as_they_are(
        self,
        mapping: TableMapping,
        fields: list[AnyField],
        converters: Converters,
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
        converters: Converters,
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

    def overwritten_fields(self, mapping: TableMapping) -> list[AnyField]:
        """--overwrite: the columns a row already there is given the backup's
        values of: every column the backup maps onto, but the primary key.
        Columns added since keep what the row holds."""
        assert mapping.table is not None
        key = {f.attname for f in mapping.table.pk_fields}
        return [f for f, source in mapping.sources if source is not None and f.attname not in key]

    def batch_limit(self, mapping: TableMapping) -> int:
        assert mapping.table is not None
        fields = [f for f, _ in mapping.sources]
        return max(
            1, min(BATCH_ROWS, self.connection.ops.bulk_batch_size(fields, [None] * BATCH_ROWS))
        )

    def converters(self, mapping: TableMapping) -> Converters:
        """Per-column checks and conversions: a type changed since the backup,
        or a value this database cannot hold exactly."""
        return self.type_changes(mapping) + self.decimal_checks(mapping)

    def type_changes(self, mapping: TableMapping) -> Converters:
        """The conversions of the columns whose type changed since the backup."""
        assert mapping.table is not None
        label = mapping.table.label
        backup_kinds = {c["name"]: c["kind"] for c in mapping.columns}
        return [
            (
                model_field.attname,
                self.type_change(label, model_field, backup_kinds[source]),
            )
            for model_field, source in mapping.sources
            if source is not None and backup_kinds[source] != kind_of(model_field)
        ]

    def decimal_checks(self, mapping: TableMapping) -> Converters:
        """Where the database keeps decimals as floating point (SQLite), the
        refusal of a decimal with more digits than it keeps exactly: the
        backup's decimals, and those a type change made (converters run in
        order, so this sees type_changes' Decimal)."""
        assert mapping.table is not None
        if not backend_for(self.connection).stores_decimals_inexactly:
            return []  # asking inexact_decimal would always give None
        return [
            (model_field.attname, self.decimal_check(mapping.table.label, model_field))
            for model_field, source in mapping.sources
            if source is not None and kind_of(model_field) == "decimal"
        ]

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
                message = exc.messages[0] if isinstance(exc, ValidationError) else str(exc)
                pk, shown, message = shown_in_error(
                    label, row, pk_names, model_field.name, value, message
                )
                raise RestoreError(
                    f"{label}, row with primary key {pk!r}: column {model_field.name} was {was} in the backup "
                    f"and is {kind_of(model_field)} now, and {shown} does not convert ({message}). "
                    f"Restore into the schema the backup came from, or convert the column in a migration "
                    f"after restoring;",
                    changed=False,
                ) from exc

        return convert

    def decimal_check(
        self, label: str, model_field: AnyField
    ) -> Callable[[Any, dict[str, Any]], Any]:
        pk_names = [f.attname for f in model_field.model._meta.pk_fields]
        backend = backend_for(self.connection)

        def check(value: Decimal, row: dict[str, Any]) -> Decimal:
            if isinstance(value, Decimal) and (why := backend.inexact_decimal(value, model_field)):
                pk, shown, _ = shown_in_error(
                    label, row, pk_names, model_field.name, value, show=str
                )
                raise RestoreError(
                    f"{label}, row with primary key {pk!r}: {model_field.name} = {shown} {why}, "
                    f"which {backend.display_name} cannot store exactly (it keeps decimals as "
                    f"floating point). "
                    f"Restore into PostgreSQL or MariaDB;",
                    changed=False,
                )
            return value

        return check
