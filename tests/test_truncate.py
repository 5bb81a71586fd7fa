"""PostgreSQL: --replace empties with one TRUNCATE the tables that nothing outside it
refers to, and with DELETE the others (PostgreSQLBackend.truncatable); either way the
database ends up the same, and a failure takes the TRUNCATE back with it."""

from __future__ import annotations

import pytest
from django.db import connections

from dbtools.backends import backend_for
from dbtools.backup import backup_database
from dbtools.exceptions import RestoreError
from dbtools.restore import prepare_restore, restore_database
from dbtools.restore.loader import Loader
from shop.seed import seed_shop
from tests.conftest import backends
from tests.data import fill_edge_cases
from tests.helpers import comparable_tables, database_contents, read_lock_held

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def files_of(alias: str) -> dict[str, int]:
    """Each shop table's relfilenode: TRUNCATE gives a table a new one, DELETE does not."""
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT relname, relfilenode FROM pg_class "
            "WHERE relkind = 'r' AND relname LIKE 'shop\\_%%'"
        )
        return dict(cursor.fetchall())


@pytest.fixture
def seeded(alias):
    seed_shop(300, using=alias)
    fill_edge_cases(alias)


@backends("postgresql")
def test_replace_truncates_what_nothing_outside_refers_to_and_deletes_the_rest(
    alias, backup_dir, seeded
):
    before = comparable_tables(database_contents(alias))
    backup = backup_database(using=alias).path
    files = files_of(alias)

    restore_database(prepare_restore(backup, using=alias, only=["shop"]), mode="replace")

    after = files_of(alias)
    assert after["shop_product"] != files["shop_product"]  # truncated
    assert after["shop_useractivity"] != files["shop_useractivity"]
    # django_admin_log (outside the shop) refers to shop_user: that one is DELETEd
    assert after["shop_user"] == files["shop_user"]
    assert comparable_tables(database_contents(alias)) == before


@backends("postgresql")
def test_a_failure_after_the_truncate_gives_every_row_back(alias, backup_dir, seeded, monkeypatch):
    before = comparable_tables(database_contents(alias))
    backup = backup_database(using=alias).path
    files = files_of(alias)

    def load_nothing(self):
        raise RestoreError("injected after the tables were emptied")

    monkeypatch.setattr(Loader, "load_all", load_nothing)
    with pytest.raises(RestoreError, match="injected"):
        restore_database(prepare_restore(backup, using=alias), mode="replace")

    assert files_of(alias) == files
    assert comparable_tables(database_contents(alias)) == before


@backends("postgresql")
def test_a_table_with_a_delete_trigger_is_emptied_by_delete(alias, backup_dir, seeded):
    """TRUNCATE fires no DELETE trigger: a table that has one keeps DELETE's meaning."""
    backup = backup_database(using=alias).path
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM shop_product")
        (products,) = cursor.fetchone()
        cursor.execute("CREATE TABLE test_deleted_products (id text)")
        cursor.execute(
            "CREATE FUNCTION test_note_deleted() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN INSERT INTO test_deleted_products VALUES (OLD.id::text); RETURN OLD; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER note_deleted AFTER DELETE ON shop_product "
            "FOR EACH ROW EXECUTE FUNCTION test_note_deleted()"
        )
    try:
        files = files_of(alias)
        restore_database(prepare_restore(backup, using=alias), mode="replace")

        assert files_of(alias)["shop_product"] == files["shop_product"]
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT count(*) FROM test_deleted_products")
            assert cursor.fetchone() == (products,)
    finally:
        with connections[alias].cursor() as cursor:
            cursor.execute("DROP TRIGGER note_deleted ON shop_product")
            cursor.execute("DROP FUNCTION test_note_deleted()")
            cursor.execute("DROP TABLE test_deleted_products")


@backends("postgresql")
def test_a_table_with_row_level_security_is_emptied_by_delete(alias, backup_dir, seeded):
    """DELETE removes only the rows a policy shows; TRUNCATE would remove them all."""
    backup = backup_database(using=alias).path
    with connections[alias].cursor() as cursor:
        cursor.execute("ALTER TABLE shop_product ENABLE ROW LEVEL SECURITY")
    try:
        files = files_of(alias)
        restore_database(prepare_restore(backup, using=alias), mode="replace")
        assert files_of(alias)["shop_product"] == files["shop_product"]
    finally:
        with connections[alias].cursor() as cursor:
            cursor.execute("ALTER TABLE shop_product DISABLE ROW LEVEL SECURITY")


@backends("postgresql")
def test_truncatable_leaves_out_whatever_an_outside_table_reaches(alias):
    """outside -> a -> b <- c: a is referred to from outside, and once a stays out,
    so does b, which a refers to; c, which nothing refers to, can be truncated
    (truncating a table that refers to one left alone is allowed)."""
    statements = [
        "CREATE TABLE test_b (id int PRIMARY KEY)",
        "CREATE TABLE test_a (id int PRIMARY KEY, b_id int REFERENCES test_b)",
        "CREATE TABLE test_outside (a_id int REFERENCES test_a)",
        "CREATE TABLE test_c (id int PRIMARY KEY, b_id int REFERENCES test_b)",
    ]
    with connections[alias].cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
    try:
        connection = connections[alias]
        assert backend_for(connection).truncatable(["test_a", "test_b", "test_c"]) == ["test_c"]
        assert backend_for(connection).truncatable(["test_b"]) == []
        assert backend_for(connection).truncatable(
            ["test_outside", "test_a", "test_b", "test_c"]
        ) == [
            "test_outside",
            "test_a",
            "test_b",
            "test_c",
        ]
    finally:
        with connections[alias].cursor() as cursor:
            cursor.execute("DROP TABLE test_outside, test_a, test_c, test_b")


@backends("postgresql")
def test_a_lock_held_elsewhere_falls_back_to_delete(alias, backup_dir, seeded, settings):
    settings.DBTOOLS = {**settings.DBTOOLS, "LOCK_TIMEOUT": "200ms"}
    before = comparable_tables(database_contents(alias))
    backup = backup_database(using=alias).path
    files = files_of(alias)
    with read_lock_held(alias, "shop_product"):
        restore_database(prepare_restore(backup, using=alias), mode="replace")

    assert files_of(alias) == files  # the TRUNCATE timed out and was undone: all DELETEd
    assert comparable_tables(database_contents(alias)) == before
