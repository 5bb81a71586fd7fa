"""diff_database(): a backup against the database (inside one snapshot) or
against another backup, table by table, streaming."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from itertools import chain
from typing import IO, Any, cast

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.loader import MigrationLoader

from ..archive import ArchiveReader, TableSection
from ..archive.codec import kind_of
from ..archive.format import holds_some_rows, outside_subset
from ..backends import backend_class, backend_for, connect
from ..backends.pg_reads import HelperReaders
from ..backup.flow import read_apart, snapshot
from ..backup.masked import is_masked
from ..backup.options import check_whole_number
from ..backup.rows import BATCH_ROWS, python_batches
from ..backup.tables import DEFAULT_JOBS, helper_readers, single_connection_reason
from ..conf import sensitive
from ..exceptions import ConfigurationError
from ..graph import Plan, Table, plan_tables
from ..restore.mapping import TableMapping, current_table_label, map_columns
from ..restore.since_backup import migration_renames
from ..storage import BackupRef
from ..storage.catalog import resolve_backup
from .compare import Line, Pairing, compare_table, spill_folder
from .report import DiffResult, TableDiff
from .values import exactly_compared, numeric_columns

SPOOL_BLOCK = 1 << 20
# What the read-ahead spools may hold together: the tables past it are read
# by the main connection, so a diff never needs the database's size on disk.
SPOOL_AHEAD_BYTES = 64 << 20


def diff_database(
    file: str | BackupRef | None = None,
    *,
    against: str | BackupRef | None = None,
    using: str = "default",
    only: Sequence[str] = (),
    exclude: Sequence[str] = (),
    rows: int = 0,
    jobs: int | None = None,
) -> DiffResult:
    """Compare backup `file` (default: the latest) with database `using`, or,
    given `against`, with that backup. `rows`: up to so many example rows per
    table. `jobs`: as backupdb's, the connections that read the database
    (PostgreSQL; 1 keeps nothing on disk). Reads only; the database side is
    read inside one snapshot."""
    if type(rows) is not int or rows < 0:
        raise ConfigurationError(f"--rows must be a whole number of 0 or more, not {rows!r}.")
    check_whole_number("--jobs", jobs)
    started = time.monotonic()
    old_path = resolve_backup(file)
    if against is not None:
        new_path = resolve_backup(against, option="--against")
        result = diff_backups(old_path, new_path, only, exclude, rows)
    else:
        result = diff_with_database(old_path, using, only, exclude, rows, jobs)
    result.seconds = time.monotonic() - started
    return result


@contextmanager
def database_lines(table: Table, connection: BaseDatabaseWrapper) -> Iterator[Iterator[Line]]:
    """The table's rows exactly as backupdb encodes them, in primary-key order,
    as bytes like the backup's lines: an unchanged row's two lines are then equal.
    Closed on leaving, even on an error: the reader may hold a thread and a cursor."""
    backend = backend_for(connection)
    batches: Iterator[list[str] | list[bytes]] = (
        backend.write_row_batches(table, BATCH_ROWS)
        if backend.can_write_rows(table)
        else python_batches(table, connection)
    )
    with closing(batches):  # type: ignore[type-var]
        yield chain.from_iterable(map(encoded, batches))


@contextmanager
def table_lines(
    table: Table, connection: BaseDatabaseWrapper, ahead: HelperReaders | None
) -> Iterator[Iterator[Line]]:
    """database_lines(), or the same lines from the spool of a helper that read
    the table ahead (the main connection reads it if that helper failed)."""
    spooled = ahead.result(table) if ahead is not None and not ahead.take(table) else None
    if spooled is None:
        with database_lines(table, connection) as lines:
            yield lines
        return
    try:
        with spooled.path.open("rb") as spool:
            yield chain.from_iterable(spool_lines(spool))
    finally:
        spooled.path.unlink(missing_ok=True)


def spool_lines(spool: IO[bytes]) -> Iterator[list[bytes]]:
    """A spool's row lines, a block at a time: they are written as in a backup,
    one a line, each after the first led by a comma, which no line holds
    after a line break (JSON text has none)."""
    rest = b""
    while block := spool.read(SPOOL_BLOCK):
        lines = (rest + block).split(b"\n,")
        rest = lines.pop()
        yield lines
    if rest:
        yield [rest.removesuffix(b"\n")]


@contextmanager
def read_ahead(
    connection: BaseDatabaseWrapper,
    tables: list[Table],
    reader: ArchiveReader,
    owned: bool,
    jobs: int | None,
) -> Iterator[tuple[HelperReaders | None, str | None]]:
    """(the helpers, or why none reads). As backupdb does: on PostgreSQL,
    `jobs` - 1 more connections in the same snapshot read tables from the end
    of `tables` (in the order they will be asked for) into a private folder,
    at most SPOOL_AHEAD_BYTES of them, while this one compares from the start,
    so server processes build rows at once.
    Never for an encrypted or a masked backup: the spool would hold in the
    clear what the backup keeps sealed or hides."""
    plan = Plan(tuple(tables), ())
    helpers = (DEFAULT_JOBS if jobs is None else jobs) - 1
    if helpers < 1:
        yield None, None
        return
    if is_masked(reader.meta):
        yield None, "a masked backup's diff does not spool the real values it hides to local disk"
        return
    with spill_folder() as folder:
        alone = single_connection_reason(connection, plan, folder, owned, reader.encrypted)
        with helper_readers(
            connection, plan, folder, 0 if alone else helpers, SPOOL_AHEAD_BYTES
        ) as ahead:
            yield ahead, alone


def unused_jobs(jobs: int | None, alone: str | None) -> list[str]:
    """As backupdb says it: more connections asked for that could not read."""
    if alone and jobs is not None and jobs > 1:
        return [f"--jobs {jobs} was not used: {alone}; one connection read it all."]
    return []


def encoded(batch: list[str] | list[bytes]) -> list[bytes]:
    if batch and isinstance(batch[0], str):
        return [line.encode() for line in batch]
    return cast(list[bytes], batch)


def in_python_order(kinds: list[str], uuids_as_text: bool) -> bool:
    """Whether keys of these kinds come in the order Python sorts them in:
    integers always, UUIDs where both sides' databases sort them as text."""
    return all(kind == "int" or (kind == "uuid" and uuids_as_text) for kind in kinds)


def sorts_uuids_as_text(*metas: dict[str, Any]) -> bool:
    """Whether the databases these backups were taken from all sort UUIDs as text."""
    return all(backend_class(str(meta.get("vendor", ""))).sorts_uuids_as_text for meta in metas)


def selected(label: str, only: Sequence[str], exclude: Sequence[str]) -> bool:
    """--only/--exclude for a label that may name no model today."""
    names = {label.lower(), label.partition(".")[0].lower()}
    chosen = not only or any(o.lower() in names for o in only)
    return chosen and not any(e.lower() in names for e in exclude)


def pair_with_table(
    columns: list[dict[str, Any]],
    table: Table,
    renames: dict[str, str],
    diff: TableDiff,
    uuids_as_text: bool = False,
) -> Pairing | None:
    """The backup's columns paired with today's fields through the restore
    plan's mapping; what the mapping changes is noted once as a schema change."""
    mapping = TableMapping(table.label, table, 0, columns)
    map_columns(mapping, renames)
    diff.schema_changes = list(mapping.changes)
    kinds = {c["name"]: c["kind"] for c in columns}
    same_kind = {f.name: c for f, c in mapping.sources if c is not None and kinds[c] == kind_of(f)}
    key = [(f.name, same_kind.get(f.name)) for f in table.pk_fields]
    if any(old is None for _new, old in key):
        diff.compared = False
        diff.schema_changes.append("the primary key changed since the backup: rows not compared")
        return None
    return Pairing(
        key=[(new, str(old)) for new, old in key],
        columns=list(same_kind.items()),
        hidden=sensitive(table.label, (f.name for f in table.fields)),
        ordered=in_python_order([kind_of(f) for f in table.pk_fields], uuids_as_text),
        exact=exactly_compared({new: kinds[old] for new, old in same_kind.items()}),
        numbers=numeric_columns({new: kinds[old] for new, old in same_kind.items()}),
    )


def diff_with_database(
    path: BackupRef,
    using: str,
    only: Sequence[str],
    exclude: Sequence[str],
    rows: int,
    jobs: int | None = None,
) -> DiffResult:
    connection = connect(using)
    whole = plan_tables(using, include_unmanaged=True)
    scope = {t.label.lower(): t for t in whole.select(only, exclude).tables}
    everything = {t.label.lower(): t for t in whole.tables}
    tables: list[TableDiff] = []
    seen: set[str] = set()
    with ArchiveReader(path) as reader:
        meta = reader.meta
        loader = MigrationLoader(connection, ignore_no_migrations=True)
        model_renames, field_renames = migration_renames(loader, meta.get("migrations", {}))
        outside = {current_table_label(label, model_renames) for label in outside_subset(meta)}
        in_order = tables_in_order(meta, model_renames, scope, outside)
        uuids = backend_for(connection).sorts_uuids_as_text and sorts_uuids_as_text(meta)
        with (
            snapshot(connection) as owned,
            read_ahead(connection, in_order, reader, owned, jobs) as (ahead, alone),
        ):
            warnings = read_apart(connection, owned, "diff_database()") + unused_jobs(jobs, alone)
            for section in reader.tables():
                label = section.meta["label"]
                current = current_table_label(label, model_renames)
                table = everything.get(current)
                if table is None:
                    if selected(label, only, exclude):
                        tables.append(gone(label, section, "the database"))
                    continue
                if current not in scope:
                    continue
                seen.add(current)
                if current in outside:
                    tables.append(outside_diff(table.label, path.name))
                    continue
                renames = field_renames.get(current, {})
                diff = TableDiff(table.label, partial=subset_side(meta, {}, label))
                compare_with_table(diff, section, table, renames, uuids, connection, ahead, rows)
                tables.append(diff)
    expected = tables_expected(using, meta)
    for current, table in scope.items():
        if current not in seen and (expected is None or current in expected):
            tables.append(added(table.label))
    return DiffResult(path.name, f"database {using!r}", tables, warnings=warnings)


def compare_with_table(
    diff: TableDiff,
    section: TableSection,
    table: Table,
    renames: dict[str, str],
    uuids: bool,
    connection: BaseDatabaseWrapper,
    ahead: HelperReaders | None,
    rows: int,
) -> None:
    """One table of the backup against the database's, into `diff`."""
    pairing = pair_with_table(section.meta["columns"], table, renames, diff, uuids)
    if pairing is not None:
        with table_lines(table, connection, ahead) as lines:
            compare_table(diff, section.rows, lines, pairing, rows)


def tables_in_order(
    meta: dict[str, Any],
    model_renames: dict[str, str],
    scope: dict[str, Table],
    outside: set[str],
) -> list[Table]:
    """The tables of `scope` in the order the backup holds them, as they will be
    compared (not those `outside` a subset)."""
    currents = (current_table_label(label, model_renames) for label in meta.get("order", []))
    return [scope[c] for c in currents if c in scope and c not in outside]


def gone(label: str, section: TableSection, where: str) -> TableDiff:
    count = sum(1 for _ in section.rows)
    return TableDiff(
        label,
        compared=False,
        schema_changes=[f"not in {where} ({count:,} rows in the backup)"],
    )


def subset_side(old_meta: dict[str, Any], new_meta: dict[str, Any], label: str) -> str | None:
    """Which side holds only some of table `label`'s rows by choice (a subset
    that did not take it whole; "both": rows either lacks are not compared)."""
    old, new = (holds_some_rows(meta, label) for meta in (old_meta, new_meta))
    return "both" if old and new else "old" if old else "new" if new else None


def outside_diff(label: str, name: str) -> TableDiff:
    """A table no chosen row of subset `name` reaches: the backup holds none of
    its rows by choice, not because they were added since."""
    return TableDiff(
        label, compared=False, schema_changes=[f"not compared: outside the subset {name}"]
    )


def added(label: str) -> TableDiff:
    return TableDiff(label, compared=False, schema_changes=["not in the backup (added since)"])


def tables_expected(using: str, meta: dict[str, Any]) -> set[str] | None:
    """The tables today's database has that the backup's own --only/--exclude
    would have taken (None: that cannot be told, every table is expected)."""
    try:
        plan = plan_tables(
            using,
            only=meta.get("only", []),
            exclude=meta.get("exclude", []),
            include_unmanaged=bool(meta.get("include_unmanaged")),
        )
    except ConfigurationError:
        return None
    return {t.label.lower() for t in plan.tables}


# Two backups ---------------------------------------------------------------------


class SectionCursor:
    """The tables of a second backup, found by label as the first one's come:
    one pass when both list their tables in the same order, a new pass from
    the start when they do not."""

    def __init__(self, path: BackupRef) -> None:
        self.path = path
        self.reader = ArchiveReader(path)
        self.sections = self.reader.tables()
        self.labels: list[str] = list(self.reader.meta.get("order", []))

    def close(self) -> None:
        self.reader.close()

    def find(self, label: str) -> TableSection | None:
        if self.labels and label not in self.labels:
            return None
        for attempt in range(2):
            for section in self.sections:
                if section.meta["label"] == label:
                    return section
            if attempt == 0:
                self.close()
                self.reader = ArchiveReader(self.path)
                self.sections = self.reader.tables()
        return None


def pair_by_name(
    old: dict[str, Any], new: dict[str, Any], diff: TableDiff, uuids_as_text: bool = False
) -> Pairing | None:
    """Two backups' columns paired by name; a column added, removed or of
    another kind is a schema change, not compared."""
    old_kinds = {c["name"]: c["kind"] for c in old["columns"]}
    new_kinds = {c["name"]: c["kind"] for c in new["columns"]}
    diff.schema_changes += column_changes(old_kinds, new_kinds)
    same = [name for name, kind in new_kinds.items() if old_kinds.get(name) == kind]
    key = list(new.get("pk", []))
    if not key or any(name not in same for name in key):
        diff.compared = False
        diff.schema_changes.append("the primary key differs between the backups: rows not compared")
        return None
    return Pairing(
        key=[(name, name) for name in key],
        columns=[(name, name) for name in same],
        hidden=sensitive(diff.label, new_kinds),
        ordered=in_python_order([new_kinds[name] for name in key], uuids_as_text),
        exact=exactly_compared({name: new_kinds[name] for name in same}),
        numbers=numeric_columns({name: new_kinds[name] for name in same}),
    )


def column_changes(old_kinds: dict[str, str], new_kinds: dict[str, str]) -> list[str]:
    changes = []
    for name, kind in new_kinds.items():
        if name not in old_kinds:
            changes.append(f"{name}: added (not in the old backup)")
        elif old_kinds[name] != kind:
            changes.append(f"{name}: {old_kinds[name]} -> {kind}, not compared")
    return changes + [
        f"{name}: removed (not in the new backup)" for name in old_kinds if name not in new_kinds
    ]


def check_backup_labels(labels: Sequence[str], tables: set[str]) -> None:
    known = {t.lower() for t in tables} | {t.partition(".")[0].lower() for t in tables}
    unknown = [label for label in labels if label.lower() not in known]
    if unknown:
        raise ConfigurationError(
            f"{', '.join(unknown)}: no table of either backup has that app or model label; "
            f"give labels as app_label or app_label.Model."
        )


def diff_backups(
    old_path: BackupRef, new_path: BackupRef, only: Sequence[str], exclude: Sequence[str], rows: int
) -> DiffResult:
    tables: list[TableDiff] = []
    seen: set[str] = set()
    cursor = SectionCursor(new_path)
    try:
        with ArchiveReader(old_path) as reader:
            labels = set(reader.meta.get("order", [])) | set(cursor.labels)
            check_backup_labels([*only, *exclude], labels)
            uuids = sorts_uuids_as_text(reader.meta, cursor.reader.meta)
            outside = {
                **dict.fromkeys(outside_subset(cursor.reader.meta), new_path.name),
                **dict.fromkeys(outside_subset(reader.meta), old_path.name),
            }
            for section in reader.tables():
                label = section.meta["label"]
                if not selected(label, only, exclude):
                    continue
                seen.add(label)
                if label in outside:
                    tables.append(outside_diff(label, outside[label]))
                    continue
                other = cursor.find(label)
                if other is None:
                    tables.append(gone(label, section, new_path.name))
                    continue
                diff = TableDiff(label, partial=subset_side(reader.meta, cursor.reader.meta, label))
                pairing = pair_by_name(section.meta, other.meta, diff, uuids)
                if pairing is not None:
                    compare_table(diff, section.rows, other.rows, pairing, rows)
                tables.append(diff)
    finally:
        cursor.close()
    for label in cursor.labels:
        if label not in seen and selected(label, only, exclude):
            tables.append(
                TableDiff(label, compared=False, schema_changes=[f"not in {old_path.name}"])
            )
    return DiffResult(old_path.name, new_path.name, tables)
