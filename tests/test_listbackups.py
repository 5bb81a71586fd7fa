"""listbackups: what is in the folder, newest first, and whether each is whole."""

from __future__ import annotations

import os
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from dbtools.backup import backup_database
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
