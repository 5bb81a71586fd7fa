"""MariaDB/MySQL's checks before a restore commits (backends/mysql_checks.py):
the foreign-key check reads each table once by its primary key, and must
find exactly what Django's own check finds, with Django's message."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connections, transaction

from dbtools.backends import backend_for, mysql_checks
from shop.models import Order
from shop.seed import seed_shop
from tests.conftest import backends
from tests.data import fill_edge_cases
from tests.edgecases import models as e

TABLES = [
    "edgecases_author",
    "edgecases_book",
    "edgecases_node",
    "edgecases_uniqueemail",
    "edgecases_emailreference",
    "shop_order",
    "shop_address",
    "shop_user",
]


def filled(alias):
    fill_edge_cases(alias)
    seed_shop(20, using=alias)
    owner = e.UniqueEmail.objects.using(alias).create(email="owner@example.com", nickname="o")
    e.EmailReference.objects.using(alias).create(owner=owner)
    assert Order.objects.using(alias).exclude(shipping_address=None).exists()


def both_checks(alias) -> tuple[str | None, str | None]:
    """(dbtools' message, Django's message), None where a check passes."""
    connection = connections[alias]
    found = []
    for check in (
        lambda: backend_for(connection).check_foreign_keys(TABLES),
        lambda: connection.check_constraints(table_names=TABLES),
    ):
        try:
            check()
        except IntegrityError as exc:
            found.append(str(exc))
        else:
            found.append(None)
    return found[0], found[1]


@backends("mariadb")
@pytest.mark.parametrize(
    "broken",
    [
        "UPDATE edgecases_book SET author_id = 424242 ORDER BY id LIMIT 1",
        "UPDATE edgecases_node SET parent_id = 424242 WHERE parent_id IS NOT NULL LIMIT 1",
        "UPDATE edgecases_emailreference SET owner_id = 'nobody@example.com'",
        # The second of a table's two foreign keys, the first one valid.
        "UPDATE shop_order SET shipping_address_id = '00000000000000000000000000000000' "
        "WHERE shipping_address_id IS NOT NULL ORDER BY id LIMIT 1",
        "UPDATE shop_order SET user_id = 424242 ORDER BY id LIMIT 1",
    ],
)
def test_a_dangling_key_is_found_as_djangos_check_finds_it(alias, broken):
    filled(alias)
    connection = connections[alias]
    with transaction.atomic(using=alias):
        with connection.cursor() as cursor:
            cursor.execute("SET foreign_key_checks = 0")
            cursor.execute(broken)
            cursor.execute("SET foreign_key_checks = 1")
        ours, django = both_checks(alias)
        transaction.set_rollback(True, using=alias)
    assert ours is not None
    assert ours == django


@backends("mariadb")
def test_valid_and_null_keys_pass(alias):
    filled(alias)
    assert e.Node.objects.using(alias).filter(parent=None).exists()
    assert both_checks(alias) == (None, None)


@backends("mariadb")
def test_rows_are_counted_by_the_primary_key(alias):
    filled(alias)
    connection = connections[alias]
    for model in (Order, e.Node, e.EmailReference):
        counted = backend_for(connection).count_rows(model)
        assert counted == model.objects.using(alias).count() > 0
    keys = mysql_checks.table_keys(connection, ["shop_order", "edgecases_emailreference"])
    assert keys["shop_order"].primary == ["id"]
    assert sorted(c for c, _, _ in keys["shop_order"].references) == [
        "shipping_address_id",
        "user_id",
    ]
    assert keys["edgecases_emailreference"].references == [
        ("owner_id", "edgecases_uniqueemail", "email")
    ]


def raw(alias, *statements):
    with connections[alias].cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


@backends("mariadb")
def test_tables_named_alike_are_outside_the_check(alias):
    """information_schema matches names regardless of case and accents: a
    table named like one in scope ("Chk_Foo", "chk_café") is not checked."""
    fk = "CONSTRAINT chk_fk_{} FOREIGN KEY (pid) REFERENCES chk_parent (id)"
    raw(
        alias,
        "CREATE TABLE chk_parent (id INT PRIMARY KEY)",
        *(
            f"CREATE TABLE `{name}` (id INT PRIMARY KEY, pid INT, {fk.format(i)})"
            for i, name in enumerate(("chk_foo", "Chk_Foo", "chk_cafe", "chk_café"))
        ),
    )
    try:
        raw(
            alias,
            "SET foreign_key_checks = 0",
            "INSERT INTO chk_parent VALUES (1)",
            "INSERT INTO chk_foo VALUES (1, 1)",
            "INSERT INTO chk_cafe VALUES (1, 1)",
            "INSERT INTO `Chk_Foo` VALUES (7, 99)",
            "INSERT INTO `chk_café` VALUES (8, 98)",
            "SET foreign_key_checks = 1",
        )
        backend_for(connections[alias]).check_foreign_keys(["chk_foo", "chk_parent", "chk_cafe"])
        with pytest.raises(IntegrityError, match="'chk_café' with primary key '8'"):
            backend_for(connections[alias]).check_foreign_keys(["chk_café"])
    finally:
        raw(
            alias,
            *(
                f"DROP TABLE IF EXISTS `{n}`"
                for n in ("chk_foo", "Chk_Foo", "chk_cafe", "chk_café", "chk_parent")
            ),
        )


@backends("mariadb")
def test_only_references_to_a_primary_key_share_a_pass(alias, monkeypatch):
    """A reference to a column that is not a one-column primary key can match
    many rows: joined with another, the rows would multiply."""
    raw(
        alias,
        "CREATE TABLE chk_target (id INT PRIMARY KEY, a INT, b INT, KEY (a), KEY (b))",
        "CREATE TABLE chk_pointing (id INT PRIMARY KEY, t INT, a INT, b INT, "
        "FOREIGN KEY (t) REFERENCES chk_target (id), FOREIGN KEY (a) REFERENCES chk_target (a), "
        "FOREIGN KEY (b) REFERENCES chk_target (b))",
    )
    passes: list[list[str]] = []
    original = mysql_checks.dangling

    def watched(connection, db_table, pk, references):
        passes.append(sorted(column for column, _, _ in references))
        return original(connection, db_table, pk, references)

    monkeypatch.setattr(mysql_checks, "dangling", watched)
    try:
        raw(alias, "INSERT INTO chk_target VALUES (1, 1, 1), (2, 1, 1)")
        raw(alias, "INSERT INTO chk_pointing VALUES (1, 1, 1, 1)")
        mysql_checks.check_foreign_keys(connections[alias], ["chk_pointing"])
        assert sorted(passes) == [["a"], ["b"], ["t"]]
        raw(alias, "SET foreign_key_checks = 0", "INSERT INTO chk_pointing VALUES (2, 1, 1, 5)")
        raw(alias, "SET foreign_key_checks = 1")
        with pytest.raises(IntegrityError, match=r"chk_pointing\.b contains a value '5'"):
            mysql_checks.check_foreign_keys(connections[alias], ["chk_pointing"])
    finally:
        raw(alias, "DROP TABLE IF EXISTS chk_pointing", "DROP TABLE IF EXISTS chk_target")
