"""listbackups: what is in the folder, newest first, and whether each is whole."""

from __future__ import annotations

import errno
import os
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from dbtools.backends import database_name
from dbtools.backup import backup_database
from dbtools.storage.catalog import list_backups, resolve_backup
from shop.seed import seed_shop
from tests.conftest import backends


def listing(*args: str) -> str:
    out = StringIO()
    call_command("listbackups", *args, stdout=out)
    return out.getvalue()


def test_empty_folder_says_how_to_make_a_backup(backup_dir):
    assert (
        listing()
        == f"No backups in {os.path.relpath(backup_dir)}. Make one with `manage.py backupdb`.\n"
    )


@backends("sqlite")
def test_newest_first_with_counts_and_latest_marked(alias, backup_dir):
    seed_shop(300, using=alias)
    older = backup_database(using=alias, only=["shop"])
    newer = backup_database(
        using=alias, compress=True, label="pre-migrate"
    )  # sorts by time, not name
    lines = listing().splitlines()
    entries = [line for line in lines if line.startswith("  db-backup-")]
    assert [e.split()[0] for e in entries] == [newer.path.name, older.path.name]
    assert entries[0].endswith("<- latest") and not entries[1].endswith("<- latest")
    assert f"{newer.rows:,} rows" in entries[0] and f"{len(older.tables)} tables" in entries[1]
    assert "      migrations: " in lines[2] and "shop 0001_initial" in lines[2]


@backends("sqlite")
def test_verify_marks_a_damaged_backup_and_fails(alias, backup_dir):
    seed_shop(300, using=alias)
    good = backup_database(using=alias)
    bad = backup_database(using=alias)
    bad.path.write_text(bad.path.read_text().replace('"Made to last. ', '"Made to lost. ', 1))
    out = StringIO()
    with pytest.raises(
        CommandError, match=r"1 backup\(s\) failed verification; do not restore from them\."
    ):
        call_command("listbackups", "--verify", stdout=out)
    text = out.getvalue()
    assert (
        f"{bad.path.name}" in text and "DAMAGED:" in text and "does not match its checksum" in text
    )
    assert f"{good.path.name}" in text and "verified" in text


def latest_line(text: str) -> str:
    return next(line for line in text.splitlines() if "<- latest" in line)


@backends("sqlite")
def test_latest_whose_timestamped_file_is_gone_is_listed_and_is_what_restoredb_restores(
    alias, backup_dir
):
    seed_shop(50, using=alias)
    result = backup_database(using=alias)
    result.path.unlink()
    latest = backup_dir / "db-backup-latest.json"
    assert resolve_backup(None) == latest
    text = listing()
    assert text.splitlines()[0] == f"Backups in {os.path.relpath(backup_dir)}, newest first:"
    line = latest_line(text)
    assert line.startswith("  db-backup-latest.json  ")
    assert line.endswith(
        f"{len(result.tables)} tables  {result.rows:,} rows  sqlite:{database_name(connections[alias])}"
        " <- latest (the timestamped backup it is a copy of is gone)"
    )
    assert [i.path for i in list_backups(backup_dir)] == [latest]


@backends("sqlite")
def test_latest_copied_where_there_are_no_hard_links_marks_its_backup(
    alias, backup_dir, monkeypatch
):
    def no_links(source, target):  # type: ignore[no-untyped-def]
        raise OSError(errno.EPERM, "no hard links here")

    seed_shop(50, using=alias)
    monkeypatch.setattr(os, "link", no_links)
    older = backup_database(using=alias)
    newer = backup_database(using=alias, keep=1)
    assert not older.path.exists()  # pruned: latest holds the newer one
    infos = list_backups(backup_dir)
    assert [(i.path, i.is_latest) for i in infos] == [(newer.path, True)]
    assert latest_line(listing()).split()[0] == newer.path.name
