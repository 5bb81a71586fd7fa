"""restoredb: exact, atomic, in dependency order, on every backend."""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import warnings
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from django.core.management.color import no_style
from django.core.management.sql import emit_post_migrate_signal
from django.db import connections
from hypothesis import given, settings
from hypothesis import strategies as st

from dbtools.backends import backend_for
from dbtools.backup import backup_database
from dbtools.exceptions import ArchiveError, RestoreError
from dbtools.restore import prepare_restore, restore_database
from shop import models as m
from shop.seed import seed_shop
from tests.conftest import backends, run_manage
from tests.data import fill_edge_cases
from tests.edgecases import models as e
from tests.helpers import (
    comparable_tables,
    database_contents,
    read_backup,
    rewrite_backup,
    without_column,
)


def by_pk(tables):
    return {
        label: sorted(rows, key=lambda row: str(next(iter(row.values()))))
        for label, rows in tables.items()
    }


def restore(path: Path | None, alias: str, mode: str = "merge", **kwargs):
    return restore_database(prepare_restore(path, using=alias, **kwargs), mode=mode)


def fill_permissions(alias: str) -> None:
    group = Group.objects.using(alias).create(name="editors")
    product_type = ContentType.objects.db_manager(alias).get_for_model(m.Product)
    perms = Permission.objects.using(alias).filter(content_type=product_type)
    group.permissions.set(perms)
    user = m.User.objects.using(alias).first()
    user.user_permissions.set(Permission.objects.using(alias).filter(codename="view_order"))
    user.groups.add(group)


def renumber_content_types(alias: str, beyond: int) -> None:
    """What a fresh database migrated in another order looks like: other ids,
    all above `beyond`."""
    connection = connections[alias]
    with connection.constraint_checks_disabled():
        Permission.objects.using(alias).all().delete()
        ContentType.objects.using(alias).all().delete()
    ContentType.objects.clear_cache()
    # A row above `beyond` moves SQLite's and MariaDB's counters past it, and
    # PostgreSQL's sequence is set from it: a flush resets them all, so new
    # ids could otherwise start at 1 again.
    marker = ContentType.objects.using(alias).create(
        id=beyond + 1, app_label="tests", model="id_marker"
    )
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), [ContentType]):
            cursor.execute(sql)
    emit_post_migrate_signal(verbosity=0, interactive=False, db=alias)
    marker.delete()


def wipe(alias: str) -> None:
    call_command("flush", database=alias, interactive=False, verbosity=0)


def test_replace_round_trip_is_exact_for_every_table(alias, backup_dir):
    fill_edge_cases(alias)
    seed_shop(1_000, using=alias)
    fill_permissions(alias)
    backup = backup_database(using=alias)
    expected = comparable_tables(read_backup(backup.path))
    # Damage everything a data script could: updates, deletes, inserts.
    m.Product.objects.using(alias).update(price=0)
    m.OrderItem.objects.using(alias).filter(pk__lte=100).delete()
    m.Category.objects.using(alias).create(name="Extra", slug="extra")
    e.Node.objects.using(alias).update(parent=None)

    result = restore(None, alias, mode="replace")

    assert comparable_tables(database_contents(alias)) == expected
    assert result.inserted == sum(len(rows) for rows in expected.values())
    assert e.Rectangle.objects.using(alias).get().area == 12  # generated, recomputed
    # Sequences are past the restored ids, many-to-many tables included.
    m.Category.objects.using(alias).create(name="After", slug="after")
    e.Tag.objects.using(alias).create(name="after").articles.add(
        e.Article.objects.using(alias).first()
    )
    e.ItalianRestaurant.objects.using(alias).create(name="After")
    e.SmallAutoThing.objects.using(alias).create(name="after")


def test_merge_into_a_flushed_database_with_other_content_type_ids(alias, backup_dir):
    fill_edge_cases(alias)
    seed_shop(500, using=alias)
    fill_permissions(alias)
    backup = backup_database(using=alias)
    before = comparable_tables(read_backup(backup.path))
    wipe(alias)
    renumber_content_types(alias, beyond=max(r["id"] for r in before["contenttypes.ContentType"]))
    assert set(ContentType.objects.using(alias).values_list("id", flat=True)).isdisjoint(
        r["id"] for r in before["contenttypes.ContentType"]
    )

    result = restore(backup.path, alias)

    after = comparable_tables(database_contents(alias))
    untouched = {"contenttypes.ContentType", "auth.Permission", "auth.Group_permissions",
                 "shop.User_user_permissions", "edgecases.Comment"}  # fmt: skip
    assert {k: v for k, v in after.items() if k not in untouched} == {
        k: v for k, v in before.items() if k not in untouched
    }
    # Every reference to a content type or permission still means the same model.
    comments = {c.body: type(c.content_object) for c in e.Comment.objects.using(alias).all()}
    assert comments == {"Nice": e.Article, "Classic": e.Book}
    group = Group.objects.using(alias).get(name="editors")
    assert {p.codename for p in group.permissions.all()} == {
        "add_product", "change_product", "delete_product", "view_product"
    }  # fmt: skip
    user = m.User.objects.using(alias).filter(user_permissions__isnull=False).get()
    assert [p.codename for p in user.user_permissions.all()] == ["view_order"]
    receipt = {t.label: t for t in result.tables}
    assert receipt["contenttypes.ContentType"].inserted == 0
    assert "re-pointed" in receipt["contenttypes.ContentType"].note


def test_merge_leaves_existing_rows_and_inserts_missing_ones(alias, backup_dir):
    seed_shop(500, using=alias)
    backup = backup_database(using=alias)
    m.Product.objects.using(alias).update(name="changed after the backup")
    deleted = list(
        m.UserActivity.objects.using(alias).order_by("pk").values_list("pk", flat=True)[:25]
    )
    m.UserActivity.objects.using(alias).filter(pk__in=deleted).delete()

    result = restore(backup.path, alias, only=["shop"])

    receipt = {t.label: t for t in result.tables}
    assert receipt["shop.UserActivity"].inserted == 25
    assert receipt["shop.UserActivity"].skipped == receipt["shop.UserActivity"].in_backup - 25
    assert receipt["shop.Product"].inserted == 0
    assert set(m.Product.objects.using(alias).values_list("name", flat=True)) == {
        "changed after the backup"
    }
    assert set(deleted) <= set(m.UserActivity.objects.using(alias).values_list("pk", flat=True))
    assert all(t.label.startswith("shop.") for t in result.tables)


def test_auto_now_values_come_back_as_they_were(alias, backup_dir):
    fill_edge_cases(alias)
    backup = backup_database(using=alias, only=["edgecases.TimestampedNote"])
    wipe(alias)
    restore(backup.path, alias)
    note = e.TimestampedNote.objects.using(alias).get()
    long_ago = datetime.datetime(2001, 2, 3, 4, 5, 6, 789012, tzinfo=datetime.UTC)
    assert (note.created, note.modified) == (long_ago, long_ago)


def test_another_unique_value_is_an_error_not_a_skip(alias, backup_dir):
    e.UniqueEmail.objects.using(alias).create(id=1, email="a@example.com", nickname="a")
    backup = backup_database(using=alias, only=["edgecases.UniqueEmail"])
    e.UniqueEmail.objects.using(alias).all().delete()
    e.UniqueEmail.objects.using(alias).create(id=2, email="a@example.com", nickname="b")
    with pytest.raises(RestoreError) as caught:
        restore(backup.path, alias)
    message = str(caught.value)
    assert message.startswith(
        "Restoring edgecases.UniqueEmail (table edgecases_uniqueemail) failed at the row with primary key 1:"
    )
    assert "`manage.py diffdb --only edgecases.UniqueEmail --rows 20`" in message
    assert message.endswith("Nothing was changed: the restore was rolled back.")
    assert list(e.UniqueEmail.objects.using(alias).values_list("id", "nickname")) == [(2, "b")]


@pytest.mark.parametrize("mode", ["merge", "overwrite"])
def test_error_for_a_unique_clash_never_shows_a_sensitive_value(alias, backup_dir, settings, mode):
    secret = "secret-4711@example.com"
    settings.DBTOOLS = {**settings.DBTOOLS, "SENSITIVE_FIELDS": ["edgecases.UniqueEmail.email"]}
    e.UniqueEmail.objects.using(alias).create(id=1, email=secret, nickname="a")
    e.UniqueEmail.objects.using(alias).create(id=3, email="other@example.com", nickname="c")
    backup_database(using=alias, only=["edgecases.UniqueEmail"])
    e.UniqueEmail.objects.using(alias).filter(id=1).delete()
    e.UniqueEmail.objects.using(alias).create(id=5, email=secret, nickname="e")
    options = ["--overwrite"] if mode == "overwrite" else []

    with pytest.raises(RestoreError) as caught:
        restore(None, alias, mode, only=["edgecases.UniqueEmail"])
    with pytest.raises(CommandError) as command:
        call_command("restoredb", "--database", alias, "--no-input", *options, stdout=StringIO())

    for message in (str(caught.value), str(command.value)):
        assert message.startswith(
            "Restoring edgecases.UniqueEmail (table edgecases_uniqueemail) failed at the row with "
            "primary key 1: "
        )
        assert secret not in message and "secret-4711" not in message
        assert (
            " Its row values are not shown: DBTOOLS['SENSITIVE_FIELDS'] lists fields of the tables "
            "restored. The row with primary key 5 holds its email now. Another row already holds "
            "that unique value"
        ) in message


def broken_copy(backup: Path, label: str, change) -> Path:
    def change_row(table_label, row):
        return change(row) if table_label == label else row

    return rewrite_backup(backup, backup.with_name("broken.json"), change_row=change_row)


@backends("postgresql", "mariadb")  # SQLite does not enforce max_length
def test_too_long_string_fails_instead_of_being_truncated(alias, backup_dir):
    e.UniqueEmail.objects.using(alias).create(id=1, email="a@example.com", nickname="a")
    backup = backup_database(using=alias, only=["edgecases"]).path
    broken = broken_copy(
        backup, "edgecases.UniqueEmail", lambda row: {**row, "nickname": "much too long"}
    )
    wipe(alias)
    with pytest.raises(
        RestoreError, match=r"edgecases.UniqueEmail .* primary key 1: .*(too long|Data too long)"
    ):
        restore(broken, alias)
    assert not e.UniqueEmail.objects.using(alias).exists()


def test_null_in_a_required_column_fails_instead_of_becoming_empty(alias, backup_dir):
    e.UniqueEmail.objects.using(alias).create(id=1, email="a@example.com", nickname="a")
    backup = backup_database(using=alias, only=["edgecases"]).path
    broken = broken_copy(backup, "edgecases.UniqueEmail", lambda row: {**row, "nickname": None})
    wipe(alias)
    with pytest.raises(
        RestoreError, match=r"(?i)primary key 1: .*null.* The column is required now"
    ):
        restore(broken, alias)
    assert not e.UniqueEmail.objects.using(alias).exists()


def test_foreign_key_to_nowhere_fails_and_names_the_row(alias, backup_dir):
    fill_edge_cases(alias)
    # A comment points at a content type, which the flush below removes and an
    # edgecases backup does not hold: its own failure would come first.
    e.Comment.objects.using(alias).all().delete()
    backup = backup_database(using=alias, only=["edgecases"]).path
    broken = broken_copy(backup, "edgecases.Book", lambda row: {**row, "author": 424242})
    wipe(alias)
    with pytest.raises(
        RestoreError, match=r"foreign key points at a row that does not exist: .*424242"
    ):
        restore(broken, alias)
    assert not e.Book.objects.using(alias).exists()


def test_error_in_the_last_row_of_the_last_table_changes_nothing(alias, backup_dir):
    fill_edge_cases(alias)
    seed_shop(500, using=alias)
    backup = backup_database(using=alias)
    document = json.loads(backup.path.read_text())
    last = [t for t in document["tables"] if t["rows"]][-1]
    label, pk_name = last["table"]["label"], last["table"]["pk"][0]
    required = next(
        c["name"] for c in last["table"]["columns"] if not c["null"] and c["name"] != pk_name
    )
    last_pk = last["rows"][-1][pk_name]
    broken = broken_copy(
        backup.path, label, lambda row: {**row, required: None} if row[pk_name] == last_pk else row
    )
    # Make merge mode insert the broken row too: it must be missing here.
    apps.get_model(label)._base_manager.using(alias).all().delete()
    m.UserActivity.objects.using(alias).filter(pk__gt=10).delete()
    m.Product.objects.using(alias).update(price=1)
    before = comparable_tables(database_contents(alias))
    for mode in ("merge", "replace"):
        with pytest.raises(RestoreError, match=rf"{label} .*primary key {last_pk!r}:"):
            restore(broken, alias, mode=mode)
        assert comparable_tables(database_contents(alias)) == before


@backends("mariadb")
def test_explicit_id_zero_is_kept_on_mariadb(alias, backup_dir):
    e.SmallAutoThing.objects.using(alias).create(id=5, name="five")
    backup = backup_database(using=alias, only=["edgecases.SmallAutoThing"]).path
    zero = broken_copy(backup, "edgecases.SmallAutoThing", lambda row: {**row, "id": 0})
    wipe(alias)
    restore(zero, alias)
    assert list(e.SmallAutoThing.objects.using(alias).values_list("id", "name")) == [(0, "five")]


def test_columns_added_or_removed_since_the_backup(alias, backup_dir):
    seed_shop(300, using=alias)
    backup = backup_database(using=alias, only=["shop.Product"]).path

    def older_schema(meta):
        dropped = {"is_active", "featured"}  # fields "added" after the backup
        meta["columns"] = [c for c in meta["columns"] if c["name"] not in dropped]
        meta["columns"].append({"name": "legacy_code", "attname": "legacy_code", "column": "legacy_code",
                                "type": "CharField", "kind": "str", "null": False})  # fmt: skip
        return meta

    def older_row(label, row):
        row = {k: v for k, v in row.items() if k not in {"is_active", "featured"}}
        return {**row, "legacy_code": "X"}

    old = rewrite_backup(
        backup, backup.with_name("old.json"), change_row=older_row, change_table=older_schema
    )
    wipe(alias)
    result = restore(old, alias)
    assert result.tables[0].note == "not in the model any more: legacy_code"
    assert set(m.Product.objects.using(alias).values_list("is_active", "featured")) == {
        (True, False)
    }


def test_a_required_field_missing_from_the_backup_stops_before_writing(alias, backup_dir):
    seed_shop(300, using=alias)
    backup = backup_database(using=alias, only=["shop.Product"]).path

    old = without_column(backup, "slug")
    with pytest.raises(
        RestoreError,
        match=r"^The restore cannot go on \(1 problem\(s\)\); nothing was changed\.\n"
        r"  - shop.Product.slug is required now and has no default, but the backup",
    ):
        prepare_restore(old, using=alias)


def test_a_primary_key_with_a_default_the_backup_has_no_values_for_stops_before_writing(
    alias, backup_dir
):
    """A key that was another column at the backup (Address.id a UUID with a
    default now): taking the default would give every row a new key, so a merge
    would write each row again beside the one already there."""
    seed_shop(20, using=alias)
    backup = backup_database(using=alias, only=["shop.Address"]).path

    def keyed_by_number(meta):
        for column in meta["columns"]:
            if column["name"] == "id":
                column.update(name="number", attname="number", column="number")
        meta["pk"] = ["number"]
        return meta

    def numbered(label, row):
        row = dict(row)
        row["number"] = row.pop("id")
        return row

    old = rewrite_backup(
        backup, backup.with_name("old.json"), change_row=numbered, change_table=keyed_by_number
    )
    before = m.Address.objects.using(alias).count()
    with pytest.raises(RestoreError) as caught:
        restore(old, alias)
    assert str(caught.value).splitlines()[1] == (
        "  - shop.Address.id is the primary key now, but the backup has no values for it (its "
        "primary key was number): the primary key changed since the backup, so the backup's "
        "rows cannot be matched with the table's. Restore into the schema the backup came from."
    )
    assert m.Address.objects.using(alias).count() == before


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda text: text[: len(text) // 2], r"is truncated after line \d+"),
        (
            lambda text: text.replace('"name":"red"', '"name":"RED"'),
            r"table edgecases.Tag does not match its checksum",
        ),
        (
            lambda text: text.replace('"version":1', '"version":99', 1),
            r"is format version 99; this dbtools reads version 1",
        ),
        (lambda text: "this is not json\n", r"is not a dbtools backup"),
        (lambda text: "", r"is empty; it is not a backup"),
        (
            lambda text: '[{"model": "shop.user", "pk": 1, "fields": {}}]',
            r"looks like a `dumpdata` file",
        ),
    ],
    ids=["truncated", "edited", "wrong-version", "not-json", "empty", "dumpdata"],
)
def test_bad_files_are_refused_before_anything_is_written(alias, backup_dir, damage, message):
    fill_edge_cases(alias)
    backup = backup_database(using=alias, only=["edgecases"]).path
    bad = backup.with_name("bad.json")
    bad.write_text(damage(backup.read_text()))
    e.Tag.objects.using(alias).all().delete()
    with pytest.raises(ArchiveError, match=message):
        prepare_restore(bad, using=alias)
    assert not e.Tag.objects.using(alias).exists()


def test_missing_file_is_a_clear_error(alias, backup_dir):
    with pytest.raises(
        CommandError,
        match=r"^There is no backup to restore in .* Make one with `manage.py backupdb`",
    ):
        call_command("restoredb", "--database", alias, "--no-input")
    with pytest.raises(CommandError, match=r"^Backup file nope.json was not found"):
        call_command("restoredb", "--database", alias, "--file", "nope.json", "--no-input")


def test_dry_run_prints_the_receipt_and_changes_nothing(alias, backup_dir):
    seed_shop(300, using=alias)
    backup_database(using=alias)
    wipe(alias)
    out = StringIO()
    call_command("restoredb", "--database", alias, "--no-input", "--dry-run", stdout=out)
    assert "Dry run: rolled back; the database is unchanged." in out.getvalue()
    assert "shop.UserActivity" in out.getvalue()
    assert not m.User.objects.using(alias).exists()


def test_prompt_names_the_target_and_only_yes_restores(alias, backup_dir):
    seed_shop(300, using=alias)
    backup_database(using=alias)
    wipe(alias)
    env = {"DBTOOLS_TESTS_BACKUP_DIR": str(backup_dir)}
    refused = run_manage("restoredb", "--database", alias, env=env, input="no\n")
    assert refused.returncode == 0, refused.stderr
    vendor = {"default": "SQLite", "postgresql": "PostgreSQL", "mariadb": "MySQL/MariaDB"}[alias]
    assert f"Into:   {vendor} database" in refused.stdout
    assert "Mode:   merge: insert the rows whose primary key is missing" in refused.stdout
    assert "Restore cancelled; nothing was changed." in refused.stdout
    assert not m.User.objects.using(alias).exists()
    accepted = run_manage("restoredb", "--database", alias, "--replace", env=env, input="yes\n")
    assert accepted.returncode == 0, accepted.stderr
    assert "Mode:   REPLACE" in accepted.stdout and "tables match the backup." in accepted.stdout
    assert m.User.objects.using(alias).count() == 6


CROSS = [
    ("postgresql", "default"),
    ("postgresql", "mariadb"),
    ("mariadb", "postgresql"),
    ("default", "postgresql"),
]


@pytest.mark.parametrize(("source", "target"), CROSS, ids=[f"{s}-to-{t}" for s, t in CROSS])
@pytest.mark.django_db(transaction=True, databases="__all__")
def test_backup_from_one_backend_restores_into_another(source, target, backup_dir):
    from tests.conftest import BACKENDS, missing_reason

    for alias in (source, target):
        reason = missing_reason(next(b for b, a in BACKENDS.items() if a == alias))
        if reason:
            pytest.skip(reason)
    seed_shop(1_000, using=source)
    backup = backup_database(using=source, only=["shop"])
    restore(backup.path, target, mode="replace", only=["shop"])
    expected = read_backup(backup.path)
    # Compared as sets of rows: MariaDB orders native UUIDs differently from the others.
    assert by_pk(comparable_tables(database_contents(target, list(expected)))) == by_pk(
        comparable_tables(expected)
    )


@backends("postgresql")
@pytest.mark.django_db(transaction=True, databases="__all__")
def test_values_sqlite_cannot_hold_are_reported(alias, backup_dir):
    e.AllTypes.objects.using(alias).create(id=7, decimal="12345678901234567890.1234567890")
    backup = backup_database(using=alias, only=["edgecases.AllTypes"]).path
    with pytest.raises(
        RestoreError, match=r"row with primary key 7: decimal = .* more than 15 significant digits"
    ):
        restore(backup, "default")
    assert not e.AllTypes.objects.using("default").exists()


@backends("postgresql")
@pytest.mark.django_db(transaction=True, databases="__all__")
@pytest.mark.parametrize("target", ["default", "mariadb"])
def test_a_decimal_django_does_not_save_names_its_row(alias, backup_dir, target):
    e.AllTypes.objects.using(alias).create(id=7, decimal="1.5")
    with connections[alias].cursor() as cursor:
        cursor.execute("UPDATE edgecases_alltypes SET decimal = 'NaN'")
    backup = backup_database(using=alias, only=["edgecases.AllTypes"]).path
    with pytest.raises(
        RestoreError,
        match=r"failed at the row with primary key 7: “NaN” value must be a decimal number\. "
        r"Django's field refuses that value whatever the database",
    ):
        restore(backup, target)
    assert not e.AllTypes.objects.using(target).exists()


def decimal_was(alias: str, field_type: str, kind: str, value: object) -> Path:
    """A backup of one AllTypes row (id 7) whose decimal column was a `field_type`
    (`kind`) holding `value`, as one taken before the column became a decimal;
    the table is then emptied."""
    e.AllTypes.objects.using(alias).create(id=7, decimal="1.5")
    backup = backup_database(using=alias, only=["edgecases.AllTypes"]).path

    def older_schema(meta):
        for column in meta["columns"]:
            if column["name"] == "decimal":
                column.update(type=field_type, kind=kind)
        return meta

    older = rewrite_backup(
        backup, backup.with_name("older.json"), change_table=older_schema,
        change_row=lambda label, row: {**row, "decimal": value},
    )  # fmt: skip
    e.AllTypes.objects.using(alias).all().delete()
    return older


@backends("sqlite")
@pytest.mark.django_db(transaction=True, databases="__all__")
@pytest.mark.parametrize("mode", ["merge", "replace"])
def test_a_column_now_decimal_is_checked_for_what_sqlite_keeps(alias, backup_dir, mode):
    older = decimal_was(alias, "CharField", "str", "12345678901234567890.1234567890")
    with pytest.raises(
        RestoreError, match=r"row with primary key 7: decimal = .* more than 15 significant digits"
    ):
        restore(older, alias, mode=mode)
    assert not e.AllTypes.objects.using(alias).exists()


@backends("sqlite")
@pytest.mark.django_db(transaction=True, databases="__all__")
@pytest.mark.parametrize("mode", ["merge", "replace"])
def test_a_float_column_now_decimal_keeps_its_values_on_sqlite(alias, backup_dir, mode):
    """19.99 as a float makes Decimal('19.98999…84') (30 digits); what SQLite
    stores and Django reads back is 19.99, to the field's places: no refusal."""
    older = decimal_was(alias, "FloatField", "float", 19.99)
    restore(older, alias, mode=mode)
    assert e.AllTypes.objects.using(alias).get().decimal == Decimal("19.99")


@backends("sqlite")
@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_set_decimal_sqlite_cannot_keep_is_refused_before_writing(alias, backup_dir):
    e.AllTypes.objects.using(alias).create(id=7)
    backup = backup_database(using=alias, only=["edgecases.AllTypes"]).path

    older = without_column(backup, "decimal")
    with pytest.raises(
        RestoreError,
        match=r"  - --set edgecases.AllTypes.decimal=1234567890123456.5: has more than 15 significant digits, "
        r"which SQLite cannot store exactly",
    ):
        prepare_restore(
            older, using=alias, set_values=["edgecases.AllTypes.decimal=1234567890123456.5"]
        )
    plan = prepare_restore(older, using=alias, set_values=["edgecases.AllTypes.decimal=12.5"])
    plan.close()


@backends("sqlite")
@pytest.mark.django_db(transaction=True, databases="__all__")
@pytest.mark.parametrize(
    "given, message",
    [
        ("1.12345678901234567", "Ensure that there are no more than 10 decimal places."),
        ("123456789012345678901", "Ensure that there are no more than 20 digits before the"),
    ],
)
def test_a_set_value_its_field_does_not_hold_is_refused(alias, backup_dir, given, message):
    """Not rounded or cut to fit, on any database: Django's own validators say why."""
    e.AllTypes.objects.using(alias).create(id=7)
    backup = backup_database(using=alias, only=["edgecases.AllTypes"]).path
    older = without_column(backup, "decimal")
    with pytest.raises(
        RestoreError, match=rf"  - --set edgecases.AllTypes.decimal={given}: {re.escape(message)}"
    ):
        prepare_restore(older, using=alias, set_values=[f"edgecases.AllTypes.decimal={given}"])


@backends("sqlite")
@pytest.mark.django_db(transaction=True, databases="__all__")
@pytest.mark.parametrize(
    "field_type, kind, value, read_back, stored",
    [
        # A float's exact value ties at the tenth place: half to even on reading
        # it back, half away from zero in PostgreSQL and MariaDB.
        ("FloatField", "float", 0.00048828125, "0.0004882812", "0.0004882813"),
        # More places than the field: rounded to 15 digits, then to the places.
        ("DecimalField", "decimal", "0.1234567891499999", "0.1234567892", "0.1234567891"),
    ],
)
def test_a_decimal_sqlite_would_read_back_rounded_otherwise_is_refused(
    alias, backup_dir, field_type, kind, value, read_back, stored
):
    older = decimal_was(alias, field_type, kind, value)
    with pytest.raises(
        RestoreError,
        match=rf"row with primary key 7: decimal = .* would read back as {read_back}, "
        rf"not {stored} as PostgreSQL and MariaDB store it",
    ):
        restore(older, alias)
    assert not e.AllTypes.objects.using(alias).exists()


@backends("sqlite")
@pytest.mark.django_db(transaction=True, databases="__all__")
def test_nul_characters_into_postgresql_are_reported(alias, backup_dir):
    from tests.conftest import missing_reason

    if missing_reason("postgresql"):
        pytest.skip(missing_reason("postgresql"))
    e.UniqueEmail.objects.using(alias).create(id=3, email="nul\x00@example.com", nickname="n")
    backup = backup_database(using=alias, only=["edgecases.UniqueEmail"]).path
    with pytest.raises(RestoreError, match=r"primary key 3: .*NUL"):
        restore(backup, "postgresql")
    assert not e.UniqueEmail.objects.using("postgresql").exists()


def test_receipt_and_json_of_the_command(alias, backup_dir):
    seed_shop(300, using=alias)
    backup_database(using=alias)
    out = StringIO()
    call_command("restoredb", "--database", alias, "--no-input", stdout=out)
    lines = out.getvalue().splitlines()
    assert any(line.split()[:2] == ["table", "in"] for line in lines)
    total = next(line for line in lines if line.strip().startswith("total"))
    assert total.split()[3] == total.split()[1]  # everything skipped: it was all there
    assert (
        lines[-1].startswith("Restored 0 rows into")
        and "already present and left as they were" in lines[-1]
    )


def test_a_merge_says_first_which_rows_of_the_backup_it_will_skip(alias, backup_dir):
    """Rows already there under the backup's keys (a migration's own rows, say)
    keep the database's version in a merge: the pre-flight report names them."""
    seed_shop(40, using=alias)
    backup = backup_database(using=alias).path
    subscribers = m.NewsletterSubscriber.objects.using(alias)
    kept = sorted(subscribers.values_list("id", flat=True))[:2]
    subscribers.exclude(id__in=kept).delete()
    subscribers.filter(id=kept[0]).update(email="changed@example.com")
    m.UserActivity.objects.using(alias).all().delete()
    products = set(m.Product.objects.using(alias).values_list("id", flat=True))

    plan = prepare_restore(backup, using=alias)
    try:
        overlap = plan.rows_already_there()
        counted = {t.label: (t.rows, t.keys) for t in overlap.tables}
        assert counted["shop.NewsletterSubscriber"] == (2, kept)
        assert "shop.UserActivity" not in counted  # emptied: every row of the backup goes in
        rows, keys = counted["shop.Product"]  # keys in the backup's order
        assert rows == len(products) and set(keys) <= products and len(keys) == min(5, rows)
        assert overlap.unchecked == []
        assert plan.rows_already_there(most=len(products) - 1).unchecked.count("shop.Product") == 1
    finally:
        plan.close()

    out = StringIO()
    call_command("restoredb", "--database", alias, "--no-input", stdout=out)
    lines = out.getvalue().splitlines()
    start = lines.index(
        "Already in this database under the same primary key, so the merge skips the backup's "
        "version of these rows (rows a migration made have such keys, often):"
    )
    assert f"  shop.NewsletterSubscriber: 2 (primary key {kept[0]}, {kept[1]})" in lines[start:]
    assert any(line.startswith(f"  shop.Product: {len(products)} (primary key ") for line in lines)
    assert not any(line.startswith("  shop.UserActivity:") for line in lines[start:])
    assert subscribers.get(id=kept[0]).email == "changed@example.com"  # the database's version


def test_replace_never_empties_a_table_the_backup_does_not_cover(alias, backup_dir):
    """A table left out of the backup (--only, --exclude, DBTOOLS['EXCLUDE']) or
    made since is not the backup's to empty: --replace leaves it as it is."""
    seed_shop(300, using=alias)
    backup = backup_database(using=alias, only=["shop.Product"]).path
    e.Tag.objects.using(alias).create(name="made after the backup")
    out = StringIO()
    call_command(
        "restoredb", "--database", alias, "--file", str(backup), "--replace", "--only", "shop.Product",
        "--only", "edgecases.Tag", "--no-input", stdout=out,
    )  # fmt: skip
    assert "Not in the backup, so left as they are: edgecases.Tag" in out.getvalue()
    assert "edgecases.Tag" not in out.getvalue().split("Mode:")[1].split("\n", 2)[2]
    assert list(e.Tag.objects.using(alias).values_list("name", flat=True)) == [
        "made after the backup"
    ]
    assert "The row count of this table matches the backup." in out.getvalue()


def test_replace_of_a_partial_backup_keeps_every_other_table(alias, backup_dir):
    seed_shop(300, using=alias)
    fill_edge_cases(alias)
    before = comparable_tables(database_contents(alias))
    backup = backup_database(using=alias, exclude=["edgecases"]).path
    m.Product.objects.using(alias).update(price=0)

    restore(backup, alias, mode="replace")

    assert comparable_tables(database_contents(alias)) == before


def outside_table(alias: str, rule: str) -> str:
    """A table the ORM does not know, whose foreign key into edgecases.Tag has a
    database-level ON DELETE rule (what Django 6.1's DB_CASCADE/DB_SET_NULL make)."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    name = f"dbtools_outside_{rule.split()[-1].lower()}"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {quote(name)} (id integer PRIMARY KEY, tag_id bigint NULL, "
            f"FOREIGN KEY (tag_id) REFERENCES {quote(e.Tag._meta.db_table)} (id) ON DELETE {rule})"
        )
        for tag in e.Tag.objects.using(alias).all():
            cursor.execute(f"INSERT INTO {quote(name)} VALUES (%s, %s)", [tag.pk, tag.pk])
    return name


@pytest.mark.parametrize("rule", ["CASCADE", "SET NULL"])
def test_replace_refuses_when_emptying_would_cascade_outside_its_scope(alias, backup_dir, rule):
    fill_edge_cases(alias)
    backup = backup_database(using=alias, only=["edgecases.Tag"]).path
    name = outside_table(alias, rule)
    quote = connections[alias].ops.quote_name
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute(f"SELECT id, tag_id FROM {quote(name)} ORDER BY id")
            rows_before = cursor.fetchall()
        tags_before = comparable_tables(database_contents(alias, ["edgecases.Tag"]))
        if connections[alias].vendor == "mysql":
            # FOREIGN_KEY_CHECKS=0 during the load also stops InnoDB's cascades:
            # the outside table is never reached there.
            restore(backup, alias, mode="replace")
        else:
            with pytest.raises(RestoreError) as raised:
                restore(backup, alias, mode="replace")
            assert str(raised.value) == (
                f"Emptying edgecases.Tag for --replace changed table {name}, which this restore does not "
                f"cover: {len(rows_before)} of its rows lost their reference in column tag_id (a "
                f"database-level ON DELETE CASCADE or SET NULL). Restore {name}'s model too (add it to "
                f"--only), or restore without --replace. Nothing was changed: the restore was rolled back."
            )
        with connections[alias].cursor() as cursor:
            cursor.execute(f"SELECT id, tag_id FROM {quote(name)} ORDER BY id")
            assert cursor.fetchall() == rows_before
        assert comparable_tables(database_contents(alias, ["edgecases.Tag"])) == tags_before
    finally:
        with connections[alias].cursor() as cursor:
            cursor.execute(f"DROP TABLE {quote(name)}")


@backends("postgresql")
def test_dry_run_leaves_sequences_where_they_were(alias, backup_dir):
    fill_edge_cases(alias)
    backup = backup_database(using=alias, only=["edgecases.Tag"]).path
    for i in range(5):
        e.Tag.objects.using(alias).create(name=f"later {i}")
    highest = e.Tag.objects.using(alias).order_by("-pk").first().pk

    out = StringIO()
    call_command(
        "restoredb", "--database", alias, "--file", str(backup), "--replace", "--only", "edgecases.Tag",
        "--dry-run", "--no-input", stdout=out,
    )  # fmt: skip

    assert "Dry run: rolled back; the database is unchanged." in out.getvalue()
    assert e.Tag.objects.using(alias).create(name="next").pk == highest + 1


def test_restoring_into_a_database_behind_the_backup_warns(alias, backup_dir):
    backup = backup_database(using=alias, only=["lab"]).path
    call_command("migrate", "lab", "0008", fake=True, database=alias, verbosity=0)
    try:
        plan = prepare_restore(backup, using=alias)
    finally:
        call_command("migrate", "lab", database=alias, fake=True, verbosity=0)
    assert plan.warnings == [
        "The backup was taken with migrations applied that this database has not: lab.0009_irreversible. "
        "What they added is not restored; run `manage.py migrate` first, then restore."
    ]


def test_a_file_missing_a_row_says_how_many(alias, backup_dir):
    fill_edge_cases(alias)
    backup = backup_database(using=alias, only=["edgecases.Tag"]).path
    lines = backup.read_text().splitlines(keepends=True)
    del lines[3]  # the second Tag row
    bad = backup.with_name("short.json")
    bad.write_text("".join(lines))
    with pytest.raises(
        ArchiveError, match=r"^short.json: table edgecases.Tag has 2 rows where the file says 3;"
    ):
        prepare_restore(bad, using=alias)


PRECISE_JSON = (
    '{"pi": 3.14159265358979323846264338327950288, "tiny": 1e-400, "huge": 1e400, '
    '"big": 123456789012345678901234567890, "long": ' + "9" * 350 + ", "
    '"negative_zero": -0.0, "order": {"b": 1, "a": 2}}'
)


def json_texts(alias: str) -> list[str | None]:
    """The JSON column as the database's own text, in pk order."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    cast = "CAST({} AS text)" if connection.vendor != "mysql" else "CAST({} AS char)"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {cast.format(quote('json'))} FROM {quote(e.AllTypes._meta.db_table)} ORDER BY id"
        )
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.parametrize("mode", ["merge", "replace"])
def test_json_numbers_round_trip_as_the_database_wrote_them(alias, backup_dir, mode):
    """Through a Python float, 3.14159265358979323846 became 3.141592653589793,
    1e-400 became 0.0, and 1e400 became Infinity, which no database takes."""
    fill_edge_cases(alias)
    row = e.AllTypes.objects.using(alias).create()
    with connections[alias].cursor() as cursor:
        cursor.execute(
            f"UPDATE {e.AllTypes._meta.db_table} SET json = %s WHERE id = %s",
            [PRECISE_JSON, row.pk],
        )
    before = json_texts(alias)
    assert "3.14159265358979323846264338327950288" in before[-1]
    backup = backup_database(using=alias, only=["edgecases.AllTypes"]).path
    if mode == "merge":
        e.AllTypes.objects.using(alias).all().delete()
    else:
        e.AllTypes.objects.using(alias).update(json=None)

    restore(backup, alias, mode=mode)

    assert json_texts(alias) == before


@backends("postgresql")
def test_longest_duration_backs_up_and_restores(alias, backup_dir):
    """timedelta.max is about 2**66 microseconds: beyond a bigint, and beyond
    what orjson writes as a number."""
    longest = e.AllTypes.objects.using(alias).create(duration=datetime.timedelta.max)
    shortest = e.AllTypes.objects.using(alias).create(duration=datetime.timedelta.min)
    backup = backup_database(using=alias, only=["edgecases.AllTypes"]).path
    e.AllTypes.objects.using(alias).update(duration=None)

    restore(backup, alias, mode="replace")

    assert e.AllTypes.objects.using(alias).get(pk=longest.pk).duration == datetime.timedelta.max
    assert e.AllTypes.objects.using(alias).get(pk=shortest.pk).duration == datetime.timedelta.min


def test_durations_beyond_64_bits_are_written_as_digits():
    from dbtools.archive.codec import decode_duration, encode_duration

    assert encode_duration(datetime.timedelta.max) == "86399999999999999999"
    assert decode_duration("86399999999999999999") == datetime.timedelta.max
    assert encode_duration(datetime.timedelta(days=-1)) == -86_400_000_000


def test_the_file_restored_is_the_file_confirmed(alias, backup_dir, monkeypatch):
    """A backup made while restoredb waits at its prompt takes over the name
    db-backup-latest.json; the restore must still load the file it showed."""
    e.Tag.objects.using(alias).create(name="in the first backup")
    backup_database(using=alias, only=["edgecases.Tag"])
    e.Tag.objects.using(alias).all().delete()

    def answer_while_another_backup_lands(prompt):
        e.Tag.objects.using(alias).create(name="only in the second backup")
        backup_database(using=alias, only=["edgecases.Tag"])
        e.Tag.objects.using(alias).all().delete()
        return "yes"

    monkeypatch.setattr("builtins.input", answer_while_another_backup_lands)
    call_command(
        "restoredb", "--database", alias, "--replace", "--only", "edgecases.Tag", stdout=StringIO()
    )
    assert list(e.Tag.objects.using(alias).values_list("name", flat=True)) == [
        "in the first backup"
    ]


def test_closed_stdin_at_the_prompt_is_a_clear_refusal(alias, backup_dir):
    e.Tag.objects.using(alias).create(name="kept")
    backup_database(using=alias, only=["edgecases.Tag"])
    env = {"DBTOOLS_TESTS_BACKUP_DIR": str(backup_dir)}
    result = run_manage(
        "restoredb", "--database", alias, "--replace", env=env, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "No answer: standard input is closed. Nothing was changed; "
        "pass --no-input to restore without being asked."
    )
    assert list(e.Tag.objects.using(alias).values_list("name", flat=True)) == ["kept"]


def test_renamed_models_many_to_many_rows_follow_when_the_app_label_has_underscores():
    from dbtools.restore.mapping import current_table_label

    renames = {"my_shop.user": "my_shop.member", "my_shop.user_profile": "my_shop.profile"}
    assert current_table_label("my_shop.User_groups", renames) == "my_shop.member_groups"
    assert current_table_label("my_shop.User_profile_tags", renames) == "my_shop.profile_tags"
    assert current_table_label("my_shop.Other_groups", renames) == "my_shop.other_groups"


def test_unmanaged_tables_backed_up_are_restored(alias, backup_dir):
    table = e.UnmanagedReport._meta.db_table
    connection = connections[alias]
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {quote(table)} (id integer PRIMARY KEY, title varchar(50))")
    try:
        e.UnmanagedReport.objects.using(alias).create(id=1, title="kept outside migrations")
        backup = backup_database(using=alias, only=["edgecases"], include_unmanaged=True).path
        e.UnmanagedReport.objects.using(alias).all().delete()

        result = restore(backup, alias, mode="replace", only=["edgecases"])

        assert list(e.UnmanagedReport.objects.using(alias).values_list("id", "title")) == [
            (1, "kept outside migrations")
        ]
        assert "edgecases.UnmanagedReport" in [t.label for t in result.tables]
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {quote(table)}")


def test_a_restore_keeps_no_query_log_under_debug(alias, backup_dir, settings):
    """DEBUG = True keeps each query's SQL: a million-row restore's batches held
    100 MB of it. The load's queries are not logged; the connection's other
    queries still are, before and after."""
    seed_shop(300, using=alias)
    backup = backup_database(using=alias).path
    settings.DEBUG = True
    connection = connections[alias]
    connection.queries_log.clear()

    restore_database(prepare_restore(backup, using=alias), mode="replace")

    assert not any("INSERT" in q["sql"] or "COPY" in q["sql"] for q in connection.queries_log)
    m.Product.objects.using(alias).count()
    assert "COUNT" in connection.queries_log[-1]["sql"]


def stored_text(alias: str) -> dict[str, list[tuple[object, ...]]]:
    """Timestamps, UUIDs and text as the database holds them (SQLite keeps any
    text, so two spellings of one time would read back equal through the ORM)."""
    connection = connections[alias]
    as_text = "CHAR" if connection.vendor == "mysql" else "TEXT"
    wanted = {
        "edgecases_alltypes": ["date_time", "uuid", "char", "text", "email"],
        "shop_order": ["placed_at", "created_at", "shipping_address_id", "email", "notes"],
        "shop_address": ["id", "user_id"],
    }
    stored = {}
    with connection.cursor() as cursor:
        for table, columns in wanted.items():
            quoted = [connection.ops.quote_name(c) for c in columns]
            listed = ", ".join(f"CAST({c} AS {as_text})" for c in quoted)
            cursor.execute(f"SELECT {listed} FROM {table} ORDER BY {quoted[0]}")
            stored[table] = cursor.fetchall()
    return stored


@backends("sqlite", "mariadb")
def test_shortcut_preparers_store_what_get_db_prep_save_stores(
    alias, backup_dir, tmp_path, monkeypatch
):
    from dbtools.restore import inserts as restore_module

    fill_edge_cases(alias)
    seed_shop(300, using=alias)
    utc = datetime.UTC
    e.AllTypes.objects.using(alias).create(
        date_time=datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=utc), char="", text=""
    )
    backup = backup_database(using=alias).path

    def other_offset(label, row):  # a hand-edited file: the same moment at +02:00
        if label == "edgecases.AllTypes" and row.get("date_time") == "2025-01-02T03:04:05+00:00":
            row["date_time"] = "2025-01-02T05:04:05+02:00"
        return row

    edited = rewrite_backup(backup, tmp_path / "edited.json", change_row=other_offset)
    connection = connections[alias]
    date_time = e.AllTypes._meta.get_field("date_time")
    assert restore_module.value_preparer(date_time, connection).__name__ == "utc_datetime"
    quantity = m.OrderItem._meta.get_field("quantity")
    assert restore_module.value_preparer(quantity, connection).__name__ == "integer"
    is_active = m.Product._meta.get_field("is_active")
    assert restore_module.value_preparer(is_active, connection).__name__ == "boolean"
    price = m.Product._meta.get_field("price")
    assert restore_module.value_preparer(price, connection).__name__ == "finite_decimal"
    restore(edited, alias, mode="replace")
    shortcut = stored_text(alias)
    monkeypatch.setattr(
        restore_module,
        "value_preparer",
        lambda field, connection: lambda value: field.get_db_prep_save(value, connection),
    )
    restore(edited, alias, mode="replace")
    assert stored_text(alias) == shortcut
    stamps = [row[0] for row in shortcut["edgecases_alltypes"]]
    assert (
        stamps.count(
            "2025-01-02 03:04:05" if connection.vendor == "sqlite" else "2025-01-02 03:04:05.000000"
        )
        == 1
    )


@pytest.mark.parametrize("start", ["empty", "holding a row"])
def test_a_default_that_is_an_expression_is_compiled_not_sent_as_a_value(
    alias, backup_dir, monkeypatch, start
):
    """A field added since the backup takes its default. A migration may give
    it an expression (Django compiles Upper(...) or Now() into the INSERT), and
    the restore must not hand the expression object to the driver as a value.
    On PostgreSQL a table that starts empty is streamed in one COPY, and one
    holding rows through a staging table: both must fall back to batches."""
    from django.db.models import Value
    from django.db.models.functions import Upper

    from dbtools import graph

    seed_shop(50, using=alias)
    images = set(m.ProductImage.objects.using(alias).values_list("pk", "url"))
    assert images
    # ProductImage follows Product in the file: on PostgreSQL the expression
    # stops Product's COPY part way, and the rest must still be read right.
    backup = backup_database(using=alias, only=["shop.Product", "shop.ProductImage"]).path

    old = without_column(backup, "description")
    real_database_models = graph.database_models

    def with_an_expression_default(using):
        models = real_database_models(using)  # historical models, made anew per call
        product = next(model for model in models if model._meta.label == "shop.Product")
        product._meta.get_field("description").default = Upper(Value("made by the database"))
        return models

    monkeypatch.setattr(graph, "database_models", with_an_expression_default)
    first = m.Product.objects.using(alias).order_by("pk").values().first()
    products = m.Product.objects.using(alias).count()
    assert products > 1
    wipe(alias)
    if start == "holding a row":
        m.Product.objects.using(alias).create(**{**first, "description": "kept"})
    restore(old, alias)
    descriptions = dict(m.Product.objects.using(alias).values_list("pk", "description"))
    assert len(descriptions) == products
    kept = descriptions.pop(first["id"])
    assert kept == ("kept" if start == "holding a row" else "MADE BY THE DATABASE")
    assert set(descriptions.values()) == {"MADE BY THE DATABASE"}
    assert set(m.ProductImage.objects.using(alias).values_list("pk", "url")) == images


@backends("sqlite")
def test_only_values_the_restore_made_are_looked_at_for_expressions(alias):
    from django.db.models.functions import Now

    from dbtools.archive.codec import JSONText
    from dbtools.restore.inserts import plain_insert_fits

    connection = connections[alias]
    fields = [m.Product._meta.get_field("name"), m.Product._meta.get_field("created_at")]
    with_expression = [{"name": "tea", "created_at": Now()}]
    assert not plain_insert_fits(fields, with_expression, connection, made_here=["created_at"])
    assert plain_insert_fits(
        fields, [{"name": "tea", "created_at": JSONText("1")}], connection, made_here=["created_at"]
    )
    # The decoder makes no expression but JSONText: its columns are trusted.
    assert plain_insert_fits(fields, with_expression, connection, made_here=[])


@backends("sqlite", "mariadb")
def test_executemany_and_the_insert_compiler_store_the_same_rows(alias, backup_dir, monkeypatch):
    """Outside PostgreSQL most batches go through one prepared INSERT and
    executemany; Django's insert compiler, which it replaces, must have stored
    exactly the same rows, every edge-case type included."""
    from dbtools.restore import inserts as restore_module

    fill_edge_cases(alias)
    seed_shop(500, using=alias)
    backup = backup_database(using=alias)
    used = []
    real_plain_insert = restore_module.plain_insert
    # Batches even into empty tables (MariaDB's go in by LOAD DATA, compared last).
    backend = type(backend_for(connections[alias]))
    monkeypatch.setattr(backend, "can_load_stream", lambda self, fields: False)
    monkeypatch.setattr(
        restore_module,
        "plain_insert",
        lambda table, *args: used.append(table) or real_plain_insert(table, *args),
    )
    restore(backup.path, alias, mode="replace")
    through_executemany = comparable_tables(database_contents(alias))
    assert {"shop_product", "shop_useractivity", "edgecases_comment"} <= set(used)

    monkeypatch.setattr(restore_module, "plain_insert_fits", lambda *args: False)
    used.clear()
    restore(backup.path, alias, mode="replace")
    assert used == []
    assert comparable_tables(database_contents(alias)) == through_executemany
    assert through_executemany == comparable_tables(read_backup(backup.path))

    monkeypatch.undo()
    restore(backup.path, alias, mode="replace")
    assert comparable_tables(database_contents(alias)) == through_executemany


@backends("postgresql")
def test_merge_never_moves_a_sequence_back(alias, backup_dir):
    fill_edge_cases(alias)
    backup = backup_database(using=alias, only=["edgecases.Tag"]).path
    # An application's transaction, still open, that has taken the next id.
    other = connections.create_connection(alias)
    try:
        with other.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("INSERT INTO edgecases_tag (name) VALUES ('pending') RETURNING id")
            (pending,) = cursor.fetchone()

            restore(backup, alias, only=["edgecases.Tag"])

            cursor.execute("COMMIT")
    finally:
        other.close()
    assert e.Tag.objects.using(alias).create(name="next").pk == pending + 1


def json_documents(alias: str) -> list[tuple[int, str | None, str | None]]:
    """Each row's JSON columns as the database's own text: JSON null is the
    text null, SQL NULL is None."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    cast = "CAST({} AS text)" if connection.vendor != "mysql" else "CAST({} AS char)"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, {cast.format(quote('required'))}, {cast.format(quote('optional'))} "
            f"FROM {quote(e.JSONDocument._meta.db_table)} ORDER BY id"
        )
        return [tuple(row) for row in cursor.fetchall()]


@pytest.mark.parametrize("mode", ["merge", "replace"])
def test_json_null_and_sql_null_round_trip_apart(alias, backup_dir, mode, monkeypatch):
    """A JSON null in a NOT NULL JSONField was written as SQL NULL: no restore of
    the backup could succeed."""
    from django.db.models import JSONField, Value

    docs = e.JSONDocument.objects.using(alias)
    first = docs.create(required=Value(None, JSONField()), optional=None)
    second = docs.create(required={"a": None}, optional=Value(None, JSONField()))
    third = docs.create(required=[None], optional="null")
    fourth = docs.create(required=Value(None, JSONField()), optional=Value(None, JSONField()))
    before = json_documents(alias)
    assert before[0] == (first.pk, "null", None)  # JSON null, SQL NULL
    assert (before[1][0], before[1][2]) == (second.pk, "null")
    assert before[2][2] == '"null"'  # a string, not JSON null
    backup = backup_database(using=alias, only=["edgecases.JSONDocument"]).path
    lines = backup.read_text().splitlines()
    assert f'{{"id":{first.pk},"required":null,"optional":null,"$json_null":["required"]}}' in lines
    assert any(
        line.startswith(f',{{"id":{second.pk},')
        and line.endswith(',"optional":null,"$json_null":["optional"]}')
        for line in lines
    ), lines
    assert not any(f'"id":{third.pk},' in line and "$json_null" in line for line in lines)
    assert (
        f',{{"id":{fourth.pk},"required":null,"optional":null,"$json_null":["required","optional"]}}'
        in lines
    )
    if connections[alias].vendor == "postgresql":  # the server writes these lines itself
        monkeypatch.setattr("dbtools.backends.pg_reads.can_write", lambda table, connection: False)
        portable = backup_database(using=alias, only=["edgecases.JSONDocument"]).path
        assert portable.read_text().splitlines()[2:-2] == lines[2:-2]
    if mode == "merge":
        docs.all().delete()

    restore(backup, alias, mode=mode, only=["edgecases.JSONDocument"])

    assert json_documents(alias) == before


def test_a_bare_null_stays_sql_null_and_the_json_null_key_is_checked():
    from dbtools.archive.codec import JSONText
    from dbtools.archive.row_parsing import row_parser

    columns = [
        {"name": "id", "kind": "int", "type": "BigAutoField"},
        {"name": "required", "kind": "json", "type": "JSONField"},
        {"name": "optional", "kind": "json", "type": "JSONField"},
    ]
    for jsonb in (False, True):
        parse = row_parser(columns, keep_json_text=True, jsonb=jsonb)
        old = parse(b'{"id":1,"required":[1],"optional":null}')  # a file from before the key
        assert old["optional"] is None and old["required"].text == "[1]"
        new = parse(b'{"id":1,"required":null,"optional":null,"$json_null":["required"]}')
        assert set(new) == {"id", "required", "optional"}
        assert isinstance(new["required"], JSONText) and new["required"].text == "null"
        assert new["optional"] is None
    # Read as Django reads it: None for both.
    assert row_parser(columns)(b'{"id":1,"required":null,"optional":null,"$json_null":["required"]}') == {
        "id": 1, "required": None, "optional": None
    }  # fmt: skip
    for listed in ('["id"]', '["optional"]', '["required","required"]', "[]", '"required"'):
        line = '{"id":1,"required":null,"optional":[2],"$json_null":' + listed + "}"
        with pytest.raises(
            ValueError, match=r"^\$json_null must list JSONField columns whose value is null$"
        ):
            row_parser(columns, keep_json_text=True)(line.encode())


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(),  # lone surrogates included, which json.dumps escapes
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, derandomize=os.environ.get("CI") == "true")
@given(value=JSON_VALUES)
def test_json_values_are_written_again_exactly_as_json_dumps_writes_them(value):
    from dbtools.archive.row_parsing import _dumps_as_django

    assert _dumps_as_django(value) == json.dumps(value)


def naive_backup(alias: str, backup: Path, meta: dict[str, object]) -> Path:
    """`backup` as a USE_TZ = False project would have written it: date-times without offset."""

    def change_meta(old: dict[str, object]) -> dict[str, object]:
        changed = {**old, **meta}
        return {k: v for k, v in changed.items() if v is not None}

    return rewrite_backup(
        backup,
        backup.with_name("naive.json"),
        change_row=lambda label, row: {**row, "date_time": "2025-07-01T12:00:00"},
        change_meta=change_meta,
    )


@pytest.mark.parametrize("mode", ["merge", "replace"])
def test_a_naive_datetime_is_taken_in_time_zone_as_django_takes_it(
    alias, backup_dir, settings, mode
):
    """PostgreSQL's COPY read a naive date-time as UTC: 12:00 in Paris became 12:00 UTC,
    where Django (and the other backends) store 10:00 UTC."""
    settings.TIME_ZONE = "Europe/Paris"
    e.AllTypes.objects.using(alias).create(
        date_time=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    )
    backup = backup_database(using=alias, only=["edgecases.AllTypes"]).path
    naive = naive_backup(alias, backup, {"use_tz": False, "time_zone": "Europe/Paris"})
    if mode == "merge":
        e.AllTypes.objects.using(alias).all().delete()

    plan = prepare_restore(naive, using=alias)
    assert plan.warnings == [
        "The backup was taken with USE_TZ = False, TIME_ZONE = 'Europe/Paris'; this project has "
        "USE_TZ = True, TIME_ZONE = 'Europe/Paris'. The backup's date-times have no time zone: "
        "they are taken as Europe/Paris time, as Django takes a naive datetime."
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once above, not once per row
        restore_database(plan, mode=mode)

    assert list(e.AllTypes.objects.using(alias).values_list("date_time", flat=True)) == [
        datetime.datetime(2025, 7, 1, 10, 0, tzinfo=datetime.UTC)
    ]


def test_the_time_zone_settings_of_a_backup_that_does_not_record_them_are_not_known(
    alias, backup_dir
):
    e.AllTypes.objects.using(alias).create()
    backup = backup_database(using=alias, only=["edgecases.AllTypes"]).path
    old = naive_backup(alias, backup, {"use_tz": None, "time_zone": None})
    assert prepare_restore(old, using=alias).warnings == [
        "The backup does not record the USE_TZ and TIME_ZONE it was taken with (an older dbtools "
        "wrote it): not known whether its date-times mean what they would here (USE_TZ = True, "
        "TIME_ZONE = 'UTC')."
    ]


def test_a_merge_counts_only_the_tables_it_wrote_into(alias, backup_dir):
    seed_shop(300, using=alias)
    backup = backup_database(using=alias, only=["shop"])
    gone, _ = m.NewsletterSubscriber.objects.using(alias).all().delete()
    assert gone > 1
    out = StringIO()
    call_command("restoredb", "--database", alias, "--no-input", "--only", "shop", stdout=out)
    last = out.getvalue().splitlines()[-1]
    assert re.fullmatch(
        rf"Restored {gone} rows into 1 of {len(backup.tables)} tables, "
        rf"{backup.rows - gone:,} already present and left as they were from "
        rf"\S+db-backup-latest\.json in \d+\.\ds\.",
        last,
    ), last


def test_database_errors_lose_the_row_values_they_quote_when_fields_are_sensitive():
    from dbtools.restore.failures import database_cause

    note = (
        " Its row values are not shown: DBTOOLS['SENSITIVE_FIELDS'] lists fields of the tables "
        "restored."
    )
    for raw, shown in (
        (
            'duplicate key value violates unique constraint "u"\nDETAIL:  Key (email)=(a@b.c) already exists.',
            'duplicate key value violates unique constraint "u" DETAIL: Key (email)=(…) already exists.',
        ),
        (
            'new row for relation "t" violates check constraint "c"\nDETAIL:  Failing row contains (1, a@b.c, x).',
            'new row for relation "t" violates check constraint "c" DETAIL: Failing row contains (…).',
        ),
        (
            "(1062, \"Duplicate entry 'a@b.c' for key 't.email'\")",
            "(1062, \"Duplicate entry '…' for key 't.email'\").",
        ),
        (
            "(1366, \"Incorrect integer value: 'a@b.c' for column 'n' at row 1\")",
            "(1366, \"Incorrect integer value: '…' for column 'n' at row 1\").",
        ),
        ("some new error quoting a@b.c", "some new error quoting …."),
    ):
        assert database_cause(Exception(raw), True, ["a@b.c", None]) == shown + note
        assert database_cause(Exception(raw), False) == " ".join(raw.split())


def test_error_for_a_bad_value_of_a_sensitive_column_hides_it(settings):
    from types import SimpleNamespace

    from dbtools.archive.codec import BadValue
    from dbtools.restore.failures import bad_value_error

    settings.DBTOOLS = {**settings.DBTOOLS, "SENSITIVE_FIELDS": ["shop.User.password"]}
    plan = SimpleNamespace(path=Path("b.json"))
    mapping = SimpleNamespace(
        columns=[{"name": "password", "kind": "int"}], table=None, backup_label="shop.User"
    )
    error = BadValue("password", "hunter2", ValueError("invalid literal: 'hunter2'"))
    message = str(bad_value_error(plan, mapping, 1, {}, error))  # type: ignore[arg-type]
    assert "hunter2" not in message
    assert (
        "column password holds a value (not shown: DBTOOLS['SENSITIVE_FIELDS'] lists the column)"
        in message
    )


@backends("sqlite")
def test_the_rows_already_there_are_found_holding_one_tables_keys_at_a_time(
    alias, backup_dir, monkeypatch
):
    """Each table's keys are read when the file reaches its rows and let go
    after them: every table's at once put a 1M-row merge over 100 MB."""
    from dbtools.restore import overlap

    seed_shop(40, using=alias)
    backup = backup_database(using=alias, only=["shop"]).path
    events: list[str] = []
    read_keys, compare = overlap.primary_keys, overlap.overlap_of

    def primary_keys(rows, names):  # type: ignore[no-untyped-def]
        events.append("keys")
        return read_keys(rows, names)

    def overlap_of(held, rows):  # type: ignore[no-untyped-def]
        events.append("rows")
        return compare(held, rows)

    monkeypatch.setattr(overlap, "primary_keys", primary_keys)
    monkeypatch.setattr(overlap, "overlap_of", overlap_of)
    plan = prepare_restore(backup, using=alias)
    try:
        found = plan.rows_already_there()
    finally:
        plan.close()

    assert len(found.tables) > 2
    assert events == ["keys", "rows"] * len(found.tables)
