"""Subset backups (backupdb --subset/--limit/--with-children): exactly the rows
chosen and those they reference, every foreign key inside the file, and a
file that restores into an empty database."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connections, transaction

from dbtools.archive import ArchiveReader
from dbtools.archive.format import outside_subset
from dbtools.backup import backup_database, subset_rows
from dbtools.diff import diff_database
from dbtools.diff.report import summary_lines
from dbtools.exceptions import ConfigurationError, MigrationError, RestoreError
from dbtools.graph import plan_tables
from dbtools.migrate.rollback import rollback
from dbtools.restore import prepare_restore, replay, restore_database
from dbtools.restore.drill import drill
from dbtools.restore.replay import replay_restore
from shop import models as m
from shop.seed import seed_shop
from tests.conftest import backends
from tests.helpers import comparable_tables, database_contents, read_backup


def cutoff(alias: str) -> str:
    """A placed_at that about a tenth of the orders are on or after."""
    times = sorted(m.Order.objects.using(alias).values_list("placed_at", flat=True))
    return times[len(times) * 9 // 10].isoformat()


def counts(tables: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    return {label: len(rows) for label, rows in tables.items()}


def dangling(alias: str, tables: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Every foreign key in the file that points at a row the file does not hold."""
    by_label = {t.label: t for t in plan_tables(alias).tables}
    found = []
    for label, rows in tables.items():
        for field in by_label[label].fields:
            if not field.is_relation or field.remote_field is None:
                continue
            target = field.related_model
            target_label = (target._meta.concrete_model or target)._meta.label
            held = {row[field.target_field.name] for row in tables[target_label]}
            found += [
                f"{label}.{field.name}={row[field.name]!r}"
                for row in rows
                if row[field.name] is not None and row[field.name] not in held
            ]
    return found


def expected_for_orders(alias: str, orders: Any) -> dict[str, int]:
    """What a subset of `orders` holds, from the ORM: the orders, their addresses,
    the users of both; every other table, nothing: not the tables pointing at
    those, nor those nothing chosen reaches (the catalogue, settings, the mailing list)."""
    orders = list(orders)
    addresses = {o.shipping_address_id for o in orders} - {None}
    users = {o.user_id for o in orders} | set(
        m.Address.objects.using(alias).filter(pk__in=addresses).values_list("user_id", flat=True)
    )
    return {
        "shop.Order": len(orders),
        "shop.Address": len(addresses),
        "shop.User": len(users - {None}),
        "shop.OrderItem": 0,
        "shop.Account": 0,
        "shop.Session": 0,
        "shop.Subscription": 0,
        "shop.SubscriptionItem": 0,
        "shop.UserActivity": 0,
        "shop.User_groups": 0,
        "admin.LogEntry": 0,
        **dict.fromkeys(["shop.Product", "shop.ProductVariant", "shop.Category"], 0),
        **dict.fromkeys(["shop.CategoriesOnProducts", "shop.ProductImage"], 0),
        **dict.fromkeys(["shop.SiteSettings", "shop.NewsletterSubscriber", "shop.SocialLink"], 0),
        **dict.fromkeys(["shop.VerificationToken", "contenttypes.ContentType"], 0),
        **dict.fromkeys(["auth.Permission", "sessions.Session"], 0),
    }


def test_a_subset_holds_the_chosen_rows_and_every_row_they_reference(alias, backup_dir):
    seed_shop(600, using=alias)
    since = cutoff(alias)
    result = backup_database(using=alias, subset=[f"shop.Order:placed_at__gte={since}"])
    tables = read_backup(result.path)

    chosen = m.Order.objects.using(alias).filter(placed_at__gte=since)
    expected = expected_for_orders(alias, chosen)
    assert 0 < expected["shop.Order"] < m.Order.objects.using(alias).count()
    assert {label: counts(tables)[label] for label in expected} == expected
    assert {row["id"] for row in tables["shop.Order"]} == set(chosen.values_list("pk", flat=True))
    assert dangling(alias, tables) == []
    # The rows are the database's, value for value, in the database's order.
    now = comparable_tables(database_contents(alias, ["shop.Order", "shop.User", "shop.Address"]))
    for label, rows in now.items():
        held = {row["id"] for row in tables[label]}
        assert comparable_tables(tables)[label] == [row for row in rows if row["id"] in held]


def test_with_children_brings_the_order_items_and_what_they_reference(alias, backup_dir):
    seed_shop(600, using=alias)
    since = cutoff(alias)
    out = StringIO()
    call_command(
        "backupdb", database=alias, subset=[f"shop.Order:placed_at__gte={since}"],
        with_children=True, stdout=out,
    )  # fmt: skip
    path = next(backup_dir.glob("db-backup-subset-*.json"))
    tables = read_backup(path)

    chosen = m.Order.objects.using(alias).filter(placed_at__gte=since)
    items = m.OrderItem.objects.using(alias).filter(order__in=chosen)
    variants = {i.variant_id for i in items} - {None}
    products = set(
        m.ProductVariant.objects.using(alias)
        .filter(pk__in=variants)
        .values_list("product_id", flat=True)
    )
    assert items.count() > 0
    assert {row["id"] for row in tables["shop.OrderItem"]} == set(
        items.values_list("pk", flat=True)
    )
    assert counts(tables)["shop.ProductVariant"] == len(variants)
    assert counts(tables)["shop.Product"] == len(products)
    # Products are now part of the subset: what points at them holds nothing.
    assert counts(tables)["shop.ProductImage"] == 0
    assert counts(tables)["shop.Category"] == 0  # nothing chosen reaches the categories
    assert dangling(alias, tables) == []


def test_limit_takes_the_first_rows_by_primary_key(alias, backup_dir):
    seed_shop(300, using=alias)
    limit = ["shop.User=7", "shop.VerificationToken=5"]  # a composite key too
    call_command("backupdb", database=alias, limit=limit, stdout=StringIO())
    tables = read_backup(next(backup_dir.glob("db-backup-subset-*.json")))
    first = list(m.User.objects.using(alias).order_by("pk").values_list("pk", flat=True)[:7])
    assert [row["id"] for row in tables["shop.User"]] == first
    tokens = m.VerificationToken.objects.using(alias).order_by("identifier", "token")
    assert [(r["identifier"], r["token"]) for r in tables["shop.VerificationToken"]] == list(
        tokens.values_list("identifier", "token")[:5]
    )
    assert counts(tables)["shop.Order"] == 0 and counts(tables)["shop.Address"] == 0
    assert dangling(alias, tables) == []


def test_a_subset_restores_into_an_empty_database(alias, backup_dir):
    seed_shop(600, using=alias)
    since = cutoff(alias)
    result = backup_database(
        using=alias, subset=[f"shop.Order:placed_at__gte={since}"], with_children=True
    )
    expected = comparable_tables(read_backup(result.path))
    call_command("flush", database=alias, interactive=False, verbosity=0)

    restore_database(prepare_restore(result.path, using=alias))

    connection = connections[alias]
    with transaction.atomic(using=alias):
        connection.check_constraints()
    shop = [label for label in expected if label.startswith("shop.")]
    assert comparable_tables(database_contents(alias, shop)) == {
        label: expected[label] for label in shop
    }
    order = m.Order.objects.using(alias).order_by("pk").first()
    assert order is not None and order.items.using(alias).exists()
    m.Category.objects.using(alias).create(name="After", slug="after-restore")


@pytest.mark.parametrize("mode", ["overwrite", "replace"])
def test_a_subset_never_overwrites_or_replaces_rows_a_database_holds(alias, backup_dir, mode):
    seed_shop(100, using=alias)
    result = backup_database(using=alias, limit={"shop.Order": 3})
    before = database_contents(alias, ["shop.Order", "shop.User"])
    with pytest.raises(RestoreError) as caught:
        restore_database(prepare_restore(result.path, using=alias), mode=mode)
    assert str(caught.value).startswith(
        f"{result.path.name} is a subset backup (holds only some rows): --{mode} would "
    )
    assert database_contents(alias, ["shop.Order", "shop.User"]) == before
    err = StringIO()
    call_command(
        "restoredb", "--no-input", "--file", str(result.path),
        database=alias, stdout=StringIO(), stderr=err, verbosity=0,
    )  # fmt: skip
    assert "NOTICE: This backup is a subset" in err.getvalue()
    assert database_contents(alias, ["shop.Order", "shop.User"]) == before
    call_command("flush", database=alias, interactive=False, verbosity=0)
    restore_database(prepare_restore(result.path, using=alias), mode=mode)
    assert m.Order.objects.using(alias).count() == 3


@pytest.mark.parametrize("mode", ["overwrite", "replace"])
def test_a_replay_never_overwrites_or_replaces_rows_with_a_subset(
    alias, backup_dir, mode, monkeypatch
):
    """The restore of the carried rows refuses too, by the tables they cover
    (the early refusal, by the tables the file names, left out here)."""

    def header_only(path: Any, using: str, mode: str, into_empty: bool) -> tuple[Any, str]:
        with ArchiveReader(path) as reader:
            return reader.meta, path.name

    monkeypatch.setattr(replay, "refuse_partial_early", header_only)
    seed_shop(100, using=alias)
    result = backup_database(using=alias, limit={"shop.Order": 3})
    before = database_contents(alias, ["shop.Order", "shop.User"])
    with pytest.raises(RestoreError) as caught:
        replay_restore(result.path, using=alias, mode=mode)
    assert str(caught.value).startswith(
        f"{result.path.name} is a subset backup (holds only some rows): --{mode} would "
    )
    assert database_contents(alias, ["shop.Order", "shop.User"]) == before


def test_rows_come_in_the_databases_key_order_when_read_in_groups(alias, backup_dir, monkeypatch):
    """Past one query's worth of keys the rows are read group by group, in the
    order a scan of the key finds them: the file's order is a full backup's."""
    seed_shop(300, using=alias)
    full = read_backup(backup_database(using=alias).path)
    monkeypatch.setattr(subset_rows, "MAX_KEYS_PER_QUERY", 13)  # 3 keys a query
    result = backup_database(using=alias, subset=["shop.Product"], with_children=True)
    tables = read_backup(result.path)
    for label in ("shop.Product", "shop.ProductVariant", "shop.CategoriesOnProducts"):
        assert len(tables[label]) > 3
        assert tables[label] == full[label]
    assert tables["shop.Order"] == [
        row
        for row in full["shop.Order"]
        if row["id"] in {i["order"] for i in full["shop.OrderItem"]}
    ]


def test_the_header_records_the_subset_and_listbackups_shows_it(alias, backup_dir):
    seed_shop(100, using=alias)
    backup_database(using=alias)
    subset = ["shop.Order:status=paid,total__gte=10", "shop.Order:status=refunded"]
    result = backup_database(using=alias, subset=subset, limit={"shop.Order": 5})
    with ArchiveReader(result.path) as reader:
        assert reader.meta["subset"] == {
            "subset": subset, "limit": {"shop.Order": 5}, "with_children": False,
            "unreached": [
                label for label in plan_tables(alias).labels()
                if label not in {"shop.Order", "shop.User", "shop.Address"}
            ],
        }  # fmt: skip
    tables = read_backup(result.path)
    either = (
        m.Order.objects.using(alias)
        .filter(status__in=["refunded", "paid"])
        .exclude(status="paid", total__lt=10)
    )
    first = list(either.order_by("pk").values_list("pk", flat=True)[:5])
    assert [row["id"] for row in tables["shop.Order"]] == first
    # Never `latest`: a plain restoredb --replace must not put a subset in place of everything.
    latest = read_backup(backup_dir / "db-backup-latest.json")
    assert len(latest["shop.Order"]) == m.Order.objects.using(alias).count()
    out = StringIO()
    call_command("listbackups", stdout=out)
    line = next(x for x in out.getvalue().splitlines() if result.path.name in x)
    assert line.rstrip().endswith("subset")
    assert "--subset 'shop.Order:status=refunded' --limit shop.Order=5" in out.getvalue()


def test_safemigrates_rollback_never_restores_a_subset(alias, backup_dir):
    seed_shop(100, using=alias)
    result = backup_database(using=alias, limit={"shop.User": 3})
    before = comparable_tables(database_contents(alias, ["shop.User", "shop.Order"]))
    with pytest.raises(MigrationError) as caught:
        rollback(result.path, alias, None)
    assert str(caught.value) == (
        f"The backup {result.path.name} cannot be used for a rollback: it is a subset backup "
        f"(backupdb --subset/--limit), which holds only some rows. Nothing was rolled back. "
        f"Roll back from a whole, unmasked backup, such as the pre-migrate backup safemigrate took."
    )
    assert comparable_tables(database_contents(alias, ["shop.User", "shop.Order"])) == before


BAD = [
    (["shop.Order:placed_on__gte=2025-06-01"], None, r"Cannot resolve keyword 'placed_on'"),
    (["shop.Order:placed_at__after=2025-06-01"], None, r"Unsupported lookup 'after'"),
    (["shop.Order:placed_at__gte=June"], None, r"must be in YYYY-MM-DD HH:MM"),
    (["shop.Order:id=many"], None, r"expected a number but got 'many'"),
    (["shop.Order:placed_at"], None, r"'placed_at' is not a lookup; write field__lookup=value"),
    (["shop.Ordr:id=1"], None, r"Unknown model 'shop.Ordr'; the models of shop are"),
    (["Order:id=1"], None, r"'Order' is not app_label.Model"),
    (["sessions.Session:expire_date__gte=2025-01-01"], None, r"not among the tables this backup holds"),
    ([], ["shop.User=none"], r"--limit 'shop.User=none': write app_label.Model=N"),
    ([], ["shop.User=0"], r"a whole number from 1 to 9223372036854775807, not 0"),
    ([], ["shop.User=99999999999999999999"], r"a whole number from 1 to 9223372036854775807, not"),
    ([], {"shop.User": 2**63}, r"a whole number from 1 to 9223372036854775807, not"),
    ([], ["shop.User=\u0663"], r"--limit 'shop.User=\u0663': write app_label.Model=N"),
]  # fmt: skip


@pytest.mark.parametrize(("subset", "limit", "message"), BAD)
def test_a_bad_subset_is_a_one_line_error_before_anything_is_written(
    alias, backup_dir, subset, limit, message
):
    options = {"subset": subset, "limit": limit, "exclude": ["sessions"]}
    with pytest.raises(ConfigurationError, match=message) as caught:
        backup_database(using=alias, **options)
    assert "\n" not in str(caught.value)
    with pytest.raises(CommandError, match=message) as command_error:
        call_command("backupdb", database=alias, **options, stdout=StringIO())
    assert "\n" not in str(command_error.value)
    assert not backup_dir.exists() or list(backup_dir.iterdir()) == []


def test_a_subset_refuses_to_leave_out_a_table_its_rows_reference(alias, backup_dir):
    """The file's promise: every foreign key in a subset points at a row in it."""
    message = (
        "The chosen rows reference shop.User, which this backup leaves out (--only, --exclude "
        "or DBTOOLS['EXCLUDE']), so their foreign keys would point at rows the file does not "
        "hold; back up those tables too, or choose rows that do not reach them."
    )
    with pytest.raises(ConfigurationError) as caught:
        backup_database(using=alias, limit={"shop.Order": 3}, exclude=["shop.User"])
    assert str(caught.value) == message
    with pytest.raises(CommandError, match=r"^The chosen rows reference shop.User, "):
        call_command(
            "backupdb", "--limit", "shop.Order=3", "--exclude", "shop.User",
            database=alias, stdout=StringIO(),
        )  # fmt: skip
    assert not backup_dir.exists() or list(backup_dir.iterdir()) == []


def test_with_children_needs_a_subset(alias, backup_dir):
    with pytest.raises(ConfigurationError, match=r"--with-children follows foreign keys back"):
        backup_database(using=alias, with_children=True)


def test_a_subset_passes_the_restore_drill(alias, backup_dir):
    """Restored into a scratch database and read back in primary-key order, every
    table matches the file's checksum: the rows were written in the database's order."""
    seed_shop(300, using=alias)
    path = backup_database(using=alias, limit={"shop.User": 20}, with_children=True).path
    result = drill(path, using=alias)
    assert [t for t in result.tables if not t.ok] == []
    assert result.ok and not result.unproven
    # Tables holding rows match; those outside the subset, and the natural-key
    # tables it holds none of, are not compared: there is nothing to compare.
    assert all(t.checksum == "match" for t in result.tables if not t.vacuous)
    by_label = {t.label: t for t in result.tables}
    assert by_label["shop.SiteSettings"].checksum.startswith("not compared: outside the subset")
    assert by_label["shop.Order"].in_backup > 0 and by_label["shop.Order"].checksum == "match"


def test_limit_counts_rows_once_across_a_one_to_many_lookup(alias, backup_dir):
    seed_shop(300, using=alias)
    m.Order.objects.using(alias).update(status="delivered")
    matching = m.User.objects.using(alias).filter(orders__status="delivered").distinct()
    first = list(matching.order_by("pk").values_list("pk", flat=True)[:5])
    assert len(first) == 5
    # The first users by key have several delivered orders: the join repeats them.
    assert m.Order.objects.using(alias).filter(user__in=first, status="delivered").count() > 5
    subset = ["shop.User:orders__status=delivered"]
    result = backup_database(using=alias, subset=subset, limit={"shop.User": 5})
    assert [row["id"] for row in read_backup(result.path)["shop.User"]] == first


def test_a_labelled_subset_is_never_counted_nor_pruned_as_a_pre_migrate_backup(
    alias, backup_dir, settings
):
    seed_shop(100, using=alias)
    pre = backup_database(using=alias, label="pre-migrate").path
    subset = backup_database(using=alias, subset=["shop.User:pk=1"], label="pre-migrate").path
    assert subset.name.startswith("db-backup-pre-migrate-subset-")
    # A subset named as a pre-migrate backup (as an older version named it):
    # its header keeps retention from counting it.
    renamed = subset.rename(subset.with_name(subset.name.replace("-subset-", "-")))
    settings.DBTOOLS = {**settings.DBTOOLS, "KEEP_PRE_MIGRATE": 1}
    assert backup_database(using=alias).pruned == []
    assert pre.exists() and renamed.exists()


def test_keep_is_refused_with_a_subset(alias, backup_dir):
    message = (
        "--keep deletes old full backups, and a subset backup is not one of them "
        "(it never becomes latest); run --keep without --subset/--limit."
    )
    for options in ({"subset": ["shop.User:pk=1"]}, {"limit": {"shop.User": 3}}):
        with pytest.raises(ConfigurationError) as caught:
            backup_database(using=alias, keep=1, **options)
        assert str(caught.value) == message
    with pytest.raises(CommandError, match=r"^--keep deletes old full backups, and a subset"):
        call_command("backupdb", database=alias, keep=1, limit=["shop.User=3"], stdout=StringIO())
    assert not backup_dir.exists() or list(backup_dir.iterdir()) == []


OUTSIDE_THE_SUBSET = [
    "contenttypes.ContentType",
    "auth.Permission",
    "shop.SiteSettings",
    "shop.NewsletterSubscriber",
    "shop.Product",
]


@pytest.mark.parametrize("mode", ["replace", "overwrite", "merge"])
def test_a_subset_leaves_every_table_it_does_not_reach_as_it_is(alias, backup_dir, mode):
    """After `flush`, which the refusal advises, a subset restored in any mode
    writes only the tables its chosen rows reach: the content types and
    permissions `flush` made, and rows in a table no chosen order reaches,
    keep their rows; the summary speaks of the tables it restored."""
    seed_shop(100, using=alias)
    result = backup_database(using=alias, limit={"shop.Order": 3})
    with ArchiveReader(result.path) as reader:
        unreached = reader.meta["subset"]["unreached"]
    assert set(OUTSIDE_THE_SUBSET) <= set(unreached)
    assert not {"shop.Order", "shop.User", "shop.Address"} & set(unreached)
    call_command("flush", database=alias, interactive=False, verbosity=0)
    m.SiteSettings.objects.using(alias).create(key="theme", value={"dark": True})
    m.NewsletterSubscriber.objects.using(alias).create(email="kept@example.com")
    before = database_contents(alias, OUTSIDE_THE_SUBSET)
    assert len(before["contenttypes.ContentType"]) > 20 and before["auth.Permission"]
    out = StringIO()
    options = {"replace": mode == "replace", "overwrite": mode == "overwrite"}
    call_command(
        "restoredb", "--no-input", "--file", str(result.path),
        database=alias, stdout=out, stderr=StringIO(), **options,
    )  # fmt: skip
    assert database_contents(alias, OUTSIDE_THE_SUBSET) == before
    assert m.Order.objects.using(alias).count() == 3
    reached = len(plan_tables(alias).tables) - len(unreached)
    done = out.getvalue().strip().splitlines()[-1]
    assert f" {reached} tables" in done
    if mode == "replace":
        assert done.endswith(f"The row counts of these {reached} tables match the backup.")
    if mode != "merge":
        assert "left as they are: " in out.getvalue()
        assert "contenttypes.ContentType" in out.getvalue().split("left as they are: ")[1]


def test_a_subset_that_reaches_content_types_matches_them_by_natural_key(alias, backup_dir):
    """A chosen comment reaches its content type by a real foreign key: the
    subset holds that one, and --replace matches it with the one `migrate`
    made instead of emptying the table."""
    from django.contrib.contenttypes.models import ContentType

    from tests.edgecases.models import Comment, Tag

    tag = Tag.objects.using(alias).create(name="red")
    kind = ContentType.objects.db_manager(alias).get_for_model(Tag)
    Comment.objects.using(alias).create(content_type=kind, object_id=tag.pk, body="nice")
    result = backup_database(using=alias, subset=["edgecases.Comment"])
    tables = read_backup(result.path)
    assert [row["model"] for row in tables["contenttypes.ContentType"]] == ["tag"]
    call_command("flush", database=alias, interactive=False, verbosity=0)
    before = database_contents(alias, ["contenttypes.ContentType", "auth.Permission"])
    restored = restore_database(prepare_restore(result.path, using=alias), mode="replace")
    assert database_contents(alias, ["contenttypes.ContentType", "auth.Permission"]) == before
    comment = Comment.objects.using(alias).get()
    assert (comment.content_type.app_label, comment.content_type.model) == ("edgecases", "tag")
    assert [t.label for t in restored.tables if t.matched] == ["contenttypes.ContentType"]
    checks = {t.label: t for t in drill(result.path, using=alias).tables}
    assert checks["contenttypes.ContentType"].checksum.startswith("not compared: matched")
    assert checks["auth.Permission"].checksum.startswith("not compared: outside the subset")
    assert checks["edgecases.Comment"].checksum == "match"


def test_diffdb_does_not_compare_the_tables_outside_a_subset(alias, backup_dir):
    """A table no chosen row reaches holds no rows in the file by choice: diffdb
    says it is outside the subset, not that its rows were added since."""
    seed_shop(100, using=alias)
    path = backup_database(using=alias, limit={"shop.Order": 3}).path
    result = diff_database(path, using=alias)
    by_label = {t.label: t for t in result.tables}
    for label in OUTSIDE_THE_SUBSET:
        assert not by_label[label].compared
        assert by_label[label].schema_changes == [f"not compared: outside the subset {path.name}"]
        assert by_label[label].only_in_database == 0
    assert by_label["shop.Order"].compared
    full = backup_database(using=alias).path
    between = {t.label: t for t in diff_database(full, against=path).tables}
    assert between["shop.Product"].schema_changes == [
        f"not compared: outside the subset {path.name}"
    ]
    assert between["shop.Order"].compared


def test_diffdb_of_a_subset_does_not_call_the_rows_it_left_out_added(alias, backup_dir):
    """Orders the subset did not choose are in the database and not in the
    file by choice: not compared, never "added", and no difference on their
    own; a chosen order changed or deleted since still is one."""
    seed_shop(100, using=alias)
    path = backup_database(using=alias, limit={"shop.Order": 3}).path
    orders = m.Order.objects.using(alias)
    chosen = list(orders.order_by("pk").values_list("pk", flat=True)[:3])
    left_out = orders.count() - 3

    untouched = {t.label: t for t in diff_database(path, using=alias).tables}
    assert untouched["shop.Order"].outside_subset == left_out
    assert untouched["shop.Order"].only_in_database == 0
    assert not untouched["shop.Order"].differs
    assert summary_lines(untouched["shop.Order"]) == [
        f"shop.Order: no row differs; {left_out:,} not in the subset, not compared"
    ]

    orders.filter(pk=chosen[0]).update(status="cancelled")
    full = backup_database(using=alias).path
    changed = {t.label: t for t in diff_database(path, using=alias).tables}
    assert (changed["shop.Order"].changed, changed["shop.Order"].only_in_database) == (1, 0)
    between = {t.label: t for t in diff_database(full, against=path).tables}
    assert between["shop.Order"].outside_subset == left_out
    assert (between["shop.Order"].changed, between["shop.Order"].only_in_backup) == (1, 0)


def test_diffdb_of_a_subset_counts_rows_added_to_a_table_it_took_whole(alias, backup_dir):
    """--subset shop.Category takes every category: one missing from the file
    was added since, and diffdb says so."""
    seed_shop(20, using=alias)
    path = backup_database(using=alias, subset=["shop.Category"]).path
    m.Category.objects.using(alias).create(name="new", slug="a-new-category")
    diff = {t.label: t for t in diff_database(path, using=alias).tables}["shop.Category"]
    assert (diff.only_in_database, diff.outside_subset, diff.differs) == (1, 0, True)


def test_diffdb_says_how_many_rows_of_a_subset_it_did_not_compare(alias, backup_dir):
    seed_shop(100, using=alias)
    path = backup_database(using=alias, limit={"shop.Order": 3}).path
    left_out = m.Order.objects.using(alias).count() - 3
    out = StringIO()
    with pytest.raises(SystemExit):  # tables outside the subset are not compared: exit 1
        call_command("diffdb", "--file", str(path), "-v", "2", database=alias, stdout=out)
    text = out.getvalue()
    first = text.splitlines()[0]
    assert first.endswith(" not compared).")
    assert f"shop.Order ({left_out:,} rows not compared)" in text


@pytest.mark.parametrize(
    ("option", "given", "suggested"),
    [
        ("--subset", "edgecases.ProxyPlace:name=x", "--subset 'edgecases.Place:name=x'"),
        ("--limit", "edgecases.ProxyPlace=5", "--limit 'edgecases.Place=5'"),
    ],
)
def test_a_proxy_model_is_named_as_such_with_its_concrete_model(
    alias, backup_dir, option, given, suggested
):
    with pytest.raises(CommandError) as caught:
        call_command("backupdb", option, given, database=alias, stdout=StringIO())
    assert str(caught.value) == (
        f"{option} {given!r}: edgecases.ProxyPlace is a proxy model, which has no table of its "
        f"own: its rows are those of edgecases.Place; choose them there: {suggested}."
    )


@backends("postgresql")
def test_jobs_with_a_subset_says_a_subset_reads_on_one_connection(alias, backup_dir):
    seed_shop(100, using=alias)
    result = backup_database(using=alias, limit={"shop.Order": 3}, jobs=4)
    assert result.warnings == [
        "--jobs 4 was not used: a subset backup reads its rows on the connection that chose "
        "their keys; one connection read it all."
    ]


def test_an_older_subset_file_is_read_as_covering_only_its_tables_with_rows():
    """A subset file written before `unreached` was recorded: its tables with
    no rows are taken as outside it (the version before wrote every table the
    chosen rows do not reach empty); any other backup has no table outside."""
    counts = {"shop.Order": 3, "shop.User": 2, "contenttypes.ContentType": 0}
    older = {"subset": {"subset": [], "limit": {"shop.Order": 3}, "with_children": False}}
    assert outside_subset(older, counts) == {"contenttypes.ContentType"}
    recorded = {"subset": {**older["subset"], "unreached": ["shop.User"]}}
    assert outside_subset(recorded, counts) == {"shop.User"}
    assert outside_subset({"only": []}, counts) == set()
