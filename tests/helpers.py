"""Shared test helpers: reading a backup back, comparing tables exactly."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.db.models import QuerySet

from dbtools.archive import ArchiveReader
from dbtools.archive.codec import row_decoder
from dbtools.archive.row_parsing import row_parser
from dbtools.graph import plan_tables


def read_backup(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Every table of a backup, rows decoded to Python values."""
    tables: dict[str, list[dict[str, Any]]] = {}
    with ArchiveReader(path) as reader:
        for section in reader.tables(lambda meta: row_parser(meta["columns"])):
            decode = row_decoder(section.meta["columns"])
            tables[section.meta["label"]] = [decode(row) for row in section.rows]
    return tables


def table_rows(alias: str, label: str) -> list[dict[str, Any]]:
    """A table's rows as the ORM reads them, keyed by field name, in pk order."""
    table = next(t for t in plan_tables(alias).tables if t.label == label)
    model = table.model
    names = [f.name for f in table.fields]
    rows = QuerySet(model=model, using=alias).order_by(*[f.attname for f in table.pk_fields])
    return [
        dict(zip(names, row, strict=True))
        for row in rows.values_list(*[f.attname for f in table.fields])
    ]


def database_contents(
    alias: str, labels: list[str] | None = None
) -> dict[str, list[dict[str, Any]]]:
    plan = plan_tables(alias)
    return {
        t.label: table_rows(alias, t.label)
        for t in plan.tables
        if labels is None or t.label in labels
    }


def comparable(value: Any) -> Any:
    """Values as they compare in a test: NaN equal to NaN, memoryview as bytes."""
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def comparable_tables(tables: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    return {
        label: [{k: comparable(v) for k, v in row.items()} for row in rows]
        for label, rows in tables.items()
    }


def rewrite_backup(
    source: Path,
    target: Path,
    change_row=None,  # (label, row dict) -> row dict | None (None drops the row)
    change_table=None,  # table meta dict -> table meta dict
    order_rows=None,  # (label, list of row dicts) -> the list in the order to write
    change_meta=None,  # the backup's meta dict -> meta dict
) -> Path:
    """Write a copy of a backup with rows or table descriptions changed, checksums redone:
    how a test builds a backup that is valid as a file but awkward as data."""
    import json

    from dbtools.archive import ArchiveWriter

    writer = ArchiveWriter(target, max_line_bytes=2**31)
    with ArchiveReader(source, max_line_bytes=2**31) as reader:
        writer.write_header(change_meta(dict(reader.meta)) if change_meta else reader.meta)
        for section in reader.tables(lambda meta: json.loads):
            meta = change_table(section.meta) if change_table else section.meta
            writer.begin_table(meta)
            rows = []
            for row in section.rows:
                row = change_row(meta["label"], row) if change_row else row
                if row is not None:
                    rows.append(row)
            if order_rows:
                rows = order_rows(meta["label"], rows)
            writer.write_rows(
                [json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode() for r in rows]
            )
            writer.end_table()
    writer.commit()
    return target


def without_column(backup: Path, column: str) -> Path:
    """A copy of `backup` (old.json beside it) whose tables have no `column`, as
    one taken before the column was added."""

    def change_table(meta):  # type: ignore[no-untyped-def]
        meta["columns"] = [c for c in meta["columns"] if c["name"] != column]
        return meta

    return rewrite_backup(
        backup,
        backup.with_name("old.json"),
        change_row=lambda label, row: {k: v for k, v in row.items() if k != column},
        change_table=change_table,
    )


def resign(path: Path) -> None:
    """Redo every table's count and checksum over its row lines as they now are,
    without parsing them: how a test makes a hostile file pass the checksums."""
    import hashlib

    out: list[bytes] = []
    digest = None
    count = 0
    for line in path.read_bytes().split(b"\n")[:-1]:
        if digest is not None and line.startswith(b'],"count":'):
            out.append(b'],"count":%d,"sha256":"%s"}' % (count, digest.hexdigest().encode()))
            digest = None
            continue
        if digest is not None:
            digest.update(line + b"\n")
            count += 1
        elif line.endswith(b',"rows":['):
            digest, count = hashlib.sha256(), 0
        out.append(line)
    path.write_bytes(b"\n".join(out) + b"\n")


@contextmanager
def read_lock_held(alias: str, db_table: str) -> Iterator[None]:
    """Another session, idle in a transaction that read `db_table`, for the body:
    it holds an ACCESS SHARE lock that ALTER TABLE and TRUNCATE must wait for."""
    from django.db import connections

    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        connection = connections.create_connection(alias)
        try:
            with connection.cursor() as cursor:
                cursor.execute("BEGIN")
                cursor.execute(f"SELECT count(*) FROM {db_table}")
                holding.set()
                done.wait(60)
                cursor.execute("ROLLBACK")
        finally:
            connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert holding.wait(30)
        yield
    finally:
        done.set()
        thread.join(30)
