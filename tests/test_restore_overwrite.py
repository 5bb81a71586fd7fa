"""restoredb --overwrite: rows changed or deleted since the backup get the
backup's values back, rows added since stay, on every backend, through the
database's upsert and through the portable path alike."""

from __future__ import annotations

import datetime
from io import StringIO
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.db import connections, transaction
from django.db.models import JSONField, Value
from django.test.utils import CaptureQueriesContext

from dbtools import diff_database
from dbtools.backends import backend_for
from dbtools.backends.pg_loads import staging_table
from dbtools.backup import backup_database
from dbtools.exceptions import ConfigurationError, RestoreError
from dbtools.graph import plan_tables
from dbtools.restore import choose_mode, prepare_restore, restore_database, strategies
from dbtools.restore.failures import HIDDEN, NOT_SHOWN, row_error, shown_in_error
from dbtools.restore.loader import Loader
from dbtools.restore.strategies import split_existing
from shop import models as m
from shop.seed import seed_shop
from tests.conftest import backends
from tests.difflab.models import Item, Link, Tag
from tests.edgecases.models import JSONDocument
from tests.helpers import comparable_tables, database_contents, rewrite_backup
from tests.test_diffdb import run_script

SCRIPTED = ["shop.Product", "shop.Category", "shop.UserActivity", "shop.VerificationToken"]


@pytest.fixture(params=["fast", "portable"])
def path(request, monkeypatch, alias):  # type: ignore[no-untyped-def]
    """fast: each database's own (PostgreSQL's staged COPY and ON CONFLICT,
    SQLite's ON CONFLICT, MariaDB's ON DUPLICATE KEY UPDATE); portable: no
    COPY, no upsert: an UPDATE per row through Django's update compiler."""
    if request.param == "portable":
        backend = type(backend_for(connections[alias]))
        monkeypatch.setattr(backend, "upsert_sql", lambda self, *args: None)
        monkeypatch.setattr(Loader, "copies", lambda self, load, empty: False)
    return request.param


def script(alias: str) -> dict[str, object]:
    """test_diffdb's script, and a composite-key row changed."""
    done = run_script(alias)
    token = m.VerificationToken.objects.using(alias).order_by("identifier", "token")[0]
    m.VerificationToken.objects.using(alias).filter(pk=token.pk).update(
        expires=token.expires.replace(year=2001)
    )
    return done


def contents(alias: str) -> dict[str, list[dict[str, object]]]:
    return comparable_tables(database_contents(alias, SCRIPTED))


def overwrite(alias: str, path: object, **options: object):  # type: ignore[no-untyped-def]
    plan = prepare_restore(path, using=alias, **options)  # type: ignore[arg-type]
    return restore_database(plan, mode="overwrite")


def test_overwrite_puts_back_what_the_script_changed_and_keeps_what_it_added(
    alias, backup_dir, path
):
    seed_shop(300, using=alias)
    backup = backup_database(using=alias)
    at_backup = contents(alias)
    script(alias)
    added = [r for r in contents(alias)["shop.Category"] if r["slug"].startswith("extra")]

    result = overwrite(alias, backup.path)

    after = contents(alias)
    assert [r for r in after["shop.Category"] if r["slug"].startswith("extra")] == added
    after["shop.Category"] = [r for r in after["shop.Category"] if r not in added]
    assert after == at_backup and len(added) == 2
    receipts = {t.label: t for t in result.tables}
    activity, product = receipts["shop.UserActivity"], receipts["shop.Product"]
    assert (activity.inserted, activity.updated, activity.unchanged) == (
        4,
        0,
        len(at_backup["shop.UserActivity"]) - 4,
    )
    assert (product.inserted, product.updated, product.unchanged) == (
        0,
        3,
        len(at_backup["shop.Product"]) - 3,
    )
    assert result.inserted == 4
    connections[alias].check_constraints()  # every foreign key resolves
    remaining = {t.label: t for t in diff_database(backup.path, using=alias).differing}
    assert list(remaining) == ["shop.Category"]
    category = remaining["shop.Category"]
    assert (category.only_in_backup, category.only_in_database, category.changed) == (0, 2, 0)


def test_a_table_out_of_scope_is_never_touched(alias, backup_dir, path):
    seed_shop(200, using=alias)
    backup = backup_database(using=alias)
    done = script(alias)
    category = contents(alias)["shop.Category"]

    result = overwrite(alias, backup.path, only=["shop.Product"])

    assert [t.label for t in result.tables] == ["shop.Product"]
    assert contents(alias)["shop.Category"] == category
    assert m.Category.objects.using(alias).get(pk=done["category"]).position == 99
    assert not m.Product.objects.using(alias).filter(name__endswith=" (renamed)").exists()


def test_a_row_that_clashes_rolls_everything_back(alias, backup_dir, path):
    seed_shop(200, using=alias)
    backup = backup_database(using=alias)
    script(alias)
    # The backup gives this category its slug back, which a row added since now holds.
    first = m.Category.objects.using(alias).order_by("pk")[0]
    slug = first.slug
    m.Category.objects.using(alias).filter(pk=first.pk).update(slug="moved")
    m.Category.objects.using(alias).create(name="Took the slug", slug=slug)
    before = contents(alias)

    with pytest.raises(RestoreError, match=r"^Restoring shop\.Category .* failed at "):
        overwrite(alias, backup.path)

    assert contents(alias) == before


def test_a_foreign_key_pointing_nowhere_rolls_everything_back(alias, backup_dir, path):
    seed_shop(200, using=alias)
    backup = backup_database(using=alias)
    account = m.Account.objects.using(alias).order_by("pk")[0]
    m.Account.objects.using(alias).filter(pk=account.pk).update(provider="changed")
    # Its user goes (and with it the account): the backup's account would point nowhere.
    m.User.objects.using(alias).filter(pk=account.user_id).delete()
    m.Product.objects.using(alias).update(name="script")
    before = comparable_tables(database_contents(alias, ["shop.Account", "shop.Product"]))

    with pytest.raises(RestoreError, match=r"^After loading, a foreign key points at a row"):
        overwrite(alias, backup.path, only=["shop.Account", "shop.Product"])

    assert comparable_tables(database_contents(alias, ["shop.Account", "shop.Product"])) == before


def test_dry_run_says_what_would_change_exactly_and_writes_nothing(alias, backup_dir, path):
    seed_shop(300, using=alias)
    backup = backup_database(using=alias)
    script(alias)
    before = contents(alias)
    plan = prepare_restore(backup.path, using=alias)

    result = restore_database(plan, mode="overwrite", dry_run=True)

    assert contents(alias) == before
    assert result.preview is not None
    preview = {t.label: t for t in result.preview.differing}
    counts = {
        label: (t.only_in_backup, t.changed, t.only_in_database, t.columns)
        for label, t in preview.items()
    }
    assert counts == {
        "shop.Product": (0, 3, 0, {"name": 3}),
        "shop.Category": (0, 1, 2, {"name": 1, "position": 1}),
        "shop.UserActivity": (4, 0, 0, {}),
        "shop.VerificationToken": (0, 1, 0, {"expires": 1}),
    }
    out = StringIO()
    call_command(
        "restoredb", "--database", alias, "--no-input", "--overwrite", "--dry-run", stdout=out
    )
    text = out.getvalue()
    same = len(before["shop.Category"]) - 3
    assert (
        f"  shop.Category: 1 to update (name 1, position 1), {same:,} identical, 2 not in " in text
    )
    assert "  shop.UserActivity: 4 to insert, " in text
    assert "Dry run: rolled back; the database is unchanged." in text
    assert contents(alias) == before


def test_dry_run_claims_no_update_of_a_table_matched_by_natural_key(alias, backup_dir):
    seed_shop(50, using=alias)
    backup_database(using=alias)
    permission = Permission.objects.using(alias).order_by("pk")[0]
    Permission.objects.using(alias).filter(pk=permission.pk).update(name="Renamed since")

    out = StringIO()
    call_command(
        "restoredb", "--database", alias, "--no-input", "--overwrite", "--dry-run", stdout=out
    )

    lines = [line for line in out.getvalue().splitlines() if line.startswith("  auth.Permission:")]
    assert lines == [
        "  auth.Permission: matched by natural key; rows already there are left as they are"
    ]
    call_command("restoredb", "--database", alias, "--no-input", "--overwrite", stdout=StringIO())
    assert Permission.objects.using(alias).get(pk=permission.pk).name == "Renamed since"


@backends("postgresql")
def test_staging_with_no_column_to_update_counts_only_the_rows_inserted(alias):
    connection = connections[alias]
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE dbtools_pk_only (id integer PRIMARY KEY, note text)")
        cursor.execute("INSERT INTO dbtools_pk_only VALUES (1, 'kept'), (2, 'kept')")
        fields = [SimpleNamespace(column="id")]
        with staging_table("dbtools_pk_only", fields, connection) as staging:  # type: ignore[arg-type]
            cursor.execute(f"INSERT INTO {staging.name} VALUES (1), (2), (3)")
            assert staging.overwrite(["id"], []) == (1, 0)
        cursor.execute("SELECT id, note FROM dbtools_pk_only ORDER BY id")
        assert cursor.fetchall() == [(1, "kept"), (2, "kept"), (3, None)]
        transaction.set_rollback(True, using=alias)


def test_an_overwrite_locks_the_keys_it_reads_where_the_upsert_fires_on_any_unique(
    alias, backup_dir
):
    seed_shop(20, using=alias)
    backup_database(using=alias)
    connection = connections[alias]
    lock = backend_for(connection).locks_keys_read
    assert lock is (connection.vendor == "mysql")
    table = next(t for t in plan_tables(alias).tables if t.label == "shop.Category")
    batch = [{"id": pk} for pk in m.Category.objects.using(alias).values_list("pk", flat=True)]
    with transaction.atomic(using=alias), CaptureQueriesContext(connection) as queries:
        missing, present = split_existing(table, [*batch, {"id": 10**6}], alias, lock)
    assert (missing, present) == ([{"id": 10**6}], batch)
    # No second query: an integer key cannot match another only by collation.
    assert [q["sql"].endswith(" FOR UPDATE") for q in queries.captured_queries] == [lock]

    locked: list[object] = []

    def overwrite_locks(*args: object) -> object:
        locked.append(args[3])
        return split(*args)

    split = strategies.split_existing
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(strategies, "split_existing", overwrite_locks)
        overwrite(alias, None, only=["shop.Category"])
    assert set(locked) <= {lock} and (locked or not lock)


def test_the_command_prints_inserted_and_updated(alias, backup_dir):
    seed_shop(200, using=alias)
    backup_database(using=alias)
    script(alias)
    products = m.Product.objects.using(alias).count()

    out = StringIO()
    call_command(
        "restoredb", "--database", alias, "--no-input", "--overwrite", "--only", "shop", stdout=out
    )

    text = out.getvalue()
    assert "Mode:   OVERWRITE: insert the rows whose primary key is missing" in text
    there = text.split(" rows already there will be given the backup's values where they differ:")[
        0
    ]
    assert int(there.splitlines()[-1].replace(",", "")) > products
    assert f"\n  shop.Product: {products:,}\n" in text
    assert "  table  " in text and "   updated   unchanged  " in text
    product_line = next(line for line in text.splitlines() if line.startswith("  shop.Product "))
    assert product_line.split()[1:6] == [f"{products:,}", "0", "3", f"{products - 3:,}", "0"]
    assert "Restored 4 rows and gave " in text
    assert " rows already present the backup's values, in " in text
    assert "Left as they were, holding the backup's values already: " in text


def test_error_for_overwrite_with_replace(alias, backup_dir):
    seed_shop(50, using=alias)
    backup_database(using=alias)
    message = (
        "--overwrite and --replace contradict each other: --replace empties the tables first, "
        "--overwrite keeps the rows that are not in the backup; give one. Nothing was changed."
    )
    with pytest.raises(CommandError) as caught:
        call_command("restoredb", "--database", alias, "--no-input", "--overwrite", "--replace")
    assert str(caught.value) == message
    with pytest.raises(ConfigurationError):
        choose_mode(replace=True, overwrite=True)


def test_error_for_an_unknown_mode(alias, backup_dir):
    seed_shop(50, using=alias)
    plan = prepare_restore(backup_database(using=alias).path, using=alias)
    with pytest.raises(ConfigurationError, match=r"^mode must be one of merge, replace, overwrite"):
        restore_database(plan, mode="upsert")  # type: ignore[arg-type]


def test_the_modes_have_one_home():
    from dbtools.management.commands import restoredb
    from dbtools.restore import overwrite as core

    assert restoredb.MODES is core.MODES
    assert list(core.MODES) == ["merge", "replace", "overwrite"]


RESTORING_AT = "Restoring shop.Category (table shop_category) failed at the row with primary key "


def test_error_for_values_swapped_between_rows_points_to_diffdb(alias, backup_dir, path):
    seed_shop(50, using=alias)
    backup = backup_database(using=alias)
    first, second = m.Category.objects.using(alias).order_by("pk")[:2]
    categories = m.Category.objects.using(alias)
    categories.filter(pk=first.pk).update(slug="swapping")
    categories.filter(pk=second.pk).update(slug=first.slug)
    categories.filter(pk=first.pk).update(slug=second.slug)

    with pytest.raises(RestoreError) as caught:
        overwrite(alias, backup.path, only=["shop.Category"])

    message = str(caught.value)
    assert message.startswith("Restoring shop.Category (table shop_category) failed at the row ")
    holder = second.pk if message.startswith(f"{RESTORING_AT}{first.pk}:") else first.pk
    assert f"The row with primary key {holder} holds its slug now. " in message
    assert (
        "Another row already holds that unique value under a different primary key (with "
        "--overwrite, values that moved between rows since the backup clash this way). See the "
        "rows involved with `manage.py diffdb --only shop.Category --rows 20`, then change or "
        "remove the row that holds it; --replace is the blunt alternative: it empties the table "
        "first, so the rows added since the backup go too. Nothing was changed"
    ) in message


def test_only_the_rows_that_differ_are_updated_and_counted(alias, backup_dir, path):
    seed_shop(200, using=alias)
    backup = backup_database(using=alias)
    call_command("restoredb", "--database", alias, "--no-input", "--replace", stdout=StringIO())
    products = m.Product.objects.using(alias)

    result = overwrite(alias, backup.path)

    assert (result.inserted, result.updated) == (0, 0)
    # Content types and permissions are matched by natural key, and skipped.
    assert result.unchanged + result.skipped == backup.rows and result.unchanged
    changed = list(products.order_by("pk").values_list("pk", flat=True)[:3])
    products.filter(pk__in=changed).update(name="changed since")
    out = StringIO()
    call_command("restoredb", "--database", alias, "--no-input", "--overwrite", stdout=out)
    text = out.getvalue()
    assert "Restored 0 rows and gave 3 rows already present the backup's values, in 1 of " in text
    product_line = next(line for line in text.splitlines() if line.startswith("  shop.Product "))
    assert product_line.split()[2:5] == ["0", "3", f"{products.count() - 3:,}"]
    assert not products.filter(name="changed since").exists()


@backends("mariadb")
def test_mariadb_reads_the_upserts_affected_rows_with_or_without_found_rows(alias, monkeypatch):
    """ON DUPLICATE KEY UPDATE over 5 rows that are there, 2 of them changed:
    7 affected rows with CLIENT.FOUND_ROWS (Django's default), 4 without."""
    from MySQLdb.constants import CLIENT

    connection = connections[alias]
    backend = backend_for(connection)
    assert connection.get_connection_params()["client_flag"] & CLIENT.FOUND_ROWS
    assert backend.upserted_rows(7, 5) == 2
    monkeypatch.setattr(connection, "get_connection_params", lambda: {"client_flag": 0})
    assert backend.upserted_rows(4, 5) == 2


def links(alias: str) -> list[tuple[object, ...]]:
    return list(Link.objects.using(alias).order_by("pk").values_list("pk", "url", "title"))


def test_error_for_a_long_unique_value_that_moved_to_another_row(alias, backup_dir, path):
    """The backup's row 1 takes back url A, which row 3 holds now: the restore
    fails on the clash, never updates row 3."""
    one = Link.objects.using(alias).create(url="A", title="one")
    Link.objects.using(alias).create(url="B", title="two")
    backup = backup_database(using=alias, only=["difflab.Link"])
    Link.objects.using(alias).filter(pk=one.pk).update(url="C")
    Link.objects.using(alias).create(url="A", title="three")
    before = links(alias)

    with pytest.raises(RestoreError) as caught:
        overwrite(alias, backup.path)

    assert str(caught.value).startswith(
        f"Restoring difflab.Link (table difflab_link) failed at the row with primary key {one.pk}: "
    )
    assert "Another row already holds that unique value under a different primary key" in str(
        caught.value
    )
    assert links(alias) == before


@backends("mariadb")
def test_mariadb_upsert_never_lands_on_the_row_holding_a_long_unique_value(alias, backup_dir, path):
    """At REPEATABLE READ, MariaDB's ON DUPLICATE KEY UPDATE matches a long
    unique value (kept as a hash) before the primary key."""
    with connections[alias].cursor() as cursor:
        cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    try:
        test_error_for_a_long_unique_value_that_moved_to_another_row(alias, backup_dir, path)
    finally:
        with connections[alias].cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")


def test_a_change_of_case_only_is_written_and_counted(alias, backup_dir, path):
    """Link.title ignores case on every backend (SQLite NOCASE, an ICU collation
    on PostgreSQL, utf8mb4_general_ci on MariaDB): the backup's 'alice' still differs from 'Alice'."""
    link = Link.objects.using(alias).create(url="A", title="alice")
    Link.objects.using(alias).create(url="B", title="bob")
    backup = backup_database(using=alias, only=["difflab.Link"])
    Link.objects.using(alias).filter(pk=link.pk).update(title="Alice")

    result = overwrite(alias, backup.path)

    assert Link.objects.using(alias).get(pk=link.pk).title == "alice"
    (receipt,) = result.tables
    assert (receipt.inserted, receipt.updated, receipt.unchanged) == (0, 1, 1)


def test_error_for_a_row_whose_primary_key_is_sensitive_hides_it(alias, settings):
    settings.DBTOOLS = {**settings.DBTOOLS, "SENSITIVE_FIELDS": ["shop.VerificationToken.token"]}
    table = next(t for t in plan_tables(alias).tables if t.label == "shop.VerificationToken")
    row = {"identifier": "who@example.com", "token": "s3cret-token", "expires": None}

    error = row_error(table, ("who@example.com", "s3cret-token"), ValueError("bad"), row)

    assert "s3cret-token" not in str(error)
    assert str(error).startswith(
        "Restoring shop.VerificationToken (table shop_verificationtoken) failed at the row with "
        "primary key ('who@example.com', (hidden)): bad."
    )


def test_sql_null_and_json_null_are_told_apart(alias, backup_dir, path):
    """A JSONField's SQL NULL and JSON null are different values: each swap is
    written back and counted."""
    documents = JSONDocument.objects.using(alias)
    sql_null = documents.create(required={"a": 1}, optional=None)
    json_null = documents.create(required={"a": 2}, optional=Value(None, JSONField()))
    documents.create(required={"a": 3}, optional=[1])
    backup = backup_database(using=alias, only=["edgecases.JSONDocument"])
    documents.filter(pk=sql_null.pk).update(optional=Value(None, JSONField()))
    documents.filter(pk=json_null.pk).update(optional=None)

    (receipt,) = overwrite(alias, backup.path).tables

    assert (receipt.inserted, receipt.updated, receipt.unchanged) == (0, 2, 1)
    # JSON null reads as None too: only SQL NULL is IS NULL.
    assert list(documents.filter(optional__isnull=True).values_list("pk", flat=True)) == [
        sql_null.pk
    ]
    assert documents.get(pk=json_null.pk).optional is None


def test_error_values_and_keys_of_sensitive_fields_are_not_shown(settings):
    settings.DBTOOLS = {"SENSITIVE_FIELDS": ["shop.VerificationToken.token"]}
    row = {"identifier": "who@example.com", "token": "t0k3n", "expires": "soon"}
    pk_names = ["identifier", "token"]

    hidden = shown_in_error(
        "shop.VerificationToken", row, pk_names, "token", "t0k3n", "“t0k3n” bad"
    )
    shown = shown_in_error("shop.VerificationToken", row, pk_names, "expires", "soon", "“soon” bad")

    assert hidden == (("who@example.com", HIDDEN), NOT_SHOWN, "“…” bad")
    assert shown == (("who@example.com", HIDDEN), "'soon'", "“soon” bad")
    assert repr(hidden[0]) == "('who@example.com', (hidden))"


def tags(alias: str) -> list[tuple[object, ...]]:
    return list(Tag.objects.using(alias).order_by("note").values_list("code", "note"))


@pytest.mark.parametrize("mode", ["merge", "overwrite"])
def test_error_for_a_key_that_matches_another_only_by_collation(alias, backup_dir, path, mode):
    """Tag.code ignores case on every backend (as MariaDB's *_ci collations
    do): the backup's 'abc' is not this database's 'ABC', which a merge must
    not skip as already there, nor an overwrite write into."""
    Tag.objects.using(alias).create(code="abc", note="in the backup")
    Tag.objects.using(alias).create(code="same", note="kept")
    backup = backup_database(using=alias, only=["difflab.Tag"])
    Tag.objects.using(alias).filter(code="abc").delete()
    Tag.objects.using(alias).create(code="ABC", note="added since")
    before = tags(alias)

    with pytest.raises(RestoreError) as caught:
        restore_database(prepare_restore(backup.path, using=alias), mode=mode)

    assert str(caught.value) == (
        "Restoring difflab.Tag (table difflab_tag): the backup's row with primary key 'abc' "
        "matches this database's row 'ABC' only by the column's collation, which takes them for "
        "the same key (case, accents or trailing spaces), so it would be taken for that row. "
        "Nothing was changed: the restore was rolled back. Change one of the two keys, or restore the table with --replace (it "
        "empties the table first, so the rows added since the backup go too)."
    )
    assert tags(alias) == before


@pytest.mark.parametrize("mode", ["merge", "replace"])
def test_error_for_two_backup_keys_the_column_takes_for_one(alias, backup_dir, mode):
    """A backup from a database that tells 'abc' and 'ABC' apart, into one
    whose column does not: not "the backup holds the key more than once"."""
    Tag.objects.using(alias).create(code="abc", note="first")
    backup = backup_database(using=alias, only=["difflab.Tag"]).path
    twins = rewrite_backup(
        backup,
        backup.with_name("twins.json"),
        order_rows=lambda label, rows: [*rows, {**rows[0], "code": "ABC", "note": "second"}],
    )
    Tag.objects.using(alias).all().delete()

    with pytest.raises(RestoreError) as caught:
        restore_database(prepare_restore(twins, using=alias), mode=mode)

    assert str(caught.value) == (
        "Restoring difflab.Tag (table difflab_tag) failed at the row with primary key 'ABC': "
        "this database's column takes it for 'abc', a row the table holds now, as the same key "
        "(its collation ignores case, accents or trailing spaces), so it cannot hold both. "
        "Nothing was changed: the restore was rolled back. Restore into a database whose column "
        "tells the keys apart (a collation that minds case and accents; on MariaDB one with NO "
        "PAD for trailing spaces), or change one of the two keys in the source database and "
        "back up again."
    )
    assert tags(alias) == []


@backends("mariadb")
@pytest.mark.parametrize("mode", ["merge", "replace"])
def test_error_for_two_composite_backup_keys_the_columns_take_for_one(alias, backup_dir, mode):
    """MariaDB pads with spaces: ('a', 't') and ('a', 't ') are one key there."""
    from shop.models import VerificationToken

    tokens = VerificationToken.objects.using(alias)
    tokens.create(
        identifier="a", token="t", expires=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    )
    backup = backup_database(using=alias, only=["shop.VerificationToken"]).path
    twins = rewrite_backup(
        backup,
        backup.with_name("twins.json"),
        order_rows=lambda label, rows: [*rows, {**rows[0], "token": "t "}],
    )
    tokens.all().delete()

    with pytest.raises(RestoreError) as caught:
        restore_database(prepare_restore(twins, using=alias), mode=mode)

    assert (
        "failed at the row with primary key ('a', 't '): this database's column takes it for ('a', 't')"
        in str(caught.value)
    )
    assert not tokens.exists()


@backends("mariadb")
@pytest.mark.parametrize("mode", ["merge", "overwrite"])
def test_error_for_a_key_that_matches_another_only_by_trailing_spaces(alias, backup_dir, mode):
    """MariaDB's collations pad with spaces, utf8mb4_bin too: the backup's 'a '
    is not this database's 'a', though the column takes them for one key."""
    Tag.objects.using(alias).create(code="a ", note="in the backup")
    backup = backup_database(using=alias, only=["difflab.Tag"])
    Tag.objects.using(alias).filter(note="in the backup").delete()
    Tag.objects.using(alias).create(code="a", note="added since")

    with pytest.raises(RestoreError, match=r"^Restoring difflab\.Tag") as caught:
        restore_database(prepare_restore(backup.path, using=alias), mode=mode)

    assert (
        "the backup's row with primary key 'a ' matches this database's row 'a' only by the "
        "column's collation, which takes them for the same key (case, accents or trailing "
        "spaces)"
    ) in str(caught.value)
    assert tags(alias) == [("a", "added since")]


def with_key_column(backup, name: str, kind: str | None, pk: str):  # type: ignore[no-untyped-def]
    """A copy of `backup` whose difflab.Item id column is `name` (of `kind`) and
    primary key `pk`, as a backup taken before the model's primary key changed
    holds them."""

    def change_table(meta):  # type: ignore[no-untyped-def]
        if meta["label"] != "difflab.Item":
            return meta
        columns = [
            {**c, "name": name, "kind": kind or c["kind"]} if c["name"] == "id" else c
            for c in meta["columns"]
        ]
        return {**meta, "pk": [pk], "columns": columns}

    def change_row(label, row):  # type: ignore[no-untyped-def]
        if label == "difflab.Item":
            key = row.pop("id")
            row[name] = str(key) if kind == "str" else key
        return row

    return rewrite_backup(backup, backup.with_name("edited.json"), change_row, change_table)


def item_rows(alias: str) -> list[tuple[object, ...]]:
    return list(Item.objects.using(alias).order_by("pk").values_list("pk", "name", "price"))


def backup_of_items(alias: str, column: str, kind: str | None, pk: str):  # type: ignore[no-untyped-def]
    items = Item.objects.using(alias)
    first = items.create(name="a", price=1, stock=1)
    items.create(name="b", price=2, stock=2)
    backup = backup_database(using=alias, only=["difflab.Item"]).path
    backup = with_key_column(backup, column, kind, pk)
    items.filter(pk=first.pk).update(price=5)
    return backup


@pytest.mark.parametrize(
    ("kind", "pk", "change"),
    [("str", "id", "id was str, and is int now"), (None, "name", "it was name, and is id now")],
)
def test_error_for_a_primary_key_changed_since_the_backup(alias, backup_dir, kind, pk, change):
    """A primary key of another kind (converted, so the plan maps it), or
    another column: an overwrite cannot match rows by it (nor can diffdb)."""
    backup = backup_of_items(alias, "id", kind, pk)
    before = item_rows(alias)

    with pytest.raises(RestoreError) as caught:
        overwrite(alias, backup)

    assert str(caught.value) == (
        f"difflab.Item: its primary key changed since the backup ({change}), so --overwrite "
        f"cannot tell which of the table's rows each of the backup's rows is. Nothing was "
        f"changed. Restore the table with --replace (it empties the table first), or pass "
        f"--replay to carry the rows forward through the migrations since the backup."
    )
    assert item_rows(alias) == before


def test_error_for_a_primary_key_the_backup_has_no_values_for(alias, backup_dir):
    """Not 'pass --set', which would give every row the same key."""
    backup = backup_of_items(alias, "number", None, "number")
    before = item_rows(alias)

    with pytest.raises(RestoreError) as caught:
        overwrite(alias, backup)

    assert str(caught.value).splitlines()[1] == (
        "  - difflab.Item.id is the primary key now, but the backup has no values for it (its "
        "primary key was number): the primary key changed since the backup, so the backup's "
        "rows cannot be matched with the table's. Restore into the schema the backup came from."
    )
    assert item_rows(alias) == before
