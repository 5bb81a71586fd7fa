"""listbackups --drill: restore into a scratch database and compare, on every backend."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from dbtools.archive.envelope import identity_file
from dbtools.backup import backup_database
from dbtools.exceptions import DbtoolsError
from dbtools.restore.drill import drill
from shop.seed import seed_shop
from tests.conftest import backends
from tests.data import fill_edge_cases
from tests.helpers import comparable_tables, database_contents, resign
from tests.test_envelope import make_key
from tests.test_replay import own_scratch_databases


def test_a_good_backup_passes_table_by_table_and_the_scratch_is_dropped(alias, backup_dir):
    fill_edge_cases(alias)
    seed_shop(300, using=alias)
    before = comparable_tables(database_contents(alias))
    path = backup_database(using=alias).path

    result = drill(path, using=alias)

    assert result.ok and not result.replayed and not result.unproven
    assert {t.label for t in result.tables} >= {"shop.Product", "edgecases.AllTypes"}
    assert all(t.checksum == "match" and t.restored == t.in_backup for t in result.tables)
    assert sum(t.in_backup for t in result.tables) > 500
    assert (
        comparable_tables(database_contents(alias)) == before
    )  # the drill never touches the real database
    assert own_scratch_databases(alias) == []


@pytest.mark.parametrize("damage", ["another value", "a row twice"])
def test_a_backup_altered_and_re_signed_fails_the_drill(alias, backup_dir, tmp_path, damage):
    seed_shop(100, using=alias)
    good = backup_database(using=alias).path
    bad = tmp_path / "altered.json"
    lines = good.read_bytes().split(b"\n")
    if damage == "another value":
        # The first product's time written with another UTC offset: a valid value, but not
        # the bytes a restore of it gives back.
        start = next(i for i, line in enumerate(lines) if b'"label":"shop.Product"' in line)
        lines[start + 1] = lines[start + 1].replace(b'+00:00"', b'+01:00"', 1)
        expected = r"^Drill failed: shop\.Product did not come back"
    else:
        # A second copy of the first category row: the same primary key, another name.
        start = next(i for i, line in enumerate(lines) if b'"label":"shop.Category"' in line)
        lines.insert(start + 2, b"," + lines[start + 1].replace(b'"name":"', b'"name":"X', 1))
        expected = (
            r"^Drill failed: restoring altered\.json into a scratch .* database failed, so "
            r"restoredb would fail too: Restoring shop\.Category"
        )
    bad.write_bytes(b"\n".join(lines))
    resign(bad)

    with pytest.raises(CommandError, match=expected):
        call_command("listbackups", "--drill", str(bad), "--database", alias, verbosity=0)
    assert own_scratch_databases(alias) == []


@backends("sqlite", "postgresql")
def test_the_command_prints_each_table_and_the_restore_time(alias, backup_dir, capsys):
    seed_shop(50, using=alias)
    backup_database(using=alias)
    call_command("listbackups", "--drill", "--database", alias)
    out = capsys.readouterr().out
    assert "Drill: restored db-backup-latest.json into a scratch " in out
    assert "; the scratch database is dropped." in out
    assert "  shop.Product  " in out and "  match" in out
    assert "Drill passed: " in out and "each table's checksum matches the backup's." in out


@backends("sqlite")
def test_an_encrypted_backup_drills_with_its_identity(alias, backup_dir, settings, tmp_path):
    key = make_key(tmp_path)
    settings.DBTOOLS = {**settings.DBTOOLS, "ENCRYPT_TO": [key.public]}
    seed_shop(50, using=alias)
    path = backup_database(using=alias).path
    with pytest.raises(DbtoolsError, match="is encrypted with age and no identity was given"):
        drill(path, using=alias)
    with identity_file(key.identity):
        assert drill(path, using=alias).ok


@backends("sqlite")
def test_drill_finds_its_backup_in_the_listed_folder_and_says_when_there_is_none(
    alias, backup_dir, tmp_path, capsys
):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(
        CommandError,
        match=r"There is no backup to restore in .*empty \(no db-backup-latest\.json\)\. Make one with `manage\.py backupdb`, or name a file with --drill NAME\.",
    ):
        call_command("listbackups", "--folder", str(empty), "--drill", "--database", alias)
    with pytest.raises(
        CommandError,
        match=r"^Backup file nope\.json was not found \(looked in the current folder and in .*empty\)\.",
    ):
        call_command("listbackups", "--folder", str(empty), "--drill", "nope.json")
    seed_shop(20, using=alias)
    elsewhere = tmp_path / "elsewhere"
    backup_database(using=alias, output=elsewhere)
    call_command("listbackups", "--folder", str(elsewhere), "--drill", "--database", alias)
    assert "Drill passed: " in capsys.readouterr().out


@backends("sqlite")
def test_a_table_whose_columns_changed_is_compared_by_count_and_said_so(
    alias, backup_dir, tmp_path, capsys
):
    seed_shop(20, using=alias)
    good = backup_database(using=alias).path
    # As if the backup had been taken before a column was added: drop it from the file.
    from tests.helpers import rewrite_backup

    def without_featured(meta):  # type: ignore[no-untyped-def]
        if meta["label"] == "shop.Product":
            meta = {**meta, "columns": [c for c in meta["columns"] if c["name"] != "featured"]}
        return meta

    def row_without_featured(label, row):  # type: ignore[no-untyped-def]
        if label == "shop.Product":
            row.pop("featured")
        return row

    older = rewrite_backup(
        good,
        tmp_path / "older.json",
        change_row=row_without_featured,
        change_table=without_featured,
    )
    result = drill(older, using=alias)
    product = next(t for t in result.tables if t.label == "shop.Product")
    assert product.checksum == "not comparable: the table's columns changed since the backup"
    assert product.ok and product.restored == product.in_backup > 0
    call_command("listbackups", "--drill", str(older), "--database", alias)
    out = capsys.readouterr().out
    assert "Drill passed on row counts: " in out and "could not be compared value for value" in out


@backends("sqlite")
def test_verify_skips_encrypted_backups_it_cannot_open_and_still_drills(
    alias, backup_dir, settings, tmp_path
):
    seed_shop(30, using=alias)
    plain = dict(settings.DBTOOLS)
    settings.DBTOOLS = {**plain, "ENCRYPT_TO": [make_key(tmp_path).public]}
    sealed = backup_database(using=alias)
    settings.DBTOOLS = plain
    backup_database(using=alias)  # plain, and latest: what the drill restores
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as raised:
        call_command(
            "listbackups", "--verify", "--drill", "--database", alias, stdout=out, stderr=err
        )
    assert str(raised.value) == (
        "1 encrypted backup(s) could not be verified without their identity; run again with "
        "--identity FILE (or set DBTOOLS['IDENTITY'])."
    )
    assert err.getvalue() == (
        f"WARNING: not verified: {sealed.path.name} (encrypted, and no identity was given to "
        f"open it). The drill goes on.\n"
    )
    assert "Drill: restored db-backup-latest.json into a scratch " in out.getvalue()
    assert "Drill passed: " in out.getvalue()
