"""PostgreSQL: a restore validates the foreign keys of tables that start empty once per
constraint (dbtools/foreign_keys.py), and puts every constraint back exactly."""

from __future__ import annotations

import pytest
from django.db import connections

from dbtools.backup import backup_database
from dbtools.exceptions import RestoreError
from dbtools.restore import foreign_keys, prepare_restore, restore_database
from shop import models as m
from shop.seed import seed_shop
from tests.conftest import backends
from tests.data import fill_edge_cases
from tests.edgecases import models as e
from tests.helpers import comparable_tables, database_contents, read_lock_held, rewrite_backup

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

# Every property of a constraint a restore could change, and its oid (which a drop
# and re-add changes: the proof that the fast path ran).
CATALOG_SQL = """
SELECT c.relname, con.conname, con.contype, con.condeferrable, con.condeferred,
       con.confdeltype, con.confupdtype, con.confmatchtype, con.convalidated,
       pg_get_constraintdef(con.oid), obj_description(con.oid, 'pg_constraint'), con.oid
FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
WHERE c.relnamespace = 'public'::regnamespace
ORDER BY 1, 2
"""
# Written the way a project's own SQL migration might: a database-level ON DELETE,
# not deferrable, NOT VALID, with a comment; beside Django's deferred ones.
EXTRA = [
    "ALTER TABLE shop_orderitem ADD CONSTRAINT orderitem_order_cascade FOREIGN KEY (order_id) "
    "REFERENCES shop_order (id) ON DELETE CASCADE ON UPDATE RESTRICT NOT DEFERRABLE NOT VALID",
    "COMMENT ON CONSTRAINT orderitem_order_cascade ON shop_orderitem IS 'kept by the restore'",
    'ALTER TABLE shop_address ADD CONSTRAINT "Address owner" FOREIGN KEY (user_id) '
    "REFERENCES shop_user (id) ON DELETE SET NULL DEFERRABLE INITIALLY IMMEDIATE",
]


def catalog(alias: str) -> dict[tuple[str, str], tuple]:
    with connections[alias].cursor() as cursor:
        cursor.execute(CATALOG_SQL)
        return {(row[0], row[1]): row[2:] for row in cursor.fetchall()}


def without_oids(snapshot: dict[tuple[str, str], tuple]) -> dict[tuple[str, str], tuple]:
    return {key: row[:-1] for key, row in snapshot.items()}


@pytest.fixture
def shop_with_extra_constraints(alias):
    seed_shop(300, using=alias)
    fill_edge_cases(alias)
    with connections[alias].cursor() as cursor:
        for sql in EXTRA:
            cursor.execute(sql)
    yield
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "ALTER TABLE shop_orderitem DROP CONSTRAINT IF EXISTS orderitem_order_cascade"
        )
        cursor.execute('ALTER TABLE shop_address DROP CONSTRAINT IF EXISTS "Address owner"')


@backends("postgresql")
@pytest.mark.parametrize("mode", ["replace", "merge"])
def test_constraints_come_back_exactly_and_the_rows_too(
    alias, backup_dir, shop_with_extra_constraints, mode
):
    before_rows = comparable_tables(database_contents(alias))
    before = catalog(alias)
    backup = backup_database(using=alias).path
    if mode == "merge":  # the shop's tables empty: they are set aside
        tables = [
            t for t in connections[alias].introspection.table_names() if t.startswith("shop_")
        ]
        with connections[alias].cursor() as cursor:
            cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")

    restore_database(prepare_restore(backup, using=alias), mode=mode)

    after = catalog(alias)
    assert without_oids(after) == without_oids(before)
    renewed = {key for key in before if before[key][-1] != after[key][-1]}
    assert ("shop_address", "Address owner") in renewed  # the fast path ran
    django_made = {k for k in before if k[0] == "shop_orderitem" and before[k][0] == "f"} - {
        ("shop_orderitem", "orderitem_order_cascade")
    }
    assert django_made and django_made <= renewed
    # NOT VALID: left in place, so it checks the restored rows as they go in.
    assert ("shop_orderitem", "orderitem_order_cascade") not in renewed
    assert comparable_tables(database_contents(alias)) == before_rows


@backends("postgresql")
def test_the_fast_path_and_the_row_by_row_path_give_the_same_database(
    alias, backup_dir, shop_with_extra_constraints, monkeypatch
):
    backup = backup_database(using=alias).path
    restore_database(prepare_restore(backup, using=alias), mode="replace")
    fast = comparable_tables(database_contents(alias))
    monkeypatch.setattr(foreign_keys, "foreign_keys_of", lambda connection, tables: [])
    before = catalog(alias)
    restore_database(prepare_restore(backup, using=alias), mode="replace")
    assert catalog(alias) == before  # nothing was dropped this time: same oids
    assert comparable_tables(database_contents(alias)) == fast


@backends("postgresql")
def test_a_row_pointing_at_nothing_fails_the_restore_and_changes_nothing(
    alias, backup_dir, tmp_path, shop_with_extra_constraints
):
    backup = backup_database(using=alias).path
    product = m.Product.objects.using(alias).order_by("pk").first()
    assert product is not None

    def drop_a_product(label, row):  # only Django's deferred foreign keys point at it
        return None if label == "shop.Product" and row["id"] == str(product.pk) else row

    broken = rewrite_backup(backup, tmp_path / "broken.json", change_row=drop_a_product)
    before_rows = comparable_tables(database_contents(alias))
    before = catalog(alias)

    with pytest.raises(
        RestoreError,
        match=r"foreign key points at a row that does not exist: table shop_\w+, constraint ",
    ) as info:
        restore_database(prepare_restore(broken, using=alias), mode="replace")

    assert f"(product_id)=({product.pk}) is not present" in str(info.value)
    assert "Nothing was changed: the restore was rolled back." in str(info.value)
    assert catalog(alias) == before  # the transaction took the drop back with it: same oids
    assert comparable_tables(database_contents(alias)) == before_rows


@backends("postgresql")
def test_a_lock_held_elsewhere_falls_back_to_row_by_row_checks(
    alias, backup_dir, settings, shop_with_extra_constraints
):
    settings.DBTOOLS = {**settings.DBTOOLS, "LOCK_TIMEOUT": "200ms"}
    backup = backup_database(using=alias).path
    before_rows = comparable_tables(database_contents(alias))
    before = catalog(alias)
    # A merge sets aside only tables that start empty and refer to no table holding
    # rows: empty one that refers only to itself and that nothing else refers to.
    with connections[alias].cursor() as cursor:
        cursor.execute("DELETE FROM edgecases_node")
    with read_lock_held(alias, "edgecases_node"):
        restore_database(prepare_restore(backup, using=alias), mode="merge")

    assert catalog(alias) == before  # the drop timed out and was undone: same oids
    assert comparable_tables(database_contents(alias)) == before_rows


@backends("postgresql")
def test_a_merge_never_locks_a_table_holding_rows_that_an_empty_table_refers_to(
    alias, backup_dir, shop_with_extra_constraints, monkeypatch
):
    """Dropping a foreign key locks the table it refers to against reads until
    the restore commits. Activity refers to users, which hold rows: the app must
    go on reading users while the activity is merged back, so the activity's
    constraint stays and checks row by row. The self-referencing nodes, emptied
    too, are still set aside: the proof that the fast path was open."""
    from dbtools.restore import loader as restore

    backup = backup_database(using=alias).path
    before_rows = comparable_tables(database_contents(alias))
    before = catalog(alias)
    with connections[alias].cursor() as cursor:
        cursor.execute("DELETE FROM shop_useractivity")
        cursor.execute("DELETE FROM edgecases_node")
    users_read_during_the_load = []
    real_load_table = restore.Loader.load_table

    def load_table_while_the_app_reads_users(self, mapping, rows):
        if mapping.backup_label == "shop.UserActivity":
            other = connections.create_connection(alias)
            try:
                with other.cursor() as cursor:
                    cursor.execute("SET lock_timeout = '2s'")
                    cursor.execute("SELECT count(*) FROM shop_user")
                    users_read_during_the_load.append(cursor.fetchone()[0])
            finally:
                other.close()
        return real_load_table(self, mapping, rows)

    monkeypatch.setattr(restore.Loader, "load_table", load_table_while_the_app_reads_users)

    restore_database(prepare_restore(backup, using=alias), mode="merge")

    assert users_read_during_the_load == [m.User.objects.using(alias).count()]
    after = catalog(alias)
    activity = [key for key in before if key[0] == "shop_useractivity" and before[key][0] == "f"]
    nodes = [key for key in before if key[0] == "edgecases_node" and before[key][0] == "f"]
    assert activity and nodes
    assert all(after[key] == before[key] for key in activity)  # same oid: never dropped
    assert all(after[key][-1] != before[key][-1] for key in nodes)  # dropped and re-added
    assert without_oids(after) == without_oids(before)
    assert comparable_tables(database_contents(alias)) == before_rows


@backends("postgresql")
@pytest.mark.parametrize("emptied_too", [[], ["edgecases_node"]])
def test_a_row_pointing_outside_the_backup_at_nothing_fails_with_its_key(
    alias, backup_dir, emptied_too
):
    """A comment refers to a content type, a table an edgecases backup does not
    hold and that holds rows: the comment's constraint stays (row by row) and
    its failure names the table, the key and what to do, whether it surfaces
    in the final check or when other tables' set-aside keys come back."""
    fill_edge_cases(alias)
    backup = backup_database(using=alias, only=["edgecases"]).path
    gone = sorted(set(e.Comment.objects.using(alias).values_list("content_type", flat=True)))
    with connections[alias].cursor() as cursor:
        for db_table in ["edgecases_comment", *emptied_too]:
            cursor.execute(f"DELETE FROM {db_table}")
        for link in ("auth_group_permissions", "shop_user_user_permissions"):
            cursor.execute(
                f"DELETE FROM {link} WHERE permission_id IN "
                "(SELECT id FROM auth_permission WHERE content_type_id = ANY(%s))",
                [gone],
            )
        cursor.execute("DELETE FROM auth_permission WHERE content_type_id = ANY(%s)", [gone])
        cursor.execute("DELETE FROM django_content_type WHERE id = ANY(%s)", [gone])

    with pytest.raises(RestoreError) as failure:
        restore_database(prepare_restore(backup, using=alias), mode="merge")

    message = str(failure.value)
    assert "edgecases_comment" in message
    assert any(f"(content_type_id)=({key})" in message for key in gone)
    assert "restore the referenced tables too" in message
    # Which check caught it: the one run before set-aside keys come back, or the last.
    assert ("in neither the backup nor the database" in message) == bool(emptied_too)
    assert "rolled back" in message
    assert not e.Comment.objects.using(alias).exists()


@backends("postgresql")
def test_a_constraint_whose_name_and_comment_hold_percent_signs_comes_back(alias, backup_dir):
    seed_shop(50, using=alias)
    with connections[alias].cursor() as cursor:
        cursor.execute(
            'ALTER TABLE shop_address ADD CONSTRAINT "fk_100%_b" FOREIGN KEY (user_id) '
            "REFERENCES shop_user (id) DEFERRABLE INITIALLY DEFERRED"
        )
        cursor.execute(
            """COMMENT ON CONSTRAINT "fk_100%_b" ON shop_address IS '100%s sure, 5%% off'"""
        )
    try:
        before = catalog(alias)
        backup = backup_database(using=alias).path

        restore_database(prepare_restore(backup, using=alias), mode="replace")

        after = catalog(alias)
        assert without_oids(after) == without_oids(before)
        assert after[("shop_address", "fk_100%_b")][-2] == "100%s sure, 5%% off"
        assert after[("shop_address", "fk_100%_b")][-1] != before[("shop_address", "fk_100%_b")][-1]
    finally:
        with connections[alias].cursor() as cursor:
            cursor.execute('ALTER TABLE shop_address DROP CONSTRAINT IF EXISTS "fk_100%_b"')
