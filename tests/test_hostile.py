"""Bad, damaged and hostile backup files: a one-line error naming the table,
the row and the value, and a database exactly as it was; never a traceback."""

from __future__ import annotations

import json
import sqlite3
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from dbtools.backup import backup_database
from dbtools.exceptions import ArchiveError, BackupError, RestoreError
from dbtools.restore import prepare_restore, restore_database
from tests.conftest import backends
from tests.data import fill_edge_cases
from tests.edgecases import models as e
from tests.helpers import comparable_tables, database_contents, resign, rewrite_backup


def restore_replace(path: Path, alias: str) -> None:
    restore_database(prepare_restore(path, using=alias), mode="replace")


def with_first_row(label: str, column: str, value, path: Path) -> Path:
    """A copy of a backup whose first row of `label` holds `value` in `column`,
    checksums redone, so only the value itself is wrong."""
    done = []

    def change(table, row):
        if table == label and not done:
            done.append(row)
            row = {**row, column: value}
        return row

    return rewrite_backup(path, path.with_name(f"bad-{column}.json"), change_row=change)


def with_header(path: Path, change_meta) -> Path:
    lines = path.read_bytes().split(b"\n")
    header = json.loads(lines[0][: -len(b',"tables":[')] + b"}")
    header["meta"] = change_meta(header["meta"])
    lines[0] = json.dumps(header, separators=(",", ":")).encode()[:-1] + b',"tables":['
    bad = path.with_name("bad-header.json")
    bad.write_bytes(b"\n".join(lines))
    return bad


@pytest.fixture
def edge_backup(alias, backup_dir):
    fill_edge_cases(alias)
    path = backup_database(using=alias, only=["edgecases"]).path
    e.Tag.objects.using(alias).create(name="made after the backup")
    return path


BAD_VALUES = [
    ("date_time", "2025-13-01T00:00:00+00:00", "datetime", "month must be in 1..12"),
    ("date", "not a date", "date", "Invalid isoformat string: 'not a date'"),
    ("uuid", "zzz", "uuid", "badly formed hexadecimal UUID string"),
    ("binary", "!!not base64!!", "binary", "Only base64 data is allowed"),
    ("decimal", "twelve", "decimal", "not a decimal number"),
    ("decimal", 1.5, "decimal", "not a decimal written as text"),
    ("boolean", 1, "bool", "not true or false"),
    ("integer", "5", "int", "not a whole number"),
    ("integer", True, "int", "not a whole number"),
    ("char", 5, "str", "not text"),
    ("float", True, "float", "not a number"),
    ("duration", "soon", "duration", "'soon' is not a whole number of microseconds"),
]


def test_a_value_of_the_wrong_kind_names_table_row_column_and_value(alias, edge_backup):
    before = comparable_tables(database_contents(alias))
    first_pk = e.AllTypes.objects.using(alias).order_by("pk").first().pk
    for column, value, kind, cause in BAD_VALUES:
        bad = with_first_row("edgecases.AllTypes", column, value, edge_backup)
        with pytest.raises(RestoreError) as raised:
            restore_replace(bad, alias)
        assert str(raised.value) == (
            f"{bad.name}: table edgecases.AllTypes, row 1 (primary key {first_pk!r}): column {column} "
            f"holds {value!r}, which is not a {kind} value ({cause}). The file was edited or damaged; "
            f"nothing was changed: the restore was rolled back. Use another backup, or correct the "
            f"value in the file."
        )
    assert comparable_tables(database_contents(alias)) == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda meta: [1, 2], r"has damaged metadata: 'meta' is not an object\."),
        (
            lambda meta: {k: v for k, v in meta.items() if k != "created_at"},
            r"has damaged metadata: 'created_at' is missing or not text\.",
        ),
        (
            lambda meta: {**meta, "created_at": "yesterday"},
            r"has damaged metadata: 'created_at' is not a date and time \('yesterday'\)\.",
        ),
        (
            lambda meta: {**meta, "migrations": {"shop": "0001"}},
            r"has damaged metadata: 'migrations' is not a list of migration names per app",
        ),
    ],
    ids=["meta-list", "no-created-at", "bad-created-at", "bad-migrations"],
)
def test_damaged_metadata_is_refused(alias, edge_backup, change, message):
    bad = with_header(edge_backup, change)
    with pytest.raises(ArchiveError, match=r"^bad-header.json " + message):
        prepare_restore(bad, using=alias)
    listed = bad.rename(bad.with_name("db-backup-2020-01-01T00-00-00-000Z.json"))
    out = StringIO()
    with pytest.raises(CommandError, match=r"^1 backup\(s\) failed verification"):
        call_command("listbackups", stdout=out)
    assert f"{listed.name}" in out.getvalue() and "DAMAGED: " in out.getvalue()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda meta: {k: v for k, v in meta.items() if k != "label"}, "'label' is missing"),
        (lambda meta: {**meta, "columns": []}, "'columns' is missing or empty"),
        (
            lambda meta: {**meta, "columns": [{**c, "kind": "rot13"} for c in meta["columns"]]},
            None,
        ),
    ],
    ids=["no-label", "no-columns", "unknown-kind"],
)
def test_damaged_table_descriptions_are_refused(alias, edge_backup, change, message):
    def change_tag(meta):
        return change(meta) if meta.get("label") == "edgecases.Tag" else meta

    bad = rewrite_backup(
        edge_backup, edge_backup.with_name("bad-table.json"), change_table=change_tag
    )
    if message is None:
        message = (
            r"has columns of a kind this dbtools does not know: edgecases.Tag.id \(rot13\), "
            r"edgecases.Tag.name \(rot13\)\. The file was edited, or written by a newer dbtools"
        )
    with pytest.raises(ArchiveError, match=message):
        prepare_restore(bad, using=alias)


def test_a_row_that_is_not_an_object_is_refused(alias, edge_backup):
    bad = rewrite_backup(
        edge_backup, edge_backup.with_name("bad-row.json"),
        change_row=lambda label, row: list(row.values()) if label == "edgecases.Tag" else row,
    )  # fmt: skip
    before = comparable_tables(database_contents(alias))
    with pytest.raises(
        ArchiveError,
        match=r"^bad-row.json line \d+: row 1 of edgecases.Tag is not a valid row \(a row must be a JSON object\)",
    ):
        restore_replace(bad, alias)
    assert comparable_tables(database_contents(alias)) == before


@pytest.mark.parametrize("label", ["edgecases.AllTypes", "edgecases.Tag"])
def test_deeply_nested_json_is_a_clean_error(alias, edge_backup, label):
    """AllTypes has a JSON column (the standard library's parser, which recurses);
    Tag has none (orjson, which has a depth limit)."""
    column = "json" if label == "edgecases.AllTypes" else "name"
    bad = with_first_row(label, column, "DEEP", edge_backup)
    bad.write_text(bad.read_text().replace('"DEEP"', "[" * 200_000 + "]" * 200_000, 1))
    resign(bad)
    before = comparable_tables(database_contents(alias))
    with pytest.raises(
        ArchiveError, match=rf"^bad-{column}.json line \d+: row 1 of {label} is not a valid row"
    ):
        restore_replace(bad, alias)
    assert comparable_tables(database_contents(alias)) == before


def test_a_value_too_big_for_the_column_is_a_clean_error(alias, edge_backup):
    bad = with_first_row("edgecases.AllTypes", "big_integer", 2**70, edge_backup)
    before = comparable_tables(database_contents(alias))
    with pytest.raises(
        RestoreError,
        match=r"^Restoring edgecases.AllTypes \(table edgecases_alltypes\) failed at the row with primary key",
    ):
        restore_replace(bad, alias)
    assert comparable_tables(database_contents(alias)) == before


def test_a_line_longer_than_the_limit_is_refused_before_it_is_read_whole(
    alias, edge_backup, settings
):
    settings.DBTOOLS = {**settings.DBTOOLS, "MAX_LINE_BYTES": 1024 * 1024}
    bad = with_first_row("edgecases.AllTypes", "text", "x" * (2 * 1024 * 1024), edge_backup)
    with pytest.raises(
        ArchiveError,
        match=r"^bad-text.json line \d+ is longer than 1,048,576 bytes, the most this dbtools reads in one "
        r"line \(DBTOOLS\['MAX_LINE_BYTES'\]\)",
    ):
        prepare_restore(bad, using=alias)


def test_a_backup_will_not_write_a_row_its_restore_could_not_read(alias, backup_dir, settings):
    settings.DBTOOLS = {**settings.DBTOOLS, "MAX_LINE_BYTES": 1024 * 1024}
    e.AllTypes.objects.using(alias).create(text="y" * (2 * 1024 * 1024))
    with pytest.raises(
        BackupError, match=r"^Table edgecases.AllTypes: a row is 2,097,\d+ bytes as JSON"
    ):
        backup_database(using=alias, only=["edgecases.AllTypes"])
    assert not [p for p in backup_dir.iterdir() if p.name.startswith("db-backup")]


@backends("sqlite")
@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_a_damaged_gzip_backup_is_reported_not_raised(alias, backup_dir, damage):
    fill_edge_cases(alias)
    packed = backup_database(using=alias, compress=True).path
    data = packed.read_bytes()
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data = data[:20] + bytes(b ^ 0xFF for b in data[20:400]) + data[400:]
    packed.write_bytes(data)
    out = StringIO()
    with pytest.raises(CommandError, match=r"^1 backup\(s\) failed verification"):
        call_command("listbackups", "--verify", stdout=out)
    assert f"{packed.name}" in out.getvalue() and "DAMAGED" in out.getvalue()
    with pytest.raises(CommandError) as raised:
        call_command("restoredb", "--file", packed.name, "--no-input", stdout=StringIO())
    assert "\n" not in str(raised.value) and packed.name in str(raised.value)


@backends("sqlite")
def test_a_dangling_link_in_the_backups_folder_is_passed_over(alias, backup_dir):
    first = backup_database(using=alias).path
    (backup_dir / "db-backup-2020-01-01T00-00-00-000Z.json").symlink_to(backup_dir / "gone.json")
    out = StringIO()
    call_command("listbackups", stdout=out)
    assert first.name in out.getvalue() and "2020-01-01" not in out.getvalue()
    assert backup_database(using=alias, keep=1).pruned == [first]


@backends("sqlite")
def test_a_locked_sqlite_file_is_one_line_that_says_what_to_do(alias, backup_dir):
    backup_database(using=alias)
    path = connections[alias].settings_dict["NAME"]
    connections[alias].close()
    locker = sqlite3.connect(path, check_same_thread=False)
    # An earlier test may have left the file in WAL mode, where readers are
    # never blocked; in the default rollback-journal mode they are.
    locker.execute("PRAGMA journal_mode=DELETE")
    locker.execute("BEGIN EXCLUSIVE")
    try:
        for command in (["backupdb"], ["restoredb", "--no-input", "--replace"]):
            connections[alias].close()
            connections[alias].settings_dict["OPTIONS"] = {"timeout": 0.2}
            with pytest.raises(CommandError) as raised:
                call_command(*command, stdout=StringIO(), stderr=StringIO())
            assert str(raised.value) == (
                "The database reported an error: database is locked. Another process is writing to "
                "the SQLite file: wait for it to finish, or stop it, then run this again."
            )
    finally:
        locker.rollback()
        locker.close()
        connections[alias].settings_dict["OPTIONS"] = {}
        connections[alias].close()


@pytest.mark.parametrize("mode", ["replace", "merge"])
def test_a_primary_key_twice_in_one_backup_is_named_as_such(alias, edge_backup, mode):
    before = comparable_tables(database_contents(alias))
    pk = e.Tag.objects.using(alias).order_by("pk").first().pk

    def twice(label, rows):
        return (
            [*rows, dict(rows[0], name="a second row, same key")]
            if label == "edgecases.Tag"
            else rows
        )

    bad = rewrite_backup(edge_backup, edge_backup.with_name("twice.json"), order_rows=twice)
    if mode == "merge":
        e.Tag.objects.using(alias).filter(pk=pk).delete()
        before = comparable_tables(database_contents(alias))
    with pytest.raises(RestoreError) as raised:
        restore_database(prepare_restore(bad, using=alias), mode=mode)
    message = str(raised.value)
    assert (
        f"Restoring edgecases.Tag (table edgecases_tag) failed at the row with primary key {pk!r}: "
        in message
    )
    assert message.endswith(
        f"Rows already there are skipped (merge) or emptied (--replace), so the backup holds "
        f"primary key {pk!r} more than once (backupdb writes each key once: the file was edited "
        f"or damaged; use another backup), or another session wrote that key during the restore. "
        f"Nothing was changed: the restore was rolled back."
    )
    assert "under a different primary key" not in message and ".. " not in message
    assert comparable_tables(database_contents(alias)) == before
