"""A table that starts empty is loaded in one bulk load, written as rows are
decoded (CopyStream.stream: PostgreSQL's COPY, MariaDB's LOAD DATA, SQLite's
executemany); when that COPY fails, the table is loaded again in batches,
so the error still names the row. Both ways must give the same database."""

from __future__ import annotations

import json
from array import array
from decimal import Decimal

import pytest
from django.db import DatabaseError, connections

from dbtools.archive import row_parsing
from dbtools.archive.row_parsing import (
    parse_row_as_django_wrote_it,
    parse_row_for_jsonb,
    parse_row_keeping_json,
)
from dbtools.backup import backup_database
from dbtools.exceptions import RestoreError
from dbtools.restore import prepare_restore, restore_database
from dbtools.restore.strategies import CopyStream
from shop import models as m
from shop.seed import seed_shop
from tests.conftest import backends, run_manage
from tests.data import fill_edge_cases
from tests.edgecases import models as e
from tests.helpers import comparable_tables, database_contents, rewrite_backup

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def seeded(alias):
    seed_shop(300, using=alias)
    fill_edge_cases(alias)


def spy_on_stream(
    monkeypatch,
    fail_after_writing: bool = False,
    staged: list[str] | None = None,
    skipping: list[str] | None = None,
) -> list[str]:
    """Record each table streamed straight into itself (and, into `staged`, each
    streamed into a staging table for a merge; into `skipping`, each merged
    straight into itself, leaving out the keys it holds); optionally fail
    each COPY once every row is in it."""
    streamed: list[str] = []
    original = CopyStream.stream

    def stream(self, load, rows):
        original(self, load, rows)
        if self.into is not None:
            if staged is not None:
                staged.append(load.table.label)
        elif self.skip is not None:
            if skipping is not None:
                skipping.append(load.table.label)
        else:
            streamed.append(load.table.label)
        if fail_after_writing:
            raise DatabaseError("injected after the whole table was written")

    monkeypatch.setattr(CopyStream, "stream", stream)
    return streamed


def empty_tables(alias: str, tables: list[str]) -> None:
    with connections[alias].cursor() as cursor:
        if connections[alias].vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
            return
        off, on = (
            ("PRAGMA foreign_keys = OFF", "PRAGMA foreign_keys = ON")
            if connections[alias].vendor == "sqlite"
            else ("SET FOREIGN_KEY_CHECKS = 0", "SET FOREIGN_KEY_CHECKS = 1")
        )
        cursor.execute(off)
        for table in tables:
            cursor.execute(f"DELETE FROM {table}")
        cursor.execute(on)


@backends("postgresql", "mariadb", "sqlite")
@pytest.mark.parametrize("mode", ["replace", "merge"])
def test_streamed_tables_come_back_exactly(alias, backup_dir, seeded, monkeypatch, mode):
    before = comparable_tables(database_contents(alias))
    backup = backup_database(using=alias).path
    if mode == "merge":  # empty the shop's tables, so that they are streamed
        tables = [
            t for t in connections[alias].introspection.table_names() if t.startswith("shop_")
        ]
        empty_tables(alias, tables)
    streamed = spy_on_stream(monkeypatch)

    result = restore_database(prepare_restore(backup, using=alias), mode=mode)

    assert {"shop.Product", "shop.Order", "shop.OrderItem"} <= set(streamed)
    if mode == "merge":  # tables that were not empty were merged in batches
        assert "auth.Permission" not in streamed
    elif connections[alias].vendor != "sqlite":  # every kind of value
        assert "edgecases.AllTypes" in streamed
    else:  # a binary field's placeholder is its own: batches, through the insert compiler
        assert "edgecases.AllTypes" not in streamed
    assert comparable_tables(database_contents(alias)) == before
    receipts = {t.label: t for t in result.tables}
    assert all(receipts[label].inserted == receipts[label].in_backup for label in streamed)


# Text a bulk load's own format could take for something else: its NULL, its
# escape character, its field and line separators.
AWKWARD_TEXTS = [
    "",
    "N",
    "\\N",
    "NULL",
    "\\",
    "ends in \\",
    "a\tb",
    "a\nb\r\nc",
    "\\t",
    "é 😀 \u2028",
]


@backends("postgresql", "mariadb", "sqlite")
def test_awkward_text_and_binary_are_streamed_exactly(alias, backup_dir, monkeypatch):
    vendor = connections[alias].vendor
    texts = AWKWARD_TEXTS + (["nul \x00 in text"] if vendor == "mysql" else [])
    for number, value in enumerate(texts):
        e.AllTypes.objects.using(alias).create(
            char=value[:100],
            text=value,
            binary=value.encode() + bytes([0, 9, 10, 13, 92, number]),
            json={"text": value},
        )
    e.AllTypes.objects.using(alias).create(binary=b"")  # empty bytes, not NULL
    e.AllTypes.objects.using(alias).create()  # NULL everywhere
    before = comparable_tables(database_contents(alias, ["edgecases.AllTypes"]))
    backup = backup_database(using=alias, only=["edgecases.AllTypes"]).path
    e.AllTypes.objects.using(alias).update(char="changed", text=None, binary=None)
    streamed = spy_on_stream(monkeypatch)

    restore_database(
        prepare_restore(backup, using=alias, only=["edgecases.AllTypes"]), mode="replace"
    )

    # SQLite: a binary field's placeholder is its own, so batches take the table.
    assert streamed == ([] if vendor == "sqlite" else ["edgecases.AllTypes"])
    assert comparable_tables(database_contents(alias, ["edgecases.AllTypes"])) == before


@backends("postgresql", "mariadb", "sqlite")
def test_a_failed_copy_is_undone_and_the_table_loaded_again_in_batches(
    alias, backup_dir, seeded, monkeypatch
):
    backup = backup_database(using=alias).path
    restore_database(prepare_restore(backup, using=alias), mode="replace")
    streamed_result = comparable_tables(database_contents(alias))

    streamed = spy_on_stream(monkeypatch, fail_after_writing=True)
    result = restore_database(prepare_restore(backup, using=alias), mode="replace")

    assert "shop.Product" in streamed  # every streamed table failed, and was loaded again
    assert comparable_tables(database_contents(alias)) == streamed_result  # no row twice
    receipts = {t.label: t for t in result.tables}
    assert receipts["shop.Product"].inserted == m.Product.objects.using(alias).count()


@backends("postgresql", "mariadb", "sqlite")
def test_a_bad_row_in_the_middle_of_a_streamed_table_is_named(alias, backup_dir, seeded):
    backup = backup_database(using=alias).path
    ids = list(m.OrderItem.objects.using(alias).order_by("pk").values_list("pk", flat=True))
    assert len(ids) > 50
    culprit = ids[len(ids) // 2]

    def negative_quantity(label, row):  # PositiveIntegerField: a CHECK constraint refuses it
        return (
            {**row, "quantity": -5} if label == "shop.OrderItem" and row["id"] == culprit else row
        )

    broken = rewrite_backup(backup, backup.with_name("broken.json"), change_row=negative_quantity)
    before = comparable_tables(database_contents(alias))

    with pytest.raises(RestoreError) as caught:
        restore_database(prepare_restore(broken, using=alias), mode="replace")

    message = str(caught.value)
    assert message.startswith(
        f"Restoring shop.OrderItem (table shop_orderitem) failed at the row with primary key {culprit}:"
    ), message
    # PostgreSQL's and SQLite's column is an integer with a CHECK; MariaDB's, unsigned.
    assert "check constraint" in message.lower() or "Out of range value" in message
    assert message.endswith("Nothing was changed: the restore was rolled back.")
    assert comparable_tables(database_contents(alias)) == before


@backends("postgresql", "mariadb", "sqlite")
def test_a_streamed_table_reports_its_progress(alias, backup_dir, seeded):
    backup = backup_database(using=alias).path
    seen: dict[str, list[tuple[int, int]]] = {}
    restore_database(
        prepare_restore(backup, using=alias),
        mode="replace",
        progress=lambda label, done, total: seen.setdefault(label, []).append((done, total)),
    )
    count = m.OrderItem.objects.using(alias).count()
    assert seen["shop.OrderItem"][-1] == (count, count)


JSON_LINES = [
    b'{"id":1,"value":{"colour": "maple", "weight_g": 660}}',
    b'{"id":2,"value":{"b":1,"a":[true,false,null,"x"],"b":2}}',  # a duplicate key
    b'{"id":3,"value":3.14159265358979323846264338327950288}',
    b'{"id":4,"value":123456789012345678901234567890}',
    b'{"id":5,"value":[1e400, -0.0, 1E-400]}',
    b'{"id":6,"value":NaN}',
    b'{"id":7,"value":"\\ud83d\\ude00 caf\\u00e9 \\"quoted\\" \\\\"}',
    b'{"id":8,"value":null}',
    b'{"id":9,"value":{"deep":{"deeper":[{"n":-9223372036854775808}]}}}',
    b'{"id":10,"value":"\\ud800"}',
    b'{ "id" : 11 , "value" : { "spaced" : [ 1 , 2 ] } }',
    b'{"id":12,"value":{},"value":[]}',
]


@backends("postgresql")
@pytest.mark.parametrize("line", JSON_LINES, ids=lambda line: line.decode()[:40])
def test_the_jsonb_parser_stores_what_the_exact_parser_stores(alias, line):
    keep = frozenset({"value"})
    exact = parse_row_keeping_json(line.decode(), keep)
    fast = parse_row_for_jsonb(line, keep)
    assert fast.keys() == exact.keys() and fast["id"] == exact["id"]
    if exact["value"] is None:
        assert fast["value"] is None
        return
    with connections[alias].cursor() as cursor:
        try:
            cursor.execute("SELECT %s::jsonb::text", [exact["value"].text])
        except DatabaseError:  # jsonb refuses it (a lone surrogate): so must the other
            (stored_exact,) = (None,)
        else:
            (stored_exact,) = cursor.fetchone()
    with connections[alias].cursor() as cursor:
        try:
            cursor.execute("SELECT %s::jsonb::text", [fast["value"].text])
        except DatabaseError:
            (stored_fast,) = (None,)
        else:
            (stored_fast,) = cursor.fetchone()
    assert stored_fast == stored_exact


def spell_product_ids(backup, spell):
    """A copy of the backup whose shop.Product ids are written by `spell(text)`
    (references to them keep the usual spelling)."""
    return rewrite_backup(
        backup,
        backup.with_name("spelled.json"),
        change_row=lambda label, row: (
            {**row, "id": spell(row["id"])} if label == "shop.Product" else row
        ),
    )


@backends("postgresql")
@pytest.mark.parametrize(
    "spell, streamed_as_text",
    [
        (str.upper, True),  # PostgreSQL reads these UUIDs itself, from the COPY
        (lambda text: "{" + text + "}", True),
        (lambda text: text.replace("-", ""), True),
        (lambda text: "urn:uuid:" + text, False),  # refused by COPY; uuid.UUID reads it
    ],
)
def test_a_uuid_goes_in_as_the_same_value_however_it_is_spelled(
    alias, backup_dir, seeded, monkeypatch, spell, streamed_as_text
):
    before = comparable_tables(database_contents(alias))
    spelled = spell_product_ids(backup_database(using=alias).path, spell)
    streamed = spy_on_stream(monkeypatch)

    restore_database(prepare_restore(spelled, using=alias), mode="replace")

    assert ("shop.Product" in streamed) is streamed_as_text
    assert comparable_tables(database_contents(alias)) == before


@backends("postgresql")
def test_a_uuid_that_is_not_text_is_named_as_before(alias, backup_dir, seeded):
    numbered = spell_product_ids(backup_database(using=alias).path, lambda text: 12)
    before = comparable_tables(database_contents(alias))

    with pytest.raises(RestoreError) as caught:
        restore_database(prepare_restore(numbered, using=alias), mode="replace")

    assert (
        "table shop.Product, row 1 (primary key 12): column id holds 12, which is not a uuid value"
        in str(caught.value)
    )
    assert comparable_tables(database_contents(alias)) == before


FLOATS = ["0.1", "5e-324", "1.7976931348623157e308", "0.30000000000000004", "-0.0",
          "2.2250738585072014e-308", "123456789.123456789", "1e22", "4.35e-5"]  # fmt: skip


@backends("sqlite")
@pytest.mark.parametrize("number", FLOATS)
def test_a_float_outside_the_json_values_reads_the_same_by_both_parsers(number):
    """The jsonb parser keeps orjson's reading of a float column (only a float in
    a JSON value sends a row to the exact parser): it must be the same double."""
    line = f'{{"id":1,"ratio":{number},"value":{{"a":[1,"x"]}}}}'.encode()
    keep = frozenset({"value"})
    fast, exact = parse_row_for_jsonb(line, keep), parse_row_keeping_json(line.decode(), keep)
    assert repr(fast["ratio"]) == repr(exact["ratio"]) == repr(float(number))
    assert fast["value"].text.replace(" ", "") == exact["value"].text.replace(" ", "")


DJANGO_WRITTEN = [
    b'{"id":1,"value":{"colour": "maple", "weight_g": 660},"ratio":0.1}',
    b'{"id":2,"value":[1, 2.5, "caf\\u00e9", null, {"a": {"b": []}}]}',
    b'{"id":3,"value":"text","other":{"a":1}}',
    b'{"id":4,"value":3}',
]


@backends("sqlite")
@pytest.mark.parametrize(
    "line",
    JSON_LINES + DJANGO_WRITTEN + [b'{"id":5,"value":"caf\xc3\xa9"}', b'{"id":6,"value":{"a":1}}'],
    ids=lambda line: line.decode()[:40],
)
def test_the_parser_for_text_json_gives_what_the_exact_parser_gives(line):
    """SQLite and MariaDB store a JSON value's text: the row parser that takes
    the shortcut must give the same text and values, or take the slow way."""
    keep = frozenset({"value"})
    try:
        exact = repr(parse_row_keeping_json(line.decode(), keep))
    except ValueError as exc:
        exact = f"refused: {exc}"
    try:
        fast = repr(parse_row_as_django_wrote_it(line, keep))
    except ValueError as exc:
        fast = f"refused: {exc}"
    assert fast == exact


@backends("sqlite")
@pytest.mark.parametrize("line", DJANGO_WRITTEN, ids=lambda line: line.decode()[:40])
def test_json_as_django_writes_it_takes_the_shortcut(line, monkeypatch):
    def slow_way(text, keep):
        raise AssertionError("took the slow way")

    monkeypatch.setattr(row_parsing, "parse_row_keeping_json", slow_way)
    row = parse_row_as_django_wrote_it(line, frozenset({"value"}))
    assert json.loads(line)["value"] == json.loads(row["value"].text)


@backends("sqlite")
@pytest.mark.parametrize("number", FLOATS)
def test_a_float_column_reads_the_same_by_the_text_json_shortcut(number):
    line = f'{{"id":1,"ratio":{number},"value":{{"a": [1, "x"]}}}}'.encode()
    keep = frozenset({"value"})
    fast = parse_row_as_django_wrote_it(line, keep)
    exact = parse_row_keeping_json(line.decode(), keep)
    assert repr(fast) == repr(exact)
    assert repr(fast["ratio"]) == repr(float(number))


def rewrite_first_order(backup, **values):
    """A copy of the backup with these values in the first shop.Order row."""
    first = {"done": False}

    def change(label, row):
        if label != "shop.Order" or first["done"]:
            return row
        first["done"] = True
        return {**row, **values}

    return rewrite_backup(backup, backup.with_name("order.json"), change_row=change)


@backends("postgresql")
@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-03-04T05:06:07.123456+00:00", "2026-03-04 05:06:07.123456+00"),
        ("2026-03-04T05:06:07.12+00:00", "2026-03-04 05:06:07.12+00"),  # as PostgreSQL writes
        ("2026-03-04T05:06:07+05:30", "2026-03-03 23:36:07+00"),
        # Python truncates a 7th digit where PostgreSQL would round it: decoded here
        ("2026-03-04T05:06:07.1234567+00:00", "2026-03-04 05:06:07.123456+00"),
        ("2026-03-04 05:06:07+00:00", "2026-03-04 05:06:07+00"),  # not the ISO T: decoded
    ],
)
def test_a_timestamp_goes_in_as_python_reads_it(
    alias, backup_dir, seeded, monkeypatch, text, expected
):
    backup = rewrite_first_order(backup_database(using=alias).path, created_at=text)
    streamed = spy_on_stream(monkeypatch)

    restore_database(prepare_restore(backup, using=alias), mode="replace")

    assert "shop.Order" in streamed  # in the COPY, as text or decoded
    with connections[alias].cursor() as cursor:
        cursor.execute("SET LOCAL TimeZone = 'UTC'")
        cursor.execute("SELECT created_at::text FROM shop_order ORDER BY id LIMIT 1")
        assert cursor.fetchone() == (expected,)


@backends("postgresql")
@pytest.mark.parametrize(
    "column, text",
    [
        ("created_at", "2026-03-04T24:00:00+00:00"),  # PostgreSQL would take it: next midnight
        ("created_at", "2026-03-04T23:59:60+00:00"),  # a leap second, likewise
        ("created_at", "now"),
        ("total", "0x1F"),  # hexadecimal: PostgreSQL 16 reads it as 31
        ("total", "1_000"),  # Python's Decimal reads it; so it is decoded
    ],
)
def test_text_python_refuses_is_refused_before_postgresql_sees_it(
    alias, backup_dir, seeded, column, text
):
    backup = rewrite_first_order(backup_database(using=alias).path, **{column: text})
    before = comparable_tables(database_contents(alias))

    if text == "1_000":
        restore_database(prepare_restore(backup, using=alias), mode="replace")
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT total::text FROM shop_order ORDER BY id LIMIT 1")
            assert cursor.fetchone() == ("1000.00",)
        return
    with pytest.raises(RestoreError) as caught:
        restore_database(prepare_restore(backup, using=alias), mode="replace")
    assert f"column {column} holds {text!r}, which is not a " in str(caught.value)
    assert comparable_tables(database_contents(alias)) == before


@backends("postgresql")
@pytest.mark.parametrize("text", ["-0.50", "12345678.91", "7", "1E+2", "NaN"])
def test_a_decimal_goes_in_as_python_reads_it(alias, backup_dir, seeded, text):
    backup = rewrite_first_order(backup_database(using=alias).path, subtotal=text)
    restore_database(prepare_restore(backup, using=alias), mode="replace")
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT subtotal FROM shop_order ORDER BY id LIMIT 1")
        (stored,) = cursor.fetchone()
    assert str(stored) == str(Decimal(text).quantize(Decimal("0.01")))  # numeric(12, 2)


def halve(alias: str, model) -> set:
    """Delete every other row of one table (by primary key); returns the keys deleted."""
    keys = list(model.objects.using(alias).order_by("pk").values_list("pk", flat=True))[::2]
    model.objects.using(alias).filter(pk__in=keys).delete()
    return set(keys)


@backends("postgresql")
@pytest.mark.parametrize(
    "model, way",
    [(m.UserActivity, "skipping the keys it holds"), (m.SiteSettings, "through a staging table")],
)
def test_a_merge_into_a_table_holding_rows(alias, backup_dir, seeded, monkeypatch, model, way):
    """An integer key: the table's keys are read once and only the missing rows
    COPied into it. Any other key (SiteSettings' is text): through a staging table."""
    backup = backup_database(using=alias).path
    before = comparable_tables(database_contents(alias))
    deleted = halve(alias, model)
    staged: list[str] = []
    skipping: list[str] = []
    spy_on_stream(monkeypatch, staged=staged, skipping=skipping)

    result = restore_database(prepare_restore(backup, using=alias), mode="merge")

    label = model._meta.label
    assert label in (skipping if way == "skipping the keys it holds" else staged)
    receipt = next(t for t in result.tables if t.label == label)
    assert (receipt.inserted, receipt.skipped) == (len(deleted), receipt.in_backup - len(deleted))
    assert comparable_tables(database_contents(alias)) == before
    with connections[alias].cursor() as cursor:  # dropped once used, in this session too
        cursor.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'dbtools\\_staging\\_%%'")
        assert cursor.fetchone() == (0,)


@backends("postgresql")
@pytest.mark.parametrize("order", ["descending", "shuffled"])
def test_a_merge_skipping_keys_takes_rows_in_any_order(
    alias, backup_dir, seeded, monkeypatch, order
):
    """A backup holds each table's rows in key order, and the key search makes
    use of it; a file written by hand may not, and must merge the same. The
    keys are read a few at a time, so that the pages join up too."""
    import random

    from dbtools.backends import pg_loads

    monkeypatch.setattr(pg_loads, "KEYS_PER_QUERY", 7)
    backup = backup_database(using=alias).path

    def reordered(label, rows):
        if label != "shop.UserActivity":
            return rows
        if order == "descending":
            return rows[::-1]
        random.Random(11).shuffle(rows)
        return rows

    shuffled = rewrite_backup(backup, backup.with_name("shuffled.json"), order_rows=reordered)
    before = comparable_tables(database_contents(alias))
    deleted = halve(alias, m.UserActivity)
    assert len(deleted) > 3 * 7
    skipping: list[str] = []
    spy_on_stream(monkeypatch, skipping=skipping)

    result = restore_database(prepare_restore(shuffled, using=alias), mode="merge")

    assert "shop.UserActivity" in skipping
    receipt = next(t for t in result.tables if t.label == "shop.UserActivity")
    assert (receipt.inserted, receipt.skipped) == (len(deleted), receipt.in_backup - len(deleted))
    assert comparable_tables(database_contents(alias)) == before


@backends("postgresql")
def test_a_table_holding_more_keys_than_a_merge_holds_goes_through_staging(
    alias, backup_dir, seeded, monkeypatch
):
    from dbtools.backends import pg_loads

    backup = backup_database(using=alias).path
    before = comparable_tables(database_contents(alias))
    deleted = halve(alias, m.UserActivity)
    assert len(deleted) > 10
    monkeypatch.setattr(pg_loads, "MAX_KEYS_HELD", 10)
    monkeypatch.setattr(pg_loads, "KEYS_PER_QUERY", 4)
    staged: list[str] = []
    spy_on_stream(monkeypatch, staged=staged)

    result = restore_database(prepare_restore(backup, using=alias), mode="merge")

    assert "shop.UserActivity" in staged
    receipt = next(t for t in result.tables if t.label == "shop.UserActivity")
    assert receipt.inserted == len(deleted)
    assert comparable_tables(database_contents(alias)) == before


@backends("postgresql")
def test_a_row_another_session_adds_after_the_keys_are_read_is_left_as_it_is(
    alias, backup_dir, seeded, monkeypatch
):
    """The keys are what the restore's transaction saw when it read them. A row
    that another session commits afterwards, under a key the backup holds,
    makes the COPY fail; the table is merged again in batches, which find it
    and leave it as that session wrote it.

    NewsletterSubscriber: nothing refers to it and it refers to nothing, so no
    lock the restore takes can make the other session wait."""
    from dbtools.backends import pg_loads

    backup = backup_database(using=alias).path
    deleted = sorted(halve(alias, m.NewsletterSubscriber))
    raced = deleted[len(deleted) // 2]
    real_existing_keys = pg_loads.existing_keys
    keys_read = []

    def then_another_session_inserts(table, connection):
        present = real_existing_keys(table, connection)
        if table.label == "shop.NewsletterSubscriber":
            keys_read.append(present is not None)
            other = connections.create_connection(alias)
            try:
                with other.cursor() as cursor:  # autocommit: committed at once
                    # Fail, not hang, if the restore ever holds a lock in the way.
                    cursor.execute("SET lock_timeout = '10s'")
                    cursor.execute(
                        "INSERT INTO shop_newslettersubscriber "
                        "(id, email, is_active, subscribed_at) "
                        "VALUES (%s, 'another.session@example.com', false, now())",
                        [raced],
                    )
            finally:
                other.close()
        return present

    monkeypatch.setattr(pg_loads, "existing_keys", then_another_session_inserts)

    result = restore_database(prepare_restore(backup, using=alias), mode="merge")

    assert keys_read == [True]
    receipt = next(t for t in result.tables if t.label == "shop.NewsletterSubscriber")
    assert (receipt.inserted, receipt.skipped) == (
        len(deleted) - 1,
        receipt.in_backup - len(deleted) + 1,
    )
    kept = m.NewsletterSubscriber.objects.using(alias).get(pk=raced)
    assert (kept.email, kept.is_active) == ("another.session@example.com", False)
    assert m.NewsletterSubscriber.objects.using(alias).count() == receipt.in_backup


def test_key_membership_answers_as_a_set_would():
    import random

    from dbtools.backends.pg_loads import KeyNotComparable, sorted_membership

    chooser = random.Random(5)
    for _ in range(200):
        keys = sorted(chooser.sample(range(-50, 50), chooser.randint(0, 60)))
        asked = [chooser.randint(-60, 60) for _ in range(chooser.randint(0, 80))]
        if chooser.random() < 0.5:
            asked.sort()
        holds = sorted_membership(array("q", keys))
        assert [holds(k) for k in asked] == [k in set(keys) for k in asked]
    holds = sorted_membership(array("q", [1, 2, 3]))
    for not_an_int in ("2", 2.0, True, None, Decimal(2)):
        with pytest.raises(KeyNotComparable):
            holds(not_an_int)


@backends("postgresql")
@pytest.mark.parametrize("way", ["skipping the keys it holds", "through a staging table"])
def test_a_merge_into_a_table_holding_rows_skips_only_primary_keys(
    alias, backup_dir, seeded, monkeypatch, way
):
    """A backup row with a new key but another row's unique order number is not
    skipped: it fails, and the batches name it."""
    from dbtools.backends import pg_loads

    if way == "through a staging table":
        monkeypatch.setattr(pg_loads, "MAX_KEYS_HELD", 0)
    orders = list(m.Order.objects.using(alias).order_by("pk"))
    backup = backup_database(using=alias).path
    m.Order.objects.using(alias).filter(pk=orders[0].pk).delete()
    m.Order.objects.using(alias).filter(pk=orders[1].pk).update(number=orders[0].number)
    halve(alias, m.UserActivity)  # (a table merged before Order fails: undone with it)
    before = comparable_tables(database_contents(alias))

    with pytest.raises(RestoreError) as caught:
        restore_database(prepare_restore(backup, using=alias), mode="merge")

    message = str(caught.value)
    assert (
        f"shop.Order (table shop_order) failed at the row with primary key {orders[0].pk}"
        in message
    )
    assert "unique" in message.lower()
    assert comparable_tables(database_contents(alias)) == before


@backends("postgresql")
def test_the_fast_paths_work_through_pgbouncer_in_transaction_mode(
    alias, backup_dir, seeded, pgbouncer
):
    """A merge's key reads and staging table, TRUNCATE and dropped foreign keys for a
    --replace: all inside the one transaction, so a pooler in transaction
    mode (Neon's pooled endpoint) keeps them on one server connection."""
    backup = backup_database(using=alias).path
    before = comparable_tables(database_contents(alias))
    pooled = {"DBTOOLS_TESTS_POSTGRES_HOST_PORT": pgbouncer.address}
    seen = pgbouncer.clients_seen()

    halve(alias, m.UserActivity)  # merged skipping the keys it holds
    halve(alias, m.SiteSettings)  # merged through a staging table (a text key)
    merged = run_manage(
        "restoredb", "--database", "postgresql", "--file", str(backup), "--no-input", env=pooled
    )
    assert merged.returncode == 0, merged.stderr
    assert comparable_tables(database_contents(alias)) == before

    replaced = run_manage(
        "restoredb", "--database", "postgresql", "--file", str(backup), "--no-input", "--replace",
        env=pooled,
    )  # fmt: skip
    assert replaced.returncode == 0, replaced.stderr
    assert comparable_tables(database_contents(alias)) == before
    assert pgbouncer.clients_seen() > seen
