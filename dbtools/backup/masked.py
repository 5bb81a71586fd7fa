"""backupdb --mask: DBTOOLS['MASK'] applied to the rows as they are read, before
anything is encoded, compressed, encrypted or written.

A table with a masked column is read on the backup's own connection, never
by the helper connections, whose spools would hold its values. Where the
backend can (PostgreSQL, text columns masked), the server writes the JSON
of the other columns and hands over the masked columns' values, which are
masked here and put in between (write_masked_row_batches): the line is the
one the server would write had the column held the masked value (the
portable path's holds the same values, though it may spell a float or a
decimal differently). Elsewhere the portable path (rows.py) reads
it, with its row masker applied to each row. Either way no unmasked value
of a masked column reaches a spool, a temporary file, the file or an upload. A "drop" table is written with no rows: it is still listed,
so a restore --replace empties it like any other table in the file.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from ..backends import backend_for
from ..exceptions import ConfigurationError
from ..graph import Plan, Table, database_models
from ..masking import Masker, RowMasker
from . import rows
from .subset_rows import key_chunks

# The file name's label, so a masked backup is never counted by retention
# (catalog.retention_group) and is told apart at a glance.
MASKED = "masked"
# Rows per batch the server hands over for masking: a batch is held several
# times over (its rows, the masked columns, their JSON, the lines) at once.
MASKED_BATCH_ROWS = 1_000


def masker_for(mask: bool) -> Masker | None:
    """The project's Masker when --mask is asked for, or a one-line error."""
    if not mask:
        return None
    masker = Masker.from_settings()  # ConfigurationError on bad rules or a missing key
    if masker is None:
        raise ConfigurationError(
            "--mask needs masking rules, and DBTOOLS['MASK'] is not set.",
            changed=False,
            fix="add them, with DBTOOLS['MASK_KEY'], as docs/masking.md shows.",
        )
    return masker


def check_rules_match(masker: Masker | None, using: str) -> None:
    """Refuse to mask when a rule names a table or column the database does
    not have as its applied migrations leave it (migrations behind or ahead
    of the code): the backup reads those tables and columns, so such a rule
    would mask nothing and leave the values it was written for in clear."""
    if masker is None:
        return
    columns = {
        model._meta.label: {f.attname for f in model._meta.concrete_fields}
        for model in database_models(using)
    }
    missing = [
        f"{label}.{name}" if name else label
        for label, name in masker.targets()
        if label not in columns or (name is not None and name not in columns[label])
    ]
    if missing:
        raise ConfigurationError(
            f"DBTOOLS['MASK'] names {', '.join(missing)}, which the database {using!r} does not "
            f"have as its applied migrations leave it (they are behind or ahead of the code), so "
            f"the backup would hold their values in clear;",
            changed=False,
            fix="migrate the database (`manage.py migrate`) or back it up from the code that "
            "matches it.",
        )


def header_fields(masker: Masker | None) -> dict[str, Any]:
    """What the backup's metadata says of its masking: the rules' fingerprint, never the key."""
    if masker is None:
        return {}
    return {"masked": True, "mask_fingerprint": masker.fingerprint}


def is_masked(meta: dict[str, Any]) -> bool:
    return bool(meta.get("masked"))


def masked_notice(meta: dict[str, Any]) -> str | None:
    """What restoredb says before it writes a masked backup; None for any other."""
    if not is_masked(meta):
        return None
    fingerprint = str(meta.get("mask_fingerprint") or "")[:12]
    return (
        f"This backup is masked (rules {fingerprint or 'unknown'}): its personal fields hold "
        f"fake values made by DBTOOLS['MASK'], not the data of the database it was taken from."
    )


class MaskedTables:
    """Which tables of one backup are masked, and their rows masked."""

    def __init__(self, masker: Masker) -> None:
        self.masker = masker

    def covers(self, table: Table) -> bool:
        """True for a table the masking changes: it must not be read by the server."""
        return self.masker.masks(table.model)

    def unmasked(self, plan: Plan) -> Plan:
        """The tables the server may write and helper connections may spool."""
        return replace(plan, tables=tuple(t for t in plan.tables if not self.covers(t)))

    def batches(
        self, table: Table, connection: BaseDatabaseWrapper, keys: set[Any] | None = None
    ) -> Generator[list[str] | list[bytes], None, None]:
        """The table's rows masked; with `keys` (a subset backup) only those rows."""
        if self.masker.drops(table.model):
            return empty()
        row_masker = self.masker.for_table(table.model)
        assert row_masker is not None  # covers() said so
        change = TupleMasker(table, row_masker)
        backend = backend_for(connection)
        if backend.can_write_masked_rows(table, change.positions) and (
            keys is None or len(table.pk_fields) == 1
        ):
            return backend.write_masked_row_batches(
                table,
                MASKED_BATCH_ROWS,
                change.positions,
                change.columns_of,
                None if keys is None else list(keys),
            )
        chunks = None if keys is None else key_chunks(table, connection, keys)
        return rows.python_batches(table, connection, chunks, change=change)


def masked_tables(masker: Masker | None, plan: Plan) -> tuple[MaskedTables | None, Plan]:
    """The masking of one backup (None: not masked), and the tables the server may read."""
    if masker is None:
        return None, plan
    masked = MaskedTables(masker)
    return masked, masked.unmasked(plan)


def empty() -> Generator[list[bytes], None, None]:
    yield from ()


class TupleMasker:
    """A RowMasker over the tuples rows.py reads, in the table's field order."""

    def __init__(self, table: Table, row_masker: RowMasker) -> None:
        names = row_masker.masked_columns
        self.row_masker = row_masker
        self.columns = [i for i, f in enumerate(table.fields) if f.attname in names]
        self.positions = frozenset(self.columns)
        # (place among the masked values, the RowMasker's column), in the
        # RowMasker's order: a collision resolved on one column is seen by the next.
        by_name = {table.fields[i].attname: place for place, i in enumerate(self.columns)}
        self.order = [(by_name[name], n) for n, name in enumerate(names)]

    def values(self, values: list[Any]) -> list[Any]:
        """One row's values of the masked columns, in field order, masked (None stays None)."""
        mask = self.row_masker.mask_value
        for place, n in self.order:
            if values[place] is not None:
                values[place] = mask(n, values[place])
        return values

    def columns_of(self, columns: list[list[Any]]) -> list[list[Any]]:
        """Rows' values of the masked columns, column by column in field order,
        masked: as values() would, row after row, mask them."""
        if not self.row_masker.by_column:
            rows = [self.values(list(row)) for row in zip(*columns, strict=True)]
            return [list(column) for column in zip(*rows, strict=True)] if rows else columns
        for place, n in self.order:
            columns[place] = self.row_masker.mask_column(n, columns[place])
        return columns

    def rows(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Rows read in field order, their masked columns masked (columns_of)."""
        masked = self.columns_of([[row[i] for row in rows] for i in self.columns])
        changed = [list(row) for row in rows]
        for i, values in zip(self.columns, masked, strict=True):
            for row, value in zip(changed, values, strict=True):
                row[i] = value
        return [tuple(row) for row in changed]
